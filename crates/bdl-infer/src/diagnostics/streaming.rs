//! Per-column statistics of draws that arrive in chunks and are never all held at once: the
//! summary of a large model's draws from a fitted guide, computed as the draws stream to disk.
//!
//! Each column keeps Welford's running mean and sum of squared deviations (exact up to rounding);
//! the 5% and 95% quantiles exactly, from the smallest and largest 5% of the draws (kept sorted,
//! about a tenth of the column); and the median by the P² algorithm (Jain and Chlamtac, 1985,
//! "The P² algorithm for dynamic calculation of quantiles and histograms without storing
//! observations"): five markers whose heights are adjusted by piecewise-parabolic interpolation
//! as draws arrive, so that the middle marker tracks the median in constant memory. P² is
//! accurate in the middle of a distribution and less so in its tails, hence the exact tails.
//! Up to five draws the median is exact. Quantiles follow SciPy's `mquantiles`, as
//! [`super::quantile`] does.
//!
//! The result is a [`ColumnSummary`] without the Markov-chain statistics (ESS, R-hat, MCSE),
//! which independent draws of a guide do not need.

use super::{quantile, ColumnSummary};

/// The quantiles a streamed summary reports: 5%, 50% and 95%.
pub const STREAMED_QUANTILES: [f64; 3] = [0.05, 0.5, 0.95];

/// P² markers of one quantile.
#[derive(Clone, Debug)]
struct P2 {
    /// The quantile's probability.
    prob: f64,
    /// Marker heights.
    heights: [f64; 5],
    /// Marker positions (1-based counts, as in the paper).
    positions: [f64; 5],
    /// Desired marker positions.
    desired: [f64; 5],
}

impl P2 {
    /// Markers started from the first five draws (sorted).
    fn new(prob: f64, first: &[f64; 5]) -> P2 {
        P2 {
            prob,
            heights: *first,
            positions: [1.0, 2.0, 3.0, 4.0, 5.0],
            desired: [
                1.0,
                1.0 + 2.0 * prob,
                1.0 + 4.0 * prob,
                3.0 + 2.0 * prob,
                5.0,
            ],
        }
    }

    /// Takes one more draw.
    fn push(&mut self, value: f64) {
        let prob = self.prob;
        let increments = [0.0, prob / 2.0, prob, (1.0 + prob) / 2.0, 1.0];
        let heights = &mut self.heights;
        let positions = &mut self.positions;
        // The cell k with heights[k] ≤ value < heights[k + 1], widening the extremes.
        let cell = if value < heights[0] {
            heights[0] = value;
            0
        } else if value >= heights[4] {
            heights[4] = value;
            3
        } else {
            (0..4).find(|&k| value < heights[k + 1]).unwrap_or(3)
        };
        for position in positions.iter_mut().skip(cell + 1) {
            *position += 1.0;
        }
        for (desired, increment) in self.desired.iter_mut().zip(increments) {
            *desired += increment;
        }
        for i in 1..4 {
            let gap = self.desired[i] - positions[i];
            if (gap >= 1.0 && positions[i + 1] - positions[i] > 1.0)
                || (gap <= -1.0 && positions[i - 1] - positions[i] < -1.0)
            {
                let step = gap.signum();
                // The piecewise-parabolic (P²) prediction of the marker's new height.
                let parabolic = heights[i]
                    + step / (positions[i + 1] - positions[i - 1])
                        * ((positions[i] - positions[i - 1] + step)
                            * (heights[i + 1] - heights[i])
                            / (positions[i + 1] - positions[i])
                            + (positions[i + 1] - positions[i] - step)
                                * (heights[i] - heights[i - 1])
                                / (positions[i] - positions[i - 1]));
                heights[i] = if heights[i - 1] < parabolic && parabolic < heights[i + 1] {
                    parabolic
                } else {
                    // Linear interpolation toward the neighbour in the step's direction.
                    let neighbour = if step > 0.0 { i + 1 } else { i - 1 };
                    heights[i]
                        + step * (heights[neighbour] - heights[i])
                            / (positions[neighbour] - positions[i])
                };
                positions[i] += step;
            }
        }
    }

    /// The current estimate.
    fn estimate(&self) -> f64 {
        self.heights[2]
    }
}

/// The running statistics of one column.
#[derive(Clone, Debug, Default)]
pub struct StreamingColumn {
    count: usize,
    mean: f64,
    /// The sum of squared deviations from the running mean.
    squares: f64,
    /// How many draws were not finite (the summary is then undefined, as for the exact one).
    non_finite: usize,
    /// How many of the smallest and of the largest draws are kept.
    keep: usize,
    /// The smallest draws so far, ascending (at most `keep`).
    low: Vec<f64>,
    /// The largest draws so far, ascending (at most `keep`).
    high: Vec<f64>,
    /// The first five draws, until the median's markers start.
    first: Vec<f64>,
    median: Option<P2>,
}

