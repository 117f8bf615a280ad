//! First-order optimisers over a flat parameter vector: Adam, Pyro's ClippedAdam and SGD with
//! momentum, with a learning-rate schedule and optional global gradient-norm clipping.
//!
//! An [`Optimizer`] owns its moment buffers, allocated once; [`Optimizer::step`] allocates
//! nothing. Gradients are gradients of the loss (the optimisers minimise).

use crate::vi::error::SettingsError;
use crate::vi::schedule::LearningRateSchedule;

/// Adam (Kingma and Ba, 2015) with bias-corrected moments:
/// θ ← θ − lr · m̂ / (√v̂ + ε), m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ).
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// The base learning rate.
    pub learning_rate: f64,
    /// The decay of the first moment, β₁.
    pub beta1: f64,
    /// The decay of the second moment, β₂.
    pub beta2: f64,
    /// The denominator's guard, ε.
    pub epsilon: f64,
    /// L2 weight decay added to the gradient (λ θ); 0 for none.
    pub weight_decay: f64,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            learning_rate: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Pyro's ClippedAdam: each gradient element is clamped to [−clip_norm, clip_norm], and the
/// learning rate is multiplied by `learning_rate_decay` at the start of every update, so the k-th
/// update (from 0) uses lr · lrdᵏ⁺¹. The update is θ ← θ − lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ) · m / (√v + ε).
#[derive(Clone, Debug, PartialEq)]
pub struct ClippedAdam {
    /// The base learning rate.
    pub learning_rate: f64,
    /// The decay of the first moment, β₁.
    pub beta1: f64,
    /// The decay of the second moment, β₂.
    pub beta2: f64,
    /// The denominator's guard, ε.
    pub epsilon: f64,
    /// L2 weight decay added to the gradient after clamping; 0 for none.
    pub weight_decay: f64,
    /// The bound on each gradient element's magnitude.
    pub clip_norm: f64,
    /// The learning rate's multiplier per update (Pyro's `lrd`); 1 for none.
    pub learning_rate_decay: f64,
}

impl Default for ClippedAdam {
    fn default() -> Self {
        ClippedAdam {
            learning_rate: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            clip_norm: 10.0,
            learning_rate_decay: 1.0,
        }
    }
}

/// Stochastic gradient descent with (optionally Nesterov) momentum, as in PyTorch:
/// b ← μ b + (1 − dampening) g (b = g at the first update), then θ ← θ − lr · b, or
/// θ ← θ − lr · (g + μ b) with Nesterov momentum.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// The base learning rate.
    pub learning_rate: f64,
    /// The momentum μ in [0, 1); 0 for plain SGD.
    pub momentum: f64,
    /// The dampening of the gradient in the momentum buffer, in [0, 1].
    pub dampening: f64,
    /// Nesterov's look-ahead form of momentum.
    pub nesterov: bool,
    /// L2 weight decay added to the gradient (λ θ); 0 for none.
    pub weight_decay: f64,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            learning_rate: 0.01,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Which optimiser, with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimizerKind {
    /// Adam.
    Adam(Adam),
    /// Pyro's ClippedAdam.
    ClippedAdam(ClippedAdam),
    /// SGD with momentum.
    Sgd(Sgd),
}

impl Default for OptimizerKind {
    fn default() -> Self {
        OptimizerKind::Adam(Adam::default())
    }
}

impl OptimizerKind {
    /// The short name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Adam(_) => "adam",
            OptimizerKind::ClippedAdam(_) => "clipped_adam",
            OptimizerKind::Sgd(_) => "sgd",
        }
    }

    /// The base learning rate.
    pub fn learning_rate(&self) -> f64 {
        match self {
            OptimizerKind::Adam(adam) => adam.learning_rate,
            OptimizerKind::ClippedAdam(clipped) => clipped.learning_rate,
            OptimizerKind::Sgd(sgd) => sgd.learning_rate,
        }
    }

    /// Replaces the base learning rate (what `--lr` sets).
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        match self {
            OptimizerKind::Adam(adam) => adam.learning_rate = learning_rate,
            OptimizerKind::ClippedAdam(clipped) => clipped.learning_rate = learning_rate,
            OptimizerKind::Sgd(sgd) => sgd.learning_rate = learning_rate,
        }
    }
}

/// An optimiser with its learning-rate schedule and gradient clipping.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OptimizerSettings {
    /// The update rule.
    pub kind: OptimizerKind,
    /// The factor on the base learning rate per step.
    pub schedule: LearningRateSchedule,
    /// When set, the gradient is rescaled so that its Euclidean norm is at most this, before the
    /// update rule sees it.
    pub max_gradient_norm: Option<f64>,
}

