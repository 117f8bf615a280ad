//! Draws read their values from the position without running the model: for a model whose
//! output sites are all latent or param blocks, the constrained values of a draw come from the
//! blocks' bijectors alone (no pass over the data), bit-identical to what a run of the model
//! gives; models that need a run (deterministic sites, supports that move with other latents)
//! still get one.

mod common;

use bdl_autodiff::check::bits_equal;
use bdl_infer::rng::stream_rng;
use bdl_runtime::model::Model;
use rand::Rng as _;
use std::fmt::Write as _;

/// A CSV text of `rows` rows of `x` and `y = 0.5 + 2x + noise`, from a seeded generator.
fn regression_csv(rows: usize) -> String {
    let mut rng = stream_rng(11, 0);
    let mut text = String::from("x,y\n");
    for _ in 0..rows {
        let x: f64 = rng.random_range(-2.0..2.0);
        let noise: f64 = rng.random_range(-0.3..0.3);
        writeln!(text, "{x},{}", 0.5 + 2.0 * x + noise).expect("a string");
    }
    text
}

/// Checks `draws` random positions: the evaluator's values equal a fresh interpretation's bit
/// for bit; returns how many times the evaluator ran the model.
fn compare_with_interpretation(name: &str, model: &Model, draws: usize) -> usize {
    let mut evaluator = model.output_evaluator();
    let mut points = stream_rng(5, 0);
    for draw in 0..draws {
        let position: Vec<f64> = (0..model.layout.dim())
            .map(|_| points.random_range(-1.5..1.5))
            .collect();
        let values = evaluator
            .constrained(&position, &mut stream_rng(0, 0))
            .unwrap();
        let interpreted = model.constrained_values(&position).unwrap();
        let names = |list: &[(String, bdl_autodiff::Tensor)]| {
            list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&values), names(&interpreted), "{name} draw {draw}");
        for ((site, a), (_, b)) in values.iter().zip(&interpreted) {
            assert_eq!(a.shape(), b.shape(), "{name} {site}");
            assert!(
                bits_equal(a.data(), b.data()),
                "{name} draw {draw}: site {site} differs"
            );
        }
    }
    evaluator.model_runs()
}

#[test]
fn draws_of_a_large_data_model_never_run_the_model() {
    let source = r#"
data {
    x: vector[N]
    y: vector[N]
}
model {
    let w = sample("w", Normal(0, 1), shape = [2])
    let sigma = sample("sigma", HalfNormal(1))
    let shift = sample("shift", Uniform(-1, 3))
    let weights = sample("weights", Dirichlet([1.0, 2.0, 3.0]))
    plate("data", N, subsample = 64) as batch {
        observe("y", Normal(w[0] + w[1] * x[batch] + 0 * shift + 0 * weights[0], sigma), y[batch])
    }
}
"#;
    let csv = regression_csv(50_000);
    let model = common::model_from_text("large.bdl", source, &[("large.csv", &csv)]);
    assert_eq!(model.draws_need_run, None);
    let runs = compare_with_interpretation("large", &model, 25);
    assert_eq!(runs, 0, "a draw ran the model over the data");
}

#[test]
fn draws_of_every_bundled_model_match_a_run_of_the_model() {
    let mut direct = 0;
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        let runs = compare_with_interpretation(&name, &model, 3);
        match &model.draws_need_run {
            None => {
                assert_eq!(runs, 0, "{name}: a draw ran the model");
                direct += 1;
            }
            Some(reason) => assert!(runs > 0, "{name} needs a run ({reason}) but had none"),
        }
    }
    // The networks and regressions among the bundled models (all but those with
    // deterministic sites) take the direct path.
    assert!(
        direct >= 8,
        "only {direct} bundled models read draws directly"
    );
}

#[test]
fn deterministic_sites_and_moving_supports_still_run_the_model() {
    let csv = regression_csv(200);
    let deterministic = r#"
data {
    x: vector[N]
    y: vector[N]
}
model {
    let w = sample("w", Normal(0, 1), shape = [2])
    let fitted = deterministic("fitted", w[0] + w[1] * x)
    plate("data", N) {
        observe("y", Normal(fitted, 1), y)
    }
}
"#;
    let model = common::model_from_text("det.bdl", deterministic, &[("det.csv", &csv)]);
    let reason = model.draws_need_run.clone().expect("a reason");
    assert!(reason.contains("fitted"), "{reason}");
    assert!(compare_with_interpretation("det", &model, 3) > 0);

    let moving = r#"
data {
    x: vector[N]
    y: vector[N]
}
model {
    let top = sample("top", HalfNormal(1))
    let inner = sample("inner", Uniform(0, top))
    plate("data", N) {
        observe("y", Normal(inner * x, 1), y)
    }
}
"#;
    let model = common::model_from_text("moving.bdl", moving, &[("moving.csv", &csv)]);
    let reason = model.draws_need_run.clone().expect("a reason");
    assert!(reason.contains("inner"), "{reason}");
    assert!(compare_with_interpretation("moving", &model, 3) > 0);
}
