//! Indexing and shape ops: selecting one position or a range on an axis, gathering by an index
//! tensor, stacking, concatenating, reshaping and broadcasting.
//!
//! All of them move elements without arithmetic, so their backward kernels add the upstream
//! gradient back to the positions the forward kernels read from.

use crate::broadcast::{broadcast_shape, Walk};
use crate::ops::Op;
use crate::tape::{Tape, Var};
use crate::tensor::{element_count, normalize_axis, split_at_axis, Shape, Tensor, TensorError};

/// Reads an index tensor's element as a position in `0..extent`, or says why it is not one.
pub(crate) fn position(op: &'static str, value: f64, extent: usize) -> Result<usize, TensorError> {
    if value.fract() != 0.0 || !value.is_finite() {
        return Err(TensorError::NotAnInteger { op, value });
    }
    if value < 0.0 || value >= extent as f64 {
        return Err(TensorError::IndexOutOfRange {
            op,
            index: value,
            extent,
        });
    }
    Ok(value as usize)
}

/// Checks every element of an index tensor.
pub(crate) fn validate_positions(
    op: &'static str,
    index: &Tensor,
    extent: usize,
) -> Result<(), TensorError> {
    index
        .data()
        .iter()
        .try_for_each(|&value| position(op, value, extent).map(|_| ()))
}

/// The position an index element denotes; validation has already run, so out-of-range values are
/// clamped only to keep a bug from becoming an out-of-bounds read.
#[inline]
fn checked_position(value: f64, extent: usize) -> usize {
    (value.max(0.0) as usize).min(extent.saturating_sub(1))
}

/// Copies position `at` of `axis` (removing the axis).
pub(crate) fn index_forward(input: &Tensor, axis: usize, at: usize, out: &mut [f64]) {
    let (outer, extent, inner) = split_at_axis(input.shape(), axis);
    for o in 0..outer {
        let start = (o * extent + at) * inner;
        out[o * inner..(o + 1) * inner].copy_from_slice(&input.data()[start..start + inner]);
    }
}

/// Adds the upstream gradient back at position `at` of `axis`.
pub(crate) fn index_backward(
    shape: &[usize],
    axis: usize,
    at: usize,
    upstream: &[f64],
    grad: &mut [f64],
) {
    let (outer, extent, inner) = split_at_axis(shape, axis);
    for o in 0..outer {
        let start = (o * extent + at) * inner;
        let rows = grad[start..start + inner]
            .iter_mut()
            .zip(&upstream[o * inner..(o + 1) * inner]);
        for (gr, &g) in rows {
            *gr += g;
        }
    }
}

/// Copies positions `start..end` of `axis`.
pub(crate) fn slice_forward(
    input: &Tensor,
    axis: usize,
    start: usize,
    end: usize,
    out: &mut [f64],
) {
    let (outer, extent, inner) = split_at_axis(input.shape(), axis);
    let width = (end - start) * inner;
    for o in 0..outer {
        let from = (o * extent + start) * inner;
        out[o * width..(o + 1) * width].copy_from_slice(&input.data()[from..from + width]);
    }
}

/// Adds the upstream gradient back at positions `start..end` of `axis`.
pub(crate) fn slice_backward(
    shape: &[usize],
    axis: usize,
    (start, end): (usize, usize),
    upstream: &[f64],
    grad: &mut [f64],
) {
    let (outer, extent, inner) = split_at_axis(shape, axis);
    let width = (end - start) * inner;
    for o in 0..outer {
        let from = (o * extent + start) * inner;
        for (gr, &g) in grad[from..from + width]
            .iter_mut()
            .zip(&upstream[o * width..(o + 1) * width])
        {
            *gr += g;
        }
    }
}

/// NumPy's `take`: out[o, t, i] = input[o, index[t], i], where `t` runs over the index tensor.
pub(crate) fn gather_forward(input: &Tensor, index: &Tensor, axis: usize, out: &mut [f64]) {
    let (outer, extent, inner) = split_at_axis(input.shape(), axis);
    let count = index.len();
    for o in 0..outer {
        for (t, &value) in index.data().iter().enumerate() {
            let from = (o * extent + checked_position(value, extent)) * inner;
            let to = (o * count + t) * inner;
            out[to..to + inner].copy_from_slice(&input.data()[from..from + inner]);
        }
    }
}

