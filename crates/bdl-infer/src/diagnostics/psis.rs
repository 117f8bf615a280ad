//! Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao and Gabry, 2015/2024) and
//! its shape estimate k̂, the diagnostic of Yao, Vehtari, Simpson and Gelman (2018) for a fitted
//! variational approximation.
//!
//! Given S log importance ratios log rₛ = log p(x, zₛ) − log q(zₛ) on draws zₛ ~ q, the largest
//! M = ⌈min(S / 5, 3 √S)⌉ ratios are fitted by a generalized Pareto distribution above the
//! cut-off (the (M + 1)-th largest ratio), using the estimator of Zhang and Stephens (2009) with
//! the weakly informative prior on k of Vehtari et al. (k̂ ← (M k̂ + 5) / (M + 10)). The tail
//! ratios are replaced by the fitted distribution's expected order statistics, the smoothed
//! ratios are truncated at the largest raw ratio, and the result is normalised. k̂ below 0.5
//! means the importance weights have finite variance; up to 0.7 the estimate is still usable;
//! above 0.7 the approximation q is too far from the posterior for the weights, or for q itself,
//! to be trusted.
//!
//! The computation follows ArviZ's `psislw` (with relative efficiency 1) step by step, and is
//! checked against it on fixed inputs (`scripts/psis_reference.py`).

/// The k̂ above which the importance weights, and the approximation behind them, are
/// unreliable.
pub const PARETO_K_LIMIT: f64 = 0.7;

/// Smoothed log weights and the tail shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Psis {
    /// Normalised smoothed log weights (their exponentials sum to 1).
    pub log_weights: Vec<f64>,
    /// The generalized Pareto shape k̂ (infinite when the tail has 4 or fewer draws).
    pub pareto_k: f64,
}

impl Psis {
    /// The effective sample size of the normalised weights, 1 / Σ wₛ².
    pub fn effective_sample_size(&self) -> f64 {
        1.0 / self
            .log_weights
            .iter()
            .map(|lw| (2.0 * lw).exp())
            .sum::<f64>()
    }
}

