//! Small dense linear algebra on plain `f64` slices (row-major `n × n` matrices), for checking
//! parameters and for sampling. Log-densities use the tape's own matrix operations instead, so
//! that they are differentiable; these helpers never touch the tape.

/// The lower Cholesky factor of a symmetric matrix, or the first pivot that is not positive
/// (or not finite) when the matrix is not positive definite. Only the lower triangle is read.
pub fn cholesky(matrix: &[f64], n: usize) -> Result<Vec<f64>, f64> {
    let mut factor = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut sum = matrix[i * n + j];
            for k in 0..j {
                sum -= factor[i * n + k] * factor[j * n + k];
            }
            if i == j {
                if !(sum > 0.0 && sum.is_finite()) {
                    return Err(sum);
                }
                factor[i * n + i] = sum.sqrt();
            } else {
                factor[i * n + j] = sum / factor[j * n + j];
            }
        }
    }
    Ok(factor)
}

/// The inverse of a lower-triangular matrix with non-zero diagonal (itself lower triangular).
pub fn lower_inverse(lower: &[f64], n: usize) -> Vec<f64> {
    let mut inverse = vec![0.0; n * n];
    for column in 0..n {
        // Forward substitution for L x = e_column.
        for i in column..n {
            let mut sum = if i == column { 1.0 } else { 0.0 };
            for k in column..i {
                sum -= lower[i * n + k] * inverse[k * n + column];
            }
            inverse[i * n + column] = sum / lower[i * n + i];
        }
    }
    inverse
}

/// The product `a b` of an `n × m` and an `m × p` matrix.
pub fn matmul(a: &[f64], b: &[f64], n: usize, m: usize, p: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * p];
    for i in 0..n {
        for k in 0..m {
            let a_ik = a[i * m + k];
            if a_ik == 0.0 {
                continue;
            }
            for j in 0..p {
                out[i * p + j] += a_ik * b[k * p + j];
            }
        }
    }
    out
}

/// The transpose of an `n × m` matrix.
pub fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[j * n + i] = a[i * m + j];
        }
    }
    out
}

/// The Cholesky factor of the inverse of the matrix whose Cholesky factor is `lower`:
/// for P = L Lᵀ, P⁻¹ = L⁻ᵀ L⁻¹, factored again.
pub fn cholesky_of_inverse(lower: &[f64], n: usize) -> Result<Vec<f64>, f64> {
    let inverse = lower_inverse(lower, n);
    let covariance = matmul(&transpose(&inverse, n, n), &inverse, n, n, n);
    cholesky(&covariance, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reconstructs_the_matrix() {
        let matrix = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let factor = cholesky(&matrix, 3).unwrap();
        let product = matmul(&factor, &transpose(&factor, 3, 3), 3, 3, 3);
        for (a, b) in product.iter().zip(&matrix) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_err());
    }

    #[test]
    fn triangular_inverse_is_an_inverse() {
        let lower = [2.0, 0.0, 0.0, 1.0, 3.0, 0.0, -1.0, 0.5, 0.25];
        let inverse = lower_inverse(&lower, 3);
        let product = matmul(&lower, &inverse, 3, 3, 3);
        for i in 0..3 {
            for j in 0..3 {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((product[i * 3 + j] - expected).abs() < 1e-12);
            }
        }
    }
}
