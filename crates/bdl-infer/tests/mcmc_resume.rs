//! Resuming NUTS and HMC chains from saved states: a run continued from any state saved between
//! two iterations (in warm-up, across the metric windows, at the end of warm-up, in sampling, or
//! after the last iteration) gives the uninterrupted run's draws, statistics, adaptation and
//! gradient count bit for bit, and its sink receives the same calls in the same order (the saved
//! draws replayed first), for diagonal and dense metrics and with warm-up draws kept. A state
//! that does not fit the run is refused.

mod mcmc_support;

use bdl_infer::driver::{Adapted, DrawSink, DrawStats, SinkFailed};
use bdl_infer::mcmc::{
    self, Algorithm, ChainCheckpoints, ChainState, HmcLength, McmcError, McmcResult, McmcSettings,
    MetricKind,
};
use mcmc_support::Gaussian;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// Saves every state of every chain in memory; resumes each chain from a chosen state.
struct Recorded {
    saved: Vec<Mutex<Vec<ChainState>>>,
    resume: Vec<Option<ChainState>>,
    keep_warmup: bool,
}

impl Recorded {
    fn new(chains: usize, resume: Vec<Option<ChainState>>, keep_warmup: bool) -> Recorded {
        Recorded {
            saved: (0..chains).map(|_| Mutex::new(Vec::new())).collect(),
            resume,
            keep_warmup,
        }
    }
}

impl ChainCheckpoints for Recorded {
    fn active(&self) -> bool {
        true
    }

    fn resumed(&self, chain: usize) -> Option<ChainState> {
        self.resume.get(chain).cloned().flatten()
    }

    fn due(&self, _chain: usize) -> bool {
        true
    }

    fn save(&self, chain: usize, state: &ChainState) -> Result<(), SinkFailed> {
        self.saved[chain]
            .lock()
            .expect("the states")
            .push(state.clone());
        Ok(())
    }

    fn keep_warmup_draws(&self) -> bool {
        self.keep_warmup
    }
}

/// Every call a sink receives, per chain, as text that writes every `f64` exactly.
struct Transcript {
    chains: Vec<Mutex<Vec<String>>>,
}

