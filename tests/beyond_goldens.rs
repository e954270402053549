//! What a golden file cannot say, through the compiled module in the waPC
//! host. Every scenario's answer is in its golden (tests/goldens.rs); here
//! are only:
//!
//! - sweeps: one fixture edited in code for each of many values (argument
//!   forms, annotation spellings, addresses, probe shapes), each edit's
//!   answer asserted;
//! - relations between answers: a request as a cluster sends it answers as
//!   its manifest, cleared settings answer as the defaults, a re-applied
//!   manifest folds back into the stored template, and a second apply of
//!   every converted workload gives back what the first stored;
//! - settings validation, the API server's rules on the mesh fixtures, and
//!   the length of every recorded warning.
//!
//! `common::evaluate` checks on every answer the response shape, that only
//! owned fields changed, that the pod spec parses, and idempotence.

#[path = "api_rules/mod.rs"]
mod api_rules;
mod common;

use common::{
    GOLDEN_SUFFIX, Outcome, defaults, differences, evaluate, evaluate_request, fixture,
    pod_spec_pointer,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Editing fixtures
// ---------------------------------------------------------------------------

/// A fixture with an edit applied.
fn with(fixture_name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut request = fixture(fixture_name);
    edit(&mut request);
    request
}

fn kind_of(request: &Value) -> &str {
    request["kind"]["kind"].as_str().expect("a kind.kind")
}

/// Pointer to the pod's metadata: the Pod's own, or the pod template's.
fn pod_metadata_pointer(kind: &str) -> String {
    let spec = pod_spec_pointer(kind);
    format!("{}/metadata", spec.strip_suffix("/spec").unwrap())
}

/// Sets (or with `None` removes) an annotation of the pod (template).
fn set_pod_annotation(request: &mut Value, key: &str, value: Option<&str>) {
    let pointer = pod_metadata_pointer(kind_of(request));
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

/// The container of that name in `spec.containers` of the request's object.
fn container_mut<'a>(request: &'a mut Value, name: &str) -> &'a mut Value {
    let pointer = format!("{}/containers", pod_spec_pointer(kind_of(request)));
    request["object"]
        .pointer_mut(&pointer)
        .and_then(Value::as_array_mut)
        .and_then(|list| list.iter_mut().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name:?} in the fixture"))
}

#[track_caller]
fn assert_untouched_and_silent(outcome: &Outcome, case: &str) {
    assert!(
        outcome.accepted() && outcome.mutated().is_none() && outcome.warnings().is_empty(),
        "{case}: expected accepted untouched without warnings, got {:#}",
        outcome.response
    );
}

/// Asserts a conversion of istio-proxy with Istio's record, on the pod
/// (template), rewritten to list it last among the init containers (the
/// harness checks that the rewrite is only such a move).
#[track_caller]
fn assert_istio_proxy_converted(outcome: &Outcome, init: &[&str], containers: &[&str]) {
    outcome.assert_mutated();
    outcome.assert_order(init, containers);
    outcome.assert_native_sidecar("istio-proxy");
    let pointer = format!(
        "{}/annotations/sidecar.istio.io~1status",
        pod_metadata_pointer(kind_of(&outcome.request))
    );
    let record = outcome
        .object()
        .pointer(&pointer)
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .unwrap_or_else(|| panic!("no JSON record at {pointer}"));
    assert_eq!(
        record["initContainers"]
            .as_array()
            .and_then(|names| names.last()),
        Some(&json!("istio-proxy")),
        "{record}"
    );
}

// ---------------------------------------------------------------------------
// Sweeps: Istio (SPEC §3.1, §4)
// ---------------------------------------------------------------------------

