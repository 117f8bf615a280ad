//! Indexing and shape ops.

use crate::common::{assert_all_close, check_gradient, forward_value, pattern, weighted_sum};
use bdl_autodiff::{Tape, Tensor, TensorError};

/// Points for a `[3, 4, 2]` operand at small, unit and large magnitudes.
fn points(shape: &[usize]) -> Vec<Vec<Tensor>> {
    [(1e-3, 0.0), (1.0, 0.5), (1e3, -10.0)]
        .iter()
        .map(|&(scale, offset)| vec![pattern(shape, scale, offset)])
        .collect()
}

/// The element of a row-major `[3, 4, 2]` tensor at (a, b, c).
fn at(data: &[f64], a: usize, b: usize, c: usize) -> f64 {
    data[(a * 4 + b) * 2 + c]
}

#[test]
fn index() {
    for point in points(&[3, 4, 2]) {
        let data = point[0].data();
        let (value, shape) = forward_value(&point, |tape, v| tape.index(v[0], 1, 2));
        assert_eq!(shape, vec![3, 2]);
        let expected: Vec<f64> = (0..3)
            .flat_map(|a| (0..2).map(move |c| (a, c)))
            .map(|(a, c)| at(data, a, 2, c))
            .collect();
        assert_all_close(&value, &expected);
    }
    for axis in [0isize, 1, -1] {
        check_gradient(
            |tape, v| {
                let out = tape.index(v[0], axis, 1)?;
                weighted_sum(tape, out)
            },
            &points(&[3, 4, 2]),
        );
    }
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[3, 4]));
    assert!(matches!(
        tape.index(x, 1, 4),
        Err(TensorError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        tape.index(x, 2, 0),
        Err(TensorError::AxisOutOfRange { .. })
    ));
}

#[test]
fn slice() {
    for point in points(&[3, 4, 2]) {
        let data = point[0].data();
        let (value, shape) = forward_value(&point, |tape, v| tape.slice(v[0], 1, 1, 3));
        assert_eq!(shape, vec![3, 2, 2]);
        let mut expected = Vec::new();
        for a in 0..3 {
            for b in 1..3 {
                for c in 0..2 {
                    expected.push(at(data, a, b, c));
                }
            }
        }
        assert_all_close(&value, &expected);
    }
    for (axis, start, end) in [(0isize, 1, 3), (1, 0, 4), (-1, 1, 2)] {
        check_gradient(
            |tape, v| {
                let out = tape.slice(v[0], axis, start, end)?;
                weighted_sum(tape, out)
            },
            &points(&[3, 4, 2]),
        );
    }
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[3, 4]));
    assert!(matches!(
        tape.slice(x, 1, 3, 5),
        Err(TensorError::InvalidRange { .. })
    ));
    assert!(matches!(
        tape.slice(x, 1, 3, 2),
        Err(TensorError::InvalidRange { .. })
    ));
}

#[test]
fn gather() {
    // Rows 2, 0, 2 (a repeated row accumulates its gradient twice), and a 2-d index on axis 1.
    let rows = Tensor::vector(vec![2.0, 0.0, 2.0]);
    let columns = Tensor::matrix(2, 2, vec![3.0, 1.0, 1.0, 0.0]).unwrap();
    for point in points(&[3, 4, 2]) {
        let data = point[0].data();
        let (value, shape) = forward_value(&point, |tape, v| {
            let index = tape.constant(rows.clone());
            tape.gather(v[0], index, 0)
        });
        assert_eq!(shape, vec![3, 4, 2]);
        let mut expected = Vec::new();
        for &a in &[2, 0, 2] {
            for b in 0..4 {
                for c in 0..2 {
                    expected.push(at(data, a, b, c));
                }
            }
        }
        assert_all_close(&value, &expected);
        let (value, shape) = forward_value(&point, |tape, v| {
            let index = tape.constant(columns.clone());
            tape.gather(v[0], index, 1)
        });
        assert_eq!(shape, vec![3, 2, 2, 2]);
        // Result (a = 1, t = (0, 1), c = 1) sits at ((1·2 + 0)·2 + 1)·2 + 1 = 11 and reads
        // column index[0][1] = 1.
        assert_eq!(value[11], at(data, 1, 1, 1));
    }
    for (index, axis) in [
        (rows.clone(), 0isize),
        (columns.clone(), 1),
        (Tensor::vector(vec![1.0]), -1),
    ] {
        check_gradient(
            |tape, v| {
                let index = tape.constant(index.clone());
                let out = tape.gather(v[0], index, axis)?;
                weighted_sum(tape, out)
            },
            &points(&[3, 4, 2]),
        );
    }
}

