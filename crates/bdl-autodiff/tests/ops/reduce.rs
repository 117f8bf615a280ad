//! Reductions and normalising maps.

use crate::common::{assert_all_close, check_gradient, forward_value, pattern, weighted_sum};
use bdl_autodiff::Tensor;

#[test]
fn sum() {
    let points = [
        vec![pattern(&[2, 3, 4], 1e-3, 0.0)],
        vec![pattern(&[2, 3, 4], 1.0, 0.5)],
        vec![pattern(&[2, 3, 4], 1e4, -10.0)],
    ];
    for point in &points {
        let data = point[0].data();
        let (total, shape) = forward_value(point, |tape, v| Ok(tape.sum(v[0])));
        assert!(shape.is_empty());
        assert_all_close(&total, &[data.iter().sum::<f64>()]);
        for (axis, keep_dim) in [(0isize, false), (1, true), (-1, false)] {
            let (value, shape) =
                forward_value(point, |tape, v| tape.sum_axis(v[0], axis, keep_dim));
            let expected = reference_sum(data, &[2, 3, 4], axis.rem_euclid(3) as usize);
            assert_all_close(&value, &expected);
            assert_eq!(shape.len(), if keep_dim { 3 } else { 2 });
        }
    }
    check_gradient(|tape, v| Ok(tape.sum(v[0])), &points);
    for axis in [0isize, 1, 2, -1] {
        check_gradient(
            |tape, v| {
                let reduced = tape.sum_axis(v[0], axis, axis == 1)?;
                weighted_sum(tape, reduced)
            },
            &points,
        );
    }
}

/// Σ along one axis of a row-major `shape` tensor, by explicit index arithmetic.
pub fn reference_sum(data: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let extent = shape[axis];
    let mut out = vec![0.0; outer * inner];
    for o in 0..outer {
        for j in 0..extent {
            for i in 0..inner {
                out[o * inner + i] += data[(o * extent + j) * inner + i];
            }
        }
    }
    out
}

#[test]
fn sum_of_empty_axis_is_zero() {
    let (value, shape) = forward_value(&[Tensor::zeros(&[2, 0])], |tape, v| {
        tape.sum_axis(v[0], 1, false)
    });
    assert_eq!(shape, vec![2]);
    assert_eq!(value, vec![0.0, 0.0]);
}

/// Test points for reductions over a `[2, 3, 4]` tensor at small, unit and large magnitudes.
fn reduction_points() -> Vec<Vec<Tensor>> {
    vec![
        vec![pattern(&[2, 3, 4], 1e-3, 0.0)],
        vec![pattern(&[2, 3, 4], 1.0, 0.5)],
        vec![pattern(&[2, 3, 4], 1e3, -10.0)],
    ]
}

/// A reduction along one axis by explicit index arithmetic.
fn reference_reduce(
    data: &[f64],
    shape: &[usize],
    axis: usize,
    f: impl Fn(&[f64]) -> f64,
) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let extent = shape[axis];
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let lane: Vec<f64> = (0..extent)
                .map(|j| data[(o * extent + j) * inner + i])
                .collect();
            out.push(f(&lane));
        }
    }
    out
}

type AxisOp = fn(
    &mut bdl_autodiff::Tape,
    bdl_autodiff::Var,
    isize,
    bool,
) -> Result<bdl_autodiff::Var, bdl_autodiff::TensorError>;
type TotalOp = fn(&mut bdl_autodiff::Tape, bdl_autodiff::Var) -> bdl_autodiff::Var;

