//! Loading the bundled models for the runtime's tests.
#![allow(clippy::disallowed_methods)] // Tests read the bundled model files.
#![allow(dead_code)] // Each test binary uses part of these helpers.

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
            DataFile { name, text, file }
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
