//! Predictive accuracy from a pointwise log-likelihood: PSIS-LOO (Vehtari, Gelman and Gabry,
//! 2017), WAIC (Watanabe, 2010) and the comparison of models by their expected log pointwise
//! predictive density (elpd), with stacking and pseudo-BMA weights (Yao, Vehtari, Simpson and
//! Gelman, 2018).
//!
//! The input is a log-likelihood matrix: for each observation i, log p(yᵢ | θₛ) at every
//! posterior draw s (chains one after another, as ArviZ stacks `chain` and `draw`).
//!
//! - PSIS-LOO smooths the importance ratios rₛ = 1 / p(yᵢ | θₛ) of each observation (see
//!   [`super::psis`]) and estimates elpdᵢ = log Σₛ wₛ p(yᵢ | θₛ) with the normalised smoothed
//!   weights; p_loo = lppd − elpd_loo, where lppd = Σᵢ log (1/S Σₛ p(yᵢ | θₛ)). The shape k̂ of
//!   each observation's tail says whether its estimate can be trusted: above
//!   min(1 − 1 / log₁₀ S, 0.7) it cannot.
//! - WAIC: elpdᵢ = log (1/S Σₛ p(yᵢ | θₛ)) − Varₛ log p(yᵢ | θₛ) (the variance with divisor S),
//!   p_waic = Σᵢ Varₛ log p(yᵢ | θₛ); a variance above 0.4 is a warning.
//! - The standard error of a sum of pointwise values is √(n Var(pointwiseᵢ)) (divisor n).
//! - Comparison: models ranked by elpd, each one's elpd_diff = Σᵢ (elpdᵢ(best) − elpdᵢ(model))
//!   with its SE √(n Var(differenceᵢ)); stacking weights maximise Σᵢ log Σₖ wₖ exp(elpdᵢₖ) over the
//!   simplex; pseudo-BMA weights are exp(elpdₖ) normalised; pseudo-BMA+ weights average the
//!   pseudo-BMA weights of Bayesian-bootstrap replicates of the pointwise values
//!   (zₖ = n Σᵢ αᵢ elpdᵢₖ with α ~ Dirichlet(1, …, 1)), whose standard deviation is each model's SE.
//!
//! Every number follows ArviZ 0.23's `loo`, `waic` and `compare` (scale "log") step by step,
//! and `tests/loo_arviz.rs` checks them against ArviZ on committed matrices
//! (`scripts/loo_reference.py`). Where ArviZ stops early the answers differ by design: its
//! stacking weights come from SLSQP at its default tolerance (off the optimum by up to about
//! 1e-4); here an active-set Newton method solves the same concave problem to 1e-12.

use super::psis::{log_sum_exp, psis_with_efficiency};
use crate::rng::Rng;
use rand_distr::{Distribution, Exp1};
use std::fmt;

/// Why an information criterion cannot be computed.
#[derive(Clone, Debug, PartialEq)]
pub enum LooError {
    /// No observation, or no draw.
    Empty,
    /// Fewer than two draws (a point estimate has no posterior spread to cross-validate with).
    TooFewDraws {
        /// The number of draws.
        draws: usize,
    },
    /// Observations with different numbers of draws.
    Ragged {
        /// The observation (0-based) whose draw count differs.
        observation: usize,
        /// Its number of draws.
        draws: usize,
        /// The first observation's number of draws.
        expected: usize,
    },
    /// A log-likelihood that is NaN or +∞, or −∞ at every draw.
    NotFinite {
        /// The observation (0-based).
        observation: usize,
    },
    /// Models compared over different numbers of observations.
    DifferentObservations {
        /// The number of observations of each model, in the order given.
        counts: Vec<usize>,
    },
}

impl fmt::Display for LooError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LooError::Empty => write!(f, "the log-likelihood has no observation or no draw"),
            LooError::TooFewDraws { draws } => write!(
                f,
                "the log-likelihood has {draws} draw; PSIS-LOO and WAIC need posterior draws (at least 2)"
            ),
            LooError::Ragged {
                observation,
                draws,
                expected,
            } => write!(
                f,
                "observation {} has {draws} log-likelihood draws, the first has {expected}",
                observation + 1
            ),
            LooError::NotFinite { observation } => write!(
                f,
                "the log-likelihood of observation {} is NaN, +inf, or -inf at every draw",
                observation + 1
            ),
            LooError::DifferentObservations { counts } => {
                let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
                write!(
                    f,
                    "the models have different numbers of observations ({}); models are compared on the same data",
                    counts.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for LooError {}

/// Which criterion an [`Elpd`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// Pareto-smoothed importance-sampling leave-one-out cross-validation.
    Loo,
    /// The widely applicable information criterion.
    Waic,
}

impl Criterion {
    /// `loo` or `waic`.
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Loo => "loo",
            Criterion::Waic => "waic",
        }
    }
}

