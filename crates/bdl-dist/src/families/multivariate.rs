//! Families whose parameters or values carry trailing event axes: Categorical (parameter axis
//! of K outcomes; its log-mass lives in [`super::discrete`]), Dirichlet, MultivariateNormal,
//! LKJCholesky and Wishart.
//!
//! Parameter tensors are `batch + event`; their batch parts broadcast together into the
//! distribution's batch shape. Matrix parameters are given as a covariance, a precision or a
//! lower Cholesky factor (`scale_tril`); all three are checked here (symmetric and positive
//! definite, or lower triangular with a positive diagonal) and reduced to a Cholesky factor on
//! the tape for the log-density.

use super::{finite, positive, require, Family, Moment};
use crate::constraint::{Constraint, STRUCTURE_TOLERANCE};
use crate::distribution::Param;
use crate::linalg;
use crate::math::{self, constant, mask_log_prob, select_or};
use crate::shape::{broadcast_data, broadcast_shapes};
use crate::DistError;
use bdl_autodiff::{Tape, Tensor, Var};
use rand::{Rng, RngCore};
use rand_distr::{Distribution as _, StandardNormal};
use std::f64::consts::{LN_2, PI};

/// The batch part of a parameter whose last `event_rank` axes are its event.
fn batch_part(
    family: Family,
    tape: &Tape,
    param: &Param,
    event_rank: usize,
    expected: &str,
) -> Result<Vec<usize>, DistError> {
    let shape = tape.shape(param.var);
    if shape.len() < event_rank {
        return Err(DistError::InvalidShape {
            family: family.name(),
            what: param.name,
            shape: shape.to_vec(),
            expected: expected.to_string(),
        });
    }
    Ok(shape[..shape.len() - event_rank].to_vec())
}

/// The broadcast of two batch shapes, or a shape error naming the family.
fn joint_batch(family: Family, left: &[usize], right: &[usize]) -> Result<Vec<usize>, DistError> {
    broadcast_shapes(left, right).ok_or_else(|| DistError::ShapeMismatch {
        family: family.name(),
        what: "the parameters' batch axes",
        left: left.to_vec(),
        right: right.to_vec(),
    })
}

/// Checks a matrix parameter (`covariance_matrix`, `precision_matrix` or `scale_tril`): square,
/// finite, and positive definite or lower triangular with a positive diagonal. Returns n.
fn check_matrix(family: Family, tape: &Tape, param: &Param) -> Result<usize, DistError> {
    let value = tape.value(param.var);
    let shape = value.shape();
    if shape.len() < 2
        || shape[shape.len() - 1] != shape[shape.len() - 2]
        || shape[shape.len() - 1] == 0
    {
        return Err(DistError::InvalidShape {
            family: family.name(),
            what: param.name,
            shape: shape.to_vec(),
            expected: "a square matrix (or a batch of them)".to_string(),
        });
    }
    require(family, tape, param, finite, "a matrix of finite numbers")?;
    let n = shape[shape.len() - 1];
    let invalid = |value: f64, requirement: &'static str| DistError::InvalidParameter {
        family: family.name(),
        parameter: param.name,
        value,
        requirement,
    };
    for matrix in value.data().chunks(n * n) {
        if param.name == "scale_tril" {
            for i in 0..n {
                if let Some(&above) = matrix[i * n + i + 1..(i + 1) * n]
                    .iter()
                    .find(|x| **x != 0.0)
                {
                    return Err(invalid(above, "lower triangular (zero above the diagonal)"));
                }
                if matrix[i * n + i] <= 0.0 {
                    return Err(invalid(
                        matrix[i * n + i],
                        "a matrix with a positive diagonal",
                    ));
                }
            }
        } else {
            for i in 0..n {
                for j in 0..i {
                    let (a, b) = (matrix[i * n + j], matrix[j * n + i]);
                    if (a - b).abs() > STRUCTURE_TOLERANCE * a.abs().max(b.abs()).max(1.0) {
                        return Err(invalid(b, "a symmetric matrix"));
                    }
                }
            }
            linalg::cholesky(matrix, n)
                .map_err(|pivot| invalid(pivot, "a positive-definite matrix"))?;
        }
    }
    Ok(n)
}

