//! Effect handlers, as Pyro and NumPyro have them: every site of a running program becomes a
//! [`Message`] that travels through a stack of handlers, innermost first, before the default
//! action (sampling from the distribution, or taking a `param`'s initial value) and the
//! log-density are applied; then the handlers see the finished message in `postprocess`.
//!
//! Handlers: [`Seed`] (the random stream for sampling and mini-batches), [`TraceMessages`]
//! (records every site), [`Condition`] (observed values for latent sites), [`Substitute`] and
//! [`Replay`] (given values, from a map or an earlier trace), [`Block`] (hides sites from outer
//! handlers), [`Scale`], [`Mask`], [`Uncondition`] (turns observations into draws, for
//! prediction) and [`Unconstrain`] (values from a flat unconstrained vector through bijectors,
//! with their log-Jacobians: the bridge to inference).

use crate::error::RuntimeError;
use crate::layout::{Layout, SiteLayout};
use crate::trace::Trace;
use crate::value::{Elem, TensorVar};
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_diagnostics::Span;
use bdl_dist::{Bijector, Constraint, Distribution};
use bdl_infer::rng::Rng;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// What kind of site a message is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SiteKind {
    /// A latent random variable.
    Sample,
    /// An observed random variable.
    Observe,
    /// A learnable point parameter.
    Param,
    /// A derived value.
    Deterministic,
    /// A named term added to the log joint density (`factor`).
    Factor,
}

impl SiteKind {
    /// The site function's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Sample => "sample",
            SiteKind::Observe => "observe",
            SiteKind::Param => "param",
            SiteKind::Deterministic => "deterministic",
            SiteKind::Factor => "factor",
        }
    }
}

/// One enclosing plate, as a site sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateFrame {
    /// The plate's name.
    pub name: String,
    /// Its full size.
    pub size: usize,
    /// The number of indices in this evaluation (the mini-batch size, or `size`).
    pub batch: usize,
    /// The batch dimension it occupies (negative).
    pub dim: i64,
}

impl PlateFrame {
    /// The factor that makes a mini-batch's log-likelihood estimate the full one: size / batch.
    pub fn scale(&self) -> f64 {
        self.size as f64 / self.batch.max(1) as f64
    }
}

/// A site on its way through the handler stack.
#[derive(Clone, Debug)]
pub struct Message {
    /// The site's name.
    pub name: String,
    /// Its kind.
    pub kind: SiteKind,
    /// The distribution of sample and observe sites, already expanded to the enclosing plates.
    pub dist: Option<Distribution>,
    /// Whether a parameter of the distribution can change between evaluations.
    pub dist_volatile: bool,
    /// The value, once a handler or the default action has set it.
    pub value: Option<TensorVar>,
    /// Whether the value is an observation (its log-density is likelihood, not prior).
    pub observed: bool,
    /// The product of the plates' mini-batch factors and of `Scale` handlers.
    pub scale: f64,
    /// A 0/1 mask on the log-density's batch elements.
    pub mask: Option<Var>,
    /// The log-density term of a `factor` site, before summing and scaling.
    pub log_factor: Option<Var>,
    /// The enclosing plates, outermost first.
    pub plates: Vec<PlateFrame>,
    /// The constraint of a `param` site.
    pub constraint: Option<Constraint>,
    /// The initial (constrained) value of a `param` site.
    pub init: Option<TensorVar>,
    /// The unconstrained input the value was computed from, when it came from a flat vector.
    pub unconstrained: Option<Var>,
    /// log|det J| of the bijector that produced the value (a scalar), when it did.
    pub log_det_jacobian: Option<Var>,
    /// Set by a handler to hide the message from the handlers outside it.
    pub stop: bool,
    /// Whether the value enumerates the support of a discrete latent site (set by
    /// [`crate::enumerate::Enumerate`]) instead of being one value.
    pub enumerated: bool,
    /// The log-density before summing and scaling: masked, with the shape of the batch (and,
    /// under enumeration, of the enumerated values it depends on). Set by the interpreter.
    pub log_prob_terms: Option<Var>,
    /// Where the site is written.
    pub span: Span,
}

