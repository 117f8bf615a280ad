//! The safeguards that keep variational answers honest, on a closed-form posterior: a correlated
//! two-dimensional Gaussian N(m, Σ) with unit variances and correlation ρ = 0.9, written as an
//! `ElboModel` (no tape).
//!
//! - L-BFGS MAP finds m, and the warm start's scales are the conditional sds 1 / √Λᵢᵢ.
//! - SVI with `stop_when_converged` stops once the loss is stationary, says it converged, and its
//!   diagonal guide sits at m with the conditional sds (the mean-field optimum for a Gaussian).
//! - Pareto k̂ is small for a guide wider than the posterior and above 0.7 for one much narrower
//!   (the importance weights of a normal proposal with sd ratio s against a normal target have a
//!   tail of shape 1 − s², so a ratio of 0.3 gives 0.91).
//! - The streamed k̂ (parallel, value-only, stopping once k̂ is two standard errors from 0.7)
//!   agrees with it, whatever the number of threads.
//! - PSIS resampling of a wider guide's draws reproduces the posterior mean and sd within four
//!   Monte Carlo standard errors.

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint};
use bdl_infer::rng::Rng;
use bdl_infer::vi::{
    importance, map, svi, FittedGuide, GuideKind, GuideParams, LbfgsSettings, SviFit, SviSettings,
};
use std::sync::atomic::AtomicBool;

const RHO: f64 = 0.9;
const MEAN: [f64; 2] = [80.0, -3.0];

/// log N(z; m, Σ) with Σ = [[1, ρ], [ρ, 1]], all in the likelihood part.
#[derive(Clone)]
struct CorrelatedGaussian;

impl ElboModel for CorrelatedGaussian {
    fn latent_dim(&self) -> usize {
        2
    }

    fn param_dim(&self) -> usize {
        0
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        _options: &JointOptions,
        _rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let det = 1.0 - RHO * RHO;
        let (a, b) = (position[0] - MEAN[0], position[1] - MEAN[1]);
        // Λ = Σ⁻¹ = [[1, −ρ], [−ρ, 1]] / (1 − ρ²).
        let (la, lb) = ((a - RHO * b) / det, (b - RHO * a) / det);
        gradient[0] = -la;
        gradient[1] = -lb;
        let quadratic = a * la + b * lb;
        Ok(LogJoint {
            likelihood: -0.5 * quadratic - 0.5 * det.ln() - 2.0 * 0.918_938_533_204_672_8,
            prior: 0.0,
        })
    }
}

fn conditional_sd() -> f64 {
    (1.0 - RHO * RHO).sqrt()
}

fn fit_with(params: GuideParams) -> SviFit {
    SviFit {
        guide: FittedGuide::new(params).unwrap(),
        params: Vec::new(),
        losses: Vec::new(),
        skipped_steps: Vec::new(),
        interrupted: false,
        convergence: None,
    }
}

/// The posterior's covariance scaled by s² as an MVN guide's Cholesky factor.
fn scaled_posterior(s: f64) -> GuideParams {
    GuideParams::MultivariateNormal {
        loc: MEAN.to_vec(),
        scale_tril: vec![vec![s, 0.0], vec![s * RHO, s * conditional_sd()]],
    }
}

#[test]
fn lbfgs_finds_the_mode_and_the_warm_start_its_conditional_scales() {
    let settings = SviSettings::default();
    let mut model = CorrelatedGaussian;
    let found = map::fit_lbfgs(&mut model, &settings, &LbfgsSettings::default()).unwrap();
    assert!(found.report.converged(), "{:?}", found.report);
    let mode = found.fit.median_position();
    for i in 0..2 {
        assert!((mode[i] - MEAN[i]).abs() < 1e-6, "{mode:?}");
    }
    let start = map::warm_start(&mut model, &settings, &LbfgsSettings::default(), 0.1)
        .unwrap()
        .expect("a mode");
    for scale in start.scales.expect("curvature scales") {
        assert!((scale - conditional_sd()).abs() < 1e-6, "{scale}");
    }
}

