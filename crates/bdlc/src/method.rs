//! The inference method of a run, parsed once from the flags and the model's `infer` block.
//!
//! [`Method::resolve`] chooses the method (the `--method` flag, else the block's `method`, else
//! NUTS), rejects every flag given on the command line that the method does not read (a flag that
//! does not apply is an error naming the flag and the method, never silently ignored), and parses
//! the method's own options into the settings `bdl-infer` runs with. The modules under `run/`
//! receive the parsed [`Method`] and never look at flags or method names again. Settings of the
//! model's `infer` block that a method does not read are ignored, so that a model written for one
//! method can be run with another from the command line.

use crate::session::Failure;
use crate::settings::{InferFlags, Resolved};
use bdl_infer::ensemble::{EnsembleSettings, MemberInit, SwagSettings};
use bdl_infer::gibbs::GibbsSettings;
use bdl_infer::mcmc::{Algorithm, HmcLength, McmcSettings, MetricKind};
use bdl_infer::sgmcmc::{SgmcmcAlgorithm, SgmcmcSettings, StepSizeSchedule};
use bdl_infer::vi::{
    ElboKind, GuideKind, KlWeightSchedule, LearningRateSchedule, OptimizerKind, SviSettings,
};
use bdl_runtime::conjugate::GibbsBlocks;
use std::path::PathBuf;

/// The name of a method, as `--method` and the `infer` block spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodName {
    /// Stochastic variational inference with an auto-guide.
    Svi,
    /// The posterior mode (a delta guide).
    Map,
    /// The mode with a Gaussian from the Hessian there.
    Laplace,
    /// The No-U-Turn Sampler.
    Nuts,
    /// Static Hamiltonian Monte Carlo.
    Hmc,
    /// Independent draws from the prior.
    Prior,
    /// The closed-form posterior of a conjugate model.
    Exact,
    /// A deep ensemble of MAP fits (MultiSWAG with `--swag`).
    Ensemble,
    /// Stochastic-gradient Langevin dynamics.
    Sgld,
    /// Stochastic-gradient Hamiltonian Monte Carlo.
    Sghmc,
    /// Metropolis-within-Gibbs with conjugate blocks.
    Gibbs,
    /// Multi-path Pathfinder: normal approximations along L-BFGS paths, importance resampled.
    Pathfinder,
    /// Variationally inferred sampling: a diagonal guide whose draws are refined by a learned
    /// kinetic Langevin sampler, fitted jointly on the refined ELBO.
    Vis,
}

impl MethodName {
    /// Every method, in the order the help lists them.
    pub const ALL: [MethodName; 13] = [
        MethodName::Svi,
        MethodName::Map,
        MethodName::Laplace,
        MethodName::Nuts,
        MethodName::Hmc,
        MethodName::Prior,
        MethodName::Exact,
        MethodName::Ensemble,
        MethodName::Sgld,
        MethodName::Sghmc,
        MethodName::Gibbs,
        MethodName::Pathfinder,
        MethodName::Vis,
    ];

    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodName::Svi => "svi",
            MethodName::Map => "map",
            MethodName::Laplace => "laplace",
            MethodName::Nuts => "nuts",
            MethodName::Hmc => "hmc",
            MethodName::Prior => "prior",
            MethodName::Exact => "exact",
            MethodName::Ensemble => "ensemble",
            MethodName::Sgld => "sgld",
            MethodName::Sghmc => "sghmc",
            MethodName::Gibbs => "gibbs",
            MethodName::Pathfinder => "pathfinder",
            MethodName::Vis => "vis",
        }
    }

    /// The method of this name.
    pub fn parse(name: &str) -> Option<MethodName> {
        MethodName::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Where an SVI or MAP fit starts, resolved against the model when the run begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitChoice {
    /// SVI from the L-BFGS MAP point in standardised coordinates (the default of `--steps
    /// auto`); MAP and Laplace start L-BFGS from the median of prior draws.
    Map,
    /// The median of prior draws (Pyro's default).
    Median,
    /// Uniform in (−2, 2) on the unconstrained scale (NumPyro's and Stan's default).
    Uniform,
    /// Zero on the unconstrained scale, params at their initial values.
    Zero,
    /// An earlier run's `params.json` (or its directory): its MAP point, or its guide resumed.
    File(PathBuf),
}

/// Where the chains of NUTS and HMC start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum McmcInit {
    /// Uniform in (−2, 2) on the unconstrained scale (Stan's default).
    Uniform,
    /// Draws from an earlier run's guide, with its variances as the initial metric.
    File(PathBuf),
    /// Draws from a Pathfinder run, with its best normal's variances as the initial metric.
    Pathfinder,
}

