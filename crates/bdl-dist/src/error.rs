//! The typed error of this crate. Every variant names what went wrong precisely enough for the
//! runtime to turn it into a diagnostic at the sample or observe site that built the
//! distribution: the family, the parameter, the offending value and the requirement it broke.

use bdl_autodiff::TensorError;
use std::fmt;

/// Why a distribution, a constraint or a bijector could not be built or evaluated.
#[derive(Clone, Debug, PartialEq)]
pub enum DistError {
    /// No family has this name.
    UnknownFamily {
        /// The name as written.
        name: String,
    },
    /// The family has no parameter of this name.
    UnknownParameter {
        /// The family.
        family: &'static str,
        /// The parameter name as written.
        name: String,
    },
    /// A required parameter was not given.
    MissingParameter {
        /// The family.
        family: &'static str,
        /// The parameter, or its alternatives joined by " or ".
        parameter: String,
    },
    /// Two alternatives of one parameter (or one parameter twice) were given.
    ConflictingParameters {
        /// The family.
        family: &'static str,
        /// The parameter names that were given together.
        given: Vec<String>,
    },
    /// A parameter value breaks the family's requirement (scale ≤ 0, a probability outside
    /// [0, 1], NaN, a matrix that is not positive definite, …).
    InvalidParameter {
        /// The family.
        family: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// The first offending element, in row-major order (for a matrix requirement, the
        /// element that revealed the failure, such as a non-positive pivot).
        value: f64,
        /// What the parameter must satisfy, as a lowercase phrase ("greater than 0").
        requirement: &'static str,
    },
    /// A parameter or value has a shape the family cannot use.
    InvalidShape {
        /// The family.
        family: &'static str,
        /// The parameter, or "value".
        what: &'static str,
        /// The shape that was given.
        shape: Vec<usize>,
        /// What was needed, as a lowercase phrase.
        expected: String,
    },
    /// Parameter shapes, or a value's shape and the distribution's, do not broadcast.
    ShapeMismatch {
        /// The family.
        family: &'static str,
        /// What was being combined, as a lowercase phrase.
        what: &'static str,
        /// The first shape.
        left: Vec<usize>,
        /// The second shape.
        right: Vec<usize>,
    },
    /// `expand` was asked for a batch shape the current one cannot broadcast to.
    InvalidExpand {
        /// The family.
        family: &'static str,
        /// The current batch shape.
        batch_shape: Vec<usize>,
        /// The requested batch shape.
        requested: Vec<usize>,
    },
    /// `to_event(n)` was asked to move more dimensions than the batch shape has.
    InvalidToEvent {
        /// The family.
        family: &'static str,
        /// The number of dimensions requested.
        dims: usize,
        /// The current batch shape.
        batch_shape: Vec<usize>,
    },
    /// The family cannot be sampled (improper priors).
    NotSampleable {
        /// The family.
        family: &'static str,
    },
    /// A bijector was requested for a constraint that has none (discrete supports).
    NoBijector {
        /// The constraint, as written in the language.
        constraint: String,
    },
    /// A constrained value handed to a bijector's inverse is outside the constraint or has the
    /// wrong shape.
    ValueOutsideSupport {
        /// The constraint, as written in the language.
        constraint: String,
        /// What is wrong, as a lowercase phrase.
        detail: String,
    },
    /// A constraint was built with bounds that do not make sense (low ≥ high, NaN).
    InvalidConstraint {
        /// The constraint, as written in the language.
        constraint: String,
        /// What is wrong, as a lowercase phrase.
        detail: String,
    },
    /// A tensor operation failed while recording the log-density (a shape error).
    Tensor {
        /// The family, or the constraint for a bijector.
        context: String,
        /// The error from the tape.
        source: TensorError,
    },
}

impl DistError {
    /// Wraps a tape error with the family or constraint it happened in.
    pub fn tensor(context: impl Into<String>, source: TensorError) -> DistError {
        DistError::Tensor {
            context: context.into(),
            source,
        }
    }

    /// Names the family or constraint of a tape error recorded without one.
    pub(crate) fn within(self, context: &str) -> DistError {
        match self {
            DistError::Tensor {
                context: existing,
                source,
            } if existing.is_empty() => DistError::Tensor {
                context: context.to_string(),
                source,
            },
            other => other,
        }
    }
}

impl From<TensorError> for DistError {
    fn from(source: TensorError) -> DistError {
        DistError::Tensor {
            context: String::new(),
            source,
        }
    }
}

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistError::UnknownFamily { name } => write!(f, "unknown distribution `{name}`"),
            DistError::UnknownParameter { family, name } => {
                write!(f, "{family} has no parameter `{name}`")
            }
            DistError::MissingParameter { family, parameter } => {
                write!(f, "{family} needs the parameter `{parameter}`")
            }
            DistError::ConflictingParameters { family, given } => write!(
                f,
                "{family} takes only one of {}",
                given
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DistError::InvalidParameter {
                family,
                parameter,
                value,
                requirement,
            } => write!(
                f,
                "{family}: parameter `{parameter}` must be {requirement}, got {value}"
            ),
            DistError::InvalidShape {
                family,
                what,
                shape,
                expected,
            } => write!(f, "{family}: `{what}` must be {expected}, got shape {shape:?}"),
            DistError::ShapeMismatch {
                family,
                what,
                left,
                right,
            } => write!(
                f,
                "{family}: shapes of {what} do not broadcast: {left:?} and {right:?}"
            ),
            DistError::InvalidExpand {
                family,
                batch_shape,
                requested,
            } => write!(
                f,
                "{family}: cannot expand batch shape {batch_shape:?} to {requested:?}"
            ),
            DistError::InvalidToEvent {
                family,
                dims,
                batch_shape,
            } => write!(
                f,
                "{family}: cannot make {dims} batch dimensions of {batch_shape:?} into event dimensions"
            ),
            DistError::NotSampleable { family } => {
                write!(f, "{family} is an improper prior and cannot be sampled")
            }
            DistError::NoBijector { constraint } => {
                write!(f, "no bijector to unconstrained space for `{constraint}`")
            }
            DistError::ValueOutsideSupport { constraint, detail } => {
                write!(f, "value is not in `{constraint}`: {detail}")
            }
            DistError::InvalidConstraint { constraint, detail } => {
                write!(f, "invalid constraint `{constraint}`: {detail}")
            }
            DistError::Tensor { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for DistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DistError::Tensor { source, .. } => Some(source),
            _ => None,
        }
    }
}