/// An estimate of the expected log pointwise predictive density.
#[derive(Clone, Debug, PartialEq)]
pub struct Elpd {
    /// LOO or WAIC.
    pub criterion: Criterion,
    /// The estimate, Σᵢ elpdᵢ.
    pub elpd: f64,
    /// Its standard error.
    pub se: f64,
    /// The effective number of parameters (p_loo or p_waic).
    pub p: f64,
    /// elpdᵢ per observation.
    pub pointwise: Vec<f64>,
    /// PSIS-LOO's k̂ per observation (empty for WAIC).
    pub pareto_k: Vec<f64>,
    /// The k̂ above which an observation's estimate is unreliable, min(1 − 1 / log₁₀ S, 0.7).
    pub good_k: f64,
    /// Whether some observation breaks the criterion's limit (k̂ above `good_k`, or a WAIC
    /// variance above 0.4).
    pub warning: bool,
    /// The number of draws S.
    pub n_draws: usize,
}

impl Elpd {
    /// The observations (0-based) whose k̂ is above `good_k`.
    pub fn bad_observations(&self) -> Vec<usize> {
        self.pareto_k
            .iter()
            .enumerate()
            .filter(|(_, k)| **k > self.good_k)
            .map(|(i, _)| i)
            .collect()
    }
}

/// The largest k̂ for which PSIS-LOO's estimate of one observation is trusted with `n_draws`
/// draws: min(1 − 1 / log₁₀ S, 0.7).
pub fn good_k(n_draws: usize) -> f64 {
    (1.0 - 1.0 / (n_draws as f64).log10()).min(0.7)
}

/// The relative efficiency of posterior draws as ArviZ's `loo` estimates it: the mean, over
/// every scalar quantity, of its ESS of the mean, divided by the number of draws; 1 for a single
/// chain or when no quantity has an ESS. `quantities[q]` holds quantity q's draws, one slice
/// per chain.
pub fn relative_efficiency(quantities: &[Vec<&[f64]>]) -> f64 {
    let Some(first) = quantities.first() else {
        return 1.0;
    };
    if first.len() <= 1 {
        return 1.0;
    }
    let n_draws: usize = first.iter().map(|chain| chain.len()).sum();
    let ess: Vec<f64> = quantities
        .iter()
        .filter_map(|chains| super::ess_mean(chains))
        .collect();
    if ess.is_empty() || n_draws == 0 {
        return 1.0;
    }
    ess.iter().sum::<f64>() / ess.len() as f64 / n_draws as f64
}

/// Checks the matrix's shape and values; returns the number of draws.
fn validate(log_lik: &[&[f64]]) -> Result<usize, LooError> {
    let first = log_lik.first().ok_or(LooError::Empty)?;
    let n_draws = first.len();
    if n_draws == 0 {
        return Err(LooError::Empty);
    }
    if n_draws < 2 {
        return Err(LooError::TooFewDraws { draws: n_draws });
    }
    for (observation, draws) in log_lik.iter().enumerate() {
        if draws.len() != n_draws {
            return Err(LooError::Ragged {
                observation,
                draws: draws.len(),
                expected: n_draws,
            });
        }
        if draws.iter().any(|v| v.is_nan() || *v == f64::INFINITY)
            || draws.iter().all(|v| *v == f64::NEG_INFINITY)
        {
            return Err(LooError::NotFinite { observation });
        }
    }
    Ok(n_draws)
}

/// √(n Var(values)), Var with divisor n: the standard error of Σ values.
fn sum_standard_error(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (n * variance).sqrt()
}

/// log (1/S Σₛ exp(valuesₛ)).
fn log_mean_exp(values: &[f64]) -> f64 {
    log_sum_exp(values) - (values.len() as f64).ln()
}

