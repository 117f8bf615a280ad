#![allow(missing_docs)]
use bdl_autodiff::gemm::{gemm, MatrixRef};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn p(count: usize) -> Vec<f64> {
    (0..count).map(|i| 0.5 * (0.37 + 1.3 * i as f64).sin()).collect()
}

fn products(c: &mut Criterion) {
    let n = 500;
    let h = 100;
    let x = p(n);
    let w1 = p(h);
    let hidden = p(n * h);
    let w2 = p(h);
    let g = p(n);
    let mut out_big = vec![0.0; n * h];
    let mut out_n = vec![0.0; n];
    let mut out_h = vec![0.0; h];
    let mut s = Vec::new();
    c.bench_function("x_w1", |b| b.iter(|| { gemm(1.0, MatrixRef::row_major(&x, n, 1), MatrixRef::row_major(&w1, 1, h), 0.0, &mut out_big, &mut s); black_box(out_big[0]) }));
    c.bench_function("h_w2", |b| b.iter(|| { gemm(1.0, MatrixRef::row_major(&hidden, n, h), MatrixRef::row_major(&w2, h, 1), 0.0, &mut out_n, &mut s); black_box(out_n[0]) }));
    c.bench_function("ht_g", |b| b.iter(|| { gemm(1.0, MatrixRef::row_major(&hidden, n, h).t(), MatrixRef::row_major(&g, n, 1), 1.0, &mut out_h, &mut s); black_box(out_h[0]) }));
    c.bench_function("g_w2t", |b| b.iter(|| { gemm(1.0, MatrixRef::row_major(&g, n, 1), MatrixRef::row_major(&w2, h, 1).t(), 1.0, &mut out_big, &mut s); black_box(out_big[0]) }));
    c.bench_function("xt_dh", |b| b.iter(|| { gemm(1.0, MatrixRef::row_major(&x, n, 1).t(), MatrixRef::row_major(&hidden, n, h), 1.0, &mut out_h, &mut s); black_box(out_h[0]) }));
    c.bench_function("memset_big", |b| b.iter(|| { out_big.fill(0.0); black_box(out_big[0]) }));
    c.bench_function("add_big", |b| b.iter(|| { for (o, &v) in out_big.iter_mut().zip(&hidden) { *o += v }; black_box(out_big[0]) }));
}
criterion_group! { name = benches; config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(2)); targets = products }
criterion_main!(benches);
