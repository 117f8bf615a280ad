//! Batch and event shapes (Pyro's rules, `expand`, `to_event`), vectorised log-densities equal
//! to sums of scalar ones (value and gradient), typed errors for invalid parameters, −∞ without
//! NaN outside the support, and replay of a recorded log-density at new values.

mod common;

use bdl_autodiff::check::replay_matches;
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_dist::{DistError, Distribution, Family};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A family, its parameters and a value outside its support.
type SupportCase = (&'static str, Vec<(&'static str, Tensor)>, Tensor);

/// A family, its parameter names, and the inputs (parameters then value) at which a log-density
/// is recorded and then replayed.
type ReplayCase = (&'static str, Vec<&'static str>, Vec<Tensor>, Vec<Tensor>);

fn s(x: f64) -> Tensor {
    Tensor::scalar(x)
}

fn v(data: &[f64]) -> Tensor {
    Tensor::vector(data.to_vec())
}

/// Σ log p over a batch, and the gradient with respect to every input.
fn total_and_gradient(
    family: &str,
    params: &[(&str, Tensor)],
    value: &Tensor,
) -> (f64, Vec<Vec<f64>>) {
    let mut tape = Tape::new();
    let mut vars: Vec<Var> = Vec::new();
    let named: Vec<(&str, Var)> = params
        .iter()
        .map(|(name, tensor)| {
            let var = tape.input(tensor.clone());
            vars.push(var);
            (*name, var)
        })
        .collect();
    let value_var = tape.input(value.clone());
    vars.push(value_var);
    let distribution = Distribution::from_call(&mut tape, family, &named).unwrap();
    let log_prob = distribution.log_prob(&mut tape, value_var).unwrap();
    let total = tape.sum(log_prob);
    tape.backward(total).unwrap();
    let total_value = tape.value(total).item().unwrap();
    (
        total_value,
        vars.iter().map(|var| tape.grad(*var).to_vec()).collect(),
    )
}

/// Element `index` of a batch-shaped parameter (or the whole parameter when it is shared).
fn element(tensor: &Tensor, batch: usize, index: usize, event_size: usize) -> Tensor {
    if tensor.len() == batch * event_size && batch > 1 {
        let data = tensor.data()[index * event_size..(index + 1) * event_size].to_vec();
        let shape = &tensor.shape()[1..];
        Tensor::from_shape(shape, data).unwrap()
    } else {
        tensor.clone()
    }
}

/// A vectorised log-density over `batch` elements equals the sum of scalar ones, and so do
/// the gradients (summed over elements for shared parameters).
fn vectorised_equals_scalar(
    family: &str,
    params: &[(&str, Tensor, usize)],
    value: &Tensor,
    batch: usize,
    value_event: usize,
) {
    let whole: Vec<(&str, Tensor)> = params.iter().map(|(n, t, _)| (*n, t.clone())).collect();
    let (total, gradients) = total_and_gradient(family, &whole, value);
    let mut sum = 0.0;
    let mut summed: Vec<Vec<f64>> = gradients.iter().map(|g| vec![0.0; g.len()]).collect();
    for index in 0..batch {
        let pieces: Vec<(&str, Tensor)> = params
            .iter()
            .map(|(n, t, event)| (*n, element(t, batch, index, *event)))
            .collect();
        let value_piece = element(value, batch, index, value_event);
        let (piece_total, piece_gradients) = total_and_gradient(family, &pieces, &value_piece);
        sum += piece_total;
        for (slot, gradient) in piece_gradients.iter().enumerate() {
            let whole_len = summed[slot].len();
            if gradient.len() == whole_len {
                for (a, b) in summed[slot].iter_mut().zip(gradient) {
                    *a += b;
                }
            } else {
                for (k, b) in gradient.iter().enumerate() {
                    summed[slot][index * gradient.len() + k] += b;
                }
            }
        }
    }
    assert!(
        (total - sum).abs() <= 1e-12 * sum.abs().max(1.0),
        "{family}: {total} vs {sum}"
    );
    for (slot, (a, b)) in gradients.iter().zip(&summed).enumerate() {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                "{family} input {slot}: {a:?} vs {b:?}"
            );
        }
    }
}

