//! Stan's warm-up: the initial step-size search, dual averaging of the step size, and windowed
//! estimation of the metric.
//!
//! Warm-up has three stages. A fast initial buffer (75 iterations) adapts only the step size while
//! the chain finds the typical set; a series of slow windows (25, 50, 100, … iterations, the last
//! one stretched to the terminal buffer) each estimate the posterior covariance from their draws
//! and install it, regularised, as the inverse metric, after which the step size search restarts;
//! a terminal buffer (50 iterations) adapts the step size to the final metric. Warm-ups too short
//! for those stages are cut 15% / 75% / 10%; below 20 iterations only the step size adapts.

use super::integrator::{leapfrog, PhasePoint};
use super::metric::{Metric, MetricError, MetricKind};
use crate::density::{LogDensity, LogDensityError};
use crate::rng::Rng;

/// The tuning constants of warm-up (Stan's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptationSettings {
    /// Dual averaging's adaptation regularisation scale γ.
    pub gamma: f64,
    /// Dual averaging's relaxation exponent κ.
    pub kappa: f64,
    /// Dual averaging's adaptation iteration offset t₀.
    pub t0: f64,
    /// Iterations at the start of warm-up that adapt only the step size.
    pub init_buffer: usize,
    /// Iterations at the end of warm-up that adapt only the step size.
    pub term_buffer: usize,
    /// The length of the first metric window; each next one is twice as long.
    pub base_window: usize,
}

impl Default for AdaptationSettings {
    fn default() -> Self {
        AdaptationSettings {
            gamma: 0.05,
            kappa: 0.75,
            t0: 10.0,
            init_buffer: 75,
            term_buffer: 50,
            base_window: 25,
        }
    }
}

/// Nesterov dual averaging of log ε towards a target mean acceptance statistic δ
/// (Hoffman & Gelman 2014, algorithm 5).
#[derive(Clone, Debug)]
pub(crate) struct DualAveraging {
    mu: f64,
    delta: f64,
    gamma: f64,
    kappa: f64,
    t0: f64,
    counter: f64,
    s_bar: f64,
    x_bar: f64,
}

impl DualAveraging {
    pub(crate) fn new(settings: &AdaptationSettings, target_accept: f64, mu: f64) -> Self {
        DualAveraging {
            mu,
            delta: target_accept,
            gamma: settings.gamma,
            kappa: settings.kappa,
            t0: settings.t0,
            counter: 0.0,
            s_bar: 0.0,
            x_bar: 0.0,
        }
    }

    /// Restarts the averages around a new shrinkage point μ = log(10 ε).
    pub(crate) fn restart(&mut self, step_size: f64) {
        self.mu = (10.0 * step_size).ln();
        self.counter = 0.0;
        self.s_bar = 0.0;
        self.x_bar = 0.0;
    }

    /// Updates with one transition's acceptance statistic and returns the next step size.
    pub(crate) fn learn(&mut self, accept_stat: f64) -> f64 {
        self.counter += 1.0;
        let accept_stat = accept_stat.min(1.0);
        // s̄ₜ = (1 − ηₜ) s̄ₜ₋₁ + ηₜ (δ − αₜ) with ηₜ = 1 / (t + t₀).
        let eta = 1.0 / (self.counter + self.t0);
        self.s_bar = (1.0 - eta) * self.s_bar + eta * (self.delta - accept_stat);
        // xₜ = μ − √t s̄ₜ / γ, and x̄ averages xₜ with weight t^(−κ).
        let x = self.mu - self.s_bar * self.counter.sqrt() / self.gamma;
        let x_eta = self.counter.powf(-self.kappa);
        self.x_bar = (1.0 - x_eta) * self.x_bar + x_eta * x;
        x.exp()
    }

    /// The step size for sampling: exp(x̄).
    pub(crate) fn final_step_size(&self) -> f64 {
        self.x_bar.exp()
    }

    /// The averages that change as warm-up runs: μ, the iteration counter, s̄ and x̄.
    pub(crate) fn saved(&self) -> [f64; 4] {
        [self.mu, self.counter, self.s_bar, self.x_bar]
    }

    /// Restores averages given by [`DualAveraging::saved`].
    pub(crate) fn restore(&mut self, saved: [f64; 4]) {
        [self.mu, self.counter, self.s_bar, self.x_bar] = saved;
    }
}