#[test]
fn gather_rejects_invalid_indices_when_recorded_and_replayed() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[3, 2]));
    for bad in [3.0, -1.0, 0.5, f64::NAN] {
        let index = tape.constant(Tensor::vector(vec![0.0, bad]));
        let error = tape.gather(x, index, 0).unwrap_err();
        assert!(matches!(
            error,
            TensorError::IndexOutOfRange { .. } | TensorError::NotAnInteger { .. }
        ));
    }
    let index = tape.constant(Tensor::vector(vec![0.0, 2.0]));
    let gathered = tape.gather(x, index, 0).unwrap();
    let total = tape.sum(gathered);
    tape.set_value(index, &[1.0, 7.0]).unwrap();
    assert!(matches!(
        tape.replay(),
        Err(TensorError::IndexOutOfRange { .. })
    ));
    tape.set_value(index, &[1.0, 1.0]).unwrap();
    tape.replay().unwrap();
    tape.backward(total).unwrap();
    assert_eq!(tape.grad(x), &[0.0, 0.0, 2.0, 2.0, 0.0, 0.0]);
}

#[test]
fn take_along_axis() {
    // Picks one class per row, as a categorical log-likelihood does.
    let labels = Tensor::matrix(3, 1, vec![2.0, 0.0, 1.0]).unwrap();
    for point in points(&[3, 4]) {
        let data = point[0].data();
        let (value, shape) = forward_value(&point, |tape, v| {
            let index = tape.constant(labels.clone());
            tape.take_along_axis(v[0], index, 1)
        });
        assert_eq!(shape, vec![3, 1]);
        assert_all_close(&value, &[data[2], data[4], data[9]]);
    }
    let along_rows = Tensor::matrix(2, 4, vec![0.0, 2.0, 1.0, 1.0, 2.0, 2.0, 0.0, 1.0]).unwrap();
    for (index, axis) in [(labels.clone(), 1isize), (along_rows, 0)] {
        check_gradient(
            |tape, v| {
                let index = tape.constant(index.clone());
                let out = tape.take_along_axis(v[0], index, axis)?;
                weighted_sum(tape, out)
            },
            &points(&[3, 4]),
        );
    }
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[3, 4]));
    let wrong = tape.constant(Tensor::zeros(&[2, 1]));
    assert!(tape.take_along_axis(x, wrong, 1).is_err());
    let out_of_range = tape.constant(Tensor::full(&[3, 1], 4.0));
    assert!(tape.take_along_axis(x, out_of_range, 1).is_err());
}

#[test]
fn stack() {
    let shape = [2, 3];
    let all_points: Vec<Vec<Tensor>> = [(1e-3, 0.0), (1.0, 0.5), (1e3, -10.0)]
        .iter()
        .map(|&(scale, offset)| {
            vec![
                pattern(&shape, scale, offset),
                pattern(&shape, scale, -offset),
                pattern(&shape, -scale, offset),
            ]
        })
        .collect();
    for point in &all_points {
        let (value, out_shape) = forward_value(point, |tape, v| tape.stack(v, 1));
        assert_eq!(out_shape, vec![2, 3, 3]);
        for a in 0..2 {
            for k in 0..3 {
                for c in 0..3 {
                    assert_eq!(value[(a * 3 + k) * 3 + c], point[k].data()[a * 3 + c]);
                }
            }
        }
    }
    for axis in [0isize, 1, 2, -1] {
        check_gradient(
            |tape, v| {
                let out = tape.stack(v, axis)?;
                weighted_sum(tape, out)
            },
            &all_points,
        );
    }
    let mut tape = Tape::new();
    let a = tape.input(Tensor::zeros(&[2]));
    let b = tape.input(Tensor::zeros(&[3]));
    assert!(tape.stack(&[a, b], 0).is_err());
    assert!(matches!(
        tape.stack(&[], 0),
        Err(TensorError::NoOperands { .. })
    ));
    let scalars = tape.stack(&[a, a], -1).unwrap();
    assert_eq!(tape.shape(scalars), &[2, 2]);
}

