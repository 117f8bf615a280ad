//! A compiled model: a lowered program with its data, the layout of its flat unconstrained
//! vector, and evaluators that give inference its log density and gradients.
//!
//! An [`Evaluator`] runs the model once under the [`Unconstrain`] handler and keeps the tape. If
//! no control flow read a value that can change between evaluations (a latent, a param, a
//! mini-batch), the model's structure is static and later evaluations only set the inputs, draw
//! new mini-batch indices, and replay the recording; otherwise every evaluation interprets the
//! program afresh. Both paths run the same kernels, so they give bit-identical results.

use crate::data::DataSet;
use crate::enumerate::{self, Enumerate, EnumeratedSite, FixDiscrete};
use crate::error::{ErrorKind, RuntimeError};
use crate::handlers::{SeedRef, SiteKind, TraceMessages, Uncondition, Unconstrain};
use crate::interpret::{Dynamic, Interpreter, RunOptions, Subsample};
use crate::layout::Layout;
use crate::network::{NetworkCall, NetworkCalls};
use crate::trace::{SiteRecord, Trace};
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_diagnostics::Span;
use bdl_dist::{Bijector, Bound, Constraint, Distribution, Family};
use bdl_infer::density::{
    ElboModel, JointOptions, LogDensity, LogDensityError, LogJoint, NormalPrior,
};
use bdl_infer::rng::{stream_rng, Rng};
use bdl_ir::ir::Program;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A site as the first run of the model saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteInfo {
    /// Its name.
    pub name: String,
    /// Sample, observe, param or deterministic.
    pub kind: SiteKind,
    /// Whether it was observed.
    pub observed: bool,
    /// Its value's shape.
    pub shape: Vec<usize>,
    /// The distribution's family, for sample and observe sites.
    pub family: Option<&'static str>,
    /// Whether its values are integers (discrete distributions).
    pub discrete: bool,
    /// The names of the enclosing plates.
    pub plates: Vec<String>,
    /// Where it is written.
    pub span: Span,
}

/// One `observe` site's pointwise log-likelihood at one draw
/// ([`Model::pointwise_log_likelihood`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PointwiseLogLik {
    /// The site's name.
    pub name: String,
    /// The batch shape of its log-density (the observed value's shape without event dimensions).
    pub shape: Vec<usize>,
    /// The row-major flat indices (0-based) of the elements kept (not masked out), increasing.
    pub elements: Vec<usize>,
    /// log p(yⱼ | θ) of each kept element, in the order of `elements`.
    pub log_lik: Vec<f64>,
}

/// The most values a discrete observed site may take for [`Model::pointwise_predictive`] to
/// give the probability of each.
pub const MAX_CLASSES: usize = 256;

/// The log-probability of each value of a discrete site's support, element by element.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassLogProbs {
    /// The values of the support, increasing (0 and 1 for Bernoulli; 0, …, K − 1 for a
    /// Categorical over K classes).
    pub values: Vec<f64>,
    /// log p(yⱼ = v | θ) for each kept element j (the rows) and each value v (the columns).
    pub log_probs: Vec<Vec<f64>>,
}

/// One `observe` site's predictive quantities at one draw ([`Model::pointwise_predictive`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PointwisePredictive {
    /// The pointwise log-likelihood of the observed values.
    pub log_lik: PointwiseLogLik,
    /// The likelihood's mean of each kept element; `None` when the family has no mean or its
    /// events are not scalars.
    pub mean: Option<Vec<f64>>,
    /// The observed value of each kept element; `None` when its events are not scalars.
    pub targets: Option<Vec<f64>>,
    /// The probabilities of each value, for a discrete site asked for them.
    pub classes: Option<ClassLogProbs>,
}

/// A program with its data, ready for inference.
#[derive(Debug)]
pub struct Model {
    /// The lowered program.
    pub program: Program,
    /// Its validated data (and data-block `let`s).
    pub data: DataSet,
    /// The flat unconstrained vector.
    pub layout: Layout,
    /// Every site of the first run, in order.
    pub sites: Vec<SiteInfo>,
    /// Blocks of the latent vector whose prior is a fixed normal (for analytic KL terms).
    pub normal_priors: Vec<NormalPrior>,
    /// Why the model's structure is dynamic, if it is.
    pub dynamic: Option<Dynamic>,
    /// Whether some plate draws mini-batches.
    pub subsampled: bool,
    /// Why a draw's output values need a run of the model, if they do; `None` when they are
    /// the latent and param blocks mapped through their bijectors (see [`DrawMap`]).
    pub draws_need_run: Option<String>,
    /// The discrete latent sites marginalised by enumeration, if the model has any.
    pub enumeration: Option<Enumeration>,
}

/// A model's enumerated discrete sites ([`crate::enumerate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Enumeration {
    /// How deep the program's plates nest (enumeration dimensions start left of them).
    pub plate_nesting: i64,
    /// The sites, in the order the model meets them.
    pub sites: Vec<EnumeratedSite>,
}

/// Runs `program`'s data-block `let`s on `data`, adding their values.
pub fn derive_data(program: &Program, mut data: DataSet) -> Result<DataSet, RuntimeError> {
    if program.data_lets.is_empty() {
        return Ok(data);
    }
    let mut tape = Tape::new();
    let bound = {
        let mut interpreter = Interpreter::new(program, &data, &mut tape, RunOptions::default());
        interpreter.run_data_lets()?
    };
    for (slot, value) in bound {
        let tensor = tape.value(value.var).clone();
        let stored = if value.elem == crate::value::Elem::Int {
            crate::value::TensorValue::int(tensor)
        } else {
            crate::value::TensorValue::real(tensor)
        };
        data.values.insert(slot, stored);
    }
    Ok(data)
}

/// How many runs from prior draws [`Model::new`] tries after a numerical failure at zero.
const DISCOVERY_RETRIES: usize = 100;

/// What the model's first run found: the layout of the flat vector, the sites, the structure.
struct Discovery {
    layout: Layout,
    trace: Rc<RefCell<Trace>>,
    tape: Tape,
    dynamic: Option<Dynamic>,
    subsampled: bool,
    enumerated: Vec<EnumeratedSite>,
}

impl Model {
    /// Compiles a program with its data: runs the data block's `let`s, then runs the model
    /// once to find its sites and lay out the flat vector. `seed` draws the initial values of
    /// `module` weights.
    pub fn new(program: Program, data: DataSet, seed: u64) -> Result<Model, RuntimeError> {
        let data = derive_data(&program, data)?;
        // The first run starts every latent site at zero in unconstrained space. A model may be
        // invalid there (`Exponential(z - 0.5)` with `z` near 5): a numerical failure of that run
        // says nothing about the model, so the run is repeated from draws of the prior, on a
        // stream of its own, before the first failure is reported.
        let mut prior_stream = stream_rng(seed, u64::MAX - 3);
        let mut first_failure = None;
        for attempt in 0..=DISCOVERY_RETRIES {
            let prior_draws = (attempt > 0).then_some(&mut prior_stream);
            match Model::discover(&program, &data, seed, prior_draws) {
                Ok(discovered) => return Ok(Model::from_discovery(program, data, discovered)),
                Err(error) if error.kind == ErrorKind::Numerical => {
                    first_failure.get_or_insert(error);
                }
                Err(error) => return Err(first_failure.unwrap_or(error)),
            }
        }
        Err(first_failure.expect("a failed discovery records its error"))
    }

