//! The inverse autoregressive flow of the `iaf` guide (Kingma et al., 2016; Pyro's
//! `AutoIAFNormal`): stacked affine autoregressive layers, each conditioned by a MADE network
//! (Germain et al., 2015), with the coordinates reversed between layers.
//!
//! Layer k maps x to y with yᵢ = mᵢ(x₍<ᵢ₎) + exp(ℓᵢ(x₍<ᵢ₎)) xᵢ, where (m, ℓ) are the outputs of a
//! one-hidden-layer MADE: a = M₁ ⊙ W₁ x + b₁, h = elu(a), m = M₂ ⊙ W₂ h + b₂,
//! ℓ = clamp(M₂ ⊙ V₂ h + c₂, −5, 3). The masks give input i the degree i + 1 and hidden unit k
//! the degree (k mod (d − 1)) + 1; a hidden unit sees the inputs of degree at most its own and
//! an output sees the hidden units of degree below its own, so output i depends on x₍<ᵢ₎ only
//! and the Jacobian of the layer is triangular with log-determinant Σᵢ ℓᵢ. (The clamp is
//! Pyro's default; the log-determinant uses the clamped value, so it stays exact.) Before every
//! layer but the first the coordinates are reversed.
//!
//! A layer's flat parameters are `[W₁ (H × d, row-major), b₁ (H), W₂ (d × H), b₂ (d),
//! V₂ (d × H), c₂ (d)]`; entries outside the masks are kept but never used (their gradient is
//! zero). With W₂, V₂, b₂ and c₂ zero a layer is the identity, which is how the guide starts.
//! [`forward`] maps base noise through the layers, keeping what [`backward`] needs;
//! [`inverse`] maps a point back (d passes per layer, for the density of arbitrary points).

/// The bounds of ℓ, Pyro's `log_scale_min_clip` and `log_scale_max_clip`.
const LOG_SCALE_MIN: f64 = -5.0;
const LOG_SCALE_MAX: f64 = 3.0;

/// The shape of a flow: its dimension, number of layers and hidden width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowShape {
    /// The number of coordinates d.
    pub dim: usize,
    /// The number of affine autoregressive layers.
    pub layers: usize,
    /// The width H of each MADE's hidden layer.
    pub hidden: usize,
}

/// What the backward pass of one layer needs from its forward pass.
#[derive(Clone, Debug, Default)]
struct LayerCache {
    input: Vec<f64>,
    pre_activation: Vec<f64>,
    hidden: Vec<f64>,
    log_scale: Vec<f64>,
    clamped: Vec<bool>,
}

/// The forward pass's intermediate values, reusable across draws.
#[derive(Clone, Debug, Default)]
pub struct FlowCache {
    layers: Vec<LayerCache>,
}

fn elu(a: f64) -> f64 {
    if a > 0.0 {
        a
    } else {
        a.exp_m1()
    }
}

fn elu_slope(a: f64) -> f64 {
    if a > 0.0 {
        1.0
    } else {
        a.exp()
    }
}

impl FlowShape {
    /// The number of parameters of one layer: 3 H d + H + 2 d.
    pub fn layer_len(&self) -> usize {
        3 * self.hidden * self.dim + self.hidden + 2 * self.dim
    }

    /// The number of parameters of the flow.
    pub fn n_params(&self) -> usize {
        self.layers * self.layer_len()
    }

    /// The degree of hidden unit k (0 for a one-dimensional flow, whose outputs are constants).
    fn hidden_degree(&self, k: usize) -> usize {
        if self.dim > 1 {
            k % (self.dim - 1) + 1
        } else {
            0
        }
    }

    /// Whether hidden unit k sees input j.
    fn input_mask(&self, k: usize, j: usize) -> bool {
        self.hidden_degree(k) > j
    }

    /// Whether output i sees hidden unit k.
    fn output_mask(&self, i: usize, k: usize) -> bool {
        i + 1 > self.hidden_degree(k)
    }

