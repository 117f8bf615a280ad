//! Metropolis-within-Gibbs, as the teaching material samples its shallow Bayesian network.
//!
//! A [`GibbsModel`] splits its unconstrained position into blocks ([`GibbsBlock`]). Each sweep
//! visits the blocks in order:
//!
//! - a [`BlockKind::Conjugate`] block is drawn exactly from its full conditional by the model
//!   ([`GibbsModel::draw_conditional`]; [`conjugate`] holds the maths: the multivariate normal of
//!   output weights, Gamma and Wishart precisions, normal means);
//! - a [`BlockKind::Metropolis`] block takes one adaptive random-walk Metropolis step ([`rwm`])
//!   on the joint log density, or, when it names a marginalised conjugate block and collapsing is
//!   on, on the log density with that block integrated out ([`GibbsModel::log_marginal`], the
//!   lecture's p(D | γ, ν)). After a run of consecutive collapsed blocks the marginalised block
//!   is redrawn exactly from its conditional before any other block reads it, as partially
//!   collapsed Gibbs requires (van Dyk and Park, 2008) and as the lecture orders its steps: β,
//!   then each γⱼ with β integrated out, then the hyper-parameters given β and γ.
//!
//! [`reversible_jump`] adds the lecture's architecture selection: reversible-jump moves over the
//! number of hidden units, with the output weights integrated out.
//!
//! Proposals adapt during warm-up only. Chains run in parallel with rayon, or one after the
//! other with identical results: chain `c` draws every random number from `stream_rng(seed, c)`.
//! A callback sees every sweep as a [`Progress`], [`sample_into`] streams every kept draw to a [`DrawSink`] as it
//! is made, and a stop flag ends all chains early, keeping finished draws.
//! A proposal whose log density is not finite, or fails recoverably, is rejected and counted; a
//! conjugate draw that fails recoverably or writes non-finite values leaves the block unchanged
//! and is counted; a fatal model error stops the run.

pub mod conjugate;
pub mod reversible_jump;
pub mod rwm;

pub use conjugate::{
    gamma_precision_posterior, linear_gaussian_log_marginal, linear_gaussian_posterior,
    normal_mean_posterior, normal_mean_posterior_scalar, wishart_precision_posterior,
    ConjugateError, GammaParams, MultivariateNormal, Wishart,
};
pub use reversible_jump::{
    sample_units, HiddenUnitModel, ReversibleJumpDraw, ReversibleJumpError, ReversibleJumpResult,
    ReversibleJumpSettings,
};
pub use rwm::RwmSettings;

use crate::density::LogDensityError;
pub use crate::driver::Init;
use crate::driver::{
    self, drive, initialise, unit_rng, Control, DrawSink, DrawStats, Iteration, NoSink, Phase,
    Progress, Schedule, Units,
};
use crate::rng::Rng;
use rand::Rng as _;
use rwm::AdaptiveProposal;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// How a block is updated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Drawn exactly from its full conditional.
    Conjugate,
    /// One adaptive random-walk Metropolis step per sweep.
    Metropolis {
        /// A conjugate block integrated out of the acceptance ratio (through
        /// [`GibbsModel::log_marginal`]) and redrawn afterwards, when collapsing is on.
        marginalise: Option<usize>,
    },
}

/// A named block of coordinates and how it is updated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GibbsBlock {
    /// The name used in messages and statistics (for example a site name).
    pub name: String,
    /// The block's coordinates in the position vector.
    pub range: Range<usize>,
    /// How it is updated.
    pub kind: BlockKind,
}

impl GibbsBlock {
    /// A block drawn exactly from its conditional.
    pub fn conjugate(name: impl Into<String>, range: Range<usize>) -> Self {
        GibbsBlock {
            name: name.into(),
            range,
            kind: BlockKind::Conjugate,
        }
    }

