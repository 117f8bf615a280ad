//! The conjugate-update functions against direct formulas (inverses, determinants and finite sums computed
//! another way) to 1e-10, and the samplers against their moments within Monte Carlo error.

use bdl_infer::gibbs::{
    gamma_precision_posterior, linear_gaussian_log_marginal, linear_gaussian_posterior,
    normal_mean_posterior, normal_mean_posterior_scalar, wishart_precision_posterior, GammaParams,
    MultivariateNormal, Wishart,
};
use bdl_infer::rng::stream_rng;
use nalgebra::{DMatrix, DVector};

const LOG_TWO_PI: f64 = 1.837_877_066_409_345_5;

/// A 7 × 3 design, observations, a full prior covariance and a noise precision.
fn regression() -> (DMatrix<f64>, Vec<f64>, DVector<f64>, DMatrix<f64>, f64) {
    let design = DMatrix::from_row_slice(
        7,
        3,
        &[
            1.0, -0.3, 0.2, //
            1.0, 0.8, -1.1, //
            1.0, 1.5, 0.4, //
            1.0, -1.2, 0.9, //
            1.0, 0.1, 0.0, //
            1.0, 2.2, -0.7, //
            1.0, -0.6, 1.6,
        ],
    );
    let y = vec![0.4, 1.9, 2.3, -1.0, 0.2, 3.1, -0.5];
    let prior_mean = DVector::from_row_slice(&[0.5, -0.2, 0.1]);
    let prior_covariance =
        DMatrix::from_row_slice(3, 3, &[2.0, 0.3, -0.2, 0.3, 1.0, 0.1, -0.2, 0.1, 0.5]);
    (design, y, prior_mean, prior_covariance, 2.5)
}

fn assert_close(label: &str, a: f64, b: f64, tolerance: f64) {
    assert!(
        (a - b).abs() <= tolerance * (1.0 + b.abs()),
        "{label}: {a} vs {b} (difference {})",
        (a - b).abs()
    );
}

/// log N(x; m, C) from an explicit inverse and LU determinant.
fn direct_normal_log_density(
    x: &DVector<f64>,
    mean: &DVector<f64>,
    covariance: &DMatrix<f64>,
) -> f64 {
    let offset = x - mean;
    let inverse = covariance.clone().try_inverse().unwrap();
    let quadratic = offset.dot(&(&inverse * &offset));
    -0.5 * (x.len() as f64 * LOG_TWO_PI + covariance.determinant().ln() + quadratic)
}

#[test]
fn the_linear_gaussian_posterior_equals_a_direct_solve() {
    let (design, y, prior_mean, prior_covariance, tau) = regression();
    let prior =
        MultivariateNormal::from_covariance(prior_mean.clone(), prior_covariance.clone()).unwrap();
    let posterior = linear_gaussian_posterior(&design, &y, tau, &prior).unwrap();
    // Directly: Σ_N = (τ ZᵀZ + Σ₀⁻¹)⁻¹, m_N = Σ_N (τ Zᵀy + Σ₀⁻¹ m₀).
    let prior_precision = prior_covariance.clone().try_inverse().unwrap();
    let covariance = (design.transpose() * &design * tau + &prior_precision)
        .try_inverse()
        .unwrap();
    let mean = &covariance
        * (design.transpose() * DVector::from_column_slice(&y) * tau
            + &prior_precision * &prior_mean);
    let got = posterior.covariance();
    for i in 0..3 {
        assert_close("mean", posterior.mean()[i], mean[i], 1e-10);
        for j in 0..3 {
            assert_close("covariance", got[(i, j)], covariance[(i, j)], 1e-10);
        }
    }
    // The log density agrees with the explicit formula, at the mean and elsewhere.
    for x in [mean.clone(), DVector::from_row_slice(&[0.3, -1.0, 2.0])] {
        assert_close(
            "log density",
            posterior.log_density(x.as_slice()),
            direct_normal_log_density(&x, &mean, &covariance),
            1e-10,
        );
    }
    assert_close(
        "log det",
        posterior.log_det_covariance(),
        covariance.determinant().ln(),
        1e-10,
    );
}

#[test]
fn the_log_marginal_likelihood_equals_the_normal_density_of_y() {
    let (design, y, prior_mean, prior_covariance, tau) = regression();
    let prior =
        MultivariateNormal::from_covariance(prior_mean.clone(), prior_covariance.clone()).unwrap();
    // y ~ N(Z m₀, Z Σ₀ Zᵀ + τ⁻¹ I) once β is integrated out.
    let marginal_covariance =
        &design * &prior_covariance * design.transpose() + DMatrix::identity(7, 7) / tau;
    let expected = direct_normal_log_density(
        &DVector::from_column_slice(&y),
        &(&design * &prior_mean),
        &marginal_covariance,
    );
    let got = linear_gaussian_log_marginal(&design, &y, tau, &prior).unwrap();
    assert_close("log p(y)", got, expected, 1e-10);
    // The lecture's isotropic prior N(μ_β 1, σ_β² I) too.
    let isotropic = MultivariateNormal::isotropic(3, 0.7, 1.7).unwrap();
    let marginal_covariance = &design * design.transpose() * 1.7 + DMatrix::identity(7, 7) / tau;
    let expected = direct_normal_log_density(
        &DVector::from_column_slice(&y),
        &(&design * DVector::from_element(3, 0.7)),
        &marginal_covariance,
    );
    let got = linear_gaussian_log_marginal(&design, &y, tau, &isotropic).unwrap();
    assert_close("log p(y), isotropic prior", got, expected, 1e-10);
}

