//! `vis`: variationally inferred sampling. A diagonal guide q₀ whose draws are refined by T
//! steps of a learned kinetic Langevin sampler, the guide and the sampler's step size and
//! friction fitted jointly on the refined ELBO ([`bdl_infer::vi::vis`]).
//!
//! The fit starts, like SVI's default, from the L-BFGS MAP point in coordinates standardised by
//! the curvature there (z = MAP + s ⊙ u), so that one learning rate and the sampler's initial
//! step size suit every coordinate; without a mode it starts at the median of prior draws.
//!
//! Writes `draws.csv` (the refined draws, not resampled), `loss.csv` (the loss −L per step) and
//! `params.json` (method `vis`: the guide q₀ in the model's coordinates and the learned sampler).
//! `summary.json` holds the convergence test, the Pareto k̂ and importance ESS of the refined
//! draws' log weights, and the divergences. A particle whose refinement diverges never ends the
//! run: in the fit its step is skipped and the step size halved; among the draws it is left
//! out, counted, and weighs zero in k̂.

use crate::checkpoint::LossTrace;
use crate::method::VisMethod;
use crate::progress;
use crate::run::draw_file::stream_positions;
use crate::run::outcome::{output_columns, RunResult};
use crate::session::Failure;
use crate::vi_checks;
use bdl_infer::diagnostics::psis;
use bdl_infer::diagnostics::Summary;
use bdl_infer::vi::vis::{self, VisError, VisParams, VisSettings};
use bdl_infer::vi::{self as infer_vi, GuideParams};
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Checks that VIS can run on the model: continuous latent sites only, no `param` sites, at
/// most [`vis::MAX_VIS_DIM`] coordinates (E0958).
fn check_model(model: &Model) -> Result<(), Failure> {
    let latent_dim = model.layout.latent_dim();
    if latent_dim == 0 {
        return Err(Failure::run_with_hint(
            "E0958",
            "VIS needs latent sites, but the model has none",
            "a model with `param` sites only is fitted by `--method map`",
        ));
    }
    if latent_dim < model.layout.dim() {
        return Err(Failure::run_with_hint(
            "E0958",
            "VIS fits latent sites only, but the model has `param` sites",
            "fit the model with `--method svi`, or give the params priors (make them latent)",
        ));
    }
    if latent_dim > vis::MAX_VIS_DIM {
        return Err(Failure::run_with_hint(
            "E0958",
            format!(
                "VIS covers at most {} latent coordinates, but the model has {latent_dim}",
                vis::MAX_VIS_DIM
            ),
            "its reverse model grows with the square of the dimension; use `--method svi`",
        ));
    }
    if let Some(site) = model.sites.iter().find(|s| {
        s.discrete
            && !s.observed
            && s.kind == bdl_runtime::handlers::SiteKind::Sample
            // Enumerated sites are summed out of the density and drawn afterwards.
            && !model
                .enumeration
                .as_ref()
                .is_some_and(|e| e.sites.iter().any(|site| site.name == s.name))
    }) {
        return Err(Failure::run_with_hint(
            "E0958",
            format!(
                "site `{}` is discrete; VIS's Langevin refinement needs continuous latent \
                 variables",
                site.name
            ),
            "use `--method gibbs`, or marginalise the discrete site out of the model",
        ));
    }
    Ok(())
}

/// The failure of a VIS fit or of its draws (E0959).
fn vis_failure(error: VisError) -> Failure {
    Failure::run_with_hint(
        "E0959",
        format!("VIS failed: {error}"),
        "lower `--lr` or `--refine-steps`, or check the model with `bdlc check` and `bdlc \
         diagnose`",
    )
}

/// Where the fit starts: the MAP point and its curvature scales (the standardisation), or
/// `None` when L-BFGS found no mode.
fn warm_start(model: &Model, method: &VisMethod) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut settings = method.settings.clone();
    settings.init.location =
        infer_vi::InitLocation::Position(model.prior_median_position(settings.seed));
    let lbfgs_settings = infer_vi::LbfgsSettings {
        max_iterations: vi_checks::WARM_START_ITERATIONS,
        ..infer_vi::LbfgsSettings::default()
    };
    let mut evaluator = model.evaluator();
    match infer_vi::map::warm_start(
        &mut evaluator,
        &settings,
        &lbfgs_settings,
        settings.init.scale,
    ) {
        Ok(Some(start)) => start.scales.map(|scales| (start.position, scales)),
        _ => None,
    }
}

