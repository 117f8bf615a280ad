//! Elementwise operations: broadcasting arithmetic, scalar forms, unary functions, comparisons
//! and selection.
//!
//! Binary kernels take fast paths before the general broadcasting walk: equal shapes, a scalar
//! against a tensor, and an operand that repeats over the trailing axes (the bias-add pattern).
//! The backward kernels follow the same paths, so undoing a broadcast (summing the gradient over
//! the repeated axes) happens in the same single pass that applies the chain rule.

use crate::broadcast::{broadcast_shape, repeat_period, Walk};
use crate::ops::{Comparison, Op};
use crate::tape::{GradTarget, Tape, Var};
use crate::tensor::{Shape, Tensor, TensorError};

/// Fills `out` (whose shape is the broadcast of the operands) with `f(a, b)` elementwise.
#[inline]
pub(crate) fn binary_forward(
    left: &Tensor,
    right: &Tensor,
    out: &mut Tensor,
    f: impl Fn(f64, f64) -> f64,
) {
    let (out_shape, out) = out.shape_and_data_mut();
    let (xs, ys) = (left.data(), right.data());
    let n = out.len();
    if xs.len() == n && ys.len() == n {
        for ((o, &x), &y) in out.iter_mut().zip(xs).zip(ys) {
            *o = f(x, y);
        }
    } else if xs.len() == n && ys.len() == 1 {
        let y = ys[0];
        for (o, &x) in out.iter_mut().zip(xs) {
            *o = f(x, y);
        }
    } else if xs.len() == 1 && ys.len() == n {
        let x = xs[0];
        for (o, &y) in out.iter_mut().zip(ys) {
            *o = f(x, y);
        }
    } else if let (true, Some(period)) = (xs.len() == n, repeat_period(right.shape(), out_shape)) {
        for (out_row, x_row) in out.chunks_exact_mut(period).zip(xs.chunks_exact(period)) {
            for ((o, &x), &y) in out_row.iter_mut().zip(x_row).zip(ys) {
                *o = f(x, y);
            }
        }
    } else if let (true, Some(period)) = (ys.len() == n, repeat_period(left.shape(), out_shape)) {
        for (out_row, y_row) in out.chunks_exact_mut(period).zip(ys.chunks_exact(period)) {
            for ((o, &x), &y) in out_row.iter_mut().zip(xs).zip(y_row) {
                *o = f(x, y);
            }
        }
    } else {
        Walk::new(out_shape, [out_shape, left.shape(), right.shape()]).for_each(|[o, i, j]| {
            out[o] = f(xs[i], ys[j]);
        });
    }
}

