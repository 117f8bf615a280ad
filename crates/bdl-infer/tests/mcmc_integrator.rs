//! The leapfrog integrator on the harmonic oscillator and on a correlated Gaussian: bounded
//! energy error of order ε² without drift over long runs, and exact time reversibility.

mod mcmc_support;

use bdl_infer::density::LogDensity;
use bdl_infer::mcmc::{leapfrog, Metric, MetricKind, PhasePoint};
use mcmc_support::Gaussian;

/// A phase point at `position` with `momentum`, evaluated.
fn start(
    density: &mut impl LogDensity,
    metric: &Metric,
    position: &[f64],
    momentum: &[f64],
) -> PhasePoint {
    let mut point = PhasePoint::new(position.len());
    point.position.copy_from_slice(position);
    point.momentum.copy_from_slice(momentum);
    assert!(point.evaluate(density).expect("no fatal error"));
    point.refresh_kinetic(metric);
    point
}

/// The largest |H − H₀| over `n_steps` steps, and over the last quarter of them.
fn energy_errors(step_size: f64, n_steps: usize) -> (f64, f64) {
    // H = q²/2 + p²/2: the unit harmonic oscillator, period 2π.
    let mut oscillator = Gaussian {
        mean: vec![0.0],
        precision: vec![1.0],
    };
    let metric = Metric::unit(MetricKind::Diag, 1);
    let mut point = start(&mut oscillator, &metric, &[1.0], &[0.5]);
    let h0 = point.hamiltonian();
    let (mut max_error, mut max_late_error) = (0.0f64, 0.0f64);
    for step in 0..n_steps {
        assert!(leapfrog(&mut oscillator, &metric, &mut point, step_size).expect("no error"));
        let error = (point.hamiltonian() - h0).abs();
        max_error = max_error.max(error);
        if step >= 3 * n_steps / 4 {
            max_late_error = max_late_error.max(error);
        }
    }
    (max_error, max_late_error)
}

#[test]
fn energy_error_is_second_order_and_does_not_drift() {
    // 10⁵ steps of ε = 0.1 cover about 1600 periods.
    let (coarse, coarse_late) = energy_errors(0.1, 100_000);
    let (fine, fine_late) = energy_errors(0.05, 200_000);
    // On the oscillator the leapfrog conserves H̃ = p²/2 + (1 − ε²/4) q²/2 exactly, so
    // H − H₀ = ε² (q² − q₀²) / 8: bounded, of order ε², and here (q₀ = 1, |q| ≤ 1.12) at most
    // ε²/8, reached where the orbit crosses q = 0.
    assert!(
        coarse <= 0.1 * 0.1 / 8.0 * (1.0 + 1e-9),
        "energy error {coarse} at ε = 0.1"
    );
    assert!(
        coarse > 0.99 * 0.1 * 0.1 / 8.0,
        "energy error {coarse} at ε = 0.1"
    );
    let ratio = coarse / fine;
    assert!(
        (3.9..4.1).contains(&ratio),
        "halving ε divided the error by {ratio}, not 4"
    );
    // No drift: the last quarter of the run reaches the same bound as the whole run.
    assert!(coarse_late > 0.99 * coarse && coarse_late <= coarse);
    assert!(fine_late > 0.99 * fine && fine_late <= fine);
}

#[test]
fn leapfrog_is_time_reversible() {
    // A correlated Gaussian under a dense metric exercises every part of the step.
    let mut target = Gaussian::from_covariance(
        vec![0.5, -1.0, 2.0],
        &[2.0, 0.6, 0.1, 0.6, 1.0, -0.3, 0.1, -0.3, 0.5],
    );
    let metric = Metric::dense(3, vec![1.5, 0.2, 0.0, 0.2, 0.8, -0.1, 0.0, -0.1, 0.4])
        .expect("positive definite");
    let position = [1.0, 0.3, -0.7];
    let momentum = [0.4, -1.2, 0.9];
    let mut point = start(&mut target, &metric, &position, &momentum);
    let h0 = point.hamiltonian();
    let n_steps = 1000;
    for _ in 0..n_steps {
        assert!(leapfrog(&mut target, &metric, &mut point, 0.05).expect("no error"));
    }
    // The run went somewhere.
    assert!((point.position[0] - position[0]).abs() > 1e-3);
    // Integrating backwards in time retraces the path to the start.
    for _ in 0..n_steps {
        assert!(leapfrog(&mut target, &metric, &mut point, -0.05).expect("no error"));
    }
    for i in 0..3 {
        assert!(
            (point.position[i] - position[i]).abs() < 1e-12,
            "position {i}: {}",
            point.position[i]
        );
        assert!(
            (point.momentum[i] - momentum[i]).abs() < 1e-12,
            "momentum {i}: {}",
            point.momentum[i]
        );
    }
    assert!((point.hamiltonian() - h0).abs() < 1e-12);
    // Negating the momentum and stepping forward is the same as stepping backward.
    for _ in 0..n_steps {
        assert!(leapfrog(&mut target, &metric, &mut point, 0.05).expect("no error"));
    }
    for p in point.momentum.iter_mut() {
        *p = -*p;
    }
    point.refresh_kinetic(&metric);
    for _ in 0..n_steps {
        assert!(leapfrog(&mut target, &metric, &mut point, 0.05).expect("no error"));
    }
    for i in 0..3 {
        assert!((point.position[i] - position[i]).abs() < 1e-12);
        assert!((point.momentum[i] + momentum[i]).abs() < 1e-12);
    }
}
