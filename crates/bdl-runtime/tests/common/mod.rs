//! Loading the bundled models for the runtime's tests.
#![allow(clippy::disallowed_methods)] // Tests read the bundled model files.
#![allow(dead_code)] // Each test binary uses part of these helpers.

use bdl_autodiff::check::finite_difference;
use bdl_diagnostics::{render_all, SourceMap};
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use std::path::{Path, PathBuf};

/// The repository's `models/` folder.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Compiles a model file with the data files it names.
pub fn load_model(file_name: &str) -> Model {
    load_source(&models_dir().join(file_name), None)
}

/// Compiles a model from a path, with the data files it names or the given ones.
pub fn load_source(path: &Path, data_files: Option<&[PathBuf]>) -> Model {
    let mut sources = SourceMap::new();
    let bytes = std::fs::read(path).expect("model file");
    let compiled = match pipeline::compile(&mut sources, &path.display().to_string(), &bytes) {
        Ok(compiled) => compiled,
        Err(diagnostics) => panic!("{}", render_all(&diagnostics, &sources, false)),
    };
    let directory = path.parent().expect("a directory");
    let paths: Vec<PathBuf> = match data_files {
        Some(files) => files.to_vec(),
        None => compiled
            .program
            .data_files
            .iter()
            .map(|f| directory.join(&f.path))
            .collect(),
    };
    let files: Vec<DataFile> = paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("data file");
            let name = path.display().to_string();
            let file = sources.add(name.clone(), text.clone());
            DataFile::from_text(name, text, file)
        })
        .collect();
    let observed = pipeline::observed_only(&compiled.program);
    let data = match data::load(&compiled.program, &files, Completeness::All, &observed) {
        Ok(data) => data,
        Err(diagnostics) => panic!("{}", render_all(&diagnostics, &sources, false)),
    };
    match Model::new(compiled.program, data, 1) {
        Ok(model) => model,
        Err(error) => panic!("{}", render_all(&[error.to_diagnostic()], &sources, false)),
    }
}

/// Compiles a model written in the test, with data files given as `(name, text)` pairs.
pub fn model_from_text(name: &str, source: &str, data_files: &[(&str, &str)]) -> Model {
    let mut sources = SourceMap::new();
    let compiled = match pipeline::compile(&mut sources, name, source.as_bytes()) {
        Ok(compiled) => compiled,
        Err(diagnostics) => panic!("{}", render_all(&diagnostics, &sources, false)),
    };
    let files: Vec<DataFile> = data_files
        .iter()
        .map(|(name, text)| {
            let file = sources.add(*name, *text);
            DataFile::from_text(*name, *text, file)
        })
        .collect();
    let observed = pipeline::observed_only(&compiled.program);
    let data = match data::load(&compiled.program, &files, Completeness::All, &observed) {
        Ok(data) => data,
        Err(diagnostics) => panic!("{}", render_all(&diagnostics, &sources, false)),
    };
    match Model::new(compiled.program, data, 1) {
        Ok(model) => model,
        Err(error) => panic!("{}", render_all(&[error.to_diagnostic()], &sources, false)),
    }
}

/// The bundled models, by file stem, in a fixed order.
pub fn bundled_models() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(models_dir())
        .expect("the models folder")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .strip_suffix(".bdl")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// The finite-difference step and tolerance of `bdlc diagnose`: h = 1e-6, and an error
/// |gradient − finite difference| / max(1, |gradient|) of at most 1e-6. On top of it the stencil's
/// own rounding error is allowed (ten times machine epsilon × Σ|weight · f| / 60h): a density of
/// magnitude 10³ evaluated with relative rounding 10⁻¹⁵ moves a step-10⁻⁶ stencil by about 10⁻⁶
/// whatever the gradient.
pub const STEP: f64 = 1e-6;
pub const TOLERANCE: f64 = 1e-6;

/// Compares `gradient` at `position` with finite differences of `f`; returns the disagreeing
/// coordinates as messages.
pub fn compare_with_finite_differences(
    names: &[String],
    position: &[f64],
    gradient: &[f64],
    mut f: impl FnMut(&[f64]) -> Option<f64>,
) -> Vec<String> {
    let mut point = position.to_vec();
    let mut problems = Vec::new();
    for k in 0..position.len() {
        let estimate = finite_difference(
            |shifted| {
                point[k] = shifted;
                f(&point).ok_or(())
            },
            position[k],
            STEP,
        );
        point[k] = position[k];
        let Ok(estimate) = estimate else {
            problems.push(format!("{}: the stencil left the support", names[k]));
            continue;
        };
        let allowed = TOLERANCE * gradient[k].abs().max(1.0) + 10.0 * estimate.rounding_error;
        let difference = (gradient[k] - estimate.derivative).abs();
        // Written so that a NaN fails.
        let agrees = difference <= allowed;
        if !agrees {
            problems.push(format!(
                "{} at {:.4}: gradient {:e}, finite difference {:e} (difference {difference:e}, \
                 allowed {allowed:e})",
                names[k], position[k], gradient[k], estimate.derivative
            ));
        }
    }
    problems
}
