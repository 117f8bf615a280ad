//! Ctrl-C during `bdlc infer`, sent as SIGINT to a child process: the first one stops the run
//! after the current draw or step, keeps complete files and a summary of the draws so far, marks
//! the run interrupted in `run.json` and exits with status 130; a second one ends the process at
//! once, and what it leaves holds only complete rows and no file with a header and no rows (which
//! CmdStan readers such as ArviZ's `from_cmdstan` refuse). Every CSV row is parsed. An SVI or
//! MAP run stopped by Ctrl-C or killed continues with `--resume` to the uninterrupted run's files.
#![cfg(unix)]
#![allow(clippy::disallowed_methods)] // Tests read the files of runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh directory of this test's own under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bdlc-interruption-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Starts `bdlc infer ARGS --out OUT --quiet` as a child process.
fn start(args: &[&str], out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("infer")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bdlc starts")
}

/// Sends SIGINT to the child, as Ctrl-C in a terminal does.
fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -INT failed");
}

/// Waits until `ready` says the run has reached the moment to interrupt (at most a minute).
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `chain-N.csv` files of a run.
fn chain_files(out: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with("chain-") && name.ends_with(".csv")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Whether some chain file already holds a row of draws.
fn has_a_row(out: &Path) -> bool {
    chain_files(out).iter().any(|path| {
        std::fs::read_to_string(path)
            .map(|text| text.lines().filter(|l| !l.starts_with('#')).count() >= 2)
            .unwrap_or(false)
    })
}

/// Parses a CmdStan-layout CSV file: its header, then rows of as many numbers; returns the number
/// of rows. Panics (naming the file and line) on a ragged row, a number that does not parse, or a
/// file with a header and no rows.
fn parse_draws(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("the file reads");
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'));
    let (_, header) = lines
        .next()
        .unwrap_or_else(|| panic!("{path:?} has no header"));
    let n_columns = header.split(',').count();
    let mut rows = 0;
    for (number, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(
            fields.len(),
            n_columns,
            "{path:?} line {}: a ragged row",
            number + 1
        );
        for field in fields {
            assert!(
                field.parse::<f64>().is_ok(),
                "{path:?} line {}: `{field}` is not a number",
                number + 1
            );
        }
        rows += 1;
    }
    assert!(rows > 0, "{path:?} has a header and no rows");
    assert!(text.ends_with('\n'), "{path:?} ends inside a line");
    rows
}

/// The run's completion record.
fn record(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("run.json")).expect("run.json");
    serde_json::from_str(&text).expect("run.json is JSON")
}

