//! Limited-memory BFGS with a strong-Wolfe line search, for deterministic objectives (MAP, and
//! the starting point of SVI).
//!
//! The direction is the two-loop recursion over the last `history` pairs (s, y) with the initial
//! inverse Hessian γ I, γ = sᵀy / yᵀy (Nocedal and Wright, 2006, Algorithm 7.4); a pair whose
//! curvature sᵀy is not clearly positive is not stored. The line search looks for a step α with
//! f(x + α d) ≤ f(x) + c₁ α ∇fᵀd and |∇f(x + α d)ᵀd| ≤ c₂ |∇fᵀd| by bracketing (doubling α) and
//! zooming with safeguarded quadratic interpolation (their Algorithms 3.5 and 3.6). A point where
//! the objective cannot be evaluated (a recoverable failure: a non-finite value, a parameter
//! outside its support) counts as f = +∞, so the search backs off from it.
//!
//! The run is converged when the gradient's largest element is at most
//! `gradient_tolerance` · max(1, |f|). On a badly scaled problem (a regression on a calendar
//! year) f becomes flat to round-off before the gradient is that small; when f then stops
//! changing, or the line search finds no better point, the run still counts as converged if
//! the quasi-Newton decrement gᵀ H g (H the current inverse-Hessian approximation) is at most
//! `decrement_tolerance` · max(1, |f|). The decrement is twice the predicted fall of f to the
//! optimum and, for a log density, the squared distance to the mode in posterior standard
//! deviations, whatever the coordinates' scales. (It is not a stopping rule on its own: early
//! on, H knows too few directions and underestimates it.) Otherwise the run ends, unconverged, when the iterations run out,
//! when the line search finds no acceptable step, or when f stops changing (a relative change
//! below 10⁻¹⁵ over an iteration); [`LbfgsReport`] says which.

use crate::density::LogDensityError;

/// The settings of one minimisation.
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsSettings {
    /// How many (s, y) pairs the inverse-Hessian approximation keeps.
    pub history: usize,
    /// The most iterations (line searches).
    pub max_iterations: usize,
    /// Converged when max |∂f/∂xᵢ| ≤ this · max(1, |f|).
    pub gradient_tolerance: f64,
    /// Converged when gᵀ H g ≤ this · max(1, |f|).
    pub decrement_tolerance: f64,
    /// The sufficient-decrease constant c₁.
    pub c1: f64,
    /// The curvature constant c₂.
    pub c2: f64,
    /// The most objective evaluations per line search.
    pub max_line_search: usize,
}

impl Default for LbfgsSettings {
    fn default() -> Self {
        LbfgsSettings {
            history: 10,
            max_iterations: 10_000,
            gradient_tolerance: 1e-8,
            decrement_tolerance: 1e-10,
            c1: 1e-4,
            c2: 0.9,
            max_line_search: 40,
        }
    }
}

/// How a minimisation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LbfgsStatus {
    /// The gradient tolerance was met.
    Converged,
    /// The iterations ran out.
    MaxIterations,
    /// No step satisfying the strong Wolfe conditions was found.
    LineSearchFailed,
    /// The objective stopped changing before the gradient was small.
    Stalled,
}

impl LbfgsStatus {
    /// A lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            LbfgsStatus::Converged => "converged",
            LbfgsStatus::MaxIterations => "max_iterations",
            LbfgsStatus::LineSearchFailed => "line_search_failed",
            LbfgsStatus::Stalled => "stalled",
        }
    }
}

/// What a minimisation did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsReport {
    /// How it ended.
    pub status: LbfgsStatus,
    /// Iterations taken.
    pub iterations: usize,
    /// Objective evaluations.
    pub evaluations: usize,
    /// The objective at the returned point.
    pub value: f64,
    /// The largest |gradient element| there.
    pub gradient_norm: f64,
    /// The gradient tolerance, gradient_tolerance · max(1, |f|) (convergence may also come from
    /// the decrement).
    pub gradient_limit: f64,
}

impl LbfgsReport {
    /// Whether the gradient tolerance was met.
    pub fn converged(&self) -> bool {
        self.status == LbfgsStatus::Converged
    }
}

