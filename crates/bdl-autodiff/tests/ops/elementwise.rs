//! Elementwise ops: broadcasting arithmetic, scalar forms, unary functions, comparisons, select
//! and clamp.

use crate::common::{
    assert_all_close, check_gradient, check_gradient_at, forward_value, pattern, weighted_sum,
};
use bdl_autodiff::check::Settings;
use bdl_autodiff::{Tape, Tensor, TensorError, Var};

/// Shape pairs covering every broadcasting path: equal shapes, scalar on either side, a trailing
/// repeat on either side (bias add), and a general two-sided broadcast.
const SHAPE_PAIRS: [(&[usize], &[usize]); 7] = [
    (&[2, 3], &[2, 3]),
    (&[], &[2, 3]),
    (&[2, 3], &[]),
    (&[2, 3], &[3]),
    (&[1, 3], &[2, 3]),
    (&[2, 1], &[1, 3]),
    (&[2, 1, 3], &[4, 1]),
];

/// Broadcasts two tensors by hand (the reference for the kernels) and applies `f`.
fn reference_binary(left: &Tensor, right: &Tensor, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let rank = left.rank().max(right.rank());
    let pad = |shape: &[usize]| {
        let mut padded = vec![1; rank - shape.len()];
        padded.extend_from_slice(shape);
        padded
    };
    let (ls, rs) = (pad(left.shape()), pad(right.shape()));
    let out: Vec<usize> = ls.iter().zip(&rs).map(|(&a, &b)| a.max(b)).collect();
    let count: usize = out.iter().product();
    (0..count)
        .map(|flat| {
            let mut remainder = flat;
            let (mut li, mut ri, mut lstride, mut rstride) = (0, 0, 1, 1);
            for axis in (0..rank).rev() {
                let position = remainder % out[axis];
                remainder /= out[axis];
                if ls[axis] != 1 {
                    li += position * lstride;
                }
                if rs[axis] != 1 {
                    ri += position * rstride;
                }
                lstride *= ls[axis];
                rstride *= rs[axis];
            }
            f(left.data()[li], right.data()[ri])
        })
        .collect()
}

/// Checks a broadcasting binary op's value and gradient for every shape pair, with operands from
/// `left_at(scale)` and `right_at(scale)` patterns at small, unit and large scales.
fn check_binary(
    op: fn(&mut Tape, Var, Var) -> Result<Var, TensorError>,
    reference: fn(f64, f64) -> f64,
    operands: &[(f64, f64, f64, f64)],
) {
    for (left_shape, right_shape) in SHAPE_PAIRS {
        let points: Vec<Vec<Tensor>> = operands
            .iter()
            .map(|&(left_scale, left_offset, right_scale, right_offset)| {
                vec![
                    pattern(left_shape, left_scale, left_offset),
                    pattern(right_shape, right_scale, right_offset),
                ]
            })
            .collect();
        for point in &points {
            let (value, _) = forward_value(point, |tape, v| op(tape, v[0], v[1]));
            assert_all_close(&value, &reference_binary(&point[0], &point[1], reference));
        }
        check_gradient(
            |tape, v| {
                let out = op(tape, v[0], v[1])?;
                weighted_sum(tape, out)
            },
            &points,
        );
    }
}

/// Checks a unary op's value against `reference` and its gradient at inputs `scale · pattern +
/// offset` for each `(scale, offset)`.
fn check_unary(
    op: fn(&mut Tape, Var) -> Var,
    reference: fn(f64) -> f64,
    inputs: &[(f64, f64)],
    settings: &Settings,
) {
    let points: Vec<Vec<Tensor>> = inputs
        .iter()
        .map(|&(scale, offset)| vec![pattern(&[2, 3], scale, offset)])
        .collect();
    for point in &points {
        let (value, shape) = forward_value(point, |tape, v| Ok(op(tape, v[0])));
        assert_eq!(shape, vec![2, 3]);
        let expected: Vec<f64> = point[0].data().iter().map(|&x| reference(x)).collect();
        assert_all_close(&value, &expected);
    }
    check_gradient_at(
        |tape, v| {
            let out = op(tape, v[0]);
            weighted_sum(tape, out)
        },
        &points,
        settings,
    );
}

