//! Analytic Kullback–Leibler divergences KL(p ‖ q) for the pairs of families that have a closed
//! form, recorded on the tape so that an ELBO can differentiate them.
//!
//! Each formula is stated where it is written. Both distributions must have the same number of
//! `to_event` axes; the result has their broadcast batch shape, with event axes summed.

use crate::distribution::{Distribution, Param};
use crate::families::Family;
use crate::math::{self, constant};
use crate::DistError;
use bdl_autodiff::{Tape, Tensor, Var};

/// KL(p ‖ q), or `None` when no closed form is implemented for the pair of families (or their
/// `to_event` axes differ).
pub fn kl_divergence(
    tape: &mut Tape,
    p: &Distribution,
    q: &Distribution,
) -> Option<Result<Var, DistError>> {
    if p.event_shape().len() - p.base_event_rank() != q.event_shape().len() - q.base_event_rank() {
        return None;
    }
    let base = base_kl(tape, p, q)?;
    let context = format!("kl({}, {})", p.family().name(), q.family().name());
    Some(
        base.and_then(|value| finish(tape, p, q, value))
            .map_err(|error| error.within(&context)),
    )
}

/// Broadcasts the base divergence to both batch shapes and sums the `to_event` axes.
fn finish(
    tape: &mut Tape,
    p: &Distribution,
    q: &Distribution,
    value: Var,
) -> Result<Var, DistError> {
    let mut full_p = p.batch_shape().to_vec();
    let reinterpreted = p.event_shape().len() - p.base_event_rank();
    full_p.extend_from_slice(&p.event_shape()[..reinterpreted]);
    let mut full_q = q.batch_shape().to_vec();
    full_q.extend_from_slice(&q.event_shape()[..reinterpreted]);
    let target = crate::shape::broadcast_shapes(&full_p, &full_q)
        .and_then(|joint| crate::shape::broadcast_shapes(&joint, tape.shape(value)))
        .ok_or_else(|| DistError::ShapeMismatch {
            family: p.family().name(),
            what: "the two distributions' batch shapes",
            left: full_p.clone(),
            right: full_q.clone(),
        })?;
    let mut out = value;
    if tape.shape(out) != target.as_slice() {
        let zeros = tape.constant(Tensor::zeros(&target));
        out = tape.add(out, zeros)?;
    }
    for _ in 0..reinterpreted {
        out = tape.sum_axis(out, -1, false)?;
    }
    Ok(out)
}

/// The divergence between the base families, with the parameters' broadcast batch shape.
fn base_kl(tape: &mut Tape, p: &Distribution, q: &Distribution) -> Option<Result<Var, DistError>> {
    let (pp, qp) = (p.params(), q.params());
    let result = match (p.family(), q.family()) {
        (Family::Normal, Family::Normal) | (Family::LogNormal, Family::LogNormal) => {
            normal_kl(tape, pp[0].var, pp[1].var, qp[0].var, qp[1].var)
        }
        (Family::HalfNormal, Family::HalfNormal) => {
            let zero = constant(tape, 0.0);
            normal_kl(tape, zero, pp[0].var, zero, qp[0].var)
        }
        (Family::Gamma, Family::Gamma) | (Family::InverseGamma, Family::InverseGamma) => {
            // 1/X maps Gamma(α, β) to InverseGamma(α, β) for both, so the divergences agree.
            gamma_kl(tape, pp[0].var, pp[1].var, qp[0].var, qp[1].var)
        }
        (Family::Beta, Family::Beta) => beta_kl(tape, pp, qp),
        (Family::Exponential, Family::Exponential) => exponential_kl(tape, pp[0].var, qp[0].var),
        (Family::Laplace, Family::Laplace) => laplace_kl(tape, pp, qp),
        (Family::Uniform, Family::Uniform) => uniform_kl(tape, pp, qp),
        (Family::Bernoulli, Family::Bernoulli) => bernoulli_kl(tape, &pp[0], &qp[0]),
        (Family::Categorical, Family::Categorical) => categorical_kl(tape, &pp[0], &qp[0]),
        (Family::Poisson, Family::Poisson) => poisson_kl(tape, pp[0].var, qp[0].var),
        (Family::Dirichlet, Family::Dirichlet) => dirichlet_kl(tape, pp[0].var, qp[0].var),
        (Family::MultivariateNormal, Family::MultivariateNormal) => mvn_kl(tape, pp, qp),
        _ => return None,
    };
    Some(result)
}