/// Checks parameters and returns the batch and event shapes.
pub(crate) fn check(
    family: Family,
    tape: &Tape,
    params: &[Param],
) -> Result<(Vec<usize>, Vec<usize>), DistError> {
    match family {
        Family::Dirichlet => {
            let param = &params[0];
            let shape = tape.shape(param.var).to_vec();
            if shape.is_empty() || shape[shape.len() - 1] < 2 {
                return Err(DistError::InvalidShape {
                    family: family.name(),
                    what: param.name,
                    shape,
                    expected: "a tensor whose last axis has at least 2 entries".to_string(),
                });
            }
            require(family, tape, param, positive, "greater than 0")?;
            let k = shape[shape.len() - 1];
            Ok((shape[..shape.len() - 1].to_vec(), vec![k]))
        }
        Family::MultivariateNormal => {
            let (loc, matrix) = (&params[0], &params[1]);
            require(family, tape, loc, finite, "a finite number")?;
            let n = check_matrix(family, tape, matrix)?;
            let loc_shape = tape.shape(loc.var);
            let loc_batch = if loc_shape.is_empty() {
                Vec::new()
            } else {
                if loc_shape[loc_shape.len() - 1] != n && loc_shape[loc_shape.len() - 1] != 1 {
                    return Err(DistError::InvalidShape {
                        family: family.name(),
                        what: loc.name,
                        shape: loc_shape.to_vec(),
                        expected: format!("a vector of length {n} to match the {n}×{n} matrix"),
                    });
                }
                loc_shape[..loc_shape.len() - 1].to_vec()
            };
            let matrix_batch = batch_part(family, tape, matrix, 2, "a square matrix")?;
            Ok((joint_batch(family, &loc_batch, &matrix_batch)?, vec![n]))
        }
        Family::LkjCholesky => {
            let (dimension, concentration) = (&params[0], &params[1]);
            let d = match tape.value(dimension.var).item() {
                Ok(d) if d >= 2.0 && d.fract() == 0.0 && d <= 1e4 => d as usize,
                Ok(d) => {
                    return Err(DistError::InvalidParameter {
                        family: family.name(),
                        parameter: dimension.name,
                        value: d,
                        requirement: "a whole number at least 2",
                    })
                }
                Err(_) => {
                    return Err(DistError::InvalidShape {
                        family: family.name(),
                        what: dimension.name,
                        shape: tape.shape(dimension.var).to_vec(),
                        expected: "one number".to_string(),
                    })
                }
            };
            require(family, tape, concentration, positive, "greater than 0")?;
            Ok((tape.shape(concentration.var).to_vec(), vec![d, d]))
        }
        Family::Wishart => {
            let (df, matrix) = (&params[0], &params[1]);
            let n = check_matrix(family, tape, matrix)?;
            require(
                family,
                tape,
                df,
                |x| x > n as f64 - 1.0 && x.is_finite(),
                "greater than the dimension minus 1",
            )?;
            let matrix_batch = batch_part(family, tape, matrix, 2, "a square matrix")?;
            let df_shape = tape.shape(df.var).to_vec();
            Ok((joint_batch(family, &df_shape, &matrix_batch)?, vec![n, n]))
        }
        _ => Err(DistError::UnknownFamily {
            name: family.name().to_string(),
        }),
    }
}

/// The log-density of a multivariate family at `value`, one number per batch element.
pub(crate) fn log_prob(
    family: Family,
    tape: &mut Tape,
    params: &[Param],
    value: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    match family {
        Family::Dirichlet => dirichlet_log_prob(tape, params[0].var, value, check_support),
        Family::MultivariateNormal => mvn_log_prob(tape, &params[0], &params[1], value),
        Family::LkjCholesky => lkj_log_prob(tape, params, value, check_support),
        Family::Wishart => wishart_log_prob(tape, params, value, check_support),
        _ => Err(DistError::UnknownFamily {
            name: family.name().to_string(),
        }),
    }
}

