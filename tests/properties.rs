//! Property tests: random AdmissionRequests for pods and workloads of every
//! kind, evaluated under random valid settings, must keep the promises of
//! SPEC.md section 8 whatever they hold.
//!
//! The strategies build requests for Pod, Deployment, ReplicaSet,
//! StatefulSet, DaemonSet, ReplicationController, Job and CronJob (mostly
//! CREATE, some UPDATE with a changed or unchanged template, some DELETE,
//! some owned by a controller), with containers named from a pool that mixes
//! the built-in catalogue (`consul-dataplane-<svc>` included), application
//! names and setup names (the mesh's, Consul's and Vault's init
//! containers); init containers native or not; the sidecar and standard
//! annotations; the injectors' native switches under every key they read,
//! with values that turn them on, off or neither; OpenTelemetry's label;
//! `lifecycle.type` markers; probes; hooks of every form the grace rule
//! reads (and odd ones); `consul-dataplane`'s shutdown flag in its forms;
//! grace periods absent, null, numbers and numbers no int64 holds; unknown
//! fields with random JSON values; and settings using every key of SPEC.md
//! section 9 (`builtinSidecars` as a bool or a list of entries,
//! `nativeInjection`).
//!
//! Some properties draw from strategies biased towards what they are about
//! (Pod CREATEs for the native switches, setup containers for placement, a
//! `daprd` for the never-derived probe, a clean Pod created with the
//! ServiceAccount admission plugin's token mounts for the naked-Pod
//! re-apply), so that their `Coverage` counts stay meaningful.
//!
//! Properties about the answer's logic run on the native core
//! (`sidecar_lifecycle_policy::policy::validate`, the very function the waPC
//! `validate` entry point calls), which is fast enough for long runs; the
//! compiled module is exercised by the no-trap property (which also checks
//! it answers byte for byte as the native core) and by the harness
//! property, which runs `common::evaluate_request` through the waPC host.
//!
//! Deterministic: a fixed seed, no persisted failures. The number of cases
//! per property is `PROPTEST_CASES` (256 when unset, which keeps CI fast);
//! `PROPTEST_RNG_SEED` picks another seed. A long run (a debug build keeps
//! overflow checks on, which is what finds arithmetic bugs):
//!
//!     PROPTEST_CASES=100000 cargo test --test properties -- --nocapture
//!
//! `--nocapture` shows how many cases exercised each property and how many
//! were skipped as the known conflicts below. The properties that go through
//! the waPC host instantiate the module per case; to spend a long run on the
//! native ones only, add the filters `a_mutat evaluating a_rejection`.
//!
//! The ignored `regression_*` tests at the end are what these properties
//! found in src/; `cargo test --test properties -- --ignored` runs them.

mod common;

#[path = "api_rules/mod.rs"]
mod api_rules;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::PodSpec;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use sidecar_lifecycle_policy::catalogue::{self, CATALOGUE};
use sidecar_lifecycle_policy::settings::{LegacySidecars, Settings};
use sidecar_lifecycle_policy::{glob, policy};

// ---------------------------------------------------------------------------
// Running properties
// ---------------------------------------------------------------------------

/// The seed of every run unless `PROPTEST_RNG_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x51DE_CA12;

/// `PROPTEST_CASES` cases (256 by default), a fixed seed, nothing written to
/// disk: every run of CI tries the same cases.
fn config() -> Config {
    // Config::default() reads PROPTEST_CASES and PROPTEST_RNG_SEED.
    let mut config = Config::default();
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    config.failure_persistence = None;
    config
}

/// Runs `test` on cases of `strategy`; on failure, panics with the shrunk
/// case.
fn check<S>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let config = config();
    let seed = config.rng_seed;
    let mut runner = TestRunner::new(config);
    if let Err(failure) = runner.run(&strategy, test) {
        panic!(
            "{failure}\n(seed {seed:?}; rerun with PROPTEST_RNG_SEED and PROPTEST_CASES to reproduce)"
        );
    }
}

/// How many cases a property actually exercised, printed at the end (shown
/// with `--nocapture`) and checked so that a generator that drifts into
/// trivial cases is noticed.
struct Coverage {
    name: &'static str,
    cases: AtomicUsize,
    exercised: AtomicUsize,
    skipped: AtomicUsize,
}

impl Coverage {
    const fn new(name: &'static str) -> Self {
        Coverage {
            name,
            cases: AtomicUsize::new(0),
            exercised: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
        }
    }

    fn case(&self) {
        self.cases.fetch_add(1, Ordering::Relaxed);
    }

    fn exercised(&self) {
        self.exercised.fetch_add(1, Ordering::Relaxed);
    }

    fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Prints the counts and asserts that at least `min_percent` of the
    /// cases exercised the property (on runs of 100 cases or more).
    fn report(&self, min_percent: usize) {
        let cases = self.cases.load(Ordering::Relaxed);
        let exercised = self.exercised.load(Ordering::Relaxed);
        let skipped = self.skipped.load(Ordering::Relaxed);
        eprintln!(
            "{}: {cases} cases (shrinking included), {exercised} exercised the property, {skipped} skipped as known conflicts",
            self.name
        );
        if cases >= 100 {
            assert!(
                exercised * 100 >= cases * min_percent,
                "{}: only {exercised} of {cases} cases exercised the property; the generator needs care",
                self.name
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------

const APP_NAMES: &[&str] = &[
    "app",
    "web",
    "orders",
    "worker",
    "log-shipper",
    "envoy",
    "fluent-bit",
    "metrics",
    "db-migrate",
];
/// Init containers: the built-in setup containers (Consul's multi-port
/// `consul-connect-inject-init-<svc>` included), Vault's `vault-agent-init`
/// (which `vault-agent` starts after), one a setting's glob names, and the
/// application's own.
const SETUP_NAMES: &[&str] = &[
    "istio-init",
    "istio-validation",
    "linkerd-init",
    "linkerd-network-validator",
    "consul-connect-inject-init",
    "consul-connect-inject-init-web",
    "consul-connect-init",
    "vault-agent-init",
    "cni-net-setup",
    "wait-for-db",
];
/// Names a catalogue entry matches by a glob other than its first name
/// (Consul's multi-port pods), and one it does not match.
const CATALOGUE_VARIANTS: &[&str] = &[
    "consul-dataplane-web",
    "consul-dataplane-billing",
    "consul-dataplane2",
];
const IMAGES: &[&str] = &[
    "docker.io/istio/proxyv2:1.22.3",
    "cr.l5d.io/linkerd/proxy:stable-2.14.10",
    "hashicorp/vault:1.17.2",
    "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0",
    "daprio/daprd:1.14.1",
    "envoyproxy/envoy:v1.31.0",
    "cr.fluentbit.io/fluent/fluent-bit:3.1.4",
    "shop/app:1",
    "busybox",
    INJECTION_TEMPLATE,
];
const DEFAULT_ANNOTATION: &str = "sidecar-lifecycle/containers";
const CUSTOM_ANNOTATION: &str = "example.com/sidecars";
const DEFAULT_STANDARD_ANNOTATION: &str = "sidecar-lifecycle/standard-containers";
const CUSTOM_STANDARD_ANNOTATION: &str = "example.com/regular";
/// Istio's injection template image (SPEC §3, rule 1).
const INJECTION_TEMPLATE: &str = "auto";

/// The names of the built-in catalogue.
fn catalogue_names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|entry| entry.name()).collect()
}

/// Numbers a JSON document may hold that no int64 field takes, or only just.
const ODD_NUMBERS: &[&str] = &[
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "1180591620717411303424",
    "1e400",
    "-1e400",
    "-0",
    "-1",
    "-9223372036854775809",
    "30.0",
    "0.5",
    "1e2",
];

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text} is not JSON: {e}"))
}

fn strings(words: &[&str]) -> Value {
    Value::from(words.iter().map(|w| Value::from(*w)).collect::<Vec<_>>())
}

// ---------------------------------------------------------------------------
// Strategies: JSON values
// ---------------------------------------------------------------------------

/// Half of the cases are built only from pieces the API server accepts, so
/// that "valid before, valid after" is exercised often; the other half mix
/// in malformed and hostile pieces anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Clean,
    Wild,
}

/// `strategy` in wild mode only; `fallback` in clean mode.
fn wild<T: fmt::Debug + Clone + 'static>(
    mode: Mode,
    weight: u32,
    strategy: impl Strategy<Value = T> + 'static,
    fallback: BoxedStrategy<T>,
) -> BoxedStrategy<T> {
    match mode {
        Mode::Clean => fallback,
        Mode::Wild => {
            prop_oneof![100 - weight.min(99) => fallback, weight.min(99) => strategy].boxed()
        }
    }
}

fn odd_number() -> BoxedStrategy<Value> {
    select(ODD_NUMBERS).prop_map(number).boxed()
}

/// Any JSON value, a few levels deep, with numbers of every size.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        odd_number(),
        ".{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((".{0,6}", inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Extra fields of a container: real ones with valid values, and unknown
