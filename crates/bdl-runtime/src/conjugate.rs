//! Conjugacy, found by probing the model: exact conditional draws for Metropolis-within-Gibbs,
//! and closed-form posteriors for conjugate models (`bdlc infer --method exact`).
//!
//! A latent block is conjugate when, with every other coordinate fixed, its log density has the
//! functional form of a known family in the block's unconstrained coordinates u:
//!
//! - Gaussian (real sites): f(u) = −½ (u − m)ᵀ P (u − m) + c. The gradient is affine, so the
//!   precision P is minus the Hessian, exact from central differences of exact gradients, and the
//!   mean is m = u₀ + P⁻¹ ∇f(u₀).
//! - Gamma (positive scalar sites, u = log θ): f(u) = a u − b eᵘ + c, so f′(u) = a − b eᵘ; the
//!   conditional of θ is Gamma(a, rate b). Inverse-gamma: f′(u) = −a + b e⁻ᵘ.
//! - Beta (unit-interval scalar sites, u = logit p): f′(u) = a (1 − p) − b p; p ~ Beta(a, b).
//! - Dirichlet (simplex sites with a `Dirichlet` prior): the constrained log density is
//!   Σ (αₖ − 1) log pₖ + c, so p ~ Dirichlet(α) (Dirichlet–Categorical and Dirichlet–Multinomial
//!   blocks).
//! - Wishart (positive-definite matrix sites with a `Wishart` prior, a precision Λ of d × d): the
//!   constrained log density is ½ (ν − d − 1) log |Λ| − ½ tr(B Λ) + c, so Λ ~ Wishart(ν, B⁻¹)
//!   (Normal–Wishart blocks: a precision matrix of normal or multivariate-normal draws). Draws use
//!   Bartlett's decomposition.
//!
//! The two matrix and simplex forms are linear in features of the constrained value (log |Λ| and
//! the entries of Λ; log pₖ), so their parameters come from a least-squares fit of the constrained
//! log density (the unconstrained one minus the bijector's log-Jacobian) at a few points of the
//! block, with extra points that must fit exactly.
//!
//! The parameters come from a few evaluations, and the form is then verified at other points
//! (other values of the block and of the rest of the model). Verification is exact arithmetic up
//! to rounding, so a conjugate model passes and a non-conjugate one fails; when it fails, the
//! site whose log density breaks the form is named. This is how the compiler "recognises"
//! conjugate models: by their densities, not by matching their source text.

use crate::error::RuntimeError;
use crate::layout::SiteLayout;
use crate::model::{Evaluator, Model};
use bdl_autodiff::{Tape, Tensor};
use bdl_diagnostics::Span;
use bdl_dist::{Bijector, Constraint};
use bdl_infer::density::LogDensityError;
use bdl_infer::gibbs::{GibbsBlock, GibbsModel, MultivariateNormal, Wishart};
use bdl_infer::rng::{stream_rng, Rng};
use nalgebra::{DMatrix, DVector};
use rand::Rng as _;
use rand_distr::Distribution as _;
use serde_json::{json, Value};
use std::ops::Range;

/// Relative tolerance of the verification of a functional form.
const FORM_TOLERANCE: f64 = 1e-6;

/// How many random configurations verify a form.
const VERIFICATIONS: usize = 3;

/// The blocks asked for: groups of site names, or one block per latent site. A group written
/// `rw: a, b` is drawn by random-walk Metropolis even when its conditional is conjugate (to
/// compare an exact block with the random walk it replaces).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GibbsBlocks {
    groups: Option<Vec<Vec<String>>>,
    random_walk: Vec<bool>,
}

impl GibbsBlocks {
    /// Parses `"beta, beta0; gamma, gamma0; rw: sigma"`; `None` gives one block per site.
    pub fn parse(text: Option<&str>) -> Result<GibbsBlocks, String> {
        let Some(text) = text else {
            return Ok(GibbsBlocks::default());
        };
        let mut groups = Vec::new();
        let mut random_walk = Vec::new();
        for group in text.split(';') {
            let (forced, names) = match group.trim().strip_prefix("rw:") {
                Some(rest) => (true, rest),
                None => (false, group),
            };
            let names: Vec<String> = names
                .split(',')
                .map(|name| name.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect();
            if names.is_empty() {
                if forced {
                    return Err("`rw:` in `--blocks` names no sites: write `rw: site, site`".into());
                }
                continue;
            }
            groups.push(names);
            random_walk.push(forced);
        }
        if groups.is_empty() {
            return Err("`--blocks` names no sites: write sites joined by commas, blocks separated by semicolons".into());
        }
        Ok(GibbsBlocks {
            groups: Some(groups),
            random_walk,
        })
    }
}

/// How a block's conditional is drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Conditional {
    /// Exactly, as a multivariate normal in unconstrained space.
    Gaussian,
    /// Exactly: θ = eᵘ ~ Gamma(a, b).
    Gamma,
    /// Exactly: θ = eᵘ ~ InverseGamma(a, b).
    InverseGamma,
    /// Exactly: p = σ(u) ~ Beta(a, b).
    Beta,
    /// Exactly: a simplex p ~ Dirichlet(α).
    Dirichlet,
    /// Exactly: a positive-definite matrix Λ ~ Wishart(ν, V), by Bartlett's decomposition.
    Wishart,
    /// By adaptive random-walk Metropolis, with a Gaussian block integrated out when given.
    Metropolis {
        /// The Gaussian block marginalised in the acceptance ratio.
        marginalise: Option<usize>,
    },
}

/// One block of a Gibbs sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanBlock {
    /// The sites in the block.
    pub sites: Vec<String>,
    /// Its coordinates in the latent vector.
    pub range: Range<usize>,
    /// How it is drawn.
    pub conditional: Conditional,
    /// Whether the random walk was asked for (`rw:`) although the block may be conjugate.
    pub random_walk: bool,
}

/// The blocks of a Gibbs sampler and how each is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct GibbsPlan {
    /// The blocks in sweep order.
    pub blocks: Vec<PlanBlock>,
}