    /// A block updated by random-walk Metropolis on the joint density.
    pub fn metropolis(name: impl Into<String>, range: Range<usize>) -> Self {
        GibbsBlock {
            name: name.into(),
            range,
            kind: BlockKind::Metropolis { marginalise: None },
        }
    }

    /// A block updated by random-walk Metropolis with block `marginalise` integrated out.
    pub fn collapsed(name: impl Into<String>, range: Range<usize>, marginalise: usize) -> Self {
        GibbsBlock {
            name: name.into(),
            range,
            kind: BlockKind::Metropolis {
                marginalise: Some(marginalise),
            },
        }
    }

    /// The number of coordinates.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether the block has no coordinates (never true of a valid block).
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

/// What Metropolis-within-Gibbs needs from a model. The runtime implements it for a model whose
/// blocks are declared in the model file or on the command line; tests implement it for
/// closed-form models.
pub trait GibbsModel: Send {
    /// The length of the unconstrained position vector.
    fn dim(&self) -> usize;

    /// The blocks, in sweep order; together they cover every coordinate exactly once.
    fn blocks(&self) -> Vec<GibbsBlock>;

    /// The joint log density at `position` (unconstrained, Jacobians included), up to a constant.
    fn log_density(&mut self, position: &[f64]) -> Result<f64, LogDensityError>;

    /// Draws block `block` exactly from its full conditional given the other coordinates of
    /// `position`, writing it into `position`. Models without conjugate blocks need not
    /// implement it.
    fn draw_conditional(
        &mut self,
        block: usize,
        position: &mut [f64],
        rng: &mut Rng,
    ) -> Result<(), LogDensityError> {
        let _ = (position, rng);
        Err(LogDensityError::fatal(format!(
            "the model cannot draw block {block} from its conditional"
        )))
    }

    /// The log density with block `marginalised_block` integrated out, at the other coordinates
    /// of `position` (its own coordinates are ignored), up to a constant that does not depend on
    /// them; `None` when the model cannot compute it.
    fn log_marginal(
        &mut self,
        marginalised_block: usize,
        position: &[f64],
    ) -> Option<Result<f64, LogDensityError>> {
        let _ = (marginalised_block, position);
        None
    }
}

/// Everything that configures a Gibbs run.
#[derive(Clone, Debug, PartialEq)]
pub struct GibbsSettings {
    /// The number of chains.
    pub chains: usize,
    /// Warm-up sweeps per chain (proposals adapt; draws are not kept).
    pub warmup: usize,
    /// Kept draws per chain; sampling runs `samples × thin` sweeps and keeps the last of every
    /// `thin`.
    pub samples: usize,
    /// Keep one sweep in this many (at least 1).
    pub thin: usize,
    /// The seed of every chain's random stream.
    pub seed: u64,
    /// The index of this run's first chain in a larger split run: chain `c` draws from the
    /// random stream of chain `first_chain + c` (see [`crate::mcmc::McmcSettings::first_chain`]).
    pub first_chain: usize,
    /// Where chains start.
    pub init: Init,
    /// How many random starting points to try before giving up.
    pub max_init_attempts: usize,
    /// Use the collapsed updates that blocks declare; when off, every Metropolis block uses the
    /// joint density.
    pub collapse: bool,
    /// The adaptive random-walk Metropolis tuning.
    pub rwm: RwmSettings,
    /// Run chains in parallel with rayon (the draws are the same either way).
    pub parallel: bool,
}

impl Default for GibbsSettings {
    fn default() -> Self {
        GibbsSettings {
            chains: 4,
            warmup: 1000,
            samples: 1000,
            thin: 1,
            seed: 0,
            first_chain: 0,
            init: Init::default(),
            max_init_attempts: 100,
            collapse: true,
            rwm: RwmSettings::default(),
            parallel: true,
        }
    }
}

impl GibbsSettings {
    /// Checks the settings for a model of dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<(), GibbsError> {
        let invalid = |message: String| Err(GibbsError::InvalidSettings { message });
        if self.chains == 0 {
            return invalid("at least one chain is needed".into());
        }
        if self.thin == 0 {
            return invalid("the thinning interval must be at least 1".into());
        }
        if self.max_init_attempts == 0 {
            return invalid("at least one initialisation attempt is needed".into());
        }
        if (self.warmup as u64)
            .saturating_add((self.samples as u64).saturating_mul(self.thin as u64))
            >= 1 << 40
        {
            return invalid("too many sweeps per chain".into());
        }
        self.rwm
            .validate()
            .map_err(|message| GibbsError::InvalidSettings { message })?;
        self.init
            .validate(self.chains, dim)
            .map_err(|message| GibbsError::InvalidSettings { message })?;
        Ok(())
    }
}

