//! Branch-free elementary functions for loops over slices: the tape's sigmoid and softplus
//! kernels (`bdl-autodiff`) and the guide's per-coordinate passes in SVI (`bdl-infer`), so that
//! those loops vectorise. It is a crate of its own because the tape and inference must not
//! depend on each other.
//!
//! The C library's `exp` and `log1p` are exact to within an ulp but are function calls with
//! branches: in a logistic regression's likelihood (softplus of 5,000 logits, and the sigmoid its
//! gradient needs) they took about half of the sampler's time. Here eˣ uses the classic reduction
//! x = k ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 split in two parts, Cody and Waite), a degree-13
//! Taylor polynomial for eʳ (truncation error below 2e-17 relative) and 2ᵏ assembled from its
//! bits; log(1 + u) on [0, 1] uses log(1 + u) = 2 atanh(u / (2 + u)) and the atanh series, whose
//! argument is at most 1/3. Every step is arithmetic the compiler can put in vector registers.
//! log x splits x into 2ᵏ m with m in [√½, √2) from its bits and uses the same series for
//! log m = log(1 + (m − 1)), where m − 1 is exact. Measured against the C library their errors
//! stay within a few ulp (see the tests). Plain `exp` and `log` ops of the tape keep the C
//! library: alone in a loop, a polynomial is no faster than its call.

/// Defines a public kernel over slices that runs compiled for the machine's wider vectors when
/// it has them: on x86-64 with AVX2 and FMA (detected at run time; the result is cached by the
/// standard library), the body is inlined into a copy compiled with those features, so that its
/// loops use 256-bit registers instead of the baseline target's 128-bit SSE2 ones; elsewhere the
/// baseline copy runs. The results are the same bit for bit either way: Rust never contracts a
/// multiplication and an addition into a fused one, so the wide copy does the same operations on
/// more lanes at once.
macro_rules! wide_kernel {
    (
        $(#[$attribute:meta])*
        pub fn $name:ident($($argument:ident: $type:ty),* $(,)?) $(-> $output:ty)? $body:block
    ) => {
        $(#[$attribute])*
        pub fn $name($($argument: $type),*) $(-> $output)? {
            #[inline(always)]
            fn body($($argument: $type),*) $(-> $output)? $body
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    /// The body compiled with AVX2 and FMA.
                    #[allow(unsafe_code)]
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn wide($($argument: $type),*) $(-> $output)? {
                        body($($argument),*)
                    }
                    // SAFETY: the features `wide` is compiled for were detected on this
                    // processor just above, the only requirement of calling it.
                    #[allow(unsafe_code)]
                    return unsafe { wide($($argument),*) };
                }
            }
            body($($argument),*)
        }
    };
}

/// Independent partial sums in the reductions below, so that the compiler may keep them in
/// vector registers (a single running sum of doubles has to be added in order).
const LANES: usize = 8;

wide_kernel! {
    /// σ = softplus(ρ) = log(1 + e^ρ) and its slope sigmoid(ρ) for every raw value, in one pass:
    /// with e = e^−|ρ|, σ = max(ρ, 0) + log(1 + e), and sigmoid(ρ) = 1/(1 + e) for ρ ≥ 0,
    /// e/(1 + e) below. The three slices have the same length.
    pub fn softplus_with_slopes(raw: &[f64], values: &mut [f64], slopes: &mut [f64]) {
        for ((&x, value), slope) in raw.iter().zip(values.iter_mut()).zip(slopes.iter_mut()) {
            let e = exp(-x.abs());
            let positive = 1.0 / (1.0 + e);
            *slope = if x >= 0.0 { positive } else { e * positive };
            *value = x.max(0.0) + log1p_unit(e);
        }
    }
}

wide_kernel! {
    /// Σ log xᵢ over `values`, adding `weight / xᵢ` to each entry of `gradient` in the same pass
    /// (a diagonal normal's entropy and its gradient with respect to the scales). The sum is
    /// taken in [`LANES`] interleaved partial sums, then those in order.
    pub fn sum_ln_adding_inverses(values: &[f64], weight: f64, gradient: &mut [f64]) -> f64 {
        let mut partial = [0.0; LANES];
        let mut value_chunks = values.chunks_exact(LANES);
        let mut gradient_chunks = gradient.chunks_exact_mut(LANES);
        for (chunk, g) in value_chunks.by_ref().zip(gradient_chunks.by_ref()) {
            for lane in 0..LANES {
                partial[lane] += ln(chunk[lane]);
                g[lane] += weight / chunk[lane];
            }
        }
        let mut total: f64 = partial.iter().sum();
        for (&x, g) in value_chunks
            .remainder()
            .iter()
            .zip(gradient_chunks.into_remainder())
        {
            total += ln(x);
            *g += weight / x;
        }
        total
    }
}