#[test]
fn svi_stops_when_converged_at_the_mean_field_optimum() {
    let mut settings = SviSettings {
        guide: GuideKind::DiagonalNormal,
        steps: 100_000,
        seed: 3,
        ..SviSettings::default()
    };
    settings.convergence.stop_when_converged = true;
    let mut model = CorrelatedGaussian;
    let start = map::warm_start(&mut model, &settings, &LbfgsSettings::default(), 0.1)
        .unwrap()
        .expect("a mode");
    settings.init.location = bdl_infer::vi::InitLocation::Position(start.position);
    settings.init_scales = start.scales;
    let fit = svi::fit(
        |_| CorrelatedGaussian,
        &settings,
        &AtomicBool::new(false),
        |_, _| {},
    )
    .unwrap();
    let report = fit.convergence.expect("a stationarity test");
    assert!(report.converged, "{report:?}");
    assert!(fit.losses.len() < 100_000);
    assert_eq!(fit.losses.len(), report.steps);
    // The averaged iterate sits at the optimum to within a small fraction of the guide's scale:
    // Adam's steps of about 0.01 wander, and the average over W ≥ 200 of them shrinks that.
    let sd = conditional_sd();
    for (i, loc) in fit.guide.mean().iter().enumerate() {
        assert!(
            (loc - MEAN[i]).abs() < 0.1 * sd,
            "{loc} against {}",
            MEAN[i]
        );
    }
    for scale in fit.guide.standard_deviations() {
        assert!((scale - sd).abs() < 0.1 * sd, "{scale} against {sd}");
    }
}

#[test]
fn pareto_k_separates_wide_from_narrow_guides() {
    let mut model = CorrelatedGaussian;
    let wide = importance::diagnose(&mut model, &fit_with(scaled_posterior(1.5)), 2000, 1).unwrap();
    assert!(wide.pareto_k() < 0.5, "{}", wide.pareto_k());
    let narrow =
        importance::diagnose(&mut model, &fit_with(scaled_posterior(0.3)), 2000, 1).unwrap();
    assert!(narrow.pareto_k() > 0.7, "{}", narrow.pareto_k());
    // The mean-field optimum misses the correlation: its sd ratio along the long axis is
    // √(1 − ρ²)/√(1 + ρ) ≈ 0.32, so the diagnostic flags it.
    let mean_field = fit_with(GuideParams::DiagonalNormal {
        loc: MEAN.to_vec(),
        scale: vec![conditional_sd(); 2],
    });
    let diagnostic = importance::diagnose(&mut model, &mean_field, 2000, 1).unwrap();
    assert!(diagnostic.pareto_k() > 0.7, "{}", diagnostic.pareto_k());
}

/// The streamed diagnostic (parallel, value-only, as few draws as settle k̂) agrees with the
/// batch one on which side of 0.7 each guide is, stops early when k̂ is far from 0.7 (a wide
/// guide, k̂ < 0, settles after its first round), and does not depend on the number of threads.
#[test]
fn the_streamed_pareto_k_settles_early_and_agrees() {
    let streamed = |s: f64, threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                importance::diagnose_streamed(
                    || CorrelatedGaussian,
                    &fit_with(scaled_posterior(s)),
                    2000,
                    1,
                )
                .unwrap()
            })
    };
    let wide = streamed(1.5, 2);
    assert!(wide.psis.pareto_k < 0.5, "{}", wide.psis.pareto_k);
    assert_eq!(wide.draws_used, importance::STREAMED_FIRST_ROUND);
    let narrow = streamed(0.3, 2);
    assert!(narrow.psis.pareto_k > 0.7, "{}", narrow.psis.pareto_k);
    assert!(narrow.draws_used <= 2000);
    assert_eq!(narrow.log_ratios.len(), narrow.draws_used);
    let one_thread = streamed(0.3, 1);
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one_thread.log_ratios), bits(&narrow.log_ratios));
    // k̂'s standard error follows the tail size: (1 + k̂) / √M with M = ⌈min(n/5, 3√n)⌉.
    let expected = (1.0 + narrow.psis.pareto_k)
        / ((narrow.draws_used as f64 / 5.0)
            .min(3.0 * (narrow.draws_used as f64).sqrt())
            .ceil())
        .sqrt();
    assert!((narrow.k_standard_error - expected).abs() < 1e-12);
}

