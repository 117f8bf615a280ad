//! Closed-form models written as `ElboModel`s for the variational tests, their exact posteriors,
//! and the Monte Carlo checks the tests share.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint, NormalPrior};
use bdl_infer::rng::{stream_rng, Rng};
use bdl_infer::vi::{
    Adam, FittedGuide, GuideKind, LearningRateSchedule, OptimizerKind, OptimizerSettings,
    SviSettings,
};
use rand::seq::index::sample as sample_indices;
use rand_distr::{Distribution, StandardNormal};

const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Adam from a learning rate of 0.05 decayed exponentially to 0.0005 at the last step, so the
/// final iterate is close to the optimum rather than jittering around it, with 16 particles
/// (the low-rank guide's redundant parameterisation converges slowly on noisier gradients).
pub fn settings(guide: GuideKind, steps: usize, seed: u64) -> SviSettings {
    SviSettings {
        guide,
        steps,
        particles: 16,
        seed,
        optimizer: OptimizerSettings {
            kind: OptimizerKind::Adam(Adam {
                learning_rate: 0.05,
                ..Adam::default()
            }),
            schedule: LearningRateSchedule::Exponential {
                gamma: 0.01f64.powf(1.0 / steps as f64),
            },
            max_gradient_norm: None,
        },
        ..SviSettings::default()
    }
}

/// log σ(u), stably.
fn log_sigmoid(u: f64) -> f64 {
    -((-u.abs()).exp().ln_1p() + (-u).max(0.0))
}

/// σ(u).
pub fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// Beta(a, b) prior on p with Bernoulli observations; the latent is u = logit(p), so the prior
/// part carries the Jacobian dp/du = σ(u)(1 − σ(u)).
#[derive(Clone)]
pub struct BetaBernoulli {
    pub prior_a: f64,
    pub prior_b: f64,
    pub ones: f64,
    pub zeros: f64,
}

impl BetaBernoulli {
    /// Beta(1, 1) with 8 ones and 2 zeros: the posterior is Beta(9, 3), mean 0.75.
    pub fn eight_of_ten() -> Self {
        BetaBernoulli {
            prior_a: 1.0,
            prior_b: 1.0,
            ones: 8.0,
            zeros: 2.0,
        }
    }
}

impl ElboModel for BetaBernoulli {
    fn latent_dim(&self) -> usize {
        1
    }

    fn param_dim(&self) -> usize {
        0
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        _rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let u = position[0];
        let p = sigmoid(u);
        // log p = log σ(u), log(1 − p) = log σ(−u); d/du log σ(u) = 1 − σ(u), d/du log σ(−u) = −σ(u).
        let (log_p, log_q) = (log_sigmoid(u), log_sigmoid(-u));
        let likelihood = self.ones * log_p + self.zeros * log_q;
        let d_likelihood = self.ones * (1.0 - p) - self.zeros * p;
        // Beta(a, b) density up to its constant, times the Jacobian σ(u)(1 − σ(u)).
        let prior = self.prior_a * log_p + self.prior_b * log_q;
        let d_prior = self.prior_a * (1.0 - p) - self.prior_b * p;
        gradient[0] = d_likelihood + options.prior_weight * d_prior;
        Ok(LogJoint { likelihood, prior })
    }
}

/// Bayesian linear regression with known noise: y = X β + ε, ε ~ N(0, σ²), β_i ~ N(m_i, s_i),
/// optionally with a mini-batch of `batch` rows drawn without replacement from the rng and the
/// likelihood scaled by N / B.
#[derive(Clone)]
pub struct GaussianLinear {
    pub design: Vec<Vec<f64>>,
    pub y: Vec<f64>,
    pub noise_sd: f64,
    pub prior_loc: Vec<f64>,
    pub prior_scale: Vec<f64>,
    pub batch: Option<usize>,
    /// Whether `normal_priors` declares the priors (for the analytic-KL estimator).
    pub declare_normal_priors: bool,
}

impl GaussianLinear {
    /// The teaching material's regression: b, w ~ N(0, 5), σ = 1, (x, y) = (2, 0), (−2, −2).
    pub fn bayes_linreg() -> Self {
        GaussianLinear {
            design: vec![vec![1.0, 2.0], vec![1.0, -2.0]],
            y: vec![0.0, -2.0],
            noise_sd: 1.0,
            prior_loc: vec![0.0, 0.0],
            prior_scale: vec![5.0, 5.0],
            batch: None,
            declare_normal_priors: true,
        }
    }