/// Σᵢ (αᵢ − 1) log xᵢ − Σᵢ log Γ(αᵢ) + log Γ(Σᵢ αᵢ) on the simplex.
fn dirichlet_log_prob(
    tape: &mut Tape,
    alpha: Var,
    x: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    let k = *tape.shape(x).last().unwrap_or(&1);
    // In the support: every entry non-negative and the entries sum to one.
    let smallest = tape.min_axis(x, -1, true)?;
    let zero = constant(tape, 0.0);
    let nonnegative = tape.ge(smallest, zero)?;
    let total = tape.sum_axis(x, -1, true)?;
    let excess = tape.add_scalar(total, -1.0);
    let excess = tape.abs(excess);
    let tolerance = constant(tape, STRUCTURE_TOLERANCE);
    let sums_to_one = tape.le(excess, tolerance)?;
    let inside = tape.and(nonnegative, sums_to_one)?;
    let safe = select_or(tape, inside, x, 1.0 / k as f64)?;
    let alpha_minus_one = tape.add_scalar(alpha, -1.0);
    let terms = math::xlogy(tape, alpha_minus_one, safe)?;
    let lgamma_alpha = tape.lgamma(alpha);
    let pointwise = tape.sub(terms, lgamma_alpha)?;
    let summed = tape.sum_axis(pointwise, -1, false)?;
    let alpha_total = tape.sum_axis(alpha, -1, false)?;
    let lgamma_total = tape.lgamma(alpha_total);
    let lp = tape.add(summed, lgamma_total)?;
    if !check_support {
        return Ok(lp);
    }
    let inside = tape.sum_axis(inside, -1, false)?;
    mask_log_prob(tape, inside, lp)
}

/// The lower Cholesky factor of the covariance, or of the precision, on the tape.
fn cholesky_factor(tape: &mut Tape, matrix: &Param) -> Result<Var, DistError> {
    if matrix.name == "scale_tril" {
        Ok(matrix.var)
    } else {
        math::cholesky(tape, matrix.var)
    }
}

/// Σᵢ log Lᵢᵢ for each trailing matrix.
fn log_diagonal_sum(tape: &mut Tape, lower: Var) -> Result<Var, DistError> {
    let diagonal = math::diagonal(tape, lower)?;
    let log = tape.log(diagonal);
    Ok(tape.sum_axis(log, -1, false)?)
}

/// Σᵢⱼ Mᵢⱼ² over the last two axes.
fn squared_norm(tape: &mut Tape, matrix: Var) -> Result<Var, DistError> {
    let squared = tape.square(matrix);
    let rows = tape.sum_axis(squared, -1, false)?;
    Ok(tape.sum_axis(rows, -1, false)?)
}

/// log N(x; μ, Σ) = −½ |L⁻¹(x − μ)|² − Σᵢ log Lᵢᵢ − (n/2) log 2π with Σ = L Lᵀ; from a
/// precision P = Lₚ Lₚᵀ the quadratic form is |Lₚᵀ(x − μ)|² and log|Σ|^{1/2} = −Σᵢ log (Lₚ)ᵢᵢ.
fn mvn_log_prob(tape: &mut Tape, loc: &Param, matrix: &Param, x: Var) -> Result<Var, DistError> {
    let n = *tape.shape(matrix.var).last().unwrap_or(&1);
    let difference = tape.sub(x, loc.var)?;
    let lower = cholesky_factor(tape, matrix)?;
    let shared = tape.shape(lower).len() == 2;
    let (quadratic, half_log_det) = if matrix.name == "precision_matrix" {
        let quadratic = if shared {
            // Rows of (x − μ)ᵀ Lₚ, one matmul for every value.
            let projected = tape.matmul(difference, lower)?;
            let squared = tape.square(projected);
            tape.sum_axis(squared, -1, false)?
        } else {
            let column = math::append_axis(tape, difference)?;
            let upper = tape.transpose(lower);
            let projected = tape.matmul(upper, column)?;
            squared_norm(tape, projected)?
        };
        let log_det = log_diagonal_sum(tape, lower)?;
        (quadratic, tape.neg(log_det))
    } else {
        let quadratic = if shared {
            math::whitened_squared_norms(tape, lower, difference)?
        } else {
            let column = math::append_axis(tape, difference)?;
            let whitened = math::solve_lower(tape, lower, column)?;
            squared_norm(tape, whitened)?
        };
        (quadratic, log_diagonal_sum(tape, lower)?)
    };
    let half = tape.mul_scalar(quadratic, -0.5);
    let lp = tape.sub(half, half_log_det)?;
    Ok(tape.add_scalar(lp, -0.5 * n as f64 * (2.0 * PI).ln()))
}

/// An n × n constant that is one where `keep(i, j)` holds.
fn pattern(tape: &mut Tape, n: usize, keep: impl Fn(usize, usize) -> bool) -> Var {
    let mut matrix = Tensor::zeros(&[n, n]);
    for i in 0..n {
        for j in 0..n {
            if keep(i, j) {
                matrix.data_mut()[i * n + j] = 1.0;
            }
        }
    }
    tape.constant(matrix)
}

/// A constant vector.
fn constant_vector(tape: &mut Tape, data: Vec<f64>) -> Var {
    tape.constant(Tensor::vector(data))
}

