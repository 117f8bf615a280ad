//! R-hat, ESS, MCSE, quantiles and E-BFMI against ArviZ on the same stored chains.
//!
//! `tests/data/arviz_reference.json` is written by `scripts/arviz_reference.py`; every value
//! must agree to a relative 1e-6. `tests/data/mcse_quantile_reference.json` holds ArviZ's MCSE of
//! quantiles of the same chains, written by `scripts/mcse_quantile_reference.py`.

use bdl_infer::diagnostics::{
    e_bfmi, ess_bulk, ess_mean, ess_quantile, ess_sd, ess_tail, mcse_mean, mcse_quantile, mcse_sd,
    quantile, rhat, Summary,
};
use serde_json::Value;

const REFERENCE: &str = include_str!("data/arviz_reference.json");
const MCSE_QUANTILE_REFERENCE: &str = include_str!("data/mcse_quantile_reference.json");

fn close(name: &str, ours: Option<f64>, reference: f64) {
    let ours = ours.unwrap_or_else(|| panic!("{name}: undefined, ArviZ has {reference}"));
    let error = (ours - reference).abs() / reference.abs().max(1e-300);
    assert!(
        error < 1e-6,
        "{name}: {ours} vs ArviZ {reference} (relative error {error:e})"
    );
}

fn number(value: &Value) -> f64 {
    value.as_f64().expect("a number")
}

#[test]
fn diagnostics_match_arviz() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("valid JSON");
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let chains: Vec<Vec<f64>> = case["chains"]
            .as_array()
            .expect("chains")
            .iter()
            .map(|c| c.as_array().expect("a chain").iter().map(number).collect())
            .collect();
        let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
        let check = |what: &str, ours: Option<f64>| {
            close(&format!("{name} {what}"), ours, number(&case[what]));
        };
        check("ess_bulk", ess_bulk(&slices));
        check("ess_tail", ess_tail(&slices));
        check("ess_mean", ess_mean(&slices));
        check("ess_sd", ess_sd(&slices));
        check("ess_quantile_25", ess_quantile(&slices, 0.25));
        check("mcse_mean", mcse_mean(&slices));
        check("mcse_sd", mcse_sd(&slices));
        if case.get("rhat").is_some() {
            check("rhat", rhat(&slices));
        } else {
            // ArviZ leaves a single chain's R-hat undefined; ours uses its halves. A chain with a
            // strong trend must show it.
            assert!(
                rhat(&slices).expect("defined for one chain") > 1.1,
                "{name}: trend missed"
            );
        }
        let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
        for (i, p) in [0.05, 0.5, 0.95].iter().enumerate() {
            close(
                &format!("{name} q{p}"),
                Some(quantile(&pooled, *p)),
                number(&case["quantiles"][i]),
            );
        }

        // The summary shares work between the estimates; it must give the same numbers.
        let summary = Summary::from_draws(&slices, 1);
        let column = &summary.columns[0];
        close(
            &format!("{name} summary ess_bulk"),
            column.ess_bulk,
            number(&case["ess_bulk"]),
        );
        close(
            &format!("{name} summary ess_tail"),
            column.ess_tail,
            number(&case["ess_tail"]),
        );
        close(
            &format!("{name} summary mcse_mean"),
            column.mcse_mean,
            number(&case["mcse_mean"]),
        );
        close(
            &format!("{name} summary mcse_sd"),
            column.mcse_sd,
            number(&case["mcse_sd"]),
        );
        if case.get("rhat").is_some() {
            close(
                &format!("{name} summary rhat"),
                column.r_hat,
                number(&case["rhat"]),
            );
        }
        close(
            &format!("{name} summary q5"),
            Some(column.q5),
            number(&case["quantiles"][0]),
        );
    }
}

#[test]
fn e_bfmi_matches_arviz() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("valid JSON");
    for case in reference["e_bfmi"].as_array().expect("e_bfmi cases") {
        let energy: Vec<f64> = case["energy"]
            .as_array()
            .expect("energy")
            .iter()
            .map(number)
            .collect();
        close("e_bfmi", e_bfmi(&energy), number(&case["value"]));
    }
}

#[test]
fn summary_warns_by_column() {
    // Two columns: the first mixes, the second's chains sit at different levels.
    let n = 100;
    let chains: Vec<Vec<f64>> = (0..4)
        .map(|c| {
            (0..n)
                .flat_map(|i| {
                    let noise = ((i * 7 + c * 13) % 17) as f64 / 17.0 - 0.5;
                    [noise, noise + c as f64]
                })
                .collect()
        })
        .collect();
    let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
    let summary = Summary::from_draws(&slices, 2);
    assert_eq!(summary.columns.len(), 2);
    assert!(summary.columns[1].r_hat.expect("defined") > 1.5);
    let columns: Vec<usize> = summary.warnings.iter().filter_map(|w| w.column()).collect();
    assert!(columns.contains(&1));
    let high_r_hat = summary
        .warnings
        .iter()
        .find(|w| matches!(w, bdl_infer::diagnostics::Warning::HighRHat { .. }))
        .expect("an R-hat warning");
    let message = high_r_hat.message(|i| ["mu", "tau"][i].to_string());
    assert!(message.contains("tau"), "{message}");
}

#[test]
fn mcse_of_quantiles_matches_arviz() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("valid JSON");
    let mcse: Value = serde_json::from_str(MCSE_QUANTILE_REFERENCE).expect("valid JSON");
    let probs: Vec<f64> = mcse["probs"]
        .as_array()
        .expect("probs")
        .iter()
        .map(number)
        .collect();
    let cases = reference["cases"].as_array().expect("cases");
    let expected = mcse["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), expected.len());
    for (case, values) in cases.iter().zip(expected) {
        let name = case["name"].as_str().expect("a name");
        assert_eq!(values["name"].as_str(), Some(name));
        let chains: Vec<Vec<f64>> = case["chains"]
            .as_array()
            .expect("chains")
            .iter()
            .map(|c| c.as_array().expect("a chain").iter().map(number).collect())
            .collect();
        let slices: Vec<&[f64]> = chains.iter().map(|c| c.as_slice()).collect();
        for (i, p) in probs.iter().enumerate() {
            let arviz = number(&values["mcse_quantile"][i]);
            let ours = mcse_quantile(&slices, *p).expect("defined");
            if arviz == 0.0 {
                assert_eq!(ours, 0.0, "{name} mcse q{p}: {ours} vs ArviZ 0");
            } else {
                close(&format!("{name} mcse q{p}"), Some(ours), arviz);
            }
        }
        // The summary's 5%, 50% and 95% columns must give the same numbers.
        let summary = Summary::from_draws(&slices, 1);
        for (k, p) in [0.05, 0.5, 0.95].iter().enumerate() {
            let i = probs
                .iter()
                .position(|q| q == p)
                .expect("probability listed");
            let ours = summary.columns[0].mcse_quantiles[k];
            let arviz = number(&values["mcse_quantile"][i]);
            if arviz == 0.0 {
                assert_eq!(ours, Some(0.0), "{name} summary mcse q{p}");
            } else {
                close(&format!("{name} summary mcse q{p}"), ours, arviz);
            }
        }
    }
}
