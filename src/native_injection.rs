//! SPEC §4, "Asking injectors for native sidecars". A ClusterAdmissionPolicy
//! sees every Pod before the injectors do, so it never sees the sidecars
//! they add; but most injectors read a per-pod switch that makes them inject
//! a native sidecar themselves, with their own probes and placement. At Pod
//! CREATE the policy adds each enabled injector's switch that the pod lacks.

use crate::admission::{Operation, Workload};
use crate::catalogue::Entry;
use crate::plan::SetAnnotation;
use crate::pod::PodView;
use crate::settings::{LegacySidecars, Settings};

/// The value every added switch has.
const SWITCHED_ON: &str = "true";

/// The switches to add to the Pod's own annotations. Silent: the stored Pod
/// shows them, and the controllers that create most Pods read no warnings.
pub fn plan(
    view: &PodView,
    workload: Workload,
    operation: Operation,
    settings: &Settings,
) -> Vec<SetAnnotation> {
    // Only a Pod at creation: a workload's template would roll it out and
    // show as drift in every GitOps tool, and its Pods come through here.
    if !workload.is_pod()
        || operation != Operation::Create
        || settings.legacy_sidecars != LegacySidecars::Convert
        || !settings.native_injection
    {
        return Vec::new();
    }
    settings
        .builtin_sidecars
        .iter()
        .filter(|entry| !kept_regular(view, entry, settings))
        .filter_map(|entry| entry.native_switch.as_ref())
        // Any value already there, "false" included, is the user's choice.
        .filter(|switch| !switch.keys.iter().any(|key| view.has_annotation(key)))
        .map(|switch| SetAnnotation {
            metadata: workload.pod_metadata,
            key: switch.key.to_string(),
            value: SWITCHED_ON.to_string(),
        })
        .collect()
}

/// Whether the pod's standard annotation names a container of this entry:
/// the user keeps that sidecar a regular container.
fn kept_regular(view: &PodView, entry: &Entry, settings: &Settings) -> bool {
    settings
        .standard_annotation
        .as_deref()
        .is_some_and(|key| view.annotation_names(key).any(|name| entry.matches(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::POD;
    use serde_json::{Value, json};

    fn switches(annotations: Value, operation: Operation, settings: Value) -> Vec<String> {
        let pod = json!({"metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "web"}]}});
        let view = PodView::read(&pod, POD).unwrap();
        let settings = Settings::from_value(&settings).unwrap();
        plan(&view, POD, operation, &settings)
            .into_iter()
            .map(|set| {
                assert_eq!((set.metadata, set.value.as_str()), ("/metadata", "true"));
                set.key
            })
            .collect()
    }

    const EVERY_SWITCH: [&str; 4] = [
        "sidecar.istio.io/nativeSidecar",
        "config.alpha.linkerd.io/proxy-enable-native-sidecar",
        "dapr.io/enable-native-sidecar",
        "consul.hashicorp.com/enable-consul-dataplane-as-sidecar",
    ];

    #[test]
    fn a_pod_without_switches_gets_every_injector_s() {
        assert_eq!(
            switches(json!({}), Operation::Create, json!({})),
            EVERY_SWITCH
        );
        assert_eq!(
            switches(Value::Null, Operation::Create, json!({})),
            EVERY_SWITCH
        );
    }

    #[test]
    fn an_existing_value_is_the_user_s_choice() {
        let found = switches(
            json!({"sidecar.istio.io/nativeSidecar": "false", "dapr.io/enable-native-sidecar": ""}),
            Operation::Create,
            json!({}),
        );
        assert_eq!(found, [EVERY_SWITCH[1], EVERY_SWITCH[3]]);
    }

    #[test]
    fn linkerd_s_switch_counts_under_any_of_its_prefixes_and_no_other_key() {
        for prefix in [
            "config.linkerd.io",
            "config.beta.linkerd.io",
            "config.alpha.linkerd.io",
        ] {
            let annotations = json!({format!("{prefix}/proxy-enable-native-sidecar"): "true"});
            let found = switches(annotations, Operation::Create, json!({}));
            assert!(!found.contains(&EVERY_SWITCH[1].to_string()), "{prefix}");
            assert_eq!(found.len(), 3);
        }
        let other = json!({"config.linkerd.io/proxy-cpu-request": "100m"});
        assert_eq!(switches(other, Operation::Create, json!({})), EVERY_SWITCH);
    }

    #[test]
    fn a_container_kept_regular_keeps_its_injector_classic() {
        let annotations = json!({"sidecar-lifecycle/standard-containers": "web, istio-proxy"});
        let found = switches(annotations, Operation::Create, json!({}));
        assert_eq!(found, EVERY_SWITCH[1..]);
        let consul = json!({"ops.example.com/regular": "consul-dataplane-billing"});
        let found = switches(
            consul,
            Operation::Create,
            json!({"standardAnnotation": "ops.example.com/regular"}),
        );
        assert_eq!(found, EVERY_SWITCH[..3]);
    }

    #[test]
    fn only_enabled_entries_and_only_at_pod_create_in_convert_mode() {
        let only_istio = json!({"builtinSidecars": ["istio-proxy", "vault-agent"]});
        assert_eq!(
            switches(json!({}), Operation::Create, only_istio),
            [EVERY_SWITCH[0]]
        );
        for settings in [
            json!({"nativeInjection": false}),
            json!({"builtinSidecars": false}),
            json!({"legacySidecars": "warn"}),
            json!({"legacySidecars": "reject"}),
        ] {
            assert!(switches(json!({}), Operation::Create, settings).is_empty());
        }
        for operation in [Operation::Update, Operation::ImmutableUpdate] {
            assert!(switches(json!({}), operation, json!({})).is_empty());
        }
    }
}
