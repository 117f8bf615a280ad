//! SVG figures drawn with plotters: posterior densities and histograms per site, trace and rank
//! plots per chain, pair plots, the NUTS energy plot, the SVI loss curve on a logarithmic axis,
//! posterior-predictive bands for one-dimensional regressions, and reliability diagrams for
//! classifiers. Every figure has a title, axis descriptions naming the quantity shown (with units
//! where they are known: energies and losses in nats), and a legend for its chains or series.
//!
//! Every function returns the SVG document as a string; the caller decides where it goes. The
//! SVG backend needs no system libraries or fonts (text is left to the viewer's renderer).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The palette for chains and series: colour-blind-safe (Okabe–Ito).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

/// The colour of series `index`.
fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// One small panel: a title and the draws of one scalar quantity, one vector per chain.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Shown above the panel, e.g. `theta[3]`.
    pub title: String,
    /// The draws, one vector per chain (a single vector for non-MCMC methods).
    pub chains: Vec<Vec<f64>>,
}

/// What a posterior-predictive band figure shows.
#[derive(Clone, Debug, Default)]
pub struct PredictiveBand {
    /// The figure's title.
    pub title: String,
    /// The input of each prediction (need not be sorted).
    pub x: Vec<f64>,
    /// The predictive mean at each input.
    pub mean: Vec<f64>,
    /// The lower end of the band (e.g. the 5% quantile).
    pub lower: Vec<f64>,
    /// The upper end of the band (e.g. the 95% quantile).
    pub upper: Vec<f64>,
    /// Observed data points drawn over the band.
    pub observed: Vec<(f64, f64)>,
    /// The band's name in the legend, e.g. `90% interval`.
    pub band_label: String,
    /// The horizontal axis's name (the input); `x` when empty.
    pub x_label: String,
    /// The vertical axis's name (the observed quantity); `y` when empty.
    pub y_label: String,
}

/// Why a figure could not be drawn.
#[derive(Debug)]
pub struct PlotError(pub String);

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        PlotError(format!("cannot draw the figure: {error}"))
    }
}

const PANEL_WIDTH: u32 = 360;
const PANEL_HEIGHT: u32 = 240;
const COLUMNS: usize = 3;

/// Splits a canvas into a grid with room for `count` panels.
fn grid_size(count: usize) -> (usize, usize, (u32, u32)) {
    let columns = count.clamp(1, COLUMNS);
    let rows = count.div_ceil(columns).max(1);
    let size = (PANEL_WIDTH * columns as u32, PANEL_HEIGHT * rows as u32);
    (rows, columns, size)
}

/// The finite values of all chains.
fn finite_values(chains: &[Vec<f64>]) -> Vec<f64> {
    chains
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect()
}

/// A range that contains every value, padded so that flat data still gets a visible axis.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = if high > low {
        0.05 * (high - low)
    } else {
        0.5 * low.abs().max(1.0)
    };
    (low - pad, high + pad)
}

/// A Gaussian kernel density estimate on `points` grid points, with Silverman's bandwidth.
pub fn kernel_density(values: &[f64], low: f64, high: f64, points: usize) -> Vec<(f64, f64)> {
    let n = values.len() as f64;
    if values.is_empty() || points < 2 {
        return Vec::new();
    }
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| sorted[((n - 1.0) * q).round() as usize];
    let spread = variance
        .sqrt()
        .min((quantile(0.75) - quantile(0.25)) / 1.34);
    let spread = if spread > 0.0 {
        spread
    } else {
        variance.sqrt().max(1e-3 * (high - low))
    };
    let bandwidth = (0.9 * spread * n.powf(-0.2)).max(1e-12);
    let normaliser = 1.0 / (n * bandwidth * (2.0 * std::f64::consts::PI).sqrt());
    (0..points)
        .map(|i| {
            let x = low + (high - low) * i as f64 / (points - 1) as f64;
            let density: f64 = values
                .iter()
                .map(|v| {
                    let z = (x - v) / bandwidth;
                    (-0.5 * z * z).exp()
                })
                .sum();
            (x, density * normaliser)
        })
        .collect()
}

