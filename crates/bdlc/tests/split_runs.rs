//! Runs split with `--chain-offset` and joined with `bdlc merge` equal the single run: the chain
//! files (or the ensemble's `draws.csv`) byte for byte, and every summary statistic and warning
//! in `summary.json`; parts that do not belong together are refused with their own codes.
#![allow(clippy::disallowed_methods)] // Tests read and write files.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("split-runs")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn bdlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs")
}

fn succeeds(args: &[&str]) {
    let output = bdlc(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "bdlc {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn fails_with(args: &[&str], code: &str) {
    let output = bdlc(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "bdlc {args:?}: {stderr}");
    assert!(stderr.contains(&format!("error[{code}]")), "{stderr}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&read(&dir.join("summary.json"))).expect("summary.json is JSON")
}

/// The parts of `summary.json` that do not depend on wall-clock time or on where the runs were.
fn comparable(summary: &Value) -> Value {
    let mut facts = summary["facts"].clone();
    if let Some(facts) = facts.as_object_mut() {
        facts.retain(|key, _| !key.contains("seconds") && key != "merged_from");
    }
    serde_json::json!({
        "method": summary["method"],
        "columns": summary["columns"],
        "summary": summary["summary"],
        "warnings": summary["warnings"],
        "facts": facts,
    })
}

#[test]
fn nuts_chains_split_over_three_runs_merge_into_the_single_run() {
    let dir = scratch("nuts");
    let path = |name: &str| dir.join(name).display().to_string();
    let common = [
        "infer",
        "models/eight_schools.bdl",
        "--seed",
        "11",
        "--warmup",
        "150",
        "--samples",
        "100",
        "--quiet",
    ];
    let run = |chains: &str, offset: Option<&str>, out: &str| {
        let mut args = common.to_vec();
        args.extend(["--chains", chains, "--out", out]);
        if let Some(offset) = offset {
            args.extend(["--chain-offset", offset]);
        }
        succeeds(&args);
    };
    let (whole, a, b, c) = (path("whole"), path("a"), path("b"), path("c"));
    run("5", None, &whole);
    run("2", None, &a);
    run("1", Some("2"), &b);
    run("2", Some("3"), &c);
    // A part holds its chains under their ids in the whole run.
    assert!(dir.join("b/chain-3.csv").is_file() && !dir.join("b/chain-1.csv").exists());
    assert_eq!(
        read(&dir.join("b/chain-3.csv")),
        read(&dir.join("whole/chain-3.csv"))
    );

    let merged = path("merged");
    // The parts may be given in any order.
    succeeds(&["merge", &c, &a, &b, "--out", &merged]);
    for chain in 1..=5 {
        let name = format!("chain-{chain}.csv");
        assert_eq!(
            read(&dir.join("merged").join(&name)),
            read(&dir.join("whole").join(&name)),
            "{name} differs"
        );
    }
    assert!(!dir.join("merged/chain-6.csv").exists());
    // The pointwise log-likelihood travels with its chains, renumbered the same way.
    for chain in 1..=5 {
        let name = format!("log_lik-{chain}.csv");
        assert_eq!(
            read(&dir.join("merged").join(&name)),
            read(&dir.join("whole").join(&name)),
            "{name} differs"
        );
    }
    assert_eq!(
        comparable(&summary(&dir.join("merged"))),
        comparable(&summary(&dir.join("whole")))
    );
    // The joined run reads like any other.
    succeeds(&["summary", &merged]);

    // Parts that overlap, or do not belong to one run, are refused.
    fails_with(&["merge", &a, &a, "--out", &path("twice")], "E0933");
    let other_seed = path("other-seed");
    succeeds(&[
        "infer",
        "models/eight_schools.bdl",
        "--seed",
        "12",
        "--warmup",
        "150",
        "--samples",
        "100",
        "--chains",
        "1",
        "--chain-offset",
        "2",
        "--quiet",
        "--out",
        &other_seed,
    ]);
    fails_with(
        &["merge", &a, &other_seed, "--out", &path("mixed")],
        "E0931",
    );
    fails_with(&["merge", &a, &b, "--out", &a], "E0935");
    fails_with(&["merge", &path("nowhere"), "--out", &path("x")], "E0910");
}

#[test]
fn ensemble_members_split_over_two_runs_merge_into_the_single_run() {
    let dir = scratch("ensemble");
    let path = |name: &str| dir.join(name).display().to_string();
    let run = |members: &str, offset: &str, out: &str| {
        succeeds(&[
            "infer",
            "models/sine_ensemble.bdl",
            "--seed",
            "3",
            "--steps",
            "60",
            "--members",
            members,
            "--chain-offset",
            offset,
            "--quiet",
            "--out",
            out,
        ]);
    };
    let (whole, a, b) = (path("whole"), path("a"), path("b"));
    run("3", "0", &whole);
    run("1", "0", &a);
    run("2", "1", &b);
    let merged = path("merged");
    succeeds(&["merge", &a, &b, "--out", &merged]);
    assert_eq!(
        read(&dir.join("merged/draws.csv")),
        read(&dir.join("whole/draws.csv"))
    );
    assert_eq!(
        comparable(&summary(&dir.join("merged"))),
        comparable(&summary(&dir.join("whole")))
    );
}

#[test]
fn a_method_that_cannot_be_split_is_named() {
    let dir = scratch("svi");
    let out = dir.join("svi").display().to_string();
    succeeds(&[
        "infer",
        "models/bayes_linreg.bdl",
        "--method",
        "svi",
        "--steps",
        "50",
        "--quiet",
        "--out",
        &out,
    ]);
    fails_with(
        &["merge", &out, "--out", &dir.join("m").display().to_string()],
        "E0932",
    );
    let output = bdlc(&[
        "infer",
        "models/bayes_linreg.bdl",
        "--method",
        "svi",
        "--chain-offset",
        "2",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("E0909"));
}
