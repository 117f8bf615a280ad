//! What `bdlc infer` adds around SVI, MAP and Laplace so that no answer is silently wrong: the
//! step budget of `--steps auto`, the warm start from an L-BFGS MAP point, and the facts and
//! warnings of the convergence test, of L-BFGS and of the guide's Pareto-k̂ diagnostic.

use bdl_infer::diagnostics::psis::PARETO_K_LIMIT;
use bdl_infer::vi::{ConvergenceReport, GuideDiagnostic, LbfgsReport};
use serde_json::{json, Map, Value};

/// The most optimisation steps `--steps auto` takes before giving up on convergence.
pub const AUTO_STEP_CAP: usize = 100_000;

/// The most L-BFGS iterations of the warm start before SVI.
pub const WARM_START_ITERATIONS: usize = 5_000;

/// The guide draws of the Pareto-k̂ diagnostic unless `--psis-draws` says otherwise.
pub const DEFAULT_PSIS_DRAWS: usize = 1_000;

/// Records the loss's stationarity test: `converged` and the evidence in the facts, and a
/// warning when the loss was still falling. `taken` is the number of steps run and `cap` the
/// budget.
pub fn convergence(
    report: Option<ConvergenceReport>,
    taken: usize,
    cap: usize,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    match report {
        Some(report) => {
            facts.insert("converged".into(), json!(report.converged));
            facts.insert(
                "convergence".into(),
                json!({
                    "test": "windowed stationarity of the loss",
                    "steps": report.steps,
                    "window": report.window,
                    "final_loss": report.final_loss,
                    "decrease": report.decrease,
                    "noise_sd": report.noise_sd,
                    "standard_error": report.standard_error,
                    "decrease_z": finite_or_null(report.decrease_z()),
                }),
            );
            if !report.converged {
                warnings.push(format!(
                    "the optimisation did not converge in {taken} of {cap} steps: {}; the \
                     answer may sit near its starting point (raise `--steps`, use `--steps \
                     auto`, or raise `--lr`)",
                    report.evidence()
                ));
            }
        }
        None => {
            facts.insert("converged".into(), Value::Null);
            warnings.push(format!(
                "convergence was not checked: {taken} steps are too few for two windows of the \
                 stationarity test (use `--steps auto` or at least 400 steps)"
            ));
        }
    }
}

/// Records how L-BFGS ended, with a warning unless it met its gradient tolerance.
pub fn lbfgs(report: &LbfgsReport, facts: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    facts.insert("optimizer".into(), json!("lbfgs"));
    facts.insert("converged".into(), json!(report.converged()));
    facts.insert(
        "lbfgs".into(),
        json!({
            "status": report.status.name(),
            "iterations": report.iterations,
            "evaluations": report.evaluations,
            "objective": report.value,
            "gradient_norm": report.gradient_norm,
            "gradient_limit": report.gradient_limit,
        }),
    );
    if !report.converged() {
        warnings.push(format!(
            "L-BFGS did not converge ({} after {} iterations): the largest gradient element is \
             {:.3e}, above the tolerance {:.3e}; the posterior may have no mode (a funnel, an \
             improper direction) or need more iterations (`--steps`)",
            report.status.name().replace('_', " "),
            report.iterations,
            report.gradient_norm,
            report.gradient_limit
        ));
    }
}

/// Records the guide's Pareto k̂ and the importance weights' ESS, with a warning above 0.7.
pub fn pareto(
    diagnostic: &GuideDiagnostic,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    pareto_of(
        diagnostic.pareto_k(),
        diagnostic.effective_sample_size(),
        diagnostic.positions.len(),
        facts,
        warnings,
    );
}

/// [`pareto`] for a diagnostic streamed over as few draws as settle it: also says how many draws
/// it used of those allowed, and k̂'s standard error.
pub fn pareto_streamed(
    diagnostic: &bdl_infer::vi::importance::StreamedDiagnostic,
    allowed: usize,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    pareto_of(
        diagnostic.psis.pareto_k,
        diagnostic.psis.effective_sample_size(),
        diagnostic.draws_used,
        facts,
        warnings,
    );
    facts.insert("psis_draws_allowed".into(), json!(allowed));
    facts.insert(
        "pareto_k_se".into(),
        finite_or_null(diagnostic.k_standard_error),
    );
}