/// ones with any value (the API server drops unknown fields, so both kinds
/// are fine in clean mode too).
fn extras() -> BoxedStrategy<Vec<(String, Value)>> {
    const UNKNOWN_KEYS: &[&str] = &[
        "futureField",
        "x-extension",
        "aa-first",
        "zz-last",
        "ünïcödé",
        "with space",
        "",
    ];
    const KNOWN_FIELDS: &[(&str, &str)] = &[
        (
            "ports",
            r#"[{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]"#,
        ),
        ("env", r#"[{"name": "DRAIN_SECONDS", "value": "5"}]"#),
        // Linkerd's identity controller proxy, and an ordinary one
        (
            "env",
            r#"[{"name": "LINKERD2_PROXY_IDENTITY_SVC_ADDR", "value": "localhost.:8080"}]"#,
        ),
        (
            "env",
            r#"[{"name": "LINKERD2_PROXY_IDENTITY_SVC_ADDR", "value": "linkerd-identity-headless.linkerd.svc.cluster.local.:8080"}]"#,
        ),
        (
            "resources",
            r#"{"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}"#,
        ),
        (
            "securityContext",
            r#"{"runAsNonRoot": true, "runAsUser": 1337}"#,
        ),
        ("args", r#"["proxy", "sidecar", "--concurrency", "2"]"#),
        // an Istio gateway, and overridden proxy args without a mode
        (
            "args",
            r#"["proxy", "router", "--domain", "istio-system.svc.cluster.local"]"#,
        ),
        ("args", r#"["proxy", "--proxyLogLevel=debug"]"#),
        (
            "volumeMounts",
            r#"[{"name": "data", "mountPath": "/data"}]"#,
        ),
        ("imagePullPolicy", r#""IfNotPresent""#),
        ("terminationMessagePolicy", r#""FallbackToLogsOnError""#),
    ];
    vec(
        prop_oneof![
            3 => (select(UNKNOWN_KEYS).prop_map(str::to_owned), any_json()),
            2 => select(KNOWN_FIELDS).prop_map(|(key, value)| (key.to_owned(), number(value))),
        ],
        0..3,
    )
    .boxed()
}

/// `sleep.seconds` of a hook: in clean mode within the default grace
/// period; in wild mode beyond it, and odd.
fn sleep_seconds(mode: Mode) -> BoxedStrategy<Value> {
    let clean = (0u64..=30).prop_map(Value::from).boxed();
    let odd = prop_oneof![
        4 => (31u64..=120).prop_map(Value::from),
        2 => odd_number(),
        1 => Just(json!("30")),
        1 => Just(Value::Null),
    ];
    wild(mode, 30, odd, clean)
}

// ---------------------------------------------------------------------------
// Strategies: hooks, probes, containers
// ---------------------------------------------------------------------------

/// The N of an exec `sleep N` (any string is a valid exec argument).
fn seconds_word() -> BoxedStrategy<String> {
    prop_oneof![
        6 => (0u64..=90).prop_map(|n| n.to_string()),
        2 => (0u64..=90).prop_map(|n| format!("{n}s")),
        1 => select(&[
            "99999999999999999999",
            "9223372036854775807",
            "-5",
            "1.5",
            "5m",
            "s",
            "$DRAIN_SECONDS",
            "",
        ][..])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A shell script, mostly beginning with a sleep.
fn script() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (
            select(&["", "exec ", "  ", "exec\t"][..]),
            select(&["sleep", "/bin/sleep", "/usr/bin/sleep", "sleeper"][..]),
            select(&[" ", "\t", "  "][..]),
            seconds_word(),
            select(&[
                "",
                ";",
                " ; nginx -s quit",
                " && echo done",
                "&&x",
                "\nnginx -s quit",
                "\r\necho done",
                " || true",
                " & wait",
                "x",
            ][..]),
        )
            .prop_map(|(exec, sleep, blank, seconds, rest)| format!("{exec}{sleep}{blank}{seconds}{rest}")),
        1 => select(&[
            "echo draining; sleep 5",
            "kill -TERM 1",
            "wget -qO- localhost:9901/shutdown",
            "sleep",
        ][..])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn exec(words: Vec<String>) -> Value {
    json!({"exec": {"command": words}})
}

/// A lifecycle hook: sleep actions, exec sleeps, shell scripts, httpGet
/// hooks (quitquitquit included), kill commands; in wild mode odd exec
/// forms and hooks that are no hooks.
fn hook(mode: Mode) -> BoxedStrategy<Value> {
    let shell = select(
        &[
            "sh",
            "bash",
            "/bin/sh",
            "/bin/bash",
            "/usr/bin/sh",
            "/usr/bin/bash",
            "zsh",
        ][..],
    );
    let flags = prop_oneof![
        6 => Just(vec!["-c"]),
        2 => Just(vec!["-ec"]),
        1 => Just(vec!["-e", "-c"]),
        1 => vec(select(&["-c", "-e", "-xc", "pipefail", "-o"][..]), 0..3),
    ];
    const KILLS: &[&[&str]] = &[
        &["pkill", "envoy"],
        &["/bin/sh", "-c", "kill -TERM 1"],
        &["killall", "-q", "vault"],
        &[
            "curl",
            "-sf",
            "-XPOST",
            "http://127.0.0.1:15020/quitquitquit",
        ],
        &["/bin/skill-check"],
    ];
    let kill = select(KILLS).prop_map(|words| json!({"exec": {"command": strings(words)}}));
    let valid = prop_oneof![
        3 => sleep_seconds(mode).prop_map(|seconds| json!({"sleep": {"seconds": seconds}})),
        2 => (select(&["sleep", "/bin/sleep", "/usr/bin/sleep"][..]), seconds_word())
            .prop_map(|(sleep, seconds)| exec(vec![sleep.to_owned(), seconds])),
        3 => (shell, flags, script(), option::weighted(0.1, Just("extra")))
            .prop_map(|(shell, flags, script, extra)| {
                let mut words = vec![shell.to_owned()];
                words.extend(flags.into_iter().map(str::to_owned));
                words.push(script);
                words.extend(extra.map(str::to_owned));
                exec(words)
            }),
        2 => select(&[
            "/quitquitquit",
            "/shutdown",
            "/admin/shutdown",
            "/shutdown/status",
            "/drain",
            "/healthz/ready",
        ][..])
        .prop_map(|path| json!({"httpGet": {"path": path, "port": 15000}})),
        1 => kill,
        1 => Just(json!({"tcpSocket": {"port": 8080}})),
    ]
    .boxed();
    let odd_exec = select(
        &[
            r#"{"exec": {"command": "sleep 5"}}"#,
            r#"{"exec": {"command": []}}"#,
            r#"{"exec": {"command": ["sleep", 5]}}"#,
            r#"{"exec": {"command": ["sleep 5"]}}"#,
            r#"{"exec": {"command": ["sleep", "5", "extra"]}}"#,
            r#"{"exec": {"command": null}}"#,
            r#"{"exec": {}}"#,
            r#"{"exec": null}"#,
            r#"{"exec": "sleep 5"}"#,
            r#"{}"#,
            r#"null"#,
            r#""sleep 5""#,
            r#"{"sleep": {"seconds": 5}, "exec": {"command": ["sleep", "9"]}}"#,
            r#"{"httpGet": {"path": "/quitquitquit"}}"#,
        ][..],
    )
    .prop_map(number);
    wild(mode, 20, odd_exec, valid)
}

/// `lifecycle`, if any: a `type` marker (`Sidecar`, `Standard`, odd ones),
/// a preStop and a postStart; sometimes `{}` or `null`, in wild mode now and
/// then no object at all.
fn lifecycle(mode: Mode) -> BoxedStrategy<Option<Value>> {
    let marker = prop_oneof![
        8 => Just(None),
        2 => Just(Some(json!("Sidecar"))),
        2 => Just(Some(json!("Standard"))),
        1 => Just(Some(json!("sidecar"))),
        1 => Just(Some(json!(7))),
    ];
    (
        marker,
        option::weighted(0.5, hook(mode)),
        option::weighted(0.15, hook(mode)),
        0u8..40,
    )
        .prop_map(move |(marker, pre_stop, post_start, shape)| {
            match shape {
                0 => return Some(Value::Null),
                1 if mode == Mode::Wild => return Some(json!("preStop")),
                _ => {}
            }
            let mut lifecycle = Map::new();
            if let Some(marker) = marker {
                lifecycle.insert("type".into(), marker);
            }
            if let Some(hook) = pre_stop {
                lifecycle.insert("preStop".into(), hook);
            }
            if let Some(hook) = post_start {
                lifecycle.insert("postStart".into(), hook);
            }
            (!lifecycle.is_empty() || shape < 4).then_some(Value::Object(lifecycle))
        })
        .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Readiness,
    Startup,
    Liveness,
}

/// A probe: one handler, some of the int32 fields; in wild mode odd values
/// and fields the API server refuses.
fn probe(kind: ProbeKind, mode: Mode) -> BoxedStrategy<Value> {
    const PROBE_ODD_NUMBERS: &[&str] = &[
        "3000000000",
        "9223372036854775807",
        "18446744073709551616",
        "1180591620717411303424",
        "1e400",
        "-0",
        "-1",
        "30.0",
        "0.5",
        "1e2",
    ];
    let handler = select(
        &[
            r#"{"httpGet": {"path": "/healthz/ready", "port": 15021}}"#,
            r#"{"tcpSocket": {"port": 5432}}"#,
            r#"{"exec": {"command": ["cat", "/tmp/ready"]}}"#,
            r#"{"grpc": {"port": 9090}}"#,
        ][..],
    )
    .prop_map(number);
    let int32_field = move || {
        option::weighted(
            0.5,
            wild(
                mode,
                15,
                select(PROBE_ODD_NUMBERS).prop_map(number),
                (0u64..=60).prop_map(Value::from).boxed(),
            ),
        )
    };
    let success = match (kind, mode) {
        (ProbeKind::Readiness, _) | (_, Mode::Wild) => {
            prop_oneof![3 => Just(json!(1)), 1 => (2u64..=5).prop_map(Value::from)].boxed()
        }
        _ => Just(json!(1)).boxed(),
    };
    let grace = match (kind, mode) {
        (ProbeKind::Readiness, Mode::Clean) => Just(None).boxed(),
        _ => option::weighted(0.05, (1u64..=30).prop_map(Value::from)).boxed(),
    };
    (
        handler,
        int32_field(),
        int32_field(),
        option::weighted(0.3, success),
        int32_field(),
        grace,
        0u8..50,
    )
        .prop_map(
            move |(handler, period, failure, success, timeout, grace, shape)| {
                if shape == 0 && mode == Mode::Wild {
                    return json!("tcp:80");
                }
                let mut probe = handler.as_object().cloned().unwrap_or_default();
                for (key, value) in [
                    ("periodSeconds", period),
                    ("failureThreshold", failure),
                    ("successThreshold", success),
                    ("timeoutSeconds", timeout),
                    ("terminationGracePeriodSeconds", grace),
                ] {
                    if let Some(value) = value {
                        probe.insert(key.into(), value);
                    }
                }
                Value::Object(probe)
            },
        )
        .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Regular,
    Init,
}

fn container_name(place: Place) -> BoxedStrategy<String> {
    match place {
        Place::Regular => prop_oneof![
            3 => select(catalogue_names()),
            1 => select(CATALOGUE_VARIANTS),
            4 => select(APP_NAMES),
            1 => select(SETUP_NAMES),
        ]
        .prop_map(str::to_owned)
        .boxed(),
        Place::Init => prop_oneof![
            4 => select(SETUP_NAMES),
            3 => select(catalogue_names()),
            1 => select(CATALOGUE_VARIANTS),
            2 => select(APP_NAMES),
        ]
        .prop_map(str::to_owned)
        .boxed(),
    }
}

/// `consul-dataplane`'s own shutdown time (SPEC §6): the flag
/// `-shutdown-grace-period-seconds` with one dash or two, `=N` or `N` as the
/// next element, in `command` or `args`, repeated (the last counts), with
/// values that are no count; and args without it.
fn shutdown_flag_field() -> BoxedStrategy<(String, Value)> {
    let value = prop_oneof![
        6 => (0u64..=90).prop_map(|n| n.to_string()),
        1 => select(&["abc", "-1", "", "15s", "99999999999999999999"][..]).prop_map(str::to_owned),
    ];
    let flag =
        (select(&["-", "--"][..]), any::<bool>(), value).prop_map(|(dashes, joined, value)| {
            let flag = format!("{dashes}shutdown-grace-period-seconds");
            if joined {
                vec![format!("{flag}={value}")]
            } else {
                vec![flag, value]
            }
        });
    (
        select(&["command", "args"][..]),
        vec(flag, 0..3),
        select(
            &[
                "-log-level=info",
                "-graceful-port=20600",
                "-shutdown-grace-period-secondsx=3",
            ][..],
        ),
    )
        .prop_map(|(field, flags, other)| {
            let mut words: Vec<String> = match field {
                "command" => vec!["consul-dataplane".to_owned()],
                _ => Vec::new(),
            };
            words.push(other.to_owned());
            words.extend(flags.into_iter().flatten());
            (field.to_owned(), Value::from(words))
        })
        .boxed()
}

/// One container of `containers` or `initContainers`. In clean mode an init
/// container that is no native sidecar has none of the fields the API server
/// keeps for sidecars, and a regular container sets `restartPolicy` only as
/// Kubernetes 1.34 allows.
fn container(place: Place, mode: Mode) -> BoxedStrategy<Value> {
    let restart_policy = match place {
        Place::Regular => {
            let valid = prop_oneof![
                30 => Just(None),
                1 => select(&["Always", "OnFailure", "Never"][..]).prop_map(|p| Some(json!(p))),
                1 => Just(Some(Value::Null)),
            ]
            .boxed();
            wild(mode, 5, Just(Some(json!("Sometimes"))), valid)
        }
        Place::Init => {
            let valid = prop_oneof![
                10 => Just(Some(json!("Always"))),
                8 => Just(None),
                1 => Just(Some(Value::Null)),
            ]
            .boxed();
            let odd = select(&["OnFailure", "Never", "always"][..]).prop_map(|p| Some(json!(p)));
            wild(mode, 10, odd, valid)
        }
    };
    (
        container_name(place),
        option::weighted(0.7, select(IMAGES)),
        lifecycle(mode),
        option::weighted(0.4, probe(ProbeKind::Readiness, mode)),
        option::weighted(0.15, probe(ProbeKind::Startup, mode)),
        option::weighted(0.05, probe(ProbeKind::Liveness, mode)),
        restart_policy,
        option::weighted(0.02, Just(json!([]))),
        option::weighted(
            0.05,
            Just(json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}])),
        ),
        extras(),
        option::weighted(0.6, shutdown_flag_field()),
    )
        .prop_map(
            move |(
                name,
                image,
                lifecycle,
                readiness,
                startup,
                liveness,
                restart_policy,
                restart_rules,
                resize_policy,
                extras,
                shutdown_flag,
            )| {
                let mut container = Map::new();
                container.insert("name".into(), json!(name));
                // only where the catalogue reads it: consul-dataplane's
                if let Some((field, words)) = shutdown_flag.filter(|_| {
                    catalogue::entry_of(&name).is_some_and(|entry| entry.shutdown_flag.is_some())
                }) {
                    container.insert(field, words);
                }
                let native_sidecar = restart_policy.as_ref() == Some(&json!("Always"));
                let sidecar_fields =
                    place == Place::Regular || native_sidecar || mode == Mode::Wild;
                let restart_rules =
                    restart_rules.filter(|_| restart_policy.is_some() || mode == Mode::Wild);
                for (key, value, allowed) in [
                    ("image", image.map(Value::from), true),
                    ("lifecycle", lifecycle, sidecar_fields),
                    ("readinessProbe", readiness, sidecar_fields),
                    ("startupProbe", startup, sidecar_fields),
                    ("livenessProbe", liveness, sidecar_fields),
                    ("restartPolicy", restart_policy, true),
                    ("restartPolicyRules", restart_rules, true),
                    ("resizePolicy", resize_policy, sidecar_fields),
                ] {
                    if let Some(value) = value.filter(|_| allowed) {
                        container.insert(key.into(), value);
                    }
                }
                for (key, value) in extras {
                    container.entry(key).or_insert(value);
                }
                Value::Object(container)
            },
        )
        .boxed()
}

/// `containers`: 1 to 4 containers; in wild mode sometimes malformed.
fn containers(mode: Mode) -> BoxedStrategy<Option<Value>> {
    let valid = vec(container(Place::Regular, mode), 1..5)
        .prop_map(|list| Some(Value::Array(list)))
        .boxed();
    let odd = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(json!([]))),
        Just(Some(json!({"name": "app"}))),
        Just(Some(json!([{"name": "app"}, 7]))),
        Just(Some(json!([{"image": "busybox"}, {"name": ""}]))),
    ];
    wild(mode, 10, odd, valid)
}

/// `initContainers`: absent, null or 0 to 3 containers; in wild mode
/// sometimes not a list.
fn init_containers(mode: Mode) -> BoxedStrategy<Option<Value>> {
    let valid = prop_oneof![
        6 => Just(None),
        1 => Just(Some(Value::Null)),
        10 => vec(container(Place::Init, mode), 0..4).prop_map(|list| Some(Value::Array(list))),
    ]
    .boxed();
    wild(mode, 5, Just(Some(json!("istio-init"))), valid)
}

/// `terminationGracePeriodSeconds`: absent, null, a number; in wild mode
/// numbers no int64 holds, negative ones, `30.0`, a string.
fn grace_period(mode: Mode) -> BoxedStrategy<Option<Value>> {
    let valid = prop_oneof![
        8 => Just(None),
        2 => Just(Some(Value::Null)),
        8 => (0u64..=120).prop_map(|n| Some(Value::from(n))),
    ]
    .boxed();
    let odd = prop_oneof![
        4 => odd_number().prop_map(Some),
        1 => Just(Some(json!("30"))),
    ];
    wild(mode, 15, odd, valid)
}

/// Gives every container a name of its own.
fn dedupe_names(spec: &mut Map<String, Value>) {
    let mut seen = BTreeSet::new();
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for container in containers {
            let Some(Value::String(name)) = container.get_mut("name") else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let mut candidate = name.clone();
            let mut n = 2;
            while !seen.insert(candidate.clone()) {
                candidate = format!("{name}-{n}");
                n += 1;
            }
            *name = candidate;
        }
    }
}

/// A pod spec. In clean mode, the sleeps of the hooks fit the grace period,
/// and container names are unique (in wild mode they mostly are).
fn pod_spec(mode: Mode) -> BoxedStrategy<Value> {
    let pod_extras = vec(
        prop_oneof![
            2 => select(&[
                ("restartPolicy", r#""Always""#),
                ("restartPolicy", r#""OnFailure""#),
                ("serviceAccountName", r#""shop""#),
                ("volumes", r#"[{"name": "data", "emptyDir": {}}]"#),
                ("ephemeralContainers", r#"[{"name": "debugger", "image": "busybox"}]"#),
            ][..])
            .prop_map(|(key, value)| (key.to_owned(), number(value))),
            1 => (select(&["futureField", "x-extension", "zz"][..]).prop_map(str::to_owned), any_json()),
        ],
        0..3,
    );
    (
        containers(mode),
        init_containers(mode),
        grace_period(mode),
        pod_extras,
        0u8..20,
    )
        .prop_map(move |(containers, init, grace, extras, duplicates)| {
            let mut spec = Map::new();
            for (key, value) in extras {
                spec.insert(key, value);
            }
            for (key, value) in [
                ("containers", containers),
                ("initContainers", init),
                ("terminationGracePeriodSeconds", grace),
            ] {
                if let Some(value) = value {
                    spec.insert(key.into(), value);
                }
            }
            if mode == Mode::Clean || duplicates != 0 {
                dedupe_names(&mut spec);
            }
            if mode == Mode::Clean {
                fit_sleeps_to_grace(&mut spec);
            }
            Value::Object(spec)
        })
        .boxed()
}

/// Clean mode: a grace period below a hook's sleep is raised to it, as a
/// valid pod has it.
fn fit_sleeps_to_grace(spec: &mut Map<String, Value>) {
    let longest_sleep = ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .flat_map(|container| {
            ["preStop", "postStart"].map(|hook| {
                container
                    .get("lifecycle")
                    .and_then(|lifecycle| lifecycle.get(hook))
                    .and_then(|hook| hook.pointer("/sleep/seconds"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            })
        })
        .max()
        .unwrap_or(0);
    let grace = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    if grace < longest_sleep {
        spec.insert(
            "terminationGracePeriodSeconds".into(),
            Value::from(longest_sleep),
        );
    }
}

// ---------------------------------------------------------------------------
// Strategies: metadata, objects, requests
// ---------------------------------------------------------------------------

/// The pod's annotations: the sidecar annotation (under the default or a
/// custom key, names with white space, empty entries and repeats), others;
/// in wild mode sometimes a value that is not a string, no map at all, or
/// the mirror-pod annotation.
fn annotations(mode: Mode) -> BoxedStrategy<Option<Value>> {
    let names = || {
        vec(
            prop_oneof![
                4 => container_name(Place::Regular),
                1 => select(&["", " ", "ghost", "istio-init"][..]).prop_map(str::to_owned),
            ],
            0..4,
        )
    };
    let separator = || select(&[",", ", ", " ,", ",,", " , "][..]);
    (
        option::weighted(
            0.4,
            (
                select(&[DEFAULT_ANNOTATION, CUSTOM_ANNOTATION][..]),
                names(),
                separator(),
            ),
        ),
        option::weighted(
            0.2,
            (
                select(&[DEFAULT_STANDARD_ANNOTATION, CUSTOM_STANDARD_ANNOTATION][..]),
                names(),
                separator(),
            ),
        ),
        // Istio's record of an injected pod, which also marks it injected
        option::weighted(
            0.6,
            select(
                &[
                    r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"imagePullSecrets":null,"revision":"default"}"#,
                    r#"{"initContainers":["istio-init","istio-proxy"],"containers":null,"revision":"default"}"#,
                    r#"{"initContainers":["istio-init"]}"#,
                    "not json",
                ][..],
            ),
        ),
        option::weighted(
            0.3,
            select(
                &[
                    ("prometheus.io/scrape", "true"),
                    ("kubectl.kubernetes.io/default-container", "app"),
                ][..],
            ),
        ),
        option::weighted(0.5, vec(native_switch(), 1..5)),
        0u8..40,
    )
        .prop_map(move |(sidecars, standard, istio_status, other, switches, odd)| {
            let odd = if mode == Mode::Wild { odd } else { u8::MAX };
            let mut annotations = Map::new();
            for (key, names, separator) in [sidecars, standard].into_iter().flatten() {
                annotations.insert(key.into(), json!(names.join(separator)));
            }
            if let Some(record) = istio_status {
                annotations.insert("sidecar.istio.io/status".into(), json!(record));
            }
            if let Some((key, value)) = other {
                annotations.insert(key.into(), json!(value));
            }
            for (key, value) in switches.into_iter().flatten() {
                annotations.insert(key.into(), json!(value));
            }
            match odd {
                0 => {
                    annotations.insert("prometheus.io/port".into(), json!(9090));
                }
                1 => return Some(json!("not a map")),
                2 => return Some(Value::Null),
                3 => {
                    annotations.insert("kubernetes.io/config.mirror".into(), json!("3f9a"));
                }
                _ => {}
            }
            (!annotations.is_empty()).then_some(Value::Object(annotations))
        })
        .boxed()
}

/// Every key an injector of the catalogue reads as its native switch
/// (SPEC §3.1, §4: Linkerd's under three prefixes), and a key under
/// Linkerd's prefix that is none.
fn native_switch_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = CATALOGUE
        .iter()
        .flat_map(|entry| entry.switch_keys().iter().copied())
        .collect();
    keys.push("config.linkerd.io/proxy-cpu-request");
    keys
}

/// An injector's native switch with the values that turn it on, off (also
/// with white space around, which still opts out) or neither.
fn native_switch() -> BoxedStrategy<(&'static str, &'static str)> {
    (
        select(native_switch_keys()),
        prop_oneof![
            3 => Just("true"),
            3 => Just("false"),
            1 => Just(" false "),
            1 => select(&["True", "FALSE", "", "no", "100m"][..]),
        ],
    )
        .boxed()
}

/// The pod's labels: OpenTelemetry's mark of an injected pod now and then;
/// in wild mode sometimes no map at all.
fn labels(mode: Mode) -> BoxedStrategy<Option<Value>> {
    let valid = (
        option::weighted(0.4, select(&["true", "false", ""][..])),
        option::weighted(0.2, Just(("version", "v2"))),
    )
        .prop_map(|(otel, other)| {
            let mut labels = Map::new();
            labels.insert("app".into(), json!("shop"));
            if let Some(value) = otel {
                labels.insert("sidecar.opentelemetry.io/injected".into(), json!(value));
            }
            if let Some((key, value)) = other {
                labels.insert(key.into(), json!(value));
            }
            Some(Value::Object(labels))
        })
        .boxed();
    let odd = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(json!("app=shop"))),
        Just(Some(json!({"sidecar.opentelemetry.io/injected": 1}))),
    ];
    wild(mode, 10, odd, valid)
}

fn owner_references() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        16 => Just(None),
        2 => Just(Some(json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f",
            "uid": "6e1c", "controller": true, "blockOwnerDeletion": true}]))),
        2 => Just(Some(json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate",
            "uid": "a2b4", "controller": true}]))),
        1 => Just(Some(json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "a2b4"}]))),
        1 => Just(Some(json!([{"apiVersion": "example.com/v1", "kind": "Job", "name": "x",
            "uid": "c3d5", "controller": false}]))),
    ]
    .boxed()
}

