//! Networks: `network` declarations, their layers and the sizes that flow between them, so
//! that lifting a network knows the shapes of its weights.

use super::*;

impl Checker<'_> {
    pub(super) fn network(&mut self, value: &Expr) -> NetworkInfo {
        let mut layers = Vec::new();
        match &value.kind {
            ExprKind::Call { callee, args } if callee.as_name() == Some("Sequential") => {
                self.reference_layer(callee);
                self.record(
                    callee,
                    ExprInfo {
                        ty: Ty::Builtin,
                        latent: false,
                    },
                );
                for (index, arg) in args.iter().enumerate() {
                    if let Some(name) = &arg.name {
                        self.error(
                            Diagnostic::error("E0103", "`Sequential` takes no named arguments")
                                .with_label(name.span, "named argument")
                                .with_hint("list the layers in order"),
                        );
                    }
                    if let Some(layer) = self.layer(&arg.value, index) {
                        layers.push(layer);
                    }
                }
            }
            _ => {
                if let Some(layer) = self.layer(value, 0) {
                    layers.push(layer);
                }
            }
        }
        // Consecutive sized layers must agree: the output of one is the input of the next.
        let mut previous: Option<&LayerInfo> = None;
        for layer in layers.iter().filter(|layer| layer.input.is_some()) {
            if let (Some(before), Some(input)) = (previous, &layer.input) {
                if let Some(output) = &before.output {
                    if output.conflicts(input) {
                        self.diagnostics.push(
                            Diagnostic::error("E0204", "network layer sizes do not chain")
                                .with_label(layer.span, format!("this layer takes {input} inputs"))
                                .with_secondary(
                                    before.span,
                                    format!("but the previous layer gives {output} outputs"),
                                )
                                .with_hint(format!(
                                    "make the sizes agree, e.g. `Linear({output}, ...)`"
                                )),
                        );
                    }
                }
            }
            previous = Some(layer);
        }
        let input = layers.iter().find_map(|layer| layer.input.clone());
        let output = layers.iter().rev().find_map(|layer| layer.output.clone());
        self.record(
            value,
            ExprInfo {
                ty: Ty::Network {
                    input: input.clone(),
                    output: output.clone(),
                },
                latent: false,
            },
        );
        NetworkInfo {
            layers,
            input,
            output,
        }
    }

    pub(super) fn reference_layer(&mut self, name_expr: &Expr) {
        if let Some(spec) = name_expr.as_name().and_then(catalogue::layer) {
            self.analysis
                .references
                .insert(name_expr.id, Reference::Layer(spec));
        }
    }

    pub(super) fn layer(&mut self, expr: &Expr, index: usize) -> Option<LayerInfo> {
        let (name_expr, args): (&Expr, &[Arg]) = match &expr.kind {
            ExprKind::Name(_) => (expr, &[]),
            ExprKind::Call { callee, args } if callee.as_name().is_some() => (callee, args),
            _ => {
                self.expr(expr);
                self.error(
                    Diagnostic::error("E0206", "expected a layer")
                        .with_label(expr.span, "not a layer")
                        .with_hint("layers are `Linear(in, out)`, `ReLU`, `Tanh`, `Sigmoid`, `Softplus`, `Softmax` and `LogSoftmax`"),
                );
                return None;
            }
        };
        let name = name_expr.as_name().unwrap_or_default();
        let Some(spec) = catalogue::layer(name) else {
            for arg in args {
                self.expr(&arg.value);
            }
            let suggestion = did_you_mean(name, catalogue::LAYERS.iter().map(|l| l.name));
            self.error(
                Diagnostic::error("E0101", format!("unknown layer `{name}`"))
                    .with_label(name_expr.span, "not a layer")
                    .with_hint(match suggestion {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => "layers are `Linear(in, out)`, `ReLU`, `Tanh`, `Sigmoid`, `Softplus`, `Softmax` and `LogSoftmax`".to_string(),
                    }),
            );
            return None;
        };
        self.reference_layer(name_expr);
        if spec.name == "Sequential" {
            self.error(
                Diagnostic::error("E0206", "`Sequential` cannot be nested")
                    .with_label(expr.span, "nested here")
                    .with_hint("list every layer in one `Sequential(...)`"),
            );
            return None;
        }
        let infos: Vec<ExprInfo> = args.iter().map(|arg| self.expr(&arg.value)).collect();
        let slots = self.match_args(spec.name, spec.params, args, expr.span, "E0103", "E0102");
        self.record_call(expr, Reference::Layer(spec), &slots, args);
        let mut input = None;
        let mut output = None;
        let mut bias = spec.has_weights;
        for (slot, param) in slots.iter().zip(spec.params) {
            let Some((_, arg_index)) = slot else {
                continue;
            };
            let value = &args[*arg_index].value;
            match param.domain {
                Domain::Size => {
                    let dim = self.size_argument(value, &infos[*arg_index]);
                    if param.names[0] == "in_features" {
                        input = Some(dim);
                    } else {
                        output = Some(dim);
                    }
                }
                Domain::Bool => match value.kind {
                    ExprKind::Bool(flag) => bias = flag,
                    _ => self.error(
                        Diagnostic::error("E0206", "`bias` must be `true` or `false`")
                            .with_label(value.span, "not a literal boolean")
                            .with_hint("write `bias = false` to drop the bias"),
                    ),
                },
                _ => {}
            }
        }
        self.record(
            expr,
            ExprInfo {
                ty: Ty::Network {
                    input: input.clone(),
                    output: output.clone(),
                },
                latent: false,
            },
        );
        Some(LayerInfo {
            index,
            spec,
            input,
            output,
            bias: bias && spec.has_weights,
            span: expr.span,
        })
    }

    /// A size given as an argument: a positive integer literal or an integer name.
    pub(super) fn size_argument(&mut self, value: &Expr, info: &ExprInfo) -> Dim {
        let is_int_scalar =
            matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.is_scalar());
        let non_positive = constant(value).is_some_and(|v| v <= 0.0);
        if non_positive || (!is_int_scalar && info.ty != Ty::Unknown) {
            self.error(
                Diagnostic::error("E0209", "a size must be a positive integer")
                    .with_label(value.span, format!("found {}", info.ty.describe()))
                    .with_hint("write a positive integer literal or an `int` from the data block"),
            );
            return Dim::Unknown;
        }
        self.dim_value(value)
    }

    /// The value of an integer expression as a dimension, where it is statically known.
    pub(super) fn dim_value(&self, expr: &Expr) -> Dim {
        match &expr.kind {
            ExprKind::Int(value) => Dim::Const(*value),
            ExprKind::Name(name) => match self.analysis.references.get(&expr.id) {
                Some(Reference::Binding(id)) => {
                    let binding = &self.analysis.bindings[id.0 as usize];
                    let is_int_scalar = matches!(&binding.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.is_scalar());
                    if matches!(binding.kind, BindingKind::Data | BindingKind::SizeVar)
                        && is_int_scalar
                    {
                        Dim::Size(name.clone())
                    } else {
                        Dim::Unknown
                    }
                }
                _ => Dim::Unknown,
            },
            ExprKind::Call { callee, args } if callee.as_name() == Some("len") => args
                .first()
                .and_then(|arg| match self.info_of(&arg.value).ty.shape() {
                    Shape::Known(dims) => dims.first().cloned(),
                    Shape::Unknown => None,
                })
                .unwrap_or(Dim::Unknown),
            _ => Dim::Unknown,
        }
    }
}
