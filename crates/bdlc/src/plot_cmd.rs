//! The figures of a run and `bdlc plot DIR [--kind KIND]`: traces, densities, histograms, rank
//! plots and pair plots of the draws, the NUTS energy plot, the SVI loss curve, the
//! posterior-predictive band of a one-dimensional regression, and the reliability diagram of a
//! classifier.
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

/// How many quantities a pair plot shows at most.
const PAIR_QUANTITIES: usize = 6;
/// How many bins a reliability diagram has unless `--bins` says otherwise.
const RELIABILITY_BINS: usize = 10;

/// A kind of figure, as `bdlc plot --kind` and the REPL's `:plot` name it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotKind {
    /// The draws of each quantity against the iteration, one line per chain.
    Trace,
    /// A kernel density estimate per quantity, one curve per chain.
    Density,
    /// A histogram per quantity (all chains pooled) with a kernel density estimate.
    Hist,
    /// Scatter plots of every two quantities, histograms on the diagonal, divergences marked.
    Pair,
    /// Rank histograms per chain (Vehtari et al. 2021).
    Rank,
    /// The NUTS energy plot: marginal energy against energy transitions, with E-BFMI.
    Energy,
    /// The optimisation's loss on a logarithmic axis with a running median.
    Loss,
    /// The posterior-predictive band over the data of a one-dimensional regression.
    Band,
    /// The reliability diagram of a classifier, from predictive draws and the observed classes.
    Reliability,
}

impl PlotKind {
    /// Every kind, in the order `bdlc plot` draws them.
    pub const ALL: [PlotKind; 9] = [
        PlotKind::Trace,
        PlotKind::Density,
        PlotKind::Hist,
        PlotKind::Pair,
        PlotKind::Rank,
        PlotKind::Energy,
        PlotKind::Loss,
        PlotKind::Band,
        PlotKind::Reliability,
    ];

    /// The kind's name as `--kind` spells it.
    pub fn name(self) -> &'static str {
        match self {
            PlotKind::Trace => "trace",
            PlotKind::Density => "density",
            PlotKind::Hist => "hist",
            PlotKind::Pair => "pair",
            PlotKind::Rank => "rank",
            PlotKind::Energy => "energy",
            PlotKind::Loss => "loss",
            PlotKind::Band => "band",
            PlotKind::Reliability => "reliability",
        }
    }

    /// The kind named `name` (also the REPL's older names `densities` and `predictive`).
    pub fn parse(name: &str) -> Option<PlotKind> {
        match name {
            "densities" => Some(PlotKind::Density),
            "predictive" => Some(PlotKind::Band),
            "histogram" => Some(PlotKind::Hist),
            _ => PlotKind::ALL.into_iter().find(|kind| kind.name() == name),
        }
    }

    /// The file a figure of this kind is written to.
    pub fn file_name(self) -> &'static str {
        match self {
            PlotKind::Trace => "traces.svg",
            PlotKind::Density => "densities.svg",
            PlotKind::Hist => "histograms.svg",
            PlotKind::Pair => "pairs.svg",
            PlotKind::Rank => "ranks.svg",
            PlotKind::Energy => "energy.svg",
            PlotKind::Loss => "loss.svg",
            PlotKind::Band => "predictive.svg",
            PlotKind::Reliability => "reliability.svg",
        }
    }
}

/// The file format of a figure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FigureFormat {
    /// Scalable vector graphics, drawn by plotters.
    #[default]
    Svg,
    /// A bitmap, rendered from the SVG by resvg at twice the SVG's size.
    Png,
}

/// Writes a figure to `path` (whose extension is replaced by the format's): the SVG as it is,
/// or rendered to PNG. Returns the path written.
pub fn save_figure(path: &Path, svg: &str, format: FigureFormat) -> Result<PathBuf, Failure> {
    match format {
        FigureFormat::Svg => {
            let path = path.with_extension("svg");
            write_file(&path, svg)?;
            Ok(path)
        }
        FigureFormat::Png => {
            let path = path.with_extension("png");
            let png = render_png(svg)?;
            std::fs::write(&path, png).map_err(|e| crate::output::io_failure(&path, &e))?;
            Ok(path)
        }
    }
}

