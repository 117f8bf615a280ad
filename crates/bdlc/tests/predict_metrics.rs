//! `bdlc predict --metrics` end to end, on small models fitted here: the NLL of `metrics.json`
//! is the mean negative log predictive density computed from the run's own log-likelihood
//! files (`bdlc infer` writes log p(yⱼ | θₛ) for every draw, and `predict` with every draw and
//! the model's data scores the same draws), the CRPS and interval coverage of a regression are
//! those of the predictive draws written by `--draws-out`, and the usage errors carry their
//! codes. The metric formulas themselves are checked against scikit-learn and properscoring in
//! `bdl-infer/tests/predictive_metrics.rs`.
#![allow(clippy::disallowed_methods)] // Tests read and write files.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bdlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs")
}

fn workspace(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("predict-metrics")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The rows of a CmdStan-layout CSV file (comments skipped) with its header.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).expect("the file exists");
    let mut lines = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'));
    let header = lines
        .next()
        .expect("a header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|line| {
            line.split(',')
                .map(|f| f.parse().expect("a number"))
                .collect()
        })
        .collect();
    (header, rows)
}

fn log_mean_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + (values.iter().map(|v| (v - max).exp()).sum::<f64>() / values.len() as f64).ln()
}

/// NumPy's default (linear, type-7) quantile.
fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = p * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (position - low as f64) * (sorted[high] - sorted[low])
}

