//! The CmdStan CSV draw sinks: the binary's [`DrawSink`]s, which turn each kept unconstrained
//! draw into the output sites' constrained values as the chain makes it, append them to the
//! chain's `chain-N.csv`, and keep them for the summary and `draws.csv`. [`ChainFiles`] serves
//! SG-MCMC and Gibbs; [`SamplerFiles`] serves NUTS and static HMC, whose files also carry the
//! sampler's columns (`lp__`, `stepsize__`, `treedepth__`…), the warm-up draws with
//! `--save-warmup`, and the adapted step size and metric, as CmdStan writes them.
//!
//! A run that fails leaves no chain file behind (the sinks delete theirs), and a chain stopped
//! early (Ctrl-C) says so in a comment line, so that no partial file looks complete. A chain's
//! file is created with its first row: a chain stopped before its first draw leaves no file, and
//! a process ended at any moment leaves no file with a header and no rows.
//!
//! Constrained values may use random numbers (a site drawn inside the model's body), and the
//! batch path ([`constrained_rows`]) draws them from per-chunk streams: the chain's draws are
//! split into as many chunks as rayon has threads, chunk `k` uses `stream_rng(seed, k)` with a
//! fresh evaluator. The sink repeats that split for the planned number of draws, so a finished
//! chain's values are bit-identical to the batch path's. A chain stopped early has fewer draws
//! than planned, which changes the split; its values are then recomputed by the batch path at the
//! end ([`ChainFiles::into_rows`]), and its file rewritten, so that the result stays that of the
//! batch path in every case.

use crate::output::{flatten_row, Column, DrawsWriter};
use crate::run::outcome::{constrained_rows, positions, write_draws_file};
use crate::session::Failure;
use bdl_infer::driver::{Adapted, DrawSink, DrawStats, SampleStats, SinkFailed};
use bdl_infer::rng::{position_key, stream_rng, Rng};
use bdl_runtime::model::{Evaluator, Model, SiteInfo};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One chain's open file, evaluator and constrained rows.
struct ChainFile<'m> {
    /// The file's path and first lines, until its first draw creates it.
    pending: Option<PendingFile>,
    writer: Option<DrawsWriter>,
    evaluator: Option<Evaluator<'m>>,
    rng: Rng,
    rows: Vec<f64>,
    row: Vec<f64>,
}

/// Streams each chain's draws to `chain-N.csv` under an output folder (or only keeps them in
/// memory without one).
pub struct ChainFiles<'m> {
    model: &'m Model,
    sites: Vec<&'m SiteInfo>,
    header: Vec<String>,
    comments: Vec<String>,
    out: Option<PathBuf>,
    seed: u64,
    planned: usize,
    chunk: usize,
    chains: Vec<Mutex<ChainFile<'m>>>,
    failure: Mutex<Option<Failure>>,
}

