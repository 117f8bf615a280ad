//! Networks: lifting a declared network so that every weight is a sample site with a prior
//! (Pyro's `random_module`), registering its weights as `param` sites (Pyro's `module`), and the
//! forward pass of a lifted network.
//!
//! A `Linear(in, out)` layer at position `k` of `Sequential` computes `x @ W + b` with
//! `W: [in, out]`; its sites are named `{name}_{k}_weight` and `{name}_{k}_bias`. Every layer
//! with weights names them the same way (PyTorch's `weight` and `bias`; layer `j` of the
//! `Residual` at position `k` is `{name}_{k}_{j}_…`), and [`Layer::parameters`] lists them.
//!
//! `Dropout` draws a fresh mask from the run's random stream at every stochastic evaluation
//! (an SVI step, an optimiser step, a predictive draw: MC dropout) and is the identity where
//! the density must be a deterministic function of the position (NUTS, HMC, Gibbs, the values
//! of draws), as PyTorch's `eval()` mode.

use crate::error::RuntimeError;
use crate::handlers::{Message, SiteKind};
use crate::interpret::Interpreter;
use crate::value::{Elem, ModuleValue, TensorVar, Value};
use bdl_autodiff::{Tensor, Var};
use bdl_diagnostics::Span;
use bdl_dist::Distribution;
use bdl_ir::ir::{arg, Activation, Arg, ExprKind, Layer, ParameterRole, PoolKind};
use rand::Rng as _;
use std::rc::Rc;

/// A call of a lifted network on an input that depends on no latent value, as one run met it:
/// what another device needs to compute the same call for many weight draws at once.
#[derive(Clone, Debug)]
pub struct NetworkCall {
    /// The name the network was lifted as; its weights are the sites `{network}_{k}_weight`
    /// and `{network}_{k}_bias` of its `Linear` layers.
    pub network: String,
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// The input as the first layer sees it: rows of the first `Linear` layer's input width.
    pub input: Tensor,
    /// The shape of the value the call returns.
    pub output_shape: Vec<usize>,
    /// The call expression.
    pub span: Span,
    /// How many times the run had evaluated this call expression before (a call inside a loop
    /// is met once per iteration).
    pub occurrence: usize,
}

/// What a run does where a lifted network is called on an input that depends on no latent
/// value (the only calls whose input another device can hold for a whole batch of draws).
#[derive(Clone, Debug, Default)]
pub enum NetworkCalls {
    /// Compute the forward pass on the tape (every run but a batched prediction).
    #[default]
    Compute,
    /// Compute it, and record each such call in the order the run meets them.
    Record(Vec<NetworkCall>),
    /// Take each such call's value from `outputs`, in order, instead of computing it: the
    /// forward passes were computed elsewhere for this run's weights. The input expression of
    /// a substituted call is not evaluated either (it depends on data alone, draws nothing and
    /// may be large: a whole data matrix gathered by a plate's indices).
    Substitute {
        /// Each call's expression and occurrence, as recorded, with its value (of the call's
        /// `output_shape`).
        outputs: Vec<(Span, usize, Tensor)>,
        /// How many have been used.
        next: usize,
        /// How many times each call expression has been evaluated so far.
        seen: std::collections::HashMap<Span, usize>,
    },
}

impl NetworkCalls {
    /// Counts an evaluation of the call expression at `span` and returns how many came before.
    fn occurrence(&mut self, span: Span) -> usize {
        let seen = match self {
            NetworkCalls::Compute => return 0,
            NetworkCalls::Record(calls) => {
                return calls.iter().filter(|call| call.span == span).count();
            }
            NetworkCalls::Substitute { seen, .. } => seen,
        };
        let count = seen.entry(span).or_insert(0);
        *count += 1;
        *count - 1
    }
}

