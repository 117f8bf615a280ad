//! `MixtureSameFamily`: log-densities against scipy (`scripts/numpyro_mixture.py` writes
//! `tests/data/mixture_reference.json`), gradients with respect to the value, the weights (as
//! probabilities and as logits) and the components' parameters against finite differences,
//! shapes under plates and `to_event`, draws whose moments match the mixture's within their
//! Monte Carlo error, and the errors for components and weights that cannot be mixed.

mod common;

use bdl_autodiff::check::gradient;
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_dist::{DistError, Distribution, Family, MixtureWeights, MIXTURE_COMPONENT_FAMILIES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// A mixture of `family` with constant parameters, weights as probabilities.
fn constant_mixture(
    tape: &mut Tape,
    family: &str,
    weights: &[f64],
    params: &[(&str, Tensor)],
) -> Result<Distribution, DistError> {
    let named: Vec<(&str, Var)> = params
        .iter()
        .map(|(name, value)| (*name, tape.constant(value.clone())))
        .collect();
    let component = Distribution::from_call(tape, family, &named)?;
    let weights = tape.constant(Tensor::vector(weights.to_vec()));
    Distribution::mixture(tape, MixtureWeights::Probs(weights), &component)
}

#[test]
fn log_densities_match_scipy() {
    let text = include_str!("data/mixture_reference.json");
    let reference: Value = serde_json::from_str(text).expect("JSON");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 6);
    for case in cases {
        let family = case["family"].as_str().expect("a family");
        let weights: Vec<f64> = common::tensor(&case["weights"]).data().to_vec();
        let params: Vec<(&str, Tensor)> = case["params"]
            .as_object()
            .expect("parameters")
            .iter()
            .map(|(name, value)| (name.as_str(), common::tensor(value)))
            .collect();
        let points = common::tensor(&case["points"]);
        let expected = common::tensor(&case["log_prob"]);
        let mut tape = Tape::new();
        let mixture = constant_mixture(&mut tape, family, &weights, &params).expect("a mixture");
        assert_eq!(mixture.batch_shape(), &[] as &[usize]);
        let value = tape.constant(points.clone());
        let log_prob = mixture.log_prob(&mut tape, value).expect("log_prob");
        assert_eq!(tape.shape(log_prob), points.shape());
        for ((got, want), x) in tape
            .value(log_prob)
            .data()
            .iter()
            .zip(expected.data())
            .zip(points.data())
        {
            assert!(
                (got - want).abs() <= 1e-10 * (1.0 + want.abs()),
                "{family} mixture at {x}: {got} against scipy's {want}"
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    // Inputs: weights (probabilities), loc, scale, value; every one differentiable.
    let inputs = [
        Tensor::vector(vec![0.2, 0.5, 0.3]),
        Tensor::vector(vec![-1.0, 0.5, 2.0]),
        Tensor::vector(vec![0.7, 1.3, 0.4]),
        Tensor::vector(vec![-0.8, 0.1, 1.9, 3.0]),
    ];
    gradient(
        |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
            let component =
                Distribution::from_call(tape, "Normal", &[("loc", vars[1]), ("scale", vars[2])])?;
            let mixture = Distribution::mixture(tape, MixtureWeights::Probs(vars[0]), &component)?;
            let log_prob = mixture.log_prob(tape, vars[3])?;
            Ok(tape.sum(log_prob))
        },
        &inputs,
        1e-6,
    )
    .expect("Normal mixture, weights as probabilities");
    // Logits, a StudentT component with every parameter differentiable, and a batch of two
    // mixtures (weights [2, 2]) against components of batch shape [2].
    let inputs = [
        Tensor::from_shape(&[2, 2], vec![0.3, -0.4, 1.2, 0.0]).expect("a matrix"),
        Tensor::vector(vec![3.0, 7.0]),
        Tensor::vector(vec![0.0, 2.5]),
        Tensor::vector(vec![1.0, 0.6]),
        Tensor::vector(vec![0.4, 2.2]),
    ];
    gradient(
        |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
            let component = Distribution::from_call(
                tape,
                "StudentT",
                &[("df", vars[1]), ("loc", vars[2]), ("scale", vars[3])],
            )?;
            let mixture = Distribution::mixture(tape, MixtureWeights::Logits(vars[0]), &component)?;
            let log_prob = mixture.log_prob(tape, vars[4])?;
            Ok(tape.sum(log_prob))
        },
        &inputs,
        1e-6,
    )
    .expect("StudentT mixture, weights as logits");
    // A positive family: the gradient through the value and the Gamma's parameters.
    let inputs = [
        Tensor::vector(vec![0.6, 0.4]),
        Tensor::vector(vec![2.0, 9.0]),
        Tensor::vector(vec![1.0, 3.0]),
        Tensor::vector(vec![0.5, 2.0, 4.0]),
    ];
    gradient(
        |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
            let component = Distribution::from_call(
                tape,
                "Gamma",
                &[("concentration", vars[1]), ("rate", vars[2])],
            )?;
            let mixture = Distribution::mixture(tape, MixtureWeights::Probs(vars[0]), &component)?;
            let log_prob = mixture.log_prob(tape, vars[3])?;
            Ok(tape.sum(log_prob))
        },
        &inputs,
        1e-6,
    )
    .expect("Gamma mixture");
}

