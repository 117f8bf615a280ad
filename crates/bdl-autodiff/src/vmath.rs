//! Branch-free elementary functions for the sigmoid and softplus kernels, so that loops over
//! tensors vectorise.
//!
//! The C library's `exp` and `log1p` are exact to within an ulp but are function calls with
//! branches: in a logistic regression's likelihood (softplus of 5,000 logits, and the sigmoid its
//! gradient needs) they took about half of the sampler's time. Here eˣ uses the classic reduction
//! x = k ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 split in two parts, Cody and Waite), a degree-13
//! Taylor polynomial for eʳ (truncation error below 2e-17 relative) and 2ᵏ assembled from its
//! bits; log(1 + u) on [0, 1] uses log(1 + u) = 2 atanh(u / (2 + u)) and the atanh series, whose
//! argument is at most 1/3. Every step is arithmetic the compiler can put in vector registers.
//! Measured against the C library their errors stay within a few ulp (see the tests). Plain `exp`
//! and `log` ops keep the C library: alone in a loop, a polynomial is no faster than its call.

/// log₂ e.
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2, high part: its last 11 bits are zero, so k · LN_2_HIGH is exact for |k| < 2¹¹.
const LN_2_HIGH: f64 = 6.931_471_803_691_238e-1;
/// ln 2 − LN_2_HIGH.
const LN_2_LOW: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 · 2⁵²: adding and subtracting it rounds a double of magnitude below 2⁵¹ to an integer.
const ROUNDER: f64 = 6_755_399_441_055_744.0;
/// Above this, eˣ overflows to +∞.
const MAX_ARGUMENT: f64 = 709.782_712_893_384;
/// Below this, eˣ underflows to 0.
const MIN_ARGUMENT: f64 = -745.133_219_101_941_1;

/// 2⁻²⁰⁰, which brings the result back from the scaled range used for subnormal results.
const TWO_TO_MINUS_200: f64 = 6.223_015_277_861_142e-61;

/// eˣ, within 2 ulp of the correctly rounded value; +∞ above 709.78, 0 below −745.13, NaN for
/// NaN.
///
/// Adding 1.5 · 2⁵² to x log₂ e rounds it to the integer k and leaves k in the low bits of the
/// sum; 2ᵏ is then assembled by integer arithmetic on those bits. Results below the normal range
/// (k < −1022) are computed as 2ᵏ⁺²⁰⁰ and scaled back by 2⁻²⁰⁰. Integer additions, shifts and
/// selects on 64-bit lanes are all there is, so the loop vectorises with plain SSE2.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let clamped = x.clamp(MIN_ARGUMENT, MAX_ARGUMENT);
    let shifted = clamped * LOG2_E + ROUNDER;
    let k = shifted - ROUNDER;
    let r = (clamped - k * LN_2_HIGH) - k * LN_2_LOW;
    // Taylor series of eʳ to r¹³/13!, by Estrin's scheme: pairs of terms first, then pairs of
    // pairs, so that the additions form a shallow tree instead of Horner's chain of fourteen
    // dependent steps (the loop is bound by that latency, not by the number of operations).
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let pair = |even: f64, odd: f64| even + odd * r;
    let q0 = pair(1.0, 1.0);
    let q1 = pair(1.0 / 2.0, 1.0 / 6.0);
    let q2 = pair(1.0 / 24.0, 1.0 / 120.0);
    let q3 = pair(1.0 / 720.0, 1.0 / 5_040.0);
    let q4 = pair(1.0 / 40_320.0, 1.0 / 362_880.0);
    let q5 = pair(1.0 / 3_628_800.0, 1.0 / 39_916_800.0);
    let q6 = pair(1.0 / 479_001_600.0, 1.0 / 6_227_020_800.0);
    let low = (q0 + q1 * r2) + (q2 + q3 * r2) * r4;
    let high = (q4 + q5 * r2) + q6 * r4;
    let p = low + high * r8;
    // k as a two's-complement integer, from the low bits of the rounding sum.
    let k_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    // 2ᵏ must be a normal double: below the normal range compute 2ᵏ⁺²⁰⁰ · 2⁻²⁰⁰, and at the top
    // (k = 1024, where p < 1) 2ᵏ⁻¹ · 2.
    let subnormal = k < -1022.0;
    let top = k > 1023.0;
    let bias: u64 = if subnormal {
        1023 + 200
    } else if top {
        1022
    } else {
        1023
    };
    let correction = if subnormal {
        TWO_TO_MINUS_200
    } else if top {
        2.0
    } else {
        1.0
    };
    let scale = f64::from_bits(k_bits.wrapping_add(bias) << 52);
    let value = p * scale * correction;
    if x > MAX_ARGUMENT {
        f64::INFINITY
    } else if x < MIN_ARGUMENT {
        0.0
    } else if x.is_nan() {
        x
    } else {
        value
    }
}

