//! `sgld` and `sghmc`: stochastic-gradient MCMC on mini-batches, one file per chain.

use crate::method::SgmcmcMethod;
use crate::progress;
use crate::run::outcome::{finish, infer_failure, positions, Outcome, RunResult};
use crate::session::Failure;
use bdl_infer::sgmcmc::{self, Init, SgmcmcSettings};
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs the chains from the prior's median, keeping every `thin`-th draw after burn-in.
pub fn run(
    model: &Model,
    sgmcmc: &SgmcmcMethod,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let method = sgmcmc.name.as_str();
    let settings = SgmcmcSettings {
        init: Init::Positions(vec![model.prior_median_position(sgmcmc.settings.seed)]),
        ..sgmcmc.settings.clone()
    };
    let total = settings.burn_in + settings.samples * settings.thin;
    let (_multi, bars) = progress::chain_bars(settings.chains, total, show_progress);
    let callback = |event: &sgmcmc::SgmcmcEvent| {
        if let Some(bar) = bars.get(event.chain) {
            bar.set_position(event.iteration as u64 + 1);
        }
    };
    let result =
        sgmcmc::sample(&settings, |_| model.evaluator(), &callback, stop).map_err(infer_failure)?;
    for bar in &bars {
        bar.finish_and_clear();
    }
    let chains: Vec<Vec<Vec<f64>>> = result
        .chains
        .iter()
        .map(|c| positions(&c.draws, c.dim))
        .collect();
    let mut facts = Map::new();
    facts.insert("chains".into(), json!(settings.chains));
    facts.insert("burn_in".into(), json!(settings.burn_in));
    facts.insert("samples".into(), json!(settings.samples));
    facts.insert("thin".into(), json!(settings.thin));
    facts.insert(
        "skipped_steps".into(),
        json!(result
            .chains
            .iter()
            .map(|c| c.skipped_steps.len())
            .sum::<usize>()),
    );
    let comments = vec![
        format!("method = {method}"),
        format!("chains = {}", settings.chains),
        format!("burn_in = {}", settings.burn_in),
        format!("thin = {}", settings.thin),
        format!("seed = {}", settings.seed),
    ];
    finish(
        model,
        out,
        Outcome {
            method: method.to_string(),
            chains,
            markov: true,
            seed: settings.seed,
            comments,
            facts,
            interrupted: result.interrupted,
        },
    )
}
