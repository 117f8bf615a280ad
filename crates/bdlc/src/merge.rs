//! Runs split over processes or machines, and `bdlc merge RUN... --out DIR`, which joins them.
//!
//! A long NUTS run or a large ensemble can be spread over the nodes of a cluster (a Slurm job
//! array, Ray tasks): each part runs `bdlc infer --chains 4 --chain-offset K`, which gives its
//! chains (or members) the ids, file names and random streams they have in the whole run, so
//! part `K` holds exactly chains `K+1 … K+4` of a single run with the same seed. Every run with
//! `--out` also writes `setup.json`, the record that says what was run (model, data files,
//! method, every setting but the number of units and the offset) and which units it holds.
//! `bdlc merge` checks that the parts' records agree, that no chain or member is held twice,
//! collects the chain files (renumbering them when the parts do not form one contiguous run),
//! and computes the summary again from the joined draws: a split run merged equals the single
//! run bit for bit in its draw files and in every summary statistic.

use crate::method::Method;
use crate::output::{io_failure, prepare_out_dir, write_file, Column};
use crate::run::outcome::RunResult;
use crate::run_files::{column_from_csv_name, read_summary_json};
use crate::session::Failure;
use bdl_infer::diagnostics::{e_bfmi, SamplerDiagnostics, Summary};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

pub use crate::output::SETUP_RECORD;

/// `bdlc merge RUN... --out DIR`.
#[derive(clap::Args, Debug, Clone)]
pub struct MergeArgs {
    /// The `--out` directories of the parts, in any order.
    #[arg(value_name = "RUN", required = true)]
    pub runs: Vec<PathBuf>,
    /// Where the joined run is written.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a run already in `--out`.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The units (chains or members) a method runs and the index of its first one, for the methods
/// that can be split: NUTS, HMC and ensembles.
pub fn unit_range(method: &Method) -> Option<(usize, usize)> {
    match method {
        Method::Mcmc(mcmc) => Some((mcmc.settings.first_chain, mcmc.settings.chains)),
        Method::Ensemble(settings) => Some((settings.first_member, settings.members)),
        _ => None,
    }
}

/// Every setting of the method except the number of units and the offset, as text: two parts
/// of one run have the same.
fn settings_identity(method: &Method) -> String {
    let mut method = method.clone();
    match &mut method {
        Method::Mcmc(mcmc) => {
            mcmc.settings.first_chain = 0;
            mcmc.settings.chains = 0;
        }
        Method::Ensemble(settings) => {
            settings.first_member = 0;
            settings.members = 0;
        }
        _ => {}
    }
    format!("{method:?}")
}

/// The name of the method, as `--method` spells it.
fn method_name(method: &Method) -> &'static str {
    match method {
        Method::Prior { .. } => "prior",
        Method::Svi(svi) => svi.name.as_str(),
        Method::Mcmc(mcmc) => mcmc.name.as_str(),
        Method::Exact { .. } => "exact",
        Method::Ensemble(_) => "ensemble",
        Method::Sgmcmc(sgmcmc) => sgmcmc.name.as_str(),
        Method::Gibbs { .. } => "gibbs",
        Method::Pathfinder(_) => "pathfinder",
        Method::Vis(_) => "vis",
    }
}

/// `setup.json`'s content for a run of `method` on `model` with the data files `data`.
pub fn run_record(model: &Path, data: &[PathBuf], method: &Method) -> Value {
    let (first_unit, units) = match unit_range(method) {
        Some((first, count)) => (json!(first), json!(count)),
        None => (Value::Null, Value::Null),
    };
    let max_tree_depth = match method {
        Method::Mcmc(mcmc) if mcmc.settings.algorithm == bdl_infer::mcmc::Algorithm::Nuts => {
            json!(mcmc.settings.max_depth)
        }
        _ => Value::Null,
    };
    json!({
        "model": model.display().to_string(),
        "data": data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "method": method_name(method),
        "settings": settings_identity(method),
        "max_tree_depth": max_tree_depth,
        "first_unit": first_unit,
        "units": units,
    })
}

/// One part, read back.
struct Part {
    dir: PathBuf,
    record: Value,
    summary: Value,
    first_unit: usize,
    units: usize,
}

