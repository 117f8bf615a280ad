//! Deep ensembles and MultiSWAG: a posterior represented by the modes that MAP fits reach from
//! different random starts, optionally widened into a Gaussian around each mode.
//!
//! A deep ensemble (Lakshminarayanan et al., 2017; read as Bayesian model averaging by Wilson and
//! Izmailov, 2020) fits J members, each a MAP fit ([`crate::vi::map::fit`]) of the same model from
//! its own random initialisation, Uniform(−r, r) per coordinate or a position the caller gives.
//! Each member is one draw of the posterior: the predictive is the average of the members'
//! predictives. Members run in parallel with rayon; member j draws every random number (its start,
//! its mini-batches, its SWAG draws) from streams seeded by the run's seed and j, so results do
//! not depend on the number of threads.
//!
//! MultiSWAG (Wilson and Izmailov, 2020) adds SWA-Gaussian (Maddox et al., 2019) to every member:
//! after the MAP fit, the optimiser continues at a constant learning rate for S steps, and every
//! k steps the iterate θᵢ is collected into
//!
//! - the SWA mean θ̄ = (1/n) Σ θᵢ and second moment (1/n) Σ θᵢ², whose difference is the diagonal
//!   variance Σ_diag = diag(mean of θ² − θ̄²) (clamped at 0);
//! - the deviation matrix D̂ whose K columns are θᵢ − θ̄ᵢ for the last K iterates, θ̄ᵢ the running
//!   mean when θᵢ was collected.
//!
//! The SWAG posterior is N(θ̄, ½ Σ_diag + D̂ D̂ᵀ / (2 (K − 1))), drawn as
//! θ̄ + Σ_diag^{1/2} z₁ / √2 + D̂ z₂ / √(2 (K − 1)) with z₁ ~ N(0, I_d), z₂ ~ N(0, I_K). With fewer
//! than two deviations the low-rank part is dropped and the diagonal Gaussian N(θ̄, Σ_diag) is used.

use crate::density::{ElboModel, JointOptions, LogDensityError};
use crate::driver::{self, Control, DrawSink, NoSink, Phase, Progress, Schedule};
use crate::rng::{stream_rng, Rng};
use crate::vi::{
    map, Adam, InitLocation, LearningRateSchedule, Optimizer, OptimizerKind, OptimizerSettings,
    Sgd, StepLoss, SviError, SviSettings,
};
use nalgebra::DMatrix;
use rand::Rng as _;
use rand_distr::StandardNormal;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Stream indices under a member's seed, one per purpose.
const STREAM_FINAL_LOSS: u64 = 1;
const STREAM_SWAG_STEPS: u64 = 2;
const STREAM_SWAG_DRAWS: u64 = 3;

/// Where each member starts.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberInit {
    /// Independent Uniform(−radius, radius) draws per coordinate, seeded per member and redrawn
    /// (up to the MAP settings' `init.max_attempts`) while the log joint is not finite.
    Uniform {
        /// The half-width, positive.
        radius: f64,
    },
    /// One unconstrained position `[latents, params]` per member.
    Positions(Vec<Vec<f64>>),
}

impl Default for MemberInit {
    fn default() -> Self {
        MemberInit::Uniform { radius: 2.0 }
    }
}

/// The SWA-Gaussian phase of MultiSWAG.
#[derive(Clone, Debug, PartialEq)]
pub struct SwagSettings {
    /// Optimisation steps S after the MAP fit.
    pub steps: usize,
    /// Collect the iterate every this many steps, k (at least 1).
    pub collect_every: usize,
    /// The rank K of the deviation matrix: how many of the last iterates it keeps.
    pub rank: usize,
    /// Draws M from each member's SWAG posterior.
    pub draws: usize,
    /// The optimiser of the SWAG phase; its learning-rate schedule must be constant.
    pub optimizer: OptimizerSettings,
}

impl Default for SwagSettings {
    /// Maddox et al.'s recipe at a small scale: SGD with momentum 0.9 at a constant learning rate
    /// of 0.01 for 1000 steps, collected every 10 steps, rank 20, 20 draws per member.
    fn default() -> Self {
        SwagSettings {
            steps: 1000,
            collect_every: 10,
            rank: 20,
            draws: 20,
            optimizer: OptimizerSettings {
                kind: OptimizerKind::Sgd(Sgd::default()),
                ..OptimizerSettings::default()
            },
        }
    }
}