#[test]
fn concat() {
    let all_points: Vec<Vec<Tensor>> = [(1e-3, 0.0), (1.0, 0.5), (1e3, -10.0)]
        .iter()
        .map(|&(scale, offset)| {
            vec![
                pattern(&[2, 3], scale, offset),
                pattern(&[2, 1], scale, -offset),
                pattern(&[2, 2], -scale, offset),
            ]
        })
        .collect();
    for point in &all_points {
        let (value, shape) = forward_value(point, |tape, v| tape.concat(v, 1));
        assert_eq!(shape, vec![2, 6]);
        for a in 0..2 {
            let row: Vec<f64> = point[0].data()[a * 3..a * 3 + 3]
                .iter()
                .chain(&point[1].data()[a..a + 1])
                .chain(&point[2].data()[a * 2..a * 2 + 2])
                .copied()
                .collect();
            assert_eq!(&value[a * 6..a * 6 + 6], row.as_slice());
        }
    }
    check_gradient(
        |tape, v| {
            let out = tape.concat(v, -1)?;
            weighted_sum(tape, out)
        },
        &all_points,
    );
    check_gradient(
        |tape, v| {
            let transposed: Vec<_> = v.iter().map(|&x| tape.transpose(x)).collect();
            let out = tape.concat(&transposed, 0)?;
            weighted_sum(tape, out)
        },
        &all_points,
    );
    let mut tape = Tape::new();
    let a = tape.input(Tensor::zeros(&[2, 3]));
    let b = tape.input(Tensor::zeros(&[3, 3]));
    assert!(tape.concat(&[a, b], 1).is_err());
    assert!(tape.concat(&[a, b], 0).is_ok());
}

#[test]
fn reshape() {
    for point in points(&[3, 4, 2]) {
        let (value, shape) = forward_value(&point, |tape, v| tape.reshape(v[0], &[4, 6]));
        assert_eq!(shape, vec![4, 6]);
        assert_eq!(value, point[0].data());
    }
    check_gradient(
        |tape, v| {
            let out = tape.reshape(v[0], &[6, 4])?;
            let out = tape.expand_dims(out, 1)?;
            weighted_sum(tape, out)
        },
        &points(&[3, 4, 2]),
    );
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[3, 4]));
    assert!(tape.reshape(x, &[5, 2]).is_err());
    let column = tape.expand_dims(x, -1).unwrap();
    assert_eq!(tape.shape(column), &[3, 4, 1]);
}

#[test]
fn broadcast_to() {
    for point in points(&[3, 1]) {
        let (value, shape) = forward_value(&point, |tape, v| tape.broadcast_to(v[0], &[2, 3, 4]));
        assert_eq!(shape, vec![2, 3, 4]);
        for (flat, &x) in value.iter().enumerate() {
            assert_eq!(x, point[0].data()[(flat / 4) % 3]);
        }
    }
    check_gradient(
        |tape, v| {
            let out = tape.broadcast_to(v[0], &[2, 3, 4])?;
            weighted_sum(tape, out)
        },
        &points(&[3, 1]),
    );
    check_gradient(
        |tape, v| {
            let out = tape.broadcast_to(v[0], &[5])?;
            weighted_sum(tape, out)
        },
        &points(&[]),
    );
    let mut tape = Tape::new();
    let x = tape.input(Tensor::zeros(&[3, 2]));
    assert!(tape.broadcast_to(x, &[3, 4]).is_err());
    assert!(tape.broadcast_to(x, &[2]).is_err());
}
