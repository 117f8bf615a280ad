//! The operations a tape can record, with the one forward match (value kernels) and the one
//! exhaustive backward match (derivatives).
//!
//! Each family of ops lives in its own module with its kernels and the `Tape` methods that record
//! it; this module ties them together. Because `backward` matches every variant without a
//! wildcard, an op added to [`Op`] without a derivative does not compile.

pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod layers;
pub(crate) mod linalg;
pub(crate) mod reduce;

use crate::broadcast::repeat_period;
use crate::tape::{GradientSink, Var};
use crate::tensor::{Tensor, TensorError};
use elementwise::{
    binary_backward, binary_forward, compare, fused_repeat_backward, select_backward,
    select_forward, sigmoid, softplus, unary_backward, unary_forward,
};
use reduce::{layout, Reduction};

/// A comparison or logical connective; its result is 0 or 1 and carries no gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparison {
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Equal,
    NotEqual,
    And,
    Or,
}

/// One recorded operation; operands are earlier nodes of the same tape.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// A differentiable leaf.
    Input,
    /// A leaf without gradient.
    Constant,
    Add(Var, Var),
    Sub(Var, Var),
    Mul(Var, Var),
    Div(Var, Var),
    Pow(Var, Var),
    Compare(Var, Var, Comparison),
    /// `Select(condition, on_true, on_false)`.
    Select(Var, Var, Var),
    AddScalar(Var, f64),
    ScalarSub(f64, Var),
    MulScalar(Var, f64),
    DivScalar(Var, f64),
    ScalarDiv(f64, Var),
    PowScalar(Var, f64),
    Neg(Var),
    Abs(Var),
    Exp(Var),
    Log(Var),
    Log1p(Var),
    Expm1(Var),
    Sqrt(Var),
    Square(Var),
    Tanh(Var),
    Sigmoid(Var),
    Relu(Var),
    Softplus(Var),
    LogSigmoid(Var),
    Lgamma(Var),
    Digamma(Var),
    Erf(Var),
    Erfc(Var),
    /// `Atan2(y, x)`: the angle of the point (x, y).
    Atan2(Var, Var),
    /// `Clamp(input, low, high)`.
    Clamp(Var, f64, f64),
    Not(Var),
    Sum(Var, Reduction),
    Mean(Var, Reduction),
    Max(Var, Reduction),
    Min(Var, Reduction),
    LogSumExp(Var, Reduction),
    /// Softmax along an axis.
    Softmax(Var, usize),
    /// Log-softmax along an axis.
    LogSoftmax(Var, usize),
    MatMul(Var, Var),
    Transpose(Var),
    Cholesky(Var),
    /// Solves op(T)·X = B; see [`crate::Tape::triangular_solve`].
    TriangularSolve {
        matrix: Var,
        rhs: Var,
        lower: bool,
        transpose: bool,
    },
    LogDetTriangular(Var),
    /// One position on an axis, which is removed.
    Index {
        input: Var,
        axis: usize,
        position: usize,
    },
    /// Positions `start..end` on an axis.
    Slice {
        input: Var,
        axis: usize,
        start: usize,
        end: usize,
    },
    /// NumPy's `take` along an axis, at the positions of an index tensor.
    Gather {
        input: Var,
        index: Var,
        axis: usize,
    },
    /// NumPy's `take_along_axis`.
    TakeAlong {
        input: Var,
        index: Var,
        axis: usize,
    },
    /// Equally shaped operands stacked along a new axis.
    Stack(Vec<Var>, usize),
    /// Operands joined along an existing axis.
    Concat(Vec<Var>, usize),
    /// The same elements under the node's shape.
    Reshape(Var),
    /// The operand repeated along broadcast axes to the node's shape.
    BroadcastTo(Var),
    /// Each element a copy of the operand's element at `map[i]`, or zero at
    /// [`layers::ZERO_ENTRY`] (im2col, padding, pooling windows, axis permutations).
    Rearrange {
        input: Var,
        map: std::sync::Arc<[usize]>,
    },
}

