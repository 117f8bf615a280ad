//! `bdlc infer`: runs an inference method on a model and writes its files.
//!
//! Every method ends in the same shape — draws of the output sites (latent, param and
//! deterministic sites, constrained), summarised per scalar element — so that the summary table,
//! `summary.json`, `predict`, `summary` and `plot` work alike on all of them. MCMC methods write
//! one CmdStan CSV per chain as they go; the others write `draws.csv` at the end.

use crate::output::{
    columns_of, flatten_row, prepare_out_dir, write_file, Column, DrawsWriter, SummaryView,
};
use crate::progress;
use crate::session::{Failure, Session};
use crate::settings::{InferFlags, Resolved};
use crate::vi_checks;
use bdl_diagnostics::Diagnostic;
use bdl_infer::diagnostics::Summary;
use bdl_infer::mcmc::{
    self, Algorithm, ChainEvent, HmcLength, McmcError, McmcSettings, MetricKind,
};
use bdl_infer::rng::stream_rng;
use bdl_infer::vi::{
    self, ElboKind, GuideKind, KlWeightSchedule, LearningRateSchedule, OptimizerKind, SviError,
    SviFit, SviSettings,
};
use bdl_runtime::data::Completeness;
use bdl_runtime::model::{Model, SiteInfo};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

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
}

/// What a finished run holds.
pub struct RunResult {
    /// The method's name.
    pub method: String,
    /// The scalar columns of the output sites.
    pub columns: Vec<Column>,
    /// Constrained draws per chain, row-major (one row per draw).
    pub draws: Vec<Vec<f64>>,
    /// The per-column summary.
    pub summary: Summary,
    /// Whether the draws are MCMC draws (convergence statistics apply).
    pub mcmc: bool,
    /// The SVI loss per step.
    pub losses: Vec<f64>,
    /// Method-specific facts for `summary.json` (timings, final loss, settings).
    pub facts: Map<String, Value>,
    /// Whether the run was interrupted (Ctrl-C) and holds only part of its draws.
    pub interrupted: bool,
}

