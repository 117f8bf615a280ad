//! One chain from start to finish: initialisation, warm-up, sampling.

use super::adaptation::{find_step_size, DualAveraging, MetricAdaptation, StepSizeError};
use super::integrator::PhasePoint;
use super::metric::Metric;
use super::nuts::NutsWorkspace;
use super::{
    hmc, nuts, Adaptation, Algorithm, ChainEvent, ChainResult, DrawEvent, HmcLength, McmcError,
    McmcSettings, SampleStats, Transition,
};
use crate::density::{LogDensity, LogDensityError};
use crate::driver::{initialise, unit_rng, Control};
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

/// Runs chain `chain` to the end, or until `control` says to stop.
pub(crate) fn run_chain<D, C>(
    chain: usize,
    settings: &McmcSettings,
    density: D,
    callback: &C,
    control: Control<'_>,
) -> Result<ChainResult, McmcError>
where
    D: LogDensity,
    C: Fn(&ChainEvent<'_>) + Sync,
{
    let start = Instant::now();
    let should_stop = || control.should_stop();
    let mut density = Counted {
        inner: density,
        evaluations: 0,
    };
    let dim = density.dim();
    let mut rng = unit_rng(settings.seed, chain);

    let mut current = PhasePoint::new(dim);
    initialise_chain(&mut density, settings, chain, &mut rng, &mut current)?;

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
    let mut interrupted = should_stop();
    let mut warmup_divergences = 0;

    let step_size_error = |error: StepSizeError, iteration: usize| match error {
        StepSizeError::Search(message) => McmcError::StepSize { chain, message },
        StepSizeError::Density(error) => McmcError::Density {
            chain,
            iteration,
            error,
        },
    };

    if settings.warmup > 0 && !interrupted {
        step_size = find_step_size(
            &mut density,
            &metric,
            &mut rng,
            &current,
            &mut scratch,
            step_size,
        )
        .map_err(|e| step_size_error(e, 0))?;
        // Stan centres dual averaging on 10 times the configured step size at first.
        let mut dual_averaging = DualAveraging::new(
            &settings.adaptation,
            settings.target_accept,
            (10.0 * settings.initial_step_size).ln(),
        );
        let mut metric_adaptation =
            MetricAdaptation::new(settings.metric, dim, settings.warmup, &settings.adaptation);

        for iteration in 0..settings.warmup {
            if should_stop() {
                interrupted = true;
                break;
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
                    iteration,
                    error,
                })?;
            let stats = stats_of(&transition, &current, step_size);
            if transition.divergent {
                warmup_divergences += 1;
            }
            callback(&ChainEvent::Draw(DrawEvent {
                chain,
                iteration,
                warmup: true,
                position: &current.position,
                stats: &stats,
            }));

            let mut next_step_size = dual_averaging.learn(transition.accept_stat);
            if let Some(new_metric) = metric_adaptation.learn(&current.position) {
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
                .map_err(|e| step_size_error(e, iteration))?;
                dual_averaging.restart(next_step_size);
            }
            step_size = next_step_size;
        }
        if !interrupted {
            step_size = dual_averaging.final_step_size();
        }
    }

    let adaptation = Adaptation {
        step_size,
        inverse_metric: metric.inverse(),
    };
    let warmup_time = start.elapsed();
    let sampling_start = Instant::now();
    let mut draws = Vec::new();
    let mut stats = Vec::new();
    if !interrupted {
        callback(&ChainEvent::AdaptationFinished {
            chain,
            adaptation: &adaptation,
        });
        draws.reserve_exact(settings.samples * dim);
        stats.reserve_exact(settings.samples);
        for iteration in 0..settings.samples {
            if should_stop() {
                interrupted = true;
                break;
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
                    iteration: settings.warmup + iteration,
                    error,
                })?;
            let draw_stats = stats_of(&transition, &current, step_size);
            draws.extend_from_slice(&current.position);
            stats.push(draw_stats);
            callback(&ChainEvent::Draw(DrawEvent {
                chain,
                iteration,
                warmup: false,
                position: &current.position,
                stats: &draw_stats,
            }));
        }
    }

    Ok(ChainResult {
        chain,
        dim,
        draws,
        stats,
        adaptation,
        warmup_divergences,
        n_gradient_evaluations: density.evaluations,
        warmup_time,
        sampling_time: sampling_start.elapsed(),
        interrupted,
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
