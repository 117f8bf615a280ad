//! Scores of posterior-predictive distributions against observed targets: the metrics of
//! `bdlc predict --metrics`.
//!
//! Classifiers are scored from each observation's predictive class probabilities
//! p̄ⱼₖ = (1/S) Σₛ p(yⱼ = k | θₛ), the posterior mean of the likelihood's probabilities:
//!
//! - accuracy: the share of observations whose most probable class (the first on ties) is the
//!   observed one;
//! - NLL: −(1/n) Σⱼ log p̄ⱼ,yⱼ, the negative log of the posterior predictive probability of the
//!   observed class, averaged over observations;
//! - Brier score: (1/n) Σⱼ Σₖ (p̄ⱼₖ − 1[yⱼ = k])² for more than two classes, and
//!   (1/n) Σⱼ (p̄ⱼ₁ − yⱼ)² for two (scikit-learn's `brier_score_loss`, which halves the sum over
//!   the two classes);
//! - expected calibration error: the predictions are put in `bins` equal-width bins of [0, 1] by
//!   their probability (of class 1 for two classes, of the most probable class otherwise) and
//!   ECE = Σ_b (n_b / n) |freq_b − conf_b|, freq_b the observed frequency of the event and
//!   conf_b the mean predicted probability in bin b (Naeini et al. 2015; Guo et al. 2017);
//! - AUROC (two classes): the probability that a random observation of class 1 gets a larger
//!   p̄ⱼ₁ than a random observation of class 0, ties counting one half (the Mann–Whitney form of
//!   the area under the ROC curve).
//!
//! Regressions are scored from S predictive draws xⱼₛ of each observation and its log posterior
//! predictive density log((1/S) Σₛ p(yⱼ | θₛ)) ([`log_mean_exp`] of its log-likelihoods, or
//! [`LogMeanExp`] accumulated draw by draw):
//!
//! - RMSE of the posterior predictive mean: √((1/n) Σⱼ (μ̄ⱼ − yⱼ)²), μ̄ⱼ given by the caller (the
//!   posterior mean of the likelihood's mean, or the mean of the draws);
//! - NLL: −(1/n) Σⱼ log((1/S) Σₛ p(yⱼ | θₛ)), computed with log-sum-exp;
//! - CRPS in its energy form: (1/S) Σₛ |xⱼₛ − yⱼ| − 1/(2S²) Σₛ Σₜ |xⱼₛ − xⱼₜ|, which is the CRPS
//!   of the draws' empirical distribution (Gneiting and Raftery 2007), averaged over
//!   observations;
//! - coverage of the central intervals: the share of observations inside [q_{(1−c)/2},
//!   q_{(1+c)/2}] of their draws (type-7 quantiles, bounds included), for c = 50% and 90%.
//!
//! `scripts/predictive_metrics_reference.py` computes each with scikit-learn, properscoring,
//! SciPy and NumPy on fixed predictions; `tests/predictive_metrics.rs` compares.

use super::quantile_sorted;

/// One bin of a reliability diagram: predictions whose probability lies in `[lower, upper)`
/// (the last bin includes 1).
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationBin {
    /// The bin's lower edge.
    pub lower: f64,
    /// The bin's upper edge.
    pub upper: f64,
    /// The mean predicted probability of the predictions in the bin.
    pub confidence: f64,
    /// The observed frequency of the event among them.
    pub frequency: f64,
    /// How many predictions fall in the bin.
    pub count: usize,
}

/// Predictions binned by their probability, and the expected calibration error.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    /// The non-empty bins, in order.
    pub bins: Vec<CalibrationBin>,
    /// Σ_b (n_b / n) |frequency_b − confidence_b| (0 when there are no predictions).
    pub expected_calibration_error: f64,
    /// The number of bins, empty ones included.
    pub n_bins: usize,
}