/// API group, version and kind of every kind the policy reads, and one it
/// does not.
const KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Pod"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("", "v1", "ReplicationController"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
];

fn kind() -> BoxedStrategy<(&'static str, &'static str, &'static str)> {
    prop_oneof![
        6 => Just(KINDS[0]),
        14 => select(&KINDS[1..]),
        1 => Just(("", "v1", "ConfigMap")),
    ]
    .boxed()
}

/// Where the pod spec of a kind lives, `None` for kinds without one.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template/spec"),
        _ => None,
    }
}

/// Where the pod template (what an UPDATE must change to be evaluated) and
/// the pod's metadata live.
fn template_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    }
}

fn pod_metadata_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/metadata",
        "CronJob" => "/spec/jobTemplate/spec/template/metadata",
        _ => "/spec/template/metadata",
    }
}

/// Builds the object of a kind around a pod's annotations and spec.
fn object(
    (group, version, kind): (&str, &str, &str),
    labels: Option<Value>,
    annotations: Option<Value>,
    owners: Option<Value>,
    spec: Value,
) -> Value {
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let mut pod_metadata = json!({});
    if let Some(labels) = labels {
        pod_metadata["labels"] = labels;
    }
    if let Some(annotations) = annotations {
        pod_metadata["annotations"] = annotations;
    }
    // A workload's own metadata, which the policy does not read.
    let metadata = json!({"name": "shop", "namespace": "prod", "uid": "9d1e",
        "annotations": {"deployment.kubernetes.io/revision": "3"}});
    let mut object = match kind {
        "Pod" => {
            pod_metadata["name"] = json!("shop-5f7c9");
            pod_metadata["namespace"] = json!("prod");
            json!({"apiVersion": api_version, "kind": kind, "metadata": pod_metadata, "spec": spec})
        }
        "ConfigMap" => json!({"apiVersion": api_version, "kind": kind, "metadata": metadata,
            "data": {"spec": "not a pod"}}),
        "CronJob" => json!({"apiVersion": api_version, "kind": kind, "metadata": metadata,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"backoffLimit": 2,
                "template": {"metadata": pod_metadata, "spec": spec}}}}}),
        _ => json!({"apiVersion": api_version, "kind": kind, "metadata": metadata,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                "template": {"metadata": pod_metadata, "spec": spec}}}),
    };
    if let Some(owners) = owners {
        object["metadata"]["ownerReferences"] = owners;
    }
    object
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Create,
    /// An UPDATE whose pod template differs from `oldObject`'s.
    UpdateChangedTemplate,
    /// An UPDATE that leaves the pod template as it was (a replica change).
    UpdateSameTemplate,
    Delete,
    Connect,
}

/// Something wrong with the object as a whole, now and then.
#[derive(Debug, Clone, Copy)]
enum Oddity {
    None,
    KindMismatch,
    NoKind,
    NotAnObject,
    NoPodSpec,
    SubResource,
}

/// An AdmissionRequest for a pod or a workload of any kind (now and then
/// another kind), half of them clean, half wild.
fn request() -> BoxedStrategy<Value> {
    prop_oneof![request_in(Mode::Clean), request_in(Mode::Wild)].boxed()
}

fn request_in(mode: Mode) -> BoxedStrategy<Value> {
    let operation = prop_oneof![
        16 => Just(Operation::Create),
        3 => Just(Operation::UpdateChangedTemplate),
        1 => Just(Operation::UpdateSameTemplate),
        1 => Just(Operation::Delete),
        1 => Just(Operation::Connect),
    ];
    request_of(mode, kind(), operation.boxed())
}

/// A Pod CREATE, the one request the native switches are added to (SPEC
/// §4): the properties about them would otherwise see few of them.
fn pod_create_request(mode: Mode) -> BoxedStrategy<Value> {
    request_of(
        mode,
        Just(KINDS[0]).boxed(),
        Just(Operation::Create).boxed(),
    )
}

fn request_of(
    mode: Mode,
    kind: BoxedStrategy<(&'static str, &'static str, &'static str)>,
    operation: BoxedStrategy<Operation>,
) -> BoxedStrategy<Value> {
    let oddity = wild(
        mode,
        15,
        prop_oneof![
            Just(Oddity::KindMismatch),
            Just(Oddity::NoKind),
            Just(Oddity::NotAnObject),
            Just(Oddity::NoPodSpec),
            Just(Oddity::SubResource),
        ],
        Just(Oddity::None).boxed(),
    );
    (
        kind,
        (labels(mode), annotations(mode)),
        owner_references(),
        pod_spec(mode),
        operation,
        oddity,
    )
        .prop_map(|(kind, (labels, annotations), owners, spec, operation, oddity)| {
            let (group, version, kind_name) = kind;
            let mut object = object(kind, labels, annotations, owners, spec);
            match oddity {
                Oddity::KindMismatch => object["kind"] = json!("Secret"),
                Oddity::NoKind => {
                    object.as_object_mut().map(|o| o.remove("kind"));
                }
                Oddity::NotAnObject => object = json!(["not", "an", "object"]),
                Oddity::NoPodSpec => {
                    let parent = template_pointer(kind_name);
                    if let Some(Value::Object(template)) = object.pointer_mut(parent) {
                        template.remove("spec");
                    }
                }
                Oddity::None | Oddity::SubResource => {}
            }
            let resource = format!("{}s", kind_name.to_lowercase());
            let mut request = json!({
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": group, "version": version, "kind": kind_name},
                "resource": {"group": group, "version": version, "resource": resource},
                "requestKind": {"group": group, "version": version, "kind": kind_name},
                "name": "shop",
                "namespace": "prod",
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller",
                    "groups": ["system:serviceaccounts", "system:authenticated"]},
                "object": object,
                "oldObject": null,
                "dryRun": false,
            });
            if matches!(oddity, Oddity::SubResource) {
                request["subResource"] = json!("status");
            }
            match operation {
                Operation::Create => {}
                Operation::UpdateChangedTemplate => {
                    let mut old = request["object"].clone();
                    if let Some(Value::Object(template)) =
                        old.pointer_mut(template_pointer(kind_name))
                    {
                        template.insert("x-previous-revision".into(), json!(2));
                    }
                    request["operation"] = json!("UPDATE");
                    request["oldObject"] = old;
                }
                Operation::UpdateSameTemplate => {
                    let mut old = request["object"].clone();
                    if let Some(Value::Object(spec)) = old.get_mut("spec") {
                        spec.insert("replicas".into(), json!(7));
                    }
                    if let Some(Value::Object(metadata)) = old.get_mut("metadata") {
                        metadata.insert("labels".into(), json!({"app": "shop", "old": "true"}));
                    }
                    request["operation"] = json!("UPDATE");
                    request["oldObject"] = old;
                }
                Operation::Delete => {
                    request["operation"] = json!("DELETE");
                    request["oldObject"] = request["object"].take();
                }
                Operation::Connect => request["operation"] = json!("CONNECT"),
            }
            request
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Strategies: settings
// ---------------------------------------------------------------------------

/// A setting: absent, `null` (its default) or a value.
fn setting(value: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        5 => Just(None),
        1 => Just(Some(Value::Null)),
        5 => value.prop_map(Some),
    ]
    .boxed()
}

/// Seconds for a setting: mostly realistic, sometimes up to int64's maximum.
fn seconds_setting() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (0u64..=120).prop_map(Value::from),
        3 => (0u64..=3600).prop_map(Value::from),
        1 => Just(Value::from(i64::MAX as u64)),
        1 => (0..=i64::MAX as u64).prop_map(Value::from),
        // a cleared form field: the default
        1 => Just(json!("")),
    ]
    .boxed()
}

