//! Every bundled model (`models/*.bdl`), run by the runtime:
//!
//! - its sites and shapes: the flat vector's layout and the trace at the origin of the
//!   unconstrained space (the `--emit trace` table without its log-density column, which is
//!   floating-point output) equal the committed insta snapshot `tests/trace/NAME.snap`;
//! - its structure is static, so evaluators replay one recording;
//! - its gradient agrees with six-point finite differences at random unconstrained points, as
//!   `bdlc diagnose` checks it: for HMC's log density (all plates in full), and for the weighted
//!   objective SVI uses, with a mini-batch held fixed.
//!
//! After an intended change, review and accept the new snapshots with `cargo insta review` (or
//! rerun with `INSTA_UPDATE=always`), as docs/dev/testing.md says.

mod common;

use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;
use bdl_runtime::model::Model;
use rand::Rng as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/trace")
}

/// The sites and shapes of a model: its layout, then its trace at the origin without the
/// log-density column.
fn describe(model: &Model) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "structure: {}; mini-batches: {}",
        match &model.dynamic {
            None => "static (replayed)".to_string(),
            Some(dynamic) => format!("dynamic ({})", dynamic.reason),
        },
        if model.subsampled { "yes" } else { "no" }
    );
    let _ = writeln!(
        text,
        "flat vector: {} latent and {} param coordinates",
        model.layout.latent_dim(),
        model.layout.param_dim()
    );
    for entry in &model.layout.entries {
        let _ = writeln!(
            text,
            "  {:<6} {:<16} offset {:<5} unconstrained {:<10} constrained {:<10} {}",
            entry.kind.as_str(),
            entry.name,
            entry.offset,
            format!("{:?}", entry.unconstrained_shape),
            format!("{:?}", entry.constrained_shape),
            entry.constraint
        );
    }
    let origin = vec![0.0; model.layout.dim()];
    let trace = model
        .render_trace(&origin)
        .unwrap_or_else(|error| format!("the trace failed: {error}\n"));
    let _ = writeln!(text, "trace at the origin:");
    for line in trace.lines() {
        // The last column is the log-density; the others do not depend on rounding.
        let kept = line
            .trim_end()
            .rsplit_once(' ')
            .map_or(line, |(rest, _)| rest)
            .trim_end();
        let _ = writeln!(text, "  {kept}");
    }
    text
}

#[test]
fn sites_and_shapes_match_the_snapshots() {
    let names = common::bundled_models();
    assert!(names.len() >= 8, "only {} bundled models", names.len());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot_dir());
    settings.set_prepend_module_to_snapshot(false);
    for name in &names {
        let model = common::load_model(&format!("{name}.bdl"));
        let described = describe(&model);
        settings.bind(|| insta::assert_snapshot!(name.as_str(), described));
    }
}

#[test]
fn every_bundled_model_is_static_and_replayed() {
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        assert!(
            model.dynamic.is_none(),
            "{name} is dynamic: {:?}",
            model.dynamic
        );
        assert!(model.evaluator().replays(), "{name} is not replayed");
        assert!(model.log_density().evaluator().replays(), "{name}");
    }
}

#[test]
fn log_density_gradients_agree_with_finite_differences() {
    let mut failures = Vec::new();
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        let dim = model.layout.latent_dim();
        let names = model.layout.coordinate_names();
        let mut density = model.log_density();
        let mut points = stream_rng(0, 0);
        for point in 0..3 {
            // Uniform(−2, 2) in unconstrained space, as `bdlc diagnose` draws its points.
            let position: Vec<f64> = (0..dim).map(|_| points.random_range(-2.0..2.0)).collect();
            let mut gradient = vec![0.0; dim];
            if let Err(error) = density.log_density_gradient(&position, &mut gradient) {
                failures.push(format!("{name} point {point}: {}", error.message));
                continue;
            }
            let mut scratch = vec![0.0; dim];
            let problems =
                common::compare_with_finite_differences(&names, &position, &gradient, |x| {
                    density.log_density_gradient(x, &mut scratch).ok()
                });
            failures.extend(
                problems
                    .into_iter()
                    .map(|problem| format!("{name} point {point}: {problem}")),
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn weighted_objective_gradients_agree_with_finite_differences() {
    // The objective SVI differentiates, likelihood + w · (prior + v · fixed-normal prior), with
    // weights that are not 1 and the mini-batch held fixed by drawing it from the same stream.
    let (prior_weight, normal_weight) = (0.3, 0.6);
    let mut failures = Vec::new();
    for name in common::bundled_models() {
        let model = common::load_model(&format!("{name}.bdl"));
        let dim = model.layout.dim();
        let names = model.layout.coordinate_names();
        let mut evaluator = model.evaluator();
        let mut points = stream_rng(1, 0);
        let position: Vec<f64> = (0..dim).map(|_| points.random_range(-1.5..1.5)).collect();
        let batch_seed = 17;
        if let Err(error) = evaluator.evaluate(
            &position,
            prior_weight,
            normal_weight,
            &mut stream_rng(batch_seed, 0),
        ) {
            failures.push(format!("{name}: {error}"));
            continue;
        }
        let gradient = evaluator.gradient().to_vec();
        let problems = common::compare_with_finite_differences(&names, &position, &gradient, |x| {
            evaluator
                .evaluate(
                    x,
                    prior_weight,
                    normal_weight,
                    &mut stream_rng(batch_seed, 0),
                )
                .ok()
                .map(|evaluation| evaluation.objective)
        });
        failures.extend(
            problems
                .into_iter()
                .map(|problem| format!("{name}: {problem}")),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