impl<'m> ChainFiles<'m> {
    /// A sink for `n_chains` chains of `planned` kept draws each, whose files start with
    /// `comments` (then `chain = N`) and the output columns; `seed` seeds the constrained
    /// values' streams as the batch path does.
    pub fn new(
        model: &'m Model,
        out: Option<&Path>,
        comments: Vec<String>,
        n_chains: usize,
        planned: usize,
        seed: u64,
    ) -> ChainFiles<'m> {
        let sites = model.output_sites();
        let header = crate::output::columns_of(&sites)
            .iter()
            .map(Column::csv_name)
            .collect();
        let chains = (0..n_chains)
            .map(|_| {
                Mutex::new(ChainFile {
                    pending: None,
                    writer: None,
                    evaluator: None,
                    rng: stream_rng(seed, 0),
                    rows: Vec::new(),
                    row: Vec::new(),
                })
            })
            .collect();
        ChainFiles {
            model,
            sites,
            header,
            comments,
            out: out.map(Path::to_path_buf),
            seed,
            planned,
            // The batch path's chunk length for a chain of `planned` draws.
            chunk: planned.div_ceil(rayon::current_num_threads().max(1)).max(1),
            chains,
            failure: Mutex::new(None),
        }
    }

    /// The path and comment lines of chain `chain`'s file.
    fn chain_file(&self, out: &Path, chain: usize) -> (PathBuf, Vec<String>) {
        let mut comments = self.comments.clone();
        comments.push(format!("chain = {}", chain + 1));
        (out.join(format!("chain-{}.csv", chain + 1)), comments)
    }

    /// Chain `chain`'s state (a chain that panicked left nothing half-written that matters here:
    /// its run fails anyway).
    fn lock(&self, chain: usize) -> MutexGuard<'_, ChainFile<'m>> {
        self.chains[chain]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the first failure and tells the driver.
    fn fail(&self, failure: Failure) -> SinkFailed {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(failure);
        SinkFailed
    }

    /// A streamed run's result: the algorithm's, or when it failed, the sink's own failure if
    /// the sink stopped it (an IO error names its file), else the algorithm's error. A failed
    /// run's chain files are deleted.
    pub fn result<R, E: Into<bdl_infer::InferError>>(
        &self,
        sampled: Result<R, E>,
    ) -> Result<R, Failure> {
        sampled.map_err(|error| {
            if let Some(out) = &self.out {
                remove_chain_files(out, self.chains.len());
            }
            self.take_failure()
                .unwrap_or_else(|| crate::run::outcome::infer_failure(error))
        })
    }

    /// The failure behind a [`SinkFailed`], once.
    pub fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The constrained rows of every chain, row-major. `draws[c]` are chain `c`'s unconstrained
    /// draws (`dim` numbers each); a chain with fewer draws than planned is recomputed by the
    /// batch path and its file rewritten (see the module's documentation).
    pub fn into_rows(mut self, draws: &[&[f64]], dim: usize) -> Result<Vec<Vec<f64>>, Failure> {
        if let Some(failure) = self.take_failure() {
            return Err(failure);
        }
        let mut all = Vec::with_capacity(self.chains.len());
        let chains = std::mem::take(&mut self.chains);
        for (chain, file) in chains.into_iter().enumerate() {
            let file = file.into_inner().unwrap_or_else(PoisonError::into_inner);
            let n_draws = draws.get(chain).map_or(0, |d| d.len() / dim.max(1));
            if n_draws == self.planned && file.rows.len() == n_draws * self.header.len() {
                all.push(file.rows);
                continue;
            }
            drop(file.writer);
            let positions = positions(draws.get(chain).copied().unwrap_or(&[]), dim);
            let rows = constrained_rows(self.model, &self.sites, &positions, self.seed)?;
            // A chain stopped before its first draw leaves no file (a file with a header and no
            // rows is one that CmdStan readers refuse).
            if let (Some(out), true) = (&self.out, n_draws > 0) {
                let (path, mut comments) = self.chain_file(out, chain);
                // The draws the chain made: more than it keeps when it was cut to the common
                // length of an interrupted run.
                let made = file.rows.len() / self.header.len().max(1);
                if made > n_draws {
                    comments.push(cut_comment(made, n_draws, self.planned));
                } else if n_draws < self.planned {
                    comments.push(interrupted_comment(n_draws, self.planned));
                }
                let columns = crate::output::columns_of(&self.sites);
                // Written beside and renamed over the streamed file, so that a process ended
                // meanwhile (a second Ctrl-C) leaves one whole file or the other.
                let temporary = path.with_extension("csv.partial");
                write_draws_file(&temporary, &comments, &columns, &rows)?;
                std::fs::rename(&temporary, &path)
                    .map_err(|error| crate::output::io_failure(&path, &error))?;
            }
            all.push(rows);
        }
        Ok(all)
    }
}

