//! Reversible-jump MCMC (Green, 1995) over the number of hidden units of a shallow network, the
//! architecture selection of the teaching material (after Müller and Ríos Insua, 1998).
//!
//! The state is the number of units M, the units' input weights γ₁, …, γ_M (an ordered list of
//! blocks of `unit_dim` coordinates) and a few shared coordinates (for example log τ). The output
//! weights are integrated out by the model ([`HiddenUnitModel::log_marginal`], the lecture's
//! Lemma 2.1), so a jump between architectures never has to invent output weights. The target is
//!
//! π(M, γ, s) ∝ p(M) Πⱼ p(γⱼ) p(y | γ₁..γ_M, s) p(s),
//!
//! and each sweep makes
//!
//! 1. one adaptive random-walk Metropolis step per unit on log p(y | γ, s) + log p(γⱼ) (one
//!    proposal scale shared by all units, which are exchangeable);
//! 2. one step on the shared coordinates, when there are any;
//! 3. one birth or death move. With probability b(M) (1 at M = 0, 0 at M = M_max, ½ otherwise)
//!    a birth draws a new unit from its prior and inserts it at a uniformly chosen place; a death
//!    removes a uniformly chosen unit. Because the new unit comes from its prior and the place
//!    probabilities 1/(M + 1) of the two directions cancel, a birth from M is accepted with
//!    probability min(1, [p(y | γ') p(M + 1) d(M + 1)] / [p(y | γ) p(M) b(M)]), d = 1 − b, and a
//!    death with the reciprocal form.
//!
//! Proposal scales adapt during warm-up only. Chains run in parallel with one RNG stream each,
//! with a per-sweep [`Progress`] callback and a stop flag, as in [`super::sample`]. When the model can draw the
//! output weights given the units ([`HiddenUnitModel::draw_output_weights`]), every kept draw
//! carries them, for posterior-predictive runs.

use super::rwm::{AdaptiveProposal, RwmSettings};
use crate::density::LogDensityError;
use crate::driver::{self, drive, unit_rng, Control, Iteration, Phase, Progress, Schedule, Units};
use crate::rng::Rng;
use rand::Rng as _;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// What reversible jump over hidden units needs from a model.
pub trait HiddenUnitModel: Send {
    /// Coordinates per hidden unit (its input weights and bias).
    fn unit_dim(&self) -> usize;

    /// Coordinates shared by every architecture (unconstrained); may be 0.
    fn shared_dim(&self) -> usize;

    /// The largest number of units allowed.
    fn max_units(&self) -> usize;

    /// log p(M) up to a constant, for M in 0..=max_units (−∞ for numbers the prior excludes).
    fn log_prior_units(&self, n_units: usize) -> f64;

    /// log p(γ) of one unit, up to a constant.
    fn log_prior_unit(&self, unit: &[f64]) -> f64;

    /// Draws one unit from its prior into `unit` (the birth proposal).
    fn sample_unit(&mut self, rng: &mut Rng, unit: &mut [f64]);

    /// log p(y | γ₁..γ_M, s) + log p(s) with the output weights integrated out (Jacobians of the
    /// shared coordinates included); `units` holds M blocks of `unit_dim` coordinates.
    fn log_marginal(&mut self, units: &[f64], shared: &[f64]) -> Result<f64, LogDensityError>;

    /// Draws the output weights given the units and the shared coordinates; the default draws
    /// none.
    fn draw_output_weights(
        &mut self,
        units: &[f64],
        shared: &[f64],
        rng: &mut Rng,
    ) -> Result<Vec<f64>, LogDensityError> {
        let _ = (units, shared, rng);
        Ok(Vec::new())
    }
}

/// Everything that configures a reversible-jump run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReversibleJumpSettings {
    /// The number of chains.
    pub chains: usize,
    /// Warm-up sweeps per chain (proposal scales adapt; draws are not kept).
    pub warmup: usize,
    /// Kept draws per chain; sampling runs `samples × thin` sweeps.
    pub samples: usize,
    /// Keep one sweep in this many (at least 1).
    pub thin: usize,
    /// The seed of every chain's random stream.
    pub seed: u64,
    /// The number of units each chain starts with (drawn from their prior).
    pub initial_units: usize,
    /// Shared coordinates start uniformly in (−radius, radius).
    pub init_radius: f64,
    /// How many starting points to try before giving up.
    pub max_init_attempts: usize,
    /// The random-walk tuning (the covariance adaptation is not used here).
    pub rwm: RwmSettings,
    /// Run chains in parallel with rayon (the draws are the same either way).
    pub parallel: bool,
}

