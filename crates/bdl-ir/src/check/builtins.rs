//! Calls to the catalogue's built-ins: distributions (parameter domains and batch and event
//! shapes) and functions (their shape rules), and shapes written as lists of sizes.

use super::*;

impl Checker<'_> {
    pub(super) fn distribution(
        &mut self,
        call: &Expr,
        callee: &Expr,
        spec: &'static catalogue::DistributionSpec,
        args: &[Arg],
    ) -> ExprInfo {
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        let latent = infos.iter().any(|i| i.latent);
        let slots = self.match_args(spec.name, spec.params, args, call.span, "E0302", "E0302");
        self.record_call(call, Reference::Distribution(spec), &slots, args);
        if spec.name == "MixtureSameFamily" {
            self.record(
                callee,
                ExprInfo {
                    ty: Ty::Builtin,
                    latent: false,
                },
            );
            let batch = self.mixture(call, &slots, args, &infos);
            return ExprInfo {
                ty: Ty::Distribution {
                    spec,
                    batch,
                    event: Shape::scalar(),
                },
                latent,
            };
        }
        self.record(
            callee,
            ExprInfo {
                ty: Ty::Builtin,
                latent: false,
            },
        );
        let mut shapes: Vec<(Shape, &Expr, &'static str)> = Vec::new();
        for (slot, param) in slots.iter().zip(spec.params) {
            let Some((used, index)) = slot else {
                continue;
            };
            let value = &args[*index].value;
            let info = &infos[*index];
            if !info.ty.is_tensor_like() {
                self.error(
                    Diagnostic::error(
                        "E0302",
                        format!(
                            "parameter `{used}` of `{}` must be a number or tensor",
                            spec.name
                        ),
                    )
                    .with_label(value.span, format!("this is {}", info.ty.describe()))
                    .with_hint(format!(
                        "the signature is {}",
                        catalogue::signature(spec.name, spec.params)
                    )),
                );
                continue;
            }
            // A literal, or every literal element of a list literal (`Dirichlet([1, -1])`).
            let literals: Vec<(f64, Span)> = match &value.kind {
                ExprKind::List(items) => items
                    .iter()
                    .filter_map(|item| constant(item).map(|number| (number, item.span)))
                    .collect(),
                _ => constant(value)
                    .map(|n| (n, value.span))
                    .into_iter()
                    .collect(),
            };
            for (number, literal_span) in literals {
                let problem = match param.domain {
                    Domain::Positive if number <= 0.0 => Some("must be positive"),
                    Domain::Probability if *used == "probs" && !(0.0..=1.0).contains(&number) => {
                        Some("must be between 0 and 1")
                    }
                    Domain::Count if number < 0.0 || number.fract() != 0.0 => {
                        Some("must be a non-negative integer")
                    }
                    Domain::Size if number < 1.0 || number.fract() != 0.0 => {
                        Some("must be a positive integer")
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    self.error(
                        Diagnostic::error(
                            "E0302",
                            format!("parameter `{used}` of `{}` {problem}", spec.name),
                        )
                        .with_label(literal_span, format!("{used} = {number}"))
                        .with_hint(format!("`{used}` {problem}")),
                    );
                }
            }
            shapes.push((info.ty.shape(), value, used));
        }
        self.literal_bounds(spec, &slots, args);
        let (batch, event) = match spec.event {
            EventShape::Scalar => {
                let mut batch = Shape::scalar();
                for (shape, value, used) in &shapes {
                    match broadcast(&batch, shape) {
                        Ok(joined) => batch = joined,
                        Err(_) => {
                            let first = shapes.first().map_or("", |s| s.2);
                            self.error(
                                Diagnostic::error(
                                    "E0202",
                                    format!("the parameters of `{}` do not broadcast together", spec.name),
                                )
                                .with_label(value.span, format!("`{used}` has shape {shape}"))
                                .with_secondary(shapes[0].1.span, format!("`{first}` has shape {}", shapes[0].0))
                                .with_hint("parameters broadcast like arithmetic: sizes must be equal or 1 from the right"),
                            );
                            batch = Shape::Unknown;
                            break;
                        }
                    }
                }
                (batch, Shape::scalar())
            }
            EventShape::Categories => match shapes.first().map(|s| &s.0) {
                Some(Shape::Known(dims)) if !dims.is_empty() => (
                    Shape::Known(dims[..dims.len() - 1].to_vec()),
                    Shape::scalar(),
                ),
                _ => (Shape::Unknown, Shape::scalar()),
            },
            EventShape::Vector => match shapes.first().map(|s| &s.0) {
                Some(Shape::Known(dims)) if !dims.is_empty() => (
                    Shape::Known(dims[..dims.len() - 1].to_vec()),
                    Shape::Known(vec![dims[dims.len() - 1].clone()]),
                ),
                _ => (Shape::Unknown, Shape::Known(vec![Dim::Unknown])),
            },
            EventShape::Matrix => {
                if spec.name == "LKJCholesky" {
                    let size = slots[0]
                        .map(|(_, index)| self.dim_value(&args[index].value))
                        .unwrap_or(Dim::Unknown);
                    let batch = slots
                        .get(1)
                        .copied()
                        .flatten()
                        .map_or(Shape::scalar(), |(_, index)| infos[index].ty.shape());
                    (batch, Shape::Known(vec![size.clone(), size]))
                } else {
                    match shapes.get(1).map(|s| &s.0) {
                        Some(Shape::Known(dims)) if dims.len() >= 2 => (
                            Shape::Known(dims[..dims.len() - 2].to_vec()),
                            Shape::Known(dims[dims.len() - 2..].to_vec()),
                        ),
                        _ => (
                            Shape::Unknown,
                            Shape::Known(vec![Dim::Unknown, Dim::Unknown]),
                        ),
                    }
                }
            }
        };
        ExprInfo {
            ty: Ty::Distribution { spec, batch, event },
            latent,
        }
    }

    /// `MixtureSameFamily(weights, component)`: the weights are a tensor (K weights along the
    /// last axis) or a `Categorical`, the component a distribution of a family in
    /// [`catalogue::MIXTURE_COMPONENTS`] whose last batch axis lists the K components. Returns
    /// the mixture's batch shape: the two batch shapes without that axis, broadcast.
    fn mixture(
        &mut self,
        call: &Expr,
        slots: &[Option<(&'static str, usize)>],
        args: &[Arg],
        infos: &[ExprInfo],
    ) -> Shape {
        let signature = "MixtureSameFamily(weights | mixture_distribution, component_distribution)";
        let weights = slots.first().copied().flatten();
        let component = slots.get(1).copied().flatten();
        // The components' shape, when the component argument is a valid distribution.
        let mut components: Option<(Shape, Span)> = None;
        if let Some((used, index)) = component {
            let value = &args[index].value;
            match &infos[index].ty {
                Ty::Distribution { spec, batch, .. } => {
                    if !catalogue::MIXTURE_COMPONENTS.contains(&spec.name) {
                        self.error(
                            Diagnostic::error(
                                "E0110",
                                format!("`MixtureSameFamily` cannot mix `{}` distributions", spec.name),
                            )
                            .with_label(value.span, format!("a `{}` component", spec.name))
                            .with_hint(format!(
                                "the components must be of a scalar continuous family whose support does not depend on its parameters: {}",
                                catalogue::MIXTURE_COMPONENTS.join(", ")
                            )),
                        );
                    } else if let Shape::Known(dims) = batch {
                        if dims.is_empty() {
                            self.error(
                                Diagnostic::error(
                                    "E0212",
                                    "the components of `MixtureSameFamily` must lie along the last axis of their parameters",
                                )
                                .with_label(value.span, format!("a single `{}` (batch shape [])", spec.name))
                                .with_hint("give the component vector parameters, one entry per component: `Normal(mu, sigma)` with `mu` of shape [K]"),
                            );
                        } else {
                            components = Some((batch.clone(), value.span));
                        }
                    } else {
                        components = Some((Shape::Unknown, value.span));
                    }
                }
                Ty::Unknown => {}
                other => self.error(
                    Diagnostic::error(
                        "E0110",
                        format!("parameter `{used}` of `MixtureSameFamily` must be a distribution"),
                    )
                    .with_label(value.span, format!("this is {}", other.describe()))
                    .with_hint(format!("the signature is {signature}, e.g. `MixtureSameFamily(w, Normal(mu, sigma))`")),
                ),
            }
        }
        let mut weight_shape: Option<(Shape, Span)> = None;
        if let Some((used, index)) = weights {
            let value = &args[index].value;
            match &infos[index].ty {
                Ty::Distribution { spec, .. } if spec.name == "Categorical" => {}
                ty if ty.is_tensor_like() => {
                    if let Some(number) = constant(value) {
                        if number < 0.0 {
                            self.literal_weight_error(used, number, value.span);
                        }
                    }
                    if let ExprKind::List(items) = &value.kind {
                        for item in items {
                            if let Some(number) = constant(item).filter(|n| *n < 0.0) {
                                self.literal_weight_error(used, number, item.span);
                            }
                        }
                    }
                    let shape = ty.shape();
                    if matches!(&shape, Shape::Known(dims) if dims.is_empty()) {
                        self.error(
                            Diagnostic::error(
                                "E0212",
                                "the weights of `MixtureSameFamily` must be a vector (one weight per component)",
                            )
                            .with_label(value.span, "a scalar")
                            .with_hint("give K weights along the last axis, e.g. `[0.3, 0.7]` or a `simplex` site"),
                        );
                    } else {
                        weight_shape = Some((shape, value.span));
                    }
                }
                other => self.error(
                    Diagnostic::error(
                        "E0111",
                        format!("parameter `{used}` of `MixtureSameFamily` must be a tensor of weights or a `Categorical`"),
                    )
                    .with_label(value.span, format!("this is {}", other.describe()))
                    .with_hint(format!("the signature is {signature}")),
                ),
            }
        }
        let (Some((Shape::Known(w), w_span)), Some((Shape::Known(c), c_span))) =
            (weight_shape, components)
        else {
            return Shape::Unknown;
        };
        let (w_last, c_last) = (&w[w.len() - 1], &c[c.len() - 1]);
        let differ = match (w_last, c_last) {
            (Dim::Const(a), Dim::Const(b)) => a != b,
            (Dim::Size(a), Dim::Size(b)) => a != b,
            (Dim::Const(_), Dim::Size(_)) | (Dim::Size(_), Dim::Const(_)) => false,
            _ => false,
        };
        if differ {
            self.error(
                Diagnostic::error(
                    "E0212",
                    format!("`MixtureSameFamily` has {w_last} weights but {c_last} components"),
                )
                .with_label(w_span, format!("{w_last} weights (last axis)"))
                .with_secondary(c_span, format!("{c_last} components (last batch axis)"))
                .with_hint("the weights' last axis and the component's last batch axis both count the components"),
            );
            return Shape::Unknown;
        }
        let _ = call;
        match broadcast(
            &Shape::Known(w[..w.len() - 1].to_vec()),
            &Shape::Known(c[..c.len() - 1].to_vec()),
        ) {
            Ok(joined) => joined,
            Err(_) => {
                self.error(
                    Diagnostic::error(
                        "E0202",
                        "the weights and the components of `MixtureSameFamily` do not broadcast together",
                    )
                    .with_label(w_span, format!("weights of shape {}", Shape::Known(w.clone())))
                    .with_secondary(c_span, format!("components of batch shape {}", Shape::Known(c.clone())))
                    .with_hint("apart from the last axis, the shapes broadcast like arithmetic"),
                );
                Shape::Unknown
            }
        }
    }

    /// The shape of `log_mix(weights, lp1, …)`, with E0213 when the number of weights (the last
    /// axis of `weights`, or two for a scalar θ) is known to differ from the number of
    /// log-densities (or, for a single tensor of log-densities, from its last axis).
    fn log_mix_shape(
        &mut self,
        call: &Expr,
        weights: Option<(&Expr, &ExprInfo)>,
        densities: &[(&Expr, Shape)],
    ) -> Shape {
        let Some((weights_expr, weights_info)) = weights else {
            return Shape::Unknown;
        };
        let weight_shape = weights_info.ty.shape();
        let count_error = |checker: &mut Self, weights: String, components: String| {
            checker.error(
                Diagnostic::error(
                    "E0213",
                    format!("`log_mix` has {weights} but {components}"),
                )
                .with_label(weights_expr.span, weights)
                .with_secondary(call.span, components)
                .with_hint("give one weight per log-density: `log_mix(theta, lp1, lp2)` with a scalar theta, `log_mix(w, lp1, …, lpK)` with K weights, or `log_mix(w, lps)` with the K log-densities along the last axis of `lps`"),
            );
        };
        let mut shape = Shape::scalar();
        match (&weight_shape, densities) {
            (Shape::Known(w), [(_, lps)]) => {
                if let (Some(Dim::Const(k)), Shape::Known(l)) = (w.last(), lps) {
                    if let Some(Dim::Const(m)) = l.last() {
                        if k != m {
                            count_error(
                                self,
                                format!("{k} weights"),
                                format!("{m} log-densities along the last axis"),
                            );
                            return Shape::Unknown;
                        }
                    } else if l.is_empty() {
                        count_error(self, format!("{k} weights"), "one log-density".to_string());
                        return Shape::Unknown;
                    }
                }
                if w.is_empty() {
                    count_error(
                        self,
                        "a scalar weight".to_string(),
                        "one log-density".to_string(),
                    );
                    return Shape::Unknown;
                }
                shape = Shape::Known(w[..w.len() - 1].to_vec());
                if let Shape::Known(l) = lps {
                    let rest = Shape::Known(l[..l.len().saturating_sub(1)].to_vec());
                    shape = broadcast(&shape, &rest).unwrap_or(Shape::Unknown);
                } else {
                    shape = Shape::Unknown;
                }
                return shape;
            }
            (Shape::Known(w), _) if w.is_empty() => {
                if densities.len() != 2 {
                    count_error(
                        self,
                        "a scalar weight θ (two components: θ and 1 − θ)".to_string(),
                        format!("{} log-densities", densities.len()),
                    );
                    return Shape::Unknown;
                }
            }
            (Shape::Known(w), _) => {
                if let Some(Dim::Const(k)) = w.last() {
                    if *k as usize != densities.len() {
                        count_error(
                            self,
                            format!("{k} weights"),
                            format!("{} log-densities", densities.len()),
                        );
                        return Shape::Unknown;
                    }
                }
                shape = Shape::Known(w[..w.len() - 1].to_vec());
            }
            (Shape::Unknown, _) => shape = Shape::Unknown,
        }
        for (_, lp) in densities {
            shape = broadcast(&shape, lp).unwrap_or(Shape::Unknown);
        }
        shape
    }

    fn literal_weight_error(&mut self, used: &str, number: f64, span: Span) {
        self.error(
            Diagnostic::error(
                "E0302",
                format!("parameter `{used}` of `MixtureSameFamily` must be non-negative"),
            )
            .with_label(span, format!("{used} = {number}"))
            .with_hint("mixing weights are non-negative (they are normalised to sum to one)"),
        );
    }

    pub(super) fn builtin(
        &mut self,
        call: &Expr,
        callee: &Expr,
        spec: &'static catalogue::FunctionSpec,
        args: &[Arg],
    ) -> ExprInfo {
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        let latent = infos.iter().any(|i| i.latent);
        let slots = self.match_args(spec.name, spec.params, args, call.span, "E0103", "E0102");
        self.record_call(call, Reference::Function(spec), &slots, args);
        self.record(
            callee,
            ExprInfo {
                ty: Ty::Builtin,
                latent: false,
            },
        );
        for (slot, param) in slots.iter().zip(spec.params) {
            if let Some((used, index)) = slot {
                let info = &infos[*index];
                if param.domain == Domain::Any && !info.ty.is_tensor_like() {
                    self.error(
                        Diagnostic::error(
                            "E0206",
                            format!(
                                "argument `{used}` of `{}` must be a number or tensor",
                                spec.name
                            ),
                        )
                        .with_label(
                            args[*index].value.span,
                            format!("this is {}", info.ty.describe()),
                        )
                        .with_hint(format!(
                            "the signature is {}",
                            catalogue::signature(spec.name, spec.params)
                        )),
                    );
                    return ExprInfo {
                        ty: Ty::Unknown,
                        latent,
                    };
                }
            }
        }
        let arg = |slot: usize| {
            slots
                .get(slot)
                .copied()
                .flatten()
                .map(|(_, index)| (&args[index].value, &infos[index]))
        };
        let first_shape = arg(0).map_or(Shape::Unknown, |(_, info)| info.ty.shape());
        let axis = arg(1).and_then(|(value, _)| integer_constant(value));
        let ty = match spec.shape {
            ShapeRule::Elementwise => Ty::real(first_shape),
            ShapeRule::SameShape => match arg(0).map(|(_, info)| info.ty.clone()) {
                Some(Ty::Tensor { elem, shape }) => Ty::Tensor {
                    elem: elem.max(Elem::Int),
                    shape,
                },
                _ => Ty::real(Shape::Unknown),
            },
            ShapeRule::Reduction => {
                let shape = match (arg(1), first_shape) {
                    (None, _) => Shape::scalar(),
                    (Some(_), Shape::Known(mut dims)) => {
                        match axis.and_then(|a| normalise_axis(a, dims.len())) {
                            Some(position) => {
                                dims.remove(position);
                                Shape::Known(dims)
                            }
                            None => Shape::Unknown,
                        }
                    }
                    (Some(_), Shape::Unknown) => Shape::Unknown,
                };
                Ty::real(shape)
            }
            ShapeRule::Stack => {
                let shape = match first_shape {
                    Shape::Known(dims) if !dims.is_empty() => {
                        let count = dims[0].clone();
                        let mut rest = dims[1..].to_vec();
                        match normalise_axis(axis.unwrap_or(0), rest.len() + 1) {
                            Some(position) => {
                                rest.insert(position, count);
                                Shape::Known(rest)
                            }
                            None => Shape::Unknown,
                        }
                    }
                    _ => Shape::Unknown,
                };
                Ty::real(shape)
            }
            ShapeRule::Concat => {
                let shape = match first_shape {
                    Shape::Known(dims) if dims.len() >= 2 => {
                        let mut rest = dims[1..].to_vec();
                        match normalise_axis(axis.unwrap_or(0), rest.len()) {
                            Some(position) => {
                                rest[position] = match (&dims[0], &rest[position]) {
                                    (Dim::Const(n), Dim::Const(m)) => Dim::Const(n * m),
                                    _ => Dim::Unknown,
                                };
                                Shape::Known(rest)
                            }
                            None => Shape::Unknown,
                        }
                    }
                    _ => Shape::Unknown,
                };
                Ty::real(shape)
            }
            ShapeRule::Reshape => {
                Ty::real(arg(1).map_or(Shape::Unknown, |(value, _)| self.shape_literal(value)))
            }
            ShapeRule::Transpose => Ty::real(match first_shape {
                Shape::Known(mut dims) if dims.len() >= 2 => {
                    let n = dims.len();
                    dims.swap(n - 1, n - 2);
                    Shape::Known(dims)
                }
                other => other,
            }),
            ShapeRule::Len => Ty::int(Shape::scalar()),
            ShapeRule::Range => {
                let length = match (arg(0), arg(1)) {
                    (Some((stop, _)), None) => self.dim_value(stop),
                    (Some((start, _)), Some((stop, _))) => {
                        match (integer_constant(start), integer_constant(stop)) {
                            (Some(a), Some(b)) => Dim::Const((b - a).max(0)),
                            _ => Dim::Unknown,
                        }
                    }
                    _ => Dim::Unknown,
                };
                Ty::int(Shape::Known(vec![length]))
            }
            ShapeRule::Where => {
                let mut shape = Shape::scalar();
                for slot in 0..3 {
                    if let Some((_, info)) = arg(slot) {
                        shape = broadcast(&shape, &info.ty.shape()).unwrap_or(Shape::Unknown);
                    }
                }
                Ty::real(shape)
            }
            ShapeRule::Filled => {
                Ty::real(arg(0).map_or(Shape::Unknown, |(value, _)| self.shape_literal(value)))
            }
            ShapeRule::Eye => {
                let n = arg(0).map_or(Dim::Unknown, |(value, _)| self.dim_value(value));
                Ty::real(Shape::Known(vec![n.clone(), n]))
            }
            ShapeRule::LogMix => {
                let densities: Vec<(&Expr, Shape)> = (1..spec.params.len())
                    .filter_map(|slot| arg(slot).map(|(value, info)| (value, info.ty.shape())))
                    .collect();
                Ty::real(self.log_mix_shape(call, arg(0), &densities))
            }
        };
        ExprInfo { ty, latent }
    }

    /// A shape written as a list of sizes (`[10]`, `[N, 3]`) or a single size.
    pub(super) fn shape_literal(&mut self, value: &Expr) -> Shape {
        match &value.kind {
            ExprKind::List(elements) => {
                let dims: Vec<Dim> = elements
                    .iter()
                    .map(|element| self.dim_value(element))
                    .collect();
                for (element, dim) in elements.iter().zip(&dims) {
                    let info = self.info_of(element);
                    let is_int = matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.rank().is_none_or(|r| r == 0));
                    if !is_int && info.ty != Ty::Unknown || dim.constant().is_some_and(|n| n <= 0) {
                        self.error(
                            Diagnostic::error("E0209", "a shape lists positive integer sizes")
                                .with_label(element.span, format!("found {}", info.ty.describe()))
                                .with_hint(
                                    "write sizes such as `shape = [10]` or `shape = [N, 3]`",
                                ),
                        );
                    }
                }
                Shape::Known(dims)
            }
            _ => {
                let info = self.info_of(value);
                match &info.ty {
                    Ty::Tensor {
                        elem: Elem::Int,
                        shape,
                    } if shape.is_scalar() => Shape::Known(vec![self.dim_value(value)]),
                    Ty::Unknown => Shape::Unknown,
                    Ty::Tensor {
                        elem: Elem::Int, ..
                    } => Shape::Unknown,
                    other => {
                        self.error(
                            Diagnostic::error("E0209", "a shape lists positive integer sizes")
                                .with_label(value.span, format!("found {}", other.describe()))
                                .with_hint(
                                    "write sizes such as `shape = [10]` or `shape = [N, 3]`",
                                ),
                        );
                        Shape::Unknown
                    }
                }
            }
        }
    }

    /// `low < high` when both bounds of a distribution (`Uniform`, `TruncatedNormal`) are
    /// literals.
    fn literal_bounds(
        &mut self,
        spec: &'static catalogue::DistributionSpec,
        slots: &[Option<(&'static str, usize)>],
        args: &[Arg],
    ) {
        let bound = |wanted: &str| {
            spec.params
                .iter()
                .zip(slots)
                .find(|(param, _)| param.names.contains(&wanted))
                .and_then(|(_, slot)| *slot)
                .and_then(|(_, index)| {
                    let value = &args[index].value;
                    constant(value).map(|number| (number, value.span))
                })
        };
        let (Some((low, low_span)), Some((high, high_span))) = (bound("low"), bound("high")) else {
            return;
        };
        if low >= high {
            self.error(
                Diagnostic::error(
                    "E0302",
                    format!(
                        "the bounds of `{}` are reversed or equal: low = {low}, high = {high}",
                        spec.name
                    ),
                )
                .with_label(high_span, format!("high = {high}"))
                .with_secondary(low_span, format!("low = {low}"))
                .with_hint("`low` must be less than `high`"),
            );
        }
    }
}
