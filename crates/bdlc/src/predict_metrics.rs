//! `bdlc predict --metrics`: scores the posterior predictive against the observed targets of the
//! data given to `predict`, writes `metrics.json` and prints a table.
//!
//! Each posterior draw runs the model once more on the data with the draw's values fixed
//! ([`Model::pointwise_predictive`]); what the scores need is accumulated draw by draw, so that
//! memory holds one block of draws: for a discrete site the sum over draws of each class's
//! probability, for any site the running log-mean-exp of the observations' likelihoods and the
//! sum of the likelihood's means. The regression scores that need the predictive draws (CRPS and
//! interval coverage) take them from the draws `predict` already made. The maths is
//! `bdl_infer::diagnostics::metrics`.

use crate::output::display_number;
use crate::session::Failure;
use bdl_autodiff::Tensor;
use bdl_infer::diagnostics::metrics::{
    classification, regression, ClassificationMetrics, LogMeanExp, RegressionMetrics,
};
use bdl_runtime::model::{Model, PointwisePredictive};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Posterior draws per block of model runs.
const BLOCK: usize = 256;

/// How many bins the expected calibration error uses unless `--bins` says otherwise.
pub const DEFAULT_BINS: usize = 10;

/// The scores of one observed site.
pub enum SiteScores {
    /// A discrete site with finitely many values.
    Classification {
        /// The values of the support (the class labels).
        classes: Vec<f64>,
        /// The scores.
        metrics: ClassificationMetrics,
    },
    /// A site with real (or unbounded integer) values and a mean.
    Regression(RegressionMetrics),
}

/// One observed site, scored.
pub struct Scored {
    /// The site's name.
    pub site: String,
    /// Its scores.
    pub scores: SiteScores,
}

/// What is accumulated over the draws for one site.
struct Accumulator {
    name: String,
    elements: Vec<usize>,
    targets: Option<Vec<f64>>,
    log_density: Vec<LogMeanExp>,
    mean_sum: Option<Vec<f64>>,
    classes: Option<(Vec<f64>, Vec<Vec<f64>>)>,
    draws: usize,
}

impl Accumulator {
    fn new(first: &PointwisePredictive) -> Accumulator {
        let n = first.log_lik.elements.len();
        Accumulator {
            name: first.log_lik.name.clone(),
            elements: first.log_lik.elements.clone(),
            targets: first.targets.clone(),
            log_density: vec![LogMeanExp::default(); n],
            mean_sum: first.mean.as_ref().map(|_| vec![0.0; n]),
            classes: first
                .classes
                .as_ref()
                .map(|c| (c.values.clone(), vec![vec![0.0; c.values.len()]; n])),
            draws: 0,
        }
    }

    /// Adds one draw's values of the site.
    fn add(&mut self, draw: &PointwisePredictive) -> Result<(), Failure> {
        if draw.log_lik.elements != self.elements {
            return Err(Failure::run(
                "E0965",
                format!(
                    "site `{}`: a posterior draw observes other elements than the first",
                    self.name
                ),
            ));
        }
        for (running, &value) in self.log_density.iter_mut().zip(&draw.log_lik.log_lik) {
            running.push(value);
        }
        match (&mut self.mean_sum, &draw.mean) {
            (Some(sum), Some(mean)) => sum.iter_mut().zip(mean).for_each(|(s, m)| *s += m),
            _ => self.mean_sum = None,
        }
        match (&mut self.classes, &draw.classes) {
            (Some((values, sums)), Some(classes)) if *values == classes.values => {
                for (row, log_probs) in sums.iter_mut().zip(&classes.log_probs) {
                    for (sum, log_prob) in row.iter_mut().zip(log_probs) {
                        *sum += log_prob.exp();
                    }
                }
            }
            _ => self.classes = None,
        }
        self.draws += 1;
        Ok(())
    }
}

