//! Running chains: parallel runs equal sequential ones bit for bit, the callback sees every
//! iteration, and the stop flag keeps every finished draw.

mod mcmc_support;

use bdl_infer::mcmc::{
    sample, Algorithm, ChainEvent, HmcLength, McmcResult, McmcSettings, MetricKind, SampleStats,
};
use mcmc_support::{assert_all_finite, Gaussian};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

fn target() -> Gaussian {
    Gaussian::from_covariance(
        vec![1.0, -2.0, 0.5],
        &[1.0, 0.8, 0.0, 0.8, 1.0, 0.3, 0.0, 0.3, 2.0],
    )
}

fn run(settings: &McmcSettings) -> McmcResult {
    let target = target();
    sample(
        settings,
        |_| target.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .expect("sampling succeeds")
}

/// Everything but the wall-clock times.
fn assert_same_draws(a: &McmcResult, b: &McmcResult) {
    assert_eq!(a.chains.len(), b.chains.len());
    for (x, y) in a.chains.iter().zip(&b.chains) {
        // Bit-for-bit: compare the bit patterns, not the values.
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x.draws), bits(&y.draws), "chain {}", x.chain);
        assert_eq!(x.stats, y.stats);
        assert_eq!(x.adaptation, y.adaptation);
        assert_eq!(x.n_gradient_evaluations, y.n_gradient_evaluations);
    }
}

#[test]
fn parallel_chains_equal_sequential_chains_bit_for_bit() {
    for (algorithm, metric) in [
        (Algorithm::Nuts, MetricKind::Diag),
        (Algorithm::Nuts, MetricKind::Dense),
        (Algorithm::Hmc(HmcLength::Time(2.0)), MetricKind::Diag),
    ] {
        let settings = McmcSettings {
            seed: 77,
            warmup: 300,
            samples: 300,
            algorithm,
            metric,
            ..McmcSettings::default()
        };
        let parallel = run(&McmcSettings {
            parallel: true,
            ..settings.clone()
        });
        let sequential = run(&McmcSettings {
            parallel: false,
            ..settings.clone()
        });
        assert_all_finite(&parallel);
        assert_same_draws(&parallel, &sequential);
        // A chain's draws do not depend on how many chains run beside it.
        let two = run(&McmcSettings {
            chains: 2,
            ..settings.clone()
        });
        assert_eq!(two.chains[1].draws, parallel.chains[1].draws);
        // Chains differ from each other, and another seed changes them.
        assert_ne!(parallel.chains[0].draws, parallel.chains[1].draws);
        let reseeded = run(&McmcSettings {
            seed: 78,
            ..settings
        });
        assert_ne!(reseeded.chains[0].draws, parallel.chains[0].draws);
    }
}

#[test]
fn the_callback_sees_every_iteration_in_order() {
    let settings = McmcSettings {
        seed: 3,
        warmup: 120,
        samples: 80,
        ..McmcSettings::default()
    };
    let target = target();
    // Per chain: (warm-up draws, sampling draws, adaptation events, the sampling draws themselves).
    type Seen = (usize, usize, usize, Vec<f64>, Vec<SampleStats>);
    let seen: Vec<Mutex<Seen>> = (0..4).map(|_| Mutex::new(Default::default())).collect();
    let callback = |event: &ChainEvent<'_>| match event {
        ChainEvent::Draw(draw) => {
            let mut entry = seen[draw.chain].lock().expect("not poisoned");
            if draw.warmup {
                assert_eq!(draw.iteration, entry.0);
                assert_eq!(entry.2, 0, "warm-up draws come before the adaptation event");
                entry.0 += 1;
            } else {
                assert_eq!(draw.iteration, entry.1);
                assert_eq!(entry.2, 1, "sampling draws come after the adaptation event");
                entry.1 += 1;
                entry.3.extend_from_slice(draw.position);
                entry.4.push(*draw.stats);
            }
        }
        ChainEvent::AdaptationFinished { chain, adaptation } => {
            assert!(adaptation.step_size > 0.0);
            seen[*chain].lock().expect("not poisoned").2 += 1;
        }
    };
    let result = sample(
        &settings,
        |_| target.clone(),
        &callback,
        &AtomicBool::new(false),
    )
    .expect("sampling succeeds");
    for (chain, entry) in result.chains.iter().zip(&seen) {
        let entry = entry.lock().expect("not poisoned");
        assert_eq!((entry.0, entry.1, entry.2), (120, 80, 1));
        assert_eq!(entry.3, chain.draws);
        assert_eq!(entry.4, chain.stats);
        // The sampling draws all use the adapted step size.
        assert!(chain
            .stats
            .iter()
            .all(|s| s.step_size == chain.adaptation.step_size));
    }
}