/// A tick label: whole numbers without a decimal point, others with at most four decimals and
/// no trailing zeros, very large or small ones in scientific notation.
fn tick(value: &f64) -> String {
    let value = *value;
    if value == 0.0 {
        return "0".to_string();
    }
    if value.abs() >= 1e5 || value.abs() < 1e-3 {
        return format!("{value:.1e}");
    }
    if (value - value.round()).abs() < 1e-9 * value.abs().max(1.0) {
        return format!("{value:.0}");
    }
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The height of a figure's header: its title and, where there are several chains, their legend.
const HEADER_HEIGHT: u32 = 54;
/// The font of a figure's title.
const TITLE_FONT: (&str, u32) = ("sans-serif", 18);
/// The font of panel captions.
const CAPTION_FONT: (&str, u32) = ("sans-serif", 15);
/// The font of axis descriptions.
const AXIS_FONT: (&str, u32) = ("sans-serif", 13);

/// A legend entry of a figure's header: a swatch and its text.
struct LegendEntry {
    text: String,
    colour: RGBColor,
    /// A filled box rather than a line (for bars and bands).
    filled: bool,
}

/// The legend entries naming each chain by its colour (none for a single chain).
fn chain_legend(n_chains: usize) -> Vec<LegendEntry> {
    if n_chains < 2 {
        return Vec::new();
    }
    (0..n_chains)
        .map(|chain| LegendEntry {
            text: format!("chain {}", chain + 1),
            colour: colour(chain),
            filled: false,
        })
        .collect()
}

/// Draws a figure's title and its legend row into `header`.
fn draw_header(
    header: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    legend: &[LegendEntry],
) -> Result<(), PlotError> {
    let (width, _) = header.dim_in_pixel();
    let title_style = TextStyle::from(TITLE_FONT.into_font())
        .pos(Pos::new(HPos::Center, VPos::Top))
        .color(&BLACK);
    header.draw(&Text::new(
        title.to_string(),
        (width as i32 / 2, 6),
        title_style,
    ))?;
    let text_style = TextStyle::from(AXIS_FONT.into_font())
        .pos(Pos::new(HPos::Left, VPos::Center))
        .color(&BLACK);
    // Each entry takes a swatch and about 7 pixels per character.
    let widths: Vec<i32> = legend
        .iter()
        .map(|entry| 28 + 7 * entry.text.chars().count() as i32 + 16)
        .collect();
    let total: i32 = widths.iter().sum();
    let mut x = (width as i32 - total).max(0) / 2;
    let y = 38;
    for (entry, entry_width) in legend.iter().zip(widths) {
        if entry.filled {
            header.draw(&Rectangle::new(
                [(x, y - 6), (x + 20, y + 6)],
                entry.colour.mix(0.45).filled(),
            ))?;
        } else {
            header.draw(&PathElement::new(
                vec![(x, y), (x + 20, y)],
                entry.colour.stroke_width(3),
            ))?;
        }
        header.draw(&Text::new(
            entry.text.clone(),
            (x + 26, y),
            text_style.clone(),
        ))?;
        x += entry_width;
    }
    Ok(())
}

/// Draws `panels` on a grid under a header (title and legend), one call of `draw` per panel.
fn draw_grid(
    title: &str,
    legend: &[LegendEntry],
    panels: &[Panel],
    draw: impl Fn(&DrawingArea<SVGBackend, Shift>, &Panel) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let (rows, columns, (width, height)) = grid_size(panels.len());
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width, height + HEADER_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&header, title, legend)?;
        let areas = body.split_evenly((rows, columns));
        for (area, panel) in areas.iter().zip(panels) {
            draw(area, panel)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The number of chains among the panels.
fn n_chains(panels: &[Panel]) -> usize {
    panels.iter().map(|p| p.chains.len()).max().unwrap_or(0)
}

/// Posterior densities: one panel per quantity, one curve per chain.
pub fn densities(title: &str, panels: &[Panel]) -> Result<String, PlotError> {
    draw_grid(
        title,
        &chain_legend(n_chains(panels)),
        panels,
        |area, panel| {
            let (low, high) = padded_range(finite_values(&panel.chains).into_iter());
            let curves: Vec<Vec<(f64, f64)>> = panel
                .chains
                .iter()
                .map(|chain| {
                    let finite: Vec<f64> =
                        chain.iter().copied().filter(|v| v.is_finite()).collect();
                    kernel_density(&finite, low, high, 200)
                })
                .collect();
            let top = curves
                .iter()
                .flatten()
                .map(|(_, d)| *d)
                .fold(0.0_f64, f64::max)
                .max(1e-12);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, CAPTION_FONT)
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(low..high, 0.0..top * 1.05)?;
            chart
                .configure_mesh()
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .light_line_style(WHITE)
                .y_labels(5)
                .x_labels(5)
                .x_desc(&panel.title)
                .y_desc("density")
                .axis_desc_style(AXIS_FONT)
                .draw()?;
            for (index, curve) in curves.into_iter().enumerate() {
                chart.draw_series(LineSeries::new(curve, colour(index).stroke_width(2)))?;
            }
            Ok(())
        },
    )
}

/// Trace plots: one panel per quantity, one line per chain over the iteration.
pub fn traces(title: &str, panels: &[Panel]) -> Result<String, PlotError> {
    draw_grid(
        title,
        &chain_legend(n_chains(panels)),
        panels,
        |area, panel| {
            let (low, high) = padded_range(finite_values(&panel.chains).into_iter());
            let length = panel.chains.iter().map(Vec::len).max().unwrap_or(0).max(2);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, CAPTION_FONT)
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..(length - 1) as f64, low..high)?;
            chart
                .configure_mesh()
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .light_line_style(WHITE)
                .y_labels(5)
                .x_labels(5)
                .x_desc("iteration (after warm-up)")
                .y_desc(&panel.title)
                .axis_desc_style(AXIS_FONT)
                .draw()?;
            for (index, chain) in panel.chains.iter().enumerate() {
                let points = chain
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| (i as f64, *v));
                chart.draw_series(LineSeries::new(points, colour(index).mix(0.8)))?;
            }
            Ok(())
        },
    )
}

/// A default number of histogram bins for `n` values: the square-root rule, kept within 10–50.
pub fn default_bins(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).clamp(10, 50)
}