#[test]
fn gamma_wishart_and_mean_posteriors_equal_their_formulas() {
    let residuals = [0.3, -1.2, 0.7, 2.0, -0.1];
    let posterior = gamma_precision_posterior(
        GammaParams {
            shape: 1.5,
            rate: 0.8,
        },
        &residuals,
    )
    .unwrap();
    let sum_of_squares = 0.09 + 1.44 + 0.49 + 4.0 + 0.01;
    assert_close("shape", posterior.shape, 1.5 + 2.5, 1e-15);
    assert_close("rate", posterior.rate, 0.8 + sum_of_squares / 2.0, 1e-15);
    // log Gamma(τ; a, b) = a log b − log Γ(a) + (a − 1) log τ − b τ, with Γ(4) = 6.
    let log_density = posterior.log_density(1.3);
    let expected = 4.0 * posterior.rate.ln() - 6f64.ln() + 3.0 * 1.3f64.ln() - posterior.rate * 1.3;
    assert_close("Gamma log density", log_density, expected, 1e-12);

    // Wishart: (V⁻¹ + Σ dⱼ dⱼᵀ)⁻¹ with the scatter summed explicitly.
    let scale = DMatrix::from_row_slice(2, 2, &[1.0, 0.4, 0.4, 2.0]);
    let prior = Wishart::new(3.0, scale.clone()).unwrap();
    let deviations = DMatrix::from_row_slice(3, 2, &[0.5, -1.0, 1.5, 0.2, -0.3, 0.8]);
    let posterior = wishart_precision_posterior(&prior, &deviations).unwrap();
    let mut scatter = DMatrix::zeros(2, 2);
    for row in deviations.row_iter() {
        scatter += row.transpose() * row;
    }
    let expected = (scale.try_inverse().unwrap() + scatter)
        .try_inverse()
        .unwrap();
    assert_close("Wishart df", posterior.df(), 6.0, 1e-15);
    for i in 0..2 {
        for j in 0..2 {
            assert_close(
                "Wishart scale",
                posterior.scale()[(i, j)],
                expected[(i, j)],
                1e-10,
            );
        }
    }

    // Normal mean: P = A⁻¹ + n Λ, mean P⁻¹ (A⁻¹ a + Λ Σ xⱼ).
    let prior = MultivariateNormal::from_covariance(
        DVector::from_row_slice(&[1.0, -1.0]),
        DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0]),
    )
    .unwrap();
    let observation_precision = DMatrix::from_row_slice(2, 2, &[2.0, -0.5, -0.5, 1.0]);
    let posterior = normal_mean_posterior(&prior, &deviations, &observation_precision).unwrap();
    let prior_precision = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0])
        .try_inverse()
        .unwrap();
    let precision = &prior_precision + &observation_precision * 3.0;
    let sum = DVector::from_row_slice(&[0.5 + 1.5 - 0.3, -1.0 + 0.2 + 0.8]);
    let mean = precision.clone().try_inverse().unwrap()
        * (&prior_precision * DVector::from_row_slice(&[1.0, -1.0]) + &observation_precision * sum);
    let covariance = precision.try_inverse().unwrap();
    for i in 0..2 {
        assert_close("normal mean", posterior.mean()[i], mean[i], 1e-10);
        for j in 0..2 {
            assert_close(
                "normal covariance",
                posterior.covariance()[(i, j)],
                covariance[(i, j)],
                1e-10,
            );
        }
    }
    let (mean, variance) = normal_mean_posterior_scalar(2.0, 4.0, &[1.0, 3.0, 2.5], 0.5).unwrap();
    let precision = 0.25 + 3.0 / 0.5;
    assert_close("scalar mean variance", variance, 1.0 / precision, 1e-15);
    assert_close(
        "scalar mean",
        mean,
        (2.0 / 4.0 + 6.5 / 0.5) / precision,
        1e-15,
    );
}

