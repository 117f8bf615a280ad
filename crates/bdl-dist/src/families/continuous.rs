//! Scalar continuous families (and the point mass and improper priors): parameter checks,
//! log-densities on the tape, draws, moments and supports.
//!
//! Parameters arrive in the slot order of [`super::FAMILIES`]. Log-densities are written with
//! z = (x − loc) / scale; each states its formula. Where the formula is not finite for every
//! real x, the value is first replaced by a point inside the support wherever it lies outside
//! (so neither value nor gradient sees a log of a negative number), and the result is then set to
//! −∞ there.

use super::{finite, positive, require, Family, Moment};
use crate::constraint::{Bound, Constraint};
use crate::distribution::Param;
use crate::math::{self, constant, mask_log_prob, select_or};
use crate::DistError;
use bdl_autodiff::{Tape, Var};
use rand::{Rng, RngCore};
use rand_distr::{Distribution as _, Exp1, StandardNormal};
use statrs::function::erf::{erfc, erfc_inv};
use std::f64::consts::{LN_2, PI, SQRT_2};

/// ½ log(2π).
const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Checks the parameter values of a scalar continuous family.
pub(crate) fn check(family: Family, tape: &Tape, params: &[Param]) -> Result<(), DistError> {
    let scale_families = [
        Family::Normal,
        Family::LogNormal,
        Family::Cauchy,
        Family::Laplace,
        Family::Logistic,
    ];
    match family {
        _ if scale_families.contains(&family) => {
            require(family, tape, &params[0], finite, "a finite number")?;
            require(family, tape, &params[1], positive, "greater than 0")
        }
        Family::HalfNormal | Family::HalfCauchy => {
            require(family, tape, &params[0], positive, "greater than 0")
        }
        Family::Exponential => require(family, tape, &params[0], positive, "greater than 0"),
        Family::Gamma | Family::InverseGamma | Family::Beta => {
            require(family, tape, &params[0], positive, "greater than 0")?;
            require(family, tape, &params[1], positive, "greater than 0")
        }
        Family::StudentT => {
            require(family, tape, &params[0], positive, "greater than 0")?;
            require(family, tape, &params[1], finite, "a finite number")?;
            require(family, tape, &params[2], positive, "greater than 0")
        }
        Family::Uniform => {
            require(family, tape, &params[0], finite, "a finite number")?;
            require(family, tape, &params[1], finite, "a finite number")?;
            require_ordered(family, tape, &params[0], &params[1], "greater than `low`")
        }
        Family::TruncatedNormal => {
            require(family, tape, &params[0], finite, "a finite number")?;
            require(family, tape, &params[1], positive, "greater than 0")?;
            require(
                family,
                tape,
                &params[2],
                |x| x < f64::INFINITY,
                "less than +inf",
            )?;
            require(
                family,
                tape,
                &params[3],
                |x| x > f64::NEG_INFINITY,
                "greater than -inf",
            )?;
            require_ordered(family, tape, &params[2], &params[3], "greater than `low`")
        }
        Family::Delta => require(
            family,
            tape,
            &params[1],
            |x| x < f64::INFINITY,
            "a finite number or -inf",
        ),
        _ => Ok(()),
    }
}

/// Fails unless `high > low` elementwise after broadcasting.
fn require_ordered(
    family: Family,
    tape: &Tape,
    low: &Param,
    high: &Param,
    requirement: &'static str,
) -> Result<(), DistError> {
    let lows = tape.value(low.var);
    let highs = tape.value(high.var);
    let shape = crate::shape::broadcast_shapes(lows.shape(), highs.shape()).ok_or_else(|| {
        DistError::ShapeMismatch {
            family: family.name(),
            what: "`low` and `high`",
            left: lows.shape().to_vec(),
            right: highs.shape().to_vec(),
        }
    })?;
    let spread_low = crate::shape::broadcast_data(lows, &shape).unwrap_or_default();
    let spread_high = crate::shape::broadcast_data(highs, &shape).unwrap_or_default();
    match spread_low
        .iter()
        .zip(&spread_high)
        .find(|(l, h)| h.partial_cmp(l) != Some(std::cmp::Ordering::Greater))
    {
        Some((_, &value)) => Err(DistError::InvalidParameter {
            family: family.name(),
            parameter: high.name,
            value,
            requirement,
        }),
        None => Ok(()),
    }
}

