//! Hamiltonian Monte Carlo and the No-U-Turn Sampler with Stan's warm-up, over a [`LogDensity`].
//!
//! [`sample`] runs several chains, in parallel with rayon or one after the other with identical
//! results: chain `c` draws every random number from `stream_rng(seed, c)` and evaluates its own
//! density made by the caller's factory. Each chain starts from a point drawn uniformly in
//! (−2, 2) in unconstrained space (or given), warms up as Stan does (step-size search, dual
//! averaging, windowed diagonal or dense metric adaptation; see [`adaptation`]) and then samples
//! with the adapted step size and metric.
//!
//! The chains run through the shared driver ([`crate::driver`]): its units, random streams,
//! stop flag and [`drive`](crate::driver::drive) loop over the warm-up and sampling phases. A
//! caller follows the run through a [`Progress`] callback, called on the chain's thread after
//! every iteration, and [`sample_into`] streams every draw to a [`DrawSink`] as it is made:
//! warm-up draws ([`DrawSink::warmup_draw`]), the adapted step size and metric
//! ([`DrawSink::adapted`]) and the kept draws with their [`SampleStats`]. A stop flag, checked
//! before every iteration, ends all chains early while keeping every finished draw.
//!
//! Numerical failure is never an error and never a NaN: a non-finite density or gradient, or a
//! recoverable [`LogDensityError`], during a trajectory makes the transition divergent and the
//! chain keeps its last valid point. Only fatal density errors stop sampling.

pub mod adaptation;
mod chain;
pub mod checkpoint;
pub mod hmc;
pub mod integrator;
pub mod metric;
pub mod nuts;

pub use crate::driver::{Init, SampleStats};
pub use adaptation::{AdaptationSettings, SavedMetricAdaptation};
pub use checkpoint::{ChainCheckpoints, ChainState, NoCheckpoints, SavedWarmup};
pub use hmc::HmcLength;
pub use integrator::{leapfrog, PhasePoint};
pub use metric::{InverseMetric, Metric, MetricError, MetricKind};

use crate::density::{LogDensity, LogDensityError};
use crate::driver::{self, DrawSink, NoSink, Progress, Units};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Which transition kernel to run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Algorithm {
    /// The No-U-Turn Sampler (multinomial, generalised criterion).
    #[default]
    Nuts,
    /// Static HMC with a fixed number of steps or integration time.
    Hmc(HmcLength),
}

impl Algorithm {
    /// The sampler's name: `nuts` or `hmc`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Nuts => "nuts",
            Algorithm::Hmc(_) => "hmc",
        }
    }
}

/// Everything that configures a run. The defaults are Stan's.
#[derive(Clone, Debug, PartialEq)]
pub struct McmcSettings {
    /// The number of chains.
    pub chains: usize,
    /// Warm-up iterations per chain (adaptation; their draws are not kept).
    pub warmup: usize,
    /// Kept iterations per chain after warm-up.
    pub samples: usize,
    /// The seed of every chain's random stream.
    pub seed: u64,
    /// The index of this run's first chain in a larger run split over processes or machines:
    /// chain `c` draws from the random stream of chain `first_chain + c`, so chains 4–7 run
    /// alone equal chains 4–7 of an eight-chain run with the same seed, bit for bit.
    pub first_chain: usize,
    /// NUTS or static HMC.
    pub algorithm: Algorithm,
    /// The maximum NUTS tree depth: at most 2^max_depth − 1 leapfrog steps per transition.
    pub max_depth: usize,
    /// Dual averaging's target mean acceptance statistic δ.
    pub target_accept: f64,
    /// Diagonal or dense metric.
    pub metric: MetricKind,
    /// Where chains start.
    pub init: Init,
    /// The inverse metric warm-up starts from (and sampling uses without warm-up), e.g. a
    /// fitted guide's variances; `None` starts from the identity. A diagonal one serves a dense
    /// metric as its diagonal, and a dense one serves a diagonal metric through its diagonal.
    pub initial_metric: Option<InverseMetric>,
    /// How many random starting points to try before giving up.
    pub max_init_attempts: usize,
    /// The step size before the initial search (and the sampling step size without warm-up).
    pub initial_step_size: f64,
    /// The energy error above which a leapfrog step is a divergence.
    pub max_energy_error: f64,
    /// Warm-up's tuning constants.
    pub adaptation: AdaptationSettings,
    /// Run chains in parallel with rayon (the draws are the same either way).
    pub parallel: bool,
}

