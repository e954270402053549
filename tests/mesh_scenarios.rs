//! Issue 10, "Know the meshes": what each injector writes, through the
//! compiled policy in the waPC host. SPEC §3 (rules 1-7 and the catalogue of
//! §3.1), §4 (Istio's status record), §5 (the derived startupProbe) and §9
//! (the settings that go with them). `common::evaluate` also checks, on every
//! answer, that only owned fields changed and that a mutation is idempotent.

#[path = "api_rules/mod.rs"]
mod api_rules;
mod common;

use common::{Outcome, defaults, evaluate, evaluate_request, fixture, names};
use serde_json::{Value, json};

/// The warning of a catalogue sidecar's conversion.
fn converted(name: &str) -> String {
    format!("{name}: converted to a native sidecar in initContainers (built-in sidecar)")
}

/// The warning of a derived startupProbe.
fn derived(name: &str, failure_threshold: u64, period_seconds: u64) -> String {
    format!(
        "{name}: startupProbe derived from its readinessProbe \
         ({failure_threshold} x {period_seconds} s = {} s to start)",
        failure_threshold * period_seconds
    )
}

#[track_caller]
fn assert_warnings(outcome: &Outcome, expected: &[&str]) {
    let mut got = outcome.warnings();
    let mut expected = names(expected);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "warnings (in any order)");
}

/// The three `legacySidecars` modes.
fn every_legacy_mode() -> [Value; 3] {
    [
        json!({}),
        json!({"legacySidecars": "reject"}),
        json!({"legacySidecars": "warn"}),
    ]
}

#[track_caller]
fn assert_untouched_and_silent_in_every_mode(request: &Value) {
    for settings in every_legacy_mode() {
        let outcome = evaluate_request(request.clone(), settings.clone());
        assert!(
            outcome.accepted() && outcome.mutated().is_none() && outcome.warnings().is_empty(),
            "with {settings}: expected accepted untouched without warnings, got {:#}",
            outcome.response
        );
    }
}

// ---------------------------------------------------------------------------
// Editing requests
// ---------------------------------------------------------------------------

/// A fixture with an edit applied.
fn with(fixture_name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut request = fixture(fixture_name);
    edit(&mut request);
    request
}

fn request_kind(request: &Value) -> &str {
    request["kind"]["kind"].as_str().unwrap()
}

/// Pointer to the pod's metadata (the Pod's own, or the pod template's).
fn pod_metadata_pointer(kind: &str) -> String {
    let spec = common::pod_spec_pointer(kind);
    format!("{}/metadata", spec.strip_suffix("/spec").unwrap())
}

/// Sets (or with `None` removes) an annotation of the pod (template) metadata
/// of the request's object.
fn set_pod_annotation(request: &mut Value, key: &str, value: Option<&str>) {
    let pointer = pod_metadata_pointer(request_kind(request));
    let metadata = request["object"].pointer_mut(&pointer).unwrap();
    if metadata.get("annotations").is_none_or(Value::is_null) {
        metadata["annotations"] = json!({});
    }
    let annotations = metadata["annotations"].as_object_mut().unwrap();
    match value {
        Some(value) => annotations.insert(key.to_owned(), json!(value)),
        None => annotations.remove(key),
    };
}

/// The container of that name in the request's object (either list).
fn container_mut<'a>(request: &'a mut Value, name: &str) -> &'a mut Value {
    let pointer = common::pod_spec_pointer(request_kind(request));
    let spec = request["object"].pointer_mut(pointer).unwrap();
    let in_init = spec["initContainers"]
        .as_array()
        .is_some_and(|list| list.iter().any(|c| c["name"] == name));
    let list = if in_init {
        "initContainers"
    } else {
        "containers"
    };
    spec[list]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?} in the fixture"))
}

fn set_env(container: &mut Value, name: &str, value: &str) {
    let entry = container["env"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name}"));
    entry["value"] = json!(value);
}

// ---------------------------------------------------------------------------
// Istio's status record
// ---------------------------------------------------------------------------

const ISTIO_STATUS: &str = "sidecar.istio.io/status";

/// The raw `sidecar.istio.io/status` annotation under the metadata at
/// `metadata_pointer` of `object`, if any.
fn status_text<'a>(object: &'a Value, metadata_pointer: &str) -> Option<&'a str> {
    object
        .pointer(&format!("{metadata_pointer}/annotations"))?
        .get(ISTIO_STATUS)?
        .as_str()
}

/// The record, parsed.
#[track_caller]
fn status_record(object: &Value, metadata_pointer: &str) -> Value {
    let text = status_text(object, metadata_pointer)
        .unwrap_or_else(|| panic!("no {ISTIO_STATUS} under {metadata_pointer}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{ISTIO_STATUS} is not JSON: {e}"))
}

/// The record with `moved` taken out of `containers` and appended to
/// `initContainers` (SPEC §4), from the record of the request.
fn record_after_move(before: &Value, moved: &[&str]) -> Value {
    let mut after = before.clone();
    let list = |value: &Value| -> Vec<Value> { value.as_array().cloned().unwrap_or_default() };
    let mut containers = list(&before["containers"]);
    let mut init = list(&before["initContainers"]);
    for name in moved {
        let position = containers.iter().position(|c| c == name);
        if let Some(position) = position {
            containers.remove(position);
            init.push(json!(name));
        }
    }
    after["containers"] = Value::Array(containers);
    after["initContainers"] = Value::Array(init);
    after
}

/// Asserts that the record under `metadata_pointer` was rewritten from the
/// request's by moving `moved` to `initContainers`, as compact JSON.
#[track_caller]
fn assert_record_moved(outcome: &Outcome, metadata_pointer: &str, moved: &[&str]) {
    let before = status_record(&outcome.request["object"], metadata_pointer);
    let mutated = outcome.assert_mutated();
    let after = status_record(mutated, metadata_pointer);
    assert_eq!(
        after,
        record_after_move(&before, moved),
        "{ISTIO_STATUS} under {metadata_pointer}"
    );
    let text = status_text(mutated, metadata_pointer).unwrap();
    assert!(
        !text.contains(": ") && !text.contains(", ") && !text.contains('\n'),
        "the rewritten record is not compact JSON: {text}"
    );
}

// ---------------------------------------------------------------------------
// Rule 1: an injection template (image "auto") is left to the injector
// ---------------------------------------------------------------------------

