//! The posterior summary table (CmdStan's `stansummary` columns) and its warnings.
//!
//! A [`Summary`] has one [`ColumnSummary`] per quantity, the sampler's own checks per chain
//! (divergences, tree-depth saturation, E-BFMI) when the draws come from HMC or NUTS, and a list
//! of [`Warning`]s. Quantities are named by their column index; the caller maps indices to site
//! names when it renders the warnings.

use super::quantity_diagnostics;
use crate::mcmc::{McmcResult, SampleStats};
use rayon::prelude::*;
use std::fmt;

/// R-hat above this means the chains have not mixed.
pub const R_HAT_LIMIT: f64 = 1.01;
/// A bulk or tail ESS below this is too small for reliable estimates.
pub const ESS_LIMIT: f64 = 400.0;
/// An E-BFMI below this means momentum resampling explores the energy distribution poorly.
pub const E_BFMI_LIMIT: f64 = 0.3;

/// The summary of one quantity over all chains.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSummary {
    /// The posterior mean.
    pub mean: f64,
    /// The Monte Carlo standard error of the mean.
    pub mcse_mean: Option<f64>,
    /// The posterior standard deviation.
    pub sd: Option<f64>,
    /// The Monte Carlo standard error of the sd.
    pub mcse_sd: Option<f64>,
    /// The Monte Carlo standard errors of the 5%, 50% and 95% quantiles (ArviZ's
    /// `mcse(method="quantile")`).
    pub mcse_quantiles: [Option<f64>; 3],
    /// The 5% quantile.
    pub q5: f64,
    /// The median.
    pub q50: f64,
    /// The 95% quantile.
    pub q95: f64,
    /// The bulk effective sample size.
    pub ess_bulk: Option<f64>,
    /// The tail effective sample size.
    pub ess_tail: Option<f64>,
    /// The rank-normalised split R-hat.
    pub r_hat: Option<f64>,
}

/// The sampler's own checks, one entry per chain.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerDiagnostics {
    /// Kept draws per chain.
    pub n_draws: Vec<usize>,
    /// Divergent transitions after warm-up per chain.
    pub divergences: Vec<usize>,
    /// Transitions that reached the maximum tree depth per chain (all zero for static HMC).
    pub tree_depth_saturated: Vec<usize>,
    /// The maximum tree depth, for NUTS.
    pub max_tree_depth: Option<u32>,
    /// The energy Bayesian fraction of missing information per chain.
    pub e_bfmi: Vec<Option<f64>>,
}

/// A reason to distrust the draws.
#[derive(Clone, Debug, PartialEq)]
pub enum Warning {
    /// R-hat above [`R_HAT_LIMIT`].
    HighRHat {
        /// The quantity's column.
        column: usize,
        /// Its R-hat.
        r_hat: f64,
    },
    /// Bulk ESS below [`ESS_LIMIT`].
    LowEssBulk {
        /// The quantity's column.
        column: usize,
        /// Its bulk ESS.
        ess: f64,
    },
    /// Tail ESS below [`ESS_LIMIT`].
    LowEssTail {
        /// The quantity's column.
        column: usize,
        /// Its tail ESS.
        ess: f64,
    },
    /// Some transitions after warm-up diverged.
    Divergences {
        /// How many.
        count: usize,
        /// Out of how many transitions.
        n_draws: usize,
    },
    /// Some transitions stopped at the maximum tree depth.
    TreeDepthSaturated {
        /// How many.
        count: usize,
        /// Out of how many transitions.
        n_draws: usize,
        /// The maximum depth.
        max_depth: u32,
    },
    /// A chain's E-BFMI is below [`E_BFMI_LIMIT`].
    LowEBfmi {
        /// The chain index, from 0.
        chain: usize,
        /// Its E-BFMI.
        e_bfmi: f64,
    },
}

impl Warning {
    /// The quantity the warning is about, if it is about one.
    pub fn column(&self) -> Option<usize> {
        match self {
            Warning::HighRHat { column, .. }
            | Warning::LowEssBulk { column, .. }
            | Warning::LowEssTail { column, .. } => Some(*column),
            _ => None,
        }
    }