/// Where the slow metric windows of warm-up start and end (Stan's `windowed_adaptation`).
#[derive(Clone, Debug)]
pub(crate) struct WindowSchedule {
    enabled: bool,
    n_warmup: usize,
    init_buffer: usize,
    term_buffer: usize,
    counter: usize,
    window_size: usize,
    next_window: usize,
}

impl WindowSchedule {
    pub(crate) fn new(n_warmup: usize, settings: &AdaptationSettings) -> Self {
        let (init_buffer, term_buffer, base_window) = if n_warmup < 20 {
            (0, 0, 0)
        } else if settings.init_buffer + settings.base_window + settings.term_buffer > n_warmup {
            // Too short for the configured stages: 15% / 75% / 10% of warm-up, one window.
            let init_buffer = (0.15 * n_warmup as f64) as usize;
            let term_buffer = (0.1 * n_warmup as f64) as usize;
            (
                init_buffer,
                term_buffer,
                n_warmup - init_buffer - term_buffer,
            )
        } else {
            (
                settings.init_buffer,
                settings.term_buffer,
                settings.base_window,
            )
        };
        WindowSchedule {
            enabled: n_warmup >= 20 && base_window > 0,
            n_warmup,
            init_buffer,
            term_buffer,
            counter: 0,
            window_size: base_window,
            next_window: (init_buffer + base_window).saturating_sub(1),
        }
    }

    /// The last iteration of the last window.
    fn last_window_end(&self) -> usize {
        self.n_warmup - self.term_buffer - 1
    }

    /// Whether the current iteration's draw feeds the metric estimate.
    fn in_window(&self) -> bool {
        self.enabled
            && self.counter >= self.init_buffer
            && self.counter < self.n_warmup - self.term_buffer
    }

    /// Whether the current iteration closes a window.
    fn window_ends(&self) -> bool {
        self.enabled && self.counter == self.next_window
    }

    fn compute_next_window(&mut self) {
        if self.next_window == self.last_window_end() {
            return;
        }
        self.window_size *= 2;
        self.next_window = self.counter + self.window_size;
        if self.next_window == self.last_window_end() {
            return;
        }
        // Stretch this window to the terminal buffer when the one after it would not fit.
        if self.next_window + 2 * self.window_size >= self.n_warmup - self.term_buffer {
            self.next_window = self.last_window_end();
        }
    }
}

/// Welford's running mean and (co)variance of the positions in the current window.
#[derive(Clone, Debug)]
enum Estimator {
    Diag {
        n: f64,
        mean: Vec<f64>,
        m2: Vec<f64>,
    },
    Dense {
        n: f64,
        mean: Vec<f64>,
        m2: Vec<f64>,
        delta: Vec<f64>,
    },
}

/// What the metric half of warm-up has learnt so far: where the window schedule stands and the
/// running (co)variance of the current window, as a saved chain state holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedMetricAdaptation {
    /// The warm-up iteration the schedule is at.
    pub counter: usize,
    /// The length of the current window.
    pub window_size: usize,
    /// The iteration that closes the current window.
    pub next_window: usize,
    /// How many draws the current window's estimate holds.
    pub n: f64,
    /// Their running mean.
    pub mean: Vec<f64>,
    /// Their running sums of squared deviations: `dim` of them for a diagonal metric, `dim × dim`
    /// (row-major) for a dense one.
    pub m2: Vec<f64>,
}

/// The metric half of warm-up: collects draws in windows and produces new metrics.
#[derive(Clone, Debug)]
pub(crate) struct MetricAdaptation {
    schedule: WindowSchedule,
    estimator: Estimator,
}

impl MetricAdaptation {
    pub(crate) fn new(
        kind: MetricKind,
        dim: usize,
        n_warmup: usize,
        settings: &AdaptationSettings,
    ) -> Self {
        let estimator = match kind {
            MetricKind::Diag => Estimator::Diag {
                n: 0.0,
                mean: vec![0.0; dim],
                m2: vec![0.0; dim],
            },
            MetricKind::Dense => Estimator::Dense {
                n: 0.0,
                mean: vec![0.0; dim],
                m2: vec![0.0; dim * dim],
                delta: vec![0.0; dim],
            },
        };
        MetricAdaptation {
            schedule: WindowSchedule::new(n_warmup, settings),
            estimator,
        }
    }

