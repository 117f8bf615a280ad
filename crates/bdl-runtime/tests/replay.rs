//! Replaying a recording gives bit-identical results to interpreting the model afresh, for every
//! bundled model: the objective, its likelihood and prior parts and its gradient under the
//! weights SVI varies (KL weight, analytic-KL switch), HMC's log density, and the constrained
//! values of the output sites.

mod common;

use bdl_autodiff::check::bits_equal;
use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;
use rand::Rng as _;

/// The `(prior_weight, normal_weight)` of each round: plain, KL-weighted, analytic KL (the fixed
/// normal priors left out), and both.
const WEIGHTS: [(f64, f64); 4] = [(1.0, 1.0), (0.7, 1.0), (0.1, 0.0), (0.25, 0.5)];

#[test]
fn replay_equals_fresh_interpretation_bit_for_bit() {
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        let mut replaying = model.evaluator();
        assert!(replaying.replays(), "{name} should be static");
        let mut points = stream_rng(7, 0);
        for (round, &(prior_weight, normal_weight)) in WEIGHTS.iter().enumerate() {
            let position: Vec<f64> = (0..model.layout.dim())
                .map(|_| points.random_range(-1.0..1.0))
                .collect();
            let mut rng_a = stream_rng(3, round as u64);
            let mut rng_b = stream_rng(3, round as u64);
            let a = replaying
                .evaluate(&position, prior_weight, normal_weight, &mut rng_a)
                .unwrap();
            // A brand-new evaluator (a new tape) interprets the model afresh.
            let mut fresh = model.evaluator();
            fresh.set_replay(false);
            let b = fresh
                .evaluate(&position, prior_weight, normal_weight, &mut rng_b)
                .unwrap();
            let parts = |e: &bdl_runtime::model::Evaluation| {
                [e.objective, e.joint.likelihood, e.joint.prior]
            };
            assert!(
                bits_equal(&parts(&a), &parts(&b)),
                "{name} round {round}: {a:?} vs {b:?}"
            );
            assert!(
                bits_equal(replaying.gradient(), fresh.gradient()),
                "{name} round {round}: gradients differ"
            );
        }
    }
}

#[test]
fn replayed_log_density_equals_fresh_interpretation_bit_for_bit() {
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        let dim = model.layout.latent_dim();
        let mut replaying = model.log_density();
        let mut fresh = model.log_density();
        fresh.evaluator().set_replay(false);
        assert!(replaying.evaluator().replays() && !fresh.evaluator().replays());
        let mut points = stream_rng(8, 0);
        for round in 0..3 {
            let position: Vec<f64> = (0..dim).map(|_| points.random_range(-1.0..1.0)).collect();
            let mut gradient_a = vec![0.0; dim];
            let mut gradient_b = vec![0.0; dim];
            let a = replaying
                .log_density_gradient(&position, &mut gradient_a)
                .unwrap();
            let b = fresh
                .log_density_gradient(&position, &mut gradient_b)
                .unwrap();
            assert_eq!(a.to_bits(), b.to_bits(), "{name} round {round}: {a} vs {b}");
            assert!(bits_equal(&gradient_a, &gradient_b), "{name} round {round}");
        }
    }
}

#[test]
fn replayed_constrained_values_equal_fresh_interpretation_bit_for_bit() {
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        let mut replaying = model.output_evaluator();
        let mut points = stream_rng(9, 0);
        for round in 0..3 {
            let position: Vec<f64> = (0..model.layout.dim())
                .map(|_| points.random_range(-1.0..1.0))
                .collect();
            let replayed = replaying
                .constrained(&position, &mut stream_rng(0, 0))
                .unwrap();
            let fresh = model.constrained_values(&position).unwrap();
            // The same sites (matched by name: callers look values up by name).
            let mut replayed_names: Vec<&str> = replayed.iter().map(|(n, _)| n.as_str()).collect();
            let mut fresh_names: Vec<&str> = fresh.iter().map(|(n, _)| n.as_str()).collect();
            replayed_names.sort_unstable();
            fresh_names.sort_unstable();
            assert_eq!(replayed_names, fresh_names, "{name}");
            assert_eq!(replayed.len(), model.output_sites().len(), "{name}");
            for (site, a) in &replayed {
                let b = &fresh.iter().find(|(n, _)| n == site).unwrap().1;
                assert_eq!(a.shape(), b.shape(), "{name} {site}");
                assert!(
                    bits_equal(a.data(), b.data()),
                    "{name} round {round}: site {site} differs"
                );
            }
        }
    }
}