#[test]
fn istio_gateway_chart_with_image_auto_is_left_for_the_injector() {
    let request = fixture("istio-gateway-chart-auto-image-deployment.json");
    assert_untouched_and_silent_in_every_mode(&request);
}

#[test]
fn image_auto_wins_over_every_declaration_silently() {
    // rule 1 comes before lifecycle.type: Sidecar, the annotation and matchers
    let declared = with("istio-gateway-chart-auto-image-deployment.json", |r| {
        set_pod_annotation(r, "sidecar-lifecycle/containers", Some("istio-proxy"));
        container_mut(r, "istio-proxy")["lifecycle"] = json!({"type": "Sidecar"});
    });
    for settings in [
        json!({}),
        json!({"sidecars": [{"name": "istio-proxy"}]}),
        json!({"sidecars": [{"image": "auto"}], "legacySidecars": "reject"}),
    ] {
        let outcome = evaluate_request(declared.clone(), settings);
        outcome.assert_accepted_untouched();
        outcome.assert_no_warnings();
    }
}

#[test]
fn the_gateway_chart_helper_container_is_not_a_sidecar() {
    // access-log-shipper is in no catalogue: the Deployment has two main containers
    let outcome = evaluate("istio-gateway-chart-auto-image-deployment.json", defaults());
    outcome.assert_order(&[], &["istio-proxy", "access-log-shipper"]);
}

// ---------------------------------------------------------------------------
// istio-proxy: only a pod marked injected has an Istio sidecar
// ---------------------------------------------------------------------------

#[test]
fn istio_override_container_without_injection_record_is_left_for_the_injector() {
    let request = fixture("istio-override-container-deployment.json");
    assert_untouched_and_silent_in_every_mode(&request);
}

