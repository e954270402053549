//! The whole native evaluation, `policy::validate` on the waPC payload bytes,
//! beside its cost floor on the same bytes: what any policy that returns the
//! object must pay at least, whatever its rules.
//!
//! The floor parses the payload into a `serde_json::Value` and serializes the
//! response the policy gives, with the SDK's `ValidationResponse`: with the
//! whole object as `mutated_object` when the policy mutates, bare
//! `{"accepted": true, ...}` when it accepts.
//!
//!     cargo bench --bench evaluate
//!
//! Criterion reports each fixture's `evaluate` and `floor`; a summary table
//! with the ratios, measured again in the same process by alternating
//! batches of both, is printed at the end.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use kubewarden_policy_sdk::response::ValidationResponse;
use serde_json::Value;
use sidecar_lifecycle_policy::policy;
use support::{Fixture, Outcome, ROUNDS, Shape, benchmarking, compare, consume, fixtures, human};

/// The floor: parse the payload, serialize the response. The object is moved
/// out of the parsed request, not cloned.
fn floor(payload: &[u8], outcome: Outcome) -> Vec<u8> {
    let mut parsed: Value = serde_json::from_slice(payload).expect("the payload is JSON");
    let mutated_object = match outcome {
        Outcome::Mutate => parsed.pointer_mut("/request/object").map(Value::take),
        Outcome::Accept => None,
    };
    serde_json::to_vec(&ValidationResponse {
        accepted: true,
        message: None,
        code: None,
        mutated_object,
        audit_annotations: None,
        warnings: None,
    })
    .expect("the response serializes")
}

fn bench_fixture(c: &mut Criterion, fixture: &Fixture) {
    fixture.check(&policy::validate(&fixture.payload));
    Outcome::of_response(&floor(&fixture.payload, fixture.outcome));

    let mut group = c.benchmark_group(&fixture.name);
    group.throughput(Throughput::Bytes(fixture.payload.len() as u64));
    if fixture.containers > 2_000 {
        // Tens of milliseconds a call: ten flat samples are plenty.
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
    }
    group.bench_function(BenchmarkId::from_parameter("evaluate"), |b| {
        b.iter(|| policy::validate(&fixture.payload))
    });
    group.bench_function(BenchmarkId::from_parameter("floor"), |b| {
        b.iter(|| floor(&fixture.payload, fixture.outcome))
    });
    group.finish();
}

/// Evaluation and floor of one fixture, per call, in nanoseconds.
fn measure(fixture: &Fixture) -> (f64, f64) {
    let times = compare(&mut [
        &mut || consume(policy::validate(&fixture.payload)),
        &mut || consume(floor(&fixture.payload, fixture.outcome)),
    ]);
    (times[0], times[1])
}

fn summary(fixtures: &[Fixture]) {
    println!();
    println!("Summary: per call, median of {ROUNDS} alternating batches (this run)");
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>12} {:>12} {:>6} {:>12}",
        "fixture", "path", "payload", "containers", "evaluation", "floor", "ratio", "per container"
    );
    let mut previous: Option<(usize, f64)> = None;
    for fixture in fixtures {
        let (evaluation, floor) = measure(fixture);
        let per_container = if fixture.generated.is_some() {
            human(evaluation / fixture.containers as f64)
        } else {
            String::from("-")
        };
        println!(
            "{:<28} {:>6} {:>6.0} KiB {:>9} {:>12} {:>12} {:>5.2}x {:>12}",
            fixture.name,
            fixture.outcome.label(),
            fixture.kib(),
            fixture.containers,
            human(evaluation),
            human(floor),
            evaluation / floor,
            per_container,
        );
        if fixture.generated == Some(Shape::Realistic) {
            if let Some((containers, time)) = previous {
                println!(
                    "{:<28} x{:.0} containers -> x{:.1} time",
                    "",
                    fixture.containers as f64 / containers as f64,
                    evaluation / time
                );
            }
            previous = Some((fixture.containers, evaluation));
        }
    }
}

fn main() {
    let fixtures = fixtures(usize::MAX);
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    for fixture in &fixtures {
        bench_fixture(&mut criterion, fixture);
    }
    criterion.final_summary();
    if benchmarking() {
        summary(&fixtures);
    }
}