/// log(σq/σp) + (σp² + (μp − μq)²) / (2σq²) − ½.
fn normal_kl(
    tape: &mut Tape,
    loc_p: Var,
    scale_p: Var,
    loc_q: Var,
    scale_q: Var,
) -> Result<Var, DistError> {
    let ratio = tape.div(scale_p, scale_q)?;
    let log_ratio = tape.log(ratio);
    let ratio_squared = tape.square(ratio);
    let difference = tape.sub(loc_p, loc_q)?;
    let standardized = tape.div(difference, scale_q)?;
    let standardized_squared = tape.square(standardized);
    let sum = tape.add(ratio_squared, standardized_squared)?;
    let half = tape.mul_scalar(sum, 0.5);
    let kl = tape.sub(half, log_ratio)?;
    Ok(tape.add_scalar(kl, -0.5))
}

/// (αp − αq) ψ(αp) − log Γ(αp) + log Γ(αq) + αq (log βp − log βq) + αp (βq − βp)/βp.
fn gamma_kl(
    tape: &mut Tape,
    alpha_p: Var,
    beta_p: Var,
    alpha_q: Var,
    beta_q: Var,
) -> Result<Var, DistError> {
    let alpha_difference = tape.sub(alpha_p, alpha_q)?;
    let digamma_p = tape.digamma(alpha_p);
    let first = tape.mul(alpha_difference, digamma_p)?;
    let lgamma_p = tape.lgamma(alpha_p);
    let lgamma_q = tape.lgamma(alpha_q);
    let log_beta_p = tape.log(beta_p);
    let log_beta_q = tape.log(beta_q);
    let log_beta_difference = tape.sub(log_beta_p, log_beta_q)?;
    let third = tape.mul(alpha_q, log_beta_difference)?;
    let beta_difference = tape.sub(beta_q, beta_p)?;
    let relative = tape.div(beta_difference, beta_p)?;
    let fourth = tape.mul(alpha_p, relative)?;
    let kl = tape.sub(first, lgamma_p)?;
    let kl = tape.add(kl, lgamma_q)?;
    let kl = tape.add(kl, third)?;
    Ok(tape.add(kl, fourth)?)
}

/// log B(aq, bq) − log B(ap, bp) + (ap − aq) ψ(ap) + (bp − bq) ψ(bp) + (aq − ap + bq − bp) ψ(ap + bp).
fn beta_kl(tape: &mut Tape, p: &[Param], q: &[Param]) -> Result<Var, DistError> {
    let (a_p, b_p, a_q, b_q) = (p[0].var, p[1].var, q[0].var, q[1].var);
    let log_beta_q = math::log_beta(tape, a_q, b_q)?;
    let log_beta_p = math::log_beta(tape, a_p, b_p)?;
    let a_difference = tape.sub(a_p, a_q)?;
    let digamma_a = tape.digamma(a_p);
    let first = tape.mul(a_difference, digamma_a)?;
    let b_difference = tape.sub(b_p, b_q)?;
    let digamma_b = tape.digamma(b_p);
    let second = tape.mul(b_difference, digamma_b)?;
    let total_p = tape.add(a_p, b_p)?;
    let digamma_total = tape.digamma(total_p);
    let differences = tape.add(a_difference, b_difference)?;
    let third = tape.mul(differences, digamma_total)?;
    let kl = tape.sub(log_beta_q, log_beta_p)?;
    let kl = tape.add(kl, first)?;
    let kl = tape.add(kl, second)?;
    Ok(tape.sub(kl, third)?)
}