wide_kernel! {
    /// Whether every value is finite: a double is infinite or NaN exactly when its exponent bits
    /// are all ones, so the test is an integer OR over the slice, which vectorises.
    pub fn all_finite(values: &[f64]) -> bool {
        let mut all_ones = 0u64;
        for value in values {
            all_ones |= u64::from(value.to_bits() & EXPONENT_BITS == EXPONENT_BITS);
        }
        all_ones == 0
    }
}

/// The exponent bits of a double.
const EXPONENT_BITS: u64 = 0x7ff0_0000_0000_0000;

/// The constants of one Adam update: θ ← θ − step_size · m / (√v · inverse_root_correction + ε),
/// after m ← β₁ m + (1 − β₁) g and v ← β₂ v + (1 − β₂) g², with g the gradient plus
/// weight_decay · θ.
#[derive(Clone, Copy, Debug)]
pub struct AdamUpdate {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// The learning rate over the first moment's bias correction, lr / (1 − β₁ᵗ).
    pub step_size: f64,
    /// 1 / √(1 − β₂ᵗ), the second moment's bias correction under the root.
    pub inverse_root_correction: f64,
    /// ε.
    pub epsilon: f64,
    /// The L2 weight decay λ.
    pub weight_decay: f64,
}

wide_kernel! {
    /// One Adam update of every coordinate in one pass (one square root and one division per
    /// coordinate); returns whether every updated parameter is finite. The four slices have the
    /// same length.
    pub fn adam_update(
        update: &AdamUpdate,
        params: &mut [f64],
        gradient: &[f64],
        first_moment: &mut [f64],
        second_moment: &mut [f64],
    ) -> bool {
        let AdamUpdate {
            beta1,
            beta2,
            step_size,
            inverse_root_correction,
            epsilon,
            weight_decay,
        } = *update;
        let mut all_ones = 0u64;
        for (((theta, &g), m), v) in params
            .iter_mut()
            .zip(gradient)
            .zip(first_moment.iter_mut())
            .zip(second_moment.iter_mut())
        {
            let g = g + weight_decay * *theta;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *theta -= step_size * *m / (v.sqrt() * inverse_root_correction + epsilon);
            all_ones |= u64::from(theta.to_bits() & EXPONENT_BITS == EXPONENT_BITS);
        }
        all_ones == 0
    }
}

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
pub fn exp(x: f64) -> f64 {
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

/// log(1 + u) for u in [0, 1] (callers pass e^−|x|), within 3 ulp of the C library; [`ln`] also
/// passes u in [−0.3, 0].
///
/// With s = u / (2 + u) ≤ 1/3, log(1 + u) = 2 atanh(s) = 2 (s + s³/3 + s⁵/5 + …); the series in
/// t = s² ≤ 1/9 is cut after t¹⁶/33, where the next term is below 2e-17 of the sum. For tiny u the
/// first term dominates, so the relative accuracy holds down to the smallest subnormal.
#[inline(always)]
pub fn log1p_unit(u: f64) -> f64 {
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

/// 2⁵², which brings a subnormal argument of [`ln`] into the normal range.
const TWO_TO_52: f64 = 4_503_599_627_370_496.0;

/// The natural logarithm, within 3 ulp of the C library's; −∞ at 0, NaN below 0 and for NaN,
/// +∞ at +∞.
///
/// With x = 2ᵉ m, m in [1, 2) read from the bits (subnormal x scaled by 2⁵² first), m above √2
/// is halved and e raised by one, so that m − 1 lies in [−0.29, 0.42] and is exact (Sterbenz);
/// then log x = e ln 2 + log(1 + (m − 1)) with [`log1p_unit`]'s series, whose argument
/// s = (m − 1)/(m + 1) is at most 0.18 in magnitude here. The exponent becomes a double by the
/// same rounding-constant trick as in [`exp`], so that no 64-bit integer conversion (which SSE2
/// and AVX2 lack) is needed.
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    let subnormal = x < f64::MIN_POSITIVE;
    let scaled = if subnormal { x * TWO_TO_52 } else { x };
    let bits = scaled.to_bits();
    let biased_exponent = (bits >> 52) & 0x7ff;
    let mantissa = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let high = mantissa > std::f64::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    // ROUNDER + n is exact for the small integers n here, so this is the exponent as a double.
    let exponent = f64::from_bits(ROUNDER.to_bits() + biased_exponent) - ROUNDER;
    let offset = if subnormal { 1023.0 + 52.0 } else { 1023.0 };
    let k = exponent - offset + if high { 1.0 } else { 0.0 };
    let value = k * LN_2_HIGH + (k * LN_2_LOW + log1p_unit(m - 1.0));
    if x > 0.0 && x < f64::INFINITY {
        value
    } else if x == 0.0 {
        f64::NEG_INFINITY
    } else if x == f64::INFINITY {
        x
    } else {
        f64::NAN
    }
}

/// The logistic function 1 / (1 + e^−x), evaluated without overflow for either sign of x:
/// with e = e^−|x|, σ(x) = 1 / (1 + e) for x ≥ 0 and e / (1 + e) otherwise. The choice is a
/// select, not a branch.
#[inline(always)]
pub fn sigmoid(x: f64) -> f64 {
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
pub fn softplus(x: f64) -> f64 {
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
    fn ln_agrees_with_the_c_library_within_three_ulp() {
        let mut worst = 0;
        // Decades from the subnormal range to near the largest double, with offsets that land
        // on both sides of √2 in the mantissa.
        let mut x = 1e-310_f64;
        while x < 1e300 {
            let root_two = std::f64::consts::SQRT_2;
            for factor in [
                1.0,
                1.000_000_1,
                1.25,
                root_two * 0.999_999,
                root_two * 1.000_001,
                1.9,
                2.7,
                7.3,
            ] {
                let value = x * factor;
                let (ours, reference) = (ln(value), value.ln());
                let distance = if reference == 0.0 {
                    u64::from(ours != 0.0)
                } else {
                    ours.to_bits().abs_diff(reference.to_bits())
                };
                worst = worst.max(distance);
            }
            x *= 13.7;
        }
        // Near 1, where log x is small and relative accuracy is hardest.
        for k in 1..2_000 {
            for value in [1.0 + f64::from(k) * 1e-4, 1.0 - f64::from(k) * 1e-4] {
                worst = worst.max(ulps(ln(value).abs(), value.ln().abs()));
            }
        }
        assert!(worst <= 3, "{worst} ulp");
    }

    #[test]
    fn kernels_agree_with_their_scalar_definitions() {
        let raw: Vec<f64> = (0..37).map(|i| f64::from(i) * 0.9 - 16.0).collect();
        let (mut values, mut slopes) = (vec![0.0; 37], vec![0.0; 37]);
        softplus_with_slopes(&raw, &mut values, &mut slopes);
        for ((&x, &value), &slope) in raw.iter().zip(&values).zip(&slopes) {
            assert_eq!(value, softplus(x), "{x}");
            assert!((slope - 1.0 / (1.0 + (-x).exp())).abs() <= 1e-15, "{x}");
        }
        let mut gradient = vec![1.0; 37];
        let total = sum_ln_adding_inverses(&values, 2.0, &mut gradient);
        let expected: f64 = values.iter().map(|v| v.ln()).sum();
        assert!((total - expected).abs() <= 1e-12 * expected.abs().max(1.0));
        for (&g, &v) in gradient.iter().zip(&values) {
            assert_eq!(g, 1.0 + 2.0 / v);
        }
        assert!(all_finite(&values));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut with_bad = values.clone();
            with_bad[29] = bad;
            assert!(!all_finite(&with_bad));
        }
    }

    #[test]
    fn ln_limits_are_those_of_the_c_library() {
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f64::NAN).is_nan());
        assert!(ulps(ln(f64::MAX), f64::MAX.ln()) <= 1);
        assert!(ulps(-ln(f64::from_bits(1)), -f64::from_bits(1).ln()) <= 1);
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
