//! The methods of the teaching material beyond SVI and NUTS: deep ensembles (and MultiSWAG),
//! stochastic-gradient MCMC (SGLD, SGHMC), Metropolis-within-Gibbs with exact conjugate blocks,
//! and closed-form posteriors of conjugate models (`exact`).
//!
//! Each ends like every other method: constrained draws of the output sites, summarised per
//! element, written to `draws.csv`, so that `predict`, `summary` and `plot` work on all of them.

use crate::infer::{constrained_rows, svi_settings, write_draws, write_draws_file, RunResult};
use crate::output::columns_of;
use crate::progress;
use crate::session::Failure;
use crate::settings::Resolved;
use bdl_diagnostics::Diagnostic;
use bdl_infer::diagnostics::Summary;
use bdl_infer::ensemble::{self, EnsembleSettings, MemberInit, SwagSettings};
use bdl_infer::gibbs::{self, GibbsSettings};
use bdl_infer::sgmcmc::{self, SgmcmcAlgorithm, SgmcmcInit, SgmcmcSettings, StepSizeSchedule};
use bdl_runtime::conjugate::{self, GibbsBlocks};
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs one of the methods that are not SVI or MCMC.
pub fn run_method(
    model: &Model,
    resolved: &Resolved,
    method: &str,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    match method {
        "ensemble" => run_ensemble(model, resolved, out, show_progress, stop),
        "sgld" | "sghmc" => run_sgmcmc(model, resolved, method, out, show_progress, stop),
        "gibbs" => run_gibbs(model, resolved, out, show_progress, stop),
        "exact" => run_exact(model, resolved, out),
        other => Err(Failure::usage(
            "E0907",
            format!("unknown method `{other}`"),
            None,
        )),
    }
}

/// What a method produced, before it becomes a [`RunResult`].
struct Outcome {
    /// The method's name.
    method: String,
    /// Unconstrained positions, one list per chain.
    chains: Vec<Vec<Vec<f64>>>,
    /// Whether the chains are Markov chains (convergence statistics apply).
    markov: bool,
    /// The seed, for the constrained values' random streams.
    seed: u64,
    /// The comment lines of `draws.csv`.
    comments: Vec<String>,
    /// Method-specific facts for `summary.json`.
    facts: Map<String, serde_json::Value>,
    /// Whether the run was interrupted.
    interrupted: bool,
}

/// Turns an outcome's unconstrained positions into a [`RunResult`] and writes `draws.csv`.
fn finish(model: &Model, out: Option<&Path>, outcome: Outcome) -> Result<RunResult, Failure> {
    let sites = model.output_sites();
    let columns = columns_of(&sites);
    let mut draws = Vec::with_capacity(outcome.chains.len());
    for positions in &outcome.chains {
        draws.push(constrained_rows(model, &sites, positions, outcome.seed)?);
    }
    if let Some(out) = out {
        let all: Vec<f64> = draws.iter().flatten().copied().collect();
        write_draws(out, &outcome.comments, &columns, &all)?;
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
    })
}

/// Splits a row-major block of draws into positions.
fn positions(draws: &[f64], dim: usize) -> Vec<Vec<f64>> {
    draws.chunks(dim.max(1)).map(<[f64]>::to_vec).collect()
}

