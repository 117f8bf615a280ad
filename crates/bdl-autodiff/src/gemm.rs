//! General matrix multiply `C ← α·A·B + β·C` on strided `f64` slices, with `C` row-major.
//!
//! Operands are described by strides, so a transposed operand costs nothing. Products whose three
//! extents all exceed five go to nalgebra's `gemm`, which hands them to the `matrixmultiply`
//! crate's blocked kernels (which choose AVX2/FMA or wider at run time). Products with a thin
//! dimension of two to five (the three-class output layer of a classifier, four input features)
//! are padded with zeros to reach those kernels. Products with a dimension of one (outer products,
//! matrix–vector) are memory-bound and done here with loops chosen so that the innermost loop runs
//! over contiguous memory; an operand that is not laid out for that is first copied into scratch
//! memory, which is small in those cases.
//!
//! The choice of kernel depends only on the extents and strides, so the same product is always
//! computed in the same order: replay and rebuild give bit-identical results.

use nalgebra::{Dyn, MatrixView, MatrixViewMut};

/// A read-only strided matrix: element `(r, c)` is `data[r · row_stride + c · col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatrixRef<'a> {
    pub(crate) data: &'a [f64],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a> MatrixRef<'a> {
    /// A row-major `rows × cols` matrix; `data` must hold at least `rows · cols` elements.
    pub fn row_major(data: &'a [f64], rows: usize, cols: usize) -> MatrixRef<'a> {
        MatrixRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, sharing the same memory.
    pub fn t(self) -> MatrixRef<'a> {
        MatrixRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    #[inline]
    fn at(&self, row: usize, col: usize) -> f64 {
        self.data[row * self.row_stride + col * self.col_stride]
    }

    /// Whether each row is contiguous (or there is only one element per row).
    fn rows_contiguous(&self) -> bool {
        self.col_stride == 1 || self.cols <= 1
    }

    /// Copies the matrix into the top-left corner of a zero `rows × cols` row-major matrix in
    /// `buffer` and returns a view of it.
    fn copy_padded<'b>(&self, buffer: &'b mut [f64], rows: usize, cols: usize) -> MatrixRef<'b> {
        buffer.fill(0.0);
        for row in 0..self.rows {
            for col in 0..self.cols {
                buffer[row * cols + col] = self.at(row, col);
            }
        }
        MatrixRef::row_major(&buffer[..rows * cols], rows, cols)
    }

    /// Copies the matrix into `buffer` in row-major order and returns a view of the copy.
    fn copy_row_major<'b>(&self, buffer: &'b mut [f64]) -> MatrixRef<'b> {
        for row in 0..self.rows {
            for col in 0..self.cols {
                buffer[row * self.cols + col] = self.at(row, col);
            }
        }
        MatrixRef::row_major(&buffer[..self.rows * self.cols], self.rows, self.cols)
    }
}

/// Extents above which nalgebra (and so `matrixmultiply`) is used; it is nalgebra's own threshold.
const SMALL_EXTENT: usize = 5;

/// The number of multiply-adds from which a product with a thin dimension of two to five is
/// padded with zeros to the blocked kernel's minimum extent: `matrixmultiply` picks the widest
/// SIMD instructions of the machine at run time, which outweighs the wasted work and the copies.
/// Products with a dimension of one (outer products, matrix–vector) are memory-bound and stay on
/// the loops below, and so do products whose left operand is stored by columns (a transposed
/// activation in a backward pass): there the loops read it in place, while the blocked kernel
/// would first copy (pack) that large operand.
const PADDED_MIN_WORK: usize = 4096;