impl DrawSink for ChainFiles<'_> {
    fn header(&self, unit: usize, _dim: usize) -> Result<(), SinkFailed> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        let (path, comments) = self.chain_file(out, unit);
        self.lock(unit).pending = Some(PendingFile {
            path,
            comments,
            header: self.header.clone(),
            later_comments: Vec::new(),
        });
        Ok(())
    }

    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        _stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let mut file = self.lock(unit);
        let file = &mut *file;
        // A new chunk of the batch path: a fresh evaluator and the chunk's stream.
        if row.is_multiple_of(self.chunk) || file.evaluator.is_none() {
            file.evaluator = Some(self.model.output_evaluator());
            file.rng = stream_rng(self.seed, (row / self.chunk) as u64);
        }
        let Some(evaluator) = file.evaluator.as_mut() else {
            return Err(SinkFailed);
        };
        let values = evaluator
            .constrained(position, &mut file.rng)
            .map_err(|e| self.fail(Failure::model(vec![e.to_diagnostic()])))?;
        flatten_row(&self.sites, &values, &mut file.row);
        file.rows.extend_from_slice(&file.row);
        if let Some(pending) = file.pending.take() {
            file.writer = Some(pending.create(&file.row).map_err(|f| self.fail(f))?);
        } else if let Some(writer) = &mut file.writer {
            writer.row(&file.row).map_err(|f| self.fail(f))?;
        }
        Ok(())
    }

    fn comment(&self, unit: usize, line: &str) -> Result<(), SinkFailed> {
        let mut file = self.lock(unit);
        if let Some(pending) = &mut file.pending {
            pending.later_comments.push(line.to_string());
        }
        if let Some(writer) = &mut file.writer {
            writer
                .comments(&[line.to_string()])
                .map_err(|f| self.fail(f))?;
        }
        Ok(())
    }

    fn finish(&self, unit: usize, _interrupted: bool) -> Result<(), SinkFailed> {
        let mut file = self.lock(unit);
        if let Some(writer) = &mut file.writer {
            writer.flush().map_err(|f| self.fail(f))?;
        }
        Ok(())
    }
}

/// A chain file not created yet: it is created with its first row, so that a chain stopped
/// before its first draw (by Ctrl-C, or by a second Ctrl-C that ends the process) leaves no file
/// with a header and no rows, which ArviZ and CmdStan readers refuse.
struct PendingFile {
    path: PathBuf,
    comments: Vec<String>,
    header: Vec<String>,
    /// Comment lines that go after the header (CmdStan's adaptation results).
    later_comments: Vec<String>,
}

impl PendingFile {
    /// Creates the file with its comment lines, header, later comment lines and first row. They
    /// are written under a temporary name renamed to the file's once the row is on disk, so that
    /// the file never exists without a row, whenever the process ends.
    fn create(self, first_row: &[f64]) -> Result<DrawsWriter, Failure> {
        let temporary = self.path.with_extension("csv.partial");
        let mut writer = DrawsWriter::create(&temporary, &self.comments, &self.header)?;
        if !self.later_comments.is_empty() {
            writer.comments(&self.later_comments)?;
        }
        writer.row(first_row)?;
        writer.flush()?;
        std::fs::rename(&temporary, &self.path)
            .map_err(|error| crate::output::io_failure(&self.path, &error))?;
        writer.renamed(&self.path);
        Ok(writer)
    }
}

/// The comment line that marks a chain file whose chain stopped before its last draw.
pub fn interrupted_comment(n_draws: usize, planned: usize) -> String {
    format!("interrupted: this chain stopped after {n_draws} of {planned} draws")
}

/// The number of draws every chain of an interrupted run keeps: the fewest that a chain which
/// made any has (chains without draws are left out), so that the kept draws form a rectangle of
/// chains × draws, as R-hat and ArviZ's readers need; `None` when no chain made a draw.
pub fn common_length(draws_per_chain: impl IntoIterator<Item = usize>) -> Option<usize> {
    draws_per_chain.into_iter().filter(|&n| n > 0).min()
}

