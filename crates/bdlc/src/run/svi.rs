//! `svi`, `map` and `laplace`: fit a guide by stochastic optimisation, then draw from it.
//!
//! Writes `draws.csv` (or `draws.parquet`), `loss.csv` (the loss per step, streamed as the fit
//! goes) and `params.json` (the fitted guide, the params and the layout of the unconstrained
//! vector, which `predict` and the REPL rebuild). A first-order fit saves its state
//! ([`crate::checkpoint`]) and the guide so far every 1,000 steps and on Ctrl-C, and `--resume`
//! continues from that state. The guide's draws stream through the chain driver to the draws
//! file as they are made ([`DrawFile`]); a model too large to hold its draws in memory
//! ([`large::RunPlan`]) keeps only their running statistics.

use crate::checkpoint::{self, LossTrace};
use crate::method::{InitChoice, MethodName, SviMethod};
use crate::output::{write_file, Column};
use crate::progress;
use crate::run::draw_file::{DrawFile, DrawFileLayout};
use crate::run::large::{self, OutputOptions, RunPlan};
use crate::run::outcome::{constrained_rows, infer_failure, output_columns, RunResult};
use crate::session::Failure;
use crate::vi_checks;
use crate::warm_start::WarmStart;
use bdl_infer::diagnostics::streaming::StreamingSummary;
use bdl_infer::diagnostics::{ColumnSummary, Summary};
use bdl_infer::driver::{self, Control};
use bdl_infer::rng::stream_rng;
use bdl_infer::vi::{self, GuideKind, SviCheckpoint, SviError, SviFit};
use bdl_runtime::model::Model;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Fits the guide, checks it (convergence, Pareto k̂, for MAP the distance to the posterior
/// mean) and draws from it.
pub fn run(
    model: &Model,
    method: &SviMethod,
    out: Option<&Path>,
    output: OutputOptions,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    if model.layout.dim() == 0 {
        return Err(Failure::run(
            "E0571",
            "the model has no latent or param sites to fit",
        ));
    }
    if matches!(method.settings.guide, GuideKind::Iaf { .. })
        && model.layout.latent_dim() > vi::guide::MAX_IAF_DIM
    {
        return Err(Failure::usage(
            "E0956",
            format!(
                "the IAF guide covers at most {} latent coordinates, but the model has {}",
                vi::guide::MAX_IAF_DIM,
                model.layout.latent_dim()
            ),
            Some(
                "its networks grow with the square of the dimension; use `--guide lowrank` or \
                 `--guide diag`"
                    .to_string(),
            ),
        ));
    }
    let (sites, columns) = output_columns(model);
    let plan = RunPlan::new(&columns, method.draws, output);
    if plan.stream && method.resample {
        return Err(Failure::usage(
            "E0978",
            format!(
                "`--resample` keeps every draw in memory, but {} draws of {} values are streamed",
                method.draws,
                columns.len()
            ),
            Some(format!(
                "drop `--resample`, or ask for at most {} draws with `--samples`",
                large::STREAM_ABOVE_VALUES / columns.len().max(1)
            )),
        ));
    }
    let name = method.name.as_str();
    let mut settings = method.settings.clone();
    let mut facts = Map::new();
    let mut warnings = Vec::new();
    let mut standardize: Option<(Vec<f64>, Vec<f64>)> = None;
    // The MAP point of the warm start (`[latents, params]`), where the guide's spread is checked
    // against the curvature after the fit.
    let mut map_point: Option<Vec<f64>> = None;
    let warm = match &method.init {
        InitChoice::File(path) => Some(WarmStart::load(path, model)?),
        _ => None,
    };
    // An earlier run: resume its guide when it is the family being fitted; otherwise start at
    // its point (a MAP point is refined by L-BFGS and given curvature scales below), with its
    // marginal scales as the guide's initial scales.
    settings.init.location = if let Some(warm) = &warm {
        {
            facts.insert("init".into(), json!(warm.path.display().to_string()));
            facts.insert("init_method".into(), json!(warm.method));
            let resumable = vi::GuideFamily::from_guide_params(warm.guide.params())
                .ok()
                .zip(vi::GuideFamily::new(&settings.guide, model.layout.latent_dim()).ok())
                .is_some_and(|((saved, _), fitted)| {
                    saved == fitted && !matches!(settings.guide, GuideKind::Laplace)
                });
            if resumable && !warm.is_point() {
                facts.insert("resumed".into(), json!(true));
                let latent_dim = model.layout.latent_dim();
                let mut guide = warm.guide.clone();
                // As after a MAP warm start, the optimiser works in coordinates standardised
                // by the saved guide's location and marginal scales, so that one learning rate
                // suits every coordinate.
                if latent_dim <= vi::map::WARM_START_MAX_DIM && !model.subsampled {
                    let center = warm.guide.params().loc().to_vec();
                    let scales = warm.guide.standard_deviations().to_vec();
                    let standardized =
                        vi::Standardized::new(model.evaluator(), center.clone(), scales.clone());
                    if let Ok(in_u) = standardized.from_original(&warm.guide) {
                        guide = in_u;
                        standardize = Some((center, scales));
                    }
                }
                vi::InitLocation::Resume {
                    guide: guide.into_params(),
                    params: warm.params.clone(),
                }
            } else {
                if !warm.is_point() {
                    settings.init_scales = Some(warm.guide.standard_deviations().to_vec());
                }
                vi::InitLocation::Position(warm.position())
            }
        }
    } else {
        match &method.init {
            // Stan's and NumPyro's default: Uniform(-2, 2) in unconstrained space.
            InitChoice::Uniform => vi::InitLocation::Uniform { radius: 2.0 },
            // Zero in unconstrained space (the median of priors symmetric about zero), params at
            // their initial values.
            InitChoice::Zero => vi::InitLocation::Position(model.layout.initial_position()),
            // Pyro's default: the median of 15 prior draws (also where `map` starts L-BFGS).
            InitChoice::Median | InitChoice::Map | InitChoice::File(_) => {
                vi::InitLocation::Position(model.prior_median_position(settings.seed))
            }
        }
    };
    // L-BFGS needs a deterministic objective; a subsampled plate makes every evaluation a new
    // mini-batch, so such models keep the first-order optimiser unless L-BFGS is named.
    let mut lbfgs_iterations = method.lbfgs;
    if lbfgs_iterations.is_some() && model.subsampled {
        if method.lbfgs_named {
            return Err(Failure::usage(
                "E0906",
                "`--optimizer lbfgs` needs the full data at every evaluation, but the model \
                 subsamples a plate",
                Some("use `--optimizer adam`, or drop `subsample`".to_string()),
            ));
        }
        lbfgs_iterations = None;
    }
    // The warm start: SVI from the L-BFGS MAP point with curvature scales, for models small
    // enough for it and without mini-batches (whose log joint L-BFGS would see one batch of).
    let from_point = warm.as_ref().is_some_and(WarmStart::is_point);
    if method.name == MethodName::Svi
        && (method.init == InitChoice::Map || from_point)
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
                map_point = Some(start.position.clone());
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
                if !from_point {
                    facts.insert("init".into(), json!("map"));
                }
            }
            Ok(None) | Err(_) if from_point => {}
            Ok(None) | Err(_) => {
                facts.insert("init".into(), json!("median (L-BFGS found no mode)"));
            }
        }
    }
    let n_draws = method.draws;
    let (fit, failure): (SviFit, Option<Failure>) = if let Some(max_iterations) = lbfgs_iterations {
        let lbfgs_settings = vi::LbfgsSettings {
            max_iterations,
            ..vi::LbfgsSettings::default()
        };
        let mut evaluator = model.evaluator();
        let map = vi::map::fit_lbfgs(&mut evaluator, &settings, &lbfgs_settings)
            .map_err(infer_failure)?;
        vi_checks::lbfgs(&map.report, &mut facts, &mut warnings);
        if method.name == MethodName::Laplace {
            let position = map.fit.median_position();
            match vi::laplace::approximate(&mut evaluator, &position, settings.seed) {
                Ok(guide) => (SviFit { guide, ..map.fit }, None),
                Err(error) => {
                    let error = SviError::Laplace {
                        message: error.message,
                        partial: Box::new(map.fit.clone()),
                    };
                    (map.fit, Some(infer_failure(error)))
                }
            }
        } else {
            (map.fit, None)
        }
    } else {
        let bar = progress::optimisation_bar(settings.steps, show_progress);
        let mut running = 0.0;
        // `--resume`: the state the stopped run saved, and its loss trace up to there.
        let resumed = match (out, output.resume) {
            (Some(out), true) => Some(checkpoint::read(out, name)?),
            _ => None,
        };
        if let Some(state) = &resumed {
            facts.insert("resumed_at_step".into(), json!(state.next_step));
        }
        // The loss trace streams to `loss.csv` as the fit goes.
        let trace = match out {
            Some(out) => Some(RefCell::new(LossTrace::create(
                out,
                resumed.as_ref().map_or(&[][..], |state| &state.losses),
            )?)),
            None => None,
        };
        let saving_failed: RefCell<Option<Failure>> = RefCell::new(None);
        // Saves the fit's state and the guide so far (`params.json`, in the model's
        // coordinates), after flushing the loss trace, so that a resumed run finds the trace
        // at least as long as the state.
        let save = |state: &SviCheckpoint, original: Result<SviFit, Failure>| {
            let Some(out) = out else {
                return;
            };
            if let Some(trace) = &trace {
                trace.borrow_mut().flush();
            }
            let saved = original.and_then(|fit_original| {
                let params = params_json(model, &fit_original, name);
                let path = out.join("params.json");
                let temporary = path.with_extension("json.partial");
                write_file(&temporary, &format!("{params:#}\n"))?;
                std::fs::rename(&temporary, &path)
                    .map_err(|error| crate::output::io_failure(&path, &error))?;
                checkpoint::write(out, name, state)
            });
            if let Err(failure) = saved {
                saving_failed.borrow_mut().get_or_insert(failure);
            }
        };
        let on_step = |step: usize, loss: f64| {
            if let Some(trace) = &trace {
                trace.borrow_mut().push(step, loss);
            }
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
                let checkpoints = vi::Checkpoints {
                    resume: resumed.as_ref(),
                    every: checkpoint::CHECKPOINT_EVERY,
                    save: |state: &SviCheckpoint, fit: &SviFit| {
                        save(state, to_original(fit));
                    },
                };
                match vi::svi::fit_resumable(make, &settings, stop, on_step, checkpoints) {
                    Ok(fit) => Ok(to_original(&fit)?),
                    Err(error) => Err((error.partial().map(&to_original).transpose()?, error)),
                }
            }
            None => {
                let checkpoints = vi::Checkpoints {
                    resume: resumed.as_ref(),
                    every: checkpoint::CHECKPOINT_EVERY,
                    save: |state: &SviCheckpoint, fit: &SviFit| {
                        save(state, Ok(fit.clone()));
                    },
                };
                vi::svi::fit_resumable(|_| model.evaluator(), &settings, stop, on_step, checkpoints)
                    .map_err(|error| (error.partial().cloned(), error))
            }
        };
        if let Some(trace) = trace {
            trace.into_inner().finish()?;
        }
        if let Some(failure) = saving_failed.into_inner() {
            return Err(failure);
        }
        bar.finish_and_clear();
        let (fit, failure) = match fit_result {
            Ok(fit) => (fit, None),
            Err((partial, error)) => match partial {
                Some(partial) => (partial, Some(infer_failure(error))),
                None => return Err(infer_failure(error)),
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
    let mut positions = None;
    let psis_draws = method.psis_draws;
    if failure.is_none()
        && psis_draws > 0
        && !matches!(fit.guide.params(), vi::GuideParams::Delta { .. })
    {
        let draws = if method.resample {
            psis_draws.max(n_draws)
        } else {
            psis_draws
        };
        // Every plate in full, so that a subsampled model's log joint is exact here.
        let mut evaluator = model.output_evaluator();
        let diagnosed = if plan.stream {
            // A large model: its draws are not kept, each log joint is a pass over all the
            // data, so the draws are evaluated in parallel without gradients, and only as many
            // as settle k̂.
            vi::importance::diagnose_streamed(
                || model.output_evaluator(),
                &fit,
                draws,
                settings.seed,
            )
            .map(|diagnostic| {
                vi_checks::pareto_streamed(&diagnostic, draws, &mut facts, &mut warnings);
                None
            })
        } else {
            vi::importance::diagnose(&mut evaluator, &fit, draws, settings.seed).map(Some)
        };
        match diagnosed {
            Ok(None) => {}
            Ok(Some(diagnostic)) => {
                vi_checks::pareto(&diagnostic, &mut facts, &mut warnings);
                if method.resample {
                    facts.insert("resampled".into(), json!(true));
                    positions = Some(diagnostic.resample(n_draws, settings.seed));
                }
            }
            Err(error) => {
                facts.insert("pareto_k".into(), Value::Null);
                warnings.push(format!(
                    "the Pareto-k̂ diagnostic could not be computed: {error}"
                ));
                if method.resample {
                    return Err(Failure::run(
                        "E0573",
                        format!("the guide's draws cannot be resampled: {error}"),
                    ));
                }
            }
        }
    }
    // A guide can be far narrower than the posterior (a diagonal guide on correlated
    // coordinates, a flow stopped before it stretched) without a large k̂: check its marginal
    // sds against the Laplace approximation's at the warm start's MAP point.
    if let Some(point) = map_point.as_ref().filter(|_| {
        failure.is_none()
            && method.name == MethodName::Svi
            && !matches!(fit.guide.params(), vi::GuideParams::Delta { .. })
    }) {
        let mut evaluator = model.evaluator();
        match vi::laplace::approximate(&mut evaluator, point, settings.seed) {
            Ok(laplace) => vi_checks::spread_against_curvature(
                fit.guide.standard_deviations(),
                laplace.standard_deviations(),
                &model.layout.coordinate_names(),
                &mut facts,
                &mut warnings,
            ),
            Err(error) => warnings.push(format!(
                "the guide's spread could not be checked against the curvature at the MAP \
                 point: {error}"
            )),
        }
    }
    // A MAP point says nothing of how far it is from the posterior mean: check it by
    // importance sampling with the Laplace approximation there as the proposal.
    if failure.is_none()
        && method.name == MethodName::Map
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
    let losses: Vec<f64> = fit.losses.iter().map(|l| l.loss).collect();
    let comments = vec![
        format!("method = {name}"),
        format!("guide = {}", settings.guide.name()),
        format!("steps = {}", fit.losses.len()),
        format!("num_samples = {n_draws}"),
        format!("seed = {}", settings.seed),
    ];
    // The draws stream through the driver to the draws file as they are made: the guide's
    // draws from one stream, or the resampled positions. A run too large for memory keeps only
    // the columns' running statistics, in chunks of the plan's length.
    let n_rows = positions.as_ref().map_or(n_draws, Vec::len);
    let streamed = positions.is_none() && plan.stream;
    let block = if streamed {
        plan.chunk_draws(columns.len().max(model.layout.dim()))
    } else {
        n_rows
    };
    let sink = DrawFile::new(
        model,
        out,
        plan.clone(),
        comments,
        settings.seed,
        DrawFileLayout {
            planned: vec![n_rows],
            block,
            keep_rows: !streamed,
            write_empty: true,
        },
    );
    let guide_rng = || stream_rng(settings.seed, u64::MAX - 1);
    // A sink that refused a draw keeps its failure, which `finish_file` returns.
    let _ = match &positions {
        Some(positions) => driver::draw_independent(
            0,
            positions.len(),
            model.layout.dim(),
            "resampled",
            Control::never(),
            &sink,
            |row| positions[row].clone(),
            drop,
        ),
        None => fit.draw_into(&mut guide_rng(), n_draws, &sink),
    };
    let written = sink.finish_file(|| match positions {
        Some(positions) => positions,
        None => fit.sample_positions(&mut guide_rng(), n_draws),
    })?;
    let (draws, summary) = match written.statistics {
        Some(statistics) => (
            Vec::new(),
            streamed_summary(&statistics, &columns, n_draws)?,
        ),
        None => {
            let summary = Summary::from_draws(&[&written.rows], columns.len());
            (written.rows, summary)
        }
    };
    facts.insert("draws_file".into(), json!(plan.format.file_name()));
    facts.insert("draws_format".into(), json!(plan.format.name()));
    facts.insert("draws_streamed".into(), json!(plan.stream));
    if !plan.left_out.is_empty() {
        facts.insert("draws_by_site".into(), json!(plan.left_out));
    }
    if let Some(out) = out {
        let mut loss_csv = String::from("step,loss\n");
        for loss in &fit.losses {
            loss_csv.push_str(&format!("{},{}\n", loss.step + 1, loss.loss));
        }
        write_file(&out.join("loss.csv"), &loss_csv)?;
        let params = params_json(model, &fit, name);
        write_file(&out.join("params.json"), &format!("{params:#}\n"))?;
        // A finished fit needs no resuming; a stopped one keeps its saved state.
        if !fit.interrupted && failure.is_none() {
            let _ = std::fs::remove_file(out.join(checkpoint::CHECKPOINT_FILE));
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    facts.insert("guide".into(), json!(settings.guide.name()));
    facts.insert("steps".into(), json!(fit.losses.len()));
    facts.insert("particles".into(), json!(settings.particles));
    facts.insert("final_loss".into(), json!(fit.final_loss(100)));
    facts.insert("warnings".into(), json!(warnings));
    Ok(RunResult {
        method: name.into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses,
        facts,
        interrupted: fit.interrupted,
        energies: Vec::new(),
        divergent: Vec::new(),
    })
}

/// The summary of a streamed run's draws from the columns' running statistics; a column with a
/// non-finite draw fails the run, as for draws kept in memory (`run::nonfinite_draws`).
fn streamed_summary(
    statistics: &StreamingSummary,
    columns: &[Column],
    n_draws: usize,
) -> Result<Summary, Failure> {
    let non_finite = statistics.non_finite();
    if let Some(column) = non_finite.iter().position(|&count| count > 0) {
        let others = non_finite.iter().filter(|&&count| count > 0).count() - 1;
        return Err(Failure::run_with_hint(
            "E0984",
            format!(
                "{} of the {n_draws} draws of `{}` are not finite (NaN or infinite){}",
                non_finite[column],
                columns[column].display_name(),
                match others {
                    0 => String::new(),
                    1 => " (and 1 other column)".to_string(),
                    n => format!(" (and {n} other columns)"),
                }
            ),
            "a deterministic value or a site's draw overflowed or left its domain (the log of \
             a negative number, a division by zero); the files hold the draws, `run.json` marks \
             the run as failed",
        ));
    }
    let columns = statistics
        .summaries()
        .into_iter()
        .map(|summary| summary.unwrap_or_else(undefined_summary))
        .collect();
    Ok(Summary {
        columns,
        sampler: None,
        warnings: Vec::new(),
    })
}

/// The summary of a column whose draws are not all finite.
fn undefined_summary() -> ColumnSummary {
    ColumnSummary {
        mean: f64::NAN,
        mcse_mean: None,
        sd: None,
        mcse_sd: None,
        mcse_quantiles: [None; 3],
        q5: f64::NAN,
        q50: f64::NAN,
        q95: f64::NAN,
        ess_bulk: None,
        ess_tail: None,
        r_hat: None,
    }
}

/// The layout of the model's unconstrained vector, one entry per site, as `params.json` records
/// it.
pub(crate) fn layout_json(model: &Model) -> Vec<Value> {
    model
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
        .collect()
}

/// `params.json`: the guide (which `predict` and the REPL can rebuild), the model's params
/// (constrained), and the layout of the unconstrained vector.
fn params_json(model: &Model, fit: &SviFit, method: &str) -> Value {
    let layout = layout_json(model);
    json!({
        "method": method,
        "guide": fit.guide.params(),
        "params_unconstrained": fit.params,
        "final_loss": fit.final_loss(100),
        "layout": layout,
    })
}
