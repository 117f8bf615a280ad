//! A fitted guide as a posterior approximation over the latent coordinates (unconstrained): its
//! parameters as plain, serialisable data ([`GuideParams`], what `params.json` holds), and the
//! questions a user asks of it ([`FittedGuide`]: draws, mean, median, marginal quantiles,
//! standard deviations, covariance).
//!
//! Quantiles are marginal and in unconstrained space; a caller maps them through the sites'
//! bijectors, which are monotone, so quantiles carry over coordinate by coordinate.

use crate::rng::stream_rng;
use crate::vi::flow::{self, FlowCache, FlowShape};
use crate::vi::numeric::{cholesky_in_place, standard_normal_quantile};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The seed of the draws behind a flow guide's summary.
const FLOW_SUMMARY_SEED: u64 = 0x1AF;

/// The `p` quantile of sorted values, interpolated linearly between order statistics.
fn empirical_quantile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// The marginal quantiles reported by default: 5%, 50% and 95%.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.05, 0.5, 0.95];

/// A fitted guide's parameters in natural form (scales, not raw softplus inputs). Matrices are
/// lists of rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "guide", rename_all = "snake_case")]
pub enum GuideParams {
    /// A point mass at `loc`.
    Delta {
        /// The location.
        loc: Vec<f64>,
    },
    /// Independent normals.
    DiagonalNormal {
        /// The means.
        loc: Vec<f64>,
        /// The standard deviations (positive).
        scale: Vec<f64>,
    },
    /// A normal with covariance L Lᵀ.
    MultivariateNormal {
        /// The mean.
        loc: Vec<f64>,
        /// The lower-triangular factor L (d rows of d values, zero above the diagonal, positive
        /// diagonal).
        scale_tril: Vec<Vec<f64>>,
    },
    /// A normal with covariance W Wᵀ + diag(cov_diag).
    LowRankMultivariateNormal {
        /// The mean.
        loc: Vec<f64>,
        /// The factor W (d rows of rank values).
        cov_factor: Vec<Vec<f64>>,
        /// The diagonal part (positive).
        cov_diag: Vec<f64>,
    },
    /// A normal at the MAP location with the inverse negative Hessian as covariance.
    Laplace {
        /// The MAP location.
        loc: Vec<f64>,
        /// The covariance (symmetric positive definite).
        covariance: Vec<Vec<f64>>,
    },
    /// An inverse autoregressive flow on a diagonal normal: z = loc + scale ⊙ T(ε), ε ~ N(0, I),
    /// T the flow of [`crate::vi::flow`] (its mean is not `loc`).
    Iaf {
        /// The location of the final elementwise affine map.
        loc: Vec<f64>,
        /// Its scales (positive).
        scale: Vec<f64>,
        /// The hidden width of each layer's MADE.
        hidden: usize,
        /// Each layer's flat parameters, in the order the flow applies them.
        layers: Vec<Vec<f64>>,
    },
}

/// The number of draws behind a flow guide's mean, median, quantiles and covariance, which
/// have no closed form.
pub const FLOW_SUMMARY_DRAWS: usize = 4000;

/// A flow guide's moments and marginal quantiles, estimated from [`FLOW_SUMMARY_DRAWS`] draws
/// of a fixed random stream.
#[derive(Clone, Debug, PartialEq)]
struct FlowSummary {
    mean: Vec<f64>,
    covariance: Vec<Vec<f64>>,
    /// Each coordinate's draws, sorted.
    sorted: Vec<Vec<f64>>,
}

impl GuideParams {
    /// The location (the mean of normal guides).
    pub fn loc(&self) -> &[f64] {
        match self {
            GuideParams::Delta { loc }
            | GuideParams::DiagonalNormal { loc, .. }
            | GuideParams::MultivariateNormal { loc, .. }
            | GuideParams::LowRankMultivariateNormal { loc, .. }
            | GuideParams::Laplace { loc, .. }
            | GuideParams::Iaf { loc, .. } => loc,
        }
    }

