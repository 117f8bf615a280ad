//! The checker's distribution catalogue (`bdl_ir::catalogue::DISTRIBUTIONS`) and the runtime's
//! families (`bdl_dist::FAMILIES`) describe the same distributions. `bdl-ir` may not depend on
//! `bdl-dist`, so the two tables are kept apart and this test, which sees both, proves that they
//! agree for every family in both directions: the same names, the same parameters in the same
//! positional order with the same alternatives, no parameter the checker lets a model leave out
//! that the runtime needs, the same discreteness, the same support, the same event rank, and
//! parameter values the checker rejects as literals are rejected by the runtime too.
//!
//! Each test collects every disagreement and fails with one line per family naming it, so that a
//! new family added to one table only shows at once everything the other table lacks.

use bdl_autodiff::{Tape, Tensor};
use bdl_dist::{Bound, Constraint, Distribution, Family, FamilySpec, FAMILIES};
use bdl_ir::catalogue::{DistributionSpec, Domain, EventShape, Support, DISTRIBUTIONS};

/// The runtime's entry for a name of the checker's catalogue.
fn runtime_family(name: &str) -> Option<&'static FamilySpec> {
    FAMILIES.iter().find(|spec| spec.name == name)
}

/// Fails with every disagreement, one per line.
fn assert_no_disagreement(what: &str, disagreements: &[String]) {
    assert!(
        disagreements.is_empty(),
        "the checker's catalogue and the runtime's families disagree on {what}:\n  {}",
        disagreements.join("\n  ")
    );
}

#[test]
fn every_family_exists_in_both_tables() {
    let mut disagreements = Vec::new();
    for spec in DISTRIBUTIONS {
        if runtime_family(spec.name).is_none() {
            disagreements.push(format!(
                "{}: accepted by the checker but missing from bdl_dist::FAMILIES",
                spec.name
            ));
        }
    }
    for family in FAMILIES {
        if bdl_ir::catalogue::distribution(family.name).is_none() {
            disagreements.push(format!(
                "{}: implemented by bdl-dist but missing from bdl_ir::catalogue::DISTRIBUTIONS",
                family.name
            ));
        }
    }
    assert_no_disagreement("which families exist", &disagreements);
}

#[test]
fn parameters_agree_in_arity_names_order_and_requiredness() {
    let mut disagreements = Vec::new();
    for spec in DISTRIBUTIONS {
        let Some(family) = runtime_family(spec.name) else {
            continue;
        };
        if spec.params.len() != family.params.len() {
            disagreements.push(format!(
                "{}: the checker has {} parameters, the runtime {}",
                spec.name,
                spec.params.len(),
                family.params.len()
            ));
            continue;
        }
        for (position, (checked, runtime)) in spec.params.iter().zip(family.params).enumerate() {
            if checked.names != runtime.names {
                disagreements.push(format!(
                    "{}: parameter {position} is {:?} in the checker but {:?} at run time",
                    spec.name, checked.names, runtime.names
                ));
            }
            // The checker may be stricter than the runtime (which gives direct callers of
            // bdl-dist NumPyro's defaults), never laxer: a model that leaves out a parameter
            // the runtime needs would pass the checks and fail when it runs.
            if !checked.required && runtime.default.is_none() {
                disagreements.push(format!(
                    "{}: parameter {:?} is optional in the checker but required at run time",
                    spec.name, checked.names
                ));
            }
        }
    }
    assert_no_disagreement("parameters", &disagreements);
}

#[test]
fn discreteness_agrees() {
    let mut disagreements = Vec::new();
    for spec in DISTRIBUTIONS {
        let Some(family) = Family::from_name(spec.name) else {
            continue;
        };
        if spec.support.is_discrete() != family.is_discrete() {
            disagreements.push(format!(
                "{}: discrete in the checker: {}, at run time: {}",
                spec.name,
                spec.support.is_discrete(),
                family.is_discrete()
            ));
        }
    }
    assert_no_disagreement("discreteness", &disagreements);
}