/// Checks a reduction over everything and along each axis against `lane_reference`.
fn check_reduction(total: TotalOp, along: AxisOp, lane_reference: fn(&[f64]) -> f64) {
    let points = reduction_points();
    for point in &points {
        let data = point[0].data();
        let (value, _) = forward_value(point, |tape, v| Ok(total(tape, v[0])));
        assert_all_close(&value, &[lane_reference(data)]);
        for axis in 0..3 {
            let (value, shape) =
                forward_value(point, |tape, v| along(tape, v[0], axis as isize, true));
            assert_eq!(shape.len(), 3);
            assert_all_close(
                &value,
                &reference_reduce(data, &[2, 3, 4], axis, lane_reference),
            );
        }
    }
    check_gradient(
        |tape, v| {
            let out = total(tape, v[0]);
            weighted_sum(tape, out)
        },
        &points,
    );
    for axis in [0isize, 1, -1] {
        check_gradient(
            |tape, v| {
                let out = along(tape, v[0], axis, false)?;
                weighted_sum(tape, out)
            },
            &points,
        );
    }
}

#[test]
fn mean() {
    check_reduction(
        bdl_autodiff::Tape::mean,
        bdl_autodiff::Tape::mean_axis,
        |lane| lane.iter().sum::<f64>() / lane.len() as f64,
    );
}

#[test]
fn max() {
    check_reduction(
        bdl_autodiff::Tape::max,
        bdl_autodiff::Tape::max_axis,
        |lane| lane.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
}

#[test]
fn min() {
    check_reduction(
        bdl_autodiff::Tape::min,
        bdl_autodiff::Tape::min_axis,
        |lane| lane.iter().copied().fold(f64::INFINITY, f64::min),
    );
}

#[test]
fn logsumexp() {
    // The reference sums in extended form ln Σ e^(x − m) + m with m the lane maximum; at the
    // large scale a naive Σ eˣ would overflow, which the kernel must avoid.
    check_reduction(
        bdl_autodiff::Tape::logsumexp,
        bdl_autodiff::Tape::logsumexp_axis,
        |lane| {
            let m = lane.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            m + lane.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
        },
    );
    let (value, _) = forward_value(&[Tensor::vector(vec![1000.0, 1000.0])], |tape, v| {
        Ok(tape.logsumexp(v[0]))
    });
    assert_all_close(&value, &[1000.0 + 2f64.ln()]);
    let (value, _) = forward_value(&[Tensor::vector(vec![f64::NEG_INFINITY; 2])], |tape, v| {
        Ok(tape.logsumexp(v[0]))
    });
    assert_eq!(value, vec![f64::NEG_INFINITY]);
}

/// Checks softmax or log_softmax along every axis.
fn check_softmax(logarithm: bool) {
    let op = if logarithm {
        bdl_autodiff::Tape::log_softmax
    } else {
        bdl_autodiff::Tape::softmax
    };
    let points = reduction_points();
    for point in &points {
        let data = point[0].data();
        for axis in 0..3usize {
            let (value, shape) = forward_value(point, |tape, v| op(tape, v[0], axis as isize));
            assert_eq!(shape, vec![2, 3, 4]);
            let normalisers = reference_reduce(data, &[2, 3, 4], axis, |lane| {
                let m = lane.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m + lane.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
            });
            let inner: usize = [2, 3, 4][axis + 1..].iter().product();
            let extent = [2, 3, 4][axis];
            let expected: Vec<f64> = (0..24)
                .map(|flat| {
                    let (o, i) = (flat / (extent * inner), flat % inner);
                    let log_probability = data[flat] - normalisers[o * inner + i];
                    if logarithm {
                        log_probability
                    } else {
                        log_probability.exp()
                    }
                })
                .collect();
            for (&a, &e) in value.iter().zip(&expected) {
                // Softmax probabilities far below one are checked relative to their size; at the
                // large scale many underflow to exactly zero in both.
                assert!(
                    (a - e).abs() <= 1e-12 * e.abs().max(1e-300) + 1e-300
                        || (a - e).abs() <= 1e-12 * (1.0 + e.abs()) && logarithm,
                    "{a} vs {e}"
                );
            }
        }
    }
    for axis in [0isize, 1, -1] {
        check_gradient(
            |tape, v| {
                let out = op(tape, v[0], axis)?;
                weighted_sum(tape, out)
            },
            &points,
        );
    }
}

#[test]
fn softmax() {
    check_softmax(false);
}

#[test]
fn log_softmax() {
    check_softmax(true);
}
