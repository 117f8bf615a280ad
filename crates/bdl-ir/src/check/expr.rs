//! Types and shapes of expressions: literals, names, operators (broadcasting and matrix
//! products), indexing and slicing, and string interpolation.

use super::*;

impl Checker<'_> {
    pub(super) fn expr(&mut self, expr: &Expr) -> ExprInfo {
        if !self.enter(expr.span) {
            return self.record(expr, ExprInfo::default());
        }
        let info = self.expr_kind(expr);
        self.depth -= 1;
        self.record(expr, info)
    }

    pub(super) fn expr_kind(&mut self, expr: &Expr) -> ExprInfo {
        let plain = |ty| ExprInfo { ty, latent: false };
        match &expr.kind {
            ExprKind::Int(_) => plain(Ty::int(Shape::scalar())),
            ExprKind::Real(_) => plain(Ty::real(Shape::scalar())),
            ExprKind::Bool(_) => plain(Ty::Tensor {
                elem: Elem::Bool,
                shape: Shape::scalar(),
            }),
            ExprKind::None => plain(Ty::NewAxis),
            ExprKind::Str(literal) => {
                self.interpolations(literal);
                plain(Ty::Str)
            }
            ExprKind::Error => plain(Ty::Unknown),
            ExprKind::Name(name) => self.name(expr, name),
            ExprKind::List(elements) => {
                let infos: Vec<ExprInfo> = elements.iter().map(|e| self.expr(e)).collect();
                let latent = infos.iter().any(|i| i.latent);
                let mut elem = Elem::Bool;
                let mut shape: Option<Shape> = None;
                let mut tensors = true;
                for (info, element) in infos.iter().zip(elements) {
                    match &info.ty {
                        Ty::Tensor { elem: e, shape: s } => {
                            elem = elem.max(*e);
                            match &shape {
                                None => shape = Some(s.clone()),
                                Some(first) => {
                                    if let (Some(a), Some(b)) = (first.dims(), s.dims()) {
                                        let differ = a.len() != b.len()
                                            || a.iter().zip(b).any(|(x, y)| x.conflicts(y));
                                        if differ {
                                            self.error(
                                                Diagnostic::error("E0202", "list elements have different shapes")
                                                    .with_label(element.span, format!("shape {s}"))
                                                    .with_secondary(elements[0].span, format!("shape {first}"))
                                                    .with_hint("every element of a list literal must have the same shape"),
                                            );
                                        }
                                    }
                                }
                            }
                        }
                        Ty::Unknown => tensors = false,
                        _ => {
                            tensors = false;
                        }
                    }
                }
                let ty = if !tensors {
                    Ty::Unknown
                } else {
                    let inner = shape.unwrap_or_else(Shape::scalar);
                    let shape = match inner {
                        Shape::Known(dims) => {
                            let mut all = vec![Dim::Const(elements.len() as i64)];
                            all.extend(dims);
                            Shape::Known(all)
                        }
                        Shape::Unknown => Shape::Unknown,
                    };
                    Ty::Tensor {
                        elem: if elements.is_empty() {
                            Elem::Real
                        } else {
                            elem
                        },
                        shape,
                    }
                };
                ExprInfo { ty, latent }
            }
            ExprKind::Comprehension { element, var, iter } => {
                let iter_info = self.expr(iter);
                let length = match iter_info.ty.shape() {
                    Shape::Known(dims) if !dims.is_empty() => dims[0].clone(),
                    _ => Dim::Unknown,
                };
                self.scopes.push(HashMap::new());
                self.bind(
                    var,
                    BindingKind::LoopVar,
                    Ty::int(Shape::scalar()),
                    iter_info.latent,
                );
                self.loop_vars.push(var.name.clone());
                let element_info = self.expr(element);
                self.loop_vars.pop();
                self.scopes.pop();
                let ty = match element_info.ty {
                    Ty::Tensor { elem, shape } => Ty::Tensor {
                        elem,
                        shape: match shape {
                            Shape::Known(dims) => {
                                let mut all = vec![length];
                                all.extend(dims);
                                Shape::Known(all)
                            }
                            Shape::Unknown => Shape::Unknown,
                        },
                    },
                    _ => Ty::Unknown,
                };
                ExprInfo {
                    ty,
                    latent: element_info.latent || iter_info.latent,
                }
            }
            ExprKind::Unary { op, operand } => {
                let info = self.expr(operand);
                let ty = match (&info.ty, op) {
                    (Ty::Unknown, _) => Ty::Unknown,
                    (Ty::Tensor { shape, .. }, UnaryOp::Not) => Ty::Tensor {
                        elem: Elem::Bool,
                        shape: shape.clone(),
                    },
                    (Ty::Tensor { elem, shape }, UnaryOp::Neg) => Ty::Tensor {
                        elem: (*elem).max(Elem::Int),
                        shape: shape.clone(),
                    },
                    (other, _) => {
                        self.not_a_tensor(operand.span, other, op.as_str().trim());
                        Ty::Unknown
                    }
                };
                ExprInfo {
                    ty,
                    latent: info.latent,
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs),
            ExprKind::Call { callee, args } => self.call(expr, callee, args),
            ExprKind::Index { base, indices } => self.index(base, indices),
        }
    }

    pub(super) fn not_a_tensor(&mut self, span: Span, ty: &Ty, operation: &str) {
        self.error(
            Diagnostic::error("E0206", format!("`{operation}` needs numbers or tensors"))
                .with_label(span, format!("this is {}", ty.describe()))
                .with_hint(match ty {
                    Ty::Distribution { .. } => {
                        "draw a value from a distribution with `sample(name, dist)`".to_string()
                    }
                    Ty::Network { .. } => {
                        "lift a network first: `let f = lift(\"net\", net, Normal(0, 1))`"
                            .to_string()
                    }
                    _ => "only tensors (numbers, vectors, matrices) take part in arithmetic"
                        .to_string(),
                }),
        );
    }

    pub(super) fn interpolations(&mut self, literal: &StrLit) {
        for part in &literal.parts {
            if let StrPart::Var(ident) = part {
                match self.lookup(&ident.name) {
                    Some(id) => {
                        self.use_binding(id);
                        self.analysis
                            .references
                            .insert(ident.id, Reference::Binding(id));
                    }
                    None => self.unknown_name(&ident.name, ident.span),
                }
            }
        }
    }

    pub(super) fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> ExprInfo {
        let left = self.expr(lhs);
        let right = self.expr(rhs);
        let latent = left.latent || right.latent;
        for (info, side) in [(&left, lhs), (&right, rhs)] {
            if !info.ty.is_tensor_like() {
                self.not_a_tensor(side.span, &info.ty, op.as_str());
                return ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                };
            }
        }
        let (Ty::Tensor { elem: a, shape: sa }, Ty::Tensor { elem: b, shape: sb }) =
            (&left.ty, &right.ty)
        else {
            return ExprInfo {
                ty: Ty::Unknown,
                latent,
            };
        };
        let ty = match op {
            BinaryOp::MatMul => self.matmul(lhs, sa, rhs, sb, (*a).max(*b).max(Elem::Int)),
            BinaryOp::Range => {
                for (elem, shape, side) in [(a, sa, lhs), (b, sb, rhs)] {
                    if *elem != Elem::Int || shape.rank().is_some_and(|r| r != 0) {
                        self.error(
                            Diagnostic::error("E0206", "a range needs integer bounds")
                                .with_label(side.span, "not an integer")
                                .with_hint("write `a..b` with integers a and b"),
                        );
                    }
                }
                let length = match (integer_constant(lhs), integer_constant(rhs)) {
                    (Some(start), Some(stop)) => Dim::Const((stop - start).max(0)),
                    _ => Dim::Unknown,
                };
                Ty::int(Shape::Known(vec![length]))
            }
            _ => {
                let shape = match broadcast(sa, sb) {
                    Ok(shape) => shape,
                    Err(conflict) => {
                        self.error(
                            Diagnostic::error(
                                "E0202",
                                format!("shapes {sa} and {sb} cannot be broadcast together"),
                            )
                            .with_label(lhs.span, format!("shape {sa}"))
                            .with_secondary(rhs.span, format!("shape {sb}"))
                            .with_note(format!(
                                "axis {} from the right has size {} on the left and {} on the right",
                                conflict.axis_from_right, conflict.left, conflict.right
                            ))
                            .with_hint("broadcasting pairs axes from the right; sizes must be equal or 1"),
                        );
                        Shape::Unknown
                    }
                };
                let elem = match op {
                    BinaryOp::Eq
                    | BinaryOp::Ne
                    | BinaryOp::Lt
                    | BinaryOp::Le
                    | BinaryOp::Gt
                    | BinaryOp::Ge
                    | BinaryOp::And
                    | BinaryOp::Or => Elem::Bool,
                    BinaryOp::Div => Elem::Real,
                    BinaryOp::Pow if (*a).max(*b) == Elem::Real => Elem::Real,
                    _ => (*a).max(*b).max(Elem::Int),
                };
                Ty::Tensor { elem, shape }
            }
        };
        ExprInfo { ty, latent }
    }

    pub(super) fn matmul(
        &mut self,
        lhs: &Expr,
        sa: &Shape,
        rhs: &Expr,
        sb: &Shape,
        elem: Elem,
    ) -> Ty {
        let (Some(a), Some(b)) = (sa.dims(), sb.dims()) else {
            return Ty::real(Shape::Unknown);
        };
        if a.is_empty() || b.is_empty() {
            let side = if a.is_empty() { lhs } else { rhs };
            self.error(
                Diagnostic::error("E0201", "`@` needs vectors or matrices")
                    .with_label(side.span, "this is a scalar")
                    .with_hint("use `*` to multiply by a scalar"),
            );
            return Ty::Unknown;
        }
        let inner_left = &a[a.len() - 1];
        let inner_right = if b.len() == 1 { &b[0] } else { &b[b.len() - 2] };
        if inner_left.conflicts(inner_right) {
            self.error(
                Diagnostic::error(
                    "E0201",
                    format!("matrix product of shapes {sa} and {sb}: inner sizes {inner_left} and {inner_right} differ"),
                )
                .with_label(lhs.span, format!("shape {sa}"))
                .with_secondary(rhs.span, format!("shape {sb}"))
                .with_hint("in `a @ b` the last axis of `a` must match the first (or second to last) axis of `b`"),
            );
            return Ty::Unknown;
        }
        let mut dims: Vec<Dim> = Vec::new();
        let batch_left = if a.len() > 2 {
            &a[..a.len() - 2]
        } else {
            &[][..]
        };
        let batch_right = if b.len() > 2 {
            &b[..b.len() - 2]
        } else {
            &[][..]
        };
        if !batch_left.is_empty() || !batch_right.is_empty() {
            match broadcast(
                &Shape::Known(batch_left.to_vec()),
                &Shape::Known(batch_right.to_vec()),
            ) {
                Ok(Shape::Known(batch)) => dims.extend(batch),
                _ => return Ty::real(Shape::Unknown),
            }
        }
        if a.len() >= 2 {
            dims.push(a[a.len() - 2].clone());
        }
        if b.len() >= 2 {
            dims.push(b[b.len() - 1].clone());
        }
        Ty::Tensor {
            elem,
            shape: Shape::Known(dims),
        }
    }

    pub(super) fn index(&mut self, base: &Expr, indices: &[IndexItem]) -> ExprInfo {
        let base_info = self.expr(base);
        let mut latent = base_info.latent;
        let mut item_infos = Vec::new();
        for item in indices {
            match item {
                IndexItem::Expr(value) => {
                    let info = self.expr(value);
                    latent |= info.latent;
                    item_infos.push(Some(info));
                }
                IndexItem::Slice { start, end, .. } => {
                    for bound in [start, end].into_iter().flatten() {
                        let info = self.expr(bound);
                        latent |= info.latent;
                        if !matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.rank().is_none_or(|r| r == 0))
                            && info.ty != Ty::Unknown
                        {
                            self.error(
                                Diagnostic::error("E0206", "slice bounds must be integers")
                                    .with_label(bound.span, format!("found {}", info.ty.describe()))
                                    .with_hint("write `x[a:b]` with integers a and b"),
                            );
                        }
                    }
                    item_infos.push(None);
                }
            }
        }
        let (elem, dims) = match &base_info.ty {
            Ty::Tensor { elem, shape } => (*elem, shape.dims().map(<[Dim]>::to_vec)),
            Ty::Unknown => {
                return ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                }
            }
            other => {
                self.error(
                    Diagnostic::error("E0206", "only tensors can be indexed")
                        .with_label(base.span, format!("this is {}", other.describe()))
                        .with_hint("index vectors and matrices, e.g. `x[i]` or `X[:, 0]`"),
                );
                return ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                };
            }
        };
        let consumed = item_infos
            .iter()
            .filter(|info| {
                !matches!(
                    info,
                    Some(ExprInfo {
                        ty: Ty::NewAxis,
                        ..
                    })
                )
            })
            .count();
        let Some(dims) = dims else {
            return ExprInfo {
                ty: Ty::Tensor {
                    elem,
                    shape: Shape::Unknown,
                },
                latent,
            };
        };
        if consumed > dims.len() {
            self.error(
                Diagnostic::error(
                    "E0208",
                    format!(
                        "too many indices: {} given for {} axes",
                        consumed,
                        dims.len()
                    ),
                )
                .with_label(base.span, format!("shape {}", Shape::Known(dims.clone())))
                .with_hint("give at most one index per axis"),
            );
            return ExprInfo {
                ty: Ty::Unknown,
                latent,
            };
        }
        let mut result = Vec::new();
        let mut axis = 0;
        let mut known = true;
        for (item, info) in indices.iter().zip(&item_infos) {
            match (item, info) {
                (
                    _,
                    Some(ExprInfo {
                        ty: Ty::NewAxis, ..
                    }),
                ) => result.push(Dim::Const(1)),
                (IndexItem::Slice { start, end, .. }, _) => {
                    let dim = match (start, end) {
                        (None, None) => dims[axis].clone(),
                        (Some(s), Some(e)) => match (integer_constant(s), integer_constant(e)) {
                            (Some(s), Some(e)) if s >= 0 && e >= s => Dim::Const(e - s),
                            _ => Dim::Unknown,
                        },
                        _ => Dim::Unknown,
                    };
                    result.push(dim);
                    axis += 1;
                }
                (IndexItem::Expr(value), Some(info)) => {
                    match &info.ty {
                        Ty::Tensor {
                            elem: Elem::Int,
                            shape,
                        } => match shape.dims() {
                            Some([]) => {}
                            Some(index_dims) => result.extend(index_dims.iter().cloned()),
                            None => known = false,
                        },
                        Ty::Unknown => known = false,
                        Ty::Tensor {
                            elem: Elem::Bool, ..
                        } => known = false,
                        other => {
                            self.error(
                                Diagnostic::error(
                                    "E0206",
                                    "an index must be an integer or an integer vector",
                                )
                                .with_label(value.span, format!("this is {}", other.describe()))
                                .with_hint("index with integers, `a:b` slices or `None`"),
                            );
                            known = false;
                        }
                    }
                    axis += 1;
                }
                (IndexItem::Expr(_), None) => axis += 1,
            }
        }
        result.extend(dims[axis.min(dims.len())..].iter().cloned());
        let shape = if known {
            Shape::Known(result)
        } else {
            Shape::Unknown
        };
        ExprInfo {
            ty: Ty::Tensor { elem, shape },
            latent,
        }
    }
}
