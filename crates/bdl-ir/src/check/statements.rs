//! Statements and blocks: `let`, `let mut` and assignment, loops, `if`, expression statements
//! and `return`, with the scopes they open and the depth guard that bounds the recursion.

use super::*;

impl Checker<'_> {
    pub(super) fn block_statements(&mut self, block: &Block) {
        for stmt in &block.stmts {
            self.stmt(stmt);
        }
    }

    pub(super) fn scoped_block(&mut self, block: &Block) {
        self.scopes.push(HashMap::new());
        self.block_statements(block);
        self.scopes.pop();
    }

    pub(super) fn enter(&mut self, span: Span) -> bool {
        self.depth += 1;
        if self.depth > 2 * MAX_NESTING + 8 {
            if !self.depth_reported {
                self.depth_reported = true;
                self.error(
                    Diagnostic::error("E0006", "nesting too deep")
                        .with_label(span, "the program nests too deeply here")
                        .with_hint("split the expression with `let` bindings or helper functions"),
                );
            }
            self.depth -= 1;
            return false;
        }
        true
    }

    pub(super) fn stmt(&mut self, stmt: &Stmt) {
        if !self.enter(stmt.span) {
            return;
        }
        match &stmt.kind {
            StmtKind::Let(binding) => {
                let info = self.expr(&binding.value);
                self.warn_shadowing_in_loop(&binding.name);
                let id = self.bind(&binding.name, BindingKind::Let, info.ty, info.latent);
                self.analysis.bindings[id.0 as usize].mutable = binding.mutable;
            }
            StmtKind::Assign(assign) => self.assign(assign),
            StmtKind::Expr(value) => {
                self.expr(value);
            }
            StmtKind::Plate(plate) => self.plate(stmt.span, plate),
            StmtKind::If(conditional) => self.if_(conditional),
            StmtKind::For(for_) => {
                let iter = self.expr(&for_.iter);
                let var_ty = match &iter.ty {
                    Ty::Tensor { elem, shape } => match shape {
                        Shape::Known(dims) if dims.is_empty() => {
                            self.error(
                                Diagnostic::error(
                                    "E0206",
                                    "a `for` loop needs a range or a vector",
                                )
                                .with_label(for_.iter.span, "this is a scalar")
                                .with_hint("loop over a range such as `0..n`"),
                            );
                            Ty::Unknown
                        }
                        Shape::Known(dims) => Ty::Tensor {
                            elem: *elem,
                            shape: Shape::Known(dims[1..].to_vec()),
                        },
                        Shape::Unknown => Ty::Tensor {
                            elem: *elem,
                            shape: Shape::Unknown,
                        },
                    },
                    Ty::Unknown => Ty::Unknown,
                    other => {
                        self.error(
                            Diagnostic::error("E0206", "a `for` loop needs a range or a vector")
                                .with_label(for_.iter.span, format!("found {}", other.describe()))
                                .with_hint("loop over a range such as `0..n`"),
                        );
                        Ty::Unknown
                    }
                };
                self.loop_body(for_, var_ty, iter.latent);
            }
            StmtKind::Return(value) => {
                self.expr(value);
                if self.context != Context::Function {
                    self.error(
                        Diagnostic::error("E0107", "`return` outside a function")
                            .with_label(stmt.span, "not inside a `fn`")
                            .with_hint("`return` ends a `fn` body; the model returns nothing"),
                    );
                }
            }
            StmtKind::Error => {}
        }
        self.depth -= 1;
    }

    /// Checks a loop's body. A `let mut` binding assigned a sampled value late in the body is
    /// latent in the next iteration, so while a pass makes a mutable binding latent the body is
    /// checked again (at most once per mutable binding), keeping only the last pass's findings.
    /// A mutable binding declared inside the body is bound afresh by each pass, so it cannot
    /// keep the count rising past the bindings declared before the loop.
    fn loop_body(&mut self, for_: &For, var_ty: Ty, var_latent: bool) {
        let diagnostics_before = self.diagnostics.len();
        let sites_before = self.site_names.len();
        let bindings_before = self.analysis.bindings.len();
        let latent_mutables = |checker: &Self| {
            checker
                .analysis
                .bindings
                .iter()
                .filter(|binding| binding.mutable && binding.latent)
                .count()
        };
        let mut latent_before = latent_mutables(self);
        loop {
            self.scopes.push(HashMap::new());
            self.bind(&for_.var, BindingKind::LoopVar, var_ty.clone(), var_latent);
            self.loop_vars.push(for_.var.name.clone());
            self.loop_scopes.push(self.scopes.len() - 1);
            self.block_statements(&for_.body);
            self.loop_scopes.pop();
            self.loop_vars.pop();
            self.scopes.pop();
            let latent_after = latent_mutables(self);
            if latent_after == latent_before {
                break;
            }
            latent_before = latent_after;
            // The next pass binds the body's names again, in the same order and so with the
            // same ids; the mutable bindings declared before the loop keep their new flags.
            self.diagnostics.truncate(diagnostics_before);
            self.site_names.truncate(sites_before);
            self.analysis.bindings.truncate(bindings_before);
        }
    }

    /// Warns when a `let` inside a loop body shadows a name bound outside the loop: the new
    /// binding ends with the iteration, which is rarely what a recursion means.
    fn warn_shadowing_in_loop(&mut self, name: &Ident) {
        let Some(&loop_scope) = self.loop_scopes.last() else {
            return;
        };
        let outer = self.scopes[..loop_scope]
            .iter()
            .rev()
            .find_map(|scope| scope.get(&name.name).copied());
        let Some(outer) = outer else {
            return;
        };
        let binding = &self.analysis.bindings[outer.0 as usize];
        if matches!(binding.kind, BindingKind::Function | BindingKind::Network) {
            return;
        }
        let outer_span = binding.span;
        let hint = if binding.mutable {
            format!(
                "to update the outer `{0}`, write `{0} = ...` without `let`",
                name.name
            )
        } else {
            format!(
                "to carry a value from one iteration to the next, declare `let mut {0} = ...` before the loop and write `{0} = ...` inside it; otherwise rename this binding",
                name.name
            )
        };
        self.error(
            Diagnostic::warning(
                "W0002",
                format!(
                    "`let {}` inside a loop shadows the `{}` bound outside it",
                    name.name, name.name
                ),
            )
            .with_label(name.span, "a new binding that ends with each iteration")
            .with_secondary(
                outer_span,
                "the outer binding, which this loop does not change",
            )
            .with_hint(hint),
        );
    }

    /// `name = value`: checks that `name` is a `let mut` binding and that the value has its
    /// element type and shape.
    fn assign(&mut self, assign: &Assign) {
        let info = self.expr(&assign.value);
        let name = &assign.name.name;
        let Some(id) = self.lookup(name) else {
            if catalogue::function(name).is_some() || catalogue::distribution(name).is_some() {
                self.error(
                    Diagnostic::error("E0109", format!("cannot assign to the built-in `{name}`"))
                        .with_label(assign.name.span, "a built-in name, not a variable")
                        .with_hint(format!("declare a variable first: `let mut {name} = ...`")),
                );
            } else {
                self.unknown_name(name, assign.name.span);
            }
            return;
        };
        self.analysis
            .references
            .insert(assign.name.id, Reference::Binding(id));
        let binding = &self.analysis.bindings[id.0 as usize];
        let declared = binding.span;
        if !binding.mutable {
            let (what, hint) = match binding.kind {
                BindingKind::Let => (
                    format!("`{name}` is not mutable"),
                    format!("declare it with `let mut {name} = ...` to assign it later"),
                ),
                BindingKind::Data | BindingKind::SizeVar | BindingKind::DataLet => (
                    format!("`{name}` is data, which cannot be assigned"),
                    format!("copy it into a variable first: `let mut {name}_state = {name}`"),
                ),
                BindingKind::LoopVar | BindingKind::PlateIndex => (
                    format!("`{name}` is a loop or plate index, which cannot be assigned"),
                    "bind a new variable with `let mut` before the loop".to_string(),
                ),
                BindingKind::FnParam => (
                    format!("`{name}` is a function parameter, which cannot be assigned"),
                    format!("bind a copy with `let mut {name}_state = {name}`"),
                ),
                BindingKind::Function | BindingKind::Network => (
                    format!(
                        "`{name}` is a {}, which cannot be assigned",
                        if binding.kind == BindingKind::Function {
                            "function"
                        } else {
                            "network"
                        }
                    ),
                    "bind a new variable with `let mut`".to_string(),
                ),
            };
            self.error(
                Diagnostic::error("E0109", format!("cannot assign to `{name}`: {what}"))
                    .with_label(assign.name.span, "assigned here")
                    .with_secondary(declared, "declared here")
                    .with_hint(hint),
            );
            return;
        }
        let declared_ty = binding.ty.clone();
        if let (
            Ty::Tensor {
                elem: declared_elem,
                shape: declared_shape,
            },
            Ty::Tensor { elem, shape },
        ) = (&declared_ty, &info.ty)
        {
            if shapes_differ(declared_shape, shape) {
                self.error(
                    Diagnostic::error(
                        "E0211",
                        format!("the value assigned to `{name}` has shape {shape}, but `{name}` has shape {declared_shape}"),
                    )
                    .with_label(assign.value.span, format!("shape {shape}"))
                    .with_secondary(declared, format!("declared with shape {declared_shape}"))
                    .with_hint("a `let mut` variable keeps the shape it was declared with; declare it with the shape it will hold, e.g. `let mut h = zeros([H])`"),
                );
            } else if elem > declared_elem {
                self.error(
                    Diagnostic::error(
                        "E0211",
                        format!("the value assigned to `{name}` is {elem}, but `{name}` holds {declared_elem} values"),
                    )
                    .with_label(assign.value.span, format!("{elem}{shape}"))
                    .with_secondary(declared, format!("declared as {declared_elem}"))
                    .with_hint(format!("declare it with a real value, e.g. `let mut {name} = 0.0`")),
                );
            }
        } else if !matches!(info.ty, Ty::Unknown | Ty::Tensor { .. })
            && !matches!(declared_ty, Ty::Unknown)
        {
            self.error(
                Diagnostic::error(
                    "E0211",
                    format!(
                        "only numbers and tensors can be assigned, but this is {}",
                        info.ty.describe()
                    ),
                )
                .with_label(assign.value.span, format!("found {}", info.ty.describe()))
                .with_hint("a `let mut` variable holds a number or a tensor"),
            );
        }
        if info.latent {
            self.analysis.bindings[id.0 as usize].latent = true;
        }
    }

    pub(super) fn if_(&mut self, conditional: &If) {
        let condition = self.expr(&conditional.condition);
        let fits = match &condition.ty {
            Ty::Unknown => true,
            Ty::Tensor { shape, .. } => shape.rank().is_none_or(|rank| rank == 0),
            _ => false,
        };
        if !fits {
            self.error(
                Diagnostic::error("E0206", "the condition must be a single true/false value")
                    .with_label(
                        conditional.condition.span,
                        format!("found {}", condition.ty.describe()),
                    )
                    .with_hint("compare scalars, e.g. `if k > 0 { ... }`; use `where(cond, a, b)` for elementwise choice"),
            );
        }
        // The branches are exclusive: each may reuse a name the other uses (a run takes one of
        // them), but what follows the `if` must not reuse a name of either.
        let before = self.site_names.len();
        self.scoped_block(&conditional.then_block);
        let then_names: Vec<(String, Span)> = self.site_names.drain(before..).collect();
        match &conditional.else_branch {
            Some(Else::Block(block)) => self.scoped_block(block),
            Some(Else::If(nested)) => self.if_(nested),
            None => {}
        }
        self.site_names.extend(then_names);
    }
}

/// Whether two static shapes provably differ: different ranks, or a literal size against a
/// different literal size on the same axis.
fn shapes_differ(declared: &Shape, assigned: &Shape) -> bool {
    match (declared.dims(), assigned.dims()) {
        (Some(left), Some(right)) => {
            left.len() != right.len()
                || left
                    .iter()
                    .zip(right)
                    .any(|(left, right)| left.conflicts(right))
        }
        _ => false,
    }
}
