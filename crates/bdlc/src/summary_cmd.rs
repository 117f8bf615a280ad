//! `bdlc summary DIR`: prints a finished run's summary table again, from its files.
//!
//! The numbers come from the run's `summary.json`, so the table is the one `bdlc infer` printed.
//! A run stopped before it wrote `summary.json` (killed, or its disk filled) still has its draws:
//! the summary is then computed again from `draws.csv` or the chains' CSV files.

use crate::output::{Column, SummaryView};
use crate::plot_cmd::RunDraws;
use crate::run_files::read_summary_json;
use crate::session::Failure;
use bdl_infer::diagnostics::{ColumnSummary, Summary, Warning, ESS_LIMIT, R_HAT_LIMIT};
use serde_json::{json, Value};
use std::path::PathBuf;

/// `bdlc summary DIR [--site NAME]... [--json]`.
#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// The directory of a finished run (`bdlc infer --out DIR`).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Show only these sites (repeatable).
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// Print the summary as JSON (the run's summary.json, filtered by `--site`).
    #[arg(long)]
    pub json: bool,
}

/// What a summary shows: columns, their statistics, and whether they are Markov chains.
pub struct Table {
    /// The columns in order.
    pub columns: Vec<Column>,
    /// Their statistics (warnings are kept apart, as words).
    pub summary: Summary,
    /// Whether MCSE, ESS and R-hat apply.
    pub mcmc: bool,
    /// The run's warnings, as `bdlc infer` printed them.
    pub warnings: Vec<String>,
}

impl Table {
    /// Keeps the columns of the given sites (all when `sites` is empty), with the warnings
    /// about them and those about the run as a whole.
    pub fn only(self, sites: &[String]) -> Table {
        if sites.is_empty() {
            return self;
        }
        let every_column = self.column_warnings();
        let whole_run: Vec<String> = self
            .warnings
            .into_iter()
            .filter(|warning| !every_column.contains(warning))
            .collect();
        let (columns, statistics): (Vec<Column>, Vec<ColumnSummary>) = self
            .columns
            .into_iter()
            .zip(self.summary.columns)
            .filter(|(column, _)| sites.contains(&column.site))
            .unzip();
        let mut table = Table {
            columns,
            summary: Summary {
                columns: statistics,
                sampler: self.summary.sampler,
                warnings: Vec::new(),
            },
            mcmc: self.mcmc,
            warnings: Vec::new(),
        };
        table.warnings = table.column_warnings();
        table.warnings.extend(whole_run);
        table
    }

    /// The warnings about single columns (R-hat and ESS of MCMC draws), worded as `bdlc infer`
    /// words them.
    fn column_warnings(&self) -> Vec<String> {
        if !self.mcmc {
            return Vec::new();
        }
        let mut warnings = Vec::new();
        for (column, stats) in self.summary.columns.iter().enumerate() {
            if let Some(r_hat) = stats.r_hat.filter(|r| *r > R_HAT_LIMIT) {
                warnings.push(Warning::HighRHat { column, r_hat });
            }
            if let Some(ess) = stats.ess_bulk.filter(|e| *e < ESS_LIMIT) {
                warnings.push(Warning::LowEssBulk { column, ess });
            }
            if let Some(ess) = stats.ess_tail.filter(|e| *e < ESS_LIMIT) {
                warnings.push(Warning::LowEssTail { column, ess });
            }
        }
        crate::output::warning_messages(&warnings, &self.columns)
    }

    /// The stansummary-like table.
    pub fn text(&self) -> String {
        SummaryView {
            columns: &self.columns,
            summary: &self.summary,
            mcmc: self.mcmc,
        }
        .table()
    }

    /// The per-element statistics as JSON objects.
    pub fn elements_json(&self) -> Vec<Value> {
        SummaryView {
            columns: &self.columns,
            summary: &self.summary,
            mcmc: self.mcmc,
        }
        .elements_json(&[])
    }
}

/// The table of `summary.json`'s `summary` array.
fn table_from_json(summary: &Value) -> Result<Table, String> {
    let elements = summary
        .get("summary")
        .and_then(Value::as_array)
        .ok_or("it has no `summary` array")?;
    let number = |element: &Value, key: &str| element.get(key).and_then(Value::as_f64);
    let mut columns = Vec::with_capacity(elements.len());
    let mut statistics = Vec::with_capacity(elements.len());
    let mut mcmc = false;
    for element in elements {
        let site = element
            .get("site")
            .and_then(Value::as_str)
            .ok_or("an element has no `site`")?;
        let index = element
            .get("index")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_u64)
                    .map(|i| (i as usize).saturating_sub(1))
                    .collect()
            })
            .unwrap_or_default();
        mcmc |= element.get("ess_bulk").is_some();
        columns.push(Column {
            site: site.to_string(),
            index,
        });
        statistics.push(ColumnSummary {
            mean: number(element, "mean").unwrap_or(f64::NAN),
            mcse_mean: number(element, "mcse_mean"),
            sd: number(element, "sd"),
            mcse_sd: number(element, "mcse_sd"),
            mcse_quantiles: ["mcse_q5", "mcse_q50", "mcse_q95"].map(|key| number(element, key)),
            q5: number(element, "q5").unwrap_or(f64::NAN),
            q50: number(element, "q50").unwrap_or(f64::NAN),
            q95: number(element, "q95").unwrap_or(f64::NAN),
            ess_bulk: number(element, "ess_bulk"),
            ess_tail: number(element, "ess_tail"),
            r_hat: number(element, "r_hat"),
        });
    }
    let warnings = summary
        .get("warnings")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Table {
        columns,
        summary: Summary {
            columns: statistics,
            sampler: None,
            warnings: Vec::new(),
        },
        mcmc,
        warnings,
    })
}