impl Default for ReversibleJumpSettings {
    fn default() -> Self {
        ReversibleJumpSettings {
            chains: 4,
            warmup: 1000,
            samples: 2000,
            thin: 1,
            seed: 0,
            initial_units: 1,
            init_radius: 2.0,
            max_init_attempts: 100,
            rwm: RwmSettings {
                adapt_covariance: false,
                ..RwmSettings::default()
            },
            parallel: true,
        }
    }
}

/// One kept draw.
#[derive(Clone, Debug, PartialEq)]
pub struct ReversibleJumpDraw {
    /// The number of hidden units M.
    pub n_units: usize,
    /// The units' coordinates, M blocks of `unit_dim`.
    pub units: Vec<f64>,
    /// The shared coordinates.
    pub shared: Vec<f64>,
    /// The output weights drawn given the rest (empty when the model draws none).
    pub output_weights: Vec<f64>,
    /// log p(M) + Σ log p(γⱼ) + log_marginal at the draw.
    pub log_density: f64,
}

/// Move counts of one chain during sampling.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MoveCounts {
    /// Birth proposals.
    pub births_proposed: u64,
    /// Accepted births.
    pub births_accepted: u64,
    /// Death proposals.
    pub deaths_proposed: u64,
    /// Accepted deaths.
    pub deaths_accepted: u64,
    /// Random-walk proposals on units.
    pub unit_moves_proposed: u64,
    /// Accepted random-walk proposals on units.
    pub unit_moves_accepted: u64,
    /// Proposals of any kind whose density was not finite (rejected).
    pub nonfinite_proposals: u64,
}

/// The output of one chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ReversibleJumpChain {
    /// The chain index, from 0.
    pub chain: usize,
    /// The kept draws.
    pub draws: Vec<ReversibleJumpDraw>,
    /// What the moves did during sampling.
    pub moves: MoveCounts,
    /// Whether the stop flag ended this chain early.
    pub interrupted: bool,
}

/// The output of [`sample_units`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReversibleJumpResult {
    /// The chains, in index order.
    pub chains: Vec<ReversibleJumpChain>,
    /// Whether the stop flag ended the run early.
    pub interrupted: bool,
}

impl ReversibleJumpResult {
    /// The number of units of every kept draw, per chain, as numbers (for the diagnostics).
    pub fn unit_counts(&self) -> Vec<Vec<f64>> {
        self.chains
            .iter()
            .map(|c| c.draws.iter().map(|d| d.n_units as f64).collect())
            .collect()
    }

    /// The posterior probability of each number of units 0..=max_units, pooled over chains.
    pub fn unit_probabilities(&self, max_units: usize) -> Vec<f64> {
        let mut counts = vec![0.0; max_units + 1];
        let mut total = 0.0;
        for draw in self.chains.iter().flat_map(|c| &c.draws) {
            if let Some(count) = counts.get_mut(draw.n_units) {
                *count += 1.0;
            }
            total += 1.0;
        }
        if total > 0.0 {
            counts.iter_mut().for_each(|c| *c /= total);
        }
        counts
    }
}

/// Why a reversible-jump run could not produce draws.
#[derive(Clone, Debug, PartialEq)]
pub enum ReversibleJumpError {
    /// The settings or the model's dimensions are inconsistent.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// No starting point had a finite density.
    Initialisation {
        /// The chain.
        chain: usize,
        /// The model's message for the last point tried.
        message: String,
    },
    /// The model failed fatally.
    Model {
        /// The chain.
        chain: usize,
        /// The sweep, counting warm-up first.
        iteration: usize,
        /// The model's message.
        message: String,
    },
}

impl fmt::Display for ReversibleJumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversibleJumpError::InvalidSettings { message } => {
                write!(f, "invalid reversible-jump settings: {message}")
            }
            ReversibleJumpError::Initialisation { chain, message } => {
                write!(f, "chain {} could not be initialised: {message}", chain + 1)
            }
            ReversibleJumpError::Model {
                chain,
                iteration,
                message,
            } => write!(
                f,
                "chain {} stopped at sweep {}: {message}",
                chain + 1,
                iteration + 1
            ),
        }
    }
}

impl std::error::Error for ReversibleJumpError {}