/// `c ← alpha · a · b + beta · c` where `c` is row-major `a.rows × b.cols`. `scratch` is working
/// memory that grows as needed and is kept by the caller for reuse. This is the kernel behind
/// [`crate::Tape::matmul`] and its gradients; it is public so that other crates and the benchmarks
/// can multiply slices without a tape.
///
/// # Panics
///
/// If the inner extents differ or `c` does not hold `a.rows × b.cols` elements.
pub fn gemm(
    alpha: f64,
    a: MatrixRef<'_>,
    b: MatrixRef<'_>,
    beta: f64,
    c: &mut [f64],
    scratch: &mut Vec<f64>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner extents differ");
    assert_eq!(c.len(), m * n, "gemm: output has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if m > SMALL_EXTENT && k > SMALL_EXTENT && n > SMALL_EXTENT {
        blocked(alpha, a, b, beta, c, n);
        return;
    }
    let thinnest = m.min(k).min(n);
    if thinnest >= 2 && m * k * n >= PADDED_MIN_WORK && a.rows_contiguous() {
        padded(alpha, a, b, beta, c, scratch);
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale(c, beta);
        return;
    }
    if n >= 8 || k < 8 {
        // Wide rows of C (or short inner products): c[i, :] += α a[i, p] · b[p, :], with the
        // innermost loop running along a contiguous row of B.
        if b.rows_contiguous() {
            rows_axpy(alpha, a, b, beta, c);
        } else {
            let b_copy = b.copy_row_major(grow(scratch, k * n));
            rows_axpy(alpha, a, b_copy, beta, c);
        }
    } else if !a.rows_contiguous() && a.row_stride == 1 && m >= 8 {
        // Narrow C and A stored by columns (A = Xᵀ in a backward pass): form Cᵀ = Bᵀ·Aᵀ, whose
        // right operand Aᵀ has contiguous rows, then add it transposed into C.
        let c_transposed = grow(scratch, m * n);
        rows_axpy(alpha, b.t(), a.t(), 0.0, c_transposed);
        for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
            for (j, value) in c_row.iter_mut().enumerate() {
                *value = combine(beta, *value, c_transposed[j * m + i]);
            }
        }
    } else {
        // Narrow C with long inner products: c[i, j] += α ⟨a[i, :], b[:, j]⟩ over contiguous
        // copies where the operands are not already laid out that way.
        let b_transposed = b.t();
        let a_len = if a.rows_contiguous() { 0 } else { m * k };
        let b_len = if b_transposed.rows_contiguous() {
            0
        } else {
            k * n
        };
        let (a_space, b_space) = grow(scratch, a_len + b_len).split_at_mut(a_len);
        let a = if a_len > 0 {
            a.copy_row_major(a_space)
        } else {
            a
        };
        let b_transposed = if b_len > 0 {
            b_transposed.copy_row_major(b_space)
        } else {
            b_transposed
        };
        dots(alpha, a, b_transposed, beta, c);
    }
}

/// β·c + product, where β = 0 ignores `c` entirely (so stale NaN in a reused buffer cannot leak).
#[inline]
fn combine(beta: f64, c: f64, product: f64) -> f64 {
    if beta == 0.0 {
        product
    } else {
        beta * c + product
    }
}

/// `c ← α·a·b + β·c` through nalgebra, which hands the product to `matrixmultiply`; every
/// extent must exceed [`SMALL_EXTENT`]. `c` is row-major with rows `c_row_stride` apart.
fn blocked(
    alpha: f64,
    a: MatrixRef<'_>,
    b: MatrixRef<'_>,
    beta: f64,
    c: &mut [f64],
    c_row_stride: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let a_view = MatrixView::<f64, Dyn, Dyn, Dyn, Dyn>::from_slice_with_strides_generic(
        a.data,
        Dyn(m),
        Dyn(k),
        Dyn(a.row_stride),
        Dyn(a.col_stride),
    );
    let b_view = MatrixView::<f64, Dyn, Dyn, Dyn, Dyn>::from_slice_with_strides_generic(
        b.data,
        Dyn(k),
        Dyn(n),
        Dyn(b.row_stride),
        Dyn(b.col_stride),
    );
    let mut c_view = MatrixViewMut::<f64, Dyn, Dyn, Dyn, Dyn>::from_slice_with_strides_generic(
        c,
        Dyn(m),
        Dyn(n),
        Dyn(c_row_stride),
        Dyn(1),
    );
    c_view.gemm(alpha, &a_view, &b_view, beta);
}

