//! `gibbs`: Metropolis-within-Gibbs over blocks of sites, with exact conjugate updates where the
//! model allows them, one file per chain.

use crate::progress;
use crate::run::outcome::{finish_rows, output_columns, Outcome, RunResult};
use crate::run::sink::ChainFiles;
use crate::session::Failure;
use bdl_infer::driver::Progress;
use bdl_infer::gibbs::{self, GibbsSettings};
use bdl_runtime::conjugate::{self, GibbsBlocks};
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Plans the blocks (conjugate updates where the model allows them) and runs the chains.
pub fn run(
    model: &Model,
    blocks: &GibbsBlocks,
    settings: &GibbsSettings,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let plan = conjugate::gibbs_plan(model, blocks)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    let comments = vec![
        "method = gibbs".to_string(),
        format!("blocks = {}", plan.describe().join("; ")),
        format!("seed = {}", settings.seed),
    ];
    let total = settings.warmup + settings.samples * settings.thin;
    let bars = progress::UnitBars::new("chain", settings.chains, total, show_progress);
    let callback = |progress: &Progress| bars.update(progress);
    let start = model.prior_median_position(settings.seed);
    // Each chain's draws go to its `chain-N.csv` as they are made.
    let sink = ChainFiles::new(
        model,
        out,
        comments.clone(),
        settings.chains,
        settings.samples,
        settings.seed,
    );
    let sampled = gibbs::sample_into(
        settings,
        |_| conjugate::GibbsEvaluator::new(model, &plan, &start),
        &callback,
        &sink,
        stop,
    );
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
    facts.insert("blocks".into(), json!(plan.describe()));
    facts.insert(
        "acceptance".into(),
        json!((0..plan.len())
            .map(|b| result.acceptance_rate(b))
            .collect::<Vec<_>>()),
    );
    finish_rows(
        out,
        Outcome {
            method: "gibbs".into(),
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