/// The probability b(M) of proposing a birth from M units.
fn birth_probability(n_units: usize, max_units: usize) -> f64 {
    if n_units == 0 {
        1.0
    } else if n_units >= max_units {
        0.0
    } else {
        0.5
    }
}

/// Runs `settings.chains` reversible-jump chains on models made by `make_model(chain)`.
pub fn sample_units<M, F, C>(
    settings: &ReversibleJumpSettings,
    make_model: F,
    callback: &C,
    stop: &AtomicBool,
) -> Result<ReversibleJumpResult, ReversibleJumpError>
where
    M: HiddenUnitModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
{
    let invalid = |message: String| Err(ReversibleJumpError::InvalidSettings { message });
    // Chain 0's model is made first to validate the settings against it, and kept for chain 0.
    let units = Units::new(make_model);
    let shape = units
        .first(|first_model| {
            if first_model.unit_dim() == 0 {
                return invalid("a hidden unit must have at least one coordinate".into());
            }
            if first_model.max_units() == 0 {
                return invalid("the model allows no hidden units".into());
            }
            if settings.initial_units > first_model.max_units() {
                return invalid(format!(
                    "the chains start with {} units but the model allows at most {}",
                    settings.initial_units,
                    first_model.max_units()
                ));
            }
            if settings.chains == 0 || settings.thin == 0 || settings.max_init_attempts == 0 {
                return invalid(
                    "chains, thinning and initialisation attempts must each be at least 1".into(),
                );
            }
            if !(settings.init_radius.is_finite() && settings.init_radius >= 0.0) {
                return invalid(format!(
                    "the initialisation radius must be finite and non-negative, not {}",
                    settings.init_radius
                ));
            }
            if !first_model
                .log_prior_units(settings.initial_units)
                .is_finite()
            {
                return invalid(format!(
                    "the prior excludes the initial number of units {}",
                    settings.initial_units
                ));
            }
            settings
                .rwm
                .validate()
                .map_err(|message| ReversibleJumpError::InvalidSettings { message })?;
            Ok((
                first_model.unit_dim(),
                first_model.shared_dim(),
                first_model.max_units(),
            ))
        })
        .unwrap_or_else(|| invalid("chain 1's model was not made".into()))?;
    let outcomes = units.run(
        settings.chains,
        settings.parallel,
        stop,
        |chain, model, control| {
            if (model.unit_dim(), model.shared_dim(), model.max_units()) != shape {
                return Err(ReversibleJumpError::InvalidSettings {
                    message: format!("chain {}'s model has different dimensions", chain + 1),
                });
            }
            run_chain(chain, settings, model, callback, control)
        },
    );
    let chains = driver::collect(outcomes)?;
    let interrupted = chains.iter().any(|c| c.interrupted);
    Ok(ReversibleJumpResult {
        chains,
        interrupted,
    })
}

/// One chain's state: the units, the shared coordinates and the cached log marginal.
struct State<M> {
    chain: usize,
    model: M,
    unit_dim: usize,
    units: Vec<f64>,
    shared: Vec<f64>,
    log_marginal: f64,
    scratch: Vec<f64>,
    moves: MoveCounts,
}

impl<M: HiddenUnitModel> State<M> {
    fn n_units(&self) -> usize {
        self.units.len() / self.unit_dim
    }

    /// log_marginal at (units, shared): `None` when not finite or failing recoverably.
    fn evaluate(
        &mut self,
        units: &[f64],
        shared: &[f64],
        iteration: usize,
    ) -> Result<Option<f64>, ReversibleJumpError> {
        match self.model.log_marginal(units, shared) {
            Ok(value) if value.is_finite() => Ok(Some(value)),
            Ok(_) => Ok(None),
            Err(error) if error.recoverable => Ok(None),
            Err(error) => Err(ReversibleJumpError::Model {
                chain: self.chain,
                iteration,
                message: error.message,
            }),
        }
    }

    /// Accepts with probability min(1, exp(log_ratio)).
    fn accept(log_ratio: f64, rng: &mut Rng) -> bool {
        log_ratio >= 0.0 || rng.random::<f64>() < log_ratio.exp()
    }

