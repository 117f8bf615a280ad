//! The CPU forward pass in f64: draws are spread over rayon's threads, and each draw runs its
//! layers one after another with nalgebra's matrix product on two scratch buffers. This is the
//! reference the GPU path is compared with, and the fallback when there is no GPU.

use crate::error::GpuError;
use crate::network::{Activation, LinearSlot, Mlp, Step};
use nalgebra::{DMatrixView, DMatrixViewMut};
use rayon::prelude::*;

/// Runs the network for every draw on every input and returns `[n_draws, n_inputs,
/// output_width]`, row-major. `draws` holds `n_draws × mlp.n_weights()` values, `inputs`
/// holds `n_inputs × mlp.input_width()`.
pub fn forward_batch(mlp: &Mlp, draws: &[f64], inputs: &[f64]) -> Result<Vec<f64>, GpuError> {
    let (n_draws, n_inputs) = mlp.check_batch(draws, inputs)?;
    let per_draw = n_inputs * mlp.output_width();
    let mut output = vec![0.0; n_draws * per_draw];
    if output.is_empty() {
        return Ok(output);
    }
    let scratch_len = n_inputs * mlp.max_width();
    output
        .par_chunks_mut(per_draw)
        .zip(draws.par_chunks(mlp.n_weights()))
        .for_each_init(
            || (vec![0.0; scratch_len], vec![0.0; scratch_len]),
            |(front, back), (draw_output, draw)| {
                forward_one(mlp, draw, inputs, n_inputs, front, back, draw_output);
            },
        );
    Ok(output)
}

/// One draw on all inputs. The current activations live in `front`; a `Linear` layer writes
/// into `back` and the two are swapped.
fn forward_one(
    mlp: &Mlp,
    draw: &[f64],
    inputs: &[f64],
    n_inputs: usize,
    front: &mut Vec<f64>,
    back: &mut Vec<f64>,
    draw_output: &mut [f64],
) {
    let mut width = mlp.input_width();
    front[..inputs.len()].copy_from_slice(inputs);
    for step in mlp.steps() {
        match *step {
            Step::Linear(slot) => {
                linear(
                    &slot,
                    draw,
                    &front[..n_inputs * slot.input],
                    &mut back[..n_inputs * slot.output],
                    n_inputs,
                );
                std::mem::swap(front, back);
                width = slot.output;
            }
            Step::Activation(activation) => {
                activate(activation, &mut front[..n_inputs * width], width);
            }
        }
    }
    draw_output.copy_from_slice(&front[..n_inputs * width]);
}

/// `y = x @ W + b` for `x: [n_inputs, input]` and `y: [n_inputs, output]`, all row-major.
///
/// nalgebra stores matrices column by column, so a row-major `[r, c]` array is its transpose
/// `[c, r]` read column-major. The product is therefore computed as `yᵀ = Wᵀ xᵀ`.
fn linear(slot: &LinearSlot, draw: &[f64], x: &[f64], y: &mut [f64], n_inputs: usize) {
    let weights = &draw[slot.weight_offset..slot.weight_offset + slot.input * slot.output];
    let weights_t = DMatrixView::from_slice(weights, slot.output, slot.input);
    let x_t = DMatrixView::from_slice(x, slot.input, n_inputs);
    let mut y_t = DMatrixViewMut::from_slice(y, slot.output, n_inputs);
    y_t.gemm(1.0, &weights_t, &x_t, 0.0);
    if let Some(offset) = slot.bias_offset {
        let bias = &draw[offset..offset + slot.output];
        for row in y.chunks_exact_mut(slot.output) {
            for (value, b) in row.iter_mut().zip(bias) {
                *value += b;
            }
        }
    }
}

/// Applies an activation in place to rows of `width` values.
pub(crate) fn activate(activation: Activation, values: &mut [f64], width: usize) {
    match activation {
        Activation::Relu => values.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Tanh => values.iter_mut().for_each(|x| *x = x.tanh()),
        Activation::Sigmoid => values.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Activation::Softplus => values.iter_mut().for_each(|x| *x = softplus(*x)),
        Activation::Softmax => {
            for row in values.chunks_exact_mut(width) {
                let (max, log_sum) = max_and_log_sum_exp(row);
                row.iter_mut().for_each(|x| *x = (*x - max - log_sum).exp());
            }
        }
        Activation::LogSoftmax => {
            for row in values.chunks_exact_mut(width) {
                let (max, log_sum) = max_and_log_sum_exp(row);
                row.iter_mut().for_each(|x| *x = *x - max - log_sum);
            }
        }
    }
}

/// σ(x) = 1 / (1 + exp(−x)), written so that exp never overflows: for x < 0 it is
/// exp(x) / (1 + exp(x)).
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// log(1 + exp(x)) = max(x, 0) + log(1 + exp(−|x|)), which neither overflows for large x nor
/// loses the small value exp(x) for very negative x.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The row's maximum m and log Σ exp(x − m), so that softmax(x) = exp(x − m − log Σ).
fn max_and_log_sum_exp(row: &[f64]) -> (f64, f64) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
    (max, sum.ln())
}
