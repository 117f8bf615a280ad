//! The inference corpus of `tests/infer/`: small models whose posteriors are known exactly, run
//! from their model and data files by every method their expected file lists.
//!
//! Each `NAME.expected.json` names a model, the exact posterior mean and sd of its columns, the
//! exact covariance where the posterior is Gaussian, and the runs to make
//! (`scripts/infer_corpus_reference.py` writes these files). NUTS and HMC run through the built
//! `bdlc` binary, whose chain CSV files are read back. SVI (every guide: diag, mvn, lowrank,
//! delta for MAP, laplace) runs through the library, on the same compiled model and evaluator
//! the binary uses, because it needs a decaying learning rate that the command line does not
//! offer: with a constant rate the final Adam iterate wanders around the optimum by one to three
//! percent of the guide's scales, which the covariance check below would rightly see.
//!
//! The checks, with tolerances taken from Monte Carlo standard errors and never adjusted to a
//! result:
//!
//! - NUTS and HMC: every column's mean within 4 MCSE of the exact mean and its sd within 4 MCSE
//!   of the exact sd (MCSEs from the run's own ESS, as ArviZ computes them), rank-normalised
//!   split R-hat below 1.01, and no divergent transition (every corpus posterior is log-concave
//!   in unconstrained space, where a divergence can only be a bug).
//! - SVI: the mean of the draws from the fitted guide, mapped to constrained space, within
//!   max(4 standard errors, 0.05) of the exact mean; where the run asks for it, their sample
//!   covariance within 4 standard errors of the exact covariance, √((Σᵢᵢ Σⱼⱼ + Σᵢⱼ²) / n) for n
//!   normal draws. The Delta guide (MAP) is compared with the posterior mean too: for the
//!   Gaussian models the mode is the mean, and for Beta–Bernoulli and Gamma–Poisson the mode of
//!   the density in unconstrained space (Jacobian included) is the posterior mean.
//!
//! Every measurement is printed as a table (`cargo test --release --test infer_corpus --
//! --nocapture`), and the test fails listing every check that did not hold.
#![allow(clippy::disallowed_methods)] // Tests read the corpus and the files the binary writes.

mod infer_support;