    /// One random-walk step on unit `j`; returns the acceptance probability.
    fn move_unit(
        &mut self,
        j: usize,
        proposal: &mut AdaptiveProposal,
        rng: &mut Rng,
        iteration: usize,
        sampling: bool,
    ) -> Result<f64, ReversibleJumpError> {
        let range = j * self.unit_dim..(j + 1) * self.unit_dim;
        self.scratch.clone_from(&self.units);
        proposal.propose(
            rng,
            &self.units[range.clone()],
            &mut self.scratch[range.clone()],
        );
        let candidate = std::mem::take(&mut self.scratch);
        let shared = self.shared.clone();
        let proposed = self.evaluate(&candidate, &shared, iteration)?;
        let probability = match proposed {
            None => {
                self.moves.nonfinite_proposals += 1;
                0.0
            }
            Some(value) => {
                let log_ratio = value + self.model.log_prior_unit(&candidate[range.clone()])
                    - self.log_marginal
                    - self.model.log_prior_unit(&self.units[range.clone()]);
                log_ratio.exp().min(1.0)
            }
        };
        let accepted = probability > 0.0 && rng.random::<f64>() < probability;
        if sampling {
            self.moves.unit_moves_proposed += 1;
            self.moves.unit_moves_accepted += u64::from(accepted);
        }
        if let (true, Some(value)) = (accepted, proposed) {
            self.units.copy_from_slice(&candidate);
            self.log_marginal = value;
        }
        self.scratch = candidate;
        Ok(probability)
    }

    /// One random-walk step on the shared coordinates; returns the acceptance probability.
    fn move_shared(
        &mut self,
        proposal: &mut AdaptiveProposal,
        rng: &mut Rng,
        iteration: usize,
    ) -> Result<f64, ReversibleJumpError> {
        let mut candidate = self.shared.clone();
        proposal.propose(rng, &self.shared, &mut candidate);
        let units = self.units.clone();
        let probability = match self.evaluate(&units, &candidate, iteration)? {
            None => {
                self.moves.nonfinite_proposals += 1;
                0.0
            }
            Some(value) => {
                let probability = (value - self.log_marginal).exp().min(1.0);
                if rng.random::<f64>() < probability {
                    self.shared = candidate;
                    self.log_marginal = value;
                }
                probability
            }
        };
        Ok(probability)
    }

    /// One birth or death move.
    fn jump(
        &mut self,
        rng: &mut Rng,
        iteration: usize,
        sampling: bool,
    ) -> Result<(), ReversibleJumpError> {
        let n_units = self.n_units();
        let max_units = self.model.max_units();
        let birth = rng.random::<f64>() < birth_probability(n_units, max_units);
        let mut candidate = self.units.clone();
        let new_count = if birth {
            let mut unit = vec![0.0; self.unit_dim];
            self.model.sample_unit(rng, &mut unit);
            let place = rng.random_range(0..=n_units);
            let at = place * self.unit_dim;
            candidate.splice(at..at, unit);
            n_units + 1
        } else {
            let place = rng.random_range(0..n_units);
            candidate.drain(place * self.unit_dim..(place + 1) * self.unit_dim);
            n_units - 1
        };
        let shared = self.shared.clone();
        // A number of units the prior excludes is rejected without evaluating the model.
        let proposed = if self.model.log_prior_units(new_count).is_finite() {
            self.evaluate(&candidate, &shared, iteration)?
        } else {
            None
        };
        // log A = log p(y | γ') − log p(y | γ) + log p(M') − log p(M) + log q(M' → M) − log q(M → M')
        // with q the birth or death probability of each direction.
        let (forward, backward) = if birth {
            (
                birth_probability(n_units, max_units),
                1.0 - birth_probability(new_count, max_units),
            )
        } else {
            (
                1.0 - birth_probability(n_units, max_units),
                birth_probability(new_count, max_units),
            )
        };
        let accepted = match proposed {
            None => {
                if self.model.log_prior_units(new_count).is_finite() {
                    self.moves.nonfinite_proposals += 1;
                }
                false
            }
            Some(value) => {
                let log_ratio = value - self.log_marginal + self.model.log_prior_units(new_count)
                    - self.model.log_prior_units(n_units)
                    + backward.ln()
                    - forward.ln();
                let accepted = !log_ratio.is_nan() && State::<M>::accept(log_ratio, rng);
                if accepted {
                    self.units = candidate;
                    self.log_marginal = value;
                }
                accepted
            }
        };
        if sampling {
            if birth {
                self.moves.births_proposed += 1;
                self.moves.births_accepted += u64::from(accepted);
            } else {
                self.moves.deaths_proposed += 1;
                self.moves.deaths_accepted += u64::from(accepted);
            }
        }
        Ok(())
    }