/// How many of the smallest (and of the largest) of `n` draws the 5% (and 95%) quantile of
/// [`super::quantile_sorted`] reads, with one to spare: the 5% quantile interpolates between the
/// order statistics k and k + 1 with k = ⌊0.05 n + 0.95⌋, the 95% one between the k-th and
/// (k+1)-th largest with k = n − ⌊0.95 n + 0.05⌋ + 1.
pub fn tail_draws_kept(n: usize) -> usize {
    let n_f = n as f64;
    let low = (0.05 * n_f + 0.95).floor() as usize + 1;
    let high = n.saturating_sub((0.95 * n_f + 0.05).floor() as usize) + 1;
    (low.max(high) + 1).min(n.max(1))
}

impl StreamingColumn {
    /// Statistics for at most `planned` draws: the tails are exact for any count up to it.
    pub fn new(planned: usize) -> StreamingColumn {
        StreamingColumn {
            keep: tail_draws_kept(planned),
            ..StreamingColumn::default()
        }
    }

    /// Takes one more draw.
    pub fn push(&mut self, value: f64) {
        if !value.is_finite() {
            self.non_finite += 1;
            return;
        }
        self.count += 1;
        // Welford: mean_n = mean_{n−1} + (x − mean_{n−1}) / n,
        // M2_n = M2_{n−1} + (x − mean_{n−1})(x − mean_n).
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.squares += delta * (value - self.mean);
        let keep = self.keep.max(1);
        if self.low.len() < keep || value < self.low[self.low.len() - 1] {
            let at = self.low.partition_point(|&v| v <= value);
            self.low.insert(at, value);
            self.low.truncate(keep);
        }
        if self.high.len() < keep || value > self.high[0] {
            let at = self.high.partition_point(|&v| v < value);
            self.high.insert(at, value);
            if self.high.len() > keep {
                self.high.remove(0);
            }
        }
        match &mut self.median {
            Some(median) => median.push(value),
            None => {
                self.first.push(value);
                if self.first.len() == 5 {
                    let mut sorted = [0.0; 5];
                    sorted.copy_from_slice(&self.first);
                    sorted.sort_by(f64::total_cmp);
                    self.median = Some(P2::new(0.5, &sorted));
                    self.first = Vec::new();
                }
            }
        }
    }

    /// The number of finite draws taken.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The number of draws that were not finite (NaN or infinite).
    pub fn non_finite(&self) -> usize {
        self.non_finite
    }

    /// The order statistic `index` (from 0) of the draws so far, when the kept tails hold it.
    fn order_statistic(&self, index: usize) -> Option<f64> {
        if index < self.low.len() {
            return Some(self.low[index]);
        }
        let from_top = self.count - index;
        (from_top <= self.high.len()).then(|| self.high[self.high.len() - from_top])
    }

    /// The quantile `prob` from the kept tails, as [`super::quantile_sorted`] computes it.
    fn tail_quantile(&self, prob: f64) -> f64 {
        let n = self.count;
        if n == 1 {
            return self.low[0];
        }
        let aleph = n as f64 * prob + (1.0 - prob);
        let k = aleph.clamp(1.0, (n - 1) as f64).floor();
        let gamma = (aleph - k).clamp(0.0, 1.0);
        let k = k as usize;
        match (self.order_statistic(k - 1), self.order_statistic(k)) {
            (Some(below), Some(above)) => (1.0 - gamma) * below + gamma * above,
            _ => f64::NAN,
        }
    }

    /// The 5%, 50% and 95% quantiles: the tails exact (from the kept smallest and largest
    /// draws), the median exact up to five draws and the P² estimate after.
    pub fn quantiles(&self) -> [f64; 3] {
        let median = match &self.median {
            Some(markers) => markers.estimate(),
            None => quantile(&self.first, 0.5),
        };
        [
            self.tail_quantile(STREAMED_QUANTILES[0]),
            median,
            self.tail_quantile(STREAMED_QUANTILES[2]),
        ]
    }

    /// The column's summary: mean, sd (n − 1 in the denominator) and quantiles, without the
    /// Markov-chain statistics; `None` without draws or with a non-finite one.
    pub fn summary(&self) -> Option<ColumnSummary> {
        if self.count == 0 || self.non_finite > 0 {
            return None;
        }
        let [q5, q50, q95] = self.quantiles();
        Some(ColumnSummary {
            mean: self.mean,
            mcse_mean: None,
            sd: (self.count > 1).then(|| (self.squares / (self.count - 1) as f64).sqrt()),
            mcse_sd: None,
            mcse_quantiles: [None; 3],
            q5,
            q50,
            q95,
            ess_bulk: None,
            ess_tail: None,
            r_hat: None,
        })
    }
}

