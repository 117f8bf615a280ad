//! The predictive metrics of `bdlc predict --metrics` against scikit-learn, properscoring, SciPy
//! and NumPy on the fixed predictions of `tests/data/predictive_metrics_reference.json`, written
//! by `scripts/predictive_metrics_reference.py`: accuracy, NLL, Brier score, expected
//! calibration error (several bin counts) and AUROC of a three-class and a two-class classifier
//! (the latter with tied probabilities), and RMSE, NLL, CRPS and interval coverage of a
//! regression, each within 1e-12 (relative for values above 1).

use bdl_infer::diagnostics::metrics::{classification, log_mean_exp, regression, LogMeanExp};
use serde_json::Value;

const REFERENCE: &str = include_str!("data/predictive_metrics_reference.json");
const TOLERANCE: f64 = 1e-12;

fn reference() -> Value {
    serde_json::from_str(REFERENCE).expect("the reference file is JSON")
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

fn matrix(value: &Value) -> Vec<Vec<f64>> {
    value.as_array().expect("rows").iter().map(floats).collect()
}

/// Compares one value, collecting a line for each disagreement.
fn check(failures: &mut Vec<String>, case: &str, what: &str, ours: f64, theirs: f64) {
    if (ours - theirs).abs() > TOLERANCE * theirs.abs().max(1.0) {
        failures.push(format!(
            "{case}: {what} is {ours}, the reference says {theirs}"
        ));
    }
}

#[test]
fn classifier_scores_agree_with_scikit_learn() {
    let reference = reference();
    let mut failures = Vec::new();
    let mut cases = 0;
    for case in reference["classifiers"].as_array().expect("classifiers") {
        let name = case["name"].as_str().expect("a name");
        let probabilities = matrix(&case["probabilities"]);
        let targets: Vec<usize> = floats(&case["targets"])
            .iter()
            .map(|&t| t as usize)
            .collect();
        for bins in floats(&reference["bin_counts"]) {
            let bins = bins as usize;
            let scores = classification(&probabilities, &targets, bins).expect("scores");
            check(
                &mut failures,
                name,
                "accuracy",
                scores.accuracy,
                case["accuracy"].as_f64().expect("accuracy"),
            );
            check(
                &mut failures,
                name,
                "nll",
                scores.nll,
                case["nll"].as_f64().expect("nll"),
            );
            check(
                &mut failures,
                name,
                "brier",
                scores.brier,
                case["brier"].as_f64().expect("brier"),
            );
            check(
                &mut failures,
                name,
                &format!("ece with {bins} bins"),
                scores.calibration.expected_calibration_error,
                case["ece"][bins.to_string()].as_f64().expect("ece"),
            );
            let counted: usize = scores.calibration.bins.iter().map(|b| b.count).sum();
            assert_eq!(counted, targets.len(), "{name}: every prediction is binned");
            match (scores.auroc, case["auroc"].as_f64()) {
                (Some(ours), Some(theirs)) => check(&mut failures, name, "auroc", ours, theirs),
                (None, None) => {}
                (ours, theirs) => failures.push(format!(
                    "{name}: auroc is {ours:?}, the reference has {theirs:?}"
                )),
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 2, "both classifier cases were checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn regression_scores_agree_with_properscoring_and_numpy() {
    let reference = reference();
    let mut failures = Vec::new();
    let mut cases = 0;
    for case in reference["regressions"].as_array().expect("regressions") {
        let name = case["name"].as_str().expect("a name");
        let log_lik = matrix(&case["log_lik"]);
        let densities: Vec<f64> = log_lik.iter().map(|row| log_mean_exp(row)).collect();
        // The running form, as `bdlc predict` accumulates it draw by draw, gives the same.
        for (row, &density) in log_lik.iter().zip(&densities) {
            let mut running = LogMeanExp::default();
            row.iter().for_each(|&v| running.push(v));
            check(
                &mut failures,
                name,
                "running log-mean-exp",
                running.value(),
                density,
            );
        }
        let scores = regression(
            &matrix(&case["draws"]),
            &densities,
            &floats(&case["means"]),
            &floats(&case["targets"]),
        )
        .expect("scores");
        for (what, ours) in [
            ("rmse", scores.rmse),
            ("nll", scores.nll),
            ("crps", scores.crps),
            ("coverage_50", scores.coverage_50),
            ("coverage_90", scores.coverage_90),
        ] {
            check(
                &mut failures,
                name,
                what,
                ours,
                case[what].as_f64().expect("a number"),
            );
        }
        cases += 1;
    }
    assert_eq!(cases, 1, "the regression case was checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scoring_nothing_or_an_unknown_class_is_an_error() {
    // Each case asserts the error it expects.
    assert!(classification(&[], &[], 10).is_err());
    let error = classification(&[vec![0.4, 0.6]], &[2], 10).expect_err("class 2 of 2");
    assert!(
        error.to_string().contains("outside the 2 classes"),
        "{error}"
    );
    assert!(regression(&[], &[], &[], &[]).is_err());
}
