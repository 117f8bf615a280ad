//! The Laplace approximation: a normal at the MAP point whose covariance is the inverse of the
//! negative Hessian of the log joint there (Pyro's AutoLaplaceApproximation).
//!
//! The Hessian over the latent coordinates (the model's params held fixed) comes from fourth-order
//! central differences of the model's gradient,
//! H_·i ≈ (−g(x + 2h eᵢ) + 8 g(x + h eᵢ) − 8 g(x − h eᵢ) + g(x − 2h eᵢ)) / (12 h),
//! with h = 10⁻³ max(1, |xᵢ|), then symmetrised, (H + Hᵀ) / 2. Every gradient is evaluated with
//! the same random stream, so a model with subsampled plates sees the same mini-batch each time
//! (the Hessian is then that batch's scaled estimate).

use crate::density::{ElboModel, JointOptions};
use crate::rng::stream_rng;
use crate::vi::numeric::{cholesky_in_place, inverse_from_cholesky};
use crate::vi::posterior::{FittedGuide, GuideParams};
use std::fmt;

/// The relative finite-difference step.
const RELATIVE_STEP: f64 = 1e-3;

/// Why the Laplace approximation could not be formed.
#[derive(Clone, Debug, PartialEq)]
pub struct LaplaceError {
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for LaplaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LaplaceError {}

/// The Hessian of the log joint with respect to the latent coordinates at `position`
/// (`[latents, params]`), as rows; `seed` picks the random stream the model may draw from.
pub fn log_joint_hessian<M: ElboModel>(
    model: &mut M,
    position: &[f64],
    seed: u64,
) -> Result<Vec<Vec<f64>>, LaplaceError> {
    let latent_dim = model.latent_dim();
    let dim = latent_dim + model.param_dim();
    if position.len() != dim {
        return Err(LaplaceError {
            message: format!(
                "the position has {} values but the model has {dim} coordinates",
                position.len()
            ),
        });
    }
    let options = JointOptions::default();
    let mut shifted = position.to_vec();
    let mut gradient = vec![0.0; dim];
    let mut hessian = vec![vec![0.0; latent_dim]; latent_dim];
    let mut gradient_at = |shifted: &[f64], gradient: &mut [f64]| {
        let mut rng = stream_rng(seed, 0);
        match model.log_joint(shifted, &options, &mut rng, gradient) {
            Ok(joint) if joint.total().is_finite() && gradient.iter().all(|g| g.is_finite()) => {
                Ok(())
            }
            Ok(_) => Err(LaplaceError {
                message: "the log joint was not finite near the MAP point".to_string(),
            }),
            Err(error) => Err(LaplaceError {
                message: format!(
                    "the log joint could not be evaluated near the MAP point: {}",
                    error.message
                ),
            }),
        }
    };
    for i in 0..latent_dim {
        let step = RELATIVE_STEP * position[i].abs().max(1.0);
        for (offset, weight) in [(2.0, -1.0), (1.0, 8.0), (-1.0, -8.0), (-2.0, 1.0)] {
            shifted[i] = position[i] + offset * step;
            gradient_at(&shifted, &mut gradient)?;
            for (row, g) in hessian.iter_mut().zip(&gradient) {
                row[i] += weight * g / (12.0 * step);
            }
        }
        shifted[i] = position[i];
    }
    for i in 0..latent_dim {
        for j in 0..i {
            let mean = 0.5 * (hessian[i][j] + hessian[j][i]);
            hessian[i][j] = mean;
            hessian[j][i] = mean;
        }
    }
    Ok(hessian)
}

/// The Laplace approximation at `position` (`[latents, params]`, normally the MAP point): a
/// normal over the latents with mean at the position and covariance (−H)⁻¹. Fails with a clear
/// message when −H is not positive definite.
pub fn approximate<M: ElboModel>(
    model: &mut M,
    position: &[f64],
    seed: u64,
) -> Result<FittedGuide, LaplaceError> {
    let hessian = log_joint_hessian(model, position, seed)?;
    let d = hessian.len();
    let mut precision: Vec<f64> = hessian.iter().flatten().map(|h| -h).collect();
    if let Err(pivot) = cholesky_in_place(&mut precision, d) {
        return Err(LaplaceError {
            message: format!(
                "the Hessian of the log joint at the MAP point is not negative definite (the \
                 curvature fails at latent coordinate {pivot} after eliminating the ones before \
                 it): the point is not a strict mode, or the posterior is flat or improper in \
                 that direction"
            ),
        });
    }
    let mut work = vec![0.0; d * d];
    let mut covariance = vec![0.0; d * d];
    inverse_from_cholesky(&precision, d, &mut work, &mut covariance);
    let covariance: Vec<Vec<f64>> = covariance
        .chunks(d.max(1))
        .take(d)
        .map(<[f64]>::to_vec)
        .collect();
    FittedGuide::new(GuideParams::Laplace {
        loc: position[..d].to_vec(),
        covariance,
    })
    .map_err(|error| LaplaceError {
        message: error.message,
    })
}
