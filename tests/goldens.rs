//! Every request of test_data/, with each of its settings, through the
//! compiled module in the waPC host, against the answer recorded beside it:
//!
//! - `<scenario>.json`: the AdmissionRequest;
//! - `<scenario>.settings.json` (optional): a JSON array of settings to
//!   evaluate it with, in order; absent means `[{}]`, the defaults;
//! - `<scenario>.golden.json`: one rendered answer per settings entry.
//!
//! `make goldens` (`UPDATE_GOLDENS=1 cargo test --test goldens`) rewrites the
//! goldens through this same code, so what is checked is what is written.
//! e2e.bats checks the same goldens against the real kwctl.
//! `common::evaluate_request` checks, on every answer, the response shape,
//! that only owned fields changed, that the pod spec parses, and idempotence.

mod common;

use std::{
    fs,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use common::{GOLDEN_SUFFIX, SETTINGS_SUFFIX, is_request_file};
use serde_json::{Map, Value, json};

/// The command that rewrites every golden, named in every failure.
const REGENERATE: &str = "make goldens";

/// Set (to anything) to write the goldens instead of checking them.
const UPDATE_VARIABLE: &str = "UPDATE_GOLDENS";

/// The files of one scenario, found by its request.
struct Scenario {
    /// The request's file name without `.json`.
    name: String,
    request: PathBuf,
    settings: PathBuf,
    golden: PathBuf,
}

fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

/// Path relative to the crate, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every scenario of test_data/ (its directories, such as release/, are not
/// scenarios), and a problem for each settings or golden file whose request
/// does not exist.
fn scenarios(problems: &mut Vec<String>) -> Vec<Scenario> {
    let dir = test_data();
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|file| file.ends_with(".json"))
        .collect();
    files.sort();

    for companion in files.iter().filter(|file| !is_request_file(file)) {
        let name = companion
            .strip_suffix(GOLDEN_SUFFIX)
            .or_else(|| companion.strip_suffix(SETTINGS_SUFFIX))
            .unwrap_or_default();
        if !files.contains(&format!("{name}.json")) {
            problems.push(format!(
                "test_data/{companion}: no request test_data/{name}.json; \
                 add the request or delete this file"
            ));
        }
    }
    files
        .iter()
        .filter(|file| is_request_file(file))
        .map(|file| {
            let name = file.strip_suffix(".json").unwrap_or(file).to_owned();
            Scenario {
                request: dir.join(file),
                settings: dir.join(format!("{name}{SETTINGS_SUFFIX}")),
                golden: dir.join(format!("{name}{GOLDEN_SUFFIX}")),
                name,
            }
        })
        .collect()
}

/// Reads a JSON file.
fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", shown(path)))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", shown(path)))
}

/// The settings a scenario is evaluated with: its settings file, a
/// non-empty array of objects, or the defaults alone.
fn settings_list(scenario: &Scenario) -> Result<Vec<Value>, String> {
    if !scenario.settings.exists() {
        return Ok(vec![json!({})]);
    }
    match read_json(&scenario.settings)? {
        Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_object) => Ok(list),
        _ => Err(format!(
            "{}: must be a non-empty JSON array of settings objects",
            shown(&scenario.settings)
        )),
    }
}

/// The policy's answer as a golden records it: the settings, the verdict,
/// the message, code and audit annotations when the response has them, the
/// warnings (`[]` when none), and the whole mutated object when there is one.
fn render(settings: &Value, response: &Value) -> Value {
    let present = |key: &str| response.get(key).filter(|value| !value.is_null()).cloned();
    let mut answer = Map::new();
    answer.insert("settings".to_owned(), settings.clone());
    answer.insert("accepted".to_owned(), response["accepted"].clone());
    for key in ["message", "code", "audit_annotations"] {
        if let Some(value) = present(key) {
            answer.insert(key.to_owned(), value);
        }
    }
    answer.insert(
        "warnings".to_owned(),
        present("warnings").unwrap_or_else(|| json!([])),
    );
    if let Some(mutated) = present("mutated_object") {
        answer.insert("mutated_object".to_owned(), mutated);
    }
    Value::Object(answer)
}

