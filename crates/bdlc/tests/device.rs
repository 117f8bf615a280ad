//! `--device`: posterior prediction with the networks' forward passes batched on a GPU agrees
//! with the CPU path on every bundled network model, within the rounding of f32.
//!
//! Built with `--features gpu`, the tests need a Vulkan driver; `scripts/install-vulkan.sh`
//! installs Mesa's software one (llvmpipe), on which CI runs them. Without the feature, the test
//! checks that `--device gpu` is refused with a message that says why.

#![allow(clippy::disallowed_methods)] // Reads the files the runs wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bdlc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(not(feature = "gpu"))]
#[test]
fn device_gpu_without_the_feature_is_a_usage_error_that_says_why() {
    let out = tempdir("nofeature");
    let status = bdlc()
        .current_dir(repo())
        .args([
            "infer",
            "models/bayes_linreg.bdl",
            "--method",
            "svi",
            "--steps",
            "20",
        ])
        .args(["--quiet", "--force", "--out"])
        .arg(&out)
        .output()
        .expect("bdlc runs");
    assert!(status.status.success(), "{status:?}");
    let predicted = bdlc()
        .current_dir(repo())
        .args([
            "predict",
            "models/bayes_linreg.bdl",
            "--device",
            "gpu",
            "--posterior",
        ])
        .arg(&out)
        .arg("--out")
        .arg(out.join("p.csv"))
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&predicted.stderr);
    assert_eq!(predicted.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("E0940"), "{stderr}");
    assert!(stderr.contains("without the `gpu` feature"), "{stderr}");
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bdlc-device-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The summary CSV of `bdlc predict`: `site,index,mean,sd,q5,q50,q95[,p0,…]` rows.
#[cfg(feature = "gpu")]
fn read_summary(path: &Path) -> Vec<(String, Vec<f64>)> {
    let text = std::fs::read_to_string(path).expect("summary written");
    text.lines()
        .skip(1)
        .map(|line| {
            let mut fields = line.split(',');
            let site = format!(
                "{}[{}]",
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default()
            );
            let values = fields
                .map(|f| f.parse::<f64>().unwrap_or(f64::NAN))
                .collect();
            (site, values)
        })
        .collect()
}

/// Runs a short fit, then `predict` on the CPU and on the GPU, and compares the summaries.
///
/// The tolerance is the f32 rounding bound of the forward pass, not a value tuned to pass: a dot
/// product of length K in f32 is within K·u·Σ|wᵢxᵢ| of the exact one (u = 2⁻²⁴), the inputs and
/// weights are rounded once more each, and the errors of successive layers add. With K summed
/// over the layers (`widths`), the predictive values move by at most 4·(ΣK)·u times their
/// magnitude; the predictive draws use the same random numbers on both paths, so every mean,
/// sd and quantile moves by no more than that. A discrete draw flips only when its uniform falls
/// within that distance of a class boundary: with the draws used here fewer than one flip is
/// expected in the whole table, so a class share may differ by at most 2/S.
#[cfg(feature = "gpu")]
fn agrees(model: &str, fit: &[&str], data: Option<&str>, widths: usize) {
    let out = tempdir(model.trim_start_matches("models/").trim_end_matches(".bdl"));
    let fitted = bdlc()
        .current_dir(repo())
        .args(["infer", model])
        .args(fit)
        .args(["--quiet", "--force", "--out"])
        .arg(&out)
        .output()
        .expect("bdlc runs");
    assert!(
        fitted.status.success(),
        "{model}: {}",
        String::from_utf8_lossy(&fitted.stderr)
    );
    let draws = 100;
    let mut summaries = Vec::new();
    for device in ["cpu", "gpu"] {
        let path = out.join(format!("{device}.csv"));
        let mut command = bdlc();
        command
            .current_dir(repo())
            .args(["predict", model, "--device", device, "--draws", "100"])
            .arg("--posterior")
            .arg(&out)
            .arg("--out")
            .arg(&path);
        if let Some(data) = data {
            command.args(["--data", data]);
        }
        let predicted = command.output().expect("bdlc runs");
        let stderr = String::from_utf8_lossy(&predicted.stderr).to_string();
        assert!(predicted.status.success(), "{model} on {device}: {stderr}");
        if device == "gpu" {
            assert!(
                stderr.contains("per draw batched on gpu"),
                "{model}: the networks did not run on the device: {stderr}"
            );
            assert!(
                !stderr.contains(" 0 network calls"),
                "{model}: no network call was batched: {stderr}"
            );
        }
        summaries.push(read_summary(&path));
    }
    let unit = f64::from(f32::EPSILON) / 2.0;
    let relative = 4.0 * widths as f64 * unit;
    let (cpu, gpu) = (&summaries[0], &summaries[1]);
    assert_eq!(cpu.len(), gpu.len(), "{model}: different rows");
    assert!(!cpu.is_empty(), "{model}: no predictive rows");
    let magnitude = cpu
        .iter()
        .flat_map(|(_, values)| values.iter().take(5))
        .fold(1.0_f64, |m, v| m.max(v.abs()));
    for ((site, a), (other, b)) in cpu.iter().zip(gpu) {
        assert_eq!(site, other);
        for (column, (x, y)) in a.iter().zip(b).enumerate() {
            let tolerance = if column < 5 {
                relative * magnitude
            } else {
                2.0 / draws as f64
            };
            assert!(
                (x - y).abs() <= tolerance,
                "{model} {site} column {column}: cpu {x} against gpu {y} (tolerance {tolerance:e})"
            );
        }
    }
}