/// Fits `model` with SVI and predicts on its own data with every draw and `--metrics`; returns
/// the run's directory and `metrics.json`.
fn fit_and_score(dir: &Path, model: &str, data: &str) -> (PathBuf, Value) {
    let model_path = dir.join("model.bdl");
    std::fs::write(&model_path, model).expect("the model is written");
    std::fs::write(dir.join("data.csv"), data).expect("the data are written");
    let run = dir.join("run");
    let model_arg = model_path.to_string_lossy().to_string();
    let run_arg = run.to_string_lossy().to_string();
    let output = bdlc(&[
        "infer", &model_arg, "--method", "svi", "--steps", "400", "--seed", "3", "--out", &run_arg,
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let predictions = dir.join("predictions.csv").to_string_lossy().to_string();
    let draws_out = dir.join("predictive.csv").to_string_lossy().to_string();
    let output = bdlc(&[
        "predict",
        &model_arg,
        "--posterior",
        &run_arg,
        "--out",
        &predictions,
        "--draws-out",
        &draws_out,
        "--draws",
        "1000",
        "--metrics",
        "--bins",
        "5",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("predictive metrics on"), "{stdout}");
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json is written"),
    )
    .expect("metrics.json is JSON");
    (run, metrics)
}

/// −(1/n) Σⱼ log((1/S) Σₛ p(yⱼ | θₛ)) from a run's `log_lik.csv`.
fn nll_from_log_lik(run: &Path) -> f64 {
    let (header, rows) = read_csv(&run.join("log_lik.csv"));
    assert_eq!(rows.len(), 1000, "an SVI run writes 1000 draws");
    let densities: Vec<f64> = (0..header.len())
        .map(|j| log_mean_exp(&rows.iter().map(|row| row[j]).collect::<Vec<_>>()))
        .collect();
    -densities.iter().sum::<f64>() / densities.len() as f64
}

const CLASSIFIER: &str = r#"
data from "data.csv" {
    x: vector[N]
    y: int<lower=0, upper=1>[N]
}

model {
    let a = sample("a", Normal(0, 2))
    let b = sample("b", Normal(0, 2))
    plate("data", N) {
        observe("y", Bernoulli(logits = a + b * x), y)
    }
}
"#;

const REGRESSION: &str = r#"
data from "data.csv" {
    x: vector[N]
    y: vector[N]
}

model {
    let a = sample("a", Normal(0, 2))
    let b = sample("b", Normal(0, 2))
    let sigma = sample("sigma", HalfNormal(1))
    plate("data", N) {
        observe("y", Normal(a + b * x, sigma), y)
    }
}
"#;

/// Rows of (x, y) from a fixed deterministic recipe (no generator needed).
fn data(n: usize, classify: bool) -> String {
    let mut text = String::from("x,y\n");
    for i in 0..n {
        let x = -2.0 + 4.0 * i as f64 / (n - 1) as f64;
        let wiggle = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
        if classify {
            let y = usize::from(x + wiggle * 1.5 > 0.0);
            text.push_str(&format!("{x},{y}\n"));
        } else {
            text.push_str(&format!("{x},{}\n", 0.5 + 1.2 * x + wiggle));
        }
    }
    text
}

#[test]
fn a_classifier_is_scored_and_its_nll_is_the_log_lik_files_one() {
    let dir = workspace("classifier");
    let (run, metrics) = fit_and_score(&dir, CLASSIFIER, &data(40, true));
    let site = &metrics["sites"][0];
    assert_eq!(site["task"], "classification");
    assert_eq!(site["observations"], 40);
    assert_eq!(site["ece_bins"], 5);
    let nll = site["nll"].as_f64().expect("nll");
    let expected = nll_from_log_lik(&run);
    assert!(
        (nll - expected).abs() < 1e-10,
        "metrics.json says NLL {nll}, the log-likelihood file {expected}"
    );
    let accuracy = site["accuracy"].as_f64().expect("accuracy");
    let auroc = site["auroc"].as_f64().expect("auroc");
    // The labels follow the sign of x but for the wiggle: a fitted logistic regression
    // separates them well (the accuracy of the best threshold on x is 0.85 or more).
    assert!(accuracy >= 0.8, "accuracy {accuracy}");
    assert!(auroc >= 0.85, "auroc {auroc}");
    let counted: u64 = site["calibration"]
        .as_array()
        .expect("bins")
        .iter()
        .map(|bin| bin["count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(counted, 40, "every observation is in a calibration bin");
}

#[test]
fn a_regression_is_scored_from_its_predictive_draws() {
    let dir = workspace("regression");
    let (run, metrics) = fit_and_score(&dir, REGRESSION, &data(30, false));
    let site = &metrics["sites"][0];
    assert_eq!(site["task"], "regression");
    let nll = site["nll"].as_f64().expect("nll");
    let expected = nll_from_log_lik(&run);
    assert!(
        (nll - expected).abs() < 1e-10,
        "NLL {nll} against {expected}"
    );
    // CRPS and coverage from the predictive draws written by `--draws-out`.
    let (header, rows) = read_csv(&dir.join("predictive.csv"));
    let targets: Vec<f64> = data(30, false)
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .nth(1)
                .expect("y")
                .parse()
                .expect("a number")
        })
        .collect();
    let (mut crps, mut inside_50, mut inside_90) = (0.0, 0.0, 0.0);
    for (j, target) in targets.iter().enumerate() {
        assert_eq!(header[j], format!("y.{}", j + 1));
        let draws: Vec<f64> = rows.iter().map(|row| row[j]).collect();
        let s = draws.len() as f64;
        let to_target = draws.iter().map(|x| (x - target).abs()).sum::<f64>() / s;
        let spread = draws
            .iter()
            .flat_map(|x| draws.iter().map(move |y| (x - y).abs()))
            .sum::<f64>()
            / (2.0 * s * s);
        crps += to_target - spread;
        let inside = |level: f64| {
            let low = quantile(&draws, (1.0 - level) / 2.0);
            let high = quantile(&draws, (1.0 + level) / 2.0);
            if low <= *target && *target <= high {
                1.0
            } else {
                0.0
            }
        };
        inside_50 += inside(0.5);
        inside_90 += inside(0.9);
    }
    let n = targets.len() as f64;
    let close = |name: &str, expected: f64| {
        let ours = site[name].as_f64().expect("a number");
        assert!(
            (ours - expected).abs() < 1e-9,
            "{name}: {ours} against {expected}"
        );
    };
    close("crps", crps / n);
    close("coverage_50", inside_50 / n);
    close("coverage_90", inside_90 / n);
    let rmse = site["rmse"].as_f64().expect("rmse");
    // The wiggle is uniform on [−0.5, 0.5): its standard deviation is about 0.29.
    assert!(rmse > 0.15 && rmse < 0.5, "rmse {rmse}");
}

#[test]
fn scoring_without_targets_or_bins_without_metrics_are_usage_errors() {
    let dir = workspace("errors");
    let model_path = dir.join("model.bdl");
    std::fs::write(&model_path, CLASSIFIER).expect("the model is written");
    std::fs::write(dir.join("data.csv"), data(20, true)).expect("data");
    let inputs_only: String = data(20, true)
        .lines()
        .map(|line| line.split(',').next().expect("x").to_string() + "\n")
        .collect();
    std::fs::write(dir.join("inputs.csv"), inputs_only).expect("inputs");
    let model_arg = model_path.to_string_lossy().to_string();
    let run_arg = dir.join("run").to_string_lossy().to_string();
    let output = bdlc(&[
        "infer", &model_arg, "--method", "svi", "--steps", "50", "--out", &run_arg,
    ]);
    assert_eq!(output.status.code(), Some(0));
    let out_arg = dir.join("p.csv").to_string_lossy().to_string();
    let inputs_arg = dir.join("inputs.csv").to_string_lossy().to_string();
    let output = bdlc(&[
        "predict",
        &model_arg,
        "--posterior",
        &run_arg,
        "--data",
        &inputs_arg,
        "--out",
        &out_arg,
        "--metrics",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[E0963]"), "{stderr}");
    assert!(
        stderr.contains("held-out"),
        "the hint says what to give: {stderr}"
    );
    let output = bdlc(&[
        "predict",
        &model_arg,
        "--posterior",
        &run_arg,
        "--out",
        &out_arg,
        "--bins",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[E0966]"), "{stderr}");
}
