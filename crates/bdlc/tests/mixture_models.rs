//! The two-component Gaussian mixture (`models/gaussian_mixture.bdl`, `MixtureSameFamily` with
//! ordered means) against NumPyro, run through the built `bdlc` binary with NUTS.
//!
//! `tests/infer/numpyro_mixture.json` holds NumPyro's posterior means and sds of the same model
//! on the same data, from 4 chains of 10,000 draws (`scripts/numpyro_mixture.py` makes it and
//! the data). Two estimates of the same expectation with independent errors differ by less than
//! 4 √(MCSE_bdl² + MCSE_NumPyro²) unless one sampler (or one model) is wrong; each mean and sd
//! must pass that test, with bdl's MCSEs from its own run's ESS, every R-hat must be below 1.01
//! and no transition may diverge. The run is 4 chains of 1,000 warm-up and 1,000 kept
//! iterations, a few seconds of CPU time.
#![allow(clippy::disallowed_methods)] // Tests read the reference file and the binary's CSV files.

mod infer_support;

use infer_support::{
    chain_column, divergences, infer, read_chains, repository, scratch, ChainEstimate,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The |z| a difference may reach.
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

fn reference(name: &str) -> ModelReference {
    let path = repository().join("tests/infer/numpyro_mixture.json");
    let text = std::fs::read_to_string(&path).expect("the NumPyro reference file is readable");
    let references: References = serde_json::from_str(&text).expect("the reference file parses");
    references
        .models
        .into_iter()
        .find(|model| model.name == name)
        .unwrap_or_else(|| panic!("no NumPyro reference for {name}"))
}

/// Runs NUTS on `models/NAME.bdl` and checks every quantity of the reference, printing the
/// comparison and panicking with every disagreement.
fn assert_agrees_with_numpyro(name: &str, seed: u64) {
    let reference = reference(name);
    let out = scratch("mixture-models", name);
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

#[test]
fn gaussian_mixture_agrees_with_numpyro() {
    assert_agrees_with_numpyro("gaussian_mixture", 4);
}
