//! Arbitrary bytes into `policy::validate_settings`, the function the waPC
//! `validate_settings` entry point calls: always `{"valid": ...}`, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sidecar_lifecycle_policy::policy;

fuzz_target!(|payload: &[u8]| {
    let answer = policy::validate_settings(payload);
    let response: Value = serde_json::from_slice(&answer).expect("validate_settings answers JSON");
    let valid = response.get("valid").and_then(Value::as_bool);
    assert!(valid.is_some(), "no boolean `valid`: {response}");
    if valid == Some(false) {
        assert!(
            response
                .get("message")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty()),
            "an invalid verdict without a message: {response}"
        );
    }
});
