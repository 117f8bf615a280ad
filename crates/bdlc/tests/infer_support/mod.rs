//! What the statistical end-to-end tests share: running the built `bdlc` binary on a model,
//! reading the CmdStan-layout CSV files it writes back into per-chain columns, and the Monte Carlo
//! summaries (mean, sd and their standard errors, R-hat) the tests compare with reference values;
//! `summary.json` read back as JSON; and the comparison of a NUTS run with NumPyro's long reference
//! run of the same model on the same data.
#![allow(clippy::disallowed_methods)] // Tests read the files the binary writes.
#![allow(dead_code)] // Each test binary uses part of these helpers.

use bdl_infer::diagnostics::{ess_bulk, mcse_mean, mcse_sd, rhat};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh folder for one run's files under the target directory's scratch space.
pub fn scratch(group: &str, label: &str) -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(label);
    if directory.exists() {
        std::fs::remove_dir_all(&directory).expect("an old scratch folder can be removed");
    }
    directory
}

/// Runs `bdlc infer MODEL ARGS... --out OUT --quiet` and panics with its stderr if it fails.
pub fn infer(model: &Path, args: &[String], out: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .arg("infer")
        .arg(model)
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs");
    assert!(
        output.status.success(),
        "bdlc infer {} {} failed:\n{}",
        model.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One CSV file of draws: its header and its rows, comment lines (`#`) skipped.
#[derive(Debug)]
pub struct DrawTable {
    /// Column names, as in the header.
    pub header: Vec<String>,
    /// One row of numbers per draw.
    pub rows: Vec<Vec<f64>>,
}

impl DrawTable {
    /// Reads a CmdStan-layout CSV file.
    pub fn read(path: &Path) -> DrawTable {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let mut lines = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty());
        let header: Vec<String> = lines
            .next()
            .unwrap_or_else(|| panic!("{} has no header", path.display()))
            .split(',')
            .map(str::to_string)
            .collect();
        let rows: Vec<Vec<f64>> = lines
            .map(|line| {
                line.split(',')
                    .map(|field| {
                        field.parse::<f64>().unwrap_or_else(|_| {
                            panic!("{}: `{field}` is not a number", path.display())
                        })
                    })
                    .collect()
            })
            .collect();
        for row in &rows {
            assert_eq!(row.len(), header.len(), "{}: a short row", path.display());
        }
        DrawTable { header, rows }
    }

    /// The values of one column, or `None` if the header lacks it.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let index = self.header.iter().position(|h| h == name)?;
        Some(self.rows.iter().map(|row| row[index]).collect())
    }
}

/// The chains of an MCMC run: `chain-1.csv`, `chain-2.csv`, ... in `out`.
pub fn read_chains(out: &Path) -> Vec<DrawTable> {
    let mut chains = Vec::new();
    for chain in 1.. {
        let path = out.join(format!("chain-{chain}.csv"));
        if !path.exists() {
            break;
        }
        chains.push(DrawTable::read(&path));
    }
    assert!(!chains.is_empty(), "no chain files in {}", out.display());
    chains
}

/// One column of every chain.
pub fn chain_column(chains: &[DrawTable], name: &str) -> Vec<Vec<f64>> {
    chains
        .iter()
        .map(|chain| {
            chain
                .column(name)
                .unwrap_or_else(|| panic!("no column `{name}` in the draws"))
        })
        .collect()
}

/// A posterior quantity estimated from Markov chains, with its Monte Carlo standard errors.
#[derive(Clone, Copy, Debug)]
pub struct ChainEstimate {
    /// The mean over all draws.
    pub mean: f64,
    /// The sd over all draws.
    pub sd: f64,
    /// The MCSE of the mean (sd over √ESS_mean, as ArviZ).
    pub mcse_mean: f64,
    /// The MCSE of the sd (delta method, as ArviZ).
    pub mcse_sd: f64,
    /// The bulk ESS.
    pub ess_bulk: f64,
    /// Rank-normalised split R-hat.
    pub r_hat: f64,
}

impl ChainEstimate {
    /// Estimates from per-chain draws.
    pub fn new(chains: &[Vec<f64>]) -> ChainEstimate {
        let slices: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
        let (mean, sd) = mean_and_sd(chains.iter().flatten().copied());
        let defined = |value: Option<f64>, what: &str| {
            value.unwrap_or_else(|| panic!("the {what} of the draws is not defined"))
        };
        ChainEstimate {
            mean,
            sd,
            mcse_mean: defined(mcse_mean(&slices), "MCSE of the mean"),
            mcse_sd: defined(mcse_sd(&slices), "MCSE of the sd"),
            ess_bulk: defined(ess_bulk(&slices), "bulk ESS"),
            r_hat: defined(rhat(&slices), "R-hat"),
        }
    }
}

