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
use crate::vi::flow::{self, FlowShape};
use crate::vi::numeric::derive_seed;
use crate::vi::numeric::{cholesky_in_place, HALF_LOG_TWO_PI};
use crate::vi::posterior::{FittedGuide, GuideParams};
use crate::vi::svi::SviFit;
use rand::Rng as _;
use rayon::prelude::*;

/// Seed purposes of this module's random streams.
const PURPOSE_DRAWS: u64 = 21;
const PURPOSE_RESAMPLE: u64 = 22;
const PURPOSE_STREAMED: u64 = 23;

/// The first round of [`diagnose_streamed`]; each later round doubles the draws.
pub const STREAMED_FIRST_ROUND: usize = 100;

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

/// log q(z) of a normal guide, from its lower Cholesky factor (dense) or its scales (diagonal),
/// or of a flow guide, by inverting its flow.
enum GuideDensity {
    Diagonal {
        loc: Vec<f64>,
        scale: Vec<f64>,
    },
    Dense {
        loc: Vec<f64>,
        factor: Vec<f64>,
    },
    Flow {
        loc: Vec<f64>,
        scale: Vec<f64>,
        shape: FlowShape,
        params: Vec<f64>,
    },
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
            GuideParams::Iaf {
                loc,
                scale,
                hidden,
                layers,
            } => Ok(GuideDensity::Flow {
                loc: loc.clone(),
                scale: scale.clone(),
                shape: FlowShape {
                    dim: d,
                    layers: layers.len(),
                    hidden: *hidden,
                },
                params: layers.iter().flatten().copied().collect(),
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
            GuideDensity::Flow {
                loc,
                scale,
                shape,
                params,
            } => {
                // log q(z) = log N(ε) − log det ∂T/∂ε − Σ log σᵢ, with ε = T⁻¹((z − loc) / σ).
                work.clear();
                work.extend((0..loc.len()).map(|i| (z[i] - loc[i]) / scale[i]));
                let (noise, log_determinant) = flow::inverse(shape, params, work);
                noise
                    .iter()
                    .map(|e| -0.5 * e * e - HALF_LOG_TWO_PI)
                    .sum::<f64>()
                    - log_determinant
                    - scale.iter().map(|s| s.ln()).sum::<f64>()
            }
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

/// What [`diagnose_streamed`] found: k̂ and the weights of the draws it used, without the draws.
#[derive(Clone, Debug)]
pub struct StreamedDiagnostic {
    /// The raw log importance ratios, one per draw used.
    pub log_ratios: Vec<f64>,
    /// The smoothed, normalised log weights and k̂.
    pub psis: Psis,
    /// How many draws were used (at most the number asked for).
    pub draws_used: usize,
    /// The standard error of k̂ at the end (see [`pareto_k_standard_error`]).
    pub k_standard_error: f64,
}

/// The asymptotic standard error of the generalized Pareto shape estimate from the tail of `n`
/// draws: the maximum-likelihood estimate's variance is (1 + k)² / M for a tail of M draws
/// (Smith, 1987; the Zhang–Stephens estimate that [`psis::psis`] uses is asymptotically as
/// efficient), with M = ⌈min(0.2 n, 3 √n)⌉ as PSIS takes it. Infinite for an infinite k̂.
pub fn pareto_k_standard_error(pareto_k: f64, n: usize) -> f64 {
    let tail = (0.2 * n as f64)
        .min(3.0 * (n as f64).sqrt())
        .ceil()
        .max(1.0);
    (1.0 + pareto_k.max(0.0)) / tail.sqrt()
}

/// The Pareto-k̂ diagnostic without holding the guide's draws, in parallel over draws, with as
/// few draws as settle it: rounds of 100, 200, 400, … draws (up to `max_draws` in all) until k̂
/// is more than two standard errors from the 0.7 limit, so that more draws would not change
/// which side of it the guide is on. Draw `s` comes from its own random stream, so the result
/// does not depend on the number of threads. `make` makes one model per thread; the log joint
/// is computed without its gradient.
pub fn diagnose_streamed<M: ElboModel, F: Fn() -> M + Sync>(
    make: F,
    fit: &SviFit,
    max_draws: usize,
    seed: u64,
) -> Result<StreamedDiagnostic, ImportanceError> {
    if max_draws < 10 {
        return Err(ImportanceError {
            message: format!("the Pareto diagnostic needs at least 10 draws, got {max_draws}"),
        });
    }
    let density = GuideDensity::new(&fit.guide)?;
    let latent_dim = fit.guide.latent_dim();
    let options = JointOptions::default();
    let stream_seed = derive_seed(seed, PURPOSE_STREAMED);
    let mut log_ratios: Vec<f64> = Vec::with_capacity(max_draws);
    let mut round = STREAMED_FIRST_ROUND.min(max_draws);
    loop {
        let start = log_ratios.len();
        let end = (start + round).min(max_draws);
        let ratios: Vec<Result<f64, ImportanceError>> = (start..end)
            .into_par_iter()
            .map_init(
                || (make(), Vec::with_capacity(latent_dim)),
                |(model, work), draw| {
                    let mut rng = stream_rng(stream_seed, draw as u64);
                    let mut position = fit.guide.sample(&mut rng, 1).pop().unwrap_or_default();
                    position.extend_from_slice(&fit.params);
                    let log_q = density.log_density(&position[..latent_dim], work);
                    let log_p = match model.log_joint_value(&position, &options, &mut rng) {
                        Ok(joint) if joint.total().is_finite() => joint.total(),
                        Ok(_) => f64::NEG_INFINITY,
                        Err(error) if error.recoverable => f64::NEG_INFINITY,
                        Err(error) => {
                            return Err(ImportanceError {
                                message: error.message,
                            })
                        }
                    };
                    Ok(log_p - log_q)
                },
            )
            .collect();
        for ratio in ratios {
            log_ratios.push(ratio?);
        }
        let psis = psis::psis(&log_ratios).ok_or_else(|| ImportanceError {
            message: "the model's density is zero or not finite at every draw of the guide"
                .to_string(),
        })?;
        let standard_error = pareto_k_standard_error(psis.pareto_k, log_ratios.len());
        let settled = (psis.pareto_k - 0.7).abs() > 2.0 * standard_error;
        if settled || log_ratios.len() >= max_draws {
            return Ok(StreamedDiagnostic {
                draws_used: log_ratios.len(),
                log_ratios,
                psis,
                k_standard_error: standard_error,
            });
        }
        round = log_ratios.len();
    }
}