/// Scores every observed site of `model` (with the data `predict` loaded) from the posterior
/// draws `values_of(k)` for `k` in `rows`, and the predictive draws `predictive` made from them
/// (in the same order). Sites with nothing to score (no observed values, multivariate events)
/// are named in the returned notes.
pub fn score(
    model: &Model,
    rows: &[usize],
    values_of: &(dyn Fn(usize) -> Result<HashMap<String, Tensor>, Failure> + Sync),
    predictive: &[Vec<(String, Tensor)>],
    bins: usize,
) -> Result<(Vec<Scored>, Vec<String>), Failure> {
    let mut accumulators: Vec<Accumulator> = Vec::new();
    for block in rows.chunks(BLOCK) {
        let computed: Vec<Result<Vec<PointwisePredictive>, Failure>> = block
            .par_iter()
            .map(|&row| {
                let values = values_of(row)?;
                model
                    .pointwise_predictive(&values, true)
                    .map_err(|e| Failure::model(vec![e.to_diagnostic()]))
            })
            .collect();
        for draw in computed {
            let draw = draw?;
            if accumulators.is_empty() {
                accumulators = draw.iter().map(Accumulator::new).collect();
            }
            if draw.len() != accumulators.len() {
                return Err(Failure::run(
                    "E0965",
                    "a posterior draw observes other sites than the first".to_string(),
                ));
            }
            for (accumulator, site) in accumulators.iter_mut().zip(&draw) {
                accumulator.add(site)?;
            }
        }
    }
    if accumulators.is_empty() {
        return Err(Failure::usage(
            "E0963",
            "`--metrics` needs observed targets, and the data hold no observed values of any `observe` site",
            Some(
                "give a data file with the observed columns (e.g. a held-out split) to `--data`"
                    .to_string(),
            ),
        ));
    }
    let mut scored = Vec::new();
    let mut notes = Vec::new();
    for accumulator in accumulators {
        let name = accumulator.name.clone();
        let Some(targets) = accumulator.targets.clone() else {
            notes.push(format!(
                "site `{name}` is not scored: its observations are vectors (multivariate)"
            ));
            continue;
        };
        if targets.is_empty() {
            notes.push(format!(
                "site `{name}` is not scored: all its values are missing"
            ));
            continue;
        }
        let draws = accumulator.draws.max(1) as f64;
        let failed = |error: bdl_infer::diagnostics::metrics::MetricsError| {
            Failure::run("E0965", format!("site `{name}`: {error}"))
        };
        if let Some((values, sums)) = &accumulator.classes {
            let probabilities: Vec<Vec<f64>> = sums
                .iter()
                .map(|row| row.iter().map(|s| s / draws).collect())
                .collect();
            let mut indices = Vec::with_capacity(targets.len());
            for (j, target) in targets.iter().enumerate() {
                let Some(index) = values.iter().position(|v| v == target) else {
                    return Err(Failure::run(
                        "E0964",
                        format!(
                            "site `{name}`: observation {} is {}, not one of the values the model predicts ({})",
                            accumulator.elements[j] + 1,
                            display_number(*target),
                            describe_values(values)
                        ),
                    ));
                };
                indices.push(index);
            }
            let metrics = classification(&probabilities, &indices, bins).map_err(failed)?;
            scored.push(Scored {
                site: name,
                scores: SiteScores::Classification {
                    classes: values.clone(),
                    metrics,
                },
            });
            continue;
        }
        let Some(mean_sum) = &accumulator.mean_sum else {
            notes.push(format!(
                "site `{name}` is not scored: its distribution has no mean"
            ));
            continue;
        };
        let means: Vec<f64> = mean_sum.iter().map(|s| s / draws).collect();
        let columns: Vec<Vec<f64>> = accumulator
            .elements
            .iter()
            .map(|&element| {
                predictive
                    .iter()
                    .filter_map(|draw| draw.iter().find(|(n, _)| *n == name))
                    .filter_map(|(_, tensor)| tensor.data().get(element).copied())
                    .collect()
            })
            .collect();
        let densities: Vec<f64> = accumulator
            .log_density
            .iter()
            .map(LogMeanExp::value)
            .collect();
        let metrics = regression(&columns, &densities, &means, &targets).map_err(failed)?;
        scored.push(Scored {
            site: name,
            scores: SiteScores::Regression(metrics),
        });
    }
    Ok((scored, notes))
}

/// "0, 1, 2" (or the first and last of many).
fn describe_values(values: &[f64]) -> String {
    if values.len() <= 6 {
        values
            .iter()
            .map(|v| display_number(*v))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!(
            "{}, …, {}",
            display_number(values[0]),
            display_number(values[values.len() - 1])
        )
    }
}

