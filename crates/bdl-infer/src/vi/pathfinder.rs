//! Pathfinder (Zhang, Carpenter, Gelman and Vehtari, 2022, "Pathfinder: Parallel quasi-Newton
//! variational inference", JMLR 23(306)): normal approximations along an L-BFGS path towards the
//! mode, the one with the highest ELBO kept, and several paths pooled by Pareto-smoothed
//! importance resampling.
//!
//! One path ([`single_path`]): L-BFGS minimises f = −log p from a uniform random start
//! ([`lbfgs::minimize_along`] reports every accepted point and its gradient). Along the path the
//! pairs s = x_l − x_{l−1}, z = ∇f(x_l) − ∇f(x_{l−1}) that satisfy the curvature condition
//! sᵀz > ε ‖z‖ are kept, the last `history` of them (the paper's J), and each kept pair updates
//! a diagonal estimate α of the inverse Hessian (the paper's Algorithm 4, after Gilbert and
//! Lemaréchal, 1989). At every point with at least one pair, the inverse Hessian is the
//! diagonal-plus-low-rank matrix H = diag(α) + β γ βᵀ of the compact L-BFGS representation
//! (Byrd, Nocedal and Schnabel, 1994; the paper's equation (II.2)), with β of 2J columns. The
//! local normal is N(x + H ∇log p(x), H), the Newton step from x; it is factored as
//! H = D^{1/2} (I + Q (L Lᵀ − I) Qᵀ) D^{1/2}, D = diag(α), with the thin QR factorisation
//! Q R = D^{−1/2} β and the Cholesky factor L of I + R γ Rᵀ (the paper's Algorithm 5), so that a
//! draw costs O(d J) and the whole approximation O(d J²) memory and time: the dimension is not
//! limited by dense d × d matrices. Its ELBO is estimated with `elbo_draws` draws; the path keeps
//! the normal with the highest ELBO and draws `draws_per_path` points from it, with their log
//! densities under p and q.
//!
//! Several paths ([`pathfinder`]): each from its own start and random stream, run as the shared
//! driver's parallel units; the draws of all paths are pooled with log importance ratios
//! log p − log q_path (each draw weighed by the normal of the path that made it),
//! Pareto-smoothed, and resampled (the paper's multi-path Pathfinder). The smoothing's k̂ says
//! whether the pooled normals cover the posterior.

use crate::density::{LogDensity, LogDensityError};
use crate::diagnostics::psis::{self, Psis};
use crate::driver::{self, Units};
use crate::rng::stream_rng;
use crate::vi::lbfgs::{self, LbfgsError, LbfgsReport, LbfgsSettings};
use crate::vi::numeric::{derive_seed, HALF_LOG_TWO_PI};
use nalgebra::DMatrix;
use rand::Rng as _;
use rand_distr::StandardNormal;
use std::fmt;
use std::sync::atomic::AtomicBool;

/// Seed purposes of this module's random streams.
const PURPOSE_START: u64 = 31;
const PURPOSE_ELBO: u64 = 32;
const PURPOSE_DRAWS: u64 = 33;
const PURPOSE_RESAMPLE: u64 = 34;

/// The curvature threshold ε of a kept pair: sᵀz > ε ‖z‖ (the paper's and Stan's 2.2 · 10⁻¹⁶
/// is relative to ‖z‖, as here).
const CURVATURE_EPSILON: f64 = 2.2e-16;

/// Pathfinder's settings; the defaults are Stan's `pathfinder` defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PathfinderSettings {
    /// The number of paths, each from its own random start.
    pub paths: usize,
    /// The L-BFGS iteration cap of each path.
    pub max_iterations: usize,
    /// The number of (s, z) pairs behind each inverse-Hessian estimate (the paper's J).
    pub history: usize,
    /// Draws per ELBO estimate along the path (the paper's K).
    pub elbo_draws: usize,
    /// Draws from each path's chosen normal (the paper's M).
    pub draws_per_path: usize,
    /// The half-width of the uniform box of starting points, in unconstrained space.
    pub init_radius: f64,
    /// Random starting points tried per path before giving up.
    pub max_init_attempts: usize,
    /// The seed of every random draw.
    pub seed: u64,
    /// Whether the paths run in parallel (the results are the same either way).
    pub parallel: bool,
}

