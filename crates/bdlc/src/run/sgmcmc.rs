//! `sgld` and `sghmc`: stochastic-gradient MCMC on mini-batches, one file per chain.

use crate::method::SgmcmcMethod;
use crate::progress;
use crate::run::outcome::{finish_rows, output_columns, Outcome, RunResult};
use crate::run::sink::ChainFiles;
use crate::session::Failure;
use bdl_infer::driver::Progress;
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
    let comments = vec![
        format!("method = {method}"),
        format!("chains = {}", settings.chains),
        format!("burn_in = {}", settings.burn_in),
        format!("thin = {}", settings.thin),
        format!("seed = {}", settings.seed),
    ];
    let total = settings.burn_in + settings.samples * settings.thin;
    let bars = progress::UnitBars::new("chain", settings.chains, total, show_progress);
    let callback = |progress: &Progress| bars.update(progress);
    // Each chain's draws go to its `chain-N.csv` as they are made.
    let sink = ChainFiles::new(
        model,
        out,
        comments.clone(),
        settings.chains,
        settings.samples,
        settings.seed,
    );
    let sampled = sgmcmc::sample_into(&settings, |_| model.evaluator(), &callback, &sink, stop);
    bars.finish();
    let result = sink.result(sampled)?;
    // An interrupted run keeps as many draws of each chain as every chain that made any has.
    let slices = crate::run::sink::cut_to_common_length(
        result.draw_slices(),
        result.dim,
        result.interrupted,
    );
    let draws = sink.into_rows(&slices, result.dim)?;
    let (_, columns) = output_columns(model);
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
    finish_rows(
        out,
        Outcome {
            method: method.to_string(),
            chains: Vec::new(),
            markov: true,
            seed: settings.seed,
            comments,
            facts,
            interrupted: result.interrupted,
        },
        columns,
        draws,
    )
}