#[test]
fn wishart_draws_have_mean_df_times_scale_and_the_wishart_variance() {
    let scale = DMatrix::from_row_slice(3, 3, &[1.0, 0.3, -0.2, 0.3, 0.5, 0.1, -0.2, 0.1, 2.0]);
    let df = 4.5;
    let wishart = Wishart::new(df, scale.clone()).unwrap();
    let mut rng = stream_rng(99, 0);
    let n = 40_000;
    let draws: Vec<DMatrix<f64>> = (0..n).map(|_| wishart.sample(&mut rng)).collect();
    let n_f = n as f64;
    for i in 0..3 {
        for j in 0..3 {
            let values: Vec<f64> = draws.iter().map(|w| w[(i, j)]).collect();
            let mean = values.iter().sum::<f64>() / n_f;
            // Var(W_ij) = ν (V_ij² + V_ii V_jj).
            let variance = df * (scale[(i, j)].powi(2) + scale[(i, i)] * scale[(j, j)]);
            let expected = df * scale[(i, j)];
            let standard_error = (variance / n_f).sqrt();
            assert!(
                (mean - expected).abs() < 4.0 * standard_error,
                "E[W_{i}{j}] {mean} vs {expected} (se {standard_error})"
            );
            // The sample variance against the exact one, with its standard error from the
            // sample's fourth central moment: se² = (m₄ − s⁴) / n.
            let sample_variance =
                values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n_f - 1.0);
            let fourth = values.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n_f;
            let standard_error = ((fourth - sample_variance.powi(2)) / n_f).sqrt();
            assert!(
                (sample_variance - variance).abs() < 4.0 * standard_error,
                "Var[W_{i}{j}] {sample_variance} vs {variance} (se {standard_error})"
            );
        }
    }
    // Every draw is symmetric positive definite.
    for w in draws.iter().take(100) {
        assert!((w - w.transpose()).amax() < 1e-12);
        assert!(w.clone().cholesky().is_some());
    }
}

#[test]
fn normal_and_gamma_draws_have_their_moments() {
    let mut rng = stream_rng(98, 0);
    let covariance = DMatrix::from_row_slice(2, 2, &[2.0, -0.6, -0.6, 0.5]);
    let mean = DVector::from_row_slice(&[1.0, -3.0]);
    let normal = MultivariateNormal::from_covariance(mean.clone(), covariance.clone()).unwrap();
    let n = 40_000;
    let n_f = n as f64;
    let draws: Vec<DVector<f64>> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    let sample_mean = draws.iter().fold(DVector::zeros(2), |a, d| a + d) / n_f;
    for i in 0..2 {
        let standard_error = (covariance[(i, i)] / n_f).sqrt();
        assert!((sample_mean[i] - mean[i]).abs() < 4.0 * standard_error);
        for j in 0..2 {
            let sample = draws
                .iter()
                .map(|d| (d[i] - sample_mean[i]) * (d[j] - sample_mean[j]))
                .sum::<f64>()
                / (n_f - 1.0);
            let standard_error =
                ((covariance[(i, i)] * covariance[(j, j)] + covariance[(i, j)].powi(2)) / n_f)
                    .sqrt();
            assert!(
                (sample - covariance[(i, j)]).abs() < 4.0 * standard_error,
                "covariance[{i}][{j}] {sample} vs {}",
                covariance[(i, j)]
            );
        }
    }
    let gamma = GammaParams {
        shape: 3.0,
        rate: 2.0,
    };
    let values: Vec<f64> = (0..n).map(|_| gamma.sample(&mut rng).unwrap()).collect();
    let sample_mean = values.iter().sum::<f64>() / n_f;
    // Var = a / b² = 0.75.
    assert!((sample_mean - 1.5).abs() < 4.0 * (0.75 / n_f).sqrt());
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (design, y, prior_mean, _, tau) = regression();
    let not_positive_definite =
        DMatrix::from_row_slice(3, 3, &[1.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    assert!(
        MultivariateNormal::from_covariance(prior_mean.clone(), not_positive_definite).is_err()
    );
    assert!(
        MultivariateNormal::from_covariance(prior_mean.clone(), DMatrix::identity(2, 2)).is_err()
    );
    assert!(MultivariateNormal::isotropic(3, 0.0, -1.0).is_err());
    let prior = MultivariateNormal::isotropic(3, 0.0, 1.0).unwrap();
    assert!(linear_gaussian_posterior(&design, &y[..5], tau, &prior).is_err());
    assert!(linear_gaussian_posterior(&design, &y, 0.0, &prior).is_err());
    assert!(linear_gaussian_log_marginal(&design, &y, f64::NAN, &prior).is_err());
    let wrong_width = MultivariateNormal::isotropic(2, 0.0, 1.0).unwrap();
    let error = linear_gaussian_posterior(&design, &y, tau, &wrong_width).unwrap_err();
    assert!(error.message.contains("columns"), "{error}");
    assert!(gamma_precision_posterior(
        GammaParams {
            shape: 0.0,
            rate: 1.0
        },
        &[1.0]
    )
    .is_err());
    assert!(gamma_precision_posterior(
        GammaParams {
            shape: 1.0,
            rate: 1.0
        },
        &[f64::NAN]
    )
    .is_err());
    assert!(Wishart::new(0.5, DMatrix::identity(2, 2)).is_err());
    assert!(Wishart::new(3.0, DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, -1.0])).is_err());
    let prior = Wishart::new(3.0, DMatrix::identity(2, 2)).unwrap();
    assert!(wishart_precision_posterior(&prior, &DMatrix::zeros(2, 3)).is_err());
    assert!(normal_mean_posterior_scalar(0.0, 1.0, &[1.0], 0.0).is_err());
}