/// 1 for each trailing matrix that is a correlation Cholesky factor (zero above the diagonal,
/// positive diagonal, rows of unit length), with shape `[..., 1, 1]`.
fn corr_cholesky_mask(tape: &mut Tape, lower: Var, d: usize) -> Result<Var, DistError> {
    let strictly_upper = pattern(tape, d, |i, j| j > i);
    let upper_part = tape.mul(lower, strictly_upper)?;
    let upper_size = tape.abs(upper_part);
    let upper_rows = tape.sum_axis(upper_size, -1, true)?;
    let upper_total = tape.sum_axis(upper_rows, -2, true)?;
    let zero = constant(tape, 0.0);
    let triangular = tape.eq(upper_total, zero)?;
    let identity = math::identity(tape, d);
    let diagonal_part = tape.mul(lower, identity)?;
    let diagonal = tape.sum_axis(diagonal_part, -1, true)?;
    let smallest = tape.min_axis(diagonal, -2, true)?;
    let positive_diagonal = tape.gt(smallest, zero)?;
    let squared = tape.square(lower);
    let row_norms = tape.sum_axis(squared, -1, true)?;
    let excess = tape.add_scalar(row_norms, -1.0);
    let excess = tape.abs(excess);
    let worst = tape.max_axis(excess, -2, true)?;
    let tolerance = constant(tape, STRUCTURE_TOLERANCE);
    let unit_rows = tape.le(worst, tolerance)?;
    let inside = tape.and(triangular, positive_diagonal)?;
    Ok(tape.and(inside, unit_rows)?)
}

/// Drops the two trailing axes of extent one.
fn squeeze_matrix_axes(tape: &mut Tape, x: Var) -> Result<Var, DistError> {
    let rows = tape.sum_axis(x, -1, false)?;
    Ok(tape.sum_axis(rows, -1, false)?)
}

/// LKJCholesky(η) on d × d correlation Cholesky factors:
/// log p(L) = Σ_{i=1}^{d−1} (2η − 3 + d − i) log Lᵢᵢ − log c(η), with
/// log c(η) = ½(d − 1) log π + log Γ_{d−1}(α − ½) − (d − 1) log Γ(α), α = η + ½(d − 1)
/// (the normalising constant of Lewandowski, Kurowicka and Joe, 2009, as NumPyro writes it).
fn lkj_log_prob(
    tape: &mut Tape,
    params: &[Param],
    lower: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    let eta = params[1].var;
    let shape = tape.shape(lower).to_vec();
    let d = shape.last().copied().unwrap_or(0);
    let inside = corr_cholesky_mask(tape, lower, d)?;
    let identity = math::identity(tape, d);
    let safe = tape.select(inside, lower, identity)?;
    let diagonal = math::diagonal(tape, safe)?;
    let log_diagonal = tape.log(diagonal);
    // Σᵢ (2η − 3 + d − i) log Lᵢᵢ = 2η · Σ_{i≥1} log Lᵢᵢ + Σ_{i≥1} (d − 3 − i) log Lᵢᵢ.
    let ones = constant_vector(
        tape,
        (0..d).map(|i| if i == 0 { 0.0 } else { 1.0 }).collect(),
    );
    let offsets = constant_vector(
        tape,
        (0..d)
            .map(|i| {
                if i == 0 {
                    0.0
                } else {
                    d as f64 - 3.0 - i as f64
                }
            })
            .collect(),
    );
    let weighted_ones = tape.mul(log_diagonal, ones)?;
    let first_sum = tape.sum_axis(weighted_ones, -1, false)?;
    let weighted_offsets = tape.mul(log_diagonal, offsets)?;
    let second_sum = tape.sum_axis(weighted_offsets, -1, false)?;
    let two_eta = tape.mul_scalar(eta, 2.0);
    let first = tape.mul(two_eta, first_sum)?;
    let unnormalised = tape.add(first, second_sum)?;
    let alpha = tape.add_scalar(eta, 0.5 * (d as f64 - 1.0));
    let alpha_minus_half = tape.add_scalar(alpha, -0.5);
    let multivariate = math::log_multivariate_gamma(tape, alpha_minus_half, d - 1)?;
    let lgamma_alpha = tape.lgamma(alpha);
    let denominator = tape.mul_scalar(lgamma_alpha, (d - 1) as f64);
    let normaliser = tape.sub(multivariate, denominator)?;
    let normaliser = tape.add_scalar(normaliser, 0.5 * (d as f64 - 1.0) * PI.ln());
    let lp = tape.sub(unnormalised, normaliser)?;
    if !check_support {
        return Ok(lp);
    }
    let inside = squeeze_matrix_axes(tape, inside)?;
    mask_log_prob(tape, inside, lp)
}

