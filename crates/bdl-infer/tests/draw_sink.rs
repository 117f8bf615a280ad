//! Streaming draws to a `DrawSink`: SG-MCMC and Gibbs hand every kept draw to the sink as it is
//! made, in order and numbered from 0, between one `header` and one `finish` per chain; the sink
//! changes no draw; and a sink that refuses a draw stops the run with an error naming the chain.

mod gibbs_support;
mod sgmcmc_support;

use bdl_infer::driver::{DrawSink, DrawStats, SinkFailed};
use bdl_infer::gibbs::{self, GibbsError, GibbsSettings};
use bdl_infer::sgmcmc::{self, SgmcmcAlgorithm, SgmcmcError, SgmcmcSettings};
use gibbs_support::{NormalGamma, NormalGammaBlocks};
use sgmcmc_support::MiniBatchRegression;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// What one chain's sink calls were.
#[derive(Debug, Default, Clone, PartialEq)]
struct Calls {
    headers: Vec<usize>,
    rows: Vec<usize>,
    draws: Vec<f64>,
    iterations: Vec<usize>,
    step_sizes: Vec<Option<f64>>,
    finished: Vec<bool>,
    /// Whether a draw came before the header or after the finish.
    out_of_order: bool,
}

/// Records every call per chain; refuses the draw numbered `refuse` of chain 1 when set.
struct Recorder {
    chains: Vec<Mutex<Calls>>,
    refuse: Option<usize>,
}

impl Recorder {
    fn new(n_chains: usize, refuse: Option<usize>) -> Recorder {
        Recorder {
            chains: (0..n_chains)
                .map(|_| Mutex::new(Calls::default()))
                .collect(),
            refuse,
        }
    }

    fn calls(&self) -> Vec<Calls> {
        self.chains
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect()
    }
}

impl DrawSink for Recorder {
    fn header(&self, unit: usize, dim: usize) -> Result<(), SinkFailed> {
        self.chains[unit].lock().unwrap().headers.push(dim);
        Ok(())
    }

    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        if unit == 1 && self.refuse == Some(row) {
            return Err(SinkFailed);
        }
        let mut calls = self.chains[unit].lock().unwrap();
        if calls.headers.is_empty() || !calls.finished.is_empty() {
            calls.out_of_order = true;
        }
        calls.rows.push(row);
        calls.draws.extend_from_slice(position);
        calls.iterations.push(stats.iteration);
        calls.step_sizes.push(stats.step_size);
        Ok(())
    }

    fn comment(&self, _unit: usize, _line: &str) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn finish(&self, unit: usize, interrupted: bool) -> Result<(), SinkFailed> {
        self.chains[unit].lock().unwrap().finished.push(interrupted);
        Ok(())
    }
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn sgmcmc_settings(algorithm: SgmcmcAlgorithm) -> SgmcmcSettings {
    SgmcmcSettings {
        algorithm,
        chains: 3,
        burn_in: 50,
        samples: 40,
        thin: 3,
        seed: 11,
        ..SgmcmcSettings::default()
    }
}

