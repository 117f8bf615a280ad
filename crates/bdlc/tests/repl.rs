//! The REPL as people use it: read from a pipe (scripts, transcripts) and typed on a terminal
//! (through a pseudo-terminal, with the line editor, completion, Ctrl-C at the prompt and
//! Ctrl-D). The sessions load a model, make an error, recover with their state intact, run
//! inference and print a summary.
#![allow(clippy::disallowed_methods)] // Tests run the binary and read the files it writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("a scratch folder");
    directory
}

/// Runs `bdlc repl ARGS` with `input` on stdin.
fn repl_through_a_pipe(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("repl")
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .env("BDL_HISTORY", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bdlc runs");
    child
        .stdin
        .take()
        .expect("a pipe")
        .write_all(input.as_bytes())
        .expect("the REPL reads its input");
    child.wait_with_output().expect("the REPL ends")
}

#[test]
fn a_piped_session_recovers_from_an_error_and_runs_inference() {
    let input = "\
let s = mean(sigma)
mean(sigmaa)
s + 1
:infer svi --steps 400 --samples 300 --seed 3
:summary mu
";
    let output = repl_through_a_pipe(&["models/eight_schools.bdl"], input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The failed input is reported with its location in what was typed, and the exit status
    // tells a script that something failed.
    assert!(stderr.contains("unknown name `sigmaa`"), "{stderr}");
    assert!(stderr.contains("did you mean `sigma`?"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The binding made before the error is still there.
    assert!(stdout.contains("s = 12.5 : real"), "{stdout}");
    assert!(stdout.contains("13.5 : real"), "{stdout}");
    // The summary of the run, then the same rows again for `:summary mu`.
    let summary_rows = stdout
        .lines()
        .filter(|line| line.starts_with("mu "))
        .count();
    assert_eq!(summary_rows, 2, "{stdout}");
    assert!(stdout.contains("theta_tilde[1]"), "{stdout}");
    // No prompts, no colours and no progress bars from a pipe.
    assert!(!stdout.contains("bdl>"), "{stdout}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn a_clean_piped_session_exits_with_zero() {
    let output = repl_through_a_pipe(&[], "let x = [1.0, 2.0]\nsum(x)\n:quit\nexp(x\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout, "x = [1, 2] : vector[2]\n3 : real\n");
}

#[test]
fn plots_from_the_repl_are_svg_documents() {
    let directory = scratch("repl-plots");
    let figure = |name: &str| directory.join(name).display().to_string();
    let input = format!(
        ":infer svi --steps 300 --samples 200 --seed 1\n\
         :plot predictive {}\n:plot loss {}\n:plot sigma {}\n:plot hist {}\n:predict\n",
        figure("band.svg"),
        figure("loss.svg"),
        figure("sigma.svg"),
        figure("hist.svg"),
    );
    let output = repl_through_a_pipe(&["models/sine_bnn.bdl"], &input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // (Trace plots are for Markov chains; an SVI run's independent draws get a histogram.)
    for name in ["band.svg", "loss.svg", "sigma.svg", "hist.svg"] {
        let svg = std::fs::read_to_string(directory.join(name)).expect("the figure was written");
        assert!(svg.starts_with("<svg"), "{name}");
    }
    let band = std::fs::read_to_string(directory.join("band.svg")).expect("the band");
    assert!(band.contains("90% predictive interval"));
    let loss = std::fs::read_to_string(directory.join("loss.svg")).expect("the loss");
    assert!(
        loss.contains("log scale"),
        "the loss is drawn on a logarithmic axis"
    );
    // The predictive check covers every observation and says how many its interval holds.
    assert!(
        stdout.contains("observed values lie inside the 90% predictive interval"),
        "{stdout}"
    );
}

#[test]
fn a_terminal_session_edits_completes_and_quits() {
    let directory = scratch("repl-terminal");
    let history = directory.join("history");
    let mut command = Command::new(env!("CARGO_BIN_EXE_bdlc"));
    command
        .arg("repl")
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("BDL_HISTORY", &history);
    let mut session = rexpect::session::spawn_command(command, Some(60_000)).expect("a terminal");
    // The line editor discards what is typed before it takes the terminal, as a shell does; so
    // each input waits for an empty prompt (the prompt, then the cursor moved past it), not for
    // the redrawn line that echoes what was typed.
    let empty_prompt = "bdl> \r\u{1b}[5C";
    let type_line = |session: &mut rexpect::session::PtySession, line: &str| {
        session.exp_string(empty_prompt).expect("an empty prompt");
        session.send_line(line).expect("typed");
    };

    type_line(&mut session, ":load models/eight_schools.bdl");
    session
        .exp_string("loaded models/eight_schools.bdl")
        .expect("the model loads");

    // An error prints its diagnostic and the session goes on.
    type_line(&mut session, "mean(sigmaa)");
    session.exp_string("unknown name").expect("the error");
    type_line(&mut session, "let s = mean(sigma)");
    session.exp_string("s = 12.5 : real").expect("a binding");

    // A block stays open until its brace closes: the three lines are one input.
    type_line(&mut session, "plate(\"p\", 2) {");
    session.send_line("let q = s").expect("typed");
    session.send_line("}").expect("typed");
    type_line(&mut session, "s + 1");
    session
        .exp_string("13.5 : real")
        .expect("the session still knows `s`");

    // Ctrl-C at the prompt clears the line instead of running it.
    session.exp_string(empty_prompt).expect("an empty prompt");
    session.send("this is not bdl").expect("typed");
    session.send_control('c').expect("Ctrl-C");
    type_line(&mut session, "s");
    let before = session.exp_string("12.5 : real").expect("the value");
    assert!(!before.contains("Error"), "the cleared line ran: {before}");

    // Tab completes commands; `:infer` runs with the flags of `bdlc infer`.
    session.exp_string(empty_prompt).expect("an empty prompt");
    session.send(":inf").expect("typed");
    session.send("\t").expect("Tab");
    session
        .send_line("nuts --chains 2 --warmup 300 --samples 500 --seed 1")
        .expect("typed");
    session.exp_string("r_hat").expect("the summary table");
    type_line(&mut session, ":summary tau");
    session.exp_regex(r"tau\s+\d").expect("the row of tau");

    // Ctrl-D quits.
    session.exp_string(empty_prompt).expect("an empty prompt");
    session.send_control('d').expect("Ctrl-D");
    session.exp_eof().expect("the REPL ends");

    let saved = std::fs::read_to_string(&history).expect("a history file");
    assert!(saved.contains(":load models/eight_schools.bdl"), "{saved}");
}

#[test]
fn every_kind_of_figure_is_reachable_from_the_repl() {
    let directory = scratch("repl-plot-kinds");
    let figure = |name: &str| directory.join(name).display().to_string();
    let input = format!(
        ":infer nuts --chains 2 --warmup 150 --samples 150 --seed 1
         :plot hist {}
:plot rank mu {}
:plot pair {}
:plot density tau {}
:plot energy {}
         :plot loss {}
",
        figure("hist.svg"),
        figure("rank.svg"),
        figure("pair.svg"),
        figure("density.svg"),
        figure("energy.svg"),
        figure("loss.svg"),
    );
    let output = repl_through_a_pipe(&["models/eight_schools.bdl"], &input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (name, label) in [
        ("hist.svg", "density"),
        ("rank.svg", "rank of mu (all chains)"),
        ("pair.svg", "pair plot"),
        ("density.svg", "tau"),
        ("energy.svg", "E-BFMI"),
    ] {
        let svg = std::fs::read_to_string(directory.join(name)).expect("the figure was written");
        assert!(svg.contains(label), "{name} lacks `{label}`");
    }
    // The REPL keeps the sampler's energies with the draws; a NUTS run has no loss, which is
    // refused with a reason, and the piped session then exits with 1.
    assert!(!stderr.contains("no energy figure"), "{stderr}");
    assert!(stderr.contains("no loss figure"), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}
{stderr}"
    );
}

/// Waits until `ready` says so (at most a minute).
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether a run's folder holds a chain file with at least one draw.
fn has_a_draw(out: &Path) -> bool {
    std::fs::read_to_string(out.join("chain-1.csv"))
        .map(|text| text.lines().filter(|l| !l.starts_with('#')).count() >= 2)
        .unwrap_or(false)
}

#[test]
fn session_runs_are_scored_by_loo_and_compared() {
    let directory = scratch("repl-loo");
    let saved = directory.join("nuts");
    let input = format!(
        ":infer nuts --chains 2 --warmup 200 --samples 200 --seed 1 --out {saved}
:infer svi --steps 400 --samples 300 --seed 1
:runs
:loo 1
:loo {saved}
:loo --waic
:compare 1 2 --seed 3
:compare 1 {saved}
:loo 9
:compare 1
",
        saved = saved.display()
    );
    let output = repl_through_a_pipe(&["models/eight_schools.bdl"], &input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `:runs` numbers the runs; the last one is marked.
    assert!(stdout.contains("  1  nuts"), "{stdout}");
    assert!(stdout.contains("  2  svi"), "{stdout}");
    assert!(stdout.contains("(last)"), "{stdout}");
    // The session's run 1 and the files it wrote give the same PSIS-LOO, by the same code as
    // `bdlc loo`, which reads those files.
    let estimate_lines = |text: &str, label: &str| -> Vec<String> {
        let start = text
            .find(label)
            .unwrap_or_else(|| panic!("{label}:\n{text}"));
        text[start..]
            .lines()
            .skip(2)
            .take(4)
            .map(str::to_string)
            .collect()
    };
    let from_session = estimate_lines(&stdout, "PSIS-LOO of run 1 (nuts");
    let from_files = estimate_lines(&stdout, &format!("PSIS-LOO of {}", saved.display()));
    assert_eq!(from_session, from_files);
    assert!(from_session[1].starts_with("elpd_loo"), "{from_session:?}");
    let cli = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(["loo", &saved.display().to_string()])
        .current_dir(repository())
        .output()
        .expect("bdlc loo runs");
    let cli_stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(
        estimate_lines(&cli_stdout, "PSIS-LOO of"),
        from_files,
        "{cli_stdout}"
    );
    // WAIC of the last run, and the comparison tables with their weights.
    assert!(stdout.contains("WAIC of run 2 (svi"), "{stdout}");
    assert!(stdout.contains("elpd_waic"), "{stdout}");
    assert_eq!(
        stdout
            .matches("pseudo-BMA+ (1000 Bayesian-bootstrap draws")
            .count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("seed 3)"), "{stdout}");
    let row = |label: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(label) && !line.contains("elpd"))
            .map(str::to_string)
    };
    assert!(row("run 2 ").is_some(), "{stdout}");
    // A run the session does not have, and a comparison of one run.
    assert!(
        stderr.contains("error[E0947]: the session has no run 9"),
        "{stderr}"
    );
    assert!(stderr.contains("numbered 1 to 2"), "{stderr}");
    assert!(
        stderr.contains("`:compare` needs at least two runs"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}

#[test]
fn ctrl_c_on_a_terminal_stops_the_run_and_keeps_the_session() {
    let directory = scratch("repl-ctrl-c-terminal");
    let nuts = directory.join("nuts");
    let svi = directory.join("svi");
    let mut command = Command::new(env!("CARGO_BIN_EXE_bdlc"));
    command
        .args(["repl", "models/eight_schools.bdl", "--quiet"])
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("BDL_HISTORY", "");
    let mut session = rexpect::session::spawn_command(command, Some(60_000)).expect("a terminal");
    let empty_prompt = "bdl> \r\u{1b}[5C";
    let type_line = |session: &mut rexpect::session::PtySession, line: &str| {
        session.exp_string(empty_prompt).expect("an empty prompt");
        session.send_line(line).expect("typed");
    };
    type_line(&mut session, "let s = mean(sigma)");
    session.exp_string("s = 12.5 : real").expect("a binding");

    // NUTS: a run far too long to finish, stopped once it has draws.
    type_line(
        &mut session,
        &format!(
            ":infer nuts --chains 2 --warmup 50 --samples 1000000 --seed 1 --out {}",
            nuts.display()
        ),
    );
    wait_for("NUTS's first draw", || has_a_draw(&nuts));
    session.send_control('c').expect("Ctrl-C");
    session
        .exp_string("interrupted: keeping the")
        .expect("the run stops and keeps its draws");
    // The session goes on with what it had, and the run is kept.
    type_line(&mut session, "s + 1");
    session
        .exp_string("13.5 : real")
        .expect("the binding is kept");
    type_line(&mut session, ":summary tau");
    session
        .exp_regex(r"tau\s+\d")
        .expect("the stopped run's summary");

    // SVI: stopped during its optimisation.
    type_line(
        &mut session,
        &format!(
            ":infer svi --steps 100000000 --samples 100 --seed 1 --out {}",
            svi.display()
        ),
    );
    wait_for("SVI's loss trace", || {
        std::fs::read_to_string(svi.join("loss.csv")).is_ok_and(|t| t.lines().count() > 10)
    });
    session.send_control('c').expect("Ctrl-C");
    session
        .exp_string("interrupted: keeping the 100 draws")
        .expect("the guide fitted so far gives the draws");
    type_line(&mut session, ":runs");
    session.exp_string("1  nuts").expect("run 1");
    session.exp_string("2  svi").expect("run 2");

    // The prompt takes Ctrl-C back: it clears the line again.
    session.exp_string(empty_prompt).expect("an empty prompt");
    session.send("not run").expect("typed");
    session.send_control('c').expect("Ctrl-C");
    type_line(&mut session, "s");
    let before = session.exp_string("12.5 : real").expect("the value");
    assert!(!before.contains("error"), "the cleared line ran: {before}");
    session.exp_string(empty_prompt).expect("an empty prompt");
    session.send_control('d').expect("Ctrl-D");
    session.exp_eof().expect("the REPL ends");
    // What the stopped run wrote is marked complete and interrupted.
    let record = std::fs::read_to_string(nuts.join("run.json")).expect("run.json");
    assert!(record.contains("\"interrupted\": true"), "{record}");
}

#[test]
fn ctrl_c_from_a_pipe_stops_each_method_and_the_script_goes_on() {
    let directory = scratch("repl-ctrl-c-pipe");
    let sgld = directory.join("sgld");
    let ensemble = directory.join("ensemble");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(["repl", "models/sine_sgld.bdl"])
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .env("BDL_HISTORY", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bdlc runs");
    let mut stdin = child.stdin.take().expect("a pipe");
    let interrupt = |child: &std::process::Child| {
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    writeln!(
        stdin,
        ":infer --chains 2 --samples 1000000 --seed 1 --out {}",
        sgld.display()
    )
    .expect("written");
    wait_for("SG-MCMC's first draw", || has_a_draw(&sgld));
    interrupt(&child);
    writeln!(
        stdin,
        ":load models/sine_ensemble.bdl\n:infer --members 2 --steps 100000000 --seed 1 --out {}",
        ensemble.display()
    )
    .expect("written");
    wait_for("the ensemble to start", || {
        ensemble.join("run.json").exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    interrupt(&child);
    stdin.write_all(b":runs\n:quit\n").expect("written");
    drop(stdin);
    let output = child.wait_with_output().expect("the REPL ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Both runs were stopped, kept, and the script went on to its end.
    assert_eq!(
        stderr.matches("interrupted: keeping the").count(),
        2,
        "{stderr}"
    );
    assert!(stdout.contains("  1  sgld"), "{stdout}");
    assert!(stdout.contains("  2  ensemble"), "{stdout}");
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
}

#[test]
fn the_reliability_diagram_of_held_out_rows_from_the_repl() {
    let directory = scratch("repl-reliability");
    let png = directory.join("held-out.png");
    let svg = directory.join("held-out.svg");
    let input = format!(
        ":infer svi --steps 300 --samples 100 --seed 1\n\
         :plot reliability {} --data models/data/iris_test.csv --bins 5\n\
         :plot reliability {}\n:plot hist {} --bins 1\n",
        svg.display(),
        png.display(),
        directory.join("bad.svg").display()
    );
    let output = repl_through_a_pipe(&["models/iris_bnn.bdl"], &input);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let held_out = std::fs::read_to_string(&svg).expect("the held-out diagram");
    assert!(
        held_out.contains("on 38 observations"),
        "the 38 held-out rows"
    );
    assert!(held_out.contains("5 bins"), "--bins reaches the figure");
    let bytes = std::fs::read(&png).expect("the PNG");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG file");
    assert!(
        stderr.contains("`--bins` needs a number from 2 to 500"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}