/// Runs the method: the fit, then `samples` refined draws and their importance diagnostic.
pub fn run(
    model: &Model,
    method: &VisMethod,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    check_model(model)?;
    let d = model.layout.latent_dim();
    let svi = &method.settings;
    let mut facts = Map::new();
    let mut warnings = Vec::new();
    // The coordinates of the fit: z = center + scale ⊙ u.
    let map_point = warm_start(model, method);
    let (center, scale) = match &map_point {
        Some((position, scales)) => {
            facts.insert("init".into(), json!("map"));
            (position[..d].to_vec(), scales.clone())
        }
        None => {
            facts.insert("init".into(), json!("median (L-BFGS found no mode)"));
            let median = model.prior_median_position(svi.seed);
            (median[..d].to_vec(), vec![svi.init.scale; d])
        }
    };
    let settings = VisSettings {
        refine_steps: method.refine_steps,
        particles: svi.particles,
        steps: svi.steps,
        optimizer: svi.optimizer.clone(),
        convergence: svi.convergence.clone(),
        seed: svi.seed,
    };
    let mut standardized =
        infer_vi::Standardized::new(model.evaluator(), center.clone(), scale.clone());
    let start = VisParams::new(vec![0.0; d], &vec![1.0; d]);
    let bar = progress::optimisation_bar(settings.steps, show_progress);
    let trace = match out {
        Some(out) => Some(RefCell::new(LossTrace::create(out, &[])?)),
        None => None,
    };
    let mut running = 0.0;
    let fit = vis::fit(&mut standardized, start, &settings, stop, |step, loss| {
        if let Some(trace) = &trace {
            trace.borrow_mut().push(step, loss);
        }
        running = if step == 0 {
            loss
        } else {
            0.98 * running + 0.02 * loss
        };
        bar.set_position(step as u64 + 1);
        if step.is_multiple_of(25) {
            bar.set_message(format!("loss {running:.4}"));
        }
    })
    .map_err(vis_failure)?;
    bar.finish_and_clear();
    if let Some(trace) = trace {
        trace.into_inner().finish()?;
    }
    vi_checks::convergence(
        fit.convergence,
        fit.losses.len(),
        settings.steps,
        &mut facts,
        &mut warnings,
    );
    if fit.divergent_steps > 0 {
        warnings.push(format!(
            "{} optimisation steps diverged (a refined particle's density or gradient was not \
             finite) and were skipped, each halving the sampler's step size",
            fit.divergent_steps
        ));
    }
    let refined = vis::sample(
        &mut standardized,
        &fit.params,
        method.refine_steps,
        method.samples,
        svi.seed,
    )
    .map_err(vis_failure)?;
    if refined.draws.is_empty() {
        return Err(vis_failure(VisError {
            message: format!(
                "all {} refined draws diverged (the learned step size {:.3e} is too large for \
                 the posterior's curvature)",
                method.samples,
                fit.params.step_size()
            ),
            divergent: true,
        }));
    }
    if refined.divergent > 0 {
        warnings.push(format!(
            "{} of {} refined draws diverged and were left out (weight zero in k̂)",
            refined.divergent, method.samples
        ));
    }
    // k̂ and the ESS from the log weights, the diverged particles at weight zero.
    let mut log_weights: Vec<f64> = refined.draws.iter().map(|draw| draw.log_weight).collect();
    log_weights.extend(std::iter::repeat_n(f64::NEG_INFINITY, refined.divergent));
    match psis::psis(&log_weights) {
        Some(smoothed) => vi_checks::pareto_refined(
            smoothed.pareto_k,
            smoothed.effective_sample_size(),
            log_weights.len(),
            &mut facts,
            &mut warnings,
        ),
        None => warnings.push(
            "the Pareto k̂ of the refined draws could not be computed (no finite weight)".into(),
        ),
    }
    let n = log_weights.len() as f64;
    let mean_weight = refined
        .draws
        .iter()
        .map(|draw| draw.log_weight)
        .sum::<f64>()
        / refined.draws.len() as f64;
    let variance = refined
        .draws
        .iter()
        .map(|draw| (draw.log_weight - mean_weight).powi(2))
        .sum::<f64>()
        / (refined.draws.len() as f64 - 1.0).max(1.0);
    // The refined ELBO of the finite draws (the Jacobian of the standardisation is in the
    // density, so it is the ELBO in the model's coordinates).
    facts.insert("elbo".into(), json!(mean_weight));
    facts.insert("elbo_se".into(), json!((variance / n).sqrt()));
    facts.insert("refine_steps".into(), json!(method.refine_steps));
    facts.insert("step_size".into(), json!(fit.params.step_size()));
    facts.insert("friction".into(), json!(fit.params.friction()));
    facts.insert("steps_run".into(), json!(fit.losses.len()));
    facts.insert("divergent_steps".into(), json!(fit.divergent_steps));
    facts.insert("divergent_draws".into(), json!(refined.divergent));
    facts.insert("samples".into(), json!(method.samples));
    let positions: Vec<Vec<f64>> = refined
        .draws
        .iter()
        .map(|draw| {
            (0..d)
                .map(|i| center[i] + scale[i] * draw.position[i])
                .collect()
        })
        .collect();
    // The refined draws can be far narrower than the posterior (a sampler too short to stretch
    // a narrow guide along a ridge) with a k̂ near its limit: check their marginal sds against
    // the Laplace approximation's at the MAP point, as for SVI.
    if let Some((point, _)) = &map_point {
        let mut evaluator = model.evaluator();
        match infer_vi::laplace::approximate(&mut evaluator, point, svi.seed) {
            Ok(laplace) => {
                let count = positions.len() as f64;
                let sds: Vec<f64> = (0..d)
                    .map(|i| {
                        let mean = positions.iter().map(|p| p[i]).sum::<f64>() / count;
                        let variance = positions.iter().map(|p| (p[i] - mean).powi(2)).sum::<f64>()
                            / (count - 1.0).max(1.0);
                        variance.sqrt()
                    })
                    .collect();
                vi_checks::spread_against_curvature(
                    &sds,
                    laplace.standard_deviations(),
                    &model.layout.coordinate_names(),
                    &mut facts,
                    &mut warnings,
                );
            }
            Err(error) => warnings.push(format!(
                "the refined draws' spread could not be checked against the curvature at the \
                 MAP point: {error}"
            )),
        }
    }
    let (_, columns) = output_columns(model);
    let comments = vec![
        "method = vis".to_string(),
        format!("refine_steps = {}", method.refine_steps),
        format!("num_samples = {}", method.samples),
        format!("seed = {}", svi.seed),
    ];
    let draws = stream_positions(model, out, comments, &positions, svi.seed)?;
    if let Some(out) = out {
        let guide = GuideParams::DiagonalNormal {
            loc: (0..d)
                .map(|i| center[i] + scale[i] * fit.params.loc[i])
                .collect(),
            scale: (0..d)
                .map(|i| scale[i] * fit.params.log_scale[i].exp())
                .collect(),
        };
        let params_json = json!({
            "method": "vis",
            "guide": guide,
            "sampler": {
                "kind": "kinetic_langevin",
                "refine_steps": method.refine_steps,
                "step_size": fit.params.step_size(),
                "friction": fit.params.friction(),
                "standardization_center": center,
                "standardization_scale": scale,
                "note": "the guide is q0, before refinement; the step size and friction act in \
                         the standardised coordinates u = (z - center) / scale",
            },
            "params_unconstrained": Vec::<f64>::new(),
            "elbo": mean_weight,
            "layout": super::svi::layout_json(model),
        });
        crate::output::write_file(&out.join("params.json"), &format!("{params_json:#}\n"))?;
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    facts.insert("draws_file".into(), json!("draws.csv"));
    facts.insert("warnings".into(), json!(warnings));
    Ok(RunResult {
        method: "vis".into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses: fit.losses,
        facts,
        interrupted: fit.interrupted,
        energies: Vec::new(),
        divergent: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_draw_weighs_zero_in_the_pareto_diagnostic() {
        let mut weights = vec![0.0; 99];
        weights.push(f64::NEG_INFINITY);
        let smoothed = psis::psis(&weights).unwrap();
        assert!((smoothed.effective_sample_size() - 99.0).abs() < 1e-6);
    }
}