/// Applies the chain rule for one operand of a broadcasting binary op: adds (or, on a first
/// contribution, writes) `upstream · ∂out/∂target` into the target's gradient, summing over the
/// axes along which `target` was broadcast. `partial(t, o, z)` receives the target's element, the
/// other operand's element and the output element.
#[inline]
pub(crate) fn binary_backward(
    target: &Tensor,
    other: &Tensor,
    out: &Tensor,
    upstream: &[f64],
    grad: GradTarget<'_>,
    partial: impl Fn(f64, f64, f64) -> f64,
) {
    let (ts, os, zs) = (target.data(), other.data(), out.data());
    let n = zs.len();
    if ts.len() == n && os.len() == n {
        let rows = grad.buffer.iter_mut().zip(ts).zip(os).zip(zs).zip(upstream);
        if grad.fresh {
            for ((((gr, &t), &o), &z), &g) in rows {
                *gr = g * partial(t, o, z);
            }
        } else {
            for ((((gr, &t), &o), &z), &g) in rows {
                *gr += g * partial(t, o, z);
            }
        }
    } else if ts.len() == n && os.len() == 1 {
        let o = os[0];
        let rows = grad.buffer.iter_mut().zip(ts).zip(zs).zip(upstream);
        if grad.fresh {
            for (((gr, &t), &z), &g) in rows {
                *gr = g * partial(t, o, z);
            }
        } else {
            for (((gr, &t), &z), &g) in rows {
                *gr += g * partial(t, o, z);
            }
        }
    } else if ts.len() == 1 && os.len() == n {
        let t = ts[0];
        let mut total = 0.0;
        for ((&o, &z), &g) in os.iter().zip(zs).zip(upstream) {
            total += g * partial(t, o, z);
        }
        let mut grad = grad;
        grad.store(0, total);
    } else if let (true, Some(period)) = (ts.len() == n, repeat_period(other.shape(), out.shape()))
    {
        let fresh = grad.fresh;
        let rows = grad
            .buffer
            .chunks_exact_mut(period)
            .zip(ts.chunks_exact(period))
            .zip(zs.chunks_exact(period))
            .zip(upstream.chunks_exact(period));
        for (((grad_row, t_row), z_row), g_row) in rows {
            let elements = grad_row.iter_mut().zip(t_row).zip(os).zip(z_row).zip(g_row);
            if fresh {
                for ((((gr, &t), &o), &z), &g) in elements {
                    *gr = g * partial(t, o, z);
                }
            } else {
                for ((((gr, &t), &o), &z), &g) in elements {
                    *gr += g * partial(t, o, z);
                }
            }
        }
    } else if let (true, Some(period)) = (os.len() == n, repeat_period(target.shape(), out.shape()))
    {
        let grad = grad.accumulator();
        let rows = os
            .chunks_exact(period)
            .zip(zs.chunks_exact(period))
            .zip(upstream.chunks_exact(period));
        for ((o_row, z_row), g_row) in rows {
            let elements = grad.iter_mut().zip(ts).zip(o_row).zip(z_row).zip(g_row);
            for ((((gr, &t), &o), &z), &g) in elements {
                *gr += g * partial(t, o, z);
            }
        }
    } else {
        let grad = grad.accumulator();
        Walk::new(out.shape(), [out.shape(), target.shape(), other.shape()]).for_each(
            |[z_index, t_index, o_index]| {
                grad[t_index] += upstream[z_index] * partial(ts[t_index], os[o_index], zs[z_index]);
            },
        );
    }
}