    /// The guide's short name (`delta`, `diag`, `mvn`, `lowrank`, `laplace`).
    pub fn name(&self) -> &'static str {
        match self {
            GuideParams::Delta { .. } => "delta",
            GuideParams::DiagonalNormal { .. } => "diag",
            GuideParams::MultivariateNormal { .. } => "mvn",
            GuideParams::LowRankMultivariateNormal { .. } => "lowrank",
            GuideParams::Laplace { .. } => "laplace",
            GuideParams::Iaf { .. } => "iaf",
        }
    }
}

/// Why guide parameters do not describe a valid distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct GuideError {
    /// What is wrong.
    pub message: String,
}

impl GuideError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        GuideError {
            message: message.into(),
        }
    }
}

impl fmt::Display for GuideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GuideError {}

/// A validated guide, ready to answer questions.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedGuide {
    params: GuideParams,
    /// The lower Cholesky factor of the covariance, row-major, for the full-covariance guides.
    scale_tril: Vec<f64>,
    /// The marginal standard deviations.
    standard_deviations: Vec<f64>,
    /// A flow guide's estimated moments and quantiles.
    flow_summary: Option<Box<FlowSummary>>,
}

fn check_finite(name: &str, values: &[f64]) -> Result<(), GuideError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(GuideError::new(format!(
            "the guide's {name}[{i}] is not finite"
        ))),
        None => Ok(()),
    }
}

fn check_positive(name: &str, values: &[f64]) -> Result<(), GuideError> {
    match values.iter().position(|&v| !(v > 0.0 && v.is_finite())) {
        Some(i) => Err(GuideError::new(format!(
            "the guide's {name}[{i}] must be positive and finite, got {}",
            values[i]
        ))),
        None => Ok(()),
    }
}

fn check_square(name: &str, rows: &[Vec<f64>], d: usize) -> Result<Vec<f64>, GuideError> {
    if rows.len() != d || rows.iter().any(|row| row.len() != d) {
        return Err(GuideError::new(format!(
            "the guide's {name} must be {d} rows of {d} values to match its loc"
        )));
    }
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    check_finite(name, &flat)?;
    Ok(flat)
}

