//! The conjugate updates of the teaching material's shallow Bayesian network, as plain functions
//! over f64 slices and nalgebra matrices, for a [`super::GibbsModel`] to call from
//! `draw_conditional` and `log_marginal`.
//!
//! - [`MultivariateNormal`]: N(m, Σ) held through the Cholesky factor L of its precision
//!   Σ⁻¹ = L Lᵀ, so that draws are m + L⁻ᵀ z and log-densities need no inverse.
//! - [`linear_gaussian_posterior`]: the output weights of y = Z β + ε, ε ~ N(0, τ⁻¹ I), under a
//!   N(m₀, Σ₀) prior: precision P = τ ZᵀZ + Σ₀⁻¹ and mean P⁻¹ (τ Zᵀy + Σ₀⁻¹ m₀) (the lecture's
//!   A + C and (A + C)⁻¹ (ρ + δ)).
//! - [`linear_gaussian_log_marginal`]: log p(y | Z, τ) with β integrated out, by the lecture's
//!   Lemma 2.1 at β = m: log p(β = m) + Σᵢ log p(yᵢ | β = m) − log p(β = m | y).
//! - [`GammaParams`] and [`gamma_precision_posterior`]: a precision τ ~ Gamma(a, b) (rate b) given
//!   residuals rᵢ ~ N(0, τ⁻¹) is Gamma(a + n/2, b + Σ rᵢ² / 2).
//! - [`Wishart`] (draws by Bartlett's decomposition) and [`wishart_precision_posterior`]: a
//!   precision matrix Λ ~ Wishart(ν, V) given deviations dⱼ ~ N(0, Λ⁻¹) is
//!   Wishart(ν + n, (V⁻¹ + Σ dⱼ dⱼᵀ)⁻¹).
//! - [`normal_mean_posterior`]: a mean μ ~ N(a, A) given draws xⱼ ~ N(μ, Λ⁻¹) is
//!   N(P⁻¹ (A⁻¹ a + Λ Σ xⱼ), P⁻¹) with P = A⁻¹ + n Λ; [`normal_mean_posterior_scalar`] is the
//!   one-dimensional case.
//!
//! Gamma and Wishart distributions use the shape/rate and (degrees of freedom, scale matrix)
//! conventions of the lecture: the mean of τ is a / b and the mean of Λ is ν V.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};
use rand_distr::{ChiSquared, Distribution, Gamma, StandardNormal};
use std::fmt;

/// ½ log 2π.
const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Why a conjugate update could not be computed: shapes that disagree, parameters out of range,
/// or a matrix that is not positive definite.
#[derive(Clone, Debug, PartialEq)]
pub struct ConjugateError {
    /// What is wrong, as a lowercase sentence without a final period.
    pub message: String,
}

impl ConjugateError {
    fn new(message: impl Into<String>) -> Self {
        ConjugateError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConjugateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConjugateError {}

/// The Cholesky factor of a symmetric positive-definite matrix, or an error naming it.
fn cholesky(matrix: DMatrix<f64>, what: &str) -> Result<Cholesky<f64, Dyn>, ConjugateError> {
    if matrix.iter().any(|v| !v.is_finite()) {
        return Err(ConjugateError::new(format!("the {what} is not finite")));
    }
    Cholesky::new(matrix)
        .ok_or_else(|| ConjugateError::new(format!("the {what} is not positive definite")))
}

fn check_square(matrix: &DMatrix<f64>, dim: usize, what: &str) -> Result<(), ConjugateError> {
    if matrix.nrows() != dim || matrix.ncols() != dim {
        return Err(ConjugateError::new(format!(
            "the {what} is {}×{} but should be {dim}×{dim}",
            matrix.nrows(),
            matrix.ncols()
        )));
    }
    Ok(())
}

fn check_positive(value: f64, what: &str) -> Result<(), ConjugateError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ConjugateError::new(format!(
            "the {what} must be positive and finite, not {value}"
        )))
    }
}

/// A multivariate normal N(m, Σ), held through the lower Cholesky factor L of its precision
/// Σ⁻¹ = L Lᵀ.
#[derive(Clone, Debug)]
pub struct MultivariateNormal {
    mean: DVector<f64>,
    /// The lower factor L (its strict upper triangle is zero).
    precision_factor: DMatrix<f64>,
}

