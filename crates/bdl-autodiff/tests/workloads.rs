//! The benchmark's log densities against JAX: the value and the gradient's norm at the fixed
//! parameter pattern, as printed by `benches/jax_gradients.py` (an independent implementation of
//! the same densities in `jax.grad`). This ties the benchmark figures to correct gradients.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use bdl_autodiff::Tape;
use workloads::{eight_schools, iris_network, parameters, sine_network, Model};

/// Records the model at the parameter pattern and returns (log density, ‖gradient‖).
fn value_and_gradient_norm(model: &dyn Model) -> (f64, f64) {
    let mut tape = Tape::new();
    let (output, params) = model
        .record(&mut tape, &parameters(model.dimension()))
        .unwrap();
    tape.backward(output).unwrap();
    let norm = tape.grad(params).iter().map(|g| g * g).sum::<f64>().sqrt();
    (tape.value(output).item().unwrap(), norm)
}

/// Agreement to a relative 1e-12: both sides sum the same terms in different orders.
fn assert_matches_jax(model: &dyn Model, value: f64, gradient_norm: f64) {
    let (ours, our_norm) = value_and_gradient_norm(model);
    assert!(
        (ours - value).abs() <= 1e-12 * value.abs(),
        "{ours} vs JAX {value}"
    );
    assert!(
        (our_norm - gradient_norm).abs() <= 1e-12 * gradient_norm,
        "{our_norm} vs JAX {gradient_norm}"
    );
}

#[test]
fn eight_schools_matches_jax() {
    assert_matches_jax(&eight_schools(), -4.304283312598905, 1.4325532556123224);
}

#[test]
fn sine_bnn_matches_jax() {
    assert_matches_jax(&sine_network(), -8215.85015522274, 17768.90936909186);
}

#[test]
fn iris_bnn_matches_jax() {
    assert_matches_jax(&iris_network(), -182.68383697096021, 581.0143697748929);
}