/// Pathfinder as a method.
#[derive(Clone, Debug)]
pub struct PathfinderMethod {
    /// The paths and their draws.
    pub settings: bdl_infer::vi::PathfinderSettings,
    /// The draws resampled from the pooled paths.
    pub samples: usize,
}

/// Variationally inferred sampling as a method.
#[derive(Clone, Debug)]
pub struct VisMethod {
    /// The optimiser, the stationarity test, the step cap, the particles and the seed (the
    /// guide is always diagonal).
    pub settings: SviSettings,
    /// T, the learned sampler's steps per particle.
    pub refine_steps: usize,
    /// The refined draws written to the draws file (and weighed for k̂).
    pub samples: usize,
}

/// SVI, MAP or Laplace: an optimised guide, then draws from it.
#[derive(Clone, Debug)]
pub struct SviMethod {
    /// `svi`, `map` or `laplace`.
    pub name: MethodName,
    /// The optimisation's settings (the guide included).
    pub settings: SviSettings,
    /// Where optimisation starts.
    pub init: InitChoice,
    /// Draws from the fitted guide (1 for a delta guide).
    pub draws: usize,
    /// MAP and Laplace by L-BFGS (the default unless a first-order optimiser or one of its
    /// settings is named), with at most this many iterations.
    pub lbfgs: Option<usize>,
    /// Draws from the fitted guide for its Pareto-k̂ diagnostic (0: skipped).
    pub psis_draws: usize,
    /// Whether the guide's draws are resampled with their PSIS weights.
    pub resample: bool,
    /// Whether `--optimizer lbfgs` was given (an error on a subsampled model, rather than a
    /// fall back to Adam).
    pub lbfgs_named: bool,
}

/// NUTS or static HMC.
#[derive(Clone, Debug)]
pub struct McmcMethod {
    /// `nuts` or `hmc`.
    pub name: MethodName,
    /// The sampler's settings.
    pub settings: McmcSettings,
    /// Whether warm-up draws are written to the chain files too.
    pub save_warmup: bool,
    /// Where the chains start.
    pub init: McmcInit,
}

/// SGLD or SGHMC.
#[derive(Clone, Debug)]
pub struct SgmcmcMethod {
    /// `sgld` or `sghmc`.
    pub name: MethodName,
    /// The sampler's settings; chains start at the prior's median, set when the run begins.
    pub settings: SgmcmcSettings,
}

/// A method with its own options, parsed.
#[derive(Clone, Debug)]
pub enum Method {
    /// Independent prior draws.
    Prior {
        /// How many.
        samples: usize,
        /// The seed.
        seed: u64,
    },
    /// SVI, MAP or Laplace.
    Svi(SviMethod),
    /// NUTS or static HMC.
    Mcmc(McmcMethod),
    /// The closed-form posterior of a conjugate model.
    Exact {
        /// Draws from it.
        samples: usize,
        /// The seed.
        seed: u64,
    },
    /// A deep ensemble, or MultiSWAG.
    Ensemble(EnsembleSettings),
    /// SGLD or SGHMC.
    Sgmcmc(SgmcmcMethod),
    /// Multi-path Pathfinder.
    Pathfinder(PathfinderMethod),
    /// Variationally inferred sampling.
    Vis(VisMethod),
    /// Metropolis-within-Gibbs.
    Gibbs {
        /// The blocks asked for (`None`: one block per site).
        blocks: GibbsBlocks,
        /// The sampler's settings.
        settings: GibbsSettings,
    },
}

