//! The files of a run and the summary table.
//!
//! Draws are written in CmdStan's CSV layout so that ArviZ's `from_cmdstan` and other Stan tools
//! read them: `#` comment lines with the run's configuration, a header row, one row per draw,
//! flushed as it is written (an interrupted run keeps every finished draw). Element columns use
//! CmdStan's names, `theta.1` and `w.1.2` (1-based, dot-separated: a bracketed `w[1,2]` would put
//! a comma inside a CSV header field). The summary table and `summary.json` use the
//! `theta[1]` spelling of `stansummary`.

use crate::session::{describe_io_error, Failure};
use bdl_autodiff::Tensor;
use bdl_infer::diagnostics::{ColumnSummary, Summary, Warning, ESS_LIMIT, R_HAT_LIMIT};
use bdl_runtime::model::SiteInfo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The file that records what a run was (model, data, method, settings) and which chains or
/// members it holds, for `bdlc merge`.
pub const SETUP_RECORD: &str = "setup.json";

/// The files that mark a directory as holding a finished (or started) run.
const RUN_FILES: [&str; 5] = [
    "summary.json",
    "draws.csv",
    "chain-1.csv",
    "params.json",
    RUN_RECORD,
];

/// The saved state of a stopped or killed SVI fit, which `--resume` continues (see
/// `checkpoint.rs`).
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// The run's completion record: `{"complete": false}` from the moment `--out` is prepared,
/// replaced by `{"complete": true, ...}` once every other file of the run is written. Readers of
/// a run (`summary`, `plot`, `predict`, the REPL) refuse a directory whose record says the run
/// did not finish (E0982); a directory without a record (written by hand, or by an older bdlc)
/// is read as before.
pub const RUN_RECORD: &str = "run.json";

/// Writes `contents` to `path` through a temporary file renamed over it, so that a reader sees
/// the old record or the new one, never a part of one.
fn write_atomically(path: &Path, contents: &str) -> Result<(), Failure> {
    let temporary = path.with_extension("json.partial");
    write_file(&temporary, contents)?;
    std::fs::rename(&temporary, path).map_err(|error| io_failure(path, &error))
}

/// Marks `dir` as holding a run that has started and not finished.
pub fn mark_run_started(dir: &Path) -> Result<(), Failure> {
    let record = json!({ "complete": false, "bdlc": env!("CARGO_PKG_VERSION") });
    write_atomically(&dir.join(RUN_RECORD), &format!("{record:#}\n"))
}

/// Marks `dir` as holding a finished run: the last file a run writes. `interrupted` says
/// whether the run stopped early on Ctrl-C (its files hold the draws finished so far).
pub fn mark_run_complete(dir: &Path, interrupted: bool) -> Result<(), Failure> {
    let record = json!({
        "complete": true,
        "interrupted": interrupted,
        "bdlc": env!("CARGO_PKG_VERSION"),
    });
    write_atomically(&dir.join(RUN_RECORD), &format!("{record:#}\n"))
}

/// Warns once per process that `dir` holds a run stopped by Ctrl-C: its files are complete and
/// valid, but hold fewer draws than it asked for.
fn warn_interrupted_once(dir: &Path) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "warning: `{}` holds an interrupted run (Ctrl-C): its files are complete, with \
                 the draws it finished before it stopped",
                dir.display()
            );
        }
    }
}

