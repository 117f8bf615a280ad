//! Bijectors from unconstrained space onto each continuous [`Constraint`], recorded on the tape
//! with the log-determinant of their Jacobian, and their inverses on plain tensors (for initial
//! values a user gives in constrained space).
//!
//! `forward` returns the constrained value and log|det J| summed over every element (one number),
//! the term a log-density in unconstrained space adds. For structured constraints the Jacobian
//! is taken with respect to the free coordinates: the first K − 1 entries of a simplex, the
//! strictly lower triangle of a correlation Cholesky factor, the lower triangle (diagonal
//! included) of a covariance Cholesky factor or of a positive-definite matrix.
//!
//! Everything is written so that unconstrained inputs up to ±700 stay finite: logarithms of the
//! sigmoid and of sech come from `log_sigmoid` and `softplus`, and stick-breaking works on log
//! scale until its last step.

use crate::constraint::{Bound, Constraint};
use crate::math::constant;
use crate::DistError;
use bdl_autodiff::{Tape, Tensor, Var};
use std::f64::consts::LN_2;

/// How positive values are reached from the real line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PositiveTransform {
    /// y = exp(x), log|dy/dx| = x (the default, as in Stan and NumPyro).
    #[default]
    Exp,
    /// y = softplus(x) = log(1 + eˣ), log|dy/dx| = log σ(x); gentler for large x.
    Softplus,
}

/// A differentiable bijection from ℝᵐ onto a constraint's set.
#[derive(Clone, Debug, PartialEq)]
pub enum Bijector {
    /// The identity, for `real` and `real_vector`.
    Identity,
    /// y = low + f(x) with f from the positive transform (`positive` is low = 0).
    LowerBound {
        /// The lower bound.
        low: Bound,
        /// How x reaches (0, ∞).
        transform: PositiveTransform,
    },
    /// y = high − f(x).
    UpperBound {
        /// The upper bound.
        high: Bound,
        /// How x reaches (0, ∞).
        transform: PositiveTransform,
    },
    /// y = low + (high − low) σ(x).
    ScaledSigmoid {
        /// The lower bound.
        low: Bound,
        /// The upper bound.
        high: Bound,
    },
    /// Stick-breaking onto the simplex: K − 1 unconstrained numbers to K proportions.
    StickBreaking,
    /// y₀ = x₀, yᵢ = yᵢ₋₁ + exp(xᵢ).
    Ordered,
    /// yᵢ = Σ_{j≤i} exp(xⱼ).
    PositiveOrdered,
    /// n(n − 1)/2 numbers to the Cholesky factor of an n × n correlation matrix, through
    /// partial correlations tanh(x) (the signed stick-breaking of Stan and NumPyro).
    CorrCholesky,
    /// n(n + 1)/2 numbers to a lower-triangular matrix with diagonal exp(x).
    LowerCholesky,
    /// The lower Cholesky bijector followed by L ↦ L Lᵀ.
    PositiveDefinite,
}

impl Bijector {
    /// The default bijector onto `constraint` (exp for positive and one-sided bounds).
    pub fn for_constraint(constraint: &Constraint) -> Result<Bijector, DistError> {
        Bijector::for_constraint_with(constraint, PositiveTransform::Exp)
    }

