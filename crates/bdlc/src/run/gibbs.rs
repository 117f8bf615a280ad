//! `gibbs`: Metropolis-within-Gibbs over blocks of sites, with exact conjugate updates where the
//! model allows them, one file per chain.

use crate::progress;
use crate::run::outcome::{finish, infer_failure, positions, Outcome, RunResult};
use crate::session::Failure;
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
    let total = settings.warmup + settings.samples * settings.thin;
    let (_multi, bars) = progress::chain_bars(settings.chains, total, show_progress);
    let callback = |event: &gibbs::GibbsEvent| {
        if let Some(bar) = bars.get(event.chain) {
            bar.set_position(event.iteration as u64 + 1);
        }
    };
    let start = model.prior_median_position(settings.seed);
    let result = gibbs::sample(
        settings,
        |_| conjugate::GibbsEvaluator::new(model, &plan, &start),
        &callback,
        stop,
    )
    .map_err(infer_failure)?;
    for bar in &bars {
        bar.finish_and_clear();
    }
    let chains: Vec<Vec<Vec<f64>>> = result
        .chains
        .iter()
        .map(|c| positions(&c.draws, c.dim))
        .collect();
    let mut facts = Map::new();
    facts.insert("blocks".into(), json!(plan.describe()));
    facts.insert(
        "acceptance".into(),
        json!((0..plan.len())
            .map(|b| result.acceptance_rate(b))
            .collect::<Vec<_>>()),
    );
    let comments = vec![
        "method = gibbs".to_string(),
        format!("blocks = {}", plan.describe().join("; ")),
        format!("seed = {}", settings.seed),
    ];
    finish(
        model,
        out,
        Outcome {
            method: "gibbs".into(),
            chains,
            markov: true,
            seed: settings.seed,
            comments,
            facts,
            interrupted: result.interrupted,
        },
    )
}