    /// Initial parameters: every layer the identity, with W₁ drawn N(0, 1/d) from `normal` (a
    /// zero W₁ would leave the hidden units without gradient).
    pub fn initial_params(&self, mut normal: impl FnMut() -> f64) -> Vec<f64> {
        let (d, h) = (self.dim, self.hidden);
        let mut params = Vec::with_capacity(self.n_params());
        for _ in 0..self.layers {
            let scale = 1.0 / (d as f64).sqrt();
            params.extend((0..h * d).map(|_| scale * normal()));
            params.extend(std::iter::repeat_n(0.0, self.layer_len() - h * d));
        }
        params
    }

    /// The MADE outputs (m, ℓ) of one layer at `x`, with its hidden values in `cache`.
    fn made(&self, layer: &[f64], x: &[f64], cache: &mut LayerCache, m: &mut [f64]) {
        let (d, h) = (self.dim, self.hidden);
        let (w1, rest) = layer.split_at(h * d);
        let (b1, rest) = rest.split_at(h);
        let (w2, rest) = rest.split_at(d * h);
        let (b2, rest) = rest.split_at(d);
        let (v2, c2) = rest.split_at(d * h);
        cache.pre_activation.resize(h, 0.0);
        cache.hidden.resize(h, 0.0);
        cache.log_scale.resize(d, 0.0);
        cache.clamped.resize(d, false);
        for k in 0..h {
            let mut a = b1[k];
            for j in 0..d {
                if self.input_mask(k, j) {
                    a += w1[k * d + j] * x[j];
                }
            }
            cache.pre_activation[k] = a;
            cache.hidden[k] = elu(a);
        }
        for i in 0..d {
            let (mut mean, mut log_scale) = (b2[i], c2[i]);
            for k in 0..h {
                if self.output_mask(i, k) {
                    mean += w2[i * h + k] * cache.hidden[k];
                    log_scale += v2[i * h + k] * cache.hidden[k];
                }
            }
            m[i] = mean;
            cache.clamped[i] = !(LOG_SCALE_MIN..=LOG_SCALE_MAX).contains(&log_scale);
            cache.log_scale[i] = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX);
        }
    }
}

/// Maps `noise` through the flow with parameters `params` into `y`; returns the
/// log-determinant of the Jacobian ∂y/∂noise and keeps the intermediate values in `cache`.
pub fn forward(
    shape: &FlowShape,
    params: &[f64],
    noise: &[f64],
    y: &mut [f64],
    cache: &mut FlowCache,
) -> f64 {
    let d = shape.dim;
    cache.layers.resize(shape.layers, LayerCache::default());
    y.copy_from_slice(noise);
    let mut m = vec![0.0; d];
    let mut log_determinant = 0.0;
    for (k, layer_cache) in cache.layers.iter_mut().enumerate() {
        if k > 0 {
            y.reverse();
        }
        let mut input = std::mem::take(&mut layer_cache.input);
        input.clear();
        input.extend_from_slice(y);
        let layer = &params[k * shape.layer_len()..(k + 1) * shape.layer_len()];
        shape.made(layer, &input, layer_cache, &mut m);
        layer_cache.input = input;
        for i in 0..d {
            let log_scale = layer_cache.log_scale[i];
            y[i] = m[i] + log_scale.exp() * layer_cache.input[i];
            log_determinant += log_scale;
        }
    }
    log_determinant
}

