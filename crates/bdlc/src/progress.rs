//! Progress bars on stderr, only when stderr is a terminal and `--quiet` is not given.
//!
//! Every sampler and ensemble reports its iterations as the driver's one progress type,
//! [`Progress`]; [`UnitBars`] is the one place that renders it (a bar per chain or member, its
//! phase, and the loss where there is one).
//!
//! NUTS and HMC get one bar per chain that restarts at the end of warm-up, so that each phase has
//! its own ETA (warm-up transitions are usually slower than sampling ones, and an ETA averaged over
//! both would be wrong in both), with the chain's divergences counted live.

use bdl_infer::driver::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The bars of NUTS or HMC chains: one per chain, warm-up and sampling each with their own ETA,
/// and the divergences of each chain so far.
pub struct SamplerBars {
    /// Keeps the bars drawn together; dropped with them.
    _multi: MultiProgress,
    bars: Vec<ProgressBar>,
    divergences: Vec<AtomicUsize>,
    warmup: usize,
    samples: usize,
}

impl SamplerBars {
    /// Bars for `chains` chains of `warmup` warm-up and `samples` sampling iterations.
    pub fn new(chains: usize, warmup: usize, samples: usize, show: bool) -> SamplerBars {
        let multi = MultiProgress::with_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let bars: Vec<ProgressBar> = (0..chains)
            .map(|chain| {
                let bar = multi.add(ProgressBar::new(warmup.max(1) as u64));
                bar.set_prefix(format!("chain {}", chain + 1));
                bar
            })
            .collect();
        for bar in &bars {
            bar.set_style(style(
                "{prefix} {msg:<21} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
            ));
            if warmup == 0 {
                bar.set_length(samples as u64);
            }
            bar.set_message(phase_message(warmup > 0, 0));
        }
        SamplerBars {
            _multi: multi,
            bars,
            divergences: (0..chains).map(|_| AtomicUsize::new(0)).collect(),
            warmup,
            samples,
        }
    }

    /// Shows one iteration reported by the sampler: its phase, its index within the phase and
    /// whether its transition diverged.
    pub fn update(&self, progress: &Progress) {
        let warmup = progress.phase == bdl_infer::driver::Phase::Warmup;
        let iteration = if warmup {
            progress.iteration
        } else {
            progress.iteration.saturating_sub(self.warmup)
        };
        self.transition(progress.unit, warmup, iteration, progress.divergent);
    }

    /// Records one transition of `chain`: iteration `iteration` (counted from 0 within its
    /// phase) of warm-up or of sampling, and whether it diverged.
    pub fn transition(&self, chain: usize, warmup: bool, iteration: usize, divergent: bool) {
        let (Some(bar), Some(count)) = (self.bars.get(chain), self.divergences.get(chain)) else {
            return;
        };
        let divergences = if divergent {
            count.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            count.load(Ordering::Relaxed)
        };
        if !warmup && iteration == 0 && self.warmup > 0 {
            // The sampling phase starts afresh: a new length, and an ETA of its own.
            bar.set_length(self.samples as u64);
            bar.reset();
            bar.set_message(phase_message(false, divergences));
        } else if divergent || iteration.is_multiple_of(50) {
            bar.set_message(phase_message(warmup, divergences));
        }
        bar.set_position(iteration as u64 + 1);
    }

    /// The divergences of each chain so far, warm-up included.
    #[cfg(test)]
    fn divergences(&self) -> Vec<usize> {
        self.divergences
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    /// Removes the bars from the terminal.
    pub fn finish(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
    }
}

/// The phase and divergence count shown before a chain's bar, e.g. `sampling, 3 divergent`.
fn phase_message(warmup: bool, divergences: usize) -> String {
    let phase = if warmup { "warm-up" } else { "sampling" };
    match divergences {
        0 => phase.to_string(),
        1 => format!("{phase}, 1 divergent"),
        n => format!("{phase}, {n} divergent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergences_are_counted_per_chain_and_phases_restart() {
        let bars = SamplerBars::new(2, 3, 5, false);
        bars.transition(0, true, 0, true);
        bars.transition(0, true, 1, false);
        bars.transition(1, true, 0, false);
        bars.transition(0, false, 0, true);
        assert_eq!(bars.divergences(), vec![2, 0]);
        // The sampling phase has its own length.
        assert_eq!(bars.bars[0].length(), Some(5));
        assert_eq!(bars.bars[0].position(), 1);
        assert_eq!(bars.bars[1].length(), Some(3));
        assert_eq!(phase_message(false, 2), "sampling, 2 divergent");
        assert_eq!(phase_message(true, 0), "warm-up");
    }
}
