//! Small numerical helpers for the variational code: the softplus parameterisation of scales, the
//! standard normal quantile, seed derivation, and dense row-major linear algebra (Cholesky
//! factors, triangular inverses) that works in caller-provided buffers, so that an optimisation
//! step allocates nothing.

/// softplus(x) = log(1 + eˣ), computed without overflow for large |x|.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// log(1 + x) for x ≥ 0 to within a few ulps, with one `ln` and one division (cheaper than the
/// library's `ln_1p`): with u = 1 + x rounded, log(1 + x) = x · log(u) / (u − 1), because the
/// rounding error of u cancels between log(u) and u − 1 (Goldberg, 1991, theorem 4).
fn ln_1p_non_negative(x: f64) -> f64 {
    let u = 1.0 + x;
    if u == 1.0 {
        x
    } else {
        x * u.ln() / (u - 1.0)
    }
}

/// softplus(x) and its derivative sigmoid(x) from one exponential: with e = exp(−|x|),
/// softplus(x) = max(x, 0) + log(1 + e) and sigmoid(x) = 1 / (1 + e) for x ≥ 0, e / (1 + e) below.
pub fn softplus_with_slope(x: f64) -> (f64, f64) {
    let e = (-x.abs()).exp();
    let slope = if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (x.max(0.0) + ln_1p_non_negative(e), slope)
}

/// The inverse of softplus on (0, ∞): if y = log(1 + eˣ) then x = y + log(1 − e⁻ʸ).
pub fn softplus_inverse(y: f64) -> f64 {
    y + (-(-y).exp_m1()).ln()
}

/// The quantile function of the standard normal distribution: Φ⁻¹(p) = −√2 erfc⁻¹(2p).
pub fn standard_normal_quantile(probability: f64) -> f64 {
    -std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * probability)
}

/// ½ (1 + log 2π): the entropy of a standard normal coordinate.
pub const NORMAL_ENTROPY_CONSTANT: f64 = 1.418_938_533_204_672_7;

