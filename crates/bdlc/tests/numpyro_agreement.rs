//! bdl's NUTS against NumPyro's on three bundled models: `eight_schools`, `logistic` and
//! `shallow_bnn` from `models/`, run through the built `bdlc` binary; and bdl's
//! Metropolis-within-Gibbs against NumPyro's NUTS on `shallow_bnn`.
//!
//! `tests/infer/numpyro_posteriors.json` holds NumPyro's posterior means and sds of the same
//! models on the same data, from chains long enough that their Monte Carlo standard errors are
//! small (`scripts/numpyro_posteriors.py` makes it). Two estimates of the same expectation with
//! independent errors differ by less than 4 √(MCSE_bdl² + MCSE_NumPyro²) unless one sampler is
//! wrong; each mean and each sd must pass that test, with bdl's MCSEs from its own run's ESS.
//!
//! The shallow network's weights are not compared. Its posterior is invariant under permutations
//! of the ten hidden units and under the sign flip (γⱼ, γ0ⱼ, βⱼ, β0) → (−γⱼ, −γ0ⱼ, −βⱼ, β0 + βⱼ),
//! because σ(−z) = 1 − σ(z); so the posterior mean of a weight, even of β0, depends on which of
//! the equivalent modes a chain explores, and two correct samplers need not agree on it. The
//! noise scale σ and the regression function f(x) = σ(x γ + γ0) β + β0 at a few inputs are
//! the same in every mode, and those are compared.
//!
//! The full-length shallow network run (4 chains of 500 + 500 iterations at some 600 gradient
//! evaluations each) takes about a minute of CPU time, so it runs only with
//! `--ignored`; the normal suite runs a shorter one.
#![allow(clippy::disallowed_methods)] // Tests read the reference file and the binary's CSV files.

mod infer_support;

use infer_support::{
    chain_column, infer, read_chains, repository, scratch, ChainEstimate, DrawTable,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The |z| a difference may reach.
const Z_LIMIT: f64 = 4.0;

#[derive(Debug, Deserialize)]
struct References {
    models: Vec<ModelReference>,
}

#[derive(Debug, Deserialize)]
struct ModelReference {
    name: String,
    /// Estimates per quantity, named as bdl's CSV columns (and `f.k` for the regression function).
    quantities: BTreeMap<String, Reference>,
    /// The inputs of `f.1`, `f.2`, ... for the shallow network.
    #[serde(default)]
    inputs: Vec<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    mean: f64,
    sd: f64,
    mcse_mean: f64,
    mcse_sd: f64,
}

fn reference(name: &str) -> ModelReference {
    let path = repository().join("tests/infer/numpyro_posteriors.json");
    let text = std::fs::read_to_string(&path).expect("the NumPyro reference file is readable");
    let references: References = serde_json::from_str(&text).expect("the reference file parses");
    references
        .models
        .into_iter()
        .find(|model| model.name == name)
        .unwrap_or_else(|| panic!("no NumPyro reference for {name}"))
}

/// Runs `bdlc infer models/NAME.bdl --method METHOD` with the given flags and returns its chains.
fn run_bdl(name: &str, label: &str, method: &str, flags: &[&str]) -> Vec<DrawTable> {
    let out = scratch("numpyro-agreement", label);
    let mut args = vec!["--method".to_string(), method.to_string()];
    args.extend(flags.iter().map(|flag| flag.to_string()));
    infer(
        &repository().join(format!("models/{name}.bdl")),
        &args,
        &out,
    );
    read_chains(&out)
}

/// Whether a comparison asserts the posterior sds as well as the means.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    MeansAndSds,
    Means,
}

