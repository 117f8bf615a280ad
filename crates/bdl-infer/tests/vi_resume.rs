//! Resuming SVI from a saved state: a fit stopped (or saved periodically) and continued from its
//! [`SviCheckpoint`] arrives at the uninterrupted fit's guide, params and losses bit for bit, for
//! each optimiser, with mini-batches, and when the fit stops on convergence (whose block
//! averages are part of the state).

mod vi_common;

use bdl_infer::vi::{
    svi, Checkpoints, GuideKind, OptimizerKind, Sgd, SviCheckpoint, SviFit, SviSettings,
};
use std::sync::atomic::AtomicBool;
use vi_common::{settings, GaussianLinear};

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// The guide's parameters (their `Debug` form, which writes every `f64` so that it reads back
/// exactly), the params and every loss of a fit, as bits.
fn fingerprint(fit: &SviFit) -> (String, Vec<u64>, Vec<(usize, u64)>) {
    (
        format!("{:?}", fit.guide.params()),
        bits(&fit.params),
        fit.losses
            .iter()
            .map(|l| (l.step, l.loss.to_bits()))
            .collect(),
    )
}

/// Fits `model` to the end while saving every `every` steps; returns the fit and the states.
fn fit_saving(
    model: &GaussianLinear,
    settings: &SviSettings,
    every: usize,
) -> (SviFit, Vec<SviCheckpoint>) {
    let stop = AtomicBool::new(false);
    let mut saved = Vec::new();
    let fit = svi::fit_resumable(
        |_| model.clone(),
        settings,
        &stop,
        |_, _| {},
        Checkpoints {
            resume: None,
            every,
            save: |state: &SviCheckpoint, _: &SviFit| saved.push(state.clone()),
        },
    )
    .expect("the fit runs");
    (fit, saved)
}

/// Continues `model`'s fit from `state`.
fn resume(model: &GaussianLinear, settings: &SviSettings, state: &SviCheckpoint) -> SviFit {
    let stop = AtomicBool::new(false);
    svi::fit_resumable(
        |_| model.clone(),
        settings,
        &stop,
        |_, _| {},
        Checkpoints {
            resume: Some(state),
            every: 0,
            save: |_: &SviCheckpoint, _: &SviFit| {},
        },
    )
    .expect("the resumed fit runs")
}

fn check_resumes(model: &GaussianLinear, settings: &SviSettings, every: usize) {
    let stop = AtomicBool::new(false);
    let uninterrupted = svi::fit(|_| model.clone(), settings, &stop, |_, _| {}).expect("fits");
    let (saving, states) = fit_saving(model, settings, every);
    // Saving changes nothing.
    assert_eq!(fingerprint(&saving), fingerprint(&uninterrupted));
    assert!(!states.is_empty(), "no state was saved");
    for state in &states {
        assert_eq!(state.next_step % every, 0);
        let resumed = resume(model, settings, state);
        assert_eq!(
            fingerprint(&resumed),
            fingerprint(&uninterrupted),
            "resumed at step {}",
            state.next_step
        );
        assert_eq!(resumed.convergence, uninterrupted.convergence);
    }
}

#[test]
fn a_fit_resumed_from_any_saved_state_is_the_uninterrupted_fit() {
    let model = GaussianLinear::bayes_linreg();
    for guide in [GuideKind::DiagonalNormal, GuideKind::MultivariateNormal] {
        check_resumes(&model, &settings(guide, 300, 11), 70);
    }
    // SGD with momentum keeps one moment, Adam two.
    let mut sgd = settings(GuideKind::DiagonalNormal, 200, 4);
    sgd.optimizer.kind = OptimizerKind::Sgd(Sgd {
        learning_rate: 0.01,
        momentum: 0.9,
        ..Sgd::default()
    });
    check_resumes(&model, &sgd, 50);
    // Mini-batches: each step's batch comes from the seed and the step.
    check_resumes(
        &GaussianLinear::minibatch_mean(),
        &settings(GuideKind::DiagonalNormal, 200, 9),
        60,
    );
}

#[test]
fn a_fit_that_stops_on_convergence_resumes_to_the_same_average() {
    let model = GaussianLinear::normal_normal();
    let mut auto = settings(GuideKind::DiagonalNormal, 20_000, 2);
    auto.convergence.stop_when_converged = true;
    let stop = AtomicBool::new(false);
    let uninterrupted = svi::fit(|_| model.clone(), &auto, &stop, |_, _| {}).expect("fits");
    assert!(
        uninterrupted.losses.len() < 20_000,
        "the fit did not stop on convergence"
    );
    check_resumes(&model, &auto, 150);
}

#[test]
fn a_state_of_another_fit_is_refused() {
    let model = GaussianLinear::bayes_linreg();
    let diagonal = settings(GuideKind::DiagonalNormal, 100, 1);
    let (_, states) = fit_saving(&model, &diagonal, 50);
    let mvn = settings(GuideKind::MultivariateNormal, 100, 1);
    let stop = AtomicBool::new(false);
    let refused = svi::fit_resumable(
        |_| model.clone(),
        &mvn,
        &stop,
        |_, _| {},
        Checkpoints {
            resume: Some(&states[0]),
            every: 0,
            save: |_: &SviCheckpoint, _: &SviFit| {},
        },
    );
    assert!(refused
        .err()
        .is_some_and(|e| e.to_string().contains("cannot be resumed")));
}