/// A number for JSON: NaN and infinities (an AUROC with one class present) become null.
fn number(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// The `sites` array of `metrics.json`.
pub fn to_json(scored: &[Scored], bins: usize) -> Value {
    let sites: Vec<Value> = scored
        .iter()
        .map(|site| match &site.scores {
            SiteScores::Classification { classes, metrics } => json!({
                "site": site.site,
                "task": "classification",
                "observations": metrics.observations,
                "classes": classes,
                "accuracy": number(metrics.accuracy),
                "nll": number(metrics.nll),
                "brier": number(metrics.brier),
                "ece": number(metrics.calibration.expected_calibration_error),
                "ece_bins": bins,
                "ece_event": if classes.len() == 2 {
                    "the predicted probability of the second class"
                } else {
                    "the predicted probability of the most probable class"
                },
                "auroc": metrics.auroc.map_or(Value::Null, number),
                "calibration": metrics.calibration.bins.iter().map(|bin| json!({
                    "lower": bin.lower,
                    "upper": bin.upper,
                    "confidence": bin.confidence,
                    "frequency": bin.frequency,
                    "count": bin.count,
                })).collect::<Vec<_>>(),
            }),
            SiteScores::Regression(metrics) => json!({
                "site": site.site,
                "task": "regression",
                "observations": metrics.observations,
                "rmse": number(metrics.rmse),
                "nll": number(metrics.nll),
                "crps": number(metrics.crps),
                "coverage_50": number(metrics.coverage_50),
                "coverage_90": number(metrics.coverage_90),
            }),
        })
        .collect();
    Value::Array(sites)
}

/// The table printed by `bdlc predict --metrics`.
pub fn table(scored: &[Scored], bins: usize) -> String {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for site in scored {
        let name = site.site.clone();
        match &site.scores {
            SiteScores::Classification { classes, metrics } => {
                let event = if classes.len() == 2 {
                    format!("binned by P({name} = {})", display_number(classes[1]))
                } else {
                    "binned by the top-class probability".to_string()
                };
                let mut push = |metric: String, value: String, note: String| {
                    rows.push((name.clone(), metric, value, note));
                };
                push(
                    "accuracy".to_string(),
                    format!("{:.4}", metrics.accuracy),
                    "share whose most probable class is observed".to_string(),
                );
                push(
                    "NLL".to_string(),
                    format!("{:.4}", metrics.nll),
                    "mean −log predictive probability of the observed class".to_string(),
                );
                push(
                    "Brier score".to_string(),
                    format!("{:.4}", metrics.brier),
                    "lower is better".to_string(),
                );
                push(
                    format!("ECE ({bins} bins)"),
                    format!("{:.4}", metrics.calibration.expected_calibration_error),
                    event,
                );
                if let Some(auroc) = metrics.auroc {
                    let (value, note) = if auroc.is_finite() {
                        (format!("{auroc:.4}"), "area under the ROC curve")
                    } else {
                        ("-".to_string(), "undefined: only one class observed")
                    };
                    push("AUROC".to_string(), value, note.to_string());
                }
            }
            SiteScores::Regression(metrics) => {
                for (metric, value, note) in [
                    ("RMSE", metrics.rmse, "of the posterior predictive mean"),
                    ("NLL", metrics.nll, "mean −log predictive density"),
                    ("CRPS", metrics.crps, "from the predictive draws"),
                    (
                        "coverage 50%",
                        metrics.coverage_50,
                        "share inside the central 50% interval",
                    ),
                    (
                        "coverage 90%",
                        metrics.coverage_90,
                        "share inside the central 90% interval",
                    ),
                ] {
                    rows.push((
                        name.clone(),
                        metric.to_string(),
                        format!("{value:.4}"),
                        note.to_string(),
                    ));
                }
            }
        }
    }
    let site_width = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let metric_width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut text = format!(
        "{:<site_width$}  {:<metric_width$}  {:>10}\n",
        "site", "metric", "value"
    );
    for (site, metric, value, note) in rows {
        let line = format!("{site:<site_width$}  {metric:<metric_width$}  {value:>10}  {note}");
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text
}
