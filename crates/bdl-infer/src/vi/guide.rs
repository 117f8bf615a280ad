//! The auto-guide families over all latent coordinates (unconstrained), as flat parameter
//! vectors that an optimiser can move, with the reparameterised draw z = μ + A ε, its backward
//! pass, and the guide's entropy with its analytic gradient.
//!
//! Scales are softplus-parameterised for stability: a raw value ρ stands for σ = softplus(ρ).
//! Everything below works on the *natural* values (σ, L, W), computed once per step by
//! `GuideFamily::natural_from` together with the slopes d softplus(ρ)/dρ = sigmoid(ρ); the chain
//! rule through softplus is applied once to the summed gradient by `GuideFamily::chain_softplus`.
//!
//! Flat layouts (d latent coordinates):
//! - Delta: `[μ (d)]`; the guide is a point mass (MAP).
//! - DiagonalNormal: `[μ (d), ρ (d)]`, σ = softplus(ρ); z_i = μ_i + σ_i ε_i.
//! - MultivariateNormal: `[μ (d), packed lower triangle (d(d+1)/2)]` row by row, standing for
//!   L = diag(s) U with s_i = softplus(raw_ii) and U unit lower triangular, U_ij = raw_ij (j < i);
//!   z = μ + L ε. This is NumPyro's scaled unit-lower-Cholesky form: an optimiser's step on U_ij
//!   moves L_ij by s_i times as much, so that well-determined coordinates (small s_i) are not
//!   shaken by steps sized for the poorly determined ones.
//! - LowRankMultivariateNormal: `[μ (d), W (d × r, row-major), ρ (d)]`, s = softplus(ρ),
//!   Σ = W Wᵀ + diag(s²); z = μ + W ε₁ + s ⊙ ε₂ with ε₁ of length r and ε₂ of length d.
//! - Iaf: `[μ (d), ρ (d), flow (see [`crate::vi::flow`])]`, σ = softplus(ρ); z = μ + σ ⊙ T(ε)
//!   with T the inverse autoregressive flow. Unlike the others its draw is not linear in ε and
//!   its entropy has no closed form: H(q) = H(N(0, I)) + Σ log σᵢ + E[log det ∂T/∂ε], and the
//!   last term is estimated per draw, in [`GuideFamily::backpropagate`].

use crate::rng::Rng;
use crate::vi::error::SettingsError;
use crate::vi::flow::{self, FlowCache, FlowShape};
use crate::vi::numeric::{
    cholesky_in_place, inverse_from_cholesky, softplus, softplus_inverse, softplus_with_slope,
    HALF_LOG_TWO_PI, NORMAL_ENTROPY_CONSTANT,
};
use crate::vi::posterior::{FittedGuide, GuideError, GuideParams};
use rand::Rng as _;
use rand_distr::StandardNormal;

/// Which auto-guide to fit (the `--guide` option).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum GuideKind {
    /// A point mass at a learned location: MAP (Pyro's AutoDelta).
    Delta,
    /// Independent normals with learned locations and softplus-parameterised scales (Pyro's
    /// AutoNormal and AutoDiagonalNormal, which coincide over one flat latent vector).
    #[default]
    DiagonalNormal,
    /// A full-covariance normal with a lower-triangular factor whose diagonal is softplus-
    /// parameterised (AutoMultivariateNormal).
    MultivariateNormal,
    /// A normal with covariance W Wᵀ + D (AutoLowRankMultivariateNormal).
    LowRankMultivariateNormal {
        /// The number of columns of W; `None` takes round(√d) as Pyro and NumPyro do (at least 1).
        rank: Option<usize>,
    },
    /// A MAP fit followed by a normal whose covariance is the inverse of the negative Hessian of
    /// the log joint at the MAP (AutoLaplaceApproximation).
    Laplace,
    /// An inverse autoregressive flow of stacked MADE-conditioned affine layers on a diagonal
    /// normal (AutoIAFNormal).
    Iaf {
        /// The number of affine autoregressive layers.
        layers: usize,
        /// The hidden width of each layer's MADE; `None` takes 3 d + 1.
        hidden: Option<usize>,
    },
}

/// The default number of IAF layers.
pub const DEFAULT_IAF_LAYERS: usize = 2;

/// The most latent coordinates the IAF guide covers: its MADE networks have O(d²) weights and
/// the density of a given point (for the Pareto-k̂ diagnostic) costs d network passes per layer.
pub const MAX_IAF_DIM: usize = 100;

impl GuideKind {
    /// The short name used on the command line and in `params.json`.
    pub fn name(&self) -> &'static str {
        match self {
            GuideKind::Delta => "delta",
            GuideKind::DiagonalNormal => "diag",
            GuideKind::MultivariateNormal => "mvn",
            GuideKind::LowRankMultivariateNormal { .. } => "lowrank",
            GuideKind::Laplace => "laplace",
            GuideKind::Iaf { .. } => "iaf",
        }
    }

    /// The guide named `name` (`delta`, `diag` or `normal`, `mvn`, `lowrank`, `laplace`, `iaf`),
    /// with the default rank for `lowrank` and the default layers for `iaf`.
    pub fn from_name(name: &str) -> Option<GuideKind> {
        match name {
            "delta" => Some(GuideKind::Delta),
            "diag" | "normal" => Some(GuideKind::DiagonalNormal),
            "mvn" => Some(GuideKind::MultivariateNormal),
            "lowrank" => Some(GuideKind::LowRankMultivariateNormal { rank: None }),
            "laplace" => Some(GuideKind::Laplace),
            "iaf" => Some(GuideKind::Iaf {
                layers: DEFAULT_IAF_LAYERS,
                hidden: None,
            }),
            _ => None,
        }
    }
}

