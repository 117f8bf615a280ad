//! Stan's `log_mix(weights, lp1, …)` in its three forms (a scalar θ with two log-densities, K
//! weights with K log-densities, K weights with a tensor of K log-densities): values against
//! scipy's `logsumexp` (`scripts/numpyro_mixture.py` writes `tests/data/log_mix_reference.json`)
//! and gradients with respect to every argument against six-point finite differences, each run
//! as the log density `factor("f", log_mix(...))` of a model with flat priors on the arguments.

mod common;

use bdl_infer::density::LogDensity;
use serde_json::Value;

fn source(form: &str, count: usize) -> String {
    let mut text = String::from("model {\n");
    for i in 0..count {
        text.push_str(&format!("    let a{i} = sample(\"a{i}\", Flat())\n"));
    }
    let names: Vec<String> = (0..count).map(|i| format!("a{i}")).collect();
    let call = match form {
        "theta" => format!("log_mix({})", names.join(", ")),
        "weights" => {
            let k = count / 2;
            format!(
                "log_mix(stack([{}]), {})",
                names[..k].join(", "),
                names[k..].join(", ")
            )
        }
        _ => {
            let k = count / 2;
            format!(
                "log_mix(stack([{}]), stack([{}]))",
                names[..k].join(", "),
                names[k..].join(", ")
            )
        }
    };
    text.push_str(&format!("    factor(\"f\", {call})\n}}\n"));
    text
}

#[test]
fn log_mix_matches_scipy_and_finite_differences() {
    let reference: Value =
        serde_json::from_str(include_str!("data/log_mix_reference.json")).expect("JSON");
    let cases = reference["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    let mut failures = Vec::new();
    for case in cases {
        let form = case["form"].as_str().expect("a form");
        let point: Vec<f64> = case["arguments"]
            .as_array()
            .expect("arguments")
            .iter()
            .map(|v| v.as_f64().expect("a number"))
            .collect();
        let want = case["value"].as_f64().expect("a number");
        let model = common::model_from_text("log_mix.bdl", &source(form, point.len()), &[]);
        let names = model.layout.coordinate_names();
        let mut density = model.log_density();
        let mut gradient = vec![0.0; point.len()];
        let got = density
            .log_density_gradient(&point, &mut gradient)
            .expect("finite");
        if (got - want).abs() > 1e-13 * (1.0 + want.abs()) {
            failures.push(format!("{form}{point:?} = {got}, scipy {want}"));
        }
        let mut scratch = vec![0.0; point.len()];
        for problem in common::compare_with_finite_differences(&names, &point, &gradient, |p| {
            density.log_density_gradient(p, &mut scratch).ok()
        }) {
            failures.push(format!("{form}{point:?}: gradient {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn log_mix_broadcasts_the_log_densities_over_rows() {
    // One θ and two log-densities of three rows each: three mixtures, summed by the factor.
    let text = r#"model {
    let t = sample("t", Flat())
    factor("f", log_mix(t, [-1.0, -2.0, -3.0], -0.5))
}
"#;
    let model = common::model_from_text("rows.bdl", text, &[]);
    let mut density = model.log_density();
    let mut gradient = [0.0];
    let got = density
        .log_density_gradient(&[0.25], &mut gradient)
        .unwrap();
    let want: f64 = [-1.0_f64, -2.0, -3.0]
        .iter()
        .map(|lp| (0.25 * lp.exp() + 0.75 * (-0.5_f64).exp()).ln())
        .sum();
    assert!((got - want).abs() < 1e-13, "{got} against {want}");
}

#[test]
fn a_wrong_number_of_weights_is_an_error_before_running() {
    let text = r#"model {
    let t = sample("t", Flat())
    factor("f", log_mix([0.2, 0.3, 0.5], t, t))
}
"#;
    let mut sources = bdl_diagnostics::SourceMap::new();
    let Err(diagnostics) =
        bdl_runtime::pipeline::compile(&mut sources, "count.bdl", text.as_bytes())
    else {
        panic!("three weights for two log-densities compiled");
    };
    assert!(
        diagnostics.iter().any(|d| d.code == "E0213"),
        "{diagnostics:?}"
    );
}