/// Compares bdl's estimates of each quantity with NumPyro's and panics listing every
/// disagreement; prints the whole comparison.
fn assert_agreement(
    label: &str,
    quantities: &[(String, Vec<Vec<f64>>)],
    reference: &ModelReference,
    compare: Compare,
) {
    let mut table = format!(
        "{:<20} {:>10} {:>10} {:>9} {:>9} {:>7}   {:>9} {:>9} {:>7}  {:>6} {:>7}\n",
        label,
        "mean bdl",
        "NumPyro",
        "mcse bdl",
        "mcse np",
        "z",
        "sd bdl",
        "NumPyro",
        "z",
        "ess",
        "r_hat"
    );
    let mut failures = Vec::new();
    for (name, chains) in quantities {
        let theirs = reference
            .quantities
            .get(name)
            .unwrap_or_else(|| panic!("{label}: NumPyro has no `{name}`"));
        let ours = ChainEstimate::new(chains);
        let z_mean = (ours.mean - theirs.mean) / ours.mcse_mean.hypot(theirs.mcse_mean);
        let z_sd = (ours.sd - theirs.sd) / ours.mcse_sd.hypot(theirs.mcse_sd);
        table.push_str(&format!(
            "{:<20} {:>10.4} {:>10.4} {:>9.5} {:>9.5} {:>7.2}   {:>9.4} {:>9.4} {:>7.2}  {:>6.0} {:>7.4}\n",
            name, ours.mean, theirs.mean, ours.mcse_mean, theirs.mcse_mean, z_mean, ours.sd, theirs.sd,
            z_sd, ours.ess_bulk, ours.r_hat
        ));
        if z_mean.abs() >= Z_LIMIT {
            failures.push(format!(
                "{name}: mean {} vs NumPyro {} (z = {z_mean:.2})",
                ours.mean, theirs.mean
            ));
        }
        if compare == Compare::MeansAndSds && z_sd.abs() >= Z_LIMIT {
            failures.push(format!(
                "{name}: sd {} vs NumPyro {} (z = {z_sd:.2})",
                ours.sd, theirs.sd
            ));
        }
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{table}");
    }
    assert!(
        failures.is_empty(),
        "{label} disagrees with NumPyro:\n{}",
        failures.join("\n")
    );
}

/// Every column of the reference, read from bdl's chains.
fn reference_columns(
    chains: &[DrawTable],
    reference: &ModelReference,
) -> Vec<(String, Vec<Vec<f64>>)> {
    reference
        .quantities
        .keys()
        .map(|name| (name.clone(), chain_column(chains, name)))
        .collect()
}

#[test]
fn eight_schools_agrees_with_numpyro() {
    let reference = reference("eight_schools");
    // The model's own settings: 4 chains of 1,000 warm-up and 1,000 kept iterations.
    let chains = run_bdl("eight_schools", "eight_schools", "nuts", &["--seed", "1"]);
    assert_agreement(
        "eight_schools",
        &reference_columns(&chains, &reference),
        &reference,
        Compare::MeansAndSds,
    );
}

#[test]
fn logistic_agrees_with_numpyro() {
    let reference = reference("logistic");
    // The model's own settings: 4 chains of 500 warm-up and 500 kept iterations.
    let chains = run_bdl("logistic", "logistic", "nuts", &["--seed", "2"]);
    assert_agreement(
        "logistic",
        &reference_columns(&chains, &reference),
        &reference,
        Compare::MeansAndSds,
    );
}

/// σ and the regression function f(x) = σ(x γ + γ0) β + β0 at the reference's inputs, per chain
/// and draw, from the weight columns of bdl's chains (γ is 2 × 10, written `gamma.i.j`).
fn shallow_quantities(
    chains: &[DrawTable],
    reference: &ModelReference,
) -> Vec<(String, Vec<Vec<f64>>)> {
    const HIDDEN: usize = 10;
    let column = |name: &str| chain_column(chains, name);
    let gamma: Vec<Vec<Vec<f64>>> = (1..=2)
        .map(|i| {
            (1..=HIDDEN)
                .map(|j| column(&format!("gamma.{i}.{j}")))
                .collect::<Vec<_>>()
        })
        .map(|row| row.into_iter().map(|c| c.concat()).collect())
        .collect();
    let gamma0: Vec<Vec<f64>> = (1..=HIDDEN)
        .map(|j| column(&format!("gamma0.{j}")).concat())
        .collect();
    let beta: Vec<Vec<f64>> = (1..=HIDDEN)
        .map(|j| column(&format!("beta.{j}")).concat())
        .collect();
    let beta0 = column("beta0").concat();
    let draws_per_chain: Vec<usize> = chains.iter().map(|chain| chain.rows.len()).collect();
    let mut quantities = vec![("sigma".to_string(), column("sigma"))];
    for (k, input) in reference.inputs.iter().enumerate() {
        let values: Vec<f64> = (0..beta0.len())
            .map(|d| {
                let hidden: f64 = (0..HIDDEN)
                    .map(|j| {
                        let z =
                            input[0] * gamma[0][j][d] + input[1] * gamma[1][j][d] + gamma0[j][d];
                        beta[j][d] / (1.0 + (-z).exp())
                    })
                    .sum();
                hidden + beta0[d]
            })
            .collect();
        // Back into one vector per chain.
        let mut per_chain = Vec::new();
        let mut start = 0;
        for &n in &draws_per_chain {
            per_chain.push(values[start..start + n].to_vec());
            start += n;
        }
        quantities.push((format!("f.{}", k + 1), per_chain));
    }
    quantities
}

