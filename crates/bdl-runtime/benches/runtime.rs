//! The cost of one log density with its gradient, as HMC and NUTS ask for it, on two bundled
//! models: `eight_schools` (10 coordinates, 8 data points) and `sine_bnn` (a 1-100-1 network,
//! 302 coordinates, 500 data points). Each is timed in the two modes of the runtime's evaluator:
//!
//! - `replay`: the model was recorded once; an evaluation sets the inputs, replays the tape's
//!   kernels into their buffers and runs the backward pass;
//! - `retrace`: every evaluation interprets the program afresh under the effect handlers, building
//!   a new tape (what a model whose control flow reads sampled values costs).
//!
//! The point is the one `scripts/numpyro_log_density.py` fixes, and the log density there must
//! equal NumPyro's (checked before timing), so that `jax_runtime.py` next to this file times the
//! same function of the same point in JAX. That script runs this benchmark first and prints both
//! side by side (see docs/performance.md).
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use bdl_diagnostics::{render_all, SourceMap};
use bdl_infer::density::LogDensity;
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;
use std::hint::black_box;

/// The NumPyro reference point and value of every bundled model.
const REFERENCE: &str = include_str!("../tests/data/numpyro_log_density.json");

/// A bundled model with its data files, compiled.
fn model(name: &str, source: &str, data_files: &[(&str, &str)]) -> Model {
    let mut sources = SourceMap::new();
    let compiled = pipeline::compile(&mut sources, name, source.as_bytes())
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    let files: Vec<DataFile> = data_files
        .iter()
        .map(|(file_name, text)| {
            DataFile::from_text(*file_name, *text, sources.add(*file_name, *text))
        })
        .collect();
    let observed = pipeline::observed_only(&compiled.program);
    let data = data::load(&compiled.program, &files, Completeness::All, &observed)
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    Model::new(compiled.program, data, 1).unwrap()
}

/// The reference point of `name` as a flat latent vector, and NumPyro's log density there.
fn reference_point(model: &Model, name: &str) -> (Vec<f64>, f64) {
    let reference: Value = serde_json::from_str(REFERENCE).unwrap();
    let expected = &reference["models"][name];
    let mut position = vec![0.0; model.layout.latent_dim()];
    for site in expected["sites"].as_array().unwrap() {
        let entry =
            &model.layout.entries[model.layout.find(site["name"].as_str().unwrap()).unwrap()];
        let values: Vec<f64> = site["unconstrained"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        position[entry.offset..entry.offset + entry.len()].copy_from_slice(&values);
    }
    (position, expected["log_density"].as_f64().unwrap())
}

fn bench_model(criterion: &mut Criterion, name: &str, model: &Model) {
    let (position, numpyro) = reference_point(model, name);
    let mut group = criterion.benchmark_group(format!("runtime_{name}"));
    for (mode, replay) in [("replay", true), ("retrace", false)] {
        let mut density = model.log_density();
        density.evaluator().set_replay(replay);
        assert_eq!(density.evaluator().replays(), replay);
        let mut gradient = vec![0.0; position.len()];
        let value = density
            .log_density_gradient(&position, &mut gradient)
            .unwrap();
        assert!(
            (value - numpyro).abs() < 1e-10 * numpyro.abs(),
            "{name}: {value} vs NumPyro's {numpyro}"
        );
        group.bench_function(mode, |bencher| {
            bencher.iter(|| {
                let value = density
                    .log_density_gradient(black_box(&position), &mut gradient)
                    .unwrap();
                black_box((value, gradient[0]))
            });
        });
    }
    group.finish();
}

fn runtime(criterion: &mut Criterion) {
    let eight_schools = model(
        "eight_schools.bdl",
        include_str!("../../../models/eight_schools.bdl"),
        &[(
            "data/eight_schools.json",
            include_str!("../../../models/data/eight_schools.json"),
        )],
    );
    bench_model(criterion, "eight_schools", &eight_schools);
    let sine_bnn = model(
        "sine_bnn.bdl",
        include_str!("../../../models/sine_bnn.bdl"),
        &[(
            "data/sine.csv",
            include_str!("../../../models/data/sine.csv"),
        )],
    );
    bench_model(criterion, "sine_bnn", &sine_bnn);
}

criterion_group!(benches, runtime);
criterion_main!(benches);
