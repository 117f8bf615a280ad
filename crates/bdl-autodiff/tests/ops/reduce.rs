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
            let (value, shape) = forward_value(point, |tape, v| tape.sum_axis(v[0], axis, keep_dim));
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
    let (value, shape) = forward_value(&[Tensor::zeros(&[2, 0])], |tape, v| tape.sum_axis(v[0], 1, false));
    assert_eq!(shape, vec![2]);
    assert_eq!(value, vec![0.0, 0.0]);
}
