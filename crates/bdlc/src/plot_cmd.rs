//! The figures of a run and `bdlc plot DIR`: posterior densities and traces per site, the SVI
//! loss curve, and the posterior-predictive band of a one-dimensional regression.
//!
//! A run is seen as [`RunDraws`]: named scalar columns and their draws per chain, built either
//! from a run that just finished or from the files of one (`draws.csv` or `chain-N.csv`,
//! `loss.csv`, `summary.json`). The predictive band runs the model itself: the input vector of
//! the data is replaced by a grid reaching beyond the data's range, the observed vector is marked
//! missing, and each posterior draw fixes the latent sites while the observations are drawn from
//! the likelihood at every grid point.

use crate::output::{write_file, Column};
use crate::plot::{self, Panel, PredictiveBand};
use crate::run::RunResult;
use crate::session::{Failure, Session};
use bdl_autodiff::Tensor;
use bdl_infer::diagnostics::quantile;
use bdl_infer::rng::stream_rng;
use bdl_ir::ir::{DataDim, SlotId, StmtKind};
use bdl_runtime::data::Completeness;
use bdl_runtime::handlers::SiteKind;
use bdl_runtime::model::Model;
use bdl_runtime::value::TensorValue;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How many elements of one site get a panel.
const PANELS_PER_SITE: usize = 8;
/// How many points the predictive band's grid has.
const GRID_POINTS: usize = 200;
/// How far the grid reaches beyond the data, as a share of their range on each side.
const GRID_MARGIN: f64 = 0.2;
/// How many posterior draws the predictive band uses at most.
const BAND_DRAWS: usize = 1000;

/// `bdlc plot DIR [--model MODEL] [--data FILE]... [--out DIR] [--seed S] [--quiet]`.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// The directory of a finished run (`bdlc infer --out DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The model, for the predictive band (default: the one named in the run's summary.json).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Data files for the model, replacing those it names.
    #[arg(long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Write the figures into this directory instead of DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The seed of the predictive draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Do not list the files written.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The draws of a run, by scalar column.
#[derive(Clone, Debug, Default)]
pub struct RunDraws {
    /// The method that made them (`nuts`, `svi`, …).
    pub method: String,
    /// The scalar columns of the output sites.
    pub columns: Vec<Column>,
    /// Row-major draws per chain (a single chain for methods other than MCMC).
    pub chains: Vec<Vec<f64>>,
    /// Whether the draws are Markov chains (trace plots apply).
    pub mcmc: bool,
    /// The SVI loss per step, when there is one.
    pub losses: Vec<f64>,
}

impl RunDraws {
    /// The draws of a run that just finished.
    pub fn from_result(result: &RunResult) -> RunDraws {
        RunDraws {
            method: result.method.clone(),
            columns: result.columns.clone(),
            chains: result.draws.clone(),
            mcmc: result.mcmc,
            losses: result.losses.clone(),
        }
    }

    /// The draws of a finished run, from its files. Sampler columns (`lp__`, …) are left out.
    pub fn read(dir: &Path) -> Result<RunDraws, Failure> {
        let table = crate::predict::read_draws(dir)?;
        let kept: Vec<usize> = (0..table.header.len())
            .filter(|&i| !table.header[i].ends_with("__"))
            .collect();
        let columns = kept
            .iter()
            .map(|&i| crate::run_files::column_from_csv_name(&table.header[i]))
            .collect();
        let mut chains = Vec::new();
        let mut rows = table.rows.iter();
        for &length in &table.chain_lengths {
            let mut chain = Vec::with_capacity(length * kept.len());
            for row in rows.by_ref().take(length) {
                chain.extend(kept.iter().map(|&i| row[i]));
            }
            chains.push(chain);
        }
        let mcmc = dir.join("chain-1.csv").is_file();
        let summary = crate::run_files::read_summary_json(dir)?;
        let method = summary
            .as_ref()
            .and_then(|s| s.get("method"))
            .and_then(|m| m.as_str())
            .map_or_else(
                || if mcmc { "nuts" } else { "unknown" }.to_string(),
                str::to_string,
            );
        Ok(RunDraws {
            method,
            columns,
            chains,
            mcmc,
            losses: read_losses(&dir.join("loss.csv"))?,
        })
    }