impl Default for PathfinderSettings {
    fn default() -> Self {
        PathfinderSettings {
            paths: 4,
            max_iterations: 1000,
            history: 5,
            elbo_draws: 25,
            draws_per_path: 1000,
            init_radius: 2.0,
            max_init_attempts: 100,
            seed: 0,
            parallel: true,
        }
    }
}

/// Why Pathfinder could not run.
#[derive(Clone, Debug, PartialEq)]
pub enum PathfinderError {
    /// The settings or the density's dimension are out of range.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// No starting point with a finite density and gradient was found.
    Initialisation {
        /// The path (from 0).
        path: usize,
        /// The last failure.
        message: String,
    },
    /// The density failed in a way that is not a numerical accident.
    Density {
        /// The model's message.
        message: String,
    },
    /// No point of a path had a normal approximation with a finite ELBO.
    NoApproximation {
        /// The path (from 0).
        path: usize,
        /// Why.
        message: String,
    },
}

impl fmt::Display for PathfinderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathfinderError::InvalidSettings { message } => write!(f, "{message}"),
            PathfinderError::Initialisation { path, message } => write!(
                f,
                "no starting point of path {} has a finite log density and gradient: {message}",
                path + 1
            ),
            PathfinderError::Density { message } => write!(f, "{message}"),
            PathfinderError::NoApproximation { path, message } => write!(
                f,
                "no point of optimisation path {} gave a usable normal approximation: {message}",
                path + 1
            ),
        }
    }
}

impl std::error::Error for PathfinderError {}

/// The inverse-Hessian estimate of one point: H = diag(α) + β γ βᵀ.
#[derive(Clone, Debug, PartialEq)]
pub struct InverseHessian {
    /// The diagonal part α (positive).
    pub alpha: Vec<f64>,
    /// β, d × 2m, m the number of pairs.
    pub beta: DMatrix<f64>,
    /// γ, 2m × 2m, symmetric.
    pub gamma: DMatrix<f64>,
}

impl InverseHessian {
    /// The compact L-BFGS inverse Hessian from the diagonal `alpha` and the pairs (s, z),
    /// oldest first, each with sᵀz > 0: β = [diag(α) Z, S] and
    /// γ = [[0, −R⁻¹], [−R⁻ᵀ, R⁻ᵀ (E + Zᵀ diag(α) Z) R⁻¹]], with R the upper triangle of SᵀZ
    /// and E its diagonal. `None` when R cannot be inverted.
    pub fn new(alpha: &[f64], pairs: &[(Vec<f64>, Vec<f64>)]) -> Option<InverseHessian> {
        let d = alpha.len();
        let m = pairs.len();
        let s = DMatrix::from_fn(d, m, |i, j| pairs[j].0[i]);
        let z = DMatrix::from_fn(d, m, |i, j| pairs[j].1[i]);
        let sz = s.transpose() * &z;
        let r = DMatrix::from_fn(m, m, |i, j| if i <= j { sz[(i, j)] } else { 0.0 });
        let r_inverse = r.try_inverse()?;
        let mut alpha_z = z.clone();
        for i in 0..d {
            for j in 0..m {
                alpha_z[(i, j)] *= alpha[i];
            }
        }
        let mut middle = z.transpose() * &alpha_z;
        for k in 0..m {
            middle[(k, k)] += sz[(k, k)];
        }
        let lower_right = r_inverse.transpose() * middle * &r_inverse;
        let mut gamma = DMatrix::zeros(2 * m, 2 * m);
        for i in 0..m {
            for j in 0..m {
                gamma[(i, m + j)] = -r_inverse[(i, j)];
                gamma[(m + j, i)] = -r_inverse[(i, j)];
                gamma[(m + i, m + j)] = lower_right[(i, j)];
            }
        }
        let mut beta = DMatrix::zeros(d, 2 * m);
        beta.view_mut((0, 0), (d, m)).copy_from(&alpha_z);
        beta.view_mut((0, m), (d, m)).copy_from(&s);
        let finite = beta.iter().chain(gamma.iter()).all(|v| v.is_finite());
        finite.then_some(InverseHessian {
            alpha: alpha.to_vec(),
            beta,
            gamma,
        })
    }

    /// H v.
    pub fn apply(&self, v: &[f64]) -> Vec<f64> {
        let vector = nalgebra::DVector::from_column_slice(v);
        let low_rank = &self.beta * (&self.gamma * (self.beta.transpose() * vector));
        (0..v.len())
            .map(|i| self.alpha[i] * v[i] + low_rank[i])
            .collect()
    }

