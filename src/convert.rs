//! SPEC §4: what happens to a sidecar declared as a regular container
//! (setting `legacySidecars`), and where a converted sidecar is placed.

use crate::catalogue::BUILTIN_SETUP_INIT_CONTAINERS;
use crate::plan::{Conversion, Findings};
use crate::pod::{Container, PodView};
use crate::settings::{LegacySidecars, Settings};
use crate::typing::Typing;

/// The pod as it will be once the planned conversion is applied: what the
/// start-up, grace and hygiene rules reason about.
#[derive(Debug, Default)]
pub struct Layout<'v, 'a> {
    /// Init containers with `restartPolicy: Always`, converted ones included.
    pub native_sidecars: Vec<&'v Container<'a>>,
    /// Entries of `spec.containers` after conversion, legacy sidecars left
    /// in place included.
    pub main: Vec<&'v Container<'a>>,
    /// Sidecars that stay regular containers (`warn`, `reject`, or a
    /// container with its own restartPolicy).
    pub legacy_sidecars: Vec<&'v Container<'a>>,
}

/// Plans the conversion of the legacy sidecars `typing` found, and returns
/// the layout that results.
pub fn plan<'v, 'a>(
    view: &'v PodView<'a>,
    typing: &Typing,
    settings: &Settings,
    findings: &mut Findings,
) -> (Option<Conversion>, Layout<'v, 'a>) {
    let mut layout = Layout {
        native_sidecars: view
            .init_containers
            .iter()
            .filter(|c| c.is_native_sidecar())
            .collect(),
        ..Layout::default()
    };
    let mut moved = Vec::new();
    for (container, role) in view.containers.iter().zip(typing) {
        let Some(reason) = role else {
            layout.main.push(container);
            continue;
        };
        let name = container.name;
        let convertible = !container.sets_own_restart_policy();
        match settings.legacy_sidecars {
            LegacySidecars::Convert if convertible => {
                findings.changed(format!(
                    "{name}: converted to a native sidecar in initContainers ({})",
                    reason.describe(settings)
                ));
                moved.push(container.index);
                layout.native_sidecars.push(container);
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
    let conversion = (!moved.is_empty()).then(|| Conversion {
        moved,
        insert_at: insertion_point(view, settings),
    });
    (conversion, layout)
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

    struct Planned {
        conversion: Option<Conversion>,
        main: Vec<String>,
        native: Vec<String>,
        legacy: Vec<String>,
        findings: Findings,
    }

    fn plan_pod(init: Value, containers: Value, settings: Value, owners: Value) -> Planned {
        let pod = json!({"metadata": {"ownerReferences": owners}, "spec": {"initContainers": init, "containers": containers}});
        let view = PodView::read(&pod, POD).unwrap();
        let settings = Settings::from_value(&settings).unwrap();
        let mut findings = Findings::default();
        let typing = classify(&view, &settings, &mut findings);
        let (conversion, layout) = plan(&view, &typing, &settings, &mut findings);
        let names = |list: &[&Container]| list.iter().map(|c| c.name.to_string()).collect();
        Planned {
            conversion,
            main: names(&layout.main),
            native: names(&layout.native_sidecars),
            legacy: names(&layout.legacy_sidecars),
            findings,
        }
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
                insert_at: 1
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
            let mut sidecar = json!({"name": "istio-proxy"});
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
            assert_eq!(planned.main, ["app", "istio-proxy"]);
            assert_eq!(planned.legacy, ["istio-proxy"]);
            assert!(planned.findings.warnings()[0].contains("sets its own restartPolicy"));
        }
    }

    #[test]
    fn reject_names_each_container_and_the_fix() {
        let planned = plan_pod(
            Value::Null,
            json!([{"name": "app"}, {"name": "istio-proxy"}, {"name": "daprd", "restartPolicy": "Never"}]),
            json!({"legacySidecars": "reject"}),
            json!([]),
        );
        assert_eq!(planned.conversion, None);
        assert_eq!(planned.findings.violations.len(), 2);
        assert!(
            planned.findings.violations[0]
                .starts_with("spec.containers[1] (istio-proxy) is a sidecar (built-in sidecar)")
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
}
