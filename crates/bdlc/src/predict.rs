//! `bdlc predict MODEL --posterior DIR --data NEW --out FILE`: posterior-predictive draws of
//! every `observe` site on new inputs, from the draws of a finished run (any method).
//!
//! Each posterior draw fixes the latent and param sites (read from `draws.csv` or the chains'
//! CSV files); the model then runs on the new data with every observation drawn from its
//! likelihood. A run whose draws file does not hold every site (a streamed SVI run writes its
//! large sites by site only, and Parquet instead of CSV) is drawn from again: each posterior draw
//! comes from the fitted guide saved in `params.json`, one draw at a time, so that memory holds
//! the draws being predicted rather than the run's. FILE gets one row per observed element: mean, sd, 5%, 50% and 95% of the
//! predictive draws, and for discrete sites the probability of each value. The model's
//! `deterministic` sites follow the observed ones, in the summary and in the draws, computed
//! on the new inputs from the same posterior draws.

use crate::device::{self, DeviceChoice};
use crate::output::{format_number, substitution, write_file};
use crate::session::{describe_io_error, Failure, Session};
use bdl_autodiff::Tensor;
use bdl_infer::diagnostics::quantile;
use bdl_infer::rng::stream_rng;
use bdl_runtime::data::Completeness;
use bdl_runtime::handlers::SiteKind;
use bdl_runtime::model::SiteInfo;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `bdlc predict`.
#[derive(clap::Args, Debug, Clone)]
pub struct PredictArgs {
    /// The model file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The directory of a finished run (`bdlc infer --out DIR`).
    #[arg(long, value_name = "DIR")]
    pub posterior: PathBuf,
    /// The new inputs (observed columns may be absent); default: the model's own data.
    #[arg(long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Where to write the predictive summary (CSV).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write every predictive draw (CmdStan layout) to this file.
    #[arg(long = "draws-out", value_name = "FILE")]
    pub draws_out: Option<PathBuf>,
    /// Use at most this many posterior draws, evenly spaced.
    #[arg(long, default_value_t = 1000)]
    pub draws: usize,
    /// The seed of the predictive draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the networks' forward passes run: `cpu` (f64), `gpu` (wgpu, f32; batched over
    /// the draws) or `auto` (a hardware GPU when there is one).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Score the predictions against the observed values in the data: accuracy, NLL, Brier
    /// score, calibration error and AUROC for classifiers; RMSE, NLL, CRPS and interval coverage
    /// for regressions. Prints a table and writes `metrics.json`.
    #[arg(long)]
    pub metrics: bool,
    /// Where `--metrics` writes its JSON (default: `metrics.json` beside `--out`); implies
    /// `--metrics`.
    #[arg(long = "metrics-out", value_name = "FILE")]
    pub metrics_out: Option<PathBuf>,
    /// The number of equal-width bins of the expected calibration error (with `--metrics`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub bins: Option<u16>,
}

/// A table of draws read back from a run's CSV files.
pub struct DrawTable {
    /// Column names as in the file (`theta.1`).
    pub header: Vec<String>,
    /// One row per draw, all chains one after the other.
    pub rows: Vec<Vec<f64>>,
    /// The rows of each chain (their count), in file order.
    pub chain_lengths: Vec<usize>,
}