/// Renders an SVG document to PNG bytes at twice its size, with the machine's fonts (the generic
/// `sans-serif` mapped to an installed sans-serif face).
pub fn render_png(svg: &str) -> Result<Vec<u8>, Failure> {
    use resvg::tiny_skia::{Pixmap, Transform};
    use resvg::usvg::{Options, Tree};
    let mut options = Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    let family = fonts
        .faces()
        .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
        .find(|name| name.contains("Sans") && !name.contains("Mono"));
    if let Some(family) = family {
        fonts.set_sans_serif_family(family);
    }
    let failed = |reason: String| {
        Failure::run(
            "E0946",
            format!("cannot render the figure as PNG: {reason}"),
        )
    };
    let tree = Tree::from_str(svg, &options).map_err(|e| failed(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = Pixmap::new(2 * size.width(), 2 * size.height())
        .ok_or_else(|| failed("the figure has no area".to_string()))?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, Transform::from_scale(2.0, 2.0), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| failed(e.to_string()))
}

/// What a figure is drawn from besides the draws: the model (for the band and the reliability
/// diagram), one site or all, the number of bins, and the seed of predictive draws.
#[derive(Clone, Copy, Debug, Default)]
pub struct FigureOptions<'a> {
    /// The model, when it loads.
    pub model: Option<&'a Model>,
    /// Only this site's quantities (trace, density, hist, pair, rank).
    pub site: Option<&'a str>,
    /// The number of histogram, rank or reliability bins (a default per kind otherwise).
    pub bins: Option<usize>,
    /// The seed of the predictive draws.
    pub seed: u64,
}

/// `bdlc plot DIR [--kind KIND] [--site NAME] [--bins N] [--model MODEL] [--data FILE]...
/// [--out DIR] [--seed S] [--quiet]`.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// The directory of a finished run (`bdlc infer --out DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Draw only this kind of figure (default: every kind that applies to the run).
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<PlotKind>,
    /// Show only this site's quantities (trace, density, hist, pair and rank figures).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// The file format of the figures: SVG (text stays text) or PNG (rendered with the
    /// machine's fonts).
    #[arg(long, value_enum, default_value = "svg", value_name = "FORMAT")]
    pub format: FigureFormat,
    /// The number of bins of histograms, rank plots and reliability diagrams.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=500))]
    pub bins: Option<u16>,
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
    /// The Hamiltonian at each draw per chain (`energy__`), for NUTS and HMC runs.
    pub energies: Vec<Vec<f64>>,
    /// Whether each draw's transition diverged, per chain (`divergent__`), where known.
    pub divergent: Vec<Vec<bool>>,
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
            energies: result.energies.clone(),
            divergent: result.divergent.clone(),
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
        let stat = |name: &str| table.header.iter().position(|h| h == name);
        let (energy_column, divergent_column) = (stat("energy__"), stat("divergent__"));
        let mut chains = Vec::new();
        let mut energies = Vec::new();
        let mut divergent = Vec::new();
        let mut rows = table.rows.iter();
        for &length in &table.chain_lengths {
            let mut chain = Vec::with_capacity(length * kept.len());
            let mut chain_energies = Vec::new();
            let mut chain_divergent = Vec::new();
            for row in rows.by_ref().take(length) {
                chain.extend(kept.iter().map(|&i| row[i]));
                if let Some(column) = energy_column {
                    chain_energies.push(row[column]);
                }
                if let Some(column) = divergent_column {
                    chain_divergent.push(row[column] != 0.0);
                }
            }
            chains.push(chain);
            if energy_column.is_some() {
                energies.push(chain_energies);
            }
            if divergent_column.is_some() {
                divergent.push(chain_divergent);
            }
        }
        // A part of a split run starts at a later chain (`chain-5.csv`).
        let mcmc = crate::predict::draw_files(dir)?
            .first()
            .and_then(|path| path.file_name())
            .is_some_and(|name| name.to_string_lossy().starts_with("chain-"));
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
            energies,
            divergent,
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

/// Writes the run's figures into `out` (called by `bdlc infer --plot`). The sampler's energies
/// and divergences come from the chain files just written.
pub fn plot_run(model: &Model, result: &RunResult, out: &Path) -> Result<(), Failure> {
    let draws = RunDraws::from_result(result);
    let options = FigureOptions {
        model: Some(model),
        ..FigureOptions::default()
    };
    write_figures(&draws, &PlotKind::ALL, out, &options, FigureFormat::Svg).map(|_| ())
}

