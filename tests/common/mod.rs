//! Test harness shared by the integration tests.
//!
//! It runs the COMPILED policy module through the same waPC host stack that
//! kwctl and policy-server use (`wapc` + `wasmtime-provider`, WASI on), so the
//! tests see exactly what a cluster sees: the JSON crossing the wasm boundary,
//! traps, guest errors. [`evaluate`] also checks, on every answer, the
//! invariants of SPEC.md section 8, so each scenario test gets them for free.

// Every integration test file compiles this module on its own and uses a
// different part of it.
#![allow(dead_code)]

use std::{
    collections::BTreeSet,
    error::Error,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{Map, Value, json};
use wapc::WapcHost;
use wasmtime_provider::{WasmtimeEngineProviderBuilder, WasmtimeEngineProviderPre};

// ---------------------------------------------------------------------------
// Locating, building and compiling the module
// ---------------------------------------------------------------------------

/// File name cargo gives the policy module.
const WASM_FILE: &str = "sidecar_lifecycle_policy.wasm";

/// Builds the policy module from this working tree and returns its path.
///
/// The nested cargo uses its own target directory: the outer `cargo test`
/// holds the lock on the usual one until the tests end, so sharing it would
/// deadlock.
fn build_wasm() -> Result<PathBuf, String> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let outer_target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| manifest_dir.join("target"), PathBuf::from);
    let target_dir = outer_target_dir.join("wasm-host-tests");

    let output = Command::new(env!("CARGO"))
        .current_dir(manifest_dir)
        .args(["build", "--release", "--target", "wasm32-wasip1", "--lib"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", env!("CARGO")))?;
    if !output.status.success() {
        return Err(format!(
            "building the policy module failed ({}); run \
             `cargo build --release --target wasm32-wasip1 --lib` to see why:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target_dir.join("wasm32-wasip1/release").join(WASM_FILE))
}

/// The module under test: the file named by `POLICY_WASM` (e.g. the annotated
/// release artifact in CI), else the module built from this working tree.
fn wasm_path() -> Result<PathBuf, String> {
    match std::env::var_os("POLICY_WASM") {
        Some(path) => Ok(PathBuf::from(path)),
        None => build_wasm(),
    }
}

/// The module, built and compiled once per test process; each [`Policy`]
/// then only instantiates it (microseconds), as policy-server does per
/// request. A failure is kept too, so that every test reports it without
/// running the build again.
fn compiled_module() -> &'static WasmtimeEngineProviderPre {
    static COMPILED: OnceLock<Result<WasmtimeEngineProviderPre, String>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let path = wasm_path()?;
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read the policy module {}: {e}", path.display()))?;
            // Same as policy-evaluator's StackPre: default WASI context, no
            // preopened directories, the waPC host functions linked.
            WasmtimeEngineProviderBuilder::new()
                .module_bytes(&bytes)
                .build_pre()
                .map_err(|e| format!("cannot compile the policy module {}: {e}", path.display()))
        })
        .as_ref()
        .unwrap_or_else(|message| panic!("{message}"))
}

// ---------------------------------------------------------------------------
// The waPC host
// ---------------------------------------------------------------------------

/// Answers the guest's host calls. The only one a context-unaware policy
/// makes is the SDK's logging call; anything else is a bug worth failing on.
fn host_callback(
    _module_id: u64,
    binding: &str,
    namespace: &str,
    operation: &str,
    payload: &[u8],
) -> Result<Vec<u8>, Box<dyn Error + Send + Sync>> {
    match (binding, namespace, operation) {
        ("kubewarden", "tracing", "log") => {
            // Captured by the test runner: shown only when the test fails.
            eprintln!("policy log: {}", String::from_utf8_lossy(payload));
            Ok(Vec::new())
        }
        _ => Err(format!(
            "the test host does not offer the host call {binding}/{namespace}/{operation}"
        )
        .into()),
    }
}

/// One instance of the policy module, as the host creates it.
pub struct Policy {
    host: WapcHost,
}

impl Policy {
    /// Instantiates the module and runs its `wapc_init`.
    pub fn new() -> Self {
        let provider = compiled_module()
            .rehydrate(None)
            .unwrap_or_else(|e| panic!("cannot instantiate the policy module: {e}"));
        let host = WapcHost::new(Box::new(provider), Some(Box::new(host_callback)))
            .unwrap_or_else(|e| panic!("the policy module failed to initialise: {e}"));
        Self { host }
    }

    /// Calls a waPC operation; a trap or a guest error is an `Err` with its
    /// message.
    pub fn call(&self, op: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        self.host.call(op, payload).map_err(|e| e.to_string())
    }

    /// Calls an operation that must answer JSON; panics with the raw answer
    /// otherwise.
    fn call_json(&self, op: &str, payload: &[u8]) -> Value {
        let answer = self
            .call(op, payload)
            .unwrap_or_else(|e| panic!("the `{op}` call failed: {e}"));
        serde_json::from_slice(&answer).unwrap_or_else(|e| {
            panic!(
                "the `{op}` call answered something that is not JSON ({e}):\n{}",
                String::from_utf8_lossy(&answer)
            )
        })
    }

    /// The answer to `protocol_version` (a JSON string).
    pub fn protocol_version(&self) -> String {
        match self.call_json("protocol_version", b"") {
            Value::String(version) => version,
            other => panic!("protocol_version answered {other}, not a JSON string"),
        }
    }

    /// The answer to `validate_settings`, which receives the bare settings.
    pub fn validate_settings(&self, settings: &Value) -> Value {
        self.call_json("validate_settings", settings.to_string().as_bytes())
    }

    /// The `ValidationResponse` to `validate`, which receives the request and
    /// the settings wrapped as the hosts wrap them.
    pub fn validate(&self, request: &Value, settings: &Value) -> Value {
        let payload = json!({ "request": request, "settings": settings });
        self.call_json("validate", payload.to_string().as_bytes())
    }
}

// ---------------------------------------------------------------------------
// Fixtures and pod specs
// ---------------------------------------------------------------------------

/// Reads `test_data/<name>`: an `AdmissionRequest`, as the policy receives it
/// (not wrapped in an `AdmissionReview`).
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    let request: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()));
    assert!(
        request.get("kind").and_then(Value::as_str) != Some("AdmissionReview"),
        "fixture {} is an AdmissionReview; fixtures hold the bare AdmissionRequest",
        path.display()
    );
    request
}

