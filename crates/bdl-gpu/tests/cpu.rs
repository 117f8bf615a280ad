//! The CPU path against a naive loop (to 1e-12), and the shape and value errors of every
//! backend: wrong lengths and bad values are typed errors, never panics.

mod common;

use bdl_gpu::{cpu, Activation, Backend, GpuError, Layer, Mlp};
use common::{draws, everything, inputs, iris, linear, max_relative_difference, naive, sine};

fn check_against_naive(mlp: &Mlp, n_draws: usize, n_inputs: usize, seed: u64) {
    let draws = draws(mlp, n_draws, seed);
    let inputs = inputs(mlp, n_inputs, seed + 1);
    let actual = cpu::forward_batch(mlp, &draws, &inputs).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(actual.len(), n_draws * n_inputs * mlp.output_width());
    let expected = naive(mlp, &draws, &inputs);
    let difference = max_relative_difference(&actual, &expected);
    assert!(
        difference < 1e-12,
        "CPU path differs from the naive loop by {difference:e}"
    );
}

#[test]
fn cpu_path_matches_the_naive_loop() {
    check_against_naive(&sine(), 20, 300, 1);
    check_against_naive(&iris(Activation::Softmax), 15, 112, 2);
    check_against_naive(&iris(Activation::LogSoftmax), 15, 112, 3);
    check_against_naive(&everything(), 9, 41, 4);
    check_against_naive(&everything(), 1, 1, 5);
}

#[test]
fn softmax_rows_sum_to_one() {
    let mlp = iris(Activation::Softmax);
    let draws = draws(&mlp, 4, 6);
    let inputs = inputs(&mlp, 10, 7);
    let output =
        cpu::forward_batch(&mlp, &draws, &inputs).unwrap_or_else(|error| panic!("{error}"));
    for row in output.chunks(3) {
        let total: f64 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-14, "a softmax row sums to {total}");
        assert!(row.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}

#[test]
fn output_is_draw_major_then_input_then_feature() {
    // Draw d multiplies by d + 1 (W = [d + 1], b = [0]): output[d, n, 0] = (d + 1) x_n.
    let mlp = common::mlp(vec![linear(1, 1)]);
    let draws = [1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
    let inputs = [1.0, 10.0];
    let output =
        cpu::forward_batch(&mlp, &draws, &inputs).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(output, vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);
}

#[test]
fn networks_with_bad_layers_are_rejected() {
    assert_eq!(
        Mlp::new(vec![Layer::Activation(Activation::Relu)]),
        Err(GpuError::NoLinearLayer)
    );
    assert_eq!(Mlp::new(vec![]), Err(GpuError::NoLinearLayer));
    assert_eq!(
        Mlp::new(vec![linear(3, 0)]),
        Err(GpuError::ZeroWidth { layer: 0 })
    );
    assert_eq!(
        Mlp::new(vec![
            linear(3, 4),
            Layer::Activation(Activation::Tanh),
            linear(5, 2)
        ]),
        Err(GpuError::WidthMismatch {
            layer: 2,
            expected: 4,
            found: 5
        })
    );
    let overflow = Mlp::new(vec![linear(usize::MAX, 2)]);
    assert!(
        matches!(overflow, Err(GpuError::TooLarge { .. })),
        "{overflow:?}"
    );
}

#[test]
fn the_layout_counts_weights_and_biases() {
    let mlp = common::mlp(vec![
        linear(4, 100),
        Layer::Activation(Activation::Relu),
        Layer::Linear {
            input: 100,
            output: 3,
            bias: false,
        },
    ]);
    assert_eq!(mlp.n_weights(), 4 * 100 + 100 + 100 * 3);
    assert_eq!(
        (mlp.input_width(), mlp.output_width(), mlp.max_width()),
        (4, 3, 100)
    );
    assert_eq!(sine().n_weights(), 301);
    assert_eq!(iris(Activation::Softmax).n_weights(), 803);
}

/// Every backend this build can make: the CPU one and whatever `Backend::new()` finds.
fn backends() -> Vec<Backend> {
    vec![Backend::cpu(), Backend::new()]
}

#[test]
fn wrong_lengths_are_typed_errors() {
    let mlp = iris(Activation::LogSoftmax);
    let good_draws = draws(&mlp, 2, 8);
    let good_inputs = inputs(&mlp, 3, 9);
    for backend in backends() {
        let name = backend.backend_name().to_string();
        assert_eq!(
            backend.forward_batch(&mlp, &good_draws[1..], &good_inputs),
            Err(GpuError::DrawsLength {
                length: 2 * 803 - 1,
                n_weights: 803
            }),
            "{name}"
        );
        assert_eq!(
            backend.forward_batch(&mlp, &good_draws, &good_inputs[..5]),
            Err(GpuError::InputsLength {
                length: 5,
                input_width: 4
            }),
            "{name}"
        );
    }
}

#[test]
fn non_finite_values_are_typed_errors() {
    let mlp = sine();
    let mut bad_draws = draws(&mlp, 2, 10);
    bad_draws[400] = f64::NAN;
    let mut bad_inputs = inputs(&mlp, 3, 11);
    bad_inputs[2] = f64::INFINITY;
    let good_draws = draws(&mlp, 2, 10);
    let good_inputs = inputs(&mlp, 3, 11);
    for backend in backends() {
        assert_eq!(
            backend.forward_batch(&mlp, &bad_draws, &good_inputs),
            Err(GpuError::NonFinite {
                what: "draws",
                index: 400
            })
        );
        assert_eq!(
            backend.forward_batch(&mlp, &good_draws, &bad_inputs),
            Err(GpuError::NonFinite {
                what: "inputs",
                index: 2
            })
        );
    }
}

#[test]
fn empty_batches_give_empty_outputs() {
    let mlp = sine();
    let some_draws = draws(&mlp, 3, 12);
    let some_inputs = inputs(&mlp, 4, 13);
    for backend in backends() {
        assert_eq!(backend.forward_batch(&mlp, &[], &some_inputs), Ok(vec![]));
        assert_eq!(backend.forward_batch(&mlp, &some_draws, &[]), Ok(vec![]));
    }
}

#[test]
fn errors_read_as_sentences() {
    let message = GpuError::WidthMismatch {
        layer: 2,
        expected: 4,
        found: 5,
    }
    .to_string();
    assert_eq!(
        message,
        "layer 2 takes inputs of width 5, but the layers before it produce width 4"
    );
}

#[test]
fn the_backend_says_what_it_runs_on() {
    let cpu = Backend::cpu();
    assert_eq!(cpu.backend_name(), "cpu (f64)");
    assert!(!cpu.is_gpu());
    assert_eq!(cpu.fallback_reason(), None);
    let chosen = Backend::new();
    if chosen.is_gpu() {
        assert!(chosen.backend_name().starts_with("gpu (f32): "));
        assert_eq!(chosen.fallback_reason(), None);
    } else {
        assert_eq!(chosen.backend_name(), "cpu (f64; no GPU used)");
        assert!(chosen
            .fallback_reason()
            .is_some_and(|reason| !reason.is_empty()));
    }
    #[cfg(not(feature = "gpu"))]
    assert_eq!(
        chosen.fallback_reason(),
        Some("bdl was built without the `gpu` feature")
    );
}

#[test]
fn backends_can_be_shared_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Backend>();
    send_and_sync::<Mlp>();
    send_and_sync::<GpuError>();
}
