//! Exact Normal–Wishart and Dirichlet–Categorical blocks inside Metropolis-within-Gibbs: the
//! planner recognises them by probing the model's density, and the draws follow the closed-form
//! conditionals. Each model here has a posterior known in closed form (the textbook conjugate
//! updates, computed in the test with nalgebra), and the posterior means and variances of the
//! draws must lie within four Monte Carlo standard errors of it, with the standard errors from
//! the draws' effective sample size.

mod common;

use bdl_infer::diagnostics::ess_mean;
use bdl_infer::gibbs::{self, GibbsSettings};
use bdl_runtime::conjugate::{gibbs_plan, Conditional, GibbsBlocks, GibbsEvaluator};
use bdl_runtime::model::Model;
use nalgebra::DMatrix;
use std::sync::atomic::AtomicBool;

/// Runs Gibbs on `model` with `blocks` and returns, per chain, the constrained values of `site`
/// (one row per draw).
fn constrained_draws(
    model: &Model,
    blocks: &str,
    site: &str,
    samples: usize,
) -> Vec<Vec<Vec<f64>>> {
    let plan = gibbs_plan(model, &GibbsBlocks::parse(Some(blocks)).unwrap()).unwrap();
    let start = model.prior_median_position(3);
    let settings = GibbsSettings {
        chains: 2,
        warmup: 100,
        samples,
        seed: 11,
        parallel: false,
        ..GibbsSettings::default()
    };
    let result = gibbs::sample(
        &settings,
        |_| GibbsEvaluator::new(model, &plan, &start),
        &|_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    result
        .chains
        .iter()
        .map(|chain| {
            (0..chain.n_draws())
                .map(|i| {
                    let mut position = chain.draw(i).to_vec();
                    position.extend(model.layout.initial_position()[position.len()..].iter());
                    let values = model.constrained_values(&position).unwrap();
                    let (_, value) = values.iter().find(|(name, _)| name == site).unwrap();
                    value.data().to_vec()
                })
                .collect()
        })
        .collect()
}

/// |z| < 4 for the mean and the variance of element `element` of the draws, with MCSEs from
/// the effective sample size of the draws and of their squared deviations.
fn assert_moments(what: &str, draws: &[Vec<Vec<f64>>], element: usize, mean: f64, variance: f64) {
    let chains: Vec<Vec<f64>> = draws
        .iter()
        .map(|chain| chain.iter().map(|row| row[element]).collect())
        .collect();
    let all: Vec<f64> = chains.iter().flatten().copied().collect();
    let n = all.len() as f64;
    let sample_mean = all.iter().sum::<f64>() / n;
    let deviations: Vec<Vec<f64>> = chains
        .iter()
        .map(|c| c.iter().map(|x| (x - sample_mean).powi(2)).collect())
        .collect();
    let sample_variance = deviations.iter().flatten().sum::<f64>() / n;
    let slices: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
    let ess = ess_mean(&slices).unwrap();
    let mcse_mean = (sample_variance / ess).sqrt();
    let deviation_slices: Vec<&[f64]> = deviations.iter().map(Vec::as_slice).collect();
    let ess_squares = ess_mean(&deviation_slices).unwrap();
    let squares: Vec<f64> = deviations.iter().flatten().copied().collect();
    let variance_of_squares = squares
        .iter()
        .map(|s| (s - sample_variance).powi(2))
        .sum::<f64>()
        / n;
    let mcse_variance = (variance_of_squares / ess_squares).sqrt();
    let z_mean = (sample_mean - mean) / mcse_mean;
    let z_variance = (sample_variance - variance) / mcse_variance;
    assert!(
        z_mean.abs() < 4.0 && z_variance.abs() < 4.0,
        "{what}: mean {sample_mean} vs {mean} (z = {z_mean:.2}), variance {sample_variance} vs \
         {variance} (z = {z_variance:.2}), ESS {ess:.0}"
    );
}

/// Rows of a two-column data set, fixed for the test.
const ROWS: [[f64; 2]; 8] = [
    [0.9, -0.4],
    [-1.3, 0.2],
    [0.4, 0.8],
    [2.1, -0.9],
    [-0.2, -0.3],
    [0.7, 1.1],
    [-0.8, 0.5],
    [1.5, -1.2],
];

#[test]
fn a_wishart_precision_of_normal_rows_is_drawn_from_its_exact_conditional() {
    let source = r#"data {
    X: matrix[N, 2] from ["a", "b"]
}

model {
    let mu = [0.3, -0.1]
    let L = sample("L", Wishart(4, covariance_matrix = [[1.0, 0.3], [0.3, 0.5]]))
    plate("rows", N) {
        observe("x", MultivariateNormal(mu, precision_matrix = L), X)
    }
}
"#;
    let csv: String = std::iter::once("a,b\n".to_string())
        .chain(ROWS.iter().map(|[a, b]| format!("{a},{b}\n")))
        .collect();
    let model = common::model_from_text("wishart.bdl", source, &[("rows.csv", &csv)]);
    let plan = gibbs_plan(&model, &GibbsBlocks::default()).unwrap();
    assert_eq!(
        plan.blocks[0].conditional,
        Conditional::Wishart,
        "{:?}",
        plan.describe()
    );

    // The textbook update: Wishart(ν + n, (V⁻¹ + Σ (xⱼ − μ)(xⱼ − μ)ᵀ)⁻¹).
    let prior_scale = DMatrix::from_row_slice(2, 2, &[1.0, 0.3, 0.3, 0.5]);
    let mut rate = prior_scale.clone().try_inverse().unwrap();
    for [a, b] in ROWS {
        let d = nalgebra::DVector::from_row_slice(&[a - 0.3, b + 0.1]);
        rate += &d * d.transpose();
    }
    let scale = rate.try_inverse().unwrap();
    let df = 4.0 + ROWS.len() as f64;
    let draws = constrained_draws(&model, "L", "L", 2000);
    for (element, (i, j)) in [(0, (0, 0)), (1, (0, 1)), (3, (1, 1))] {
        // E Λᵢⱼ = ν Vᵢⱼ and Var Λᵢⱼ = ν (Vᵢⱼ² + Vᵢᵢ Vⱼⱼ).
        let mean = df * scale[(i, j)];
        let variance = df * (scale[(i, j)].powi(2) + scale[(i, i)] * scale[(j, j)]);
        assert_moments(&format!("L[{i},{j}]"), &draws, element, mean, variance);
    }
}