    /// Normal–Normal: two independent means with N(1, 2) and N(−1, 0.5) priors and a few
    /// observations each (σ = 1.5), as a regression on indicator columns.
    pub fn normal_normal() -> Self {
        let first = [2.1, 0.4, 3.3, 1.7];
        let second = [-0.2, 0.9, 0.3];
        let mut design = Vec::new();
        let mut y = Vec::new();
        for v in first {
            design.push(vec![1.0, 0.0]);
            y.push(v);
        }
        for v in second {
            design.push(vec![0.0, 1.0]);
            y.push(v);
        }
        GaussianLinear {
            design,
            y,
            noise_sd: 1.5,
            prior_loc: vec![1.0, -1.0],
            prior_scale: vec![2.0, 0.5],
            batch: None,
            declare_normal_priors: true,
        }
    }

    /// A quadratic regression on x = 0.5, 1, …, 3 whose posterior is strongly correlated.
    pub fn correlated_quadratic() -> Self {
        let xs = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        let ys = [1.1, 1.9, 2.2, 3.4, 3.9, 5.3];
        GaussianLinear {
            design: xs.iter().map(|&x| vec![1.0, x, x * x]).collect(),
            y: ys.to_vec(),
            noise_sd: 0.5,
            prior_loc: vec![0.0, 0.0, 0.0],
            prior_scale: vec![2.0, 2.0, 2.0],
            batch: None,
            declare_normal_priors: true,
        }
    }

    /// Normal–Normal with 100 observations of one mean (σ = 1, μ ~ N(0, 10)), fitted on
    /// mini-batches of 10.
    pub fn minibatch_mean() -> Self {
        let mut rng = stream_rng(2024, 0);
        let y: Vec<f64> = (0..100)
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                1.3 + e
            })
            .collect();
        GaussianLinear {
            design: vec![vec![1.0]; 100],
            y,
            noise_sd: 1.0,
            prior_loc: vec![0.0],
            prior_scale: vec![10.0],
            batch: Some(10),
            declare_normal_priors: true,
        }
    }

    pub fn dim(&self) -> usize {
        self.prior_loc.len()
    }

    /// The exact posterior mean and covariance (full data): precision P = XᵀX / σ² + diag(1/s²),
    /// mean = P⁻¹ (Xᵀy / σ² + m / s²).
    pub fn exact_posterior(&self) -> (Vec<f64>, Vec<Vec<f64>>) {
        let d = self.dim();
        let noise_precision = 1.0 / (self.noise_sd * self.noise_sd);
        let mut precision = nalgebra::DMatrix::<f64>::zeros(d, d);
        let mut rhs = nalgebra::DVector::<f64>::zeros(d);
        for (row, &y) in self.design.iter().zip(&self.y) {
            for i in 0..d {
                rhs[i] += row[i] * y * noise_precision;
                for j in 0..d {
                    precision[(i, j)] += row[i] * row[j] * noise_precision;
                }
            }
        }
        for i in 0..d {
            let prior_precision = 1.0 / (self.prior_scale[i] * self.prior_scale[i]);
            precision[(i, i)] += prior_precision;
            rhs[i] += self.prior_loc[i] * prior_precision;
        }
        let covariance = precision
            .try_inverse()
            .expect("the posterior precision is invertible");
        let mean = &covariance * rhs;
        (
            mean.iter().copied().collect(),
            (0..d)
                .map(|i| (0..d).map(|j| covariance[(i, j)]).collect())
                .collect(),
        )
    }

    /// The exact ELBO (full data, β = 1) of a normal guide with mean `mean` and covariance
    /// `covariance`: E_q[log p(y | β)] + E_q[log p(β)] + H[q].
    pub fn exact_elbo(&self, mean: &[f64], covariance: &[Vec<f64>]) -> f64 {
        let d = self.dim();
        let variance = self.noise_sd * self.noise_sd;
        let mut value = 0.0;
        for (row, &y) in self.design.iter().zip(&self.y) {
            let fitted: f64 = row.iter().zip(mean).map(|(x, m)| x * m).sum();
            let mut spread = 0.0;
            for i in 0..d {
                for j in 0..d {
                    spread += row[i] * covariance[i][j] * row[j];
                }
            }
            value += -self.noise_sd.ln()
                - HALF_LOG_TWO_PI
                - ((y - fitted) * (y - fitted) + spread) / (2.0 * variance);
        }
        for i in 0..d {
            let s = self.prior_scale[i];
            let offset = mean[i] - self.prior_loc[i];
            value +=
                -s.ln() - HALF_LOG_TWO_PI - (offset * offset + covariance[i][i]) / (2.0 * s * s);
        }
        let matrix = nalgebra::DMatrix::from_fn(d, d, |i, j| covariance[i][j]);
        let log_det = matrix.determinant().ln();
        value + d as f64 * (0.5 + HALF_LOG_TWO_PI) + 0.5 * log_det
    }
}

