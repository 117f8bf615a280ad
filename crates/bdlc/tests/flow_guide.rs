//! `bdlc infer --method svi --guide iaf` end to end: the inverse autoregressive flow guide on
//! heights (means within half a posterior sd of the long NUTS reference, k̂ below 0.7), its
//! `params.json` starting NUTS and resuming its own fit, and the refusal of a model too large
//! for it (E0956).
#![allow(clippy::disallowed_methods)] // Tests read and write files.

mod infer_support;

use infer_support::{
    bdlc, infer_summary as infer, read_json, repository, summary_column as column,
};
use std::path::PathBuf;

/// A fresh folder for one run of this file's tests.
fn scratch(name: &str) -> PathBuf {
    infer_support::scratch("flow-guide", name)
}

#[test]
fn the_flow_guide_fits_heights_and_starts_other_runs() {
    let reference = read_json(&repository().join("models/corpus/heights.reference.json"));
    let out = scratch("heights");
    let summary = infer(
        "models/corpus/heights.bdl",
        &out,
        &["--method", "svi", "--guide", "iaf", "--seed", "1"],
    );
    assert_eq!(summary["facts"]["guide"], "iaf");
    let k = summary["facts"]["pareto_k"].as_f64().expect("k̂");
    assert!(k < 0.7, "k̂ = {k}");
    for name in ["mu", "sigma"] {
        let expected = &reference["columns"][name];
        let (mean, sd) = (
            expected["mean"].as_f64().unwrap(),
            expected["sd"].as_f64().unwrap(),
        );
        let fitted = column(&summary, name, "mean");
        assert!(
            (fitted - mean).abs() < 0.5 * sd,
            "{name}: {fitted} vs {mean} ± {sd}"
        );
    }
    let params = read_json(&out.join("params.json"));
    assert_eq!(params["guide"]["guide"], "iaf");
    let out_text = out.to_string_lossy().into_owned();
    let nuts = infer(
        "models/corpus/heights.bdl",
        &scratch("heights-nuts"),
        &["--init", &out_text, "--warmup", "100", "--samples", "100"],
    );
    assert_eq!(nuts["facts"]["init_method"], "svi");
    let resumed = infer(
        "models/corpus/heights.bdl",
        &scratch("heights-resumed"),
        &["--method", "svi", "--guide", "iaf", "--init", &out_text],
    );
    assert_eq!(resumed["facts"]["resumed"], true, "{}", resumed["facts"]);
}

#[test]
fn a_model_too_large_for_the_flow_is_refused() {
    let output = bdlc(&[
        "infer",
        "models/sine_bnn.bdl",
        "--method",
        "svi",
        "--guide",
        "iaf",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("E0956") && stderr.contains("302"),
        "{stderr}"
    );
}
