//! Helpers shared by the integration tests: JSON to tensors, and building distributions whose
//! parameters are constants or inputs of a tape.

#![allow(dead_code)]

use bdl_autodiff::{Tape, Tensor, Var};
use bdl_dist::{Distribution, Family};
use serde_json::Value;

/// A number from the reference file, where non-finite numbers are the strings "inf", "-inf" and
/// "nan".
pub fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        _ => f64::NAN,
    }
}

/// A tensor from a number or nested lists of numbers.
pub fn tensor(value: &Value) -> Tensor {
    fn walk(value: &Value, depth: usize, shape: &mut Vec<usize>, data: &mut Vec<f64>) {
        match value {
            Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len());
                }
                for item in items {
                    walk(item, depth + 1, shape, data);
                }
            }
            other => data.push(number(other)),
        }
    }
    let mut shape = Vec::new();
    let mut data = Vec::new();
    walk(value, 0, &mut shape, &mut data);
    Tensor::from_shape(&shape, data).expect("a rectangular array")
}

/// A distribution of `family` with the given parameters recorded as constants.
pub fn with_constants(tape: &mut Tape, family: &str, params: &[(&str, Tensor)]) -> Distribution {
    let family = Family::from_name(family).expect("a known family");
    Distribution::with_constants(tape, family, params).expect("valid parameters")
}

/// Parameters given as inputs, in the order given; returns the distribution and the vars.
pub fn with_inputs(
    tape: &mut Tape,
    family: &str,
    params: &[(&str, Tensor)],
) -> (Distribution, Vec<Var>) {
    let vars: Vec<(&str, Var)> = params
        .iter()
        .map(|(name, value)| (*name, tape.input(value.clone())))
        .collect();
    let distribution = Distribution::from_call(tape, family, &vars).expect("valid parameters");
    (distribution, vars.iter().map(|(_, var)| *var).collect())
}

/// Whether `actual` agrees with `expected` to a relative 1e-8 (absolute below magnitude 1),
/// with infinities required to match exactly.
pub fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    if expected.is_infinite() || expected.is_nan() {
        return actual == expected || (actual.is_nan() && expected.is_nan());
    }
    (actual - expected).abs() <= tolerance * expected.abs().max(1.0)
}
