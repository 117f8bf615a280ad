//! Maximum a posteriori estimation, two ways: SVI with the Delta guide ([`fit`]), so the loss is
//! −log p(x, z) at a point and every first-order optimiser, schedule and safeguard of
//! [`crate::vi::svi`] applies; and L-BFGS on −log p(x, z) ([`fit_lbfgs`]), which runs to a
//! gradient-norm tolerance and says whether it got there. [`warm_start`] turns an L-BFGS MAP
//! point into the starting point of SVI: the guide's location at the mode and its marginal
//! scales from the curvature there.

use crate::density::{ElboModel, JointOptions};
use crate::rng::stream_rng;
use crate::vi::error::SviError;
use crate::vi::guide::GuideKind;
use crate::vi::laplace;
use crate::vi::lbfgs::{self, LbfgsError, LbfgsReport, LbfgsSettings};
use crate::vi::numeric::derive_seed;
use crate::vi::posterior::{FittedGuide, GuideParams};
use crate::vi::svi::{self, InitLocation, StepLoss, SviFit, SviSettings};
use rand::Rng as _;
use std::sync::atomic::AtomicBool;

/// Seed purposes of this module's random streams.
const PURPOSE_LBFGS_START: u64 = 11;
const PURPOSE_LBFGS_MODEL: u64 = 12;

/// The largest latent dimension for which [`warm_start`] forms the Hessian's diagonal (4 d
/// gradient evaluations).
pub const WARM_START_MAX_DIM: usize = 500;

/// Finds the MAP point of the model built by `make_model` with the optimiser of `settings`
/// (whose `guide` is ignored). The result's guide is a point mass; its
/// [`SviFit::median_position`] is the MAP position `[latents, params]`.
pub fn fit<M, F>(
    make_model: F,
    settings: &SviSettings,
    stop: &AtomicBool,
    on_step: impl FnMut(usize, f64),
) -> Result<SviFit, SviError>
where
    M: ElboModel,
    F: Fn(usize) -> M,
{
    let settings = SviSettings {
        guide: GuideKind::Delta,
        ..settings.clone()
    };
    svi::fit(make_model, &settings, stop, on_step)
}

/// A MAP point found by L-BFGS, with how the optimiser ended.
#[derive(Clone, Debug)]
pub struct LbfgsMap {
    /// The point as a fit with a Delta guide; its one loss is −log p(x, z) at the point.
    pub fit: SviFit,
    /// The optimiser's report (status, iterations, gradient norm).
    pub report: LbfgsReport,
}

/// The starting position `[latents, params]` of `location` for a model of `dim` coordinates.
fn start_position(location: &InitLocation, dim: usize, seed: u64) -> Result<Vec<f64>, SviError> {
    let position = match location {
        InitLocation::Zeros => vec![0.0; dim],
        InitLocation::Position(_) | InitLocation::Resume { .. } => {
            location.position().unwrap_or_default()
        }
        InitLocation::Uniform { radius } => {
            let mut rng = stream_rng(derive_seed(seed, PURPOSE_LBFGS_START), 0);
            (0..dim)
                .map(|_| rng.random_range(-radius..*radius))
                .collect()
        }
    };
    if position.len() != dim {
        return Err(SviError::InvalidSettings {
            message: format!(
                "the initial position has {} values but the model has {dim} coordinates",
                position.len()
            ),
        });
    }
    Ok(position)
}

/// Minimises −log p(x, z) over `[latents, params]` by L-BFGS from `settings.init.location`
/// (`settings.seed` picks the random stream a model with random draws sees; it is the same at
/// every evaluation, so the objective is deterministic). An unconverged run is not an error:
/// the report says how it ended.
pub fn fit_lbfgs<M: ElboModel>(
    model: &mut M,
    settings: &SviSettings,
    lbfgs_settings: &LbfgsSettings,
) -> Result<LbfgsMap, SviError> {
    let latent_dim = model.latent_dim();
    let dim = latent_dim + model.param_dim();
    let mut position = start_position(&settings.init.location, dim, settings.seed)?;
    let model_seed = derive_seed(settings.seed, PURPOSE_LBFGS_MODEL);
    let options = JointOptions::default();
    let objective = |x: &[f64], gradient: &mut [f64]| {
        let mut rng = stream_rng(model_seed, 0);
        let joint = model.log_joint(x, &options, &mut rng, gradient)?;
        for g in gradient.iter_mut() {
            *g = -*g;
        }
        Ok(-joint.total())
    };
    let report = match lbfgs::minimize(objective, &mut position, lbfgs_settings) {
        Ok(report) => report,
        Err(LbfgsError::BadStart { message }) => {
            return Err(SviError::Initialisation {
                attempts: 1,
                message,
            })
        }
        Err(LbfgsError::Fatal { message }) => {
            return Err(SviError::InvalidModel { message });
        }
    };
    let guide = FittedGuide::new(GuideParams::Delta {
        loc: position[..latent_dim].to_vec(),
    })
    .map_err(|error| SviError::InvalidModel {
        message: format!("the MAP point is not finite: {error}"),
    })?;
    let fit = SviFit {
        guide,
        params: position[latent_dim..].to_vec(),
        losses: vec![StepLoss {
            step: report.iterations,
            loss: report.value,
        }],
        skipped_steps: Vec::new(),
        interrupted: false,
        convergence: None,
    };
    Ok(LbfgsMap { fit, report })
}

/// A starting point for SVI from an L-BFGS MAP point.
#[derive(Clone, Debug)]
pub struct WarmStart {
    /// The MAP position `[latents, params]`.
    pub position: Vec<f64>,
    /// Marginal scales 1 / √(−H_ii) from the Hessian's diagonal at the MAP point (the scales
    /// the diagonal normal guide takes on a Gaussian posterior), where the dimension allows and
    /// the curvature is negative; other coordinates keep `fallback_scale`.
    pub scales: Option<Vec<f64>>,
    /// How L-BFGS ended.
    pub report: LbfgsReport,
}

/// Runs L-BFGS to the MAP point and, if it converged, returns it with curvature scales;
/// `None` when it did not converge (a posterior without a mode, such as a funnel, or a flat
/// direction), in which case SVI should start where it would have without a warm start.
pub fn warm_start<M: ElboModel>(
    model: &mut M,
    settings: &SviSettings,
    lbfgs_settings: &LbfgsSettings,
    fallback_scale: f64,
) -> Result<Option<WarmStart>, SviError> {
    let map = fit_lbfgs(model, settings, lbfgs_settings)?;
    if !map.report.converged() {
        return Ok(None);
    }
    let position = map.fit.median_position();
    let latent_dim = model.latent_dim();
    let scales = if latent_dim <= WARM_START_MAX_DIM && latent_dim > 0 {
        let seed = derive_seed(settings.seed, PURPOSE_LBFGS_MODEL);
        laplace::log_joint_hessian(model, &position, seed)
            .ok()
            .map(|hessian| {
                (0..latent_dim)
                    .map(|i| {
                        let curvature = -hessian[i][i];
                        let scale = 1.0 / curvature.sqrt();
                        if curvature > 0.0 && scale.is_finite() && scale > 0.0 {
                            scale
                        } else {
                            fallback_scale
                        }
                    })
                    .collect()
            })
    } else {
        None
    };
    Ok(Some(WarmStart {
        position,
        scales,
        report: map.report,
    }))
}
