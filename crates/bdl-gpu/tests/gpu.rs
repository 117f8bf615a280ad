//! The GPU path (f32) against the CPU path (f64), built only with the `gpu` feature. Without a
//! usable adapter each test prints why and returns: that is the one skip this crate allows.
//! Software adapters (lavapipe, llvmpipe) are accepted here, so machines without a GPU but with
//! such a driver still run the shaders.
#![cfg(feature = "gpu")]
#![allow(clippy::print_stderr)] // The skip note and the measured errors go to the test log.

mod common;

use bdl_gpu::{cpu, Activation, Backend, BackendSettings, GpuError, Mlp};
use common::{draws, everything, inputs, iris, sine};

/// The tolerance, |gpu − cpu| ≤ TOLERANCE · max(1, |cpu|). f32's unit roundoff is 6e-8; a dot
/// product of length K ≤ 100 rounds to within K · 6e-8 = 6e-6 of the sum of its terms'
/// magnitudes, which for these unit-normal weights is at most about ten times the result's
/// scale, and the error passes through two to five layers: 1e-4 covers that bound with room.
const TOLERANCE: f64 = 1e-4;

fn gpu_backend(settings: BackendSettings) -> Option<Backend> {
    let backend = Backend::with_settings(&BackendSettings {
        allow_software_adapter: true,
        ..settings
    });
    if backend.is_gpu() {
        Some(backend)
    } else {
        eprintln!(
            "note: GPU test skipped, no usable wgpu adapter: {}",
            backend.fallback_reason().unwrap_or("unknown reason")
        );
        None
    }
}

/// Runs both paths and returns (max |g − c| / max(1, |c|), max |g − c| / max(|c|, 1e-3)).
fn compare(backend: &Backend, mlp: &Mlp, n_draws: usize, n_inputs: usize, seed: u64) -> (f64, f64) {
    let draws = draws(mlp, n_draws, seed);
    let inputs = inputs(mlp, n_inputs, seed + 1);
    let on_gpu = backend
        .forward_batch(mlp, &draws, &inputs)
        .unwrap_or_else(|error| panic!("{error}"));
    let on_cpu = cpu::forward_batch(mlp, &draws, &inputs).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(on_gpu.len(), on_cpu.len());
    let mut scaled: f64 = 0.0;
    let mut relative: f64 = 0.0;
    for (index, (g, c)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        let error = (g - c).abs();
        assert!(
            error <= TOLERANCE * c.abs().max(1.0),
            "output {index}: gpu {g} against cpu {c}"
        );
        scaled = scaled.max(error / c.abs().max(1.0));
        relative = relative.max(error / c.abs().max(1e-3));
    }
    (scaled, relative)
}

#[test]
fn gpu_matches_cpu() {
    let Some(backend) = gpu_backend(BackendSettings::default()) else {
        return;
    };
    eprintln!("backend: {}", backend.backend_name());
    let cases: [(&str, Mlp, usize, usize); 5] = [
        ("sine 1-100-1", sine(), 200, 300),
        ("iris 4-100-3 softmax", iris(Activation::Softmax), 100, 112),
        (
            "iris 4-100-3 log-softmax",
            iris(Activation::LogSoftmax),
            100,
            112,
        ),
        ("every activation", everything(), 37, 53),
        ("one draw, one input", everything(), 1, 1),
    ];
    for (seed, (name, mlp, n_draws, n_inputs)) in cases.into_iter().enumerate() {
        let (scaled, relative) = compare(&backend, &mlp, n_draws, n_inputs, 100 + seed as u64);
        eprintln!(
            "{name}: max |gpu - cpu| / max(1, |cpu|) = {scaled:.2e}, \
             max |gpu - cpu| / max(1e-3, |cpu|) = {relative:.2e}"
        );
    }
}

#[test]
fn chunked_batches_match_cpu() {
    // The budget is cut in rows of the widest layer and then in draws. At 4 KiB the sine
    // network (rows of 400 bytes) runs 10 inputs at a time, or with 5 inputs 2 draws at a time;
    // one draw of the iris network (3212 bytes) fits, two do not.
    let Some(small) = gpu_backend(BackendSettings {
        max_buffer_bytes: 4096,
        ..BackendSettings::default()
    }) else {
        return;
    };
    compare(&small, &sine(), 5, 23, 200);
    compare(&small, &sine(), 5, 5, 201);
    compare(&small, &iris(Activation::Softmax), 3, 4, 202);
    // At 8 KiB the network with every activation (rows of 148 bytes, draws of 5760) runs 55
    // inputs at a time, or with 20 inputs 2 draws at a time.
    let Some(medium) = gpu_backend(BackendSettings {
        max_buffer_bytes: 8192,
        ..BackendSettings::default()
    }) else {
        return;
    };
    compare(&medium, &everything(), 3, 120, 203);
    compare(&medium, &everything(), 7, 20, 204);
}

#[test]
fn bad_values_and_sizes_are_typed_errors() {
    let Some(backend) = gpu_backend(BackendSettings::default()) else {
        return;
    };
    let mlp = sine();
    let mut bad_draws = draws(&mlp, 2, 300);
    bad_draws[310] = 1e300;
    let good_inputs = inputs(&mlp, 3, 301);
    assert_eq!(
        backend.forward_batch(&mlp, &bad_draws, &good_inputs),
        Err(GpuError::OutOfF32Range {
            what: "draws",
            index: 310
        })
    );
    // Non-finite values are found while the GPU path converts to f32.
    let mut nan_inputs = good_inputs.clone();
    nan_inputs[1] = f64::NAN;
    assert_eq!(
        backend.forward_batch(&mlp, &draws(&mlp, 2, 300), &nan_inputs),
        Err(GpuError::NonFinite {
            what: "inputs",
            index: 1
        })
    );
    // The budget cannot hold one draw of the iris network (3212 bytes).
    let small = gpu_backend(BackendSettings {
        max_buffer_bytes: 1024,
        ..BackendSettings::default()
    });
    if let Some(small) = small {
        let mlp = iris(Activation::Softmax);
        let result = small.forward_batch(&mlp, &draws(&mlp, 1, 302), &inputs(&mlp, 1, 303));
        assert!(
            matches!(result, Err(GpuError::TooLarge { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn software_adapters_are_refused_by_default() {
    let backend = Backend::new();
    if backend.is_gpu() {
        assert!(
            !backend.backend_name().contains("Cpu)"),
            "{}",
            backend.backend_name()
        );
    } else {
        eprintln!(
            "note: Backend::new() fell back to the CPU: {}",
            backend.fallback_reason().unwrap_or("unknown reason")
        );
    }
}
