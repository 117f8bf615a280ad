//! [`Distribution`]: a family with its parameters as variables of a tape, batch and event shapes
//! that follow Pyro's rules, and the operations every family supports (log-density on the tape,
//! sampling from an explicit RNG, support, moments).
//!
//! Shapes: a family has a base batch shape (its parameters broadcast together, less the axes an
//! event uses) and a base event shape (`[]` for scalar families, `[K]` for Dirichlet, `[n]` for a
//! multivariate normal, `[n, n]` for matrix families). [`Distribution::expand`] broadcasts the
//! batch shape to a larger one (a `plate`), and [`Distribution::to_event`] moves the rightmost
//! batch axes into the event, so that `log_prob` sums over them (`shape = [...]` on a site).
//! `log_prob` of a value of shape `sample + batch + event` has shape `sample + batch`.

use crate::constraint::Constraint;
use crate::families::{self, Family, FamilySpec};
use crate::shape::{broadcast_data, broadcast_shapes, broadcasts_to};
use crate::DistError;
use bdl_autodiff::{Tape, Tensor, Var};
use rand::{Rng, RngCore};

/// One parameter of a distribution: the name it was given under (one of its slot's
/// alternatives, such as `"logits"`) and the tape variable holding it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Param {
    /// The parameter's name.
    pub name: &'static str,
    /// The variable holding its value.
    pub var: Var,
}

/// A probability distribution over tensors whose parameters live on a tape.
#[derive(Clone, Debug, PartialEq)]
pub struct Distribution {
    family: Family,
    /// One parameter per slot of the family, in the order of [`FamilySpec::params`].
    params: Vec<Param>,
    base_batch_shape: Vec<usize>,
    base_event_shape: Vec<usize>,
    /// The batch shape after `expand`, including the axes `to_event` reinterpreted.
    full_batch_shape: Vec<usize>,
    /// How many trailing axes of `full_batch_shape` belong to the event.
    reinterpreted: usize,
    /// The components of a `MixtureSameFamily`, whose one parameter is then the normalised
    /// log-weights; `None` for every other family.
    component: Option<Box<Distribution>>,
}

/// The mixing weights of [`Distribution::mixture`], along their last axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MixtureWeights {
    /// Non-negative weights, normalised to sum to one (Pyro's `Categorical(probs)`).
    Probs(Var),
    /// Unnormalised log-weights (Pyro's `Categorical(logits)`).
    Logits(Var),
}

/// The families a mixture's components may belong to: scalar and continuous, with a support
/// that does not depend on their parameters (so that it is the mixture's support too).
pub const MIXTURE_COMPONENT_FAMILIES: &[Family] = &[
    Family::Normal,
    Family::HalfNormal,
    Family::LogNormal,
    Family::Exponential,
    Family::Gamma,
    Family::InverseGamma,
    Family::Beta,
    Family::Cauchy,
    Family::HalfCauchy,
    Family::StudentT,
    Family::Laplace,
    Family::Logistic,
];

impl Distribution {
    /// Builds a distribution from a family name as written in the language and named
    /// parameters (positional arguments already matched to names with [`FamilySpec::params`]).
    /// Parameters left out take their defaults (recorded as constants on `tape`). Parameter
    /// values are checked: an invalid one is a [`DistError::InvalidParameter`].
    pub fn from_call(
        tape: &mut Tape,
        family: &str,
        arguments: &[(&str, Var)],
    ) -> Result<Distribution, DistError> {
        let family = Family::from_name(family).ok_or_else(|| DistError::UnknownFamily {
            name: family.to_string(),
        })?;
        if family == Family::MixtureSameFamily {
            // Its component is a distribution, not a tensor: `Distribution::mixture` builds it.
            return Err(DistError::MissingParameter {
                family: family.name(),
                parameter: "component_distribution (a distribution)".to_string(),
            });
        }
        Distribution::new(tape, family, arguments)
    }

    /// Builds a distribution of a known family from named parameters; see
    /// [`Distribution::from_call`].
    pub fn new(
        tape: &mut Tape,
        family: Family,
        arguments: &[(&str, Var)],
    ) -> Result<Distribution, DistError> {
        let spec = family.spec();
        let params = match_parameters(tape, spec, arguments)?;
        let (base_batch_shape, base_event_shape) =
            families::check_parameters(family, tape, &params)?;
        Ok(Distribution {
            family,
            params,
            full_batch_shape: base_batch_shape.clone(),
            base_batch_shape,
            base_event_shape,
            reinterpreted: 0,
            component: None,
        })
    }

