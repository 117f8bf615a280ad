//! The saved states of a NUTS or HMC run's chains (`checkpoint-chain-N.json`, one per chain),
//! from which `bdlc infer --resume DIR` continues a stopped or killed run to the files an
//! uninterrupted run writes, byte for byte.
//!
//! Each chain saves its state between two iterations when [`SAVE_EVERY_SECONDS`] have passed
//! since its last save (and at least twenty times as long as that save took, so that saving costs
//! at most a twentieth of the run), after its last iteration, and when Ctrl-C stops it. A state is
//! written to a temporary file renamed over the previous one, so that a process killed at any
//! moment leaves a whole state. Numbers are saved as the bits of their `f64` (JSON integers), so
//! that nothing is lost to decimal rounding. A state holds the chain's draws so far: a resumed
//! chain writes its `chain-N.csv` again from its start (a killed process may have left that file
//! with a last row cut short, or an interrupted run cut it to the common length of its chains).

use crate::output::{io_failure, write_file};
use crate::session::Failure;
use bdl_infer::driver::{SampleStats, SinkFailed};
use bdl_infer::mcmc::{
    ChainCheckpoints, ChainState, InverseMetric, McmcSettings, SavedMetricAdaptation, SavedWarmup,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Seconds between two saved states of a chain, unless `BDLC_CHECKPOINT_SECONDS` says otherwise:
/// a run killed without warning (SIGKILL, a lost machine) loses at most about this much work
/// when resumed.
pub const SAVE_EVERY_SECONDS: f64 = 5.0;

/// The version of the files' layout.
const FORMAT: u64 = 1;

/// The file of chain `chain_id` (numbered from 1, as `chain-N.csv`).
pub fn state_path(dir: &Path, chain_id: usize) -> PathBuf {
    dir.join(format!("checkpoint-chain-{chain_id}.json"))
}

fn bits(values: &[f64]) -> Value {
    json!(values.iter().map(|v| v.to_bits()).collect::<Vec<u64>>())
}

fn stats_bits(stats: &[SampleStats]) -> Value {
    json!(stats
        .iter()
        .flat_map(|s| s.values())
        .map(f64::to_bits)
        .collect::<Vec<u64>>())
}

/// The state as JSON.
fn document(method: &str, chain_id: usize, state: &ChainState) -> Value {
    let (dense, metric) = match &state.inverse_metric {
        InverseMetric::Diag(diagonal) => (false, diagonal),
        InverseMetric::Dense { values, .. } => (true, values),
    };
    json!({
        "format": FORMAT,
        "method": method,
        "chain": chain_id,
        "next_iteration": state.next_iteration,
        "rng_word_position": state.rng_word_position.to_string(),
        "position": bits(&state.position),
        "gradient": bits(&state.gradient),
        "log_density": state.log_density.to_bits(),
        "step_size": state.step_size.to_bits(),
        "dense_metric": dense,
        "inverse_metric": bits(metric),
        "warmup": state.warmup.as_ref().map(|w| json!({
            "dual_averaging": bits(&w.dual_averaging),
            "counter": w.metric.counter,
            "window_size": w.metric.window_size,
            "next_window": w.metric.next_window,
            "n": w.metric.n.to_bits(),
            "mean": bits(&w.metric.mean),
            "m2": bits(&w.metric.m2),
        })),
        "adapted": state.adapted,
        "warmup_divergences": state.warmup_divergences,
        "gradient_evaluations": state.gradient_evaluations,
        "warmup_draws": bits(&state.warmup_draws),
        "warmup_stats": stats_bits(&state.warmup_stats),
        "draws": bits(&state.draws),
        "stats": stats_bits(&state.stats),
    })
}

/// Writes chain `chain_id`'s state into `dir`, through a temporary file renamed over the last.
pub fn write(dir: &Path, method: &str, chain_id: usize, state: &ChainState) -> Result<(), Failure> {
    let path = state_path(dir, chain_id);
    let temporary = path.with_extension("json.partial");
    write_file(&temporary, &document(method, chain_id, state).to_string())?;
    std::fs::rename(&temporary, &path).map_err(|error| io_failure(&path, &error))
}

/// Reads chain `chain_id`'s state saved in `dir` by a run of `method`: `None` when the chain
/// saved none (it had not finished an iteration), E0987 when it is damaged.
pub fn read(dir: &Path, method: &str, chain_id: usize) -> Result<Option<ChainState>, Failure> {
    let path = state_path(dir, chain_id);
    if !path.is_file() {
        return Ok(None);
    }
    let text = crate::session::read_run_text(&path)?;
    let damaged = |what: &str| {
        Failure::usage(
            "E0987",
            format!("`{}` is damaged: {what}", path.display()),
            Some("start the run again without `--resume` (with `--force`)".to_string()),
        )
    };
    let document: Value = serde_json::from_str(&text).map_err(|_| damaged("not JSON"))?;
    if document["format"].as_u64() != Some(FORMAT) {
        return Err(damaged("an unknown layout"));
    }
    if document["method"].as_str() != Some(method) {
        return Err(damaged(&format!(
            "it was saved by a `{}` run, not `{method}`",
            document["method"].as_str().unwrap_or("?")
        )));
    }
    let numbers = |value: &Value, name: &str| -> Result<Vec<f64>, Failure> {
        value
            .as_array()
            .ok_or_else(|| damaged(&format!("`{name}` is missing")))?
            .iter()
            .map(|v| v.as_u64().map(f64::from_bits))
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| damaged(&format!("`{name}` holds a value that is not saved bits")))
    };
    let number = |value: &Value, name: &str| -> Result<f64, Failure> {
        value
            .as_u64()
            .map(f64::from_bits)
            .ok_or_else(|| damaged(&format!("`{name}` is missing")))
    };
    let count = |value: &Value, name: &str| -> Result<usize, Failure> {
        value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| damaged(&format!("`{name}` is missing")))
    };
    let flag = |value: &Value, name: &str| -> Result<bool, Failure> {
        value
            .as_bool()
            .ok_or_else(|| damaged(&format!("`{name}` is missing")))
    };
    let stats = |value: &Value, name: &str| -> Result<Vec<SampleStats>, Failure> {
        let values = numbers(value, name)?;
        if values.len() % SampleStats::COLUMN_NAMES.len() != 0 {
            return Err(damaged(&format!("`{name}` is cut short")));
        }
        Ok(values
            .chunks_exact(SampleStats::COLUMN_NAMES.len())
            .map(|v| SampleStats {
                log_density: v[0],
                accept_stat: v[1],
                step_size: v[2],
                tree_depth: v[3] as u32,
                n_leapfrog: v[4] as u32,
                divergent: v[5] != 0.0,
                energy: v[6],
            })
            .collect())
    };
    let metric_values = numbers(&document["inverse_metric"], "inverse_metric")?;
    let inverse_metric = if flag(&document["dense_metric"], "dense_metric")? {
        let dim = (metric_values.len() as f64).sqrt().round() as usize;
        if dim * dim != metric_values.len() {
            return Err(damaged("its dense metric is not square"));
        }
        InverseMetric::Dense {
            dim,
            values: metric_values,
        }
    } else {
        InverseMetric::Diag(metric_values)
    };
    let warmup = match &document["warmup"] {
        Value::Null => None,
        warmup => {
            let averaging = numbers(&warmup["dual_averaging"], "warmup.dual_averaging")?;
            let dual_averaging: [f64; 4] = averaging
                .try_into()
                .map_err(|_| damaged("`warmup.dual_averaging` does not hold four numbers"))?;
            Some(SavedWarmup {
                dual_averaging,
                metric: SavedMetricAdaptation {
                    counter: count(&warmup["counter"], "warmup.counter")?,
                    window_size: count(&warmup["window_size"], "warmup.window_size")?,
                    next_window: count(&warmup["next_window"], "warmup.next_window")?,
                    n: number(&warmup["n"], "warmup.n")?,
                    mean: numbers(&warmup["mean"], "warmup.mean")?,
                    m2: numbers(&warmup["m2"], "warmup.m2")?,
                },
            })
        }
    };
    let rng_word_position = document["rng_word_position"]
        .as_str()
        .and_then(|text| text.parse::<u128>().ok())
        .ok_or_else(|| damaged("`rng_word_position` is missing"))?;
    Ok(Some(ChainState {
        next_iteration: count(&document["next_iteration"], "next_iteration")?,
        rng_word_position,
        position: numbers(&document["position"], "position")?,
        gradient: numbers(&document["gradient"], "gradient")?,
        log_density: number(&document["log_density"], "log_density")?,
        step_size: number(&document["step_size"], "step_size")?,
        inverse_metric,
        warmup,
        adapted: flag(&document["adapted"], "adapted")?,
        warmup_divergences: count(&document["warmup_divergences"], "warmup_divergences")?,
        gradient_evaluations: document["gradient_evaluations"]
            .as_u64()
            .ok_or_else(|| damaged("`gradient_evaluations` is missing"))?,
        warmup_draws: numbers(&document["warmup_draws"], "warmup_draws")?,
        warmup_stats: stats(&document["warmup_stats"], "warmup_stats")?,
        draws: numbers(&document["draws"], "draws")?,
        stats: stats(&document["stats"], "stats")?,
    }))
}