impl ElboModel for GaussianLinear {
    fn latent_dim(&self) -> usize {
        self.dim()
    }

    fn param_dim(&self) -> usize {
        0
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let d = self.dim();
        let n = self.y.len();
        let variance = self.noise_sd * self.noise_sd;
        gradient.iter_mut().for_each(|g| *g = 0.0);
        let rows: Vec<usize> = match self.batch {
            Some(batch) => sample_indices(rng, n, batch).into_vec(),
            None => (0..n).collect(),
        };
        let scale = n as f64 / rows.len() as f64;
        let mut likelihood = 0.0;
        for &r in &rows {
            let row = &self.design[r];
            let residual = self.y[r] - row.iter().zip(position).map(|(x, b)| x * b).sum::<f64>();
            likelihood += scale
                * (-self.noise_sd.ln() - HALF_LOG_TWO_PI - residual * residual / (2.0 * variance));
            // d/dβ of −(y − xβ)² / (2σ²) is x (y − xβ) / σ².
            for i in 0..d {
                gradient[i] += scale * row[i] * residual / variance;
            }
        }
        let mut prior = 0.0;
        if !(options.skip_normal_priors && self.declare_normal_priors) {
            for i in 0..d {
                let s = self.prior_scale[i];
                let offset = position[i] - self.prior_loc[i];
                prior += -s.ln() - HALF_LOG_TWO_PI - offset * offset / (2.0 * s * s);
                gradient[i] += options.prior_weight * (-offset / (s * s));
            }
        }
        Ok(LogJoint { likelihood, prior })
    }

    fn normal_priors(&self) -> Vec<NormalPrior> {
        if self.declare_normal_priors {
            vec![NormalPrior {
                offset: 0,
                loc: self.prior_loc.clone(),
                scale: self.prior_scale.clone(),
            }]
        } else {
            Vec::new()
        }
    }
}

/// Normal–Normal with an unknown observation scale as a `param`: y_i ~ N(μ, exp(ρ)),
/// μ ~ N(0, 3); position = [μ, ρ].
#[derive(Clone)]
pub struct UnknownNoise {
    pub y: Vec<f64>,
    pub prior_scale: f64,
}

impl UnknownNoise {
    pub fn example() -> Self {
        UnknownNoise {
            y: vec![0.3, 2.2, -1.1, 1.9, 0.8, 3.0, -0.4, 1.5],
            prior_scale: 3.0,
        }
    }

    /// log p(y | σ) = log N(y; 0, σ² I + s² 1 1ᵀ), the quantity a point ρ maximises at the
    /// ELBO's optimum (the guide family holds the exact conditional posterior of μ).
    pub fn log_marginal_likelihood(&self, rho: f64) -> f64 {
        let n = self.y.len() as f64;
        let noise_variance = (2.0 * rho).exp();
        let prior_variance = self.prior_scale * self.prior_scale;
        // Sherman–Morrison: (σ²I + s²11ᵀ)⁻¹ = I/σ² − s² 11ᵀ / (σ² (σ² + n s²)),
        // det = σ^{2(n−1)} (σ² + n s²).
        let sum: f64 = self.y.iter().sum();
        let sum_squares: f64 = self.y.iter().map(|v| v * v).sum();
        let quadratic = sum_squares / noise_variance
            - prior_variance * sum * sum / (noise_variance * (noise_variance + n * prior_variance));
        let log_det = (n - 1.0) * noise_variance.ln() + (noise_variance + n * prior_variance).ln();
        -n * HALF_LOG_TWO_PI - 0.5 * log_det - 0.5 * quadratic
    }

    /// The maximiser of the log marginal likelihood over ρ, by golden-section search.
    pub fn type_two_maximum(&self) -> f64 {
        let (mut low, mut high) = (-5.0f64, 5.0f64);
        let ratio = (5f64.sqrt() - 1.0) / 2.0;
        while high - low > 1e-10 {
            let a = high - ratio * (high - low);
            let b = low + ratio * (high - low);
            if self.log_marginal_likelihood(a) > self.log_marginal_likelihood(b) {
                high = b;
            } else {
                low = a;
            }
        }
        0.5 * (low + high)
    }
}

impl ElboModel for UnknownNoise {
    fn latent_dim(&self) -> usize {
        1
    }

