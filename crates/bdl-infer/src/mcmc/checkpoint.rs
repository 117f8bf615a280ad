//! Saved chain states: everything a NUTS or HMC chain carries from one iteration to the next, so
//! that a run stopped or killed between two iterations continues from the last saved state to the
//! draws of an uninterrupted run, bit for bit.
//!
//! A chain's state between iterations is its random stream's position, its current point (the
//! position, the gradient there and the log density), the step size and the inverse metric, and
//! during warm-up the dual averaging of the step size and the metric adaptation (where the window
//! schedule stands and the running mean and (co)variance of the current window). The momentum is
//! drawn afresh by every transition, and the transition's buffers are scratch, so neither is
//! saved. The draws made so far (and the warm-up draws, when the caller writes them) are saved
//! too: a resumed chain replays them to its [`DrawSink`](crate::driver::DrawSink), which writes
//! its files again from the start, so that what a killed process left half-written never matters.
//!
//! The caller decides when and where states are saved through [`ChainCheckpoints`]; the sampler
//! offers a state after every iteration that the caller says is due, and always after the last
//! iteration a chain runs (its end, or a stop).

use super::adaptation::SavedMetricAdaptation;
use super::metric::InverseMetric;
use crate::driver::{SampleStats, SinkFailed};

/// A NUTS or HMC chain's state between two iterations.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainState {
    /// The iteration the chain runs next, counted from 0 through warm-up and sampling.
    pub next_iteration: usize,
    /// The position of the chain's random stream, in 32-bit words (ChaCha's word position).
    pub rng_word_position: u128,
    /// The current position (unconstrained).
    pub position: Vec<f64>,
    /// The gradient of the log density at `position`.
    pub gradient: Vec<f64>,
    /// The log density at `position`.
    pub log_density: f64,
    /// The step size of the next transition.
    pub step_size: f64,
    /// The inverse metric of the next transition.
    pub inverse_metric: InverseMetric,
    /// Warm-up's adaptation state, once warm-up has started (`None` before, or without warm-up).
    pub warmup: Option<SavedWarmup>,
    /// Whether warm-up has ended and sampling uses the adapted step size and metric.
    pub adapted: bool,
    /// Divergent warm-up transitions so far.
    pub warmup_divergences: usize,
    /// Gradient evaluations so far, initialisation included.
    pub gradient_evaluations: u64,
    /// The warm-up draws so far (`dim` numbers each), when the caller keeps them (see
    /// [`ChainCheckpoints::keep_warmup_draws`]); empty otherwise.
    pub warmup_draws: Vec<f64>,
    /// Their statistics.
    pub warmup_stats: Vec<SampleStats>,
    /// The kept draws so far (`dim` numbers each).
    pub draws: Vec<f64>,
    /// Their statistics.
    pub stats: Vec<SampleStats>,
}

/// Warm-up's adaptation state.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedWarmup {
    /// Dual averaging's μ, iteration counter, s̄ and x̄.
    pub dual_averaging: [f64; 4],
    /// The metric adaptation's window schedule and running estimate.
    pub metric: SavedMetricAdaptation,
}

/// Where a run's chain states are saved and found again.
///
/// Every method is called on the chain's own thread, chains possibly in parallel.
pub trait ChainCheckpoints: Sync {
    /// Whether states are saved at all; when not, no state is ever assembled.
    fn active(&self) -> bool;
    /// The state chain `chain` continues from, or `None` to start it afresh.
    fn resumed(&self, chain: usize) -> Option<ChainState>;
    /// Whether chain `chain` should save its state after the iteration it has just finished.
    fn due(&self, chain: usize) -> bool;
    /// Saves chain `chain`'s state; an error stops the run (the implementation keeps the reason).
    fn save(&self, chain: usize, state: &ChainState) -> Result<(), SinkFailed>;
    /// Whether states hold the warm-up draws, to be replayed to a sink that writes them.
    fn keep_warmup_draws(&self) -> bool {
        false
    }
}

/// Saves nothing and resumes nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCheckpoints;

impl ChainCheckpoints for NoCheckpoints {
    fn active(&self) -> bool {
        false
    }

    fn resumed(&self, _chain: usize) -> Option<ChainState> {
        None
    }

    fn due(&self, _chain: usize) -> bool {
        false
    }

    fn save(&self, _chain: usize, _state: &ChainState) -> Result<(), SinkFailed> {
        Ok(())
    }
}

impl ChainState {
    /// Checks that the state fits a chain of dimension `dim` run with `warmup` warm-up and
    /// `samples` sampling iterations; the message says what does not fit.
    pub fn check(&self, dim: usize, warmup: usize, samples: usize) -> Result<(), String> {
        let metric_dim = match &self.inverse_metric {
            InverseMetric::Diag(diagonal) => diagonal.len(),
            InverseMetric::Dense { dim, values } => {
                if values.len() != dim * dim {
                    return Err("its dense metric is not square".into());
                }
                *dim
            }
        };
        if self.position.len() != dim || self.gradient.len() != dim || metric_dim != dim {
            return Err(format!(
                "it has {} coordinates where the model has {dim}",
                self.position.len()
            ));
        }
        if self.next_iteration > warmup + samples {
            return Err(format!(
                "it is at iteration {} of a run of {}",
                self.next_iteration,
                warmup + samples
            ));
        }
        let kept = self.next_iteration.saturating_sub(warmup);
        if self.stats.len() != kept || self.draws.len() != kept * dim {
            return Err(format!(
                "it holds {} draws where iteration {} has made {kept}",
                self.stats.len(),
                self.next_iteration
            ));
        }
        if self.warmup_draws.len() != self.warmup_stats.len() * dim {
            return Err("its warm-up draws and their statistics differ in number".into());
        }
        if self.adapted != (self.next_iteration > warmup) {
            return Err("its adaptation does not match its iteration".into());
        }
        Ok(())
    }
}
