//! Stochastic-gradient MCMC over an [`ElboModel`]: Langevin dynamics (SGLD; Welling and Teh,
//! 2011) and Hamiltonian dynamics with friction (SGHMC; Chen, Fox and Guestrin, 2014).
//!
//! Both move a position `[latents, params]` (all unconstrained; a `param` coordinate has no
//! prior, so it is sampled under a flat one) with the gradient of the log joint that the model
//! estimates on a mini-batch, `likelihood × N / B + prior`, and inject Gaussian noise so that, as
//! the step size ε goes to 0, the chain samples the posterior without any Metropolis correction.
//!
//! - SGLD: θ ← θ + (ε/2) ∇ log p̃(θ) + N(0, ε I).
//! - SGHMC with unit mass, friction C and gradient-noise estimate B̂ (Chen et al., algorithm 2):
//!   r ← r + ε ∇ log p̃(θ) − ε C r + N(0, 2 (C − B̂) ε I), then θ ← θ + ε r. The usual
//!   simplification is B̂ = 0: the mini-batch noise is left uncorrected, which the friction
//!   dominates when ε is small.
//!
//! The step size follows a [`StepSizeSchedule`]: constant, or ε_t = a (b + t)^(−γ) over the
//! iteration t counted from 0 through burn-in and sampling. With a decreasing schedule, kept draws
//! can be weighted by their step sizes ([`SgmcmcResult::weighted_mean`]), as Welling and Teh
//! suggest.
//!
//! [`sample`] runs several chains, in parallel with rayon or one after the other with identical
//! results: chain `c` draws every random number (its start, its mini-batches, its noise) from
//! `stream_rng(seed, c)` and evaluates its own model made by the caller's factory. A callback sees
//! every iteration on the chain's thread as a [`Progress`], [`sample_into`] streams every kept draw to a
//! [`DrawSink`] as it is made, and a stop flag ends all chains early while keeping their finished
//! draws. A non-finite log joint or gradient (or a recoverable model error) stops the
//! chain with an error that carries the model's message, unless `skip_nonfinite` asks to skip such
//! steps; a fatal model error always stops it.

use crate::density::{ElboModel, JointOptions, LogDensityError};
pub use crate::driver::Init;
use crate::driver::{
    self, drive, initialise, unit_rng, Control, DrawSink, DrawStats, Iteration, NoSink, Phase,
    Progress, Schedule, Units,
};
use crate::rng::Rng;
use rand::Rng as _;
use rand_distr::StandardNormal;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The step size ε_t at iteration t (counted from 0 through burn-in and sampling).
#[derive(Clone, Debug, PartialEq)]
pub enum StepSizeSchedule {
    /// The same step size at every iteration.
    Constant {
        /// ε, positive.
        step_size: f64,
    },
    /// ε_t = scale · (offset + t)^(−decay) (Welling and Teh, 2011; a decay in (0.5, 1] satisfies
    /// the Robbins–Monro conditions, 0 gives a constant step).
    Polynomial {
        /// a, positive.
        scale: f64,
        /// b, positive (ε_0 = a b^(−γ)).
        offset: f64,
        /// γ, in [0, 1].
        decay: f64,
    },
}

impl Default for StepSizeSchedule {
    /// ε_t = 0.01 (1000 + t)^(−0.55): about 2.2 · 10⁻⁴ at the start and 1.2 · 10⁻⁴ after 2000
    /// iterations.
    fn default() -> Self {
        StepSizeSchedule::Polynomial {
            scale: 0.01,
            offset: 1000.0,
            decay: 0.55,
        }
    }
}

impl StepSizeSchedule {
    /// ε_t.
    pub fn step_size(&self, iteration: usize) -> f64 {
        match *self {
            StepSizeSchedule::Constant { step_size } => step_size,
            StepSizeSchedule::Polynomial {
                scale,
                offset,
                decay,
            } => scale * (offset + iteration as f64).powf(-decay),
        }
    }

