//! Gradients of every family's log-density with respect to the value and each parameter,
//! against the six-point finite differences of `bdl_autodiff::check` (relative tolerance 1e-6).

mod common;

use bdl_autodiff::check::gradient;
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_dist::{Bijector, Constraint, DistError, Distribution};

const TOLERANCE: f64 = 1e-6;

fn scalar(x: f64) -> Tensor {
    Tensor::scalar(x)
}

fn vector(data: &[f64]) -> Tensor {
    Tensor::vector(data.to_vec())
}

fn matrix(n: usize, data: &[f64]) -> Tensor {
    Tensor::from_shape(&[n, n], data.to_vec()).unwrap()
}

/// Checks d log p / d(value, differentiable parameters) for a family whose parameters are used
/// as given. `params` lists (name, value, differentiable); the value is differentiable when
/// `value_differentiable` holds.
fn check(family: &str, params: &[(&str, Tensor, bool)], value: Tensor, value_differentiable: bool) {
    let mut inputs: Vec<Tensor> = params
        .iter()
        .filter(|(_, _, differentiable)| *differentiable)
        .map(|(_, tensor, _)| tensor.clone())
        .collect();
    if value_differentiable {
        inputs.push(value.clone());
    }
    let result = gradient(
        |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
            let mut next = vars.iter();
            let mut named = Vec::new();
            for (name, tensor, differentiable) in params {
                let var = if *differentiable {
                    *next.next().expect("an input per differentiable parameter")
                } else {
                    tape.constant(tensor.clone())
                };
                named.push((*name, var));
            }
            let value_var = if value_differentiable {
                *next.next().expect("the value input")
            } else {
                tape.constant(value.clone())
            };
            let distribution = Distribution::from_call(tape, family, &named)?;
            let log_prob = distribution.log_prob(tape, value_var)?;
            Ok(tape.sum(log_prob))
        },
        &inputs,
        TOLERANCE,
    );
    if let Err(message) = result {
        panic!("{family} {params:?} at {value:?}: {message}");
    }
}

#[test]
fn continuous_scalar_families() {
    check(
        "Normal",
        &[("loc", scalar(0.3), true), ("scale", scalar(1.7), true)],
        scalar(2.1),
        true,
    );
    check(
        "Normal",
        &[
            ("loc", vector(&[0.3, -1.0]), true),
            ("scale", scalar(0.4), true),
        ],
        vector(&[2.1, 5.0]),
        true,
    );
    check(
        "HalfNormal",
        &[("scale", scalar(1.3), true)],
        scalar(0.7),
        true,
    );
    check(
        "LogNormal",
        &[("loc", scalar(0.2), true), ("scale", scalar(0.8), true)],
        scalar(1.9),
        true,
    );
    check(
        "Uniform",
        &[("low", scalar(-1.0), true), ("high", scalar(2.5), true)],
        scalar(0.3),
        true,
    );
    check(
        "Exponential",
        &[("rate", scalar(1.5), true)],
        scalar(0.4),
        true,
    );
    check(
        "Gamma",
        &[
            ("concentration", scalar(2.5), true),
            ("rate", scalar(1.3), true),
        ],
        scalar(1.1),
        true,
    );
    check(
        "Gamma",
        &[
            ("concentration", scalar(0.3), true),
            ("rate", scalar(4.0), true),
        ],
        scalar(0.01),
        true,
    );
    check(
        "InverseGamma",
        &[
            ("concentration", scalar(3.0), true),
            ("rate", scalar(2.0), true),
        ],
        scalar(0.7),
        true,
    );
    check(
        "Beta",
        &[
            ("concentration1", scalar(2.2), true),
            ("concentration0", scalar(3.1), true),
        ],
        scalar(0.35),
        true,
    );
    check(
        "Cauchy",
        &[("loc", scalar(0.5), true), ("scale", scalar(2.0), true)],
        scalar(-1.0),
        true,
    );
    check(
        "HalfCauchy",
        &[("scale", scalar(1.5), true)],
        scalar(2.0),
        true,
    );
    check(
        "StudentT",
        &[
            ("df", scalar(4.5), true),
            ("loc", scalar(0.3), true),
            ("scale", scalar(1.2), true),
        ],
        scalar(2.0),
        true,
    );
    check(
        "Laplace",
        &[("loc", scalar(0.2), true), ("scale", scalar(1.4), true)],
        scalar(1.3),
        true,
    );
    check(
        "Logistic",
        &[("loc", scalar(0.1), true), ("scale", scalar(0.9), true)],
        scalar(-0.5),
        true,
    );
    check(
        "Delta",
        &[
            ("v", scalar(1.5), false),
            ("log_density", scalar(-0.3), true),
        ],
        scalar(1.5),
        false,
    );
    check("Flat", &[], vector(&[1.0, -2.0]), true);
    check("FlatPositive", &[], vector(&[1.0, 2.0]), true);
}

