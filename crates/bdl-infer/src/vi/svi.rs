//! Stochastic variational inference: fit an auto-guide (and the model's `param` coordinates) by
//! minimising the ELBO loss with a first-order optimiser.
//!
//! [`fit`] is the entry point for every guide, MAP (the Delta guide) and Laplace (MAP followed by
//! the Hessian). It finds a starting point with a finite ELBO, then runs `steps` optimisation
//! steps, reporting each step's loss to a callback and watching a stop flag, so that an
//! interrupted run returns the last good parameters. A non-finite loss stops the run with the
//! model's message and the last parameters whose loss was finite, unless `skip_nonfinite` asks to
//! skip such steps (at most `max_consecutive_skips` in a row).

use crate::density::{ElboModel, LogDensityError};
use crate::driver::{self, Control, DrawSink, Drawn, SinkFailed};
use crate::rng::{stream_rng, Rng};
use crate::vi::convergence::{self, ConvergenceReport, ConvergenceSettings};
use crate::vi::elbo::{Elbo, ElboKind, ElboSettings};
use crate::vi::error::SviError;
use crate::vi::guide::{GuideFamily, GuideKind};
use crate::vi::laplace;
use crate::vi::numeric::derive_seed;
use crate::vi::optim::{Optimizer, OptimizerSettings, OptimizerState};
use crate::vi::posterior::{FittedGuide, GuideParams};
use crate::vi::schedule::KlWeightSchedule;
use rand::Rng as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Seed purposes, so that each kind of random draw has its own streams.
const PURPOSE_INITIAL_ELBO: u64 = 1;
const PURPOSE_INITIAL_POSITION: u64 = 2;
const PURPOSE_GUIDE_INIT: u64 = 3;
const PURPOSE_LAPLACE: u64 = 4;

/// Where the guide's location and the model's params start, in unconstrained space.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum InitLocation {
    /// Every coordinate at 0 (the median of a prior symmetric about 0 in unconstrained space).
    #[default]
    Zeros,
    /// A given position `[latents, params]`, e.g. the prior median or a prior draw computed by
    /// the caller, who knows the priors.
    Position(Vec<f64>),
    /// Independent Uniform(−radius, radius) draws, fresh for each attempt (Stan's default with
    /// radius 2).
    Uniform {
        /// The half-width of the interval, positive.
        radius: f64,
    },
    /// Resume the optimisation of a saved guide: its parameters exactly as they were (the guide
    /// family must be the one being fitted), and the model's params at `params`
    /// (unconstrained).
    Resume {
        /// The saved guide.
        guide: GuideParams,
        /// The model's params, unconstrained.
        params: Vec<f64>,
    },
}

impl InitLocation {
    /// The position `[latents, params]` this location names, when it names one: the given
    /// position, or a resumed guide's location with its params.
    pub fn position(&self) -> Option<Vec<f64>> {
        match self {
            InitLocation::Position(position) => Some(position.clone()),
            InitLocation::Resume { guide, params } => {
                let mut position = guide.loc().to_vec();
                position.extend_from_slice(params);
                Some(position)
            }
            InitLocation::Zeros | InitLocation::Uniform { .. } => None,
        }
    }
}

/// How the fit starts.
#[derive(Clone, Debug, PartialEq)]
pub struct InitSettings {
    /// The starting location.
    pub location: InitLocation,
    /// The initial marginal standard deviation of normal guides (Pyro's `init_scale`).
    pub scale: f64,
    /// How many starting points to try before giving up when the ELBO is not finite: each
    /// attempt draws new particles, and with [`InitLocation::Uniform`] a new location.
    pub max_attempts: usize,
}

impl Default for InitSettings {
    fn default() -> Self {
        InitSettings {
            location: InitLocation::Zeros,
            scale: 0.1,
            max_attempts: 10,
        }
    }
}