impl Op {
    /// Calls `visit` for each operand through which a gradient can flow (not conditions,
    /// comparisons or index tensors).
    pub(crate) fn for_each_differentiable_operand(&self, mut visit: impl FnMut(Var)) {
        match *self {
            Op::Input | Op::Constant | Op::Compare(..) | Op::Not(_) => {}
            Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Mul(a, b)
            | Op::Div(a, b)
            | Op::Pow(a, b)
            | Op::Atan2(a, b) => {
                visit(a);
                visit(b);
            }
            Op::MatMul(a, b)
            | Op::TriangularSolve {
                matrix: a, rhs: b, ..
            } => {
                visit(a);
                visit(b);
            }
            Op::Stack(ref operands, _) | Op::Concat(ref operands, _) => {
                operands.iter().copied().for_each(visit);
            }
            Op::Select(_, on_true, on_false) => {
                visit(on_true);
                visit(on_false);
            }
            Op::AddScalar(a, _)
            | Op::ScalarSub(_, a)
            | Op::MulScalar(a, _)
            | Op::DivScalar(a, _)
            | Op::ScalarDiv(_, a)
            | Op::PowScalar(a, _)
            | Op::Neg(a)
            | Op::Abs(a)
            | Op::Exp(a)
            | Op::Log(a)
            | Op::Log1p(a)
            | Op::Expm1(a)
            | Op::Sqrt(a)
            | Op::Square(a)
            | Op::Tanh(a)
            | Op::Sigmoid(a)
            | Op::Relu(a)
            | Op::Softplus(a)
            | Op::LogSigmoid(a)
            | Op::Lgamma(a)
            | Op::Digamma(a)
            | Op::Erf(a)
            | Op::Erfc(a)
            | Op::Clamp(a, _, _)
            | Op::Sum(a, _)
            | Op::Mean(a, _)
            | Op::Max(a, _)
            | Op::Min(a, _)
            | Op::LogSumExp(a, _)
            | Op::Softmax(a, _)
            | Op::LogSoftmax(a, _)
            | Op::Transpose(a)
            | Op::Cholesky(a)
            | Op::LogDetTriangular(a)
            | Op::Index { input: a, .. }
            | Op::Slice { input: a, .. }
            | Op::Gather { input: a, .. }
            | Op::TakeAlong { input: a, .. }
            | Op::Reshape(a)
            | Op::Rearrange { input: a, .. }
            | Op::BroadcastTo(a) => visit(a),
        }
    }
}

/// Checks what cannot be checked when an op is recorded because it depends on values: the
/// positions held by index tensors. Runs before every replayed evaluation of such an op.
pub(crate) fn validate(op: &Op, values: &[Tensor]) -> Result<(), TensorError> {
    match *op {
        Op::Gather { input, index, axis } => {
            index::validate_positions("gather", &values[index.0], values[input.0].shape()[axis])
        }
        Op::TakeAlong { input, index, axis } => index::validate_positions(
            "take_along_axis",
            &values[index.0],
            values[input.0].shape()[axis],
        ),
        // Every other op's operands keep the shapes that were checked when it was recorded.
        _ => Ok(()),
    }
}

