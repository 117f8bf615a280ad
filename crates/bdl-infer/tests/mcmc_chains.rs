//! Running chains: parallel runs equal sequential ones bit for bit, the progress callback and the
//! draw sink see every iteration in order (warm-up draws, the adaptation, then the kept draws),
//! and the stop flag keeps every finished draw.

mod mcmc_support;

use bdl_infer::driver::{Adapted, DrawSink, DrawStats, Phase, Progress, SinkFailed};
use bdl_infer::mcmc::{
    sample, sample_into, Algorithm, HmcLength, McmcResult, McmcSettings, MetricKind, SampleStats,
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

/// What a sink saw of one chain.
#[derive(Default)]
struct Seen {
    headers: usize,
    warmup_draws: usize,
    adaptations: usize,
    adapted_step_size: f64,
    draws: Vec<f64>,
    stats: Vec<SampleStats>,
    finished: Vec<bool>,
    progress: usize,
}

/// A sink that checks the order of its calls and records the kept draws; it raises `stop` after
/// `stop_after` kept draws of chain 2, as a Ctrl-C handler would.
struct Recorder<'a> {
    chains: Vec<Mutex<Seen>>,
    stop: &'a AtomicBool,
    stop_after: Option<usize>,
}

impl Recorder<'_> {
    fn new(stop: &AtomicBool, stop_after: Option<usize>) -> Recorder<'_> {
        Recorder {
            chains: (0..4).map(|_| Mutex::new(Seen::default())).collect(),
            stop,
            stop_after,
        }
    }
}

impl DrawSink for Recorder<'_> {
    fn header(&self, unit: usize, dim: usize) -> Result<(), SinkFailed> {
        assert_eq!(dim, 3);
        self.chains[unit].lock().expect("not poisoned").headers += 1;
        Ok(())
    }

    fn warmup_draw(
        &self,
        unit: usize,
        iteration: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let mut seen = self.chains[unit].lock().expect("not poisoned");
        assert_eq!(seen.headers, 1, "the header comes first");
        assert_eq!(
            seen.adaptations, 0,
            "warm-up draws come before the adaptation"
        );
        assert_eq!(iteration, seen.warmup_draws);
        assert_eq!(stats.sampler, "nuts");
        assert!(stats.transition.is_some() && position.len() == 3);
        seen.warmup_draws += 1;
        Ok(())
    }

    fn adapted(&self, unit: usize, adapted: &Adapted<'_>) -> Result<(), SinkFailed> {
        let mut seen = self.chains[unit].lock().expect("not poisoned");
        assert!(adapted.step_size > 0.0 && !adapted.dense);
        assert_eq!(adapted.inverse_metric.len(), 3);
        seen.adaptations += 1;
        seen.adapted_step_size = adapted.step_size;
        Ok(())
    }

    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let mut seen = self.chains[unit].lock().expect("not poisoned");
        assert_eq!(seen.adaptations, 1, "kept draws come after the adaptation");
        assert_eq!(row, seen.stats.len());
        assert_eq!(stats.step_size, Some(seen.adapted_step_size));
        seen.draws.extend_from_slice(position);
        seen.stats
            .push(stats.transition.expect("NUTS reports its transition"));
        if unit == 2 && Some(seen.stats.len()) == self.stop_after {
            self.stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn comment(&self, _unit: usize, _line: &str) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn finish(&self, unit: usize, interrupted: bool) -> Result<(), SinkFailed> {
        self.chains[unit]
            .lock()
            .expect("not poisoned")
            .finished
            .push(interrupted);
        Ok(())
    }
}

#[test]
fn the_sink_and_the_callback_see_every_iteration_in_order() {
    let settings = McmcSettings {
        seed: 3,
        warmup: 120,
        samples: 80,
        ..McmcSettings::default()
    };
    let target = target();
    let stop = AtomicBool::new(false);
    let recorder = Recorder::new(&stop, None);
    let callback = |progress: &Progress| {
        let mut seen = recorder.chains[progress.unit].lock().expect("not poisoned");
        assert_eq!(progress.iteration, seen.progress);
        assert_eq!(progress.total, 200);
        let phase = if progress.iteration < 120 {
            Phase::Warmup
        } else {
            Phase::Sampling
        };
        assert_eq!(progress.phase, phase);
        seen.progress += 1;
    };
    let result = sample_into(&settings, |_| target.clone(), &callback, &recorder, &stop)
        .expect("sampling succeeds");
    // The sink changes nothing: the same seed without one gives the same chains.
    assert_same_draws(&result, &run(&settings));
    for (chain, seen) in result.chains.iter().zip(&recorder.chains) {
        let seen = seen.lock().expect("not poisoned");
        assert_eq!(
            (seen.headers, seen.warmup_draws, seen.adaptations),
            (1, 120, 1)
        );
        assert_eq!(seen.progress, 200);
        assert_eq!(seen.finished, vec![false]);
        assert_eq!(seen.draws, chain.draws);
        assert_eq!(seen.stats, chain.stats);
        assert_eq!(seen.adapted_step_size, chain.adaptation.step_size);
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
    // Chain 2 raises the flag after its 50th kept draw.
    let recorder = Recorder::new(&stop, Some(50));
    let delivered = AtomicUsize::new(0);
    let callback = |progress: &Progress| {
        if progress.phase == Phase::Sampling {
            delivered.fetch_add(1, Ordering::Relaxed);
        }
    };
    let result = sample_into(&settings, |_| target.clone(), &callback, &recorder, &stop)
        .expect("an early stop is not an error");
    assert!(result.interrupted);
    assert_all_finite(&result);
    assert_eq!(result.chains[2].n_draws(), 50);
    let kept: usize = result.chains.iter().map(|c| c.n_draws()).sum();
    assert_eq!(
        kept,
        delivered.load(Ordering::Relaxed),
        "every reported sampling iteration is kept"
    );
    assert!(kept < 4 * 1000);
    for (chain, seen) in result.chains.iter().zip(&recorder.chains) {
        let seen = seen.lock().expect("not poisoned");
        assert_eq!(chain.draws, seen.draws);
        assert_eq!(chain.draws.len(), chain.n_draws() * 3);
        assert_eq!(seen.finished, vec![chain.interrupted]);
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
