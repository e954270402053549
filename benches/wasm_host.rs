//! The compiled module through the waPC host stack kwctl and policy-server
//! use (`wapc` + `wasmtime-provider`, the harness of tests/common), on the
//! fixtures of the native benchmark:
//!
//! - `warm-call`: one `validate` call on an instance that is already up
//!   (kwctl bench, an instance reused across requests);
//! - `fresh-instance`: instantiate the precompiled module (rehydrate + waPC
//!   init), one `validate` call, drop: what policy-server pays per request;
//! - `instantiate`: rehydrate + waPC init alone (no call).
//!
//!     cargo bench --bench wasm_host
//!
//! The module is the one named by `POLICY_WASM`, else the release build of
//! this working tree (built by the harness on first use). A summary table,
//! with the native evaluation measured alongside, is printed at the end.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Policy;
use criterion::{BenchmarkId, Criterion, Throughput};
use sidecar_lifecycle_policy::policy;
use support::{Fixture, ROUNDS, benchmarking, compare, consume, fixtures, human};

/// The generated pods measured here; 10,000 containers is left to the
/// native benchmark.
const MAX_GENERATED: usize = 1_000;

fn validate(policy: &Policy, payload: &[u8]) -> Vec<u8> {
    policy
        .call("validate", payload)
        .unwrap_or_else(|e| panic!("the validate call failed: {e}"))
}

fn bench_instantiate(c: &mut Criterion) {
    c.bench_function("instantiate", |b| b.iter(Policy::new));
}

fn bench_fixture(c: &mut Criterion, fixture: &Fixture) {
    let warm = Policy::new();
    fixture.check(&validate(&warm, &fixture.payload));

    let mut group = c.benchmark_group(format!("wasm/{}", fixture.name));
    group.throughput(Throughput::Bytes(fixture.payload.len() as u64));
    group.bench_function(BenchmarkId::from_parameter("warm-call"), |b| {
        b.iter(|| validate(&warm, &fixture.payload))
    });
    group.bench_function(BenchmarkId::from_parameter("fresh-instance"), |b| {
        b.iter(|| validate(&Policy::new(), &fixture.payload))
    });
    group.finish();
}

/// Where the harness found or built the module (see tests/common).
fn module_path() -> PathBuf {
    std::env::var_os("POLICY_WASM").map_or_else(
        || {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(
                    || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
                    PathBuf::from,
                )
                .join("wasm-host-tests/wasm32-wasip1/release/sidecar_lifecycle_policy.wasm")
        },
        PathBuf::from,
    )
}

fn summary(fixtures: &[Fixture]) {
    let path = module_path();
    let size = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
    println!();
    println!(
        "Module: {} ({size} bytes, {:.0} KiB)",
        path.display(),
        size as f64 / 1024.0
    );
    let instantiate = compare(&mut [&mut || consume(Policy::new())])[0];
    println!(
        "Instantiate (rehydrate + waPC init): {}",
        human(instantiate)
    );
    println!("Summary: per call, median of {ROUNDS} alternating batches (this run)");
    println!(
        "{:<28} {:>6} {:>12} {:>12} {:>9} {:>15}",
        "fixture", "path", "native", "wasm warm", "wasm/nat", "fresh instance"
    );
    for fixture in fixtures {
        let warm = Policy::new();
        let times = compare(&mut [
            &mut || consume(policy::validate(&fixture.payload)),
            &mut || consume(validate(&warm, &fixture.payload)),
            &mut || consume(validate(&Policy::new(), &fixture.payload)),
        ]);
        println!(
            "{:<28} {:>6} {:>12} {:>12} {:>8.2}x {:>15}",
            fixture.name,
            fixture.outcome.label(),
            human(times[0]),
            human(times[1]),
            times[1] / times[0],
            human(times[2]),
        );
    }
}

fn main() {
    let fixtures = fixtures(MAX_GENERATED);
    // Builds (unless POLICY_WASM is set) and compiles the module before any
    // measurement.
    drop(Policy::new());
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    bench_instantiate(&mut criterion);
    for fixture in &fixtures {
        bench_fixture(&mut criterion, fixture);
    }
    criterion.final_summary();
    if benchmarking() {
        summary(&fixtures);
    }
}