/// The draws files of a run: `chain-1.csv`, `chain-2.csv`, …, or else `draws.csv`.
pub fn draw_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    if !dir.is_dir() {
        return Err(Failure::usage(
            "E0910",
            format!("`{}` is not a directory", dir.display()),
            None,
        ));
    }
    crate::output::require_complete_run(dir)?;
    // Markov methods write a file per chain (and Gibbs and SGLD also `draws.csv`, all chains
    // together); the per-chain files keep the chains apart, so they come first.
    // A part of a split run (`--chain-offset 4`) starts at `chain-5.csv`: every `chain-N.csv`
    // is read, in the order of N.
    let mut numbered: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| crate::output::io_failure(dir, &e))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let index = name.strip_prefix("chain-")?.strip_suffix(".csv")?;
            let index: usize = index.parse().ok()?;
            entry.path().is_file().then(|| (index, entry.path()))
        })
        .collect();
    numbered.sort();
    let chains: Vec<PathBuf> = numbered.into_iter().map(|(_, path)| path).collect();
    let single = dir.join("draws.csv");
    if chains.is_empty() && single.is_file() {
        return Ok(vec![single]);
    }
    if chains.is_empty() && dir.join("draws.parquet").is_file() {
        return Err(Failure::usage(
            "E0979",
            format!(
                "`{}` holds its draws in `draws.parquet`, which this command does not read back",
                dir.display()
            ),
            Some(
                "its summary.json holds the run's summary; read the draws with pandas \
                 (`pd.read_parquet`) or polars, or rerun with `--format csv`"
                    .to_string(),
            ),
        ));
    }
    if chains.is_empty() {
        return Err(Failure::usage(
            "E0911",
            format!(
                "`{}` holds no draws (no draws.csv or chain-1.csv)",
                dir.display()
            ),
            Some("give the `--out` directory of a finished `bdlc infer` run".to_string()),
        ));
    }
    Ok(chains)
}