    /// The bijector onto `constraint`, reaching positive numbers (and one-sided bounds) by
    /// `positive`.
    pub fn for_constraint_with(
        constraint: &Constraint,
        positive: PositiveTransform,
    ) -> Result<Bijector, DistError> {
        let finite_bound = |bound: &Bound| {
            if bound.value.data().iter().all(|x| x.is_finite()) {
                Ok(bound.clone())
            } else {
                Err(DistError::InvalidConstraint {
                    constraint: constraint.to_string(),
                    detail: "bounds must be finite numbers".to_string(),
                })
            }
        };
        let bijector = match constraint {
            Constraint::Real | Constraint::RealVector => Bijector::Identity,
            Constraint::Positive => Bijector::LowerBound {
                low: Bound::constant(0.0),
                transform: positive,
            },
            Constraint::GreaterThan(low) => Bijector::LowerBound {
                low: finite_bound(low)?,
                transform: positive,
            },
            Constraint::LessThan(high) => Bijector::UpperBound {
                high: finite_bound(high)?,
                transform: positive,
            },
            Constraint::UnitInterval => Bijector::ScaledSigmoid {
                low: Bound::constant(0.0),
                high: Bound::constant(1.0),
            },
            Constraint::Interval { low, high } => {
                let (low, high) = (finite_bound(low)?, finite_bound(high)?);
                let ordered = crate::shape::broadcast_shapes(low.value.shape(), high.value.shape())
                    .and_then(|shape| {
                        let lows = crate::shape::broadcast_data(&low.value, &shape)?;
                        let highs = crate::shape::broadcast_data(&high.value, &shape)?;
                        Some(lows.iter().zip(&highs).all(|(l, h)| l < h))
                    });
                if ordered != Some(true) {
                    return Err(DistError::InvalidConstraint {
                        constraint: constraint.to_string(),
                        detail: "the lower bound must be below the upper bound".to_string(),
                    });
                }
                Bijector::ScaledSigmoid { low, high }
            }
            Constraint::Simplex => Bijector::StickBreaking,
            Constraint::Ordered => Bijector::Ordered,
            Constraint::PositiveOrdered => Bijector::PositiveOrdered,
            Constraint::CorrCholesky => Bijector::CorrCholesky,
            Constraint::LowerCholesky => Bijector::LowerCholesky,
            Constraint::PositiveDefinite => Bijector::PositiveDefinite,
            Constraint::Boolean
            | Constraint::NonnegativeInteger
            | Constraint::IntegerInterval { .. } => {
                return Err(DistError::NoBijector {
                    constraint: constraint.to_string(),
                })
            }
        };
        Ok(bijector)
    }

    /// The constraint this bijector maps onto.
    pub fn constraint(&self) -> Constraint {
        match self {
            Bijector::Identity => Constraint::Real,
            Bijector::LowerBound { low, .. } => Constraint::GreaterThan(low.clone()),
            Bijector::UpperBound { high, .. } => Constraint::LessThan(high.clone()),
            Bijector::ScaledSigmoid { low, high } => Constraint::Interval {
                low: low.clone(),
                high: high.clone(),
            },
            Bijector::StickBreaking => Constraint::Simplex,
            Bijector::Ordered => Constraint::Ordered,
            Bijector::PositiveOrdered => Constraint::PositiveOrdered,
            Bijector::CorrCholesky => Constraint::CorrCholesky,
            Bijector::LowerCholesky => Constraint::LowerCholesky,
            Bijector::PositiveDefinite => Constraint::PositiveDefinite,
        }
    }

    /// The shape of the unconstrained input for a constrained value of shape `constrained`:
    /// simplex `[.., K]` → `[.., K − 1]`; correlation Cholesky `[.., n, n]` → `[.., n(n−1)/2]`;
    /// covariance Cholesky and positive-definite `[.., n, n]` → `[.., n(n+1)/2]`; otherwise the
    /// same shape.
    pub fn unconstrained_shape(&self, constrained: &[usize]) -> Result<Vec<usize>, DistError> {
        let bad = |expected: &str| DistError::InvalidShape {
            family: "bijector",
            what: "value",
            shape: constrained.to_vec(),
            expected: expected.to_string(),
        };
        match self {
            Bijector::StickBreaking => match constrained.split_last() {
                Some((&k, batch)) if k >= 1 => Ok([batch, &[k - 1]].concat()),
                _ => Err(bad("a vector with at least one entry")),
            },
            Bijector::Ordered | Bijector::PositiveOrdered => match constrained.last() {
                Some(_) => Ok(constrained.to_vec()),
                None => Err(bad("a vector")),
            },
            Bijector::CorrCholesky | Bijector::LowerCholesky | Bijector::PositiveDefinite => {
                match constrained {
                    [batch @ .., rows, cols] if rows == cols => {
                        let n = *rows;
                        let free = if matches!(self, Bijector::CorrCholesky) {
                            n * n.saturating_sub(1) / 2
                        } else {
                            n * (n + 1) / 2
                        };
                        Ok([batch, &[free]].concat())
                    }
                    _ => Err(bad("a square matrix")),
                }
            }
            _ => Ok(constrained.to_vec()),
        }
    }

