//! Importance sampling with a fitted guide as the proposal: the Pareto-k̂ diagnostic of the guide
//! (Yao et al., 2018) and PSIS-weighted resampling of its draws.
//!
//! [`diagnose`] draws S latent vectors from the guide, computes the log importance ratios
//! log p(x, zₛ) − log q(zₛ) (the model's params held at their fitted values), and smooths them
//! with [`crate::diagnostics::psis`]. A draw where the model cannot be evaluated (outside the
//! support, a non-finite density) has ratio zero. [`GuideDiagnostic::resample`] draws positions
//! in proportion to the smoothed weights, so that a slightly-off guide still yields draws from
//! (close to) the posterior; the weights' effective sample size says how many independent draws
//! they are worth.

use crate::density::{ElboModel, JointOptions};
use crate::diagnostics::psis::{self, Psis};
use crate::rng::stream_rng;
use crate::vi::numeric::derive_seed;
use crate::vi::numeric::{cholesky_in_place, HALF_LOG_TWO_PI};
use crate::vi::posterior::{FittedGuide, GuideParams};
use crate::vi::svi::SviFit;
use rand::Rng as _;

/// Seed purposes of this module's random streams.
const PURPOSE_DRAWS: u64 = 21;
const PURPOSE_RESAMPLE: u64 = 22;

/// The largest latent dimension whose dense covariance is factored for log q (diagonal guides
/// have no limit).
pub const MAX_DENSE_DIM: usize = 2000;

/// The guide's draws with their smoothed importance weights.
#[derive(Clone, Debug)]
pub struct GuideDiagnostic {
    /// The draws, as full positions `[latents, params]`.
    pub positions: Vec<Vec<f64>>,
    /// The raw log importance ratios.
    pub log_ratios: Vec<f64>,
    /// The smoothed, normalised log weights and k̂.
    pub psis: Psis,
}

impl GuideDiagnostic {
    /// The Pareto shape k̂.
    pub fn pareto_k(&self) -> f64 {
        self.psis.pareto_k
    }

    /// The effective sample size of the smoothed weights.
    pub fn effective_sample_size(&self) -> f64 {
        self.psis.effective_sample_size()
    }

    /// `n` positions drawn with replacement in proportion to the smoothed weights (systematic
    /// resampling with one uniform from `seed`).
    pub fn resample(&self, n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = stream_rng(derive_seed(seed, PURPOSE_RESAMPLE), 0);
        let u: f64 = rng.random_range(0.0..1.0);
        // Systematic resampling keeps the draws' order; a fresh permutation of the selected
        // indices is not needed for summaries, which do not depend on order.
        psis::systematic_resample(&self.psis.log_weights, n, u)
            .into_iter()
            .map(|i| self.positions[i].clone())
            .collect()
    }
}

/// Why the diagnostic could not be computed.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportanceError {
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for ImportanceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportanceError {}

/// log q(z) of a normal guide, from its lower Cholesky factor (dense) or its scales (diagonal).
enum GuideDensity {
    Diagonal { loc: Vec<f64>, scale: Vec<f64> },
    Dense { loc: Vec<f64>, factor: Vec<f64> },
}

impl GuideDensity {
    fn new(guide: &FittedGuide) -> Result<Self, ImportanceError> {
        let d = guide.latent_dim();
        match guide.params() {
            GuideParams::Delta { .. } => Err(ImportanceError {
                message: "a point mass has no density to weigh draws by".to_string(),
            }),
            GuideParams::DiagonalNormal { loc, scale } => Ok(GuideDensity::Diagonal {
                loc: loc.clone(),
                scale: scale.clone(),
            }),
            _ if d > MAX_DENSE_DIM => Err(ImportanceError {
                message: format!(
                    "the guide's covariance is {d} × {d}, too large to factor for the diagnostic"
                ),
            }),
            params => {
                let mut factor: Vec<f64> = guide.covariance().into_iter().flatten().collect();
                cholesky_in_place(&mut factor, d).map_err(|pivot| ImportanceError {
                    message: format!(
                        "the guide's covariance is not positive definite (pivot {pivot})"
                    ),
                })?;
                Ok(GuideDensity::Dense {
                    loc: params.loc().to_vec(),
                    factor,
                })
            }
        }
    }

    fn log_density(&self, z: &[f64], work: &mut Vec<f64>) -> f64 {
        match self {
            GuideDensity::Diagonal { loc, scale } => z
                .iter()
                .zip(loc)
                .zip(scale)
                .map(|((z, m), s)| {
                    let u = (z - m) / s;
                    -0.5 * u * u - s.ln() - HALF_LOG_TWO_PI
                })
                .sum(),
            GuideDensity::Dense { loc, factor } => {
                // Forward substitution L u = z − μ.
                let d = loc.len();
                work.clear();
                let mut total = 0.0;
                for i in 0..d {
                    let mut value = z[i] - loc[i];
                    for k in 0..i {
                        value -= factor[i * d + k] * work[k];
                    }
                    let diagonal = factor[i * d + i];
                    value /= diagonal;
                    work.push(value);
                    total += -0.5 * value * value - diagonal.ln() - HALF_LOG_TWO_PI;
                }
                total
            }
        }
    }
}

/// Draws `draws` latent vectors from `fit`'s guide (the model's params at their fitted values)
/// and smooths their importance ratios against `model`.
pub fn diagnose<M: ElboModel>(
    model: &mut M,
    fit: &SviFit,
    draws: usize,
    seed: u64,
) -> Result<GuideDiagnostic, ImportanceError> {
    if draws < 10 {
        return Err(ImportanceError {
            message: format!("the Pareto diagnostic needs at least 10 draws, got {draws}"),
        });
    }
    let density = GuideDensity::new(&fit.guide)?;
    let mut rng = stream_rng(derive_seed(seed, PURPOSE_DRAWS), 0);
    let positions = fit.sample_positions(&mut rng, draws);
    let latent_dim = fit.guide.latent_dim();
    let options = JointOptions::default();
    let mut gradient = vec![0.0; positions.first().map_or(0, Vec::len)];
    let mut work = Vec::with_capacity(latent_dim);
    let mut model_rng = stream_rng(derive_seed(seed, PURPOSE_DRAWS), 1);
    let mut log_ratios = Vec::with_capacity(draws);
    for position in &positions {
        let log_q = density.log_density(&position[..latent_dim], &mut work);
        let log_p = match model.log_joint(position, &options, &mut model_rng, &mut gradient) {
            Ok(joint) if joint.total().is_finite() => joint.total(),
            Ok(_) => f64::NEG_INFINITY,
            Err(error) if error.recoverable => f64::NEG_INFINITY,
            Err(error) => {
                return Err(ImportanceError {
                    message: error.message,
                })
            }
        };
        log_ratios.push(log_p - log_q);
    }
    let psis = psis::psis(&log_ratios).ok_or_else(|| ImportanceError {
        message: "the model's density is zero or not finite at every draw of the guide".to_string(),
    })?;
    Ok(GuideDiagnostic {
        positions,
        log_ratios,
        psis,
    })
}
