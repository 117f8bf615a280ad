//! The IAF guide against a banana-shaped posterior, z₁ ~ Normal(0, 1.5),
//! z₂ | z₁ ~ Normal(0.8 z₁², 0.5), normalised, so that its ELBO is −KL(q ‖ p) ≤ 0: fitted
//! with the same settings and seed, the flow's ELBO must beat the diagonal normal's by more than
//! four standard errors of the two Monte Carlo estimates, and its Pareto k̂ must be below 0.7.
//! Both guides are fitted with the trace ELBO and with the analytic-KL ELBO (z₁'s prior is a
//! fixed normal: the diagonal guide takes its KL in closed form, the flow, whose marginals have
//! none, estimates it by sampling and so fits exactly as with the trace ELBO).

mod vi_common;

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint, NormalPrior};
use bdl_infer::rng::Rng;
use bdl_infer::vi::{importance, svi, ElboKind, GuideKind};
use std::sync::atomic::AtomicBool;
use vi_common::settings;

const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;
const PRIOR_SCALE: f64 = 1.5;
const CURVATURE: f64 = 0.8;
const NOISE: f64 = 0.5;

#[derive(Clone)]
struct Banana;

impl ElboModel for Banana {
    fn latent_dim(&self) -> usize {
        2
    }

    fn param_dim(&self) -> usize {
        0
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        _rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let (z1, z2) = (position[0], position[1]);
        let prior_on = if options.skip_normal_priors { 0.0 } else { 1.0 };
        let prior = prior_on
            * (-PRIOR_SCALE.ln() - HALF_LOG_TWO_PI - z1 * z1 / (2.0 * PRIOR_SCALE.powi(2)));
        let residual = z2 - CURVATURE * z1 * z1;
        let likelihood =
            -NOISE.ln() - HALF_LOG_TWO_PI - residual * residual / (2.0 * NOISE * NOISE);
        let slope = residual / (NOISE * NOISE);
        gradient[0] = prior_on * options.prior_weight * (-z1 / PRIOR_SCALE.powi(2))
            + slope * 2.0 * CURVATURE * z1;
        gradient[1] = -slope;
        Ok(LogJoint { likelihood, prior })
    }

    fn normal_priors(&self) -> Vec<NormalPrior> {
        vec![NormalPrior {
            offset: 0,
            loc: vec![0.0],
            scale: vec![PRIOR_SCALE],
        }]
    }
}

/// The ELBO estimate of a fit from `draws` fresh draws (the mean of log p − log q), its
/// standard error, and the draws' Pareto k̂.
fn elbo_and_k(fit: &svi::SviFit, draws: usize) -> (f64, f64, f64) {
    let diagnostic = importance::diagnose(&mut Banana, fit, draws, 99).unwrap();
    let ratios = &diagnostic.log_ratios;
    let n = ratios.len() as f64;
    let mean = ratios.iter().sum::<f64>() / n;
    let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt(), diagnostic.pareto_k())
}

#[test]
fn the_flow_beats_the_diagonal_normal_on_a_banana() {
    let mut flow_elbos = Vec::new();
    for elbo in [ElboKind::Trace, ElboKind::AnalyticKl] {
        let fit = |guide: GuideKind| {
            let mut settings = settings(guide, 3000, 7);
            settings.elbo = elbo;
            svi::fit(|_| Banana, &settings, &AtomicBool::new(false), |_, _| {}).unwrap()
        };
        let diagonal = fit(GuideKind::DiagonalNormal);
        let flow = fit(GuideKind::Iaf {
            layers: 2,
            hidden: None,
        });
        let (elbo_diagonal, se_diagonal, k_diagonal) = elbo_and_k(&diagonal, 4000);
        let (elbo_flow, se_flow, k_flow) = elbo_and_k(&flow, 4000);
        flow_elbos.push(elbo_flow);
        let margin = 4.0 * (se_diagonal.powi(2) + se_flow.powi(2)).sqrt();
        assert!(
            elbo_flow - elbo_diagonal > margin,
            "{elbo:?}: flow {elbo_flow} ± {se_flow}, diagonal {elbo_diagonal} ± {se_diagonal}"
        );
        // The ELBO is −KL(q ‖ p) for this normalised posterior: never above 0 beyond noise.
        assert!(elbo_flow < 4.0 * se_flow, "{elbo_flow} ± {se_flow}");
        // k̂ from 4,000 draws has a standard error near 0.13 here, too large to separate the
        // two guides' k̂ reliably; the flow's must be below the 0.7 limit.
        assert!(
            k_flow < 0.7,
            "{elbo:?}: k̂ flow {k_flow}, diagonal {k_diagonal}"
        );
    } // The flow's fit does not depend on the ELBO's kind.
    assert_eq!(flow_elbos[0], flow_elbos[1]);
}