/// Why a minimisation could not run.
#[derive(Clone, Debug, PartialEq)]
pub enum LbfgsError {
    /// The objective or its gradient is not finite at the starting point.
    BadStart {
        /// The objective's message, or which value was not finite.
        message: String,
    },
    /// The objective reported a failure that must stop the run.
    Fatal {
        /// The objective's message.
        message: String,
    },
}

impl std::fmt::Display for LbfgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LbfgsError::BadStart { message } => {
                write!(
                    f,
                    "the starting point of L-BFGS cannot be evaluated: {message}"
                )
            }
            LbfgsError::Fatal { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for LbfgsError {}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The objective with failures mapped: recoverable ones to +∞, the others to an error.
struct Objective<F> {
    function: F,
    evaluations: usize,
}

impl<F> Objective<F>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64, LogDensityError>,
{
    fn eval(&mut self, x: &[f64], gradient: &mut [f64]) -> Result<f64, LbfgsError> {
        self.evaluations += 1;
        match (self.function)(x, gradient) {
            Ok(value) if value.is_finite() && gradient.iter().all(|g| g.is_finite()) => Ok(value),
            Ok(_) => Ok(f64::INFINITY),
            Err(error) if error.recoverable => Ok(f64::INFINITY),
            Err(error) => Err(LbfgsError::Fatal {
                message: error.message,
            }),
        }
    }
}

/// A point on the search line: step, value, directional derivative.
#[derive(Clone, Copy)]
struct LinePoint {
    step: f64,
    value: f64,
    slope: f64,
}

/// Minimises `function` (which returns f(x) and writes ∇f(x)) from `x`, which holds the best
/// point found when it returns.
pub fn minimize<F>(
    function: F,
    x: &mut [f64],
    settings: &LbfgsSettings,
) -> Result<LbfgsReport, LbfgsError>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64, LogDensityError>,
{
    minimize_along(function, x, settings, |_, _, _| {})
}

/// [`minimize`], calling `on_point(x, ∇f(x), f(x))` at the start and at every accepted point,
/// so that a caller can record the optimisation path (Pathfinder's local approximations).
pub fn minimize_along<F, P>(
    function: F,
    x: &mut [f64],
    settings: &LbfgsSettings,
    mut on_point: P,
) -> Result<LbfgsReport, LbfgsError>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64, LogDensityError>,
    P: FnMut(&[f64], &[f64], f64),
{
    let n = x.len();
    let mut objective = Objective {
        function,
        evaluations: 0,
    };
    let mut gradient = vec![0.0; n];
    let mut value = match objective.eval(x, &mut gradient) {
        Ok(v) if v.is_finite() => v,
        Ok(_) => {
            return Err(LbfgsError::BadStart {
                message: "the objective or its gradient is not finite there".to_string(),
            })
        }
        Err(LbfgsError::Fatal { message }) => return Err(LbfgsError::BadStart { message }),
        Err(error) => return Err(error),
    };
    on_point(x, &gradient, value);
    let mut s_history: Vec<Vec<f64>> = Vec::with_capacity(settings.history);
    let mut y_history: Vec<Vec<f64>> = Vec::with_capacity(settings.history);
    let mut rho_history: Vec<f64> = Vec::with_capacity(settings.history);
    let mut direction = vec![0.0; n];
    let mut alpha = vec![0.0; settings.history];
    let mut trial = vec![0.0; n];
    let mut trial_gradient = vec![0.0; n];
    let report = |status, iterations, evaluations, value: f64, gradient: &[f64]| LbfgsReport {
        status,
        iterations,
        evaluations,
        value,
        gradient_norm: max_abs(gradient),
        gradient_limit: settings.gradient_tolerance * value.abs().max(1.0),
    };

    let mut stalled = false;
    for iteration in 0..settings.max_iterations {
        if max_abs(&gradient) <= settings.gradient_tolerance * value.abs().max(1.0) {
            return Ok(report(
                LbfgsStatus::Converged,
                iteration,
                objective.evaluations,
                value,
                &gradient,
            ));
        }
        // The two-loop recursion: direction = −H ∇f.
        for (d, g) in direction.iter_mut().zip(&gradient) {
            *d = -g;
        }
        let m = s_history.len();
        for k in (0..m).rev() {
            alpha[k] = rho_history[k] * dot(&s_history[k], &direction);
            for (d, y) in direction.iter_mut().zip(&y_history[k]) {
                *d -= alpha[k] * y;
            }
        }
        let initial_step = if m > 0 {
            let gamma = dot(&s_history[m - 1], &y_history[m - 1])
                / dot(&y_history[m - 1], &y_history[m - 1]);
            for d in direction.iter_mut() {
                *d *= gamma;
            }
            1.0
        } else {
            // Without curvature information, a first step of unit length.
            1.0 / dot(&gradient, &gradient).sqrt().max(1e-300)
        };
        for k in 0..m {
            let beta = rho_history[k] * dot(&y_history[k], &direction);
            for (d, s) in direction.iter_mut().zip(&s_history[k]) {
                *d += (alpha[k] - beta) * s;
            }
        }
        let mut slope = dot(&gradient, &direction);
        let decrement_small =
            m > 0 && slope < 0.0 && -slope <= settings.decrement_tolerance * value.abs().max(1.0);
        if stalled {
            let status = if decrement_small {
                LbfgsStatus::Converged
            } else {
                LbfgsStatus::Stalled
            };
            return Ok(report(
                status,
                iteration,
                objective.evaluations,
                value,
                &gradient,
            ));
        }
        if slope >= 0.0 || !slope.is_finite() {
            // The approximation lost positive definiteness: restart from steepest descent.
            s_history.clear();
            y_history.clear();
            rho_history.clear();
            for (d, g) in direction.iter_mut().zip(&gradient) {
                *d = -g;
            }
            slope = -dot(&gradient, &gradient);
        }
        let start = LinePoint {
            step: 0.0,
            value,
            slope,
        };
        let accepted = line_search(
            &mut objective,
            x,
            &direction,
            start,
            initial_step,
            settings,
            &mut trial,
            &mut trial_gradient,
        )?;
        let Some(point) = accepted else {
            let status = if decrement_small {
                LbfgsStatus::Converged
            } else {
                LbfgsStatus::LineSearchFailed
            };
            return Ok(report(
                status,
                iteration,
                objective.evaluations,
                value,
                &gradient,
            ));
        };
        // `trial` and `trial_gradient` hold the accepted point.
        let s: Vec<f64> = direction.iter().map(|d| point.step * d).collect();
        let y: Vec<f64> = trial_gradient
            .iter()
            .zip(&gradient)
            .map(|(a, b)| a - b)
            .collect();
        let previous_value = value;
        x.copy_from_slice(&trial);
        gradient.copy_from_slice(&trial_gradient);
        value = point.value;
        on_point(x, &gradient, value);
        let curvature = dot(&s, &y);
        if curvature > 1e-10 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if s_history.len() == settings.history {
                s_history.remove(0);
                y_history.remove(0);
                rho_history.remove(0);
            }
            s_history.push(s);
            y_history.push(y);
            rho_history.push(1.0 / curvature);
        }
        let converged_now =
            max_abs(&gradient) <= settings.gradient_tolerance * value.abs().max(1.0);
        if !converged_now && (previous_value - value).abs() <= 1e-15 * value.abs().max(1.0) {
            // Judged at the top of the next iteration, with the new direction's decrement.
            stalled = true;
        }
    }
    let status = if max_abs(&gradient) <= settings.gradient_tolerance * value.abs().max(1.0) {
        LbfgsStatus::Converged
    } else {
        LbfgsStatus::MaxIterations
    };
    Ok(report(
        status,
        settings.max_iterations,
        objective.evaluations,
        value,
        &gradient,
    ))
}