impl RunResult {
    /// The warnings of the summary, with columns named.
    pub fn warning_messages(&self) -> Vec<String> {
        // Effective sample sizes and R-hat describe Markov chains; the independent draws of a
        // fitted guide or of the prior need neither.
        if self.mcmc {
            crate::output::warning_messages(&self.summary.warnings, &self.columns)
        } else {
            // Variational and point estimates carry their own warnings (convergence, k̂).
            self.facts
                .get("warnings")
                .and_then(Value::as_array)
                .map(|warnings| {
                    warnings
                        .iter()
                        .filter_map(|w| w.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    /// `summary.json`'s content.
    pub fn summary_json(&self, model: &Path) -> Value {
        let view = SummaryView {
            columns: &self.columns,
            summary: &self.summary,
            mcmc: self.mcmc,
        };
        json!({
            "model": model.display().to_string(),
            "method": self.method,
            "interrupted": self.interrupted,
            "facts": Value::Object(self.facts.clone()),
            "warnings": self.warning_messages(),
            "columns": self.columns.iter().map(Column::csv_name).collect::<Vec<_>>(),
            "summary": view.elements_json(),
        })
    }

    /// The summary table.
    pub fn table(&self) -> String {
        SummaryView {
            columns: &self.columns,
            summary: &self.summary,
            mcmc: self.mcmc,
        }
        .table()
    }
}

/// Runs `bdlc infer`.
pub fn run(args: &InferArgs, session: &mut Session, stop: &AtomicBool) -> Result<(), Failure> {
    let (program, warnings) = session.compile(&args.model)?;
    session.warn(&warnings);
    let settings = program.settings.clone();
    let resolved = Resolved::new(&args.flags, &settings);
    let method = resolved.method()?;
    let seed = resolved.seed()?;
    let files = session.data_files(&args.model, &program, &args.flags.data)?;
    let observed = bdl_runtime::pipeline::observed_only(&program);
    let data = bdl_runtime::data::load(&program, &files, Completeness::All, &observed)
        .map_err(Failure::model)?;
    let model = Model::new(program, data, seed)
        .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    if let Some(out) = &args.out {
        prepare_out_dir(out, args.force)?;
    }
    let show = progress::enabled(args.quiet);
    let result = infer_model(&model, &resolved, &method, args.out.as_deref(), show, stop)?;
    if let Some(out) = &args.out {
        let summary = result.summary_json(&args.model);
        write_file(&out.join("summary.json"), &format!("{summary:#}\n"))?;
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

/// Runs a method on a compiled model; writes draws into `out` when given.
pub fn infer_model(
    model: &Model,
    resolved: &Resolved,
    method: &str,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    let started = Instant::now();
    let mut result = match method {
        "prior" => run_prior(model, resolved, out)?,
        "svi" | "map" | "laplace" => run_svi(model, resolved, method, out, show_progress, stop)?,
        "nuts" | "hmc" => run_mcmc(model, resolved, method, out, show_progress, stop)?,
        other => crate::methods::run_method(model, resolved, other, out, show_progress, stop)?,
    };
    result.facts.insert(
        "wall_seconds".into(),
        json!(started.elapsed().as_secs_f64()),
    );
    Ok(result)
}

/// The output sites and their columns.
fn output_columns(model: &Model) -> (Vec<&SiteInfo>, Vec<Column>) {
    let sites = model.output_sites();
    let columns = columns_of(&sites);
    (sites, columns)
}

/// Writes `draws.csv` (CmdStan layout, no sampler columns).
pub fn write_draws(
    out: &Path,
    comments: &[String],
    columns: &[Column],
    rows: &[f64],
) -> Result<(), Failure> {
    write_draws_file(&out.join("draws.csv"), comments, columns, rows)
}

/// Writes one CSV file of draws (CmdStan layout, no sampler columns) at `path`.
pub fn write_draws_file(
    path: &Path,
    comments: &[String],
    columns: &[Column],
    rows: &[f64],
) -> Result<(), Failure> {
    let header: Vec<String> = columns.iter().map(Column::csv_name).collect();
    let mut writer = DrawsWriter::create(path, comments, &header)?;
    if !columns.is_empty() {
        for row in rows.chunks(columns.len()) {
            writer.row(row)?;
        }
    }
    Ok(())
}

fn run_prior(model: &Model, resolved: &Resolved, out: Option<&Path>) -> Result<RunResult, Failure> {
    let samples = resolved.count("samples", resolved.flags().samples, 1000, 1)?;
    let seed = resolved.seed()?;
    let mut sites: Vec<&SiteInfo> = model.output_sites();
    sites.extend(model.observed_sites());
    let columns = columns_of(&sites);
    let rows: Vec<Result<Vec<f64>, Failure>> = (0..samples)
        .into_par_iter()
        .map(|draw| {
            let mut rng = stream_rng(seed, draw as u64);
            let values = model
                .prior_draw(&mut rng)
                .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
            let mut row = Vec::new();
            flatten_row(&sites, &values, &mut row);
            Ok(row)
        })
        .collect();
    let mut draws = Vec::with_capacity(samples * columns.len());
    for row in rows {
        draws.extend(row?);
    }
    if let Some(out) = out {
        let comments = vec![
            "method = prior".to_string(),
            format!("num_samples = {samples}"),
            format!("seed = {seed}"),
        ];
        write_draws(out, &comments, &columns, &draws)?;
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    Ok(RunResult {
        method: "prior".into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses: Vec::new(),
        facts: Map::new(),
        interrupted: false,
    })
}

/// The SVI settings from the flags.
/// The SVI settings from the flags; `auto_steps` lets `--steps auto` (the default of SVI, MAP
/// and Laplace) set a step cap and stop at convergence.
pub fn svi_settings(
    resolved: &Resolved,
    method: &str,
    auto_steps: bool,
) -> Result<SviSettings, Failure> {
    let flags = resolved.flags();
    let guide_name = match method {
        "map" => "delta".to_string(),
        "laplace" => "laplace".to_string(),
        _ => resolved.choice(
            "guide",
            &flags.guide,
            "diag",
            &["diag", "normal", "mvn", "lowrank", "delta", "laplace"],
        )?,
    };
    let mut guide = GuideKind::from_name(&guide_name).unwrap_or_default();
    if let GuideKind::LowRankMultivariateNormal { rank } = &mut guide {
        if flags.rank.is_some() || resolved.has("rank") {
            *rank = Some(resolved.count("rank", flags.rank, 1, 1)?);
        }
    }
    let auto = auto_steps && resolved.steps_auto();
    let steps = if auto {
        crate::vi_checks::AUTO_STEP_CAP
    } else {
        resolved.count("steps", flags.steps_count(), 1000, 1)?
    };
    let learning_rate = resolved.positive("lr", flags.lr, 0.01)?;
    let optimizer_name = resolved.choice(
        "optimizer",
        &flags.optimizer,
        "adam",
        &["adam", "clipped_adam", "sgd", "lbfgs"],
    )?;
    if optimizer_name == "lbfgs" && (method == "svi" || !auto_steps) {
        return Err(Failure::usage(
            "E0906",
            "`--optimizer lbfgs` applies to `--method map` and `--method laplace` only",
            Some("SVI's loss is a noisy estimate; use adam, clipped_adam or sgd".to_string()),
        ));
    }
    let mut kind = match optimizer_name.as_str() {
        "clipped_adam" => OptimizerKind::ClippedAdam(Default::default()),
        "sgd" => OptimizerKind::Sgd(Default::default()),
        _ => OptimizerKind::Adam(Default::default()),
    };
    kind.set_learning_rate(learning_rate);
    let mut optimizer_schedule = LearningRateSchedule::Constant;
    let elbo = match resolved
        .choice("elbo", &flags.elbo, "trace", &["trace", "analytic_kl"])?
        .as_str()
    {
        "analytic_kl" => ElboKind::AnalyticKl,
        _ => ElboKind::Trace,
    };
    let weight = match flags.kl_weight {
        Some(w) => w,
        None => resolved.positive("kl_weight", None, 1.0)?,
    };
    let anneal = resolved.count("kl_anneal", flags.kl_anneal, 0, 0)?;
    let kl_weight = if anneal > 0 {
        KlWeightSchedule::LinearWarmup {
            steps: anneal,
            final_weight: weight,
        }
    } else {
        KlWeightSchedule::Constant { weight }
    };
    if flags.lr_final.is_some() || resolved.has("lr_final") {
        let final_rate = resolved.positive("lr_final", flags.lr_final, learning_rate)?;
        // γ^steps = final / initial: PyTorch's ExponentialLR stepped once per step.
        let gamma = (final_rate / learning_rate).powf(1.0 / steps as f64);
        optimizer_schedule = LearningRateSchedule::Exponential { gamma };
    }
    let max_gradient_norm = if flags.clip_norm.is_some() || resolved.has("clip_norm") {
        Some(resolved.positive("clip_norm", flags.clip_norm, 1.0)?)
    } else {
        None
    };
    let mut settings = SviSettings {
        guide,
        steps,
        particles: resolved.count("particles", flags.particles, 1, 1)?,
        seed: resolved.seed()?,
        elbo,
        kl_weight,
        ..SviSettings::default()
    };
    settings.optimizer.kind = kind;
    settings.optimizer.schedule = optimizer_schedule;
    settings.optimizer.max_gradient_norm = max_gradient_norm;
    settings.convergence.stop_when_converged = auto;
    Ok(settings)
}

fn svi_failure(error: &SviError) -> Failure {
    let mut diagnostic = Diagnostic::error("E0570", error.to_string());
    if matches!(error, SviError::NonFiniteLoss { .. }) {
        diagnostic = diagnostic.with_hint(
            "lower `--lr`, check the priors' scales, or pass a smaller `--steps` to see where it diverges",
        );
    }
    Failure::model(vec![diagnostic])
}

fn run_svi(
    model: &Model,
    resolved: &Resolved,
    method: &str,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    if model.layout.dim() == 0 {
        return Err(Failure::run(
            "E0571",
            "the model has no latent or param sites to fit",
        ));
    }
    let mut settings = svi_settings(resolved, method, true)?;
    let mut facts = Map::new();
    let mut warnings = Vec::new();
    // The warm start from the MAP point is the default of `--steps auto` runs; a run with an
    // explicit step count starts where it always did unless `--init map` asks otherwise.
    let default_init = if settings.convergence.stop_when_converged {
        "map"
    } else {
        "median"
    };
    let init_choice = resolved.choice(
        "init",
        &resolved.flags().init,
        default_init,
        &["map", "median", "uniform", "zero"],
    )?;
    settings.init.location = match init_choice.as_str() {
        // Stan's and NumPyro's default: Uniform(-2, 2) in unconstrained space.
        "uniform" => vi::InitLocation::Uniform { radius: 2.0 },
        // Zero in unconstrained space (the median of priors symmetric about zero), params at
        // their initial values.
        "zero" => vi::InitLocation::Position(model.layout.initial_position()),
        // Pyro's default: the median of 15 prior draws (also where `map` starts L-BFGS).
        _ => vi::InitLocation::Position(model.prior_median_position(settings.seed)),
    };
    let mut lbfgs_map = method != "svi" && lbfgs_requested(resolved, method)?;
    // L-BFGS needs a deterministic objective; a subsampled plate makes every evaluation a new
    // mini-batch, so such models keep the first-order optimiser unless L-BFGS is named.
    if lbfgs_map && model.subsampled {
        if resolved.flags().optimizer.as_deref() == Some("lbfgs") {
            return Err(Failure::usage(
                "E0906",
                "`--optimizer lbfgs` needs the full data at every evaluation, but the model \
                 subsamples a plate",
                Some("use `--optimizer adam`, or drop `subsample`".to_string()),
            ));
        }
        lbfgs_map = false;
    }
    let mut standardize: Option<(Vec<f64>, Vec<f64>)> = None;
    // The warm start: SVI from the L-BFGS MAP point with curvature scales, for models small
    // enough for it and without mini-batches (whose log joint L-BFGS would see one batch of).
    if method == "svi"
        && init_choice == "map"
        && !matches!(settings.guide, GuideKind::Delta | GuideKind::Laplace)
        && model.layout.latent_dim() <= vi::map::WARM_START_MAX_DIM
        && !model.subsampled
    {
        let lbfgs_settings = vi::LbfgsSettings {
            max_iterations: vi_checks::WARM_START_ITERATIONS,
            ..vi::LbfgsSettings::default()
        };
        let mut evaluator = model.evaluator();
        match vi::map::warm_start(
            &mut evaluator,
            &settings,
            &lbfgs_settings,
            settings.init.scale,
        ) {
            Ok(Some(start)) => {
                let latent_dim = model.layout.latent_dim();
                match start.scales {
                    // Optimise in standardised coordinates u, z = MAP + scales ⊙ u, from u = 0
                    // with unit guide scales.
                    Some(scales) => {
                        let mut position = start.position.clone();
                        position[..latent_dim].fill(0.0);
                        settings.init.location = vi::InitLocation::Position(position);
                        settings.init.scale = 1.0;
                        standardize = Some((start.position[..latent_dim].to_vec(), scales));
                    }
                    None => settings.init.location = vi::InitLocation::Position(start.position),
                }
                facts.insert("init".into(), json!("map"));
            }
            Ok(None) | Err(_) => {
                facts.insert("init".into(), json!("median (L-BFGS found no mode)"));
            }
        }
    }
    let n_draws = if matches!(settings.guide, GuideKind::Delta) {
        1
    } else {
        resolved.count("samples", resolved.flags().samples, 1000, 1)?
    };
    let (fit, failure): (SviFit, Option<Failure>) = if lbfgs_map {
        let lbfgs_settings = vi::LbfgsSettings {
            max_iterations: resolved.count(
                "steps",
                resolved.flags().steps_count(),
                vi::LbfgsSettings::default().max_iterations,
                1,
            )?,
            ..vi::LbfgsSettings::default()
        };
        let mut evaluator = model.evaluator();
        let map = vi::map::fit_lbfgs(&mut evaluator, &settings, &lbfgs_settings)
            .map_err(|error| svi_failure(&error))?;
        vi_checks::lbfgs(&map.report, &mut facts, &mut warnings);
        if method == "laplace" {
            let position = map.fit.median_position();
            match vi::laplace::approximate(&mut evaluator, &position, settings.seed) {
                Ok(guide) => (SviFit { guide, ..map.fit }, None),
                Err(error) => {
                    let error = SviError::Laplace {
                        message: error.message,
                        partial: Box::new(map.fit.clone()),
                    };
                    (map.fit, Some(svi_failure(&error)))
                }
            }
        } else {
            (map.fit, None)
        }
    } else {
        let bar = progress::optimisation_bar(settings.steps, show_progress);
        let mut running = 0.0;
        let on_step = |step: usize, loss: f64| {
            running = if step == 0 {
                loss
            } else {
                0.98 * running + 0.02 * loss
            };
            bar.set_position(step as u64 + 1);
            if step.is_multiple_of(25) {
                bar.set_message(format!("loss {running:.4}"));
            }
        };
        let fit_result = match &standardize {
            Some((center, scales)) => {
                let make =
                    |_| vi::Standardized::new(model.evaluator(), center.clone(), scales.clone());
                let back = make(0);
                let to_original = |fit: &SviFit| -> Result<SviFit, Failure> {
                    let guide = back.to_original(&fit.guide).map_err(|error| {
                        Failure::run("E0570", format!("the fitted guide is not valid: {error}"))
                    })?;
                    Ok(SviFit {
                        guide,
                        ..fit.clone()
                    })
                };
                match vi::svi::fit(make, &settings, stop, on_step) {
                    Ok(fit) => Ok(to_original(&fit)?),
                    Err(error) => Err((error.partial().map(&to_original).transpose()?, error)),
                }
            }
            None => vi::svi::fit(|_| model.evaluator(), &settings, stop, on_step)
                .map_err(|error| (error.partial().cloned(), error)),
        };
        bar.finish_and_clear();
        let (fit, failure) = match fit_result {
            Ok(fit) => (fit, None),
            Err((partial, error)) => match partial {
                Some(partial) => (partial, Some(svi_failure(&error))),
                None => return Err(svi_failure(&error)),
            },
        };
        if standardize.is_some() {
            facts.insert("standardized".into(), json!(true));
        }
        facts.insert("optimizer".into(), json!(settings.optimizer.kind.name()));
        facts.insert("steps_taken".into(), json!(fit.losses.len()));
        facts.insert(
            "steps_auto".into(),
            json!(settings.convergence.stop_when_converged),
        );
        if !fit.interrupted && failure.is_none() {
            vi_checks::convergence(
                fit.convergence,
                fit.losses.len(),
                settings.steps,
                &mut facts,
                &mut warnings,
            );
        }
        (fit, failure)
    };
    let (sites, columns) = output_columns(model);
    let mut positions = None;
    let psis_draws = resolved.count(
        "psis_draws",
        resolved.flags().psis_draws,
        vi_checks::DEFAULT_PSIS_DRAWS,
        0,
    )?;
    let resample = resolved.flag("resample", resolved.flags().resample);
    if resample && (psis_draws == 0 || matches!(settings.guide, GuideKind::Delta)) {
        return Err(Failure::usage(
            "E0906",
            "`--resample` needs a guide with a density and `--psis-draws` above 0",
            None,
        ));
    }
    if failure.is_none()
        && psis_draws > 0
        && !matches!(fit.guide.params(), vi::GuideParams::Delta { .. })
    {
        let draws = if resample {
            psis_draws.max(n_draws)
        } else {
            psis_draws
        };
        // Every plate in full, so that a subsampled model's log joint is exact here.
        let mut evaluator = model.output_evaluator();
        match vi::importance::diagnose(&mut evaluator, &fit, draws, settings.seed) {
            Ok(diagnostic) => {
                vi_checks::pareto(&diagnostic, &mut facts, &mut warnings);
                if resample {
                    facts.insert("resampled".into(), json!(true));
                    positions = Some(diagnostic.resample(n_draws, settings.seed));
                }
            }
            Err(error) => {
                facts.insert("pareto_k".into(), Value::Null);
                warnings.push(format!(
                    "the Pareto-k̂ diagnostic could not be computed: {error}"
                ));
                if resample {
                    return Err(Failure::run(
                        "E0573",
                        format!("the guide's draws cannot be resampled: {error}"),
                    ));
                }
            }
        }
    }
    // A MAP point says nothing of how far it is from the posterior mean: check it by
    // importance sampling with the Laplace approximation there as the proposal.
    if failure.is_none()
        && method == "map"
        && psis_draws > 0
        && model.layout.latent_dim() <= vi::map::WARM_START_MAX_DIM
        && model.layout.latent_dim() > 0
    {
        let mut evaluator = model.output_evaluator();
        let position = fit.median_position();
        match vi::laplace::approximate(&mut evaluator, &position, settings.seed) {
            Ok(guide) => {
                let laplace_fit = SviFit {
                    guide,
                    ..fit.clone()
                };
                match vi::importance::diagnose(
                    &mut evaluator,
                    &laplace_fit,
                    psis_draws,
                    settings.seed,
                ) {
                    Ok(diagnostic) => {
                        let rows =
                            constrained_rows(model, &sites, &diagnostic.positions, settings.seed)?;
                        let map_row = constrained_rows(model, &sites, &[position], settings.seed)?;
                        let names: Vec<String> = columns.iter().map(Column::csv_name).collect();
                        vi_checks::mode_against_mean(
                            &map_row,
                            &rows,
                            &names,
                            &diagnostic,
                            &mut facts,
                            &mut warnings,
                        );
                    }
                    Err(error) => warnings.push(format!(
                        "the MAP point could not be compared with the posterior mean: {error}"
                    )),
                }
            }
            Err(error) => warnings.push(format!(
                "the MAP point could not be compared with the posterior mean: {error}"
            )),
        }
    }
    let positions = match positions {
        Some(positions) => positions,
        None => {
            let mut rng = stream_rng(settings.seed, u64::MAX - 1);
            fit.sample_positions(&mut rng, n_draws)
        }
    };
    let draws = constrained_rows(model, &sites, &positions, settings.seed)?;
    let losses: Vec<f64> = fit.losses.iter().map(|l| l.loss).collect();
    if let Some(out) = out {
        let comments = vec![
            format!("method = {method}"),
            format!("guide = {}", settings.guide.name()),
            format!("steps = {}", fit.losses.len()),
            format!("num_samples = {n_draws}"),
            format!("seed = {}", settings.seed),
        ];
        write_draws(out, &comments, &columns, &draws)?;
        let mut loss_csv = String::from("step,loss\n");
        for loss in &fit.losses {
            loss_csv.push_str(&format!("{},{}\n", loss.step + 1, loss.loss));
        }
        write_file(&out.join("loss.csv"), &loss_csv)?;
        let params = params_json(model, &fit, method);
        write_file(&out.join("params.json"), &format!("{params:#}\n"))?;
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    facts.insert("guide".into(), json!(settings.guide.name()));
    facts.insert("steps".into(), json!(fit.losses.len()));
    facts.insert("particles".into(), json!(settings.particles));
    facts.insert("final_loss".into(), json!(fit.final_loss(100)));
    facts.insert("warnings".into(), json!(warnings));
    Ok(RunResult {
        method: method.into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses,
        facts,
        interrupted: fit.interrupted,
    })
}

/// Whether MAP or Laplace runs L-BFGS: the default, unless a first-order optimiser or one of
/// its settings is named.
fn lbfgs_requested(resolved: &Resolved, method: &str) -> Result<bool, Failure> {
    let flags = resolved.flags();
    let first_order_hint = flags.lr.is_some()
        || resolved.has("lr")
        || flags.lr_final.is_some()
        || flags.clip_norm.is_some();
    let default = if first_order_hint { "adam" } else { "lbfgs" };
    let name = resolved.choice(
        "optimizer",
        &flags.optimizer,
        default,
        &["lbfgs", "adam", "clipped_adam", "sgd"],
    )?;
    Ok(name == "lbfgs" && method != "svi")
}

/// `params.json`: the guide (which `predict` and the REPL can rebuild), the model's params
/// (constrained), and the layout of the unconstrained vector.
fn params_json(model: &Model, fit: &SviFit, method: &str) -> Value {
    let layout: Vec<Value> = model
        .layout
        .entries
        .iter()
        .map(|entry| {
            json!({
                "site": entry.name,
                "kind": entry.kind.as_str(),
                "offset": entry.offset,
                "unconstrained_shape": entry.unconstrained_shape,
                "shape": entry.constrained_shape,
                "constraint": entry.constraint.to_string(),
            })
        })
        .collect();
    json!({
        "method": method,
        "guide": fit.guide.params(),
        "params_unconstrained": fit.params,
        "final_loss": fit.final_loss(100),
        "layout": layout,
    })
}

/// Constrained output rows for unconstrained positions, computed in parallel.
pub fn constrained_rows(
    model: &Model,
    sites: &[&SiteInfo],
    positions: &[Vec<f64>],
    seed: u64,
) -> Result<Vec<f64>, Failure> {
    let rows: Vec<Result<Vec<f64>, Failure>> = positions
        .par_chunks(
            positions
                .len()
                .div_ceil(rayon::current_num_threads().max(1))
                .max(1),
        )
        .enumerate()
        .map(|(chunk_index, chunk)| {
            let mut evaluator = model.output_evaluator();
            let mut rng = stream_rng(seed, chunk_index as u64);
            let mut rows = Vec::new();
            let mut row = Vec::new();
            for position in chunk {
                let values = evaluator
                    .constrained(position, &mut rng)
                    .map_err(|e| Failure::model(vec![e.to_diagnostic()]))?;
                flatten_row(sites, &values, &mut row);
                rows.extend_from_slice(&row);
            }
            Ok(rows)
        })
        .collect();
    let mut all = Vec::new();
    for rows in rows {
        all.extend(rows?);
    }
    Ok(all)
}

/// The MCMC settings from the flags.
pub fn mcmc_settings(resolved: &Resolved, method: &str) -> Result<McmcSettings, Failure> {
    let flags = resolved.flags();
    let metric = match resolved
        .choice("metric", &flags.metric, "diag", &["diag", "dense"])?
        .as_str()
    {
        "dense" => MetricKind::Dense,
        _ => MetricKind::Diag,
    };
    let algorithm = if method == "hmc" {
        Algorithm::Hmc(HmcLength::Steps(resolved.count(
            "steps",
            flags.steps_count(),
            16,
            1,
        )?))
    } else {
        Algorithm::Nuts
    };
    Ok(McmcSettings {
        chains: resolved.count("chains", flags.chains, 4, 1)?,
        warmup: resolved.count("warmup", flags.warmup, 1000, 0)?,
        samples: resolved.count("samples", flags.samples, 1000, 1)?,
        seed: resolved.seed()?,
        algorithm,
        max_depth: resolved.count("max_depth", flags.max_depth, 10, 1)?,
        target_accept: resolved.fraction("target_accept", flags.target_accept, 0.8)?,
        metric,
        ..McmcSettings::default()
    })
}

fn mcmc_failure(error: &McmcError) -> Failure {
    let diagnostic = Diagnostic::error("E0572", error.to_string());
    let diagnostic = match error {
        McmcError::Initialization { .. } => diagnostic.with_hint(
            "check that every site's distribution is valid near the prior's typical values",
        ),
        _ => diagnostic,
    };
    Failure::model(vec![diagnostic])
}

/// One chain's output: its CSV file and a forward-only evaluator for constrained values.
struct ChainOutput<'m> {
    writer: Option<DrawsWriter>,
    evaluator: bdl_runtime::model::Evaluator<'m>,
    rows: Vec<f64>,
    scratch: Vec<f64>,
    full_position: Vec<f64>,
    error: Option<Failure>,
}

fn run_mcmc(
    model: &Model,
    resolved: &Resolved,
    method: &str,
    out: Option<&Path>,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    if model.layout.latent_dim() == 0 {
        return Err(Failure::run(
            "E0573",
            "the model has no latent sites to sample",
        ));
    }
    if let Some(site) = model
        .sites
        .iter()
        .find(|s| s.discrete && !s.observed && s.kind == bdl_runtime::handlers::SiteKind::Sample)
    {
        return Err(Failure::run(
            "E0574",
            format!(
                "site `{}` is discrete; NUTS and HMC need continuous latent variables",
                site.name
            ),
        ));
    }
    let settings = mcmc_settings(resolved, method)?;
    let save_warmup = resolved.flags().save_warmup;
    let (sites, columns) = output_columns(model);
    let mut header: Vec<String> = mcmc::SampleStats::COLUMN_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(columns.iter().map(Column::csv_name));
    let comments = vec![
        "method = sample (Default)".to_string(),
        "  sample".to_string(),
        format!("    num_samples = {}", settings.samples),
        format!("    num_warmup = {}", settings.warmup),
        format!("    save_warmup = {}", u8::from(save_warmup)),
        "    thin = 1 (Default)".to_string(),
        "    adapt".to_string(),
        "      engaged = 1 (Default)".to_string(),
        format!("      delta = {}", settings.target_accept),
        format!(
            "    algorithm = hmc ({})",
            if method == "hmc" { "static" } else { "nuts" }
        ),
        format!(
            "      metric = {}",
            if settings.metric == MetricKind::Dense {
                "dense_e"
            } else {
                "diag_e"
            }
        ),
        format!("      max_depth = {}", settings.max_depth),
        format!("random seed = {}", settings.seed),
        "bdl".to_string(),
    ];
    let mut outputs = Vec::new();
    for chain in 0..settings.chains {
        let writer = match out {
            Some(out) => {
                let mut chain_comments = comments.clone();
                chain_comments.push(format!("chain id = {}", chain + 1));
                Some(DrawsWriter::create(
                    &out.join(format!("chain-{}.csv", chain + 1)),
                    &chain_comments,
                    &header,
                )?)
            }
            None => None,
        };
        outputs.push(Mutex::new(ChainOutput {
            writer,
            evaluator: model.output_evaluator(),
            rows: Vec::with_capacity(settings.samples * columns.len()),
            scratch: Vec::new(),
            full_position: model.layout.initial_position(),
            error: None,
        }));
    }
    let (_multi, bars) = progress::chain_bars(
        settings.chains,
        settings.warmup + settings.samples,
        show_progress,
    );
    let latent_dim = model.layout.latent_dim();
    let callback = |event: &ChainEvent| match event {
        ChainEvent::Draw(draw) => {
            if let Some(bar) = bars.get(draw.chain) {
                let done = if draw.warmup {
                    draw.iteration + 1
                } else {
                    settings.warmup + draw.iteration + 1
                };
                bar.set_position(done as u64);
                if draw.iteration % 50 == 0 {
                    bar.set_message(if draw.warmup { "warm-up" } else { "sampling" });
                }
            }
            if draw.warmup && !save_warmup {
                return;
            }
            let Ok(mut output) = outputs[draw.chain].lock() else {
                return;
            };
            let output = &mut *output;
            if output.error.is_some() || (draw.warmup && output.writer.is_none()) {
                return;
            }
            output.full_position[..latent_dim].copy_from_slice(draw.position);
            let mut rng = stream_rng(0, 0);
            match output
                .evaluator
                .constrained(&output.full_position, &mut rng)
            {
                Ok(values) => {
                    flatten_row(&sites, &values, &mut output.scratch);
                    if !draw.warmup {
                        output.rows.extend_from_slice(&output.scratch);
                    }
                    if let Some(writer) = &mut output.writer {
                        let mut line = draw.stats.values().to_vec();
                        line.extend_from_slice(&output.scratch);
                        if let Err(failure) = writer.row(&line) {
                            output.error = Some(failure);
                        }
                    }
                }
                Err(error) => output.error = Some(Failure::model(vec![error.to_diagnostic()])),
            }
        }
        ChainEvent::AdaptationFinished { chain, adaptation } => {
            let Ok(mut output) = outputs[*chain].lock() else {
                return;
            };
            if let Some(writer) = &mut output.writer {
                let format_row = |row: &[f64]| {
                    row.iter()
                        .map(|v| crate::output::format_number(*v))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut lines = vec![
                    "Adaptation terminated".to_string(),
                    format!(
                        "Step size = {}",
                        crate::output::format_number(adaptation.step_size)
                    ),
                ];
                match &adaptation.inverse_metric {
                    mcmc::InverseMetric::Diag(diagonal) => {
                        lines.push("Diagonal elements of inverse mass matrix:".to_string());
                        lines.push(format_row(diagonal));
                    }
                    mcmc::InverseMetric::Dense { dim, values } => {
                        lines.push("Elements of inverse mass matrix:".to_string());
                        lines.extend(values.chunks((*dim).max(1)).map(format_row));
                    }
                }
                let _ = writer.comments(&lines);
            }
        }
    };
    let result = mcmc::sample(&settings, |_| model.log_density(), &callback, stop);
    for bar in &bars {
        bar.finish_and_clear();
    }
    let result = result.map_err(|error| mcmc_failure(&error))?;
    let mut chains_rows = Vec::new();
    for output in outputs {
        let output = output
            .into_inner()
            .map_err(|_| Failure::run("E0575", "a chain's output was poisoned"))?;
        if let Some(failure) = output.error {
            return Err(failure);
        }
        chains_rows.push(output.rows);
    }
    let slices: Vec<&[f64]> = chains_rows.iter().map(Vec::as_slice).collect();
    let summary = Summary::from_mcmc_columns(&result, &slices, columns.len());
    let mut facts = Map::new();
    let sampling: f64 = result
        .chains
        .iter()
        .map(|c| c.sampling_time.as_secs_f64())
        .sum();
    let warmup: f64 = result
        .chains
        .iter()
        .map(|c| c.warmup_time.as_secs_f64())
        .sum();
    facts.insert("chains".into(), json!(settings.chains));
    facts.insert("warmup".into(), json!(settings.warmup));
    facts.insert("samples".into(), json!(settings.samples));
    facts.insert("sampling_seconds_total".into(), json!(sampling));
    facts.insert("warmup_seconds_total".into(), json!(warmup));
    facts.insert(
        "step_sizes".into(),
        json!(result
            .chains
            .iter()
            .map(|c| c.adaptation.step_size)
            .collect::<Vec<_>>()),
    );
    facts.insert(
        "gradient_evaluations".into(),
        json!(result
            .chains
            .iter()
            .map(|c| c.n_gradient_evaluations)
            .sum::<u64>()),
    );
    if let Some(sampler) = &summary.sampler {
        facts.insert(
            "divergences".into(),
            json!(sampler.divergences.iter().sum::<usize>()),
        );
        facts.insert("e_bfmi".into(), json!(sampler.e_bfmi));
    }
    Ok(RunResult {
        method: method.into(),
        columns,
        draws: chains_rows,
        summary,
        mcmc: true,
        losses: Vec::new(),
        facts,
        interrupted: result.interrupted,
    })
}
