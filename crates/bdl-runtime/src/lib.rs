//! The runtime: runs a lowered program on a `bdl-autodiff` tape under effect handlers, as Pyro
//! and NumPyro run a Python model, and turns it into what inference needs.
//!
//! [`data`] fills the data block from CSV, JSON and NumPy ([`npy`]) files and validates it. [`interpret`] runs the
//! IR, sending every site through the [`handlers`] stack and recording a [`trace`]. [`model`]
//! compiles a program with its data into a [`model::Model`]: the [`layout`] of the flat
//! unconstrained vector, and evaluators that implement `bdl-infer`'s `LogDensity` and
//! `ElboModel` by recording the model once and replaying the recording at new points when its
//! structure does not depend on sampled values; a draw's values come from the flat vector
//! through the blocks' bijectors alone ([`model::DrawMap`]) whenever the model allows it.
//! Discrete latent sites are marginalised by [`enumerate`] and drawn again for each draw.

pub mod conjugate;
pub mod data;
pub mod enumerate;
pub mod error;
pub mod handlers;
pub mod interpret;
pub mod layout;
pub mod model;
mod network;
pub mod npy;
mod operators;
pub mod pipeline;
pub mod trace;
pub mod value;

pub use error::{ErrorKind, RuntimeError};
pub use network::{NetworkCall, NetworkCalls};
