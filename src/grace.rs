//! SPEC §6: keep `terminationGracePeriodSeconds` (TGPS) coherent with what
//! shutdown needs. On termination the kubelet runs every preStop hook at
//! once, waits for the main containers, then stops the native sidecars one
//! at a time in reverse order, all within the one TGPS budget:
//!
//! ```text
//! needed = max(longest main preStop + appShutdownSeconds,
//!              longest native-sidecar preStop)
//!          + the sum of the native sidecars' shares
//! ```
//!
//! A sidecar's share is `sidecarShutdownSeconds`, or the longer shutdown
//! time its own flag sets (SPEC §3.1: `consul-dataplane`).

use crate::catalogue;
use crate::convert::Layout;
use crate::hooks::{pre_stop_seconds, sleep_action_seconds};
use crate::plan::Findings;
use crate::pod::{Container, DEFAULT_GRACE_SECONDS, MAX_SECONDS, PodView};
use crate::settings::{GraceSettings, OnViolation, Settings};

/// The budget a pod with native sidecars needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub seconds: u64,
    /// The arithmetic, naming each share a sidecar's own flag sets: for
    /// rejections, which the user must act on.
    pub explanation: String,
    /// The same with the flagged shares summed, short enough for a warning
    /// (SPEC §8: under 120 characters where possible).
    pub summary: String,
}

/// Computes the budget; `None` when the pod has no native sidecars, as
/// `needed` applies only to those.
pub fn budget(layout: &Layout, grace: &GraceSettings) -> Option<Budget> {
    if layout.native_sidecars.is_empty() {
        return None;
    }
    let main = longest_pre_stop(&layout.main);
    let sidecar = longest_pre_stop(&layout.native_sidecars);
    let app_part = main
        .map_or(0, |(_, seconds)| seconds)
        .saturating_add(grace.app_shutdown_seconds);
    let sidecar_part = sidecar.map_or(0, |(_, seconds)| seconds);
    let mut parts = Vec::new();
    if app_part >= sidecar_part {
        if let Some((name, seconds)) = main {
            parts.push(format!("{name} preStop {seconds} s"));
        }
        if grace.app_shutdown_seconds > 0 {
            parts.push(format!("appShutdownSeconds {}", grace.app_shutdown_seconds));
        }
    } else if let Some((name, seconds)) = sidecar {
        parts.push(format!("sidecar {name} preStop {seconds} s"));
    }
    let each = grace.sidecar_shutdown_seconds;
    let mut with_each = 0u64;
    let mut flagged = Vec::new();
    let mut shares = 0u64;
    for sidecar in &layout.native_sidecars {
        match own_shutdown_seconds(sidecar).filter(|share| share.seconds > each) {
            Some(share) => {
                shares = shares.saturating_add(share.seconds);
                flagged.push((sidecar.name, share));
            }
            None => {
                shares = shares.saturating_add(each);
                with_each += 1;
            }
        }
    }
    match with_each {
        0 => {}
        1 => parts.push(format!("{each} s for 1 sidecar")),
        _ => parts.push(format!("{each} s for each of {with_each} sidecars")),
    }
    let mut explanation = parts.clone();
    explanation.extend(flagged.iter().map(|(name, share)| {
        format!(
            "{} s for {name} ({} {})",
            share.seconds, share.flag, share.seconds
        )
    }));
    let mut summary = parts;
    match flagged.as_slice() {
        [] => {}
        [(name, share)] => summary.push(format!("{} s by {name}'s shutdown flag", share.seconds)),
        _ => summary.push(format!(
            "{} s by {} sidecars' shutdown flags",
            flagged
                .iter()
                .fold(0u64, |sum, (_, share)| sum.saturating_add(share.seconds)),
            flagged.len()
        )),
    }
    Some(Budget {
        seconds: app_part.max(sidecar_part).saturating_add(shares),
        explanation: explanation.join(" + "),
        summary: summary.join(" + "),
    })
}

/// A sidecar's own shutdown time, and its flag as written (`-flag`).
struct OwnShutdown<'a> {
    flag: &'a str,
    seconds: u64,
}