/// Bins `predictions` (a predicted probability and whether the event happened) into `bins`
/// equal-width bins of [0, 1]; a probability p goes to bin ⌊p · bins⌋ (the last bin takes 1).
/// Non-finite probabilities are left out.
pub fn calibration(predictions: &[(f64, bool)], bins: usize) -> Calibration {
    let bins = bins.max(1);
    let mut sums = vec![(0.0, 0.0, 0usize); bins];
    for &(probability, happened) in predictions {
        if !probability.is_finite() {
            continue;
        }
        let bin = ((probability.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += probability;
        sums[bin].1 += if happened { 1.0 } else { 0.0 };
        sums[bin].2 += 1;
    }
    let total: usize = sums.iter().map(|s| s.2).sum();
    let mut result = Calibration {
        n_bins: bins,
        ..Calibration::default()
    };
    for (bin, &(confidence, hits, count)) in sums.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let entry = CalibrationBin {
            lower: bin as f64 / bins as f64,
            upper: (bin + 1) as f64 / bins as f64,
            confidence: confidence / count as f64,
            frequency: hits / count as f64,
            count,
        };
        result.expected_calibration_error +=
            count as f64 / total as f64 * (entry.frequency - entry.confidence).abs();
        result.bins.push(entry);
    }
    result
}

/// The scores of a classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassificationMetrics {
    /// The number of observations scored.
    pub observations: usize,
    /// The share of observations whose most probable class is the observed one.
    pub accuracy: f64,
    /// The mean negative log predictive probability of the observed class.
    pub nll: f64,
    /// The Brier score (see the module's documentation for the two-class form).
    pub brier: f64,
    /// The calibration bins and the expected calibration error.
    pub calibration: Calibration,
    /// The area under the ROC curve, for two classes only.
    pub auroc: Option<f64>,
}

/// Why a set of predictions cannot be scored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsError {
    /// There are no observations.
    Empty,
    /// An observation's predictions do not fit the others (its row's length, say).
    Mismatch(String),
    /// A target is not one of the classes.
    UnknownClass {
        /// The observation (0-based).
        observation: usize,
        /// Its target.
        target: usize,
        /// The number of classes.
        classes: usize,
    },
}

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsError::Empty => write!(f, "there are no observations to score"),
            MetricsError::Mismatch(what) => write!(f, "{what}"),
            MetricsError::UnknownClass {
                observation,
                target,
                classes,
            } => write!(
                f,
                "observation {} has class {target}, outside the {classes} classes predicted",
                observation + 1
            ),
        }
    }
}

impl std::error::Error for MetricsError {}

/// Scores predictive class probabilities: `probabilities[j][k]` is p̄ⱼₖ (each row sums to 1),
/// `targets[j]` the observed class of observation j (an index into its row).
pub fn classification(
    probabilities: &[Vec<f64>],
    targets: &[usize],
    bins: usize,
) -> Result<ClassificationMetrics, MetricsError> {
    let n = targets.len();
    if n == 0 {
        return Err(MetricsError::Empty);
    }
    if probabilities.len() != n {
        return Err(MetricsError::Mismatch(format!(
            "{} rows of probabilities for {n} targets",
            probabilities.len()
        )));
    }
    let classes = probabilities[0].len();
    let mut correct = 0usize;
    let mut nll = 0.0;
    let mut brier = 0.0;
    let mut reliability_pairs = Vec::with_capacity(n);
    for (observation, (row, &target)) in probabilities.iter().zip(targets).enumerate() {
        if row.len() != classes {
            return Err(MetricsError::Mismatch(format!(
                "observation {} has {} class probabilities, the first has {classes}",
                observation + 1,
                row.len()
            )));
        }
        if target >= classes {
            return Err(MetricsError::UnknownClass {
                observation,
                target,
                classes,
            });
        }
        // The first most probable class, as NumPy's argmax picks it.
        let best = row
            .iter()
            .enumerate()
            .fold(0, |best, (k, &p)| if p > row[best] { k } else { best });
        if best == target {
            correct += 1;
        }
        nll -= row[target].ln();
        if classes == 2 {
            brier += (row[1] - if target == 1 { 1.0 } else { 0.0 }).powi(2);
            reliability_pairs.push((row[1], target == 1));
        } else {
            brier += row
                .iter()
                .enumerate()
                .map(|(k, &p)| (p - if k == target { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>();
            reliability_pairs.push((row[best], best == target));
        }
    }
    let auroc = (classes == 2).then(|| {
        let scores: Vec<(f64, bool)> = probabilities
            .iter()
            .zip(targets)
            .map(|(row, &target)| (row[1], target == 1))
            .collect();
        area_under_roc(&scores)
    });
    Ok(ClassificationMetrics {
        observations: n,
        accuracy: correct as f64 / n as f64,
        nll: nll / n as f64,
        brier: brier / n as f64,
        calibration: calibration(&reliability_pairs, bins),
        auroc,
    })
}

/// The area under the ROC curve of scores for a binary event: the Mann–Whitney statistic
/// U / (n₁ n₀) with average ranks for ties. NaN when one of the two classes is absent.
pub fn area_under_roc(scores: &[(f64, bool)]) -> f64 {
    let positives = scores.iter().filter(|(_, event)| *event).count();
    let negatives = scores.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].0.total_cmp(&scores[b].0));
    // The sum of the positives' ranks (1-based), tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]].0 == scores[order[start]].0 {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        let tied_positives = order[start..=end].iter().filter(|&&i| scores[i].1).count();
        rank_sum += average_rank * tied_positives as f64;
        start = end + 1;
    }
    let u = rank_sum - (positives * (positives + 1)) as f64 / 2.0;
    u / (positives as f64 * negatives as f64)
}