    /// The warning as a sentence, naming quantities with `column_name` (for example the site
    /// name and index) and chains from 1, as the CSV files are numbered.
    pub fn message(&self, column_name: impl Fn(usize) -> String) -> String {
        match self {
            Warning::HighRHat { column, r_hat } => format!(
                "R-hat of {} is {r_hat:.3}, above {R_HAT_LIMIT}: the chains disagree; run \
                 longer or reparameterise",
                column_name(*column)
            ),
            Warning::LowEssBulk { column, ess } => format!(
                "bulk ESS of {} is {ess:.0}, below {ESS_LIMIT}: the posterior mean and median \
                 are unreliable; run more iterations",
                column_name(*column)
            ),
            Warning::LowEssTail { column, ess } => format!(
                "tail ESS of {} is {ess:.0}, below {ESS_LIMIT}: the 5% and 95% quantiles are \
                 unreliable; run more iterations",
                column_name(*column)
            ),
            Warning::Divergences { count, n_draws } => format!(
                "{count} of {n_draws} transitions after warm-up diverged: raise the target \
                 acceptance rate or reparameterise the model"
            ),
            Warning::TreeDepthSaturated {
                count,
                n_draws,
                max_depth,
            } => format!(
                "{count} of {n_draws} transitions reached the maximum tree depth {max_depth}: \
                 raise the maximum depth or reparameterise the model"
            ),
            Warning::LowEBfmi { chain, e_bfmi } => format!(
                "E-BFMI of chain {} is {e_bfmi:.3}, below {E_BFMI_LIMIT}: the sampler explores \
                 the energy distribution poorly; reparameterise the model",
                chain + 1
            ),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(|column| format!("coordinate {column}")))
    }
}

/// A posterior summary: per-quantity statistics, the sampler's checks and the warnings.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// One entry per quantity (column).
    pub columns: Vec<ColumnSummary>,
    /// The sampler's checks, for HMC and NUTS runs.
    pub sampler: Option<SamplerDiagnostics>,
    /// Everything that exceeds a limit, quantities first.
    pub warnings: Vec<Warning>,
}

/// E-BFMI of one chain's energies: mean((Eₙ − Eₙ₋₁)²) / var(E), with the sample variance
/// (n − 1 in the denominator) as ArviZ computes it. `None` for fewer than 2 energies or constant
/// ones.
pub fn e_bfmi(energy: &[f64]) -> Option<f64> {
    if energy.len() < 2 {
        return None;
    }
    let n = energy.len() as f64;
    let mean = energy.iter().sum::<f64>() / n;
    let variance = energy.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / (n - 1.0);
    let squared_steps = energy
        .windows(2)
        .map(|w| (w[1] - w[0]) * (w[1] - w[0]))
        .sum::<f64>()
        / (n - 1.0);
    let value = squared_steps / variance;
    value.is_finite().then_some(value)
}

impl Summary {
    /// Summarises draws of `n_columns` quantities: `chains[c]` holds chain c's draws one after
    /// another, `n_columns` values each. Chains of unequal length are cut to the shortest.
    pub fn from_draws(chains: &[&[f64]], n_columns: usize) -> Summary {
        let columns = summarise_columns(chains, n_columns);
        let warnings = column_warnings(&columns);
        Summary {
            columns,
            sampler: None,
            warnings,
        }
    }

    /// Summarises the unconstrained coordinates of an MCMC run, with the sampler's checks.
    pub fn from_mcmc(result: &McmcResult) -> Summary {
        Summary::from_mcmc_columns(result, &result.draw_slices(), result.dim)
    }

    /// Summarises quantities derived from an MCMC run (for example constrained site values),
    /// laid out as in [`Summary::from_draws`] with one row per kept draw, with the run's sampler
    /// checks.
    pub fn from_mcmc_columns(result: &McmcResult, chains: &[&[f64]], n_columns: usize) -> Summary {
        let mut summary = Summary::from_draws(chains, n_columns);
        let sampler = sampler_diagnostics(result);
        summary.warnings.extend(sampler_warnings(&sampler));
        summary.sampler = Some(sampler);
        summary
    }