    /// Checks that the numbers make sense; the largest step size is then ε_0.
    pub fn validate(&self) -> Result<(), SgmcmcError> {
        let invalid = |message: String| Err(SgmcmcError::InvalidSettings { message });
        match *self {
            StepSizeSchedule::Constant { step_size } => {
                if !(step_size.is_finite() && step_size > 0.0) {
                    return invalid(format!(
                        "the step size must be positive and finite, not {step_size}"
                    ));
                }
            }
            StepSizeSchedule::Polynomial {
                scale,
                offset,
                decay,
            } => {
                if !(scale.is_finite() && scale > 0.0) {
                    return invalid(format!(
                        "the step-size scale a must be positive and finite, not {scale}"
                    ));
                }
                if !(offset.is_finite() && offset > 0.0) {
                    return invalid(format!(
                        "the step-size offset b must be positive and finite, not {offset}"
                    ));
                }
                if !(0.0..=1.0).contains(&decay) {
                    return invalid(format!(
                        "the step-size decay γ must lie in [0, 1], not {decay}"
                    ));
                }
            }
        }
        let first = self.step_size(0);
        if !(first.is_finite() && first > 0.0) {
            return invalid(format!(
                "the first step size must be positive and finite, not {first}"
            ));
        }
        Ok(())
    }
}

/// Which dynamics to simulate.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum SgmcmcAlgorithm {
    /// Stochastic-gradient Langevin dynamics.
    #[default]
    Sgld,
    /// Stochastic-gradient Hamiltonian Monte Carlo with friction.
    Sghmc {
        /// The friction C, positive; the momentum forgets itself over about 1 / (ε C) steps, and
        /// ε_0 C must be at most 1.
        friction: f64,
        /// The estimate B̂ of the gradient noise, in [0, C]; 0 is the usual simplification.
        noise_estimate: f64,
        /// Redraw the momentum from N(0, I) every this many iterations (Chen et al.'s optional
        /// resampling); 0 never redraws it after the start.
        resample_momentum_every: usize,
    },
}

impl SgmcmcAlgorithm {
    /// The sampler's name: `sgld` or `sghmc`.
    pub fn name(&self) -> &'static str {
        match self {
            SgmcmcAlgorithm::Sgld => "sgld",
            SgmcmcAlgorithm::Sghmc { .. } => "sghmc",
        }
    }

    /// SGHMC with friction C, the usual simplification B̂ = 0 and no momentum resampling.
    pub fn sghmc(friction: f64) -> Self {
        SgmcmcAlgorithm::Sghmc {
            friction,
            noise_estimate: 0.0,
            resample_momentum_every: 0,
        }
    }
}

/// Everything that configures an SG-MCMC run.
#[derive(Clone, Debug, PartialEq)]
pub struct SgmcmcSettings {
    /// SGLD or SGHMC.
    pub algorithm: SgmcmcAlgorithm,
    /// The number of chains.
    pub chains: usize,
    /// Iterations per chain before draws are kept.
    pub burn_in: usize,
    /// Kept draws per chain; sampling runs `samples × thin` iterations and keeps the last of every
    /// `thin`.
    pub samples: usize,
    /// Keep one iteration in this many (at least 1).
    pub thin: usize,
    /// The seed of every chain's random stream.
    pub seed: u64,
    /// The index of this run's first chain in a larger split run: chain `c` draws from the
    /// random stream of chain `first_chain + c` (see [`crate::mcmc::McmcSettings::first_chain`]).
    pub first_chain: usize,
    /// The step size per iteration.
    pub step_size: StepSizeSchedule,
    /// Where chains start.
    pub init: Init,
    /// How many random starting points to try before giving up.
    pub max_init_attempts: usize,
    /// Skip steps whose log joint or gradient is not finite (the position stays where it was)
    /// instead of stopping the chain.
    pub skip_nonfinite: bool,
    /// With `skip_nonfinite`, stop anyway after this many consecutive skipped steps.
    pub max_consecutive_skips: usize,
    /// Run chains in parallel with rayon (the draws are the same either way).
    pub parallel: bool,
}