impl Message {
    /// A fresh message with no value.
    pub fn new(name: String, kind: SiteKind, span: Span) -> Message {
        Message {
            name,
            kind,
            dist: None,
            dist_volatile: false,
            value: None,
            observed: false,
            scale: 1.0,
            mask: None,
            log_factor: None,
            plates: Vec::new(),
            constraint: None,
            init: None,
            unconstrained: None,
            log_det_jacobian: None,
            stop: false,
            enumerated: false,
            log_prob_terms: None,
            span,
        }
    }

    /// Whether the site is a latent or param site a value may be substituted for.
    pub fn is_free(&self) -> bool {
        matches!(self.kind, SiteKind::Sample | SiteKind::Param) && !self.observed
    }
}

/// One effect handler.
pub trait Handler {
    /// Sees the message before the default action, innermost handler first.
    fn process(&mut self, _message: &mut Message, _tape: &mut Tape) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Sees the finished message (value and log-density set), for recording.
    fn postprocess(&mut self, _message: &Message, _log_prob: Option<Var>) {}

    /// The random stream, for handlers that provide one.
    fn rng(&mut self) -> Option<&mut Rng> {
        None
    }
}

/// Provides the random stream for sampling sites and drawing mini-batches.
pub struct Seed {
    /// The stream.
    pub rng: Rng,
}

impl Handler for Seed {
    fn rng(&mut self) -> Option<&mut Rng> {
        Some(&mut self.rng)
    }
}

/// Provides a borrowed random stream (the caller keeps its state across evaluations).
pub struct SeedRef<'a> {
    /// The stream.
    pub rng: &'a mut Rng,
}

impl Handler for SeedRef<'_> {
    fn rng(&mut self) -> Option<&mut Rng> {
        Some(self.rng)
    }
}

/// Records every finished site into a shared [`Trace`].
pub struct TraceMessages {
    /// The trace being filled; the caller keeps a clone of the handle.
    pub trace: Rc<RefCell<Trace>>,
}

impl Handler for TraceMessages {
    fn postprocess(&mut self, message: &Message, log_prob: Option<Var>) {
        self.trace.borrow_mut().record(message, log_prob);
    }
}

/// Observes latent sites at given values (Pyro's `condition`).
pub struct Condition {
    /// Values by site name.
    pub values: HashMap<String, Tensor>,
}

impl Handler for Condition {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        if message.kind == SiteKind::Sample {
            if let Some(value) = self.values.get(&message.name) {
                let var = tape.constant(value.clone());
                message.value = Some(TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile: false,
                });
                message.observed = true;
            }
        }
        Ok(())
    }
}

/// Fixes latent and param sites at given constrained values (Pyro's `substitute`).
pub struct Substitute {
    /// Values by site name.
    pub values: HashMap<String, Tensor>,
}

impl Handler for Substitute {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        if message.is_free() && message.value.is_none() {
            if let Some(value) = self.values.get(&message.name) {
                let var = tape.constant(value.clone());
                // A discrete site's values are integers (they may index).
                let discrete = message
                    .dist
                    .as_ref()
                    .is_some_and(|dist| dist.support(tape).is_discrete());
                message.value = Some(TensorVar {
                    var,
                    elem: if discrete { Elem::Int } else { Elem::Real },
                    volatile: true,
                });
            }
        }
        Ok(())
    }
}

/// Replays the values of an earlier trace at the sites of the same name (Pyro's `replay`).
pub struct Replay {
    substitute: Substitute,
}

impl Replay {
    /// Replays the values `trace` recorded on `tape`.
    pub fn new(trace: &Trace, tape: &Tape) -> Replay {
        let values = trace
            .sites
            .iter()
            .filter(|site| !site.observed)
            .map(|site| (site.name.clone(), tape.value(site.value.var).clone()))
            .collect();
        Replay {
            substitute: Substitute { values },
        }
    }
}

impl Handler for Replay {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        self.substitute.process(message, tape)
    }
}

/// Hides the sites it matches from every handler outside it (Pyro's `block`).
pub struct Block {
    /// The names to hide; `None` hides every site.
    pub hide: Option<Vec<String>>,
}

