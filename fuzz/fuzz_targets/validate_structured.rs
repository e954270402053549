//! Structured fuzzing of `policy::validate`: a request of test_data/ (picked
//! by the input) with arbitrary JSON written at places the policy reads (the
//! pod spec, a container, its lifecycle and probes, the annotations, the
//! metadata, the object, the request), under arbitrary settings. Every
//! payload is valid JSON, so the fuzzer spends its time in the rules, not in
//! the parser. The answer must be a JSON ValidationResponse; a mutated
//! object, evaluated again, must be answered too.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value, json};
use sidecar_lifecycle_policy::policy;

/// A JSON value, as arbitrary as the fuzzer makes it.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A number as written, digits and all: `1e400`, `-0`, 2^70...
    Number(NumberText),
    Str(Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

/// Numbers that serde's own types do not hold, written as text.
#[derive(Arbitrary, Debug)]
enum NumberText {
    Huge(u8),
    Exponent(i16),
    MinusZero,
    Fraction(u32, u16),
}

/// Strings: mostly words the policy reacts to, sometimes anything.
#[derive(Arbitrary, Debug)]
enum Text {
    Word(u8),
    Any(String),
}

const WORDS: &[&str] = &[
    "Always",
    "Never",
    "OnFailure",
    "Sidecar",
    "Standard",
    "sleep",
    "/bin/sh",
    "-c",
    "sleep 5",
    "sleep 5 && x",
    "exec sleep 9s;",
    "/quitquitquit",
    "/shutdown",
    "kill",
    "istio-proxy",
    "linkerd-proxy",
    "vault-agent",
    "cloud-sql-proxy",
    "daprd",
    "consul-dataplane",
    "otc-container",
    "istio-init",
    "app",
    "web",
    "CREATE",
    "UPDATE",
    "Pod",
    "Deployment",
    "Job",
    "batch/v1",
    "sidecar-lifecycle/containers",
    "app,istio-proxy",
    "convert",
    "reject",
    "warn",
    "derive",
    "require",
    "ignore",
    "adjust",
    "*",
    "*-proxy",
    "",
];

/// Keys: mostly the ones the policy reads, sometimes anything.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Any(String),
}

const KEYS: &[&str] = &[
    "name",
    "image",
    "containers",
    "initContainers",
    "restartPolicy",
    "restartPolicyRules",
    "lifecycle",
    "type",
    "preStop",
    "postStart",
    "sleep",
    "seconds",
    "exec",
    "command",
    "httpGet",
    "path",
    "readinessProbe",
    "startupProbe",
    "periodSeconds",
    "failureThreshold",
    "successThreshold",
    "terminationGracePeriodSeconds",
    "annotations",
    "metadata",
    "ownerReferences",
    "controller",
    "kind",
    "apiVersion",
    "spec",
    "template",
    "jobTemplate",
    "object",
    "oldObject",
    "operation",
    "subResource",
    "sidecars",
    "builtinSidecars",
    "sidecarAnnotation",
    "legacySidecars",
    "setupInitContainers",
    "startupProbeWindowSeconds",
    "terminationGracePeriod",
    "minSeconds",
    "maxSeconds",
    "sidecarShutdownSeconds",
    "appShutdownSeconds",
    "onViolation",
    "kubernetes.io/config.mirror",
    "sidecar-lifecycle/containers",
];

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Known(i) => KEYS[*i as usize % KEYS.len()].to_owned(),
            Key::Any(key) => key.clone(),
        }
    }
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::UInt(n) => Value::from(*n),
            Json::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Number(text) => {
                let text = match text {
                    NumberText::Huge(digits) => format!("1{}", "0".repeat(*digits as usize)),
                    NumberText::Exponent(e) => format!("1e{e}"),
                    NumberText::MinusZero => "-0".to_owned(),
                    NumberText::Fraction(a, b) => format!("{a}.{b}"),
                };
                serde_json::from_str(&text).unwrap_or(Value::Null)
            }
            Json::Str(Text::Word(i)) => Value::from(WORDS[*i as usize % WORDS.len()]),
            Json::Str(Text::Any(text)) => Value::from(text.as_str()),
            Json::Array(items) => Value::Array(items.iter().map(Json::value).collect()),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.text(), value.value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

