//! The `bdlc` crate: the command line of bdl, and the only crate that reads files or prints.
//!
//! The binary (`src/main.rs`) calls [`main`]; the library also offers [`embed`], the method
//! drivers of `bdlc infer` for programs that embed bdl (the Python package), so that every
//! method runs through one code path.
//!
//! Subcommands: `check` (diagnostics, `--emit ast|ir|trace`), `infer` (every inference method),
//! `predict`, `diagnose` (gradients against finite differences), `merge` (join the parts of a run
//! split with `--chain-offset`), `summary` and `plot` (re-read a finished run), `loo` and
//! `compare` (PSIS-LOO, WAIC and model comparison from a run's pointwise log-likelihood), `repl`,
//! and `completions` and `man` (shell completion scripts, man pages).
//! Exit codes: 0 on success, 1 when the model, its data or a run has an error, 2 for usage
//! errors and files that cannot be read, 130 when Ctrl-C stops a run (its draws so far kept) or
//! ends the process, 141 (quietly) when stdout is a pipe whose reader has closed it.
#![allow(clippy::print_stderr, clippy::print_stdout)] // The command line is where printing happens.
#![allow(clippy::disallowed_methods)] // The binary is the one crate that reads files.

mod chain_checkpoint;
mod check;
mod checkpoint;
mod device;
mod diagnose;
pub mod embed;
mod infer;
mod interrupt;
mod log_lik;
mod loo_cmd;
mod merge;
mod method;
mod output;
mod parquet;
mod plot;
mod plot_cmd;
mod predict;
mod predict_metrics;
mod progress;
mod repl;
mod run;
mod run_files;
mod session;
mod settings;
mod shell;
mod summary_cmd;
mod vi_checks;
mod warm_start;

use clap::{CommandFactory, Parser, Subcommand};
use interrupt::Interrupt;
use serde_json::json;
use session::{diagnostics_json, Failure, Session};
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
    Check(check::CheckArgs),
    /// Run inference on a model: SVI, MAP, Laplace, NUTS, HMC, prior draws, and more.
    // Boxed: the inference flags make this variant far larger than the others.
    Infer(Box<infer::InferArgs>),
    /// Posterior-predictive draws and intervals on new inputs, from a finished run.
    Predict(predict::PredictArgs),
    /// Check the model's gradient against finite differences at random points.
    Diagnose(diagnose::DiagnoseArgs),
    /// Join runs split with `--chain-offset` (parts of one NUTS, HMC or ensemble run) into one.
    Merge(merge::MergeArgs),
    /// Print the summary table of a finished run again, from its files.
    Summary(summary_cmd::SummaryArgs),
    /// PSIS-LOO (or WAIC) of a finished run, with Pareto k̂ per observation.
    Loo(loo_cmd::LooArgs),
    /// Compare finished runs of models of the same data: elpd differences, stacking weights.
    Compare(loo_cmd::CompareArgs),
    /// Draw the figures of a finished run: densities, traces, loss, predictive band.
    Plot(plot_cmd::PlotArgs),
    /// Explore a model interactively: expressions, prior draws, inference, summaries, plots.
    Repl(repl::ReplArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write one page per subcommand with `--out DIR`.
    Man(shell::ManArgs),
}

/// Runs the command line: parses the arguments, runs the subcommand and returns the exit code.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let interrupt = Interrupt::install();
    let mut session = Session::new();
    let (result, json) = match cli.command {
        Command::Check(args) => return check::run(&args, &mut session),
        Command::Infer(args) => {
            interrupt.set_stoppable(true);
            match infer::run(&args, &mut session, &interrupt.stop) {
                // Stopped by Ctrl-C with its draws kept: the shell's status for SIGINT.
                Ok(true) => return ExitCode::from(130),
                outcome => (outcome.map(|_| ()), args.json),
            }
        }
        Command::Predict(args) => (predict::run(&args, &mut session), false),
        Command::Diagnose(args) => (diagnose::run(&args, &mut session), false),
        Command::Merge(args) => (merge::run(&args), args.json),
        Command::Summary(args) => (summary_cmd::run(&args), args.json),
        Command::Loo(args) => (loo_cmd::run_loo(&args), args.json),
        Command::Compare(args) => (loo_cmd::run_compare(&args), args.json),
        Command::Plot(args) => (plot_cmd::run(&args, &mut session), false),
        Command::Repl(args) => return repl::run(&args, &mut session, &interrupt),
        Command::Completions(args) => (shell::completions(&args, Cli::command()), false),
        Command::Man(args) => (shell::man(&args, Cli::command()), false),
    };
    finish(result, &session, json)
}

/// Ends the process quietly, with status 141 (what a shell reports for a process ended by
/// SIGPIPE), when stdout is a pipe whose reader has gone, as in `bdlc check --emit ir m.bdl | head`.
///
/// Rust ignores SIGPIPE, so printing to a closed pipe fails with `BrokenPipe` and `print!` panics;
/// this hook turns that one panic into a silent exit and leaves every other panic to the default
/// hook.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Renders a failure with the session's sources (as JSON on stdout under `--json`) and turns it
/// into the exit code.
fn finish(result: Result<(), Failure>, session: &Session, json: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json {
                let document = json!({ "diagnostics": diagnostics_json(&failure.diagnostics, &session.sources) });
                println!("{document:#}");
            } else {
                eprint!("{}", session.render(&failure.diagnostics));
            }
            ExitCode::from(failure.exit_code)
        }
    }
}