/// z = (x − loc) / scale.
fn standardize(tape: &mut Tape, x: Var, loc: Var, scale: Var) -> Result<Var, DistError> {
    let centred = tape.sub(x, loc)?;
    Ok(tape.div(centred, scale)?)
}

/// `in_support` and `x` with outside elements replaced by `inside`, for formulas that are not
/// finite everywhere.
fn guard(tape: &mut Tape, in_support: Var, x: Var, inside: f64) -> Result<Var, DistError> {
    select_or(tape, in_support, x, inside)
}

/// 1 where `x > bound` (constant bound), else 0.
fn above(tape: &mut Tape, x: Var, bound: f64) -> Result<Var, DistError> {
    let bound = constant(tape, bound);
    Ok(tape.gt(x, bound)?)
}

/// 1 where `x ≥ bound` (constant bound), else 0.
fn at_least(tape: &mut Tape, x: Var, bound: f64) -> Result<Var, DistError> {
    let bound = constant(tape, bound);
    Ok(tape.ge(x, bound)?)
}

/// The log-density of a scalar continuous family at `x`.
pub(crate) fn log_prob(
    family: Family,
    tape: &mut Tape,
    params: &[Param],
    x: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    let p = |slot: usize| params[slot].var;
    match family {
        Family::Normal => {
            // log N(x; μ, σ) = −z²/2 − log σ − ½ log 2π.
            let z = standardize(tape, x, p(0), p(1))?;
            normal_kernel(tape, z, p(1))
        }
        Family::HalfNormal => {
            // log 2 + log N(x; 0, σ) for x ≥ 0.
            let z = tape.div(x, p(0))?;
            let normal = normal_kernel(tape, z, p(0))?;
            let lp = tape.add_scalar(normal, LN_2);
            finish(tape, lp, x, check_support, |tape, x| at_least(tape, x, 0.0))
        }
        Family::LogNormal => {
            // log N(log x; μ, σ) − log x for x > 0.
            let inside = above(tape, x, 0.0)?;
            let safe = guard(tape, inside, x, 1.0)?;
            let log_x = tape.log(safe);
            let z = standardize(tape, log_x, p(0), p(1))?;
            let normal = normal_kernel(tape, z, p(1))?;
            let lp = tape.sub(normal, log_x)?;
            mask(tape, lp, inside, check_support)
        }
        Family::Uniform => {
            // −log(high − low) on [low, high].
            let width = tape.sub(p(1), p(0))?;
            let log_width = tape.log(width);
            let lp = tape.neg(log_width);
            // The density does not depend on x, but its shape does.
            let zero = tape.mul_scalar(x, 0.0);
            let lp = tape.add(lp, zero)?;
            if !check_support {
                return Ok(lp);
            }
            let above_low = tape.ge(x, p(0))?;
            let below_high = tape.le(x, p(1))?;
            let inside = tape.and(above_low, below_high)?;
            mask_log_prob(tape, inside, lp)
        }
        Family::Exponential => {
            // log λ − λ x for x ≥ 0.
            let log_rate = tape.log(p(0));
            let rate_x = tape.mul(p(0), x)?;
            let lp = tape.sub(log_rate, rate_x)?;
            finish(tape, lp, x, check_support, |tape, x| at_least(tape, x, 0.0))
        }
        Family::Gamma => {
            // α log β + (α − 1) log x − β x − log Γ(α) for x > 0.
            let inside = above(tape, x, 0.0)?;
            let safe = guard(tape, inside, x, 1.0)?;
            let (alpha, beta) = (p(0), p(1));
            let log_beta = tape.log(beta);
            let first = tape.mul(alpha, log_beta)?;
            let alpha_minus_one = tape.add_scalar(alpha, -1.0);
            let log_x = tape.log(safe);
            let second = tape.mul(alpha_minus_one, log_x)?;
            let third = tape.mul(beta, safe)?;
            let lgamma = tape.lgamma(alpha);
            let sum = tape.add(first, second)?;
            let sum = tape.sub(sum, third)?;
            let lp = tape.sub(sum, lgamma)?;
            mask(tape, lp, inside, check_support)
        }
        Family::InverseGamma => {
            // α log β − (α + 1) log x − β / x − log Γ(α) for x > 0.
            let inside = above(tape, x, 0.0)?;
            let safe = guard(tape, inside, x, 1.0)?;
            let (alpha, beta) = (p(0), p(1));
            let log_beta = tape.log(beta);
            let first = tape.mul(alpha, log_beta)?;
            let alpha_plus_one = tape.add_scalar(alpha, 1.0);
            let log_x = tape.log(safe);
            let second = tape.mul(alpha_plus_one, log_x)?;
            let third = tape.div(beta, safe)?;
            let lgamma = tape.lgamma(alpha);
            let sum = tape.sub(first, second)?;
            let sum = tape.sub(sum, third)?;
            let lp = tape.sub(sum, lgamma)?;
            mask(tape, lp, inside, check_support)
        }
        Family::Beta => {
            // (a − 1) log x + (b − 1) log(1 − x) − log B(a, b) for 0 < x < 1.
            let positive_x = above(tape, x, 0.0)?;
            let one = constant(tape, 1.0);
            let below_one = tape.lt(x, one)?;
            let inside = tape.and(positive_x, below_one)?;
            let safe = guard(tape, inside, x, 0.5)?;
            let (a, b) = (p(0), p(1));
            let log_x = tape.log(safe);
            let minus_x = tape.neg(safe);
            let log_one_minus_x = tape.log1p(minus_x);
            let a_minus_one = tape.add_scalar(a, -1.0);
            let b_minus_one = tape.add_scalar(b, -1.0);
            let first = tape.mul(a_minus_one, log_x)?;
            let second = tape.mul(b_minus_one, log_one_minus_x)?;
            let log_beta = math::log_beta(tape, a, b)?;
            let sum = tape.add(first, second)?;
            let lp = tape.sub(sum, log_beta)?;
            mask(tape, lp, inside, check_support)
        }
        Family::Cauchy => {
            // −log π − log σ − log(1 + z²).
            let z = standardize(tape, x, p(0), p(1))?;
            cauchy_kernel(tape, z, p(1))
        }
        Family::HalfCauchy => {
            // log 2 + log Cauchy(x; 0, σ) for x ≥ 0.
            let z = tape.div(x, p(0))?;
            let cauchy = cauchy_kernel(tape, z, p(0))?;
            let lp = tape.add_scalar(cauchy, LN_2);
            finish(tape, lp, x, check_support, |tape, x| at_least(tape, x, 0.0))
        }
        Family::StudentT => {
            // log Γ((ν+1)/2) − log Γ(ν/2) − ½ log(νπ) − log σ − (ν+1)/2 · log(1 + z²/ν).
            let (nu, loc, scale) = (p(0), p(1), p(2));
            let z = standardize(tape, x, loc, scale)?;
            let z_squared = tape.square(z);
            let ratio = tape.div(z_squared, nu)?;
            let log_term = tape.log1p(ratio);
            let nu_plus_one = tape.add_scalar(nu, 1.0);
            let half_nu_plus_one = tape.mul_scalar(nu_plus_one, 0.5);
            let tail = tape.mul(half_nu_plus_one, log_term)?;
            let lgamma_upper = tape.lgamma(half_nu_plus_one);
            let half_nu = tape.mul_scalar(nu, 0.5);
            let lgamma_lower = tape.lgamma(half_nu);
            let nu_pi = tape.mul_scalar(nu, PI);
            let log_nu_pi = tape.log(nu_pi);
            let half_log_nu_pi = tape.mul_scalar(log_nu_pi, 0.5);
            let log_scale = tape.log(scale);
            let lp = tape.sub(lgamma_upper, lgamma_lower)?;
            let lp = tape.sub(lp, half_log_nu_pi)?;
            let lp = tape.sub(lp, log_scale)?;
            Ok(tape.sub(lp, tail)?)
        }
        Family::Laplace => {
            // −log(2σ) − |x − μ| / σ.
            let z = standardize(tape, x, p(0), p(1))?;
            let magnitude = tape.abs(z);
            let log_scale = tape.log(p(1));
            let lp = tape.add(magnitude, log_scale)?;
            let lp = tape.neg(lp);
            Ok(tape.add_scalar(lp, -LN_2))
        }
        Family::Logistic => {
            // −z − 2 log(1 + e^{−z}) − log σ, with log(1 + e^{−z}) = softplus(−z).
            let z = standardize(tape, x, p(0), p(1))?;
            let minus_z = tape.neg(z);
            let softplus = tape.softplus(minus_z);
            let twice = tape.mul_scalar(softplus, 2.0);
            let log_scale = tape.log(p(1));
            let lp = tape.sub(minus_z, twice)?;
            Ok(tape.sub(lp, log_scale)?)
        }
        Family::TruncatedNormal => truncated_normal_log_prob(tape, params, x, check_support),
        Family::Delta => {
            // log_density where x = v, −∞ elsewhere. Shape: the broadcast of x and the parameters.
            let zero = tape.mul_scalar(x, 0.0);
            let lp = tape.add(p(1), zero)?;
            let equal = tape.eq(x, p(0))?;
            mask_log_prob(tape, equal, lp)
        }
        Family::Flat => Ok(tape.mul_scalar(x, 0.0)),
        Family::FlatPositive => {
            // 0 on (0, ∞); the product with 0 gives the shape of x.
            let inside = above(tape, x, 0.0)?;
            let safe = guard(tape, inside, x, 1.0)?;
            let lp = tape.mul_scalar(safe, 0.0);
            mask(tape, lp, inside, check_support)
        }
        _ => Err(DistError::UnknownFamily {
            name: family.name().to_string(),
        }),
    }
}

