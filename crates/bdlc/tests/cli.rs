//! The command line's contract: exit codes, the one-line message for a missing file, the
//! bundled models checking cleanly and running with their own settings, a flag that does not
//! apply to the method rejected with both named, and `--emit ast` printing source that checks
//! again.
#![allow(clippy::disallowed_methods)] // Tests read and write files.

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

fn models() -> Vec<String> {
    let mut models: Vec<String> = std::fs::read_dir(repository().join("models"))
        .expect("models folder")
        .filter_map(|entry| entry.ok())
        .map(|entry| format!("models/{}", entry.file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".bdl"))
        .collect();
    models.sort();
    models
}

#[test]
fn bundled_models_check_cleanly() {
    let models = models();
    assert!(models.len() >= 8);
    let mut args = vec!["check"];
    args.extend(models.iter().map(String::as_str));
    let output = bdlc(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "clean models print nothing: {stderr}");
}

/// The bundled models whose own settings take more than a few seconds on two cores (the shallow
/// network's 4 NUTS chains, about 25 s; its Gibbs chains, about 15 s; the Wishart-hierarchical
/// network's Gibbs chains, about a minute): they run in the slow suite.
const SLOW_MODELS: [&str; 3] = [
    "models/shallow_bnn.bdl",
    "models/shallow_gibbs.bdl",
    "models/shallow_wishart.bdl",
];

