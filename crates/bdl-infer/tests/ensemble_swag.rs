//! MultiSWAG on a quadratic loss with noisy gradients, where the stationary distribution of SGD
//! is known in closed form.
//!
//! With loss ½ (θ − μ)ᵀ H (θ − μ) and gradient noise ξ ~ N(0, c I), plain SGD at learning rate η
//! is θ̃' = (I − η H) θ̃ + η ξ (θ̃ = θ − μ). Writing H = V diag(h) Vᵀ, each eigen-direction is an
//! independent AR(1) process with coefficient ρⱼ = 1 − η hⱼ and stationary variance
//! η² c / (1 − ρⱼ²) = η c / (hⱼ (2 − η hⱼ)), so the stationary covariance is
//! S = V diag(η c / (hⱼ (2 − η hⱼ))) Vᵀ and the stationary mean is μ (Mandt, Hoffman and Blei,
//! 2017). Collecting every k steps gives iterates whose lag-one correlation is at most
//! ρ_max^k ≈ 0.006 here, so they are treated as independent draws from N(μ, S) in the standard
//! errors below (which is conservative by a factor (1 + ρ^k) / (1 − ρ^k) ≈ 1.01 at most).

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint};
use bdl_infer::ensemble::{fit, EnsembleSettings, MemberInit, SwagSettings};
use bdl_infer::rng::Rng;
use bdl_infer::vi::{
    Adam, LearningRateSchedule, OptimizerKind, OptimizerSettings, Sgd, SviSettings,
};
use nalgebra::{DMatrix, DVector};
use rand_distr::{Distribution, StandardNormal};
use std::sync::atomic::AtomicBool;

const LEARNING_RATE: f64 = 0.05;
const NOISE_VARIANCE: f64 = 1.0;
const COLLECT_EVERY: usize = 100;
const STEPS: usize = 20_000;
const RANK: usize = 20;
const MEMBERS: usize = 8;

/// H = R diag(1, 4) Rᵀ with R a rotation by 30°, and μ = (1, −2).
fn curvature() -> (DMatrix<f64>, DVector<f64>, [f64; 2]) {
    let angle = std::f64::consts::PI / 6.0;
    let rotation =
        DMatrix::from_row_slice(2, 2, &[angle.cos(), -angle.sin(), angle.sin(), angle.cos()]);
    let eigenvalues = [1.0, 4.0];
    let hessian = &rotation
        * DMatrix::from_diagonal(&DVector::from_row_slice(&eigenvalues))
        * rotation.transpose();
    (hessian, DVector::from_row_slice(&[1.0, -2.0]), eigenvalues)
}

/// The stationary covariance of SGD: V diag(η c / (hⱼ (2 − η hⱼ))) Vᵀ.
fn stationary_covariance() -> DMatrix<f64> {
    let (hessian, _, _) = curvature();
    let eigen = hessian.symmetric_eigen();
    let variances = eigen
        .eigenvalues
        .map(|h| LEARNING_RATE * NOISE_VARIANCE / (h * (2.0 - LEARNING_RATE * h)));
    &eigen.eigenvectors * DMatrix::from_diagonal(&variances) * eigen.eigenvectors.transpose()
}

/// log p(θ) = −½ (θ − μ)ᵀ H (θ − μ), whose gradient −H (θ − μ) is returned with N(0, c I) noise
/// drawn from the rng (what a mini-batch would add).
#[derive(Clone)]
struct NoisyQuadratic {
    hessian: DMatrix<f64>,
    mean: DVector<f64>,
}

impl ElboModel for NoisyQuadratic {
    fn latent_dim(&self) -> usize {
        2
    }

    fn param_dim(&self) -> usize {
        0
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        _options: &JointOptions,
        rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let offset = DVector::from_column_slice(position) - &self.mean;
        let slope = &self.hessian * &offset;
        for (g, s) in gradient.iter_mut().zip(slope.iter()) {
            let noise: f64 = StandardNormal.sample(rng);
            *g = -s + NOISE_VARIANCE.sqrt() * noise;
        }
        Ok(LogJoint {
            likelihood: -0.5 * offset.dot(&slope),
            prior: 0.0,
        })
    }
}

fn swag_settings(draws: usize) -> EnsembleSettings {
    EnsembleSettings {
        members: MEMBERS,
        seed: 21,
        first_member: 0,
        map: SviSettings {
            steps: 3000,
            optimizer: OptimizerSettings {
                kind: OptimizerKind::Adam(Adam {
                    learning_rate: 0.1,
                    ..Adam::default()
                }),
                schedule: LearningRateSchedule::Exponential {
                    gamma: 0.001f64.powf(1.0 / 3000.0),
                },
                max_gradient_norm: None,
            },
            ..SviSettings::default()
        },
        init: MemberInit::Uniform { radius: 3.0 },
        swag: Some(SwagSettings {
            steps: STEPS,
            collect_every: COLLECT_EVERY,
            rank: RANK,
            draws,
            optimizer: OptimizerSettings {
                kind: OptimizerKind::Sgd(Sgd {
                    learning_rate: LEARNING_RATE,
                    momentum: 0.0,
                    ..Sgd::default()
                }),
                ..OptimizerSettings::default()
            },
        }),
        parallel: true,
    }
}

