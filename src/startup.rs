//! SPEC §5: gate application start on sidecar readiness. The kubelet waits
//! for a native sidecar's startupProbe, never its readinessProbe, before it
//! starts the next container; setting `startupProbe` decides what to do about
//! native sidecars that have none.

use serde_json::{Map, Value};

use crate::catalogue::{self, StartupProbe as CatalogueProbe};
use crate::convert::Layout;
use crate::plan::{Findings, StartupProbe};
use crate::pod::PodView;
use crate::settings::{Settings, StartupProbe as Mode};

/// Kubernetes' defaults for a probe.
const DEFAULT_PERIOD_SECONDS: u64 = 10;
const DEFAULT_FAILURE_THRESHOLD: u64 = 3;
/// Probe thresholds are int32 in the Kubernetes API.
const MAX_FAILURE_THRESHOLD: u64 = i32::MAX as u64;

pub fn plan(
    view: &PodView,
    layout: &Layout,
    settings: &Settings,
    findings: &mut Findings,
) -> Vec<StartupProbe> {
    let mut probes = Vec::new();
    for sidecar in &layout.native_sidecars {
        if sidecar.get("startupProbe").is_some() || never_derived(sidecar.name) {
            continue;
        }
        match settings.startup_probe {
            Mode::Derive => {
                let Some(Value::Object(readiness)) = sidecar.get("readinessProbe") else {
                    continue;
                };
                // A readinessProbe without a handler is the API server's to
                // reject; a copy of it would only add a second error.
                let Some(derived) = derive(readiness, settings) else {
                    continue;
                };
                // A re-applied sidecar gets back the probe it had: no news.
                let rederived = layout
                    .replaced_by(sidecar)
                    .and_then(|stored| stored.get("startupProbe"))
                    == Some(&derived.probe);
                if !rederived {
                    findings.changed(format!(
                        "{}: startupProbe derived from its readinessProbe ({} x {} s = {} s to start)",
                        sidecar.name,
                        derived.failure_threshold,
                        derived.period_seconds,
                        derived
                            .period_seconds
                            .saturating_mul(derived.failure_threshold),
                    ));
                }
                probes.push(StartupProbe {
                    list: sidecar.list,
                    index: sidecar.index,
                    probe: derived.probe,
                });
            }
            Mode::Require => findings.violation(format!(
                "{}: a native sidecar needs a startupProbe (startupProbe: require), so the application starts only once it is ready",
                view.locate(sidecar)
            )),
            Mode::Ignore => {}
        }
    }
    probes
}

/// A sidecar whose readiness waits for the application (`daprd`): gating
/// the application on it would deadlock the pod, so it gets no startupProbe
/// and needs none under `require` (SPEC §3.1, §5).
fn never_derived(name: &str) -> bool {
    catalogue::entry_of(name)
        .is_some_and(|entry| entry.startup_probe == CatalogueProbe::NeverDerived)
}

/// The handlers a probe may have; exactly one is set.
const HANDLERS: &[&str] = &["httpGet", "tcpSocket", "exec", "grpc"];
/// What the startupProbe copies from the readinessProbe besides its handler.
const COPIED_TIMINGS: &[&str] = &["timeoutSeconds", "initialDelaySeconds"];

struct Derived {
    probe: Value,
    period_seconds: u64,
    failure_threshold: u64,
}

/// A startupProbe with the readinessProbe's handler, `timeoutSeconds` and
/// `initialDelaySeconds`. It probes every `startupProbePeriodSeconds` (never
/// slower than the readiness period), so the application starts as soon as
/// the sidecar is ready, and tolerates failures for the whole window, as a
/// failing startupProbe restarts the container. `successThreshold: 1` is what
/// the API requires of a startupProbe.
fn derive(readiness: &Map<String, Value>, settings: &Settings) -> Option<Derived> {
    let handler = HANDLERS.iter().find(|handler| {
        readiness
            .get(**handler)
            .is_some_and(|value| !value.is_null())
    })?;
    let readiness_period = positive(readiness, "periodSeconds").unwrap_or(DEFAULT_PERIOD_SECONDS);
    let readiness_threshold =
        positive(readiness, "failureThreshold").unwrap_or(DEFAULT_FAILURE_THRESHOLD);
    let window = settings.startup_probe_window_seconds;
    let (period_seconds, failure_threshold) = if window == 0 {
        (readiness_period, readiness_threshold)
    } else {
        let period = match settings.startup_probe_period_seconds {
            0 => readiness_period,
            setting => setting.min(readiness_period),
        };
        let covering = window.div_ceil(period);
        (
            period,
            readiness_threshold.max(covering).min(MAX_FAILURE_THRESHOLD),
        )
    };
    let mut probe = Map::new();
    for field in std::iter::once(handler).chain(COPIED_TIMINGS) {
        if let Some(value) = readiness.get(*field).filter(|value| !value.is_null()) {
            probe.insert((*field).to_string(), value.clone());
        }
    }
    probe.insert("periodSeconds".to_string(), Value::from(period_seconds));
    probe.insert("successThreshold".to_string(), Value::from(1));
    probe.insert(
        "failureThreshold".to_string(),
        Value::from(failure_threshold),
    );
    Some(Derived {
        probe: Value::Object(probe),
        period_seconds,
        failure_threshold,
    })
}