/// Runs `bdlc infer MODEL` with the model's own `infer` block and checks that it finishes and
/// writes its summary, with no error on stderr.
fn runs_with_its_own_settings(model: &str) {
    let stem = Path::new(model)
        .file_stem()
        .expect("a model file name")
        .to_string_lossy()
        .into_owned();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("own-settings")
        .join(stem);
    let out_text = out.to_string_lossy().into_owned();
    let output = bdlc(&["infer", model, "--out", &out_text, "--force", "--quiet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{model}: {stderr}");
    assert!(!stderr.contains("error"), "{model}: {stderr}");
    assert!(
        out.join("summary.json").is_file(),
        "{model}: no summary.json"
    );
}

#[test]
fn every_bundled_model_runs_with_its_own_settings() {
    for model in models() {
        if !SLOW_MODELS.contains(&model.as_str()) {
            runs_with_its_own_settings(&model);
        }
    }
}

#[test]
#[ignore = "slow statistical suite: the shallow network models at their full settings; run with --ignored"]
fn slow_the_shallow_network_models_run_with_their_own_settings() {
    for model in SLOW_MODELS {
        runs_with_its_own_settings(model);
    }
}

#[test]
fn a_missing_file_is_one_line_and_exit_code_two() {
    let output = bdlc(&["check", "models/no_such_model.bdl"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr,
        "error[E0901]: cannot read `models/no_such_model.bdl`: no such file\n"
    );
}

#[test]
fn usage_errors_exit_with_two() {
    assert_eq!(bdlc(&["check"]).status.code(), Some(2));
    assert_eq!(bdlc(&["frobnicate"]).status.code(), Some(2));
    let unknown_stage = bdlc(&["check", "--emit", "bytecode", "models/logistic.bdl"]);
    assert_eq!(unknown_stage.status.code(), Some(2));
}

#[test]
fn a_flag_that_does_not_apply_to_the_method_is_an_error_naming_both() {
    // `--lr` is an optimiser's flag; NUTS (the model's own method) does not read it.
    let output = bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--lr",
        "0.1",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[E0909]"), "{stderr}");
    assert!(
        stderr.contains("`--lr` does not apply to method `nuts`"),
        "{stderr}"
    );
    // The same holds when the method comes from the flag, and for a switch.
    let output = bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--method",
        "svi",
        "--save-warmup",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`--save-warmup` does not apply to method `svi`"),
        "{stderr}"
    );
    // A flag the method reads is accepted.
    let output = bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--method",
        "svi",
        "--steps",
        "20",
        "--samples",
        "10",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn warnings_alone_exit_with_zero() {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-warnings");
    std::fs::create_dir_all(&directory).expect("temporary folder");
    let path = directory.join("unused.bdl");
    let text = "data {\n    x: vector[N]\n    y: vector[N]\n}\n\n\
                model {\n    observe(\"y\", Normal(0, 1), y)\n}\n";
    std::fs::write(&path, text).expect("writable");
    let output = bdlc(&["check", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("W0001"), "{stderr}");
    assert!(
        stderr.contains("data `x` is declared but never used"),
        "{stderr}"
    );
}

#[test]
fn emitted_ast_checks_cleanly_again() {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-emit");
    std::fs::create_dir_all(&directory).expect("temporary folder");
    for model in models() {
        let output = bdlc(&["check", "--emit", "ast", &model]);
        assert_eq!(output.status.code(), Some(0));
        let printed = directory.join(Path::new(&model).file_name().expect("file name"));
        std::fs::write(&printed, &output.stdout).expect("writable");
        let again = bdlc(&["check", &printed.display().to_string()]);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert_eq!(again.status.code(), Some(0), "{stderr}");
    }
}

/// Output to a closed pipe (`bdlc ... | head`) ends the process quietly with the status a shell
/// gives a process ended by SIGPIPE (141), without a panic message.
#[test]
fn closed_stdout_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    for args in [
        &["check", "--emit", "ir", "models/iris_bnn.bdl"][..],
        &["check", "--emit", "ast", "models/eight_schools.bdl"][..],
    ] {
        // A pipe whose reader has already gone, as `head` leaves it once it has its lines: the
        // write end of `true`'s stdin, kept after `true` has exited.
        let mut reader = Command::new("true")
            .stdin(Stdio::piped())
            .spawn()
            .expect("true runs");
        let closed = reader.stdin.take().expect("stdin is piped");
        reader.wait().expect("true ends");
        let mut child = Command::new(env!("CARGO_BIN_EXE_bdlc"))
            .args(args)
            .current_dir(repository())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::from(closed))
            .stderr(Stdio::piped())
            .spawn()
            .expect("bdlc runs");
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr is piped")
            .read_to_string(&mut stderr)
            .expect("stderr reads");
        let status = child.wait().expect("bdlc ends");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_eq!(status.code(), Some(141), "{args:?}: {stderr}");
    }
}

/// A declared shape far too large is a located error naming the site and its size, not an
/// aborted allocation (exit 134) or a product that wraps.
#[test]
fn huge_declared_shape_is_a_clear_error() {
    let directory = std::env::temp_dir().join(format!("bdlc-huge-shape-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temporary folder");
    for (file, shape) in [
        ("large.bdl", "[100000000, 100000000]"),
        ("wraps.bdl", "[4294967296, 4294967296, 4294967296]"),
    ] {
        let model = directory.join(file);
        std::fs::write(
            &model,
            format!("model {{\n    let w = sample(\"w\", Normal(0, 1), shape = {shape})\n}}\n"),
        )
        .expect("model written");
        let output = bdlc(&[
            "infer",
            model.to_str().expect("UTF-8 path"),
            "--method",
            "map",
            "--out",
            directory.join("run").to_str().expect("UTF-8 path"),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{shape}: {stderr}");
        assert!(!stderr.contains("panicked"), "{shape}: {stderr}");
        assert!(stderr.contains("E0549"), "{shape}: {stderr}");
        assert!(stderr.contains("site `w` has shape"), "{shape}: {stderr}");
        assert!(stderr.contains("elements"), "{shape}: {stderr}");
    }
    std::fs::remove_dir_all(&directory).expect("temporary folder removed");
}

#[test]
fn a_run_states_its_facts_and_says_when_nothing_is_saved() {
    let output = bdlc(&[
        "infer",
        "models/eight_schools.bdl",
        "--chains",
        "2",
        "--warmup",
        "50",
        "--samples",
        "50",
        "--seed",
        "7",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "models/eight_schools.bdl: 8 rows, 10 parameters; nuts with 2 chains on {} \
             thread{}, seed 7; no --out, so nothing will be saved",
            rayon_threads(&stderr),
            if rayon_threads(&stderr) == "1" {
                ""
            } else {
                "s"
            }
        )
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("finished in ")
            && last.contains("nothing saved: add `--out DIR`")
            && (last.ends_with("warnings") || last.ends_with("warning")),
        "{stderr}"
    );
    // The warnings counted are those printed.
    let printed = stderr.lines().filter(|l| l.starts_with("warning")).count();
    assert!(last.contains(&format!("; {printed} warning")), "{stderr}");

    // With `--out`, the last line says where the files are; `--quiet` keeps only `wrote DIR`.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("facts-run");
    let out_text = out.display().to_string();
    let args = [
        "infer",
        "models/bayes_linreg.bdl",
        "--method",
        "svi",
        "--steps",
        "50",
        "--seed",
        "1",
        "--force",
        "--out",
        &out_text,
    ];
    let output = bdlc(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or_default()
            .contains("svi with 1 optimisation"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("writing to {out_text}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("draws and summary.json in {out_text}")),
        "{stderr}"
    );
    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    let output = bdlc(&quiet);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        format!("wrote {out_text}")
    );
    assert!(!stderr.contains("finished in"), "{stderr}");
}

/// The thread count a facts line names (`on N threads`).
fn rayon_threads(stderr: &str) -> String {
    stderr
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_string()
}

/// `--method prior` runs on every bundled model without a panic, and every row of its draws
/// has the header's number of values: an observed site in a mini-batched plate (the iris
/// Bayes-by-backprop model's `y`, `subsample = 32`) is drawn in full, 112 training rows, and its
/// columns say so.
#[test]
fn prior_draws_of_every_bundled_model_line_up_with_their_columns() {
    let scratch = std::env::temp_dir().join(format!("bdlc-prior-{}", std::process::id()));
    for model in models() {
        let out = scratch.join(Path::new(&model).file_stem().expect("a model file name"));
        let output = bdlc(&[
            "infer",
            &model,
            "--method",
            "prior",
            "--samples",
            "5",
            "--seed",
            "7",
            "--out",
            out.to_str().expect("a UTF-8 path"),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{model}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{model}: {stderr}");
        let draws = std::fs::read_to_string(out.join("draws.csv")).expect("draws.csv");
        let mut lines = draws.lines().filter(|line| !line.starts_with('#'));
        let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 5, "{model}: one row per draw");
        for row in rows {
            assert_eq!(row.split(',').count(), header.len(), "{model}: {row}");
        }
        if model.ends_with("iris_bayes_by_backprop.bdl") {
            let y = header.iter().filter(|name| name.starts_with("y.")).count();
            assert_eq!(
                y, 112,
                "the observed labels are drawn for every training row"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