/// Everything `bdlc infer --method svi|map` sets.
#[derive(Clone, Debug, PartialEq)]
pub struct SviSettings {
    /// The guide.
    pub guide: GuideKind,
    /// The number of optimisation steps (the cap when `convergence.stop_when_converged`).
    pub steps: usize,
    /// The number of particles per ELBO estimate.
    pub particles: usize,
    /// The seed of every random draw.
    pub seed: u64,
    /// The ELBO estimator.
    pub elbo: ElboKind,
    /// The optimiser, its learning-rate schedule and gradient clipping.
    pub optimizer: OptimizerSettings,
    /// The KL weight per step (Bayes-by-backprop); 1 for the plain ELBO.
    pub kl_weight: KlWeightSchedule,
    /// The starting point.
    pub init: InitSettings,
    /// Skip steps whose loss is not finite instead of stopping.
    pub skip_nonfinite: bool,
    /// With `skip_nonfinite`, stop anyway after this many consecutive skipped steps.
    pub max_consecutive_skips: usize,
    /// The stationarity test on the loss, and whether it ends the run.
    pub convergence: ConvergenceSettings,
    /// Initial marginal standard deviations of a normal guide, one per latent coordinate
    /// (e.g. from the curvature at a MAP point), replacing `init.scale`.
    pub init_scales: Option<Vec<f64>>,
}

impl Default for SviSettings {
    fn default() -> Self {
        SviSettings {
            guide: GuideKind::DiagonalNormal,
            steps: 1000,
            particles: 1,
            seed: 0,
            elbo: ElboKind::Trace,
            optimizer: OptimizerSettings::default(),
            kl_weight: KlWeightSchedule::default(),
            init: InitSettings::default(),
            skip_nonfinite: false,
            max_consecutive_skips: 10,
            convergence: ConvergenceSettings::default(),
            init_scales: None,
        }
    }
}

impl SviSettings {
    /// Checks the settings that do not depend on the model.
    pub fn validate(&self) -> Result<(), SviError> {
        let invalid = |message: String| SviError::InvalidSettings { message };
        self.optimizer.validate().map_err(|e| invalid(e.message))?;
        self.kl_weight.validate().map_err(|e| invalid(e.message))?;
        if !(self.init.scale.is_finite() && self.init.scale > 0.0) {
            return Err(invalid(format!(
                "the initial guide scale must be positive and finite, got {}",
                self.init.scale
            )));
        }
        if self.init.max_attempts == 0 {
            return Err(invalid(
                "at least one initial attempt is needed".to_string(),
            ));
        }
        if let InitLocation::Uniform { radius } = self.init.location {
            if !(radius.is_finite() && radius > 0.0) {
                return Err(invalid(format!(
                    "the initial radius must be positive and finite, got {radius}"
                )));
            }
        }
        self.convergence.validate().map_err(invalid)?;
        if let Some(scales) = &self.init_scales {
            if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                return Err(invalid(format!(
                    "every initial guide scale must be positive and finite, got {s}"
                )));
            }
        }
        if (self.steps as u64) >= 1 << 40 {
            return Err(invalid(format!("too many steps ({})", self.steps)));
        }
        Ok(())
    }
}

/// The loss at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLoss {
    /// The step, from 0.
    pub step: usize,
    /// −ELBO_β estimated at the parameters before that step's update.
    pub loss: f64,
}

/// A fitted guide and what happened on the way.
#[derive(Clone, Debug)]
pub struct SviFit {
    /// The posterior approximation over the latent coordinates.
    pub guide: FittedGuide,
    /// The model's `param` coordinates (unconstrained).
    pub params: Vec<f64>,
    /// The loss of every step that was taken (skipped steps are absent).
    pub losses: Vec<StepLoss>,
    /// The steps skipped because their loss was not finite.
    pub skipped_steps: Vec<usize>,
    /// Whether the stop flag ended the run early.
    pub interrupted: bool,
    /// The last stationarity test of the loss (`None` when the run was too short for two
    /// windows).
    pub convergence: Option<ConvergenceReport>,
}

impl SviFit {
    /// The mean loss over the last `window` steps taken (`None` before any step).
    pub fn final_loss(&self, window: usize) -> Option<f64> {
        let window = window.max(1).min(self.losses.len());
        if window == 0 {
            return None;
        }
        let tail = &self.losses[self.losses.len() - window..];
        Some(tail.iter().map(|s| s.loss).sum::<f64>() / window as f64)
    }

    /// `n_draws` full model positions `[latents drawn from the guide, params]`, for
    /// posterior-predictive runs.
    pub fn sample_positions<R: rand::Rng + ?Sized>(
        &self,
        rng: &mut R,
        n_draws: usize,
    ) -> Vec<Vec<f64>> {
        let mut draws = self.guide.sample(rng, n_draws);
        for draw in draws.iter_mut() {
            draw.extend_from_slice(&self.params);
        }
        draws
    }

