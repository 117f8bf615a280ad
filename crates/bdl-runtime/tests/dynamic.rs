//! A model whose control flow reads a sampled value (`if w > 0` on a latent `w`) cannot be
//! replayed: the runtime must notice, interpret it afresh at every evaluation, and so follow the
//! branch the current point takes, with correct values and gradients on both sides.

mod common;

use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;

const SOURCE: &str = r#"data from "points.csv" {
    x: vector[N]
    y: vector[N]
}

fn slope(w) {
    if w > 0 {
        return 2 * w
    }
    return w
}

model {
    let w = sample("w", Normal(0, 1))
    let s = sample("s", HalfNormal(1))
    plate("data", N) {
        observe("y", Normal(slope(w) * x, s), y)
    }
}
"#;

const DATA: &str = "x,y\n0.5,1.0\n1.5,2.0\n-1.0,0.3\n";

/// The log density in closed form at unconstrained (w, log s): Normal(0, 1) and HalfNormal(1)
/// (density √(2/π) exp(−s²/2))
/// priors, the log-Jacobian log s of s = exp(log s), and the Normal likelihood.
fn exact_log_density(w: f64, log_s: f64) -> f64 {
    let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let s = log_s.exp();
    let prior_w = -0.5 * w * w - half_log_two_pi;
    let prior_s = std::f64::consts::LN_2 - 0.5 * s * s - half_log_two_pi + log_s;
    let slope = if w > 0.0 { 2.0 * w } else { w };
    let likelihood: f64 = [(0.5, 1.0), (1.5, 2.0), (-1.0, 0.3)]
        .iter()
        .map(|&(x, y): &(f64, f64)| {
            let z = (y - slope * x) / s;
            -0.5 * z * z - log_s - half_log_two_pi
        })
        .sum();
    prior_w + prior_s + likelihood
}

#[test]
fn control_flow_on_a_latent_is_dynamic_and_reinterpreted() {
    let model = common::model_from_text("dynamic.bdl", SOURCE, &[("points.csv", DATA)]);
    let dynamic = model.dynamic.as_ref().expect("the model is dynamic");
    assert!(
        dynamic.reason.contains("`if` condition"),
        "{}",
        dynamic.reason
    );
    assert!(!model.evaluator().replays());
    let mut density = model.log_density();
    assert!(!density.evaluator().replays());
    let names = model.layout.coordinate_names();
    // Alternate sides of w = 0 on one evaluator: a stale recording would keep the first branch.
    for position in [[0.7, -0.2], [-0.6, 0.3], [1.3, 0.1], [-1.1, -0.4]] {
        let mut gradient = [0.0; 2];
        let value = density
            .log_density_gradient(&position, &mut gradient)
            .unwrap();
        let want = exact_log_density(position[0], position[1]);
        assert!(
            (value - want).abs() <= 1e-12 * want.abs().max(1.0),
            "at {position:?}: {value} vs {want}"
        );
        let mut scratch = [0.0; 2];
        let problems =
            common::compare_with_finite_differences(&names, &position, &gradient, |point| {
                density.log_density_gradient(point, &mut scratch).ok()
            });
        assert!(problems.is_empty(), "at {position:?}: {problems:?}");
        // A brand-new evaluator agrees bit for bit.
        let mut fresh = model.evaluator();
        let evaluation = fresh
            .evaluate(&position, 1.0, 1.0, &mut stream_rng(0, 0))
            .unwrap();
        assert_eq!(evaluation.joint.total().to_bits(), value.to_bits());
        assert!(gradient
            .iter()
            .zip(fresh.gradient())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