/// log Σ exp(xᵢ), stable.
pub fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Pareto-smoothed importance sampling of the log ratios `log_ratios`. A ratio of −∞ (a draw
/// where the target density is zero) keeps weight zero; `None` for fewer than 2 ratios, a NaN
/// or +∞ ratio, or no finite ratio.
pub fn psis(log_ratios: &[f64]) -> Option<Psis> {
    psis_with_efficiency(log_ratios, 1.0)
}

/// [`psis`] for draws whose relative efficiency (ESS / number of draws) is `reff`: the tail
/// holds ⌈min(S / 5, 3 √(S / reff))⌉ ratios, as in ArviZ's `psislw(log_ratios, reff)`.
pub fn psis_with_efficiency(log_ratios: &[f64], reff: f64) -> Option<Psis> {
    let n = log_ratios.len();
    if n < 2
        || log_ratios.iter().any(|v| v.is_nan() || *v == f64::INFINITY)
        || log_ratios.iter().all(|v| !v.is_finite())
    {
        return None;
    }
    let max = log_ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut x: Vec<f64> = log_ratios.iter().map(|v| v - max).collect();
    let tail_size = (0.2 * n as f64).min(3.0 * (n as f64 / reff).sqrt()).ceil() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    // The cut-off is the (tail_size + 1)-th largest ratio, kept above the smallest normal f64.
    let cutoff_index = n.saturating_sub(tail_size + 1);
    let cutoff = x[order[cutoff_index]].max(f64::MIN_POSITIVE.ln());
    let exp_cutoff = cutoff.exp();
    // The tail: every ratio strictly above the cut-off, in increasing order.
    let tail: Vec<usize> = order.iter().copied().filter(|&i| x[i] > cutoff).collect();
    let pareto_k = if tail.len() <= 4 {
        f64::INFINITY
    } else {
        let excess: Vec<f64> = tail.iter().map(|&i| x[i].exp() - exp_cutoff).collect();
        let (k, sigma) = generalized_pareto_fit(&excess);
        if k.is_finite() {
            let m = tail.len() as f64;
            for (rank, &i) in tail.iter().enumerate() {
                let probability = (rank as f64 + 0.5) / m;
                let smoothed = generalized_pareto_quantile(probability, k, sigma);
                x[i] = (smoothed + exp_cutoff).ln();
            }
            for v in x.iter_mut() {
                if *v > 0.0 {
                    *v = 0.0;
                }
            }
        }
        k
    };
    let normaliser = log_sum_exp(&x);
    for v in x.iter_mut() {
        *v -= normaliser;
    }
    Some(Psis {
        log_weights: x,
        pareto_k,
    })
}

/// The generalized Pareto fit of Zhang and Stephens (2009) to the increasing exceedances
/// `sorted`, with Vehtari et al.'s weak prior on k: returns (k̂, σ̂).
pub fn generalized_pareto_fit(sorted: &[f64]) -> (f64, f64) {
    const PRIOR_B: f64 = 3.0;
    const PRIOR_K: f64 = 10.0;
    let n = sorted.len();
    let nf = n as f64;
    let m = 30 + (nf.sqrt()) as usize;
    let quartile = sorted[((nf / 4.0 + 0.5) as usize).max(1) - 1];
    let largest = sorted[n - 1];
    let mut b: Vec<f64> = (1..=m)
        .map(|j| {
            let value = 1.0 - (m as f64 / (j as f64 - 0.5)).sqrt();
            value / (PRIOR_B * quartile) + 1.0 / largest
        })
        .collect();
    let k_of = |b: f64| sorted.iter().map(|x| (-b * x).ln_1p()).sum::<f64>() / nf;
    let k: Vec<f64> = b.iter().map(|&b| k_of(b)).collect();
    let profile: Vec<f64> = b
        .iter()
        .zip(&k)
        .map(|(b, k)| nf * ((-(b / k)).ln() - k - 1.0))
        .collect();
    let mut weights: Vec<f64> = profile
        .iter()
        .map(|li| 1.0 / profile.iter().map(|lj| (lj - li).exp()).sum::<f64>())
        .collect();
    let keep: Vec<bool> = weights.iter().map(|w| *w >= 10.0 * f64::EPSILON).collect();
    if keep.iter().any(|k| !k) {
        let mut kept_b = Vec::new();
        let mut kept_w = Vec::new();
        for ((b, w), keep) in b.iter().zip(&weights).zip(&keep) {
            if *keep {
                kept_b.push(*b);
                kept_w.push(*w);
            }
        }
        b = kept_b;
        weights = kept_w;
    }
    let total: f64 = weights.iter().sum();
    let b_post: f64 = b.iter().zip(&weights).map(|(b, w)| b * w / total).sum();
    let k_post = k_of(b_post);
    let sigma = -k_post / b_post;
    let k_post = (nf * k_post + PRIOR_K * 0.5) / (nf + PRIOR_K);
    (k_post, sigma)
}

/// The quantile at `probability` of the generalized Pareto distribution with shape k and scale
/// σ (location 0): σ ((1 − p)^(−k) − 1) / k, or −σ log(1 − p) for k = 0.
pub fn generalized_pareto_quantile(probability: f64, k: f64, sigma: f64) -> f64 {
    if sigma <= 0.0 || !(probability > 0.0 && probability < 1.0) {
        return f64::NAN;
    }
    if k.abs() < f64::EPSILON {
        -sigma * (-probability).ln_1p()
    } else {
        sigma * (-k * (-probability).ln_1p()).exp_m1() / k
    }
}

/// Draws `n` indices with replacement in proportion to `exp(log_weights)` (normalised), by
/// systematic resampling from the single uniform `u` in [0, 1): each index i appears
/// ⌊n wᵢ⌋ or ⌈n wᵢ⌉ times.
pub fn systematic_resample(log_weights: &[f64], n: usize, u: f64) -> Vec<usize> {
    let normaliser = log_sum_exp(log_weights);
    let mut indices = Vec::with_capacity(n);
    let mut cumulative = 0.0;
    let mut i = 0;
    for j in 0..n {
        let target = (j as f64 + u) / n as f64;
        while i < log_weights.len() - 1
            && cumulative + (log_weights[i] - normaliser).exp() <= target
        {
            cumulative += (log_weights[i] - normaliser).exp();
            i += 1;
        }
        indices.push(i);
    }
    indices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_ratios_give_uniform_weights() {
        let result = psis(&[0.5; 100]).unwrap();
        // Every ratio equals the cut-off, so no tail exists and k̂ is infinite, as in ArviZ.
        assert_eq!(result.pareto_k, f64::INFINITY);
        for lw in &result.log_weights {
            assert!((lw + (100f64).ln()).abs() < 1e-12);
        }
        assert!((result.effective_sample_size() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_quantile_inverts_the_distribution_function() {
        for &(k, sigma) in &[(0.3, 2.0), (-0.2, 1.0), (0.0, 1.5)] {
            for &p in &[0.1, 0.5, 0.9] {
                let x = generalized_pareto_quantile(p, k, sigma);
                let cdf = if k == 0.0 {
                    1.0 - (-x / sigma).exp()
                } else {
                    1.0 - (1.0 + k * x / sigma).powf(-1.0 / k)
                };
                assert!((cdf - p).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn systematic_resampling_follows_the_weights() {
        let log_weights = [0.7f64.ln(), 0.2f64.ln(), 0.1f64.ln()];
        let indices = systematic_resample(&log_weights, 10, 0.5);
        let counts: Vec<usize> = (0..3)
            .map(|i| indices.iter().filter(|&&j| j == i).count())
            .collect();
        assert_eq!(counts, vec![7, 2, 1]);
        assert!(psis(&[1.0]).is_none());
        assert!(psis(&[1.0, f64::NAN]).is_none());
    }
}
