//! Gradient checking against finite differences, for the tests of this crate and of every crate
//! that builds on it (distributions, the runtime).
//!
//! The derivative of the forward value along each input coordinate is estimated with the
//! six-point central stencil Stan uses,
//!
//! f'(x) ≈ (f(x+3h) − 9 f(x+2h) + 45 f(x+h) − 45 f(x−h) + 9 f(x−2h) − f(x−3h)) / (60 h),
//!
//! whose truncation error is O(h⁶), and compared with the tape's gradient under a relative
//! tolerance. The comparison also allows the rounding error of the stencil itself (machine epsilon
//! times the magnitude of the values it combines, divided by h), so coordinates whose true
//! derivative is zero do not fail on noise.

use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use std::fmt::Display;

/// How finely [`gradient_with`] probes and how closely it compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Largest accepted |autodiff − finite difference| / max(|autodiff|, |finite difference|).
    pub relative_tolerance: f64,
    /// An absolute allowance added to the relative one (the stencil's own rounding error is
    /// always allowed on top).
    pub absolute_tolerance: f64,
    /// The stencil step relative to the coordinate: h = step · max(|x|, 0.01), so that the
    /// stencil stays on the coordinate's side of zero and its truncation error (of order h⁶)
    /// stays far below the tolerance.
    pub step: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            relative_tolerance: 1e-6,
            absolute_tolerance: 0.0,
            step: 1e-4,
        }
    }
}

/// The stencil offsets (in steps) and weights (over 60 h).
const STENCIL: [(f64, f64); 6] = [
    (-3.0, -1.0),
    (-2.0, 9.0),
    (-1.0, -45.0),
    (1.0, 45.0),
    (2.0, -9.0),
    (3.0, 1.0),
];

/// A finite-difference derivative with an estimate of its rounding error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FiniteDifference {
    /// The estimated derivative.
    pub derivative: f64,
    /// Machine epsilon times Σ|weight · f| / (60 h): how far rounding alone can move the
    /// estimate.
    pub rounding_error: f64,
}

/// The six-point central difference of `f` at `x` with step `h`, or the first error `f` returns.
pub fn finite_difference<E>(
    mut f: impl FnMut(f64) -> Result<f64, E>,
    x: f64,
    h: f64,
) -> Result<FiniteDifference, E> {
    let mut total = 0.0;
    let mut magnitude = 0.0;
    for (offset, weight) in STENCIL {
        let value = f(x + offset * h)?;
        total += weight * value;
        magnitude += (weight * value).abs();
    }
    Ok(FiniteDifference {
        derivative: total / (60.0 * h),
        rounding_error: f64::EPSILON * magnitude / (60.0 * h),
    })
}

/// Checks the tape gradient of `f` at `inputs` against finite differences with the default
/// settings and the given relative tolerance. `f` records a computation on the tape from the
/// input variables (one per tensor of `inputs`) and returns a one-element result.
pub fn gradient<F, E>(f: F, inputs: &[Tensor], relative_tolerance: f64) -> Result<(), String>
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, E>,
    E: Display,
{
    let settings = Settings {
        relative_tolerance,
        ..Settings::default()
    };
    gradient_with(f, inputs, &settings)
}

/// Evaluates `f` on a fresh tape at `inputs` and returns the tape and its output.
fn record<F, E>(f: &mut F, inputs: &[Tensor]) -> Result<(Tape, Var, Vec<Var>), String>
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, E>,
    E: Display,
{
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|input| tape.input(input.clone()))
        .collect();
    let output = f(&mut tape, &vars).map_err(|error| format!("evaluation failed: {error}"))?;
    if tape.value(output).len() != 1 {
        return Err(format!(
            "the checked function must return one element, got shape {:?}",
            tape.shape(output)
        ));
    }
    Ok((tape, output, vars))
}

/// The forward value of `f` at `inputs`.
fn evaluate<F, E>(f: &mut F, inputs: &[Tensor]) -> Result<f64, String>
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, E>,
    E: Display,
{
    let (tape, output, _) = record(f, inputs)?;
    Ok(tape.value(output).data()[0])
}

