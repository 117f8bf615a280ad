//! Network layers: the rearrangement primitive, convolution, pooling, the activations composed
//! from elementwise ops, and normalisation. Values are compared with direct loops written from
//! PyTorch's definitions (not from im2col), gradients with the six-point stencil.

#![allow(clippy::needless_range_loop)] // The references index tensors the way their formulas do.

use crate::common::{assert_all_close, check_gradient, forward_value, pattern, weighted_sum};
use bdl_autodiff::{Tape, Tensor, TensorError, ZERO_ENTRY};
use std::sync::Arc;

/// The value at `[n, c, i, j]` of a row-major `[N, C, H, W]` buffer, or 0 outside the image.
fn pixel(data: &[f64], shape: &[usize], n: usize, c: usize, i: isize, j: isize) -> f64 {
    let (channels, height, width) = (shape[1], shape[2] as isize, shape[3] as isize);
    if i < 0 || j < 0 || i >= height || j >= width {
        return 0.0;
    }
    data[((n * channels + c) * height as usize + i as usize) * width as usize + j as usize]
}

/// PyTorch's `conv2d` as four nested loops: out[n, o, y, x] = b[o] + Σ_c Σ_ki Σ_kj
/// w[o, c, ki, kj] · in[n, c, y·s + ki − p, x·s + kj − p].
fn reference_conv2d(
    input: &Tensor,
    weight: &Tensor,
    bias: &[f64],
    stride: usize,
    padding: usize,
) -> (Vec<f64>, Vec<usize>) {
    let (shape, w) = (input.shape(), weight.shape());
    let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3]);
    let (outputs, kh, kw) = (w[0], w[2], w[3]);
    let oh = (height + 2 * padding - kh) / stride + 1;
    let ow = (width + 2 * padding - kw) / stride + 1;
    let mut out = Vec::new();
    for n in 0..batch {
        for o in 0..outputs {
            for y in 0..oh {
                for x in 0..ow {
                    let mut total = bias[o];
                    for c in 0..channels {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let i = (y * stride + ki) as isize - padding as isize;
                                let j = (x * stride + kj) as isize - padding as isize;
                                let wv = weight.data()[((o * channels + c) * kh + ki) * kw + kj];
                                total += wv * pixel(input.data(), shape, n, c, i, j);
                            }
                        }
                    }
                    out.push(total);
                }
            }
        }
    }
    (out, vec![batch, outputs, oh, ow])
}

#[test]
fn rearrange() {
    // A reversal with a zero in the middle and one element copied twice.
    let map: Arc<[usize]> = vec![3, 2, ZERO_ENTRY, 0, 0].into();
    let input = pattern(&[4], 1.0, 0.1);
    let (value, shape) = forward_value(std::slice::from_ref(&input), |tape, v| {
        tape.rearrange(v[0], map.clone(), &[5])
    });
    let x = input.data();
    assert_eq!(shape, vec![5]);
    assert_all_close(&value, &[x[3], x[2], 0.0, x[0], x[0]]);
    check_gradient(
        |tape, v| {
            let out = tape.rearrange(v[0], map.clone(), &[5])?;
            weighted_sum(tape, out)
        },
        &[
            vec![pattern(&[4], 1e-3, 0.0)],
            vec![pattern(&[4], 1.0, 0.3)],
            vec![pattern(&[4], 1e3, 0.0)],
        ],
    );
    let mut tape = Tape::new();
    let v = tape.input(pattern(&[4], 1.0, 0.0));
    let out_of_range: Arc<[usize]> = vec![4].into();
    assert!(matches!(
        tape.rearrange(v, out_of_range, &[1]),
        Err(TensorError::InvalidShape { .. })
    ));
    let short: Arc<[usize]> = vec![0].into();
    assert!(matches!(
        tape.rearrange(v, short, &[2]),
        Err(TensorError::DataLength { .. })
    ));
}

#[test]
fn conv2d() {
    for &(stride, padding) in &[(1, 0), (1, 1), (2, 1), (2, 0)] {
        let input = pattern(&[2, 2, 5, 4], 1.0, 0.1);
        let weight = pattern(&[3, 2, 3, 2], 0.7, -0.05);
        let bias = pattern(&[3], 0.3, 0.2);
        let (value, shape) =
            forward_value(&[input.clone(), weight.clone(), bias.clone()], |tape, v| {
                tape.conv(v[0], v[1], Some(v[2]), stride, padding)
            });
        let (expected, expected_shape) =
            reference_conv2d(&input, &weight, bias.data(), stride, padding);
        assert_eq!(shape, expected_shape);
        for (a, e) in value.iter().zip(&expected) {
            assert!((a - e).abs() <= 1e-12 * (1.0 + e.abs()), "{a} vs {e}");
        }
        check_gradient(
            |tape, v| {
                let out = tape.conv(v[0], v[1], Some(v[2]), stride, padding)?;
                weighted_sum(tape, out)
            },
            &[
                vec![
                    pattern(&[2, 2, 5, 4], 1e-3, 0.0),
                    pattern(&[3, 2, 3, 2], 1e-3, 0.0),
                    pattern(&[3], 1e-3, 0.0),
                ],
                vec![input.clone(), weight.clone(), bias.clone()],
                vec![
                    pattern(&[2, 2, 5, 4], 1e2, 3.0),
                    pattern(&[3, 2, 3, 2], 10.0, 0.0),
                    pattern(&[3], 1e2, 0.0),
                ],
            ],
        );
    }
}

