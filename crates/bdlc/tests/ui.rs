//! The diagnostics corpus: every program under `tests/ui/` is invalid, and `bdlc check` must
//! reject it with exit code 1 and a located error, never a panic. Its rendered diagnostics are
//! compared with the committed insta snapshot next to it (`NAME.snap`). Inputs too large or too
//! binary to commit (NUL bytes, invalid UTF-8, 20,000 nested parentheses, a 5 MB file) are
//! generated here, with their snapshots under `tests/ui/generated/`.
//!
//! After an intended change of wording, review and accept the new renderings with
//! `cargo insta review` (or rerun with `INSTA_UPDATE=always`), as docs/dev/testing.md says.
#![allow(clippy::disallowed_methods)] // Tests read corpus files and write generated inputs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `bdlc check NAME` in `directory` and returns the exit code and stderr.
fn check(directory: &Path, name: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("check")
        .arg(name)
        .current_dir(directory)
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

/// Compares `stderr` with the insta snapshot `NAME.snap` in `snapshots`, where `name` is the
/// model's file name.
fn assert_matches_snapshot(snapshots: &Path, name: &str, stderr: &str) {
    let snapshot = Path::new(name)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or(name);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshots);
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(snapshot, stderr));
}

/// Checks one case: returns its stderr, and a description of what is wrong with it, if
/// anything, apart from its snapshot.
fn verify(directory: &Path, name: &str) -> (String, Option<String>) {
    let (code, stderr) = check(directory, name);
    let mut problems = Vec::new();
    if code != 1 {
        problems.push(format!("exit code {code}, expected 1"));
    }
    if stderr.contains("panicked") {
        problems.push("bdlc panicked".to_string());
    }
    if !stderr.contains(&format!("─[ {name}:")) {
        problems.push("no located diagnostic (file:line:col)".to_string());
    }
    let problems = (!problems.is_empty())
        .then(|| format!("{name}: {}; stderr was:\n{stderr}", problems.join("; ")));
    (stderr, problems)
}

#[test]
fn every_invalid_program_is_rejected_with_its_snapshot() {
    let root = repository();
    let mut names: Vec<String> = std::fs::read_dir(root.join("tests/ui"))
        .expect("tests/ui exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bdl"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "the corpus has {} programs", names.len());
    let mut failures = Vec::new();
    let mut renderings = Vec::new();
    for name in &names {
        let (stderr, problems) = verify(&root, &format!("tests/ui/{name}"));
        failures.extend(problems);
        renderings.push((name, stderr));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    for (name, stderr) in renderings {
        assert_matches_snapshot(&root.join("tests/ui"), name, &stderr);
    }
}

/// The generated inputs, by file name.
fn generated_cases() -> Vec<(&'static str, Vec<u8>)> {
    let header = "data {\n    x: vector[N]\n    y: vector[N]\n}\n\n";
    let mut nul = format!("{header}model {{\n    let mu = sample(\"mu\", Normal(0, 1))\n");
    nul.push_str("    observe(\"y\", Normal(mu + x, 1), y)\0\n}\n");
    let mut invalid_utf8 = format!("{header}model {{\n    let mu = sample(\"m").into_bytes();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8
        .extend_from_slice(b"u\", Normal(0, 1))\n    observe(\"y\", Normal(mu + x, 1), y)\n}\n");
    let depth = 20_000;
    let nested = format!(
        "{header}model {{\n    let a = {}1{}\n    observe(\"y\", Normal(a + x, 1), y)\n}}\n",
        "(\n".repeat(depth),
        ")".repeat(depth)
    );
    let mut big = format!("{header}model {{\n    observe(\"y\", Normal(x, 1), y)\n");
    while big.len() < 5 * 1024 * 1024 {
        big.push_str("    let unused_value = 1.0\n");
    }
    big.push_str("}\n");
    vec![
        ("nul_byte.bdl", nul.into_bytes()),
        ("invalid_utf8.bdl", invalid_utf8),
        ("nested_parentheses.bdl", nested.into_bytes()),
        ("five_megabytes.bdl", big.into_bytes()),
    ]
}

#[test]
fn generated_inputs_are_rejected_with_their_snapshots() {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-generated");
    std::fs::create_dir_all(&directory).expect("temporary folder");
    let snapshots = repository().join("tests/ui/generated");
    let mut failures = Vec::new();
    let mut renderings = Vec::new();
    for (name, bytes) in generated_cases() {
        std::fs::write(directory.join(name), bytes).expect("writable temporary file");
        let (stderr, problems) = verify(&directory, name);
        failures.extend(problems);
        renderings.push((name, stderr));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    for (name, stderr) in renderings {
        assert_matches_snapshot(&snapshots, name, &stderr);
    }
}

#[test]
fn twenty_thousand_parentheses_on_one_line_are_too_deep_not_a_crash() {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-one-line");
    std::fs::create_dir_all(&directory).expect("temporary folder");
    let depth = 20_000;
    let text = format!(
        "model {{\n    let a = {}1{}\n}}\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    std::fs::write(directory.join("one_line.bdl"), text).expect("writable temporary file");
    let (code, stderr) = check(&directory, "one_line.bdl");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("E0006"), "{stderr}");
    assert!(stderr.contains("─[ one_line.bdl:2:"), "{stderr}");
}
