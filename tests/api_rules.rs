//! The API-server checker of `tests/api_rules/mod.rs`, on pod specs the API
//! server rejects (one per rule) and pod specs it accepts.

#[path = "api_rules/mod.rs"]
mod api_rules;

use api_rules::{violations, violations_for};
use serde_json::{Value, json};

/// The one violation of `spec`, asserting there is exactly one and that it
/// contains every fragment.
#[track_caller]
fn only_violation(spec: Value, minor: u32, fragments: &[&str]) {
    let found = violations_for(&spec, minor);
    assert_eq!(
        found.len(),
        1,
        "expected one violation of {spec}, got {found:#?}"
    );
    for fragment in fragments {
        assert!(
            found[0].contains(fragment),
            "the violation {:?} lacks {fragment:?}",
            found[0]
        );
    }
}

#[track_caller]
fn valid(spec: Value, minor: u32) {
    let found = violations_for(&spec, minor);
    assert!(
        found.is_empty(),
        "expected {spec} to be valid in 1.{minor}, got {found:#?}"
    );
}

fn app() -> Value {
    json!({"name": "app", "image": "shop/app:1"})
}

fn pod(init: Value) -> Value {
    json!({"initContainers": init, "containers": [app()]})
}

// ---------------------------------------------------------------------------
// Accepted
// ---------------------------------------------------------------------------

#[test]
fn a_converted_pod_is_accepted() {
    let spec = json!({
        "terminationGracePeriodSeconds": 35,
        "initContainers": [
            {"name": "istio-init", "image": "istio/proxyv2"},
            {"name": "istio-proxy", "image": "istio/proxyv2", "restartPolicy": "Always",
             "lifecycle": {"preStop": {"sleep": {"seconds": 35}}, "postStart": {"exec": {"command": ["pilot-agent", "wait"]}}},
             "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "successThreshold": 3},
             "startupProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "successThreshold": 1, "failureThreshold": 30},
             "livenessProbe": {"tcpSocket": {"port": 15021}, "terminationGracePeriodSeconds": 10},
             "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}
        ],
        "containers": [
            {"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": 0}}},
             "readinessProbe": {"grpc": {"port": 9090}}}
        ],
        "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]
    });
    assert_eq!(violations(&spec), Vec::<String>::new());
    valid(spec, 34);
}

#[test]
fn unknown_fields_and_the_lifecycle_type_marker_are_ignored() {
    let spec: Value = serde_json::from_str(
        r#"{"futureField": {"x": 1e400}, "containers": [
            {"name": "app", "lifecycle": {"type": "Standard"}, "x-unknown": [1, 2]},
            {"name": "shipper", "lifecycle": {"type": "Sidecar", "preStop": {"exec": {"command": ["sleep", "99"]}}}}
        ]}"#,
    )
    .unwrap();
    valid(spec, 33);
}

#[test]
fn unset_and_null_fields_count_as_absent() {
    let spec = json!({"terminationGracePeriodSeconds": null, "initContainers": null,
        "ephemeralContainers": null,
        "containers": [{"name": "app", "restartPolicy": null, "lifecycle": null, "startupProbe": null,
            "readinessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": null}}]});
    valid(spec.clone(), 33);
    // null fields of a plain init container are not set either
    valid(
        pod(json!([{"name": "setup", "lifecycle": null, "readinessProbe": null}])),
        33,
    );
}

#[test]
fn a_sleep_of_exactly_the_grace_period_is_accepted_and_the_default_is_30() {
    let sleeping = |seconds: u64| json!({"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": seconds}}}});
    valid(json!({"containers": [sleeping(30)]}), 33);
    valid(
        json!({"terminationGracePeriodSeconds": 45, "containers": [sleeping(45)]}),
        33,
    );
    valid(
        json!({"terminationGracePeriodSeconds": 0, "containers": [sleeping(0)]}),
        33,
    );
}

#[test]
fn minus_zero_is_an_int64_zero() {
    // Go's decoder reads the integer literal -0 as 0.
    let spec: Value = serde_json::from_str(
        r#"{"terminationGracePeriodSeconds": -0, "containers": [{"name": "app"}]}"#,
    )
    .unwrap();
    valid(spec, 33);
}