/// Running statistics of every column of row-major chunks of draws.
#[derive(Clone, Debug)]
pub struct StreamingSummary {
    columns: Vec<StreamingColumn>,
}

impl StreamingSummary {
    /// Statistics of `n_columns` columns of at most `planned` draws each, none seen yet.
    pub fn new(n_columns: usize, planned: usize) -> StreamingSummary {
        StreamingSummary {
            columns: vec![StreamingColumn::new(planned); n_columns],
        }
    }

    /// Takes a chunk of rows (`n_columns` values each, row after row), columns in parallel.
    pub fn push_rows(&mut self, rows: &[f64]) {
        use rayon::prelude::*;
        let n_columns = self.columns.len();
        if n_columns == 0 {
            return;
        }
        // Blocks of columns per task, so that a task's strided reads stay within few cache lines
        // of each row.
        let block = 256;
        self.columns
            .par_chunks_mut(block)
            .enumerate()
            .for_each(|(index, columns)| {
                let start = index * block;
                for row in rows.chunks_exact(n_columns) {
                    for (column, value) in columns.iter_mut().zip(&row[start..]) {
                        column.push(*value);
                    }
                }
            });
    }

    /// Each column's summary (`None` where it is undefined).
    pub fn summaries(&self) -> Vec<Option<ColumnSummary>> {
        self.columns.iter().map(StreamingColumn::summary).collect()
    }

    /// The number of columns.
    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// Each column's count of draws that were not finite.
    pub fn non_finite(&self) -> Vec<usize> {
        self.columns
            .iter()
            .map(StreamingColumn::non_finite)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;
    use rand_distr::{Distribution, StandardNormal};

    /// The standard normal density, for the quantiles' sampling standard errors.
    fn normal_density(x: f64) -> f64 {
        (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    }

    /// Mean and sd agree with the two-pass values to rounding and the tails are exact; the P²
    /// median of 2,000 normal draws agrees with the exact sample median within half the median's
    /// sampling standard error σ √(p(1 − p)/n) / φ(z_p), so that the sketch adds at most about
    /// 12% to the median's total error (√(1 + 0.5²) ≈ 1.12), and with the true median within 4
    /// standard errors.
    #[test]
    fn streamed_statistics_match_the_exact_ones() {
        let mut rng = stream_rng(11, 0);
        let n = 2000;
        let values: Vec<f64> = (0..n)
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                2.0 + 3.0 * e
            })
            .collect();
        let mut summary = StreamingSummary::new(1, n);
        for chunk in values.chunks(64) {
            summary.push_rows(chunk);
        }
        let streamed = summary.summaries()[0].clone().expect("a summary");
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        assert!((streamed.mean - mean).abs() < 1e-12 * mean.abs().max(1.0));
        assert!((streamed.sd.expect("an sd") - sd).abs() < 1e-12 * sd);
        let true_quantiles = [-1.6448536269514722, 0.0, 1.6448536269514722];
        for ((prob, estimate), z) in STREAMED_QUANTILES
            .iter()
            .zip([streamed.q5, streamed.q50, streamed.q95])
            .zip(true_quantiles)
        {
            let standard_error = 3.0 * (prob * (1.0 - prob) / n as f64).sqrt() / normal_density(z);
            let exact = quantile(&values, *prob);
            if *prob != 0.5 {
                assert_eq!(estimate.to_bits(), exact.to_bits(), "p = {prob}");
            }
            assert!(
                (estimate - exact).abs() < 0.5 * standard_error,
                "p = {prob}: P² {estimate}, exact {exact}, se {standard_error}"
            );
            assert!(
                (estimate - (2.0 + 3.0 * z)).abs() < 4.0 * standard_error,
                "p = {prob}: P² {estimate}, true {}",
                2.0 + 3.0 * z
            );
        }
    }

    /// With five draws or fewer the quantiles are the exact ones; a non-finite draw makes the
    /// summary undefined; columns of a row-major chunk stay apart.
    #[test]
    fn few_draws_non_finite_draws_and_columns() {
        let mut summary = StreamingSummary::new(2, 3);
        summary.push_rows(&[1.0, 10.0, 3.0, 30.0, 2.0, f64::NAN]);
        let summaries = summary.summaries();
        let first = summaries[0].clone().expect("a summary");
        assert_eq!(first.mean, 2.0);
        assert_eq!(first.q50, quantile(&[1.0, 3.0, 2.0], 0.5));
        assert_eq!(first.q5, quantile(&[1.0, 3.0, 2.0], 0.05));
        assert!(summaries[1].is_none());
        assert_eq!(summary.non_finite(), vec![0, 1]);
    }
}