#[test]
fn istio_proxy_args_exclude_it_only_with_a_mode_other_than_sidecar() {
    const GATEWAY: &str = "istio-injected-gateway-proxy-router-deployment.json";
    let domain = "$(POD_NAMESPACE).svc.cluster.local";
    let with_args = |args: Option<Value>| {
        with(GATEWAY, |r| {
            let proxy = container_mut(r, "istio-proxy").as_object_mut().unwrap();
            match args {
                Some(args) => proxy.insert("args".to_owned(), args),
                None => proxy.remove("args"),
            };
        })
    };
    // `proxy <mode>` with a mode other than sidecar: the main container
    for args in [
        json!(["proxy", "router", "--domain", domain]),
        json!(["proxy", "waypoint", "--domain", domain]),
        json!(["proxy", "ztunnel"]),
    ] {
        let outcome = evaluate_request(with_args(Some(args.clone())), defaults());
        assert_untouched_and_silent(&outcome, &args.to_string());
    }
    // mode sidecar, no mode, args that do not start with `proxy`, or none
    for args in [
        Some(json!(["proxy", "sidecar", "--domain", domain])),
        Some(json!(["proxy", "--domain", domain])),
        Some(json!(["proxy"])),
        Some(json!(["router"])),
        Some(json!(["-c", "/etc/envoy/custom.yaml"])),
        None,
    ] {
        let outcome = evaluate_request(with_args(args), defaults());
        assert_istio_proxy_converted(&outcome, &["istio-proxy"], &["oauth2-proxy"]);
    }
}

#[test]
fn istio_status_records_the_policy_cannot_rewrite_are_left_as_they_are() {
    for record in [
        "not json",
        r#"["istio-proxy"]"#,
        r#"{"containers":"istio-proxy"}"#,
        r#"{"containers":["istio-proxy",7]}"#,
        // JSON with string lists, but istio-proxy in neither: nothing to move
        r#"{"initContainers":["istio-init"],"containers":["other"],"revision":"canary"}"#,
    ] {
        let request = with("istio-injected-pod-overridden-proxy-args.json", |r| {
            set_pod_annotation(r, "sidecar.istio.io/status", Some(record));
        });
        let outcome = evaluate_request(request, defaults());
        // still marked injected: converted, the record untouched
        outcome.assert_order(&["istio-init", "istio-proxy"], &["search-api"]);
        assert_eq!(
            outcome.object()["metadata"]["annotations"]["sidecar.istio.io/status"],
            json!(record)
        );
    }
}

#[test]
fn istio_native_sidecar_opt_out_is_the_trimmed_value_false_on_the_pod_template() {
    const OPT_OUT: &str = "istio-native-sidecar-opt-out-deployment.json";
    const KEY: &str = "sidecar.istio.io/nativeSidecar";
    let outcome = evaluate_request(
        with(OPT_OUT, |r| set_pod_annotation(r, KEY, Some(" false "))),
        defaults(),
    );
    assert_untouched_and_silent(&outcome, "\" false \"");
    // another value (compared exactly: SPEC §3.1), none, or one on the
    // Deployment's own metadata, which is not read
    for (value, on_the_deployment) in [
        (Some("true"), false),
        (Some("False"), false),
        (None, false),
        (None, true),
    ] {
        let request = with(OPT_OUT, |r| {
            set_pod_annotation(r, KEY, value);
            if on_the_deployment {
                r["object"]["metadata"]["annotations"] = json!({KEY: "false"});
            }
        });
        let outcome = evaluate_request(request, defaults());
        assert_istio_proxy_converted(&outcome, &["istio-init", "istio-proxy"], &["fraud-scoring"]);
    }
}

// ---------------------------------------------------------------------------
// Sweeps: Linkerd (SPEC §3.1)
// ---------------------------------------------------------------------------

/// The Linkerd opt-out fixture with its annotation replaced by `key: value`.
fn linkerd_opt_out(key: &str, value: Option<&str>) -> Value {
    with("linkerd-native-sidecar-opt-out-pod.json", |r| {
        set_pod_annotation(r, "config.linkerd.io/proxy-enable-native-sidecar", None);
        set_pod_annotation(r, key, value);
    })
}