#[test]
fn shallow_bnn_agrees_with_numpyro_on_identifiable_quantities() {
    let reference = reference("shallow_bnn");
    // A shorter run than the model's settings: its MCSEs are larger and the test is weaker, but
    // it is exactly as valid.
    let flags = [
        "--seed",
        "3",
        "--chains",
        "2",
        "--warmup",
        "300",
        "--samples",
        "200",
    ];
    let chains = run_bdl("shallow_bnn", "shallow_bnn_short", "nuts", &flags);
    let quantities = shallow_quantities(&chains, &reference);
    assert_agreement(
        "shallow_bnn (short)",
        &quantities,
        &reference,
        Compare::MeansAndSds,
    );
}

#[test]
#[ignore = "slow statistical suite: NUTS on shallow_bnn at the model's own length; run with --ignored"]
fn slow_shallow_bnn_agrees_with_numpyro_on_identifiable_quantities() {
    let reference = reference("shallow_bnn");
    // The model's own settings: 4 chains of 500 warm-up and 500 kept iterations.
    let chains = run_bdl("shallow_bnn", "shallow_bnn", "nuts", &["--seed", "4"]);
    let quantities = shallow_quantities(&chains, &reference);
    assert_agreement("shallow_bnn", &quantities, &reference, Compare::MeansAndSds);
}

/// Metropolis-within-Gibbs, the lecture's sampler, on the same network: the hidden weights
/// (γ, γ0) move by adaptive random-walk Metropolis and σ by random-walk Metropolis on log σ, both
/// with the output weights (β, β0) integrated out (their conditional given the rest is
/// linear-Gaussian), and then (β, β0) are drawn exactly. Its posterior predictive (σ and the
/// regression function at the reference inputs) must agree with NUTS's within Monte Carlo error,
/// as NUTS's own must.
///
/// Random-walk moves on 30 correlated hidden weights mix slowly (a bulk ESS of some 10 per 1,000
/// sweeps for the worst f(x)), and until the chains have mixed, an MCSE computed from their ESS
/// understates the error: at 4 × 2,000 sweeps the chains' means still scatter by several of their
/// own MCSEs. Only the means are asserted: at the length below they agree (|z| < 2 at seed 5),
/// but the chains' own sds of f(x) still differ from one another by up to 10% (f.3: 0.058 to
/// 0.065 against NUTS's 0.059), so the pooled sd, 2–4% above NUTS's, carries an error that the
/// MCSE of the sd, computed from the ESS as if the chains had mixed, does not see. The table
/// printed by the test shows the sds. The run that makes the comparison meaningful (4 chains of 5,000 warm-up and 40,000
/// sweeps kept every fourth, about two minutes on two cores) therefore runs only with
/// `--ignored`.
#[test]
#[ignore = "slow statistical suite: Gibbs on shallow_bnn for 40,000 sweeps per chain; run with --ignored"]
fn slow_gibbs_on_shallow_bnn_agrees_with_nuts_on_identifiable_quantities() {
    let reference = reference("shallow_bnn");
    let flags = [
        "--blocks",
        "gamma, gamma0; sigma; beta, beta0",
        "--seed",
        "5",
        "--chains",
        "4",
        "--warmup",
        "5000",
        "--samples",
        "10000",
        "--thin",
        "4",
    ];
    let chains = run_bdl("shallow_bnn", "shallow_bnn_gibbs", "gibbs", &flags);
    let quantities = shallow_quantities(&chains, &reference);
    assert_agreement(
        "shallow_bnn (gibbs)",
        &quantities,
        &reference,
        Compare::Means,
    );
}
