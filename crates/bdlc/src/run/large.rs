//! The output plan of a run: whether its draws stay in memory or stream to their file, which
//! format that file has, and which sites' draws it holds.
//!
//! A run of `n` draws of `c` scalar columns holds `n × c` numbers; a 784-100-10 network's 1,000
//! draws are 79.5 million (636 MB). Above [`STREAM_ABOVE_VALUES`] the draws of a fitted guide
//! are drawn in chunks, summarised on the fly (`bdl_infer::diagnostics::streaming`) and written
//! as they come, so that memory holds one chunk whatever the number of draws; such a run writes
//! Parquet (`draws.parquet`) unless `--format csv` says otherwise, and leaves out the draws of
//! sites with more than [`crate::output::ELEMENTS_BY_SITE`] elements (summarised by site in
//! `summary.json`, and drawn again from the guide's parameters in `params.json` by
//! `bdlc predict`) unless `--all-draws` says otherwise. Smaller runs keep everything as before:
//! all draws in memory, `draws.csv` unless `--format parquet`.

use crate::output::{io_failure, Column, DrawsWriter, ELEMENTS_BY_SITE};
use crate::parquet::ParquetDraws;
use crate::session::Failure;
use std::path::{Path, PathBuf};

/// Runs with more values than this (columns × draws, 64 MB as f64) stream their draws.
pub const STREAM_ABOVE_VALUES: usize = 8_000_000;

/// How many values one streamed chunk of draws holds at most (16 MB as f64).
pub const CHUNK_VALUES: usize = 2_000_000;

/// The draws file's format, as `--format` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatChoice {
    /// CmdStan CSV for runs that keep their draws in memory, Parquet for streamed ones.
    #[default]
    Auto,
    /// CmdStan CSV (`draws.csv`).
    Csv,
    /// Apache Parquet (`draws.parquet`): one DOUBLE column per scalar element.
    Parquet,
}

/// A draws file's format once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrawsFormat {
    /// `draws.csv`.
    Csv,
    /// `draws.parquet`.
    Parquet,
}

impl DrawsFormat {
    /// The file's name in the run folder.
    pub fn file_name(self) -> &'static str {
        match self {
            DrawsFormat::Csv => "draws.csv",
            DrawsFormat::Parquet => "draws.parquet",
        }
    }

    /// The format's name, as `--format` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DrawsFormat::Csv => "csv",
            DrawsFormat::Parquet => "parquet",
        }
    }
}

/// What the user asked of the outputs (`bdlc infer --format`, `--all-draws`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// The draws file's format.
    pub format: FormatChoice,
    /// Write every element's draws, also of sites summarised by site.
    pub all_draws: bool,
    /// Continue the fit from the state saved in the output folder (`--resume`).
    pub resume: bool,
}

/// The decided plan of one run's outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// Whether draws stream in chunks instead of staying in memory.
    pub stream: bool,
    /// The draws file's format.
    pub format: DrawsFormat,
    /// The indices of the columns the draws file holds.
    pub written: Vec<usize>,
    /// The sites whose draws the file leaves out (summarised by site only).
    pub left_out: Vec<String>,
}

impl RunPlan {
    /// The plan for `n_draws` draws of `columns`.
    pub fn new(columns: &[Column], n_draws: usize, options: OutputOptions) -> RunPlan {
        let stream = columns.len().saturating_mul(n_draws) > STREAM_ABOVE_VALUES;
        let format = match options.format {
            FormatChoice::Csv => DrawsFormat::Csv,
            FormatChoice::Parquet => DrawsFormat::Parquet,
            FormatChoice::Auto if stream => DrawsFormat::Parquet,
            FormatChoice::Auto => DrawsFormat::Csv,
        };
        let mut written = Vec::with_capacity(columns.len());
        let mut left_out = Vec::new();
        let mut start = 0;
        while start < columns.len() {
            let site = &columns[start].site;
            let length = columns[start..]
                .iter()
                .take_while(|c| &c.site == site)
                .count();
            if stream && !options.all_draws && length > ELEMENTS_BY_SITE {
                left_out.push(site.clone());
            } else {
                written.extend(start..start + length);
            }
            start += length;
        }
        RunPlan {
            stream,
            format,
            written,
            left_out,
        }
    }

    /// How many draws one streamed chunk holds.
    pub fn chunk_draws(&self, n_columns: usize) -> usize {
        (CHUNK_VALUES / n_columns.max(1)).max(1)
    }
}

/// An open draws file of either format, taking rows of its columns.
pub enum DrawsFile {
    /// CmdStan CSV.
    Csv(CsvDraws),
    /// Parquet.
    Parquet(ParquetDraws),
}

/// A CSV draws file written as rows come. It is created as `draws.csv.partial` and renamed to
/// `draws.csv` once its first rows are on disk, so that a process ended at any moment never
/// leaves a `draws.csv` with a header and no rows (a file CmdStan readers refuse).
pub struct CsvDraws {
    writer: DrawsWriter,
    /// The file's final name.
    path: PathBuf,
    /// The name it is written under until its first rows are on disk.
    temporary: PathBuf,
    /// Whether the file has its final name yet.
    named: bool,
}