/// The table computed again from the draws' files.
fn table_from_draws(draws: &RunDraws) -> Table {
    let slices: Vec<&[f64]> = draws.chains.iter().map(Vec::as_slice).collect();
    let summary = Summary::from_draws(&slices, draws.columns.len());
    let warnings = if draws.mcmc {
        crate::output::warning_messages(&summary.warnings, &draws.columns)
    } else {
        Vec::new()
    };
    Table {
        columns: draws.columns.clone(),
        summary,
        mcmc: draws.mcmc,
        warnings,
    }
}

/// Runs `bdlc summary`.
pub fn run(args: &SummaryArgs) -> Result<(), Failure> {
    if !args.dir.is_dir() {
        return Err(Failure::usage(
            "E0910",
            format!("`{}` is not a directory", args.dir.display()),
            Some("give the `--out` directory of a finished `bdlc infer` run".to_string()),
        ));
    }
    let stored = read_summary_json(&args.dir)?;
    let (table, stored) = match stored {
        Some(stored) => match table_from_json(&stored) {
            Ok(table) => (table, Some(stored)),
            Err(reason) => {
                return Err(Failure::run(
                    "E0916",
                    format!(
                        "`{}` is not a run summary: {reason}",
                        args.dir.join("summary.json").display()
                    ),
                ))
            }
        },
        None => {
            let draws = RunDraws::read(&args.dir)?;
            eprintln!(
                "note: `{}` has no summary.json; the summary is computed again from the draws",
                args.dir.display()
            );
            (table_from_draws(&draws), None)
        }
    };
    let unknown: Vec<&String> = args
        .sites
        .iter()
        .filter(|site| !table.columns.iter().any(|c| &c.site == *site))
        .collect();
    if let Some(site) = unknown.first() {
        let mut sites: Vec<&str> = table.columns.iter().map(|c| c.site.as_str()).collect();
        sites.dedup();
        let suggestion = bdl_diagnostics::did_you_mean(site, sites.iter().copied())
            .map(|close| format!("did you mean `{close}`? "))
            .unwrap_or_default();
        return Err(Failure::usage(
            "E0917",
            format!("the run has no site `{site}`"),
            Some(format!("{suggestion}its sites are: {}", sites.join(", "))),
        ));
    }
    let table = table.only(&args.sites);
    if args.json {
        let mut document = stored.unwrap_or_else(|| {
            json!({
                "model": Value::Null,
                "method": Value::Null,
                "interrupted": Value::Null,
                "facts": {},
                "warnings": table.warnings,
                "columns": table.columns.iter().map(Column::csv_name).collect::<Vec<_>>(),
            })
        });
        if let Value::Object(map) = &mut document {
            map.insert(
                "columns".into(),
                json!(table
                    .columns
                    .iter()
                    .map(Column::csv_name)
                    .collect::<Vec<_>>()),
            );
            map.insert("summary".into(), Value::Array(table.elements_json()));
            map.insert("warnings".into(), json!(table.warnings));
        }
        println!("{document:#}");
        return Ok(());
    }
    print!("{}", table.text());
    for warning in &table.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_summary_json_keeps_its_numbers() {
        let stored = json!({
            "summary": [
                {"site": "mu", "index": [], "mean": 1.5, "sd": 0.5, "q5": 0.7, "q50": 1.5, "q95": 2.3},
                {"site": "w", "index": [2], "mean": -1.0, "sd": 0.25, "q5": -1.4, "q50": -1.0, "q95": -0.6}
            ],
            "warnings": ["a warning"]
        });
        let table = table_from_json(&stored).expect("a summary");
        assert!(!table.mcmc);
        assert_eq!(table.warnings, vec!["a warning".to_string()]);
        let text = table.text();
        assert!(text.contains("mu "), "{text}");
        assert!(text.contains("w[2]"), "{text}");
        assert!(text.contains("1.5"), "{text}");
        let only_w = table.only(&["w".to_string()]);
        assert_eq!(only_w.columns.len(), 1);
        assert!(!only_w.text().contains("mu "));
    }
}
