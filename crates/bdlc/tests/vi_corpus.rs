//! "Accurate or warned": SVI and MAP at their defaults on every model of `models/corpus/`
//! (ordinary posteriors: regressions and GLMs with unscaled predictors, hierarchical models, AR(1)
//! and ARMA(1,1) series) against long NUTS references (`NAME.reference.json`, written by
//! `scripts/vi_corpus.py --references`).
//!
//! A run is accurate when every column's mean lies within half a posterior sd of the NUTS mean.
//! A run that is not accurate must have printed a warning (it is then in `summary.json`'s
//! `warnings`): the bar is zero silent failures. The NUTS references themselves must have mixed
//! (R-hat below 1.01, bulk ESS above 4,000). All 22 runs take a few seconds in a release build.
#![allow(clippy::disallowed_methods)] // The test reads the corpus and the files bdlc writes.

mod infer_support;

use infer_support::{infer, repository, scratch};
use serde_json::Value;
use std::path::Path;

/// A mean within this many posterior sds of the NUTS mean is accurate.
const TOLERANCE_SD: f64 = 0.5;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn every_default_svi_and_map_run_is_accurate_or_warned() {
    let corpus = repository().join("models/corpus");
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .expect("the corpus folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".bdl").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the corpus has {} models", names.len());
    let mut silent = Vec::new();
    let mut table = String::new();
    for name in &names {
        let reference = read_json(&corpus.join(format!("{name}.reference.json")));
        let reference = &reference["columns"];
        for (column, r) in reference.as_object().expect("columns") {
            let r_hat = r["r_hat"].as_f64().expect("r_hat");
            let ess = r["ess_bulk"].as_f64().expect("ess_bulk");
            assert!(
                r_hat < 1.01 && ess > 4000.0,
                "{name}: NUTS reference of {column} did not mix"
            );
        }
        for method in ["svi", "map"] {
            let out = scratch("vi_corpus", &format!("{name}_{method}"));
            let model = corpus.join(format!("{name}.bdl"));
            infer(&model, &["--method".to_string(), method.to_string()], &out);
            let summary = read_json(&out.join("summary.json"));
            let columns = summary["columns"].as_array().expect("columns");
            let entries = summary["summary"].as_array().expect("summary");
            let mut worst = (0.0f64, String::new());
            for (column, entry) in columns.iter().zip(entries) {
                let column = column.as_str().expect("a column name");
                let r = &reference[column];
                let z = (entry["mean"].as_f64().expect("mean") - r["mean"].as_f64().expect("mean"))
                    .abs()
                    / r["sd"].as_f64().expect("sd");
                if z > worst.0 {
                    worst = (z, column.to_string());
                }
            }
            let warnings = summary["warnings"].as_array().expect("warnings");
            let verdict = if worst.0 <= TOLERANCE_SD {
                "accurate"
            } else if !warnings.is_empty() {
                "warned"
            } else {
                silent.push(format!(
                    "{name} {method}: {} off by {:.2} sd",
                    worst.1, worst.0
                ));
                "SILENT FAILURE"
            };
            table.push_str(&format!(
                "{name:20} {method:4} {:6.2} sd ({:14}) {verdict:15} {} warning(s)\n",
                worst.0,
                worst.1,
                warnings.len()
            ));
        }
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{table}");
    }
    assert!(silent.is_empty(), "silent failures:\n{}", silent.join("\n"));
}
