//! The one chain driver: what every multi-chain or multi-member algorithm shares, so that each
//! algorithm supplies only its transition.
//!
//! An algorithm runs several independent *units* (Markov chains, ensemble members). The driver
//! owns what is the same for all of them:
//!
//! - **models per unit**: [`Units`] makes one model (density, evaluator) per unit with the
//!   caller's factory; unit 0's model is made first, so that the algorithm can learn the
//!   dimension and validate its settings before anything runs, and is then handed to unit 0;
//! - **starting points**: [`Init`] says where units start (uniform draws in (−r, r), retried
//!   until the model accepts the point, or given positions) and [`initialise`] finds the point;
//! - **random streams**: unit `u` draws every random number from [`unit_rng`]`(seed, u)`, so the
//!   draws depend only on the seed and the unit, never on the thread count or the order in which
//!   units run;
//! - **parallelism**: [`Units::run`] runs the units with rayon or one after another, with
//!   identical results;
//! - **interruption**: a [`Control`] tells a unit when to stop: when the caller's stop flag is set
//!   (Ctrl-C) or when another unit failed (an error in one unit aborts the others);
//! - **phases**: [`Schedule`] and [`drive`] run the warm-up (burn-in) iterations and then the
//!   sampling iterations with thinning, tell the transition which phase and whether the iteration
//!   is kept, stop early when asked, and time both phases;
//! - **results**: [`collect`] returns the units' results in unit order, or the first error in
//!   unit order, so the error reported does not depend on timing.
//!
//! - **output**: a [`DrawSink`] receives each unit's kept draws on the unit's thread as they are
//!   made (the binary writes them to CmdStan CSV files), so that an interrupted or long run has
//!   its draws on disk without waiting for the end; [`NoSink`] discards them. The methods whose
//!   draws are independent (a fitted guide's, an ensemble's members, MultiSWAG's) stream them
//!   through the same sink with [`draw_independent`].
//!
//! - **progress**: every algorithm reports each finished iteration of each unit as one
//!   [`Progress`] (with its [`Phase`]) through the caller's callback, on the unit's thread; the
//!   binary renders it with progress bars in one place.

use crate::density::LogDensityError;
use crate::rng::{stream_rng, Rng};
use rand::Rng as _;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The random stream of unit `unit` (a chain or an ensemble member) of a run seeded with `seed`.
pub fn unit_rng(seed: u64, unit: usize) -> Rng {
    stream_rng(seed, unit as u64)
}

/// Where a unit starts, in unconstrained space.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// Uniform(−radius, radius) in every coordinate, redrawn until the model accepts the point
    /// (Stan's default, radius 2).
    Random {
        /// The half-width of the interval; 0 starts every unit at the origin.
        radius: f64,
    },
    /// Given positions: one shared by all units, or one per unit.
    Positions(Vec<Vec<f64>>),
}

impl Default for Init {
    fn default() -> Self {
        Init::Random { radius: 2.0 }
    }
}