#[test]
fn linkerd_opt_out_is_false_under_any_of_its_three_prefixes() {
    for prefix in [
        "config.linkerd.io",
        "config.beta.linkerd.io",
        "config.alpha.linkerd.io",
    ] {
        let key = format!("{prefix}/proxy-enable-native-sidecar");
        for value in ["false", " false "] {
            // Without the native switches (SPEC §4), whose own rule the
            // goldens show, the opted-out Pod is left as it is.
            let no_switches = json!({"nativeInjection": false});
            let outcome = evaluate_request(linkerd_opt_out(&key, Some(value)), no_switches);
            assert_untouched_and_silent(&outcome, &format!("{key}: {value:?}"));
            // The key is Linkerd's switch as well: it gets no second one.
            let outcome = evaluate_request(linkerd_opt_out(&key, Some(value)), defaults());
            let annotations =
                &outcome.mutated().expect("the other switches")["metadata"]["annotations"];
            assert_eq!(annotations[&key], json!(value), "{key}");
            let linkerd_keys = annotations
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.ends_with("/proxy-enable-native-sidecar"))
                .count();
            assert_eq!(linkerd_keys, 1, "{key}: {annotations}");
            assert!(outcome.warnings().is_empty(), "{key}");
        }
        let outcome = evaluate_request(linkerd_opt_out(&key, Some("true")), defaults());
        outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["quotes"]);
        outcome.assert_native_sidecar("linkerd-proxy");
    }
    let outcome = evaluate_request(
        linkerd_opt_out("config.linkerd.io/proxy-enable-native-sidecar", None),
        defaults(),
    );
    outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["quotes"]);
}

#[test]
fn linkerd_identity_address_on_the_pod_itself_keeps_the_proxy_regular() {
    const ADDRESS: &str = "LINKERD2_PROXY_IDENTITY_SVC_ADDR";
    let with_address = |address: &str| {
        with("linkerd-identity-controller-deployment.json", |r| {
            let env = container_mut(r, "linkerd-proxy")["env"]
                .as_array_mut()
                .unwrap();
            let entry = env.iter_mut().find(|e| e["name"] == ADDRESS).unwrap();
            entry["value"] = json!(address);
        })
    };
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
        let outcome = evaluate_request(with_address(address), defaults());
        assert!(outcome.mutated().is_none(), "{address}: converted");
        let warnings = outcome.warnings();
        assert!(
            warnings.len() == 1
                && ["linkerd-proxy", "stays a regular container", ADDRESS]
                    .iter()
                    .all(|fragment| warnings[0].contains(fragment)),
            "{address}: {warnings:#?}"
        );
    }
    for address in [
        "linkerd-identity-headless.linkerd.svc.cluster.local.:8080",
        "localhost.example.com:8080",
        "127.0.0.2:8080",
    ] {
        let outcome = evaluate_request(with_address(address), defaults());
        outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["identity"]);
        assert_eq!(
            outcome.warnings(),
            [
                "linkerd-proxy: converted to a native sidecar in initContainers (built-in sidecar)",
                "linkerd-proxy: startupProbe derived from its readinessProbe (300 x 1 s = 300 s to start)",
            ],
            "{address}"
        );
    }
}

// ---------------------------------------------------------------------------
// Sweeps: the derived startupProbe (SPEC §5)
// ---------------------------------------------------------------------------

/// istio-proxy of this fixture: readinessProbe httpGet /healthz/ready:15021,
/// timeout 3, period 15 (P), failure 4 (R), success 1.
const ISTIO_CLUSTER_SENDS: &str = "istio-injected-deployment-as-cluster-sends.json";

/// The fixture with istio-proxy's readinessProbe edited.
fn with_readiness(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    with(ISTIO_CLUSTER_SENDS, |r| {
        edit(
            container_mut(r, "istio-proxy")["readinessProbe"]
                .as_object_mut()
                .unwrap(),
        );
    })
}

/// The startupProbe derived for istio-proxy.
fn derived_probe(request: Value, settings: Value) -> Value {
    let outcome = evaluate_request(request, settings);
    outcome.assert_native_sidecar("istio-proxy");
    outcome.container("istio-proxy")["startupProbe"].clone()
}

