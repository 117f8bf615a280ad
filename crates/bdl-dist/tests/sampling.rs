//! Sampling agrees with the density: for every family, 10,000 draws with a fixed seed pass a
//! Kolmogorov–Smirnov test (continuous; multivariate families through marginals and
//! projections with known laws) or a chi-square test (discrete) at the significance level
//! fixed in advance below, and their sample mean and variance are within four Monte Carlo
//! standard errors of the analytic ones (the standard error estimated from the sample itself).
//!
//! Reference distribution functions come from statrs, independently of this crate's
//! log-densities; expected counts of the chi-square tests come from this crate's log-masses,
//! which `reference.rs` checks against SciPy.

mod common;

use bdl_autodiff::{Tape, Tensor};
use bdl_dist::{Distribution, Family};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{
    Beta, Cauchy, ContinuousCDF, Exp, Gamma, InverseGamma, Laplace, LogNormal, Normal, StudentsT,
    Uniform,
};
use statrs::function::erf::{erf, erfc};
use std::f64::consts::{PI, SQRT_2};

/// Draws per test.
const DRAWS: usize = 10_000;
/// A goodness-of-fit test fails below this p-value, fixed before any test was run.
const SIGNIFICANCE: f64 = 1e-3;
/// Moments fail beyond this many Monte Carlo standard errors.
const Z_LIMIT: f64 = 4.0;
const SEED: u64 = 20_240_501;

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(SEED)
}

fn build(tape: &mut Tape, family: Family, params: &[(&str, Tensor)]) -> Distribution {
    Distribution::with_constants(tape, family, params).expect("valid parameters")
}

/// Draws `DRAWS` samples; returns the flat buffer (each draw's elements contiguous).
fn draws(family: Family, params: &[(&str, Tensor)]) -> (Distribution, Tape, Vec<f64>) {
    let mut tape = Tape::new();
    let distribution = build(&mut tape, family, params);
    let sample = distribution
        .sample(&tape, &mut rng(), &[DRAWS])
        .expect("sampleable");
    let data = sample.data().to_vec();
    (distribution, tape, data)
}

