//! Running a parsed [`Method`] on a compiled model: one module per method, each turning the
//! method's options into a `bdl-infer` run and its result into a [`RunResult`].
//!
//! The modules are `prior`, `svi` (SVI, MAP and Laplace), `mcmc` (NUTS and static HMC, which
//! stream one CmdStan CSV per chain as they sample), `exact`, `ensemble` (deep ensembles and
//! MultiSWAG), `sgmcmc` (SGLD and SGHMC), `gibbs` and `pathfinder` (also the `--init pathfinder` start
//! of `mcmc`); `outcome` holds what they share and `sink`
//! the CmdStan CSV draw sink that the driver streams kept draws to, `draw_file` the sink of
//! independent draws (guides, resampled draws, ensembles) that streams them to the one draws
//! file; `large` plans the outputs of
//! runs too large to keep their draws in memory (SVI, MAP and Laplace stream theirs). A method module imports
//! `outcome` and `sink` and never this module, so the module graph stays acyclic.

mod draw_file;
mod ensemble;
mod exact;
mod gibbs;
pub mod large;
mod mcmc;
pub mod outcome;
pub mod pathfinder;
mod prior;
mod sgmcmc;
mod sink;
mod svi;
mod vis;

pub use outcome::RunResult;

use crate::method::Method;
use crate::session::Failure;
use bdl_runtime::model::Model;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Runs a method on a compiled model; writes draws into `out` when given.
pub fn run_method(
    model: &Model,
    method: &Method,
    out: Option<&Path>,
    output: large::OutputOptions,
    show_progress: bool,
    stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    check_memory(model, method)?;
    let started = Instant::now();
    let outcome = match method {
        Method::Prior { samples, seed } => prior::run(model, *samples, *seed, out),
        Method::Svi(svi) => svi::run(model, svi, out, output, show_progress, stop),
        Method::Mcmc(mcmc) => mcmc::run(model, mcmc, out, output.resume, show_progress, stop),
        Method::Pathfinder(pathfinder) => pathfinder::run(model, pathfinder, out),
        Method::Vis(method) => vis::run(model, method, out, show_progress, stop),
        Method::Exact { samples, seed } => exact::run(model, *samples, *seed, out),
        Method::Ensemble(settings) => ensemble::run(model, settings, out, show_progress, stop),
        Method::Sgmcmc(sgmcmc) => sgmcmc::run(model, sgmcmc, out, show_progress, stop),
        Method::Gibbs { blocks, settings } => {
            gibbs::run(model, blocks, settings, out, show_progress, stop)
        }
    };
    let mut result = outcome.map_err(|failure| name_coordinates(failure, model))?;
    if result.interrupted && result.draws.iter().all(Vec::is_empty) {
        return Err(Failure::interrupted(
            "E0985",
            "the run was interrupted before its first draw: there is nothing to keep",
            "warm-up (or burn-in) keeps no draws; let the run reach its sampling phase, or \
             lower `--warmup`",
        ));
    }
    if let Some(failure) = nonfinite_draws(&result) {
        return Err(failure);
    }
    result.facts.insert(
        "wall_seconds".into(),
        json!(started.elapsed().as_secs_f64()),
    );
    Ok(result)
}

/// The most memory a run may plan to use, in GiB, unless `BDLC_MAX_MEMORY_GB` says otherwise.
pub const DEFAULT_MEMORY_LIMIT_GB: u64 = 16;

/// What every chain, member or particle costs besides its draws: a model evaluator with its
/// tape and buffers (a floor, for small models), and a few vectors of the flat vector's size.
const UNIT_OVERHEAD_BYTES: u128 = 64 << 10;