impl Init {
    /// Checks the settings for `n_units` units of dimension `dim`; the message says what is wrong.
    pub fn validate(&self, n_units: usize, dim: usize) -> Result<(), String> {
        match self {
            Init::Random { radius } => {
                if !(radius.is_finite() && *radius >= 0.0) {
                    return Err(format!(
                        "the initialisation radius must be finite and non-negative, not {radius}"
                    ));
                }
            }
            Init::Positions(positions) => {
                if positions.len() != 1 && positions.len() != n_units {
                    return Err(format!(
                        "{} initial positions were given for {n_units} chains: give one for all or \
                         one per chain",
                        positions.len(),
                    ));
                }
                for (i, position) in positions.iter().enumerate() {
                    if position.len() != dim {
                        return Err(format!(
                            "initial position {i} has {} coordinates, but the model has {dim}",
                            position.len()
                        ));
                    }
                    if let Some(k) = position.iter().position(|v| !v.is_finite()) {
                        return Err(format!(
                            "coordinate {k} of initial position {i} is not finite"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why no starting point was found.
#[derive(Clone, Debug, PartialEq)]
pub struct InitFailure {
    /// How many points were tried.
    pub attempts: usize,
    /// The failure at the last point tried.
    pub error: LogDensityError,
}

/// Finds unit `unit`'s starting point: the given position (one attempt), or up to `max_attempts`
/// uniform draws from `rng` until `accept` takes the point. `position` gives the state's position
/// buffer; `accept` evaluates the state there and says why it cannot start (a fatal error ends
/// the search at once, a recoverable one draws again).
pub fn initialise<S>(
    init: &Init,
    unit: usize,
    max_attempts: usize,
    rng: &mut Rng,
    state: &mut S,
    position: impl Fn(&mut S) -> &mut [f64],
    mut accept: impl FnMut(&mut S, &mut Rng) -> Result<(), LogDensityError>,
) -> Result<(), InitFailure> {
    let failed = |attempts, error| InitFailure { attempts, error };
    match init {
        Init::Positions(positions) => {
            let target = position(state);
            match positions.get(unit).or_else(|| positions.first()) {
                Some(given) if given.len() == target.len() => target.copy_from_slice(given),
                _ => {
                    return Err(failed(
                        0,
                        LogDensityError::fatal(format!(
                            "no usable initial position for chain {unit}"
                        )),
                    ))
                }
            }
            accept(state, rng).map_err(|error| failed(1, error))
        }
        Init::Random { radius } => {
            let mut last_error = LogDensityError::recoverable("no initial point was tried");
            for attempt in 1..=max_attempts {
                for q in position(state).iter_mut() {
                    *q = radius * (2.0 * rng.random::<f64>() - 1.0);
                }
                match accept(state, rng) {
                    Ok(()) => return Ok(()),
                    Err(error) if !error.recoverable => return Err(failed(attempt, error)),
                    Err(error) => last_error = error,
                }
            }
            Err(failed(max_attempts, last_error))
        }
    }
}

/// When a unit must stop: the caller asked (Ctrl-C), or another unit failed.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    stop: &'a AtomicBool,
    abort: &'a AtomicBool,
}

/// The flag of [`Control::never`], which nothing sets.
static NEVER_SET: AtomicBool = AtomicBool::new(false);

impl Control<'static> {
    /// A control that never stops: for the phases that end a run whatever happened before it
    /// (the draws of a fitted guide, or of an ensemble member, are made after a stopped fit too).
    pub fn never() -> Control<'static> {
        Control {
            stop: &NEVER_SET,
            abort: &NEVER_SET,
        }
    }
}

impl<'a> Control<'a> {
    /// A control over the caller's stop flag and the run's abort flag.
    pub fn new(stop: &'a AtomicBool, abort: &'a AtomicBool) -> Control<'a> {
        Control { stop, abort }
    }

    /// Whether the unit should stop before its next iteration.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed)
    }

    /// The caller's stop flag alone (for a phase that watches a flag of its own, such as an
    /// ensemble member's MAP fit).
    pub fn stop_flag(&self) -> &'a AtomicBool {
        self.stop
    }

    /// Tells the other units to stop (this one failed).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }
}

/// The models of a run's units, made by the caller's factory; unit 0's is made first and kept
/// for unit 0.
pub struct Units<M, F> {
    first: Mutex<Option<M>>,
    make: F,
}

impl<M, F> Units<M, F>
where
    M: Send,
    F: Fn(usize) -> M + Sync,
{
    /// Makes unit 0's model at once (see [`Units::first`]).
    pub fn new(make: F) -> Units<M, F> {
        let first = make(0);
        Units {
            first: Mutex::new(Some(first)),
            make,
        }
    }

    /// Looks at unit 0's model before the run (to learn its dimension); `None` once taken.
    pub fn first<T>(&self, look: impl FnOnce(&M) -> T) -> Option<T> {
        let guard = self.first.lock().ok()?;
        guard.as_ref().map(look)
    }

    /// The model of unit `unit`: the one made first for unit 0, a new one otherwise.
    pub fn take(&self, unit: usize) -> M {
        let kept = if unit == 0 {
            self.first.lock().ok().and_then(|mut m| m.take())
        } else {
            None
        };
        kept.unwrap_or_else(|| (self.make)(unit))
    }

    /// Runs `n_units` units as [`run_units`] does, handing each its model.
    pub fn run<T, E, R>(
        &self,
        n_units: usize,
        parallel: bool,
        stop: &AtomicBool,
        run: R,
    ) -> Vec<Result<T, E>>
    where
        T: Send,
        E: Send,
        R: Fn(usize, M, Control<'_>) -> Result<T, E> + Sync,
    {
        run_units(n_units, parallel, stop, |unit, control| {
            run(unit, self.take(unit), control)
        })
    }
}

/// Runs `n_units` units, in parallel with rayon when `parallel` is set or one after another, with
/// the same results either way. `run(unit, control)` runs one unit to the end; an error sets the
/// abort flag so that the other units stop before their next iteration. The outcomes are in unit
/// order.
pub fn run_units<T, E, R>(
    n_units: usize,
    parallel: bool,
    stop: &AtomicBool,
    run: R,
) -> Vec<Result<T, E>>
where
    T: Send,
    E: Send,
    R: Fn(usize, Control<'_>) -> Result<T, E> + Sync,
{
    let abort = AtomicBool::new(false);
    let one = |unit: usize| {
        let control = Control::new(stop, &abort);
        let result = run(unit, control);
        if result.is_err() {
            control.abort();
        }
        result
    };
    if parallel {
        (0..n_units).into_par_iter().map(one).collect()
    } else {
        (0..n_units).map(one).collect()
    }
}

/// The units' results in unit order, or the first error in unit order.
pub fn collect<T, E>(outcomes: Vec<Result<T, E>>) -> Result<Vec<T>, E> {
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        results.push(outcome?);
    }
    Ok(results)
}

/// How many iterations a unit runs and which it keeps: `warmup` iterations first, then
/// `samples × thin` iterations of which the last of every `thin` is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Warm-up (burn-in) iterations; none is kept.
    pub warmup: usize,
    /// Kept draws.
    pub samples: usize,
    /// Sampling iterations per kept draw (at least 1).
    pub thin: usize,
}

impl Schedule {
    /// The number of iterations, warm-up included.
    pub fn n_iterations(&self) -> usize {
        self.warmup + self.samples * self.thin
    }

    /// Whether iteration `iteration` (counted from 0 through warm-up and sampling) is warm-up.
    pub fn is_warmup(&self, iteration: usize) -> bool {
        iteration < self.warmup
    }

    /// Whether iteration `iteration` is kept: the last of every `thin` after warm-up.
    pub fn is_kept(&self, iteration: usize) -> bool {
        !self.is_warmup(iteration)
            && (iteration - self.warmup + 1).checked_rem(self.thin) == Some(0)
    }
}

/// One iteration as [`drive`] hands it to the transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iteration {
    /// Counted from 0 through warm-up and sampling.
    pub index: usize,
    /// Whether it is a warm-up iteration.
    pub warmup: bool,
    /// Whether its draw is kept.
    pub kept: bool,
}

/// How a unit's iterations went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Driven {
    /// Whether [`Control`] stopped the unit before its last iteration.
    pub interrupted: bool,
    /// Wall time from `start` to the first sampling iteration (all of it without one).
    pub warmup_time: Duration,
    /// Wall time of the sampling iterations.
    pub sampling_time: Duration,
}

