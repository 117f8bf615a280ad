//! What SVI does when things go wrong: a non-finite loss stops the run with the model's message
//! and the last good parameters (or is skipped, a bounded number of times in a row), fatal model
//! errors stop at once, a start with no finite ELBO is retried and then reported with the
//! model's message, the Laplace approximation refuses a Hessian that is not negative definite,
//! and bad settings are errors, not panics.

mod vi_common;

use bdl_infer::density::{ElboModel, JointOptions, LogDensityError, LogJoint, NormalPrior};
use bdl_infer::rng::Rng;
use bdl_infer::vi::{svi, ElboKind, GuideKind, InitLocation, InitSettings, SviError, SviSettings};
use std::sync::atomic::AtomicBool;
use vi_common::{settings, sigmoid, BetaBernoulli, GaussianLinear};

/// A normal likelihood centred at `centre` (with a N(0, 1) prior when `with_prior`) whose
/// log-density fails beyond `limit`, as a model does when a site's value leaves its support.
#[derive(Clone)]
struct Cliff {
    centre: f64,
    limit: f64,
    with_prior: bool,
    recoverable: bool,
    /// Fail below the limit instead of above it.
    fail_below: bool,
}

impl ElboModel for Cliff {
    fn latent_dim(&self) -> usize {
        1
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
        let z = position[0];
        let outside = if self.fail_below {
            z < self.limit
        } else {
            z > self.limit
        };
        if outside {
            let message = format!("the log-density of site \"y\" is not finite at z = {z}");
            return Err(if self.recoverable {
                LogDensityError::recoverable(message)
            } else {
                LogDensityError::fatal(message)
            });
        }
        let residual = z - self.centre;
        let prior = if self.with_prior { -0.5 * z * z } else { 0.0 };
        let prior_slope = if self.with_prior { -z } else { 0.0 };
        gradient[0] = -residual + options.prior_weight * prior_slope;
        Ok(LogJoint {
            likelihood: -0.5 * residual * residual,
            prior,
        })
    }
}

fn cliff(limit: f64) -> Cliff {
    Cliff {
        centre: 5.0,
        limit,
        with_prior: true,
        recoverable: true,
        fail_below: false,
    }
}

fn fit<M: ElboModel + Clone>(model: M, settings: &SviSettings) -> Result<svi::SviFit, SviError> {
    svi::fit(
        move |_| model.clone(),
        settings,
        &AtomicBool::new(false),
        |_, _| {},
    )
}

#[test]
fn a_non_finite_loss_stops_with_the_site_and_the_last_good_parameters() {
    let error = fit(cliff(1.0), &settings(GuideKind::Delta, 2000, 1)).unwrap_err();
    let SviError::NonFiniteLoss {
        step,
        message,
        partial,
    } = &error
    else {
        panic!("expected a non-finite loss, got {error}");
    };
    assert!(message.contains("site \"y\""), "{message}");
    assert!(error
        .to_string()
        .starts_with(&format!("the loss was not finite at step {step}")));
    assert!(*step > 0 && *step < 2000);
    assert_eq!(partial.losses.len(), *step);
    assert!(partial.losses.iter().all(|s| s.loss.is_finite()));
    // The last parameters whose loss was finite lie inside the region where the model is finite.
    let loc = partial.guide.mean()[0];
    assert!(loc > 0.5 && loc <= 1.0, "{loc}");
    assert!(error.partial().is_some());
}

#[test]
fn skipping_is_bounded_when_every_retry_fails() {
    // A point guide sees the same point again after a skipped step, so every retry fails.
    let settings = SviSettings {
        skip_nonfinite: true,
        max_consecutive_skips: 7,
        ..settings(GuideKind::Delta, 2000, 2)
    };
    let error = fit(cliff(1.0), &settings).unwrap_err();
    let SviError::NonFiniteLoss {
        message, partial, ..
    } = &error
    else {
        panic!("expected a non-finite loss, got {error}");
    };
    assert!(
        message.contains("site \"y\"") && message.contains("7 skipped steps"),
        "{message}"
    );
    assert_eq!(partial.skipped_steps.len(), 7);
}

