//! Every scenario of test_data/ through the compiled policy in the waPC host.
//! Each test reads like the spec: a request, the settings, the verdict and
//! the resulting container order. `common::evaluate` also checks, on every
//! answer, that only owned fields changed and that a mutation is idempotent.

mod common;

use common::{defaults, evaluate};
use serde_json::{Value, json};

// SPEC §3-§5: conversion of injected and declared sidecars, every workload kind.

#[test]
fn istio_injected_deployment_gets_a_native_istio_proxy_after_istio_init() {
    let outcome = evaluate("istio-injected-deployment.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["istio-init", "istio-proxy"], &["checkout"]);
    outcome.assert_native_sidecar("istio-proxy");
    // start-up is gated: a startupProbe with the readinessProbe's handler and
    // timeout probes every second (not every 15 s) for up to 300 s
    let proxy = outcome.container("istio-proxy");
    let readiness = &proxy["readinessProbe"];
    assert_eq!(
        proxy["startupProbe"],
        json!({"httpGet": readiness["httpGet"], "timeoutSeconds": readiness["timeoutSeconds"],
            "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 300})
    );
    // Istio's record lists istio-proxy as an init container now
    let status = outcome.mutated().unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["sidecar.istio.io/status"]
        .as_str()
        .unwrap();
    let status: Value = serde_json::from_str(status).unwrap();
    assert_eq!(status["containers"], json!([]));
    assert_eq!(
        status["initContainers"],
        json!(["istio-init", "istio-proxy"])
    );
    // the application's own probes are not touched
    assert!(outcome.container("checkout").get("startupProbe").is_none());
    // one istio-proxy in, no grace change: no preStop, 1 sidecar x 5 s < 30 s
    assert!(outcome.tgps().is_none());
    assert_eq!(
        outcome.warnings(),
        [
            "istio-proxy: converted to a native sidecar in initContainers (built-in sidecar)",
            "istio-proxy: startupProbe derived from its readinessProbe (300 x 1 s = 300 s to start)",
        ]
    );
}

#[test]
fn istio_ingress_gateway_keeps_istio_proxy_as_its_main_container() {
    let outcome = evaluate("istio-ingress-gateway-deployment.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn linkerd_injected_pod_gets_linkerd_proxy_after_linkerd_init() {
    let outcome = evaluate("linkerd-injected-pod.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["web"]);
    outcome.assert_native_sidecar("linkerd-proxy");
    assert_eq!(
        outcome.container("linkerd-proxy")["startupProbe"]["successThreshold"],
        json!(1)
    );
    // TGPS 30 covers 1 sidecar x 5 s: untouched
    assert_eq!(outcome.tgps(), Some(&json!(30)));
}

#[test]
fn job_with_cloud_sql_proxy_can_complete() {
    let outcome = evaluate("cloud-sql-proxy-job.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["cloud-sql-proxy"], &["migrate"]);
    outcome.assert_native_sidecar("cloud-sql-proxy");
    // no readinessProbe to derive from
    assert!(
        outcome
            .container("cloud-sql-proxy")
            .get("startupProbe")
            .is_none()
    );
    assert_eq!(outcome.warnings().len(), 1);
}

#[test]
fn cronjob_with_vault_agent_is_converted_in_its_job_template() {
    let outcome = evaluate("vault-agent-cronjob.json", defaults());
    outcome.assert_mutated();
    assert_eq!(
        outcome.pod_spec_pointer(),
        "/spec/jobTemplate/spec/template/spec"
    );
    outcome.assert_order(&["vault-agent", "vault-agent-init"], &["report"]);
    outcome.assert_native_sidecar("vault-agent");
}

#[test]
fn statefulset_log_shipper_is_detected_by_an_image_matcher() {
    let outcome = evaluate("statefulset-with-fluent-bit.json", defaults());
    outcome.assert_accepted_untouched();
    let outcome = evaluate(
        "statefulset-with-fluent-bit.json",
        json!({"sidecars": [{"image": "cr.fluentbit.io/fluent/fluent-bit:*"}]}),
    );
    outcome.assert_mutated();
    outcome.assert_order(&["fluent-bit"], &["postgres"]);
    outcome.assert_warning_containing(
        "fluent-bit: converted to a native sidecar in initContainers (matches sidecars[0])",
    );
}

#[test]
fn daemonset_otel_collector_is_converted() {
    let outcome = evaluate("daemonset-with-otel-collector.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["otc-container"], &["node-exporter"]);
}

#[test]
fn replicaset_without_owner_gets_a_native_daprd() {
    let outcome = evaluate("replicaset-with-daprd.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["daprd"], &["orders"]);
    outcome.assert_warning_containing("daprd: startupProbe derived from its readinessProbe");
}

#[test]
fn replication_controller_consul_dataplane_follows_its_setup_container() {
    let outcome = evaluate("replicationcontroller-with-consul.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(
        &["consul-connect-inject-init", "consul-dataplane"],
        &["legacy-api"],
    );
}

#[test]
fn pod_with_a_native_sidecar_already_is_left_alone() {
    let outcome = evaluate("pod-with-native-sidecar.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn lifecycle_type_sidecar_declares_and_both_markers_are_removed() {
    let outcome = evaluate("lifecycle-type-sidecar-pod.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["log-forwarder"], &["api"]);
    // the marker is gone; the rest of the lifecycle stays
    assert!(
        outcome
            .container("log-forwarder")
            .get("lifecycle")
            .is_none()
    );
    assert_eq!(
        outcome.container("api")["lifecycle"],
        json!({"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}})
    );
}

#[test]
fn lifecycle_type_standard_opts_a_catalogue_name_out() {
    let outcome = evaluate("lifecycle-type-standard-pod.json", defaults());
    // the marker alone never causes a mutation
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn annotation_declares_sidecars_by_name_and_reports_unknown_names() {
    let outcome = evaluate("annotation-declared-deployment.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["log-shipper", "metrics-agent"], &["payments"]);
    // " log-shipper , metrics-agent,, log-shipper, audit-tap": one warning for audit-tap only
    let unknown: Vec<String> = outcome
        .warnings()
        .into_iter()
        .filter(|w| w.starts_with("annotation"))
        .collect();
    assert_eq!(
        unknown,
        [
            "annotation sidecar-lifecycle/containers: \"audit-tap\" is not a container or native sidecar of this pod; ignored"
        ]
    );
}

#[test]
fn annotation_can_be_renamed_or_turned_off() {
    let outcome = evaluate(
        "annotation-declared-deployment.json",
        json!({"sidecarAnnotation": ""}),
    );
    outcome.assert_accepted_untouched();
    let outcome = evaluate(
        "annotation-declared-deployment.json",
        json!({"sidecarAnnotation": "example.com/sidecars"}),
    );
    outcome.assert_accepted_untouched();
}

#[test]
fn declaring_every_container_a_sidecar_is_rejected() {
    let outcome = evaluate("declared-only-pod.json", defaults());
    outcome.assert_rejected_with(&["spec.containers", "no main container"]);
    // nothing was changed, so no warning says it was
    assert!(outcome.warnings().iter().all(|w| !w.contains("converted")));
}

#[test]
fn pod_owned_by_a_job_is_converted_so_the_job_completes() {
    let outcome = evaluate("job-owned-pod-with-cloud-sql-proxy.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["cloud-sql-proxy"], &["migrate"]);
}

#[test]
fn a_container_with_its_own_restart_policy_stays_where_it_is() {
    let outcome = evaluate("pod-with-own-restart-policy.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_warning_containing(
        "log-agent: sets its own restartPolicy, so it stays a regular container",
    );
}

// SPEC §4: placement.

#[test]
fn sidecar_goes_after_the_mesh_setup_container_not_before() {
    let outcome = evaluate("pod-with-setup-init-before-mesh.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["wait-for-db", "istio-init", "istio-proxy"], &["app"]);
}

#[test]
fn sidecar_goes_after_native_sidecars_and_before_the_app_init_containers() {
    let outcome = evaluate("istio-native-with-cloud-sql-proxy-pod.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(
        &["istio-init", "istio-proxy", "cloud-sql-proxy", "db-migrate"],
        &["app"],
    );
}

#[test]
fn setup_init_containers_come_from_settings() {
    let outcome = evaluate("custom-setup-init-pod.json", defaults());
    outcome.assert_order(&["envoy", "cni-net-setup", "db-migrate"], &["app"]);
    let outcome = evaluate(
        "custom-setup-init-pod.json",
        json!({"setupInitContainers": ["*-net-setup"]}),
    );
    outcome.assert_order(&["cni-net-setup", "envoy", "db-migrate"], &["app"]);
}

// SPEC §4: the three modes.

#[test]
fn reject_mode_names_each_legacy_sidecar_and_the_fix() {
    let outcome = evaluate(
        "istio-prestop-deployment.json",
        json!({"legacySidecars": "reject"}),
    );
    outcome.assert_rejected_with(&[
        "3 problems",
        "spec.template.spec.containers[1] (istio-proxy) is a sidecar (built-in sidecar)",
        "spec.template.spec.containers[2] (vault-agent)",
        "spec.template.spec.containers[3] (cloud-sql-proxy)",
        "initContainers with restartPolicy: Always",
    ]);
}

#[test]
fn warn_mode_accepts_unchanged_with_a_warning_per_sidecar() {
    let outcome = evaluate(
        "istio-injected-deployment.json",
        json!({"legacySidecars": "warn"}),
    );
    outcome.assert_accepted_untouched();
    assert_eq!(
        outcome.warnings(),
        [
            "istio-proxy: sidecar runs as a regular container; declare it in initContainers with restartPolicy: Always"
        ]
    );
}

#[test]
fn warn_mode_says_a_job_will_never_complete() {
    for fixture in [
        "cloud-sql-proxy-job.json",
        "vault-agent-cronjob.json",
        "job-owned-pod-with-cloud-sql-proxy.json",
    ] {
        let outcome = evaluate(fixture, json!({"legacySidecars": "warn"}));
        outcome.assert_accepted_untouched();
        outcome.assert_warning_containing("the Job will never complete");
    }
}

#[test]
fn builtin_catalogue_can_be_turned_off() {
    let outcome = evaluate(
        "istio-injected-deployment.json",
        json!({"builtinSidecars": false}),
    );
    outcome.assert_accepted_untouched();
}

// SPEC §2: requests accepted untouched.

#[test]
fn pod_update_is_accepted_untouched() {
    evaluate("pod-update-with-legacy-sidecar.json", defaults()).assert_accepted_untouched();
}

#[test]
fn delete_is_accepted_untouched() {
    evaluate("deployment-delete.json", defaults()).assert_accepted_untouched();
}

#[test]
fn other_kinds_are_accepted_untouched() {
    evaluate("configmap-create.json", defaults()).assert_accepted_untouched();
}

#[test]
fn scaling_a_deployment_admitted_before_the_policy_is_not_a_rollout() {
    for settings in [
        defaults(),
        json!({"legacySidecars": "reject"}),
        json!({"startupProbe": "require"}),
    ] {
        let outcome = evaluate("deployment-update-replicas-only.json", settings);
        outcome.assert_accepted_untouched();
        outcome.assert_no_warnings();
    }
}

#[test]
fn a_new_image_in_the_template_is_evaluated() {
    let outcome = evaluate("deployment-update-new-image.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["istio-init", "istio-proxy"], &["checkout"]);
}

#[test]
fn job_updates_are_accepted_untouched() {
    evaluate("job-update.json", json!({"legacySidecars": "reject"})).assert_accepted_untouched();
}

#[test]
fn controlled_replicaset_is_left_to_its_deployment() {
    evaluate(
        "replicaset-owned-by-deployment.json",
        json!({"legacySidecars": "reject"}),
    )
    .assert_accepted_untouched();
}

#[test]
fn mirror_pods_belong_to_the_kubelet() {
    evaluate("mirror-pod.json", json!({"legacySidecars": "reject"})).assert_accepted_untouched();
}

// SPEC §8: never lose data.

#[test]
fn fields_no_kubernetes_version_knows_come_back_identical() {
    let outcome = evaluate("deployment-with-unknown-fields.json", defaults());
    let mutated = outcome.assert_mutated();
    let original = &outcome.request["object"];
    // (common::evaluate compares every field outside the owned ones; these are the
    // ones a typed round trip would lose or round)
    assert_eq!(mutated["status"], original["status"]);
    assert_eq!(
        mutated["spec"]["template"]["spec"]["x-future-scheduling"],
        original["spec"]["template"]["spec"]["x-future-scheduling"]
    );
    let text = serde_json::to_string(mutated).unwrap();
    assert!(
        text.contains("123456789012345678901234567890"),
        "a big integer was rounded"
    );
    assert!(
        text.contains("0.1000000000000000055511151231257827"),
        "a precise float was rounded"
    );
    let proxy = outcome.container("istio-proxy");
    assert_eq!(
        proxy["x-vendor-extension"],
        json!({"enabled": true, "weights": [1, 2.5, 3]})
    );
    assert!(proxy.get("resizePolicy").is_some());
}

// SPEC §8: malformed input is rejected with the field path, never a trap.

#[test]
fn malformed_requests_are_rejected_with_the_field_path() {
    let cases: &[(&str, &[&str])] = &[
        (
            "malformed-object-not-an-object.json",
            &["object: must be a JSON object"],
        ),
        (
            "malformed-kind-mismatch.json",
            &["kind:", "StatefulSet", "Deployment"],
        ),
        (
            "malformed-deployment-without-pod-spec.json",
            &["spec.template.spec: missing"],
        ),
        (
            "malformed-containers-not-array.json",
            &["spec.containers: must be a list"],
        ),
        (
            "malformed-duplicate-container-names.json",
            &["spec.containers[0].name", "\"app\""],
        ),
        (
            "malformed-annotation-not-string.json",
            &[
                "metadata.annotations[\"prometheus.io/port\"]",
                "metadata.annotations[\"sidecar-lifecycle/containers\"]",
            ],
        ),
        (
            "malformed-tgps-float.json",
            &["spec.terminationGracePeriodSeconds: must be a non-negative integer, got 30.0"],
        ),
        (
            "malformed-container-without-name.json",
            &["spec.containers[1].name: must be a string"],
        ),
    ];
    for (fixture, fragments) in cases {
        let outcome = evaluate(fixture, defaults());
        outcome.assert_rejected_with(fragments);
        outcome.assert_no_warnings();
    }
}

#[test]
fn invalid_settings_reach_validate_as_a_rejection_not_a_trap() {
    let policy = common::Policy::new();
    let response = policy.validate(
        &common::fixture("istio-injected-deployment.json"),
        &json!({"legacySidecars": "nope"}),
    );
    assert_eq!(response["accepted"], json!(false));
    assert!(
        response["message"]
            .as_str()
            .unwrap()
            .contains("legacySidecars")
    );
}

// SPEC §5: start-up gating.

#[test]
fn native_sidecar_without_startup_probe_gets_one_derived() {
    let outcome = evaluate("native-sidecar-without-startup-probe-pod.json", defaults());
    outcome.assert_mutated();
    let agent = outcome.container("vault-agent");
    assert_eq!(agent["startupProbe"]["failureThreshold"], json!(300));
    assert_eq!(agent["startupProbe"]["periodSeconds"], json!(1));
    assert_eq!(
        agent["startupProbe"]["exec"],
        agent["readinessProbe"]["exec"]
    );
    assert_eq!(
        outcome.warnings(),
        ["vault-agent: startupProbe derived from its readinessProbe (300 x 1 s = 300 s to start)"]
    );
}

#[test]
fn startup_probe_window_zero_keeps_the_readiness_threshold() {
    let outcome = evaluate(
        "native-sidecar-without-startup-probe-pod.json",
        json!({"startupProbeWindowSeconds": 0}),
    );
    let agent = outcome.container("vault-agent");
    assert_eq!(
        agent["startupProbe"]["failureThreshold"],
        agent["readinessProbe"]["failureThreshold"]
    );
}

#[test]
fn startup_probe_require_reports_every_sidecar_without_one() {
    let outcome = evaluate(
        "native-sidecar-without-startup-probe-pod.json",
        json!({"startupProbe": "require"}),
    );
    outcome.assert_rejected_with(&["spec.initContainers[0] (vault-agent)", "startupProbe"]);
    let outcome = evaluate(
        "job-with-two-sidecars.json",
        json!({"startupProbe": "require"}),
    );
    outcome.assert_rejected_with(&["2 problems", "(cloud-sql-proxy)", "(vault-agent)"]);
    evaluate(
        "pod-with-native-sidecar.json",
        json!({"startupProbe": "require"}),
    )
    .assert_accepted_untouched();
}

#[test]
fn startup_probe_ignore_derives_nothing() {
    let outcome = evaluate(
        "native-sidecar-without-startup-probe-pod.json",
        json!({"startupProbe": "ignore"}),
    );
    outcome.assert_accepted_untouched();
}

// SPEC §6: the termination budget.

#[test]
fn istio_deployment_with_a_20_s_pre_stop_gets_room_for_three_sidecars() {
    let outcome = evaluate("istio-prestop-deployment.json", defaults());
    outcome.assert_mutated();
    // vault-agent-init is the application's: the sidecars start before it and it can use them
    outcome.assert_order(
        &[
            "istio-init",
            "istio-proxy",
            "vault-agent",
            "cloud-sql-proxy",
            "vault-agent-init",
        ],
        &["orders"],
    );
    assert_eq!(outcome.tgps(), Some(&json!(35)));
    outcome.assert_warning_containing(
        "raised terminationGracePeriodSeconds unset (30) -> 35: orders preStop 20 s + 5 s for each of 3 sidecars",
    );
}

#[test]
fn grace_reject_mode_explains_the_arithmetic() {
    let outcome = evaluate(
        "istio-prestop-deployment.json",
        json!({"terminationGracePeriod": {"onViolation": "reject"}}),
    );
    outcome.assert_rejected_with(&[
        "spec.template.spec.terminationGracePeriodSeconds is unset (30) but must be at least 35",
        "orders preStop 20 s + 5 s for each of 3 sidecars",
    ]);
    // nothing was returned, so no warning claims a conversion
    assert!(outcome.warnings().is_empty(), "{:?}", outcome.warnings());
}

#[test]
fn job_with_two_sidecars_fits_its_budget() {
    // max(0, vault-agent preStop sleep 10) + 2 x 5 = 20 = its TGPS
    let outcome = evaluate("job-with-two-sidecars.json", defaults());
    outcome.assert_mutated();
    outcome.assert_order(&["cloud-sql-proxy", "vault-agent"], &["etl"]);
    assert_eq!(outcome.tgps(), Some(&json!(20)));
    // one more second per sidecar no longer fits
    let outcome = evaluate(
        "job-with-two-sidecars.json",
        json!({"terminationGracePeriod": {"sidecarShutdownSeconds": 6}}),
    );
    assert_eq!(outcome.tgps(), Some(&json!(22)));
    outcome.assert_warning_containing(
        "20 -> 22: sidecar vault-agent preStop 10 s + 6 s for each of 2 sidecars",
    );
}

#[test]
fn pod_at_max_seconds_is_left_alone() {
    // app preStop 25 s + 1 sidecar x 5 s = 30 <= 60 = max = TGPS
    let outcome = evaluate(
        "pod-at-max-grace.json",
        json!({"terminationGracePeriod": {"maxSeconds": 60}}),
    );
    outcome.assert_accepted_untouched();
    let outcome = evaluate(
        "pod-at-max-grace.json",
        json!({"terminationGracePeriod": {"maxSeconds": 45}}),
    );
    assert_eq!(outcome.tgps(), Some(&json!(45)));
    outcome.assert_warning_containing("lowered terminationGracePeriodSeconds 60 -> 45");
}

#[test]
fn min_seconds_raise_every_pod() {
    let outcome = evaluate(
        "pod-at-max-grace.json",
        json!({"terminationGracePeriod": {"minSeconds": 90}}),
    );
    assert_eq!(outcome.tgps(), Some(&json!(90)));
    let outcome = evaluate(
        "istio-ingress-gateway-deployment.json",
        json!({"terminationGracePeriod": {"minSeconds": 45}}),
    );
    assert_eq!(outcome.tgps(), Some(&json!(45)));
    outcome.assert_warning_containing(
        "raised terminationGracePeriodSeconds 30 -> 45: terminationGracePeriod.minSeconds 45",
    );
}

#[test]
fn a_sleep_action_above_the_maximum_is_rejected_not_adjusted() {
    let outcome = evaluate(
        "sleep-action-above-max-pod.json",
        json!({"terminationGracePeriod": {"maxSeconds": 60}}),
    );
    outcome.assert_rejected_with(&[
        "needs 125 s to shut down",
        "app preStop 120 s",
        "maxSeconds 60",
    ]);
}

#[test]
fn app_shutdown_seconds_extend_the_budget() {
    let outcome = evaluate(
        "pod-at-max-grace.json",
        json!({"terminationGracePeriod": {"appShutdownSeconds": 40}}),
    );
    assert_eq!(outcome.tgps(), Some(&json!(70)));
    outcome.assert_warning_containing(
        "60 -> 70: app preStop 25 s + appShutdownSeconds 40 + 5 s for 1 sidecar",
    );
}

// SPEC §7: hygiene.

#[test]
fn quitquitquit_pre_stop_on_a_sidecar_is_warned_about() {
    let outcome = evaluate("quitquitquit-prestop-deployment.json", defaults());
    outcome.assert_accepted_untouched();
    assert_eq!(outcome.warnings().len(), 1);
    outcome.assert_warning_containing(
        "istio-proxy: preStop calls quitquitquit, so the sidecar exits before the app",
    );
}

// SPEC §8: one short warning per change.

#[test]
fn warnings_are_short() {
    for fixture in [
        "istio-injected-deployment.json",
        "istio-prestop-deployment.json",
        "annotation-declared-deployment.json",
        "quitquitquit-prestop-deployment.json",
        "pod-with-own-restart-policy.json",
    ] {
        for warning in evaluate(fixture, defaults()).warnings() {
            assert!(
                warning.len() <= 120,
                "{fixture}: warning over 120 characters: {warning}"
            );
        }
    }
}