impl FittedGuide {
    /// Checks `params` (matching lengths, finite values, positive scales, a lower-triangular
    /// factor with positive diagonal, a symmetric positive definite covariance) and prepares the
    /// guide.
    pub fn new(params: GuideParams) -> Result<Self, GuideError> {
        let loc = params.loc();
        let d = loc.len();
        check_finite("loc", loc)?;
        let (scale_tril, standard_deviations) = match &params {
            GuideParams::Delta { .. } => (Vec::new(), vec![0.0; d]),
            GuideParams::DiagonalNormal { scale, .. } => {
                if scale.len() != d {
                    return Err(GuideError::new(format!(
                        "the guide's scale has {} values but its loc has {d}",
                        scale.len()
                    )));
                }
                check_positive("scale", scale)?;
                (Vec::new(), scale.clone())
            }
            GuideParams::MultivariateNormal { scale_tril, .. } => {
                let flat = check_square("scale_tril", scale_tril, d)?;
                for i in 0..d {
                    if flat[i * d + i] <= 0.0 {
                        return Err(GuideError::new(format!(
                            "the guide's scale_tril[{i}][{i}] must be positive, got {}",
                            flat[i * d + i]
                        )));
                    }
                    if let Some(j) = (i + 1..d).find(|&j| flat[i * d + j] != 0.0) {
                        return Err(GuideError::new(format!(
                            "the guide's scale_tril must be lower triangular, but entry \
                             [{i}][{j}] is {}",
                            flat[i * d + j]
                        )));
                    }
                }
                let sd = (0..d)
                    .map(|i| {
                        flat[i * d..=i * d + i]
                            .iter()
                            .map(|l| l * l)
                            .sum::<f64>()
                            .sqrt()
                    })
                    .collect();
                (flat, sd)
            }
            GuideParams::LowRankMultivariateNormal {
                cov_factor,
                cov_diag,
                ..
            } => {
                let rank = cov_factor.first().map_or(0, Vec::len);
                if cov_factor.len() != d || cov_factor.iter().any(|row| row.len() != rank) {
                    return Err(GuideError::new(format!(
                        "the guide's cov_factor must be {d} rows of equal length to match its loc"
                    )));
                }
                if cov_diag.len() != d {
                    return Err(GuideError::new(format!(
                        "the guide's cov_diag has {} values but its loc has {d}",
                        cov_diag.len()
                    )));
                }
                let flat: Vec<f64> = cov_factor.iter().flatten().copied().collect();
                check_finite("cov_factor", &flat)?;
                check_positive("cov_diag", cov_diag)?;
                let sd = cov_factor
                    .iter()
                    .zip(cov_diag)
                    .map(|(row, v)| (row.iter().map(|w| w * w).sum::<f64>() + v).sqrt())
                    .collect();
                (Vec::new(), sd)
            }
            GuideParams::Laplace { covariance, .. } => {
                let flat = check_square("covariance", covariance, d)?;
                for i in 0..d {
                    for j in 0..i {
                        let (a, b) = (flat[i * d + j], flat[j * d + i]);
                        let size = flat[i * d + i].abs().max(flat[j * d + j].abs());
                        if (a - b).abs() > 1e-10 * size {
                            return Err(GuideError::new(format!(
                                "the guide's covariance is not symmetric at [{i}][{j}]"
                            )));
                        }
                    }
                }
                let mut factor = flat;
                if let Err(pivot) = cholesky_in_place(&mut factor, d) {
                    return Err(GuideError::new(format!(
                        "the guide's covariance is not positive definite (pivot {pivot})"
                    )));
                }
                let sd = (0..d)
                    .map(|i| {
                        factor[i * d..=i * d + i]
                            .iter()
                            .map(|l| l * l)
                            .sum::<f64>()
                            .sqrt()
                    })
                    .collect();
                (factor, sd)
            }
            GuideParams::Iaf {
                scale,
                hidden,
                layers,
                ..
            } => {
                if scale.len() != d {
                    return Err(GuideError::new(format!(
                        "the guide's scale has {} values but its loc has {d}",
                        scale.len()
                    )));
                }
                check_positive("scale", scale)?;
                let shape = FlowShape {
                    dim: d,
                    layers: layers.len(),
                    hidden: *hidden,
                };
                if layers.is_empty() || *hidden == 0 {
                    return Err(GuideError::new(
                        "the IAF guide needs at least one layer and one hidden unit",
                    ));
                }
                if let Some(k) = layers.iter().position(|l| l.len() != shape.layer_len()) {
                    return Err(GuideError::new(format!(
                        "the IAF guide's layer {k} has {} parameters, but {} are needed for {d} \
                         coordinates and {hidden} hidden units",
                        layers[k].len(),
                        shape.layer_len()
                    )));
                }
                for layer in layers {
                    check_finite("layers", layer)?;
                }
                (Vec::new(), Vec::new())
            }
        };
        let mut guide = FittedGuide {
            params,
            scale_tril,
            standard_deviations,
            flow_summary: None,
        };
        if matches!(guide.params, GuideParams::Iaf { .. }) {
            guide.summarise_flow()?;
        }
        Ok(guide)
    }

