//! Defects a hostile user finds, each fixed and kept fixed: a valid model that is invalid at the
//! origin, files that never end (devices, named pipes, directories), counts that would exhaust
//! memory, and runs that did not finish read back as if they had.
#![allow(clippy::disallowed_methods)] // Tests read and write files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bdlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .env_remove("BDLC_MAX_MEMORY_GB")
        .output()
        .expect("bdlc runs")
}

/// A fresh directory of this test's own under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bdlc-robustness-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `z` near 5 makes `Exponential(z - 0.5)` valid; at the origin of unconstrained space it is not.
const SHIFTED: &str = "model {\n    let z = sample(\"z\", Normal(5, 0.1))\n    let y = sample(\"y\", Exponential(z - 0.5))\n}\n";

#[test]
fn a_model_invalid_at_the_origin_runs_with_every_method() {
    let dir = scratch("shifted");
    let model = dir.join("shifted.bdl");
    std::fs::write(&model, SHIFTED).expect("the model is written");
    let model = model.to_str().expect("a UTF-8 path");
    let runs: [&[&str]; 5] = [
        &[
            "--method",
            "nuts",
            "--chains",
            "2",
            "--warmup",
            "200",
            "--samples",
            "200",
        ],
        &[
            "--method",
            "hmc",
            "--chains",
            "1",
            "--warmup",
            "200",
            "--samples",
            "200",
        ],
        &["--method", "svi", "--steps", "300", "--samples", "100"],
        &["--method", "map"],
        &["--method", "prior", "--samples", "100"],
    ];
    for flags in runs {
        let mut args = vec!["infer", model, "--quiet", "--seed", "3"];
        args.extend_from_slice(flags);
        let output = bdlc(&args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{flags:?} fails:\n{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn files_that_are_not_regular_are_refused_without_reading_them() {
    let dir = scratch("special");
    let fifo = dir.join("pipe.bdl");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let fifo = fifo.to_str().expect("a UTF-8 path").to_string();
    let directory = dir.to_str().expect("a UTF-8 path").to_string();
    let cases: [(Vec<&str>, &str); 6] = [
        (vec!["check", "/dev/zero"], "a device"),
        (vec!["check", &fifo], "a named pipe (FIFO)"),
        (vec!["infer", "/dev/zero"], "a device"),
        (vec!["infer", &directory], "a directory"),
        (vec!["infer", &fifo], "a named pipe (FIFO)"),
        (
            vec!["infer", "models/eight_schools.bdl", "--data", "/dev/zero"],
            "a device",
        ),
    ];
    for (args, kind) in cases {
        let started = Instant::now();
        let output = bdlc(&args);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{args:?} took {:?}",
            started.elapsed()
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("E0980") && stderr.contains(&format!("is {kind}, not a regular file")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_model_file_far_above_the_source_limit_is_refused_before_it_is_read() {
    let dir = scratch("large");
    let path = dir.join("large.bdl");
    let file = std::fs::File::create(&path).expect("the file is created");
    file.set_len(65 << 20).expect("a sparse 65 MiB file");
    let output = bdlc(&["infer", path.to_str().expect("a UTF-8 path")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("E0981") && stderr.contains("68157440 bytes; the limit is 67108864 bytes"),
        "{stderr}"
    );
}

#[test]
fn counts_that_would_exhaust_memory_are_refused_with_the_estimate() {
    let cases: [&[&str]; 4] = [
        &["--method", "nuts", "--chains", "100000000"],
        &["--method", "nuts", "--samples", "10000000000"],
        &["--method", "svi", "--particles", "1000000000"],
        &["--method", "ensemble", "--members", "1000000000"],
    ];
    for flags in cases {
        let mut args = vec!["infer", "models/eight_schools.bdl"];
        args.extend_from_slice(flags);
        let started = Instant::now();
        let output = bdlc(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("E0983")
                && stderr.contains("GiB of memory")
                && stderr.contains("the limit is 16.0 GiB"),
            "{flags:?}: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn a_run_that_did_not_finish_is_refused_by_its_readers() {
    let dir = scratch("incomplete");
    let out = dir.join("run");
    let out_text = out.to_str().expect("a UTF-8 path");
    let output = bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--quiet",
        "--chains",
        "1",
        "--warmup",
        "100",
        "--samples",
        "100",
        "--out",
        out_text,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("run.json is JSON");
    assert_eq!(record["complete"], serde_json::json!(true));
    assert_eq!(record["interrupted"], serde_json::json!(false));
    let summary = bdlc(&["summary", out_text]);
    assert_eq!(summary.status.code(), Some(0), "{}", text(&summary.stderr));

    // A run killed before its end leaves the record it started with.
    std::fs::write(out.join("run.json"), "{\"complete\": false}\n").expect("run.json");
    let readers: [Vec<&str>; 3] = [
        vec!["summary", out_text],
        vec!["plot", out_text],
        vec![
            "predict",
            "models/eight_schools.bdl",
            "--posterior",
            out_text,
            "--out",
            "/dev/null",
        ],
    ];
    for args in readers {
        let output = bdlc(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("E0982") && stderr.contains("holds an incomplete run"),
            "{args:?}: {stderr}"
        );
    }
    // A new run into the same directory needs `--force`.
    let again = bdlc(&["infer", "models/eight_schools.bdl", "--out", out_text]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("E0904"));
}

#[test]
fn a_failed_run_leaves_a_record_that_says_so() {
    let dir = scratch("failed");
    let model = dir.join("negative.bdl");
    // Half of the prior's draws of `z` give `Exponential` a negative rate: the run fails.
    std::fs::write(
        &model,
        "model {\n    let z = sample(\"z\", Normal(0, 1))\n    let y = sample(\"y\", Exponential(z))\n}\n",
    )
    .expect("the model is written");
    let out = dir.join("run");
    let out_text = out.to_str().expect("a UTF-8 path");
    let output = bdlc(&[
        "infer",
        model.to_str().expect("a UTF-8 path"),
        "--method",
        "prior",
        "--quiet",
        "--out",
        out_text,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let summary = bdlc(&["summary", out_text]);
    let stderr = text(&summary.stderr);
    assert_eq!(summary.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("E0982"), "{stderr}");
}

#[test]
fn sizes_that_overflow_or_exceed_the_limit_are_named() {
    let dir = scratch("sizes");
    let cases = [
        (
            "let a = zeros([4294967296, 4294967296])",
            "`zeros` would have shape [4294967296, 4294967296]",
        ),
        (
            "let a = ones([3000000000])",
            "`ones` would have shape [3000000000]",
        ),
        (
            "let a = eye(4294967296)",
            "`eye` would have shape [4294967296, 4294967296]",
        ),
        (
            "plate(\"p\", 3000000000) {\n        let u = 1\n    }",
            "plate `p` would have shape [3000000000]",
        ),
    ];
    for (index, (statement, expected)) in cases.iter().enumerate() {
        let model = dir.join(format!("size{index}.bdl"));
        std::fs::write(
            &model,
            format!("model {{\n    {statement}\n    let z = sample(\"z\", Normal(0, 1))\n}}\n"),
        )
        .expect("the model is written");
        let output = bdlc(&[
            "infer",
            model.to_str().expect("a UTF-8 path"),
            "--method",
            "prior",
        ]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{statement}: {stderr}");
        assert!(
            stderr.contains("E0600") && stderr.contains(expected) && stderr.contains(":2:"),
            "{statement}: {stderr}"
        );
    }
}

/// Runs the REPL with `script` on its stdin.
fn repl(extra: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("repl")
        .args(extra)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bdlc repl starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("the script is written");
    child.wait_with_output().expect("bdlc repl ends")
}

#[test]
fn a_piped_repl_reports_each_error_and_goes_on_unless_told_to_stop() {
    let script = "let a = 1 + * 2\n:nonsense\nlet b = 40 + 2\nb\n";
    let output = repl(&[], script);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("42"),
        "the lines after the errors ran: {stdout}"
    );
    assert!(stderr.contains("E0921"), "{stderr}");

    let output = repl(&["--stop-on-error"], script);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("42"),
        "nothing runs after the first error: {stdout}"
    );

    let output = repl(&["--stop-on-error"], "let b = 40 + 2\nb\n");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("42"));
}

#[test]
fn draws_that_are_not_finite_are_an_error_of_the_run() {
    let dir = scratch("nonfinite");
    let model = dir.join("nan.bdl");
    std::fs::write(
        &model,
        "model {\n    let z = sample(\"z\", Normal(0, 1))\n    let d = deterministic(\"d\", log(z - 100))\n}\n",
    )
    .expect("the model is written");
    let out = dir.join("run");
    let out_text = out.to_str().expect("a UTF-8 path");
    let output = bdlc(&[
        "infer",
        model.to_str().expect("a UTF-8 path"),
        "--method",
        "prior",
        "--samples",
        "50",
        "--out",
        out_text,
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("E0984")
            && stderr.contains("50 of the 50 draws of `d` are not finite")
            && stderr.contains("the first is draw 1 of chain 1"),
        "{stderr}"
    );
    let summary = bdlc(&["summary", out_text]);
    assert!(text(&summary.stderr).contains("E0982"));
}

#[test]
fn exponentially_many_function_calls_are_refused_at_the_call() {
    let dir = scratch("calls");
    let mut source = String::from("fn f0(a) {\n    return a\n}\n");
    for level in 1..40 {
        source.push_str(&format!(
            "fn f{level}(a) {{\n    return f{}(a) + f{}(a)\n}}\n",
            level - 1,
            level - 1
        ));
    }
    source.push_str("model {\n    let z = sample(\"z\", Normal(0, 1))\n    let y = f39(z)\n}\n");
    let model = dir.join("calls.bdl");
    std::fs::write(&model, source).expect("the model is written");
    let started = Instant::now();
    let output = bdlc(&[
        "infer",
        model.to_str().expect("a UTF-8 path"),
        "--method",
        "prior",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("E0601") && stderr.contains("more than 1000000 times"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
