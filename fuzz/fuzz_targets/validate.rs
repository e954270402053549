//! Arbitrary bytes into `policy::validate`, the function the waPC `validate`
//! entry point calls (src/lib.rs registers it in one line): whatever the
//! bytes, it answers a JSON ValidationResponse and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sidecar_lifecycle_policy::policy;

fuzz_target!(|payload: &[u8]| {
    let answer = policy::validate(payload);
    let response: Value = serde_json::from_slice(&answer).expect("validate answers JSON");
    assert!(
        response.get("accepted").is_some_and(Value::is_boolean),
        "no boolean `accepted`: {response}"
    );
});
