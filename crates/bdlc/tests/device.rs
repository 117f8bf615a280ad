//! `--device`: posterior prediction with the networks' forward passes batched on a GPU agrees
//! with the CPU path on every bundled network model, within the rounding of f32.
//!
//! Built with `--features gpu`, the tests need a Vulkan driver; `scripts/install-vulkan.sh`
//! installs Mesa's software one (llvmpipe), on which CI runs them. Without the feature, the test
//! checks that `--device gpu` is refused with a message that says why.

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