/// Small, unit and large magnitudes for ops defined on the whole line.
const WHOLE_LINE: [(f64, f64); 4] = [(1e-3, 0.0), (1.0, 0.2), (3.0, -1.0), (1e3, 0.0)];
/// Small, unit and large magnitudes for ops defined on the positive half-line.
const POSITIVE: [(f64, f64); 4] = [(1e-4, 2e-3), (0.5, 1.0), (2.0, 5.0), (1e3, 2e3)];

#[test]
fn add() {
    check_binary(Tape::add, |x, y| x + y, &[(1e-3, 0.0, 2e-3, 0.1), (1.0, 0.5, 2.0, -1.0), (1e4, 0.0, 3e3, 1e3)]);
}

#[test]
fn sub() {
    check_binary(Tape::sub, |x, y| x - y, &[(1e-3, 0.0, 2e-3, 0.1), (1.0, 0.5, 2.0, -1.0), (1e4, 0.0, 3e3, 1e3)]);
}

#[test]
fn mul() {
    check_binary(Tape::mul, |x, y| x * y, &[(1e-3, 0.0, 2e-3, 0.1), (1.0, 0.5, 2.0, -1.0), (1e4, 0.0, 3e3, 1e3)]);
}

#[test]
fn div() {
    // Divisors stay away from zero: their offset exceeds their scale.
    check_binary(Tape::div, |x, y| x / y, &[(1e-3, 0.0, 1e-3, 2e-3), (1.0, 0.5, 1.0, 2.0), (1e4, 0.0, 1e3, -3e3)]);
}

#[test]
fn exp() {
    let inputs = [(1e-3, 0.0), (1.0, 0.2), (3.0, -1.0), (10.0, 30.0), (10.0, -300.0)];
    check_unary(Tape::exp, f64::exp, &inputs, &Settings::default());
}

#[test]
fn log() {
    check_unary(Tape::log, f64::ln, &POSITIVE, &Settings::default());
}

#[test]
fn scalar_forms() {
    let point = vec![pattern(&[4], 2.0, 3.0)];
    let (value, _) = forward_value(&point, |tape, v| {
        let a = tape.add_scalar(v[0], 1.5);
        let b = tape.mul_scalar(a, -2.0);
        let c = tape.sub_scalar(b, 0.25);
        let d = tape.div_scalar(c, 4.0);
        let e = tape.scalar_sub(3.0, d);
        let f = tape.scalar_div(2.0, e);
        Ok(tape.pow_scalar(f, 3.0))
    });
    let expected: Vec<f64> = point[0]
        .data()
        .iter()
        .map(|&x| (2.0 / (3.0 - ((x + 1.5) * -2.0 - 0.25) / 4.0)).powf(3.0))
        .collect();
    assert_all_close(&value, &expected);
    check_gradient(
        |tape, v| {
            let a = tape.add_scalar(v[0], 1.5);
            let b = tape.mul_scalar(a, -2.0);
            let c = tape.sub_scalar(b, 0.25);
            let d = tape.div_scalar(c, 4.0);
            let e = tape.scalar_sub(3.0, d);
            let f = tape.scalar_div(2.0, e);
            let g = tape.pow_scalar(f, 3.0);
            weighted_sum(tape, g)
        },
        &[point.clone(), vec![pattern(&[4], 1e-3, 0.1)], vec![pattern(&[4], 1e3, 0.0)]],
    );
}

#[test]
fn constant_leaves_get_no_gradient() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::vector(vec![1.0, 2.0]));
    let c = tape.constant(Tensor::vector(vec![3.0, 4.0]));
    let product = tape.mul(x, c).unwrap();
    let total = tape.sum(product);
    tape.backward(total).unwrap();
    assert_eq!(tape.grad(x), &[3.0, 4.0]);
    assert_eq!(tape.grad(c), &[0.0, 0.0]);
    assert!(!tape.requires_grad(c));
}

#[test]
fn shape_mismatch_is_an_error() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[2, 3]));
    let y = tape.input(Tensor::zeros(&[4]));
    let error = tape.add(x, y).unwrap_err();
    assert_eq!(error.to_string(), "add: shapes [2, 3] and [4] are incompatible");
    assert_eq!(tape.len(), 2);
}

#[allow(dead_code)]
const _WHOLE_LINE_USED: [(f64, f64); 4] = WHOLE_LINE;