impl MultivariateNormal {
    /// N(mean, precision⁻¹); the precision must be symmetric positive definite.
    pub fn from_precision(
        mean: DVector<f64>,
        precision: DMatrix<f64>,
    ) -> Result<Self, ConjugateError> {
        check_square(&precision, mean.len(), "precision matrix")?;
        if mean.iter().any(|v| !v.is_finite()) {
            return Err(ConjugateError::new("the mean is not finite"));
        }
        Ok(MultivariateNormal {
            mean,
            precision_factor: cholesky(precision, "precision matrix")?.l(),
        })
    }

    /// N(mean, covariance); the covariance must be symmetric positive definite.
    pub fn from_covariance(
        mean: DVector<f64>,
        covariance: DMatrix<f64>,
    ) -> Result<Self, ConjugateError> {
        check_square(&covariance, mean.len(), "covariance matrix")?;
        let precision = cholesky(covariance, "covariance matrix")?.inverse();
        // The inverse of a symmetric matrix is symmetric; average out rounding.
        let symmetric = (&precision + precision.transpose()) * 0.5;
        MultivariateNormal::from_precision(mean, symmetric)
    }

    /// N(mean · 1, variance · I) in `dim` dimensions.
    pub fn isotropic(dim: usize, mean: f64, variance: f64) -> Result<Self, ConjugateError> {
        check_positive(variance, "variance")?;
        MultivariateNormal::from_precision(
            DVector::from_element(dim, mean),
            DMatrix::identity(dim, dim) / variance,
        )
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean m.
    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    /// The precision Σ⁻¹ = L Lᵀ.
    pub fn precision(&self) -> DMatrix<f64> {
        &self.precision_factor * self.precision_factor.transpose()
    }

    /// The lower Cholesky factor L of the precision.
    pub fn precision_factor(&self) -> &DMatrix<f64> {
        &self.precision_factor
    }

    /// The covariance Σ = L⁻ᵀ L⁻¹.
    pub fn covariance(&self) -> DMatrix<f64> {
        let dim = self.dim();
        let inverse_factor = self
            .precision_factor
            .solve_lower_triangular(&DMatrix::identity(dim, dim))
            .unwrap_or_else(|| DMatrix::from_element(dim, dim, f64::NAN));
        inverse_factor.tr_mul(&inverse_factor)
    }

    /// log |Σ| = −2 Σ log Lᵢᵢ.
    pub fn log_det_covariance(&self) -> f64 {
        -2.0 * self
            .precision_factor
            .diagonal()
            .iter()
            .map(|d| d.ln())
            .sum::<f64>()
    }

    /// log N(x; m, Σ) = −(d/2) log 2π − ½ log |Σ| − ½ |Lᵀ (x − m)|²; `x` must have the
    /// distribution's dimension.
    pub fn log_density(&self, x: &[f64]) -> f64 {
        let offset = DVector::from_column_slice(x) - &self.mean;
        let whitened = self.precision_factor.tr_mul(&offset);
        -(self.dim() as f64) * HALF_LOG_TWO_PI
            - 0.5 * self.log_det_covariance()
            - 0.5 * whitened.norm_squared()
    }

    /// One draw m + L⁻ᵀ z with z ~ N(0, I): its covariance is L⁻ᵀ L⁻¹ = (L Lᵀ)⁻¹ = Σ.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> DVector<f64> {
        let z = DVector::from_fn(self.dim(), |_, _| rng.sample::<f64, _>(StandardNormal));
        // L has a positive diagonal, so the triangular solve always succeeds.
        let solved = self
            .precision_factor
            .tr_solve_lower_triangular(&z)
            .unwrap_or_else(|| DVector::from_element(self.dim(), f64::NAN));
        &self.mean + solved
    }

    /// One draw written into `out` (of the distribution's dimension).
    pub fn sample_into<R: rand::Rng + ?Sized>(&self, rng: &mut R, out: &mut [f64]) {
        let draw = self.sample(rng);
        out.copy_from_slice(draw.as_slice());
    }
}