/// Everything that configures an ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleSettings {
    /// The number of members J.
    pub members: usize,
    /// The seed of every random draw.
    pub seed: u64,
    /// The index of this run's first member in a larger ensemble split over processes or
    /// machines: member `j` draws from the random streams of member `first_member + j`, so
    /// members 4–7 fitted alone equal members 4–7 of an eight-member run, bit for bit.
    pub first_member: usize,
    /// Each member's MAP fit: steps, particles, optimiser, schedule, non-finite handling (which
    /// the SWAG phase follows too). Its `guide` is replaced by the Delta guide, and its `seed` and
    /// `init.location` by the member's.
    pub map: SviSettings,
    /// Where members start.
    pub init: MemberInit,
    /// MultiSWAG's Gaussian around each member, or `None` for a plain deep ensemble.
    pub swag: Option<SwagSettings>,
    /// Fit members in parallel with rayon (the results are the same either way).
    pub parallel: bool,
}

impl Default for EnsembleSettings {
    fn default() -> Self {
        EnsembleSettings {
            members: 5,
            seed: 0,
            first_member: 0,
            map: SviSettings {
                steps: 2000,
                optimizer: OptimizerSettings {
                    kind: OptimizerKind::Adam(Adam::default()),
                    ..OptimizerSettings::default()
                },
                ..SviSettings::default()
            },
            init: MemberInit::default(),
            swag: None,
            parallel: true,
        }
    }
}

impl EnsembleSettings {
    /// Checks the settings for a model of dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<(), EnsembleError> {
        let invalid = |message: String| Err(EnsembleError::InvalidSettings { message });
        if self.members == 0 {
            return invalid("an ensemble needs at least one member".into());
        }
        self.map
            .validate()
            .map_err(|error| EnsembleError::InvalidSettings {
                message: match error {
                    SviError::InvalidSettings { message } => message,
                    other => other.to_string(),
                },
            })?;
        match &self.init {
            MemberInit::Uniform { radius } => {
                if !(radius.is_finite() && *radius > 0.0) {
                    return invalid(format!(
                        "the initial radius must be positive and finite, not {radius}"
                    ));
                }
            }
            MemberInit::Positions(positions) => {
                if positions.len() != self.members {
                    return invalid(format!(
                        "{} initial positions were given for {} members: give one per member",
                        positions.len(),
                        self.members
                    ));
                }
                for (i, position) in positions.iter().enumerate() {
                    if position.len() != dim {
                        return invalid(format!(
                            "initial position {i} has {} coordinates, but the model has {dim}",
                            position.len()
                        ));
                    }
                    if let Some(k) = position.iter().position(|v| !v.is_finite()) {
                        return invalid(format!(
                            "coordinate {k} of initial position {i} is not finite"
                        ));
                    }
                }
            }
        }
        if let Some(swag) = &self.swag {
            swag.optimizer
                .validate()
                .map_err(|error| EnsembleError::InvalidSettings {
                    message: format!("the SWAG optimiser: {}", error.message),
                })?;
            if swag.optimizer.schedule != LearningRateSchedule::Constant {
                return invalid("SWAG needs a constant learning-rate schedule".into());
            }
            if swag.collect_every == 0 {
                return invalid("SWAG must collect at least every step, not every 0".into());
            }
            if swag.steps < swag.collect_every {
                return invalid(format!(
                    "SWAG runs {} steps but collects every {}: no iterate would be collected",
                    swag.steps, swag.collect_every
                ));
            }
        }
        Ok(())
    }
}

/// A member's SWA-Gaussian.
#[derive(Clone, Debug, PartialEq)]
pub struct SwagPosterior {
    /// The SWA mean θ̄.
    pub mean: Vec<f64>,
    /// The diagonal variance Σ_diag.
    pub diagonal_variance: Vec<f64>,
    /// The deviation columns θᵢ − θ̄ᵢ of the last K collected iterates, oldest first.
    pub deviations: Vec<Vec<f64>>,
    /// How many iterates were collected.
    pub n_collected: usize,
}