/// −z²/2 − log σ − ½ log 2π.
fn normal_kernel(tape: &mut Tape, z: Var, scale: Var) -> Result<Var, DistError> {
    let z_squared = tape.square(z);
    let half = tape.mul_scalar(z_squared, -0.5);
    let log_scale = tape.log(scale);
    let lp = tape.sub(half, log_scale)?;
    Ok(tape.add_scalar(lp, -HALF_LOG_TWO_PI))
}

/// −log π − log σ − log(1 + z²).
fn cauchy_kernel(tape: &mut Tape, z: Var, scale: Var) -> Result<Var, DistError> {
    let z_squared = tape.square(z);
    let log_term = tape.log1p(z_squared);
    let log_scale = tape.log(scale);
    let lp = tape.add(log_term, log_scale)?;
    let lp = tape.neg(lp);
    Ok(tape.add_scalar(lp, -PI.ln()))
}

/// Applies the support mask when asked, for formulas finite at every real x.
fn finish(
    tape: &mut Tape,
    lp: Var,
    x: Var,
    check_support: bool,
    in_support: impl Fn(&mut Tape, Var) -> Result<Var, DistError>,
) -> Result<Var, DistError> {
    if !check_support {
        return Ok(lp);
    }
    let inside = in_support(tape, x)?;
    mask_log_prob(tape, inside, lp)
}