impl OptimizerSettings {
    /// Checks that the numbers make sense.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = |name: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(SettingsError::new(format!(
                    "{name} must be positive and finite, got {value}"
                )))
            }
        };
        let unit = |name: &str, value: f64| {
            if (0.0..1.0).contains(&value) {
                Ok(())
            } else {
                Err(SettingsError::new(format!(
                    "{name} must be in [0, 1), got {value}"
                )))
            }
        };
        let non_negative = |name: &str, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(())
            } else {
                Err(SettingsError::new(format!(
                    "{name} must be non-negative, got {value}"
                )))
            }
        };
        positive("the learning rate", self.kind.learning_rate())?;
        match &self.kind {
            OptimizerKind::Adam(adam) => {
                unit("Adam's beta1", adam.beta1)?;
                unit("Adam's beta2", adam.beta2)?;
                positive("Adam's epsilon", adam.epsilon)?;
                non_negative("the weight decay", adam.weight_decay)?;
            }
            OptimizerKind::ClippedAdam(clipped) => {
                unit("ClippedAdam's beta1", clipped.beta1)?;
                unit("ClippedAdam's beta2", clipped.beta2)?;
                positive("ClippedAdam's epsilon", clipped.epsilon)?;
                non_negative("the weight decay", clipped.weight_decay)?;
                positive("ClippedAdam's clip norm", clipped.clip_norm)?;
                positive(
                    "ClippedAdam's learning-rate decay",
                    clipped.learning_rate_decay,
                )?;
            }
            OptimizerKind::Sgd(sgd) => {
                unit("SGD's momentum", sgd.momentum)?;
                if !(0.0..=1.0).contains(&sgd.dampening) {
                    return Err(SettingsError::new(format!(
                        "SGD's dampening must be in [0, 1], got {}",
                        sgd.dampening
                    )));
                }
                non_negative("the weight decay", sgd.weight_decay)?;
            }
        }
        if let Some(max_norm) = self.max_gradient_norm {
            positive("the maximum gradient norm", max_norm)?;
        }
        self.schedule.validate()
    }
}

/// Rescales `gradient` so that its Euclidean norm is at most `max_norm`; returns the norm it had.
pub fn clip_gradient_norm(gradient: &mut [f64], max_norm: f64) -> f64 {
    let norm = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
    if norm > max_norm {
        let factor = max_norm / norm;
        for g in gradient.iter_mut() {
            *g *= factor;
        }
    }
    norm
}

/// An [`Optimizer`]'s state between two updates.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Adam's first moment, or SGD's momentum buffer.
    pub first_moment: Vec<f64>,
    /// Adam's second moment (empty for SGD).
    pub second_moment: Vec<f64>,
    /// How many updates have been applied.
    pub n_updates: u64,
}

/// An optimiser's state over a parameter vector of fixed length.
#[derive(Clone, Debug)]
pub struct Optimizer {
    settings: OptimizerSettings,
    /// Adam's first moment, or SGD's momentum buffer.
    first_moment: Vec<f64>,
    /// Adam's second moment (empty for SGD).
    second_moment: Vec<f64>,
    /// How many updates have been applied.
    n_updates: u64,
}

impl Optimizer {
    /// An optimiser for `n_params` parameters, with zero moments.
    pub fn new(settings: &OptimizerSettings, n_params: usize) -> Result<Self, SettingsError> {
        settings.validate()?;
        let second_len = match settings.kind {
            OptimizerKind::Sgd(_) => 0,
            _ => n_params,
        };
        Ok(Optimizer {
            settings: settings.clone(),
            first_moment: vec![0.0; n_params],
            second_moment: vec![0.0; second_len],
            n_updates: 0,
        })
    }

    /// How many updates have been applied.
    pub fn n_updates(&self) -> u64 {
        self.n_updates
    }

    /// The optimiser's state between two updates (its moments and update count), from which
    /// [`Optimizer::restore`] continues bit for bit.
    pub fn state(&self) -> OptimizerState {
        OptimizerState {
            first_moment: self.first_moment.clone(),
            second_moment: self.second_moment.clone(),
            n_updates: self.n_updates,
        }
    }