#[test]
fn swag_moments_match_the_stationary_distribution_of_sgd() {
    let (hessian, mean, _) = curvature();
    let model = NoisyQuadratic {
        hessian,
        mean: mean.clone(),
    };
    let result = fit(
        &swag_settings(0),
        |_| model.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let stationary = stationary_covariance();
    let n = STEPS / COLLECT_EVERY;
    let n_f = n as f64;
    let members = result.members.len() as f64;
    let mut swa_mean = DVector::zeros(2);
    let mut diagonal = DVector::zeros(2);
    let mut low_rank = DMatrix::zeros(2, 2);
    for member in &result.members {
        let swag = member.swag.as_ref().expect("a SWAG posterior");
        assert_eq!(swag.n_collected, n);
        assert_eq!(swag.deviations.len(), RANK);
        // Each member's SWA mean is the mean of n independent N(μ, S) iterates.
        for i in 0..2 {
            let standard_error = (stationary[(i, i)] / n_f).sqrt();
            assert!(
                (swag.mean[i] - mean[i]).abs() < 4.0 * standard_error,
                "member {}: SWA mean[{i}] {} vs {} (se {standard_error})",
                member.member,
                swag.mean[i],
                mean[i]
            );
        }
        swa_mean += DVector::from_column_slice(&swag.mean) / members;
        diagonal += DVector::from_column_slice(&swag.diagonal_variance) / members;
        for column in &swag.deviations {
            let d = DVector::from_column_slice(column);
            low_rank += &d * d.transpose() / ((RANK as f64 - 1.0) * members);
        }
    }
    for i in 0..2 {
        let standard_error = (stationary[(i, i)] / (n_f * members)).sqrt();
        assert!(
            (swa_mean[i] - mean[i]).abs() < 4.0 * standard_error,
            "pooled SWA mean[{i}] {} vs {}",
            swa_mean[i],
            mean[i]
        );
        // The diagonal is the population variance (1/n) Σ θ² − θ̄² of n draws: its mean is
        // S_ii (n − 1)/n and its standard error S_ii √(2/n) per member.
        let expected = stationary[(i, i)] * (n_f - 1.0) / n_f;
        let standard_error = stationary[(i, i)] * (2.0 / (n_f * members)).sqrt();
        assert!(
            (diagonal[i] - expected).abs() < 4.0 * standard_error,
            "diagonal variance[{i}] {} vs {expected} (se {standard_error})",
            diagonal[i]
        );
    }
    // The deviations θᵢ − θ̄ᵢ of the last K iterates from the running mean: for independent
    // draws E[(θᵢ − θ̄ᵢ)(θᵢ − θ̄ᵢ)ᵀ] = S (1 − 1/i), so E[D̂ D̂ᵀ / (K − 1)] = S Σᵢ (1 − 1/i) / (K − 1)
    // over i = n − K + 1, …, n. A sum of K outer products of N(0, S) vectors has entry variance
    // K (S_aa S_bb + S_ab²).
    let factor: f64 = ((n - RANK + 1)..=n)
        .map(|i| 1.0 - 1.0 / i as f64)
        .sum::<f64>()
        / (RANK as f64 - 1.0);
    for a in 0..2 {
        for b in 0..2 {
            let expected = stationary[(a, b)] * factor;
            let standard_error = (RANK as f64
                * (stationary[(a, a)] * stationary[(b, b)] + stationary[(a, b)].powi(2))
                / members)
                .sqrt()
                / (RANK as f64 - 1.0);
            assert!(
                (low_rank[(a, b)] - expected).abs() < 4.0 * standard_error,
                "low-rank covariance[{a}][{b}] {} vs {expected} (se {standard_error})",
                low_rank[(a, b)]
            );
        }
    }
}

#[test]
fn swag_draws_follow_the_swag_gaussian() {
    let (hessian, mean, _) = curvature();
    let model = NoisyQuadratic { hessian, mean };
    let n_draws = 4000;
    let settings = EnsembleSettings {
        members: 1,
        ..swag_settings(n_draws)
    };
    let result = fit(
        &settings,
        |_| model.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let member = &result.members[0];
    let swag = member.swag.as_ref().unwrap();
    assert_eq!(member.swag_draws.len(), n_draws);
    let covariance = swag.covariance();
    // The covariance is ½ Σ_diag + D̂ D̂ᵀ / (2 (K − 1)).
    let mut expected =
        DMatrix::from_diagonal(&DVector::from_column_slice(&swag.diagonal_variance)) * 0.5;
    for column in &swag.deviations {
        let d = DVector::from_column_slice(column);
        expected += &d * d.transpose() / (2.0 * (RANK as f64 - 1.0));
    }
    assert!((&covariance - &expected).amax() < 1e-15);
    // Sample moments of independent normal draws: the mean has standard error √(Σ_ii / m) and
    // the covariance entries √((Σ_aa Σ_bb + Σ_ab²) / m).
    let m = n_draws as f64;
    let draws: Vec<DVector<f64>> = member
        .swag_draws
        .iter()
        .map(|d| DVector::from_column_slice(d))
        .collect();
    let sample_mean = draws.iter().fold(DVector::zeros(2), |a, d| a + d) / m;
    let sample_covariance = draws.iter().fold(DMatrix::zeros(2, 2), |a, d| {
        let c = d - &sample_mean;
        a + &c * c.transpose()
    }) / (m - 1.0);
    for a in 0..2 {
        let standard_error = (covariance[(a, a)] / m).sqrt();
        assert!((sample_mean[a] - swag.mean[a]).abs() < 4.0 * standard_error);
        for b in 0..2 {
            let standard_error =
                ((covariance[(a, a)] * covariance[(b, b)] + covariance[(a, b)].powi(2)) / m).sqrt();
            assert!(
                (sample_covariance[(a, b)] - covariance[(a, b)]).abs() < 4.0 * standard_error,
                "draw covariance[{a}][{b}] {} vs {}",
                sample_covariance[(a, b)],
                covariance[(a, b)]
            );
        }
    }
    // The draws are reproducible from the member's stream.
    let again = fit(
        &settings,
        |_| model.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(again.members[0].swag_draws, member.swag_draws);
}