/// Where an edit writes, relative to the fixture's pod.
#[derive(Arbitrary, Debug)]
enum Place {
    Request,
    Object,
    Metadata,
    Annotations,
    PodSpec,
    Container(u8),
    InitContainer(u8),
    Lifecycle(u8),
    PreStop(u8),
    ReadinessProbe(u8),
}

#[derive(Arbitrary, Debug)]
struct Edit {
    at: Place,
    key: Key,
    value: Json,
    /// Replace the value at the place instead of setting a key in it.
    replace: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    fixture: u8,
    settings: Vec<(Key, Json)>,
    edits: Vec<Edit>,
}

/// Every request of test_data/ (not the settings and goldens beside them),
/// loaded once.
fn fixtures() -> &'static [Value] {
    static FIXTURES: OnceLock<Vec<Value>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test_data");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| {
                        name.ends_with(".json")
                            && !name.ends_with(".settings.json")
                            && !name.ends_with(".golden.json")
                    })
            })
            .collect();
        paths.sort();
        paths
            .iter()
            .filter_map(|path| serde_json::from_slice(&std::fs::read(path).ok()?).ok())
            .collect()
    })
}

fn pod_pointers(request: &Value) -> (&'static str, &'static str) {
    match request.pointer("/kind/kind").and_then(Value::as_str) {
        Some("Pod") => ("/object/metadata", "/object/spec"),
        Some("CronJob") => (
            "/object/spec/jobTemplate/spec/template/metadata",
            "/object/spec/jobTemplate/spec/template/spec",
        ),
        _ => (
            "/object/spec/template/metadata",
            "/object/spec/template/spec",
        ),
    }
}

/// The pointer to the n-th entry of a container list (modulo its length).
fn entry(request: &Value, spec: &str, list: &str, n: u8) -> String {
    let len = request
        .pointer(&format!("{spec}/{list}"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
        .max(1);
    format!("{spec}/{list}/{}", n as usize % len)
}

fn apply(request: &mut Value, edit: &Edit) {
    let (metadata, spec) = pod_pointers(request);
    let pointer = match edit.at {
        Place::Request => String::new(),
        Place::Object => "/object".to_owned(),
        Place::Metadata => metadata.to_owned(),
        Place::Annotations => format!("{metadata}/annotations"),
        Place::PodSpec => spec.to_owned(),
        Place::Container(n) => entry(request, spec, "containers", n),
        Place::InitContainer(n) => entry(request, spec, "initContainers", n),
        Place::Lifecycle(n) => format!("{}/lifecycle", entry(request, spec, "containers", n)),
        Place::PreStop(n) => format!(
            "{}/lifecycle/preStop",
            entry(request, spec, "containers", n)
        ),
        Place::ReadinessProbe(n) => {
            format!("{}/readinessProbe", entry(request, spec, "containers", n))
        }
    };
    let value = edit.value.value();
    let Some(target) = request.pointer_mut(&pointer) else {
        return;
    };
    if edit.replace {
        *target = value;
    } else if let Value::Object(map) = target {
        map.insert(edit.key.text(), value);
    }
}

fuzz_target!(|input: Input| {
    let fixtures = fixtures();
    if fixtures.is_empty() {
        return;
    }
    let mut request = fixtures[input.fixture as usize % fixtures.len()].clone();
    for edit in &input.edits {
        apply(&mut request, edit);
    }
    let settings: Map<String, Value> = input
        .settings
        .iter()
        .map(|(key, value)| (key.text(), value.value()))
        .collect();
    let payload = json!({"request": request, "settings": settings}).to_string();
    let answer = policy::validate(payload.as_bytes());
    let response: Value = serde_json::from_slice(&answer).expect("validate answers JSON");
    assert!(
        response.get("accepted").is_some_and(Value::is_boolean),
        "{response}"
    );
    if let Some(mutated) = response.get("mutated_object").filter(|m| !m.is_null()) {
        request["object"] = mutated.clone();
        let payload = json!({"request": request, "settings": settings}).to_string();
        let again: Value = serde_json::from_slice(&policy::validate(payload.as_bytes()))
            .expect("validate answers JSON");
        assert!(
            again.get("accepted").is_some_and(Value::is_boolean),
            "{again}"
        );
    }
});
