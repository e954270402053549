//! The Kubernetes API server's validation rules for the fields this policy
//! touches, checked on a raw pod spec (the JSON the API server would decode).
//!
//! The policy promises never to return an object the API server rejects
//! (SPEC.md section 6); this checker lets tests hold it to that on any pod,
//! without a cluster. It models `ValidatePodSpec` of kube-apiserver for a
//! given minor version of Kubernetes 1.x, only as far as these fields go:
//!
//! - `containers`: at least one (a pod needs a regular container);
//! - container names: DNS-1123 labels, unique across `containers`,
//!   `initContainers` and `ephemeralContainers`;
//! - `restartPolicy` of a container: before 1.34 only `Always`, and only on
//!   init containers (a native sidecar); from 1.34 (container restart rules)
//!   `Always`, `OnFailure` or `Never` on init and regular containers alike;
//!   `restartPolicyRules` from 1.34 only, and only with a `restartPolicy`
//!   (before 1.34 the field does not exist and is dropped as unknown);
//! - `lifecycle`, `livenessProbe`, `readinessProbe`, `startupProbe` and
//!   `resizePolicy`: not on an init container without `restartPolicy: Always`;
//! - probes: exactly one handler; the int32 fields non-negative;
//!   `successThreshold` 1 on liveness and startup probes;
//!   no `terminationGracePeriodSeconds` on a readiness probe, a positive one
//!   elsewhere;
//! - lifecycle hooks: exactly one handler; `sleep.seconds` of a preStop or
//!   postStart hook from 0 to the pod's `terminationGracePeriodSeconds`
//!   (30 when unset, the API default), on every container;
//! - `terminationGracePeriodSeconds`: an int64, non-negative. (A Pod's
//!   negative value is, through 1.34, only warned about by the API server and
//!   treated as 1; the checker is stricter, as SPEC.md section 8 calls it
//!   malformed.)
//!
//! Fields are typed as the API server decodes them: a field of the wrong JSON
//! type (a string for an integer, `30.0` for an int64, 2^31 for an int32) is a
//! violation too. Unknown fields (`lifecycle.type` included) are ignored: the
//! API server drops them.
//!
//! Shared by several test files; each includes it with
//! `#[path = "api_rules/mod.rs"] mod api_rules;` (a plain `mod api_rules;` in
//! `tests/api_rules.rs` would find this file and that one both).

// Each test file that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::HashSet;

use serde_json::{Map, Value};

/// The Kubernetes minor version [`violations`] checks against.
pub const DEFAULT_MINOR: u32 = 33;

/// The first minor version with container restart rules (KEP-5307):
/// `restartPolicy` on any container, `restartPolicyRules`.
pub const CONTAINER_RESTART_RULES_MINOR: u32 = 34;

/// The pod's grace period when the field is absent or `null`.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Why the API server of Kubernetes 1.33 would reject this pod spec; empty
/// when it would accept it.
pub fn violations(pod_spec: &Value) -> Vec<String> {
    violations_for(pod_spec, DEFAULT_MINOR)
}

/// Why the API server of Kubernetes 1.`minor` would reject this pod spec;
/// empty when it would accept it. Each violation starts with the field path
/// (`spec.initContainers[0].restartPolicy: ...`).
pub fn violations_for(pod_spec: &Value, minor: u32) -> Vec<String> {
    let mut checker = Checker {
        minor,
        found: Vec::new(),
    };
    checker.pod_spec(pod_spec);
    checker.found
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Regular,
    Init,
    Ephemeral,
}

impl ListKind {
    fn key(self) -> &'static str {
        match self {
            ListKind::Regular => "containers",
            ListKind::Init => "initContainers",
            ListKind::Ephemeral => "ephemeralContainers",
        }
    }
}

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];
const PROBE_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "grpc"];
const HOOK_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "sleep"];
const PROBE_INT32_FIELDS: [&str; 5] = [
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
];

/// A field that is set: present and not `null` (the API server decodes
/// `null` as unset).
fn set<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// An int64 as Go's JSON decoder reads one: an integer literal in range
/// (`-0` is 0; `30.0`, `1e2` and 2^63 are not int64s).
fn int64(value: &Value) -> Option<i64> {
    value.as_i64()
}

fn int32(value: &Value) -> Option<i32> {
    value.as_i64().and_then(|n| i32::try_from(n).ok())
}

/// A DNS-1123 label: 1 to 63 lowercase alphanumerics or `-`, alphanumeric at
/// both ends (what container names must be).
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

struct Checker {
    minor: u32,
    found: Vec<String>,
}