#[test]
fn truncated_normal_in_the_body_and_the_tails() {
    let finite = |loc: f64, scale: f64, low: f64, high: f64, x: f64| {
        check(
            "TruncatedNormal",
            &[
                ("loc", scalar(loc), true),
                ("scale", scalar(scale), true),
                ("low", scalar(low), true),
                ("high", scalar(high), true),
            ],
            scalar(x),
            true,
        )
    };
    finite(0.3, 1.2, -1.0, 2.0, 0.5);
    finite(0.0, 1.0, -30.0, -20.0, -20.5);
    finite(-1.0, 0.5, 3.0, 4.0, 3.5);
    // One-sided: the infinite bound is a constant.
    check(
        "TruncatedNormal",
        &[
            ("loc", scalar(0.0), true),
            ("scale", scalar(1.0), true),
            ("low", scalar(5.0), true),
            ("high", scalar(f64::INFINITY), false),
        ],
        scalar(6.0),
        true,
    );
    check(
        "TruncatedNormal",
        &[
            ("loc", scalar(1.0), true),
            ("scale", scalar(2.0), true),
            ("low", scalar(f64::NEG_INFINITY), false),
            ("high", scalar(-3.0), true),
        ],
        scalar(-3.5),
        true,
    );
}

#[test]
fn discrete_families_in_their_parameters() {
    check(
        "Bernoulli",
        &[("probs", scalar(0.3), true)],
        vector(&[1.0, 0.0]),
        false,
    );
    check(
        "Bernoulli",
        &[("logits", scalar(0.7), true)],
        vector(&[0.0, 1.0]),
        false,
    );
    check(
        "Binomial",
        &[
            ("total_count", scalar(10.0), false),
            ("probs", scalar(0.3), true),
        ],
        scalar(4.0),
        false,
    );
    check(
        "Binomial",
        &[
            ("total_count", scalar(10.0), false),
            ("logits", scalar(-0.4), true),
        ],
        scalar(7.0),
        false,
    );
    check(
        "Categorical",
        &[("probs", vector(&[0.2, 0.3, 0.5]), true)],
        vector(&[1.0, 2.0]),
        false,
    );
    check(
        "Categorical",
        &[("logits", vector(&[0.1, -1.0, 2.0]), true)],
        scalar(2.0),
        false,
    );
    check(
        "Poisson",
        &[("rate", scalar(3.5), true)],
        vector(&[2.0, 0.0]),
        false,
    );
    check(
        "NegativeBinomial",
        &[
            ("total_count", scalar(4.5), true),
            ("probs", scalar(0.4), true),
        ],
        scalar(3.0),
        false,
    );
    check(
        "NegativeBinomial",
        &[
            ("total_count", scalar(2.5), true),
            ("logits", scalar(-0.3), true),
        ],
        scalar(5.0),
        false,
    );
}

#[test]
fn dirichlet_in_value_and_concentration() {
    check(
        "Dirichlet",
        &[("concentration", vector(&[1.5, 2.5, 0.7]), true)],
        vector(&[0.2, 0.5, 0.3]),
        false,
    );
    // The value moves through the stick-breaking bijector, so that it stays on the simplex.
    let result = gradient(
        |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
            let distribution =
                Distribution::from_call(tape, "Dirichlet", &[("concentration", vars[0])])?;
            let (value, _) =
                Bijector::for_constraint(&Constraint::Simplex)?.forward(tape, vars[1])?;
            let log_prob = distribution.log_prob(tape, value)?;
            Ok(tape.sum(log_prob))
        },
        &[vector(&[1.5, 2.5, 0.7]), vector(&[0.3, -0.8])],
        TOLERANCE,
    );
    result.unwrap();
}

