//! Dense `f64` tensors of any rank, stored row-major, and the typed error every tensor operation
//! reports.
//!
//! A [`Tensor`] is a shape and a flat buffer whose length is the product of the shape (one for a
//! rank-0 scalar). Shapes live inline for ranks up to four, so making a tensor allocates only its
//! data buffer.

use smallvec::SmallVec;
use std::fmt;

/// The shape of a tensor: one extent per axis, outermost first. Ranks up to four are stored
/// inline.
pub type Shape = SmallVec<[usize; 4]>;

/// A dense array of `f64` in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: Vec<f64>,
}

/// The number of elements of a tensor with this shape (one for the empty shape of a scalar).
pub fn element_count(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A rank-0 tensor holding one value.
    pub fn scalar(value: f64) -> Tensor {
        Tensor {
            shape: Shape::new(),
            data: vec![value],
        }
    }

    /// A rank-1 tensor.
    pub fn vector(data: Vec<f64>) -> Tensor {
        Tensor {
            shape: Shape::from_slice(&[data.len()]),
            data,
        }
    }

    /// A rank-2 tensor with `rows × cols` elements given row by row.
    pub fn matrix(rows: usize, cols: usize, data: Vec<f64>) -> Result<Tensor, TensorError> {
        Tensor::from_shape(&[rows, cols], data)
    }

    /// A tensor of the given shape; `data` must hold exactly the product of the shape.
    pub fn from_shape(shape: &[usize], data: Vec<f64>) -> Result<Tensor, TensorError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |count, &extent| count.checked_mul(extent));
        match expected {
            Some(expected) if expected == data.len() => Ok(Tensor {
                shape: Shape::from_slice(shape),
                data,
            }),
            _ => Err(TensorError::DataLength {
                op: "from_shape",
                shape: shape.to_vec(),
                actual: data.len(),
            }),
        }
    }

    /// A tensor of the given shape filled with zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A tensor of the given shape filled with ones.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// A tensor of the given shape with every element equal to `value`.
    pub fn full(shape: &[usize], value: f64) -> Tensor {
        Tensor {
            shape: Shape::from_slice(shape),
            data: vec![value; element_count(shape)],
        }
    }

    /// Builds a tensor from parts known to agree; used by the tape, which checks shapes itself.
    pub(crate) fn from_parts(shape: Shape, data: Vec<f64>) -> Tensor {
        debug_assert_eq!(element_count(&shape), data.len());
        Tensor { shape, data }
    }

    /// The extent of each axis, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// The elements in row-major order, for writing in place (the shape cannot change).
    pub fn data_mut(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// Consumes the tensor and returns its elements in row-major order.
    pub fn into_data(self) -> Vec<f64> {
        self.data
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements (some axis has extent zero).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The number of axes (0 for a scalar).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The value of a one-element tensor of any rank.
    pub fn item(&self) -> Result<f64, TensorError> {
        match self.data.as_slice() {
            [value] => Ok(*value),
            _ => Err(TensorError::NotOneElement {
                op: "item",
                shape: self.shape.to_vec(),
            }),
        }
    }

    /// The same elements under another shape with the same number of elements.
    pub fn reshape(self, shape: &[usize]) -> Result<Tensor, TensorError> {
        if element_count(shape) != self.data.len() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                left: self.shape.to_vec(),
                right: shape.to_vec(),
            });
        }
        Ok(Tensor {
            shape: Shape::from_slice(shape),
            data: self.data,
        })
    }

    /// The shape together with the writable buffer, for kernels that fill a tensor in place.
    pub(crate) fn shape_and_data_mut(&mut self) -> (&[usize], &mut [f64]) {
        (&self.shape, &mut self.data)
    }

    /// Splits the tensor into its shape and buffer so that the tape can recycle the buffer.
    pub(crate) fn into_parts(self) -> (Shape, Vec<f64>) {
        (self.shape, self.data)
    }
}