impl Default for SgmcmcSettings {
    fn default() -> Self {
        SgmcmcSettings {
            algorithm: SgmcmcAlgorithm::Sgld,
            chains: 4,
            burn_in: 1000,
            samples: 1000,
            thin: 1,
            seed: 0,
            first_chain: 0,
            step_size: StepSizeSchedule::default(),
            init: Init::default(),
            max_init_attempts: 100,
            skip_nonfinite: false,
            max_consecutive_skips: 10,
            parallel: true,
        }
    }
}

impl SgmcmcSettings {
    /// The number of iterations of each chain, burn-in included.
    pub fn n_iterations(&self) -> usize {
        self.burn_in
            .saturating_add(self.samples.saturating_mul(self.thin))
    }

    /// Checks the settings for a model of dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<(), SgmcmcError> {
        let invalid = |message: String| Err(SgmcmcError::InvalidSettings { message });
        if self.chains == 0 {
            return invalid("at least one chain is needed".into());
        }
        if self.thin == 0 {
            return invalid("the thinning interval must be at least 1".into());
        }
        if (self.n_iterations() as u64) >= 1 << 40 {
            return invalid(format!(
                "too many iterations per chain ({})",
                self.n_iterations()
            ));
        }
        if self.max_init_attempts == 0 {
            return invalid("at least one initialisation attempt is needed".into());
        }
        self.step_size.validate()?;
        if let SgmcmcAlgorithm::Sghmc {
            friction,
            noise_estimate,
            ..
        } = self.algorithm
        {
            if !(friction.is_finite() && friction > 0.0) {
                return invalid(format!(
                    "the SGHMC friction must be positive and finite, not {friction}"
                ));
            }
            if !(0.0..=friction).contains(&noise_estimate) {
                return invalid(format!(
                    "the SGHMC noise estimate must lie between 0 and the friction {friction}, \
                     not {noise_estimate}"
                ));
            }
            let largest = self.step_size.step_size(0) * friction;
            if largest > 1.0 {
                return invalid(format!(
                    "the first step size times the friction is {largest}, above 1: the momentum \
                     would overshoot; lower the step size or the friction"
                ));
            }
        }
        self.init
            .validate(self.chains, dim)
            .map_err(|message| SgmcmcError::InvalidSettings { message })?;
        Ok(())
    }
}

/// The output of one chain.
#[derive(Clone, Debug, PartialEq)]
pub struct SgmcmcChain {
    /// The chain index, from 0.
    pub chain: usize,
    /// The number of coordinates per draw.
    pub dim: usize,
    /// The kept draws, `n_draws × dim`, one draw after another.
    pub draws: Vec<f64>,
    /// The step size of the iteration that produced each kept draw.
    pub step_sizes: Vec<f64>,
    /// The iterations whose step was skipped (with `skip_nonfinite`).
    pub skipped_steps: Vec<usize>,
    /// Gradient evaluations, initialisation included.
    pub n_gradient_evaluations: u64,
    /// Wall time of initialisation and burn-in.
    pub burn_in_time: Duration,
    /// Wall time of sampling.
    pub sampling_time: Duration,
    /// Whether the stop flag ended this chain before all its iterations.
    pub interrupted: bool,
}

impl SgmcmcChain {
    /// The number of kept draws.
    pub fn n_draws(&self) -> usize {
        self.step_sizes.len()
    }

    /// Draw `i` (a position of length `dim`); panics when `i >= n_draws()`.
    pub fn draw(&self, i: usize) -> &[f64] {
        &self.draws[i * self.dim..(i + 1) * self.dim]
    }

    /// The kept draws of coordinate `index`, in order (empty when `index >= dim`).
    pub fn coordinate(&self, index: usize) -> Vec<f64> {
        if index >= self.dim {
            return Vec::new();
        }
        self.draws
            .iter()
            .skip(index)
            .step_by(self.dim)
            .copied()
            .collect()
    }
}