/// Wishart(ν, V) on positive-definite n × n matrices X:
/// log p(X) = ½(ν − n − 1) log|X| − ½ tr(V⁻¹X) − ½νn log 2 − ½ν log|V| − log Γₙ(ν/2).
/// With V = L Lᵀ and X = Lₓ Lₓᵀ, tr(V⁻¹X) = |L⁻¹Lₓ|²; from a precision P = V⁻¹ it is Σ Pᵢⱼ Xᵢⱼ.
///
/// Whether X is positive definite is decided from its value when the log-density is recorded
/// (the tape's Cholesky factorisation needs a positive-definite input): matrices that are not
/// are replaced by the identity and their log-density set to −∞.
fn wishart_log_prob(
    tape: &mut Tape,
    params: &[Param],
    x: Var,
    check_support: bool,
) -> Result<Var, DistError> {
    let (df, matrix) = (params[0].var, &params[1]);
    let shape = tape.shape(x).to_vec();
    let n = shape.last().copied().unwrap_or(1);
    let mut flags = Vec::with_capacity(tape.value(x).len() / (n * n).max(1));
    for block in tape.value(x).data().chunks((n * n).max(1)) {
        let symmetric = (0..n).all(|i| {
            (0..i).all(|j| {
                let (a, b) = (block[i * n + j], block[j * n + i]);
                (a - b).abs() <= STRUCTURE_TOLERANCE * a.abs().max(b.abs()).max(1.0)
            })
        });
        let definite = linalg::cholesky(block, n).is_ok();
        flags.push(if symmetric && definite { 1.0 } else { 0.0 });
    }
    let mut flag_shape = shape[..shape.len() - 2].to_vec();
    let batch_shape = flag_shape.clone();
    flag_shape.extend([1, 1]);
    let all_inside = flags.iter().all(|flag| *flag == 1.0);
    let inside = tape.constant(
        Tensor::from_shape(&flag_shape, flags)
            .map_err(|e| DistError::tensor(Family::Wishart.name(), e))?,
    );
    let safe = if all_inside {
        x
    } else {
        let identity = math::identity(tape, n);
        tape.select(inside, x, identity)?
    };
    let lower_x = math::cholesky(tape, safe)?;
    let log_det_x = log_diagonal_sum(tape, lower_x)?;
    let log_det_x = tape.mul_scalar(log_det_x, 2.0);
    let (trace, log_det_v) = if matrix.name == "precision_matrix" {
        let product = tape.mul(matrix.var, safe)?;
        let trace = squeeze_matrix_axes(tape, product)?;
        let lower_p = math::cholesky(tape, matrix.var)?;
        let log_det_p = log_diagonal_sum(tape, lower_p)?;
        (trace, tape.mul_scalar(log_det_p, -2.0))
    } else {
        let lower_v = cholesky_factor(tape, matrix)?;
        let solved = math::solve_lower(tape, lower_v, lower_x)?;
        let trace = squared_norm(tape, solved)?;
        let log_det_v = log_diagonal_sum(tape, lower_v)?;
        (trace, tape.mul_scalar(log_det_v, 2.0))
    };
    // ½(ν − n − 1) log|X|.
    let df_term = tape.add_scalar(df, -(n as f64) - 1.0);
    let df_term = tape.mul_scalar(df_term, 0.5);
    let first = tape.mul(df_term, log_det_x)?;
    let half_trace = tape.mul_scalar(trace, 0.5);
    // ½ν (n log 2 + log|V|).
    let scale_term = tape.add_scalar(log_det_v, n as f64 * LN_2);
    let half_df = tape.mul_scalar(df, 0.5);
    let second = tape.mul(half_df, scale_term)?;
    let multivariate = math::log_multivariate_gamma(tape, half_df, n)?;
    let lp = tape.sub(first, half_trace)?;
    let lp = tape.sub(lp, second)?;
    let lp = tape.sub(lp, multivariate)?;
    if !check_support || all_inside {
        return Ok(lp);
    }
    let flat = tape.constant(
        Tensor::from_shape(&batch_shape, tape.value(inside).data().to_vec())
            .map_err(|e| DistError::tensor(Family::Wishart.name(), e))?,
    );
    mask_log_prob(tape, flat, lp)
}