impl SwagPosterior {
    /// The covariance ½ Σ_diag + D̂ D̂ᵀ / (2 (K − 1)), or Σ_diag alone when K < 2.
    pub fn covariance(&self) -> DMatrix<f64> {
        let dim = self.mean.len();
        let rank = self.deviations.len();
        let mut covariance = DMatrix::zeros(dim, dim);
        let diagonal_weight = if rank >= 2 { 0.5 } else { 1.0 };
        for i in 0..dim {
            covariance[(i, i)] = diagonal_weight * self.diagonal_variance[i];
        }
        if rank >= 2 {
            let weight = 1.0 / (2.0 * (rank as f64 - 1.0));
            for column in &self.deviations {
                for i in 0..dim {
                    for j in 0..dim {
                        covariance[(i, j)] += weight * column[i] * column[j];
                    }
                }
            }
        }
        covariance
    }

    /// One draw θ̄ + Σ_diag^{1/2} z₁ / √2 + D̂ z₂ / √(2 (K − 1)) (or θ̄ + Σ_diag^{1/2} z₁ when
    /// K < 2).
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Vec<f64> {
        let rank = self.deviations.len();
        let diagonal_weight: f64 = if rank >= 2 { 0.5f64.sqrt() } else { 1.0 };
        let mut draw: Vec<f64> = self
            .mean
            .iter()
            .zip(&self.diagonal_variance)
            .map(|(m, v)| {
                let z: f64 = rng.sample(StandardNormal);
                m + diagonal_weight * v.sqrt() * z
            })
            .collect();
        if rank >= 2 {
            let weight = 1.0 / (2.0 * (rank as f64 - 1.0)).sqrt();
            for column in &self.deviations {
                let z: f64 = rng.sample(StandardNormal);
                for (d, c) in draw.iter_mut().zip(column) {
                    *d += weight * c * z;
                }
            }
        }
        draw
    }
}

/// One member of the ensemble.
#[derive(Clone, Debug)]
pub struct EnsembleMember {
    /// The member index, from 0.
    pub member: usize,
    /// The MAP position `[latents, params]` (unconstrained): this member's draw.
    pub position: Vec<f64>,
    /// −log p(x, z) at `position` (a mini-batch estimate for subsampled models; +∞ when the
    /// model could not evaluate it there).
    pub final_loss: f64,
    /// The loss of every MAP step taken.
    pub losses: Vec<StepLoss>,
    /// The member's SWA-Gaussian, with MultiSWAG.
    pub swag: Option<SwagPosterior>,
    /// Draws from the SWA-Gaussian (empty without MultiSWAG).
    pub swag_draws: Vec<Vec<f64>>,
    /// Whether the stop flag ended this member's fit early.
    pub interrupted: bool,
}

/// The output of [`fit`].
#[derive(Clone, Debug)]
pub struct EnsembleResult {
    /// The number of unconstrained coordinates.
    pub dim: usize,
    /// The members that were fitted, in index order (members not started before the stop flag
    /// was set are absent).
    pub members: Vec<EnsembleMember>,
    /// Whether the stop flag ended the run early.
    pub interrupted: bool,
}

impl EnsembleResult {
    /// The members' positions, one draw per member, row after row (`members × dim`): one chain
    /// in the layout of [`crate::diagnostics::Summary::from_draws`].
    pub fn draws(&self) -> Vec<f64> {
        self.members
            .iter()
            .flat_map(|m| m.position.iter().copied())
            .collect()
    }

    /// Every member's SWAG draws, member after member (`members × M` rows of `dim`).
    pub fn swag_draws(&self) -> Vec<f64> {
        self.members
            .iter()
            .flat_map(|m| m.swag_draws.iter().flatten().copied())
            .collect()
    }
}

/// Why an ensemble could not be fitted.
#[derive(Clone, Debug)]
pub enum EnsembleError {
    /// The settings cannot be used.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// The model has no coordinates to fit.
    NoParameters,
    /// The factory made models of different dimensions.
    DimensionMismatch {
        /// The member whose model differs.
        member: usize,
        /// The dimension of member 0's model.
        expected: usize,
        /// This member's.
        found: usize,
    },
    /// A member's MAP fit failed.
    Map {
        /// The member.
        member: usize,
        /// Why (partial fits inside carry the last good parameters).
        error: SviError,
    },
    /// A member's SWAG phase failed: the log joint or the iterate was not finite, or the model
    /// reported a fatal error.
    Swag {
        /// The member.
        member: usize,
        /// The SWAG step, from 0.
        step: usize,
        /// The model's message, or which value was not finite.
        message: String,
    },
    /// The draw sink refused a member's draws (it keeps the reason, an IO error for instance).
    Output {
        /// The member.
        member: usize,
    },
}