/// The shape of a trainable guide's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Structure {
    Delta,
    Diagonal,
    MultivariateNormal,
    LowRank { rank: usize },
    Iaf { shape: FlowShape },
}

/// A trainable guide family over `latent_dim` coordinates: the layout of its flat parameter
/// vector and the maths of its reparameterised draws. The Laplace guide trains as a Delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuideFamily {
    structure: Structure,
    latent_dim: usize,
}

/// One latent coordinate whose prior is a fixed Normal(loc, scale) in unconstrained space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NormalPriorCoordinate {
    pub index: usize,
    pub loc: f64,
    pub scale: f64,
}

/// Buffers for the low-rank guide's entropy (r × r matrices), allocated once.
#[derive(Clone, Debug, Default)]
pub(crate) struct GuideScratch {
    capacitance: Vec<f64>,
    capacitance_inverse: Vec<f64>,
    work: Vec<f64>,
    scaled_row: Vec<f64>,
    solved_row: Vec<f64>,
}

/// The index of L_ij (j ≤ i) in the packed lower triangle.
fn tril_index(i: usize, j: usize) -> usize {
    i * (i + 1) / 2 + j
}

impl GuideFamily {
    /// The family for `kind` over `latent_dim` coordinates.
    pub fn new(kind: &GuideKind, latent_dim: usize) -> Result<Self, SettingsError> {
        let structure = match *kind {
            GuideKind::Delta | GuideKind::Laplace => Structure::Delta,
            GuideKind::DiagonalNormal => Structure::Diagonal,
            GuideKind::MultivariateNormal => Structure::MultivariateNormal,
            GuideKind::LowRankMultivariateNormal { rank } => {
                let default_rank = ((latent_dim as f64).sqrt().round() as usize).max(1);
                let rank = rank.unwrap_or(default_rank);
                if rank == 0 {
                    return Err(SettingsError::new(
                        "the low-rank guide's rank must be at least 1",
                    ));
                }
                if latent_dim > 0 && rank > latent_dim {
                    return Err(SettingsError::new(format!(
                        "the low-rank guide's rank ({rank}) exceeds the number of latent \
                         coordinates ({latent_dim})"
                    )));
                }
                Structure::LowRank { rank }
            }
            GuideKind::Iaf { layers, hidden } => {
                if latent_dim > MAX_IAF_DIM {
                    return Err(SettingsError::new(format!(
                        "the IAF guide covers at most {MAX_IAF_DIM} latent coordinates, but the \
                         model has {latent_dim}"
                    )));
                }
                if layers == 0 || hidden == Some(0) {
                    return Err(SettingsError::new(
                        "the IAF guide needs at least one layer and one hidden unit",
                    ));
                }
                Structure::Iaf {
                    shape: FlowShape {
                        dim: latent_dim,
                        layers,
                        hidden: hidden.unwrap_or(3 * latent_dim + 1),
                    },
                }
            }
        };
        Ok(GuideFamily {
            structure,
            latent_dim,
        })
    }

    /// The number of latent coordinates the guide covers.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// The rank of a low-rank guide's factor.
    pub fn rank(&self) -> Option<usize> {
        match self.structure {
            Structure::LowRank { rank } => Some(rank),
            _ => None,
        }
    }

    /// Whether the guide's marginals have a closed form (every family but the flow), which the
    /// analytic-KL ELBO needs.
    pub fn has_closed_form_marginals(&self) -> bool {
        !matches!(self.structure, Structure::Iaf { .. })
    }

    /// The length of the flat parameter vector.
    pub fn n_params(&self) -> usize {
        let d = self.latent_dim;
        match self.structure {
            Structure::Delta => d,
            Structure::Diagonal => 2 * d,
            Structure::Iaf { shape } => 2 * d + shape.n_params(),
            Structure::MultivariateNormal => d + d * (d + 1) / 2,
            Structure::LowRank { rank } => 2 * d + d * rank,
        }
    }

    /// The number of standard normal draws behind one guide draw.
    pub fn noise_dim(&self) -> usize {
        let d = self.latent_dim;
        match self.structure {
            Structure::Delta => 0,
            Structure::Diagonal | Structure::MultivariateNormal | Structure::Iaf { .. } => d,
            Structure::LowRank { rank } => rank + d,
        }
    }

