//! Issue 9: manifests re-applied after the policy converted them.
//!
//! `kubectl apply` (client-side and server-side), `helm upgrade`, Argo CD and
//! Flux merge the applied manifest, which still has the sidecar in
//! `spec.containers`, into the stored object, which has it as a native
//! sidecar in `spec.initContainers`: the UPDATE's object has the name in
//! both lists and `oldObject` is the stored, converted object. SPEC §4
//! ("Re-applied sidecars"): with `legacySidecars: convert` the containers
//! entry replaces the native entry in place and is converted again, so that
//! re-applying an unchanged manifest gives back the stored pod template and
//! nothing rolls out. SPEC §2: a Job or Pod UPDATE gets the result only when
//! its pod spec equals `oldObject`'s (their pod specs are immutable), else
//! it is accepted untouched. SPEC §8: otherwise the duplicate name stays
//! malformed.
//!
//! The fixtures are described in test_data/README.md ("Re-applied
//! manifests"); their stored objects follow SPEC.md, not the implementation.

mod common;

use common::{
    Outcome, defaults, differences, evaluate, evaluate_request, fixture, pod_spec_pointer,
};
use serde_json::{Value, json};

/// The one warning of a fold (SPEC §4).
fn folded(name: &str) -> String {
    format!("{name}: re-applied in containers; folded into its native sidecar in initContainers")
}

/// Where the pod template is in objects of each kind (for a Pod: its spec).
fn template_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    }
}

fn kind_of(request: &Value) -> &str {
    request["kind"]["kind"]
        .as_str()
        .expect("the request has a kind.kind")
}

#[track_caller]
fn assert_json_eq(expected: &Value, actual: &Value, what: &str) {
    let found = differences(expected, actual);
    assert!(
        found.is_empty(),
        "{what} differs (before -> after is expected -> got):\n{}",
        found.iter().map(|d| format!("  {d}\n")).collect::<String>()
    );
}

/// The value at `pointer` of the mutated object.
#[track_caller]
fn mutated_at<'a>(outcome: &'a Outcome, pointer: &str) -> &'a Value {
    outcome
        .assert_mutated()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("the mutated object has nothing at {pointer}"))
}

/// The value at `pointer` of the request's oldObject (the stored object).
#[track_caller]
fn stored_at<'a>(outcome: &'a Outcome, pointer: &str) -> &'a Value {
    outcome
        .request
        .pointer(&format!("/oldObject{pointer}"))
        .unwrap_or_else(|| panic!("the request's oldObject has nothing at {pointer}"))
}

/// A mutation whose pod template (for a Pod: spec) is exactly the stored one.
#[track_caller]
fn assert_template_is_the_stored_one(outcome: &Outcome) {
    let pointer = template_pointer(kind_of(&outcome.request));
    assert_json_eq(
        stored_at(outcome, pointer),
        mutated_at(outcome, pointer),
        &format!("the mutated object's {pointer} (vs oldObject's)"),
    );
}

/// Outside the pod template (for a Pod: spec), the mutated object is the
/// request's object: what the merge changed there (a label, the schedule,
/// last-applied-configuration, managedFields) stays as the client sent it.
#[track_caller]
fn assert_only_the_template_changed(outcome: &Outcome) {
    let pointer = template_pointer(kind_of(&outcome.request));
    let mut mutated = outcome.assert_mutated().clone();
    let original = &outcome.request["object"];
    *mutated.pointer_mut(pointer).unwrap() = original.pointer(pointer).unwrap().clone();
    assert_json_eq(
        original,
        &mutated,
        &format!("the mutated object outside {pointer} (vs the request's object)"),
    );
}

#[track_caller]
fn assert_warnings(outcome: &Outcome, expected: &[String]) {
    assert_eq!(outcome.warnings(), expected, "warnings");
}

// ---------------------------------------------------------------------------
// Workloads: the fold gives back the stored template
// ---------------------------------------------------------------------------

#[test]
fn istio_deployment_reapplied_unchanged_with_kubectl_apply_gets_its_stored_template_back() {
    let outcome = evaluate("istio-deployment-reapplied-unchanged.json", defaults());
    assert!(outcome.accepted());
    // The whole template, the Istio record included: the merge set
    // `sidecar.istio.io/status` back to the manifest's value (istio-proxy
    // under containers), the fold writes it again as the policy stored it.
    assert_template_is_the_stored_one(&outcome);
    assert_only_the_template_changed(&outcome);
    outcome.assert_order(&["istio-init", "istio-proxy"], &["checkout"]);
    assert_warnings(&outcome, &[folded("istio-proxy")]);
}