    /// Streams `n_draws` full positions `[latents drawn from the guide, params]` to `sink` as
    /// unit 0 through [`driver::draw_independent`], drawn from `rng` one after another exactly as
    /// [`SviFit::sample_positions`] draws them; nothing is kept. The draws are made to the end
    /// whatever the run's stop flag says (a stopped fit still has its draws).
    pub fn draw_into(
        &self,
        rng: &mut Rng,
        n_draws: usize,
        sink: &(impl DrawSink + ?Sized),
    ) -> Result<Drawn, SinkFailed> {
        let dim = self.guide.latent_dim() + self.params.len();
        driver::draw_independent(
            0,
            n_draws,
            dim,
            "guide",
            Control::never(),
            sink,
            |_| {
                let mut draw = self.guide.sample(rng, 1).pop().unwrap_or_default();
                draw.extend_from_slice(&self.params);
                draw
            },
            drop,
        )
    }

    /// The point `[guide median, params]` (the MAP position for a Delta guide).
    pub fn median_position(&self) -> Vec<f64> {
        let mut position = self.guide.median();
        position.extend_from_slice(&self.params);
        position
    }
}

/// The state shared by the steps of one fit.
struct Run<'a> {
    family: &'a GuideFamily,
    losses: Vec<StepLoss>,
    skipped_steps: Vec<usize>,
    convergence: Option<ConvergenceReport>,
}

impl Run<'_> {
    fn fit_at(&self, params: &[f64], interrupted: bool) -> Result<SviFit, SviError> {
        let n_guide = self.family.n_params();
        let guide =
            self.family
                .to_fitted(&params[..n_guide])
                .map_err(|error| SviError::InvalidModel {
                    message: format!("the fitted guide is not a valid distribution: {error}"),
                })?;
        Ok(SviFit {
            guide,
            params: params[n_guide..].to_vec(),
            losses: self.losses.clone(),
            skipped_steps: self.skipped_steps.clone(),
            interrupted,
            convergence: self.convergence,
        })
    }
}

/// Fits `settings.guide` to the model built by `make_model(particle_index)` (one evaluator per
/// particle), calling `on_step(step, loss)` after every step taken and stopping early, with the
/// current parameters, when `stop` becomes true.
pub fn fit<M, F>(
    make_model: F,
    settings: &SviSettings,
    stop: &AtomicBool,
    on_step: impl FnMut(usize, f64),
) -> Result<SviFit, SviError>
where
    M: ElboModel,
    F: Fn(usize) -> M,
{
    fit_resumable(
        make_model,
        settings,
        stop,
        on_step,
        Checkpoints {
            resume: None,
            every: 0,
            save: |_: &SviCheckpoint, _: &SviFit| {},
        },
    )
}

/// The state of a fit between two steps: enough to continue it and arrive, bit for bit, where
/// the uninterrupted fit arrives (each step's random numbers come from the seed and the step's
/// index, so no random state needs keeping). The last stationarity test is recomputed from the
/// losses.
#[derive(Clone, Debug, PartialEq)]
pub struct SviCheckpoint {
    /// The next step to take.
    pub next_step: usize,
    /// The optimiser's parameters (guide, then the model's params), in its coordinates.
    pub params: Vec<f64>,
    /// The optimiser's moments.
    pub optimizer: OptimizerState,
    /// The steps taken, with their losses.
    pub losses: Vec<StepLoss>,
    /// The steps skipped because their loss was not finite.
    pub skipped_steps: Vec<usize>,
    /// How many steps in a row have been skipped.
    pub consecutive_skips: usize,
    /// The block sums of the parameters kept for the converged fit's average, when the fit
    /// stops on convergence: the current block's sum, its step count, and the finished blocks'.
    pub averages: Option<(Vec<f64>, usize, Vec<Vec<f64>>)>,
}

/// Where a fit starts and when it saves its state: `resume` continues from a saved state,
/// `save(state, fit)` is called after every `every` steps (never when 0) and when the stop flag
/// ends the fit, with the state and the fit so far.
pub struct Checkpoints<'a, S> {
    /// A saved state to continue from.
    pub resume: Option<&'a SviCheckpoint>,
    /// Steps between two saves (0: none, except on interruption when `save` is given).
    pub every: usize,
    /// Receives each saved state.
    pub save: S,
}

