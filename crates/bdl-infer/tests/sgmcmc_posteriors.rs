//! SGLD and SGHMC on a Bayesian linear regression with known noise, fitted on mini-batches,
//! against its exact Gaussian posterior.
//!
//! The mean of a discretised Langevin or Hamiltonian chain on a Gaussian target is exact, so the
//! posterior mean must match within 4 Monte Carlo standard errors (MCSE from the ESS of the
//! draws). The variance is biased by the finite step size and the mini-batch noise; for a
//! Gaussian target that bias is known in closed form (see `sgmcmc_support`): the stationary
//! covariance S(ε) of the chain at a fixed step size ε. With a decreasing schedule the draws come
//! from step sizes between ε_min and ε_max of the kept iterations, so the sd of the draws must lie
//! between √S(ε_min) and √S(ε_max), widened by 4 MCSE of the sd on each side.

mod sgmcmc_support;

use bdl_infer::diagnostics::{mcse_mean, mcse_sd, rhat};
use bdl_infer::sgmcmc::{sample, SgmcmcAlgorithm, SgmcmcResult, SgmcmcSettings, StepSizeSchedule};
use nalgebra::DMatrix;
use sgmcmc_support::{
    sghmc_stationary_covariance, sgld_stationary_covariance, MiniBatchRegression,
};
use std::sync::atomic::AtomicBool;

