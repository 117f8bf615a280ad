//! Progress bars on stderr, only when stderr is a terminal and `--quiet` is not given.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Whether progress bars are shown.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One bar for an optimisation, showing the running loss.
pub fn optimisation_bar(steps: usize, show: bool) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if show {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(style(
            "{prefix} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        ));
        bar.set_prefix("svi");
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// One bar per chain, under one multi-bar.
pub fn chain_bars(
    chains: usize,
    iterations: usize,
    show: bool,
) -> (MultiProgress, Vec<ProgressBar>) {
    let multi = MultiProgress::with_draw_target(if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bars = (0..chains)
        .map(|chain| {
            let bar = multi.add(ProgressBar::new(iterations as u64));
            bar.set_style(style("{prefix} [{bar:40}] {pos}/{len} {msg}"));
            bar.set_prefix(format!("chain {}", chain + 1));
            bar
        })
        .collect();
    (multi, bars)
}