#[test]
fn skipping_steps_past_occasional_failures_finishes_the_run() {
    // The posterior is N(2.5, 1/2); the model fails beyond 4, so a few single draws fail (about
    // 2% near the optimum). Skipping drops them, which biases the fit slightly upwards.
    let settings = SviSettings {
        skip_nonfinite: true,
        particles: 1,
        ..settings(GuideKind::DiagonalNormal, 2000, 3)
    };
    let fit = fit(cliff(4.0), &settings).unwrap();
    assert!(!fit.skipped_steps.is_empty());
    assert_eq!(fit.losses.len() + fit.skipped_steps.len(), 2000);
    // About 2% are expected; a tenth would mean that skipping had fed back into the fit.
    assert!(
        fit.skipped_steps.len() < 200,
        "{} skipped",
        fit.skipped_steps.len()
    );
    assert!(fit
        .losses
        .iter()
        .all(|s| !fit.skipped_steps.contains(&s.step)));
}

#[test]
fn a_fatal_model_error_stops_at_once() {
    let model = Cliff {
        recoverable: false,
        ..cliff(1.0)
    };
    let settings = SviSettings {
        skip_nonfinite: true,
        ..settings(GuideKind::Delta, 2000, 4)
    };
    let error = fit(model, &settings).unwrap_err();
    let SviError::Model {
        message, partial, ..
    } = &error
    else {
        panic!("expected a model failure, got {error}");
    };
    assert!(message.contains("site \"y\""));
    assert!(partial.skipped_steps.is_empty());
}

#[test]
fn no_finite_start_reports_the_model_message_after_the_retries() {
    let model = Cliff {
        limit: 0.5,
        fail_below: true,
        ..cliff(0.0)
    };
    let error = fit(model, &settings(GuideKind::Delta, 100, 5)).unwrap_err();
    let SviError::Initialisation { attempts, message } = &error else {
        panic!("expected an initialisation error, got {error}");
    };
    assert_eq!(*attempts, 10);
    assert!(
        message.contains("site \"y\"") && message.contains("z = 0"),
        "{message}"
    );
    assert!(error
        .to_string()
        .starts_with("no finite ELBO at the initial point after 10 attempts"));
}

#[test]
fn uniform_initialisation_retries_until_a_finite_start() {
    let model = Cliff {
        centre: 1.0,
        limit: 0.5,
        with_prior: false,
        fail_below: true,
        ..cliff(0.0)
    };
    let settings = SviSettings {
        init: InitSettings {
            location: InitLocation::Uniform { radius: 2.0 },
            ..InitSettings::default()
        },
        ..settings(GuideKind::Delta, 2000, 6)
    };
    let fit = fit(model, &settings).unwrap();
    assert!(
        (fit.guide.mean()[0] - 1.0).abs() < 0.01,
        "{:?}",
        fit.guide.mean()
    );
}

#[test]
fn a_given_initial_position_is_used_and_checked() {
    let model = Cliff {
        centre: 1.0,
        limit: 0.5,
        with_prior: false,
        fail_below: true,
        ..cliff(0.0)
    };
    let start = |position: Vec<f64>| SviSettings {
        init: InitSettings {
            location: InitLocation::Position(position),
            ..InitSettings::default()
        },
        ..settings(GuideKind::Delta, 2000, 7)
    };
    assert!(fit(model.clone(), &start(vec![0.9])).is_ok());
    let error = fit(model.clone(), &start(vec![0.9, 1.0])).unwrap_err();
    assert!(matches!(error, SviError::InvalidSettings { .. }), "{error}");
    let error = fit(model, &start(vec![f64::NAN])).unwrap_err();
    assert!(matches!(error, SviError::InvalidSettings { .. }), "{error}");
}

#[test]
fn laplace_matches_the_curvature_at_the_mode() {
    // For u = logit(p) under Beta(9, 3), log p(u) = 9 log σ(u) + 3 log σ(−u) + const, with mode
    // u = log 3 and second derivative −12 σ(u)(1 − σ(u)).
    let fit = fit(
        BetaBernoulli::eight_of_ten(),
        &settings(GuideKind::Laplace, 3000, 8),
    )
    .unwrap();
    assert_eq!(fit.guide.params().name(), "laplace");
    let mode = fit.guide.mean()[0];
    assert!((mode - 3f64.ln()).abs() < 1e-3, "{mode}");
    let p = sigmoid(mode);
    let exact_variance = 1.0 / (12.0 * p * (1.0 - p));
    let variance = fit.guide.covariance()[0][0];
    assert!(
        (variance - exact_variance).abs() < 1e-7 * exact_variance,
        "{variance} vs {exact_variance}"
    );
}