#[test]
fn vectorised_log_densities_equal_sums_of_scalar_ones() {
    vectorised_equals_scalar(
        "Normal",
        &[("loc", v(&[0.1, -2.0, 3.0]), 1), ("scale", s(1.5), 1)],
        &v(&[0.5, -1.0, 10.0]),
        3,
        1,
    );
    vectorised_equals_scalar(
        "Gamma",
        &[
            ("concentration", v(&[0.5, 2.0, 7.0]), 1),
            ("rate", v(&[1.0, 0.3, 2.0]), 1),
        ],
        &v(&[0.4, 3.0, 2.5]),
        3,
        1,
    );
    vectorised_equals_scalar(
        "Beta",
        &[
            ("concentration1", s(2.0), 1),
            ("concentration0", v(&[1.0, 3.0]), 1),
        ],
        &v(&[0.3, 0.9]),
        2,
        1,
    );
    vectorised_equals_scalar(
        "TruncatedNormal",
        &[
            ("loc", v(&[0.0, 1.0]), 1),
            ("scale", s(1.0), 1),
            ("low", v(&[-1.0, 4.0]), 1),
            ("high", s(6.0), 1),
        ],
        &v(&[0.5, 4.5]),
        2,
        1,
    );
    vectorised_equals_scalar(
        "Bernoulli",
        &[("logits", v(&[0.3, -2.0, 5.0]), 1)],
        &v(&[1.0, 0.0, 1.0]),
        3,
        1,
    );
    vectorised_equals_scalar(
        "Poisson",
        &[("rate", v(&[0.5, 4.0]), 1)],
        &v(&[0.0, 6.0]),
        2,
        1,
    );
    vectorised_equals_scalar(
        "Categorical",
        &[(
            "logits",
            Tensor::from_shape(&[2, 3], vec![0.1, 0.5, -1.0, 2.0, 0.0, 0.3]).unwrap(),
            3,
        )],
        &v(&[2.0, 0.0]),
        2,
        1,
    );
    vectorised_equals_scalar(
        "Dirichlet",
        &[(
            "concentration",
            Tensor::from_shape(&[2, 3], vec![1.0, 2.0, 3.0, 0.5, 0.5, 4.0]).unwrap(),
            3,
        )],
        &Tensor::from_shape(&[2, 3], vec![0.2, 0.3, 0.5, 0.1, 0.1, 0.8]).unwrap(),
        2,
        3,
    );
    // Many values against one covariance (the fast path) and a batch of covariances.
    let covariance = Tensor::from_shape(&[2, 2], vec![2.0, 0.3, 0.3, 1.0]).unwrap();
    vectorised_equals_scalar(
        "MultivariateNormal",
        &[
            ("loc", v(&[1.0, -1.0]), 2),
            ("covariance_matrix", covariance, 4),
        ],
        &Tensor::from_shape(&[3, 2], vec![0.0, 0.0, 1.0, 2.0, -3.0, 0.5]).unwrap(),
        3,
        2,
    );
    let trils =
        Tensor::from_shape(&[2, 2, 2], vec![1.0, 0.0, 0.5, 2.0, 0.3, 0.0, -0.2, 0.7]).unwrap();
    vectorised_equals_scalar(
        "MultivariateNormal",
        &[
            (
                "loc",
                Tensor::from_shape(&[2, 2], vec![0.0, 1.0, -1.0, 0.5]).unwrap(),
                2,
            ),
            ("scale_tril", trils, 4),
        ],
        &Tensor::from_shape(&[2, 2], vec![0.3, 0.4, -2.0, 1.0]).unwrap(),
        2,
        2,
    );
}

