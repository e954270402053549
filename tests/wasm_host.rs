//! The compiled module speaks the waPC protocol the way kwctl and
//! policy-server expect, and the harness's mutation checker catches what it
//! is meant to catch.

mod common;

use common::{Policy, assert_only_owned_fields_changed, assert_pod_spec_parses};
use serde_json::{Value, json};

#[test]
fn protocol_version_is_v1() {
    assert_eq!(Policy::new().protocol_version(), "v1");
}

#[test]
fn empty_settings_are_valid() {
    let answer = Policy::new().validate_settings(&json!({}));
    // The SDK's SettingsValidationResponse writes `"message": null`.
    assert_eq!(answer["valid"], json!(true), "{answer}");
    assert!(answer["message"].is_null(), "{answer}");
}

#[test]
fn unknown_operations_are_guest_errors() {
    assert!(Policy::new().call("no_such_operation", b"{}").is_err());
}

// The checker itself, on hand-written objects (no policy involved).

/// A Deployment whose `proxy` is a legacy sidecar.
fn deployment_with_legacy_sidecar() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {
            "containers": [
                {"name": "app", "image": "app:1"},
                {"name": "proxy", "image": "proxy:1", "lifecycle": {"type": "Sidecar"},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 15021}}}
            ]
        }}}
    })
}

/// The same Deployment with `proxy` converted the way the spec describes.
fn deployment_converted() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {
            "terminationGracePeriodSeconds": 35,
            "initContainers": [
                {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always",
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 15021}},
                 "startupProbe": {"httpGet": {"path": "/ready", "port": 15021},
                                  "successThreshold": 1, "failureThreshold": 30}}
            ],
            "containers": [{"name": "app", "image": "app:1"}]
        }}}
    })
}

const TEMPLATE: &str = "/spec/template/spec";

#[test]
fn checker_accepts_a_conversion() {
    let converted = deployment_converted();
    assert_pod_spec_parses(&converted, TEMPLATE);
    assert_only_owned_fields_changed(&deployment_with_legacy_sidecar(), &converted, TEMPLATE);
}

#[test]
#[should_panic(expected = "/spec/template/spec/<containers by name>/app/image")]
fn checker_rejects_a_changed_image() {
    let mut converted = deployment_converted();
    converted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:2");
    assert_only_owned_fields_changed(&deployment_with_legacy_sidecar(), &converted, TEMPLATE);
}

#[test]
#[should_panic(expected = "lost, added or duplicated")]
fn checker_rejects_a_lost_container() {
    let mut converted = deployment_converted();
    converted["spec"]["template"]["spec"]["initContainers"] = json!([]);
    assert_only_owned_fields_changed(&deployment_with_legacy_sidecar(), &converted, TEMPLATE);
}

#[test]
#[should_panic(expected = "without restartPolicy: Always")]
fn checker_rejects_a_move_without_restart_policy() {
    let mut converted = deployment_converted();
    converted["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"] =
        json!("OnFailure");
    assert_only_owned_fields_changed(&deployment_with_legacy_sidecar(), &converted, TEMPLATE);
}

#[test]
#[should_panic(expected = "/metadata/labels: added")]
fn checker_rejects_changes_outside_the_pod_spec() {
    let mut converted = deployment_converted();
    converted["metadata"]["labels"] = json!({"converted": "true"});
    assert_only_owned_fields_changed(&deployment_with_legacy_sidecar(), &converted, TEMPLATE);
}

#[test]
#[should_panic(expected = "does not parse as a Kubernetes PodSpec")]
fn checker_rejects_an_unparseable_pod_spec() {
    let mut converted = deployment_converted();
    converted["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!("35");
    assert_pod_spec_parses(&converted, TEMPLATE);
}

// validate_settings through the module: the settings of SPEC revision 4.

/// The answer to `validate_settings` for `settings`: `Ok` when valid, the
/// message otherwise.
fn settings_verdict(settings: Value) -> Result<(), String> {
    let answer = Policy::new().validate_settings(&settings);
    match answer["valid"].as_bool() {
        Some(true) => Ok(()),
        Some(false) => Err(answer["message"].as_str().unwrap_or_default().to_string()),
        None => panic!("validate_settings answered no boolean `valid`: {answer}"),
    }
}

const VALID_ENTRIES: &str = "istio-proxy, linkerd-proxy, vault-agent, cloud-sql-proxy, daprd, consul-dataplane, otc-container";

#[test]
fn builtin_sidecars_is_a_bool_or_a_list_of_catalogue_entries() {
    for valid in [
        json!({"builtinSidecars": true}),
        json!({"builtinSidecars": false}),
        json!({"builtinSidecars": null}),
        json!({"builtinSidecars": []}),
        json!({"builtinSidecars": ["vault-agent"]}),
        json!({"builtinSidecars": ["istio-proxy", "linkerd-proxy", "vault-agent", "cloud-sql-proxy",
            "daprd", "consul-dataplane", "otc-container"]}),
    ] {
        assert_eq!(settings_verdict(valid.clone()), Ok(()), "{valid}");
    }
    assert_eq!(
        settings_verdict(json!({"builtinSidecars": ["vault-agent", "envoy"]})),
        Err(format!(
            "builtinSidecars[1]: \"envoy\" is not a built-in sidecar; valid: {VALID_ENTRIES}"
        ))
    );
    // an entry is named by its first name, exactly
    for unknown in [
        "consul-dataplane-*",
        "consul-dataplane-web",
        "Istio-proxy",
        "",
    ] {
        let message = settings_verdict(json!({"builtinSidecars": [unknown]})).unwrap_err();
        assert!(message.starts_with("builtinSidecars[0]: "), "{message}");
        assert!(message.ends_with(VALID_ENTRIES), "{message}");
    }
    for wrong in [
        json!("istio-proxy"),
        json!(""),
        json!(1),
        json!({"istio-proxy": true}),
        json!([null]),
    ] {
        let message = settings_verdict(json!({"builtinSidecars": wrong})).unwrap_err();
        assert!(message.starts_with("builtinSidecars"), "{message}");
        assert!(message.contains(VALID_ENTRIES), "{message}");
    }
}

#[test]
fn native_injection_is_a_bool() {
    for valid in [json!(true), json!(false), Value::Null] {
        assert_eq!(settings_verdict(json!({"nativeInjection": valid})), Ok(()));
    }
    for wrong in [json!(""), json!("false"), json!(0), json!([])] {
        assert_eq!(
            settings_verdict(json!({"nativeInjection": wrong})),
            Err("nativeInjection: must be true or false".to_string())
        );
    }
}
