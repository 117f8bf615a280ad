//! Closed-form models for the Gibbs tests, written as `GibbsModel`s with the conjugate-update functions:
//! a linear regression with a Normal–Gamma prior (whose posterior is known exactly) and the
//! lecture's shallow sigmoid network with its output weights integrated out.

#![allow(dead_code)]

use bdl_infer::density::LogDensityError;
use bdl_infer::diagnostics::{mcse_mean, mcse_sd, rhat};
use bdl_infer::gibbs::{
    gamma_precision_posterior, linear_gaussian_log_marginal, linear_gaussian_posterior,
    GammaParams, GibbsBlock, GibbsModel, GibbsResult, MultivariateNormal,
};
use bdl_infer::rng::{stream_rng, Rng};
use nalgebra::{DMatrix, DVector};
use rand_distr::{Distribution, StandardNormal};

const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

fn conjugate_error(error: bdl_infer::gibbs::ConjugateError) -> LogDensityError {
    LogDensityError::recoverable(error.message)
}

/// How the Normal–Gamma regression's blocks are declared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormalGammaBlocks {
    /// β and log τ both drawn exactly.
    BothConjugate,
    /// β drawn exactly, log τ by random-walk Metropolis on the joint.
    MetropolisPrecision,
    /// log τ by Metropolis with β integrated out, then β drawn exactly (declared next).
    CollapsedPrecisionFirst,
    /// β drawn exactly, then log τ collapsed over β (β is redrawn at the end of the sweep).
    CollapsedPrecisionLast,
}

/// y = X β + ε, ε ~ N(0, τ⁻¹ I), β | τ ~ N(m₀, V₀ / τ), τ ~ Gamma(a₀, b₀) (rate b₀), sampled over
/// the position [β₀, β₁, log τ].
#[derive(Clone, Debug)]
pub struct NormalGamma {
    pub design: DMatrix<f64>,
    pub y: Vec<f64>,
    pub prior_mean: DVector<f64>,
    pub prior_scale: DMatrix<f64>,
    pub shape: f64,
    pub rate: f64,
    pub blocks: NormalGammaBlocks,
}

/// The exact posterior moments of β and τ.
#[derive(Clone, Debug)]
pub struct NormalGammaPosterior {
    pub beta_mean: DVector<f64>,
    pub beta_sd: DVector<f64>,
    pub tau_mean: f64,
    pub tau_sd: f64,
}

impl NormalGamma {
    /// 30 points with x ~ N(0, 1), β = (1, −0.5), noise sd 0.7; m₀ = 0, V₀ = 4 I, a₀ = 2, b₀ = 1.
    pub fn example(blocks: NormalGammaBlocks) -> Self {
        let mut rng = stream_rng(17, 0);
        let n = 30;
        let mut design = DMatrix::zeros(n, 2);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let x: f64 = StandardNormal.sample(&mut rng);
            let e: f64 = StandardNormal.sample(&mut rng);
            design[(i, 0)] = 1.0;
            design[(i, 1)] = x;
            y.push(1.0 - 0.5 * x + 0.7 * e);
        }
        NormalGamma {
            design,
            y,
            prior_mean: DVector::zeros(2),
            prior_scale: DMatrix::identity(2, 2) * 4.0,
            shape: 2.0,
            rate: 1.0,
            blocks,
        }
    }

    /// V_N = (V₀⁻¹ + XᵀX)⁻¹, m_N = V_N (V₀⁻¹ m₀ + Xᵀy), a_N = a₀ + n/2,
    /// b_N = b₀ + ½ (yᵀy + m₀ᵀ V₀⁻¹ m₀ − m_Nᵀ V_N⁻¹ m_N); β is Student-t with mean m_N and
    /// covariance b_N / (a_N − 1) V_N; τ is Gamma(a_N, b_N).
    pub fn exact_posterior(&self) -> NormalGammaPosterior {
        let prior_precision = self.prior_scale.clone().try_inverse().unwrap();
        let y = DVector::from_column_slice(&self.y);
        let posterior_precision = &prior_precision + self.design.tr_mul(&self.design);
        let posterior_scale = posterior_precision.clone().try_inverse().unwrap();
        let mean =
            &posterior_scale * (&prior_precision * &self.prior_mean + self.design.tr_mul(&y));
        let shape = self.shape + 0.5 * self.y.len() as f64;
        let rate = self.rate
            + 0.5
                * (y.dot(&y) + self.prior_mean.dot(&(&prior_precision * &self.prior_mean))
                    - mean.dot(&(&posterior_precision * &mean)));
        let beta_sd = posterior_scale
            .diagonal()
            .map(|v| (v * rate / (shape - 1.0)).sqrt());
        NormalGammaPosterior {
            beta_mean: mean,
            beta_sd,
            tau_mean: shape / rate,
            tau_sd: shape.sqrt() / rate,
        }
    }

    fn beta_prior(&self, tau: f64) -> Result<MultivariateNormal, LogDensityError> {
        MultivariateNormal::from_covariance(self.prior_mean.clone(), &self.prior_scale / tau)
            .map_err(conjugate_error)
    }
}