    /// The number of scalar columns.
    fn width(&self) -> usize {
        self.columns.len().max(1)
    }

    /// Every draw, all chains one after the other.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        let width = self.width();
        self.chains
            .iter()
            .flat_map(move |chain| chain.chunks(width))
    }

    /// The number of draws over all chains.
    pub fn n_draws(&self) -> usize {
        self.chains.iter().map(|c| c.len() / self.width()).sum()
    }

    /// The sites with draws, in column order.
    pub fn sites(&self) -> Vec<&str> {
        let mut sites: Vec<&str> = Vec::new();
        for column in &self.columns {
            if sites.last() != Some(&column.site.as_str()) {
                sites.push(&column.site);
            }
        }
        sites
    }

    /// One panel per scalar element (a few per site), of every site or of one.
    pub fn panels(&self, site: Option<&str>) -> Vec<Panel> {
        let width = self.width();
        let mut panels = Vec::new();
        let mut per_site: HashMap<&str, usize> = HashMap::new();
        for (index, column) in self.columns.iter().enumerate() {
            if site.is_some_and(|wanted| wanted != column.site) {
                continue;
            }
            let count = per_site.entry(&column.site).or_insert(0);
            if *count >= PANELS_PER_SITE {
                continue;
            }
            *count += 1;
            let chains = self
                .chains
                .iter()
                .map(|rows| rows.chunks(width).map(|row| row[index]).collect())
                .collect();
            panels.push(Panel {
                title: column.display_name(),
                chains,
            });
        }
        panels
    }
}

/// `loss.csv` (`step,loss`), or nothing when the run has none.
fn read_losses(path: &Path) -> Result<Vec<f64>, Failure> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = crate::session::read_run_text(path)?;
    let mut losses = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let value = line
            .split(',')
            .nth(1)
            .and_then(|field| field.trim().parse::<f64>().ok());
        match value {
            Some(value) => losses.push(value),
            None => {
                return Err(Failure::run(
                    "E0912",
                    format!(
                        "`{}` line {}: not a `step,loss` row",
                        path.display(),
                        number + 1
                    ),
                ))
            }
        }
    }
    Ok(losses)
}

/// A figure's SVG, or a failure naming why it could not be drawn.
pub fn figure(svg: Result<String, plot::PlotError>) -> Result<String, Failure> {
    svg.map_err(|error| Failure::run("E0580", error.to_string()))
}

/// Writes the run's figures into `out` (called by `bdlc infer --plot`).
pub fn plot_run(model: &Model, result: &RunResult, out: &Path) -> Result<(), Failure> {
    let draws = RunDraws::from_result(result);
    write_figures(Some(model), &draws, out, 0).map(|_| ())
}

/// Writes every figure that applies into `out` and returns the paths written: densities,
/// traces (MCMC), the loss curve (SVI) and the predictive band (a one-dimensional regression).
pub fn write_figures(
    model: Option<&Model>,
    draws: &RunDraws,
    out: &Path,
    seed: u64,
) -> Result<Vec<PathBuf>, Failure> {
    let mut written = Vec::new();
    let mut save = |name: &str, svg: String| -> Result<(), Failure> {
        let path = out.join(name);
        write_file(&path, &svg)?;
        written.push(path);
        Ok(())
    };
    let panels = draws.panels(None);
    if !panels.is_empty() {
        save("densities.svg", figure(plot::densities(&panels))?)?;
        if draws.mcmc {
            save("traces.svg", figure(plot::traces(&panels))?)?;
        }
    }
    if !draws.losses.is_empty() {
        save("loss.svg", figure(plot::loss_curve(&draws.losses))?)?;
    }
    if let Some(model) = model {
        if let Band::Drawn(band) = predictive_band(model, draws, seed)? {
            save("predictive.svg", figure(plot::predictive_band(&band))?)?;
        }
    }
    Ok(written)
}