/// The flags of `bdlc infer` that only some methods read, with the methods that read them.
/// `--data`, `--method` and `--seed` apply to every method. A method reads `--samples` as
/// its number of draws; the ensemble reads it only with `--swag`, which [`check_flags`] handles.
const FLAG_METHODS: &[(&str, &[MethodName])] = {
    use MethodName::*;
    &[
        ("guide", &[Svi]),
        ("rank", &[Svi]),
        ("flow-layers", &[Svi]),
        ("flow-hidden", &[Svi]),
        (
            "steps",
            &[Svi, Map, Laplace, Hmc, Ensemble, Pathfinder, Vis],
        ),
        ("refine-steps", &[Vis]),
        ("paths", &[Pathfinder]),
        ("lr", &[Svi, Map, Laplace, Ensemble, Vis]),
        ("lr-final", &[Svi, Map, Laplace, Ensemble, Vis]),
        ("clip-norm", &[Svi, Map, Laplace, Ensemble, Vis]),
        ("optimizer", &[Svi, Map, Laplace, Ensemble, Vis]),
        ("elbo", &[Svi, Map, Laplace, Ensemble]),
        ("kl-weight", &[Svi, Map, Laplace, Ensemble]),
        ("kl-anneal", &[Svi, Map, Laplace, Ensemble]),
        ("particles", &[Svi, Map, Laplace, Vis]),
        ("init", &[Svi, Map, Laplace, Nuts, Hmc]),
        ("psis-draws", &[Svi, Map, Laplace, Pathfinder]),
        ("resample", &[Svi]),
        (
            "samples",
            &[
                Svi, Laplace, Nuts, Hmc, Prior, Exact, Ensemble, Sgld, Sghmc, Gibbs, Pathfinder,
                Vis,
            ],
        ),
        ("chains", &[Nuts, Hmc, Sgld, Sghmc, Gibbs]),
        ("warmup", &[Nuts, Hmc, Sgld, Sghmc, Gibbs]),
        ("metric", &[Nuts, Hmc]),
        ("target-accept", &[Nuts, Hmc]),
        ("max-depth", &[Nuts]),
        ("save-warmup", &[Nuts, Hmc]),
        ("members", &[Ensemble]),
        ("swag", &[Ensemble]),
        ("thin", &[Sgld, Sghmc, Gibbs]),
        ("step-size", &[Sgld, Sghmc]),
        ("blocks", &[Gibbs]),
        ("chain-offset", &[Nuts, Hmc, Ensemble]),
    ]
};

/// The method-specific flags given on the command line, by their `--` names.
fn given_flags(flags: &InferFlags) -> Vec<&'static str> {
    let mut given = Vec::new();
    let mut note = |name: &'static str, present: bool| {
        if present {
            given.push(name);
        }
    };
    note("guide", flags.guide.is_some());
    note("rank", flags.rank.is_some());
    note("flow-layers", flags.flow_layers.is_some());
    note("flow-hidden", flags.flow_hidden.is_some());
    note("steps", flags.steps.is_some());
    note("lr", flags.lr.is_some());
    note("lr-final", flags.lr_final.is_some());
    note("clip-norm", flags.clip_norm.is_some());
    note("optimizer", flags.optimizer.is_some());
    note("elbo", flags.elbo.is_some());
    note("kl-weight", flags.kl_weight.is_some());
    note("kl-anneal", flags.kl_anneal.is_some());
    note("particles", flags.particles.is_some());
    note("init", flags.init.is_some());
    note("psis-draws", flags.psis_draws.is_some());
    note("resample", flags.resample);
    note("samples", flags.samples.is_some());
    note("chains", flags.chains.is_some());
    note("warmup", flags.warmup.is_some());
    note("metric", flags.metric.is_some());
    note("target-accept", flags.target_accept.is_some());
    note("max-depth", flags.max_depth.is_some());
    note("save-warmup", flags.save_warmup);
    note("members", flags.members.is_some());
    note("swag", flags.swag);
    note("thin", flags.thin.is_some());
    note("step-size", flags.step_size.is_some());
    note("blocks", flags.blocks.is_some());
    note("paths", flags.paths.is_some());
    note("refine-steps", flags.refine_steps.is_some());
    note("chain-offset", flags.chain_offset.is_some());
    given
}