#[cfg(feature = "gpu")]
#[test]
fn sine_network_predicts_the_same_on_the_device() {
    let fit = ["--method", "svi", "--steps", "200"];
    agrees(
        "models/sine_bnn.bdl",
        &fit,
        Some("models/data/sine_test.csv"),
        101,
    );
}

#[cfg(feature = "gpu")]
#[test]
fn iris_network_predicts_the_same_on_the_device() {
    let fit = ["--method", "svi", "--steps", "200"];
    agrees(
        "models/iris_bnn.bdl",
        &fit,
        Some("models/data/iris_test.csv"),
        104,
    );
}

#[cfg(feature = "gpu")]
#[test]
fn bayes_by_backprop_predicts_the_same_on_the_device() {
    let fit = ["--steps", "200"];
    agrees("models/bayes_by_backprop.bdl", &fit, None, 101);
}

#[cfg(feature = "gpu")]
#[test]
fn iris_bayes_by_backprop_predicts_the_same_on_the_device() {
    let fit = ["--steps", "200"];
    agrees("models/iris_bayes_by_backprop.bdl", &fit, None, 104);
}

#[cfg(feature = "gpu")]
#[test]
fn ensemble_members_predict_the_same_on_the_device() {
    let fit = ["--members", "2", "--steps", "200"];
    agrees("models/sine_ensemble.bdl", &fit, None, 101);
}

#[cfg(feature = "gpu")]
#[test]
fn sgld_draws_predict_the_same_on_the_device() {
    let fit = ["--samples", "100", "--warmup", "100"];
    agrees("models/sine_sgld.bdl", &fit, None, 101);
}

/// The facts a run recorded in its `summary.json`.
fn summary_facts(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json written");
    let summary: serde_json::Value = serde_json::from_str(&text).expect("summary.json is JSON");
    summary["facts"].clone()
}

#[cfg(not(feature = "gpu"))]
#[test]
fn infer_device_gpu_without_the_feature_fails_before_the_run() {
    let out = tempdir("infer-nofeature");
    let run = bdlc()
        .current_dir(repo())
        .args(["infer", "models/bayes_linreg.bdl", "--method", "svi"])
        .args(["--steps", "20", "--device", "gpu", "--force", "--out"])
        .arg(&out)
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("E0940"), "{stderr}");
    assert!(stderr.contains("without the `gpu` feature"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The refusal comes before the run: no summary was written.
    assert!(!out.join("summary.json").exists());
}

#[cfg(not(feature = "gpu"))]
#[test]
fn infer_device_auto_without_the_feature_runs_on_the_cpu_and_says_so() {
    let out = tempdir("infer-auto");
    let run = bdlc()
        .current_dir(repo())
        .args(["infer", "models/bayes_linreg.bdl", "--method", "svi"])
        .args(["--steps", "20", "--device", "auto", "--force", "--out"])
        .arg(&out)
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("found no hardware GPU"), "{stderr}");
    let device = &summary_facts(&out)["device"];
    assert_eq!(device["requested"], "auto", "{device}");
    assert!(device["adapter"].is_null(), "{device}");
    assert_eq!(device["training"], "cpu", "{device}");
}

#[cfg(not(feature = "gpu"))]
#[test]
fn repl_infer_device_gpu_without_the_feature_is_refused_and_the_session_goes_on() {
    use std::io::Write;
    let mut child = bdlc()
        .current_dir(repo())
        .arg("repl")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bdlc repl starts");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(
            b":load models/bayes_linreg.bdl\n:infer svi --steps 20 --device gpu\n\
              :infer svi --steps 20 --device cpu --quiet\n:quit\n",
        )
        .expect("input written");
    let output = child.wait_with_output().expect("bdlc repl ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("E0940"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The second `:infer`, on the CPU, ran: its summary table names the sites.
    assert!(stdout.contains("mean") && stdout.contains('w'), "{stdout}");
}

#[cfg(feature = "gpu")]
#[test]
fn infer_device_gpu_records_the_adapter_in_the_summary() {
    let out = tempdir("infer-gpu");
    let run = bdlc()
        .current_dir(repo())
        .args(["infer", "models/bayes_linreg.bdl", "--method", "svi"])
        .args(["--steps", "20", "--device", "gpu", "--force", "--out"])
        .arg(&out)
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let device = &summary_facts(&out)["device"];
    assert_eq!(device["requested"], "gpu", "{device}");
    let adapter = device["adapter"].as_str().unwrap_or_default();
    assert!(adapter.starts_with("gpu (f32)"), "{device}");
}