    fn log_density(&self) -> f64 {
        let unit_priors: f64 = self
            .units
            .chunks_exact(self.unit_dim)
            .map(|unit| self.model.log_prior_unit(unit))
            .sum();
        self.model.log_prior_units(self.n_units()) + unit_priors + self.log_marginal
    }
}

/// Runs one chain to the end, or until `control` says to stop.
fn run_chain<M, C>(
    chain: usize,
    settings: &ReversibleJumpSettings,
    model: M,
    callback: &C,
    control: Control<'_>,
) -> Result<ReversibleJumpChain, ReversibleJumpError>
where
    M: HiddenUnitModel,
    C: Fn(&Progress) + Sync,
{
    let start = Instant::now();
    let mut rng = unit_rng(settings.seed, chain);
    let unit_dim = model.unit_dim();
    let shared_dim = model.shared_dim();
    let mut state = State {
        chain,
        model,
        unit_dim,
        units: Vec::new(),
        shared: vec![0.0; shared_dim],
        log_marginal: f64::NEG_INFINITY,
        scratch: Vec::new(),
        moves: MoveCounts::default(),
    };

    let mut last_message = String::from("no initial point was tried");
    for _ in 0..settings.max_init_attempts {
        state.units = vec![0.0; settings.initial_units * unit_dim];
        for unit in state.units.chunks_exact_mut(unit_dim) {
            state.model.sample_unit(&mut rng, unit);
        }
        for s in state.shared.iter_mut() {
            *s = settings.init_radius * (2.0 * rng.random::<f64>() - 1.0);
        }
        match state.model.log_marginal(&state.units, &state.shared) {
            Ok(value) if value.is_finite() => {
                state.log_marginal = value;
                break;
            }
            Ok(value) => last_message = format!("the log marginal is {value}"),
            Err(error) if error.recoverable => last_message = error.message,
            Err(error) => {
                return Err(ReversibleJumpError::Initialisation {
                    chain,
                    message: error.message,
                })
            }
        }
    }
    if !state.log_marginal.is_finite() {
        return Err(ReversibleJumpError::Initialisation {
            chain,
            message: last_message,
        });
    }

    // Scalar scales only: the units share one, adapted once per unit move.
    let rwm = RwmSettings {
        adapt_covariance: false,
        ..settings.rwm.clone()
    };
    let mut unit_proposal = AdaptiveProposal::new(unit_dim, &rwm);
    let mut shared_proposal = AdaptiveProposal::new(shared_dim, &rwm);
    let mut n_unit_adaptations = 0;
    let schedule = Schedule {
        warmup: settings.warmup,
        samples: settings.samples,
        thin: settings.thin,
    };
    let mut draws = Vec::with_capacity(settings.samples);
    let driven = drive(&schedule, control, start, |step| {
        let Iteration {
            index: iteration,
            warmup,
            kept,
        } = step;
        for j in 0..state.n_units() {
            let probability =
                state.move_unit(j, &mut unit_proposal, &mut rng, iteration, !warmup)?;
            if warmup {
                unit_proposal.adapt(&rwm, n_unit_adaptations, probability, &[]);
                n_unit_adaptations += 1;
            }
        }
        if shared_dim > 0 {
            let probability = state.move_shared(&mut shared_proposal, &mut rng, iteration)?;
            if warmup {
                shared_proposal.adapt(&rwm, iteration, probability, &[]);
            }
        }
        state.jump(&mut rng, iteration, !warmup)?;
        if kept {
            let output_weights =
                match state
                    .model
                    .draw_output_weights(&state.units, &state.shared, &mut rng)
                {
                    Ok(weights) => weights,
                    Err(error) if error.recoverable => Vec::new(),
                    Err(error) => {
                        return Err(ReversibleJumpError::Model {
                            chain,
                            iteration,
                            message: error.message,
                        })
                    }
                };
            draws.push(ReversibleJumpDraw {
                n_units: state.n_units(),
                units: state.units.clone(),
                shared: state.shared.clone(),
                output_weights,
                log_density: state.log_density(),
            });
        }
        callback(&Progress {
            unit: chain,
            iteration,
            total: schedule.n_iterations(),
            phase: if warmup {
                Phase::Warmup
            } else {
                Phase::Sampling
            },
            kept,
            loss: None,
            divergent: false,
        });
        Ok(())
    })?;
    Ok(ReversibleJumpChain {
        chain,
        draws,
        moves: state.moves,
        interrupted: driven.interrupted,
    })
}
