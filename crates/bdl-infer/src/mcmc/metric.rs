//! Euclidean metrics for Hamiltonian Monte Carlo.
//!
//! The kinetic energy is K(p) = ½ pᵀ M⁻¹ p with momentum p ~ Normal(0, M). Adaptation estimates the
//! posterior covariance and uses it as the *inverse* metric M⁻¹, so that is what a [`Metric`]
//! stores: a vector of variances (diagonal) or a full covariance matrix with its Cholesky factor
//! (dense). The velocity M⁻¹ p is what moves the position and what the no-U-turn criterion uses.

use crate::rng::Rng;
use rand::Rng as _;
use rand_distr::StandardNormal;
use std::fmt;

/// Which shape of metric warm-up adapts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricKind {
    /// A diagonal inverse metric: one variance per coordinate.
    #[default]
    Diag,
    /// A dense inverse metric: a full covariance matrix.
    Dense,
}

/// The inverse metric M⁻¹ as plain data (what CmdStan writes in its adaptation comment lines).
#[derive(Clone, Debug, PartialEq)]
pub enum InverseMetric {
    /// The diagonal of M⁻¹.
    Diag(Vec<f64>),
    /// M⁻¹ as a `dim × dim` matrix stored row by row.
    Dense {
        /// The number of rows and columns.
        dim: usize,
        /// The entries, row-major.
        values: Vec<f64>,
    },
}

/// Why a matrix or vector cannot serve as an inverse metric.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricError {
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for MetricError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MetricError {}

/// A Euclidean metric, stored through its inverse M⁻¹.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    dim: usize,
    form: Form,
}

#[derive(Clone, Debug, PartialEq)]
enum Form {
    /// The diagonal of M⁻¹ and the reciprocals of its square roots (the momentum scales).
    Diag {
        inverse: Vec<f64>,
        momentum_scale: Vec<f64>,
    },
    /// M⁻¹ row-major and its lower Cholesky factor L (M⁻¹ = L Lᵀ), row-major.
    Dense {
        inverse: Vec<f64>,
        cholesky: Vec<f64>,
    },
}

impl Metric {
    /// The identity metric of the given kind.
    pub fn unit(kind: MetricKind, dim: usize) -> Metric {
        match kind {
            MetricKind::Diag => Metric {
                dim,
                form: Form::Diag {
                    inverse: vec![1.0; dim],
                    momentum_scale: vec![1.0; dim],
                },
            },
            MetricKind::Dense => {
                let mut identity = vec![0.0; dim * dim];
                for i in 0..dim {
                    identity[i * dim + i] = 1.0;
                }
                Metric {
                    dim,
                    form: Form::Dense {
                        inverse: identity.clone(),
                        cholesky: identity,
                    },
                }
            }
        }
    }

