//! The draws-file sink of independent draws: the binary's [`DrawSink`] for the methods whose
//! draws are not Markov chains (a fitted guide's draws for SVI, MAP and Laplace, resampled
//! draws, an ensemble's members and MultiSWAG's draws). It turns each unconstrained draw into
//! the output sites' constrained values as the driver hands it over and appends them to the one
//! draws file (`draws.csv` or `draws.parquet`), in the order of the draws' global row numbers.
//!
//! Units (ensemble members) may finish in any order; a draw that arrives before the ones in front
//! of it waits until they have come, so the file is always a prefix of the run's rows.
//!
//! Constrained values may use random numbers (a site drawn inside the model's body), and the
//! batch path (`run::outcome::constrained_rows_from`) draws them from per-chunk streams: the rows are split
//! into blocks (all rows at once, or a streamed run's chunks), each block into as many pieces as
//! rayon has threads, and piece `k` of block `c` uses `stream_rng(seed, (c << 16) + k)` with a
//! fresh evaluator. The sink repeats that split for the planned rows, so its values are
//! bit-identical to the batch path's. When a run ends with other rows than planned (an
//! interrupted ensemble, a member whose SWAG phase collected nothing), [`DrawFile::finish_file`]
//! recomputes the rows by the batch path and rewrites the file, so that the result stays the
//! batch path's in every case.
//!
//! A run that fails leaves no draws file behind (the sink deletes it).

use crate::output::{flatten_row, Column};
use crate::run::large::{self, DrawsFile, RunPlan};
use crate::session::Failure;
use bdl_infer::diagnostics::streaming::StreamingSummary;
use bdl_infer::driver::{self, Control, DrawSink, DrawStats, SinkFailed};
use bdl_infer::rng::{stream_rng, Rng};
use bdl_runtime::model::{Evaluator, Model, SiteInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Streams given unconstrained positions (resampled draws) through the driver to `draws.csv`
/// in `out` (every column, `comments` first) and returns their constrained rows.
pub fn stream_positions(
    model: &Model,
    out: Option<&Path>,
    comments: Vec<String>,
    positions: &[Vec<f64>],
    seed: u64,
) -> Result<Vec<f64>, Failure> {
    let n_columns = crate::output::columns_of(&model.output_sites()).len();
    let plan = RunPlan {
        stream: false,
        format: large::DrawsFormat::Csv,
        written: (0..n_columns).collect(),
        left_out: Vec::new(),
    };
    let sink = DrawFile::new(
        model,
        out,
        plan,
        comments,
        seed,
        DrawFileLayout {
            planned: vec![positions.len()],
            block: positions.len(),
            keep_rows: true,
            write_empty: true,
        },
    );
    // A sink that refused a draw keeps its failure, which `finish_file` returns.
    let _ = driver::draw_independent(
        0,
        positions.len(),
        model.layout.dim(),
        "resampled",
        Control::never(),
        &sink,
        |row| positions[row].clone(),
        drop,
    );
    Ok(sink.finish_file(|| positions.to_vec())?.rows)
}

/// How the sink's rows are laid out and kept.
pub struct DrawFileLayout {
    /// Planned rows per unit, in unit order: unit `u`'s row `r` is global row
    /// `sum(planned[..u]) + r`.
    pub planned: Vec<usize>,
    /// Rows per block of the batch path's random streams: all planned rows for a run kept in
    /// memory, the streamed chunk's length for a streamed run.
    pub block: usize,
    /// Whether the constrained rows are kept in memory (else only their running statistics).
    pub keep_rows: bool,
    /// Whether the draws file is written even when no draw was made (a header without rows).
    pub write_empty: bool,
}

/// What the sink wrote and kept.
pub struct DrawFileRows {
    /// The constrained rows, row after row, when the layout keeps them.
    pub rows: Vec<f64>,
    /// The running statistics of every column, when the layout does not keep the rows.
    pub statistics: Option<StreamingSummary>,
}

/// The state behind the sink's lock.
struct State<'m> {
    file: Option<DrawsFile>,
    evaluator: Option<Evaluator<'m>>,
    rng: Rng,
    /// The next global row to process.
    next: usize,
    /// Draws that arrived before the rows in front of them, by global row.
    waiting: BTreeMap<usize, Vec<f64>>,
    /// Rows received per unit.
    received: Vec<usize>,
    /// Whether a draw came from a unit the plan did not count.
    unplanned: bool,
    row: Vec<f64>,
    /// Constrained rows not yet pushed to the file (a Parquet file takes them a chunk at a time).
    pending: Vec<f64>,
    selected: Vec<f64>,
    kept: Vec<f64>,
    statistics: Option<StreamingSummary>,
}

