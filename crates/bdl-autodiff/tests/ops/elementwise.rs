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
        // With one operand a constant (data), only the other gets a gradient; the replay check
        // catches gradients left stale by the constant's missing contribution.
        let lefts: Vec<Vec<Tensor>> = points.iter().map(|p| vec![p[0].clone()]).collect();
        let rights: Vec<Vec<Tensor>> = points.iter().map(|p| vec![p[1].clone()]).collect();
        let (fixed_left, fixed_right) = (points[0][0].clone(), points[0][1].clone());
        check_gradient(
            |tape, v| {
                let constant = tape.constant(fixed_right.clone());
                let out = op(tape, v[0], constant)?;
                weighted_sum(tape, out)
            },
            &lefts,
        );
        check_gradient(
            |tape, v| {
                let constant = tape.constant(fixed_left.clone());
                let out = op(tape, constant, v[0])?;
                weighted_sum(tape, out)
            },
            &rights,
        );
    }
}

/// Checks a unary op's value against `reference` and its gradient at inputs `scale · pattern +
/// offset` for each `(scale, offset)`.
#[allow(clippy::type_complexity)]
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
    check_binary(
        Tape::add,
        |x, y| x + y,
        &[
            (1e-3, 0.0, 2e-3, 0.1),
            (1.0, 0.5, 2.0, -1.0),
            (1e4, 0.0, 3e3, 1e3),
        ],
    );
}

#[test]
fn sub() {
    check_binary(
        Tape::sub,
        |x, y| x - y,
        &[
            (1e-3, 0.0, 2e-3, 0.1),
            (1.0, 0.5, 2.0, -1.0),
            (1e4, 0.0, 3e3, 1e3),
        ],
    );
}

#[test]
fn mul() {
    check_binary(
        Tape::mul,
        |x, y| x * y,
        &[
            (1e-3, 0.0, 2e-3, 0.1),
            (1.0, 0.5, 2.0, -1.0),
            (1e4, 0.0, 3e3, 1e3),
        ],
    );
}

#[test]
fn div() {
    // Divisors stay away from zero: their offset exceeds their scale.
    check_binary(
        Tape::div,
        |x, y| x / y,
        &[
            (1e-3, 0.0, 1e-3, 2e-3),
            (1.0, 0.5, 1.0, 2.0),
            (1e4, 0.0, 1e3, -3e3),
        ],
    );
}

#[test]
fn exp() {
    let inputs = [
        (1e-3, 0.0),
        (1.0, 0.2),
        (3.0, -1.0),
        (10.0, 30.0),
        (10.0, -300.0),
    ];
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
        &[
            point.clone(),
            vec![pattern(&[4], 1e-3, 0.1)],
            vec![pattern(&[4], 1e3, 0.0)],
        ],
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
    assert_eq!(
        error.to_string(),
        "add: shapes [2, 3] and [4] are incompatible"
    );
    assert_eq!(tape.len(), 2);
}

#[test]
fn pow() {
    // Bases stay positive so that the gradient with respect to the exponent (x^y ln x) is real.
    check_binary(
        Tape::pow,
        f64::powf,
        &[
            (1e-3, 2e-3, 1.0, 0.5),
            (0.5, 1.5, 1.0, -0.2),
            (10.0, 1e2, 0.5, 1.0),
        ],
    );
}

#[test]
fn neg() {
    check_unary(Tape::neg, |x| -x, &WHOLE_LINE, &Settings::default());
}

#[test]
fn abs() {
    check_unary(Tape::abs, f64::abs, &WHOLE_LINE, &Settings::default());
}

#[test]
fn log1p() {
    let inputs = [(1e-3, 0.0), (1e-3, -0.99), (0.5, 0.2), (1e3, 2e3)];
    check_unary(
        Tape::log1p,
        |x| (1.0 + x).ln(),
        &inputs[2..],
        &Settings::default(),
    );
    // Near zero log1p must keep the digits that log(1 + x) loses; compare with the series.
    check_unary(
        Tape::log1p,
        |x| x - x * x / 2.0 + x * x * x / 3.0 - x.powi(4) / 4.0 + x.powi(5) / 5.0 - x.powi(6) / 6.0,
        &[(1e-3, 0.0)],
        &Settings::default(),
    );
    check_unary(Tape::log1p, f64::ln_1p, &inputs[1..2], &Settings::default());
}

#[test]
fn expm1() {
    check_unary(
        Tape::expm1,
        |x| x.exp() - 1.0,
        &[(1.0, 0.2), (3.0, -1.0), (10.0, 20.0)],
        &Settings::default(),
    );
    check_unary(
        Tape::expm1,
        |x| {
            x + x * x / 2.0
                + x.powi(3) / 6.0
                + x.powi(4) / 24.0
                + x.powi(5) / 120.0
                + x.powi(6) / 720.0
        },
        &[(1e-3, 0.0)],
        &Settings::default(),
    );
}