#[test]
fn the_stop_flag_keeps_every_finished_draw() {
    let settings = McmcSettings {
        seed: 4,
        warmup: 100,
        samples: 1000,
        ..McmcSettings::default()
    };
    let target = target();
    let stop = AtomicBool::new(false);
    let delivered = AtomicUsize::new(0);
    let received: Vec<Mutex<Vec<f64>>> = (0..4).map(|_| Mutex::new(Vec::new())).collect();
    // Chain 2 raises the flag after its 50th kept draw, as a Ctrl-C handler would.
    let callback = |event: &ChainEvent<'_>| {
        if let ChainEvent::Draw(draw) = event {
            if !draw.warmup {
                delivered.fetch_add(1, Ordering::Relaxed);
                received[draw.chain]
                    .lock()
                    .expect("not poisoned")
                    .extend_from_slice(draw.position);
                if draw.chain == 2 && draw.iteration == 49 {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    };
    let result = sample(&settings, |_| target.clone(), &callback, &stop)
        .expect("an early stop is not an error");
    assert!(result.interrupted);
    assert_all_finite(&result);
    assert_eq!(result.chains[2].n_draws(), 50);
    let kept: usize = result.chains.iter().map(|c| c.n_draws()).sum();
    assert_eq!(
        kept,
        delivered.load(Ordering::Relaxed),
        "every delivered draw is kept"
    );
    assert!(kept < 4 * 1000);
    for (chain, received) in result.chains.iter().zip(&received) {
        assert_eq!(chain.draws, *received.lock().expect("not poisoned"));
        assert_eq!(chain.draws.len(), chain.n_draws() * 3);
    }
}

#[test]
fn settings_are_validated() {
    let target = target();
    let stop = AtomicBool::new(false);
    for bad in [
        McmcSettings {
            chains: 0,
            ..McmcSettings::default()
        },
        McmcSettings {
            target_accept: 1.0,
            ..McmcSettings::default()
        },
        McmcSettings {
            max_depth: 0,
            ..McmcSettings::default()
        },
        McmcSettings {
            initial_step_size: f64::NAN,
            ..McmcSettings::default()
        },
        McmcSettings {
            algorithm: Algorithm::Hmc(HmcLength::Steps(0)),
            ..McmcSettings::default()
        },
        McmcSettings {
            algorithm: Algorithm::Hmc(HmcLength::Time(-1.0)),
            ..McmcSettings::default()
        },
    ] {
        let outcome = sample(&bad, |_| target.clone(), &|_| {}, &stop);
        assert!(
            matches!(
                outcome,
                Err(bdl_infer::mcmc::McmcError::InvalidSettings { .. })
            ),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn short_runs_work() {
    // No warm-up at all, and warm-ups too short for metric windows.
    for (warmup, samples) in [(0, 10), (1, 1), (10, 5), (60, 5), (0, 0)] {
        let result = run(&McmcSettings {
            warmup,
            samples,
            seed: 9,
            ..McmcSettings::default()
        });
        assert_all_finite(&result);
        assert!(result.chains.iter().all(|c| c.n_draws() == samples));
    }
}

#[test]
fn an_initial_metric_is_where_warm_up_starts_and_what_sampling_keeps_without_it() {
    let variances = vec![1.0, 1.0, 2.0];
    let given = bdl_infer::mcmc::InverseMetric::Diag(variances.clone());
    let diagonal = run(&McmcSettings {
        warmup: 0,
        samples: 10,
        chains: 2,
        initial_metric: Some(given.clone()),
        ..McmcSettings::default()
    });
    for chain in &diagonal.chains {
        assert_eq!(chain.adaptation.inverse_metric, given);
    }
    // A dense metric starts from the diagonal matrix of the given variances.
    let dense = run(&McmcSettings {
        warmup: 0,
        samples: 10,
        chains: 1,
        metric: MetricKind::Dense,
        initial_metric: Some(given),
        ..McmcSettings::default()
    });
    let mut expected = vec![0.0; 9];
    for (i, v) in variances.iter().enumerate() {
        expected[i * 3 + i] = *v;
    }
    assert_eq!(
        dense.chains[0].adaptation.inverse_metric,
        bdl_infer::mcmc::InverseMetric::Dense {
            dim: 3,
            values: expected
        }
    );
    // One of the wrong dimension, or not positive, is refused before any chain runs.
    let target = target();
    for wrong in [vec![1.0, 1.0], vec![1.0, -1.0, 1.0]] {
        let error = sample(
            &McmcSettings {
                initial_metric: Some(bdl_infer::mcmc::InverseMetric::Diag(wrong)),
                ..McmcSettings::default()
            },
            |_| target.clone(),
            &|_| {},
            &AtomicBool::new(false),
        )
        .expect_err("an unusable metric is refused");
        assert!(error.to_string().contains("initial metric"), "{error}");
    }
}
