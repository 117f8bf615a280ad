//! `ensemble`: a deep ensemble of MAP fits from different starts, or MultiSWAG (a SWA-Gaussian
//! around each member) with `--swag`. The draws are the members' positions, or SWAG's draws;
//! each member's draws go to `draws.csv` as soon as the member has made them (in member order,
//! through the [`DrawFile`] sink).

use crate::progress;
use crate::run::draw_file::{DrawFile, DrawFileLayout};
use crate::run::large::{DrawsFormat, RunPlan};
use crate::run::outcome::{finish_rows, output_columns, Outcome, RunResult};
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
    let mut comments = vec![
        "method = ensemble".to_string(),
        format!("members = {members}"),
        format!("multiswag = {}", settings.swag.is_some()),
        format!("seed = {}", settings.seed),
    ];
    if settings.first_member > 0 {
        comments.push(format!("first_member = {}", settings.first_member));
    }
    let (_, columns) = output_columns(model);
    // Every column in `draws.csv`, whatever the number of draws.
    let plan = RunPlan {
        stream: false,
        format: DrawsFormat::Csv,
        written: (0..columns.len()).collect(),
        left_out: Vec::new(),
    };
    let per_member = settings.swag.as_ref().map_or(1, |swag| swag.draws);
    let sink = DrawFile::new(
        model,
        out,
        plan,
        comments.clone(),
        settings.seed,
        DrawFileLayout {
            planned: vec![per_member; members],
            block: per_member * members,
            keep_rows: true,
            write_empty: false,
        },
    );
    let bars = progress::UnitBars::new("member", members, steps, show_progress);
    let callback = |progress: &Progress| bars.update(progress);
    let fitted = ensemble::fit_into(settings, |_| model.evaluator(), &callback, &sink, stop);
    bars.finish();
    let result = sink.result(fitted)?;
    let draws = sink.finish_file(|| {
        if settings.swag.is_some() {
            result
                .members
                .iter()
                .flat_map(|m| m.swag_draws.iter().cloned())
                .collect()
        } else {
            result.members.iter().map(|m| m.position.clone()).collect()
        }
    })?;
    let mut facts = Map::new();
    facts.insert("members".into(), json!(members));
    if settings.first_member > 0 {
        facts.insert("first_member".into(), json!(settings.first_member));
    }
    facts.insert(
        "member_final_loss".into(),
        json!(result
            .members
            .iter()
            .map(|m| m.final_loss)
            .collect::<Vec<_>>()),
    );
    facts.insert("multiswag".into(), json!(settings.swag.is_some()));
    // The sink has written `draws.csv`.
    finish_rows(
        None,
        Outcome {
            method: "ensemble".into(),
            chains: Vec::new(),
            markov: false,
            seed: settings.seed,
            comments,
            facts,
            interrupted: result.interrupted,
        },
        columns,
        vec![draws.rows],
    )
}
