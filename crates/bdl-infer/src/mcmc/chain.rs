//! One chain from start to finish: initialisation, then warm-up and sampling through the
//! driver's [`drive`] loop, each draw streamed to the run's [`DrawSink`].

use super::adaptation::{find_step_size, DualAveraging, MetricAdaptation, StepSizeError};
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
    drive, initialise, unit_rng, Adapted, Control, DrawSink, DrawStats, Phase, Progress, Schedule,
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
/// `sink`.
pub(crate) fn run_chain<D, C>(
    chain: usize,
    settings: &McmcSettings,
    density: D,
    callback: &C,
    sink: &dyn DrawSink,
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

    let mut current = PhasePoint::new(dim);
    initialise_chain(&mut density, settings, chain, &mut rng, &mut current)?;
    let output_failed = |_| McmcError::Output { chain };
    sink.header(chain, dim).map_err(output_failed)?;

    // `validate` has checked that a given initial metric is usable.
    let mut metric = match &settings.initial_metric {
        Some(inverse) => Metric::starting(settings.metric, dim, inverse).map_err(|error| {
            McmcError::InvalidSettings {
                message: format!("the initial metric is not usable: {error}"),
            }
        })?,
        None => Metric::unit(settings.metric, dim),
    };
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
    let sampler = settings.algorithm.name();
    let mut draws = Vec::with_capacity(settings.samples * dim);
    let mut stats = Vec::with_capacity(settings.samples);

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

    let driven = drive(&schedule, control, start, |iteration| {
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
            warmup = Some(Warmup {
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
            });
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
            let Some(warmup) = warmup.as_mut() else {
                return Ok(());
            };
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
        } else {
            draws.extend_from_slice(&current.position);
            stats.push(draw_stats);
            sink.draw(chain, stats.len() - 1, &current.position, &sink_stats)
                .map_err(output_failed)?;
        }
        Ok(())
    })?;
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
