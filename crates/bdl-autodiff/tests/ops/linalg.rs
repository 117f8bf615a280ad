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
    // Shapes exercise the thin kernels (a dimension ≤ 5), the blocked kernel (all > 5), batches
    // with broadcasting, and the vector cases.
    let cases: [(&[usize], &[usize], &[usize]); 10] = [
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
            .map(|&(scale, offset)| vec![pattern(left, scale, offset), pattern(right, scale, -offset)])
            .collect();
        for point in &points {
            let (value, shape) = forward_value(point, |tape, v| tape.matmul(v[0], v[1]));
            assert_eq!(shape, expected_shape.to_vec());
            if left.len() == 2 && right.len() == 2 {
                let (m, k, n) = (left[0], left[1], right[1]);
                assert_all_close(&value, &reference_matmul(point[0].data(), point[1].data(), m, k, n));
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
        &[Tensor::vector(vec![1.0, 2.0, 3.0]), Tensor::vector(vec![4.0, 5.0, 6.0])],
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