#[test]
fn istio_deployment_reapplied_by_helm_with_a_new_proxy_image_updates_the_native_sidecar_in_place() {
    let outcome = evaluate(
        "istio-deployment-reapplied-new-proxy-image.json",
        defaults(),
    );
    let spec = "/spec/template/spec";
    // In place: istio-proxy stays the second init container, as stored.
    assert_eq!(
        stored_at(&outcome, &format!("{spec}/initContainers/1/name")),
        &json!("istio-proxy")
    );
    outcome.assert_order(&["istio-init", "istio-proxy"], &["checkout"]);
    let proxy = mutated_at(&outcome, &format!("{spec}/initContainers/1"));
    assert_eq!(proxy["image"], json!("docker.io/istio/proxyv2:1.22.4"));
    assert_eq!(proxy["restartPolicy"], json!("Always"));
    // The readinessProbe did not change, so neither does the derived startupProbe.
    assert_eq!(
        proxy["startupProbe"],
        *stored_at(&outcome, &format!("{spec}/initContainers/1/startupProbe"))
    );
    // Everything else is the stored template with what the upgrade changed:
    // the new proxy image, in istio-init (merged by the patch) and in the
    // native istio-proxy (the fold).
    let mut expected = stored_at(&outcome, "/spec/template").clone();
    for index in [0, 1] {
        *expected
            .pointer_mut(&format!("/spec/initContainers/{index}/image"))
            .unwrap() = json!("docker.io/istio/proxyv2:1.22.4");
    }
    assert_json_eq(
        &expected,
        mutated_at(&outcome, "/spec/template"),
        "the mutated template (vs the stored one with the new proxy image)",
    );
    assert_only_the_template_changed(&outcome);
    assert_warnings(&outcome, &[folded("istio-proxy")]);
}

#[test]
fn linkerd_statefulset_reapplied_server_side_derives_the_same_startup_probe_again() {
    let outcome = evaluate("linkerd-statefulset-reapplied.json", defaults());
    assert_template_is_the_stored_one(&outcome);
    assert_only_the_template_changed(&outcome);
    outcome.assert_order(&["linkerd-init", "linkerd-proxy"], &["ledger"]);
    // SPEC §5 with the default settings, from readiness /ready:4191
    // (initialDelay 2, timeout 1, period 10, failure 3).
    assert_eq!(
        outcome.container("linkerd-proxy")["startupProbe"],
        json!({
            "httpGet": {"path": "/ready", "port": 4191, "scheme": "HTTP"},
            "initialDelaySeconds": 2,
            "timeoutSeconds": 1,
            "periodSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 300
        })
    );
    // linkerd-await and the wait-before-exit hook come with the re-applied entry
    let lifecycle = &outcome.container("linkerd-proxy")["lifecycle"];
    assert!(lifecycle.get("postStart").is_some() && lifecycle.get("preStop").is_some());
    assert_warnings(&outcome, &[folded("linkerd-proxy")]);
}

#[test]
fn vault_agent_cronjob_reapplied_with_a_new_schedule_keeps_its_stored_job_template() {
    let outcome = evaluate("vault-agent-cronjob-reapplied.json", defaults());
    assert_template_is_the_stored_one(&outcome);
    assert_only_the_template_changed(&outcome);
    // The in-place position is the stored one: first, before vault-agent-init.
    outcome.assert_order(&["vault-agent", "vault-agent-init"], &["report"]);
    assert_eq!(mutated_at(&outcome, "/spec/schedule"), &json!("0 3 * * *"));
    assert_warnings(&outcome, &[folded("vault-agent")]);
}

// ---------------------------------------------------------------------------
// Job and Pod UPDATEs: the result only when the pod spec is the stored one
// ---------------------------------------------------------------------------

#[test]
fn job_reapplied_unchanged_by_argo_cd_keeps_its_immutable_pod_spec() {
    let outcome = evaluate("cloud-sql-proxy-job-reapplied-unchanged.json", defaults());
    // The rule: the pod spec equals oldObject's, so the result is returned
    // and the API server sees no change to the immutable template.
    assert_json_eq(
        stored_at(&outcome, "/spec/template/spec"),
        mutated_at(&outcome, "/spec/template/spec"),
        "the mutated Job's pod spec (vs oldObject's)",
    );
    assert_template_is_the_stored_one(&outcome);
    assert_only_the_template_changed(&outcome);
    outcome.assert_order(&["cloud-sql-proxy"], &["migrate"]);
    assert_warnings(&outcome, &[folded("cloud-sql-proxy")]);
}

