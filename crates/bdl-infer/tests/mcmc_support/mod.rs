//! Closed-form densities and checks shared by the MCMC tests.

#![allow(dead_code)]

use bdl_infer::density::{LogDensity, LogDensityError};
use bdl_infer::diagnostics::{ess_mean, mcse_mean, mcse_sd, rhat};
use bdl_infer::mcmc::McmcResult;

/// A multivariate normal N(mean, Σ) given by its precision matrix Σ⁻¹ (row-major).
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub precision: Vec<f64>,
}

impl Gaussian {
    /// From a covariance matrix, inverted with nalgebra.
    pub fn from_covariance(mean: Vec<f64>, covariance: &[f64]) -> Gaussian {
        let dim = mean.len();
        let matrix = nalgebra::DMatrix::from_row_slice(dim, dim, covariance);
        let inverse = matrix
            .try_inverse()
            .expect("the test covariance is invertible");
        let precision = (0..dim * dim)
            .map(|k| inverse[(k / dim, k % dim)])
            .collect();
        Gaussian { mean, precision }
    }
}

impl LogDensity for Gaussian {
    fn dim(&self) -> usize {
        self.mean.len()
    }

    fn log_density_gradient(
        &mut self,
        position: &[f64],
        gradient: &mut [f64],
    ) -> Result<f64, LogDensityError> {
        // log p = −½ (x − μ)ᵀ P (x − μ);  ∇ log p = −P (x − μ).
        let dim = self.mean.len();
        let mut log_density = 0.0;
        for ((g, row), (x, m)) in gradient
            .iter_mut()
            .zip(self.precision.chunks_exact(dim))
            .zip(position.iter().zip(&self.mean))
        {
            let product: f64 = row
                .iter()
                .zip(position.iter().zip(&self.mean))
                .map(|(p, (y, n))| p * (y - n))
                .sum();
            *g = -product;
            log_density -= 0.5 * (x - m) * product;
        }
        Ok(log_density)
    }
}

/// The draws of one derived quantity, per chain.
pub fn derived(result: &McmcResult, f: impl Fn(&[f64]) -> f64) -> Vec<Vec<f64>> {
    result
        .chains
        .iter()
        .map(|chain| (0..chain.n_draws()).map(|i| f(chain.draw(i))).collect())
        .collect()
}

/// Asserts that the posterior mean and sd of a quantity are within 4 Monte Carlo standard errors
/// of the exact values and that its R-hat is below 1.01.
pub fn assert_moments(name: &str, chains: &[Vec<f64>], exact_mean: f64, exact_sd: f64) {
    let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
    let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
    let n = pooled.len() as f64;
    let mean = pooled.iter().sum::<f64>() / n;
    let sd = (pooled.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    let mcse_of_mean = mcse_mean(&slices).expect("enough draws");
    let mcse_of_sd = mcse_sd(&slices).expect("enough draws");
    let r_hat = rhat(&slices).expect("enough draws");
    let z_mean = (mean - exact_mean) / mcse_of_mean;
    let z_sd = (sd - exact_sd) / mcse_of_sd;
    assert!(
        z_mean.abs() < 4.0,
        "{name}: mean {mean} vs exact {exact_mean} (mcse {mcse_of_mean}, z = {z_mean:.2}, ess {:?})",
        ess_mean(&slices)
    );
    assert!(
        z_sd.abs() < 4.0,
        "{name}: sd {sd} vs exact {exact_sd} (mcse {mcse_of_sd}, z = {z_sd:.2})"
    );
    assert!(r_hat < 1.01, "{name}: R-hat {r_hat}");
}

/// Asserts that no draw or statistic of the run is NaN or infinite.
pub fn assert_all_finite(result: &McmcResult) {
    for chain in &result.chains {
        assert!(
            chain.draws.iter().all(|x| x.is_finite()),
            "chain {} has a non-finite draw",
            chain.chain
        );
        for stats in &chain.stats {
            assert!(
                stats.values().iter().all(|x| x.is_finite()),
                "chain {} has non-finite statistics {stats:?}",
                chain.chain
            );
        }
        assert!(chain.adaptation.step_size.is_finite());
    }
}