/// Runs `bdlc plot`.
pub fn run(args: &PlotArgs, session: &mut Session) -> Result<(), Failure> {
    if !args.dir.is_dir() {
        return Err(Failure::usage(
            "E0910",
            format!("`{}` is not a directory", args.dir.display()),
            Some("give the `--out` directory of a finished `bdlc infer` run".to_string()),
        ));
    }
    let draws = RunDraws::read(&args.dir)?;
    let out = args.out.clone().unwrap_or_else(|| args.dir.clone());
    std::fs::create_dir_all(&out).map_err(|e| crate::output::io_failure(&out, &e))?;
    let model = match &args.model {
        Some(path) => Some(session.load(path, &args.data, Completeness::All, args.seed)?),
        None => model_of_run(args, session),
    };
    let written = write_figures(model.as_ref(), &draws, &out, args.seed)?;
    if !args.quiet {
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        eprintln!("wrote {}", names.join(", "));
    }
    Ok(())
}

/// The model named in the run's `summary.json`, if it still loads; otherwise the figures that
/// need no model are drawn and a note says why the band is missing.
fn model_of_run(args: &PlotArgs, session: &mut Session) -> Option<Model> {
    let summary = crate::run_files::read_summary_json(&args.dir).ok()??;
    let path = PathBuf::from(summary.get("model")?.as_str()?);
    match session.load(&path, &args.data, Completeness::All, args.seed) {
        Ok(model) => Some(model),
        Err(failure) => {
            if !args.quiet {
                let reason = failure
                    .diagnostics
                    .first()
                    .map_or_else(String::new, |d| format!(" ({})", d.message));
                eprintln!(
                    "note: no predictive band: the run's model `{}` did not load{reason}; pass `--model`",
                    path.display()
                );
            }
            None
        }
    }
}

/// A predictive band, or why the model has none.
pub enum Band {
    /// The band over a grid of inputs.
    Drawn(PredictiveBand),
    /// The model is not a one-dimensional regression; the reason in words.
    NotApplicable(String),
}

/// The data of a one-dimensional regression: the input vector, the observed vector, and the
/// sizes that follow their length.
struct Regression {
    x: SlotId,
    y: SlotId,
    x_name: String,
    y_name: String,
    sizes: Vec<SlotId>,
    lower: Option<f64>,
    upper: Option<f64>,
}

/// Finds the input and observed vectors: exactly one real vector observed and nothing else, and
/// exactly one other real vector.
fn regression_of(model: &Model) -> Result<Regression, String> {
    let program = &model.program;
    let observed = bdl_runtime::pipeline::observed_only(program);
    let vectors = |observed_side: bool| {
        program
            .data
            .iter()
            .filter(|decl| decl.base == bdl_syntax::ast::BaseType::Vector)
            .filter(|decl| observed.contains(&decl.slot) == observed_side)
            .collect::<Vec<_>>()
    };
    let (ys, xs) = (vectors(true), vectors(false));
    let (Some(y), Some(x), 1, 1) = (ys.first(), xs.first(), ys.len(), xs.len()) else {
        return Err(
            "the predictive band needs a regression with one input vector and one observed vector in its data block"
                .to_string(),
        );
    };
    let mut sizes = Vec::new();
    for decl in [x, y] {
        for dim in &decl.dims {
            match dim {
                DataDim::Slot(slot) => sizes.push(*slot),
                DataDim::Fixed(_) => {
                    return Err(format!(
                        "`{}` has a fixed length, so it cannot take a grid of inputs",
                        decl.name
                    ))
                }
                DataDim::Any => {}
            }
        }
    }
    Ok(Regression {
        x: x.slot,
        y: y.slot,
        x_name: x.name.clone(),
        y_name: y.name.clone(),
        sizes,
        lower: bound_value(model, &x.lower),
        upper: bound_value(model, &x.upper),
    })
}