fn matcher() -> BoxedStrategy<Value> {
    let name = select(
        &[
            "envoy",
            "*-proxy",
            "fluent-bit",
            "log-?hipper",
            "*",
            "web",
            "metrics",
            "*-shipper",
        ][..],
    );
    let image = select(
        &[
            "*fluent-bit:*",
            "envoyproxy/*",
            "docker.io/istio/*",
            "shop/*",
            "*",
            "busybox",
        ][..],
    );
    (option::of(name), option::of(image))
        .prop_map(|(name, image)| match (name, image) {
            (None, None) => json!({"name": "envoy"}),
            (name, image) => {
                let mut matcher = Map::new();
                if let Some(name) = name {
                    matcher.insert("name".into(), json!(name));
                }
                if let Some(image) = image {
                    matcher.insert("image".into(), json!(image));
                }
                Value::Object(matcher)
            }
        })
        .boxed()
}

fn grace_settings() -> BoxedStrategy<Value> {
    (
        setting(seconds_setting()),
        setting(seconds_setting()),
        setting(seconds_setting()),
        setting(seconds_setting()),
        setting(select(&["adjust", "reject"][..]).prop_map(Value::from)),
    )
        .prop_map(|(min, max, sidecar, app, on_violation)| {
            let (min, max) = match (min, max) {
                (Some(min), Some(max)) if min.as_u64() > max.as_u64() && max.is_u64() => {
                    (Some(max), Some(min))
                }
                other => other,
            };
            let mut grace = Map::new();
            for (key, value) in [
                ("minSeconds", min),
                ("maxSeconds", max),
                ("sidecarShutdownSeconds", sidecar),
                ("appShutdownSeconds", app),
                ("onViolation", on_violation),
            ] {
                if let Some(value) = value {
                    grace.insert(key.into(), value);
                }
            }
            Value::Object(grace)
        })
        .boxed()
}

/// `builtinSidecars`: a bool, or a list of catalogue entries by their first
/// name (SPEC §9), empty, in any order, now and then with a repeat.
fn builtin_sidecars() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => any::<bool>().prop_map(Value::from),
        1 => vec(select(catalogue_names()), 0..5).prop_map(|names| strings(&names)),
    ]
    .boxed()
}

/// Valid settings using every key of SPEC.md section 9.
fn settings() -> BoxedStrategy<Value> {
    (
        setting(vec(matcher(), 0..3).prop_map(Value::Array)),
        setting(builtin_sidecars()),
        setting(any::<bool>().prop_map(Value::from)),
        setting(select(&["", DEFAULT_ANNOTATION, CUSTOM_ANNOTATION][..]).prop_map(Value::from)),
        setting(
            select(&["", DEFAULT_STANDARD_ANNOTATION, CUSTOM_STANDARD_ANNOTATION][..])
                .prop_map(Value::from),
        ),
        setting(
            prop_oneof![
                3 => Just("convert"),
                1 => Just("reject"),
                1 => Just("warn"),
                1 => Just(""),
            ]
            .prop_map(Value::from),
        ),
        setting(
            vec(
                select(&["*-net-setup", "wait-*", "cni-*", "db-migrate"][..]),
                0..3,
            )
            .prop_map(|globs| strings(&globs)),
        ),
        setting(select(&["derive", "require", "ignore", ""][..]).prop_map(Value::from)),
        setting(seconds_setting()),
        setting(seconds_setting()),
        setting(grace_settings()),
    )
        .prop_map(
            |(
                sidecars,
                builtin,
                native_injection,
                annotation,
                standard,
                legacy,
                setup,
                startup,
                window,
                period,
                grace,
            )| {
                let mut settings = Map::new();
                for (key, value) in [
                    ("sidecars", sidecars),
                    ("builtinSidecars", builtin),
                    ("nativeInjection", native_injection),
                    ("sidecarAnnotation", annotation),
                    ("standardAnnotation", standard),
                    ("legacySidecars", legacy),
                    ("setupInitContainers", setup),
                    ("startupProbe", startup),
                    ("startupProbeWindowSeconds", window),
                    ("startupProbePeriodSeconds", period),
                    ("terminationGracePeriod", grace),
                ] {
                    if let Some(value) = value {
                        settings.insert(key.into(), value);
                    }
                }
                Value::Object(settings)
            },
        )
        .boxed()
}

/// A request and the settings it is evaluated with.
#[derive(Clone)]
struct Case {
    request: Value,
    settings: Value,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
        write!(
            f,
            "settings: {}\nrequest: {}",
            pretty(&self.settings),
            pretty(&self.request)
        )
    }
}

fn case() -> BoxedStrategy<Case> {
    (request(), settings())
        .prop_map(|(request, settings)| Case { request, settings })
        .boxed()
}

// ---------------------------------------------------------------------------
// Reading cases and answers
// ---------------------------------------------------------------------------

/// The native core's `ValidationResponse`, as the waPC entry point renders it.
fn native(request: &Value, settings: &Value) -> Value {
    let payload = json!({"request": request, "settings": settings}).to_string();
    let answer = policy::validate(payload.as_bytes());
    serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!(
            "validate answered something that is not JSON ({e}): {}",
            String::from_utf8_lossy(&answer)
        )
    })
}

fn mutated_object(response: &Value) -> Option<&Value> {
    response.get("mutated_object").filter(|m| !m.is_null())
}

fn accepted(response: &Value) -> bool {
    response.get("accepted") == Some(&Value::Bool(true))
}

/// What every ValidationResponse must look like.
fn check_shape(response: &Value) -> Result<(), TestCaseError> {
    match common::response_shape_problem(response) {
        Some(problem) => Err(TestCaseError::fail(problem)),
        None => Ok(()),
    }
}

fn request_kind(request: &Value) -> &str {
    request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The pointer to the pod spec of the case's kind; only pods and workloads
/// are ever mutated.
fn case_pod_spec_pointer(case: &Case) -> Result<&'static str, TestCaseError> {
    pod_spec_pointer(request_kind(&case.request)).ok_or_else(|| {
        TestCaseError::fail(format!("a {} was mutated", request_kind(&case.request)))
    })
}

/// Names of both container lists of a pod spec, sorted; a name that is not
/// a string is listed as its JSON.
fn all_container_names(spec: &Value) -> Vec<String> {
    let mut names: Vec<String> = ["containers", "initContainers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .map(|container| match container.get("name") {
            Some(Value::String(name)) => name.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    names.sort();
    names
}

/// The pod spec parses as the typed Kubernetes 1.34 API.
fn parses(spec: &Value) -> bool {
    serde_json::from_value::<PodSpec>(spec.clone()).is_ok()
}

/// Evaluates the mutated object again, as the API server would send it back
/// on a re-apply: the same request (same operation and oldObject) carrying
/// the mutated object.
fn evaluate_again(case: &Case, mutated: &Value) -> Value {
    let mut again = case.request.clone();
    again["object"] = mutated.clone();
    native(&again, &case.settings)
}

// ---------------------------------------------------------------------------
// The known spec conflict
// ---------------------------------------------------------------------------

/// The one known conflict in the spec. SPEC.md section 4 says a mutated
/// object loses `lifecycle.type` on every container, and section 3 makes
/// `lifecycle.type: Standard` the opt-out that beats every other rule. So a
/// container opted out with `Standard` that the annotation, a matcher or the
/// catalogue would otherwise make a sidecar is left alone the first time,
/// loses its marker when anything else in the pod is changed, and is then
/// converted when the mutated object is evaluated again: that evaluation is
/// not idempotent, by the letter of the spec. Such cases are left out of the
/// idempotence properties (and only those).
fn standard_marker_conflict(case: &Case) -> bool {
    let kind = request_kind(&case.request);
    let Some(pointer) = pod_spec_pointer(kind) else {
        return false;
    };
    let object = &case.request["object"];
    let Some(containers) = object
        .pointer(pointer)
        .and_then(|spec| spec.get("containers"))
        .and_then(Value::as_array)
    else {
        return false;
    };
    let settings = Settings::from_value(&case.settings).expect("generated settings are valid");
    let annotated = annotated_names(object, kind, &settings);
    containers.iter().any(|container| {
        let Some(name) = container.get("name").and_then(Value::as_str) else {
            return false;
        };
        let image = container.get("image").and_then(Value::as_str);
        marker(container) == Some("Standard")
            && (annotated.contains(name)
                || settings
                    .sidecars
                    .iter()
                    .any(|matcher| matcher.matches(name, image))
                // over-approximated: the catalogue's conditions are not modelled
                || catalogue::entry_of(name).is_some_and(|entry| settings.is_builtin_enabled(entry)))
    })
}

/// A second face of the same conflict, found by these properties (see
/// `spec_conflict_a_sidecar_marker_that_stays_is_lost_on_mutation`). A container
/// declared with `lifecycle.type: Sidecar` that sets its own `restartPolicy`
/// or `restartPolicyRules` is never converted (section 4): it stays in
/// `containers` and, in `convert` mode, still counts as declared, so when it
/// and detected sidecars are all the containers, the detected ones yield and
/// stay main containers (section 3). Once anything else in the pod changes,
/// the container loses its marker, becomes a main container, and the
/// detected sidecars are converted on the next evaluation. Left out of the
/// idempotence properties: `convert` mode with such a container, unless the
/// annotation declares it anyway.
fn sidecar_marker_conflict(case: &Case) -> bool {
    let kind = request_kind(&case.request);
    let Some(pointer) = pod_spec_pointer(kind) else {
        return false;
    };
    let settings = Settings::from_value(&case.settings).expect("generated settings are valid");
    if settings.legacy_sidecars != LegacySidecars::Convert {
        return false;
    }
    let object = &case.request["object"];
    let annotated = annotated_names(object, kind, &settings);
    object
        .pointer(pointer)
        .and_then(|spec| spec.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|container| {
            let set = |field: &str| container.get(field).is_some_and(|value| !value.is_null());
            marker(container) == Some("Sidecar")
                && (set("restartPolicy") || set("restartPolicyRules"))
                && container
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| !annotated.contains(name))
        })
}

/// The known conflicts of the spec, which the idempotence properties skip.
fn marker_conflict(case: &Case) -> bool {
    standard_marker_conflict(case) || sidecar_marker_conflict(case)
}

fn marker(container: &Value) -> Option<&str> {
    container
        .get("lifecycle")
        .and_then(|lifecycle| lifecycle.get("type"))
        .and_then(Value::as_str)
}

/// The names the pod's sidecar annotation lists.
fn annotated_names<'a>(object: &'a Value, kind: &str, settings: &Settings) -> BTreeSet<&'a str> {
    settings
        .sidecar_annotation
        .as_deref()
        .and_then(|key| {
            object
                .pointer(pod_metadata_pointer(kind))?
                .get("annotations")?
                .get(key)?
                .as_str()
        })
        .map(|names| names.split(',').map(str::trim).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

static WASM_ANSWERS: Coverage = Coverage::new("wasm_answers_like_native");

/// Through the compiled module in the waPC host: no trap, no guest error,
/// always a JSON ValidationResponse, byte for byte the native core's.
#[test]
fn the_module_answers_every_request_and_as_the_native_core_does() {
    check(case(), |case| {
        WASM_ANSWERS.case();
        let policy = common::Policy::new();
        let verdict = policy.validate_settings(&case.settings);
        prop_assert_eq!(
            &verdict["valid"],
            &json!(true),
            "the generator made invalid settings: {}",
            verdict
        );
        let payload = json!({"request": case.request, "settings": case.settings}).to_string();
        let answer = policy
            .call("validate", payload.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("the validate call failed: {e}")))?;
        let response: Value = serde_json::from_slice(&answer).map_err(|e| {
            TestCaseError::fail(format!(
                "validate answered something that is not JSON ({e}): {}",
                String::from_utf8_lossy(&answer)
            ))
        })?;
        check_shape(&response)?;
        let native = policy::validate(payload.as_bytes());
        prop_assert!(
            answer == native,
            "the module and the native core disagree:\nmodule: {}\nnative: {}",
            String::from_utf8_lossy(&answer),
            String::from_utf8_lossy(&native)
        );
        WASM_ANSWERS.exercised();
        Ok(())
    });
    WASM_ANSWERS.report(100);
}

