//! The Python package's engine in plain Rust, testable with `cargo test`: compile a model from
//! its source, fill its data block from in-memory arrays or from the files it names, run NUTS,
//! HMC or a deep ensemble, and hand back the draws site by site with the sampler's statistics.
//!
//! Nothing here knows Python. The pyo3 layer (`python.rs`, behind the `python` feature) turns
//! Python objects into these types and the results into NumPy arrays. Chains and members take
//! their random streams from `seed` and their index in the whole run, so `chain_offset` splits a
//! run over processes (Ray tasks) without changing a draw: chains 5–8 run alone equal chains
//! 5–8 of an eight-chain run, bit for bit.

use bdl_diagnostics::{render, Diagnostic, SourceMap};
use bdl_infer::ensemble::{self, EnsembleSettings};
use bdl_infer::mcmc::{self, Algorithm, HmcLength, McmcSettings, MetricKind};
use bdl_infer::rng::{position_key, stream_rng};
use bdl_infer::vi::{OptimizerKind, OptimizerSettings, SviSettings};
use bdl_ir::ir::Program;
use bdl_runtime::data::{self, Completeness, DataFile, DataSet};
use bdl_runtime::handlers::SiteKind;
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use bdl_runtime::value::TensorValue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Why a call failed: the rendered diagnostics (with source excerpts) and their codes.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The error codes, in order (`E0101`, …).
    pub codes: Vec<String>,
    /// The diagnostics rendered as `bdlc` prints them, without colour.
    pub message: String,
}

impl Failure {
    /// A failure without a source location (an option, a method), rendered as the others are.
    pub fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure::rendered(
            &[Diagnostic::error(code, message.into())],
            &SourceMap::new(),
        )
    }

    pub(crate) fn rendered(diagnostics: &[Diagnostic], sources: &SourceMap) -> Failure {
        Failure {
            codes: diagnostics.iter().map(|d| d.code.to_string()).collect(),
            message: diagnostics
                .iter()
                .map(|d| render(d, sources, false))
                .collect::<String>(),
        }
    }
}

/// The data types an array may have when it crosses from Python: NumPy's `.npy` descriptors.
pub const ARRAY_DTYPES: [&str; 3] = ["<f8", "<i8", "|b1"];

/// The `.npy` framing of an array of `dtype` (one of [`ARRAY_DTYPES`]) and `shape`, in C order:
/// the returned vector holds the header and has room for the `payload` bytes that follow it, so
/// the caller appends the array's buffer with one copy and the data loader reads it as it reads
/// a `.npy` file (the same validation, the same messages).
pub fn npy_frame(dtype: &str, shape: &[usize], payload: usize) -> Vec<u8> {
    let dims = match shape {
        [] => String::new(),
        [one] => format!("{one},"),
        many => many
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header =
        format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({dims}), }}").into_bytes();
    // The magic (6 bytes), the version (2) and the header's length (2) precede the header, which
    // is padded with spaces and ends with a newline so that the data start on a 64-byte boundary.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + payload);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes
}

/// How far a run has come, shared between the run's threads and the caller that shows it: the
/// iterations done and to do, summed over chains or members.
#[derive(Debug, Default)]
pub struct RunProgress {
    /// Iterations done so far.
    pub done: AtomicUsize,
    /// Iterations of the whole run (known once the first unit reports).
    pub total: AtomicUsize,
}