/// Suffix of the optional file beside a request that lists the settings to
/// evaluate it with (test_data/README.md).
pub const SETTINGS_SUFFIX: &str = ".settings.json";

/// Suffix of the file beside a request that records the policy's answers.
pub const GOLDEN_SUFFIX: &str = ".golden.json";

/// Whether a file name of test_data/ is a request's, not one of the files
/// beside it.
pub fn is_request_file(file_name: &str) -> bool {
    file_name.ends_with(".json")
        && !file_name.ends_with(SETTINGS_SUFFIX)
        && !file_name.ends_with(GOLDEN_SUFFIX)
}

/// Where the pod spec lives in an object of the given kind.
pub fn pod_spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicationController"
        | "Job" => "/spec/template/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        other => panic!("kind {other:?} has no pod spec"),
    }
}

/// The kind the request is about (`request.kind.kind`).
fn request_kind(request: &Value) -> &str {
    request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("the request has no string kind.kind:\n{request:#}"))
}

/// The entries of a container list of a pod spec; an absent or null list is
/// empty.
fn container_list<'a>(pod_spec: &'a Value, list: &str) -> &'a [Value] {
    match pod_spec.get(list) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(containers)) => containers,
        Some(other) => panic!("{list} is not an array: {other}"),
    }
}

fn container_name(container: &Value) -> &str {
    container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("a container has no string name: {container}"))
}

