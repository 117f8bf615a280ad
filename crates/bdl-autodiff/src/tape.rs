//! The tape: a recording of tensor operations in the order they were made, with one value buffer
//! and one gradient buffer per node.
//!
//! Recording an op computes its value at once (fresh-tape mode). The same recording can be
//! evaluated again after new values are written into its leaves with [`Tape::set_value`]:
//! [`Tape::replay`] runs every computed node again in recording order with the same kernels into
//! the same buffers, so it allocates nothing and gives bit-identical results to recording afresh.
//! [`Tape::backward`] walks the nodes in reverse (a loop, never recursion, so graph size is
//! limited by memory only) and accumulates gradients; each op's derivative lives in the one
//! exhaustive match of [`crate::ops::backward`].
//!
//! Buffers of cleared or truncated nodes are kept and handed to the next nodes recorded, so a
//! model recorded again on a cleared tape (for models whose structure depends on sampled values)
//! reuses its allocations.

use crate::ops::{self, Op};
use crate::tensor::{element_count, Shape, Tensor, TensorError};

/// A handle to one node of a [`Tape`]: the position of the node in recording order.
///
/// A `Var` is meaningful only on the tape that made it (or a clone of that tape); using it on
/// another tape reads an unrelated node or panics on an out-of-range position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub(crate) usize);

impl Var {
    /// The position of the node on its tape.
    pub fn index(self) -> usize {
        self.0
    }

    /// The handle of the node at `index` (as returned by [`Var::index`]); for walking a tape's
    /// nodes in order.
    pub fn from_index(index: usize) -> Var {
        Var(index)
    }
}

/// A recording of tensor operations with reverse-mode gradients. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    /// What each node computes from earlier nodes.
    ops: Vec<Op>,
    /// The value of each node.
    values: Vec<Tensor>,
    /// The gradient of each node, allocated the first time a backward pass reaches it.
    grads: Vec<Vec<f64>>,
    /// Whether a gradient can flow into the node (it depends on an input through
    /// differentiable operands).
    needs_grad: Vec<bool>,
    /// Whether the last backward pass reached the node (its gradient buffer is current).
    reached: Vec<bool>,
    /// Zeros as long as the largest node, returned as the gradient of nodes not reached.
    zeros: Vec<f64>,
    /// Value buffers of removed nodes, reused in recording order.
    spare_values: Vec<Vec<f64>>,
    /// Gradient buffers of removed nodes.
    spare_grads: Vec<Vec<f64>>,
    /// Working memory for kernels that need a temporary (transposed operands, Cholesky
    /// adjoints); it grows to the largest need and is then reused.
    scratch: Vec<f64>,
}

/// Mutable access to the gradients of the nodes recorded before the one being differentiated,
/// handed to each arm of the backward match.
pub(crate) struct GradientSink<'a> {
    grads: &'a mut [Vec<f64>],
    reached: &'a mut [bool],
    needs_grad: &'a [bool],
    values: &'a [Tensor],
    spare_grads: &'a mut Vec<Vec<f64>>,
}

