//! The model's first run, which lays out the flat vector, must not reject a valid model because
//! the model is invalid at the origin of unconstrained space: it starts again from prior draws.

mod common;

use bdl_infer::density::LogDensity;

/// `z` near 5 makes `Exponential(z - 0.5)` valid; at the origin (`z = 0`) its rate is negative.
const SHIFTED: &str = r#"
model {
    let z = sample("z", Normal(5, 0.1))
    let y = sample("y", Exponential(z - 0.5))
}
"#;

#[test]
fn a_model_invalid_at_the_origin_compiles_from_a_prior_draw() {
    let model = common::model_from_text("shifted.bdl", SHIFTED, &[]);
    assert_eq!(model.layout.dim(), 2);
    let start = model.layout.initial_position();
    assert!(
        start[0] > 0.5,
        "the first latent starts at a prior draw of Normal(5, 0.1), got {start:?}"
    );
    let mut density = model.log_density();
    let mut gradient = vec![0.0; start.len()];
    let value = density
        .log_density_gradient(&start, &mut gradient)
        .expect("the starting point is valid");
    assert!(value.is_finite() && gradient.iter().all(|g| g.is_finite()));
}

#[test]
fn a_model_valid_at_the_origin_still_starts_there() {
    let model = common::model_from_text(
        "plain.bdl",
        "model {\n    let z = sample(\"z\", Normal(5, 0.1))\n    let s = sample(\"s\", HalfNormal(1))\n}\n",
        &[],
    );
    assert_eq!(model.layout.initial_position(), vec![0.0, 0.0]);
}
