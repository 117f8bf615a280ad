// One Linear layer for every draw at once: y[d] = activate(x[d] @ W[d] + b[d]).
//
// x[d] is [n_rows, k] (shared by all draws when x_draw_stride is 0), W[d] is [k, n] and b[d] is
// [n], both inside draw d of the weights buffer, and y[d] is [n_rows, n]. Each workgroup computes
// one 16 x 16 tile of one draw's output; the k dimension is walked in tiles of 16 staged in
// workgroup memory. Workgroups are numbered draw-major and spread over a two-dimensional
// dispatch, so that any number of tiles fits under the per-dimension limit.

struct LinearParams {
    n_rows: u32,
    k: u32,
    n: u32,
    activation: u32,
    x_draw_stride: u32,
    w_draw_stride: u32,
    w_offset: u32,
    b_offset: u32,
    has_bias: u32,
    tiles_m: u32,
    tiles_n: u32,
    total_groups: u32,
    dispatch_x: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: LinearParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const TILE: u32 = 16u;

var<workgroup> x_tile: array<array<f32, 16>, 16>;
var<workgroup> w_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn linear(
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let group = group_id.x + group_id.y * params.dispatch_x;
    // The whole workgroup leaves together, so the barriers below stay in uniform control flow.
    if (group >= params.total_groups) {
        return;
    }
    let tiles_per_draw = params.tiles_m * params.tiles_n;
    let draw = group / tiles_per_draw;
    let tile = group % tiles_per_draw;
    let row = (tile / params.tiles_n) * TILE + local.y;
    let col = (tile % params.tiles_n) * TILE + local.x;
    let x_base = draw * params.x_draw_stride;
    let w_base = draw * params.w_draw_stride;

    var sum = 0.0;
    let k_tiles = (params.k + TILE - 1u) / TILE;
    for (var t = 0u; t < k_tiles; t = t + 1u) {
        // Thread (y, x) stages x[row, t*16 + x] and W[t*16 + y, col]; outside the matrices it
        // stages zeros, which add nothing to the sum.
        let x_col = t * TILE + local.x;
        var x_value = 0.0;
        if (row < params.n_rows && x_col < params.k) {
            x_value = x[x_base + row * params.k + x_col];
        }
        x_tile[local.y][local.x] = x_value;
        let w_row = t * TILE + local.y;
        var w_value = 0.0;
        if (w_row < params.k && col < params.n) {
            w_value = weights[w_base + params.w_offset + w_row * params.n + col];
        }
        w_tile[local.y][local.x] = w_value;
        workgroupBarrier();
        for (var i = 0u; i < TILE; i = i + 1u) {
            sum = sum + x_tile[local.y][i] * w_tile[i][local.x];
        }
        workgroupBarrier();
    }

    if (row < params.n_rows && col < params.n) {
        if (params.has_bias != 0u) {
            sum = sum + weights[w_base + params.b_offset + col];
        }
        y[draw * params.n_rows * params.n + row * params.n + col] = activate(sum, params.activation);
    }
}