/// Sets `lp` to −∞ outside the support when asked.
fn mask(tape: &mut Tape, lp: Var, inside: Var, check_support: bool) -> Result<Var, DistError> {
    if check_support {
        mask_log_prob(tape, inside, lp)
    } else {
        Ok(lp)
    }
}

/// Stands for an infinite standardized bound: far enough that Φ there is 0 or 1 to double
/// precision, small enough that its square stays finite.
const STANDARDIZED_INFINITY: f64 = 1e100;

/// The standardized bound (b − μ)/σ, with ±∞ bounds replaced by ±[`STANDARDIZED_INFINITY`]
/// before any arithmetic so that no gradient meets an infinity.
fn standardized_bound(
    tape: &mut Tape,
    bound: Var,
    loc: Var,
    scale: Var,
    sign: f64,
) -> Result<Var, DistError> {
    let is_finite = math::is_finite(tape, bound)?;
    let safe = guard(tape, is_finite, bound, 0.0)?;
    let z = standardize(tape, safe, loc, scale)?;
    select_or(tape, is_finite, z, sign * STANDARDIZED_INFINITY)
}

/// log N(x; μ, σ) − log(Φ(β) − Φ(α)) on [low, high], with α, β the standardized bounds.
fn truncated_normal_log_prob(
    tape: &mut Tape,
    params: &[Param],
    x: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    let (loc, scale, low, high) = (params[0].var, params[1].var, params[2].var, params[3].var);
    let z = standardize(tape, x, loc, scale)?;
    let normal = normal_kernel(tape, z, scale)?;
    let alpha = standardized_bound(tape, low, loc, scale, -1.0)?;
    let beta = standardized_bound(tape, high, loc, scale, 1.0)?;
    let log_mass = math::log_ndtr_difference(tape, alpha, beta)?;
    let lp = tape.sub(normal, log_mass)?;
    if !check_support {
        return Ok(lp);
    }
    let above_low = tape.ge(x, low)?;
    let below_high = tape.le(x, high)?;
    let inside = tape.and(above_low, below_high)?;
    mask_log_prob(tape, inside, lp)
}