/// Adds the upstream gradient back at every gathered position (repeated positions accumulate).
pub(crate) fn gather_backward(
    shape: &[usize],
    index: &Tensor,
    axis: usize,
    upstream: &[f64],
    grad: &mut [f64],
) {
    let (outer, extent, inner) = split_at_axis(shape, axis);
    let count = index.len();
    for o in 0..outer {
        for (t, &value) in index.data().iter().enumerate() {
            let to = (o * extent + checked_position(value, extent)) * inner;
            let from = (o * count + t) * inner;
            for (gr, &g) in grad[to..to + inner]
                .iter_mut()
                .zip(&upstream[from..from + inner])
            {
                *gr += g;
            }
        }
    }
}

/// NumPy's `take_along_axis`: out[o, t, i] = input[o, index[o, t, i], i], with the index tensor
/// shaped like the input except along `axis`.
pub(crate) fn take_along_forward(input: &Tensor, index: &Tensor, axis: usize, out: &mut [f64]) {
    let (_, extent, inner) = split_at_axis(input.shape(), axis);
    let (outer, count, _) = split_at_axis(index.shape(), axis);
    for o in 0..outer {
        for t in 0..count {
            for i in 0..inner {
                let at = (o * count + t) * inner + i;
                let from = (o * extent + checked_position(index.data()[at], extent)) * inner + i;
                out[at] = input.data()[from];
            }
        }
    }
}

/// Adds the upstream gradient back at the positions `take_along_axis` read.
pub(crate) fn take_along_backward(
    shape: &[usize],
    index: &Tensor,
    axis: usize,
    upstream: &[f64],
    grad: &mut [f64],
) {
    let (_, extent, inner) = split_at_axis(shape, axis);
    let (outer, count, _) = split_at_axis(index.shape(), axis);
    for o in 0..outer {
        for t in 0..count {
            for i in 0..inner {
                let at = (o * count + t) * inner + i;
                let to = (o * extent + checked_position(index.data()[at], extent)) * inner + i;
                grad[to] += upstream[at];
            }
        }
    }
}

/// The outer/inner split of a stack's operands: operand `k` fills out[o, k, :] with its block
/// `o`. Returns (outer, block).
fn stack_blocks(operand_shape: &[usize], axis: usize) -> (usize, usize) {
    (
        element_count(&operand_shape[..axis]),
        element_count(&operand_shape[axis..]),
    )
}

