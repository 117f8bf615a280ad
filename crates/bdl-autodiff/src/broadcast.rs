//! NumPy broadcasting: the result shape of combining operands, and a strided walk over the result
//! that yields, for each output element, the position of the matching element of every operand.
//!
//! Shapes are aligned on their last axis; an axis of extent one (or a missing leading axis) is
//! repeated to match the other operands. The walk merges adjacent axes that every operand reads
//! contiguously (or all repeat), so a broadcast of `[n, k]` against `[k]` costs two nested loops
//! whatever the rank.

use crate::tensor::{Shape, TensorError};
use smallvec::SmallVec;

/// The broadcast shape of two operands, or a shape mismatch naming `op`.
pub(crate) fn broadcast_shape(
    op: &'static str,
    left: &[usize],
    right: &[usize],
) -> Result<Shape, TensorError> {
    let rank = left.len().max(right.len());
    let mut shape = Shape::with_capacity(rank);
    for axis in 0..rank {
        let left_extent = extent_from_end(left, rank - axis);
        let right_extent = extent_from_end(right, rank - axis);
        let extent = if left_extent == right_extent || right_extent == 1 {
            left_extent
        } else if left_extent == 1 {
            right_extent
        } else {
            return Err(TensorError::ShapeMismatch {
                op,
                left: left.to_vec(),
                right: right.to_vec(),
            });
        };
        shape.push(extent);
    }
    Ok(shape)
}

/// The extent of the axis `position_from_end` places from the end (1-based), or 1 if the shape is
/// shorter.
fn extent_from_end(shape: &[usize], position_from_end: usize) -> usize {
    if position_from_end <= shape.len() {
        shape[shape.len() - position_from_end]
    } else {
        1
    }
}

/// If `operand`, once its leading ones are dropped, equals the trailing axes of `target`, the
/// operand repeats with period `operand.len()` over the target's buffer; returns that period.
/// This is the bias-add pattern `[n, k] + [k]`.
pub(crate) fn repeat_period(operand: &[usize], target: &[usize]) -> Option<usize> {
    let first_real_axis = operand
        .iter()
        .position(|&extent| extent != 1)
        .unwrap_or(operand.len());
    let core = &operand[first_real_axis..];
    if core.len() <= target.len() && target.ends_with(core) {
        Some(core.iter().product())
    } else {
        None
    }
}

/// A walk over an output shape that tracks the flat position of the corresponding element in each
/// of `N` operands (operand strides are zero along broadcast axes).
pub(crate) struct Walk<const N: usize> {
    extents: SmallVec<[usize; 6]>,
    strides: SmallVec<[[usize; N]; 6]>,
}

impl<const N: usize> Walk<N> {
    /// Prepares the walk of `output` for operands of the given shapes, each of which must
    /// broadcast to `output`.
    pub(crate) fn new(output: &[usize], operands: [&[usize]; N]) -> Walk<N> {
        let rank = output.len();
        let mut full_strides: SmallVec<[[usize; N]; 6]> = SmallVec::from_elem([0; N], rank);
        for (operand_index, operand) in operands.iter().enumerate() {
            let offset = rank - operand.len();
            let mut stride = 1;
            for axis in (0..operand.len()).rev() {
                if operand[axis] != 1 {
                    full_strides[axis + offset][operand_index] = stride;
                }
                stride *= operand[axis];
            }
        }
        // Drop axes of extent one, then merge neighbours that every operand walks as one.
        let mut extents: SmallVec<[usize; 6]> = SmallVec::new();
        let mut strides: SmallVec<[[usize; N]; 6]> = SmallVec::new();
        for axis in 0..rank {
            let extent = output[axis];
            if extent == 1 {
                continue;
            }
            let axis_strides = full_strides[axis];
            if let (Some(last_extent), Some(last_strides)) =
                (extents.last_mut(), strides.last_mut())
            {
                let mergeable = (0..N).all(|k| last_strides[k] == axis_strides[k] * extent);
                if mergeable {
                    *last_extent *= extent;
                    *last_strides = axis_strides;
                    continue;
                }
            }
            extents.push(extent);
            strides.push(axis_strides);
        }
        Walk { extents, strides }
    }

    /// Calls `visit` with the operand positions of every output element, in row-major order.
    #[inline]
    pub(crate) fn for_each(&self, mut visit: impl FnMut([usize; N])) {
        let rank = self.extents.len();
        if self.extents.contains(&0) {
            return;
        }
        if rank == 0 {
            visit([0; N]);
            return;
        }
        let inner_extent = self.extents[rank - 1];
        let inner_strides = self.strides[rank - 1];
        let mut counters: SmallVec<[usize; 6]> = SmallVec::from_elem(0, rank - 1);
        let mut base = [0usize; N];
        loop {
            let mut positions = base;
            for _ in 0..inner_extent {
                visit(positions);
                for (position, stride) in positions.iter_mut().zip(inner_strides) {
                    *position += stride;
                }
            }
            // Advance the outer axes like an odometer.
            let mut axis = rank - 1;
            loop {
                if axis == 0 {
                    return;
                }
                axis -= 1;
                counters[axis] += 1;
                for (position, stride) in base.iter_mut().zip(self.strides[axis]) {
                    *position += stride;
                }
                if counters[axis] < self.extents[axis] {
                    break;
                }
                for (position, stride) in base.iter_mut().zip(self.strides[axis]) {
                    *position -= stride * self.extents[axis];
                }
                counters[axis] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(
            broadcast_shape("add", &[3, 1], &[4])
                .ok()
                .map(|s| s.to_vec()),
            Some(vec![3, 4])
        );
        assert_eq!(
            broadcast_shape("add", &[], &[2, 2])
                .ok()
                .map(|s| s.to_vec()),
            Some(vec![2, 2])
        );
        assert!(broadcast_shape("add", &[3], &[4]).is_err());
        assert_eq!(repeat_period(&[1, 4], &[3, 4]), Some(4));
        assert_eq!(repeat_period(&[3, 1], &[3, 4]), None);
    }

    #[test]
    fn walk_visits_broadcast_positions() {
        let walk = Walk::new(&[2, 3], [&[2, 3], &[2, 1], &[3]]);
        let mut seen = Vec::new();
        walk.for_each(|positions| seen.push(positions));
        assert_eq!(
            seen,
            vec![
                [0, 0, 0],
                [1, 0, 1],
                [2, 0, 2],
                [3, 1, 0],
                [4, 1, 1],
                [5, 1, 2]
            ]
        );
    }
}