#[test]
fn from_1_34_any_container_may_choose_its_restart_policy() {
    for policy in ["Always", "OnFailure", "Never"] {
        valid(
            json!({"containers": [{"name": "app", "restartPolicy": policy}]}),
            34,
        );
        valid(pod(json!([{"name": "setup", "restartPolicy": policy}])), 34);
        valid(pod(json!([{"name": "setup", "restartPolicy": policy}])), 35);
    }
    valid(
        json!({"containers": [{"name": "app", "restartPolicy": "Never",
            "restartPolicyRules": [{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]}]}),
        34,
    );
    // Before 1.34 the field does not exist: the API server drops it.
    valid(
        json!({"containers": [{"name": "app", "restartPolicyRules": []}]}),
        33,
    );
}

// ---------------------------------------------------------------------------
// Rejected: one pod spec per rule
// ---------------------------------------------------------------------------

#[test]
fn a_pod_needs_a_regular_container() {
    only_violation(
        json!({"containers": []}),
        33,
        &["spec.containers", "at least one container"],
    );
    only_violation(
        json!({"initContainers": [{"name": "a"}]}),
        33,
        &["spec.containers"],
    );
    only_violation(
        json!({"containers": {"name": "app"}}),
        33,
        &["spec.containers"],
    );
}

#[test]
fn container_names_are_unique_across_all_lists() {
    only_violation(
        json!({"initContainers": [{"name": "app"}], "containers": [app()]}),
        33,
        // as the API server does, the init container's name is the duplicate
        &["spec.initContainers[0].name", "Duplicate"],
    );
    only_violation(
        json!({"containers": [app(), {"name": "sidecar"}], "ephemeralContainers": [{"name": "sidecar"}]}),
        33,
        &["spec.ephemeralContainers[0].name", "Duplicate"],
    );
    only_violation(
        json!({"containers": [app(), app()]}),
        33,
        &["spec.containers[1].name"],
    );
}

#[test]
fn container_names_are_dns_labels() {
    only_violation(json!({"containers": [{"name": "App"}]}), 33, &["DNS-1123"]);
    only_violation(
        json!({"containers": [{"name": ""}]}),
        33,
        &["spec.containers[0].name"],
    );
    only_violation(json!({"containers": [{"image": "x"}]}), 33, &["Required"]);
    only_violation(
        json!({"containers": [7]}),
        33,
        &["spec.containers[0]: must be an object"],
    );
}

#[test]
fn before_1_34_init_containers_may_only_restart_always() {
    for policy in [
        json!("OnFailure"),
        json!("Never"),
        json!("always"),
        json!(true),
    ] {
        only_violation(
            pod(json!([{"name": "setup", "restartPolicy": policy}])),
            33,
            &["spec.initContainers[0].restartPolicy", "Unsupported value"],
        );
    }
    valid(
        pod(json!([{"name": "setup", "restartPolicy": "Always"}])),
        33,
    );
}

#[test]
fn before_1_34_regular_containers_may_not_set_a_restart_policy() {
    only_violation(
        json!({"containers": [{"name": "app", "restartPolicy": "Always"}]}),
        33,
        &["spec.containers[0].restartPolicy", "Forbidden"],
    );
}

#[test]
fn from_1_34_only_the_three_restart_policies_exist() {
    only_violation(
        json!({"containers": [{"name": "app", "restartPolicy": "Sometimes"}]}),
        34,
        &["spec.containers[0].restartPolicy", "Unsupported value"],
    );
    only_violation(
        json!({"containers": [{"name": "app", "restartPolicyRules": []}]}),
        34,
        &["spec.containers[0].restartPolicyRules", "restartPolicy"],
    );
    only_violation(
        json!({"containers": [app()], "ephemeralContainers": [{"name": "debug", "restartPolicy": "Never"}]}),
        34,
        &["spec.ephemeralContainers[0].restartPolicy"],
    );
}

#[test]
fn init_containers_without_restart_policy_always_have_no_lifecycle_or_probes() {
    for field in [
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
    ] {
        let value = if field == "lifecycle" {
            json!({"preStop": {"exec": {"command": ["true"]}}})
        } else {
            json!({"exec": {"command": ["true"]}})
        };
        let mut setup = json!({"name": "setup"});
        setup[field] = value.clone();
        only_violation(
            pod(json!([setup])),
            33,
            &[
                &format!("spec.initContainers[0].{field}"),
                "restartPolicy=Always",
            ],
        );
        // a restart policy other than Always does not make a sidecar, in 1.34 either
        let mut on_failure = json!({"name": "setup", "restartPolicy": "OnFailure"});
        on_failure[field] = value;
        only_violation(pod(json!([on_failure])), 34, &[field]);
    }
    // an empty lifecycle is still a lifecycle (the API server decodes `{}` as set)
    only_violation(
        pod(json!([{"name": "setup", "lifecycle": {"type": "Sidecar"}}])),
        33,
        &["spec.initContainers[0].lifecycle"],
    );
}

#[test]
fn init_containers_without_restart_policy_always_have_no_resize_policy() {
    only_violation(
        pod(
            json!([{"name": "setup", "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}]),
        ),
        33,
        &["spec.initContainers[0].resizePolicy"],
    );
}

#[test]
fn liveness_and_startup_probes_need_a_success_threshold_of_1() {
    for probe in ["livenessProbe", "startupProbe"] {
        let mut container = app();
        container[probe] = json!({"tcpSocket": {"port": 80}, "successThreshold": 3});
        only_violation(
            json!({"containers": [container]}),
            33,
            &[
                &format!("spec.containers[0].{probe}.successThreshold"),
                "must be 1",
            ],
        );
    }
    // a readiness probe may ask for more
    let mut container = app();
    container["readinessProbe"] = json!({"tcpSocket": {"port": 80}, "successThreshold": 3});
    valid(json!({"containers": [container]}), 33);
}

#[test]
fn readiness_probes_have_no_termination_grace_period() {
    let mut container = app();
    container["readinessProbe"] =
        json!({"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 10});
    only_violation(
        json!({"containers": [container]}),
        33,
        &[
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
            "readinessProbes",
        ],
    );
    let mut container = app();
    container["livenessProbe"] =
        json!({"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 0});
    only_violation(json!({"containers": [container]}), 33, &["greater than 0"]);
}

#[test]
fn probes_have_exactly_one_handler_and_int32_fields() {
    let with_probe = |probe: Value| {
        let mut container = app();
        container["readinessProbe"] = probe;
        json!({"containers": [container]})
    };
    only_violation(
        with_probe(json!({"periodSeconds": 5})),
        33,
        &["must specify a handler type"],
    );
    only_violation(
        with_probe(json!({"tcpSocket": {"port": 1}, "exec": {"command": ["true"]}})),
        33,
        &["more than 1 handler"],
    );
    only_violation(
        with_probe(json!({"tcpSocket": {"port": 1}, "failureThreshold": 3_000_000_000u64})),
        33,
        &["readinessProbe.failureThreshold", "int32"],
    );
    only_violation(
        with_probe(json!({"tcpSocket": {"port": 1}, "periodSeconds": -1})),
        33,
        &["readinessProbe.periodSeconds", "greater than or equal to 0"],
    );
    only_violation(
        with_probe(json!({"tcpSocket": {"port": 1}, "periodSeconds": "10"})),
        33,
        &["readinessProbe.periodSeconds"],
    );
}

#[test]
fn a_hook_sleep_may_not_exceed_the_grace_period() {
    only_violation(
        json!({"containers": [{"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": 31}}}}]}),
        33,
        &[
            "spec.containers[0].lifecycle.preStop.sleep.seconds",
            "terminationGracePeriodSeconds (30)",
        ],
    );
    only_violation(
        json!({"terminationGracePeriodSeconds": 10, "containers": [app()], "initContainers": [
            {"name": "proxy", "restartPolicy": "Always", "lifecycle": {"postStart": {"sleep": {"seconds": 11}}}}]}),
        33,
        &[
            "spec.initContainers[0].lifecycle.postStart.sleep.seconds",
            "(10)",
        ],
    );
    only_violation(
        json!({"containers": [{"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": -1}}}}]}),
        33,
        &["non-negative"],
    );
    only_violation(
        json!({"containers": [{"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": "5"}}}}]}),
        33,
        &["sleep.seconds"],
    );
}

