//! The description of a multilayer perceptron as plain data: its layers, where each layer's
//! weights sit in one flat draw, and the checks every batch passes before any arithmetic.
//!
//! A `Linear { input, output, bias }` layer computes `y = x @ W + b` with `W: [input, output]`.
//! One draw is the flat vector of every `Linear` layer's `W` (row-major) followed by its `b` (when
//! it has one), in layer order: the same order as the layers' sample sites when a network is
//! lifted.

use crate::error::GpuError;

/// An activation, applied elementwise, or along each row for the two softmaxes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + exp(−x)).
    Sigmoid,
    /// log(1 + exp(x)).
    Softplus,
    /// exp(x_i) / Σ_j exp(x_j) along each row.
    Softmax,
    /// x_i − log Σ_j exp(x_j) along each row.
    LogSoftmax,
}

impl Activation {
    /// Whether the activation mixes the entries of a row (the softmaxes) rather than acting on
    /// each entry alone.
    pub fn is_rowwise(self) -> bool {
        matches!(self, Activation::Softmax | Activation::LogSoftmax)
    }
}

/// One layer of a multilayer perceptron.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// `y = x @ W + b` with `W: [input, output]` and, when `bias` is true, `b: [output]`.
    Linear {
        /// Input width.
        input: usize,
        /// Output width.
        output: usize,
        /// Whether the layer adds a bias.
        bias: bool,
    },
    /// An activation.
    Activation(Activation),
}

/// Where one `Linear` layer's parameters sit inside a draw.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LinearSlot {
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// Offset of `W` (row-major, `input × output` values) in the draw.
    pub weight_offset: usize,
    /// Offset of `b` (`output` values) in the draw, when the layer has a bias.
    pub bias_offset: Option<usize>,
}

/// A step of the forward pass, with the parameters' places resolved.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A `Linear` layer.
    Linear(LinearSlot),
    /// An activation.
    Activation(Activation),
}

/// A validated multilayer perceptron: the widths of consecutive `Linear` layers agree, and the
/// places of all weights in a draw are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    layers: Vec<Layer>,
    steps: Vec<Step>,
    input_width: usize,
    output_width: usize,
    max_width: usize,
    n_weights: usize,
}

fn too_large(what: &str) -> GpuError {
    GpuError::TooLarge {
        what: what.to_string(),
    }
}

impl Mlp {
    /// Checks the layers and lays out a draw. The network needs at least one `Linear` layer
    /// (its input width is the network's), no width may be zero, and each `Linear` layer's input
    /// width must be the previous `Linear` layer's output width.
    pub fn new(layers: Vec<Layer>) -> Result<Mlp, GpuError> {
        let mut steps = Vec::with_capacity(layers.len());
        let mut width: Option<usize> = None;
        let mut input_width = 0;
        let mut max_width = 0;
        let mut n_weights: usize = 0;
        for (position, layer) in layers.iter().enumerate() {
            match *layer {
                Layer::Linear {
                    input,
                    output,
                    bias,
                } => {
                    if input == 0 || output == 0 {
                        return Err(GpuError::ZeroWidth { layer: position });
                    }
                    match width {
                        Some(expected) if expected != input => {
                            return Err(GpuError::WidthMismatch {
                                layer: position,
                                expected,
                                found: input,
                            });
                        }
                        Some(_) => {}
                        None => input_width = input,
                    }
                    let weight_offset = n_weights;
                    let weight_count = input
                        .checked_mul(output)
                        .ok_or_else(|| too_large("a layer's weight count overflows"))?;
                    n_weights = n_weights
                        .checked_add(weight_count)
                        .ok_or_else(|| too_large("the network's weight count overflows"))?;
                    let bias_offset = if bias {
                        let offset = n_weights;
                        n_weights = n_weights
                            .checked_add(output)
                            .ok_or_else(|| too_large("the network's weight count overflows"))?;
                        Some(offset)
                    } else {
                        None
                    };
                    max_width = max_width.max(input).max(output);
                    width = Some(output);
                    steps.push(Step::Linear(LinearSlot {
                        input,
                        output,
                        weight_offset,
                        bias_offset,
                    }));
                }
                Layer::Activation(activation) => steps.push(Step::Activation(activation)),
            }
        }
        let output_width = width.ok_or(GpuError::NoLinearLayer)?;
        Ok(Mlp {
            layers,
            steps,
            input_width,
            output_width,
            max_width,
            n_weights,
        })
    }

    /// The layers as given.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The steps of the forward pass, with each `Linear` layer's place in a draw.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The width of one input row.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// The width of one output row.
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// The widest row any step reads or writes.
    pub fn max_width(&self) -> usize {
        self.max_width
    }

    /// The number of values in one draw: every weight and bias.
    pub fn n_weights(&self) -> usize {
        self.n_weights
    }

    /// Checks a batch against the network and returns `(n_draws, n_inputs)`: both vectors must
    /// hold whole draws and whole rows, every value must be finite, and the output
    /// `[n_draws, n_inputs, output_width]` and one draw's activations `[n_inputs, max_width]` must
    /// fit in memory.
    pub fn check_batch(&self, draws: &[f64], inputs: &[f64]) -> Result<(usize, usize), GpuError> {
        let counts = self.check_shapes(draws, inputs)?;
        if let Some(index) = draws.iter().position(|value| !value.is_finite()) {
            return Err(GpuError::NonFinite {
                what: "draws",
                index,
            });
        }
        if let Some(index) = inputs.iter().position(|value| !value.is_finite()) {
            return Err(GpuError::NonFinite {
                what: "inputs",
                index,
            });
        }
        Ok(counts)
    }

    /// `check_batch` without the scan for non-finite values, for a caller that finds them
    /// while it converts the values anyway.
    pub(crate) fn check_shapes(
        &self,
        draws: &[f64],
        inputs: &[f64],
    ) -> Result<(usize, usize), GpuError> {
        if !draws.len().is_multiple_of(self.n_weights) {
            return Err(GpuError::DrawsLength {
                length: draws.len(),
                n_weights: self.n_weights,
            });
        }
        if !inputs.len().is_multiple_of(self.input_width) {
            return Err(GpuError::InputsLength {
                length: inputs.len(),
                input_width: self.input_width,
            });
        }
        let n_draws = draws.len() / self.n_weights;
        let n_inputs = inputs.len() / self.input_width;
        let fits = |count: Option<usize>| {
            count
                .and_then(|count| count.checked_mul(std::mem::size_of::<f64>()))
                .is_some_and(|bytes| bytes <= isize::MAX as usize)
        };
        if !fits(
            n_draws
                .checked_mul(n_inputs)
                .and_then(|count| count.checked_mul(self.output_width)),
        ) {
            return Err(too_large(
                "the output, draws × inputs × output width, overflows memory",
            ));
        }
        if !fits(n_inputs.checked_mul(self.max_width)) {
            return Err(too_large(
                "one draw's activations, inputs × width, overflow memory",
            ));
        }
        Ok((n_draws, n_inputs))
    }
}
