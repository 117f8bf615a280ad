//! `bdlc infer`: parses the method once, runs it on a model and writes its files.
//!
//! The method's options are parsed into a [`Method`] before anything runs (a flag that does not
//! apply to the method is an error); `run::run_method` runs it. MCMC methods write one CmdStan
//! CSV per chain as they go; the others write `draws.csv` at the end, or for SVI, MAP and
//! Laplace `draws.parquet` by `--format` or by size (`run::large`). The pointwise
//! log-likelihood of the draws follows (`log_lik`), unless it is large or `--no-log-lik` says no.

use crate::log_lik::LogLikChoice;
use crate::method::Method;
use crate::output::{mark_run_complete, prepare_out_dir, write_file};
use crate::progress;
use crate::run::large::{FormatChoice, OutputOptions, RunPlan};
use crate::run::run_method;
use crate::session::{Failure, Session};
use crate::settings::{InferFlags, Resolved};
use bdl_runtime::data::Completeness;
use bdl_runtime::model::Model;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

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
    /// Continue the NUTS, HMC, SVI or MAP run in DIR, stopped by Ctrl-C or killed, from its saved
    /// state: give the command that started it, with `--resume DIR` for `--out DIR`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "force"])]
    pub resume: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The draws file's format (SVI, MAP and Laplace): `csv` (CmdStan), `parquet`, or `auto`
    /// (Parquet when the draws are too many to keep in memory, CSV otherwise).
    #[arg(long, value_enum, default_value_t = FormatChoice::Auto)]
    pub format: FormatChoice,
    /// Write every element's draws, also of the sites with more than 1,000 elements that a
    /// streamed run summarises by site (SVI, MAP and Laplace).
    #[arg(long = "all-draws")]
    pub all_draws: bool,
    /// Write the pointwise log-likelihood (`log_lik*.csv`, for `bdlc loo`) whatever its size;
    /// by default it is written when observations x draws is at most 1,000,000.
    #[arg(long = "log-lik", conflicts_with = "no_log_lik")]
    pub log_lik: bool,
    /// Do not write the pointwise log-likelihood.
    #[arg(long = "no-log-lik")]
    pub no_log_lik: bool,
}

impl InferArgs {
    /// Where the run's files go: `--out`, or the folder of the run `--resume` continues.
    pub fn out_dir(&self) -> Option<&Path> {
        self.out.as_deref().or(self.resume.as_deref())
    }
}

/// Writes `setup.json` (what the run is) as the run starts, so that `--resume` can check that
/// it continues the same run; it is written again, the same, when the run ends.
fn write_setup_record(args: &InferArgs, method: &Method, out: &Path) -> Result<(), Failure> {
    let record = crate::merge::run_record(&args.model, &args.flags.data, method);
    write_file(
        &out.join(crate::merge::SETUP_RECORD),
        &format!("{record:#}\n"),
    )
}

