//! The built-in names this policy knows, each list in one place, and what
//! each injector needs (SPEC §3.1) as data: the README shows the same table,
//! and a test keeps the two in agreement.

/// A well-known sidecar that an injector adds to `spec.containers`.
#[derive(Debug)]
pub struct Entry {
    /// The container name the injector gives it.
    pub name: &'static str,
    /// Who injects it, for the README and messages.
    pub injector: &'static str,
    /// When a container of this name is not a sidecar after all.
    pub unless: &'static [Unless],
    /// The injector's own record of what it injected: a pod annotation whose
    /// JSON lists the container under `containers` or `initContainers`, kept
    /// true when the container is converted (SPEC §4).
    pub injection_record: Option<&'static str>,
}

/// A condition under which a catalogue name is not a sidecar.
#[derive(Debug)]
pub enum Unless {
    /// The pod is not marked injected: no annotation `key` on the pod
    /// (template), nor on a CronJob's job template. Such a container is a
    /// customisation the injector merges when it creates the pod.
    NotMarkedInjected { key: &'static str },
    /// `args` begin with `proxy` and a mode (a second argument not starting
    /// with `-`) other than `mode`: the proxy is the pod's workload (a
    /// gateway, a waypoint, the ambient node proxy).
    ProxyModeOtherThan { mode: &'static str },
    /// The injector's own opt-out: one of `keys` in the pod's annotations has
    /// `value` (after trimming white space).
    OptedOut {
        keys: &'static [&'static str],
        value: &'static str,
    },
    /// The env variable `env` names a host on the pod itself: the proxy gets
    /// its certificate from a main container of its own pod, so gating that
    /// container on the proxy's readiness would deadlock. Warned about.
    IdentityFromOwnPod { env: &'static str },
}

/// SPEC §3.1, rule 7 of §3 (setting `builtinSidecars`).
pub const CATALOGUE: &[Entry] = &[
    Entry {
        name: "istio-proxy",
        injector: "Istio",
        unless: &[
            Unless::NotMarkedInjected {
                key: ISTIO_INJECTION_STATUS,
            },
            Unless::ProxyModeOtherThan { mode: "sidecar" },
            Unless::OptedOut {
                keys: &["sidecar.istio.io/nativeSidecar"],
                value: "false",
            },
        ],
        injection_record: Some(ISTIO_INJECTION_STATUS),
    },
    Entry {
        name: "linkerd-proxy",
        injector: "Linkerd",
        unless: &[
            Unless::OptedOut {
                keys: &[
                    "config.linkerd.io/proxy-enable-native-sidecar",
                    "config.beta.linkerd.io/proxy-enable-native-sidecar",
                    "config.alpha.linkerd.io/proxy-enable-native-sidecar",
                ],
                value: "false",
            },
            Unless::IdentityFromOwnPod {
                env: "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            },
        ],
        injection_record: None,
    },
    plain("vault-agent", "HashiCorp Vault Agent Injector"),
    plain("cloud-sql-proxy", "Google Cloud SQL Auth Proxy"),
    plain("daprd", "Dapr"),
    plain("consul-dataplane", "HashiCorp Consul"),
    plain("otc-container", "OpenTelemetry Operator"),
];

/// Istio's record of an injected pod, also its "injected" marker.
const ISTIO_INJECTION_STATUS: &str = "sidecar.istio.io/status";

/// An entry that is a sidecar whenever its name matches.
const fn plain(name: &'static str, injector: &'static str) -> Entry {
    Entry {
        name,
        injector,
        unless: &[],
        injection_record: None,
    }
}

/// The catalogue entry of a container name.
pub fn entry(name: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|entry| entry.name == name)
}

/// Hosts that are the pod itself, as a proxy's address names them.
pub const OWN_POD_HOSTS: &[&str] = &["localhost", "localhost.", "127.0.0.1", "[::1]"];

/// Mesh network-setup init containers: a converted sidecar is placed after
/// them, so it never starts before its network is set up (SPEC §4).
pub const BUILTIN_SETUP_INIT_CONTAINERS: &[&str] = &[
    "istio-init",
    "istio-validation",
    "linkerd-init",
    "linkerd-network-validator",
    "consul-connect-inject-init",
];
