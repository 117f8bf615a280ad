//! What every method's run ends in, and the helpers that bring it there.
//!
//! Every method ends in the same shape — draws of the output sites (latent, param and
//! deterministic sites, constrained), summarised per scalar element — so that the summary table,
//! `summary.json`, `predict`, `summary` and `plot` work alike on all of them. [`RunResult`] is
//! that shape; [`finish`] turns a method's unconstrained positions into it and writes
//! `draws.csv` (and one file per chain for Markov chains).

use crate::output::{columns_of, flatten_row, Column, DrawsWriter, SummaryView};
use crate::session::Failure;
use bdl_diagnostics::Diagnostic;
use bdl_infer::diagnostics::Summary;
use bdl_infer::mcmc::McmcError;
use bdl_infer::rng::stream_rng;
use bdl_infer::vi::SviError;
use bdl_infer::InferError;
use bdl_runtime::model::{Model, SiteInfo};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use std::path::Path;

/// What a finished run holds.
pub struct RunResult {
    /// The method's name.
    pub method: String,
    /// The scalar columns of the output sites.
    pub columns: Vec<Column>,
    /// Constrained draws per chain, row-major (one row per draw).
    pub draws: Vec<Vec<f64>>,
    /// The per-column summary.
    pub summary: Summary,
    /// Whether the draws are MCMC draws (convergence statistics apply).
    pub mcmc: bool,
    /// The SVI loss per step.
    pub losses: Vec<f64>,
    /// Method-specific facts for `summary.json` (timings, final loss, settings).
    pub facts: Map<String, Value>,
    /// Whether the run was interrupted (Ctrl-C) and holds only part of its draws.
    pub interrupted: bool,
    /// The Hamiltonian (`energy__`) at each kept draw, per chain: NUTS and HMC runs only.
    pub energies: Vec<Vec<f64>>,
    /// Whether each kept draw's transition diverged (`divergent__`), per chain: NUTS and HMC
    /// runs only.
    pub divergent: Vec<Vec<bool>>,
}

