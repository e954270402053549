//! Fixtures and a small timing loop shared by the benchmarks.
//!
//! Every fixture is the full waPC `validate` payload, `{"request": ...,
//! "settings": ...}`, serialized once, as policy-server sends it. Each knows
//! the path the policy must take on it (accept untouched or mutate); the
//! benchmarks check that before measuring, so a change of behaviour cannot
//! silently turn a mutate benchmark into an accept one.

// Each bench binary compiles this module on its own and uses a different part.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the policy does with a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, no `mutated_object`.
    Accept,
    /// Accepted with the whole object in `mutated_object`.
    Mutate,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Mutate => "mutate",
        }
    }

    /// Reads the outcome of a `ValidationResponse`; panics on a rejection,
    /// which no fixture here expects.
    pub fn of_response(response: &[u8]) -> Outcome {
        let response: Value = serde_json::from_slice(response).expect("the response is JSON");
        assert_eq!(
            response["accepted"],
            json!(true),
            "a benchmark fixture was rejected: {response}"
        );
        if response["mutated_object"].is_null() {
            Outcome::Accept
        } else {
            Outcome::Mutate
        }
    }
}

pub struct Fixture {
    pub name: String,
    /// The waPC payload: `{"request": ..., "settings": ...}`.
    pub payload: Vec<u8>,
    pub outcome: Outcome,
    /// Entries of `containers` and `initContainers` of the pod spec.
    pub containers: usize,
    /// The shape of a generated pod's containers; `None` for the others.
    pub generated: Option<Shape>,
}

impl Fixture {
    fn new(name: impl Into<String>, request: &Value, settings: Value, outcome: Outcome) -> Self {
        let containers = ["/spec/template/spec", "/spec"]
            .iter()
            .find_map(|pointer| {
                request["object"]
                    .pointer(pointer)
                    .filter(|spec| spec.get("containers").is_some())
            })
            .map_or(0, |spec| {
                ["containers", "initContainers"]
                    .iter()
                    .filter_map(|list| spec.get(list).and_then(Value::as_array))
                    .map(Vec::len)
                    .sum()
            });
        let payload = serde_json::to_vec(&json!({"request": request, "settings": settings}))
            .expect("a JSON value serializes");
        Fixture {
            name: name.into(),
            payload,
            outcome,
            containers,
            generated: None,
        }
    }

    fn generated(containers: usize, shape: Shape) -> Self {
        let name = match shape {
            Shape::Realistic => format!("pod-{containers}-containers"),
            Shape::Minimal => format!("pod-{containers}-minimal-containers"),
        };
        let request = generated_pod(containers, shape);
        Fixture {
            generated: Some(shape),
            ..Fixture::new(name, &request, json!({}), Outcome::Mutate)
        }
    }

    /// Panics unless `response` takes the path this fixture is meant for.
    pub fn check(&self, response: &[u8]) {
        assert_eq!(
            Outcome::of_response(response),
            self.outcome,
            "fixture {} no longer takes the {} path",
            self.name,
            self.outcome.label()
        );
    }

    pub fn kib(&self) -> f64 {
        self.payload.len() as f64 / 1024.0
    }
}

/// Reads `test_data/<name>`, a bare AdmissionRequest.
pub fn test_data(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The container counts of the generated pods (scaling).
pub const GENERATED_SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// The fixtures, in the order of the report. `max_generated` leaves out the
/// generated pods above that many containers.
pub fn fixtures(max_generated: usize) -> Vec<Fixture> {
    let istio = test_data("istio-injected-deployment.json");
    let mut fixtures = vec![
        // Nothing to change: no sidecar, and no switches asked for.
        Fixture::new(
            "tiny-pod",
            &tiny_pod(),
            json!({"nativeInjection": false}),
            Outcome::Accept,
        ),
        // The same Pod with the defaults: a mutation that only adds the
        // injectors' native switches (SPEC §4), what most Pod CREATEs get.
        Fixture::new("tiny-pod-switches", &tiny_pod(), json!({}), Outcome::Mutate),
        // istio-proxy is converted, gets a startupProbe, the grace is kept.
        Fixture::new(
            "istio-deployment-mutate",
            &istio,
            json!({}),
            Outcome::Mutate,
        ),
        // The same request with the catalogue off: nothing to change, every
        // rule still runs over every container.
        Fixture::new(
            "istio-deployment-accept",
            &istio,
            json!({"builtinSidecars": false}),
            Outcome::Accept,
        ),
    ];
    for containers in GENERATED_SIZES.into_iter().filter(|&n| n <= max_generated) {
        fixtures.push(Fixture::generated(containers, Shape::Realistic));
    }
    if max_generated >= 1_000 {
        // The same 1,000 names with the fields of a bare `{name, image}`:
        // a fifth of the bytes, to tell the cost of containers from the cost
        // of bytes.
        fixtures.push(Fixture::generated(1_000, Shape::Minimal));
    }
    fixtures
}

/// How much each generated container carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Ports, env, resources, probes, mounts, security context: about 1 KiB.
    Realistic,
    /// What the API server makes of `{name, image}`: about 200 bytes.
    Minimal,
}

