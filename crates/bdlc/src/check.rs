//! `bdlc check FILE...`: parse and check model files, printing every diagnostic; `--emit`
//! prints a stage of the pipeline (the AST as canonical source, the trace IR, or the trace of
//! one run at the prior median); `--json` prints the diagnostics as one JSON document instead.

use crate::session::{read_bounded, Failure, Session, MAX_MODEL_FILE_BYTES};
use bdl_diagnostics::{has_errors, Diagnostic, Severity};
use bdl_runtime::data::Completeness;
use bdl_runtime::model::Model;
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;

/// `bdlc check FILE... [--emit ast|ir|trace]`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The model files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also print a stage of the pipeline to stdout.
    #[arg(long, value_enum, value_name = "STAGE")]
    pub emit: Option<Emit>,
    /// Data files for `--emit trace` (default: those the model names).
    #[arg(long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Print the diagnostics as one JSON document on stdout instead of rendering them.
    #[arg(long, conflicts_with = "emit")]
    pub json: bool,
}

/// The stages `--emit` can print.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The syntax tree, printed back as canonical bdl source.
    Ast,
    /// The trace IR: slots, resolved calls, static shapes.
    Ir,
    /// The trace of one run at the prior median: sites, distributions, shapes, log-densities.
    Trace,
}

/// Runs `bdlc check`.
pub fn run(args: &CheckArgs, session: &mut Session) -> ExitCode {
    let mut any_error = false;
    let mut unreadable = false;
    let mut all_diagnostics = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = match read_bounded(path, "", MAX_MODEL_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(refusal) => {
                if args.json {
                    all_diagnostics.push(refusal.into_diagnostic());
                } else {
                    eprintln!("error[{}]: {}", refusal.code, refusal.message);
                }
                unreadable = true;
                continue;
            }
        };
        let (_, parsed) = bdl_syntax::parse_bytes(&mut session.sources, &name, &bytes);
        let mut diagnostics: Vec<Diagnostic> = parsed.diagnostics;
        let checked = bdl_ir::check(&parsed.program);
        diagnostics.extend(checked.diagnostics);
        if args.emit == Some(Emit::Ast) {
            print!("{}", bdl_syntax::print(&parsed.program));
        }
        if !has_errors(&diagnostics) {
            match (args.emit, bdl_ir::lower(&parsed.program, &checked.analysis)) {
                (Some(Emit::Ir), Ok(program)) => print!("{program}"),
                (Some(Emit::Trace), Ok(program)) => {
                    match emit_trace(session, path, program, &args.data) {
                        Ok(text) => print!("{text}"),
                        Err(failure) => {
                            diagnostics.extend(failure.diagnostics);
                            unreadable |= failure.exit_code == 2;
                        }
                    }
                }
                (_, Err(error)) => diagnostics.push(*error),
                _ => {}
            }
        }
        any_error |= has_errors(&diagnostics);
        if args.json {
            all_diagnostics.extend(diagnostics);
            continue;
        }
        eprint!("{}", session.render(&diagnostics));
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
    }
    if args.json {
        let count = |severity: Severity| {
            all_diagnostics
                .iter()
                .filter(|d| d.severity == severity)
                .count()
        };
        let document = serde_json::json!({
            "errors": count(Severity::Error),
            "warnings": count(Severity::Warning),
            "diagnostics": crate::session::diagnostics_json(&all_diagnostics, &session.sources),
        });
        println!("{document:#}");
    }
    if unreadable {
        ExitCode::from(2)
    } else if any_error {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The trace of one run of the model at its prior median, with its data.
fn emit_trace(
    session: &mut Session,
    path: &std::path::Path,
    program: bdl_ir::ir::Program,
    data: &[PathBuf],
) -> Result<String, Failure> {
    let files = session.data_files(path, &program, data)?;
    let observed = bdl_runtime::pipeline::observed_only(&program);
    let data = session.load_data(&program, &files, Completeness::All, &observed)?;
    drop(files);
    let model = Model::new(program, data, 0)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    let position = model.prior_median_position(0);
    model
        .render_trace(&position)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))
}

/// "1 error", "2 errors".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
