//! The built-in names this policy knows, each list in one place, and what
//! each injector needs (SPEC §3.1) as data: the README shows the same two
//! tables, and a test keeps them in agreement.

use crate::glob;

/// A well-known sidecar that an injector adds to `spec.containers`.
#[derive(Debug)]
pub struct Entry {
    /// The names the injector gives it, in the glob dialect of SPEC §3; the
    /// first is the entry's name (setting `builtinSidecars`).
    pub names: &'static [&'static str],
    /// Who injects it, for the README and messages.
    pub injector: &'static str,
    /// When a container of this name is not a sidecar after all (rule 7).
    pub unless: &'static [Unless],
    /// The injector's own record of what it injected: a pod annotation whose
    /// JSON lists the container under `containers` or `initContainers`, kept
    /// true when the container is converted (SPEC §4).
    pub injection_record: Option<&'static str>,
    /// The per-pod annotation that makes the injector inject a native
    /// sidecar itself (SPEC §4, "Asking injectors for native sidecars").
    pub native_switch: Option<NativeSwitch>,
    /// Init containers the sidecar starts after, besides the setup
    /// containers: they write what it starts from.
    pub starts_after: &'static [&'static str],
    /// Whether a startupProbe may be derived from its readinessProbe (§5).
    pub startup_probe: StartupProbe,
    /// The flag of its own that sets how long it takes to shut down (§6).
    pub shutdown_flag: Option<&'static str>,
}

/// An injector's switch for native sidecars.
#[derive(Debug)]
pub struct NativeSwitch {
    /// The key the policy adds, with the value `"true"`.
    pub key: &'static str,
    /// Every key the injector reads as this switch, `key` included: any of
    /// them on the pod means the user already chose.
    pub keys: &'static [&'static str],
    /// The first releases that read it, for the README.
    pub since: &'static str,
}

/// A condition under which a catalogue name is not a sidecar.
#[derive(Debug)]
pub enum Unless {
    /// The pod is not marked injected: no annotation `key` on the pod
    /// (template), nor on a CronJob's job template. Such a container is a
    /// customisation the injector merges when it creates the pod.
    NotMarkedInjected { key: &'static str },
    /// The pod (template) has no label `key`: the injector labels every pod
    /// it injects, and elsewhere the name is the workload's own container.
    NotLabelled { key: &'static str },
    /// `args` begin with `proxy` and a mode (a second argument not starting
    /// with `-`) other than `mode`: the proxy is the pod's workload (a
    /// gateway, a waypoint, the ambient node proxy).
    ProxyModeOtherThan { mode: &'static str },
    /// The injector's own native switch is `"false"` (after trimming white
    /// space) under any of its keys: the user keeps the injector classic.
    SwitchedOff,
    /// The env variable `env` names a host on the pod itself: the proxy gets
    /// its certificate from a main container of its own pod, so gating that
    /// container on the proxy's readiness would deadlock. Warned about.
    IdentityFromOwnPod { env: &'static str },
}

/// Whether the policy may give a sidecar of this entry a startupProbe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupProbe {
    Derived,
    /// Its readiness waits for the application, so gating the application
    /// on it would deadlock the pod.
    NeverDerived,
}

/// SPEC §3.1, rule 7 of §3 (setting `builtinSidecars`).
pub static CATALOGUE: &[Entry] = &[
    Entry {
        unless: &[
            Unless::NotMarkedInjected {
                key: ISTIO_INJECTION_STATUS,
            },
            Unless::ProxyModeOtherThan { mode: "sidecar" },
            Unless::SwitchedOff,
        ],
        injection_record: Some(ISTIO_INJECTION_STATUS),
        native_switch: Some(NativeSwitch {
            key: "sidecar.istio.io/nativeSidecar",
            keys: &["sidecar.istio.io/nativeSidecar"],
            since: "Istio 1.24+; native by default from 1.27 where every kubelet is 1.33+",
        }),
        ..entry(&["istio-proxy"], "Istio")
    },
    Entry {
        unless: &[
            Unless::SwitchedOff,
            Unless::IdentityFromOwnPod {
                env: "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            },
        ],
        native_switch: Some(NativeSwitch {
            key: "config.alpha.linkerd.io/proxy-enable-native-sidecar",
            keys: &[
                "config.linkerd.io/proxy-enable-native-sidecar",
                "config.beta.linkerd.io/proxy-enable-native-sidecar",
                "config.alpha.linkerd.io/proxy-enable-native-sidecar",
            ],
            since: "2.15+; later releases read it after the `config.beta.linkerd.io` and `config.linkerd.io` keys; native by default from 2.20",
        }),
        ..entry(&["linkerd-proxy"], "Linkerd")
    },
    Entry {
        starts_after: &["vault-agent-init"],
        ..entry(&["vault-agent"], "HashiCorp Vault Agent Injector")
    },
    entry(&["cloud-sql-proxy"], "Google Cloud SQL Auth Proxy"),
    Entry {
        unless: &[Unless::SwitchedOff],
        native_switch: Some(NativeSwitch {
            key: "dapr.io/enable-native-sidecar",
            keys: &["dapr.io/enable-native-sidecar"],
            since: "Dapr 1.18+",
        }),
        startup_probe: StartupProbe::NeverDerived,
        ..entry(&["daprd"], "Dapr")
    },
    Entry {
        unless: &[Unless::SwitchedOff],
        native_switch: Some(NativeSwitch {
            key: "consul.hashicorp.com/enable-consul-dataplane-as-sidecar",
            keys: &["consul.hashicorp.com/enable-consul-dataplane-as-sidecar"],
            since: "consul-k8s 1.9+, 1.8.2, 1.7.5, 1.6.9",
        }),
        shutdown_flag: Some("shutdown-grace-period-seconds"),
        ..entry(
            &["consul-dataplane", "consul-dataplane-*"],
            "HashiCorp Consul",
        )
    },
    Entry {
        unless: &[Unless::NotLabelled {
            key: "sidecar.opentelemetry.io/injected",
        }],
        ..entry(&["otc-container"], "OpenTelemetry Operator")
    },
];

/// Istio's record of an injected pod, also its "injected" marker.
const ISTIO_INJECTION_STATUS: &str = "sidecar.istio.io/status";

/// An entry that is a sidecar whenever its name matches and needs nothing
/// beyond the setup containers.
const fn entry(names: &'static [&'static str], injector: &'static str) -> Entry {
    Entry {
        names,
        injector,
        unless: &[],
        injection_record: None,
        native_switch: None,
        starts_after: &[],
        startup_probe: StartupProbe::Derived,
        shutdown_flag: None,
    }
}

impl Entry {
    /// The entry's name: its first container name.
    pub fn name(&self) -> &'static str {
        self.names[0]
    }

    pub fn matches(&self, container_name: &str) -> bool {
        self.names
            .iter()
            .any(|pattern| glob::matches(pattern, container_name))
    }

    /// Whether `name` is an init container this entry's sidecar starts after.
    pub fn starts_after(&self, name: &str) -> bool {
        self.starts_after.contains(&name)
    }

    /// The opt-out keys of `Unless::SwitchedOff`: the native switch's.
    pub fn switch_keys(&self) -> &'static [&'static str] {
        self.native_switch
            .as_ref()
            .map_or(&[], |switch| switch.keys)
    }
}

/// The catalogue entry whose names match a container name.
pub fn entry_of(container_name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|entry| entry.matches(container_name))
}

