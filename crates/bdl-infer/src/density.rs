//! The two views of a model that inference algorithms use.
//!
//! [`LogDensity`] is what HMC and NUTS need: log p(z) and its gradient over the flat unconstrained
//! vector of latent sites. [`ElboModel`] is what SVI, MAP and Laplace need: the likelihood and prior
//! parts of the log joint separately (for KL weights and analytic KL terms), `param` sites beside
//! the latents, and an RNG for mini-batches. The runtime implements both for a compiled model;
//! tests implement them for closed-form densities.

use crate::rng::Rng;
use std::fmt;

/// A failure to evaluate a log density.
#[derive(Clone, Debug, PartialEq)]
pub struct LogDensityError {
    /// What went wrong, naming the site where known.
    pub message: String,
    /// Recoverable failures (a non-finite value, an invalid parameter reached mid-trajectory) are
    /// divergences for samplers and skipped or stopping steps for optimisers; the others end the
    /// run with a diagnostic.
    pub recoverable: bool,
}

impl LogDensityError {
    /// A recoverable numerical failure.
    pub fn recoverable(message: impl Into<String>) -> Self {
        LogDensityError {
            message: message.into(),
            recoverable: true,
        }
    }

    /// A failure that must stop inference.
    pub fn fatal(message: impl Into<String>) -> Self {
        LogDensityError {
            message: message.into(),
            recoverable: false,
        }
    }
}

impl fmt::Display for LogDensityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LogDensityError {}

/// A differentiable log density over an unconstrained vector, up to an additive constant.
pub trait LogDensity: Send {
    /// The length of the position vector.
    fn dim(&self) -> usize;

    /// Returns log p(position) and writes its gradient into `gradient` (of length `dim`).
    fn log_density_gradient(
        &mut self,
        position: &[f64],
        gradient: &mut [f64],
    ) -> Result<f64, LogDensityError>;
}

/// Options for one evaluation of an [`ElboModel`].
#[derive(Clone, Debug, PartialEq)]
pub struct JointOptions {
    /// The weight of the prior part in the gradient (the KL weight of Bayes-by-backprop; 1 for
    /// the plain ELBO).
    pub prior_weight: f64,
    /// Leave out the prior of the blocks listed by [`ElboModel::normal_priors`], whose KL term
    /// the caller computes in closed form.
    pub skip_normal_priors: bool,
}

impl Default for JointOptions {
    fn default() -> Self {
        JointOptions {
            prior_weight: 1.0,
            skip_normal_priors: false,
        }
    }
}

/// The two parts of log p(x, z) at one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogJoint {
    /// log p(x | z), scaled for mini-batches (size / batch).
    pub likelihood: f64,
    /// log p(z) in unconstrained space, Jacobians included.
    pub prior: f64,
}

impl LogJoint {
    /// likelihood + prior.
    pub fn total(&self) -> f64 {
        self.likelihood + self.prior
    }
}

/// A latent block whose prior, in unconstrained space, is Normal(loc, scale) elementwise with
/// fixed parameters, so that KL(q || p) has a closed form for normal guides.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalPrior {
    /// Where the block starts in the latent vector.
    pub offset: usize,
    /// Prior means, one per element.
    pub loc: Vec<f64>,
    /// Prior standard deviations, one per element.
    pub scale: Vec<f64>,
}

/// What SVI, MAP and Laplace need from a model.
///
/// The position vector is `[latents (latent_dim), params (param_dim)]`, all unconstrained.
pub trait ElboModel: Send {
    /// The number of unconstrained latent coordinates (what a guide covers).
    fn latent_dim(&self) -> usize;

    /// The number of unconstrained `param` coordinates (optimised as points).
    fn param_dim(&self) -> usize;

    /// Evaluates the log joint at `position`; writes the gradient of
    /// `likelihood + options.prior_weight * prior` into `gradient`. A model with subsampled plates
    /// draws its mini-batch from `rng`.
    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError>;

    /// The log joint at `position` without its gradient (a model may skip the backward pass);
    /// by default [`ElboModel::log_joint`] with the gradient thrown away.
    fn log_joint_value(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        rng: &mut Rng,
    ) -> Result<LogJoint, LogDensityError> {
        let mut gradient = vec![0.0; position.len()];
        self.log_joint(position, options, rng, &mut gradient)
    }

    /// Latent blocks whose priors are fixed normals; empty when there are none.
    fn normal_priors(&self) -> Vec<NormalPrior> {
        Vec::new()
    }
}