/// The chains' draws (`dim` numbers each) as [`ChainFiles::into_rows`] takes them: unchanged
/// unless `interrupted`, then each chain that made draws cut to [`common_length`].
pub fn cut_to_common_length(slices: Vec<&[f64]>, dim: usize, interrupted: bool) -> Vec<&[f64]> {
    let dim = dim.max(1);
    let kept = common_length(slices.iter().map(|s| s.len() / dim));
    match (interrupted, kept) {
        (true, Some(kept)) => slices
            .into_iter()
            .map(|s| &s[..s.len().min(kept * dim)])
            .collect(),
        _ => slices,
    }
}

/// The comment line of a chain file cut to the common length of an interrupted run.
pub fn cut_comment(made: usize, kept: usize, planned: usize) -> String {
    format!(
        "interrupted: this chain stopped after {made} of {planned} draws; its first {kept} are \
         kept, as many as every chain of the run has"
    )
}

/// Cuts the chain file at `path` after an interruption: its last `drop` rows go, with the comment
/// lines after them, and `comment` ends the file. The new file replaces the old one by a rename,
/// so that a reader sees one or the other.
pub fn cut_chain_file(path: &Path, drop: usize, comment: &str) -> Result<(), Failure> {
    let text = crate::session::read_run_text(path)?;
    let lines: Vec<&str> = text.lines().collect();
    // The header is the first line that is not a comment; rows follow it.
    let header = lines.iter().position(|line| !line.starts_with('#'));
    let rows: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(i, line)| Some(*i) > header && !line.starts_with('#'))
        .map(|(i, _)| i)
        .collect();
    let keep_until = match rows.len().checked_sub(drop) {
        Some(0) | None => header.map_or(0, |h| h + 1),
        Some(n) => rows[n - 1] + 1,
    };
    let mut cut: String = lines[..keep_until.min(lines.len())]
        .iter()
        .filter(|line| !line.starts_with("# interrupted:"))
        .map(|line| format!("{line}\n"))
        .collect();
    cut.push_str(&format!("# {comment}\n"));
    let temporary = path.with_extension("csv.partial");
    crate::output::write_file(&temporary, &cut)?;
    std::fs::rename(&temporary, path).map_err(|error| crate::output::io_failure(path, &error))
}

/// Deletes the `chain-N.csv` files of a failed run (those not yet made are no error).
fn remove_chain_files(out: &Path, n_chains: usize) {
    for chain in 0..n_chains {
        let _ = std::fs::remove_file(out.join(format!("chain-{}.csv", chain + 1)));
    }
}

/// One NUTS or HMC chain's open file, evaluator and constrained rows.
struct SamplerChain<'m> {
    /// The file's path and first lines, until its first row creates it.
    pending: Option<PendingFile>,
    writer: Option<DrawsWriter>,
    evaluator: Option<Evaluator<'m>>,
    full_position: Vec<f64>,
    rows: Vec<f64>,
    values: Vec<f64>,
    line: Vec<f64>,
    n_draws: usize,
}

/// Streams each NUTS or static HMC chain to `chain-N.csv` in CmdStan's layout (sampler columns,
/// then the output sites' constrained values), with the warm-up draws when asked and the
/// adaptation's result between warm-up and sampling (or only keeps the rows without a folder).
///
/// A draw's constrained values use a fresh stream keyed by the draw's position
/// ([`position_key`]), so they depend on the draw alone (and the discrete sites drawn given
/// each draw get independent random numbers), and its position is completed with the layout's initial values of the coordinates the
/// sampler does not move (or a warm start's, [`SamplerFiles::with_initial_position`]).
pub struct SamplerFiles<'m> {
    model: &'m Model,
    sites: Vec<&'m SiteInfo>,
    header: Vec<String>,
    comments: Vec<String>,
    out: Option<PathBuf>,
    save_warmup: bool,
    planned: usize,
    first_chain: usize,
    chains: Vec<Mutex<SamplerChain<'m>>>,
    failure: Mutex<Option<Failure>>,
}