    /// Estimates a flow guide's moments and quantiles from draws of a fixed stream.
    fn summarise_flow(&mut self) -> Result<(), GuideError> {
        let d = self.latent_dim();
        let n = FLOW_SUMMARY_DRAWS;
        let draws = self.sample(&mut stream_rng(FLOW_SUMMARY_SEED, 0), n);
        if draws.iter().flatten().any(|v| !v.is_finite()) {
            return Err(GuideError::new(
                "the IAF guide's draws are not finite (its flow overflows)",
            ));
        }
        let mean: Vec<f64> = (0..d)
            .map(|i| draws.iter().map(|z| z[i]).sum::<f64>() / n as f64)
            .collect();
        let mut covariance = vec![vec![0.0; d]; d];
        for z in &draws {
            for i in 0..d {
                for j in 0..=i {
                    covariance[i][j] += (z[i] - mean[i]) * (z[j] - mean[j]) / (n - 1) as f64;
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                covariance[j][i] = covariance[i][j];
            }
        }
        let sorted = (0..d)
            .map(|i| {
                let mut column: Vec<f64> = draws.iter().map(|z| z[i]).collect();
                column.sort_by(f64::total_cmp);
                column
            })
            .collect();
        self.standard_deviations = (0..d).map(|i| covariance[i][i].sqrt()).collect();
        self.flow_summary = Some(Box::new(FlowSummary {
            mean,
            covariance,
            sorted,
        }));
        Ok(())
    }

    /// The parameters.
    pub fn params(&self) -> &GuideParams {
        &self.params
    }

    /// The parameters, by value.
    pub fn into_params(self) -> GuideParams {
        self.params
    }

    /// The number of latent coordinates.
    pub fn latent_dim(&self) -> usize {
        self.params.loc().len()
    }

    /// The mean (the location; a point mass's mean is its location; a flow's is estimated
    /// from [`FLOW_SUMMARY_DRAWS`] draws).
    pub fn mean(&self) -> Vec<f64> {
        match &self.flow_summary {
            Some(summary) => summary.mean.clone(),
            None => self.params.loc().to_vec(),
        }
    }

    /// The median, coordinate by coordinate (the location, for the symmetric normal guides; a
    /// flow's is estimated).
    pub fn median(&self) -> Vec<f64> {
        match &self.flow_summary {
            Some(summary) => summary
                .sorted
                .iter()
                .map(|column| empirical_quantile(column, 0.5))
                .collect(),
            None => self.params.loc().to_vec(),
        }
    }

    /// The marginal standard deviations (zero for a point mass).
    pub fn standard_deviations(&self) -> &[f64] {
        &self.standard_deviations
    }

    /// The marginal quantiles, one row per probability: row k holds loc_i + sd_i Φ⁻¹(p_k).
    /// Every probability must lie strictly between 0 and 1.
    pub fn quantiles(&self, probabilities: &[f64]) -> Result<Vec<Vec<f64>>, GuideError> {
        if let Some(p) = probabilities.iter().find(|&&p| !(p > 0.0 && p < 1.0)) {
            return Err(GuideError::new(format!(
                "a quantile's probability must lie strictly between 0 and 1, got {p}"
            )));
        }
        if let Some(summary) = &self.flow_summary {
            return Ok(probabilities
                .iter()
                .map(|&p| {
                    summary
                        .sorted
                        .iter()
                        .map(|column| empirical_quantile(column, p))
                        .collect()
                })
                .collect());
        }
        Ok(probabilities
            .iter()
            .map(|&p| {
                let z = standard_normal_quantile(p);
                self.params
                    .loc()
                    .iter()
                    .zip(&self.standard_deviations)
                    .map(|(loc, sd)| loc + sd * z)
                    .collect()
            })
            .collect())
    }

    /// The covariance matrix (zero for a point mass), as rows.
    pub fn covariance(&self) -> Vec<Vec<f64>> {
        let d = self.latent_dim();
        let mut covariance = vec![vec![0.0; d]; d];
        match &self.params {
            GuideParams::Delta { .. } => {}
            GuideParams::Iaf { .. } => {
                if let Some(summary) = &self.flow_summary {
                    covariance.clone_from(&summary.covariance);
                }
            }
            GuideParams::DiagonalNormal { scale, .. } => {
                for (i, s) in scale.iter().enumerate() {
                    covariance[i][i] = s * s;
                }
            }
            GuideParams::MultivariateNormal { .. } => {
                let l = &self.scale_tril;
                for i in 0..d {
                    for j in 0..=i {
                        let value: f64 = (0..=j).map(|k| l[i * d + k] * l[j * d + k]).sum();
                        covariance[i][j] = value;
                        covariance[j][i] = value;
                    }
                }
            }
            GuideParams::LowRankMultivariateNormal {
                cov_factor,
                cov_diag,
                ..
            } => {
                for i in 0..d {
                    for j in 0..=i {
                        let value: f64 = cov_factor[i]
                            .iter()
                            .zip(&cov_factor[j])
                            .map(|(a, b)| a * b)
                            .sum();
                        covariance[i][j] = value;
                        covariance[j][i] = value;
                    }
                    covariance[i][i] += cov_diag[i];
                }
            }
            GuideParams::Laplace {
                covariance: given, ..
            } => {
                for i in 0..d {
                    for j in 0..=i {
                        // Symmetrised, so that the reported matrix is exactly symmetric.
                        let value = 0.5 * (given[i][j] + given[j][i]);
                        covariance[i][j] = value;
                        covariance[j][i] = value;
                    }
                }
            }
        }
        covariance
    }

    /// `n_draws` independent draws of the latent vector.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R, n_draws: usize) -> Vec<Vec<f64>> {
        let d = self.latent_dim();
        let loc = self.params.loc();
        let mut noise = Vec::with_capacity(d);
        (0..n_draws)
            .map(|_| {
                let mut draw = loc.to_vec();
                match &self.params {
                    GuideParams::Delta { .. } => {}
                    GuideParams::Iaf {
                        scale,
                        hidden,
                        layers,
                        ..
                    } => {
                        let shape = FlowShape {
                            dim: d,
                            layers: layers.len(),
                            hidden: *hidden,
                        };
                        noise.clear();
                        noise.extend((0..d).map(|_| -> f64 { StandardNormal.sample(rng) }));
                        let flat: Vec<f64> = layers.iter().flatten().copied().collect();
                        let mut y = vec![0.0; d];
                        flow::forward(&shape, &flat, &noise, &mut y, &mut FlowCache::default());
                        for i in 0..d {
                            draw[i] += scale[i] * y[i];
                        }
                    }
                    GuideParams::DiagonalNormal { scale, .. } => {
                        for (z, s) in draw.iter_mut().zip(scale) {
                            let e: f64 = StandardNormal.sample(rng);
                            *z += s * e;
                        }
                    }
                    GuideParams::MultivariateNormal { .. } | GuideParams::Laplace { .. } => {
                        noise.clear();
                        noise.extend((0..d).map(|_| -> f64 { StandardNormal.sample(rng) }));
                        let l = &self.scale_tril;
                        for (i, z) in draw.iter_mut().enumerate() {
                            *z += (0..=i).map(|k| l[i * d + k] * noise[k]).sum::<f64>();
                        }
                    }
                    GuideParams::LowRankMultivariateNormal {
                        cov_factor,
                        cov_diag,
                        ..
                    } => {
                        let rank = cov_factor.first().map_or(0, Vec::len);
                        noise.clear();
                        noise.extend((0..rank).map(|_| -> f64 { StandardNormal.sample(rng) }));
                        for (i, z) in draw.iter_mut().enumerate() {
                            let e: f64 = StandardNormal.sample(rng);
                            let low_rank: f64 =
                                cov_factor[i].iter().zip(&noise).map(|(w, e)| w * e).sum();
                            *z += low_rank + cov_diag[i].sqrt() * e;
                        }
                    }
                }
                draw
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    fn guides() -> Vec<FittedGuide> {
        let loc = vec![1.0, -2.0];
        [
            GuideParams::Delta { loc: loc.clone() },
            GuideParams::DiagonalNormal {
                loc: loc.clone(),
                scale: vec![0.5, 2.0],
            },
            GuideParams::MultivariateNormal {
                loc: loc.clone(),
                scale_tril: vec![vec![0.5, 0.0], vec![1.2, 0.7]],
            },
            GuideParams::LowRankMultivariateNormal {
                loc: loc.clone(),
                cov_factor: vec![vec![0.4], vec![-0.9]],
                cov_diag: vec![0.2, 0.3],
            },
            GuideParams::Laplace {
                loc,
                covariance: vec![vec![0.8, 0.3], vec![0.3, 0.5]],
            },
        ]
        .into_iter()
        .map(|params| FittedGuide::new(params).unwrap())
        .collect()
    }

    #[test]
    fn draws_have_the_stated_mean_and_covariance() {
        let n = 40_000;
        for guide in guides() {
            let draws = guide.sample(&mut stream_rng(17, 0), n);
            let covariance = guide.covariance();
            let mean = guide.mean();
            for i in 0..2 {
                let sample_mean = draws.iter().map(|z| z[i]).sum::<f64>() / n as f64;
                let standard_error = (covariance[i][i] / n as f64).sqrt();
                assert!(
                    (sample_mean - mean[i]).abs() <= 4.0 * standard_error,
                    "{}: mean {sample_mean} vs {}",
                    guide.params().name(),
                    mean[i]
                );
                for j in 0..=i {
                    let sample_covariance = draws
                        .iter()
                        .map(|z| (z[i] - mean[i]) * (z[j] - mean[j]))
                        .sum::<f64>()
                        / n as f64;
                    // Var of the product of two centred normals: Σ_ii Σ_jj + Σ_ij².
                    let standard_error = ((covariance[i][i] * covariance[j][j]
                        + covariance[i][j] * covariance[i][j])
                        / n as f64)
                        .sqrt();
                    assert!(
                        (sample_covariance - covariance[i][j]).abs() <= 4.0 * standard_error,
                        "{}: covariance [{i}][{j}] {sample_covariance} vs {}",
                        guide.params().name(),
                        covariance[i][j]
                    );
                }
            }
        }
    }

    #[test]
    fn quantiles_use_the_marginal_standard_deviations() {
        for guide in guides() {
            let rows = guide.quantiles(&DEFAULT_QUANTILES).unwrap();
            let covariance = guide.covariance();
            for i in 0..2 {
                let sd = covariance[i][i].sqrt();
                assert!((guide.standard_deviations()[i] - sd).abs() < 1e-12);
                assert!((rows[1][i] - guide.median()[i]).abs() < 1e-12);
                let expected = guide.mean()[i] + 1.644_853_626_951_472_2 * sd;
                assert!((rows[2][i] - expected).abs() < 1e-9);
            }
        }
        assert!(guides()[1].quantiles(&[0.0]).is_err());
        assert!(guides()[1].quantiles(&[f64::NAN]).is_err());
    }

    #[test]
    fn invalid_parameters_are_refused_with_a_message() {
        let cases = [
            GuideParams::DiagonalNormal {
                loc: vec![0.0, 1.0],
                scale: vec![1.0],
            },
            GuideParams::DiagonalNormal {
                loc: vec![0.0],
                scale: vec![-1.0],
            },
            GuideParams::Delta {
                loc: vec![f64::NAN],
            },
            GuideParams::MultivariateNormal {
                loc: vec![0.0, 0.0],
                scale_tril: vec![vec![1.0, 0.5], vec![0.0, 1.0]],
            },
            GuideParams::MultivariateNormal {
                loc: vec![0.0, 0.0],
                scale_tril: vec![vec![1.0, 0.0], vec![0.0, 0.0]],
            },
            GuideParams::LowRankMultivariateNormal {
                loc: vec![0.0, 0.0],
                cov_factor: vec![vec![1.0], vec![1.0, 2.0]],
                cov_diag: vec![1.0, 1.0],
            },
            GuideParams::Laplace {
                loc: vec![0.0, 0.0],
                covariance: vec![vec![1.0, 2.0], vec![2.0, 1.0]],
            },
        ];
        for params in cases {
            let error = FittedGuide::new(params.clone()).unwrap_err();
            assert!(
                error.message.starts_with("the guide's"),
                "{params:?}: {error}"
            );
        }
    }

    #[test]
    fn params_round_trip_through_json() {
        for guide in guides() {
            let text = serde_json::to_string(guide.params()).unwrap();
            let back: GuideParams = serde_json::from_str(&text).unwrap();
            assert_eq!(&back, guide.params());
            assert!(text.contains(&format!("\"guide\":\"{}", serde_tag(guide.params()))));
        }
    }

    fn serde_tag(params: &GuideParams) -> &'static str {
        match params {
            GuideParams::Delta { .. } => "delta",
            GuideParams::DiagonalNormal { .. } => "diagonal_normal",
            GuideParams::MultivariateNormal { .. } => "multivariate_normal",
            GuideParams::LowRankMultivariateNormal { .. } => "low_rank_multivariate_normal",
            GuideParams::Laplace { .. } => "laplace",
            GuideParams::Iaf { .. } => "iaf",
        }
    }

    fn flow_guide() -> FittedGuide {
        use rand::Rng as _;
        let shape = FlowShape {
            dim: 2,
            layers: 2,
            hidden: 5,
        };
        let mut rng = stream_rng(3, 0);
        let layers = (0..2)
            .map(|_| {
                (0..shape.layer_len())
                    .map(|_| 0.5 * rng.sample::<f64, _>(StandardNormal))
                    .collect()
            })
            .collect();
        FittedGuide::new(GuideParams::Iaf {
            loc: vec![1.0, -2.0],
            scale: vec![0.5, 2.0],
            hidden: 5,
            layers,
        })
        .unwrap()
    }

    #[test]
    fn a_flow_guide_summarises_its_own_draws() {
        let guide = flow_guide();
        let n = 40_000;
        let draws = guide.sample(&mut stream_rng(17, 0), n);
        let covariance = guide.covariance();
        let mean = guide.mean();
        for i in 0..2 {
            let sample_mean = draws.iter().map(|z| z[i]).sum::<f64>() / n as f64;
            // Both means are Monte Carlo estimates: the summary's of FLOW_SUMMARY_DRAWS draws.
            let standard_error =
                (covariance[i][i] * (1.0 / n as f64 + 1.0 / FLOW_SUMMARY_DRAWS as f64)).sqrt();
            assert!(
                (sample_mean - mean[i]).abs() <= 4.0 * standard_error,
                "mean {sample_mean} vs {}",
                mean[i]
            );
            assert!((guide.standard_deviations()[i] - covariance[i][i].sqrt()).abs() < 1e-12);
        }
        let quantiles = guide.quantiles(&DEFAULT_QUANTILES).unwrap();
        for i in 0..2 {
            assert!(quantiles[0][i] < quantiles[1][i] && quantiles[1][i] < quantiles[2][i]);
            assert_eq!(quantiles[1][i], guide.median()[i]);
        }
        let text = serde_json::to_string(guide.params()).unwrap();
        let back: GuideParams = serde_json::from_str(&text).unwrap();
        // serde_json's default float parsing may differ from the written value in the last bit.
        let (
            GuideParams::Iaf { layers: read, .. },
            GuideParams::Iaf {
                layers: written, ..
            },
        ) = (&back, guide.params())
        else {
            panic!("the guide read back is not an IAF: {back:?}");
        };
        for (a, b) in read.iter().flatten().zip(written.iter().flatten()) {
            assert!((a - b).abs() <= 1e-15 * b.abs().max(1.0), "{a} vs {b}");
        }
        assert!(text.contains("\"guide\":\"iaf\""));
    }
}
