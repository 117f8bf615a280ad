//! Shared helpers for the per-op tests: fixed test points, a weighted sum that turns any output
//! into a scalar with a distinct weight per element, and the gradient-and-replay check run at
//! every point.

use bdl_autodiff::check::{self, Settings};
use bdl_autodiff::{Tape, Tensor, TensorError, Var};

/// A tensor of the given shape whose elements are `scale` times a fixed, irregular pattern in
/// [−1, 1] shifted by `offset` (so that no two elements tie and none sits on a kink).
pub fn pattern(shape: &[usize], scale: f64, offset: f64) -> Tensor {
    let count: usize = shape.iter().product();
    let data = (0..count)
        .map(|i| offset + scale * (0.37 + 1.3 * i as f64).sin())
        .collect();
    Tensor::from_shape(shape, data).expect("pattern sizes are consistent")
}

/// Σᵢ wᵢ yᵢ with weights that differ per element, so every output element's gradient is checked.
pub fn weighted_sum(tape: &mut Tape, output: Var) -> Result<Var, TensorError> {
    let shape = tape.shape(output).to_vec();
    let weights = pattern(&shape, 0.5, 1.0);
    let weights = tape.constant(weights);
    let product = tape.mul(output, weights)?;
    Ok(tape.sum(product))
}

/// Checks the gradient of `f` against the six-point stencil at every point, and that replaying
/// the graph recorded at each point at the next point matches recording it there.
pub fn check_gradient_at<F>(mut f: F, points: &[Vec<Tensor>], settings: &Settings)
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, TensorError>,
{
    for point in points {
        if let Err(message) = check::gradient_with(&mut f, point, settings) {
            panic!("gradient check failed at {point:?}: {message}");
        }
    }
    for pair in points.windows(2) {
        if let Err(message) = check::replay_matches(&mut f, &pair[0], &pair[1]) {
            panic!(
                "replay check failed from {:?} to {:?}: {message}",
                pair[0], pair[1]
            );
        }
    }
}

/// `check_gradient_at` with the default relative tolerance of 1e-6.
pub fn check_gradient<F>(f: F, points: &[Vec<Tensor>])
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, TensorError>,
{
    check_gradient_at(f, points, &Settings::default());
}

/// Asserts that two numbers agree to a relative 1e-12 (or absolutely for values near zero).
pub fn assert_close(actual: f64, expected: f64) {
    let allowed = 1e-12 * expected.abs().max(1e-300) + 1e-300;
    assert!(
        (actual - expected).abs() <= allowed || actual.to_bits() == expected.to_bits(),
        "{actual} differs from {expected}"
    );
}

/// Asserts elementwise agreement of a tensor with expected values.
pub fn assert_all_close(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    for (&a, &e) in actual.iter().zip(expected) {
        assert_close(a, e);
    }
}

/// Records `f` once on one input and returns the output value's data and shape.
pub fn forward_value(
    inputs: &[Tensor],
    f: impl FnOnce(&mut Tape, &[Var]) -> Result<Var, TensorError>,
) -> (Vec<f64>, Vec<usize>) {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.input(t.clone())).collect();
    let output = f(&mut tape, &vars).expect("forward evaluation succeeds");
    (
        tape.value(output).data().to_vec(),
        tape.shape(output).to_vec(),
    )
}
