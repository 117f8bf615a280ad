//! Adaptive random-walk Metropolis proposals for one block of coordinates.
//!
//! A proposal is x' = x + s L z with z ~ N(0, I), where s is a scale and L L ᵀ a shape matrix
//! (the identity until the covariance adapts). During warm-up only:
//!
//! - the scale follows a Robbins–Monro recursion on log s toward a target acceptance rate,
//!   log s ← log s + (n + 1)^(−κ) (α − α*), with α the acceptance probability of the step and
//!   α* = 0.234 for blocks of several coordinates or 0.44 for one coordinate (Roberts and
//!   Rosenthal, 2001, 2009);
//! - optionally (Haario, Saksman and Tamminen, 2001; Andrieu and Thoms, 2008, algorithm 4) the
//!   shape becomes the empirical covariance of the block's warm-up states, regularised by a small
//!   multiple of its mean variance on the diagonal, refreshed every few iterations; when it is
//!   first used, the scale restarts from 2.38 / √d, the optimal scaling for Gaussian targets.
//!
//! The proposal is frozen when warm-up ends, so the sampling iterations form a valid Markov chain.

use nalgebra::{Cholesky, DMatrix, DVector};
use rand_distr::StandardNormal;

/// The tuning of the adaptive random-walk Metropolis blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct RwmSettings {
    /// The target acceptance rate; `None` uses 0.44 for one-coordinate blocks and 0.234 for
    /// larger ones.
    pub target_acceptance: Option<f64>,
    /// The proposal's standard deviation per coordinate before any adaptation.
    pub initial_scale: f64,
    /// The exponent κ in (0.5, 1] of the Robbins–Monro gain (n + 1)^(−κ).
    pub gain_decay: f64,
    /// Adapt the proposal's shape to the empirical covariance of the block (Haario et al.).
    pub adapt_covariance: bool,
    /// The warm-up iteration from which the empirical covariance is used; it is estimated from
    /// the states after half this many iterations.
    pub covariance_start: usize,
    /// Refresh the empirical covariance every this many warm-up iterations (at least 1).
    pub covariance_update_every: usize,
    /// The multiple of the mean empirical variance added to the covariance's diagonal.
    pub covariance_regularisation: f64,
}

impl Default for RwmSettings {
    fn default() -> Self {
        RwmSettings {
            target_acceptance: None,
            initial_scale: 0.5,
            gain_decay: 0.6,
            adapt_covariance: true,
            covariance_start: 200,
            covariance_update_every: 25,
            covariance_regularisation: 1e-6,
        }
    }
}

impl RwmSettings {
    /// Checks that the numbers make sense.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(target) = self.target_acceptance {
            if !(target > 0.0 && target < 1.0) {
                return Err(format!(
                    "the target acceptance rate must lie strictly between 0 and 1, not {target}"
                ));
            }
        }
        if !(self.initial_scale.is_finite() && self.initial_scale > 0.0) {
            return Err(format!(
                "the initial proposal scale must be positive and finite, not {}",
                self.initial_scale
            ));
        }
        if !(self.gain_decay > 0.5 && self.gain_decay <= 1.0) {
            return Err(format!(
                "the adaptation gain decay must lie in (0.5, 1], not {}",
                self.gain_decay
            ));
        }
        if self.covariance_update_every == 0 {
            return Err("the covariance must be refreshed at least every iteration".into());
        }
        if !(self.covariance_regularisation.is_finite() && self.covariance_regularisation >= 0.0) {
            return Err(format!(
                "the covariance regularisation must be non-negative, not {}",
                self.covariance_regularisation
            ));
        }
        Ok(())
    }

    /// The target acceptance rate of a block of `dim` coordinates.
    pub fn target_for(&self, dim: usize) -> f64 {
        self.target_acceptance
            .unwrap_or(if dim == 1 { 0.44 } else { 0.234 })
    }
}

/// log s stays within ±LOG_SCALE_LIMIT, so a flat direction cannot make the scale overflow.
const LOG_SCALE_LIMIT: f64 = 30.0;