    /// The shape of the constrained value for an unconstrained input of shape `unconstrained`
    /// (the inverse of [`Bijector::unconstrained_shape`]).
    pub fn constrained_shape(&self, unconstrained: &[usize]) -> Result<Vec<usize>, DistError> {
        let bad = |expected: &str| DistError::InvalidShape {
            family: "bijector",
            what: "unconstrained value",
            shape: unconstrained.to_vec(),
            expected: expected.to_string(),
        };
        match self {
            Bijector::StickBreaking => match unconstrained.split_last() {
                Some((&m, batch)) => Ok([batch, &[m + 1]].concat()),
                None => Err(bad("a vector")),
            },
            Bijector::CorrCholesky | Bijector::LowerCholesky | Bijector::PositiveDefinite => {
                let Some((&m, batch)) = unconstrained.split_last() else {
                    return Err(bad("a vector of free coordinates"));
                };
                let n = matrix_size(m, matches!(self, Bijector::CorrCholesky))
                    .map_err(|_| bad("a triangular number of free coordinates"))?;
                Ok([batch, &[n, n]].concat())
            }
            _ => Ok(unconstrained.to_vec()),
        }
    }

    /// Maps an unconstrained `x` into the constraint's set; returns the constrained value and
    /// log|det J| summed over all elements.
    pub fn forward(&self, tape: &mut Tape, x: Var) -> Result<(Var, Var), DistError> {
        let context = self.constraint().to_string();
        self.forward_inner(tape, x)
            .map_err(|error| error.within(&context))
    }

    fn forward_inner(&self, tape: &mut Tape, x: Var) -> Result<(Var, Var), DistError> {
        match self {
            Bijector::Identity => {
                let zero = constant(tape, 0.0);
                Ok((x, zero))
            }
            Bijector::LowerBound { low, transform } => {
                let (positive, log_det) = positive_forward(tape, x, *transform);
                let y = if is_zero(low) {
                    positive
                } else {
                    let low = bound_var(tape, low);
                    tape.add(low, positive)?
                };
                Ok((y, log_det))
            }
            Bijector::UpperBound { high, transform } => {
                let (positive, log_det) = positive_forward(tape, x, *transform);
                let high = bound_var(tape, high);
                let y = tape.sub(high, positive)?;
                Ok((y, log_det))
            }
            Bijector::ScaledSigmoid { low, high } => {
                // y = low + (high − low) σ(x);
                // log dy/dx = log(high − low) + log σ(x) + log σ(−x).
                let low_var = bound_var(tape, low);
                let high_var = bound_var(tape, high);
                let width = tape.sub(high_var, low_var)?;
                let sigmoid = tape.sigmoid(x);
                let scaled = tape.mul(width, sigmoid)?;
                let y = tape.add(low_var, scaled)?;
                let log_width = tape.log(width);
                let log_sigmoid = tape.log_sigmoid(x);
                let minus_x = tape.neg(x);
                let log_complement = tape.log_sigmoid(minus_x);
                let terms = tape.add(log_sigmoid, log_complement)?;
                let terms = tape.add(terms, log_width)?;
                Ok((y, tape.sum(terms)))
            }
            Bijector::StickBreaking => stick_breaking_forward(tape, x),
            Bijector::Ordered | Bijector::PositiveOrdered => {
                let k = last_extent(tape, x);
                let positive = matches!(self, Bijector::PositiveOrdered);
                let (pieces, log_det) = if positive {
                    let pieces = tape.exp(x);
                    (pieces, tape.sum(x))
                } else if k <= 1 {
                    (x, constant(tape, 0.0))
                } else {
                    let first = tape.slice(x, -1, 0, 1)?;
                    let rest = tape.slice(x, -1, 1, k)?;
                    let increments = tape.exp(rest);
                    let pieces = tape.concat(&[first, increments], -1)?;
                    (pieces, tape.sum(rest))
                };
                // Cumulative sums along the last axis: pieces · U with Uⱼᵢ = 1 for j ≤ i.
                let cumulative = matrix_constant(tape, k, k, |j, i| j <= i);
                let y = tape.matmul(pieces, cumulative)?;
                Ok((y, log_det))
            }
            Bijector::CorrCholesky => corr_cholesky_forward(tape, x),
            Bijector::LowerCholesky => lower_cholesky_forward(tape, x),
            Bijector::PositiveDefinite => {
                let (lower, log_det_lower) = lower_cholesky_forward(tape, x)?;
                let n = last_extent(tape, lower);
                let upper = tape.transpose(lower);
                let y = tape.matmul(lower, upper)?;
                // For Σ = L Lᵀ over the lower triangle: log|J| = n log 2 + Σᵢ (n − i) log Lᵢᵢ
                // (0-based i), and log Lᵢᵢ is the free diagonal coordinate.
                let diagonal = crate::math::diagonal(tape, lower)?;
                let log_diagonal = tape.log(diagonal);
                let weights =
                    tape.constant(Tensor::vector((0..n).map(|i| (n - i) as f64).collect()));
                let weighted = tape.mul(log_diagonal, weights)?;
                let total = tape.sum(weighted);
                let matrices = tape.value(lower).len() / (n * n).max(1);
                let total = tape.add_scalar(total, matrices as f64 * n as f64 * LN_2);
                let log_det = tape.add(total, log_det_lower)?;
                Ok((y, log_det))
            }
        }
    }

