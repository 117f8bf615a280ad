//! The three reference log densities of the gradient benchmark, shared with the test that checks
//! them against JAX (`tests/workloads.rs`).
//!
//! - `eight_schools`: non-centred eight schools in unconstrained space over
//!   z = [mu, log tau, theta_tilde[8]]: mu ~ N(0, 5), tau = e^(log tau) ~ HalfCauchy(5) with the
//!   log-Jacobian log tau, theta_tilde ~ N(0, 1), y ~ N(mu + tau · theta_tilde, sigma).
//! - `sine_bnn`: a 1-100-1 ReLU network on the 500 points of sine.csv with a Normal likelihood of
//!   scale e^(log sigma); z = [W1 (1×100), b1, W2 (100×1), b2, log sigma].
//! - `iris_bnn`: a 4-100-3 ReLU network on the 112 rows of iris_train.csv, log_softmax and the
//!   categorical log-likelihood; z = [W1 (4×100), b1, W2 (100×3), b2].
//!
//! Constants of the densities are dropped. The parameters are a fixed pattern, the same in
//! `jax_gradients.py`.
#![allow(dead_code, clippy::expect_used)]

use bdl_autodiff::{Tape, TensorError, Var};

const EIGHT_SCHOOLS: &str = include_str!("../../../../models/data/eight_schools.json");
const SINE: &str = include_str!("../../../../models/data/sine.csv");
const IRIS: &str = include_str!("../../../../models/data/iris_train.csv");

/// The numbers of the JSON list that follows `"key":`.
fn json_list(text: &str, key: &str) -> Vec<f64> {
    let start = text.find(&format!("\"{key}\"")).expect("key present");
    let open = start + text[start..].find('[').expect("list opens");
    let close = open + text[open..].find(']').expect("list closes");
    text[open + 1..close]
        .split(',')
        .map(|number| number.trim().parse().expect("a number"))
        .collect()
}

/// The rows of a CSV file with a header line, as numbers.
fn csv_rows(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split(',')
                .map(|cell| cell.trim().parse().expect("a number"))
                .collect()
        })
        .collect()
}

/// The fixed parameter pattern shared with the JAX script: zᵢ = 0.5 · sin(0.37 + 1.3 i).
pub fn parameters(count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| 0.5 * (0.37 + 1.3 * i as f64).sin())
        .collect()
}

/// A log density recorded on a tape from a flat parameter vector.
pub trait Model {
    fn dimension(&self) -> usize;
    /// Records the log density; returns the output and the parameter input.
    fn record(&self, tape: &mut Tape, z: &[f64]) -> Result<(Var, Var), TensorError>;
}

pub struct EightSchools {
    y: Vec<f64>,
    sigma: Vec<f64>,
}

impl Model for EightSchools {
    fn dimension(&self) -> usize {
        10
    }

    fn record(&self, tape: &mut Tape, z: &[f64]) -> Result<(Var, Var), TensorError> {
        let params = tape.input_from(&[10], z)?;
        let y = tape.constant_from(&[8], &self.y)?;
        let sigma = tape.constant_from(&[8], &self.sigma)?;
        let mu = tape.index(params, 0, 0)?;
        let log_tau = tape.index(params, 0, 1)?;
        let theta_tilde = tape.slice(params, 0, 2, 10)?;
        let tau = tape.exp(log_tau);
        // log N(mu | 0, 5) = −mu²/50 + const.
        let mu_squared = tape.square(mu);
        let prior_mu = tape.mul_scalar(mu_squared, -0.5 / 25.0);
        // log HalfCauchy(tau | 5) = −log(1 + (tau/5)²) + const, plus the log-Jacobian log tau.
        let tau_scaled = tape.mul_scalar(tau, 0.2);
        let tau_squared = tape.square(tau_scaled);
        let log_term = tape.log1p(tau_squared);
        let prior_tau = tape.sub(log_tau, log_term)?;
        // log N(theta_tilde | 0, 1) = −Σ theta_tilde²/2 + const.
        let tilde_squared = tape.square(theta_tilde);
        let tilde_total = tape.sum(tilde_squared);
        let prior_tilde = tape.mul_scalar(tilde_total, -0.5);
        // log N(y | mu + tau · theta_tilde, sigma) = −Σ ((y − theta)/sigma)²/2 + const.
        let spread = tape.mul(tau, theta_tilde)?;
        let theta = tape.add(mu, spread)?;
        let residual = tape.sub(y, theta)?;
        let standardised = tape.div(residual, sigma)?;
        let squared = tape.square(standardised);
        let total = tape.sum(squared);
        let likelihood = tape.mul_scalar(total, -0.5);
        let priors = tape.add(prior_mu, prior_tau)?;
        let priors = tape.add(priors, prior_tilde)?;
        let output = tape.add(priors, likelihood)?;
        Ok((output, params))
    }
}

