//! Constraints: the sets that values of a distribution (its support) or of a `param` site live
//! in. A constraint checks plain tensors, so the runtime can validate data with it and say which
//! element is wrong, and [`crate::Bijector::for_constraint`] maps unconstrained space onto it.
//!
//! Bounds that are not fixed numbers (`Uniform(0, tau)` with a latent `tau`) carry the tape
//! variable they came from, so that the bijector built from the support stays differentiable in
//! them.
//!
//! Floating point cannot keep every inequality strict: `a + exp(x)` rounds to `a` once `exp(x)`
//! is below half a unit in the last place of `a`. The bounded constraints (`interval`,
//! `greater_than`, `less_than`, `ordered`) are therefore checked as closed sets, as NumPyro does
//! for intervals; `positive` stays strict because `exp(x)` never rounds to zero for the
//! unconstrained inputs the bijectors are specified for (|x| ≤ 700).

use bdl_autodiff::{Tensor, Var};
use std::fmt;

/// Relative tolerance for the equality parts of structured constraints: a simplex sums to one,
/// a correlation Cholesky factor has rows of unit length, a positive-definite matrix is symmetric.
pub const STRUCTURE_TOLERANCE: f64 = 1e-6;

/// A bound of an interval-like constraint: its value (a tensor that broadcasts against the
/// constrained value) and, when it was computed on the tape, the variable holding it.
#[derive(Clone, Debug)]
pub struct Bound {
    /// The value of the bound.
    pub value: Tensor,
    /// The tape variable the bound came from, if any; bijectors then use it so that gradients
    /// flow into it.
    pub var: Option<Var>,
}

impl Bound {
    /// A fixed scalar bound.
    pub fn constant(value: f64) -> Bound {
        Bound {
            value: Tensor::scalar(value),
            var: None,
        }
    }

    /// A bound held by a variable of a tape, with its current value.
    pub fn on_tape(value: Tensor, var: Var) -> Bound {
        Bound {
            value,
            var: Some(var),
        }
    }

    /// The single value of a scalar bound, or `None` for a tensor of several elements.
    pub fn scalar(&self) -> Option<f64> {
        self.value.item().ok()
    }
}

impl PartialEq for Bound {
    fn eq(&self, other: &Bound) -> bool {
        self.value == other.value
    }
}

impl From<f64> for Bound {
    fn from(value: f64) -> Bound {
        Bound::constant(value)
    }
}

/// A set of values. Element-wise constraints apply to every element; the structured ones apply
/// to the last axis (vectors) or the last two axes (matrices), as [`Constraint::event_rank`]
/// says.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// Finite real numbers.
    Real,
    /// Finite real vectors (the support of a multivariate normal).
    RealVector,
    /// Finite numbers greater than zero.
    Positive,
    /// Numbers in [0, 1].
    UnitInterval,
    /// Numbers in [low, high].
    Interval {
        /// The lower bound.
        low: Bound,
        /// The upper bound.
        high: Bound,
    },
    /// Finite numbers at or above the bound.
    GreaterThan(Bound),
    /// Finite numbers at or below the bound.
    LessThan(Bound),
    /// Vectors of non-negative numbers summing to one.
    Simplex,
    /// Non-decreasing vectors of finite numbers.
    Ordered,
    /// Non-decreasing vectors of positive finite numbers.
    PositiveOrdered,
    /// Lower-triangular matrices with positive diagonal and rows of unit length: Cholesky
    /// factors of correlation matrices.
    CorrCholesky,
    /// Lower-triangular matrices with positive diagonal: Cholesky factors of covariance or
    /// precision matrices.
    LowerCholesky,
    /// Symmetric positive-definite matrices.
    PositiveDefinite,
    /// The numbers 0 and 1.
    Boolean,
    /// Whole numbers 0, 1, 2, ….
    NonnegativeInteger,
    /// Whole numbers in [low, high].
    IntegerInterval {
        /// The smallest value.
        low: f64,
        /// The largest value.
        high: f64,
    },
}