static API_SERVER: Coverage = Coverage::new("api_server_accepts_mutations");

/// A mutated object passes the API server's checks (1.33 and 1.34) and
/// decodes as the typed API whenever the request's object did.
#[test]
fn a_mutated_object_passes_the_api_server_whenever_the_request_did() {
    check(case(), |case| {
        API_SERVER.case();
        let response = native(&case.request, &case.settings);
        check_shape(&response)?;
        let Some(mutated) = mutated_object(&response) else {
            return Ok(());
        };
        let pointer = case_pod_spec_pointer(&case)?;
        let before = case.request["object"]
            .pointer(pointer)
            .ok_or_else(|| TestCaseError::fail("a request without a pod spec was mutated"))?;
        let after = mutated
            .pointer(pointer)
            .ok_or_else(|| TestCaseError::fail("the mutated object lost its pod spec"))?;
        let mut exercised = false;
        for minor in [
            api_rules::DEFAULT_MINOR,
            api_rules::CONTAINER_RESTART_RULES_MINOR,
        ] {
            if api_rules::violations_for(before, minor).is_empty() {
                exercised = true;
                let found = api_rules::violations_for(after, minor);
                prop_assert!(
                    found.is_empty(),
                    "the request's pod spec is valid for Kubernetes 1.{} but the mutated one is not: {:#?}\nmutated pod spec: {:#}",
                    minor,
                    found,
                    after
                );
            }
        }
        if parses(before) {
            prop_assert!(
                parses(after),
                "the request's pod spec decodes as a PodSpec but the mutated one does not: {:#}",
                after
            );
        }
        if exercised {
            API_SERVER.exercised();
        }
        Ok(())
    });
    API_SERVER.report(10);
}

static IDEMPOTENCE: Coverage = Coverage::new("idempotence");

/// Evaluating a mutated object again accepts it as it is.
#[test]
fn evaluating_a_mutated_object_again_changes_nothing() {
    check(case(), |case| {
        IDEMPOTENCE.case();
        let response = native(&case.request, &case.settings);
        let Some(mutated) = mutated_object(&response) else {
            return Ok(());
        };
        if marker_conflict(&case) {
            IDEMPOTENCE.skipped();
            return Ok(());
        }
        let second = evaluate_again(&case, mutated);
        check_shape(&second)?;
        prop_assert!(
            accepted(&second),
            "the mutated object is rejected when evaluated again: {}\nmutated object: {:#}",
            second["message"],
            mutated
        );
        if let Some(again) = mutated_object(&second) {
            prop_assert!(
                false,
                "evaluating the mutated object again mutates it again\nfirst: {:#}\nsecond: {:#}\nwarnings: {}",
                mutated,
                again,
                second["warnings"]
            );
        }
        IDEMPOTENCE.exercised();
        Ok(())
    });
    IDEMPOTENCE.report(10);
}

static OWNED_FIELDS: Coverage = Coverage::new("owned_fields_only");

/// A mutation changes only the fields the policy owns, keeps every JSON
/// value elsewhere (unknown fields and odd numbers included) and keeps the
/// pod's containers: none lost, added or duplicated.
#[test]
fn a_mutation_changes_only_owned_fields_and_keeps_every_container() {
    check(case(), |case| {
        OWNED_FIELDS.case();
        let response = native(&case.request, &case.settings);
        let Some(mutated) = mutated_object(&response) else {
            return Ok(());
        };
        let pointer = case_pod_spec_pointer(&case)?;
        let original = &case.request["object"];
        prop_assert!(
            mutated != original,
            "a mutated_object identical to the request's object"
        );
        // Panics, with the paths that differ, when anything else changed.
        common::assert_only_owned_fields_changed(original, mutated, pointer);
        let before = all_container_names(&original.pointer(pointer).cloned().unwrap_or_default());
        let after = all_container_names(&mutated.pointer(pointer).cloned().unwrap_or_default());
        prop_assert_eq!(before, after, "the containers changed");
        OWNED_FIELDS.exercised();
        Ok(())
    });
    OWNED_FIELDS.report(10);
}

static MESH_RULES: Coverage = Coverage::new("mesh_rules");
static MESH_EXCLUSIONS: Coverage = Coverage::new("mesh_rules_catalogue_exclusions");

