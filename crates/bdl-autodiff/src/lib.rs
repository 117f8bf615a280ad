//! Tensors and reverse-mode automatic differentiation on a replayable tape.
//!
//! A [`Tensor`] is a dense row-major `f64` array of any rank with NumPy broadcasting. A [`Tape`]
//! records tensor operations, each computed as soon as it is recorded; [`Var`] is a copyable
//! handle to one recorded node. [`Tape::backward`] computes the gradient of a one-element output
//! with respect to every node. A recording can be evaluated again at new leaf values with
//! [`Tape::set_value`] and [`Tape::replay`], which reuse every buffer and give bit-identical
//! results to recording afresh, so inference over a model of fixed structure pays no
//! interpretation cost per step.
//!
//! ```
//! use bdl_autodiff::{Tape, Tensor};
//!
//! let mut tape = Tape::new();
//! let x = tape.input(Tensor::vector(vec![1.0, 2.0, 3.0]));
//! let squares = tape.square(x);
//! let total = tape.sum(squares);
//! tape.backward(total)?;
//! assert_eq!(tape.grad(x), &[2.0, 4.0, 6.0]);
//!
//! // Evaluate the same graph at a new point without recording it again.
//! tape.set_value(x, &[0.5, 0.0, -1.0])?;
//! tape.replay()?;
//! tape.backward(total)?;
//! assert_eq!(tape.value(total).item()?, 1.25);
//! assert_eq!(tape.grad(x), &[1.0, 0.0, -2.0]);
//! # Ok::<(), bdl_autodiff::TensorError>(())
//! ```
//!
//! `docs/dev/adding-an-op.md` in the repository is the checklist for adding an operation.

mod broadcast;
pub mod check;
pub mod gemm;
mod ops;
mod special;
mod tape;
mod tensor;

pub use tape::{Tape, Var};
pub use tensor::{element_count, Shape, Tensor, TensorError};
