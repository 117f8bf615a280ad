//! "Accurate or warned": SVI, MAP, Pathfinder and the IAF guide at their defaults on every model
//! of `models/corpus/` (ordinary posteriors: regressions and GLMs with unscaled predictors,
//! hierarchical models, AR(1) and ARMA(1,1) series) against long NUTS references
//! (`NAME.reference.json`, written by `scripts/vi_corpus.py --references`).
//!
//! A run is accurate when every column's mean lies within half a posterior sd of the NUTS mean
//! and, for the methods that report a spread (all but MAP), every column's sd lies within
//! [`SD_TOLERANCE`] (relative) of the NUTS sd. A run that is not accurate must have printed a
//! warning (it is then in `summary.json`'s `warnings`): the bar is zero silent failures. The
//! NUTS references themselves must have mixed (R-hat below 1.01, bulk ESS above 4,000). The
//! 44 runs take a few seconds in a release build.
#![allow(clippy::disallowed_methods)] // The test reads the corpus and the files bdlc writes.

mod infer_support;

use infer_support::{infer, read_json, repository, scratch};

/// A mean within this many posterior sds of the NUTS mean is accurate.
const TOLERANCE_SD: f64 = 0.5;

/// The relative error of an sd that is accurate: a spread off by the fraction r moves the 5% and
/// 95% quantiles of a normal by 1.645 r posterior sds, and allowing them the mean's half sd gives
/// r = 0.5 / 1.645 ≈ 0.30. The Monte Carlo error of the sds compared is far smaller: about
/// 1/√(2 · 1000) ≈ 2.2% for 1,000 draws of the fitted approximation and under 1.2% for the
/// references (bulk ESS above 4,000).
const SD_TOLERANCE: f64 = 0.5 / 1.644_853_626_951_472_2;

/// The methods of the corpus check, with their arguments and whether they report a spread.
const METHODS: &[(&str, &[&str], bool)] = &[
    ("svi", &["--method", "svi"], true),
    ("map", &["--method", "map"], false),
    ("pathfinder", &["--method", "pathfinder"], true),
    ("iaf", &["--method", "svi", "--guide", "iaf"], true),
];

#[test]
fn every_default_run_is_accurate_or_warned() {
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
        for (method, args, has_spread) in METHODS {
            let out = scratch("vi_corpus", &format!("{name}_{method}"));
            let model = corpus.join(format!("{name}.bdl"));
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            infer(&model, &args, &out);
            let summary = read_json(&out.join("summary.json"));
            let columns = summary["columns"].as_array().expect("columns");
            let entries = summary["summary"].as_array().expect("summary");
            let mut worst_mean = (0.0f64, String::new());
            let mut worst_sd = (0.0f64, String::new());
            for (column, entry) in columns.iter().zip(entries) {
                let column = column.as_str().expect("a column name");
                let r = &reference[column];
                let reference_sd = r["sd"].as_f64().expect("sd");
                let z = (entry["mean"].as_f64().expect("mean") - r["mean"].as_f64().expect("mean"))
                    .abs()
                    / reference_sd;
                if z > worst_mean.0 {
                    worst_mean = (z, column.to_string());
                }
                if *has_spread {
                    let relative = (entry["sd"].as_f64().expect("sd") / reference_sd - 1.0).abs();
                    if relative > worst_sd.0 {
                        worst_sd = (relative, column.to_string());
                    }
                }
            }
            let warnings = summary["warnings"].as_array().expect("warnings");
            let accurate = worst_mean.0 <= TOLERANCE_SD && worst_sd.0 <= SD_TOLERANCE;
            let verdict = if accurate {
                "accurate"
            } else if !warnings.is_empty() {
                "warned"
            } else {
                silent.push(format!(
                    "{name} {method}: mean of {} off by {:.2} sd, sd of {} off by {:.0}%",
                    worst_mean.1,
                    worst_mean.0,
                    worst_sd.1,
                    100.0 * worst_sd.0
                ));
                "SILENT FAILURE"
            };
            table.push_str(&format!(
                "{name:20} {method:10} mean {:6.2} sd ({:14}) sd {:6.0}% ({:14}) {verdict:15} {} \
                 warning(s)\n",
                worst_mean.0,
                worst_mean.1,
                100.0 * worst_sd.0,
                worst_sd.1,
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