/// Computes the value of `op` from the values of earlier nodes into `out`, whose shape is already
/// the op's result shape. Every element of `out` is written (never accumulated), so replaying
/// into a used buffer gives the same bits as recording afresh.
pub(crate) fn forward(op: &Op, values: &[Tensor], out: &mut Tensor, scratch: &mut Vec<f64>) {
    let value = |var: Var| &values[var.0];
    match *op {
        Op::Input | Op::Constant => {}
        Op::Add(a, b) => binary_forward(value(a), value(b), out, |x, y| x + y),
        Op::Sub(a, b) => binary_forward(value(a), value(b), out, |x, y| x - y),
        Op::Mul(a, b) => binary_forward(value(a), value(b), out, |x, y| x * y),
        Op::Div(a, b) => binary_forward(value(a), value(b), out, |x, y| x / y),
        Op::Pow(a, b) => binary_forward(value(a), value(b), out, f64::powf),
        Op::Compare(a, b, kind) => {
            binary_forward(value(a), value(b), out, |x, y| compare(kind, x, y))
        }
        Op::Select(c, t, f) => select_forward(value(c), value(t), value(f), out),
        Op::AddScalar(a, c) => unary_forward(value(a), out, |x| x + c),
        Op::ScalarSub(c, a) => unary_forward(value(a), out, |x| c - x),
        Op::MulScalar(a, c) => unary_forward(value(a), out, |x| x * c),
        Op::DivScalar(a, c) => unary_forward(value(a), out, |x| x / c),
        Op::ScalarDiv(c, a) => unary_forward(value(a), out, |x| c / x),
        Op::PowScalar(a, c) => unary_forward(value(a), out, |x| x.powf(c)),
        Op::Neg(a) => unary_forward(value(a), out, |x| -x),
        Op::Abs(a) => unary_forward(value(a), out, f64::abs),
        Op::Exp(a) => unary_forward(value(a), out, f64::exp),
        Op::Log(a) => unary_forward(value(a), out, f64::ln),
        Op::Log1p(a) => unary_forward(value(a), out, f64::ln_1p),
        Op::Expm1(a) => unary_forward(value(a), out, f64::exp_m1),
        Op::Sqrt(a) => unary_forward(value(a), out, f64::sqrt),
        Op::Square(a) => unary_forward(value(a), out, |x| x * x),
        Op::Tanh(a) => unary_forward(value(a), out, f64::tanh),
        Op::Sigmoid(a) => unary_forward(value(a), out, sigmoid),
        Op::Relu(a) => unary_forward(value(a), out, |x| if x > 0.0 { x } else { 0.0 }),
        Op::Softplus(a) => unary_forward(value(a), out, softplus),
        Op::LogSigmoid(a) => unary_forward(value(a), out, |x| -softplus(-x)),
        Op::Lgamma(a) => unary_forward(value(a), out, crate::special::ln_gamma),
        Op::Digamma(a) => unary_forward(value(a), out, crate::special::digamma),
        Op::Erf(a) => unary_forward(value(a), out, crate::special::erf),
        Op::Erfc(a) => unary_forward(value(a), out, crate::special::erfc),
        Op::Atan2(a, b) => binary_forward(value(a), value(b), out, f64::atan2),
        Op::Clamp(a, low, high) => unary_forward(value(a), out, |x| x.clamp(low, high)),
        Op::Not(a) => unary_forward(value(a), out, |x| if x == 0.0 { 1.0 } else { 0.0 }),
        Op::Sum(a, reduction) => {
            let input = value(a);
            reduce::sum_forward(
                input.data(),
                layout(input.shape(), reduction),
                out.data_mut(),
                1.0,
            );
        }
        Op::Mean(a, reduction) => {
            let input = value(a);
            let layout = layout(input.shape(), reduction);
            reduce::sum_forward(input.data(), layout, out.data_mut(), 1.0 / layout.1 as f64);
        }
        Op::Max(a, reduction) | Op::Min(a, reduction) => {
            let input = value(a);
            let largest = matches!(op, Op::Max(..));
            let layout = layout(input.shape(), reduction);
            reduce::extremum_forward(input.data(), layout, out.data_mut(), largest);
        }
        Op::LogSumExp(a, reduction) => {
            let input = value(a);
            let layout = layout(input.shape(), reduction);
            reduce::logsumexp_forward(input.data(), layout, out.data_mut());
        }
        Op::Softmax(a, axis) | Op::LogSoftmax(a, axis) => {
            let input = value(a);
            let logarithm = matches!(op, Op::LogSoftmax(..));
            let layout = layout(input.shape(), Reduction::Axis(axis));
            reduce::softmax_forward(input.data(), layout, out.data_mut(), logarithm);
        }
        Op::MatMul(a, b) => linalg::matmul_forward(value(a), value(b), out, scratch),
        Op::Transpose(a) => linalg::transpose_forward(value(a), out),
        Op::Cholesky(a) => linalg::cholesky_forward(value(a), out.data_mut()),
        Op::TriangularSolve {
            matrix,
            rhs,
            lower,
            transpose,
        } => linalg::triangular_solve_forward(
            value(matrix),
            value(rhs),
            lower,
            transpose,
            out.data_mut(),
        ),
        Op::LogDetTriangular(a) => linalg::log_det_triangular_forward(value(a), out.data_mut()),
        Op::Index {
            input,
            axis,
            position,
        } => index::index_forward(value(input), axis, position, out.data_mut()),
        Op::Slice {
            input,
            axis,
            start,
            end,
        } => index::slice_forward(value(input), axis, start, end, out.data_mut()),
        Op::Gather { input, index, axis } => {
            index::gather_forward(value(input), value(index), axis, out.data_mut());
        }
        Op::TakeAlong { input, index, axis } => {
            index::take_along_forward(value(input), value(index), axis, out.data_mut());
        }
        Op::Stack(ref operands, axis) => {
            index::stack_forward(values, operands, axis, out.data_mut())
        }
        Op::Concat(ref operands, axis) => index::concat_forward(values, operands, axis, out),
        Op::Reshape(a) => out.data_mut().copy_from_slice(value(a).data()),
        Op::BroadcastTo(a) => index::broadcast_forward(value(a), out),
        Op::Rearrange { input, ref map } => {
            layers::rearrange_forward(value(input).data(), map, out.data_mut());
        }
    }
}