impl RunProgress {
    /// Counts one iteration of a run of `units` units of `per_unit` iterations each.
    fn record(&self, units: usize, per_unit: usize) {
        self.total.store(units * per_unit, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The iterations done and the total.
    pub fn snapshot(&self) -> (usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// A model compiled from its source.
pub struct CompiledModel {
    /// The name shown in messages (the path, or `<string>`).
    pub name: String,
    /// The source text.
    pub source: String,
    /// Where `data from` paths are resolved (the model file's folder).
    pub directory: PathBuf,
    /// The lowered program.
    pub program: Program,
    /// The source map holding the model's text, for rendering.
    pub sources: SourceMap,
    /// The warnings of compilation, rendered.
    pub warnings: String,
}

impl CompiledModel {
    /// Compiles `source`, named `name`, whose `data from` paths are relative to `directory`.
    pub fn compile(name: &str, source: &str, directory: &Path) -> Result<CompiledModel, Failure> {
        let mut sources = SourceMap::new();
        match pipeline::compile(&mut sources, name, source.as_bytes()) {
            Ok(compiled) => {
                let warnings = compiled
                    .warnings
                    .iter()
                    .map(|d| render(d, &sources, false))
                    .collect();
                Ok(CompiledModel {
                    name: name.to_string(),
                    source: source.to_string(),
                    directory: directory.to_path_buf(),
                    program: compiled.program,
                    sources,
                    warnings,
                })
            }
            Err(diagnostics) => Err(Failure::rendered(&diagnostics, &sources)),
        }
    }

    /// The data declarations' names, in order.
    pub fn data_names(&self) -> Vec<String> {
        self.program.data.iter().map(|d| d.name.clone()).collect()
    }

    /// The validated data block: `arrays` (NumPy `.npy` bytes by name) when given, else the
    /// files the model names. `predicting` lets declarations that are only observed be absent.
    // Like `bdlc`, this crate is a front end: reading the data files a model names is its job.
    #[allow(clippy::disallowed_methods)]
    fn load_data(
        &self,
        arrays: &[(String, Vec<u8>)],
        predicting: bool,
    ) -> Result<DataSet, Failure> {
        let mut sources = self.sources.clone();
        let files: Vec<DataFile> = if arrays.is_empty() {
            let mut files = Vec::new();
            for reference in &self.program.data_files {
                let path = self.directory.join(&reference.path);
                let bytes = std::fs::read(&path).map_err(|error| {
                    Failure::new(
                        "E0902",
                        format!("cannot read data file `{}`: {error}", path.display()),
                    )
                })?;
                let name = path.display().to_string();
                let file = sources.add(name.clone(), String::from_utf8_lossy(&bytes).into_owned());
                files.push(DataFile { name, bytes, file });
            }
            files
        } else {
            arrays
                .iter()
                .map(|(name, bytes)| {
                    let name = format!("{name}.npy");
                    let file = sources.add(name.clone(), String::new());
                    DataFile {
                        name,
                        bytes: bytes.clone(),
                        file,
                    }
                })
                .collect()
        };
        let completeness = if predicting {
            Completeness::AllowMissingObserved
        } else {
            Completeness::All
        };
        let observed = pipeline::observed_only(&self.program);
        data::load(&self.program, &files, completeness, &observed)
            .map_err(|diagnostics| Failure::rendered(&diagnostics, &sources))
    }

    /// Builds the runnable model from validated `data`.
    fn model(&self, data: DataSet, seed: u64) -> Result<Model, Failure> {
        Model::new(self.program.clone(), data, seed)
            .map_err(|error| Failure::rendered(&[error.to_diagnostic()], &self.sources))
    }

    /// Builds the runnable model: `arrays` (NumPy `.npy` bytes by name) fill the data block
    /// when given, else the files the model names are read. `predicting` lets declarations that
    /// are only observed be absent.
    pub fn instantiate(
        &self,
        arrays: &[(String, Vec<u8>)],
        seed: u64,
        predicting: bool,
    ) -> Result<Model, Failure> {
        self.model(self.load_data(arrays, predicting)?, seed)
    }
}

/// The inference methods the package runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// The No-U-Turn Sampler.
    Nuts,
    /// Static HMC.
    Hmc,
    /// A deep ensemble of MAP fits.
    Ensemble,
}

impl MethodKind {
    /// The method named `name`.
    pub fn parse(name: &str) -> Result<MethodKind, Failure> {
        match name {
            "nuts" => Ok(MethodKind::Nuts),
            "hmc" => Ok(MethodKind::Hmc),
            "ensemble" => Ok(MethodKind::Ensemble),
            other => Err(Failure::new(
                "E0936",
                format!("unknown or unsupported method `{other}`; the Python package runs nuts, hmc and ensemble"),
            )),
        }
    }
}

/// The options of a run, with `bdlc infer`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The method.
    pub method: MethodKind,
    /// Chains (NUTS, HMC) or members (ensemble) run here.
    pub units: usize,
    /// The index of the first chain or member in the whole run.
    pub offset: usize,
    /// Warm-up iterations per chain.
    pub warmup: usize,
    /// Kept draws per chain.
    pub samples: usize,
    /// The seed.
    pub seed: u64,
    /// NUTS's target acceptance rate.
    pub target_accept: f64,
    /// NUTS's maximum tree depth.
    pub max_depth: usize,
    /// Leapfrog steps (HMC) or optimisation steps per member (ensemble).
    pub steps: Option<usize>,
    /// The ensemble's learning rate.
    pub lr: f64,
    /// A dense metric instead of a diagonal one.
    pub dense: bool,
    /// Run the units in parallel with rayon (the draws are the same either way).
    pub parallel: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            method: MethodKind::Nuts,
            units: 4,
            offset: 0,
            warmup: 1000,
            samples: 1000,
            seed: 0,
            target_accept: 0.8,
            max_depth: 10,
            steps: None,
            lr: 0.01,
            dense: false,
            parallel: true,
        }
    }
}