/// Checks that the design Z (n × m), y (n) and the prior (m) agree.
fn check_linear_gaussian(
    design: &DMatrix<f64>,
    y: &[f64],
    noise_precision: f64,
    prior: &MultivariateNormal,
) -> Result<(), ConjugateError> {
    if design.nrows() != y.len() {
        return Err(ConjugateError::new(format!(
            "the design matrix has {} rows but there are {} observations",
            design.nrows(),
            y.len()
        )));
    }
    if design.ncols() != prior.dim() {
        return Err(ConjugateError::new(format!(
            "the design matrix has {} columns but the prior has dimension {}",
            design.ncols(),
            prior.dim()
        )));
    }
    if design.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(ConjugateError::new(
            "the design matrix or the observations are not finite",
        ));
    }
    check_positive(noise_precision, "noise precision")
}

/// The posterior of β in y = Z β + ε, ε ~ N(0, τ⁻¹ I), β ~ `prior`: precision
/// P = τ ZᵀZ + Σ₀⁻¹, mean P⁻¹ (τ Zᵀy + Σ₀⁻¹ m₀). `design` is Z (n × m), `noise_precision` is τ.
pub fn linear_gaussian_posterior(
    design: &DMatrix<f64>,
    y: &[f64],
    noise_precision: f64,
    prior: &MultivariateNormal,
) -> Result<MultivariateNormal, ConjugateError> {
    check_linear_gaussian(design, y, noise_precision, prior)?;
    let prior_precision = prior.precision();
    let observations = DVector::from_column_slice(y);
    let precision = design.tr_mul(design) * noise_precision + &prior_precision;
    let right_hand_side =
        design.tr_mul(&observations) * noise_precision + &prior_precision * prior.mean();
    let factor = cholesky(precision, "posterior precision matrix")?;
    let mean = factor.solve(&right_hand_side);
    Ok(MultivariateNormal {
        mean,
        precision_factor: factor.l(),
    })
}

/// log p(y | Z, τ) = log ∫ N(y; Z β, τ⁻¹ I) p(β) dβ, by Lemma 2.1 of the lecture evaluated at the
/// posterior mean m: log p(β = m) + Σᵢ log N(yᵢ; zᵢᵀ m, τ⁻¹) − log p(β = m | y), where
/// log p(β = m | y) = −(M/2) log 2π + Σ log Lᵢᵢ for the posterior precision factor L. (The lecture
/// writes p(β = m) |S_b|^{1/2} Π p(yᵢ | β = m), which leaves out the constant (2π)^{M/2}.)
pub fn linear_gaussian_log_marginal(
    design: &DMatrix<f64>,
    y: &[f64],
    noise_precision: f64,
    prior: &MultivariateNormal,
) -> Result<f64, ConjugateError> {
    let posterior = linear_gaussian_posterior(design, y, noise_precision, prior)?;
    let mean = posterior.mean();
    let fitted = design * mean;
    let residual_sum_of_squares: f64 = y
        .iter()
        .zip(fitted.iter())
        .map(|(obs, fit)| (obs - fit) * (obs - fit))
        .sum();
    let n = y.len() as f64;
    let log_likelihood = n * (0.5 * noise_precision.ln() - HALF_LOG_TWO_PI)
        - 0.5 * noise_precision * residual_sum_of_squares;
    // At its own mean a normal density is (2π)^{−M/2} |S|^{−1/2}.
    let log_posterior_at_mean =
        -(posterior.dim() as f64) * HALF_LOG_TWO_PI - 0.5 * posterior.log_det_covariance();
    Ok(prior.log_density(mean.as_slice()) + log_likelihood - log_posterior_at_mean)
}

/// A Gamma(shape, rate) distribution: density ∝ τ^(shape − 1) e^(−rate τ), mean shape / rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GammaParams {
    /// The shape a, positive.
    pub shape: f64,
    /// The rate b, positive.
    pub rate: f64,
}

impl GammaParams {
    /// Checks that shape and rate are positive and finite.
    pub fn validate(&self) -> Result<(), ConjugateError> {
        check_positive(self.shape, "Gamma shape")?;
        check_positive(self.rate, "Gamma rate")
    }

