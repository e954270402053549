//! SPEC §3: which entries of `spec.containers` are sidecars. Every container
//! is classified once, first matching rule wins.

use std::collections::HashSet;

use crate::catalogue::BUILTIN_SIDECARS;
use crate::plan::Findings;
use crate::pod::{List, PodView};
use crate::settings::Settings;

/// Why a container of `spec.containers` is a sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `lifecycle.type: Sidecar` (declared).
    Marker,
    /// Named in the pod's sidecar annotation (declared).
    Annotation,
    /// Matches `sidecars[i]` of the settings (detected).
    Matcher(usize),
    /// In the built-in catalogue (detected).
    Catalogue,
}

impl Reason {
    /// Declared sidecars are the user's statement; detected ones are the
    /// policy's guess, which yields when nothing else would be left to run.
    pub fn is_declared(self) -> bool {
        matches!(self, Reason::Marker | Reason::Annotation)
    }

    pub fn describe(self, settings: &Settings) -> String {
        match self {
            Reason::Marker => "lifecycle.type: Sidecar".to_string(),
            Reason::Annotation => format!(
                "named in annotation {}",
                settings.sidecar_annotation.as_deref().unwrap_or_default()
            ),
            Reason::Matcher(index) => format!("matches sidecars[{index}]"),
            Reason::Catalogue => "built-in sidecar".to_string(),
        }
    }
}

/// The role of each entry of `spec.containers`, by index: `Some(reason)`
/// for a sidecar declared as a regular container, `None` for a main container.
pub type Typing = Vec<Option<Reason>>;

/// Classifies every entry of `spec.containers`; annotation names that match
/// no container become warnings, a pod of declared sidecars only a violation.
pub fn classify(view: &PodView, settings: &Settings, findings: &mut Findings) -> Typing {
    let annotated = annotated_names(view, settings, findings);
    let mut typing: Typing = view
        .containers
        .iter()
        .map(|container| match container.lifecycle_type() {
            Some("Standard") => None,
            Some("Sidecar") => Some(Reason::Marker),
            _ if annotated.contains(container.name) => Some(Reason::Annotation),
            _ => settings
                .sidecars
                .iter()
                .position(|matcher| matcher.matches(container.name, container.image()))
                .map(Reason::Matcher)
                .or_else(|| {
                    (settings.builtin_sidecars && BUILTIN_SIDECARS.contains(&container.name))
                        .then_some(Reason::Catalogue)
                }),
        })
        .collect();

    // Every pod keeps at least one regular container.
    if typing.iter().all(Option::is_some) {
        for role in typing.iter_mut() {
            if role.is_some_and(|reason| !reason.is_declared()) {
                *role = None;
            }
        }
        if typing.iter().all(Option::is_some) {
            findings.violation(format!(
                "{}.containers: every container is declared a sidecar, so the pod would have no main container; \
                 keep the application out of annotation {} and lifecycle.type: Sidecar",
                view.spec_path,
                settings.sidecar_annotation.as_deref().unwrap_or("(off)"),
            ));
        }
    }
    typing
}

/// Unknown annotation names warned about one by one; past that, one warning
/// counts the rest, so a hostile annotation cannot flood the API client.
const MAX_UNKNOWN_NAME_WARNINGS: usize = 10;

