//! Pareto-smoothed importance sampling against ArviZ's `psislw` on the fixed inputs of
//! `tests/data/psis_reference.json` (written by `scripts/psis_reference.py`): every smoothed log
//! weight and every k̂ within 1e-6.

use bdl_infer::diagnostics::psis::psis;
use serde_json::Value;

const REFERENCE: &str = include_str!("data/psis_reference.json");

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[test]
fn psis_matches_arviz() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("the reference file parses");
    let cases = reference["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let result = psis(&floats(&case["log_ratios"])).expect("finite ratios");
        match case["pareto_k"].as_f64() {
            Some(k) => assert!(
                (result.pareto_k - k).abs() < 1e-6,
                "{name}: k̂ {} against ArviZ's {k}",
                result.pareto_k
            ),
            None => assert!(result.pareto_k.is_infinite(), "{name}"),
        }
        let expected = floats(&case["log_weights"]);
        assert_eq!(result.log_weights.len(), expected.len());
        for (i, (ours, theirs)) in result.log_weights.iter().zip(&expected).enumerate() {
            assert!(
                (ours - theirs).abs() < 1e-6,
                "{name}: log weight {i} is {ours}, ArviZ {theirs}"
            );
        }
    }
}