    /// H as a dense d × d matrix (for tests and small models).
    pub fn dense(&self) -> DMatrix<f64> {
        let mut h = &self.beta * &self.gamma * self.beta.transpose();
        for (i, a) in self.alpha.iter().enumerate() {
            h[(i, i)] += a;
        }
        h
    }
}

/// The paper's diagonal update of α by one pair (s, z): with a = zᵀ diag(α) z, b = zᵀs and
/// c = sᵀ diag(α)⁻¹ s, 1 / α'ᵢ = a / (b αᵢ) + zᵢ² / b − a sᵢ² / (b c αᵢ²). An element whose
/// update is not finite and positive keeps its old value.
pub fn update_diagonal(alpha: &mut [f64], s: &[f64], z: &[f64]) {
    let a: f64 = z.iter().zip(alpha.iter()).map(|(z, a)| z * a * z).sum();
    let b: f64 = z.iter().zip(s).map(|(z, s)| z * s).sum();
    let c: f64 = s.iter().zip(alpha.iter()).map(|(s, a)| s * s / a).sum();
    for i in 0..alpha.len() {
        let inverse =
            a / (b * alpha[i]) + z[i] * z[i] / b - a * s[i] * s[i] / (b * c * alpha[i] * alpha[i]);
        let updated = 1.0 / inverse;
        if updated.is_finite() && updated > 0.0 {
            alpha[i] = updated;
        }
    }
}

/// A normal N(mean, H) with H = D^{1/2} (I + Q (L Lᵀ − I) Qᵀ) D^{1/2}, D = diag(α), Q with
/// orthonormal columns: the factored form of the paper's Algorithm 5.
#[derive(Clone, Debug, PartialEq)]
pub struct FactoredNormal {
    /// The mean.
    pub mean: Vec<f64>,
    /// The diagonal α.
    pub alpha: Vec<f64>,
    /// Q, d × k with orthonormal columns (k ≤ 2J).
    pub q: DMatrix<f64>,
    /// L − I, k × k, with L lower triangular.
    pub lower_minus_identity: DMatrix<f64>,
    /// log det H.
    pub log_determinant: f64,
}

impl FactoredNormal {
    /// The local normal at `x`, where ∇log p is `gradient`: N(x + H ∇log p, H). `None` when
    /// I + R γ Rᵀ is not positive definite or a value is not finite.
    pub fn new(x: &[f64], gradient: &[f64], hessian: &InverseHessian) -> Option<FactoredNormal> {
        let d = x.len();
        let step = hessian.apply(gradient);
        let mean: Vec<f64> = x.iter().zip(&step).map(|(x, s)| x + s).collect();
        let mut scaled = hessian.beta.clone();
        for i in 0..d {
            let root = hessian.alpha[i].sqrt();
            for j in 0..scaled.ncols() {
                scaled[(i, j)] /= root;
            }
        }
        let qr = scaled.qr();
        let q = qr.q();
        let r = qr.r();
        let k = r.nrows();
        let inner = DMatrix::identity(k, k) + &r * &hessian.gamma * r.transpose();
        let cholesky = nalgebra::Cholesky::new(inner)?;
        let lower = cholesky.l();
        let log_determinant = hessian.alpha.iter().map(|a| a.ln()).sum::<f64>()
            + 2.0 * (0..k).map(|i| lower[(i, i)].ln()).sum::<f64>();
        let lower_minus_identity = lower - DMatrix::identity(k, k);
        let finite = log_determinant.is_finite() && mean.iter().all(|m| m.is_finite());
        finite.then_some(FactoredNormal {
            mean,
            alpha: hessian.alpha.clone(),
            q,
            lower_minus_identity,
            log_determinant,
        })
    }

    /// The number of coordinates.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The draw μ + D^{1/2} (u + Q (L − I) Qᵀ u) from the standard normal draws `noise`, and
    /// its log density −½ (log det H + uᵀu + d log 2π).
    pub fn draw_from(&self, noise: &[f64]) -> (Vec<f64>, f64) {
        let d = self.dim();
        let u = nalgebra::DVector::from_column_slice(noise);
        let correction = &self.q * (&self.lower_minus_identity * (self.q.transpose() * &u));
        let x = (0..d)
            .map(|i| self.mean[i] + self.alpha[i].sqrt() * (u[i] + correction[i]))
            .collect();
        let squared: f64 = noise.iter().map(|e| e * e).sum();
        let log_q = -0.5 * (self.log_determinant + squared) - d as f64 * HALF_LOG_TWO_PI;
        (x, log_q)
    }

