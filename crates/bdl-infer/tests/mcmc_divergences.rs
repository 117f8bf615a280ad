//! Numerical failure during a trajectory is a divergence, never a NaN and never an error; only
//! fatal density errors stop sampling, and failed initialisation says why.

mod mcmc_support;

use bdl_infer::density::{LogDensity, LogDensityError};
use bdl_infer::diagnostics::{Summary, Warning};
use bdl_infer::mcmc::{sample, Init, McmcError, McmcResult, McmcSettings};
use mcmc_support::{assert_all_finite, assert_moments, derived};
use std::sync::atomic::AtomicBool;

fn run<D: LogDensity>(
    settings: &McmcSettings,
    make: impl Fn(usize) -> D + Sync,
) -> Result<McmcResult, McmcError> {
    sample(settings, make, &|_| {}, &AtomicBool::new(false))
}

fn divergences(result: &McmcResult) -> usize {
    result
        .chains
        .iter()
        .flat_map(|c| &c.stats)
        .filter(|s| s.divergent)
        .count()
}

/// Neal's funnel in its centred form: v ~ Normal(0, 3), xᵢ ~ Normal(0, e^(v/2)) for 9 xᵢ. The
/// neck is too narrow for any one step size, the classic source of divergences.
struct Funnel;

impl LogDensity for Funnel {
    fn dim(&self) -> usize {
        10
    }

    fn log_density_gradient(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, LogDensityError> {
        let v = q[0];
        // log p = −v²/18 − Σ (xᵢ² e^(−v) / 2 + v / 2).
        let mut log_density = -v * v / 18.0;
        g[0] = -v / 9.0;
        let precision = (-v).exp();
        for i in 1..10 {
            log_density -= 0.5 * q[i] * q[i] * precision + 0.5 * v;
            g[0] += 0.5 * q[i] * q[i] * precision - 0.5;
            g[i] = -q[i] * precision;
        }
        Ok(log_density)
    }
}

#[test]
fn funnel_divergences_are_counted_and_reported() {
    let result = run(
        &McmcSettings {
            seed: 21,
            ..McmcSettings::default()
        },
        |_| Funnel,
    )
    .expect("divergences are not errors");
    assert_all_finite(&result);
    let count = divergences(&result);
    assert!(count > 0, "the centred funnel must diverge");
    let summary = Summary::from_mcmc(&result);
    let reported = summary.warnings.iter().find_map(|w| match w {
        Warning::Divergences { count, .. } => Some(*count),
        _ => None,
    });
    assert_eq!(reported, Some(count));
}

/// How a density fails outside the region x₀ ≤ 1 of a standard normal.
#[derive(Clone, Copy)]
enum Failure {
    RecoverableError,
    NanDensity,
    NanGradient,
    InfiniteDensity,
}

/// A 2-D standard normal whose density cannot be evaluated where x₀ > 1: in effect the normal
/// truncated to x₀ ≤ 1, whose boundary every long trajectory hits.
#[derive(Clone, Copy)]
struct Walled(Failure);

impl LogDensity for Walled {
    fn dim(&self) -> usize {
        2
    }

    fn log_density_gradient(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, LogDensityError> {
        g[0] = -q[0];
        g[1] = -q[1];
        let log_density = -0.5 * (q[0] * q[0] + q[1] * q[1]);
        if q[0] <= 1.0 {
            return Ok(log_density);
        }
        match self.0 {
            Failure::RecoverableError => Err(LogDensityError::recoverable(
                "site x: value outside the support",
            )),
            Failure::NanDensity => Ok(f64::NAN),
            Failure::NanGradient => {
                g[0] = f64::NAN;
                Ok(log_density)
            }
            Failure::InfiniteDensity => Ok(f64::INFINITY),
        }
    }
}

#[test]
fn failures_mid_trajectory_are_divergences_and_leave_no_nan() {
    for (k, failure) in [
        Failure::RecoverableError,
        Failure::NanDensity,
        Failure::NanGradient,
        Failure::InfiniteDensity,
    ]
    .into_iter()
    .enumerate()
    {
        let settings = McmcSettings {
            seed: 30 + k as u64,
            ..McmcSettings::default()
        };
        let result = run(&settings, |_| Walled(failure)).expect("failures are divergences");
        assert_all_finite(&result);
        assert!(divergences(&result) > 0);
        for chain in &result.chains {
            for i in 0..chain.n_draws() {
                assert!(
                    chain.draw(i)[0] <= 1.0,
                    "a draw lies where the density failed"
                );
            }
        }
        // The chains still sample the truncated normal: E[x₀ | x₀ ≤ 1] = −φ(1) / Φ(1) and
        // Var = 1 − φ(1)/Φ(1) − (φ(1)/Φ(1))² (with φ(1) = e^(−1/2)/√(2π), Φ(1) = 0.841344746).
        let ratio = (-0.5f64).exp() / (2.0 * std::f64::consts::PI).sqrt() / 0.841_344_746_068_542_9;
        let sd = (1.0 - ratio - ratio * ratio).sqrt();
        assert_moments("x0 (truncated)", &derived(&result, |q| q[0]), -ratio, sd);
        assert_moments("x1", &derived(&result, |q| q[1]), 0.0, 1.0);
    }
}

/// A standard normal whose evaluation fails fatally after a number of calls.
struct FailsAfter {
    calls: usize,
    limit: usize,
}

impl LogDensity for FailsAfter {
    fn dim(&self) -> usize {
        1
    }

