//! Statements and blocks: `let`, loops, `if`, expression statements and `return`, with the
//! scopes they open and the depth guard that bounds the recursion.

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
                self.bind(&binding.name, BindingKind::Let, info.ty, info.latent);
            }
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
                self.scopes.push(HashMap::new());
                self.bind(&for_.var, BindingKind::LoopVar, var_ty, iter.latent);
                self.loop_vars.push(for_.var.name.clone());
                self.block_statements(&for_.body);
                self.loop_vars.pop();
                self.scopes.pop();
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