    /// Maps a constrained value back to unconstrained space. Fails when the value is outside
    /// the constraint (or on its boundary, where the inverse is infinite).
    pub fn inverse(&self, y: &Tensor) -> Result<Tensor, DistError> {
        let outside = |detail: String| DistError::ValueOutsideSupport {
            constraint: self.constraint().to_string(),
            detail,
        };
        if let Some(reason) = self.constraint().violation(y) {
            return Err(outside(reason));
        }
        let shape = y.shape();
        let data = y.data();
        let out: Vec<f64> = match self {
            Bijector::Identity => data.to_vec(),
            Bijector::LowerBound { low, transform } => {
                let lows = spread(low, shape).ok_or_else(|| outside("bound shape".to_string()))?;
                data.iter()
                    .zip(&lows)
                    .map(|(y, l)| positive_inverse(y - l, *transform))
                    .collect()
            }
            Bijector::UpperBound { high, transform } => {
                let highs =
                    spread(high, shape).ok_or_else(|| outside("bound shape".to_string()))?;
                data.iter()
                    .zip(&highs)
                    .map(|(y, h)| positive_inverse(h - y, *transform))
                    .collect()
            }
            Bijector::ScaledSigmoid { low, high } => {
                let lows = spread(low, shape).ok_or_else(|| outside("bound shape".to_string()))?;
                let highs =
                    spread(high, shape).ok_or_else(|| outside("bound shape".to_string()))?;
                data.iter()
                    .zip(lows.iter().zip(&highs))
                    .map(|(y, (l, h))| {
                        // logit((y − low)/(high − low)) = log(y − low) − log(high − y).
                        (y - l).ln() - (h - y).ln()
                    })
                    .collect()
            }
            Bijector::StickBreaking => {
                let k = shape.last().copied().unwrap_or(1);
                let mut out = Vec::with_capacity(data.len() / k.max(1) * k.saturating_sub(1));
                for row in data.chunks(k.max(1)) {
                    // Remaining stick before entry i, as a suffix sum (accurate when it is small).
                    let mut suffix = vec![0.0; k + 1];
                    for i in (0..k).rev() {
                        suffix[i] = suffix[i + 1] + row[i];
                    }
                    for i in 0..k.saturating_sub(1) {
                        // x̃ᵢ = logit(zᵢ) = log yᵢ − log(remaining after i); xᵢ = x̃ᵢ + log(K − 1 − i).
                        out.push(row[i].ln() - suffix[i + 1].ln() + ((k - 1 - i) as f64).ln());
                    }
                }
                out
            }
            Bijector::Ordered | Bijector::PositiveOrdered => {
                let k = shape.last().copied().unwrap_or(1).max(1);
                let positive = matches!(self, Bijector::PositiveOrdered);
                let mut out = Vec::with_capacity(data.len());
                for row in data.chunks(k) {
                    for i in 0..row.len() {
                        out.push(match (i, positive) {
                            (0, false) => row[0],
                            (0, true) => row[0].ln(),
                            _ => (row[i] - row[i - 1]).ln(),
                        });
                    }
                }
                out
            }
            Bijector::CorrCholesky => {
                let n = shape.last().copied().unwrap_or(1).max(1);
                let mut out = Vec::new();
                for matrix in data.chunks(n * n) {
                    for i in 1..n {
                        // The stick left before entry j of row i: Lᵢᵢ² + Σ_{k≥j} Lᵢₖ².
                        let mut remaining = matrix[i * n + i].powi(2);
                        let mut row_out = vec![0.0; i];
                        for j in (0..i).rev() {
                            remaining += matrix[i * n + j].powi(2);
                            let z = matrix[i * n + j] / remaining.sqrt();
                            row_out[j] = z.atanh();
                        }
                        out.extend(row_out);
                    }
                }
                out
            }
            Bijector::LowerCholesky | Bijector::PositiveDefinite => {
                let n = shape.last().copied().unwrap_or(1).max(1);
                let mut out = Vec::new();
                for matrix in data.chunks(n * n) {
                    let lower = if matches!(self, Bijector::PositiveDefinite) {
                        crate::linalg::cholesky(matrix, n).map_err(|pivot| {
                            outside(format!("not positive definite (pivot {pivot})"))
                        })?
                    } else {
                        matrix.to_vec()
                    };
                    for i in 0..n {
                        for j in 0..=i {
                            let entry = lower[i * n + j];
                            out.push(if i == j { entry.ln() } else { entry });
                        }
                    }
                }
                out
            }
        };
        if let Some(bad) = out.iter().find(|x| !x.is_finite()) {
            return Err(outside(format!(
                "the value is on the boundary (its unconstrained image is {bad})"
            )));
        }
        let out_shape = self.unconstrained_shape(shape)?;
        Tensor::from_shape(&out_shape, out)
            .map_err(|e| DistError::tensor(self.constraint().to_string(), e))
    }
}