/// The backward pass of a binary op whose first operand `full` has the output's shape and whose
/// second `repeated` repeats with `period` over it (the bias-add pattern), filling both gradients
/// in one pass over the upstream gradient. `full_partial(f, r, z)` and `repeated_partial(f, r, z)`
/// are the partial derivatives with respect to each, at elements f, r and output z.
#[inline]
pub(crate) fn fused_repeat_backward(
    (full, full_grad): (&Tensor, GradTarget<'_>),
    (repeated, repeated_grad): (&Tensor, GradTarget<'_>),
    out: &Tensor,
    upstream: &[f64],
    period: usize,
    full_partial: impl Fn(f64, f64, f64) -> f64,
    repeated_partial: impl Fn(f64, f64, f64) -> f64,
) {
    let fresh = full_grad.fresh;
    let repeated_grad = repeated_grad.accumulator();
    let rows = full_grad
        .buffer
        .chunks_exact_mut(period)
        .zip(full.data().chunks_exact(period))
        .zip(out.data().chunks_exact(period))
        .zip(upstream.chunks_exact(period));
    for (((grad_row, f_row), z_row), g_row) in rows {
        let elements = grad_row
            .iter_mut()
            .zip(repeated_grad.iter_mut())
            .zip(f_row)
            .zip(repeated.data())
            .zip(z_row)
            .zip(g_row);
        for (((((full_gr, repeated_gr), &f), &r), &z), &g) in elements {
            let contribution = g * full_partial(f, r, z);
            *full_gr = if fresh {
                contribution
            } else {
                *full_gr + contribution
            };
            *repeated_gr += g * repeated_partial(f, r, z);
        }
    }
}

/// Fills `out` with `f(x)` elementwise.
#[inline]
pub(crate) fn unary_forward(input: &Tensor, out: &mut Tensor, f: impl Fn(f64) -> f64) {
    for (o, &x) in out.data_mut().iter_mut().zip(input.data()) {
        *o = f(x);
    }
}

/// Adds (or, on a first contribution, writes) `upstream · f'(x)` into the gradient;
/// `derivative(x, y)` receives the input and output elements, so derivatives expressed through
/// the output (exp, tanh, sigmoid) reuse it.
#[inline]
pub(crate) fn unary_backward(
    input: &Tensor,
    out: &Tensor,
    upstream: &[f64],
    grad: GradTarget<'_>,
    derivative: impl Fn(f64, f64) -> f64,
) {
    let rows = grad
        .buffer
        .iter_mut()
        .zip(input.data())
        .zip(out.data())
        .zip(upstream);
    if grad.fresh {
        for (((gr, &x), &y), &g) in rows {
            *gr = g * derivative(x, y);
        }
    } else {
        for (((gr, &x), &y), &g) in rows {
            *gr += g * derivative(x, y);
        }
    }
}

/// Fills `out` with the elements of `on_true` where `condition` is non-zero and of `on_false`
/// elsewhere, broadcasting all three.
pub(crate) fn select_forward(
    condition: &Tensor,
    on_true: &Tensor,
    on_false: &Tensor,
    out: &mut Tensor,
) {
    let (out_shape, out) = out.shape_and_data_mut();
    let (cs, ts, fs) = (condition.data(), on_true.data(), on_false.data());
    let n = out.len();
    if cs.len() == n && ts.len() == n && fs.len() == n {
        for (((o, &c), &t), &f) in out.iter_mut().zip(cs).zip(ts).zip(fs) {
            *o = if c != 0.0 { t } else { f };
        }
    } else {
        let shapes = [
            out_shape,
            condition.shape(),
            on_true.shape(),
            on_false.shape(),
        ];
        Walk::new(out_shape, shapes).for_each(|[o, c, t, f]| {
            out[o] = if cs[c] != 0.0 { ts[t] } else { fs[f] };
        });
    }
}

/// Accumulates the gradient of `select` into the chosen branch: `grad` belongs to `branch`, and
/// receives the upstream gradient where the condition picks it (`pick_true` says which branch).
pub(crate) fn select_backward(
    condition: &Tensor,
    branch: &Tensor,
    out: &Tensor,
    upstream: &[f64],
    grad: &mut [f64],
    pick_true: bool,
) {
    let cs = condition.data();
    let picks = |c: f64| (c != 0.0) == pick_true;
    if cs.len() == upstream.len() && branch.len() == upstream.len() {
        for ((gr, &c), &g) in grad.iter_mut().zip(cs).zip(upstream) {
            if picks(c) {
                *gr += g;
            }
        }
    } else {
        let shapes = [out.shape(), condition.shape(), branch.shape()];
        Walk::new(out.shape(), shapes).for_each(|[o, c, b]| {
            if picks(cs[c]) {
                grad[b] += upstream[o];
            }
        });
    }
}

/// The 0/1 value of a comparison or logical connective.
#[inline]
pub(crate) fn compare(kind: Comparison, x: f64, y: f64) -> f64 {
    let holds = match kind {
        Comparison::Less => x < y,
        Comparison::LessEqual => x <= y,
        Comparison::Greater => x > y,
        Comparison::GreaterEqual => x >= y,
        Comparison::Equal => x == y,
        Comparison::NotEqual => x != y,
        Comparison::And => x != 0.0 && y != 0.0,
        Comparison::Or => x != 0.0 || y != 0.0,
    };
    if holds {
        1.0
    } else {
        0.0
    }
}

/// The logistic function 1 / (1 + e^−x), without overflow for either sign of x; branch-free, so
/// that kernel loops vectorise (see `vmath`).
#[inline]
pub(crate) fn sigmoid(x: f64) -> f64 {
    crate::vmath::sigmoid(x)
}

/// log(1 + e^x) = max(x, 0) + log1p(e^−|x|), which neither overflows for large x nor loses
/// precision for very negative x; branch-free (see `vmath`).
#[inline]
pub(crate) fn softplus(x: f64) -> f64 {
    crate::vmath::softplus(x)
}

impl Tape {
    fn record_binary(
        &mut self,
        name: &'static str,
        left: Var,
        right: Var,
        op: Op,
    ) -> Result<Var, TensorError> {
        let shape = broadcast_shape(name, self.shape(left), self.shape(right))?;
        Ok(self.push(op, shape))
    }

    fn record_unary(&mut self, input: Var, op: Op) -> Var {
        let shape = Shape::from_slice(self.shape(input));
        self.push(op, shape)
    }

    /// `left + right` with broadcasting.
    pub fn add(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_binary("add", left, right, Op::Add(left, right))
    }

    /// `left − right` with broadcasting.
    pub fn sub(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_binary("sub", left, right, Op::Sub(left, right))
    }

    /// `left × right` elementwise with broadcasting.
    pub fn mul(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_binary("mul", left, right, Op::Mul(left, right))
    }

    /// `left ÷ right` elementwise with broadcasting.
    pub fn div(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_binary("div", left, right, Op::Div(left, right))
    }

    /// `base ^ exponent` elementwise with broadcasting. The gradient with respect to the exponent
    /// is `base^exponent · ln(base)`, which is not a real number for a negative base.
    pub fn pow(&mut self, base: Var, exponent: Var) -> Result<Var, TensorError> {
        self.record_binary("pow", base, exponent, Op::Pow(base, exponent))
    }

    /// `atan2(y, x)` elementwise with broadcasting: the angle in (−π, π] of the point (x, y).
    pub fn atan2(&mut self, y: Var, x: Var) -> Result<Var, TensorError> {
        self.record_binary("atan2", y, x, Op::Atan2(y, x))
    }

    /// `input + constant`.
    pub fn add_scalar(&mut self, input: Var, constant: f64) -> Var {
        self.record_unary(input, Op::AddScalar(input, constant))
    }

    /// `input − constant`.
    pub fn sub_scalar(&mut self, input: Var, constant: f64) -> Var {
        self.record_unary(input, Op::AddScalar(input, -constant))
    }

    /// `constant − input`.
    pub fn scalar_sub(&mut self, constant: f64, input: Var) -> Var {
        self.record_unary(input, Op::ScalarSub(constant, input))
    }

    /// `input × constant`.
    pub fn mul_scalar(&mut self, input: Var, constant: f64) -> Var {
        self.record_unary(input, Op::MulScalar(input, constant))
    }

    /// `input ÷ constant`.
    pub fn div_scalar(&mut self, input: Var, constant: f64) -> Var {
        self.record_unary(input, Op::DivScalar(input, constant))
    }

    /// `constant ÷ input`.
    pub fn scalar_div(&mut self, constant: f64, input: Var) -> Var {
        self.record_unary(input, Op::ScalarDiv(constant, input))
    }

    /// `input ^ constant`.
    pub fn pow_scalar(&mut self, input: Var, exponent: f64) -> Var {
        self.record_unary(input, Op::PowScalar(input, exponent))
    }

    /// `−input`.
    pub fn neg(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Neg(input))
    }

    /// `|input|`; the gradient at zero is taken to be zero.
    pub fn abs(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Abs(input))
    }

    /// `e^input`.
    pub fn exp(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Exp(input))
    }

    /// The natural logarithm (−∞ at zero, NaN below).
    pub fn log(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Log(input))
    }

    /// `log(1 + input)`, accurate for small inputs.
    pub fn log1p(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Log1p(input))
    }

    /// `e^input − 1`, accurate for small inputs.
    pub fn expm1(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Expm1(input))
    }

    /// The square root.
    pub fn sqrt(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Sqrt(input))
    }

    /// `input²`.
    pub fn square(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Square(input))
    }

    /// The hyperbolic tangent.
    pub fn tanh(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Tanh(input))
    }

    /// The logistic function `1 / (1 + e^−input)`.
    pub fn sigmoid(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Sigmoid(input))
    }

    /// `max(input, 0)`; the gradient at zero is taken to be zero.
    pub fn relu(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Relu(input))
    }

    /// `log(1 + e^input)` without overflow.
    pub fn softplus(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Softplus(input))
    }

    /// `log σ(input) = −softplus(−input)` without overflow.
    pub fn log_sigmoid(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::LogSigmoid(input))
    }

    /// The logarithm of the absolute value of the gamma function.
    pub fn lgamma(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Lgamma(input))
    }

    /// The digamma function, the derivative of `lgamma`.
    pub fn digamma(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Digamma(input))
    }

    /// The error function erf x = 2/√π ∫₀ˣ exp(−t²) dt.
    pub fn erf(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Erf(input))
    }

    /// The complementary error function erfc x = 1 − erf x, accurate where erf x is near 1.
    pub fn erfc(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Erfc(input))
    }

    /// Limits every element to `[low, high]`; the gradient is one inside the interval (bounds
    /// included) and zero outside.
    pub fn clamp(&mut self, input: Var, low: f64, high: f64) -> Result<Var, TensorError> {
        if low.is_nan() || high.is_nan() || low > high {
            return Err(TensorError::InvalidArgument {
                op: "clamp",
                message: format!("bounds [{low}, {high}] do not form an interval"),
            });
        }
        Ok(self.record_unary(input, Op::Clamp(input, low, high)))
    }

    fn record_comparison(
        &mut self,
        name: &'static str,
        left: Var,
        right: Var,
        kind: Comparison,
    ) -> Result<Var, TensorError> {
        self.record_binary(name, left, right, Op::Compare(left, right, kind))
    }

    /// 1 where `left < right`, else 0 (no gradient).
    pub fn lt(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("lt", left, right, Comparison::Less)
    }

    /// 1 where `left ≤ right`, else 0 (no gradient).
    pub fn le(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("le", left, right, Comparison::LessEqual)
    }

    /// 1 where `left > right`, else 0 (no gradient).
    pub fn gt(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("gt", left, right, Comparison::Greater)
    }

    /// 1 where `left ≥ right`, else 0 (no gradient).
    pub fn ge(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("ge", left, right, Comparison::GreaterEqual)
    }

    /// 1 where `left == right`, else 0 (no gradient).
    pub fn eq(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("eq", left, right, Comparison::Equal)
    }

    /// 1 where `left != right`, else 0 (no gradient).
    pub fn ne(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("ne", left, right, Comparison::NotEqual)
    }

    /// 1 where both operands are non-zero, else 0 (no gradient).
    pub fn and(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("and", left, right, Comparison::And)
    }

    /// 1 where either operand is non-zero, else 0 (no gradient).
    pub fn or(&mut self, left: Var, right: Var) -> Result<Var, TensorError> {
        self.record_comparison("or", left, right, Comparison::Or)
    }

    /// 1 where the operand is zero, else 0 (no gradient).
    pub fn not(&mut self, input: Var) -> Var {
        self.record_unary(input, Op::Not(input))
    }

    /// Elementwise choice: `on_true` where `condition` is non-zero, `on_false` elsewhere (NumPy's
    /// `where`), broadcasting all three. The gradient flows to the chosen branch only.
    pub fn select(
        &mut self,
        condition: Var,
        on_true: Var,
        on_false: Var,
    ) -> Result<Var, TensorError> {
        let branches = broadcast_shape("select", self.shape(on_true), self.shape(on_false))?;
        let shape = broadcast_shape("select", self.shape(condition), &branches)?;
        Ok(self.push(Op::Select(condition, on_true, on_false), shape))
    }
}
