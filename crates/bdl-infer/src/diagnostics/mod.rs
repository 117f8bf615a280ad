//! Convergence diagnostics of Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021), computed as
//! Stan 2.36 and ArviZ compute them, and the summary table built from them.
//!
//! Every function takes one scalar quantity as one slice of draws per chain. Chains of unequal
//! length are cut to the shortest. Chains are split in halves (the middle draw of an odd-length
//! chain is dropped) so that trends within a chain show up as disagreement between chains.
//!
//! - R-hat is the larger of the split R-hat of the rank-normalised draws (bulk) and of the
//!   rank-normalised absolute deviations from the median (tails).
//! - Bulk ESS is the ESS of the rank-normalised split chains; tail ESS is the smaller ESS of the
//!   indicators x ≤ q₅% and x ≤ q₉₅%.
//! - ESS uses the autocorrelations ρ̂ₜ = 1 − (W − mean γ̂ₜ) / var⁺ truncated by Geyer's initial
//!   positive sequence and made monotone; τ̂ = −1 + 2 Σ ρ̂ₜ is bounded below by 1 / log₁₀(N).
//! - MCSE of the mean is sd / √ESS_mean; MCSE of the sd follows from the variance of the squared
//!   deviations by the delta method, as ArviZ does.
//! - MCSE of the quantile q_p follows ArviZ's `_mcse_quantile`: with E the ESS of the split
//!   indicator chains x ≤ q_p, the 15.87% and 84.13% quantiles a, b of Beta(E p + 1, E (1 − p) + 1)
//!   are mapped to the sorted pooled draws x₍ᵢ₎ at i = ⌊max(a N − 1, 0)⌋ and
//!   j = ⌈min(b N − 1, N − 1)⌉ (from 0), and the MCSE is (x₍ⱼ₎ − x₍ᵢ₎) / 2.
//!
//! Functions return `None` when the value is undefined: fewer than 4 draws per chain, non-finite
//! draws, or (for R-hat) draws that do not vary. Unlike ArviZ, R-hat is defined for a single
//! chain (through its two halves), as in Stan.

mod autocovariance;
pub mod loo;
pub mod metrics;
pub mod psis;
pub mod streaming;
mod summary;

pub use summary::{
    e_bfmi, ColumnSummary, SamplerDiagnostics, Summary, Warning, ESS_LIMIT, E_BFMI_LIMIT,
    R_HAT_LIMIT,
};

use autocovariance::MeanAutocovariance;

/// Draws of one quantity: `n_chains` rows of `n_draws`, row after row.
#[derive(Clone, Debug)]
struct ChainMatrix {
    n_chains: usize,
    n_draws: usize,
    values: Vec<f64>,
}

impl ChainMatrix {
    /// The chains cut to the shortest; `None` when that leaves fewer than 4 draws per chain or a
    /// draw is not finite.
    fn new(chains: &[&[f64]]) -> Option<ChainMatrix> {
        let n_draws = chains.iter().map(|c| c.len()).min()?;
        if n_draws < 4 {
            return None;
        }
        let mut values = Vec::with_capacity(n_draws * chains.len());
        for chain in chains {
            values.extend_from_slice(&chain[..n_draws]);
        }
        if values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Some(ChainMatrix {
            n_chains: chains.len(),
            n_draws,
            values,
        })
    }