impl CsvDraws {
    /// Starts the file with its comment lines and header, under its temporary name.
    fn create(path: &Path, comments: &[String], names: &[String]) -> Result<CsvDraws, Failure> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".partial");
        let temporary = PathBuf::from(temporary);
        Ok(CsvDraws {
            writer: DrawsWriter::create(&temporary, comments, names)?,
            path: path.to_path_buf(),
            temporary,
            named: false,
        })
    }

    /// Writes out the buffer and gives the file its final name if it has none yet.
    fn flush_and_name(&mut self) -> Result<(), Failure> {
        self.writer.flush()?;
        if !self.named {
            std::fs::rename(&self.temporary, &self.path)
                .map_err(|error| io_failure(&self.path, &error))?;
            self.writer.renamed(&self.path);
            self.named = true;
        }
        Ok(())
    }
}

impl DrawsFile {
    /// Creates `format`'s file in `out` with the run's comment lines (`key = value`, which
    /// Parquet keeps as key-value metadata) and the columns `names`.
    pub fn create(
        out: &Path,
        format: DrawsFormat,
        comments: &[String],
        names: Vec<String>,
    ) -> Result<DrawsFile, Failure> {
        let path = out.join(format.file_name());
        Ok(match format {
            DrawsFormat::Csv => DrawsFile::Csv(CsvDraws::create(&path, comments, &names)?),
            DrawsFormat::Parquet => {
                let metadata = comments
                    .iter()
                    .map(|line| match line.split_once(" = ") {
                        Some((key, value)) => (key.to_string(), value.to_string()),
                        None => ("comment".to_string(), line.clone()),
                    })
                    .collect();
                DrawsFile::Parquet(ParquetDraws::create(&path, names, metadata)?)
            }
        })
    }

    /// Appends rows of the file's columns, row after row.
    pub fn push_rows(&mut self, rows: &[f64], n_columns: usize) -> Result<(), Failure> {
        match self {
            DrawsFile::Csv(file) => {
                if n_columns > 0 {
                    for row in rows.chunks_exact(n_columns) {
                        file.writer.row(row)?;
                    }
                }
                // The first rows name the file (see `CsvDraws`); later ones reach it with the
                // writer's timed flushes.
                if !file.named && n_columns > 0 && rows.len() >= n_columns {
                    file.flush_and_name()?;
                }
                Ok(())
            }
            DrawsFile::Parquet(writer) => writer.push_rows(rows),
        }
    }

    /// Finishes the file.
    pub fn finish(self) -> Result<(), Failure> {
        match self {
            DrawsFile::Csv(mut file) => file.flush_and_name(),
            DrawsFile::Parquet(writer) => writer.finish().map(|_| ()),
        }
    }
}

/// Writes rows of all `columns` (row after row) to the plan's draws file in `out`, keeping the
/// plan's columns.
pub fn write_rows(
    out: &Path,
    plan: &RunPlan,
    comments: &[String],
    columns: &[Column],
    rows: &[f64],
) -> Result<(), Failure> {
    let names = plan
        .written
        .iter()
        .map(|&i| columns[i].csv_name())
        .collect();
    let mut file = DrawsFile::create(out, plan.format, comments, names)?;
    let mut selected = Vec::new();
    file.push_rows(
        plan.select(rows, columns.len(), &mut selected),
        plan.written.len(),
    )?;
    file.finish()
}

impl RunPlan {
    /// The plan's columns of `rows` (all columns, row after row): `rows` itself when every
    /// column is written, else copied into `selected`.
    pub fn select<'a>(
        &self,
        rows: &'a [f64],
        n_columns: usize,
        selected: &'a mut Vec<f64>,
    ) -> &'a [f64] {
        if self.written.len() == n_columns {
            return rows;
        }
        selected.clear();
        if n_columns > 0 {
            for row in rows.chunks_exact(n_columns) {
                selected.extend(self.written.iter().map(|&i| row[i]));
            }
        }
        selected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(sites: &[(&str, usize)]) -> Vec<Column> {
        sites
            .iter()
            .flat_map(|&(site, n)| {
                (0..n).map(move |i| Column {
                    site: site.to_string(),
                    index: vec![i],
                })
            })
            .collect()
    }

    /// Small runs keep their draws and write CSV unless told; large ones stream Parquet
    /// without their huge sites unless told.
    #[test]
    fn plans_follow_the_size_and_the_flags() {
        let small = columns(&[("a", 10), ("w", 2000)]);
        let plan = RunPlan::new(&small, 1000, OutputOptions::default());
        assert!(!plan.stream);
        assert_eq!(plan.format, DrawsFormat::Csv);
        assert_eq!(plan.written.len(), 2010);
        let forced = OutputOptions {
            format: FormatChoice::Parquet,
            all_draws: false,
            resume: false,
        };
        assert_eq!(
            RunPlan::new(&small, 1000, forced).format,
            DrawsFormat::Parquet
        );
        let large = columns(&[("a", 10), ("w", 78_400), ("b", 100)]);
        let plan = RunPlan::new(&large, 1000, OutputOptions::default());
        assert!(plan.stream);
        assert_eq!(plan.format, DrawsFormat::Parquet);
        assert_eq!(plan.left_out, vec!["w".to_string()]);
        assert_eq!(plan.written.len(), 110);
        assert_eq!(plan.written[10], 78_410);
        let all = OutputOptions {
            format: FormatChoice::Csv,
            all_draws: true,
            resume: false,
        };
        let plan = RunPlan::new(&large, 1000, all);
        assert_eq!(plan.format, DrawsFormat::Csv);
        assert!(plan.left_out.is_empty());
        assert_eq!(plan.written.len(), large.len());
        assert_eq!(plan.chunk_draws(large.len()), 25);
    }
}
