//! SPEC §3: which entries of `spec.containers` are sidecars. Every container
//! is classified once, first matching rule wins.

use std::collections::HashSet;

use crate::catalogue::{self, OWN_POD_HOSTS, Unless};
use crate::plan::Findings;
use crate::pod::{Container, List, PodView};
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
    /// In the built-in catalogue and meeting its entry's conditions (detected).
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
    let standard = annotated_names(
        view,
        settings.standard_annotation.as_deref(),
        false,
        findings,
    );
    let declared = annotated_names(view, settings.sidecar_annotation.as_deref(), true, findings);
    let mut typing: Typing = view
        .containers
        .iter()
        .map(|container| {
            let name = container.name;
            if container.image() == Some(INJECTION_TEMPLATE_IMAGE) {
                return None;
            }
            match container.lifecycle_type() {
                Some("Standard") => return None,
                _ if standard.contains(name) => {
                    if declared.contains(name) {
                        findings.warn(format!(
                            "{name}: named in both {} and {}; stays regular",
                            settings.sidecar_annotation.as_deref().unwrap_or_default(),
                            settings.standard_annotation.as_deref().unwrap_or_default(),
                        ));
                    }
                    return None;
                }
                Some("Sidecar") => return Some(Reason::Marker),
                _ if declared.contains(name) => return Some(Reason::Annotation),
                _ => {}
            }
            if let Some(index) = settings
                .sidecars
                .iter()
                .position(|matcher| matcher.matches(name, container.image()))
            {
                return Some(Reason::Matcher(index));
            }
            is_catalogued_sidecar(container, view, settings, findings).then_some(Reason::Catalogue)
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
            let declared: Vec<String> = view
                .containers
                .iter()
                .zip(&typing)
                .filter_map(|(container, role)| {
                    Some(format!(
                        "{} ({})",
                        container.name,
                        (*role)?.describe(settings)
                    ))
                })
                .collect();
            findings.violation(format!(
                "{}.containers: every container is declared a sidecar ({}), so the pod would have no main container; \
                 keep the application out of annotation {} and lifecycle.type: Sidecar",
                view.spec_path,
                declared.join(", "),
                settings.sidecar_annotation.as_deref().unwrap_or("(off)"),
            ));
        }
    }
    typing
}

/// Istio completes a container with this image when it injects the pod, and
/// expects to find it in `spec.containers` (SPEC §3, rule 1).
const INJECTION_TEMPLATE_IMAGE: &str = "auto";

/// Rule 7: a catalogue name, enabled by `builtinSidecars`, that meets its
/// entry's conditions (SPEC §3.1). A proxy that gets its identity from its
/// own pod is warned about.
fn is_catalogued_sidecar(
    container: &Container,
    view: &PodView,
    settings: &Settings,
    findings: &mut Findings,
) -> bool {
    let Some(entry) = catalogue::entry_of(container.name) else {
        return false;
    };
    if !settings.is_builtin_enabled(entry) {
        return false;
    }
    entry.unless.iter().all(|condition| match condition {
        Unless::NotMarkedInjected { key } => view.is_marked(key),
        Unless::NotLabelled { key } => view.has_label(key),
        Unless::ProxyModeOtherThan { mode } => {
            let mut args = container.args();
            match (args.next(), args.next()) {
                (Some("proxy"), Some(other)) if !other.starts_with('-') => other == *mode,
                _ => true,
            }
        }
        Unless::SwitchedOff => !entry
            .switch_keys()
            .iter()
            .any(|key| view.annotation(key).is_some_and(|v| v.trim() == "false")),
        Unless::IdentityFromOwnPod { env } => match container.env_value(env) {
            Some(address) if is_own_pod(address) => {
                findings.warn(format!(
                    "{}: stays a regular container: its {env} is this pod; gating would deadlock",
                    container.name
                ));
                false
            }
            _ => true,
        },
    })
}

/// Whether `address` (`host` or `host:port`) names the pod itself.
fn is_own_pod(address: &str) -> bool {
    let address = address.trim();
    let host = match address.rsplit_once(':') {
        // `[::1]:8080`, `localhost.:8080`; a bare `[::1]` has no port to cut
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => address,
    };
    OWN_POD_HOSTS.contains(&host)
}

