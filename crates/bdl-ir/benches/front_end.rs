//! How long the front end takes on a large model: parsing, checking, and both, on a generated
//! 2,000-line model (the target is well under 50 ms for both). Run with
//! `cargo bench -p bdl-ir --bench front_end`.
#![allow(missing_docs)] // criterion's macros generate undocumented functions.

use bdl_diagnostics::FileId;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

/// A valid model of `lines` lines: a data block, a network, a function, and a model with many
/// sites, lets, plates and loops.
fn generated_model(lines: usize) -> String {
    let mut text = String::from(
        "// A generated model for benchmarking the front end.\n\
         data from \"data.csv\" {\n    x: vector[N]\n    y: vector[N]\n    X: matrix[N, 4] from \"x*\"\n}\n\n\
         network mlp = Sequential(Linear(4, 32), ReLU, Linear(32, 1))\n\n\
         fn affine(a, b, t) {\n    return a + b * t\n}\n\nmodel {\n",
    );
    let mut block = 0;
    while text.lines().count() < lines - 8 {
        text.push_str(&format!(
            "    let w_{block} = sample(\"w_{block}\", Normal(0, 1), shape = [4])\n\
             \x20   let s_{block} = sample(\"s_{block}\", HalfNormal(1))\n\
             \x20   let m_{block} = affine(0.5, s_{block}, X @ w_{block}) + w_{block}[0] * x\n\
             \x20   let t_{block} = deterministic(\"t_{block}\", sum(exp(-square(m_{block})), 0) / len(x))\n\
             \x20   for k in 0..3 {{\n\
             \x20       let z_{block} = sample(\"z_{block}_{{k}}\", Normal(m_{block}[k], s_{block} + 1.0))\n\
             \x20   }}\n"
        ));
        block += 1;
    }
    text.push_str(&format!(
        "    let net = lift(\"mlp\", mlp, Normal(0, 1))\n    plate(\"data\", N, subsample = 64) as i {{\n\
         \x20       observe(\"y\", Normal(net(X[i]) + m_{}[i], 1), y[i])\n    }}\n}}\n",
        block - 1
    ));
    text
}

fn front_end(c: &mut Criterion) {
    let text = generated_model(2_000);
    let parsed = bdl_syntax::parse(FileId(0), &text);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let checked = bdl_ir::check(&parsed.program);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let mut group = c.benchmark_group("2000-line model");
    group.bench_function("parse", |b| {
        b.iter(|| bdl_syntax::parse(FileId(0), black_box(&text)))
    });
    group.bench_function("check", |b| {
        b.iter(|| bdl_ir::check(black_box(&parsed.program)))
    });
    group.bench_function("parse and check", |b| {
        b.iter(|| {
            let parsed = bdl_syntax::parse(FileId(0), black_box(&text));
            bdl_ir::check(&parsed.program)
        })
    });
    group.finish();
}

criterion_group!(benches, front_end);
criterion_main!(benches);
