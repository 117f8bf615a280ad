//! `nuts` and `hmc`: Markov chains with Stan's warm-up, run by the shared driver, each streamed
//! into its own CmdStan CSV file (`chain-N.csv`, sampler columns first) by the
//! [`SamplerFiles`] sink as it samples. With an output folder each chain saves its state there
//! ([`ChainStates`]), from which `--resume` continues a stopped or killed run.

use crate::chain_checkpoint::ChainStates;
use crate::method::{McmcInit, McmcMethod, MethodName};
use crate::progress;
use crate::run::outcome::{output_columns, RunResult};
use crate::run::sink::{common_length, cut_chain_file, cut_comment, SamplerFiles};
use crate::session::Failure;
use crate::warm_start::WarmStart;
use bdl_infer::diagnostics::Summary;
use bdl_infer::driver::Progress;
use bdl_infer::mcmc::{self, MetricKind};
use bdl_runtime::model::Model;
use serde_json::{json, Map};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Samples with NUTS or static HMC, streaming each chain's draws into its CSV file; `resume`
/// continues the chains from the states saved in `out`.
pub fn run(
    model: &Model,
    method: &McmcMethod,
    out: Option<&Path>,
    resume: bool,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    if model.layout.latent_dim() == 0 {
        return Err(Failure::run(
            "E0573",
            "the model has no latent sites to sample",
        ));
    }
    if let Some(site) = model.sites.iter().find(|s| {
        s.discrete
                && !s.observed
                && s.kind == bdl_runtime::handlers::SiteKind::Sample
                // Enumerated sites are summed out of the density and drawn afterwards.
                && !model
                    .enumeration
                    .as_ref()
                    .is_some_and(|e| e.sites.iter().any(|site| site.name == s.name))
    }) {
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
    // `--init pathfinder` runs Pathfinder first and starts likewise from its draws.
    let warm = match &method.init {
        McmcInit::File(path) => Some(WarmStart::load(path, model)?),
        McmcInit::Uniform | McmcInit::Pathfinder => None,
    };
    let mut warm_settings = method.settings.clone();
    let mut pathfinder_facts = Map::new();
    if method.init == McmcInit::Pathfinder {
        // Pathfinder's resampled draws start the chains, and its best normal's variances the
        // metric (Zhang et al., 2022, section 4).
        let pathfinder_settings = bdl_infer::vi::PathfinderSettings {
            seed: warm_settings.seed,
            ..bdl_infer::vi::PathfinderSettings::default()
        };
        let result = crate::run::pathfinder::fit(model, &pathfinder_settings)?;
        let mut warnings = Vec::new();
        crate::run::pathfinder::facts_of(&result, &mut pathfinder_facts, &mut warnings);
        pathfinder_facts.insert("warnings".into(), json!(warnings));
        warm_settings.init =
            mcmc::Init::Positions(result.resample(warm_settings.chains, warm_settings.seed));
        warm_settings.initial_metric = Some(crate::run::pathfinder::inverse_metric(&result));
    }
    let mut initial_position = model.layout.initial_position();
    if let Some(warm) = &warm {
        warm_settings.init =
            mcmc::Init::Positions(warm.chain_positions(warm_settings.chains, warm_settings.seed));
        warm_settings.initial_metric = warm.inverse_metric();
        initial_position[model.layout.latent_dim()..].copy_from_slice(&warm.params);
    }
    let settings = &warm_settings;
    let save_warmup = method.save_warmup;
    let (_, columns) = output_columns(model);
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
    // Each chain's draws go to its `chain-N.csv` as they are made.
    let sink = SamplerFiles::new(
        model,
        out,
        comments,
        settings.chains,
        settings.samples,
        save_warmup,
    )
    .with_initial_position(&initial_position)
    .with_first_chain(settings.first_chain);
    let bars = progress::SamplerBars::new(
        settings.chains,
        settings.warmup,
        settings.samples,
        show_progress,
    );
    let callback = |progress: &Progress| bars.update(progress);
    let params = &initial_position[model.layout.latent_dim()..];
    // Each chain's state is saved in the output folder between iterations, and read from it by
    // `--resume`.
    let states = match out {
        Some(out) => Some(ChainStates::new(
            out,
            method.name.as_str(),
            settings,
            model.layout.latent_dim(),
            save_warmup,
            resume,
        )?),
        None => None,
    };
    let checkpoints: &dyn mcmc::ChainCheckpoints = match &states {
        Some(states) => states,
        None => &mcmc::NoCheckpoints,
    };
    let sampled = mcmc::sample_resumable(
        settings,
        |_| model.log_density().with_params(params),
        &callback,
        &sink,
        checkpoints,
        stop,
    );
    bars.finish();
    if let (Err(_), Some(failure)) = (&sampled, states.as_ref().and_then(|s| s.take_failure())) {
        return Err(failure);
    }
    let mut result = sink.result(sampled)?;
    let mut chains_rows = sink.into_rows()?;
    if result.interrupted {
        keep_common_length(&mut result, &mut chains_rows, out, settings.first_chain)?;
    } else if let Some(states) = &states {
        // A finished run leaves nothing to resume.
        states.remove();
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
    if result.interrupted {
        facts.insert("chains_kept".into(), json!(result.chains.len()));
        facts.insert(
            "draws_kept".into(),
            json!(result.chains.first().map_or(0, |c| c.stats.len())),
        );
    }
    if settings.first_chain > 0 {
        facts.insert("first_chain".into(), json!(settings.first_chain));
    }
    if method.init == McmcInit::Pathfinder {
        facts.insert("init".into(), json!("pathfinder"));
        facts.insert(
            "initial_metric".into(),
            json!("the Pathfinder normal's variances"),
        );
        facts.insert("pathfinder".into(), json!(pathfinder_facts));
    }
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
        energies: result
            .chains
            .iter()
            .map(|chain| chain.stats.iter().map(|stats| stats.energy).collect())
            .collect(),
        divergent: result
            .chains
            .iter()
            .map(|chain| chain.stats.iter().map(|stats| stats.divergent).collect())
            .collect(),
    })
}