    /// A diagonal metric from the variances M⁻¹ᵢᵢ, which must be finite and positive.
    pub fn diag(inverse: Vec<f64>) -> Result<Metric, MetricError> {
        if let Some(i) = inverse.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(MetricError {
                message: format!(
                    "inverse metric entry {i} is {}, but it must be finite and positive",
                    inverse[i]
                ),
            });
        }
        let momentum_scale = inverse.iter().map(|v| 1.0 / v.sqrt()).collect();
        Ok(Metric {
            dim: inverse.len(),
            form: Form::Diag {
                inverse,
                momentum_scale,
            },
        })
    }

    /// A dense metric from M⁻¹ (`dim × dim`, row-major), which must be symmetric positive
    /// definite with finite entries.
    pub fn dense(dim: usize, inverse: Vec<f64>) -> Result<Metric, MetricError> {
        if inverse.len() != dim * dim {
            return Err(MetricError {
                message: format!(
                    "a dense inverse metric of dimension {dim} needs {} entries, not {}",
                    dim * dim,
                    inverse.len()
                ),
            });
        }
        if inverse.iter().any(|v| !v.is_finite()) {
            return Err(MetricError {
                message: "the inverse metric has non-finite entries".into(),
            });
        }
        let matrix = nalgebra::DMatrix::from_row_slice(dim, dim, &inverse);
        let Some(cholesky) = matrix.cholesky() else {
            return Err(MetricError {
                message: "the inverse metric is not positive definite".into(),
            });
        };
        let lower = cholesky.l();
        let mut cholesky_rows = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..=i {
                cholesky_rows[i * dim + j] = lower[(i, j)];
            }
        }
        Ok(Metric {
            dim,
            form: Form::Dense {
                inverse,
                cholesky: cholesky_rows,
            },
        })
    }

    /// A metric of `kind` from a given inverse metric: as given when the kinds agree, the
    /// diagonal of a dense one for a diagonal metric, and a diagonal one as a diagonal matrix
    /// for a dense metric. The dimension must be `dim`.
    pub fn starting(
        kind: MetricKind,
        dim: usize,
        inverse: &InverseMetric,
    ) -> Result<Metric, MetricError> {
        let given_dim = match inverse {
            InverseMetric::Diag(diagonal) => diagonal.len(),
            InverseMetric::Dense { dim, .. } => *dim,
        };
        if given_dim != dim {
            return Err(MetricError {
                message: format!(
                    "the inverse metric has dimension {given_dim} but the density has {dim}"
                ),
            });
        }
        match (kind, inverse) {
            (MetricKind::Diag, InverseMetric::Diag(diagonal)) => Metric::diag(diagonal.clone()),
            (MetricKind::Diag, InverseMetric::Dense { values, .. }) => {
                Metric::diag((0..dim).map(|i| values[i * dim + i]).collect())
            }
            (MetricKind::Dense, InverseMetric::Dense { values, .. }) => {
                Metric::dense(dim, values.clone())
            }
            (MetricKind::Dense, InverseMetric::Diag(diagonal)) => {
                let mut values = vec![0.0; dim * dim];
                for (i, v) in diagonal.iter().enumerate() {
                    values[i * dim + i] = *v;
                }
                Metric::dense(dim, values)
            }
        }
    }

    /// The number of coordinates.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Which kind of metric this is.
    pub fn kind(&self) -> MetricKind {
        match self.form {
            Form::Diag { .. } => MetricKind::Diag,
            Form::Dense { .. } => MetricKind::Dense,
        }
    }

    /// A copy of M⁻¹ as plain data.
    pub fn inverse(&self) -> InverseMetric {
        match &self.form {
            Form::Diag { inverse, .. } => InverseMetric::Diag(inverse.clone()),
            Form::Dense { inverse, .. } => InverseMetric::Dense {
                dim: self.dim,
                values: inverse.clone(),
            },
        }
    }

    /// Writes the velocity M⁻¹ p into `velocity`.
    #[inline]
    pub fn velocity(&self, momentum: &[f64], velocity: &mut [f64]) {
        match &self.form {
            Form::Diag { inverse, .. } => {
                for ((v, p), m) in velocity.iter_mut().zip(momentum).zip(inverse) {
                    *v = m * p;
                }
            }
            Form::Dense { inverse, .. } => {
                for (v, row) in velocity.iter_mut().zip(inverse.chunks_exact(self.dim)) {
                    *v = dot(row, momentum);
                }
            }
        }
    }

    /// Draws a momentum p ~ Normal(0, M) into `momentum`.
    pub fn sample_momentum(&self, rng: &mut Rng, momentum: &mut [f64]) {
        match &self.form {
            Form::Diag { momentum_scale, .. } => {
                // With M⁻¹ = diag(v), M = diag(1 / v) and p_i = z_i / sqrt(v_i).
                for (p, scale) in momentum.iter_mut().zip(momentum_scale) {
                    let z: f64 = rng.sample(StandardNormal);
                    *p = z * scale;
                }
            }
            Form::Dense { cholesky, .. } => {
                // With M⁻¹ = L Lᵀ, p = L⁻ᵀ z has covariance L⁻ᵀ L⁻¹ = (L Lᵀ)⁻¹ = M. Solve Lᵀ p = z by
                // back substitution, in place: entries after i already hold p.
                for p in momentum.iter_mut() {
                    *p = rng.sample(StandardNormal);
                }
                let dim = self.dim;
                for i in (0..dim).rev() {
                    let mut sum = momentum[i];
                    for j in (i + 1)..dim {
                        sum -= cholesky[j * dim + i] * momentum[j];
                    }
                    momentum[i] = sum / cholesky[i * dim + i];
                }
            }
        }
    }
}

/// The dot product of two slices of equal length, with four partial sums so that the additions
/// do not wait on each other (the compiler may not reassociate floating-point sums itself).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let body = n - n % 4;
    let mut partial = [0.0; 4];
    let mut i = 0;
    while i < body {
        partial[0] += a[i] * b[i];
        partial[1] += a[i + 1] * b[i + 1];
        partial[2] += a[i + 2] * b[i + 2];
        partial[3] += a[i + 3] * b[i + 3];
        i += 4;
    }
    let mut sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    for j in body..n {
        sum += a[j] * b[j];
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    #[test]
    fn dense_momentum_has_covariance_m() {
        // M⁻¹ = [[4, 1], [1, 1]] so M = [[1, -1], [-1, 4]] / 3.
        let metric = Metric::dense(2, vec![4.0, 1.0, 1.0, 1.0]).unwrap();
        let mut rng = stream_rng(3, 0);
        let mut p = [0.0; 2];
        let n = 200_000;
        let mut sums = [0.0; 3];
        for _ in 0..n {
            metric.sample_momentum(&mut rng, &mut p);
            sums[0] += p[0] * p[0];
            sums[1] += p[0] * p[1];
            sums[2] += p[1] * p[1];
        }
        let expected = [1.0 / 3.0, -1.0 / 3.0, 4.0 / 3.0];
        for (s, e) in sums.iter().zip(expected) {
            // The standard error of a second moment is below 2 / sqrt(n) here.
            assert!((s / n as f64 - e).abs() < 4.0 * 2.0 / (n as f64).sqrt());
        }
    }

    #[test]
    fn bad_metrics_are_errors() {
        assert!(Metric::diag(vec![1.0, 0.0]).is_err());
        assert!(Metric::diag(vec![f64::NAN]).is_err());
        assert!(Metric::dense(2, vec![1.0, 2.0, 2.0, 1.0]).is_err());
        assert!(Metric::dense(2, vec![1.0]).is_err());
    }
}