impl<'m> SamplerFiles<'m> {
    /// A sink for `n_chains` chains of `planned` kept draws each, whose files start with
    /// `comments` (then `chain id = N`); `save_warmup` also writes the warm-up draws.
    pub fn new(
        model: &'m Model,
        out: Option<&Path>,
        comments: Vec<String>,
        n_chains: usize,
        planned: usize,
        save_warmup: bool,
    ) -> SamplerFiles<'m> {
        let sites = model.output_sites();
        let mut header: Vec<String> = SampleStats::COLUMN_NAMES
            .iter()
            .map(|name| name.to_string())
            .collect();
        header.extend(
            crate::output::columns_of(&sites)
                .iter()
                .map(Column::csv_name),
        );
        let chains = (0..n_chains)
            .map(|_| {
                Mutex::new(SamplerChain {
                    pending: None,
                    writer: None,
                    evaluator: None,
                    full_position: model.layout.initial_position(),
                    rows: Vec::with_capacity(
                        planned * (header.len() - SampleStats::COLUMN_NAMES.len()),
                    ),
                    values: Vec::new(),
                    line: Vec::new(),
                    n_draws: 0,
                })
            })
            .collect();
        SamplerFiles {
            model,
            sites,
            header,
            comments,
            out: out.map(Path::to_path_buf),
            save_warmup,
            planned,
            first_chain: 0,
            chains,
            failure: Mutex::new(None),
        }
    }

    /// Numbers the chains from `first_chain + 1` (`--chain-offset`): ids and file names
    /// continue as in the larger run this one is part of, so that `bdlc merge` collects the
    /// files unchanged.
    pub fn with_first_chain(mut self, first_chain: usize) -> SamplerFiles<'m> {
        self.first_chain = first_chain;
        self
    }

    /// Completes every draw with `position`'s values of the coordinates the sampler does not
    /// move (the params of a warm start) instead of the layout's initial values.
    pub fn with_initial_position(self, position: &[f64]) -> SamplerFiles<'m> {
        for chain in &self.chains {
            let mut chain = chain.lock().unwrap_or_else(PoisonError::into_inner);
            if chain.full_position.len() == position.len() {
                chain.full_position.copy_from_slice(position);
            }
        }
        self
    }

    /// Chain `chain`'s state.
    fn lock(&self, chain: usize) -> MutexGuard<'_, SamplerChain<'m>> {
        self.chains[chain]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the first failure and tells the driver.
    fn fail(&self, failure: Failure) -> SinkFailed {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(failure);
        SinkFailed
    }

    /// Computes a draw's constrained values into `chain.values`; writes its line (sampler
    /// statistics first) when the chain has a file.
    fn write_draw(
        &self,
        chain: &mut SamplerChain<'m>,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let latent = position.len().min(chain.full_position.len());
        chain.full_position[..latent].copy_from_slice(&position[..latent]);
        let evaluator = chain
            .evaluator
            .get_or_insert_with(|| self.model.output_evaluator());
        let mut rng = stream_rng(position_key(&chain.full_position), 0);
        let values = evaluator
            .constrained(&chain.full_position, &mut rng)
            .map_err(|e| self.fail(Failure::model(vec![e.to_diagnostic()])))?;
        flatten_row(&self.sites, &values, &mut chain.values);
        if chain.writer.is_none() && chain.pending.is_none() {
            return Ok(());
        }
        chain.line.clear();
        if let Some(transition) = &stats.transition {
            chain.line.extend_from_slice(&transition.values());
        }
        chain.line.extend_from_slice(&chain.values);
        if let Some(pending) = chain.pending.take() {
            chain.writer = Some(pending.create(&chain.line).map_err(|f| self.fail(f))?);
        } else if let Some(writer) = &mut chain.writer {
            writer.row(&chain.line).map_err(|f| self.fail(f))?;
        }
        Ok(())
    }

    /// A streamed run's result: the sampler's, or when it failed, the sink's own failure if the
    /// sink stopped it, else the sampler's error. A failed run's chain files are deleted.
    pub fn result<R, E: Into<bdl_infer::InferError>>(
        &self,
        sampled: Result<R, E>,
    ) -> Result<R, Failure> {
        sampled.map_err(|error| {
            if let Some(out) = &self.out {
                remove_chain_files(out, self.chains.len());
            }
            self.failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or_else(|| crate::run::outcome::infer_failure(error))
        })
    }

    /// The constrained rows of every chain's kept draws, row-major.
    pub fn into_rows(self) -> Result<Vec<Vec<f64>>, Failure> {
        if let Some(failure) = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(failure);
        }
        Ok(self
            .chains
            .into_iter()
            .map(|chain| {
                chain
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .rows
            })
            .collect())
    }
}

