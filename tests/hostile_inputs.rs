//! Hostile inputs through the compiled module in the waPC host (the same
//! stack as kwctl and policy-server): each is answered with a verdict or a
//! clear rejection, never a trap or a guest error, and the instance answers
//! normally afterwards (policy-server reuses instances).
//!
//! Time and memory are bounded by what the calls do, not asserted: the
//! harness runs without the fuel or epoch limits policy-server can set, so
//! each test only makes sure its calls return, and prints (with
//! `--nocapture`) the payload and response sizes and the time taken.

mod common;

use std::time::Instant;

use common::Policy;
use serde_json::{Value, json};

/// Calls `validate` with raw bytes; the answer must be a ValidationResponse.
#[track_caller]
fn validate_bytes(policy: &Policy, label: &str, payload: &[u8]) -> Value {
    let started = Instant::now();
    let answer = policy
        .call("validate", payload)
        .unwrap_or_else(|e| panic!("{label}: the validate call trapped or failed: {e}"));
    eprintln!(
        "{label}: payload {} bytes, response {} bytes, {:?}",
        payload.len(),
        answer.len(),
        started.elapsed()
    );
    let response: Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!(
            "{label}: the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&answer[..answer.len().min(2000)])
        )
    });
    if let Some(problem) = common::response_shape_problem(&response) {
        panic!("{label}: {problem}");
    }
    response
}

fn validate(policy: &Policy, label: &str, request: &Value, settings: &Value) -> Value {
    let payload = json!({"request": request, "settings": settings}).to_string();
    validate_bytes(policy, label, payload.as_bytes())
}

#[track_caller]
fn assert_rejected_with(response: &Value, fragments: &[&str]) {
    assert_eq!(
        response["accepted"],
        json!(false),
        "expected a rejection: {response}"
    );
    let message = response["message"].as_str().unwrap_or_default();
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "the message lacks {fragment:?}: {message}"
        );
    }
}

fn pod_request(spec: Value) -> Value {
    pod_request_with(json!({"name": "shop"}), spec)
}

fn pod_request_with(metadata: Value, spec: Value) -> Value {
    json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}})
}

/// After whatever came before, the instance still converts a sidecar.
#[track_caller]
fn assert_still_answers(policy: &Policy) {
    let request =
        pod_request(json!({"containers": [{"name": "app"}, {"name": "cloud-sql-proxy"}]}));
    let response = validate(policy, "a normal request afterwards", &request, &json!({}));
    assert_eq!(
        response.pointer("/mutated_object/spec/initContainers/0/name"),
        Some(&json!("cloud-sql-proxy")),
        "the instance no longer answers normally: {response}"
    );
}

fn raw_pod_payload(spec_text: &str) -> String {
    format!(
        r#"{{"request": {{"uid": "1", "kind": {{"group": "", "version": "v1", "kind": "Pod"}}, "operation": "CREATE",
            "object": {{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "shop"}}, "spec": {spec_text}}}}}, "settings": {{}}}}"#
    )
}

// ---------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------

#[test]
fn ten_thousand_containers() {
    let policy = Policy::new();
    let mut containers: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"name": format!("app-{i}"), "image": "shop/app:1",
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", format!("sleep {}", i % 60)]}}}})
        })
        .collect();
    containers.push(json!({"name": "cloud-sql-proxy", "readinessProbe": {"httpGet": {"path": "/ready", "port": 15021}}}));
    // Half of them declared sidecars by the annotation: 5,000 conversions.
    let declared: Vec<String> = (0..5_000).map(|i| format!("app-{}", 2 * i)).collect();
    let request = pod_request_with(
        json!({"name": "shop", "annotations": {"sidecar-lifecycle/containers": declared.join(",")}}),
        json!({"containers": containers}),
    );
    let response = validate(&policy, "10,000 containers", &request, &json!({}));
    let spec = &response["mutated_object"]["spec"];
    assert_eq!(
        spec["containers"].as_array().map(Vec::len),
        Some(5_000),
        "{}",
        response["message"]
    );
    assert_eq!(spec["initContainers"].as_array().map(Vec::len), Some(5_001));
    // the longest main preStop (59 s) + 5,001 sidecars x 5 s
    assert_eq!(spec["terminationGracePeriodSeconds"], json!(59 + 5_001 * 5));

    let init: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("setup-{i}"), "restartPolicy": if i % 2 == 0 { json!("Always") } else { Value::Null }}))
        .collect();
    let request = pod_request(json!({"initContainers": init, "containers": [{"name": "app"}]}));
    let response = validate(&policy, "10,000 init containers", &request, &json!({}));
    assert_eq!(
        response["mutated_object"]["spec"]["terminationGracePeriodSeconds"],
        json!(5_000 * 5)
    );
    assert_still_answers(&policy);
}