impl GibbsModel for NormalGamma {
    fn dim(&self) -> usize {
        3
    }

    fn blocks(&self) -> Vec<GibbsBlock> {
        match self.blocks {
            NormalGammaBlocks::BothConjugate => vec![
                GibbsBlock::conjugate("beta", 0..2),
                GibbsBlock::conjugate("log_tau", 2..3),
            ],
            NormalGammaBlocks::MetropolisPrecision => vec![
                GibbsBlock::conjugate("beta", 0..2),
                GibbsBlock::metropolis("log_tau", 2..3),
            ],
            NormalGammaBlocks::CollapsedPrecisionFirst => vec![
                GibbsBlock::collapsed("log_tau", 2..3, 1),
                GibbsBlock::conjugate("beta", 0..2),
            ],
            NormalGammaBlocks::CollapsedPrecisionLast => vec![
                GibbsBlock::conjugate("beta", 0..2),
                GibbsBlock::collapsed("log_tau", 2..3, 0),
            ],
        }
    }

    fn log_density(&mut self, position: &[f64]) -> Result<f64, LogDensityError> {
        let log_tau = position[2];
        let tau = log_tau.exp();
        let beta = DVector::from_column_slice(&position[..2]);
        let residual = DVector::from_column_slice(&self.y) - &self.design * &beta;
        let n = self.y.len() as f64;
        let log_likelihood = 0.5 * n * log_tau - 0.5 * tau * residual.norm_squared();
        let log_prior_beta = self.beta_prior(tau)?.log_density(&position[..2]);
        let gamma = GammaParams {
            shape: self.shape,
            rate: self.rate,
        };
        // p(log τ) = p(τ) · τ: the Jacobian of τ = exp(log τ).
        Ok(log_likelihood + log_prior_beta + gamma.log_density(tau) + log_tau)
    }

    fn draw_conditional(
        &mut self,
        block: usize,
        position: &mut [f64],
        rng: &mut Rng,
    ) -> Result<(), LogDensityError> {
        let name = self.blocks()[block].name.clone();
        let tau = position[2].exp();
        match name.as_str() {
            "beta" => {
                let posterior =
                    linear_gaussian_posterior(&self.design, &self.y, tau, &self.beta_prior(tau)?)
                        .map_err(conjugate_error)?;
                posterior.sample_into(rng, &mut position[..2]);
            }
            _ => {
                // τ | β, y: the residuals y − Xβ and the whitened prior deviations
                // (β − m₀) / √V₀ᵢᵢ each have precision τ.
                let beta = DVector::from_column_slice(&position[..2]);
                let mut residuals: Vec<f64> = (DVector::from_column_slice(&self.y)
                    - &self.design * &beta)
                    .iter()
                    .copied()
                    .collect();
                for i in 0..2 {
                    residuals
                        .push((beta[i] - self.prior_mean[i]) / self.prior_scale[(i, i)].sqrt());
                }
                let prior = GammaParams {
                    shape: self.shape,
                    rate: self.rate,
                };
                let tau = gamma_precision_posterior(prior, &residuals)
                    .and_then(|posterior| posterior.sample(rng))
                    .map_err(conjugate_error)?;
                position[2] = tau.ln();
            }
        }
        Ok(())
    }