impl Default for McmcSettings {
    fn default() -> Self {
        McmcSettings {
            chains: 4,
            warmup: 1000,
            samples: 1000,
            seed: 0,
            first_chain: 0,
            algorithm: Algorithm::Nuts,
            max_depth: 10,
            target_accept: 0.8,
            metric: MetricKind::Diag,
            init: Init::default(),
            initial_metric: None,
            max_init_attempts: 100,
            initial_step_size: 1.0,
            max_energy_error: 1000.0,
            adaptation: AdaptationSettings::default(),
            parallel: true,
        }
    }
}

/// The outcome of one transition kernel step, before the chain adds the step size and lp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Transition {
    pub(crate) accept_stat: f64,
    pub(crate) tree_depth: u32,
    pub(crate) n_leapfrog: u32,
    pub(crate) divergent: bool,
    pub(crate) energy: f64,
}

/// The result of warm-up: what sampling runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Adaptation {
    /// The step size ε.
    pub step_size: f64,
    /// The inverse metric M⁻¹.
    pub inverse_metric: InverseMetric,
}

/// The output of one chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainResult {
    /// The chain index, from 0.
    pub chain: usize,
    /// The number of coordinates per draw.
    pub dim: usize,
    /// The kept draws, `n_draws × dim`, one draw after another.
    pub draws: Vec<f64>,
    /// The sampler statistics of each kept draw.
    pub stats: Vec<SampleStats>,
    /// The adapted step size and metric.
    pub adaptation: Adaptation,
    /// Divergent transitions during warm-up (they are not in `stats`).
    pub warmup_divergences: usize,
    /// Gradient evaluations, warm-up and initialisation included.
    pub n_gradient_evaluations: u64,
    /// Wall time of initialisation and warm-up.
    pub warmup_time: Duration,
    /// Wall time of sampling.
    pub sampling_time: Duration,
    /// Whether the stop flag ended this chain before all its iterations.
    pub interrupted: bool,
}