impl Options {
    /// Sets option `key` from a number; the message names the key and what it accepts.
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), Failure> {
        let count = |minimum: usize| -> Result<usize, Failure> {
            if value.fract() != 0.0 || value < minimum as f64 || !value.is_finite() {
                return Err(Failure::new(
                    "E0937",
                    format!(
                        "option `{key}` must be a whole number of at least {minimum}, not {value}"
                    ),
                ));
            }
            Ok(value as usize)
        };
        match key {
            "chains" | "members" => self.units = count(1)?,
            "chain_offset" => self.offset = count(0)?,
            "warmup" => self.warmup = count(0)?,
            "samples" => self.samples = count(1)?,
            "seed" => self.seed = count(0)? as u64,
            "max_depth" => self.max_depth = count(1)?,
            "steps" => self.steps = Some(count(1)?),
            "target_accept" if value > 0.0 && value < 1.0 => self.target_accept = value,
            "lr" if value > 0.0 && value.is_finite() => self.lr = value,
            "target_accept" | "lr" => {
                return Err(Failure::new(
                    "E0937",
                    format!("option `{key}` is out of range: {value}"),
                ))
            }
            _ => {
                return Err(Failure::new(
                    "E0937",
                    format!(
                        "unknown option `{key}`; the options are chains, members, chain_offset, \
                         warmup, samples, seed, target_accept, max_depth, steps, lr, metric"
                    ),
                ))
            }
        }
        Ok(())
    }

    fn mcmc_settings(&self) -> McmcSettings {
        McmcSettings {
            chains: self.units,
            first_chain: self.offset,
            warmup: self.warmup,
            samples: self.samples,
            seed: self.seed,
            algorithm: match self.method {
                MethodKind::Hmc => Algorithm::Hmc(HmcLength::Steps(self.steps.unwrap_or(16))),
                _ => Algorithm::Nuts,
            },
            max_depth: self.max_depth,
            target_accept: self.target_accept,
            metric: if self.dense {
                MetricKind::Dense
            } else {
                MetricKind::Diag
            },
            parallel: self.parallel,
            ..McmcSettings::default()
        }
    }

    fn ensemble_settings(&self) -> EnsembleSettings {
        let mut optimizer = OptimizerSettings::default();
        let mut kind = OptimizerKind::Adam(Default::default());
        kind.set_learning_rate(self.lr);
        optimizer.kind = kind;
        EnsembleSettings {
            members: self.units,
            first_member: self.offset,
            seed: self.seed,
            map: SviSettings {
                steps: self.steps.unwrap_or(1000),
                particles: 1,
                seed: self.seed,
                optimizer,
                ..SviSettings::default()
            },
            parallel: self.parallel,
            ..EnsembleSettings::default()
        }
    }
}