    /// The mean a / b.
    pub fn mean(&self) -> f64 {
        self.shape / self.rate
    }

    /// log Gamma(τ; a, b) = a log b − log Γ(a) + (a − 1) log τ − b τ (−∞ for τ ≤ 0).
    pub fn log_density(&self, tau: f64) -> f64 {
        if tau <= 0.0 {
            return f64::NEG_INFINITY;
        }
        self.shape * self.rate.ln() - statrs::function::gamma::ln_gamma(self.shape)
            + (self.shape - 1.0) * tau.ln()
            - self.rate * tau
    }

    /// One draw.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Result<f64, ConjugateError> {
        self.validate()?;
        let gamma = Gamma::new(self.shape, 1.0 / self.rate)
            .map_err(|error| ConjugateError::new(format!("invalid Gamma parameters: {error}")))?;
        Ok(gamma.sample(rng))
    }
}

/// The posterior Gamma(a + n/2, b + Σ rᵢ²/2) of a precision τ with prior Gamma(a, b), given
/// residuals rᵢ ~ N(0, τ⁻¹) (for example yᵢ − f(xᵢ), or βⱼ − μ_β for the lecture's σ_β⁻²).
pub fn gamma_precision_posterior(
    prior: GammaParams,
    residuals: &[f64],
) -> Result<GammaParams, ConjugateError> {
    prior.validate()?;
    if residuals.iter().any(|r| !r.is_finite()) {
        return Err(ConjugateError::new("a residual is not finite"));
    }
    let sum_of_squares: f64 = residuals.iter().map(|r| r * r).sum();
    Ok(GammaParams {
        shape: prior.shape + 0.5 * residuals.len() as f64,
        rate: prior.rate + 0.5 * sum_of_squares,
    })
}

/// A Wishart(ν, V) distribution over p × p symmetric positive-definite matrices, with mean ν V.
#[derive(Clone, Debug)]
pub struct Wishart {
    df: f64,
    scale: DMatrix<f64>,
    scale_factor: DMatrix<f64>,
}

impl Wishart {
    /// Wishart(df, scale); needs df > p − 1 and a symmetric positive-definite scale.
    pub fn new(df: f64, scale: DMatrix<f64>) -> Result<Self, ConjugateError> {
        let dim = scale.nrows();
        check_square(&scale, dim, "Wishart scale matrix")?;
        if dim == 0 {
            return Err(ConjugateError::new("the Wishart scale matrix is empty"));
        }
        if !(df.is_finite() && df > dim as f64 - 1.0) {
            return Err(ConjugateError::new(format!(
                "the Wishart degrees of freedom must exceed p − 1 = {}, not {df}",
                dim - 1
            )));
        }
        let scale_factor = cholesky(scale.clone(), "Wishart scale matrix")?.l();
        Ok(Wishart {
            df,
            scale,
            scale_factor,
        })
    }

    /// The degrees of freedom ν.
    pub fn df(&self) -> f64 {
        self.df
    }

    /// The scale matrix V.
    pub fn scale(&self) -> &DMatrix<f64> {
        &self.scale
    }

    /// The mean ν V.
    pub fn mean(&self) -> DMatrix<f64> {
        &self.scale * self.df
    }

    /// One draw by Bartlett's decomposition: with V = L Lᵀ and A lower triangular,
    /// Aᵢᵢ = √cᵢ with cᵢ ~ χ²(ν − i) (i from 0) and Aᵢⱼ ~ N(0, 1) below the diagonal, the matrix
    /// (L A)(L A)ᵀ is Wishart(ν, V).
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> DMatrix<f64> {
        let dim = self.scale.nrows();
        let mut bartlett = DMatrix::zeros(dim, dim);
        for i in 0..dim {
            // ν − i > 0 because ν > p − 1 ≥ i, so the χ² parameter is valid.
            let chi_squared = ChiSquared::new(self.df - i as f64)
                .map(|d| d.sample(rng))
                .unwrap_or(f64::NAN);
            bartlett[(i, i)] = chi_squared.sqrt();
            for j in 0..i {
                bartlett[(i, j)] = rng.sample(StandardNormal);
            }
        }
        let product = &self.scale_factor * bartlett;
        &product * product.transpose()
    }
}