    /// Initial parameters: the location `loc` (at least `latent_dim` values) and, for normal guides, marginal standard
    /// deviations of `init_scale`. The low-rank guide splits its variance evenly between W and
    /// D, and W starts from small random entries drawn from `rng` (a zero W is a stationary
    /// point of the ELBO in W).
    pub(crate) fn initial_params(&self, loc: &[f64], init_scale: f64, rng: &mut Rng) -> Vec<f64> {
        let d = self.latent_dim;
        let mut params = Vec::with_capacity(self.n_params());
        params.extend_from_slice(&loc[..d]);
        match self.structure {
            Structure::Delta => {}
            Structure::Diagonal => {
                params.extend(std::iter::repeat_n(softplus_inverse(init_scale), d));
            }
            Structure::Iaf { shape } => {
                // Identity layers: the guide starts as the diagonal normal does.
                params.extend(std::iter::repeat_n(softplus_inverse(init_scale), d));
                params.extend(shape.initial_params(|| rng.sample(StandardNormal)));
            }
            Structure::MultivariateNormal => {
                for i in 0..d {
                    for j in 0..=i {
                        params.push(if i == j {
                            softplus_inverse(init_scale)
                        } else {
                            0.0
                        });
                    }
                }
            }
            Structure::LowRank { rank } => {
                // Var(z_i) = Σ_a W_ia² + s_i² ≈ r · (½ init² / r) + ½ init² = init².
                let factor_sd = init_scale * (0.5 / rank as f64).sqrt();
                for _ in 0..d * rank {
                    let draw: f64 = rng.sample(StandardNormal);
                    params.push(factor_sd * draw);
                }
                let diagonal = softplus_inverse(init_scale * 0.5f64.sqrt());
                params.extend(std::iter::repeat_n(diagonal, d));
            }
        }
        params
    }

    /// Replaces the initial marginal standard deviations set by [`GuideFamily::initial_params`]
    /// (all `init_scale`) by `scales`, one per latent coordinate, keeping the structure: the
    /// diagonal normal's scales, the MVN factor's diagonal, and for the low-rank guide both the
    /// diagonal part and the rows of W, scaled so each marginal variance is `scales[i]²`.
    pub(crate) fn set_initial_scales(&self, params: &mut [f64], init_scale: f64, scales: &[f64]) {
        let d = self.latent_dim;
        match self.structure {
            Structure::Delta => {}
            Structure::Diagonal | Structure::Iaf { .. } => {
                for i in 0..d {
                    params[d + i] = softplus_inverse(scales[i]);
                }
            }
            Structure::MultivariateNormal => {
                for i in 0..d {
                    params[d + tril_index(i, i)] = softplus_inverse(scales[i]);
                }
            }
            Structure::LowRank { rank } => {
                for i in 0..d {
                    let ratio = scales[i] / init_scale;
                    for a in 0..rank {
                        params[d + i * rank + a] *= ratio;
                    }
                    params[d + d * rank + i] = softplus_inverse(scales[i] * 0.5f64.sqrt());
                }
            }
        }
    }

    /// Calls `visit` with the index of every softplus-parameterised entry.
    fn for_each_softplus_index(&self, mut visit: impl FnMut(usize)) {
        let d = self.latent_dim;
        match self.structure {
            Structure::Delta => {}
            Structure::Diagonal | Structure::Iaf { .. } => (d..2 * d).for_each(visit),
            Structure::MultivariateNormal => (0..d).for_each(|i| visit(d + tril_index(i, i))),
            Structure::LowRank { rank } => (d + d * rank..2 * d + d * rank).for_each(visit),
        }
    }

    /// Writes the natural values of `params` (softplus applied to the raw scale entries) and, at
    /// those entries, the slopes sigmoid(raw) that [`GuideFamily::chain_softplus`] needs.
    ///
    /// The diagonal guide's scales are one vectorisable pass over slices (with the branch-free
    /// `exp` and `log1p` of `bdl_vmath`); the other structures visit their softplus entries one
    /// by one.
    pub(crate) fn natural_from(&self, params: &[f64], natural: &mut [f64], slopes: &mut [f64]) {
        if self.structure == Structure::Diagonal {
            let d = self.latent_dim;
            natural[..d].copy_from_slice(&params[..d]);
            bdl_vmath::softplus_with_slopes(
                &params[d..2 * d],
                &mut natural[d..2 * d],
                &mut slopes[d..2 * d],
            );
            return;
        }
        natural.copy_from_slice(params);
        self.for_each_softplus_index(|k| {
            let (value, slope) = softplus_with_slope(params[k]);
            natural[k] = value;
            slopes[k] = slope;
        });
        if self.structure == Structure::MultivariateNormal {
            // L_ij = s_i U_ij below the diagonal.
            let d = self.latent_dim;
            for i in 0..d {
                let scale = natural[d + tril_index(i, i)];
                for j in 0..i {
                    natural[d + tril_index(i, j)] *= scale;
                }
            }
        }
    }