use bdl_diagnostics::{render_all, SourceMap};
use bdl_infer::rng::stream_rng;
use bdl_infer::vi::{
    svi, Adam, GuideKind, InitLocation, InitSettings, LearningRateSchedule, OptimizerKind,
    OptimizerSettings, SviSettings,
};
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use infer_support::{
    chain_column, divergences, infer, mean_and_sd, read_chains, repository, scratch, ChainEstimate,
    DrawTable,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The |z| a check may reach.
const Z_LIMIT: f64 = 4.0;
/// The smallest tolerance on a variational posterior mean (the 0.05).
const SVI_MEAN_FLOOR: f64 = 0.05;
/// The R-hat below which chains count as converged.
const R_HAT_LIMIT: f64 = 1.01;

/// A corpus entry's `NAME.expected.json`.
#[derive(Debug, Deserialize)]
struct Expected {
    /// The model file, relative to the expected file.
    model: String,
    /// The exact posterior moments of each column.
    posterior: Vec<ExactColumn>,
    /// The exact covariance of the columns, in the order of `posterior`, when it is Gaussian.
    #[serde(default)]
    covariance: Option<Vec<Vec<f64>>>,
    /// The runs to make.
    runs: Vec<Run>,
}

#[derive(Debug, Deserialize)]
struct ExactColumn {
    column: String,
    mean: f64,
    sd: f64,
}

/// One inference run of a corpus entry.
#[derive(Debug, Deserialize)]
struct Run {
    /// `nuts` or `hmc` (through the binary), or `svi` (through the library).
    method: String,
    seed: u64,
    /// NUTS and HMC: further command-line flags.
    #[serde(default)]
    flags: Vec<String>,
    /// SVI: the guide's command-line name.
    #[serde(default)]
    guide: Option<String>,
    /// SVI: optimisation steps.
    #[serde(default)]
    steps: usize,
    /// SVI: Adam's learning rate at the first step.
    #[serde(default)]
    learning_rate: f64,
    /// SVI: the learning rate at the last step, reached by exponential decay.
    #[serde(default)]
    final_learning_rate: f64,
    /// SVI: particles per ELBO estimate.
    #[serde(default)]
    particles: usize,
    /// SVI: draws from the fitted guide.
    #[serde(default)]
    draws: usize,
    /// SVI: whether to compare the guide's covariance with the exact one.
    #[serde(default)]
    covariance: bool,
}

impl Run {
    fn label(&self) -> String {
        match &self.guide {
            Some(guide) => format!("{}-{guide}", self.method),
            None => self.method.clone(),
        }
    }

    fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["--method".to_string(), self.method.clone()];
        args.extend(["--seed".to_string(), self.seed.to_string()]);
        args.extend(self.flags.iter().cloned());
        args
    }

    fn is_mcmc(&self) -> bool {
        matches!(self.method.as_str(), "nuts" | "hmc")
    }

    /// The library's SVI settings for this run, starting at the prior median as `bdlc` does.
    fn svi_settings(&self, model: &Model) -> SviSettings {
        let name = self.guide.as_deref().unwrap_or("diag");
        let guide = GuideKind::from_name(name).unwrap_or_else(|| panic!("unknown guide `{name}`"));
        let steps = self.steps.max(1);
        SviSettings {
            guide,
            steps,
            particles: self.particles.max(1),
            seed: self.seed,
            optimizer: OptimizerSettings {
                kind: OptimizerKind::Adam(Adam {
                    learning_rate: self.learning_rate,
                    ..Adam::default()
                }),
                // γ^steps = final / initial.
                schedule: LearningRateSchedule::Exponential {
                    gamma: (self.final_learning_rate / self.learning_rate).powf(1.0 / steps as f64),
                },
                max_gradient_norm: None,
            },
            init: InitSettings {
                location: InitLocation::Position(model.prior_median_position(self.seed)),
                ..InitSettings::default()
            },
            ..SviSettings::default()
        }
    }
}

/// One measured quantity against its exact value.
struct Check {
    entry: String,
    run: String,
    quantity: String,
    estimate: f64,
    exact: f64,
    /// The Monte Carlo standard error of the estimate.
    standard_error: f64,
    /// The largest distance allowed.
    tolerance: f64,
    /// Extra facts for the table (ESS, R-hat).
    note: String,
}

impl Check {
    fn passes(&self) -> bool {
        (self.estimate - self.exact).abs() <= self.tolerance
    }

    fn z(&self) -> f64 {
        (self.estimate - self.exact) / self.standard_error
    }

    fn row(&self) -> String {
        // A single draw (the Delta guide) has no standard error and no z-score.
        let z = if self.standard_error > 0.0 {
            format!("{:.2}", self.z())
        } else {
            "-".to_string()
        };
        format!(
            "{:<15} {:<14} {:<12} {:>10.4} {:>10.4} {:>9.4} {:>7} {:>8.4}  {}{}",
            self.entry,
            self.run,
            self.quantity,
            self.estimate,
            self.exact,
            self.standard_error,
            z,
            self.tolerance,
            self.note,
            if self.passes() { "" } else { "  FAILED" }
        )
    }
}

/// The corpus's expected files, sorted by name.
fn corpus() -> Vec<PathBuf> {
    let folder = repository().join("tests/infer");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("the corpus folder exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().ends_with(".expected.json"))
        .collect();
    files.sort();
    files
}

fn entry_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    file.trim_end_matches(".expected.json").to_string()
}