impl Handler for Block {
    fn process(&mut self, message: &mut Message, _tape: &mut Tape) -> Result<(), RuntimeError> {
        let hidden = self
            .hide
            .as_ref()
            .is_none_or(|names| names.contains(&message.name));
        if hidden {
            message.stop = true;
        }
        Ok(())
    }
}

/// Multiplies the log-density of every site by a factor (Pyro's `scale`).
pub struct Scale {
    /// The factor; it must be positive.
    pub factor: f64,
}

impl Handler for Scale {
    fn process(&mut self, message: &mut Message, _tape: &mut Tape) -> Result<(), RuntimeError> {
        message.scale *= self.factor;
        Ok(())
    }
}

/// Masks the log-density of every site's batch elements (Pyro's `mask`).
pub struct Mask {
    /// A 0/1 tensor broadcastable to the sites' batch shapes.
    pub mask: Tensor,
}

impl Handler for Mask {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        let mask = tape.constant(self.mask.clone());
        message.mask = Some(match message.mask {
            Some(existing) => tape.mul(existing, mask).map_err(|error| {
                RuntimeError::model(
                    "E0502",
                    format!("masks do not broadcast: {error}"),
                    message.span,
                )
            })?,
            None => mask,
        });
        Ok(())
    }
}

/// Turns observed sites into draws from their distributions, for posterior prediction.
pub struct Uncondition;

impl Handler for Uncondition {
    fn process(&mut self, message: &mut Message, _tape: &mut Tape) -> Result<(), RuntimeError> {
        if message.kind == SiteKind::Observe {
            message.observed = false;
            message.value = None;
        }
        Ok(())
    }
}

/// Takes latent and param values from a flat unconstrained vector through the bijector onto
/// each site's support, adding the log-Jacobian (the bridge to inference).
///
/// With a growing layout (`discover`), a site met for the first time gets a new block: latent
/// sites start at zero in unconstrained space (or at a draw from their prior, mapped to
/// unconstrained space, when `prior_draws` holds a random stream), param sites at their initial
/// value.
pub struct Unconstrain<'a> {
    /// Where each site's block lies.
    pub layout: &'a mut Layout,
    /// The flat vector `[latents, params]` (ignored while discovering).
    pub position: &'a [f64],
    /// Whether new sites may be added to the layout.
    pub discover: bool,
    /// While discovering: the stream that new latent sites draw their starting value from
    /// (their prior); `None` starts them at zero.
    pub prior_draws: Option<&'a mut Rng>,
}

/// A draw from a site's prior mapped to unconstrained space, or `None` when the prior cannot be
/// drawn (an improper prior), or its draw is outside the bijector's domain or not finite.
fn prior_start(
    dist: &Distribution,
    bijector: &Bijector,
    unconstrained_shape: &[usize],
    tape: &Tape,
    rng: &mut Rng,
) -> Option<Vec<f64>> {
    let mut stream: &mut dyn rand::RngCore = rng;
    let drawn = dist.sample(tape, &mut stream, &[]).ok()?;
    let start = bijector.inverse(&drawn).ok()?;
    (start.shape() == unconstrained_shape && start.data().iter().all(|x| x.is_finite()))
        .then(|| start.into_data())
}