/// Valid parameter values for every family, given under the first name of each parameter, so
/// that the runtime can build a distribution whose support and shapes the test reads. A family
/// missing here fails `supports_and_event_ranks_agree` by name.
fn example_arguments(name: &str) -> Option<Vec<(&'static str, Tensor)>> {
    let s = Tensor::scalar;
    let covariance = || Tensor::matrix(2, 2, vec![2.0, 0.5, 0.5, 1.0]).expect("a 2 × 2 matrix");
    Some(match name {
        "Normal" | "LogNormal" | "Cauchy" | "Laplace" | "Logistic" => {
            vec![("loc", s(0.5)), ("scale", s(2.0))]
        }
        "HalfNormal" | "HalfCauchy" => vec![("scale", s(2.0))],
        "Uniform" => vec![("low", s(-1.0)), ("high", s(3.0))],
        "Exponential" | "Poisson" => vec![("rate", s(2.0))],
        "Gamma" | "InverseGamma" => vec![("concentration", s(2.0)), ("rate", s(3.0))],
        "Beta" => vec![("concentration1", s(2.0)), ("concentration0", s(3.0))],
        "StudentT" => vec![("df", s(3.0)), ("loc", s(0.0)), ("scale", s(1.0))],
        "TruncatedNormal" => vec![
            ("loc", s(0.0)),
            ("scale", s(1.0)),
            ("low", s(-1.0)),
            ("high", s(2.0)),
        ],
        "Bernoulli" => vec![("probs", s(0.3))],
        "Binomial" => vec![("total_count", s(10.0)), ("probs", s(0.3))],
        "Categorical" => vec![("probs", Tensor::vector(vec![0.2, 0.3, 0.5]))],
        "NegativeBinomial" => vec![("total_count", s(5.0)), ("probs", s(0.4))],
        "Dirichlet" => vec![("concentration", Tensor::vector(vec![1.0, 2.0, 3.0]))],
        "MultivariateNormal" => vec![
            ("loc", Tensor::vector(vec![0.0, 1.0])),
            ("covariance_matrix", covariance()),
        ],
        "LKJCholesky" => vec![("dim", s(3.0)), ("concentration", s(2.0))],
        "Wishart" => vec![("df", s(4.0)), ("covariance_matrix", covariance())],
        "Delta" => vec![("v", s(1.5)), ("log_density", s(0.0))],
        "Flat" | "FlatPositive" => vec![],
        // Its component is a distribution; `mixture_example` builds it.
        "MixtureSameFamily" => vec![("weights", Tensor::vector(vec![0.4, 0.6]))],
        _ => return None,
    })
}

/// A mixture of two Normal components, the example of `MixtureSameFamily`.
fn mixture_example(tape: &mut Tape) -> Result<Distribution, bdl_dist::DistError> {
    let component = Distribution::with_constants(
        tape,
        Family::Normal,
        &[
            ("loc", Tensor::vector(vec![-1.0, 1.0])),
            ("scale", Tensor::scalar(1.0)),
        ],
    )?;
    let weights = tape.constant(Tensor::vector(vec![0.4, 0.6]));
    Distribution::mixture(tape, bdl_dist::MixtureWeights::Probs(weights), &component)
}

#[test]
fn the_mixable_component_families_agree() {
    let runtime: Vec<&str> = bdl_dist::MIXTURE_COMPONENT_FAMILIES
        .iter()
        .map(|family| family.name())
        .collect();
    assert_eq!(runtime, bdl_ir::catalogue::MIXTURE_COMPONENTS);
}

/// The value of the scalar argument `name` in `arguments`.
fn scalar_argument(arguments: &[(&str, Tensor)], name: &str) -> f64 {
    arguments
        .iter()
        .find(|(given, _)| *given == name)
        .and_then(|(_, value)| value.item().ok())
        .unwrap_or(f64::NAN)
}

