//! Evaluates AdmissionRequests through the compiled policy in the waPC host,
//! as kwctl and policy-server do, and prints each verdict, a short summary of
//! what a mutation changes (containers moved and the resulting order, probes
//! added, grace period old -> new, annotations), the warnings and the JSON
//! Patch a cluster would receive.
//!
//!     cargo run --example evaluate -- [--settings '<json>'] test_data/<scenario>.json...
//!
//! The module is `POLICY_WASM` when set (make quickstart sets it to
//! policy.wasm), else it is built from this working tree.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/summary.rs"]
mod summary;

use std::process::ExitCode;

use serde_json::{Value, json};

fn main() -> ExitCode {
    let mut settings = json!({});
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--settings" {
            let Some(text) = args.next() else {
                eprintln!("--settings needs a JSON value");
                return ExitCode::FAILURE;
            };
            settings = match serde_json::from_str(&text) {
                Ok(value) => value,
                Err(error) => {
                    eprintln!("--settings is not JSON: {error}");
                    return ExitCode::FAILURE;
                }
            };
        } else {
            files.push(arg);
        }
    }
    if files.is_empty() {
        eprintln!("usage: evaluate [--settings '<json>'] REQUEST.json...");
        return ExitCode::FAILURE;
    }

    let policy = common::Policy::new();
    let settings_answer = policy.validate_settings(&settings);
    if settings_answer["valid"] != Value::Bool(true) {
        eprintln!("invalid settings: {}", settings_answer["message"]);
        return ExitCode::FAILURE;
    }
    for file in &files {
        let request: Value = match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        {
            Ok(request) => request,
            Err(error) => {
                eprintln!("{file}: {error}");
                return ExitCode::FAILURE;
            }
        };
        // A fresh instance per request, as policy-server runs them.
        let response = common::Policy::new().validate(&request, &settings);
        print_verdict(file, &request, &response);
    }
    ExitCode::SUCCESS
}

fn print_verdict(file: &str, request: &Value, response: &Value) {
    let mutated = response
        .get("mutated_object")
        .filter(|object| !object.is_null());
    let verdict = match (response["accepted"].as_bool(), mutated) {
        (Some(true), None) => "ACCEPTED",
        (Some(true), Some(_)) => "MUTATED",
        _ => "REJECTED",
    };
    let operation = request["operation"].as_str().unwrap_or("?");
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or("?");
    println!("== {file}: {operation} {kind}: {verdict}");
    if let Some(mutated) = mutated {
        println!("   changes:");
        for line in summary::summarize(kind, &request["object"], mutated) {
            println!("     {line}");
        }
    }
    if let Some(message) = response.get("message").and_then(Value::as_str) {
        println!("   message: {message}");
    }
    for warning in response["warnings"].as_array().into_iter().flatten() {
        println!("   warning: {}", warning.as_str().unwrap_or_default());
    }
    if let Some(mutated) = mutated {
        let patch = json_patch::diff(&request["object"], mutated);
        println!(
            "   patch (JSONPatch, {} operation{}, one a line):",
            patch.len(),
            if patch.len() == 1 { "" } else { "s" }
        );
        for operation in patch.iter() {
            println!(
                "     {}",
                serde_json::to_string(operation).unwrap_or_default()
            );
        }
    }
}