    /// One run of the model under a growing layout: its layout, its trace and what the run
    /// learned about the model's structure.
    fn discover(
        program: &Program,
        data: &DataSet,
        seed: u64,
        prior_draws: Option<&mut Rng>,
    ) -> Result<Discovery, RuntimeError> {
        let mut layout = Layout::default();
        let trace = Rc::new(RefCell::new(Trace::default()));
        let mut rng = stream_rng(seed, u64::MAX);
        let mut tape = Tape::new();
        let enumerate = Enumerate::new(enumerate::plate_nesting(program));
        let enumerated = Rc::clone(&enumerate.sites);
        let (dynamic, subsampled) = {
            let mut interpreter = Interpreter::new(program, data, &mut tape, RunOptions::default());
            interpreter.push(SeedRef { rng: &mut rng });
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(Unconstrain {
                layout: &mut layout,
                position: &[],
                discover: true,
                prior_draws,
            });
            interpreter.push(enumerate);
            interpreter.run_model()?;
            (
                interpreter.dynamic.clone(),
                !interpreter.subsamples.is_empty(),
            )
        };
        let enumerated = enumerated.borrow().clone();
        Ok(Discovery {
            layout,
            trace,
            tape,
            dynamic,
            subsampled,
            enumerated,
        })
    }

    /// The compiled model from its discovery run.
    fn from_discovery(program: Program, data: DataSet, discovery: Discovery) -> Model {
        let Discovery {
            mut layout,
            trace,
            tape,
            dynamic,
            subsampled,
            enumerated,
        } = discovery;
        layout.finalize();
        let trace = trace.borrow();
        let sites = trace
            .sites
            .iter()
            .map(|site| {
                let mut info = site_info(site, &tape);
                // An enumerated site's value in the trace lists its support; one draw of it
                // has its plates' shape.
                if let Some(enumerated) = enumerated.iter().find(|e| e.name == site.name) {
                    info.shape = enumerated.shape.clone();
                }
                info
            })
            .collect();
        let normal_priors = find_normal_priors(&trace, &layout, &tape);
        let enumeration = (!enumerated.is_empty()).then(|| Enumeration {
            plate_nesting: enumerate::plate_nesting(&program),
            sites: enumerated,
        });
        let draws_need_run = match &enumeration {
            Some(enumeration) => Some(format!(
                "the discrete site `{}` is drawn from its posterior given each draw",
                enumeration.sites[0].name
            )),
            None => why_draws_need_run(&trace, &layout, dynamic.as_ref()),
        };
        let mut model = Model {
            program,
            data,
            layout,
            sites,
            normal_priors,
            dynamic,
            subsampled,
            draws_need_run,
            enumeration,
        };
        model.deterministic_shapes_without_enumeration();
        model
    }

    /// Under enumeration a deterministic site computed from an enumerated site has a value per
    /// enumerated value; one draw of it is computed with the discrete sites fixed, so its shape
    /// is the one of a run with them fixed (at 0).
    fn deterministic_shapes_without_enumeration(&mut self) {
        let Some(enumeration) = &self.enumeration else {
            return;
        };
        let zeros = enumeration
            .sites
            .iter()
            .map(|site| (site.name.clone(), Tensor::zeros(&site.shape)))
            .collect();
        let position = self.layout.initial_position();
        let Ok(values) = self.constrained_values_with(&position, zeros) else {
            return;
        };
        for site in &mut self.sites {
            if site.kind == SiteKind::Deterministic {
                if let Some((_, value)) = values.iter().find(|(name, _)| *name == site.name) {
                    site.shape = value.shape().to_vec();
                }
            }
        }
    }