    fn log_marginal(
        &mut self,
        _marginalised_block: usize,
        position: &[f64],
    ) -> Option<Result<f64, LogDensityError>> {
        let log_tau = position[2];
        let tau = log_tau.exp();
        let gamma = GammaParams {
            shape: self.shape,
            rate: self.rate,
        };
        Some(self.beta_prior(tau).and_then(|prior| {
            linear_gaussian_log_marginal(&self.design, &self.y, tau, &prior)
                .map(|value| value + gamma.log_density(tau) + log_tau)
                .map_err(conjugate_error)
        }))
    }
}

/// The logistic function ψ(η) = 1 / (1 + e^(−η)).
pub fn sigmoid(eta: f64) -> f64 {
    1.0 / (1.0 + (-eta).exp())
}

/// The lecture's shallow network y = Σⱼ βⱼ ψ(γⱼ₀ + γⱼ₁ x) + ε, ε ~ N(0, τ⁻¹), with m hidden
/// units, β ~ N(0, σ_β² I), γⱼ ~ N(0, σ_γ² I), τ ~ Gamma(a, b), over the position
/// [β (m), γ₁ (2), …, γ_m (2), log τ]. The blocks are β (conjugate), each γⱼ (Metropolis,
/// collapsed over β) and log τ (conjugate).
#[derive(Clone, Debug)]
pub struct ShallowNetwork {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub hidden: usize,
    pub beta_sd: f64,
    pub gamma_sd: f64,
    pub shape: f64,
    pub rate: f64,
}

impl ShallowNetwork {
    /// 40 points on x ∈ [−3, 3] from β = (2, −1.5), γ₁ = (0, 1.5), γ₂ = (1, −2), noise sd 0.3.
    /// (With steeper true units the sigmoids saturate, the uncollapsed sampler mixes so slowly
    /// along the flat directions that its ESS-based MCSE is unreliable, and the comparison of the
    /// two samplers would test the MCSE rather than the samplers.)
    pub fn example() -> Self {
        let mut rng = stream_rng(23, 0);
        let n = 40;
        let x: Vec<f64> = (0..n)
            .map(|i| -3.0 + 6.0 * i as f64 / (n - 1) as f64)
            .collect();
        let y = x
            .iter()
            .map(|&x| {
                let e: f64 = StandardNormal.sample(&mut rng);
                2.0 * sigmoid(1.5 * x) - 1.5 * sigmoid(1.0 - 2.0 * x) + 0.3 * e
            })
            .collect();
        ShallowNetwork {
            x,
            y,
            hidden: 2,
            beta_sd: 2.0,
            gamma_sd: 2.0,
            shape: 2.0,
            rate: 0.2,
        }
    }

    pub fn dim(&self) -> usize {
        3 * self.hidden + 1
    }

    /// Z with zᵢⱼ = ψ(γⱼ₀ + γⱼ₁ xᵢ) (the lecture's Lemma 2.1).
    pub fn design(&self, position: &[f64], x: &[f64]) -> DMatrix<f64> {
        let m = self.hidden;
        DMatrix::from_fn(x.len(), m, |i, j| {
            let gamma = &position[m + 2 * j..m + 2 * j + 2];
            sigmoid(gamma[0] + gamma[1] * x[i])
        })
    }

    /// The network's output at `x` for a position.
    pub fn predict(&self, position: &[f64], x: f64) -> f64 {
        let z = self.design(position, &[x]);
        (0..self.hidden).map(|j| position[j] * z[(0, j)]).sum()
    }

    fn log_prior_rest(&self, position: &[f64]) -> f64 {
        let m = self.hidden;
        let log_tau = position[3 * m];
        let s2 = self.gamma_sd * self.gamma_sd;
        let gamma_prior: f64 = position[m..3 * m]
            .iter()
            .map(|g| -self.gamma_sd.ln() - HALF_LOG_TWO_PI - g * g / (2.0 * s2))
            .sum();
        let gamma = GammaParams {
            shape: self.shape,
            rate: self.rate,
        };
        gamma_prior + gamma.log_density(log_tau.exp()) + log_tau
    }

    fn beta_prior(&self) -> MultivariateNormal {
        MultivariateNormal::isotropic(self.hidden, 0.0, self.beta_sd * self.beta_sd)
            .expect("a valid prior")
    }
}

impl GibbsModel for ShallowNetwork {
    fn dim(&self) -> usize {
        ShallowNetwork::dim(self)
    }