/// What the injectors need (SPEC §3, §3.1, §5): a container with Istio's
/// injection template image, one opted out by the standard annotation, and
/// one that only the catalogue could make a sidecar while `builtinSidecars`
/// leaves its entry out or a condition of the catalogue's first table holds
/// (an injector's own switch `"false"` under any of its keys, Istio's proxy
/// in a pod not marked injected or in a gateway mode, a Linkerd proxy whose
/// identity is its own pod, `otc-container` without OpenTelemetry's label)
/// are never moved; a derived startupProbe never probes more slowly than
/// the readinessProbe it comes from.
#[test]
fn injection_templates_and_opted_out_containers_stay_and_derived_probes_are_fast() {
    check(case(), |case| {
        MESH_RULES.case();
        MESH_EXCLUSIONS.case();
        let response = native(&case.request, &case.settings);
        let Some(mutated) = mutated_object(&response) else {
            return Ok(());
        };
        let kind = request_kind(&case.request);
        let pointer = case_pod_spec_pointer(&case)?;
        let settings = Settings::from_value(&case.settings).expect("generated settings are valid");
        let object = &case.request["object"];
        let annotation = |key: &str| -> Option<&str> {
            object
                .pointer(pod_metadata_pointer(kind))?
                .get("annotations")?
                .get(key)?
                .as_str()
        };
        let standard: BTreeSet<&str> = settings
            .standard_annotation
            .as_deref()
            .and_then(annotation)
            .map(|names| names.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let containers = |object: &Value| -> Vec<Value> {
            object
                .pointer(pointer)
                .and_then(|spec| spec.get("containers"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let after: BTreeSet<String> = containers(mutated)
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut excluded = false;
        for container in containers(object) {
            let Some(name) = container.get("name").and_then(Value::as_str) else {
                continue;
            };
            let not_builtin = catalogue::entry_of(name).is_some_and(|entry| {
                !builtin_enabled(&case.settings, entry.name())
                    || entry
                        .unless
                        .iter()
                        .any(|unless| excludes(unless, entry, &container, object, kind))
            });
            let must_stay = container.get("image") == Some(&json!(INJECTION_TEMPLATE))
                || (standard.contains(name) && marker(&container) != Some("Sidecar"))
                || (not_builtin && builtin_only(&settings, name, &container, object, kind));
            prop_assert!(
                !must_stay || after.contains(name),
                "{} was moved out of containers although it must stay",
                name
            );
            if not_builtin && builtin_only(&settings, name, &container, object, kind) {
                excluded = true;
            }
        }
        let init = mutated
            .pointer(pointer)
            .and_then(|spec| spec.get("initContainers"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut before_all = containers(object);
        before_all.extend(
            object
                .pointer(pointer)
                .and_then(|spec| spec.get("initContainers"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        for sidecar in &init {
            let name = sidecar.get("name");
            let had_startup = before_all.iter().any(|c| {
                c.get("name") == name && c.get("startupProbe").is_some_and(|p| !p.is_null())
            });
            let (Some(startup), Some(readiness)) =
                (sidecar.get("startupProbe"), sidecar.get("readinessProbe"))
            else {
                continue;
            };
            if had_startup {
                continue;
            }
            let period = |probe: &Value| {
                probe
                    .get("periodSeconds")
                    .and_then(Value::as_u64)
                    .filter(|p| *p > 0)
                    .unwrap_or(10)
            };
            prop_assert!(
                period(startup) <= period(readiness),
                "derived startupProbe period {} above the readiness period {}",
                period(startup),
                period(readiness)
            );
        }
        MESH_RULES.exercised();
        if excluded {
            MESH_EXCLUSIONS.exercised();
        }
        Ok(())
    });
    MESH_RULES.report(10);
    MESH_EXCLUSIONS.report(3);
}

/// Whether `builtinSidecars` (raw settings: absent, `null`, a bool or a
/// list of entry names) enables the catalogue entry of that name (SPEC §9).
fn builtin_enabled(settings: &Value, entry_name: &str) -> bool {
    match settings.get("builtinSidecars") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(on)) => *on,
        Some(Value::Array(names)) => names.contains(&json!(entry_name)),
        Some(other) => panic!("the generator made builtinSidecars {other}"),
    }
}

/// Whether `nativeInjection` (raw settings) is on: absent and `null` mean
/// the default, `true` (SPEC §9).
fn native_injection_on(settings: &Value) -> bool {
    match settings.get("nativeInjection") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(on)) => *on,
        Some(other) => panic!("the generator made nativeInjection {other}"),
    }
}

/// The annotations at a metadata pointer of an object, when they are a map.
fn annotations_at<'a>(object: &'a Value, metadata: &str) -> Option<&'a Map<String, Value>> {
    object.pointer(metadata)?.get("annotations")?.as_object()
}

/// Whether a condition of the catalogue's first table (SPEC §3.1) says the
/// container is no sidecar by rule 7, read from the request as the spec
/// words it: a switch `"false"` after trimming under any of its keys, a
/// missing label or injection mark, a proxy mode other than a sidecar's,
/// an identity service on the pod itself.
fn excludes(
    unless: &catalogue::Unless,
    entry: &catalogue::Entry,
    container: &Value,
    object: &Value,
    kind: &str,
) -> bool {
    use catalogue::Unless;
    let pod_metadata = object.pointer(pod_metadata_pointer(kind));
    match unless {
        Unless::SwitchedOff => entry.switch_keys().iter().any(|key| {
            annotations_at(object, pod_metadata_pointer(kind))
                .and_then(|annotations| annotations.get(*key))
                .and_then(Value::as_str)
                .is_some_and(|value| value.trim() == "false")
        }),
        Unless::NotLabelled { key } => !pod_metadata
            .and_then(|metadata| metadata.get("labels"))
            .and_then(Value::as_object)
            .is_some_and(|labels| labels.contains_key(*key)),
        Unless::NotMarkedInjected { key } => {
            let marked = |metadata: &str| {
                annotations_at(object, metadata).is_some_and(|a| a.contains_key(*key))
            };
            let job_template_marked = kind == "CronJob" && marked("/spec/jobTemplate/metadata");
            !(marked(pod_metadata_pointer(kind)) || job_template_marked)
        }
        Unless::ProxyModeOtherThan { mode } => {
            let args = container.get("args").and_then(Value::as_array);
            let word = |at: usize| args.and_then(|args| args.get(at)).and_then(Value::as_str);
            word(0) == Some("proxy")
                && word(1).is_some_and(|second| !second.starts_with('-') && second != *mode)
        }
        Unless::IdentityFromOwnPod { env } => container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|variable| variable.get("name") == Some(&json!(env)))
            .filter_map(|variable| variable.get("value").and_then(Value::as_str))
            .any(|address| {
                // `host`, `host:port`, `[::1]`, `[::1]:port`
                let host = match address.find(']') {
                    Some(end) if address.starts_with('[') => &address[..=end],
                    _ => address.rsplit_once(':').map_or(address, |(host, _)| host),
                };
                catalogue::OWN_POD_HOSTS.contains(&host)
            }),
    }
}

/// Whether only the catalogue could make this container a sidecar: not
/// declared by marker or annotation, not matched by a settings matcher.
fn builtin_only(
    settings: &Settings,
    name: &str,
    container: &Value,
    object: &Value,
    kind: &str,
) -> bool {
    let image = container.get("image").and_then(Value::as_str);
    marker(container) != Some("Sidecar")
        && !annotated_names(object, kind, settings).contains(name)
        && !settings
            .sidecars
            .iter()
            .any(|matcher| matcher.matches(name, image))
}

static REAPPLY: Coverage = Coverage::new("reapply_folds_back");
static REAPPLY_FOLDED: Coverage = Coverage::new("reapply_folds_back_sidecars");

/// SPEC §4, re-applied sidecars: for any request the policy converts, the
/// object that re-applying the original manifest produces (`applied_over`:
/// the merge keeps the converted object and brings the manifest's sidecars
/// back into `spec.containers`) is answered, as an UPDATE whose `oldObject`
/// is the converted object, with exactly the converted object.
#[test]
fn re_applying_the_original_manifest_gives_back_the_converted_object() {
    check(case(), |case| {
        REAPPLY.case();
        REAPPLY_FOLDED.case();
        let response = native(&case.request, &case.settings);
        let Some(converted) = mutated_object(&response) else {
            return Ok(());
        };
        if marker_conflict(&case) {
            REAPPLY.skipped();
            return Ok(());
        }
        let pointer = case_pod_spec_pointer(&case)?;
        let reapplied = re_apply(
            &case.request,
            &case.settings,
            &case.request["object"],
            converted,
            pointer,
        )?;
        REAPPLY.exercised();
        if !reapplied.names.is_empty() {
            REAPPLY_FOLDED.exercised();
        }
        Ok(())
    });
    REAPPLY.report(10);
    REAPPLY_FOLDED.report(5);
}

/// What `kubectl apply` (client- or server-side) of `manifest` makes of the
/// `stored` object (SPEC §4, re-applied sidecars): everything as stored
/// (fields the API server or a webhook added, such as the policy's own
/// changes and the token mounts, are kept, as the manifest does not name
/// them), but `spec.containers` is the manifest's list again, in its order:
/// a container the stored object still has there is the stored one, a
/// converted sidecar comes back as the manifest wrote it. `initContainers`
/// stay as stored, converted sidecars included.
fn applied_over(manifest: &Value, stored: &Value, pointer: &str) -> Value {
    let containers = |object: &Value| -> Vec<Value> {
        object
            .pointer(pointer)
            .and_then(|spec| spec.get("containers"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let kept = containers(stored);
    let list: Vec<Value> = containers(manifest)
        .into_iter()
        .map(|container| {
            kept.iter()
                .find(|stored| stored.get("name") == container.get("name"))
                .cloned()
                .unwrap_or(container)
        })
        .collect();
    let mut merged = stored.clone();
    if let Some(Value::Object(spec)) = merged.pointer_mut(pointer) {
        spec.insert("containers".into(), Value::Array(list));
    }
    merged
}

/// A re-apply `re_apply` checked: the names that came back into
/// `containers`, and the UPDATE request that brought them.
struct Reapplied {
    names: Vec<String>,
    update: Value,
}

/// The names of `list` of the pod spec at `pointer`, in order; entries
/// without a string name are left out.
fn list_names(object: &Value, pointer: &str, list: &str) -> Vec<String> {
    object
        .pointer(pointer)
        .and_then(|spec| spec.get(list))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Sends `manifest` applied over `stored` as an UPDATE (same kind as
/// `request`, `oldObject` the stored object) and checks the answer: accepted;
/// with no sidecar re-applied (nothing was converted) untouched, otherwise
/// exactly `stored` back.
fn re_apply(
    request: &Value,
    settings: &Value,
    manifest: &Value,
    stored: &Value,
    pointer: &str,
) -> Result<Reapplied, TestCaseError> {
    let names = |object: &Value, list: &str| list_names(object, pointer, list);
    let stored_regular = names(stored, "containers");
    let reapplied_names: Vec<String> = names(manifest, "containers")
        .into_iter()
        .filter(|name| !stored_regular.contains(name))
        .collect();
    let merged = applied_over(manifest, stored, pointer);
    let mut update = request.clone();
    update["operation"] = json!("UPDATE");
    update["object"] = merged.clone();
    update["oldObject"] = stored.clone();
    let answer = native(&update, settings);
    check_shape(&answer)?;
    prop_assert!(
        accepted(&answer),
        "the re-applied manifest is rejected: {}\nmerged: {:#}",
        answer["message"],
        merged
    );
    if reapplied_names.is_empty() {
        // nothing was moved: the merge is the stored object, unchanged
        prop_assert!(
            mutated_object(&answer).is_none(),
            "an unchanged object was mutated"
        );
    } else {
        let Some(folded) = mutated_object(&answer) else {
            return Err(TestCaseError::fail(format!(
                "the re-applied sidecars were not folded back\nmerged: {merged:#}\nwarnings: {}",
                answer["warnings"]
            )));
        };
        prop_assert!(
            folded == stored,
            "re-applying gives another object than the stored one\nstored: {:#}\nfolded: {:#}\ndifferences: {:#?}",
            stored,
            folded,
            common::differences(stored, folded)
        );
    }
    Ok(Reapplied {
        names: reapplied_names,
        update,
    })
}

static REJECTIONS: Coverage = Coverage::new("rejections_name_something");

/// A rejection names at least one container of the pod or a field.
#[test]
fn a_rejection_names_a_container_or_a_field() {
    check(case(), |case| {
        REJECTIONS.case();
        let response = native(&case.request, &case.settings);
        check_shape(&response)?;
        if accepted(&response) {
            return Ok(());
        }
        let message = response["message"].as_str().unwrap_or_default();
        let names = pod_spec_pointer(request_kind(&case.request))
            .and_then(|pointer| case.request["object"].pointer(pointer))
            .map(all_container_names)
            .unwrap_or_default();
        let names_something = names.iter().any(|name| message.contains(name.as_str()))
            || [
                "spec.",
                "spec:",
                "metadata.",
                "kind",
                "object",
                "terminationGracePeriod",
            ]
            .iter()
            .any(|field| message.contains(field));
        prop_assert!(
            names_something,
            "the rejection names no container and no field: {}",
            message
        );
        REJECTIONS.exercised();
        Ok(())
    });
    REJECTIONS.report(5);
}

static HARNESS: Coverage = Coverage::new("harness_invariants_through_wasm");

/// `common::evaluate_request` through the waPC host: valid settings, the
/// response's shape, a mutation that changes something, owned fields only,
/// a mutated pod spec that decodes as the typed API, idempotence on the same
/// instance. Cases it would wrongly blame the policy for are skipped: the
/// known conflict above, and a mutated pod spec that did not decode before
/// the policy touched it.
#[test]
fn the_harness_invariants_hold_through_the_wapc_host() {
    check(case(), |case| {
        HARNESS.case();
        let response = native(&case.request, &case.settings);
        if mutated_object(&response).is_some() {
            let pointer = case_pod_spec_pointer(&case)?;
            let decodes = case.request["object"].pointer(pointer).is_some_and(parses);
            if marker_conflict(&case) || !decodes {
                HARNESS.skipped();
                return Ok(());
            }
        }
        common::evaluate_request(case.request.clone(), case.settings.clone());
        HARNESS.exercised();
        Ok(())
    });
    HARNESS.report(50);
}

// ---------------------------------------------------------------------------
// Revision 4: native switches, placement, never-derived probes, naked Pods
// ---------------------------------------------------------------------------

/// Where an object's annotations may sit: its own metadata, the pod
/// (template)'s, and a CronJob's job template's.
fn metadata_pointers(kind: &str) -> Vec<&'static str> {
    let mut pointers = vec!["/metadata", pod_metadata_pointer(kind)];
    if kind == "CronJob" {
        pointers.push("/spec/jobTemplate/metadata");
    }
    pointers.dedup();
    pointers
}

/// The annotations an injector's record lives in, which the policy rewrites
/// (SPEC §4, "Injectors' own records stay true").
fn is_injection_record(key: &str) -> bool {
    CATALOGUE
        .iter()
        .any(|entry| entry.injection_record == Some(key))
}

/// The annotations `after` has and `before` has not, and those whose value
/// changed (injectors' records, which the policy may rewrite, left out), at
/// one metadata pointer.
fn annotation_changes(
    before: &Value,
    after: &Value,
    metadata: &str,
) -> (Map<String, Value>, Vec<String>) {
    let empty = Map::new();
    let was = annotations_at(before, metadata).unwrap_or(&empty);
    let now = annotations_at(after, metadata).unwrap_or(&empty);
    let added = now
        .iter()
        .filter(|(key, _)| !was.contains_key(*key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let changed = was
        .iter()
        .filter(|(key, value)| !is_injection_record(key) && now.get(*key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect();
    (added, changed)
}

/// Whether the request is one the switches are asked for in (SPEC §4): a
/// Pod CREATE (no subresource, no mirror Pod) with `legacySidecars: convert`
/// and `nativeInjection` on.
fn asks_injectors(case: &Case, settings: &Settings) -> bool {
    let request = &case.request;
    request.pointer("/kind/kind") == Some(&json!("Pod"))
        && request.pointer("/kind/group") == Some(&json!(""))
        && request["operation"] == json!("CREATE")
        && request
            .get("subResource")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        && annotations_at(&request["object"], "/metadata")
            .is_none_or(|annotations| !annotations.contains_key("kubernetes.io/config.mirror"))
        && settings.legacy_sidecars == LegacySidecars::Convert
        && native_injection_on(&case.settings)
}

/// The switch keys SPEC §4 adds to the Pod of the request, and whether an
/// enabled injector with a switch was left alone (the Pod already had one
/// of its keys, or its standard annotation names a container of the entry).
fn expected_switches(case: &Case, settings: &Settings) -> (BTreeSet<&'static str>, bool) {
    let object = &case.request["object"];
    let annotations = annotations_at(object, "/metadata");
    let has = |key: &str| annotations.is_some_and(|a| a.contains_key(key));
    let standard: Vec<&str> = settings
        .standard_annotation
        .as_deref()
        .and_then(|key| annotations?.get(key)?.as_str())
        .map(|names| names.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let mut expected = BTreeSet::new();
    let mut withheld = false;
    for entry in CATALOGUE {
        let Some(switch) = &entry.native_switch else {
            continue;
        };
        if !builtin_enabled(&case.settings, entry.name()) {
            continue;
        }
        if switch.keys.iter().any(|key| has(key)) || standard.iter().any(|name| entry.matches(name))
        {
            withheld = true;
        } else {
            expected.insert(switch.key);
        }
    }
    (expected, withheld)
}

/// Mostly Pod CREATEs, clean and wild, the requests the switches are about;
/// the rest any request, and clean workload CREATEs and UPDATEs, where they
/// must never appear.
fn native_switch_case() -> BoxedStrategy<Case> {
    let pod_create = prop_oneof![
        pod_create_request(Mode::Clean),
        pod_create_request(Mode::Wild)
    ];
    let workload = prop_oneof![
        request_of(
            Mode::Clean,
            select(&KINDS[1..]).boxed(),
            Just(Operation::Create).boxed()
        ),
        request_of(
            Mode::Clean,
            select(&KINDS[1..]).boxed(),
            Just(Operation::UpdateChangedTemplate).boxed()
        ),
    ];
    (
        prop_oneof![6 => pod_create, 2 => request(), 1 => workload],
        settings(),
    )
        .prop_map(|(request, settings)| Case { request, settings })
        .boxed()
}

static SWITCHES: Coverage = Coverage::new("native_switches_at_pod_create");
static SWITCHES_ADDED: Coverage = Coverage::new("native_switches_added");
static SWITCHES_WITHHELD: Coverage = Coverage::new("native_switches_withheld");
static SWITCHES_NEVER: Coverage = Coverage::new("native_switches_never_elsewhere");

/// SPEC §4, "Asking injectors for native sidecars", as an equivalence: the
/// annotations a mutation adds are exactly the switch keys
/// (`native_switch.key`, value `"true"`) of the catalogue entries that
/// `builtinSidecars` enables, have a switch, are not already switched under
/// any of their keys (whatever the value: `"false"`, `" false "`, `""`), and
/// whose containers the standard annotation does not keep regular; and only
/// for a Pod CREATE with `legacySidecars: convert` and `nativeInjection` on.
/// An accepted Pod CREATE that meets all that but is not mutated fails it as
/// surely as an added switch that should not be there. Workloads (their
/// templates would roll out) and UPDATEs never get one; no existing value
/// is ever changed (an injector's record aside); and evaluating the mutated
/// object again adds nothing more.
#[test]
fn native_switches_are_added_exactly_where_the_spec_asks() {
    check(native_switch_case(), |case| {
        for coverage in [
            &SWITCHES,
            &SWITCHES_ADDED,
            &SWITCHES_WITHHELD,
            &SWITCHES_NEVER,
        ] {
            coverage.case();
        }
        let response = native(&case.request, &case.settings);
        check_shape(&response)?;
        if !accepted(&response) {
            return Ok(());
        }
        let settings = Settings::from_value(&case.settings).expect("generated settings are valid");
        let kind = request_kind(&case.request);
        let object = &case.request["object"];
        let eligible = asks_injectors(&case, &settings);
        let (expected, withheld) = if eligible {
            expected_switches(&case, &settings)
        } else {
            (BTreeSet::new(), false)
        };
        let after = mutated_object(&response).unwrap_or(object);
        for metadata in metadata_pointers(kind) {
            let (added, changed) = annotation_changes(object, after, metadata);
            prop_assert!(
                changed.is_empty(),
                "the mutation changed the annotations {:?} at {}",
                changed,
                metadata
            );
            for (key, value) in &added {
                prop_assert_eq!(value, &json!("true"), "{} was added as {}", key, value);
            }
            let added: BTreeSet<&str> = added.keys().map(String::as_str).collect();
            let wanted = if metadata == "/metadata" && kind == "Pod" {
                expected.clone()
            } else {
                BTreeSet::new()
            };
            prop_assert_eq!(
                &added,
                &wanted,
                "annotations added at {} differ from the native switches the spec asks for (eligible: {})",
                metadata,
                eligible
            );
        }
        if let Some(mutated) = mutated_object(&response) {
            let second = evaluate_again(&case, mutated);
            if let Some(again) = mutated_object(&second) {
                for metadata in metadata_pointers(kind) {
                    let (added, changed) = annotation_changes(mutated, again, metadata);
                    prop_assert!(
                        added.is_empty() && changed.is_empty(),
                        "evaluating the mutated object again added {:?} and changed {:?} at {}",
                        added.keys().collect::<Vec<_>>(),
                        changed,
                        metadata
                    );
                }
            }
        }
        if eligible {
            SWITCHES.exercised();
            if !expected.is_empty() {
                SWITCHES_ADDED.exercised();
            }
            if withheld {
                SWITCHES_WITHHELD.exercised();
            }
        } else if mutated_object(&response).is_some()
            && (kind != "Pod" || case.request["operation"] != json!("CREATE"))
        {
            SWITCHES_NEVER.exercised();
        }
        Ok(())
    });
    SWITCHES.report(20);
    SWITCHES_ADDED.report(10);
    SWITCHES_WITHHELD.report(8);
    SWITCHES_NEVER.report(3);
}

/// The init containers a sidecar starts after (SPEC §4, "Placement"): the
/// built-in setup containers, those the setting `setupInitContainers` names
/// (read from the raw settings, matched with the spec's glob dialect), and
/// its catalogue entry's `starts_after`.
fn is_setup_of(sidecar: &str, init_container: &str, settings: &Value) -> bool {
    let setting_globs = settings
        .get("setupInitContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    catalogue::BUILTIN_SETUP_INIT_CONTAINERS
        .iter()
        .copied()
        .chain(setting_globs)
        .any(|pattern| glob::matches(pattern, init_container))
        || catalogue::entry_of(sidecar)
            .is_some_and(|entry| entry.starts_after.contains(&init_container))
}

/// Requests the policy evaluates, mostly clean: CREATEs and UPDATEs that
/// change the pod template, of every kind with a pod spec (some owned by a
/// controller, which are skipped); a quarter wild.
fn evaluated_request() -> BoxedStrategy<Value> {
    let evaluated = || {
        prop_oneof![
            4 => Just(Operation::Create),
            1 => Just(Operation::UpdateChangedTemplate)
        ]
        .boxed()
    };
    prop_oneof![
        3 => request_of(Mode::Clean, select(KINDS).boxed(), evaluated()),
        1 => request_of(Mode::Wild, select(KINDS).boxed(), evaluated()),
    ]
    .boxed()
}

/// A case whose pod surely has setup containers to be placed after: init
/// containers of `SETUP_NAMES` (built-in setup containers, Vault's, ones a
/// setting's glob names, the application's) inserted at random places, and
/// a sidecar added to `containers` (mostly of the catalogue, half of them
/// also declared by `lifecycle.type`, so that `builtinSidecars` does not
/// keep them all regular), half of the time setup containers named by the
/// setting `setupInitContainers`; mostly clean CREATEs in `convert` mode. A
/// quarter of the cases as they come.
fn placement_case() -> BoxedStrategy<Case> {
    let with_setup = (
        (evaluated_request(), settings(), any::<bool>()),
        vec((select(SETUP_NAMES), any::<prop::sample::Index>()), 1..4),
        option::weighted(
            0.9,
            (
                select(
                    &[
                        "vault-agent",
                        "vault-agent",
                        "cloud-sql-proxy",
                        "consul-dataplane-web",
                        "daprd",
                        "linkerd-proxy",
                        "istio-proxy",
                        "log-shipper",
                    ][..],
                ),
                any::<bool>(),
            ),
        ),
    )
        .prop_map(|((request, mut settings, own_setup), setups, sidecar)| {
            settings["legacySidecars"] = json!("convert");
            if own_setup {
                settings["setupInitContainers"] = json!(["wait-*", "*-net-setup"]);
            }
            let mut case = Case { request, settings };
            let kind = request_kind(&case.request).to_owned();
            let Some(Value::Object(spec)) = pod_spec_pointer(&kind)
                .and_then(|pointer| case.request["object"].pointer_mut(pointer))
            else {
                return case;
            };
            let mut names: BTreeSet<String> = ["containers", "initContainers"]
                .iter()
                .filter_map(|list| spec.get(*list).and_then(Value::as_array))
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect();
            if let Some(Value::Array(containers)) = spec.get_mut("containers")
                && let Some((name, declared)) =
                    sidecar.filter(|(name, _)| names.insert((*name).to_owned()))
            {
                let mut sidecar = json!({"name": name, "image": "registry.example/sidecar:1"});
                if declared {
                    sidecar["lifecycle"] = json!({"type": "Sidecar"});
                }
                containers.push(sidecar);
            }
            let init = spec.entry("initContainers").or_insert_with(|| json!([]));
            if init.is_null() {
                *init = json!([]);
            }
            if let Value::Array(init) = init {
                for (name, at) in setups {
                    if names.insert(name.to_owned()) {
                        init.insert(
                            at.index(init.len() + 1),
                            json!({"name": name, "image": "busybox"}),
                        );
                    }
                }
            }
            case
        });
    prop_oneof![3 => with_setup, 1 => case()].boxed()
}

static PLACEMENT: Coverage = Coverage::new("placement_after_setup");
static PLACEMENT_OWN: Coverage = Coverage::new("placement_after_settings_or_starts_after");

/// SPEC §4, "Placement": in every mutated object, each sidecar the policy
/// moved to `initContainers` (it was in `containers` of the request, and not
/// re-applied over a native sidecar of its name) stands after every one of
/// its setup containers that stood in `initContainers` when it was placed:
/// those of the request, and the sidecars moved before it (they are placed
/// one by one in `spec.containers` order, each "as the list stands"). So no
/// sidecar starts before what sets up its network or writes what it starts
/// from (`vault-agent-init` for `vault-agent`). And the whole list is the
/// one the spec's procedure gives: each just after the last of its setup
/// containers as the list stands (at the beginning when there is none),
/// past the native sidecars that directly follow.
#[test]
fn a_moved_sidecar_stands_after_each_of_its_setup_containers() {
    check(placement_case(), |case| {
        PLACEMENT.case();
        PLACEMENT_OWN.case();
        let response = native(&case.request, &case.settings);
        let Some(mutated) = mutated_object(&response) else {
            return Ok(());
        };
        let pointer = case_pod_spec_pointer(&case)?;
        let names = |object: &Value, list: &str| list_names(object, pointer, list);
        let request_init = names(&case.request["object"], "initContainers");
        let init_after = names(mutated, "initContainers");
        let moved: Vec<String> = names(&case.request["object"], "containers")
            .into_iter()
            .filter(|name| init_after.contains(name) && !request_init.contains(name))
            .collect();
        let position = |name: &str| init_after.iter().position(|n| n == name);
        let mut checked = false;
        let mut own = false;
        for (order, sidecar) in moved.iter().enumerate() {
            let at = position(sidecar).expect("a moved sidecar is in initContainers");
            let standing = request_init.iter().chain(&moved[..order]);
            for setup in standing.filter(|init| is_setup_of(sidecar, init, &case.settings)) {
                checked = true;
                own |= !catalogue::is_builtin_setup(setup);
                let setup_at = position(setup).expect("an init container stays");
                prop_assert!(
                    setup_at < at,
                    "{} was placed at initContainers[{}], before its setup container {} at [{}]: {:?}",
                    sidecar,
                    at,
                    setup,
                    setup_at,
                    init_after
                );
            }
        }
        // and exactly where the spec's procedure puts each, native sidecars
        // that directly follow its last setup container passed
        let mut expected: Vec<(String, bool)> = case.request["object"]
            .pointer(pointer)
            .and_then(|spec| spec.get("initContainers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let name = c.get("name").and_then(Value::as_str)?;
                Some((
                    name.to_owned(),
                    c.get("restartPolicy") == Some(&json!("Always")),
                ))
            })
            .collect();
        for sidecar in &moved {
            let mut at = expected
                .iter()
                .rposition(|(init, _)| is_setup_of(sidecar, init, &case.settings))
                .map_or(0, |last| last + 1);
            while expected.get(at).is_some_and(|(_, native)| *native) {
                at += 1;
            }
            expected.insert(at, (sidecar.clone(), true));
        }
        let expected: Vec<String> = expected.into_iter().map(|(name, _)| name).collect();
        prop_assert_eq!(
            &init_after,
            &expected,
            "initContainers are not placed as SPEC §4 places them"
        );
        if checked {
            PLACEMENT.exercised();
        }
        if own {
            PLACEMENT_OWN.exercised();
        }
        Ok(())
    });
    PLACEMENT.report(15);
    PLACEMENT_OWN.report(5);
}

/// A container name of a catalogue entry whose startupProbe is never
/// derived (SPEC §3.1, §5: `daprd`).
fn never_derived(name: &str) -> bool {
    catalogue::entry_of(name)
        .is_some_and(|entry| entry.startup_probe == catalogue::StartupProbe::NeverDerived)
}

/// The names the never-derived entries give their containers.
fn never_derived_names() -> Vec<&'static str> {
    CATALOGUE
        .iter()
        .filter(|entry| entry.startup_probe == catalogue::StartupProbe::NeverDerived)
        .map(|entry| entry.name())
        .collect()
}

/// A case with a never-derived sidecar in it: a container of either list
/// renamed (when the pod has none of that name yet), mostly with a
/// readinessProbe (the one a startupProbe would be derived from) and, in
/// `initContainers`, mostly made native; the setting `startupProbe` mostly
/// `require` or `derive`, and mostly every other sidecar with a
/// startupProbe of its own, so that `require` has only the never-derived
/// one to judge. Mostly evaluated requests, a quarter any.
fn never_derived_case() -> BoxedStrategy<Case> {
    let base = prop_oneof![
        3 => (evaluated_request(), settings())
            .prop_map(|(request, settings)| Case { request, settings }),
        1 => case(),
    ];
    (
        base,
        select(never_derived_names()),
        any::<bool>(),
        any::<prop::sample::Index>(),
        option::weighted(0.9, probe(ProbeKind::Readiness, Mode::Clean)),
        prop::bool::weighted(0.8),
        prop_oneof![2 => Just(Some("require")), 1 => Just(Some("derive")), 1 => Just(None)],
        prop::bool::weighted(0.75),
    )
        .prop_map(
            |(mut case, name, init, index, readiness, native, startup, others_probed)| {
                if let Some(mode) = startup {
                    case.settings["startupProbe"] = json!(mode);
                }
                edit_pod_spec(&mut case.request, |spec| {
                    if others_probed {
                        give_sidecars_startup_probes(spec);
                    }
                    let taken = ["containers", "initContainers"].iter().any(|list| {
                        spec.get(*list)
                            .and_then(Value::as_array)
                            .is_some_and(|list| {
                                list.iter().any(|c| c.get("name") == Some(&json!(name)))
                            })
                    });
                    // `containers` when the pod has no init container
                    let has_init = spec
                        .get("initContainers")
                        .and_then(Value::as_array)
                        .is_some_and(|list| !list.is_empty());
                    let init = init && has_init;
                    let list = if init { "initContainers" } else { "containers" };
                    let Some(Value::Array(list)) = spec.get_mut(list).filter(|_| !taken) else {
                        return;
                    };
                    if list.is_empty() {
                        return;
                    }
                    let at = index.index(list.len());
                    let Some(container) = list[at].as_object_mut() else {
                        return;
                    };
                    container.insert("name".into(), json!(name));
                    if others_probed {
                        // the one given above: it keeps only a startupProbe of its own
                        container.remove("startupProbe");
                    }
                    if init && native {
                        container.insert("restartPolicy".into(), json!("Always"));
                    }
                    let may_probe =
                        !init || native || container.get("restartPolicy") == Some(&json!("Always"));
                    if let Some(readiness) = readiness.filter(|_| may_probe) {
                        container.insert("readinessProbe".into(), readiness);
                    }
                });
                case
            },
        )
        .boxed()
}

/// Edits the pod spec of a request's object. An UPDATE whose `oldObject`
/// had the same pod template gets the same edit, so that it stays an UPDATE
/// that leaves the template unchanged (accepted untouched, SPEC §2).
fn edit_pod_spec(request: &mut Value, edit: impl FnOnce(&mut Value)) {
    let kind = request_kind(request).to_owned();
    let Some(pointer) = pod_spec_pointer(&kind) else {
        return;
    };
    let template = template_pointer(&kind);
    let unchanged = !request["oldObject"].is_null()
        && request["object"].pointer(template) == request["oldObject"].pointer(template);
    let Some(spec) = request["object"].pointer_mut(pointer) else {
        return;
    };
    edit(spec);
    if unchanged {
        let edited = request["object"].pointer(template).cloned();
        if let (Some(edited), Some(old)) = (edited, request["oldObject"].pointer_mut(template)) {
            *old = edited;
        }
    }
}

/// Gives a startupProbe to every container that may be a sidecar (every
/// regular container, every native init container) and has none, so that
/// `startupProbe: require` has nothing else to reject.
fn give_sidecars_startup_probes(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let may_be_sidecar =
                list == "containers" || container.get("restartPolicy") == Some(&json!("Always"));
            if may_be_sidecar && !container.contains_key("startupProbe") {
                container.insert(
                    "startupProbe".into(),
                    json!({"tcpSocket": {"port": 15021}, "periodSeconds": 1, "failureThreshold": 300}),
                );
            }
        }
    }
}

/// The same request with a startupProbe given to every never-derived
/// container that has none (`edit_pod_spec`: an UPDATE that left the pod
/// template unchanged still does), and whether there was one to give.
fn with_never_derived_probes(request: &Value) -> (Value, bool) {
    let mut request = request.clone();
    let mut added = false;
    edit_pod_spec(&mut request, |spec| {
        for list in ["containers", "initContainers"] {
            let Some(Value::Array(list)) = spec.get_mut(list) else {
                continue;
            };
            for container in list.iter_mut().filter_map(Value::as_object_mut) {
                let named = container
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(never_derived);
                if named && !container.contains_key("startupProbe") {
                    container.insert(
                        "startupProbe".into(),
                        json!({"httpGet": {"path": "/v1.0/healthz/outbound", "port": 3500}, "periodSeconds": 1}),
                    );
                    added = true;
                }
            }
        }
    });
    (request, added)
}

/// A never-derived native sidecar without a startupProbe in the pod an
/// answer leaves (the mutated object, or the request accepted as it is),
/// and whether it has a readinessProbe one could be derived from.
fn bare_never_derived_sidecar(pod_spec: Option<&Value>) -> Option<bool> {
    pod_spec
        .and_then(|spec| spec.get("initContainers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("restartPolicy") == Some(&json!("Always"))
                && c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(never_derived)
                && c.get("startupProbe").is_none()
        })
        .map(|c| c.get("readinessProbe").is_some_and(Value::is_object))
        .reduce(|a, b| a || b)
}

static NEVER_DERIVED: Coverage = Coverage::new("never_derived_gets_no_startup_probe");
static NEVER_DERIVED_REQUIRE: Coverage = Coverage::new("never_derived_not_required");

/// SPEC §3.1 and §5: a container whose name matches a catalogue entry that
/// says "never derived" (`daprd`, whose readiness waits for the application)
/// never gets a startupProbe from the policy, in any mode, native ones and
/// ones declared by annotation or matcher included: whatever startupProbe
/// it has in a mutated object, it had in the request. And `startupProbe:
/// require` does not ask for one: giving each such container a startupProbe
/// changes neither the verdict nor the message.
#[test]
fn a_never_derived_sidecar_gets_no_startup_probe_and_is_not_required_one() {
    check(never_derived_case(), |case| {
        NEVER_DERIVED.case();
        NEVER_DERIVED_REQUIRE.case();
        let response = native(&case.request, &case.settings);
        check_shape(&response)?;
        let pointer = pod_spec_pointer(request_kind(&case.request));
        let request_spec = pointer.and_then(|p| case.request["object"].pointer(p));
        if let (Some(mutated), Some(pointer)) = (mutated_object(&response), pointer) {
            let request_containers: Vec<&Value> = ["containers", "initContainers"]
                .iter()
                .filter_map(|list| request_spec?.get(*list)?.as_array())
                .flatten()
                .collect();
            for list in ["containers", "initContainers"] {
                let containers = mutated
                    .pointer(pointer)
                    .and_then(|spec| spec.get(list))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten();
                for container in containers {
                    let Some(name) = container.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let Some(probe) = container
                        .get("startupProbe")
                        .filter(|_| never_derived(name))
                    else {
                        continue;
                    };
                    prop_assert!(
                        request_containers
                            .iter()
                            .any(|c| c.get("name") == container.get("name")
                                && c.get("startupProbe") == Some(probe)),
                        "{} got a startupProbe it did not have: {}",
                        name,
                        probe
                    );
                }
            }
        }
        let after = match mutated_object(&response) {
            Some(mutated) => pointer.and_then(|p| mutated.pointer(p)),
            None if accepted(&response) => request_spec,
            None => None,
        };
        if bare_never_derived_sidecar(after) == Some(true) {
            NEVER_DERIVED.exercised();
        }
        let settings = Settings::from_value(&case.settings).expect("generated settings are valid");
        if settings.startup_probe == sidecar_lifecycle_policy::settings::StartupProbe::Require {
            let (probed, added) = with_never_derived_probes(&case.request);
            if added {
                let answer = native(&probed, &case.settings);
                prop_assert_eq!(
                    (
                        accepted(&response),
                        &response["message"],
                        mutated_object(&response).is_some()
                    ),
                    (
                        accepted(&answer),
                        &answer["message"],
                        mutated_object(&answer).is_some()
                    ),
                    "under startupProbe: require, a never-derived sidecar's startupProbe changes the answer"
                );
                if accepted(&response) && bare_never_derived_sidecar(after).is_some() {
                    NEVER_DERIVED_REQUIRE.exercised();
                }
            }
        }
        Ok(())
    });
    NEVER_DERIVED.report(8);
    NEVER_DERIVED_REQUIRE.report(5);
}

/// The ServiceAccount admission plugin at Pod creation (before any
/// webhook): a projected volume `kube-api-access-<suffix>` in
/// `spec.volumes`, and a read-only volumeMount of it at the token path on
/// every container of both lists that mounts nothing there.
fn mount_service_account_token(spec: &mut Value, suffix: &str) {
    const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let volume = format!("kube-api-access-{suffix}");
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let projected = json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}});
    match spec.get_mut("volumes") {
        Some(Value::Array(volumes)) => volumes.push(projected),
        _ => {
            spec.insert("volumes".into(), json!([projected]));
        }
    }
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_PATH});
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            match container.get_mut("volumeMounts") {
                Some(Value::Array(mounts)) => {
                    if !mounts
                        .iter()
                        .any(|m| m.get("mountPath") == Some(&json!(TOKEN_PATH)))
                    {
                        mounts.push(mount.clone());
                    }
                }
                None | Some(Value::Null) => {
                    container.insert("volumeMounts".into(), json!([mount]));
                }
                Some(_) => {}
            }
        }
    }
}

/// What the API server prunes before any webhook sees a manifest:
/// `lifecycle.type`, a field the API does not have (SPEC §2).
fn pruned_by_the_api_server(request: &mut Value) {
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(containers)) = request.pointer_mut(&format!("/object/spec/{list}"))
        {
            for container in containers {
                if let Some(Value::Object(lifecycle)) = container.get_mut("lifecycle") {
                    lifecycle.remove("type");
                }
            }
        }
    }
}