    /// A fresh evaluator with its own tape (one per chain, particle or thread).
    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator {
            model: self,
            tape: Tape::new(),
            recording: None,
            position: self.layout.initial_position(),
            gradient: vec![0.0; self.layout.dim()],
            options: RunOptions {
                dropout: true,
                ..RunOptions::default()
            },
            replay: self.dynamic.is_none(),
            draw_map: None,
            model_runs: 0,
            value_only: false,
        }
    }

    /// An evaluator for the constrained values of draws: every plate in full.
    pub fn output_evaluator(&self) -> Evaluator<'_> {
        let mut evaluator = self.evaluator();
        evaluator.options.full_plates = true;
        evaluator.options.dropout = false;
        evaluator
    }

    /// Pyro's `init_to_median`: the elementwise median of 15 prior draws of each latent site,
    /// mapped to unconstrained space; params at their initial values. Sites whose prior cannot
    /// be drawn (improper priors) stay at zero. Mini-batched plates draw their mini-batch, as
    /// in a step of SVI, so the start costs no pass over all the data.
    pub fn prior_median_position(&self, seed: u64) -> Vec<f64> {
        const DRAWS: usize = 15;
        let mut position = self.layout.initial_position();
        let mut rng = stream_rng(seed, u64::MAX - 2);
        let draws: Vec<Vec<(String, Tensor)>> = (0..DRAWS)
            .filter_map(|_| {
                self.run_with(&mut rng, None, true, false, NetworkCalls::Compute)
                    .ok()
                    .map(|(draw, _)| draw)
            })
            .collect();
        if draws.len() < DRAWS {
            return position;
        }
        for entry in self.layout.latents() {
            let samples: Vec<&Tensor> = draws
                .iter()
                .filter_map(|draw| {
                    draw.iter()
                        .find(|(name, _)| *name == entry.name)
                        .map(|(_, t)| t)
                })
                .collect();
            if samples.len() != DRAWS
                || samples
                    .iter()
                    .any(|t| t.shape() != entry.constrained_shape.as_slice())
            {
                continue;
            }
            let count = entry.constrained_len();
            let median: Vec<f64> = (0..count)
                .map(|k| {
                    let mut values: Vec<f64> = samples.iter().map(|t| t.data()[k]).collect();
                    values.sort_by(f64::total_cmp);
                    values[DRAWS / 2]
                })
                .collect();
            let Ok(median) = Tensor::from_shape(&entry.constrained_shape, median) else {
                continue;
            };
            let Ok(bijector) = bdl_dist::Bijector::for_constraint(&entry.constraint) else {
                continue;
            };
            if let Ok(unconstrained) = bijector.inverse(&median) {
                if unconstrained.data().iter().all(|v| v.is_finite())
                    && unconstrained.len() == entry.len()
                {
                    position[entry.offset..entry.offset + entry.len()]
                        .copy_from_slice(unconstrained.data());
                }
            }
        }
        position
    }

    /// An evaluator of log p(z) over the latent coordinates only, for HMC and NUTS: params stay
    /// at their initial values and plates run over all their indices (mini-batches would make
    /// the density random).
    pub fn log_density(&self) -> LatentDensity<'_> {
        let mut evaluator = self.evaluator();
        evaluator.options.full_plates = true;
        evaluator.options.dropout = false;
        LatentDensity {
            evaluator,
            full_position: self.layout.initial_position(),
            rng: stream_rng(0, 0),
        }
    }

    /// The names, shapes and kinds of the values a draw reports: latent sites, then params,
    /// then deterministic sites, in the order the model meets them.
    pub fn output_sites(&self) -> Vec<&SiteInfo> {
        let free = self
            .sites
            .iter()
            .filter(|s| !s.observed && matches!(s.kind, SiteKind::Sample));
        let params = self.sites.iter().filter(|s| s.kind == SiteKind::Param);
        let derived = self
            .sites
            .iter()
            .filter(|s| s.kind == SiteKind::Deterministic);
        free.chain(params).chain(derived).collect()
    }

    /// The `observe` sites, in order (with or without data in this run).
    pub fn observed_sites(&self) -> Vec<&SiteInfo> {
        self.sites
            .iter()
            .filter(|s| s.kind == SiteKind::Observe)
            .collect()
    }

    /// Runs the model at an unconstrained position (`[latents, params]`) with every plate in
    /// full and returns the values of the output sites.
    pub fn constrained_values(
        &self,
        position: &[f64],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        if self.enumeration.is_some() {
            // The discrete sites need a draw: from a fixed stream, so the result is repeatable.
            return self
                .output_evaluator()
                .constrained(position, &mut stream_rng(0, 0));
        }
        self.constrained_values_with(position, HashMap::new())
    }

    /// [`Model::constrained_values`] with the discrete latent sites fixed at `discrete`.
    fn constrained_values_with(
        &self,
        position: &[f64],
        discrete: HashMap<String, Tensor>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let mut tape = Tape::new();
        let trace = Rc::new(RefCell::new(Trace::default()));
        let mut layout = self.layout.clone();
        {
            let mut interpreter = Interpreter::new(
                &self.program,
                &self.data,
                &mut tape,
                RunOptions {
                    full_plates: true,
                    ..RunOptions::default()
                },
            );
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(Unconstrain {
                layout: &mut layout,
                position,
                discover: false,
                prior_draws: None,
            });
            if !discrete.is_empty() {
                interpreter.push(FixDiscrete { values: discrete });
            }
            interpreter.run_model()?;
        }
        let trace = trace.borrow();
        Ok(self
            .output_sites()
            .iter()
            .filter_map(|site| {
                trace
                    .get(&site.name)
                    .map(|record| (site.name.clone(), tape.value(record.value.var).clone()))
            })
            .collect())
    }

    /// Draws from the prior and the prior predictive: every latent site from its prior and
    /// every observed site from its likelihood, with all plates in full.
    pub fn prior_draw(&self, rng: &mut Rng) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run_with(rng, None, true, true, NetworkCalls::Compute)
            .map(|(draw, _)| draw)
    }

    /// Posterior-predictive draws of the observed sites (and deterministic ones) with the latent
    /// and param sites fixed at the given constrained values.
    pub fn predictive_draw(
        &self,
        values: &HashMap<String, Tensor>,
        rng: &mut Rng,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run_with(rng, Some(values), false, true, NetworkCalls::Compute)
            .map(|(draw, _)| draw)
    }

    /// The calls of lifted networks on inputs that depend on no latent value which a
    /// posterior-predictive run with these values meets, in order, with their inputs: what a
    /// batched device needs to compute them for many draws at once.
    pub fn network_calls(
        &self,
        values: &HashMap<String, Tensor>,
        rng: &mut Rng,
    ) -> Result<Vec<NetworkCall>, RuntimeError> {
        match self.run_with(
            rng,
            Some(values),
            false,
            true,
            NetworkCalls::Record(Vec::new()),
        )? {
            (_, NetworkCalls::Record(calls)) => Ok(calls),
            _ => Ok(Vec::new()),
        }
    }

    /// `predictive_draw` with the values of the `calls` that `network_calls` listed taken from
    /// `outputs` (computed elsewhere for these values, one per call) instead of computed on the
    /// tape. The random stream is used exactly as `predictive_draw` uses it. A run that meets
    /// the calls otherwise than recorded is an error.
    pub fn predictive_draw_with_outputs(
        &self,
        values: &HashMap<String, Tensor>,
        rng: &mut Rng,
        calls: &[&NetworkCall],
        outputs: Vec<Tensor>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let expected = outputs.len();
        let outputs = calls
            .iter()
            .zip(outputs)
            .map(|(call, output)| (call.span, call.occurrence, output))
            .collect();
        let calls = NetworkCalls::Substitute {
            outputs,
            next: 0,
            seen: HashMap::new(),
        };
        let (draw, calls) = self.run_with(rng, Some(values), false, true, calls)?;
        match calls {
            NetworkCalls::Substitute { next, .. } if next != expected => {
                Err(RuntimeError::model(
                    "E0554",
                    format!(
                        "the model called its networks on data {next} times, not {expected} as recorded"
                    ),
                    Span::default(),
                ))
            }
            _ => Ok(draw),
        }
    }

    fn run_with(
        &self,
        rng: &mut Rng,
        values: Option<&HashMap<String, Tensor>>,
        include_latents: bool,
        full_plates: bool,
        network_calls: NetworkCalls,
    ) -> Result<(Vec<(String, Tensor)>, NetworkCalls), RuntimeError> {
        let mut tape = Tape::new();
        let trace = Rc::new(RefCell::new(Trace::default()));
        let network_calls = {
            let mut interpreter = Interpreter::new(
                &self.program,
                &self.data,
                &mut tape,
                RunOptions {
                    full_plates,
                    dropout: true,
                },
            );
            interpreter.network_calls = network_calls;
            interpreter.push(SeedRef { rng });
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(Uncondition);
            if let Some(values) = values {
                interpreter.push(crate::handlers::Substitute {
                    values: values.clone(),
                });
            }
            interpreter.run_model()?;
            std::mem::take(&mut interpreter.network_calls)
        };
        let trace = trace.borrow();
        let observed: Vec<&str> = self
            .observed_sites()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let draw = trace
            .sites
            .iter()
            .filter(|site| {
                include_latents
                    || observed.contains(&site.name.as_str())
                    || site.kind == SiteKind::Deterministic
            })
            .map(|site| (site.name.clone(), tape.value(site.value.var).clone()))
            .collect();
        Ok((draw, network_calls))
    }

    /// The pointwise log-likelihood of one posterior draw: for every `observe` site with data,
    /// the log-density of each element of its batch (event dimensions summed, so a row of a
    /// multivariate observation is one element), with the latent and param sites fixed at the
    /// constrained `values` and every plate run over all its rows (a mini-batched plate too).
    /// Elements masked out (`mask =` 0) are left out; no scale (mini-batch factor or `Scale`
    /// handler) is applied, and `factor` sites are not observations, so they are not included.
    /// This is the matrix that PSIS-LOO and WAIC need, one draw at a time.
    pub fn pointwise_log_likelihood(
        &self,
        values: &HashMap<String, Tensor>,
    ) -> Result<Vec<PointwiseLogLik>, RuntimeError> {
        Ok(self
            .pointwise_predictive(values, false)?
            .into_iter()
            .map(|site| site.log_lik)
            .collect())
    }

    /// What the posterior-predictive metrics need of one posterior draw, for every `observe`
    /// site with data: its pointwise log-likelihood (as [`Model::pointwise_log_likelihood`]),
    /// the likelihood's mean of each kept element when the family has one and its events are
    /// scalars, and with `classes`, for a discrete site with at most [`MAX_CLASSES`] values
    /// (Bernoulli, Categorical, Binomial, …), log p(yⱼ = v | θ) of each kept element and
    /// each value v of the support.
    pub fn pointwise_predictive(
        &self,
        values: &HashMap<String, Tensor>,
        classes: bool,
    ) -> Result<Vec<PointwisePredictive>, RuntimeError> {
        let mut tape = Tape::new();
        let trace = Rc::new(RefCell::new(Trace::default()));
        // Every free site is substituted; the stream only serves a site the draw lacks and
        // the dropout masks, which are a function of the draw (a fresh mask per draw, the same
        // for the same draw: MC dropout that reproduces).
        let mut rng = stream_rng(draw_fingerprint(values), 0);
        {
            let mut interpreter = Interpreter::new(
                &self.program,
                &self.data,
                &mut tape,
                RunOptions {
                    full_plates: true,
                    dropout: true,
                },
            );
            interpreter.push(SeedRef { rng: &mut rng });
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(crate::handlers::Substitute {
                values: values.clone(),
            });
            interpreter.run_model()?;
        }
        let trace = trace.borrow();
        let mut sites = Vec::new();
        for site in &trace.sites {
            if site.kind != SiteKind::Observe || !site.observed {
                continue;
            }
            let Some(dist) = &site.dist else { continue };
            let span = site.span;
            let log_prob = dist.log_prob(&mut tape, site.value.var).map_err(|error| {
                RuntimeError::model("E0530", format!("site `{}`: {error}", site.name), span)
            })?;
            let log_prob_value = tape.value(log_prob).clone();
            let shape = log_prob_value.shape().to_vec();
            let keep = match site.mask {
                Some(mask) => {
                    // The mask broadcast to the log-density's shape.
                    let ones = tape.constant(Tensor::ones(&shape));
                    let zeros = tape.constant(Tensor::zeros(&shape));
                    let kept = tape
                        .select(mask, ones, zeros)
                        .map_err(|error| RuntimeError::model("E0548", error.to_string(), span))?;
                    tape.value(kept).data().iter().map(|v| *v != 0.0).collect()
                }
                None => vec![true; log_prob_value.data().len()],
            };
            let mut elements = Vec::new();
            let mut log_lik = Vec::new();
            for (flat, (value, keep)) in log_prob_value.data().iter().zip(&keep).enumerate() {
                if *keep {
                    elements.push(flat);
                    log_lik.push(*value);
                }
            }
            let kept = |data: &[f64]| -> Vec<f64> { elements.iter().map(|&e| data[e]).collect() };
            // The mean lines up with the elements only when each element is one number.
            let scalar_events = dist.event_shape().is_empty();
            let mean = if scalar_events {
                dist.mean(&tape)
                    .filter(|mean| mean.shape() == shape.as_slice())
                    .map(|mean| kept(mean.data()))
            } else {
                None
            };
            let observed_value = tape.value(site.value.var);
            let targets = (scalar_events && observed_value.shape() == shape.as_slice())
                .then(|| kept(observed_value.data()));
            let support_values = match (classes, dist.support(&tape)) {
                (true, Constraint::Boolean) => Some(vec![0.0, 1.0]),
                (true, Constraint::IntegerInterval { low, high })
                    if low.is_finite()
                        && high.is_finite()
                        && high >= low
                        && high - low < MAX_CLASSES as f64 =>
                {
                    Some(
                        (0..=(high - low) as usize)
                            .map(|v| low + v as f64)
                            .collect(),
                    )
                }
                _ => None,
            };
            let class_log_probs = match support_values {
                Some(support) => {
                    let value_shape = tape.value(site.value.var).shape().to_vec();
                    let mut per_element = vec![Vec::with_capacity(support.len()); elements.len()];
                    for &class in &support {
                        let constant = tape.constant(Tensor::full(&value_shape, class));
                        let log_prob = dist.log_prob(&mut tape, constant).map_err(|error| {
                            RuntimeError::model(
                                "E0530",
                                format!("site `{}`: {error}", site.name),
                                span,
                            )
                        })?;
                        let data = tape.value(log_prob).data();
                        if data.len() != shape.iter().product::<usize>() {
                            break;
                        }
                        for (row, &element) in per_element.iter_mut().zip(&elements) {
                            row.push(data[element]);
                        }
                    }
                    per_element
                        .iter()
                        .all(|row| row.len() == support.len())
                        .then_some(ClassLogProbs {
                            values: support,
                            log_probs: per_element,
                        })
                }
                None => None,
            };
            sites.push(PointwisePredictive {
                log_lik: PointwiseLogLik {
                    name: site.name.clone(),
                    shape,
                    elements,
                    log_lik,
                },
                mean,
                targets,
                classes: class_log_probs,
            });
        }
        Ok(sites)
    }

    /// Runs the model at a position and returns its trace, rendered (`--emit trace`).
    pub fn render_trace(&self, position: &[f64]) -> Result<String, RuntimeError> {
        let mut tape = Tape::new();
        let trace = Rc::new(RefCell::new(Trace::default()));
        let mut layout = self.layout.clone();
        let mut rng = stream_rng(0, 0);
        {
            let mut interpreter =
                Interpreter::new(&self.program, &self.data, &mut tape, RunOptions::default());
            interpreter.push(SeedRef { rng: &mut rng });
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(Unconstrain {
                layout: &mut layout,
                position,
                discover: false,
                prior_draws: None,
            });
            if let Some(enumeration) = &self.enumeration {
                interpreter.push(Enumerate::new(enumeration.plate_nesting));
            }
            interpreter.run_model()?;
        }
        let rendered = trace.borrow().render(&tape);
        Ok(rendered)
    }
}