/// Runs NUTS or HMC and checks every column's mean and sd, R-hat and divergences.
fn check_mcmc(
    entry: &str,
    expected: &Expected,
    run: &Run,
    out: &Path,
    checks: &mut Vec<Check>,
    failures: &mut Vec<String>,
) {
    let chains = read_chains(out);
    let label = run.label();
    let divergent = divergences(&chains);
    if divergent > 0 {
        failures.push(format!(
            "{entry} / {label}: {divergent} divergent transitions"
        ));
    }
    for exact in &expected.posterior {
        let estimate = ChainEstimate::new(&chain_column(&chains, &exact.column));
        let note = format!("ess {:.0} r_hat {:.4}", estimate.ess_bulk, estimate.r_hat);
        if estimate.r_hat >= R_HAT_LIMIT {
            failures.push(format!(
                "{entry} / {label} / {}: R-hat {}",
                exact.column, estimate.r_hat
            ));
        }
        checks.push(Check {
            entry: entry.to_string(),
            run: label.clone(),
            quantity: format!("mean {}", exact.column),
            estimate: estimate.mean,
            exact: exact.mean,
            standard_error: estimate.mcse_mean,
            tolerance: Z_LIMIT * estimate.mcse_mean,
            note: note.clone(),
        });
        checks.push(Check {
            entry: entry.to_string(),
            run: label.clone(),
            quantity: format!("sd {}", exact.column),
            estimate: estimate.sd,
            exact: exact.sd,
            standard_error: estimate.mcse_sd,
            tolerance: Z_LIMIT * estimate.mcse_sd,
            note,
        });
    }
}

/// Compiles a model file with the data files it names.
fn load_model(path: &Path) -> Model {
    let mut sources = SourceMap::new();
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let compiled = pipeline::compile(&mut sources, &path.display().to_string(), &bytes)
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    let folder = path.parent().expect("a folder");
    let files: Vec<DataFile> = compiled
        .program
        .data_files
        .iter()
        .map(|file| {
            let data_path = folder.join(&file.path);
            let text = std::fs::read_to_string(&data_path)
                .unwrap_or_else(|error| panic!("{}: {error}", data_path.display()));
            let name = data_path.display().to_string();
            let file = sources.add(name.clone(), text.clone());
            DataFile::from_text(name, text, file)
        })
        .collect();
    let observed = pipeline::observed_only(&compiled.program);
    let data = data::load(&compiled.program, &files, Completeness::All, &observed)
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    Model::new(compiled.program, data, 1)
        .unwrap_or_else(|error| panic!("{}", render_all(&[error.to_diagnostic()], &sources, false)))
}

/// Fits the run's guide and returns draws from it, mapped to constrained space, as a table
/// whose columns are named as in the CSV files (`x.1`, `w.2.3`).
fn guide_draws(model: &Model, run: &Run) -> DrawTable {
    let settings = run.svi_settings(model);
    let fit = svi::fit(
        |_| model.evaluator(),
        &settings,
        &AtomicBool::new(false),
        |_, _| {},
    )
    .unwrap_or_else(|error| panic!("{}: {error}", run.label()));
    // One draw of the Delta guide is its point; the others are drawn as `bdlc` draws them.
    let n_draws = if matches!(settings.guide, GuideKind::Delta) {
        1
    } else {
        run.draws.max(1)
    };
    let positions = fit.sample_positions(&mut stream_rng(run.seed, u64::MAX - 1), n_draws);
    let mut evaluator = model.output_evaluator();
    let mut rng = stream_rng(run.seed, 0);
    let mut header = Vec::new();
    let mut rows = Vec::new();
    for position in &positions {
        let values = evaluator
            .constrained(position, &mut rng)
            .unwrap_or_else(|error| panic!("{}: {error:?}", run.label()));
        let mut row = Vec::new();
        let mut names = Vec::new();
        for (site, tensor) in &values {
            let shape = tensor.shape();
            for (flat, value) in tensor.data().iter().enumerate() {
                names.push(column_name(site, shape, flat));
                row.push(*value);
            }
        }
        header = names;
        rows.push(row);
    }
    DrawTable { header, rows }
}

/// CmdStan's name of element `flat` (row-major) of a site of the given shape: `x.2`, `w.1.3`.
fn column_name(site: &str, shape: &[usize], flat: usize) -> String {
    let mut index = vec![0; shape.len()];
    let mut rest = flat;
    for axis in (0..shape.len()).rev() {
        index[axis] = rest % shape[axis];
        rest /= shape[axis];
    }
    let mut name = site.to_string();
    for i in index {
        name.push_str(&format!(".{}", i + 1));
    }
    name
}

