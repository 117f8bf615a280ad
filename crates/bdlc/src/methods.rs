//! The methods of the teaching material beyond SVI and MCMC: `exact`, `ensemble`, `sgld` and
//! `gibbs`.

use crate::infer::RunResult;
use crate::session::Failure;
use crate::settings::Resolved;
use bdl_runtime::model::Model;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs one of the methods that are not SVI or MCMC.
pub fn run_method(
    _model: &Model,
    _resolved: &Resolved,
    method: &str,
    _out: Option<&Path>,
    _show_progress: bool,
    _stop: &AtomicBool,
) -> Result<RunResult, Failure> {
    Err(Failure::usage("E0907", format!("method `{method}` is not available in this build"), None))
}