/// Runs `schedule`'s iterations, calling `step` for each, until the end, an error, or until
/// `control` says to stop (checked before every iteration). `start` is when the unit began
/// (initialisation counts as warm-up time).
pub fn drive<E>(
    schedule: &Schedule,
    control: Control<'_>,
    start: Instant,
    step: impl FnMut(Iteration) -> Result<(), E>,
) -> Result<Driven, E> {
    drive_from(schedule, 0, control, start, step)
}

/// [`drive`] from iteration `first` on: a unit resumed from a saved state continues where it
/// stopped, with the iterations before `first` already done.
pub fn drive_from<E>(
    schedule: &Schedule,
    first: usize,
    control: Control<'_>,
    start: Instant,
    mut step: impl FnMut(Iteration) -> Result<(), E>,
) -> Result<Driven, E> {
    let mut interrupted = false;
    let mut warmup_time = None;
    for index in first..schedule.n_iterations() {
        if control.should_stop() {
            interrupted = true;
            break;
        }
        let warmup = schedule.is_warmup(index);
        if !warmup && warmup_time.is_none() {
            warmup_time = Some(start.elapsed());
        }
        step(Iteration {
            index,
            warmup,
            kept: schedule.is_kept(index),
        })?;
    }
    let warmup_time = warmup_time.unwrap_or_else(|| start.elapsed());
    Ok(Driven {
        interrupted,
        warmup_time,
        sampling_time: start.elapsed().saturating_sub(warmup_time),
    })
}