/// The methods that read flag `--name` (every method for flags not in [`FLAG_METHODS`]).
pub fn methods_reading(name: &str) -> Vec<MethodName> {
    FLAG_METHODS
        .iter()
        .find(|(flag, _)| *flag == name)
        .map_or_else(|| MethodName::ALL.to_vec(), |(_, methods)| methods.to_vec())
}

/// Rejects the first flag given on the command line that `method` does not read.
fn check_flags(resolved: &Resolved, method: MethodName) -> Result<(), Failure> {
    let flags = resolved.flags();
    for name in given_flags(flags) {
        let methods = methods_reading(name);
        if !methods.contains(&method) {
            let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            return Err(Failure::usage(
                "E0909",
                format!("`--{name}` does not apply to method `{}`", method.as_str()),
                Some(format!(
                    "`--{name}` is read by: {}; leave it out or choose one of those methods",
                    names.join(", ")
                )),
            ));
        }
    }
    // The ensemble draws `--samples` draws per member only from SWAG's Gaussians.
    if method == MethodName::Ensemble
        && flags.samples.is_some()
        && !resolved.flag("swag", flags.swag)
    {
        return Err(Failure::usage(
            "E0909",
            "`--samples` does not apply to method `ensemble` without `--swag`",
            Some(
                "a plain ensemble has one draw per member; add `--swag` for MultiSWAG's draws"
                    .into(),
            ),
        ));
    }
    Ok(())
}

