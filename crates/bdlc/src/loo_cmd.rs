//! `bdlc loo RUN [--waic]` and `bdlc compare RUN RUN...`: PSIS-LOO or WAIC of a finished run
//! from its pointwise log-likelihood files, and the comparison of several runs on the same
//! observations (elpd differences with their standard errors, stacking and pseudo-BMA+
//! weights). The maths is `bdl_infer::diagnostics::loo`; this module reads the files, names the
//! observations and prints.
//!
//! Observations are named as the log-likelihood files name them (`y.8`: site `y`, element 8,
//! 1-based as in every file bdl writes; `docs/workflow.md` states the index bases).

use crate::log_lik::{self, LogLikTable};
use crate::output::display_number;
use crate::session::Failure;
use bdl_infer::diagnostics::loo::{
    compare, dirichlet_draws, loo, relative_efficiency, waic, ComparedModel, Criterion, Elpd,
    WAIC_VARIANCE_LIMIT,
};
use bdl_infer::rng::stream_rng;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `bdlc loo`.
#[derive(clap::Args, Debug, Clone)]
pub struct LooArgs {
    /// The directory of a finished run (`bdlc infer --out DIR`) with its log-likelihood files.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// WAIC instead of PSIS-LOO.
    #[arg(long)]
    pub waic: bool,
    /// Print the result as JSON (with every observation's value and k̂).
    #[arg(long)]
    pub json: bool,
}

/// `bdlc compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// The directories of finished runs of models of the same observations.
    #[arg(value_name = "RUN", num_args = 2.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Compare by WAIC instead of PSIS-LOO.
    #[arg(long)]
    pub waic: bool,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
    /// The seed of the Bayesian bootstrap behind the pseudo-BMA+ weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The Dirichlet draws of the pseudo-BMA+ bootstrap (ArviZ's default).
const BOOTSTRAP_DRAWS: usize = 1000;

/// The relative efficiency of a run's posterior draws, as ArviZ's `loo` estimates it (1 for a
/// single chain or independent draws).
fn run_efficiency(dir: &Path, table: &LogLikTable) -> Result<f64, Failure> {
    if table.chain_lengths.len() <= 1 {
        return Ok(1.0);
    }
    let draws = crate::predict::read_draws(dir)?;
    if draws.chain_lengths.len() != table.chain_lengths.len() {
        return Ok(1.0);
    }
    let mut chains: Vec<Vec<f64>> = Vec::new();
    let mut start = 0;
    for length in &draws.chain_lengths {
        chains.push(
            draws.rows[start..start + length]
                .iter()
                .flatten()
                .copied()
                .collect(),
        );
        start += length;
    }
    // Sampler columns (`lp__`, `stepsize__`, …) are ArviZ's sample statistics, not posterior
    // quantities.
    let quantities: Vec<bool> = draws.header.iter().map(|h| !h.ends_with("__")).collect();
    Ok(chains_efficiency(&chains, &quantities))
}

/// The relative efficiency of Markov chains held row by row (`chains[c]` is chain `c`'s draws,
/// one row of `quantities.len()` columns after another), over the columns marked `true`.
pub fn chains_efficiency(chains: &[Vec<f64>], quantities: &[bool]) -> f64 {
    let width = quantities.len();
    if chains.len() <= 1 || width == 0 {
        return 1.0;
    }
    let columns: Vec<Vec<Vec<f64>>> = (0..width)
        .filter(|&column| quantities[column])
        .map(|column| {
            chains
                .iter()
                .map(|rows| rows.chunks(width).map(|row| row[column]).collect())
                .collect()
        })
        .collect();
    let slices: Vec<Vec<&[f64]>> = columns
        .iter()
        .map(|chains| chains.iter().map(Vec::as_slice).collect())
        .collect();
    relative_efficiency(&slices)
}