/// The facts and warning of a Pareto k̂ from `draws` draws whose weights have `ess`.
fn pareto_of(
    k: f64,
    ess: f64,
    draws: usize,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    pareto_facts(k, ess, draws, facts);
    // An infinite or undefined k̂ (too few tail draws) counts as unreliable too.
    if k.is_nan() || k > PARETO_K_LIMIT {
        warnings.push(format!(
            "the fitted guide is unreliable: Pareto k̂ = {k:.2} (above {PARETO_K_LIMIT}) for the \
             importance ratios of posterior to guide on {draws} draws, so the guide misses mass \
             the posterior has; its means and especially its spreads may be wrong (try `--guide \
             mvn`, `--resample`, or NUTS)",
        ));
    }
}

/// The facts of a Pareto k̂ from `draws` draws whose weights have `ess`.
fn pareto_facts(k: f64, ess: f64, draws: usize, facts: &mut Map<String, Value>) {
    facts.insert("pareto_k".into(), finite_or_null(k));
    facts.insert("psis_draws".into(), json!(draws));
    facts.insert("importance_ess".into(), json!(ess));
}

/// The facts and warning of Pathfinder's k̂, for the pooled draws of its paths' normal
/// approximations.
pub fn pareto_pathfinder(
    k: f64,
    ess: f64,
    draws: usize,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    pareto_facts(k, ess, draws, facts);
    if k.is_nan() || k > PARETO_K_LIMIT {
        warnings.push(format!(
            "the Pathfinder approximation is unreliable: Pareto k̂ = {k:.2} (above \
             {PARETO_K_LIMIT}) for the importance ratios of posterior to the paths' normal \
             approximations on {draws} draws, so they miss mass the posterior has; the resampled \
             draws' means and especially their spreads may be wrong (try more `--paths`, or \
             NUTS, e.g. with `--init pathfinder`)",
        ));
    }
}

/// The facts and warning of VIS's k̂, for the refined draws' log weights (a diverged particle
/// counts with weight zero).
pub fn pareto_refined(
    k: f64,
    ess: f64,
    draws: usize,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    pareto_facts(k, ess, draws, facts);
    if k.is_nan() || k > PARETO_K_LIMIT {
        warnings.push(format!(
            "the VIS approximation is unreliable: Pareto k̂ = {k:.2} (above {PARETO_K_LIMIT}) \
             for the importance weights of posterior to refined guide on {draws} draws, so the \
             refined draws miss mass the posterior has; their means and especially their \
             spreads may be wrong (try more `--refine-steps`, or NUTS)",
        ));
    }
}

