//! Properties of the tape as a whole: deep graphs, gradient accumulation, replay against rebuild,
//! reuse after clearing, leaf updates, and independent clones in parallel.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use bdl_autodiff::check::bits_equal;
use bdl_autodiff::{Tape, Tensor, TensorError, Var};
use rayon::prelude::*;

#[test]
fn a_chain_of_one_hundred_thousand_nodes_does_not_overflow_the_stack() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::scalar(0.5));
    let mut y = x;
    for _ in 0..100_000 {
        // y ← y · 1 + 0 keeps the value while making two nodes per step.
        let scaled = tape.mul_scalar(y, 1.0);
        y = tape.add_scalar(scaled, 0.0);
    }
    assert!(tape.len() > 100_000);
    tape.backward(y).unwrap();
    assert_eq!(tape.grad(x), &[1.0]);
    assert_eq!(tape.value(y).item(), Ok(0.5));
}

#[test]
fn a_value_used_many_times_accumulates_its_gradient() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::vector(vec![1.5, -2.0]));
    // f(x) = Σ (x + x + ... + x) with 1000 terms, plus Σ x·x: ∂f/∂x = 1000 + 2x.
    let mut total = x;
    for _ in 1..1000 {
        total = tape.add(total, x).unwrap();
    }
    let square = tape.mul(x, x).unwrap();
    let both = tape.add(total, square).unwrap();
    let f = tape.sum(both);
    tape.backward(f).unwrap();
    assert_eq!(tape.grad(x), &[1003.0, 996.0]);
}

/// A small model touching many op families: a two-layer network with a log-likelihood.
fn model(tape: &mut Tape, weights: &[f64], bias: &[f64]) -> (Var, Var, Var) {
    let w = tape.input(Tensor::matrix(2, 3, weights.to_vec()).unwrap());
    let b = tape.input(Tensor::vector(bias.to_vec()));
    let x = tape
        .constant(Tensor::matrix(4, 2, vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8]).unwrap());
    let hidden = tape.matmul(x, w).unwrap();
    let shifted = tape.add(hidden, b).unwrap();
    let activated = tape.exp(shifted);
    let logged = tape.log(activated);
    let squared = tape.mul(logged, shifted).unwrap();
    let total = tape.sum(squared);
    (total, w, b)
}

#[test]
fn replay_is_bit_identical_to_rebuilding() {
    let first = ([0.3, -0.1, 0.7, 1.2, -0.4, 0.05], [0.1, 0.2, -0.3]);
    let second = ([-1.3, 0.9, 0.2, -0.2, 2.4, 0.5], [1.1, -0.7, 0.3]);

    let mut replayed = Tape::new();
    let (output, w, b) = model(&mut replayed, &first.0, &first.1);
    replayed.backward(output).unwrap();
    replayed.set_value(w, &second.0).unwrap();
    replayed.set_value(b, &second.1).unwrap();
    replayed.replay().unwrap();
    replayed.backward(output).unwrap();

    let mut rebuilt = Tape::new();
    let (rebuilt_output, rebuilt_w, rebuilt_b) = model(&mut rebuilt, &second.0, &second.1);
    rebuilt.backward(rebuilt_output).unwrap();

    assert_eq!(replayed.len(), rebuilt.len());
    for index in 0..rebuilt.len() {
        let (a, b) = (
            replayed.value(Var::from_index(index)),
            rebuilt.value(Var::from_index(index)),
        );
        assert!(bits_equal(a.data(), b.data()), "node {index} differs");
    }
    assert!(bits_equal(replayed.grad(w), rebuilt.grad(rebuilt_w)));
    assert!(bits_equal(replayed.grad(b), rebuilt.grad(rebuilt_b)));
}

#[test]
fn a_cleared_tape_records_again_with_the_same_results() {
    let mut tape = Tape::new();
    let (output, w, _) = model(
        &mut tape,
        &[0.3, -0.1, 0.7, 1.2, -0.4, 0.05],
        &[0.1, 0.2, -0.3],
    );
    tape.backward(output).unwrap();
    let first_value = tape.value(output).item().unwrap();
    let first_grad = tape.grad(w).to_vec();
    tape.clear();
    assert!(tape.is_empty());
    let (output, w, _) = model(
        &mut tape,
        &[0.3, -0.1, 0.7, 1.2, -0.4, 0.05],
        &[0.1, 0.2, -0.3],
    );
    tape.backward(output).unwrap();
    assert_eq!(
        tape.value(output).item().unwrap().to_bits(),
        first_value.to_bits()
    );
    assert!(bits_equal(tape.grad(w), &first_grad));
}

#[test]
fn truncate_removes_later_nodes_only() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::scalar(2.0));
    let y = tape.exp(x);
    let mark = tape.mark();
    let z = tape.log(y);
    assert_eq!(z.index(), mark);
    tape.truncate(mark);
    assert_eq!(tape.len(), mark);
    let w = tape.mul(y, x).unwrap();
    tape.backward(w).unwrap();
    // d(x eˣ)/dx = (1 + x) eˣ.
    assert!((tape.grad(x)[0] - 3.0 * 2f64.exp()).abs() < 1e-12);
}

#[test]
fn backward_resets_earlier_gradients_and_skips_unreached_nodes() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::scalar(3.0));
    let y = tape.input(Tensor::scalar(4.0));
    let fx = tape.square(x);
    let fy = tape.square(y);
    tape.backward(fx).unwrap();
    assert_eq!(tape.grad(x), &[6.0]);
    assert_eq!(tape.grad(y), &[0.0]);
    tape.backward(fy).unwrap();
    assert_eq!(tape.grad(x), &[0.0]);
    assert_eq!(tape.grad(y), &[8.0]);
}