#[test]
fn sgmcmc_streams_every_kept_draw_in_order_and_changes_none() {
    let model = MiniBatchRegression::example();
    let stop = AtomicBool::new(false);
    for algorithm in [SgmcmcAlgorithm::Sgld, SgmcmcAlgorithm::sghmc(10.0)] {
        let settings = sgmcmc_settings(algorithm);
        let plain = sgmcmc::sample(&settings, |_| model.clone(), &|_| {}, &stop).unwrap();
        let recorder = Recorder::new(settings.chains, None);
        let streamed =
            sgmcmc::sample_into(&settings, |_| model.clone(), &|_| {}, &recorder, &stop).unwrap();
        for (a, b) in plain.chains.iter().zip(&streamed.chains) {
            assert_eq!(
                bits(&a.draws),
                bits(&b.draws),
                "the sink changed chain {}",
                a.chain
            );
            assert_eq!(bits(&a.step_sizes), bits(&b.step_sizes));
            assert_eq!(a.skipped_steps, b.skipped_steps);
        }
        for (chain, calls) in streamed.chains.iter().zip(recorder.calls()) {
            assert_eq!(calls.headers, vec![streamed.dim]);
            assert_eq!(calls.finished, vec![false]);
            assert!(!calls.out_of_order);
            assert_eq!(calls.rows, (0..settings.samples).collect::<Vec<_>>());
            assert_eq!(bits(&calls.draws), bits(&chain.draws));
            // The kept iterations are the last of every `thin` after burn-in.
            let kept: Vec<usize> = (0..settings.samples)
                .map(|i| settings.burn_in + (i + 1) * settings.thin - 1)
                .collect();
            assert_eq!(calls.iterations, kept);
            let step_sizes: Vec<Option<f64>> = chain.step_sizes.iter().copied().map(Some).collect();
            assert_eq!(calls.step_sizes, step_sizes);
        }
    }
}

#[test]
fn a_refused_sgmcmc_draw_stops_the_run_naming_the_chain() {
    let model = MiniBatchRegression::example();
    let settings = sgmcmc_settings(SgmcmcAlgorithm::Sgld);
    let recorder = Recorder::new(settings.chains, Some(5));
    let error = sgmcmc::sample_into(
        &settings,
        |_| model.clone(),
        &|_| {},
        &recorder,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert_eq!(error, SgmcmcError::Output { chain: 1 });
    assert!(error.to_string().contains("chain 2"), "{error}");
    // The refused chain took its first five draws and never finished.
    let calls = recorder.calls();
    assert_eq!(calls[1].rows, vec![0, 1, 2, 3, 4]);
    assert!(calls[1].finished.is_empty());
}

fn gibbs_settings() -> GibbsSettings {
    GibbsSettings {
        chains: 2,
        warmup: 30,
        samples: 25,
        thin: 2,
        seed: 4,
        ..GibbsSettings::default()
    }
}

#[test]
fn gibbs_streams_every_kept_draw_in_order_and_changes_none() {
    let model = NormalGamma::example(NormalGammaBlocks::MetropolisPrecision);
    let settings = gibbs_settings();
    let stop = AtomicBool::new(false);
    let plain = gibbs::sample(&settings, |_| model.clone(), &|_| {}, &stop).unwrap();
    let recorder = Recorder::new(settings.chains, None);
    let streamed =
        gibbs::sample_into(&settings, |_| model.clone(), &|_| {}, &recorder, &stop).unwrap();
    for (a, b) in plain.chains.iter().zip(&streamed.chains) {
        assert_eq!(
            bits(&a.draws),
            bits(&b.draws),
            "the sink changed chain {}",
            a.chain
        );
        assert_eq!(bits(&a.log_densities), bits(&b.log_densities));
    }
    for (chain, calls) in streamed.chains.iter().zip(recorder.calls()) {
        assert_eq!(calls.headers, vec![streamed.dim]);
        assert_eq!(calls.finished, vec![false]);
        assert!(!calls.out_of_order);
        assert_eq!(calls.rows, (0..settings.samples).collect::<Vec<_>>());
        assert_eq!(bits(&calls.draws), bits(&chain.draws));
        assert!(calls.step_sizes.iter().all(Option::is_none));
    }
}

#[test]
fn a_refused_gibbs_draw_stops_the_run_naming_the_chain() {
    let model = NormalGamma::example(NormalGammaBlocks::BothConjugate);
    let settings = gibbs_settings();
    let recorder = Recorder::new(settings.chains, Some(0));
    let error = gibbs::sample_into(
        &settings,
        |_| model.clone(),
        &|_| {},
        &recorder,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert_eq!(error, GibbsError::Output { chain: 1 });
    assert!(error.to_string().contains("chain 2"), "{error}");
}