#[test]
fn laplace_refuses_a_flat_log_joint() {
    let curved = Cliff {
        centre: 0.0,
        limit: f64::INFINITY,
        with_prior: false,
        ..cliff(0.0)
    };
    // A model whose log joint is constant.
    #[derive(Clone)]
    struct Flat;
    impl ElboModel for Flat {
        fn latent_dim(&self) -> usize {
            2
        }
        fn param_dim(&self) -> usize {
            0
        }
        fn log_joint(
            &mut self,
            _position: &[f64],
            _options: &JointOptions,
            _rng: &mut Rng,
            gradient: &mut [f64],
        ) -> Result<LogJoint, LogDensityError> {
            gradient.iter_mut().for_each(|g| *g = 0.0);
            Ok(LogJoint {
                likelihood: 0.0,
                prior: 0.0,
            })
        }
    }
    let error = fit(Flat, &settings(GuideKind::Laplace, 10, 9)).unwrap_err();
    let SviError::Laplace { message, partial } = &error else {
        panic!("expected a Laplace error, got {error}");
    };
    assert!(message.contains("not negative definite"), "{message}");
    assert_eq!(partial.guide.params().name(), "delta");
    // A curved one is fine.
    assert!(fit(curved, &settings(GuideKind::Laplace, 10, 9)).is_ok());
}

#[test]
fn bad_settings_are_errors() {
    let model = GaussianLinear::bayes_linreg();
    let base = settings(GuideKind::DiagonalNormal, 10, 10);
    let mut cases = vec![
        SviSettings {
            particles: 0,
            ..base.clone()
        },
        SviSettings {
            guide: GuideKind::LowRankMultivariateNormal { rank: Some(3) },
            ..base.clone()
        },
        SviSettings {
            init: InitSettings {
                scale: 0.0,
                ..InitSettings::default()
            },
            ..base.clone()
        },
        SviSettings {
            init: InitSettings {
                max_attempts: 0,
                ..InitSettings::default()
            },
            ..base.clone()
        },
    ];
    let mut negative_rate = base.clone();
    negative_rate.optimizer.kind.set_learning_rate(-0.1);
    cases.push(negative_rate);
    for settings in cases {
        let error = fit(model.clone(), &settings).unwrap_err();
        assert!(
            matches!(error, SviError::InvalidSettings { .. }),
            "{settings:?}: {error}"
        );
        assert!(error.to_string().starts_with("invalid settings: "));
    }
}

#[test]
fn inconsistent_models_are_errors() {
    // Normal priors that run past the latent vector.
    #[derive(Clone)]
    struct BadPriors(GaussianLinear);
    impl ElboModel for BadPriors {
        fn latent_dim(&self) -> usize {
            self.0.latent_dim()
        }
        fn param_dim(&self) -> usize {
            0
        }
        fn log_joint(
            &mut self,
            position: &[f64],
            options: &JointOptions,
            rng: &mut Rng,
            gradient: &mut [f64],
        ) -> Result<LogJoint, LogDensityError> {
            self.0.log_joint(position, options, rng, gradient)
        }
        fn normal_priors(&self) -> Vec<NormalPrior> {
            vec![NormalPrior {
                offset: 1,
                loc: vec![0.0, 0.0],
                scale: vec![1.0, 1.0],
            }]
        }
    }
    let settings = SviSettings {
        elbo: ElboKind::AnalyticKl,
        ..settings(GuideKind::DiagonalNormal, 10, 11)
    };
    let error = fit(BadPriors(GaussianLinear::bayes_linreg()), &settings).unwrap_err();
    assert!(matches!(error, SviError::InvalidModel { .. }), "{error}");
    // The trace estimator does not use the declared priors.
    let settings = SviSettings {
        elbo: ElboKind::Trace,
        ..settings
    };
    assert!(fit(BadPriors(GaussianLinear::bayes_linreg()), &settings).is_ok());

    // Evaluators that disagree on the dimension.
    let settings = SviSettings {
        particles: 2,
        ..settings
    };
    let error = svi::fit(
        |k| {
            if k == 0 {
                GaussianLinear::bayes_linreg()
            } else {
                GaussianLinear::correlated_quadratic()
            }
        },
        &settings,
        &AtomicBool::new(false),
        |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(error, SviError::InvalidModel { .. }), "{error}");
}
