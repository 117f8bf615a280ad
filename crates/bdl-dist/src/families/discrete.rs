//! Discrete families: Bernoulli, Binomial, Poisson and NegativeBinomial (scalar), and
//! Categorical (its parameter has a trailing axis of K outcomes). Values are `f64` tensors
//! holding whole numbers; anything else (a fraction, a negative count, a count above
//! `total_count`) has log-mass −∞.
//!
//! Families taking `probs | logits` use whichever was given: log-masses from logits go through
//! log σ(η) and log σ(−η), which stay exact far into the tails, and those from probabilities use
//! the convention 0 · log 0 = 0 so that p = 0 or 1 gives finite values and gradients.

use super::{finite, require, Family, Moment};
use crate::constraint::Constraint;
use crate::distribution::Param;
use crate::math::{self, constant, mask_log_prob, select_or};
use crate::DistError;
use bdl_autodiff::{Tape, Tensor, Var};
use rand::{Rng, RngCore};
use rand_distr::Distribution as _;

/// Requirement: a probability.
fn probability(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// Requirement: a whole number at least zero.
fn count(x: f64) -> bool {
    x >= 0.0 && x.is_finite() && x.fract() == 0.0
}

/// Checks the parameter values of a scalar discrete family.
pub(crate) fn check(family: Family, tape: &Tape, params: &[Param]) -> Result<(), DistError> {
    let check_probs_or_logits = |param: &Param| {
        if param.name == "logits" {
            require(family, tape, param, finite, "a finite number")
        } else {
            require(family, tape, param, probability, "in [0, 1]")
        }
    };
    match family {
        Family::Bernoulli => check_probs_or_logits(&params[0]),
        Family::Binomial => {
            require(family, tape, &params[0], count, "a whole number at least 0")?;
            check_probs_or_logits(&params[1])
        }
        Family::Poisson => require(
            family,
            tape,
            &params[0],
            |x| x >= 0.0 && x.is_finite(),
            "a finite number at least 0",
        ),
        Family::NegativeBinomial => {
            require(family, tape, &params[0], super::positive, "greater than 0")?;
            if params[1].name == "logits" {
                require(family, tape, &params[1], finite, "a finite number")
            } else {
                require(
                    family,
                    tape,
                    &params[1],
                    |x| (0.0..1.0).contains(&x),
                    "in [0, 1)",
                )
            }
        }
        _ => Ok(()),
    }
}

/// Checks Categorical's parameter: a tensor of rank at least one whose last axis holds the K
/// outcomes; probabilities must be non-negative with a positive sum (they are normalised, as
/// in PyTorch), logits finite. Returns the batch shape (all but the last axis) and the empty
/// event shape.
pub(crate) fn check_categorical(
    tape: &Tape,
    params: &[Param],
) -> Result<(Vec<usize>, Vec<usize>), DistError> {
    let family = Family::Categorical;
    let param = &params[0];
    let value = tape.value(param.var);
    let shape = value.shape();
    if shape.is_empty() || shape[shape.len() - 1] == 0 {
        return Err(DistError::InvalidShape {
            family: family.name(),
            what: param.name,
            shape: shape.to_vec(),
            expected: "a tensor whose last axis holds at least one outcome".to_string(),
        });
    }
    if param.name == "logits" {
        require(family, tape, param, finite, "a finite number")?;
    } else {
        require(
            family,
            tape,
            param,
            |x| x >= 0.0 && x.is_finite(),
            "a finite number at least 0",
        )?;
        let width = shape[shape.len() - 1];
        if let Some(row) = value
            .data()
            .chunks(width)
            .find(|row| row.iter().sum::<f64>() <= 0.0)
        {
            return Err(DistError::InvalidParameter {
                family: family.name(),
                parameter: param.name,
                value: row.iter().sum(),
                requirement: "a vector with a positive sum",
            });
        }
    }
    Ok((shape[..shape.len() - 1].to_vec(), Vec::new()))
}

/// `factor · log(1 + y)` with 0 · log 0 = 0.
fn xlog1py(tape: &mut Tape, factor: Var, y: Var) -> Result<Var, DistError> {
    let one_plus = tape.add_scalar(y, 1.0);
    math::xlogy(tape, factor, one_plus)
}

/// k log p + (n − k) log(1 − p), from logits or probabilities.
fn bernoulli_terms(
    tape: &mut Tape,
    param: &Param,
    successes: Var,
    failures: Var,
) -> Result<Var, DistError> {
    if param.name == "logits" {
        // With log p = log σ(η) = η − softplus(η) and log(1 − p) = −softplus(η):
        // k log p + m log(1 − p) = k η − (k + m) softplus(η), one softplus per element.
        let softplus = tape.softplus(param.var);
        let first = tape.mul(successes, param.var)?;
        let trials = tape.add(successes, failures)?;
        let second = tape.mul(trials, softplus)?;
        Ok(tape.sub(first, second)?)
    } else {
        let first = math::xlogy(tape, successes, param.var)?;
        let minus_p = tape.neg(param.var);
        let second = xlog1py(tape, failures, minus_p)?;
        Ok(tape.add(first, second)?)
    }
}

/// The log-mass of a discrete family at `k`.
pub(crate) fn log_prob(
    family: Family,
    tape: &mut Tape,
    params: &[Param],
    k: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    // Outside the support k is replaced by 0 (inside every support here) before the formula.
    // Values known to be in the support (validated data) skip the test: it is most of the cost
    // of a cheap log-mass.
    let (k, inside) = if check_support {
        let whole = math::is_integer(tape, k)?;
        let zero = constant(tape, 0.0);
        let nonnegative = tape.ge(k, zero)?;
        let mut inside = tape.and(whole, nonnegative)?;
        match family {
            Family::Bernoulli => {
                let one = constant(tape, 1.0);
                let at_most_one = tape.le(k, one)?;
                inside = tape.and(inside, at_most_one)?;
            }
            Family::Binomial => {
                let at_most_n = tape.le(k, params[0].var)?;
                inside = tape.and(inside, at_most_n)?;
            }
            Family::Categorical => {
                let outcomes = *tape.shape(params[0].var).last().unwrap_or(&1);
                let below = constant(tape, outcomes as f64);
                let in_range = tape.lt(k, below)?;
                inside = tape.and(inside, in_range)?;
            }
            _ => {}
        }
        (select_or(tape, inside, k, 0.0)?, Some(inside))
    } else {
        (k, None)
    };
    let lp = match family {
        Family::Bernoulli => {
            // k log p + (1 − k) log(1 − p).
            let failures = tape.scalar_sub(1.0, k);
            bernoulli_terms(tape, &params[0], k, failures)?
        }
        Family::Binomial => {
            // log C(n, k) + k log p + (n − k) log(1 − p).
            let n = params[0].var;
            let failures = tape.sub(n, k)?;
            let choose = log_binomial_coefficient(tape, n, k, failures)?;
            let terms = bernoulli_terms(tape, &params[1], k, failures)?;
            tape.add(choose, terms)?
        }
        Family::Poisson => {
            // k log λ − λ − log k!.
            let rate = params[0].var;
            let first = math::xlogy(tape, k, rate)?;
            let k_plus_one = tape.add_scalar(k, 1.0);
            let log_factorial = tape.lgamma(k_plus_one);
            let lp = tape.sub(first, rate)?;
            tape.sub(lp, log_factorial)?
        }
        Family::NegativeBinomial => {
            // log Γ(k + r) − log Γ(r) − log k! + r log(1 − p) + k log p.
            let r = params[0].var;
            let k_plus_r = tape.add(k, r)?;
            let lgamma_k_plus_r = tape.lgamma(k_plus_r);
            let lgamma_r = tape.lgamma(r);
            let k_plus_one = tape.add_scalar(k, 1.0);
            let log_factorial = tape.lgamma(k_plus_one);
            let terms = bernoulli_terms(tape, &params[1], k, r)?;
            let lp = tape.sub(lgamma_k_plus_r, lgamma_r)?;
            let lp = tape.sub(lp, log_factorial)?;
            tape.add(lp, terms)?
        }
        Family::Categorical => categorical_log_prob(tape, &params[0], k)?,
        _ => {
            return Err(DistError::UnknownFamily {
                name: family.name().to_string(),
            })
        }
    };
    match inside {
        Some(inside) => mask_log_prob(tape, inside, lp),
        None => Ok(lp),
    }
}

/// log n! − log k! − log (n − k)!.
fn log_binomial_coefficient(
    tape: &mut Tape,
    n: Var,
    k: Var,
    failures: Var,
) -> Result<Var, DistError> {
    let n_plus_one = tape.add_scalar(n, 1.0);
    let k_plus_one = tape.add_scalar(k, 1.0);
    let failures_plus_one = tape.add_scalar(failures, 1.0);
    let all = tape.lgamma(n_plus_one);
    let chosen = tape.lgamma(k_plus_one);
    let rest = tape.lgamma(failures_plus_one);
    let lp = tape.sub(all, chosen)?;
    Ok(tape.sub(lp, rest)?)
}

/// log p_k: the log-softmax of the logits (or log of normalised probabilities) picked at k by a
/// one-hot comparison of k against 0..K.
fn categorical_log_prob(tape: &mut Tape, param: &Param, k: Var) -> Result<Var, DistError> {
    let log_probs = if param.name == "logits" {
        tape.log_softmax(param.var, -1)?
    } else {
        let total = tape.sum_axis(param.var, -1, true)?;
        let normalised = tape.div(param.var, total)?;
        // A zero probability has log-mass −∞; the logarithm is taken of 1 there instead, so
        // that its gradient stays finite, and −∞ is put back by a select.
        let zero = constant(tape, 0.0);
        let possible = tape.gt(normalised, zero)?;
        let safe = select_or(tape, possible, normalised, 1.0)?;
        let log_safe = tape.log(safe);
        math::select_or(tape, possible, log_safe, f64::NEG_INFINITY)?
    };
    let outcomes = *tape.shape(param.var).last().unwrap_or(&1);
    let mut k_shape = tape.shape(k).to_vec();
    k_shape.push(1);
    let k_column = tape.reshape(k, &k_shape)?;
    // One label per row of logits (the usual classifier likelihood): pick each row's entry.
    let rows = &tape.shape(param.var)[..tape.shape(param.var).len().saturating_sub(1)];
    if rows == tape.shape(k) {
        let picked = tape.take_along_axis(log_probs, k_column, -1)?;
        return Ok(tape.reshape(picked, &k_shape[..k_shape.len() - 1])?);
    }
    let positions = tape.constant(Tensor::vector((0..outcomes).map(|j| j as f64).collect()));
    let one_hot = tape.eq(k_column, positions)?;
    let zero = constant(tape, 0.0);
    let picked = tape.select(one_hot, log_probs, zero)?;
    Ok(tape.sum_axis(picked, -1, false)?)
}

/// Turns the `probs | logits` parameter's value into a probability.
fn success_probability(param: &Param, value: f64) -> f64 {
    if param.name == "logits" {
        1.0 / (1.0 + (-value).exp())
    } else {
        value
    }
}

/// One draw of a scalar discrete family with parameter values `p` (slot order).
pub(crate) fn draw(
    family: Family,
    params: &[Param],
    p: &[f64],
    rng: &mut dyn RngCore,
) -> Result<f64, DistError> {
    let invalid = |parameter: &'static str, value: f64, requirement: &'static str| {
        DistError::InvalidParameter {
            family: family.name(),
            parameter,
            value,
            requirement,
        }
    };
    let value = match family {
        Family::Bernoulli => {
            let probability = success_probability(&params[0], p[0]);
            f64::from(u8::from(rng.random::<f64>() < probability))
        }
        Family::Binomial => {
            let probability = success_probability(&params[1], p[1]);
            let binomial = rand_distr::Binomial::new(p[0] as u64, probability)
                .map_err(|_| invalid(params[1].name, p[1], "in [0, 1]"))?;
            binomial.sample(rng) as f64
        }
        Family::Poisson => poisson_draw(p[0], rng)?,
        Family::NegativeBinomial => {
            // A Gamma–Poisson mixture: λ ~ Gamma(r, scale = p / (1 − p)), k ~ Poisson(λ).
            let odds = if params[1].name == "logits" {
                p[1].exp()
            } else {
                p[1] / (1.0 - p[1])
            };
            let rate = super::continuous::gamma_draw(family, p[0], rng)? * odds;
            poisson_draw(rate, rng)?
        }
        _ => {
            return Err(DistError::NotSampleable {
                family: family.name(),
            })
        }
    };
    Ok(value)
}

/// A Poisson draw; rate 0 gives 0, and rates beyond what rand_distr accepts (1.8e19) use the
/// normal approximation, whose error there is far below one count in a billion.
fn poisson_draw(rate: f64, rng: &mut dyn RngCore) -> Result<f64, DistError> {
    if rate <= 0.0 {
        return Ok(0.0);
    }
    if rate >= 1e18 {
        let z: f64 = rand_distr::StandardNormal.sample(rng);
        return Ok((rate + rate.sqrt() * z).round().max(0.0));
    }
    let poisson = rand_distr::Poisson::new(rate).map_err(|_| DistError::InvalidParameter {
        family: Family::Poisson.name(),
        parameter: "rate",
        value: rate,
        requirement: "a finite number at least 0",
    })?;
    Ok(poisson.sample(rng))
}

/// The mean or variance of a scalar discrete family at parameter values `p`.
pub(crate) fn moment(family: Family, params: &[Param], p: &[f64], which: Moment) -> Option<f64> {
    let (mean, variance) = match family {
        Family::Bernoulli => {
            let q = success_probability(&params[0], p[0]);
            (q, q * (1.0 - q))
        }
        Family::Binomial => {
            let q = success_probability(&params[1], p[1]);
            (p[0] * q, p[0] * q * (1.0 - q))
        }
        Family::Poisson => (p[0], p[0]),
        Family::NegativeBinomial => {
            let q = success_probability(&params[1], p[1]);
            let mean = p[0] * q / (1.0 - q);
            (mean, mean / (1.0 - q))
        }
        _ => return None,
    };
    Some(match which {
        Moment::Mean => mean,
        Moment::Variance => variance,
    })
}

/// The support of a scalar discrete family. Binomial's upper end is `total_count` when that is
/// one number; with several counts the support is stated as the non-negative integers, and
/// `log_prob` still gives −∞ above each element's own count.
pub(crate) fn support(family: Family, tape: &Tape, params: &[Param]) -> Constraint {
    match family {
        Family::Bernoulli => Constraint::Boolean,
        Family::Binomial => match tape.value(params[0].var).item() {
            Ok(n) => Constraint::IntegerInterval { low: 0.0, high: n },
            Err(_) => Constraint::NonnegativeInteger,
        },
        _ => Constraint::NonnegativeInteger,
    }
}
