//! One test per op: its value against a plain `f64` computation, and its gradient against the
//! six-point finite-difference stencil at several points of small, moderate and large magnitude,
//! plus a replay-versus-rebuild check between consecutive points.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
mod elementwise;
mod indexing;
mod layers;
mod linalg;
mod reduce;
