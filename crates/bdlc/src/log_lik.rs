//! The pointwise log-likelihood of a run: written next to its draws, read back by `bdlc loo`
//! and `bdlc compare`.
//!
//! For each posterior draw, [`Model::pointwise_log_likelihood`] gives log p(yⱼ | θ) of every
//! observed element (masked elements left out, mini-batched plates over all their rows). The
//! files follow the draws': `log_lik-1.csv`, `log_lik-2.csv`, … beside `chain-N.csv` for the
//! Markov chain methods, `log_lik.csv` beside `draws.csv` for every other method, one row per
//! draw in the same order, CmdStan's layout (`#` comments, then a header). A column is named
//! after the observed site and the element's 1-based index, as the draws' columns are
//! (`y.1`, `y.2`, … ; `y.3.2` for an element of a matrix), which is the name ArviZ gives the
//! `log_likelihood` group's variables: `scripts/check_arviz.py` reads the files into it.
//!
//! The rows are computed in blocks of [`BLOCK`] draws (each block's draws in parallel) and
//! written as each block finishes, so memory holds one block, not the matrix.

use crate::output::{columns_of, require_complete_run, substitution, Column, DrawsWriter};
use crate::run::RunResult;
use crate::session::{describe_io_error, Failure};
use bdl_runtime::handlers::SiteKind;
use bdl_runtime::model::{Model, PointwiseLogLik, SiteInfo};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Draws per block of computed rows.
const BLOCK: usize = 256;

/// The largest observations × draws written without `--log-lik` (8 MB of numbers; the CSV
/// text is about 20 MB).
pub const DEFAULT_LIMIT: usize = 1_000_000;

/// Whether to write the log-likelihood: `--log-lik`, `--no-log-lik`, or neither (write it when
/// it is small).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLikChoice {
    /// Always.
    Always,
    /// Never.
    Never,
    /// When observations × draws is at most [`DEFAULT_LIMIT`].
    WhenSmall,
}

impl LogLikChoice {
    /// The choice from the two flags.
    pub fn from_flags(on: bool, off: bool) -> LogLikChoice {
        if on {
            LogLikChoice::Always
        } else if off {
            LogLikChoice::Never
        } else {
            LogLikChoice::WhenSmall
        }
    }
}

/// The free (latent and param) sites of a model with their columns in a table of draws whose
/// header is `header`; `None` names the first site missing.
pub fn locate_free_sites<'m>(
    model: &'m Model,
    header: &[String],
) -> Result<Vec<(&'m SiteInfo, Vec<usize>)>, String> {
    let mut located = Vec::new();
    for site in model
        .output_sites()
        .into_iter()
        .filter(|site| matches!(site.kind, SiteKind::Sample | SiteKind::Param))
    {
        let names: Vec<String> = columns_of(&[site]).iter().map(Column::csv_name).collect();
        let columns: Option<Vec<usize>> = names
            .iter()
            .map(|n| header.iter().position(|h| h == n))
            .collect();
        match columns {
            Some(columns) => located.push((site, columns)),
            None => return Err(site.name.clone()),
        }
    }
    Ok(located)
}

/// The header of the log-likelihood files: `y.1`, `y.2`, … for the kept elements.
pub fn header_of(sites: &[PointwiseLogLik]) -> Vec<String> {
    let mut header = Vec::new();
    for site in sites {
        for &flat in &site.elements {
            let mut index = vec![0; site.shape.len()];
            let mut rest = flat;
            for (axis, size) in site.shape.iter().enumerate().rev() {
                index[axis] = rest % size.max(&1);
                rest /= size.max(&1);
            }
            header.push(
                Column {
                    site: site.name.clone(),
                    index,
                }
                .csv_name(),
            );
        }
    }
    header
}

/// One draw's row: every site's kept elements, in order.
fn row_of(sites: &[PointwiseLogLik]) -> Vec<f64> {
    sites
        .iter()
        .flat_map(|s| s.log_lik.iter().copied())
        .collect()
}

/// What was written, for `summary.json`'s facts and the last line of `bdlc infer`.
pub struct Written {
    /// The files, in chain order.
    pub files: Vec<PathBuf>,
    /// Observed elements per draw.
    pub observations: usize,
    /// Draws (all files together).
    pub draws: usize,
}

/// What computing a run's log-likelihood rows needs: its free sites located among the draws'
/// columns and the names of the observed elements (those of the first draw).
struct Pointwise<'m> {
    model: &'m Model,
    located: Vec<(&'m SiteInfo, Vec<usize>)>,
    names: Vec<String>,
    width: usize,
}