impl Method {
    /// Chooses the method (`method_override`, else `--method`, else the block's, else NUTS),
    /// checks that every flag given applies to it, and parses its options.
    pub fn resolve(
        resolved: &Resolved,
        method_override: Option<MethodName>,
    ) -> Result<Method, Failure> {
        let name = match method_override {
            Some(name) => name,
            None => {
                let names: Vec<&str> = MethodName::ALL.iter().map(|m| m.as_str()).collect();
                let chosen = resolved.choice("method", &resolved.flags().method, "nuts", &names)?;
                MethodName::parse(&chosen).ok_or_else(|| {
                    Failure::usage("E0907", format!("unknown method `{chosen}`"), None)
                })?
            }
        };
        check_flags(resolved, name)?;
        let flags = resolved.flags();
        Ok(match name {
            MethodName::Prior => Method::Prior {
                samples: resolved.count("samples", flags.samples, 1000, 1)?,
                seed: resolved.seed()?,
            },
            MethodName::Svi | MethodName::Map | MethodName::Laplace => {
                let settings = svi_settings(resolved, name, true)?;
                // The warm start from the MAP point is the default of `--steps auto` runs; a
                // run with an explicit step count starts where it always did unless `--init
                // map` asks otherwise.
                let default_init = if settings.convergence.stop_when_converged {
                    "map"
                } else {
                    "median"
                };
                let init = match init_file(resolved) {
                    Some(path) => InitChoice::File(path),
                    None => match init_choice(
                        resolved,
                        default_init,
                        &["map", "median", "uniform", "zero"],
                    )?
                    .as_str()
                    {
                        "map" => InitChoice::Map,
                        "uniform" => InitChoice::Uniform,
                        "zero" => InitChoice::Zero,
                        _ => InitChoice::Median,
                    },
                };
                let draws = if matches!(settings.guide, GuideKind::Delta) {
                    1
                } else {
                    resolved.count("samples", flags.samples, 1000, 1)?
                };
                let lbfgs = if name != MethodName::Svi && lbfgs_requested(resolved)? {
                    Some(resolved.count(
                        "steps",
                        flags.steps_count(),
                        bdl_infer::vi::LbfgsSettings::default().max_iterations,
                        1,
                    )?)
                } else {
                    None
                };
                let psis_draws = resolved.count(
                    "psis_draws",
                    flags.psis_draws,
                    crate::vi_checks::DEFAULT_PSIS_DRAWS,
                    0,
                )?;
                let resample = resolved.flag("resample", flags.resample);
                if resample && (psis_draws == 0 || matches!(settings.guide, GuideKind::Delta)) {
                    return Err(Failure::usage(
                        "E0906",
                        "`--resample` needs a guide with a density and `--psis-draws` above 0",
                        None,
                    ));
                }
                Method::Svi(SviMethod {
                    name,
                    settings,
                    init,
                    draws,
                    lbfgs,
                    psis_draws,
                    resample,
                    lbfgs_named: flags.optimizer.as_deref() == Some("lbfgs"),
                })
            }
            MethodName::Nuts | MethodName::Hmc => Method::Mcmc(McmcMethod {
                name,
                settings: mcmc_settings(resolved, name)?,
                save_warmup: flags.save_warmup,
                init: match init_file(resolved) {
                    Some(path) => McmcInit::File(path),
                    None => match init_choice(resolved, "uniform", &["uniform", "pathfinder"])?
                        .as_str()
                    {
                        "pathfinder" => McmcInit::Pathfinder,
                        _ => McmcInit::Uniform,
                    },
                },
            }),
            MethodName::Pathfinder => Method::Pathfinder(PathfinderMethod {
                settings: bdl_infer::vi::PathfinderSettings {
                    paths: resolved.count("paths", flags.paths, 4, 1)?,
                    max_iterations: resolved.count("steps", flags.steps_count(), 1000, 1)?,
                    draws_per_path: resolved.count("psis_draws", flags.psis_draws, 1000, 10)?,
                    seed: resolved.seed()?,
                    ..bdl_infer::vi::PathfinderSettings::default()
                },
                samples: resolved.count("samples", flags.samples, 1000, 1)?,
            }),
            MethodName::Vis => Method::Vis(VisMethod {
                settings: svi_settings(resolved, name, true)?,
                refine_steps: resolved.count(
                    "refine_steps",
                    flags.refine_steps,
                    bdl_infer::vi::vis::DEFAULT_REFINE_STEPS,
                    1,
                )?,
                samples: resolved.count("samples", flags.samples, 1000, 10)?,
            }),
            MethodName::Exact => Method::Exact {
                seed: resolved.seed()?,
                samples: resolved.count("samples", flags.samples, 4000, 1)?,
            },
            MethodName::Ensemble => Method::Ensemble(ensemble_settings(resolved)?),
            MethodName::Sgld | MethodName::Sghmc => Method::Sgmcmc(SgmcmcMethod {
                name,
                settings: sgmcmc_settings(resolved, name)?,
            }),
            MethodName::Gibbs => {
                let blocks = GibbsBlocks::parse(
                    flags
                        .blocks
                        .as_deref()
                        .or(resolved.name("blocks").as_deref()),
                )
                .map_err(|message| Failure::usage("E0908", message, None))?;
                Method::Gibbs {
                    blocks,
                    settings: GibbsSettings {
                        chains: resolved.count("chains", flags.chains, 4, 1)?,
                        warmup: resolved.count("warmup", flags.warmup, 1000, 0)?,
                        samples: resolved.count("samples", flags.samples, 1000, 1)?,
                        thin: resolved.count("thin", flags.thin, 1, 1)?,
                        seed: resolved.seed()?,
                        collapse: true,
                        ..GibbsSettings::default()
                    },
                }
            }
        })
    }
}