/// The output of [`sample`].
#[derive(Clone, Debug, PartialEq)]
pub struct SgmcmcResult {
    /// The number of unconstrained coordinates, `[latents, params]`.
    pub dim: usize,
    /// The chains, in index order.
    pub chains: Vec<SgmcmcChain>,
    /// The settings the run used.
    pub settings: SgmcmcSettings,
    /// Whether the stop flag ended the run early.
    pub interrupted: bool,
}

impl SgmcmcResult {
    /// The kept draws of every chain, as slices (`n_draws × dim` each), the layout that
    /// [`crate::diagnostics::Summary::from_draws`] takes.
    pub fn draw_slices(&self) -> Vec<&[f64]> {
        self.chains.iter().map(|c| c.draws.as_slice()).collect()
    }

    /// The step-size-weighted posterior mean Σ ε_t θ_t / Σ ε_t over every kept draw of every
    /// chain (Welling and Teh's estimator for decreasing step sizes); `None` without draws.
    pub fn weighted_mean(&self) -> Option<Vec<f64>> {
        let mut sum = vec![0.0; self.dim];
        let mut total_weight = 0.0;
        for chain in &self.chains {
            for (i, &weight) in chain.step_sizes.iter().enumerate() {
                for (s, x) in sum.iter_mut().zip(chain.draw(i)) {
                    *s += weight * x;
                }
                total_weight += weight;
            }
        }
        if total_weight > 0.0 {
            Some(sum.into_iter().map(|s| s / total_weight).collect())
        } else {
            None
        }
    }
}

/// Why a run could not produce draws.
#[derive(Clone, Debug, PartialEq)]
pub enum SgmcmcError {
    /// The settings are inconsistent; the message says which one and why.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// The model has no coordinates to sample.
    NoParameters,
    /// The factory made models of different dimensions.
    DimensionMismatch {
        /// The chain whose model differs.
        chain: usize,
        /// The dimension of chain 0's model.
        expected: usize,
        /// This chain's.
        found: usize,
    },
    /// No starting point had a finite log joint and gradient.
    Initialisation {
        /// The chain.
        chain: usize,
        /// How many points were tried.
        attempts: usize,
        /// The model's message for the last point tried (it names the site where known).
        message: String,
    },
    /// A step's log joint, gradient or new position was not finite (or the model reported a
    /// recoverable failure) and the chain stopped.
    NonFinite {
        /// The chain.
        chain: usize,
        /// The iteration, counting burn-in first.
        iteration: usize,
        /// The model's message, or which value was not finite.
        message: String,
    },
    /// The model reported an error that must stop inference.
    Model {
        /// The chain.
        chain: usize,
        /// The iteration, counting burn-in first.
        iteration: usize,
        /// The model's message.
        message: String,
    },
    /// The draw sink could not take a draw (it keeps the reason) and the chain stopped.
    Output {
        /// The chain.
        chain: usize,
    },
}

impl fmt::Display for SgmcmcError {
    /// Chains and iterations are numbered from 1 in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SgmcmcError::InvalidSettings { message } => {
                write!(f, "invalid sampler settings: {message}")
            }
            SgmcmcError::NoParameters => f.write_str("the model has no parameters to sample"),
            SgmcmcError::DimensionMismatch {
                chain,
                expected,
                found,
            } => write!(
                f,
                "chain {} has a model of dimension {found}, but chain 1 has {expected}",
                chain + 1
            ),
            SgmcmcError::Initialisation {
                chain,
                attempts,
                message,
            } => write!(
                f,
                "chain {} could not be initialised after {attempts} attempt{}: {message}",
                chain + 1,
                if *attempts == 1 { "" } else { "s" }
            ),
            SgmcmcError::NonFinite {
                chain,
                iteration,
                message,
            } => write!(
                f,
                "chain {} stopped at iteration {}: {message}",
                chain + 1,
                iteration + 1
            ),
            SgmcmcError::Model {
                chain,
                iteration,
                message,
            } => write!(
                f,
                "chain {} stopped at iteration {}: the model failed: {message}",
                chain + 1,
                iteration + 1
            ),
            SgmcmcError::Output { chain } => {
                write!(
                    f,
                    "chain {} stopped: its draws could not be written",
                    chain + 1
                )
            }
        }
    }
}

