//! Running SG-MCMC chains: results do not depend on the number of threads, the callback sees
//! every iteration, thinning and the stop flag keep the right draws, starting points are honoured,
//! and numerical failure is an error naming the model's message unless steps may be skipped.

mod sgmcmc_support;

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint};
use bdl_infer::driver::Phase;
use bdl_infer::rng::Rng;
use bdl_infer::sgmcmc::{
    sample, Init, SgmcmcAlgorithm, SgmcmcError, SgmcmcResult, SgmcmcSettings, StepSizeSchedule,
};
use sgmcmc_support::MiniBatchRegression;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

fn settings(algorithm: SgmcmcAlgorithm) -> SgmcmcSettings {
    SgmcmcSettings {
        algorithm,
        chains: 3,
        burn_in: 200,
        samples: 300,
        thin: 2,
        seed: 5,
        step_size: StepSizeSchedule::Polynomial {
            scale: 0.01,
            offset: 100.0,
            decay: 0.55,
        },
        ..SgmcmcSettings::default()
    }
}

fn sghmc() -> SgmcmcAlgorithm {
    SgmcmcAlgorithm::Sghmc {
        friction: 10.0,
        noise_estimate: 1.0,
        resample_momentum_every: 50,
    }
}

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

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn in_pool(threads: usize, settings: &SgmcmcSettings) -> SgmcmcResult {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(|| run(settings))
}

#[test]
fn results_are_bit_identical_with_one_and_two_threads() {
    for algorithm in [SgmcmcAlgorithm::Sgld, sghmc()] {
        let settings = settings(algorithm);
        let one = in_pool(1, &settings);
        let two = in_pool(2, &settings);
        let sequential = run(&SgmcmcSettings {
            parallel: false,
            ..settings.clone()
        });
        for ((a, b), c) in one.chains.iter().zip(&two.chains).zip(&sequential.chains) {
            assert_eq!(bits(&a.draws), bits(&b.draws), "chain {}", a.chain);
            assert_eq!(bits(&a.draws), bits(&c.draws), "chain {}", a.chain);
            assert_eq!(bits(&a.step_sizes), bits(&b.step_sizes));
        }
        // Chains differ, a chain does not depend on how many run beside it, and the seed matters.
        assert_ne!(one.chains[0].draws, one.chains[1].draws);
        let fewer = run(&SgmcmcSettings {
            chains: 2,
            ..settings.clone()
        });
        assert_eq!(bits(&fewer.chains[1].draws), bits(&one.chains[1].draws));
        let reseeded = run(&SgmcmcSettings {
            seed: 6,
            ..settings
        });
        assert_ne!(reseeded.chains[0].draws, one.chains[0].draws);
    }
}

