//! Figures of a run: posterior densities and traces per site, the loss curve.

use crate::infer::RunResult;
use crate::output::write_file;
use crate::plot::{self, Panel};
use crate::session::Failure;
use bdl_runtime::model::Model;
use std::path::Path;

/// How many elements of one site get a panel.
const PANELS_PER_SITE: usize = 6;

/// The panels of a run: one per scalar element, a few per site.
pub fn panels(result: &RunResult) -> Vec<Panel> {
    let n_columns = result.columns.len();
    let mut panels = Vec::new();
    let mut per_site = std::collections::HashMap::new();
    for (index, column) in result.columns.iter().enumerate() {
        let count = per_site.entry(column.site.clone()).or_insert(0usize);
        if *count >= PANELS_PER_SITE {
            continue;
        }
        *count += 1;
        let chains = result
            .draws
            .iter()
            .map(|rows| rows.chunks(n_columns.max(1)).map(|row| row[index]).collect())
            .collect();
        panels.push(Panel { title: column.display_name(), chains });
    }
    panels
}

/// Writes the run's figures into `out`.
pub fn plot_run(_model: &Model, result: &RunResult, out: &Path) -> Result<(), Failure> {
    let figure = |svg: Result<String, plot::PlotError>| svg.map_err(|e| Failure::run("E0580", e.to_string()));
    let panels = panels(result);
    if !panels.is_empty() {
        write_file(&out.join("densities.svg"), &figure(plot::densities(&panels))?)?;
        if result.mcmc {
            write_file(&out.join("traces.svg"), &figure(plot::traces(&panels))?)?;
        }
    }
    if !result.losses.is_empty() {
        write_file(&out.join("loss.svg"), &figure(plot::loss_curve(&result.losses))?)?;
    }
    Ok(())
}
