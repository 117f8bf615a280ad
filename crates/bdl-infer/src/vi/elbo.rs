//! ELBO estimators over an [`ElboModel`], with reparameterised gradients for the guide's
//! parameters and the model's `param` coordinates.
//!
//! With β the KL weight, the objective is
//! ELBO_β = E_q[log p(x | z)] + β (E_q[log p(z)] + H(q)), and the loss is −ELBO_β. It is estimated
//! with K particles z_k = μ + A ε_k (ε_k standard normal): the model's gradient g_k at z_k gives
//! ∂/∂μ = g_k and ∂/∂A = g_k ε_kᵀ, and the entropy H(q) and its gradient are analytic.
//!
//! - [`ElboKind::Trace`] (Pyro's `Trace_ELBO`) takes the whole log joint from the model.
//! - [`ElboKind::AnalyticKl`] (Pyro's `TraceMeanField_ELBO`) asks the model to leave out the
//!   priors of the blocks it lists in [`ElboModel::normal_priors`], and adds their expectation
//!   under q in closed form; with the entropy this makes those blocks' KL(q ‖ p) analytic. Its
//!   expectation is the same as the trace estimator's, with less variance.
//!
//! Particle k at step t draws from its own stream, `stream_rng(seed, (t << 24) | k)`, so draws do
//! not depend on which thread runs which particle; particles run in parallel with rayon and their
//! gradients are summed in particle order, so a result for a seed is the same bit for bit
//! whatever the number of threads.

use crate::density::{ElboModel, JointOptions, LogDensityError};
use crate::rng::stream_rng;
use crate::vi::error::SviError;
use crate::vi::guide::{GuideFamily, GuideKind, GuideScratch, NormalPriorCoordinate};
use rand::Rng as _;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// The most particles an estimator can have (particle indices take the low 24 bits of the
/// stream number).
pub const MAX_PARTICLES: usize = 1 << 24;

/// Which ELBO estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ElboKind {
    /// The whole log joint by Monte Carlo, the entropy analytic.
    #[default]
    Trace,
    /// The fixed normal priors of [`ElboModel::normal_priors`] in closed form (mean-field
    /// Bayes-by-backprop), the rest by Monte Carlo.
    AnalyticKl,
}

/// How the ELBO is estimated.
#[derive(Clone, Debug, PartialEq)]
pub struct ElboSettings {
    /// The estimator.
    pub kind: ElboKind,
    /// The number of particles K per estimate (at least 1).
    pub particles: usize,
}

impl Default for ElboSettings {
    fn default() -> Self {
        ElboSettings {
            kind: ElboKind::Trace,
            particles: 1,
        }
    }
}

/// One particle's random stream and buffers.
struct Particle {
    index: u64,
    noise: Vec<f64>,
    position: Vec<f64>,
    position_gradient: Vec<f64>,
    /// The gradient of this particle's weighted log joint with respect to
    /// [natural guide parameters, model params].
    gradient: Vec<f64>,
    /// The weighted log joint, or why it could not be evaluated.
    outcome: Result<f64, LogDensityError>,
}

impl Particle {
    #[allow(clippy::too_many_arguments)]
    fn evaluate<M: ElboModel>(
        &mut self,
        model: &mut M,
        family: &GuideFamily,
        natural: &[f64],
        model_params: &[f64],
        options: &JointOptions,
        seed: u64,
        step: u64,
    ) {
        let latent_dim = family.latent_dim();
        let n_guide = family.n_params();
        let mut rng = stream_rng(seed, (step << 24) | self.index);
        for e in self.noise.iter_mut() {
            *e = rng.sample(StandardNormal);
        }
        family.draw(natural, &self.noise, &mut self.position[..latent_dim]);
        self.position[latent_dim..].copy_from_slice(model_params);
        let result = model.log_joint(
            &self.position,
            options,
            &mut rng,
            &mut self.position_gradient,
        );
        self.outcome = match result {
            Ok(joint) => {
                let value = joint.likelihood + options.prior_weight * joint.prior;
                if !value.is_finite() {
                    Err(LogDensityError::recoverable(format!(
                        "the log joint was not finite (log-likelihood {}, log-prior {})",
                        joint.likelihood, joint.prior
                    )))
                } else if !bdl_vmath::all_finite(&self.position_gradient) {
                    let i = self
                        .position_gradient
                        .iter()
                        .position(|g| !g.is_finite())
                        .unwrap_or_default();
                    Err(LogDensityError::recoverable(format!(
                        "the gradient of the log joint was not finite in coordinate {i}"
                    )))
                } else {
                    // A flow adds its per-draw entropy term, weighted like the prior.
                    let log_determinant = family.backpropagate(
                        natural,
                        &self.noise,
                        &self.position_gradient[..latent_dim],
                        options.prior_weight,
                        &mut self.gradient[..n_guide],
                    );
                    self.gradient[n_guide..].copy_from_slice(&self.position_gradient[latent_dim..]);
                    Ok(value + options.prior_weight * log_determinant)
                }
            }
            Err(error) => Err(error),
        };
    }
}