#[test]
fn job_reapplied_with_new_proxy_args_is_left_to_the_api_server() {
    // The fold would change the immutable pod spec (new args): the result is
    // dropped and the UPDATE accepted untouched; the API server decides.
    let outcome = evaluate("cloud-sql-proxy-job-reapplied-changed.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn job_reapplied_in_reject_or_warn_mode_is_accepted_untouched() {
    // SPEC §2: a Job UPDATE is accepted untouched in every mode; the
    // re-applied exception only ever replaces that with a result whose pod
    // spec is the stored one. In reject and warn modes the duplicate stays
    // malformed, which is not such a result: dropped.
    for settings in [
        json!({"legacySidecars": "reject"}),
        json!({"legacySidecars": "warn"}),
    ] {
        for fixture_name in [
            "cloud-sql-proxy-job-reapplied-unchanged.json",
            "cloud-sql-proxy-job-reapplied-changed.json",
        ] {
            let outcome = evaluate(fixture_name, settings.clone());
            outcome.assert_accepted_untouched();
            outcome.assert_no_warnings();
        }
    }
}

#[test]
fn pod_reapplied_unchanged_keeps_its_stored_spec_and_takes_the_new_label() {
    let outcome = evaluate("pod-reapplied-unchanged.json", defaults());
    assert_template_is_the_stored_one(&outcome);
    assert_only_the_template_changed(&outcome);
    outcome.assert_order(&["cloud-sql-proxy"], &["psql"]);
    assert_eq!(
        mutated_at(&outcome, "/metadata/labels/ticket"),
        &json!("OPS-1290")
    );
    assert_eq!(
        mutated_at(&outcome, "/spec/nodeName"),
        stored_at(&outcome, "/spec/nodeName")
    );
    assert_warnings(&outcome, &[folded("cloud-sql-proxy")]);
}

#[test]
fn pod_reapplied_with_a_changed_proxy_env_is_left_to_the_api_server() {
    let outcome = evaluate("pod-reapplied-changed.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

#[test]
fn pod_reapplied_with_an_automounted_token_is_left_to_the_api_server() {
    // The ServiceAccount admission plugin mounted kube-api-access-* into
    // every container when the Pod was created, the proxy included; it does
    // not run on a Pod UPDATE, so the re-applied proxy comes back without
    // the mount and the fold cannot give back the stored spec.
    let outcome = evaluate("pod-reapplied-unchanged-with-token-mount.json", defaults());
    outcome.assert_accepted_untouched();
    outcome.assert_no_warnings();
}

// ---------------------------------------------------------------------------
// Duplicates that stay malformed (SPEC §4, §8)
// ---------------------------------------------------------------------------

const ISTIO_DUPLICATE: &str = "spec.template.spec.containers[1].name: \"istio-proxy\" is already the name of spec.template.spec.initContainers[1]";

#[test]
fn a_create_with_the_sidecar_in_both_lists_is_malformed() {
    // No merge happens in a CREATE.
    let outcome = evaluate("deployment-create-with-duplicate-sidecar.json", defaults());
    outcome.assert_rejected_with(&[ISTIO_DUPLICATE]);
}

#[test]
fn a_reapplied_sidecar_stays_malformed_in_reject_and_warn_modes() {
    for settings in [
        json!({"legacySidecars": "reject"}),
        json!({"legacySidecars": "warn"}),
    ] {
        let outcome = evaluate("istio-deployment-reapplied-unchanged.json", settings);
        outcome.assert_rejected_with(&[ISTIO_DUPLICATE]);
    }
}

#[test]
fn a_reapplied_container_that_is_not_a_sidecar_stays_malformed() {
    // Without the built-in catalogue istio-proxy is a regular container.
    let outcome = evaluate(
        "istio-deployment-reapplied-unchanged.json",
        json!({"builtinSidecars": false}),
    );
    outcome.assert_rejected_with(&[ISTIO_DUPLICATE]);

    // Opted out by the workload: the standard-containers annotation, or
    // Istio's own opt-out, on the pod template of the re-applied manifest.
    for (key, value) in [
        ("sidecar-lifecycle/standard-containers", "istio-proxy"),
        ("sidecar.istio.io/nativeSidecar", "false"),
    ] {
        let mut request = fixture("istio-deployment-reapplied-unchanged.json");
        request["object"]["spec"]["template"]["metadata"]["annotations"][key] = json!(value);
        let outcome = evaluate_request(request, defaults());
        outcome.assert_rejected_with(&[ISTIO_DUPLICATE]);
    }
}

#[test]
fn a_duplicate_of_an_init_container_that_is_not_native_stays_malformed() {
    let outcome = evaluate("reapplied-duplicate-not-native-init.json", defaults());
    outcome.assert_rejected_with(&[
        "spec.template.spec.containers[1].name: \"cloud-sql-proxy\" is already the name of spec.template.spec.initContainers[0]",
    ]);
}

// ---------------------------------------------------------------------------
// Round trips: CREATE, then the manifest applied again
// ---------------------------------------------------------------------------

/// The UPDATE that a second `kubectl apply` of the CREATE's manifest sends
/// once the policy converted it: `stored` (the mutated object of the CREATE)
/// with the manifest merged in again. The containers follow the manifest's
/// order, each converted sidecar coming back as the CREATE had it; the pod
/// template's metadata (where the Istio record is) and a grace period the
/// manifest sets go back to the manifest's values. With `reset_metadata`
/// false the merge leaves the stored metadata alone.
fn second_apply(create: &Value, stored: &Value, reset_metadata: bool) -> Value {
    let kind = kind_of(create);
    let template = template_pointer(kind);
    let spec = pod_spec_pointer(kind);
    let manifest = &create["object"];
    let mut merged = stored.clone();

    let stored_containers = stored.pointer(&format!("{spec}/containers")).unwrap();
    let by_name = |list: &Value, name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == json!(name))
            .cloned()
    };
    let containers: Vec<Value> = manifest
        .pointer(&format!("{spec}/containers"))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap();
            by_name(stored_containers, name).unwrap_or_else(|| c.clone())
        })
        .collect();
    *merged.pointer_mut(&format!("{spec}/containers")).unwrap() = Value::Array(containers);

    if let Some(tgps) = manifest.pointer(&format!("{spec}/terminationGracePeriodSeconds")) {
        merged.pointer_mut(spec).unwrap()["terminationGracePeriodSeconds"] = tgps.clone();
    }
    if reset_metadata {
        let mut metadata_pointers = vec![format!("{template}/metadata")];
        if kind == "CronJob" {
            metadata_pointers.push("/spec/jobTemplate/metadata".to_owned());
        }
        if kind == "Pod" {
            metadata_pointers = vec!["/metadata/annotations".to_owned()];
        }
        for pointer in metadata_pointers {
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

#[test]
fn second_apply_of_the_converted_istio_deployment_gives_back_the_stored_template() {
    let create = fixture("istio-injected-deployment.json");
    let created = evaluate_request(create.clone(), defaults());
    let stored = created.assert_mutated().clone();
    for reset_metadata in [true, false] {
        let update = second_apply(&create, &stored, reset_metadata);
        assert_eq!(
            update
                .pointer("/object/spec/template/spec/containers")
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["checkout", "istio-proxy"]
        );
        let outcome = evaluate_request(update, defaults());
        // Exactly the template the policy stored, the Istio record's string
        // included (same key order): nothing rolls out.
        assert_eq!(
            mutated_at(&outcome, "/spec/template"),
            &stored["spec"]["template"],
            "reset_metadata: {reset_metadata}"
        );
        assert_warnings(&outcome, &[folded("istio-proxy")]);
    }
}

#[test]
fn second_apply_of_every_converted_workload_gives_back_what_was_stored() {
    let cases: &[(&str, Value)] = &[
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
        let converted: Vec<String> = created
            .init_container_names()
            .into_iter()
            .filter(|name| !init_container_names(&create).contains(name))
            .collect();
        assert!(!converted.is_empty(), "{fixture_name}: nothing converted");

        let outcome = evaluate_request(second_apply(&create, &stored, true), settings.clone());
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
            Some(template) => {
                for difference in differences(stored.pointer(pointer).unwrap(), template) {
                    problems.push(format!("{fixture_name}: {pointer}{difference}"));
                }
            }
        }
        let mut warnings = outcome.warnings();
        warnings.sort();
        let mut expected: Vec<String> = converted.iter().map(|name| folded(name)).collect();
        expected.sort();
        if warnings != expected {
            problems.push(format!(
                "{fixture_name}: warnings {warnings:?}, expected {expected:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the second apply does not give back what was stored (expected vs got):\n{}",
        problems
            .iter()
            .map(|p| format!("  {p}\n"))
            .collect::<String>()
    );
}

/// Names of the init containers of a request's object.
fn init_container_names(request: &Value) -> Vec<String> {
    request["object"]
        .pointer(&format!(
            "{}/initContainers",
            pod_spec_pointer(kind_of(request))
        ))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
