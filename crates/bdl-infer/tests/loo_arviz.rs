//! PSIS-LOO, WAIC and model comparison against ArviZ 0.23 (`loo`, `waic`, `compare` with scale
//! "log") on the committed log-likelihood matrices of `tests/data/loo_reference.json`, written
//! by `scripts/loo_reference.py`: every estimate, standard error, effective number of
//! parameters, pointwise value, Pareto k̂, elpd difference and weight within 1e-6.
//!
//! The stacking weights are held to the optimum of a tight solve of ArviZ's problem; ArviZ's own
//! SLSQP answer (default tolerance) is allowed the distance the script measured between the two.

use bdl_infer::diagnostics::loo::{
    compare, loo, pseudo_bma_plus_weights, relative_efficiency, waic, Elpd,
};
use serde_json::Value;

const REFERENCE: &str = include_str!("data/loo_reference.json");
const TOLERANCE: f64 = 1e-6;

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// The close-enough test, relative for large values.
fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= TOLERANCE * theirs.abs().max(1.0)
}

/// The log-likelihood matrix (chains × draws × observations) as one slice of draws per
/// observation, chains one after another.
fn per_observation(log_lik: &Value) -> Vec<Vec<f64>> {
    let chains: Vec<Vec<Vec<f64>>> = log_lik
        .as_array()
        .expect("chains")
        .iter()
        .map(|chain| {
            chain
                .as_array()
                .expect("draws")
                .iter()
                .map(floats)
                .collect()
        })
        .collect();
    let n_obs = chains[0][0].len();
    (0..n_obs)
        .map(|i| {
            chains
                .iter()
                .flat_map(|chain| chain.iter().map(move |draw| draw[i]))
                .collect()
        })
        .collect()
}

fn check_elpd(label: &str, ours: &Elpd, reference: &Value, failures: &mut Vec<String>) {
    for (name, value, expected) in [
        ("elpd", ours.elpd, reference["elpd"].as_f64()),
        ("se", ours.se, reference["se"].as_f64()),
        ("p", ours.p, reference["p"].as_f64()),
    ] {
        let expected = expected.expect("a number");
        if !close(value, expected) {
            failures.push(format!("{label}: {name} is {value}, ArviZ {expected}"));
        }
    }
    for (i, (a, b)) in ours
        .pointwise
        .iter()
        .zip(floats(&reference["pointwise"]))
        .enumerate()
    {
        if !close(*a, b) {
            failures.push(format!("{label}: pointwise value {i} is {a}, ArviZ {b}"));
        }
    }
    if let Some(ks) = reference.get("pareto_k") {
        for (i, (a, b)) in ours.pareto_k.iter().zip(floats(ks)).enumerate() {
            if !close(*a, b) {
                failures.push(format!("{label}: k̂ of observation {i} is {a}, ArviZ {b}"));
            }
        }
        let good_k = reference["good_k"].as_f64().expect("good_k");
        if !close(ours.good_k, good_k) {
            failures.push(format!("{label}: good k {} against {good_k}", ours.good_k));
        }
    }
    if reference["warning"].as_bool() != Some(ours.warning) {
        failures.push(format!("{label}: warning {} against ArviZ's", ours.warning));
    }
}