impl Transcript {
    fn new(chains: usize) -> Transcript {
        Transcript {
            chains: (0..chains).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    fn push(&self, unit: usize, line: String) {
        self.chains[unit].lock().expect("the transcript").push(line);
    }

    fn lines(self) -> Vec<Vec<String>> {
        self.chains
            .into_iter()
            .map(|c| c.into_inner().expect("the transcript"))
            .collect()
    }
}

impl DrawSink for Transcript {
    fn header(&self, unit: usize, dim: usize) -> Result<(), SinkFailed> {
        self.push(unit, format!("header {dim}"));
        Ok(())
    }

    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        self.push(unit, format!("draw {row} {position:?} {stats:?}"));
        Ok(())
    }

    fn warmup_draw(
        &self,
        unit: usize,
        iteration: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        self.push(unit, format!("warmup {iteration} {position:?} {stats:?}"));
        Ok(())
    }

    fn adapted(&self, unit: usize, adapted: &Adapted<'_>) -> Result<(), SinkFailed> {
        self.push(unit, format!("adapted {adapted:?}"));
        Ok(())
    }

    fn comment(&self, unit: usize, line: &str) -> Result<(), SinkFailed> {
        self.push(unit, format!("comment {line}"));
        Ok(())
    }

    fn finish(&self, unit: usize, interrupted: bool) -> Result<(), SinkFailed> {
        self.push(unit, format!("finish {interrupted}"));
        Ok(())
    }
}

fn target() -> Gaussian {
    Gaussian::from_covariance(
        vec![1.0, -2.0, 0.5],
        &[1.0, 0.6, 0.0, 0.6, 2.0, 0.3, 0.0, 0.3, 0.5],
    )
}

fn settings(algorithm: Algorithm, metric: MetricKind) -> McmcSettings {
    McmcSettings {
        chains: 2,
        // Long enough for the init buffer, two metric windows and the terminal buffer.
        warmup: 160,
        samples: 40,
        seed: 11,
        algorithm,
        metric,
        parallel: false,
        ..McmcSettings::default()
    }
}

/// What a result is, as exact text: every draw, statistic, adapted step size and metric, and
/// the gradient count of every chain (timings left out).
fn fingerprint(result: &McmcResult) -> Vec<String> {
    result
        .chains
        .iter()
        .map(|c| {
            format!(
                "{:?} {:?} {:?} {} {}",
                c.draws, c.stats, c.adaptation, c.warmup_divergences, c.n_gradient_evaluations
            )
        })
        .collect()
}

fn run(
    settings: &McmcSettings,
    checkpoints: &Recorded,
) -> Result<(McmcResult, Vec<Vec<String>>), McmcError> {
    let stop = AtomicBool::new(false);
    let sink = Transcript::new(settings.chains);
    let result =
        mcmc::sample_resumable(settings, |_| target(), &|_| {}, &sink, checkpoints, &stop)?;
    Ok((result, sink.lines()))
}

#[test]
fn a_chain_resumed_from_any_saved_state_continues_to_the_uninterrupted_run() {
    let cases = [
        (Algorithm::Nuts, MetricKind::Diag, false),
        (Algorithm::Nuts, MetricKind::Dense, true),
        (Algorithm::Hmc(HmcLength::Steps(7)), MetricKind::Diag, true),
    ];
    for (algorithm, metric, keep_warmup) in cases {
        let settings = settings(algorithm, metric);
        let recorder = Recorded::new(settings.chains, vec![], keep_warmup);
        let (reference, reference_calls) = run(&settings, &recorder).expect("the run");
        let expected = fingerprint(&reference);
        let saved: Vec<Vec<ChainState>> = recorder
            .saved
            .into_iter()
            .map(|s| s.into_inner().expect("the states"))
            .collect();
        // One state per iteration, and one more after the last.
        let n_iterations = settings.warmup + settings.samples;
        assert_eq!(saved[0].len(), n_iterations + 1);
        assert_eq!(saved[0][0].next_iteration, 1);
        // In the initial buffer, in and at the end of a metric window, at the last warm-up
        // iteration and the first sampling one, in sampling and after the end; chain 2 is
        // resumed from another state than chain 1, or started afresh.
        for at in [1, 30, 49, 50, 51, 120, 159, 160, 161, 185, 200] {
            let resume = vec![
                Some(saved[0][at - 1].clone()),
                (at % 2 == 0).then(|| saved[1][(at * 7) % n_iterations].clone()),
            ];
            assert_eq!(resume[0].as_ref().map(|s| s.next_iteration), Some(at));
            let resumed = Recorded::new(settings.chains, resume, keep_warmup);
            let (result, calls) = run(&settings, &resumed).expect("the resumed run");
            assert_eq!(
                fingerprint(&result),
                expected,
                "{algorithm:?} {metric:?}, resumed at iteration {at}"
            );
            if keep_warmup {
                assert_eq!(
                    calls, reference_calls,
                    "{algorithm:?} {metric:?}: the sink's calls, resumed at iteration {at}"
                );
            } else {
                // Without kept warm-up draws a resumed chain replays only its kept draws.
                let kept = |lines: &[String]| -> Vec<String> {
                    lines
                        .iter()
                        .filter(|l| !l.starts_with("warmup"))
                        .cloned()
                        .collect()
                };
                assert_eq!(kept(&calls[0]), kept(&reference_calls[0]), "at {at}");
            }
        }
    }
}

#[test]
fn a_saved_state_that_does_not_fit_the_run_is_refused() {
    let settings = settings(Algorithm::Nuts, MetricKind::Diag);
    let recorder = Recorded::new(settings.chains, vec![], false);
    run(&settings, &recorder).expect("the run");
    let state = recorder.saved[0].lock().expect("the states")[100].clone();
    let mut wrong_dim = state.clone();
    wrong_dim.position.push(0.0);
    let mut too_far = state.clone();
    too_far.next_iteration = 1000;
    let mut lost_draws = recorder.saved[0].lock().expect("the states")[180].clone();
    lost_draws.stats.pop();
    let dense = McmcSettings {
        metric: MetricKind::Dense,
        ..settings.clone()
    };
    for (settings, state) in [
        (&settings, wrong_dim),
        (&settings, too_far),
        (&settings, lost_draws),
        (&dense, state),
    ] {
        let resumed = Recorded::new(settings.chains, vec![Some(state)], false);
        match run(settings, &resumed) {
            Err(McmcError::InvalidSettings { message }) => {
                assert!(message.contains("saved state of chain 1"), "{message}")
            }
            other => panic!("a state that does not fit was accepted: {:?}", other.err()),
        }
    }
}