/// Checks a run stopped by one SIGINT: exit 130, a complete run marked interrupted, chain files
/// of equal length, a summary with every column, and `bdlc summary` reading it with a warning.
fn check_interrupted_run(child: Child, out: &Path, markov: bool) {
    let output = child.wait_with_output().expect("bdlc ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let record = record(out);
    assert_eq!(record["complete"], true);
    assert_eq!(record["interrupted"], true);
    let chains = chain_files(out);
    if markov {
        assert!(!chains.is_empty(), "no chain file");
        let lengths: Vec<usize> = chains.iter().map(|path| parse_draws(path)).collect();
        assert!(
            lengths.windows(2).all(|pair| pair[0] == pair[1]),
            "chains of unequal length: {lengths:?}"
        );
    }
    if out.join("draws.csv").exists() {
        parse_draws(&out.join("draws.csv"));
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json is JSON");
    assert_eq!(summary["interrupted"], true);
    let n_columns = summary["columns"].as_array().map_or(0, Vec::len);
    let summarised = summary["summary"].as_array().map_or(0, Vec::len);
    assert!(
        n_columns > 0 && summarised == n_columns,
        "{summarised} of {n_columns} columns summarised"
    );
    let reread = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("summary")
        .arg(out)
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc summary runs");
    let reread_stderr = String::from_utf8_lossy(&reread.stderr);
    assert!(reread.status.success(), "{reread_stderr}");
    assert!(
        reread_stderr.contains("holds an interrupted run"),
        "{reread_stderr}"
    );
}

#[test]
fn a_first_sigint_keeps_complete_chain_files_and_a_summary_for_every_markov_method() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "nuts",
            &[
                "models/logistic.bdl",
                "--warmup",
                "50",
                "--samples",
                "1000000",
            ],
        ),
        (
            "hmc",
            &[
                "models/logistic.bdl",
                "--method",
                "hmc",
                "--warmup",
                "50",
                "--samples",
                "1000000",
            ],
        ),
        (
            "sgld",
            &[
                "models/sine_sgld.bdl",
                "--chains",
                "2",
                "--samples",
                "1000000",
            ],
        ),
    ];
    for (name, args) in cases {
        let out = scratch(name);
        let child = start(args, &out);
        wait_for(&format!("{name}'s first draw"), || has_a_row(&out));
        interrupt(&child);
        check_interrupted_run(child, &out, true);
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn a_first_sigint_keeps_the_fit_so_far_for_the_optimising_methods() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "svi",
            &[
                "models/logistic.bdl",
                "--method",
                "svi",
                "--steps",
                "100000000",
            ],
        ),
        (
            "map",
            // Adam, not L-BFGS (which converges on this model in a fraction of a second).
            &[
                "models/logistic.bdl",
                "--method",
                "map",
                "--optimizer",
                "adam",
                "--steps",
                "100000000",
            ],
        ),
        (
            "ensemble",
            &[
                "models/sine_ensemble.bdl",
                "--members",
                "2",
                "--steps",
                "100000000",
            ],
        ),
    ];
    for (name, args) in cases {
        let out = scratch(name);
        let child = start(args, &out);
        // The optimisers write nothing until they stop; the run has started once its folder
        // is prepared, and a second later it is optimising.
        wait_for(&format!("{name} to start"), || {
            out.join("run.json").exists()
        });
        std::thread::sleep(Duration::from_millis(1500));
        interrupt(&child);
        check_interrupted_run(child, &out, false);
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn a_sigint_during_warm_up_keeps_nothing_and_says_so() {
    let out = scratch("warmup");
    let child = start(
        &[
            "models/logistic.bdl",
            "--warmup",
            "1000000",
            "--samples",
            "10",
        ],
        &out,
    );
    wait_for("the run to start", || out.join("run.json").exists());
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&child);
    let output = child.wait_with_output().expect("bdlc ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("E0985"), "{stderr}");
    assert!(chain_files(&out).is_empty(), "a chain file without draws");
    assert!(
        !out.join("draws.csv").exists(),
        "a draws file without draws"
    );
    assert_eq!(record(&out)["complete"], false);
    let _ = std::fs::remove_dir_all(&out);
}

/// A second SIGINT ends the process at once; what it leaves has complete rows only, whether the
/// second one comes at once or while the first is being handled.
#[test]
fn a_second_sigint_ends_the_process_at_once_with_every_written_row_complete() {
    for (attempt, gap_ms) in [0u64, 0, 2, 5, 10, 30].into_iter().enumerate() {
        let out = scratch(&format!("twice-{attempt}"));
        let child = start(
            &[
                "models/logistic.bdl",
                "--warmup",
                "50",
                "--samples",
                "1000000",
            ],
            &out,
        );
        wait_for("the first draw", || has_a_row(&out));
        interrupt(&child);
        std::thread::sleep(Duration::from_millis(gap_ms));
        // The first SIGINT may have ended the run already; then there is no second to send.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let output = child.wait_with_output().expect("bdlc ends");
        assert_eq!(
            output.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for path in chain_files(&out) {
            parse_draws(&path);
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Runs `bdlc infer ARGS` with `extra` flags to the end and returns the exit code and stderr.
fn run_to_end(args: &[&str], extra: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("infer")
        .args(args)
        .args(extra)
        .arg("--quiet")
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The files an SVI or MAP run writes that do not hold timings, byte for byte.
fn same_files(a: &Path, b: &Path) {
    for name in ["draws.csv", "loss.csv", "params.json", "setup.json"] {
        let left = std::fs::read(a.join(name)).expect("the finished run's file");
        let right = std::fs::read(b.join(name)).expect("the resumed run's file");
        assert!(left == right, "{name} differs after resuming");
    }
}

/// `--resume DIR` continues an SVI or MAP run stopped by Ctrl-C, or killed (SIGKILL) after its
/// first periodic saved state, to the files of the uninterrupted run, byte for byte; a finished
/// run needs no resuming and keeps no saved state.
#[test]
fn a_resumed_fit_writes_the_files_of_the_uninterrupted_run() {
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "svi-int",
            &[
                "models/logistic.bdl",
                "--method",
                "svi",
                "--steps",
                "6000",
                "--seed",
                "3",
            ],
            "INT",
        ),
        (
            "svi-kill",
            &[
                "models/logistic.bdl",
                "--method",
                "svi",
                "--steps",
                "6000",
                "--seed",
                "3",
            ],
            "KILL",
        ),
        (
            "map-int",
            &[
                "models/logistic.bdl",
                "--method",
                "map",
                "--optimizer",
                "adam",
                "--steps",
                "6000",
                "--seed",
                "4",
            ],
            "INT",
        ),
    ];
    for (name, args, signal) in cases {
        let reference = scratch(&format!("{name}-reference"));
        let reference_arg = reference.to_string_lossy().to_string();
        let (code, stderr) = run_to_end(args, &["--out", &reference_arg, "--force"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!reference.join("checkpoint.json").exists());

        let out = scratch(name);
        let child = start(args, &out);
        // A SIGKILL comes after the first periodic state (every 1,000 steps); a SIGINT once the
        // loss trace streams, and saves its own.
        let checkpoint = out.join("checkpoint.json");
        let loss = out.join("loss.csv");
        if signal == "KILL" {
            wait_for("the first saved state", || checkpoint.exists());
        } else {
            wait_for("the loss trace", || {
                std::fs::read_to_string(&loss).is_ok_and(|text| text.lines().count() > 100)
            });
        }
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let output = child.wait_with_output().expect("bdlc ends");
        if signal == "INT" {
            assert_eq!(output.status.code(), Some(130));
            assert_eq!(record(&out)["interrupted"], true);
        } else {
            assert_eq!(record(&out)["complete"], false);
        }
        assert!(checkpoint.exists(), "no saved state");
        let out_arg = out.to_string_lossy().to_string();
        let (code, stderr) = run_to_end(args, &["--resume", &out_arg]);
        assert_eq!(code, Some(0), "{stderr}");
        same_files(&reference, &out);
        let record = record(&out);
        assert_eq!(record["complete"], true);
        assert_eq!(record["interrupted"], false);
        assert!(!checkpoint.exists(), "a finished run keeps its saved state");
        // Nothing is left to resume.
        let (code, stderr) = run_to_end(args, &["--resume", &out_arg]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("E0987"), "{stderr}");
        let _ = std::fs::remove_dir_all(&reference);
        let _ = std::fs::remove_dir_all(&out);
    }
}

#[test]
fn resuming_another_method_or_another_command_is_refused() {
    let out = scratch("refusals");
    let out_arg = out.to_string_lossy().to_string();
    // L-BFGS keeps no state that a resumed run could continue from.
    let (code, stderr) = run_to_end(
        &["models/logistic.bdl", "--method", "map"],
        &["--resume", &out_arg],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("E0986"), "{stderr}");
    let svi = [
        "models/logistic.bdl",
        "--method",
        "svi",
        "--steps",
        "100000000",
    ];
    let child = start(&svi, &out);
    wait_for("the loss trace", || {
        std::fs::read_to_string(out.join("loss.csv")).is_ok_and(|t| t.lines().count() > 10)
    });
    interrupt(&child);
    let _ = child.wait_with_output();
    let (code, stderr) = run_to_end(
        &["models/logistic.bdl", "--method", "svi", "--steps", "5000"],
        &["--resume", &out_arg],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("E0988") && stderr.contains("settings differ"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