/// One output site's draws: `units × draws` values of its shape, in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteDraws {
    /// The site's name.
    pub name: String,
    /// The shape of one value.
    pub shape: Vec<usize>,
    /// Every value, unit after unit, draw after draw.
    pub values: Vec<f64>,
}

/// A run's draws.
#[derive(Clone, Debug, PartialEq)]
pub struct Draws {
    /// Chains (or members) held.
    pub units: usize,
    /// Draws per chain (1 per ensemble member).
    pub draws: usize,
    /// The output sites.
    pub sites: Vec<SiteDraws>,
    /// The sampler's statistics by CmdStan's column name without `__` (`lp`, `divergent`, …),
    /// `units × draws` each; empty for ensembles.
    pub stats: Vec<(String, Vec<f64>)>,
    /// The pointwise log-likelihood of each observed site, `units × draws` values of the site's
    /// batch shape each (elements masked out are NaN), for ArviZ's `log_likelihood` group.
    pub log_likelihood: Vec<SiteDraws>,
    /// The data declarations' values (shape, values) by name, for the observed-data group.
    pub data: Vec<(String, Vec<usize>, Vec<f64>)>,
    /// The names of the observed sites.
    pub observed_sites: Vec<String>,
    /// Whether the run was stopped early (Ctrl-C).
    pub interrupted: bool,
}

/// Runs `options.method` on `model`; `progress` counts its iterations and `stop` ends it early,
/// keeping what is done.
pub fn infer(
    compiled: &CompiledModel,
    arrays: &[(String, Vec<u8>)],
    options: &Options,
    progress: &RunProgress,
    stop: &AtomicBool,
) -> Result<Draws, Failure> {
    let model = compiled.instantiate(arrays, options.seed, false)?;
    infer_model(compiled, &model, options, progress, stop)
}

