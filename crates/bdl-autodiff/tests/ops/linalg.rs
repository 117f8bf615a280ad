//! Matrix products and transposition.

use crate::common::{assert_all_close, check_gradient, forward_value, pattern, weighted_sum};
use bdl_autodiff::{Tape, Tensor};

/// C = A·B for row-major matrices, by the textbook triple loop.
fn reference_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

#[test]
fn matmul() {
    // Shapes exercise the thin kernels (a dimension ≤ 5), the blocked kernel (all > 5), the
    // blocked kernel on zero-padded thin operands (a dimension of 2 to 5 and enough work),
    // batches with broadcasting, and the vector cases.
    let cases: [(&[usize], &[usize], &[usize]); 13] = [
        (&[40, 30], &[30, 4], &[40, 4]),
        (&[40, 4], &[4, 30], &[40, 30]),
        (&[3, 40], &[40, 40], &[3, 40]),
        (&[2, 3], &[3, 4], &[2, 4]),
        (&[7, 9], &[9, 8], &[7, 8]),
        (&[12, 1], &[1, 10], &[12, 10]),
        (&[12, 10], &[10, 1], &[12, 1]),
        (&[12, 10], &[10, 3], &[12, 3]),
        (&[3, 12], &[12, 10], &[3, 10]),
        (&[2, 3, 4], &[4, 5], &[2, 3, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2], &[2, 3, 3, 2]),
        (&[3, 4], &[4], &[3]),
        (&[4], &[4, 3], &[3]),
    ];
    for (left, right, expected_shape) in cases {
        let points: Vec<Vec<Tensor>> = [(1e-3, 0.0), (1.0, 0.3), (1e3, -5.0)]
            .iter()
            .map(|&(scale, offset)| {
                vec![pattern(left, scale, offset), pattern(right, scale, -offset)]
            })
            .collect();
        for point in &points {
            let (value, shape) = forward_value(point, |tape, v| tape.matmul(v[0], v[1]));
            assert_eq!(shape, expected_shape.to_vec());
            if left.len() == 2 && right.len() == 2 {
                let (m, k, n) = (left[0], left[1], right[1]);
                assert_all_close(
                    &value,
                    &reference_matmul(point[0].data(), point[1].data(), m, k, n),
                );
            }
        }
        check_gradient(
            |tape, v| {
                let product = tape.matmul(v[0], v[1])?;
                weighted_sum(tape, product)
            },
            &points,
        );
    }
    // The inner product of two vectors is a scalar.
    let (value, shape) = forward_value(
        &[
            Tensor::vector(vec![1.0, 2.0, 3.0]),
            Tensor::vector(vec![4.0, 5.0, 6.0]),
        ],
        |tape, v| tape.matmul(v[0], v[1]),
    );
    assert!(shape.is_empty());
    assert_eq!(value, vec![32.0]);
    let mut tape = Tape::new();
    let a = tape.input(Tensor::zeros(&[2, 3]));
    let b = tape.input(Tensor::zeros(&[4, 2]));
    assert!(tape.matmul(a, b).is_err());
}

#[test]
fn transpose() {
    let point = vec![pattern(&[2, 3, 4], 1.0, 0.0)];
    let (value, shape) = forward_value(&point, |tape, v| Ok(tape.transpose(v[0])));
    assert_eq!(shape, vec![2, 4, 3]);
    let data = point[0].data();
    for b in 0..2 {
        for r in 0..3 {
            for c in 0..4 {
                assert_eq!(value[b * 12 + c * 3 + r], data[b * 12 + r * 4 + c]);
            }
        }
    }
    check_gradient(
        |tape, v| {
            let transposed = tape.transpose(v[0]);
            weighted_sum(tape, transposed)
        },
        &[point.clone(), vec![pattern(&[2, 3, 4], 1e3, 1.0)]],
    );
}

/// A symmetric positive-definite `n × n` matrix B·Bᵀ + n·I at the given scale.
fn spd(n: usize, scale: f64) -> Tensor {
    let b = pattern(&[n, n], 1.0, 0.2);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let dot: f64 = (0..n)
                .map(|k| b.data()[i * n + k] * b.data()[j * n + k])
                .sum();
            a[i * n + j] = scale * (dot + if i == j { n as f64 } else { 0.0 });
        }
    }
    Tensor::matrix(n, n, a).unwrap()
}