/// Checks draws from a fitted guide: means, and the covariance when the run asks for it.
fn check_guide(
    entry: &str,
    expected: &Expected,
    run: &Run,
    table: &DrawTable,
    checks: &mut Vec<Check>,
    failures: &mut Vec<String>,
) {
    let label = run.label();
    let columns: Vec<Vec<f64>> = expected
        .posterior
        .iter()
        .map(|exact| {
            table
                .column(&exact.column)
                .unwrap_or_else(|| panic!("{entry} / {label}: no column `{}`", exact.column))
        })
        .collect();
    let n_draws = table.rows.len();
    let mut means = Vec::new();
    for (exact, values) in expected.posterior.iter().zip(&columns) {
        let (mean, sd) = mean_and_sd(values.iter().copied());
        means.push(mean);
        // Draws from a guide are independent, so the standard error of their mean is sd / √n.
        let standard_error = sd / (n_draws as f64).sqrt();
        checks.push(Check {
            entry: entry.to_string(),
            run: label.clone(),
            quantity: format!("mean {}", exact.column),
            estimate: mean,
            exact: exact.mean,
            standard_error,
            tolerance: (Z_LIMIT * standard_error).max(SVI_MEAN_FLOOR),
            note: format!("{n_draws} draws"),
        });
    }
    if !run.covariance {
        return;
    }
    let Some(covariance) = &expected.covariance else {
        failures.push(format!(
            "{entry} / {label}: a covariance check without an exact covariance"
        ));
        return;
    };
    let n = n_draws as f64;
    for i in 0..columns.len() {
        for j in 0..=i {
            let sample = columns[i]
                .iter()
                .zip(&columns[j])
                .map(|(a, b)| (a - means[i]) * (b - means[j]))
                .sum::<f64>()
                / (n - 1.0);
            let exact = covariance[i][j];
            let standard_error = ((covariance[i][i] * covariance[j][j] + exact * exact) / n).sqrt();
            checks.push(Check {
                entry: entry.to_string(),
                run: label.clone(),
                quantity: format!(
                    "cov {},{}",
                    expected.posterior[i].column, expected.posterior[j].column
                ),
                estimate: sample,
                exact,
                standard_error,
                tolerance: Z_LIMIT * standard_error,
                note: format!("{n_draws} draws"),
            });
        }
    }
}

#[test]
fn corpus_posteriors_match_exact_values() {
    let files = corpus();
    assert!(
        files.len() >= 6,
        "the corpus holds at least six models, found {}",
        files.len()
    );
    let mut checks = Vec::new();
    let mut failures = Vec::new();
    for path in &files {
        let entry = entry_name(path);
        let text = std::fs::read_to_string(path).expect("the expected file is readable");
        let expected: Expected = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let model = path.parent().expect("a folder").join(&expected.model);
        assert!(!expected.runs.is_empty(), "{entry}: no runs");
        let mut compiled = None;
        for run in &expected.runs {
            if run.is_mcmc() {
                let out = scratch(
                    "infer-corpus",
                    &format!("{entry}-{}-{}", run.label(), run.seed),
                );
                infer(&model, &run.cli_args(), &out);
                check_mcmc(&entry, &expected, run, &out, &mut checks, &mut failures);
            } else {
                assert_eq!(
                    run.method, "svi",
                    "{entry}: unknown method `{}`",
                    run.method
                );
                let model = compiled.get_or_insert_with(|| load_model(&model));
                let table = guide_draws(model, run);
                check_guide(&entry, &expected, run, &table, &mut checks, &mut failures);
            }
        }
    }
    let mut table = format!(
        "{:<15} {:<14} {:<12} {:>10} {:>10} {:>9} {:>7} {:>8}\n",
        "model", "run", "quantity", "estimate", "exact", "mcse", "z", "tol"
    );
    for check in &checks {
        table.push_str(&check.row());
        table.push('\n');
        if !check.passes() {
            failures.push(format!(
                "{} / {} / {}: {} vs exact {} (z = {:.2}, tolerance {})",
                check.entry,
                check.run,
                check.quantity,
                check.estimate,
                check.exact,
                check.z(),
                check.tolerance
            ));
        }
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{table}");
    }
    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
