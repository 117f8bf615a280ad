//! Microseconds per gradient of three reference log densities (see `workloads/mod.rs`), on a fresh
//! tape per evaluation and by replaying one recording, plus the matrix products of the two
//! networks alone.
//!
//! The same gradients in JAX are measured by `jax_gradients.py` next to this file; run both back
//! to back (see docs/performance.md).
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

mod workloads;

use bdl_autodiff::gemm::{gemm, MatrixRef};
use bdl_autodiff::Tape;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use workloads::{
    eight_schools, iris_network, parameters, sine_network, Model, CLASSES, FEATURES, HIDDEN,
};

/// Benchmarks one model in both modes.
fn bench_model(criterion: &mut Criterion, name: &str, model: &dyn Model) {
    let z = parameters(model.dimension());
    let mut group = criterion.benchmark_group(name);
    group.bench_function("fresh_tape", |bencher| {
        let mut tape = Tape::new();
        bencher.iter(|| {
            tape.clear();
            let (output, params) = model.record(&mut tape, black_box(&z)).unwrap();
            tape.backward(output).unwrap();
            black_box(tape.grad(params)[0])
        });
    });
    group.bench_function("replay", |bencher| {
        let mut tape = Tape::new();
        let (output, params) = model.record(&mut tape, &z).unwrap();
        bencher.iter(|| {
            tape.set_value(params, black_box(&z)).unwrap();
            tape.replay().unwrap();
            tape.backward(output).unwrap();
            black_box(tape.grad(params)[0])
        });
    });
    group.finish();
}

/// The five products a network's gradient computes (two forward, three backward), with the same
/// operand layouts the tape uses: X·W1, H·W2, Hᵀ·Ḡ, Ḡ·W2ᵀ and Xᵀ·H̄.
fn bench_products(criterion: &mut Criterion, name: &str, n: usize, inputs: usize, outputs: usize) {
    let x = parameters(n * inputs);
    let w1 = parameters(inputs * HIDDEN);
    let w2 = parameters(HIDDEN * outputs);
    let hidden = parameters(n * HIDDEN);
    let output_grad = parameters(n * outputs);
    let mut pre_activation = vec![0.0; n * HIDDEN];
    let mut output = vec![0.0; n * outputs];
    let mut w2_grad = vec![0.0; HIDDEN * outputs];
    let mut hidden_grad = vec![0.0; n * HIDDEN];
    let mut w1_grad = vec![0.0; inputs * HIDDEN];
    let mut scratch = Vec::new();
    criterion.bench_function(&format!("{name}/matmuls_only"), |bencher| {
        bencher.iter(|| {
            let x_matrix = MatrixRef::row_major(&x, n, inputs);
            let hidden_matrix = MatrixRef::row_major(&hidden, n, HIDDEN);
            let grad_matrix = MatrixRef::row_major(&output_grad, n, outputs);
            let w1_matrix = MatrixRef::row_major(&w1, inputs, HIDDEN);
            let w2_matrix = MatrixRef::row_major(&w2, HIDDEN, outputs);
            gemm(
                1.0,
                x_matrix,
                w1_matrix,
                0.0,
                &mut pre_activation,
                &mut scratch,
            );
            gemm(
                1.0,
                hidden_matrix,
                w2_matrix,
                0.0,
                &mut output,
                &mut scratch,
            );
            gemm(
                1.0,
                hidden_matrix.t(),
                grad_matrix,
                1.0,
                &mut w2_grad,
                &mut scratch,
            );
            gemm(
                1.0,
                grad_matrix,
                w2_matrix.t(),
                1.0,
                &mut hidden_grad,
                &mut scratch,
            );
            let hidden_grad_matrix = MatrixRef::row_major(&hidden_grad, n, HIDDEN);
            gemm(
                1.0,
                x_matrix.t(),
                hidden_grad_matrix,
                1.0,
                &mut w1_grad,
                &mut scratch,
            );
            black_box((pre_activation[0], output[0], w1_grad[0], w2_grad[0]))
        });
    });
}

fn gradients(criterion: &mut Criterion) {
    bench_model(criterion, "eight_schools", &eight_schools());
    bench_model(criterion, "sine_bnn", &sine_network());
    bench_products(criterion, "sine_bnn", 500, 1, 1);
    bench_model(criterion, "iris_bnn", &iris_network());
    bench_products(criterion, "iris_bnn", 112, FEATURES, CLASSES);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60).warm_up_time(std::time::Duration::from_secs(2));
    targets = gradients
}
criterion_main!(benches);
