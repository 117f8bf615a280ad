//! Networks: `network` declarations, their layers, and the shape of one row (one sample of the
//! batch) as it flows from layer to layer, so that a layer that cannot take what the previous
//! one gives is reported where it is written, and lifting a network knows its weights' shapes.
//!
//! A row's shape is a list of extents, each known or not; the batch axis is never part of it.
//! `Linear(in, out)` maps `[…, in]` to `[…, out]`; `Conv2d(c, o, k)` maps `[c, h, w]` to
//! `[o, h', w']`; `Flatten` gives `[h·w·…]`; `Unflatten(shape = s)` gives `s`; `Embedding(n, d)`
//! appends `d`; the others keep the shape.

use super::*;
use crate::ir::{Activation, Layer, PoolKind};

/// The shape of one row between two layers: `None` where nothing is known, otherwise one entry
/// per axis, each `None` where that extent is unknown.
type RowShape = Option<Vec<Option<usize>>>;

/// The names of every layer, for hints.
const LAYER_LIST: &str = "layers are `Linear`, `Conv1d`, `Conv2d`, `MaxPool1d`, `MaxPool2d`, `AvgPool1d`, `AvgPool2d`, `Flatten`, `Unflatten`, `Dropout`, `Embedding`, `LayerNorm`, `BatchNorm1d`, `BatchNorm2d`, `Residual` and the activations `ReLU`, `LeakyReLU`, `ELU`, `GELU`, `SiLU`, `Tanh`, `Sigmoid`, `Softplus`, `Softmax`, `LogSoftmax`";