/// A run's estimate, with the names of its observations.
pub struct RunEstimate {
    /// The observations' names (`y.1`).
    pub names: Vec<String>,
    /// The estimate.
    pub elpd: Elpd,
    /// The files it was computed from.
    pub files: Vec<PathBuf>,
    /// The relative efficiency of the draws (PSIS-LOO's tail length depends on it).
    pub reff: f64,
}

/// PSIS-LOO or WAIC of the run in `dir`.
pub fn estimate(dir: &Path, criterion: Criterion) -> Result<RunEstimate, Failure> {
    let table = log_lik::read(dir)?;
    let reff = run_efficiency(dir, &table)?;
    estimate_table(table, reff, criterion, &dir.display().to_string())
}

/// PSIS-LOO or WAIC from a run's log-likelihood table; `label` names the run in errors.
pub fn estimate_table(
    table: LogLikTable,
    reff: f64,
    criterion: Criterion,
    label: &str,
) -> Result<RunEstimate, Failure> {
    let slices: Vec<&[f64]> = table.columns.iter().map(Vec::as_slice).collect();
    let elpd = match criterion {
        Criterion::Loo => loo(&slices, reff),
        Criterion::Waic => waic(&slices),
    }
    .map_err(|error| Failure::run("E0962", format!("`{label}`: {error}")))?;
    Ok(RunEstimate {
        names: table.names,
        elpd,
        files: table.files,
        reff,
    })
}

/// The warnings of an estimate, as sentences naming the observations.
pub fn warnings(estimate: &RunEstimate) -> Vec<String> {
    let elpd = &estimate.elpd;
    let mut messages = Vec::new();
    match elpd.criterion {
        Criterion::Loo => {
            let bad = elpd.bad_observations();
            if !bad.is_empty() {
                let mut worst = bad.clone();
                worst.sort_by(|&a, &b| elpd.pareto_k[b].total_cmp(&elpd.pareto_k[a]));
                let listed: Vec<String> = worst
                    .iter()
                    .take(10)
                    .map(|&i| format!("{} (k̂ = {:.2})", estimate.names[i], elpd.pareto_k[i]))
                    .collect();
                let more = if bad.len() > 10 {
                    format!(" and {} more", bad.len() - 10)
                } else {
                    String::new()
                };
                messages.push(format!(
                    "Pareto k̂ is above {:.2} for {} of {} observations: {}{more}; their leave-one-out estimates are unreliable (an influential observation, or a model too flexible for it): refit without them (exact LOO), or use K-fold cross-validation",
                    elpd.good_k,
                    bad.len(),
                    elpd.pointwise.len(),
                    listed.join(", ")
                ));
            }
        }
        Criterion::Waic => {
            if elpd.warning {
                messages.push(format!(
                    "the posterior variance of the log predictive density exceeds {WAIC_VARIANCE_LIMIT} for some observations: WAIC may be failing; prefer PSIS-LOO (`bdlc loo` without --waic)"
                ));
            }
        }
    }
    messages
}

/// The k̂ classes of the loo package and ArviZ, with their counts.
fn k_table(elpd: &Elpd) -> String {
    let n = elpd.pareto_k.len().max(1) as f64;
    let count = |low: f64, high: f64| {
        elpd.pareto_k
            .iter()
            .filter(|k| **k > low && **k <= high)
            .count()
    };
    let classes = [
        (
            format!("(-inf, {:.2}]", elpd.good_k),
            "good",
            count(f64::NEG_INFINITY, elpd.good_k),
        ),
        (
            format!("({:.2}, 1]", elpd.good_k),
            "bad",
            count(elpd.good_k, 1.0),
        ),
        (
            "(1, inf)".to_string(),
            "very bad",
            count(1.0, f64::INFINITY),
        ),
    ];
    let mut text = String::from("Pareto k̂         count    share\n");
    for (range, label, count) in classes {
        let _ = writeln!(
            text,
            "{:<16} {count:>6}   {:>5.1}%  {label}",
            range,
            100.0 * count as f64 / n
        );
    }
    text
}

