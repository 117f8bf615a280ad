//! The saved state of an SVI or MAP fit (`checkpoint.json`) and its streamed loss trace
//! (`loss.csv`), from which `bdlc infer --resume DIR` continues a stopped or killed run to the
//! files an uninterrupted run writes, byte for byte.
//!
//! The state is saved every [`CHECKPOINT_EVERY`] steps and when Ctrl-C stops the fit, by a
//! rename over the previous one, so that a process killed at any moment leaves a whole state.
//! Numbers are saved as the bits of their `f64` (JSON integers), so that nothing is lost to
//! decimal rounding.

pub use crate::output::CHECKPOINT_FILE;
use crate::output::{io_failure, unbroken, write_file};
use crate::session::Failure;
use bdl_infer::vi::{OptimizerState, StepLoss, SviCheckpoint};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Steps between two saved states: a run killed without warning (SIGKILL, a lost machine) loses
/// at most this many steps when resumed.
pub const CHECKPOINT_EVERY: usize = 1000;

/// The version of `checkpoint.json`'s layout.
const FORMAT: u64 = 1;

fn bits(values: &[f64]) -> Value {
    json!(values.iter().map(|v| v.to_bits()).collect::<Vec<u64>>())
}

/// Writes `state` to `dir`'s `checkpoint.json`, through a temporary file renamed over it.
pub fn write(dir: &Path, method: &str, state: &SviCheckpoint) -> Result<(), Failure> {
    let document = json!({
        "format": FORMAT,
        "method": method,
        "next_step": state.next_step,
        "params": bits(&state.params),
        "first_moment": bits(&state.optimizer.first_moment),
        "second_moment": bits(&state.optimizer.second_moment),
        "n_updates": state.optimizer.n_updates,
        "loss_steps": state.losses.iter().map(|l| l.step).collect::<Vec<_>>(),
        "losses": state.losses.iter().map(|l| l.loss.to_bits()).collect::<Vec<_>>(),
        "skipped_steps": state.skipped_steps,
        "consecutive_skips": state.consecutive_skips,
        "averages": state.averages.as_ref().map(|(current, in_current, sums)| json!({
            "current": bits(current),
            "in_current": in_current,
            "sums": sums.iter().map(|s| bits(s)).collect::<Vec<_>>(),
        })),
    });
    let path = dir.join(CHECKPOINT_FILE);
    let temporary = path.with_extension("json.partial");
    write_file(&temporary, &document.to_string())?;
    std::fs::rename(&temporary, &path).map_err(|error| io_failure(&path, &error))
}

/// Reads the state saved in `dir` by a run of `method` (E0987 when there is none or it is
/// damaged, or was saved by another method).
pub fn read(dir: &Path, method: &str) -> Result<SviCheckpoint, Failure> {
    let path = dir.join(CHECKPOINT_FILE);
    if !path.is_file() {
        return Err(Failure::usage(
            "E0987",
            format!("`{}` holds no saved state to resume", dir.display()),
            Some(format!(
                "`--resume` continues a run that was stopped or killed after its first saved \
                 state (`{CHECKPOINT_FILE}`, written every {CHECKPOINT_EVERY} steps and on \
                 Ctrl-C); a run that finished has none, and needs no resuming"
            )),
        ));
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
    let counts = |value: &Value, name: &str| -> Result<Vec<usize>, Failure> {
        value
            .as_array()
            .ok_or_else(|| damaged(&format!("`{name}` is missing")))?
            .iter()
            .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| damaged(&format!("`{name}` holds a value that is not a count")))
    };
    let count = |value: &Value, name: &str| -> Result<usize, Failure> {
        value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| damaged(&format!("`{name}` is missing")))
    };
    let loss_steps = counts(&document["loss_steps"], "loss_steps")?;
    let loss_values = numbers(&document["losses"], "losses")?;
    if loss_steps.len() != loss_values.len() {
        return Err(damaged("`loss_steps` and `losses` differ in length"));
    }
    let averages = match &document["averages"] {
        Value::Null => None,
        averages => Some((
            numbers(&averages["current"], "averages.current")?,
            count(&averages["in_current"], "averages.in_current")?,
            averages["sums"]
                .as_array()
                .ok_or_else(|| damaged("`averages.sums` is missing"))?
                .iter()
                .map(|sum| numbers(sum, "averages.sums"))
                .collect::<Result<Vec<_>, _>>()?,
        )),
    };
    Ok(SviCheckpoint {
        next_step: count(&document["next_step"], "next_step")?,
        params: numbers(&document["params"], "params")?,
        optimizer: OptimizerState {
            first_moment: numbers(&document["first_moment"], "first_moment")?,
            second_moment: numbers(&document["second_moment"], "second_moment")?,
            n_updates: document["n_updates"]
                .as_u64()
                .ok_or_else(|| damaged("`n_updates` is missing"))?,
        },
        losses: loss_steps
            .into_iter()
            .zip(loss_values)
            .map(|(step, loss)| StepLoss { step, loss })
            .collect(),
        skipped_steps: counts(&document["skipped_steps"], "skipped_steps")?,
        consecutive_skips: count(&document["consecutive_skips"], "consecutive_skips")?,
        averages,
    })
}

