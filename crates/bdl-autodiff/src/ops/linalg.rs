//! Linear algebra: matrix products (matrix, batched, matrix–vector, vector–matrix and inner
//! products), transposition, Cholesky factorisation, triangular solves and the log-determinant of
//! a triangular matrix.

use crate::broadcast::{broadcast_shape, Walk};
use crate::gemm::{dot, gemm, MatrixRef};
use crate::ops::Op;
use crate::tape::{GradTarget, Tape, Var};
use crate::tensor::{element_count, Shape, Tensor, TensorError};

/// How a (possibly batched) matrix product lines up its operands: each operand is a stack of
/// `m × k` (left) or `k × n` (right) matrices over batch axes that broadcast against each other.
/// A vector on the left acts as a `1 × k` matrix and on the right as `k × 1`; the unit axis is
/// dropped from the result, as in NumPy.
pub(crate) struct MatmulPlan {
    m: usize,
    k: usize,
    n: usize,
    left_batch: Shape,
    right_batch: Shape,
    out_batch: Shape,
    pub(crate) out_shape: Shape,
}

pub(crate) fn matmul_plan(left: &[usize], right: &[usize]) -> Result<MatmulPlan, TensorError> {
    let mismatch = || TensorError::ShapeMismatch {
        op: "matmul",
        left: left.to_vec(),
        right: right.to_vec(),
    };
    if left.is_empty() || right.is_empty() {
        return Err(mismatch());
    }
    let (left_batch, m, k) = match left {
        [k] => (&[][..], 1, *k),
        [batch @ .., m, k] => (batch, *m, *k),
        [] => return Err(mismatch()),
    };
    let (right_batch, right_k, n) = match right {
        [k] => (&[][..], *k, 1),
        [batch @ .., k, n] => (batch, *k, *n),
        [] => return Err(mismatch()),
    };
    if k != right_k {
        return Err(mismatch());
    }
    let out_batch = broadcast_shape("matmul", left_batch, right_batch).map_err(|_| mismatch())?;
    let mut out_shape = out_batch.clone();
    if left.len() >= 2 {
        out_shape.push(m);
    }
    if right.len() >= 2 {
        out_shape.push(n);
    }
    Ok(MatmulPlan {
        m,
        k,
        n,
        left_batch: Shape::from_slice(left_batch),
        right_batch: Shape::from_slice(right_batch),
        out_batch,
        out_shape,
    })
}

impl MatmulPlan {
    /// Calls `visit(out_block, left_block, right_block)` for each matrix of the batch.
    fn for_each_block(&self, visit: impl FnMut([usize; 3])) {
        Walk::new(
            &self.out_batch,
            [&self.out_batch, &self.left_batch, &self.right_batch],
        )
        .for_each(visit);
    }
}

/// C = A·B for every matrix of the batch.
pub(crate) fn matmul_forward(
    left: &Tensor,
    right: &Tensor,
    out: &mut Tensor,
    scratch: &mut Vec<f64>,
) {
    let Ok(plan) = matmul_plan(left.shape(), right.shape()) else {
        // Shapes were checked when the node was recorded and leaves keep their shapes.
        out.data_mut().fill(f64::NAN);
        return;
    };
    let (m, k, n) = (plan.m, plan.k, plan.n);
    let out = out.data_mut();
    plan.for_each_block(|[o, i, j]| {
        gemm(
            1.0,
            MatrixRef::row_major(&left.data()[i * m * k..(i + 1) * m * k], m, k),
            MatrixRef::row_major(&right.data()[j * k * n..(j + 1) * k * n], k, n),
            0.0,
            &mut out[o * m * n..(o + 1) * m * n],
            scratch,
        );
    });
}

/// The `beta` of the first gradient product into a block, and the buffer to write: a fresh
/// gradient can be overwritten (beta = 0) when every block of it is written exactly once;
/// otherwise it is zeroed and accumulated into.
fn first_beta<'a>(grad: GradTarget<'a>, blocks_shared: bool) -> (&'a mut [f64], f64) {
    if grad.fresh && !blocks_shared {
        (grad.buffer, 0.0)
    } else {
        (grad.accumulator(), 1.0)
    }
}