fn site_info(site: &SiteRecord, tape: &Tape) -> SiteInfo {
    let discrete = site
        .dist
        .as_ref()
        .is_some_and(|dist| dist.support(tape).is_discrete());
    SiteInfo {
        name: site.name.clone(),
        kind: site.kind,
        observed: site.observed,
        shape: tape.shape(site.value.var).to_vec(),
        family: site.dist.as_ref().map(|dist| dist.family().name()),
        discrete,
        plates: site.plates.iter().map(|p| p.name.clone()).collect(),
        span: site.span,
    }
}

/// Latent sites whose prior is a Normal with fixed parameters on the real line, outside
/// mini-batched plates: their KL to a normal guide has a closed form.
fn find_normal_priors(trace: &Trace, layout: &Layout, tape: &Tape) -> Vec<NormalPrior> {
    let mut priors = Vec::new();
    for site in &trace.sites {
        let Some(dist) = &site.dist else { continue };
        if site.observed || site.kind != SiteKind::Sample || site.dist_volatile || site.scale != 1.0
        {
            continue;
        }
        if dist.family() != Family::Normal || dist.support(tape) != Constraint::Real {
            continue;
        }
        let Some(entry) = layout.find(&site.name).map(|i| &layout.entries[i]) else {
            continue;
        };
        // A `constraint` on the site moves it off the real line.
        if !matches!(entry.constraint, Constraint::Real | Constraint::RealVector) {
            continue;
        }
        let (Some(loc), Some(scale)) = (dist.param("loc"), dist.param("scale")) else {
            continue;
        };
        let shape = dist.shape();
        let spread = |var: Var| broadcast_values(tape.value(var), &shape);
        if let (Some(loc), Some(scale)) = (spread(loc), spread(scale)) {
            if loc.len() == entry.len() {
                priors.push(NormalPrior {
                    offset: entry.offset,
                    loc,
                    scale,
                });
            }
        }
    }
    priors
}