impl Handler for Unconstrain<'_> {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        if !message.is_free() || message.value.is_some() {
            return Ok(());
        }
        let (constraint, constrained_shape) = match message.kind {
            SiteKind::Sample => {
                let Some(dist) = &message.dist else {
                    return Ok(());
                };
                // A `constraint` on the site replaces the support's bijector (Stan's semantics:
                // the density is taken at the constrained value, plus the log-Jacobian).
                let constraint = match &message.constraint {
                    Some(constraint) => constraint.clone(),
                    None => dist.support(tape),
                };
                (constraint, dist.shape())
            }
            _ => {
                let Some(init) = message.init else {
                    return Ok(());
                };
                let constraint = message.constraint.clone().unwrap_or(Constraint::Real);
                (constraint, tape.shape(init.var).to_vec())
            }
        };
        if constraint.is_discrete() {
            return Err(RuntimeError::model(
                "E0510",
                format!(
                    "site `{}` is a discrete latent variable ({}); gradient-based inference needs continuous latents",
                    message.name,
                    message.dist.as_ref().map_or("discrete", |d| d.family().name())
                ),
                message.span,
            )
            .with_hint("observe it, or marginalise it out of the model by hand"));
        }
        let bijector = Bijector::for_constraint(&constraint).map_err(|error| {
            RuntimeError::model(
                "E0511",
                format!("site `{}`: {error}", message.name),
                message.span,
            )
        })?;
        let unconstrained_shape =
            bijector
                .unconstrained_shape(&constrained_shape)
                .map_err(|error| {
                    RuntimeError::model(
                        "E0511",
                        format!("site `{}`: {error}", message.name),
                        message.span,
                    )
                })?;
        let entry = match self.layout.find(&message.name) {
            Some(index) => {
                let entry = &self.layout.entries[index];
                if entry.unconstrained_shape != unconstrained_shape || entry.kind != message.kind {
                    return Err(RuntimeError::model(
                        "E0512",
                        format!(
                            "site `{}` changed shape between runs ({:?} before, {:?} now)",
                            message.name, entry.constrained_shape, constrained_shape
                        ),
                        message.span,
                    )
                    .with_hint("a site's shape must not depend on sampled values"));
                }
                index
            }
            None if self.discover => {
                let initial = match message.kind {
                    SiteKind::Param => {
                        let init = message.init.map(|init| tape.value(init.var).clone());
                        let init = init.unwrap_or_else(|| Tensor::zeros(&constrained_shape));
                        match bijector.inverse(&init) {
                            Ok(value) if value.data().iter().all(|x| x.is_finite()) => value.into_data(),
                            _ => {
                                return Err(RuntimeError::model(
                                    "E0513",
                                    format!(
                                        "the initial value of param `{}` is outside its constraint `{constraint}`",
                                        message.name
                                    ),
                                    message.span,
                                )
                                .with_hint("give an initial value inside the constraint"))
                            }
                        }
                    }
                    _ => {
                        let drawn = match (self.prior_draws.as_deref_mut(), &message.dist) {
                            (Some(rng), Some(dist)) => {
                                prior_start(dist, &bijector, &unconstrained_shape, tape, rng)
                            }
                            _ => None,
                        };
                        drawn.unwrap_or_else(|| vec![0.0; unconstrained_shape.iter().product()])
                    }
                };
                self.layout.push(SiteLayout {
                    name: message.name.clone(),
                    kind: message.kind,
                    offset: 0,
                    unconstrained_shape: unconstrained_shape.clone(),
                    constrained_shape: constrained_shape.clone(),
                    constraint: constraint.clone(),
                    initial,
                    span: message.span,
                })
            }
            None => {
                return Err(RuntimeError::model(
                    "E0512",
                    format!(
                        "site `{}` did not appear in the model's first run",
                        message.name
                    ),
                    message.span,
                )
                .with_hint("the set of latent sites must not depend on sampled values"))
            }
        };
        let entry = &self.layout.entries[entry];
        let values = if self.discover {
            entry.initial.clone()
        } else {
            let start = self.layout.offset_of(entry);
            let end = start + entry.len();
            match self.position.get(start..end) {
                Some(values) => values.to_vec(),
                None => {
                    return Err(RuntimeError::model(
                        "E0512",
                        format!(
                            "the position vector is too short for site `{}`",
                            message.name
                        ),
                        message.span,
                    ))
                }
            }
        };
        let tensor = Tensor::from_shape(&entry.unconstrained_shape, values)
            .map_err(|error| RuntimeError::model("E0512", error.to_string(), message.span))?;
        let leaf = tape.input(tensor);
        let (value, log_det) = bijector.forward(tape, leaf).map_err(|error| {
            RuntimeError::numerical(
                "E0514",
                format!("site `{}`: {error}", message.name),
                message.span,
            )
        })?;
        message.value = Some(TensorVar {
            var: value,
            elem: Elem::Real,
            volatile: true,
        });
        message.unconstrained = Some(leaf);
        message.log_det_jacobian = Some(log_det);
        Ok(())
    }
}