#[test]
fn shapes_follow_the_weights_and_the_components() {
    let mut tape = Tape::new();
    // Components of batch [3, 2] (three mixtures of two), weights [2] shared.
    let loc = tape.constant(Tensor::from_shape(&[3, 2], vec![0.0; 6]).expect("a matrix"));
    let scale = tape.constant(Tensor::scalar(1.0));
    let component =
        Distribution::from_call(&mut tape, "Normal", &[("loc", loc), ("scale", scale)]).unwrap();
    let weights = tape.constant(Tensor::vector(vec![0.5, 0.5]));
    let mixture = Distribution::mixture(&mut tape, MixtureWeights::Probs(weights), &component)
        .expect("a mixture");
    assert_eq!(mixture.family(), Family::MixtureSameFamily);
    assert_eq!(mixture.batch_shape(), &[3]);
    assert!(mixture.event_shape().is_empty());
    // A plate of 4 rows outside: batch [4, 3]; to_event(1) makes events of 3.
    let expanded = mixture.expand(&[4, 3]).expect("expand");
    let value = tape.constant(Tensor::from_shape(&[4, 3], vec![0.1; 12]).expect("a matrix"));
    let log_prob = expanded.log_prob(&mut tape, value).expect("log_prob");
    assert_eq!(tape.shape(log_prob), &[4, 3]);
    let independent = expanded.to_event(1).expect("to_event");
    let summed = independent.log_prob(&mut tape, value).expect("log_prob");
    assert_eq!(tape.shape(summed), &[4]);
    // Each element is the density of a mixture of two identical standard normals.
    let standard = -0.5 * 0.01 - 0.5 * (2.0 * std::f64::consts::PI).ln();
    for got in tape.value(log_prob).data() {
        assert!((got - standard).abs() < 1e-12);
    }
    let draws = expanded
        .sample(&tape, &mut ChaCha8Rng::seed_from_u64(1), &[5])
        .expect("draws");
    assert_eq!(draws.shape(), &[5, 4, 3]);
}