/// Checks that `--resume DIR` can continue the run in DIR with this command's method and
/// settings, and marks the run as started again.
fn prepare_resume(args: &InferArgs, method: &Method, dir: &Path) -> Result<(), Failure> {
    let resumable = match method {
        Method::Svi(svi) => svi.lbfgs.is_none(),
        Method::Mcmc(_) => true,
        _ => false,
    };
    if !resumable {
        return Err(Failure::usage(
            "E0986",
            format!(
                "`--resume` continues NUTS and HMC runs, and SVI and MAP runs fitted with Adam, \
                 ClippedAdam or SGD; a `{}` run cannot be resumed",
                crate::merge::run_record(&args.model, &args.flags.data, method)["method"]
                    .as_str()
                    .unwrap_or("?")
            ),
            Some(
                "run it again with `--out DIR --force`; ensemble, SG-MCMC and Gibbs runs keep \
                 their draws so far when stopped with Ctrl-C"
                    .to_string(),
            ),
        ));
    }
    if !dir.is_dir() {
        return Err(Failure::usage(
            "E0910",
            format!("`{}` is not a directory", dir.display()),
            Some("give the `--out` directory of the run to continue".to_string()),
        ));
    }
    let setup_path = dir.join(crate::merge::SETUP_RECORD);
    let saved: Option<serde_json::Value> = crate::session::read_run_text(&setup_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let record = crate::merge::run_record(&args.model, &args.flags.data, method);
    if saved.as_ref() != Some(&record) {
        let differs: Vec<&str> = ["model", "data", "method", "settings"]
            .into_iter()
            .filter(|key| saved.as_ref().map(|s| &s[*key]) != Some(&record[*key]))
            .collect();
        return Err(Failure::usage(
            "E0988",
            format!(
                "`{}` holds a run made by another command: its {} differ",
                dir.display(),
                differs.join(", ")
            ),
            Some(format!(
                "give the model, data and flags that started it (its `{}` records them)",
                setup_path.display()
            )),
        ));
    }
    crate::output::mark_run_started(dir)
}

/// The output options of `--format` and `--all-draws`, refused where they cannot apply: for
/// methods other than SVI, MAP and Laplace (which write their draws as CmdStan CSV, chain by
/// chain), without `--out`, and `--plot` with a run whose draws stream to their file.
fn output_options(
    args: &InferArgs,
    method: &Method,
    model: &Model,
) -> Result<OutputOptions, Failure> {
    let options = OutputOptions {
        format: args.format,
        all_draws: args.all_draws,
        resume: args.resume.is_some(),
    };
    let named = if args.all_draws {
        Some("--all-draws".to_string())
    } else if args.format != FormatChoice::Auto {
        Some(format!(
            "--format {}",
            if args.format == FormatChoice::Csv {
                "csv"
            } else {
                "parquet"
            }
        ))
    } else {
        None
    };
    let Method::Svi(svi) = method else {
        if let Some(flag) = named.filter(|flag| flag != "--format csv") {
            return Err(Failure::usage(
                "E0975",
                format!("`{flag}` applies to svi, map and laplace runs only"),
                Some(
                    "other methods write CmdStan CSV files (one per chain for Markov chains)"
                        .to_string(),
                ),
            ));
        }
        return Ok(options);
    };
    if let (Some(flag), None) = (&named, args.out_dir()) {
        return Err(Failure::usage(
            "E0976",
            format!("`{flag}` says how to write the draws, but no `--out` folder was given"),
            Some("add `--out DIR`".to_string()),
        ));
    }
    let columns = crate::output::columns_of(&model.output_sites());
    let plan = RunPlan::new(&columns, svi.draws, options);
    if args.plot && plan.stream {
        return Err(Failure::usage(
            "E0919",
            format!(
                "`--plot` needs every draw in memory, but {} draws of {} values are streamed to \
                 the draws file",
                svi.draws,
                columns.len()
            ),
            Some(format!(
                "drop `--plot`, or ask for at most {} draws with `--samples`",
                crate::run::large::STREAM_ABOVE_VALUES / columns.len().max(1)
            )),
        ));
    }
    Ok(options)
}

/// Runs `bdlc infer`; `Ok(true)` when Ctrl-C stopped the run early (its files hold the draws
/// finished so far, and the process exits with status 130).
pub fn run(args: &InferArgs, session: &mut Session, stop: &AtomicBool) -> Result<bool, Failure> {
    let (program, warnings) = session.compile(&args.model)?;
    session.warn(&warnings);
    let settings = program.settings.clone();
    let resolved = Resolved::new(&args.flags, &settings);
    let method = Method::resolve(&resolved, None)?;
    let seed = resolved.seed()?;
    let device = crate::device::for_inference(args.flags.device, args.quiet)?;
    let files = session.data_files(&args.model, &program, &args.flags.data)?;
    let observed = bdl_runtime::pipeline::observed_only(&program);
    let data = session.load_data(&program, &files, Completeness::All, &observed)?;
    drop(files);
    let model = Model::new(program, data, seed)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    let output = output_options(args, &method, &model)?;
    match (&args.out, &args.resume) {
        (Some(out), _) => {
            prepare_out_dir(out, args.force)?;
            write_setup_record(args, &method, out)?;
        }
        (None, Some(dir)) => prepare_resume(args, &method, dir)?,
        (None, None) => {}
    }
    let show = progress::enabled(args.quiet);
    if !args.quiet {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "{}",
                start_facts(&args.model, &model, &method, seed, args.out_dir())
            );
        }
    }
    let started = Instant::now();
    let mut result = run_method(&model, &method, args.out_dir(), output, show, stop)?;
    if let Some(device) = device {
        result.facts.insert("device".into(), device);
    }
    let mut log_lik_note = None;
    if let Some(out) = args.out_dir() {
        let choice = LogLikChoice::from_flags(args.log_lik, args.no_log_lik);
        let fact = crate::log_lik::write_for_run(&model, &result, out, choice)?;
        if choice == LogLikChoice::WhenSmall && fact["written"] == false {
            log_lik_note = fact["reason"].as_str().map(str::to_string);
        }
        result.facts.insert("log_lik".into(), fact);
        let summary = result.summary_json(&args.model);
        write_file(&out.join("summary.json"), &format!("{summary:#}\n"))?;
        let record = crate::merge::run_record(&args.model, &args.flags.data, &method);
        write_file(
            &out.join(crate::merge::SETUP_RECORD),
            &format!("{record:#}\n"),
        )?;
        mark_run_complete(out, result.interrupted)?;
        // The figures are drawn from the finished run (the NUTS energy plot reads the sampler's
        // columns back from the chain files), so the run is marked complete first.
        if args.plot {
            crate::plot_cmd::plot_run(&model, &result, out)?;
        }
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
        }
        if result.interrupted {
            eprintln!("interrupted: the files hold the draws finished so far");
        }
        if args.quiet {
            if let (Some(out), false) = (args.out_dir(), args.json) {
                eprintln!("wrote {}", out.display());
            }
        } else {
            let n_warnings = warnings.len() + result.warning_messages().len();
            eprintln!(
                "{}",
                end_facts(started.elapsed(), args.out_dir(), args.plot, n_warnings)
            );
        }
    }
    Ok(result.interrupted)
}