impl Interpreter<'_> {
    fn network_arg(&mut self, args: &[Arg], span: Span) -> Result<usize, RuntimeError> {
        let expr = arg(args, "network")
            .ok_or_else(|| RuntimeError::model("E0540", "missing argument `network`", span))?;
        match self.eval(expr)? {
            Value::Network(index) => Ok(index),
            other => Err(RuntimeError::model(
                "E0550",
                format!("expected a network, found {}", other.describe(self.tape)),
                expr.span,
            )),
        }
    }

    fn outside_plates(&self, what: &str, span: Span) -> Result<(), RuntimeError> {
        if self.in_plate() {
            return Err(RuntimeError::model(
                "E0551",
                format!("`{what}` inside a plate would make one network per plate element"),
                span,
            )
            .with_hint("lift the network before the plate and call it inside"));
        }
        Ok(())
    }

    /// `lift(name, network, prior)`: every weight a sample site.
    pub(crate) fn lift(
        &mut self,
        name: String,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        self.outside_plates("lift", span)?;
        let network = self.network_arg(args, span)?;
        let prior_of =
            |this: &mut Self, key: &str| -> Result<Option<(Distribution, bool)>, RuntimeError> {
                match arg(args, key) {
                    None => Ok(None),
                    Some(expr) => match this.eval(expr)? {
                        Value::Dist(dist, volatile) => Ok(Some((*dist, volatile))),
                        other => Err(RuntimeError::model(
                            "E0534",
                            format!(
                                "expected a distribution, found {}",
                                other.describe(this.tape)
                            ),
                            expr.span,
                        )),
                    },
                }
            };
        let prior = prior_of(self, "prior")?;
        let weight_prior = prior_of(self, "weight")?.or_else(|| prior.clone());
        let bias_prior = prior_of(self, "bias")?.or_else(|| prior.clone());
        let fan_in = matches!(
            arg(args, "fan_in").map(|expr| &expr.kind),
            Some(ExprKind::Bool(true))
        );
        let layers = self.program_network(network).layers.clone();
        let mut weights = Vec::new();
        for parameter in layers.iter().flat_map(|layer| layer.parameters("")) {
            let key = format!("{}_{}", parameter.name, parameter.path);
            let own = prior_of(self, &key)?;
            let prior_span = arg(args, &key)
                .or_else(|| match parameter.role {
                    ParameterRole::Bias | ParameterRole::Shift => arg(args, "bias"),
                    _ => arg(args, "weight"),
                })
                .or_else(|| arg(args, "prior"))
                .map_or(span, |expr| expr.span);
            let (chosen, what) = match parameter.role {
                ParameterRole::Weight | ParameterRole::Table | ParameterRole::Scale => {
                    (own.or_else(|| weight_prior.clone()), "weights")
                }
                ParameterRole::Bias | ParameterRole::Shift => {
                    (own.or_else(|| bias_prior.clone()), "biases")
                }
            };
            let Some((mut dist, volatile)) = chosen else {
                return Err(RuntimeError::model(
                    "E0552",
                    format!("`lift` needs a prior for the {what}"),
                    span,
                )
                .with_hint(format!(
                    "write `lift(\"net\", net, Normal(0, 1))`, `{} = ...` or `{key} = ...`",
                    if what == "weights" { "weight" } else { "bias" }
                )));
            };
            if fan_in && parameter.role == ParameterRole::Weight {
                let factor = 1.0 / (parameter.fan_in.max(1) as f64).sqrt();
                dist = self.rescaled(&dist, factor, prior_span)?;
            }
            let site = parameter.site(&name);
            weights.push(self.lifted_site(site, dist, volatile, &parameter.shape, prior_span)?);
        }
        Ok(Value::Module(Rc::new(ModuleValue {
            name,
            layers,
            weights,
        })))
    }

    /// `dist` with its location and scale multiplied by `factor` (fan-in scaling); only for
    /// location–scale families.
    fn rescaled(
        &mut self,
        dist: &Distribution,
        factor: f64,
        span: Span,
    ) -> Result<Distribution, RuntimeError> {
        let family = dist.family().name();
        if !bdl_ir::catalogue::FAN_IN_FAMILIES.contains(&family) || !dist.event_shape().is_empty() {
            return Err(RuntimeError::model(
                "E0222",
                format!("`fan_in = true` cannot rescale a `{family}` prior"),
                span,
            )
            .with_hint(format!(
                "fan-in scaling works for {}",
                bdl_ir::catalogue::FAN_IN_FAMILIES.join(", ")
            )));
        }
        let arguments: Vec<(&str, Var)> = dist
            .params()
            .iter()
            .map(|param| {
                let var = if matches!(param.name, "loc" | "scale") {
                    self.tape.mul_scalar(param.var, factor)
                } else {
                    param.var
                };
                (param.name, var)
            })
            .collect();
        let rebuilt = Distribution::new(self.tape, dist.family(), &arguments)
            .and_then(|d| d.expand(dist.batch_shape()))
            .map_err(|error| self.dist_error(&error, true, span))?;
        Ok(rebuilt)
    }

    fn lifted_site(
        &mut self,
        site: String,
        prior: Distribution,
        volatile: bool,
        shape: &[usize],
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        // A multivariate prior's event is the parameter's last axes; its batch shape is
        // broadcast to the axes before.
        let event = prior.event_shape();
        let fits = event.len() <= shape.len() && shape[shape.len() - event.len()..] == event[..];
        if !fits {
            return Err(RuntimeError::model(
                "E0221",
                format!(
                    "a prior with events of shape {event:?} does not fit the layer parameter `{site}` of shape {shape:?}"
                ),
                span,
            )
            .with_hint("a multivariate prior's event must be the parameter's last axis"));
        }
        let lead = &shape[..shape.len() - event.len()];
        let dist = prior
            .expand(lead)
            .and_then(|d| d.to_event(lead.len()))
            .map_err(|error| match error {
                bdl_dist::DistError::InvalidParameter { .. } => {
                    self.dist_error(&error, volatile, span)
                }
                _ => RuntimeError::model(
                    "E0221",
                    format!(
                        "a prior of batch shape {:?} does not fit the layer parameter `{site}` of shape {shape:?}",
                        prior.batch_shape()
                    ),
                    span,
                )
                .with_hint("the prior's batch shape must broadcast to the parameter's shape"),
            })?;
        let mut message = Message::new(site, SiteKind::Sample, span);
        message.dist = Some(dist);
        message.dist_volatile = volatile;
        self.run_site_message(message)
    }

    /// `module(name, network)`: every weight a param site, initialised as PyTorch does
    /// (weights and biases uniform in ±1/√fan_in, embedding tables standard normal,
    /// normalisation scales 1 and shifts 0; drawn from the run's random stream).
    pub(crate) fn module(
        &mut self,
        name: String,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        self.outside_plates("module", span)?;
        let network = self.network_arg(args, span)?;
        let layers = self.program_network(network).layers.clone();
        let mut weights = Vec::new();
        for parameter in layers.iter().flat_map(|layer| layer.parameters("")) {
            let start = match parameter.role {
                ParameterRole::Weight | ParameterRole::Bias => {
                    Start::Uniform(1.0 / (parameter.fan_in.max(1) as f64).sqrt())
                }
                ParameterRole::Table => Start::StandardNormal,
                ParameterRole::Scale => Start::Constant(1.0),
                ParameterRole::Shift => Start::Constant(0.0),
            };
            weights.push(self.module_param(
                parameter.site(&name),
                &parameter.shape,
                start,
                span,
            )?);
        }
        Ok(Value::Module(Rc::new(ModuleValue {
            name,
            layers,
            weights,
        })))
    }

    fn module_param(
        &mut self,
        site: String,
        shape: &[usize],
        start: Start,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        let count: usize = shape.iter().product();
        let values: Vec<f64> = match (start, self.run_rng()) {
            (Start::Constant(value), _) => vec![value; count],
            (Start::Uniform(bound), Some(rng)) => (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
            (Start::StandardNormal, Some(rng)) => (0..count)
                .map(|_| {
                    // Box–Muller: two uniforms give a standard normal.
                    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                    let v: f64 = rng.random_range(0.0..1.0);
                    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
                })
                .collect(),
            (_, None) => vec![0.0; count],
        };
        let tensor = Tensor::from_shape(shape, values).map_err(|e| self.tensor_error(e, span))?;
        let init = TensorVar {
            var: self.tape.constant(tensor),
            elem: Elem::Real,
            volatile: false,
        };
        let mut message = Message::new(site, SiteKind::Param, span);
        message.init = Some(init);
        self.run_site_message(message)
    }

    /// A call `module(input)`. When the run substitutes network calls and this evaluation of
    /// the call is the next one recorded, its value is taken as given and `input` is not
    /// evaluated; otherwise the forward pass runs on the tape.
    pub(crate) fn call_module(
        &mut self,
        module: &ModuleValue,
        input: &bdl_ir::ir::Expr,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        let occurrence = self.network_calls.occurrence(span);
        if let NetworkCalls::Substitute { outputs, next, .. } = &mut self.network_calls {
            if let Some((_, _, output)) = outputs
                .get(*next)
                .filter(|(at, count, _)| *at == span && *count == occurrence)
            {
                let var = self.tape.constant(output.clone());
                *next += 1;
                let volatile = module.weights.iter().any(|w| w.volatile);
                return Ok(TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile,
                });
            }
        }
        let input = self.tensor(input)?;
        self.forward(module, input, span)
    }

    /// The forward pass. A vector input to a network whose first layer takes one feature is a
    /// batch of scalars, and a one-wide output of such a call is returned as a vector.
    pub(crate) fn forward(
        &mut self,
        module: &ModuleValue,
        input: TensorVar,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        // The width of a row as the first layer reads it, where it reads rows of one axis.
        let first_width = match module.layers.first() {
            Some(Layer::Linear { input, .. }) => Some(*input),
            Some(Layer::Unflatten { shape, .. }) => Some(shape.iter().product()),
            _ => None,
        };
        let shape = self.tape.shape(input.var).to_vec();
        let mut squeeze = None;
        let mut x = input.var;
        if shape.len() == 1 {
            if first_width == Some(1) {
                x = self
                    .tape
                    .reshape(x, &[shape[0], 1])
                    .map_err(|e| self.tensor_error(e, span))?;
                squeeze = Some(shape[0]);
            } else if first_width == Some(shape[0]) {
                x = self
                    .tape
                    .reshape(x, &[1, shape[0]])
                    .map_err(|e| self.tensor_error(e, span))?;
                squeeze = Some(0);
            }
        }
        if let Some(width) = first_width {
            let actual = self.tape.shape(x).last().copied();
            if actual != Some(width) {
                return Err(RuntimeError::model(
                    "E0553",
                    format!(
                        "network `{}` takes inputs with {width} features, but the input has shape {shape:?}",
                        module.name
                    ),
                    span,
                )
                .with_hint("the input's last axis must match the first layer's input width"));
            }
        }
        let weights_volatile = module.weights.iter().any(|w| w.volatile);
        let first_input = x;
        let mut weights = module.weights.iter();
        x = self.apply_layers(&module.layers, &mut weights, x, span)?;
        let output_width = match module
            .layers
            .iter()
            .rev()
            .find(|layer| !matches!(layer, Layer::Activation { .. } | Layer::Dropout { .. }))
        {
            Some(Layer::Linear { output, .. }) => Some(*output),
            _ => None,
        };
        match squeeze {
            Some(rows) if rows > 0 && output_width == Some(1) => {
                x = self
                    .tape
                    .reshape(x, &[rows])
                    .map_err(|e| self.tensor_error(e, span))?;
            }
            Some(0) => {
                let width = self.tape.shape(x).last().copied().unwrap_or(1);
                x = self
                    .tape
                    .reshape(x, &[width])
                    .map_err(|e| self.tensor_error(e, span))?;
            }
            _ => {}
        }
        if !input.volatile {
            if let NetworkCalls::Record(calls) = &mut self.network_calls {
                let occurrence = calls.iter().filter(|call| call.span == span).count();
                calls.push(NetworkCall {
                    network: module.name.clone(),
                    layers: module.layers.clone(),
                    input: self.tape.value(first_input).clone(),
                    output_shape: self.tape.shape(x).to_vec(),
                    span,
                    occurrence,
                });
            }
        }
        let volatile = input.volatile || weights_volatile;
        Ok(TensorVar {
            var: x,
            elem: Elem::Real,
            volatile,
        })
    }

    /// Applies `layers` in order, taking each layer's weights from `weights`.
    fn apply_layers<'w>(
        &mut self,
        layers: &[Layer],
        weights: &mut impl Iterator<Item = &'w TensorVar>,
        mut x: Var,
        span: Span,
    ) -> Result<Var, RuntimeError> {
        for layer in layers {
            x = self.apply_layer(layer, weights, x, span)?;
        }
        Ok(x)
    }

    fn apply_layer<'w>(
        &mut self,
        layer: &Layer,
        weights: &mut impl Iterator<Item = &'w TensorVar>,
        x: Var,
        span: Span,
    ) -> Result<Var, RuntimeError> {
        let mut next_weight = || {
            weights
                .next()
                .map(|w| w.var)
                .ok_or_else(|| RuntimeError::model("E0553", "a layer without its weights", span))
        };
        let tensor_error = |this: &Self, error| this.tensor_error(error, span);
        let result = match layer {
            Layer::Linear { bias, .. } => {
                let weight = next_weight()?;
                let bias = if *bias { Some(next_weight()?) } else { None };
                let product = self.tape.matmul(x, weight);
                match (product, bias) {
                    (Ok(product), Some(bias)) => self.tape.add(product, bias),
                    (product, _) => product,
                }
            }
            Layer::Activation { kind, .. } => Ok(match kind {
                Activation::Relu => self.tape.relu(x),
                Activation::LeakyRelu { slope } => self.tape.leaky_relu(x, *slope),
                Activation::Elu { alpha } => self.tape.elu(x, *alpha),
                Activation::Gelu => self.tape.gelu(x),
                Activation::Silu => self.tape.silu(x),
                Activation::Tanh => self.tape.tanh(x),
                Activation::Sigmoid => self.tape.sigmoid(x),
                Activation::Softplus => self.tape.softplus(x),
                Activation::Softmax => self
                    .tape
                    .softmax(x, -1)
                    .map_err(|e| tensor_error(self, e))?,
                Activation::LogSoftmax => self
                    .tape
                    .log_softmax(x, -1)
                    .map_err(|e| tensor_error(self, e))?,
            }),
            Layer::Conv {
                dims,
                stride,
                padding,
                bias,
                ..
            } => {
                let weight = next_weight()?;
                let bias = if *bias { Some(next_weight()?) } else { None };
                self.expect_rank(x, dims + 2, layer, span)?;
                self.tape.conv(x, weight, bias, *stride, *padding)
            }
            Layer::Pool {
                dims,
                kind,
                kernel,
                stride,
                ..
            } => {
                self.expect_rank(x, dims + 2, layer, span)?;
                let window = vec![*kernel; *dims];
                match kind {
                    PoolKind::Max => self.tape.max_pool(x, &window, *stride),
                    PoolKind::Avg => self.tape.avg_pool(x, &window, *stride),
                }
            }
            Layer::Flatten { .. } => {
                let shape = self.tape.shape(x).to_vec();
                let rows = shape.first().copied().unwrap_or(1);
                let width: usize = shape.iter().skip(1).product();
                self.tape.reshape(x, &[rows, width])
            }
            Layer::Unflatten { shape, .. } => {
                let rows = self.tape.shape(x).first().copied().unwrap_or(1);
                let mut target = vec![rows];
                target.extend_from_slice(shape);
                self.tape.reshape(x, &target)
            }
            Layer::Dropout { p, .. } => return self.dropout(x, *p),
            Layer::Embedding { .. } => {
                let table = next_weight()?;
                self.tape.gather(table, x, 0)
            }
            Layer::LayerNorm { .. } => {
                let scale = next_weight()?;
                let shift = next_weight()?;
                let rank = self.tape.shape(x).len();
                let normal = self
                    .tape
                    .normalize(x, &[rank.saturating_sub(1)], NORM_EPS)
                    .map_err(|e| tensor_error(self, e))?;
                self.tape
                    .mul(normal, scale)
                    .and_then(|scaled| self.tape.add(scaled, shift))
            }
            Layer::BatchNorm { .. } => {
                let scale = next_weight()?;
                let shift = next_weight()?;
                let shape = self.tape.shape(x).to_vec();
                let axes: Vec<usize> = (0..shape.len()).filter(|&axis| axis != 1).collect();
                let normal = self
                    .tape
                    .normalize(x, &axes, NORM_EPS)
                    .map_err(|e| tensor_error(self, e))?;
                // The per-channel scale and shift broadcast over the axes after the channels.
                let mut per_channel = vec![shape.get(1).copied().unwrap_or(1)];
                per_channel.extend(std::iter::repeat_n(1, shape.len().saturating_sub(2)));
                let scale = self
                    .tape
                    .reshape(scale, &per_channel)
                    .map_err(|e| tensor_error(self, e))?;
                let shift = self
                    .tape
                    .reshape(shift, &per_channel)
                    .map_err(|e| tensor_error(self, e))?;
                self.tape
                    .mul(normal, scale)
                    .and_then(|scaled| self.tape.add(scaled, shift))
            }
            Layer::Residual { layers, .. } => {
                let branch = self.apply_layers(layers, weights, x, span)?;
                self.tape.add(x, branch)
            }
        };
        result.map_err(|error| {
            RuntimeError::model(
                "E0553",
                format!(
                    "layer {} (`{}`) cannot take its input: {error}",
                    layer.index(),
                    layer.describe()
                ),
                span,
            )
            .with_hint("check the shape of the network's input against its first layer")
        })
    }

    /// An error unless `x` has `rank` axes (a batch, the channels and the spatial axes).
    fn expect_rank(
        &self,
        x: Var,
        rank: usize,
        layer: &Layer,
        span: Span,
    ) -> Result<(), RuntimeError> {
        let shape = self.tape.shape(x);
        if shape.len() == rank {
            return Ok(());
        }
        Err(RuntimeError::model(
            "E0553",
            format!(
                "layer {} (`{}`) takes a batch of shape [N, channels, …] with {rank} axes, but it is given shape {shape:?}",
                layer.index(),
                layer.describe()
            ),
            span,
        )
        .with_hint("read each row as an image with `Unflatten(shape = [channels, height, width])` before the first convolution"))
    }

    /// Inverted dropout with a fresh mask, where the run is stochastic; the identity otherwise.
    fn dropout(&mut self, x: Var, p: f64) -> Result<Var, RuntimeError> {
        if p <= 0.0 || !self.options.dropout {
            return Ok(x);
        }
        let shape = self.tape.shape(x).to_vec();
        let count: usize = shape.iter().product();
        let Some(rng) = self.run_rng() else {
            return Ok(x);
        };
        let mask = dropout_mask(rng, count, p);
        let mask =
            Tensor::from_shape(&shape, mask).map_err(|e| self.tensor_error(e, Span::default()))?;
        let var = self.tape.constant(mask);
        self.dropout_masks.push(DropoutMask { var, p });
        self.tape
            .mul(x, var)
            .map_err(|e| self.tensor_error(e, Span::default()))
    }
}

/// The ε PyTorch's normalisation layers add to the variance.
const NORM_EPS: f64 = 1e-5;

/// How `module` starts a parameter.
#[derive(Copy, Clone, Debug)]
enum Start {
    /// Uniform in ±bound.
    Uniform(f64),
    /// Standard normal.
    StandardNormal,
    /// Every element this value.
    Constant(f64),
}

/// A dropout mask recorded on the tape: redrawn before every replay of the recording.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutMask {
    /// The constant node holding the mask (0 or 1/(1 − p) per element).
    pub var: Var,
    /// The probability of dropping an element.
    pub p: f64,
}

/// `count` mask values: 0 with probability `p`, 1/(1 − p) otherwise.
pub fn dropout_mask(rng: &mut impl rand::Rng, count: usize, p: f64) -> Vec<f64> {
    let keep = 1.0 / (1.0 - p);
    (0..count)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect()
}
