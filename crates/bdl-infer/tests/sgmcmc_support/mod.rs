//! A mini-batch Bayesian linear regression for the SG-MCMC tests, its exact posterior, and the
//! exact stationary covariance of the discretised SGLD and SGHMC chains on it.
//!
//! On a Gaussian posterior N(μ, P⁻¹) the full-data gradient is −P (θ − μ), and the mini-batch
//! gradient adds zero-mean noise whose covariance V(θ) is a quadratic function of θ (the
//! per-row gradients are linear in θ). One SGLD step is the linear recursion
//! θ' − μ = A (θ − μ) + noise with A = I − (ε/2) P and noise covariance ε I + (ε²/4) V(θ), so the
//! second moments obey S = A S Aᵀ + ε I + (ε²/4) E[V(θ)] exactly, and E[V(θ)] depends on S only.
//! The stationary covariance is the fixed point of that discrete Lyapunov equation (and likewise
//! for SGHMC's position–momentum pair), and the stationary mean is μ exactly. So the step-size
//! and mini-batch bias of the variance is known in closed form: the tests' tolerances are derived
//! from it.

#![allow(dead_code)]

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint};
use bdl_infer::rng::{stream_rng, Rng};
use nalgebra::{DMatrix, DVector};
use rand::seq::index::sample as sample_indices;
use rand_distr::{Distribution, StandardNormal};

const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// y = b + w x + ε, ε ~ N(0, σ²) with σ known, b, w ~ N(0, s²), fitted on mini-batches of B rows
/// drawn without replacement, the likelihood scaled by N / B.
#[derive(Clone, Debug)]
pub struct MiniBatchRegression {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub noise_sd: f64,
    pub prior_sd: f64,
    pub batch: usize,
}

impl MiniBatchRegression {
    /// 200 points with x ~ N(0, 1), b = 0.5, w = −1.5, σ = 1, prior sd 10, batches of 20.
    pub fn example() -> Self {
        let mut rng = stream_rng(31, 0);
        let n = 200;
        let x: Vec<f64> = (0..n)
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                e
            })
            .collect();
        let y = x
            .iter()
            .map(|&x| {
                let e: f64 = StandardNormal.sample(&mut rng);
                0.5 - 1.5 * x + e
            })
            .collect();
        MiniBatchRegression {
            x,
            y,
            noise_sd: 1.0,
            prior_sd: 10.0,
            batch: 20,
        }
    }

    fn row(&self, i: usize) -> [f64; 2] {
        [1.0, self.x[i]]
    }

    /// The exact posterior: precision P = XᵀX / σ² + I / s², mean P⁻¹ Xᵀy / σ².
    pub fn exact_posterior(&self) -> (DVector<f64>, DMatrix<f64>) {
        let variance = self.noise_sd * self.noise_sd;
        let mut precision = DMatrix::identity(2, 2) / (self.prior_sd * self.prior_sd);
        let mut right = DVector::zeros(2);
        for i in 0..self.x.len() {
            let row = self.row(i);
            for a in 0..2 {
                right[a] += row[a] * self.y[i] / variance;
                for b in 0..2 {
                    precision[(a, b)] += row[a] * row[b] / variance;
                }
            }
        }
        let covariance = precision.clone().try_inverse().expect("invertible");
        (&covariance * right, precision)
    }

    /// The expected covariance of the mini-batch gradient when θ has mean μ (the posterior
    /// mean) and covariance S. Per row, uᵢ(θ) = xᵢ (yᵢ − xᵢᵀθ) / σ² = uᵢ(μ) − Mᵢ (θ − μ) with
    /// Mᵢ = xᵢ xᵢᵀ / σ². A simple random sample of B of N rows without replacement has
    /// Var(Σ uᵢ) = B S_u (N − B) / (N − 1), S_u the population covariance
    /// (1/N) Σ (uᵢ − ū)(uᵢ − ū)ᵀ, and the gradient scales the sum by N / B. Averaging S_u(θ) over
    /// θ adds (1/N) Σ (Mᵢ − M̄) S (Mᵢ − M̄)ᵀ (the cross terms vanish because E[θ − μ] = 0).
    pub fn expected_gradient_noise(&self, covariance: &DMatrix<f64>) -> DMatrix<f64> {
        let (mean, _) = self.exact_posterior();
        let n = self.x.len() as f64;
        let b = self.batch as f64;
        let variance = self.noise_sd * self.noise_sd;
        let u: Vec<DVector<f64>> = (0..self.x.len())
            .map(|i| {
                let row = DVector::from_row_slice(&self.row(i));
                let residual = self.y[i] - row.dot(&mean);
                row * (residual / variance)
            })
            .collect();
        let m: Vec<DMatrix<f64>> = (0..self.x.len())
            .map(|i| {
                let row = DVector::from_row_slice(&self.row(i));
                &row * row.transpose() / variance
            })
            .collect();
        let u_mean = u.iter().fold(DVector::zeros(2), |a, v| a + v) / n;
        let m_mean = m.iter().fold(DMatrix::zeros(2, 2), |a, v| a + v) / n;
        let mut population = DMatrix::zeros(2, 2);
        for (ui, mi) in u.iter().zip(&m) {
            let centred = ui - &u_mean;
            let slope = mi - &m_mean;
            population +=
                (&centred * centred.transpose() + &slope * covariance * slope.transpose()) / n;
        }
        population * ((n / b) * (n / b) * b * (n - b) / (n - 1.0))
    }
}