/// Writes the figures of `kinds` that apply to the run into `out` and returns the paths
/// written; a kind that does not apply is left out.
pub fn write_figures(
    draws: &RunDraws,
    kinds: &[PlotKind],
    out: &Path,
    options: &FigureOptions,
    format: FigureFormat,
) -> Result<Vec<PathBuf>, Failure> {
    let mut written = Vec::new();
    for &kind in kinds {
        if let Drawn::Figure(svg) = draw_figure(kind, draws, options)? {
            written.push(save_figure(&out.join(kind.file_name()), &svg, format)?);
        }
    }
    Ok(written)
}

/// A figure, or why it does not apply to the run.
pub enum Drawn {
    /// The SVG document.
    Figure(String),
    /// The figure does not apply; the reason in words.
    NotApplicable(String),
}

/// The site's name with its method, for titles: `the draws of eight_schools (nuts, 4 chains)`.
fn run_words(draws: &RunDraws) -> String {
    let chains = draws.chains.len();
    if draws.mcmc {
        format!(
            "{}, {chains} {}, {} draws",
            draws.method,
            if chains == 1 { "chain" } else { "chains" },
            draws.n_draws()
        )
    } else {
        format!("{}, {} draws", draws.method, draws.n_draws())
    }
}

/// Draws one figure of the run, or says why it does not apply.
pub fn draw_figure(
    kind: PlotKind,
    draws: &RunDraws,
    options: &FigureOptions,
) -> Result<Drawn, Failure> {
    let words = run_words(draws);
    let which = options
        .site
        .map_or_else(|| "every site".to_string(), |site| format!("`{site}`"));
    let panels = draws.panels(options.site);
    let needs_draws = matches!(
        kind,
        PlotKind::Trace | PlotKind::Density | PlotKind::Hist | PlotKind::Pair | PlotKind::Rank
    );
    if needs_draws && (panels.is_empty() || draws.n_draws() == 0) {
        return Ok(Drawn::NotApplicable("the run holds no draws".to_string()));
    }
    let bins = options.bins;
    let svg = match kind {
        PlotKind::Trace => {
            if !draws.mcmc {
                return Ok(Drawn::NotApplicable(format!(
                    "trace plots need Markov chains; this run is {}",
                    draws.method
                )));
            }
            plot::traces(&format!("traces of {which} ({words})"), &panels)
        }
        PlotKind::Density => plot::densities(
            &format!("posterior densities of {which} ({words})"),
            &panels,
        ),
        PlotKind::Hist => plot::histograms(
            &format!("posterior histograms of {which} ({words})"),
            &panels,
            bins,
        ),
        PlotKind::Rank => {
            if !draws.mcmc || draws.chains.len() < 2 {
                return Ok(Drawn::NotApplicable(format!(
                    "rank plots compare chains; this run ({}) has {} (run NUTS with `--chains 4`)",
                    draws.method,
                    if draws.chains.len() == 1 {
                        "one chain".to_string()
                    } else {
                        format!("{} chains", draws.chains.len())
                    }
                )));
            }
            plot::rank_plots(&format!("rank plots of {which} ({words})"), &panels, bins)
        }
        PlotKind::Pair => {
            let chosen = pair_panels(draws, options.site);
            if chosen.len() < 2 {
                return Ok(Drawn::NotApplicable(format!(
                    "a pair plot needs two scalar quantities; {which} has {}",
                    chosen.len()
                )));
            }
            let divergent: Vec<bool> = draws.divergent.iter().flatten().copied().collect();
            plot::pair_plot(
                &plot::PairPlot {
                    title: format!("pair plot of {which} ({words})"),
                    panels: chosen,
                    divergent: if divergent.len() == draws.n_draws() {
                        divergent
                    } else {
                        Vec::new()
                    },
                },
                bins,
            )
        }
        PlotKind::Energy => {
            if draws.energies.iter().all(Vec::is_empty) {
                return Ok(Drawn::NotApplicable(format!(
                    "the energy plot needs the `energy__` column of NUTS or HMC chain files; this run is {}",
                    draws.method
                )));
            }
            plot::energy_plot(
                &plot::EnergyPlot {
                    title: format!("NUTS energy ({words})"),
                    chains: draws.energies.clone(),
                },
                bins,
            )
        }
        PlotKind::Loss => {
            if draws.losses.is_empty() {
                return Ok(Drawn::NotApplicable(format!(
                    "only SVI, MAP and Laplace runs have a loss curve; this run is {}",
                    draws.method
                )));
            }
            plot::loss_curve(
                &format!(
                    "{} loss (negative ELBO), {} steps",
                    draws.method,
                    draws.losses.len()
                ),
                &draws.losses,
            )
        }
        PlotKind::Band => {
            let Some(model) = options.model else {
                return Ok(Drawn::NotApplicable(
                    "the predictive band needs the model (`--model`)".to_string(),
                ));
            };
            match predictive_band(model, draws, options.seed)? {
                Band::Drawn(band) => plot::predictive_band(&band),
                Band::NotApplicable(reason) => return Ok(Drawn::NotApplicable(reason)),
            }
        }
        PlotKind::Reliability => {
            let Some(model) = options.model else {
                return Ok(Drawn::NotApplicable(
                    "the reliability diagram needs the model (`--model`)".to_string(),
                ));
            };
            match reliability(model, draws, options)? {
                Ok(diagram) => plot::reliability_diagram(&diagram),
                Err(reason) => return Ok(Drawn::NotApplicable(reason)),
            }
        }
    };
    Ok(Drawn::Figure(figure(svg)?))
}

