//! SPEC §5: gate application start on sidecar readiness. The kubelet waits
//! for a native sidecar's startupProbe, never its readinessProbe, before it
//! starts the next container; setting `startupProbe` decides what to do about
//! native sidecars that have none.

use serde_json::{Map, Value};

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
        if sidecar.get("startupProbe").is_some() {
            continue;
        }
        match settings.startup_probe {
            Mode::Derive => {
                let Some(Value::Object(readiness)) = sidecar.get("readinessProbe") else {
                    continue;
                };
                let (probe, failure_threshold) = derive(readiness, settings.startup_probe_window_seconds);
                let window = probe_period(readiness).saturating_mul(failure_threshold);
                findings.changed(format!(
                    "{}: startupProbe derived from its readinessProbe ({failure_threshold} x {} s = {window} s to start)",
                    sidecar.name,
                    probe_period(readiness),
                ));
                probes.push(StartupProbe {
                    list: sidecar.list,
                    index: sidecar.index,
                    probe,
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

/// A startupProbe equal to the readinessProbe but for `successThreshold: 1`
/// (the API requires it) and a `failureThreshold` raised, when needed, so
/// that period x threshold covers `window_seconds`: a startupProbe that fails
/// restarts the container, and a slow sidecar must not be killed in a loop.
/// Returns the probe and its effective failure threshold.
fn derive(readiness: &Map<String, Value>, window_seconds: u64) -> (Value, u64) {
    let mut probe = readiness.clone();
    probe.insert("successThreshold".to_string(), Value::from(1));
    let current = readiness
        .get("failureThreshold")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_FAILURE_THRESHOLD);
    let covering = window_seconds
        .div_ceil(probe_period(readiness))
        .min(MAX_FAILURE_THRESHOLD);
    let failure_threshold = if current < covering {
        probe.insert("failureThreshold".to_string(), Value::from(covering));
        covering
    } else {
        current
    };
    (Value::Object(probe), failure_threshold)
}

fn probe_period(probe: &Map<String, Value>) -> u64 {
    probe
        .get("periodSeconds")
        .and_then(Value::as_u64)
        .filter(|period| *period > 0)
        .unwrap_or(DEFAULT_PERIOD_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn derived(readiness: Value, window: u64) -> Value {
        derive(readiness.as_object().unwrap(), window).0
    }

    #[test]
    fn the_window_raises_the_failure_threshold() {
        let readiness = json!({"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15,
            "failureThreshold": 4, "successThreshold": 3, "timeoutSeconds": 3});
        assert_eq!(
            derived(readiness, 300),
            json!({"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15,
                "failureThreshold": 20, "successThreshold": 1, "timeoutSeconds": 3})
        );
    }

    #[test]
    fn defaults_apply_when_the_readiness_probe_omits_them() {
        // period 10 s by default: 300 s needs 30 failures.
        assert_eq!(
            derived(json!({"tcpSocket": {"port": 5432}}), 300),
            json!({"tcpSocket": {"port": 5432}, "successThreshold": 1, "failureThreshold": 30})
        );
        // a window that does not divide evenly rounds up
        assert_eq!(
            derived(
                json!({"exec": {"command": ["true"]}, "periodSeconds": 7}),
                100
            )["failureThreshold"],
            json!(15)
        );
    }

    #[test]
    fn a_threshold_that_already_covers_the_window_is_kept() {
        let readiness =
            json!({"tcpSocket": {"port": 1}, "periodSeconds": 10, "failureThreshold": 60});
        assert_eq!(derived(readiness, 300)["failureThreshold"], json!(60));
    }

    #[test]
    fn the_threshold_stays_within_int32() {
        let readiness = json!({"tcpSocket": {"port": 1}, "periodSeconds": 1});
        assert_eq!(
            derived(readiness, 3_000_000_000)["failureThreshold"],
            json!(2_147_483_647)
        );
    }

    #[test]
    fn a_zero_window_keeps_the_readiness_value() {
        assert_eq!(
            derived(json!({"tcpSocket": {"port": 1}, "failureThreshold": 2}), 0),
            json!({"tcpSocket": {"port": 1}, "failureThreshold": 2, "successThreshold": 1})
        );
        assert!(
            derived(json!({"tcpSocket": {"port": 1}}), 0)
                .get("failureThreshold")
                .is_none()
        );
    }
}