#[test]
fn sqrt() {
    check_unary(Tape::sqrt, |x| x.powf(0.5), &POSITIVE, &Settings::default());
}

#[test]
fn square() {
    check_unary(Tape::square, |x| x * x, &WHOLE_LINE, &Settings::default());
}

#[test]
fn tanh() {
    let reference = |x: f64| (x.exp() - (-x).exp()) / (x.exp() + (-x).exp());
    check_unary(
        Tape::tanh,
        reference,
        &[(1e-3, 0.0), (1.0, 0.2), (3.0, -1.0), (5.0, 12.0)],
        &Settings::default(),
    );
}

#[test]
fn sigmoid() {
    let reference = |x: f64| 1.0 / (1.0 + (-x).exp());
    let inputs = [
        (1e-3, 0.0),
        (1.0, 0.2),
        (3.0, -1.0),
        (10.0, -30.0),
        (10.0, 30.0),
        (1e2, -600.0),
    ];
    check_unary(Tape::sigmoid, reference, &inputs, &Settings::default());
}

#[test]
fn relu() {
    check_unary(
        Tape::relu,
        |x| if x > 0.0 { x } else { 0.0 },
        &WHOLE_LINE,
        &Settings::default(),
    );
}

/// log(1 + eˣ), written independently of the kernel: for large x it is x + log(1 + e⁻ˣ).
fn reference_softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[test]
fn softplus() {
    let inputs = [
        (1e-3, 0.0),
        (1.0, 0.2),
        (3.0, -1.0),
        (10.0, 40.0),
        (10.0, -40.0),
        (1e2, 800.0),
        (1e2, -800.0),
    ];
    check_unary(
        Tape::softplus,
        reference_softplus,
        &inputs,
        &Settings::default(),
    );
}

#[test]
fn log_sigmoid() {
    let inputs = [
        (1e-3, 0.0),
        (1.0, 0.2),
        (3.0, -1.0),
        (10.0, 40.0),
        (10.0, -40.0),
        (1e2, 800.0),
        (1e2, -800.0),
    ];
    check_unary(
        Tape::log_sigmoid,
        |x| -reference_softplus(-x),
        &inputs,
        &Settings::default(),
    );
}

#[test]
fn lgamma() {
    // Values: log Γ(n) = log (n − 1)!, Γ(1/2) = √π, Γ(−1/2) = −2√π, Γ(5/2) = 3√π/4.
    let pi = std::f64::consts::PI;
    let known = [
        (1.0, 0.0),
        (2.0, 0.0),
        (5.0, 24f64.ln()),
        (11.0, 3_628_800f64.ln()),
        (0.5, 0.5 * pi.ln()),
        (-0.5, (2.0 * pi.sqrt()).ln()),
        (2.5, (0.75 * pi.sqrt()).ln()),
    ];
    for (x, expected) in known {
        let (value, _) = forward_value(&[Tensor::scalar(x)], |tape, v| Ok(tape.lgamma(v[0])));
        assert!(
            (value[0] - expected).abs() <= 1e-13 * expected.abs().max(1.0),
            "lgamma({x})"
        );
    }
    let points: Vec<Vec<Tensor>> = [
        (1e-3, 2e-3),
        (0.5, 2.0),
        (2.0, 5.0),
        (0.2, -1.5),
        (1e3, 2e3),
    ]
    .iter()
    .map(|&(scale, offset)| vec![pattern(&[2, 3], scale, offset)])
    .collect();
    check_gradient(
        |tape, v| {
            let out = tape.lgamma(v[0]);
            weighted_sum(tape, out)
        },
        &points,
    );
}

#[test]
fn digamma() {
    // Values: ψ(1) = −γ, ψ(n + 1) = ψ(n) + 1/n, ψ(1/2) = −γ − 2 log 2, ψ(1 − x) − ψ(x) = π cot(πx).
    let euler = 0.577_215_664_901_532_9;
    let known = [
        (1.0, -euler),
        (4.0, -euler + 1.0 + 0.5 + 1.0 / 3.0),
        (0.5, -euler - 2.0 * 2f64.ln()),
        (-0.5, -euler - 2.0 * 2f64.ln() + 2.0),
    ];
    for (x, expected) in known {
        let (value, _) = forward_value(&[Tensor::scalar(x)], |tape, v| Ok(tape.digamma(v[0])));
        assert!(
            (value[0] - expected).abs() <= 1e-13 * expected.abs().max(1.0),
            "digamma({x})"
        );
    }
    let points: Vec<Vec<Tensor>> = [
        (1e-3, 2e-3),
        (0.5, 2.0),
        (2.0, 5.0),
        (0.2, -1.5),
        (1e3, 2e3),
    ]
    .iter()
    .map(|&(scale, offset)| vec![pattern(&[2, 3], scale, offset)])
    .collect();
    check_gradient(
        |tape, v| {
            let out = tape.digamma(v[0]);
            weighted_sum(tape, out)
        },
        &points,
    );
}

