//! Priors per layer and per parameter in `lift`: the same network lifted with per-parameter
//! priors has exactly the log density of the same model written out by hand with one `sample`
//! per weight tensor (hierarchical per-layer scales, fan-in scaling, horseshoe and regularised
//! horseshoe shrinkage), and equal per-layer priors reduce to the one-prior-per-network form.

mod common;

use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;

/// Ten rows of three features and a real response.
fn data() -> String {
    let mut text = String::from("a,b,c,y\n");
    for row in 0..10 {
        let x = |k: usize| ((row * 7 + k * 3) % 11) as f64 / 5.0 - 1.0;
        text.push_str(&format!(
            "{},{},{},{}\n",
            x(0),
            x(1),
            x(2),
            x(0) - 0.5 * x(2)
        ));
    }
    text
}

/// A model on the data above with the given `network` declarations (may be empty) and body.
fn model(networks: &str, body: &str) -> bdl_runtime::model::Model {
    let source = format!(
        "data from \"rows.csv\" {{\n    X: matrix[N, 3] from [\"a\", \"b\", \"c\"]\n    y: vector[N]\n}}\n\n{networks}\n\nmodel {{\n{body}\n    plate(\"data\", N) {{\n        observe(\"y\", Normal(f, 0.5), y)\n    }}\n}}\n"
    );
    common::model_from_text("priors.bdl", &source, &[("rows.csv", &data())])
}

const NETWORK: &str = "network mlp = Sequential(Linear(3, 4), Tanh, Linear(4, 2))";

/// The forward pass of `NETWORK` written out by hand, over sites named as lifting names them;
/// the first of the two outputs is the regression's mean.
const BY_HAND_FORWARD: &str =
    "    let f = (tanh(X @ mlp_0_weight + mlp_0_bias) @ mlp_2_weight + mlp_2_bias)[:, 0]";

/// The log densities of two models, which must have the same layout, at a few random
/// positions on the unconstrained scale.
fn log_densities(
    left: &bdl_runtime::model::Model,
    right: &bdl_runtime::model::Model,
) -> Vec<(f64, f64)> {
    let names = |m: &bdl_runtime::model::Model| -> Vec<(String, Vec<usize>)> {
        m.layout
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.constrained_shape.clone()))
            .collect()
    };
    assert_eq!(names(left), names(right), "the two models' sites differ");
    let dim = left.layout.latent_dim();
    let mut points = stream_rng(5, 0);
    let mut left_density = left.log_density();
    let mut right_density = right.log_density();
    let mut gradient = vec![0.0; dim];
    (0..4)
        .map(|_| {
            let position: Vec<f64> = (0..dim)
                .map(|_| rand::Rng::random_range(&mut points, -1.5..1.5))
                .collect();
            let a = left_density
                .log_density_gradient(&position, &mut gradient)
                .expect("finite");
            let b = right_density
                .log_density_gradient(&position, &mut gradient)
                .expect("finite");
            (a, b)
        })
        .collect()
}

fn assert_same_density(lifted: &str, by_hand: &str) {
    let lifted = model(NETWORK, &format!("{lifted}\n    let f = net(X)[:, 0]"));
    let by_hand = model("", &format!("{by_hand}\n{BY_HAND_FORWARD}"));
    for (a, b) in log_densities(&lifted, &by_hand) {
        assert!(
            (a - b).abs() <= 1e-10 * (1.0 + a.abs()),
            "lifted {a} against by hand {b}"
        );
    }
}

#[test]
fn equal_per_layer_priors_reduce_to_one_prior_per_network() {
    let single = model(
        NETWORK,
        "    let net = lift(\"mlp\", mlp, Normal(0, 1))\n    let f = net(X)[:, 0]",
    );
    let per_layer = model(
        NETWORK,
        "    let net = lift(\"mlp\", mlp, weight_0 = Normal(0, 1), bias_0 = Normal(0, 1), weight_2 = Normal(0, 1), bias_2 = Normal(0, 1))\n    let f = net(X)[:, 0]",
    );
    for (a, b) in log_densities(&single, &per_layer) {
        assert_eq!(a.to_bits(), b.to_bits(), "{a} against {b}");
    }
}