    /// Multiplies the gradient entries of softplus-parameterised values by their slopes:
    /// d/dρ f(softplus(ρ)) = f′(σ) · sigmoid(ρ).
    ///
    /// For the multivariate normal, the gradient with respect to L first becomes the gradient with
    /// respect to (s, U): ∂f/∂U_ij = s_i ∂f/∂L_ij and ∂f/∂s_i = ∂f/∂L_ii + Σ_{j<i} U_ij ∂f/∂L_ij,
    /// with U_ij = L_ij / s_i read from `natural`.
    pub(crate) fn chain_softplus(&self, natural: &[f64], slopes: &[f64], gradient: &mut [f64]) {
        if self.structure == Structure::MultivariateNormal {
            let d = self.latent_dim;
            for i in 0..d {
                let diagonal = d + tril_index(i, i);
                let scale = natural[diagonal];
                let mut scale_gradient = gradient[diagonal];
                for j in 0..i {
                    let k = d + tril_index(i, j);
                    let unit = natural[k] / scale;
                    scale_gradient += unit * gradient[k];
                    gradient[k] *= scale;
                }
                gradient[diagonal] = scale_gradient;
            }
        }
        if self.structure == Structure::Diagonal {
            let d = self.latent_dim;
            for (g, slope) in gradient[d..2 * d].iter_mut().zip(&slopes[d..2 * d]) {
                *g *= slope;
            }
            return;
        }
        self.for_each_softplus_index(|k| gradient[k] *= slopes[k]);
    }

    /// The reparameterised draw z = μ + A ε from the natural parameters and the noise.
    pub(crate) fn draw(&self, natural: &[f64], noise: &[f64], z: &mut [f64]) {
        let d = self.latent_dim;
        let loc = &natural[..d];
        match self.structure {
            Structure::Delta => z.copy_from_slice(loc),
            Structure::Diagonal => {
                let scale = &natural[d..2 * d];
                for (((z, &m), &s), &e) in z[..d].iter_mut().zip(loc).zip(scale).zip(&noise[..d]) {
                    *z = m + s * e;
                }
            }
            Structure::Iaf { shape } => {
                let scale = &natural[d..2 * d];
                let mut y = vec![0.0; d];
                flow::forward(
                    &shape,
                    &natural[2 * d..],
                    noise,
                    &mut y,
                    &mut FlowCache::default(),
                );
                for i in 0..d {
                    z[i] = loc[i] + scale[i] * y[i];
                }
            }
            Structure::MultivariateNormal => {
                let factor = &natural[d..];
                for i in 0..d {
                    let row = &factor[tril_index(i, 0)..=tril_index(i, i)];
                    let product: f64 = row.iter().zip(&noise[..=i]).map(|(l, e)| l * e).sum();
                    z[i] = loc[i] + product;
                }
            }
            Structure::LowRank { rank } => {
                let factor = &natural[d..d + d * rank];
                let scale = &natural[d + d * rank..];
                let (noise_factor, noise_diagonal) = noise.split_at(rank);
                for i in 0..d {
                    let row = &factor[i * rank..(i + 1) * rank];
                    let product: f64 = row.iter().zip(noise_factor).map(|(w, e)| w * e).sum();
                    z[i] = loc[i] + product + scale[i] * noise_diagonal[i];
                }
            }
        }
    }

    /// Overwrites `gradient` (length `n_params`) with the gradient, with respect to the natural
    /// parameters, of f(z(θ)) given g = ∂f/∂z at the draw made from `noise`:
    /// ∂f/∂μ = g, ∂f/∂σ_i = g_i ε_i, ∂f/∂L_ij = g_i ε_j, ∂f/∂W_ia = g_i ε₁_a, ∂f/∂s_i = g_i ε₂_i.
    /// For the flow, whose entropy is estimated per draw, it is the gradient of
    /// f(z(θ)) + `weight` · log det ∂T/∂ε, and the log-determinant is returned (0 for the other
    /// families, whose entropy [`GuideFamily::add_entropy`] gives in closed form).
    pub(crate) fn backpropagate(
        &self,
        natural: &[f64],
        noise: &[f64],
        grad_z: &[f64],
        weight: f64,
        gradient: &mut [f64],
    ) -> f64 {
        let d = self.latent_dim;
        gradient[..d].copy_from_slice(grad_z);
        match self.structure {
            Structure::Delta => {}
            Structure::Iaf { shape } => {
                let scale = &natural[d..2 * d];
                let mut y = vec![0.0; d];
                let mut cache = FlowCache::default();
                let log_determinant =
                    flow::forward(&shape, &natural[2 * d..], noise, &mut y, &mut cache);
                let mut grad_y = vec![0.0; d];
                for i in 0..d {
                    gradient[d + i] = grad_z[i] * y[i];
                    grad_y[i] = grad_z[i] * scale[i];
                }
                flow::backward(
                    &shape,
                    &natural[2 * d..],
                    &cache,
                    &grad_y,
                    weight,
                    &mut gradient[2 * d..],
                );
                return log_determinant;
            }
            Structure::Diagonal => {
                for ((g, &gz), &e) in gradient[d..2 * d].iter_mut().zip(grad_z).zip(&noise[..d]) {
                    *g = gz * e;
                }
            }
            Structure::MultivariateNormal => {
                let factor = &mut gradient[d..];
                for i in 0..d {
                    let row = &mut factor[tril_index(i, 0)..=tril_index(i, i)];
                    for (entry, e) in row.iter_mut().zip(&noise[..=i]) {
                        *entry = grad_z[i] * e;
                    }
                }
            }
            Structure::LowRank { rank } => {
                let (noise_factor, noise_diagonal) = noise.split_at(rank);
                let (factor, scale) = gradient[d..].split_at_mut(d * rank);
                for i in 0..d {
                    for (entry, e) in factor[i * rank..(i + 1) * rank]
                        .iter_mut()
                        .zip(noise_factor)
                    {
                        *entry = grad_z[i] * e;
                    }
                    scale[i] = grad_z[i] * noise_diagonal[i];
                }
            }
        }
        0.0
    }