/// Refuses a run directory whose completion record is missing its `"complete": true` (E0982):
/// the run failed, or was killed, before it finished, and its files may be partial. A run
/// stopped by Ctrl-C and marked complete with `"interrupted": true` is read, with a warning.
pub fn require_complete_run(dir: &Path) -> Result<(), Failure> {
    let path = dir.join(RUN_RECORD);
    if !path.exists() {
        return Ok(());
    }
    let record: Option<Value> = crate::session::read_run_text(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let complete = record
        .as_ref()
        .and_then(|record| record.get("complete"))
        .and_then(Value::as_bool);
    if complete == Some(true) {
        let interrupted = record
            .as_ref()
            .and_then(|record| record.get("interrupted"))
            .and_then(Value::as_bool)
            == Some(true);
        if interrupted {
            warn_interrupted_once(dir);
        }
        return Ok(());
    }
    let why = match complete {
        Some(_) => "the run failed or was killed before it finished",
        None => "its completion record is damaged",
    };
    Err(Failure::run_with_hint(
        "E0982",
        format!("`{}` holds an incomplete run: {why}", dir.display()),
        format!(
            "`{}` is written last, with `\"complete\": true`; run `bdlc infer` again (with `--force` to replace this one)",
            path.display()
        ),
    ))
}

/// Creates the output directory, refusing one that holds a run unless `force`, and marks it as
/// holding a run that has not finished ([`RUN_RECORD`]).
pub fn prepare_out_dir(dir: &Path, force: bool) -> Result<(), Failure> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(Failure::usage(
                "E0903",
                format!("`{}` exists and is not a directory", dir.display()),
                None,
            ));
        }
        let existing: Vec<&str> = RUN_FILES
            .iter()
            .copied()
            .filter(|f| dir.join(f).exists())
            .collect();
        if !existing.is_empty() && !force {
            return Err(Failure::usage(
                "E0904",
                format!(
                    "`{}` already holds a run ({})",
                    dir.display(),
                    existing.join(", ")
                ),
                Some(
                    "choose another `--out` directory, or pass `--force` to replace the run"
                        .to_string(),
                ),
            ));
        }
        if force {
            for entry in std::fs::read_dir(dir)
                .map_err(|e| io_failure(dir, &e))?
                .flatten()
            {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().to_string();
                let ours = RUN_FILES.contains(&name.as_str())
                    || (name.starts_with("chain-") && name.ends_with(".csv"))
                    || (name.starts_with("log_lik") && name.ends_with(".csv"))
                    || name == "loss.csv"
                    || name == RUN_RECORD
                    || name == SETUP_RECORD
                    || name == CHECKPOINT_FILE
                    || crate::chain_checkpoint::is_state_file(&name)
                    || name.ends_with(".partial")
                    || name.ends_with(".svg");
                if ours && path.is_file() {
                    std::fs::remove_file(&path).map_err(|e| io_failure(&path, &e))?;
                }
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| io_failure(dir, &e))?;
    mark_run_started(dir)
}

/// A file-system error as a failure.
pub fn io_failure(path: &Path, error: &std::io::Error) -> Failure {
    Failure::usage(
        "E0905",
        format!(
            "cannot write `{}`: {}",
            path.display(),
            describe_io_error(error)
        ),
        None,
    )
}

/// Writes a whole file.
pub fn write_file(path: &Path, contents: &str) -> Result<(), Failure> {
    unbroken(|| std::fs::write(path, contents)).map_err(|e| io_failure(path, &e))
}

/// The columns of one scalar element of a site.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The site's name.
    pub site: String,
    /// The element's 0-based multi-index.
    pub index: Vec<usize>,
}

impl Column {
    /// CmdStan's CSV name: `theta.1`, `w.1.2`.
    pub fn csv_name(&self) -> String {
        let mut name = self.site.clone();
        for i in &self.index {
            let _ = write!(name, ".{}", i + 1);
        }
        name
    }

    /// The display name: `theta[1]`, `w[1,2]`.
    pub fn display_name(&self) -> String {
        if self.index.is_empty() {
            return self.site.clone();
        }
        let index: Vec<String> = self.index.iter().map(|i| (i + 1).to_string()).collect();
        format!("{}[{}]", self.site, index.join(","))
    }
}

