//! Reading back what a finished run wrote: column names of its CSV files and its `summary.json`,
//! shared by `summary`, `plot` and the REPL.

use crate::output::Column;
use crate::session::Failure;
use serde_json::Value;
use std::path::Path;

/// A column from its CmdStan CSV name: `theta.3` is element 3 (1-based) of `theta`.
pub fn column_from_csv_name(name: &str) -> Column {
    let mut parts = name.split('.');
    let site = parts.next().unwrap_or_default().to_string();
    let index: Option<Vec<usize>> = parts
        .map(|part| {
            part.parse::<usize>()
                .ok()
                .filter(|&i| i >= 1)
                .map(|i| i - 1)
        })
        .collect();
    match index {
        Some(index) => Column { site, index },
        // A name that is not `site.i.j` is kept whole as a scalar.
        None => Column {
            site: name.to_string(),
            index: Vec::new(),
        },
    }
}

/// The run's `summary.json`, or `None` when the run has none.
pub fn read_summary_json(dir: &Path) -> Result<Option<Value>, Failure> {
    crate::output::require_complete_run(dir)?;
    let path = dir.join("summary.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = crate::session::read_run_text(&path)?;
    serde_json::from_str(&text).map(Some).map_err(|error| {
        Failure::run(
            "E0916",
            format!("`{}` is not valid JSON: {error}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_names_become_columns() {
        assert_eq!(
            column_from_csv_name("theta.3"),
            Column {
                site: "theta".into(),
                index: vec![2]
            }
        );
        assert_eq!(
            column_from_csv_name("w.1.2"),
            Column {
                site: "w".into(),
                index: vec![0, 1]
            }
        );
        assert_eq!(column_from_csv_name("mu").index, Vec::<usize>::new());
        assert_eq!(column_from_csv_name("odd.name").site, "odd.name");
    }
}
