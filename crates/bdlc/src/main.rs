//! The `bdlc` binary: the command line of bdl, and the only crate that reads files or prints.
//!
//! Subcommands: `check` (diagnostics, `--emit ast|ir|trace`), `infer` (every inference method),
//! `predict`, `diagnose` (gradients against finite differences), `summary` and `plot` (re-read a
//! finished run), and `repl`. Exit codes: 0 on success, 1 when the model, its data or a run has
//! an error, 2 for usage errors and files that cannot be read, 130 when Ctrl-C ends the process.
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
mod repl;
mod session;
mod settings;
mod summary_cmd;
mod vi_checks;

use bdl_diagnostics::{Diagnostic, SourceMap, Span};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
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
    // Boxed: the inference flags make this variant far larger than the others.
    Infer(Box<infer::InferArgs>),
    /// Posterior-predictive draws and intervals on new inputs, from a finished run.
    Predict(predict::PredictArgs),
    /// Check the model's gradient against finite differences at random points.
    Diagnose(diagnose::DiagnoseArgs),
    /// Print the summary table of a finished run again, from its files.
    Summary(summary_cmd::SummaryArgs),
    /// Draw the figures of a finished run: densities, traces, loss, predictive band.
    Plot(plot_cmd::PlotArgs),
    /// Explore a model interactively: expressions, prior draws, inference, summaries, plots.
    Repl(repl::ReplArgs),
}

/// What Ctrl-C does. Outside inference it ends the process (exit code 130), as it would without
/// a handler; while inference runs (`bdlc infer`, the REPL) the first press asks the sampler or
/// optimiser to stop and keep what it has, and a second press ends the process.
pub struct Interrupt {
    /// Set by Ctrl-C while stopping is allowed; samplers and optimisers poll it.
    pub stop: AtomicBool,
    stoppable: AtomicBool,
}

impl Interrupt {
    /// Installs the process's one Ctrl-C handler.
    fn install() -> Arc<Interrupt> {
        let interrupt = Arc::new(Interrupt {
            stop: AtomicBool::new(false),
            stoppable: AtomicBool::new(false),
        });
        let handler = Arc::clone(&interrupt);
        // Without a handler (a restricted environment) Ctrl-C simply ends the process.
        let _ = ctrlc::set_handler(move || {
            let stoppable = handler.stoppable.load(Ordering::SeqCst);
            if !stoppable || handler.stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        interrupt
    }

    /// Lets Ctrl-C stop a run instead of ending the process (or goes back to ending it).
    pub fn set_stoppable(&self, stoppable: bool) {
        self.stoppable.store(stoppable, Ordering::SeqCst);
    }

    /// Forgets an earlier Ctrl-C, before the next run starts.
    pub fn reset(&self) {
        self.stop.store(false, Ordering::SeqCst);
    }

    /// Whether Ctrl-C was pressed since the last reset.
    pub fn requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let interrupt = Interrupt::install();
    let mut session = Session::new();
    let (result, json) = match cli.command {
        Command::Check(args) => return check::run(&args, &mut session),
        Command::Infer(args) => {
            interrupt.set_stoppable(true);
            (infer::run(&args, &mut session, &interrupt.stop), args.json)
        }
        Command::Predict(args) => (predict::run(&args, &mut session), false),
        Command::Diagnose(args) => (diagnose::run(&args, &mut session), false),
        Command::Summary(args) => (summary_cmd::run(&args), args.json),
        Command::Plot(args) => (plot_cmd::run(&args, &mut session), false),
        Command::Repl(args) => return repl::run(&args, &mut session, &interrupt),
    };
    finish(result, &session, json)
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

/// Diagnostics as JSON objects: severity, code, message, the primary location (file, 1-based
/// line and column, and where the span ends), labels, notes and the hint. Unlocated diagnostics
/// (a missing file, a bad flag) have `null` locations.
pub fn diagnostics_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> Value {
    Value::Array(
        diagnostics
            .iter()
            .map(|diagnostic| {
                let mut object = json!({
                    "severity": diagnostic.severity.to_string(),
                    "code": diagnostic.code,
                    "message": diagnostic.message,
                    "hint": diagnostic.hint,
                    "notes": diagnostic.notes,
                    "labels": diagnostic.labels.iter().map(|label| {
                        let mut object = span_json(label.span, sources);
                        if let Value::Object(map) = &mut object {
                            map.insert("message".into(), json!(label.message));
                            map.insert("primary".into(), json!(label.primary));
                        }
                        object
                    }).collect::<Vec<_>>(),
                });
                let location = match diagnostic.primary_span() {
                    Some(span) => span_json(span, sources),
                    None => span_json_null(),
                };
                if let (Value::Object(map), Value::Object(location)) = (&mut object, location) {
                    map.extend(location);
                }
                object
            })
            .collect(),
    )
}

/// A span as `file`, `line`, `column`, `end_line`, `end_column` (1-based, columns in characters).
fn span_json(span: Span, sources: &SourceMap) -> Value {
    let Some(file) = sources.get(span.file) else {
        return span_json_null();
    };
    let (line, column) = file.line_col(span.start as usize);
    let (end_line, end_column) = file.line_col(span.end as usize);
    json!({
        "file": file.name,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
    })
}

fn span_json_null() -> Value {
    json!({ "file": null, "line": null, "column": null, "end_line": null, "end_column": null })
}