#[test]
fn shapes_follow_pyro() {
    let mut tape = Tape::new();
    let loc = tape.constant(v(&[0.0, 1.0, 2.0]));
    let scale = tape.constant(s(1.0));
    let normal =
        Distribution::from_call(&mut tape, "Normal", &[("loc", loc), ("scale", scale)]).unwrap();
    assert_eq!(normal.batch_shape(), &[3]);
    assert!(normal.event_shape().is_empty());
    let expanded = normal.expand(&[4, 3]).unwrap();
    assert_eq!(expanded.batch_shape(), &[4, 3]);
    let independent = expanded.to_event(1).unwrap();
    assert_eq!(independent.batch_shape(), &[4]);
    assert_eq!(independent.event_shape(), vec![3]);
    let value = tape.constant(Tensor::zeros(&[4, 3]));
    let log_prob = independent.log_prob(&mut tape, value).unwrap();
    assert_eq!(tape.shape(log_prob), &[4]);
    // Sum over the event equals the sum of the elementwise log-densities.
    let elementwise = expanded.log_prob(&mut tape, value).unwrap();
    let expected: f64 = tape.value(elementwise).data()[..3].iter().sum();
    assert!((tape.value(log_prob).data()[0] - expected).abs() < 1e-14);
    // A value broadcast against the batch: a single number gives the whole batch shape.
    let single = tape.constant(s(0.5));
    let broadcast = expanded.log_prob(&mut tape, single).unwrap();
    assert_eq!(tape.shape(broadcast), &[4, 3]);
    // A sample dimension in front.
    let draw = independent
        .sample(&tape, &mut ChaCha8Rng::seed_from_u64(1), &[5])
        .unwrap();
    assert_eq!(draw.shape(), &[5, 4, 3]);
    let values = tape.constant(draw);
    let sample_log_prob = independent.log_prob(&mut tape, values).unwrap();
    assert_eq!(tape.shape(sample_log_prob), &[5, 4]);
    // `to_event` of everything leaves an empty batch.
    let all = expanded.to_event(2).unwrap();
    assert!(all.batch_shape().is_empty());
    assert_eq!(all.event_shape(), vec![4, 3]);
    assert!(matches!(
        expanded.to_event(3),
        Err(DistError::InvalidToEvent { .. })
    ));
    assert!(matches!(
        normal.expand(&[2]),
        Err(DistError::InvalidExpand { .. })
    ));
    // Multivariate families: event shapes come from the parameters.
    let mean = tape.constant(v(&[0.0, 0.0]));
    let identity = tape.constant(Tensor::from_shape(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap());
    let mvn = Distribution::from_call(
        &mut tape,
        "MultivariateNormal",
        &[("loc", mean), ("scale_tril", identity)],
    )
    .unwrap();
    assert!(mvn.batch_shape().is_empty());
    assert_eq!(mvn.event_shape(), vec![2]);
    let plate = mvn.expand(&[7]).unwrap();
    let points = tape.constant(Tensor::zeros(&[7, 2]));
    let lp = plate.log_prob(&mut tape, points).unwrap();
    assert_eq!(tape.shape(lp), &[7]);
    let wrong = tape.constant(Tensor::zeros(&[7, 3]));
    assert!(matches!(
        plate.log_prob(&mut tape, wrong),
        Err(DistError::ShapeMismatch { .. })
    ));
    assert_eq!(
        plate
            .sample(&tape, &mut ChaCha8Rng::seed_from_u64(2), &[])
            .unwrap()
            .shape(),
        &[7, 2]
    );
}

fn error_of(family: &str, params: &[(&str, Tensor)]) -> DistError {
    let mut tape = Tape::new();
    let named: Vec<(&str, Var)> = params
        .iter()
        .map(|(n, t)| (*n, tape.constant(t.clone())))
        .collect();
    match Distribution::from_call(&mut tape, family, &named) {
        Ok(_) => panic!("{family} {params:?} was accepted"),
        Err(error) => error,
    }
}

#[test]
fn invalid_parameters_are_typed_errors() {
    let error = error_of("Normal", &[("loc", s(0.0)), ("scale", s(-1.0))]);
    assert_eq!(
        error,
        DistError::InvalidParameter {
            family: "Normal",
            parameter: "scale",
            value: -1.0,
            requirement: "greater than 0"
        }
    );
    assert_eq!(
        error.to_string(),
        "Normal: parameter `scale` must be greater than 0, got -1"
    );
    assert!(matches!(
        error_of("Bernoulli", &[("probs", s(1.5))]),
        DistError::InvalidParameter {
            parameter: "probs",
            ..
        }
    ));
    assert!(matches!(
        error_of("Normal", &[("loc", s(f64::NAN))]),
        DistError::InvalidParameter {
            parameter: "loc",
            ..
        }
    ));
    assert!(matches!(
        error_of("Gamma", &[("concentration", s(0.0))]),
        DistError::InvalidParameter { .. }
    ));
    assert!(matches!(
        error_of("Uniform", &[("low", s(2.0)), ("high", s(1.0))]),
        DistError::InvalidParameter {
            parameter: "high",
            ..
        }
    ));
    assert!(matches!(
        error_of(
            "MultivariateNormal",
            &[
                ("loc", v(&[0.0, 0.0])),
                (
                    "covariance_matrix",
                    Tensor::from_shape(&[2, 2], vec![1.0, 2.0, 2.0, 1.0]).unwrap()
                )
            ]
        ),
        DistError::InvalidParameter {
            requirement: "a positive-definite matrix",
            ..
        }
    ));
    assert!(matches!(
        error_of(
            "MultivariateNormal",
            &[(
                "scale_tril",
                Tensor::from_shape(&[2, 2], vec![1.0, 0.5, 0.0, 1.0]).unwrap()
            )]
        ),
        DistError::InvalidParameter {
            parameter: "scale_tril",
            ..
        }
    ));
    assert!(matches!(
        error_of(
            "Wishart",
            &[
                ("df", s(0.5)),
                (
                    "covariance_matrix",
                    Tensor::from_shape(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap()
                )
            ]
        ),
        DistError::InvalidParameter {
            parameter: "df",
            ..
        }
    ));
    assert!(matches!(
        error_of("Binomial", &[("total_count", s(2.5)), ("probs", s(0.5))]),
        DistError::InvalidParameter {
            parameter: "total_count",
            ..
        }
    ));
    assert!(matches!(
        error_of("Dirichlet", &[("concentration", v(&[1.0]))]),
        DistError::InvalidShape { .. }
    ));
    assert!(matches!(
        error_of("Nromal", &[]),
        DistError::UnknownFamily { .. }
    ));
    assert!(matches!(
        error_of("Normal", &[("mean", s(0.0))]),
        DistError::UnknownParameter { .. }
    ));
    assert!(matches!(
        error_of("Bernoulli", &[("probs", s(0.5)), ("logits", s(0.0))]),
        DistError::ConflictingParameters { .. }
    ));
    assert!(matches!(
        error_of("Bernoulli", &[]),
        DistError::MissingParameter { .. }
    ));
    assert!(matches!(
        error_of(
            "Normal",
            &[("loc", v(&[0.0, 1.0])), ("scale", v(&[1.0, 1.0, 1.0]))]
        ),
        DistError::ShapeMismatch { .. }
    ));
}

#[test]
fn defaults_fill_left_out_parameters() {
    let mut tape = Tape::new();
    let normal = Distribution::from_call(&mut tape, "Normal", &[]).unwrap();
    assert_eq!(
        normal.params().iter().map(|p| p.name).collect::<Vec<_>>(),
        vec!["loc", "scale"]
    );
    let df = tape_scalar(&mut tape, 3.0);
    let student = Distribution::from_call(&mut tape, "StudentT", &[("df", df)]).unwrap();
    assert_eq!(tape.value(student.param("scale").unwrap()).item(), Ok(1.0));
    for spec in bdl_dist::FAMILIES {
        assert_eq!(Family::from_name(spec.name), Some(spec.family));
    }
}

fn tape_scalar(tape: &mut Tape, x: f64) -> Var {
    tape.constant(s(x))
}

/// Values outside the support: log-density −∞, and every gradient finite (zero). (An outcome
/// inside the support with probability zero, such as 1 under Bernoulli(probs = 0), also has
/// log-mass −∞, but its gradient in the parameter is rightly infinite.)
#[test]
fn outside_the_support_is_minus_infinity_without_nan() {
    let cases: Vec<SupportCase> = vec![
        ("HalfNormal", vec![("scale", s(1.0))], s(-1.0)),
        (
            "LogNormal",
            vec![("loc", s(0.0)), ("scale", s(1.0))],
            s(-2.0),
        ),
        ("Uniform", vec![("low", s(0.0)), ("high", s(1.0))], s(1.5)),
        ("Exponential", vec![("rate", s(2.0))], s(-0.1)),
        (
            "Gamma",
            vec![("concentration", s(0.5)), ("rate", s(1.0))],
            s(0.0),
        ),
        (
            "InverseGamma",
            vec![("concentration", s(2.0)), ("rate", s(1.0))],
            s(-3.0),
        ),
        (
            "Beta",
            vec![("concentration1", s(0.5)), ("concentration0", s(2.0))],
            s(1.0),
        ),
        ("HalfCauchy", vec![("scale", s(1.0))], s(-5.0)),
        (
            "TruncatedNormal",
            vec![
                ("loc", s(0.0)),
                ("scale", s(1.0)),
                ("low", s(0.0)),
                ("high", s(1.0)),
            ],
            s(2.0),
        ),
        ("Bernoulli", vec![("probs", s(0.0))], s(0.5)),
        ("Bernoulli", vec![("logits", s(0.3))], s(2.0)),
        (
            "Binomial",
            vec![("total_count", s(3.0)), ("logits", s(0.0))],
            s(4.0),
        ),
        ("Categorical", vec![("probs", v(&[0.5, 0.5, 0.0]))], s(2.0)),
        ("Categorical", vec![("logits", v(&[0.5, 0.5]))], s(-1.0)),
        ("Poisson", vec![("rate", s(0.0))], s(-3.0)),
        ("Poisson", vec![("rate", s(2.0))], s(1.5)),
        (
            "NegativeBinomial",
            vec![("total_count", s(2.0)), ("probs", s(0.3))],
            s(-1.0),
        ),
        (
            "Dirichlet",
            vec![("concentration", v(&[1.0, 2.0]))],
            v(&[0.5, 0.6]),
        ),
        (
            "LKJCholesky",
            vec![("dim", s(2.0)), ("concentration", s(2.0))],
            Tensor::from_shape(&[2, 2], vec![1.0, 0.0, 0.5, 0.5]).unwrap(),
        ),
        (
            "Wishart",
            vec![
                ("df", s(3.0)),
                (
                    "covariance_matrix",
                    Tensor::from_shape(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap(),
                ),
            ],
            Tensor::from_shape(&[2, 2], vec![1.0, 2.0, 2.0, 1.0]).unwrap(),
        ),
        ("Delta", vec![("v", s(1.0))], s(2.0)),
        ("FlatPositive", vec![], s(-1.0)),
    ];
    for (family, params, value) in cases {
        let mut tape = Tape::new();
        let mut inputs = Vec::new();
        let named: Vec<(&str, Var)> = params
            .iter()
            .map(|(name, tensor)| {
                let var = if *name == "total_count" || *name == "dim" {
                    tape.constant(tensor.clone())
                } else {
                    tape.input(tensor.clone())
                };
                inputs.push(var);
                (*name, var)
            })
            .collect();
        let value_var = tape.input(value.clone());
        let distribution = Distribution::from_call(&mut tape, family, &named).unwrap();
        let log_prob = distribution.log_prob(&mut tape, value_var).unwrap();
        let total = tape.sum(log_prob);
        assert_eq!(
            tape.value(total).item(),
            Ok(f64::NEG_INFINITY),
            "{family} at {value:?}"
        );
        tape.backward(total).unwrap();
        for var in inputs.iter().chain([&value_var]) {
            assert!(
                tape.grad(*var).iter().all(|g| g.is_finite()),
                "{family}: gradient {:?}",
                tape.grad(*var)
            );
        }
    }
}

#[test]
fn replayed_log_densities_match_fresh_ones() {
    // Recorded at one point and replayed at another (for Gamma, one outside the support).
    let cases: Vec<ReplayCase> = vec![
        (
            "Normal",
            vec!["loc", "scale"],
            vec![s(0.0), s(1.0), v(&[0.3, 2.0])],
            vec![s(1.0), s(0.5), v(&[-1.0, 4.0])],
        ),
        (
            "Gamma",
            vec!["concentration", "rate"],
            vec![s(2.0), s(1.0), v(&[0.5, 1.0])],
            vec![s(0.7), s(3.0), v(&[2.0, -1.0])],
        ),
        (
            "TruncatedNormal",
            vec!["loc", "scale", "low", "high"],
            vec![s(0.0), s(1.0), s(-1.0), s(2.0), s(0.5)],
            vec![s(0.5), s(0.2), s(3.0), s(5.0), s(3.5)],
        ),
        (
            "Poisson",
            vec!["rate"],
            vec![s(2.0), v(&[1.0, 3.0])],
            vec![s(7.0), v(&[0.0, 2.5])],
        ),
        (
            "MultivariateNormal",
            vec!["loc", "scale_tril"],
            vec![
                v(&[0.0, 0.0]),
                Tensor::from_shape(&[2, 2], vec![1.0, 0.0, 0.5, 2.0]).unwrap(),
                v(&[0.3, 0.1]),
            ],
            vec![
                v(&[1.0, -1.0]),
                Tensor::from_shape(&[2, 2], vec![0.5, 0.0, -0.3, 1.0]).unwrap(),
                v(&[2.0, 0.0]),
            ],
        ),
    ];
    for (family, names, recorded, replayed) in cases {
        let result = replay_matches(
            |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
                let named: Vec<(&str, Var)> =
                    names.iter().zip(vars).map(|(n, v)| (*n, *v)).collect();
                let distribution = Distribution::from_call(tape, family, &named)?;
                let log_prob = distribution.log_prob(tape, vars[names.len()])?;
                Ok(tape.sum(log_prob))
            },
            &recorded,
            &replayed,
        );
        if let Err(message) = result {
            panic!("{family}: {message}");
        }
    }
}

#[test]
fn validate_reports_parameters_made_invalid_by_new_values() {
    let mut tape = Tape::new();
    let scale = tape.input(s(1.0));
    let loc = tape.constant(s(0.0));
    let normal =
        Distribution::from_call(&mut tape, "Normal", &[("loc", loc), ("scale", scale)]).unwrap();
    assert!(normal.validate(&tape).is_ok());
    tape.set_value(scale, &[-0.5]).unwrap();
    tape.replay().unwrap();
    assert!(matches!(
        normal.validate(&tape),
        Err(DistError::InvalidParameter {
            parameter: "scale",
            ..
        })
    ));
}