/// For C = A·B: ∂L/∂A = (∂L/∂C)·Bᵀ, accumulated over the blocks that share a left matrix.
pub(crate) fn matmul_backward_left(
    left: &Tensor,
    right: &Tensor,
    upstream: &[f64],
    grad: GradTarget<'_>,
    scratch: &mut Vec<f64>,
) {
    let Ok(plan) = matmul_plan(left.shape(), right.shape()) else {
        return;
    };
    let (m, k, n) = (plan.m, plan.k, plan.n);
    let shared = element_count(&plan.left_batch) != element_count(&plan.out_batch);
    let (grad, beta) = first_beta(grad, shared);
    plan.for_each_block(|[o, i, j]| {
        gemm(
            1.0,
            MatrixRef::row_major(&upstream[o * m * n..(o + 1) * m * n], m, n),
            MatrixRef::row_major(&right.data()[j * k * n..(j + 1) * k * n], k, n).t(),
            beta,
            &mut grad[i * m * k..(i + 1) * m * k],
            scratch,
        );
    });
}

/// For C = A·B: ∂L/∂B = Aᵀ·(∂L/∂C), accumulated over the blocks that share a right matrix.
pub(crate) fn matmul_backward_right(
    left: &Tensor,
    right: &Tensor,
    upstream: &[f64],
    grad: GradTarget<'_>,
    scratch: &mut Vec<f64>,
) {
    let Ok(plan) = matmul_plan(left.shape(), right.shape()) else {
        return;
    };
    let (m, k, n) = (plan.m, plan.k, plan.n);
    let shared = element_count(&plan.right_batch) != element_count(&plan.out_batch);
    let (grad, beta) = first_beta(grad, shared);
    plan.for_each_block(|[o, i, j]| {
        gemm(
            1.0,
            MatrixRef::row_major(&left.data()[i * m * k..(i + 1) * m * k], m, k).t(),
            MatrixRef::row_major(&upstream[o * m * n..(o + 1) * m * n], m, n),
            beta,
            &mut grad[j * k * n..(j + 1) * k * n],
            scratch,
        );
    });
}

/// The extents of the last two axes of a shape of rank two or more, and the number of such
/// matrices.
fn matrix_extents(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [batch @ .., rows, cols] => (batch.iter().product(), *rows, *cols),
        _ => (1, 1, shape.iter().product()),
    }
}

/// Swaps the last two axes (a copy for ranks below two).
pub(crate) fn transpose_forward(input: &Tensor, out: &mut Tensor) {
    if input.rank() < 2 {
        out.data_mut().copy_from_slice(input.data());
        return;
    }
    let (_, rows, cols) = matrix_extents(input.shape());
    let block = rows * cols;
    let blocks = out
        .data_mut()
        .chunks_exact_mut(block.max(1))
        .zip(input.data().chunks_exact(block.max(1)));
    for (out_block, input_block) in blocks {
        for r in 0..rows {
            for c in 0..cols {
                out_block[c * rows + r] = input_block[r * cols + c];
            }
        }
    }
}

/// The transpose's gradient is the upstream gradient transposed back.
pub(crate) fn transpose_backward(input: &Tensor, upstream: &[f64], grad: &mut [f64]) {
    if input.rank() < 2 {
        for (gr, &g) in grad.iter_mut().zip(upstream) {
            *gr += g;
        }
        return;
    }
    let (_, rows, cols) = matrix_extents(input.shape());
    let block = rows * cols;
    let blocks = grad
        .chunks_exact_mut(block.max(1))
        .zip(upstream.chunks_exact(block.max(1)));
    for (grad_block, upstream_block) in blocks {
        for r in 0..rows {
            for c in 0..cols {
                grad_block[r * cols + c] += upstream_block[c * rows + r];
            }
        }
    }
}

/// The extent of a square matrix, or an error naming `op`.
fn square_extent(op: &'static str, shape: &[usize]) -> Result<usize, TensorError> {
    match shape {
        [rows, cols] if rows == cols => Ok(*rows),
        _ => Err(TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            expected: "a square matrix",
        }),
    }
}