/// The smallest realistic request: a one-container Pod, nothing to change.
fn tiny_pod() -> Value {
    json!({
        "uid": "5d3c1d9e-2f0a-4a53-9b57-0c1f3c8f6a10",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "hello",
        "namespace": "default",
        "operation": "CREATE",
        "userInfo": {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]},
        "object": {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "containers": [{
                    "name": "hello",
                    "image": "nginx:1.27",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent"
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler"
            },
            "status": {}
        },
        "oldObject": null,
        "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    })
}

/// The number of log shippers a generated pod of `containers` declares in
/// its annotation: one in twenty.
fn log_shippers(containers: usize) -> usize {
    (containers / 20).max(1)
}

/// A Pod CREATE with `containers` regular containers shaped like what the API
/// server sends (defaults applied): application containers, one in ten with
/// a preStop sleep; one in twenty a fluent-bit log shipper named in the
/// `sidecar-lifecycle/containers` annotation; and two built-in sidecars
/// (`istio-proxy`, `cloud-sql-proxy`). One init container (`istio-init`).
/// Every sidecar is converted and gets a startupProbe (`Minimal` ones only
/// when they have a readinessProbe), and the grace period is raised: the
/// mutate path, with work that grows with the pod.
pub fn generated_pod(containers: usize, shape: Shape) -> Value {
    assert!(containers >= 4, "a generated pod has at least 4 containers");
    let istio = test_data("istio-injected-deployment.json");
    let istio_spec = &istio["object"]["spec"]["template"]["spec"];
    let istio_proxy = istio_spec["containers"][1].clone();
    let istio_init = istio_spec["initContainers"][0].clone();
    assert_eq!(istio_proxy["name"], "istio-proxy");
    // Istio's record marks the pod injected; the policy rewrites it.
    let istio_status =
        istio["object"]["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/status"]
            .clone();
    assert!(istio_status.is_string());

    let shippers = log_shippers(containers);
    let apps = containers - shippers - 2;
    let every = containers / shippers;
    let mut list = Vec::with_capacity(containers);
    let (mut app, mut shipper) = (0, 0);
    for position in 0..containers - 2 {
        let container = if position % every == every / 2 && shipper < shippers || app == apps {
            shipper += 1;
            log_shipper(shipper - 1)
        } else {
            app += 1;
            app_container(app - 1)
        };
        list.push(match shape {
            Shape::Realistic => container,
            Shape::Minimal => minimal(&container),
        });
    }
    list.push(match shape {
        Shape::Realistic => cloud_sql_proxy(),
        Shape::Minimal => minimal(&cloud_sql_proxy()),
    });
    list.push(istio_proxy);
    let declared: Vec<String> = (0..shippers).map(|k| format!("log-shipper-{k}")).collect();

    json!({
        "uid": "7f0f7c51-8b1e-4f55-a0f5-3b2d7f7d9c42",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "monolith-7c9d5b8f4-x2k9p",
        "namespace": "shop",
        "operation": "CREATE",
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "3a1f6c0e-9d55-4e8b-8a0c-2f4d1b7e6c93",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
        },
        "object": {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": "monolith-7c9d5b8f4-x2k9p",
                "generateName": "monolith-7c9d5b8f4-",
                "namespace": "shop",
                "creationTimestamp": null,
                "labels": {"app": "monolith", "pod-template-hash": "7c9d5b8f4",
                    "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "monolith"},
                "annotations": {
                    "sidecar-lifecycle/containers": declared.join(", "),
                    "sidecar.istio.io/status": istio_status,
                    "istio.io/rev": "default",
                    "prometheus.io/path": "/stats/prometheus",
                    "prometheus.io/port": "15020",
                    "prometheus.io/scrape": "true"
                },
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "monolith-7c9d5b8f4",
                    "uid": "c0b5f3f2-7d0e-4a58-9a47-8b3e1f0d2a61", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "volumes": [
                    {"name": "varlog", "emptyDir": {}},
                    {"name": "kube-api-access-7xk2p", "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
                        "defaultMode": 420}}
                ],
                "initContainers": [istio_init],
                "containers": list,
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "monolith",
                "serviceAccount": "monolith",
                "securityContext": {},
                "schedulerName": "default-scheduler",
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ],
                "priority": 0,
                "enableServiceLinks": true,
                "preemptionPolicy": "PreemptLowerPriority"
            },
            "status": {}
        },
        "oldObject": null,
        "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    })
}

/// The container as the API server defaults `{name, image}` of it.
fn minimal(container: &Value) -> Value {
    json!({
        "name": container["name"],
        "image": container["image"],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    })
}

fn app_container(index: usize) -> Value {
    let name = format!("app-{index:05}");
    let port = 10_000 + index;
    let mut container = json!({
        "name": name,
        "image": format!("ghcr.io/acme-shop/{name}:v1.{}.0", index % 10),
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LISTEN_ADDR", "value": format!(":{port}")},
            {"name": "LOG_FORMAT", "value": "json"},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-gateway-collector.observability.svc:4317"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "monolith-db", "key": "password"}}}
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "volumeMounts": [
            {"name": "varlog", "mountPath": "/var/log/app"},
            {"name": "kube-api-access-7xk2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
        ],
        "readinessProbe": {"httpGet": {"path": format!("/app-health/{name}/readyz"), "port": 15020, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsUser": 10001, "runAsNonRoot": true,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}
    });
    if index.is_multiple_of(10) {
        container["lifecycle"] =
            json!({"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5 && kill -TERM 1"]}}});
    }
    container
}

fn log_shipper(index: usize) -> Value {
    json!({
        "name": format!("log-shipper-{index}"),
        "image": "cr.fluentbit.io/fluent/fluent-bit:3.1.4",
        "args": ["--config=/fluent-bit/etc/fluent-bit.yaml"],
        "ports": [{"name": "metrics", "containerPort": 30_000 + index, "protocol": "TCP"}],
        "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "20m", "memory": "64Mi"}},
        "volumeMounts": [{"name": "varlog", "readOnly": true, "mountPath": "/var/log/app"}],
        "readinessProbe": {"httpGet": {"path": "/api/v1/health", "port": 30_000 + index, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    })
}

fn cloud_sql_proxy() -> Value {
    json!({
        "name": "cloud-sql-proxy",
        "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.4",
        "args": ["--structured-logs", "--port=5432", "--health-check", "--http-address=0.0.0.0",
            "acme-shop:europe-west1:monolith"],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "readinessProbe": {"httpGet": {"path": "/readiness", "port": 9090, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"runAsNonRoot": true}
    })
}

// ---------------------------------------------------------------------------
// The summary's timing loop
// ---------------------------------------------------------------------------

/// How many batches [`compare`] times of each function.
pub const ROUNDS: usize = 31;
/// About how long one batch of calls of the slowest function takes.
const BATCH: Duration = Duration::from_millis(10);

/// Per-call times, in nanoseconds, of several functions measured together.
///
/// The functions are timed in alternating batches of the same number of calls
/// (about 10 ms for the slowest), [`ROUNDS`] times; each figure is the median
/// of a function's batches. Alternating puts every function under the same
/// machine conditions, which keeps ratios between them stable even when the
/// machine's speed drifts; the median drops the batches a burst of other work
/// slowed down.
pub fn compare(functions: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let (batch, rounds) = (BATCH, ROUNDS);
    // Calibrate on the slowest function, after a first call of each.
    let mut slowest = Duration::ZERO;
    for function in functions.iter_mut() {
        function();
        let start = Instant::now();
        function();
        slowest = slowest.max(start.elapsed());
    }
    let calls = (batch.as_nanos() / slowest.as_nanos().max(1)).clamp(1, 1_000_000) as u32;
    let mut samples = vec![Vec::with_capacity(rounds); functions.len()];
    for _ in 0..rounds {
        for (function, samples) in functions.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            for _ in 0..calls {
                function();
            }
            samples.push(start.elapsed().as_nanos() as f64 / f64::from(calls));
        }
    }
    samples.into_iter().map(median).collect()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// `1234567.0` ns -> `1.23 ms`.
pub fn human(nanos: f64) -> String {
    if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else if nanos >= 1e3 {
        format!("{:.1} µs", nanos / 1e3)
    } else {
        format!("{nanos:.0} ns")
    }
}

/// Whether criterion runs in benchmark mode (`cargo bench`), rather than
/// test mode (`cargo test --benches`, `cargo bench -- --test`) or a listing:
/// the summary runs only then.
pub fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench")
        && !has("--test")
        && !has("--list")
        && !args.iter().any(|arg| arg.starts_with("--profile-time"))
}

/// Keeps the optimizer from dropping a call's result.
pub fn consume<T>(value: T) {
    drop(black_box(value));
}