    /// The state to save (see [`SavedMetricAdaptation`]).
    pub(crate) fn saved(&self) -> SavedMetricAdaptation {
        let (n, mean, m2) = match &self.estimator {
            Estimator::Diag { n, mean, m2 } | Estimator::Dense { n, mean, m2, .. } => {
                (*n, mean.clone(), m2.clone())
            }
        };
        SavedMetricAdaptation {
            counter: self.schedule.counter,
            window_size: self.schedule.window_size,
            next_window: self.schedule.next_window,
            n,
            mean,
            m2,
        }
    }

    /// Restores a saved state into an adaptation made by [`MetricAdaptation::new`] with the same
    /// settings; the message says what does not fit.
    pub(crate) fn restore(&mut self, saved: &SavedMetricAdaptation) -> Result<(), String> {
        let (n, mean, m2) = match &mut self.estimator {
            Estimator::Diag { n, mean, m2 } | Estimator::Dense { n, mean, m2, .. } => (n, mean, m2),
        };
        if saved.mean.len() != mean.len() || saved.m2.len() != m2.len() {
            return Err(format!(
                "its metric estimate has {} and {} numbers where the settings need {} and {}",
                saved.mean.len(),
                saved.m2.len(),
                mean.len(),
                m2.len()
            ));
        }
        if saved.counter > self.schedule.n_warmup {
            return Err(format!(
                "its window schedule is at iteration {} of a warm-up of {}",
                saved.counter, self.schedule.n_warmup
            ));
        }
        *n = saved.n;
        mean.copy_from_slice(&saved.mean);
        m2.copy_from_slice(&saved.m2);
        self.schedule.counter = saved.counter;
        self.schedule.window_size = saved.window_size;
        self.schedule.next_window = saved.next_window;
        Ok(())
    }

    /// Feeds the position after one warm-up transition. Returns a new metric when a window
    /// closes: the sample (co)variance Σ shrunk as (n / (n + 5)) Σ + 10⁻³ (5 / (n + 5)) I.
    pub(crate) fn learn(&mut self, position: &[f64]) -> Option<Result<Metric, MetricError>> {
        if self.schedule.in_window() {
            self.estimator.add(position);
        }
        if self.schedule.window_ends() {
            self.schedule.compute_next_window();
            let metric = self.estimator.regularised_metric();
            self.estimator.restart();
            self.schedule.counter += 1;
            return Some(metric);
        }
        self.schedule.counter += 1;
        None
    }
}

impl Estimator {
    fn add(&mut self, q: &[f64]) {
        match self {
            Estimator::Diag { n, mean, m2 } => {
                *n += 1.0;
                for ((x, m), s) in q.iter().zip(mean.iter_mut()).zip(m2.iter_mut()) {
                    let delta = x - *m;
                    *m += delta / *n;
                    *s += (x - *m) * delta;
                }
            }
            Estimator::Dense { n, mean, m2, delta } => {
                *n += 1.0;
                let dim = mean.len();
                for ((d, x), m) in delta.iter_mut().zip(q).zip(mean.iter_mut()) {
                    *d = x - *m;
                    *m += *d / *n;
                }
                // M2 += (q − mean_new)(q − mean_old)ᵀ.
                for i in 0..dim {
                    let centred = q[i] - mean[i];
                    for (s, d) in m2[i * dim..(i + 1) * dim].iter_mut().zip(delta.iter()) {
                        *s += centred * d;
                    }
                }
            }
        }
    }

    fn restart(&mut self) {
        match self {
            Estimator::Diag { n, mean, m2 } => {
                *n = 0.0;
                mean.fill(0.0);
                m2.fill(0.0);
            }
            Estimator::Dense { n, mean, m2, .. } => {
                *n = 0.0;
                mean.fill(0.0);
                m2.fill(0.0);
            }
        }
    }

    fn regularised_metric(&self) -> Result<Metric, MetricError> {
        let overflow = || MetricError {
            message: "numerical overflow in metric adaptation: the sampler reached extreme values \
                      in unconstrained space, which happens when the posterior is too wide or \
                      improper"
                .into(),
        };
        match self {
            Estimator::Diag { n, m2, .. } => {
                let n = *n;
                let inverse: Vec<f64> = m2
                    .iter()
                    .map(|s| (n / (n + 5.0)) * (s / (n - 1.0)) + 1e-3 * (5.0 / (n + 5.0)))
                    .collect();
                if inverse.iter().any(|v| !v.is_finite()) {
                    return Err(overflow());
                }
                Metric::diag(inverse)
            }
            Estimator::Dense { n, m2, mean, .. } => {
                let n = *n;
                let dim = mean.len();
                let mut inverse: Vec<f64> = m2
                    .iter()
                    .map(|s| (n / (n + 5.0)) * (s / (n - 1.0)))
                    .collect();
                for i in 0..dim {
                    inverse[i * dim + i] += 1e-3 * (5.0 / (n + 5.0));
                }
                if inverse.iter().any(|v| !v.is_finite()) {
                    return Err(overflow());
                }
                // Welford's update is symmetric only up to rounding; average the two halves.
                for i in 0..dim {
                    for j in 0..i {
                        let average = 0.5 * (inverse[i * dim + j] + inverse[j * dim + i]);
                        inverse[i * dim + j] = average;
                        inverse[j * dim + i] = average;
                    }
                }
                Metric::dense(dim, inverse)
            }
        }
    }
}