/// The summary's warnings as sentences, with quantities named by `columns`.
///
/// A warning about one element of a site reads as before (`R-hat of theta[3] is 1.02, …`); when
/// several elements of the same site break the same limit, which is the rule for a network's
/// weights, they become one sentence with their count and the worst of them, so that a run of a
/// 300-weight network does not print 900 lines.
pub fn warning_messages(warnings: &[Warning], columns: &[Column]) -> Vec<String> {
    let name = |i: usize| {
        columns
            .get(i)
            .map_or_else(|| format!("column {i}"), Column::display_name)
    };
    let site_of = |i: usize| columns.get(i).map_or("", |column| column.site.as_str());
    // Groups of per-element warnings, keyed by (kind, site), in order of first appearance.
    let mut groups: Vec<(usize, &str, Vec<&Warning>)> = Vec::new();
    let mut messages: Vec<Option<String>> = Vec::new();
    for warning in warnings {
        let Some(column) = warning.column() else {
            messages.push(Some(warning.message(name)));
            continue;
        };
        let kind = match warning {
            Warning::HighRHat { .. } => 0,
            Warning::LowEssBulk { .. } => 1,
            _ => 2,
        };
        let site = site_of(column);
        match groups.iter_mut().find(|(k, s, _)| *k == kind && *s == site) {
            Some((_, _, members)) => members.push(warning),
            None => {
                groups.push((kind, site, vec![warning]));
                // A placeholder keeps the group where its first member appeared.
                messages.push(None);
            }
        }
    }
    let mut grouped = groups.into_iter().map(|(_, site, members)| {
        if members.len() == 1 {
            return members[0].message(name);
        }
        let elements = columns.iter().filter(|column| column.site == site).count();
        let count = members.len();
        let worst = |key: fn(&Warning) -> f64, highest: bool| {
            members
                .iter()
                .copied()
                .max_by(|a, b| {
                    let order = key(a).total_cmp(&key(b));
                    if highest {
                        order
                    } else {
                        order.reverse()
                    }
                })
                .expect("a group has members")
        };
        match members[0] {
            Warning::HighRHat { .. } => {
                let Warning::HighRHat { column, r_hat } = worst(
                    |w| match w {
                        Warning::HighRHat { r_hat, .. } => *r_hat,
                        _ => f64::NAN,
                    },
                    true,
                ) else {
                    unreachable!("the group holds R-hat warnings")
                };
                format!(
                    "R-hat above {R_HAT_LIMIT} for {count} of {elements} elements of {site} \
                     (worst {r_hat:.3}, {}): the chains disagree; run longer or reparameterise",
                    name(*column)
                )
            }
            first => {
                let bulk = matches!(first, Warning::LowEssBulk { .. });
                let lowest = worst(
                    |w| match w {
                        Warning::LowEssBulk { ess, .. } | Warning::LowEssTail { ess, .. } => *ess,
                        _ => f64::NAN,
                    },
                    false,
                );
                let (Warning::LowEssBulk { column, ess } | Warning::LowEssTail { column, ess }) =
                    lowest
                else {
                    unreachable!("the group holds ESS warnings")
                };
                let (which, consequence) = if bulk {
                    ("bulk", "the posterior means and medians are unreliable")
                } else {
                    ("tail", "the 5% and 95% quantiles are unreliable")
                };
                format!(
                    "{which} ESS below {ESS_LIMIT} for {count} of {elements} elements of {site} \
                     (lowest {ess:.0}, {}): {consequence}; run more iterations",
                    name(*column)
                )
            }
        }
    });
    messages
        .into_iter()
        .map(|message| message.unwrap_or_else(|| grouped.next().expect("one group per slot")))
        .collect()
}

/// Every scalar column of the given sites, row-major within each site.
pub fn columns_of(sites: &[&SiteInfo]) -> Vec<Column> {
    let mut columns = Vec::new();
    for site in sites {
        let count: usize = site.shape.iter().product();
        for flat in 0..count {
            let mut rest = flat;
            let mut index = vec![0; site.shape.len()];
            for axis in (0..site.shape.len()).rev() {
                index[axis] = rest % site.shape[axis];
                rest /= site.shape[axis];
            }
            columns.push(Column {
                site: site.name.clone(),
                index,
            });
        }
    }
    columns
}