/// Counts of `values` in `bins` equal bins over `[low, high]`; values outside are left out.
pub fn bin_counts(values: &[f64], low: f64, high: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins.max(1)];
    let width = (high - low) / bins.max(1) as f64;
    for &value in values {
        if !(low..=high).contains(&value) || width <= 0.0 {
            continue;
        }
        let bin = (((value - low) / width) as usize).min(counts.len() - 1);
        counts[bin] += 1;
    }
    counts
}

/// Histograms of the draws, all chains pooled, scaled as densities, with a kernel density
/// estimate over them.
pub fn histograms(title: &str, panels: &[Panel], bins: Option<usize>) -> Result<String, PlotError> {
    let legend = [
        LegendEntry {
            text: "histogram (all chains)".to_string(),
            colour: colour(0),
            filled: true,
        },
        LegendEntry {
            text: "kernel density estimate".to_string(),
            colour: BLACK,
            filled: false,
        },
    ];
    draw_grid(title, &legend, panels, |area, panel| {
        let values = finite_values(&panel.chains);
        let (low, high) = padded_range(values.iter().copied());
        let n_bins = bins.unwrap_or_else(|| default_bins(values.len()));
        let counts = bin_counts(&values, low, high, n_bins);
        let width = (high - low) / n_bins as f64;
        let scale = 1.0 / (values.len().max(1) as f64 * width);
        let curve = kernel_density(&values, low, high, 200);
        let top = counts
            .iter()
            .map(|&c| c as f64 * scale)
            .chain(curve.iter().map(|(_, d)| *d))
            .fold(0.0_f64, f64::max)
            .max(1e-12);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, CAPTION_FONT)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(low..high, 0.0..top * 1.05)?;
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE)
            .y_labels(5)
            .x_labels(5)
            .x_desc(&panel.title)
            .y_desc("density")
            .axis_desc_style(AXIS_FONT)
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(bin, &count)| {
            let left = low + bin as f64 * width;
            Rectangle::new(
                [(left, 0.0), (left + width, count as f64 * scale)],
                colour(0).mix(0.45).filled(),
            )
        }))?;
        chart.draw_series(LineSeries::new(curve, BLACK.stroke_width(2)))?;
        Ok(())
    })
}

/// The rank of each value among all of them (0-based; ties keep their order).
fn ranks(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut rank = vec![0; values.len()];
    for (position, &index) in order.iter().enumerate() {
        rank[index] = position;
    }
    rank
}

/// Rank histograms per chain (Vehtari et al. 2021): the draws of all chains are ranked together,
/// and each chain's ranks are counted in `bins` equal bins. Returns one count vector per chain.
pub fn rank_counts(chains: &[Vec<f64>], bins: usize) -> Vec<Vec<usize>> {
    let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
    let rank = ranks(&pooled);
    let total = pooled.len().max(1);
    let mut counts = vec![vec![0; bins.max(1)]; chains.len()];
    let mut offset = 0;
    for (chain, draws) in chains.iter().enumerate() {
        for position in 0..draws.len() {
            let bin = (rank[offset + position] * bins.max(1) / total).min(bins.max(1) - 1);
            counts[chain][bin] += 1;
        }
        offset += draws.len();
    }
    counts
}

/// Rank plots: per quantity, each chain's histogram of ranks among all chains' draws, drawn as a
/// step line, with the count expected when the chains mix (uniform ranks) and its 95% interval.
pub fn rank_plots(title: &str, panels: &[Panel], bins: Option<usize>) -> Result<String, PlotError> {
    let mut legend = chain_legend(n_chains(panels));
    legend.push(LegendEntry {
        text: "95% interval of uniform ranks".to_string(),
        colour: RGBColor(120, 120, 120),
        filled: true,
    });
    draw_grid(title, &legend, panels, |area, panel| {
        let total: usize = panel.chains.iter().map(Vec::len).sum();
        let n_bins = bins.unwrap_or(20).clamp(2, total.max(2));
        let counts = rank_counts(&panel.chains, n_bins);
        // Under mixing, a chain's count in a bin is Binomial(draws in the chain, 1 / bins).
        let longest = panel.chains.iter().map(Vec::len).max().unwrap_or(0) as f64;
        let p = 1.0 / n_bins as f64;
        let expected = longest * p;
        let spread = 1.96 * (longest * p * (1.0 - p)).sqrt();
        let top = counts
            .iter()
            .flatten()
            .map(|&c| c as f64)
            .fold(expected + spread, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, CAPTION_FONT)
            .margin(8)
            .margin_right(20)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..total.max(1) as f64, 0.0..top.max(1.0))?;
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE)
            .y_labels(5)
            .x_labels(5)
            .x_desc(format!("rank of {} (all chains)", panel.title))
            .y_desc("draws per bin")
            .axis_desc_style(AXIS_FONT)
            .draw()?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (0.0, (expected - spread).max(0.0)),
                (total as f64, expected + spread),
            ],
            RGBColor(120, 120, 120).mix(0.2).filled(),
        )))?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, expected), (total as f64, expected)],
            6,
            4,
            RGBColor(80, 80, 80).into(),
        ))?;
        let bin_width = total as f64 / n_bins as f64;
        for (chain, chain_counts) in counts.iter().enumerate() {
            let mut steps = Vec::with_capacity(2 * n_bins);
            for (bin, &count) in chain_counts.iter().enumerate() {
                steps.push((bin as f64 * bin_width, count as f64));
                steps.push(((bin + 1) as f64 * bin_width, count as f64));
            }
            chart.draw_series(LineSeries::new(steps, colour(chain).stroke_width(2)))?;
        }
        Ok(())
    })
}

