//! Warm starts (`--init FILE`): a MAP point starts SVI at the answer, a fitted guide starts NUTS
//! (initial points and metric) and resumes its own optimisation, params keep the file's values,
//! and a file of another model, a run without `params.json` or a file that is not one is refused
//! with its own code.
#![allow(clippy::disallowed_methods)] // Tests read and write files.

mod infer_support;

use infer_support::{
    bdlc, infer_summary as infer, read_json, repository, summary_column as column,
};
use std::path::{Path, PathBuf};

/// A fresh folder for one run of this file's tests.
fn scratch(name: &str) -> PathBuf {
    infer_support::scratch("warm-start", name)
}

/// The first step from which the mean loss over 50-step blocks stays within `tolerance` of
/// `target`.
fn steps_to_reach(loss_csv: &Path, target: f64, tolerance: f64) -> usize {
    let text = std::fs::read_to_string(loss_csv).expect("loss.csv");
    let losses: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .nth(1)
                .expect("a loss")
                .parse()
                .expect("a number")
        })
        .collect();
    let blocks: Vec<f64> = losses
        .chunks(50)
        .map(|block| block.iter().sum::<f64>() / block.len() as f64)
        .collect();
    let last_far = blocks
        .iter()
        .rposition(|mean| (mean - target).abs() > tolerance);
    last_far.map_or(0, |block| (block + 1) * 50)
}

const HOUSES: &str = "models/corpus/house_prices.bdl";

#[test]
fn a_map_point_starts_svi_at_the_answer_in_fewer_steps() {
    let map = scratch("map");
    infer(HOUSES, &map, &["--method", "map"]);
    let warm_dir = scratch("svi-from-map");
    let warm = infer(
        HOUSES,
        &warm_dir,
        &["--method", "svi", "--init", &map.to_string_lossy()],
    );
    let cold_dir = scratch("svi-from-median");
    infer(HOUSES, &cold_dir, &["--method", "svi", "--init", "median"]);
    assert_eq!(warm["facts"]["init_method"], "map");
    assert_eq!(warm["facts"]["converged"], true);
    // The loss's noise sd is about 2 nats; blocks of 50 average it to about 0.3.
    let target = warm["facts"]["final_loss"].as_f64().expect("final loss");
    let warm_steps = steps_to_reach(&warm_dir.join("loss.csv"), target, 2.0);
    let cold_steps = steps_to_reach(&cold_dir.join("loss.csv"), target, 2.0);
    assert!(
        warm_steps < cold_steps && warm_steps <= 100,
        "from the MAP point the loss settles after {warm_steps} steps, from the prior median \
         after {cold_steps}"
    );
    // The answer: the NUTS reference means (4 × 10,000 draws), within half a posterior sd.
    let reference = read_json(&repository().join("models/corpus/house_prices.reference.json"));
    for name in ["alpha", "beta", "sigma"] {
        let mean = reference["columns"][name]["mean"].as_f64().expect("mean");
        let sd = reference["columns"][name]["sd"].as_f64().expect("sd");
        let found = column(&warm, name, "mean");
        assert!(
            (found - mean).abs() < 0.5 * sd,
            "{name}: {found} against the NUTS mean {mean} (sd {sd})"
        );
    }
}

#[test]
fn a_fitted_guide_starts_nuts_chains_and_metric_and_resumes_its_own_fit() {
    let svi = scratch("svi");
    let fitted = infer(HOUSES, &svi, &["--method", "svi"]);
    let params = read_json(&svi.join("params.json"));
    let loc: Vec<f64> = serde_json::from_value(params["guide"]["loc"].clone()).expect("loc");
    let scale: Vec<f64> = serde_json::from_value(params["guide"]["scale"].clone()).expect("scale");

    // Without warm-up the sampler keeps the metric it starts with: the guide's variances.
    let nuts = scratch("nuts-from-guide");
    let summary = infer(
        HOUSES,
        &nuts,
        &[
            "--method",
            "nuts",
            "--init",
            &svi.to_string_lossy(),
            "--warmup",
            "0",
            "--samples",
            "20",
            "--chains",
            "2",
        ],
    );
    assert_eq!(summary["facts"]["initial_metric"], "the guide's variances");
    let chain = std::fs::read_to_string(nuts.join("chain-1.csv")).expect("chain-1.csv");
    let mut lines = chain.lines();
    lines
        .by_ref()
        .find(|line| line.contains("Diagonal elements of inverse mass matrix"))
        .expect("the metric comment");
    let metric: Vec<f64> = lines
        .next()
        .expect("the metric")
        .trim_start_matches('#')
        .split(',')
        .map(|v| v.trim().parse().expect("a number"))
        .collect();
    for (m, s) in metric.iter().zip(&scale) {
        assert!(
            (m - s * s).abs() <= 1e-12 * (s * s),
            "metric {m}, guide variance {}",
            s * s
        );
    }
    // The first draw is one transition from a draw of the guide: within 6 guide sds of its
    // location in every unconstrained coordinate (the constrained sigma is exp of its
    // coordinate), where a start uniform in (−2, 2) would put alpha 40 sds away.
    let first: Vec<f64> = chain
        .lines()
        .find(|line| !line.starts_with('#') && !line.starts_with("lp__"))
        .expect("a draw")
        .split(',')
        .skip(7)
        .map(|v| v.parse().expect("a number"))
        .collect();
    let unconstrained = [first[0], first[1], first[2].ln()];
    for i in 0..3 {
        assert!(
            (unconstrained[i] - loc[i]).abs() < 6.0 * scale[i],
            "coordinate {i}: first draw {} against the guide's {} ± {}",
            unconstrained[i],
            loc[i],
            scale[i]
        );
    }

    // Resuming the guide continues from where it stopped: the same final loss within the
    // loss's noise (its sd is about 2 nats; the final loss averages 100 steps).
    let resumed = infer(
        HOUSES,
        &scratch("svi-resumed"),
        &["--method", "svi", "--init", &svi.to_string_lossy()],
    );
    assert_eq!(resumed["facts"]["resumed"], true);
    let before = fitted["facts"]["final_loss"].as_f64().expect("final loss");
    let after = resumed["facts"]["final_loss"].as_f64().expect("final loss");
    assert!((before - after).abs() < 1.0, "{before} then {after}");
}