/// log(λp/λq) + λq/λp − 1.
fn exponential_kl(tape: &mut Tape, rate_p: Var, rate_q: Var) -> Result<Var, DistError> {
    let ratio = tape.div(rate_q, rate_p)?;
    let log_ratio = tape.log(ratio);
    let kl = tape.sub(ratio, log_ratio)?;
    Ok(tape.add_scalar(kl, -1.0))
}

/// log(bq/bp) + |μp − μq|/bq + (bp/bq) exp(−|μp − μq|/bp) − 1.
fn laplace_kl(tape: &mut Tape, p: &[Param], q: &[Param]) -> Result<Var, DistError> {
    let (loc_p, scale_p, loc_q, scale_q) = (p[0].var, p[1].var, q[0].var, q[1].var);
    let ratio = tape.div(scale_p, scale_q)?;
    let log_ratio = tape.log(ratio);
    let difference = tape.sub(loc_p, loc_q)?;
    let distance = tape.abs(difference);
    let over_q = tape.div(distance, scale_q)?;
    let over_p = tape.div(distance, scale_p)?;
    let minus = tape.neg(over_p);
    let decay = tape.exp(minus);
    let third = tape.mul(ratio, decay)?;
    let kl = tape.sub(over_q, log_ratio)?;
    let kl = tape.add(kl, third)?;
    Ok(tape.add_scalar(kl, -1.0))
}

/// log((hq − lq)/(hp − lp)) when [lp, hp] ⊆ [lq, hq], +∞ otherwise.
fn uniform_kl(tape: &mut Tape, p: &[Param], q: &[Param]) -> Result<Var, DistError> {
    let (low_p, high_p, low_q, high_q) = (p[0].var, p[1].var, q[0].var, q[1].var);
    let width_p = tape.sub(high_p, low_p)?;
    let width_q = tape.sub(high_q, low_q)?;
    let ratio = tape.div(width_q, width_p)?;
    let kl = tape.log(ratio);
    let low_inside = tape.ge(low_p, low_q)?;
    let high_inside = tape.le(high_p, high_q)?;
    let inside = tape.and(low_inside, high_inside)?;
    math::select_or(tape, inside, kl, f64::INFINITY)
}

/// log p and log(1 − p) from `probs | logits`, finite at p = 0 or 1 where multiplied by zero.
fn log_probabilities(tape: &mut Tape, param: &Param) -> Result<(Var, Var, Var), DistError> {
    if param.name == "logits" {
        let probability = tape.sigmoid(param.var);
        let log_p = tape.log_sigmoid(param.var);
        let minus = tape.neg(param.var);
        let log_q = tape.log_sigmoid(minus);
        Ok((probability, log_p, log_q))
    } else {
        let log_p = tape.log(param.var);
        let minus = tape.neg(param.var);
        let log_q = tape.log1p(minus);
        Ok((param.var, log_p, log_q))
    }
}

/// p (log p − log q) + (1 − p)(log(1 − p) − log(1 − q)), with 0 · log 0 = 0 on p's side.
fn bernoulli_kl(tape: &mut Tape, p: &Param, q: &Param) -> Result<Var, DistError> {
    let probability = if p.name == "logits" {
        tape.sigmoid(p.var)
    } else {
        p.var
    };
    let complement = tape.scalar_sub(1.0, probability);
    let (_, log_p_q, log_one_minus_q) = log_probabilities(tape, q)?;
    // p log p + (1 − p) log(1 − p), the negative entropy, through xlogy for p ∈ {0, 1}.
    let negative_entropy = if p.name == "logits" {
        let (_, log_p, log_one_minus_p) = log_probabilities(tape, p)?;
        let first = tape.mul(probability, log_p)?;
        let second = tape.mul(complement, log_one_minus_p)?;
        tape.add(first, second)?
    } else {
        let first = math::xlogy(tape, probability, probability)?;
        let second = math::xlogy(tape, complement, complement)?;
        tape.add(first, second)?
    };
    let cross_first = tape.mul(probability, log_p_q)?;
    let cross_second = tape.mul(complement, log_one_minus_q)?;
    let cross = tape.add(cross_first, cross_second)?;
    Ok(tape.sub(negative_entropy, cross)?)
}