impl fmt::Display for EnsembleError {
    /// Members are numbered from 1 in messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnsembleError::InvalidSettings { message } => {
                write!(f, "invalid ensemble settings: {message}")
            }
            EnsembleError::NoParameters => f.write_str("the model has no parameters to fit"),
            EnsembleError::DimensionMismatch {
                member,
                expected,
                found,
            } => write!(
                f,
                "member {} has a model of dimension {found}, but member 1 has {expected}",
                member + 1
            ),
            EnsembleError::Map { member, error } => {
                write!(f, "member {}: {error}", member + 1)
            }
            EnsembleError::Swag {
                member,
                step,
                message,
            } => write!(
                f,
                "member {}: SWAG stopped at step {}: {message}",
                member + 1,
                step + 1
            ),
            EnsembleError::Output { member } => {
                write!(f, "member {}: its draws could not be written", member + 1)
            }
        }
    }
}

impl std::error::Error for EnsembleError {}

/// The seed of member `member`, from the run's seed.
fn member_seed(seed: u64, member: usize) -> u64 {
    driver::unit_rng(seed, member).random()
}

/// Fits `settings.members` members of the model made by `make_model(member)` (called once per
/// member and per ELBO particle), calling `callback` after every optimisation step on the
/// member's thread. Setting `stop` ends every member early (their last good positions are kept)
/// and skips members not yet started.
pub fn fit<M, F, C>(
    settings: &EnsembleSettings,
    make_model: F,
    callback: &C,
    stop: &AtomicBool,
) -> Result<EnsembleResult, EnsembleError>
where
    M: ElboModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
{
    fit_into(settings, make_model, callback, &NoSink, stop)
}

/// [`fit`], streaming each member's draws to `sink` as soon as the member has made them, on the
/// member's thread, through [`driver::draw_independent`]: unit `member` (counted within this
/// run), one draw (its position) for a plain ensemble, or its SWAG draws for MultiSWAG (none
/// when its SWAG phase collected no iterate or was stopped). The result holds the same draws.
pub fn fit_into<M, F, C, S>(
    settings: &EnsembleSettings,
    make_model: F,
    callback: &C,
    sink: &S,
    stop: &AtomicBool,
) -> Result<EnsembleResult, EnsembleError>
where
    M: ElboModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
    S: DrawSink + ?Sized,
{
    let probe = make_model(0);
    let dim = probe.latent_dim() + probe.param_dim();
    drop(probe);
    if dim == 0 {
        return Err(EnsembleError::NoParameters);
    }
    settings.validate(dim)?;
    // A member not yet started when the run is stopped (or another member failed) is skipped.
    let outcomes = driver::run_units(
        settings.members,
        settings.parallel,
        stop,
        |member, control| {
            if control.should_stop() {
                return Ok(None);
            }
            fit_member(member, dim, settings, &make_model, callback, sink, control).map(Some)
        },
    );
    // The first error in member order is reported, so the error does not depend on timing
    // unless an abort skipped a member that would have failed first.
    let outcomes = driver::collect(outcomes)?;
    let skipped = outcomes.iter().any(Option::is_none);
    let members: Vec<EnsembleMember> = outcomes.into_iter().flatten().collect();
    let interrupted = skipped || members.iter().any(|m| m.interrupted);
    Ok(EnsembleResult {
        dim,
        members,
        interrupted,
    })
}