#[test]
fn loo_and_waic_match_arviz() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("the reference file parses");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 4);
    let mut failures = Vec::new();
    let mut saw_bad_k = false;
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let matrix = per_observation(&case["log_lik"]);
        let slices: Vec<&[f64]> = matrix.iter().map(Vec::as_slice).collect();
        // The relative efficiency from the posterior draws, as ArviZ computes it.
        let posterior: Vec<Vec<Vec<f64>>> = case["posterior"]
            .as_object()
            .expect("posterior")
            .values()
            .map(|chains| {
                chains
                    .as_array()
                    .expect("chains")
                    .iter()
                    .map(floats)
                    .collect()
            })
            .collect();
        let quantities: Vec<Vec<&[f64]>> = posterior
            .iter()
            .map(|chains| chains.iter().map(Vec::as_slice).collect())
            .collect();
        let reff = relative_efficiency(&quantities);
        let expected_reff = case["reff"].as_f64().expect("reff");
        if !close(reff, expected_reff) {
            failures.push(format!(
                "{name}: relative efficiency {reff}, ArviZ {expected_reff}"
            ));
        }
        let loo = loo(&slices, reff).expect("finite log-likelihoods");
        saw_bad_k |= loo.warning;
        check_elpd(&format!("{name} loo"), &loo, &case["loo"], &mut failures);
        let waic = waic(&slices).expect("finite log-likelihoods");
        check_elpd(&format!("{name} waic"), &waic, &case["waic"], &mut failures);
    }
    assert!(saw_bad_k, "some case must exercise the k̂ warning");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compare_matches_arviz() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("the reference file parses");
    let cases = reference["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for comparison in reference["comparisons"].as_array().expect("comparisons") {
        let label = comparison["name"].as_str().expect("a name");
        let waic_criterion = comparison["ic"].as_str() == Some("waic");
        let names: Vec<&str> = comparison["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m.as_str().expect("a name"))
            .collect();
        // The models in reverse of ArviZ's order, so that the ranking is tested too.
        let mut estimates = Vec::new();
        for name in names.iter().rev() {
            let case = cases
                .iter()
                .find(|c| c["name"].as_str() == Some(*name))
                .expect("the case");
            let matrix = per_observation(&case["log_lik"]);
            let slices: Vec<&[f64]> = matrix.iter().map(Vec::as_slice).collect();
            let estimate = if waic_criterion {
                waic(&slices)
            } else {
                loo(&slices, case["reff"].as_f64().expect("reff"))
            };
            estimates.push(estimate.expect("finite log-likelihoods"));
        }
        let bootstrap: Vec<Vec<f64>> = comparison["bootstrap_dirichlet"]
            .as_array()
            .expect("draws")
            .iter()
            .map(floats)
            .collect();
        let refs: Vec<&Elpd> = estimates.iter().collect();
        let rows = compare(&refs, &bootstrap).expect("comparable models");
        let columns = [
            ("elpd", "elpd"),
            ("elpd_diff", "elpd_diff"),
            ("dse", "dse"),
            ("se", "se"),
            ("stacking weight", "stacking_weights_tight"),
            ("pseudo-BMA weight", "pseudo_bma_weights"),
            ("pseudo-BMA+ weight", "pseudo_bma_plus_weights"),
            ("pseudo-BMA+ se", "pseudo_bma_plus_se"),
        ];
        for (rank, row) in rows.iter().enumerate() {
            // Reversed input: ArviZ's rank r is our input model (n − 1 − r).
            assert_eq!(row.model, names.len() - 1 - rank, "{label}: ranking");
            for (column, key) in columns {
                let ours = match column {
                    "elpd" => row.elpd,
                    "elpd_diff" => row.elpd_diff,
                    "dse" => row.dse,
                    "se" => row.se,
                    "stacking weight" => row.stacking_weight,
                    "pseudo-BMA weight" => row.pseudo_bma_weight,
                    "pseudo-BMA+ weight" => row.pseudo_bma_plus_weight,
                    _ => row.pseudo_bma_plus_se,
                };
                let theirs = floats(&comparison[key])[rank];
                if !close(ours, theirs) {
                    failures.push(format!(
                        "{label}: {column} of {} is {ours}, ArviZ {theirs}",
                        names[rank]
                    ));
                }
            }
            // ArviZ's own stacking weights, found at SLSQP's default tolerance, lie within the
            // distance between its answer and the tight optimum (plus 1e-6).
            let arviz = floats(&comparison["stacking_weights_arviz"]);
            let tight = floats(&comparison["stacking_weights_tight"]);
            let gap = arviz
                .iter()
                .zip(&tight)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!((row.stacking_weight - arviz[rank]).abs() <= gap + TOLERANCE);
        }
        // The bootstrap on the same draws, called directly.
        let pointwise: Vec<&[f64]> = rows
            .iter()
            .map(|row| estimates[row.model].pointwise.as_slice())
            .collect();
        let (weights, _) = pseudo_bma_plus_weights(&pointwise, &bootstrap);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