/// The memory a run plans to use, estimated from its counts (chains, draws, members, particles)
/// and the model's size, with a sentence saying where it comes from.
pub fn estimate_memory(model: &Model, method: &Method) -> (u128, String) {
    let dim = model.layout.dim() as u128;
    let columns: u128 = model
        .sites
        .iter()
        .filter(|site| !site.observed)
        .map(|site| site.shape.iter().map(|&n| n as u128).product::<u128>())
        .sum::<u128>()
        + dim;
    let unit = |vectors: u128| UNIT_OVERHEAD_BYTES + vectors * dim * 8;
    let draws = |count: u128| count * columns * 8;
    let (bytes, what) = match method {
        Method::Prior { samples, .. } | Method::Exact { samples, .. } => (
            draws(*samples as u128),
            format!("{samples} draws of {columns} values"),
        ),
        Method::Svi(svi) => {
            let particles = svi.settings.particles as u128;
            // A run too large to keep its draws streams them a chunk at a time (`large`): the
            // chunk's positions, constrained rows and selected columns.
            let kept = if (svi.draws as u128) * columns > large::STREAM_ABOVE_VALUES as u128 {
                3 * large::CHUNK_VALUES as u128 * 8
            } else {
                draws(svi.draws as u128)
            };
            (
                particles * unit(4) + kept,
                format!(
                    "{particles} particles of {dim} coordinates, {} draws of {columns} values",
                    svi.draws
                ),
            )
        }
        Method::Mcmc(mcmc) => {
            let settings = &mcmc.settings;
            let kept = settings.samples as u128
                + if mcmc.save_warmup {
                    settings.warmup as u128
                } else {
                    0
                };
            let chains = settings.chains as u128;
            (
                chains * (unit(8) + draws(kept)),
                format!("{chains} chains × {kept} draws of {columns} values"),
            )
        }
        Method::Ensemble(settings) => {
            let members = settings.members as u128;
            let swag = settings.swag.as_ref().map_or(0, |swag| {
                draws(swag.draws as u128) + (swag.rank as u128 + 2) * dim * 8
            });
            (
                members * (unit(4) + swag),
                format!("{members} members of {dim} coordinates"),
            )
        }
        Method::Sgmcmc(sgmcmc) => {
            let settings = &sgmcmc.settings;
            let chains = settings.chains as u128;
            (
                chains * (unit(4) + draws(settings.samples as u128)),
                format!(
                    "{chains} chains × {} draws of {columns} values",
                    settings.samples
                ),
            )
        }
        Method::Pathfinder(pathfinder) => {
            let settings = &pathfinder.settings;
            let paths = settings.paths as u128;
            (
                paths * (unit(4) + draws(settings.draws_per_path as u128))
                    + draws(pathfinder.samples as u128),
                format!(
                    "{paths} paths × {} draws of {dim} coordinates, {} draws of {columns} values",
                    settings.draws_per_path, pathfinder.samples
                ),
            )
        }
        Method::Vis(method) => {
            let particles = method.settings.particles as u128;
            (
                particles * unit(4 + 2 * method.refine_steps as u128)
                    + draws(method.samples as u128),
                format!(
                    "{particles} particles of {dim} coordinates, {} draws of {columns} values",
                    method.samples
                ),
            )
        }
        Method::Gibbs { settings, .. } => {
            let chains = settings.chains as u128;
            (
                chains * (unit(4) + draws(settings.samples as u128)),
                format!(
                    "{chains} chains × {} draws of {columns} values",
                    settings.samples
                ),
            )
        }
    };
    (bytes, what)
}

/// The memory limit in bytes: `BDLC_MAX_MEMORY_GB` when set to a positive number, else
/// [`DEFAULT_MEMORY_LIMIT_GB`].
fn memory_limit() -> u128 {
    let gigabytes = std::env::var("BDLC_MAX_MEMORY_GB")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|value| value.is_finite() && *value > 0.0)
        .unwrap_or(DEFAULT_MEMORY_LIMIT_GB as f64);
    (gigabytes * (1u128 << 30) as f64) as u128
}