/// The product of [`blocked`] for operands with a dimension of two to five: the thin dimensions
/// are padded with zeros to [`SMALL_EXTENT`] + 1 in scratch copies (of the thin operands only),
/// and a padded result is copied back.
fn padded(
    alpha: f64,
    a: MatrixRef<'_>,
    b: MatrixRef<'_>,
    beta: f64,
    c: &mut [f64],
    scratch: &mut Vec<f64>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let minimum = SMALL_EXTENT + 1;
    let (m_padded, k_padded, n_padded) = (m.max(minimum), k.max(minimum), n.max(minimum));
    let a_len = if (m_padded, k_padded) == (m, k) {
        0
    } else {
        m_padded * k_padded
    };
    let b_len = if (k_padded, n_padded) == (k, n) {
        0
    } else {
        k_padded * n_padded
    };
    let c_len = if (m_padded, n_padded) == (m, n) {
        0
    } else {
        m_padded * n_padded
    };
    let space = grow(scratch, a_len + b_len + c_len);
    let (a_space, rest) = space.split_at_mut(a_len);
    let (b_space, c_space) = rest.split_at_mut(b_len);
    let a = if a_len > 0 {
        a.copy_padded(a_space, m_padded, k_padded)
    } else {
        a
    };
    let b = if b_len > 0 {
        b.copy_padded(b_space, k_padded, n_padded)
    } else {
        b
    };
    if c_len == 0 {
        blocked(alpha, a, b, beta, c, n);
        return;
    }
    blocked(alpha, a, b, 0.0, c_space, n_padded);
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        for (value, &product) in c_row.iter_mut().zip(&c_space[i * n_padded..]) {
            *value = combine(beta, *value, product);
        }
    }
}

/// The first `len` elements of the scratch memory, growing it if needed.
fn grow(scratch: &mut Vec<f64>, len: usize) -> &mut [f64] {
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    &mut scratch[..len]
}

/// `c ← beta · c`, writing zeros (not `0 · c`, which keeps NaN) when beta is zero.
fn scale(c: &mut [f64], beta: f64) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        for value in c.iter_mut() {
            *value *= beta;
        }
    }
}

/// `c[i, :] ← β c[i, :] + α Σₚ a[i, p] · b[p, :]` for `b` with contiguous rows (and `k ≥ 1`).
/// With β = 0 the first terms are written rather than added, so `c` is never read. Four rows of
/// `b` are combined per sweep over a row of `c`, which quarters the loads and stores of `c`.
fn rows_axpy(alpha: f64, a: MatrixRef<'_>, b: MatrixRef<'_>, beta: f64, c: &mut [f64]) {
    let (k, n) = (a.cols, b.cols);
    let b_row = |p: usize| &b.data[p * b.row_stride..p * b.row_stride + n];
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        if beta != 0.0 && beta != 1.0 {
            for value in c_row.iter_mut() {
                *value *= beta;
            }
        }
        let mut overwrite = beta == 0.0;
        let mut p = 0;
        while p + 4 <= k {
            let weights = [
                alpha * a.at(i, p),
                alpha * a.at(i, p + 1),
                alpha * a.at(i, p + 2),
                alpha * a.at(i, p + 3),
            ];
            let rows = c_row
                .iter_mut()
                .zip(b_row(p))
                .zip(b_row(p + 1))
                .zip(b_row(p + 2))
                .zip(b_row(p + 3));
            for ((((value, &x0), &x1), &x2), &x3) in rows {
                let sum = (weights[0] * x0 + weights[1] * x1) + (weights[2] * x2 + weights[3] * x3);
                *value = if overwrite { sum } else { *value + sum };
            }
            overwrite = false;
            p += 4;
        }
        for p in p..k {
            let weight = alpha * a.at(i, p);
            for (value, &x) in c_row.iter_mut().zip(b_row(p)) {
                *value = if overwrite {
                    weight * x
                } else {
                    *value + weight * x
                };
            }
            overwrite = false;
        }
    }
}

/// `c[i, j] ← β c[i, j] + α ⟨a[i, :], bᵀ[j, :]⟩` for `a` and `bᵀ` with contiguous rows.
fn dots(alpha: f64, a: MatrixRef<'_>, b_transposed: MatrixRef<'_>, beta: f64, c: &mut [f64]) {
    let (k, n) = (a.cols, b_transposed.rows);
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        let a_row = &a.data[i * a.row_stride..i * a.row_stride + k];
        for (j, value) in c_row.iter_mut().enumerate() {
            let start = j * b_transposed.row_stride;
            let b_row = &b_transposed.data[start..start + k];
            *value = combine(beta, *value, alpha * dot(a_row, b_row));
        }
    }
}

/// ⟨x, y⟩ with four accumulators.
#[inline]
pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let mut x_chunks = x.chunks_exact(4);
    let mut y_chunks = y.chunks_exact(4);
    for (x_chunk, y_chunk) in (&mut x_chunks).zip(&mut y_chunks) {
        for lane in 0..4 {
            lanes[lane] += x_chunk[lane] * y_chunk[lane];
        }
    }
    let tail: f64 = x_chunks
        .remainder()
        .iter()
        .zip(y_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}