/// [`fit`], continuing from a saved state and saving its own (see [`Checkpoints`]).
pub fn fit_resumable<M, F, S>(
    make_model: F,
    settings: &SviSettings,
    stop: &AtomicBool,
    mut on_step: impl FnMut(usize, f64),
    mut checkpoints: Checkpoints<'_, S>,
) -> Result<SviFit, SviError>
where
    M: ElboModel,
    F: Fn(usize) -> M,
    S: FnMut(&SviCheckpoint, &SviFit),
{
    settings.validate()?;
    let elbo_settings = ElboSettings {
        kind: settings.elbo,
        particles: settings.particles,
    };
    let mut elbo = Elbo::new(make_model, &settings.guide, &elbo_settings)?;
    let family = elbo.family().clone();
    let n_params = elbo.n_params();
    let mut gradient = vec![0.0; n_params];
    let mut params = initial_params(&mut elbo, settings, &mut gradient)?;
    let mut previous_params = params.clone();
    let mut optimizer = Optimizer::new(&settings.optimizer, n_params).map_err(|error| {
        SviError::InvalidSettings {
            message: error.message,
        }
    })?;
    let mut run = Run {
        family: &family,
        losses: Vec::with_capacity(settings.steps.min(1 << 20)),
        skipped_steps: Vec::new(),
        convergence: None,
    };
    let mut loss_values: Vec<f64> = Vec::with_capacity(settings.steps.min(1 << 20));
    let mut averages = settings
        .convergence
        .stop_when_converged
        .then(|| BlockAverages::new(n_params, settings.convergence.check_every));
    let mut consecutive_skips = 0;
    let mut interrupted = false;
    let mut first_step = 0;
    if let Some(saved) = checkpoints.resume {
        let resume_error = |message: String| SviError::InvalidSettings {
            message: format!("the saved state cannot be resumed: {message}"),
        };
        if saved.params.len() != n_params {
            return Err(resume_error(format!(
                "it has {} parameters, the fit {n_params}",
                saved.params.len()
            )));
        }
        params.copy_from_slice(&saved.params);
        optimizer.restore(&saved.optimizer).map_err(resume_error)?;
        run.losses.clone_from(&saved.losses);
        run.skipped_steps.clone_from(&saved.skipped_steps);
        loss_values = saved.losses.iter().map(|l| l.loss).collect();
        consecutive_skips = saved.consecutive_skips;
        match (averages.as_mut(), &saved.averages) {
            (Some(averages), Some((current, in_current, sums))) => {
                averages.current.clone_from(current);
                averages.in_current = *in_current;
                averages.sums = sums.iter().cloned().collect();
            }
            (None, None) => {}
            _ => {
                return Err(resume_error(
                    "it was saved with another convergence setting".to_string(),
                ))
            }
        }
        // The last stationarity test the fit ran, as it ran it.
        run.convergence = (1..=loss_values.len())
            .rev()
            .find(|&taken| convergence::check_due(taken, &settings.convergence))
            .and_then(|taken| {
                convergence::test_stationarity(&loss_values[..taken], &settings.convergence)
            });
        first_step = saved.next_step;
    }
    let state = |step: usize,
                 params: &[f64],
                 optimizer: &Optimizer,
                 run: &Run<'_>,
                 consecutive_skips: usize,
                 averages: &Option<BlockAverages>| SviCheckpoint {
        next_step: step,
        params: params.to_vec(),
        optimizer: optimizer.state(),
        losses: run.losses.clone(),
        skipped_steps: run.skipped_steps.clone(),
        consecutive_skips,
        averages: averages.as_ref().map(|a| {
            (
                a.current.clone(),
                a.in_current,
                a.sums.iter().cloned().collect(),
            )
        }),
    };

    for step in first_step..settings.steps {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            let saved = state(
                step,
                &params,
                &optimizer,
                &run,
                consecutive_skips,
                &averages,
            );
            (checkpoints.save)(&saved, &run.fit_at(&params, true)?);
            break;
        }
        if checkpoints.every > 0 && step > first_step && step.is_multiple_of(checkpoints.every) {
            let saved = state(
                step,
                &params,
                &optimizer,
                &run,
                consecutive_skips,
                &averages,
            );
            (checkpoints.save)(&saved, &run.fit_at(&params, false)?);
        }
        let kl_weight = settings.kl_weight.weight(step);
        match elbo.evaluate(
            &params,
            settings.seed,
            step as u64,
            kl_weight,
            &mut gradient,
        ) {
            Ok(loss) => {
                previous_params.copy_from_slice(&params);
                let finite = optimizer.step_and_check(step, &mut params, &mut gradient);
                if let Some(i) = params.iter().position(|p| !finite && !p.is_finite()) {
                    let message = format!(
                        "the optimiser moved parameter {i} to a non-finite value; lower the \
                         learning rate or clip the gradient"
                    );
                    return Err(SviError::NonFiniteLoss {
                        step,
                        message,
                        partial: Box::new(run.fit_at(&previous_params, false)?),
                    });
                }
                consecutive_skips = 0;
                run.losses.push(StepLoss { step, loss });
                loss_values.push(loss);
                if let Some(averages) = averages.as_mut() {
                    averages.add(&params, settings.convergence.window(loss_values.len()));
                }
                on_step(step, loss);
                if convergence::check_due(loss_values.len(), &settings.convergence) {
                    run.convergence =
                        convergence::test_stationarity(&loss_values, &settings.convergence);
                    let stationary = run.convergence.is_some_and(|r| r.converged);
                    if stationary && settings.convergence.stop_when_converged {
                        break;
                    }
                }
            }
            Err(error) => {
                let skippable = error.recoverable
                    && settings.skip_nonfinite
                    && consecutive_skips < settings.max_consecutive_skips;
                if skippable {
                    consecutive_skips += 1;
                    run.skipped_steps.push(step);
                    continue;
                }
                return Err(step_error(
                    step,
                    error,
                    consecutive_skips,
                    &run,
                    &previous_params,
                )?);
            }
        }
    }

    if run.convergence.is_none_or(|r| r.steps != loss_values.len()) {
        run.convergence = convergence::test_stationarity(&loss_values, &settings.convergence);
    }
    if let (Some(averages), Some(report)) = (&averages, run.convergence) {
        if let Some(mean) = averages.mean_of_last(report.window) {
            params = mean;
        }
    }
    let fit = run.fit_at(&params, interrupted)?;
    if settings.guide != GuideKind::Laplace {
        return Ok(fit);
    }
    let position = fit.median_position();
    let laplace_seed = derive_seed(settings.seed, PURPOSE_LAPLACE);
    match laplace::approximate(elbo.model_mut(), &position, laplace_seed) {
        Ok(guide) => Ok(SviFit { guide, ..fit }),
        Err(error) => Err(SviError::Laplace {
            message: error.message,
            partial: Box::new(fit),
        }),
    }
}

