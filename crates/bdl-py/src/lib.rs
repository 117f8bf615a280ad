//! bdl from Python: the crate behind the `bdl` package (`pip install` of the wheel that
//! `maturin build --release` makes from this folder).
//!
//! [`methods`] runs every other method of `bdlc infer` through the command line's own
//! drivers (`bdlc::embed`), with the model's `infer { }` block as defaults.
//! [`core`] is plain Rust and holds everything the package does (compile a model, fill its data
//! block from NumPy's `.npy` bytes, run NUTS, HMC or an ensemble, split a run with chain
//! offsets, posterior prediction); `cargo test -p bdl-py` tests it without Python. The pyo3
//! layer in `python.rs`, compiled only with the `python` feature, turns Python objects into
//! those types, releases the GIL while inference runs, honours Ctrl-C, and returns NumPy
//! arrays; `python/bdl/` wraps the results into ArviZ's `InferenceData` and runs chains and
//! members as Ray tasks (`bdl.ray`).

pub mod core;
pub mod methods;

#[cfg(feature = "python")]
mod python;