/// The posterior Wishart(ν + n, (V⁻¹ + Σ dⱼ dⱼᵀ)⁻¹) of a precision matrix Λ with prior
/// Wishart(ν, V), given the rows dⱼ of `deviations` (n × p), each ~ N(0, Λ⁻¹) (for example
/// γⱼ − μ_γ for the lecture's S_γ⁻¹).
pub fn wishart_precision_posterior(
    prior: &Wishart,
    deviations: &DMatrix<f64>,
) -> Result<Wishart, ConjugateError> {
    let dim = prior.scale.nrows();
    if deviations.ncols() != dim {
        return Err(ConjugateError::new(format!(
            "the deviations have {} columns but the Wishart prior has dimension {dim}",
            deviations.ncols()
        )));
    }
    if deviations.iter().any(|v| !v.is_finite()) {
        return Err(ConjugateError::new("a deviation is not finite"));
    }
    let prior_inverse = cholesky(prior.scale.clone(), "Wishart scale matrix")?.inverse();
    let scatter = deviations.tr_mul(deviations);
    let posterior_inverse = prior_inverse + scatter;
    let scale = cholesky(posterior_inverse, "posterior inverse scale matrix")?.inverse();
    let symmetric = (&scale + scale.transpose()) * 0.5;
    Wishart::new(prior.df + deviations.nrows() as f64, symmetric)
}

/// The posterior of a mean μ with prior `prior` = N(a, A), given the rows xⱼ of `draws` (n × p),
/// each ~ N(μ, Λ⁻¹) with known precision `observation_precision` Λ: precision P = A⁻¹ + n Λ and
/// mean P⁻¹ (A⁻¹ a + Λ Σ xⱼ) (the lecture's μ_γ given γ and S_γ).
pub fn normal_mean_posterior(
    prior: &MultivariateNormal,
    draws: &DMatrix<f64>,
    observation_precision: &DMatrix<f64>,
) -> Result<MultivariateNormal, ConjugateError> {
    let dim = prior.dim();
    check_square(observation_precision, dim, "observation precision matrix")?;
    if draws.ncols() != dim {
        return Err(ConjugateError::new(format!(
            "the draws have {} columns but the prior has dimension {dim}",
            draws.ncols()
        )));
    }
    if draws
        .iter()
        .chain(observation_precision.iter())
        .any(|v| !v.is_finite())
    {
        return Err(ConjugateError::new(
            "the draws or the observation precision are not finite",
        ));
    }
    let prior_precision = prior.precision();
    let n = draws.nrows() as f64;
    let sum = DVector::from_fn(dim, |i, _| draws.column(i).sum());
    let precision = &prior_precision + observation_precision * n;
    let right_hand_side = &prior_precision * prior.mean() + observation_precision * sum;
    let factor = cholesky(precision, "posterior precision matrix")?;
    let mean = factor.solve(&right_hand_side);
    Ok(MultivariateNormal {
        mean,
        precision_factor: factor.l(),
    })
}

/// The one-dimensional [`normal_mean_posterior`]: μ ~ N(a, A) and xⱼ ~ N(μ, s²) give
/// N((a/A + Σxⱼ/s²) / P, 1/P) with P = 1/A + n/s²; returns (mean, variance) (the lecture's μ_β
/// given β and σ_β).
pub fn normal_mean_posterior_scalar(
    prior_mean: f64,
    prior_variance: f64,
    draws: &[f64],
    observation_variance: f64,
) -> Result<(f64, f64), ConjugateError> {
    check_positive(prior_variance, "prior variance")?;
    check_positive(observation_variance, "observation variance")?;
    if !prior_mean.is_finite() || draws.iter().any(|x| !x.is_finite()) {
        return Err(ConjugateError::new(
            "the prior mean or a draw is not finite",
        ));
    }
    let precision = 1.0 / prior_variance + draws.len() as f64 / observation_variance;
    let sum: f64 = draws.iter().sum();
    let mean = (prior_mean / prior_variance + sum / observation_variance) / precision;
    Ok((mean, 1.0 / precision))
}
