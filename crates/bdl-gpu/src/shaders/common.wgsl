// Elementwise activations in f32, shared by the shaders. The codes match `gpu::activation_code`:
// 0 none, 1 ReLU, 2 tanh, 3 sigmoid, 4 softplus.

fn sigmoid(x: f32) -> f32 {
    // For x < 0 use exp(x) / (1 + exp(x)) so that exp never overflows.
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn softplus(x: f32) -> f32 {
    // log(1 + exp(x)) = max(x, 0) + log(1 + t) with t = exp(-|x|) <= 1. WGSL has no log1p: for
    // small t, log(1 + t) = t - t^2 / 2 + O(t^3) keeps the relative precision that log(1 + t)
    // would lose when 1 + t rounds to 1.
    let t = exp(-abs(x));
    var tail: f32;
    if (t < 1.0e-3) {
        tail = t * (1.0 - 0.5 * t);
    } else {
        tail = log(1.0 + t);
    }
    return max(x, 0.0) + tail;
}

fn stable_tanh(x: f32) -> f32 {
    // tanh(x) rounds to +-1 in f32 beyond |x| = 9; clamping keeps drivers that evaluate tanh
    // through exp from overflowing to NaN.
    return tanh(clamp(x, -15.0, 15.0));
}

fn activate(x: f32, code: u32) -> f32 {
    switch code {
        case 1u: { return max(x, 0.0); }
        case 2u: { return stable_tanh(x); }
        case 3u: { return sigmoid(x); }
        case 4u: { return softplus(x); }
        default: { return x; }
    }
}
