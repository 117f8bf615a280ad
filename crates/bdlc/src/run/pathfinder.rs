//! `pathfinder`: multi-path Pathfinder (Zhang et al., 2022), as a method (draws resampled from
//! the paths' normal approximations with Pareto-smoothed weights, and their k̂) and as the start
//! of NUTS and HMC (`--init pathfinder`: one resampled draw per chain as its initial point, and
//! the best normal's marginal variances as the initial diagonal metric).
//!
//! The method writes `draws.csv` and `params.json`, whose guide is the best path's normal
//! approximation — a `multivariate_normal` guide up to [`DENSE_GUIDE_MAX_DIM`] latent
//! coordinates, a `diagonal_normal` one with the same marginal variances above — so that
//! `--init FILE`, `predict` and the REPL read it like an SVI fit.

use crate::method::PathfinderMethod;
use crate::run::draw_file::stream_positions;
use crate::run::outcome::{output_columns, RunResult};
use crate::session::Failure;
use crate::vi_checks;
use bdl_infer::diagnostics::Summary;
use bdl_infer::mcmc::InverseMetric;
use bdl_infer::vi::pathfinder::{self, PathfinderError, PathfinderResult, PathfinderSettings};
use bdl_infer::vi::GuideParams;
use bdl_runtime::model::Model;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The largest number of latent coordinates whose Pathfinder normal `params.json` saves with
/// its full covariance (a dense Cholesky factor, d² numbers); above it the saved guide keeps
/// the marginal variances only.
pub const DENSE_GUIDE_MAX_DIM: usize = 2000;

/// Checks that Pathfinder can run on the model: continuous latent sites only (E0955).
fn check_model(model: &Model) -> Result<(), Failure> {
    if model.layout.latent_dim() == 0 {
        return Err(Failure::run_with_hint(
            "E0955",
            "Pathfinder needs latent sites, but the model has none",
            "a model with `param` sites only is fitted by `--method map`",
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
            "E0955",
            format!(
                "site `{}` is discrete; Pathfinder's L-BFGS paths need continuous latent \
                 variables",
                site.name
            ),
            "use `--method gibbs`, or marginalise the discrete site out of the model",
        ));
    }
    Ok(())
}

/// Runs Pathfinder over the model's latent coordinates, with the params at their initial
/// values (as NUTS holds them).
pub fn fit(model: &Model, settings: &PathfinderSettings) -> Result<PathfinderResult, Failure> {
    check_model(model)?;
    let params = model.layout.initial_position()[model.layout.latent_dim()..].to_vec();
    pathfinder::pathfinder(|_| model.log_density().with_params(&params), settings).map_err(
        |error| {
            let hint = match &error {
                PathfinderError::Initialisation { .. } => {
                    "check that every site's distribution is valid near the prior's typical values"
                }
                PathfinderError::NoApproximation { .. } => {
                    "try more `--paths` or another `--seed`, or sample with NUTS"
                }
                PathfinderError::Density { .. } | PathfinderError::InvalidSettings { .. } => {
                    "the model cannot be evaluated; `bdlc check` and `bdlc diagnose` say more"
                }
            };
            Failure::run_with_hint("E0954", format!("Pathfinder failed: {error}"), hint)
        },
    )
}

/// The facts and warnings of a Pathfinder result, for `summary.json`.
pub fn facts_of(
    result: &PathfinderResult,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    vi_checks::pareto_pathfinder(
        result.pareto_k(),
        result.effective_sample_size(),
        result.draws.len(),
        facts,
        warnings,
    );
    let paths: Vec<Value> = result
        .paths
        .iter()
        .map(|path| {
            json!({
                "elbo": path.elbo,
                "chosen_point": path.chosen_point,
                "path_length": path.path_length,
                "lbfgs_status": path.lbfgs.status.name(),
                "evaluations": path.evaluations,
            })
        })
        .collect();
    facts.insert("paths".into(), json!(paths));
    facts.insert("elbo".into(), json!(result.best_path().elbo));
    if !result.failed_paths.is_empty() {
        let failed: Vec<String> = result.failed_paths.iter().map(|e| e.to_string()).collect();
        warnings.push(format!(
            "{} of {} Pathfinder paths found no approximation and were left out: {}",
            failed.len(),
            failed.len() + result.paths.len(),
            failed.join("; ")
        ));
        facts.insert("failed_paths".into(), json!(failed));
    }
}

/// The best path's normal approximation's marginal variances, as the initial diagonal inverse
/// metric of NUTS and HMC.
pub fn inverse_metric(result: &PathfinderResult) -> InverseMetric {
    InverseMetric::Diag(result.best_path().approximation.variances())
}

/// The best path's normal as a guide for `params.json`: its mean and the Cholesky factor of its
/// covariance, or its marginal scales above [`DENSE_GUIDE_MAX_DIM`] coordinates.
fn saved_guide(result: &PathfinderResult) -> (GuideParams, &'static str) {
    let normal = &result.best_path().approximation;
    let d = normal.dim();
    let loc = normal.mean.clone();
    if d <= DENSE_GUIDE_MAX_DIM {
        if let Some(scale_tril) = normal.cholesky_rows() {
            return (GuideParams::MultivariateNormal { loc, scale_tril }, "full");
        }
    }
    let scale = normal.variances().iter().map(|v| v.sqrt()).collect();
    (GuideParams::DiagonalNormal { loc, scale }, "diagonal")
}

/// Runs the method: Pathfinder, then draws resampled with Pareto-smoothed weights.
pub fn run(
    model: &Model,
    method: &PathfinderMethod,
    out: Option<&Path>,
) -> Result<RunResult, Failure> {
    let settings = &method.settings;
    let result = fit(model, settings)?;
    let mut facts = Map::new();
    let mut warnings = Vec::new();
    facts_of(&result, &mut facts, &mut warnings);
    let latent_dim = model.layout.latent_dim();
    let params = model.layout.initial_position()[latent_dim..].to_vec();
    let positions: Vec<Vec<f64>> = result
        .resample(method.samples, settings.seed)
        .into_iter()
        .map(|mut latent| {
            latent.extend_from_slice(&params);
            latent
        })
        .collect();
    let (_, columns) = output_columns(model);
    let (guide, covariance) = saved_guide(&result);
    facts.insert("saved_covariance".into(), json!(covariance));
    let comments = vec![
        "method = pathfinder".to_string(),
        format!("paths = {}", settings.paths),
        format!("draws_per_path = {}", settings.draws_per_path),
        format!("num_samples = {}", method.samples),
        format!("seed = {}", settings.seed),
    ];
    // The resampled draws stream through the driver to `draws.csv` as they are made.
    let draws = stream_positions(model, out, comments, &positions, settings.seed)?;
    if let Some(out) = out {
        let layout = super::svi::layout_json(model);
        let params_json = json!({
            "method": "pathfinder",
            "guide": guide,
            "params_unconstrained": params,
            "elbo": result.best_path().elbo,
            "layout": layout,
        });
        crate::output::write_file(&out.join("params.json"), &format!("{params_json:#}\n"))?;
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    facts.insert("paths_run".into(), json!(settings.paths));
    facts.insert("draws_per_path".into(), json!(settings.draws_per_path));
    facts.insert("samples".into(), json!(method.samples));
    facts.insert("draws_file".into(), json!("draws.csv"));
    facts.insert("warnings".into(), json!(warnings));
    Ok(RunResult {
        method: "pathfinder".into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses: Vec::new(),
        facts,
        interrupted: false,
        energies: Vec::new(),
        divergent: Vec::new(),
    })
}
