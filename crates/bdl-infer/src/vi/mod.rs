//! Variational inference and point estimates: ELBO estimators, optimisers and schedules,
//! auto-guides over the latent coordinates, SVI, MAP, the Laplace approximation and Pathfinder.
//!
//! Everything works on an [`ElboModel`](crate::density::ElboModel) in unconstrained space. A
//! caller (the command line, the REPL) builds [`SviSettings`], calls [`svi::fit`] (or
//! [`map::fit`]) with a factory of model evaluators, one per particle, and gets back an
//! [`SviFit`]: the per-step losses, the model's params, and a [`FittedGuide`] that draws
//! posterior samples and answers means, medians, quantiles and covariances. Its
//! [`GuideParams`] are plain serialisable data, so a fit can be saved and rebuilt.
//!
//! ```text
//! settings ─→ Elbo (K evaluators, rayon) ─→ loss + gradient ─→ Optimizer ─→ parameters
//!                      ↑ guide family: z = μ + A ε, entropy, analytic KL
//! ```

// Dense linear algebra reads best as the index loops of the formulas it implements.
#![allow(clippy::needless_range_loop)]

pub mod convergence;
pub mod elbo;
pub mod error;
pub mod flow;
pub mod guide;
pub mod importance;
pub mod laplace;
pub mod lbfgs;
pub mod map;
mod numeric;
pub mod optim;
pub mod pathfinder;
pub mod posterior;
pub mod schedule;
pub mod standardize;
pub mod svi;
pub mod vis;

pub use convergence::{ConvergenceReport, ConvergenceSettings};
pub use elbo::{Elbo, ElboKind, ElboSettings};
pub use error::{SettingsError, SviError};
pub use guide::{GuideFamily, GuideKind};
pub use importance::{GuideDiagnostic, ImportanceError};
pub use laplace::LaplaceError;
pub use lbfgs::{LbfgsReport, LbfgsSettings, LbfgsStatus};
pub use map::{LbfgsMap, WarmStart};
pub use optim::{
    Adam, ClippedAdam, Optimizer, OptimizerKind, OptimizerSettings, OptimizerState, Sgd,
};
pub use pathfinder::{PathfinderError, PathfinderResult, PathfinderSettings};
pub use posterior::{FittedGuide, GuideError, GuideParams, DEFAULT_QUANTILES};
pub use schedule::{KlWeightSchedule, LearningRateSchedule};
pub use standardize::Standardized;
pub use svi::{
    Checkpoints, InitLocation, InitSettings, StepLoss, SviCheckpoint, SviFit, SviSettings,
};