#[test]
fn a_dirichlet_simplex_of_categorical_labels_is_drawn_from_its_exact_conditional() {
    let source = r#"data {
    y: int<lower=0, upper=2>[N]
}

model {
    let p = sample("p", Dirichlet([1.0, 2.0, 0.5]))
    plate("rows", N) {
        observe("y", Categorical(probs = p), y)
    }
}
"#;
    let labels = [0, 2, 1, 1, 0, 1, 1, 2, 1, 0, 1];
    let csv: String = std::iter::once("y\n".to_string())
        .chain(labels.iter().map(|y| format!("{y}\n")))
        .collect();
    let model = common::model_from_text("dirichlet.bdl", source, &[("labels.csv", &csv)]);
    let plan = gibbs_plan(&model, &GibbsBlocks::default()).unwrap();
    assert_eq!(
        plan.blocks[0].conditional,
        Conditional::Dirichlet,
        "{:?}",
        plan.describe()
    );

    // Dirichlet(α + counts): mean αₖ / α₀ and variance αₖ (α₀ − αₖ) / (α₀² (α₀ + 1)).
    let mut alpha = [1.0, 2.0, 0.5];
    for y in labels {
        alpha[y] += 1.0;
    }
    let total: f64 = alpha.iter().sum();
    let draws = constrained_draws(&model, "p", "p", 2000);
    for (k, a) in alpha.iter().enumerate() {
        let variance = a * (total - a) / (total * total * (total + 1.0));
        assert_moments(&format!("p[{k}]"), &draws, k, a / total, variance);
    }
}

#[test]
fn a_hierarchy_of_normal_draws_with_a_wishart_precision_keeps_its_prior() {
    // Without data the posterior is the prior: Λ ~ Wishart(5, I) whatever the Gibbs sweep does
    // with the mean and the draws (all three blocks exact, so the chain mixes quickly).
    let source = r#"model {
    let L = sample("L", Wishart(5, covariance_matrix = [[1.0, 0.0], [0.0, 1.0]]))
    let mu = sample("mu", Normal(0, 1), shape = [2])
    plate("units", 6) {
        let g = sample("g", MultivariateNormal(mu, precision_matrix = L))
    }
}
"#;
    let model = common::model_from_text("hierarchy.bdl", source, &[]);
    let plan = gibbs_plan(&model, &GibbsBlocks::default()).unwrap();
    let conditionals: Vec<&Conditional> = plan.blocks.iter().map(|b| &b.conditional).collect();
    assert_eq!(
        conditionals,
        [
            &Conditional::Wishart,
            &Conditional::Gaussian,
            &Conditional::Gaussian
        ]
    );
    let draws = constrained_draws(&model, "L; mu; g", "L", 3000);
    for (element, variance) in [(0, 10.0), (1, 5.0), (3, 10.0)] {
        let mean = if element == 1 { 0.0 } else { 5.0 };
        assert_moments(
            &format!("L element {element}"),
            &draws,
            element,
            mean,
            variance,
        );
    }
}

#[test]
fn a_block_asked_for_by_rw_is_a_random_walk_even_when_it_is_conjugate() {
    let source = r#"model {
    let L = sample("L", Wishart(5, covariance_matrix = [[1.0, 0.0], [0.0, 1.0]]))
    let mu = sample("mu", Normal(0, 1), shape = [2])
}
"#;
    let model = common::model_from_text("rw.bdl", source, &[]);
    let plan = gibbs_plan(&model, &GibbsBlocks::parse(Some("rw: L; mu")).unwrap()).unwrap();
    assert!(matches!(
        plan.blocks[0].conditional,
        Conditional::Metropolis { .. }
    ));
    assert!(plan.blocks[0].random_walk);
    assert_eq!(plan.blocks[1].conditional, Conditional::Gaussian);
    assert!(GibbsBlocks::parse(Some("rw: ; mu")).is_err());
}