/// Sums of the parameters over consecutive blocks of `block` steps, the most recent kept, so
/// that the mean over the last window (a whole number of blocks) can be returned.
struct BlockAverages {
    block: usize,
    current: Vec<f64>,
    in_current: usize,
    sums: std::collections::VecDeque<Vec<f64>>,
}

impl BlockAverages {
    fn new(n_params: usize, block: usize) -> Self {
        BlockAverages {
            block: block.max(1),
            current: vec![0.0; n_params],
            in_current: 0,
            sums: std::collections::VecDeque::new(),
        }
    }

    /// Adds one step's parameters; keeps enough blocks for a window of `window` steps.
    fn add(&mut self, params: &[f64], window: usize) {
        for (s, p) in self.current.iter_mut().zip(params) {
            *s += p;
        }
        self.in_current += 1;
        if self.in_current == self.block {
            let full = std::mem::replace(&mut self.current, vec![0.0; params.len()]);
            self.sums.push_back(full);
            self.in_current = 0;
            // The window may grow by a block before the next check: keep one spare.
            let keep = window.div_ceil(self.block) + 1;
            while self.sums.len() > keep {
                self.sums.pop_front();
            }
        }
    }

    /// The mean over the last `window` steps, when they are whole blocks just completed.
    fn mean_of_last(&self, window: usize) -> Option<Vec<f64>> {
        let blocks = window / self.block;
        if self.in_current != 0
            || blocks == 0
            || !window.is_multiple_of(self.block)
            || blocks > self.sums.len()
        {
            return None;
        }
        let mut mean = vec![0.0; self.current.len()];
        for sum in self.sums.iter().skip(self.sums.len() - blocks) {
            for (m, s) in mean.iter_mut().zip(sum) {
                *m += s;
            }
        }
        for m in mean.iter_mut() {
            *m /= window as f64;
        }
        Some(mean)
    }
}