/// ½ log 2π.
pub const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// A well-mixed 64-bit seed derived from `seed` for one purpose (initial draws, guide
/// initialisation, the Laplace Hessian), with SplitMix64's finaliser, so that the random streams
/// of different purposes never coincide for one user seed.
pub fn derive_seed(seed: u64, purpose: u64) -> u64 {
    let mut z = seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Replaces the symmetric positive definite `n × n` row-major matrix `matrix` by its lower
/// Cholesky factor L (matrix = L Lᵀ), with zeros above the diagonal. Only the lower triangle of
/// the input is read. Returns the index of the first pivot that is not positive (or not finite)
/// when the matrix is not positive definite.
pub fn cholesky_in_place(matrix: &mut [f64], n: usize) -> Result<(), usize> {
    for j in 0..n {
        let mut pivot = matrix[j * n + j];
        for k in 0..j {
            pivot -= matrix[j * n + k] * matrix[j * n + k];
        }
        if !(pivot > 0.0 && pivot.is_finite()) {
            return Err(j);
        }
        let diagonal = pivot.sqrt();
        matrix[j * n + j] = diagonal;
        for i in (j + 1)..n {
            let mut sum = matrix[i * n + j];
            for k in 0..j {
                sum -= matrix[i * n + k] * matrix[j * n + k];
            }
            matrix[i * n + j] = sum / diagonal;
        }
        for column in (j + 1)..n {
            matrix[j * n + column] = 0.0;
        }
    }
    Ok(())
}

/// Writes into `inverse` the inverse of the matrix whose lower Cholesky factor is `factor`
/// (both `n × n` row-major): with M = L⁻¹ (lower triangular, by forward substitution),
/// (L Lᵀ)⁻¹ = Mᵀ M. `work` must hold `n × n` values.
pub fn inverse_from_cholesky(factor: &[f64], n: usize, work: &mut [f64], inverse: &mut [f64]) {
    // Forward substitution for each column c of M = L⁻¹: L m_c = e_c, where m_c is zero above c.
    for value in work.iter_mut() {
        *value = 0.0;
    }
    for c in 0..n {
        for i in c..n {
            let mut sum = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                sum -= factor[i * n + k] * work[k * n + c];
            }
            work[i * n + c] = sum / factor[i * n + i];
        }
    }
    // (Mᵀ M)_ab = Σ_k M_ka M_kb, where M_ka is zero unless k ≥ a.
    for a in 0..n {
        for b in 0..=a {
            let mut sum = 0.0;
            for k in a..n {
                sum += work[k * n + a] * work[k * n + b];
            }
            inverse[a * n + b] = sum;
            inverse[b * n + a] = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_and_its_inverse_agree() {
        for &x in &[-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 40.0] {
            let y = softplus(x);
            assert!(y > 0.0);
            assert!(
                (softplus_inverse(y) - x).abs() < 1e-9 * (1.0 + x.abs()),
                "x = {x}"
            );
        }
        assert_eq!(softplus(800.0), 800.0);
    }

    #[test]
    fn sigmoid_is_the_derivative_of_softplus() {
        for &x in &[-5.0, -0.3, 0.0, 1.2, 6.0] {
            let h = 1e-5;
            let numeric = (softplus(x + h) - softplus(x - h)) / (2.0 * h);
            let (value, slope) = softplus_with_slope(x);
            assert!((value - softplus(x)).abs() <= 4.0 * f64::EPSILON * softplus(x));
            assert!((numeric - slope).abs() < 1e-9);
            assert!((slope - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
        }
    }

    #[test]
    fn the_cheap_log1p_is_accurate() {
        let mut x: f64 = 1e-300;
        while x <= 1.0 {
            let exact = x.ln_1p();
            let cheap = ln_1p_non_negative(x);
            assert!(
                (cheap - exact).abs() <= 4.0 * f64::EPSILON * exact,
                "x = {x}"
            );
            x *= 1.37;
        }
    }

    #[test]
    fn normal_quantiles_match_reference_values() {
        // Φ⁻¹(0.95) = 1.6448536269514722 and Φ⁻¹(0.975) = 1.959963984540054 (scipy.stats.norm.ppf).
        assert!((standard_normal_quantile(0.95) - 1.644_853_626_951_472_2).abs() < 1e-12);
        assert!((standard_normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!(standard_normal_quantile(0.5).abs() < 1e-15);
        assert!((standard_normal_quantile(0.05) + 1.644_853_626_951_472_2).abs() < 1e-12);
    }

    #[test]
    fn constants_are_right() {
        let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        assert!((HALF_LOG_TWO_PI - half_log_two_pi).abs() < 1e-15);
        assert!((NORMAL_ENTROPY_CONSTANT - (0.5 + half_log_two_pi)).abs() < 1e-15);
    }

    #[test]
    fn cholesky_and_inverse_recover_a_known_matrix() {
        let matrix = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let mut factor = matrix;
        cholesky_in_place(&mut factor, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let product: f64 = (0..3).map(|k| factor[i * 3 + k] * factor[j * 3 + k]).sum();
                assert!((product - matrix[i * 3 + j]).abs() < 1e-12);
            }
        }
        let mut work = [0.0; 9];
        let mut inverse = [0.0; 9];
        inverse_from_cholesky(&factor, 3, &mut work, &mut inverse);
        for i in 0..3 {
            for j in 0..3 {
                let product: f64 = (0..3).map(|k| matrix[i * 3 + k] * inverse[k * 3 + j]).sum();
                let identity = if i == j { 1.0 } else { 0.0 };
                assert!((product - identity).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn cholesky_reports_the_failing_pivot() {
        let mut matrix = [1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky_in_place(&mut matrix, 2), Err(1));
    }

    #[test]
    fn derived_seeds_differ_by_purpose() {
        assert_ne!(derive_seed(1, 1), derive_seed(1, 2));
        assert_ne!(derive_seed(1, 1), derive_seed(2, 1));
        assert_eq!(derive_seed(5, 3), derive_seed(5, 3));
    }
}