/// Why the step-size search failed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StepSizeError {
    /// The search gave up; the message says why.
    Search(String),
    /// The density failed fatally.
    Density(LogDensityError),
}

/// Stan's heuristic for a first step size: from `step_size`, double (or halve) it until the
/// acceptance probability exp(H₀ − H) of one leapfrog step from `current` with a fresh momentum
/// crosses 0.8. `current` is left as it was; `scratch` is overwritten.
pub(crate) fn find_step_size<D: LogDensity + ?Sized>(
    density: &mut D,
    metric: &Metric,
    rng: &mut Rng,
    current: &PhasePoint,
    scratch: &mut PhasePoint,
    mut step_size: f64,
) -> Result<f64, StepSizeError> {
    if step_size == 0.0 || step_size > 1e7 || step_size.is_nan() {
        return Ok(step_size);
    }
    let log_target = 0.8f64.ln();
    let mut energy_change = |step_size: f64| -> Result<f64, StepSizeError> {
        scratch.copy_from(current);
        metric.sample_momentum(rng, &mut scratch.momentum);
        scratch.refresh_kinetic(metric);
        let h0 = scratch.hamiltonian();
        let valid =
            leapfrog(density, metric, scratch, step_size).map_err(StepSizeError::Density)?;
        let h = if valid {
            scratch.hamiltonian()
        } else {
            f64::INFINITY
        };
        Ok(if h.is_nan() {
            f64::NEG_INFINITY
        } else {
            h0 - h
        })
    };
    let direction_up = energy_change(step_size)? > log_target;
    loop {
        let delta_h = energy_change(step_size)?;
        // The acceptance probability exp(ΔH) crossed 0.8 (ΔH is never NaN here).
        if direction_up && delta_h <= log_target {
            break;
        }
        if !direction_up && delta_h >= log_target {
            break;
        }
        step_size = if direction_up {
            2.0 * step_size
        } else {
            0.5 * step_size
        };
        if step_size > 1e7 {
            return Err(StepSizeError::Search(
                "the step size grew past 1e7 without the acceptance rate falling: the posterior \
                 is probably improper"
                    .into(),
            ));
        }
        if step_size == 0.0 {
            return Err(StepSizeError::Search(
                "no acceptably small step size could be found: the posterior may not be \
                 continuous"
                    .into(),
            ));
        }
    }
    Ok(step_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The iterations at which windows close, for a warm-up length.
    fn window_ends(n_warmup: usize) -> Vec<usize> {
        let mut adaptation = MetricAdaptation::new(
            MetricKind::Diag,
            1,
            n_warmup,
            &AdaptationSettings::default(),
        );
        (0..n_warmup)
            .filter(|i| adaptation.learn(&[*i as f64]).is_some())
            .collect()
    }

    #[test]
    fn stan_windows_for_one_thousand_iterations() {
        // 75 + 25 + 50 + 100 + 200 + 500 (stretched) + 50 = 1000.
        assert_eq!(window_ends(1000), vec![99, 149, 249, 449, 949]);
    }

    #[test]
    fn short_warmups_use_one_window_or_none() {
        // 150 exactly fits 75 + 25 + 50.
        assert_eq!(window_ends(150), vec![99]);
        // 100 is cut to 15 / 75 / 10.
        assert_eq!(window_ends(100), vec![89]);
        assert_eq!(window_ends(19), Vec::<usize>::new());
    }

    #[test]
    fn dual_averaging_moves_towards_the_target() {
        let mut averaging = DualAveraging::new(&AdaptationSettings::default(), 0.8, 10f64.ln());
        // Always accepting: the step size must grow.
        let first = averaging.learn(1.0);
        let mut last = first;
        for _ in 0..50 {
            last = averaging.learn(1.0);
        }
        assert!(last > first);
    }
}
