//! Progress bars on stderr, only when stderr is a terminal and `--quiet` is not given.
//!
//! Every sampler and ensemble reports its iterations as the driver's one progress type,
//! [`Progress`]; [`UnitBars`] is the one place that renders it (a bar per chain or member, its
//! phase, and the loss where there is one).

use bdl_infer::driver::Progress;
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

/// One bar per unit (chain or ensemble member) under one multi-bar, fed by [`Progress`].
pub struct UnitBars {
    _multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl UnitBars {
    /// Bars for `units` units of `iterations` iterations each, named `label 1`, `label 2`…
    pub fn new(label: &str, units: usize, iterations: usize, show: bool) -> UnitBars {
        let multi = MultiProgress::with_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let bars = (0..units)
            .map(|unit| {
                let bar = multi.add(ProgressBar::new(iterations as u64));
                bar.set_style(style("{prefix} [{bar:40}] {pos}/{len} {msg}"));
                bar.set_prefix(format!("{label} {}", unit + 1));
                bar
            })
            .collect();
        UnitBars {
            _multi: multi,
            bars,
        }
    }

    /// Shows one finished iteration: the unit's position, and its phase and loss when the phase
    /// changes and every 50 iterations.
    pub fn update(&self, progress: &Progress) {
        let Some(bar) = self.bars.get(progress.unit) else {
            return;
        };
        bar.set_position(progress.iteration as u64 + 1);
        let label = progress.phase.label();
        if progress.iteration.is_multiple_of(50) || !bar.message().starts_with(label) {
            bar.set_message(match progress.loss {
                Some(loss) => format!("{label} loss {loss:.3}"),
                None => label.to_string(),
            });
        }
    }

    /// Clears the bars once the run has ended.
    pub fn finish(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
    }
}