impl<'m> Pointwise<'m> {
    /// Prepares the rows of `result`'s draws; `None` when the run has no draws.
    fn new(model: &'m Model, result: &RunResult) -> Result<Option<Pointwise<'m>>, Failure> {
        let header: Vec<String> = result.columns.iter().map(Column::csv_name).collect();
        let located = locate_free_sites(model, &header).map_err(|site| {
            Failure::run(
                "E0914",
                format!("the run's draws have no column for site `{site}`"),
            )
        })?;
        let width = result.columns.len().max(1);
        let Some(first_row) = result.draws.iter().find(|d| !d.is_empty()) else {
            return Ok(None);
        };
        let first = model
            .pointwise_log_likelihood(&substitution(&located, &first_row[..width])?)
            .map_err(|e| Failure::model(vec![e.to_diagnostic()]))?;
        Ok(Some(Pointwise {
            model,
            names: header_of(&first),
            located,
            width,
        }))
    }

    /// The rows of a block of draws, computed in parallel, in order.
    fn rows(&self, draws: &[&[f64]]) -> Vec<Result<Vec<f64>, Failure>> {
        let observations = self.names.len();
        draws
            .par_iter()
            .map(|row| {
                let values = substitution(&self.located, row)?;
                let sites = self
                    .model
                    .pointwise_log_likelihood(&values)
                    .map_err(|e| Failure::model(vec![e.to_diagnostic()]))?;
                let row = row_of(&sites);
                if row.len() != observations {
                    return Err(Failure::run(
                        "E0961",
                        format!(
                            "a draw has {} observed elements, the first had {observations}",
                            row.len()
                        ),
                    ));
                }
                Ok(row)
            })
            .collect()
    }
}

/// Writes the log-likelihood of a finished run's draws into `out` (see the module's
/// documentation), or explains in the returned fact why it did not.
pub fn write_for_run(
    model: &Model,
    result: &RunResult,
    out: &Path,
    choice: LogLikChoice,
) -> Result<Value, Failure> {
    if choice == LogLikChoice::Never {
        return Ok(json!({ "written": false, "reason": "--no-log-lik" }));
    }
    if model.observed_sites().is_empty() {
        return Ok(json!({ "written": false, "reason": "the model observes nothing" }));
    }
    let Some(pointwise) = Pointwise::new(model, result)? else {
        return Ok(json!({ "written": false, "reason": "the run has no draws" }));
    };
    let width = pointwise.width;
    let n_draws: usize = result.draws.iter().map(|d| d.len() / width).sum();
    let observations = pointwise.names.len();
    if choice == LogLikChoice::WhenSmall && observations * n_draws > DEFAULT_LIMIT {
        return Ok(json!({
            "written": false,
            "reason": format!(
                "{observations} observations x {n_draws} draws is more than {DEFAULT_LIMIT}; --log-lik writes it"
            ),
        }));
    }
    // Markov chains get a file per chain, as their draws do, numbered like the chain files
    // (from `--chain-offset` + 1); other methods one file.
    let first_chain = result
        .facts
        .get("first_chain")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let units: Vec<(PathBuf, Vec<&[f64]>)> = if result.mcmc {
        result
            .draws
            .iter()
            .enumerate()
            .map(|(chain, rows)| {
                (
                    out.join(format!("log_lik-{}.csv", first_chain + chain + 1)),
                    vec![rows.as_slice()],
                )
            })
            .collect()
    } else {
        vec![(
            out.join("log_lik.csv"),
            result.draws.iter().map(Vec::as_slice).collect(),
        )]
    };
    let comments = vec![
        format!("pointwise log-likelihood, method = {}", result.method),
        "one row per draw, in the order of the draws' file; columns: observed site and element (1-based)".to_string(),
    ];
    let mut files = Vec::new();
    for (path, parts) in units {
        // Written under a temporary name renamed once whole, so that a process killed meanwhile
        // leaves no file with a header and no rows.
        let temporary = path.with_extension("csv.partial");
        let mut writer = DrawsWriter::create(&temporary, &comments, &pointwise.names)?;
        for rows in parts {
            let draws: Vec<&[f64]> = rows.chunks(width).collect();
            for block in draws.chunks(BLOCK) {
                for row in pointwise.rows(block) {
                    writer.row(&row?)?;
                }
            }
        }
        writer.flush()?;
        drop(writer);
        std::fs::rename(&temporary, &path)
            .map_err(|error| crate::output::io_failure(&path, &error))?;
        files.push(path);
    }
    let written = Written {
        files,
        observations,
        draws: n_draws,
    };
    Ok(json!({
        "written": true,
        "files": written
            .files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()))
            .collect::<Vec<_>>(),
        "observations": written.observations,
        "draws": written.draws,
    }))
}