/// Chain rule for a broadcasting binary op `z = f(x, y)`: `left_partial(x, y, z)` is ∂z/∂x and
/// `right_partial(x, y, z)` is ∂z/∂y.
#[inline]
fn binary_chain(
    sink: &mut GradientSink<'_>,
    (left, right): (Var, Var),
    out: &Tensor,
    upstream: &[f64],
    left_partial: impl Fn(f64, f64, f64) -> f64,
    right_partial: impl Fn(f64, f64, f64) -> f64,
) {
    let values = sink.values();
    let (x, y) = (&values[left.0], &values[right.0]);
    // A full operand combined with one repeated along trailing axes (a bias): when both need
    // gradients, one pass over the upstream gradient fills both.
    if left != right && x.len() != y.len() {
        let (full_is_left, period) = if x.len() == out.len() {
            (true, repeat_period(y.shape(), out.shape()))
        } else if y.len() == out.len() {
            (false, repeat_period(x.shape(), out.shape()))
        } else {
            (true, None)
        };
        if let (Some(period), true) = (period, sink.needs(left) && sink.needs(right)) {
            if let (Some(left_grad), Some(right_grad)) = sink.target_pair(left, right) {
                if full_is_left {
                    fused_repeat_backward(
                        (x, left_grad),
                        (y, right_grad),
                        out,
                        upstream,
                        period,
                        &left_partial,
                        &right_partial,
                    );
                } else {
                    fused_repeat_backward(
                        (y, right_grad),
                        (x, left_grad),
                        out,
                        upstream,
                        period,
                        |f, r, z| right_partial(r, f, z),
                        |f, r, z| left_partial(r, f, z),
                    );
                }
                return;
            }
        }
    }
    if let Some(grad) = sink.target(left) {
        binary_backward(x, y, out, upstream, grad, left_partial);
    }
    if let Some(grad) = sink.target(right) {
        binary_backward(y, x, out, upstream, grad, |y, x, z| right_partial(x, y, z));
    }
}

/// Chain rule for an elementwise op `y = f(x)`: `derivative(x, y)` is f'(x).
#[inline]
fn unary_chain(
    sink: &mut GradientSink<'_>,
    input: Var,
    out: &Tensor,
    upstream: &[f64],
    derivative: impl Fn(f64, f64) -> f64,
) {
    let values = sink.values();
    if let Some(grad) = sink.target(input) {
        unary_backward(&values[input.0], out, upstream, grad, derivative);
    }
}

