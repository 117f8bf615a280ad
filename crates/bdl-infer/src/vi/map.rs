//! Maximum a posteriori estimation: SVI with the Delta guide, so the loss is −log p(x, z) at a
//! point and every optimiser, schedule and safeguard of [`crate::vi::svi`] applies.

use crate::density::ElboModel;
use crate::vi::error::SviError;
use crate::vi::guide::GuideKind;
use crate::vi::svi::{self, SviFit, SviSettings};
use std::sync::atomic::AtomicBool;

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