impl Constraint {
    /// `interval(low, high)` with fixed bounds.
    pub fn interval(low: f64, high: f64) -> Constraint {
        Constraint::Interval {
            low: Bound::constant(low),
            high: Bound::constant(high),
        }
    }

    /// `greater_than(low)` with a fixed bound.
    pub fn greater_than(low: f64) -> Constraint {
        Constraint::GreaterThan(Bound::constant(low))
    }

    /// `less_than(high)` with a fixed bound.
    pub fn less_than(high: f64) -> Constraint {
        Constraint::LessThan(Bound::constant(high))
    }

    /// The constraint named as in the language (`param(name, init, positive)`), with its
    /// numeric arguments: `interval` takes two, `greater_than` and `less_than` one, the others
    /// none. `cov_cholesky` and `lower_cholesky` are the same set.
    pub fn from_name(name: &str, arguments: &[f64]) -> Option<Constraint> {
        let constraint = match (name, arguments) {
            ("real", []) => Constraint::Real,
            ("real_vector", []) => Constraint::RealVector,
            ("positive", []) => Constraint::Positive,
            ("unit_interval", []) => Constraint::UnitInterval,
            ("interval", [low, high]) => Constraint::interval(*low, *high),
            ("greater_than", [low]) => Constraint::greater_than(*low),
            ("less_than", [high]) => Constraint::less_than(*high),
            ("simplex", []) => Constraint::Simplex,
            ("ordered", []) => Constraint::Ordered,
            ("positive_ordered", []) => Constraint::PositiveOrdered,
            ("corr_cholesky", []) => Constraint::CorrCholesky,
            ("cov_cholesky" | "lower_cholesky", []) => Constraint::LowerCholesky,
            ("positive_definite", []) => Constraint::PositiveDefinite,
            ("boolean", []) => Constraint::Boolean,
            ("nonnegative_integer", []) => Constraint::NonnegativeInteger,
            ("integer_interval", [low, high]) => Constraint::IntegerInterval {
                low: *low,
                high: *high,
            },
            _ => return None,
        };
        Some(constraint)
    }