/// A clean Pod CREATE in `convert` mode, the random suffix of its token
/// volume, and whether the stored Pod lost the native switches (created
/// before `nativeInjection`, by an older release of the policy).
fn naked_pod_case() -> BoxedStrategy<(Case, String, bool)> {
    (
        pod_create_request(Mode::Clean),
        settings(),
        "[a-z0-9]{5}",
        prop::bool::weighted(0.3),
    )
        .prop_map(|(mut request, mut settings, suffix, without_switches)| {
            pruned_by_the_api_server(&mut request);
            settings["legacySidecars"] = json!("convert");
            (Case { request, settings }, suffix, without_switches)
        })
        .boxed()
}

static NAKED_POD: Coverage = Coverage::new("naked_pod_reapply");
static NAKED_POD_NO_SWITCHES: Coverage = Coverage::new("naked_pod_reapply_without_switches");

/// SPEC §2 and §4 (issue 16): re-applying a naked Pod the policy converted.
/// The Pod is created as a cluster creates it: the ServiceAccount admission
/// plugin mounts the token into every container before the policy sees the
/// CREATE, and the mutated object is what is stored. `kubectl apply` of the
/// unchanged manifest (as the user wrote it: no token mount) brings the
/// converted sidecars back into `containers` without the mount, keeps the
/// rest as stored, and comes as a Pod UPDATE whose `oldObject` is the
/// stored Pod. With `convert` the answer is the stored Pod exactly (its
/// `spec` to the byte: the token mount kept from the stored entry, nothing
/// rolls; no annotation added, also when the stored Pod has no native
/// switches); with `warn` or `reject` the UPDATE is accepted untouched.
#[test]
fn re_applying_a_converted_naked_pod_gives_back_the_stored_pod() {
    check(naked_pod_case(), |(case, suffix, without_switches)| {
        NAKED_POD.case();
        NAKED_POD_NO_SWITCHES.case();
        let manifest = case.request["object"].clone();
        let mut create = case.request.clone();
        mount_service_account_token(&mut create["object"]["spec"], &suffix);
        let response = native(&create, &case.settings);
        let Some(converted) = mutated_object(&response) else {
            return Ok(());
        };
        let mut stored = converted.clone();
        if without_switches {
            let (added, _) = annotation_changes(&create["object"], &stored, "/metadata");
            if let Some(Value::Object(annotations)) = stored.pointer_mut("/metadata/annotations") {
                for key in added.keys() {
                    annotations.remove(key);
                }
            }
        }
        // the whole object back, so its spec to the byte and no annotation added
        let reapplied = re_apply(&create, &case.settings, &manifest, &stored, "/spec")?;
        if reapplied.names.is_empty() {
            return Ok(());
        }
        // what makes the case: the stored sidecar has the plugin's mount,
        // the one the manifest brings back has not
        let token_mount = |container: &Value| {
            container
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|mount| mount["name"] == json!(format!("kube-api-access-{suffix}")))
        };
        let entry = |object: &Value, list: &str, name: &str| -> Value {
            object["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == json!(name))
                .cloned()
                .unwrap_or_default()
        };
        for name in &reapplied.names {
            prop_assert!(
                token_mount(&entry(&stored, "initContainers", name))
                    && !token_mount(&entry(&reapplied.update["object"], "containers", name)),
                "{} is not a re-applied sidecar without its token mount",
                name
            );
        }
        for mode in ["warn", "reject"] {
            let mut settings = case.settings.clone();
            settings["legacySidecars"] = json!(mode);
            let answer = native(&reapplied.update, &settings);
            prop_assert!(
                accepted(&answer) && mutated_object(&answer).is_none(),
                "with legacySidecars: {}, the re-applied Pod is not accepted untouched: {}",
                mode,
                answer
            );
        }
        NAKED_POD.exercised();
        if without_switches {
            NAKED_POD_NO_SWITCHES.exercised();
        }
        Ok(())
    });
    NAKED_POD.report(20);
    NAKED_POD_NO_SWITCHES.report(5);
}