/// The quantities of a pair plot: with a site, its first elements; otherwise the first element
/// of each site (or the first elements of the only site), at most [`PAIR_QUANTITIES`].
fn pair_panels(draws: &RunDraws, site: Option<&str>) -> Vec<Panel> {
    let sites = draws.sites();
    if site.is_some() || sites.len() < 2 {
        return draws
            .panels(site)
            .into_iter()
            .take(PAIR_QUANTITIES)
            .collect();
    }
    sites
        .iter()
        .filter_map(|name| draws.panels(Some(name)).into_iter().next())
        .take(PAIR_QUANTITIES)
        .collect()
}

/// The reliability diagram of the model's first discrete observed site: each posterior draw's
/// predictive draw of the site on the model's data is compared with the observed classes. For a
/// binary site the diagram shows the predicted probability of 1; otherwise the probability of the
/// most probable class against how often it is the observed class.
fn reliability(
    model: &Model,
    draws: &RunDraws,
    options: &FigureOptions,
) -> Result<Result<plot::Reliability, String>, Failure> {
    let Some(site) = model
        .observed_sites()
        .into_iter()
        .find(|site| site.discrete)
    else {
        return Ok(Err(
            "the reliability diagram needs a classifier: a discrete observed site (Bernoulli, Categorical)"
                .to_string(),
        ));
    };
    let site_name = site.name.clone();
    let located = match locate_sites(model, draws) {
        Ok(located) => located,
        Err(reason) => return Ok(Err(format!("the run does not fit the model: {reason}"))),
    };
    if draws.n_draws() == 0 {
        return Ok(Err("the run holds no draws".to_string()));
    }
    let runs = predictive_runs(model, &located, draws, BAND_DRAWS, options.seed)?;
    let observed = observed_values(model, options.seed)?;
    let Some((_, targets)) = observed.into_iter().find(|(name, _)| *name == site_name) else {
        return Ok(Err(format!("site `{site_name}` has no observed values")));
    };
    let predictions: Vec<Vec<f64>> = runs
        .into_iter()
        .filter_map(|run| {
            run.into_iter()
                .find(|(name, _)| *name == site_name)
                .map(|(_, tensor)| tensor.into_data())
        })
        .collect();
    let mut classes: Vec<f64> = predictions
        .iter()
        .flatten()
        .chain(&targets)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    classes.sort_by(f64::total_cmp);
    classes.dedup();
    let binary = classes.iter().all(|&c| c == 0.0 || c == 1.0);
    let mut pairs = Vec::with_capacity(targets.len());
    for (element, &target) in targets.iter().enumerate() {
        let values: Vec<f64> = predictions
            .iter()
            .filter_map(|p| p.get(element).copied())
            .collect();
        if values.is_empty() || !target.is_finite() {
            continue;
        }
        let share = |class: f64| {
            values.iter().filter(|&&v| v == class).count() as f64 / values.len() as f64
        };
        if binary {
            pairs.push((share(1.0), target == 1.0));
        } else {
            let (best, probability) = classes.iter().map(|&class| (class, share(class))).fold(
                (f64::NAN, -1.0),
                |best, candidate| {
                    if candidate.1 > best.1 {
                        candidate
                    } else {
                        best
                    }
                },
            );
            pairs.push((probability, target == best));
        }
    }
    let mut diagram =
        plot::Reliability::from_predictions(&pairs, options.bins.unwrap_or(RELIABILITY_BINS));
    diagram.title = format!(
        "reliability of {site_name} on {} observations ({}, {} predictive draws)",
        pairs.len(),
        draws.method,
        predictions.len()
    );
    if binary {
        diagram.x_label = format!("predicted probability that {site_name} = 1");
        diagram.y_label = format!("observed frequency of {site_name} = 1");
    } else {
        diagram.x_label =
            format!("predicted probability of the most probable class of {site_name}");
        diagram.y_label = "observed frequency of that class (accuracy)".to_string();
    }
    Ok(Ok(diagram))
}