#[test]
fn leaf_updates_and_outputs_are_checked() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::vector(vec![1.0, 2.0]));
    let y = tape.exp(x);
    assert_eq!(
        tape.set_value(x, &[1.0]),
        Err(TensorError::DataLength {
            op: "set_value",
            shape: vec![2],
            actual: 1
        })
    );
    assert_eq!(
        tape.set_value(y, &[1.0, 2.0]),
        Err(TensorError::NotALeaf { node: 1 })
    );
    assert!(matches!(
        tape.backward(y),
        Err(TensorError::NotOneElement { .. })
    ));
    let c = tape.constant_from(&[2], &[5.0, 6.0]).unwrap();
    assert!(tape.set_value(c, &[7.0, 8.0]).is_ok());
    assert!(tape.input_from(&[3], &[1.0]).is_err());
}

/// log density of a standard normal vector, as a small stand-in for a model's gradient.
fn log_density_gradient(tape: &mut Tape, point: &[f64]) -> Vec<f64> {
    tape.clear();
    let x = tape.input_from(&[point.len()], point).unwrap();
    let squares = tape.square(x);
    let total = tape.sum(squares);
    let scaled = tape.mul_scalar(total, -0.5);
    let exp = tape.exp(x);
    let rest = tape.sum(exp);
    let output = tape.add(scaled, rest).unwrap();
    tape.backward(output).unwrap();
    tape.grad(x).to_vec()
}

#[test]
fn parallel_clones_give_the_same_gradients_as_serial_evaluation() {
    let points: Vec<Vec<f64>> = (0..64)
        .map(|i| (0..5).map(|j| ((i * 5 + j) as f64 * 0.37).sin()).collect())
        .collect();
    let template = Tape::new();
    let serial: Vec<Vec<f64>> = {
        let mut tape = template.clone();
        points
            .iter()
            .map(|p| log_density_gradient(&mut tape, p))
            .collect()
    };
    let parallel: Vec<Vec<f64>> = points
        .par_iter()
        .map_init(|| template.clone(), |tape, p| log_density_gradient(tape, p))
        .collect();
    for (s, p) in serial.iter().zip(&parallel) {
        assert!(bits_equal(s, p));
    }
}

#[test]
fn recorded_tapes_clone_into_independent_replays() {
    let mut template = Tape::new();
    let (output, w, b) = model(&mut template, &[0.0; 6], &[0.0; 3]);
    let results: Vec<(f64, Vec<f64>)> = (0..16)
        .into_par_iter()
        .map_init(
            || template.clone(),
            |tape, i| {
                let shift = i as f64 * 0.1;
                tape.set_value(w, &[shift, -shift, 0.5, 0.2, shift, 1.0])
                    .unwrap();
                tape.set_value(b, &[shift, 0.0, -shift]).unwrap();
                tape.replay().unwrap();
                tape.backward(output).unwrap();
                (tape.value(output).item().unwrap(), tape.grad(w).to_vec())
            },
        )
        .collect();
    for (i, (value, grad)) in results.iter().enumerate() {
        let shift = i as f64 * 0.1;
        let mut fresh = Tape::new();
        let (fresh_output, fresh_w, _) = model(
            &mut fresh,
            &[shift, -shift, 0.5, 0.2, shift, 1.0],
            &[shift, 0.0, -shift],
        );
        fresh.backward(fresh_output).unwrap();
        assert_eq!(
            value.to_bits(),
            fresh.value(fresh_output).item().unwrap().to_bits()
        );
        assert!(bits_equal(grad, fresh.grad(fresh_w)));
    }
}

#[test]
fn intermediate_gradients_survive_buffer_hand_overs() {
    // b = a + 1 hands its gradient buffer to a (the gradient of a sum passes through); a later
    // contribution to a from c = 2a must not change what grad(b) reports.
    let mut tape = Tape::new();
    let x = tape.input(Tensor::vector(vec![0.5, -1.0]));
    let a = tape.exp(x);
    let c = tape.mul_scalar(a, 2.0);
    let b = tape.add_scalar(a, 1.0);
    let d = tape.reshape(b, &[2, 1]).unwrap();
    let sum_c = tape.sum(c);
    let sum_d = tape.sum(d);
    let output = tape.add(sum_d, sum_c).unwrap();
    tape.backward(output).unwrap();
    assert_eq!(tape.grad(output), &[1.0]);
    assert_eq!(tape.grad(sum_d), &[1.0]);
    assert_eq!(tape.grad(d), &[1.0, 1.0]);
    assert_eq!(tape.grad(b), &[1.0, 1.0]);
    assert_eq!(tape.grad(c), &[1.0, 1.0]);
    assert_eq!(tape.grad(a), &[3.0, 3.0]);
    let expected: Vec<f64> = [0.5f64, -1.0].iter().map(|v| 3.0 * v.exp()).collect();
    assert_eq!(tape.grad(x), expected.as_slice());
    // A second pass over the same tape starts from clean bookkeeping.
    tape.backward(sum_d).unwrap();
    assert_eq!(tape.grad(b), &[1.0, 1.0]);
    assert_eq!(tape.grad(a), &[1.0, 1.0]);
    assert_eq!(tape.grad(c), &[0.0, 0.0]);
}