/// One line of `loss.csv`: the step from 1, and the loss.
pub fn loss_line(loss: &StepLoss) -> String {
    format!("{},{}\n", loss.step + 1, loss.loss)
}

/// `loss.csv` written as the fit goes: a line per step through a buffer that reaches the file
/// every fifth of a second and at every saved state, so that a stopped or killed run has its
/// loss trace up to a moment before. The file is created with its first row, never as a header
/// alone: a run killed before its first step leaves no `loss.csv` rather than an empty table.
pub struct LossTrace {
    /// The open file, once a row has been written.
    writer: Option<BufWriter<File>>,
    /// The header (and a resumed run's earlier rows) not yet in the file.
    pending: String,
    path: PathBuf,
    flushed: Instant,
    failure: Option<Failure>,
}

impl LossTrace {
    /// Prepares `dir`'s `loss.csv` with its header and the losses of the steps already taken (a
    /// resumed run's, written at once); a fresh run's file appears with its first step.
    pub fn create(dir: &Path, taken: &[StepLoss]) -> Result<LossTrace, Failure> {
        let path = dir.join("loss.csv");
        let mut pending = String::from("step,loss\n");
        for loss in taken {
            pending.push_str(&loss_line(loss));
        }
        // A file left by an earlier run in this folder must not stand for this one.
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| io_failure(&path, &e))?;
        }
        let mut trace = LossTrace {
            writer: None,
            pending,
            path,
            flushed: Instant::now(),
            failure: None,
        };
        if !taken.is_empty() {
            trace.open()?;
        }
        Ok(trace)
    }

    /// Creates the file and writes what is pending in one write.
    fn open(&mut self) -> Result<(), Failure> {
        let path = &self.path;
        let file = File::create(path).map_err(|e| io_failure(path, &e))?;
        let mut writer = BufWriter::new(file);
        let text = std::mem::take(&mut self.pending);
        unbroken(|| {
            writer.write_all(text.as_bytes())?;
            writer.flush()
        })
        .map_err(|e| io_failure(path, &e))?;
        self.writer = Some(writer);
        self.flushed = Instant::now();
        Ok(())
    }

    /// Appends one step's loss; the first write error is kept for [`LossTrace::finish`].
    pub fn push(&mut self, step: usize, loss: f64) {
        let line = loss_line(&StepLoss { step, loss });
        if self.writer.is_none() {
            if self.failure.is_some() {
                return;
            }
            self.pending.push_str(&line);
            if let Err(failure) = self.open() {
                self.failure = Some(failure);
            }
            return;
        }
        if let Some(writer) = self.writer.as_mut() {
            let written = unbroken(|| writer.write_all(line.as_bytes()));
            self.keep(written);
        }
        if self.flushed.elapsed() >= Duration::from_millis(200) {
            self.flush();
        }
    }

    /// Writes out what the buffer holds.
    pub fn flush(&mut self) {
        self.flushed = Instant::now();
        if let Some(writer) = self.writer.as_mut() {
            let flushed = unbroken(|| writer.flush());
            self.keep(flushed);
        }
    }

    fn keep(&mut self, outcome: std::io::Result<()>) {
        if let (Err(error), None) = (outcome, &self.failure) {
            self.failure = Some(io_failure(&self.path, &error));
        }
    }

    /// Flushes (creating a header-only file when the fit took no step), and reports the first
    /// write error.
    pub fn finish(mut self) -> Result<(), Failure> {
        if self.writer.is_none() && self.failure.is_none() {
            if let Err(failure) = self.open() {
                self.failure = Some(failure);
            }
        }
        self.flush();
        match self.failure.take() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

impl Drop for LossTrace {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.as_mut() {
            let _ = unbroken(|| writer.flush());
        }
    }
}