/// Checks that `blocks` cover the `dim` coordinates exactly once and that collapsed blocks
/// marginalise a conjugate block other than themselves.
pub fn validate_blocks(blocks: &[GibbsBlock], dim: usize) -> Result<(), GibbsError> {
    let invalid = |message: String| Err(GibbsError::InvalidBlocks { message });
    if blocks.is_empty() {
        return invalid("the model declares no blocks".into());
    }
    let mut owner: Vec<Option<usize>> = vec![None; dim];
    for (b, block) in blocks.iter().enumerate() {
        if block.range.is_empty() {
            return invalid(format!("block '{}' has no coordinates", block.name));
        }
        if block.range.end > dim {
            return invalid(format!(
                "block '{}' covers coordinates {}..{} but the model has {dim}",
                block.name, block.range.start, block.range.end
            ));
        }
        for i in block.range.clone() {
            if let Some(other) = owner[i] {
                return invalid(format!(
                    "coordinate {i} belongs to both block '{}' and block '{}'",
                    blocks[other].name, block.name
                ));
            }
            owner[i] = Some(b);
        }
        if let BlockKind::Metropolis {
            marginalise: Some(m),
        } = block.kind
        {
            match blocks.get(m) {
                None => {
                    return invalid(format!(
                        "block '{}' marginalises block {m}, which does not exist",
                        block.name
                    ))
                }
                Some(_) if m == b => {
                    return invalid(format!("block '{}' cannot marginalise itself", block.name))
                }
                Some(target) if target.kind != BlockKind::Conjugate => {
                    return invalid(format!(
                        "block '{}' marginalises block '{}', which is not conjugate and so cannot \
                         be redrawn exactly",
                        block.name, target.name
                    ))
                }
                Some(_) => {}
            }
        }
    }
    if let Some(i) = owner.iter().position(|o| o.is_none()) {
        return invalid(format!("coordinate {i} belongs to no block"));
    }
    Ok(())
}

/// What happened to one block in one chain.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockStats {
    /// The block's name.
    pub name: String,
    /// Metropolis proposals during warm-up.
    pub warmup_proposals: u64,
    /// Accepted Metropolis proposals during warm-up.
    pub warmup_accepted: u64,
    /// Metropolis proposals during sampling.
    pub proposals: u64,
    /// Accepted Metropolis proposals during sampling.
    pub accepted: u64,
    /// Proposals rejected because their log density was not finite or failed recoverably.
    pub nonfinite_proposals: u64,
    /// Conjugate draws that failed recoverably or were not finite (the block kept its values).
    pub failed_draws: u64,
    /// The adapted proposal scale s (Metropolis blocks).
    pub proposal_scale: Option<f64>,
    /// The target acceptance rate (Metropolis blocks).
    pub target_acceptance: Option<f64>,
}

impl BlockStats {
    /// The acceptance rate during sampling (`None` for conjugate blocks or without sampling).
    pub fn acceptance_rate(&self) -> Option<f64> {
        (self.proposals > 0).then(|| self.accepted as f64 / self.proposals as f64)
    }

