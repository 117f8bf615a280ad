//! `factor` and the `mask` of `observe`, against the models they stand for:
//!
//! - a Normal likelihood written as a `factor` gives the log density and gradient of the same
//!   likelihood written with `observe`, to rounding, and NUTS on the factor model reproduces the
//!   conjugate Gaussian posterior within four Monte Carlo standard errors;
//! - a regression with some responses masked out has the log density and gradient of the same
//!   regression fitted to the observed rows only;
//! - a factor shows in the trace as its own kind of site.

mod common;

use bdl_diagnostics::{render_all, SourceMap};
use bdl_infer::density::LogDensity;
use bdl_infer::diagnostics::{mcse_mean, mcse_sd, rhat};
use bdl_infer::mcmc::{sample, McmcSettings};
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use std::sync::atomic::AtomicBool;

const POINTS: &str = "x,y\n0.5,1.0\n1.5,2.0\n-1.0,0.3\n2.0,2.9\n";

const WITH_OBSERVE: &str = r#"data from "points.csv" {
    x: vector[N]
    y: vector[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    let s = sample("s", HalfNormal(2))
    plate("data", N) {
        observe("y", Normal(b + w * x, s), y)
    }
}
"#;

// The same likelihood written by hand: log N(y | mu, s) = -z²/2 - log s - log(2π)/2.
const WITH_FACTOR: &str = r#"data from "points.csv" {
    x: vector[N]
    y: vector[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    let s = sample("s", HalfNormal(2))
    plate("data", N) {
        let z = (y - (b + w * x)) / s
        factor("y", -0.5 * z ** 2 - log(s) - 0.9189385332046727)
    }
}
"#;

/// Log density and gradient of two models at the same points agree to rounding, and the
/// gradient of the first agrees with finite differences.
fn assert_same_density(first: &str, second: &str, data: &[(&str, &str)], points: &[Vec<f64>]) {
    let a = common::model_from_text("first.bdl", first, data);
    let b = common::model_from_text("second.bdl", second, data);
    let names = a.layout.coordinate_names();
    assert_eq!(names, b.layout.coordinate_names());
    let mut density_a = a.log_density();
    let mut density_b = b.log_density();
    let dim = density_a.dim();
    for position in points {
        let mut gradient_a = vec![0.0; dim];
        let mut gradient_b = vec![0.0; dim];
        let value_a = density_a
            .log_density_gradient(position, &mut gradient_a)
            .unwrap();
        let value_b = density_b
            .log_density_gradient(position, &mut gradient_b)
            .unwrap();
        assert!(
            (value_a - value_b).abs() <= 1e-12 * value_a.abs().max(1.0),
            "at {position:?}: {value_a} vs {value_b}"
        );
        for (k, (ga, gb)) in gradient_a.iter().zip(&gradient_b).enumerate() {
            assert!(
                (ga - gb).abs() <= 1e-12 * ga.abs().max(1.0),
                "at {position:?}, d/d{}: {ga} vs {gb}",
                names[k]
            );
        }
        let mut scratch = vec![0.0; dim];
        let problems =
            common::compare_with_finite_differences(&names, position, &gradient_b, |point| {
                density_b.log_density_gradient(point, &mut scratch).ok()
            });
        assert!(problems.is_empty(), "at {position:?}: {problems:?}");
    }
}

#[test]
fn a_factor_equals_the_observe_it_writes_out() {
    let points = vec![
        vec![0.0, 0.0, 0.0],
        vec![0.3, 1.1, -0.4],
        vec![-1.2, 0.7, 0.9],
        vec![2.0, -0.5, -1.3],
    ];
    assert_same_density(
        WITH_OBSERVE,
        WITH_FACTOR,
        &[("points.csv", POINTS)],
        &points,
    );
}

#[test]
fn a_factor_outside_plates_is_summed() {
    // One factor over the whole vector, outside any plate, sums its elements.
    let summed = r#"data from "points.csv" {
    x: vector[N]
    y: vector[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    let s = sample("s", HalfNormal(2))
    let z = (y - (b + w * x)) / s
    factor("y", sum(-0.5 * z ** 2 - log(s) - 0.9189385332046727))
}
"#;
    assert_same_density(
        WITH_OBSERVE,
        summed,
        &[("points.csv", POINTS)],
        &[vec![0.4, -0.3, 0.2], vec![-0.8, 1.5, -0.6]],
    );
}

#[test]
fn a_factor_is_its_own_kind_of_site_in_the_trace() {
    let model = common::model_from_text("factor.bdl", WITH_FACTOR, &[("points.csv", POINTS)]);
    let trace = model.render_trace(&[0.0, 0.0, 0.0]).unwrap();
    let line = trace
        .lines()
        .find(|line| line.contains(" y "))
        .expect("the factor's row");
    assert!(line.starts_with("factor"), "{trace}");
    assert!(line.contains("[4]"), "{trace}");
    // The factor adds no coordinate to the flat vector.
    assert_eq!(model.layout.latent_dim(), 3);
}

const MASKED: &str = r#"data from "rows.csv" {
    x: vector[N]
    y: vector[N]
    seen: int[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    let s = sample("s", HalfNormal(2))
    plate("data", N) {
        observe("y", Normal(b + w * x, s), y, mask = seen)
    }
}
"#;

const OBSERVED_ROWS: &str = r#"data from "rows.csv" {
    x: vector[N]
    y: vector[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    let s = sample("s", HalfNormal(2))
    plate("data", N) {
        observe("y", Normal(b + w * x, s), y)
    }
}
"#;