    /// The names [`Constraint::from_name`] accepts, with how many numeric arguments each takes.
    pub const NAMES: &'static [(&'static str, usize)] = &[
        ("real", 0),
        ("real_vector", 0),
        ("positive", 0),
        ("unit_interval", 0),
        ("interval", 2),
        ("greater_than", 1),
        ("less_than", 1),
        ("simplex", 0),
        ("ordered", 0),
        ("positive_ordered", 0),
        ("corr_cholesky", 0),
        ("cov_cholesky", 0),
        ("lower_cholesky", 0),
        ("positive_definite", 0),
        ("boolean", 0),
        ("nonnegative_integer", 0),
        ("integer_interval", 2),
    ];

    /// How many trailing axes one element of the constrained set spans: 0 for element-wise
    /// constraints, 1 for vectors, 2 for matrices.
    pub fn event_rank(&self) -> usize {
        match self {
            Constraint::RealVector
            | Constraint::Simplex
            | Constraint::Ordered
            | Constraint::PositiveOrdered => 1,
            Constraint::CorrCholesky | Constraint::LowerCholesky | Constraint::PositiveDefinite => {
                2
            }
            _ => 0,
        }
    }

    /// Whether the set is discrete (no bijector, no gradients).
    pub fn is_discrete(&self) -> bool {
        matches!(
            self,
            Constraint::Boolean
                | Constraint::NonnegativeInteger
                | Constraint::IntegerInterval { .. }
        )
    }

    /// Whether every element of `value` lies in the set.
    pub fn check(&self, value: &Tensor) -> bool {
        self.violation(value).is_none()
    }

    /// The first reason `value` is not in the set, as a lowercase phrase naming the element
    /// (`"element 3 is -0.5, not greater than 0"`), or `None` when it is.
    pub fn violation(&self, value: &Tensor) -> Option<String> {
        let data = value.data();
        let shape = value.shape();
        if shape.len() < self.event_rank() {
            return Some(format!(
                "a value of shape {shape:?} has fewer than {} axes",
                self.event_rank()
            ));
        }
        let elementwise = |test: &dyn Fn(usize, f64) -> bool, requirement: &str| {
            data.iter()
                .enumerate()
                .find(|(index, &x)| !test(*index, x))
                .map(|(index, &x)| format!("element {index} is {x}, not {requirement}"))
        };
        match self {
            Constraint::Real => elementwise(&|_, x| x.is_finite(), "a finite number"),
            Constraint::Positive => elementwise(
                &|_, x| x > 0.0 && x.is_finite(),
                "a finite number greater than 0",
            ),
            Constraint::UnitInterval => elementwise(&|_, x| (0.0..=1.0).contains(&x), "in [0, 1]"),
            Constraint::Interval { low, high } => {
                let lows = bound_per_element(low, shape)?;
                let highs = bound_per_element(high, shape)?;
                data.iter().enumerate().find_map(|(index, &x)| {
                    (!(x >= lows[index] && x <= highs[index])).then(|| {
                        format!(
                            "element {index} is {x}, not in [{}, {}]",
                            lows[index], highs[index]
                        )
                    })
                })
            }
            Constraint::GreaterThan(low) => {
                let lows = bound_per_element(low, shape)?;
                data.iter().enumerate().find_map(|(index, &x)| {
                    (!(x >= lows[index] && x.is_finite()))
                        .then(|| format!("element {index} is {x}, not at least {}", lows[index]))
                })
            }
            Constraint::LessThan(high) => {
                let highs = bound_per_element(high, shape)?;
                data.iter().enumerate().find_map(|(index, &x)| {
                    (!(x <= highs[index] && x.is_finite()))
                        .then(|| format!("element {index} is {x}, not at most {}", highs[index]))
                })
            }
            Constraint::Boolean => elementwise(&|_, x| x == 0.0 || x == 1.0, "0 or 1"),
            Constraint::NonnegativeInteger => elementwise(
                &|_, x| x >= 0.0 && x.is_finite() && x.fract() == 0.0,
                "a whole number at least 0",
            ),
            Constraint::IntegerInterval { low, high } => elementwise(
                &|_, x| x >= *low && x <= *high && x.fract() == 0.0,
                &format!("a whole number in [{low}, {high}]"),
            ),
            Constraint::RealVector => elementwise(&|_, x| x.is_finite(), "a finite number"),
            Constraint::Simplex => each_row(data, shape, |row| {
                if let Some(x) = row.iter().find(|x| !(**x >= 0.0 && x.is_finite())) {
                    return Some(format!("entry {x} is negative or not finite"));
                }
                let total: f64 = row.iter().sum();
                ((total - 1.0).abs() > STRUCTURE_TOLERANCE)
                    .then(|| format!("entries sum to {total}, not 1"))
            }),
            Constraint::Ordered | Constraint::PositiveOrdered => {
                let positive = matches!(self, Constraint::PositiveOrdered);
                each_row(data, shape, |row| {
                    if let Some(x) = row.iter().find(|x| !x.is_finite()) {
                        return Some(format!("entry {x} is not finite"));
                    }
                    if positive {
                        if let Some(x) = row.iter().find(|x| **x <= 0.0) {
                            return Some(format!("entry {x} is not positive"));
                        }
                    }
                    row.windows(2)
                        .find(|pair| pair[1] < pair[0])
                        .map(|pair| format!("entries {} then {} decrease", pair[0], pair[1]))
                })
            }
            Constraint::CorrCholesky | Constraint::LowerCholesky | Constraint::PositiveDefinite => {
                let rows = shape[shape.len() - 2];
                let cols = shape[shape.len() - 1];
                if rows != cols {
                    return Some(format!("a matrix of shape {rows}×{cols} is not square"));
                }
                each_matrix(data, rows, |matrix| self.matrix_violation(matrix, rows))
            }
        }
    }

    /// The reason one `n × n` matrix (row-major) is not in a matrix constraint.
    fn matrix_violation(&self, matrix: &[f64], n: usize) -> Option<String> {
        if let Some(x) = matrix.iter().find(|x| !x.is_finite()) {
            return Some(format!("entry {x} is not finite"));
        }
        match self {
            Constraint::CorrCholesky | Constraint::LowerCholesky => {
                for i in 0..n {
                    for j in i + 1..n {
                        if matrix[i * n + j] != 0.0 {
                            return Some(format!(
                                "entry ({i}, {j}) above the diagonal is {}, not 0",
                                matrix[i * n + j]
                            ));
                        }
                    }
                    if matrix[i * n + i] <= 0.0 {
                        return Some(format!(
                            "diagonal entry {i} is {}, not positive",
                            matrix[i * n + i]
                        ));
                    }
                    if matches!(self, Constraint::CorrCholesky) {
                        let norm: f64 = matrix[i * n..i * n + i + 1]
                            .iter()
                            .map(|x| x * x)
                            .sum::<f64>()
                            .sqrt();
                        if (norm - 1.0).abs() > STRUCTURE_TOLERANCE {
                            return Some(format!("row {i} has length {norm}, not 1"));
                        }
                    }
                }
                None
            }
            _ => {
                for i in 0..n {
                    for j in 0..i {
                        let (a, b) = (matrix[i * n + j], matrix[j * n + i]);
                        if (a - b).abs() > STRUCTURE_TOLERANCE * a.abs().max(b.abs()).max(1.0) {
                            return Some(format!(
                                "entries ({i}, {j}) = {a} and ({j}, {i}) = {b} differ"
                            ));
                        }
                    }
                }
                crate::linalg::cholesky(matrix, n)
                    .err()
                    .map(|pivot| format!("not positive definite (pivot {pivot})"))
            }
        }
    }
}