/// One draw of a scalar continuous family with parameter values `p` (slot order).
pub(crate) fn draw(family: Family, p: &[f64], rng: &mut dyn RngCore) -> Result<f64, DistError> {
    let normal = |rng: &mut dyn RngCore| -> f64 { StandardNormal.sample(rng) };
    let value = match family {
        Family::Normal => p[0] + p[1] * normal(rng),
        Family::HalfNormal => (p[0] * normal(rng)).abs(),
        Family::LogNormal => (p[0] + p[1] * normal(rng)).exp(),
        Family::Uniform => p[0] + (p[1] - p[0]) * rng.random::<f64>(),
        Family::Exponential => {
            let e: f64 = Exp1.sample(rng);
            e / p[0]
        }
        Family::Gamma => gamma_draw(family, p[0], rng)? / p[1],
        Family::InverseGamma => p[1] / gamma_draw(family, p[0], rng)?,
        Family::Beta => {
            // X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b), in logs so that small
            // concentrations do not give 0/0.
            let log_x = log_gamma_draw(family, p[0], rng)?;
            let log_y = log_gamma_draw(family, p[1], rng)?;
            let log_total = log_x.max(log_y) + (-(log_x - log_y).abs()).exp().ln_1p();
            (log_x - log_total).exp()
        }
        Family::Cauchy => p[0] + p[1] * standard_cauchy(rng),
        Family::HalfCauchy => (p[0] * standard_cauchy(rng)).abs(),
        Family::StudentT => {
            // Z / √(V/ν) with V ~ χ²(ν) = 2 Gamma(ν/2).
            let chi_squared = 2.0 * gamma_draw(family, 0.5 * p[0], rng)?;
            p[1] + p[2] * normal(rng) / (chi_squared / p[0]).sqrt()
        }
        Family::Laplace => {
            // Inverse CDF from u ∈ (−½, ½): μ − σ sign(u) log(1 − 2|u|).
            let u = open_unit(rng) - 0.5;
            p[0] - p[1] * u.signum() * (-2.0 * u.abs()).ln_1p()
        }
        Family::Logistic => {
            let u = open_unit(rng);
            p[0] + p[1] * (u.ln() - (-u).ln_1p())
        }
        Family::TruncatedNormal => {
            p[0] + p[1] * truncated_standard_normal((p[2] - p[0]) / p[1], (p[3] - p[0]) / p[1], rng)
        }
        Family::Delta => p[0],
        _ => {
            return Err(DistError::NotSampleable {
                family: family.name(),
            })
        }
    };
    Ok(value)
}