fn run_ensemble(
    model: &Model,
    resolved: &Resolved,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let flags = resolved.flags();
    let members = resolved.count("members", flags.members, 5, 1)?;
    let mut map = svi_settings(resolved, "map", false)?;
    map.particles = 1;
    let swag = if resolved.flag("swag", flags.swag) {
        // SWA moments are collected along the same optimiser the members were fitted with, at
        // its learning rate: a plain SGD step at Adam's rate diverges on likelihoods summed over
        // hundreds of points.
        Some(SwagSettings {
            draws: resolved.count("samples", flags.samples, 20, 1)?,
            optimizer: map.optimizer.clone(),
            ..SwagSettings::default()
        })
    } else {
        None
    };
    let settings = EnsembleSettings {
        members,
        seed: map.seed,
        map: map.clone(),
        init: MemberInit::default(),
        swag,
        ..EnsembleSettings::default()
    };
    let steps = map.steps + settings.swag.as_ref().map_or(0, |s| s.steps);
    let (_multi, bars) = progress::chain_bars(members, steps, show_progress);
    let callback = |event: &ensemble::EnsembleEvent| {
        if let Some(bar) = bars.get(event.member) {
            bar.inc(1);
            if event.step.is_multiple_of(50) {
                bar.set_message(format!("loss {:.3}", event.loss));
            }
        }
    };
    let result = ensemble::fit(&settings, |_| model.evaluator(), &callback, stop)
        .map_err(|error| Failure::model(vec![Diagnostic::error("E0576", error.to_string())]))?;
    for bar in &bars {
        bar.finish_and_clear();
    }
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

fn run_sgmcmc(
    model: &Model,
    resolved: &Resolved,
    method: &str,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let flags = resolved.flags();
    let step_size = match flags.step_size {
        Some(value) => StepSizeSchedule::Constant {
            step_size: resolved.positive("step_size", Some(value), 1e-4)?,
        },
        None if resolved.has("step_size") => StepSizeSchedule::Constant {
            step_size: resolved.positive("step_size", None, 1e-4)?,
        },
        None => StepSizeSchedule::default(),
    };
    let settings = SgmcmcSettings {
        algorithm: if method == "sghmc" {
            SgmcmcAlgorithm::sghmc(0.1)
        } else {
            SgmcmcAlgorithm::Sgld
        },
        chains: resolved.count("chains", flags.chains, 4, 1)?,
        burn_in: resolved.count("warmup", flags.warmup, 1000, 0)?,
        samples: resolved.count("samples", flags.samples, 1000, 1)?,
        thin: resolved.count("thin", flags.thin, 1, 1)?,
        seed: resolved.seed()?,
        step_size,
        init: SgmcmcInit::Positions(vec![model.prior_median_position(resolved.seed()?)]),
        ..SgmcmcSettings::default()
    };
    let total = settings.burn_in + settings.samples * settings.thin;
    let (_multi, bars) = progress::chain_bars(settings.chains, total, show_progress);
    let callback = |event: &sgmcmc::SgmcmcEvent| {
        if let Some(bar) = bars.get(event.chain) {
            bar.set_position(event.iteration as u64 + 1);
        }
    };
    let result = sgmcmc::sample(&settings, |_| model.evaluator(), &callback, stop).map_err(|error| {
        Failure::model(vec![Diagnostic::error("E0577", error.to_string())
            .with_hint("lower `--step-size`; stochastic-gradient steps must be small for the noise to dominate")])
    })?;
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

fn run_gibbs(
    model: &Model,
    resolved: &Resolved,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let flags = resolved.flags();
    let blocks = GibbsBlocks::parse(
        flags
            .blocks
            .as_deref()
            .or(resolved.name("blocks").as_deref()),
    )
    .map_err(|message| Failure::usage("E0908", message, None))?;
    let plan = conjugate::gibbs_plan(model, &blocks)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    let settings = GibbsSettings {
        chains: resolved.count("chains", flags.chains, 4, 1)?,
        warmup: resolved.count("warmup", flags.warmup, 1000, 0)?,
        samples: resolved.count("samples", flags.samples, 1000, 1)?,
        thin: resolved.count("thin", flags.thin, 1, 1)?,
        seed: resolved.seed()?,
        collapse: true,
        ..GibbsSettings::default()
    };
    let total = settings.warmup + settings.samples * settings.thin;
    let (_multi, bars) = progress::chain_bars(settings.chains, total, show_progress);
    let callback = |event: &gibbs::GibbsEvent| {
        if let Some(bar) = bars.get(event.chain) {
            bar.set_position(event.iteration as u64 + 1);
        }
    };
    let start = model.prior_median_position(settings.seed);
    let result = gibbs::sample(
        &settings,
        |_| conjugate::GibbsEvaluator::new(model, &plan, &start),
        &callback,
        stop,
    )
    .map_err(|error| Failure::model(vec![Diagnostic::error("E0578", error.to_string())]))?;
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

fn run_exact(model: &Model, resolved: &Resolved, out: Option<&Path>) -> Result<RunResult, Failure> {
    let posterior = conjugate::exact_posterior(model)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    let seed = resolved.seed()?;
    let samples = resolved.count("samples", resolved.flags().samples, 4000, 1)?;
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
