//! Replaying a recording gives bit-identical log densities and gradients to interpreting the
//! model afresh, for every bundled model.

mod common;

use bdl_infer::rng::stream_rng;
use rand::Rng as _;

#[test]
fn replay_equals_fresh_interpretation_bit_for_bit() {
    for name in ["eight_schools", "bayes_linreg", "poly_regression", "sine_bnn", "iris_bnn", "logistic", "shallow_bnn", "bayes_by_backprop"] {
        let model = common::load_model(&format!("{name}.bdl"));
        let mut replaying = model.evaluator();
        assert!(replaying.replays(), "{name} should be static");
        let mut points = stream_rng(7, 0);
        for round in 0..4 {
            let position: Vec<f64> = (0..model.layout.dim()).map(|_| points.random_range(-1.0..1.0)).collect();
            let mut rng_a = stream_rng(3, round);
            let mut rng_b = stream_rng(3, round);
            let a = replaying.evaluate(&position, 0.7, 1.0, &mut rng_a).unwrap();
            // A brand-new evaluator (a new tape) interprets the model afresh.
            let mut fresh = model.evaluator();
            fresh.set_replay(false);
            let b = fresh.evaluate(&position, 0.7, 1.0, &mut rng_b).unwrap();
            assert_eq!(a.objective.to_bits(), b.objective.to_bits(), "{name} round {round}: {} vs {}", a.objective, b.objective);
            let same = replaying.gradient().iter().zip(fresh.gradient()).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{name} round {round}: gradients differ");
        }
    }
}