/// A tensor's values broadcast to `shape`, flattened.
fn broadcast_values(tensor: &Tensor, shape: &[usize]) -> Option<Vec<f64>> {
    bdl_dist::shape::broadcast_data(tensor, shape)
}

/// Why the output values of a draw cannot be read from its position alone, or `None` when they
/// can: every output site is a latent or param block of the layout whose bijector is fixed (its
/// support does not move with other latents), seen whole (outside mini-batched plates), and no
/// deterministic site needs the model to run.
fn why_draws_need_run(trace: &Trace, layout: &Layout, dynamic: Option<&Dynamic>) -> Option<String> {
    if let Some(dynamic) = dynamic {
        return Some(format!(
            "the model's structure is dynamic ({})",
            dynamic.reason
        ));
    }
    for site in &trace.sites {
        match site.kind {
            SiteKind::Deterministic => {
                return Some(format!(
                    "deterministic site `{}` is computed by the model",
                    site.name
                ))
            }
            SiteKind::Observe | SiteKind::Factor => continue,
            SiteKind::Sample if site.observed => continue,
            SiteKind::Sample | SiteKind::Param => {}
        }
        let Some(entry) = layout.find(&site.name).map(|i| &layout.entries[i]) else {
            return Some(format!(
                "site `{}` is not a block of the flat vector",
                site.name
            ));
        };
        if site.unconstrained.is_none() || entry.kind != site.kind {
            return Some(format!(
                "site `{}` does not take its value from the flat vector",
                site.name
            ));
        }
        if site.plates.iter().any(|plate| plate.batch != plate.size) {
            return Some(format!("site `{}` lies in a mini-batched plate", site.name));
        }
        let bounded = matches!(
            entry.constraint,
            Constraint::Interval { .. } | Constraint::GreaterThan(_) | Constraint::LessThan(_)
        );
        let moving_bounds = match site.kind {
            SiteKind::Sample => site.dist_volatile,
            _ => !fixed_bounds(&entry.constraint),
        };
        if bounded && moving_bounds {
            return Some(format!(
                "the support of site `{}` depends on other values",
                site.name
            ));
        }
    }
    None
}

/// Whether a constraint's bounds are constants rather than values computed on a tape.
fn fixed_bounds(constraint: &Constraint) -> bool {
    match constraint {
        Constraint::Interval { low, high } => low.var.is_none() && high.var.is_none(),
        Constraint::GreaterThan(bound) | Constraint::LessThan(bound) => bound.var.is_none(),
        _ => true,
    }
}

/// The constraint with its bounds detached from the tape they were computed on (their values
/// kept), so that a bijector built from it can run on another tape.
fn detached(constraint: &Constraint) -> Constraint {
    let detach = |bound: &Bound| Bound {
        value: bound.value.clone(),
        var: None,
    };
    match constraint {
        Constraint::Interval { low, high } => Constraint::Interval {
            low: detach(low),
            high: detach(high),
        },
        Constraint::GreaterThan(bound) => Constraint::GreaterThan(detach(bound)),
        Constraint::LessThan(bound) => Constraint::LessThan(detach(bound)),
        other => other.clone(),
    }
}

/// The output values of draws computed from their unconstrained positions without running the
/// model: a small tape holding only each latent and param block's bijector, recorded once and
/// replayed per draw. It runs the bijectors' own kernels, so the values are bit-identical to
/// those a run of the model gives, at a cost proportional to the number of parameters instead
/// of the size of the data.
#[derive(Debug)]
pub struct DrawMap {
    tape: Tape,
    /// Each block's layout entry, its unconstrained leaf and its constrained value.
    blocks: Vec<(usize, Var, Var)>,
    /// The output sites' names with their block, in [`Model::output_sites`] order.
    outputs: Vec<(String, usize)>,
}

impl DrawMap {
    /// Records the bijectors of `model`'s blocks; fails when its draws need a run of the model
    /// (see [`Model::draws_need_run`]).
    pub fn new(model: &Model) -> Result<DrawMap, RuntimeError> {
        if let Some(reason) = &model.draws_need_run {
            return Err(RuntimeError::model(
                "E0501",
                format!("draws of this model need a run of the model: {reason}"),
                Span::default(),
            ));
        }
        let mut tape = Tape::new();
        let mut blocks = Vec::new();
        for (index, entry) in model.layout.entries.iter().enumerate() {
            let fail = |detail: String| {
                RuntimeError::model(
                    "E0511",
                    format!("site `{}`: {detail}", entry.name),
                    entry.span,
                )
            };
            let bijector = Bijector::for_constraint(&detached(&entry.constraint))
                .map_err(|e| fail(e.to_string()))?;
            let initial = Tensor::from_shape(&entry.unconstrained_shape, entry.initial.clone())
                .map_err(|e| fail(e.to_string()))?;
            let leaf = tape.input(initial);
            let (value, _) = bijector
                .forward(&mut tape, leaf)
                .map_err(|e| fail(e.to_string()))?;
            if tape.shape(value) != entry.constrained_shape.as_slice() {
                return Err(fail(format!(
                    "the bijector gives shape {:?} for a site of shape {:?}",
                    tape.shape(value),
                    entry.constrained_shape
                )));
            }
            blocks.push((index, leaf, value));
        }
        let mut outputs = Vec::new();
        for site in model.output_sites() {
            let Some(block) = blocks
                .iter()
                .position(|&(index, _, _)| model.layout.entries[index].name == site.name)
            else {
                return Err(RuntimeError::model(
                    "E0501",
                    format!(
                        "output site `{}` has no block in the flat vector",
                        site.name
                    ),
                    site.span,
                ));
            };
            outputs.push((site.name.clone(), block));
        }
        Ok(DrawMap {
            tape,
            blocks,
            outputs,
        })
    }