    fn param_dim(&self) -> usize {
        1
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        _rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let (mu, rho) = (position[0], position[1]);
        let variance = (2.0 * rho).exp();
        let mut likelihood = 0.0;
        gradient[0] = 0.0;
        gradient[1] = 0.0;
        for &y in &self.y {
            let residual = y - mu;
            likelihood += -rho - HALF_LOG_TWO_PI - residual * residual / (2.0 * variance);
            gradient[0] += residual / variance;
            // d/dρ [−ρ − r² e^{−2ρ} / 2] = −1 + r² e^{−2ρ}.
            gradient[1] += -1.0 + residual * residual / variance;
        }
        let s = self.prior_scale;
        let prior = -s.ln() - HALF_LOG_TWO_PI - mu * mu / (2.0 * s * s);
        gradient[0] += options.prior_weight * (-mu / (s * s));
        Ok(LogJoint { likelihood, prior })
    }
}

/// The sample mean and Monte Carlo standard error of each coordinate of `values` (independent
/// draws).
pub fn mean_and_standard_error(values: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let n = values.len() as f64;
    let d = values[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|i| values.iter().map(|v| v[i]).sum::<f64>() / n)
        .collect();
    let standard_error = (0..d)
        .map(|i| {
            let variance = values.iter().map(|v| (v[i] - mean[i]).powi(2)).sum::<f64>() / (n - 1.0);
            (variance / n).sqrt()
        })
        .collect();
    (mean, standard_error)
}

/// Asserts that the mean of draws from `guide` (mapped through `transform`) is within
/// max(4 MCSE, 0.05) of `exact`, coordinate by coordinate.
pub fn assert_mean_matches(
    label: &str,
    guide: &FittedGuide,
    transform: impl Fn(&[f64]) -> Vec<f64>,
    exact: &[f64],
    n_draws: usize,
    seed: u64,
) {
    let draws: Vec<Vec<f64>> = guide
        .sample(&mut stream_rng(seed, 99), n_draws)
        .iter()
        .map(|z| transform(z))
        .collect();
    let (mean, standard_error) = mean_and_standard_error(&draws);
    for i in 0..exact.len() {
        let tolerance = (4.0 * standard_error[i]).max(0.05);
        assert!(
            (mean[i] - exact[i]).abs() <= tolerance,
            "{label}: posterior mean[{i}] {} vs exact {} (tolerance {tolerance})",
            mean[i],
            exact[i]
        );
    }
}

/// Asserts that the covariance of draws from `guide` matches `exact` within 4 standard errors of
/// a sample covariance of that many normal draws, √((Σ_ii Σ_jj + Σ_ij²) / n).
pub fn assert_covariance_matches(
    label: &str,
    guide: &FittedGuide,
    exact: &[Vec<f64>],
    n_draws: usize,
    seed: u64,
) {
    let draws = guide.sample(&mut stream_rng(seed, 98), n_draws);
    let (mean, _) = mean_and_standard_error(&draws);
    let n = n_draws as f64;
    let d = exact.len();
    for i in 0..d {
        for j in 0..=i {
            let sample = draws
                .iter()
                .map(|z| (z[i] - mean[i]) * (z[j] - mean[j]))
                .sum::<f64>()
                / (n - 1.0);
            let standard_error =
                ((exact[i][i] * exact[j][j] + exact[i][j] * exact[i][j]) / n).sqrt();
            assert!(
                (sample - exact[i][j]).abs() <= 4.0 * standard_error,
                "{label}: covariance[{i}][{j}] {sample} vs exact {} (tolerance {})",
                exact[i][j],
                4.0 * standard_error
            );
        }
    }
}

/// Checks a test model's gradient against six-point central differences of its log joint.
pub fn assert_gradient_is_right<M: ElboModel>(model: &mut M, position: &[f64], prior_weight: f64) {
    let options = JointOptions {
        prior_weight,
        skip_normal_priors: false,
    };
    let dim = position.len();
    let mut gradient = vec![0.0; dim];
    let mut ignored = vec![0.0; dim];
    model
        .log_joint(position, &options, &mut stream_rng(0, 0), &mut gradient)
        .unwrap();
    let mut value = |shifted: &[f64]| {
        let joint = model
            .log_joint(shifted, &options, &mut stream_rng(0, 0), &mut ignored)
            .unwrap();
        joint.likelihood + prior_weight * joint.prior
    };
    for k in 0..dim {
        let h = 1e-3;
        let mut at = |offset: f64| {
            let mut shifted = position.to_vec();
            shifted[k] += offset;
            value(&shifted)
        };
        let numeric = (at(3.0 * h) - 9.0 * at(2.0 * h) + 45.0 * at(h) - 45.0 * at(-h)
            + 9.0 * at(-2.0 * h)
            - at(-3.0 * h))
            / (60.0 * h);
        assert!(
            (numeric - gradient[k]).abs() <= 1e-6 * (1.0 + numeric.abs()),
            "coordinate {k}: {numeric} vs {}",
            gradient[k]
        );
    }
}