#[test]
fn conv1d() {
    // A 1-D convolution is a 2-D one over images one pixel high.
    let input = pattern(&[3, 2, 7], 1.0, 0.1);
    let weight = pattern(&[4, 2, 3], 0.5, 0.0);
    let bias = pattern(&[4], 0.3, 0.0);
    let (value, shape) =
        forward_value(&[input.clone(), weight.clone(), bias.clone()], |tape, v| {
            tape.conv(v[0], v[1], Some(v[2]), 2, 1)
        });
    let as_image = Tensor::from_shape(&[3, 2, 1, 7], input.data().to_vec()).unwrap();
    let kernel_image = Tensor::from_shape(&[4, 2, 1, 3], weight.data().to_vec()).unwrap();
    // Pad only along the width: reference with padding 1 on a 1-high image would pad the height
    // too, so compare against explicit width padding instead.
    let padded: Vec<f64> = (0..3 * 2)
        .flat_map(|plane| {
            let row = &as_image.data()[plane * 7..plane * 7 + 7];
            std::iter::once(0.0)
                .chain(row.iter().copied())
                .chain(std::iter::once(0.0))
        })
        .collect();
    let padded = Tensor::from_shape(&[3, 2, 1, 9], padded).unwrap();
    let (expected, expected_shape) = reference_conv2d(&padded, &kernel_image, bias.data(), 2, 0);
    assert_eq!(expected_shape, vec![3, 4, 1, 4]);
    assert_eq!(shape, vec![3, 4, 4]);
    for (a, e) in value.iter().zip(&expected) {
        assert!((a - e).abs() <= 1e-12 * (1.0 + e.abs()), "{a} vs {e}");
    }
    check_gradient(
        |tape, v| {
            let out = tape.conv(v[0], v[1], None, 1, 2)?;
            weighted_sum(tape, out)
        },
        &[
            vec![input.clone(), weight.clone()],
            vec![
                pattern(&[3, 2, 7], 1e2, 1.0),
                pattern(&[4, 2, 3], 1e-2, 0.0),
            ],
        ],
    );
    let mut tape = Tape::new();
    let x = tape.input(pattern(&[1, 2, 2], 1.0, 0.0));
    let w = tape.input(pattern(&[1, 3, 2], 1.0, 0.0));
    assert!(matches!(
        tape.conv(x, w, None, 1, 0),
        Err(TensorError::ShapeMismatch { .. })
    ));
    let w = tape.input(pattern(&[1, 2, 5], 1.0, 0.0));
    assert!(matches!(
        tape.conv(x, w, None, 1, 0),
        Err(TensorError::InvalidShape { .. })
    ));
}

/// Windows of a `[N, C, H, W]` tensor reduced by `reduce`, as direct loops.
fn reference_pool(
    input: &Tensor,
    kernel: usize,
    stride: usize,
    reduce: fn(&[f64]) -> f64,
) -> Vec<f64> {
    let shape = input.shape();
    let oh = (shape[2] - kernel) / stride + 1;
    let ow = (shape[3] - kernel) / stride + 1;
    let mut out = Vec::new();
    for n in 0..shape[0] {
        for c in 0..shape[1] {
            for y in 0..oh {
                for x in 0..ow {
                    let mut window = Vec::new();
                    for i in 0..kernel {
                        for j in 0..kernel {
                            window.push(pixel(
                                input.data(),
                                shape,
                                n,
                                c,
                                (y * stride + i) as isize,
                                (x * stride + j) as isize,
                            ));
                        }
                    }
                    out.push(reduce(&window));
                }
            }
        }
    }
    out
}

#[test]
fn max_pool() {
    for &(kernel, stride) in &[(2, 2), (3, 1)] {
        let input = pattern(&[2, 3, 6, 5], 1.0, 0.0);
        let (value, _) = forward_value(std::slice::from_ref(&input), |tape, v| {
            tape.max_pool(v[0], &[kernel, kernel], stride)
        });
        let expected = reference_pool(&input, kernel, stride, |w| {
            w.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        });
        assert_all_close(&value, &expected);
        check_gradient(
            |tape, v| {
                let out = tape.max_pool(v[0], &[kernel, kernel], stride)?;
                weighted_sum(tape, out)
            },
            &[vec![input.clone()], vec![pattern(&[2, 3, 6, 5], 1e3, 0.0)]],
        );
    }
    let mut tape = Tape::new();
    let x = tape.input(pattern(&[1, 1, 2, 2], 1.0, 0.0));
    assert!(matches!(
        tape.max_pool(x, &[3, 3], 1),
        Err(TensorError::InvalidShape { .. })
    ));
    assert!(matches!(
        tape.max_pool(x, &[2], 1),
        Err(TensorError::InvalidShape { .. })
    ));
}

