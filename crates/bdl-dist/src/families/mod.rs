//! The catalogue of distribution families: their names, their parameters (with alternatives
//! such as `probs | logits` and defaults), and the per-family code split by kind into
//! [`continuous`], [`discrete`] and [`multivariate`].
//!
//! The runtime matches positional arguments of a call such as `Normal(0, 1)` against
//! [`FamilySpec::params`] in order (each slot takes its first alternative positionally), and
//! named ones against any alternative, then hands the named list to
//! [`crate::Distribution::from_call`].

pub(crate) mod continuous;
pub(crate) mod discrete;
pub(crate) mod multivariate;

use crate::constraint::Constraint;
use crate::distribution::Param;
use crate::shape::{broadcast_data, broadcast_shapes};
use crate::DistError;
use bdl_autodiff::{Tape, Tensor, Var};
use rand::RngCore;
use std::fmt;

/// Every family this crate implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Normal(loc, scale).
    Normal,
    /// HalfNormal(scale): |X| for X ~ Normal(0, scale).
    HalfNormal,
    /// LogNormal(loc, scale): exp(X) for X ~ Normal(loc, scale).
    LogNormal,
    /// Uniform(low, high).
    Uniform,
    /// Exponential(rate).
    Exponential,
    /// Gamma(concentration, rate).
    Gamma,
    /// InverseGamma(concentration, rate): 1 / X for X ~ Gamma(concentration, rate).
    InverseGamma,
    /// Beta(concentration1, concentration0).
    Beta,
    /// Cauchy(loc, scale).
    Cauchy,
    /// HalfCauchy(scale).
    HalfCauchy,
    /// StudentT(df, loc, scale).
    StudentT,
    /// Laplace(loc, scale).
    Laplace,
    /// Logistic(loc, scale).
    Logistic,
    /// TruncatedNormal(loc, scale, low, high).
    TruncatedNormal,
    /// Bernoulli(probs | logits).
    Bernoulli,
    /// Binomial(total_count, probs | logits).
    Binomial,
    /// Categorical(probs | logits) over 0..K.
    Categorical,
    /// Poisson(rate).
    Poisson,
    /// NegativeBinomial(total_count, probs | logits): successes before `total_count` failures.
    NegativeBinomial,
    /// Dirichlet(concentration).
    Dirichlet,
    /// MultivariateNormal(loc, covariance_matrix | precision_matrix | scale_tril).
    MultivariateNormal,
    /// LKJCholesky(dim, concentration): Cholesky factors of LKJ correlation matrices.
    LkjCholesky,
    /// Wishart(df, covariance_matrix | precision_matrix | scale_tril).
    Wishart,
    /// Delta(v, log_density): a point mass.
    Delta,
    /// Flat: the improper uniform prior on the real line.
    Flat,
    /// FlatPositive: the improper uniform prior on the positive half-line.
    FlatPositive,
    /// MixtureSameFamily(weights, component): a finite mixture of K components of one scalar
    /// family, the components along the last batch axis of `component` (see
    /// [`crate::Distribution::mixture`]).
    MixtureSameFamily,
}

/// One parameter slot of a family: its name, or several alternative names of which exactly one
/// is given (`probs | logits`), and its default when it may be left out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    /// The accepted names; the first is the one a positional argument fills.
    pub names: &'static [&'static str],
    /// The value used when the slot is not given, or `None` when it is required.
    pub default: Option<f64>,
}

/// A family with its name as written in models and its parameter slots in positional order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FamilySpec {
    /// The family.
    pub family: Family,
    /// The name in the language (`"MultivariateNormal"`).
    pub name: &'static str,
    /// Parameter slots in positional order.
    pub params: &'static [ParamSpec],
}

const fn required(names: &'static [&'static str]) -> ParamSpec {
    ParamSpec {
        names,
        default: None,
    }
}

const fn optional(names: &'static [&'static str], default: f64) -> ParamSpec {
    ParamSpec {
        names,
        default: Some(default),
    }
}

const LOC: &[&str] = &["loc"];
const SCALE: &[&str] = &["scale"];
const RATE: &[&str] = &["rate"];
const CONCENTRATION: &[&str] = &["concentration"];
const PROBS_OR_LOGITS: &[&str] = &["probs", "logits"];
const TOTAL_COUNT: &[&str] = &["total_count"];
const MATRIX: &[&str] = &["covariance_matrix", "precision_matrix", "scale_tril"];

