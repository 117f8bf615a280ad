//! Inference settings: the command line's flags over the model's `infer { ... }` block over the
//! defaults.

use crate::device::DeviceChoice;
use crate::session::Failure;
use bdl_ir::SettingValue;
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The flags of `bdlc infer` (and of the REPL's `:infer`).
#[derive(Args, Debug, Clone, Default)]
pub struct InferFlags {
    /// Data files (CSV or Stan-style JSON), replacing those the model names; repeatable.
    #[arg(long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// svi, map, laplace, nuts, hmc, prior, exact, ensemble, sgld, sghmc, gibbs or pathfinder.
    #[arg(long)]
    pub method: Option<String>,
    /// The SVI guide: diag, mvn, lowrank, delta, laplace or iaf (an inverse autoregressive flow).
    #[arg(long)]
    pub guide: Option<String>,
    /// Optimisation steps (SVI, MAP), or leapfrog steps per transition (static HMC). SVI, MAP
    /// and Laplace take `auto` (their default): run until the loss is stationary, at most
    /// 100,000 steps. Pathfinder: the L-BFGS iterations of each path (1,000 by default).
    #[arg(long)]
    pub steps: Option<Steps>,
    /// The learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Decay the learning rate exponentially to this value at the last step.
    #[arg(long = "lr-final")]
    pub lr_final: Option<f64>,
    /// Rescale gradients whose Euclidean norm exceeds this.
    #[arg(long = "clip-norm")]
    pub clip_norm: Option<f64>,
    /// Particles per ELBO estimate, evaluated in parallel.
    #[arg(long)]
    pub particles: Option<i64>,
    /// Markov chains, run in parallel.
    #[arg(long)]
    pub chains: Option<i64>,
    /// Warm-up iterations per chain.
    #[arg(long)]
    pub warmup: Option<i64>,
    /// Kept draws per chain (MCMC), or draws from the fitted guide (SVI).
    #[arg(long)]
    pub samples: Option<i64>,
    /// The seed of every random draw.
    #[arg(long)]
    pub seed: Option<i64>,
    /// The NUTS/HMC metric: diag or dense.
    #[arg(long)]
    pub metric: Option<String>,
    /// The NUTS target acceptance rate.
    #[arg(long = "target-accept")]
    pub target_accept: Option<f64>,
    /// The maximum NUTS tree depth.
    #[arg(long = "max-depth")]
    pub max_depth: Option<i64>,
    /// The ELBO: trace or analytic_kl.
    #[arg(long)]
    pub elbo: Option<String>,
    /// The KL (prior) weight of the ELBO, as in Bayes-by-backprop.
    #[arg(long = "kl-weight")]
    pub kl_weight: Option<f64>,
    /// Warm the KL weight up linearly over this many steps.
    #[arg(long = "kl-anneal")]
    pub kl_anneal: Option<i64>,
    /// The optimiser: adam, clipped_adam or sgd.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// The rank of the lowrank guide.
    #[arg(long)]
    pub rank: Option<i64>,
    /// The number of affine autoregressive layers of the iaf guide (2 by default).
    #[arg(long = "flow-layers")]
    pub flow_layers: Option<i64>,
    /// The hidden width of each iaf layer's MADE network (3 d + 1 by default, d the number of
    /// latent coordinates).
    #[arg(long = "flow-hidden")]
    pub flow_hidden: Option<i64>,
    /// Ensemble members.
    #[arg(long)]
    pub members: Option<i64>,
    /// Keep every n-th draw (SG-MCMC, Gibbs).
    #[arg(long)]
    pub thin: Option<i64>,
    /// The step size (SG-MCMC).
    #[arg(long = "step-size")]
    pub step_size: Option<f64>,
    /// Where optimisation starts: map (SVI from the L-BFGS MAP point in standardised
    /// coordinates; the default with `--steps auto`), median (of prior draws, Pyro's default, and
    /// the default otherwise), uniform (in ±2 on the unconstrained scale, NumPyro's and Stan's
    /// default) or zero; or FILE, an earlier run's params.json or its directory (SVI, MAP,
    /// Laplace, and NUTS/HMC: chains from its guide, its variances as the initial metric). NUTS
    /// and HMC also take pathfinder: chains from Pathfinder's draws, its variances as the
    /// initial metric.
    #[arg(long)]
    pub init: Option<String>,
    /// Also write the warm-up draws to the chain files (CmdStan's `save_warmup`).
    #[arg(long = "save-warmup")]
    pub save_warmup: bool,
    /// MultiSWAG: a SWA-Gaussian around each ensemble member.
    #[arg(long)]
    pub swag: bool,
    /// Draws from a fitted guide for its Pareto-k̂ diagnostic (0 to skip it); Pathfinder: the
    /// draws of each path that are pooled and resampled (1,000 by default).
    #[arg(long = "psis-draws")]
    pub psis_draws: Option<i64>,
    /// Resample the guide's draws with their Pareto-smoothed importance weights (SVI).
    #[arg(long)]
    pub resample: bool,
    /// The index of this run's first chain (NUTS, HMC) or member (ensemble) in a run split over
    /// processes or machines: chain ids, file names and random streams continue from it, so
    /// `--chains 4 --chain-offset 4` gives chains 5–8 of an eight-chain run, bit for bit.
    /// `bdlc merge` joins the parts.
    #[arg(long = "chain-offset", value_name = "K")]
    pub chain_offset: Option<i64>,
    /// Pathfinder's number of paths, each from its own random start (4 by default).
    #[arg(long)]
    pub paths: Option<i64>,
    /// Gibbs blocks: sites joined by commas, blocks separated by semicolons
    /// (`"beta, beta0; gamma, gamma0; sigma"`).
    #[arg(long)]
    pub blocks: Option<String>,
    /// Where the run may use a GPU: cpu (the default), gpu (a wgpu adapter, software ones
    /// included; an error when none can be used) or auto (a hardware GPU when there is one).
    /// Training runs on the CPU; the adapter chosen is recorded in the run's summary.
    #[arg(long, value_enum, value_name = "DEVICE")]
    pub device: Option<DeviceChoice>,
}

/// The `--steps` flag: a count, or `auto` (stop when converged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steps {
    /// Until the loss is stationary, with a cap.
    Auto,
    /// Exactly this many.
    Count(i64),
}

