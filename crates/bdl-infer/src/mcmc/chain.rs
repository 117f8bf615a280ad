//! One chain from start to finish: initialisation, then warm-up and sampling through the
//! driver's [`drive_from`] loop, each draw streamed to the run's [`DrawSink`], and the chain's
//! state saved between iterations when the caller's [`ChainCheckpoints`] ask for it. A chain
//! resumed from a saved state replays its draws so far to the sink and continues from there.

use super::adaptation::{find_step_size, DualAveraging, MetricAdaptation, StepSizeError};
use super::checkpoint::{ChainCheckpoints, ChainState, SavedWarmup};
use super::integrator::PhasePoint;
use super::metric::InverseMetric;
use super::metric::Metric;
use super::nuts::NutsWorkspace;
use super::{
    hmc, nuts, Adaptation, Algorithm, ChainResult, HmcLength, McmcError, McmcSettings, SampleStats,
    Transition,
};
use crate::density::{LogDensity, LogDensityError};
use crate::driver::{
    drive_from, initialise, unit_rng, Adapted, Control, DrawSink, DrawStats, Phase, Progress,
    Schedule,
};
use crate::rng::Rng;
use std::time::Instant;

/// A density that counts its evaluations.
struct Counted<D> {
    inner: D,
    evaluations: u64,
}

impl<D: LogDensity> LogDensity for Counted<D> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn log_density_gradient(
        &mut self,
        position: &[f64],
        gradient: &mut [f64],
    ) -> Result<f64, LogDensityError> {
        self.evaluations += 1;
        self.inner.log_density_gradient(position, gradient)
    }
}

/// The transition kernel with its buffers.
enum Kernel {
    Nuts(Box<NutsWorkspace>),
    Hmc {
        length: HmcLength,
        proposal: PhasePoint,
    },
}

