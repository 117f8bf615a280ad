//! A golden test of NUTS tree building: the first 20 draws of one seeded chain on a correlated
//! 2-D Gaussian, with every sampler statistic, are stored in `tests/data/nuts_golden.json`.
//!
//! The file pins behaviour, not correctness (the statistical tests cover that): any change to the
//! order of random draws, to the multinomial or progressive sampling, to the U-turn checks or to
//! warm-up changes these numbers. When such a change is deliberate, regenerate the file with
//!
//! ```text
//! BDL_REGENERATE_GOLDEN=1 cargo test -p bdl-infer --test mcmc_golden
//! ```
//!
//! and say why in the commit.

#![allow(clippy::disallowed_methods)] // The test reads and (on request) writes its golden file.

mod mcmc_support;

use bdl_infer::mcmc::{sample, McmcSettings};
use mcmc_support::Gaussian;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nuts_golden.json");

fn run() -> Value {
    let target = Gaussian::from_covariance(vec![0.5, -1.0], &[1.0, 0.95 * 0.5, 0.95 * 0.5, 0.25]);
    // A short warm-up exercises the step-size search, dual averaging and one metric window.
    let settings = McmcSettings {
        chains: 1,
        warmup: 100,
        samples: 20,
        seed: 2024,
        ..McmcSettings::default()
    };
    let result = sample(
        &settings,
        |_| target.clone(),
        &|_| {},
        &AtomicBool::new(false),
    )
    .expect("sampling succeeds");
    let chain = &result.chains[0];
    let draws: Vec<Value> = (0..chain.n_draws())
        .map(|i| {
            let s = &chain.stats[i];
            json!({
                "position": chain.draw(i),
                "lp": s.log_density,
                "accept_stat": s.accept_stat,
                "step_size": s.step_size,
                "tree_depth": s.tree_depth,
                "n_leapfrog": s.n_leapfrog,
                "divergent": s.divergent,
                "energy": s.energy,
            })
        })
        .collect();
    json!({ "draws": draws })
}

/// Numbers agree to a relative 1e-12 (bit-for-bit on one platform; the margin admits a
/// different libm's last bit), everything else exactly.
fn assert_matches(ours: &Value, golden: &Value, path: &str) {
    match (ours, golden) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{path}: {a} vs golden {b}"
            );
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_matches(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: fields");
            for (key, y) in b {
                let x = a.get(key).unwrap_or(&Value::Null);
                assert_matches(x, y, &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(ours, golden, "{path}"),
    }
}

#[test]
fn nuts_draws_match_the_golden_file() {
    let ours = run();
    if std::env::var_os("BDL_REGENERATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&ours).expect("serialisable") + "\n";
        std::fs::write(GOLDEN, text).expect("the golden file is writable");
    }
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(GOLDEN).expect("golden file"))
            .expect("valid JSON");
    assert_matches(&ours, &golden, "golden");
    // The trajectories were built for real: trees of several depths appear.
    let depths: std::collections::BTreeSet<u64> = golden["draws"]
        .as_array()
        .expect("draws")
        .iter()
        .filter_map(|d| d["tree_depth"].as_u64())
        .collect();
    assert!(depths.len() >= 2, "tree depths {depths:?}");
}