    /// A finite mixture of distributions of one family (Pyro's `MixtureSameFamily`): the K
    /// components are the last batch axis of `component`, and `weights` holds K mixing weights
    /// along its last axis. Its density is `p(x) = Σₖ wₖ pₖ(x)`, computed on the log scale as
    /// `logsumexp(log w + log pₖ(x))`; its batch shape is the broadcast of the two batch shapes
    /// without that axis, and its events are scalars. The component family must be one of
    /// [`MIXTURE_COMPONENT_FAMILIES`], with no event axes.
    pub fn mixture(
        tape: &mut Tape,
        weights: MixtureWeights,
        component: &Distribution,
    ) -> Result<Distribution, DistError> {
        let family = Family::MixtureSameFamily;
        let name = family.name();
        if !MIXTURE_COMPONENT_FAMILIES.contains(&component.family) || component.component.is_some()
        {
            return Err(DistError::InvalidShape {
                family: name,
                what: "component_distribution",
                shape: component.shape(),
                expected: format!(
                    "a scalar continuous family whose support does not depend on its parameters ({}), not {}",
                    MIXTURE_COMPONENT_FAMILIES
                        .iter()
                        .map(|family| family.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    component.family.name()
                ),
            });
        }
        let component_batch = component.batch_shape().to_vec();
        if !component.event_shape().is_empty() || component_batch.is_empty() {
            return Err(DistError::InvalidShape {
                family: name,
                what: "component_distribution",
                shape: component.shape(),
                expected: "a batch of components along the last axis, with scalar events"
                    .to_string(),
            });
        }
        let (var, parameter) = match weights {
            MixtureWeights::Probs(var) => (var, "weights"),
            MixtureWeights::Logits(var) => (var, "logits"),
        };
        let weight_shape = tape.shape(var).to_vec();
        let count = component_batch[component_batch.len() - 1];
        if weight_shape.last() != Some(&count) {
            return Err(DistError::ShapeMismatch {
                family: name,
                what: "the weights (last axis) and the components (last batch axis)",
                left: weight_shape,
                right: component_batch,
            });
        }
        let tensor_error = |e| DistError::tensor(name, e);
        let log_weights = match weights {
            MixtureWeights::Probs(var) => {
                let values = tape.value(var).data();
                if let Some(&value) = values.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                    return Err(DistError::InvalidParameter {
                        family: name,
                        parameter,
                        value,
                        requirement: "finite and non-negative",
                    });
                }
                let total = tape.sum_axis(var, -1, true).map_err(tensor_error)?;
                if let Some(&value) = tape.value(total).data().iter().find(|t| **t <= 0.0) {
                    return Err(DistError::InvalidParameter {
                        family: name,
                        parameter,
                        value,
                        requirement: "not all zero along the last axis",
                    });
                }
                let log_total = tape.log(total);
                let log_weights = tape.log(var);
                tape.sub(log_weights, log_total).map_err(tensor_error)?
            }
            MixtureWeights::Logits(var) => {
                if let Some(&value) = tape.value(var).data().iter().find(|w| w.is_nan()) {
                    return Err(DistError::InvalidParameter {
                        family: name,
                        parameter,
                        value,
                        requirement: "a number (not NaN)",
                    });
                }
                tape.log_softmax(var, -1).map_err(tensor_error)?
            }
        };
        let batch = broadcast_shapes(
            &weight_shape[..weight_shape.len() - 1],
            &component_batch[..component_batch.len() - 1],
        )
        .ok_or_else(|| DistError::ShapeMismatch {
            family: name,
            what: "the weights and the components",
            left: weight_shape.clone(),
            right: component_batch.clone(),
        })?;
        Ok(Distribution {
            family,
            params: vec![Param {
                name: "logits",
                var: log_weights,
            }],
            full_batch_shape: batch.clone(),
            base_batch_shape: batch,
            base_event_shape: Vec::new(),
            reinterpreted: 0,
            component: Some(Box::new(component.clone())),
        })
    }

