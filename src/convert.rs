//! SPEC §4: what happens to a sidecar declared as a regular container
//! (setting `legacySidecars`), where a converted sidecar is placed, how a
//! re-applied sidecar is folded back, and the injectors' records kept true.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::admission::Operation;
use crate::catalogue;
use crate::plan::{Conversion, Findings, Fold, SetAnnotation};
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
    pub records: Vec<SetAnnotation>,
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
                replacements.insert(pair.init_container, container);
                // A view holds every init container (any malformed one makes
                // it an error), so its positions are the list's indices.
                let stored = view.init_containers.get(pair.init_container);
                if let Some(stored) = stored {
                    layout.replaced.insert(container.index, stored);
                }
                folded.push(Fold {
                    container: container.index,
                    replaces: pair.init_container,
                    kept_mounts: stored
                        .map(|stored| token_mounts_to_keep(view, stored, container))
                        .unwrap_or_default(),
                });
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
        moved: placements(view, &moved, settings),
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
fn injection_records(view: &PodView, converted_names: &[&str]) -> Vec<SetAnnotation> {
    let mut names_by_key: Vec<(&str, Vec<&str>)> = Vec::new();
    for name in converted_names {
        let Some(key) = catalogue::entry_of(name).and_then(|entry| entry.injection_record) else {
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
                rewrites.push(SetAnnotation {
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

/// Where each converted sidecar goes, one by one in `spec.containers`
/// order: just after the last of its setup containers in `initContainers`
/// as it stands (the beginning when there is none), then past the native
/// sidecars that directly follow. A sidecar never starts before what sets
/// up its network or writes what it starts from, and the init containers
/// after it can use it. Each position counts the sidecars inserted before it.
fn placements(view: &PodView, moved: &[&Container], settings: &Settings) -> Vec<(usize, usize)> {
    // (name, native sidecar) of initContainers as the insertions leave it
    let mut init: Vec<(&str, bool)> = view
        .init_containers
        .iter()
        .map(|container| (container.name, container.is_native_sidecar()))
        .collect();
    moved
        .iter()
        .map(|sidecar| {
            let entry = catalogue::entry_of(sidecar.name);
            let is_setup = |name: &str| {
                catalogue::is_builtin_setup(name)
                    || settings
                        .setup_init_containers
                        .iter()
                        .any(|glob| glob.matches(name))
                    || entry.is_some_and(|entry| entry.starts_after(name))
            };
            let mut at = init
                .iter()
                .rposition(|(name, _)| is_setup(name))
                .map_or(0, |last_setup| last_setup + 1);
            while init.get(at).is_some_and(|(_, native)| *native) {
                at += 1;
            }
            init.insert(at, (sidecar.name, true));
            (sidecar.index, at)
        })
        .collect()
}

/// The ServiceAccount admission plugin mounts the token volume into every
/// container of a Pod at creation and never on an update, so a re-applied
/// sidecar comes back without it: the mounts of the stored entry on a
/// `kube-api-access-*` projected volume of the pod, at a path the re-applied
/// entry does not mount, are kept (SPEC §4).
fn token_mounts_to_keep<'a>(
    view: &PodView<'a>,
    stored: &Container<'a>,
    reapplied: &Container<'a>,
) -> Vec<Value> {
    fn mounts<'a>(container: &Container<'a>) -> &'a [Value] {
        container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    let is_token_volume = |name: &str| {
        view.volumes.iter().any(|volume| {
            volume.get("name").and_then(Value::as_str) == Some(name)
                && name.starts_with(SERVICE_ACCOUNT_TOKEN_VOLUME_PREFIX)
                && volume.get("projected").is_some_and(|p| !p.is_null())
        })
    };
    let reapplied_paths: Vec<&Value> = mounts(reapplied)
        .iter()
        .filter_map(|mount| mount.get("mountPath"))
        .collect();
    mounts(stored)
        .iter()
        .filter(|mount| {
            mount
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_token_volume)
                && mount
                    .get("mountPath")
                    .is_some_and(|path| !reapplied_paths.contains(&path))
        })
        .cloned()
        .collect()
}

/// The volume the ServiceAccount admission plugin adds to a Pod.
const SERVICE_ACCOUNT_TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::POD;
    use crate::typing::classify;
    use serde_json::{Value, json};

    #[derive(Debug)]
    struct Outcome {
        conversion: Option<Conversion>,
        records: Vec<SetAnnotation>,
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
            .moved[0]
            .1
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

    /// Where each converted sidecar lands: the init containers' names after
    /// the conversion.
    fn placed(init: Value, containers: Value) -> Vec<String> {
        let pod = json!({"spec": {"initContainers": init, "containers": containers}});
        let planned = plan_object(&pod, Operation::Create, json!({})).unwrap();
        let view = PodView::read(&pod, POD).unwrap();
        let mut names: Vec<String> = view
            .init_containers
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        for (index, at) in planned.conversion.unwrap().moved {
            names.insert(at, view.containers[index].name.to_string());
        }
        names
    }

    #[test]
    fn each_sidecar_starts_after_its_own_setup_containers() {
        // SPEC §4: vault-agent also after vault-agent-init, which Vault appends last
        assert_eq!(
            placed(
                json!([{"name": "linkerd-init"}, {"name": "db-migrate"}, {"name": "vault-agent-init"}]),
                json!([{"name": "app"}, {"name": "linkerd-proxy"}, {"name": "vault-agent"}])
            ),
            [
                "linkerd-init",
                "linkerd-proxy",
                "db-migrate",
                "vault-agent-init",
                "vault-agent"
            ]
        );
        // vault-agent first in containers: each is placed as the list stands
        assert_eq!(
            placed(
                json!([{"name": "vault-agent-init"}, {"name": "linkerd-init"}]),
                json!([{"name": "vault-agent"}, {"name": "app"}, {"name": "linkerd-proxy"}])
            ),
            [
                "vault-agent-init",
                "linkerd-init",
                "vault-agent",
                "linkerd-proxy"
            ]
        );
        // Consul's init containers write the proxy id the dataplane reads
        assert_eq!(
            placed(
                json!([{"name": "consul-connect-init"}, {"name": "wait-for-db"}]),
                json!([{"name": "otel-collector"}, {"name": "consul-dataplane"}])
            ),
            ["consul-connect-init", "consul-dataplane", "wait-for-db"]
        );
        assert_eq!(
            placed(
                json!([{"name": "consul-connect-inject-init-web"}, {"name": "consul-connect-inject-init-admin"}]),
                json!([{"name": "web"}, {"name": "consul-dataplane-web"}, {"name": "consul-dataplane-admin"}])
            ),
            [
                "consul-connect-inject-init-web",
                "consul-connect-inject-init-admin",
                "consul-dataplane-web",
                "consul-dataplane-admin"
            ]
        );
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
                moved: vec![(0, 1), (2, 2)],
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
                folded: vec![Fold {
                    container: 1,
                    replaces: 1,
                    kept_mounts: Vec::new(),
                }],
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
    fn a_re_applied_sidecar_keeps_the_token_mount_the_api_server_added() {
        let token = json!({"name": "kube-api-access-7wq2n", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
        let other = json!({"name": "certs", "mountPath": "/certs"});
        let volumes = json!([{"name": "kube-api-access-7wq2n", "projected": {"sources": []}},
            {"name": "certs", "secret": {"secretName": "certs"}}]);
        let kept = |reapplied_mounts: Value, volumes: Value| {
            let pod = json!({"spec": {"volumes": volumes,
                "initContainers": [{"name": "cloud-sql-proxy", "restartPolicy": "Always", "volumeMounts": [other, token]}],
                "containers": [{"name": "psql"}, {"name": "cloud-sql-proxy", "volumeMounts": reapplied_mounts}]}});
            plan_object(&pod, Operation::ImmutableUpdate, json!({}))
                .unwrap()
                .conversion
                .unwrap()
                .folded
                .remove(0)
                .kept_mounts
        };
        assert_eq!(
            kept(json!([other]), volumes.clone()),
            std::slice::from_ref(&token)
        );
        assert_eq!(
            kept(Value::Null, volumes.clone()),
            std::slice::from_ref(&token)
        );
        // the re-applied entry mounts that path itself
        let own = json!([{"name": "my-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        assert!(kept(own, volumes).is_empty());
        // not a projected kube-api-access-* volume of the pod
        assert!(
            kept(
                json!([]),
                json!([{"name": "kube-api-access-7wq2n", "emptyDir": {}}])
            )
            .is_empty()
        );
        assert!(kept(json!([]), Value::Null).is_empty());
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