/// PSIS-LOO of the log-likelihood matrix `log_lik` (one slice of draws per observation) whose
/// draws have relative efficiency `reff` (see [`relative_efficiency`]).
pub fn loo(log_lik: &[&[f64]], reff: f64) -> Result<Elpd, LooError> {
    let n_draws = validate(log_lik)?;
    let mut pointwise = Vec::with_capacity(log_lik.len());
    let mut pareto_k = Vec::with_capacity(log_lik.len());
    let mut lppd = 0.0;
    let mut ratios = vec![0.0; n_draws];
    for (observation, draws) in log_lik.iter().enumerate() {
        for (ratio, value) in ratios.iter_mut().zip(draws.iter()) {
            *ratio = -value;
        }
        let smoothed =
            psis_with_efficiency(&ratios, reff).ok_or(LooError::NotFinite { observation })?;
        let weighted: Vec<f64> = smoothed
            .log_weights
            .iter()
            .zip(draws.iter())
            .map(|(w, v)| w + v)
            .collect();
        pointwise.push(log_sum_exp(&weighted));
        pareto_k.push(smoothed.pareto_k);
        lppd += log_mean_exp(draws);
    }
    let elpd: f64 = pointwise.iter().sum();
    let good_k = good_k(n_draws);
    Ok(Elpd {
        criterion: Criterion::Loo,
        elpd,
        se: sum_standard_error(&pointwise),
        p: lppd - elpd,
        warning: pareto_k.iter().any(|k| *k > good_k),
        pointwise,
        pareto_k,
        good_k,
        n_draws,
    })
}

/// The posterior variance of an observation's log predictive density above which WAIC warns.
pub const WAIC_VARIANCE_LIMIT: f64 = 0.4;

/// WAIC of the log-likelihood matrix `log_lik` (one slice of draws per observation).
pub fn waic(log_lik: &[&[f64]]) -> Result<Elpd, LooError> {
    let n_draws = validate(log_lik)?;
    let mut pointwise = Vec::with_capacity(log_lik.len());
    let mut p_waic = 0.0;
    let mut warning = false;
    for draws in log_lik {
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let variance = draws.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        warning |= variance > WAIC_VARIANCE_LIMIT;
        p_waic += variance;
        pointwise.push(log_mean_exp(draws) - variance);
    }
    Ok(Elpd {
        criterion: Criterion::Waic,
        elpd: pointwise.iter().sum(),
        se: sum_standard_error(&pointwise),
        p: p_waic,
        pointwise,
        pareto_k: Vec::new(),
        good_k: good_k(n_draws),
        warning,
        n_draws,
    })
}

/// One model's row of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparedModel {
    /// The model's position in the list given to [`compare`].
    pub model: usize,
    /// Its rank (0 for the best).
    pub rank: usize,
    /// Its elpd.
    pub elpd: f64,
    /// Its effective number of parameters.
    pub p: f64,
    /// Its elpd's standard error.
    pub se: f64,
    /// The best model's elpd minus this one's (0 for the best).
    pub elpd_diff: f64,
    /// The standard error of `elpd_diff`.
    pub dse: f64,
    /// Its stacking weight.
    pub stacking_weight: f64,
    /// Its pseudo-BMA weight (no bootstrap).
    pub pseudo_bma_weight: f64,
    /// Its pseudo-BMA+ weight (Bayesian bootstrap).
    pub pseudo_bma_plus_weight: f64,
    /// The bootstrap's standard deviation of n Σᵢ αᵢ elpdᵢ, ArviZ's `se` for that method.
    pub pseudo_bma_plus_se: f64,
    /// Whether the model's estimate carries a warning.
    pub warning: bool,
}

/// `count` draws from the flat Dirichlet distribution on `n` weights (normalised Exp(1) draws).
pub fn dirichlet_draws(rng: &mut Rng, n: usize, count: usize) -> Vec<Vec<f64>> {
    (0..count)
        .map(|_| {
            let mut draw: Vec<f64> = (0..n).map(|_| Exp1.sample(rng)).collect();
            let total: f64 = draw.iter().sum();
            for value in &mut draw {
                *value /= total;
            }
            draw
        })
        .collect()
}