/// Refuses a run whose counts (`--chains`, `--samples`, `--members`, `--particles`, …) would
/// need more memory than the limit (E0983), before anything is allocated.
fn check_memory(model: &Model, method: &Method) -> Result<(), Failure> {
    let (bytes, what) = estimate_memory(model, method);
    let limit = memory_limit();
    if bytes <= limit {
        return Ok(());
    }
    let gib = |bytes: u128| bytes as f64 / (1u128 << 30) as f64;
    Err(Failure::usage(
        "E0983",
        format!(
            "this run would need about {:.1} GiB of memory ({what}); the limit is {:.1} GiB",
            gib(bytes),
            gib(limit)
        ),
        Some(
            "lower `--chains`, `--samples`, `--members` or `--particles`, or raise the limit with the environment variable BDLC_MAX_MEMORY_GB".to_string(),
        ),
    ))
}

/// A run whose draws hold NaN or infinite values failed (E0984): its summary would show `-`
/// where a number belongs. The message names the first column with such values (as the
/// summary spells it), how many of its draws they are, and where the first one is.
pub fn nonfinite_draws(result: &RunResult) -> Option<Failure> {
    let width = result.columns.len();
    if width == 0 {
        return None;
    }
    let mut counts = vec![0usize; width];
    let mut first: Vec<Option<(usize, usize)>> = vec![None; width];
    for (chain, draws) in result.draws.iter().enumerate() {
        for (row, values) in draws.chunks(width).enumerate() {
            for (column, value) in values.iter().enumerate() {
                if !value.is_finite() {
                    counts[column] += 1;
                    first[column].get_or_insert((chain, row));
                }
            }
        }
    }
    let column = counts.iter().position(|&count| count > 0)?;
    let (chain, row) = first[column]?;
    let draws: usize = result.draws.iter().map(|d| d.len() / width).sum();
    let others = counts.iter().filter(|&&count| count > 0).count() - 1;
    let also = match others {
        0 => String::new(),
        1 => " (and 1 other column)".to_string(),
        n => format!(" (and {n} other columns)"),
    };
    Some(Failure::run_with_hint(
        "E0984",
        format!(
            "{} of the {draws} draws of `{}` are not finite (NaN or infinite){also}; the first is draw {} of chain {}",
            counts[column],
            result.columns[column].display_name(),
            row + 1,
            chain + 1,
        ),
        "a deterministic value or a site's draw overflowed or left its domain (the log of a negative number, a division by zero); the files hold the draws, `run.json` marks the run as failed",
    ))
}

/// Names the coordinates that inference errors count (`the gradient of coordinate 10 is NaN`)
/// by the site element they belong to: `coordinate 10 (`beta[3]`)`, with the layout's names of
/// the unconstrained vector (0-based, as `bdlc diagnose` prints them).
pub fn name_coordinates(mut failure: Failure, model: &Model) -> Failure {
    let names = model.layout.coordinate_names();
    for diagnostic in &mut failure.diagnostics {
        diagnostic.message = with_coordinate_names(&diagnostic.message, &names);
    }
    failure
}

/// `text` with every `coordinate N` followed by the name of coordinate N, when there is one.
fn with_coordinate_names(text: &str, names: &[String]) -> String {
    const WORD: &str = "coordinate ";
    let mut named = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(WORD) {
        let after = &rest[found + WORD.len()..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        named.push_str(&rest[..found + WORD.len() + digits]);
        if let Some(name) = after[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|index| names.get(index))
        {
            named.push_str(&format!(" (`{name}`)"));
        }
        rest = &after[digits..];
    }
    named.push_str(rest);
    named
}

#[cfg(test)]
mod tests {
    use crate::run::with_coordinate_names;

    #[test]
    fn coordinates_are_named_by_their_site_element() {
        let names: Vec<String> = ["mu", "beta[0]", "beta[1]"].map(String::from).to_vec();
        assert_eq!(
            with_coordinate_names("the gradient of coordinate 2 is NaN", &names),
            "the gradient of coordinate 2 (`beta[1]`) is NaN"
        );
        assert_eq!(
            with_coordinate_names("coordinate 0 and coordinate 9 of 3", &names),
            "coordinate 0 (`mu`) and coordinate 9 of 3"
        );
        assert_eq!(
            with_coordinate_names("no coordinate here", &names),
            "no coordinate here"
        );
    }
}