/// The pointwise log-likelihood of a run held in memory (the REPL's runs), as [`read`] gives
/// it for a run's files: the same rows, computed by the same code as [`write_for_run`]'s.
pub fn table_for_run(model: &Model, result: &RunResult) -> Result<LogLikTable, Failure> {
    if model.observed_sites().is_empty() {
        return Err(Failure::usage(
            "E0960",
            "the run's model observes nothing: it has no pointwise log-likelihood",
            Some("PSIS-LOO and WAIC score how a model predicts its observed sites".to_string()),
        ));
    }
    let Some(pointwise) = Pointwise::new(model, result)? else {
        return Err(Failure::run("E0960", "the run has no draws"));
    };
    let mut columns = vec![Vec::new(); pointwise.names.len()];
    let mut chain_lengths = Vec::new();
    for rows in &result.draws {
        let draws: Vec<&[f64]> = rows.chunks(pointwise.width).collect();
        for block in draws.chunks(BLOCK) {
            for row in pointwise.rows(block) {
                for (column, value) in columns.iter_mut().zip(row?) {
                    column.push(value);
                }
            }
        }
        chain_lengths.push(draws.len());
    }
    // Draws of one unit (a guide's, an ensemble's) count as one sample, as the files do.
    if !result.mcmc {
        chain_lengths = vec![chain_lengths.iter().sum()];
    }
    Ok(LogLikTable {
        names: pointwise.names,
        columns,
        chain_lengths,
        files: Vec::new(),
    })
}

/// A run's pointwise log-likelihood read back: one slice of draws per observation.
pub struct LogLikTable {
    /// The column names (`y.1`).
    pub names: Vec<String>,
    /// Per observation, its draws (all files one after another).
    pub columns: Vec<Vec<f64>>,
    /// Draws per file (chain).
    pub chain_lengths: Vec<usize>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

/// The log-likelihood files of a run directory: `log_lik-1.csv`, … or `log_lik.csv`.
pub fn files_of(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    if !dir.is_dir() {
        return Err(Failure::usage(
            "E0910",
            format!("`{}` is not a directory", dir.display()),
            None,
        ));
    }
    let mut files = Vec::new();
    for index in 1.. {
        let path = dir.join(format!("log_lik-{index}.csv"));
        if !path.is_file() {
            break;
        }
        files.push(path);
    }
    let single = dir.join("log_lik.csv");
    if files.is_empty() && single.is_file() {
        files.push(single);
    }
    if files.is_empty() {
        return Err(Failure::usage(
            "E0960",
            format!(
                "`{}` holds no pointwise log-likelihood (no log_lik.csv or log_lik-1.csv)",
                dir.display()
            ),
            Some(
                "run `bdlc infer MODEL --out DIR --log-lik` to write it (it is written by default only when observations x draws is at most 1,000,000)"
                    .to_string(),
            ),
        ));
    }
    Ok(files)
}

/// Reads a run's log-likelihood files (of a finished run: see [`require_complete_run`]).
pub fn read(dir: &Path) -> Result<LogLikTable, Failure> {
    let files = files_of(dir)?;
    require_complete_run(dir)?;
    let mut names: Vec<String> = Vec::new();
    let mut columns: Vec<Vec<f64>> = Vec::new();
    let mut chain_lengths = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|error| {
            Failure::usage(
                "E0901",
                format!(
                    "cannot read `{}`: {}",
                    path.display(),
                    describe_io_error(&error)
                ),
                None,
            )
        })?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'));
        let Some((_, header)) = lines.next() else {
            return Err(Failure::run(
                "E0961",
                format!("`{}` has no header", path.display()),
            ));
        };
        let header: Vec<String> = header.trim().split(',').map(str::to_string).collect();
        if names.is_empty() {
            names = header;
            columns = vec![Vec::new(); names.len()];
        } else if names != header {
            return Err(Failure::run(
                "E0961",
                format!(
                    "`{}` has other columns than `{}`",
                    path.display(),
                    files[0].display()
                ),
            ));
        }
        let mut count = 0;
        for (number, line) in lines {
            let fields: Vec<&str> = line.trim().split(',').collect();
            if fields.len() != names.len() {
                return Err(Failure::run(
                    "E0961",
                    format!(
                        "`{}` line {}: {} values for {} columns",
                        path.display(),
                        number + 1,
                        fields.len(),
                        names.len()
                    ),
                ));
            }
            for (column, field) in columns.iter_mut().zip(fields) {
                let value = parse_number(field).ok_or_else(|| {
                    Failure::run(
                        "E0961",
                        format!(
                            "`{}` line {}: `{field}` is not a number",
                            path.display(),
                            number + 1
                        ),
                    )
                })?;
                column.push(value);
            }
            count += 1;
        }
        chain_lengths.push(count);
    }
    Ok(LogLikTable {
        names,
        columns,
        chain_lengths,
        files,
    })
}

/// A number as the draws files write it (`inf`, `-inf` and `nan` included).
fn parse_number(field: &str) -> Option<f64> {
    match field {
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}