/// Reads a run's draws; comment lines are skipped.
pub fn read_draws(dir: &Path) -> Result<DrawTable, Failure> {
    let mut table = DrawTable {
        header: Vec::new(),
        rows: Vec::new(),
        chain_lengths: Vec::new(),
    };
    for path in draw_files(dir)? {
        let text = crate::session::read_run_text(&path)?;
        // The header is the first line that is neither blank nor a comment; the rows after it
        // are parsed in parallel (a large network's draws file holds millions of numbers).
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(number, line)| (number, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
        let header: Option<Vec<String>> = lines
            .next()
            .map(|(_, line)| line.split(',').map(str::to_string).collect());
        let body: Vec<(usize, &str)> = lines.collect();
        let count = body.len();
        if let Some(names) = &header {
            let parsed: Result<Vec<Vec<f64>>, Failure> = body
                .par_iter()
                .map(|&(line_number, line)| {
                    let fields = line.split(',').count();
                    if fields != names.len() {
                        return Err(Failure::run(
                            "E0912",
                            format!(
                                "`{}` line {}: {} values for {} columns",
                                path.display(),
                                line_number + 1,
                                fields,
                                names.len()
                            ),
                        ));
                    }
                    let row: Result<Vec<f64>, _> =
                        line.split(',').map(|f| f.parse::<f64>()).collect();
                    row.map_err(|_| {
                        Failure::run(
                            "E0912",
                            format!(
                                "`{}` line {}: not a number",
                                path.display(),
                                line_number + 1
                            ),
                        )
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .collect();
            table.rows.extend(parsed?);
        }
        let header = header
            .ok_or_else(|| Failure::run("E0912", format!("`{}` has no header", path.display())))?;
        if table.header.is_empty() {
            table.header = header;
        } else if table.header != header {
            return Err(Failure::run(
                "E0912",
                format!(
                    "`{}` has other columns than the first chain",
                    path.display()
                ),
            ));
        }
        table.chain_lengths.push(count);
    }
    Ok(table)
}

/// The CmdStan column names of a site.
fn csv_names(site: &SiteInfo) -> Vec<String> {
    crate::output::columns_of(&[site])
        .iter()
        .map(crate::output::Column::csv_name)
        .collect()
}

/// Posterior draws made again from a run's fitted guide (`params.json`): draw `k` comes from
/// its own random stream, so that draws can be made in any order and in parallel.
struct GuideDraws {
    guide: bdl_infer::vi::posterior::FittedGuide,
    params: Vec<f64>,
    /// The free sites' CSV names, in the order of [`GuideDraws::row`]'s values.
    header: Vec<String>,
    seed: u64,
}

/// The seed purpose of the guide's draws in `predict` (apart from the predictive draws').
const GUIDE_DRAWS_STREAM: u64 = 0x6775_6964_6500;

impl GuideDraws {
    /// The guide of the run in `dir` when its draws file lacks one of the free sites' columns
    /// (or there is no CSV draws file); `None` when the CSV draws hold every free site.
    fn open(
        dir: &Path,
        model: &bdl_runtime::model::Model,
        free: &[&SiteInfo],
        seed: u64,
    ) -> Result<Option<GuideDraws>, Failure> {
        let params_path = dir.join("params.json");
        if dir.is_dir() {
            crate::output::require_complete_run(dir)?;
        }
        let csv_header = match draw_files(dir) {
            Ok(files) => first_header(&files[0])?,
            Err(error) => {
                if params_path.is_file() && dir.join("draws.parquet").is_file() {
                    None
                } else {
                    return Err(error);
                }
            }
        };
        let names: Vec<String> = free.iter().flat_map(|site| csv_names(site)).collect();
        if let Some(header) = &csv_header {
            if names.iter().all(|name| header.contains(name)) {
                return Ok(None);
            }
        }
        let missing = names
            .iter()
            .find(|name| csv_header.as_ref().is_none_or(|h| !h.contains(name)))
            .cloned()
            .unwrap_or_default();
        let unreadable = |detail: String| {
            Failure::run(
                "E0977",
                format!(
                    "the draws in `{}` do not hold column `{missing}`, and the fitted guide in \
                     `{}` cannot be read: {detail}",
                    dir.display(),
                    params_path.display()
                ),
            )
        };
        if !params_path.is_file() {
            let mut failure = Failure::run(
                "E0977",
                format!(
                    "the draws in `{}` do not hold column `{missing}`, and the run left no \
                     `params.json` to draw from",
                    dir.display()
                ),
            );
            failure.diagnostics = failure
                .diagnostics
                .into_iter()
                .map(|d| {
                    d.with_hint(
                        "rerun `bdlc infer` with `--all-draws` (and `--format csv` for a CSV file)",
                    )
                })
                .collect();
            return Err(failure);
        }
        let text = std::fs::read_to_string(&params_path)
            .map_err(|error| unreadable(describe_io_error(&error)))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| unreadable(error.to_string()))?;
        // A VIS run's saved guide is q₀ before the learned sampler's refinement: its draws
        // are not the run's posterior draws, which only its draws file holds.
        if value["method"] == "vis" {
            return Err(Failure::run_with_hint(
                "E0948",
                format!(
                    "the draws in `{}` do not hold column `{missing}`, and a VIS run's \
                     `params.json` holds its guide before refinement, not its posterior",
                    dir.display()
                ),
                "rerun `bdlc infer --method vis` so that it writes its draws file with every \
                 column",
            ));
        }
        let guide_params: bdl_infer::vi::posterior::GuideParams =
            serde_json::from_value(value["guide"].clone())
                .map_err(|error| unreadable(error.to_string()))?;
        let params: Vec<f64> = serde_json::from_value(value["params_unconstrained"].clone())
            .map_err(|error| unreadable(error.to_string()))?;
        let guide = bdl_infer::vi::posterior::FittedGuide::new(guide_params)
            .map_err(|error| unreadable(error.to_string()))?;
        let dim = guide.latent_dim() + params.len();
        if dim != model.layout.dim() {
            return Err(unreadable(format!(
                "it covers {dim} unconstrained numbers, the model has {}",
                model.layout.dim()
            )));
        }
        Ok(Some(GuideDraws {
            guide,
            params,
            header: names,
            seed,
        }))
    }

    /// Draw `index`'s values of the free sites, flattened in `header` order.
    fn row(
        &self,
        index: usize,
        evaluator: &mut bdl_runtime::model::Evaluator<'_>,
        free: &[&SiteInfo],
    ) -> Result<Vec<f64>, Failure> {
        let mut rng = stream_rng(self.seed ^ GUIDE_DRAWS_STREAM, index as u64);
        let mut position = self.guide.sample(&mut rng, 1).pop().unwrap_or_default();
        position.extend_from_slice(&self.params);
        let values = evaluator
            .constrained(&position, &mut rng)
            .map_err(|e| Failure::model(vec![e.to_diagnostic()]))?;
        let mut row = Vec::new();
        crate::output::flatten_row(free, &values, &mut row);
        Ok(row)
    }
}

/// The header of a CmdStan CSV draws file (its first line that is neither blank nor a comment).
fn first_header(path: &Path) -> Result<Option<Vec<String>>, Failure> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|error| {
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
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|error| {
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
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            return Ok(Some(line.split(',').map(str::to_string).collect()));
        }
    }
    Ok(None)
}

/// Runs `bdlc predict`.
pub fn run(args: &PredictArgs, session: &mut Session) -> Result<(), Failure> {
    let metrics_wanted = args.metrics || args.metrics_out.is_some();
    if args.bins.is_some() && !metrics_wanted {
        return Err(Failure::usage(
            "E0966",
            "`--bins` sets the bins of the calibration error of `--metrics`, which is not asked for",
            Some("add `--metrics`, or leave `--bins` out".to_string()),
        ));
    }
    let model = session.load(
        &args.model,
        &args.data,
        Completeness::AllowMissingObserved,
        args.seed,
    )?;
    let free: Vec<&SiteInfo> = model
        .output_sites()
        .into_iter()
        .filter(|site| matches!(site.kind, SiteKind::Sample | SiteKind::Param))
        .collect();
    let guide = GuideDraws::open(&args.posterior, &model, &free, args.seed)?;
    let table = match &guide {
        // The guide's draws are made as they are needed (below); the table stays empty.
        Some(guide) => DrawTable {
            header: guide.header.clone(),
            rows: Vec::new(),
            chain_lengths: Vec::new(),
        },
        None => read_draws(&args.posterior)?,
    };
    let mut located = Vec::new();
    for site in &free {
        let names = csv_names(site);
        let columns: Option<Vec<usize>> = names
            .iter()
            .map(|n| table.header.iter().position(|h| h == n))
            .collect();
        match columns {
            Some(columns) => located.push((*site, columns)),
            None => {
                return Err(Failure::run(
                    "E0914",
                    format!(
                        "the draws in `{}` have no column `{}` for site `{}` (shape {:?} with these data)",
                        args.posterior.display(),
                        names.first().cloned().unwrap_or_default(),
                        site.name,
                        site.shape
                    ),
                ))
            }
        }
    }
    let n_rows = match &guide {
        Some(_) => args.draws,
        None => table.rows.len(),
    };
    if n_rows == 0 {
        return Err(Failure::run(
            "E0915",
            format!("`{}` holds no draws", args.posterior.display()),
        ));
    }
    let n_used = args.draws.clamp(1, n_rows);
    let picked: Vec<usize> = (0..n_used).map(|k| k * n_rows / n_used).collect();
    // The metrics run the model again on the same posterior draws, in the same order.
    let metric_rows = picked.clone();
    // The summary and the draws hold every `observe` site and then every `deterministic` site
    // (the noise-free f(x) of a regression, say), each computed from the same posterior draw.
    let observed: Vec<&SiteInfo> = model
        .observed_sites()
        .into_iter()
        .chain(
            model
                .output_sites()
                .into_iter()
                .filter(|site| site.kind == SiteKind::Deterministic),
        )
        .collect();
    let started = std::time::Instant::now();
    let mut where_networks_ran = String::new();
    let draws = match device::open(args.device)? {
        Some(backend) => {
            // The device batches whole rows: a guide's draws are made here first.
            let guide_rows: Vec<Vec<f64>>;
            let (rows, picked): (&[Vec<f64>], Vec<usize>) = match &guide {
                Some(guide) => {
                    guide_rows = picked
                        .par_iter()
                        .map_init(
                            || model.output_evaluator(),
                            |evaluator, &row| guide.row(row, evaluator, &free),
                        )
                        .collect::<Result<_, _>>()?;
                    (&guide_rows, (0..guide_rows.len()).collect())
                }
                None => (&table.rows, picked),
            };
            let batched = device::predict_batched(
                &model,
                &backend,
                &located,
                rows,
                &picked,
                args.seed,
                &|row: &[f64]| substitution(&located, row),
            )?;
            where_networks_ran = format!(
                "; {} network call{} per draw batched on {}, {:.2} s of it on the device",
                batched.calls,
                if batched.calls == 1 { "" } else { "s" },
                backend.backend_name(),
                batched.device_seconds
            );
            batched.draws
        }
        None => {
            let draws: Vec<Result<Vec<(String, Tensor)>, Failure>> = picked
                .par_iter()
                .map_init(
                    || model.output_evaluator(),
                    |evaluator, &row| {
                        let values = match &guide {
                            Some(guide) => {
                                substitution(&located, &guide.row(row, evaluator, &free)?)?
                            }
                            None => substitution(&located, &table.rows[row])?,
                        };
                        let mut rng = stream_rng(args.seed, row as u64);
                        model
                            .predictive_draw(&values, &mut rng)
                            .map_err(|e| Failure::model(vec![e.to_diagnostic()]))
                    },
                )
                .collect();
            draws.into_iter().collect::<Result<Vec<_>, _>>()?
        }
    };
    // A site in a mini-batched plate was seen at the batch's size when the model was compiled;
    // prediction runs every plate in full, so the draws give the shapes.
    let observed: Vec<SiteInfo> = observed
        .iter()
        .map(|site| {
            let mut site = (*site).clone();
            if let Some((_, tensor)) = draws
                .first()
                .and_then(|d| d.iter().find(|(n, _)| *n == site.name))
            {
                site.shape = tensor.shape().to_vec();
            }
            site
        })
        .collect();
    let observed: Vec<&SiteInfo> = observed.iter().collect();
    let summary = summarise(&observed, &draws);
    write_file(&args.out, &summary)?;
    if let Some(path) = &args.draws_out {
        write_predictive_draws(path, &observed, &draws)?;
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "wrote {} ({} posterior draws in {:.2} s{where_networks_ran})",
            args.out.display(),
            n_used,
            started.elapsed().as_secs_f64()
        );
    }
    if metrics_wanted {
        let values_of = |row: usize| -> Result<HashMap<String, Tensor>, Failure> {
            match &guide {
                Some(guide) => {
                    let mut evaluator = model.output_evaluator();
                    substitution(&located, &guide.row(row, &mut evaluator, &free)?)
                }
                None => substitution(&located, &table.rows[row]),
            }
        };
        write_metrics(args, &model, &metric_rows, &values_of, &draws)?;
    }
    Ok(())
}

/// Scores the predictions (`--metrics`), writes the JSON and prints the table.
fn write_metrics(
    args: &PredictArgs,
    model: &bdl_runtime::model::Model,
    rows: &[usize],
    values_of: &(dyn Fn(usize) -> Result<HashMap<String, Tensor>, Failure> + Sync),
    draws: &[Vec<(String, Tensor)>],
) -> Result<(), Failure> {
    let bins = args
        .bins
        .map_or(crate::predict_metrics::DEFAULT_BINS, usize::from);
    let (scored, notes) = crate::predict_metrics::score(model, rows, values_of, draws, bins)?;
    let path = args.metrics_out.clone().unwrap_or_else(|| {
        args.out.parent().map_or_else(
            || PathBuf::from("metrics.json"),
            |dir| dir.join("metrics.json"),
        )
    });
    let data: Vec<String> = args.data.iter().map(|p| p.display().to_string()).collect();
    let json = serde_json::json!({
        "model": args.model.display().to_string(),
        "posterior": args.posterior.display().to_string(),
        "data": data,
        "posterior_draws": rows.len(),
        "seed": args.seed,
        "sites": crate::predict_metrics::to_json(&scored, bins),
        "notes": notes,
    });
    write_file(&path, &format!("{json:#}\n"))?;
    let observations: usize = scored
        .iter()
        .map(|site| match &site.scores {
            crate::predict_metrics::SiteScores::Classification { metrics, .. } => {
                metrics.observations
            }
            crate::predict_metrics::SiteScores::Regression(metrics) => metrics.observations,
        })
        .sum();
    let source = if data.is_empty() {
        "the model's own data".to_string()
    } else {
        data.join(", ")
    };
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    {
        println!(
            "predictive metrics on {observations} observations of {source} ({} posterior draws)",
            rows.len()
        );
        print!("{}", crate::predict_metrics::table(&scored, bins));
        for note in &notes {
            eprintln!("note: {note}");
        }
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The values of one site across draws, element by element.
fn site_columns(site: &SiteInfo, draws: &[Vec<(String, Tensor)>]) -> Vec<Vec<f64>> {
    let count: usize = site.shape.iter().product();
    let mut columns = vec![Vec::with_capacity(draws.len()); count];
    for draw in draws {
        if let Some((_, tensor)) = draw.iter().find(|(name, _)| *name == site.name) {
            for (column, value) in columns.iter_mut().zip(tensor.data()) {
                column.push(*value);
            }
        }
    }
    columns
}

/// The summary CSV: one row per element of each observed or deterministic site.
fn summarise(observed: &[&SiteInfo], draws: &[Vec<(String, Tensor)>]) -> String {
    let max_class = observed
        .iter()
        .filter(|site| site.discrete)
        .flat_map(|site| site_columns(site, draws).into_iter().flatten())
        .fold(0.0_f64, f64::max) as usize;
    let any_discrete = observed.iter().any(|site| site.discrete);
    let mut text = String::from("site,index,mean,sd,q5,q50,q95");
    if any_discrete {
        for class in 0..=max_class.min(64) {
            let _ = write!(text, ",p{class}");
        }
    }
    text.push('\n');
    for site in observed {
        for (flat, values) in site_columns(site, draws).iter().enumerate() {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0))
                .sqrt();
            let _ = write!(
                text,
                "{},{},{},{},{},{},{}",
                site.name,
                flat + 1,
                format_number(mean),
                format_number(sd),
                format_number(quantile(values, 0.05)),
                format_number(quantile(values, 0.5)),
                format_number(quantile(values, 0.95))
            );
            if any_discrete {
                for class in 0..=max_class.min(64) {
                    if site.discrete {
                        let share =
                            values.iter().filter(|&&v| v == class as f64).count() as f64 / n;
                        let _ = write!(text, ",{}", format_number(share));
                    } else {
                        text.push(',');
                    }
                }
            }
            text.push('\n');
        }
    }
    text
}

fn write_predictive_draws(
    path: &Path,
    observed: &[&SiteInfo],
    draws: &[Vec<(String, Tensor)>],
) -> Result<(), Failure> {
    let columns = crate::output::columns_of(observed);
    let header: Vec<String> = columns
        .iter()
        .map(crate::output::Column::csv_name)
        .collect();
    let mut writer = crate::output::DrawsWriter::create(
        path,
        &["posterior predictive draws".to_string()],
        &header,
    )?;
    let mut row = Vec::new();
    for draw in draws {
        crate::output::flatten_row(observed, draw, &mut row);
        writer.row(&row)?;
    }
    writer.flush()
}