fn container_names_in(pod_spec: &Value, list: &str) -> Vec<String> {
    container_list(pod_spec, list)
        .iter()
        .map(|container| container_name(container).to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Evaluations and their invariants
// ---------------------------------------------------------------------------

/// A request, the settings it was evaluated with and the policy's answer.
pub struct Outcome {
    pub request: Value,
    pub settings: Value,
    /// The raw `ValidationResponse`.
    pub response: Value,
}

/// Evaluates the fixture `test_data/<fixture_name>`; see [`evaluate_request`].
#[track_caller]
pub fn evaluate(fixture_name: &str, settings: Value) -> Outcome {
    evaluate_request(fixture(fixture_name), settings)
}

/// Evaluates a request on a fresh instance (as policy-server does) and checks
/// the invariants every answer must satisfy: valid settings, a well-formed
/// response, a mutation that changes something, only owned fields, gives a
/// parseable pod spec, and is stable when evaluated again.
#[track_caller]
pub fn evaluate_request(request: Value, settings: Value) -> Outcome {
    let policy = Policy::new();

    // Hosts never run a policy whose settings are invalid, and a typo in a
    // test's settings would otherwise silently test the defaults.
    let settings_answer = policy.validate_settings(&settings);
    assert!(
        settings_answer.get("valid") == Some(&Value::Bool(true)),
        "validate_settings refused the test's settings {settings}: {settings_answer}"
    );

    let response = policy.validate(&request, &settings);
    let outcome = Outcome {
        request,
        settings,
        response,
    };
    outcome.check_invariants(&policy);
    outcome
}

/// What is wrong with a `ValidationResponse`, whatever the request: `None`
/// when it has the shape every answer must have.
pub fn response_shape_problem(response: &Value) -> Option<String> {
    let Some(accepted) = response.get("accepted").and_then(Value::as_bool) else {
        return Some(format!(
            "the response has no boolean `accepted`:\n{response:#}"
        ));
    };
    match response.get("warnings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(warnings)) => {
            if !warnings
                .iter()
                .all(|w| w.as_str().is_some_and(|w| !w.is_empty()))
            {
                return Some(format!(
                    "every warning must be a non-empty string: {warnings:?}"
                ));
            }
        }
        Some(other) => return Some(format!("`warnings` is not an array: {other}")),
    }
    if !accepted {
        if response
            .get("message")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Some(format!(
                "a rejection needs a non-empty string `message`:\n{response:#}"
            ));
        }
        if !response.get("mutated_object").is_none_or(Value::is_null) {
            return Some(format!(
                "a rejection must not carry a `mutated_object`:\n{response:#}"
            ));
        }
    }
    None
}

#[track_caller]
fn check_response_shape(response: &Value) {
    if let Some(problem) = response_shape_problem(response) {
        panic!("{problem}");
    }
}