/// Accumulates the gradient of the node with value `out` and gradient `upstream` into the
/// gradients of its operands. This is the one exhaustive match over [`Op`]: every op states its
/// derivative here, or calls the kernel that implements it next to its forward kernel.
pub(crate) fn backward(
    op: &Op,
    out: &Tensor,
    upstream: &[f64],
    sink: &mut GradientSink<'_>,
    scratch: &mut Vec<f64>,
) {
    let values = sink.values();
    let g = upstream;
    match *op {
        // Leaves have no operands.
        Op::Input | Op::Constant => {}
        // ∂(x + y)/∂x = 1, ∂(x + y)/∂y = 1. An operand with the output's length has exactly the
        // upstream gradient, so it takes over the upstream buffer instead of a copy.
        Op::Add(a, b) => {
            let one = |_: f64, _: f64, _: f64| 1.0;
            if a != b && sink.take_upstream(a, g.len()) {
                if let Some(grad) = sink.target(b) {
                    binary_backward(&values[b.0], &values[a.0], out, g, grad, one);
                }
            } else if a != b && sink.take_upstream(b, g.len()) {
                if let Some(grad) = sink.target(a) {
                    binary_backward(&values[a.0], &values[b.0], out, g, grad, one);
                }
            } else {
                binary_chain(sink, (a, b), out, g, one, one);
            }
        }
        // ∂(x − y)/∂x = 1 (the upstream gradient as it is), ∂(x − y)/∂y = −1.
        Op::Sub(a, b) => {
            if a != b && sink.take_upstream(a, g.len()) {
                if let Some(grad) = sink.target(b) {
                    binary_backward(&values[b.0], &values[a.0], out, g, grad, |_, _, _| -1.0);
                }
            } else {
                binary_chain(sink, (a, b), out, g, |_, _, _| 1.0, |_, _, _| -1.0);
            }
        }
        // ∂(xy)/∂x = y, ∂(xy)/∂y = x.
        Op::Mul(a, b) => binary_chain(sink, (a, b), out, g, |_, y, _| y, |x, _, _| x),
        // ∂(x/y)/∂x = 1/y, ∂(x/y)/∂y = −x/y² = −z/y.
        Op::Div(a, b) => binary_chain(sink, (a, b), out, g, |_, y, _| 1.0 / y, |_, y, z| -z / y),
        // ∂(x^y)/∂x = y·x^(y−1), ∂(x^y)/∂y = x^y·ln x (zero where x^y is zero, the limit).
        Op::Pow(a, b) => binary_chain(
            sink,
            (a, b),
            out,
            g,
            |x, y, _| y * x.powf(y - 1.0),
            |x, _, z| if z == 0.0 { 0.0 } else { z * x.ln() },
        ),
        // Comparisons are piecewise constant: zero gradient, so nothing flows.
        Op::Compare(..) | Op::Not(_) => {}
        // The gradient flows to whichever branch was chosen; the condition gets none.
        Op::Select(condition, on_true, on_false) => {
            let condition = &values[condition.0];
            if let Some(grad) = sink.get(on_true) {
                select_backward(condition, &values[on_true.0], out, g, grad, true);
            }
            if let Some(grad) = sink.get(on_false) {
                select_backward(condition, &values[on_false.0], out, g, grad, false);
            }
        }
        // d(x + c)/dx = 1: the operand takes over the upstream gradient.
        Op::AddScalar(a, _) => {
            if !sink.take_upstream(a, g.len()) {
                unary_chain(sink, a, out, g, |_, _| 1.0);
            }
        }
        // d(c − x)/dx = −1.
        Op::ScalarSub(_, a) => unary_chain(sink, a, out, g, |_, _| -1.0),
        // d(cx)/dx = c.
        Op::MulScalar(a, c) => unary_chain(sink, a, out, g, |_, _| c),
        // d(x/c)/dx = 1/c.
        Op::DivScalar(a, c) => unary_chain(sink, a, out, g, |_, _| 1.0 / c),
        // d(c/x)/dx = −c/x² = −y/x.
        Op::ScalarDiv(_, a) => unary_chain(sink, a, out, g, |x, y| -y / x),
        // d(x^c)/dx = c·x^(c−1).
        Op::PowScalar(a, c) => unary_chain(sink, a, out, g, |x, _| c * x.powf(c - 1.0)),
        // d(−x)/dx = −1.
        Op::Neg(a) => unary_chain(sink, a, out, g, |_, _| -1.0),
        // d|x|/dx = sign(x), taken as 0 at 0.
        Op::Abs(a) => unary_chain(sink, a, out, g, |x, _| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        // d e^x/dx = e^x = y.
        Op::Exp(a) => unary_chain(sink, a, out, g, |_, y| y),
        // d ln x/dx = 1/x.
        Op::Log(a) => unary_chain(sink, a, out, g, |x, _| 1.0 / x),
        // d ln(1 + x)/dx = 1/(1 + x).
        Op::Log1p(a) => unary_chain(sink, a, out, g, |x, _| 1.0 / (1.0 + x)),
        // d(e^x − 1)/dx = e^x = y + 1.
        Op::Expm1(a) => unary_chain(sink, a, out, g, |_, y| y + 1.0),
        // d√x/dx = 1/(2√x) = 0.5/y.
        Op::Sqrt(a) => unary_chain(sink, a, out, g, |_, y| 0.5 / y),
        // d x²/dx = 2x.
        Op::Square(a) => unary_chain(sink, a, out, g, |x, _| 2.0 * x),
        // d tanh x/dx = 1 − tanh² x = 1 − y².
        Op::Tanh(a) => unary_chain(sink, a, out, g, |_, y| 1.0 - y * y),
        // d σ(x)/dx = σ(x)(1 − σ(x)) = y(1 − y).
        Op::Sigmoid(a) => unary_chain(sink, a, out, g, |_, y| y * (1.0 - y)),
        // d max(x, 0)/dx = 1 for x > 0, else 0.
        Op::Relu(a) => unary_chain(sink, a, out, g, |x, _| if x > 0.0 { 1.0 } else { 0.0 }),
        // d log(1 + e^x)/dx = σ(x).
        Op::Softplus(a) => unary_chain(sink, a, out, g, |x, _| sigmoid(x)),
        // d log σ(x)/dx = 1 − σ(x) = σ(−x).
        Op::LogSigmoid(a) => unary_chain(sink, a, out, g, |x, _| sigmoid(-x)),
        // d log Γ(x)/dx = ψ(x).
        Op::Lgamma(a) => unary_chain(sink, a, out, g, |x, _| crate::special::digamma(x)),
        // d ψ(x)/dx = ψ₁(x).
        Op::Digamma(a) => unary_chain(sink, a, out, g, |x, _| crate::special::trigamma(x)),
        // d/dx erf x = 2/√π · exp(−x²), and erfc = 1 − erf.
        Op::Erf(a) => unary_chain(sink, a, out, g, |x, _| {
            std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp()
        }),
        Op::Erfc(a) => unary_chain(sink, a, out, g, |x, _| {
            -std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp()
        }),
        // ∂atan2(y, x)/∂y = x / (x² + y²), ∂atan2(y, x)/∂x = −y / (x² + y²).
        Op::Atan2(a, b) => binary_chain(
            sink,
            (a, b),
            out,
            g,
            |y, x, _| x / (x * x + y * y),
            |y, x, _| -y / (x * x + y * y),
        ),
        // d clamp(x, l, h)/dx = 1 for l ≤ x ≤ h, else 0.
        Op::Clamp(a, low, high) => unary_chain(sink, a, out, g, |x, _| {
            if (low..=high).contains(&x) {
                1.0
            } else {
                0.0
            }
        }),
        // ∂(Σⱼ xⱼ)/∂xⱼ = 1.
        Op::Sum(a, reduction) => {
            let shape = values[a.0].shape();
            if let Some(grad) = sink.target(a) {
                reduce::sum_backward(g, layout(shape, reduction), grad, 1.0);
            }
        }
        // ∂(Σⱼ xⱼ / n)/∂xⱼ = 1/n.
        Op::Mean(a, reduction) => {
            let shape = values[a.0].shape();
            let layout = layout(shape, reduction);
            if let Some(grad) = sink.target(a) {
                reduce::sum_backward(g, layout, grad, 1.0 / layout.1 as f64);
            }
        }
        // ∂ max(x)/∂xⱼ = 1 at the (first) maximum, 0 elsewhere; likewise for min.
        Op::Max(a, reduction) | Op::Min(a, reduction) => {
            let input = &values[a.0];
            if let Some(grad) = sink.get(a) {
                let layout = layout(input.shape(), reduction);
                reduce::extremum_backward(input.data(), layout, out.data(), g, grad);
            }
        }
        // ∂ logsumexp(x)/∂xⱼ = softmax(x)ⱼ.
        Op::LogSumExp(a, reduction) => {
            let input = &values[a.0];
            if let Some(grad) = sink.get(a) {
                let layout = layout(input.shape(), reduction);
                reduce::logsumexp_backward(input.data(), layout, out.data(), g, grad);
            }
        }
        // See `reduce::softmax_backward` for both Jacobian-vector products.
        Op::Softmax(a, axis) | Op::LogSoftmax(a, axis) => {
            let logarithm = matches!(op, Op::LogSoftmax(..));
            let layout = layout(values[a.0].shape(), Reduction::Axis(axis));
            if let Some(grad) = sink.get(a) {
                reduce::softmax_backward(layout, out.data(), g, grad, logarithm);
            }
        }
        // C = AB: ∂L/∂A = (∂L/∂C)Bᵀ, ∂L/∂B = Aᵀ(∂L/∂C).
        Op::MatMul(a, b) => {
            let (left, right) = (&values[a.0], &values[b.0]);
            if let Some(grad) = sink.target(a) {
                linalg::matmul_backward_left(left, right, g, grad, scratch);
            }
            if let Some(grad) = sink.target(b) {
                linalg::matmul_backward_right(left, right, g, grad, scratch);
            }
        }
        // The gradient of a transpose is the upstream gradient transposed back.
        Op::Transpose(a) => {
            let input = &values[a.0];
            if let Some(grad) = sink.get(a) {
                linalg::transpose_backward(input, g, grad);
            }
        }
        // See `linalg::cholesky_backward` for the derivation.
        Op::Cholesky(a) => {
            if let Some(grad) = sink.get(a) {
                linalg::cholesky_backward(out, g, grad, scratch);
            }
        }
        // X = op(T)⁻¹B: B̄ = op(T)⁻ᵀX̄, T̄ from −B̄Xᵀ (see `linalg::triangular_solve_backward`).
        Op::TriangularSolve {
            matrix,
            rhs,
            lower,
            transpose,
        } => {
            // Both operands' gradients come from B̄, so compute it once when both need it: take
            // the matrix's buffer out of the sink first, then the right-hand side's.
            let matrix_value = &values[matrix.0];
            let needs_matrix = sink.get(matrix).is_some();
            let needs_rhs = sink.get(rhs).is_some();
            if needs_matrix {
                let grad = sink.get(matrix);
                linalg::triangular_solve_backward(
                    matrix_value,
                    out,
                    lower,
                    transpose,
                    g,
                    grad,
                    None,
                    scratch,
                );
            }
            if needs_rhs {
                let grad = sink.get(rhs);
                linalg::triangular_solve_backward(
                    matrix_value,
                    out,
                    lower,
                    transpose,
                    g,
                    None,
                    grad,
                    scratch,
                );
            }
        }
        // ∂ log|det T|/∂tᵢᵢ = 1/tᵢᵢ.
        Op::LogDetTriangular(a) => {
            let matrix = &values[a.0];
            if let Some(grad) = sink.get(a) {
                linalg::log_det_triangular_backward(matrix, g, grad);
            }
        }
        // Moving elements has derivative one from each output element to the element it copies.
        Op::Index {
            input,
            axis,
            position,
        } => {
            let shape = values[input.0].shape();
            if let Some(grad) = sink.get(input) {
                index::index_backward(shape, axis, position, g, grad);
            }
        }
        Op::Slice {
            input,
            axis,
            start,
            end,
        } => {
            let shape = values[input.0].shape();
            if let Some(grad) = sink.get(input) {
                index::slice_backward(shape, axis, (start, end), g, grad);
            }
        }
        Op::Gather { input, index, axis } => {
            let (shape, positions) = (values[input.0].shape(), &values[index.0]);
            if let Some(grad) = sink.get(input) {
                index::gather_backward(shape, positions, axis, g, grad);
            }
        }
        Op::TakeAlong { input, index, axis } => {
            let (shape, positions) = (values[input.0].shape(), &values[index.0]);
            if let Some(grad) = sink.get(input) {
                index::take_along_backward(shape, positions, axis, g, grad);
            }
        }
        Op::Stack(ref operands, axis) => {
            for (k, &operand) in operands.iter().enumerate() {
                let shape = values[operand.0].shape();
                if let Some(grad) = sink.get(operand) {
                    index::stack_backward(shape, axis, k, operands.len(), g, grad);
                }
            }
        }
        Op::Concat(ref operands, axis) => {
            let inner: usize = out.shape()[axis + 1..].iter().product();
            let mut offset = 0;
            for &operand in operands {
                let shape = values[operand.0].shape();
                if let Some(grad) = sink.get(operand) {
                    index::concat_backward(out.shape(), shape, axis, offset, g, grad);
                }
                offset += shape[axis] * inner;
            }
        }
        // A reshape keeps the row-major order, so the gradient passes through unchanged.
        Op::Reshape(a) => {
            if sink.take_upstream(a, g.len()) {
                return;
            }
            if let Some(grad) = sink.target(a) {
                if grad.fresh {
                    grad.buffer.copy_from_slice(g);
                } else {
                    for (gr, &u) in grad.buffer.iter_mut().zip(g) {
                        *gr += u;
                    }
                }
            }
        }
        // Undoing a broadcast sums over the repeated axes.
        Op::BroadcastTo(a) => {
            let shape = values[a.0].shape();
            if let Some(grad) = sink.get(a) {
                index::broadcast_backward(shape, out.shape(), g, grad);
            }
        }
        // Each output element came from one input element (or none): scatter-add.
        Op::Rearrange { input, ref map } => {
            if let Some(grad) = sink.get(input) {
                layers::rearrange_backward(map, g, grad);
            }
        }
    }
}