    /// A draw and its log density.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> (Vec<f64>, f64) {
        let noise: Vec<f64> = (0..self.dim())
            .map(|_| rng.sample(StandardNormal))
            .collect();
        self.draw_from(&noise)
    }

    /// The covariance's square-root factor D^{1/2} (I + Q (L − I) Qᵀ), dense d × d.
    pub fn dense_factor(&self) -> DMatrix<f64> {
        let d = self.dim();
        let mut factor =
            DMatrix::identity(d, d) + &self.q * &self.lower_minus_identity * self.q.transpose();
        for i in 0..d {
            let root = self.alpha[i].sqrt();
            for j in 0..d {
                factor[(i, j)] *= root;
            }
        }
        factor
    }

    /// The covariance H, dense d × d.
    pub fn covariance(&self) -> DMatrix<f64> {
        let factor = self.dense_factor();
        &factor * factor.transpose()
    }

    /// The lower Cholesky factor of the covariance as d rows (zeros above the diagonal), as a
    /// `multivariate_normal` guide stores it; `None` when round-off makes the dense covariance
    /// not positive definite.
    pub fn cholesky_rows(&self) -> Option<Vec<Vec<f64>>> {
        let d = self.dim();
        let lower = nalgebra::Cholesky::new(self.covariance())?.l();
        Some(
            (0..d)
                .map(|i| (0..d).map(|j| lower[(i, j)]).collect())
                .collect(),
        )
    }

    /// The marginal variances (H's diagonal), in O(d k²).
    pub fn variances(&self) -> Vec<f64> {
        // H = D^{1/2} (I + Q M Qᵀ) D^{1/2} with M = (L Lᵀ − I) = (L − I) + (L − I)ᵀ +
        // (L − I)(L − I)ᵀ.
        let k = self.lower_minus_identity.nrows();
        let n = &self.lower_minus_identity;
        let m = n + n.transpose() + n * n.transpose();
        let qm = &self.q * m;
        (0..self.dim())
            .map(|i| {
                let quadratic: f64 = (0..k).map(|j| qm[(i, j)] * self.q[(i, j)]).sum();
                self.alpha[i] * (1.0 + quadratic)
            })
            .collect()
    }
}

/// One path's outcome.
#[derive(Clone, Debug)]
pub struct PathResult {
    /// The normal with the highest ELBO along the path.
    pub approximation: FactoredNormal,
    /// Its ELBO estimate.
    pub elbo: f64,
    /// The index of its point on the path (0 is the start).
    pub chosen_point: usize,
    /// The number of points on the path (the start and every accepted L-BFGS iterate).
    pub path_length: usize,
    /// How L-BFGS ended.
    pub lbfgs: LbfgsReport,
    /// Draws from the chosen normal.
    pub draws: Vec<Vec<f64>>,
    /// log p of each draw (−∞ where the density cannot be evaluated).
    pub log_p: Vec<f64>,
    /// log q of each draw under the chosen normal.
    pub log_q: Vec<f64>,
    /// Density evaluations of the path (L-BFGS, ELBO estimates and the final draws).
    pub evaluations: usize,
}

/// Every path, pooled.
#[derive(Clone, Debug)]
pub struct PathfinderResult {
    /// The paths that found an approximation, in path order.
    pub paths: Vec<PathResult>,
    /// The paths that failed, with why (a failed path is left out when another succeeds).
    pub failed_paths: Vec<PathfinderError>,
    /// The pooled draws (all paths' draws in path order).
    pub draws: Vec<Vec<f64>>,
    /// Their raw log importance ratios log p − log q_path.
    pub log_ratios: Vec<f64>,
    /// Their smoothed weights and k̂ (`None` when no ratio is finite).
    pub psis: Option<Psis>,
}

impl PathfinderResult {
    /// The path whose chosen normal has the highest ELBO.
    pub fn best_path(&self) -> &PathResult {
        self.paths
            .iter()
            .max_by(|a, b| a.elbo.total_cmp(&b.elbo))
            .expect("a result has at least one path")
    }