/// Every family with its parameter slots. Defaults follow NumPyro where it has one.
pub static FAMILIES: &[FamilySpec] = &[
    FamilySpec {
        family: Family::Normal,
        name: "Normal",
        params: &[optional(LOC, 0.0), optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::HalfNormal,
        name: "HalfNormal",
        params: &[optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::LogNormal,
        name: "LogNormal",
        params: &[optional(LOC, 0.0), optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::Uniform,
        name: "Uniform",
        params: &[optional(&["low"], 0.0), optional(&["high"], 1.0)],
    },
    FamilySpec {
        family: Family::Exponential,
        name: "Exponential",
        params: &[optional(RATE, 1.0)],
    },
    FamilySpec {
        family: Family::Gamma,
        name: "Gamma",
        params: &[required(CONCENTRATION), optional(RATE, 1.0)],
    },
    FamilySpec {
        family: Family::InverseGamma,
        name: "InverseGamma",
        params: &[required(CONCENTRATION), optional(RATE, 1.0)],
    },
    FamilySpec {
        family: Family::Beta,
        name: "Beta",
        params: &[required(&["concentration1"]), required(&["concentration0"])],
    },
    FamilySpec {
        family: Family::Cauchy,
        name: "Cauchy",
        params: &[optional(LOC, 0.0), optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::HalfCauchy,
        name: "HalfCauchy",
        params: &[optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::StudentT,
        name: "StudentT",
        params: &[required(&["df"]), optional(LOC, 0.0), optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::Laplace,
        name: "Laplace",
        params: &[optional(LOC, 0.0), optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::Logistic,
        name: "Logistic",
        params: &[optional(LOC, 0.0), optional(SCALE, 1.0)],
    },
    FamilySpec {
        family: Family::TruncatedNormal,
        name: "TruncatedNormal",
        params: &[
            optional(LOC, 0.0),
            optional(SCALE, 1.0),
            optional(&["low"], f64::NEG_INFINITY),
            optional(&["high"], f64::INFINITY),
        ],
    },
    FamilySpec {
        family: Family::Bernoulli,
        name: "Bernoulli",
        params: &[required(PROBS_OR_LOGITS)],
    },
    FamilySpec {
        family: Family::Binomial,
        name: "Binomial",
        params: &[optional(TOTAL_COUNT, 1.0), required(PROBS_OR_LOGITS)],
    },
    FamilySpec {
        family: Family::Categorical,
        name: "Categorical",
        params: &[required(PROBS_OR_LOGITS)],
    },
    FamilySpec {
        family: Family::Poisson,
        name: "Poisson",
        params: &[required(RATE)],
    },
    FamilySpec {
        family: Family::NegativeBinomial,
        name: "NegativeBinomial",
        params: &[required(TOTAL_COUNT), required(PROBS_OR_LOGITS)],
    },
    FamilySpec {
        family: Family::Dirichlet,
        name: "Dirichlet",
        params: &[required(CONCENTRATION)],
    },
    FamilySpec {
        family: Family::MultivariateNormal,
        name: "MultivariateNormal",
        params: &[optional(LOC, 0.0), required(MATRIX)],
    },
    FamilySpec {
        family: Family::LkjCholesky,
        name: "LKJCholesky",
        params: &[required(&["dim"]), optional(CONCENTRATION, 1.0)],
    },
    FamilySpec {
        family: Family::Wishart,
        name: "Wishart",
        params: &[required(&["df"]), required(MATRIX)],
    },
    FamilySpec {
        family: Family::Delta,
        name: "Delta",
        params: &[optional(&["v"], 0.0), optional(&["log_density"], 0.0)],
    },
    FamilySpec {
        family: Family::Flat,
        name: "Flat",
        params: &[],
    },
    FamilySpec {
        family: Family::FlatPositive,
        name: "FlatPositive",
        params: &[],
    },
    FamilySpec {
        family: Family::MixtureSameFamily,
        name: "MixtureSameFamily",
        params: &[
            required(&["weights", "mixture_distribution"]),
            required(&["component_distribution"]),
        ],
    },
];

impl Family {
    /// The family called `name` in the language, if any.
    pub fn from_name(name: &str) -> Option<Family> {
        FAMILIES
            .iter()
            .find(|spec| spec.name == name)
            .map(|spec| spec.family)
    }

    /// The family's entry in [`FAMILIES`].
    pub fn spec(self) -> &'static FamilySpec {
        // Every variant has exactly one entry; the test `every_family_has_one_entry` holds
        // the table to that, so the fallback to the first entry is never taken.
        FAMILIES
            .iter()
            .find(|spec| spec.family == self)
            .unwrap_or(&FAMILIES[0])
    }

    /// The name in the language.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Whether values are whole numbers (the log-density is a log-mass).
    pub fn is_discrete(self) -> bool {
        matches!(
            self,
            Family::Bernoulli
                | Family::Binomial
                | Family::Categorical
                | Family::Poisson
                | Family::NegativeBinomial
        )
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every family, in the order of [`FAMILIES`].
pub fn all_families() -> impl Iterator<Item = Family> {
    FAMILIES.iter().map(|spec| spec.family)
}

/// Which moment [`moment`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Moment {
    Mean,
    Variance,
}

/// Checks parameter values and shapes; returns the base batch shape and the event shape.
pub(crate) fn check_parameters(
    family: Family,
    tape: &Tape,
    params: &[Param],
) -> Result<(Vec<usize>, Vec<usize>), DistError> {
    if let Some(param) = params
        .iter()
        .find(|param| tape.value(param.var).data().iter().any(|x| x.is_nan()))
    {
        let value = tape
            .value(param.var)
            .data()
            .iter()
            .copied()
            .find(|x| x.is_nan())
            .unwrap_or(f64::NAN);
        return Err(DistError::InvalidParameter {
            family: family.name(),
            parameter: param.name,
            value,
            requirement: "a number (not NaN)",
        });
    }
    match family {
        Family::Categorical => discrete::check_categorical(tape, params),
        Family::Dirichlet | Family::MultivariateNormal | Family::LkjCholesky | Family::Wishart => {
            multivariate::check(family, tape, params)
        }
        _ if family.is_discrete() => {
            discrete::check(family, tape, params)?;
            Ok((scalar_batch_shape(family, tape, params)?, Vec::new()))
        }
        _ => {
            continuous::check(family, tape, params)?;
            Ok((scalar_batch_shape(family, tape, params)?, Vec::new()))
        }
    }
}

/// The broadcast of every parameter's shape: the batch shape of a scalar family.
fn scalar_batch_shape(
    family: Family,
    tape: &Tape,
    params: &[Param],
) -> Result<Vec<usize>, DistError> {
    let mut shape: Vec<usize> = Vec::new();
    for param in params {
        let next = tape.shape(param.var);
        shape = broadcast_shapes(&shape, next).ok_or_else(|| DistError::ShapeMismatch {
            family: family.name(),
            what: "the parameters",
            left: shape.clone(),
            right: next.to_vec(),
        })?;
    }
    Ok(shape)
}

/// Fails with [`DistError::InvalidParameter`] at the first element of `param` that does not
/// pass `test`.
pub(crate) fn require(
    family: Family,
    tape: &Tape,
    param: &Param,
    test: impl Fn(f64) -> bool,
    requirement: &'static str,
) -> Result<(), DistError> {
    match tape.value(param.var).data().iter().find(|x| !test(**x)) {
        Some(&value) => Err(DistError::InvalidParameter {
            family: family.name(),
            parameter: param.name,
            value,
            requirement,
        }),
        None => Ok(()),
    }
}

/// Requirement: a finite number.
pub(crate) fn finite(x: f64) -> bool {
    x.is_finite()
}

/// Requirement: a finite number greater than zero.
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

/// The log-density of each batch element of the base family (event axes summed).
pub(crate) fn log_prob(
    family: Family,
    tape: &mut Tape,
    params: &[Param],
    value: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    match family {
        Family::Dirichlet | Family::MultivariateNormal | Family::LkjCholesky | Family::Wishart => {
            multivariate::log_prob(family, tape, params, value, check_support)
        }
        _ if family.is_discrete() => discrete::log_prob(family, tape, params, value, check_support),
        _ => continuous::log_prob(family, tape, params, value, check_support),
    }
}

/// Draws `n_samples` samples of a distribution whose base batch shape is broadcast to
/// `full_batch_shape`, as one row-major buffer of shape
/// `[n_samples] + full_batch_shape + event_shape`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sample(
    family: Family,
    params: &[Param],
    values: &[Tensor],
    base_batch_shape: &[usize],
    full_batch_shape: &[usize],
    event_shape: &[usize],
    rng: &mut dyn RngCore,
    n_samples: usize,
) -> Result<Vec<f64>, DistError> {
    match family {
        Family::Categorical
        | Family::Dirichlet
        | Family::MultivariateNormal
        | Family::LkjCholesky
        | Family::Wishart => {
            // Draw per base batch element; `origin` maps each expanded element to its base one.
            let base_count: usize = base_batch_shape.iter().product();
            let indices = Tensor::from_shape(
                base_batch_shape,
                (0..base_count).map(|index| index as f64).collect(),
            )
            .map_err(|e| DistError::tensor(family.name(), e))?;
            let origin = broadcast_data(&indices, full_batch_shape).ok_or_else(|| {
                DistError::InvalidExpand {
                    family: family.name(),
                    batch_shape: base_batch_shape.to_vec(),
                    requested: full_batch_shape.to_vec(),
                }
            })?;
            let event_size: usize = event_shape.iter().product();
            let mut sampler =
                multivariate::Sampler::new(family, params, values, base_batch_shape, event_shape)?;
            let mut out = Vec::with_capacity(n_samples * origin.len() * event_size);
            for _ in 0..n_samples {
                for &base in &origin {
                    sampler.draw(base as usize, rng, &mut out)?;
                }
            }
            Ok(out)
        }
        Family::Flat | Family::FlatPositive => Err(DistError::NotSampleable {
            family: family.name(),
        }),
        _ => {
            let per_element = spread_parameters(family, values, full_batch_shape)?;
            let count: usize = full_batch_shape.iter().product();
            let mut out = Vec::with_capacity(n_samples * count);
            let mut element = vec![0.0; values.len()];
            for _ in 0..n_samples {
                for index in 0..count {
                    for (slot, column) in per_element.iter().enumerate() {
                        element[slot] = column[index];
                    }
                    let draw = if family.is_discrete() {
                        discrete::draw(family, params, &element, rng)?
                    } else {
                        continuous::draw(family, &element, rng)?
                    };
                    out.push(draw);
                }
            }
            Ok(out)
        }
    }
}

/// Each parameter's values repeated over `shape`.
fn spread_parameters(
    family: Family,
    values: &[Tensor],
    shape: &[usize],
) -> Result<Vec<Vec<f64>>, DistError> {
    values
        .iter()
        .map(|value| {
            broadcast_data(value, shape).ok_or_else(|| DistError::ShapeMismatch {
                family: family.name(),
                what: "a parameter and the batch",
                left: value.shape().to_vec(),
                right: shape.to_vec(),
            })
        })
        .collect()
}

/// The mean or variance over the base batch and event shape, or `None` where the family has
/// no such moment.
pub(crate) fn moment(
    family: Family,
    params: &[Param],
    values: &[Tensor],
    base_batch_shape: &[usize],
    event_shape: &[usize],
    which: Moment,
) -> Option<Vec<f64>> {
    match family {
        Family::Categorical
        | Family::Dirichlet
        | Family::MultivariateNormal
        | Family::LkjCholesky
        | Family::Wishart => {
            multivariate::moment(family, params, values, base_batch_shape, event_shape, which)
        }
        _ => {
            let per_element = spread_parameters(family, values, base_batch_shape).ok()?;
            let count: usize = base_batch_shape.iter().product();
            let mut element = vec![0.0; values.len()];
            let mut out = Vec::with_capacity(count);
            for index in 0..count {
                for (slot, column) in per_element.iter().enumerate() {
                    element[slot] = column[index];
                }
                let value = if family.is_discrete() {
                    discrete::moment(family, params, &element, which)?
                } else {
                    continuous::moment(family, &element, which)?
                };
                out.push(value);
            }
            Some(out)
        }
    }
}

/// The support of the base family.
pub(crate) fn support(family: Family, tape: &Tape, params: &[Param]) -> Constraint {
    match family {
        Family::Categorical
        | Family::Dirichlet
        | Family::MultivariateNormal
        | Family::LkjCholesky
        | Family::Wishart => multivariate::support(family, tape, params),
        _ if family.is_discrete() => discrete::support(family, tape, params),
        _ => continuous::support(family, tape, params),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_one_entry() {
        let variants = [
            Family::Normal,
            Family::HalfNormal,
            Family::LogNormal,
            Family::Uniform,
            Family::Exponential,
            Family::Gamma,
            Family::InverseGamma,
            Family::Beta,
            Family::Cauchy,
            Family::HalfCauchy,
            Family::StudentT,
            Family::Laplace,
            Family::Logistic,
            Family::TruncatedNormal,
            Family::Bernoulli,
            Family::Binomial,
            Family::Categorical,
            Family::Poisson,
            Family::NegativeBinomial,
            Family::Dirichlet,
            Family::MultivariateNormal,
            Family::LkjCholesky,
            Family::Wishart,
            Family::Delta,
            Family::Flat,
            Family::FlatPositive,
            Family::MixtureSameFamily,
        ];
        assert_eq!(variants.len(), FAMILIES.len());
        for family in variants {
            let entries = FAMILIES.iter().filter(|spec| spec.family == family).count();
            assert_eq!(entries, 1, "{family:?}");
            assert_eq!(Family::from_name(family.name()), Some(family));
        }
    }
}
