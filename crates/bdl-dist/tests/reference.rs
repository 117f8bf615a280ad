//! Log-densities, means, variances and KL divergences against values computed offline by SciPy
//! (and NumPyro for LKJCholesky) with `scripts/dist_reference.py`; agreement to 1e-8 relative
//! (absolute for values below one in magnitude).

mod common;

use bdl_autodiff::{Tape, Tensor};
use bdl_dist::{kl_divergence, Distribution, Family};
use common::{close, number, tensor};
use serde_json::Value;

const TOLERANCE: f64 = 1e-8;

fn reference() -> Value {
    serde_json::from_str(include_str!("data/reference.json")).expect("valid JSON")
}

fn build(tape: &mut Tape, case: &Value) -> Distribution {
    let family =
        Family::from_name(case["family"].as_str().expect("a family name")).expect("known family");
    let params: Vec<(String, Tensor)> = case["params"]
        .as_object()
        .expect("a parameter object")
        .iter()
        .map(|(name, value)| (name.clone(), tensor(value)))
        .collect();
    let named: Vec<(&str, Tensor)> = params
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    Distribution::with_constants(tape, family, &named)
        .unwrap_or_else(|error| panic!("{}: {error}", case["family"]))
}

#[test]
fn log_densities_match_scipy() {
    let data = reference();
    let cases = data["cases"].as_array().expect("cases");
    let mut per_family = std::collections::BTreeMap::new();
    for case in cases {
        let mut tape = Tape::new();
        let distribution = build(&mut tape, case);
        let value = tape.constant(tensor(&case["value"]));
        let log_prob = distribution.log_prob(&mut tape, value).expect("log_prob");
        let expected = tensor(&case["log_prob"]);
        let actual = tape.value(log_prob);
        assert_eq!(actual.shape(), expected.shape(), "{case}");
        for (a, e) in actual.data().iter().zip(expected.data()) {
            assert!(close(*a, *e, TOLERANCE), "{case}: got {a}, expected {e}");
        }
        *per_family
            .entry(case["family"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    for family in bdl_dist::families::all_families() {
        if family == bdl_dist::Family::MixtureSameFamily {
            // Its component is a distribution; tests/mixture.rs checks it against scipy.
            continue;
        }
        let count = per_family.get(family.name()).copied().unwrap_or(0);
        assert!(count >= 4, "{} has {count} reference points", family.name());
    }
}

#[test]
fn moments_match_scipy() {
    let data = reference();
    for case in data["cases"].as_array().expect("cases") {
        for (key, which) in [("mean", true), ("variance", false)] {
            let Some(expected) = case.get(key) else {
                continue;
            };
            let mut tape = Tape::new();
            let distribution = build(&mut tape, case);
            let moment = if which {
                distribution.mean(&tape)
            } else {
                distribution.variance(&tape)
            };
            let expected = tensor(expected);
            let Some(moment) = moment else {
                assert!(
                    expected.data().iter().all(|x| x.is_nan()),
                    "{key} of {case} missing"
                );
                continue;
            };
            for (a, e) in moment.data().iter().zip(expected.data()) {
                assert!(
                    close(*a, *e, TOLERANCE),
                    "{key} of {case}: got {a}, expected {e}"
                );
            }
        }
    }
}

#[test]
fn kl_divergences_match_integrals() {
    let data = reference();
    for case in data["kl"].as_array().expect("kl cases") {
        let mut tape = Tape::new();
        let p = build(&mut tape, &case["p"]);
        let q = build(&mut tape, &case["q"]);
        let kl = kl_divergence(&mut tape, &p, &q)
            .unwrap_or_else(|| panic!("no closed form for {case}"))
            .expect("kl");
        let actual = tape.value(kl).item().expect("one number");
        let expected = number(&case["kl"]);
        assert!(
            close(actual, expected, TOLERANCE),
            "{case}: got {actual}, expected {expected}"
        );
    }
}