/// Flattens named site values into one row in the order of `sites`.
pub fn flatten_row(sites: &[&SiteInfo], values: &[(String, Tensor)], row: &mut Vec<f64>) {
    row.clear();
    for site in sites {
        match values.iter().find(|(name, _)| *name == site.name) {
            Some((_, tensor)) => row.extend_from_slice(tensor.data()),
            None => row.extend(std::iter::repeat_n(f64::NAN, site.shape.iter().product())),
        }
    }
}

/// Formats a number for a CSV file: the shortest text that reads back as the same f64 (so that
/// statistics recomputed from the files equal those of the run), in exponent notation outside
/// 1e-5..1e15; `nan` and `inf` spelled as CmdStan spells them.
pub fn format_number(value: f64) -> String {
    if value.is_nan() {
        "nan".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if value == 0.0 || (1e-5..1e15).contains(&value.abs()) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Formats a number for people: at most 6 significant digits, as CmdStan's `stansummary` and
/// NumPy print them.
pub fn display_number(value: f64) -> String {
    if !value.is_finite() {
        return format_number(value);
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor();
    if (-5.0..15.0).contains(&magnitude) {
        let decimals = (5.0 - magnitude).max(0.0) as usize;
        let text = format!("{value:.decimals$}");
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    } else {
        format!("{value:.5e}")
    }
}

/// Held (shared) by every write of a draws file and by [`write_file`], and taken (exclusive) by
/// the Ctrl-C handler before it ends the process: Linux cuts a write to a regular file short
/// when the process is killed during it, so ending the process in the middle of one would leave
/// a file that ends inside a row.
static WRITES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Runs `write` while no exit may cut it short (see [`end_process_between_writes`]).
pub fn unbroken<T>(write: impl FnOnce() -> T) -> T {
    let _guard = WRITES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    write()
}

/// Ends the process with `code` once no file write is in progress, and lets none start
/// meanwhile: the files it leaves end with whole rows.
pub fn end_process_between_writes(code: i32) -> ! {
    let _guard = WRITES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::process::exit(code)
}

/// A CSV file of draws, written row by row. Rows go through a buffer that reaches the file
/// whenever `FLUSH_EVERY` has passed since it last did, and when the writer is dropped: a run
/// that is stopped keeps what it had drawn up to a fraction of a second before, without one
/// system call per row (flushing every row cost 12 s of a 60,000-row network's 1,000 draws).
pub struct DrawsWriter {
    writer: BufWriter<File>,
    path: PathBuf,
    flushed: std::time::Instant,
    line: String,
}

/// How long rows may wait in the buffer of a `DrawsWriter`.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl DrawsWriter {
    /// Creates the file with comment lines and the header.
    pub fn create(
        path: &Path,
        comments: &[String],
        header: &[String],
    ) -> Result<DrawsWriter, Failure> {
        let file = File::create(path).map_err(|e| io_failure(path, &e))?;
        let mut writer = BufWriter::new(file);
        let mut text = String::new();
        for comment in comments {
            let _ = writeln!(text, "# {comment}");
        }
        let _ = writeln!(text, "{}", header.join(","));
        unbroken(|| {
            writer.write_all(text.as_bytes())?;
            writer.flush()
        })
        .map_err(|e| io_failure(path, &e))?;
        Ok(DrawsWriter {
            writer: BufWriter::with_capacity(
                1 << 20,
                writer
                    .into_inner()
                    .map_err(|e| io_failure(path, e.error()))?,
            ),
            path: path.to_path_buf(),
            flushed: std::time::Instant::now(),
            line: String::new(),
        })
    }

    /// Records that the open file has been renamed to `path` (for the messages of later errors).
    pub fn renamed(&mut self, path: &Path) {
        self.path = path.to_path_buf();
    }

    /// Writes out what the buffer holds.
    pub fn flush(&mut self) -> Result<(), Failure> {
        self.flushed = std::time::Instant::now();
        unbroken(|| self.writer.flush()).map_err(|e| io_failure(&self.path, &e))
    }

    /// Appends comment lines (CmdStan writes adaptation results between header and draws).
    pub fn comments(&mut self, lines: &[String]) -> Result<(), Failure> {
        let mut text = String::new();
        for line in lines {
            let _ = writeln!(text, "# {line}");
        }
        unbroken(|| self.writer.write_all(text.as_bytes()))
            .map_err(|e| io_failure(&self.path, &e))?;
        self.flush()
    }

    /// Appends one row (flushed with the buffer; see the type's documentation).
    pub fn row(&mut self, values: &[f64]) -> Result<(), Failure> {
        self.line.clear();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            self.line.push_str(&format_number(*value));
        }
        self.line.push('\n');
        // The buffer reaches the file inside `write_all` when it is full.
        unbroken(|| self.writer.write_all(self.line.as_bytes()))
            .map_err(|e| io_failure(&self.path, &e))?;
        if self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for DrawsWriter {
    /// Writes out what the buffer holds (as the buffer's own drop would, but between process
    /// exits; see [`end_process_between_writes`]); an error here has no one to report to.
    fn drop(&mut self) {
        let _ = unbroken(|| self.writer.flush());
    }
}

/// How a run's summary is shown.
pub struct SummaryView<'a> {
    /// The columns summarised.
    pub columns: &'a [Column],
    /// The per-column statistics.
    pub summary: &'a Summary,
    /// Whether convergence statistics (MCSE, ESS, R-hat) mean anything (MCMC runs).
    pub mcmc: bool,
}

/// How many rows of one site the table shows before folding the rest.
const ROWS_PER_SITE: usize = 10;

/// Sites with more elements than this are shown by site, not element by element.
pub const ELEMENTS_BY_SITE: usize = 1000;

impl SummaryView<'_> {
    /// The stansummary-like table.
    pub fn table(&self) -> String {
        let mut text = String::new();
        let width = self
            .columns
            .iter()
            .map(|c| c.display_name().len())
            .max()
            .unwrap_or(4)
            .clamp(4, 28);
        let header = if self.mcmc {
            format!(
                "{:<width$} {:>10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>6}",
                "", "mean", "mcse", "sd", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat"
            )
        } else {
            format!(
                "{:<width$} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "", "mean", "sd", "5%", "50%", "95%"
            )
        };
        let _ = writeln!(text, "{header}");
        let mut shown_of_site = 0;
        let mut hidden_of_site = 0;
        let mut last_site: Option<&str> = None;
        let flush_hidden = |text: &mut String, hidden: usize, site: Option<&str>| {
            if hidden > 0 {
                let _ = writeln!(
                    text,
                    "  … {hidden} more elements of `{}` in summary.json",
                    site.unwrap_or("")
                );
            }
        };
        let mut site_start = 0;
        for (position, (column, stats)) in
            self.columns.iter().zip(&self.summary.columns).enumerate()
        {
            if last_site != Some(column.site.as_str()) {
                flush_hidden(&mut text, hidden_of_site, last_site);
                last_site = Some(column.site.as_str());
                shown_of_site = 0;
                hidden_of_site = 0;
                site_start = position;
                let site_len = self.columns[position..]
                    .iter()
                    .take_while(|c| c.site == column.site)
                    .count();
                if site_len > ELEMENTS_BY_SITE {
                    let range = site_start..site_start + site_len;
                    text.push_str(
                        &self
                            .site_block(&self.columns[range.clone()], &self.summary.columns[range]),
                    );
                }
            }
            let site_len = self.columns[site_start..]
                .iter()
                .take_while(|c| c.site == column.site)
                .count();
            if site_len > ELEMENTS_BY_SITE {
                continue;
            }
            if shown_of_site >= ROWS_PER_SITE {
                hidden_of_site += 1;
                continue;
            }
            shown_of_site += 1;
            let mut name = column.display_name();
            if name.len() > width {
                name.truncate(width);
            }
            let number = |v: Option<f64>, w: usize| match v {
                Some(v) if v.is_finite() => format!("{:>w$}", short(v)),
                _ => format!("{:>w$}", "-"),
            };
            if self.mcmc {
                let _ = writeln!(
                    text,
                    "{name:<width$} {} {} {} {} {} {} {} {} {}",
                    number(Some(stats.mean), 10),
                    number(stats.mcse_mean, 9),
                    number(stats.sd, 10),
                    number(Some(stats.q5), 10),
                    number(Some(stats.q50), 10),
                    number(Some(stats.q95), 10),
                    stats
                        .ess_bulk
                        .map_or(format!("{:>8}", "-"), |v| format!("{:>8.0}", v)),
                    stats
                        .ess_tail
                        .map_or(format!("{:>8}", "-"), |v| format!("{:>8.0}", v)),
                    stats
                        .r_hat
                        .map_or(format!("{:>6}", "-"), |v| format!("{:>6.3}", v)),
                );
            } else {
                let _ = writeln!(
                    text,
                    "{name:<width$} {} {} {} {} {}",
                    number(Some(stats.mean), 10),
                    number(stats.sd, 10),
                    number(Some(stats.q5), 10),
                    number(Some(stats.q50), 10),
                    number(Some(stats.q95), 10),
                );
            }
        }
        flush_hidden(&mut text, hidden_of_site, last_site);
        text
    }

    /// A site with more than `ELEMENTS_BY_SITE` elements in a few lines: its shape, the
    /// spread of its elements' means and sds (min, 5%, 50%, 95%, max), the worst R-hat and
    /// smallest ESS for MCMC runs, and the elements with the most extreme means.
    fn site_block(&self, columns: &[Column], stats: &[ColumnSummary]) -> String {
        let mut text = String::new();
        let Some(first) = columns.first() else {
            return text;
        };
        let shape: Vec<String> = columns
            .last()
            .map(|c| c.index.iter().map(|i| (i + 1).to_string()).collect())
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "{} [{}]: {} elements, summarised by site",
            first.site,
            shape.join(", "),
            columns.len()
        );
        let spread = |label: &str, mut values: Vec<f64>| -> String {
            values.retain(|v| v.is_finite());
            if values.is_empty() {
                return format!("  {label:<8} -\n");
            }
            values.sort_by(f64::total_cmp);
            let at = |q: f64| bdl_infer::diagnostics::quantile(&values, q);
            format!(
                "  {label:<8} min {}  5% {}  50% {}  95% {}  max {}\n",
                short(values[0]),
                short(at(0.05)),
                short(at(0.5)),
                short(at(0.95)),
                short(values[values.len() - 1])
            )
        };
        text.push_str(&spread("means", stats.iter().map(|s| s.mean).collect()));
        text.push_str(&spread("sds", stats.iter().filter_map(|s| s.sd).collect()));
        if self.mcmc {
            let worst_r_hat = stats
                .iter()
                .filter_map(|s| s.r_hat)
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::max);
            let least_ess = stats
                .iter()
                .filter_map(|s| s.ess_bulk)
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::min);
            let _ = writeln!(
                text,
                "  r_hat    max {}  ess_bulk min {}",
                if worst_r_hat.is_finite() {
                    format!("{worst_r_hat:.3}")
                } else {
                    "-".into()
                },
                if least_ess.is_finite() {
                    format!("{least_ess:.0}")
                } else {
                    "-".into()
                }
            );
        }
        let mut order: Vec<usize> = (0..stats.len())
            .filter(|&i| stats[i].mean.is_finite())
            .collect();
        order.sort_by(|&a, &b| stats[b].mean.abs().total_cmp(&stats[a].mean.abs()));
        let extreme: Vec<String> = order
            .iter()
            .take(3)
            .map(|&i| {
                format!(
                    "{} {} (sd {})",
                    columns[i].display_name(),
                    short(stats[i].mean),
                    stats[i].sd.map_or("-".to_string(), short)
                )
            })
            .collect();
        let _ = writeln!(text, "  extreme  {}", extreme.join(", "));
        text
    }

    /// The per-element statistics as JSON objects, leaving out the elements of the sites named
    /// in `left_out`.
    pub fn elements_json(&self, left_out: &[&str]) -> Vec<Value> {
        self.columns
            .iter()
            .zip(&self.summary.columns)
            .filter(|(column, _)| !left_out.contains(&column.site.as_str()))
            .map(|(column, stats)| element_json(column, stats, self.mcmc))
            .collect()
    }

    /// One object per site with more than `ELEMENTS_BY_SITE` elements: its shape, the spread
    /// (min, 5%, 50%, 95%, max) of its elements' means and sds, the worst R-hat and least bulk
    /// ESS for MCMC runs, and the three elements of largest |mean|.
    pub fn sites_json(&self) -> Vec<Value> {
        let mut sites = Vec::new();
        let mut start = 0;
        while start < self.columns.len() {
            let site = &self.columns[start].site;
            let length = self.columns[start..]
                .iter()
                .take_while(|c| &c.site == site)
                .count();
            let range = start..start + length;
            start += length;
            if length <= ELEMENTS_BY_SITE {
                continue;
            }
            let columns = &self.columns[range.clone()];
            let Some(stats) = self.summary.columns.get(range) else {
                continue;
            };
            let shape: Vec<usize> = columns
                .last()
                .map(|c| c.index.iter().map(|i| i + 1).collect())
                .unwrap_or_default();
            let spread = |mut values: Vec<f64>| -> Value {
                values.retain(|v| v.is_finite());
                if values.is_empty() {
                    return Value::Null;
                }
                values.sort_by(f64::total_cmp);
                let at = |q: f64| bdl_infer::diagnostics::quantile_sorted(&values, q);
                json!({
                    "min": values[0],
                    "q5": at(0.05),
                    "q50": at(0.5),
                    "q95": at(0.95),
                    "max": values[values.len() - 1],
                })
            };
            let mut order: Vec<usize> = (0..stats.len())
                .filter(|&i| stats[i].mean.is_finite())
                .collect();
            order.sort_by(|&a, &b| stats[b].mean.abs().total_cmp(&stats[a].mean.abs()));
            let extreme: Vec<Value> = order
                .iter()
                .take(3)
                .map(|&i| element_json(&columns[i], &stats[i], false))
                .collect();
            let mut object = json!({
                "site": site,
                "shape": shape,
                "elements": length,
                "means": spread(stats.iter().map(|s| s.mean).collect()),
                "sds": spread(stats.iter().filter_map(|s| s.sd).collect()),
                "extreme": extreme,
            });
            if self.mcmc {
                if let Value::Object(map) = &mut object {
                    let finite = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
                    let worst_r_hat = stats
                        .iter()
                        .filter_map(|s| s.r_hat)
                        .fold(f64::NAN, f64::max);
                    let least_ess = stats
                        .iter()
                        .filter_map(|s| s.ess_bulk)
                        .fold(f64::NAN, f64::min);
                    map.insert("r_hat_max".into(), finite(worst_r_hat));
                    map.insert("ess_bulk_min".into(), finite(least_ess));
                }
            }
            sites.push(object);
        }
        sites
    }
}