    /// The Pareto shape k̂ of the pooled ratios (∞ when they could not be smoothed).
    pub fn pareto_k(&self) -> f64 {
        self.psis.as_ref().map_or(f64::INFINITY, |p| p.pareto_k)
    }

    /// The effective sample size of the smoothed weights (0 when they could not be smoothed).
    pub fn effective_sample_size(&self) -> f64 {
        self.psis.as_ref().map_or(0.0, Psis::effective_sample_size)
    }

    /// `n` draws resampled in proportion to the smoothed weights (systematic resampling with
    /// one uniform from `seed`, in a random order so that the first few are not the first
    /// path's); the best path's own draws when the weights could not be smoothed.
    pub fn resample(&self, n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = stream_rng(derive_seed(seed, PURPOSE_RESAMPLE), 0);
        let mut chosen: Vec<Vec<f64>> = match &self.psis {
            Some(smoothed) => {
                let u: f64 = rng.random_range(0.0..1.0);
                psis::systematic_resample(&smoothed.log_weights, n, u)
                    .into_iter()
                    .map(|i| self.draws[i].clone())
                    .collect()
            }
            None => {
                let best = self.best_path();
                (0..n)
                    .map(|i| best.draws[i % best.draws.len()].clone())
                    .collect()
            }
        };
        // Fisher–Yates: systematic resampling returns the draws in pool order.
        for i in (1..chosen.len()).rev() {
            let j = rng.random_range(0..=i);
            chosen.swap(i, j);
        }
        chosen
    }
}

impl PathfinderSettings {
    /// Checks the settings against a density of `dim` coordinates.
    pub fn validate(&self, dim: usize) -> Result<(), PathfinderError> {
        let invalid = |message: String| Err(PathfinderError::InvalidSettings { message });
        if dim == 0 {
            return invalid("the density has no coordinates".into());
        }
        if self.paths == 0 || self.history == 0 || self.elbo_draws == 0 {
            return invalid("paths, history and ELBO draws must be at least 1".into());
        }
        if self.draws_per_path < 2 || self.max_init_attempts == 0 || self.max_iterations == 0 {
            return invalid(
                "at least 2 draws per path, 1 iteration and 1 starting point are needed".into(),
            );
        }
        if !(self.init_radius.is_finite() && self.init_radius >= 0.0) {
            return invalid(format!(
                "the initial radius must be finite and non-negative, not {}",
                self.init_radius
            ));
        }
        Ok(())
    }
}

/// log p and its gradient, with a failure that is a numerical accident mapped to −∞.
fn log_p<D: LogDensity + ?Sized>(
    density: &mut D,
    x: &[f64],
    gradient: &mut [f64],
) -> Result<f64, PathfinderError> {
    match density.log_density_gradient(x, gradient) {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Ok(f64::NEG_INFINITY),
        Err(LogDensityError {
            recoverable: true, ..
        }) => Ok(f64::NEG_INFINITY),
        Err(error) => Err(PathfinderError::Density {
            message: error.message,
        }),
    }
}

/// One point of an L-BFGS path: the position and ∇log p there.
struct PathPoint {
    x: Vec<f64>,
    gradient: Vec<f64>,
}