/// The file `--init` names, when it names one (a path rather than a built-in starting point).
fn init_file(resolved: &Resolved) -> Option<PathBuf> {
    let value = resolved.flags().init.clone()?;
    crate::warm_start::WarmStart::names_a_file(&value).then(|| PathBuf::from(value))
}

/// The built-in starting point `--init` (or the block's `init`) names, one of `choices`; the
/// hint of an unknown name mentions files too.
fn init_choice(resolved: &Resolved, default: &str, choices: &[&str]) -> Result<String, Failure> {
    resolved
        .choice("init", &resolved.flags().init, default, choices)
        .map_err(|mut failure| {
            for diagnostic in &mut failure.diagnostics {
                if let Some(hint) = &mut diagnostic.hint {
                    hint.push_str(
                        ", or the path of an earlier run's `params.json` (or its `--out` \
                         directory)",
                    );
                }
            }
            failure
        })
}

/// Whether MAP or Laplace runs L-BFGS: the default, unless a first-order optimiser or one of
/// its settings is named.
fn lbfgs_requested(resolved: &Resolved) -> Result<bool, Failure> {
    let flags = resolved.flags();
    let first_order_hint = flags.lr.is_some()
        || resolved.has("lr")
        || flags.lr_final.is_some()
        || flags.clip_norm.is_some();
    let default = if first_order_hint { "adam" } else { "lbfgs" };
    let name = resolved.choice(
        "optimizer",
        &flags.optimizer,
        default,
        &["lbfgs", "adam", "clipped_adam", "sgd"],
    )?;
    Ok(name == "lbfgs")
}