/// After an interruption, keeps the chains that made draws, each cut to the fewest draws such a
/// chain made, so that the kept draws form a rectangle (R-hat and ArviZ need one): a chain that
/// made none loses its file (which holds at most warm-up rows), a longer one loses its last rows.
fn keep_common_length(
    result: &mut mcmc::McmcResult,
    chains_rows: &mut Vec<Vec<f64>>,
    out: Option<&Path>,
    first_chain: usize,
) -> Result<(), Failure> {
    let Some(kept) = common_length(result.chains.iter().map(|c| c.stats.len())) else {
        // No draws at all: the caller reports the run as stopped before its first draw.
        result.chains.clear();
        chains_rows.clear();
        if let Some(out) = out {
            for chain in 0..result.settings.chains {
                let _ = std::fs::remove_file(
                    out.join(format!("chain-{}.csv", first_chain + chain + 1)),
                );
            }
        }
        return Ok(());
    };
    let n_columns = chains_rows
        .iter()
        .zip(&result.chains)
        .find(|(_, c)| !c.stats.is_empty())
        .map_or(0, |(rows, c)| rows.len() / c.stats.len());
    let dim = result.dim;
    let planned = result.settings.samples;
    let mut kept_chains = Vec::with_capacity(result.chains.len());
    let mut kept_rows = Vec::with_capacity(result.chains.len());
    for (mut chain, mut rows) in std::mem::take(&mut result.chains)
        .into_iter()
        .zip(std::mem::take(chains_rows))
    {
        let made = chain.stats.len();
        let path = out.map(|out| out.join(format!("chain-{}.csv", first_chain + chain.chain + 1)));
        if made == 0 {
            if let Some(path) = path {
                let _ = std::fs::remove_file(path);
            }
            continue;
        }
        if made > kept {
            if let Some(path) = path {
                cut_chain_file(&path, made - kept, &cut_comment(made, kept, planned))?;
            }
            chain.stats.truncate(kept);
            chain.draws.truncate(kept * dim);
            rows.truncate(kept * n_columns);
        }
        kept_chains.push(chain);
        kept_rows.push(rows);
    }
    result.chains = kept_chains;
    *chains_rows = kept_rows;
    Ok(())
}