#[test]
fn avg_pool() {
    let input = pattern(&[2, 3, 6, 5], 1.0, 0.0);
    let (value, shape) = forward_value(std::slice::from_ref(&input), |tape, v| {
        tape.avg_pool(v[0], &[2, 2], 2)
    });
    assert_eq!(shape, vec![2, 3, 3, 2]);
    let expected = reference_pool(&input, 2, 2, |w| w.iter().sum::<f64>() / w.len() as f64);
    for (a, e) in value.iter().zip(&expected) {
        assert!((a - e).abs() <= 1e-14, "{a} vs {e}");
    }
    check_gradient(
        |tape, v| {
            let out = tape.avg_pool(v[0], &[2], 1)?;
            weighted_sum(tape, out)
        },
        &[
            vec![pattern(&[2, 3, 5], 1.0, 0.0)],
            vec![pattern(&[2, 3, 5], 1e3, 1.0)],
        ],
    );
}

/// Checks an activation's value against `reference` and its gradient at points that avoid the
/// kink at zero.
fn check_activation(
    op: impl Fn(&mut Tape, bdl_autodiff::Var) -> bdl_autodiff::Var,
    reference: fn(f64) -> f64,
) {
    let points: Vec<Vec<Tensor>> = [(1e-3, 0.0), (1.0, 0.2), (3.0, -1.0), (30.0, 0.0)]
        .iter()
        .map(|&(scale, offset)| vec![pattern(&[2, 3], scale, offset)])
        .collect();
    for point in &points {
        let (value, _) = forward_value(point, |tape, v| Ok(op(tape, v[0])));
        for (a, x) in value.iter().zip(point[0].data()) {
            let e = reference(*x);
            assert!(
                (a - e).abs() <= 1e-13 * (1.0 + e.abs()),
                "{a} vs {e} at {x}"
            );
        }
    }
    check_gradient(
        |tape, v| {
            let out = op(tape, v[0]);
            weighted_sum(tape, out)
        },
        &points,
    );
}

#[test]
fn leaky_relu() {
    check_activation(
        |t, x| t.leaky_relu(x, 0.01),
        |x| if x > 0.0 { x } else { 0.01 * x },
    );
}

#[test]
fn elu() {
    check_activation(
        |t, x| t.elu(x, 1.5),
        |x| if x > 0.0 { x } else { 1.5 * x.exp_m1() },
    );
}

#[test]
fn gelu() {
    // x·Φ(x) at points where the standard normal CDF Φ is tabulated (scipy.stats.norm.cdf).
    let known = [
        (1.0, 0.841_344_746_068_542_9),
        (-1.0, -0.158_655_253_931_457_05),
        (2.0, 1.954_499_736_103_642),
    ];
    for (x, expected) in known {
        let (value, _) = forward_value(&[Tensor::vector(vec![x])], |tape, v| Ok(tape.gelu(v[0])));
        assert!(
            (value[0] - expected).abs() < 1e-14,
            "gelu({x}) = {}",
            value[0]
        );
    }
    check_gradient(
        |tape, v| {
            let out = tape.gelu(v[0]);
            weighted_sum(tape, out)
        },
        &[
            vec![pattern(&[2, 3], 1e-3, 0.0)],
            vec![pattern(&[2, 3], 1.0, 0.2)],
            vec![pattern(&[2, 3], 5.0, -1.0)],
        ],
    );
}

#[test]
fn silu() {
    check_activation(|t, x| t.silu(x), |x| x / (1.0 + (-x).exp()));
}

#[test]
fn normalize() {
    let input = pattern(&[3, 2, 4], 2.0, 0.5);
    // Along the last axis (LayerNorm) and along the batch and spatial axes (BatchNorm).
    for axes in [vec![2], vec![0, 2]] {
        let (value, shape) = forward_value(std::slice::from_ref(&input), |tape, v| {
            tape.normalize(v[0], &axes, 1e-5)
        });
        assert_eq!(shape, vec![3, 2, 4]);
        let x = input.data();
        let at = |a: usize, b: usize, c: usize| x[(a * 2 + b) * 4 + c];
        for a in 0..3 {
            for b in 0..2 {
                for c in 0..4 {
                    let group: Vec<f64> = if axes.len() == 1 {
                        (0..4).map(|k| at(a, b, k)).collect()
                    } else {
                        (0..3)
                            .flat_map(|i| (0..4).map(move |k| (i, k)))
                            .map(|(i, k)| at(i, b, k))
                            .collect()
                    };
                    let mean = group.iter().sum::<f64>() / group.len() as f64;
                    let var =
                        group.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / group.len() as f64;
                    let expected = (at(a, b, c) - mean) / (var + 1e-5).sqrt();
                    let actual = value[(a * 2 + b) * 4 + c];
                    assert!((actual - expected).abs() < 1e-12, "{actual} vs {expected}");
                }
            }
        }
        check_gradient(
            |tape, v| {
                let out = tape.normalize(v[0], &axes, 1e-5)?;
                weighted_sum(tape, out)
            },
            &[vec![input.clone()], vec![pattern(&[3, 2, 4], 1e2, 3.0)]],
        );
    }
}
