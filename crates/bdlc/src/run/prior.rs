//! `prior`: independent draws from the prior, observed sites included.

use crate::output::{columns_of, flatten_row};
use crate::run::outcome::{write_draws, RunResult};
use crate::session::Failure;
use bdl_infer::diagnostics::Summary;
use bdl_infer::rng::stream_rng;
use bdl_runtime::model::{Model, SiteInfo};
use rayon::prelude::*;
use serde_json::Map;
use std::path::Path;

/// Draws `samples` times from the prior, draw `i` from stream `i` of `seed`.
pub fn run(
    model: &Model,
    samples: usize,
    seed: u64,
    out: Option<&Path>,
) -> Result<RunResult, Failure> {
    let mut sites: Vec<&SiteInfo> = model.output_sites();
    sites.extend(model.observed_sites());
    let columns = columns_of(&sites);
    let rows: Vec<Result<Vec<f64>, Failure>> = (0..samples)
        .into_par_iter()
        .map(|draw| {
            let mut rng = stream_rng(seed, draw as u64);
            let values = model
                .prior_draw(&mut rng)
                .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
            let mut row = Vec::new();
            flatten_row(&sites, &values, &mut row);
            Ok(row)
        })
        .collect();
    let mut draws = Vec::with_capacity(samples * columns.len());
    for row in rows {
        draws.extend(row?);
    }
    if let Some(out) = out {
        let comments = vec![
            "method = prior".to_string(),
            format!("num_samples = {samples}"),
            format!("seed = {seed}"),
        ];
        write_draws(out, &comments, &columns, &draws)?;
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    Ok(RunResult {
        method: "prior".into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses: Vec::new(),
        facts: Map::new(),
        interrupted: false,
        energies: Vec::new(),
        divergent: Vec::new(),
    })
}