/// The estimate as JSON.
fn estimate_json(dir: &Path, estimate: &RunEstimate) -> Value {
    let elpd = &estimate.elpd;
    let name = elpd.criterion.name();
    let observations: Vec<Value> = estimate
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut row = json!({ "name": n, "elpd": elpd.pointwise[i] });
            if let Some(k) = elpd.pareto_k.get(i) {
                row["pareto_k"] = json!(k);
            }
            row
        })
        .collect();
    json!({
        "run": dir.display().to_string(),
        "criterion": name,
        format!("elpd_{name}"): elpd.elpd,
        "se": elpd.se,
        format!("p_{name}"): elpd.p,
        "deviance": -2.0 * elpd.elpd,
        "draws": elpd.n_draws,
        "relative_efficiency": estimate.reff,
        "observations": elpd.pointwise.len(),
        "good_k": if elpd.criterion == Criterion::Loo { json!(elpd.good_k) } else { Value::Null },
        "warnings": warnings(estimate),
        "pointwise": observations,
    })
}

/// Runs `bdlc loo`.
pub fn run_loo(args: &LooArgs) -> Result<(), Failure> {
    let criterion = if args.waic {
        Criterion::Waic
    } else {
        Criterion::Loo
    };
    let estimate = estimate(&args.run, criterion)?;
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    {
        if args.json {
            println!("{:#}", estimate_json(&args.run, &estimate));
            return Ok(());
        }
        let text = loo_text(&args.run.display().to_string(), &estimate);
        print!("{text}");
        for warning in warnings(&estimate) {
            eprintln!("warning: {warning}");
        }
    }
    Ok(())
}

/// The printed result of `bdlc loo` (and the REPL's `:loo`): the estimate with its standard
/// error, the effective number of parameters, and for PSIS-LOO the table of k̂ classes.
pub fn loo_text(run: &str, estimate: &RunEstimate) -> String {
    let elpd = &estimate.elpd;
    let criterion = elpd.criterion;
    let name = criterion.name();
    let files = match estimate.files.as_slice() {
        [one] => format!(" ({})", file_name(one)),
        [first, .., last] => format!(" ({} … {})", file_name(first), file_name(last)),
        [] => String::new(),
    };
    let mut text = format!(
        "{} of {run} from {} posterior draws and {} observations{files}\n\n",
        if criterion == Criterion::Loo {
            "PSIS-LOO"
        } else {
            "WAIC"
        },
        elpd.n_draws,
        elpd.pointwise.len()
    );
    let _ = writeln!(text, "{:<10} {:>12} {:>10}", "", "estimate", "se");
    let _ = writeln!(
        text,
        "{:<10} {:>12} {:>10}",
        format!("elpd_{name}"),
        display_number(elpd.elpd),
        display_number(elpd.se)
    );
    let _ = writeln!(
        text,
        "{:<10} {:>12} {:>10}",
        format!("p_{name}"),
        display_number(elpd.p),
        ""
    );
    let _ = writeln!(
        text,
        "{:<10} {:>12} {:>10}",
        if criterion == Criterion::Loo {
            "looic"
        } else {
            "waic"
        },
        display_number(-2.0 * elpd.elpd),
        display_number(2.0 * elpd.se)
    );
    if criterion == Criterion::Loo {
        text.push('\n');
        text.push_str(&k_table(elpd));
    }
    text
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    )
}

