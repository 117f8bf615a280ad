//! Inference over a log density: SVI with auto-guides, MAP and Laplace, HMC and NUTS with
//! Stan's warm-up, stochastic-gradient MCMC, deep ensembles and MultiSWAG,
//! Metropolis-within-Gibbs with conjugate blocks, and the convergence diagnostics of Vehtari et
//! al. (2021).
//!
//! Nothing here knows about syntax or tapes. Algorithms see a model only through the traits of
//! [`density`]: a log density with gradient over one flat unconstrained vector, or the parts of a
//! log joint that an ELBO needs. Tests use closed-form densities.

pub mod density;
pub mod diagnostics;
pub mod driver;
pub mod ensemble;
pub mod error;
pub mod gibbs;
pub mod mcmc;
pub mod rng;
pub mod sgmcmc;
pub mod vi;

pub use error::InferError;
