//! Discrete latent sites marginalised by enumeration: the enumerated model's log density and
//! gradient equal those of the same model marginalised by hand (a `MixtureSameFamily`, the
//! forward algorithm written with loop-carried state, `log_mix`), the gradient through the
//! log-sum-exp agrees with six-point finite differences, the sites drawn afterwards follow
//! their exact posterior (checked against a brute-force sum over every configuration), and
//! sites that cannot be enumerated are refused with their code.

mod common;

use bdl_infer::density::LogDensity;
use bdl_infer::rng::stream_rng;
use bdl_runtime::model::Model;

const MIXTURE_DATA: &str = r#"{"y": [-1.9, -1.2, -0.4, 0.3, 1.1, 1.7, 2.2, 2.9, -2.4, 0.8]}"#;

fn mixture_enumerated() -> Model {
    let text = r#"data { y: vector[N] }
model {
    let w = sample("w", Dirichlet([1.0, 1.0]))
    let mu = sample("mu", Normal(0, 5), shape = [2], constraint = ordered)
    let sigma = sample("sigma", HalfNormal(2), shape = [2])
    plate("data", N) {
        let z = sample("z", Categorical(w))
        observe("y", Normal(mu[z], sigma[z]), y)
    }
}
"#;
    common::model_from_text("enumerated.bdl", text, &[("y.json", MIXTURE_DATA)])
}

fn mixture_by_hand() -> Model {
    let text = r#"data { y: vector[N] }
model {
    let w = sample("w", Dirichlet([1.0, 1.0]))
    let mu = sample("mu", Normal(0, 5), shape = [2], constraint = ordered)
    let sigma = sample("sigma", HalfNormal(2), shape = [2])
    plate("data", N) {
        observe("y", MixtureSameFamily(w, Normal(mu, sigma)), y)
    }
}
"#;
    common::model_from_text("by_hand.bdl", text, &[("y.json", MIXTURE_DATA)])
}

/// Deterministic points spread over the unconstrained space.
fn points(dim: usize, count: usize) -> Vec<Vec<f64>> {
    (0..count)
        .map(|i| {
            (0..dim)
                .map(|k| ((i * 7 + k * 3) as f64 * 0.61).sin() * 1.3)
                .collect()
        })
        .collect()
}

