//! Network layers on the tape: one primitive, [`Tape::rearrange`] (every output element a copy of
//! one input element or a zero), and the layers composed from it and from the other ops.
//!
//! Convolution is im2col followed by one matrix product: the input's patches are rearranged into
//! rows (`[N·P, C·K]` for `P` output positions and a `C`-channel, `K`-element kernel), multiplied
//! by the weight as a `[C·K, O]` matrix, and rearranged back to channels-first `[N, O, …]`.
//! Pooling rearranges each channel's windows into a trailing axis and reduces it with `max` or
//! `mean`. Zero padding is the rearrangement's zero entry. Because every layer is made of ops
//! with their own derivatives, the only new derivative is the rearrangement's scatter-add.
//!
//! The index maps depend on shapes only; they are cached per thread, so a model evaluated many
//! times builds each map once.

use crate::tape::{Tape, Var};
use crate::tensor::{Shape, TensorError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// The map entry of an output element that is zero (padding) rather than a copy.
pub const ZERO_ENTRY: usize = usize::MAX;

/// How many index maps a thread keeps before it forgets them all.
const MAP_CACHE_LIMIT: usize = 64;

thread_local! {
    static MAP_CACHE: RefCell<HashMap<Vec<usize>, Arc<[usize]>>> = RefCell::new(HashMap::new());
}

/// The map for `key`, built by `build` the first time this thread asks for it.
fn cached_map(key: Vec<usize>, build: impl FnOnce() -> Vec<usize>) -> Arc<[usize]> {
    MAP_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(map) = cache.get(&key) {
            return Arc::clone(map);
        }
        if cache.len() >= MAP_CACHE_LIMIT {
            cache.clear();
        }
        let map: Arc<[usize]> = build().into();
        cache.insert(key, Arc::clone(&map));
        map
    })
}

/// out[i] = input[map[i]], or 0 where map[i] is [`ZERO_ENTRY`].
pub(crate) fn rearrange_forward(input: &[f64], map: &[usize], out: &mut [f64]) {
    for (value, &source) in out.iter_mut().zip(map) {
        *value = if source == ZERO_ENTRY {
            0.0
        } else {
            input[source]
        };
    }
}

/// The adjoint of [`rearrange_forward`]: each output gradient is added to its source.
pub(crate) fn rearrange_backward(map: &[usize], upstream: &[f64], grad: &mut [f64]) {
    for (&gradient, &source) in upstream.iter().zip(map) {
        if source != ZERO_ENTRY {
            grad[source] += gradient;
        }
    }
}

/// The geometry of a sliding window over the spatial axes of a channels-first tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The kernel's extent along each spatial axis.
    pub kernel: Vec<usize>,
    /// The step between windows (the same along every spatial axis).
    pub stride: usize,
    /// Zeros added at both ends of every spatial axis.
    pub padding: usize,
}

impl Window {
    /// The output extent along each spatial axis for an input of the given spatial extents, or
    /// `None` where the padded input is smaller than the kernel or the stride is zero.
    pub fn output_extents(&self, spatial: &[usize]) -> Option<Vec<usize>> {
        if self.stride == 0 || spatial.len() != self.kernel.len() {
            return None;
        }
        spatial
            .iter()
            .zip(&self.kernel)
            .map(|(&size, &kernel)| {
                let padded = size + 2 * self.padding;
                (kernel >= 1 && padded >= kernel).then(|| (padded - kernel) / self.stride + 1)
            })
            .collect()
    }

    /// The input position (along each spatial axis, in the unpadded input) read at output
    /// position `out` by kernel offset `offset`, or `None` where it falls in the padding.
    fn source(&self, out: &[usize], offset: &[usize], spatial: &[usize]) -> Option<usize> {
        let mut flat = 0;
        for ((&o, &k), &size) in out.iter().zip(offset).zip(spatial) {
            let position = (o * self.stride + k).checked_sub(self.padding)?;
            if position >= size {
                return None;
            }
            flat = flat * size + position;
        }
        Some(flat)
    }

    fn key(&self, kind: usize, shape: &[usize]) -> Vec<usize> {
        let mut key = vec![kind, self.stride, self.padding, self.kernel.len()];
        key.extend_from_slice(&self.kernel);
        key.extend_from_slice(shape);
        key
    }
}

/// Row-major multi-indices of a box with the given extents.
fn positions(extents: &[usize]) -> Vec<Vec<usize>> {
    let count: usize = extents.iter().product();
    (0..count)
        .map(|mut flat| {
            let mut index = vec![0; extents.len()];
            for (slot, &extent) in index.iter_mut().zip(extents).rev() {
                *slot = flat % extent;
                flat /= extent;
            }
            index
        })
        .collect()
}