#[test]
fn hierarchical_scale_per_layer_matches_the_model_by_hand() {
    assert_same_density(
        "    let s0 = sample(\"s0\", HalfNormal(1))\n    let s2 = sample(\"s2\", HalfNormal(1))\n    let net = lift(\"mlp\", mlp, Normal(0, 1), weight_0 = Normal(0, s0), weight_2 = Laplace(0.5, s2))",
        "    let s0 = sample(\"s0\", HalfNormal(1))\n    let s2 = sample(\"s2\", HalfNormal(1))\n    let mlp_0_weight = sample(\"mlp_0_weight\", Normal(0, s0), shape = [3, 4])\n    let mlp_0_bias = sample(\"mlp_0_bias\", Normal(0, 1), shape = [4])\n    let mlp_2_weight = sample(\"mlp_2_weight\", Laplace(0.5, s2), shape = [4, 2])\n    let mlp_2_bias = sample(\"mlp_2_bias\", Normal(0, 1), shape = [2])",
    );
}

#[test]
fn fan_in_scaling_divides_location_and_scale_by_the_root_of_the_fan_in() {
    // Fan-in 3 for the first layer and 4 for the second; biases are not rescaled.
    assert_same_density(
        "    let net = lift(\"mlp\", mlp, weight = StudentT(3, 0.2, 2), bias = Normal(0, 1), fan_in = true)",
        "    let mlp_0_weight = sample(\"mlp_0_weight\", StudentT(3, 0.2 / sqrt(3), 2 / sqrt(3)), shape = [3, 4])\n    let mlp_0_bias = sample(\"mlp_0_bias\", Normal(0, 1), shape = [4])\n    let mlp_2_weight = sample(\"mlp_2_weight\", StudentT(3, 0.1, 1), shape = [4, 2])\n    let mlp_2_bias = sample(\"mlp_2_bias\", Normal(0, 1), shape = [2])",
    );
}

#[test]
fn horseshoe_and_regularised_horseshoe_per_weight_match_the_model_by_hand() {
    // Horseshoe on the input layer (a global and a local scale per weight), the regularised
    // (Finnish) horseshoe on the output layer with slab scale 2.
    let scales = "    let tau0 = sample(\"tau0\", HalfCauchy(1))\n    let lambda0 = sample(\"lambda0\", HalfCauchy(1), shape = [3, 4])\n    let tau2 = sample(\"tau2\", HalfCauchy(0.1))\n    let lambda2 = sample(\"lambda2\", HalfCauchy(1), shape = [4, 2])\n    let c2 = sample(\"c2\", InverseGamma(2, 8))\n    let shrunk = sqrt(c2 * lambda2 ^ 2 / (c2 + tau2 ^ 2 * lambda2 ^ 2))";
    assert_same_density(
        &format!("{scales}\n    let net = lift(\"mlp\", mlp, Normal(0, 1), weight_0 = Normal(0, tau0 * lambda0), weight_2 = Normal(0, tau2 * shrunk))"),
        &format!("{scales}\n    let mlp_0_weight = sample(\"mlp_0_weight\", Normal(0, tau0 * lambda0))\n    let mlp_0_bias = sample(\"mlp_0_bias\", Normal(0, 1), shape = [4])\n    let mlp_2_weight = sample(\"mlp_2_weight\", Normal(0, tau2 * shrunk))\n    let mlp_2_bias = sample(\"mlp_2_bias\", Normal(0, 1), shape = [2])"),
    );
}

#[test]
fn a_multivariate_prior_covers_the_last_axis_of_each_weight_row() {
    // Each input's four outgoing weights share one correlated prior.
    let covariance =
        "[[1.0, 0.5, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.3], [0.0, 0.0, 0.3, 1.0]]";
    assert_same_density(
        &format!("    let net = lift(\"mlp\", mlp, Normal(0, 1), weight_0 = MultivariateNormal(zeros(4), covariance_matrix = {covariance}))"),
        &format!("    let mlp_0_weight = sample(\"mlp_0_weight\", MultivariateNormal(zeros(4), covariance_matrix = {covariance}), shape = [3])\n    let mlp_0_bias = sample(\"mlp_0_bias\", Normal(0, 1), shape = [4])\n    let mlp_2_weight = sample(\"mlp_2_weight\", Normal(0, 1), shape = [4, 2])\n    let mlp_2_bias = sample(\"mlp_2_bias\", Normal(0, 1), shape = [2])"),
    );
}