    /// The components of a mixture (`None` for other families).
    pub fn mixture_component(&self) -> Option<&Distribution> {
        self.component.as_deref()
    }

    /// Shorthand for a family whose parameters are plain numbers: each is recorded on the tape
    /// as a constant.
    pub fn with_constants(
        tape: &mut Tape,
        family: Family,
        arguments: &[(&str, Tensor)],
    ) -> Result<Distribution, DistError> {
        let vars: Vec<(&str, Var)> = arguments
            .iter()
            .map(|(name, value)| (*name, tape.constant(value.clone())))
            .collect();
        Distribution::new(tape, family, &vars)
    }

    /// Checks the parameters again at their current values on the tape; after
    /// [`Tape::replay`] with new inputs, this is how invalid parameters reached during a
    /// trajectory are found.
    pub fn validate(&self, tape: &Tape) -> Result<(), DistError> {
        if let Some(component) = &self.component {
            return component.validate(tape);
        }
        families::check_parameters(self.family, tape, &self.params).map(|_| ())
    }

    /// The number of event axes of the family itself (before `to_event`).
    pub(crate) fn base_event_rank(&self) -> usize {
        self.base_event_shape.len()
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The parameters, one per slot of the family, in positional order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The variable of the parameter given under `name`, if the distribution has it.
    pub fn param(&self, name: &str) -> Option<Var> {
        self.params
            .iter()
            .find(|param| param.name == name)
            .map(|param| param.var)
    }

    /// The batch shape: independent, not identically distributed draws.
    pub fn batch_shape(&self) -> &[usize] {
        &self.full_batch_shape[..self.full_batch_shape.len() - self.reinterpreted]
    }

    /// The event shape: the shape of one draw whose log-density is one number.
    pub fn event_shape(&self) -> Vec<usize> {
        let mut shape =
            self.full_batch_shape[self.full_batch_shape.len() - self.reinterpreted..].to_vec();
        shape.extend_from_slice(&self.base_event_shape);
        shape
    }

    /// The shape of one draw: batch shape followed by event shape.
    pub fn shape(&self) -> Vec<usize> {
        let mut shape = self.full_batch_shape.clone();
        shape.extend_from_slice(&self.base_event_shape);
        shape
    }

    /// The same distribution with its batch shape broadcast to `batch_shape` (Pyro's `expand`):
    /// the current batch shape must broadcast to it.
    pub fn expand(&self, batch_shape: &[usize]) -> Result<Distribution, DistError> {
        if !broadcasts_to(self.batch_shape(), batch_shape) {
            return Err(DistError::InvalidExpand {
                family: self.family.name(),
                batch_shape: self.batch_shape().to_vec(),
                requested: batch_shape.to_vec(),
            });
        }
        let mut full = batch_shape.to_vec();
        full.extend_from_slice(
            &self.full_batch_shape[self.full_batch_shape.len() - self.reinterpreted..],
        );
        Ok(Distribution {
            full_batch_shape: full,
            ..self.clone()
        })
    }

    /// The same distribution with its `dims` rightmost batch axes moved into the event (Pyro's
    /// `to_event`, an `Independent` distribution): `log_prob` sums over them.
    pub fn to_event(&self, dims: usize) -> Result<Distribution, DistError> {
        if dims > self.batch_shape().len() {
            return Err(DistError::InvalidToEvent {
                family: self.family.name(),
                dims,
                batch_shape: self.batch_shape().to_vec(),
            });
        }
        Ok(Distribution {
            reinterpreted: self.reinterpreted + dims,
            ..self.clone()
        })
    }

    /// The log-density (log-mass for discrete families) of `value`, with shape
    /// `broadcast(value batch axes, batch shape)`: event axes are summed. A value outside the
    /// support gives −∞ (and a zero gradient), never NaN.
    pub fn log_prob(&self, tape: &mut Tape, value: Var) -> Result<Var, DistError> {
        self.log_prob_with(tape, value, true)
    }

    /// The log-density without the support test, for values known to lie in the support (the
    /// output of the support's bijector): a few nodes cheaper. Outside the support the result
    /// is unspecified (it may be finite or NaN).
    pub fn log_prob_in_support(&self, tape: &mut Tape, value: Var) -> Result<Var, DistError> {
        self.log_prob_with(tape, value, false)
    }

    fn log_prob_with(
        &self,
        tape: &mut Tape,
        value: Var,
        check_support: bool,
    ) -> Result<Var, DistError> {
        let name = self.family.name();
        let value_shape = tape.shape(value).to_vec();
        let full_shape = self.shape();
        if broadcast_shapes(&value_shape, &full_shape).is_none()
            || value_shape.len() < self.base_event_shape.len()
            || value_shape[value_shape.len() - self.base_event_shape.len()..]
                != self.base_event_shape[..]
        {
            return Err(DistError::ShapeMismatch {
                family: name,
                what: "the value and the distribution",
                left: value_shape,
                right: full_shape,
            });
        }
        let base = match &self.component {
            Some(component) => {
                // log Σₖ wₖ pₖ(x): the value gets a trailing axis that meets the components'.
                let tensor_error = |e| DistError::tensor(name, e);
                let spread = tape.expand_dims(value, -1).map_err(tensor_error)?;
                let per_component = component.log_prob_with(tape, spread, check_support)?;
                let weighted = tape
                    .add(per_component, self.params[0].var)
                    .map_err(tensor_error)?;
                tape.logsumexp_axis(weighted, -1, false)
                    .map_err(tensor_error)?
            }
            None => families::log_prob(self.family, tape, &self.params, value, check_support)
                .map_err(|error| error.within(name))?,
        };
        // Broadcast to the expanded batch shape, then sum the reinterpreted axes.
        let base_shape = tape.shape(base).to_vec();
        let mut out = base;
        if let Some(target) = broadcast_shapes(&base_shape, &self.full_batch_shape) {
            if target != base_shape {
                let zeros = tape.constant(Tensor::zeros(&target));
                out = tape
                    .add(out, zeros)
                    .map_err(|e| DistError::tensor(name, e))?;
            }
        }
        for _ in 0..self.reinterpreted {
            out = tape
                .sum_axis(out, -1, false)
                .map_err(|e| DistError::tensor(name, e))?;
        }
        Ok(out)
    }

    /// Draws `sample_shape` independent samples; the result has shape
    /// `sample_shape + batch_shape + event_shape`. Parameters are read from the tape; nothing is
    /// recorded. Improper priors (Flat, FlatPositive) cannot be sampled.
    pub fn sample(
        &self,
        tape: &Tape,
        rng: &mut dyn RngCore,
        sample_shape: &[usize],
    ) -> Result<Tensor, DistError> {
        if let Some(component) = &self.component {
            return self.sample_mixture(component, tape, rng, sample_shape);
        }
        let values = self.param_values(tape);
        let n_samples: usize = sample_shape.iter().product();
        let data = families::sample(
            self.family,
            &self.params,
            &values,
            &self.base_batch_shape,
            &self.full_batch_shape,
            &self.base_event_shape,
            rng,
            n_samples,
        )?;
        let mut shape = sample_shape.to_vec();
        shape.extend(self.shape());
        Tensor::from_shape(&shape, data).map_err(|e| DistError::tensor(self.family.name(), e))
    }

    /// The support: the set values live in, with the bounds of `Uniform` and
    /// `TruncatedNormal` taken from the parameters (and carrying their variables, so that a
    /// bijector built from it is differentiable in them). For `to_event` distributions this is
    /// the base family's support, applied to every element.
    pub fn support(&self, tape: &Tape) -> Constraint {
        if let Some(component) = &self.component {
            return component.support(tape);
        }
        families::support(self.family, tape, &self.params)
    }

    /// The mean, with shape `batch_shape + event_shape`; `None` for the improper priors and for
    /// Categorical and LKJCholesky. Means that do not exist are NaN (Cauchy, StudentT with
    /// df ≤ 1) and infinite ones are +∞ (HalfCauchy), as in PyTorch.
    pub fn mean(&self, tape: &Tape) -> Option<Tensor> {
        self.moment(tape, families::Moment::Mean)
    }

    /// The variance of each element, with shape `batch_shape + event_shape`; `None` where the
    /// family has none. Elements where it does not exist are NaN; infinite ones are +∞.
    pub fn variance(&self, tape: &Tape) -> Option<Tensor> {
        self.moment(tape, families::Moment::Variance)
    }

    fn moment(&self, tape: &Tape, which: families::Moment) -> Option<Tensor> {
        if self.component.is_some() {
            return None;
        }
        let values = self.param_values(tape);
        let data = families::moment(
            self.family,
            &self.params,
            &values,
            &self.base_batch_shape,
            &self.base_event_shape,
            which,
        )?;
        let mut base_shape = self.base_batch_shape.clone();
        base_shape.extend_from_slice(&self.base_event_shape);
        let base = Tensor::from_shape(&base_shape, data).ok()?;
        let target = self.shape();
        let spread = broadcast_data(&base, &target)?;
        Tensor::from_shape(&target, spread).ok()
    }

    /// Draws of a mixture: every component is drawn at every batch element, and one of them is
    /// kept, chosen with the mixing weights.
    fn sample_mixture(
        &self,
        component: &Distribution,
        tape: &Tape,
        rng: &mut dyn RngCore,
        sample_shape: &[usize],
    ) -> Result<Tensor, DistError> {
        let name = self.family.name();
        let log_weights = tape.value(self.params[0].var);
        let count = log_weights.shape().last().copied().unwrap_or(1);
        let mut spread_shape = self.full_batch_shape.clone();
        spread_shape.push(count);
        let spread = component.expand(&spread_shape)?;
        let draws = spread.sample(tape, rng, sample_shape)?;
        let weights: Vec<f64> = broadcast_data(log_weights, &spread_shape)
            .ok_or_else(|| DistError::InvalidExpand {
                family: name,
                batch_shape: log_weights.shape().to_vec(),
                requested: spread_shape.clone(),
            })?
            .iter()
            .map(|lw| lw.exp())
            .collect();
        let elements: usize = self.full_batch_shape.iter().product();
        let n_samples: usize = sample_shape.iter().product();
        let mut out = Vec::with_capacity(n_samples * elements);
        for sample in 0..n_samples {
            for element in 0..elements {
                let row = &weights[element * count..(element + 1) * count];
                let total: f64 = row.iter().sum();
                let u = rng.random::<f64>() * total;
                let mut cumulative = 0.0;
                let mut chosen = count - 1;
                for (k, w) in row.iter().enumerate() {
                    cumulative += w;
                    if u < cumulative {
                        chosen = k;
                        break;
                    }
                }
                out.push(draws.data()[(sample * elements + element) * count + chosen]);
            }
        }
        let mut shape = sample_shape.to_vec();
        shape.extend(self.shape());
        Tensor::from_shape(&shape, out).map_err(|e| DistError::tensor(name, e))
    }

    /// The current values of the parameters, in slot order.
    fn param_values(&self, tape: &Tape) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|param| tape.value(param.var).clone())
            .collect()
    }
}

