//! The pure core's front door: request bytes in, response bytes out. It runs
//! the rules in the order of the spec and knows nothing of waPC.

use serde::Deserialize;
use serde_json::Value;

use crate::admission::{self, AdmissionRequest, Operation, Workload};
use crate::plan::{Changes, Findings};
use crate::pod::{Malformed, PodView};
use crate::response::{Verdict, settings_verdict};
use crate::settings::{LegacySidecars, Settings};
use crate::{convert, grace, hygiene, native_injection, startup, typing};

/// What hosts send to `validate`.
#[derive(Deserialize)]
struct ValidationPayload {
    request: AdmissionRequest,
    #[serde(default)]
    settings: Value,
}

/// The waPC `validate` call. Never fails: a payload it cannot read is
/// rejected with a message saying why.
pub fn validate(payload: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<ValidationPayload>(payload) {
        Ok(payload) => evaluate(payload.request, &payload.settings),
        Err(error) => Verdict::rejected(format!(
            "sidecar-lifecycle-policy cannot read the admission request: {error}"
        )),
    }
    .render()
}

/// The waPC `validate_settings` call: always `{"valid": ...}`.
pub fn validate_settings(payload: &[u8]) -> Vec<u8> {
    let result = serde_json::from_slice::<Value>(payload)
        .map_err(|error| format!("settings are not valid JSON: {error}"))
        .and_then(|settings| {
            Settings::from_value(&settings)
                .map(drop)
                .map_err(|error| error.to_string())
        });
    settings_verdict(result)
}

/// Evaluates one admission request under the given settings.
pub fn evaluate(mut request: AdmissionRequest, settings: &Value) -> Verdict {
    let settings = match Settings::from_value(settings) {
        Ok(settings) => settings,
        Err(error) => return Verdict::rejected(format!("invalid settings: {error}")),
    };
    let (workload, operation) = match admission::applicable(&request) {
        Ok(evaluated) => evaluated,
        Err(_skip) => return Verdict::untouched(),
    };
    // A Job's or Pod's re-applied sidecars are only folded back, in
    // `convert` mode; the API server then judges the update as any other.
    if operation == Operation::ImmutableUpdate
        && settings.legacy_sidecars != LegacySidecars::Convert
    {
        return Verdict::untouched();
    }
    evaluate_object(&mut request.object, workload, operation, &settings)
}

/// Runs the rules of SPEC §3-§8 on the object, in the order of the spec.
fn evaluate_object(
    object: &mut Value,
    workload: Workload,
    operation: Operation,
    settings: &Settings,
) -> Verdict {
    if !object.is_object() {
        return Verdict::rejected("object: must be a JSON object");
    }
    if let Some(kind) = object
        .get("kind")
        .filter(|kind| kind.as_str() != Some(workload.kind))
    {
        return Verdict::rejected(format!(
            "kind: the object is a {kind} but the request is for a {}",
            workload.kind
        ));
    }

    let malformed = |problems: Vec<Malformed>| Verdict::Rejected {
        problems: problems.iter().map(ToString::to_string).collect(),
        warnings: Vec::new(),
    };
    let view = match PodView::read(object, workload) {
        Ok(view) => view,
        Err(problems) => return malformed(problems),
    };
    let mut findings = Findings::default();
    let typing = typing::classify(&view, settings, &mut findings);
    let planned = match convert::plan(&view, operation, &typing, settings, &mut findings) {
        Ok(planned) => planned,
        Err(problems) => return malformed(problems),
    };
    let layout = &planned.layout;
    let startup_probes = startup::plan(&view, layout, settings, &mut findings);
    let grace_period = grace::plan(&view, layout, settings, &mut findings);
    hygiene::check(layout, &mut findings);
    let mut annotations = planned.records;
    annotations.extend(native_injection::plan(&view, workload, operation, settings));
    let changes = Changes {
        conversion: planned.conversion,
        startup_probes,
        grace_period,
        annotations,
    };

    if !findings.violations.is_empty() {
        let problems = std::mem::take(&mut findings.violations);
        return Verdict::Rejected {
            problems,
            warnings: findings.into_warnings(true),
        };
    }
    let warnings = findings.into_warnings(false);
    if changes.is_empty() {
        return Verdict::Accepted { warnings };
    }
    let mut mutated = object.take();
    changes.apply(&mut mutated, workload.pod_spec);
    Verdict::Mutated {
        object: mutated,
        warnings,
    }
}
