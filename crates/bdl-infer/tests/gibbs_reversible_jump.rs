//! Reversible jump over the number of hidden units: without data the sampler returns the prior
//! on the number of units (which checks the jump's acceptance ratio exactly), and on data from a
//! shallow sigmoid network with a known number of units the posterior's mode is that number.

mod gibbs_support;

use bdl_infer::density::LogDensityError;
use bdl_infer::diagnostics::mcse_mean;
use bdl_infer::gibbs::{
    linear_gaussian_log_marginal, linear_gaussian_posterior, sample_units, GammaParams,
    HiddenUnitModel, MultivariateNormal, ReversibleJumpResult, ReversibleJumpSettings,
};
use bdl_infer::rng::{stream_rng, Rng};
use gibbs_support::sigmoid;
use nalgebra::DMatrix;
use rand_distr::{Distribution, StandardNormal};
use std::sync::atomic::AtomicBool;

const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;
const MAX_UNITS: usize = 6;

/// y = Σⱼ βⱼ ψ(γⱼ₀ + γⱼ₁ x) + ε, ε ~ N(0, τ⁻¹), with M ∈ 1..=6 units, P(M) ∝ ½^M (the lecture's
/// geometric prior), γⱼ ~ N(0, 2² I), β ~ N(0, 2² I) integrated out, τ ~ Gamma(2, 0.1) on the
/// shared coordinate log τ. Without data the likelihood is 1.
#[derive(Clone)]
struct ShallowUnits {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl ShallowUnits {
    fn from_function(f: impl Fn(f64) -> f64, seed: u64) -> Self {
        let mut rng = stream_rng(seed, 0);
        let n = 60;
        let x: Vec<f64> = (0..n)
            .map(|i| -3.0 + 6.0 * i as f64 / (n - 1) as f64)
            .collect();
        let y = x
            .iter()
            .map(|&x| {
                let e: f64 = StandardNormal.sample(&mut rng);
                f(x) + 0.2 * e
            })
            .collect();
        ShallowUnits { x, y }
    }

    fn design(&self, units: &[f64]) -> DMatrix<f64> {
        let m = units.len() / 2;
        DMatrix::from_fn(self.x.len(), m, |i, j| {
            sigmoid(units[2 * j] + units[2 * j + 1] * self.x[i])
        })
    }

    fn output_prior(m: usize) -> MultivariateNormal {
        MultivariateNormal::isotropic(m, 0.0, 4.0).expect("a valid prior")
    }
}

impl HiddenUnitModel for ShallowUnits {
    fn unit_dim(&self) -> usize {
        2
    }

    fn shared_dim(&self) -> usize {
        1
    }

    fn max_units(&self) -> usize {
        MAX_UNITS
    }

    fn log_prior_units(&self, n_units: usize) -> f64 {
        if (1..=MAX_UNITS).contains(&n_units) {
            -(n_units as f64) * std::f64::consts::LN_2
        } else {
            f64::NEG_INFINITY
        }
    }

    fn log_prior_unit(&self, unit: &[f64]) -> f64 {
        unit.iter().map(|g| -g * g / 8.0).sum()
    }

    fn sample_unit(&mut self, rng: &mut Rng, unit: &mut [f64]) {
        for g in unit.iter_mut() {
            let z: f64 = StandardNormal.sample(rng);
            *g = 2.0 * z;
        }
    }

    fn log_marginal(&mut self, units: &[f64], shared: &[f64]) -> Result<f64, LogDensityError> {
        let log_tau = shared[0];
        let tau = log_tau.exp();
        let prior = GammaParams {
            shape: 2.0,
            rate: 0.1,
        };
        let log_prior = prior.log_density(tau) + log_tau;
        let log_likelihood = if self.y.is_empty() {
            0.0
        } else if units.is_empty() {
            let n = self.y.len() as f64;
            n * (0.5 * log_tau - HALF_LOG_TWO_PI)
                - 0.5 * tau * self.y.iter().map(|v| v * v).sum::<f64>()
        } else {
            let design = self.design(units);
            linear_gaussian_log_marginal(
                &design,
                &self.y,
                tau,
                &Self::output_prior(units.len() / 2),
            )
            .map_err(|e| LogDensityError::recoverable(e.message))?
        };
        Ok(log_likelihood + log_prior)
    }

