//! `bdlc completions` and `bdlc man`: the scripts and pages name every subcommand and flag, the
//! man page is roff, and the bash script can be sourced.
#![allow(clippy::disallowed_methods)] // The tests read the pages `bdlc man --out` writes.

use std::process::{Command, Output};

/// Every subcommand of `bdlc` that a user types.
const SUBCOMMANDS: [&str; 9] = [
    "check",
    "infer",
    "predict",
    "diagnose",
    "summary",
    "plot",
    "repl",
    "completions",
    "man",
];

fn bdlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .output()
        .expect("bdlc runs")
}

fn stdout_of(args: &[&str]) -> String {
    let output = bdlc(args);
    assert!(
        output.status.success(),
        "bdlc {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn bash_completion_names_every_subcommand_and_flag() {
    let script = stdout_of(&["completions", "bash"]);
    for name in SUBCOMMANDS {
        assert!(script.contains(name), "the bash script lacks `{name}`");
    }
    for flag in ["--method", "--chains", "--warmup", "--out", "--emit"] {
        assert!(script.contains(flag), "the bash script lacks `{flag}`");
    }
    // The shells' own names complete as the argument of `completions`.
    assert!(script.contains("bash elvish fish powershell zsh"));
}

#[test]
fn every_shell_gets_a_script_naming_infer() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("infer"), "{shell}: no `infer`");
        assert!(script.contains("method"), "{shell}: no `--method`");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = bdlc(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tcsh") && stderr.contains("bash"),
        "{stderr}"
    );
}

#[test]
fn bash_can_source_the_completion_script() {
    let script = stdout_of(&["completions", "bash"]);
    // Without bash there is nothing to source the script in.
    let Ok(probe) = Command::new("bash").arg("--version").output() else {
        return;
    };
    assert!(probe.status.success());
    // Source the script, then ask the completion function what follows `bdlc inf`.
    let test = format!(
        "{script}\nset -e\nCOMP_WORDS=(bdlc inf)\nCOMP_CWORD=1\nCOMP_LINE='bdlc inf'\n\
         COMP_POINT=${{#COMP_LINE}}\n_bdlc bdlc inf bdlc\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let output = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &test])
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sourcing failed: {stderr}");
    assert!(stderr.is_empty(), "sourcing printed errors: {stderr}");
    let replies = String::from_utf8_lossy(&output.stdout);
    assert_eq!(replies.trim(), "infer", "completions of `bdlc inf`");
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    let th = page
        .lines()
        .find(|line| line.starts_with(".TH "))
        .expect("a .TH title line");
    assert!(th.starts_with(".TH bdlc 1"), "{th}");
    for line in page.lines() {
        // roff requests start with a dot and a letter; a stray dot at a line start would be one.
        if let Some(rest) = line.strip_prefix('.') {
            assert!(
                rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '\\'),
                "not a roff request: {line}"
            );
        }
    }
    for name in SUBCOMMANDS {
        assert!(page.contains(&format!("bdlc\\-{name}(1)")), "no `{name}`");
    }
}

#[test]
fn man_out_writes_one_page_per_subcommand() {
    let dir = std::env::temp_dir().join(format!("bdlc-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = bdlc(&["man", "--out", dir.to_str().expect("UTF-8 path")]);
    assert!(output.status.success());
    for name in
        std::iter::once("bdlc".to_string()).chain(SUBCOMMANDS.iter().map(|s| format!("bdlc-{s}")))
    {
        let page = std::fs::read_to_string(dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(page.contains(".TH "), "{name}.1 has no title");
    }
    let infer = std::fs::read_to_string(dir.join("bdlc-infer.1")).expect("infer page");
    assert!(
        infer.contains("\\-\\-method"),
        "the infer page lacks --method"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}