    /// Scratch buffers sized for this family.
    pub(crate) fn scratch(&self) -> GuideScratch {
        match self.structure {
            Structure::LowRank { rank } => GuideScratch {
                capacitance: vec![0.0; rank * rank],
                capacitance_inverse: vec![0.0; rank * rank],
                work: vec![0.0; rank * rank],
                scaled_row: vec![0.0; rank],
                solved_row: vec![0.0; rank],
            },
            _ => GuideScratch::default(),
        }
    }

    /// Returns the entropy H(q) and adds `weight × ∂H/∂(natural parameters)` to `gradient`.
    ///
    /// For a normal guide H = ½ log det(2πe Σ) = d (½ + ½ log 2π) + ½ log det Σ, so
    /// ∂H/∂σ_i = 1/σ_i, ∂H/∂L_ii = 1/L_ii (off-diagonal entries do not change det L), and for
    /// Σ = W Wᵀ + D, D = diag(s²), with the capacitance K = I + Wᵀ D⁻¹ W:
    /// log det Σ = Σ log s_i² + log det K, ∂H/∂W = Σ⁻¹ W = D⁻¹ W K⁻¹ and
    /// ∂H/∂s_i = s_i (Σ⁻¹)_ii with (Σ⁻¹)_ii = 1/D_i − (D⁻¹ W K⁻¹ Wᵀ D⁻¹)_ii (Woodbury).
    /// A Delta guide has no entropy term (0).
    pub(crate) fn add_entropy(
        &self,
        natural: &[f64],
        weight: f64,
        gradient: &mut [f64],
        scratch: &mut GuideScratch,
    ) -> f64 {
        let d = self.latent_dim;
        let constant = d as f64 * NORMAL_ENTROPY_CONSTANT;
        match self.structure {
            Structure::Delta => 0.0,
            // The flow's entropy H(N(0, I)) + Σ log σᵢ + E[log det ∂T/∂ε]: the last term is
            // estimated per draw by `backpropagate`.
            Structure::Diagonal | Structure::Iaf { .. } => {
                constant
                    + bdl_vmath::sum_ln_adding_inverses(
                        &natural[d..2 * d],
                        weight,
                        &mut gradient[d..2 * d],
                    )
            }
            Structure::MultivariateNormal => {
                let mut entropy = constant;
                for i in 0..d {
                    let k = d + tril_index(i, i);
                    entropy += natural[k].ln();
                    gradient[k] += weight / natural[k];
                }
                entropy
            }
            Structure::LowRank { rank } => {
                let factor = &natural[d..d + d * rank];
                let scale = &natural[d + d * rank..];
                let capacitance = &mut scratch.capacitance;
                capacitance.iter_mut().for_each(|value| *value = 0.0);
                for a in 0..rank {
                    capacitance[a * rank + a] = 1.0;
                }
                for i in 0..d {
                    let inverse_variance = 1.0 / (scale[i] * scale[i]);
                    let row = &factor[i * rank..(i + 1) * rank];
                    for a in 0..rank {
                        for b in 0..=a {
                            capacitance[a * rank + b] += row[a] * row[b] * inverse_variance;
                        }
                    }
                }
                if cholesky_in_place(capacitance, rank).is_err() {
                    // Only non-finite parameters get here (K ≥ I); the caller sees a NaN loss.
                    return f64::NAN;
                }
                let mut entropy = constant;
                for a in 0..rank {
                    entropy += capacitance[a * rank + a].ln();
                }
                for &s in scale {
                    entropy += s.ln();
                }
                inverse_from_cholesky(
                    capacitance,
                    rank,
                    &mut scratch.work,
                    &mut scratch.capacitance_inverse,
                );
                let inverse = &scratch.capacitance_inverse;
                let (factor_gradient, scale_gradient) = gradient[d..].split_at_mut(d * rank);
                for i in 0..d {
                    let variance = scale[i] * scale[i];
                    let row = &factor[i * rank..(i + 1) * rank];
                    // u = W_i / D_i, v = u K⁻¹ = (Σ⁻¹ W)_i, (Σ⁻¹)_ii = 1/D_i − v · u.
                    for a in 0..rank {
                        scratch.scaled_row[a] = row[a] / variance;
                    }
                    let mut quadratic = 0.0;
                    for b in 0..rank {
                        let mut value = 0.0;
                        for a in 0..rank {
                            value += scratch.scaled_row[a] * inverse[a * rank + b];
                        }
                        scratch.solved_row[b] = value;
                        quadratic += value * scratch.scaled_row[b];
                    }
                    for b in 0..rank {
                        factor_gradient[i * rank + b] += weight * scratch.solved_row[b];
                    }
                    let precision_diagonal = 1.0 / variance - quadratic;
                    scale_gradient[i] += weight * scale[i] * precision_diagonal;
                }
                entropy
            }
        }
    }

