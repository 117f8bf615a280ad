//! `bdlc diagnose MODEL`: the model's gradient against finite differences at random points in
//! unconstrained space, as CmdStan's `diagnose` method does; exit 1 if any coordinate disagrees.

use crate::session::{Failure, Session};
use bdl_autodiff::check::{self, FiniteDifference};
use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;
use bdl_runtime::data::Completeness;
use rand::Rng as _;
use std::path::PathBuf;

/// `bdlc diagnose MODEL [--data FILE]... [--points N] [--seed S] [--epsilon E] [--error E]`.
#[derive(clap::Args, Debug)]
pub struct DiagnoseArgs {
    /// The model file.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Data files, replacing those the model names.
    #[arg(long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// How many random points to test.
    #[arg(long, default_value_t = 3)]
    pub points: usize,
    /// The seed of the random points.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The finite-difference step.
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f64,
    /// The largest accepted difference, relative to max(1, |gradient|).
    #[arg(long, default_value_t = 1e-6)]
    pub error: f64,
    /// How many of the worst coordinates to show per point.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

/// Six-point central difference (Stan's stencil) of the log density along coordinate `k`, with
/// the stencil's own rounding error.
fn finite_difference(
    density: &mut impl LogDensity,
    x: &[f64],
    k: usize,
    h: f64,
) -> Option<FiniteDifference> {
    let mut point = x.to_vec();
    let mut gradient = vec![0.0; x.len()];
    check::finite_difference(
        |value| {
            point[k] = value;
            density.log_density_gradient(&point, &mut gradient)
        },
        x[k],
        h,
    )
    .ok()
}

/// Runs `bdlc diagnose`.
pub fn run(args: &DiagnoseArgs, session: &mut Session) -> Result<(), Failure> {
    let model = session.load(&args.model, &args.data, Completeness::All, args.seed)?;
    let dim = model.layout.latent_dim();
    if dim == 0 {
        println!("the model has no latent sites: nothing to diagnose");
        return Ok(());
    }
    let names = model.layout.coordinate_names();
    let mut density = model.log_density();
    let mut rng = stream_rng(args.seed, 0);
    let mut failures = 0;
    for point_index in 0..args.points {
        let mut position = vec![0.0; dim];
        let mut gradient = vec![0.0; dim];
        let mut log_density = None;
        for _ in 0..100 {
            position
                .iter_mut()
                .for_each(|x| *x = rng.random_range(-2.0..2.0));
            if let Ok(value) = density.log_density_gradient(&position, &mut gradient) {
                log_density = Some(value);
                break;
            }
        }
        let Some(log_density) = log_density else {
            return Err(Failure::run(
                "E0590",
                "no point with a finite log density found in 100 uniform(-2, 2) draws",
            ));
        };
        let mut rows = Vec::with_capacity(dim);
        for (k, &model_value) in gradient.iter().enumerate() {
            // The error is relative to max(1, |gradient|). A coordinate disagrees when the
            // difference exceeds what the stencil's own rounding explains (with log densities in
            // the thousands, about 1e-7 at step 1e-6) by more than the tolerance.
            let estimate = finite_difference(&mut density, &position, k, args.epsilon);
            let (numeric, error, excess) = match estimate {
                Some(estimate) => {
                    let difference = (model_value - estimate.derivative).abs();
                    let scale = model_value.abs().max(1.0);
                    let beyond_rounding = (difference - 10.0 * estimate.rounding_error).max(0.0);
                    (
                        estimate.derivative,
                        difference / scale,
                        beyond_rounding / scale,
                    )
                }
                None => (f64::NAN, f64::INFINITY, f64::INFINITY),
            };
            rows.push((k, model_value, numeric, error, excess));
        }
        rows.sort_by(|a, b| b.3.total_cmp(&a.3));
        let bad = rows
            .iter()
            .filter(|row| row.4 > args.error || row.4.is_nan())
            .count();
        failures += bad;
        println!(
            "point {} of {}: log density {log_density:.6}, {dim} coordinates, {bad} disagree",
            point_index + 1,
            args.points
        );
        println!(
            "  {:<24} {:>16} {:>16} {:>12} {:>10}",
            "coordinate", "model", "finite diff", "error", "value"
        );
        for &(k, model_value, numeric, error, _) in rows.iter().take(args.show) {
            println!(
                "  {:<24} {:>16.8e} {:>16.8e} {:>12.3e} {:>10.4}",
                names[k], model_value, numeric, error, position[k]
            );
        }
    }
    if failures > 0 {
        return Err(Failure::run(
            "E0591",
            format!(
                "{failures} gradient coordinates disagree with finite differences beyond {:e}",
                args.error
            ),
        ));
    }
    println!("every coordinate agrees within {:e}", args.error);
    Ok(())
}
