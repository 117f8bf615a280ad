//! Running a parsed [`Method`] on a compiled model: one module per method, each turning the
//! method's options into a `bdl-infer` run and its result into a [`RunResult`].
//!
//! The modules are `prior`, `svi` (SVI, MAP and Laplace), `mcmc` (NUTS and static HMC, which
//! stream one CmdStan CSV per chain as they sample), `exact`, `ensemble` (deep ensembles and
//! MultiSWAG), `sgmcmc` (SGLD and SGHMC) and `gibbs`; `outcome` holds what they share and `sink`
//! the CmdStan CSV draw sink that the driver streams kept draws to; `large` plans the outputs of
//! runs too large to keep their draws in memory (SVI, MAP and Laplace stream theirs). A method module imports
//! `outcome` and `sink` and never this module, so the module graph stays acyclic.

mod ensemble;
mod exact;
mod gibbs;
pub mod large;
mod mcmc;
pub mod outcome;
mod prior;
mod sgmcmc;
mod sink;
mod svi;

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
    let started = Instant::now();
    let mut result = match method {
        Method::Prior { samples, seed } => prior::run(model, *samples, *seed, out)?,
        Method::Svi(svi) => svi::run(model, svi, out, output, show_progress, stop)?,
        Method::Mcmc(mcmc) => mcmc::run(model, mcmc, out, show_progress, stop)?,
        Method::Exact { samples, seed } => exact::run(model, *samples, *seed, out)?,
        Method::Ensemble(settings) => ensemble::run(model, settings, out, show_progress, stop)?,
        Method::Sgmcmc(sgmcmc) => sgmcmc::run(model, sgmcmc, out, show_progress, stop)?,
        Method::Gibbs { blocks, settings } => {
            gibbs::run(model, blocks, settings, out, show_progress, stop)?
        }
    };
    result.facts.insert(
        "wall_seconds".into(),
        json!(started.elapsed().as_secs_f64()),
    );
    Ok(result)
}