/// The names the pod's annotation declares that are entries of
/// `spec.containers`. Names of native sidecars are already satisfied; any
/// other name is reported and ignored.
fn annotated_names<'a>(
    view: &PodView<'a>,
    settings: &Settings,
    findings: &mut Findings,
) -> HashSet<&'a str> {
    let Some(key) = settings.sidecar_annotation.as_deref() else {
        return HashSet::new();
    };
    let Some(value) = view.annotation(key) else {
        return HashSet::new();
    };
    let mut names = HashSet::new();
    let mut reported = HashSet::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match view.container_named(name) {
            Some(container) if container.list == List::Containers => {
                names.insert(name);
            }
            Some(container) if container.is_native_sidecar() => {}
            _ => {
                if reported.insert(name) && reported.len() <= MAX_UNKNOWN_NAME_WARNINGS {
                    findings.warn(format!(
                        "annotation {key}: {name:?} is not a container or native sidecar of this pod; ignored"
                    ));
                }
            }
        }
    }
    if let Some(more) = reported
        .len()
        .checked_sub(MAX_UNKNOWN_NAME_WARNINGS)
        .filter(|more| *more > 0)
    {
        findings.warn(format!(
            "annotation {key}: {more} more names that are not containers of this pod; ignored"
        ));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::POD;
    use crate::settings::Settings;
    use serde_json::{Value, json};

    fn classify_pod(pod: Value, settings: Value) -> (Vec<Option<Reason>>, Findings) {
        let view = PodView::read(&pod, POD).unwrap();
        let settings = Settings::from_value(&settings).unwrap();
        let mut findings = Findings::default();
        let typing = classify(&view, &settings, &mut findings);
        (typing, findings)
    }

    fn pod(annotation: Option<&str>, containers: Value) -> Value {
        let annotations = annotation.map_or(
            json!({}),
            |names| json!({"sidecar-lifecycle/containers": names}),
        );
        json!({"metadata": {"annotations": annotations}, "spec": {"containers": containers,
            "initContainers": [{"name": "istio-init"}, {"name": "vault-agent", "restartPolicy": "Always"}]}})
    }

    #[test]
    fn standard_marker_opts_out_before_any_other_rule() {
        let containers =
            json!([{"name": "app"}, {"name": "istio-proxy", "lifecycle": {"type": "Standard"}}]);
        let (typing, _) = classify_pod(pod(Some("istio-proxy"), containers), json!({}));
        assert_eq!(typing, [None, None]);
    }

    #[test]
    fn sidecar_marker_declares() {
        let containers =
            json!([{"name": "app"}, {"name": "shipper", "lifecycle": {"type": "Sidecar"}}]);
        let (typing, _) = classify_pod(pod(None, containers), json!({}));
        assert_eq!(typing, [None, Some(Reason::Marker)]);
    }

    #[test]
    fn annotation_names_are_trimmed_deduplicated_and_checked() {
        let containers = json!([{"name": "app"}, {"name": "log-shipper"}, {"name": "metrics"}]);
        let (typing, findings) = classify_pod(
            pod(
                Some(
                    " log-shipper , metrics,, log-shipper, audit-tap, vault-agent, istio-init, audit-tap",
                ),
                containers,
            ),
            json!({}),
        );
        assert_eq!(
            typing,
            [None, Some(Reason::Annotation), Some(Reason::Annotation)]
        );
        // vault-agent is a native sidecar already: silent. istio-init is not a sidecar.
        assert_eq!(findings.warnings().len(), 2, "{:?}", findings.warnings());
        assert!(findings.warnings()[0].contains("\"audit-tap\""));
        assert!(findings.warnings()[1].contains("\"istio-init\""));
    }

    #[test]
    fn a_flood_of_unknown_names_gets_one_summary_warning() {
        let names: Vec<String> = (0..25).map(|i| format!("ghost-{i}")).collect();
        let containers = json!([{"name": "app"}]);
        let (_, findings) = classify_pod(pod(Some(&names.join(",")), containers), json!({}));
        let warnings = findings.warnings();
        assert_eq!(warnings.len(), 11);
        assert!(warnings[9].contains("\"ghost-9\""));
        assert_eq!(
            warnings[10],
            "annotation sidecar-lifecycle/containers: 15 more names that are not containers of this pod; ignored"
        );
    }

    #[test]
    fn annotation_key_comes_from_settings_and_can_be_turned_off() {
        let containers = json!([{"name": "app"}, {"name": "log-shipper"}]);
        let (typing, _) = classify_pod(
            pod(Some("log-shipper"), containers.clone()),
            json!({"sidecarAnnotation": ""}),
        );
        assert_eq!(typing, [None, None]);
        let custom = json!({"metadata": {"annotations": {"example.com/sidecars": "log-shipper"}}, "spec": {"containers": containers}});
        let (typing, _) =
            classify_pod(custom, json!({"sidecarAnnotation": "example.com/sidecars"}));
        assert_eq!(typing, [None, Some(Reason::Annotation)]);
    }

    #[test]
    fn matchers_detect_by_name_and_image_and_first_match_is_reported() {
        let containers = json!([{"name": "app", "image": "shop/app:1"},
            {"name": "fluent-bit", "image": "cr.fluentbit.io/fluent/fluent-bit:3.1.4"},
            {"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"}]);
        let settings = json!({"sidecars": [{"image": "*fluent-bit:*"}, {"name": "envoy", "image": "envoyproxy/*"}, {"name": "envoy"}]});
        let (typing, _) = classify_pod(pod(None, containers), settings);
        assert_eq!(
            typing,
            [None, Some(Reason::Matcher(0)), Some(Reason::Matcher(1))]
        );
    }

    #[test]
    fn an_image_matcher_never_matches_a_container_without_image() {
        let containers = json!([{"name": "app", "image": "a"}, {"name": "x"}]);
        let (typing, _) =
            classify_pod(pod(None, containers), json!({"sidecars": [{"image": "*"}]}));
        assert_eq!(typing, [Some(Reason::Matcher(0)), None]);
    }

    #[test]
    fn catalogue_detects_unless_turned_off() {
        let containers = json!([{"name": "linkerd-proxy"}, {"name": "web"}]);
        let (typing, _) = classify_pod(pod(None, containers.clone()), json!({}));
        assert_eq!(typing, [Some(Reason::Catalogue), None]);
        let (typing, _) = classify_pod(pod(None, containers), json!({"builtinSidecars": false}));
        assert_eq!(typing, [None, None]);
    }

    #[test]
    fn detected_sidecars_yield_when_nothing_else_would_run() {
        // An Istio ingress gateway runs istio-proxy as its main container.
        let (typing, findings) =
            classify_pod(pod(None, json!([{"name": "istio-proxy"}])), json!({}));
        assert_eq!(typing, [None]);
        assert!(findings.violations.is_empty());
        // Declared sidecars stay; detected ones become the main containers.
        let containers =
            json!([{"name": "istio-proxy"}, {"name": "shipper", "lifecycle": {"type": "Sidecar"}}]);
        let (typing, findings) = classify_pod(pod(None, containers), json!({}));
        assert_eq!(typing, [None, Some(Reason::Marker)]);
        assert!(findings.violations.is_empty());
    }

    #[test]
    fn declared_sidecars_alone_are_a_violation() {
        let (typing, findings) =
            classify_pod(pod(Some("envoy"), json!([{"name": "envoy"}])), json!({}));
        assert_eq!(typing, [Some(Reason::Annotation)]);
        assert_eq!(findings.violations.len(), 1);
        assert!(findings.violations[0].contains("no main container"));
    }
}
