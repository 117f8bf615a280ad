//! Networks, seeded draws and a naive forward pass shared by the tests: the naive pass is written
//! independently of the crate (plain loops, the textbook formulas) so that it can judge both
//! backends.
#![allow(dead_code)] // Each test file uses a different part of this module.

use bdl_gpu::{Activation, Layer, Mlp};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// `Linear(input, output)` with a bias.
pub fn linear(input: usize, output: usize) -> Layer {
    Layer::Linear {
        input,
        output,
        bias: true,
    }
}

/// Builds a network that the test knows to be valid.
pub fn mlp(layers: Vec<Layer>) -> Mlp {
    Mlp::new(layers).unwrap_or_else(|error| panic!("test network rejected: {error}"))
}

/// The sine regression network of the bundled models: 1-100-1 with ReLU.
pub fn sine() -> Mlp {
    mlp(vec![
        linear(1, 100),
        Layer::Activation(Activation::Relu),
        linear(100, 1),
    ])
}

/// The iris classifier of the bundled models: 4-100-3 with ReLU, ending in `last`.
pub fn iris(last: Activation) -> Mlp {
    mlp(vec![
        linear(4, 100),
        Layer::Activation(Activation::Relu),
        linear(100, 3),
        Layer::Activation(last),
    ])
}

/// Every activation, a leading activation, two activations in a row, a layer without a bias and
/// widths that are not multiples of 16 (with inner dimensions above 16).
pub fn everything() -> Mlp {
    mlp(vec![
        Layer::Activation(Activation::Tanh),
        linear(3, 37),
        Layer::Activation(Activation::Tanh),
        Layer::Activation(Activation::Softplus),
        Layer::Linear {
            input: 37,
            output: 21,
            bias: false,
        },
        Layer::Activation(Activation::Sigmoid),
        linear(21, 18),
        Layer::Activation(Activation::Softmax),
        linear(18, 5),
        Layer::Activation(Activation::Relu),
        linear(5, 4),
        Layer::Activation(Activation::LogSoftmax),
    ])
}

/// `n_draws` draws of every weight from Normal(0, 1): the networks' prior, so the draws look like
/// what a lifted network meets before it sees data.
pub fn draws(mlp: &Mlp, n_draws: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap_or_else(|error| panic!("{error}"));
    (0..n_draws * mlp.n_weights())
        .map(|_| normal.sample(&mut rng))
        .collect()
}

/// `n_inputs` rows uniform on [-3, 3].
pub fn inputs(mlp: &Mlp, n_inputs: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let uniform = Uniform::new(-3.0, 3.0).unwrap_or_else(|error| panic!("{error}"));
    (0..n_inputs * mlp.input_width())
        .map(|_| uniform.sample(&mut rng))
        .collect()
}

/// The forward pass with plain loops, one draw and one row at a time.
pub fn naive(mlp: &Mlp, draws: &[f64], inputs: &[f64]) -> Vec<f64> {
    let n_weights = mlp.n_weights();
    let mut output = Vec::new();
    for draw in draws.chunks(n_weights) {
        for row in inputs.chunks(mlp.input_width()) {
            let mut values = row.to_vec();
            let mut offset = 0;
            for layer in mlp.layers() {
                match *layer {
                    Layer::Linear {
                        input,
                        output: width,
                        bias,
                    } => {
                        let mut next = vec![0.0; width];
                        for (o, slot) in next.iter_mut().enumerate() {
                            let mut sum = 0.0;
                            for (i, value) in values.iter().enumerate() {
                                sum += value * draw[offset + i * width + o];
                            }
                            *slot = sum;
                        }
                        offset += input * width;
                        if bias {
                            for (o, slot) in next.iter_mut().enumerate() {
                                *slot += draw[offset + o];
                            }
                            offset += width;
                        }
                        values = next;
                    }
                    Layer::Activation(activation) => values = activate(activation, &values),
                }
            }
            output.extend(values);
        }
    }
    output
}

fn activate(activation: Activation, values: &[f64]) -> Vec<f64> {
    match activation {
        Activation::Relu => values
            .iter()
            .map(|x| if *x > 0.0 { *x } else { 0.0 })
            .collect(),
        Activation::Tanh => values.iter().map(|x| x.tanh()).collect(),
        Activation::Sigmoid => values.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
        Activation::Softplus => values.iter().map(|x| (1.0 + x.exp()).ln()).collect(),
        Activation::Softmax => {
            let total: f64 = values.iter().map(|x| x.exp()).sum();
            values.iter().map(|x| x.exp() / total).collect()
        }
        Activation::LogSoftmax => {
            let total: f64 = values.iter().map(|x| x.exp()).sum();
            values.iter().map(|x| x - total.ln()).collect()
        }
    }
}

/// The largest |a − b| / max(1, |b|) over two equally long vectors.
pub fn max_relative_difference(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max)
}
