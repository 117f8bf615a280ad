//! Posterior-predictive forward passes, CPU (f64, rayon over draws) against GPU (f32, wgpu):
//! the sine network (1-100-1 ReLU) with 1000 draws × 300 inputs and the iris network (4-100-3
//! ReLU, softmax) with 1000 draws × 150 inputs, from prior draws of every weight; then the sine
//! network with one draw and one input (the fixed cost of a call) and with 10,000 draws.
//!
//! `cargo bench -p bdl-gpu` measures the CPU alone; `cargo bench -p bdl-gpu --features gpu`
//! adds the GPU when an adapter is found (software adapters are not used) and otherwise says why.
#![allow(clippy::print_stderr)] // The bench reports the chosen device and its set-up time.
#![allow(missing_docs)] // criterion's macros generate undocumented items.

#[path = "../tests/common/mod.rs"]
mod common;

use bdl_gpu::{Activation, Backend, Mlp};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn bench_network(
    criterion: &mut Criterion,
    backends: &[Backend],
    name: &str,
    mlp: &Mlp,
    n_draws: usize,
    n_inputs: usize,
) {
    let draws = common::draws(mlp, n_draws, 1);
    let inputs = common::inputs(mlp, n_inputs, 2);
    let mut group = criterion.benchmark_group(format!("{name} {n_draws}x{n_inputs}"));
    group.sample_size(if n_draws >= 10_000 { 10 } else { 20 });
    group.measurement_time(Duration::from_secs(5));
    for backend in backends {
        let label = if backend.is_gpu() { "gpu" } else { "cpu" };
        group.bench_function(label, |bencher| {
            bencher.iter(|| {
                backend
                    .forward_batch(mlp, black_box(&draws), black_box(&inputs))
                    .unwrap_or_else(|error| panic!("{error}"))
            })
        });
    }
    group.finish();
}

fn forward(criterion: &mut Criterion) {
    let started = Instant::now();
    let chosen = Backend::new();
    let set_up = started.elapsed();
    let mut backends = vec![Backend::cpu()];
    if chosen.is_gpu() {
        eprintln!("gpu: {} (set up in {set_up:.2?})", chosen.backend_name());
        // The first call of a backend allocates its buffers; later calls reuse them.
        let mlp = common::sine();
        let draws = common::draws(&mlp, 1000, 1);
        let inputs = common::inputs(&mlp, 300, 2);
        for call in ["first", "second"] {
            let started = Instant::now();
            chosen
                .forward_batch(&mlp, &draws, &inputs)
                .unwrap_or_else(|error| panic!("{error}"));
            eprintln!("gpu: {call} call, sine 1000x300: {:.2?}", started.elapsed());
        }
        backends.push(chosen);
    } else {
        eprintln!(
            "no GPU benchmark: {}",
            chosen.fallback_reason().unwrap_or("the CPU was asked for")
        );
    }
    eprintln!("cpu: {} rayon threads", rayon::current_num_threads());
    bench_network(
        criterion,
        &backends,
        "sine 1-100-1",
        &common::sine(),
        1000,
        300,
    );
    bench_network(
        criterion,
        &backends,
        "iris 4-100-3",
        &common::iris(Activation::Softmax),
        1000,
        150,
    );
    // The fixed cost of one call (upload, launches, readback), and a batch ten times larger,
    // which the GPU path cuts into chunks of its 256 MiB buffer budget.
    bench_network(criterion, &backends, "sine 1-100-1", &common::sine(), 1, 1);
    bench_network(
        criterion,
        &backends,
        "sine 1-100-1",
        &common::sine(),
        10_000,
        300,
    );
}

criterion_group!(benches, forward);
criterion_main!(benches);
