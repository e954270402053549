//! SPEC §4: what happens to a sidecar declared as a regular container
//! (setting `legacySidecars`), where a converted sidecar is placed, how a
//! re-applied sidecar is folded back, and the injectors' records kept true.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::admission::Operation;
use crate::catalogue::{self, BUILTIN_SETUP_INIT_CONTAINERS};
use crate::plan::{Conversion, Findings, RecordRewrite};
use crate::pod::{Container, List, Malformed, PodView, Reapplied};
use crate::settings::{LegacySidecars, Settings};
use crate::typing::Typing;

/// The pod as it will be once the planned conversion is applied: what the
/// start-up, grace and hygiene rules reason about.
#[derive(Debug, Default)]
pub struct Layout<'v, 'a> {
    /// Init containers with `restartPolicy: Always`, converted ones included;
    /// a re-applied sidecar stands in place of the entry it replaces.
    pub native_sidecars: Vec<&'v Container<'a>>,
    /// Entries of `spec.containers` after conversion, legacy sidecars left
    /// in place included.
    pub main: Vec<&'v Container<'a>>,
    /// Sidecars that stay regular containers (`warn`, `reject`, or a
    /// container with its own restartPolicy).
    pub legacy_sidecars: Vec<&'v Container<'a>>,
    /// The stored native sidecar each re-applied one replaces, by the
    /// re-applied entry's index in `spec.containers`.
    pub replaced: HashMap<usize, &'v Container<'a>>,
}

impl<'v, 'a> Layout<'v, 'a> {
    /// The stored native sidecar that `sidecar`, re-applied, replaces.
    pub fn replaced_by(&self, sidecar: &Container) -> Option<&'v Container<'a>> {
        (sidecar.list == List::Containers)
            .then(|| self.replaced.get(&sidecar.index).copied())
            .flatten()
    }
}

/// What the conversion rule decided for the pod.
#[derive(Debug)]
pub struct Planned<'v, 'a> {
    pub conversion: Option<Conversion>,
    pub records: Vec<RecordRewrite>,
    pub layout: Layout<'v, 'a>,
}

/// Plans the conversion of the legacy sidecars `typing` found, and the fold
/// of re-applied ones. A re-applied name that cannot be folded stays the
/// malformed duplicate it is (SPEC §8): `Err` with those.
pub fn plan<'v, 'a>(
    view: &'v PodView<'a>,
    operation: Operation,
    typing: &Typing,
    settings: &Settings,
    findings: &mut Findings,
) -> Result<Planned<'v, 'a>, Vec<Malformed>> {
    let reapplied: HashMap<usize, &Reapplied> = view
        .reapplied
        .iter()
        .map(|pair| (pair.container, pair))
        .collect();
    let mut layout = Layout::default();
    let mut moved = Vec::new();
    let mut folded = Vec::new();
    // stored native sidecar index in initContainers -> re-applied entry
    let mut replacements = HashMap::new();
    let mut converted_names = Vec::new();
    let mut duplicates = Vec::new();
    for (container, role) in view.containers.iter().zip(typing) {
        let name = container.name;
        let convertible = !container.sets_own_restart_policy();
        if let Some(pair) = reapplied.get(&container.index) {
            if operation.is_update()
                && settings.legacy_sidecars == LegacySidecars::Convert
                && role.is_some()
                && convertible
            {
                findings.changed(format!(
                    "{name}: re-applied in containers; folded into its native sidecar in initContainers"
                ));
                folded.push((container.index, pair.init_container));
                replacements.insert(pair.init_container, container);
                // A view holds every init container (any malformed one makes
                // it an error), so its positions are the list's indices.
                if let Some(stored) = view.init_containers.get(pair.init_container) {
                    layout.replaced.insert(container.index, stored);
                }
                converted_names.push(name);
            } else {
                duplicates.push(pair.duplicate.clone());
            }
            continue;
        }
        let Some(reason) = role else {
            layout.main.push(container);
            continue;
        };
        match settings.legacy_sidecars {
            LegacySidecars::Convert if convertible => {
                findings.changed(format!(
                    "{name}: converted to a native sidecar in initContainers ({})",
                    reason.describe(settings)
                ));
                moved.push(container);
                converted_names.push(name);
                continue;
            }
            LegacySidecars::Convert => findings.warn(format!(
                "{name}: sets its own restartPolicy, so it stays a regular container (not converted)"
            )),
            LegacySidecars::Reject => findings.violation(format!(
                "{} is a sidecar ({}) declared as a regular container{}: declare it in {}.initContainers with restartPolicy: Always",
                view.locate(container),
                reason.describe(settings),
                if convertible { "" } else { " with its own restart policy" },
                view.spec_path,
            )),
            LegacySidecars::Warn if view.runs_to_completion => findings.warn(format!(
                "{name}: sidecar runs as a regular container, so the Job will never complete; make it a native sidecar"
            )),
            LegacySidecars::Warn => findings.warn(format!(
                "{name}: sidecar runs as a regular container; declare it in initContainers with restartPolicy: Always"
            )),
        }
        layout.main.push(container);
        layout.legacy_sidecars.push(container);
    }
    if !duplicates.is_empty() {
        return Err(duplicates);
    }
    layout.native_sidecars = view
        .init_containers
        .iter()
        .filter(|container| container.is_native_sidecar())
        .map(|container| {
            replacements
                .get(&container.index)
                .copied()
                .unwrap_or(container)
        })
        .chain(moved.iter().copied())
        .collect();
    let conversion = (!moved.is_empty() || !folded.is_empty()).then(|| Conversion {
        moved: moved.iter().map(|container| container.index).collect(),
        insert_at: insertion_point(view, settings),
        folded,
    });
    Ok(Planned {
        conversion,
        records: injection_records(view, &converted_names),
        layout,
    })
}