fn describe_row(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|dim| dim.map_or("?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

impl Checker<'_> {
    pub(super) fn network(&mut self, value: &Expr) -> NetworkInfo {
        let layers = self.layer_list(value);
        let (input_row, output_row) = self.flow(&layers, None);
        let row_width = |row: &RowShape| match row.as_deref() {
            Some([Some(width)]) => Some(Dim::Const(*width as i64)),
            _ => None,
        };
        // The width the network takes: the first layer's, where that layer fixes a row of one
        // axis (a convolution or an embedding takes rows of another rank).
        let input = row_width(&input_row);
        let output = row_width(&output_row);
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

    /// The layers of `Sequential(...)` or of a single layer (a network, or the branch of a
    /// `Residual`).
    fn layer_list(&mut self, value: &Expr) -> Vec<LayerInfo> {
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
        layers
    }

    /// Follows a row's shape through `layers` from `start`, reporting each layer that cannot
    /// take what it is given. Returns the shape the first layer takes (as far as the layers fix
    /// it) and the shape the last one gives.
    fn flow(&mut self, layers: &[LayerInfo], start: RowShape) -> (RowShape, RowShape) {
        let mut row = start.clone();
        let mut input = start;
        let mut previous: Option<&LayerInfo> = None;
        let mut earlier: RowShape = None;
        for (position, layer) in layers.iter().enumerate() {
            let required = self.layer_input(layer);
            if position == 0 && input.is_none() {
                input = required.clone();
            }
            let before = row.clone();
            row = self.layer_output(layer, previous, &earlier, row);
            earlier = before;
            previous = Some(layer);
        }
        (input, row)
    }

    /// The row shape a layer fixes for its input when it comes first, as far as it does.
    fn layer_input(&self, layer: &LayerInfo) -> RowShape {
        match layer.layer.as_ref()? {
            Layer::Linear { input, .. } => Some(vec![Some(*input)]),
            Layer::Unflatten { shape, .. } => Some(vec![Some(shape.iter().product())]),
            Layer::LayerNorm { features, .. } => Some(vec![Some(*features)]),
            Layer::Residual { layers, .. } => {
                let first = layers.first()?;
                let info = layer.children.first()?;
                debug_assert_eq!(first.index(), info.index);
                self.layer_input(info)
            }
            _ => None,
        }
    }

    fn shape_error(
        &mut self,
        code: &str,
        layer: &LayerInfo,
        message: String,
        label: String,
        hint: String,
    ) {
        self.diagnostics.push(
            Diagnostic::error(code, message)
                .with_label(layer.span, label)
                .with_hint(hint),
        );
    }

    /// The row shape after `layer`, given the one before it (`row`) and the one before the
    /// previous layer (`earlier`, for hints), with an error where they do not fit.
    fn layer_output(
        &mut self,
        layer: &LayerInfo,
        previous: Option<&LayerInfo>,
        earlier: &RowShape,
        row: RowShape,
    ) -> RowShape {
        let ir = layer.layer.clone()?;
        let given = row.clone();
        let last = given
            .as_ref()
            .and_then(|dims| dims.last().copied().flatten());
        match ir {
            Layer::Linear { input, output, .. } => {
                if let Some(width) = last.filter(|&width| width != input) {
                    let mut diagnostic =
                        Diagnostic::error("E0204", "network layer sizes do not chain")
                            .with_label(layer.span, format!("this layer takes {input} inputs"));
                    let after_flatten = previous
                        .and_then(|p| p.layer.as_ref())
                        .is_some_and(|p| matches!(p, Layer::Flatten { .. }));
                    if let Some(before) = previous {
                        diagnostic = diagnostic.with_secondary(
                            before.span,
                            if after_flatten {
                                format!("but `Flatten` gives {width} features per row")
                            } else {
                                format!("but the previous layer gives {width} outputs")
                            },
                        );
                    }
                    let hint = if after_flatten {
                        let dims = earlier.as_deref().map(describe_row).unwrap_or_default();
                        format!(
                            "the computed size is {width} (`Flatten` turns a row of shape {dims} into {width} numbers): write `Linear({width}, {output})`"
                        )
                    } else {
                        format!("make the sizes agree, e.g. `Linear({width}, ...)`")
                    };
                    self.diagnostics.push(diagnostic.with_hint(hint));
                }
                match given {
                    Some(mut dims) if !dims.is_empty() => {
                        *dims.last_mut().expect("a non-empty row") = Some(output);
                        Some(dims)
                    }
                    _ => Some(vec![Some(output)]),
                }
            }
            Layer::Conv {
                dims: spatial,
                input,
                output,
                kernel,
                stride,
                padding,
                ..
            } => {
                let name = layer.spec.name;
                let extents = match self.channels_first(layer, name, spatial, input, &given) {
                    Some(extents) => extents,
                    None => vec![None; spatial],
                };
                let mut out = vec![Some(output)];
                out.extend(self.window_output(layer, name, &extents, kernel, stride, padding));
                Some(out)
            }
            Layer::Pool {
                dims: spatial,
                kernel,
                stride,
                ..
            } => {
                let name = layer.spec.name;
                let channels = given
                    .as_ref()
                    .and_then(|dims| dims.first().copied().flatten());
                // Pooling keeps the channels, so only the rank is checked.
                let extents = self
                    .channels_first(layer, name, spatial, 0, &given)
                    .unwrap_or_else(|| vec![None; spatial]);
                let mut out = vec![channels];
                out.extend(self.window_output(layer, name, &extents, kernel, stride, 0));
                Some(out)
            }
            Layer::Flatten { .. } => match given {
                Some(dims) => Some(vec![dims
                    .iter()
                    .try_fold(1usize, |total, dim| dim.map(|d| total * d))]),
                None => Some(vec![None]),
            },
            Layer::Unflatten { shape, .. } => {
                let total: usize = shape.iter().product();
                if let Some(dims) = &given {
                    let known: Option<usize> =
                        dims.iter().try_fold(1usize, |t, dim| dim.map(|d| t * d));
                    if let Some(count) = known.filter(|&count| count != total) {
                        self.shape_error(
                            "E0217",
                            layer,
                            format!("`Unflatten` makes rows of {total} numbers, but it is given rows of {count}"),
                            format!("shape {} holds {total} numbers", describe_row(&shape.iter().map(|&d| Some(d)).collect::<Vec<_>>())),
                            format!("the rows it is given have shape {}: choose a shape whose extents multiply to {count}", describe_row(dims)),
                        );
                    }
                }
                Some(shape.iter().map(|&d| Some(d)).collect())
            }
            Layer::Embedding { dim, .. } => match given {
                Some(mut dims) => {
                    dims.push(Some(dim));
                    Some(dims)
                }
                None => Some(vec![Some(dim)]),
            },
            Layer::LayerNorm { features, .. } => {
                if let Some(width) = last.filter(|&w| w != features) {
                    self.shape_error(
                        "E0217",
                        layer,
                        format!("`LayerNorm({features})` normalises a last axis of {features}, but the rows it is given end in {width}"),
                        format!("normalises {features} features"),
                        format!("write `LayerNorm({width})`"),
                    );
                }
                given.or_else(|| Some(vec![Some(features)]))
            }
            Layer::BatchNorm { features, .. } => {
                let spatial = if layer.spec.name == "BatchNorm2d" {
                    2
                } else {
                    1
                };
                if let Some(dims) = &given {
                    let channels = dims.first().copied().flatten();
                    let rank_ok = if spatial == 2 {
                        dims.len() == 3
                    } else {
                        dims.len() == 1 || dims.len() == 2
                    };
                    if !rank_ok {
                        self.shape_error(
                            "E0217",
                            layer,
                            format!("`{}` cannot take rows of shape {}", layer.spec.name, describe_row(dims)),
                            "normalises each channel".to_string(),
                            if spatial == 2 {
                                "`BatchNorm2d` takes rows [channels, height, width]; use `BatchNorm1d` on [features] or [channels, length]".to_string()
                            } else {
                                "`BatchNorm1d` takes rows [features] or [channels, length]; use `BatchNorm2d` on images".to_string()
                            },
                        );
                    } else if let Some(c) = channels.filter(|&c| c != features) {
                        self.shape_error(
                            "E0217",
                            layer,
                            format!("`{}({features})` normalises {features} channels, but it is given {c}", layer.spec.name),
                            format!("{features} channels"),
                            format!("write `{}({c})`", layer.spec.name),
                        );
                    }
                }
                given.or_else(|| {
                    let mut dims = vec![Some(features)];
                    dims.extend(vec![None; if spatial == 2 { 2 } else { 0 }]);
                    Some(dims)
                })
            }
            Layer::Residual { .. } => {
                let before = given.clone();
                let (_, after) = self.flow(&layer.children, given);
                if let (Some(b), Some(a)) = (&before, &after) {
                    let differs = b.len() != a.len()
                        || b.iter()
                            .zip(a)
                            .any(|(x, y)| matches!((x, y), (Some(x), Some(y)) if x != y));
                    if differs {
                        self.shape_error(
                            "E0219",
                            layer,
                            format!("a `Residual` branch must keep the row's shape, but it maps {} to {}", describe_row(b), describe_row(a)),
                            "`x + f(x)` needs f(x) shaped as x".to_string(),
                            "make the branch's last layer give back the shape it was given".to_string(),
                        );
                    }
                }
                before.or(after)
            }
            Layer::Activation { .. } | Layer::Dropout { .. } => given,
        }
    }

    /// The spatial extents of a channels-first row `[channels, spatial…]` that a convolution
    /// or pooling layer is given, with an error if its rank or (for a convolution) its channel
    /// count does not fit; `None` where nothing is known or it does not fit.
    fn channels_first(
        &mut self,
        layer: &LayerInfo,
        name: &str,
        spatial: usize,
        channels: usize,
        given: &RowShape,
    ) -> Option<Vec<Option<usize>>> {
        let dims = given.as_ref()?;
        let layout = if spatial == 2 {
            "[channels, height, width]"
        } else {
            "[channels, length]"
        };
        if dims.len() != spatial + 1 {
            let hint = match dims.as_slice() {
                [Some(width)] => {
                    let side = (*width as f64).sqrt().round() as usize;
                    if spatial == 2 && side * side == *width {
                        format!("put `Unflatten(shape = [1, {side}, {side}])` before it to read each row of {width} numbers as a one-channel {side}×{side} image")
                    } else {
                        format!("put `Unflatten(shape = [...])` before it to give each row the shape {layout}")
                    }
                }
                _ => format!("`{name}` takes rows {layout}"),
            };
            self.shape_error(
                "E0217",
                layer,
                format!(
                    "`{name}` needs rows of shape {layout}, but it is given rows of shape {}",
                    describe_row(dims)
                ),
                format!("takes {layout}"),
                hint,
            );
            return None;
        }
        if layer.spec.has_weights {
            if let Some(c) = dims[0].filter(|&c| c != channels) {
                self.shape_error(
                    "E0217",
                    layer,
                    format!("`{name}` takes {channels} input channels, but it is given {c}"),
                    format!("this layer takes {channels} channels"),
                    format!("the previous layer gives {c} channels: write `{name}({c}, ...)`"),
                );
            }
        }
        Some(dims[1..].to_vec())
    }

    /// The spatial extents after a sliding window, with an error where the window does not fit.
    fn window_output(
        &mut self,
        layer: &LayerInfo,
        name: &str,
        extents: &[Option<usize>],
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Vec<Option<usize>> {
        let mut out = Vec::new();
        for extent in extents {
            out.push(extent.and_then(|size| {
                let padded = size + 2 * padding;
                if padded < kernel {
                    self.shape_error(
                        "E0217",
                        layer,
                        format!("`{name}`'s window of {kernel} does not fit an extent of {size}"),
                        format!("a window of {kernel}"),
                        format!("the input's spatial extent is {size}{}: use a smaller kernel or more padding", if padding > 0 { format!(" ({padded} padded)") } else { String::new() }),
                    );
                    return None;
                }
                Some((padded - kernel) / stride.max(1) + 1)
            }));
        }
        out
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
                        .with_hint(LAYER_LIST),
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
                        None => LAYER_LIST.to_string(),
                    }),
            );
            return None;
        };
        self.reference_layer(name_expr);
        if spec.name == "Sequential" {
            self.error(
                Diagnostic::error("E0206", "`Sequential` cannot be nested")
                    .with_label(expr.span, "nested here")
                    .with_hint("list every layer in one `Sequential(...)`, or wrap a block in `Residual(Sequential(...))`"),
            );
            return None;
        }
        let slots = self.match_args(spec.name, spec.params, args, expr.span, "E0103", "E0102");
        // A `Residual`'s argument is a layer, not a value.
        let mut children = Vec::new();
        let infos: Vec<ExprInfo> = args
            .iter()
            .map(|arg| {
                if spec.name == "Residual" {
                    children = self.layer_list(&arg.value);
                    ExprInfo::default()
                } else {
                    self.expr(&arg.value)
                }
            })
            .collect();
        self.record_call(expr, Reference::Layer(spec), &slots, args);
        let mut input = None;
        let mut output = None;
        let mut bias = spec.has_weights;
        let mut sizes: HashMap<&'static str, Option<usize>> = HashMap::new();
        let mut reals: HashMap<&'static str, f64> = HashMap::new();
        let mut shape: Option<Vec<usize>> = None;
        let mut complete = true;
        for (slot, param) in slots.iter().zip(spec.params) {
            let Some((_, arg_index)) = slot else {
                continue;
            };
            let value = &args[*arg_index].value;
            let key = param.names[0];
            match param.domain {
                Domain::Size => {
                    let dim = self.size_argument(value, &infos[*arg_index]);
                    let literal = dim.constant().and_then(|v| usize::try_from(v).ok());
                    complete &= literal.is_some();
                    sizes.insert(key, literal);
                    if spec.name == "Linear" {
                        if key == "in_features" {
                            input = Some(dim);
                        } else {
                            output = Some(dim);
                        }
                    }
                }
                Domain::Count => match value.kind {
                    ExprKind::Int(v) if v >= 0 => {
                        sizes.insert(key, usize::try_from(v).ok());
                    }
                    _ => {
                        complete = false;
                        self.error(
                            Diagnostic::error(
                                "E0218",
                                format!("`{key}` must be a non-negative integer literal"),
                            )
                            .with_label(value.span, "not a non-negative integer literal")
                            .with_hint(format!("write e.g. `{key} = 1`")),
                        );
                    }
                },
                Domain::Bool => match value.kind {
                    ExprKind::Bool(flag) => bias = flag,
                    _ => self.error(
                        Diagnostic::error("E0206", "`bias` must be `true` or `false`")
                            .with_label(value.span, "not a literal boolean")
                            .with_hint("write `bias = false` to drop the bias"),
                    ),
                },
                Domain::Any | Domain::Positive | Domain::Probability => match constant(value) {
                    Some(v) => {
                        let valid = match param.domain {
                            Domain::Positive => v > 0.0,
                            Domain::Probability => (0.0..1.0).contains(&v),
                            _ => v.is_finite(),
                        };
                        if valid {
                            reals.insert(key, v);
                        } else {
                            complete = false;
                            let range = match param.domain {
                                Domain::Positive => "a positive number",
                                Domain::Probability => "a probability in [0, 1)",
                                _ => "a finite number",
                            };
                            self.error(
                                Diagnostic::error("E0218", format!("`{key}` of `{}` must be {range}", spec.name))
                                    .with_label(value.span, format!("found {v}"))
                                    .with_hint(if spec.name == "Dropout" {
                                        "`Dropout(p)` drops each element with probability p: write e.g. `Dropout(0.1)`".to_string()
                                    } else {
                                        format!("write {range}")
                                    }),
                            );
                        }
                    }
                    None => {
                        complete = false;
                        self.error(
                            Diagnostic::error("E0218", format!("`{key}` of `{}` must be a number literal", spec.name))
                                .with_label(value.span, "not a literal")
                                .with_hint("layer settings are fixed when the network is declared: write a number"),
                        );
                    }
                },
                Domain::Shape => {
                    let literal: Option<Vec<usize>> = match &value.kind {
                        ExprKind::List(items) if !items.is_empty() => items
                            .iter()
                            .map(|item| match item.kind {
                                ExprKind::Int(v) if v > 0 => usize::try_from(v).ok(),
                                _ => None,
                            })
                            .collect(),
                        _ => None,
                    };
                    if literal.is_none() {
                        complete = false;
                        self.error(
                            Diagnostic::error(
                                "E0218",
                                "`shape` must be a list of positive integer literals",
                            )
                            .with_label(value.span, "not a list of positive integers")
                            .with_hint("write e.g. `Unflatten(shape = [1, 8, 8])`"),
                        );
                    }
                    shape = literal;
                }
                _ => {}
            }
        }
        let size = |key: &str| sizes.get(key).copied().flatten();
        let ir = if !complete
            || slots
                .iter()
                .zip(spec.params)
                .any(|(slot, p)| p.required && slot.is_none())
        {
            None
        } else {
            let conv_or_pool_dims = if spec.name.ends_with("1d") { 1 } else { 2 };
            match spec.name {
                "Linear" => Some(Layer::Linear {
                    index,
                    input: size("in_features")?,
                    output: size("out_features")?,
                    bias,
                }),
                "Conv1d" | "Conv2d" => Some(Layer::Conv {
                    index,
                    dims: conv_or_pool_dims,
                    input: size("in_channels")?,
                    output: size("out_channels")?,
                    kernel: size("kernel_size")?,
                    stride: size("stride").unwrap_or(1),
                    padding: size("padding").unwrap_or(0),
                    bias,
                }),
                "MaxPool1d" | "MaxPool2d" | "AvgPool1d" | "AvgPool2d" => {
                    let kernel = size("kernel_size")?;
                    Some(Layer::Pool {
                        index,
                        dims: conv_or_pool_dims,
                        kind: if spec.name.starts_with("Max") {
                            PoolKind::Max
                        } else {
                            PoolKind::Avg
                        },
                        kernel,
                        stride: size("stride").unwrap_or(kernel),
                    })
                }
                "Flatten" => Some(Layer::Flatten { index }),
                "Unflatten" => Some(Layer::Unflatten {
                    index,
                    shape: shape.clone()?,
                }),
                "Dropout" => Some(Layer::Dropout {
                    index,
                    p: reals.get("p").copied().unwrap_or(0.5),
                }),
                "Embedding" => Some(Layer::Embedding {
                    index,
                    count: size("num_embeddings")?,
                    dim: size("embedding_dim")?,
                }),
                "LayerNorm" => Some(Layer::LayerNorm {
                    index,
                    features: size("normalized_shape")?,
                }),
                "BatchNorm1d" | "BatchNorm2d" => Some(Layer::BatchNorm {
                    index,
                    features: size("num_features")?,
                }),
                "Residual" => {
                    let layers: Option<Vec<Layer>> =
                        children.iter().map(|child| child.layer.clone()).collect();
                    layers
                        .filter(|layers| !layers.is_empty())
                        .map(|layers| Layer::Residual { index, layers })
                }
                other => {
                    let kind = match other {
                        "ReLU" => Activation::Relu,
                        "LeakyReLU" => Activation::LeakyRelu {
                            slope: reals.get("negative_slope").copied().unwrap_or(0.01),
                        },
                        "ELU" => Activation::Elu {
                            alpha: reals.get("alpha").copied().unwrap_or(1.0),
                        },
                        "GELU" => Activation::Gelu,
                        "SiLU" => Activation::Silu,
                        "Tanh" => Activation::Tanh,
                        "Sigmoid" => Activation::Sigmoid,
                        "Softplus" => Activation::Softplus,
                        "Softmax" => Activation::Softmax,
                        "LogSoftmax" => Activation::LogSoftmax,
                        _ => return None,
                    };
                    Some(Layer::Activation { index, kind })
                }
            }
        };
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
            layer: ir,
            children,
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