#[test]
fn hooks_have_exactly_one_well_formed_handler() {
    let with_hook =
        |hook: Value| json!({"containers": [{"name": "app", "lifecycle": {"preStop": hook}}]});
    only_violation(with_hook(json!({})), 33, &["preStop", "handler type"]);
    only_violation(
        with_hook(json!({"exec": {"command": "sleep 5"}})),
        33,
        &["preStop.exec.command"],
    );
    only_violation(
        with_hook(json!({"exec": {"command": []}})),
        33,
        &["preStop.exec.command"],
    );
    only_violation(
        with_hook(json!({"httpGet": {"path": "/quitquitquit"}})),
        33,
        &["httpGet.port"],
    );
    only_violation(
        with_hook(json!({"sleep": {"seconds": 1}, "httpGet": {"path": "/", "port": 1}})),
        33,
        &["more than 1 handler"],
    );
}

#[test]
fn the_grace_period_is_a_non_negative_int64() {
    for bad in ["-1", "30.0", "\"30\"", "9223372036854775808", "1e400"] {
        let spec: Value = serde_json::from_str(&format!(
            r#"{{"terminationGracePeriodSeconds": {bad}, "containers": [{{"name": "app"}}]}}"#
        ))
        .unwrap();
        only_violation(spec, 33, &["spec.terminationGracePeriodSeconds"]);
    }
    valid(
        json!({"terminationGracePeriodSeconds": i64::MAX, "containers": [app()]}),
        33,
    );
}

#[test]
fn ephemeral_containers_have_no_lifecycle_or_probes() {
    only_violation(
        json!({"containers": [app()], "ephemeralContainers": [{"name": "debug", "readinessProbe": {"exec": {"command": ["true"]}}}]}),
        33,
        &["spec.ephemeralContainers[0].readinessProbe"],
    );
}

#[test]
fn every_violation_is_reported() {
    let spec = json!({"terminationGracePeriodSeconds": 5, "initContainers": [
        {"name": "setup", "restartPolicy": "Never", "startupProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}},
        {"name": "app"}],
        "containers": [{"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": 6}}}}]});
    let found = violations(&spec);
    // restartPolicy, startupProbe forbidden, its successThreshold, the duplicate name, the sleep
    assert_eq!(found.len(), 5, "{found:#?}");
}

#[test]
fn a_pod_spec_that_is_no_object_is_rejected() {
    only_violation(json!([]), 33, &["spec: must be an object"]);
}
