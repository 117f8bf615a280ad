//! Pathfinder on densities with known answers: a correlated 5-dimensional Gaussian, whose
//! pooled, importance-resampled draws must match the exact mean and covariance within bounds
//! derived from their Monte Carlo standard errors; determinism across thread schedules; and
//! the errors of densities it cannot run on.

// Matrix checks read best as the index loops of their formulas.
#![allow(clippy::needless_range_loop)]

use bdl_infer::density::{LogDensity, LogDensityError};
use bdl_infer::vi::pathfinder::{self, PathfinderError, PathfinderSettings};
use nalgebra::{DMatrix, DVector};

/// N(mean, covariance) in 5 dimensions, with correlations 0.8^|i−j| and scales from 0.5 to 10.
#[derive(Clone)]
struct Gaussian {
    mean: DVector<f64>,
    covariance: DMatrix<f64>,
    precision: DMatrix<f64>,
}

impl Gaussian {
    fn correlated() -> Gaussian {
        let scales = [0.5, 1.0, 2.0, 5.0, 10.0];
        let mean = DVector::from_column_slice(&[1.0, -2.0, 0.5, 10.0, -30.0]);
        let covariance = DMatrix::from_fn(5, 5, |i, j| {
            scales[i] * scales[j] * 0.8f64.powi((i as i32 - j as i32).abs())
        });
        let precision = covariance.clone().try_inverse().unwrap();
        Gaussian {
            mean,
            covariance,
            precision,
        }
    }
}

impl LogDensity for Gaussian {
    fn dim(&self) -> usize {
        5
    }

    fn log_density_gradient(
        &mut self,
        position: &[f64],
        gradient: &mut [f64],
    ) -> Result<f64, LogDensityError> {
        let centred = DVector::from_column_slice(position) - &self.mean;
        let slope = -(&self.precision * &centred);
        gradient.copy_from_slice(slope.as_slice());
        Ok(0.5 * centred.dot(&slope))
    }
}

#[test]
fn resampled_draws_match_a_correlated_gaussian() {
    let target = Gaussian::correlated();
    let settings = PathfinderSettings {
        seed: 11,
        ..PathfinderSettings::default()
    };
    let result = pathfinder::pathfinder(|_| target.clone(), &settings).unwrap();
    assert_eq!(result.paths.len(), 4);
    let k = result.pareto_k();
    assert!(k < 0.7, "k̂ = {k}");
    let n = 4000;
    let draws = result.resample(n, settings.seed);
    // Resampled draws repeat pooled draws; their information is at most the smoothed weights'
    // effective sample size, so the standard errors use it.
    let ess = result.effective_sample_size().min(n as f64);
    assert!(ess > 1000.0, "ESS = {ess}");
    let mean: Vec<f64> = (0..5)
        .map(|i| draws.iter().map(|d| d[i]).sum::<f64>() / n as f64)
        .collect();
    for i in 0..5 {
        let standard_error = (target.covariance[(i, i)] / ess).sqrt();
        assert!(
            (mean[i] - target.mean[i]).abs() < 4.0 * standard_error,
            "mean {i}: {} vs {} (4 MCSE = {})",
            mean[i],
            target.mean[i],
            4.0 * standard_error
        );
    }
    for i in 0..5 {
        for j in 0..=i {
            let sample = draws
                .iter()
                .map(|d| (d[i] - mean[i]) * (d[j] - mean[j]))
                .sum::<f64>()
                / (n - 1) as f64;
            let exact = target.covariance[(i, j)];
            // The variance of a sample covariance of normal draws: (Σᵢᵢ Σⱼⱼ + Σᵢⱼ²) / n.
            let standard_error =
                ((target.covariance[(i, i)] * target.covariance[(j, j)] + exact * exact) / ess)
                    .sqrt();
            assert!(
                (sample - exact).abs() < 4.0 * standard_error,
                "covariance ({i}, {j}): {sample} vs {exact} (4 MCSE = {})",
                4.0 * standard_error
            );
        }
    }
}

#[test]
fn the_result_does_not_depend_on_the_thread_schedule() {
    let target = Gaussian::correlated();
    let parallel = PathfinderSettings {
        seed: 3,
        paths: 3,
        draws_per_path: 50,
        ..PathfinderSettings::default()
    };
    let serial = PathfinderSettings {
        parallel: false,
        ..parallel.clone()
    };
    let a = pathfinder::pathfinder(|_| target.clone(), &parallel).unwrap();
    let b = pathfinder::pathfinder(|_| target.clone(), &serial).unwrap();
    assert_eq!(a.draws, b.draws);
    assert_eq!(a.log_ratios, b.log_ratios);
    assert_eq!(a.resample(20, 3), b.resample(20, 3));
}

/// A density that fails everywhere, recoverably or not.
#[derive(Clone)]
struct Failing {
    fatal: bool,
}

impl LogDensity for Failing {
    fn dim(&self) -> usize {
        2
    }

    fn log_density_gradient(
        &mut self,
        _position: &[f64],
        _gradient: &mut [f64],
    ) -> Result<f64, LogDensityError> {
        Err(if self.fatal {
            LogDensityError::fatal("shape mismatch at site `y`")
        } else {
            LogDensityError::recoverable("the scale is not positive")
        })
    }
}

#[test]
fn densities_it_cannot_run_on_are_errors() {
    let settings = PathfinderSettings {
        max_init_attempts: 5,
        ..PathfinderSettings::default()
    };
    let error = pathfinder::pathfinder(|_| Failing { fatal: false }, &settings).unwrap_err();
    assert!(
        matches!(error, PathfinderError::Initialisation { path: 0, .. }),
        "{error:?}"
    );
    let error = pathfinder::pathfinder(|_| Failing { fatal: true }, &settings).unwrap_err();
    assert!(error.to_string().contains("shape mismatch"), "{error}");
}