/// Whether a bound is the fixed number zero.
fn is_zero(bound: &Bound) -> bool {
    bound.var.is_none() && bound.value.data().iter().all(|x| *x == 0.0)
}

/// The bound's variable, or a constant holding its value.
fn bound_var(tape: &mut Tape, bound: &Bound) -> Var {
    match bound.var {
        Some(var) => var,
        None => tape.constant(bound.value.clone()),
    }
}

/// The bound's values repeated over `shape`.
fn spread(bound: &Bound, shape: &[usize]) -> Option<Vec<f64>> {
    crate::shape::broadcast_data(&bound.value, shape)
}

/// f(x) and Σ log f'(x) for the positive transforms.
fn positive_forward(tape: &mut Tape, x: Var, transform: PositiveTransform) -> (Var, Var) {
    match transform {
        PositiveTransform::Exp => {
            // d/dx eˣ = eˣ, so log|J| = Σ x.
            let y = tape.exp(x);
            (y, tape.sum(x))
        }
        PositiveTransform::Softplus => {
            // d/dx softplus(x) = σ(x), so log|J| = Σ log σ(x).
            let y = tape.softplus(x);
            let log_sigmoid = tape.log_sigmoid(x);
            (y, tape.sum(log_sigmoid))
        }
    }
}

/// The inverse of a positive transform at a positive number.
fn positive_inverse(y: f64, transform: PositiveTransform) -> f64 {
    match transform {
        PositiveTransform::Exp => y.ln(),
        // softplus⁻¹(y) = log(eʸ − 1) = y + log(1 − e⁻ʸ).
        PositiveTransform::Softplus => y + (-(-y).exp()).ln_1p(),
    }
}

/// The extent of the last axis (1 for a scalar).
fn last_extent(tape: &Tape, x: Var) -> usize {
    tape.shape(x).last().copied().unwrap_or(1)
}

/// A rows × cols constant with ones where `keep(row, col)` holds.
fn matrix_constant(
    tape: &mut Tape,
    rows: usize,
    cols: usize,
    keep: impl Fn(usize, usize) -> bool,
) -> Var {
    let mut matrix = Tensor::zeros(&[rows, cols]);
    for r in 0..rows {
        for c in 0..cols {
            if keep(r, c) {
                matrix.data_mut()[r * cols + c] = 1.0;
            }
        }
    }
    tape.constant(matrix)
}