    fn rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.values.chunks_exact(self.n_draws)
    }

    /// Each chain cut into its first and last halves, as separate chains.
    fn split(&self) -> ChainMatrix {
        let half = self.n_draws / 2;
        let mut values = Vec::with_capacity(2 * half * self.n_chains);
        for row in self.rows() {
            values.extend_from_slice(&row[..half]);
        }
        for row in self.rows() {
            values.extend_from_slice(&row[self.n_draws - half..]);
        }
        ChainMatrix {
            n_chains: 2 * self.n_chains,
            n_draws: half,
            values,
        }
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> ChainMatrix {
        ChainMatrix {
            n_chains: self.n_chains,
            n_draws: self.n_draws,
            values: self.values.iter().map(|v| f(*v)).collect(),
        }
    }

    fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// Rank normalisation: average ranks r over all draws, then Φ⁻¹((r − 3/8) / (N + 1/4)).
    fn z_scale(&self) -> ChainMatrix {
        let ranks = average_ranks(&self.values);
        let size = self.values.len() as f64;
        ChainMatrix {
            n_chains: self.n_chains,
            n_draws: self.n_draws,
            values: ranks
                .iter()
                .map(|r| normal_quantile((r - 0.375) / (size - 0.75 + 1.0)))
                .collect(),
        }
    }
}

/// Ranks from 1, ties sharing the average of their ranks.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean is (start + 1 + end) / 2.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// The standard normal quantile function Φ⁻¹(p) = −√2 erfc⁻¹(2p).
fn normal_quantile(p: f64) -> f64 {
    -std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * p)
}

/// The sample variance with n − 1 in the denominator.
fn sample_variance(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
}

/// The quantile of type 7 of Hyndman and Fan (R's default, ArviZ's choice) of sorted values:
/// linear interpolation between order statistics at h = (n − 1) p. NaN when there are no values
/// or `prob` is NaN; probabilities outside [0, 1] give the extremes.
pub fn quantile_sorted(sorted: &[f64], prob: f64) -> f64 {
    let n = sorted.len();
    if n == 0 || prob.is_nan() {
        return f64::NAN;
    }
    if n == 1 {
        return sorted[0];
    }
    // The arithmetic follows SciPy's `mquantiles` with α = β = 1 so that the values agree bit for
    // bit: m = 1 − p, aleph = n p + m, k = ⌊clip(aleph, 1, n − 1)⌋, γ = clip(aleph − k, 0, 1).
    let (alpha, beta) = (1.0, 1.0);
    let m = alpha + prob * (1.0 - alpha - beta);
    let aleph = n as f64 * prob + m;
    let k = aleph.clamp(1.0, (n - 1) as f64).floor();
    let gamma = (aleph - k).clamp(0.0, 1.0);
    let k = k as usize;
    (1.0 - gamma) * sorted[k - 1] + gamma * sorted[k]
}

/// The type-7 quantile of unsorted values (NaN when there are none or `prob` is NaN;
/// probabilities outside [0, 1] give the extremes).
pub fn quantile(values: &[f64], prob: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, prob)
}