impl RunResult {
    /// The warnings of the summary, with columns named.
    pub fn warning_messages(&self) -> Vec<String> {
        // Effective sample sizes and R-hat describe Markov chains; the independent draws of a
        // fitted guide or of the prior need neither.
        if self.mcmc {
            crate::output::warning_messages(&self.summary.warnings, &self.columns)
        } else {
            // Variational and point estimates carry their own warnings (convergence, k̂).
            self.facts
                .get("warnings")
                .and_then(Value::as_array)
                .map(|warnings| {
                    warnings
                        .iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    /// `summary.json`'s content.
    pub fn summary_json(&self, model: &Path) -> Value {
        let view = SummaryView {
            columns: &self.columns,
            summary: &self.summary,
            mcmc: self.mcmc,
        };
        // Sites whose draws a streamed run left out are summarised by site only (their
        // elements' statistics would be most of the file).
        let by_site_only: Vec<&str> = self
            .facts
            .get("draws_by_site")
            .and_then(Value::as_array)
            .map(|sites| sites.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let kept = |column: &&Column| !by_site_only.contains(&column.site.as_str());
        json!({
            "model": model.display().to_string(),
            "method": self.method,
            "interrupted": self.interrupted,
            "facts": Value::Object(self.facts.clone()),
            "warnings": self.warning_messages(),
            "columns": self.columns.iter().filter(kept).map(Column::csv_name).collect::<Vec<_>>(),
            "summary": view.elements_json(&by_site_only),
            "sites": view.sites_json(),
        })
    }

    /// The summary table.
    pub fn table(&self) -> String {
        SummaryView {
            columns: &self.columns,
            summary: &self.summary,
            mcmc: self.mcmc,
        }
        .table()
    }
}

/// An inference error as a diagnostic: the one place where `bdl-infer`'s errors become
/// diagnostics. The code says which kind of method failed; the hint says what to try.
pub fn infer_failure(error: impl Into<InferError>) -> Failure {
    let error = error.into();
    let (code, hint) = match &error {
        InferError::Svi(SviError::NonFiniteLoss { .. }) => (
            "E0570",
            Some("lower `--lr`, check the priors' scales, or pass a smaller `--steps` to see where it diverges"),
        ),
        InferError::Svi(_) | InferError::Laplace(_) => ("E0570", None),
        InferError::Mcmc(McmcError::Initialization { .. }) => (
            "E0572",
            Some("check that every site's distribution is valid near the prior's typical values"),
        ),
        InferError::Mcmc(_) => ("E0572", None),
        InferError::Ensemble(_) => ("E0576", None),
        InferError::Sgmcmc(_) => (
            "E0577",
            Some("lower `--step-size`; stochastic-gradient steps must be small for the noise to dominate"),
        ),
        InferError::Gibbs(_) | InferError::ReversibleJump(_) => ("E0578", None),
    };
    let mut diagnostic = Diagnostic::error(code, error.to_string());
    if let Some(hint) = hint {
        diagnostic = diagnostic.with_hint(hint);
    }
    Failure::model(vec![diagnostic])
}

/// The output sites and their columns.
pub fn output_columns(model: &Model) -> (Vec<&SiteInfo>, Vec<Column>) {
    let sites = model.output_sites();
    let columns = columns_of(&sites);
    (sites, columns)
}

/// Writes `draws.csv` (CmdStan layout, no sampler columns).
pub fn write_draws(
    out: &Path,
    comments: &[String],
    columns: &[Column],
    rows: &[f64],
) -> Result<(), Failure> {
    write_draws_file(&out.join("draws.csv"), comments, columns, rows)
}

/// Writes one CSV file of draws (CmdStan layout, no sampler columns) at `path`, under a
/// temporary name renamed once the file is whole, so that a process killed meanwhile leaves the
/// old file or the new one, never a part of one.
pub fn write_draws_file(
    path: &Path,
    comments: &[String],
    columns: &[Column],
    rows: &[f64],
) -> Result<(), Failure> {
    let header: Vec<String> = columns.iter().map(Column::csv_name).collect();
    let temporary = if path.extension().is_some_and(|e| e == "partial") {
        path.to_path_buf()
    } else {
        path.with_extension("csv.partial")
    };
    let mut writer = DrawsWriter::create(&temporary, comments, &header)?;
    if !columns.is_empty() {
        for row in rows.chunks(columns.len()) {
            writer.row(row)?;
        }
    }
    writer.flush()?;
    drop(writer);
    if temporary != path {
        std::fs::rename(&temporary, path)
            .map_err(|error| crate::output::io_failure(path, &error))?;
    }
    Ok(())
}

/// Constrained output rows for unconstrained positions, computed in parallel.
pub fn constrained_rows(
    model: &Model,
    sites: &[&SiteInfo],
    positions: &[Vec<f64>],
    seed: u64,
) -> Result<Vec<f64>, Failure> {
    constrained_rows_from(model, sites, positions, seed, 0)
}

/// [`constrained_rows`] whose per-chunk random streams start at `first_stream` instead of 0 (a
/// streamed run's chunks of draws each take their own streams).
pub fn constrained_rows_from(
    model: &Model,
    sites: &[&SiteInfo],
    positions: &[Vec<f64>],
    seed: u64,
    first_stream: u64,
) -> Result<Vec<f64>, Failure> {
    let rows: Vec<Result<Vec<f64>, Failure>> = positions
        .par_chunks(
            positions
                .len()
                .div_ceil(rayon::current_num_threads().max(1))
                .max(1),
        )
        .enumerate()
        .map(|(chunk_index, chunk)| {
            let mut evaluator = model.output_evaluator();
            let mut rng = stream_rng(seed, first_stream + chunk_index as u64);
            let mut rows = Vec::new();
            let mut row = Vec::new();
            for position in chunk {
                let values = evaluator
                    .constrained(position, &mut rng)
                    .map_err(|e| Failure::model(vec![e.to_diagnostic()]))?;
                flatten_row(sites, &values, &mut row);
                rows.extend_from_slice(&row);
            }
            Ok(rows)
        })
        .collect();
    let mut all = Vec::new();
    for rows in rows {
        all.extend(rows?);
    }
    Ok(all)
}

/// What a method produced, before it becomes a [`RunResult`].
pub struct Outcome {
    /// The method's name.
    pub method: String,
    /// Unconstrained positions, one list per chain.
    pub chains: Vec<Vec<Vec<f64>>>,
    /// Whether the chains are Markov chains (convergence statistics apply).
    pub markov: bool,
    /// The seed, for the constrained values' random streams.
    pub seed: u64,
    /// The comment lines of `draws.csv`.
    pub comments: Vec<String>,
    /// Method-specific facts for `summary.json`.
    pub facts: Map<String, Value>,
    /// Whether the run was interrupted.
    pub interrupted: bool,
}

/// Turns an outcome's unconstrained positions into a [`RunResult`] and writes `draws.csv` (and,
/// for Markov chains, `chain-N.csv`).
pub fn finish(model: &Model, out: Option<&Path>, outcome: Outcome) -> Result<RunResult, Failure> {
    let sites = model.output_sites();
    let columns = columns_of(&sites);
    let mut draws = Vec::with_capacity(outcome.chains.len());
    for positions in &outcome.chains {
        draws.push(constrained_rows(model, &sites, positions, outcome.seed)?);
    }
    if let Some(out) = out {
        // Markov chains also get a file each, as NUTS writes them, so that chain-aware tools
        // (ArviZ's `from_cmdstan`, R-hat by hand) see where one chain ends and the next begins.
        if outcome.markov {
            for (index, chain) in draws.iter().enumerate() {
                let mut comments = outcome.comments.clone();
                comments.push(format!("chain = {}", index + 1));
                let path = out.join(format!("chain-{}.csv", index + 1));
                write_draws_file(&path, &comments, &columns, chain)?;
            }
        }
    }
    finish_rows(out, outcome, columns, draws)
}

/// Turns constrained rows already made (and already written per chain, by a
/// [`crate::run::sink::ChainFiles`] sink) into a [`RunResult`] and writes `draws.csv`; the
/// outcome's positions are not used.
pub fn finish_rows(
    out: Option<&Path>,
    outcome: Outcome,
    columns: Vec<Column>,
    mut draws: Vec<Vec<f64>>,
) -> Result<RunResult, Failure> {
    // An interrupted run leaves out the chains that made no draw (they have no file either).
    if outcome.interrupted {
        draws.retain(|chain| !chain.is_empty());
    }
    // A run stopped before its first draw writes no draws file (`run_method` reports it, E0985).
    let out = out.filter(|_| !draws.is_empty());
    if let Some(out) = out {
        let all: Vec<f64> = draws.iter().flatten().copied().collect();
        write_draws(out, &outcome.comments, &columns, &all)?;
    }
    let slices: Vec<&[f64]> = draws.iter().map(Vec::as_slice).collect();
    let summary = Summary::from_draws(&slices, columns.len());
    Ok(RunResult {
        method: outcome.method,
        columns,
        draws,
        summary,
        mcmc: outcome.markov,
        losses: Vec::new(),
        facts: outcome.facts,
        interrupted: outcome.interrupted,
        energies: Vec::new(),
        divergent: Vec::new(),
    })
}

/// Splits a row-major block of draws into positions.
pub fn positions(draws: &[f64], dim: usize) -> Vec<Vec<f64>> {
    draws.chunks(dim.max(1)).map(<[f64]>::to_vec).collect()
}