/// What a pair plot shows: the quantities and, per draw, whether its transition diverged.
#[derive(Clone, Debug, Default)]
pub struct PairPlot {
    /// The figure's title.
    pub title: String,
    /// The quantities (each panel's chains are pooled).
    pub panels: Vec<Panel>,
    /// Whether each pooled draw diverged; empty when unknown.
    pub divergent: Vec<bool>,
}

/// The side of one cell of a pair plot.
const PAIR_CELL: u32 = 210;

/// A pair plot: the pooled draws of every two quantities as a scatter plot below the diagonal
/// (divergent transitions marked), each quantity's histogram on the diagonal.
pub fn pair_plot(pairs: &PairPlot, bins: Option<usize>) -> Result<String, PlotError> {
    let k = pairs.panels.len().max(1);
    let pooled: Vec<Vec<f64>> = pairs
        .panels
        .iter()
        .map(|p| p.chains.iter().flatten().copied().collect())
        .collect();
    let ranges: Vec<(f64, f64)> = pooled
        .iter()
        .map(|values| padded_range(values.iter().copied()))
        .collect();
    let n_divergent = pairs.divergent.iter().filter(|d| **d).count();
    let mut legend = vec![LegendEntry {
        text: "draw".to_string(),
        colour: colour(0),
        filled: true,
    }];
    if !pairs.divergent.is_empty() {
        legend.push(LegendEntry {
            text: format!("divergent transition ({n_divergent})"),
            colour: RGBColor(213, 0, 0),
            filled: true,
        });
    }
    // Scatter plots thin the draws to at most 1000 points so that the SVG stays small.
    let n_draws = pooled.first().map_or(0, Vec::len);
    let stride = n_draws.div_ceil(1000).max(1);
    let size = PAIR_CELL * k as u32 + 40;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (size, size + HEADER_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&header, &pairs.title, &legend)?;
        let areas = body.split_evenly((k, k));
        for row in 0..k.min(pairs.panels.len()) {
            for column in 0..=row {
                let area = &areas[row * k + column];
                let x_desc = if row + 1 == k {
                    pairs.panels[column].title.clone()
                } else {
                    String::new()
                };
                let (x_low, x_high) = ranges[column];
                if row == column {
                    let values = &pooled[column];
                    let n_bins = bins.unwrap_or_else(|| default_bins(values.len()));
                    let counts = bin_counts(values, x_low, x_high, n_bins);
                    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
                    let width = (x_high - x_low) / n_bins as f64;
                    let mut chart = ChartBuilder::on(area)
                        .margin(6)
                        .x_label_area_size(if row + 1 == k { 36 } else { 8 })
                        .y_label_area_size(if column == 0 { 56 } else { 8 })
                        .build_cartesian_2d(x_low..x_high, 0.0..top * 1.05)?;
                    let mut mesh = chart.configure_mesh();
                    mesh.light_line_style(WHITE)
                        .x_label_formatter(&tick)
                        .y_label_formatter(&tick)
                        .x_labels(5)
                        .y_labels(5)
                        .x_desc(x_desc)
                        .axis_desc_style(AXIS_FONT);
                    if column == 0 {
                        mesh.y_desc(format!("{} (count)", pairs.panels[row].title));
                    } else {
                        mesh.disable_y_axis();
                    }
                    if row + 1 != k {
                        mesh.disable_x_axis();
                    }
                    mesh.draw()?;
                    chart.draw_series(counts.iter().enumerate().map(|(bin, &count)| {
                        let left = x_low + bin as f64 * width;
                        Rectangle::new(
                            [(left, 0.0), (left + width, count as f64)],
                            colour(0).mix(0.45).filled(),
                        )
                    }))?;
                } else {
                    let (y_low, y_high) = ranges[row];
                    let mut chart = ChartBuilder::on(area)
                        .margin(6)
                        .x_label_area_size(if row + 1 == k { 36 } else { 8 })
                        .y_label_area_size(if column == 0 { 56 } else { 8 })
                        .build_cartesian_2d(x_low..x_high, y_low..y_high)?;
                    let mut mesh = chart.configure_mesh();
                    mesh.light_line_style(WHITE)
                        .x_label_formatter(&tick)
                        .y_label_formatter(&tick)
                        .x_labels(5)
                        .y_labels(5)
                        .x_desc(x_desc)
                        .axis_desc_style(AXIS_FONT);
                    if column == 0 {
                        mesh.y_desc(pairs.panels[row].title.clone());
                    } else {
                        mesh.disable_y_axis();
                    }
                    if row + 1 != k {
                        mesh.disable_x_axis();
                    }
                    mesh.draw()?;
                    let (xs, ys) = (&pooled[column], &pooled[row]);
                    let points = (0..xs.len().min(ys.len()))
                        .step_by(stride)
                        .filter(|&i| !pairs.divergent.get(i).copied().unwrap_or(false))
                        .filter(|&i| xs[i].is_finite() && ys[i].is_finite());
                    chart
                        .draw_series(points.map(|i| {
                            Circle::new((xs[i], ys[i]), 2, colour(0).mix(0.35).filled())
                        }))?;
                    let divergent = (0..xs.len().min(ys.len()))
                        .filter(|&i| pairs.divergent.get(i).copied().unwrap_or(false))
                        .filter(|&i| xs[i].is_finite() && ys[i].is_finite());
                    chart
                        .draw_series(divergent.map(|i| {
                            Circle::new((xs[i], ys[i]), 3, RGBColor(213, 0, 0).filled())
                        }))?;
                }
            }
        }
        root.present()?;
    }
    Ok(svg)
}