impl GibbsPlan {
    /// The number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether there are no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// One line per block: its sites and its update.
    pub fn describe(&self) -> Vec<String> {
        self.blocks
            .iter()
            .map(|block| {
                let how = match &block.conditional {
                    Conditional::Gaussian => "exact multivariate normal".to_string(),
                    Conditional::Gamma => "exact gamma".to_string(),
                    Conditional::InverseGamma => "exact inverse gamma".to_string(),
                    Conditional::Beta => "exact beta".to_string(),
                    Conditional::Dirichlet => "exact Dirichlet".to_string(),
                    Conditional::Wishart => "exact Wishart".to_string(),
                    Conditional::Metropolis { marginalise } => {
                        let mut how = "random-walk Metropolis".to_string();
                        if let Some(other) = marginalise {
                            how.push_str(&format!(
                                " with {} integrated out",
                                self.blocks[*other].sites.join(", ")
                            ));
                        }
                        if block.random_walk {
                            how.push_str(" (asked for by `rw:`)");
                        }
                        how
                    }
                };
                format!("{}: {how}", block.sites.join(", "))
            })
            .collect()
    }
}

/// Evaluates the model's log joint over latent coordinates, params fixed at their initial values.
struct Probe<'m> {
    model: &'m Model,
    evaluator: Evaluator<'m>,
    full: Vec<f64>,
    rng: Rng,
}

