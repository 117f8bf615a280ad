//! Networks beyond `Linear`: the weight sites lifting a convolutional network creates (names and
//! PyTorch's shapes), the gradient of a model through every layer against finite differences,
//! and dropout's two meanings — the identity in the deterministic density NUTS and HMC use, a
//! fresh mask at every stochastic evaluation (SVI, optimisers), replayed bit for bit.

mod common;

use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;

/// Twelve rows of four features and a class in 0..3.
fn data() -> String {
    let mut text = String::from("a,b,c,d,y\n");
    for row in 0..12 {
        let x = |k: usize| ((row * 7 + k * 3) % 11) as f64 / 5.0 - 1.0;
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            x(0),
            x(1),
            x(2),
            x(3),
            row % 3
        ));
    }
    text
}

fn model(network: &str) -> bdl_runtime::model::Model {
    let source = format!(
        "data from \"rows.csv\" {{\n    X: matrix[N, 4] from [\"a\", \"b\", \"c\", \"d\"]\n    y: int<lower=0, upper=2>[N] from \"y\"\n}}\n\nnetwork net = {network}\n\nmodel {{\n    let f = lift(\"net\", net, Normal(0, 1))\n    plate(\"data\", N) {{\n        observe(\"y\", Categorical(logits = f(X)), y)\n    }}\n}}\n"
    );
    common::model_from_text("layers.bdl", &source, &[("rows.csv", &data())])
}

/// Every layer with weights or a setting, in one network.
const EVERY_LAYER: &str = "Sequential(Unflatten(shape = [1, 2, 2]), Conv2d(1, 3, 2, padding = 1), GELU, MaxPool2d(2, stride = 1), Residual(Sequential(Conv2d(3, 3, 1), LeakyReLU(0.1))), BatchNorm2d(3), AvgPool2d(1), Flatten, Linear(12, 5), LayerNorm(5), SiLU, ELU(0.5), Tanh, Linear(5, 3))";

#[test]
fn lifting_names_every_weight_with_pytorch_shapes() {
    let model = model(EVERY_LAYER);
    let shapes: Vec<(String, Vec<usize>)> = model
        .layout
        .entries
        .iter()
        .map(|entry| (entry.name.clone(), entry.constrained_shape.clone()))
        .collect();
    let expected: Vec<(&str, Vec<usize>)> = vec![
        ("net_1_weight", vec![3, 1, 2, 2]),
        ("net_1_bias", vec![3]),
        ("net_4_0_weight", vec![3, 3, 1, 1]),
        ("net_4_0_bias", vec![3]),
        ("net_5_weight", vec![3]),
        ("net_5_bias", vec![3]),
        ("net_8_weight", vec![12, 5]),
        ("net_8_bias", vec![5]),
        ("net_9_weight", vec![5]),
        ("net_9_bias", vec![5]),
        ("net_13_weight", vec![5, 3]),
        ("net_13_bias", vec![3]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .into_iter()
        .map(|(name, shape)| (name.to_string(), shape))
        .collect();
    assert_eq!(shapes, expected);
}

#[test]
fn log_density_gradient_through_every_layer_matches_finite_differences() {
    let model = model(EVERY_LAYER);
    let dim = model.layout.latent_dim();
    let mut points = stream_rng(11, 0);
    let position: Vec<f64> = (0..dim)
        .map(|_| rand::Rng::random_range(&mut points, -1.0..1.0))
        .collect();
    let mut density = model.log_density();
    let mut gradient = vec![0.0; dim];
    density
        .log_density_gradient(&position, &mut gradient)
        .expect("the density is finite");
    let names: Vec<String> = (0..dim).map(|k| format!("coordinate {k}")).collect();
    let mut probe = model.log_density();
    let mut scratch = vec![0.0; dim];
    let problems = common::compare_with_finite_differences(&names, &position, &gradient, |p| {
        probe.log_density_gradient(p, &mut scratch).ok()
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn dropout_is_the_identity_in_the_density_and_random_in_stochastic_evaluations() {
    let with = model("Sequential(Linear(4, 16), ReLU, Dropout(0.5), Linear(16, 3))");
    let without = model("Sequential(Linear(4, 16), ReLU, Linear(16, 3))");
    let dim = with.layout.latent_dim();
    assert_eq!(dim, without.layout.latent_dim());
    let position: Vec<f64> = (0..dim)
        .map(|k| ((k * 37 % 17) as f64) / 10.0 - 0.8)
        .collect();
    let mut gradient = vec![0.0; dim];
    let a = with
        .log_density()
        .log_density_gradient(&position, &mut gradient)
        .unwrap();
    let b = without
        .log_density()
        .log_density_gradient(&position, &mut gradient)
        .unwrap();
    assert_eq!(
        a.to_bits(),
        b.to_bits(),
        "dropout must be the identity under NUTS"
    );

    // A stochastic evaluator draws a new mask each time: the objective changes between two
    // evaluations at one position, and a replayed evaluator agrees bit for bit with one that
    // interprets afresh from the same stream.
    let mut replaying = with.evaluator();
    let mut fresh = with.evaluator();
    fresh.set_replay(false);
    let mut rng_a = stream_rng(5, 0);
    let mut rng_b = stream_rng(5, 0);
    let mut objectives = Vec::new();
    for _ in 0..3 {
        let x = replaying.evaluate(&position, 1.0, 1.0, &mut rng_a).unwrap();
        let y = fresh.evaluate(&position, 1.0, 1.0, &mut rng_b).unwrap();
        assert_eq!(x.objective.to_bits(), y.objective.to_bits());
        objectives.push(x.objective);
    }
    assert!(
        objectives[0] != objectives[1] && objectives[1] != objectives[2],
        "masks must be redrawn: {objectives:?}"
    );
}