/// A positive integer field of a probe; Kubernetes defaults 0 and absence.
fn positive(probe: &Map<String, Value>, field: &str) -> Option<u64> {
    probe
        .get(field)
        .and_then(Value::as_u64)
        .filter(|value| *value > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn derived(readiness: Value, settings: Value) -> Value {
        let settings = Settings::from_value(&settings).unwrap();
        derive(readiness.as_object().unwrap(), &settings)
            .unwrap()
            .probe
    }

    /// The startup probes planned for a pod, by container name, and the
    /// violations.
    fn planned(spec: Value, settings: Value) -> (Vec<String>, Vec<String>) {
        use crate::admission::{Operation, POD};
        let pod = json!({"spec": spec});
        let view = PodView::read(&pod, POD).unwrap();
        let settings = Settings::from_value(&settings).unwrap();
        let mut findings = Findings::default();
        let typing = crate::typing::classify(&view, &settings, &mut findings);
        let layout =
            crate::convert::plan(&view, Operation::Create, &typing, &settings, &mut findings)
                .unwrap()
                .layout;
        let probes = plan(&view, &layout, &settings, &mut findings);
        let names = probes
            .iter()
            .map(|probe| {
                view.containers
                    .iter()
                    .chain(&view.init_containers)
                    .find(|c| c.list == probe.list && c.index == probe.index)
                    .unwrap()
                    .name
                    .to_string()
            })
            .collect();
        (names, findings.violations)
    }

    #[test]
    fn daprd_never_gets_a_startup_probe_nor_needs_one() {
        let readiness =
            json!({"httpGet": {"path": "/v1.0/healthz", "port": 3501}, "periodSeconds": 6});
        let spec = json!({
            "initContainers": [{"name": "daprd", "restartPolicy": "Always", "readinessProbe": readiness}],
            "containers": [{"name": "orders"}, {"name": "cloud-sql-proxy", "readinessProbe": readiness}]});
        assert_eq!(
            planned(spec.clone(), json!({})),
            (vec!["cloud-sql-proxy".to_string()], vec![])
        );
        let (probes, violations) = planned(spec, json!({"startupProbe": "require"}));
        assert!(probes.is_empty());
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0].contains("(cloud-sql-proxy)"),
            "{violations:?}"
        );
    }

    fn istio_readiness() -> Value {
        json!({"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "periodSeconds": 15,
            "failureThreshold": 4, "successThreshold": 3, "timeoutSeconds": 3, "initialDelaySeconds": 1})
    }

    #[test]
    fn probes_every_second_for_the_whole_window_by_default() {
        assert_eq!(
            derived(istio_readiness(), json!({})),
            json!({"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "periodSeconds": 1,
                "failureThreshold": 300, "successThreshold": 1, "timeoutSeconds": 3, "initialDelaySeconds": 1})
        );
    }

    #[test]
    fn copies_only_the_handler_and_its_timings() {
        let readiness = json!({"grpc": {"port": 9090}, "terminationGracePeriodSeconds": 5,
            "x-vendor": true, "exec": null});
        assert_eq!(
            derived(readiness, json!({})),
            json!({"grpc": {"port": 9090}, "periodSeconds": 1, "successThreshold": 1, "failureThreshold": 300})
        );
    }

    #[test]
    fn the_period_setting_is_never_slower_than_readiness() {
        let with = |settings: Value| {
            let probe = derived(istio_readiness(), settings);
            (
                probe["periodSeconds"].clone(),
                probe["failureThreshold"].clone(),
            )
        };
        assert_eq!(
            with(json!({"startupProbePeriodSeconds": 5})),
            (json!(5), json!(60))
        );
        // 0 means the readiness period
        assert_eq!(
            with(json!({"startupProbePeriodSeconds": 0})),
            (json!(15), json!(20))
        );
        // above the readiness period: capped at it
        assert_eq!(
            with(json!({"startupProbePeriodSeconds": 60})),
            (json!(15), json!(20))
        );
        // a window that does not divide evenly rounds up
        assert_eq!(
            with(json!({"startupProbePeriodSeconds": 7, "startupProbeWindowSeconds": 100})),
            (json!(7), json!(15))
        );
    }

    #[test]
    fn defaults_apply_when_the_readiness_probe_omits_them() {
        // period 10 s and threshold 3 by default
        assert_eq!(
            derived(
                json!({"tcpSocket": {"port": 5432}}),
                json!({"startupProbePeriodSeconds": 0})
            ),
            json!({"tcpSocket": {"port": 5432}, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 30})
        );
    }

    #[test]
    fn a_threshold_that_already_covers_the_window_is_kept() {
        let readiness =
            json!({"tcpSocket": {"port": 1}, "periodSeconds": 10, "failureThreshold": 600});
        assert_eq!(
            derived(readiness, json!({}))["failureThreshold"],
            json!(600)
        );
    }

    #[test]
    fn the_threshold_stays_within_int32() {
        let readiness = json!({"tcpSocket": {"port": 1}, "periodSeconds": 1});
        assert_eq!(
            derived(
                readiness,
                json!({"startupProbeWindowSeconds": 3_000_000_000u64})
            )["failureThreshold"],
            json!(2_147_483_647)
        );
    }

    #[test]
    fn a_zero_window_keeps_the_readiness_period_and_threshold() {
        assert_eq!(
            derived(
                istio_readiness(),
                json!({"startupProbeWindowSeconds": 0, "startupProbePeriodSeconds": 1})
            ),
            json!({"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "periodSeconds": 15,
                "failureThreshold": 4, "successThreshold": 1, "timeoutSeconds": 3, "initialDelaySeconds": 1})
        );
    }

    #[test]
    fn a_readiness_probe_without_handler_derives_nothing() {
        let settings = Settings::default();
        let readiness = json!({"periodSeconds": 5});
        assert!(derive(readiness.as_object().unwrap(), &settings).is_none());
    }

    /// The kubelet probes a container on a ticker of `periodSeconds` started
    /// with the pod's prober worker (at a phase unrelated to the container's
    /// start), skipping ticks before `initialDelaySeconds`. The application
    /// starts at the first tick after the sidecar is ready. Returns the mean
    /// and the worst delay after `ready_at`, over the ticker's phases, in
    /// hundredths of a second.
    fn modelled_start_delay(probe: &Value, ready_at: f64) -> (f64, f64) {
        let period = probe["periodSeconds"].as_u64().unwrap() as f64;
        let initial_delay = probe["initialDelaySeconds"].as_u64().unwrap_or(0) as f64;
        let earliest = ready_at.max(initial_delay);
        let phases: Vec<f64> = (0..(period * 100.0) as u64)
            .map(|hundredths| hundredths as f64 / 100.0)
            .collect();
        let delays: Vec<f64> = phases
            .iter()
            .map(|phase| phase + ((earliest - phase) / period).ceil().max(0.0) * period - ready_at)
            .collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        let worst = delays.iter().cloned().fold(0.0, f64::max);
        (mean, worst)
    }

    /// docs/performance.md, "Start-up delay added by gating":
    /// `cargo test --lib modelled_start_delay_of_the_meshes -- --nocapture`.
    #[test]
    fn modelled_start_delay_of_the_meshes() {
        let meshes = [
            ("Istio", istio_readiness_as_injected()),
            (
                "Linkerd",
                json!({"httpGet": {"path": "/ready", "port": 4191, "scheme": "HTTP"},
                "initialDelaySeconds": 2, "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3}),
            ),
        ];
        println!("| mesh | readiness period | rule | startupProbe | mean delay | worst delay |");
        println!("|---|---|---|---|---|---|");
        for (mesh, readiness) in meshes {
            let at_readiness_period =
                derived(readiness.clone(), json!({"startupProbePeriodSeconds": 0}));
            let every_second = derived(readiness.clone(), json!({}));
            let mut delays = Vec::new();
            for (rule, probe) in [
                ("old: readiness period", &at_readiness_period),
                ("new: default", &every_second),
            ] {
                let (mean, worst) = modelled_start_delay(probe, 2.0);
                println!(
                    "| {mesh} | {} s | {rule} | {} x {} s | {mean:.1} s | {worst:.1} s |",
                    readiness["periodSeconds"], probe["failureThreshold"], probe["periodSeconds"]
                );
                delays.push((mean, worst));
            }
            let period = readiness["periodSeconds"].as_f64().unwrap();
            // the old rule waits up to a whole readiness period, the new one up to a second
            assert!(
                delays[0].1 > period - 0.1 && delays[0].0 > period / 2.0 - 0.1,
                "{mesh}: {delays:?}"
            );
            assert!(
                delays[1].1 <= 1.0 && delays[1].0 <= 0.5,
                "{mesh}: {delays:?}"
            );
        }
    }

    fn istio_readiness_as_injected() -> Value {
        json!({"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "timeoutSeconds": 3, "periodSeconds": 15, "successThreshold": 1, "failureThreshold": 4})
    }
}