/// The error for a failed step; `params` are the last parameters whose loss was finite.
fn step_error(
    step: usize,
    error: LogDensityError,
    consecutive_skips: usize,
    run: &Run<'_>,
    params: &[f64],
) -> Result<SviError, SviError> {
    let partial = Box::new(run.fit_at(params, false)?);
    Ok(if !error.recoverable {
        SviError::Model {
            step,
            message: error.message,
            partial,
        }
    } else if consecutive_skips > 0 {
        SviError::NonFiniteLoss {
            step,
            message: format!(
                "{} (after {consecutive_skips} skipped steps in a row)",
                error.message
            ),
            partial,
        }
    } else {
        SviError::NonFiniteLoss {
            step,
            message: error.message,
            partial,
        }
    })
}

/// Finds initial parameters whose ELBO estimate is finite.
fn initial_params<M: ElboModel>(
    elbo: &mut Elbo<M>,
    settings: &SviSettings,
    gradient: &mut [f64],
) -> Result<Vec<f64>, SviError> {
    let latent_dim = elbo.latent_dim();
    let dim = latent_dim + elbo.param_dim();
    if let InitLocation::Resume { guide, .. } = &settings.init.location {
        let (family, _) =
            GuideFamily::from_guide_params(guide).map_err(|error| SviError::InvalidSettings {
                message: format!("the guide to resume is not valid: {error}"),
            })?;
        if &family != elbo.family() {
            return Err(SviError::InvalidSettings {
                message: format!(
                    "the guide to resume is a `{}` guide over {} coordinates, but a `{}` guide \
                     over {latent_dim} coordinates is being fitted",
                    guide.name(),
                    family.latent_dim(),
                    settings.guide.name()
                ),
            });
        }
    }
    if let Some(position) = settings.init.location.position() {
        if position.len() != dim {
            return Err(SviError::InvalidSettings {
                message: format!(
                    "the initial position has {} values but the model has {latent_dim} latent \
                     and {} param coordinates",
                    position.len(),
                    elbo.param_dim()
                ),
            });
        }
        if let Some(i) = position.iter().position(|v| !v.is_finite()) {
            return Err(SviError::InvalidSettings {
                message: format!("the initial position's coordinate {i} is not finite"),
            });
        }
    }
    if let Some(scales) = &settings.init_scales {
        if scales.len() != latent_dim {
            return Err(SviError::InvalidSettings {
                message: format!(
                    "{} initial guide scales were given but the model has {latent_dim} latent \
                     coordinates",
                    scales.len()
                ),
            });
        }
    }
    let elbo_seed = derive_seed(settings.seed, PURPOSE_INITIAL_ELBO);
    let mut last_error = String::new();
    for attempt in 0..settings.init.max_attempts {
        let position = match &settings.init.location {
            InitLocation::Zeros => vec![0.0; dim],
            InitLocation::Position(position) => position.clone(),
            InitLocation::Resume { .. } => settings.init.location.position().unwrap_or_default(),
            InitLocation::Uniform { radius } => {
                let mut rng = stream_rng(
                    derive_seed(settings.seed, PURPOSE_INITIAL_POSITION),
                    attempt as u64,
                );
                (0..dim)
                    .map(|_| rng.random_range(-radius..*radius))
                    .collect()
            }
        };
        let mut guide_rng = stream_rng(
            derive_seed(settings.seed, PURPOSE_GUIDE_INIT),
            attempt as u64,
        );
        let mut params = match &settings.init.location {
            // Checked above: the saved guide's family is the one being fitted.
            InitLocation::Resume { guide, .. } => GuideFamily::from_guide_params(guide)
                .map(|(_, params)| params)
                .map_err(|error| SviError::InvalidSettings {
                    message: error.message,
                })?,
            _ => elbo
                .family()
                .initial_params(&position, settings.init.scale, &mut guide_rng),
        };
        if let (Some(scales), false) = (
            &settings.init_scales,
            matches!(settings.init.location, InitLocation::Resume { .. }),
        ) {
            elbo.family()
                .set_initial_scales(&mut params, settings.init.scale, scales);
        }
        params.extend_from_slice(&position[latent_dim..]);
        let kl_weight = settings.kl_weight.weight(0);
        match elbo.evaluate(&params, elbo_seed, attempt as u64, kl_weight, gradient) {
            Ok(_) => return Ok(params),
            Err(error) if !error.recoverable => {
                return Err(SviError::Initialisation {
                    attempts: attempt + 1,
                    message: error.message,
                })
            }
            Err(error) => last_error = error.message,
        }
    }
    Err(SviError::Initialisation {
        attempts: settings.init.max_attempts,
        message: last_error,
    })
}