    fn blocks(&self) -> Vec<GibbsBlock> {
        let m = self.hidden;
        let mut blocks = vec![GibbsBlock::conjugate("beta", 0..m)];
        for j in 0..m {
            blocks.push(GibbsBlock::collapsed(
                format!("gamma_{}", j + 1),
                m + 2 * j..m + 2 * j + 2,
                0,
            ));
        }
        blocks.push(GibbsBlock::conjugate("log_tau", 3 * m..3 * m + 1));
        blocks
    }

    fn log_density(&mut self, position: &[f64]) -> Result<f64, LogDensityError> {
        let m = self.hidden;
        let log_tau = position[3 * m];
        let tau = log_tau.exp();
        let z = self.design(position, &self.x);
        let beta = DVector::from_column_slice(&position[..m]);
        let residual = DVector::from_column_slice(&self.y) - z * beta;
        let n = self.y.len() as f64;
        let log_likelihood =
            n * (0.5 * log_tau - HALF_LOG_TWO_PI) - 0.5 * tau * residual.norm_squared();
        Ok(log_likelihood
            + self.beta_prior().log_density(&position[..m])
            + self.log_prior_rest(position))
    }

    fn draw_conditional(
        &mut self,
        block: usize,
        position: &mut [f64],
        rng: &mut Rng,
    ) -> Result<(), LogDensityError> {
        let m = self.hidden;
        let tau = position[3 * m].exp();
        let z = self.design(position, &self.x);
        if block == 0 {
            let posterior = linear_gaussian_posterior(&z, &self.y, tau, &self.beta_prior())
                .map_err(conjugate_error)?;
            posterior.sample_into(rng, &mut position[..m]);
        } else {
            let beta = DVector::from_column_slice(&position[..m]);
            let residual = DVector::from_column_slice(&self.y) - z * beta;
            let prior = GammaParams {
                shape: self.shape,
                rate: self.rate,
            };
            let tau = gamma_precision_posterior(prior, residual.as_slice())
                .and_then(|posterior| posterior.sample(rng))
                .map_err(conjugate_error)?;
            position[3 * m] = tau.ln();
        }
        Ok(())
    }

    fn log_marginal(
        &mut self,
        _marginalised_block: usize,
        position: &[f64],
    ) -> Option<Result<f64, LogDensityError>> {
        let m = self.hidden;
        let tau = position[3 * m].exp();
        let z = self.design(position, &self.x);
        Some(
            linear_gaussian_log_marginal(&z, &self.y, tau, &self.beta_prior())
                .map(|value| value + self.log_prior_rest(position))
                .map_err(conjugate_error),
        )
    }
}

/// The draws of a derived quantity, per chain.
pub fn derived(result: &GibbsResult, f: impl Fn(&[f64]) -> f64) -> Vec<Vec<f64>> {
    result
        .chains
        .iter()
        .map(|chain| (0..chain.n_draws()).map(|i| f(chain.draw(i))).collect())
        .collect()
}

/// The pooled mean, its MCSE, the pooled sd, its MCSE and R-hat of per-chain draws.
pub fn moments(chains: &[Vec<f64>]) -> (f64, f64, f64, f64, f64) {
    let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
    let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
    let n = pooled.len() as f64;
    let mean = pooled.iter().sum::<f64>() / n;
    let sd = (pooled.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    (
        mean,
        mcse_mean(&slices).expect("enough draws"),
        sd,
        mcse_sd(&slices).expect("enough draws"),
        rhat(&slices).expect("enough draws"),
    )
}

/// Asserts that the mean and sd of a quantity are within 4 MCSE of the exact values, and R-hat
/// below 1.01.
pub fn assert_moments(label: &str, chains: &[Vec<f64>], exact_mean: f64, exact_sd: f64) {
    let (mean, mean_mcse, sd, sd_mcse, r_hat) = moments(chains);
    let z_mean = (mean - exact_mean) / mean_mcse;
    let z_sd = (sd - exact_sd) / sd_mcse;
    assert!(
        z_mean.abs() < 4.0,
        "{label}: mean {mean} vs exact {exact_mean} (mcse {mean_mcse}, z = {z_mean:.2})"
    );
    assert!(
        z_sd.abs() < 4.0,
        "{label}: sd {sd} vs exact {exact_sd} (mcse {sd_mcse}, z = {z_sd:.2})"
    );
    assert!(r_hat < 1.01, "{label}: R-hat {r_hat}");
}
