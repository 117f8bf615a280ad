//! Networks: lifting a declared network so that every weight is a sample site with a prior
//! (Pyro's `random_module`), registering its weights as `param` sites (Pyro's `module`), and the
//! forward pass of a lifted network.
//!
//! A `Linear(in, out)` layer at position `k` of `Sequential` computes `x @ W + b` with
//! `W: [in, out]`; its sites are named `{name}_{k}_weight` and `{name}_{k}_bias`.

use crate::error::RuntimeError;
use crate::handlers::{Message, SiteKind};
use crate::interpret::Interpreter;
use crate::value::{Elem, ModuleValue, TensorVar, Value};
use bdl_autodiff::Tensor;
use bdl_diagnostics::Span;
use bdl_dist::Distribution;
use bdl_ir::ir::{arg, Activation, Arg, Layer};
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
        let layers = self.program_network(network).layers.clone();
        let mut weights = Vec::new();
        for layer in &layers {
            let Layer::Linear {
                index,
                input,
                output,
                bias,
            } = *layer
            else {
                continue;
            };
            let Some((weight_dist, volatile)) = weight_prior.clone() else {
                return Err(RuntimeError::model(
                    "E0552",
                    "`lift` needs a prior for the weights",
                    span,
                )
                .with_hint("write `lift(\"net\", net, Normal(0, 1))` or `weight = ...`"));
            };
            let weight_site = format!("{name}_{index}_weight");
            let weight =
                self.lifted_site(weight_site, weight_dist, volatile, &[input, output], span)?;
            let bias = if bias {
                let Some((bias_dist, volatile)) = bias_prior.clone() else {
                    return Err(RuntimeError::model(
                        "E0552",
                        "`lift` needs a prior for the biases",
                        span,
                    )
                    .with_hint("write `lift(\"net\", net, Normal(0, 1))` or `bias = ...`"));
                };
                Some(self.lifted_site(
                    format!("{name}_{index}_bias"),
                    bias_dist,
                    volatile,
                    &[output],
                    span,
                )?)
            } else {
                None
            };
            weights.push((weight, bias));
        }
        Ok(Value::Module(Rc::new(ModuleValue {
            name,
            layers,
            weights,
        })))
    }

    fn lifted_site(
        &mut self,
        site: String,
        prior: Distribution,
        volatile: bool,
        shape: &[usize],
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        let dist = prior
            .expand(shape)
            .and_then(|d| d.to_event(shape.len()))
            .map_err(|error| self.dist_error(&error, volatile, span))?;
        let mut message = Message::new(site, SiteKind::Sample, span);
        message.dist = Some(dist);
        message.dist_volatile = volatile;
        self.run_site_message(message)
    }

    /// `module(name, network)`: every weight a param site, initialised as PyTorch does
    /// (uniform in ±1/√in, drawn from the run's random stream).
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
        for layer in &layers {
            let Layer::Linear {
                index,
                input,
                output,
                bias,
            } = *layer
            else {
                continue;
            };
            let bound = 1.0 / (input.max(1) as f64).sqrt();
            let weight = self.module_param(
                format!("{name}_{index}_weight"),
                &[input, output],
                bound,
                span,
            )?;
            let bias = if bias {
                Some(self.module_param(format!("{name}_{index}_bias"), &[output], bound, span)?)
            } else {
                None
            };
            weights.push((weight, bias));
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
        bound: f64,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        let count: usize = shape.iter().product();
        let values: Vec<f64> = match self.run_rng() {
            Some(rng) => (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
            None => vec![0.0; count],
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
                let volatile = module
                    .weights
                    .iter()
                    .any(|(w, b)| w.volatile || b.is_some_and(|b| b.volatile));
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
        let first_width = module.layers.iter().find_map(|layer| match layer {
            Layer::Linear { input, .. } => Some(*input),
            Layer::Activation { .. } => None,
        });
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
                .with_hint("the input's last axis must match the first `Linear` layer's input width"));
            }
        }
        let weights_volatile = module
            .weights
            .iter()
            .any(|(w, b)| w.volatile || b.is_some_and(|b| b.volatile));
        let first_input = x;
        let mut weights = module.weights.iter();
        let mut output_width = None;
        for layer in &module.layers {
            x = match layer {
                Layer::Linear { output, .. } => {
                    let Some((weight, bias)) = weights.next() else {
                        return Err(RuntimeError::model(
                            "E0553",
                            "a layer without weights",
                            span,
                        ));
                    };
                    output_width = Some(*output);
                    let product = self
                        .tape
                        .matmul(x, weight.var)
                        .map_err(|e| self.tensor_error(e, span))?;
                    match bias {
                        Some(bias) => self
                            .tape
                            .add(product, bias.var)
                            .map_err(|e| self.tensor_error(e, span))?,
                        None => product,
                    }
                }
                Layer::Activation { kind, .. } => match kind {
                    Activation::Relu => self.tape.relu(x),
                    Activation::Tanh => self.tape.tanh(x),
                    Activation::Sigmoid => self.tape.sigmoid(x),
                    Activation::Softplus => self.tape.softplus(x),
                    Activation::Softmax => self
                        .tape
                        .softmax(x, -1)
                        .map_err(|e| self.tensor_error(e, span))?,
                    Activation::LogSoftmax => self
                        .tape
                        .log_softmax(x, -1)
                        .map_err(|e| self.tensor_error(e, span))?,
                },
            };
        }
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
}