/// The mean and the sample sd (divisor n − 1; 0 for a single value).
pub fn mean_and_sd(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    let squares = values.map(|x| (x - mean) * (x - mean)).sum::<f64>();
    let sd = if n > 1.0 {
        (squares / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// The number of divergent transitions over all chains.
pub fn divergences(chains: &[DrawTable]) -> usize {
    chain_column(chains, "divergent__")
        .iter()
        .flatten()
        .filter(|&&flag| flag != 0.0)
        .count()
}

/// Runs the built `bdlc` with `args` in the repository's root, colours off.
pub fn bdlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bdlc"))
        .args(args)
        .current_dir(repository())
        .env("NO_COLOR", "1")
        .output()
        .expect("bdlc runs")
}

/// Runs `bdlc infer MODEL --out OUT --force --quiet EXTRA...` and returns its `summary.json`,
/// failing with stderr if the run failed.
pub fn infer_summary(model: &str, out: &Path, extra: &[&str]) -> Value {
    let out_text = out.to_string_lossy().into_owned();
    let mut args = vec!["infer", model, "--out", &out_text, "--force", "--quiet"];
    args.extend_from_slice(extra);
    let output = bdlc(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    read_json(&out.join("summary.json"))
}

/// A JSON file the binary wrote.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the file was written");
    serde_json::from_str(&text).expect("valid JSON")
}

/// One `field` (`mean`, `sd`, `r_hat`…) of the row `name` of a `summary.json`.
pub fn summary_column(summary: &Value, name: &str, field: &str) -> f64 {
    summary["summary"]
        .as_array()
        .expect("summary rows")
        .iter()
        .find(|row| row["name"] == name)
        .and_then(|row| row[field].as_f64())
        .unwrap_or_else(|| panic!("no {field} of column {name}"))
}

/// The |z| a difference between bdl's and NumPyro's estimates may reach.
const Z_LIMIT: f64 = 4.0;
/// The R-hat below which chains count as converged.
const R_HAT_LIMIT: f64 = 1.01;

#[derive(Debug, Deserialize)]
struct References {
    models: Vec<ModelReference>,
}

#[derive(Debug, Deserialize)]
struct ModelReference {
    name: String,
    /// Estimates per quantity, named as bdl's CSV columns.
    quantities: BTreeMap<String, Reference>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    mean: f64,
    sd: f64,
    mcse_mean: f64,
    mcse_sd: f64,
}

/// Runs NUTS on `models/NAME.bdl` and checks it against NumPyro's reference for NAME in
/// `tests/infer/REFERENCE_FILE`: every mean and sd within 4 √(MCSE_bdl² + MCSE_NumPyro²), with
/// bdl's MCSEs from its own run's ESS, every R-hat below 1.01 and no divergent transition. It
/// prints the comparison and panics with every disagreement.
pub fn assert_nuts_agrees_with_numpyro(reference_file: &str, name: &str, seed: u64) {
    let path = repository().join("tests/infer").join(reference_file);
    let text = std::fs::read_to_string(&path).expect("the NumPyro reference file is readable");
    let references: References = serde_json::from_str(&text).expect("the reference file parses");
    let reference = references
        .models
        .into_iter()
        .find(|model| model.name == name)
        .unwrap_or_else(|| panic!("no NumPyro reference for {name} in {reference_file}"));
    let out = scratch("numpyro-references", name);
    let args: Vec<String> = ["--method", "nuts", "--seed", &seed.to_string()]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
    infer(
        &repository().join(format!("models/{name}.bdl")),
        &args,
        &out,
    );
    let chains = read_chains(&out);
    let mut table = format!(
        "{name:<12} {:>10} {:>10} {:>7}   {:>9} {:>9} {:>7}  {:>6} {:>7}\n",
        "mean bdl", "NumPyro", "z", "sd bdl", "NumPyro", "z", "ess", "r_hat"
    );
    let mut failures = Vec::new();
    for (quantity, theirs) in &reference.quantities {
        let ours = ChainEstimate::new(&chain_column(&chains, quantity));
        let z_mean = (ours.mean - theirs.mean) / ours.mcse_mean.hypot(theirs.mcse_mean);
        let z_sd = (ours.sd - theirs.sd) / ours.mcse_sd.hypot(theirs.mcse_sd);
        table.push_str(&format!(
            "{quantity:<12} {:>10.4} {:>10.4} {:>7.2}   {:>9.4} {:>9.4} {:>7.2}  {:>6.0} {:>7.4}\n",
            ours.mean, theirs.mean, z_mean, ours.sd, theirs.sd, z_sd, ours.ess_bulk, ours.r_hat
        ));
        if z_mean.abs() >= Z_LIMIT {
            failures.push(format!(
                "{quantity}: mean {} vs NumPyro {} (z = {z_mean:.2})",
                ours.mean, theirs.mean
            ));
        }
        if z_sd.abs() >= Z_LIMIT {
            failures.push(format!(
                "{quantity}: sd {} vs NumPyro {} (z = {z_sd:.2})",
                ours.sd, theirs.sd
            ));
        }
        if ours.r_hat >= R_HAT_LIMIT {
            failures.push(format!("{quantity}: R-hat {}", ours.r_hat));
        }
    }
    let divergent = divergences(&chains);
    if divergent > 0 {
        failures.push(format!("{divergent} divergent transitions"));
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{table}");
    }
    assert!(
        failures.is_empty(),
        "{name} disagrees with NumPyro:\n{}",
        failures.join("\n")
    );
}