    /// The acceptance rate during warm-up.
    pub fn warmup_acceptance_rate(&self) -> Option<f64> {
        (self.warmup_proposals > 0)
            .then(|| self.warmup_accepted as f64 / self.warmup_proposals as f64)
    }
}

/// The output of one chain.
#[derive(Clone, Debug, PartialEq)]
pub struct GibbsChain {
    /// The chain index, from 0.
    pub chain: usize,
    /// The number of coordinates per draw.
    pub dim: usize,
    /// The kept draws, `n_draws × dim`, one draw after another.
    pub draws: Vec<f64>,
    /// The joint log density of each kept draw (−∞ where the model could not evaluate it).
    pub log_densities: Vec<f64>,
    /// Per-block statistics, in block order.
    pub blocks: Vec<BlockStats>,
    /// Evaluations of the joint or marginal log density.
    pub n_density_evaluations: u64,
    /// Wall time of initialisation and warm-up.
    pub warmup_time: Duration,
    /// Wall time of sampling.
    pub sampling_time: Duration,
    /// Whether the stop flag ended this chain before all its sweeps.
    pub interrupted: bool,
}

impl GibbsChain {
    /// The number of kept draws.
    pub fn n_draws(&self) -> usize {
        self.log_densities.len()
    }

    /// Draw `i`; panics when `i >= n_draws()`.
    pub fn draw(&self, i: usize) -> &[f64] {
        &self.draws[i * self.dim..(i + 1) * self.dim]
    }
}

/// The output of [`sample`].
#[derive(Clone, Debug, PartialEq)]
pub struct GibbsResult {
    /// The number of unconstrained coordinates.
    pub dim: usize,
    /// The blocks the run used.
    pub blocks: Vec<GibbsBlock>,
    /// The chains, in index order.
    pub chains: Vec<GibbsChain>,
    /// The settings the run used.
    pub settings: GibbsSettings,
    /// Whether the stop flag ended the run early.
    pub interrupted: bool,
}

impl GibbsResult {
    /// The kept draws of every chain, as slices (`n_draws × dim` each), the layout that
    /// [`crate::diagnostics::Summary::from_draws`] takes.
    pub fn draw_slices(&self) -> Vec<&[f64]> {
        self.chains.iter().map(|c| c.draws.as_slice()).collect()
    }

    /// The sampling acceptance rate of block `block` pooled over chains (`None` for conjugate
    /// blocks).
    pub fn acceptance_rate(&self, block: usize) -> Option<f64> {
        let (accepted, proposals) = self.chains.iter().fold((0u64, 0u64), |(a, p), chain| {
            chain
                .blocks
                .get(block)
                .map_or((a, p), |s| (a + s.accepted, p + s.proposals))
        });
        (proposals > 0).then(|| accepted as f64 / proposals as f64)
    }
}

/// Why a run could not produce draws.
#[derive(Clone, Debug, PartialEq)]
pub enum GibbsError {
    /// The settings are inconsistent.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// The model's blocks are inconsistent.
    InvalidBlocks {
        /// What is wrong.
        message: String,
    },
    /// The model has no coordinates.
    NoParameters,
    /// The factory made models of different dimensions or blocks.
    ModelMismatch {
        /// The chain whose model differs from chain 0's.
        chain: usize,
        /// How it differs.
        message: String,
    },
    /// No starting point had a finite log density.
    Initialisation {
        /// The chain.
        chain: usize,
        /// How many points were tried.
        attempts: usize,
        /// The model's message for the last point tried.
        message: String,
    },
    /// A block needs a marginal density the model does not provide.
    MissingMarginal {
        /// The collapsed block.
        block: String,
        /// The block it marginalises.
        marginalised: String,
    },
    /// The model failed fatally.
    Model {
        /// The chain.
        chain: usize,
        /// The sweep, counting warm-up first.
        iteration: usize,
        /// The block being updated.
        block: String,
        /// The model's message.
        message: String,
    },
    /// The draw sink could not take a draw (it keeps the reason) and the chain stopped.
    Output {
        /// The chain.
        chain: usize,
    },
}