impl Checker {
    fn report(&mut self, path: &str, problem: impl AsRef<str>) {
        self.found.push(format!("{path}: {}", problem.as_ref()));
    }

    fn pod_spec(&mut self, spec: &Value) {
        let Some(spec) = spec.as_object() else {
            self.report("spec", "must be an object");
            return;
        };
        let grace = self.grace_period(spec);

        let mut names = HashSet::new();
        for kind in [ListKind::Regular, ListKind::Init, ListKind::Ephemeral] {
            let path = format!("spec.{}", kind.key());
            let entries: &[Value] = match set(spec, kind.key()) {
                Some(Value::Array(entries)) => entries,
                None => &[],
                Some(_) => {
                    self.report(&path, "must be a list of containers");
                    continue;
                }
            };
            if kind == ListKind::Regular && entries.is_empty() {
                self.report(&path, "Required value: a pod needs at least one container");
            }
            for (index, entry) in entries.iter().enumerate() {
                let path = format!("{path}[{index}]");
                let Some(container) = entry.as_object() else {
                    self.report(&path, "must be an object");
                    continue;
                };
                match set(container, "name").map(Value::as_str) {
                    Some(Some(name)) if is_dns_label(name) => {
                        if !names.insert(name.to_owned()) {
                            self.report(
                                &format!("{path}.name"),
                                format!("Duplicate value: {name:?}"),
                            );
                        }
                    }
                    Some(Some(name)) => self.report(
                        &format!("{path}.name"),
                        format!("Invalid value: {name:?}: must be a DNS-1123 label"),
                    ),
                    _ => self.report(&format!("{path}.name"), "Required value: a string"),
                }
                self.container(container, kind, &path, grace);
            }
        }
    }

    /// The pod's grace period as the API server sees it; `None` when it is
    /// invalid (the sleep rule is then not checked against it).
    fn grace_period(&mut self, spec: &Map<String, Value>) -> Option<i64> {
        let path = "spec.terminationGracePeriodSeconds";
        match set(spec, "terminationGracePeriodSeconds") {
            None => Some(DEFAULT_GRACE_SECONDS),
            Some(value) => match int64(value) {
                Some(seconds) if seconds >= 0 => Some(seconds),
                Some(seconds) => {
                    self.report(
                        path,
                        format!("Invalid value: {seconds}: must be greater than or equal to 0"),
                    );
                    None
                }
                None => {
                    self.report(path, format!("Invalid value: {value}: must be an int64"));
                    None
                }
            },
        }
    }