    /// Summarises draws laid out as in [`Summary::from_draws`] with sampler checks gathered
    /// elsewhere (read back from the files of runs being merged, for instance); the warnings are
    /// those [`Summary::from_mcmc_columns`] gives for the same draws and sampler statistics.
    pub fn from_draws_with_sampler(
        chains: &[&[f64]],
        n_columns: usize,
        sampler: SamplerDiagnostics,
    ) -> Summary {
        let mut summary = Summary::from_draws(chains, n_columns);
        summary.warnings.extend(sampler_warnings(&sampler));
        summary.sampler = Some(sampler);
        summary
    }
}

fn summarise_columns(chains: &[&[f64]], n_columns: usize) -> Vec<ColumnSummary> {
    if n_columns == 0 {
        return Vec::new();
    }
    let n_draws = chains
        .iter()
        .map(|c| c.len() / n_columns)
        .min()
        .unwrap_or(0);
    if n_draws == 0 {
        return Vec::new();
    }
    // With at least one draw every column has a summary, so none is filtered out below.
    (0..n_columns)
        .into_par_iter()
        .filter_map(|column| {
            let per_chain: Vec<Vec<f64>> = chains
                .iter()
                .map(|c| {
                    c.iter()
                        .skip(column)
                        .step_by(n_columns)
                        .take(n_draws)
                        .copied()
                        .collect()
                })
                .collect();
            let slices: Vec<&[f64]> = per_chain.iter().map(|c| c.as_slice()).collect();
            let d = quantity_diagnostics(&slices)?;
            Some(ColumnSummary {
                mean: d.mean,
                mcse_mean: d.mcse_mean,
                sd: d.sd,
                mcse_sd: d.mcse_sd,
                mcse_quantiles: d.mcse_quantiles,
                q5: d.quantiles[0],
                q50: d.quantiles[1],
                q95: d.quantiles[2],
                ess_bulk: d.ess_bulk,
                ess_tail: d.ess_tail,
                r_hat: d.r_hat,
            })
        })
        .collect()
}

fn column_warnings(columns: &[ColumnSummary]) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for (column, summary) in columns.iter().enumerate() {
        if let Some(r_hat) = summary.r_hat.filter(|r| *r > R_HAT_LIMIT) {
            warnings.push(Warning::HighRHat { column, r_hat });
        }
        if let Some(ess) = summary.ess_bulk.filter(|e| *e < ESS_LIMIT) {
            warnings.push(Warning::LowEssBulk { column, ess });
        }
        if let Some(ess) = summary.ess_tail.filter(|e| *e < ESS_LIMIT) {
            warnings.push(Warning::LowEssTail { column, ess });
        }
    }
    warnings
}

fn sampler_diagnostics(result: &McmcResult) -> SamplerDiagnostics {
    let max_tree_depth = result.max_tree_depth();
    let count = |stats: &[SampleStats], keep: &dyn Fn(&SampleStats) -> bool| {
        stats.iter().filter(|s| keep(s)).count()
    };
    SamplerDiagnostics {
        n_draws: result.chains.iter().map(|c| c.stats.len()).collect(),
        divergences: result
            .chains
            .iter()
            .map(|c| count(&c.stats, &|s| s.divergent))
            .collect(),
        tree_depth_saturated: result
            .chains
            .iter()
            .map(|c| match max_tree_depth {
                Some(max) => count(&c.stats, &|s| s.tree_depth >= max),
                None => 0,
            })
            .collect(),
        max_tree_depth,
        e_bfmi: result
            .chains
            .iter()
            .map(|c| e_bfmi(&c.stats.iter().map(|s| s.energy).collect::<Vec<_>>()))
            .collect(),
    }
}

fn sampler_warnings(sampler: &SamplerDiagnostics) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let n_draws: usize = sampler.n_draws.iter().sum();
    let divergences: usize = sampler.divergences.iter().sum();
    if divergences > 0 {
        warnings.push(Warning::Divergences {
            count: divergences,
            n_draws,
        });
    }
    let saturated: usize = sampler.tree_depth_saturated.iter().sum();
    if let (true, Some(max_depth)) = (saturated > 0, sampler.max_tree_depth) {
        warnings.push(Warning::TreeDepthSaturated {
            count: saturated,
            n_draws,
            max_depth,
        });
    }
    for (chain, value) in sampler.e_bfmi.iter().enumerate() {
        if let Some(e_bfmi) = value.filter(|v| *v < E_BFMI_LIMIT) {
            warnings.push(Warning::LowEBfmi { chain, e_bfmi });
        }
    }
    warnings
}
