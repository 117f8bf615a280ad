//! Static Hamiltonian Monte Carlo: a fixed number of leapfrog steps and a Metropolis correction.
//!
//! The number of steps is either given or derived from a trajectory length T as
//! max(1, ⌊T / ε⌋), recomputed whenever warm-up changes the step size (as Stan does). A step whose
//! energy error exceeds the limit or whose density is not finite ends the trajectory early; the
//! transition is then divergent and rejected.

use super::integrator::{leapfrog, PhasePoint};
use super::metric::Metric;
use super::Transition;
use crate::density::{LogDensity, LogDensityError};
use crate::rng::Rng;
use rand::Rng as _;

/// How long a static HMC trajectory is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HmcLength {
    /// A fixed number of leapfrog steps.
    Steps(usize),
    /// A fixed integration time T; the number of steps is max(1, ⌊T / ε⌋).
    Time(f64),
}

impl Default for HmcLength {
    /// Stan's default integration time, 2π.
    fn default() -> Self {
        HmcLength::Time(2.0 * std::f64::consts::PI)
    }
}

impl HmcLength {
    /// The number of leapfrog steps for step size `step_size`.
    pub fn n_steps(&self, step_size: f64) -> usize {
        match *self {
            HmcLength::Steps(n) => n.max(1),
            // A float-to-integer cast saturates, so a tiny step size cannot overflow.
            HmcLength::Time(time) => ((time / step_size) as usize).max(1),
        }
    }
}

/// One static HMC transition from `current` (a valid point); on return `current` is the
/// accepted point, with the momentum it carries.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transition<D: LogDensity + ?Sized>(
    density: &mut D,
    metric: &Metric,
    rng: &mut Rng,
    step_size: f64,
    n_steps: usize,
    max_energy_error: f64,
    current: &mut PhasePoint,
    proposal: &mut PhasePoint,
) -> Result<Transition, LogDensityError> {
    metric.sample_momentum(rng, &mut current.momentum);
    current.refresh_kinetic(metric);
    let h0 = current.hamiltonian();
    proposal.copy_from(current);

    let mut divergent = false;
    let mut n_leapfrog = 0u32;
    for _ in 0..n_steps {
        let valid = leapfrog(density, metric, proposal, step_size)?;
        n_leapfrog = n_leapfrog.saturating_add(1);
        let h = proposal.hamiltonian();
        if !valid || h.is_nan() || h - h0 > max_energy_error {
            divergent = true;
            break;
        }
    }

    let h = if divergent {
        f64::INFINITY
    } else {
        proposal.hamiltonian()
    };
    // exp(H₀ − H) is 0 for a divergent trajectory, never NaN.
    let accept_prob = (h0 - h).exp();
    let accepted = accept_prob >= 1.0 || rng.random::<f64>() <= accept_prob;
    if accepted && !divergent {
        current.copy_from(proposal);
    }
    Ok(Transition {
        accept_stat: accept_prob.min(1.0),
        tree_depth: 0,
        n_leapfrog,
        divergent,
        energy: current.hamiltonian(),
    })
}