impl DrawSink for SamplerFiles<'_> {
    fn header(&self, unit: usize, _dim: usize) -> Result<(), SinkFailed> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        let mut comments = self.comments.clone();
        let chain_id = self.first_chain + unit + 1;
        comments.push(format!("chain id = {chain_id}"));
        let path = out.join(format!("chain-{chain_id}.csv"));
        self.lock(unit).pending = Some(PendingFile {
            path,
            comments,
            header: self.header.clone(),
            later_comments: Vec::new(),
        });
        Ok(())
    }

    fn warmup_draw(
        &self,
        unit: usize,
        _iteration: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let mut chain = self.lock(unit);
        if !self.save_warmup || (chain.writer.is_none() && chain.pending.is_none()) {
            return Ok(());
        }
        self.write_draw(&mut chain, position, stats)
    }

    fn adapted(&self, unit: usize, adapted: &Adapted<'_>) -> Result<(), SinkFailed> {
        let mut chain = self.lock(unit);
        if chain.writer.is_none() && chain.pending.is_none() {
            return Ok(());
        }
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
                crate::output::format_number(adapted.step_size)
            ),
        ];
        if adapted.dense {
            let dim = (adapted.inverse_metric.len() as f64).sqrt().round() as usize;
            lines.push("Elements of inverse mass matrix:".to_string());
            lines.extend(adapted.inverse_metric.chunks(dim.max(1)).map(format_row));
        } else {
            lines.push("Diagonal elements of inverse mass matrix:".to_string());
            lines.push(format_row(adapted.inverse_metric));
        }
        let chain = &mut *chain;
        match (&mut chain.writer, &mut chain.pending) {
            (Some(writer), _) => writer.comments(&lines).map_err(|f| self.fail(f)),
            (None, Some(pending)) => {
                pending.later_comments.extend(lines);
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    fn draw(
        &self,
        unit: usize,
        _row: usize,
        position: &[f64],
        stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let mut chain = self.lock(unit);
        let chain = &mut *chain;
        self.write_draw(chain, position, stats)?;
        chain.rows.extend_from_slice(&chain.values);
        chain.n_draws += 1;
        Ok(())
    }

    fn comment(&self, unit: usize, line: &str) -> Result<(), SinkFailed> {
        let mut chain = self.lock(unit);
        if let Some(pending) = &mut chain.pending {
            pending.later_comments.push(line.to_string());
        }
        if let Some(writer) = &mut chain.writer {
            writer
                .comments(&[line.to_string()])
                .map_err(|f| self.fail(f))?;
        }
        Ok(())
    }

    fn finish(&self, unit: usize, interrupted: bool) -> Result<(), SinkFailed> {
        let mut chain = self.lock(unit);
        let n_draws = chain.n_draws;
        if let Some(writer) = &mut chain.writer {
            if interrupted {
                writer
                    .comments(&[interrupted_comment(n_draws, self.planned)])
                    .map_err(|f| self.fail(f))?;
            }
            writer.flush().map_err(|f| self.fail(f))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;
    use bdl_runtime::data::Completeness;

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// A chain streamed through the sink, finished or stopped early, gives the batch path's rows
    /// and file, bit for bit, whatever the number of threads (a chain stopped early marked as
    /// such).
    #[test]
    fn streamed_rows_and_files_equal_the_batch_paths() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/sine_sgld.bdl");
        let model = Session::new()
            .load(&path, &[], Completeness::All, 7)
            .expect("the model compiles");
        let dim = model.layout.dim();
        let planned = 10;
        let positions: Vec<Vec<f64>> = (0..planned)
            .map(|i| (0..dim).map(|k| 0.1 * i as f64 - 0.03 * k as f64).collect())
            .collect();
        let dir = std::env::temp_dir().join(format!("bdl-sink-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| {
                let sites = model.output_sites();
                let columns = crate::output::columns_of(&sites);
                for n in [planned, 4] {
                    let comments = vec!["method = test".to_string()];
                    let sink = ChainFiles::new(&model, Some(&dir), comments.clone(), 1, planned, 7);
                    sink.header(0, dim).expect("the file is created");
                    for (row, position) in positions[..n].iter().enumerate() {
                        let stats = DrawStats {
                            sampler: "test",
                            iteration: row,
                            step_size: None,
                            transition: None,
                        };
                        sink.draw(0, row, position, &stats)
                            .expect("the draw is written");
                    }
                    sink.finish(0, n < planned).expect("the file is flushed");
                    let flat: Vec<f64> = positions[..n].concat();
                    let rows = sink.into_rows(&[&flat], dim).expect("the rows");
                    let batch = constrained_rows(&model, &sites, &positions[..n], 7)
                        .expect("the batch rows");
                    assert_eq!(bits(&rows[0]), bits(&batch), "{threads} threads, {n} draws");
                    let streamed = std::fs::read(dir.join("chain-1.csv")).expect("the file");
                    let expected_path = dir.join("expected.csv");
                    let mut expected_comments = comments;
                    expected_comments.push("chain = 1".to_string());
                    if n < planned {
                        expected_comments.push(interrupted_comment(n, planned));
                    }
                    write_draws_file(&expected_path, &expected_comments, &columns, &batch)
                        .expect("the batch file");
                    let expected = std::fs::read(&expected_path).expect("the batch file");
                    assert_eq!(streamed, expected, "{threads} threads, {n} draws");
                }
            });
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run that fails leaves no chain file behind, and a chain stopped early says so in its
    /// file, for both sinks.
    #[test]
    fn failed_runs_leave_no_chain_files_and_interrupted_chains_are_marked() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/sine_sgld.bdl");
        let model = Session::new()
            .load(&path, &[], Completeness::All, 7)
            .expect("the model compiles");
        let dim = model.layout.dim();
        let dir = std::env::temp_dir().join(format!("bdl-sink-marks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let transition = SampleStats {
            log_density: -1.0,
            accept_stat: 0.9,
            step_size: 0.5,
            tree_depth: 2,
            n_leapfrog: 3,
            divergent: false,
            energy: 1.5,
        };
        let stats = DrawStats {
            sampler: "nuts",
            iteration: 0,
            step_size: Some(0.5),
            transition: Some(transition),
        };
        let position = vec![0.1; dim];
        let chain_file = |chain: usize| dir.join(format!("chain-{chain}.csv"));

        // NUTS and HMC: chain 1 stops after 3 of 5 draws; its file says so, chain 2's does not.
        let sink = SamplerFiles::new(&model, Some(&dir), vec!["test".into()], 2, 5, false);
        for unit in 0..2 {
            sink.header(unit, dim).expect("the file is created");
        }
        for row in 0..3 {
            sink.draw(0, row, &position, &stats)
                .expect("the draw is written");
        }
        sink.finish(0, true).expect("the file is flushed");
        for row in 0..5 {
            sink.draw(1, row, &position, &stats)
                .expect("the draw is written");
        }
        sink.finish(1, false).expect("the file is flushed");
        let marked = std::fs::read_to_string(chain_file(1)).expect("chain 1's file");
        assert!(marked.ends_with("# interrupted: this chain stopped after 3 of 5 draws\n"));
        assert_eq!(
            marked.lines().filter(|l| !l.starts_with('#')).count(),
            1 + 3
        );
        let complete = std::fs::read_to_string(chain_file(2)).expect("chain 2's file");
        assert!(!complete.contains("interrupted"));
        assert!(complete.starts_with("# test\n# chain id = 2\nlp__,accept_stat__"));
        // The same run failing instead: both files are deleted.
        let failed = sink.result::<(), _>(Err(bdl_infer::mcmc::McmcError::NoParameters));
        assert!(failed.is_err());
        assert!(!chain_file(1).exists() && !chain_file(2).exists());

        // SG-MCMC and Gibbs: an interrupted chain's rewritten file is marked, a failure deletes.
        let sink = ChainFiles::new(&model, Some(&dir), vec!["test".into()], 1, 5, 7);
        sink.header(0, dim).expect("the file is created");
        for row in 0..2 {
            sink.draw(0, row, &position, &stats)
                .expect("the draw is written");
        }
        sink.finish(0, true).expect("the file is flushed");
        let flat = position.repeat(2);
        sink.into_rows(&[&flat], dim).expect("the rows");
        let marked = std::fs::read_to_string(chain_file(1)).expect("chain 1's file");
        assert!(marked.contains("# interrupted: this chain stopped after 2 of 5 draws\n"));
        let sink = ChainFiles::new(&model, Some(&dir), vec!["test".into()], 1, 5, 7);
        sink.header(0, dim).expect("the file is created");
        assert!(chain_file(1).exists());
        let failed = sink.result::<(), _>(Err(bdl_infer::mcmc::McmcError::NoParameters));
        assert!(failed.is_err());
        assert!(!chain_file(1).exists());

        // A chain cut to the common length of an interrupted run says how many it made.
        let sink = ChainFiles::new(&model, Some(&dir), vec!["test".into()], 1, 5, 7);
        sink.header(0, dim).expect("the header is kept");
        for row in 0..4 {
            sink.draw(0, row, &position, &stats)
                .expect("the draw is written");
        }
        sink.finish(0, true).expect("the file is flushed");
        let flat = position.repeat(3);
        let rows = sink.into_rows(&[&flat], dim).expect("the rows");
        assert_eq!(rows.len(), 1);
        let cut = std::fs::read_to_string(chain_file(1)).expect("chain 1's file");
        assert!(
            cut.contains(&format!("# {}\n", cut_comment(4, 3, 5))),
            "{cut}"
        );
        assert_eq!(cut.lines().filter(|l| !l.starts_with('#')).count(), 1 + 3);
        std::fs::remove_file(chain_file(1)).expect("chain 1's file is removed");

        // A chain stopped before its first draw (in warm-up) leaves no file at all, for both
        // sinks: a header without rows is a file that CmdStan readers refuse.
        let sink = SamplerFiles::new(&model, Some(&dir), vec!["test".into()], 1, 5, false);
        sink.header(0, dim).expect("the header is kept");
        sink.comment(0, "a note").expect("the note is kept");
        sink.finish(0, true).expect("nothing to flush");
        assert!(!chain_file(1).exists());
        let sink = ChainFiles::new(&model, Some(&dir), vec!["test".into()], 1, 5, 7);
        sink.header(0, dim).expect("the header is kept");
        sink.finish(0, true).expect("nothing to flush");
        let rows = sink.into_rows(&[&[]], dim).expect("no rows");
        assert!(rows[0].is_empty());
        assert!(!chain_file(1).exists());
        // The adaptation's lines, given before the first draw, follow the header.
        let sink = SamplerFiles::new(&model, Some(&dir), vec!["test".into()], 1, 5, false);
        sink.header(0, dim).expect("the header is kept");
        let inverse_metric = vec![1.0; dim];
        let adapted = Adapted {
            step_size: 0.25,
            inverse_metric: &inverse_metric,
            dense: false,
        };
        sink.adapted(0, &adapted).expect("the lines are kept");
        sink.draw(0, 0, &position, &stats)
            .expect("the draw is written");
        sink.finish(0, false).expect("the file is flushed");
        let text = std::fs::read_to_string(chain_file(1)).expect("chain 1's file");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("lp__,") && lines[3] == "# Adaptation terminated");
        assert_eq!(lines[4], "# Step size = 0.25");
        assert!(!lines.last().expect("a row").starts_with('#'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