/// Stacks equally shaped operands along a new axis.
pub(crate) fn stack_forward(values: &[Tensor], operands: &[Var], axis: usize, out: &mut [f64]) {
    let Some(first) = operands.first() else {
        return;
    };
    let (outer, block) = stack_blocks(values[first.0].shape(), axis);
    let count = operands.len();
    for (k, operand) in operands.iter().enumerate() {
        let data = values[operand.0].data();
        for o in 0..outer {
            let to = (o * count + k) * block;
            out[to..to + block].copy_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
}

/// The upstream block of operand `k` of a stack, added to its gradient.
pub(crate) fn stack_backward(
    shape: &[usize],
    axis: usize,
    k: usize,
    count: usize,
    upstream: &[f64],
    grad: &mut [f64],
) {
    let (outer, block) = stack_blocks(shape, axis);
    for o in 0..outer {
        let from = (o * count + k) * block;
        for (gr, &g) in grad[o * block..(o + 1) * block]
            .iter_mut()
            .zip(&upstream[from..from + block])
        {
            *gr += g;
        }
    }
}

/// Concatenates operands along an existing axis.
pub(crate) fn concat_forward(values: &[Tensor], operands: &[Var], axis: usize, out: &mut Tensor) {
    let (out_shape, out) = out.shape_and_data_mut();
    let (outer, total_extent, inner) = split_at_axis(out_shape, axis);
    let mut offset = 0;
    for operand in operands {
        let value = &values[operand.0];
        let width = value.shape()[axis] * inner;
        for o in 0..outer {
            let to = o * total_extent * inner + offset;
            out[to..to + width].copy_from_slice(&value.data()[o * width..(o + 1) * width]);
        }
        offset += width;
    }
}

/// The upstream block of one concatenated operand (starting `offset` elements into each outer
/// row of the result), added to its gradient.
pub(crate) fn concat_backward(
    out_shape: &[usize],
    operand_shape: &[usize],
    axis: usize,
    offset: usize,
    upstream: &[f64],
    grad: &mut [f64],
) {
    let (outer, total_extent, inner) = split_at_axis(out_shape, axis);
    let width = operand_shape[axis] * inner;
    for o in 0..outer {
        let from = o * total_extent * inner + offset;
        for (gr, &g) in grad[o * width..(o + 1) * width]
            .iter_mut()
            .zip(&upstream[from..from + width])
        {
            *gr += g;
        }
    }
}

/// Repeats the input along its broadcast axes to fill the output.
pub(crate) fn broadcast_forward(input: &Tensor, out: &mut Tensor) {
    let (out_shape, out) = out.shape_and_data_mut();
    let data = input.data();
    if data.len() == out.len() {
        out.copy_from_slice(data);
    } else if data.len() == 1 {
        out.fill(data[0]);
    } else {
        Walk::new(out_shape, [out_shape, input.shape()]).for_each(|[o, i]| out[o] = data[i]);
    }
}

/// Sums the upstream gradient over the broadcast axes.
pub(crate) fn broadcast_backward(
    shape: &[usize],
    out_shape: &[usize],
    upstream: &[f64],
    grad: &mut [f64],
) {
    if grad.len() == upstream.len() {
        for (gr, &g) in grad.iter_mut().zip(upstream) {
            *gr += g;
        }
    } else if grad.len() == 1 {
        grad[0] += crate::ops::reduce::sum_slice(upstream);
    } else {
        Walk::new(out_shape, [out_shape, shape]).for_each(|[o, i]| grad[i] += upstream[o]);
    }
}

impl Tape {
    /// Selects one position on `axis`, removing the axis (`x[i]` for axis 0, `x[:, j]` for
    /// axis 1).
    pub fn index(&mut self, input: Var, axis: isize, position: usize) -> Result<Var, TensorError> {
        let shape = self.shape(input);
        let axis = normalize_axis("index", axis, shape.len())?;
        if position >= shape[axis] {
            return Err(TensorError::IndexOutOfRange {
                op: "index",
                index: position as f64,
                extent: shape[axis],
            });
        }
        let mut out_shape = Shape::from_slice(shape);
        out_shape.remove(axis);
        Ok(self.push(
            Op::Index {
                input,
                axis,
                position,
            },
            out_shape,
        ))
    }

    /// Selects positions `start..end` on `axis` (`x[a:b]`).
    pub fn slice(
        &mut self,
        input: Var,
        axis: isize,
        start: usize,
        end: usize,
    ) -> Result<Var, TensorError> {
        let shape = self.shape(input);
        let axis = normalize_axis("slice", axis, shape.len())?;
        if start > end || end > shape[axis] {
            return Err(TensorError::InvalidRange {
                op: "slice",
                start,
                end,
                extent: shape[axis],
            });
        }
        let mut out_shape = Shape::from_slice(shape);
        out_shape[axis] = end - start;
        Ok(self.push(
            Op::Slice {
                input,
                axis,
                start,
                end,
            },
            out_shape,
        ))
    }

    /// Gathers along `axis` at the positions held by `index` (whole numbers stored as `f64`,
    /// usually a constant such as a mini-batch or labels), as NumPy's `take`: the result's shape
    /// is the input's with `axis` replaced by the index tensor's shape. `x[idx]` is axis 0.
    pub fn gather(&mut self, input: Var, index: Var, axis: isize) -> Result<Var, TensorError> {
        let shape = self.shape(input);
        let axis = normalize_axis("gather", axis, shape.len())?;
        validate_positions("gather", self.value(index), shape[axis])?;
        let mut out_shape = Shape::from_slice(&shape[..axis]);
        out_shape.extend_from_slice(self.shape(index));
        out_shape.extend_from_slice(&shape[axis + 1..]);
        Ok(self.push(Op::Gather { input, index, axis }, out_shape))
    }

    /// Picks along `axis` one element per position of `index`, which has the input's shape
    /// except along `axis` (NumPy's `take_along_axis`). With logits `[n, k]` and labels reshaped
    /// to `[n, 1]` this picks each row's label.
    pub fn take_along_axis(
        &mut self,
        input: Var,
        index: Var,
        axis: isize,
    ) -> Result<Var, TensorError> {
        let shape = self.shape(input);
        let index_shape = self.shape(index);
        let axis = normalize_axis("take_along_axis", axis, shape.len())?;
        let compatible = index_shape.len() == shape.len()
            && shape
                .iter()
                .zip(index_shape)
                .enumerate()
                .all(|(a, (&extent, &index_extent))| a == axis || extent == index_extent);
        if !compatible {
            return Err(TensorError::ShapeMismatch {
                op: "take_along_axis",
                left: shape.to_vec(),
                right: index_shape.to_vec(),
            });
        }
        validate_positions("take_along_axis", self.value(index), shape[axis])?;
        let out_shape = Shape::from_slice(index_shape);
        Ok(self.push(Op::TakeAlong { input, index, axis }, out_shape))
    }

    /// Stacks equally shaped operands along a new axis at position `axis` (negative counts from
    /// the end of the result's axes).
    pub fn stack(&mut self, operands: &[Var], axis: isize) -> Result<Var, TensorError> {
        let Some(&first) = operands.first() else {
            return Err(TensorError::NoOperands { op: "stack" });
        };
        let shape = Shape::from_slice(self.shape(first));
        for &operand in &operands[1..] {
            if self.shape(operand) != shape.as_slice() {
                return Err(TensorError::ShapeMismatch {
                    op: "stack",
                    left: shape.to_vec(),
                    right: self.shape(operand).to_vec(),
                });
            }
        }
        let axis = normalize_axis("stack", axis, shape.len() + 1)?;
        let mut out_shape = shape;
        out_shape.insert(axis, operands.len());
        Ok(self.push(Op::Stack(operands.to_vec(), axis), out_shape))
    }

    /// Concatenates operands along an existing axis; the other extents must agree.
    pub fn concat(&mut self, operands: &[Var], axis: isize) -> Result<Var, TensorError> {
        let Some(&first) = operands.first() else {
            return Err(TensorError::NoOperands { op: "concat" });
        };
        let mut out_shape = Shape::from_slice(self.shape(first));
        let axis = normalize_axis("concat", axis, out_shape.len())?;
        for &operand in &operands[1..] {
            let shape = self.shape(operand);
            let compatible = shape.len() == out_shape.len()
                && shape
                    .iter()
                    .zip(&out_shape)
                    .enumerate()
                    .all(|(a, (&extent, &first_extent))| a == axis || extent == first_extent);
            if !compatible {
                return Err(TensorError::ShapeMismatch {
                    op: "concat",
                    left: out_shape.to_vec(),
                    right: shape.to_vec(),
                });
            }
            out_shape[axis] += shape[axis];
        }
        Ok(self.push(Op::Concat(operands.to_vec(), axis), out_shape))
    }

    /// The same elements under a new shape with the same number of elements.
    pub fn reshape(&mut self, input: Var, shape: &[usize]) -> Result<Var, TensorError> {
        if element_count(shape) != self.value(input).len() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                left: self.shape(input).to_vec(),
                right: shape.to_vec(),
            });
        }
        Ok(self.push(Op::Reshape(input), Shape::from_slice(shape)))
    }

    /// Inserts an axis of extent one at `axis` (`x[:, None]` is axis 1); negative counts from the
    /// end of the result's axes.
    pub fn expand_dims(&mut self, input: Var, axis: isize) -> Result<Var, TensorError> {
        let mut shape = Shape::from_slice(self.shape(input));
        let axis = normalize_axis("expand_dims", axis, shape.len() + 1)?;
        shape.insert(axis, 1);
        Ok(self.push(Op::Reshape(input), shape))
    }

    /// Repeats the input along broadcast axes to the given shape (NumPy rules).
    pub fn broadcast_to(&mut self, input: Var, shape: &[usize]) -> Result<Var, TensorError> {
        let input_shape = self.shape(input);
        let target = broadcast_shape("broadcast_to", input_shape, shape)?;
        if target.as_slice() != shape {
            return Err(TensorError::ShapeMismatch {
                op: "broadcast_to",
                left: input_shape.to_vec(),
                right: shape.to_vec(),
            });
        }
        Ok(self.push(Op::BroadcastTo(input), target))
    }
}