/// Log-probabilities of a Categorical parameter along its last axis.
fn categorical_log_probs(tape: &mut Tape, param: &Param) -> Result<Var, DistError> {
    if param.name == "logits" {
        Ok(tape.log_softmax(param.var, -1)?)
    } else {
        let total = tape.sum_axis(param.var, -1, true)?;
        let normalised = tape.div(param.var, total)?;
        Ok(tape.log(normalised))
    }
}

/// Σₖ pₖ (log pₖ − log qₖ), with terms where pₖ = 0 left out.
fn categorical_kl(tape: &mut Tape, p: &Param, q: &Param) -> Result<Var, DistError> {
    let probabilities = if p.name == "logits" {
        tape.softmax(p.var, -1)?
    } else {
        let total = tape.sum_axis(p.var, -1, true)?;
        tape.div(p.var, total)?
    };
    let log_q = categorical_log_probs(tape, q)?;
    let negative_entropy = math::xlogy(tape, probabilities, probabilities)?;
    let zero = constant(tape, 0.0);
    let possible = tape.gt(probabilities, zero)?;
    let safe_log_q = math::select_or(tape, possible, log_q, 0.0)?;
    let cross = tape.mul(probabilities, safe_log_q)?;
    let terms = tape.sub(negative_entropy, cross)?;
    Ok(tape.sum_axis(terms, -1, false)?)
}

/// λp log(λp/λq) − λp + λq.
fn poisson_kl(tape: &mut Tape, rate_p: Var, rate_q: Var) -> Result<Var, DistError> {
    let ratio = tape.div(rate_p, rate_q)?;
    let log_term = math::xlogy(tape, rate_p, ratio)?;
    let kl = tape.sub(log_term, rate_p)?;
    Ok(tape.add(kl, rate_q)?)
}

/// log Γ(α₀) − Σ log Γ(αᵢ) − log Γ(β₀) + Σ log Γ(βᵢ) + Σ (αᵢ − βᵢ)(ψ(αᵢ) − ψ(α₀)).
fn dirichlet_kl(tape: &mut Tape, alpha: Var, beta: Var) -> Result<Var, DistError> {
    let alpha_total = tape.sum_axis(alpha, -1, false)?;
    let beta_total = tape.sum_axis(beta, -1, false)?;
    let lgamma_alpha_total = tape.lgamma(alpha_total);
    let lgamma_beta_total = tape.lgamma(beta_total);
    let lgamma_alpha = tape.lgamma(alpha);
    let lgamma_beta = tape.lgamma(beta);
    let lgamma_difference = tape.sub(lgamma_beta, lgamma_alpha)?;
    let digamma_alpha = tape.digamma(alpha);
    let alpha_total_kept = tape.sum_axis(alpha, -1, true)?;
    let digamma_total = tape.digamma(alpha_total_kept);
    let centred = tape.sub(digamma_alpha, digamma_total)?;
    let difference = tape.sub(alpha, beta)?;
    let product = tape.mul(difference, centred)?;
    let per_entry = tape.add(lgamma_difference, product)?;
    let summed = tape.sum_axis(per_entry, -1, false)?;
    let totals = tape.sub(lgamma_alpha_total, lgamma_beta_total)?;
    Ok(tape.add(totals, summed)?)
}