/// The energy of each chain's draws (CmdStan's `energy__`), for the NUTS energy plot.
#[derive(Clone, Debug, Default)]
pub struct EnergyPlot {
    /// The figure's title.
    pub title: String,
    /// The Hamiltonian at each draw, one vector per chain.
    pub chains: Vec<Vec<f64>>,
}

/// The estimated Bayesian fraction of missing information of one chain's energies (Betancourt
/// 2016): Σ (E_t − E_{t−1})² / Σ (E_t − Ē)². Values below 0.3 point at a heavy-tailed energy
/// distribution that the momentum resampling explores slowly.
pub fn e_bfmi(energies: &[f64]) -> f64 {
    let n = energies.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = energies.iter().sum::<f64>() / n as f64;
    let transitions: f64 = energies.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum();
    let spread: f64 = energies.iter().map(|e| (e - mean).powi(2)).sum();
    transitions / spread
}

/// The NUTS energy plot (Betancourt 2016): the histogram of the marginal energy (centred) over
/// that of the energy transitions between successive draws. When the transition histogram is much
/// narrower than the marginal one, momentum resampling cannot move through the energy levels.
pub fn energy_plot(energy: &EnergyPlot, bins: Option<usize>) -> Result<String, PlotError> {
    let all: Vec<f64> = energy.chains.iter().flatten().copied().collect();
    let mean = all.iter().sum::<f64>() / all.len().max(1) as f64;
    let marginal: Vec<f64> = all.iter().map(|e| e - mean).collect();
    let transitions: Vec<f64> = energy
        .chains
        .iter()
        .flat_map(|chain| chain.windows(2).map(|w| w[1] - w[0]))
        .collect();
    let transition_mean = transitions.iter().sum::<f64>() / transitions.len().max(1) as f64;
    let transitions: Vec<f64> = transitions.iter().map(|d| d - transition_mean).collect();
    let (low, high) = padded_range(marginal.iter().chain(&transitions).copied());
    let n_bins = bins.unwrap_or_else(|| default_bins(all.len()));
    let width = (high - low) / n_bins as f64;
    let density = |values: &[f64]| -> Vec<f64> {
        let scale = 1.0 / (values.len().max(1) as f64 * width);
        bin_counts(values, low, high, n_bins)
            .into_iter()
            .map(|c| c as f64 * scale)
            .collect()
    };
    let (marginal_density, transition_density) = (density(&marginal), density(&transitions));
    let top = marginal_density
        .iter()
        .chain(&transition_density)
        .copied()
        .fold(0.0_f64, f64::max)
        .max(1e-12);
    let bfmi: Vec<String> = energy
        .chains
        .iter()
        .map(|chain| format!("{:.2}", e_bfmi(chain)))
        .collect();
    let legend = [
        LegendEntry {
            text: "marginal energy E − mean(E)".to_string(),
            colour: colour(0),
            filled: true,
        },
        LegendEntry {
            text: "energy transition ΔE − mean(ΔE)".to_string(),
            colour: colour(1),
            filled: true,
        },
    ];
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (720, 420 + HEADER_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&header, &energy.title, &legend)?;
        let mut chart = ChartBuilder::on(&body)
            .caption(
                format!(
                    "E-BFMI per chain: {} (below 0.3 is a problem)",
                    bfmi.join(", ")
                ),
                CAPTION_FONT,
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(low..high, 0.0..top * 1.05)?;
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE)
            .x_desc("energy, centred (nats)")
            .y_desc("density")
            .axis_desc_style(AXIS_FONT)
            .draw()?;
        for (series, values) in [marginal_density, transition_density].iter().enumerate() {
            chart.draw_series(values.iter().enumerate().map(|(bin, &d)| {
                let left = low + bin as f64 * width;
                Rectangle::new(
                    [(left, 0.0), (left + width, d)],
                    colour(series).mix(0.45).filled(),
                )
            }))?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The running median of `values` over a centred window of `window` values, evaluated at about
/// `points` evenly spaced indices: `(index, median)` pairs.
pub fn running_median(values: &[(f64, f64)], window: usize, points: usize) -> Vec<(f64, f64)> {
    if values.is_empty() {
        return Vec::new();
    }
    let half = window / 2;
    let stride = values.len().div_ceil(points.max(1)).max(1);
    (0..values.len())
        .step_by(stride)
        .chain(std::iter::once(values.len() - 1))
        .map(|centre| {
            let start = centre.saturating_sub(half);
            let end = (centre + half + 1).min(values.len());
            let mut window: Vec<f64> = values[start..end].iter().map(|(_, v)| *v).collect();
            window.sort_by(f64::total_cmp);
            (values[centre].0, window[window.len() / 2])
        })
        .collect()
}

/// The optimisation's loss (negative ELBO) against the step on a logarithmic axis, with a running
/// median over 2% of the steps to show the trend. A loss that is not positive throughout is
/// shifted by a constant (named on the axis) so that it can be shown on a logarithmic axis.
pub fn loss_curve(title: &str, losses: &[f64]) -> Result<String, PlotError> {
    let finite: Vec<(f64, f64)> = losses
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (i as f64 + 1.0, *v))
        .collect();
    let minimum = finite.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let maximum = finite
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    // Shift so that the smallest value sits a tenth of the range above 0 (at least 1).
    let shift = if minimum.is_finite() && minimum <= 0.0 {
        -minimum + (0.1 * (maximum - minimum)).max(1.0)
    } else {
        0.0
    };
    let shifted: Vec<(f64, f64)> = finite.iter().map(|(i, v)| (*i, v + shift)).collect();
    let window = (shifted.len() / 50).max(5) | 1;
    let smooth = running_median(&shifted, window, 400);
    // The axis is linear in log10 of the (shifted) loss, its ticks labelled with the loss itself,
    // so that labels appear across the whole range and not only at powers of ten.
    let shifted: Vec<(f64, f64)> = shifted.iter().map(|(i, v)| (*i, v.log10())).collect();
    let smooth: Vec<(f64, f64)> = smooth.iter().map(|(i, v)| (*i, v.log10())).collect();
    let (low, high) = if shifted.is_empty() {
        (0.0, 1.0)
    } else {
        (
            ((minimum + shift) / 1.2).log10(),
            ((maximum + shift) * 1.2)
                .max((minimum + shift) * 2.0)
                .log10(),
        )
    };
    let power_tick = |exponent: &f64| {
        let value = 10f64.powf(*exponent);
        let digits = 2 - value.abs().log10().floor() as i32;
        let rounded = if digits > 0 {
            let scale = 10f64.powi(digits);
            (value * scale).round() / scale
        } else {
            let scale = 10f64.powi(-digits);
            (value / scale).round() * scale
        };
        tick(&rounded)
    };
    let steps = losses.len().max(2) as f64;
    let y_desc = if shift > 0.0 {
        format!(
            "loss + {} (nats, log scale)",
            crate::output::display_number(shift)
        )
    } else {
        "loss (nats, log scale)".to_string()
    };
    let legend = [
        LegendEntry {
            text: "loss per step".to_string(),
            colour: colour(0),
            filled: false,
        },
        LegendEntry {
            text: format!("running median ({window} steps)"),
            colour: colour(1),
            filled: false,
        },
    ];
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (720, 400 + HEADER_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&header, title, &legend)?;
        let mut chart = ChartBuilder::on(&body)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(1.0..steps, low..high)?;
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&power_tick)
            .y_labels(12)
            .x_desc("optimisation step")
            .y_desc(y_desc)
            .axis_desc_style(AXIS_FONT)
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(LineSeries::new(
            shifted.iter().copied(),
            colour(0).mix(0.35),
        ))?;
        chart.draw_series(LineSeries::new(smooth, colour(1).stroke_width(2)))?;
        root.present()?;
    }
    Ok(svg)
}

