//! Schedules over optimisation steps: the learning-rate factor (constant, step decay,
//! exponential decay) and the KL weight of Bayes-by-backprop (constant or a linear warm-up).
//!
//! Steps are counted from 0. A schedule is plain data; `validate` says what is wrong with one
//! built from user input.

use crate::vi::error::SettingsError;

/// A multiplicative factor on the optimiser's base learning rate, per step.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum LearningRateSchedule {
    /// Factor 1 at every step.
    #[default]
    Constant,
    /// Factor γ^⌊step / step_size⌋: the rate is multiplied by `gamma` every `step_size` steps
    /// (PyTorch's `StepLR`).
    Step {
        /// How many steps each level lasts (at least 1).
        step_size: usize,
        /// The multiplier applied at each level change, in (0, 1] for a decay.
        gamma: f64,
    },
    /// Factor γ^step (PyTorch's `ExponentialLR`, stepped once per optimisation step).
    Exponential {
        /// The multiplier per step, in (0, 1] for a decay.
        gamma: f64,
    },
}

impl LearningRateSchedule {
    /// The factor at `step`.
    pub fn factor(&self, step: usize) -> f64 {
        match *self {
            LearningRateSchedule::Constant => 1.0,
            LearningRateSchedule::Step { step_size, gamma } => {
                gamma.powf((step / step_size.max(1)) as f64)
            }
            LearningRateSchedule::Exponential { gamma } => gamma.powf(step as f64),
        }
    }

    /// Checks that the schedule's numbers make sense.
    pub fn validate(&self) -> Result<(), SettingsError> {
        match *self {
            LearningRateSchedule::Constant => Ok(()),
            LearningRateSchedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(SettingsError::new(
                        "the step schedule's step size must be at least 1",
                    ));
                }
                check_gamma(gamma)
            }
            LearningRateSchedule::Exponential { gamma } => check_gamma(gamma),
        }
    }
}

fn check_gamma(gamma: f64) -> Result<(), SettingsError> {
    if gamma.is_finite() && gamma > 0.0 {
        Ok(())
    } else {
        Err(SettingsError::new(format!(
            "a learning-rate schedule's gamma must be positive and finite, got {gamma}"
        )))
    }
}

/// The weight β of the prior part of the ELBO per step (the KL weight of Bayes-by-backprop):
/// the objective is E_q[log p(x | z)] + β (E_q[log p(z)] + H(q)) = E_q[log p(x | z)] − β KL(q ‖ p).
#[derive(Clone, Debug, PartialEq)]
pub enum KlWeightSchedule {
    /// The same weight at every step (1 for the plain ELBO).
    Constant {
        /// The weight, non-negative.
        weight: f64,
    },
    /// A linear warm-up: β = final_weight × min(1, (step + 1) / steps), so the weight grows from
    /// final_weight / steps at step 0 to final_weight at step `steps − 1` and stays there.
    LinearWarmup {
        /// The length of the warm-up (at least 1).
        steps: usize,
        /// The weight after the warm-up, non-negative.
        final_weight: f64,
    },
}

impl Default for KlWeightSchedule {
    fn default() -> Self {
        KlWeightSchedule::Constant { weight: 1.0 }
    }
}

impl KlWeightSchedule {
    /// The weight at `step`.
    pub fn weight(&self, step: usize) -> f64 {
        match *self {
            KlWeightSchedule::Constant { weight } => weight,
            KlWeightSchedule::LinearWarmup {
                steps,
                final_weight,
            } => {
                let fraction = ((step as f64 + 1.0) / steps.max(1) as f64).min(1.0);
                final_weight * fraction
            }
        }
    }

    /// Checks that the schedule's numbers make sense.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let (weight, steps) = match *self {
            KlWeightSchedule::Constant { weight } => (weight, 1),
            KlWeightSchedule::LinearWarmup {
                steps,
                final_weight,
            } => (final_weight, steps),
        };
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(SettingsError::new(format!(
                "the KL weight must be non-negative and finite, got {weight}"
            )));
        }
        if steps == 0 {
            return Err(SettingsError::new(
                "the KL warm-up must last at least 1 step",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_schedules_give_the_documented_factors() {
        assert_eq!(LearningRateSchedule::Constant.factor(12345), 1.0);
        let step = LearningRateSchedule::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert_eq!(step.factor(0), 1.0);
        assert_eq!(step.factor(9), 1.0);
        assert_eq!(step.factor(10), 0.5);
        assert_eq!(step.factor(25), 0.25);
        let exponential = LearningRateSchedule::Exponential { gamma: 0.9 };
        assert_eq!(exponential.factor(0), 1.0);
        assert!((exponential.factor(2) - 0.81).abs() < 1e-15);
        assert!((exponential.factor(100) - 0.9f64.powi(100)).abs() < 1e-15);
    }

    #[test]
    fn kl_weight_schedules_give_the_documented_weights() {
        assert_eq!(KlWeightSchedule::default().weight(7), 1.0);
        let warmup = KlWeightSchedule::LinearWarmup {
            steps: 4,
            final_weight: 0.5,
        };
        assert_eq!(warmup.weight(0), 0.125);
        assert_eq!(warmup.weight(1), 0.25);
        assert_eq!(warmup.weight(3), 0.5);
        assert_eq!(warmup.weight(100), 0.5);
    }

    #[test]
    fn bad_schedules_are_reported() {
        assert!(LearningRateSchedule::Step {
            step_size: 0,
            gamma: 0.5
        }
        .validate()
        .is_err());
        assert!(LearningRateSchedule::Exponential { gamma: f64::NAN }
            .validate()
            .is_err());
        assert!(LearningRateSchedule::Exponential { gamma: 0.99 }
            .validate()
            .is_ok());
        assert!(KlWeightSchedule::Constant { weight: -1.0 }
            .validate()
            .is_err());
        assert!(KlWeightSchedule::LinearWarmup {
            steps: 0,
            final_weight: 1.0
        }
        .validate()
        .is_err());
    }
}
