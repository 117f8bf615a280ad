//! `ensemble`: a deep ensemble of MAP fits from different starts, or MultiSWAG (a SWA-Gaussian
//! around each member) with `--swag`. The draws are the members' positions, or SWAG's draws.

use crate::progress;
use crate::run::outcome::{finish, infer_failure, Outcome, RunResult};
use crate::session::Failure;
use bdl_infer::driver::Progress;
use bdl_infer::ensemble::{self, EnsembleSettings};
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Fits the members (and SWAG around each with MultiSWAG) and keeps their positions as draws.
pub fn run(
    model: &Model,
    settings: &EnsembleSettings,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let members = settings.members;
    let map = &settings.map;
    let steps = map.steps + settings.swag.as_ref().map_or(0, |s| s.steps);
    let bars = progress::UnitBars::new("member", members, steps, show_progress);
    let callback = |progress: &Progress| bars.update(progress);
    let result =
        ensemble::fit(settings, |_| model.evaluator(), &callback, stop).map_err(infer_failure)?;
    bars.finish();
    let positions: Vec<Vec<f64>> = if settings.swag.is_some() {
        result
            .members
            .iter()
            .flat_map(|m| m.swag_draws.iter().cloned())
            .collect()
    } else {
        result.members.iter().map(|m| m.position.clone()).collect()
    };
    let mut facts = Map::new();
    facts.insert("members".into(), json!(members));
    facts.insert(
        "member_final_loss".into(),
        json!(result
            .members
            .iter()
            .map(|m| m.final_loss)
            .collect::<Vec<_>>()),
    );
    facts.insert("multiswag".into(), json!(settings.swag.is_some()));
    let comments = vec![
        "method = ensemble".to_string(),
        format!("members = {members}"),
        format!("multiswag = {}", settings.swag.is_some()),
        format!("seed = {}", settings.seed),
    ];
    finish(
        model,
        out,
        Outcome {
            method: "ensemble".into(),
            chains: vec![positions],
            markov: false,
            seed: settings.seed,
            comments,
            facts,
            interrupted: result.interrupted,
        },
    )
}