impl fmt::Display for GibbsError {
    /// Chains and sweeps are numbered from 1 in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GibbsError::InvalidSettings { message } => {
                write!(f, "invalid sampler settings: {message}")
            }
            GibbsError::InvalidBlocks { message } => write!(f, "invalid Gibbs blocks: {message}"),
            GibbsError::NoParameters => f.write_str("the model has no parameters to sample"),
            GibbsError::ModelMismatch { chain, message } => {
                write!(f, "chain {}: {message}", chain + 1)
            }
            GibbsError::Initialisation {
                chain,
                attempts,
                message,
            } => write!(
                f,
                "chain {} could not be initialised after {attempts} attempt{}: {message}",
                chain + 1,
                if *attempts == 1 { "" } else { "s" }
            ),
            GibbsError::MissingMarginal {
                block,
                marginalised,
            } => write!(
                f,
                "block '{block}' integrates out block '{marginalised}', but the model provides \
                 no marginal density for it"
            ),
            GibbsError::Model {
                chain,
                iteration,
                block,
                message,
            } => write!(
                f,
                "chain {} stopped at sweep {} while updating block '{block}': {message}",
                chain + 1,
                iteration + 1
            ),
            GibbsError::Output { chain } => {
                write!(
                    f,
                    "chain {} stopped: its draws could not be written",
                    chain + 1
                )
            }
        }
    }
}

impl std::error::Error for GibbsError {}

/// Runs `settings.chains` chains of Metropolis-within-Gibbs on models made by
/// `make_model(chain)`.
///
/// `callback` is called on each chain's thread after every sweep; it must be quick. Setting
/// `stop` ends every chain before its next sweep; the result then holds the draws finished so far
/// and `interrupted` is true. The draws never depend on `parallel` or the number of threads.
pub fn sample<M, F, C>(
    settings: &GibbsSettings,
    make_model: F,
    callback: &C,
    stop: &AtomicBool,
) -> Result<GibbsResult, GibbsError>
where
    M: GibbsModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
{
    sample_into(settings, make_model, callback, &NoSink, stop)
}

/// [`sample`], streaming each chain's kept draws to `sink` as they are made (after the callback
/// has seen the sweep). The sink changes no random number: the draws, and the result, are those
/// of [`sample`]. A sink that refuses a draw stops the run with [`GibbsError::Output`].
pub fn sample_into<M, F, C>(
    settings: &GibbsSettings,
    make_model: F,
    callback: &C,
    sink: &dyn DrawSink,
    stop: &AtomicBool,
) -> Result<GibbsResult, GibbsError>
where
    M: GibbsModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
{
    // Chain 0's model is made first to learn the dimension and the blocks, and kept for chain 0.
    let units = Units::new(make_model);
    let Some((dim, blocks)) = units.first(|model| (model.dim(), model.blocks())) else {
        return Err(GibbsError::NoParameters);
    };
    if dim == 0 {
        return Err(GibbsError::NoParameters);
    }
    validate_blocks(&blocks, dim)?;
    settings.validate(dim)?;
    let outcomes = units.run(
        settings.chains,
        settings.parallel,
        stop,
        |chain, model, control| {
            if model.dim() != dim {
                Err(GibbsError::ModelMismatch {
                    chain,
                    message: format!(
                        "the model has dimension {}, but chain 1's has {dim}",
                        model.dim()
                    ),
                })
            } else if model.blocks() != blocks {
                Err(GibbsError::ModelMismatch {
                    chain,
                    message: "the model declares different blocks from chain 1's".into(),
                })
            } else {
                run_chain(chain, settings, &blocks, model, callback, sink, control)
            }
        },
    );
    let chains = driver::collect(outcomes)?;
    let interrupted = chains.iter().any(|c| c.interrupted);
    Ok(GibbsResult {
        dim,
        blocks,
        chains,
        settings: settings.clone(),
        interrupted,
    })
}