impl Part {
    fn read(dir: &Path) -> Result<Part, Failure> {
        if !dir.is_dir() {
            return Err(Failure::usage(
                "E0910",
                format!("`{}` is not a directory", dir.display()),
                Some("give the `--out` directories of finished `bdlc infer` runs".to_string()),
            ));
        }
        let path = dir.join(SETUP_RECORD);
        let not_a_part = |reason: String| {
            Failure::usage(
                "E0930",
                format!("`{}` cannot be merged: {reason}", dir.display()),
                Some(
                    "merge the `--out` directories of finished `bdlc infer` runs (NUTS, HMC or \
                     ensemble)"
                        .to_string(),
                ),
            )
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_a_part(format!("it has no {SETUP_RECORD}")))
            }
            Err(error) => return Err(io_failure(&path, &error)),
        };
        let record: Value = serde_json::from_str(&text).map_err(|error| {
            not_a_part(format!("its {SETUP_RECORD} is not valid JSON: {error}"))
        })?;
        let count = |key: &str| record.get(key).and_then(Value::as_u64).map(|n| n as usize);
        let (Some(first_unit), Some(units)) = (count("first_unit"), count("units")) else {
            let method = record.get("method").and_then(Value::as_str).unwrap_or("?");
            return Err(Failure::usage(
                "E0932",
                format!(
                    "`{}` is a run of method `{method}`, which cannot be split or merged",
                    dir.display()
                ),
                Some("`bdlc merge` joins runs of nuts, hmc and ensemble".to_string()),
            ));
        };
        let summary = read_summary_json(dir)?
            .ok_or_else(|| not_a_part("it has no summary.json (the run did not finish)".into()))?;
        if summary.get("interrupted").and_then(Value::as_bool) == Some(true) {
            return Err(Failure::usage(
                "E0934",
                format!(
                    "`{}` was interrupted and holds only part of its draws",
                    dir.display()
                ),
                Some("run that part again to the end before merging".to_string()),
            ));
        }
        Ok(Part {
            dir: dir.to_path_buf(),
            record,
            summary,
            first_unit,
            units,
        })
    }

    fn field(&self, key: &str) -> String {
        self.record
            .get(key)
            .map(Value::to_string)
            .unwrap_or_default()
    }
}

/// A CSV file of draws: its comment lines before the header, the header, every line after it
/// as written (comments such as NUTS's adaptation results included), and the rows as numbers.
struct DrawFile {
    comments: Vec<String>,
    header: Vec<String>,
    lines: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl DrawFile {
    fn read(path: &Path) -> Result<DrawFile, Failure> {
        let text = std::fs::read_to_string(path).map_err(|error| io_failure(path, &error))?;
        let mut comments = Vec::new();
        let mut header = None;
        let mut lines = Vec::new();
        let mut rows = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if header.is_none() {
                if line.starts_with('#') {
                    comments.push(line.to_string());
                } else if !line.trim().is_empty() {
                    header = Some(line.split(',').map(str::to_string).collect::<Vec<_>>());
                }
                continue;
            }
            lines.push(line.to_string());
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let row: Result<Vec<f64>, _> = line.split(',').map(str::parse::<f64>).collect();
            let row = row.map_err(|_| {
                Failure::run(
                    "E0912",
                    format!("`{}` line {}: not a number", path.display(), number + 1),
                )
            })?;
            rows.push(row);
        }
        let header = header.ok_or_else(|| {
            Failure::run("E0912", format!("`{}` has no header line", path.display()))
        })?;
        Ok(DrawFile {
            comments,
            header,
            lines,
            rows,
        })
    }