/// The text of a panic, as the harness's checks word it.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Evaluates a scenario with each of its settings; a failed check of the
/// harness becomes a problem, so that one run reports every scenario.
fn answers(
    scenario: &Scenario,
    settings: &[Value],
    problems: &mut Vec<String>,
) -> Option<Vec<Value>> {
    let request = match read_json(&scenario.request) {
        Ok(request) => request,
        Err(problem) => {
            problems.push(problem);
            return None;
        }
    };
    let mut answers = Vec::new();
    for (index, settings) in settings.iter().enumerate() {
        let evaluated = panic::catch_unwind(AssertUnwindSafe(|| {
            common::evaluate_request(request.clone(), settings.clone())
        }));
        match evaluated {
            Ok(outcome) => answers.push(render(settings, &outcome.response)),
            Err(payload) => problems.push(format!(
                "{} with settings [{index}] {settings}: {}",
                scenario.name,
                panic_text(payload.as_ref())
            )),
        }
    }
    (answers.len() == settings.len()).then_some(answers)
}

/// Pretty JSON, 2-space indent, with a trailing newline, so that a diff of a
/// golden shows a moved container line by line.
fn golden_text(answers: &[Value]) -> String {
    let mut text = serde_json::to_string_pretty(answers).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// Writes the golden when its text changed; says whether it did.
fn write_golden(scenario: &Scenario, answers: &[Value]) -> Result<bool, String> {
    let text = golden_text(answers);
    if fs::read_to_string(&scenario.golden).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    fs::write(&scenario.golden, text)
        .map(|()| true)
        .map_err(|e| format!("cannot write {}: {e}", shown(&scenario.golden)))
}

/// Longest line of a difference shown; the rest is in `git diff` after
/// `make goldens`.
const SHOWN_DIFFERENCE: usize = 400;

/// What differs between the golden and the answers, one problem per
/// settings entry.
fn compare_with_golden(
    scenario: &Scenario,
    settings: &[Value],
    answers: &[Value],
    problems: &mut Vec<String>,
) {
    let golden = shown(&scenario.golden);
    if !scenario.golden.exists() {
        problems.push(format!("{golden} is missing: run `{REGENERATE}`"));
        return;
    }
    let recorded = match read_json(&scenario.golden) {
        Ok(Value::Array(recorded)) => recorded,
        Ok(_) => {
            problems.push(format!("{golden} is not a JSON array: run `{REGENERATE}`"));
            return;
        }
        Err(problem) => {
            problems.push(format!("{problem}: run `{REGENERATE}`"));
            return;
        }
    };
    let recorded_settings: Vec<&Value> =
        recorded.iter().map(|answer| &answer["settings"]).collect();
    if recorded_settings != settings.iter().collect::<Vec<_>>() {
        problems.push(format!(
            "{golden} records the settings {}, not those of {} ({}): run `{REGENERATE}`",
            Value::Array(recorded_settings.into_iter().cloned().collect()),
            shown(&scenario.settings),
            Value::Array(settings.to_vec())
        ));
        return;
    }
    for (index, (expected, got)) in recorded.iter().zip(answers).enumerate() {
        if expected == got {
            continue;
        }
        let lines: String = common::differences(expected, got)
            .iter()
            .map(|difference| {
                let mut line: String = difference.chars().take(SHOWN_DIFFERENCE).collect();
                if line.len() < difference.len() {
                    line.push_str(" ...");
                }
                format!("    {line}\n")
            })
            .collect();
        problems.push(format!(
            "{} with settings [{index}] {}: the answer differs from {golden} \
             (golden -> now):\n{lines}",
            scenario.name, expected["settings"]
        ));
    }
}

#[test]
fn every_request_answers_as_its_golden() {
    let update = std::env::var_os(UPDATE_VARIABLE).is_some();
    let mut problems = Vec::new();
    let mut cases = 0;
    let mut written = Vec::new();
    let scenarios = scenarios(&mut problems);
    for scenario in &scenarios {
        let settings = match settings_list(scenario) {
            Ok(settings) => settings,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        cases += settings.len();
        let Some(answers) = answers(scenario, &settings, &mut problems) else {
            continue;
        };
        if update {
            match write_golden(scenario, &answers) {
                Ok(true) => written.push(shown(&scenario.golden)),
                Ok(false) => {}
                Err(problem) => problems.push(problem),
            }
        } else {
            compare_with_golden(scenario, &settings, &answers, &mut problems);
        }
    }
    if update {
        println!("{} of {} goldens rewritten", written.len(), scenarios.len());
        for golden in &written {
            println!("  {golden}");
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems in the {cases} cases of {} scenarios:\n\n{}\n\
         When the change of behaviour is intended, run `{REGENERATE}` and review `git diff test_data/`.",
        problems.len(),
        scenarios.len(),
        problems.join("\n")
    );
}