    fn log_density_gradient(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, LogDensityError> {
        self.calls += 1;
        if self.calls > self.limit {
            return Err(LogDensityError::fatal(
                "site y: the data file changed under the model",
            ));
        }
        g[0] = -q[0];
        Ok(-0.5 * q[0] * q[0])
    }
}

#[test]
fn fatal_errors_stop_sampling_with_the_error() {
    let settings = McmcSettings {
        seed: 40,
        parallel: false,
        ..McmcSettings::default()
    };
    let error = run(&settings, |chain| FailsAfter {
        calls: 0,
        limit: 500 + 1000 * chain,
    })
    .expect_err("a fatal error ends the run");
    match &error {
        McmcError::Density {
            chain: 0, error, ..
        } => {
            assert!(!error.recoverable);
            assert!(error.message.contains("site y"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(error.to_string().contains("site y"), "{error}");
}

/// A density that cannot be evaluated anywhere.
struct Nowhere;

impl LogDensity for Nowhere {
    fn dim(&self) -> usize {
        3
    }

    fn log_density_gradient(&mut self, _: &[f64], _: &mut [f64]) -> Result<f64, LogDensityError> {
        Err(LogDensityError::recoverable(
            "site sigma: scale must be positive, got -1",
        ))
    }
}

#[test]
fn failed_initialisation_names_the_site() {
    let error = run(&McmcSettings::default(), |_| Nowhere).expect_err("no starting point exists");
    match &error {
        McmcError::Initialization {
            attempts,
            last_error,
            ..
        } => {
            assert_eq!(*attempts, 100);
            assert!(last_error.message.contains("sigma"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(error.to_string().contains("site sigma"), "{error}");
}

#[test]
fn initialisation_retries_until_the_density_is_finite() {
    // With x₀ uniform in (−2, 2) a third of the starting points fail (x₀ > 1 is a NaN density
    // here), so with 4 chains some retries are certain to be needed and all must succeed.
    let result = run(
        &McmcSettings {
            seed: 50,
            samples: 50,
            warmup: 50,
            ..McmcSettings::default()
        },
        |_| Walled(Failure::NanDensity),
    )
    .expect("retries find a point");
    assert_all_finite(&result);
}

#[test]
fn given_initial_positions_are_used_and_checked() {
    // Without warm-up and with a tiny step size and tree, the first draw stays next to the start.
    let settings = McmcSettings {
        warmup: 0,
        samples: 1,
        initial_step_size: 1e-4,
        max_depth: 2,
        init: Init::Positions(vec![vec![0.25, -0.5]]),
        ..McmcSettings::default()
    };
    let result = run(&settings, |_| Walled(Failure::RecoverableError)).expect("a valid start");
    for chain in &result.chains {
        let draw = chain.draw(0);
        assert!(
            (draw[0] - 0.25).abs() < 1e-3 && (draw[1] + 0.5).abs() < 1e-3,
            "{draw:?}"
        );
    }

    // A starting point where the density fails is an error, not a retry.
    let bad = McmcSettings {
        init: Init::Positions(vec![vec![3.0, 0.0]]),
        ..settings.clone()
    };
    let error = run(&bad, |_| Walled(Failure::RecoverableError)).expect_err("x₀ = 3 fails");
    assert!(
        matches!(error, McmcError::Initialization { attempts: 1, .. }),
        "{error:?}"
    );

    // Positions of the wrong length, or a count that is neither 1 nor the number of chains, are
    // settings errors.
    for positions in [vec![vec![0.0]], vec![vec![0.0, 0.0]; 2]] {
        let wrong = McmcSettings {
            init: Init::Positions(positions),
            ..settings.clone()
        };
        let error = run(&wrong, |_| Walled(Failure::RecoverableError)).expect_err("rejected");
        assert!(
            matches!(error, McmcError::InvalidSettings { .. }),
            "{error:?}"
        );
    }
}