/// The MAP fit and optional SWAG phase of one member, whose draws go to `sink` as unit `member`.
#[allow(clippy::too_many_arguments)]
fn fit_member<M, F, C, S>(
    member: usize,
    dim: usize,
    settings: &EnsembleSettings,
    make_model: &F,
    callback: &C,
    sink: &S,
    control: Control<'_>,
) -> Result<EnsembleMember, EnsembleError>
where
    M: ElboModel,
    F: Fn(usize) -> M + Sync,
    C: Fn(&Progress) + Sync,
    S: DrawSink + ?Sized,
{
    let stop = control.stop_flag();
    let seed = member_seed(settings.seed, settings.first_member + member);
    let mut model = make_model(member);
    let found = model.latent_dim() + model.param_dim();
    if found != dim {
        return Err(EnsembleError::DimensionMismatch {
            member,
            expected: dim,
            found,
        });
    }
    // A member's iterations are its MAP steps, then its SWAG steps.
    let n_steps = settings.map.steps + settings.swag.as_ref().map_or(0, |s| s.steps);
    let mut map_settings = settings.map.clone();
    map_settings.seed = seed;
    map_settings.init.location = match &settings.init {
        MemberInit::Uniform { radius } => InitLocation::Uniform { radius: *radius },
        MemberInit::Positions(positions) => InitLocation::Position(positions[member].clone()),
    };
    let fit = map::fit(
        |_particle| make_model(member),
        &map_settings,
        stop,
        |step, loss| {
            callback(&Progress {
                unit: member,
                iteration: step,
                total: n_steps,
                phase: Phase::Fitting,
                kept: false,
                loss: Some(loss),
                divergent: false,
            })
        },
    )
    .map_err(|error| EnsembleError::Map { member, error })?;
    let position = fit.median_position();
    let mut interrupted = fit.interrupted;

    let options = JointOptions::default();
    let mut gradient = vec![0.0; dim];
    let final_loss = match model.log_joint(
        &position,
        &options,
        &mut stream_rng(seed, STREAM_FINAL_LOSS),
        &mut gradient,
    ) {
        Ok(joint) => -joint.total(),
        Err(error) if error.recoverable => f64::INFINITY,
        Err(error) => {
            return Err(EnsembleError::Map {
                member,
                error: SviError::Model {
                    step: settings.map.steps,
                    message: error.message,
                    partial: Box::new(fit),
                },
            })
        }
    };

    let mut swag = None;
    let mut swag_draws = Vec::new();
    if let (Some(swag_settings), false) = (&settings.swag, interrupted) {
        let mut rng = stream_rng(seed, STREAM_SWAG_STEPS);
        let (posterior, swag_interrupted) = run_swag(
            member,
            &mut model,
            &position,
            swag_settings,
            settings.map.skip_nonfinite,
            settings.map.max_consecutive_skips,
            &mut rng,
            &mut |step, loss| {
                callback(&Progress {
                    unit: member,
                    iteration: settings.map.steps + step,
                    total: n_steps,
                    phase: Phase::Sampling,
                    kept: false,
                    loss: Some(loss),
                    divergent: false,
                })
            },
            control,
        )?;
        interrupted |= swag_interrupted;
        if posterior.n_collected > 0 {
            let mut draw_rng = stream_rng(seed, STREAM_SWAG_DRAWS);
            driver::draw_independent(
                member,
                swag_settings.draws,
                dim,
                "multiswag",
                Control::never(),
                sink,
                |_| posterior.sample(&mut draw_rng),
                |draw| swag_draws.push(draw),
            )
            .map_err(|_| EnsembleError::Output { member })?;
            swag = Some(posterior);
        }
    } else if settings.swag.is_none() {
        // A plain ensemble's member is one draw: its position.
        driver::draw_independent(
            member,
            1,
            dim,
            "ensemble",
            Control::never(),
            sink,
            |_| position.clone(),
            drop,
        )
        .map_err(|_| EnsembleError::Output { member })?;
    }
    Ok(EnsembleMember {
        member,
        position,
        final_loss,
        losses: fit.losses,
        swag,
        swag_draws,
        interrupted,
    })
}

/// The running moments of the SWAG phase.
struct SwagMoments {
    mean: Vec<f64>,
    second_moment: Vec<f64>,
    deviations: std::collections::VecDeque<Vec<f64>>,
    rank: usize,
    n_collected: usize,
}

impl SwagMoments {
    fn new(dim: usize, rank: usize) -> Self {
        SwagMoments {
            mean: vec![0.0; dim],
            second_moment: vec![0.0; dim],
            deviations: std::collections::VecDeque::with_capacity(rank),
            rank,
            n_collected: 0,
        }
    }