impl std::error::Error for SgmcmcError {}

/// Runs `settings.chains` chains on models made by `make_model(chain)`.
///
/// `callback` is called on each chain's thread after every iteration (burn-in included); it must
/// be quick. Setting `stop` ends every chain before its next iteration; the result then holds the
/// draws finished so far and `interrupted` is true. The draws depend only on the settings and the
/// models, never on `parallel` or the number of threads.
pub fn sample<M, F, C>(
    settings: &SgmcmcSettings,
    make_model: F,
    callback: &C,
    stop: &AtomicBool,
) -> Result<SgmcmcResult, SgmcmcError>
where
    M: ElboModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
{
    sample_into(settings, make_model, callback, &NoSink, stop)
}

/// [`sample`], streaming each chain's kept draws to `sink` as they are made (after the callback
/// has seen the iteration). The sink changes no random number: the draws, and the result, are
/// those of [`sample`]. A sink that refuses a draw stops the run with [`SgmcmcError::Output`].
pub fn sample_into<M, F, C>(
    settings: &SgmcmcSettings,
    make_model: F,
    callback: &C,
    sink: &dyn DrawSink,
    stop: &AtomicBool,
) -> Result<SgmcmcResult, SgmcmcError>
where
    M: ElboModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
{
    // Chain 0's model is made first to learn the dimension, and kept for chain 0.
    let units = Units::new(make_model);
    let dim = units
        .first(|model| model.latent_dim() + model.param_dim())
        .unwrap_or(0);
    if dim == 0 {
        return Err(SgmcmcError::NoParameters);
    }
    settings.validate(dim)?;
    let outcomes = units.run(
        settings.chains,
        settings.parallel,
        stop,
        |chain, model, control| {
            let found = model.latent_dim() + model.param_dim();
            if found != dim {
                return Err(SgmcmcError::DimensionMismatch {
                    chain,
                    expected: dim,
                    found,
                });
            }
            run_chain(chain, settings, model, callback, sink, control)
        },
    );
    let chains = driver::collect(outcomes)?;
    let interrupted = chains.iter().any(|c| c.interrupted);
    Ok(SgmcmcResult {
        dim,
        chains,
        settings: settings.clone(),
        interrupted,
    })
}

/// The model with the buffers of one evaluation.
struct Evaluator<M> {
    model: M,
    options: JointOptions,
    gradient: Vec<f64>,
    evaluations: u64,
}

impl<M: ElboModel> Evaluator<M> {
    /// Evaluates the log joint and its gradient at `position`; a non-finite value or gradient is
    /// a recoverable error naming what was not finite.
    fn evaluate(&mut self, position: &[f64], rng: &mut Rng) -> Result<f64, LogDensityError> {
        self.evaluations += 1;
        let joint = self
            .model
            .log_joint(position, &self.options, rng, &mut self.gradient)?;
        let value = joint.total();
        if !value.is_finite() {
            return Err(LogDensityError::recoverable(format!(
                "the log joint is {value} (likelihood {}, prior {})",
                joint.likelihood, joint.prior
            )));
        }
        if let Some(i) = self.gradient.iter().position(|g| !g.is_finite()) {
            return Err(LogDensityError::recoverable(format!(
                "the gradient of coordinate {i} is {}",
                self.gradient[i]
            )));
        }
        Ok(value)
    }
}

