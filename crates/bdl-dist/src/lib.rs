//! Probability distributions whose log-densities are recorded on a `bdl-autodiff` tape (and so
//! are differentiable in the value and every parameter), sampled from an explicit RNG; analytic
//! KL divergences; constraints and the bijectors that map unconstrained space onto them.
//!
//! ```
//! use bdl_autodiff::{Tape, Tensor};
//! use bdl_dist::Distribution;
//!
//! let mut tape = Tape::new();
//! let loc = tape.input(Tensor::scalar(0.0));
//! let scale = tape.constant(Tensor::scalar(1.0));
//! let normal = Distribution::from_call(&mut tape, "Normal", &[("loc", loc), ("scale", scale)])?;
//! let y = tape.constant(Tensor::vector(vec![0.5, -1.0]));
//! let log_prob = normal.log_prob(&mut tape, y)?;
//! assert_eq!(tape.shape(log_prob), &[2]);
//! # Ok::<(), bdl_dist::DistError>(())
//! ```
//!
//! `docs/dev/adding-a-distribution.md` in the repository is the checklist for adding a family.

pub mod bijector;
pub mod constraint;
pub mod distribution;
pub mod error;
pub mod families;
pub mod kl;
mod linalg;
mod math;
pub mod shape;

pub use bijector::{Bijector, PositiveTransform};
pub use constraint::{Bound, Constraint};
pub use distribution::{Distribution, MixtureWeights, Param, MIXTURE_COMPONENT_FAMILIES};
pub use error::DistError;
pub use families::{Family, FamilySpec, ParamSpec, FAMILIES};
pub use kl::kl_divergence;
