//! Every method of `bdlc infer` from Python: the options arrive as `bdlc infer` flags and run
//! through the command line's own drivers (`bdlc::embed`), merged over the model's
//! `infer { }` block as on the command line; the result is reshaped into [`Draws`].

use crate::core::{data_values, CompiledModel, Draws, Failure, SiteDraws};
use bdl_ir::SettingValue;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

/// A run of any method, with what the sampling methods' [`Draws`] lack.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodRun {
    /// The method, as `--method` spells it.
    pub method: String,
    /// The draws: chains (one for the independent draws of a guide) × draws.
    pub draws: Draws,
    /// Whether the draws are Markov chains.
    pub mcmc: bool,
    /// The loss per optimisation step (SVI, MAP, Laplace; empty otherwise).
    pub losses: Vec<f64>,
    /// The method's facts (final loss, k̂, timings) as JSON text.
    pub facts: String,
    /// The run's warnings.
    pub warnings: Vec<String>,
}

/// The model's `infer { }` settings.
pub fn infer_block(compiled: &CompiledModel) -> &BTreeMap<String, SettingValue> {
    &compiled.program.settings
}

/// Runs the method that `flags` (`bdlc infer` flags, such as `["--method", "svi"]`) choose
/// over the model's `infer { }` block, on the data `arrays` (or the files the model names).
pub fn infer_with_flags(
    compiled: &CompiledModel,
    arrays: &[(String, Vec<u8>)],
    flags: &[String],
    stop: &AtomicBool,
) -> Result<MethodRun, Failure> {
    let rendered = |diagnostics: Vec<_>| Failure::rendered(&diagnostics, &compiled.sources);
    let prepared = bdlc::embed::prepare(flags, infer_block(compiled)).map_err(rendered)?;
    let model = compiled.instantiate(arrays, prepared.seed, false)?;
    let run = prepared.run(&model, stop).map_err(rendered)?;
    let width = run.width.max(1);
    let units = run.draws.len();
    let rows: Vec<usize> = run.draws.iter().map(|chain| chain.len() / width).collect();
    // Chains stopped early may differ in length; InferenceData needs a rectangle.
    let n = rows.iter().copied().min().unwrap_or(0);
    let sites = run
        .sites
        .iter()
        .map(|site| {
            let size: usize = site.shape.iter().product();
            let mut values = Vec::with_capacity(units * n * size);
            for chain in &run.draws {
                for row in chain.chunks(width).take(n) {
                    values.extend_from_slice(&row[site.first..site.first + size]);
                }
            }
            SiteDraws {
                name: site.name.clone(),
                shape: site.shape.clone(),
                values,
            }
        })
        .collect();
    let stats = run
        .stats
        .iter()
        .map(|(name, chains)| {
            let values = chains
                .iter()
                .flat_map(|chain| chain.iter().take(n).copied())
                .collect();
            (name.clone(), values)
        })
        .collect();
    // The table holds each observed element's draws chain after chain; one site's elements
    // become its vector, named `y.1`, `y.2`, … in order.
    let mut log_likelihood: Vec<SiteDraws> = Vec::new();
    let starts: Vec<usize> = rows
        .iter()
        .scan(0, |start, &count| {
            let first = *start;
            *start += count;
            Some(first)
        })
        .collect();
    for (name, column) in &run.log_likelihood {
        let site = name.split('.').next().unwrap_or(name).to_string();
        if log_likelihood.last().map(|s| &s.name) != Some(&site) {
            log_likelihood.push(SiteDraws {
                name: site,
                shape: vec![0],
                values: Vec::new(),
            });
        }
        if let Some(last) = log_likelihood.last_mut() {
            last.shape[0] += 1;
            // Collected element-major here, transposed below.
            for &start in &starts {
                last.values.extend_from_slice(&column[start..start + n]);
            }
        }
    }
    for site in &mut log_likelihood {
        let elements = site.shape[0];
        let per_element = units * n;
        let mut transposed = vec![f64::NAN; site.values.len()];
        for element in 0..elements {
            for draw in 0..per_element {
                transposed[draw * elements + element] = site.values[element * per_element + draw];
            }
        }
        site.values = transposed;
    }
    Ok(MethodRun {
        method: prepared.method_name.clone(),
        draws: Draws {
            units,
            draws: n,
            sites,
            stats,
            log_likelihood,
            data: data_values(&model),
            observed_sites: model
                .observed_sites()
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            interrupted: run.interrupted,
        },
        mcmc: run.mcmc,
        losses: run.losses,
        facts: run.facts,
        warnings: run.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::npy_frame;
    use std::path::Path;

    /// A conjugate model: `mu ~ Normal(0, 1)`, `y_i ~ Normal(mu, 1)`. With `infer { }` settings
    /// spliced in by [`coin`].
    fn coin(block: &str) -> CompiledModel {
        let source = format!(
            "data {{\n    y: vector[N]\n}}\n\nmodel {{\n    let mu = sample(\"mu\", Normal(0, 1))\n    \
             plate(\"data\", N) {{\n        observe(\"y\", Normal(mu, 1), y)\n    }}\n}}\n{block}"
        );
        CompiledModel::compile("coin.bdl", &source, Path::new(".")).expect("the model compiles")
    }

    fn data(values: &[f64]) -> Vec<(String, Vec<u8>)> {
        let mut bytes = npy_frame("<f8", &[values.len()], 8 * values.len());
        for value in values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        vec![("y".to_string(), bytes)]
    }

    fn flags(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    const Y: [f64; 4] = [0.5, 1.5, 1.0, 2.0];

    #[test]
    fn map_finds_the_closed_form_mode() {
        // The posterior is Normal(sum(y) / (n + 1), 1 / (n + 1)); its mode is 5 / 5 = 1.
        let run = infer_with_flags(
            &coin(""),
            &data(&Y),
            &flags(&["--method", "map"]),
            &AtomicBool::new(false),
        )
        .expect("MAP runs");
        assert_eq!(run.method, "map");
        assert!(!run.mcmc);
        let mu = &run.draws.sites[0];
        assert_eq!(mu.name, "mu");
        assert!((mu.values[0] - 1.0).abs() < 1e-3, "mode {}", mu.values[0]);
        assert!(!run.losses.is_empty());
        // One log-likelihood value per observation per draw: Normal(y | 1, 1).
        let log_lik = &run.draws.log_likelihood[0];
        assert_eq!(
            (log_lik.name.as_str(), log_lik.shape.as_slice()),
            ("y", &[4][..])
        );
        for (value, y) in log_lik.values.iter().zip(Y) {
            let expected =
                -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * (y - mu.values[0]).powi(2);
            assert!((value - expected).abs() < 1e-9, "{value} vs {expected}");
        }
    }

    #[test]
    fn svi_draws_come_from_the_fitted_guide() {
        let run = infer_with_flags(
            &coin(""),
            &data(&Y),
            &flags(&[
                "--method",
                "svi",
                "--guide",
                "diag",
                "--samples",
                "400",
                "--seed",
                "3",
            ]),
            &AtomicBool::new(false),
        )
        .expect("SVI runs");
        assert_eq!((run.draws.units, run.draws.draws), (1, 400));
        assert_eq!(run.draws.log_likelihood[0].values.len(), 400 * 4);
        // The exact posterior is Normal(1, sd 0.447); the guide's draws have that mean within
        // 5 Monte Carlo standard errors (0.447 / sqrt(400) = 0.022) plus the fit's own error.
        let mean = run.draws.sites[0].values.iter().sum::<f64>() / 400.0;
        assert!((mean - 1.0).abs() < 5.0 * 0.0224 + 0.05, "mean {mean}");
    }

    #[test]
    fn the_infer_block_sets_the_method_and_flags_override_it() {
        let model = coin("\ninfer {\n    method = laplace\n    samples = 50\n}\n");
        let stop = AtomicBool::new(false);
        let from_block = infer_with_flags(&model, &data(&Y), &[], &stop).expect("runs");
        assert_eq!(from_block.method, "laplace");
        assert_eq!(from_block.draws.draws, 50);
        let overridden =
            infer_with_flags(&model, &data(&Y), &flags(&["--method", "map"]), &stop).expect("runs");
        assert_eq!(overridden.method, "map");
    }

    #[test]
    fn nuts_through_the_flags_has_sampler_statistics() {
        let run = infer_with_flags(
            &coin(""),
            &data(&Y),
            &flags(&[
                "--method",
                "nuts",
                "--chains",
                "2",
                "--warmup",
                "100",
                "--samples",
                "50",
            ]),
            &AtomicBool::new(false),
        )
        .expect("NUTS runs");
        assert!(run.mcmc);
        assert_eq!((run.draws.units, run.draws.draws), (2, 50));
        let names: Vec<&str> = run.draws.stats.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["energy", "diverging"]);
        assert!(run.draws.stats.iter().all(|(_, v)| v.len() == 100));
    }

    #[test]
    fn bad_flags_carry_the_option_code() {
        let stop = AtomicBool::new(false);
        let unknown = infer_with_flags(&coin(""), &data(&Y), &flags(&["--colour", "red"]), &stop)
            .expect_err("an unknown flag is refused");
        assert_eq!(unknown.codes, ["E0937"]);
        let wrong = infer_with_flags(
            &coin(""),
            &data(&Y),
            &flags(&["--method", "svi", "--max-depth", "3"]),
            &stop,
        )
        .expect_err("a flag of another method is refused");
        assert!(!wrong.codes.is_empty(), "{}", wrong.message);
        assert!(
            wrong.message.contains("max-depth") || wrong.message.contains("max_depth"),
            "{}",
            wrong.message
        );
    }
}