/// The runtime constraint that the checker's support stands for, at the example's parameters.
fn expected_constraint(spec: &DistributionSpec, arguments: &[(&str, Tensor)]) -> Constraint {
    match spec.support {
        Support::Real => Constraint::Real,
        Support::Positive => Constraint::Positive,
        Support::UnitInterval => Constraint::UnitInterval,
        Support::Interval => Constraint::Interval {
            low: Bound::constant(scalar_argument(arguments, "low")),
            high: Bound::constant(scalar_argument(arguments, "high")),
        },
        Support::Boolean => Constraint::Boolean,
        Support::NonNegativeInteger => Constraint::NonnegativeInteger,
        Support::IntegerInterval => Constraint::IntegerInterval {
            low: 0.0,
            high: scalar_argument(arguments, "total_count"),
        },
        Support::Categorical => {
            let categories = arguments
                .first()
                .and_then(|(_, probs)| probs.shape().last().copied())
                .unwrap_or(0);
            Constraint::IntegerInterval {
                low: 0.0,
                high: categories as f64 - 1.0,
            }
        }
        Support::Simplex => Constraint::Simplex,
        Support::RealVector => Constraint::RealVector,
        Support::CorrCholesky => Constraint::CorrCholesky,
        Support::PositiveDefinite => Constraint::PositiveDefinite,
        // A Delta puts its mass on the value `v`; the runtime has no constraint "equal to v" and
        // describes the set its values live in, the reals, checking the value against `v` in
        // the log-density.
        Support::Value => Constraint::Real,
        // The example mixes Normal components.
        Support::Mixture => Constraint::Real,
    }
}

/// How many trailing axes of a draw form one event.
fn event_rank(event: EventShape) -> usize {
    match event {
        EventShape::Scalar | EventShape::Categories => 0,
        EventShape::Vector => 1,
        EventShape::Matrix => 2,
    }
}

#[test]
fn supports_and_event_ranks_agree() {
    let mut disagreements = Vec::new();
    for spec in DISTRIBUTIONS {
        let Some(family) = Family::from_name(spec.name) else {
            continue;
        };
        let Some(arguments) = example_arguments(spec.name) else {
            disagreements.push(format!(
                "{}: no example parameters in this test; add them to `example_arguments`",
                spec.name
            ));
            continue;
        };
        let mut tape = Tape::new();
        let built = if family == Family::MixtureSameFamily {
            mixture_example(&mut tape)
        } else {
            Distribution::with_constants(&mut tape, family, &arguments)
        };
        let dist = match built {
            Ok(dist) => dist,
            Err(error) => {
                disagreements.push(format!(
                    "{}: the runtime rejects the example parameters: {error}",
                    spec.name
                ));
                continue;
            }
        };
        let expected = expected_constraint(spec, &arguments);
        let actual = dist.support(&tape);
        if actual != expected {
            disagreements.push(format!(
                "{}: support is {} in the checker ({expected:?}) but {actual:?} at run time",
                spec.name,
                spec.support.as_str()
            ));
        }
        if dist.event_shape().len() != event_rank(spec.event) {
            disagreements.push(format!(
                "{}: the checker's events are {:?} (rank {}) but the runtime's have shape {:?}",
                spec.name,
                spec.event,
                event_rank(spec.event),
                dist.event_shape()
            ));
        }
    }
    assert_no_disagreement("supports and event shapes", &disagreements);
}

/// A value outside the checker's domain, for the domains it checks on literals.
fn value_outside(domain: Domain) -> Option<f64> {
    match domain {
        Domain::Positive | Domain::Count | Domain::Size => Some(-1.0),
        Domain::Probability => Some(1.5),
        _ => None,
    }
}

#[test]
fn parameter_values_the_checker_rejects_are_rejected_at_run_time() {
    let mut disagreements = Vec::new();
    for spec in DISTRIBUTIONS {
        let (Some(family), Some(arguments)) =
            (Family::from_name(spec.name), example_arguments(spec.name))
        else {
            continue;
        };
        for param in spec.params {
            let Some(bad) = value_outside(param.domain) else {
                continue;
            };
            let name = param.names[0];
            let mut changed = arguments.clone();
            let Some(slot) = changed.iter_mut().find(|(given, _)| *given == name) else {
                disagreements.push(format!(
                    "{}: the example gives no {name:?}; add it to `example_arguments`",
                    spec.name
                ));
                continue;
            };
            let shape = slot.1.shape().to_vec();
            let count = shape.iter().product();
            slot.1 = Tensor::from_shape(&shape, vec![bad; count]).expect("same shape");
            let mut tape = Tape::new();
            if Distribution::with_constants(&mut tape, family, &changed).is_ok() {
                disagreements.push(format!(
                    "{}: the checker requires {name} to be {:?} but the runtime accepts {bad}",
                    spec.name, param.domain
                ));
            }
        }
    }
    assert_no_disagreement("parameter domains", &disagreements);
}