/// An ELBO estimator: a guide family, K particles' buffers, and one model evaluator per worker
/// thread. Each worker evaluates a fixed, contiguous share of the particles one after the other
/// with its own evaluator, so that memory holds as many model tapes as there are threads rather
/// than particles; a particle's result depends only on its position and random stream, never on
/// which worker computed it.
pub struct Elbo<M> {
    family: GuideFamily,
    kind: ElboKind,
    param_dim: usize,
    normal_priors: Vec<NormalPriorCoordinate>,
    models: Vec<M>,
    particles: Vec<Particle>,
    natural: Vec<f64>,
    slopes: Vec<f64>,
    scratch: GuideScratch,
}

impl<M: ElboModel> Elbo<M> {
    /// An estimator for the guide `kind`, with one model per worker built by
    /// `make_model(worker_index)` (at most one per particle and per rayon thread).
    pub fn new<F: Fn(usize) -> M>(
        make_model: F,
        kind: &GuideKind,
        settings: &ElboSettings,
    ) -> Result<Self, SviError> {
        if settings.particles == 0 || settings.particles > MAX_PARTICLES {
            return Err(SviError::InvalidSettings {
                message: format!(
                    "the number of particles must be between 1 and {MAX_PARTICLES}, got {}",
                    settings.particles
                ),
            });
        }
        let workers = settings.particles.min(rayon::current_num_threads().max(1));
        let models: Vec<M> = (0..workers).map(&make_model).collect();
        let latent_dim = models[0].latent_dim();
        let param_dim = models[0].param_dim();
        if let Some(k) = models
            .iter()
            .position(|m| m.latent_dim() != latent_dim || m.param_dim() != param_dim)
        {
            return Err(SviError::InvalidModel {
                message: format!(
                    "the evaluator for particle {k} has {} latent and {} param coordinates, but \
                     the first has {latent_dim} and {param_dim}",
                    models[k].latent_dim(),
                    models[k].param_dim()
                ),
            });
        }
        let family =
            GuideFamily::new(kind, latent_dim).map_err(|error| SviError::InvalidSettings {
                message: error.message,
            })?;
        // A flow's marginals have no closed form: with the analytic-KL ELBO its prior term is
        // estimated by sampling, as the trace ELBO does.
        let normal_priors = match settings.kind {
            ElboKind::AnalyticKl if family.has_closed_form_marginals() => {
                normal_prior_coordinates(&models[0], latent_dim)?
            }
            ElboKind::Trace | ElboKind::AnalyticKl => Vec::new(),
        };
        let n_guide = family.n_params();
        let dim = latent_dim + param_dim;
        let particles = (0..settings.particles)
            .map(|index| Particle {
                index: index as u64,
                noise: vec![0.0; family.noise_dim()],
                position: vec![0.0; dim],
                position_gradient: vec![0.0; dim],
                gradient: vec![0.0; n_guide + param_dim],
                outcome: Ok(0.0),
            })
            .collect();
        Ok(Elbo {
            scratch: family.scratch(),
            natural: vec![0.0; n_guide],
            slopes: vec![0.0; n_guide],
            family,
            kind: settings.kind,
            param_dim,
            normal_priors,
            models,
            particles,
        })
    }

    /// The guide family.
    pub fn family(&self) -> &GuideFamily {
        &self.family
    }

    /// The number of latent coordinates.
    pub fn latent_dim(&self) -> usize {
        self.family.latent_dim()
    }

    /// The number of model `param` coordinates.
    pub fn param_dim(&self) -> usize {
        self.param_dim
    }

    /// The length of the optimised vector: the guide's parameters, then the model's params.
    pub fn n_params(&self) -> usize {
        self.family.n_params() + self.param_dim
    }

