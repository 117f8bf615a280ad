//! What the statistical end-to-end tests share: running the built `bdlc` binary on a model,
//! reading the CmdStan-layout CSV files it writes back into per-chain columns, and the Monte Carlo
//! summaries (mean, sd and their standard errors, R-hat) the tests compare with reference values.
#![allow(clippy::disallowed_methods)] // Tests read the files the binary writes.
#![allow(dead_code)] // Each test binary uses part of these helpers.

use bdl_infer::diagnostics::{ess_bulk, mcse_mean, mcse_sd, rhat};
use std::path::{Path, PathBuf};
use std::process::Command;

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