/// The JSON Pointer paths where two values differ, each with both sides.
pub fn differences(before: &Value, after: &Value) -> Vec<String> {
    fn walk(path: &str, before: &Value, after: &Value, found: &mut Vec<String>) {
        match (before, after) {
            (Value::Object(b), Value::Object(a)) => {
                let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
                for key in keys {
                    let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                    match (b.get(key), a.get(key)) {
                        (Some(b), Some(a)) => walk(&child, b, a, found),
                        (Some(b), None) => found.push(format!("{child}: removed (was {b})")),
                        (None, Some(a)) => found.push(format!("{child}: added {a}")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
                for (index, (b, a)) in b.iter().zip(a).enumerate() {
                    walk(&format!("{path}/{index}"), b, a, found);
                }
            }
            _ if before == after => {}
            _ => found.push(format!("{path}: {before} -> {after}")),
        }
    }
    let mut found = Vec::new();
    walk("", before, after, &mut found);
    found
}

fn format_differences(differences: &[String]) -> String {
    differences.iter().map(|d| format!("  {d}\n")).collect()
}

/// Empty settings: every default.
pub fn defaults() -> Value {
    json!({})
}

/// Owned container names, as `Outcome`'s listings give them.
pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

impl Outcome {
    fn check_invariants(&self, policy: &Policy) {
        check_response_shape(&self.response);
        let Some(mutated) = self.mutated() else {
            return;
        };
        let original = self
            .request
            .get("object")
            .unwrap_or_else(|| panic!("the policy mutated a request that has no object"));
        assert!(
            mutated != original,
            "the policy returned a mutated_object identical to the request's object; \
             a mutation that changes nothing must not be returned"
        );
        let pointer = self.pod_spec_pointer();
        assert_pod_spec_parses(mutated, pointer);
        assert_only_owned_fields_changed(original, mutated, pointer);

        // Idempotence, on the same instance: a warm call, as kwctl bench
        // makes, must not depend on the first one either. A mutated object
        // never carries `lifecycle.type` (SPEC §4), so a `Standard` opt-out
        // of the manifest is gone from it (the known §4/§8 conflict, see the
        // README's limits); it is put back, as the user's manifest still
        // says it, before the object is evaluated again.
        let mut again = self.request.clone();
        again["object"] = with_standard_markers_restored(original, mutated, pointer);
        let second = policy.validate(&again, &self.settings);
        check_response_shape(&second);
        let second_accepted = second.get("accepted") == Some(&Value::Bool(true));
        match second.get("mutated_object").filter(|m| !m.is_null()) {
            None => assert!(
                second_accepted,
                "not idempotent: the mutated object is rejected when evaluated again:\n{second:#}"
            ),
            Some(second_mutated) => panic!(
                "not idempotent: evaluating the mutated object again mutates it again:\n{}",
                format_differences(&differences(mutated, second_mutated))
            ),
        }
    }

    /// Where the pod spec is in objects of the request's kind.
    pub fn pod_spec_pointer(&self) -> &'static str {
        pod_spec_pointer(request_kind(&self.request))
    }

    pub fn accepted(&self) -> bool {
        self.response["accepted"] == Value::Bool(true)
    }

    /// The rejection message ("" when there is none).
    pub fn message(&self) -> &str {
        self.response
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn warnings(&self) -> Vec<String> {
        self.response
            .get("warnings")
            .and_then(Value::as_array)
            .map(|warnings| {
                warnings
                    .iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The mutated object, if the policy returned one (`null` counts as none,
    /// as it does for the hosts).
    pub fn mutated(&self) -> Option<&Value> {
        self.response.get("mutated_object").filter(|m| !m.is_null())
    }

    /// The object as admitted: the mutated one, or the request's own.
    pub fn object(&self) -> &Value {
        self.mutated().unwrap_or(&self.request["object"])
    }

    /// The pod spec of [`Outcome::object`].
    pub fn pod_spec(&self) -> &Value {
        let pointer = self.pod_spec_pointer();
        self.object()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the object has no pod spec at {pointer}"))
    }

    /// Names of `containers`, in order.
    pub fn container_names(&self) -> Vec<String> {
        container_names_in(self.pod_spec(), "containers")
    }

    /// Names of `initContainers`, in order (none when the list is absent).
    pub fn init_container_names(&self) -> Vec<String> {
        container_names_in(self.pod_spec(), "initContainers")
    }

    /// The container of that name, in either list.
    pub fn container(&self, name: &str) -> &Value {
        let spec = self.pod_spec();
        container_list(spec, "containers")
            .iter()
            .chain(container_list(spec, "initContainers"))
            .find(|container| container.get("name").and_then(Value::as_str) == Some(name))
            .unwrap_or_else(|| {
                panic!(
                    "no container named {name:?}; containers: {:?}, initContainers: {:?}",
                    self.container_names(),
                    self.init_container_names()
                )
            })
    }

    /// The answer in a few lines, for failure messages: the verdict, the
    /// message, the warnings and what the mutation changed.
    fn summary(&self) -> String {
        let mut summary = format!(
            "accepted: {}\nmessage: {:?}\nwarnings: {:#?}\n",
            self.accepted(),
            self.message(),
            self.warnings()
        );
        if let Some(mutated) = self.mutated() {
            summary.push_str("mutated:\n");
            summary.push_str(&format_differences(&differences(
                &self.request["object"],
                mutated,
            )));
        }
        summary
    }

    /// The names of both container lists of the resulting pod, in order.
    #[track_caller]
    pub fn assert_order(&self, init: &[&str], containers: &[&str]) {
        assert_eq!(self.init_container_names(), names(init), "initContainers");
        assert_eq!(self.container_names(), names(containers), "containers");
    }

    #[track_caller]
    pub fn assert_native_sidecar(&self, name: &str) {
        assert_eq!(
            self.container(name)["restartPolicy"],
            json!("Always"),
            "{name} is not a native sidecar"
        );
    }

    /// Asserts a mutation and returns the mutated object.
    #[track_caller]
    pub fn assert_mutated(&self) -> &Value {
        self.mutated()
            .unwrap_or_else(|| panic!("expected a mutation, got\n{}", self.summary()))
    }
}

// ---------------------------------------------------------------------------
// What a mutation may change
// ---------------------------------------------------------------------------

/// Asserts that the pod spec at `pointer` is a valid Kubernetes 1.34 PodSpec
/// as far as its types go (what the API server would decode).
#[track_caller]
pub fn assert_pod_spec_parses(obj: &Value, pointer: &str) {
    let spec = obj
        .pointer(pointer)
        .unwrap_or_else(|| panic!("the object has no pod spec at {pointer}"));
    if let Err(e) = serde_json::from_value::<PodSpec>(spec.clone()) {
        panic!("the pod spec at {pointer} does not parse as a Kubernetes PodSpec: {e}\n{spec:#}");
    }
}

/// Removes `lifecycle.type`, and the `lifecycle` object if that left it
/// empty (an already empty `lifecycle` stays: removing it is not owned).
fn strip_lifecycle_type(container: &mut Value) {
    let Some(container) = container.as_object_mut() else {
        return;
    };
    let emptied = match container
        .get_mut("lifecycle")
        .and_then(Value::as_object_mut)
    {
        Some(lifecycle) => lifecycle.remove("type").is_some() && lifecycle.is_empty(),
        None => false,
    };
    if emptied {
        container.remove("lifecycle");
    }
}

/// Stands for a container list in the normalized pod spec: the containers
/// themselves are compared by name, so moves and reorders are allowed, but
/// a list turning into `null` or disappearing is not.
fn list_shape(list: &Value) -> Value {
    match list {
        Value::Array(_) => json!("<array>"),
        other => other.clone(),
    }
}

/// Key under which the normalized pod spec holds its containers by name.
const CONTAINERS_BY_NAME: &str = "<containers by name>";

/// Asserts that `after` differs from `before` only in the fields the policy
/// owns (SPEC.md sections 4 to 6): inside the pod spec at `pod_spec_pointer`,
/// `terminationGracePeriodSeconds`; which list a container is in and its
/// position; `restartPolicy: "Always"` on a container moved to
/// `initContainers`; a `startupProbe` added where there was none;
/// `lifecycle.type` removed (with a `lifecycle` it left empty); a sidecar
/// re-applied in `containers` replacing the native sidecar of its name; names
/// moved between the lists of Istio's `sidecar.istio.io/status` record.
/// Everything else must be the same JSON value.
#[track_caller]
pub fn assert_only_owned_fields_changed(before: &Value, after: &Value, pod_spec_pointer: &str) {
    let spec_of = |obj: &'_ Value, side: &str| -> Value {
        obj.pointer(pod_spec_pointer)
            .cloned()
            .unwrap_or_else(|| panic!("the {side} object has no pod spec at {pod_spec_pointer}"))
    };
    let stored_spec = spec_of(before, "original");
    let before_spec = without_reapplied_entries(&stored_spec);
    let after_spec = without_kept_token_mounts(&stored_spec, &spec_of(after, "mutated"));
    let (before, after) = &with_injection_records_compared(before, after, pod_spec_pointer);
    let after = &with_native_switches_compared(before, after, pod_spec_pointer);

    // No container lost, added or duplicated.
    let all_names = |spec: &Value| {
        let mut names = container_names_in(spec, "containers");
        names.extend(container_names_in(spec, "initContainers"));
        names.sort();
        names
    };
    let after_names = all_names(&after_spec);
    assert_eq!(
        all_names(&before_spec),
        after_names,
        "the mutation lost, added or duplicated containers"
    );
    let unique: BTreeSet<&String> = after_names.iter().collect();
    assert_eq!(
        unique.len(),
        after_names.len(),
        "the mutated pod repeats a container name"
    );

    // Moves go one way: regular container to native sidecar.
    let before_regular = container_names_in(&before_spec, "containers");
    let before_init = container_names_in(&before_spec, "initContainers");
    let after_regular = container_names_in(&after_spec, "containers");
    let after_init = container_names_in(&after_spec, "initContainers");
    let moved: BTreeSet<&String> = before_regular
        .iter()
        .filter(|name| after_init.contains(name))
        .collect();
    let moved_back: Vec<&String> = before_init
        .iter()
        .filter(|name| after_regular.contains(name))
        .collect();
    assert!(
        moved_back.is_empty(),
        "init containers {moved_back:?} were moved into `containers`"
    );
    assert!(
        after_spec.get("initContainers").is_none()
            || before_spec.get("initContainers").is_some()
            || !moved.is_empty(),
        "`initContainers` was added although no container moved there"
    );

    let find = |spec: &Value, name: &str| -> Value {
        container_list(spec, "containers")
            .iter()
            .chain(container_list(spec, "initContainers"))
            .find(|container| container_name(container) == name)
            .cloned()
            .unwrap_or_else(|| panic!("no container named {name:?}"))
    };
    let mut before_by_name = Map::new();
    let mut after_by_name = Map::new();
    for name in unique {
        let mut was = find(&before_spec, name);
        let mut now = find(&after_spec, name);
        strip_lifecycle_type(&mut was);
        strip_lifecycle_type(&mut now);
        if was.get("startupProbe").is_none_or(Value::is_null) {
            for container in [&mut was, &mut now] {
                if let Some(container) = container.as_object_mut() {
                    container.remove("startupProbe");
                }
            }
        }
        if moved.contains(name) {
            assert_eq!(
                now.get("restartPolicy"),
                Some(&json!("Always")),
                "container {name:?} moved to initContainers without restartPolicy: Always"
            );
            if let Some(now) = now.as_object_mut() {
                now.remove("restartPolicy");
            }
            // `restartPolicy: null` is no policy of its own: conversion sets it
            if let Some(was) = was.as_object_mut()
                && was.get("restartPolicy") == Some(&Value::Null)
            {
                was.remove("restartPolicy");
            }
        }
        before_by_name.insert(name.clone(), was);
        after_by_name.insert(name.clone(), now);
    }

    let normalize =
        |obj: &Value, spec: &Value, by_name: Map<String, Value>, init_shape: Option<Value>| {
            let mut spec = spec
                .as_object()
                .cloned()
                .unwrap_or_else(|| panic!("the pod spec is not an object"));
            spec.remove("terminationGracePeriodSeconds");
            if let Some(containers) = spec.get_mut("containers") {
                *containers = list_shape(containers);
            }
            match init_shape {
                Some(shape) => spec.insert("initContainers".to_owned(), shape),
                None => spec.remove("initContainers"),
            };
            spec.insert(CONTAINERS_BY_NAME.to_owned(), Value::Object(by_name));
            let mut obj = obj.clone();
            if let Some(slot) = obj.pointer_mut(pod_spec_pointer) {
                *slot = Value::Object(spec);
            }
            obj
        };
    // A container moved to initContainers makes that list exist on the
    // mutated side, whatever it was before.
    let before_init_shape = if moved.is_empty() {
        before_spec.get("initContainers").map(list_shape)
    } else {
        Some(json!("<array>"))
    };
    let after_init_shape = after_spec.get("initContainers").map(list_shape);
    let normalized_before = normalize(before, &before_spec, before_by_name, before_init_shape);
    let normalized_after = normalize(after, &after_spec, after_by_name, after_init_shape);

    let found = differences(&normalized_before, &normalized_after);
    assert!(
        found.is_empty(),
        "the mutation changed fields the policy does not own \
         (containers are listed by name under {CONTAINERS_BY_NAME:?}):\n{}",
        format_differences(&found)
    );
}

/// The pod spec without the native sidecars that a re-applied entry of
/// `containers` (same name) replaces: the fold keeps the `containers` entry,
/// which then counts as moved (SPEC §4, re-applied sidecars).
fn without_reapplied_entries(pod_spec: &Value) -> Value {
    let regular = container_names_in(pod_spec, "containers");
    let mut spec = pod_spec.clone();
    if let Some(Value::Array(init)) = spec.get_mut("initContainers") {
        init.retain(|container| {
            !(container.get("restartPolicy") == Some(&json!("Always"))
                && regular.iter().any(|name| name == container_name(container)))
        });
    }
    spec
}

/// `mutated` with `lifecycle.type: Standard` set again on each container
/// that carried it in `original`.
fn with_standard_markers_restored(original: &Value, mutated: &Value, pointer: &str) -> Value {
    let opted_out: Vec<&str> = original
        .pointer(pointer)
        .into_iter()
        .flat_map(|spec| {
            container_list(spec, "containers")
                .iter()
                .chain(container_list(spec, "initContainers"))
        })
        .filter(|container| container.pointer("/lifecycle/type") == Some(&json!("Standard")))
        .map(container_name)
        .collect();
    let mut mutated = mutated.clone();
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = mutated
            .pointer_mut(pointer)
            .and_then(|spec| spec.get_mut(list))
        else {
            continue;
        };
        for container in containers {
            if opted_out.contains(&container_name(container)) {
                let lifecycle = container
                    .as_object_mut()
                    .expect("a container")
                    .entry("lifecycle")
                    .or_insert_with(|| json!({}));
                if let Some(lifecycle) = lifecycle.as_object_mut() {
                    lifecycle.insert("type".to_owned(), json!("Standard"));
                }
            }
        }
    }
    mutated
}

/// The mutated pod spec without the volumeMounts a fold keeps from the
/// native sidecar it replaces (SPEC §4): mounts of the stored entry on a
/// projected `kube-api-access-*` volume, appended to the re-applied entry.
fn without_kept_token_mounts(stored_spec: &Value, mutated_spec: &Value) -> Value {
    let regular = container_names_in(stored_spec, "containers");
    let token_volumes: Vec<&str> = container_list(stored_spec, "volumes")
        .iter()
        .filter(|volume| volume.get("projected").is_some_and(|p| !p.is_null()))
        .filter_map(|volume| volume.get("name").and_then(Value::as_str))
        .filter(|name| name.starts_with("kube-api-access-"))
        .collect();
    let mut spec = mutated_spec.clone();
    for stored in container_list(stored_spec, "initContainers") {
        let name = container_name(stored);
        if stored.get("restartPolicy") != Some(&json!("Always"))
            || !regular.iter().any(|r| r == name)
        {
            continue;
        }
        let kept: Vec<&Value> = container_list(stored, "volumeMounts")
            .iter()
            .filter(|mount| {
                mount
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|volume| token_volumes.contains(&volume))
            })
            .collect();
        let reapplied = container_list(stored_spec, "containers")
            .iter()
            .find(|container| container_name(container) == name)
            .expect("the re-applied entry");
        let had_mounts = reapplied.get("volumeMounts").is_some();
        let Some(Value::Array(init)) = spec.get_mut("initContainers") else {
            continue;
        };
        let Some(folded) = init.iter_mut().find(|c| container_name(c) == name) else {
            continue;
        };
        if let Some(Value::Array(mounts)) = folded.get_mut("volumeMounts") {
            let own = container_list(reapplied, "volumeMounts").len();
            let appended = mounts.split_off(own.min(mounts.len()));
            for mount in &appended {
                assert!(
                    kept.contains(&mount),
                    "{name}: the fold appended a volumeMount that is not a token mount of the stored entry: {mount}"
                );
            }
            if !had_mounts && mounts.is_empty() {
                folded.as_object_mut().unwrap().remove("volumeMounts");
            }
        }
    }
    spec
}

/// `after` without the native switches the policy may add to a Pod's own
/// annotations at creation (SPEC §4), once checked to be catalogue switch
/// keys with the value `"true"` that `before` did not have.
fn with_native_switches_compared(before: &Value, after: &Value, pod_spec_pointer: &str) -> Value {
    let mut after = after.clone();
    if pod_spec_pointer != "/spec" {
        return after;
    }
    let switch_keys: Vec<&str> = sidecar_lifecycle_policy::catalogue::CATALOGUE
        .iter()
        .filter_map(|entry| entry.native_switch.as_ref())
        .map(|switch| switch.key)
        .collect();
    let before_annotations = before.pointer("/metadata/annotations");
    let Some(Value::Object(annotations)) = after.pointer_mut("/metadata/annotations") else {
        return after;
    };
    annotations.retain(|key, value| {
        let was = before_annotations.and_then(|a| a.get(key));
        if was.is_none() && switch_keys.contains(&key.as_str()) {
            assert_eq!(
                value,
                &json!("true"),
                "the native switch {key} was added as {value}"
            );
            return false;
        }
        true
    });
    if annotations.is_empty() && before_annotations.is_none_or(Value::is_null) {
        let metadata = after
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
            .unwrap();
        match before_annotations {
            None => metadata.remove("annotations"),
            Some(_) => metadata.insert("annotations".to_owned(), Value::Null),
        };
    }
    after
}

/// The injector record the policy keeps true (SPEC §4).
const ISTIO_STATUS: &str = "sidecar.istio.io/status";

/// `before` and `after`, with each `sidecar.istio.io/status` of `after` put
/// back to its value in `before` once it is checked to differ only by names
/// moved between its `containers` and `initContainers`, in compact JSON.
fn with_injection_records_compared(
    before: &Value,
    after: &Value,
    pod_spec_pointer: &str,
) -> (Value, Value) {
    let template_metadata = format!(
        "{}/metadata",
        pod_spec_pointer.strip_suffix("/spec").unwrap_or_default()
    );
    let mut after = after.clone();
    for metadata in [template_metadata.as_str(), "/spec/jobTemplate/metadata"] {
        let pointer = format!("{metadata}/annotations/{}", ISTIO_STATUS.replace('/', "~1"));
        let (Some(Value::String(was)), Some(Value::String(now))) =
            (before.pointer(&pointer), after.pointer(&pointer))
        else {
            continue;
        };
        if was == now {
            continue;
        }
        let parse = |text: &str| -> Map<String, Value> {
            serde_json::from_str(text).unwrap_or_else(|e| {
                panic!("{pointer} was rewritten from or to non-JSON {text:?}: {e}")
            })
        };
        let (mut was_record, mut now_record) = (parse(was), parse(now));
        assert_eq!(
            &serde_json::to_string(&now_record).unwrap(),
            now,
            "{pointer} is not rewritten as compact JSON"
        );
        let names = |record: &mut Map<String, Value>| -> (Vec<String>, Vec<String>) {
            let mut list = |field: &str| -> Vec<String> {
                match record.remove(field) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(names)) => names
                        .iter()
                        .map(|name| name.as_str().expect("a name").to_owned())
                        .collect(),
                    Some(other) => panic!("{pointer}: {field} is {other}"),
                }
            };
            (list("containers"), list("initContainers"))
        };
        let (was_regular, was_init) = names(&mut was_record);
        let (now_regular, now_init) = names(&mut now_record);
        assert_eq!(
            was_record, now_record,
            "{pointer}: members other than the container lists changed"
        );
        assert!(
            now_init.starts_with(&was_init),
            "{pointer}: initContainers {was_init:?} -> {now_init:?} is not an append"
        );
        let mut was_all: Vec<&String> = was_regular.iter().chain(&was_init).collect();
        let mut now_all: Vec<&String> = now_regular.iter().chain(&now_init).collect();
        was_all.sort();
        now_all.sort();
        assert_eq!(was_all, now_all, "{pointer}: names were added or lost");
        if let Some(slot) = after.pointer_mut(&pointer) {
            *slot = Value::String(was.clone());
        }
    }
    (before.clone(), after)
}