/// Matches named arguments to the family's slots, fills defaults, and reports unknown,
/// conflicting and missing parameters.
fn match_parameters(
    tape: &mut Tape,
    spec: &'static FamilySpec,
    arguments: &[(&str, Var)],
) -> Result<Vec<Param>, DistError> {
    let mut slots: Vec<Option<Param>> = vec![None; spec.params.len()];
    for (name, var) in arguments {
        let found = spec.params.iter().enumerate().find_map(|(slot, param)| {
            param
                .names
                .iter()
                .find(|candidate| *candidate == name)
                .map(|candidate| (slot, *candidate))
        });
        let Some((slot, canonical)) = found else {
            return Err(DistError::UnknownParameter {
                family: spec.name,
                name: name.to_string(),
            });
        };
        if let Some(existing) = slots[slot] {
            return Err(DistError::ConflictingParameters {
                family: spec.name,
                given: vec![existing.name.to_string(), canonical.to_string()],
            });
        }
        slots[slot] = Some(Param {
            name: canonical,
            var: *var,
        });
    }
    let mut params = Vec::with_capacity(slots.len());
    for (slot, param) in slots.into_iter().enumerate() {
        let spec_param = &spec.params[slot];
        let param = match (param, spec_param.default) {
            (Some(param), _) => param,
            (None, Some(default)) => Param {
                name: spec_param.names[0],
                var: tape.scalar(default),
            },
            (None, None) => {
                return Err(DistError::MissingParameter {
                    family: spec.name,
                    parameter: spec_param.names.join(" or "),
                })
            }
        };
        params.push(param);
    }
    Ok(params)
}