    /// Returns Σ E_q[log Normal(z_i; m_i, s_i)] over the coordinates in `priors` and adds
    /// `weight ×` its gradient with respect to the natural parameters to `gradient`.
    ///
    /// Under a normal guide z_i has mean μ_i and variance v_i, so
    /// E_q[log N(z_i; m, s)] = −log s − ½ log 2π − ((μ_i − m)² + v_i) / (2 s²), with
    /// ∂/∂μ_i = −(μ_i − m) / s² and ∂/∂v_i = −1 / (2 s²); v_i is σ_i², Σ_j L_ij², or
    /// Σ_a W_ia² + s_i², whose derivatives are twice the entries. A Delta guide has v_i = 0.
    /// The flow has no closed-form marginals ([`GuideFamily::has_closed_form_marginals`]): the
    /// ELBO estimates its prior term by sampling instead and never asks for this (it adds 0).
    pub(crate) fn add_expected_normal_log_prior(
        &self,
        natural: &[f64],
        priors: &[NormalPriorCoordinate],
        weight: f64,
        gradient: &mut [f64],
    ) -> f64 {
        let d = self.latent_dim;
        let mut total = 0.0;
        for prior in priors {
            let i = prior.index;
            let precision = 1.0 / (prior.scale * prior.scale);
            let offset = natural[i] - prior.loc;
            // ∂/∂v_i, times the weight.
            let variance_slope = -0.5 * precision * weight;
            let variance = match self.structure {
                Structure::Delta => 0.0,
                Structure::Iaf { .. } => return 0.0,
                Structure::Diagonal => {
                    let scale = natural[d + i];
                    gradient[d + i] += variance_slope * 2.0 * scale;
                    scale * scale
                }
                Structure::MultivariateNormal => {
                    let start = d + tril_index(i, 0);
                    let mut variance = 0.0;
                    for k in start..=start + i {
                        variance += natural[k] * natural[k];
                        gradient[k] += variance_slope * 2.0 * natural[k];
                    }
                    variance
                }
                Structure::LowRank { rank } => {
                    let start = d + i * rank;
                    let mut variance = 0.0;
                    for k in start..start + rank {
                        variance += natural[k] * natural[k];
                        gradient[k] += variance_slope * 2.0 * natural[k];
                    }
                    let k = d + d * rank + i;
                    variance += natural[k] * natural[k];
                    gradient[k] += variance_slope * 2.0 * natural[k];
                    variance
                }
            };
            total += -prior.scale.ln()
                - HALF_LOG_TWO_PI
                - 0.5 * precision * (offset * offset + variance);
            gradient[i] -= weight * precision * offset;
        }
        total
    }

    /// The guide's parameters as plain data (natural values).
    pub fn to_guide_params(&self, params: &[f64]) -> GuideParams {
        let d = self.latent_dim;
        let loc = params[..d].to_vec();
        match self.structure {
            Structure::Delta => GuideParams::Delta { loc },
            Structure::Diagonal => GuideParams::DiagonalNormal {
                loc,
                scale: params[d..2 * d].iter().map(|&raw| softplus(raw)).collect(),
            },
            Structure::MultivariateNormal => {
                let mut scale_tril = vec![vec![0.0; d]; d];
                for (i, row) in scale_tril.iter_mut().enumerate() {
                    let scale = softplus(params[d + tril_index(i, i)]);
                    for (j, entry) in row.iter_mut().enumerate().take(i + 1) {
                        let raw = params[d + tril_index(i, j)];
                        *entry = if i == j { scale } else { scale * raw };
                    }
                }
                GuideParams::MultivariateNormal { loc, scale_tril }
            }
            Structure::Iaf { shape } => GuideParams::Iaf {
                loc,
                scale: params[d..2 * d].iter().map(|&raw| softplus(raw)).collect(),
                hidden: shape.hidden,
                layers: params[2 * d..]
                    .chunks(shape.layer_len())
                    .map(<[f64]>::to_vec)
                    .collect(),
            },
            Structure::LowRank { rank } => GuideParams::LowRankMultivariateNormal {
                loc,
                cov_factor: params[d..d + d * rank]
                    .chunks(rank)
                    .map(<[f64]>::to_vec)
                    .collect(),
                cov_diag: params[d + d * rank..]
                    .iter()
                    .map(|&raw| {
                        let scale = softplus(raw);
                        scale * scale
                    })
                    .collect(),
            },
        }
    }

    /// The fitted guide for flat parameters `params`.
    pub fn to_fitted(&self, params: &[f64]) -> Result<FittedGuide, GuideError> {
        FittedGuide::new(self.to_guide_params(params))
    }

