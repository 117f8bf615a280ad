//! `bdlc infer`'s method drivers for programs that embed bdl (the Python package).
//!
//! A program that embeds bdl compiles the model and loads its data itself, then hands the
//! options of a run here as `bdlc infer` flags (`["--method", "svi", "--guide", "mvn"]`). They
//! are parsed by the same `clap` definition, merged over the model's `infer { }` block by the
//! same [`Resolved`] and run by the same [`run_method`] as on the command line, so every method,
//! option, default and diagnostic is the command line's. Nothing is written to disk and no
//! progress bar is drawn; the draws, the sampler's statistics and the pointwise log-likelihood
//! come back in memory as an [`EmbeddedRun`].

use crate::method::Method;
use crate::run::large::OutputOptions;
use crate::run::{run_method, RunResult};
use crate::session::Failure;
use crate::settings::{InferFlags, Resolved};
use bdl_diagnostics::Diagnostic;
use bdl_ir::SettingValue;
use bdl_runtime::model::Model;
use clap::Parser;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

/// The error code of flags that `bdlc infer` would refuse (an unknown flag, a bad value).
const BAD_OPTION: &str = "E0937";

/// `bdlc infer`'s flags alone, for parsing an embedding program's options.
#[derive(Parser, Debug)]
#[command(name = "infer", no_binary_name = true, disable_help_flag = true)]
struct FlagsOnly {
    #[command(flatten)]
    flags: InferFlags,
}

/// A method chosen and checked against the model's `infer { }` block, ready to run.
pub struct PreparedRun {
    method: Method,
    /// The device `--device` chose, for the facts (none when it is the CPU by default).
    device: Option<serde_json::Value>,
    /// The seed of the run (the flag's, else the block's, else 0): the model is built with it.
    pub seed: u64,
    /// The method's name as `--method` spells it.
    pub method_name: String,
}

/// One output site's place among a run's columns.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteColumns {
    /// The site's name.
    pub name: String,
    /// The shape of one value (the largest index of its columns plus one, per axis).
    pub shape: Vec<usize>,
    /// The index of its first column; its elements follow in C order.
    pub first: usize,
}

/// A finished run, held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedRun {
    /// The method's name.
    pub method: String,
    /// The output sites, in column order.
    pub sites: Vec<SiteColumns>,
    /// The number of columns of one draw.
    pub width: usize,
    /// Constrained draws per chain (one chain for the independent draws of a guide), row-major.
    pub draws: Vec<Vec<f64>>,
    /// Whether the draws are Markov chains.
    pub mcmc: bool,
    /// The sampler's statistics per chain, by ArviZ's name (`energy`, `diverging`); NUTS and
    /// HMC only.
    pub stats: Vec<(String, Vec<Vec<f64>>)>,
    /// The loss per optimisation step (SVI, MAP, Laplace).
    pub losses: Vec<f64>,
    /// The pointwise log-likelihood: per observed element, its name (`y.3`) and its value at
    /// every draw, chain after chain. Empty when the model observes nothing.
    pub log_likelihood: Vec<(String, Vec<f64>)>,
    /// The method's facts (`summary.json`'s `facts`), as JSON text.
    pub facts: String,
    /// The warnings of the run (convergence, k̂, R-hat).
    pub warnings: Vec<String>,
    /// Whether the run was stopped early and holds only part of its draws.
    pub interrupted: bool,
}

/// Parses `flags` as `bdlc infer` does and resolves the method against the model's `block`
/// (the `infer { }` settings), with the command line's defaults and checks.
pub fn prepare(
    flags: &[String],
    block: &BTreeMap<String, SettingValue>,
) -> Result<PreparedRun, Vec<Diagnostic>> {
    let parsed = FlagsOnly::try_parse_from(flags).map_err(|error| {
        let text = error.render().to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("bad options")
            .trim_start_matches("error: ");
        vec![Diagnostic::error(BAD_OPTION, first.to_string()).with_hint(
            "the options are `bdlc infer`'s flags, with `_` for `-` (see `bdlc infer --help`)",
        )]
    })?;
    if !parsed.flags.data.is_empty() {
        return Err(vec![Diagnostic::error(
            BAD_OPTION,
            "`data` files cannot be named here: the data arrive with the call",
        )
        .with_hint("pass the arrays (or a DataFrame) as `data=`")]);
    }
    let resolved = Resolved::new(&parsed.flags, block);
    let method = Method::resolve(&resolved, None).map_err(|f| f.diagnostics)?;
    let seed = resolved.seed().map_err(|f| f.diagnostics)?;
    let method_name = crate::infer::method_name(&method).to_string();
    // As on the command line: `--device gpu` without a usable adapter fails before the run.
    let device =
        crate::device::for_inference(parsed.flags.device, true).map_err(|f| f.diagnostics)?;
    Ok(PreparedRun {
        method,
        device,
        seed,
        method_name,
    })
}

impl PreparedRun {
    /// Runs the method on `model` (built with [`PreparedRun::seed`]); `stop` ends it early,
    /// keeping the draws made so far.
    pub fn run(&self, model: &Model, stop: &AtomicBool) -> Result<EmbeddedRun, Vec<Diagnostic>> {
        let mut result = run_method(
            model,
            &self.method,
            None,
            OutputOptions::default(),
            false,
            stop,
        )
        .map_err(|f| f.diagnostics)?;
        if let Some(device) = &self.device {
            result.facts.insert("device".into(), device.clone());
        }
        embedded(model, result).map_err(|f| f.diagnostics)
    }
}

/// Turns a run's result into what the embedding program reads.
fn embedded(model: &Model, result: RunResult) -> Result<EmbeddedRun, Failure> {
    let mut sites: Vec<SiteColumns> = Vec::new();
    for (i, column) in result.columns.iter().enumerate() {
        match sites.last_mut() {
            Some(site) if site.name == column.site => {
                for (extent, &index) in site.shape.iter_mut().zip(&column.index) {
                    *extent = (*extent).max(index + 1);
                }
            }
            _ => sites.push(SiteColumns {
                name: column.site.clone(),
                shape: column.index.iter().map(|&index| index + 1).collect(),
                first: i,
            }),
        }
    }
    let log_likelihood = if model.observed_sites().is_empty() || result.draws.is_empty() {
        Vec::new()
    } else {
        let table = crate::log_lik::table_for_run(model, &result)?;
        table.names.into_iter().zip(table.columns).collect()
    };
    let mut stats = Vec::new();
    if !result.energies.is_empty() {
        stats.push(("energy".to_string(), result.energies.clone()));
    }
    if !result.divergent.is_empty() {
        let diverging = result
            .divergent
            .iter()
            .map(|chain| chain.iter().map(|&d| f64::from(u8::from(d))).collect())
            .collect();
        stats.push(("diverging".to_string(), diverging));
    }
    let warnings = result.warning_messages();
    Ok(EmbeddedRun {
        method: result.method.clone(),
        width: result.columns.len(),
        sites,
        draws: result.draws,
        mcmc: result.mcmc,
        stats,
        losses: result.losses,
        log_likelihood,
        facts: serde_json::Value::Object(result.facts).to_string(),
        warnings,
        interrupted: result.interrupted,
    })
}
