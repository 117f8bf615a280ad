//! `bdlc predict` reports the model's `deterministic` sites beside its observed ones: the
//! noise-free regression line f(x) = b + w x on new inputs, in the summary and in the draws,
//! computed from the same posterior draws as the predictive observations.
#![allow(clippy::disallowed_methods)] // Tests read and write files.

use std::path::{Path, PathBuf};
use std::process::Command;

const MODEL: &str = r#"data {
    x: vector[N]
    y: vector[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    plate("data", N) {
        let f = deterministic("f", b + w * x)
        observe("y", Normal(f, 1), y)
    }
}
"#;

fn bdlc(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "bdlc {args:?}: {stderr}");
    stderr
}

/// The rows of a CSV file without its `#` comment lines, split at commas.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect()
}

fn column(rows: &[Vec<String>], name: &str) -> Vec<f64> {
    let index = rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]));
    rows[1..]
        .iter()
        .map(|row| row[index].parse().expect("a number"))
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn sd(values: &[f64]) -> f64 {
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

#[test]
fn predict_reports_deterministic_sites_on_new_inputs() {
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("predict-deterministic");
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    std::fs::write(dir.join("line.bdl"), MODEL).expect("write the model");
    std::fs::write(
        dir.join("train.json"),
        r#"{"x": [2, -2, 0.5, 1], "y": [0, -2, -0.5, 0.3]}"#,
    )
    .expect("write the data");
    let new_x = [-1.0, 0.0, 3.0];
    std::fs::write(dir.join("new.json"), r#"{"x": [-1, 0, 3], "y": [0, 0, 0]}"#)
        .expect("write the new inputs");
    bdlc(
        &dir,
        &[
            "infer",
            "line.bdl",
            "--data",
            "train.json",
            "--method",
            "exact",
            "--samples",
            "400",
            "--seed",
            "3",
            "--out",
            "run",
            "--force",
            "--quiet",
        ],
    );
    let posterior = csv_rows(&dir.join("run/draws.csv"));
    let b = column(&posterior, "b");
    let w = column(&posterior, "w");
    assert_eq!(b.len(), 400);
    bdlc(
        &dir,
        &[
            "predict",
            "line.bdl",
            "--posterior",
            "run",
            "--data",
            "new.json",
            "--out",
            "predictions.csv",
            "--draws-out",
            "predictive_draws.csv",
            "--draws",
            "400",
        ],
    );

    // Every posterior draw is used once, so each predictive draw of f is b + w x of one row of
    // the posterior, and the column's mean is mean(b) + mean(w) x up to rounding.
    let draws = csv_rows(&dir.join("predictive_draws.csv"));
    for (k, x) in new_x.iter().enumerate() {
        let f = column(&draws, &format!("f.{}", k + 1));
        let y = column(&draws, &format!("y.{}", k + 1));
        assert_eq!(f.len(), 400);
        let expected = mean(&b) + mean(&w) * x;
        assert!(
            (mean(&f) - expected).abs() < 1e-9 * (1.0 + expected.abs()),
            "f.{}: mean {} against {expected}",
            k + 1,
            mean(&f)
        );
        let mut pairs: Vec<f64> = b.iter().zip(&w).map(|(b, w)| b + w * x).collect();
        let mut got = f.clone();
        pairs.sort_by(f64::total_cmp);
        got.sort_by(f64::total_cmp);
        for (a, e) in got.iter().zip(&pairs) {
            assert!((a - e).abs() < 1e-9 * (1.0 + e.abs()), "{a} against {e}");
        }
        // The observation adds unit noise to f: Var(y) = Var(f) + 1, far above Var(f) here.
        assert!(sd(&y) > sd(&f), "y is noisier than f");
    }

    // The summary has one row per element of f after the rows of y.
    let summary = csv_rows(&dir.join("predictions.csv"));
    let sites: Vec<(&str, &str)> = summary[1..]
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    assert_eq!(
        sites,
        [
            ("y", "1"),
            ("y", "2"),
            ("y", "3"),
            ("f", "1"),
            ("f", "2"),
            ("f", "3")
        ]
    );
    let f_means = column(&summary, "mean");
    for (k, x) in new_x.iter().enumerate() {
        let expected = mean(&b) + mean(&w) * x;
        assert!(
            (f_means[3 + k] - expected).abs() < 1e-5 * (1.0 + expected.abs()),
            "summary mean of f.{}",
            k + 1
        );
    }
}
