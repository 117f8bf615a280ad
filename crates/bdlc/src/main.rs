//! The `bdlc` binary: the command line of bdl, and the only crate that reads files or prints.
//!
//! `bdlc check FILE...` parses and checks each model file and prints its diagnostics to stderr,
//! in colour only when stderr is a terminal. Exit codes: 0 when every file is clean (warnings
//! allowed), 1 when any file has an error, 2 for usage errors and files that cannot be read.
#![allow(clippy::print_stderr, clippy::print_stdout)] // The binary is where printing happens.
#![allow(clippy::disallowed_methods)] // The binary is the one crate that reads files.

use bdl_diagnostics::{has_errors, render, Diagnostic, Severity, SourceMap};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// bdl: probabilistic programming for Bayesian deep learning.
#[derive(Parser, Debug)]
#[command(name = "bdlc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and check model files; report every problem found before anything runs.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// The model files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Also print a stage of the pipeline to stdout.
    #[arg(long, value_enum, value_name = "STAGE")]
    emit: Option<Emit>,
}

/// The stages `--emit` can print.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Emit {
    /// The syntax tree, printed back as canonical bdl source.
    Ast,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(&args),
    }
}

/// Whether diagnostics on stderr should be coloured.
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn check(args: &CheckArgs) -> ExitCode {
    let colour = use_colour();
    let mut sources = SourceMap::new();
    let mut any_error = false;
    let mut unreadable = false;
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!(
                    "error[E0901]: cannot read `{name}`: {}",
                    describe_io_error(&error)
                );
                unreadable = true;
                continue;
            }
        };
        let (_, parsed) = bdl_syntax::parse_bytes(&mut sources, &name, &bytes);
        let mut diagnostics: Vec<Diagnostic> = parsed.diagnostics;
        let checked = bdl_ir::check(&parsed.program);
        diagnostics.extend(checked.diagnostics);
        if args.emit == Some(Emit::Ast) {
            print!("{}", bdl_syntax::print(&parsed.program));
        }
        for diagnostic in &diagnostics {
            eprint!("{}", render(diagnostic, &sources, colour));
        }
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        if errors + warnings > 0 {
            eprintln!(
                "{name}: {}, {}",
                plural(errors, "error"),
                plural(warnings, "warning")
            );
        }
        any_error |= has_errors(&diagnostics);
    }
    if unreadable {
        ExitCode::from(2)
    } else if any_error {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// An IO error in a few words, without the OS error number.
fn describe_io_error(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_string(),
        _ => error.to_string().to_lowercase(),
    }
}

/// "1 error", "2 errors".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