/// The bound's value at each element of a tensor of `shape`, or a message when it does not
/// broadcast.
fn bound_per_element(bound: &Bound, shape: &[usize]) -> Option<Vec<f64>> {
    crate::shape::broadcast_data(&bound.value, shape)
}

/// Applies `test` to each last-axis row, returning the first failure with the row's position.
fn each_row(
    data: &[f64],
    shape: &[usize],
    test: impl Fn(&[f64]) -> Option<String>,
) -> Option<String> {
    let width = shape.last().copied().unwrap_or(1).max(1);
    data.chunks(width)
        .enumerate()
        .find_map(|(index, row)| test(row).map(|reason| format!("vector {index}: {reason}")))
}

/// Applies `test` to each trailing `n × n` matrix, returning the first failure with its position.
fn each_matrix(data: &[f64], n: usize, test: impl Fn(&[f64]) -> Option<String>) -> Option<String> {
    data.chunks((n * n).max(1))
        .enumerate()
        .find_map(|(index, matrix)| test(matrix).map(|reason| format!("matrix {index}: {reason}")))
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |bound: &Bound| match bound.scalar() {
            Some(value) => format!("{value}"),
            None => format!("<tensor {:?}>", bound.value.shape()),
        };
        match self {
            Constraint::Real => write!(f, "real"),
            Constraint::RealVector => write!(f, "real_vector"),
            Constraint::Positive => write!(f, "positive"),
            Constraint::UnitInterval => write!(f, "unit_interval"),
            Constraint::Interval { low, high } => {
                write!(f, "interval({}, {})", show(low), show(high))
            }
            Constraint::GreaterThan(low) => write!(f, "greater_than({})", show(low)),
            Constraint::LessThan(high) => write!(f, "less_than({})", show(high)),
            Constraint::Simplex => write!(f, "simplex"),
            Constraint::Ordered => write!(f, "ordered"),
            Constraint::PositiveOrdered => write!(f, "positive_ordered"),
            Constraint::CorrCholesky => write!(f, "corr_cholesky"),
            Constraint::LowerCholesky => write!(f, "lower_cholesky"),
            Constraint::PositiveDefinite => write!(f, "positive_definite"),
            Constraint::Boolean => write!(f, "boolean"),
            Constraint::NonnegativeInteger => write!(f, "nonnegative_integer"),
            Constraint::IntegerInterval { low, high } => {
                write!(f, "integer_interval({low}, {high})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(n: usize, data: &[f64]) -> Tensor {
        Tensor::from_shape(&[n, n], data.to_vec()).unwrap()
    }

    #[test]
    fn elementwise_constraints_check_every_element() {
        let values = Tensor::vector(vec![0.5, 1.0, 2.0]);
        assert!(Constraint::Positive.check(&values));
        assert!(!Constraint::UnitInterval.check(&values));
        assert!(Constraint::interval(0.5, 2.0).check(&values));
        assert!(!Constraint::greater_than(0.6).check(&values));
        assert!(Constraint::less_than(2.0).check(&values));
        assert!(!Constraint::Real.check(&Tensor::scalar(f64::NAN)));
        assert!(!Constraint::Positive.check(&Tensor::scalar(0.0)));
        assert_eq!(
            Constraint::Positive.violation(&Tensor::vector(vec![1.0, -2.0])),
            Some("element 1 is -2, not a finite number greater than 0".to_string())
        );
    }

    #[test]
    fn discrete_constraints_need_whole_numbers() {
        assert!(Constraint::Boolean.check(&Tensor::vector(vec![0.0, 1.0])));
        assert!(!Constraint::Boolean.check(&Tensor::scalar(0.5)));
        assert!(Constraint::NonnegativeInteger.check(&Tensor::vector(vec![0.0, 7.0])));
        assert!(!Constraint::NonnegativeInteger.check(&Tensor::scalar(-1.0)));
        let die = Constraint::IntegerInterval {
            low: 1.0,
            high: 6.0,
        };
        assert!(die.check(&Tensor::scalar(6.0)));
        assert!(!die.check(&Tensor::scalar(2.5)));
    }

    #[test]
    fn structured_constraints_check_rows_and_matrices() {
        assert!(Constraint::Simplex.check(&Tensor::vector(vec![0.2, 0.8])));
        assert!(!Constraint::Simplex.check(&Tensor::vector(vec![0.2, 0.7])));
        assert!(Constraint::Ordered.check(&Tensor::vector(vec![-1.0, 0.0, 3.0])));
        assert!(!Constraint::PositiveOrdered.check(&Tensor::vector(vec![-1.0, 0.0, 3.0])));
        let corr = matrix(2, &[1.0, 0.0, 0.6, 0.8]);
        assert!(Constraint::CorrCholesky.check(&corr));
        assert!(Constraint::LowerCholesky.check(&corr));
        assert!(!Constraint::CorrCholesky.check(&matrix(2, &[1.0, 0.0, 0.6, 0.5])));
        assert!(!Constraint::LowerCholesky.check(&matrix(2, &[1.0, 0.1, 0.6, 0.5])));
        assert!(Constraint::PositiveDefinite.check(&matrix(2, &[2.0, 1.0, 1.0, 2.0])));
        assert!(!Constraint::PositiveDefinite.check(&matrix(2, &[1.0, 2.0, 2.0, 1.0])));
        assert!(!Constraint::PositiveDefinite.check(&matrix(2, &[2.0, 1.0, 0.0, 2.0])));
    }

    #[test]
    fn names_round_trip_through_display() {
        for (name, arity) in Constraint::NAMES {
            let arguments = [0.0, 1.0];
            let constraint = Constraint::from_name(name, &arguments[..*arity]);
            assert!(constraint.is_some(), "{name}");
        }
        assert_eq!(Constraint::interval(0.0, 1.0).to_string(), "interval(0, 1)");
        assert_eq!(Constraint::from_name("positive", &[1.0]), None);
    }
}
