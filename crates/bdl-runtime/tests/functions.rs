//! The language's scalar functions (Stan's scalar math), each run through a model:
//!
//! - its value at reference points equals the one `scripts/function_reference.py` computed with
//!   mpmath (committed in `tests/data/functions_reference.json`) to a few ulps;
//! - its gradient agrees with six-point finite differences there (`bdlc diagnose`'s check);
//! - it broadcasts a vector against a scalar.
//!
//! A function is tested as the log density of a model with flat priors on its arguments:
//! `x ~ Flat()` and `factor("f", f(x))` has log density f(x) at the unconstrained point x, and
//! its gradient is f's.

mod common;

use bdl_infer::density::LogDensity;
use serde_json::Value;

fn reference() -> serde_json::Map<String, Value> {
    let text = include_str!("data/functions_reference.json");
    match serde_json::from_str(text).expect("the reference file is JSON") {
        Value::Object(map) => map,
        _ => panic!("the reference file holds an object"),
    }
}

/// The argument names of a function of one or two arguments, in order.
fn arguments(name: &str, arity: usize) -> Vec<&'static str> {
    match (name, arity) {
        (_, 1) => vec!["x"],
        ("atan2", _) => vec!["y", "x"],
        ("lbeta", _) => vec!["a", "b"],
        ("lchoose", _) => vec!["n", "k"],
        _ => vec!["x", "y"],
    }
}

fn model_for(name: &str, arity: usize) -> String {
    let names = arguments(name, arity);
    let mut source = String::from("model {\n");
    for (i, _) in names.iter().enumerate() {
        source.push_str(&format!("    let a{i} = sample(\"a{i}\", Flat())\n"));
    }
    let call: Vec<String> = (0..names.len()).map(|i| format!("a{i}")).collect();
    source.push_str(&format!(
        "    factor(\"f\", {name}({}))\n}}\n",
        call.join(", ")
    ));
    source
}

#[test]
fn every_function_matches_its_reference_values_and_gradient() {
    let reference = reference();
    // Each function of the language's scalar math; a missing one would be a missing test.
    let expected = [
        "log10",
        "log2",
        "expm1",
        "log1p",
        "erf",
        "erfc",
        "logit",
        "inv_logit",
        "log_inv_logit",
        "log1m_inv_logit",
        "lgamma",
        "digamma",
        "abs",
        "square",
        "cbrt",
        "pow",
        "fmin",
        "fmax",
        "hypot",
        "atan2",
        "lbeta",
        "lchoose",
    ];
    for name in expected {
        assert!(
            reference.contains_key(name),
            "no reference values for `{name}`"
        );
    }
    let mut failures = Vec::new();
    for (name, cases) in &reference {
        let cases = cases.as_array().expect("a list of cases");
        let arity = cases[0][0].as_array().expect("arguments").len();
        let source = model_for(name, arity);
        let model = common::model_from_text(&format!("{name}.bdl"), &source, &[]);
        let names = model.layout.coordinate_names();
        let mut density = model.log_density();
        for case in cases {
            let point: Vec<f64> = case[0]
                .as_array()
                .expect("arguments")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect();
            let want = case[1].as_f64().expect("a number");
            let mut gradient = vec![0.0; point.len()];
            let got = density
                .log_density_gradient(&point, &mut gradient)
                .expect("finite");
            // lgamma, digamma, erf and erfc come from series good to about 15 digits; the
            // others are within a few ulps of the correctly rounded value.
            if (got - want).abs() > 1e-13 * want.abs() {
                failures.push(format!("{name}{point:?} = {got}, reference {want}"));
            }
            let mut scratch = vec![0.0; point.len()];
            let problems =
                common::compare_with_finite_differences(&names, &point, &gradient, |p| {
                    density.log_density_gradient(p, &mut scratch).ok()
                });
            for problem in problems {
                failures.push(format!("{name}{point:?}: gradient {problem}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn functions_broadcast_a_vector_against_a_scalar() {
    // fmax([x, x + 1, x − 1], 0.5) summed; at x = 0.2 it is 0.5 + 1.2 + 0.5 with derivative 1.
    let source = r#"model {
    let x = sample("x", Flat())
    factor("f", fmax(stack([x, x + 1, x - 1]), 0.5))
}
"#;
    let model = common::model_from_text("broadcast.bdl", source, &[]);
    let mut density = model.log_density();
    let mut gradient = [0.0];
    let value = density.log_density_gradient(&[0.2], &mut gradient).unwrap();
    assert!((value - 2.2).abs() < 1e-15, "{value}");
    assert_eq!(gradient[0], 1.0);
    // pow of a vector by a scalar, and atan2 of a scalar against a vector.
    let source = r#"model {
    let x = sample("x", Flat())
    factor("f", pow(stack([x, 2 * x]), 2) + atan2(1, stack([x, x])))
}
"#;
    let model = common::model_from_text("broadcast2.bdl", source, &[]);
    let mut density = model.log_density();
    let value = density.log_density_gradient(&[0.5], &mut gradient).unwrap();
    let want = 0.25 + 1.0 + 2.0 * 1f64.atan2(0.5);
    assert!((value - want).abs() < 1e-14, "{value} vs {want}");
}

#[test]
fn step_is_zero_below_zero_and_one_elsewhere() {
    let source = r#"model {
    let x = sample("x", Flat())
    factor("f", step(stack([x, x - 1, x + 1])))
}
"#;
    let model = common::model_from_text("step.bdl", source, &[]);
    let mut density = model.log_density();
    let mut gradient = [0.0];
    // At x = 0: step(0) = 1, step(−1) = 0, step(1) = 1; the gradient is zero.
    let value = density.log_density_gradient(&[0.0], &mut gradient).unwrap();
    assert_eq!(value, 2.0);
    assert_eq!(gradient[0], 0.0);
}