/// The adaptive proposal of one block.
#[derive(Clone, Debug)]
pub(crate) struct AdaptiveProposal {
    dim: usize,
    target: f64,
    log_scale: f64,
    /// The lower factor L of the shape; `None` is the identity.
    shape_factor: Option<DMatrix<f64>>,
    /// Robbins–Monro updates since the scale last restarted.
    n_adaptations: usize,
    /// Welford's running mean and scatter of the block's warm-up states.
    n_states: usize,
    state_mean: DVector<f64>,
    state_scatter: DMatrix<f64>,
    z: Vec<f64>,
}

impl AdaptiveProposal {
    pub(crate) fn new(dim: usize, settings: &RwmSettings) -> Self {
        AdaptiveProposal {
            dim,
            target: settings.target_for(dim),
            log_scale: settings.initial_scale.ln(),
            shape_factor: None,
            n_adaptations: 0,
            n_states: 0,
            state_mean: DVector::zeros(if settings.adapt_covariance { dim } else { 0 }),
            state_scatter: DMatrix::zeros(
                if settings.adapt_covariance { dim } else { 0 },
                if settings.adapt_covariance { dim } else { 0 },
            ),
            z: vec![0.0; dim],
        }
    }

    /// The current scale s.
    pub(crate) fn scale(&self) -> f64 {
        self.log_scale.exp()
    }

    /// The target acceptance rate.
    pub(crate) fn target(&self) -> f64 {
        self.target
    }

    /// Writes x + s L z into `proposal` (both of the block's length).
    pub(crate) fn propose<R: rand::Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        current: &[f64],
        proposal: &mut [f64],
    ) {
        let scale = self.scale();
        for z in self.z.iter_mut() {
            *z = rng.sample(StandardNormal);
        }
        match &self.shape_factor {
            None => {
                for ((p, x), z) in proposal.iter_mut().zip(current).zip(&self.z) {
                    *p = x + scale * z;
                }
            }
            Some(factor) => {
                for i in 0..self.dim {
                    // (L z)ᵢ = Σ_{j ≤ i} Lᵢⱼ zⱼ.
                    let mut step = 0.0;
                    for j in 0..=i {
                        step += factor[(i, j)] * self.z[j];
                    }
                    proposal[i] = current[i] + scale * step;
                }
            }
        }
    }

    /// One warm-up adaptation after warm-up iteration `iteration` (from 0), given the step's
    /// acceptance probability and the block's state after the step.
    pub(crate) fn adapt(
        &mut self,
        settings: &RwmSettings,
        iteration: usize,
        acceptance_probability: f64,
        state: &[f64],
    ) {
        let gain = (self.n_adaptations as f64 + 1.0).powf(-settings.gain_decay);
        self.log_scale = (self.log_scale + gain * (acceptance_probability - self.target))
            .clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT);
        self.n_adaptations += 1;
        if !settings.adapt_covariance {
            return;
        }
        if iteration >= settings.covariance_start / 2 {
            // Welford: m ← m + (x − m)/n, S ← S + (x − m_old)(x − m_new)ᵀ.
            self.n_states += 1;
            let x = DVector::from_column_slice(state);
            let before = &x - &self.state_mean;
            self.state_mean += &before / self.n_states as f64;
            let after = &x - &self.state_mean;
            self.state_scatter += &before * after.transpose();
        }
        let due = iteration + 1 >= settings.covariance_start
            && (iteration + 1 - settings.covariance_start)
                .checked_rem(settings.covariance_update_every)
                == Some(0);
        if due && self.n_states > self.dim {
            let mut covariance = &self.state_scatter / (self.n_states as f64 - 1.0);
            // Symmetrise the accumulated rounding, then regularise the diagonal.
            covariance = (&covariance + covariance.transpose()) * 0.5;
            let mean_variance = covariance.trace() / self.dim as f64;
            if !(mean_variance.is_finite() && mean_variance > 0.0) {
                // The block has not moved: keep the current shape.
                return;
            }
            let ridge = settings.covariance_regularisation * mean_variance + f64::MIN_POSITIVE;
            for i in 0..self.dim {
                covariance[(i, i)] += ridge;
            }
            if let Some(cholesky) = Cholesky::new(covariance) {
                if self.shape_factor.is_none() {
                    self.log_scale = (2.38 / (self.dim as f64).sqrt()).ln();
                    self.n_adaptations = 0;
                }
                self.shape_factor = Some(cholesky.l());
            }
        }
    }
}