/// The rows of a parameter tensor (`batch + event`, event of `event_size` elements) seen from
/// each element of `batch_shape`, which its batch part must broadcast to.
fn rows_for_batch(
    family: Family,
    value: &Tensor,
    event_rank: usize,
    batch_shape: &[usize],
) -> Result<Vec<Vec<f64>>, DistError> {
    let shape = value.shape();
    let split = shape.len().saturating_sub(event_rank);
    let (param_batch, event) = shape.split_at(split);
    let event_size: usize = event.iter().product();
    let count: usize = param_batch.iter().product();
    let positions = Tensor::from_shape(param_batch, (0..count).map(|i| i as f64).collect())
        .map_err(|e| DistError::tensor(family.name(), e))?;
    let origin =
        broadcast_data(&positions, batch_shape).ok_or_else(|| DistError::ShapeMismatch {
            family: family.name(),
            what: "a parameter and the batch",
            left: param_batch.to_vec(),
            right: batch_shape.to_vec(),
        })?;
    Ok(origin
        .iter()
        .map(|&row| {
            value.data()[row as usize * event_size..(row as usize + 1) * event_size].to_vec()
        })
        .collect())
}

/// Per-batch-element parameters prepared for drawing (Cholesky factors computed once).
pub(crate) struct Sampler {
    family: Family,
    /// One entry per base batch element: the numbers each family's draw needs.
    prepared: Vec<Prepared>,
}

enum Prepared {
    /// Cumulative probabilities of the K outcomes.
    Categorical(Vec<f64>),
    Dirichlet(Vec<f64>),
    /// Location and the lower Cholesky factor of the covariance.
    Gaussian(Vec<f64>, Vec<f64>),
    /// Dimension and concentration.
    Lkj(usize, f64),
    /// Degrees of freedom and the lower Cholesky factor of the scale matrix.
    Wishart(f64, Vec<f64>),
}

impl Sampler {
    pub(crate) fn new(
        family: Family,
        params: &[Param],
        values: &[Tensor],
        batch_shape: &[usize],
        event_shape: &[usize],
    ) -> Result<Sampler, DistError> {
        let count: usize = batch_shape.iter().product();
        let prepared: Vec<Prepared> = match family {
            Family::Categorical => {
                let rows = rows_for_batch(family, &values[0], 1, batch_shape)?;
                rows.into_iter()
                    .map(|row| {
                        Prepared::Categorical(cumulative_probabilities(params[0].name, &row))
                    })
                    .collect()
            }
            Family::Dirichlet => rows_for_batch(family, &values[0], 1, batch_shape)?
                .into_iter()
                .map(Prepared::Dirichlet)
                .collect(),
            Family::MultivariateNormal => {
                let n = event_shape[0];
                let locs = rows_for_batch(
                    family,
                    &values[0],
                    usize::from(!values[0].shape().is_empty()),
                    batch_shape,
                )?;
                let matrices = rows_for_batch(family, &values[1], 2, batch_shape)?;
                locs.into_iter()
                    .zip(matrices)
                    .map(|(loc, matrix)| {
                        let loc = if loc.len() == n { loc } else { vec![loc[0]; n] };
                        Ok(Prepared::Gaussian(
                            loc,
                            covariance_factor(family, &params[1], &matrix, n)?,
                        ))
                    })
                    .collect::<Result<_, DistError>>()?
            }
            Family::LkjCholesky => {
                let d = event_shape[0];
                rows_for_batch(family, &values[1], 0, batch_shape)?
                    .into_iter()
                    .map(|eta| Prepared::Lkj(d, eta[0]))
                    .collect()
            }
            Family::Wishart => {
                let n = event_shape[0];
                let dfs = rows_for_batch(family, &values[0], 0, batch_shape)?;
                let matrices = rows_for_batch(family, &values[1], 2, batch_shape)?;
                dfs.into_iter()
                    .zip(matrices)
                    .map(|(df, matrix)| {
                        Ok(Prepared::Wishart(
                            df[0],
                            covariance_factor(family, &params[1], &matrix, n)?,
                        ))
                    })
                    .collect::<Result<_, DistError>>()?
            }
            _ => {
                return Err(DistError::NotSampleable {
                    family: family.name(),
                })
            }
        };
        debug_assert_eq!(count, prepared.len());
        Ok(Sampler { family, prepared })
    }