impl<'m> Probe<'m> {
    fn new(model: &'m Model) -> Probe<'m> {
        let mut evaluator = model.evaluator();
        evaluator.set_full_plates();
        Probe {
            model,
            evaluator,
            full: model.layout.initial_position(),
            rng: stream_rng(0, 0),
        }
    }

    fn latent_dim(&self) -> usize {
        self.model.layout.latent_dim()
    }

    /// log p and its gradient over the latents.
    fn evaluate(&mut self, latent: &[f64]) -> Result<(f64, Vec<f64>), RuntimeError> {
        let n = latent.len();
        self.full[..n].copy_from_slice(latent);
        let evaluation = self
            .evaluator
            .evaluate(&self.full, 1.0, 1.0, &mut self.rng)?;
        Ok((
            evaluation.joint.total(),
            self.evaluator.gradient()[..n].to_vec(),
        ))
    }

    /// Each site's log density at `latent`.
    fn site_values(&mut self, latent: &[f64]) -> Result<Vec<(String, Span, f64)>, RuntimeError> {
        self.evaluate(latent)?;
        Ok(self.evaluator.site_log_densities())
    }

    /// The gradient and Hessian of the log density in the block `range`, at `latent`, by
    /// central differences of the gradient with step `h` (exact for quadratic densities).
    fn block_hessian(
        &mut self,
        latent: &[f64],
        range: &Range<usize>,
        h: f64,
    ) -> Result<(f64, DVector<f64>, DMatrix<f64>), RuntimeError> {
        let d = range.len();
        let (value, gradient) = self.evaluate(latent)?;
        let g0 = DVector::from_iterator(d, gradient[range.clone()].iter().copied());
        let mut hessian = DMatrix::zeros(d, d);
        let mut point = latent.to_vec();
        for j in 0..d {
            point[range.start + j] = latent[range.start + j] + h;
            let (_, plus) = self.evaluate(&point)?;
            point[range.start + j] = latent[range.start + j] - h;
            let (_, minus) = self.evaluate(&point)?;
            point[range.start + j] = latent[range.start + j];
            for i in 0..d {
                hessian[(i, j)] = (plus[range.start + i] - minus[range.start + i]) / (2.0 * h);
            }
        }
        let symmetric = (&hessian + hessian.transpose()) * 0.5;
        Ok((value, g0, symmetric))
    }
}

/// A random point near `center`: each coordinate moved by up to `radius`.
fn jitter(center: &[f64], radius: f64, rng: &mut Rng) -> Vec<f64> {
    center
        .iter()
        .map(|c| c + rng.random_range(-radius..radius))
        .collect()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= FORM_TOLERANCE * (1.0 + scale.abs())
}

/// Which family a site's prior asks its conditional to have.
fn expected_form(entry: &SiteLayout, family: Option<&str>) -> Option<Conditional> {
    match (&entry.constraint, family) {
        (Constraint::Real | Constraint::RealVector, _) => Some(Conditional::Gaussian),
        (Constraint::Positive, Some("Gamma")) if entry.len() == 1 => Some(Conditional::Gamma),
        (Constraint::Positive, Some("InverseGamma")) if entry.len() == 1 => {
            Some(Conditional::InverseGamma)
        }
        (Constraint::UnitInterval, Some("Beta")) if entry.len() == 1 => Some(Conditional::Beta),
        (Constraint::Simplex, Some("Dirichlet")) if entry.constrained_shape.len() == 1 => {
            Some(Conditional::Dirichlet)
        }
        (Constraint::PositiveDefinite, Some("Wishart")) if entry.constrained_shape.len() == 2 => {
            Some(Conditional::Wishart)
        }
        _ => None,
    }
}

/// The scalar form's two parameters from the derivative at two points, or `None` when they do
/// not determine them.
fn scalar_parameters(form: &Conditional, u: [f64; 2], derivative: [f64; 2]) -> Option<(f64, f64)> {
    // f′(u) = a·φ(u) − b·ψ(u) for the form's (φ, ψ).
    let basis = |u: f64| match form {
        Conditional::Gamma => (1.0, u.exp()),
        Conditional::InverseGamma => (-1.0, -(-u).exp()),
        _ => {
            let p = 1.0 / (1.0 + (-u).exp());
            (1.0 - p, p)
        }
    };
    let (phi0, psi0) = basis(u[0]);
    let (phi1, psi1) = basis(u[1]);
    let det = -phi0 * psi1 + phi1 * psi0;
    if det.abs() < 1e-12 {
        return None;
    }
    let a = (-derivative[0] * psi1 + derivative[1] * psi0) / det;
    let b = (phi0 * derivative[1] - phi1 * derivative[0]) / det;
    Some((a, b))
}

/// The derivative the scalar form predicts.
fn scalar_derivative(form: &Conditional, (a, b): (f64, f64), u: f64) -> f64 {
    match form {
        Conditional::Gamma => a - b * u.exp(),
        Conditional::InverseGamma => -a + b * (-u).exp(),
        _ => {
            let p = 1.0 / (1.0 + (-u).exp());
            a * (1.0 - p) - b * p
        }
    }
}

/// The site whose log density, as a function of the block along a random line, breaks the form
/// (for messages). The Gaussian form is tested by a vanishing third difference; the scalar forms
/// by fitting three points and checking a fourth.
fn breaking_site(
    probe: &mut Probe,
    latent: &[f64],
    range: &Range<usize>,
    form: &Conditional,
    rng: &mut Rng,
) -> Option<String> {
    let direction: Vec<f64> = range.clone().map(|_| rng.random_range(-1.0..1.0)).collect();
    let along = |t: f64| {
        let mut point = latent.to_vec();
        for (k, index) in range.clone().enumerate() {
            point[index] += 0.4 * t * direction[k];
        }
        point
    };
    let ts = [-1.0, 0.0, 1.0, 2.0];
    let mut values = Vec::new();
    for t in ts {
        values.push(probe.site_values(&along(t)).ok()?);
    }
    let sites = values[0].len();
    for site in 0..sites {
        let f: Vec<f64> = values
            .iter()
            .map(|v| v.get(site).map_or(f64::NAN, |x| x.2))
            .collect();
        let scale = f.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let broken = match form {
            Conditional::Gaussian => !close(f[3] - 3.0 * f[2] + 3.0 * f[1] - f[0], 0.0, scale),
            _ => {
                // f(t) = a·F(u) + b·G(u) + c with u = u₀ + 0.4 t v: fit on three points.
                let u0 = latent[range.start];
                let u = |t: f64| u0 + 0.4 * t * direction[0];
                let features = |u: f64| match form {
                    Conditional::Gamma => (u, -u.exp()),
                    Conditional::InverseGamma => (-u, -(-u).exp()),
                    _ => {
                        let p = 1.0 / (1.0 + (-u).exp());
                        (p.ln(), (1.0 - p).ln())
                    }
                };
                let rows: Vec<[f64; 3]> = ts[..3]
                    .iter()
                    .map(|&t| {
                        let (x, y) = features(u(t));
                        [x, y, 1.0]
                    })
                    .collect();
                let matrix = DMatrix::from_row_slice(3, 3, &rows.concat());
                match matrix.lu().solve(&DVector::from_row_slice(&f[..3])) {
                    Some(coefficients) => {
                        let (x, y) = features(u(ts[3]));
                        let predicted = coefficients[0] * x + coefficients[1] * y + coefficients[2];
                        !close(predicted, f[3], scale)
                    }
                    None => false,
                }
            }
        };
        if broken {
            return Some(values[0][site].0.clone());
        }
    }
    None
}

/// Checks that the block's conditional has the Gaussian form at `VERIFICATIONS` random
/// configurations of the whole latent vector.
fn verify_gaussian(
    probe: &mut Probe,
    center: &[f64],
    range: &Range<usize>,
    rng: &mut Rng,
) -> Result<bool, RuntimeError> {
    for _ in 0..VERIFICATIONS {
        let base = jitter(center, 0.5, rng);
        let (_, g0, hessian) = probe.block_hessian(&base, range, 1.0)?;
        let moved = {
            let mut point = base.clone();
            for index in range.clone() {
                point[index] += rng.random_range(-1.0..1.0);
            }
            point
        };
        let (_, gradient) = probe.evaluate(&moved)?;
        let step = DVector::from_iterator(range.len(), range.clone().map(|i| moved[i] - base[i]));
        let predicted = &g0 + &hessian * step;
        for (k, index) in range.clone().enumerate() {
            if !close(gradient[index], predicted[k], gradient[index]) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Checks that a scalar block's conditional has `form` at random configurations.
fn verify_scalar(
    probe: &mut Probe,
    center: &[f64],
    index: usize,
    form: &Conditional,
    rng: &mut Rng,
) -> Result<bool, RuntimeError> {
    for _ in 0..VERIFICATIONS {
        let base = jitter(center, 0.5, rng);
        let Some(((a, b), _)) = fit_scalar(probe, &base, index, form)? else {
            return Ok(false);
        };
        let mut point = base.clone();
        point[index] = base[index] + rng.random_range(-1.5..1.5);
        let (_, gradient) = probe.evaluate(&point)?;
        if !close(
            gradient[index],
            scalar_derivative(form, (a, b), point[index]),
            gradient[index],
        ) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A scalar form's two parameters and whether both are positive (a proper distribution).
type ScalarFit = Option<((f64, f64), bool)>;

/// The scalar form's parameters at the other coordinates of `latent`, with their validity.
fn fit_scalar(
    probe: &mut Probe,
    latent: &[f64],
    index: usize,
    form: &Conditional,
) -> Result<ScalarFit, RuntimeError> {
    let mut point = latent.to_vec();
    let u = [latent[index] - 0.5, latent[index] + 0.5];
    let mut derivative = [0.0; 2];
    for k in 0..2 {
        point[index] = u[k];
        derivative[k] = probe.evaluate(&point)?.1[index];
    }
    Ok(scalar_parameters(form, u, derivative).map(|(a, b)| ((a, b), a > 0.0 && b > 0.0)))
}

/// A constrained site of a matrix or simplex block: its bijector and shapes, to map the block's
/// unconstrained coordinates to the value its family is a density of.
struct ConstrainedBlock {
    bijector: Bijector,
    unconstrained_shape: Vec<usize>,
    constrained_shape: Vec<usize>,
}

impl ConstrainedBlock {
    fn new(entry: &SiteLayout) -> Result<ConstrainedBlock, RuntimeError> {
        let bijector = Bijector::for_constraint(&entry.constraint)
            .map_err(|e| RuntimeError::model("E0511", e.to_string(), entry.span))?;
        Ok(ConstrainedBlock {
            bijector,
            unconstrained_shape: entry.unconstrained_shape.clone(),
            constrained_shape: entry.constrained_shape.clone(),
        })
    }

    /// The constrained value of the unconstrained `block` and the log-Jacobian of the map.
    fn forward(&self, block: &[f64]) -> Option<(Vec<f64>, f64)> {
        let mut tape = Tape::new();
        let input = tape.constant_from(&self.unconstrained_shape, block).ok()?;
        let (value, log_jacobian) = self.bijector.forward(&mut tape, input).ok()?;
        let log_jacobian = tape.value(log_jacobian).data().iter().sum();
        Some((tape.value(value).data().to_vec(), log_jacobian))
    }

    /// The unconstrained coordinates of the constrained `value`.
    fn inverse(&self, value: Vec<f64>) -> Option<Vec<f64>> {
        let tensor = Tensor::from_shape(&self.constrained_shape, value).ok()?;
        let unconstrained = self.bijector.inverse(&tensor).ok()?;
        let data = unconstrained.data().to_vec();
        data.iter().all(|v| v.is_finite()).then_some(data)
    }

    /// The side d of a d × d matrix site, or the length K of a simplex.
    fn side(&self) -> usize {
        self.constrained_shape[0]
    }
}

/// The features whose linear combination is a family's log density (without its constant):
/// log |Λ| and the upper-triangle entries of Λ for Wishart, log pₖ for Dirichlet.
fn family_features(form: &Conditional, value: &[f64], side: usize) -> Option<Vec<f64>> {
    match form {
        Conditional::Wishart => {
            let matrix = DMatrix::from_row_slice(side, side, value);
            let cholesky = matrix.clone().cholesky()?;
            let log_det: f64 = cholesky.l().diagonal().iter().map(|v| 2.0 * v.ln()).sum();
            let mut features = vec![log_det];
            for i in 0..side {
                for j in i..side {
                    features.push(matrix[(i, j)]);
                }
            }
            Some(features)
        }
        Conditional::Dirichlet => value.iter().map(|&p| (p > 0.0).then(|| p.ln())).collect(),
        _ => None,
    }
}

/// A matrix or simplex family's parameters, fitted from its features' coefficients.
#[derive(Clone, Debug, PartialEq)]
enum FamilyParameters {
    /// Dirichlet(α).
    Dirichlet(Vec<f64>),
    /// Wishart(ν, V).
    Wishart(f64, DMatrix<f64>),
}

impl FamilyParameters {
    /// The parameters the coefficients of [`family_features`] give, or `None` when they are not
    /// a proper distribution (α ≤ 0; ν ≤ d − 1 or B not positive definite).
    fn from_coefficients(form: &Conditional, coefficients: &[f64], side: usize) -> Option<Self> {
        match form {
            Conditional::Wishart => {
                // ½ (ν − d − 1) log |Λ| − ½ Σᵢ Bᵢᵢ Λᵢᵢ − Σᵢ<ⱼ Bᵢⱼ Λᵢⱼ.
                let df = 2.0 * coefficients[0] + side as f64 + 1.0;
                let mut rate = DMatrix::zeros(side, side);
                let mut next = 1;
                for i in 0..side {
                    for j in i..side {
                        let value = if i == j {
                            -2.0 * coefficients[next]
                        } else {
                            -coefficients[next]
                        };
                        rate[(i, j)] = value;
                        rate[(j, i)] = value;
                        next += 1;
                    }
                }
                if df.is_nan() || df <= side as f64 - 1.0 {
                    return None;
                }
                let scale = rate.cholesky()?.inverse();
                Some(FamilyParameters::Wishart(
                    df,
                    (&scale + scale.transpose()) * 0.5,
                ))
            }
            Conditional::Dirichlet => {
                let alpha: Vec<f64> = coefficients.iter().map(|c| c + 1.0).collect();
                alpha
                    .iter()
                    .all(|a| a.is_finite() && *a > 0.0)
                    .then_some(FamilyParameters::Dirichlet(alpha))
            }
            _ => None,
        }
    }

    /// One constrained draw (row-major for a matrix).
    fn sample(&self, rng: &mut Rng) -> Option<Vec<f64>> {
        match self {
            FamilyParameters::Wishart(df, scale) => {
                let wishart = Wishart::new(*df, scale.clone()).ok()?;
                let draw = wishart.sample(rng);
                let side = draw.nrows();
                let symmetric = (&draw + draw.transpose()) * 0.5;
                Some(
                    (0..side * side)
                        .map(|k| symmetric[(k / side, k % side)])
                        .collect(),
                )
            }
            FamilyParameters::Dirichlet(alpha) => {
                let draws: Vec<f64> = alpha
                    .iter()
                    .map(|&a| {
                        rand_distr::Gamma::new(a, 1.0)
                            .map(|gamma| gamma.sample(rng))
                            .unwrap_or(f64::NAN)
                    })
                    .collect();
                let total: f64 = draws.iter().sum();
                (total > 0.0 && total.is_finite())
                    .then(|| draws.iter().map(|g| (g / total).max(1e-300)).collect())
            }
        }
    }
}

/// How many extra points a family fit must also reproduce.
const FAMILY_CHECK_POINTS: usize = 3;

/// Fits a matrix or simplex family to the block's constrained log density at the other
/// coordinates of `latent`: least squares over points of the block near its current value, with
/// [`FAMILY_CHECK_POINTS`] more points than unknowns that must fit to rounding. `Ok(None)` when
/// the density is not of the form there, `Ok(Some((parameters, proper)))` otherwise.
fn fit_family(
    probe: &mut Probe,
    latent: &[f64],
    range: &Range<usize>,
    block: &ConstrainedBlock,
    form: &Conditional,
    design: &mut Rng,
) -> Result<Option<Option<FamilyParameters>>, RuntimeError> {
    let side = block.side();
    let current = &latent[range.clone()];
    let Some((value, _)) = block.forward(current) else {
        return Ok(None);
    };
    let Some(features) = family_features(form, &value, side) else {
        return Ok(None);
    };
    let unknowns = features.len() + 1;
    let points = unknowns + FAMILY_CHECK_POINTS;
    let mut rows = Vec::with_capacity(points * unknowns);
    let mut targets = Vec::with_capacity(points);
    let mut point = latent.to_vec();
    for _ in 0..points {
        for index in range.clone() {
            point[index] = latent[index] + design.random_range(-0.5..0.5);
        }
        let Some((value, log_jacobian)) = block.forward(&point[range.clone()]) else {
            return Ok(None);
        };
        let Some(features) = family_features(form, &value, side) else {
            return Ok(None);
        };
        let (log_density, _) = probe.evaluate(&point)?;
        if !log_density.is_finite() {
            return Ok(None);
        }
        rows.extend(features);
        rows.push(1.0);
        targets.push(log_density - log_jacobian);
    }
    let matrix = DMatrix::from_row_slice(points, unknowns, &rows);
    let target = DVector::from_row_slice(&targets);
    let Ok(solution) = matrix.clone().svd(true, true).solve(&target, 1e-12) else {
        return Ok(None);
    };
    let fitted = &matrix * &solution;
    let scale = targets.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if (0..points).any(|k| !close(fitted[k], targets[k], scale)) {
        return Ok(None);
    }
    let coefficients: Vec<f64> = solution.iter().take(unknowns - 1).copied().collect();
    Ok(Some(FamilyParameters::from_coefficients(
        form,
        &coefficients,
        side,
    )))
}

/// Checks that a matrix or simplex block has its family's form at random configurations of the
/// whole latent vector, and a proper one at `center`.
fn verify_family(
    probe: &mut Probe,
    center: &[f64],
    range: &Range<usize>,
    block: &ConstrainedBlock,
    form: &Conditional,
    rng: &mut Rng,
) -> Result<bool, RuntimeError> {
    match fit_family(probe, center, range, block, form, rng)? {
        Some(Some(_)) => {}
        _ => return Ok(false),
    }
    for _ in 0..VERIFICATIONS {
        let base = jitter(center, 0.5, rng);
        if fit_family(probe, &base, range, block, form, rng)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Classifies a block: the conditional its sites' priors ask for, if the model's density has it.
fn classify(
    probe: &mut Probe,
    model: &Model,
    sites: &[&SiteLayout],
    range: &Range<usize>,
    center: &[f64],
    rng: &mut Rng,
) -> Result<Result<Conditional, String>, RuntimeError> {
    let forms: Vec<Option<Conditional>> = sites
        .iter()
        .map(|entry| {
            let family = model
                .sites
                .iter()
                .find(|s| s.name == entry.name)
                .and_then(|s| s.family);
            expected_form(entry, family)
        })
        .collect();
    let form = match forms.as_slice() {
        [Some(form)] => form.clone(),
        many if many.iter().all(|f| *f == Some(Conditional::Gaussian)) => Conditional::Gaussian,
        _ => {
            let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
            return Ok(Err(format!(
                "{} has a prior without a conjugate family here (conjugate priors: Normal, Gamma or InverseGamma on a positive scalar, Beta on a probability, Dirichlet on a simplex, Wishart on a precision matrix)",
                names.join(", ")
            )));
        }
    };
    let verified = match form {
        Conditional::Gaussian => verify_gaussian(probe, center, range, rng)?,
        Conditional::Wishart | Conditional::Dirichlet => {
            let block = ConstrainedBlock::new(sites[0])?;
            verify_family(probe, center, range, &block, &form, rng)?
        }
        _ => verify_scalar(probe, center, range.start, &form, rng)?,
    };
    if verified {
        return Ok(Ok(form));
    }
    let culprit = match form {
        Conditional::Wishart | Conditional::Dirichlet => None,
        _ => breaking_site(probe, center, range, &form, rng),
    };
    let family = match form {
        Conditional::Gaussian => "normal",
        Conditional::Gamma => "gamma",
        Conditional::InverseGamma => "inverse gamma",
        Conditional::Wishart => "Wishart",
        Conditional::Dirichlet => "Dirichlet",
        _ => "beta",
    };
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    Ok(Err(match culprit {
        Some(site) => format!(
            "site `{site}` breaks conjugacy: its log density is not of the {family} form in {}",
            names.join(", ")
        ),
        None => format!("the conditional of {} is not {family}", names.join(", ")),
    }))
}

/// The layout entries of the latent sites, in order.
fn latent_entries(model: &Model) -> Vec<&SiteLayout> {
    model.layout.latents().collect()
}

/// Plans a Gibbs sampler: the blocks and how each is drawn. Blocks whose conditional is of a
/// conjugate form are drawn exactly; the others by Metropolis, with the first Gaussian block
/// integrated out.
pub fn gibbs_plan(model: &Model, blocks: &GibbsBlocks) -> Result<GibbsPlan, RuntimeError> {
    let entries = latent_entries(model);
    if entries.is_empty() {
        return Err(RuntimeError::model(
            "E0580",
            "the model has no latent sites to sample",
            Span::default(),
        ));
    }
    let groups: Vec<Vec<String>> = match &blocks.groups {
        None => entries.iter().map(|e| vec![e.name.clone()]).collect(),
        Some(groups) => {
            let mut groups = groups.clone();
            for entry in &entries {
                if !groups.iter().flatten().any(|name| *name == entry.name) {
                    groups.push(vec![entry.name.clone()]);
                }
            }
            groups
        }
    };
    let random_walk = |group: usize| blocks.random_walk.get(group).copied().unwrap_or(false);
    let mut probe = Probe::new(model);
    let mut rng = stream_rng(17, 0);
    let center = model.prior_median_position(0)[..model.layout.latent_dim()].to_vec();
    let mut plan = Vec::new();
    for (group_index, group) in groups.iter().enumerate() {
        let mut members: Vec<&SiteLayout> = Vec::new();
        for name in group {
            match entries.iter().find(|e| e.name == *name) {
                Some(entry) => members.push(entry),
                None => {
                    let known: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
                    return Err(RuntimeError::model(
                        "E0581",
                        format!("`{name}` in the Gibbs blocks is not a latent site"),
                        Span::default(),
                    )
                    .with_hint(format!("the latent sites are: {}", known.join(", "))));
                }
            }
        }
        members.sort_by_key(|e| e.offset);
        let start = members[0].offset;
        let end = members
            .iter()
            .map(|e| e.offset + e.len())
            .max()
            .unwrap_or(start);
        let covered: usize = members.iter().map(|e| e.len()).sum();
        if covered != end - start {
            return Err(RuntimeError::model(
                "E0582",
                format!(
                    "the Gibbs block `{}` joins sites that are not next to each other in the model",
                    group.join(", ")
                ),
                Span::default(),
            )
            .with_hint(
                "a block joins sites written one after the other; reorder the model or the blocks",
            ));
        }
        let range = start..end;
        let forced = random_walk(group_index);
        let conditional = if forced {
            Conditional::Metropolis { marginalise: None }
        } else {
            match classify(&mut probe, model, &members, &range, &center, &mut rng)? {
                Ok(form) => form,
                Err(_) => Conditional::Metropolis { marginalise: None },
            }
        };
        plan.push(PlanBlock {
            sites: group.clone(),
            range,
            conditional,
            random_walk: forced,
        });
    }
    let gaussian: Vec<usize> = plan
        .iter()
        .enumerate()
        .filter(|(_, b)| b.conditional == Conditional::Gaussian)
        .map(|(index, _)| index)
        .collect();
    for index in 0..plan.len() {
        if !matches!(plan[index].conditional, Conditional::Metropolis { .. }) {
            continue;
        }
        let chosen = marginalised_block(&mut probe, &plan, &gaussian, index, &center, &mut rng)?;
        if let Conditional::Metropolis { marginalise } = &mut plan[index].conditional {
            *marginalise = chosen;
        }
    }
    Ok(GibbsPlan { blocks: plan })
}

/// The Gaussian block that a Metropolis block integrates out: the first whose precision changes
/// when the Metropolis block moves (as the output weights' precision τ ZᵀZ + C changes with the
/// hidden weights γ), else the first Gaussian block. Integrating out any Gaussian block is valid;
/// integrating out the one the block is entangled with is what makes the collapsed step mix.
fn marginalised_block(
    probe: &mut Probe,
    plan: &[PlanBlock],
    gaussian: &[usize],
    metropolis: usize,
    center: &[f64],
    rng: &mut Rng,
) -> Result<Option<usize>, RuntimeError> {
    let moved = {
        let mut point = center.to_vec();
        for index in plan[metropolis].range.clone() {
            point[index] += rng.random_range(-1.0..1.0);
        }
        point
    };
    for &candidate in gaussian {
        let range = &plan[candidate].range;
        let (_, _, before) = probe.block_hessian(center, range, 1.0)?;
        let (_, _, after) = probe.block_hessian(&moved, range, 1.0)?;
        let scale = before.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        if before
            .iter()
            .zip(after.iter())
            .any(|(a, b)| !close(*a, *b, scale))
        {
            return Ok(Some(candidate));
        }
    }
    Ok(gaussian.first().copied())
}

/// A Gaussian conditional at the block's current value u: its mean, its precision P, the log
/// density at u, and the step m − u.
struct GaussianConditional {
    mean: DVector<f64>,
    precision: DMatrix<f64>,
    value: f64,
    step: DVector<f64>,
}

/// A model as Metropolis-within-Gibbs sees it.
pub struct GibbsEvaluator<'m> {
    probe: Probe<'m>,
    plan: GibbsPlan,
    /// The bijector of each Dirichlet or Wishart block (by block index).
    constrained: Vec<Option<ConstrainedBlock>>,
    /// The points at which Dirichlet and Wishart conditionals are fitted (fixed per evaluator, so
    /// a chain's draws depend only on its own random stream).
    design: Rng,
}

impl<'m> GibbsEvaluator<'m> {
    /// An evaluator of `model` following `plan`; `start` is unused but documents where chains
    /// begin (the sampler passes positions itself).
    pub fn new(model: &'m Model, plan: &GibbsPlan, _start: &[f64]) -> GibbsEvaluator<'m> {
        let constrained = plan
            .blocks
            .iter()
            .map(|block| match block.conditional {
                Conditional::Wishart | Conditional::Dirichlet => model
                    .layout
                    .latents()
                    .find(|entry| entry.offset == block.range.start)
                    .and_then(|entry| ConstrainedBlock::new(entry).ok()),
                _ => None,
            })
            .collect();
        GibbsEvaluator {
            probe: Probe::new(model),
            plan: plan.clone(),
            constrained,
            design: stream_rng(29, 0),
        }
    }

    /// The Gaussian conditional of a block at `position`: mean, precision, and the log density
    /// at the block's current value.
    fn gaussian(
        &mut self,
        block: usize,
        position: &[f64],
    ) -> Result<GaussianConditional, LogDensityError> {
        let range = self.plan.blocks[block].range.clone();
        let (value, g0, hessian) = self
            .probe
            .block_hessian(position, &range, 1.0)
            .map_err(|e| e.to_log_density_error())?;
        let precision = -hessian;
        let current = DVector::from_iterator(range.len(), position[range.clone()].iter().copied());
        let step = precision
            .clone()
            .cholesky()
            .ok_or_else(|| LogDensityError::recoverable(format!(
                "the conditional of {} is not a proper normal here (its precision is not positive definite)",
                self.plan.blocks[block].sites.join(", ")
            )))?
            .solve(&g0);
        Ok(GaussianConditional {
            mean: &current + &step,
            precision,
            value,
            step,
        })
    }
}

impl GibbsModel for GibbsEvaluator<'_> {
    fn dim(&self) -> usize {
        self.probe.latent_dim()
    }

    fn blocks(&self) -> Vec<GibbsBlock> {
        self.plan
            .blocks
            .iter()
            .enumerate()
            .map(|(index, block)| {
                let name = block.sites.join(",");
                match block.conditional {
                    Conditional::Metropolis {
                        marginalise: Some(other),
                    } if other != index => GibbsBlock::collapsed(name, block.range.clone(), other),
                    Conditional::Metropolis { .. } => {
                        GibbsBlock::metropolis(name, block.range.clone())
                    }
                    _ => GibbsBlock::conjugate(name, block.range.clone()),
                }
            })
            .collect()
    }

    fn log_density(&mut self, position: &[f64]) -> Result<f64, LogDensityError> {
        self.probe
            .evaluate(position)
            .map(|(value, _)| value)
            .map_err(|e| e.to_log_density_error())
    }

    fn draw_conditional(
        &mut self,
        block: usize,
        position: &mut [f64],
        rng: &mut Rng,
    ) -> Result<(), LogDensityError> {
        let range = self.plan.blocks[block].range.clone();
        match self.plan.blocks[block].conditional.clone() {
            Conditional::Gaussian => {
                let conditional = self.gaussian(block, position)?;
                let normal =
                    MultivariateNormal::from_precision(conditional.mean, conditional.precision)
                        .map_err(|e| LogDensityError::recoverable(e.message))?;
                normal.sample_into(rng, &mut position[range]);
                Ok(())
            }
            form @ (Conditional::Gamma | Conditional::InverseGamma | Conditional::Beta) => {
                let index = range.start;
                let fitted = fit_scalar(&mut self.probe, position, index, &form)
                    .map_err(|e| e.to_log_density_error())?;
                let Some(((a, b), true)) = fitted else {
                    return Err(LogDensityError::recoverable(
                        "a conjugate conditional has non-positive parameters here",
                    ));
                };
                position[index] = draw_scalar(&form, a, b, rng)?;
                Ok(())
            }
            form @ (Conditional::Wishart | Conditional::Dirichlet) => {
                let Some(constrained) = &self.constrained[block] else {
                    return Err(LogDensityError::fatal(
                        "a Wishart or Dirichlet block has no bijector",
                    ));
                };
                let fitted = fit_family(
                    &mut self.probe,
                    position,
                    &range,
                    constrained,
                    &form,
                    &mut self.design,
                )
                .map_err(|e| e.to_log_density_error())?;
                let Some(Some(parameters)) = fitted else {
                    return Err(LogDensityError::recoverable(format!(
                        "the conditional of {} is not a proper {} here",
                        self.plan.blocks[block].sites.join(", "),
                        if form == Conditional::Wishart {
                            "Wishart"
                        } else {
                            "Dirichlet"
                        }
                    )));
                };
                let draw = parameters
                    .sample(rng)
                    .and_then(|value| constrained.inverse(value))
                    .ok_or_else(|| {
                        LogDensityError::recoverable("a conjugate draw could not be mapped back")
                    })?;
                position[range].copy_from_slice(&draw);
                Ok(())
            }
            Conditional::Metropolis { .. } => Err(LogDensityError::fatal(
                "a Metropolis block has no exact conditional",
            )),
        }
    }

    fn log_marginal(
        &mut self,
        marginalised_block: usize,
        position: &[f64],
    ) -> Option<Result<f64, LogDensityError>> {
        if self.plan.blocks.get(marginalised_block)?.conditional != Conditional::Gaussian {
            return None;
        }
        Some(self.gaussian(marginalised_block, position).and_then(
            |GaussianConditional {
                 precision,
                 value,
                 step,
                 ..
             }| {
                // For a quadratic f: f(m) = f(u) + ½ (m − u)ᵀ P (m − u), and the integral over the
                // block is f(m) + (d/2) log 2π − ½ log det P.
                let d = step.len() as f64;
                let peak = value + 0.5 * step.dot(&(&precision * &step));
                let cholesky = precision
                    .cholesky()
                    .ok_or_else(|| LogDensityError::recoverable("improper conditional"))?;
                let log_det: f64 = cholesky.l().diagonal().iter().map(|v| 2.0 * v.ln()).sum();
                Ok(peak + 0.5 * d * (2.0 * std::f64::consts::PI).ln() - 0.5 * log_det)
            },
        ))
    }
}

/// Draws the unconstrained value of a scalar conjugate block.
fn draw_scalar(form: &Conditional, a: f64, b: f64, rng: &mut Rng) -> Result<f64, LogDensityError> {
    let invalid = |e: String| LogDensityError::recoverable(e);
    Ok(match form {
        Conditional::Gamma => {
            let gamma = rand_distr::Gamma::new(a, 1.0 / b).map_err(|e| invalid(e.to_string()))?;
            gamma.sample(rng).ln()
        }
        Conditional::InverseGamma => {
            let gamma = rand_distr::Gamma::new(a, 1.0 / b).map_err(|e| invalid(e.to_string()))?;
            -gamma.sample(rng).ln()
        }
        _ => {
            let beta = rand_distr::Beta::new(a, b).map_err(|e| invalid(e.to_string()))?;
            let p: f64 = beta.sample(rng).clamp(1e-300, 1.0 - 1e-16);
            (p / (1.0 - p)).ln()
        }
    })
}

/// The joint normal posterior of the real sites.
#[derive(Clone, Debug)]
struct JointNormal {
    /// Their coordinates in the latent vector.
    indices: Vec<usize>,
    mean: DVector<f64>,
    covariance: DMatrix<f64>,
    /// The coordinates' names, `b` or `w[0]`.
    names: Vec<String>,
}

/// A closed-form posterior: a joint normal over the real sites and independent conjugate
/// families for the others, all in unconstrained coordinates.
#[derive(Clone, Debug)]
pub struct ExactPosterior {
    latent_dim: usize,
    /// The real sites' joint normal.
    gaussian: Option<JointNormal>,
    /// Scalar sites with their family's parameters.
    scalars: Vec<(String, usize, Conditional, f64, f64)>,
}

impl ExactPosterior {
    /// Independent draws of the latent vector (unconstrained).
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Vec<Vec<f64>> {
        let normal = self.gaussian.as_ref().and_then(|joint| {
            MultivariateNormal::from_covariance(joint.mean.clone(), joint.covariance.clone()).ok()
        });
        (0..n)
            .map(|_| {
                let mut position = vec![0.0; self.latent_dim];
                if let (Some(joint), Some(normal)) = (&self.gaussian, &normal) {
                    let draw = normal.sample(rng);
                    for (k, &index) in joint.indices.iter().enumerate() {
                        position[index] = draw[k];
                    }
                }
                for (_, index, form, a, b) in &self.scalars {
                    position[*index] = draw_scalar(form, *a, *b, rng).unwrap_or(f64::NAN);
                }
                position
            })
            .collect()
    }

    /// The posterior in closed form, for `summary.json` and `posterior.json`.
    pub fn to_json(&self) -> Value {
        let mut parts = Vec::new();
        if let Some(JointNormal {
            mean,
            covariance,
            names,
            ..
        }) = &self.gaussian
        {
            let rows: Vec<Vec<f64>> = (0..covariance.nrows())
                .map(|i| covariance.row(i).iter().copied().collect())
                .collect();
            parts.push(json!({
                "family": "MultivariateNormal",
                "coordinates": names,
                "mean": mean.iter().copied().collect::<Vec<_>>(),
                "covariance": rows,
            }));
        }
        for (site, _, form, a, b) in &self.scalars {
            let (family, first, second) = match form {
                Conditional::Gamma => ("Gamma", "concentration", "rate"),
                Conditional::InverseGamma => ("InverseGamma", "concentration", "rate"),
                _ => ("Beta", "concentration1", "concentration0"),
            };
            parts.push(json!({"family": family, "site": site, first: a, second: b}));
        }
        json!(parts)
    }

    /// The joint normal's mean and covariance, when there are real sites.
    pub fn normal(&self) -> Option<(&DVector<f64>, &DMatrix<f64>)> {
        self.gaussian
            .as_ref()
            .map(|joint| (&joint.mean, &joint.covariance))
    }
}

/// The closed-form posterior of a conjugate model, or a diagnostic naming the site that breaks
/// conjugacy.
pub fn exact_posterior(model: &Model) -> Result<ExactPosterior, RuntimeError> {
    let entries = latent_entries(model);
    let not_conjugate = |message: String, span: Span| {
        RuntimeError::model("E0583", message, span)
            .with_hint("`exact` needs a conjugate model; use `--method nuts` or `svi` for this one")
    };
    if entries.is_empty() {
        return Err(RuntimeError::model(
            "E0580",
            "the model has no latent sites",
            Span::default(),
        ));
    }
    if model.layout.param_dim() > 0 {
        return Err(not_conjugate(
            "`exact` does not fit `param` sites".into(),
            Span::default(),
        ));
    }
    let latent_dim = model.layout.latent_dim();
    let mut probe = Probe::new(model);
    let mut rng = stream_rng(23, 0);
    let center = model.prior_median_position(0)[..latent_dim].to_vec();
    let real: Vec<&SiteLayout> = entries
        .iter()
        .copied()
        .filter(|e| matches!(e.constraint, Constraint::Real | Constraint::RealVector))
        .collect();
    let others: Vec<&SiteLayout> = entries
        .iter()
        .copied()
        .filter(|e| !real.iter().any(|r| r.name == e.name))
        .collect();
    let mut gaussian = None;
    if !real.is_empty() {
        let indices: Vec<usize> = real
            .iter()
            .flat_map(|e| e.offset..e.offset + e.len())
            .collect();
        // The real sites must be jointly Gaussian, with a precision and mean that do not depend on
        // the other sites.
        let (mean, precision) = gaussian_over(&mut probe, &center, &indices)?;
        if !verify_joint_gaussian(&mut probe, &center, &indices, &mean, &precision, &mut rng)? {
            let span = real[0].span;
            let contiguous = indices.windows(2).all(|w| w[1] == w[0] + 1);
            let culprit = if contiguous {
                breaking_site(
                    &mut probe,
                    &center,
                    &(indices[0]..indices[indices.len() - 1] + 1),
                    &Conditional::Gaussian,
                    &mut rng,
                )
            } else {
                None
            };
            let names: Vec<&str> = real.iter().map(|e| e.name.as_str()).collect();
            return Err(not_conjugate(
                match culprit {
                    Some(site) => format!(
                        "site `{site}` breaks conjugacy: the posterior of {} is not normal",
                        names.join(", ")
                    ),
                    None => format!(
                        "the posterior of {} is not normal, or depends on other latent sites",
                        names.join(", ")
                    ),
                },
                span,
            ));
        }
        let covariance = precision
            .clone()
            .cholesky()
            .map(|c| c.inverse())
            .ok_or_else(|| {
                not_conjugate(
                    "the posterior precision is not positive definite (an improper posterior?)"
                        .into(),
                    real[0].span,
                )
            })?;
        let names = model.layout.coordinate_names();
        let coordinate_names = indices.iter().map(|&i| names[i].clone()).collect();
        gaussian = Some(JointNormal {
            indices,
            mean,
            covariance,
            names: coordinate_names,
        });
    }
    let mut scalars = Vec::new();
    for entry in others {
        let family = model
            .sites
            .iter()
            .find(|s| s.name == entry.name)
            .and_then(|s| s.family);
        let Some(form) = expected_form(entry, family)
            .filter(|form| !matches!(form, Conditional::Wishart | Conditional::Dirichlet))
        else {
            return Err(not_conjugate(
                format!(
                    "site `{}` has a {} prior, which has no conjugate update here",
                    entry.name,
                    family.unwrap_or("non-standard")
                ),
                entry.span,
            ));
        };
        let index = entry.offset;
        let Some(((a, b), valid)) = fit_scalar(&mut probe, &center, index, &form)? else {
            return Err(not_conjugate(
                format!("cannot fit the posterior of `{}`", entry.name),
                entry.span,
            ));
        };
        // The parameters must not depend on any other coordinate (independent conjugate pairs).
        let mut independent = valid;
        for _ in 0..VERIFICATIONS {
            let other = jitter(&center, 1.0, &mut rng);
            match fit_scalar(&mut probe, &other, index, &form)? {
                Some(((a2, b2), _)) if close(a, a2, a) && close(b, b2, b) => {}
                _ => independent = false,
            }
        }
        if !independent || !verify_scalar(&mut probe, &center, index, &form, &mut rng)? {
            let culprit = breaking_site(&mut probe, &center, &(index..index + 1), &form, &mut rng);
            return Err(not_conjugate(
                match culprit {
                    Some(site) => format!("site `{site}` breaks conjugacy of `{}`", entry.name),
                    None => format!(
                        "the posterior of `{}` depends on other latent sites",
                        entry.name
                    ),
                },
                entry.span,
            ));
        }
        scalars.push((entry.name.clone(), index, form, a, b));
    }
    Ok(ExactPosterior {
        latent_dim,
        gaussian,
        scalars,
    })
}

/// The Gaussian over `indices` at `center`: mean and precision.
fn gaussian_over(
    probe: &mut Probe,
    center: &[f64],
    indices: &[usize],
) -> Result<(DVector<f64>, DMatrix<f64>), RuntimeError> {
    let d = indices.len();
    let (_, gradient) = probe.evaluate(center)?;
    let mut hessian = DMatrix::zeros(d, d);
    let mut point = center.to_vec();
    for (j, &column) in indices.iter().enumerate() {
        point[column] = center[column] + 1.0;
        let (_, plus) = probe.evaluate(&point)?;
        point[column] = center[column] - 1.0;
        let (_, minus) = probe.evaluate(&point)?;
        point[column] = center[column];
        for (i, &row) in indices.iter().enumerate() {
            hessian[(i, j)] = (plus[row] - minus[row]) / 2.0;
        }
    }
    let precision = -(&hessian + hessian.transpose()) * 0.5;
    let g0 = DVector::from_iterator(d, indices.iter().map(|&i| gradient[i]));
    let current = DVector::from_iterator(d, indices.iter().map(|&i| center[i]));
    let step = precision
        .clone()
        .lu()
        .solve(&g0)
        .unwrap_or_else(|| DVector::zeros(d));
    Ok((current + step, precision))
}

/// Checks that the log density is the same quadratic in `indices` everywhere: the gradient at
/// random points (all latent coordinates moved) is −P (x − m).
fn verify_joint_gaussian(
    probe: &mut Probe,
    center: &[f64],
    indices: &[usize],
    mean: &DVector<f64>,
    precision: &DMatrix<f64>,
    rng: &mut Rng,
) -> Result<bool, RuntimeError> {
    for _ in 0..VERIFICATIONS {
        let point = jitter(center, 1.0, rng);
        let (_, gradient) = probe.evaluate(&point)?;
        let x = DVector::from_iterator(indices.len(), indices.iter().map(|&i| point[i]));
        let predicted = -(precision * (x - mean));
        for (k, &index) in indices.iter().enumerate() {
            if !close(gradient[index], predicted[k], gradient[index]) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_forms_recover_their_parameters() {
        for form in [
            Conditional::Gamma,
            Conditional::InverseGamma,
            Conditional::Beta,
        ] {
            let (a, b) = (3.5, 1.25);
            let u = [-0.3, 0.8];
            let derivative = [
                scalar_derivative(&form, (a, b), u[0]),
                scalar_derivative(&form, (a, b), u[1]),
            ];
            let (fa, fb) = scalar_parameters(&form, u, derivative).unwrap();
            assert!(
                (fa - a).abs() < 1e-12 && (fb - b).abs() < 1e-12,
                "{form:?}: {fa} {fb}"
            );
        }
    }

    #[test]
    fn blocks_parse_groups_and_reject_empty_ones() {
        let blocks = GibbsBlocks::parse(Some("beta, beta0; gamma ;sigma")).unwrap();
        assert_eq!(
            blocks.groups,
            Some(vec![
                vec!["beta".into(), "beta0".into()],
                vec!["gamma".into()],
                vec!["sigma".into()]
            ])
        );
        assert!(GibbsBlocks::parse(Some(" ; ")).is_err());
        assert_eq!(GibbsBlocks::parse(None).unwrap(), GibbsBlocks::default());
    }
}