#[test]
fn a_one_megabyte_annotation_value() {
    let policy = Policy::new();
    let megabyte = 1 << 20;
    // The sidecar annotation, one name repeated: read, deduplicated, one warning.
    let repeated = "ghost,".repeat(megabyte / 6);
    let request = pod_request_with(
        json!({"name": "shop", "annotations": {"sidecar-lifecycle/containers": repeated}}),
        json!({"containers": [{"name": "app"}, {"name": "cloud-sql-proxy"}]}),
    );
    let response = validate(
        &policy,
        "1 MB sidecar annotation (one name)",
        &request,
        &json!({}),
    );
    assert!(
        response["mutated_object"].is_object(),
        "{}",
        response["message"]
    );
    let warnings = response["warnings"].as_array().map_or(0, Vec::len);
    assert_eq!(
        warnings, 2,
        "one warning for the unknown name, one for the conversion"
    );

    // Distinct names: each is a warning (the response grows with them).
    let distinct: Vec<String> = (0..megabyte / 8).map(|i| format!("g{i:06}")).collect();
    let request = pod_request_with(
        json!({"name": "shop", "annotations": {"sidecar-lifecycle/containers": distinct.join(",")}}),
        json!({"containers": [{"name": "app"}, {"name": "cloud-sql-proxy"}]}),
    );
    let response = validate(
        &policy,
        "1 MB sidecar annotation (distinct names)",
        &request,
        &json!({}),
    );
    assert!(
        response["accepted"] == json!(true),
        "{}",
        response["message"]
    );

    // Any other annotation: not read, returned as it came.
    let other = "x".repeat(megabyte);
    let request = pod_request_with(
        json!({"name": "shop", "annotations": {"example.com/blob": other}}),
        json!({"containers": [{"name": "app"}, {"name": "cloud-sql-proxy"}]}),
    );
    let response = validate(&policy, "1 MB other annotation", &request, &json!({}));
    assert_eq!(
        response["mutated_object"]["metadata"]["annotations"]["example.com/blob"]
            .as_str()
            .map(str::len),
        Some(megabyte)
    );
    assert_still_answers(&policy);
}

// ---------------------------------------------------------------------------
// Depth
// ---------------------------------------------------------------------------