/// A data bound's value: a number, or the value of the declared integer it names.
fn bound_value(model: &Model, bound: &Option<bdl_ir::ir::DataBound>) -> Option<f64> {
    match bound.as_ref()? {
        bdl_ir::ir::DataBound::Value(value) => Some(*value),
        bdl_ir::ir::DataBound::Slot(slot) => model
            .data
            .values
            .get(slot)
            .and_then(|v| v.tensor.item().ok()),
    }
}

/// The data of the model with the input replaced by `grid` and the observed vector missing;
/// derived data are dropped so that the model derives them again from the grid.
fn grid_data(model: &Model, regression: &Regression, grid: &[f64]) -> bdl_runtime::data::DataSet {
    let mut data = model.data.clone();
    for stmt in &model.program.data_lets {
        if let StmtKind::Let { slot, .. } = &stmt.kind {
            data.values.remove(slot);
        }
    }
    data.values.insert(
        regression.x,
        TensorValue::real(Tensor::vector(grid.to_vec())),
    );
    for size in &regression.sizes {
        data.values
            .insert(*size, TensorValue::int_scalar(grid.len() as f64));
    }
    data.values.remove(&regression.y);
    data.missing.push(regression.y);
    data
}

/// The posterior-predictive band of a one-dimensional regression: the mean and the 5% and 95%
/// quantiles of the observed site's predictive draws on a grid reaching beyond the data.
pub fn predictive_band(model: &Model, draws: &RunDraws, seed: u64) -> Result<Band, Failure> {
    let regression = match regression_of(model) {
        Ok(regression) => regression,
        Err(reason) => return Ok(Band::NotApplicable(reason)),
    };
    let data_of = |slot: SlotId| {
        model
            .data
            .values
            .get(&slot)
            .map(|value| value.tensor.data().to_vec())
            .unwrap_or_default()
    };
    let (xs, ys) = (data_of(regression.x), data_of(regression.y));
    let (low, high) = xs
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return Ok(Band::NotApplicable(format!(
            "`{}` holds no finite values",
            regression.x_name
        )));
    }
    // The grid reaches beyond the data on both sides, but never past the input's declared bounds.
    let margin = GRID_MARGIN * (high - low).max(1e-9);
    let start = (low - margin).max(regression.lower.unwrap_or(f64::NEG_INFINITY));
    let end = (high + margin).min(regression.upper.unwrap_or(f64::INFINITY));
    let grid: Vec<f64> = (0..GRID_POINTS)
        .map(|i| start + (end - start) * i as f64 / (GRID_POINTS - 1) as f64)
        .collect();
    let grid_model = match Model::new(
        model.program.clone(),
        grid_data(model, &regression, &grid),
        seed,
    ) {
        Ok(grid_model) => grid_model,
        Err(error) => {
            return Ok(Band::NotApplicable(format!(
                "the model does not run on a grid of `{}`: {}",
                regression.x_name,
                error.to_diagnostic().message
            )))
        }
    };
    let Some(site) = grid_model
        .observed_sites()
        .into_iter()
        .find(|site| site.shape == [GRID_POINTS])
        .map(|site| site.name.clone())
    else {
        return Ok(Band::NotApplicable(format!(
            "no observed site follows the length of `{}`",
            regression.y_name
        )));
    };
    let located = match locate_sites(&grid_model, draws) {
        Ok(located) => located,
        Err(reason) => {
            return Ok(Band::NotApplicable(format!(
            "{reason}; the band needs latent sites whose shapes do not follow the length of `{}`",
            regression.x_name
        )))
        }
    };
    if draws.n_draws() == 0 {
        return Ok(Band::NotApplicable("the run holds no draws".to_string()));
    }
    let runs = predictive_runs(&grid_model, &located, draws, BAND_DRAWS, seed)?;
    let n_used = runs.len();
    let predictions: Vec<Vec<f64>> = runs
        .into_iter()
        .map(|run| {
            run.into_iter()
                .find(|(name, _)| *name == site)
                .map(|(_, tensor)| tensor.into_data())
                .unwrap_or_else(|| vec![f64::NAN; GRID_POINTS])
        })
        .collect();
    let mut band = PredictiveBand {
        title: format!(
            "posterior predictive of {} against {} ({}, {n_used} draws)",
            regression.y_name, regression.x_name, draws.method
        ),
        band_label: "90% predictive interval".to_string(),
        x_label: regression.x_name.clone(),
        y_label: regression.y_name.clone(),
        observed: xs.iter().copied().zip(ys.iter().copied()).collect(),
        ..PredictiveBand::default()
    };
    for (point, x) in grid.iter().enumerate() {
        let values: Vec<f64> = predictions
            .iter()
            .map(|p| p[point])
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            continue;
        }
        band.x.push(*x);
        band.mean
            .push(values.iter().sum::<f64>() / values.len() as f64);
        band.lower.push(quantile(&values, 0.05));
        band.upper.push(quantile(&values, 0.95));
    }
    Ok(Band::Drawn(band))
}