/// (A + Aᵀ)/2 on the tape, so that perturbing any entry of A keeps the matrix symmetric.
fn symmetric(tape: &mut Tape, a: Var) -> Var {
    let transposed = tape.transpose(a);
    let sum = tape.add(a, transposed).unwrap();
    tape.mul_scalar(sum, 0.5)
}

/// A ⊙ (lower triangle), so that perturbing entries above the diagonal changes nothing.
fn lower_part(tape: &mut Tape, a: Var, n: usize) -> Var {
    let mut mask = Tensor::zeros(&[n, n]);
    for i in 0..n {
        for j in 0..=i {
            mask.data_mut()[i * n + j] = 1.0;
        }
    }
    let mask = tape.constant(mask);
    tape.mul(a, mask).unwrap()
}

#[test]
fn multivariate_normal_in_every_parameterisation() {
    let covariance = matrix(3, &[2.0, 0.3, -0.4, 0.3, 1.0, 0.2, -0.4, 0.2, 0.5]);
    let tril = matrix(3, &[1.4, 0.0, 0.0, 0.2, 0.9, 0.0, -0.3, 0.25, 0.6]);
    let loc = vector(&[1.0, -1.0, 0.5]);
    let values = Tensor::from_shape(&[2, 3], vec![0.3, 0.2, -0.1, 2.0, -3.0, 1.0]).unwrap();
    for name in ["covariance_matrix", "precision_matrix", "scale_tril"] {
        let matrix_input = if name == "scale_tril" {
            tril.clone()
        } else {
            covariance.clone()
        };
        let result = gradient(
            |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
                let matrix_var = if name == "scale_tril" {
                    lower_part(tape, vars[1], 3)
                } else {
                    symmetric(tape, vars[1])
                };
                let distribution = Distribution::from_call(
                    tape,
                    "MultivariateNormal",
                    &[("loc", vars[0]), (name, matrix_var)],
                )?;
                let log_prob = distribution.log_prob(tape, vars[2])?;
                Ok(tape.sum(log_prob))
            },
            &[loc.clone(), matrix_input, values.clone()],
            TOLERANCE,
        );
        if let Err(message) = result {
            panic!("{name}: {message}");
        }
    }
}

#[test]
fn wishart_in_value_df_and_scale() {
    let scale = matrix(2, &[1.0, 0.3, 0.3, 2.0]);
    let value = matrix(2, &[2.0, 0.5, 0.5, 3.0]);
    for name in ["covariance_matrix", "precision_matrix", "scale_tril"] {
        let parameter = if name == "scale_tril" {
            matrix(2, &[1.0, 0.0, 0.3, 1.4])
        } else {
            scale.clone()
        };
        let result = gradient(
            |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
                let matrix_var = if name == "scale_tril" {
                    lower_part(tape, vars[1], 2)
                } else {
                    symmetric(tape, vars[1])
                };
                let x = symmetric(tape, vars[2]);
                let distribution = Distribution::from_call(
                    tape,
                    "Wishart",
                    &[("df", vars[0]), (name, matrix_var)],
                )?;
                let log_prob = distribution.log_prob(tape, x)?;
                Ok(tape.sum(log_prob))
            },
            &[scalar(4.5), parameter, value.clone()],
            TOLERANCE,
        );
        if let Err(message) = result {
            panic!("{name}: {message}");
        }
    }
}

#[test]
fn lkj_cholesky_in_concentration_and_free_coordinates() {
    for (dimension, eta, free) in [(2.0, 1.5, vec![0.4]), (3.0, 0.7, vec![0.3, -0.5, 1.1])] {
        let result = gradient(
            |tape: &mut Tape, vars: &[Var]| -> Result<Var, DistError> {
                let dimension = tape.constant(scalar(dimension));
                let distribution = Distribution::from_call(
                    tape,
                    "LKJCholesky",
                    &[("dim", dimension), ("concentration", vars[0])],
                )?;
                let (value, _) =
                    Bijector::for_constraint(&Constraint::CorrCholesky)?.forward(tape, vars[1])?;
                let log_prob = distribution.log_prob(tape, value)?;
                Ok(tape.sum(log_prob))
            },
            &[scalar(eta), vector(&free)],
            TOLERANCE,
        );
        result.unwrap();
    }
}