#[test]
fn params_take_their_values_from_the_file() {
    let dir = scratch("params");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let model = dir.join("empirical_bayes.bdl");
    // y = 2 observed with mu ~ Normal(0, s): the marginal likelihood is Normal(0, √(s² + 1)),
    // maximised at s² = 3, which SVI learns for the param s.
    std::fs::write(
        &model,
        "model {\n    let s = param(\"s\", 1.0, positive)\n    let mu = sample(\"mu\", \
         Normal(0, s))\n    observe(\"y\", Normal(mu, 1), 2.0)\n}\n",
    )
    .expect("model written");
    let model_text = model.to_string_lossy().into_owned();
    let svi = dir.join("svi");
    let fitted = infer(&model_text, &svi, &["--method", "svi", "--particles", "8"]);
    let learned = column(&fitted, "s", "mean");
    assert!((learned - 1.0).abs() > 0.2, "s stayed at {learned}");
    let nuts = infer(
        &model_text,
        &dir.join("nuts"),
        &[
            "--method",
            "nuts",
            "--init",
            &svi.to_string_lossy(),
            "--samples",
            "50",
            "--warmup",
            "50",
        ],
    );
    let used = column(&nuts, "s", "mean");
    assert!(
        (used - learned).abs() < 1e-9,
        "NUTS ran with s = {used}, the file has {learned}"
    );
    let plain = infer(
        &model_text,
        &dir.join("nuts-plain"),
        &["--method", "nuts", "--samples", "50", "--warmup", "50"],
    );
    assert!((column(&plain, "s", "mean") - 1.0).abs() < 1e-9);
}

/// Runs a command expected to fail and returns its stderr.
fn refused(args: &[&str], code: &str) -> String {
    let output = bdlc(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("error[{code}]")),
        "{args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_file_of_another_model_or_no_file_is_refused_with_its_code() {
    let svi = scratch("svi-for-mismatch");
    infer(HOUSES, &svi, &["--method", "svi", "--steps", "400"]);
    let svi_text = svi.to_string_lossy().into_owned();
    let stderr = refused(
        &["infer", "models/corpus/heights.bdl", "--init", &svi_text],
        "E0952",
    );
    assert!(stderr.contains("is not in the file"), "{stderr}");
    let stderr = refused(
        &[
            "infer",
            "models/corpus/heights.bdl",
            "--method",
            "nuts",
            "--init",
            &svi_text,
        ],
        "E0952",
    );
    assert!(stderr.contains("another model"), "{stderr}");

    let empty = scratch("empty-run");
    std::fs::create_dir_all(&empty).expect("scratch directory");
    let stderr = refused(
        &["infer", HOUSES, "--init", &empty.to_string_lossy()],
        "E0950",
    );
    assert!(stderr.contains("no `params.json`"), "{stderr}");

    let not_params = empty.join("other.json");
    std::fs::write(&not_params, "{\"method\": \"svi\"}\n").expect("file written");
    let stderr = refused(
        &["infer", HOUSES, "--init", &not_params.to_string_lossy()],
        "E0951",
    );
    assert!(stderr.contains("other.json:1:"), "{stderr}");

    let stderr = refused(
        &["infer", HOUSES, "--method", "nuts", "--init", "median"],
        "E0906",
    );
    assert!(stderr.contains("params.json"), "{stderr}");
}