/// A derived probe with the fixture's handler and timeout.
fn probe(handler: (&str, Value), period: u64, threshold: u64) -> Value {
    json!({
        handler.0: handler.1,
        "timeoutSeconds": 3,
        "periodSeconds": period,
        "successThreshold": 1,
        "failureThreshold": threshold
    })
}

fn readiness_handler() -> (&'static str, Value) {
    (
        "httpGet",
        json!({"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}),
    )
}

#[test]
fn derived_probe_with_window_zero_ignores_the_period_setting() {
    for period in [json!(null), json!(0), json!(1), json!(5), json!(60)] {
        let settings = json!({"startupProbeWindowSeconds": 0, "startupProbePeriodSeconds": period});
        assert_eq!(
            derived_probe(fixture(ISTIO_CLUSTER_SENDS), settings),
            probe(readiness_handler(), 15, 4),
            "period {period}"
        );
    }
}

#[test]
fn derived_probe_uses_the_api_defaults_of_a_readiness_probe_without_timing() {
    // a manifest's probe: P defaults to 10, R to 3
    let request = with_readiness(|readiness| {
        for field in ["periodSeconds", "failureThreshold", "successThreshold"] {
            readiness.remove(field);
        }
    });
    for (settings, period, threshold) in [
        (defaults(), 1, 300),
        (json!({"startupProbeWindowSeconds": 0}), 10, 3),
        (json!({"startupProbePeriodSeconds": 0}), 10, 30),
    ] {
        assert_eq!(
            derived_probe(request.clone(), settings.clone()),
            probe(readiness_handler(), period, threshold),
            "{settings}"
        );
    }
}

#[test]
fn derived_probe_copies_the_handler_timeout_and_initial_delay_only() {
    let request = with_readiness(|readiness| {
        readiness.insert("initialDelaySeconds".to_owned(), json!(7));
        readiness.insert("successThreshold".to_owned(), json!(2));
        // not allowed on a readinessProbe by the API server, nor the startupProbe's
        readiness.insert("terminationGracePeriodSeconds".to_owned(), json!(12));
    });
    let mut expected = probe(readiness_handler(), 1, 300);
    expected["initialDelaySeconds"] = json!(7);
    assert_eq!(derived_probe(request, defaults()), expected);

    for handler in [
        ("tcpSocket", json!({"port": 15021})),
        (
            "exec",
            json!({"command": ["pilot-agent", "request", "GET", "healthz/ready"]}),
        ),
        ("grpc", json!({"port": 15021, "service": "ready"})),
    ] {
        let request = with_readiness(|readiness| {
            readiness.remove("httpGet");
            readiness.insert(handler.0.to_owned(), handler.1.clone());
        });
        assert_eq!(
            derived_probe(request, defaults()),
            probe(handler.clone(), 1, 300),
            "{}",
            handler.0
        );
    }
}

// ---------------------------------------------------------------------------
// Relations between answers
// ---------------------------------------------------------------------------

/// An edit of an expected object, for what a relation does not carry over.
type Edit = fn(&mut Value);

#[test]
fn requests_as_a_cluster_sends_them_are_converted_like_their_manifests() {
    // the manifest's answer, with the defaults the API server added
    let pairs: [(&str, &str, Edit); 2] = [
        (
            "istio-injected-deployment.json",
            ISTIO_CLUSTER_SENDS,
            |object| {
                object["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(30)
            },
        ),
        (
            "cloud-sql-proxy-job.json",
            "cloud-sql-proxy-job-as-cluster-sends.json",
            |object| object["spec"]["manualSelector"] = json!(false),
        ),
    ];
    for (manifest, as_sent, add_defaults) in pairs {
        let manifest = evaluate(manifest, defaults());
        let sent = evaluate(as_sent, defaults());
        assert_eq!(sent.warnings(), manifest.warnings(), "{as_sent}: warnings");
        let mut expected = manifest.assert_mutated().clone();
        add_defaults(&mut expected);
        assert_eq!(
            sent.assert_mutated(),
            &expected,
            "{as_sent}: mutated object"
        );
    }
}

#[test]
fn empty_strings_for_numbers_and_choices_answer_as_the_defaults() {
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
    for fixture_name in [
        ISTIO_CLUSTER_SENDS,
        "istio-kube-injected-cronjob.json",
        "linkerd-identity-controller-deployment.json",
        "standard-containers-annotation-deployment.json",
    ] {
        assert_eq!(
            evaluate(fixture_name, cleared.clone()).response,
            evaluate(fixture_name, defaults()).response,
            "{fixture_name}"
        );
    }
}

/// Where the pod template is in objects of each kind (for a Pod: its spec).
fn template_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    }
}

#[track_caller]
fn assert_same(expected: &Value, got: &Value, what: &str) {
    let found = differences(expected, got);
    assert!(
        found.is_empty(),
        "{what} (expected -> got):\n{}",
        found.iter().map(|d| format!("  {d}\n")).collect::<String>()
    );
}

#[test]
fn reapplied_manifests_fold_back_into_the_stored_template() {
    // SPEC §4: the fold gives back the stored pod template (oldObject's),
    // with what the merge itself changed in it; outside the template the
    // object stays as the client sent it.
    let helm_image = |template: &mut Value| {
        for index in [0, 1] {
            template["spec"]["initContainers"][index]["image"] =
                json!("docker.io/istio/proxyv2:1.22.4");
        }
    };
    let cases: [(&str, Edit); 6] = [
        ("istio-deployment-reapplied-unchanged.json", |_| {}),
        (
            "istio-deployment-reapplied-new-proxy-image.json",
            helm_image,
        ),
        ("linkerd-statefulset-reapplied.json", |_| {}),
        ("vault-agent-cronjob-reapplied.json", |_| {}),
        ("cloud-sql-proxy-job-reapplied-unchanged.json", |_| {}),
        ("pod-reapplied-unchanged.json", |_| {}),
    ];
    for (fixture_name, merged_changes) in cases {
        let outcome = evaluate(fixture_name, defaults());
        let pointer = template_pointer(kind_of(&outcome.request));
        let mutated = outcome.assert_mutated();
        let mut expected = outcome.request["oldObject"]
            .pointer(pointer)
            .unwrap()
            .clone();
        merged_changes(&mut expected);
        assert_same(
            &expected,
            mutated.pointer(pointer).unwrap(),
            &format!("{fixture_name}: {pointer}"),
        );
        let object = &outcome.request["object"];
        let mut outside = mutated.clone();
        *outside.pointer_mut(pointer).unwrap() = object.pointer(pointer).unwrap().clone();
        assert_same(
            object,
            &outside,
            &format!("{fixture_name}: outside {pointer}"),
        );
    }
}

/// The UPDATE that a second `kubectl apply` of the CREATE's manifest sends
/// once the policy converted it: `stored` (the mutated object of the CREATE)
/// with the manifest merged in again. The containers follow the manifest's
/// order, each converted sidecar coming back as the manifest has it; a grace
/// period the manifest sets goes back to its value, and with
/// `reset_metadata` so does the pod template's metadata (Istio's record).
fn second_apply(create: &Value, stored: &Value, reset_metadata: bool) -> Value {
    let kind = kind_of(create);
    let spec = pod_spec_pointer(kind);
    let manifest = &create["object"];
    let mut merged = stored.clone();
    let stored_containers = stored
        .pointer(&format!("{spec}/containers"))
        .unwrap()
        .as_array()
        .unwrap();
    let containers: Vec<Value> = manifest
        .pointer(&format!("{spec}/containers"))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            stored_containers
                .iter()
                .find(|s| s["name"] == c["name"])
                .unwrap_or(c)
                .clone()
        })
        .collect();
    *merged.pointer_mut(&format!("{spec}/containers")).unwrap() = Value::Array(containers);
    if let Some(tgps) = manifest.pointer(&format!("{spec}/terminationGracePeriodSeconds")) {
        merged.pointer_mut(spec).unwrap()["terminationGracePeriodSeconds"] = tgps.clone();
    }
    if reset_metadata {
        let mut pointers = vec![format!("{}/metadata", template_pointer(kind))];
        match kind {
            "CronJob" => pointers.push("/spec/jobTemplate/metadata".to_owned()),
            "Pod" => pointers = vec!["/metadata/annotations".to_owned()],
            _ => {}
        }
        for pointer in pointers {
            if let Some(value) = manifest.pointer(&pointer) {
                *merged.pointer_mut(&pointer).unwrap() = value.clone();
            }
        }
    }
    let mut update = create.clone();
    update["operation"] = json!("UPDATE");
    update["object"] = merged;
    update["oldObject"] = stored.clone();
    update["options"] = json!({
        "kind": "UpdateOptions",
        "apiVersion": "meta.k8s.io/v1",
        "fieldManager": "kubectl-client-side-apply"
    });
    update
}