/// The shutdown time a sidecar's own flag sets (SPEC §3.1, §6): the flag
/// its catalogue entry names, as `-flag N`, `-flag=N` or with `--`, in
/// `command` then `args`; the last occurrence counts, and a value that is
/// not a non-negative integer sets nothing.
fn own_shutdown_seconds<'a>(sidecar: &Container<'a>) -> Option<OwnShutdown<'a>> {
    let flag = catalogue::entry_of(sidecar.name)?.shutdown_flag?;
    let words: Vec<&str> = sidecar.command().chain(sidecar.args()).collect();
    let mut last = None;
    for (at, word) in words.iter().enumerate() {
        let Some(body) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
            continue;
        };
        if body == flag {
            last = Some((*word, words.get(at + 1).copied().unwrap_or_default()));
        } else if let Some(value) = body
            .strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
        {
            last = Some((&word[..word.len() - value.len() - 1], value));
        }
    }
    let (written, value) = last?;
    let is_integer = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let seconds = value.parse().ok().filter(|_| is_integer)?;
    Some(OwnShutdown {
        flag: written,
        seconds,
    })
}

/// The container with the longest non-zero preStop, and its seconds.
fn longest_pre_stop<'a>(containers: &[&Container<'a>]) -> Option<(&'a str, u64)> {
    containers
        .iter()
        .map(|container| (container.name, pre_stop_seconds(container)))
        .filter(|(_, seconds)| *seconds > 0)
        .fold(None, |longest, candidate| match longest {
            Some((_, seconds)) if seconds >= candidate.1 => longest,
            _ => Some(candidate),
        })
}

/// Plans the new TGPS, if it must change; conflicts and `reject` mode become
/// violations with the arithmetic in them.
pub fn plan(
    view: &PodView,
    layout: &Layout,
    settings: &Settings,
    findings: &mut Findings,
) -> Option<u64> {
    let grace = &settings.termination_grace_period;
    let field = format!("{}.terminationGracePeriodSeconds", view.spec_path);
    let current = view.grace_period.unwrap_or(DEFAULT_GRACE_SECONDS);
    let shown = |seconds: Option<u64>| {
        seconds.map_or_else(
            || format!("unset ({DEFAULT_GRACE_SECONDS})"),
            |s| s.to_string(),
        )
    };
    let budget = budget(layout, grace);

    if let Some(budget) = &budget
        && budget.seconds > MAX_SECONDS
    {
        findings.violation(format!(
            "{field}: the pod needs {} s to shut down ({}), more than Kubernetes can store; \
             lower terminationGracePeriod.sidecarShutdownSeconds or appShutdownSeconds",
            budget.seconds, budget.explanation
        ));
        return None;
    }
    if let (Some(budget), Some(max)) = (&budget, grace.max_seconds)
        && budget.seconds > max
    {
        findings.violation(format!(
            "{field}: the pod needs {} s to shut down ({}), above terminationGracePeriod.maxSeconds {max}; \
             shorten the preStop hooks or run fewer sidecars",
            budget.seconds, budget.explanation
        ));
        return None;
    }

    let needed = budget.as_ref().map_or(0, |budget| budget.seconds);
    let min = grace.min_seconds.unwrap_or(0);
    let (target, reason) = if current < needed.max(min) {
        let reason = match &budget {
            Some(budget) if needed >= min => Reason::Budget(budget),
            _ => Reason::Bound(format!("terminationGracePeriod.minSeconds {min}")),
        };
        (needed.max(min), reason)
    } else if let Some(max) = grace.max_seconds.filter(|max| current > *max) {
        (
            max,
            Reason::Bound(format!("terminationGracePeriod.maxSeconds {max}")),
        )
    } else {
        return None;
    };
    let verb = if target > current {
        "raised"
    } else {
        "lowered"
    };

    if grace.on_violation == OnViolation::Reject {
        let bound = if target > current {
            "at least"
        } else {
            "at most"
        };
        findings.violation(format!(
            "{field} is {} but must be {bound} {target} ({}); set it to {target}",
            shown(view.grace_period),
            reason.explained()
        ));
        return None;
    }
    if let Some(conflict) = sleep_above(view, target) {
        findings.violation(format!(
            "{conflict} is above the {target} s the policy would set {field} to ({}); lower the sleep",
            reason.explained()
        ));
        return None;
    }
    findings.changed(format!(
        "{verb} terminationGracePeriodSeconds {} -> {target}: {}",
        shown(view.grace_period),
        reason.summarized()
    ));
    Some(target)
}