/// Streams independent draws to the run's one draws file (or only keeps them without a folder).
pub struct DrawFile<'m> {
    model: &'m Model,
    sites: Vec<&'m SiteInfo>,
    columns: Vec<Column>,
    comments: Vec<String>,
    out: Option<PathBuf>,
    plan: RunPlan,
    seed: u64,
    layout: DrawFileLayout,
    offsets: Vec<usize>,
    total: usize,
    threads: usize,
    state: Mutex<State<'m>>,
    failure: Mutex<Option<Failure>>,
}

impl<'m> DrawFile<'m> {
    /// A sink whose file in `out` follows `plan` (format, columns) and starts with `comments`;
    /// `seed` seeds the constrained values' streams as the batch path does.
    pub fn new(
        model: &'m Model,
        out: Option<&Path>,
        plan: RunPlan,
        comments: Vec<String>,
        seed: u64,
        layout: DrawFileLayout,
    ) -> DrawFile<'m> {
        let sites = model.output_sites();
        let columns = crate::output::columns_of(&sites);
        let mut offsets = Vec::with_capacity(layout.planned.len());
        let mut total = 0;
        for &rows in &layout.planned {
            offsets.push(total);
            total += rows;
        }
        let statistics = (!layout.keep_rows).then(|| StreamingSummary::new(columns.len(), total));
        let state = State {
            file: None,
            evaluator: None,
            rng: stream_rng(seed, 0),
            next: 0,
            waiting: BTreeMap::new(),
            received: vec![0; layout.planned.len()],
            unplanned: false,
            row: Vec::new(),
            pending: Vec::new(),
            selected: Vec::new(),
            kept: Vec::new(),
            statistics,
        };
        DrawFile {
            model,
            sites,
            columns,
            comments,
            out: out.map(Path::to_path_buf),
            plan,
            seed,
            layout,
            offsets,
            total,
            threads: rayon::current_num_threads().max(1),
            state: Mutex::new(state),
            failure: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<'m>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the first failure and tells the driver.
    fn fail(&self, failure: Failure) -> SinkFailed {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(failure);
        SinkFailed
    }

    /// The failure behind a [`SinkFailed`], once.
    pub fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// A streamed run's result: the algorithm's, or when it failed, the sink's own failure if
    /// the sink stopped it, else the algorithm's error. A failed run's draws file is deleted.
    pub fn result<R, E: Into<bdl_infer::InferError>>(
        &self,
        sampled: Result<R, E>,
    ) -> Result<R, Failure> {
        sampled.map_err(|error| {
            self.remove_file();
            self.take_failure()
                .unwrap_or_else(|| crate::run::outcome::infer_failure(error))
        })
    }

    /// Deletes the draws file and its spool (a run that failed).
    fn remove_file(&self) {
        drop(self.lock().file.take());
        if let Some(out) = &self.out {
            let path = out.join(self.plan.format.file_name());
            let mut spool = path.clone().into_os_string();
            spool.push(".partial");
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(PathBuf::from(spool));
        }
    }

    /// Turns global row `global`'s draw into its constrained row and appends it.
    fn process(
        &self,
        state: &mut State<'m>,
        global: usize,
        position: &[f64],
    ) -> Result<(), Failure> {
        let block = self.layout.block.max(1);
        let chunk = global / block;
        let offset = global % block;
        let block_rows = block.min(self.total - chunk * block);
        let piece = block_rows.div_ceil(self.threads).max(1);
        // A new piece of the batch path: a fresh evaluator and the piece's stream.
        if offset.is_multiple_of(piece) || state.evaluator.is_none() {
            state.evaluator = Some(self.model.output_evaluator());
            state.rng = stream_rng(self.seed, ((chunk as u64) << 16) + (offset / piece) as u64);
        }
        let Some(evaluator) = state.evaluator.as_mut() else {
            return Ok(());
        };
        let values = evaluator
            .constrained(position, &mut state.rng)
            .map_err(|e| Failure::model(vec![e.to_diagnostic()]))?;
        flatten_row(&self.sites, &values, &mut state.row);
        if self.layout.keep_rows {
            state.kept.extend_from_slice(&state.row);
        }
        let row = std::mem::take(&mut state.row);
        state.pending.extend_from_slice(&row);
        state.row = row;
        if let (Some(out), None) = (&self.out, &state.file) {
            state.file = Some(self.create_file(out)?);
        }
        // A CSV file takes every row as it comes; a Parquet file and the running statistics a
        // chunk at a time (the end of a block, or the plan's chunk length).
        let n_columns = self.columns.len().max(1);
        let pending_rows = state.pending.len() / n_columns;
        let csv = matches!(self.plan.format, large::DrawsFormat::Csv);
        if csv || offset + 1 == block_rows || pending_rows >= self.plan.chunk_draws(n_columns) {
            self.flush_pending(state)?;
        }
        Ok(())
    }

    /// Pushes the pending rows to the file and the statistics.
    fn flush_pending(&self, state: &mut State<'m>) -> Result<(), Failure> {
        if state.pending.is_empty() {
            return Ok(());
        }
        let n_columns = self.columns.len();
        if let Some(statistics) = &mut state.statistics {
            statistics.push_rows(&state.pending);
        }
        if let Some(file) = &mut state.file {
            let rows = self
                .plan
                .select(&state.pending, n_columns, &mut state.selected);
            file.push_rows(rows, self.plan.written.len())?;
        }
        state.pending.clear();
        Ok(())
    }

    /// Ends the run: the file finished (rewritten by the batch path from `positions`, every
    /// unit's draws in unit order, when the rows made differ from the planned ones; `positions`
    /// is only called then) and the rows or statistics returned.
    pub fn finish_file(
        self,
        positions: impl FnOnce() -> Vec<Vec<f64>>,
    ) -> Result<DrawFileRows, Failure> {
        if let Some(failure) = self.take_failure() {
            self.remove_file();
            return Err(failure);
        }
        let mut state = self.lock();
        let as_planned = !state.unplanned
            && state
                .received
                .iter()
                .zip(&self.layout.planned)
                .all(|(received, planned)| received == planned);
        if !as_planned {
            drop(state.file.take());
            drop(state);
            return self.rewrite(&positions());
        }
        let finished = self.flush_pending(&mut state).and_then(|()| {
            if let (Some(out), None, true) = (&self.out, &state.file, self.layout.write_empty) {
                state.file = Some(self.create_file(out)?);
            }
            match state.file.take() {
                Some(file) => file.finish(),
                None => Ok(()),
            }
        });
        if let Err(failure) = finished {
            drop(state);
            self.remove_file();
            return Err(failure);
        }
        Ok(DrawFileRows {
            rows: std::mem::take(&mut state.kept),
            statistics: state.statistics.take(),
        })
    }

    /// The batch path's rows of `positions`, written over the streamed file.
    fn rewrite(&self, positions: &[Vec<f64>]) -> Result<DrawFileRows, Failure> {
        let rows =
            crate::run::outcome::constrained_rows(self.model, &self.sites, positions, self.seed)?;
        if let Some(out) = &self.out {
            if !rows.is_empty() || self.layout.write_empty {
                large::write_rows(out, &self.plan, &self.comments, &self.columns, &rows)?;
            } else {
                self.remove_file();
            }
        }
        let statistics = (!self.layout.keep_rows).then(|| {
            let mut statistics = StreamingSummary::new(self.columns.len(), positions.len());
            statistics.push_rows(&rows);
            statistics
        });
        Ok(DrawFileRows {
            rows: if self.layout.keep_rows {
                rows
            } else {
                Vec::new()
            },
            statistics,
        })
    }

    /// Creates the draws file in `out` with the run's comment lines and the plan's columns.
    fn create_file(&self, out: &Path) -> Result<DrawsFile, Failure> {
        let names = self
            .plan
            .written
            .iter()
            .map(|&i| self.columns[i].csv_name())
            .collect();
        DrawsFile::create(out, self.plan.format, &self.comments, names)
    }
}

impl DrawSink for DrawFile<'_> {
    fn header(&self, _unit: usize, _dim: usize) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn draw(
        &self,
        unit: usize,
        row: usize,
        position: &[f64],
        _stats: &DrawStats,
    ) -> Result<(), SinkFailed> {
        let mut state = self.lock();
        let state = &mut *state;
        let (Some(&offset), Some(&planned)) =
            (self.offsets.get(unit), self.layout.planned.get(unit))
        else {
            // A unit the plan did not count: the batch path writes the file at the end.
            state.unplanned = true;
            return Ok(());
        };
        state.received[unit] += 1;
        // A row past the unit's plan is left to the batch path at the end.
        if row >= planned {
            return Ok(());
        }
        state.waiting.insert(offset + row, position.to_vec());
        while let Some(position) = state.waiting.remove(&state.next) {
            let global = state.next;
            self.process(state, global, &position)
                .map_err(|failure| self.fail(failure))?;
            state.next += 1;
        }
        Ok(())
    }

