//! SVG figures drawn with plotters: posterior densities per site, trace plots per chain, the SVI
//! loss curve, and posterior-predictive bands for one-dimensional regressions.
//!
//! Every function returns the SVG document as a string; the caller decides where it goes. The
//! SVG backend needs no system libraries or fonts (text is left to the viewer's renderer).

use plotters::coord::Shift;
use plotters::prelude::*;

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

/// Posterior densities: one panel per quantity, one curve per chain.
pub fn densities(panels: &[Panel]) -> Result<String, PlotError> {
    draw_grid(panels, |area, panel| {
        let (low, high) = padded_range(finite_values(&panel.chains).into_iter());
        let curves: Vec<Vec<(f64, f64)>> = panel
            .chains
            .iter()
            .map(|chain| {
                let finite: Vec<f64> = chain.iter().copied().filter(|v| v.is_finite()).collect();
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
            .caption(&panel.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(40)
            .build_cartesian_2d(low..high, 0.0..top * 1.05)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .y_labels(4)
            .x_labels(5)
            .draw()?;
        for (index, curve) in curves.into_iter().enumerate() {
            chart.draw_series(LineSeries::new(curve, colour(index).stroke_width(2)))?;
        }
        Ok(())
    })
}

/// Trace plots: one panel per quantity, one line per chain over the draw index.
pub fn traces(panels: &[Panel]) -> Result<String, PlotError> {
    draw_grid(panels, |area, panel| {
        let (low, high) = padded_range(finite_values(&panel.chains).into_iter());
        let length = panel.chains.iter().map(Vec::len).max().unwrap_or(0).max(2);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..(length - 1) as f64, low..high)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .y_labels(4)
            .x_labels(5)
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
    })
}

/// Draws `panels` on a grid, one call of `draw` per panel.
fn draw_grid(
    panels: &[Panel],
    draw: impl Fn(&DrawingArea<SVGBackend, Shift>, &Panel) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let (rows, columns, size) = grid_size(panels.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((rows, columns));
        for (area, panel) in areas.iter().zip(panels) {
            draw(area, panel)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The SVI loss (negative ELBO) against the step, with a running median to show the trend.
pub fn loss_curve(losses: &[f64]) -> Result<String, PlotError> {
    let finite: Vec<(f64, f64)> = losses
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| (i as f64, *v))
        .collect();
    // The first steps' losses are often orders of magnitude above the rest; the axis follows the
    // range of the last 90% so that the converged part stays readable.
    let skip = finite.len() / 10;
    let (low, high) = padded_range(finite.iter().skip(skip).map(|(_, v)| *v));
    let steps = (losses.len().max(2) - 1) as f64;
    let window = (losses.len() / 50).max(1);
    let smooth: Vec<(f64, f64)> = finite
        .chunks(window)
        .filter_map(|chunk| {
            let mut values: Vec<f64> = chunk.iter().map(|(_, v)| *v).collect();
            values.sort_by(f64::total_cmp);
            let middle = chunk[chunk.len() / 2].0;
            values.get(values.len() / 2).map(|median| (middle, *median))
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("SVI loss (negative ELBO)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..steps, low..high)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .light_line_style(WHITE)
            .draw()?;
        let clipped = finite.iter().map(|(i, v)| (*i, v.clamp(low, high)));
        chart
            .draw_series(LineSeries::new(clipped, colour(0).mix(0.35)))?
            .label("loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour(0)));
        chart
            .draw_series(LineSeries::new(smooth, colour(1).stroke_width(2)))?
            .label("running median")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour(1)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
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
            densities(std::slice::from_ref(&panel)).unwrap(),
            traces(&[panel]).unwrap(),
        ] {
            assert!(svg.starts_with("<svg"));
            assert!(svg.contains("mu"));
        }
        assert!(loss_curve(&[5.0, 4.0, 3.5, f64::NAN, 3.4])
            .unwrap()
            .contains("running median"));
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
        assert!(densities(&panels).is_ok());
        assert!(traces(&panels).is_ok());
        assert!(loss_curve(&[]).is_ok());
    }
}