/// A factor F with Σ = F Fᵀ for p's covariance: the Cholesky factor for `covariance_matrix`
/// and `scale_tril`, and Lₚ⁻ᵀ for a precision P = Lₚ Lₚᵀ. Also returns log|Σ|.
fn covariance_factor(tape: &mut Tape, matrix: &Param) -> Result<(Var, Var), DistError> {
    match matrix.name {
        "precision_matrix" => {
            let lower = tape.cholesky(matrix.var)?;
            let n = tape.shape(lower)[0];
            let identity = math::identity(tape, n);
            let factor = tape.triangular_solve(lower, identity, true, true)?;
            let log_det = tape.log_det_triangular(lower)?;
            Ok((factor, tape.mul_scalar(log_det, -2.0)))
        }
        "scale_tril" => {
            let log_det = tape.log_det_triangular(matrix.var)?;
            Ok((matrix.var, tape.mul_scalar(log_det, 2.0)))
        }
        _ => {
            let lower = tape.cholesky(matrix.var)?;
            let log_det = tape.log_det_triangular(lower)?;
            Ok((lower, tape.mul_scalar(log_det, 2.0)))
        }
    }
}

/// Applies Σq^{-1/2} to the columns of `right`: Lq⁻¹ B for a covariance or scale factor Lq, and
/// Lₚᵀ B for a precision factor (Σq⁻¹ = Lₚ Lₚᵀ); returns the result and log|Σq|.
fn whiten_by_q(tape: &mut Tape, matrix: &Param, right: Var) -> Result<(Var, Var), DistError> {
    match matrix.name {
        "precision_matrix" => {
            let lower = tape.cholesky(matrix.var)?;
            let upper = tape.transpose(lower);
            let whitened = tape.matmul(upper, right)?;
            let log_det = tape.log_det_triangular(lower)?;
            Ok((whitened, tape.mul_scalar(log_det, -2.0)))
        }
        name => {
            let lower = if name == "scale_tril" {
                matrix.var
            } else {
                tape.cholesky(matrix.var)?
            };
            let whitened = tape.triangular_solve(lower, right, true, false)?;
            let log_det = tape.log_det_triangular(lower)?;
            Ok((whitened, tape.mul_scalar(log_det, 2.0)))
        }
    }
}

/// ½ [tr(Σq⁻¹Σp) + (μq − μp)ᵀ Σq⁻¹ (μq − μp) − n + log|Σq| − log|Σp|], for one covariance
/// pair (batches of matrices go through one evaluation per batch element).
fn mvn_kl(tape: &mut Tape, p: &[Param], q: &[Param]) -> Result<Var, DistError> {
    let (loc_p, matrix_p, loc_q, matrix_q) = (p[0], p[1], q[0], q[1]);
    let loc_rank = |tape: &Tape, var: Var| usize::from(!tape.shape(var).is_empty());
    let inputs = [
        (loc_p.var, loc_rank(tape, loc_p.var)),
        (matrix_p.var, 2),
        (loc_q.var, loc_rank(tape, loc_q.var)),
        (matrix_q.var, 2),
    ];
    math::per_batch_element(tape, &inputs, |tape, vars| {
        let matrix_p = Param {
            name: matrix_p.name,
            var: vars[1],
        };
        let matrix_q = Param {
            name: matrix_q.name,
            var: vars[3],
        };
        let n = tape.shape(vars[1])[0];
        let (factor_p, log_det_p) = covariance_factor(tape, &matrix_p)?;
        let (whitened_factor, log_det_q) = whiten_by_q(tape, &matrix_q, factor_p)?;
        let trace = tape.square(whitened_factor);
        let trace = tape.sum(trace);
        let difference = tape.sub(vars[2], vars[0])?;
        let zeros = tape.constant(Tensor::zeros(&[n]));
        let difference = tape.add(difference, zeros)?;
        let (whitened_difference, _) = whiten_by_q(tape, &matrix_q, difference)?;
        let quadratic = tape.square(whitened_difference);
        let quadratic = tape.sum(quadratic);
        let total = tape.add(trace, quadratic)?;
        let total = tape.add(total, log_det_q)?;
        let total = tape.sub(total, log_det_p)?;
        let total = tape.add_scalar(total, -(n as f64));
        Ok(tape.mul_scalar(total, 0.5))
    })
}