/// Why the grace period must change.
enum Reason<'b> {
    Budget(&'b Budget),
    Bound(String),
}

impl Reason<'_> {
    fn explained(&self) -> &str {
        match self {
            Reason::Budget(budget) => &budget.explanation,
            Reason::Bound(bound) => bound,
        }
    }

    fn summarized(&self) -> &str {
        match self {
            Reason::Budget(budget) => &budget.summary,
            Reason::Bound(bound) => bound,
        }
    }
}

/// The first preStop or postStart `sleep.seconds` above `limit`, on any
/// container: the API server rejects a sleep longer than the grace period.
fn sleep_above(view: &PodView, limit: u64) -> Option<String> {
    view.all_containers().find_map(|container| {
        ["preStop", "postStart"].into_iter().find_map(|hook| {
            let seconds = sleep_action_seconds(container.hook(hook)?)?;
            (seconds > limit)
                .then(|| format!("{} {hook} sleep.seconds {seconds}", view.locate(container)))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Operation, POD};
    use crate::convert;
    use crate::typing::classify;
    use serde_json::{Value, json};

    /// Runs typing, conversion and the grace rule on a pod spec.
    fn grace(spec: Value, settings: Value) -> (Option<u64>, Findings) {
        let pod = json!({"spec": spec});
        let view = PodView::read(&pod, POD).unwrap();
        let settings = Settings::from_value(&settings).unwrap();
        let mut findings = Findings::default();
        let typing = classify(&view, &settings, &mut findings);
        let layout = convert::plan(&view, Operation::Create, &typing, &settings, &mut findings)
            .unwrap()
            .layout;
        let mut findings = Findings::default();
        let planned = plan(&view, &layout, &settings, &mut findings);
        (planned, findings)
    }

    fn sleeping(name: &str, seconds: u64) -> Value {
        json!({"name": name, "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", format!("sleep {seconds}")]}}}})
    }

    #[test]
    fn each_sidecar_adds_its_share_after_the_longest_app_pre_stop() {
        let spec = json!({"containers": [sleeping("orders", 20), {"name": "consul-dataplane"}, {"name": "vault-agent"}, {"name": "cloud-sql-proxy"}]});
        let (planned, findings) = grace(spec, json!({}));
        assert_eq!(planned, Some(35));
        assert_eq!(
            findings.warnings(),
            [
                "raised terminationGracePeriodSeconds unset (30) -> 35: orders preStop 20 s + 5 s for each of 3 sidecars"
            ]
        );
    }

    fn dataplane(words: Value) -> Value {
        json!({"name": "consul-dataplane", "image": "hashicorp/consul-dataplane:1.5.3", "args": words})
    }

    #[test]
    fn consul_dataplane_s_own_shutdown_flag_is_its_share() {
        let spec = json!({"terminationGracePeriodSeconds": 30, "containers": [sleeping("web", 10),
            dataplane(json!(["-addresses", "consul-server.consul.svc", "-shutdown-grace-period-seconds", "45"])),
            {"name": "vault-agent"}],
            "initContainers": [{"name": "consul-connect-inject-init"}]});
        let (planned, findings) = grace(spec, json!({}));
        assert_eq!(planned, Some(60));
        assert_eq!(
            findings.warnings(),
            [
                "raised terminationGracePeriodSeconds 30 -> 60: web preStop 10 s + 5 s for 1 sidecar + 45 s by consul-dataplane's shutdown flag"
            ]
        );
    }

    #[test]
    fn a_rejection_names_each_share_a_flag_sets_and_a_warning_sums_them() {
        let spec = json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "payments"},
            {"name": "consul-dataplane-payments-api", "args": ["-shutdown-grace-period-seconds=30"]},
            {"name": "consul-dataplane-payments-admin", "args": ["--shutdown-grace-period-seconds", "20"]}]});
        let (planned, findings) = grace(spec.clone(), json!({}));
        assert_eq!(planned, Some(50));
        assert_eq!(
            findings.warnings(),
            ["raised terminationGracePeriodSeconds 30 -> 50: 50 s by 2 sidecars' shutdown flags"]
        );
        let (_, findings) = grace(
            spec,
            json!({"terminationGracePeriod": {"onViolation": "reject"}}),
        );
        assert_eq!(
            findings.violations,
            [
                "spec.terminationGracePeriodSeconds is 30 but must be at least 50 (30 s for consul-dataplane-payments-api \
              (-shutdown-grace-period-seconds 30) + 20 s for consul-dataplane-payments-admin (--shutdown-grace-period-seconds 20)); \
              set it to 50"
            ]
        );
    }

    #[test]
    fn the_shutdown_flag_is_read_in_each_of_its_forms() {
        let share = |container: Value| {
            let spec = json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "app"}, container]});
            grace(spec, json!({})).0
        };
        assert_eq!(
            share(dataplane(json!(["--shutdown-grace-period-seconds=20"]))),
            Some(20)
        );
        assert_eq!(
            share(dataplane(json!(["-shutdown-grace-period-seconds", "20"]))),
            Some(20)
        );
        // the last occurrence counts; command is read before args
        let both = json!({"name": "consul-dataplane-web", "command": ["consul-dataplane", "-shutdown-grace-period-seconds=40"],
            "args": ["-shutdown-grace-period-seconds", "12"]});
        assert_eq!(share(both), Some(12));
        // not above sidecarShutdownSeconds, or not a non-negative integer: the setting
        for words in [
            json!(["-shutdown-grace-period-seconds=3"]),
            json!(["-shutdown-grace-period-seconds", "-1"]),
            json!(["-shutdown-grace-period-seconds=1m"]),
            json!(["-shutdown-grace-period-seconds"]),
            json!(["-shutdown-grace-period-seconds", "99999999999999999999999"]),
        ] {
            assert_eq!(share(dataplane(words.clone())), Some(5), "{words}");
        }
        // only an entry that names the flag reads it
        let other = json!({"name": "vault-agent", "args": ["-shutdown-grace-period-seconds=40"]});
        assert_eq!(share(other), Some(5));
    }

    #[test]
    fn a_longer_sidecar_pre_stop_sets_the_base() {
        let spec = json!({"terminationGracePeriodSeconds": 10, "containers": [sleeping("app", 5)],
            "initContainers": [{"name": "envoy", "restartPolicy": "Always",
                "lifecycle": {"preStop": {"sleep": {"seconds": 15}}}}]});
        let (planned, findings) = grace(
            spec,
            json!({"terminationGracePeriod": {"sidecarShutdownSeconds": 2}}),
        );
        assert_eq!(planned, Some(17));
        assert_eq!(
            findings.warnings(),
            [
                "raised terminationGracePeriodSeconds 10 -> 17: sidecar envoy preStop 15 s + 2 s for 1 sidecar"
            ]
        );
    }

    #[test]
    fn app_shutdown_seconds_extend_the_main_containers() {
        let spec = json!({"terminationGracePeriodSeconds": 30, "containers": [sleeping("app", 10), {"name": "daprd"}]});
        let (planned, findings) = grace(
            spec,
            json!({"terminationGracePeriod": {"appShutdownSeconds": 25}}),
        );
        assert_eq!(planned, Some(40));
        assert!(
            findings.warnings()[0]
                .ends_with("app preStop 10 s + appShutdownSeconds 25 + 5 s for 1 sidecar")
        );
    }

    #[test]
    fn enough_grace_changes_nothing() {
        let spec = json!({"terminationGracePeriodSeconds": 30, "containers": [sleeping("app", 20), {"name": "linkerd-proxy"}]});
        assert_eq!(grace(spec, json!({})).0, None);
        // No native sidecars: `needed` does not apply.
        let spec = json!({"terminationGracePeriodSeconds": 5, "containers": [sleeping("app", 20)]});
        assert_eq!(grace(spec, json!({})).0, None);
    }

    #[test]
    fn legacy_sidecars_left_by_warn_count_as_main_containers() {
        let spec = json!({"terminationGracePeriodSeconds": 5, "containers": [{"name": "app"}, sleeping("consul-dataplane", 40)],
            "initContainers": [{"name": "vault-agent", "restartPolicy": "Always"}]});
        let (planned, _) = grace(spec, json!({"legacySidecars": "warn"}));
        assert_eq!(planned, Some(45));
    }

    #[test]
    fn bounds_apply_to_every_pod() {
        let spec = json!({"terminationGracePeriodSeconds": 10, "containers": [{"name": "app"}]});
        let (planned, findings) = grace(
            spec.clone(),
            json!({"terminationGracePeriod": {"minSeconds": 20}}),
        );
        assert_eq!(planned, Some(20));
        assert_eq!(
            findings.warnings(),
            ["raised terminationGracePeriodSeconds 10 -> 20: terminationGracePeriod.minSeconds 20"]
        );
        let spec = json!({"containers": [{"name": "app"}]});
        let (planned, findings) =
            grace(spec, json!({"terminationGracePeriod": {"maxSeconds": 20}}));
        assert_eq!(planned, Some(20));
        assert_eq!(
            findings.warnings(),
            [
                "lowered terminationGracePeriodSeconds unset (30) -> 20: terminationGracePeriod.maxSeconds 20"
            ]
        );
    }

    #[test]
    fn reject_mode_explains_the_arithmetic() {
        let spec = json!({"terminationGracePeriodSeconds": 25, "containers": [sleeping("orders", 20), {"name": "consul-dataplane"}, {"name": "daprd"}]});
        let (planned, findings) = grace(
            spec,
            json!({"terminationGracePeriod": {"onViolation": "reject"}}),
        );
        assert_eq!(planned, None);
        assert_eq!(
            findings.violations,
            [
                "spec.terminationGracePeriodSeconds is 25 but must be at least 30 (orders preStop 20 s + 5 s for each of 2 sidecars); set it to 30"
            ]
        );
        let spec = json!({"terminationGracePeriodSeconds": 90, "containers": [{"name": "app"}]});
        let (_, findings) = grace(
            spec,
            json!({"terminationGracePeriod": {"onViolation": "reject", "maxSeconds": 60}}),
        );
        assert_eq!(
            findings.violations,
            [
                "spec.terminationGracePeriodSeconds is 90 but must be at most 60 (terminationGracePeriod.maxSeconds 60); set it to 60"
            ]
        );
    }

    #[test]
    fn a_budget_above_the_maximum_is_rejected_not_adjusted() {
        let spec = json!({"terminationGracePeriodSeconds": 60, "containers": [sleeping("app", 58), {"name": "consul-dataplane"}]});
        let (planned, findings) =
            grace(spec, json!({"terminationGracePeriod": {"maxSeconds": 60}}));
        assert_eq!(planned, None);
        assert!(findings.violations[0].contains("needs 63 s to shut down (app preStop 58 s + 5 s for 1 sidecar), above terminationGracePeriod.maxSeconds 60"));
    }

    #[test]
    fn a_budget_kubernetes_cannot_store_is_rejected() {
        let spec = json!({"containers": [{"name": "app"}, {"name": "consul-dataplane"}, {"name": "linkerd-proxy"}]});
        let settings = json!({"terminationGracePeriod": {"sidecarShutdownSeconds": i64::MAX}});
        let (planned, findings) = grace(spec, settings);
        assert_eq!(planned, None);
        assert!(findings.violations[0].contains("more than Kubernetes can store"));
    }

    #[test]
    fn a_sleep_longer_than_the_new_grace_period_is_rejected() {
        let spec = json!({"containers": [{"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": 120}}}}, {"name": "linkerd-proxy"}]});
        let (planned, findings) =
            grace(spec, json!({"terminationGracePeriod": {"maxSeconds": 60}}));
        assert_eq!(planned, None);
        assert_eq!(findings.violations.len(), 1);
        let spec = json!({"terminationGracePeriodSeconds": 90, "containers": [{"name": "app",
            "lifecycle": {"postStart": {"sleep": {"seconds": 75}}}}]});
        let (planned, findings) =
            grace(spec, json!({"terminationGracePeriod": {"maxSeconds": 60}}));
        assert_eq!(planned, None);
        assert_eq!(
            findings.violations,
            [
                "spec.containers[0] (app) postStart sleep.seconds 75 is above the 60 s the policy would set \
              spec.terminationGracePeriodSeconds to (terminationGracePeriod.maxSeconds 60); lower the sleep"
            ]
        );
    }

    #[test]
    fn an_invalid_object_whose_grace_is_kept_is_left_to_the_api_server() {
        let spec = json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "app",
            "lifecycle": {"postStart": {"sleep": {"seconds": 75}}}}]});
        let (planned, findings) = grace(spec, json!({}));
        assert_eq!((planned, findings.violations.len()), (None, 0));
    }
}