/// Solves `T X = B` in place (B is row-major `n × m`, overwritten by X) for a triangular `T`
/// given as a strided view, lower or upper. Only `T`'s triangle is read. A zero on the diagonal
/// gives infinities or NaN, which the caller reports as numerical failure.
pub(crate) fn solve_triangular_in_place(t: MatrixRef<'_>, lower: bool, b: &mut [f64], m: usize) {
    let n = t.rows;
    let substitute = |i: usize, b: &mut [f64]| {
        let (before, rest) = b.split_at_mut(i * m);
        let (row, after) = rest.split_at_mut(m);
        let others = if lower { 0..i } else { i + 1..n };
        for k in others {
            let coefficient = t.data[i * t.row_stride + k * t.col_stride];
            if coefficient == 0.0 {
                continue;
            }
            let solved = if k < i {
                &before[k * m..(k + 1) * m]
            } else {
                &after[(k - i - 1) * m..(k - i) * m]
            };
            for (value, &x) in row.iter_mut().zip(solved) {
                *value -= coefficient * x;
            }
        }
        let diagonal = t.data[i * t.row_stride + i * t.col_stride];
        for value in row.iter_mut() {
            *value /= diagonal;
        }
    };
    if lower {
        for i in 0..n {
            substitute(i, b);
        }
    } else {
        for i in (0..n).rev() {
            substitute(i, b);
        }
    }
}

/// The lower Cholesky factor L of a symmetric positive-definite matrix (A = L·Lᵀ), reading only
/// the lower triangle of A. A matrix that is not positive definite (or holds NaN) gives a factor
/// of NaN: numerical failure that a sampler treats as a divergence.
pub(crate) fn cholesky_forward(input: &Tensor, out: &mut [f64]) {
    let n = input.shape().first().copied().unwrap_or(0);
    let a = input.data();
    out.fill(0.0);
    for j in 0..n {
        let row_j = &out[j * n..j * n + j];
        let pivot = a[j * n + j] - dot(row_j, row_j);
        // NaN fails this test too.
        let positive = pivot > 0.0;
        if !positive {
            out.fill(f64::NAN);
            return;
        }
        let diagonal = pivot.sqrt();
        out[j * n + j] = diagonal;
        for i in j + 1..n {
            // Lᵢⱼ = (aᵢⱼ − Σₖ<ⱼ Lᵢₖ Lⱼₖ) / Lⱼⱼ.
            let (upper, lower) = out.split_at_mut(i * n);
            let row_j = &upper[j * n..j * n + j];
            let row_i = &mut lower[..n];
            row_i[j] = (a[i * n + j] - dot(&row_i[..j], row_j)) / diagonal;
        }
    }
}

/// Backward of the Cholesky factorisation (the derivation follows Murray, 2016). With
/// dA = dL Lᵀ + L dLᵀ, L⁻¹ dA L⁻ᵀ = X + Xᵀ for the lower-triangular X = L⁻¹ dL, so
/// dL = L Φ(L⁻¹ dA L⁻ᵀ) where Φ keeps the lower triangle and halves the diagonal. Then
/// dℓ = ⟨L̄, dL⟩ = ⟨S, dA⟩ with P = Φ(Lᵀ L̄) and S = L⁻ᵀ P L⁻¹. The forward pass reads only the lower
/// triangle, so moving aᵢⱼ (i > j) moves both symmetric entries: ∂ℓ/∂aᵢⱼ = Sᵢⱼ + Sⱼᵢ, ∂ℓ/∂aᵢᵢ = Sᵢᵢ,
/// and the upper triangle gets nothing. Only the lower triangle of L̄ counts (L's upper triangle is
/// constant zero).
pub(crate) fn cholesky_backward(
    factor: &Tensor,
    upstream: &[f64],
    grad: &mut [f64],
    scratch: &mut Vec<f64>,
) {
    let n = factor.shape().first().copied().unwrap_or(0);
    if n == 0 {
        return;
    }
    let l = MatrixRef::row_major(factor.data(), n, n);
    let needed = 3 * n * n;
    if scratch.len() < needed {
        scratch.resize(needed, 0.0);
    }
    let (lower_upstream, rest) = scratch[..needed].split_at_mut(n * n);
    let (p, rest) = rest.split_at_mut(n * n);
    let (transposed, _) = rest.split_at_mut(n * n);
    for i in 0..n {
        for j in 0..n {
            lower_upstream[i * n + j] = if j <= i { upstream[i * n + j] } else { 0.0 };
        }
    }
    // P = Φ(Lᵀ L̄): accumulate Lᵀ L̄ one row of L̄ at a time (row k adds L[k, i] · L̄[k, :] to row i).
    p.fill(0.0);
    for k in 0..n {
        let upstream_row = &lower_upstream[k * n..(k + 1) * n];
        for i in 0..=k {
            let weight = factor.data()[k * n + i];
            for (value, &x) in p[i * n..(i + 1) * n].iter_mut().zip(upstream_row) {
                *value += weight * x;
            }
        }
    }
    for i in 0..n {
        p[i * n + i] *= 0.5;
        for j in i + 1..n {
            p[i * n + j] = 0.0;
        }
    }
    // Y = L⁻ᵀ P (solve Lᵀ Y = P), then S = Y L⁻¹, i.e. Sᵀ = L⁻ᵀ Yᵀ.
    solve_triangular_in_place(l.t(), false, p, n);
    for i in 0..n {
        for j in 0..n {
            transposed[j * n + i] = p[i * n + j];
        }
    }
    solve_triangular_in_place(l.t(), false, transposed, n);
    // `transposed` now holds Sᵀ: S_ij = transposed[j][i].
    for i in 0..n {
        grad[i * n + i] += transposed[i * n + i];
        for j in 0..i {
            grad[i * n + j] += transposed[j * n + i] + transposed[i * n + j];
        }
    }
}

