//! The built-in names this policy knows, each list in one place. The README
//! lists them too; a test keeps the two in agreement.

/// Well-known sidecars that mesh and platform injectors add to
/// `spec.containers` (SPEC §3, rule 5; setting `builtinSidecars`).
pub const BUILTIN_SIDECARS: &[&str] = &[
    "istio-proxy",
    "linkerd-proxy",
    "vault-agent",
    "cloud-sql-proxy",
    "daprd",
    "consul-dataplane",
    "otc-container",
];

/// Mesh network-setup init containers: a converted sidecar is placed after
/// them, so it never starts before its network is set up (SPEC §4).
pub const BUILTIN_SETUP_INIT_CONTAINERS: &[&str] = &[
    "istio-init",
    "istio-validation",
    "linkerd-init",
    "linkerd-network-validator",
    "consul-connect-inject-init",
];