/// Checks the tape gradient of `f` at `inputs` against finite differences; see [`gradient`].
/// Returns a message naming the first disagreeing coordinate.
pub fn gradient_with<F, E>(mut f: F, inputs: &[Tensor], settings: &Settings) -> Result<(), String>
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, E>,
    E: Display,
{
    let (mut tape, output, vars) = record(&mut f, inputs)?;
    tape.backward(output).map_err(|error| error.to_string())?;
    let mut perturbed: Vec<Tensor> = inputs.to_vec();
    for (input_index, (input, var)) in inputs.iter().zip(&vars).enumerate() {
        let automatic = tape.grad(*var);
        for (element, &x) in input.data().iter().enumerate() {
            let h = settings.step * x.abs().max(0.01);
            let estimate = finite_difference(
                |shifted| {
                    perturbed[input_index].data_mut()[element] = shifted;
                    evaluate(&mut f, &perturbed)
                },
                x,
                h,
            )?;
            perturbed[input_index].data_mut()[element] = x;
            let derivative = automatic[element];
            let difference = (derivative - estimate.derivative).abs();
            let allowed = settings.relative_tolerance
                * derivative.abs().max(estimate.derivative.abs())
                + settings.absolute_tolerance
                + 10.0 * estimate.rounding_error;
            // Written so that a NaN on either side fails the check.
            let agrees = difference <= allowed;
            if !agrees {
                return Err(format!(
                    "input {input_index} element {element} at {x}: autodiff {derivative:e}, \
                     finite difference {:e} (difference {difference:e}, allowed {allowed:e})",
                    estimate.derivative
                ));
            }
        }
    }
    Ok(())
}

/// Checks that a graph recorded at `recorded_at` and replayed at `replayed_at` gives bit-identical
/// values and gradients to recording it afresh at `replayed_at`.
pub fn replay_matches<F, E>(
    mut f: F,
    recorded_at: &[Tensor],
    replayed_at: &[Tensor],
) -> Result<(), String>
where
    F: FnMut(&mut Tape, &[Var]) -> Result<Var, E>,
    E: Display,
{
    let (mut fresh, fresh_output, fresh_vars) = record(&mut f, replayed_at)?;
    fresh
        .backward(fresh_output)
        .map_err(|error| error.to_string())?;
    let (mut replayed, replayed_output, replayed_vars) = record(&mut f, recorded_at)?;
    if replayed.len() != fresh.len() {
        return Err("the graph's structure depends on the input values".to_string());
    }
    // A first backward pass leaves stale gradients behind, which replay must not leak into the
    // next pass.
    replayed
        .backward(replayed_output)
        .map_err(|error| error.to_string())?;
    for (var, value) in replayed_vars.iter().zip(replayed_at) {
        replayed
            .set_value(*var, value.data())
            .map_err(|error| error.to_string())?;
    }
    replayed.replay().map_err(|error| error.to_string())?;
    replayed
        .backward(replayed_output)
        .map_err(|error| error.to_string())?;
    for index in 0..fresh.len() {
        let (fresh_value, replayed_value) = (
            fresh.value(Var(index)).data(),
            replayed.value(Var(index)).data(),
        );
        if !bits_equal(fresh_value, replayed_value) {
            return Err(format!(
                "node {index}: replayed value {replayed_value:?} differs from fresh {fresh_value:?}"
            ));
        }
    }
    for (fresh_var, replayed_var) in fresh_vars.iter().zip(&replayed_vars) {
        let (fresh_grad, replayed_grad) = (fresh.grad(*fresh_var), replayed.grad(*replayed_var));
        if !bits_equal(fresh_grad, replayed_grad) {
            return Err(format!(
                "input {}: replayed gradient {replayed_grad:?} differs from fresh {fresh_grad:?}",
                fresh_var.index()
            ));
        }
    }
    Ok(())
}

/// Whether two slices hold the same bits (so NaNs compare equal to themselves).
pub fn bits_equal(left: &[f64], right: &[f64]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .all(|(a, b)| a.to_bits() == b.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stencil_is_exact_for_polynomials_up_to_degree_six() {
        let estimate =
            finite_difference(|x| Ok::<f64, String>(x.powi(6) - 2.0 * x.powi(3)), 1.5, 0.1);
        let derivative = estimate.map(|e| e.derivative).unwrap_or(f64::NAN);
        let exact = 6.0 * 1.5f64.powi(5) - 6.0 * 1.5 * 1.5;
        assert!(
            (derivative - exact).abs() < 1e-10,
            "{derivative} vs {exact}"
        );
    }

    #[test]
    fn checker_rejects_a_wrong_gradient() {
        // d/dx (x · |x|) is 2|x|, but a tape that records x · constant(|x|) claims |x|.
        let wrong = gradient(
            |tape, vars| {
                let magnitude = tape.value(vars[0]).data()[0].abs();
                let constant = tape.scalar(magnitude);
                let product = tape.mul(vars[0], constant)?;
                Ok::<Var, crate::TensorError>(tape.sum(product))
            },
            &[Tensor::scalar(1.5)],
            1e-6,
        );
        assert!(wrong.is_err());
        let right = gradient(
            |tape, vars| {
                let magnitude = tape.abs(vars[0]);
                let product = tape.mul(vars[0], magnitude)?;
                Ok::<Var, crate::TensorError>(tape.sum(product))
            },
            &[Tensor::scalar(1.5)],
            1e-6,
        );
        assert_eq!(right, Ok(()));
    }
}