/// The scores of a regression.
#[derive(Clone, Debug, PartialEq)]
pub struct RegressionMetrics {
    /// The number of observations scored.
    pub observations: usize,
    /// The root mean squared error of the posterior predictive mean.
    pub rmse: f64,
    /// The mean negative log posterior predictive density of the observations.
    pub nll: f64,
    /// The mean CRPS of the predictive draws (energy form).
    pub crps: f64,
    /// The share of observations inside the central 50% interval of their draws.
    pub coverage_50: f64,
    /// The share of observations inside the central 90% interval of their draws.
    pub coverage_90: f64,
}

/// log((1/S) Σₛ exp(aₛ)), stable for large |aₛ|.
pub fn log_mean_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = values.iter().map(|v| (v - max).exp()).sum();
    max + sum.ln() - (values.len() as f64).ln()
}

/// The CRPS of the empirical distribution of `draws` at `target`:
/// (1/S) Σₛ |xₛ − y| − 1/(2S²) Σₛ Σₜ |xₛ − xₜ|. The double sum is computed from the sorted draws
/// as 2 Σᵢ x₍ᵢ₎ (2i − S + 1) (i from 0), in O(S log S).
pub fn crps_energy(draws: &[f64], target: f64) -> f64 {
    let s = draws.len() as f64;
    if draws.is_empty() {
        return f64::NAN;
    }
    let mut sorted = draws.to_vec();
    sorted.sort_by(f64::total_cmp);
    let to_target: f64 = sorted.iter().map(|x| (x - target).abs()).sum::<f64>() / s;
    let pairwise: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| x * (2.0 * i as f64 - s + 1.0))
        .sum::<f64>()
        * 2.0;
    to_target - pairwise / (2.0 * s * s)
}

/// A log-mean-exp accumulated one value at a time (a running maximum and the sum of
/// exp(value − maximum)), so that the log predictive density of many draws needs no matrix.
#[derive(Clone, Copy, Debug)]
pub struct LogMeanExp {
    max: f64,
    sum: f64,
    count: usize,
}

impl Default for LogMeanExp {
    fn default() -> Self {
        LogMeanExp {
            max: f64::NEG_INFINITY,
            sum: 0.0,
            count: 0,
        }
    }
}

impl LogMeanExp {
    /// Adds one value.
    pub fn push(&mut self, value: f64) {
        self.count += 1;
        if value > self.max {
            // Rescale the sum to the new maximum: Σ exp(x − m) = Σ exp(x − m') · exp(m' − m).
            self.sum = self.sum * (self.max - value).exp() + 1.0;
            self.max = value;
        } else if value.is_finite() || value == f64::NEG_INFINITY {
            self.sum += (value - self.max).exp();
        } else {
            // NaN poisons the result, as it would in a direct sum.
            self.max = f64::NAN;
        }
    }