    fn draw_output_weights(
        &mut self,
        units: &[f64],
        shared: &[f64],
        rng: &mut Rng,
    ) -> Result<Vec<f64>, LogDensityError> {
        if self.y.is_empty() {
            return Ok(Vec::new());
        }
        let design = self.design(units);
        let posterior = linear_gaussian_posterior(
            &design,
            &self.y,
            shared[0].exp(),
            &Self::output_prior(units.len() / 2),
        )
        .map_err(|e| LogDensityError::recoverable(e.message))?;
        Ok(posterior.sample(rng).iter().copied().collect())
    }
}

fn run(model: &ShallowUnits, settings: &ReversibleJumpSettings) -> ReversibleJumpResult {
    sample_units(
        settings,
        |_| model.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .expect("sampling succeeds")
}

#[test]
fn without_data_the_number_of_units_follows_its_prior() {
    let model = ShallowUnits {
        x: Vec::new(),
        y: Vec::new(),
    };
    let settings = ReversibleJumpSettings {
        chains: 4,
        warmup: 500,
        samples: 20_000,
        seed: 1,
        ..ReversibleJumpSettings::default()
    };
    let result = run(&model, &settings);
    let normaliser: f64 = (1..=MAX_UNITS).map(|m| 0.5f64.powi(m as i32)).sum();
    for m in 1..=MAX_UNITS {
        let prior = 0.5f64.powi(m as i32) / normaliser;
        let indicators: Vec<Vec<f64>> = result
            .chains
            .iter()
            .map(|c| {
                c.draws
                    .iter()
                    .map(|d| if d.n_units == m { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        let slices: Vec<&[f64]> = indicators.iter().map(|c| c.as_slice()).collect();
        let pooled = indicators.iter().flatten().sum::<f64>() / (4.0 * 20_000.0);
        let mcse = mcse_mean(&slices).expect("enough draws");
        assert!(
            (pooled - prior).abs() < 4.0 * mcse,
            "P(M = {m}) {pooled} vs prior {prior} (mcse {mcse})"
        );
    }
    // The units and the shared coordinate follow their priors too: γ ~ N(0, 4), τ ~ Gamma(2, 0.1).
    let gammas: Vec<Vec<f64>> = result
        .chains
        .iter()
        .map(|c| c.draws.iter().map(|d| d.units[1]).collect())
        .collect();
    let slices: Vec<&[f64]> = gammas.iter().map(|c| c.as_slice()).collect();
    let mean = gammas.iter().flatten().sum::<f64>() / (4.0 * 20_000.0);
    assert!(
        mean.abs() < 4.0 * mcse_mean(&slices).unwrap(),
        "γ mean {mean}"
    );
    let taus: Vec<Vec<f64>> = result
        .chains
        .iter()
        .map(|c| c.draws.iter().map(|d| d.shared[0].exp()).collect())
        .collect();
    let slices: Vec<&[f64]> = taus.iter().map(|c| c.as_slice()).collect();
    let mean = taus.iter().flatten().sum::<f64>() / (4.0 * 20_000.0);
    assert!(
        (mean - 20.0).abs() < 4.0 * mcse_mean(&slices).unwrap(),
        "τ mean {mean}"
    );
    for chain in &result.chains {
        assert!(chain.moves.births_accepted > 1000 && chain.moves.deaths_accepted > 1000);
        assert!(chain.draws.iter().all(|d| d.units.len() == 2 * d.n_units));
    }
}

#[test]
fn the_posterior_mode_is_the_true_number_of_units() {
    let settings = ReversibleJumpSettings {
        chains: 4,
        warmup: 2000,
        samples: 5000,
        seed: 2,
        ..ReversibleJumpSettings::default()
    };
    /// The function a network with a known number of units computes.
    type Truth = fn(f64) -> f64;
    let cases: [(usize, Truth); 2] = [
        (1, |x| 2.0 * sigmoid(1.5 * x)),
        (2, |x| 2.0 * sigmoid(1.5 * x) - 1.5 * sigmoid(1.0 - 2.0 * x)),
    ];
    for (truth, f) in cases {
        let model = ShallowUnits::from_function(f, 40 + truth as u64);
        let result = run(&model, &settings);
        let probabilities = result.unit_probabilities(MAX_UNITS);
        let mode = (0..=MAX_UNITS)
            .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
            .unwrap();
        assert_eq!(mode, truth, "posterior over M {probabilities:?}");
        // Fewer units than the truth cannot fit the data.
        let too_few: f64 = probabilities[..truth].iter().sum();
        assert!(too_few < 0.01, "posterior over M {probabilities:?}");
        for chain in &result.chains {
            assert!(chain
                .draws
                .iter()
                .all(|d| d.output_weights.len() == d.n_units && d.log_density.is_finite()));
        }
    }
}