impl<'a> GradientSink<'a> {
    /// The values of every node, for derivatives that read operands.
    pub(crate) fn values(&self) -> &'a [Tensor] {
        self.values
    }

    /// The gradient buffer of `var` and whether this is the first contribution of the current
    /// backward pass (then the buffer holds stale values to be overwritten), or `None` if no
    /// gradient flows into `var` (a constant, or a node computed from constants only).
    #[inline]
    fn prepare(&mut self, var: Var) -> Option<(&mut [f64], bool)> {
        let index = var.0;
        prepare_slot(
            &mut self.grads[index],
            &mut self.reached[index],
            self.needs_grad[index],
            self.values[index].len(),
            self.spare_grads,
        )
    }

    /// The gradient targets of two different nodes at once, for kernels that fill both in one
    /// pass.
    pub(crate) fn target_pair(
        &mut self,
        first: Var,
        second: Var,
    ) -> (Option<GradTarget<'_>>, Option<GradTarget<'_>>) {
        debug_assert_ne!(first, second);
        let (low, high, swapped) = if first.0 < second.0 {
            (first.0, second.0, false)
        } else {
            (second.0, first.0, true)
        };
        let (grads_low, grads_high) = self.grads.split_at_mut(high);
        let (reached_low, reached_high) = self.reached.split_at_mut(high);
        let low_target = prepare_slot(
            &mut grads_low[low],
            &mut reached_low[low],
            self.needs_grad[low],
            self.values[low].len(),
            self.spare_grads,
        )
        .map(|(buffer, fresh)| GradTarget { buffer, fresh });
        let high_target = prepare_slot(
            &mut grads_high[0],
            &mut reached_high[0],
            self.needs_grad[high],
            self.values[high].len(),
            self.spare_grads,
        )
        .map(|(buffer, fresh)| GradTarget { buffer, fresh });
        if swapped {
            (high_target, low_target)
        } else {
            (low_target, high_target)
        }
    }

    /// The gradient buffer of `var` to accumulate into (zeroed on the first contribution of a
    /// backward pass), or `None` if no gradient flows into it.
    #[inline]
    pub(crate) fn get(&mut self, var: Var) -> Option<&mut [f64]> {
        let (buffer, fresh) = self.prepare(var)?;
        if fresh {
            buffer.fill(0.0);
        }
        Some(buffer)
    }

    /// The gradient buffer of `var` for kernels that can overwrite it on the first contribution
    /// instead of zeroing it and then adding (which saves a pass over memory).
    #[inline]
    pub(crate) fn target(&mut self, var: Var) -> Option<GradTarget<'_>> {
        let (buffer, fresh) = self.prepare(var)?;
        Some(GradTarget { buffer, fresh })
    }
}

/// Readies one node's gradient buffer for a contribution; see [`GradientSink::prepare`].
#[inline]
fn prepare_slot<'b>(
    buffer: &'b mut Vec<f64>,
    reached: &mut bool,
    needs_grad: bool,
    len: usize,
    spare_grads: &mut Vec<Vec<f64>>,
) -> Option<(&'b mut [f64], bool)> {
    if !needs_grad {
        return None;
    }
    let fresh = !*reached;
    if fresh {
        *reached = true;
        if buffer.len() != len {
            if buffer.capacity() == 0 {
                if let Some(spare) = spare_grads.pop() {
                    *buffer = spare;
                }
            }
            buffer.resize(len, 0.0);
        }
    }
    Some((buffer.as_mut_slice(), fresh))
}

/// A gradient buffer handed to a backward kernel: if `fresh`, this is the first contribution of
/// the pass and the kernel must write every element (`=`); otherwise it adds (`+=`).
pub(crate) struct GradTarget<'a> {
    pub(crate) buffer: &'a mut [f64],
    pub(crate) fresh: bool,
}