fn element_json(column: &Column, stats: &ColumnSummary, mcmc: bool) -> Value {
    let finite = |v: Option<f64>| {
        v.filter(|x| x.is_finite())
            .map_or(Value::Null, |x| json!(x))
    };
    let mut object = json!({
        "name": column.display_name(),
        "site": column.site,
        "index": column.index.iter().map(|i| i + 1).collect::<Vec<_>>(),
        "mean": finite(Some(stats.mean)),
        "sd": finite(stats.sd),
        "q5": finite(Some(stats.q5)),
        "q50": finite(Some(stats.q50)),
        "q95": finite(Some(stats.q95)),
    });
    if mcmc {
        if let Value::Object(map) = &mut object {
            map.insert("mcse_mean".into(), finite(stats.mcse_mean));
            map.insert("mcse_sd".into(), finite(stats.mcse_sd));
            for (key, value) in ["mcse_q5", "mcse_q50", "mcse_q95"]
                .into_iter()
                .zip(stats.mcse_quantiles)
            {
                map.insert(key.into(), finite(value));
            }
            map.insert("ess_bulk".into(), finite(stats.ess_bulk));
            map.insert("ess_tail".into(), finite(stats.ess_tail));
            map.insert("r_hat".into(), finite(stats.r_hat));
        }
    }
    object
}