impl Kernel {
    fn new(algorithm: Algorithm, dim: usize) -> Kernel {
        match algorithm {
            Algorithm::Nuts => Kernel::Nuts(Box::new(NutsWorkspace::new(dim))),
            Algorithm::Hmc(length) => Kernel::Hmc {
                length,
                proposal: PhasePoint::new(dim),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transition<D: LogDensity + ?Sized>(
        &mut self,
        density: &mut D,
        metric: &Metric,
        rng: &mut Rng,
        step_size: f64,
        settings: &McmcSettings,
        current: &mut PhasePoint,
    ) -> Result<Transition, LogDensityError> {
        match self {
            Kernel::Nuts(workspace) => nuts::transition(
                density,
                metric,
                rng,
                step_size,
                settings.max_depth,
                settings.max_energy_error,
                current,
                workspace,
            ),
            Kernel::Hmc { length, proposal } => hmc::transition(
                density,
                metric,
                rng,
                step_size,
                length.n_steps(step_size),
                settings.max_energy_error,
                current,
                proposal,
            ),
        }
    }
}

/// Evaluates a candidate starting point; the error says why it cannot start a chain.
fn try_initial_point<D: LogDensity + ?Sized>(
    density: &mut D,
    point: &mut PhasePoint,
) -> Result<(), LogDensityError> {
    let log_density = density.log_density_gradient(&point.position, &mut point.gradient)?;
    if !log_density.is_finite() {
        return Err(LogDensityError::recoverable(format!(
            "the log density is {log_density} at the initial point"
        )));
    }
    if let Some(i) = point.gradient.iter().position(|g| !g.is_finite()) {
        return Err(LogDensityError::recoverable(format!(
            "the gradient of coordinate {i} is {} at the initial point",
            point.gradient[i]
        )));
    }
    point.log_density = log_density;
    Ok(())
}

/// Finds a starting point as Stan does: the given one, or up to `max_init_attempts` uniform
/// draws in (−radius, radius) until the density and gradient are finite.
fn initialise_chain<D: LogDensity + ?Sized>(
    density: &mut D,
    settings: &McmcSettings,
    chain: usize,
    rng: &mut Rng,
    point: &mut PhasePoint,
) -> Result<(), McmcError> {
    let mut state = (density, point);
    initialise(
        &settings.init,
        chain,
        settings.max_init_attempts,
        rng,
        &mut state,
        |(_, point)| point.position.as_mut_slice(),
        |(density, point), _| try_initial_point(&mut **density, point),
    )
    .map_err(|failure| match failure.attempts {
        0 => McmcError::InvalidSettings {
            message: format!("no usable initial position for chain {chain}"),
        },
        attempts => McmcError::Initialization {
            chain,
            attempts,
            last_error: failure.error,
        },
    })
}

/// Warm-up's state: dual averaging of the step size and the windowed metric adaptation.
struct Warmup {
    dual_averaging: DualAveraging,
    metric_adaptation: MetricAdaptation,
}

impl Warmup {
    /// Warm-up's state at its first iteration.
    fn new(settings: &McmcSettings, dim: usize) -> Warmup {
        Warmup {
            dual_averaging: DualAveraging::new(
                &settings.adaptation,
                settings.target_accept,
                (10.0 * settings.initial_step_size).ln(),
            ),
            metric_adaptation: MetricAdaptation::new(
                settings.metric,
                dim,
                settings.warmup,
                &settings.adaptation,
            ),
        }
    }

    fn saved(&self) -> SavedWarmup {
        SavedWarmup {
            dual_averaging: self.dual_averaging.saved(),
            metric: self.metric_adaptation.saved(),
        }
    }

    /// Warm-up's state as `saved` holds it.
    fn restored(
        settings: &McmcSettings,
        dim: usize,
        saved: &SavedWarmup,
    ) -> Result<Warmup, String> {
        let mut warmup = Warmup::new(settings, dim);
        warmup.dual_averaging.restore(saved.dual_averaging);
        warmup.metric_adaptation.restore(&saved.metric)?;
        Ok(warmup)
    }
}

/// The statistics a sink receives with a draw made with `stats`.
fn replayed_stats(sampler: &'static str, iteration: usize, stats: &SampleStats) -> DrawStats {
    DrawStats {
        sampler,
        iteration,
        step_size: Some(stats.step_size),
        transition: Some(*stats),
    }
}

/// Tells the sink what warm-up adapted.
fn report_adaptation(
    sink: &dyn DrawSink,
    chain: usize,
    adaptation: &Adaptation,
) -> Result<(), McmcError> {
    let (inverse_metric, dense) = match &adaptation.inverse_metric {
        InverseMetric::Diag(diagonal) => (diagonal.as_slice(), false),
        InverseMetric::Dense { values, .. } => (values.as_slice(), true),
    };
    sink.adapted(
        chain,
        &Adapted {
            step_size: adaptation.step_size,
            inverse_metric,
            dense,
        },
    )
    .map_err(|_| McmcError::Output { chain })
}

/// Runs chain `chain` to the end, or until `control` says to stop, streaming its draws to
/// `sink` and saving its state to `checkpoints`; a chain that `checkpoints` resumes continues
/// from its saved state.
pub(crate) fn run_chain<D, C>(
    chain: usize,
    settings: &McmcSettings,
    density: D,
    callback: &C,
    sink: &dyn DrawSink,
    checkpoints: &dyn ChainCheckpoints,
    control: Control<'_>,
) -> Result<ChainResult, McmcError>
where
    D: LogDensity,
    C: Fn(&Progress) + Sync,
{
    let start = Instant::now();
    let mut density = Counted {
        inner: density,
        evaluations: 0,
    };
    let dim = density.dim();
    let mut rng = unit_rng(settings.seed, settings.first_chain + chain);
    let output_failed = |_| McmcError::Output { chain };
    let sampler = settings.algorithm.name();
    let keep_warmup_draws = checkpoints.active() && checkpoints.keep_warmup_draws();

    let mut current = PhasePoint::new(dim);
    let mut step_size = settings.initial_step_size;
    let mut scratch = PhasePoint::new(dim);
    let mut kernel = Kernel::new(settings.algorithm, dim);
    let mut warmup_divergences = 0;
    let mut warmup: Option<Warmup> = None;
    // Set once warm-up has ended (at the first sampling iteration, or after the last warm-up
    // iteration when there are no sampling iterations).
    let mut adaptation: Option<Adaptation> = None;
    let schedule = Schedule {
        warmup: settings.warmup,
        samples: settings.samples,
        thin: 1,
    };
    let mut draws = Vec::with_capacity(settings.samples * dim);
    let mut stats = Vec::with_capacity(settings.samples);
    let mut warmup_draws = Vec::new();
    let mut warmup_stats = Vec::new();
    let mut next_iteration = 0;
    let mut metric;
    if let Some(saved) = checkpoints.resumed(chain) {
        // A resumed chain: its state as saved, and its draws so far replayed to the sink, which
        // writes its files again from their start.
        let unusable = |message: String| McmcError::InvalidSettings {
            message: format!(
                "the saved state of chain {} is unusable: {message}",
                chain + 1
            ),
        };
        saved
            .check(dim, settings.warmup, settings.samples)
            .map_err(unusable)?;
        metric = Metric::starting(settings.metric, dim, &saved.inverse_metric)
            .map_err(|error| unusable(error.to_string()))?;
        warmup = match &saved.warmup {
            Some(state) => Some(Warmup::restored(settings, dim, state).map_err(unusable)?),
            None => None,
        };
        rng.set_word_pos(saved.rng_word_position);
        current.position.copy_from_slice(&saved.position);
        current.gradient.copy_from_slice(&saved.gradient);
        current.log_density = saved.log_density;
        step_size = saved.step_size;
        warmup_divergences = saved.warmup_divergences;
        density.evaluations = saved.gradient_evaluations;
        next_iteration = saved.next_iteration;
        sink.header(chain, dim).map_err(output_failed)?;
        for (iteration, (position, stats)) in saved
            .warmup_draws
            .chunks(dim)
            .zip(&saved.warmup_stats)
            .enumerate()
        {
            sink.warmup_draw(
                chain,
                iteration,
                position,
                &replayed_stats(sampler, iteration, stats),
            )
            .map_err(output_failed)?;
        }
        if saved.adapted {
            let adapted = Adaptation {
                step_size,
                inverse_metric: metric.inverse(),
            };
            report_adaptation(sink, chain, &adapted)?;
            adaptation = Some(adapted);
        }
        for (row, (position, stats)) in saved.draws.chunks(dim).zip(&saved.stats).enumerate() {
            let iteration = settings.warmup + row;
            sink.draw(
                chain,
                row,
                position,
                &replayed_stats(sampler, iteration, stats),
            )
            .map_err(output_failed)?;
        }
        if keep_warmup_draws {
            warmup_draws = saved.warmup_draws;
            warmup_stats = saved.warmup_stats;
        }
        draws.extend_from_slice(&saved.draws);
        stats = saved.stats;
    } else {
        initialise_chain(&mut density, settings, chain, &mut rng, &mut current)?;
        sink.header(chain, dim).map_err(output_failed)?;
        // `validate` has checked that a given initial metric is usable.
        metric = match &settings.initial_metric {
            Some(inverse) => Metric::starting(settings.metric, dim, inverse).map_err(|error| {
                McmcError::InvalidSettings {
                    message: format!("the initial metric is not usable: {error}"),
                }
            })?,
            None => Metric::unit(settings.metric, dim),
        };
    }
    // The chain's state between iterations, as `checkpoints` saves it.
    #[allow(clippy::too_many_arguments)]
    let state_of = |next_iteration: usize,
                    rng: &Rng,
                    current: &PhasePoint,
                    step_size: f64,
                    metric: &Metric,
                    warmup: &Option<Warmup>,
                    adapted: bool,
                    warmup_divergences: usize,
                    gradient_evaluations: u64,
                    warmup_draws: &[f64],
                    warmup_stats: &[SampleStats],
                    draws: &[f64],
                    stats: &[SampleStats]| ChainState {
        next_iteration,
        rng_word_position: rng.get_word_pos(),
        position: current.position.clone(),
        gradient: current.gradient.clone(),
        log_density: current.log_density,
        step_size,
        inverse_metric: metric.inverse(),
        warmup: warmup.as_ref().map(Warmup::saved),
        adapted,
        warmup_divergences,
        gradient_evaluations,
        warmup_draws: warmup_draws.to_vec(),
        warmup_stats: warmup_stats.to_vec(),
        draws: draws.to_vec(),
        stats: stats.to_vec(),
    };

    let step_size_error = |error: StepSizeError, iteration: usize| match error {
        StepSizeError::Search(message) => McmcError::StepSize { chain, message },
        StepSizeError::Density(error) => McmcError::Density {
            chain,
            iteration,
            error,
        },
    };
    // Ends warm-up: the final dual-averaging step size when warm-up ran, the adapted metric, and
    // the sink is told.
    let end_warmup = |warmup: &Option<Warmup>,
                      step_size: &mut f64,
                      metric: &Metric|
     -> Result<Adaptation, McmcError> {
        if let Some(warmup) = warmup {
            *step_size = warmup.dual_averaging.final_step_size();
        }
        let adapted = Adaptation {
            step_size: *step_size,
            inverse_metric: metric.inverse(),
        };
        report_adaptation(sink, chain, &adapted)?;
        Ok(adapted)
    };

    let driven = drive_from(&schedule, next_iteration, control, start, |iteration| {
        let index = iteration.index;
        if iteration.warmup && warmup.is_none() {
            // The first warm-up iteration: the initial step-size search, then dual averaging
            // centred, as Stan does, on 10 times the configured step size.
            step_size = find_step_size(
                &mut density,
                &metric,
                &mut rng,
                &current,
                &mut scratch,
                step_size,
            )
            .map_err(|e| step_size_error(e, 0))?;
            warmup = Some(Warmup::new(settings, dim));
        }
        if !iteration.warmup && adaptation.is_none() {
            adaptation = Some(end_warmup(&warmup, &mut step_size, &metric)?);
        }
        let transition = kernel
            .transition(
                &mut density,
                &metric,
                &mut rng,
                step_size,
                settings,
                &mut current,
            )
            .map_err(|error| McmcError::Density {
                chain,
                iteration: index,
                error,
            })?;
        let draw_stats = stats_of(&transition, &current, step_size);
        callback(&Progress {
            unit: chain,
            iteration: index,
            total: schedule.n_iterations(),
            phase: if iteration.warmup {
                Phase::Warmup
            } else {
                Phase::Sampling
            },
            kept: !iteration.warmup,
            loss: None,
            divergent: draw_stats.divergent,
        });
        let sink_stats = DrawStats {
            sampler,
            iteration: index,
            step_size: Some(step_size),
            transition: Some(draw_stats),
        };
        if iteration.warmup {
            if transition.divergent {
                warmup_divergences += 1;
            }
            sink.warmup_draw(chain, index, &current.position, &sink_stats)
                .map_err(output_failed)?;
            if keep_warmup_draws {
                warmup_draws.extend_from_slice(&current.position);
                warmup_stats.push(draw_stats);
            }
            if let Some(warmup) = warmup.as_mut() {
                let mut next_step_size = warmup.dual_averaging.learn(transition.accept_stat);
                if let Some(new_metric) = warmup.metric_adaptation.learn(&current.position) {
                    metric = new_metric.map_err(|e| McmcError::MetricAdaptation {
                        chain,
                        message: e.message,
                    })?;
                    next_step_size = find_step_size(
                        &mut density,
                        &metric,
                        &mut rng,
                        &current,
                        &mut scratch,
                        next_step_size,
                    )
                    .map_err(|e| step_size_error(e, index))?;
                    warmup.dual_averaging.restart(next_step_size);
                }
                step_size = next_step_size;
            }
        } else {
            draws.extend_from_slice(&current.position);
            stats.push(draw_stats);
            sink.draw(chain, stats.len() - 1, &current.position, &sink_stats)
                .map_err(output_failed)?;
        }
        next_iteration = index + 1;
        if checkpoints.active() && checkpoints.due(chain) {
            let state = state_of(
                next_iteration,
                &rng,
                &current,
                step_size,
                &metric,
                &warmup,
                adaptation.is_some(),
                warmup_divergences,
                density.evaluations,
                &warmup_draws,
                &warmup_stats,
                &draws,
                &stats,
            );
            checkpoints.save(chain, &state).map_err(output_failed)?;
        }
        Ok(())
    })?;
    // The state after the last iteration the chain ran (its end, or a stop), always saved: a
    // chain that finished while others were stopped or killed is not run again.
    if checkpoints.active() {
        let state = state_of(
            next_iteration,
            &rng,
            &current,
            step_size,
            &metric,
            &warmup,
            adaptation.is_some(),
            warmup_divergences,
            density.evaluations,
            &warmup_draws,
            &warmup_stats,
            &draws,
            &stats,
        );
        checkpoints.save(chain, &state).map_err(output_failed)?;
    }
    // A chain without sampling iterations ends its warm-up here, unless it was stopped.
    let adaptation = match adaptation {
        Some(adaptation) => adaptation,
        None if !driven.interrupted => end_warmup(&warmup, &mut step_size, &metric)?,
        None => Adaptation {
            step_size,
            inverse_metric: metric.inverse(),
        },
    };
    sink.finish(chain, driven.interrupted)
        .map_err(output_failed)?;

    Ok(ChainResult {
        chain,
        dim,
        draws,
        stats,
        adaptation,
        warmup_divergences,
        n_gradient_evaluations: density.evaluations,
        warmup_time: driven.warmup_time,
        sampling_time: driven.sampling_time,
        interrupted: driven.interrupted,
    })
}

fn stats_of(transition: &Transition, current: &PhasePoint, step_size: f64) -> SampleStats {
    SampleStats {
        log_density: current.log_density,
        accept_stat: transition.accept_stat,
        step_size,
        tree_depth: transition.tree_depth,
        n_leapfrog: transition.n_leapfrog,
        divergent: transition.divergent,
        energy: transition.energy,
    }
}