/// The injectors' records (SPEC §4) rewritten so that the converted names
/// they list under `containers` are listed under `initContainers`.
fn injection_records(view: &PodView, converted_names: &[&str]) -> Vec<RecordRewrite> {
    let mut names_by_key: Vec<(&str, Vec<&str>)> = Vec::new();
    for name in converted_names {
        let Some(key) = catalogue::entry(name).and_then(|entry| entry.injection_record) else {
            continue;
        };
        match names_by_key.iter_mut().find(|(known, _)| *known == key) {
            Some((_, names)) => names.push(name),
            None => names_by_key.push((key, vec![name])),
        }
    }
    let mut rewrites = Vec::new();
    for (key, names) in names_by_key {
        for (metadata, record) in view.marked_annotations(key) {
            if let Some(value) = moved_to_init_containers(record, &names) {
                rewrites.push(RecordRewrite {
                    metadata,
                    key: key.to_string(),
                    value,
                });
            }
        }
    }
    rewrites
}

/// A record (a JSON object whose `containers` and `initContainers` are
/// lists of names, absent or `null` for none) with `names` moved from
/// `containers` to the end of `initContainers`, as compact JSON; `None` when
/// it is no such record or lists none of them under `containers`. Members
/// other than the two lists are copied as written (re-serialized only when
/// their text is not compact), which spares parsing Istio's long lists of
/// volumes on every conversion.
fn moved_to_init_containers(record: &str, names: &[&str]) -> Option<String> {
    // Most records (a stored, already rewritten one) need no parse at all.
    if !names.iter().any(|name| record.contains(name)) {
        return None;
    }
    let mut members: BTreeMap<String, &RawValue> = serde_json::from_str(record).ok()?;
    let mut names_in = |field: &str| -> Option<Vec<String>> {
        match members.remove(field) {
            None => Some(Vec::new()),
            Some(list) => serde_json::from_str::<Option<Vec<String>>>(list.get())
                .ok()
                .map(Option::unwrap_or_default),
        }
    };
    let mut containers = names_in("containers")?;
    let mut init_containers = names_in("initContainers")?;
    let mut changed = false;
    for name in names {
        if let Some(at) = containers.iter().position(|listed| listed == name) {
            init_containers.push(containers.remove(at));
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut rewritten: BTreeMap<String, Box<RawValue>> = BTreeMap::new();
    for (key, value) in members {
        rewritten.insert(key, compact(value)?);
    }
    for (key, list) in [
        ("containers", containers),
        ("initContainers", init_containers),
    ] {
        rewritten.insert(
            key.to_string(),
            RawValue::from_string(serde_json::to_string(&list).ok()?).ok()?,
        );
    }
    serde_json::to_string(&rewritten).ok()
}

/// `value` as compact JSON: as written unless its text has white space.
fn compact(value: &RawValue) -> Option<Box<RawValue>> {
    let text = value.get();
    if !text.bytes().any(|byte| byte.is_ascii_whitespace()) {
        return Some(value.to_owned());
    }
    let parsed: Value = serde_json::from_str(text).ok()?;
    RawValue::from_string(serde_json::to_string(&parsed).ok()?).ok()
}

/// Just after the last setup container (the beginning when there is none),
/// then past the native sidecars that directly follow: a sidecar never starts
/// before its network is set up, and the init containers after it can use it.
fn insertion_point(view: &PodView, settings: &Settings) -> usize {
    let init = &view.init_containers;
    let is_setup = |container: &Container| {
        BUILTIN_SETUP_INIT_CONTAINERS.contains(&container.name)
            || settings
                .setup_init_containers
                .iter()
                .any(|glob| glob.matches(container.name))
    };
    let mut at = init
        .iter()
        .rposition(is_setup)
        .map_or(0, |last_setup| last_setup + 1);
    while init.get(at).is_some_and(Container::is_native_sidecar) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::POD;
    use crate::typing::classify;
    use serde_json::{Value, json};

    #[derive(Debug)]
    struct Outcome {
        conversion: Option<Conversion>,
        records: Vec<RecordRewrite>,
        main: Vec<String>,
        native: Vec<String>,
        legacy: Vec<String>,
        findings: Findings,
    }

    fn plan_pod(init: Value, containers: Value, settings: Value, owners: Value) -> Outcome {
        let pod = json!({"metadata": {"ownerReferences": owners}, "spec": {"initContainers": init, "containers": containers}});
        plan_object(&pod, Operation::Create, settings).unwrap()
    }

    fn plan_object(
        pod: &Value,
        operation: Operation,
        settings: Value,
    ) -> Result<Outcome, Vec<String>> {
        let view = PodView::read(pod, POD).unwrap();
        let settings = Settings::from_value(&settings).unwrap();
        let mut findings = Findings::default();
        let typing = classify(&view, &settings, &mut findings);
        let planned = plan(&view, operation, &typing, &settings, &mut findings)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let names = |list: &[&Container]| list.iter().map(|c| c.name.to_string()).collect();
        Ok(Outcome {
            conversion: planned.conversion,
            records: planned.records,
            main: names(&planned.layout.main),
            native: names(&planned.layout.native_sidecars),
            legacy: names(&planned.layout.legacy_sidecars),
            findings,
        })
    }

    fn insert_at(init: Value, settings: Value) -> usize {
        let containers = json!([{"name": "app"}, {"name": "cloud-sql-proxy"}]);
        plan_pod(init, containers, settings, json!([]))
            .conversion
            .unwrap()
            .insert_at
    }

    #[test]
    fn placement_follows_setup_containers_and_native_sidecars() {
        let native = |name: &str| json!({"name": name, "restartPolicy": "Always"});
        // [istio-init, istio-proxy (native), db-migrate] -> after istio-proxy
        assert_eq!(
            insert_at(
                json!([{"name": "istio-init"}, native("istio-proxy"), {"name": "db-migrate"}]),
                json!({})
            ),
            2
        );
        // [db-migrate] -> at the beginning
        assert_eq!(insert_at(json!([{"name": "db-migrate"}]), json!({})), 0);
        // [wait-for-db, istio-init] -> after istio-init
        assert_eq!(
            insert_at(
                json!([{"name": "wait-for-db"}, {"name": "istio-init"}]),
                json!({})
            ),
            2
        );
        // native sidecars at the beginning are passed too
        assert_eq!(
            insert_at(
                json!([native("vault-agent"), {"name": "db-migrate"}]),
                json!({})
            ),
            1
        );
        // only natives that directly follow the setup containers
        assert_eq!(
            insert_at(
                json!([{"name": "linkerd-init"}, {"name": "db-migrate"}, native("vault-agent")]),
                json!({})
            ),
            1
        );
        // no init containers at all
        assert_eq!(insert_at(Value::Null, json!({})), 0);
    }

    #[test]
    fn setup_containers_come_from_settings_too() {
        let init = json!([{"name": "cni-net-setup"}, {"name": "db-migrate"}]);
        assert_eq!(insert_at(init.clone(), json!({})), 0);
        assert_eq!(
            insert_at(init, json!({"setupInitContainers": ["*-net-setup"]})),
            1
        );
    }

    #[test]
    fn convert_moves_sidecars_and_keeps_their_order() {
        let planned = plan_pod(
            json!([{"name": "istio-init"}]),
            json!([{"name": "linkerd-proxy"}, {"name": "web"}, {"name": "vault-agent"}]),
            json!({}),
            json!([]),
        );
        assert_eq!(
            planned.conversion,
            Some(Conversion {
                moved: vec![0, 2],
                insert_at: 1,
                folded: Vec::new(),
            })
        );
        assert_eq!(planned.main, ["web"]);
        assert_eq!(planned.native, ["linkerd-proxy", "vault-agent"]);
        assert_eq!(planned.findings.warnings().len(), 2);
        assert!(
            planned.findings.warnings()[0]
                .starts_with("linkerd-proxy: converted to a native sidecar")
        );
    }

    #[test]
    fn a_container_with_its_own_restart_policy_is_never_moved() {
        for field in [
            json!({"restartPolicy": "Never"}),
            json!({"restartPolicyRules": []}),
        ] {
            let mut sidecar = json!({"name": "consul-dataplane"});
            sidecar
                .as_object_mut()
                .unwrap()
                .extend(field.as_object().unwrap().clone());
            let planned = plan_pod(
                Value::Null,
                json!([{"name": "app"}, sidecar]),
                json!({}),
                json!([]),
            );
            assert_eq!(planned.conversion, None);
            assert_eq!(planned.main, ["app", "consul-dataplane"]);
            assert_eq!(planned.legacy, ["consul-dataplane"]);
            assert!(planned.findings.warnings()[0].contains("sets its own restartPolicy"));
        }
    }

    #[test]
    fn reject_names_each_container_and_the_fix() {
        let planned = plan_pod(
            Value::Null,
            json!([{"name": "app"}, {"name": "consul-dataplane"}, {"name": "daprd", "restartPolicy": "Never"}]),
            json!({"legacySidecars": "reject"}),
            json!([]),
        );
        assert_eq!(planned.conversion, None);
        assert_eq!(planned.findings.violations.len(), 2);
        assert!(
            planned.findings.violations[0].starts_with(
                "spec.containers[1] (consul-dataplane) is a sidecar (built-in sidecar)"
            )
        );
        assert!(
            planned.findings.violations[0]
                .ends_with("spec.initContainers with restartPolicy: Always")
        );
        assert!(planned.findings.violations[1].starts_with("spec.containers[2] (daprd)"));
        assert!(
            planned.findings.violations[1]
                .contains("regular container with its own restart policy: declare it")
        );
    }

    #[test]
    fn warn_leaves_sidecars_in_place_and_says_when_a_job_never_completes() {
        let containers = json!([{"name": "migrate"}, {"name": "cloud-sql-proxy"}]);
        let planned = plan_pod(
            Value::Null,
            containers.clone(),
            json!({"legacySidecars": "warn"}),
            json!([]),
        );
        assert_eq!(planned.conversion, None);
        assert_eq!(planned.main, ["migrate", "cloud-sql-proxy"]);
        assert!(!planned.findings.warnings()[0].contains("Job"));
        let job_owned = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "controller": true}]);
        let planned = plan_pod(
            Value::Null,
            containers,
            json!({"legacySidecars": "warn"}),
            job_owned,
        );
        assert!(planned.findings.warnings()[0].contains("the Job will never complete"));
    }

    fn reapplied_pod() -> Value {
        json!({"metadata": {"annotations": {"sidecar.istio.io/status":
            "{\"initContainers\":[\"istio-init\",\"istio-proxy\"],\"containers\":[],\"revision\":\"default\"}"}},
            "spec": {
            "initContainers": [{"name": "istio-init"}, {"name": "istio-proxy", "restartPolicy": "Always", "image": "proxyv2:1.22.3"}],
            "containers": [{"name": "app"}, {"name": "istio-proxy", "image": "proxyv2:1.22.4"}]}})
    }

    #[test]
    fn a_re_applied_sidecar_replaces_its_native_entry_in_an_update() {
        let planned = plan_object(&reapplied_pod(), Operation::Update, json!({})).unwrap();
        assert_eq!(
            planned.conversion,
            Some(Conversion {
                moved: Vec::new(),
                insert_at: 2,
                folded: vec![(1, 1)],
            })
        );
        assert_eq!(planned.main, ["app"]);
        assert_eq!(planned.native, ["istio-proxy"]);
        assert_eq!(
            planned.findings.warnings(),
            [
                "istio-proxy: re-applied in containers; folded into its native sidecar in initContainers"
            ]
        );
        // the record already lists istio-proxy under initContainers
        assert!(planned.records.is_empty());
    }

    #[test]
    fn a_re_applied_sidecar_stays_a_malformed_duplicate_otherwise() {
        let duplicate = "spec.containers[1].name: \"istio-proxy\" is already the name of spec.initContainers[1]";
        let pod = reapplied_pod();
        assert_eq!(
            plan_object(&pod, Operation::Create, json!({})).unwrap_err(),
            [duplicate]
        );
        for mode in ["reject", "warn"] {
            assert_eq!(
                plan_object(&pod, Operation::Update, json!({"legacySidecars": mode})).unwrap_err(),
                [duplicate]
            );
        }
        // not a sidecar: builtinSidecars off
        assert_eq!(
            plan_object(&pod, Operation::Update, json!({"builtinSidecars": false})).unwrap_err(),
            [duplicate]
        );
    }

    #[test]
    fn the_istio_record_follows_the_converted_proxy() {
        let pod = json!({"metadata": {"annotations": {"sidecar.istio.io/status":
            "{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"],\"volumes\":[\"istio-envoy\"],\"imagePullSecrets\":null}"}},
            "spec": {"initContainers": [{"name": "istio-init"}], "containers": [{"name": "app"}, {"name": "istio-proxy"}]}});
        let planned = plan_object(&pod, Operation::Create, json!({})).unwrap();
        assert_eq!(planned.records.len(), 1);
        assert_eq!(planned.records[0].metadata, "/metadata");
        assert_eq!(
            planned.records[0].value,
            r#"{"containers":[],"imagePullSecrets":null,"initContainers":["istio-init","istio-proxy"],"volumes":["istio-envoy"]}"#
        );
    }

    #[test]
    fn records_that_are_not_lists_of_names_are_left_alone() {
        for record in [
            "not json",
            "[]",
            r#"{"containers":"istio-proxy"}"#,
            r#"{"containers":["istio-proxy"],"initContainers":[7]}"#,
            r#"{"containers":["app"]}"#,
        ] {
            assert_eq!(
                moved_to_init_containers(record, &["istio-proxy"]),
                None,
                "{record}"
            );
        }
        // a pretty-printed record comes back compact, every member kept
        assert_eq!(
            moved_to_init_containers(
                "{\n  \"revision\": \"default\",\n  \"volumes\": [ \"istio-envoy\" ],\n  \"containers\": [\"istio-proxy\"],\n  \"x\": {\"a b\": 15021}\n}",
                &["istio-proxy"]
            )
            .as_deref(),
            Some(
                r#"{"containers":[],"initContainers":["istio-proxy"],"revision":"default","volumes":["istio-envoy"],"x":{"a b":15021}}"#
            )
        );
        assert_eq!(
            moved_to_init_containers(r#"{"containers":["istio-proxy"]}"#, &["istio-proxy"])
                .as_deref(),
            Some(r#"{"containers":[],"initContainers":["istio-proxy"]}"#)
        );
    }
}