fn finite_or_null(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// The largest distance, in posterior sds, that a MAP point may sit from the posterior mean
/// before a warning says so.
pub const MODE_MEAN_LIMIT: f64 = 0.5;

/// Compares a MAP point with the posterior mean and sd estimated by importance sampling with
/// the Laplace approximation at that point as the proposal: `map_row` is the point's
/// constrained output row, `rows` the proposal draws' rows (row-major, `names.len()` columns)
/// and `diagnostic` their smoothed weights. Warns when the proposal is unreliable (k̂ above
/// 0.7) or when a column of the point is more than half a posterior sd from its mean.
pub fn mode_against_mean(
    map_row: &[f64],
    rows: &[f64],
    names: &[String],
    diagnostic: &GuideDiagnostic,
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    let k = diagnostic.pareto_k();
    facts.insert("laplace_pareto_k".into(), finite_or_null(k));
    // An infinite or undefined k̂ (too few tail draws) counts as unreliable too.
    if k.is_nan() || k > PARETO_K_LIMIT {
        warnings.push(format!(
            "the posterior is far from normal around the MAP point (Pareto k̂ = {k:.2} for the \
             Laplace approximation there as an importance proposal): the mode may be far from \
             the posterior mean, and a point estimate cannot say how far (try NUTS or SVI)"
        ));
        return;
    }
    let n_columns = names.len();
    let weights: Vec<f64> = diagnostic
        .psis
        .log_weights
        .iter()
        .map(|lw| lw.exp())
        .collect();
    let mut worst: Vec<(f64, usize)> = Vec::new();
    let mut largest: f64 = 0.0;
    for (c, point) in map_row.iter().enumerate().take(n_columns) {
        let column = rows.iter().skip(c).step_by(n_columns);
        let mean: f64 = column.clone().zip(&weights).map(|(x, w)| w * x).sum();
        let variance: f64 = column
            .zip(&weights)
            .map(|(x, w)| w * (x - mean).powi(2))
            .sum();
        let sd = variance.sqrt();
        if !(sd > 0.0 && sd.is_finite()) {
            continue;
        }
        let z = (point - mean).abs() / sd;
        largest = largest.max(z);
        if z > MODE_MEAN_LIMIT {
            worst.push((z, c));
        }
    }
    facts.insert("mode_to_mean_sds".into(), json!(largest));
    if !worst.is_empty() {
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        let listed: Vec<String> = worst
            .iter()
            .take(3)
            .map(|(z, c)| format!("`{}` by {z:.1}", names[*c]))
            .collect();
        warnings.push(format!(
            "the MAP point is a mode, not the posterior mean: it is more than {MODE_MEAN_LIMIT} \
             posterior sds from the mean estimated by importance sampling around it ({}{}); use \
             SVI or NUTS for posterior means",
            listed.join(", "),
            if worst.len() > 3 { ", …" } else { "" }
        ));
    }
}

/// The largest relative error of a posterior sd that the corpus check accepts: a spread off by
/// the fraction r moves the 5% and 95% quantiles of a normal by 1.645 r sds, and half a posterior
/// sd (the tolerance on means) then allows r = 0.5 / 1.645 ≈ 0.30.
pub const SPREAD_TOLERANCE: f64 = 0.5 / 1.644_853_626_951_472_2;

/// Compares the fitted guide's marginal sds (`guide_sds`, over the latent coordinates in the
/// model's unconstrained space) with those of the Laplace approximation at the MAP point
/// (`curvature_sds`, the square roots of the inverse negative Hessian's diagonal). A guide
/// narrower than the curvature by more than [`SPREAD_TOLERANCE`] in some coordinate gets a
/// warning naming the narrowest one: a mean-field guide on a correlated posterior reports the
/// conditional spread instead of the marginal one, and a flexible guide whose fit stopped
/// early has not stretched to it. A guide wider than the curvature is not flagged (a skewed or
/// heavy-tailed posterior is wider than its mode's curvature says).
pub fn spread_against_curvature(
    guide_sds: &[f64],
    curvature_sds: &[f64],
    names: &[String],
    facts: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) {
    let narrowest = guide_sds
        .iter()
        .zip(curvature_sds)
        .enumerate()
        .filter(|(_, (g, c))| g.is_finite() && c.is_finite() && **c > 0.0)
        .map(|(i, (g, c))| (i, *g, *c, g / c))
        .min_by(|a, b| a.3.total_cmp(&b.3));
    let Some((index, guide_sd, curvature_sd, ratio)) = narrowest else {
        return;
    };
    let name = names
        .get(index)
        .cloned()
        .unwrap_or_else(|| index.to_string());
    facts.insert(
        "spread_check".into(),
        json!({
            "coordinate": name,
            "guide_sd": guide_sd,
            "curvature_sd": curvature_sd,
            "ratio": ratio,
            "limit": 1.0 - SPREAD_TOLERANCE,
        }),
    );
    if ratio < 1.0 - SPREAD_TOLERANCE {
        warnings.push(format!(
            "the fitted guide is too narrow: its sd of `{name}` (unconstrained) is {guide_sd:.3e}, \
             {:.1} times smaller than the {curvature_sd:.3e} that the curvature at the MAP point \
             implies (the Laplace approximation's marginal sd), so its spreads and intervals are \
             too small; the posterior's coordinates are probably strongly correlated, which a \
             diagonal guide cannot express and a flexible one may not have fitted (try `--guide \
             mvn`, `--resample`, or NUTS)",
            1.0 / ratio
        ));
    }
}