/// serde_json stops at 128 levels of nesting: beyond, the payload is
/// rejected with the reason; below, the value is kept exactly.
#[test]
fn json_nested_beyond_the_recursion_limit_in_an_unknown_field() {
    let policy = Policy::new();
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for depth in [200, 10_000, 1_000_000] {
        let payload = raw_pod_payload(&format!(
            r#"{{"containers": [{{"name": "app"}}, {{"name": "cloud-sql-proxy"}}], "x-deep": {}}}"#,
            nested(depth)
        ));
        let response = validate_bytes(&policy, &format!("nested {depth} deep"), payload.as_bytes());
        assert_rejected_with(
            &response,
            &["cannot read the admission request", "recursion limit"],
        );
    }
    // The payload, request, object, spec, containers, a container: 6 levels;
    // 120 more are within the limit, kept and returned as they came.
    let payload = raw_pod_payload(&format!(
        r#"{{"containers": [{{"name": "app"}}, {{"name": "cloud-sql-proxy", "x-deep": {}}}]}}"#,
        nested(120)
    ));
    let response = validate_bytes(&policy, "nested 120 deep", payload.as_bytes());
    let mut deep = &response["mutated_object"]["spec"]["initContainers"][0]["x-deep"];
    let mut depth = 0;
    while let Some([inner]) = deep.as_array().map(Vec::as_slice) {
        deep = inner;
        depth += 1;
    }
    assert_eq!(
        (depth, deep),
        (119, &json!([])),
        "the nested value was not kept"
    );
    assert_still_answers(&policy);
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// How serde_json (arbitrary_precision) writes back a number it read: the
/// digits as written, but an exponent always as `e` with its sign (`1E400`
/// and `1e400` both come back as `1e+400`). The same JSON value.
fn as_written_back(number: &str) -> String {
    match number.split_once(['e', 'E']) {
        Some((mantissa, exponent)) if !exponent.starts_with(['+', '-']) => {
            format!("{mantissa}e+{exponent}")
        }
        Some((mantissa, exponent)) => format!("{mantissa}e{exponent}"),
        None => number.to_owned(),
    }
}

/// Numbers no f64, i64 or u64 holds, and -0: the policy keeps them in fields
/// it does not own, digit for digit.
#[test]
fn numbers_out_of_range_in_unknown_fields_are_kept_as_written() {
    let policy = Policy::new();
    let numbers = [
        "1e400",
        "-1E400",
        "2.5e-400",
        "1180591620717411303424",
        "-1180591620717411303424",
        "-0",
        "-99999999999999999999999999999999",
        "0.30000000000000000000000000000004",
    ];
    let fields: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| format!(r#""x-number-{i}": {n}"#))
        .collect();
    let fields = fields.join(", ");
    let payload = raw_pod_payload(&format!(
        r#"{{{fields}, "containers": [{{"name": "app", {fields}}}, {{"name": "cloud-sql-proxy", {fields}}}]}}"#
    ));
    let response = validate_bytes(&policy, "numbers out of range", payload.as_bytes());
    assert!(
        response["mutated_object"].is_object(),
        "{}",
        response["message"]
    );
    let text = response["mutated_object"].to_string();
    for (i, number) in numbers.iter().enumerate() {
        let field = format!(r#""x-number-{i}":{}"#, as_written_back(number));
        assert_eq!(
            text.matches(&field).count(),
            3,
            "{field} is not kept as written in the pod spec and both containers"
        );
    }
    assert_still_answers(&policy);
}

/// terminationGracePeriodSeconds is an int64 the policy reads: numbers out
/// of its range are rejected with the field's path.
#[test]
fn numbers_out_of_range_in_the_grace_period_are_rejected_with_the_field() {
    let policy = Policy::new();
    for number in [
        "1e400",
        "-1e400",
        "1180591620717411303424",
        "9223372036854775808",
        "-9223372036854775809",
        "-1180591620717411303424",
        "-1",
        "30.0",
        "3e1",
    ] {
        let payload = raw_pod_payload(&format!(
            r#"{{"terminationGracePeriodSeconds": {number}, "containers": [{{"name": "app"}}, {{"name": "cloud-sql-proxy"}}]}}"#
        ));
        let response = validate_bytes(
            &policy,
            &format!("grace period {number}"),
            payload.as_bytes(),
        );
        assert_rejected_with(
            &response,
            &[
                "spec.terminationGracePeriodSeconds",
                &as_written_back(number),
            ],
        );
    }
    // int64's maximum is a valid grace period, and enough for any budget.
    let payload = raw_pod_payload(
        r#"{"terminationGracePeriodSeconds": 9223372036854775807, "containers": [{"name": "app"}, {"name": "cloud-sql-proxy"}]}"#,
    );
    let response = validate_bytes(&policy, "grace period int64 max", payload.as_bytes());
    assert_eq!(
        response.pointer("/mutated_object/spec/terminationGracePeriodSeconds"),
        Some(&json!(i64::MAX))
    );
    // -0 is the integer 0 to the API server (Go reads it so); the policy
    // answers it either way, a verdict or a rejection naming the field.
    let payload = raw_pod_payload(
        r#"{"terminationGracePeriodSeconds": -0, "containers": [{"name": "app"}]}"#,
    );
    let response = validate_bytes(&policy, "grace period -0", payload.as_bytes());
    if response["accepted"] == json!(false) {
        assert_rejected_with(&response, &["spec.terminationGracePeriodSeconds"]);
    }
    assert_still_answers(&policy);
}

// ---------------------------------------------------------------------------
// Shape
// ---------------------------------------------------------------------------

/// Duplicate keys: serde_json keeps the last value of a key in a map, as the
/// API server's decoder does; a duplicate field of the payload's own
/// structure is refused.
#[test]
fn duplicate_keys() {
    let policy = Policy::new();
    let payload = raw_pod_payload(
        r#"{"containers": [{"name": "app"}], "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app"}, {"name": "cloud-sql-proxy", "name": "vault-agent"}],
            "terminationGracePeriodSeconds": 60}"#,
    );
    let response = validate_bytes(
        &policy,
        "duplicate keys in the pod spec",
        payload.as_bytes(),
    );
    let spec = &response["mutated_object"]["spec"];
    assert_eq!(
        spec["initContainers"][0]["name"],
        json!("vault-agent"),
        "{response}"
    );
    assert_eq!(spec["terminationGracePeriodSeconds"], json!(60));

    let payload = r#"{"request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE", "operation": "DELETE", "object": {"spec": {}}}, "settings": {}}"#;
    let response = validate_bytes(
        &policy,
        "duplicate field of the request",
        payload.as_bytes(),
    );
    assert_rejected_with(
        &response,
        &["cannot read the admission request", "duplicate field"],
    );

    let payload = r#"{"request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE", "object": {"spec": {"containers": [{"name": "app"}]}}},
        "settings": {"legacySidecars": "reject"}, "settings": {}}"#;
    let response = validate_bytes(&policy, "duplicate settings", payload.as_bytes());
    assert_rejected_with(&response, &["duplicate field `settings`"]);
    assert_still_answers(&policy);
}

#[test]
fn bytes_that_are_not_utf8() {
    let policy = Policy::new();
    let mut payload =
        raw_pod_payload(r#"{"containers": [{"name": "app", "image": "IMAGE"}]}"#).into_bytes();
    let at = payload
        .windows(5)
        .position(|w| w == b"IMAGE")
        .expect("the placeholder");
    payload[at..at + 5].copy_from_slice(b"\xff\xfe\xc3\x28\x80");
    let response = validate_bytes(&policy, "invalid UTF-8 in a string", &payload);
    assert_rejected_with(&response, &["cannot read the admission request"]);

    let response = validate_bytes(&policy, "binary garbage", &[0x00, 0xff, 0x80, 0x7b, 0xc0]);
    assert_rejected_with(&response, &["cannot read the admission request"]);

    // A lone surrogate escape is no Unicode scalar value either.
    let payload = raw_pod_payload(r#"{"containers": [{"name": "app", "image": "\ud800"}]}"#);
    let response = validate_bytes(&policy, "lone surrogate", payload.as_bytes());
    assert_rejected_with(&response, &["cannot read the admission request"]);
    assert_still_answers(&policy);
}

#[test]
fn an_empty_payload() {
    let policy = Policy::new();
    let response = validate_bytes(&policy, "empty payload", b"");
    assert_rejected_with(&response, &["cannot read the admission request"]);
    let response = validate_bytes(&policy, "white space", b" \n\t ");
    assert_rejected_with(&response, &["cannot read the admission request"]);
    assert_still_answers(&policy);
}

#[test]
fn a_payload_that_is_json_but_not_an_object() {
    let policy = Policy::new();
    for payload in [
        "[]",
        "42",
        "\"validate\"",
        "null",
        "true",
        "[{\"request\": {}}]",
    ] {
        let response = validate_bytes(&policy, payload, payload.as_bytes());
        assert_rejected_with(&response, &["cannot read the admission request"]);
    }
    // A payload whose request or object is not an object.
    let response = validate_bytes(&policy, "request 7", br#"{"request": 7, "settings": {}}"#);
    assert_rejected_with(&response, &["cannot read the admission request"]);
    for object in [json!(42), json!("pod"), json!([{"spec": {}}]), json!(true)] {
        let request = json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "object": object});
        let response = validate(&policy, &format!("object {object}"), &request, &json!({}));
        assert_rejected_with(&response, &["object"]);
    }
    assert_still_answers(&policy);
}

#[test]
fn settings_that_are_not_an_object() {
    let policy = Policy::new();
    let request =
        pod_request(json!({"containers": [{"name": "app"}, {"name": "cloud-sql-proxy"}]}));
    for settings in [
        json!([]),
        json!(7),
        json!("convert"),
        json!(true),
        json!([{"legacySidecars": "warn"}]),
    ] {
        let response = validate(
            &policy,
            &format!("settings {settings}"),
            &request,
            &settings,
        );
        assert_rejected_with(&response, &["invalid settings", "must be a JSON object"]);
        let verdict = policy.validate_settings(&settings);
        assert_eq!(verdict["valid"], json!(false), "{verdict}");
        assert!(
            verdict["message"]
                .as_str()
                .is_some_and(|m| m.contains("JSON object")),
            "{verdict}"
        );
    }
    // null settings are the defaults, as hosts send them for a policy without settings
    let response = validate(&policy, "settings null", &request, &Value::Null);
    assert!(response["mutated_object"].is_object(), "{response}");

    // validate_settings with bytes that are no JSON at all
    for bytes in [&b""[..], b"{", b"\xff", b"{\"sidecars\": [}"] {
        let answer = policy
            .call("validate_settings", bytes)
            .unwrap_or_else(|e| panic!("validate_settings trapped on {bytes:?}: {e}"));
        let verdict: Value = serde_json::from_slice(&answer).expect("a JSON answer");
        assert_eq!(verdict["valid"], json!(false), "{verdict}");
        assert!(
            verdict["message"]
                .as_str()
                .is_some_and(|m| m.contains("not valid JSON")),
            "{verdict}"
        );
    }
    // settings nested beyond the recursion limit
    let deep = format!(
        r#"{{"sidecars": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let answer = policy
        .call("validate_settings", deep.as_bytes())
        .unwrap_or_else(|e| panic!("validate_settings trapped on deep settings: {e}"));
    let verdict: Value = serde_json::from_slice(&answer).expect("a JSON answer");
    assert_eq!(verdict["valid"], json!(false), "{verdict}");
    assert_still_answers(&policy);
}

#[test]
fn invalid_settings_reach_validate_as_a_rejection_not_a_trap() {
    // as when a host skips validate_settings
    let policy = Policy::new();
    let request = pod_request(json!({"containers": [{"name": "app"}, {"name": "istio-proxy"}]}));
    let settings = json!({"legacySidecars": "nope"});
    let response = validate(&policy, "legacySidecars nope", &request, &settings);
    assert_rejected_with(&response, &["legacySidecars"]);
    assert_still_answers(&policy);
}