    /// Continues from a state saved by [`Optimizer::state`] for the same settings; the message
    /// says why the state does not fit.
    pub fn restore(&mut self, state: &OptimizerState) -> Result<(), String> {
        if state.first_moment.len() != self.first_moment.len()
            || state.second_moment.len() != self.second_moment.len()
        {
            return Err(format!(
                "the saved optimiser has moments of {} and {} values, not {} and {}",
                state.first_moment.len(),
                state.second_moment.len(),
                self.first_moment.len(),
                self.second_moment.len()
            ));
        }
        self.first_moment.copy_from_slice(&state.first_moment);
        self.second_moment.copy_from_slice(&state.second_moment);
        self.n_updates = state.n_updates;
        Ok(())
    }

    /// The learning rate the next update at `step` uses (schedule and ClippedAdam's decay
    /// included).
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        let mut rate = self.settings.kind.learning_rate() * self.settings.schedule.factor(step);
        if let OptimizerKind::ClippedAdam(clipped) = &self.settings.kind {
            rate *= clipped
                .learning_rate_decay
                .powf(self.n_updates as f64 + 1.0);
        }
        rate
    }

    /// Applies one update at `step` to `params`, given the loss gradient `gradient` (which is
    /// clipped in place when the settings ask for it). Both slices have the optimiser's length.
    pub fn step(&mut self, step: usize, params: &mut [f64], gradient: &mut [f64]) {
        self.step_and_check(step, params, gradient);
    }

    /// [`Optimizer::step`], returning whether every updated parameter is finite (checked in the
    /// update's own pass, not in a second one over the parameters).
    ///
    /// Adam's update is written with multiplications by per-step constants, so that the loop
    /// has one square root and one division per coordinate and vectorises:
    /// lr · m̂ / (√v̂ + ε) = (lr / c₁) · m / (√v · (1 / √c₂) + ε), c₁ = 1 − β₁ᵗ, c₂ = 1 − β₂ᵗ.
    pub fn step_and_check(
        &mut self,
        step: usize,
        params: &mut [f64],
        gradient: &mut [f64],
    ) -> bool {
        const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
        let mut non_finite = 0u64;
        debug_assert_eq!(params.len(), self.first_moment.len());
        debug_assert_eq!(gradient.len(), self.first_moment.len());
        if let Some(max_norm) = self.settings.max_gradient_norm {
            clip_gradient_norm(gradient, max_norm);
        }
        let learning_rate = self.learning_rate_at(step);
        let t = (self.n_updates + 1) as f64;
        match &self.settings.kind {
            OptimizerKind::Adam(adam) => {
                let correction1 = 1.0 - adam.beta1.powf(t);
                let correction2 = 1.0 - adam.beta2.powf(t);
                let update = bdl_vmath::AdamUpdate {
                    beta1: adam.beta1,
                    beta2: adam.beta2,
                    step_size: learning_rate / correction1,
                    inverse_root_correction: 1.0 / correction2.sqrt(),
                    epsilon: adam.epsilon,
                    weight_decay: adam.weight_decay,
                };
                let finite = bdl_vmath::adam_update(
                    &update,
                    params,
                    gradient,
                    &mut self.first_moment,
                    &mut self.second_moment,
                );
                non_finite = u64::from(!finite);
            }
            OptimizerKind::ClippedAdam(clipped) => {
                let correction1 = 1.0 - clipped.beta1.powf(t);
                let correction2 = 1.0 - clipped.beta2.powf(t);
                let step_size = learning_rate * correction2.sqrt() / correction1;
                for (((theta, &g), m), v) in params
                    .iter_mut()
                    .zip(gradient.iter())
                    .zip(self.first_moment.iter_mut())
                    .zip(self.second_moment.iter_mut())
                {
                    let g = g.clamp(-clipped.clip_norm, clipped.clip_norm)
                        + clipped.weight_decay * *theta;
                    *m = clipped.beta1 * *m + (1.0 - clipped.beta1) * g;
                    *v = clipped.beta2 * *v + (1.0 - clipped.beta2) * g * g;
                    *theta -= step_size * *m / (v.sqrt() + clipped.epsilon);
                    non_finite |= u64::from(theta.to_bits() & EXPONENT == EXPONENT);
                }
            }
            OptimizerKind::Sgd(sgd) => {
                let first = self.n_updates == 0;
                for ((theta, &g), buffer) in params
                    .iter_mut()
                    .zip(gradient.iter())
                    .zip(self.first_moment.iter_mut())
                {
                    let g = g + sgd.weight_decay * *theta;
                    let direction = if sgd.momentum > 0.0 {
                        *buffer = if first {
                            g
                        } else {
                            sgd.momentum * *buffer + (1.0 - sgd.dampening) * g
                        };
                        if sgd.nesterov {
                            g + sgd.momentum * *buffer
                        } else {
                            *buffer
                        }
                    } else {
                        g
                    };
                    *theta -= learning_rate * direction;
                    non_finite |= u64::from(theta.to_bits() & EXPONENT == EXPONENT);
                }
            }
        }
        self.n_updates += 1;
        non_finite == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kind: OptimizerKind) -> OptimizerSettings {
        OptimizerSettings {
            kind,
            ..OptimizerSettings::default()
        }
    }

    /// The gradient of the quadratic ½ Σ a_i (θ_i − c_i)².
    fn quadratic_gradient(theta: &[f64], gradient: &mut [f64]) {
        let curvature = [1.0, 10.0, 0.1];
        let centre = [3.0, -2.0, 0.5];
        for i in 0..3 {
            gradient[i] = curvature[i] * (theta[i] - centre[i]);
        }
    }

    fn minimise(kind: OptimizerKind, steps: usize) -> Vec<f64> {
        let mut optimizer = Optimizer::new(&settings(kind), 3).unwrap();
        let mut theta = vec![0.0; 3];
        let mut gradient = vec![0.0; 3];
        for step in 0..steps {
            quadratic_gradient(&theta, &mut gradient);
            optimizer.step(step, &mut theta, &mut gradient);
        }
        theta
    }

    #[test]
    fn adam_converges_on_a_quadratic() {
        let adam = Adam {
            learning_rate: 0.05,
            ..Adam::default()
        };
        let theta = minimise(OptimizerKind::Adam(adam), 3000);
        for (value, target) in theta.iter().zip([3.0, -2.0, 0.5]) {
            assert!((value - target).abs() < 1e-3, "{value} vs {target}");
        }
    }

    #[test]
    fn sgd_with_momentum_converges_on_a_quadratic() {
        let sgd = Sgd {
            learning_rate: 0.05,
            ..Sgd::default()
        };
        let theta = minimise(OptimizerKind::Sgd(sgd.clone()), 2000);
        for (value, target) in theta.iter().zip([3.0, -2.0, 0.5]) {
            assert!((value - target).abs() < 1e-3, "{value} vs {target}");
        }
        let nesterov = Sgd {
            nesterov: true,
            ..sgd
        };
        let theta = minimise(OptimizerKind::Sgd(nesterov), 2000);
        for (value, target) in theta.iter().zip([3.0, -2.0, 0.5]) {
            assert!((value - target).abs() < 1e-3, "{value} vs {target}");
        }
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        // With m̂ = g and v̂ = g², the first update is lr · g / (|g| + ε).
        let mut optimizer = Optimizer::new(&settings(OptimizerKind::default()), 2).unwrap();
        let mut theta = vec![1.0, 1.0];
        let mut gradient = vec![100.0, -0.5];
        optimizer.step(0, &mut theta, &mut gradient);
        assert!((theta[0] - (1.0 - 0.01 * 100.0 / (100.0 + 1e-8))).abs() < 1e-15);
        assert!((theta[1] - (1.0 + 0.01 * 0.5 / (0.5 + 1e-8))).abs() < 1e-15);
    }

    #[test]
    fn sgd_momentum_follows_the_documented_recursion() {
        let sgd = Sgd {
            learning_rate: 0.1,
            momentum: 0.5,
            ..Sgd::default()
        };
        let mut optimizer = Optimizer::new(&settings(OptimizerKind::Sgd(sgd)), 1).unwrap();
        let mut theta = vec![0.0];
        optimizer.step(0, &mut theta, &mut [2.0]);
        // b = 2, θ = −0.2.
        assert!((theta[0] + 0.2).abs() < 1e-15);
        optimizer.step(1, &mut theta, &mut [1.0]);
        // b = 0.5 · 2 + 1 = 2, θ = −0.2 − 0.2 = −0.4.
        assert!((theta[0] + 0.4).abs() < 1e-15);
    }

    #[test]
    fn clipped_adam_clamps_each_gradient_element() {
        // Gradients 1000 then −1. Clamped to ±1 the second first moment is
        // 0.9 · 0.1 − 0.1 = −0.01, so the second update moves θ up; without clamping the first
        // moment stays positive and θ keeps going down.
        let clipped = ClippedAdam {
            learning_rate: 0.1,
            clip_norm: 1.0,
            ..ClippedAdam::default()
        };
        let mut optimizer =
            Optimizer::new(&settings(OptimizerKind::ClippedAdam(clipped)), 1).unwrap();
        let mut theta = vec![0.0];
        optimizer.step(0, &mut theta, &mut [1000.0]);
        let after_first = theta[0];
        optimizer.step(1, &mut theta, &mut [-1.0]);
        assert!(theta[0] > after_first, "clamped: the second step goes up");

        let adam = Adam {
            learning_rate: 0.1,
            ..Adam::default()
        };
        let mut optimizer = Optimizer::new(&settings(OptimizerKind::Adam(adam)), 1).unwrap();
        let mut theta = vec![0.0];
        optimizer.step(0, &mut theta, &mut [1000.0]);
        let after_first = theta[0];
        optimizer.step(1, &mut theta, &mut [-1.0]);
        assert!(
            theta[0] < after_first,
            "unclamped: the second step goes down"
        );
    }

    #[test]
    fn clipped_adam_first_step_follows_pyro() {
        // m = (1 − β₁) g, v = (1 − β₂) g², step = lr · lrd · √(1 − β₂) / (1 − β₁) · m / (√v + ε).
        let clipped = ClippedAdam {
            learning_rate: 0.1,
            learning_rate_decay: 0.5,
            ..ClippedAdam::default()
        };
        let mut optimizer =
            Optimizer::new(&settings(OptimizerKind::ClippedAdam(clipped)), 1).unwrap();
        let mut theta = vec![1.0];
        optimizer.step(0, &mut theta, &mut [2.0]);
        let m = 0.1 * 2.0;
        let v: f64 = 0.001 * 4.0;
        let expected = 1.0 - 0.05 * 0.001f64.sqrt() / 0.1 * m / (v.sqrt() + 1e-8);
        assert!(
            (theta[0] - expected).abs() < 1e-15,
            "{} vs {expected}",
            theta[0]
        );
    }

    #[test]
    fn clipped_adam_decays_its_learning_rate_per_update() {
        let clipped = ClippedAdam {
            learning_rate: 0.1,
            learning_rate_decay: 0.5,
            ..Default::default()
        };
        let mut optimizer =
            Optimizer::new(&settings(OptimizerKind::ClippedAdam(clipped)), 1).unwrap();
        assert_eq!(optimizer.learning_rate_at(0), 0.05);
        let mut theta = vec![0.0];
        optimizer.step(0, &mut theta, &mut [1.0]);
        optimizer.step(1, &mut theta, &mut [1.0]);
        assert_eq!(optimizer.learning_rate_at(2), 0.0125);
    }

    #[test]
    fn schedules_scale_the_learning_rate() {
        let settings = OptimizerSettings {
            schedule: LearningRateSchedule::Step {
                step_size: 100,
                gamma: 0.1,
            },
            ..OptimizerSettings::default()
        };
        let optimizer = Optimizer::new(&settings, 1).unwrap();
        assert_eq!(optimizer.learning_rate_at(99), 0.01);
        assert!((optimizer.learning_rate_at(100) - 0.001).abs() < 1e-18);
    }

    #[test]
    fn global_norm_clipping_rescales_the_whole_gradient() {
        let mut gradient = [3.0, 4.0];
        assert_eq!(clip_gradient_norm(&mut gradient, 1.0), 5.0);
        assert!((gradient[0] - 0.6).abs() < 1e-15 && (gradient[1] - 0.8).abs() < 1e-15);
        let mut small = [0.3, 0.4];
        clip_gradient_norm(&mut small, 1.0);
        assert_eq!(small, [0.3, 0.4]);

        // Through the optimiser: SGD without momentum moves by lr times the clipped gradient.
        let settings = OptimizerSettings {
            kind: OptimizerKind::Sgd(Sgd {
                learning_rate: 1.0,
                momentum: 0.0,
                ..Sgd::default()
            }),
            max_gradient_norm: Some(1.0),
            ..OptimizerSettings::default()
        };
        let mut optimizer = Optimizer::new(&settings, 2).unwrap();
        let mut theta = vec![0.0, 0.0];
        optimizer.step(0, &mut theta, &mut [30.0, 40.0]);
        assert!((theta[0] + 0.6).abs() < 1e-15 && (theta[1] + 0.8).abs() < 1e-15);
    }

    #[test]
    fn invalid_settings_are_reported() {
        let mut bad = OptimizerSettings::default();
        bad.kind.set_learning_rate(-1.0);
        assert!(Optimizer::new(&bad, 1).is_err());
        let bad = OptimizerSettings {
            max_gradient_norm: Some(0.0),
            ..Default::default()
        };
        assert!(Optimizer::new(&bad, 1).is_err());
        let bad = OptimizerSettings {
            kind: OptimizerKind::Adam(Adam {
                beta2: 1.0,
                ..Adam::default()
            }),
            ..Default::default()
        };
        assert!(Optimizer::new(&bad, 1).is_err());
    }
}