#[test]
fn resampling_a_wide_guide_recovers_the_posterior() {
    let mut model = CorrelatedGaussian;
    let diagnostic =
        importance::diagnose(&mut model, &fit_with(scaled_posterior(1.5)), 8000, 5).unwrap();
    let ess = diagnostic.effective_sample_size();
    assert!(ess > 1000.0 && ess < 8000.0, "{ess}");
    let draws = diagnostic.resample(8000, 5);
    for i in 0..2 {
        let values: Vec<f64> = draws.iter().map(|d| d[i]).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sd =
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        // Standard errors from the weights' ESS: sd / √ESS for the mean, sd / √(2 ESS) for
        // the sd (normal theory).
        assert!((mean - MEAN[i]).abs() < 4.0 / ess.sqrt(), "mean {mean}");
        assert!((sd - 1.0).abs() < 4.0 / (2.0 * ess).sqrt(), "sd {sd}");
    }
}

#[test]
fn the_standardised_model_has_the_right_gradient_and_maps_guides_back() {
    use bdl_infer::rng::stream_rng;
    use bdl_infer::vi::Standardized;
    let center = vec![79.0, -2.5];
    let scale = vec![0.5, 2.0];
    let mut model = Standardized::new(CorrelatedGaussian, center.clone(), scale.clone());
    let options = JointOptions::default();
    let mut rng = stream_rng(0, 0);
    let u = [0.3, -0.7];
    let mut gradient = [0.0; 2];
    let value = model
        .log_joint(&u, &options, &mut rng, &mut gradient)
        .unwrap()
        .total();
    // log p(u) = log p(c + s ⊙ u) + Σ log s.
    let mut inner = [0.0; 2];
    let z = model.to_original_position(&u);
    assert!(
        (z[0] - 79.15).abs() < 1e-12 && (z[1] + 3.9).abs() < 1e-12,
        "{z:?}"
    );
    let direct = CorrelatedGaussian
        .log_joint(&z, &options, &mut rng, &mut inner)
        .unwrap()
        .total();
    assert!((value - direct - (0.5f64.ln() + 2.0f64.ln())).abs() < 1e-12);
    // Central differences with h = 1e-6 have error O(h²) times the third derivative (zero
    // here) plus round-off of about 1e-16 · |f| / h.
    for i in 0..2 {
        let h = 1e-6;
        let mut up = u;
        let mut down = u;
        up[i] += h;
        down[i] -= h;
        let mut scratch = [0.0; 2];
        let f_up = model
            .log_joint(&up, &options, &mut rng, &mut scratch)
            .unwrap()
            .total();
        let f_down = model
            .log_joint(&down, &options, &mut rng, &mut scratch)
            .unwrap()
            .total();
        let numeric = (f_up - f_down) / (2.0 * h);
        assert!(
            (numeric - gradient[i]).abs() < 1e-6,
            "{numeric} vs {}",
            gradient[i]
        );
    }
    let guide = FittedGuide::new(GuideParams::MultivariateNormal {
        loc: vec![1.0, -1.0],
        scale_tril: vec![vec![1.0, 0.0], vec![0.5, 2.0]],
    })
    .unwrap();
    let back = model.to_original(&guide).unwrap();
    assert_eq!(back.mean(), vec![79.5, -4.5]);
    // Cov(z) = diag(s) Cov(u) diag(s): Cov(u) = [[1, 0.5], [0.5, 4.25]].
    let covariance = back.covariance();
    let expected = [[0.25, 0.5], [0.5, 17.0]];
    for i in 0..2 {
        for j in 0..2 {
            assert!((covariance[i][j] - expected[i][j]).abs() < 1e-12);
        }
    }
}