/// Runs `options.method` on the instantiated `model` (see [`infer`]).
fn infer_model(
    compiled: &CompiledModel,
    model: &Model,
    options: &Options,
    progress: &RunProgress,
    stop: &AtomicBool,
) -> Result<Draws, Failure> {
    let sites = model.output_sites();
    let mut draws = Draws {
        units: options.units,
        draws: 0,
        sites: sites
            .iter()
            .map(|s| SiteDraws {
                name: s.name.clone(),
                shape: s.shape.clone(),
                values: Vec::new(),
            })
            .collect(),
        stats: Vec::new(),
        log_likelihood: Vec::new(),
        data: data_values(model),
        observed_sites: model
            .observed_sites()
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        interrupted: false,
    };
    let failure = |message: String| Failure::new("E0938", message);
    let mut positions: Vec<Vec<f64>> = Vec::new();
    match options.method {
        MethodKind::Nuts | MethodKind::Hmc => {
            if model.layout.latent_dim() == 0 {
                return Err(failure("the model has no latent sites to sample".into()));
            }
            let settings = options.mcmc_settings();
            let count = |p: &bdl_infer::driver::Progress| progress.record(settings.chains, p.total);
            let result = mcmc::sample(&settings, |_| model.log_density(), &count, stop)
                .map_err(|e| failure(e.to_string()))?;
            let n = result.chains.iter().map(|c| c.n_draws()).min().unwrap_or(0);
            draws.draws = n;
            draws.interrupted = result.interrupted;
            let names = mcmc::SampleStats::COLUMN_NAMES;
            let mut stats: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
            let latent_dim = model.layout.latent_dim();
            for chain in &result.chains {
                for i in 0..n {
                    let mut full = model.layout.initial_position();
                    full[..latent_dim].copy_from_slice(chain.draw(i));
                    positions.push(full);
                    for (column, value) in stats.iter_mut().zip(chain.stats[i].values()) {
                        column.push(value);
                    }
                }
            }
            draws.stats = names
                .iter()
                .map(|n| n.trim_end_matches("__").to_string())
                .zip(stats)
                .collect();
        }
        MethodKind::Ensemble => {
            let settings = options.ensemble_settings();
            let count =
                |p: &bdl_infer::driver::Progress| progress.record(settings.members, p.total);
            let result = ensemble::fit(&settings, |_| model.evaluator(), &count, stop)
                .map_err(|e| failure(e.to_string()))?;
            draws.draws = 1;
            draws.units = result.members.len();
            draws.interrupted = result.interrupted;
            positions = result.members.into_iter().map(|m| m.position).collect();
        }
    }
    // Each draw's values come from its position alone (as `bdlc infer` computes them), so they
    // do not depend on how the run was split; the stream keyed by the position gives the discrete
    // sites drawn given each draw independent random numbers.
    let mut evaluator = model.output_evaluator();
    for position in &positions {
        let values = evaluator
            .constrained(position, &mut stream_rng(position_key(position), 0))
            .map_err(|e| Failure::rendered(&[e.to_diagnostic()], &compiled.sources))?;
        for (site, out) in sites.iter().zip(draws.sites.iter_mut()) {
            match values.iter().find(|(name, _)| *name == site.name) {
                Some((_, tensor)) => out.values.extend_from_slice(tensor.data()),
                None => out
                    .values
                    .extend(std::iter::repeat_n(f64::NAN, site.shape.iter().product())),
            }
        }
        // The log-likelihood substitutes the free sites' values (sample and param sites), as
        // `bdlc infer --log-lik` does.
        let free: HashMap<String, bdl_autodiff::Tensor> = values
            .into_iter()
            .filter(|(name, _)| {
                sites.iter().any(|site| {
                    site.name == *name && matches!(site.kind, SiteKind::Sample | SiteKind::Param)
                })
            })
            .collect();
        let pointwise = model
            .pointwise_log_likelihood(&free)
            .map_err(|e| Failure::rendered(&[e.to_diagnostic()], &compiled.sources))?;
        if draws.log_likelihood.is_empty() {
            draws.log_likelihood = pointwise
                .iter()
                .map(|site| SiteDraws {
                    name: site.name.clone(),
                    shape: site.shape.clone(),
                    values: Vec::with_capacity(
                        positions.len() * site.shape.iter().product::<usize>(),
                    ),
                })
                .collect();
        }
        for (site, out) in pointwise.iter().zip(draws.log_likelihood.iter_mut()) {
            let size: usize = site.shape.iter().product();
            let start = out.values.len();
            out.values.resize(start + size, f64::NAN);
            for (&flat, &value) in site.elements.iter().zip(&site.log_lik) {
                out.values[start + flat] = value;
            }
        }
    }
    Ok(draws)
}

/// The stream of a replication's draw from the prior: far from the chains' streams (their
/// indices), so the truth and the fit never share random numbers.
const SBC_PRIOR_STREAM: u64 = u64::MAX - 17;

/// One replication of simulation-based calibration (Talts et al., 2018): the rank of the true
/// value of each latent element among the posterior draws.
#[derive(Clone, Debug, PartialEq)]
pub struct SbcReplication {
    /// The posterior draws each rank counts over (chains × samples); ranks are 0 ..= `draws`.
    pub draws: usize,
    /// Per latent sample site: its shape and the rank of each element, in C order.
    pub ranks: Vec<SiteDraws>,
    /// Divergent transitions of the fit.
    pub divergent: usize,
}