/// The time between two saves: `BDLC_CHECKPOINT_SECONDS`, or [`SAVE_EVERY_SECONDS`].
fn save_interval() -> Duration {
    std::env::var("BDLC_CHECKPOINT_SECONDS")
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map_or(Duration::from_secs_f64(SAVE_EVERY_SECONDS), |seconds| {
            Duration::from_secs_f64(seconds)
        })
}

/// When a chain last saved, and how long that took.
struct LastSave {
    at: Instant,
    took: Duration,
}

/// The chain states of a run with an output folder: saved into it, and read from it when the
/// run resumes.
pub struct ChainStates {
    dir: PathBuf,
    method: &'static str,
    first_chain: usize,
    keep_warmup: bool,
    interval: Duration,
    last: Vec<Mutex<LastSave>>,
    resumed: Vec<Mutex<Option<ChainState>>>,
    failure: Mutex<Option<Failure>>,
}

impl ChainStates {
    /// The states of the chains of `settings` (numbered from `first_chain + 1`) over a density
    /// of dimension `dim`, saved into `dir` by a run of `method`; `keep_warmup` keeps the warm-up
    /// draws (written with `--save-warmup`). With `resume`, the states saved there are read
    /// (E0987 when none is, or one is damaged or does not fit the run).
    pub fn new(
        dir: &Path,
        method: &'static str,
        settings: &McmcSettings,
        dim: usize,
        keep_warmup: bool,
        resume: bool,
    ) -> Result<ChainStates, Failure> {
        let n_chains = settings.chains;
        let first_chain = settings.first_chain;
        let mut resumed = Vec::with_capacity(n_chains);
        if resume {
            for chain in 0..n_chains {
                let chain_id = first_chain + chain + 1;
                let state = read(dir, method, chain_id)?;
                if let Some(state) = &state {
                    state
                        .check(dim, settings.warmup, settings.samples)
                        .map_err(|reason| {
                            Failure::usage(
                                "E0987",
                                format!(
                                    "`{}` does not fit this run: {reason}",
                                    state_path(dir, chain_id).display()
                                ),
                                Some(
                                    "start the run again without `--resume` (with `--force`)"
                                        .to_string(),
                                ),
                            )
                        })?;
                }
                resumed.push(state);
            }
            if resumed.iter().all(Option::is_none) {
                return Err(Failure::usage(
                    "E0987",
                    format!("`{}` holds no saved state to resume", dir.display()),
                    Some(format!(
                        "`--resume` continues a run that was stopped or killed after a chain \
                         saved its state (`checkpoint-chain-N.json`, written every {} seconds \
                         and on Ctrl-C); a run that finished has none, and needs no resuming",
                        save_interval().as_secs_f64()
                    )),
                ));
            }
        } else {
            resumed.resize_with(n_chains, || None);
        }
        Ok(ChainStates {
            dir: dir.to_path_buf(),
            method,
            first_chain,
            keep_warmup,
            interval: save_interval(),
            last: (0..n_chains)
                .map(|_| {
                    Mutex::new(LastSave {
                        at: Instant::now(),
                        took: Duration::ZERO,
                    })
                })
                .collect(),
            resumed: resumed.into_iter().map(Mutex::new).collect(),
            failure: Mutex::new(None),
        })
    }