    /// The first particle's model evaluator.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.models[0]
    }

    /// Estimates the loss −ELBO_β at `params` ([guide parameters, model params], length
    /// [`Elbo::n_params`]) with KL weight `kl_weight`, and writes its gradient into `gradient`.
    /// `seed` and `step` choose the particles' random streams.
    ///
    /// A particle whose log joint or gradient is not finite, or whose model reports an error,
    /// makes the estimate fail with the error of the lowest-numbered failing particle.
    pub fn evaluate(
        &mut self,
        params: &[f64],
        seed: u64,
        step: u64,
        kl_weight: f64,
        gradient: &mut [f64],
    ) -> Result<f64, LogDensityError> {
        let n_guide = self.family.n_params();
        if params.len() != self.n_params() || gradient.len() != self.n_params() {
            return Err(LogDensityError::fatal(format!(
                "the ELBO needs {} parameters and gradient entries, got {} and {}",
                self.n_params(),
                params.len(),
                gradient.len()
            )));
        }
        let (guide_params, model_params) = params.split_at(n_guide);
        self.family
            .natural_from(guide_params, &mut self.natural, &mut self.slopes);
        let analytic = self.kind == ElboKind::AnalyticKl && !self.normal_priors.is_empty();
        let options = JointOptions {
            prior_weight: kl_weight,
            skip_normal_priors: analytic,
        };
        let family = &self.family;
        let natural = &self.natural;
        let share = self.particles.len().div_ceil(self.models.len());
        let run = |(model, particles): (&mut M, &mut [Particle])| {
            for particle in particles {
                particle.evaluate(model, family, natural, model_params, &options, seed, step);
            }
        };
        if self.models.len() == 1 {
            run((&mut self.models[0], &mut self.particles[..]));
        } else {
            self.models
                .par_iter_mut()
                .zip(self.particles.par_chunks_mut(share))
                .for_each(run);
        }

        // Sum in particle order, so the result does not depend on the thread schedule. One
        // particle's gradient is the estimate itself: a copy, not a sum and a division.
        let mut total = 0.0;
        for particle in &self.particles {
            match &particle.outcome {
                Ok(value) => total += value,
                Err(error) => return Err(error.clone()),
            }
        }
        if let [particle] = &self.particles[..] {
            gradient.copy_from_slice(&particle.gradient);
        } else {
            gradient.copy_from_slice(&self.particles[0].gradient);
            for particle in &self.particles[1..] {
                for (g, particle_g) in gradient.iter_mut().zip(&particle.gradient) {
                    *g += particle_g;
                }
            }
            let n_particles = self.particles.len() as f64;
            total /= n_particles;
            gradient.iter_mut().for_each(|g| *g /= n_particles);
        }

        let guide_gradient = &mut gradient[..n_guide];
        let entropy =
            self.family
                .add_entropy(&self.natural, kl_weight, guide_gradient, &mut self.scratch);
        let expected_prior = if analytic {
            self.family.add_expected_normal_log_prior(
                &self.natural,
                &self.normal_priors,
                kl_weight,
                guide_gradient,
            )
        } else {
            0.0
        };
        let elbo = total + kl_weight * (entropy + expected_prior);
        if !elbo.is_finite() {
            return Err(LogDensityError::recoverable(format!(
                "the ELBO was not finite (expected log joint {total}, entropy {entropy})"
            )));
        }
        self.family
            .chain_softplus(&self.natural, &self.slopes, guide_gradient);
        gradient.iter_mut().for_each(|g| *g = -*g);
        Ok(-elbo)
    }
}

/// The model's fixed normal priors as one entry per latent coordinate, checked.
fn normal_prior_coordinates<M: ElboModel>(
    model: &M,
    latent_dim: usize,
) -> Result<Vec<NormalPriorCoordinate>, SviError> {
    let invalid = |message: String| SviError::InvalidModel { message };
    let mut covered = vec![false; latent_dim];
    let mut coordinates = Vec::new();
    for block in model.normal_priors() {
        if block.loc.len() != block.scale.len() {
            return Err(invalid(format!(
                "the normal prior block at offset {} has {} locations but {} scales",
                block.offset,
                block.loc.len(),
                block.scale.len()
            )));
        }
        if block.offset + block.loc.len() > latent_dim {
            return Err(invalid(format!(
                "the normal prior block at offset {} with {} elements runs past the {latent_dim} \
                 latent coordinates",
                block.offset,
                block.loc.len()
            )));
        }
        for (k, (&loc, &scale)) in block.loc.iter().zip(&block.scale).enumerate() {
            let index = block.offset + k;
            if !(loc.is_finite() && scale.is_finite() && scale > 0.0) {
                return Err(invalid(format!(
                    "the normal prior of latent coordinate {index} is Normal({loc}, {scale}); \
                     it needs a finite location and a positive finite scale"
                )));
            }
            if covered[index] {
                return Err(invalid(format!(
                    "latent coordinate {index} is in two normal prior blocks"
                )));
            }
            covered[index] = true;
            coordinates.push(NormalPriorCoordinate { index, loc, scale });
        }
    }
    Ok(coordinates)
}
