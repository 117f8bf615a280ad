//! Warm starts (`--init FILE`): an earlier SVI, MAP or Laplace run's `params.json` as the
//! starting point of a new run of the same model.
//!
//! [`WarmStart::load`] reads the file (or the `params.json` inside a run directory), checks it
//! against the model — the same latent and param sites, of the same kinds and unconstrained
//! shapes, in the same order — and keeps the saved guide and params. The run modules then use
//! it: SVI starts its guide at the saved point (a MAP point) or resumes the saved guide (the
//! same guide family), NUTS and HMC draw each chain's initial point from the saved guide and
//! take its variances as the initial diagonal metric, and every method takes the model's
//! `param` values from the file. Every mismatch is an error with its own code (E0950–E0953)
//! naming the site, never a silent fallback.

use crate::session::{describe_io_error, Failure};
use bdl_infer::mcmc::InverseMetric;
use bdl_infer::rng::stream_rng;
use bdl_infer::vi::{FittedGuide, GuideParams};
use bdl_runtime::model::Model;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The largest file a warm start reads (a guide over 500 coordinates with a dense covariance
/// is a few MiB of JSON).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// One entry of the saved layout, as `params.json` writes it.
#[derive(Debug, Deserialize)]
struct SavedSite {
    site: String,
    kind: String,
    unconstrained_shape: Vec<usize>,
}

/// The parts of `params.json` a warm start reads.
#[derive(Debug, Deserialize)]
struct SavedRun {
    method: String,
    guide: GuideParams,
    #[serde(default)]
    params_unconstrained: Vec<f64>,
    layout: Vec<SavedSite>,
}

/// A checked warm start: the saved guide and the model's params, in the model's layout.
#[derive(Clone, Debug)]
pub struct WarmStart {
    /// The file read.
    pub path: PathBuf,
    /// The method that wrote it (`svi`, `map`, `laplace`, `pathfinder`).
    pub method: String,
    /// The saved guide over the latent coordinates.
    pub guide: FittedGuide,
    /// The model's params, unconstrained.
    pub params: Vec<f64>,
}

/// The error for a warm-start file that cannot be used.
fn unusable(code: &str, path: &Path, message: String, hint: &str) -> Failure {
    Failure::usage(
        code,
        format!("cannot start from `{}`: {message}", path.display()),
        Some(hint.to_string()),
    )
}

impl WarmStart {
    /// Whether `--init VALUE` names a file or directory rather than one of the built-in
    /// starting points.
    pub fn names_a_file(value: &str) -> bool {
        value.contains('/')
            || value.contains(std::path::MAIN_SEPARATOR)
            || value.ends_with(".json")
            || Path::new(value).exists()
    }

    /// Reads `path` (a `params.json`, or a run directory holding one) and checks it against
    /// `model`.
    pub fn load(path: &Path, model: &Model) -> Result<WarmStart, Failure> {
        let file = if path.is_dir() {
            path.join("params.json")
        } else {
            path.to_path_buf()
        };
        let too_big = std::fs::metadata(&file).is_ok_and(|m| m.len() > MAX_FILE_BYTES);
        if too_big {
            return Err(unusable(
                "E0950",
                &file,
                format!("the file is larger than {} MiB", MAX_FILE_BYTES >> 20),
                "a warm start reads the `params.json` of an SVI, MAP or Laplace run",
            ));
        }
        let text = std::fs::read_to_string(&file).map_err(|error| {
            let hint = if path.is_dir() {
                "the directory holds no `params.json`: only SVI, MAP, Laplace and Pathfinder runs \
                 write one (NUTS runs write chain files)"
            } else {
                "give the `params.json` of an earlier run, or its `--out` directory"
            };
            unusable("E0950", &file, describe_io_error(&error), hint)
        })?;
        let saved: SavedRun = serde_json::from_str(&text).map_err(|error| {
            unusable(
                "E0951",
                &file,
                {
                    // serde's message ends with its own " at line L column C".
                    let message = error.to_string();
                    let message = message
                        .rsplit_once(" at line ")
                        .map_or(message.as_str(), |(head, _)| head)
                        .to_string();
                    format!(
                        "{}:{}:{}: {message}",
                        file.display(),
                        error.line(),
                        error.column()
                    )
                },
                "the file must be a `params.json` written by `bdlc infer` (method svi, map, \
                 laplace or pathfinder)",
            )
        })?;
        check_layout(&file, &saved, model)?;
        let latent_dim = model.layout.latent_dim();
        if saved.guide.loc().len() != latent_dim {
            return Err(unusable(
                "E0952",
                &file,
                format!(
                    "its guide covers {} coordinates but the model has {latent_dim} latent \
                     coordinates",
                    saved.guide.loc().len()
                ),
                "the file was written for another model; start from a run of this model",
            ));
        }
        if saved.params_unconstrained.len() != model.layout.param_dim() {
            return Err(unusable(
                "E0952",
                &file,
                format!(
                    "it holds {} param values but the model's params have {} coordinates",
                    saved.params_unconstrained.len(),
                    model.layout.param_dim()
                ),
                "the file was written for another model; start from a run of this model",
            ));
        }
        if let Some(i) = saved
            .params_unconstrained
            .iter()
            .position(|v| !v.is_finite())
        {
            return Err(unusable(
                "E0953",
                &file,
                format!("its param value {i} is not finite"),
                "the earlier run failed; start from a run that finished",
            ));
        }
        let guide = FittedGuide::new(saved.guide).map_err(|error| {
            unusable(
                "E0953",
                &file,
                format!("its guide is not a valid distribution: {error}"),
                "the earlier run failed; start from a run that finished",
            )
        })?;
        Ok(WarmStart {
            path: file,
            method: saved.method,
            guide,
            params: saved.params_unconstrained,
        })
    }

    /// Whether the saved guide is a point (a MAP fit).
    pub fn is_point(&self) -> bool {
        matches!(self.guide.params(), GuideParams::Delta { .. })
    }

    /// The saved point `[guide location, params]` (the MAP point of a MAP fit).
    pub fn position(&self) -> Vec<f64> {
        let mut position = self.guide.params().loc().to_vec();
        position.extend_from_slice(&self.params);
        position
    }

    /// One initial latent position per chain: draws from the saved guide (stream `seed`), or
    /// the saved point for every chain when the guide is a point.
    pub fn chain_positions(&self, chains: usize, seed: u64) -> Vec<Vec<f64>> {
        if self.is_point() {
            return vec![self.guide.params().loc().to_vec()];
        }
        let mut rng = stream_rng(seed, u64::MAX - 3);
        self.guide.sample(&mut rng, chains)
    }

    /// The saved guide's marginal variances as a diagonal inverse metric (`None` for a point).
    pub fn inverse_metric(&self) -> Option<InverseMetric> {
        if self.is_point() {
            return None;
        }
        Some(InverseMetric::Diag(
            self.guide
                .standard_deviations()
                .iter()
                .map(|sd| sd * sd)
                .collect(),
        ))
    }
}

/// Checks that the saved layout names the model's sites, with the same kinds and
/// unconstrained shapes, in the model's order.
fn check_layout(file: &Path, saved: &SavedRun, model: &Model) -> Result<(), Failure> {
    let hint = "the file was written for another model (or an earlier version of this one); \
                start from a run of this model";
    for entry in &model.layout.entries {
        let Some(found) = saved.layout.iter().find(|s| s.site == entry.name) else {
            return Err(unusable(
                "E0952",
                file,
                format!("the model's site `{}` is not in the file", entry.name),
                hint,
            ));
        };
        if found.kind != entry.kind.as_str() {
            return Err(unusable(
                "E0952",
                file,
                format!(
                    "site `{}` is a {} site in the file but a {} site in the model",
                    entry.name,
                    found.kind,
                    entry.kind.as_str()
                ),
                hint,
            ));
        }
        if found.unconstrained_shape != entry.unconstrained_shape {
            return Err(unusable(
                "E0952",
                file,
                format!(
                    "site `{}` has unconstrained shape {:?} in the file but {:?} in the model",
                    entry.name, found.unconstrained_shape, entry.unconstrained_shape
                ),
                hint,
            ));
        }
    }
    if let Some(extra) = saved
        .layout
        .iter()
        .find(|s| model.layout.find(&s.site).is_none())
    {
        return Err(unusable(
            "E0952",
            file,
            format!("the file's site `{}` is not in the model", extra.site),
            hint,
        ));
    }
    let saved_order: Vec<&str> = saved.layout.iter().map(|s| s.site.as_str()).collect();
    let model_order: Vec<&str> = model
        .layout
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    if saved_order != model_order {
        return Err(unusable(
            "E0952",
            file,
            "the file lists the model's sites in another order".to_string(),
            hint,
        ));
    }
    Ok(())
}