/// Finds chain `chain`'s start: the given position, or uniform draws until the log joint and its
/// gradient are finite.
fn initialise_chain<M: ElboModel>(
    evaluator: &mut Evaluator<M>,
    settings: &SgmcmcSettings,
    chain: usize,
    rng: &mut Rng,
    position: &mut [f64],
) -> Result<(), SgmcmcError> {
    let mut state = (evaluator, position);
    initialise(
        &settings.init,
        chain,
        settings.max_init_attempts,
        rng,
        &mut state,
        |(_, position)| &mut **position,
        |(evaluator, position), rng| evaluator.evaluate(position, rng).map(|_| ()),
    )
    .map_err(|failure| SgmcmcError::Initialisation {
        chain,
        attempts: failure.attempts,
        message: failure.error.message,
    })
}

/// Fills `values` with independent standard normal draws.
fn fill_standard_normal(rng: &mut Rng, values: &mut [f64]) {
    for v in values.iter_mut() {
        *v = rng.sample(StandardNormal);
    }
}

/// The state of the dynamics besides the position: SGHMC's momentum, the noise buffer, and the
/// point before the current step (restored when a step fails).
struct Dynamics {
    momentum: Vec<f64>,
    noise: Vec<f64>,
    previous_position: Vec<f64>,
    previous_momentum: Vec<f64>,
}

impl Dynamics {
    /// SGHMC's momentum starts from N(0, I); SGLD has none.
    fn new(algorithm: &SgmcmcAlgorithm, dim: usize, rng: &mut Rng) -> Self {
        let mut momentum = vec![0.0; dim];
        if let SgmcmcAlgorithm::Sghmc { .. } = algorithm {
            fill_standard_normal(rng, &mut momentum);
        }
        Dynamics {
            previous_momentum: momentum.clone(),
            momentum,
            noise: vec![0.0; dim],
            previous_position: vec![0.0; dim],
        }
    }

    fn save(&mut self, position: &[f64]) {
        self.previous_position.copy_from_slice(position);
        self.previous_momentum.copy_from_slice(&self.momentum);
    }

    fn restore(&mut self, position: &mut [f64]) {
        position.copy_from_slice(&self.previous_position);
        self.momentum.copy_from_slice(&self.previous_momentum);
    }

    /// One step from `position` with step size ε, given the gradient of log p̃ there.
    fn step(
        &mut self,
        algorithm: &SgmcmcAlgorithm,
        iteration: usize,
        step_size: f64,
        gradient: &[f64],
        rng: &mut Rng,
        position: &mut [f64],
    ) {
        match *algorithm {
            SgmcmcAlgorithm::Sgld => {
                // θ ← θ + (ε/2) ∇ log p̃(θ) + √ε ξ, ξ ~ N(0, I).
                fill_standard_normal(rng, &mut self.noise);
                let noise_scale = step_size.sqrt();
                for ((q, g), xi) in position.iter_mut().zip(gradient).zip(&self.noise) {
                    *q += 0.5 * step_size * g + noise_scale * xi;
                }
            }
            SgmcmcAlgorithm::Sghmc {
                friction,
                noise_estimate,
                resample_momentum_every,
            } => {
                if resample_momentum_every > 0
                    && iteration > 0
                    && iteration.checked_rem(resample_momentum_every) == Some(0)
                {
                    fill_standard_normal(rng, &mut self.momentum);
                }
                // r ← (1 − εC) r + ε ∇ log p̃(θ) + √(2 (C − B̂) ε) ξ, then θ ← θ + ε r.
                fill_standard_normal(rng, &mut self.noise);
                let decay = 1.0 - step_size * friction;
                let noise_scale = (2.0 * (friction - noise_estimate) * step_size).sqrt();
                for (((q, r), g), xi) in position
                    .iter_mut()
                    .zip(self.momentum.iter_mut())
                    .zip(gradient)
                    .zip(&self.noise)
                {
                    *r = decay * *r + step_size * g + noise_scale * xi;
                    *q += step_size * *r;
                }
            }
        }
    }
}