    /// The family and flat parameters that stand for `guide`, to resume training from saved
    /// parameters. The Laplace guide is not trainable and is refused.
    pub fn from_guide_params(guide: &GuideParams) -> Result<(GuideFamily, Vec<f64>), GuideError> {
        let fitted = FittedGuide::new(guide.clone())?;
        let d = fitted.latent_dim();
        let mut params = guide.loc().to_vec();
        let structure = match guide {
            GuideParams::Delta { .. } => Structure::Delta,
            GuideParams::DiagonalNormal { scale, .. } => {
                params.extend(scale.iter().map(|&s| softplus_inverse(s)));
                Structure::Diagonal
            }
            GuideParams::MultivariateNormal { scale_tril, .. } => {
                for (i, row) in scale_tril.iter().enumerate() {
                    let scale = row[i];
                    for (j, &entry) in row.iter().enumerate().take(i + 1) {
                        params.push(if i == j {
                            softplus_inverse(entry)
                        } else {
                            entry / scale
                        });
                    }
                }
                Structure::MultivariateNormal
            }
            GuideParams::LowRankMultivariateNormal {
                cov_factor,
                cov_diag,
                ..
            } => {
                let rank = cov_factor.first().map_or(0, Vec::len);
                if rank == 0 {
                    return Err(GuideError::new(
                        "the low-rank guide's factor has no columns",
                    ));
                }
                for row in cov_factor {
                    params.extend_from_slice(row);
                }
                params.extend(cov_diag.iter().map(|&v| softplus_inverse(v.sqrt())));
                Structure::LowRank { rank }
            }
            GuideParams::Laplace { .. } => {
                return Err(GuideError::new(
                    "a Laplace approximation is not trainable; refit it from its MAP location",
                ))
            }
            GuideParams::Iaf {
                scale,
                hidden,
                layers,
                ..
            } => {
                params.extend(scale.iter().map(|&s| softplus_inverse(s)));
                for layer in layers {
                    params.extend_from_slice(layer);
                }
                Structure::Iaf {
                    shape: FlowShape {
                        dim: d,
                        layers: layers.len(),
                        hidden: *hidden,
                    },
                }
            }
        };
        Ok((
            GuideFamily {
                structure,
                latent_dim: d,
            },
            params,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    fn families(d: usize) -> Vec<GuideFamily> {
        [
            GuideKind::Delta,
            GuideKind::DiagonalNormal,
            GuideKind::MultivariateNormal,
            GuideKind::LowRankMultivariateNormal { rank: Some(2) },
            GuideKind::Iaf {
                layers: 2,
                hidden: Some(5),
            },
        ]
        .iter()
        .map(|kind| GuideFamily::new(kind, d).unwrap())
        .collect()
    }

    fn random_params(family: &GuideFamily, seed: u64) -> Vec<f64> {
        let mut rng = stream_rng(seed, 0);
        (0..family.n_params())
            .map(|_| 0.5 * rng.sample::<f64, _>(StandardNormal))
            .collect()
    }

    /// A central difference of `f` at `params` in coordinate `k` (six-point stencil).
    fn central_difference(f: &dyn Fn(&[f64]) -> f64, params: &[f64], k: usize) -> f64 {
        let h = 1e-3;
        let at = |offset: f64| {
            let mut shifted = params.to_vec();
            shifted[k] += offset;
            f(&shifted)
        };
        (at(3.0 * h) - 9.0 * at(2.0 * h) + 45.0 * at(h) - 45.0 * at(-h) + 9.0 * at(-2.0 * h)
            - at(-3.0 * h))
            / (60.0 * h)
    }

    #[test]
    fn entropy_gradient_matches_finite_differences() {
        for family in families(4) {
            let params = random_params(&family, 3);
            let entropy = |raw: &[f64]| {
                let mut natural = vec![0.0; raw.len()];
                family.natural_from(raw, &mut natural, &mut vec![0.0; raw.len()]);
                let mut ignored = vec![0.0; raw.len()];
                family.add_entropy(&natural, 1.0, &mut ignored, &mut family.scratch())
            };
            let mut natural = vec![0.0; params.len()];
            let mut slopes = vec![0.0; params.len()];
            family.natural_from(&params, &mut natural, &mut slopes);
            let mut gradient = vec![0.0; params.len()];
            family.add_entropy(&natural, 1.0, &mut gradient, &mut family.scratch());
            family.chain_softplus(&natural, &slopes, &mut gradient);
            for k in 0..params.len() {
                let numeric = central_difference(&entropy, &params, k);
                assert!(
                    (numeric - gradient[k]).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{family:?} coordinate {k}: {numeric} vs {}",
                    gradient[k]
                );
            }
        }
    }

    #[test]
    fn low_rank_entropy_matches_the_dense_log_determinant() {
        let family =
            GuideFamily::new(&GuideKind::LowRankMultivariateNormal { rank: Some(2) }, 3).unwrap();
        let params = random_params(&family, 11);
        let fitted = family.to_fitted(&params).unwrap();
        let covariance: Vec<f64> = fitted.covariance().into_iter().flatten().collect();
        let mut factor = covariance;
        cholesky_in_place(&mut factor, 3).unwrap();
        let log_det: f64 = (0..3).map(|i| 2.0 * factor[i * 3 + i].ln()).sum();
        let mut natural = vec![0.0; params.len()];
        let mut slopes = vec![0.0; params.len()];
        family.natural_from(&params, &mut natural, &mut slopes);
        let mut gradient = vec![0.0; params.len()];
        let entropy = family.add_entropy(&natural, 1.0, &mut gradient, &mut family.scratch());
        assert!((entropy - (3.0 * NORMAL_ENTROPY_CONSTANT + 0.5 * log_det)).abs() < 1e-12);
    }

    #[test]
    fn expected_log_prior_gradient_matches_finite_differences() {
        let priors = [
            NormalPriorCoordinate {
                index: 0,
                loc: 0.3,
                scale: 2.0,
            },
            NormalPriorCoordinate {
                index: 2,
                loc: -1.0,
                scale: 0.5,
            },
        ];
        for family in families(3) {
            let params = random_params(&family, 5);
            let value = |raw: &[f64]| {
                let mut natural = vec![0.0; raw.len()];
                family.natural_from(raw, &mut natural, &mut vec![0.0; raw.len()]);
                let mut ignored = vec![0.0; raw.len()];
                family.add_expected_normal_log_prior(&natural, &priors, 1.0, &mut ignored)
            };
            let mut natural = vec![0.0; params.len()];
            let mut slopes = vec![0.0; params.len()];
            family.natural_from(&params, &mut natural, &mut slopes);
            let mut gradient = vec![0.0; params.len()];
            family.add_expected_normal_log_prior(&natural, &priors, 1.0, &mut gradient);
            family.chain_softplus(&natural, &slopes, &mut gradient);
            for k in 0..params.len() {
                let numeric = central_difference(&value, &params, k);
                assert!(
                    (numeric - gradient[k]).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{family:?} coordinate {k}: {numeric} vs {}",
                    gradient[k]
                );
            }
        }
    }

    #[test]
    fn draw_backpropagation_matches_finite_differences() {
        // f(z) = Σ c_i z_i² has ∂f/∂z_i = 2 c_i z_i; the chain rule through the draw must agree
        // with differences of f(z(θ)) at fixed noise.
        let weights = [0.7, -1.3, 0.4];
        for family in families(3) {
            let params = random_params(&family, 9);
            let mut rng = stream_rng(21, 0);
            let noise: Vec<f64> = (0..family.noise_dim())
                .map(|_| rng.sample(StandardNormal))
                .collect();
            let f_of_params = |raw: &[f64]| {
                let mut natural = vec![0.0; raw.len()];
                family.natural_from(raw, &mut natural, &mut vec![0.0; raw.len()]);
                let mut z = vec![0.0; 3];
                family.draw(&natural, &noise, &mut z);
                z.iter().zip(weights).map(|(z, c)| c * z * z).sum::<f64>()
            };
            let mut natural = vec![0.0; params.len()];
            let mut slopes = vec![0.0; params.len()];
            family.natural_from(&params, &mut natural, &mut slopes);
            let mut z = vec![0.0; 3];
            family.draw(&natural, &noise, &mut z);
            let grad_z: Vec<f64> = z.iter().zip(weights).map(|(z, c)| 2.0 * c * z).collect();
            let mut gradient = vec![0.0; params.len()];
            family.backpropagate(&natural, &noise, &grad_z, 0.0, &mut gradient);
            family.chain_softplus(&natural, &slopes, &mut gradient);
            for k in 0..params.len() {
                let numeric = central_difference(&f_of_params, &params, k);
                assert!(
                    (numeric - gradient[k]).abs() < 1e-6 * (1.0 + numeric.abs()),
                    "{family:?} coordinate {k}: {numeric} vs {}",
                    gradient[k]
                );
            }
        }
    }

    #[test]
    fn guide_params_round_trip_through_the_flat_vector() {
        for family in families(3) {
            let params = random_params(&family, 13);
            let plain = family.to_guide_params(&params);
            let (rebuilt_family, rebuilt) = GuideFamily::from_guide_params(&plain).unwrap();
            assert_eq!(rebuilt_family, family);
            for (a, b) in params.iter().zip(&rebuilt) {
                assert!((a - b).abs() < 1e-9, "{family:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn default_low_rank_rank_follows_pyro() {
        let rank = |d| {
            GuideFamily::new(&GuideKind::LowRankMultivariateNormal { rank: None }, d)
                .unwrap()
                .rank()
        };
        assert_eq!(rank(1), Some(1));
        assert_eq!(rank(10), Some(3));
        assert_eq!(rank(301), Some(17));
        assert!(
            GuideFamily::new(&GuideKind::LowRankMultivariateNormal { rank: Some(5) }, 3).is_err()
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in [
            GuideKind::Delta,
            GuideKind::DiagonalNormal,
            GuideKind::MultivariateNormal,
            GuideKind::LowRankMultivariateNormal { rank: None },
            GuideKind::Laplace,
            GuideKind::Iaf {
                layers: DEFAULT_IAF_LAYERS,
                hidden: None,
            },
        ] {
            assert_eq!(GuideKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(
            GuideKind::from_name("normal"),
            Some(GuideKind::DiagonalNormal)
        );
        assert_eq!(GuideKind::from_name("flow"), None);
    }
}