/// The Kolmogorov–Smirnov p-value of `samples` against `cdf`, from the asymptotic Kolmogorov
/// distribution with Stephens' small-sample correction.
fn ks_p_value(samples: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len() as f64;
    let mut statistic: f64 = 0.0;
    for (index, &x) in sorted.iter().enumerate() {
        let f = cdf(x);
        statistic = statistic
            .max(f - index as f64 / n)
            .max((index + 1) as f64 / n - f);
    }
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * statistic;
    let mut p = 0.0;
    for k in 1..200 {
        let term = 2.0 * (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        p += if k % 2 == 1 { term } else { -term };
    }
    p.clamp(0.0, 1.0)
}

fn assert_ks(name: &str, samples: &[f64], cdf: impl Fn(f64) -> f64) {
    let p = ks_p_value(samples, cdf);
    assert!(p > SIGNIFICANCE, "{name}: Kolmogorov–Smirnov p-value {p:e}");
}

/// Sample mean and variance within `Z_LIMIT` standard errors of `mean` and `variance` (the
/// variance's standard error from the sample fourth central moment).
fn assert_moments(name: &str, samples: &[f64], mean: f64, variance: Option<f64>) {
    let n = samples.len() as f64;
    let sample_mean = samples.iter().sum::<f64>() / n;
    let centred: Vec<f64> = samples.iter().map(|x| x - sample_mean).collect();
    let sample_variance = centred.iter().map(|c| c * c).sum::<f64>() / (n - 1.0);
    let z = (sample_mean - mean) / (sample_variance / n).sqrt();
    assert!(
        z.abs() < Z_LIMIT,
        "{name}: mean {sample_mean} vs {mean} (z = {z})"
    );
    if let Some(variance) = variance {
        let fourth = centred.iter().map(|c| c.powi(4)).sum::<f64>() / n;
        let error = ((fourth - sample_variance * sample_variance) / n).sqrt();
        let z = (sample_variance - variance) / error;
        assert!(
            z.abs() < Z_LIMIT,
            "{name}: variance {sample_variance} vs {variance} (z = {z})"
        );
    }
}

/// One continuous scalar family: KS against `cdf`, and moments from the distribution itself
/// (the variance only when `finite_fourth_moment`).
fn continuous(
    family: Family,
    params: &[(&str, Tensor)],
    cdf: impl Fn(f64) -> f64,
    finite_fourth_moment: bool,
) {
    let (distribution, tape, samples) = draws(family, params);
    let name = format!("{family:?} {params:?}");
    assert!(
        distribution
            .support(&tape)
            .check(&Tensor::vector(samples.clone())),
        "{name}: draw outside the support"
    );
    assert_ks(&name, &samples, cdf);
    if finite_fourth_moment {
        let mean = distribution
            .mean(&tape)
            .expect("a mean")
            .item()
            .expect("scalar");
        let variance = distribution
            .variance(&tape)
            .expect("a variance")
            .item()
            .expect("scalar");
        assert_moments(&name, &samples, mean, Some(variance));
    }
}

fn s(x: f64) -> Tensor {
    Tensor::scalar(x)
}

fn ndtr(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

#[test]
fn continuous_families_match_their_distribution_functions() {
    let normal = Normal::new(0.5, 2.0).unwrap();
    continuous(
        Family::Normal,
        &[("loc", s(0.5)), ("scale", s(2.0))],
        |x| normal.cdf(x),
        true,
    );
    continuous(
        Family::HalfNormal,
        &[("scale", s(1.5))],
        |x| erf(x / (1.5 * SQRT_2)),
        true,
    );
    let lognormal = LogNormal::new(0.2, 0.5).unwrap();
    continuous(
        Family::LogNormal,
        &[("loc", s(0.2)), ("scale", s(0.5))],
        |x| lognormal.cdf(x),
        true,
    );
    let uniform = Uniform::new(-1.0, 3.0).unwrap();
    continuous(
        Family::Uniform,
        &[("low", s(-1.0)), ("high", s(3.0))],
        |x| uniform.cdf(x),
        true,
    );
    let exponential = Exp::new(2.5).unwrap();
    continuous(
        Family::Exponential,
        &[("rate", s(2.5))],
        |x| exponential.cdf(x),
        true,
    );
    let gamma = Gamma::new(2.5, 1.5).unwrap();
    continuous(
        Family::Gamma,
        &[("concentration", s(2.5)), ("rate", s(1.5))],
        |x| gamma.cdf(x),
        true,
    );
    let small_gamma = Gamma::new(0.2, 1.0).unwrap();
    continuous(
        Family::Gamma,
        &[("concentration", s(0.2)), ("rate", s(1.0))],
        |x| small_gamma.cdf(x),
        true,
    );
    let inverse_gamma = InverseGamma::new(6.0, 2.0).unwrap();
    continuous(
        Family::InverseGamma,
        &[("concentration", s(6.0)), ("rate", s(2.0))],
        |x| inverse_gamma.cdf(x),
        true,
    );
    let beta = Beta::new(2.0, 5.0).unwrap();
    continuous(
        Family::Beta,
        &[("concentration1", s(2.0)), ("concentration0", s(5.0))],
        |x| beta.cdf(x),
        true,
    );
    let small_beta = Beta::new(0.3, 0.4).unwrap();
    continuous(
        Family::Beta,
        &[("concentration1", s(0.3)), ("concentration0", s(0.4))],
        |x| small_beta.cdf(x),
        true,
    );
    let cauchy = Cauchy::new(-1.0, 0.5).unwrap();
    continuous(
        Family::Cauchy,
        &[("loc", s(-1.0)), ("scale", s(0.5))],
        |x| cauchy.cdf(x),
        false,
    );
    continuous(
        Family::HalfCauchy,
        &[("scale", s(2.0))],
        |x| 2.0 / PI * (x / 2.0).atan(),
        false,
    );
    let student = StudentsT::new(0.3, 1.5, 5.0).unwrap();
    continuous(
        Family::StudentT,
        &[("df", s(5.0)), ("loc", s(0.3)), ("scale", s(1.5))],
        |x| student.cdf(x),
        false,
    );
    let laplace = Laplace::new(1.0, 0.7).unwrap();
    continuous(
        Family::Laplace,
        &[("loc", s(1.0)), ("scale", s(0.7))],
        |x| laplace.cdf(x),
        true,
    );
    continuous(
        Family::Logistic,
        &[("loc", s(0.5)), ("scale", s(1.2))],
        |x| 1.0 / (1.0 + (-(x - 0.5) / 1.2).exp()),
        true,
    );
}

#[test]
fn student_t_moments_with_finite_fourth_moment() {
    // Above, df = 5 has no finite fourth moment of the variance estimate's error; check the
    // moments at df = 12, where it is finite.
    let (distribution, tape, samples) = draws(
        Family::StudentT,
        &[("df", s(12.0)), ("loc", s(-2.0)), ("scale", s(0.5))],
    );
    let mean = distribution.mean(&tape).unwrap().item().unwrap();
    let variance = distribution.variance(&tape).unwrap().item().unwrap();
    assert_moments("StudentT(12)", &samples, mean, Some(variance));
}

#[test]
fn truncated_normal_in_the_body_and_the_tails() {
    for (loc, scale, low, high) in [
        (0.5, 2.0, -1.0, 3.0),
        (0.0, 1.0, 5.0, f64::INFINITY),
        (1.0, 2.0, f64::NEG_INFINITY, -3.0),
        (0.0, 1.0, -30.0, -20.0),
    ] {
        let params = [
            ("loc", s(loc)),
            ("scale", s(scale)),
            ("low", s(low)),
            ("high", s(high)),
        ];
        let (alpha, beta) = ((low - loc) / scale, (high - loc) / scale);
        // The reflected form keeps the tail probabilities accurate.
        let cdf = move |x: f64| {
            let z = (x - loc) / scale;
            if alpha + beta > 0.0 {
                1.0 - (ndtr(-z) - ndtr(-beta)) / (ndtr(-alpha) - ndtr(-beta))
            } else {
                (ndtr(z) - ndtr(alpha)) / (ndtr(beta) - ndtr(alpha))
            }
        };
        continuous(Family::TruncatedNormal, &params, cdf, true);
    }
}

/// Chi-square goodness of fit of integer draws against the family's own log-mass, with outcomes
/// pooled (from both ends inwards) until every cell expects at least five draws.
fn discrete(family: Family, params: &[(&str, Tensor)], max_outcome: usize) {
    let (distribution, mut tape, samples) = draws(family, params);
    let name = format!("{family:?} {params:?}");
    let outcomes = tape.constant(Tensor::vector(
        (0..=max_outcome).map(|k| k as f64).collect(),
    ));
    let log_mass = distribution
        .log_prob(&mut tape, outcomes)
        .expect("log_prob");
    let mut probabilities: Vec<f64> = tape
        .value(log_mass)
        .data()
        .iter()
        .map(|l| l.exp())
        .collect();
    let tail = 1.0 - probabilities.iter().sum::<f64>();
    assert!(
        tail < 1e-9,
        "{name}: outcomes beyond {max_outcome} have mass {tail}"
    );
    let mut counts = vec![0.0; max_outcome + 1];
    for &x in &samples {
        assert!(
            x >= 0.0 && x.fract() == 0.0 && x <= max_outcome as f64,
            "{name}: draw {x}"
        );
        counts[x as usize] += 1.0;
    }
    // Pool cells with small expectations into their neighbours.
    let n = samples.len() as f64;
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let (mut pooled_p, mut pooled_count) = (0.0, 0.0);
    for (p, count) in probabilities.drain(..).zip(counts) {
        pooled_p += p;
        pooled_count += count;
        if pooled_p * n >= 5.0 {
            cells.push((pooled_p, pooled_count));
            pooled_p = 0.0;
            pooled_count = 0.0;
        }
    }
    if let Some(last) = cells.last_mut() {
        last.0 += pooled_p;
        last.1 += pooled_count;
    }
    let statistic: f64 = cells
        .iter()
        .map(|(p, count)| (count - n * p).powi(2) / (n * p))
        .sum();
    let degrees = cells.len().saturating_sub(1).max(1) as f64;
    let chi_squared = statrs::distribution::ChiSquared::new(degrees).unwrap();
    let p_value = 1.0 - chi_squared.cdf(statistic);
    assert!(
        p_value > SIGNIFICANCE,
        "{name}: chi-square p-value {p_value:e} over {} cells",
        cells.len()
    );
    if let (Some(mean), Some(variance)) = (distribution.mean(&tape), distribution.variance(&tape)) {
        assert_moments(
            &name,
            &samples,
            mean.item().unwrap(),
            Some(variance.item().unwrap()),
        );
    }
}

#[test]
fn discrete_families_match_their_mass_functions() {
    discrete(Family::Bernoulli, &[("probs", s(0.3))], 1);
    discrete(Family::Bernoulli, &[("logits", s(-1.2))], 1);
    discrete(
        Family::Binomial,
        &[("total_count", s(20.0)), ("probs", s(0.35))],
        20,
    );
    discrete(
        Family::Binomial,
        &[("total_count", s(8.0)), ("logits", s(1.5))],
        8,
    );
    discrete(Family::Poisson, &[("rate", s(4.5))], 40);
    discrete(Family::Poisson, &[("rate", s(150.0))], 400);
    discrete(
        Family::NegativeBinomial,
        &[("total_count", s(3.5)), ("probs", s(0.4))],
        80,
    );
    discrete(
        Family::NegativeBinomial,
        &[("total_count", s(1.5)), ("logits", s(0.5))],
        150,
    );
    discrete(
        Family::Categorical,
        &[("probs", Tensor::vector(vec![0.1, 0.2, 0.3, 0.4]))],
        3,
    );
    discrete(
        Family::Categorical,
        &[("logits", Tensor::vector(vec![1.0, -0.5, 0.0]))],
        2,
    );
}

/// Column `index` of draws with `width` elements each.
fn column(samples: &[f64], width: usize, index: usize) -> Vec<f64> {
    samples.chunks(width).map(|draw| draw[index]).collect()
}

#[test]
fn dirichlet_marginals_are_beta() {
    let alpha = [1.5, 2.5, 0.7];
    let total: f64 = alpha.iter().sum();
    let (distribution, tape, samples) = draws(
        Family::Dirichlet,
        &[("concentration", Tensor::vector(alpha.to_vec()))],
    );
    let mean = distribution.mean(&tape).unwrap();
    let variance = distribution.variance(&tape).unwrap();
    for (i, a) in alpha.iter().enumerate() {
        let marginal = column(&samples, 3, i);
        let beta = Beta::new(*a, total - a).unwrap();
        assert_ks(&format!("Dirichlet marginal {i}"), &marginal, |x| {
            beta.cdf(x)
        });
        assert_moments(
            &format!("Dirichlet marginal {i}"),
            &marginal,
            mean.data()[i],
            Some(variance.data()[i]),
        );
    }
    for draw in samples.chunks(3) {
        assert!((draw.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn multivariate_normal_projections_are_normal() {
    let loc = [1.0, -1.0, 0.5];
    let covariance = [2.0, 0.3, -0.4, 0.3, 1.0, 0.2, -0.4, 0.2, 0.5];
    let lower = [1.0, 0.0, 0.0, 0.3, 0.9, 0.0, -0.4, 0.2, 0.5];
    let lower_covariance: Vec<f64> = (0..9)
        .map(|index| {
            let (i, j) = (index / 3, index % 3);
            (0..3).map(|k| lower[i * 3 + k] * lower[j * 3 + k]).sum()
        })
        .collect();
    let precision = invert3(&covariance);
    for (name, matrix, sigma) in [
        (
            "covariance_matrix",
            covariance.to_vec(),
            covariance.to_vec(),
        ),
        ("precision_matrix", precision, covariance.to_vec()),
        ("scale_tril", lower.to_vec(), lower_covariance),
    ] {
        let params = [
            ("loc", Tensor::vector(loc.to_vec())),
            (name, Tensor::from_shape(&[3, 3], matrix).unwrap()),
        ];
        let (_, _, samples) = draws(Family::MultivariateNormal, &params);
        for direction in [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0],
            [1.0, 1.0, 1.0],
            [0.5, -2.0, 1.0],
        ] {
            let projected: Vec<f64> = samples
                .chunks(3)
                .map(|x| (0..3).map(|i| direction[i] * x[i]).sum())
                .collect();
            let mean: f64 = (0..3).map(|i| direction[i] * loc[i]).sum();
            let variance: f64 = (0..3)
                .flat_map(|i| (0..3).map(move |j| (i, j)))
                .map(|(i, j)| direction[i] * sigma[i * 3 + j] * direction[j])
                .sum();
            let normal = Normal::new(mean, variance.sqrt()).unwrap();
            let label = format!("MultivariateNormal {name} along {direction:?}");
            assert_ks(&label, &projected, |x| normal.cdf(x));
            assert_moments(&label, &projected, mean, Some(variance));
        }
    }
}

/// The inverse of a 3 × 3 matrix by cofactors.
fn invert3(m: &[f64]) -> Vec<f64> {
    let cofactor = |r: usize, c: usize| {
        let rows: Vec<usize> = (0..3).filter(|&i| i != r).collect();
        let cols: Vec<usize> = (0..3).filter(|&j| j != c).collect();
        let minor = m[rows[0] * 3 + cols[0]] * m[rows[1] * 3 + cols[1]]
            - m[rows[0] * 3 + cols[1]] * m[rows[1] * 3 + cols[0]];
        if (r + c) & 1 == 0 {
            minor
        } else {
            -minor
        }
    };
    let determinant: f64 = (0..3).map(|j| m[j] * cofactor(0, j)).sum();
    (0..9)
        .map(|index| cofactor(index % 3, index / 3) / determinant)
        .collect()
}

#[test]
fn lkj_correlations_have_beta_marginals() {
    for (d, eta) in [(2usize, 1.0), (3, 1.5), (4, 0.8)] {
        let params = [("dim", s(d as f64)), ("concentration", s(eta))];
        let (distribution, tape, samples) = draws(Family::LkjCholesky, &params);
        let support = distribution.support(&tape);
        // (r + 1)/2 ~ Beta(η − 1 + d/2, η − 1 + d/2) for every off-diagonal correlation r.
        let shape = eta - 1.0 + d as f64 / 2.0;
        let beta = Beta::new(shape, shape).unwrap();
        let width = d * d;
        for draw in samples.chunks(width) {
            assert!(support.check(&Tensor::from_shape(&[d, d], draw.to_vec()).unwrap()));
        }
        for (i, j) in [(1, 0), (d - 1, 0), (d - 1, d - 2)] {
            let correlations: Vec<f64> = samples
                .chunks(width)
                .map(|l| (0..d).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>())
                .collect();
            let shifted: Vec<f64> = correlations.iter().map(|r| 0.5 * (r + 1.0)).collect();
            let label = format!("LKJCholesky(d = {d}, η = {eta}) correlation ({i}, {j})");
            assert_ks(&label, &shifted, |x| beta.cdf(x));
            assert_moments(&label, &correlations, 0.0, Some(1.0 / (2.0 * shape + 1.0)));
        }
    }
}

#[test]
fn wishart_quadratic_forms_are_chi_squared() {
    let df = 5.5;
    let scale = [1.0, 0.3, 0.3, 2.0];
    for name in ["covariance_matrix", "precision_matrix"] {
        let matrix = if name == "covariance_matrix" {
            scale.to_vec()
        } else {
            let determinant = scale[0] * scale[3] - scale[1] * scale[2];
            vec![
                scale[3] / determinant,
                -scale[1] / determinant,
                -scale[2] / determinant,
                scale[0] / determinant,
            ]
        };
        let params = [
            ("df", s(df)),
            (name, Tensor::from_shape(&[2, 2], matrix).unwrap()),
        ];
        let (distribution, tape, samples) = draws(Family::Wishart, &params);
        let mean = distribution.mean(&tape).unwrap();
        let variance = distribution.variance(&tape).unwrap();
        // aᵀXa / aᵀVa ~ χ²(ν) = Gamma(ν/2, rate ½).
        let chi_squared = Gamma::new(0.5 * df, 0.5).unwrap();
        for a in [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]] {
            let va: f64 = (0..2)
                .flat_map(|i| (0..2).map(move |j| (i, j)))
                .map(|(i, j)| a[i] * scale[i * 2 + j] * a[j])
                .sum();
            let ratios: Vec<f64> = samples
                .chunks(4)
                .map(|x| {
                    (0..2)
                        .flat_map(|i| (0..2).map(move |j| (i, j)))
                        .map(|(i, j)| a[i] * x[i * 2 + j] * a[j])
                        .sum::<f64>()
                        / va
                })
                .collect();
            assert_ks(&format!("Wishart {name} along {a:?}"), &ratios, |x| {
                chi_squared.cdf(x)
            });
        }
        for entry in 0..4 {
            let values = column(&samples, 4, entry);
            assert_moments(
                &format!("Wishart {name} entry {entry}"),
                &values,
                mean.data()[entry],
                Some(variance.data()[entry]),
            );
        }
        assert!(distribution
            .support(&tape)
            .check(&Tensor::from_shape(&[2, 2], samples[..4].to_vec()).unwrap()));
    }
}

#[test]
fn delta_draws_its_point_and_improper_priors_refuse() {
    let (_, _, samples) = draws(Family::Delta, &[("v", s(2.5))]);
    assert!(samples.iter().all(|x| *x == 2.5));
    for family in [Family::Flat, Family::FlatPositive] {
        let mut tape = Tape::new();
        let distribution = build(&mut tape, family, &[]);
        assert!(distribution.sample(&tape, &mut rng(), &[3]).is_err());
    }
}

#[test]
fn the_tests_reject_a_wrong_distribution() {
    // The same draws against a distribution shifted by a tenth of a standard deviation, and
    // with a scale 10% too large: both must be rejected, or the tests above would prove little.
    let (_, _, samples) = draws(Family::Normal, &[("loc", s(0.0)), ("scale", s(1.0))]);
    let shifted = Normal::new(0.1, 1.0).unwrap();
    assert!(ks_p_value(&samples, |x| shifted.cdf(x)) < SIGNIFICANCE);
    let wider = Normal::new(0.0, 1.1).unwrap();
    assert!(ks_p_value(&samples, |x| wider.cdf(x)) < SIGNIFICANCE);
    let right = Normal::new(0.0, 1.0).unwrap();
    assert!(ks_p_value(&samples, |x| right.cdf(x)) > SIGNIFICANCE);
}
