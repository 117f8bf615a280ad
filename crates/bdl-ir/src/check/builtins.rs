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