/// The observed values of the model's `observe` sites, from one run on its data.
pub fn observed_values(model: &Model, seed: u64) -> Result<Vec<(String, Vec<f64>)>, Failure> {
    use bdl_runtime::handlers::{SeedRef, TraceMessages};
    use bdl_runtime::interpret::{Interpreter, RunOptions};
    use bdl_runtime::trace::Trace;
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut tape = bdl_autodiff::Tape::new();
    let trace = Rc::new(RefCell::new(Trace::default()));
    let mut rng = stream_rng(seed, u64::MAX - 3);
    {
        let mut interpreter = Interpreter::new(
            &model.program,
            &model.data,
            &mut tape,
            RunOptions {
                full_plates: true,
                ..RunOptions::default()
            },
        );
        interpreter.push(SeedRef { rng: &mut rng });
        interpreter.push(TraceMessages {
            trace: Rc::clone(&trace),
        });
        interpreter
            .run_model()
            .map_err(|error| Failure::model(vec![error.to_diagnostic()]))?;
    }
    let trace = trace.borrow();
    Ok(trace
        .sites
        .iter()
        .filter(|site| site.observed)
        .map(|site| {
            (
                site.name.clone(),
                tape.value(site.value.var).data().to_vec(),
            )
        })
        .collect())
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
    if let Some(site) = &args.site {
        check_site(&draws, site)?;
    }
    let out = args.out.clone().unwrap_or_else(|| args.dir.clone());
    std::fs::create_dir_all(&out).map_err(|e| crate::output::io_failure(&out, &e))?;
    let needs_model = matches!(
        args.kind,
        None | Some(PlotKind::Band | PlotKind::Reliability)
    );
    let model = match &args.model {
        Some(path) => Some(session.load(path, &args.data, Completeness::All, args.seed)?),
        None if needs_model => model_of_run(args, session),
        None => None,
    };
    let options = FigureOptions {
        model: model.as_ref(),
        site: args.site.as_deref(),
        bins: args.bins.map(usize::from),
        seed: args.seed,
    };
    let written = match args.kind {
        Some(kind) => match draw_figure(kind, &draws, &options)? {
            Drawn::Figure(svg) => {
                vec![save_figure(&out.join(kind.file_name()), &svg, args.format)?]
            }
            Drawn::NotApplicable(reason) => {
                return Err(Failure::run(
                    "E0944",
                    format!(
                        "no {} figure for `{}`: {reason}",
                        kind.name(),
                        args.dir.display()
                    ),
                ))
            }
        },
        None => write_figures(&draws, &PlotKind::ALL, &out, &options, args.format)?,
    };
    if !args.quiet {
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        eprintln!("wrote {}", names.join(", "));
    }
    Ok(())
}

/// Fails with E0945 when the run has no draws of `site`, listing the sites it has.
pub fn check_site(draws: &RunDraws, site: &str) -> Result<(), Failure> {
    if draws.sites().contains(&site) {
        return Ok(());
    }
    Err(Failure::usage(
        "E0945",
        format!("the run has no draws of a site named `{site}`"),
        Some(format!(
            "its sites are {}",
            draws
                .sites()
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    ))
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