/// A uniform draw from the open interval (0, 1).
pub(crate) fn open_unit(rng: &mut dyn RngCore) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            return u;
        }
    }
}

/// A standard Cauchy draw, tan(π(u − ½)).
fn standard_cauchy(rng: &mut dyn RngCore) -> f64 {
    (PI * (open_unit(rng) - 0.5)).tan()
}

/// A Gamma(shape, 1) draw, kept strictly positive.
pub(crate) fn gamma_draw(
    family: Family,
    shape: f64,
    rng: &mut dyn RngCore,
) -> Result<f64, DistError> {
    Ok(log_gamma_draw(family, shape, rng)?
        .exp()
        .max(f64::MIN_POSITIVE))
}

/// The logarithm of a Gamma(shape, 1) draw. For shape < 1 it uses
/// Gamma(a) = Gamma(a + 1) · U^{1/a}, in logs, so tiny shapes do not underflow to log 0.
pub(crate) fn log_gamma_draw(
    family: Family,
    shape: f64,
    rng: &mut dyn RngCore,
) -> Result<f64, DistError> {
    let invalid = || DistError::InvalidParameter {
        family: family.name(),
        parameter: "concentration",
        value: shape,
        requirement: "greater than 0",
    };
    if shape < 1.0 {
        let boosted = rand_distr::Gamma::new(shape + 1.0, 1.0).map_err(|_| invalid())?;
        let x: f64 = boosted.sample(rng);
        Ok(x.ln() + open_unit(rng).ln() / shape)
    } else {
        let gamma = rand_distr::Gamma::new(shape, 1.0).map_err(|_| invalid())?;
        let x: f64 = gamma.sample(rng);
        Ok(x.ln())
    }
}

/// Φ(z) from statrs' erfc.
pub(crate) fn ndtr(z: f64) -> f64 {
    0.5 * erfc(-z / SQRT_2)
}

/// Φ⁻¹(p) from statrs' inverse erfc.
fn ndtri(p: f64) -> f64 {
    -SQRT_2 * erfc_inv(2.0 * p)
}

/// A standard normal draw restricted to [a, b], by the inverse distribution function. The
/// interval is first reflected so that it lies mostly below zero, where Φ keeps full relative
/// precision in its tail.
fn truncated_standard_normal(a: f64, b: f64, rng: &mut dyn RngCore) -> f64 {
    if a + b > 0.0 {
        return -truncated_standard_normal(-b, -a, rng);
    }
    let (low, high) = (ndtr(a), ndtr(b));
    let z = ndtri(low + rng.random::<f64>() * (high - low));
    z.clamp(a, b)
}

/// The mean or variance of a scalar continuous family at parameter values `p`.
pub(crate) fn moment(family: Family, p: &[f64], which: Moment) -> Option<f64> {
    let (mean, variance) = match family {
        Family::Normal => (p[0], p[1] * p[1]),
        Family::HalfNormal => (p[0] * (2.0 / PI).sqrt(), p[0] * p[0] * (1.0 - 2.0 / PI)),
        Family::LogNormal => {
            let s2 = p[1] * p[1];
            (
                (p[0] + 0.5 * s2).exp(),
                s2.exp_m1() * (2.0 * p[0] + s2).exp(),
            )
        }
        Family::Uniform => (0.5 * (p[0] + p[1]), (p[1] - p[0]).powi(2) / 12.0),
        Family::Exponential => (1.0 / p[0], 1.0 / (p[0] * p[0])),
        Family::Gamma => (p[0] / p[1], p[0] / (p[1] * p[1])),
        Family::InverseGamma => {
            let (a, b) = (p[0], p[1]);
            let mean = if a > 1.0 {
                b / (a - 1.0)
            } else {
                f64::INFINITY
            };
            let variance = if a > 2.0 {
                b * b / ((a - 1.0).powi(2) * (a - 2.0))
            } else {
                f64::INFINITY
            };
            (mean, variance)
        }
        Family::Beta => {
            let (a, b) = (p[0], p[1]);
            let total = a + b;
            (a / total, a * b / (total * total * (total + 1.0)))
        }
        Family::Cauchy => (f64::NAN, f64::NAN),
        Family::HalfCauchy => (f64::INFINITY, f64::INFINITY),
        Family::Flat | Family::FlatPositive => return None,
        Family::StudentT => {
            let (nu, loc, scale) = (p[0], p[1], p[2]);
            let mean = if nu > 1.0 { loc } else { f64::NAN };
            let variance = if nu > 2.0 {
                scale * scale * nu / (nu - 2.0)
            } else if nu > 1.0 {
                f64::INFINITY
            } else {
                f64::NAN
            };
            (mean, variance)
        }
        Family::Laplace => (p[0], 2.0 * p[1] * p[1]),
        Family::Logistic => (p[0], (PI * p[1]).powi(2) / 3.0),
        Family::TruncatedNormal => truncated_normal_moments(p),
        Family::Delta => (p[0], 0.0),
        _ => return None,
    };
    Some(match which {
        Moment::Mean => mean,
        Moment::Variance => variance,
    })
}