/// A number in at most 6 significant digits for the table.
fn short(value: f64) -> String {
    if value != 0.0 && (value.abs() >= 1e6 || value.abs() < 1e-3) {
        format!("{value:.2e}")
    } else {
        format!("{:.4}", value)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// The constrained values of the free sites in one row of draws, by site name: the substitution
/// that replays the model at that draw (`sites` pairs each site with its columns in the row).
pub fn substitution(
    sites: &[(&SiteInfo, Vec<usize>)],
    row: &[f64],
) -> Result<HashMap<String, Tensor>, Failure> {
    let mut values = HashMap::new();
    for (site, columns) in sites {
        let data: Vec<f64> = columns.iter().map(|&c| row[c]).collect();
        let tensor = Tensor::from_shape(&site.shape, data)
            .map_err(|e| Failure::run("E0913", format!("site `{}`: {e}", site.name)))?;
        values.insert(site.name.clone(), tensor);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cmdstan_and_stansummary() {
        let column = Column {
            site: "w".into(),
            index: vec![0, 2],
        };
        assert_eq!(column.csv_name(), "w.1.3");
        assert_eq!(column.display_name(), "w[1,3]");
        let scalar = Column {
            site: "mu".into(),
            index: vec![],
        };
        assert_eq!(scalar.csv_name(), "mu");
    }

    #[test]
    fn numbers_read_back_exactly() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(1.5), "1.5");
        assert_eq!(format_number(f64::NAN), "nan");
        assert_eq!(format_number(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_number(1e-9), "1e-9");
        for value in [
            std::f64::consts::PI,
            -123.456789,
            1.0 / 3.0,
            2.5e-7,
            6.02e23,
            -1e-300,
        ] {
            assert_eq!(
                format_number(value).parse::<f64>().unwrap().to_bits(),
                value.to_bits()
            );
        }
    }

    #[test]
    fn warnings_about_several_elements_of_a_site_become_one_sentence() {
        let column = |site: &str, index: Vec<usize>| Column {
            site: site.to_string(),
            index,
        };
        let columns = vec![
            column("w", vec![0]),
            column("w", vec![1]),
            column("w", vec![2]),
            column("sigma", vec![]),
        ];
        let warnings = vec![
            Warning::HighRHat {
                column: 0,
                r_hat: 1.2,
            },
            Warning::LowEssBulk {
                column: 0,
                ess: 30.0,
            },
            Warning::HighRHat {
                column: 2,
                r_hat: 1.5,
            },
            Warning::LowEssBulk {
                column: 3,
                ess: 12.0,
            },
            Warning::Divergences {
                count: 2,
                n_draws: 100,
            },
        ];
        let messages = warning_messages(&warnings, &columns);
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0]
            .starts_with("R-hat above 1.01 for 2 of 3 elements of w (worst 1.500, w[3])"));
        assert!(messages[1].starts_with("bulk ESS of w[1] is 30, below 400"));
        assert!(messages[2].starts_with("bulk ESS of sigma is 12, below 400"));
        assert!(messages[3].starts_with("2 of 100 transitions after warm-up diverged"));
    }
}