#[test]
fn draws_have_the_mixtures_mean_and_variance() {
    // weights 0.3, 0.7; components Normal(-2, 0.5) and Normal(1, 1.5).
    let mut tape = Tape::new();
    let mixture = constant_mixture(
        &mut tape,
        "Normal",
        &[0.3, 0.7],
        &[
            ("loc", Tensor::vector(vec![-2.0, 1.0])),
            ("scale", Tensor::vector(vec![0.5, 1.5])),
        ],
    )
    .expect("a mixture");
    let n = 200_000;
    let draws = mixture
        .sample(&tape, &mut ChaCha8Rng::seed_from_u64(7), &[n])
        .expect("draws");
    let data = draws.data();
    let mean_exact = 0.3 * -2.0 + 0.7 * 1.0;
    let second = 0.3 * (0.25 + 4.0) + 0.7 * (2.25 + 1.0);
    let variance_exact: f64 = second - mean_exact * mean_exact;
    let mean = data.iter().sum::<f64>() / n as f64;
    let variance = data.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // The standard error of the mean is sd / √n; that of the variance √((μ₄ − σ⁴) / n), with the
    // fourth central moment estimated from the draws.
    let fourth = data.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64;
    let se_mean = (variance_exact / n as f64).sqrt();
    let se_variance = ((fourth - variance * variance) / n as f64).sqrt();
    assert!(
        (mean - mean_exact).abs() < 4.0 * se_mean,
        "mean {mean} against {mean_exact} (se {se_mean})"
    );
    assert!(
        (variance - variance_exact).abs() < 4.0 * se_variance,
        "variance {variance} against {variance_exact} (se {se_variance})"
    );
    // The share of draws below -0.5 is Σ wₖ Φ((−0.5 − μₖ) / σₖ).
    let below = data.iter().filter(|x| **x < -0.5).count() as f64 / n as f64;
    let phi = |z: f64| 0.5 * libm_erfc(-z / std::f64::consts::SQRT_2);
    let expected = 0.3 * phi((-0.5 + 2.0) / 0.5) + 0.7 * phi((-0.5 - 1.0) / 1.5);
    let se = (expected * (1.0 - expected) / n as f64).sqrt();
    assert!(
        (below - expected).abs() < 4.0 * se,
        "P(x < -0.5) {below} against {expected}"
    );
}

/// erfc through the tape's own implementation (one element).
fn libm_erfc(x: f64) -> f64 {
    let mut tape = Tape::new();
    let var = tape.constant(Tensor::scalar(x));
    let out = tape.erfc(var);
    tape.value(out).data()[0]
}

#[test]
fn components_and_weights_that_cannot_be_mixed_are_errors() {
    let mut tape = Tape::new();
    let weights = tape.constant(Tensor::vector(vec![0.5, 0.5]));
    // A discrete family.
    let rate = tape.constant(Tensor::vector(vec![1.0, 4.0]));
    let poisson = Distribution::from_call(&mut tape, "Poisson", &[("rate", rate)]).unwrap();
    assert!(Distribution::mixture(&mut tape, MixtureWeights::Probs(weights), &poisson).is_err());
    // A support that depends on the parameters.
    let low = tape.constant(Tensor::vector(vec![0.0, 1.0]));
    let high = tape.constant(Tensor::vector(vec![1.0, 3.0]));
    let uniform =
        Distribution::from_call(&mut tape, "Uniform", &[("low", low), ("high", high)]).unwrap();
    assert!(Distribution::mixture(&mut tape, MixtureWeights::Probs(weights), &uniform).is_err());
    // Three components, two weights.
    let loc = tape.constant(Tensor::vector(vec![0.0, 1.0, 2.0]));
    let scale = tape.constant(Tensor::scalar(1.0));
    let normal =
        Distribution::from_call(&mut tape, "Normal", &[("loc", loc), ("scale", scale)]).unwrap();
    assert!(matches!(
        Distribution::mixture(&mut tape, MixtureWeights::Probs(weights), &normal),
        Err(DistError::ShapeMismatch { .. })
    ));
    // Negative and all-zero weights.
    for bad in [vec![-0.5, 0.5, 1.0], vec![0.0, 0.0, 0.0]] {
        let bad = tape.constant(Tensor::vector(bad));
        assert!(matches!(
            Distribution::mixture(&mut tape, MixtureWeights::Probs(bad), &normal),
            Err(DistError::InvalidParameter { .. })
        ));
    }
    // A single component with no batch axis to mix along.
    let one = tape.constant(Tensor::scalar(0.0));
    let single =
        Distribution::from_call(&mut tape, "Normal", &[("loc", one), ("scale", scale)]).unwrap();
    let w1 = tape.constant(Tensor::vector(vec![1.0]));
    assert!(Distribution::mixture(&mut tape, MixtureWeights::Probs(w1), &single).is_err());
    // The family cannot be built from tensors alone.
    assert!(
        Distribution::from_call(&mut tape, "MixtureSameFamily", &[("weights", weights)]).is_err()
    );
    assert!(MIXTURE_COMPONENT_FAMILIES.contains(&Family::Normal));
    assert!(!MIXTURE_COMPONENT_FAMILIES.contains(&Family::Uniform));
}
