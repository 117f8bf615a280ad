//! The `bdlc` binary: the command line of bdl, and the only crate that reads files or prints.
//!
//! Subcommands: `check` (diagnostics, `--emit ast|ir|trace`), `infer` (every inference method),
//! `predict`, `diagnose` (gradients against finite differences), `summary` and `plot` (re-read a
//! finished run), and `repl`. Exit codes: 0 on success, 1 when the model, its data or a run has
//! an error, 2 for usage errors and files that cannot be read.
#![allow(clippy::print_stderr, clippy::print_stdout)] // The binary is where printing happens.
#![allow(clippy::disallowed_methods)] // The binary is the one crate that reads files.

mod check;
mod diagnose;
mod infer;
mod methods;
mod output;
mod plot;
mod plot_cmd;
mod predict;
mod progress;
mod session;
mod settings;

use clap::{Parser, Subcommand};
use session::{Failure, Session};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    Infer(infer::InferArgs),
    /// Posterior-predictive draws and intervals on new inputs, from a finished run.
    Predict(predict::PredictArgs),
    /// Check the model's gradient against finite differences at random points.
    Diagnose(diagnose::DiagnoseArgs),
}

/// Set by Ctrl-C: samplers and optimisers stop and keep what they have.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&flag);
    // Without a handler (e.g. in a restricted environment) Ctrl-C simply ends the process.
    let _ = ctrlc::set_handler(move || handler_flag.store(true, Ordering::SeqCst));
    flag
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = interrupt_flag();
    let mut session = Session::new();
    let result = match cli.command {
        Command::Check(args) => return check::run(&args, &mut session),
        Command::Infer(args) => infer::run(&args, &mut session, &stop),
        Command::Predict(args) => predict::run(&args, &mut session),
        Command::Diagnose(args) => diagnose::run(&args, &mut session),
    };
    finish(result, &session)
}

/// Renders a failure with the session's sources and turns it into the exit code.
fn finish(result: Result<(), Failure>, session: &Session) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{}", session.render(&failure.diagnostics));
            ExitCode::from(failure.exit_code)
        }
    }
}