    /// The file's text with `rewrite` applied to each line before the data rows.
    fn text(&self, rewrite: impl Fn(&str) -> Option<String>) -> String {
        let mut text = String::new();
        for comment in &self.comments {
            if let Some(line) = rewrite(comment) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text.push_str(&self.header.join(","));
        text.push('\n');
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// Combines the parts' `facts`: counts and totals add up, per-unit lists are concatenated in
/// unit order, the offsets are dropped, everything else is the first part's.
fn merged_facts(parts: &[Part]) -> Map<String, Value> {
    let facts: Vec<&Map<String, Value>> = parts
        .iter()
        .filter_map(|p| p.summary.get("facts").and_then(Value::as_object))
        .collect();
    let mut merged = Map::new();
    let Some(first) = facts.first() else {
        return merged;
    };
    for (key, value) in first.iter() {
        if key == "first_chain" || key == "first_member" {
            continue;
        }
        let values: Vec<&Value> = facts.iter().filter_map(|f| f.get(key)).collect();
        let additive = matches!(
            key.as_str(),
            "chains" | "members" | "gradient_evaluations" | "divergences"
        ) || key.contains("seconds");
        let combined = if let Value::Array(_) = value {
            Value::Array(
                values
                    .iter()
                    .filter_map(|v| v.as_array())
                    .flatten()
                    .cloned()
                    .collect(),
            )
        } else if additive && values.iter().all(|v| v.is_u64()) {
            json!(values.iter().filter_map(|v| v.as_u64()).sum::<u64>())
        } else if additive {
            json!(values.iter().filter_map(|v| v.as_f64()).sum::<f64>())
        } else {
            value.clone()
        };
        merged.insert(key.clone(), combined);
    }
    merged
}

/// Joins the parts' `log_lik.csv` (an ensemble's one file per run) into `out`: the first part's
/// comments and header, then every part's rows in member order. Nothing when a part has none.
fn join_log_lik(parts: &[Part], out: &Path) -> Result<Option<String>, Failure> {
    let mut text = String::new();
    for (index, part) in parts.iter().enumerate() {
        let path = part.dir.join("log_lik.csv");
        if !path.is_file() {
            return Ok(None);
        }
        let content = std::fs::read_to_string(&path).map_err(|error| io_failure(&path, &error))?;
        let mut header_seen = false;
        for line in content.lines() {
            let is_row = header_seen && !line.starts_with('#');
            if !line.starts_with('#') {
                header_seen = true;
            }
            if index == 0 || is_row {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    write_file(&out.join("log_lik.csv"), &text)?;
    Ok(Some("log_lik.csv".to_string()))
}

/// The merged run's `log_lik` fact: the files written by the merge and their draws, when every
/// part wrote its log-likelihood; otherwise that it was not written, and why.
fn merge_log_lik_fact(parts: &[Part], facts: &mut Map<String, Value>, files: Vec<String>) {
    let part_facts: Vec<Option<&Value>> = parts
        .iter()
        .map(|p| p.summary.get("facts").and_then(|f| f.get("log_lik")))
        .collect();
    if part_facts.iter().all(Option::is_none) {
        return;
    }
    let written = |fact: &Option<&Value>| {
        fact.and_then(|f| f.get("written"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let value = if !files.is_empty() && part_facts.iter().all(written) {
        let draws: u64 = part_facts
            .iter()
            .filter_map(|f| f.and_then(|f| f.get("draws")).and_then(Value::as_u64))
            .sum();
        let observations = part_facts[0]
            .and_then(|f| f.get("observations"))
            .cloned()
            .unwrap_or(Value::Null);
        json!({ "draws": draws, "files": files, "observations": observations, "written": true })
    } else {
        json!({ "written": false, "reason": "a merged part has no pointwise log-likelihood" })
    };
    facts.insert("log_lik".into(), value);
}

/// Runs `bdlc merge`.
pub fn run(args: &MergeArgs) -> Result<(), Failure> {
    let mut parts = args
        .runs
        .iter()
        .map(|dir| Part::read(dir))
        .collect::<Result<Vec<_>, _>>()?;
    for part in &parts[1..] {
        for key in ["model", "data", "method", "settings"] {
            if part.field(key) != parts[0].field(key) {
                return Err(Failure::usage(
                    "E0931",
                    format!(
                        "`{}` and `{}` are not parts of one run: their {key} differs ({} and {})",
                        parts[0].dir.display(),
                        part.dir.display(),
                        parts[0].field(key),
                        part.field(key)
                    ),
                    Some(
                        "parts may differ only in `--chains` (or `--members`) and \
                         `--chain-offset`; the model, data, method, seed and every other \
                         setting must be the same"
                            .to_string(),
                    ),
                ));
            }
        }
    }
    parts.sort_by_key(|p| p.first_unit);
    let ensemble = parts[0].record.get("method").and_then(Value::as_str) == Some("ensemble");
    let unit_word = if ensemble { "member" } else { "chain" };
    for pair in parts.windows(2) {
        if pair[1].first_unit < pair[0].first_unit + pair[0].units {
            return Err(Failure::usage(
                "E0933",
                format!(
                    "`{}` and `{}` both hold {unit_word} {}",
                    pair[0].dir.display(),
                    pair[1].dir.display(),
                    pair[1].first_unit + 1
                ),
                Some(
                    "each part needs its own `--chain-offset`: with 4 chains per part, give 0, \
                     4, 8, …"
                        .to_string(),
                ),
            ));
        }
    }
    // Parts that form one contiguous run from the first unit keep their ids; otherwise the
    // units are numbered again in order.
    let mut expected = 0;
    let contiguous = parts.iter().all(|p| {
        let ok = p.first_unit == expected;
        expected += p.units;
        ok
    });
    let total: usize = parts.iter().map(|p| p.units).sum();
    let out = &args.out;
    for part in &parts {
        if let (Ok(a), Ok(b)) = (part.dir.canonicalize(), out.canonicalize()) {
            if a == b {
                return Err(Failure::usage(
                    "E0935",
                    format!("`--out` `{}` is one of the runs to merge", out.display()),
                    Some("write the joined run into a new directory".to_string()),
                ));
            }
        }
    }
    prepare_out_dir(out, args.force)?;

    let mut chains: Vec<Vec<f64>> = Vec::new();
    // The pointwise log-likelihood files written to `out`, when every part has them.
    let mut log_lik_files: Vec<String> = Vec::new();
    let mut columns: Vec<Column> = Vec::new();
    let mut sampler = SamplerDiagnostics {
        n_draws: Vec::new(),
        divergences: Vec::new(),
        tree_depth_saturated: Vec::new(),
        max_tree_depth: parts[0]
            .record
            .get("max_tree_depth")
            .and_then(Value::as_u64)
            .map(|d| d as u32),
        e_bfmi: Vec::new(),
    };
    if ensemble {
        let files = parts
            .iter()
            .map(|p| DrawFile::read(&p.dir.join("draws.csv")))
            .collect::<Result<Vec<_>, _>>()?;
        check_headers(&parts, &files)?;
        let mut joined = DrawFile {
            comments: files[0].comments.clone(),
            header: files[0].header.clone(),
            lines: Vec::new(),
            rows: Vec::new(),
        };
        for file in &files {
            joined.lines.extend(file.lines.iter().cloned());
            joined.rows.extend(file.rows.iter().cloned());
        }
        let text = joined.text(|line| {
            if line.starts_with("# first_member = ") {
                None
            } else if line.starts_with("# members = ") {
                Some(format!("# members = {total}"))
            } else {
                Some(line.to_string())
            }
        });
        write_file(&out.join("draws.csv"), &text)?;
        log_lik_files.extend(join_log_lik(&parts, out)?);
        columns = joined
            .header
            .iter()
            .map(|n| column_from_csv_name(n))
            .collect();
        chains.push(joined.rows.into_iter().flatten().collect());
    } else {
        let mut new_id = 0;
        for part in &parts {
            let files = (0..part.units)
                .map(|c| {
                    DrawFile::read(
                        &part
                            .dir
                            .join(format!("chain-{}.csv", part.first_unit + c + 1)),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_headers(&parts, &files)?;
            let first_id = new_id + 1;
            for file in files {
                new_id += 1;
                let text = file.text(|line| {
                    if line.starts_with("# chain id = ") {
                        Some(format!("# chain id = {new_id}"))
                    } else {
                        Some(line.to_string())
                    }
                });
                write_file(&out.join(format!("chain-{new_id}.csv")), &text)?;
                let log_lik = part.dir.join(format!(
                    "log_lik-{}.csv",
                    part.first_unit + new_id - first_id + 1
                ));
                if log_lik.is_file() {
                    let name = format!("log_lik-{new_id}.csv");
                    std::fs::copy(&log_lik, out.join(&name))
                        .map_err(|error| io_failure(&log_lik, &error))?;
                    log_lik_files.push(name);
                }
                let index = |name: &str| file.header.iter().position(|h| h == name);
                let kept: Vec<usize> = (0..file.header.len())
                    .filter(|&i| !file.header[i].ends_with("__"))
                    .collect();
                if columns.is_empty() {
                    columns = kept
                        .iter()
                        .map(|&i| column_from_csv_name(&file.header[i]))
                        .collect();
                }
                let stat = |name: &str| -> Vec<f64> {
                    index(name).map_or_else(Vec::new, |i| file.rows.iter().map(|r| r[i]).collect())
                };
                let divergent = stat("divergent__");
                let depth = stat("treedepth__");
                let energy = stat("energy__");
                sampler.n_draws.push(file.rows.len());
                sampler
                    .divergences
                    .push(divergent.iter().filter(|&&d| d > 0.5).count());
                sampler
                    .tree_depth_saturated
                    .push(match sampler.max_tree_depth {
                        Some(max) => depth.iter().filter(|&&d| d >= f64::from(max)).count(),
                        None => 0,
                    });
                sampler.e_bfmi.push(e_bfmi(&energy));
                chains.push(
                    file.rows
                        .iter()
                        .flat_map(|row| kept.iter().map(|&i| row[i]))
                        .collect(),
                );
            }
        }
    }

    let slices: Vec<&[f64]> = chains.iter().map(Vec::as_slice).collect();
    let summary = if ensemble {
        Summary::from_draws(&slices, columns.len())
    } else {
        Summary::from_draws_with_sampler(&slices, columns.len(), sampler)
    };
    let method = parts[0]
        .summary
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut facts = merged_facts(&parts);
    merge_log_lik_fact(&parts, &mut facts, log_lik_files);
    facts.insert(
        "merged_from".into(),
        json!(parts
            .iter()
            .map(|p| p.dir.display().to_string())
            .collect::<Vec<_>>()),
    );
    let result = RunResult {
        method,
        columns,
        draws: chains,
        summary,
        mcmc: !ensemble,
        losses: Vec::new(),
        facts,
        interrupted: false,
        energies: Vec::new(),
        divergent: Vec::new(),
    };
    let model = PathBuf::from(
        parts[0]
            .record
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    let document = result.summary_json(&model);
    write_file(&out.join("summary.json"), &format!("{document:#}\n"))?;
    let mut record = parts[0].record.clone();
    record["first_unit"] = json!(0);
    record["units"] = json!(total);
    write_file(&out.join(SETUP_RECORD), &format!("{record:#}\n"))?;
    // The completion record comes last, as after `bdlc infer`.
    crate::output::mark_run_complete(out, false)?;
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    {
        if args.json {
            println!("{document:#}");
        } else {
            print!("{}", result.table());
            for warning in result.warning_messages() {
                eprintln!("warning: {warning}");
            }
            if !contiguous {
                eprintln!(
                    "note: the parts do not form one run of {unit_word}s 1 to {total}; the \
                     {unit_word}s are numbered again in the order of their offsets"
                );
            }
            eprintln!(
                "wrote {} ({total} {unit_word}s from {} runs)",
                out.display(),
                parts.len()
            );
        }
    }
    Ok(())
}

/// Every draw file of every part has the first part's columns.
fn check_headers(parts: &[Part], files: &[DrawFile]) -> Result<(), Failure> {
    let Some(first) = files.first() else {
        return Ok(());
    };
    if files.iter().any(|f| f.header != first.header) {
        return Err(Failure::usage(
            "E0931",
            format!(
                "the runs starting at `{}` do not have the same columns",
                parts[0].dir.display()
            ),
            Some("merge parts of one run of one model".to_string()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_lists_join_and_offsets_go() {
        let part = |facts: Value, first: usize| Part {
            dir: PathBuf::from("p"),
            record: json!({}),
            summary: json!({ "facts": facts }),
            first_unit: first,
            units: 2,
        };
        let parts = vec![
            part(
                json!({"chains": 2, "warmup": 100, "step_sizes": [0.5, 0.6],
                       "sampling_seconds_total": 1.5, "gradient_evaluations": 10}),
                0,
            ),
            part(
                json!({"chains": 2, "first_chain": 2, "warmup": 100, "step_sizes": [0.7, 0.8],
                       "sampling_seconds_total": 2.0, "gradient_evaluations": 5}),
                2,
            ),
        ];
        let merged = merged_facts(&parts);
        assert_eq!(merged["chains"], json!(4));
        assert_eq!(merged["warmup"], json!(100));
        assert_eq!(merged["step_sizes"], json!([0.5, 0.6, 0.7, 0.8]));
        assert_eq!(merged["sampling_seconds_total"], json!(3.5));
        assert_eq!(merged["gradient_evaluations"], json!(15));
        assert!(!merged.contains_key("first_chain"));
    }
}