fn invalid(op: &'static str, shape: &[usize], expected: &'static str) -> TensorError {
    TensorError::InvalidShape {
        op,
        shape: shape.to_vec(),
        expected,
    }
}

impl Tape {
    /// A tensor of shape `shape` whose element `i` is the input's element `map[i]` (row-major)
    /// or zero where `map[i]` is [`ZERO_ENTRY`]. Its gradient scatters back (adding where an
    /// input element is copied more than once).
    pub fn rearrange(
        &mut self,
        input: Var,
        map: Arc<[usize]>,
        shape: &[usize],
    ) -> Result<Var, TensorError> {
        let len = self.value(input).len();
        let count: usize = shape.iter().product();
        if map.len() != count {
            return Err(TensorError::DataLength {
                op: "rearrange",
                shape: shape.to_vec(),
                actual: map.len(),
            });
        }
        if map
            .iter()
            .any(|&source| source != ZERO_ENTRY && source >= len)
        {
            return Err(invalid(
                "rearrange",
                self.shape(input),
                "a tensor holding every position the map reads",
            ));
        }
        Ok(self.push(
            crate::ops::Op::Rearrange { input, map },
            Shape::from_slice(shape),
        ))
    }

    /// Convolution (PyTorch's `conv1d`/`conv2d`, a cross-correlation) of a channels-first input
    /// `[N, C, S…]` with a weight `[O, C, K…]` and an optional bias `[O]`, giving `[N, O, S'…]`.
    pub fn conv(
        &mut self,
        input: Var,
        weight: Var,
        bias: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var, TensorError> {
        let shape = self.shape(input).to_vec();
        let weight_shape = self.shape(weight).to_vec();
        if shape.len() < 3 || weight_shape.len() != shape.len() || weight_shape[1] != shape[1] {
            return Err(TensorError::ShapeMismatch {
                op: "conv",
                left: shape,
                right: weight_shape,
            });
        }
        let (batch, channels, spatial) = (shape[0], shape[1], shape[2..].to_vec());
        let window = Window {
            kernel: weight_shape[2..].to_vec(),
            stride,
            padding,
        };
        let out_spatial = window.output_extents(&spatial).ok_or_else(|| {
            invalid(
                "conv",
                &shape,
                "spatial extents at least the kernel's (after padding)",
            )
        })?;
        let outputs = weight_shape[0];
        let kernel: usize = window.kernel.iter().product();
        let places: usize = out_spatial.iter().product();
        let volume: usize = spatial.iter().product();
        let map = cached_map(window.key(0, &shape), || {
            let out_positions = positions(&out_spatial);
            let offsets = positions(&window.kernel);
            let mut map = Vec::with_capacity(batch * places * channels * kernel);
            for n in 0..batch {
                for out in &out_positions {
                    for c in 0..channels {
                        for offset in &offsets {
                            map.push(match window.source(out, offset, &spatial) {
                                Some(flat) => (n * channels + c) * volume + flat,
                                None => ZERO_ENTRY,
                            });
                        }
                    }
                }
            }
            map
        });
        let patches = self.rearrange(input, map, &[batch * places, channels * kernel])?;
        let matrix = self.reshape(weight, &[outputs, channels * kernel])?;
        let matrix = self.transpose(matrix);
        let product = self.matmul(patches, matrix)?;
        let mut key = vec![1, batch, places, outputs];
        key.extend_from_slice(&out_spatial);
        let permutation = cached_map(key, || {
            let mut map = Vec::with_capacity(batch * places * outputs);
            for n in 0..batch {
                for o in 0..outputs {
                    for place in 0..places {
                        map.push((n * places + place) * outputs + o);
                    }
                }
            }
            map
        });
        let mut out_shape = vec![batch, outputs];
        out_shape.extend_from_slice(&out_spatial);
        let output = self.rearrange(product, permutation, &out_shape)?;
        match bias {
            None => Ok(output),
            Some(bias) => {
                let mut bias_shape = vec![outputs];
                bias_shape.extend(std::iter::repeat_n(1, out_spatial.len()));
                let bias = self.reshape(bias, &bias_shape)?;
                self.add(output, bias)
            }
        }
    }

    /// Each channel's windows of a channels-first input `[N, C, S…]` gathered into a trailing
    /// axis: `[N, C, S'…, K]`.
    fn windows(&mut self, input: Var, window: &Window) -> Result<Var, TensorError> {
        let shape = self.shape(input).to_vec();
        if shape.len() < 3 || shape.len() != window.kernel.len() + 2 {
            return Err(invalid(
                "pool",
                &shape,
                "a channels-first tensor [N, C, spatial…] with one extent per kernel axis",
            ));
        }
        let spatial = shape[2..].to_vec();
        let out_spatial = window.output_extents(&spatial).ok_or_else(|| {
            invalid(
                "pool",
                &shape,
                "spatial extents at least the kernel's (after padding)",
            )
        })?;
        let planes = shape[0] * shape[1];
        let volume: usize = spatial.iter().product();
        let kernel: usize = window.kernel.iter().product();
        let map = cached_map(window.key(2, &shape), || {
            let out_positions = positions(&out_spatial);
            let offsets = positions(&window.kernel);
            let mut map = Vec::with_capacity(planes * out_positions.len() * kernel);
            for plane in 0..planes {
                for out in &out_positions {
                    for offset in &offsets {
                        map.push(match window.source(out, offset, &spatial) {
                            Some(flat) => plane * volume + flat,
                            None => ZERO_ENTRY,
                        });
                    }
                }
            }
            map
        });
        let mut out_shape = shape[..2].to_vec();
        out_shape.extend_from_slice(&out_spatial);
        out_shape.push(kernel);
        self.rearrange(input, map, &out_shape)
    }

    /// Max pooling over windows of a channels-first input (no padding: PyTorch pads with −∞,
    /// which only matters for windows hanging over the edge).
    pub fn max_pool(
        &mut self,
        input: Var,
        kernel: &[usize],
        stride: usize,
    ) -> Result<Var, TensorError> {
        let window = Window {
            kernel: kernel.to_vec(),
            stride,
            padding: 0,
        };
        let windows = self.windows(input, &window)?;
        self.max_axis(windows, -1, false)
    }

    /// Average pooling over windows of a channels-first input (no padding).
    pub fn avg_pool(
        &mut self,
        input: Var,
        kernel: &[usize],
        stride: usize,
    ) -> Result<Var, TensorError> {
        let window = Window {
            kernel: kernel.to_vec(),
            stride,
            padding: 0,
        };
        let windows = self.windows(input, &window)?;
        self.mean_axis(windows, -1, false)
    }

    /// Leaky ReLU: x for x ≥ 0 and `slope`·x below.
    pub fn leaky_relu(&mut self, input: Var, slope: f64) -> Var {
        let positive = self.relu(input);
        let negated = self.neg(input);
        let negative = self.relu(negated);
        let scaled = self.mul_scalar(negative, slope);
        self.sub(positive, scaled)
            .expect("operands of one shape combine")
    }

    /// ELU: x for x ≥ 0 and `alpha`·(eˣ − 1) below.
    pub fn elu(&mut self, input: Var, alpha: f64) -> Var {
        let positive = self.relu(input);
        let negated = self.neg(input);
        let negative_part = self.relu(negated);
        let below = self.neg(negative_part);
        let curve = self.expm1(below);
        let scaled = self.mul_scalar(curve, alpha);
        self.add(positive, scaled)
            .expect("operands of one shape combine")
    }

    /// GELU with the exact Gaussian CDF: x·Φ(x) = x·(1 + erf(x/√2))/2.
    pub fn gelu(&mut self, input: Var) -> Var {
        let scaled = self.mul_scalar(input, std::f64::consts::FRAC_1_SQRT_2);
        let erf = self.erf(scaled);
        let shifted = self.add_scalar(erf, 1.0);
        let cdf = self.mul_scalar(shifted, 0.5);
        self.mul(input, cdf).expect("operands of one shape combine")
    }

    /// SiLU (swish): x·σ(x).
    pub fn silu(&mut self, input: Var) -> Var {
        let gate = self.sigmoid(input);
        self.mul(input, gate)
            .expect("operands of one shape combine")
    }

    /// (x − mean) / √(var + eps) along `axes` (each kept with extent one, so the statistics
    /// broadcast back), with the biased variance as PyTorch's normalisation layers use.
    pub fn normalize(&mut self, input: Var, axes: &[usize], eps: f64) -> Result<Var, TensorError> {
        let mut mean = input;
        for &axis in axes {
            mean = self.mean_axis(mean, axis as isize, true)?;
        }
        let centred = self.sub(input, mean)?;
        let mut variance = self.square(centred);
        for &axis in axes {
            variance = self.mean_axis(variance, axis as isize, true)?;
        }
        let shifted = self.add_scalar(variance, eps);
        let deviation = self.sqrt(shifted);
        self.div(centred, deviation)
    }
}