/// Replication `replication` of SBC: with seed `options.seed + replication`, draws the latent
/// sites and then the observations from the prior (stream [`SBC_PRIOR_STREAM`]), fits the
/// model to those observations with NUTS or HMC (`options`, chains from 0), and ranks each
/// true value among the draws: the number of draws below it. When the sampler is right, every
/// rank is uniform on 0 ..= draws over replications. The inputs (`arrays` or the model's
/// files) stay as given; each observed site is filled through the data declaration of its name.
pub fn sbc_replication(
    compiled: &CompiledModel,
    arrays: &[(String, Vec<u8>)],
    options: &Options,
    replication: usize,
    progress: &RunProgress,
    stop: &AtomicBool,
) -> Result<SbcReplication, Failure> {
    if options.method == MethodKind::Ensemble {
        return Err(Failure::new(
            "E0936",
            "simulation-based calibration ranks posterior draws; run it with nuts or hmc",
        ));
    }
    let seed = options.seed.wrapping_add(replication as u64);
    let inputs = compiled.load_data(arrays, true)?;
    let prior_model = compiled.model(inputs.clone(), seed)?;
    let truth = prior_model
        .prior_draw(&mut stream_rng(seed, SBC_PRIOR_STREAM))
        .map_err(|e| Failure::rendered(&[e.to_diagnostic()], &compiled.sources))?;
    let value_of = |name: &str| truth.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let mut simulated = inputs;
    for site in prior_model.observed_sites() {
        let declaration = compiled.program.data.iter().find(|d| d.name == site.name);
        let (Some(declaration), Some(value)) = (declaration, value_of(&site.name)) else {
            return Err(Failure::new(
                "E0939",
                format!(
                    "simulation-based calibration fills observed site `{}` through the data \
                     declaration of the same name, and the model has none",
                    site.name
                ),
            ));
        };
        let value = if site.discrete {
            TensorValue::int(value.clone())
        } else {
            TensorValue::real(value.clone())
        };
        simulated.values.insert(declaration.slot, value);
        simulated.missing.retain(|slot| *slot != declaration.slot);
    }
    let model = compiled.model(simulated, seed)?;
    let fit_options = Options {
        seed,
        offset: 0,
        ..options.clone()
    };
    let draws = infer_model(compiled, &model, &fit_options, progress, stop)?;
    let n_draws = draws.units * draws.draws;
    let mut ranks = Vec::new();
    for (site, out) in model.output_sites().iter().zip(&draws.sites) {
        if site.kind != SiteKind::Sample || site.observed {
            continue;
        }
        let Some(true_value) = value_of(&site.name) else {
            continue;
        };
        let size = true_value.data().len();
        let mut site_ranks = vec![0.0; size];
        for draw in out.values.chunks_exact(size.max(1)) {
            for ((rank, drawn), truth) in site_ranks.iter_mut().zip(draw).zip(true_value.data()) {
                if drawn < truth {
                    *rank += 1.0;
                }
            }
        }
        ranks.push(SiteDraws {
            name: site.name.clone(),
            shape: site.shape.clone(),
            values: site_ranks,
        });
    }
    let divergent = draws
        .stats
        .iter()
        .find(|(name, _)| name == "divergent")
        .map_or(0, |(_, values)| {
            values.iter().filter(|v| **v != 0.0).count()
        });
    Ok(SbcReplication {
        draws: n_draws,
        ranks,
        divergent,
    })
}

/// The data declarations' values by name.
pub(crate) fn data_values(model: &Model) -> Vec<(String, Vec<usize>, Vec<f64>)> {
    model
        .program
        .data
        .iter()
        .filter_map(|decl| {
            let value = model.data.values.get(&decl.slot)?;
            Some((
                decl.name.clone(),
                value.tensor.shape().to_vec(),
                value.tensor.data().to_vec(),
            ))
        })
        .collect()
}