/// Runs path `path` (its random streams are stream `path` of the settings' seed), from a uniform
/// random start.
pub fn single_path<D: LogDensity + ?Sized>(
    density: &mut D,
    settings: &PathfinderSettings,
    path: usize,
) -> Result<PathResult, PathfinderError> {
    let d = density.dim();
    settings.validate(d)?;
    let mut evaluations = 0;
    let mut gradient = vec![0.0; d];
    // A start with a finite density and gradient, uniform in the box (Stan's default).
    let mut start_rng = stream_rng(derive_seed(settings.seed, PURPOSE_START), path as u64);
    let mut start = vec![0.0; d];
    let mut last_failure = String::from("no point was tried");
    let mut found = false;
    for _ in 0..settings.max_init_attempts {
        for value in start.iter_mut() {
            *value = settings.init_radius * (2.0 * start_rng.random::<f64>() - 1.0);
        }
        evaluations += 1;
        match log_p(density, &start, &mut gradient)? {
            value if value.is_finite() && gradient.iter().all(|g| g.is_finite()) => {
                found = true;
                break;
            }
            value => last_failure = format!("the log density is {value} at the last point tried"),
        }
    }
    if !found {
        return Err(PathfinderError::Initialisation {
            path,
            message: last_failure,
        });
    }

    // The L-BFGS path on f = −log p, every accepted point recorded with ∇log p.
    let mut points: Vec<PathPoint> = Vec::new();
    let lbfgs_settings = LbfgsSettings {
        max_iterations: settings.max_iterations,
        ..LbfgsSettings::default()
    };
    let mut x = start.clone();
    let mut lbfgs_evaluations = 0;
    let report = lbfgs::minimize_along(
        |position: &[f64], minus_gradient: &mut [f64]| {
            lbfgs_evaluations += 1;
            let value = density.log_density_gradient(position, minus_gradient)?;
            for g in minus_gradient.iter_mut() {
                *g = -*g;
            }
            Ok(-value)
        },
        &mut x,
        &lbfgs_settings,
        |position: &[f64], minus_gradient: &[f64], _value: f64| {
            points.push(PathPoint {
                x: position.to_vec(),
                gradient: minus_gradient.iter().map(|g| -g).collect(),
            });
        },
    )
    .map_err(|error| match error {
        LbfgsError::BadStart { message } => PathfinderError::Initialisation { path, message },
        LbfgsError::Fatal { message } => PathfinderError::Density { message },
    })?;
    evaluations += lbfgs_evaluations;

    // The normal at every point after the first, and its ELBO.
    let mut elbo_rng = stream_rng(derive_seed(settings.seed, PURPOSE_ELBO), path as u64);
    let mut pairs: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut alpha = vec![1.0; d];
    let mut best: Option<(FactoredNormal, f64, usize)> = None;
    let mut last_problem = String::from("the path has no step with positive curvature");
    for l in 1..points.len() {
        let s: Vec<f64> = points[l]
            .x
            .iter()
            .zip(&points[l - 1].x)
            .map(|(a, b)| a - b)
            .collect();
        // z is the change of ∇f = −∇log p.
        let z: Vec<f64> = points[l]
            .gradient
            .iter()
            .zip(&points[l - 1].gradient)
            .map(|(a, b)| b - a)
            .collect();
        let sz: f64 = s.iter().zip(&z).map(|(a, b)| a * b).sum();
        let z_norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        if sz.is_finite() && sz > CURVATURE_EPSILON * z_norm {
            update_diagonal(&mut alpha, &s, &z);
            if pairs.len() == settings.history {
                pairs.remove(0);
            }
            pairs.push((s, z));
        }
        if pairs.is_empty() {
            continue;
        }
        let point = &points[l];
        let Some(normal) = InverseHessian::new(&alpha, &pairs)
            .and_then(|hessian| FactoredNormal::new(&point.x, &point.gradient, &hessian))
        else {
            last_problem = "an inverse-Hessian estimate was not positive definite".into();
            continue;
        };
        let mut total = 0.0;
        for _ in 0..settings.elbo_draws {
            let (draw, log_q) = normal.sample(&mut elbo_rng);
            evaluations += 1;
            total += log_p(density, &draw, &mut gradient)? - log_q;
        }
        let elbo = total / settings.elbo_draws as f64;
        if elbo.is_nan() || elbo == f64::NEG_INFINITY {
            last_problem = "every ELBO estimate was −∞ (draws where the density fails)".into();
            continue;
        }
        if best.as_ref().is_none_or(|(_, b, _)| elbo > *b) {
            best = Some((normal, elbo, l));
        }
    }
    let Some((approximation, elbo, chosen_point)) = best else {
        return Err(PathfinderError::NoApproximation {
            path,
            message: last_problem,
        });
    };

    let mut draw_rng = stream_rng(derive_seed(settings.seed, PURPOSE_DRAWS), path as u64);
    let mut draws = Vec::with_capacity(settings.draws_per_path);
    let mut log_ps = Vec::with_capacity(settings.draws_per_path);
    let mut log_qs = Vec::with_capacity(settings.draws_per_path);
    for _ in 0..settings.draws_per_path {
        let (draw, log_q) = approximation.sample(&mut draw_rng);
        evaluations += 1;
        log_ps.push(log_p(density, &draw, &mut gradient)?);
        log_qs.push(log_q);
        draws.push(draw);
    }
    Ok(PathResult {
        approximation,
        elbo,
        chosen_point,
        path_length: points.len(),
        lbfgs: report,
        draws,
        log_p: log_ps,
        log_q: log_qs,
        evaluations,
    })
}

