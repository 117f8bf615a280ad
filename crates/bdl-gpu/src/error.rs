//! The errors of this crate: wrong shapes and lengths, values that cannot be computed with, and
//! failures reported by the GPU driver. Every one is data for the caller to report; nothing here
//! panics on bad input.

use std::fmt;

/// Why a network could not be built or a batch could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuError {
    /// The network has no `Linear` layer, so it has no weights to draw and no input width.
    NoLinearLayer,
    /// A `Linear` layer has an input or output width of zero.
    ZeroWidth {
        /// The layer's position in the list.
        layer: usize,
    },
    /// A `Linear` layer's input width differs from the width the layers before it produce.
    WidthMismatch {
        /// The layer's position in the list.
        layer: usize,
        /// The width the earlier layers produce.
        expected: usize,
        /// The layer's declared input width.
        found: usize,
    },
    /// The flat vector of draws is not a whole number of draws.
    DrawsLength {
        /// The length given.
        length: usize,
        /// The number of weights (and biases) in one draw.
        n_weights: usize,
    },
    /// The flat vector of inputs is not a whole number of rows.
    InputsLength {
        /// The length given.
        length: usize,
        /// The network's input width.
        input_width: usize,
    },
    /// A draw or an input is NaN or infinite.
    NonFinite {
        /// `"draws"` or `"inputs"`.
        what: &'static str,
        /// The position of the first such value in the flat vector.
        index: usize,
    },
    /// A draw or an input is finite in f64 but too large for the GPU's f32.
    OutOfF32Range {
        /// `"draws"` or `"inputs"`.
        what: &'static str,
        /// The position of the first such value in the flat vector.
        index: usize,
    },
    /// The sizes involved overflow the address space or exceed what the device can hold.
    TooLarge {
        /// What was too large, in words.
        what: String,
    },
    /// The GPU driver reported an error (out of memory, a lost device, a failed mapping).
    Device {
        /// The driver's message.
        message: String,
    },
}

impl fmt::Display for GpuError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoLinearLayer => {
                write!(
                    formatter,
                    "the network has no Linear layer, so it has no weights"
                )
            }
            GpuError::ZeroWidth { layer } => {
                write!(formatter, "layer {layer} is a Linear layer of width zero")
            }
            GpuError::WidthMismatch {
                layer,
                expected,
                found,
            } => write!(
                formatter,
                "layer {layer} takes inputs of width {found}, but the layers before it produce \
                 width {expected}"
            ),
            GpuError::DrawsLength { length, n_weights } => write!(
                formatter,
                "{length} draw values are not a whole number of draws of {n_weights} weights each"
            ),
            GpuError::InputsLength {
                length,
                input_width,
            } => write!(
                formatter,
                "{length} input values are not a whole number of rows of width {input_width}"
            ),
            GpuError::NonFinite { what, index } => {
                write!(formatter, "{what}[{index}] is not a finite number")
            }
            GpuError::OutOfF32Range { what, index } => write!(
                formatter,
                "{what}[{index}] is too large in magnitude for the GPU's 32-bit floats"
            ),
            GpuError::TooLarge { what } => write!(formatter, "too large: {what}"),
            GpuError::Device { message } => write!(formatter, "GPU error: {message}"),
        }
    }
}

impl std::error::Error for GpuError {}