    /// The output values at `position` (`[latents, params]`), by name, in output order.
    pub fn values(
        &mut self,
        layout: &Layout,
        position: &[f64],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        if position.len() != layout.dim() {
            return Err(RuntimeError::model(
                "E0512",
                format!(
                    "a position of {} numbers for a model with {}",
                    position.len(),
                    layout.dim()
                ),
                Span::default(),
            ));
        }
        let internal = |e: bdl_autodiff::TensorError| {
            RuntimeError::model("E0501", e.to_string(), Span::default())
        };
        for &(index, leaf, _) in &self.blocks {
            let entry = &layout.entries[index];
            self.tape
                .set_value(leaf, &position[entry.offset..entry.offset + entry.len()])
                .map_err(internal)?;
        }
        self.tape.replay().map_err(internal)?;
        Ok(self
            .outputs
            .iter()
            .map(|(name, block)| (name.clone(), self.tape.value(self.blocks[*block].2).clone()))
            .collect())
    }
}

/// A hash of a draw's values, to seed what a run of that draw draws (its dropout masks).
fn draw_fingerprint(values: &HashMap<String, Tensor>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut names: Vec<&String> = values.keys().collect();
    names.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for name in names {
        name.hash(&mut hasher);
        for value in values[name].data() {
            value.to_bits().hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// What one recorded evaluation keeps for replaying.
#[derive(Debug)]
struct Recording {
    /// Each latent or param site's unconstrained input, with its layout entry.
    leaves: Vec<(usize, Var)>,
    /// The mini-batches, in the order they are drawn.
    subsamples: Vec<Subsample>,
    /// The dropout masks, redrawn before every replay.
    dropout_masks: Vec<crate::network::DropoutMask>,
    /// The weight of the prior part (a scalar constant node).
    prior_weight: Var,
    /// The weight of the fixed-normal prior part (a scalar constant node).
    normal_weight: Var,
    likelihood: Var,
    prior: Var,
    normal_prior: Var,
    objective: Var,
    /// Distributions with changing parameters, re-validated after every replay.
    validations: Vec<(String, Span, Distribution)>,
    /// Each site's log-density, to name the first that is not finite.
    site_log_probs: Vec<(String, Span, Var)>,
    /// The values of the output sites (latent, param, deterministic), by name.
    outputs: Vec<(String, Var)>,
    /// The eliminations of the enumerated sites, for drawing them afterwards.
    eliminations: Vec<enumerate::Elimination>,
}

/// Evaluates one model's log joint and gradient; owns its tape.
pub struct Evaluator<'m> {
    model: &'m Model,
    tape: Tape,
    recording: Option<Recording>,
    /// The full `[latents, params]` position of the last evaluation.
    position: Vec<f64>,
    gradient: Vec<f64>,
    options: RunOptions,
    replay: bool,
    /// The bijector-only map for [`Evaluator::constrained`], built on first use when the
    /// model's draws need no run.
    draw_map: Option<DrawMap>,
    /// How many times this evaluator has run the model (recorded or replayed it).
    model_runs: usize,
    /// Whether evaluations skip the backward pass (the gradient is then left as it was).
    value_only: bool,
}

/// The result of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The likelihood and prior parts.
    pub joint: LogJoint,
    /// The objective whose gradient was computed.
    pub objective: f64,
}

impl Evaluator<'_> {
    /// Whether evaluations replay a recording (the model's structure is static).
    pub fn replays(&self) -> bool {
        self.replay
    }

    /// Runs every plate over all its indices (no mini-batches).
    pub fn set_full_plates(&mut self) {
        self.options.full_plates = true;
        self.recording = None;
    }

    /// Forces interpretation afresh at every evaluation (for tests and benchmarks).
    pub fn set_replay(&mut self, replay: bool) {
        self.replay = replay && self.model.dynamic.is_none();
        self.recording = None;
    }

    /// How many times this evaluator has run the model over its data (recorded or replayed a
    /// pass), for tests that check that draws do not.
    pub fn model_runs(&self) -> usize {
        self.model_runs
    }

    /// The gradient of the last evaluation's objective over `[latents, params]`.
    pub fn gradient(&self) -> &[f64] {
        &self.gradient
    }

    /// Each site's scaled log-density (Jacobian included for latents) at the last evaluation,
    /// in the order the sites ran.
    pub fn site_log_densities(&self) -> Vec<(String, Span, f64)> {
        self.recording
            .iter()
            .flat_map(|recording| recording.site_log_probs.iter())
            .map(|(name, span, var)| {
                (
                    name.clone(),
                    *span,
                    self.tape.value(*var).item().unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    /// Evaluates at `position` (`[latents, params]`): the gradient of
    /// `likelihood + prior_weight × (prior + normal_weight × normal prior)`.
    pub fn evaluate(
        &mut self,
        position: &[f64],
        prior_weight: f64,
        normal_weight: f64,
        rng: &mut Rng,
    ) -> Result<Evaluation, RuntimeError> {
        if position.len() != self.model.layout.dim() {
            return Err(RuntimeError::model(
                "E0512",
                format!(
                    "a position of {} numbers for a model with {}",
                    position.len(),
                    self.model.layout.dim()
                ),
                Span::default(),
            ));
        }
        self.position.copy_from_slice(position);
        match self.recording.take() {
            Some(recording) if self.replay => {
                self.replay(recording, prior_weight, normal_weight, rng)
            }
            _ => self.record(prior_weight, normal_weight, rng),
        }
    }

    /// The values of the output sites (latent, param, deterministic) at `position`. When the
    /// model's draws need no run ([`Model::draws_need_run`] is `None`), the latent and param
    /// blocks go through their bijectors alone and the model does not run; otherwise by a
    /// forward pass only (replayed when the structure is static).
    pub fn constrained(
        &mut self,
        position: &[f64],
        rng: &mut Rng,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        if self.model.draws_need_run.is_none() {
            let draw_map = match self.draw_map.take() {
                Some(draw_map) => draw_map,
                None => DrawMap::new(self.model)?,
            };
            let draw_map = self.draw_map.insert(draw_map);
            return draw_map.values(&self.model.layout, position);
        }
        if position.len() != self.model.layout.dim() {
            return Err(RuntimeError::model(
                "E0512",
                format!(
                    "a position of {} numbers for a model with {}",
                    position.len(),
                    self.model.layout.dim()
                ),
                Span::default(),
            ));
        }
        self.position.copy_from_slice(position);
        if let Some(enumeration) = &self.model.enumeration {
            return self.constrained_enumerated(enumeration, position, rng);
        }
        let recording = match self.recording.take() {
            Some(recording) if self.replay => {
                self.set_inputs(&recording, 1.0, 1.0, rng)?;
                recording
            }
            _ => {
                self.record(1.0, 1.0, rng)?;
                match self.recording.take() {
                    Some(recording) => recording,
                    None => return self.model.constrained_values(position),
                }
            }
        };
        let values = recording
            .outputs
            .iter()
            .map(|(name, var)| (name.clone(), self.tape.value(*var).clone()))
            .collect();
        self.recording = Some(recording);
        Ok(values)
    }

    /// The output values of a model with enumerated sites (Pyro's `infer_discrete`): the
    /// marginal is evaluated at `position`, every enumerated site is drawn from its posterior
    /// given the continuous values, and the model runs once more with those values fixed so
    /// that deterministic sites see them.
    fn constrained_enumerated(
        &mut self,
        enumeration: &Enumeration,
        position: &[f64],
        rng: &mut Rng,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let recording = match self.recording.take() {
            Some(recording) if self.replay => {
                self.set_inputs(&recording, 1.0, 1.0, rng)?;
                recording
            }
            _ => {
                self.record(1.0, 1.0, rng)?;
                self.recording.take().ok_or_else(|| {
                    RuntimeError::model("E0501", "no recording of the model", Span::default())
                })?
            }
        };
        let discrete = enumerate::sample_discrete(
            &self.tape,
            &recording.eliminations,
            &enumeration.sites,
            enumeration.plate_nesting as usize,
            rng,
        );
        self.recording = Some(recording);
        self.model
            .constrained_values_with(position, discrete.into_iter().collect())
    }

    /// Sets a recording's inputs at the current position, draws its mini-batches and replays it.
    fn set_inputs(
        &mut self,
        recording: &Recording,
        prior_weight: f64,
        normal_weight: f64,
        rng: &mut Rng,
    ) -> Result<(), RuntimeError> {
        let layout = &self.model.layout;
        let internal = |e: bdl_autodiff::TensorError| {
            RuntimeError::model("E0501", e.to_string(), Span::default())
        };
        for &(entry, leaf) in &recording.leaves {
            let entry = &layout.entries[entry];
            self.tape
                .set_value(
                    leaf,
                    &self.position[entry.offset..entry.offset + entry.len()],
                )
                .map_err(internal)?;
        }
        self.model_runs += 1;
        self.tape
            .set_value(recording.prior_weight, &[prior_weight])
            .map_err(internal)?;
        self.tape
            .set_value(recording.normal_weight, &[normal_weight])
            .map_err(internal)?;
        for subsample in &recording.subsamples {
            let drawn: Vec<f64> = rand::seq::index::sample(rng, subsample.size, subsample.batch)
                .into_iter()
                .map(|i| i as f64)
                .collect();
            self.tape
                .set_value(subsample.var, &drawn)
                .map_err(internal)?;
        }
        for mask in &recording.dropout_masks {
            let count = self.tape.value(mask.var).len();
            let drawn = crate::network::dropout_mask(rng, count, mask.p);
            self.tape.set_value(mask.var, &drawn).map_err(internal)?;
        }
        self.tape.replay().map_err(internal)
    }

    fn record(
        &mut self,
        prior_weight: f64,
        normal_weight: f64,
        rng: &mut Rng,
    ) -> Result<Evaluation, RuntimeError> {
        let model = self.model;
        // A cleared tape keeps its buffers: re-recording the same structure allocates nothing
        // for computed nodes.
        self.model_runs += 1;
        self.tape.clear();
        let trace = Rc::new(RefCell::new(Trace::default()));
        let mut layout = model.layout.clone();
        let (dynamic, subsamples, dropout_masks) = {
            let mut interpreter =
                Interpreter::new(&model.program, &model.data, &mut self.tape, self.options);
            interpreter.push(SeedRef { rng });
            interpreter.push(TraceMessages {
                trace: Rc::clone(&trace),
            });
            interpreter.push(Unconstrain {
                layout: &mut layout,
                position: &self.position,
                discover: false,
                prior_draws: None,
            });
            if let Some(enumeration) = &model.enumeration {
                interpreter.push(Enumerate::new(enumeration.plate_nesting));
            }
            interpreter.run_model()?;
            (
                interpreter.dynamic.clone(),
                interpreter.subsamples.clone(),
                interpreter.dropout_masks.clone(),
            )
        };
        let trace = trace.borrow();
        let normal_sites: Vec<usize> = model.normal_priors.iter().map(|p| p.offset).collect();
        let tape = &mut self.tape;
        let zero = || Tensor::scalar(0.0);
        let mut likelihood = tape.constant(zero());
        let mut prior = tape.constant(zero());
        let mut normal_prior = tape.constant(zero());
        let mut leaves = Vec::new();
        let mut validations = Vec::new();
        let mut site_log_probs = Vec::new();
        let output_names: Vec<&str> = model
            .output_sites()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let outputs = trace
            .sites
            .iter()
            .filter(|site| output_names.contains(&site.name.as_str()))
            .map(|site| (site.name.clone(), site.value.var))
            .collect();
        let mut enumerated_terms = Vec::new();
        let mut enumerated_met = 0;
        for site in &trace.sites {
            if site.enumerated {
                enumerated_met += 1;
            }
            let entry = model.layout.find(&site.name);
            if let (Some(leaf), Some(entry)) = (site.unconstrained, entry) {
                leaves.push((entry, leaf));
            }
            let Some(log_prob) = site.log_prob else {
                continue;
            };
            site_log_probs.push((site.name.clone(), site.span, log_prob));
            // Terms that depend on enumerated values are summed over them below.
            if let (Some(enumeration), Some(terms)) = (&model.enumeration, site.log_prob_terms) {
                let shape = tape.shape(terms);
                let met = enumerated_met.min(enumeration.sites.len());
                if site.enumerated
                    || enumeration.sites[..met]
                        .iter()
                        .any(|e| enumerate::mentions(shape, e))
                {
                    if let Some(dist) = site.dist.as_ref().filter(|_| site.dist_volatile) {
                        validations.push((site.name.clone(), site.span, dist.clone()));
                    }
                    enumerated_terms.push(enumerate::Term {
                        name: site.name.clone(),
                        var: terms,
                        plates: site.plates.clone(),
                        met,
                        span: site.span,
                    });
                    continue;
                }
            }
            if site.dist_volatile {
                if let Some(dist) = &site.dist {
                    validations.push((site.name.clone(), site.span, dist.clone()));
                }
            }
            let is_normal =
                entry.is_some_and(|e| normal_sites.contains(&model.layout.entries[e].offset));
            // A factor is a term of the likelihood: a KL weight does not scale it.
            let target = if matches!(site.kind, SiteKind::Observe | SiteKind::Factor) {
                &mut likelihood
            } else if is_normal {
                &mut normal_prior
            } else {
                &mut prior
            };
            *target = tape
                .add(*target, log_prob)
                .map_err(|e| RuntimeError::model("E0501", e.to_string(), site.span))?;
        }
        // The marginal of the enumerated sites mixes their prior with the likelihood of what
        // depends on them; it counts as likelihood (as in Pyro's TraceEnum_ELBO).
        let eliminations = match &model.enumeration {
            Some(enumeration) => {
                let contraction = enumerate::contract(tape, enumerated_terms, &enumeration.sites)?;
                site_log_probs.push((
                    "the enumerated sites' marginal".to_string(),
                    enumeration.sites[0].span,
                    contraction.total,
                ));
                likelihood = tape
                    .add(likelihood, contraction.total)
                    .map_err(|e| RuntimeError::model("E0501", e.to_string(), Span::default()))?;
                contraction.eliminations
            }
            None => Vec::new(),
        };
        let prior_weight_var = tape.constant(Tensor::scalar(prior_weight));
        let normal_weight_var = tape.constant(Tensor::scalar(normal_weight));
        let span = Span::default();
        let fail = |e: bdl_autodiff::TensorError| RuntimeError::model("E0501", e.to_string(), span);
        let weighted_normal = tape.mul(normal_prior, normal_weight_var).map_err(fail)?;
        let all_prior = tape.add(prior, weighted_normal).map_err(fail)?;
        let weighted_prior = tape.mul(all_prior, prior_weight_var).map_err(fail)?;
        let objective = tape.add(likelihood, weighted_prior).map_err(fail)?;
        let recording = Recording {
            leaves,
            subsamples,
            dropout_masks,
            prior_weight: prior_weight_var,
            normal_weight: normal_weight_var,
            likelihood,
            prior,
            normal_prior,
            objective,
            validations,
            site_log_probs,
            outputs,
            eliminations,
        };
        if dynamic.is_some() {
            self.replay = false;
        }
        let evaluation = self.finish(&recording)?;
        // The recording is kept either way: replayed when the structure is static, and read by
        // `site_log_densities` otherwise.
        self.recording = Some(recording);
        Ok(evaluation)
    }

    fn replay(
        &mut self,
        recording: Recording,
        prior_weight: f64,
        normal_weight: f64,
        rng: &mut Rng,
    ) -> Result<Evaluation, RuntimeError> {
        self.set_inputs(&recording, prior_weight, normal_weight, rng)?;
        for (site, span, dist) in &recording.validations {
            if let Err(error) = dist.validate(&self.tape) {
                return Err(RuntimeError::numerical(
                    "E0530",
                    format!("site `{site}`: {error}"),
                    *span,
                ));
            }
        }
        let evaluation = self.finish(&recording);
        self.recording = Some(recording);
        evaluation
    }

    /// Reads the parts, checks they are finite, and runs the backward pass.
    fn finish(&mut self, recording: &Recording) -> Result<Evaluation, RuntimeError> {
        let value = |var: Var| self.tape.value(var).item().unwrap_or(f64::NAN);
        let likelihood = value(recording.likelihood);
        let prior = value(recording.prior) + value(recording.normal_prior);
        let objective = value(recording.objective);
        if !objective.is_finite() || !likelihood.is_finite() || !prior.is_finite() {
            let culprit = recording
                .site_log_probs
                .iter()
                .find(|(_, _, var)| !value(*var).is_finite())
                .map(|(name, span, var)| (name.clone(), *span, value(*var)));
            return Err(match culprit {
                Some((name, span, bad)) => RuntimeError::numerical(
                    "E0560",
                    format!("the log-density of site `{name}` is {bad} at this point"),
                    span,
                ),
                None => RuntimeError::numerical(
                    "E0560",
                    "the log density is not finite at this point",
                    Span::default(),
                ),
            });
        }
        if self.value_only {
            return Ok(Evaluation {
                joint: LogJoint { likelihood, prior },
                objective,
            });
        }
        self.tape
            .backward(recording.objective)
            .map_err(|e| RuntimeError::model("E0501", e.to_string(), Span::default()))?;
        self.gradient.iter_mut().for_each(|g| *g = 0.0);
        let layout = &self.model.layout;
        for &(entry, leaf) in &recording.leaves {
            let entry = &layout.entries[entry];
            self.gradient[entry.offset..entry.offset + entry.len()]
                .copy_from_slice(self.tape.grad(leaf));
        }
        if let Some(bad) = self.gradient.iter().position(|g| !g.is_finite()) {
            let names = layout.coordinate_names();
            return Err(RuntimeError::numerical(
                "E0561",
                format!(
                    "the gradient with respect to `{}` is not finite at this point",
                    names[bad]
                ),
                Span::default(),
            ));
        }
        Ok(Evaluation {
            joint: LogJoint { likelihood, prior },
            objective,
        })
    }
}

impl ElboModel for Evaluator<'_> {
    fn latent_dim(&self) -> usize {
        self.model.layout.latent_dim()
    }

    fn param_dim(&self) -> usize {
        self.model.layout.param_dim()
    }

    fn log_joint(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        rng: &mut Rng,
        gradient: &mut [f64],
    ) -> Result<LogJoint, LogDensityError> {
        let normal_weight = if options.skip_normal_priors { 0.0 } else { 1.0 };
        let evaluation = self
            .evaluate(position, options.prior_weight, normal_weight, rng)
            .map_err(|error| error.to_log_density_error())?;
        gradient.copy_from_slice(&self.gradient);
        Ok(evaluation.joint)
    }

    /// The log joint by a forward pass alone (no backward pass, no gradient).
    fn log_joint_value(
        &mut self,
        position: &[f64],
        options: &JointOptions,
        rng: &mut Rng,
    ) -> Result<LogJoint, LogDensityError> {
        let normal_weight = if options.skip_normal_priors { 0.0 } else { 1.0 };
        self.value_only = true;
        let evaluation = self.evaluate(position, options.prior_weight, normal_weight, rng);
        self.value_only = false;
        Ok(evaluation
            .map_err(|error| error.to_log_density_error())?
            .joint)
    }

    fn normal_priors(&self) -> Vec<NormalPrior> {
        self.model.normal_priors.clone()
    }
}

/// log p(z) over the latent coordinates, for HMC and NUTS.
pub struct LatentDensity<'m> {
    evaluator: Evaluator<'m>,
    /// Scratch: the full position, params kept at their initial values.
    full_position: Vec<f64>,
    rng: Rng,
}

impl<'m> LatentDensity<'m> {
    /// The same density with the model's params at `params` (unconstrained, in layout order)
    /// instead of their initial values, e.g. the params of an earlier fit; a slice of the wrong
    /// length leaves them as they are.
    pub fn with_params(mut self, params: &[f64]) -> Self {
        let latent_dim = self.evaluator.model.layout.latent_dim();
        if params.len() == self.full_position.len() - latent_dim {
            self.full_position[latent_dim..].copy_from_slice(params);
        }
        self
    }

    /// The underlying evaluator.
    pub fn evaluator(&mut self) -> &mut Evaluator<'m> {
        &mut self.evaluator
    }
}

impl LogDensity for LatentDensity<'_> {
    fn dim(&self) -> usize {
        self.evaluator.model.layout.latent_dim()
    }

    fn log_density_gradient(
        &mut self,
        position: &[f64],
        gradient: &mut [f64],
    ) -> Result<f64, LogDensityError> {
        let latent = position.len();
        self.full_position[..latent].copy_from_slice(position);
        let full = std::mem::take(&mut self.full_position);
        let result = self.evaluator.evaluate(&full, 1.0, 1.0, &mut self.rng);
        self.full_position = full;
        let evaluation = result.map_err(|error| error.to_log_density_error())?;
        gradient.copy_from_slice(&self.evaluator.gradient[..latent]);
        Ok(evaluation.joint.total())
    }
}