#[test]
fn istio_override_container_is_a_sidecar_once_the_pod_is_marked_injected() {
    // the record decides, not the image; a record without initContainers
    // gets one, and the emptied list is written []
    let request = with("istio-override-container-deployment.json", |r| {
        set_pod_annotation(
            r,
            ISTIO_STATUS,
            Some(r#"{"containers":["istio-proxy"],"revision":"default"}"#),
        );
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["istio-proxy"], &["ledger"]);
    outcome.assert_native_sidecar("istio-proxy");
    assert_eq!(
        status_record(outcome.object(), "/spec/template/metadata"),
        json!({"containers": [], "initContainers": ["istio-proxy"], "revision": "default"})
    );
    // no readinessProbe to derive from; preStop sleep 10 + 5 s fits in 45 s
    assert!(
        outcome
            .container("istio-proxy")
            .get("startupProbe")
            .is_none()
    );
    assert_eq!(outcome.tgps(), Some(&json!(45)));
    assert_eq!(outcome.warnings(), [converted("istio-proxy")]);
}

#[test]
fn an_injection_record_on_the_deployment_itself_does_not_mark_its_pods() {
    // only the pod template's metadata is read for a Deployment
    let request = with("istio-override-container-deployment.json", |r| {
        r["object"]["metadata"]["annotations"] =
            json!({ISTIO_STATUS: r#"{"initContainers":null,"containers":["istio-proxy"]}"#});
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn istio_injected_gateway_running_proxy_router_is_the_main_container() {
    let request = fixture("istio-injected-gateway-proxy-router-deployment.json");
    assert_untouched_and_silent_in_every_mode(&request);
    // oauth2-proxy is not a sidecar either: both stay where they are
    let outcome = evaluate_request(request, defaults());
    outcome.assert_order(&[], &["istio-proxy", "oauth2-proxy"]);
}

#[test]
fn istio_proxy_args_exclude_it_only_with_a_mode_other_than_sidecar() {
    let with_args = |args: Value| {
        with("istio-injected-gateway-proxy-router-deployment.json", |r| {
            container_mut(r, "istio-proxy")["args"] = args;
        })
    };
    // `proxy <mode>` with a mode other than sidecar: the proxy is the main container
    for args in [
        json!([
            "proxy",
            "router",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local"
        ]),
        json!([
            "proxy",
            "waypoint",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local"
        ]),
        json!(["proxy", "ztunnel"]),
    ] {
        let outcome = evaluate_request(with_args(args.clone()), defaults());
        assert!(
            outcome.accepted() && outcome.mutated().is_none() && outcome.warnings().is_empty(),
            "args {args}: expected untouched, got {:#}",
            outcome.response
        );
    }
    // mode sidecar, no mode at all, or args that do not start with `proxy`: a sidecar
    for args in [
        json!([
            "proxy",
            "sidecar",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local"
        ]),
        json!(["proxy", "--domain", "$(POD_NAMESPACE).svc.cluster.local"]),
        json!(["proxy"]),
        json!(["router"]),
        json!(["-c", "/etc/envoy/custom.yaml"]),
    ] {
        let outcome = evaluate_request(with_args(args.clone()), defaults());
        assert!(
            outcome.mutated().is_some(),
            "args {args}: expected a conversion"
        );
        outcome.assert_order(&["istio-proxy"], &["oauth2-proxy"]);
        assert_record_moved(&outcome, "/spec/template/metadata", &["istio-proxy"]);
    }
}

#[test]
fn istio_proxy_without_args_is_a_sidecar() {
    let request = with("istio-injected-gateway-proxy-router-deployment.json", |r| {
        container_mut(r, "istio-proxy")
            .as_object_mut()
            .unwrap()
            .remove("args");
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_order(&["istio-proxy"], &["oauth2-proxy"]);
}

#[test]
fn istio_injected_pod_with_overridden_proxy_args_is_converted() {
    // args ["proxy", "--domain", ...]: no mode word, pilot-agent runs a sidecar
    let outcome = evaluate("istio-injected-pod-overridden-proxy-args.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["istio-init", "istio-proxy"], &["search-api"]);
    outcome.assert_native_sidecar("istio-proxy");
    assert_eq!(
        outcome.container("istio-proxy")["args"],
        outcome.request["object"]["spec"]["containers"][1]["args"]
    );
    assert_record_moved(&outcome, "/metadata", &["istio-proxy"]);
    assert_eq!(
        status_record(outcome.object(), "/metadata")["initContainers"],
        json!(["istio-init", "istio-proxy"])
    );
    // Istio's record of the user's override is not the policy's to change
    assert_eq!(
        outcome.object()["metadata"]["annotations"]["proxy.istio.io/overrides"],
        outcome.request["object"]["metadata"]["annotations"]["proxy.istio.io/overrides"]
    );
    assert_eq!(outcome.tgps(), Some(&json!(30)));
    assert_eq!(
        outcome.warnings(),
        [converted("istio-proxy"), derived("istio-proxy", 300, 1)]
    );
}

// ---------------------------------------------------------------------------
// istioctl kube-inject of a CronJob: the record is on the job template
// ---------------------------------------------------------------------------

const JOB_TEMPLATE_METADATA: &str = "/spec/jobTemplate/metadata";
const CRONJOB_POD_METADATA: &str = "/spec/jobTemplate/spec/template/metadata";

#[test]
fn istio_kube_injected_cronjob_is_marked_by_its_job_template_record() {
    let outcome = evaluate("istio-kube-injected-cronjob.json", defaults());
    outcome.assert_mutated();
    assert_eq!(
        outcome.pod_spec_pointer(),
        "/spec/jobTemplate/spec/template/spec"
    );
    outcome.assert_order(&["istio-init", "istio-proxy"], &["sweeper"]);
    outcome.assert_native_sidecar("istio-proxy");
    assert!(
        outcome
            .container("istio-init")
            .get("restartPolicy")
            .is_none()
    );
    assert_eq!(outcome.pod_spec()["restartPolicy"], json!("OnFailure"));
    let proxy = outcome.container("istio-proxy");
    assert_eq!(
        proxy["startupProbe"],
        json!({
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "timeoutSeconds": 3,
            "periodSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 300
        })
    );
    assert_eq!(outcome.tgps(), Some(&json!(30)));
    assert_eq!(
        outcome.warnings(),
        [converted("istio-proxy"), derived("istio-proxy", 300, 1)]
    );
}

#[test]
fn istio_kube_injected_cronjob_record_is_rewritten_on_the_job_template() {
    let outcome = evaluate("istio-kube-injected-cronjob.json", defaults());
    assert_record_moved(&outcome, JOB_TEMPLATE_METADATA, &["istio-proxy"]);
    assert_eq!(
        status_record(outcome.object(), JOB_TEMPLATE_METADATA),
        json!({
            "initContainers": ["istio-init", "istio-proxy"],
            "containers": [],
            "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy",
                        "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
            "imagePullSecrets": null,
            "revision": "default"
        })
    );
    // the pod template had no record and gets none
    assert!(status_text(outcome.object(), CRONJOB_POD_METADATA).is_none());
    assert_eq!(
        outcome.object().pointer(CRONJOB_POD_METADATA),
        outcome.request["object"].pointer(CRONJOB_POD_METADATA)
    );
}

#[test]
fn istio_kube_injected_cronjob_with_both_records_rewrites_both() {
    let outcome = evaluate("istio-kube-injected-cronjob-both-records.json", defaults());
    outcome.assert_order(&["istio-init", "istio-proxy"], &["sweeper"]);
    assert_record_moved(&outcome, JOB_TEMPLATE_METADATA, &["istio-proxy"]);
    assert_record_moved(&outcome, CRONJOB_POD_METADATA, &["istio-proxy"]);
    assert_eq!(
        status_record(outcome.object(), CRONJOB_POD_METADATA),
        status_record(outcome.object(), JOB_TEMPLATE_METADATA)
    );
}

#[test]
fn istio_cronjob_without_any_record_is_not_injected() {
    let request = with("istio-kube-injected-cronjob.json", |r| {
        r["object"]["spec"]["jobTemplate"]["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(ISTIO_STATUS);
    });
    assert_untouched_and_silent_in_every_mode(&request);
}

#[test]
fn istio_kube_injected_cronjob_in_reject_and_warn_modes() {
    let outcome = evaluate(
        "istio-kube-injected-cronjob.json",
        json!({"legacySidecars": "reject"}),
    );
    outcome.assert_rejected_with(&[
        "spec.jobTemplate.spec.template.spec.containers[1] (istio-proxy)",
        "restartPolicy: Always",
    ]);
    let outcome = evaluate(
        "istio-kube-injected-cronjob.json",
        json!({"legacySidecars": "warn"}),
    );
    outcome.assert_accepted_untouched();
    outcome.assert_warning_containing("the Job will never complete");
}

#[test]
fn a_status_record_that_is_not_a_json_object_with_string_lists_is_left_as_it_is() {
    for record in [
        "not json",
        r#"["istio-proxy"]"#,
        r#"{"containers":"istio-proxy"}"#,
        r#"{"containers":["istio-proxy",7]}"#,
    ] {
        let request = with("istio-injected-pod-overridden-proxy-args.json", |r| {
            set_pod_annotation(r, ISTIO_STATUS, Some(record));
        });
        let outcome = evaluate_request(request, defaults());
        // still marked injected: converted, the record untouched
        outcome.assert_order(&["istio-init", "istio-proxy"], &["search-api"]);
        assert_eq!(
            status_text(outcome.object(), "/metadata"),
            Some(record),
            "record {record:?}"
        );
    }
}

#[test]
fn a_status_record_that_does_not_list_the_proxy_keeps_its_lists() {
    let record = r#"{"initContainers":["istio-init"],"containers":["other"],"revision":"canary"}"#;
    let request = with("istio-injected-pod-overridden-proxy-args.json", |r| {
        set_pod_annotation(r, ISTIO_STATUS, Some(record));
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_order(&["istio-init", "istio-proxy"], &["search-api"]);
    let expected: Value = serde_json::from_str(record).unwrap();
    assert_eq!(status_record(outcome.object(), "/metadata"), expected);
}

// ---------------------------------------------------------------------------
// The injectors' own opt-outs
// ---------------------------------------------------------------------------

const ISTIO_NATIVE_SIDECAR: &str = "sidecar.istio.io/nativeSidecar";

#[test]
fn istio_native_sidecar_false_opts_out_silently_in_every_mode() {
    let request = fixture("istio-native-sidecar-opt-out-deployment.json");
    assert_untouched_and_silent_in_every_mode(&request);
    let outcome = evaluate_request(request, json!({"startupProbe": "require"}));
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn istio_native_sidecar_opt_out_compares_the_trimmed_value() {
    let with_value = |value: Option<&str>| {
        with("istio-native-sidecar-opt-out-deployment.json", |r| {
            set_pod_annotation(r, ISTIO_NATIVE_SIDECAR, value);
        })
    };
    let outcome = evaluate_request(with_value(Some(" false ")), defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
    // "true", another spelling (the value is compared exactly: SPEC §3.1), or no annotation
    for value in [Some("true"), Some("False"), None] {
        let outcome = evaluate_request(with_value(value), defaults());
        assert!(
            outcome.mutated().is_some(),
            "{ISTIO_NATIVE_SIDECAR}: {value:?} should not opt out"
        );
        outcome.assert_order(&["istio-init", "istio-proxy"], &["fraud-scoring"]);
        assert_record_moved(&outcome, "/spec/template/metadata", &["istio-proxy"]);
    }
}

#[test]
fn istio_native_sidecar_on_the_deployment_itself_is_not_read() {
    let request = with("istio-native-sidecar-opt-out-deployment.json", |r| {
        set_pod_annotation(r, ISTIO_NATIVE_SIDECAR, None);
        r["object"]["metadata"]["annotations"] = json!({ISTIO_NATIVE_SIDECAR: "false"});
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_order(&["istio-init", "istio-proxy"], &["fraud-scoring"]);
}

const LINKERD_NATIVE_SIDECAR: &str = "config.linkerd.io/proxy-enable-native-sidecar";

/// The Linkerd opt-out fixture with its annotation under `key` set to `value`.
fn linkerd_opt_out(key: &str, value: Option<&str>) -> Value {
    with("linkerd-native-sidecar-opt-out-pod.json", |r| {
        set_pod_annotation(r, LINKERD_NATIVE_SIDECAR, None);
        set_pod_annotation(r, key, value);
    })
}

#[test]
fn linkerd_native_sidecar_false_opts_out_silently_in_every_mode() {
    let request = fixture("linkerd-native-sidecar-opt-out-pod.json");
    assert_untouched_and_silent_in_every_mode(&request);
}

#[test]
fn linkerd_opt_out_is_read_under_its_three_prefixes() {
    for key in [
        "config.linkerd.io/proxy-enable-native-sidecar",
        "config.beta.linkerd.io/proxy-enable-native-sidecar",
        "config.alpha.linkerd.io/proxy-enable-native-sidecar",
    ] {
        for value in ["false", " false "] {
            let outcome = evaluate_request(linkerd_opt_out(key, Some(value)), defaults());
            assert!(
                outcome.accepted() && outcome.mutated().is_none() && outcome.warnings().is_empty(),
                "{key}: {value:?} should opt out silently, got {:#}",
                outcome.response
            );
        }
    }
}

#[test]
fn linkerd_native_sidecar_true_or_absent_does_not_opt_out() {
    for (key, value) in [
        (LINKERD_NATIVE_SIDECAR, Some("true")),
        (
            "config.alpha.linkerd.io/proxy-enable-native-sidecar",
            Some("true"),
        ),
        (LINKERD_NATIVE_SIDECAR, None),
    ] {
        let outcome = evaluate_request(linkerd_opt_out(key, value), defaults());
        assert!(outcome.mutated().is_some(), "{key}: {value:?}");
        outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["quotes"]);
        outcome.assert_native_sidecar("linkerd-proxy");
    }
}

// ---------------------------------------------------------------------------
// Linkerd's identity controller: its proxy gets its certificate from its own pod
// ---------------------------------------------------------------------------

const IDENTITY_ADDR: &str = "LINKERD2_PROXY_IDENTITY_SVC_ADDR";

#[track_caller]
fn assert_identity_warning(outcome: &Outcome) {
    let warnings = outcome.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    for fragment in ["linkerd-proxy", "stays a regular container", IDENTITY_ADDR] {
        assert!(
            warnings[0].contains(fragment),
            "the warning {:?} lacks {fragment:?}",
            warnings[0]
        );
    }
}

#[test]
fn linkerd_identity_controller_keeps_its_proxy_regular_with_a_warning() {
    let outcome = evaluate("linkerd-identity-controller-deployment.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_order(&["linkerd-init"], &["identity", "linkerd-proxy"]);
    assert_identity_warning(&outcome);
}

#[test]
fn linkerd_identity_warning_is_given_in_every_mode_and_never_rejects() {
    for settings in [
        json!({}),
        json!({"legacySidecars": "reject"}),
        json!({"legacySidecars": "warn"}),
        json!({"legacySidecars": "reject", "startupProbe": "require"}),
    ] {
        let outcome = evaluate(
            "linkerd-identity-controller-deployment.json",
            settings.clone(),
        );
        assert!(
            outcome.accepted() && outcome.mutated().is_none(),
            "with {settings}: {:#}",
            outcome.response
        );
        assert_identity_warning(&outcome);
    }
}

#[test]
fn linkerd_identity_addresses_on_the_pod_itself() {
    for address in [
        "localhost.:8080",
        "localhost:8080",
        "localhost",
        "localhost.",
        "127.0.0.1:8080",
        "127.0.0.1",
        "[::1]:8080",
        "[::1]",
    ] {
        let request = with("linkerd-identity-controller-deployment.json", |r| {
            set_env(container_mut(r, "linkerd-proxy"), IDENTITY_ADDR, address);
        });
        let outcome = evaluate_request(request, defaults());
        assert!(outcome.mutated().is_none(), "{address}: converted");
        assert_identity_warning(&outcome);
    }
}

#[test]
fn linkerd_identity_addresses_elsewhere_make_an_ordinary_sidecar() {
    for address in [
        "linkerd-identity-headless.linkerd.svc.cluster.local.:8080",
        "localhost.example.com:8080",
        "127.0.0.2:8080",
    ] {
        let request = with("linkerd-identity-controller-deployment.json", |r| {
            set_env(container_mut(r, "linkerd-proxy"), IDENTITY_ADDR, address);
        });
        let outcome = evaluate_request(request, defaults());
        assert!(outcome.mutated().is_some(), "{address}: not converted");
        outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["identity"]);
        assert_eq!(
            outcome.warnings(),
            [converted("linkerd-proxy"), derived("linkerd-proxy", 300, 1)],
            "{address}"
        );
    }
}

#[test]
fn linkerd_proxy_with_a_remote_identity_service_is_converted() {
    let outcome = evaluate("linkerd-remote-identity-pod.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["stock-api"]);
    outcome.assert_native_sidecar("linkerd-proxy");
    let proxy = outcome.container("linkerd-proxy");
    assert_eq!(
        proxy["startupProbe"],
        json!({
            "httpGet": {"path": "/ready", "port": 4191, "scheme": "HTTP"},
            "initialDelaySeconds": 2,
            "timeoutSeconds": 1,
            "periodSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 300
        })
    );
    // linkerd-await still holds the next container until the proxy is ready
    assert!(proxy["lifecycle"]["postStart"].is_object());
    assert_eq!(outcome.tgps(), Some(&json!(30)));
    assert_eq!(
        outcome.warnings(),
        [converted("linkerd-proxy"), derived("linkerd-proxy", 300, 1)]
    );
}

// ---------------------------------------------------------------------------
// Rule 3: the standard-containers annotation
// ---------------------------------------------------------------------------

const STANDARD_ANNOTATION: &str = "sidecar-lifecycle/standard-containers";

#[test]
fn standard_containers_annotation_keeps_vault_agent_regular_silently() {
    let outcome = evaluate("standard-containers-annotation-deployment.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(
        &["cloud-sql-proxy", "vault-agent-init"],
        &["api", "vault-agent"],
    );
    outcome.assert_native_sidecar("cloud-sql-proxy");
    assert!(
        outcome
            .container("vault-agent")
            .get("restartPolicy")
            .is_none()
    );
    assert_eq!(outcome.warnings(), [converted("cloud-sql-proxy")]);
}

#[test]
fn standard_containers_annotation_reports_names_that_are_not_containers() {
    let request = with("standard-containers-annotation-deployment.json", |r| {
        set_pod_annotation(r, STANDARD_ANNOTATION, Some("vault-agent, ghost"));
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_order(
        &["cloud-sql-proxy", "vault-agent-init"],
        &["api", "vault-agent"],
    );
    assert_warnings(
        &outcome,
        &[
            &converted("cloud-sql-proxy"),
            "annotation sidecar-lifecycle/standard-containers: \"ghost\" is not a container of this pod; ignored",
        ],
    );
}

#[test]
fn standard_containers_annotation_names_only_regular_containers() {
    // an init container's name is not a container of spec.containers: warned about
    let request = with("standard-containers-annotation-deployment.json", |r| {
        set_pod_annotation(r, STANDARD_ANNOTATION, Some("vault-agent,vault-agent-init"));
    });
    let outcome = evaluate_request(request, defaults());
    outcome.assert_warning_containing(
        "annotation sidecar-lifecycle/standard-containers: \"vault-agent-init\" is not a container of this pod; ignored",
    );
}

#[test]
fn standard_containers_annotation_wins_over_declarations_matchers_and_the_catalogue() {
    // rule 3 comes before lifecycle.type: Sidecar (rule 4) and matchers (rule 6)
    let request = with("standard-containers-annotation-deployment.json", |r| {
        container_mut(r, "vault-agent")["lifecycle"] = json!({"type": "Sidecar"});
    });
    let outcome = evaluate_request(request, json!({"sidecars": [{"name": "vault-*"}]}));
    outcome.assert_order(
        &["cloud-sql-proxy", "vault-agent-init"],
        &["api", "vault-agent"],
    );
    // the mutated object carries no lifecycle.type, and the opt-out is silent
    assert!(outcome.container("vault-agent").get("lifecycle").is_none());
    assert_eq!(outcome.warnings(), [converted("cloud-sql-proxy")]);
}

#[test]
fn standard_containers_annotation_in_reject_mode_spares_the_opted_out_container() {
    let outcome = evaluate(
        "standard-containers-annotation-deployment.json",
        json!({"legacySidecars": "reject"}),
    );
    outcome.assert_rejected_with(&["spec.template.spec.containers[2] (cloud-sql-proxy)"]);
    assert!(
        !outcome.message().contains("(vault-agent)"),
        "{}",
        outcome.message()
    );
}

#[test]
fn standard_annotation_off_or_null() {
    // off: vault-agent is a catalogue sidecar again, converted in its original order
    let outcome = evaluate(
        "standard-containers-annotation-deployment.json",
        json!({"standardAnnotation": ""}),
    );
    outcome.assert_order(
        &["vault-agent", "cloud-sql-proxy", "vault-agent-init"],
        &["api"],
    );
    // null means the default key
    let outcome = evaluate(
        "standard-containers-annotation-deployment.json",
        json!({"standardAnnotation": null}),
    );
    outcome.assert_order(
        &["cloud-sql-proxy", "vault-agent-init"],
        &["api", "vault-agent"],
    );
}

#[test]
fn a_name_in_both_annotations_stays_regular_with_a_warning() {
    let outcome = evaluate("both-annotations-deployment.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["log-shipper"], &["web", "audit-tap"]);
    outcome.assert_native_sidecar("log-shipper");
    let warnings = outcome.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings.contains(
        &"log-shipper: converted to a native sidecar in initContainers (named in annotation sidecar-lifecycle/containers)"
            .to_string()
    ));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("audit-tap") && w.contains("both")),
        "{warnings:#?}"
    );
}

#[test]
fn both_annotations_with_one_of_them_off() {
    // the standard annotation off: audit-tap is declared like log-shipper
    let outcome = evaluate(
        "both-annotations-deployment.json",
        json!({"standardAnnotation": ""}),
    );
    outcome.assert_order(&["log-shipper", "audit-tap"], &["web"]);
    assert!(outcome.warnings().iter().all(|w| !w.contains("both")));
    // the sidecar annotation off: nothing is declared, audit-tap opts out silently
    let outcome = evaluate(
        "both-annotations-deployment.json",
        json!({"sidecarAnnotation": ""}),
    );
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn custom_standard_annotation_key_keeps_daprd_regular() {
    let settings = json!({"standardAnnotation": "platform.example.com/keep-regular"});
    let outcome = evaluate("custom-standard-annotation-pod.json", settings.clone());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
    // with its own key the default key means nothing
    let request = with("custom-standard-annotation-pod.json", |r| {
        set_pod_annotation(r, "platform.example.com/keep-regular", None);
        set_pod_annotation(r, STANDARD_ANNOTATION, Some("daprd"));
    });
    let outcome = evaluate_request(request, settings);
    outcome.assert_order(&["daprd"], &["orders"]);
}

#[test]
fn custom_standard_annotation_key_means_nothing_with_the_defaults() {
    let outcome = evaluate("custom-standard-annotation-pod.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["daprd"], &["orders"]);
    outcome.assert_native_sidecar("daprd");
    assert_eq!(
        outcome.container("daprd")["startupProbe"],
        json!({
            "httpGet": {"path": "/v1.0/healthz", "port": 3501, "scheme": "HTTP"},
            "initialDelaySeconds": 3,
            "timeoutSeconds": 3,
            "periodSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 300
        })
    );
    assert_eq!(
        outcome.warnings(),
        [converted("daprd"), derived("daprd", 300, 1)]
    );
}

// ---------------------------------------------------------------------------
// §7: `cloud-sql-proxy shutdown` makes the proxy exit early
// ---------------------------------------------------------------------------

#[test]
fn cloud_sql_proxy_shutdown_pre_stop_is_converted_with_a_hygiene_warning() {
    let outcome = evaluate(
        "cloud-sql-proxy-shutdown-prestop-deployment.json",
        defaults(),
    );
    outcome.assert_mutated();
    outcome.assert_order(&["cloud-sql-proxy"], &["reconciler"]);
    outcome.assert_native_sidecar("cloud-sql-proxy");
    let proxy = outcome.container("cloud-sql-proxy");
    // its own startupProbe is kept as it is; the hook too
    assert_eq!(
        proxy["startupProbe"],
        outcome.request["object"]["spec"]["template"]["spec"]["containers"][1]["startupProbe"]
    );
    assert_eq!(
        proxy["lifecycle"]["preStop"]["exec"]["command"],
        json!(["/cloud-sql-proxy", "shutdown", "--admin-port", "9092"])
    );
    assert_eq!(outcome.tgps(), Some(&json!(30)));
    let warnings = outcome.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings.contains(&converted("cloud-sql-proxy")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("cloud-sql-proxy") && w.contains("shutdown")),
        "{warnings:#?}"
    );
}

#[test]
fn cloud_sql_proxy_shutdown_pre_stop_is_warned_about_on_a_legacy_sidecar_too() {
    let outcome = evaluate(
        "cloud-sql-proxy-shutdown-prestop-deployment.json",
        json!({"legacySidecars": "warn"}),
    );
    outcome.assert_accepted_untouched();
    assert!(
        outcome
            .warnings()
            .iter()
            .any(|w| w.contains("cloud-sql-proxy") && w.contains("shutdown")),
        "{:#?}",
        outcome.warnings()
    );
}

// ---------------------------------------------------------------------------
// Requests as a cluster sends them (every API-server default applied)
// ---------------------------------------------------------------------------

/// Asserts that a fixture and its as-cluster-sends variant give the same
/// answer, the objects compared after `align` makes the original's mutated
/// object carry the defaults the variant has.
#[track_caller]
fn assert_same_conversion(original: &str, as_sent: &str, align: impl Fn(&mut Value)) {
    let manifest = evaluate(original, defaults());
    let sent = evaluate(as_sent, defaults());
    assert_eq!(sent.warnings(), manifest.warnings(), "warnings");
    let mut expected = manifest.assert_mutated().clone();
    align(&mut expected);
    assert_eq!(sent.assert_mutated(), &expected, "mutated objects");
}

#[test]
fn istio_injected_deployment_as_a_cluster_sends_it() {
    let outcome = evaluate(
        "istio-injected-deployment-as-cluster-sends.json",
        defaults(),
    );
    outcome.assert_order(&["istio-init", "istio-proxy"], &["checkout"]);
    // the defaulted 30 s stays (1 sidecar x 5 s fits) and no warning mentions it
    assert_eq!(outcome.tgps(), Some(&json!(30)));
    assert_eq!(
        outcome.warnings(),
        [converted("istio-proxy"), derived("istio-proxy", 300, 1)]
    );
    assert_record_moved(&outcome, "/spec/template/metadata", &["istio-proxy"]);
    assert_same_conversion(
        "istio-injected-deployment.json",
        "istio-injected-deployment-as-cluster-sends.json",
        |object| object["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(30),
    );
}

#[test]
fn linkerd_injected_pod_as_a_cluster_sends_it() {
    // linkerd-injected-pod.json already carries every API-server default
    let outcome = evaluate("linkerd-injected-pod.json", defaults());
    outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["web"]);
    assert_eq!(outcome.tgps(), Some(&json!(30)));
    assert_eq!(
        outcome.container("linkerd-proxy")["startupProbe"],
        json!({"httpGet": {"path": "/ready", "port": 4191, "scheme": "HTTP"}, "initialDelaySeconds": 2,
            "timeoutSeconds": 1, "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 300})
    );
}

#[test]
fn cloud_sql_proxy_job_as_a_cluster_sends_it() {
    let outcome = evaluate("cloud-sql-proxy-job-as-cluster-sends.json", defaults());
    outcome.assert_order(&["cloud-sql-proxy"], &["migrate"]);
    outcome.assert_native_sidecar("cloud-sql-proxy");
    // the Job's own fields are not the policy's: manualSelector stays, no selector appears
    let job = outcome.object();
    assert_eq!(job["spec"]["manualSelector"], json!(false));
    assert!(job["spec"].get("selector").is_none());
    assert_same_conversion(
        "cloud-sql-proxy-job.json",
        "cloud-sql-proxy-job-as-cluster-sends.json",
        |object| object["spec"]["manualSelector"] = json!(false),
    );
}

// ---------------------------------------------------------------------------
// §5: the derived startupProbe probes every startupProbePeriodSeconds
// ---------------------------------------------------------------------------

/// istio-proxy of this fixture: readinessProbe httpGet /healthz/ready:15021,
/// timeout 3, period 15 (P), failure 4 (R), success 1.
const ISTIO_CLUSTER_SENDS: &str = "istio-injected-deployment-as-cluster-sends.json";

fn readiness_handler() -> Value {
    json!({"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"})
}

/// The startupProbe derived for istio-proxy with `settings`, and the warnings.
fn derived_istio_probe(request: Value, settings: Value) -> (Value, Vec<String>) {
    let outcome = evaluate_request(request, settings);
    outcome.assert_native_sidecar("istio-proxy");
    (
        outcome.container("istio-proxy")["startupProbe"].clone(),
        outcome.warnings(),
    )
}

#[track_caller]
fn assert_derived_period(settings: Value, period: u64, threshold: u64) {
    let (probe, warnings) = derived_istio_probe(fixture(ISTIO_CLUSTER_SENDS), settings.clone());
    assert_eq!(
        probe,
        json!({
            "httpGet": readiness_handler(),
            "timeoutSeconds": 3,
            "periodSeconds": period,
            "successThreshold": 1,
            "failureThreshold": threshold
        }),
        "with {settings}"
    );
    assert!(
        warnings.contains(&derived("istio-proxy", threshold, period)),
        "with {settings}: {warnings:#?}"
    );
}

#[test]
fn derived_probe_defaults_to_every_second_over_the_window() {
    // period min(15, 1) = 1, failureThreshold max(4, ceil(300 / 1)) = 300
    assert_derived_period(json!({}), 1, 300);
}

#[test]
fn derived_probe_period_setting() {
    assert_derived_period(json!({"startupProbePeriodSeconds": 5}), 5, 60);
    // ceil(300 / 7) = 43
    assert_derived_period(json!({"startupProbePeriodSeconds": 7}), 7, 43);
    // 0 means the readiness period
    assert_derived_period(json!({"startupProbePeriodSeconds": 0}), 15, 20);
    // never slower than the readiness probe: capped at P
    assert_derived_period(json!({"startupProbePeriodSeconds": 15}), 15, 20);
    assert_derived_period(json!({"startupProbePeriodSeconds": 60}), 15, 20);
}

#[test]
fn derived_probe_window_zero_keeps_the_readiness_period_and_threshold() {
    for period in [json!(null), json!(0), json!(1), json!(5), json!(60)] {
        assert_derived_period(
            json!({"startupProbeWindowSeconds": 0, "startupProbePeriodSeconds": period}),
            15,
            4,
        );
    }
}

#[test]
fn derived_probe_threshold_is_never_below_the_readiness_threshold() {
    // ceil(2 / 1) = 2 < R = 4
    assert_derived_period(json!({"startupProbeWindowSeconds": 2}), 1, 4);
    // ceil(45 / 5) = 9
    assert_derived_period(
        json!({"startupProbeWindowSeconds": 45, "startupProbePeriodSeconds": 5}),
        5,
        9,
    );
}

#[test]
fn derived_probe_threshold_is_capped_at_int32_max() {
    let (probe, _) = derived_istio_probe(
        fixture(ISTIO_CLUSTER_SENDS),
        // above what an int32 holds (ceil(W / 1) = W)
        json!({"startupProbeWindowSeconds": 3_000_000_000_u64}),
    );
    assert_eq!(probe["periodSeconds"], json!(1));
    assert_eq!(probe["failureThreshold"], json!(2_147_483_647));
}

#[test]
fn derived_probe_uses_the_api_defaults_of_a_readiness_probe_without_timing() {
    // a manifest's probe: P defaults to 10, R to 3
    let request = with(ISTIO_CLUSTER_SENDS, |r| {
        let readiness = &mut container_mut(r, "istio-proxy")["readinessProbe"];
        let readiness = readiness.as_object_mut().unwrap();
        for field in ["periodSeconds", "failureThreshold", "successThreshold"] {
            readiness.remove(field);
        }
    });
    let (probe, warnings) = derived_istio_probe(request.clone(), defaults());
    assert_eq!(probe["periodSeconds"], json!(1));
    assert_eq!(probe["failureThreshold"], json!(300));
    assert!(warnings.contains(&derived("istio-proxy", 300, 1)));
    let (probe, warnings) =
        derived_istio_probe(request.clone(), json!({"startupProbeWindowSeconds": 0}));
    assert_eq!(probe["periodSeconds"], json!(10));
    assert_eq!(probe["failureThreshold"], json!(3));
    assert!(warnings.contains(&derived("istio-proxy", 3, 10)));
    let (probe, _) = derived_istio_probe(request, json!({"startupProbePeriodSeconds": 0}));
    assert_eq!(probe["periodSeconds"], json!(10));
    assert_eq!(probe["failureThreshold"], json!(30));
}

#[test]
fn derived_probe_copies_only_the_handler_timeout_and_initial_delay() {
    let request = with(ISTIO_CLUSTER_SENDS, |r| {
        let readiness = &mut container_mut(r, "istio-proxy")["readinessProbe"];
        readiness["initialDelaySeconds"] = json!(7);
        readiness["successThreshold"] = json!(2);
        // not allowed on a readinessProbe by the API server, and not the startupProbe's
        readiness["terminationGracePeriodSeconds"] = json!(12);
    });
    let (probe, _) = derived_istio_probe(request, defaults());
    assert_eq!(
        probe,
        json!({
            "httpGet": readiness_handler(),
            "initialDelaySeconds": 7,
            "timeoutSeconds": 3,
            "periodSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 300
        })
    );
}

#[test]
fn derived_probe_copies_each_kind_of_handler() {
    for (kind, handler) in [
        ("tcpSocket", json!({"port": 15021})),
        (
            "exec",
            json!({"command": ["pilot-agent", "request", "GET", "healthz/ready"]}),
        ),
        ("grpc", json!({"port": 15021, "service": "ready"})),
    ] {
        let request = with(ISTIO_CLUSTER_SENDS, |r| {
            let readiness = &mut container_mut(r, "istio-proxy")["readinessProbe"];
            readiness.as_object_mut().unwrap().remove("httpGet");
            readiness[kind] = handler.clone();
        });
        let (probe, _) = derived_istio_probe(request, defaults());
        assert_eq!(
            probe,
            json!({
                kind: handler,
                "timeoutSeconds": 3,
                "periodSeconds": 1,
                "successThreshold": 1,
                "failureThreshold": 300
            }),
            "{kind}"
        );
    }
}

#[test]
fn derived_probe_on_an_already_native_sidecar_probes_every_second_too() {
    // vault-agent: exec readinessProbe, period 5, failure 3
    let outcome = evaluate("native-sidecar-without-startup-probe-pod.json", defaults());
    let agent = outcome.container("vault-agent");
    assert_eq!(agent["startupProbe"]["periodSeconds"], json!(1));
    assert_eq!(agent["startupProbe"]["failureThreshold"], json!(300));
    let outcome = evaluate(
        "native-sidecar-without-startup-probe-pod.json",
        json!({"startupProbePeriodSeconds": 0}),
    );
    let agent = outcome.container("vault-agent");
    assert_eq!(agent["startupProbe"]["periodSeconds"], json!(5));
    assert_eq!(agent["startupProbe"]["failureThreshold"], json!(60));
    assert_eq!(outcome.warnings(), [derived("vault-agent", 60, 5)]);
}

// ---------------------------------------------------------------------------
// §9: the settings of issue 10
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_valid(settings: Value) {
    let answer = common::Policy::new().validate_settings(&settings);
    assert_eq!(
        answer["valid"],
        json!(true),
        "{settings} should be valid: {answer}"
    );
}

#[track_caller]
fn assert_invalid(settings: Value, names_key: &str) {
    let answer = common::Policy::new().validate_settings(&settings);
    assert_eq!(
        answer["valid"],
        json!(false),
        "{settings} should be invalid: {answer}"
    );
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(names_key),
        "{settings}: the message does not name {names_key}: {message:?}"
    );
}

#[test]
fn standard_annotation_setting_is_an_annotation_key_or_off() {
    assert_valid(json!({"standardAnnotation": "platform.example.com/keep-regular"}));
    assert_valid(json!({"standardAnnotation": "keep-regular"}));
    assert_valid(json!({"standardAnnotation": ""}));
    assert_valid(json!({"standardAnnotation": null}));
    assert_invalid(
        json!({"standardAnnotation": "not a key!"}),
        "standardAnnotation",
    );
    assert_invalid(
        json!({"standardAnnotation": "example.com/a/b"}),
        "standardAnnotation",
    );
    assert_invalid(json!({"standardAnnotation": 7}), "standardAnnotation");
}

#[test]
fn the_two_annotation_keys_must_differ_unless_one_is_off() {
    // against the other's default
    assert_invalid(
        json!({"standardAnnotation": "sidecar-lifecycle/containers"}),
        "standardAnnotation",
    );
    assert_invalid(
        json!({"sidecarAnnotation": "sidecar-lifecycle/standard-containers"}),
        "sidecarAnnotation",
    );
    // against each other
    assert_invalid(
        json!({"sidecarAnnotation": "example.com/x", "standardAnnotation": "example.com/x"}),
        "standardAnnotation",
    );
    // one of them off
    assert_valid(
        json!({"standardAnnotation": "sidecar-lifecycle/containers", "sidecarAnnotation": ""}),
    );
    assert_valid(
        json!({"sidecarAnnotation": "sidecar-lifecycle/standard-containers", "standardAnnotation": ""}),
    );
    assert_valid(json!({"sidecarAnnotation": "", "standardAnnotation": ""}));
    // swapped
    assert_valid(json!({
        "sidecarAnnotation": "sidecar-lifecycle/standard-containers",
        "standardAnnotation": "sidecar-lifecycle/containers"
    }));
}

#[test]
fn startup_probe_period_setting_is_a_non_negative_integer() {
    for value in [
        json!(0),
        json!(1),
        json!(5),
        json!(3600),
        json!(null),
        json!(""),
    ] {
        assert_valid(json!({"startupProbePeriodSeconds": value}));
    }
    for value in [json!(-1), json!("5"), json!(1.5), json!(true), json!([1])] {
        assert_invalid(
            json!({"startupProbePeriodSeconds": value}),
            "startupProbePeriodSeconds",
        );
    }
}

#[test]
fn an_empty_string_means_the_default_for_numbers_and_choices() {
    let cleared = json!({
        "startupProbePeriodSeconds": "",
        "startupProbeWindowSeconds": "",
        "legacySidecars": "",
        "startupProbe": "",
        "terminationGracePeriod": {
            "minSeconds": "",
            "maxSeconds": "",
            "sidecarShutdownSeconds": "",
            "appShutdownSeconds": "",
            "onViolation": ""
        }
    });
    assert_valid(cleared.clone());
    // and it behaves as the defaults
    for fixture_name in [
        ISTIO_CLUSTER_SENDS,
        "istio-kube-injected-cronjob.json",
        "linkerd-identity-controller-deployment.json",
        "standard-containers-annotation-deployment.json",
    ] {
        let with_defaults = evaluate(fixture_name, defaults());
        let with_cleared = evaluate(fixture_name, cleared.clone());
        assert_eq!(
            with_cleared.response, with_defaults.response,
            "{fixture_name}"
        );
    }
}

#[test]
fn an_empty_string_is_not_a_bool() {
    // builtinSidecars is neither a number nor a choice: "" is a wrong type
    assert_invalid(json!({"builtinSidecars": ""}), "builtinSidecars");
    assert_valid(json!({"builtinSidecars": null}));
}

// ---------------------------------------------------------------------------
// §8: one short warning per change
// ---------------------------------------------------------------------------

#[test]
fn mesh_warnings_are_short() {
    for fixture_name in [
        "istio-override-container-deployment.json",
        "istio-kube-injected-cronjob.json",
        "istio-injected-pod-overridden-proxy-args.json",
        "linkerd-identity-controller-deployment.json",
        "linkerd-remote-identity-pod.json",
        "standard-containers-annotation-deployment.json",
        "both-annotations-deployment.json",
        "custom-standard-annotation-pod.json",
        "cloud-sql-proxy-shutdown-prestop-deployment.json",
    ] {
        for warning in evaluate(fixture_name, defaults()).warnings() {
            assert!(
                warning.len() <= 120,
                "{fixture_name}: warning over 120 characters: {warning}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The fixtures are pods the API server accepts, and so is what the policy
// makes of them
// ---------------------------------------------------------------------------

const MESH_FIXTURES: &[&str] = &[
    "istio-gateway-chart-auto-image-deployment.json",
    "istio-override-container-deployment.json",
    "istio-injected-gateway-proxy-router-deployment.json",
    "istio-kube-injected-cronjob.json",
    "istio-kube-injected-cronjob-both-records.json",
    "istio-injected-pod-overridden-proxy-args.json",
    "istio-native-sidecar-opt-out-deployment.json",
    "linkerd-native-sidecar-opt-out-pod.json",
    "linkerd-identity-controller-deployment.json",
    "linkerd-remote-identity-pod.json",
    "standard-containers-annotation-deployment.json",
    "both-annotations-deployment.json",
    "custom-standard-annotation-pod.json",
    "cloud-sql-proxy-shutdown-prestop-deployment.json",
    "istio-injected-deployment-as-cluster-sends.json",
    "linkerd-injected-pod.json",
    "cloud-sql-proxy-job-as-cluster-sends.json",
];

#[test]
fn mesh_fixtures_and_their_conversions_pass_the_api_server_rules() {
    for fixture_name in MESH_FIXTURES {
        let outcome = evaluate(fixture_name, defaults());
        assert!(outcome.accepted(), "{fixture_name}: {}", outcome.message());
        let pointer = outcome.pod_spec_pointer();
        let before = outcome.request["object"].pointer(pointer).unwrap();
        let found = api_rules::violations(before);
        assert!(found.is_empty(), "{fixture_name}: {found:#?}");
        let found = api_rules::violations(outcome.pod_spec());
        assert!(found.is_empty(), "{fixture_name}, as admitted: {found:#?}");
    }
}