/// One bin of a reliability diagram: the binning of `bdlc predict --metrics`.
pub type ReliabilityBin = bdl_infer::diagnostics::metrics::CalibrationBin;

/// What a reliability diagram shows.
#[derive(Clone, Debug, Default)]
pub struct Reliability {
    /// The figure's title.
    pub title: String,
    /// What the horizontal axis measures, e.g. `predicted probability of y = 1`.
    pub x_label: String,
    /// What the vertical axis measures, e.g. `observed frequency of y = 1`.
    pub y_label: String,
    /// The bins, in order.
    pub bins: Vec<ReliabilityBin>,
    /// The expected calibration error: Σ_b (n_b / n) |frequency_b − confidence_b|.
    pub calibration_error: f64,
    /// The number of bins, empty ones included.
    pub n_bins: usize,
}

impl Reliability {
    /// Bins `predictions` (a predicted probability and whether the event happened) into `bins`
    /// equal-width bins over [0, 1], as `bdlc predict --metrics` does; empty bins are left out.
    pub fn from_predictions(predictions: &[(f64, bool)], bins: usize) -> Reliability {
        let calibration = bdl_infer::diagnostics::metrics::calibration(predictions, bins);
        Reliability {
            bins: calibration.bins,
            calibration_error: calibration.expected_calibration_error,
            n_bins: calibration.n_bins,
            ..Reliability::default()
        }
    }
}