/// Runs `bdlc compare`.
pub fn run_compare(args: &CompareArgs) -> Result<(), Failure> {
    let criterion = if args.waic {
        Criterion::Waic
    } else {
        Criterion::Loo
    };
    let estimates: Vec<RunEstimate> = args
        .runs
        .iter()
        .map(|run| estimate(run, criterion))
        .collect::<Result<_, _>>()?;
    let labels: Vec<String> = args
        .runs
        .iter()
        .map(|run| run.display().to_string())
        .collect();
    let rows = compare_estimates(&labels, &estimates, args.seed)?;
    #[allow(clippy::print_stdout, clippy::print_stderr)]
    {
        if args.json {
            let name = criterion.name();
            let table: Vec<Value> = rows
                .iter()
                .map(|row| {
                    json!({
                        "run": args.runs[row.model].display().to_string(),
                        "rank": row.rank,
                        format!("elpd_{name}"): row.elpd,
                        format!("p_{name}"): row.p,
                        "se": row.se,
                        "elpd_diff": row.elpd_diff,
                        "dse": row.dse,
                        "stacking_weight": row.stacking_weight,
                        "pseudo_bma_weight": row.pseudo_bma_weight,
                        "pseudo_bma_plus_weight": row.pseudo_bma_plus_weight,
                        "warning": row.warning,
                    })
                })
                .collect();
            println!("{:#}", json!({ "criterion": name, "models": table }));
            return Ok(());
        }
        print!("{}", compare_table(&labels, args.seed, criterion, &rows));
        for (run, estimate) in args.runs.iter().zip(&estimates) {
            for warning in warnings(estimate) {
                eprintln!("warning: {}: {warning}", run.display());
            }
        }
    }
    Ok(())
}

/// Compares estimates of the same observations (`labels` name the runs in errors): elpd
/// differences, stacking weights and pseudo-BMA+ weights from a Bayesian bootstrap seeded by
/// `seed`.
pub fn compare_estimates(
    labels: &[String],
    estimates: &[RunEstimate],
    seed: u64,
) -> Result<Vec<ComparedModel>, Failure> {
    let first = &estimates[0];
    for (label, estimate) in labels.iter().zip(estimates).skip(1) {
        if estimate.names != first.names {
            return Err(Failure::run(
                "E0962",
                format!(
                    "`{}` and `{label}` have different observations ({} and {}); models are compared on the same observations",
                    labels[0],
                    describe_observations(&first.names),
                    describe_observations(&estimate.names)
                ),
            ));
        }
    }
    let elpds: Vec<&Elpd> = estimates.iter().map(|e| &e.elpd).collect();
    let mut rng = stream_rng(seed, 0);
    let bootstrap = dirichlet_draws(&mut rng, first.names.len(), BOOTSTRAP_DRAWS);
    compare(&elpds, &bootstrap).map_err(|error| Failure::run("E0962", error.to_string()))
}

fn describe_observations(names: &[String]) -> String {
    match (names.first(), names.last()) {
        (Some(first), Some(last)) => format!("{} observations, {first} … {last}", names.len()),
        _ => "none".to_string(),
    }
}

/// The comparison table, best model first; `runs` names the runs in the order compared.
pub fn compare_table(
    runs: &[String],
    seed: u64,
    criterion: Criterion,
    rows: &[ComparedModel],
) -> String {
    let name = criterion.name();
    let labels: Vec<String> = rows.iter().map(|row| runs[row.model].clone()).collect();
    let width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut text = format!(
        "{:<width$} {:>4} {:>10} {:>8} {:>10} {:>8} {:>8} {:>9} {:>11}\n",
        "run",
        "rank",
        format!("elpd_{name}"),
        "se",
        "elpd_diff",
        "dse",
        format!("p_{name}"),
        "stacking",
        "pseudo-BMA+"
    );
    for (row, label) in rows.iter().zip(&labels) {
        let _ = writeln!(
            text,
            "{:<width$} {:>4} {:>10} {:>8} {:>10} {:>8} {:>8} {:>9.3} {:>11.3}{}",
            label,
            row.rank,
            display_number(row.elpd),
            display_number(row.se),
            display_number(row.elpd_diff),
            display_number(row.dse),
            display_number(row.p),
            row.stacking_weight,
            row.pseudo_bma_plus_weight,
            if row.warning { "  (warning)" } else { "" }
        );
    }
    text.push_str(&format!(
        "\nelpd_diff is the best model's elpd minus each model's, dse its standard error; a difference under about 4 (or under 2 dse) is small. Weights: stacking, and pseudo-BMA+ ({BOOTSTRAP_DRAWS} Bayesian-bootstrap draws, seed {}).\n",
        seed
    ));
    text
}