/// The optimisation settings of SVI, MAP and Laplace (and of each ensemble member, as MAP);
/// `auto_steps` lets `--steps auto` (the default of SVI, MAP and Laplace) set a step cap and
/// stop at convergence.
fn svi_settings(
    resolved: &Resolved,
    method: MethodName,
    auto_steps: bool,
) -> Result<SviSettings, Failure> {
    let flags = resolved.flags();
    let guide_name = match method {
        MethodName::Map | MethodName::Ensemble => "delta".to_string(),
        MethodName::Laplace => "laplace".to_string(),
        _ => resolved.choice(
            "guide",
            &flags.guide,
            "diag",
            &[
                "diag", "normal", "mvn", "lowrank", "delta", "laplace", "iaf",
            ],
        )?,
    };
    let mut guide = GuideKind::from_name(&guide_name).unwrap_or_default();
    if let GuideKind::LowRankMultivariateNormal { rank } = &mut guide {
        if flags.rank.is_some() || resolved.has("rank") {
            *rank = Some(resolved.count("rank", flags.rank, 1, 1)?);
        }
    }
    let flow_flags = flags.flow_layers.is_some()
        || flags.flow_hidden.is_some()
        || resolved.has("flow_layers")
        || resolved.has("flow_hidden");
    match &mut guide {
        GuideKind::Iaf { layers, hidden } => {
            *layers = resolved.count(
                "flow_layers",
                flags.flow_layers,
                bdl_infer::vi::guide::DEFAULT_IAF_LAYERS,
                1,
            )?;
            if flags.flow_hidden.is_some() || resolved.has("flow_hidden") {
                *hidden = Some(resolved.count("flow_hidden", flags.flow_hidden, 1, 1)?);
            }
        }
        _ if flow_flags => {
            return Err(Failure::usage(
                "E0957",
                format!(
                    "`--flow-layers` and `--flow-hidden` shape the iaf guide, but the guide is \
                     `{guide_name}`"
                ),
                Some("add `--guide iaf`, or drop the flow flags".to_string()),
            ));
        }
        _ => {}
    }
    let auto = auto_steps && resolved.steps_auto();
    let steps = if auto {
        crate::vi_checks::AUTO_STEP_CAP
    } else {
        resolved.count("steps", flags.steps_count(), 1000, 1)?
    };
    let learning_rate = resolved.positive("lr", flags.lr, 0.01)?;
    let optimizer_name = resolved.choice(
        "optimizer",
        &flags.optimizer,
        "adam",
        &["adam", "clipped_adam", "sgd", "lbfgs"],
    )?;
    if optimizer_name == "lbfgs" && (method == MethodName::Svi || !auto_steps) {
        return Err(Failure::usage(
            "E0906",
            "`--optimizer lbfgs` applies to `--method map` and `--method laplace` only",
            Some("SVI's loss is a noisy estimate; use adam, clipped_adam or sgd".to_string()),
        ));
    }
    let mut kind = match optimizer_name.as_str() {
        "clipped_adam" => OptimizerKind::ClippedAdam(Default::default()),
        "sgd" => OptimizerKind::Sgd(Default::default()),
        _ => OptimizerKind::Adam(Default::default()),
    };
    kind.set_learning_rate(learning_rate);
    let mut optimizer_schedule = LearningRateSchedule::Constant;
    let elbo = match resolved
        .choice("elbo", &flags.elbo, "trace", &["trace", "analytic_kl"])?
        .as_str()
    {
        "analytic_kl" => ElboKind::AnalyticKl,
        _ => ElboKind::Trace,
    };
    let weight = match flags.kl_weight {
        Some(w) => w,
        None => resolved.positive("kl_weight", None, 1.0)?,
    };
    let anneal = resolved.count("kl_anneal", flags.kl_anneal, 0, 0)?;
    let kl_weight = if anneal > 0 {
        KlWeightSchedule::LinearWarmup {
            steps: anneal,
            final_weight: weight,
        }
    } else {
        KlWeightSchedule::Constant { weight }
    };
    if flags.lr_final.is_some() || resolved.has("lr_final") {
        let final_rate = resolved.positive("lr_final", flags.lr_final, learning_rate)?;
        // γ^steps = final / initial: PyTorch's ExponentialLR stepped once per step.
        let gamma = (final_rate / learning_rate).powf(1.0 / steps as f64);
        optimizer_schedule = LearningRateSchedule::Exponential { gamma };
    }
    let max_gradient_norm = if flags.clip_norm.is_some() || resolved.has("clip_norm") {
        Some(resolved.positive("clip_norm", flags.clip_norm, 1.0)?)
    } else {
        None
    };
    let mut settings = SviSettings {
        guide,
        steps,
        particles: resolved.count("particles", flags.particles, 1, 1)?,
        seed: resolved.seed()?,
        elbo,
        kl_weight,
        ..SviSettings::default()
    };
    settings.optimizer.kind = kind;
    settings.optimizer.schedule = optimizer_schedule;
    settings.optimizer.max_gradient_norm = max_gradient_norm;
    settings.convergence.stop_when_converged = auto;
    Ok(settings)
}

/// The settings of NUTS and static HMC.
fn mcmc_settings(resolved: &Resolved, method: MethodName) -> Result<McmcSettings, Failure> {
    let flags = resolved.flags();
    let metric = match resolved
        .choice("metric", &flags.metric, "diag", &["diag", "dense"])?
        .as_str()
    {
        "dense" => MetricKind::Dense,
        _ => MetricKind::Diag,
    };
    let algorithm = if method == MethodName::Hmc {
        Algorithm::Hmc(HmcLength::Steps(resolved.count(
            "steps",
            flags.steps_count(),
            16,
            1,
        )?))
    } else {
        Algorithm::Nuts
    };
    Ok(McmcSettings {
        chains: resolved.count("chains", flags.chains, 4, 1)?,
        warmup: resolved.count("warmup", flags.warmup, 1000, 0)?,
        samples: resolved.count("samples", flags.samples, 1000, 1)?,
        seed: resolved.seed()?,
        first_chain: chain_offset(resolved)?,
        algorithm,
        max_depth: resolved.count("max_depth", flags.max_depth, 10, 1)?,
        target_accept: resolved.fraction("target_accept", flags.target_accept, 0.8)?,
        metric,
        ..McmcSettings::default()
    })
}

