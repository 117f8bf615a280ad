//! `constraint` annotations on sample sites, with Stan's semantics: the site's value is the
//! constraint's bijector applied to unconstrained coordinates, and the log density is the
//! distribution's log density at that value plus the bijector's log-Jacobian. Checked against
//! the transforms written out by hand, with gradients against finite differences.

mod common;

use bdl_infer::density::LogDensity;

fn normal_log_density(x: f64, loc: f64, scale: f64) -> f64 {
    let z = (x - loc) / scale;
    -0.5 * z * z - scale.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// Log density and gradient of `source` at `points` against `exact`, gradient against finite
/// differences.
fn check(source: &str, points: &[Vec<f64>], exact: impl Fn(&[f64]) -> f64) {
    let model = common::model_from_text("constrained.bdl", source, &[]);
    let names = model.layout.coordinate_names();
    let mut density = model.log_density();
    for point in points {
        let mut gradient = vec![0.0; point.len()];
        let value = density.log_density_gradient(point, &mut gradient).unwrap();
        let want = exact(point);
        assert!(
            (value - want).abs() <= 1e-12 * want.abs().max(1.0),
            "at {point:?}: {value} vs {want}"
        );
        let mut scratch = vec![0.0; point.len()];
        let problems = common::compare_with_finite_differences(&names, point, &gradient, |p| {
            density.log_density_gradient(p, &mut scratch).ok()
        });
        assert!(problems.is_empty(), "at {point:?}: {problems:?}");
    }
}

#[test]
fn an_ordered_site_is_the_density_at_the_ordered_value_plus_the_jacobian() {
    let source = r#"model {
    let c = sample("c", Normal(0, 10), shape = [3], constraint = ordered)
}
"#;
    let model = common::model_from_text("ordered.bdl", source, &[]);
    let draws = model.render_trace(&[0.5, -1.0, 0.3]).unwrap();
    assert!(draws.contains("sample"), "{draws}");
    // c₀ = u₀, cᵢ = cᵢ₋₁ + exp(uᵢ); log|J| = u₁ + u₂.
    check(
        source,
        &[vec![0.5, -1.0, 0.3], vec![-2.0, 0.7, -0.2]],
        |u| {
            let c0 = u[0];
            let c1 = c0 + u[1].exp();
            let c2 = c1 + u[2].exp();
            [c0, c1, c2]
                .iter()
                .map(|&c| normal_log_density(c, 0.0, 10.0))
                .sum::<f64>()
                + u[1]
                + u[2]
        },
    );
}

#[test]
fn a_positive_ordered_site_starts_above_zero() {
    let source = r#"model {
    let c = sample("c", Normal(1, 2), shape = [2], constraint = positive_ordered)
}
"#;
    // c₀ = exp(u₀), c₁ = c₀ + exp(u₁); log|J| = u₀ + u₁.
    check(source, &[vec![0.1, -0.4], vec![-1.5, 0.9]], |u| {
        let c0 = u[0].exp();
        let c1 = c0 + u[1].exp();
        normal_log_density(c0, 1.0, 2.0) + normal_log_density(c1, 1.0, 2.0) + u[0] + u[1]
    });
}

#[test]
fn a_bounded_site_uses_the_interval_bijector() {
    // A Normal restricted to (0, 1) through the logistic map: x = σ(u), log|J| = log σ(u) +
    // log σ(−u). The density is Normal's at x, not renormalised (Stan's semantics).
    let source = r#"model {
    let x = sample("x", Normal(0.3, 0.5), constraint = unit_interval)
}
"#;
    let log_sigmoid = |t: f64| -(-t).exp().ln_1p();
    check(source, &[vec![0.2], vec![-1.7]], |u| {
        let x = 1.0 / (1.0 + (-u[0]).exp());
        normal_log_density(x, 0.3, 0.5) + log_sigmoid(u[0]) + log_sigmoid(-u[0])
    });
}

#[test]
fn unannotated_sites_stay_on_the_real_line() {
    // Without the annotation the same model is on the real line: the position is the value.
    let source = r#"model {
    let c = sample("c", Normal(0, 10), shape = [2])
}
"#;
    check(source, &[vec![0.5, -1.0]], |u| {
        normal_log_density(u[0], 0.0, 10.0) + normal_log_density(u[1], 0.0, 10.0)
    });
}

#[test]
fn nuts_on_three_ordered_normals_gives_their_order_statistics() {
    // Three independent N(0, 1) sorted: the minimum and maximum have mean ∓3/(2√π) and variance
    // 1 + √3/(2π) − 9/(4π); the median has mean 0 and variance 1 − √3/π.
    let source = r#"model {
    let c = sample("c", Normal(0, 1), shape = [3], constraint = ordered)
}
"#;
    let model = common::model_from_text("order.bdl", source, &[]);
    let settings = bdl_infer::mcmc::McmcSettings {
        seed: 5,
        warmup: 500,
        samples: 1000,
        ..bdl_infer::mcmc::McmcSettings::default()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let result = bdl_infer::mcmc::sample(&settings, |_| model.log_density(), &|_| {}, &stop)
        .expect("sampling");
    let pi = std::f64::consts::PI;
    let extreme_mean = 3.0 / (2.0 * pi.sqrt());
    let extreme_sd = (1.0 + 3f64.sqrt() / (2.0 * pi) - 9.0 / (4.0 * pi)).sqrt();
    let median_sd = (1.0 - 3f64.sqrt() / pi).sqrt();
    let exact = [
        (-extreme_mean, extreme_sd),
        (0.0, median_sd),
        (extreme_mean, extreme_sd),
    ];
    // The draws are in the unconstrained space; the ordered values are rebuilt from them.
    for (k, (mean, sd)) in exact.iter().enumerate() {
        let chains: Vec<Vec<f64>> = result
            .chains
            .iter()
            .map(|chain| {
                (0..chain.n_draws())
                    .map(|i| {
                        let u = chain.draw(i);
                        u[0] + u[1..=k].iter().map(|v| v.exp()).sum::<f64>()
                    })
                    .collect()
            })
            .collect();
        let slices: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
        let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
        let n = pooled.len() as f64;
        let m = pooled.iter().sum::<f64>() / n;
        let s = (pooled.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)).sqrt();
        let mcse_mean = bdl_infer::diagnostics::mcse_mean(&slices).unwrap();
        let mcse_sd = bdl_infer::diagnostics::mcse_sd(&slices).unwrap();
        assert!(
            ((m - mean) / mcse_mean).abs() < 4.0,
            "c[{k}]: mean {m} vs {mean}"
        );
        assert!(((s - sd) / mcse_sd).abs() < 4.0, "c[{k}]: sd {s} vs {sd}");
    }
}