impl ChainResult {
    /// The number of kept draws.
    pub fn n_draws(&self) -> usize {
        self.stats.len()
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
pub struct McmcResult {
    /// The number of unconstrained coordinates.
    pub dim: usize,
    /// The chains, in index order.
    pub chains: Vec<ChainResult>,
    /// The settings the run used.
    pub settings: McmcSettings,
    /// Whether the stop flag ended the run early.
    pub interrupted: bool,
}

impl McmcResult {
    /// The kept draws of every chain, as slices (`n_draws × dim` each).
    pub fn draw_slices(&self) -> Vec<&[f64]> {
        self.chains.iter().map(|c| c.draws.as_slice()).collect()
    }

    /// The maximum tree depth when the algorithm is NUTS.
    pub fn max_tree_depth(&self) -> Option<u32> {
        match self.settings.algorithm {
            Algorithm::Nuts => Some(self.settings.max_depth as u32),
            Algorithm::Hmc(_) => None,
        }
    }
}

/// Why a run could not produce draws.
#[derive(Clone, Debug, PartialEq)]
pub enum McmcError {
    /// The settings are inconsistent; the message says which one and why.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// The density has no coordinates to sample.
    NoParameters,
    /// The factory made densities of different dimensions.
    DimensionMismatch {
        /// The chain whose density differs.
        chain: usize,
        /// The dimension of chain 0's density.
        expected: usize,
        /// This chain's.
        found: usize,
    },
    /// No starting point had a finite density and gradient.
    Initialization {
        /// The chain.
        chain: usize,
        /// How many points were tried.
        attempts: usize,
        /// The failure at the last point tried (it names the site where known).
        last_error: LogDensityError,
    },
    /// The density failed fatally while sampling.
    Density {
        /// The chain.
        chain: usize,
        /// The iteration, counting warm-up first.
        iteration: usize,
        /// The density's error.
        error: LogDensityError,
    },
    /// The initial step-size search failed.
    StepSize {
        /// The chain.
        chain: usize,
        /// Why.
        message: String,
    },
    /// Warm-up produced an unusable metric.
    MetricAdaptation {
        /// The chain.
        chain: usize,
        /// Why.
        message: String,
    },
    /// The draw sink refused the chain's output (it keeps the reason).
    Output {
        /// The chain.
        chain: usize,
    },
}

impl fmt::Display for McmcError {
    /// Chains are numbered from 1 in messages, as the CSV files are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McmcError::InvalidSettings { message } => {
                write!(f, "invalid sampler settings: {message}")
            }
            McmcError::NoParameters => f.write_str("the model has no parameters to sample"),
            McmcError::DimensionMismatch {
                chain,
                expected,
                found,
            } => write!(
                f,
                "chain {} has a density of dimension {found}, but chain 1 has {expected}",
                chain + 1
            ),
            McmcError::Initialization {
                chain,
                attempts,
                last_error,
            } => write!(
                f,
                "chain {} could not be initialised after {attempts} attempt{}: {last_error}",
                chain + 1,
                if *attempts == 1 { "" } else { "s" }
            ),
            McmcError::Density {
                chain,
                iteration,
                error,
            } => {
                write!(
                    f,
                    "chain {} stopped at iteration {}: {error}",
                    chain + 1,
                    iteration + 1
                )
            }
            McmcError::StepSize { chain, message }
            | McmcError::MetricAdaptation { chain, message } => {
                write!(f, "chain {}: {message}", chain + 1)
            }
            McmcError::Output { chain } => {
                write!(f, "chain {}: its draws could not be written", chain + 1)
            }
        }
    }
}

impl std::error::Error for McmcError {}

impl McmcSettings {
    /// Checks the settings for a density of dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<(), McmcError> {
        let invalid = |message: String| Err(McmcError::InvalidSettings { message });
        if self.chains == 0 {
            return invalid("at least one chain is needed".into());
        }
        if !(self.target_accept > 0.0 && self.target_accept < 1.0) {
            return invalid(format!(
                "the target acceptance rate must lie strictly between 0 and 1, not {}",
                self.target_accept
            ));
        }
        if self.max_depth == 0 || self.max_depth > 30 {
            return invalid(format!(
                "the maximum tree depth must be between 1 and 30, not {}",
                self.max_depth
            ));
        }
        if !(self.initial_step_size.is_finite() && self.initial_step_size > 0.0) {
            return invalid(format!(
                "the initial step size must be finite and positive, not {}",
                self.initial_step_size
            ));
        }
        if self.max_energy_error.is_nan() || self.max_energy_error <= 0.0 {
            return invalid("the divergence threshold must be positive".into());
        }
        if self.max_init_attempts == 0 {
            return invalid("at least one initialisation attempt is needed".into());
        }
        let a = &self.adaptation;
        if !(a.gamma > 0.0 && a.kappa > 0.0 && a.t0 > 0.0) {
            return invalid(
                "the dual averaging constants gamma, kappa and t0 must be positive".into(),
            );
        }
        match self.algorithm {
            Algorithm::Nuts => {}
            Algorithm::Hmc(HmcLength::Steps(0)) => {
                return invalid("static HMC needs at least one leapfrog step".into())
            }
            Algorithm::Hmc(HmcLength::Steps(_)) => {}
            Algorithm::Hmc(HmcLength::Time(time)) => {
                if !(time.is_finite() && time > 0.0) {
                    return invalid(format!(
                        "the HMC integration time must be finite and positive, not {time}"
                    ));
                }
            }
        }
        self.init
            .validate(self.chains, dim)
            .map_err(|message| McmcError::InvalidSettings { message })?;
        if let Some(inverse) = &self.initial_metric {
            Metric::starting(self.metric, dim, inverse).map_err(|error| {
                McmcError::InvalidSettings {
                    message: format!("the initial metric is not usable: {error}"),
                }
            })?;
        }
        Ok(())
    }
}