impl std::str::FromStr for Steps {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "auto" {
            return Ok(Steps::Auto);
        }
        text.parse::<i64>()
            .map(Steps::Count)
            .map_err(|_| format!("expected a whole number or `auto`, got `{text}`"))
    }
}

impl InferFlags {
    /// `--steps` when it is a count.
    pub fn steps_count(&self) -> Option<i64> {
        match self.steps {
            Some(Steps::Count(n)) => Some(n),
            _ => None,
        }
    }
}

/// The settings after merging.
pub struct Resolved<'a> {
    flags: &'a InferFlags,
    block: &'a BTreeMap<String, SettingValue>,
}

impl<'a> Resolved<'a> {
    /// Merges the flags over the model's block.
    pub fn new(flags: &'a InferFlags, block: &'a BTreeMap<String, SettingValue>) -> Resolved<'a> {
        Resolved { flags, block }
    }

    fn block_int(&self, key: &str) -> Option<i64> {
        match self.block.get(key) {
            Some(SettingValue::Int(value)) => Some(*value),
            _ => None,
        }
    }

    fn block_real(&self, key: &str) -> Option<f64> {
        match self.block.get(key) {
            Some(SettingValue::Int(value)) => Some(*value as f64),
            Some(SettingValue::Real(value)) => Some(*value),
            _ => None,
        }
    }

    fn block_name(&self, key: &str) -> Option<String> {
        match self.block.get(key) {
            Some(SettingValue::Name(value) | SettingValue::Text(value)) => Some(value.clone()),
            _ => None,
        }
    }

    /// A name or text setting of the model's block.
    pub fn name(&self, key: &str) -> Option<String> {
        self.block_name(key)
    }

    /// A boolean: the flag, or the model's block.
    pub fn flag(&self, key: &str, flag: bool) -> bool {
        flag || matches!(self.block.get(key), Some(SettingValue::Bool(true)))
    }

    /// A count flag (≥ `minimum`).
    pub fn count(
        &self,
        key: &str,
        flag: Option<i64>,
        default: usize,
        minimum: usize,
    ) -> Result<usize, Failure> {
        let value = flag
            .or_else(|| self.block_int(key))
            .unwrap_or(default as i64);
        if value < minimum as i64 {
            return Err(Failure::usage(
                "E0906",
                format!(
                    "`--{}` must be at least {minimum}, got {value}",
                    key.replace('_', "-")
                ),
                None,
            ));
        }
        Ok(value as usize)
    }

    /// A positive real flag.
    pub fn positive(&self, key: &str, flag: Option<f64>, default: f64) -> Result<f64, Failure> {
        let value = flag.or_else(|| self.block_real(key)).unwrap_or(default);
        if !(value.is_finite() && value > 0.0) {
            return Err(Failure::usage(
                "E0906",
                format!(
                    "`--{}` must be a positive number, got {value}",
                    key.replace('_', "-")
                ),
                None,
            ));
        }
        Ok(value)
    }

    /// A real flag in (0, 1).
    pub fn fraction(&self, key: &str, flag: Option<f64>, default: f64) -> Result<f64, Failure> {
        let value = flag.or_else(|| self.block_real(key)).unwrap_or(default);
        if !(value > 0.0 && value < 1.0) {
            return Err(Failure::usage(
                "E0906",
                format!(
                    "`--{}` must lie strictly between 0 and 1, got {value}",
                    key.replace('_', "-")
                ),
                None,
            ));
        }
        Ok(value)
    }

    /// A name flag among `choices`.
    pub fn choice(
        &self,
        key: &str,
        flag: &Option<String>,
        default: &str,
        choices: &[&str],
    ) -> Result<String, Failure> {
        let value = flag
            .clone()
            .or_else(|| self.block_name(key))
            .unwrap_or_else(|| default.to_string());
        if !choices.contains(&value.as_str()) {
            let suggestion = bdl_diagnostics::did_you_mean(&value, choices.iter().copied())
                .map(|close| format!("did you mean `{close}`? "))
                .unwrap_or_default();
            return Err(Failure::usage(
                "E0906",
                format!("`--{}` does not accept `{value}`", key.replace('_', "-")),
                Some(format!("{suggestion}choose one of: {}", choices.join(", "))),
            ));
        }
        Ok(value)
    }

    /// The seed (any non-negative integer).
    pub fn seed(&self) -> Result<u64, Failure> {
        Ok(self.count("seed", self.flags.seed, 0, 0)? as u64)
    }

    /// Whether the model's `infer` block sets `key`.
    pub fn has(&self, key: &str) -> bool {
        self.block.contains_key(key)
    }

    /// Whether optimisation runs until converged: `--steps auto`, `steps = auto` in the block,
    /// or no step count given at all.
    pub fn steps_auto(&self) -> bool {
        match self.flags.steps {
            Some(Steps::Auto) => true,
            Some(Steps::Count(_)) => false,
            None => self.block_int("steps").is_none(),
        }
    }

    /// The flags themselves.
    pub fn flags(&self) -> &InferFlags {
        self.flags
    }
}