/// A chain's model, its cached log densities and its bookkeeping.
struct ChainState<'a, M> {
    chain: usize,
    model: M,
    blocks: &'a [GibbsBlock],
    position: Vec<f64>,
    proposal: Vec<f64>,
    saved_block: Vec<f64>,
    /// The joint log density at `position`, when known.
    joint: Option<f64>,
    /// The marginal log density (with the given block integrated out) at `position`, when known.
    marginal: Option<(usize, f64)>,
    stats: Vec<BlockStats>,
    proposals: Vec<Option<AdaptiveProposal>>,
    evaluations: u64,
}

/// Which density a Metropolis block targets.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Joint,
    Marginal(usize),
}

impl<M: GibbsModel> ChainState<'_, M> {
    fn model_error(&self, iteration: usize, block: usize, message: String) -> GibbsError {
        GibbsError::Model {
            chain: self.chain,
            iteration,
            block: self.blocks[block].name.clone(),
            message,
        }
    }

    /// Evaluates `target` at `self.proposal` (or at the position when `at_position`): `Ok(None)`
    /// for a non-finite value or a recoverable failure.
    fn evaluate(
        &mut self,
        target: Target,
        at_position: bool,
        iteration: usize,
        block: usize,
    ) -> Result<Option<f64>, GibbsError> {
        self.evaluations += 1;
        let point = if at_position {
            &self.position
        } else {
            &self.proposal
        };
        let outcome = match target {
            Target::Joint => self.model.log_density(point),
            Target::Marginal(m) => match self.model.log_marginal(m, point) {
                Some(outcome) => outcome,
                None => {
                    return Err(GibbsError::MissingMarginal {
                        block: self.blocks[block].name.clone(),
                        marginalised: self.blocks[m].name.clone(),
                    })
                }
            },
        };
        match outcome {
            Ok(value) if value.is_finite() => Ok(Some(value)),
            Ok(_) => Ok(None),
            Err(error) if error.recoverable => Ok(None),
            Err(error) => Err(self.model_error(iteration, block, error.message)),
        }
    }

    /// The target density at the current position, from the cache or evaluated (−∞ when it is
    /// not finite).
    fn current(
        &mut self,
        target: Target,
        iteration: usize,
        block: usize,
    ) -> Result<f64, GibbsError> {
        let cached = match target {
            Target::Joint => self.joint,
            Target::Marginal(m) => self.marginal.filter(|(b, _)| *b == m).map(|(_, v)| v),
        };
        if let Some(value) = cached {
            return Ok(value);
        }
        let value = self
            .evaluate(target, true, iteration, block)?
            .unwrap_or(f64::NEG_INFINITY);
        match target {
            Target::Joint => self.joint = Some(value),
            Target::Marginal(m) => self.marginal = Some((m, value)),
        }
        Ok(value)
    }

    /// Draws conjugate block `block` from its conditional.
    fn draw_conjugate(
        &mut self,
        block: usize,
        iteration: usize,
        rng: &mut Rng,
    ) -> Result<(), GibbsError> {
        let range = self.blocks[block].range.clone();
        self.saved_block.clear();
        self.saved_block
            .extend_from_slice(&self.position[range.clone()]);
        let outcome = self.model.draw_conditional(block, &mut self.position, rng);
        let failed = match outcome {
            Ok(()) => self.position[range.clone()].iter().any(|v| !v.is_finite()),
            Err(error) if error.recoverable => true,
            Err(error) => return Err(self.model_error(iteration, block, error.message)),
        };
        if failed {
            self.position[range].copy_from_slice(&self.saved_block);
            self.stats[block].failed_draws += 1;
            return Ok(());
        }
        // The joint changes; a marginal over this very block does not depend on it.
        self.joint = None;
        if self.marginal.is_some_and(|(m, _)| m != block) {
            self.marginal = None;
        }
        Ok(())
    }

    /// One Metropolis step on block `block`.
    fn metropolis(
        &mut self,
        block: usize,
        target: Target,
        iteration: usize,
        warmup: Option<(&RwmSettings, usize)>,
        rng: &mut Rng,
    ) -> Result<(), GibbsError> {
        let range = self.blocks[block].range.clone();
        let current = self.current(target, iteration, block)?;
        self.proposal.copy_from_slice(&self.position);
        if let Some(proposal) = self.proposals[block].as_mut() {
            proposal.propose(
                rng,
                &self.position[range.clone()],
                &mut self.proposal[range.clone()],
            );
        }
        let proposed = self.evaluate(target, false, iteration, block)?;
        let acceptance_probability = match proposed {
            None => {
                self.stats[block].nonfinite_proposals += 1;
                0.0
            }
            // From a point of zero density any finite proposal is accepted.
            Some(_) if current == f64::NEG_INFINITY => 1.0,
            Some(value) => (value - current).exp().min(1.0),
        };
        let accepted = acceptance_probability > 0.0 && rng.random::<f64>() < acceptance_probability;
        let stats = &mut self.stats[block];
        if warmup.is_some() {
            stats.warmup_proposals += 1;
            stats.warmup_accepted += u64::from(accepted);
        } else {
            stats.proposals += 1;
            stats.accepted += u64::from(accepted);
        }
        if accepted {
            self.position[range.clone()].copy_from_slice(&self.proposal[range.clone()]);
            let value = proposed.unwrap_or(f64::NEG_INFINITY);
            match target {
                Target::Joint => {
                    self.joint = Some(value);
                    self.marginal = None;
                }
                Target::Marginal(m) => {
                    self.marginal = Some((m, value));
                    self.joint = None;
                }
            }
        }
        if let (Some((rwm, warmup_iteration)), Some(proposal)) =
            (warmup, self.proposals[block].as_mut())
        {
            proposal.adapt(
                rwm,
                warmup_iteration,
                acceptance_probability,
                &self.position[range],
            );
            self.stats[block].proposal_scale = Some(proposal.scale());
        }
        Ok(())
    }

    /// One sweep over the blocks.
    fn sweep(
        &mut self,
        settings: &GibbsSettings,
        iteration: usize,
        rng: &mut Rng,
    ) -> Result<(), GibbsError> {
        let warmup = (iteration < settings.warmup).then_some((&settings.rwm, iteration));
        let collapsed_over = |block: &GibbsBlock| match block.kind {
            BlockKind::Metropolis {
                marginalise: Some(m),
            } if settings.collapse => Some(m),
            _ => None,
        };
        for b in 0..self.blocks.len() {
            match self.blocks[b].kind {
                BlockKind::Conjugate => self.draw_conjugate(b, iteration, rng)?,
                BlockKind::Metropolis { .. } => {
                    let marginalised = collapsed_over(&self.blocks[b]);
                    let target = marginalised.map_or(Target::Joint, Target::Marginal);
                    self.metropolis(b, target, iteration, warmup, rng)?;
                    if let Some(m) = marginalised {
                        // Redraw the integrated-out block before anything else reads it, unless
                        // the next block continues the collapsed run or is that block itself.
                        let next = self.blocks.get(b + 1);
                        let continues = next.is_some_and(|n| collapsed_over(n) == Some(m));
                        if !continues && b + 1 != m {
                            self.draw_conjugate(m, iteration, rng)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs chain `chain` to the end, or until `control` says to stop.
fn run_chain<M, C>(
    chain: usize,
    settings: &GibbsSettings,
    blocks: &[GibbsBlock],
    model: M,
    callback: &C,
    sink: &dyn DrawSink,
    control: Control<'_>,
) -> Result<GibbsChain, GibbsError>
where
    M: GibbsModel,
    C: Fn(&Progress) + Sync,
{
    let start = Instant::now();
    let dim = model.dim();
    let mut rng = unit_rng(settings.seed, settings.first_chain + chain);
    let mut state = ChainState {
        chain,
        model,
        blocks,
        position: vec![0.0; dim],
        proposal: vec![0.0; dim],
        saved_block: Vec::with_capacity(dim),
        joint: None,
        marginal: None,
        stats: blocks
            .iter()
            .map(|block| {
                let metropolis = matches!(block.kind, BlockKind::Metropolis { .. });
                BlockStats {
                    name: block.name.clone(),
                    warmup_proposals: 0,
                    warmup_accepted: 0,
                    proposals: 0,
                    accepted: 0,
                    nonfinite_proposals: 0,
                    failed_draws: 0,
                    proposal_scale: metropolis.then_some(settings.rwm.initial_scale),
                    target_acceptance: metropolis.then(|| settings.rwm.target_for(block.len())),
                }
            })
            .collect(),
        proposals: blocks
            .iter()
            .map(|block| match block.kind {
                BlockKind::Metropolis { .. } => {
                    Some(AdaptiveProposal::new(block.len(), &settings.rwm))
                }
                BlockKind::Conjugate => None,
            })
            .collect(),
        evaluations: 0,
    };
    initialise_chain(&mut state, settings, &mut rng)?;

    let schedule = Schedule {
        warmup: settings.warmup,
        samples: settings.samples,
        thin: settings.thin,
    };
    let mut draws = Vec::with_capacity(settings.samples * dim);
    let mut log_densities = Vec::with_capacity(settings.samples);
    let output_failed = |_| GibbsError::Output { chain };
    sink.header(chain, dim).map_err(output_failed)?;
    let driven = drive(&schedule, control, start, |step| {
        let Iteration {
            index: iteration,
            warmup,
            kept,
        } = step;
        state.sweep(settings, iteration, &mut rng)?;
        if kept {
            let log_density = match state.blocks.len() {
                0 => f64::NEG_INFINITY,
                _ => state.current(Target::Joint, iteration, 0)?,
            };
            draws.extend_from_slice(&state.position);
            log_densities.push(log_density);
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
        if kept {
            let stats = DrawStats {
                sampler: "gibbs",
                iteration,
                step_size: None,
                transition: None,
            };
            sink.draw(chain, log_densities.len() - 1, &state.position, &stats)
                .map_err(output_failed)?;
        }
        Ok(())
    })?;
    sink.finish(chain, driven.interrupted)
        .map_err(output_failed)?;
    for (stats, proposal) in state.stats.iter_mut().zip(&state.proposals) {
        if let Some(proposal) = proposal {
            stats.proposal_scale = Some(proposal.scale());
            stats.target_acceptance = Some(proposal.target());
        }
    }
    Ok(GibbsChain {
        chain,
        dim,
        draws,
        log_densities,
        blocks: state.stats,
        n_density_evaluations: state.evaluations,
        warmup_time: driven.warmup_time,
        sampling_time: driven.sampling_time,
        interrupted: driven.interrupted,
    })
}

/// Finds a starting point whose joint log density is finite: the given one, or uniform draws.
fn initialise_chain<M: GibbsModel>(
    state: &mut ChainState<'_, M>,
    settings: &GibbsSettings,
    rng: &mut Rng,
) -> Result<(), GibbsError> {
    let chain = state.chain;
    initialise(
        &settings.init,
        chain,
        settings.max_init_attempts,
        rng,
        state,
        |state| state.position.as_mut_slice(),
        |state, _| {
            state.evaluations += 1;
            let value = state.model.log_density(&state.position)?;
            if !value.is_finite() {
                return Err(LogDensityError::recoverable(format!(
                    "the log density is {value} at the initial point"
                )));
            }
            state.joint = Some(value);
            Ok(())
        },
    )
    .map_err(|failure| GibbsError::Initialisation {
        chain,
        attempts: failure.attempts,
        message: failure.error.message,
    })
}