/// Asserts equal log densities and gradients, and the enumerated gradient against finite
/// differences.
fn assert_same_density(enumerated: &Model, by_hand: &Model, count: usize) {
    assert_eq!(enumerated.layout.dim(), by_hand.layout.dim());
    let names = enumerated.layout.coordinate_names();
    let mut left = enumerated.log_density();
    let mut right = by_hand.log_density();
    let dim = enumerated.layout.dim();
    let mut failures = Vec::new();
    for point in points(dim, count) {
        let mut gradient = vec![0.0; dim];
        let mut expected_gradient = vec![0.0; dim];
        let got = left.log_density_gradient(&point, &mut gradient).unwrap();
        let want = right
            .log_density_gradient(&point, &mut expected_gradient)
            .unwrap();
        if (got - want).abs() > 1e-9 * (1.0 + want.abs()) {
            failures.push(format!("{point:?}: {got} enumerated, {want} by hand"));
        }
        for (k, (a, b)) in gradient.iter().zip(&expected_gradient).enumerate() {
            if (a - b).abs() > 1e-8 * (1.0 + b.abs()) {
                failures.push(format!(
                    "{point:?}: d/d{} {a} enumerated, {b} by hand",
                    names[k]
                ));
            }
        }
        let mut scratch = vec![0.0; dim];
        for problem in common::compare_with_finite_differences(&names, &point, &gradient, |p| {
            left.log_density_gradient(p, &mut scratch).ok()
        }) {
            failures.push(format!("{point:?}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_label_per_row_marginalises_to_the_mixture() {
    let enumerated = mixture_enumerated();
    let enumeration = enumerated.enumeration.as_ref().expect("enumerated");
    assert_eq!(enumeration.sites.len(), 1);
    assert_eq!(enumeration.sites[0].support, 2);
    assert_eq!(enumeration.sites[0].shape, vec![10]);
    assert_same_density(&enumerated, &mixture_by_hand(), 5);
}

const HMM_DATA: &str = r#"{"T": 12, "K": 3, "y": [0.47, 1.49, -1.23, -1.04, -2.6, -1.11, -0.82, 1.97, 1.15, -0.31, 0.11, -1.44]}"#;

#[test]
fn a_chain_of_states_marginalises_to_the_forward_algorithm() {
    let enumerated = r#"data { T: int
    K: int
    y: vector[T] }
model {
    let mu = sample("mu", Normal(0, 5), shape = [K], constraint = ordered)
    let sigma = sample("sigma", HalfNormal(2))
    let p = sample("p", Dirichlet(ones([K, K])))
    let mut state = sample("state_0", Categorical(ones([K])))
    observe("y_0", Normal(mu[state], sigma), y[0])
    for t in 1..T {
        state = sample("state_{t}", Categorical(p[state]))
        observe("y_{t}", Normal(mu[state], sigma), y[t])
    }
}
"#;
    let by_hand = r#"data { T: int
    K: int
    y: vector[T] }
model {
    let mu = sample("mu", Normal(0, 5), shape = [K], constraint = ordered)
    let sigma = sample("sigma", HalfNormal(2))
    let p = sample("p", Dirichlet(ones([K, K])))
    let log_p = log(p)
    let log_norm = -log(sigma) - 0.9189385332046727
    let mut alpha = -log(K) + log_norm - 0.5 * ((y[0] - mu) / sigma) ^ 2
    for t in 1..T {
        let emission = log_norm - 0.5 * ((y[t] - mu) / sigma) ^ 2
        alpha = logsumexp(alpha[:, None] + log_p, 0) + emission
    }
    factor("forward", logsumexp(alpha))
}
"#;
    let enumerated = common::model_from_text("hmm.bdl", enumerated, &[("hmm.json", HMM_DATA)]);
    let by_hand = common::model_from_text("forward.bdl", by_hand, &[("hmm.json", HMM_DATA)]);
    assert_eq!(enumerated.enumeration.as_ref().unwrap().sites.len(), 12);
    assert_same_density(&enumerated, &by_hand, 3);
}

#[test]
fn a_global_switch_over_a_plate_marginalises_to_log_mix() {
    let data = r#"{"y": [0.2, 1.9, 2.4, 1.1, 0.7]}"#;
    let enumerated = r#"data { y: vector[N] }
model {
    let m = sample("m", Normal(0, 2))
    let z = sample("z", Bernoulli(0.3))
    plate("rows", N) {
        observe("y", Normal(m + 2 * z, 1), y)
    }
}
"#;
    let by_hand = r#"data { y: vector[N] }
model {
    let m = sample("m", Normal(0, 2))
    let off = sum(-0.5 * (y - m) ^ 2 - 0.9189385332046727)
    let on = sum(-0.5 * (y - m - 2) ^ 2 - 0.9189385332046727)
    factor("switch", log_mix(0.3, on, off))
}
"#;
    let enumerated = common::model_from_text("switch.bdl", enumerated, &[("y.json", data)]);
    let by_hand = common::model_from_text("log_mix.bdl", by_hand, &[("y.json", data)]);
    assert_same_density(&enumerated, &by_hand, 6);
}

/// The joint posterior of a three-step chain with fixed parameters, by brute force over its
/// eight configurations, against the frequencies of 20,000 draws of `infer_discrete`: each
/// within four binomial standard errors.
#[test]
fn drawn_states_follow_their_exact_joint_posterior() {
    let data = r#"{"y": [0.1, 1.4, -0.3]}"#;
    let text = r#"data { y: vector[T] }
model {
    let unused = sample("unused", Normal(0, 1))
    let mu = [-1.0, 1.0]
    let p = [[0.8, 0.2], [0.3, 0.7]]
    let mut state = sample("s_0", Categorical([0.5, 0.5]))
    observe("y_0", Normal(mu[state], 1), y[0])
    for t in 1..T {
        state = sample("s_{t}", Categorical(p[state]))
        observe("y_{t}", Normal(mu[state], 1), y[t])
    }
}
"#;
    let model = common::model_from_text("chain.bdl", text, &[("y.json", data)]);
    let y: [f64; 3] = [0.1, 1.4, -0.3];
    let mu: [f64; 2] = [-1.0, 1.0];
    let p = [[0.8, 0.2], [0.3, 0.7]];
    let emission = |t: usize, s: usize| (-0.5 * (y[t] - mu[s]) * (y[t] - mu[s])).exp();
    let mut exact = [0.0; 8];
    for (code, weight) in exact.iter_mut().enumerate() {
        let s = [code >> 2 & 1, code >> 1 & 1, code & 1];
        *weight = 0.5
            * emission(0, s[0])
            * p[s[0]][s[1]]
            * emission(1, s[1])
            * p[s[1]][s[2]]
            * emission(2, s[2]);
    }
    let total: f64 = exact.iter().sum();
    exact.iter_mut().for_each(|w| *w /= total);
    let draws = 20_000;
    let mut counts = [0usize; 8];
    let mut evaluator = model.output_evaluator();
    let mut rng = stream_rng(11, 0);
    for _ in 0..draws {
        let values = evaluator.constrained(&[0.3], &mut rng).unwrap();
        let state =
            |name: &str| values.iter().find(|(n, _)| n == name).unwrap().1.data()[0] as usize;
        counts[state("s_0") << 2 | state("s_1") << 1 | state("s_2")] += 1;
    }
    for (code, &count) in counts.iter().enumerate() {
        let frequency = count as f64 / draws as f64;
        let standard_error = (exact[code] * (1.0 - exact[code]) / draws as f64).sqrt();
        assert!(
            (frequency - exact[code]).abs() < 4.0 * standard_error,
            "configuration {code:03b}: frequency {frequency}, exact {}",
            exact[code]
        );
    }
}

/// Labels drawn per row: each row's frequency of label 1 against its exact conditional
/// probability at the point.
#[test]
fn drawn_labels_follow_each_rows_conditional() {
    let model = mixture_enumerated();
    let point = [0.2, -0.4, 0.5, 0.1, -0.3];
    let values = model.constrained_values(&point).unwrap();
    let w = values
        .iter()
        .find(|(n, _)| n == "w")
        .unwrap()
        .1
        .data()
        .to_vec();
    let mu = values
        .iter()
        .find(|(n, _)| n == "mu")
        .unwrap()
        .1
        .data()
        .to_vec();
    let sigma = values
        .iter()
        .find(|(n, _)| n == "sigma")
        .unwrap()
        .1
        .data()
        .to_vec();
    let y = [-1.9, -1.2, -0.4, 0.3, 1.1, 1.7, 2.2, 2.9, -2.4, 0.8];
    let density =
        |x: f64, k: usize| w[k] / sigma[k] * (-0.5 * ((x - mu[k]) / sigma[k]).powi(2)).exp();
    let draws = 10_000;
    let mut ones = [0usize; 10];
    let mut evaluator = model.output_evaluator();
    let mut rng = stream_rng(5, 0);
    for _ in 0..draws {
        let values = evaluator.constrained(&point, &mut rng).unwrap();
        let z = values
            .iter()
            .find(|(n, _)| n == "z")
            .unwrap()
            .1
            .data()
            .to_vec();
        assert_eq!(z.len(), 10);
        for (row, label) in z.iter().enumerate() {
            ones[row] += *label as usize;
        }
    }
    for (row, &count) in ones.iter().enumerate() {
        let exact = density(y[row], 1) / (density(y[row], 0) + density(y[row], 1));
        let frequency = count as f64 / draws as f64;
        let standard_error = (exact * (1.0 - exact) / draws as f64).sqrt().max(1e-4);
        assert!(
            (frequency - exact).abs() < 4.0 * standard_error,
            "row {row}: frequency {frequency}, exact {exact}"
        );
    }
}

fn compile_error(text: &str, data: &str) -> String {
    let mut sources = bdl_diagnostics::SourceMap::new();
    let compiled = bdl_runtime::pipeline::compile(&mut sources, "bad.bdl", text.as_bytes())
        .unwrap_or_else(|_| panic!("the model should pass the checker"));
    let file = sources.add("y.json", data);
    let files = vec![bdl_runtime::data::DataFile::from_text("y.json", data, file)];
    let observed = bdl_runtime::pipeline::observed_only(&compiled.program);
    let data = bdl_runtime::data::load(
        &compiled.program,
        &files,
        bdl_runtime::data::Completeness::All,
        &observed,
    )
    .unwrap_or_else(|_| panic!("data"));
    match Model::new(compiled.program, data, 1) {
        Ok(_) => panic!("the model compiled"),
        Err(error) => format!("{} {}", error.code, error.message),
    }
}

#[test]
fn sites_that_cannot_be_enumerated_are_refused() {
    let data = r#"{"y": [1.0, 2.0]}"#;
    let poisson = r#"data { y: vector[N] }
model {
    let n = sample("n", Poisson(3.0))
    plate("rows", N) { observe("y", Normal(n, 1), y) }
}
"#;
    let error = compile_error(poisson, data);
    assert!(
        error.starts_with("E0612") && error.contains("unbounded"),
        "{error}"
    );
    let continuous = r#"data { y: vector[N] }
model {
    let z = sample("z", Bernoulli(0.5))
    let m = sample("m", Normal(3 * z, 1))
    plate("rows", N) { observe("y", Normal(m, 1), y) }
}
"#;
    let error = compile_error(continuous, data);
    assert!(
        error.starts_with("E0613") && error.contains("`m`"),
        "{error}"
    );
    let event = r#"data { y: vector[N] }
model {
    let z = sample("z", Bernoulli(0.5), shape = [2])
    plate("rows", N) { observe("y", Normal(z, 1), y) }
}
"#;
    let error = compile_error(event, data);
    assert!(
        error.starts_with("E0612") && error.contains("event shape"),
        "{error}"
    );
}