/// Stick-breaking on log scale. With x̃ᵢ = xᵢ − log(K − 1 − i) (so x = 0 is the uniform point),
/// zᵢ = σ(x̃ᵢ) and the stick left before entry i, rᵢ = Π_{j<i} (1 − zⱼ):
/// log yᵢ = log σ(x̃ᵢ) + log rᵢ for i < K − 1 and log y_{K−1} = log r_{K−1}, with
/// log rᵢ = Σ_{j<i} log σ(−x̃ⱼ). The Jacobian of the first K − 1 entries is triangular with
/// diagonal rᵢ zᵢ (1 − zᵢ), so log|J| = Σᵢ [log σ(x̃ᵢ) + log σ(−x̃ᵢ) + log rᵢ].
fn stick_breaking_forward(tape: &mut Tape, x: Var) -> Result<(Var, Var), DistError> {
    let m = last_extent(tape, x);
    let k = m + 1;
    let offsets = tape.constant(Tensor::vector(
        (0..m).map(|i| -((k - 1 - i) as f64).ln()).collect(),
    ));
    let shifted = tape.add(x, offsets)?;
    let log_z = tape.log_sigmoid(shifted);
    let minus = tape.neg(shifted);
    let log_one_minus_z = tape.log_sigmoid(minus);
    // Exclusive cumulative sums over K positions: log rᵢ = Σ_{j<i} log(1 − zⱼ).
    let exclusive = matrix_constant(tape, m, k, |j, i| j < i);
    let log_remaining = tape.matmul(log_one_minus_z, exclusive)?;
    // log z padded with a zero in position K − 1.
    let pad = matrix_constant(tape, m, k, |j, i| j == i);
    let log_z_padded = tape.matmul(log_z, pad)?;
    let log_y = tape.add(log_z_padded, log_remaining)?;
    let y = tape.exp(log_y);
    // log|J|: the remaining-stick terms of the first K − 1 entries only.
    let first_entries = tape.constant(Tensor::vector(
        (0..k).map(|i| if i < m { 1.0 } else { 0.0 }).collect(),
    ));
    let remaining_terms = tape.mul(log_remaining, first_entries)?;
    let remaining_total = tape.sum(remaining_terms);
    let z_total = tape.sum(log_z);
    let complement_total = tape.sum(log_one_minus_z);
    let log_det = tape.add(z_total, complement_total)?;
    let log_det = tape.add(log_det, remaining_total)?;
    Ok((y, log_det))
}

/// The size n of a matrix with `free` coordinates (strictly lower triangle if `correlation`,
/// lower triangle with diagonal otherwise).
fn matrix_size(free: usize, correlation: bool) -> Result<usize, DistError> {
    (1..=100_000)
        .find(|&n| {
            let count = if correlation {
                n * (n - 1) / 2
            } else {
                n * (n + 1) / 2
            };
            count >= free
        })
        .filter(|&n| {
            let count = if correlation {
                n * (n - 1) / 2
            } else {
                n * (n + 1) / 2
            };
            count == free
        })
        .ok_or_else(|| DistError::InvalidShape {
            family: "bijector",
            what: "unconstrained value",
            shape: vec![free],
            expected: "a triangular number of free coordinates".to_string(),
        })
}

/// The positions (row, column) of the free coordinates in row-major order of the lower
/// triangle, with or without the diagonal.
fn free_positions(n: usize, with_diagonal: bool) -> Vec<(usize, usize)> {
    let mut positions = Vec::new();
    for i in 0..n {
        for j in 0..i + usize::from(with_diagonal) {
            positions.push((i, j));
        }
    }
    positions
}

/// Places the free coordinates (`[..., m]`) into `[..., n, n]` matrices through the constant
/// matrix P (m × n²) with P_{f, (i, j)} = 1 for the f-th free position (i, j).
fn place(
    tape: &mut Tape,
    free: Var,
    n: usize,
    positions: &[(usize, usize)],
) -> Result<Var, DistError> {
    let m = positions.len();
    let mut placement = Tensor::zeros(&[m, n * n]);
    for (f, (i, j)) in positions.iter().enumerate() {
        placement.data_mut()[f * n * n + i * n + j] = 1.0;
    }
    let placement = tape.constant(placement);
    let flat = tape.matmul(free, placement)?;
    let mut shape = tape.shape(free).to_vec();
    shape.pop();
    shape.extend([n, n]);
    Ok(tape.reshape(flat, &shape)?)
}