/// A reliability diagram: the observed frequency of the event in each bin of predicted
/// probability against the bin's mean prediction, with the diagonal of perfect calibration, and
/// below it the number of predictions per bin.
pub fn reliability_diagram(diagram: &Reliability) -> Result<String, PlotError> {
    let legend = [
        LegendEntry {
            text: "observed frequency per bin".to_string(),
            colour: colour(0),
            filled: true,
        },
        LegendEntry {
            text: "perfect calibration".to_string(),
            colour: RGBColor(80, 80, 80),
            filled: false,
        },
    ];
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (560, 640 + HEADER_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, body) = root.split_vertically(HEADER_HEIGHT);
        draw_header(&header, &diagram.title, &legend)?;
        let (upper, lower) = body.split_vertically(470);
        let mut chart = ChartBuilder::on(&upper)
            .caption(
                format!(
                    "expected calibration error {:.3} ({} bins, {} with predictions)",
                    diagram.calibration_error,
                    diagram.n_bins,
                    diagram.bins.len()
                ),
                CAPTION_FONT,
            )
            .margin(12)
            .x_label_area_size(24)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE)
            .y_desc(&diagram.y_label)
            .axis_desc_style(AXIS_FONT)
            .draw()?;
        chart.draw_series(diagram.bins.iter().map(|bin| {
            Rectangle::new(
                [(bin.lower, 0.0), (bin.upper, bin.frequency)],
                colour(0).mix(0.45).filled(),
            )
        }))?;
        chart.draw_series(
            diagram
                .bins
                .iter()
                .map(|bin| Circle::new((bin.confidence, bin.frequency), 4, colour(0).filled())),
        )?;
        chart.draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            6,
            4,
            RGBColor(80, 80, 80).stroke_width(2),
        ))?;
        let most = diagram
            .bins
            .iter()
            .map(|b| b.count)
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut counts = ChartBuilder::on(&lower)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..1.0, 0.0..most * 1.1)?;
        counts
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .light_line_style(WHITE)
            .y_labels(3)
            .x_desc(&diagram.x_label)
            .y_desc("predictions")
            .axis_desc_style(AXIS_FONT)
            .draw()?;
        counts.draw_series(diagram.bins.iter().map(|bin| {
            Rectangle::new(
                [(bin.lower, 0.0), (bin.upper, bin.count as f64)],
                RGBColor(120, 120, 120).mix(0.5).filled(),
            )
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// A posterior-predictive band over a one-dimensional input: mean line, shaded band, data.
pub fn predictive_band(band: &PredictiveBand) -> Result<String, PlotError> {
    let mut order: Vec<usize> = (0..band.x.len()).collect();
    order.sort_by(|&a, &b| band.x[a].total_cmp(&band.x[b]));
    let (x_low, x_high) = padded_range(
        band.x
            .iter()
            .chain(band.observed.iter().map(|p| &p.0))
            .copied(),
    );
    let (y_low, y_high) = padded_range(
        band.lower
            .iter()
            .chain(&band.upper)
            .chain(band.observed.iter().map(|p| &p.1))
            .copied(),
    );
    // Head room above the data keeps the legend off the band and the points.
    let y_high = y_high + 0.3 * (y_high - y_low);
    let axis_name = |name: &str, fallback: &str| {
        if name.is_empty() {
            fallback.to_string()
        } else {
            name.to_string()
        }
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&band.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(x_low..x_high, y_low..y_high)?;
        chart
            .configure_mesh()
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc(axis_name(&band.x_label, "x"))
            .y_desc(axis_name(&band.y_label, "y"))
            .light_line_style(WHITE)
            .draw()?;
        let mut outline: Vec<(f64, f64)> =
            order.iter().map(|&i| (band.x[i], band.upper[i])).collect();
        outline.extend(order.iter().rev().map(|&i| (band.x[i], band.lower[i])));
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                colour(0).mix(0.25).filled(),
            )))?
            .label(band.band_label.as_str())
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], colour(0).mix(0.25).filled())
            });
        chart
            .draw_series(LineSeries::new(
                order.iter().map(|&i| (band.x[i], band.mean[i])),
                colour(0).stroke_width(2),
            ))?
            .label("predictive mean")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour(0)));
        chart
            .draw_series(
                band.observed
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 2, BLACK.mix(0.6).filled())),
            )?
            .label("data")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, BLACK.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_density_integrates_to_about_one() {
        let values: Vec<f64> = (0..1000)
            .map(|i| ((i as f64) * 0.6180339887).fract() * 2.0 - 1.0)
            .collect();
        let curve = kernel_density(&values, -3.0, 3.0, 601);
        let step = 6.0 / 600.0;
        let integral: f64 = curve.iter().map(|(_, d)| d * step).sum();
        assert!((integral - 1.0).abs() < 0.01, "integral {integral}");
    }

    #[test]
    fn figures_are_svg_documents() {
        let panel = Panel {
            title: "mu".into(),
            chains: vec![vec![0.1, 0.5, -0.2, 0.3], vec![0.0, 0.2, 0.4, -0.1]],
        };
        for svg in [
            densities("posterior densities", std::slice::from_ref(&panel)).unwrap(),
            traces("traces", std::slice::from_ref(&panel)).unwrap(),
            histograms("histograms", std::slice::from_ref(&panel), Some(5)).unwrap(),
            rank_plots("ranks", std::slice::from_ref(&panel), Some(2)).unwrap(),
        ] {
            assert!(svg.starts_with("<svg"));
            assert!(svg.contains("mu"));
        }
        assert!(loss_curve("loss", &[5.0, 4.0, 3.5, f64::NAN, 3.4])
            .unwrap()
            .contains("running median"));
        // A negative loss is shifted onto the logarithmic axis, and the axis says by how much.
        assert!(loss_curve("loss", &[-5.0, -6.0, -7.0])
            .unwrap()
            .contains("loss + 8 (nats, log scale)"));
        let band = PredictiveBand {
            title: "sine".into(),
            x: vec![1.0, 0.0, 2.0],
            mean: vec![0.8, 0.0, 0.9],
            lower: vec![0.5, -0.3, 0.4],
            upper: vec![1.1, 0.3, 1.4],
            observed: vec![(0.5, 0.4)],
            band_label: "90% interval".into(),
            ..PredictiveBand::default()
        };
        assert!(predictive_band(&band).unwrap().contains("<polygon"));
    }

    #[test]
    fn empty_and_constant_draws_still_draw() {
        let panels = [
            Panel {
                title: "empty".into(),
                chains: vec![vec![]],
            },
            Panel {
                title: "flat".into(),
                chains: vec![vec![2.0; 10]],
            },
        ];
        assert!(densities("d", &panels).is_ok());
        assert!(traces("t", &panels).is_ok());
        assert!(histograms("h", &panels, None).is_ok());
        assert!(rank_plots("r", &panels, None).is_ok());
        assert!(loss_curve("l", &[]).is_ok());
        let pairs = PairPlot {
            title: "pairs".into(),
            panels: panels.to_vec(),
            divergent: Vec::new(),
        };
        assert!(pair_plot(&pairs, None).is_ok());
        assert!(energy_plot(&EnergyPlot::default(), None).is_ok());
        assert!(reliability_diagram(&Reliability::default()).is_ok());
    }

    #[test]
    fn rank_counts_of_mixed_chains_are_uniform_and_of_separated_chains_are_not() {
        // Two interleaved chains: every bin gets the same share of each chain's draws.
        let first: Vec<f64> = (0..100).map(|i| (2 * i) as f64).collect();
        let second: Vec<f64> = (0..100).map(|i| (2 * i + 1) as f64).collect();
        let counts = rank_counts(&[first.clone(), second.clone()], 10);
        assert!(counts.iter().flatten().all(|&c| c == 10), "{counts:?}");
        // Two chains that do not overlap: the first holds every low rank.
        let shifted: Vec<f64> = first.iter().map(|v| v + 1000.0).collect();
        let counts = rank_counts(&[second, shifted], 10);
        assert_eq!(counts[0], vec![20, 20, 20, 20, 20, 0, 0, 0, 0, 0]);
        assert_eq!(counts[1], vec![0, 0, 0, 0, 0, 20, 20, 20, 20, 20]);
    }

    #[test]
    fn e_bfmi_of_independent_and_of_sticky_energies() {
        // Alternating energies ±1 (mean 0): Σ ΔE² = (n − 1) · 4 and Σ (E − Ē)² = n.
        let alternating: Vec<f64> = (0..100)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!((e_bfmi(&alternating) - 4.0 * 99.0 / 100.0).abs() < 1e-12);
        // A slow ramp: transitions are tiny next to the spread.
        let ramp: Vec<f64> = (0..100).map(f64::from).collect();
        assert!(e_bfmi(&ramp) < 0.01);
    }

    #[test]
    fn reliability_bins_and_calibration_error() {
        // Bin [0.8, 1.0): predictions 0.9 twice, one hit; bin [0.0, 0.2): 0.1 twice, no hit.
        let predictions = [(0.9, true), (0.9, false), (0.1, false), (0.1, false)];
        let diagram = Reliability::from_predictions(&predictions, 5);
        assert_eq!(diagram.bins.len(), 2);
        assert_eq!(diagram.bins[0].count, 2);
        assert!((diagram.bins[0].confidence - 0.1).abs() < 1e-12);
        assert_eq!(diagram.bins[0].frequency, 0.0);
        assert!((diagram.bins[1].frequency - 0.5).abs() < 1e-12);
        // ECE = ½ |0 − 0.1| + ½ |0.5 − 0.9| = 0.25.
        assert!((diagram.calibration_error - 0.25).abs() < 1e-12);
        let svg = reliability_diagram(&Reliability {
            title: "calibration".into(),
            x_label: "predicted probability of y = 1".into(),
            y_label: "observed frequency of y = 1".into(),
            ..diagram
        })
        .unwrap();
        assert!(svg.contains("predicted probability of y = 1"));
        assert!(svg.contains("expected calibration error 0.250 (5 bins, 2 with predictions)"));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick(&4000.0), "4000");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&-2.5), "-2.5");
        assert_eq!(tick(&0.0), "0");
        assert_eq!(tick(&1.0e6), "1.0e6");
    }

    #[test]
    fn running_median_ignores_a_spike() {
        let mut values: Vec<(f64, f64)> = (0..21).map(|i| (f64::from(i), 1.0)).collect();
        values[10].1 = 1000.0;
        let smooth = running_median(&values, 5, 100);
        assert!(smooth.iter().all(|(_, m)| *m == 1.0), "{smooth:?}");
    }
}