/// How a unit's independent draws went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drawn {
    /// The draws made and handed to the sink.
    pub made: usize,
    /// Whether [`Control`] stopped the unit before its last draw.
    pub interrupted: bool,
}

/// Streams unit `unit`'s `n_draws` independent draws of `dim` coordinates to `sink` as they are
/// made: the draw phase of the methods whose draws are not a Markov chain (a fitted guide's
/// draws, an ensemble member's position, MultiSWAG's draws from a member's Gaussian). The draws
/// go through [`drive`] with a schedule of sampling iterations only, each kept: `next(row)` makes
/// draw `row`, the sink receives it ([`DrawSink::header`] first, [`DrawSink::finish`] last), and
/// `keep` takes it afterwards for the caller's in-memory result. `sampler` names the method in
/// the draws' [`DrawStats`].
#[allow(clippy::too_many_arguments)]
pub fn draw_independent(
    unit: usize,
    n_draws: usize,
    dim: usize,
    sampler: &'static str,
    control: Control<'_>,
    sink: &(impl DrawSink + ?Sized),
    mut next: impl FnMut(usize) -> Vec<f64>,
    mut keep: impl FnMut(Vec<f64>),
) -> Result<Drawn, SinkFailed> {
    let schedule = Schedule {
        warmup: 0,
        samples: n_draws,
        thin: 1,
    };
    sink.header(unit, dim)?;
    let mut made = 0;
    let driven = drive(&schedule, control, Instant::now(), |iteration| {
        let draw = next(iteration.index);
        let stats = DrawStats {
            sampler,
            iteration: iteration.index,
            step_size: None,
            transition: None,
        };
        sink.draw(unit, made, &draw, &stats)?;
        made += 1;
        keep(draw);
        Ok(())
    })?;
    sink.finish(unit, driven.interrupted)?;
    Ok(Drawn {
        made,
        interrupted: driven.interrupted,
    })
}

/// The phase of a unit's run that an iteration belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Warm-up (burn-in, adaptation): the iteration's draw is not kept.
    Warmup,
    /// Sampling: kept draws come from this phase (every `thin`-th with thinning); for MultiSWAG,
    /// the SWAG phase that collects iterates.
    Sampling,
    /// An optimisation (an ensemble member's MAP fit) that draws nothing.
    Fitting,
}

impl Phase {
    /// The phase's name as progress displays show it.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Warmup => "warm-up",
            Phase::Sampling => "sampling",
            Phase::Fitting => "fitting",
        }
    }
}

/// One finished iteration of one unit, as every algorithm reports it to its progress callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The unit (chain or ensemble member), from 0.
    pub unit: usize,
    /// The iteration, from 0, counted through all of the unit's phases.
    pub iteration: usize,
    /// The unit's number of iterations when it runs to the end.
    pub total: usize,
    /// The phase the iteration belongs to.
    pub phase: Phase,
    /// Whether the iteration's draw is kept.
    pub kept: bool,
    /// The loss at that iteration, for the methods that optimise one.
    pub loss: Option<f64>,
    /// Whether the iteration's transition diverged (Hamiltonian samplers; false for the others).
    pub divergent: bool,
}

/// A sink refused a draw; the sink keeps the reason (it owns the output) and the algorithm stops
/// the unit, reporting which unit's output failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkFailed;

/// The statistics of one Hamiltonian transition (CmdStan's `…__` columns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleStats {
    /// `lp__`: log p(q) of the draw, up to the density's constant.
    pub log_density: f64,
    /// `accept_stat__`: the mean Metropolis acceptance probability over the trajectory.
    pub accept_stat: f64,
    /// `stepsize__`: the step size this transition used.
    pub step_size: f64,
    /// `treedepth__`: the depth of the NUTS tree (0 for static HMC).
    pub tree_depth: u32,
    /// `n_leapfrog__`: leapfrog steps taken.
    pub n_leapfrog: u32,
    /// `divergent__`: whether the trajectory diverged.
    pub divergent: bool,
    /// `energy__`: the Hamiltonian at the draw.
    pub energy: f64,
}

impl SampleStats {
    /// CmdStan's names of the statistics, in the order of [`SampleStats::values`].
    pub const COLUMN_NAMES: [&'static str; 7] = [
        "lp__",
        "accept_stat__",
        "stepsize__",
        "treedepth__",
        "n_leapfrog__",
        "divergent__",
        "energy__",
    ];