/// Runs chain `chain` to the end, or until `control` says to stop.
fn run_chain<M, C>(
    chain: usize,
    settings: &SgmcmcSettings,
    model: M,
    callback: &C,
    sink: &dyn DrawSink,
    control: Control<'_>,
) -> Result<SgmcmcChain, SgmcmcError>
where
    M: ElboModel,
    C: Fn(&Progress) + Sync,
{
    let start = Instant::now();
    let dim = model.latent_dim() + model.param_dim();
    let mut evaluator = Evaluator {
        model,
        options: JointOptions::default(),
        gradient: vec![0.0; dim],
        evaluations: 0,
    };
    let mut rng = unit_rng(settings.seed, settings.first_chain + chain);
    let mut position = vec![0.0; dim];
    initialise_chain(&mut evaluator, settings, chain, &mut rng, &mut position)?;

    let mut dynamics = Dynamics::new(&settings.algorithm, dim, &mut rng);
    let schedule = Schedule {
        warmup: settings.burn_in,
        samples: settings.samples,
        thin: settings.thin,
    };
    let mut draws = Vec::with_capacity(settings.samples * dim);
    let mut step_sizes = Vec::with_capacity(settings.samples);
    let mut skipped_steps = Vec::new();
    let mut consecutive_skips = 0;
    let output_failed = |_| SgmcmcError::Output { chain };
    sink.header(chain, dim).map_err(output_failed)?;

    let driven = drive(&schedule, control, start, |step| {
        let Iteration {
            index: iteration,
            warmup: burn_in,
            kept,
        } = step;
        let step_size = settings.step_size.step_size(iteration);
        dynamics.save(&position);
        let outcome = evaluator
            .evaluate(&position, &mut rng)
            .and_then(|log_joint| {
                dynamics.step(
                    &settings.algorithm,
                    iteration,
                    step_size,
                    &evaluator.gradient,
                    &mut rng,
                    &mut position,
                );
                match position.iter().position(|q| !q.is_finite()) {
                    Some(i) => Err(LogDensityError::recoverable(format!(
                        "the step moved coordinate {i} to a non-finite value; lower the step size"
                    ))),
                    None => Ok(log_joint),
                }
            });

        let (log_joint_estimate, skipped) = match outcome {
            Ok(value) => {
                consecutive_skips = 0;
                (value, false)
            }
            Err(error) => {
                dynamics.restore(&mut position);
                if !error.recoverable {
                    return Err(SgmcmcError::Model {
                        chain,
                        iteration,
                        message: error.message,
                    });
                }
                if !(settings.skip_nonfinite && consecutive_skips < settings.max_consecutive_skips)
                {
                    let message = if consecutive_skips > 0 {
                        format!(
                            "{} (after {consecutive_skips} skipped steps in a row)",
                            error.message
                        )
                    } else {
                        error.message
                    };
                    return Err(SgmcmcError::NonFinite {
                        chain,
                        iteration,
                        message,
                    });
                }
                consecutive_skips += 1;
                skipped_steps.push(iteration);
                (f64::NAN, true)
            }
        };

        if kept {
            draws.extend_from_slice(&position);
            step_sizes.push(step_size);
        }
        callback(&Progress {
            unit: chain,
            iteration,
            total: schedule.n_iterations(),
            phase: if burn_in {
                Phase::Warmup
            } else {
                Phase::Sampling
            },
            kept,
            loss: (!skipped).then_some(-log_joint_estimate),
            divergent: false,
        });
        if kept {
            let stats = DrawStats {
                sampler: settings.algorithm.name(),
                iteration,
                step_size: Some(step_size),
                transition: None,
            };
            sink.draw(chain, step_sizes.len() - 1, &position, &stats)
                .map_err(output_failed)?;
        }
        Ok(())
    })?;
    sink.finish(chain, driven.interrupted)
        .map_err(output_failed)?;

    Ok(SgmcmcChain {
        chain,
        dim,
        draws,
        step_sizes,
        skipped_steps,
        n_gradient_evaluations: evaluator.evaluations,
        burn_in_time: driven.warmup_time,
        sampling_time: driven.sampling_time,
        interrupted: driven.interrupted,
    })
}