/// Names of the init containers of a request's object.
fn init_container_names(request: &Value) -> Vec<String> {
    let pointer = format!("{}/initContainers", pod_spec_pointer(kind_of(request)));
    request["object"]
        .pointer(&pointer)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn second_apply_of_every_converted_workload_gives_back_what_was_stored() {
    let cases = [
        ("istio-injected-deployment.json", defaults()),
        ("istio-prestop-deployment.json", defaults()),
        ("cloud-sql-proxy-job.json", defaults()),
        ("job-with-two-sidecars.json", defaults()),
        ("vault-agent-cronjob.json", defaults()),
        ("daemonset-with-otel-collector.json", defaults()),
        ("replicaset-with-daprd.json", defaults()),
        ("replicationcontroller-with-consul.json", defaults()),
        (
            "statefulset-with-fluent-bit.json",
            json!({"sidecars": [{"image": "cr.fluentbit.io/fluent/fluent-bit:*"}]}),
        ),
        ("linkerd-injected-pod.json", defaults()),
    ];
    // Every case is checked before failing, so that one report shows them all.
    let mut problems = Vec::new();
    for (fixture_name, settings) in cases {
        let create = fixture(fixture_name);
        let created = evaluate_request(create.clone(), settings.clone());
        let stored = created.assert_mutated().clone();
        let before = init_container_names(&create);
        let mut expected: Vec<String> = created
            .init_container_names()
            .into_iter()
            .filter(|name| !before.contains(name))
            .map(|name| format!("{name}: re-applied in containers; folded into its native sidecar in initContainers"))
            .collect();
        expected.sort();
        assert!(!expected.is_empty(), "{fixture_name}: nothing converted");
        // the merge may or may not reset the template's metadata (Istio's record)
        let resets: &[bool] = if fixture_name == "istio-injected-deployment.json" {
            &[true, false]
        } else {
            &[true]
        };
        for &reset_metadata in resets {
            let outcome = evaluate_request(
                second_apply(&create, &stored, reset_metadata),
                settings.clone(),
            );
            let pointer = template_pointer(kind_of(&create));
            match outcome
                .mutated()
                .and_then(|mutated| mutated.pointer(pointer))
            {
                None => problems.push(format!(
                    "{fixture_name}: no mutated object (accepted: {}, message: {:?})",
                    outcome.accepted(),
                    outcome.message()
                )),
                // exactly what was stored, the Istio record's string included
                Some(template) => problems.extend(
                    differences(stored.pointer(pointer).unwrap(), template)
                        .into_iter()
                        .map(|difference| format!("{fixture_name}: {pointer}{difference}")),
                ),
            }
            let mut warnings = outcome.warnings();
            warnings.sort();
            if warnings != expected {
                problems.push(format!(
                    "{fixture_name}: warnings {warnings:?}, expected {expected:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the second apply does not give back what was stored (stored -> got):\n{}",
        problems
            .iter()
            .map(|p| format!("  {p}\n"))
            .collect::<String>()
    );
}

// ---------------------------------------------------------------------------
// Settings validation through the module (SPEC §9)
// ---------------------------------------------------------------------------

#[test]
fn settings_of_the_mesh_rules_are_validated_with_the_key_named() {
    let policy = common::Policy::new();
    for valid in [
        json!({"standardAnnotation": "platform.example.com/keep-regular"}),
        json!({"standardAnnotation": "keep-regular"}),
        json!({"standardAnnotation": ""}),
        json!({"standardAnnotation": null}),
        // the two annotation keys may be equal when one of them is off, or swapped
        json!({"standardAnnotation": "sidecar-lifecycle/containers", "sidecarAnnotation": ""}),
        json!({"sidecarAnnotation": "sidecar-lifecycle/standard-containers", "standardAnnotation": ""}),
        json!({"sidecarAnnotation": "", "standardAnnotation": ""}),
        json!({
            "sidecarAnnotation": "sidecar-lifecycle/standard-containers",
            "standardAnnotation": "sidecar-lifecycle/containers"
        }),
        json!({"builtinSidecars": null}),
    ]
    .into_iter()
    .chain(
        [json!(0), json!(1), json!(5), json!(3600), json!(null), json!("")]
            .into_iter()
            .map(|period| json!({"startupProbePeriodSeconds": period})),
    ) {
        let answer = policy.validate_settings(&valid);
        assert_eq!(answer["valid"], json!(true), "{valid} should be valid: {answer}");
    }
    for (invalid, key) in [
        (
            json!({"standardAnnotation": "not a key!"}),
            "standardAnnotation",
        ),
        (
            json!({"standardAnnotation": "example.com/a/b"}),
            "standardAnnotation",
        ),
        (json!({"standardAnnotation": 7}), "standardAnnotation"),
        // the same key for both, against the other's default or each other
        (
            json!({"standardAnnotation": "sidecar-lifecycle/containers"}),
            "standardAnnotation",
        ),
        (
            json!({"sidecarAnnotation": "sidecar-lifecycle/standard-containers"}),
            "sidecarAnnotation",
        ),
        (
            json!({"sidecarAnnotation": "example.com/x", "standardAnnotation": "example.com/x"}),
            "standardAnnotation",
        ),
        // "" is a cleared number or choice, not a bool
        (json!({"builtinSidecars": ""}), "builtinSidecars"),
    ]
    .into_iter()
    .chain(
        [json!(-1), json!("5"), json!(1.5), json!(true), json!([1])]
            .into_iter()
            .map(|period| {
                (
                    json!({"startupProbePeriodSeconds": period}),
                    "startupProbePeriodSeconds",
                )
            }),
    ) {
        let answer = policy.validate_settings(&invalid);
        assert_eq!(
            answer["valid"],
            json!(false),
            "{invalid} should be invalid: {answer}"
        );
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(key),
            "{invalid}: the message does not name {key}: {message:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The fixtures are pods the API server accepts, and so is what the policy
// makes of them
// ---------------------------------------------------------------------------

#[test]
fn mesh_fixtures_and_their_conversions_pass_the_api_server_rules() {
    for fixture_name in [
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
        ISTIO_CLUSTER_SENDS,
        "linkerd-injected-pod.json",
        "cloud-sql-proxy-job-as-cluster-sends.json",
    ] {
        let outcome = evaluate(fixture_name, defaults());
        assert!(outcome.accepted(), "{fixture_name}: {}", outcome.message());
        let before = outcome.request["object"]
            .pointer(outcome.pod_spec_pointer())
            .unwrap();
        let found = api_rules::violations(before);
        assert!(found.is_empty(), "{fixture_name}: {found:#?}");
        let found = api_rules::violations(outcome.pod_spec());
        assert!(found.is_empty(), "{fixture_name}, as admitted: {found:#?}");
    }
}

// ---------------------------------------------------------------------------
// SPEC §8: one short warning per change
// ---------------------------------------------------------------------------

#[test]
fn every_recorded_warning_is_short() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(GOLDEN_SUFFIX) {
            continue;
        }
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for answer in golden.as_array().unwrap() {
            for warning in answer["warnings"].as_array().unwrap() {
                let warning = warning.as_str().unwrap();
                assert!(
                    warning.chars().count() <= 120,
                    "{}: warning over 120 characters: {warning}",
                    path.display()
                );
            }
        }
    }
}