    /// log((1/S) Σₛ exp(valueₛ)); NaN before any value.
    pub fn value(&self) -> f64 {
        if self.count == 0 || self.max.is_nan() {
            return f64::NAN;
        }
        if !self.max.is_finite() {
            return self.max;
        }
        self.max + self.sum.ln() - (self.count as f64).ln()
    }
}

/// Scores a regression: `draws[j]` holds the predictive draws of observation j,
/// `log_predictive_density[j]` its log posterior predictive density, `means[j]` its posterior
/// predictive mean and `targets[j]` its observed value.
pub fn regression(
    draws: &[Vec<f64>],
    log_predictive_density: &[f64],
    means: &[f64],
    targets: &[f64],
) -> Result<RegressionMetrics, MetricsError> {
    let n = targets.len();
    if n == 0 {
        return Err(MetricsError::Empty);
    }
    if draws.len() != n || log_predictive_density.len() != n || means.len() != n {
        return Err(MetricsError::Mismatch(format!(
            "{} rows of draws, {} log predictive densities and {} means for {n} targets",
            draws.len(),
            log_predictive_density.len(),
            means.len()
        )));
    }
    let mut squared_error = 0.0;
    let mut nll = 0.0;
    let mut crps = 0.0;
    let (mut inside_50, mut inside_90) = (0usize, 0usize);
    for (((row, &density), &mean), &target) in draws
        .iter()
        .zip(log_predictive_density)
        .zip(means)
        .zip(targets)
    {
        squared_error += (mean - target).powi(2);
        nll -= density;
        crps += crps_energy(row, target);
        let mut sorted = row.clone();
        sorted.sort_by(f64::total_cmp);
        let inside = |level: f64| {
            let low = quantile_sorted(&sorted, (1.0 - level) / 2.0);
            let high = quantile_sorted(&sorted, (1.0 + level) / 2.0);
            low <= target && target <= high
        };
        inside_50 += usize::from(inside(0.5));
        inside_90 += usize::from(inside(0.9));
    }
    let n_f = n as f64;
    Ok(RegressionMetrics {
        observations: n,
        rmse: (squared_error / n_f).sqrt(),
        nll: nll / n_f,
        crps: crps / n_f,
        coverage_50: inside_50 as f64 / n_f,
        coverage_90: inside_90 as f64 / n_f,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_energy_form_matches_the_double_sum() {
        let draws: [f64; 5] = [0.3, -1.2, 2.5, 0.3, 1.1];
        let target: f64 = 0.7;
        let s = draws.len() as f64;
        let first: f64 = draws.iter().map(|x| (x - target).abs()).sum::<f64>() / s;
        let second: f64 = draws
            .iter()
            .flat_map(|x| draws.iter().map(move |y| (x - y).abs()))
            .sum::<f64>()
            / (2.0 * s * s);
        assert!((crps_energy(&draws, target) - (first - second)).abs() < 1e-12);
    }

    #[test]
    fn the_running_log_mean_exp_matches_the_direct_one() {
        let values = [-1000.0, 3.0, -2.5, 700.0, 0.1, f64::NEG_INFINITY];
        let mut running = LogMeanExp::default();
        for value in values {
            running.push(value);
        }
        assert!((running.value() - log_mean_exp(&values)).abs() < 1e-12);
        assert!(LogMeanExp::default().value().is_nan());
    }

    #[test]
    fn ties_count_one_half_in_the_area_under_the_curve() {
        let scores = [(0.5, true), (0.5, false)];
        assert_eq!(area_under_roc(&scores), 0.5);
        let separated = [(0.9, true), (0.1, false), (0.8, true)];
        assert_eq!(area_under_roc(&separated), 1.0);
        assert!(area_under_roc(&[(0.3, true)]).is_nan());
    }
}
