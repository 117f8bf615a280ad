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
//!
//! Two savings in the backward pass keep every node's gradient readable: the first contribution
//! to a gradient overwrites the stale buffer instead of zeroing it and adding, and an operand
//! whose gradient equals its consumer's (`x` in `x + b`) takes over the consumer's buffer rather
//! than a copy; the consumer then reads its gradient from the operand's slot (`home`), and gets a
//! copy back before that slot receives anything else (`borrowed_by`).

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
    /// The gradient slot of each node, allocated the first time a backward pass reaches it.
    /// Slots past the last node are kept after [`Tape::truncate`] and reused by the nodes later
    /// recorded at the same positions, which in a re-recorded model have the same lengths.
    grads: Vec<Vec<f64>>,
    /// Whether a gradient can flow into the node (it depends on an input through
    /// differentiable operands).
    needs_grad: Vec<bool>,
    /// Whether the last backward pass reached the node (its gradient is current).
    reached: Vec<bool>,
    /// The slot of `grads` holding the node's gradient: its own, or, after the node handed its
    /// upstream buffer to an operand whose gradient is identical (`x + b` passes its gradient to
    /// `x` unchanged), that operand's slot. Always a lower index, so chains end.
    home: Vec<usize>,
    /// For each slot, the later node whose gradient it also holds after a hand-over, or
    /// `NO_NODE`. Before such a slot is changed, the later node gets its own copy back.
    borrowed_by: Vec<usize>,
    /// Zeros as long as the largest node, returned as the gradient of nodes not reached.
    zeros: Vec<f64>,
    /// Value buffers of removed nodes, reused in recording order.
    spare_values: Vec<Vec<f64>>,
    /// Working memory for kernels that need a temporary (transposed operands, Cholesky
    /// adjoints); it grows to the largest need and is then reused.
    scratch: Vec<f64>,
}

/// Marks the absence of a node in [`Tape::borrowed_by`].
const NO_NODE: usize = usize::MAX;

/// Mutable access to the gradients of the operands of the node being differentiated, handed to
/// each arm of the backward match.
pub(crate) struct GradientSink<'a> {
    /// The node being differentiated.
    current: usize,
    /// Gradient slots of the nodes before `current`.
    grads_before: &'a mut [Vec<f64>],
    /// Gradient slots of the nodes after `current` (index `current + 1` first).
    grads_after: &'a mut [Vec<f64>],
    reached: &'a mut [bool],
    home: &'a mut [usize],
    borrowed_by: &'a mut [usize],
    needs_grad: &'a [bool],
    values: &'a [Tensor],
    /// The operand that takes over the upstream gradient buffer, if the arm chose one.
    hand_over: Option<Var>,
}