/// The median as NumPy computes it: the mean of the two middle values for an even count.
fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The ESS of already split (and possibly transformed) chains.
fn ess_of(matrix: &ChainMatrix) -> f64 {
    let (n_chains, n_draws) = (matrix.n_chains, matrix.n_draws);
    let size = (n_chains * n_draws) as f64;
    let (min, max) = matrix
        .values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    // Draws that do not vary carry as much information as independent ones (ArviZ's choice).
    if max - min < 1e-15 {
        return size;
    }
    let n = n_draws as f64;
    let mut autocovariance = MeanAutocovariance::new(&matrix.values, n_chains, n_draws);
    let chain_means: Vec<f64> = matrix
        .rows()
        .map(|row| row.iter().sum::<f64>() / n)
        .collect();
    // W: the mean within-chain variance; var⁺ adds the between-chain variance.
    let mean_var = autocovariance.at(0) * n / (n - 1.0);
    let mut var_plus = mean_var * (n - 1.0) / n;
    if n_chains > 1 {
        var_plus += sample_variance(&chain_means);
    }

    let mut rho = vec![0.0; n_draws];
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = 1.0 - (mean_var - autocovariance.at(1)) / var_plus;
    rho[1] = rho_odd;

    // Geyer's initial positive sequence: sum pairs while their sum stays positive.
    let last = n_draws as isize - 3;
    let mut t: isize = 1;
    while t < last && rho_even + rho_odd > 0.0 {
        let lag = t as usize;
        rho_even = 1.0 - (mean_var - autocovariance.at(lag + 1)) / var_plus;
        rho_odd = 1.0 - (mean_var - autocovariance.at(lag + 2)) / var_plus;
        if rho_even + rho_odd >= 0.0 {
            rho[lag + 1] = rho_even;
            rho[lag + 2] = rho_odd;
        }
        t += 2;
    }
    let max_t = t - 2;
    // The last even autocorrelation is kept when positive.
    if rho_even > 0.0 {
        rho[(max_t + 1) as usize] = rho_even;
    }

    // Geyer's initial monotone sequence: pair sums may not increase.
    let mut t: isize = 1;
    while t <= max_t - 2 {
        let lag = t as usize;
        if rho[lag + 1] + rho[lag + 2] > rho[lag - 1] + rho[lag] {
            rho[lag + 1] = (rho[lag - 1] + rho[lag]) / 2.0;
            rho[lag + 2] = rho[lag + 1];
        }
        t += 2;
    }

    let head: f64 = rho[..(max_t + 1) as usize].iter().sum();
    let tail = rho.get((max_t + 1) as usize).copied().unwrap_or(0.0);
    let tau = (-1.0 + 2.0 * head + tail).max(1.0 / size.log10());
    size / tau
}

/// The split R-hat of already split (and possibly transformed) chains.
fn rhat_of(matrix: &ChainMatrix) -> f64 {
    let n = matrix.n_draws as f64;
    let chain_means: Vec<f64> = matrix
        .rows()
        .map(|row| row.iter().sum::<f64>() / n)
        .collect();
    let within = matrix.rows().map(sample_variance).sum::<f64>() / matrix.n_chains as f64;
    let between = n * sample_variance(&chain_means);
    ((between / within + n - 1.0) / n).sqrt()
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

fn sorted_values(matrix: &ChainMatrix) -> Vec<f64> {
    let mut sorted = matrix.values.clone();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// Rank-normalised split R-hat: the larger of the bulk and folded (tail) values.
pub fn rhat(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    rhat_with_median(&matrix, median_sorted(&sorted_values(&matrix)))
}

fn rhat_with_median(matrix: &ChainMatrix, median: f64) -> Option<f64> {
    let bulk = rhat_of(&matrix.split().z_scale());
    let folded = rhat_of(&matrix.map(|x| (x - median).abs()).split().z_scale());
    Some(finite(bulk)?.max(finite(folded)?))
}

/// Bulk ESS: the ESS of the rank-normalised split chains.
pub fn ess_bulk(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    finite(ess_of(&matrix.split().z_scale()))
}

/// Tail ESS: the smaller of the ESS of the 5% and 95% quantile indicators.
pub fn ess_tail(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    ess_tail_with_sorted(&matrix, &sorted_values(&matrix))
}

fn ess_tail_with_sorted(matrix: &ChainMatrix, sorted: &[f64]) -> Option<f64> {
    let low = ess_quantile_with_sorted(matrix, sorted, 0.05)?;
    let high = ess_quantile_with_sorted(matrix, sorted, 0.95)?;
    Some(low.min(high))
}

/// The ESS for the quantile `prob`: the ESS of the split indicator chains x ≤ q.
pub fn ess_quantile(chains: &[&[f64]], prob: f64) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    ess_quantile_with_sorted(&matrix, &sorted_values(&matrix), prob)
}

fn ess_quantile_with_sorted(matrix: &ChainMatrix, sorted: &[f64], prob: f64) -> Option<f64> {
    let q = quantile_sorted(sorted, prob);
    finite(ess_of(
        &matrix.map(|x| if x <= q { 1.0 } else { 0.0 }).split(),
    ))
}

/// The ESS for the mean: the ESS of the split chains as they are.
pub fn ess_mean(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    finite(ess_of(&matrix.split()))
}

/// The ESS for the sd: the ESS of the split squared deviations from the mean.
pub fn ess_sd(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    let mean = matrix.mean();
    finite(ess_of(&matrix.map(|x| (x - mean) * (x - mean)).split()))
}

/// The Monte Carlo standard error of the mean: sd / √ESS_mean.
pub fn mcse_mean(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    mcse_mean_of(&matrix)
}

fn mcse_mean_of(matrix: &ChainMatrix) -> Option<f64> {
    let ess = ess_of(&matrix.split());
    finite((sample_variance(&matrix.values) / ess).sqrt())
}

/// The Monte Carlo standard error of the sd, by the delta method as ArviZ computes it: with
/// d = (x − x̄)², Var(sd) ≈ (mean(d²) − mean(d)²) / ESS_mean(d) / (4 mean(d)).
pub fn mcse_sd(chains: &[&[f64]]) -> Option<f64> {
    let matrix = ChainMatrix::new(chains)?;
    mcse_sd_of(&matrix)
}

fn mcse_sd_of(matrix: &ChainMatrix) -> Option<f64> {
    let mean = matrix.mean();
    let squared = matrix.map(|x| (x - mean) * (x - mean));
    let size = squared.values.len() as f64;
    let expected_variance = squared.values.iter().sum::<f64>() / size;
    let ess = ess_of(&squared.split());
    let mean_fourth = squared.values.iter().map(|d| d * d).sum::<f64>() / size;
    let variance_of_variance = (mean_fourth - expected_variance * expected_variance) / ess;
    finite((variance_of_variance / expected_variance / 4.0).sqrt())
}

/// The Monte Carlo standard error of the quantile `prob` (in [0, 1]), as ArviZ's
/// `_mcse_quantile` computes it: half the width of the ±1 sd interval of the quantile's
/// probability, from the Beta posterior of that probability given the indicator ESS, mapped back
/// through the sorted draws.
pub fn mcse_quantile(chains: &[&[f64]], prob: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&prob) {
        return None;
    }
    let matrix = ChainMatrix::new(chains)?;
    mcse_quantile_with_sorted(&matrix, &sorted_values(&matrix), prob)
}