    /// Appends one draw for base batch element `index` to `out`.
    pub(crate) fn draw(
        &mut self,
        index: usize,
        rng: &mut dyn RngCore,
        out: &mut Vec<f64>,
    ) -> Result<(), DistError> {
        let family = self.family;
        match &self.prepared[index] {
            Prepared::Categorical(cumulative) => {
                let u: f64 = rng.random::<f64>() * cumulative.last().copied().unwrap_or(1.0);
                let outcome = cumulative
                    .iter()
                    .position(|c| u < *c)
                    .unwrap_or(cumulative.len() - 1);
                out.push(outcome as f64);
            }
            Prepared::Dirichlet(alpha) => {
                // Normalised Gamma draws, in logs so that small concentrations do not give 0/0.
                let logs = alpha
                    .iter()
                    .map(|a| super::continuous::log_gamma_draw(family, *a, rng))
                    .collect::<Result<Vec<f64>, DistError>>()?;
                let largest = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_total =
                    largest + logs.iter().map(|l| (l - largest).exp()).sum::<f64>().ln();
                out.extend(logs.iter().map(|l| (l - log_total).exp()));
            }
            Prepared::Gaussian(loc, lower) => {
                let n = loc.len();
                let z: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
                for i in 0..n {
                    let shift: f64 = (0..=i).map(|k| lower[i * n + k] * z[k]).sum();
                    out.push(loc[i] + shift);
                }
            }
            Prepared::Lkj(d, eta) => out.extend(lkj_onion_draw(*d, *eta, rng)?),
            Prepared::Wishart(df, lower) => out.extend(wishart_bartlett_draw(*df, lower, rng)?),
        }
        Ok(())
    }
}

/// Running sums of the outcome probabilities (normalised probabilities or the softmax of logits).
fn cumulative_probabilities(name: &str, row: &[f64]) -> Vec<f64> {
    let weights: Vec<f64> = if name == "logits" {
        let largest = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.iter().map(|l| (l - largest).exp()).collect()
    } else {
        row.to_vec()
    };
    let mut running = 0.0;
    weights
        .iter()
        .map(|w| {
            running += w;
            running
        })
        .collect()
}

/// The lower Cholesky factor of the covariance (or scale) matrix from whichever matrix was given.
fn covariance_factor(
    family: Family,
    param: &Param,
    matrix: &[f64],
    n: usize,
) -> Result<Vec<f64>, DistError> {
    let invalid = |pivot: f64| DistError::InvalidParameter {
        family: family.name(),
        parameter: param.name,
        value: pivot,
        requirement: "a positive-definite matrix",
    };
    match param.name {
        "scale_tril" => Ok(matrix.to_vec()),
        "precision_matrix" => {
            let lower = linalg::cholesky(matrix, n).map_err(invalid)?;
            linalg::cholesky_of_inverse(&lower, n).map_err(invalid)
        }
        _ => linalg::cholesky(matrix, n).map_err(invalid),
    }
}

/// One LKJ(η) correlation Cholesky factor by the onion method (Lewandowski, Kurowicka and Joe,
/// 2009): row i (i = 1, …, d − 1) is √y · u on its first i entries and √(1 − y) on the
/// diagonal, with u uniform on the unit sphere in ℝⁱ and y ~ Beta(i/2, η + (d − 1 − i)/2).
fn lkj_onion_draw(d: usize, eta: f64, rng: &mut dyn RngCore) -> Result<Vec<f64>, DistError> {
    let family = Family::LkjCholesky;
    let mut lower = vec![0.0; d * d];
    lower[0] = 1.0;
    for i in 1..d {
        let a = 0.5 * i as f64;
        let b = eta + 0.5 * (d - 1 - i) as f64;
        let log_x = super::continuous::log_gamma_draw(family, a, rng)?;
        let log_z = super::continuous::log_gamma_draw(family, b, rng)?;
        // y = X / (X + Z) and 1 − y = Z / (X + Z), both computed from logs.
        let log_total = log_x.max(log_z) + (-(log_x - log_z).abs()).exp().ln_1p();
        let y = (log_x - log_total).exp();
        let one_minus_y = (log_z - log_total).exp();
        let direction: Vec<f64> = (0..i).map(|_| StandardNormal.sample(rng)).collect();
        let norm = direction.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (j, v) in direction.iter().enumerate() {
            lower[i * d + j] = y.sqrt() * v / norm;
        }
        lower[i * d + i] = one_minus_y.sqrt().max(f64::MIN_POSITIVE);
    }
    Ok(lower)
}