    /// The statistics as numbers, in CmdStan's column order.
    pub fn values(&self) -> [f64; 7] {
        [
            self.log_density,
            self.accept_stat,
            self.step_size,
            f64::from(self.tree_depth),
            f64::from(self.n_leapfrog),
            if self.divergent { 1.0 } else { 0.0 },
            self.energy,
        ]
    }
}

/// What a draw came with besides its position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DrawStats {
    /// The sampler that made the draw (`nuts`, `hmc`, `sgld`, `sghmc`, `gibbs`; `guide`,
    /// `resampled`, `ensemble` and `multiswag` for independent draws).
    pub sampler: &'static str,
    /// The iteration that produced the draw, counted from 0 through warm-up and sampling.
    pub iteration: usize,
    /// The step size of that iteration, where the method has one.
    pub step_size: Option<f64>,
    /// The transition's statistics (tree depth, energy, divergence…) for the Hamiltonian
    /// samplers.
    pub transition: Option<SampleStats>,
}

/// What warm-up adapted, as a sink receives it before the unit's sampling draws.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adapted<'a> {
    /// The step size sampling uses.
    pub step_size: f64,
    /// The inverse metric: its diagonal, or the `dim × dim` matrix row by row when `dense`.
    pub inverse_metric: &'a [f64],
    /// Whether `inverse_metric` is a dense matrix.
    pub dense: bool,
}

/// Where the driver streams kept draws as they are made.
///
/// Every method is called on the unit's own thread, units possibly in parallel, so a sink keeps
/// per-unit state behind its own locks. For one unit the calls come in order: [`DrawSink::header`]
/// once before the first draw, [`DrawSink::warmup_draw`] for each warm-up iteration (for the
/// algorithms that adapt), [`DrawSink::adapted`] once when warm-up ends (for the same),
/// [`DrawSink::draw`] for each kept draw with rows numbered from 0, [`DrawSink::comment`]
/// whenever the algorithm has something to note, and [`DrawSink::finish`] once when the unit ends
/// normally or is interrupted (not when it fails). Positions are unconstrained; turning them into
/// output values is the sink's business.
pub trait DrawSink: Sync {
    /// Unit `unit` is about to produce draws of `dim` coordinates.
    fn header(&self, unit: usize, dim: usize) -> Result<(), SinkFailed>;
    /// Unit `unit`'s kept draw number `row`.
    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed>;
    /// Unit `unit`'s warm-up iteration `iteration`; ignored unless the sink keeps warm-up.
    fn warmup_draw(
        &self,
        _unit: usize,
        _iteration: usize,
        _position: &[f64],
        _stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        Ok(())
    }
    /// Unit `unit`'s warm-up has ended with `adapted`; its sampling draws follow.
    fn adapted(&self, _unit: usize, _adapted: &Adapted<'_>) -> Result<(), SinkFailed> {
        Ok(())
    }
    /// A note about unit `unit` (adaptation results, for instance).
    fn comment(&self, unit: usize, line: &str) -> Result<(), SinkFailed>;
    /// Unit `unit` has ended; `interrupted` says whether it was stopped early.
    fn finish(&self, unit: usize, interrupted: bool) -> Result<(), SinkFailed>;
}

/// A sink that keeps nothing, for callers that only want the in-memory result.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSink;