/// log(1 + u) for u in [0, 1] (callers pass e^−|x|), within 3 ulp of the C library.
///
/// With s = u / (2 + u) ≤ 1/3, log(1 + u) = 2 atanh(s) = 2 (s + s³/3 + s⁵/5 + …); the series in
/// t = s² ≤ 1/9 is cut after t¹⁶/33, where the next term is below 2e-17 of the sum. For tiny u the
/// first term dominates, so the relative accuracy holds down to the smallest subnormal.
#[inline(always)]
pub(crate) fn log1p_unit(u: f64) -> f64 {
    let s = u / (2.0 + u);
    let t = s * s;
    // Σ tⁿ / (2n + 1) for n = 0..16 by Estrin's scheme (see `exp`).
    let t2 = t * t;
    let t4 = t2 * t2;
    let t8 = t4 * t4;
    let t16 = t8 * t8;
    let pair = |n: f64| 1.0 / (2.0 * n + 1.0) + t * (1.0 / (2.0 * n + 3.0));
    let quad = |n: f64| pair(n) + pair(n + 2.0) * t2;
    let octet = |n: f64| quad(n) + quad(n + 4.0) * t4;
    let p = (octet(0.0) + octet(8.0) * t8) + t16 * (1.0 / 33.0);
    2.0 * s * p
}

/// The logistic function 1 / (1 + e^−x), evaluated without overflow for either sign of x:
/// with e = e^−|x|, σ(x) = 1 / (1 + e) for x ≥ 0 and e / (1 + e) otherwise. The choice is a
/// select, not a branch.
#[inline(always)]
pub(crate) fn sigmoid(x: f64) -> f64 {
    let e = exp(-x.abs());
    let positive = 1.0 / (1.0 + e);
    if x >= 0.0 {
        positive
    } else {
        e * positive
    }
}

/// log(1 + eˣ) = max(x, 0) + log1p(e^−|x|), which neither overflows for large x nor loses
/// precision for very negative x.
#[inline(always)]
pub(crate) fn softplus(x: f64) -> f64 {
    x.max(0.0) + log1p_unit(exp(-x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in units in the last place between two positive doubles.
    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn agrees_with_the_c_library_within_two_ulp() {
        let mut worst = 0;
        let mut x = -745.0;
        while x < 709.7 {
            for offset in [0.0, 1e-9, 0.123_456_789, 0.5, std::f64::consts::LN_2] {
                let value = x + offset;
                let (ours, reference) = (exp(value), value.exp());
                if reference > 0.0 && reference.is_normal() {
                    worst = worst.max(ulps(ours, reference));
                }
            }
            x += 0.731;
        }
        assert!(worst <= 2, "{worst} ulp");
        for value in [-1e-300, 0.0, 1e-300, 1e-8, -1e-8, 1.0, -1.0] {
            assert!(ulps(exp(value), value.exp()) <= 1, "{value}");
        }
    }

    #[test]
    fn limits_are_those_of_the_c_library() {
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(-746.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(exp(f64::NAN).is_nan());
        // The subnormal range keeps its relative accuracy to about its own resolution.
        let tiny = -740.0;
        assert!((exp(tiny) - tiny.exp()).abs() <= 4.0 * f64::from_bits(1));
    }

    #[test]
    fn log1p_agrees_with_the_c_library_within_three_ulp() {
        let mut worst = 0;
        let mut u = 1.0_f64;
        while u > 1e-320 {
            for factor in [1.0, 0.987_654_321, 0.5, 0.333_333, 0.123] {
                let value = u * factor;
                worst = worst.max(ulps(log1p_unit(value), value.ln_1p()));
            }
            u *= 0.83;
        }
        assert!(worst <= 3, "{worst} ulp");
        assert_eq!(log1p_unit(0.0), 0.0);
    }

    #[test]
    fn sigmoid_and_softplus_agree_with_the_c_library() {
        let mut x = -800.0_f64;
        while x < 800.0 {
            let sigmoid_reference = if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                x.exp() / (1.0 + x.exp())
            };
            let softplus_reference = x.max(0.0) + (-x.abs()).exp().ln_1p();
            let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1e-300);
            assert!(close(sigmoid(x), sigmoid_reference), "sigmoid({x})");
            assert!(close(softplus(x), softplus_reference), "softplus({x})");
            x += 0.377;
        }
        assert_eq!(sigmoid(f64::INFINITY), 1.0);
        assert_eq!(sigmoid(f64::NEG_INFINITY), 0.0);
        assert_eq!(softplus(f64::NEG_INFINITY), 0.0);
        assert_eq!(softplus(f64::INFINITY), f64::INFINITY);
        assert!(sigmoid(f64::NAN).is_nan() && softplus(f64::NAN).is_nan());
    }
}