/// One Wishart(ν, L Lᵀ) draw by the Bartlett decomposition: X = L A Aᵀ Lᵀ with A lower
/// triangular, Aᵢᵢ = √χ²(ν − i) and Aᵢⱼ ~ N(0, 1) below the diagonal.
fn wishart_bartlett_draw(
    df: f64,
    lower: &[f64],
    rng: &mut dyn RngCore,
) -> Result<Vec<f64>, DistError> {
    let n = (lower.len() as f64).sqrt() as usize;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        let chi_squared =
            2.0 * super::continuous::gamma_draw(Family::Wishart, 0.5 * (df - i as f64), rng)?;
        a[i * n + i] = chi_squared.sqrt();
        for j in 0..i {
            a[i * n + j] = StandardNormal.sample(rng);
        }
    }
    let la = linalg::matmul(lower, &a, n, n, n);
    let product = linalg::matmul(&la, &linalg::transpose(&la, n, n), n, n, n);
    // Symmetrise exactly, so the draw passes the symmetry check bit for bit.
    let mut out = product.clone();
    for i in 0..n {
        for j in 0..i {
            let mean = 0.5 * (product[i * n + j] + product[j * n + i]);
            out[i * n + j] = mean;
            out[j * n + i] = mean;
        }
    }
    Ok(out)
}

/// The mean or variance over the batch, flattened as `batch + event`.
pub(crate) fn moment(
    family: Family,
    params: &[Param],
    values: &[Tensor],
    batch_shape: &[usize],
    event_shape: &[usize],
    which: Moment,
) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    match family {
        Family::Dirichlet => {
            for alpha in rows_for_batch(family, &values[0], 1, batch_shape).ok()? {
                let total: f64 = alpha.iter().sum();
                out.extend(alpha.iter().map(|a| match which {
                    Moment::Mean => a / total,
                    Moment::Variance => a * (total - a) / (total * total * (total + 1.0)),
                }));
            }
        }
        Family::MultivariateNormal => {
            let n = event_shape[0];
            let locs = rows_for_batch(
                family,
                &values[0],
                usize::from(!values[0].shape().is_empty()),
                batch_shape,
            )
            .ok()?;
            let matrices = rows_for_batch(family, &values[1], 2, batch_shape).ok()?;
            for (loc, matrix) in locs.into_iter().zip(matrices) {
                match which {
                    Moment::Mean => {
                        out.extend((0..n).map(|i| if loc.len() == n { loc[i] } else { loc[0] }))
                    }
                    Moment::Variance => {
                        let lower = covariance_factor(family, &params[1], &matrix, n).ok()?;
                        out.extend(
                            (0..n).map(|i| (0..=i).map(|k| lower[i * n + k].powi(2)).sum::<f64>()),
                        );
                    }
                }
            }
        }
        Family::Wishart => {
            let n = event_shape[0];
            let dfs = rows_for_batch(family, &values[0], 0, batch_shape).ok()?;
            let matrices = rows_for_batch(family, &values[1], 2, batch_shape).ok()?;
            for (df, matrix) in dfs.into_iter().zip(matrices) {
                let lower = covariance_factor(family, &params[1], &matrix, n).ok()?;
                let scale = linalg::matmul(&lower, &linalg::transpose(&lower, n, n), n, n, n);
                for i in 0..n {
                    for j in 0..n {
                        out.push(match which {
                            Moment::Mean => df[0] * scale[i * n + j],
                            Moment::Variance => {
                                df[0]
                                    * (scale[i * n + j].powi(2)
                                        + scale[i * n + i] * scale[j * n + j])
                            }
                        });
                    }
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

/// The support of a multivariate family (and Categorical).
pub(crate) fn support(family: Family, tape: &Tape, params: &[Param]) -> Constraint {
    match family {
        Family::Categorical => {
            let outcomes = tape.shape(params[0].var).last().copied().unwrap_or(1);
            Constraint::IntegerInterval {
                low: 0.0,
                high: outcomes as f64 - 1.0,
            }
        }
        Family::Dirichlet => Constraint::Simplex,
        Family::MultivariateNormal => Constraint::RealVector,
        Family::LkjCholesky => Constraint::CorrCholesky,
        _ => Constraint::PositiveDefinite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_probabilities_normalise_logits() {
        let cumulative = cumulative_probabilities("logits", &[0.0, 0.0]);
        assert_eq!(cumulative, vec![1.0, 2.0]);
    }
}