    /// The failure that stopped a save, once.
    pub fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Deletes the saved states once the run has finished (nothing is left to resume).
    pub fn remove(&self) {
        for chain in 0..self.last.len() {
            let _ = std::fs::remove_file(state_path(&self.dir, self.first_chain + chain + 1));
        }
    }
}

impl ChainCheckpoints for ChainStates {
    fn active(&self) -> bool {
        true
    }

    fn resumed(&self, chain: usize) -> Option<ChainState> {
        self.resumed
            .get(chain)?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn due(&self, chain: usize) -> bool {
        let Some(last) = self.last.get(chain) else {
            return false;
        };
        let last = last.lock().unwrap_or_else(PoisonError::into_inner);
        last.at.elapsed() >= self.interval.max(20 * last.took)
    }

    fn save(&self, chain: usize, state: &ChainState) -> Result<(), SinkFailed> {
        let started = Instant::now();
        if let Err(failure) = write(&self.dir, self.method, self.first_chain + chain + 1, state) {
            self.failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(failure);
            return Err(SinkFailed);
        }
        if let Some(last) = self.last.get(chain) {
            let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
            last.at = Instant::now();
            last.took = started.elapsed();
        }
        Ok(())
    }

    fn keep_warmup_draws(&self) -> bool {
        self.keep_warmup
    }
}