// ---------------------------------------------------------------------------
// Regressions: what the properties and the fuzzer found, fixed in src/.
// ---------------------------------------------------------------------------

fn pod_request(spec: Value) -> Value {
    json!({"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop"}, "spec": spec}})
}

/// A mutated pod passes the API server's checks of every version the
/// request passed, and is stable when evaluated again.
#[track_caller]
fn assert_mutation_is_sound(request: &Value, settings: &Value) {
    let response = native(request, settings);
    let Some(mutated) = mutated_object(&response) else {
        return;
    };
    for minor in [
        api_rules::DEFAULT_MINOR,
        api_rules::CONTAINER_RESTART_RULES_MINOR,
    ] {
        if api_rules::violations_for(&request["object"]["spec"], minor).is_empty() {
            let found = api_rules::violations_for(&mutated["spec"], minor);
            assert!(
                found.is_empty(),
                "the policy returned a pod the API server of 1.{minor} rejects: {found:#?}\n{:#}",
                mutated["spec"]
            );
        }
    }
    let case = Case {
        request: request.clone(),
        settings: settings.clone(),
    };
    let second = evaluate_again(&case, mutated);
    assert!(
        accepted(&second) && mutated_object(&second).is_none(),
        "not idempotent: {second:#}"
    );
}

/// Found by these properties: two sidecars at sidecarShutdownSeconds = int64
/// max once gave terminationGracePeriodSeconds 18446744073709551614, which no
/// int64 holds; such a budget is now a violation.
#[test]
fn regression_the_grace_period_stays_an_int64() {
    let request = pod_request(
        json!({"containers": [{"name": "app"}, {"name": "istio-proxy"}, {"name": "linkerd-proxy"}]}),
    );
    let settings = json!({"terminationGracePeriod": {"sidecarShutdownSeconds": i64::MAX}});
    assert_mutation_is_sound(&request, &settings);
}

/// Found by these properties: startupProbeWindowSeconds 3000000000 with a
/// 1-second period once derived a failureThreshold no int32 (the probe's
/// field type) holds; it is now capped at int32 max.
#[test]
fn regression_the_derived_failure_threshold_stays_an_int32() {
    let request = pod_request(json!({"containers": [{"name": "app"},
        {"name": "istio-proxy", "readinessProbe": {"tcpSocket": {"port": 15021}, "periodSeconds": 1}}]}));
    let settings = json!({"startupProbeWindowSeconds": 3_000_000_000u64});
    assert_mutation_is_sound(&request, &settings);
}

/// Found by cargo fuzz: `periodSeconds x failureThreshold` of a huge
/// readinessProbe (for the warning) overflowed, a panic under overflow checks
/// and a wrapped number in the release module. The object is invalid (no
/// int32 holds the threshold) but must be answered, not crash the evaluation.
#[test]
fn regression_a_huge_readiness_probe_does_not_panic() {
    let request = pod_request(json!({"containers": [{"name": "app"}], "initContainers": [
        {"name": "proxy", "restartPolicy": "Always",
         "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 10, "failureThreshold": i64::MAX}}]}));
    let response = native(&request, &json!({}));
    assert!(check_shape(&response).is_ok(), "{response}");
}

/// The spec conflict of `sidecar_marker_conflict`: `app` is declared a
/// sidecar by its marker but keeps its own restartPolicy (Kubernetes 1.34),
/// so it stays, and `consul-dataplane`, detected, yields (every container would
/// otherwise be a sidecar). minSeconds makes the policy change the pod; the
/// mutated pod has lost the marker, and evaluating it again converts
/// `consul-dataplane`.
///
/// SPEC §4 (the marker goes whenever the policy mutates) wins over §8
/// (idempotence) here; this test pins what happens, and the README says it.
#[test]
fn spec_conflict_a_sidecar_marker_that_stays_is_lost_on_mutation() {
    let request = pod_request(json!({"containers": [
        {"name": "app", "restartPolicy": "Always", "lifecycle": {"type": "Sidecar"}},
        {"name": "consul-dataplane"}]}));
    let settings = json!({"terminationGracePeriod": {"minSeconds": 60}});
    let first = mutated_object(&native(&request, &settings))
        .expect("minSeconds raises the grace period")
        .clone();
    assert_eq!(
        first["spec"]["containers"][1]["name"],
        json!("consul-dataplane"),
        "consul-dataplane stays the main container"
    );
    let mut again = request.clone();
    again["object"] = first;
    let second = mutated_object(&native(&again, &settings))
        .expect("the marker is gone: consul-dataplane is converted")
        .clone();
    assert_eq!(
        second["spec"]["initContainers"][0]["name"],
        json!("consul-dataplane")
    );
}