#[test]
// The reference is spelled out instead of calling `f64::clamp`, which the kernel itself uses.
#[allow(clippy::manual_clamp)]
fn clamp() {
    // Bounds sit between pattern values, so no element is on a kink.
    let points = [
        vec![pattern(&[2, 3], 1.0, 0.0)],
        vec![pattern(&[2, 3], 1.0, 0.1)],
    ];
    for point in &points {
        let (value, _) = forward_value(point, |tape, v| tape.clamp(v[0], -0.8, 0.5));
        let expected: Vec<f64> = point[0]
            .data()
            .iter()
            .map(|&x| {
                if x < -0.8 {
                    -0.8
                } else if x > 0.5 {
                    0.5
                } else {
                    x
                }
            })
            .collect();
        assert_all_close(&value, &expected);
    }
    check_gradient(
        |tape, v| {
            let out = tape.clamp(v[0], -0.8, 0.5)?;
            weighted_sum(tape, out)
        },
        &points,
    );
    let mut tape = Tape::new();
    let x = tape.input(Tensor::scalar(1.0));
    assert!(tape.clamp(x, 1.0, 0.0).is_err());
}

/// Checks a comparison's 0/1 values and that no gradient flows through it.
fn check_comparison(
    op: fn(&mut Tape, Var, Var) -> Result<Var, TensorError>,
    reference: fn(f64, f64) -> bool,
) {
    let left = Tensor::vector(vec![0.0, 1.0, 2.0, -1.0, 3.0]);
    let right = Tensor::vector(vec![0.0, 2.0, 1.0, -1.0, 0.0]);
    let mut tape = Tape::new();
    let x = tape.input(left.clone());
    let y = tape.input(right.clone());
    let result = op(&mut tape, x, y).unwrap();
    let expected: Vec<f64> = left
        .data()
        .iter()
        .zip(right.data())
        .map(|(&a, &b)| if reference(a, b) { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(tape.value(result).data(), expected.as_slice());
    assert!(!tape.requires_grad(result));
    // A comparison mixed into a differentiable expression contributes nothing: d/dx (x · [x < y]).
    let product = tape.mul(x, result).unwrap();
    let total = tape.sum(product);
    tape.backward(total).unwrap();
    assert_eq!(tape.grad(x), expected.as_slice());
    assert_eq!(tape.grad(y), &[0.0; 5]);
    // Broadcasting works as for arithmetic.
    let scalar = tape.scalar(1.0);
    let broadcast = op(&mut tape, x, scalar).unwrap();
    assert_eq!(tape.shape(broadcast), &[5]);
}

#[test]
fn lt() {
    check_comparison(Tape::lt, |a, b| a < b);
}

#[test]
fn le() {
    check_comparison(Tape::le, |a, b| a <= b);
}

#[test]
fn gt() {
    check_comparison(Tape::gt, |a, b| a > b);
}

#[test]
fn ge() {
    check_comparison(Tape::ge, |a, b| a >= b);
}

#[test]
fn eq() {
    check_comparison(Tape::eq, |a, b| a == b);
}

#[test]
fn ne() {
    check_comparison(Tape::ne, |a, b| a != b);
}

#[test]
fn and() {
    check_comparison(Tape::and, |a, b| a != 0.0 && b != 0.0);
}

#[test]
fn or() {
    check_comparison(Tape::or, |a, b| a != 0.0 || b != 0.0);
}

#[test]
fn not() {
    let (value, _) = forward_value(&[Tensor::vector(vec![0.0, 1.0, -2.0])], |tape, v| {
        Ok(tape.not(v[0]))
    });
    assert_eq!(value, vec![1.0, 0.0, 0.0]);
}

#[test]
fn select() {
    let condition = Tensor::matrix(2, 3, vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0]).unwrap();
    let row_condition = Tensor::vector(vec![0.0, 1.0, 1.0]);
    for condition in [condition, row_condition] {
        let points: Vec<Vec<Tensor>> = [(1e-3, 0.0), (1.0, 0.5), (1e3, -2.0)]
            .iter()
            .map(|&(scale, offset)| {
                vec![
                    pattern(&[2, 3], scale, offset),
                    pattern(&[3], scale, -offset),
                ]
            })
            .collect();
        for point in &points {
            let (value, _) = forward_value(point, |tape, v| {
                let c = tape.constant(condition.clone());
                tape.select(c, v[0], v[1])
            });
            let choose = |c: f64, a: f64, b: f64| if c != 0.0 { a } else { b };
            let expected: Vec<f64> = (0..6)
                .map(|i| {
                    let c = condition.data()[i % condition.len()];
                    choose(c, point[0].data()[i], point[1].data()[i % 3])
                })
                .collect();
            assert_all_close(&value, &expected);
        }
        check_gradient(
            |tape, v| {
                let c = tape.constant(condition.clone());
                let out = tape.select(c, v[0], v[1])?;
                weighted_sum(tape, out)
            },
            &points,
        );
    }
}
