//! Reductions over all elements or one axis (sum, mean, max, min, logsumexp) and the normalising
//! maps along an axis (softmax, log_softmax).
//!
//! Every kernel sees its operand as `[outer, extent, inner]` around the reduced axis (a reduction
//! over all elements is `[1, len, 1]`): element `(o, j, i)` lives at `(o · extent + j) · inner + i`
//! and lands in output position `o · inner + i`.

use crate::ops::Op;
use crate::tape::{GradTarget, Tape, Var};
use crate::tensor::{normalize_axis, split_at_axis, Shape, TensorError};

/// Which elements a reduction combines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reduction {
    /// Every element; the result is a scalar.
    All,
    /// The elements along one axis; the axis is removed (or kept with extent one).
    Axis(usize),
}

/// The `[outer, extent, inner]` view of an operand of shape `shape` for `reduction`.
pub(crate) fn layout(shape: &[usize], reduction: Reduction) -> (usize, usize, usize) {
    match reduction {
        Reduction::All => (1, shape.iter().product(), 1),
        Reduction::Axis(axis) => split_at_axis(shape, axis),
    }
}

/// Σ of a slice with four accumulators (faster, and no less accurate, than one running sum).
#[inline]
pub(crate) fn sum_slice(values: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let mut chunks = values.chunks_exact(4);
    for chunk in &mut chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    let tail: f64 = chunks.remainder().iter().sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Writes `scale · Σ` over the reduced axis into `out`.
pub(crate) fn sum_forward(
    input: &[f64],
    (_, extent, inner): (usize, usize, usize),
    out: &mut [f64],
    scale: f64,
) {
    if extent == 0 {
        out.fill(0.0);
        return;
    }
    if inner == 1 {
        for (o, row) in out.iter_mut().zip(input.chunks_exact(extent)) {
            *o = sum_slice(row);
        }
    } else {
        out.fill(0.0);
        let blocks = out
            .chunks_exact_mut(inner)
            .zip(input.chunks_exact(extent * inner));
        for (out_block, input_block) in blocks {
            for row in input_block.chunks_exact(inner) {
                for (o, &x) in out_block.iter_mut().zip(row) {
                    *o += x;
                }
            }
        }
    }
    if scale != 1.0 {
        for o in out.iter_mut() {
            *o *= scale;
        }
    }
}

/// d(scale · Σⱼ xⱼ)/dxⱼ = scale: spreads the upstream gradient over the reduced axis (every
/// input element belongs to exactly one lane, so a first contribution writes them all).
pub(crate) fn sum_backward(
    upstream: &[f64],
    (_, extent, inner): (usize, usize, usize),
    grad: GradTarget<'_>,
    scale: f64,
) {
    if extent == 0 {
        return;
    }
    let fresh = grad.fresh;
    let store = |gr: &mut f64, value: f64| {
        if fresh {
            *gr = value;
        } else {
            *gr += value;
        }
    };
    if inner == 1 {
        for (grad_row, &g) in grad.buffer.chunks_exact_mut(extent).zip(upstream) {
            let contribution = g * scale;
            for gr in grad_row {
                store(gr, contribution);
            }
        }
    } else {
        let blocks = grad
            .buffer
            .chunks_exact_mut(extent * inner)
            .zip(upstream.chunks_exact(inner));
        for (grad_block, upstream_block) in blocks {
            for grad_row in grad_block.chunks_exact_mut(inner) {
                for (gr, &g) in grad_row.iter_mut().zip(upstream_block) {
                    store(gr, g * scale);
                }
            }
        }
    }
}

/// Calls `visit(first, stride, output_position)` for every lane of the reduced axis: the lane's
/// elements are at `first + j · stride` for `j` in `0..extent`.
#[inline]
fn for_each_lane(
    (outer, extent, inner): (usize, usize, usize),
    mut visit: impl FnMut(usize, usize, usize),
) {
    for o in 0..outer {
        for i in 0..inner {
            visit(o * extent * inner + i, inner, o * inner + i);
        }
    }
}

/// The largest (`largest = true`) or smallest element of each lane; NaN if the lane holds a NaN,
/// ∓∞ for an empty lane.
pub(crate) fn extremum_forward(
    input: &[f64],
    layout: (usize, usize, usize),
    out: &mut [f64],
    largest: bool,
) {
    let extent = layout.1;
    for_each_lane(layout, |first, stride, position| {
        let mut best = if largest {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        for j in 0..extent {
            let x = input[first + j * stride];
            if x.is_nan() || (largest && x > best) || (!largest && x < best) {
                best = x;
                if x.is_nan() {
                    break;
                }
            }
        }
        out[position] = best;
    });
}

/// The gradient of max (or min) goes to the first element equal to the result.
pub(crate) fn extremum_backward(
    input: &[f64],
    layout: (usize, usize, usize),
    out: &[f64],
    upstream: &[f64],
    grad: &mut [f64],
) {
    let extent = layout.1;
    for_each_lane(layout, |first, stride, position| {
        let best = out[position];
        if let Some(j) = (0..extent).find(|&j| input[first + j * stride] == best) {
            grad[first + j * stride] += upstream[position];
        }
    });
}

/// log Σⱼ e^{xⱼ} of one lane, computed as m + log Σ e^{xⱼ − m} with m the lane maximum.
#[inline]
fn lane_logsumexp(input: &[f64], first: usize, stride: usize, extent: usize) -> f64 {
    let mut maximum = f64::NEG_INFINITY;
    for j in 0..extent {
        let x = input[first + j * stride];
        if x > maximum || x.is_nan() {
            maximum = x;
        }
    }
    if !maximum.is_finite() {
        // All −∞ (or empty) gives −∞; a +∞ or NaN element determines the result.
        return maximum;
    }
    let mut total = 0.0;
    for j in 0..extent {
        total += (input[first + j * stride] - maximum).exp();
    }
    maximum + total.ln()
}

/// logsumexp over each lane.
pub(crate) fn logsumexp_forward(input: &[f64], layout: (usize, usize, usize), out: &mut [f64]) {
    let extent = layout.1;
    for_each_lane(layout, |first, stride, position| {
        out[position] = lane_logsumexp(input, first, stride, extent);
    });
}

/// d logsumexp(x)/dxⱼ = e^{xⱼ − logsumexp(x)} = softmax(x)ⱼ.
pub(crate) fn logsumexp_backward(
    input: &[f64],
    layout: (usize, usize, usize),
    out: &[f64],
    upstream: &[f64],
    grad: &mut [f64],
) {
    let extent = layout.1;
    for_each_lane(layout, |first, stride, position| {
        let total = out[position];
        if total == f64::NEG_INFINITY {
            // Every element is −∞: no element can change the result to first order.
            return;
        }
        let g = upstream[position];
        for j in 0..extent {
            let index = first + j * stride;
            grad[index] += g * (input[index] - total).exp();
        }
    });
}

/// softmax (or log_softmax when `logarithm` is set) along each lane; the output has the input's
/// shape.
pub(crate) fn softmax_forward(
    input: &[f64],
    layout: (usize, usize, usize),
    out: &mut [f64],
    logarithm: bool,
) {
    let extent = layout.1;
    for_each_lane(layout, |first, stride, _| {
        let normaliser = lane_logsumexp(input, first, stride, extent);
        for j in 0..extent {
            let index = first + j * stride;
            let log_probability = input[index] - normaliser;
            out[index] = if logarithm {
                log_probability
            } else {
                log_probability.exp()
            };
        }
    });
}

/// Backward of softmax, yⱼ = e^{xⱼ}/Σₖ e^{xₖ}: ∂L/∂xⱼ = yⱼ (gⱼ − Σₖ gₖ yₖ).
/// Backward of log_softmax, yⱼ = xⱼ − logsumexp(x): ∂L/∂xⱼ = gⱼ − e^{yⱼ} Σₖ gₖ.
pub(crate) fn softmax_backward(
    layout: (usize, usize, usize),
    out: &[f64],
    upstream: &[f64],
    grad: &mut [f64],
    logarithm: bool,
) {
    let extent = layout.1;
    for_each_lane(layout, |first, stride, _| {
        let mut weighted = 0.0;
        for j in 0..extent {
            let index = first + j * stride;
            weighted += if logarithm {
                upstream[index]
            } else {
                upstream[index] * out[index]
            };
        }
        for j in 0..extent {
            let index = first + j * stride;
            grad[index] += if logarithm {
                upstream[index] - out[index].exp() * weighted
            } else {
                out[index] * (upstream[index] - weighted)
            };
        }
    });
}

/// The result shape of reducing `shape` along `axis`.
fn reduced_shape(shape: &[usize], axis: usize, keep_dim: bool) -> Shape {
    let mut reduced = Shape::from_slice(shape);
    if keep_dim {
        reduced[axis] = 1;
    } else {
        reduced.remove(axis);
    }
    reduced
}

impl Tape {
    fn record_reduction(
        &mut self,
        name: &'static str,
        input: Var,
        axis: Option<(isize, bool)>,
        make: fn(Var, Reduction) -> Op,
    ) -> Result<Var, TensorError> {
        match axis {
            None => Ok(self.push(make(input, Reduction::All), Shape::new())),
            Some((axis, keep_dim)) => {
                let shape = self.shape(input);
                let axis = normalize_axis(name, axis, shape.len())?;
                let out_shape = reduced_shape(shape, axis, keep_dim);
                Ok(self.push(make(input, Reduction::Axis(axis)), out_shape))
            }
        }
    }

    fn record_total(&mut self, input: Var, make: fn(Var, Reduction) -> Op) -> Var {
        self.push(make(input, Reduction::All), Shape::new())
    }

    /// The sum of all elements (a scalar).
    pub fn sum(&mut self, input: Var) -> Var {
        self.record_total(input, Op::Sum)
    }

    /// The sum along `axis` (negative counts from the end); `keep_dim` keeps the axis with extent
    /// one.
    pub fn sum_axis(
        &mut self,
        input: Var,
        axis: isize,
        keep_dim: bool,
    ) -> Result<Var, TensorError> {
        self.record_reduction("sum", input, Some((axis, keep_dim)), Op::Sum)
    }

    /// The mean of all elements (NaN for an empty tensor).
    pub fn mean(&mut self, input: Var) -> Var {
        self.record_total(input, Op::Mean)
    }

    /// The mean along `axis`.
    pub fn mean_axis(
        &mut self,
        input: Var,
        axis: isize,
        keep_dim: bool,
    ) -> Result<Var, TensorError> {
        self.record_reduction("mean", input, Some((axis, keep_dim)), Op::Mean)
    }

    /// The largest element (−∞ for an empty tensor); the gradient goes to the first maximum.
    pub fn max(&mut self, input: Var) -> Var {
        self.record_total(input, Op::Max)
    }

    /// The largest element along `axis`.
    pub fn max_axis(
        &mut self,
        input: Var,
        axis: isize,
        keep_dim: bool,
    ) -> Result<Var, TensorError> {
        self.record_reduction("max", input, Some((axis, keep_dim)), Op::Max)
    }

    /// The smallest element (+∞ for an empty tensor); the gradient goes to the first minimum.
    pub fn min(&mut self, input: Var) -> Var {
        self.record_total(input, Op::Min)
    }

    /// The smallest element along `axis`.
    pub fn min_axis(
        &mut self,
        input: Var,
        axis: isize,
        keep_dim: bool,
    ) -> Result<Var, TensorError> {
        self.record_reduction("min", input, Some((axis, keep_dim)), Op::Min)
    }

    /// log Σ e^x over all elements, computed stably.
    pub fn logsumexp(&mut self, input: Var) -> Var {
        self.record_total(input, Op::LogSumExp)
    }

    /// log Σ e^x along `axis`, computed stably.
    pub fn logsumexp_axis(
        &mut self,
        input: Var,
        axis: isize,
        keep_dim: bool,
    ) -> Result<Var, TensorError> {
        self.record_reduction("logsumexp", input, Some((axis, keep_dim)), Op::LogSumExp)
    }

    /// e^x / Σ e^x along `axis`.
    pub fn softmax(&mut self, input: Var, axis: isize) -> Result<Var, TensorError> {
        let shape = Shape::from_slice(self.shape(input));
        let axis = normalize_axis("softmax", axis, shape.len())?;
        Ok(self.push(Op::Softmax(input, axis), shape))
    }

    /// x − logsumexp(x) along `axis`.
    pub fn log_softmax(&mut self, input: Var, axis: isize) -> Result<Var, TensorError> {
        let shape = Shape::from_slice(self.shape(input));
        let axis = normalize_axis("log_softmax", axis, shape.len())?;
        Ok(self.push(Op::LogSoftmax(input, axis), shape))
    }
}