/// The backward pass of [`forward`] (whose `cache` it reads): given g = ∂f/∂y, writes into
/// `gradient` (length `n_params`) the gradient of f(y(θ)) + `weight` · log det ∂y/∂noise with
/// respect to the flow's parameters θ.
pub fn backward(
    shape: &FlowShape,
    params: &[f64],
    cache: &FlowCache,
    grad_y: &[f64],
    weight: f64,
    gradient: &mut [f64],
) {
    let (d, h) = (shape.dim, shape.hidden);
    let len = shape.layer_len();
    let mut grad_output = grad_y.to_vec();
    let mut grad_hidden = vec![0.0; h];
    let mut grad_input = vec![0.0; d];
    for k in (0..shape.layers).rev() {
        let layer = &params[k * len..(k + 1) * len];
        let cache = &cache.layers[k];
        let grad = &mut gradient[k * len..(k + 1) * len];
        let (g_w1, rest) = grad.split_at_mut(h * d);
        let (g_b1, rest) = rest.split_at_mut(h);
        let (g_w2, rest) = rest.split_at_mut(d * h);
        let (g_b2, rest) = rest.split_at_mut(d);
        let (g_v2, g_c2) = rest.split_at_mut(d * h);
        let w1 = &layer[..h * d];
        let w2 = &layer[h * d + h..h * d + h + d * h];
        let v2 = &layer[2 * d * h + h + d..3 * d * h + h + d];
        grad_hidden.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..d {
            let scale = cache.log_scale[i].exp();
            // yᵢ = mᵢ + exp(ℓᵢ) xᵢ, and the weight's log-determinant term adds ℓᵢ.
            let g_mean = grad_output[i];
            let g_log_scale = if cache.clamped[i] {
                0.0
            } else {
                grad_output[i] * scale * cache.input[i] + weight
            };
            grad_input[i] = grad_output[i] * scale;
            g_b2[i] = g_mean;
            g_c2[i] = g_log_scale;
            for kk in 0..h {
                if shape.output_mask(i, kk) {
                    g_w2[i * h + kk] = g_mean * cache.hidden[kk];
                    g_v2[i * h + kk] = g_log_scale * cache.hidden[kk];
                    grad_hidden[kk] += w2[i * h + kk] * g_mean + v2[i * h + kk] * g_log_scale;
                } else {
                    g_w2[i * h + kk] = 0.0;
                    g_v2[i * h + kk] = 0.0;
                }
            }
        }
        for kk in 0..h {
            let g_a = grad_hidden[kk] * elu_slope(cache.pre_activation[kk]);
            g_b1[kk] = g_a;
            for j in 0..d {
                if shape.input_mask(kk, j) {
                    g_w1[kk * d + j] = g_a * cache.input[j];
                    grad_input[j] += w1[kk * d + j] * g_a;
                } else {
                    g_w1[kk * d + j] = 0.0;
                }
            }
        }
        grad_output.copy_from_slice(&grad_input);
        if k > 0 {
            grad_output.reverse();
        }
    }
}

