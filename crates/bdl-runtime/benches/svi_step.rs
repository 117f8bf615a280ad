//! The cost of one SVI step of the MNIST-sized network: the 784-100-10 ReLU classifier of
//! `models/scale/mnist_like_bnn.bdl` (79,510 weights and biases with Normal(0, 1) priors), the
//! diagonal guide (159,020 parameters), one particle, Adam, the data plate subsampled to 128 rows.
//!
//! A step is what `bdlc infer` repeats: draw the guide's noise, map it through the guide, run the
//! network forward and backward on a mini-batch, add the entropy's gradient, and apply Adam. The
//! data are synthetic (standard-normal features, classes from a fixed rule), since the step's
//! cost does not depend on the values. The benchmark prints the median and the quartiles of the
//! per-step wall time over the timed steps, and the CPU time per step of the whole timed run.
//!
//! ```text
//! cargo bench -p bdl-runtime --bench svi_step               # 20,000 rows, 50 + 400 steps
//! cargo bench -p bdl-runtime --bench svi_step -- 5000 600   # ROWS and timed STEPS
//! ```
//!
//! `bench/mnist_like/numpyro_step.py` times NumPyro's step on the same job.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]
// A benchmark binary prints its figures and reads its own CPU time from /proc.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use bdl_diagnostics::{render_all, SourceMap};
use bdl_infer::vi::svi::{self, SviSettings};
use bdl_runtime::data::{self, Completeness, DataFile};
use bdl_runtime::model::Model;
use bdl_runtime::pipeline;
use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The bundled model of the MNIST-sized job.
const MODEL: &str = include_str!("../../../models/scale/mnist_like_bnn.bdl");

/// Steps run before timing starts (page faults, caches, the tape's first recording).
const WARM_UP_STEPS: usize = 50;

/// `rows` rows of 784 features and a class, as CSV text, from a fixed linear congruential
/// sequence (reproducible, and cheap to make).
fn synthetic_csv(rows: usize) -> String {
    let mut text = String::with_capacity(rows * 785 * 7);
    for j in 0..784 {
        write!(text, "x{j},").unwrap();
    }
    text.push_str("y\n");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..rows {
        let mut first = 0.0;
        for j in 0..784 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // The sum of two uniforms on (−1, 1), scaled: mean 0, variance 1.
            let u1 = ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            let u2 = ((state & 0xFFFF_FFFF) as f64 / 4_294_967_296.0) * 2.0 - 1.0;
            let value = (u1 + u2) * 1.5f64.sqrt();
            if j == 0 {
                first = value;
            }
            write!(text, "{value:.3},").unwrap();
        }
        let class = ((first + 3.0) * 10.0 / 6.0).clamp(0.0, 9.0) as usize;
        writeln!(text, "{class}").unwrap();
    }
    text
}

fn main() {
    let arguments: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|argument| argument.parse().ok())
        .collect();
    let rows = arguments.first().copied().unwrap_or(20_000);
    let timed_steps = arguments.get(1).copied().unwrap_or(400);

    let mut sources = SourceMap::new();
    let compiled = pipeline::compile(&mut sources, "mnist_like_bnn.bdl", MODEL.as_bytes())
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    let text = synthetic_csv(rows);
    let file = DataFile::from_text("train.csv", &text, sources.add("train.csv", &text));
    let observed = pipeline::observed_only(&compiled.program);
    let data = data::load(&compiled.program, &[file], Completeness::All, &observed)
        .unwrap_or_else(|diagnostics| panic!("{}", render_all(&diagnostics, &sources, false)));
    drop(text);
    let model = Model::new(compiled.program, data, 1).unwrap();

    let settings = SviSettings {
        steps: WARM_UP_STEPS + timed_steps,
        seed: 15,
        ..SviSettings::default()
    };
    let stop = AtomicBool::new(false);
    let mut stamps: Vec<Instant> = Vec::with_capacity(settings.steps);
    let mut cpu_at_warm_up = Duration::ZERO;
    let mut final_loss = 0.0;
    svi::fit(
        |_| model.evaluator(),
        &settings,
        &stop,
        |step, loss| {
            stamps.push(Instant::now());
            if step + 1 == WARM_UP_STEPS {
                cpu_at_warm_up = process_cpu_time();
            }
            final_loss = loss;
        },
    )
    .unwrap();
    let cpu = process_cpu_time() - cpu_at_warm_up;
    let mut steps: Vec<f64> = stamps[WARM_UP_STEPS - 1..]
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).as_secs_f64() * 1e3)
        .collect();
    steps.sort_by(f64::total_cmp);
    let quantile = |q: f64| steps[((steps.len() - 1) as f64 * q).round() as usize];
    println!(
        "svi_step (784-100-10, diagonal guide, {rows} rows, batch 128, {} threads): \
         median {:.3} ms, quartiles {:.3}–{:.3} ms, CPU {:.3} ms per step over {timed_steps} \
         steps; final loss {final_loss:.1}",
        rayon::current_num_threads(),
        quantile(0.5),
        quantile(0.25),
        quantile(0.75),
        cpu.as_secs_f64() * 1e3 / timed_steps as f64,
    );
}

/// The CPU time (user and system) this process has used so far.
fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields 14 and 15 (utime, stime) come after the command name in parentheses.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |pair| {
        pair.iter().filter_map(|f| f.parse::<u64>().ok()).sum()
    });
    // The kernel's clock ticks are 100 per second on Linux.
    Duration::from_millis(ticks * 10)
}