/// Where one free (sample or param) site of a model sits among a run's columns.
pub struct Located {
    /// The site's name.
    pub name: String,
    /// Its shape in the model.
    pub shape: Vec<usize>,
    /// The indices of its elements' columns, row-major.
    pub columns: Vec<usize>,
}

/// Finds every free site of `model` among the draws' columns; the reason in words when one is
/// missing or has another number of elements.
pub fn locate_sites(model: &Model, draws: &RunDraws) -> Result<Vec<Located>, String> {
    let mut located = Vec::new();
    for info in model.output_sites() {
        if !matches!(info.kind, SiteKind::Sample | SiteKind::Param) {
            continue;
        }
        let columns: Vec<usize> = (0..draws.columns.len())
            .filter(|&i| draws.columns[i].site == info.name)
            .collect();
        let expected: usize = info.shape.iter().product();
        if columns.len() != expected {
            return Err(format!(
                "site `{}` has {expected} elements in the model but {} in the draws",
                info.name,
                columns.len()
            ));
        }
        located.push(Located {
            name: info.name.clone(),
            shape: info.shape.clone(),
            columns,
        });
    }
    Ok(located)
}

/// Runs the model's posterior predictive once per draw, for at most `max_draws` draws spread
/// evenly over the run: the free sites are fixed at the draw's values and every observed site is
/// drawn from its likelihood. Draw k uses the random stream (seed, k).
pub fn predictive_runs(
    model: &Model,
    located: &[Located],
    draws: &RunDraws,
    max_draws: usize,
    seed: u64,
) -> Result<Vec<Vec<(String, Tensor)>>, Failure> {
    let rows: Vec<&[f64]> = draws.rows().collect();
    let n_used = rows.len().min(max_draws);
    let runs: Vec<Result<Vec<(String, Tensor)>, Failure>> = (0..n_used)
        .into_par_iter()
        .map(|k| {
            let row = rows[k * rows.len() / n_used];
            let mut values = HashMap::new();
            for site in located {
                let data = site.columns.iter().map(|&c| row[c]).collect();
                let tensor = Tensor::from_shape(&site.shape, data)
                    .map_err(|e| Failure::run("E0913", format!("site `{}`: {e}", site.name)))?;
                values.insert(site.name.clone(), tensor);
            }
            let mut rng = stream_rng(seed, k as u64);
            model
                .predictive_draw(&values, &mut rng)
                .map_err(|e| Failure::model(vec![e.to_diagnostic()]))
        })
        .collect();
    runs.into_iter().collect()
}