/// Compares models by their estimates (all LOO or all WAIC, over the same observations), best
/// first. The pseudo-BMA+ weights use `bootstrap` Dirichlet draws (ArviZ uses 1,000).
pub fn compare(models: &[&Elpd], bootstrap: &[Vec<f64>]) -> Result<Vec<ComparedModel>, LooError> {
    let first = models.first().ok_or(LooError::Empty)?;
    let n = first.pointwise.len();
    if models.iter().any(|m| m.pointwise.len() != n) {
        return Err(LooError::DifferentObservations {
            counts: models.iter().map(|m| m.pointwise.len()).collect(),
        });
    }
    let mut order: Vec<usize> = (0..models.len()).collect();
    // Best first; a stable sort keeps the given order among equal estimates, as pandas does.
    order.sort_by(|&a, &b| models[b].elpd.total_cmp(&models[a].elpd));
    let pointwise: Vec<&[f64]> = order
        .iter()
        .map(|&m| models[m].pointwise.as_slice())
        .collect();
    let stacking = stacking_weights(&pointwise);
    let pseudo = pseudo_bma_weights(&order.iter().map(|&m| models[m].elpd).collect::<Vec<_>>());
    let (plus, plus_se) = pseudo_bma_plus_weights(&pointwise, bootstrap);
    let best = pointwise[0];
    Ok(order
        .iter()
        .enumerate()
        .map(|(rank, &m)| {
            let model = models[m];
            let differences: Vec<f64> = best
                .iter()
                .zip(&model.pointwise)
                .map(|(b, v)| b - v)
                .collect();
            ComparedModel {
                model: m,
                rank,
                elpd: model.elpd,
                p: model.p,
                se: model.se,
                elpd_diff: differences.iter().sum(),
                dse: sum_standard_error(&differences),
                stacking_weight: stacking[rank],
                pseudo_bma_weight: pseudo[rank],
                pseudo_bma_plus_weight: plus[rank],
                pseudo_bma_plus_se: plus_se[rank],
                warning: model.warning,
            }
        })
        .collect())
}

/// exp(elpdₖ − max elpd) normalised.
pub fn pseudo_bma_weights(elpd: &[f64]) -> Vec<f64> {
    let max = elpd.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let unnormalised: Vec<f64> = elpd.iter().map(|e| (e - max).exp()).collect();
    let total: f64 = unnormalised.iter().sum();
    unnormalised.iter().map(|u| u / total).collect()
}

/// Pseudo-BMA+ weights and their bootstrap standard deviations: for each Dirichlet draw α,
/// zₖ = n Σᵢ αᵢ elpdᵢₖ and the weights exp(zₖ − max z) normalised; the weights are averaged over
/// the draws. `pointwise[k]` holds model k's elpdᵢ.
pub fn pseudo_bma_plus_weights(
    pointwise: &[&[f64]],
    bootstrap: &[Vec<f64>],
) -> (Vec<f64>, Vec<f64>) {
    let k = pointwise.len();
    let n = pointwise.first().map_or(0, |p| p.len()) as f64;
    let mut weights = vec![0.0; k];
    let mut z_sum = vec![0.0; k];
    let mut z_sum_squares = vec![0.0; k];
    for alpha in bootstrap {
        let z: Vec<f64> = pointwise
            .iter()
            .map(|values| {
                n * alpha
                    .iter()
                    .zip(values.iter())
                    .map(|(a, v)| a * v)
                    .sum::<f64>()
            })
            .collect();
        let replicate = pseudo_bma_weights(&z);
        for model in 0..k {
            weights[model] += replicate[model];
            z_sum[model] += z[model];
            z_sum_squares[model] += z[model] * z[model];
        }
    }
    let count = bootstrap.len().max(1) as f64;
    let sd = (0..k)
        .map(|model| {
            let mean = z_sum[model] / count;
            (z_sum_squares[model] / count - mean * mean).max(0.0).sqrt()
        })
        .collect();
    (weights.iter().map(|w| w / count).collect(), sd)
}