/// Multi-path Pathfinder: `settings.paths` paths run as the shared driver's units, each on its
/// own density from `make_density(path)`, their draws pooled and Pareto-smoothed. A path that
/// fails to start or finds no approximation is dropped when another succeeds; when every path
/// fails, the first path's error is returned. A failure of the density itself (not a numerical
/// accident) ends the run.
pub fn pathfinder<D, F>(
    make_density: F,
    settings: &PathfinderSettings,
) -> Result<PathfinderResult, PathfinderError>
where
    D: LogDensity,
    F: Fn(usize) -> D + Sync,
{
    let units = Units::new(make_density);
    let dim = units.first(|density| density.dim()).unwrap_or(0);
    settings.validate(dim)?;
    let never = AtomicBool::new(false);
    let outcomes = units.run(
        settings.paths,
        settings.parallel,
        &never,
        |path, mut density, _control| match single_path(&mut density, settings, path) {
            // A path that finds nothing is not an error of the run (its siblings may).
            Err(error @ PathfinderError::Initialisation { .. })
            | Err(error @ PathfinderError::NoApproximation { .. }) => Ok(Err(error)),
            other => other.map(Ok),
        },
    );
    let mut paths = Vec::new();
    let mut failed_paths = Vec::new();
    for outcome in driver::collect(outcomes)? {
        match outcome {
            Ok(path) => paths.push(path),
            Err(error) => failed_paths.push(error),
        }
    }
    if paths.is_empty() {
        return Err(failed_paths
            .into_iter()
            .next()
            .unwrap_or(PathfinderError::InvalidSettings {
                message: "no path was run".into(),
            }));
    }
    let mut draws = Vec::new();
    let mut log_ratios = Vec::new();
    for path in &paths {
        draws.extend(path.draws.iter().cloned());
        log_ratios.extend(path.log_p.iter().zip(&path.log_q).map(|(p, q)| p - q));
    }
    let smoothed = psis::psis(&log_ratios);
    Ok(PathfinderResult {
        paths,
        failed_paths,
        draws,
        log_ratios,
        psis: smoothed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense BFGS recursion from H₀ = diag(α): H ← (I − ρ s zᵀ) H (I − ρ z sᵀ) + ρ s sᵀ for
    /// each pair in order, ρ = 1 / sᵀz (Nocedal and Wright, eq. 6.17), independent of the
    /// compact form.
    fn bfgs_dense(alpha: &[f64], pairs: &[(Vec<f64>, Vec<f64>)]) -> DMatrix<f64> {
        let d = alpha.len();
        let mut h = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(alpha));
        for (s, z) in pairs {
            let s = nalgebra::DVector::from_column_slice(s);
            let z = nalgebra::DVector::from_column_slice(z);
            let rho = 1.0 / s.dot(&z);
            let left = DMatrix::identity(d, d) - rho * &s * z.transpose();
            h = &left * h * left.transpose() + rho * &s * s.transpose();
        }
        h
    }

    fn quadratic_pairs(a: &DMatrix<f64>, steps: &[Vec<f64>]) -> Vec<(Vec<f64>, Vec<f64>)> {
        steps
            .iter()
            .map(|s| {
                let z = a * nalgebra::DVector::from_column_slice(s);
                (s.clone(), z.iter().copied().collect())
            })
            .collect()
    }

    #[test]
    fn the_compact_form_equals_the_bfgs_recursion() {
        let a = DMatrix::from_row_slice(
            4,
            4,
            &[
                4.0, 1.0, 0.0, 0.5, 1.0, 3.0, 0.5, 0.0, 0.0, 0.5, 2.0, 0.3, 0.5, 0.0, 0.3, 1.5,
            ],
        );
        let steps = vec![
            vec![1.0, 0.2, 0.0, -0.3],
            vec![0.3, 1.0, 0.1, 0.0],
            vec![-0.2, 0.4, 1.0, 0.2],
        ];
        let pairs = quadratic_pairs(&a, &steps);
        let alpha = [0.7, 1.3, 0.4, 2.0];
        let compact = InverseHessian::new(&alpha, &pairs).unwrap().dense();
        let recursive = bfgs_dense(&alpha, &pairs);
        assert!(
            (&compact - &recursive).amax() < 1e-12,
            "{compact} vs {recursive}"
        );
    }

    #[test]
    fn d_conjugate_steps_on_a_quadratic_recover_the_inverse_hessian() {
        // BFGS keeps every earlier secant condition H zⱼ = sⱼ when the steps are A-conjugate
        // (as exact line searches on a quadratic make them), so d of them determine A⁻¹; the
        // eigenvectors of A are such steps.
        let a = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.0, 1.0, 3.0, 0.5, 0.0, 0.5, 2.0]);
        let eigen = a.clone().symmetric_eigen();
        let steps: Vec<Vec<f64>> = (0..3)
            .map(|j| eigen.eigenvectors.column(j).iter().copied().collect())
            .collect();
        let pairs = quadratic_pairs(&a, &steps);
        let h = InverseHessian::new(&[1.0; 3], &pairs).unwrap().dense();
        let product = h * &a;
        assert!((product - DMatrix::<f64>::identity(3, 3)).amax() < 1e-10);
    }

    #[test]
    fn the_last_secant_condition_holds_for_any_steps() {
        let a = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.0, 1.0, 3.0, 0.5, 0.0, 0.5, 2.0]);
        let steps = vec![vec![1.0, 0.0, 0.0], vec![0.3, 1.0, 0.0]];
        let pairs = quadratic_pairs(&a, &steps);
        let hessian = InverseHessian::new(&[0.5, 2.0, 1.0], &pairs).unwrap();
        let (s, z) = pairs.last().unwrap();
        let hz = hessian.apply(z);
        for i in 0..3 {
            assert!((hz[i] - s[i]).abs() < 1e-12, "{hz:?} vs {s:?}");
        }
    }

    #[test]
    fn the_factored_normal_matches_its_dense_covariance_and_density() {
        let a = DMatrix::from_row_slice(3, 3, &[2.0, 0.6, 0.1, 0.6, 1.0, 0.2, 0.1, 0.2, 0.5]);
        let steps = vec![vec![0.5, -0.2, 0.1], vec![0.1, 0.7, -0.3]];
        let pairs = quadratic_pairs(&a, &steps);
        let alpha = [0.8, 1.1, 1.9];
        let hessian = InverseHessian::new(&alpha, &pairs).unwrap();
        let x = [0.3, -0.1, 0.2];
        let gradient = [1.0, -0.5, 0.25];
        let normal = FactoredNormal::new(&x, &gradient, &hessian).unwrap();
        let dense = hessian.dense();
        assert!((normal.covariance() - &dense).amax() < 1e-12);
        let variances = normal.variances();
        for i in 0..3 {
            assert!((variances[i] - dense[(i, i)]).abs() < 1e-12);
        }
        // The mean is the Newton step x + H ∇log p.
        let step = &dense * nalgebra::DVector::from_column_slice(&gradient);
        for i in 0..3 {
            assert!((normal.mean[i] - x[i] - step[i]).abs() < 1e-12);
        }
        // log q of a draw is the dense multivariate normal density there.
        let cholesky = nalgebra::Cholesky::new(dense.clone()).unwrap();
        let (draw, log_q) = normal.draw_from(&[0.4, -1.2, 0.9]);
        let centred = nalgebra::DVector::from_iterator(3, (0..3).map(|i| draw[i] - normal.mean[i]));
        let solved = cholesky.solve(&centred);
        let log_det = 2.0 * cholesky.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
        let expected = -0.5 * (centred.dot(&solved) + log_det) - 3.0 * HALF_LOG_TWO_PI;
        assert!((log_q - expected).abs() < 1e-12, "{log_q} vs {expected}");
    }

    #[test]
    fn the_diagonal_update_is_exact_for_a_diagonal_quadratic_step_along_an_axis() {
        // On f = ½ Σ aᵢ xᵢ², a step along axis 0 gives z = a₀ s: the update sets α₀ = 1 / a₀ and
        // leaves the other elements as the a / b scaling says.
        let mut alpha = vec![1.0, 1.0];
        update_diagonal(&mut alpha, &[2.0, 0.0], &[8.0, 0.0]);
        assert!((alpha[0] - 0.25).abs() < 1e-12, "{alpha:?}");
        // a = 64, b = 16: the second element is scaled by b / a.
        assert!((alpha[1] - 0.25).abs() < 1e-12, "{alpha:?}");
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let settings = PathfinderSettings {
            paths: 0,
            ..PathfinderSettings::default()
        };
        assert!(settings.validate(3).is_err());
        assert!(PathfinderSettings::default().validate(0).is_err());
        assert!(PathfinderSettings::default().validate(3).is_ok());
    }
}