/// `--chain-offset`: the index of this run's first chain or member in a split run (0 when not
/// given).
fn chain_offset(resolved: &Resolved) -> Result<usize, Failure> {
    resolved.count("chain_offset", resolved.flags().chain_offset, 0, 0)
}

/// The settings of a deep ensemble: MAP fits, and SWAG around each with `--swag`.
fn ensemble_settings(resolved: &Resolved) -> Result<EnsembleSettings, Failure> {
    let flags = resolved.flags();
    let members = resolved.count("members", flags.members, 5, 1)?;
    let mut map = svi_settings(resolved, MethodName::Ensemble, false)?;
    map.particles = 1;
    let swag = if resolved.flag("swag", flags.swag) {
        // SWA moments are collected along the same optimiser the members were fitted with, at
        // its learning rate: a plain SGD step at Adam's rate diverges on likelihoods summed over
        // hundreds of points.
        Some(SwagSettings {
            draws: resolved.count("samples", flags.samples, 20, 1)?,
            optimizer: map.optimizer.clone(),
            ..SwagSettings::default()
        })
    } else {
        None
    };
    Ok(EnsembleSettings {
        members,
        seed: map.seed,
        map: map.clone(),
        init: MemberInit::default(),
        swag,
        first_member: chain_offset(resolved)?,
        ..EnsembleSettings::default()
    })
}

/// The settings of SGLD and SGHMC (their start is set when the run begins).
fn sgmcmc_settings(resolved: &Resolved, method: MethodName) -> Result<SgmcmcSettings, Failure> {
    let flags = resolved.flags();
    let step_size = match flags.step_size {
        Some(value) => StepSizeSchedule::Constant {
            step_size: resolved.positive("step_size", Some(value), 1e-4)?,
        },
        None if resolved.has("step_size") => StepSizeSchedule::Constant {
            step_size: resolved.positive("step_size", None, 1e-4)?,
        },
        None => StepSizeSchedule::default(),
    };
    Ok(SgmcmcSettings {
        algorithm: if method == MethodName::Sghmc {
            SgmcmcAlgorithm::sghmc(0.1)
        } else {
            SgmcmcAlgorithm::Sgld
        },
        chains: resolved.count("chains", flags.chains, 4, 1)?,
        burn_in: resolved.count("warmup", flags.warmup, 1000, 0)?,
        samples: resolved.count("samples", flags.samples, 1000, 1)?,
        thin: resolved.count("thin", flags.thin, 1, 1)?,
        seed: resolved.seed()?,
        step_size,
        ..SgmcmcSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_name_parses_back() {
        for method in MethodName::ALL {
            assert_eq!(MethodName::parse(method.as_str()), Some(method));
        }
        assert_eq!(MethodName::parse("nutz"), None);
    }

    #[test]
    fn every_method_reads_some_flag_and_every_flag_has_a_reader() {
        for (flag, methods) in FLAG_METHODS {
            assert!(!methods.is_empty(), "`--{flag}` applies to no method");
        }
        for method in MethodName::ALL {
            assert!(
                FLAG_METHODS
                    .iter()
                    .any(|(_, methods)| methods.contains(&method)),
                "method `{}` reads no flag",
                method.as_str()
            );
        }
    }

    #[test]
    fn an_inapplicable_flag_is_named_with_the_method() {
        let flags = InferFlags {
            lr: Some(0.1),
            ..InferFlags::default()
        };
        let block = std::collections::BTreeMap::new();
        let resolved = Resolved::new(&flags, &block);
        let failure = Method::resolve(&resolved, Some(MethodName::Nuts)).unwrap_err();
        let message = &failure.diagnostics[0].message;
        assert!(
            message.contains("`--lr`") && message.contains("`nuts`"),
            "{message}"
        );
        assert_eq!(failure.exit_code, 2);
        assert!(Method::resolve(&resolved, Some(MethodName::Svi)).is_ok());
    }
}
