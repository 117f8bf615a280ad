//! The data block: data declarations with their types, shapes and size variables, the
//! `let`s derived from data, and warnings for data that the model never uses.

use super::*;

impl Checker<'_> {
    pub(super) fn data(&mut self) {
        let Some(data) = self.program.data() else {
            return;
        };
        self.context = Context::Data;
        let declared: HashMap<&str, (BaseType, bool)> = data
            .entries
            .iter()
            .filter_map(|entry| match entry {
                DataEntry::Decl(decl) => Some((
                    decl.name.name.as_str(),
                    (decl.ty.base, decl.ty.dims.is_some()),
                )),
                _ => None,
            })
            .collect();
        // Declarations first, so that sizes may name `int`s declared further down.
        let mut size_vars: HashMap<String, BindingId> = HashMap::new();
        let mut pending_sizes: Vec<&Ident> = Vec::new();
        for entry in &data.entries {
            let DataEntry::Decl(decl) = entry else {
                continue;
            };
            let ty = &decl.ty;
            let dims: Vec<Dim> = ty
                .dims
                .iter()
                .flatten()
                .map(|dim| match dim {
                    bdl_syntax::Dim::Int(value, span) => {
                        if *value <= 0 {
                            self.error(
                                Diagnostic::error("E0207", "a size must be positive")
                                    .with_label(*span, format!("size {value}"))
                                    .with_hint(
                                        "write a positive integer or a size name such as `N`",
                                    ),
                            );
                        }
                        Dim::Const(*value)
                    }
                    bdl_syntax::Dim::Name(ident) => {
                        pending_sizes.push(ident);
                        Dim::Size(ident.name.clone())
                    }
                })
                .collect();
            let expected_rank = match ty.base {
                BaseType::Int => [0usize, 1].as_slice(),
                BaseType::Real => &[0],
                BaseType::Vector => &[1],
                BaseType::Matrix => &[2],
            };
            let shape = match &ty.dims {
                Some(_) => {
                    if !expected_rank.contains(&dims.len()) {
                        let wanted = match ty.base {
                            BaseType::Int => "`int` or `int[n]`",
                            BaseType::Real => "`real` without a size (use `vector[n]` for many)",
                            BaseType::Vector => "one size: `vector[n]`",
                            BaseType::Matrix => "two sizes: `matrix[n, m]`",
                        };
                        self.error(
                            Diagnostic::error(
                                "E0207",
                                format!("`{}` cannot have {} sizes", ty.base.as_str(), dims.len()),
                            )
                            .with_label(ty.span, "wrong number of sizes")
                            .with_hint(format!("write {wanted}")),
                        );
                    }
                    Shape::Known(dims)
                }
                None => match ty.base {
                    BaseType::Int | BaseType::Real => Shape::scalar(),
                    BaseType::Vector => Shape::Known(vec![Dim::Unknown]),
                    BaseType::Matrix => Shape::Known(vec![Dim::Unknown, Dim::Unknown]),
                },
            };
            for bound in [&ty.lower, &ty.upper].into_iter().flatten() {
                let info = self.expr(bound);
                if !matches!(info.ty, Ty::Tensor { ref shape, .. } if shape.is_scalar())
                    && info.ty != Ty::Unknown
                {
                    self.error(
                        Diagnostic::error("E0207", "a bound must be a number")
                            .with_label(bound.span, format!("found {}", info.ty.describe()))
                            .with_hint(
                                "write a literal such as `0` or the name of a declared `real`",
                            ),
                    );
                }
            }
            if let (Some(lower), Some(upper)) = (&ty.lower, &ty.upper) {
                if let (Some(low), Some(high)) = (constant(lower), constant(upper)) {
                    if low >= high {
                        self.error(
                            Diagnostic::error(
                                "E0207",
                                "the lower bound is not below the upper bound",
                            )
                            .with_label(ty.span, format!("lower={low}, upper={high}"))
                            .with_hint("swap the bounds or fix one of them"),
                        );
                    }
                }
            }
            let elem = if ty.base == BaseType::Int {
                Elem::Int
            } else {
                Elem::Real
            };
            self.bind_global(&decl.name, BindingKind::Data, Ty::Tensor { elem, shape });
        }
        for ident in pending_sizes {
            match declared.get(ident.name.as_str()) {
                Some((BaseType::Int, false)) => {
                    if let Some(id) = self.lookup(&ident.name) {
                        self.use_binding(id);
                        self.analysis.references.insert(ident.id, Reference::Binding(id));
                    }
                }
                Some(_) => self.error(
                    Diagnostic::error(
                        "E0210",
                        format!("size `{}` is not an integer", ident.name),
                    )
                    .with_label(ident.span, "used as a size here")
                    .with_hint(format!(
                        "a size is a literal, a declared `int`, or a new name; `{}` is declared with another type",
                        ident.name
                    )),
                ),
                None => {
                    let id = match size_vars.get(&ident.name) {
                        Some(id) => *id,
                        None => {
                            let id = self.bind_global(ident, BindingKind::SizeVar, Ty::int(Shape::scalar()));
                            size_vars.insert(ident.name.clone(), id);
                            id
                        }
                    };
                    self.analysis.references.insert(ident.id, Reference::Binding(id));
                }
            }
        }
        for entry in &data.entries {
            if let DataEntry::Let(binding) = entry {
                let info = self.expr(&binding.value);
                self.bind_global(&binding.name, BindingKind::DataLet, info.ty);
            }
        }
    }

    pub(super) fn unused_data(&mut self) {
        let unused: Vec<(String, Span, BindingKind)> = self
            .analysis
            .bindings
            .iter()
            .filter(|b| matches!(b.kind, BindingKind::Data | BindingKind::DataLet) && b.uses == 0)
            .map(|b| (b.name.clone(), b.span, b.kind))
            .collect();
        if self.program.incomplete || self.program.model().is_none() {
            return;
        }
        for (name, span, kind) in unused {
            let what = if kind == BindingKind::Data {
                "data"
            } else {
                "derived data"
            };
            self.diagnostics.push(
                Diagnostic::warning(
                    "W0001",
                    format!("{what} `{name}` is declared but never used"),
                )
                .with_label(span, "never used")
                .with_hint("use it in the model, or remove the declaration"),
            );
        }
    }
}