#[test]
fn the_callback_sees_every_iteration_and_thinning_keeps_the_last_of_each_block() {
    let settings = settings(SgmcmcAlgorithm::Sgld);
    let model = MiniBatchRegression::example();
    let events = Mutex::new(Vec::new());
    let result = sample(
        &settings,
        |_| model.clone(),
        &|event| {
            events.lock().unwrap().push((
                event.unit,
                event.iteration,
                event.phase == Phase::Warmup,
                event.kept,
            ))
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    let events = events.into_inner().unwrap();
    assert_eq!(events.len(), 3 * (200 + 300 * 2));
    for chain in &result.chains {
        assert_eq!(chain.n_draws(), 300);
        assert_eq!(chain.draws.len(), 300 * 2);
        let kept: Vec<_> = events
            .iter()
            .filter(|e| e.0 == chain.chain && e.3)
            .collect();
        assert_eq!(kept.len(), 300);
        for (i, event) in kept.iter().enumerate() {
            // The kept iterations are 201, 203, …: the second of each pair after burn-in.
            assert_eq!(event.1, 200 + 2 * i + 1);
            assert!(!event.2);
            // The draws themselves reach a sink unchanged (`draw_sink.rs`).
            assert_eq!(chain.step_sizes[i], settings.step_size.step_size(event.1));
        }
        assert_eq!(
            events.iter().filter(|e| e.0 == chain.chain && e.2).count(),
            200
        );
        assert!(chain.draws.iter().all(|x| x.is_finite()));
        assert_eq!(chain.coordinate(1).len(), 300);
    }
    // The weighted mean weights every kept draw by its step size.
    let weighted = result.weighted_mean().unwrap();
    let mut sum = [0.0; 2];
    let mut total = 0.0;
    for chain in &result.chains {
        for i in 0..chain.n_draws() {
            for (s, x) in sum.iter_mut().zip(chain.draw(i)) {
                *s += chain.step_sizes[i] * x;
            }
            total += chain.step_sizes[i];
        }
    }
    for k in 0..2 {
        assert!((weighted[k] - sum[k] / total).abs() < 1e-12);
    }
}

#[test]
fn the_stop_flag_keeps_the_finished_draws() {
    let settings = SgmcmcSettings {
        parallel: false,
        ..settings(SgmcmcAlgorithm::Sgld)
    };
    let model = MiniBatchRegression::example();
    let stop = AtomicBool::new(false);
    let seen = AtomicUsize::new(0);
    let result = sample(
        &settings,
        |_| model.clone(),
        &|event| {
            if event.kept && seen.fetch_add(1, Ordering::SeqCst) + 1 == 10 {
                stop.store(true, Ordering::SeqCst);
            }
        },
        &stop,
    )
    .unwrap();
    assert!(result.interrupted);
    assert_eq!(result.chains[0].n_draws(), 10);
    assert!(result.chains[0].interrupted);
    assert_eq!(result.chains[1].n_draws(), 0);
    // The draws kept before the stop equal those of an uninterrupted run.
    let full = run(&settings);
    assert_eq!(result.chains[0].draws[..], full.chains[0].draws[..20]);
}

#[test]
fn given_initial_positions_are_used() {
    let start = vec![vec![3.0, -3.0], vec![-3.0, 3.0]];
    let settings = SgmcmcSettings {
        chains: 2,
        burn_in: 0,
        samples: 1,
        step_size: StepSizeSchedule::Constant { step_size: 1e-12 },
        init: Init::Positions(start.clone()),
        ..settings(SgmcmcAlgorithm::Sgld)
    };
    let result = run(&settings);
    for (chain, expected) in result.chains.iter().zip(&start) {
        for (x, e) in chain.draw(0).iter().zip(expected) {
            assert!((x - e).abs() < 1e-4, "{x} vs {e}");
        }
    }
    let wrong = SgmcmcSettings {
        init: Init::Positions(vec![vec![0.0]]),
        ..settings
    };
    let model = MiniBatchRegression::example();
    let error = sample(&wrong, |_| model.clone(), &|_| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(
        matches!(error, SgmcmcError::InvalidSettings { .. }),
        "{error}"
    );
}

/// A standard normal whose gradient turns NaN (with a message) on the listed calls, or fails
/// fatally from a given call on.
#[derive(Clone)]
struct Flaky {
    calls: usize,
    nan_calls: Vec<usize>,
    fatal_from: Option<usize>,
}

impl ElboModel for Flaky {
    fn latent_dim(&self) -> usize {
        1
    }

    fn param_dim(&self) -> usize {
        0
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        _options: &JointOptions,
        _rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        self.calls += 1;
        if self.fatal_from.is_some_and(|from| self.calls >= from) {
            return Err(LogDensityError::fatal("site 'w': the data do not fit"));
        }
        if self.nan_calls.contains(&self.calls) {
            return Err(LogDensityError::recoverable(
                "site 'w': log-density is NaN (scale is 0)",
            ));
        }
        gradient[0] = -position[0];
        Ok(LogJoint {
            likelihood: 0.0,
            prior: -0.5 * position[0] * position[0],
        })
    }
}

#[test]
fn a_non_finite_step_stops_the_chain_with_the_models_message() {
    let settings = SgmcmcSettings {
        chains: 1,
        burn_in: 10,
        samples: 10,
        thin: 1,
        step_size: StepSizeSchedule::Constant { step_size: 0.1 },
        ..SgmcmcSettings::default()
    };
    let flaky = Flaky {
        calls: 0,
        nan_calls: vec![5, 6],
        fatal_from: None,
    };
    let error = sample(
        &settings,
        |_| flaky.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    match &error {
        SgmcmcError::NonFinite {
            chain,
            iteration,
            message,
        } => {
            assert_eq!(*chain, 0);
            // Call 1 is the initial point, so call 5 is iteration 3.
            assert_eq!(*iteration, 3);
            assert!(message.contains("site 'w'"), "{message}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(error.to_string().contains("iteration 4"), "{error}");

    // Skipping keeps the chain going and records the skipped iterations.
    let skipping = SgmcmcSettings {
        skip_nonfinite: true,
        ..settings.clone()
    };
    let result = sample(
        &skipping,
        |_| flaky.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(result.chains[0].skipped_steps, vec![3, 4]);
    assert_eq!(result.chains[0].n_draws(), 10);
    assert!(result.chains[0].draws.iter().all(|x| x.is_finite()));

    // Too many consecutive skips stop it anyway.
    let strict = SgmcmcSettings {
        max_consecutive_skips: 1,
        ..skipping.clone()
    };
    let error = sample(&strict, |_| flaky.clone(), &|_| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(
        error.to_string().contains("after 1 skipped steps in a row"),
        "{error}"
    );

    // A fatal error stops the chain even when skipping.
    let fatal = Flaky {
        calls: 0,
        nan_calls: vec![],
        fatal_from: Some(8),
    };
    let error = sample(
        &skipping,
        |_| fatal.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        matches!(&error, SgmcmcError::Model { message, .. } if message.contains("do not fit")),
        "{error}"
    );
}

#[test]
fn a_diverging_step_size_is_reported_not_returned_as_nan() {
    // On log p = −x²/2, SGLD with ε = 10 multiplies x by −4 per step: it overflows to infinity.
    let settings = SgmcmcSettings {
        chains: 1,
        burn_in: 0,
        samples: 2000,
        step_size: StepSizeSchedule::Constant { step_size: 10.0 },
        ..SgmcmcSettings::default()
    };
    let flaky = Flaky {
        calls: 0,
        nan_calls: vec![],
        fatal_from: None,
    };
    let error = sample(
        &settings,
        |_| flaky.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(matches!(error, SgmcmcError::NonFinite { .. }), "{error}");
}

#[test]
fn invalid_settings_are_reported() {
    let model = MiniBatchRegression::example();
    let check = |settings: SgmcmcSettings, needle: &str| {
        let error = sample(
            &settings,
            |_| model.clone(),
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(
            matches!(&error, SgmcmcError::InvalidSettings { message } if message.contains(needle)),
            "{error} should mention {needle}"
        );
    };
    let base = settings(SgmcmcAlgorithm::Sgld);
    check(
        SgmcmcSettings {
            chains: 0,
            ..base.clone()
        },
        "chain",
    );
    check(
        SgmcmcSettings {
            thin: 0,
            ..base.clone()
        },
        "thinning",
    );
    check(
        SgmcmcSettings {
            step_size: StepSizeSchedule::Constant { step_size: -1.0 },
            ..base.clone()
        },
        "step size",
    );
    check(
        SgmcmcSettings {
            step_size: StepSizeSchedule::Polynomial {
                scale: 1.0,
                offset: 0.0,
                decay: 0.5,
            },
            ..base.clone()
        },
        "offset",
    );
    check(
        SgmcmcSettings {
            algorithm: SgmcmcAlgorithm::Sghmc {
                friction: 1.0,
                noise_estimate: 2.0,
                resample_momentum_every: 0,
            },
            ..base.clone()
        },
        "noise estimate",
    );
    check(
        SgmcmcSettings {
            algorithm: SgmcmcAlgorithm::Sghmc {
                friction: 1e6,
                noise_estimate: 0.0,
                resample_momentum_every: 0,
            },
            ..base.clone()
        },
        "overshoot",
    );
    check(
        SgmcmcSettings {
            init: Init::Random { radius: f64::NAN },
            ..base
        },
        "radius",
    );
}