/// The catalogue entry of that name (`builtinSidecars`).
pub fn entry_named(name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|entry| entry.name() == name)
}

/// Hosts that are the pod itself, as a proxy's address names them.
pub const OWN_POD_HOSTS: &[&str] = &["localhost", "localhost.", "127.0.0.1", "[::1]"];

/// Mesh network-setup init containers, in the glob dialect: a converted
/// sidecar is placed after them, so it never starts before its network is
/// set up or before Consul's init container wrote the proxy id it reads
/// (SPEC §4).
pub const BUILTIN_SETUP_INIT_CONTAINERS: &[&str] = &[
    "istio-init",
    "istio-validation",
    "linkerd-init",
    "linkerd-network-validator",
    "consul-connect-inject-init",
    "consul-connect-inject-init-*",
    "consul-connect-init",
];

/// Whether `name` is a built-in setup container.
pub fn is_builtin_setup(name: &str) -> bool {
    BUILTIN_SETUP_INIT_CONTAINERS
        .iter()
        .any(|pattern| glob::matches(pattern, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_is_found_by_each_of_its_names() {
        assert_eq!(entry_of("istio-proxy").unwrap().name(), "istio-proxy");
        assert_eq!(
            entry_of("consul-dataplane-billing").unwrap().name(),
            "consul-dataplane"
        );
        assert!(entry_of("consul-dataplane2").is_none());
        assert!(entry_of("fluent-bit").is_none());
        assert_eq!(entry_named("daprd").unwrap().injector, "Dapr");
        assert!(entry_named("consul-dataplane-*").is_none());
    }

    #[test]
    fn names_are_unique_and_every_switch_adds_a_key_it_reads() {
        for (index, entry) in CATALOGUE.iter().enumerate() {
            for other in &CATALOGUE[index + 1..] {
                assert!(
                    !other.names.iter().any(|name| entry.matches(name)),
                    "{} overlaps {}",
                    entry.name(),
                    other.name()
                );
            }
            if let Some(switch) = &entry.native_switch {
                assert!(switch.keys.contains(&switch.key), "{}", entry.name());
            }
            let switched_off = entry
                .unless
                .iter()
                .any(|condition| matches!(condition, Unless::SwitchedOff));
            assert_eq!(
                switched_off,
                entry.native_switch.is_some(),
                "{}: an injector's switch is also its opt-out",
                entry.name()
            );
        }
    }

    #[test]
    fn consul_init_containers_are_setup_containers() {
        for name in [
            "consul-connect-init",
            "consul-connect-inject-init",
            "consul-connect-inject-init-web",
            "istio-init",
        ] {
            assert!(is_builtin_setup(name), "{name}");
        }
        assert!(!is_builtin_setup("vault-agent-init"));
        assert!(!is_builtin_setup("consul-connect-init-x"));
    }
}