/// The noise that [`forward`] maps to `y`, and the log-determinant of ∂y/∂noise there: each
/// layer is inverted coordinate by coordinate (output i needs the inputs before it), so the
/// cost is d MADE passes per layer.
pub fn inverse(shape: &FlowShape, params: &[f64], y: &[f64]) -> (Vec<f64>, f64) {
    let d = shape.dim;
    let mut current = y.to_vec();
    let mut x = vec![0.0; d];
    let mut m = vec![0.0; d];
    let mut cache = LayerCache::default();
    let mut log_determinant = 0.0;
    for k in (0..shape.layers).rev() {
        let layer = &params[k * shape.layer_len()..(k + 1) * shape.layer_len()];
        x.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..d {
            // Output i depends on x₍<ᵢ₎ only, all known by now.
            shape.made(layer, &x, &mut cache, &mut m);
            x[i] = (current[i] - m[i]) / cache.log_scale[i].exp();
        }
        shape.made(layer, &x, &mut cache, &mut m);
        log_determinant += cache.log_scale.iter().sum::<f64>();
        current.copy_from_slice(&x);
        if k > 0 {
            current.reverse();
        }
    }
    (current, log_determinant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;
    use rand::Rng as _;
    use rand_distr::StandardNormal;

    fn random_flow(dim: usize, seed: u64) -> (FlowShape, Vec<f64>) {
        let shape = FlowShape {
            dim,
            layers: 3,
            hidden: 2 * dim + 1,
        };
        let mut rng = stream_rng(seed, 0);
        let params = (0..shape.n_params())
            .map(|_| 0.4 * rng.sample::<f64, _>(StandardNormal))
            .collect();
        (shape, params)
    }

    fn noise(dim: usize, seed: u64) -> Vec<f64> {
        let mut rng = stream_rng(seed, 1);
        (0..dim).map(|_| rng.sample(StandardNormal)).collect()
    }

    fn push(shape: &FlowShape, params: &[f64], eps: &[f64]) -> (Vec<f64>, f64) {
        let mut y = vec![0.0; shape.dim];
        let log_det = forward(shape, params, eps, &mut y, &mut FlowCache::default());
        (y, log_det)
    }

    #[test]
    fn the_log_determinant_matches_a_finite_difference_jacobian() {
        for dim in [1, 2, 4] {
            let (shape, params) = random_flow(dim, 5 + dim as u64);
            let eps = noise(dim, 9);
            let (_, log_det) = push(&shape, &params, &eps);
            let step = 1e-6;
            let jacobian = nalgebra::DMatrix::from_fn(dim, dim, |i, j| {
                let mut plus = eps.clone();
                let mut minus = eps.clone();
                plus[j] += step;
                minus[j] -= step;
                (push(&shape, &params, &plus).0[i] - push(&shape, &params, &minus).0[i])
                    / (2.0 * step)
            });
            let numeric = jacobian.determinant().abs().ln();
            assert!(
                (numeric - log_det).abs() < 1e-6,
                "d = {dim}: {numeric} vs {log_det}"
            );
        }
    }

    #[test]
    fn the_inverse_recovers_the_noise_and_the_log_determinant() {
        let (shape, params) = random_flow(4, 21);
        let eps = noise(4, 22);
        let (y, log_det) = push(&shape, &params, &eps);
        let (back, inverse_log_det) = inverse(&shape, &params, &y);
        for i in 0..4 {
            assert!((back[i] - eps[i]).abs() < 1e-10, "{back:?} vs {eps:?}");
        }
        assert!((inverse_log_det - log_det).abs() < 1e-10);
    }

    #[test]
    fn the_backward_pass_matches_finite_differences() {
        // f(y) = Σ cᵢ yᵢ + ½ Σ yᵢ², plus the weighted log-determinant.
        let (shape, params) = random_flow(3, 31);
        let eps = noise(3, 32);
        let c = [0.3, -1.1, 0.7];
        let weight = 0.6;
        let objective = |params: &[f64]| {
            let (y, log_det) = push(&shape, params, &eps);
            (0..3).map(|i| c[i] * y[i] + 0.5 * y[i] * y[i]).sum::<f64>() + weight * log_det
        };
        let mut cache = FlowCache::default();
        let mut y = vec![0.0; 3];
        forward(&shape, &params, &eps, &mut y, &mut cache);
        let grad_y: Vec<f64> = (0..3).map(|i| c[i] + y[i]).collect();
        let mut gradient = vec![0.0; shape.n_params()];
        backward(&shape, &params, &cache, &grad_y, weight, &mut gradient);
        let step = 1e-6;
        for k in 0..shape.n_params() {
            let mut plus = params.clone();
            let mut minus = params.clone();
            plus[k] += step;
            minus[k] -= step;
            let numeric = (objective(&plus) - objective(&minus)) / (2.0 * step);
            assert!(
                (numeric - gradient[k]).abs() < 1e-5 * (1.0 + numeric.abs()),
                "parameter {k}: {numeric} vs {}",
                gradient[k]
            );
        }
    }

    #[test]
    fn a_fresh_flow_permutes_only() {
        let shape = FlowShape {
            dim: 3,
            layers: 2,
            hidden: 7,
        };
        let mut rng = stream_rng(1, 0);
        let params = shape.initial_params(|| rng.sample(StandardNormal));
        let eps = noise(3, 2);
        let (y, log_det) = push(&shape, &params, &eps);
        // Identity layers with one reversal between them: a permutation, so N(0, I) stays
        // N(0, I).
        let reversed: Vec<f64> = eps.iter().rev().copied().collect();
        assert_eq!(y, reversed);
        assert_eq!(log_det, 0.0);
    }
}