fn mcse_quantile_with_sorted(matrix: &ChainMatrix, sorted: &[f64], prob: f64) -> Option<f64> {
    let ess = ess_quantile_with_sorted(matrix, sorted, prob)?;
    let (a, b) = (ess * prob + 1.0, ess * (1.0 - prob) + 1.0);
    // Φ(−1) and Φ(1) as ArviZ writes them.
    let low = beta_quantile(0.1586553, a, b);
    let high = beta_quantile(0.8413447, a, b);
    let size = sorted.len();
    let last = (size - 1) as f64;
    let i = (low * size as f64 - 1.0).max(0.0).floor();
    let j = (high * size as f64 - 1.0).min(last).ceil();
    finite((sorted[j as usize] - sorted[i as usize]) / 2.0)
}

/// The quantile function of the Beta(a, b) distribution (a, b > 0) at `p` in (0, 1), by
/// bisection on the regularised incomplete beta function down to adjacent floating-point values.
fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if statrs::function::beta::beta_reg(a, b, mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Everything the summary table needs for one quantity, sharing the sort and the split.
pub(crate) struct QuantityDiagnostics {
    pub(crate) mean: f64,
    pub(crate) sd: Option<f64>,
    pub(crate) quantiles: [f64; 3],
    pub(crate) mcse_mean: Option<f64>,
    pub(crate) mcse_sd: Option<f64>,
    /// MCSE of the 5%, 50% and 95% quantiles.
    pub(crate) mcse_quantiles: [Option<f64>; 3],
    pub(crate) ess_bulk: Option<f64>,
    pub(crate) ess_tail: Option<f64>,
    pub(crate) r_hat: Option<f64>,
}

/// Mean, sd and the 5%, 50%, 95% quantiles of any draws (at least one); the convergence
/// diagnostics when there are at least 4 finite draws per chain.
pub(crate) fn quantity_diagnostics(chains: &[&[f64]]) -> Option<QuantityDiagnostics> {
    let n_draws = chains.iter().map(|c| c.len()).min()?;
    let pooled: Vec<f64> = chains
        .iter()
        .flat_map(|c| c[..n_draws].iter().copied())
        .collect();
    if pooled.is_empty() {
        return None;
    }
    let mut sorted = pooled.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = pooled.iter().sum::<f64>() / pooled.len() as f64;
    let sd = if pooled.len() > 1 {
        finite(sample_variance(&pooled).sqrt())
    } else {
        None
    };
    let quantiles = [0.05, 0.5, 0.95].map(|p| quantile_sorted(&sorted, p));
    let mut result = QuantityDiagnostics {
        mean,
        sd,
        quantiles,
        mcse_mean: None,
        mcse_sd: None,
        mcse_quantiles: [None; 3],
        ess_bulk: None,
        ess_tail: None,
        r_hat: None,
    };
    if let Some(matrix) = ChainMatrix::new(chains) {
        result.mcse_mean = mcse_mean_of(&matrix);
        result.mcse_sd = mcse_sd_of(&matrix);
        result.mcse_quantiles =
            [0.05, 0.5, 0.95].map(|p| mcse_quantile_with_sorted(&matrix, &sorted, p));
        result.ess_bulk = finite(ess_of(&matrix.split().z_scale()));
        result.ess_tail = ess_tail_with_sorted(&matrix, &sorted);
        result.r_hat = rhat_with_median(&matrix, median_sorted(&sorted));
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn quantiles_are_type_seven() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(quantile_sorted(&sorted, 0.5), 3.0);
        assert!((quantile_sorted(&sorted, 0.9) - 7.6).abs() < 1e-12);
        assert_eq!(quantile_sorted(&sorted, 0.0), 1.0);
        assert_eq!(quantile_sorted(&sorted, 1.0), 10.0);
    }

    #[test]
    fn normal_quantile_is_accurate() {
        assert!(normal_quantile(0.5).abs() < 1e-15);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-14);
        assert!((normal_quantile(1e-10) + 6.361340902404056).abs() < 1e-12);
    }

    #[test]
    fn too_few_or_bad_draws_are_undefined() {
        assert_eq!(rhat(&[&[1.0, 2.0, 3.0]]), None);
        assert_eq!(ess_bulk(&[&[1.0, 2.0, f64::NAN, 4.0, 5.0]]), None);
        // Constant draws: no R-hat, and the ESS of constant indicators is the number of draws.
        let constant = [2.0; 10];
        assert_eq!(rhat(&[&constant, &constant]), None);
        assert_eq!(ess_tail(&[&constant, &constant]), Some(20.0));
        assert_eq!(mcse_quantile(&[&constant, &constant], 0.5), Some(0.0));
        assert_eq!(mcse_quantile(&[&[1.0, 2.0, 3.0, 4.0]], 1.5), None);
        assert_eq!(mcse_quantile(&[&[1.0, 2.0, 3.0]], 0.5), None);
    }

    #[test]
    fn beta_quantile_inverts_the_cdf() {
        // Beta(1, 1) is uniform; Beta(2, 1) has cdf x², so its quantile is √p.
        assert!((beta_quantile(0.3, 1.0, 1.0) - 0.3).abs() < 1e-14);
        assert!((beta_quantile(0.5, 2.0, 1.0) - 0.5_f64.sqrt()).abs() < 1e-14);
        let x = beta_quantile(0.8413447, 40.5, 7.25);
        assert!((statrs::function::beta::beta_reg(40.5, 7.25, x) - 0.8413447).abs() < 1e-13);
    }
}
