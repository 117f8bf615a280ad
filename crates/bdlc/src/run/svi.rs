//! `svi`, `map` and `laplace`: fit a guide by stochastic optimisation, then draw from it.
//!
//! Writes `draws.csv`, `loss.csv` (the loss per step) and `params.json` (the fitted guide, the
//! params and the layout of the unconstrained vector, which `predict` and the REPL rebuild).

use crate::method::{InitChoice, SviMethod};
use crate::output::write_file;
use crate::progress;
use crate::run::outcome::{
    constrained_rows, infer_failure, output_columns, write_draws, RunResult,
};
use crate::session::Failure;
use bdl_infer::diagnostics::Summary;
use bdl_infer::rng::stream_rng;
use bdl_infer::vi::{self, SviFit};
use bdl_runtime::model::Model;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Fits the guide and draws from it.
pub fn run(
    model: &Model,
    method: &SviMethod,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    if model.layout.dim() == 0 {
        return Err(Failure::run(
            "E0571",
            "the model has no latent or param sites to fit",
        ));
    }
    let name = method.name.as_str();
    let mut settings = method.settings.clone();
    settings.init.location = match method.init {
        // Stan's and NumPyro's default: Uniform(-2, 2) in unconstrained space.
        InitChoice::Uniform => vi::InitLocation::Uniform { radius: 2.0 },
        // Zero in unconstrained space (the median of priors symmetric about zero), params at
        // their initial values.
        InitChoice::Zero => vi::InitLocation::Position(model.layout.initial_position()),
        // Pyro's default: the median of 15 prior draws.
        InitChoice::Median => {
            vi::InitLocation::Position(model.prior_median_position(settings.seed))
        }
    };
    let n_draws = method.draws;
    let bar = progress::optimisation_bar(settings.steps, show_progress);
    let mut running = 0.0;
    let fit_result = vi::svi::fit(
        |_| model.evaluator(),
        &settings,
        stop,
        |step, loss| {
            running = if step == 0 {
                loss
            } else {
                0.98 * running + 0.02 * loss
            };
            bar.set_position(step as u64 + 1);
            if step % 25 == 0 {
                bar.set_message(format!("loss {running:.4}"));
            }
        },
    );
    bar.finish_and_clear();
    let (fit, failure): (SviFit, Option<Failure>) = match fit_result {
        Ok(fit) => (fit, None),
        Err(error) => match error.partial() {
            Some(partial) => (partial.clone(), Some(infer_failure(error.clone()))),
            None => return Err(infer_failure(error)),
        },
    };
    let (sites, columns) = output_columns(model);
    let mut rng = stream_rng(settings.seed, u64::MAX - 1);
    let positions = fit.sample_positions(&mut rng, n_draws);
    let draws = constrained_rows(model, &sites, &positions, settings.seed)?;
    let losses: Vec<f64> = fit.losses.iter().map(|l| l.loss).collect();
    if let Some(out) = out {
        let comments = vec![
            format!("method = {name}"),
            format!("guide = {}", settings.guide.name()),
            format!("steps = {}", settings.steps),
            format!("num_samples = {n_draws}"),
            format!("seed = {}", settings.seed),
        ];
        write_draws(out, &comments, &columns, &draws)?;
        let mut loss_csv = String::from("step,loss\n");
        for loss in &fit.losses {
            loss_csv.push_str(&format!("{},{}\n", loss.step + 1, loss.loss));
        }
        write_file(&out.join("loss.csv"), &loss_csv)?;
        let params = params_json(model, &fit, name);
        write_file(&out.join("params.json"), &format!("{params:#}\n"))?;
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    let mut facts = Map::new();
    facts.insert("guide".into(), json!(settings.guide.name()));
    facts.insert("steps".into(), json!(settings.steps));
    facts.insert("particles".into(), json!(settings.particles));
    facts.insert("final_loss".into(), json!(fit.final_loss(100)));
    Ok(RunResult {
        method: name.into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses,
        facts,
        interrupted: fit.interrupted,
    })
}

/// `params.json`: the guide (which `predict` and the REPL can rebuild), the model's params
/// (constrained), and the layout of the unconstrained vector.
fn params_json(model: &Model, fit: &SviFit, method: &str) -> Value {
    let layout: Vec<Value> = model
        .layout
        .entries
        .iter()
        .map(|entry| {
            json!({
                "site": entry.name,
                "kind": entry.kind.as_str(),
                "offset": entry.offset,
                "unconstrained_shape": entry.unconstrained_shape,
                "shape": entry.constrained_shape,
                "constraint": entry.constraint.to_string(),
            })
        })
        .collect();
    json!({
        "method": method,
        "guide": fit.guide.params(),
        "params_unconstrained": fit.params,
        "final_loss": fit.final_loss(100),
        "layout": layout,
    })
}