/// Mean and variance of TruncatedNormal(μ, σ, low, high) with α, β the standardized bounds and
/// Z = Φ(β) − Φ(α): μ + σ (φ(α) − φ(β))/Z and σ² [1 + (αφ(α) − βφ(β))/Z − ((φ(α) − φ(β))/Z)²].
/// The ratios φ/Z are formed in logs (the interval reflected into the lower half first), since
/// deep in a tail the variance is a small difference of numbers near β².
fn truncated_normal_moments(p: &[f64]) -> (f64, f64) {
    let (loc, scale) = (p[0], p[1]);
    let (mut alpha, mut beta) = ((p[2] - loc) / scale, (p[3] - loc) / scale);
    let reflected = alpha + beta > 0.0;
    if reflected {
        (alpha, beta) = (-beta, -alpha);
    }
    let log_low = crate::math::log_ndtr_value(alpha);
    let log_high = crate::math::log_ndtr_value(beta);
    let log_mass = log_high + (-(log_low - log_high).exp()).ln_1p();
    // φ(z)/Z, and z φ(z)/Z, zero at infinite z.
    let ratio = |z: f64| {
        if z.is_finite() {
            (-0.5 * z * z - HALF_LOG_TWO_PI - log_mass).exp()
        } else {
            0.0
        }
    };
    let times_ratio = |z: f64| if z.is_finite() { z * ratio(z) } else { 0.0 };
    let shift = ratio(alpha) - ratio(beta);
    let standard_variance = 1.0 + times_ratio(alpha) - times_ratio(beta) - shift * shift;
    let shift = if reflected { -shift } else { shift };
    (loc + scale * shift, scale * scale * standard_variance)
}

/// The support of a scalar continuous family.
pub(crate) fn support(family: Family, tape: &Tape, params: &[Param]) -> Constraint {
    let bound =
        |slot: usize| Bound::on_tape(tape.value(params[slot].var).clone(), params[slot].var);
    match family {
        Family::HalfNormal | Family::Exponential | Family::HalfCauchy => Constraint::Positive,
        Family::LogNormal | Family::Gamma | Family::InverseGamma | Family::FlatPositive => {
            Constraint::Positive
        }
        Family::Beta => Constraint::UnitInterval,
        Family::Uniform => Constraint::Interval {
            low: bound(0),
            high: bound(1),
        },
        Family::TruncatedNormal => {
            let all = |slot: usize, test: fn(f64) -> bool| {
                tape.value(params[slot].var).data().iter().all(|x| test(*x))
            };
            let low_infinite = all(2, |x| x == f64::NEG_INFINITY);
            let high_infinite = all(3, |x| x == f64::INFINITY);
            match (low_infinite, high_infinite) {
                (true, true) => Constraint::Real,
                (false, true) => Constraint::GreaterThan(bound(2)),
                (true, false) => Constraint::LessThan(bound(3)),
                (false, false) => Constraint::Interval {
                    low: bound(2),
                    high: bound(3),
                },
            }
        }
        _ => Constraint::Real,
    }
}
