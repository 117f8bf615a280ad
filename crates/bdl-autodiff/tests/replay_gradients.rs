//! Gradients after replays equal those of a brand-new tape: no backward pass may leave stale
//! values that a later pass adds to (a regression test for broadcast operands whose partner
//! needs no gradient).

use bdl_autodiff::{Tape, Tensor, Var};

/// log N(x; 0, 1) summed, written as the distributions crate writes it: a vector input against
/// scalar constants.
fn normal_log_density(tape: &mut Tape, x: &[f64]) -> (Var, Var) {
    let input = tape.input(Tensor::vector(x.to_vec()));
    let loc = tape.constant(Tensor::scalar(0.0));
    let scale = tape.constant(Tensor::scalar(1.0));
    let centred = tape.sub(input, loc).unwrap();
    let z = tape.div(centred, scale).unwrap();
    let z_squared = tape.square(z);
    let half = tape.mul_scalar(z_squared, -0.5);
    let log_scale = tape.log(scale);
    let log_density = tape.sub(half, log_scale).unwrap();
    let total = tape.sum(log_density);
    (input, total)
}

#[test]
fn replayed_gradients_equal_a_new_tapes() {
    let points = [
        [0.5, 0.1, -0.2],
        [1.5, -0.4, 0.7],
        [0.5, 0.1, -0.2],
        [-3.0, 2.0, 0.0],
    ];
    let mut replayed = Tape::new();
    let (input, total) = normal_log_density(&mut replayed, &points[0]);
    for point in points {
        replayed.set_value(input, &point).unwrap();
        replayed.replay().unwrap();
        replayed.backward(total).unwrap();
        let mut fresh = Tape::new();
        let (fresh_input, fresh_total) = normal_log_density(&mut fresh, &point);
        fresh.backward(fresh_total).unwrap();
        assert_eq!(
            replayed.grad(input),
            fresh.grad(fresh_input),
            "at {point:?}"
        );
        let expected: Vec<f64> = point.iter().map(|x| -x).collect();
        assert_eq!(replayed.grad(input), expected.as_slice());
    }
}
