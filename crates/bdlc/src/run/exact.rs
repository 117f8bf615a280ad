//! `exact`: draws from the closed-form posterior of a conjugate model.

use crate::run::outcome::{finish, Outcome, RunResult};
use crate::session::Failure;
use bdl_runtime::conjugate;
use bdl_runtime::model::Model;
use serde_json::Map;
use std::path::Path;

/// Finds the model's conjugate posterior and draws `samples` times from it.
pub fn run(
    model: &Model,
    samples: usize,
    seed: u64,
    out: Option<&Path>,
) -> Result<RunResult, Failure> {
    let posterior = conjugate::exact_posterior(model)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    let mut rng = bdl_infer::rng::stream_rng(seed, 0);
    let positions = posterior.sample(&mut rng, samples);
    let mut facts = Map::new();
    facts.insert("posterior".into(), posterior.to_json());
    let comments = vec![
        "method = exact".to_string(),
        format!("num_samples = {samples}"),
        format!("seed = {seed}"),
    ];
    if let Some(out) = out {
        crate::output::write_file(
            &out.join("posterior.json"),
            &format!("{:#}\n", posterior.to_json()),
        )?;
    }
    finish(
        model,
        out,
        Outcome {
            method: "exact".into(),
            chains: vec![positions],
            markov: false,
            seed,
            comments,
            facts,
            interrupted: false,
        },
    )
}
