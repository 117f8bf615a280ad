//! Convergence monitoring of a stochastic optimisation: a windowed stationarity test on the loss,
//! so that no run ends silently while its loss is still falling.
//!
//! Every `check_every` steps (once at least `min_steps` have been taken) the last 2W losses are
//! split into two consecutive windows of W = max(`min_window`, ⌊t · `window_fraction`⌋) steps,
//! where t is the number of steps taken. The evidence is the decrease of the mean loss from the
//! earlier to the later window, d = mean(earlier) − mean(later), against the standard error of
//! that difference, se = σ̂ √(2 / W), where σ̂ is the loss's noise sd estimated from first
//! differences in the later window, σ̂² = mean((ℓᵢ − ℓᵢ₋₁)²) / 2. First differences remove a
//! slow trend, so σ̂ measures the step-to-step noise of the estimate and not the descent itself.
//! The loss counts as stationary when d < max(`z` · se, `absolute_tolerance`). Because the
//! windows grow with t, a slow steady descent that hides in the noise of short windows is seen
//! by longer ones: the decrease grows like W and the standard error shrinks like 1 / √W.
//!
//! With `stop_when_converged` (`--steps auto`) the fit returns the average of the parameters
//! over the later window (Polyak–Ruppert averaging) rather than the last iterate, which with a
//! constant learning rate wanders about the optimum by a fair fraction of the guide's scales.
//!
//! A deterministic loss (MAP, a model without random draws) has σ̂ near zero, and the absolute
//! tolerance (in nats) then decides.

/// How convergence is judged and whether it ends the run.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvergenceSettings {
    /// Stop as soon as the loss is stationary (`--steps auto`) and return the parameters
    /// averaged over the last window; otherwise run every step, return the last iterate and
    /// only report.
    pub stop_when_converged: bool,
    /// No check before this many steps have been taken.
    pub min_steps: usize,
    /// The smallest window length W.
    pub min_window: usize,
    /// W is at least this fraction of the steps taken.
    pub window_fraction: f64,
    /// Check every this many steps.
    pub check_every: usize,
    /// The number of standard errors a decrease must exceed to count as still falling.
    pub z: f64,
    /// A decrease below this many nats per window never counts as still falling.
    pub absolute_tolerance: f64,
}

impl Default for ConvergenceSettings {
    fn default() -> Self {
        ConvergenceSettings {
            stop_when_converged: false,
            min_steps: 1000,
            min_window: 200,
            window_fraction: 0.2,
            check_every: 100,
            z: 2.0,
            absolute_tolerance: 0.01,
        }
    }
}

impl ConvergenceSettings {
    /// Checks that the numbers make sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_window < 2 {
            return Err("the convergence window must be at least 2 steps".to_string());
        }
        if self.check_every == 0 {
            return Err("convergence checks need a positive interval".to_string());
        }
        if !(self.window_fraction > 0.0 && self.window_fraction <= 0.5) {
            return Err(format!(
                "the convergence window fraction must lie in (0, 0.5], got {}",
                self.window_fraction
            ));
        }
        if !(self.z.is_finite() && self.z > 0.0) {
            return Err(format!(
                "the convergence threshold z must be positive, got {}",
                self.z
            ));
        }
        if !(self.absolute_tolerance.is_finite() && self.absolute_tolerance >= 0.0) {
            return Err(format!(
                "the convergence tolerance must be non-negative, got {}",
                self.absolute_tolerance
            ));
        }
        Ok(())
    }

    /// The window length after `taken` steps: the fraction of the steps taken, rounded down to
    /// a multiple of `check_every`, and at least `min_window`.
    pub fn window(&self, taken: usize) -> usize {
        let fraction = (taken as f64 * self.window_fraction).floor() as usize;
        let every = self.check_every.max(1);
        self.min_window.max(fraction / every * every)
    }
}

/// The outcome of one stationarity test: the evidence behind `converged`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvergenceReport {
    /// Whether the loss was stationary.
    pub converged: bool,
    /// The steps taken when the test ran.
    pub steps: usize,
    /// The window length W.
    pub window: usize,
    /// The mean loss over the later window.
    pub final_loss: f64,
    /// mean(earlier window) − mean(later window): positive while the loss falls.
    pub decrease: f64,
    /// The loss's noise sd σ̂ from first differences.
    pub noise_sd: f64,
    /// The standard error of the decrease, σ̂ √(2 / W).
    pub standard_error: f64,
}

impl ConvergenceReport {
    /// The decrease in standard errors (infinite for a deterministic loss that still falls).
    pub fn decrease_z(&self) -> f64 {
        if self.standard_error > 0.0 {
            self.decrease / self.standard_error
        } else if self.decrease > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    }

    /// A sentence naming the evidence, for a warning: how much the loss fell over the last
    /// window against its noise.
    pub fn evidence(&self) -> String {
        format!(
            "the mean loss fell by {:.4} over the last {} steps (from one window of {} steps to \
             the next), {:.1} times the spread such a fall has from noise alone (the loss's \
             step-to-step noise sd is {:.4})",
            self.decrease,
            self.window,
            self.window,
            self.decrease_z(),
            self.noise_sd
        )
    }
}

