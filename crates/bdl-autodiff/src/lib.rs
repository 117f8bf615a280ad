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
//! # Operations
//!
//! All are methods of [`Tape`]. Those that can fail on shapes or arguments return
//! `Result<Var, TensorError>`; the error names the op and the shapes.
//!
//! - Broadcasting arithmetic: `add sub mul div pow`, scalar forms `add_scalar sub_scalar
//!   scalar_sub mul_scalar div_scalar scalar_div pow_scalar`, and [`Tape::scalar`] for literals.
//! - Elementwise: `neg abs exp log log1p expm1 sqrt square tanh sigmoid relu softplus
//!   log_sigmoid lgamma digamma clamp`.
//! - Comparisons and logic, 0/1 results without gradient: `lt le gt ge eq ne and or not`;
//!   `select` (NumPy's `where`).
//! - Reductions over all elements or one axis (`*_axis`, with `keep_dim`): `sum mean max min
//!   logsumexp`; along an axis: `softmax log_softmax`.
//! - Linear algebra: `matmul` (matrix, batched, matrix–vector, vector–matrix, inner product),
//!   `transpose`, `cholesky`, `triangular_solve`, `log_det_triangular`.
//! - Indexing and shapes: `index slice gather take_along_axis stack concat reshape expand_dims
//!   broadcast_to`. Index tensors hold whole numbers stored as `f64` and are validated (also on
//!   replay).
//! - Network layers: `rearrange` (each element a copy of one input element or zero, the
//!   primitive behind im2col), `conv` (1-D and 2-D, stride and zero padding), `max_pool`
//!   `avg_pool`, the activations `leaky_relu elu gelu silu`, and `normalize` (the core of
//!   LayerNorm and BatchNorm).
//!
//! Gradients: every node's gradient is available after [`Tape::backward`], not only the
//! inputs'. Axes may be negative, counting from the end as in Python. [`check`] holds the
//! finite-difference gradient checker other crates use in their tests, and [`gemm`] the matrix
//! product kernel behind `matmul`.
//!
//! `docs/dev/adding-an-op.md` in the repository is the checklist for adding an operation.

mod broadcast;
pub mod check;
pub mod gemm;
mod ops;
mod special;
mod tape;
mod tensor;
use bdl_vmath as vmath;

pub use ops::layers::{Window, ZERO_ENTRY};
pub use tape::{Tape, Var};
pub use tensor::{element_count, Shape, Tensor, TensorError};