    fn container(
        &mut self,
        container: &Map<String, Value>,
        kind: ListKind,
        path: &str,
        grace: Option<i64>,
    ) {
        let restart_policy = set(container, "restartPolicy");
        let is_native_sidecar =
            kind == ListKind::Init && restart_policy.and_then(Value::as_str) == Some("Always");
        self.restart_policy(container, kind, path);

        // Lifecycle, probes and resize belong to containers that keep running.
        let forbidden = match kind {
            ListKind::Ephemeral => Some("Forbidden: may not be set for ephemeral containers"),
            ListKind::Init if !is_native_sidecar => {
                Some("Forbidden: may not be set for init containers without restartPolicy=Always")
            }
            _ => None,
        };
        if let Some(reason) = forbidden {
            for field in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "resizePolicy",
            ] {
                if set(container, field).is_some() {
                    self.report(&format!("{path}.{field}"), reason);
                }
            }
        }
        if kind == ListKind::Ephemeral {
            return;
        }
        for probe in PROBES {
            if let Some(value) = set(container, probe) {
                self.probe(value, probe, &format!("{path}.{probe}"));
            }
        }
        if let Some(lifecycle) = set(container, "lifecycle") {
            self.lifecycle(lifecycle, &format!("{path}.lifecycle"), grace);
        }
    }

    fn restart_policy(&mut self, container: &Map<String, Value>, kind: ListKind, path: &str) {
        let field = format!("{path}.restartPolicy");
        let restart_rules = self.minor >= CONTAINER_RESTART_RULES_MINOR;
        let policy = set(container, "restartPolicy");
        if let Some(policy) = policy {
            let allowed: &[&str] = match (kind, restart_rules) {
                (ListKind::Ephemeral, _) | (ListKind::Regular, false) => &[],
                (ListKind::Init, false) => &["Always"],
                (_, true) => &["Always", "OnFailure", "Never"],
            };
            if allowed.is_empty() {
                self.report(
                    &field,
                    format!("Forbidden: may not be set for {}", kind.key()),
                );
            } else if !policy
                .as_str()
                .is_some_and(|policy| allowed.contains(&policy))
            {
                self.report(
                    &field,
                    format!(
                        "Unsupported value: {policy}: supported values: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        // Before 1.34 `restartPolicyRules` is no field of a container: the
        // API server drops it as unknown.
        if restart_rules && let Some(rules) = set(container, "restartPolicyRules") {
            let field = format!("{path}.restartPolicyRules");
            if kind == ListKind::Ephemeral {
                self.report(&field, "Forbidden: may not be set for ephemeral containers");
            } else if !rules.is_array() {
                self.report(&field, "must be a list of rules");
            } else if policy.is_none() {
                self.report(
                    &field,
                    "Forbidden: may only be set together with restartPolicy",
                );
            }
        }
    }

    fn probe(&mut self, probe: &Value, which: &str, path: &str) {
        let Some(probe) = probe.as_object() else {
            self.report(path, "must be an object");
            return;
        };
        self.handler(probe, &PROBE_HANDLERS, path, None);
        for field in PROBE_INT32_FIELDS {
            let Some(value) = set(probe, field) else {
                continue;
            };
            match int32(value) {
                Some(n) if n < 0 => {
                    self.report(
                        &format!("{path}.{field}"),
                        format!("Invalid value: {n}: must be greater than or equal to 0"),
                    );
                }
                Some(_) => {}
                None => self.report(
                    &format!("{path}.{field}"),
                    format!("Invalid value: {value}: must be an int32"),
                ),
            }
        }
        if which != "readinessProbe"
            && let Some(success) = set(probe, "successThreshold")
            && int32(success) != Some(1)
        {
            self.report(
                &format!("{path}.successThreshold"),
                format!("Invalid value: {success}: must be 1"),
            );
        }
        if let Some(grace) = set(probe, "terminationGracePeriodSeconds") {
            let field = format!("{path}.terminationGracePeriodSeconds");
            if which == "readinessProbe" {
                self.report(&field, "Invalid value: must not be set for readinessProbes");
            } else if int64(grace).is_none_or(|seconds| seconds <= 0) {
                self.report(
                    &field,
                    format!("Invalid value: {grace}: must be greater than 0"),
                );
            }
        }
    }

    fn lifecycle(&mut self, lifecycle: &Value, path: &str, grace: Option<i64>) {
        let Some(lifecycle) = lifecycle.as_object() else {
            self.report(path, "must be an object");
            return;
        };
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = set(lifecycle, hook) {
                let path = format!("{path}.{hook}");
                match handler.as_object() {
                    Some(handler) => self.handler(handler, &HOOK_HANDLERS, &path, Some(grace)),
                    None => self.report(&path, "must be an object"),
                }
            }
        }
    }

    /// A probe or hook handler: exactly one handler type, each well-formed.
    /// `grace` is `Some` for lifecycle hooks (whose sleep it bounds).
    fn handler(
        &mut self,
        handler: &Map<String, Value>,
        types: &[&str],
        path: &str,
        grace: Option<Option<i64>>,
    ) {
        let given: Vec<&str> = types
            .iter()
            .copied()
            .filter(|kind| set(handler, kind).is_some())
            .collect();
        match given.len() {
            0 => self.report(path, "Required value: must specify a handler type"),
            1 => {}
            _ => self.report(
                path,
                format!(
                    "Forbidden: may not specify more than 1 handler type ({})",
                    given.join(", ")
                ),
            ),
        }
        if let Some(exec) = set(handler, "exec") {
            let path = format!("{path}.exec.command");
            match exec.get("command").and_then(Value::as_array) {
                Some(words) if !words.is_empty() && words.iter().all(Value::is_string) => {}
                Some(words) if words.is_empty() => self.report(&path, "Required value"),
                _ => self.report(&path, "must be a non-empty list of strings"),
            }
        }
        for port_handler in ["httpGet", "tcpSocket", "grpc"] {
            if let Some(action) = set(handler, port_handler)
                && action.get("port").is_none_or(Value::is_null)
            {
                self.report(&format!("{path}.{port_handler}.port"), "Required value");
            }
        }
        if let (Some(grace), Some(sleep)) = (grace, set(handler, "sleep")) {
            let path = format!("{path}.sleep.seconds");
            match sleep.get("seconds").and_then(int64) {
                None => self.report(&path, "Required value: an int64"),
                Some(seconds) if seconds < 0 => {
                    self.report(
                        &path,
                        format!("Invalid value: {seconds}: must be non-negative"),
                    );
                }
                Some(seconds) => {
                    if let Some(grace) = grace
                        && seconds > grace
                    {
                        self.report(
                            &path,
                            format!("Invalid value: {seconds}: must be less than terminationGracePeriodSeconds ({grace})"),
                        );
                    }
                }
            }
        }
    }
}