/// The stacking weights of models with pointwise elpds `pointwise[k]`: the w on the simplex
/// that maximises Σᵢ log Σₖ wₖ exp(elpdᵢₖ).
///
/// The objective is concave, so its maximum is found by Newton's method on the face of the
/// simplex where the current weights are positive (the last free weight eliminated by Σ w = 1),
/// each step shortened to stay feasible and to increase the objective; a weight that reaches
/// zero leaves the face, and at the face's optimum a model outside it whose gradient exceeds
/// the others' (the KKT condition ∂/∂wₖ ≤ n) enters it again.
pub fn stacking_weights(pointwise: &[&[f64]]) -> Vec<f64> {
    let k = pointwise.len();
    if k <= 1 {
        return vec![1.0; k];
    }
    let n = pointwise[0].len();
    // p[i][k] = exp(elpdᵢₖ − maxₖ elpdᵢₖ): each row's scale drops out of the argmax.
    let p: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let max = (0..k)
                .map(|m| pointwise[m][i])
                .fold(f64::NEG_INFINITY, f64::max);
            (0..k).map(|m| (pointwise[m][i] - max).exp()).collect()
        })
        .collect();
    let objective = |w: &[f64]| -> f64 {
        p.iter()
            .map(|row| row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>().ln())
            .sum()
    };
    let gradient = |w: &[f64]| -> Vec<f64> {
        let mut g = vec![0.0; k];
        for row in &p {
            let mix: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
            for m in 0..k {
                g[m] += row[m] / mix;
            }
        }
        g
    };
    let mut w = vec![1.0 / k as f64; k];
    let mut active: Vec<bool> = vec![true; k];
    for _ in 0..200 {
        // Newton on the face: free coordinates are the active ones but the last, which is
        // 1 − Σ others.
        let face: Vec<usize> = (0..k).filter(|&m| active[m]).collect();
        let mut converged_on_face = face.len() <= 1;
        if !converged_on_face {
            let last = *face.last().unwrap_or(&0);
            let free = &face[..face.len() - 1];
            let g = gradient(&w);
            // Reduced gradient and Hessian in the free coordinates (dw_last = −Σ dw_free).
            let reduced_gradient: Vec<f64> = free.iter().map(|&a| g[a] - g[last]).collect();
            let mut hessian = nalgebra::DMatrix::<f64>::zeros(free.len(), free.len());
            for row in &p {
                let mix: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
                let mix2 = mix * mix;
                for (x, &a) in free.iter().enumerate() {
                    for (y, &b) in free.iter().enumerate() {
                        hessian[(x, y)] -= (row[a] - row[last]) * (row[b] - row[last]) / mix2;
                    }
                }
            }
            // The Newton step solves (−H) d = g; −H is positive semi-definite, so a small ridge
            // keeps it solvable when two models predict alike.
            let mut negative = -hessian;
            for d in 0..free.len() {
                negative[(d, d)] += 1e-12;
            }
            let rhs = nalgebra::DVector::from_vec(reduced_gradient.clone());
            let step = match negative.clone().cholesky() {
                Some(chol) => chol.solve(&rhs),
                None => rhs.clone(),
            };
            let mut direction = vec![0.0; k];
            for (x, &a) in free.iter().enumerate() {
                direction[a] = step[x];
                direction[last] -= step[x];
            }
            let decrement: f64 = reduced_gradient
                .iter()
                .zip(step.iter())
                .map(|(g, s)| g * s)
                .sum();
            if decrement < 1e-24 {
                converged_on_face = true;
            } else {
                // The longest feasible step, at most 1.
                let mut length: f64 = 1.0;
                let mut blocking = None;
                for m in 0..k {
                    if active[m] && direction[m] < 0.0 {
                        let limit = -w[m] / direction[m];
                        if limit < length {
                            length = limit;
                            blocking = Some(m);
                        }
                    }
                }
                // Backtrack until the objective does not decrease.
                let current = objective(&w);
                let mut trial = w.clone();
                loop {
                    for m in 0..k {
                        trial[m] = (w[m] + length * direction[m]).max(0.0);
                    }
                    if objective(&trial) >= current - 1e-15 * current.abs() || length < 1e-16 {
                        break;
                    }
                    length *= 0.5;
                    blocking = None;
                }
                w.clone_from(&trial);
                if let Some(m) = blocking {
                    w[m] = 0.0;
                    active[m] = false;
                }
                let total: f64 = w.iter().sum();
                for value in &mut w {
                    *value /= total;
                }
            }
        }
        if converged_on_face {
            // KKT: at the optimum every gradient component is at most n, with equality on the
            // face. Bring back the model that most violates it, if any.
            let g = gradient(&w);
            let entering = (0..k)
                .filter(|&m| !active[m] && g[m] > n as f64 * (1.0 + 1e-10))
                .max_by(|&a, &b| g[a].total_cmp(&g[b]));
            match entering {
                Some(m) => active[m] = true,
                None => break,
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_predicts_every_observation_better_takes_all_the_stacking_weight() {
        let better = [-1.0, -1.2, -0.8, -1.1];
        let worse = [-2.0, -2.5, -1.9, -2.2];
        let weights = stacking_weights(&[&worse, &better]);
        assert!(weights[0].abs() < 1e-12, "{weights:?}");
        assert!((weights[1] - 1.0).abs() < 1e-12, "{weights:?}");
    }

    #[test]
    fn identical_models_share_the_pseudo_bma_weight() {
        let weights = pseudo_bma_weights(&[-10.0, -10.0]);
        assert_eq!(weights, vec![0.5, 0.5]);
    }

    #[test]
    fn bad_matrices_are_errors() {
        assert_eq!(loo(&[], 1.0), Err(LooError::Empty));
        let a = [0.0, 1.0];
        let b = [0.0];
        assert!(matches!(
            waic(&[&a, &b]),
            Err(LooError::Ragged { observation: 1, .. })
        ));
        let c = [f64::NAN, 0.0];
        assert_eq!(waic(&[&c]), Err(LooError::NotFinite { observation: 0 }));
    }
}