impl ElboModel for MiniBatchRegression {
    fn latent_dim(&self) -> usize {
        2
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
        let n = self.x.len();
        let scale = n as f64 / self.batch as f64;
        let variance = self.noise_sd * self.noise_sd;
        gradient.iter_mut().for_each(|g| *g = 0.0);
        let mut likelihood = 0.0;
        for i in sample_indices(rng, n, self.batch) {
            let row = self.row(i);
            let residual = self.y[i] - row[0] * position[0] - row[1] * position[1];
            likelihood += scale
                * (-self.noise_sd.ln() - HALF_LOG_TWO_PI - residual * residual / (2.0 * variance));
            // d/dθ of −(y − xᵀθ)² / (2σ²) is x (y − xᵀθ) / σ².
            for a in 0..2 {
                gradient[a] += scale * row[a] * residual / variance;
            }
        }
        let s2 = self.prior_sd * self.prior_sd;
        let mut prior = 0.0;
        for a in 0..2 {
            prior += -self.prior_sd.ln() - HALF_LOG_TWO_PI - position[a] * position[a] / (2.0 * s2);
            gradient[a] += options.prior_weight * (-position[a] / s2);
        }
        Ok(LogJoint { likelihood, prior })
    }
}

/// The solution S of S = A S Aᵀ + Q for a stable A, by doubling: S = Σₖ Aᵏ Q Aᵏᵀ, summed as
/// S ← S + A S Aᵀ, A ← A² until A vanishes.
pub fn discrete_lyapunov(a: &DMatrix<f64>, q: &DMatrix<f64>) -> DMatrix<f64> {
    let mut power = a.clone();
    let mut sum = q.clone();
    for _ in 0..200 {
        sum = &sum + &power * &sum * power.transpose();
        power = &power * &power;
        if power.amax() < 1e-18 {
            return sum;
        }
    }
    panic!("the recursion is not stable");
}

/// The fixed point S = Lyapunov(S) of a map from the position covariance to the stationary
/// position covariance, starting from `start`.
fn fixed_point(
    start: DMatrix<f64>,
    lyapunov: impl Fn(&DMatrix<f64>) -> DMatrix<f64>,
) -> DMatrix<f64> {
    let mut current = start;
    for _ in 0..500 {
        let next = lyapunov(&current);
        if (&next - &current).amax() <= 1e-15 * next.amax() {
            return next;
        }
        current = next;
    }
    panic!("the stationary covariance does not converge");
}

/// The stationary covariance of SGLD with step size ε on N(μ, P⁻¹) whose gradient noise has
/// expected covariance `noise(S)`: S = A S Aᵀ + ε I + (ε²/4) noise(S), A = I − (ε/2) P.
pub fn sgld_stationary_covariance(
    step_size: f64,
    precision: &DMatrix<f64>,
    noise: impl Fn(&DMatrix<f64>) -> DMatrix<f64>,
) -> DMatrix<f64> {
    let d = precision.nrows();
    let a = DMatrix::identity(d, d) - precision * (0.5 * step_size);
    let start = precision.clone().try_inverse().expect("invertible");
    fixed_point(start, |s| {
        let q = DMatrix::identity(d, d) * step_size + noise(s) * (0.25 * step_size * step_size);
        discrete_lyapunov(&a, &q)
    })
}

/// The stationary covariance of SGHMC's position with step size ε, friction C and B̂ = 0. With
/// θ̃ = θ − μ, one step is r' = −ε P θ̃ + (1 − εC) r + n and θ̃' = θ̃ + ε r', where n has
/// covariance Q_r = ε² noise(S) + 2 C ε I; so (θ̃, r) evolves by
/// A = [[I − ε² P, ε (1 − εC) I], [−ε P, (1 − εC) I]] with noise covariance
/// [[ε² Q_r, ε Q_r], [ε Q_r, Q_r]].
pub fn sghmc_stationary_covariance(
    step_size: f64,
    friction: f64,
    precision: &DMatrix<f64>,
    noise: impl Fn(&DMatrix<f64>) -> DMatrix<f64>,
) -> DMatrix<f64> {
    let d = precision.nrows();
    let identity = DMatrix::<f64>::identity(d, d);
    let eps = step_size;
    let decay = 1.0 - eps * friction;
    let mut a = DMatrix::zeros(2 * d, 2 * d);
    a.view_mut((0, 0), (d, d))
        .copy_from(&(&identity - precision * (eps * eps)));
    a.view_mut((0, d), (d, d))
        .copy_from(&(&identity * (eps * decay)));
    a.view_mut((d, 0), (d, d)).copy_from(&(precision * (-eps)));
    a.view_mut((d, d), (d, d)).copy_from(&(&identity * decay));
    let start = precision.clone().try_inverse().expect("invertible");
    fixed_point(start, |s| {
        let q_r = noise(s) * (eps * eps) + &identity * (2.0 * friction * eps);
        let mut q = DMatrix::zeros(2 * d, 2 * d);
        q.view_mut((0, 0), (d, d)).copy_from(&(&q_r * (eps * eps)));
        q.view_mut((0, d), (d, d)).copy_from(&(&q_r * eps));
        q.view_mut((d, 0), (d, d)).copy_from(&(&q_r * eps));
        q.view_mut((d, d), (d, d)).copy_from(&q_r);
        discrete_lyapunov(&a, &q).view((0, 0), (d, d)).into_owned()
    })
}