/// The stationarity test on the losses `losses` (oldest first); `None` when there are fewer
/// than two windows of losses.
pub fn test_stationarity(
    losses: &[f64],
    settings: &ConvergenceSettings,
) -> Option<ConvergenceReport> {
    let taken = losses.len();
    let window = settings.window(taken);
    if taken < 2 * window || window < 2 {
        return None;
    }
    let later = &losses[taken - window..];
    let earlier = &losses[taken - 2 * window..taken - window];
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let final_loss = mean(later);
    let decrease = mean(earlier) - final_loss;
    let squared_differences: f64 = later.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum();
    let noise_sd = (squared_differences / (2.0 * (window - 1) as f64)).sqrt();
    let standard_error = noise_sd * (2.0 / window as f64).sqrt();
    let converged = decrease.is_finite()
        && decrease < (settings.z * standard_error).max(settings.absolute_tolerance);
    Some(ConvergenceReport {
        converged,
        steps: taken,
        window,
        final_loss,
        decrease,
        noise_sd,
        standard_error,
    })
}

/// Whether a check is due after `taken` steps.
pub fn check_due(taken: usize, settings: &ConvergenceSettings) -> bool {
    taken >= settings.min_steps && taken.is_multiple_of(settings.check_every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;
    use rand_distr::{Distribution, StandardNormal};

    fn noisy(values: impl Iterator<Item = f64>, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = stream_rng(seed, 0);
        values
            .map(|v| {
                let e: f64 = StandardNormal.sample(&mut rng);
                v + sd * e
            })
            .collect()
    }

    #[test]
    fn stationary_noise_is_converged() {
        let settings = ConvergenceSettings::default();
        let mut false_alarms = 0;
        for seed in 0..200 {
            let losses = noisy((0..2000).map(|_| 10.0), 1.0, seed);
            let report = test_stationarity(&losses, &settings).unwrap();
            assert_eq!(report.window, 400);
            if !report.converged {
                false_alarms += 1;
            }
            // The noise sd from first differences estimates the true sd of 1 to within a few
            // of its standard errors, 1/√(2 W) ≈ 0.035 (differences are correlated; 0.15 is
            // over four of those).
            assert!((report.noise_sd - 1.0).abs() < 0.15, "{}", report.noise_sd);
        }
        // A one-sided z = 2 test has a 2.3 % false-alarm rate: 4.6 of 200 expected, sd 2.1.
        assert!(false_alarms <= 12, "{false_alarms} false alarms");
    }

    #[test]
    fn a_falling_loss_hidden_in_noise_is_not_converged() {
        let settings = ConvergenceSettings::default();
        // A fall of 0.0005 per step is a tenth of a noise sd over 200 steps, but 0.2 nats
        // between two windows of 400 steps, 2.8 standard errors (σ √(2/400) = 0.071).
        let losses = noisy((0..2000).map(|t| 100.0 - 0.0005 * t as f64), 1.0, 7);
        let report = test_stationarity(&losses, &settings).unwrap();
        assert!((report.decrease - 0.2).abs() < 4.0 * 0.071, "{report:?}");
        // A steeper fall is detected whatever the noise draw.
        let losses = noisy((0..2000).map(|t| 100.0 - 0.002 * t as f64), 1.0, 8);
        let report = test_stationarity(&losses, &settings).unwrap();
        assert!(!report.converged, "{report:?}");
        assert!(report.decrease_z() > 5.0);
        assert!(report.evidence().contains("fell by"));
    }

    #[test]
    fn deterministic_losses_use_the_absolute_tolerance() {
        let settings = ConvergenceSettings::default();
        // An exponential approach: still falling by more than 0.01 per window at t = 1000.
        let falling: Vec<f64> = (0..1000).map(|t| (-(t as f64) / 300.0).exp()).collect();
        let report = test_stationarity(&falling, &settings).unwrap();
        assert!(!report.converged);
        // Without noise, first differences measure the descent itself, σ̂ ≈ slope / √2, so
        // the decrease (about slope · W) is about W^1.5 standard errors.
        assert!(report.decrease_z() > 1000.0, "{report:?}");
        let flat: Vec<f64> = (0..1000).map(|t| (-(t as f64) / 30.0).exp()).collect();
        assert!(test_stationarity(&flat, &settings).unwrap().converged);
    }

    #[test]
    fn too_few_losses_give_no_verdict() {
        let settings = ConvergenceSettings::default();
        assert!(test_stationarity(&[1.0; 399], &settings).is_none());
        assert!(check_due(1000, &settings));
        assert!(!check_due(1050, &settings));
        assert!(!check_due(900, &settings));
        assert!(settings.validate().is_ok());
        let bad = ConvergenceSettings {
            window_fraction: 0.7,
            ..settings
        };
        assert!(bad.validate().is_err());
    }
}
