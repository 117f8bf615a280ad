//! Special functions for `lgamma`, `digamma`, `erf` and `erfc` and their derivatives.
//!
//! `ln_gamma` and `digamma` come from statrs (Lanczos and asymptotic series, about 15 correct
//! digits for positive arguments); `trigamma`, the derivative of digamma, is computed here with
//! the recurrence ψ₁(x) = ψ₁(x + 1) + 1/x² up to x ≥ 20 and then the asymptotic series.

use std::f64::consts::PI;

/// log |Γ(x)|, defined for every real x except the poles at 0, −1, −2, … (where it is +∞).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx), so log|Γ(x)| = log π − log|sin(πx)| − log Γ(1 − x).
        PI.ln() - (PI * x).sin().abs().ln() - statrs::function::gamma::ln_gamma(1.0 - x)
    } else {
        statrs::function::gamma::ln_gamma(x)
    }
}

/// The error function, from the `libm` crate (musl's implementation, within an ulp).
pub(crate) fn erf(x: f64) -> f64 {
    libm::erf(x)
}

/// The complementary error function 1 − erf x, computed directly so that it keeps its relative
/// accuracy in the upper tail.
pub(crate) fn erfc(x: f64) -> f64 {
    libm::erfc(x)
}

/// ψ(x) = d/dx log Γ(x).
pub(crate) fn digamma(x: f64) -> f64 {
    statrs::function::gamma::digamma(x)
}

/// ψ₁(x) = d/dx ψ(x) = Σₖ 1/(x + k)².
pub(crate) fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x <= 0.0 && x == x.floor() {
        return f64::INFINITY;
    }
    if x < 0.0 {
        // Reflection: ψ₁(1 − x) + ψ₁(x) = π² / sin²(πx).
        let sine = (PI * x).sin();
        return PI * PI / (sine * sine) - trigamma(1.0 - x);
    }
    let mut result = 0.0;
    let mut z = x;
    while z < 20.0 {
        result += 1.0 / (z * z);
        z += 1.0;
    }
    // ψ₁(z) ~ 1/z + 1/(2z²) + 1/(6z³) − 1/(30z⁵) + 1/(42z⁷) − 1/(30z⁹) + 5/(66z¹¹) for large z.
    let r = 1.0 / z;
    let r2 = r * r;
    let tail = r
        * r2
        * (1.0 / 6.0 - r2 * (1.0 / 30.0 - r2 * (1.0 / 42.0 - r2 * (1.0 / 30.0 - r2 * 5.0 / 66.0))));
    result + r + 0.5 * r2 + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions_match_known_values() {
        // Γ(0.5) = √π, ψ(1) = −γ, ψ₁(1) = π²/6, ψ₁(0.5) = π²/2.
        let euler_gamma = 0.577_215_664_901_532_9;
        assert!((ln_gamma(0.5) - 0.5 * PI.ln()).abs() < 1e-14);
        assert!((ln_gamma(-0.5) - (2.0 * PI.sqrt()).ln()).abs() < 1e-14);
        assert!((digamma(1.0) + euler_gamma).abs() < 1e-14);
        assert!((trigamma(1.0) - PI * PI / 6.0).abs() < 1e-14);
        assert!((trigamma(0.5) - PI * PI / 2.0).abs() < 1e-13);
        assert!((trigamma(-0.5) - (PI * PI - PI * PI / 2.0 + 4.0)).abs() < 1e-12);
        assert_eq!(trigamma(-2.0), f64::INFINITY);
    }
}
