//! SVI in standardised coordinates: the latents written as z = c + s ⊙ u, with c a MAP point and
//! s the marginal scales from the curvature there, so that the optimiser works on u, whose
//! posterior has roughly unit scale in every coordinate.
//!
//! First-order optimisers take steps of a fixed size in parameter units (Adam's are about the
//! learning rate). On a regression with an unscaled predictor the posterior sds differ by orders
//! of magnitude between coordinates (an intercept of sd 5 and a slope of sd 10⁻⁶), and no single
//! learning rate suits them all. [`Standardized`] wraps a model so that it is evaluated at
//! z = c + s ⊙ u, with log p(u) = log p(c + s ⊙ u) + Σ log sᵢ and ∂/∂u = s ⊙ ∂/∂z; a guide fitted
//! to it maps back by [`Standardized::to_original`]: loc ← c + s ⊙ loc, and every factor's rows
//! scaled by s. The model's params are left as they are.

use crate::density::{ElboModel, JointOptions, LogDensityError, LogJoint, NormalPrior};
use crate::rng::Rng;
use crate::vi::posterior::{FittedGuide, GuideError, GuideParams};

/// A model evaluated at z = center + scale ⊙ u over its latents.
pub struct Standardized<M> {
    model: M,
    center: Vec<f64>,
    scale: Vec<f64>,
    log_scale_sum: f64,
    /// Σ log sᵢ over the coordinates outside the model's normal-prior blocks, whose Jacobian
    /// the analytic KL (in u) already holds.
    log_scale_sum_other: f64,
    position: Vec<f64>,
}

impl<M: ElboModel> Standardized<M> {
    /// Wraps `model`; `center` and `scale` have one value per latent coordinate, the scales
    /// positive and finite.
    pub fn new(model: M, center: Vec<f64>, scale: Vec<f64>) -> Self {
        let log_scale_sum = scale.iter().map(|s| s.ln()).sum();
        let mut in_normal_block = vec![false; scale.len()];
        for prior in model.normal_priors() {
            for k in 0..prior.loc.len() {
                if let Some(flag) = in_normal_block.get_mut(prior.offset + k) {
                    *flag = true;
                }
            }
        }
        let log_scale_sum_other = scale
            .iter()
            .zip(&in_normal_block)
            .filter(|(_, in_block)| !**in_block)
            .map(|(s, _)| s.ln())
            .sum();
        let dim = model.latent_dim() + model.param_dim();
        Standardized {
            model,
            center,
            scale,
            log_scale_sum,
            log_scale_sum_other,
            position: vec![0.0; dim],
        }
    }

    /// The latents z of the standardised coordinates u.
    pub fn to_original_position(&self, u: &[f64]) -> Vec<f64> {
        let mut z = u.to_vec();
        for i in 0..self.center.len() {
            z[i] = self.center[i] + self.scale[i] * u[i];
        }
        z
    }

    /// A guide fitted in u mapped to the model's coordinates z.
    pub fn to_original(&self, guide: &FittedGuide) -> Result<FittedGuide, GuideError> {
        affine_guide(guide, &self.center, &self.scale)
    }

    /// A guide over the model's coordinates z mapped to u (the inverse of
    /// [`Standardized::to_original`]: u = −c/s + z/s), to resume its fit here.
    pub fn from_original(&self, guide: &FittedGuide) -> Result<FittedGuide, GuideError> {
        let center: Vec<f64> = self
            .center
            .iter()
            .zip(&self.scale)
            .map(|(c, s)| -c / s)
            .collect();
        let scale: Vec<f64> = self.scale.iter().map(|s| 1.0 / s).collect();
        affine_guide(guide, &center, &scale)
    }
}

/// The guide of c + s ⊙ x for x distributed as `guide`.
fn affine_guide(guide: &FittedGuide, c: &[f64], s: &[f64]) -> Result<FittedGuide, GuideError> {
    let loc = |loc: &[f64]| -> Vec<f64> {
        loc.iter()
            .zip(c)
            .zip(s)
            .map(|((l, c), s)| c + s * l)
            .collect()
    };
    let rows = |rows: &[Vec<f64>]| -> Vec<Vec<f64>> {
        rows.iter()
            .zip(s)
            .map(|(row, s)| row.iter().map(|v| s * v).collect())
            .collect()
    };
    let params = match guide.params() {
        GuideParams::Delta { loc: l } => GuideParams::Delta { loc: loc(l) },
        GuideParams::DiagonalNormal { loc: l, scale } => GuideParams::DiagonalNormal {
            loc: loc(l),
            scale: scale.iter().zip(s).map(|(a, b)| a * b).collect(),
        },
        // The flow ends in the elementwise affine map loc + scale ⊙ y, which absorbs c + s ⊙ x.
        GuideParams::Iaf {
            loc: l,
            scale,
            hidden,
            layers,
        } => GuideParams::Iaf {
            loc: loc(l),
            scale: scale.iter().zip(s).map(|(a, b)| a * b).collect(),
            hidden: *hidden,
            layers: layers.clone(),
        },
        GuideParams::MultivariateNormal { loc: l, scale_tril } => GuideParams::MultivariateNormal {
            loc: loc(l),
            scale_tril: rows(scale_tril),
        },
        GuideParams::LowRankMultivariateNormal {
            loc: l,
            cov_factor,
            cov_diag,
        } => GuideParams::LowRankMultivariateNormal {
            loc: loc(l),
            cov_factor: rows(cov_factor),
            cov_diag: cov_diag.iter().zip(s).map(|(d, s)| d * s * s).collect(),
        },
        GuideParams::Laplace { loc: l, covariance } => GuideParams::Laplace {
            loc: loc(l),
            covariance: covariance
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    row.iter()
                        .enumerate()
                        .map(|(j, v)| s[i] * s[j] * v)
                        .collect()
                })
                .collect(),
        },
    };
    FittedGuide::new(params)
}

impl<M: ElboModel> ElboModel for Standardized<M> {
    fn latent_dim(&self) -> usize {
        self.model.latent_dim()
    }

    fn param_dim(&self) -> usize {
        self.model.param_dim()
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let d = self.center.len();
        self.position.copy_from_slice(position);
        for i in 0..d {
            self.position[i] = self.center[i] + self.scale[i] * position[i];
        }
        let joint = self
            .model
            .log_joint(&self.position, options, rng, gradient)?;
        for i in 0..d {
            gradient[i] *= self.scale[i];
        }
        // The Jacobian of z = c + s ⊙ u is a constant; it belongs to the prior part so that
        // the ELBO in u equals the ELBO in z.
        let jacobian = if options.skip_normal_priors {
            self.log_scale_sum_other
        } else {
            self.log_scale_sum
        };
        Ok(LogJoint {
            likelihood: joint.likelihood,
            prior: joint.prior + jacobian,
        })
    }

    fn normal_priors(&self) -> Vec<NormalPrior> {
        self.model
            .normal_priors()
            .into_iter()
            .map(|prior| {
                let offset = prior.offset;
                let loc = prior
                    .loc
                    .iter()
                    .enumerate()
                    .map(|(k, l)| (l - self.center[offset + k]) / self.scale[offset + k])
                    .collect();
                let scale = prior
                    .scale
                    .iter()
                    .enumerate()
                    .map(|(k, p)| p / self.scale[offset + k])
                    .collect();
                NormalPrior { offset, loc, scale }
            })
            .collect()
    }
}