/// Posterior-predictive draws of the observed sites on new data: draw `d` of `posterior`
/// (site name → shape and `n_draws` values) fixes the latent sites, and the observations are
/// drawn from the likelihood with the random stream `(seed, d)`.
pub fn predict(
    compiled: &CompiledModel,
    arrays: &[(String, Vec<u8>)],
    posterior: &[(String, Vec<usize>, Vec<f64>)],
    n_draws: usize,
    seed: u64,
) -> Result<Vec<SiteDraws>, Failure> {
    let model = compiled.instantiate(arrays, seed, true)?;
    let observed = model.observed_sites();
    let mut out: Vec<SiteDraws> = observed
        .iter()
        .map(|s| SiteDraws {
            name: s.name.clone(),
            shape: Vec::new(),
            values: Vec::new(),
        })
        .collect();
    for draw in 0..n_draws {
        let mut values = HashMap::new();
        for (name, shape, data) in posterior {
            let size: usize = shape.iter().product();
            let Some(values_of_draw) = data.get(draw * size..(draw + 1) * size) else {
                return Err(Failure::new(
                    "E0939",
                    format!(
                        "site `{name}` has {} values, fewer than {n_draws} draws of shape {shape:?}",
                        data.len()
                    ),
                ));
            };
            let tensor = bdl_autodiff::Tensor::from_shape(shape, values_of_draw.to_vec())
                .map_err(|e| Failure::new("E0939", format!("site `{name}`: {e}")))?;
            values.insert(name.clone(), tensor);
        }
        let mut rng = stream_rng(seed, draw as u64);
        let drawn = model
            .predictive_draw(&values, &mut rng)
            .map_err(|e| Failure::rendered(&[e.to_diagnostic()], &compiled.sources))?;
        for site in out.iter_mut() {
            if let Some((_, tensor)) = drawn.iter().find(|(name, _)| *name == site.name) {
                site.shape = tensor.shape().to_vec();
                site.values.extend_from_slice(tensor.data());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COIN: &str = "data {\n    y: vector[N]\n}\n\nmodel {\n    let mu = \
                        sample(\"mu\", Normal(0, 1))\n    plate(\"data\", N) {\n        \
                        observe(\"y\", Normal(mu, 1), y)\n    }\n}\n";

    fn npy(values: &[f64]) -> Vec<u8> {
        let mut bytes = npy_frame("<f8", &[values.len()], 8 * values.len());
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn a_bad_model_fails_with_its_rendered_diagnostic() {
        let failure = CompiledModel::compile(
            "bad.bdl",
            "model { sample(\"x\", Nromal(0, 1)) }",
            Path::new("."),
        )
        .err()
        .expect("an error");
        assert!(failure.message.contains("Nromal"), "{}", failure.message);
        assert!(failure.message.contains("bad.bdl"), "{}", failure.message);
        assert!(!failure.codes.is_empty());
    }

    #[test]
    fn chains_run_apart_equal_the_chains_of_one_run() {
        let model = CompiledModel::compile("coin.bdl", COIN, Path::new(".")).expect("compiles");
        let arrays = vec![("y".to_string(), npy(&[0.3, -0.2, 1.1, 0.7]))];
        let stop = AtomicBool::new(false);
        let progress = RunProgress::default();
        let mut options = Options {
            warmup: 100,
            samples: 50,
            seed: 7,
            units: 4,
            ..Options::default()
        };
        let whole = infer(&model, &arrays, &options, &progress, &stop).expect("runs");
        assert_eq!(whole.draws, 50);
        assert_eq!(whole.sites[0].values.len(), 4 * 50);
        options.units = 2;
        options.offset = 2;
        let part = infer(&model, &arrays, &options, &progress, &stop).expect("runs");
        assert_eq!(part.sites[0].values[..], whole.sites[0].values[100..]);
        assert_eq!(part.stats, {
            whole
                .stats
                .iter()
                .map(|(name, values)| (name.clone(), values[100..].to_vec()))
                .collect::<Vec<_>>()
        });
        // The pointwise log-likelihood is log N(y_j | mu, 1) of each observation at each draw.
        let y = [0.3, -0.2, 1.1, 0.7];
        assert_eq!(whole.log_likelihood[0].name, "y");
        assert_eq!(whole.log_likelihood[0].shape, vec![4]);
        assert_eq!(whole.log_likelihood[0].values.len(), 4 * 50 * 4);
        for (draw, mu) in whole.sites[0].values.iter().enumerate() {
            for (j, y_j) in y.iter().enumerate() {
                let expected =
                    -0.5 * (y_j - mu) * (y_j - mu) - 0.5 * (2.0 * std::f64::consts::PI).ln();
                let got = whole.log_likelihood[0].values[draw * 4 + j];
                assert!(
                    (got - expected).abs() < 1e-12,
                    "draw {draw}, y{j}: {got} vs {expected}"
                );
            }
        }
        // Progress counted every iteration of both runs: (100 + 50) × (4 + 2).
        assert_eq!(progress.snapshot().0, 150 * 6);
        // The data come back for the observed-data group.
        assert!(whole
            .data
            .iter()
            .any(|(name, shape, _)| name == "y" && shape == &[4]));
        // Predictions on the same inputs have one value per observation and draw.
        let posterior = vec![(
            "mu".to_string(),
            Vec::new(),
            whole.sites[0].values[..10].to_vec(),
        )];
        let predicted = predict(&model, &arrays, &posterior, 10, 1).expect("predicts");
        assert_eq!(predicted[0].name, "y");
        assert_eq!(predicted[0].values.len(), 10 * 4);
    }

    #[test]
    fn an_sbc_replication_is_reproducible_and_ranks_within_its_draws() {
        let model = CompiledModel::compile("coin.bdl", COIN, Path::new(".")).expect("compiles");
        // The values of `y` only fix N; each replication simulates its own.
        let arrays = vec![("y".to_string(), npy(&[0.0; 6]))];
        let (progress, stop) = (RunProgress::default(), AtomicBool::new(false));
        let options = Options {
            units: 2,
            warmup: 60,
            samples: 30,
            seed: 3,
            ..Options::default()
        };
        let run = |replication| {
            sbc_replication(&model, &arrays, &options, replication, &progress, &stop).expect("runs")
        };
        let (first, again, second) = (run(4), run(4), run(5));
        assert_eq!(first, again);
        assert_eq!(first.draws, 60);
        assert_eq!(first.ranks.len(), 1);
        assert_eq!(first.ranks[0].name, "mu");
        let rank = first.ranks[0].values[0];
        assert!(
            (0.0..=60.0).contains(&rank) && rank.fract() == 0.0,
            "{rank}"
        );
        assert_ne!(first.ranks, second.ranks);
    }

    /// A per-row label whose conditional probability is 1/2 whatever the continuous draw: each
    /// draw's labels must come from their own random numbers, so every row is 1 in about half the
    /// draws (with one shared stream, a row would be the same in every draw).
    #[test]
    fn enumerated_sites_are_drawn_afresh_for_each_draw() {
        const LABELS: &str = "data {\n    y: vector[N]\n}\n\nmodel {\n    let mu = \
                              sample(\"mu\", Normal(0, 1))\n    plate(\"rows\", N) {\n        \
                              let z = sample(\"z\", Bernoulli(0.5))\n        \
                              observe(\"y\", Normal(mu + 0 * z, 1), y)\n    }\n}\n";
        let model = CompiledModel::compile("labels.bdl", LABELS, Path::new(".")).expect("compiles");
        let rows = 4;
        let arrays = vec![("y".to_string(), npy(&[0.3, -0.2, 1.1, 0.7]))];
        let options = Options {
            warmup: 100,
            samples: 200,
            seed: 11,
            units: 2,
            ..Options::default()
        };
        let (progress, stop) = (RunProgress::default(), AtomicBool::new(false));
        let draws = infer(&model, &arrays, &options, &progress, &stop).expect("runs");
        let z = draws
            .sites
            .iter()
            .find(|site| site.name == "z")
            .expect("the drawn labels are an output site");
        assert_eq!(z.shape, vec![rows]);
        let n = (draws.units * draws.draws) as f64;
        assert_eq!(z.values.len(), n as usize * rows);
        assert!(z.values.iter().all(|v| *v == 0.0 || *v == 1.0));
        // Each row's share of ones is a mean of n Bernoulli(1/2) draws: within 4 standard errors
        // of 1/2 (the draws are independent given the continuous draws).
        let tolerance = 4.0 * (0.25 / n).sqrt();
        for row in 0..rows {
            let ones = z.values.iter().skip(row).step_by(rows).sum::<f64>() / n;
            assert!(
                (ones - 0.5).abs() < tolerance,
                "row {row}: {ones} ones (tolerance {tolerance})"
            );
        }
    }

    #[test]
    fn unknown_options_and_methods_are_named() {
        let mut options = Options::default();
        let failure = options.set("chians", 4.0).unwrap_err();
        assert!(failure.message.contains("chians"));
        assert!(options.set("chains", 0.0).is_err());
        assert!(MethodKind::parse("svi").is_err());
    }
}