    fn comment(&self, _unit: usize, _line: &str) -> Result<(), SinkFailed> {
        Ok(())
    }

    fn finish(&self, _unit: usize, _interrupted: bool) -> Result<(), SinkFailed> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::large::DrawsFormat;
    use crate::run::outcome::{constrained_rows, constrained_rows_from};
    use crate::session::Session;
    use bdl_runtime::data::Completeness;

    fn bits(values: &[f64]) -> Vec<u64> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn stats(row: usize) -> DrawStats {
        DrawStats {
            sampler: "test",
            iteration: row,
            step_size: None,
            transition: None,
        }
    }

    fn every_column(n_columns: usize, format: DrawsFormat, stream: bool) -> RunPlan {
        RunPlan {
            stream,
            format,
            written: (0..n_columns).collect(),
            left_out: Vec::new(),
        }
    }

    /// Draws streamed through the sink, units arriving in any order, short or as planned, kept
    /// in memory or streamed in chunks, give the batch path's rows and file, bit for bit,
    /// whatever the number of threads.
    #[test]
    fn streamed_draws_equal_the_batch_paths_rows_and_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/sine_sgld.bdl");
        let model = Session::new()
            .load(&path, &[], Completeness::All, 7)
            .expect("the model compiles");
        let dim = model.layout.dim();
        let positions: Vec<Vec<f64>> = (0..7)
            .map(|i| (0..dim).map(|k| 0.1 * i as f64 - 0.03 * k as f64).collect())
            .collect();
        let sites = model.output_sites();
        let columns = crate::output::columns_of(&sites);
        let base = std::env::temp_dir().join(format!("bdl-draw-file-{}", std::process::id()));
        let (streamed_dir, expected_dir) = (base.join("streamed"), base.join("expected"));
        std::fs::create_dir_all(&streamed_dir).expect("a temporary folder");
        std::fs::create_dir_all(&expected_dir).expect("a temporary folder");
        let comments = vec!["method = test".to_string()];
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| {
                // Three units of two draws; unit 1 makes one draw only in the second case.
                for short in [false, true] {
                    let plan = every_column(columns.len(), DrawsFormat::Csv, false);
                    let sink = DrawFile::new(
                        &model,
                        Some(&streamed_dir),
                        plan.clone(),
                        comments.clone(),
                        7,
                        DrawFileLayout {
                            planned: vec![2; 3],
                            block: 6,
                            keep_rows: true,
                            write_empty: false,
                        },
                    );
                    let made = |unit: usize| if short && unit == 1 { 1 } else { 2 };
                    for unit in [2, 0, 1] {
                        sink.header(unit, dim).expect("a header");
                        for row in 0..made(unit) {
                            let position = &positions[2 * unit + row];
                            sink.draw(unit, row, position, &stats(row)).expect("a draw");
                        }
                        sink.finish(unit, false).expect("the unit ends");
                    }
                    let actual: Vec<Vec<f64>> = (0..3)
                        .flat_map(|unit| positions[2 * unit..2 * unit + made(unit)].to_vec())
                        .collect();
                    let rows = sink.finish_file(|| actual.clone()).expect("the rows").rows;
                    let batch = constrained_rows(&model, &sites, &actual, 7).expect("rows");
                    assert_eq!(
                        bits(&rows),
                        bits(&batch),
                        "{threads} threads, short {short}"
                    );
                    large::write_rows(&expected_dir, &plan, &comments, &columns, &batch)
                        .expect("the expected file");
                    let file = |dir: &Path| std::fs::read(dir.join("draws.csv")).expect("a file");
                    assert_eq!(file(&streamed_dir), file(&expected_dir));
                }

                // A streamed run: chunks of 3 draws, statistics only, a Parquet file.
                let plan = every_column(columns.len(), DrawsFormat::Parquet, true);
                let sink = DrawFile::new(
                    &model,
                    Some(&streamed_dir),
                    plan.clone(),
                    comments.clone(),
                    7,
                    DrawFileLayout {
                        planned: vec![positions.len()],
                        block: 3,
                        keep_rows: false,
                        write_empty: true,
                    },
                );
                for (row, position) in positions.iter().enumerate() {
                    sink.draw(0, row, position, &stats(row)).expect("a draw");
                }
                let written = sink
                    .finish_file(|| positions.clone())
                    .expect("the statistics");
                assert!(written.rows.is_empty());
                let statistics = written.statistics.expect("running statistics");
                let names = columns.iter().map(Column::csv_name).collect();
                let mut expected = DrawsFile::create(&expected_dir, plan.format, &comments, names)
                    .expect("the expected file");
                let mut expected_statistics = StreamingSummary::new(columns.len(), positions.len());
                for (chunk, block) in positions.chunks(3).enumerate() {
                    let rows =
                        constrained_rows_from(&model, &sites, block, 7, (chunk as u64) << 16)
                            .expect("rows");
                    expected_statistics.push_rows(&rows);
                    expected
                        .push_rows(&rows, columns.len())
                        .expect("rows written");
                }
                expected.finish().expect("the expected file");
                let means = |s: &StreamingSummary| -> Vec<u64> {
                    s.summaries()
                        .iter()
                        .map(|c| c.as_ref().map_or(0, |c| c.mean.to_bits()))
                        .collect()
                };
                assert_eq!(means(&statistics), means(&expected_statistics));
                let file = |dir: &Path| std::fs::read(dir.join("draws.parquet")).expect("a file");
                assert_eq!(
                    file(&streamed_dir),
                    file(&expected_dir),
                    "{threads} threads"
                );
            });
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A sink that failed leaves no draws file.
    #[test]
    fn a_failed_run_leaves_no_draws_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/sine_sgld.bdl");
        let model = Session::new()
            .load(&path, &[], Completeness::All, 7)
            .expect("the model compiles");
        let dir = std::env::temp_dir().join(format!("bdl-draw-file-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let n_columns = crate::output::columns_of(&model.output_sites()).len();
        let sink = DrawFile::new(
            &model,
            Some(&dir),
            every_column(n_columns, DrawsFormat::Csv, false),
            Vec::new(),
            7,
            DrawFileLayout {
                planned: vec![2],
                block: 2,
                keep_rows: true,
                write_empty: true,
            },
        );
        let position = vec![0.1; model.layout.dim()];
        sink.draw(0, 0, &position, &stats(0)).expect("a draw");
        assert!(dir.join("draws.csv").exists());
        let failed: Result<(), bdl_infer::ensemble::EnsembleError> =
            Err(bdl_infer::ensemble::EnsembleError::NoParameters);
        assert!(sink.result(failed).is_err());
        assert!(!dir.join("draws.csv").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