/// Evaluates the objective at x + step · direction into `trial` and `trial_gradient`.
fn evaluate_at<F>(
    objective: &mut Objective<F>,
    x: &[f64],
    direction: &[f64],
    step: f64,
    trial: &mut [f64],
    trial_gradient: &mut [f64],
) -> Result<LinePoint, LbfgsError>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64, LogDensityError>,
{
    for ((t, x), d) in trial.iter_mut().zip(x).zip(direction) {
        *t = x + step * d;
    }
    let value = objective.eval(trial, trial_gradient)?;
    let slope = if value.is_finite() {
        dot(trial_gradient, direction)
    } else {
        f64::NAN
    };
    Ok(LinePoint { step, value, slope })
}

/// The strong-Wolfe line search from `start` along `direction`; on success `trial` and
/// `trial_gradient` hold the accepted point.
#[allow(clippy::too_many_arguments)]
fn line_search<F>(
    objective: &mut Objective<F>,
    x: &[f64],
    direction: &[f64],
    start: LinePoint,
    initial_step: f64,
    settings: &LbfgsSettings,
    trial: &mut [f64],
    trial_gradient: &mut [f64],
) -> Result<Option<LinePoint>, LbfgsError>
where
    F: FnMut(&[f64], &mut [f64]) -> Result<f64, LogDensityError>,
{
    let sufficient = |p: &LinePoint| p.value <= start.value + settings.c1 * p.step * start.slope;
    let curvature = |p: &LinePoint| p.slope.abs() <= -settings.c2 * start.slope;
    let mut previous = start;
    let mut step = initial_step;
    let mut evaluations = 0;
    // Bracketing: grow the step until it overshoots or satisfies both conditions.
    let (mut low, mut high) = loop {
        if evaluations >= settings.max_line_search {
            return Ok(None);
        }
        evaluations += 1;
        let point = evaluate_at(objective, x, direction, step, trial, trial_gradient)?;
        if !sufficient(&point) || (evaluations > 1 && point.value >= previous.value) {
            break (previous, point);
        }
        if curvature(&point) {
            return Ok(Some(point));
        }
        if point.slope >= 0.0 {
            break (point, previous);
        }
        previous = point;
        step *= 2.0;
    };
    // Zoom: `low` satisfies sufficient decrease with the lowest value seen; the minimiser lies
    // between `low` and `high`.
    while evaluations < settings.max_line_search {
        evaluations += 1;
        let width = high.step - low.step;
        let mut candidate = low.step + 0.5 * width;
        if high.value.is_finite() {
            let denominator = 2.0 * (high.value - low.value - low.slope * width);
            if denominator > 0.0 {
                candidate = low.step - low.slope * width * width / denominator;
            }
        }
        let (a, b) = (low.step.min(high.step), low.step.max(high.step));
        let margin = 0.1 * (b - a);
        candidate = candidate.clamp(a + margin, b - margin);
        if (b - a) <= 1e-16 * b.abs().max(1e-300) {
            break;
        }
        let point = evaluate_at(objective, x, direction, candidate, trial, trial_gradient)?;
        if !sufficient(&point) || point.value >= low.value {
            high = point;
        } else {
            if curvature(&point) {
                return Ok(Some(point));
            }
            if point.slope * (high.step - low.step) >= 0.0 {
                high = low;
            }
            low = point;
        }
    }
    // No step met both conditions; accept the best one seen if it decreased the objective, so
    // that a search ending in round-off still makes progress.
    if low.step > 0.0 && low.value < start.value {
        let point = evaluate_at(objective, x, direction, low.step, trial, trial_gradient)?;
        return Ok(Some(point));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64], g: &mut [f64]) -> Result<f64, LogDensityError> {
        let (a, b) = (x[0], x[1]);
        g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
        g[1] = 200.0 * (b - a * a);
        Ok((1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2))
    }

    #[test]
    fn minimises_the_rosenbrock_function() {
        let mut x = vec![-1.2, 1.0];
        let report = minimize(rosenbrock, &mut x, &LbfgsSettings::default()).unwrap();
        assert!(report.converged(), "{report:?}");
        assert!(
            (x[0] - 1.0).abs() < 1e-6 && (x[1] - 1.0).abs() < 1e-6,
            "{x:?}"
        );
        assert!(report.iterations < 100, "{report:?}");
    }

    /// An ill-conditioned quadratic like the log density of a regression on a predictor near
    /// 2,000: f = ½ Σᵢ (a + b tᵢ − yᵢ)² with tᵢ ∈ [1990, 2010].
    #[test]
    fn minimises_an_ill_conditioned_least_squares_problem() {
        let t: Vec<f64> = (0..21).map(|i| 1990.0 + i as f64).collect();
        let y: Vec<f64> = t.iter().map(|t| -60.0 + 0.035 * t).collect();
        let f = |x: &[f64], g: &mut [f64]| -> Result<f64, LogDensityError> {
            g.fill(0.0);
            let mut value = 0.0;
            for (t, y) in t.iter().zip(&y) {
                let r = x[0] + x[1] * t - y;
                value += 0.5 * r * r;
                g[0] += r;
                g[1] += r * t;
            }
            Ok(value)
        };
        let mut x = vec![0.0, 0.0];
        let report = minimize(f, &mut x, &LbfgsSettings::default()).unwrap();
        assert!(report.converged(), "{report:?}");
        assert!((x[0] + 60.0).abs() < 1e-4, "{x:?}");
        assert!((x[1] - 0.035).abs() < 1e-7, "{x:?}");
    }

    #[test]
    fn backs_off_from_points_outside_the_support() {
        // f = x − log x on x > 0, minimum at 1; beyond the support the objective fails.
        let f = |x: &[f64], g: &mut [f64]| -> Result<f64, LogDensityError> {
            if x[0] <= 0.0 {
                return Err(LogDensityError::recoverable("x must be positive"));
            }
            g[0] = 1.0 - 1.0 / x[0];
            Ok(x[0] - x[0].ln())
        };
        let mut x = vec![5.0];
        let report = minimize(f, &mut x, &LbfgsSettings::default()).unwrap();
        assert!(report.converged(), "{report:?}");
        assert!((x[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn reports_an_unbounded_objective_and_a_bad_start() {
        let f = |x: &[f64], g: &mut [f64]| -> Result<f64, LogDensityError> {
            g[0] = -1.0;
            Ok(-x[0])
        };
        let mut x = vec![0.0];
        let settings = LbfgsSettings {
            max_iterations: 50,
            ..LbfgsSettings::default()
        };
        let report = minimize(f, &mut x, &settings).unwrap();
        assert!(!report.converged());
        let nan = |_: &[f64], _: &mut [f64]| -> Result<f64, LogDensityError> { Ok(f64::NAN) };
        assert!(matches!(
            minimize(nan, &mut [0.0], &settings),
            Err(LbfgsError::BadStart { .. })
        ));
        let fatal = |_: &[f64], _: &mut [f64]| -> Result<f64, LogDensityError> {
            Err(LogDensityError::fatal("shape mismatch"))
        };
        let error = minimize(fatal, &mut [0.0], &settings).unwrap_err();
        assert!(error.to_string().contains("shape mismatch"));
    }

    #[test]
    fn a_quadratic_converges_in_few_iterations() {
        // f = ½ xᵀ A x − bᵀx with A = diag(1, 10, 100); L-BFGS needs at most n + 1 iterations
        // on a quadratic with exact line searches, a few more with inexact ones.
        let a = [1.0, 10.0, 100.0];
        let b = [1.0, 2.0, 3.0];
        let f = |x: &[f64], g: &mut [f64]| -> Result<f64, LogDensityError> {
            let mut value = 0.0;
            for i in 0..3 {
                g[i] = a[i] * x[i] - b[i];
                value += 0.5 * a[i] * x[i] * x[i] - b[i] * x[i];
            }
            Ok(value)
        };
        let mut x = vec![0.0; 3];
        let report = minimize(f, &mut x, &LbfgsSettings::default()).unwrap();
        assert!(report.converged());
        for i in 0..3 {
            assert!((x[i] - b[i] / a[i]).abs() < 1e-7);
        }
        assert!(report.iterations <= 20, "{report:?}");
    }
}