    /// Adds iterate θ: θ̄ ← θ̄ + (θ − θ̄) / n, the same for θ², then the deviation θ − θ̄.
    fn collect(&mut self, iterate: &[f64]) {
        self.n_collected += 1;
        let n = self.n_collected as f64;
        for ((m, s), x) in self
            .mean
            .iter_mut()
            .zip(self.second_moment.iter_mut())
            .zip(iterate)
        {
            *m += (x - *m) / n;
            *s += (x * x - *s) / n;
        }
        if self.rank > 0 {
            if self.deviations.len() == self.rank {
                self.deviations.pop_front();
            }
            self.deviations
                .push_back(iterate.iter().zip(&self.mean).map(|(x, m)| x - m).collect());
        }
    }

    fn posterior(self) -> SwagPosterior {
        let diagonal_variance = self
            .mean
            .iter()
            .zip(&self.second_moment)
            .map(|(m, s)| (s - m * m).max(0.0))
            .collect();
        SwagPosterior {
            mean: self.mean,
            diagonal_variance,
            deviations: self.deviations.into(),
            n_collected: self.n_collected,
        }
    }
}

/// Continues the optimiser from the MAP point at a constant learning rate and collects the
/// SWAG moments; returns them and whether the stop flag ended the phase.
#[allow(clippy::too_many_arguments)]
fn run_swag<M>(
    member: usize,
    model: &mut M,
    start: &[f64],
    settings: &SwagSettings,
    skip_nonfinite: bool,
    max_consecutive_skips: usize,
    rng: &mut Rng,
    report: &mut dyn FnMut(usize, f64),
    control: Control<'_>,
) -> Result<(SwagPosterior, bool), EnsembleError>
where
    M: ElboModel,
{
    let dim = start.len();
    let failed = |step: usize, message: String| EnsembleError::Swag {
        member,
        step,
        message,
    };
    let mut optimizer = Optimizer::new(&settings.optimizer, dim).map_err(|error| {
        EnsembleError::InvalidSettings {
            message: error.message,
        }
    })?;
    let options = JointOptions::default();
    let mut position = start.to_vec();
    let mut gradient = vec![0.0; dim];
    let mut moments = SwagMoments::new(dim, settings.rank);
    let mut consecutive_skips = 0;
    // Every SWAG step is a sampling iteration of the driver; the iterate is collected every
    // `collect_every` steps.
    let schedule = Schedule {
        warmup: 0,
        samples: settings.steps,
        thin: 1,
    };
    let driven = driver::drive(&schedule, control, Instant::now(), |iteration| {
        let step = iteration.index;
        let evaluation = model
            .log_joint(&position, &options, rng, &mut gradient)
            .and_then(|joint| {
                let value = joint.total();
                if !value.is_finite() {
                    Err(LogDensityError::recoverable(format!(
                        "the log joint is {value}"
                    )))
                } else if let Some(i) = gradient.iter().position(|g| !g.is_finite()) {
                    Err(LogDensityError::recoverable(format!(
                        "the gradient of coordinate {i} is {}",
                        gradient[i]
                    )))
                } else {
                    Ok(value)
                }
            });
        match evaluation {
            Ok(log_joint) => {
                consecutive_skips = 0;
                // The optimisers minimise the loss −log p(x, z), whose gradient is −∇ log p.
                for g in gradient.iter_mut() {
                    *g = -*g;
                }
                optimizer.step(step, &mut position, &mut gradient);
                if let Some(i) = position.iter().position(|q| !q.is_finite()) {
                    return Err(failed(
                        step,
                        format!(
                            "the optimiser moved coordinate {i} to a non-finite value; lower the \
                             learning rate"
                        ),
                    ));
                }
                report(step, -log_joint);
            }
            Err(error) => {
                if !error.recoverable {
                    return Err(failed(step, format!("the model failed: {}", error.message)));
                }
                if !(skip_nonfinite && consecutive_skips < max_consecutive_skips) {
                    return Err(failed(step, error.message));
                }
                consecutive_skips += 1;
            }
        }
        if (step + 1).checked_rem(settings.collect_every) == Some(0) {
            moments.collect(&position);
        }
        Ok(())
    })?;
    Ok((moments.posterior(), driven.interrupted))
}