impl<'a> GradTarget<'a> {
    /// The buffer ready for accumulation: zeroed first if this is the first contribution.
    pub(crate) fn accumulator(self) -> &'a mut [f64] {
        if self.fresh {
            self.buffer.fill(0.0);
        }
        self.buffer
    }

    /// Stores `value` at `index` (overwriting on a first contribution, adding otherwise).
    #[inline]
    pub(crate) fn store(&mut self, index: usize, value: f64) {
        if self.fresh {
            self.buffer[index] = value;
        } else {
            self.buffer[index] += value;
        }
    }
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Tape {
        Tape::default()
    }

    /// The number of nodes recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Records a differentiable leaf holding `value`.
    pub fn input(&mut self, value: Tensor) -> Var {
        self.push_leaf(Op::Input, value, true)
    }

    /// Records a leaf without gradient: data, or integer indices stored as `f64`.
    pub fn constant(&mut self, value: Tensor) -> Var {
        self.push_leaf(Op::Constant, value, false)
    }

    /// Records a differentiable leaf of the given shape, copying `data` into a recycled buffer
    /// (no allocation when a cleared tape records the same structure again).
    pub fn input_from(&mut self, shape: &[usize], data: &[f64]) -> Result<Var, TensorError> {
        let value = self.tensor_from("input_from", shape, data)?;
        Ok(self.push_leaf(Op::Input, value, true))
    }

    /// Records a constant leaf of the given shape, copying `data` into a recycled buffer.
    pub fn constant_from(&mut self, shape: &[usize], data: &[f64]) -> Result<Var, TensorError> {
        let value = self.tensor_from("constant_from", shape, data)?;
        Ok(self.push_leaf(Op::Constant, value, false))
    }

    /// Records a rank-0 constant; convenient for literals in arithmetic (`1 - x`).
    pub fn scalar(&mut self, value: f64) -> Var {
        let mut buffer = self.spare_values.pop().unwrap_or_default();
        buffer.clear();
        buffer.push(value);
        self.push_leaf(
            Op::Constant,
            Tensor::from_parts(Shape::new(), buffer),
            false,
        )
    }

    /// Overwrites the value of an input or constant; the length must match. Call
    /// [`Tape::replay`] afterwards to recompute the nodes that depend on it.
    pub fn set_value(&mut self, var: Var, data: &[f64]) -> Result<(), TensorError> {
        match self.ops[var.0] {
            Op::Input | Op::Constant => {}
            _ => return Err(TensorError::NotALeaf { node: var.0 }),
        }
        let value = &mut self.values[var.0];
        if value.len() != data.len() {
            return Err(TensorError::DataLength {
                op: "set_value",
                shape: value.shape().to_vec(),
                actual: data.len(),
            });
        }
        value.data_mut().copy_from_slice(data);
        Ok(())
    }

    /// The current value of a node.
    pub fn value(&self, var: Var) -> &Tensor {
        &self.values[var.0]
    }

    /// The shape of a node's value.
    pub fn shape(&self, var: Var) -> &[usize] {
        self.values[var.0].shape()
    }

    /// Whether a gradient can flow into the node: it is an input, or is computed from one through
    /// differentiable operands.
    pub fn requires_grad(&self, var: Var) -> bool {
        self.needs_grad[var.0]
    }

    /// The gradient of the last [`Tape::backward`] output with respect to `var`, in row-major
    /// order with the node's shape; zeros if the pass did not reach the node.
    pub fn grad(&self, var: Var) -> &[f64] {
        let index = var.0;
        let len = self.values[index].len();
        if self.reached[index] {
            &self.grads[index]
        } else {
            &self.zeros[..len]
        }
    }

    /// Recomputes every computed node in recording order from the current leaf values, with the
    /// same kernels and into the same buffers as when it was recorded (no allocation). Fails only
    /// if an index tensor (a gather index or mini-batch) now holds an invalid position. Gradients
    /// of earlier backward passes are cleared.
    pub fn replay(&mut self) -> Result<(), TensorError> {
        self.reached.fill(false);
        for index in 0..self.ops.len() {
            let op = &self.ops[index];
            if matches!(op, Op::Input | Op::Constant) {
                continue;
            }
            let (earlier, rest) = self.values.split_at_mut(index);
            ops::validate(op, earlier)?;
            ops::forward(op, earlier, &mut rest[0], &mut self.scratch);
        }
        Ok(())
    }

    /// Computes the gradient of `output` (which must have exactly one element) with respect to
    /// every node it depends on; read them with [`Tape::grad`]. Gradients of earlier calls are
    /// reset.
    pub fn backward(&mut self, output: Var) -> Result<(), TensorError> {
        let output_index = output.0;
        if self.values[output_index].len() != 1 {
            return Err(TensorError::NotOneElement {
                op: "backward",
                shape: self.values[output_index].shape().to_vec(),
            });
        }
        self.reached.fill(false);
        if !self.needs_grad[output_index] {
            return Ok(());
        }
        {
            let mut sink = GradientSink {
                grads: &mut self.grads,
                reached: &mut self.reached,
                needs_grad: &self.needs_grad,
                values: &self.values,
                spare_grads: &mut self.spare_grads,
            };
            if let Some(seed) = sink.get(output) {
                // d output / d output = 1.
                seed[0] = 1.0;
            }
        }
        for index in (0..=output_index).rev() {
            if !self.reached[index] {
                continue;
            }
            let op = &self.ops[index];
            if matches!(op, Op::Input | Op::Constant) {
                continue;
            }
            let (earlier_grads, rest_grads) = self.grads.split_at_mut(index);
            let (earlier_reached, _) = self.reached.split_at_mut(index);
            let mut sink = GradientSink {
                grads: earlier_grads,
                reached: earlier_reached,
                needs_grad: &self.needs_grad,
                values: &self.values,
                spare_grads: &mut self.spare_grads,
            };
            ops::backward(
                op,
                &self.values[index],
                &rest_grads[0],
                &mut sink,
                &mut self.scratch,
            );
        }
        Ok(())
    }

    /// A mark of the current recording position, for [`Tape::truncate`].
    pub fn mark(&self) -> usize {
        self.ops.len()
    }

    /// Removes every node recorded after `mark` (a value of [`Tape::mark`]), keeping their
    /// buffers for reuse. `Var`s of removed nodes must not be used again.
    pub fn truncate(&mut self, mark: usize) {
        if mark >= self.ops.len() {
            return;
        }
        self.ops.truncate(mark);
        self.needs_grad.truncate(mark);
        self.reached.truncate(mark);
        // Push value buffers newest first so that the next recording pops them oldest first,
        // matching each new node with the buffer of the node recorded at the same position.
        while self.values.len() > mark {
            if let Some(value) = self.values.pop() {
                let (_, buffer) = value.into_parts();
                self.spare_values.push(buffer);
            }
        }
        for buffer in self.grads.drain(mark..) {
            if buffer.capacity() > 0 {
                self.spare_grads.push(buffer);
            }
        }
    }

    /// Removes every node, keeping buffers for a fresh recording.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Records a computed node: takes a recycled buffer, runs the op's forward kernel into it and
    /// appends the node. The caller has checked shapes and, for ops that read index tensors, the
    /// indices ([`ops::validate`]).
    pub(crate) fn push(&mut self, op: Op, shape: Shape) -> Var {
        let len = element_count(&shape);
        let mut buffer = self.spare_values.pop().unwrap_or_default();
        // A recycled buffer keeps its stale contents: every forward kernel writes each element
        // of its output, so only a change of length needs filling.
        buffer.resize(len, 0.0);
        let mut value = Tensor::from_parts(shape, buffer);
        ops::forward(&op, &self.values, &mut value, &mut self.scratch);
        let mut needs_grad = false;
        op.for_each_differentiable_operand(|operand| needs_grad |= self.needs_grad[operand.0]);
        self.append(op, value, needs_grad)
    }

    fn push_leaf(&mut self, op: Op, value: Tensor, needs_grad: bool) -> Var {
        self.append(op, value, needs_grad)
    }

    fn append(&mut self, op: Op, value: Tensor, needs_grad: bool) -> Var {
        if value.len() > self.zeros.len() {
            self.zeros.resize(value.len(), 0.0);
        }
        let var = Var(self.ops.len());
        self.ops.push(op);
        self.values.push(value);
        self.grads.push(Vec::new());
        self.needs_grad.push(needs_grad);
        self.reached.push(false);
        var
    }

    fn tensor_from(
        &mut self,
        op: &'static str,
        shape: &[usize],
        data: &[f64],
    ) -> Result<Tensor, TensorError> {
        if element_count(shape) != data.len() {
            return Err(TensorError::DataLength {
                op,
                shape: shape.to_vec(),
                actual: data.len(),
            });
        }
        let mut buffer = self.spare_values.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(data);
        Ok(Tensor::from_parts(Shape::from_slice(shape), buffer))
    }
}