/// Unknown annotation names warned about one by one; past that, one warning
/// counts the rest, so a hostile annotation cannot flood the API client.
const MAX_UNKNOWN_NAME_WARNINGS: usize = 10;

/// The names the pod's annotation `key` lists that are entries of
/// `spec.containers`. Other names are reported and ignored, except, in the
/// sidecar annotation (`declares_sidecars`), names of native sidecars:
/// already satisfied, so re-applying a converted manifest is silent; and in
/// the standard annotation, catalogue names: their injector may add them
/// after this policy has answered (SPEC §2).
fn annotated_names<'a>(
    view: &PodView<'a>,
    key: Option<&str>,
    declares_sidecars: bool,
    findings: &mut Findings,
) -> HashSet<&'a str> {
    let Some(key) = key else {
        return HashSet::new();
    };
    let mut names = HashSet::new();
    let mut reported = HashSet::new();
    for name in view.annotation_names(key) {
        match view.container_named(name) {
            Some(container) if container.list == List::Containers => {
                names.insert(name);
            }
            Some(container) if declares_sidecars && container.is_native_sidecar() => {}
            _ if !declares_sidecars && catalogue::entry_of(name).is_some() => {}
            _ => {
                if reported.insert(name) && reported.len() <= MAX_UNKNOWN_NAME_WARNINGS {
                    findings.warn(format!(
                        "annotation {key}: {name:?} is not a container{} of this pod; ignored",
                        if declares_sidecars {
                            " or native sidecar"
                        } else {
                            ""
                        }
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

    fn annotated_pod(annotations: Value, containers: Value) -> Value {
        json!({"metadata": {"annotations": annotations}, "spec": {"containers": containers}})
    }

    const ISTIO_STATUS: &str = r#"{"initContainers":["istio-init"],"containers":["istio-proxy"]}"#;

    #[test]
    fn an_injection_template_is_never_a_sidecar_and_stays_silent() {
        let containers = json!([{"name": "app"}, {"name": "istio-proxy", "image": "auto"}]);
        let annotations = json!({"sidecar.istio.io/status": ISTIO_STATUS,
            "sidecar-lifecycle/containers": "istio-proxy"});
        let (typing, findings) = classify_pod(annotated_pod(annotations, containers), json!({}));
        assert_eq!(typing, [None, None]);
        assert!(findings.warnings().is_empty());
    }

    #[test]
    fn the_standard_annotation_opts_out_and_reports_unknown_names() {
        let containers = json!([{"name": "api"}, {"name": "vault-agent"}, {"name": "daprd"}]);
        let annotations =
            json!({"sidecar-lifecycle/standard-containers": "vault-agent, ghost, , vault-agent"});
        let (typing, findings) = classify_pod(
            annotated_pod(annotations.clone(), containers.clone()),
            json!({}),
        );
        assert_eq!(typing, [None, None, Some(Reason::Catalogue)]);
        assert_eq!(
            findings.warnings(),
            [
                "annotation sidecar-lifecycle/standard-containers: \"ghost\" is not a container of this pod; ignored"
            ]
        );
        // a custom key, and off
        let (typing, _) = classify_pod(
            annotated_pod(annotations.clone(), containers.clone()),
            json!({"standardAnnotation": "example.com/regular"}),
        );
        assert_eq!(typing[1], Some(Reason::Catalogue));
        let (typing, _) = classify_pod(
            annotated_pod(annotations, containers),
            json!({"standardAnnotation": ""}),
        );
        assert_eq!(typing[1], Some(Reason::Catalogue));
    }

    #[test]
    fn the_standard_annotation_may_name_sidecars_an_injector_adds_later() {
        let annotations = json!({"sidecar-lifecycle/standard-containers": "istio-proxy, consul-dataplane-admin, ghost"});
        let (_, findings) = classify_pod(
            annotated_pod(annotations, json!([{"name": "web"}])),
            json!({}),
        );
        assert_eq!(
            findings.warnings(),
            [
                "annotation sidecar-lifecycle/standard-containers: \"ghost\" is not a container of this pod; ignored"
            ]
        );
    }

    #[test]
    fn dapr_and_consul_switched_off_stay_regular_silently() {
        let containers =
            json!([{"name": "orders"}, {"name": "daprd"}, {"name": "consul-dataplane-orders"}]);
        let (typing, _) = classify_pod(annotated_pod(json!({}), containers.clone()), json!({}));
        assert_eq!(
            typing,
            [None, Some(Reason::Catalogue), Some(Reason::Catalogue)]
        );
        let off = json!({"dapr.io/enable-native-sidecar": " false ",
            "consul.hashicorp.com/enable-consul-dataplane-as-sidecar": "false"});
        let (typing, findings) = classify_pod(annotated_pod(off, containers.clone()), json!({}));
        assert_eq!(typing, [None, None, None]);
        assert!(findings.warnings().is_empty());
        let on = json!({"dapr.io/enable-native-sidecar": "true",
            "consul.hashicorp.com/enable-consul-dataplane-as-sidecar": "False"});
        let (typing, _) = classify_pod(annotated_pod(on, containers), json!({}));
        assert_eq!(
            typing,
            [None, Some(Reason::Catalogue), Some(Reason::Catalogue)]
        );
    }

    #[test]
    fn otc_container_is_a_sidecar_only_in_a_pod_the_operator_labelled() {
        let containers = json!([{"name": "otc-container"}, {"name": "oauth2-proxy"}]);
        let (typing, _) = classify_pod(annotated_pod(json!({}), containers.clone()), json!({}));
        assert_eq!(typing, [None, None]);
        let mut labelled = annotated_pod(json!({}), containers);
        labelled["metadata"]["labels"] =
            json!({"sidecar.opentelemetry.io/injected": "observability.otel-sidecar"});
        let (typing, _) = classify_pod(labelled, json!({}));
        assert_eq!(typing, [Some(Reason::Catalogue), None]);
    }

    #[test]
    fn builtin_sidecars_as_a_list_enables_only_those_entries() {
        let containers =
            json!([{"name": "app"}, {"name": "vault-agent"}, {"name": "cloud-sql-proxy"}]);
        let (typing, _) = classify_pod(
            annotated_pod(json!({}), containers),
            json!({"builtinSidecars": ["vault-agent"]}),
        );
        assert_eq!(typing, [None, Some(Reason::Catalogue), None]);
    }

    #[test]
    fn a_name_in_both_annotations_stays_regular_with_a_warning() {
        let containers = json!([{"name": "web"}, {"name": "log-shipper"}, {"name": "audit-tap"}]);
        let annotations = json!({"sidecar-lifecycle/containers": "log-shipper, audit-tap",
            "sidecar-lifecycle/standard-containers": "audit-tap"});
        let (typing, findings) = classify_pod(annotated_pod(annotations, containers), json!({}));
        assert_eq!(typing, [None, Some(Reason::Annotation), None]);
        assert_eq!(
            findings.warnings(),
            [
                "audit-tap: named in both sidecar-lifecycle/containers and sidecar-lifecycle/standard-containers; stays regular"
            ]
        );
    }

    #[test]
    fn istio_proxy_is_a_sidecar_only_in_an_injected_pod_and_in_sidecar_mode() {
        let istio = |annotations: Value, args: Value| {
            let containers = json!([{"name": "app"}, {"name": "istio-proxy", "args": args}]);
            classify_pod(annotated_pod(annotations, containers), json!({})).0[1]
        };
        let injected = json!({"sidecar.istio.io/status": ISTIO_STATUS});
        let sidecar_args = json!(["proxy", "sidecar", "--domain", "shop.svc.cluster.local"]);
        assert_eq!(
            istio(injected.clone(), sidecar_args.clone()),
            Some(Reason::Catalogue)
        );
        // an override container that the injector merges at pod creation
        assert_eq!(istio(json!({}), sidecar_args), None);
        for workload in [
            json!(["proxy", "router"]),
            json!(["proxy", "waypoint", "--x"]),
            json!(["proxy", "ztunnel"]),
        ] {
            assert_eq!(istio(injected.clone(), workload), None);
        }
        // overridden args without a mode, or no args at all, do not exclude it
        for args in [
            json!(["proxy", "--concurrency", "4"]),
            json!(["proxy"]),
            json!(null),
            json!(["--log_output_level=debug"]),
        ] {
            assert_eq!(istio(injected.clone(), args), Some(Reason::Catalogue));
        }
        // Istio's own opt-out, compared after trimming white space
        let opted_out = json!({"sidecar.istio.io/status": ISTIO_STATUS, "sidecar.istio.io/nativeSidecar": " false "});
        assert_eq!(istio(opted_out, json!(["proxy", "sidecar"])), None);
        let opted_in = json!({"sidecar.istio.io/status": ISTIO_STATUS, "sidecar.istio.io/nativeSidecar": "true"});
        assert_eq!(
            istio(opted_in, json!(["proxy", "sidecar"])),
            Some(Reason::Catalogue)
        );
    }

    #[test]
    fn a_declared_istio_proxy_needs_no_marker() {
        let containers =
            json!([{"name": "app"}, {"name": "istio-proxy", "args": ["proxy", "router"]}]);
        let (typing, _) = classify_pod(
            annotated_pod(
                json!({"sidecar-lifecycle/containers": "istio-proxy"}),
                containers,
            ),
            json!({}),
        );
        assert_eq!(typing, [None, Some(Reason::Annotation)]);
    }

    #[test]
    fn linkerd_opt_outs_under_each_prefix() {
        for prefix in [
            "config.linkerd.io",
            "config.beta.linkerd.io",
            "config.alpha.linkerd.io",
        ] {
            let annotations = json!({format!("{prefix}/proxy-enable-native-sidecar"): "false"});
            let containers = json!([{"name": "web"}, {"name": "linkerd-proxy"}]);
            let (typing, findings) =
                classify_pod(annotated_pod(annotations, containers), json!({}));
            assert_eq!(typing, [None, None], "{prefix}");
            assert!(findings.warnings().is_empty());
        }
    }

    #[test]
    fn a_linkerd_proxy_whose_identity_is_its_own_pod_stays_regular_with_a_warning() {
        let proxy = |address: &str| {
            json!({"name": "linkerd-proxy", "env": [{"name": "LINKERD2_PROXY_LOG", "value": "warn"},
                {"name": "LINKERD2_PROXY_IDENTITY_SVC_ADDR", "value": address}]})
        };
        let (typing, findings) = classify_pod(
            annotated_pod(
                json!({}),
                json!([{"name": "identity"}, proxy("localhost.:8080")]),
            ),
            json!({}),
        );
        assert_eq!(typing, [None, None]);
        assert_eq!(
            findings.warnings(),
            [
                "linkerd-proxy: stays a regular container: its LINKERD2_PROXY_IDENTITY_SVC_ADDR is this pod; gating would deadlock"
            ]
        );
        let (typing, findings) = classify_pod(
            annotated_pod(
                json!({}),
                json!([{"name": "web"}, proxy("linkerd-identity-headless.linkerd.svc.cluster.local.:8080")]),
            ),
            json!({}),
        );
        assert_eq!(typing, [None, Some(Reason::Catalogue)]);
        assert!(findings.warnings().is_empty());
    }

    #[test]
    fn own_pod_addresses_with_or_without_a_port() {
        for own in [
            "localhost",
            "localhost.:8080",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            " localhost:80 ",
        ] {
            assert!(is_own_pod(own), "{own}");
        }
        for remote in [
            "linkerd-identity-headless.linkerd.svc.cluster.local.:8080",
            "10.0.0.1:8080",
            "localhost.example.com:8080",
            "::1",
            "",
        ] {
            assert!(!is_own_pod(remote), "{remote}");
        }
    }

    #[test]
    fn the_no_main_container_violation_names_each_declared_container() {
        let containers =
            json!([{"name": "envoy"}, {"name": "shipper", "lifecycle": {"type": "Sidecar"}}]);
        let (_, findings) = classify_pod(
            annotated_pod(json!({"sidecar-lifecycle/containers": "envoy"}), containers),
            json!({}),
        );
        assert_eq!(findings.violations.len(), 1);
        assert!(
            findings.violations[0].contains(
                "(envoy (named in annotation sidecar-lifecycle/containers), shipper (lifecycle.type: Sidecar))"
            ),
            "{}",
            findings.violations[0]
        );
    }
}