#[test]
fn cholesky() {
    for n in [1, 3, 7] {
        let points: Vec<Vec<Tensor>> = [1e-3, 1.0, 1e3].iter().map(|&s| vec![spd(n, s)]).collect();
        for point in &points {
            let a = point[0].data();
            let (l, shape) = forward_value(point, |tape, v| tape.cholesky(v[0]));
            assert_eq!(shape, vec![n, n]);
            for i in 0..n {
                for j in 0..n {
                    if j > i {
                        assert_eq!(l[i * n + j], 0.0);
                    } else {
                        let product: f64 = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
                        assert!((product - a[i * n + j]).abs() <= 1e-12 * a[i * n + i].abs());
                    }
                }
            }
        }
        check_gradient(
            |tape, v| {
                let factor = tape.cholesky(v[0])?;
                weighted_sum(tape, factor)
            },
            &points,
        );
    }
    // Not positive definite: NaN, not an error or a panic.
    let (l, _) = forward_value(
        &[Tensor::matrix(2, 2, vec![1.0, 2.0, 2.0, 1.0]).unwrap()],
        |tape, v| tape.cholesky(v[0]),
    );
    assert!(l.iter().all(|x| x.is_nan()));
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[2, 3]));
    assert!(matches!(
        tape.cholesky(x),
        Err(bdl_autodiff::TensorError::InvalidShape { .. })
    ));
}

/// A triangular matrix with a dominant diagonal (other triangle filled with junk that must be
/// ignored).
fn triangular(n: usize, scale: f64) -> Tensor {
    let mut t = pattern(&[n, n], scale, 0.0).into_data();
    for i in 0..n {
        t[i * n + i] = scale * (2.0 + i as f64);
    }
    Tensor::matrix(n, n, t).unwrap()
}

#[test]
fn triangular_solve() {
    for (lower, transpose) in [(true, false), (true, true), (false, false), (false, true)] {
        for rhs_shape in [&[4][..], &[4, 3][..]] {
            let points: Vec<Vec<Tensor>> = [(1e-3, 1.0), (1.0, 1.0), (1e3, 1e-3)]
                .iter()
                .map(|&(t_scale, b_scale)| {
                    vec![triangular(4, t_scale), pattern(rhs_shape, b_scale, 0.1)]
                })
                .collect();
            for point in &points {
                let (x, shape) = forward_value(point, |tape, v| {
                    tape.triangular_solve(v[0], v[1], lower, transpose)
                });
                assert_eq!(shape, rhs_shape.to_vec());
                // Residual: op(T)·X = B, using only T's triangle.
                let columns = x.len() / 4;
                let t = point[0].data();
                let entry = |i: usize, j: usize| {
                    let (r, c) = if transpose { (j, i) } else { (i, j) };
                    if (lower && c <= r) || (!lower && c >= r) {
                        t[r * 4 + c]
                    } else {
                        0.0
                    }
                };
                for i in 0..4 {
                    for c in 0..columns {
                        let product: f64 = (0..4).map(|k| entry(i, k) * x[k * columns + c]).sum();
                        let expected = point[1].data()[i * columns + c];
                        assert!(
                            (product - expected).abs() <= 1e-12 * (1.0 + expected.abs()),
                            "{product} vs {expected}"
                        );
                    }
                }
            }
            check_gradient(
                |tape, v| {
                    let x = tape.triangular_solve(v[0], v[1], lower, transpose)?;
                    weighted_sum(tape, x)
                },
                &points,
            );
        }
    }
    let mut tape = Tape::new();
    let t = tape.input(Tensor::zeros(&[3, 3]));
    let b = tape.input(Tensor::zeros(&[4]));
    assert!(tape.triangular_solve(t, b, true, false).is_err());
}

#[test]
fn log_det_triangular() {
    let points: Vec<Vec<Tensor>> = [1e-3, 1.0, 1e3]
        .iter()
        .map(|&s| vec![triangular(4, s)])
        .collect();
    for point in &points {
        let t = point[0].data();
        let (value, shape) = forward_value(point, |tape, v| tape.log_det_triangular(v[0]));
        assert!(shape.is_empty());
        let product: f64 = (0..4).map(|i| t[i * 4 + i]).product();
        assert_all_close(&value, &[product.abs().ln()]);
    }
    check_gradient(|tape, v| tape.log_det_triangular(v[0]), &points);
    // log det A = 2 log det L for A = L Lᵀ, checked end to end through cholesky.
    check_gradient(
        |tape, v| {
            let factor = tape.cholesky(v[0])?;
            tape.log_det_triangular(factor)
        },
        &[vec![spd(3, 1.0)], vec![spd(3, 1e2)]],
    );
}