/// The line printed before a run: what runs, on what, and where its files go.
fn start_facts(
    model_path: &Path,
    model: &Model,
    method: &Method,
    seed: u64,
    out: Option<&Path>,
) -> String {
    let rows = model
        .observed_sites()
        .iter()
        .map(|site| site.shape.first().copied().unwrap_or(1))
        .max()
        .unwrap_or(0);
    let parameters = model.layout.latent_dim();
    let destination = match out {
        Some(out) => format!("writing to {}", out.display()),
        None => "no --out, so nothing will be saved".to_string(),
    };
    format!(
        "{}: {} {}, {} {}; {} with {} on {} {}, seed {seed}; {destination}",
        model_path.display(),
        rows,
        plural(rows, "row", "rows"),
        parameters,
        plural(parameters, "parameter", "parameters"),
        method_name(method),
        parallel_runs(method),
        rayon::current_num_threads(),
        plural(rayon::current_num_threads(), "thread", "threads"),
    )
}

/// The line printed after a run: how long it took, where its files are, and how many warnings
/// it gave; without `--out`, that nothing was saved and how to save it.
fn end_facts(elapsed: Duration, out: Option<&Path>, plotted: bool, n_warnings: usize) -> String {
    let files = match out {
        Some(out) if plotted => format!("draws, summary.json and figures in {}", out.display()),
        Some(out) => format!("draws and summary.json in {}", out.display()),
        None => "nothing saved: add `--out DIR` to keep the draws and summary.json (and `--plot` for figures)".to_string(),
    };
    format!(
        "finished in {:.1} s; {files}; {n_warnings} {}",
        elapsed.as_secs_f64(),
        plural(n_warnings, "warning", "warnings")
    )
}

/// `singular` for one, `plural` otherwise.
fn plural<'a>(count: usize, singular: &'a str, plural: &'a str) -> &'a str {
    if count == 1 {
        singular
    } else {
        plural
    }
}

/// The method's name as `--method` spells it.
pub fn method_name(method: &Method) -> &'static str {
    match method {
        Method::Prior { .. } => "prior",
        Method::Svi(svi) => svi.name.as_str(),
        Method::Mcmc(mcmc) => mcmc.name.as_str(),
        Method::Exact { .. } => "exact",
        Method::Ensemble(_) => "ensemble",
        Method::Sgmcmc(sgmcmc) => sgmcmc.name.as_str(),
        Method::Gibbs { .. } => "gibbs",
        Method::Pathfinder(_) => "pathfinder",
        Method::Vis(_) => "vis",
    }
}

/// How many chains (or ensemble members, or optimisations) the method runs, in words.
fn parallel_runs(method: &Method) -> String {
    let (count, singular, plural_form) = match method {
        Method::Mcmc(mcmc) => (mcmc.settings.chains, "chain", "chains"),
        Method::Sgmcmc(sgmcmc) => (sgmcmc.settings.chains, "chain", "chains"),
        Method::Gibbs { settings, .. } => (settings.chains, "chain", "chains"),
        Method::Ensemble(settings) => (settings.members, "member", "members"),
        Method::Svi(_) | Method::Vis(_) => (1, "optimisation", "optimisations"),
        Method::Pathfinder(pathfinder) => (pathfinder.settings.paths, "path", "paths"),
        Method::Prior { samples, .. } | Method::Exact { samples, .. } => {
            (*samples, "draw", "draws")
        }
    };
    format!("{count} {}", plural(count, singular, plural_form))
}