/// Correlation Cholesky factor from n(n − 1)/2 numbers. zᵢⱼ = tanh(xᵢⱼ) are partial
/// correlations; row i's stick before entry j is Π_{k<j} (1 − zᵢₖ²), so
/// Lᵢⱼ = zᵢⱼ · exp(½ Cᵢⱼ) and Lᵢᵢ = exp(½ Cᵢᵢ) with Cᵢⱼ = Σ_{k<j} log(1 − zᵢₖ²), and
/// log(1 − tanh²x) = 2 log sech x = 2 (log 2 − |x| − softplus(−2|x|)) stays finite for any x.
/// The Jacobian over the strictly lower entries (row-major) is triangular with diagonal
/// exp(½ Cᵢⱼ) (1 − zᵢⱼ²): log|J| = Σᵢ>ⱼ [½ Cᵢⱼ + log(1 − zᵢⱼ²)].
fn corr_cholesky_forward(tape: &mut Tape, x: Var) -> Result<(Var, Var), DistError> {
    let m = last_extent(tape, x);
    let m = if tape.shape(x).is_empty() { 1 } else { m };
    let n = matrix_size(m, true)?;
    let positions = free_positions(n, false);
    let z = tape.tanh(x);
    let magnitude = tape.abs(x);
    let doubled = tape.mul_scalar(magnitude, -2.0);
    let softplus = tape.softplus(doubled);
    let sum = tape.add(magnitude, softplus)?;
    let log_sech = tape.scalar_sub(LN_2, sum);
    let log_one_minus_z_squared = tape.mul_scalar(log_sech, 2.0);
    let z_matrix = place(tape, z, n, &positions)?;
    let s_matrix = place(tape, log_one_minus_z_squared, n, &positions)?;
    // C = S · U with Uₖⱼ = 1 for k < j: exclusive cumulative sums along each row.
    let exclusive = matrix_constant(tape, n, n, |k, j| k < j);
    let c = tape.matmul(s_matrix, exclusive)?;
    let half_c = tape.mul_scalar(c, 0.5);
    let scale = tape.exp(half_c);
    let identity = crate::math::identity(tape, n);
    let with_diagonal = tape.add(z_matrix, identity)?;
    let lower = tape.mul(with_diagonal, scale)?;
    let strictly_lower = matrix_constant(tape, n, n, |i, j| j < i);
    let kept = tape.mul(half_c, strictly_lower)?;
    let stick_total = tape.sum(kept);
    let tanh_total = tape.sum(log_one_minus_z_squared);
    let log_det = tape.add(stick_total, tanh_total)?;
    Ok((lower, log_det))
}

/// Lower-triangular matrix from n(n + 1)/2 numbers in row-major order, with the diagonal
/// exponentiated: log|J| = Σ of the diagonal coordinates.
fn lower_cholesky_forward(tape: &mut Tape, x: Var) -> Result<(Var, Var), DistError> {
    let m = last_extent(tape, x);
    let n = matrix_size(m, false)?;
    let positions = free_positions(n, true);
    let diagonal_flags: Vec<f64> = positions
        .iter()
        .map(|(i, j)| if i == j { 1.0 } else { 0.0 })
        .collect();
    let off_flags: Vec<f64> = diagonal_flags.iter().map(|d| 1.0 - d).collect();
    let diagonal = tape.constant(Tensor::vector(diagonal_flags));
    let off = tape.constant(Tensor::vector(off_flags));
    // w = x on the off-diagonal and exp(x) on the diagonal; exp sees 0 off the diagonal.
    let diagonal_x = tape.mul(x, diagonal)?;
    let exp_diagonal = tape.exp(diagonal_x);
    let exp_kept = tape.mul(exp_diagonal, diagonal)?;
    let off_x = tape.mul(x, off)?;
    let w = tape.add(off_x, exp_kept)?;
    let lower = place(tape, w, n, &positions)?;
    let log_det = tape.sum(diagonal_x);
    Ok((lower, log_det))
}
