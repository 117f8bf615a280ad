//! `bdlc infer`: parses the method once, runs it on a model and writes its files.
//!
//! The method's options are parsed into a [`Method`] before anything runs (a flag that does not
//! apply to the method is an error); `run::run_method` runs it. MCMC methods write one CmdStan
//! CSV per chain as they go; the others write `draws.csv` at the end. The pointwise
//! log-likelihood of the draws follows (`log_lik`), unless it is large or `--no-log-lik` says no.

use crate::log_lik::LogLikChoice;
use crate::method::Method;
use crate::output::{mark_run_complete, prepare_out_dir, write_file};
use crate::progress;
use crate::run::run_method;
use crate::session::{Failure, Session};
use crate::settings::{InferFlags, Resolved};
use bdl_runtime::data::Completeness;
use bdl_runtime::model::Model;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// `bdlc infer MODEL [options]`.
#[derive(clap::Args, Debug, Clone)]
pub struct InferArgs {
    /// The model file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Inference settings.
    #[command(flatten)]
    pub flags: InferFlags,
    /// Write the run's files into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also draw SVG figures into `--out`.
    #[arg(long)]
    pub plot: bool,
    /// Replace a run already in `--out`.
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the pointwise log-likelihood (`log_lik*.csv`, for `bdlc loo`) whatever its size;
    /// by default it is written when observations x draws is at most 1,000,000.
    #[arg(long = "log-lik", conflicts_with = "no_log_lik")]
    pub log_lik: bool,
    /// Do not write the pointwise log-likelihood.
    #[arg(long = "no-log-lik")]
    pub no_log_lik: bool,
}

/// Runs `bdlc infer`.
pub fn run(args: &InferArgs, session: &mut Session, stop: &AtomicBool) -> Result<(), Failure> {
    let (program, warnings) = session.compile(&args.model)?;
    session.warn(&warnings);
    let settings = program.settings.clone();
    let resolved = Resolved::new(&args.flags, &settings);
    let method = Method::resolve(&resolved, None)?;
    let seed = resolved.seed()?;
    let files = session.data_files(&args.model, &program, &args.flags.data)?;
    let observed = bdl_runtime::pipeline::observed_only(&program);
    let data = session.load_data(&program, &files, Completeness::All, &observed)?;
    drop(files);
    let model = Model::new(program, data, seed)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    if let Some(out) = &args.out {
        prepare_out_dir(out, args.force)?;
    }
    let show = progress::enabled(args.quiet);
    let mut result = run_method(&model, &method, args.out.as_deref(), show, stop)?;
    let mut log_lik_note = None;
    if let Some(out) = &args.out {
        let choice = LogLikChoice::from_flags(args.log_lik, args.no_log_lik);
        let fact = crate::log_lik::write_for_run(&model, &result, out, choice)?;
        if choice == LogLikChoice::WhenSmall && fact["written"] == false {
            log_lik_note = fact["reason"].as_str().map(str::to_string);
        }
        result.facts.insert("log_lik".into(), fact);
        let summary = result.summary_json(&args.model);
        write_file(&out.join("summary.json"), &format!("{summary:#}\n"))?;
        if args.plot {
            crate::plot_cmd::plot_run(&model, &result, out)?;
        }
        mark_run_complete(out, result.interrupted)?;
    }
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    {
        if args.json {
            println!("{:#}", result.summary_json(&args.model));
        } else {
            print!("{}", result.table());
            for warning in result.warning_messages() {
                eprintln!("warning: {warning}");
            }
            if let Some(reason) = &log_lik_note {
                eprintln!("note: the pointwise log-likelihood was not written ({reason})");
            }
            if let Some(out) = &args.out {
                eprintln!("wrote {}", out.display());
            }
        }
        if result.interrupted {
            eprintln!("interrupted: the files hold the draws finished so far");
        }
    }
    Ok(())
}