pub struct SineNetwork {
    x: Vec<f64>,
    y: Vec<f64>,
}

pub const HIDDEN: usize = 100;

impl Model for SineNetwork {
    fn dimension(&self) -> usize {
        3 * HIDDEN + 2
    }

    fn record(&self, tape: &mut Tape, z: &[f64]) -> Result<(Var, Var), TensorError> {
        let n = self.x.len();
        let params = tape.input_from(&[self.dimension()], z)?;
        let x = tape.constant_from(&[n, 1], &self.x)?;
        let y = tape.constant_from(&[n, 1], &self.y)?;
        let w1 = tape.slice(params, 0, 0, HIDDEN)?;
        let w1 = tape.reshape(w1, &[1, HIDDEN])?;
        let b1 = tape.slice(params, 0, HIDDEN, 2 * HIDDEN)?;
        let w2 = tape.slice(params, 0, 2 * HIDDEN, 3 * HIDDEN)?;
        let w2 = tape.reshape(w2, &[HIDDEN, 1])?;
        let b2 = tape.slice(params, 0, 3 * HIDDEN, 3 * HIDDEN + 1)?;
        let log_sigma = tape.index(params, 0, 3 * HIDDEN + 1)?;
        let pre_activation = tape.matmul(x, w1)?;
        let pre_activation = tape.add(pre_activation, b1)?;
        let hidden = tape.relu(pre_activation);
        let output = tape.matmul(hidden, w2)?;
        let output = tape.add(output, b2)?;
        // log N(y | f(x), sigma) = −Σ ((y − f)/sigma)²/2 − n log sigma + const.
        let residual = tape.sub(y, output)?;
        let inverse_sigma = tape.neg(log_sigma);
        let inverse_sigma = tape.exp(inverse_sigma);
        let standardised = tape.mul(residual, inverse_sigma)?;
        let squared = tape.square(standardised);
        let total = tape.sum(squared);
        let fit = tape.mul_scalar(total, -0.5);
        let normaliser = tape.mul_scalar(log_sigma, n as f64);
        let log_likelihood = tape.sub(fit, normaliser)?;
        Ok((log_likelihood, params))
    }
}

pub struct IrisNetwork {
    features: Vec<f64>,
    labels: Vec<f64>,
}

pub const FEATURES: usize = 4;
pub const CLASSES: usize = 3;

impl Model for IrisNetwork {
    fn dimension(&self) -> usize {
        FEATURES * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES
    }

    fn record(&self, tape: &mut Tape, z: &[f64]) -> Result<(Var, Var), TensorError> {
        let n = self.labels.len();
        let params = tape.input_from(&[self.dimension()], z)?;
        let x = tape.constant_from(&[n, FEATURES], &self.features)?;
        let labels = tape.constant_from(&[n, 1], &self.labels)?;
        let mut offset = 0;
        let mut take = |tape: &mut Tape, shape: &[usize]| {
            let count: usize = shape.iter().product();
            let part = tape.slice(params, 0, offset, offset + count)?;
            offset += count;
            tape.reshape(part, shape)
        };
        let w1 = take(tape, &[FEATURES, HIDDEN])?;
        let b1 = take(tape, &[HIDDEN])?;
        let w2 = take(tape, &[HIDDEN, CLASSES])?;
        let b2 = take(tape, &[CLASSES])?;
        let pre_activation = tape.matmul(x, w1)?;
        let pre_activation = tape.add(pre_activation, b1)?;
        let hidden = tape.relu(pre_activation);
        let logits = tape.matmul(hidden, w2)?;
        let logits = tape.add(logits, b2)?;
        // log Categorical(label | softmax(logits)) = log_softmax(logits)[label].
        let log_probabilities = tape.log_softmax(logits, -1)?;
        let picked = tape.take_along_axis(log_probabilities, labels, 1)?;
        Ok((tape.sum(picked), params))
    }
}

pub fn eight_schools() -> EightSchools {
    EightSchools {
        y: json_list(EIGHT_SCHOOLS, "y"),
        sigma: json_list(EIGHT_SCHOOLS, "sigma"),
    }
}

pub fn sine_network() -> SineNetwork {
    let rows = csv_rows(SINE);
    SineNetwork {
        x: rows.iter().map(|row| row[0]).collect(),
        y: rows.iter().map(|row| row[1]).collect(),
    }
}

pub fn iris_network() -> IrisNetwork {
    let rows = csv_rows(IRIS);
    IrisNetwork {
        features: rows
            .iter()
            .flat_map(|row| row[..FEATURES].to_vec())
            .collect(),
        labels: rows.iter().map(|row| row[FEATURES]).collect(),
    }
}