/// Runs `settings.chains` chains on densities made by `make_density(chain)`.
///
/// `callback` is called on each chain's thread after every iteration; it must be quick (it runs
/// inside the sampling loop). Setting `stop` ends every chain before its next iteration; the
/// result then holds the draws finished so far and `interrupted` is true.
///
/// The draws depend only on the settings and the densities, never on `parallel` or the number
/// of threads.
pub fn sample<D, F, C>(
    settings: &McmcSettings,
    make_density: F,
    callback: &C,
    stop: &AtomicBool,
) -> Result<McmcResult, McmcError>
where
    D: LogDensity,
    F: Fn(usize) -> D + Sync,
    C: Fn(&Progress) + Sync,
{
    sample_into(settings, make_density, callback, &NoSink, stop)
}

/// [`sample`], streaming each chain's draws to `sink` as they are made: every warm-up draw, the
/// adapted step size and metric when warm-up ends, then every kept draw with its statistics. The
/// sink changes no random number: the draws, and the result, are those of [`sample`]. A sink that
/// refuses a draw stops the run with [`McmcError::Output`].
pub fn sample_into<D, F, C>(
    settings: &McmcSettings,
    make_density: F,
    callback: &C,
    sink: &dyn DrawSink,
    stop: &AtomicBool,
) -> Result<McmcResult, McmcError>
where
    D: LogDensity,
    F: Fn(usize) -> D + Sync,
    C: Fn(&Progress) + Sync,
{
    sample_resumable(settings, make_density, callback, sink, &NoCheckpoints, stop)
}

/// [`sample_into`], saving each chain's state to `checkpoints` when it says a save is due and
/// after the chain's last iteration, and continuing each chain that `checkpoints` has a saved
/// state for from that state (see [`checkpoint`]). A resumed chain replays its saved draws to
/// `sink` first; the result, and what the sink receives, are those of an uninterrupted run.
pub fn sample_resumable<D, F, C>(
    settings: &McmcSettings,
    make_density: F,
    callback: &C,
    sink: &dyn DrawSink,
    checkpoints: &dyn ChainCheckpoints,
    stop: &AtomicBool,
) -> Result<McmcResult, McmcError>
where
    D: LogDensity,
    F: Fn(usize) -> D + Sync,
    C: Fn(&Progress) + Sync,
{
    // Chain 0's density is made first to learn the dimension, and kept for chain 0.
    let units = Units::new(make_density);
    let dim = units.first(|density| density.dim()).unwrap_or(0);
    if dim == 0 {
        return Err(McmcError::NoParameters);
    }
    settings.validate(dim)?;
    let outcomes = units.run(
        settings.chains,
        settings.parallel,
        stop,
        |chain, density, control| {
            if density.dim() != dim {
                return Err(McmcError::DimensionMismatch {
                    chain,
                    expected: dim,
                    found: density.dim(),
                });
            }
            chain::run_chain(
                chain,
                settings,
                density,
                callback,
                sink,
                checkpoints,
                control,
            )
        },
    );
    let chains = driver::collect(outcomes)?;
    let interrupted = chains.iter().any(|c| c.interrupted);
    Ok(McmcResult {
        dim,
        chains,
        settings: settings.clone(),
        interrupted,
    })
}
