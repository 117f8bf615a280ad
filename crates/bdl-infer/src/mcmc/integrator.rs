//! Points in phase space and the leapfrog integrator.
//!
//! A [`PhasePoint`] holds a position q, a momentum p, the gradient of log p(q), the velocity M⁻¹ p
//! and the two energies, so that a trajectory never evaluates anything twice. [`leapfrog`] takes
//! one step of the symplectic, time-reversible Störmer–Verlet scheme for the Hamiltonian
//! H(q, p) = −log p(q) + ½ pᵀ M⁻¹ p, writing in place: no step allocates.

use super::metric::{dot, Metric};
use crate::density::{LogDensity, LogDensityError};

/// A point in phase space with everything derived from it.
#[derive(Clone, Debug, PartialEq)]
pub struct PhasePoint {
    /// The position q (unconstrained coordinates).
    pub position: Vec<f64>,
    /// The momentum p.
    pub momentum: Vec<f64>,
    /// ∇ log p(q).
    pub gradient: Vec<f64>,
    /// M⁻¹ p, the "sharp" momentum.
    pub velocity: Vec<f64>,
    /// log p(q); −∞ marks a point where the density could not be evaluated.
    pub log_density: f64,
    /// ½ pᵀ M⁻¹ p.
    pub kinetic_energy: f64,
}

impl PhasePoint {
    /// A point at the origin with zero momentum, to be filled in.
    pub fn new(dim: usize) -> PhasePoint {
        PhasePoint {
            position: vec![0.0; dim],
            momentum: vec![0.0; dim],
            gradient: vec![0.0; dim],
            velocity: vec![0.0; dim],
            log_density: 0.0,
            kinetic_energy: 0.0,
        }
    }

    /// The Hamiltonian H = −log p(q) + K(p).
    #[inline]
    pub fn hamiltonian(&self) -> f64 {
        self.kinetic_energy - self.log_density
    }

    /// Copies `other` into `self` without allocating.
    #[inline]
    pub fn copy_from(&mut self, other: &PhasePoint) {
        self.position.copy_from_slice(&other.position);
        self.momentum.copy_from_slice(&other.momentum);
        self.gradient.copy_from_slice(&other.gradient);
        self.velocity.copy_from_slice(&other.velocity);
        self.log_density = other.log_density;
        self.kinetic_energy = other.kinetic_energy;
    }

    /// Copies what a draw needs (position, momentum, gradient and the energies) but not the
    /// velocity, which is recomputed whenever the momentum is drawn afresh.
    #[inline]
    pub fn copy_sample_from(&mut self, other: &PhasePoint) {
        self.position.copy_from_slice(&other.position);
        self.momentum.copy_from_slice(&other.momentum);
        self.gradient.copy_from_slice(&other.gradient);
        self.log_density = other.log_density;
        self.kinetic_energy = other.kinetic_energy;
    }

    /// Recomputes the velocity and kinetic energy after the momentum or the metric changed.
    #[inline]
    pub fn refresh_kinetic(&mut self, metric: &Metric) {
        metric.velocity(&self.momentum, &mut self.velocity);
        self.kinetic_energy = 0.5 * dot(&self.momentum, &self.velocity);
    }

    /// Evaluates the log density and its gradient at the current position. Returns `Ok(true)`
    /// when both are finite, `Ok(false)` (with `log_density = −∞`) when they are not or the
    /// density reported a recoverable error, and the error itself when it is fatal.
    pub fn evaluate<D: LogDensity + ?Sized>(
        &mut self,
        density: &mut D,
    ) -> Result<bool, LogDensityError> {
        match density.log_density_gradient(&self.position, &mut self.gradient) {
            Ok(log_density) => {
                if log_density.is_finite() && self.gradient.iter().all(|g| g.is_finite()) {
                    self.log_density = log_density;
                    Ok(true)
                } else {
                    self.log_density = f64::NEG_INFINITY;
                    Ok(false)
                }
            }
            Err(error) if error.recoverable => {
                self.log_density = f64::NEG_INFINITY;
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}

/// One leapfrog step of size `step_size` (negative to integrate backwards in time):
///
/// ```text
/// p ← p + ε/2 ∇log p(q);   q ← q + ε M⁻¹ p;   p ← p + ε/2 ∇log p(q)
/// ```
///
/// (∇ log p = −∂H/∂q). Afterwards the point's gradient, log density, velocity and kinetic energy
/// belong to the new position and momentum. Returns `Ok(false)` when the new point is not
/// finite or the density failed recoverably: the point is then unusable and its log density is
/// −∞, so its Hamiltonian is +∞. A fatal density error is returned as is.
#[inline]
pub fn leapfrog<D: LogDensity + ?Sized>(
    density: &mut D,
    metric: &Metric,
    point: &mut PhasePoint,
    step_size: f64,
) -> Result<bool, LogDensityError> {
    let half_step = 0.5 * step_size;
    for (p, g) in point.momentum.iter_mut().zip(&point.gradient) {
        *p += half_step * g;
    }
    metric.velocity(&point.momentum, &mut point.velocity);
    let mut finite = true;
    for (q, v) in point.position.iter_mut().zip(&point.velocity) {
        *q += step_size * v;
        finite &= q.is_finite();
    }
    if !finite {
        point.log_density = f64::NEG_INFINITY;
        return Ok(false);
    }
    if !point.evaluate(density)? {
        return Ok(false);
    }
    for (p, g) in point.momentum.iter_mut().zip(&point.gradient) {
        *p += half_step * g;
    }
    point.refresh_kinetic(metric);
    if !point.kinetic_energy.is_finite() {
        point.log_density = f64::NEG_INFINITY;
        return Ok(false);
    }
    Ok(true)
}
