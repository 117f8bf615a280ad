//! The lowered IR of every bundled model, printed by `ir::Program`'s `Display` (what
//! `bdlc check --emit ir` shows), pinned by one insta snapshot per model under `snapshots/`.
//! A change to checking, lowering or the printer that changes what a model compiles to shows
//! here as a reviewable diff: `cargo insta review` (or `INSTA_UPDATE=always`) accepts it.

use bdl_diagnostics::{FileId, Severity};
use bdl_ir::{check, lower};
use bdl_syntax::parse;

/// Every model of `models/`, by file stem. `every_model_has_a_snapshot` keeps this list in step
/// with the folder.
const MODELS: &[(&str, &str)] = &[
    ("arma11", include_str!("../../../models/arma11.bdl")),
    (
        "bayes_by_backprop",
        include_str!("../../../models/bayes_by_backprop.bdl"),
    ),
    (
        "bayes_linreg",
        include_str!("../../../models/bayes_linreg.bdl"),
    ),
    (
        "coal_mining",
        include_str!("../../../models/coal_mining.bdl"),
    ),
    (
        "eight_schools",
        include_str!("../../../models/eight_schools.bdl"),
    ),
    ("garch11", include_str!("../../../models/garch11.bdl")),
    (
        "gaussian_hmm",
        include_str!("../../../models/gaussian_hmm.bdl"),
    ),
    (
        "gaussian_mixture",
        include_str!("../../../models/gaussian_mixture.bdl"),
    ),
    (
        "iris_bayes_by_backprop",
        include_str!("../../../models/iris_bayes_by_backprop.bdl"),
    ),
    ("iris_bnn", include_str!("../../../models/iris_bnn.bdl")),
    (
        "linreg_missing",
        include_str!("../../../models/linreg_missing.bdl"),
    ),
    ("logistic", include_str!("../../../models/logistic.bdl")),
    (
        "poly_regression",
        include_str!("../../../models/poly_regression.bdl"),
    ),
    (
        "shallow_bnn",
        include_str!("../../../models/shallow_bnn.bdl"),
    ),
    (
        "shallow_gibbs",
        include_str!("../../../models/shallow_gibbs.bdl"),
    ),
    (
        "shallow_wishart",
        include_str!("../../../models/shallow_wishart.bdl"),
    ),
    ("sine_bnn", include_str!("../../../models/sine_bnn.bdl")),
    (
        "sine_ensemble",
        include_str!("../../../models/sine_ensemble.bdl"),
    ),
    (
        "sine_layer_priors",
        include_str!("../../../models/sine_layer_priors.bdl"),
    ),
    ("sine_sgld", include_str!("../../../models/sine_sgld.bdl")),
];

/// The printed IR of a model that must check without errors.
fn printed_ir(name: &str, source: &str) -> String {
    let parsed = parse(FileId(0), source);
    assert!(
        parsed.diagnostics.is_empty(),
        "{name}: {:?}",
        parsed.diagnostics
    );
    let checked = check(&parsed.program);
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}");
    match lower(&parsed.program, &checked.analysis) {
        Ok(program) => program.to_string(),
        Err(diagnostic) => panic!("{name}: lowering failed: {diagnostic:?}"),
    }
}

#[test]
fn ir_of_every_model() {
    for (name, source) in MODELS {
        let text = printed_ir(name, source);
        // The printer is a pure function of the program: a second run prints the same text.
        assert_eq!(text, printed_ir(name, source), "{name}: unstable output");
        insta::assert_snapshot!(*name, text);
    }
}

#[test]
fn every_model_has_a_snapshot() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");
    let mut on_disk: Vec<String> = std::fs::read_dir(folder)
        .expect("the models folder")
        .filter_map(|entry| {
            let path = entry.expect("a folder entry").path();
            let is_model = path.extension().is_some_and(|extension| extension == "bdl");
            let stem = path.file_stem()?.to_str()?.to_string();
            is_model.then_some(stem)
        })
        .collect();
    on_disk.sort();
    let listed: Vec<String> = MODELS.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "MODELS in this test must list every models/*.bdl, in order"
    );
}