/// The shape of a right-hand side for a triangular system of extent `n`: `[n]` or `[n, m]`;
/// returns m.
fn right_hand_columns(matrix_shape: &[usize], rhs_shape: &[usize]) -> Result<usize, TensorError> {
    let n = square_extent("triangular_solve", matrix_shape)?;
    match rhs_shape {
        [rows] if *rows == n => Ok(1),
        [rows, cols] if *rows == n => Ok(*cols),
        _ => Err(TensorError::ShapeMismatch {
            op: "triangular_solve",
            left: matrix_shape.to_vec(),
            right: rhs_shape.to_vec(),
        }),
    }
}

/// The triangular system actually solved: op(T) = T or Tᵀ, which is lower when T is lower and not
/// transposed, or upper and transposed.
fn system(matrix: &Tensor, lower: bool, transpose: bool) -> (MatrixRef<'_>, bool) {
    let n = matrix.shape().first().copied().unwrap_or(0);
    let t = MatrixRef::row_major(matrix.data(), n, n);
    if transpose {
        (t.t(), !lower)
    } else {
        (t, lower)
    }
}

/// X = op(T)⁻¹ B.
pub(crate) fn triangular_solve_forward(
    matrix: &Tensor,
    rhs: &Tensor,
    lower: bool,
    transpose: bool,
    out: &mut [f64],
) {
    let columns = rhs.len() / matrix.shape().first().copied().unwrap_or(1).max(1);
    out.copy_from_slice(rhs.data());
    let (system_matrix, system_lower) = system(matrix, lower, transpose);
    solve_triangular_in_place(system_matrix, system_lower, out, columns);
}

/// Backward of X = op(T)⁻¹ B: B̄ = op(T)⁻ᵀ X̄ and op(T)̄ = −B̄ Xᵀ, so T̄ = −B̄ Xᵀ, or −X B̄ᵀ when T
/// enters transposed, restricted to the triangle the forward pass reads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn triangular_solve_backward(
    matrix: &Tensor,
    solution: &Tensor,
    lower: bool,
    transpose: bool,
    upstream: &[f64],
    matrix_grad: Option<&mut [f64]>,
    rhs_grad: Option<&mut [f64]>,
    scratch: &mut Vec<f64>,
) {
    let n = matrix.shape().first().copied().unwrap_or(0);
    if n == 0 {
        return;
    }
    let columns = solution.len() / n;
    let needed = n * columns + n * n;
    if scratch.len() < needed {
        scratch.resize(needed, 0.0);
    }
    let (rhs_adjoint, product) = scratch[..needed].split_at_mut(n * columns);
    // B̄ = op(T)⁻ᵀ X̄: solve op(T)ᵀ B̄ = X̄, where op(T)ᵀ is lower exactly when op(T) is upper.
    rhs_adjoint.copy_from_slice(upstream);
    let (system_matrix, system_lower) = system(matrix, lower, transpose);
    solve_triangular_in_place(system_matrix.t(), !system_lower, rhs_adjoint, columns);
    if let Some(grad) = rhs_grad {
        for (gr, &g) in grad.iter_mut().zip(rhs_adjoint.iter()) {
            *gr += g;
        }
    }
    if let Some(grad) = matrix_grad {
        // −B̄ Xᵀ has entries −⟨B̄ᵢ, Xⱼ⟩ and −X B̄ᵀ has −⟨Xᵢ, B̄ⱼ⟩ (rows of the n × m matrices).
        let x = solution.data();
        fn row(data: &[f64], i: usize, columns: usize) -> &[f64] {
            &data[i * columns..(i + 1) * columns]
        }
        for i in 0..n {
            for j in 0..n {
                product[i * n + j] = if transpose {
                    -dot(row(x, i, columns), row(rhs_adjoint, j, columns))
                } else {
                    -dot(row(rhs_adjoint, i, columns), row(x, j, columns))
                };
            }
        }
        for i in 0..n {
            for j in 0..n {
                if (lower && j <= i) || (!lower && j >= i) {
                    grad[i * n + j] += product[i * n + j];
                }
            }
        }
    }
}