#[test]
fn masked_rows_contribute_nothing() {
    // Rows 2 and 5 are missing; their responses hold an arbitrary placeholder (1000).
    let all = "x,y,seen\n0.5,1.0,1\n1.5,1000,0\n-1.0,0.3,1\n2.0,2.9,1\n-0.3,1000,0\n1.1,1.7,1\n";
    let observed = "x,y\n0.5,1.0\n-1.0,0.3\n2.0,2.9\n1.1,1.7\n";
    let a = common::model_from_text("masked.bdl", MASKED, &[("rows.csv", all)]);
    let b = common::model_from_text("observed.bdl", OBSERVED_ROWS, &[("rows.csv", observed)]);
    let mut density_a = a.log_density();
    let mut density_b = b.log_density();
    for position in [[0.0, 0.0, 0.0], [0.3, 1.1, -0.4], [-1.2, 0.7, 0.9]] {
        let mut gradient_a = [0.0; 3];
        let mut gradient_b = [0.0; 3];
        let value_a = density_a
            .log_density_gradient(&position, &mut gradient_a)
            .unwrap();
        let value_b = density_b
            .log_density_gradient(&position, &mut gradient_b)
            .unwrap();
        assert!(
            (value_a - value_b).abs() <= 1e-12 * value_a.abs().max(1.0),
            "at {position:?}: {value_a} vs {value_b}"
        );
        for (ga, gb) in gradient_a.iter().zip(&gradient_b) {
            assert!((ga - gb).abs() <= 1e-12 * ga.abs().max(1.0));
        }
    }
}

#[test]
fn a_mask_that_is_not_zero_or_one_is_a_located_error() {
    let all = "x,y,seen\n0.5,1.0,1\n1.5,1.2,2\n";
    let source = MASKED.replace("seen: int[N]", "seen: vector[N]");
    let mut sources = SourceMap::new();
    let compiled = pipeline::compile(&mut sources, "masked.bdl", source.as_bytes()).unwrap();
    let file = sources.add("rows.csv", all);
    let files = [DataFile::from_text("rows.csv", all, file)];
    let observed = pipeline::observed_only(&compiled.program);
    let data = data::load(&compiled.program, &files, Completeness::All, &observed).unwrap();
    let Err(error) = Model::new(compiled.program, data, 1) else {
        panic!("a mask holding 2 was accepted");
    };
    let diagnostic = error.to_diagnostic();
    assert_eq!(diagnostic.code, "E0548");
    assert!(
        diagnostic.message.contains("holds 2"),
        "{}",
        diagnostic.message
    );
    let rendered = render_all(&[diagnostic], &sources, false);
    assert!(rendered.contains("masked.bdl:12:54"), "{rendered}");
}

/// The conjugate posterior of (b, w) under y ~ Normal(b + w x, 1), b, w ~ Normal(0, 5): mean and
/// standard deviations from the precision matrix XᵀX + I/25.
fn conjugate_posterior(x: &[f64], y: &[f64]) -> ([f64; 2], [f64; 2]) {
    let n = x.len() as f64;
    let sx: f64 = x.iter().sum();
    let sxx: f64 = x.iter().map(|v| v * v).sum();
    let sy: f64 = y.iter().sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let (p11, p12, p22) = (n + 0.04, sx, sxx + 0.04);
    let det = p11 * p22 - p12 * p12;
    let (c11, c12, c22) = (p22 / det, -p12 / det, p11 / det);
    let mean = [c11 * sy + c12 * sxy, c12 * sy + c22 * sxy];
    (mean, [c11.sqrt(), c22.sqrt()])
}

#[test]
fn nuts_on_a_factor_reproduces_the_conjugate_posterior() {
    let source = r#"data from "points.csv" {
    x: vector[N]
    y: vector[N]
}

model {
    let b = sample("b", Normal(0, 5))
    let w = sample("w", Normal(0, 5))
    factor("likelihood", -0.5 * sum((y - b - w * x) ** 2))
}
"#;
    let model = common::model_from_text("conjugate.bdl", source, &[("points.csv", POINTS)]);
    let settings = McmcSettings {
        seed: 18,
        warmup: 500,
        samples: 1000,
        ..McmcSettings::default()
    };
    let stop = AtomicBool::new(false);
    let result = sample(&settings, |_| model.log_density(), &|_| {}, &stop).expect("sampling");
    let (mean, sd) = conjugate_posterior(&[0.5, 1.5, -1.0, 2.0], &[1.0, 2.0, 0.3, 2.9]);
    for k in 0..2 {
        let chains: Vec<Vec<f64>> = result
            .chains
            .iter()
            .map(|chain| (0..chain.n_draws()).map(|i| chain.draw(i)[k]).collect())
            .collect();
        let slices: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
        let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
        let n = pooled.len() as f64;
        let m = pooled.iter().sum::<f64>() / n;
        let s = (pooled.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)).sqrt();
        let z_mean = (m - mean[k]) / mcse_mean(&slices).unwrap();
        let z_sd = (s - sd[k]) / mcse_sd(&slices).unwrap();
        assert!(
            z_mean.abs() < 4.0,
            "coordinate {k}: mean {m} vs {}",
            mean[k]
        );
        assert!(z_sd.abs() < 4.0, "coordinate {k}: sd {s} vs {}", sd[k]);
        assert!(rhat(&slices).unwrap() < 1.01);
    }
}