impl DrawSink for NoSink {
    fn header(&self, _unit: usize, _dim: usize) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn draw(
        &self,
        _unit: usize,
        _row: usize,
        _position: &[f64],
        _stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn comment(&self, _unit: usize, _line: &str) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn finish(&self, _unit: usize, _interrupted: bool) -> Result<(), SinkFailed> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_starts_are_redrawn_until_accepted_and_given_ones_are_copied() {
        let mut rng = unit_rng(3, 0);
        let mut position = vec![0.0; 2];
        let mut tries = 0;
        initialise(
            &Init::Random { radius: 2.0 },
            0,
            10,
            &mut rng,
            &mut position,
            |p| p.as_mut_slice(),
            |p, _| {
                tries += 1;
                if p[0] > 0.0 {
                    Ok(())
                } else {
                    Err(LogDensityError::recoverable("negative"))
                }
            },
        )
        .unwrap();
        assert!(position[0] > 0.0 && position[0] < 2.0 && position[1].abs() < 2.0);
        assert!(tries >= 1);
        let failure = initialise(
            &Init::Random { radius: 2.0 },
            0,
            3,
            &mut rng,
            &mut position,
            |p| p.as_mut_slice(),
            |_, _| Err(LogDensityError::recoverable("never")),
        )
        .unwrap_err();
        assert_eq!(failure.attempts, 3);
        let given = Init::Positions(vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        initialise(
            &given,
            1,
            5,
            &mut rng,
            &mut position,
            |p| p.as_mut_slice(),
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(position, vec![3.0, 4.0]);
        assert!(given.validate(2, 2).is_ok());
        assert!(given.validate(3, 2).is_err());
        assert!(Init::Positions(vec![vec![f64::NAN, 0.0]])
            .validate(1, 2)
            .is_err());
        assert!(Init::Random { radius: -1.0 }.validate(1, 2).is_err());
    }

    #[test]
    fn a_schedule_keeps_the_last_of_every_thin_after_warmup() {
        let schedule = Schedule {
            warmup: 3,
            samples: 2,
            thin: 2,
        };
        assert_eq!(schedule.n_iterations(), 7);
        let kept: Vec<usize> = (0..7).filter(|&i| schedule.is_kept(i)).collect();
        assert_eq!(kept, vec![4, 6]);
        assert!(schedule.is_warmup(2) && !schedule.is_warmup(3));
    }

    #[test]
    fn parallel_and_sequential_units_give_the_same_draws() {
        let units = Units::new(|unit| unit * 10);
        let stop = AtomicBool::new(false);
        let run = |unit: usize, model: usize, control: Control<'_>| -> Result<Vec<f64>, ()> {
            let mut rng = unit_rng(5, unit);
            let schedule = Schedule {
                warmup: 2,
                samples: 3,
                thin: 1,
            };
            let mut draws = Vec::new();
            drive(&schedule, control, Instant::now(), |iteration| {
                let x: f64 = rng.random();
                if iteration.kept {
                    draws.push(x + model as f64);
                }
                Ok(())
            })?;
            Ok(draws)
        };
        let parallel = collect(units.run(4, true, &stop, run)).unwrap();
        let units = Units::new(|unit| unit * 10);
        let sequential = collect(units.run(4, false, &stop, run)).unwrap();
        assert_eq!(parallel, sequential);
        assert_eq!(parallel.len(), 4);
        assert!(parallel.iter().all(|draws| draws.len() == 3));
        assert_ne!(parallel[0], parallel[1]);
    }

    #[test]
    fn an_error_in_one_unit_stops_the_others_and_the_first_error_in_unit_order_wins() {
        let units = Units::new(|unit| unit);
        let stop = AtomicBool::new(false);
        let outcomes = units.run(3, false, &stop, |unit, _, control| {
            if control.should_stop() {
                return Err(format!("unit {unit} was stopped"));
            }
            if unit == 1 {
                return Err("unit 1 failed".to_string());
            }
            Ok(unit)
        });
        assert_eq!(outcomes[0], Ok(0));
        assert_eq!(outcomes[2], Err("unit 2 was stopped".to_string()));
        assert_eq!(collect(outcomes), Err("unit 1 failed".to_string()));
    }

    #[test]
    fn a_stop_before_the_first_iteration_runs_nothing() {
        let stop = AtomicBool::new(true);
        let abort = AtomicBool::new(false);
        let schedule = Schedule {
            warmup: 1,
            samples: 1,
            thin: 1,
        };
        let mut steps = 0;
        let driven = drive::<()>(
            &schedule,
            Control::new(&stop, &abort),
            Instant::now(),
            |_| {
                steps += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(driven.interrupted);
        assert_eq!(steps, 0);
    }

    #[test]
    fn unit_zero_gets_the_model_made_first() {
        let made = std::sync::atomic::AtomicUsize::new(0);
        let units = Units::new(|unit| {
            made.fetch_add(1, Ordering::Relaxed);
            unit + 100
        });
        assert_eq!(units.first(|m| *m), Some(100));
        assert_eq!(units.take(0), 100);
        assert_eq!(units.first(|m| *m), None);
        assert_eq!(units.take(2), 102);
        assert_eq!(made.load(Ordering::Relaxed), 2);
    }
}