impl<'a> GradientSink<'a> {
    /// The values of every node, for derivatives that read operands.
    pub(crate) fn values(&self) -> &'a [Tensor] {
        self.values
    }

    /// Readies the gradient slot of `index` for a contribution and says whether it is the first
    /// of this pass (`Some(true)`: the slot holds stale values to be overwritten), or returns
    /// `None` if no gradient flows into the node.
    #[inline]
    fn ready(&mut self, index: usize) -> Option<bool> {
        if !self.needs_grad[index] {
            return None;
        }
        let fresh = !self.reached[index];
        let buffer = &mut self.grads_before[index];
        if fresh {
            self.reached[index] = true;
            let len = self.values[index].len();
            if buffer.len() != len {
                buffer.resize(len, 0.0);
            }
        } else if self.borrowed_by[index] != NO_NODE {
            // The slot also serves as the (final) gradient of a later node that handed its
            // buffer over; give that node its own copy before the slot changes.
            let borrower = self.borrowed_by[index];
            self.borrowed_by[index] = NO_NODE;
            let own_slot = &mut self.grads_after[borrower - self.current - 1];
            own_slot.clear();
            own_slot.extend_from_slice(buffer);
            self.home[borrower] = borrower;
        }
        Some(fresh)
    }

    /// The gradient buffer of `var` and whether this is its first contribution of the pass.
    #[inline]
    fn prepare(&mut self, var: Var) -> Option<(&mut [f64], bool)> {
        let fresh = self.ready(var.0)?;
        Some((self.grads_before[var.0].as_mut_slice(), fresh))
    }

    /// Whether `var` can take over the upstream gradient buffer as its own gradient (its
    /// gradient is exactly the upstream one: `var` has the output's length, needs a gradient and
    /// has received nothing yet in this pass). If so, the arm must not contribute to `var`
    /// otherwise; the tape moves the buffer after the arm returns, which saves a copy.
    #[inline]
    pub(crate) fn take_upstream(&mut self, var: Var, upstream_len: usize) -> bool {
        let index = var.0;
        let possible = self.hand_over.is_none()
            && self.needs_grad[index]
            && !self.reached[index]
            && self.values[index].len() == upstream_len;
        if possible {
            self.hand_over = Some(var);
        }
        possible
    }

    /// Whether gradient flows into `var` in this pass.
    #[inline]
    pub(crate) fn needs(&self, var: Var) -> bool {
        self.needs_grad[var.0]
    }

    /// The gradient targets of two different nodes at once, for kernels that fill both in one
    /// pass. Both must need a gradient ([`GradientSink::needs`]): a target readied here and then
    /// not written would count as reached, and a later contribution would add to stale values.
    pub(crate) fn target_pair(
        &mut self,
        first: Var,
        second: Var,
    ) -> (Option<GradTarget<'_>>, Option<GradTarget<'_>>) {
        debug_assert_ne!(first, second);
        let first_fresh = self.ready(first.0);
        let second_fresh = self.ready(second.0);
        let (low, high) = (first.0.min(second.0), first.0.max(second.0));
        let (grads_low, grads_high) = self.grads_before.split_at_mut(high);
        let (low_buffer, high_buffer) = (&mut grads_low[low], &mut grads_high[0]);
        let (first_buffer, second_buffer) = if first.0 < second.0 {
            (low_buffer, high_buffer)
        } else {
            (high_buffer, low_buffer)
        };
        (
            first_fresh.map(|fresh| GradTarget {
                buffer: first_buffer.as_mut_slice(),
                fresh,
            }),
            second_fresh.map(|fresh| GradTarget {
                buffer: second_buffer.as_mut_slice(),
                fresh,
            }),
        )
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
        Ok(self.append(Op::Input, value, true))
    }

    /// Records a constant leaf of the given shape, copying `data` into a recycled buffer.
    pub fn constant_from(&mut self, shape: &[usize], data: &[f64]) -> Result<Var, TensorError> {
        let value = self.tensor_from("constant_from", shape, data)?;
        Ok(self.append(Op::Constant, value, false))
    }

    /// Records a rank-0 constant; convenient for literals in arithmetic (`1 - x`).
    pub fn scalar(&mut self, value: f64) -> Var {
        let mut buffer = self.spare_values.pop().unwrap_or_default();
        buffer.clear();
        buffer.push(value);
        self.append(
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
        if !self.reached[index] {
            return &self.zeros[..self.values[index].len()];
        }
        let mut slot = index;
        while self.home[slot] != slot {
            slot = self.home[slot];
        }
        &self.grads[slot]
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
        for (slot, home) in self.home.iter_mut().enumerate() {
            *home = slot;
        }
        self.borrowed_by.fill(NO_NODE);
        if !self.needs_grad[output_index] {
            return Ok(());
        }
        // d output / d output = 1.
        let seed = &mut self.grads[output_index];
        seed.clear();
        seed.push(1.0);
        self.reached[output_index] = true;
        for index in (0..=output_index).rev() {
            if !self.reached[index] {
                continue;
            }
            let op = &self.ops[index];
            if matches!(op, Op::Input | Op::Constant) {
                continue;
            }
            let (grads_before, rest) = self.grads.split_at_mut(index);
            let (upstream, grads_after) = rest.split_at_mut(1);
            let mut sink = GradientSink {
                current: index,
                grads_before,
                grads_after,
                reached: &mut self.reached,
                home: &mut self.home,
                borrowed_by: &mut self.borrowed_by,
                needs_grad: &self.needs_grad,
                values: &self.values,
                hand_over: None,
            };
            ops::backward(
                op,
                &self.values[index],
                &upstream[0],
                &mut sink,
                &mut self.scratch,
            );
            if let Some(operand) = sink.hand_over {
                // The operand's gradient is this node's gradient unchanged: move the buffer
                // instead of copying it, and remember where this node's gradient now lives.
                std::mem::swap(&mut grads_before[operand.0], &mut upstream[0]);
                self.reached[operand.0] = true;
                self.home[index] = operand.0;
                self.borrowed_by[operand.0] = index;
            }
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
        self.home.truncate(mark);
        // A kept slot may hold the gradient of a removed node; forget that.
        self.borrowed_by.truncate(mark);
        for borrower in self.borrowed_by.iter_mut() {
            if *borrower >= mark {
                *borrower = NO_NODE;
            }
        }
        // Push value buffers newest first so that the next recording pops them oldest first,
        // matching each new node with the buffer of the node recorded at the same position.
        while self.values.len() > mark {
            if let Some(value) = self.values.pop() {
                let (_, buffer) = value.into_parts();
                self.spare_values.push(buffer);
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
        // A leaf brings its own buffer; the recycled buffer that a node at this position would
        // take is released, so that spare buffers do not pile up over re-recordings and later
        // nodes keep meeting the buffers of the nodes recorded at their positions.
        drop(self.spare_values.pop());
        self.append(op, value, needs_grad)
    }

    fn append(&mut self, op: Op, value: Tensor, needs_grad: bool) -> Var {
        if value.len() > self.zeros.len() {
            self.zeros.resize(value.len(), 0.0);
        }
        let var = Var(self.ops.len());
        self.ops.push(op);
        self.values.push(value);
        if self.grads.len() <= var.0 {
            self.grads.push(Vec::new());
        }
        self.needs_grad.push(needs_grad);
        self.reached.push(false);
        self.home.push(var.0);
        self.borrowed_by.push(NO_NODE);
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
