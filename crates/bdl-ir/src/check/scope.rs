//! Scopes and names: binding names (reporting duplicates), looking them up through the
//! scopes and the catalogue, "did you mean" for unknown names, and the side tables of facts
//! recorded per expression.

use super::*;

impl Checker<'_> {
    pub(super) fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub(super) fn bind(
        &mut self,
        ident: &Ident,
        kind: BindingKind,
        ty: Ty,
        latent: bool,
    ) -> BindingId {
        let id = BindingId(u32::try_from(self.analysis.bindings.len()).unwrap_or(u32::MAX));
        self.analysis.bindings.push(Binding {
            name: ident.name.clone(),
            kind,
            span: ident.span,
            ty,
            latent,
            mutable: false,
            uses: 0,
        });
        self.analysis.definitions.insert(ident.id, id);
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(ident.name.clone(), id);
        }
        id
    }

    /// Binds a global name, reporting a duplicate.
    pub(super) fn bind_global(&mut self, ident: &Ident, kind: BindingKind, ty: Ty) -> BindingId {
        if let Some(existing) = self
            .scopes
            .first()
            .and_then(|s| s.get(&ident.name))
            .copied()
        {
            let first = self.analysis.bindings[existing.0 as usize].span;
            self.error(
                Diagnostic::error("E0104", format!("`{}` is defined twice", ident.name))
                    .with_label(ident.span, "second definition")
                    .with_secondary(first, "first defined here")
                    .with_hint("rename one of them"),
            );
        }
        let id = BindingId(u32::try_from(self.analysis.bindings.len()).unwrap_or(u32::MAX));
        self.analysis.bindings.push(Binding {
            name: ident.name.clone(),
            kind,
            span: ident.span,
            ty,
            latent: false,
            mutable: false,
            uses: 0,
        });
        self.analysis.definitions.insert(ident.id, id);
        if let Some(scope) = self.scopes.first_mut() {
            scope.insert(ident.name.clone(), id);
        }
        id
    }

    pub(super) fn lookup(&self, name: &str) -> Option<BindingId> {
        self.scopes
            .iter()
            .rev()
            .find_map(|scope| scope.get(name).copied())
    }

    pub(super) fn resolve(&self, name: &str) -> Option<Reference> {
        if let Some(id) = self.lookup(name) {
            return Some(Reference::Binding(id));
        }
        catalogue::distribution(name)
            .map(Reference::Distribution)
            .or_else(|| catalogue::function(name).map(Reference::Function))
            .or_else(|| catalogue::site_function(name).map(Reference::Site))
            .or_else(|| catalogue::layer(name).map(Reference::Layer))
            .or_else(|| catalogue::constraint(name).map(Reference::Constraint))
    }

    pub(super) fn unknown_name(&mut self, name: &str, span: Span) {
        if self.program.incomplete {
            return;
        }
        let visible: Vec<String> = self
            .scopes
            .iter()
            .flat_map(|scope| scope.keys().cloned())
            .collect();
        let mut candidates: Vec<&str> = visible.iter().map(String::as_str).collect();
        for builtin in catalogue::all_names() {
            candidates.push(builtin);
        }
        let suggestion = did_you_mean(name, candidates).map(str::to_string);
        let hint = match suggestion {
            Some(candidate) => format!("did you mean `{candidate}`?"),
            None => "declare it in the data block, bind it with `let`, or check the spelling"
                .to_string(),
        };
        self.error(
            Diagnostic::error("E0101", format!("unknown name `{name}`"))
                .with_label(span, "not found in this scope")
                .with_hint(hint),
        );
    }

    pub(super) fn use_binding(&mut self, id: BindingId) -> &Binding {
        let binding = &mut self.analysis.bindings[id.0 as usize];
        binding.uses += 1;
        binding
    }

    pub(super) fn record(&mut self, expr: &Expr, info: ExprInfo) -> ExprInfo {
        let index = expr.id.index();
        if index >= self.analysis.exprs.len() {
            self.analysis.exprs.resize(index + 1, ExprInfo::default());
        }
        self.analysis.exprs[index] = info.clone();
        info
    }

    pub(super) fn info_of(&self, expr: &Expr) -> ExprInfo {
        self.analysis
            .exprs
            .get(expr.id.index())
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn name(&mut self, expr: &Expr, name: &str) -> ExprInfo {
        let Some(reference) = self.resolve(name) else {
            if self.constraint_arg == Some(expr.id) {
                self.unknown_constraint(name, expr.span);
            } else {
                self.unknown_name(name, expr.span);
            }
            return ExprInfo::default();
        };
        self.analysis.references.insert(expr.id, reference);
        let ty = match reference {
            Reference::Binding(id) => {
                let binding = self.use_binding(id);
                return ExprInfo {
                    ty: binding.ty.clone(),
                    latent: binding.latent,
                };
            }
            Reference::Constraint(spec) if spec.params.is_empty() => Ty::Constraint,
            Reference::Layer(spec)
                if self.context == Context::Network && spec.params.is_empty() =>
            {
                Ty::Network {
                    input: None,
                    output: None,
                }
            }
            Reference::Distribution(spec) => {
                self.error(
                    Diagnostic::error(
                        "E0302",
                        format!("the distribution `{}` needs its parameters", spec.name),
                    )
                    .with_label(expr.span, "not called")
                    .with_hint(format!(
                        "write {}",
                        catalogue::signature(spec.name, spec.params)
                    )),
                );
                Ty::Unknown
            }
            Reference::Layer(spec) => {
                self.layer_outside_network(expr.span, spec.name);
                Ty::Unknown
            }
            _ => Ty::Builtin,
        };
        ExprInfo { ty, latent: false }
    }

    pub(super) fn unknown_constraint(&mut self, name: &str, span: Span) {
        let suggestion = did_you_mean(name, catalogue::CONSTRAINTS.iter().map(|c| c.name));
        self.error(
            Diagnostic::error("E0308", format!("unknown constraint `{name}`"))
                .with_label(span, "not a constraint")
                .with_hint(match suggestion {
                    Some(candidate) => format!("did you mean `{candidate}`?"),
                    None => {
                        let names: Vec<&str> =
                            catalogue::CONSTRAINTS.iter().map(|c| c.name).collect();
                        format!("the constraints are {}", names.join(", "))
                    }
                }),
        );
    }

    pub(super) fn layer_outside_network(&mut self, span: Span, name: &str) {
        self.error(
            Diagnostic::error(
                "E0105",
                format!("the layer `{name}` is used outside a network"),
            )
            .with_label(span, "layers only appear in `network` declarations")
            .with_hint(
                "declare `network net = Sequential(...)` and lift it with `lift` or `module`",
            ),
        );
    }
}