/// Why a tensor operation could not be recorded or evaluated. Every variant names the operation;
/// shapes are given as outermost-first extents.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorError {
    /// Two operand shapes cannot be combined by the operation.
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The shape of the first operand.
        left: Vec<usize>,
        /// The shape of the second operand (or the requested shape).
        right: Vec<usize>,
    },
    /// An operand has a shape the operation does not accept.
    InvalidShape {
        /// The operation.
        op: &'static str,
        /// The offending shape.
        shape: Vec<usize>,
        /// What the operation needs, as a lowercase phrase ("a square matrix").
        expected: &'static str,
    },
    /// A buffer does not hold as many elements as its shape (or the target) requires.
    DataLength {
        /// The operation.
        op: &'static str,
        /// The shape the data was meant to fill.
        shape: Vec<usize>,
        /// The number of values given.
        actual: usize,
    },
    /// An axis outside `-rank..rank`.
    AxisOutOfRange {
        /// The operation.
        op: &'static str,
        /// The axis as given (negative counts from the end).
        axis: isize,
        /// The rank of the operand.
        rank: usize,
    },
    /// A position outside `0..extent` on an axis.
    IndexOutOfRange {
        /// The operation.
        op: &'static str,
        /// The position as given (an index tensor's element is reported as stored).
        index: f64,
        /// The extent of the axis.
        extent: usize,
    },
    /// An index tensor holds a value that is not a whole number.
    NotAnInteger {
        /// The operation.
        op: &'static str,
        /// The offending value.
        value: f64,
    },
    /// A range `start..end` that is empty-reversed or leaves the axis.
    InvalidRange {
        /// The operation.
        op: &'static str,
        /// The first position.
        start: usize,
        /// One past the last position.
        end: usize,
        /// The extent of the axis.
        extent: usize,
    },
    /// The operation needs a tensor with exactly one element.
    NotOneElement {
        /// The operation.
        op: &'static str,
        /// The shape that was given.
        shape: Vec<usize>,
    },
    /// Values can be set only on inputs and constants, not on computed nodes.
    NotALeaf {
        /// The node's position on the tape.
        node: usize,
    },
    /// The operation needs at least one operand.
    NoOperands {
        /// The operation.
        op: &'static str,
    },
    /// A scalar argument is out of its domain (for example `clamp` with `low > high`).
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong, as a lowercase phrase.
        message: String,
    },
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorError::ShapeMismatch { op, left, right } => {
                write!(f, "{op}: shapes {left:?} and {right:?} are incompatible")
            }
            TensorError::InvalidShape {
                op,
                shape,
                expected,
            } => write!(f, "{op}: expected {expected}, got shape {shape:?}"),
            TensorError::DataLength { op, shape, actual } => write!(
                f,
                "{op}: shape {shape:?} needs {} values, got {actual}",
                element_count(shape)
            ),
            TensorError::AxisOutOfRange { op, axis, rank } => {
                write!(f, "{op}: axis {axis} is out of range for rank {rank}")
            }
            TensorError::IndexOutOfRange { op, index, extent } => {
                write!(f, "{op}: index {index} is out of range for extent {extent}")
            }
            TensorError::NotAnInteger { op, value } => {
                write!(f, "{op}: index {value} is not a whole number")
            }
            TensorError::InvalidRange {
                op,
                start,
                end,
                extent,
            } => write!(
                f,
                "{op}: range {start}..{end} is not within an axis of extent {extent}"
            ),
            TensorError::NotOneElement { op, shape } => {
                write!(f, "{op}: expected one element, got shape {shape:?}")
            }
            TensorError::NotALeaf { node } => write!(
                f,
                "set_value: node {node} is computed, only inputs and constants can be set"
            ),
            TensorError::NoOperands { op } => write!(f, "{op}: needs at least one operand"),
            TensorError::InvalidArgument { op, message } => write!(f, "{op}: {message}"),
        }
    }
}

impl std::error::Error for TensorError {}

/// Turns a possibly negative axis into a position in `0..rank`, as Python does.
pub(crate) fn normalize_axis(
    op: &'static str,
    axis: isize,
    rank: usize,
) -> Result<usize, TensorError> {
    let signed_rank = rank as isize;
    let position = if axis < 0 { axis + signed_rank } else { axis };
    if (0..signed_rank).contains(&position) {
        Ok(position as usize)
    } else {
        Err(TensorError::AxisOutOfRange { op, axis, rank })
    }
}

/// Views a shape as `[outer, extent, inner]` around one axis: element `(o, j, i)` lives at
/// `(o * extent + j) * inner + i`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = element_count(&shape[..axis]);
    let inner = element_count(&shape[axis + 1..]);
    (outer, shape[axis], inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_check_lengths() {
        assert_eq!(Tensor::scalar(2.0).rank(), 0);
        assert_eq!(Tensor::vector(vec![1.0, 2.0]).shape(), &[2]);
        assert!(Tensor::matrix(2, 2, vec![1.0; 3]).is_err());
        let zeros = Tensor::zeros(&[2, 3]);
        assert_eq!(zeros.len(), 6);
        assert_eq!(Tensor::full(&[], 4.0).item(), Ok(4.0));
        assert!(Tensor::vector(vec![1.0, 2.0]).item().is_err());
        let message = Tensor::from_shape(&[2, 2], vec![0.0])
            .err()
            .map(|error| error.to_string());
        assert_eq!(
            message.as_deref(),
            Some("from_shape: shape [2, 2] needs 4 values, got 1")
        );
    }

    #[test]
    fn axes_normalize_like_python() {
        assert_eq!(normalize_axis("sum", -1, 3), Ok(2));
        assert_eq!(normalize_axis("sum", 0, 3), Ok(0));
        assert!(normalize_axis("sum", 3, 3).is_err());
        assert!(normalize_axis("sum", -4, 3).is_err());
        assert_eq!(split_at_axis(&[2, 3, 4], 1), (2, 3, 4));
    }
}