fn run(settings: &SgmcmcSettings) -> SgmcmcResult {
    let model = MiniBatchRegression::example();
    sample(
        settings,
        |_| model.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .expect("sampling succeeds")
}

/// The schedule ε_t = a (b + t)^(−0.55) with b = 10⁵ and ε_0 = `first`: over the 2 · 10⁵
/// iterations of a run the step size halves.
fn decreasing(first: f64) -> StepSizeSchedule {
    let offset: f64 = 1e5;
    StepSizeSchedule::Polynomial {
        scale: first * offset.powf(0.55),
        offset,
        decay: 0.55,
    }
}

/// Checks means (4 MCSE), sds (between the stationary sds at the smallest and largest kept step
/// sizes, ± 4 MCSE) and R-hat.
fn assert_matches_posterior(
    label: &str,
    result: &SgmcmcResult,
    stationary: impl Fn(f64) -> DMatrix<f64>,
) {
    let model = MiniBatchRegression::example();
    let (mean, precision) = model.exact_posterior();
    let covariance = precision.try_inverse().expect("invertible");
    let step_sizes: Vec<f64> = result
        .chains
        .iter()
        .flat_map(|c| c.step_sizes.iter().copied())
        .collect();
    let largest = step_sizes.iter().copied().fold(f64::MIN, f64::max);
    let smallest = step_sizes.iter().copied().fold(f64::MAX, f64::min);
    let at_largest = stationary(largest);
    let at_smallest = stationary(smallest);
    for k in 0..2 {
        let chains: Vec<Vec<f64>> = result.chains.iter().map(|c| c.coordinate(k)).collect();
        let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
        let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
        let n = pooled.len() as f64;
        let sample_mean = pooled.iter().sum::<f64>() / n;
        let sample_sd = (pooled
            .iter()
            .map(|x| (x - sample_mean) * (x - sample_mean))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt();
        let mcse = mcse_mean(&slices).expect("enough draws");
        let z = (sample_mean - mean[k]) / mcse;
        assert!(
            z.abs() < 4.0,
            "{label}: mean[{k}] {sample_mean} vs exact {} (mcse {mcse}, z = {z:.2})",
            mean[k]
        );
        let sd_mcse = mcse_sd(&slices).expect("enough draws");
        let low = at_smallest[(k, k)].sqrt().min(covariance[(k, k)].sqrt()) - 4.0 * sd_mcse;
        let high = at_largest[(k, k)].sqrt() + 4.0 * sd_mcse;
        assert!(
            (low..=high).contains(&sample_sd),
            "{label}: sd[{k}] {sample_sd} outside [{low}, {high}] (exact {}, at ε_max {}, mcse \
             {sd_mcse})",
            covariance[(k, k)].sqrt(),
            at_largest[(k, k)].sqrt()
        );
        let r_hat = rhat(&slices).expect("enough draws");
        assert!(r_hat < 1.01, "{label}: R-hat[{k}] {r_hat}");
    }
}

#[test]
fn sgld_matches_the_exact_posterior() {
    let settings = SgmcmcSettings {
        algorithm: SgmcmcAlgorithm::Sgld,
        chains: 4,
        burn_in: 20_000,
        samples: 20_000,
        thin: 10,
        seed: 11,
        step_size: decreasing(2e-4),
        ..SgmcmcSettings::default()
    };
    let result = run(&settings);
    let model = MiniBatchRegression::example();
    let (_, precision) = model.exact_posterior();
    assert_matches_posterior("SGLD", &result, |step_size| {
        sgld_stationary_covariance(step_size, &precision, |s| model.expected_gradient_noise(s))
    });
}

#[test]
fn sghmc_matches_the_exact_posterior() {
    let friction = 30.0;
    let settings = SgmcmcSettings {
        algorithm: SgmcmcAlgorithm::Sghmc {
            friction,
            noise_estimate: 0.0,
            resample_momentum_every: 0,
        },
        chains: 4,
        burn_in: 10_000,
        samples: 20_000,
        thin: 5,
        seed: 12,
        step_size: decreasing(3e-3),
        ..SgmcmcSettings::default()
    };
    let result = run(&settings);
    let model = MiniBatchRegression::example();
    let (_, precision) = model.exact_posterior();
    assert_matches_posterior("SGHMC", &result, |step_size| {
        sghmc_stationary_covariance(step_size, friction, &precision, |s| {
            model.expected_gradient_noise(s)
        })
    });
}

#[test]
fn constant_step_sgld_has_the_predicted_variance_bias() {
    // With a constant and deliberately large step size the bias is many MCSEs wide, and the
    // draws' sd must match the predicted stationary sd (not the exact one) within 4 MCSE.
    let step_size = 5e-4;
    let settings = SgmcmcSettings {
        chains: 4,
        burn_in: 2_000,
        samples: 20_000,
        thin: 2,
        seed: 13,
        step_size: StepSizeSchedule::Constant { step_size },
        ..SgmcmcSettings::default()
    };
    let result = run(&settings);
    let model = MiniBatchRegression::example();
    let (mean, precision) = model.exact_posterior();
    let predicted =
        sgld_stationary_covariance(step_size, &precision, |s| model.expected_gradient_noise(s));
    let exact = precision.try_inverse().expect("invertible");
    for k in 0..2 {
        let chains: Vec<Vec<f64>> = result.chains.iter().map(|c| c.coordinate(k)).collect();
        let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
        let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
        let n = pooled.len() as f64;
        let m = pooled.iter().sum::<f64>() / n;
        let sd = (pooled.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt();
        let sd_mcse = mcse_sd(&slices).expect("enough draws");
        let z_predicted = (sd - predicted[(k, k)].sqrt()) / sd_mcse;
        let z_exact = (sd - exact[(k, k)].sqrt()) / sd_mcse;
        assert!(
            z_predicted.abs() < 4.0,
            "sd[{k}] {sd} vs predicted {} (z = {z_predicted:.2})",
            predicted[(k, k)].sqrt()
        );
        assert!(
            z_exact > 4.0,
            "the bias should be visible: sd[{k}] {sd} vs exact {} (z = {z_exact:.2})",
            exact[(k, k)].sqrt()
        );
        let mcse = mcse_mean(&slices).expect("enough draws");
        assert!(
            ((m - mean[k]) / mcse).abs() < 4.0,
            "mean[{k}] {m} vs {}",
            mean[k]
        );
    }
}
