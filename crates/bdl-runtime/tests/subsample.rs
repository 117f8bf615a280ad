//! Subsampled plates: each evaluation draws a fresh mini-batch of B of the N indices and scales
//! its log-likelihood by N/B, so the mini-batch log-likelihood is an unbiased estimate of the
//! full one. For every bundled model with a subsampled plate, the mean of many mini-batch
//! log-likelihoods (and of a few gradient coordinates) at a fixed point must equal the full-data
//! value within Monte Carlo error: |z| < 4 with the standard error from the sample's own spread.

mod common;

use bdl_infer::rng::stream_rng;
use rand::Rng as _;

/// Mini-batch evaluations per model.
const DRAWS: usize = 4000;

/// The sample mean and its standard error.
fn mean_and_standard_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

#[test]
fn mini_batch_log_likelihoods_average_to_the_full_one() {
    let mut tested = Vec::new();
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        if !model.subsampled {
            continue;
        }
        tested.push(name.clone());
        let mut points = stream_rng(5, 0);
        let position: Vec<f64> = (0..model.layout.dim())
            .map(|_| points.random_range(-1.0..1.0))
            .collect();
        // The full-data value: every plate in full, no scaling. With prior weight 0 the
        // gradient is the likelihood's alone (the parts are reported whatever the weights).
        let mut full = model.output_evaluator();
        let exact = full
            .evaluate(&position, 0.0, 1.0, &mut stream_rng(0, 0))
            .unwrap();
        // Coordinates to test: the first, one in the middle and the last (the noise scale).
        let dim = position.len();
        let coordinates = [0, dim / 2, dim - 1];
        let mut mini_batch = model.evaluator();
        let mut rng = stream_rng(9, 0);
        let mut likelihoods = Vec::with_capacity(DRAWS);
        let mut gradients = vec![Vec::with_capacity(DRAWS); coordinates.len()];
        for _ in 0..DRAWS {
            let evaluation = mini_batch.evaluate(&position, 0.0, 1.0, &mut rng).unwrap();
            // The prior part does not depend on the mini-batch.
            assert_eq!(
                evaluation.joint.prior.to_bits(),
                exact.joint.prior.to_bits(),
                "{name}"
            );
            likelihoods.push(evaluation.joint.likelihood);
            for (slot, &k) in coordinates.iter().enumerate() {
                gradients[slot].push(mini_batch.gradient()[k]);
            }
        }
        let mut distinct = likelihoods.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert!(
            distinct.len() > DRAWS / 2,
            "{name}: only {} distinct mini-batch values: are batches redrawn?",
            distinct.len()
        );
        let (mean, standard_error) = mean_and_standard_error(&likelihoods);
        let z = (mean - exact.joint.likelihood) / standard_error;
        assert!(
            z.abs() < 4.0,
            "{name}: mean mini-batch log-likelihood {mean} ± {standard_error} vs full {} (z = {z})",
            exact.joint.likelihood
        );
        for (slot, &k) in coordinates.iter().enumerate() {
            let want = full.gradient()[k];
            let (mean, standard_error) = mean_and_standard_error(&gradients[slot]);
            if standard_error == 0.0 {
                // A coordinate no mini-batch moves (a ReLU unit dead on every input) must be
                // exactly the full value.
                assert_eq!(mean, want, "{name} coordinate {k}");
                continue;
            }
            let z = (mean - want) / standard_error;
            assert!(
                z.abs() < 4.0,
                "{name} coordinate {k}: mean mini-batch gradient {mean} ± {standard_error} vs \
                 full {want} (z = {z})"
            );
        }
    }
    assert!(
        tested.iter().any(|name| name == "bayes_by_backprop"),
        "bayes_by_backprop should subsample; tested {tested:?}"
    );
}