/// log|det T| = Σᵢ log|tᵢᵢ| for a triangular T.
pub(crate) fn log_det_triangular_forward(matrix: &Tensor, out: &mut [f64]) {
    let n = matrix.shape().first().copied().unwrap_or(0);
    out[0] = (0..n).map(|i| matrix.data()[i * n + i].abs().ln()).sum();
}

/// ∂ log|det T| / ∂tᵢᵢ = 1/tᵢᵢ; off-diagonal entries do not matter.
pub(crate) fn log_det_triangular_backward(matrix: &Tensor, upstream: &[f64], grad: &mut [f64]) {
    let n = matrix.shape().first().copied().unwrap_or(0);
    for i in 0..n {
        grad[i * n + i] += upstream[0] / matrix.data()[i * n + i];
    }
}

impl Tape {
    /// The matrix product with NumPy's `matmul` rules: matrix × matrix, batched (batch axes
    /// broadcast), matrix × vector, vector × matrix and vector · vector (a scalar).
    pub fn matmul(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        let plan = matmul_plan(self.shape(left), self.shape(right))?;
        Ok(self.push(Op::MatMul(left, right), plan.out_shape))
    }

    /// Swaps the last two axes; a tensor of rank below two is returned unchanged (as a new node).
    pub fn transpose(&mut self, input: Var) -> Var {
        let mut shape = Shape::from_slice(self.shape(input));
        let rank = shape.len();
        if rank >= 2 {
            shape.swap(rank - 2, rank - 1);
        }
        self.push(Op::Transpose(input), shape)
    }

    /// The lower Cholesky factor L of a symmetric positive-definite matrix (A = L·Lᵀ). Only the
    /// lower triangle of A is read; a matrix that is not positive definite gives NaN (numerical
    /// failure, not an error).
    pub fn cholesky(&mut self, input: Var) -> Result<Var, TensorError> {
        square_extent("cholesky", self.shape(input))?;
        let shape = Shape::from_slice(self.shape(input));
        Ok(self.push(Op::Cholesky(input), shape))
    }

    /// Solves op(T)·X = B for X, where T is a lower (`lower = true`) or upper triangular matrix
    /// of which only that triangle is read, op(T) is Tᵀ when `transpose` is set, and B is a
    /// vector `[n]` or matrix `[n, m]`.
    pub fn triangular_solve(
        &mut self,
        matrix: Var,
        rhs: Var,
        lower: bool,
        transpose: bool,
    ) -> Result<Var, TensorError> {
        right_hand_columns(self.shape(matrix), self.shape(rhs))?;
        let shape = Shape::from_slice(self.shape(rhs));
        let op = Op::TriangularSolve {
            matrix,
            rhs,
            lower,
            transpose,
        };
        Ok(self.push(op, shape))
    }

    /// log|det T| = Σᵢ log|tᵢᵢ| of a triangular matrix (for a Cholesky factor L of A,
    /// log det A = 2 · log_det_triangular(L)).
    pub fn log_det_triangular(&mut self, input: Var) -> Result<Var, TensorError> {
        square_extent("log_det_triangular", self.shape(input))?;
        Ok(self.push(Op::LogDetTriangular(input), Shape::new()))
    }
}
