// Activations that are not fused into a Linear layer, in place on [count / width, width] rows:
// `elementwise` takes one thread per value, `rowwise` one thread per row for the softmaxes.
// Threads are numbered across a two-dimensional dispatch of 256-thread workgroups.

struct ActivationParams {
    count: u32,
    width: u32,
    activation: u32,
    dispatch_x: u32,
}

@group(0) @binding(0) var<uniform> params: ActivationParams;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;

fn thread_index(group_id: vec3<u32>, local: u32) -> u32 {
    return (group_id.x + group_id.y * params.dispatch_x) * 256u + local;
}

@compute @workgroup_size(256, 1, 1)
fn elementwise(
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let index = thread_index(group_id, local);
    if (index < params.count) {
        values[index] = activate(values[index], params.activation);
    }
}

// Codes 5 (softmax) and 6 (log-softmax): with m = max_j x_j and s = sum_j exp(x_j - m),
// softmax(x)_i = exp(x_i - m) / s and log-softmax(x)_i = x_i - m - log(s).
@compute @workgroup_size(256, 1, 1)
fn rowwise(
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let row = thread_index(group_id, local);
    if (row >= params.count / params.width) {
        return;
    }
    let start = row * params.width;
    var largest = values[start];
    for (var j = 1u; j < params.width; j = j + 1u) {
        largest = max(largest, values[start + j]);
    }
    var total = 0.0;
    for (var j = 0u; j < params.width; j = j + 1u) {
        total = total + exp(values[start + j] - largest);
    }
    let log_total = log(total);
    for (var j = 0u; j < params.width; j = j + 1u) {
        let shifted = values[start + j] - largest - log_total;
        if (params.activation == 5u) {
            values[start + j] = exp(shifted);
        } else {
            values[start + j] = shifted;
        }
    }
}
