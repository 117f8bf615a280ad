//! `nuts` and `hmc`: Markov chains with Stan's warm-up, each streamed into its own CmdStan CSV
//! file (`chain-N.csv`, sampler columns first) as it samples.

use crate::method::{McmcInit, McmcMethod, MethodName};
use crate::output::{flatten_row, Column, DrawsWriter};
use crate::progress;
use crate::run::outcome::{infer_failure, output_columns, RunResult};
use crate::session::Failure;
use crate::warm_start::WarmStart;
use bdl_infer::diagnostics::Summary;
use bdl_infer::mcmc::{self, ChainEvent, MetricKind};
use bdl_infer::rng::stream_rng;
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// One chain's output: its CSV file and a forward-only evaluator for constrained values.
struct ChainOutput<'m> {
    writer: Option<DrawsWriter>,
    evaluator: bdl_runtime::model::Evaluator<'m>,
    rows: Vec<f64>,
    scratch: Vec<f64>,
    full_position: Vec<f64>,
    error: Option<Failure>,
}

/// Samples with NUTS or static HMC, streaming each chain's draws into its CSV file.
pub fn run(
    model: &Model,
    method: &McmcMethod,
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
    // A warm start: each chain starts at a draw from the earlier run's guide, warm-up starts
    // from the guide's variances as the metric, and the params keep the earlier run's values.
    let warm = match &method.init {
        McmcInit::File(path) => Some(WarmStart::load(path, model)?),
        McmcInit::Uniform => None,
    };
    let mut warm_settings = method.settings.clone();
    let mut initial_position = model.layout.initial_position();
    if let Some(warm) = &warm {
        warm_settings.init =
            mcmc::Init::Positions(warm.chain_positions(warm_settings.chains, warm_settings.seed));
        warm_settings.initial_metric = warm.inverse_metric();
        initial_position[model.layout.latent_dim()..].copy_from_slice(&warm.params);
    }
    let settings = &warm_settings;
    let save_warmup = method.save_warmup;
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
            if method.name == MethodName::Hmc {
                "static"
            } else {
                "nuts"
            }
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
            full_position: initial_position.clone(),
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
    let params = &initial_position[latent_dim..];
    let result = mcmc::sample(
        settings,
        |_| model.log_density().with_params(params),
        &callback,
        stop,
    );
    for bar in &bars {
        bar.finish_and_clear();
    }
    let result = result.map_err(infer_failure)?;
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
    if let Some(warm) = &warm {
        facts.insert("init".into(), json!(warm.path.display().to_string()));
        facts.insert("init_method".into(), json!(warm.method));
        facts.insert(
            "initial_metric".into(),
            json!(if settings.initial_metric.is_some() {
                "the guide's variances"
            } else {
                "unit"
            }),
        );
    }
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
        method: method.name.as_str().into(),
        columns,
        draws: chains_rows,
        summary,
        mcmc: true,
        losses: Vec::new(),
        facts,
        interrupted: result.interrupted,
    })
}
