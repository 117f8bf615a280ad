//! Lowering: from the checked syntax tree and its [`Analysis`] to the trace IR of [`crate::ir`].
//!
//! Lowering runs only on programs the checks accepted, so every name is resolved and every call
//! matched already; it re-reads those facts rather than recomputing them. It never panics: a
//! fact missing from the analysis (which would be a bug in the checks) becomes an internal-error
//! diagnostic at the offending node.

use crate::ir::{
    self, Arg, Columns, DataBound, DataDecl, DataDim, Expr, ExprKind, FileRef, Function, IndexItem,
    NamePart, Network, Plate, SiteName, Slot, SlotId, Stmt, StmtKind,
};
use crate::types::Ty;
use crate::{Analysis, BindingId, Reference};
use bdl_diagnostics::{Diagnostic, Span};
use bdl_syntax as ast;

/// Lowers a checked program. The error is an internal error: the checks should have caught it.
pub fn lower(program: &ast::Program, analysis: &Analysis) -> Result<ir::Program, Box<Diagnostic>> {
    Lowerer { analysis }.program(program)
}

struct Lowerer<'a> {
    analysis: &'a Analysis,
}

fn internal(message: impl Into<String>, span: Span) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::error(
            "E0900",
            format!("internal error while lowering: {}", message.into()),
        )
        .with_label(span, "here")
        .with_hint("this is a bug in bdl; please report it with the model file"),
    )
}

type Lowered<T> = Result<T, Box<Diagnostic>>;

impl Lowerer<'_> {
    fn program(&self, program: &ast::Program) -> Lowered<ir::Program> {
        let slots = self
            .analysis
            .bindings
            .iter()
            .map(|binding| Slot {
                name: binding.name.clone(),
                kind: binding.kind,
                span: binding.span,
                ty: binding.ty.clone(),
            })
            .collect();
        let mut lowered = ir::Program {
            slots,
            data_files: Vec::new(),
            data: Vec::new(),
            data_lets: Vec::new(),
            networks: Vec::new(),
            functions: Vec::new(),
            model: Vec::new(),
            settings: self.analysis.infer.clone(),
        };
        if let Some(data) = program.data() {
            if let Some(sources) = &data.sources {
                for item in &sources.items {
                    let path = item
                        .as_plain()
                        .ok_or_else(|| internal("a data file name interpolates", item.span))?;
                    lowered.data_files.push(FileRef {
                        path,
                        span: item.span,
                    });
                }
            }
            for entry in &data.entries {
                match entry {
                    ast::DataEntry::Decl(decl) => lowered.data.push(self.data_decl(decl)?),
                    ast::DataEntry::Let(binding) => lowered.data_lets.push(self.let_(binding)?),
                    ast::DataEntry::Error(span) => {
                        return Err(internal("an unparsed data entry", *span))
                    }
                }
            }
        }
        for network in program.networks() {
            lowered.networks.push(self.network(network)?);
        }
        for function in program.functions() {
            let params = function
                .params
                .iter()
                .map(|param| self.defined(param))
                .collect::<Lowered<Vec<_>>>()?;
            lowered.functions.push(Function {
                name: function.name.name.clone(),
                params,
                body: self.block(&function.body)?,
                span: function.span,
            });
        }
        if let Some(model) = program.model() {
            lowered.model = self.block(&model.body)?;
        }
        Ok(lowered)
    }

    /// The slot an identifier introduces.
    fn defined(&self, ident: &ast::Ident) -> Lowered<SlotId> {
        self.analysis
            .definitions
            .get(&ident.id)
            .map(|binding| SlotId(binding.0))
            .ok_or_else(|| internal(format!("`{}` was not bound", ident.name), ident.span))
    }

    /// The slot a name use refers to.
    fn referenced(&self, id: ast::NodeId, name: &str, span: Span) -> Lowered<BindingId> {
        match self.analysis.references.get(&id) {
            Some(Reference::Binding(binding)) => Ok(*binding),
            _ => self
                .analysis
                .definitions
                .get(&id)
                .copied()
                .ok_or_else(|| internal(format!("`{name}` was not resolved"), span)),
        }
    }

    fn data_decl(&self, decl: &ast::DataDecl) -> Lowered<DataDecl> {
        let slot = self.defined(&decl.name)?;
        let dims = match &decl.ty.dims {
            None => Vec::new(),
            Some(dims) => dims
                .iter()
                .map(|dim| match dim {
                    ast::Dim::Int(size, span) => usize::try_from(*size)
                        .map(DataDim::Fixed)
                        .map_err(|_| internal("a negative size", *span)),
                    ast::Dim::Name(ident) => {
                        if ident.name == "_" {
                            return Ok(DataDim::Any);
                        }
                        let binding = self.referenced(ident.id, &ident.name, ident.span)?;
                        Ok(DataDim::Slot(SlotId(binding.0)))
                    }
                })
                .collect::<Lowered<Vec<_>>>()?,
        };
        // `vector` and `matrix` without sizes take any size on each axis.
        let dims = match (decl.ty.base, dims.is_empty()) {
            (ast::BaseType::Vector, true) => vec![DataDim::Any],
            (ast::BaseType::Matrix, true) => vec![DataDim::Any, DataDim::Any],
            _ => dims,
        };
        let bound = |expr: &Option<ast::Expr>| -> Lowered<Option<DataBound>> {
            let Some(expr) = expr else { return Ok(None) };
            if let Some(value) = constant_number(expr) {
                return Ok(Some(DataBound::Value(value)));
            }
            match &expr.kind {
                ast::ExprKind::Name(name) => {
                    let binding = self.referenced(expr.id, name, expr.span)?;
                    Ok(Some(DataBound::Slot(SlotId(binding.0))))
                }
                _ => Err(internal(
                    "a bound that is neither a number nor a name",
                    expr.span,
                )),
            }
        };
        let columns = match &decl.columns {
            None => Columns::Own,
            Some(sources) => {
                let names = sources
                    .items
                    .iter()
                    .map(|item| {
                        item.as_plain()
                            .ok_or_else(|| internal("a column name interpolates", item.span))
                    })
                    .collect::<Lowered<Vec<String>>>()?;
                match names.as_slice() {
                    [single] if !sources.bracketed && single.ends_with('*') => {
                        Columns::Prefix(single.trim_end_matches('*').to_string())
                    }
                    _ => Columns::Names(names),
                }
            }
        };
        Ok(DataDecl {
            slot,
            name: decl.name.name.clone(),
            base: decl.ty.base,
            dims,
            lower: bound(&decl.ty.lower)?,
            upper: bound(&decl.ty.upper)?,
            columns,
            span: decl.span,
            type_span: decl.ty.span,
        })
    }

    fn network(&self, network: &ast::NetworkDecl) -> Lowered<Network> {
        let slot = self.defined(&network.name)?;
        let info = self
            .analysis
            .networks
            .get(&BindingId(slot.0))
            .ok_or_else(|| internal("a network without layers", network.span))?;
        let layers =
            info.layers
                .iter()
                .map(|layer| {
                    layer.layer.clone().ok_or_else(|| {
                        internal("a layer setting that is not a literal", layer.span)
                    })
                })
                .collect::<Lowered<Vec<_>>>()?;
        Ok(Network {
            slot,
            name: network.name.name.clone(),
            layers,
            span: network.span,
        })
    }

    fn block(&self, block: &ast::Block) -> Lowered<Vec<Stmt>> {
        block.stmts.iter().map(|stmt| self.stmt(stmt)).collect()
    }

    fn let_(&self, binding: &ast::Let) -> Lowered<Stmt> {
        Ok(Stmt {
            kind: StmtKind::Let {
                slot: self.defined(&binding.name)?,
                value: self.expr(&binding.value)?,
            },
            span: binding.span,
        })
    }

    fn stmt(&self, stmt: &ast::Stmt) -> Lowered<Stmt> {
        let kind = match &stmt.kind {
            ast::StmtKind::Let(binding) => return self.let_(binding),
            ast::StmtKind::Assign(assign) => StmtKind::Assign {
                slot: SlotId(
                    self.referenced(assign.name.id, &assign.name.name, assign.name.span)?
                        .0,
                ),
                value: self.expr(&assign.value)?,
            },
            ast::StmtKind::Expr(expr) => StmtKind::Expr(self.expr(expr)?),
            ast::StmtKind::Plate(plate) => StmtKind::Plate(self.plate(plate, stmt.span)?),
            ast::StmtKind::If(conditional) => return self.if_(conditional),
            ast::StmtKind::For(for_) => StmtKind::For {
                var: self.defined(&for_.var)?,
                iter: self.expr(&for_.iter)?,
                body: self.block(&for_.body)?,
            },
            ast::StmtKind::Return(value) => StmtKind::Return(self.expr(value)?),
            ast::StmtKind::Error => return Err(internal("an unparsed statement", stmt.span)),
        };
        Ok(Stmt {
            kind,
            span: stmt.span,
        })
    }

    fn if_(&self, conditional: &ast::If) -> Lowered<Stmt> {
        let else_body = match &conditional.else_branch {
            None => Vec::new(),
            Some(ast::Else::Block(block)) => self.block(block)?,
            Some(ast::Else::If(nested)) => vec![self.if_(nested)?],
        };
        Ok(Stmt {
            kind: StmtKind::If {
                condition: self.expr(&conditional.condition)?,
                then_body: self.block(&conditional.then_block)?,
                else_body,
            },
            span: conditional.span,
        })
    }

    fn plate(&self, plate: &ast::Plate, span: Span) -> Lowered<Plate> {
        let info = self
            .analysis
            .plates
            .get(&span)
            .ok_or_else(|| internal("a plate the checks did not see", span))?;
        const PARAMS: [&str; 4] = ["name", "size", "subsample", "dim"];
        let mut slots: [Option<&ast::Expr>; 4] = [None; 4];
        let mut position = 0;
        for argument in &plate.args {
            let index = match &argument.name {
                Some(name) => PARAMS.iter().position(|p| *p == name.name),
                None => {
                    position += 1;
                    Some(position - 1)
                }
            };
            if let Some(index) = index.filter(|i| *i < PARAMS.len()) {
                slots[index] = Some(&argument.value);
            }
        }
        let size = slots[1].ok_or_else(|| internal("a plate without a size", span))?;
        Ok(Plate {
            name: info.name.clone(),
            size: self.expr(size)?,
            subsample: slots[2].map(|e| self.expr(e)).transpose()?,
            dim: info.dim,
            index: info.index.map(|binding| SlotId(binding.0)),
            body: self.block(&plate.body)?,
        })
    }

    fn expr(&self, expr: &ast::Expr) -> Lowered<Expr> {
        let info = self.analysis.expr(expr.id).cloned().unwrap_or_default();
        let kind = match &expr.kind {
            ast::ExprKind::Int(value) => ExprKind::Int(*value),
            ast::ExprKind::Real(value) => ExprKind::Real(*value),
            ast::ExprKind::Bool(value) => ExprKind::Bool(*value),
            ast::ExprKind::None => ExprKind::NewAxis,
            ast::ExprKind::Str(literal) => ExprKind::Str(self.site_name(literal)?),
            ast::ExprKind::Name(name) => match self.analysis.references.get(&expr.id) {
                Some(Reference::Binding(binding)) => ExprKind::Slot(SlotId(binding.0)),
                Some(Reference::Constraint(spec)) => ExprKind::Constraint {
                    spec,
                    args: Vec::new(),
                },
                _ => return Err(internal(format!("`{name}` is not a value"), expr.span)),
            },
            ast::ExprKind::List(items) => ExprKind::List(
                items
                    .iter()
                    .map(|item| self.expr(item))
                    .collect::<Lowered<_>>()?,
            ),
            ast::ExprKind::Comprehension { element, var, iter } => ExprKind::Comprehension {
                var: self.defined(var)?,
                iter: Box::new(self.expr(iter)?),
                element: Box::new(self.expr(element)?),
            },
            ast::ExprKind::Unary { op, operand } => ExprKind::Unary {
                op: *op,
                operand: Box::new(self.expr(operand)?),
            },
            ast::ExprKind::Binary {
                op: ast::BinaryOp::Range,
                lhs,
                rhs,
            } => ExprKind::Range {
                start: Box::new(self.expr(lhs)?),
                end: Box::new(self.expr(rhs)?),
            },
            ast::ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
                op: *op,
                lhs: Box::new(self.expr(lhs)?),
                rhs: Box::new(self.expr(rhs)?),
            },
            ast::ExprKind::Call { callee, args } => self.call(expr, callee, args)?,
            ast::ExprKind::Index { base, indices } => ExprKind::Index {
                base: Box::new(self.expr(base)?),
                items: indices
                    .iter()
                    .map(|item| match item {
                        ast::IndexItem::Expr(value) => Ok(IndexItem::Expr(self.expr(value)?)),
                        ast::IndexItem::Slice { start, end, .. } => Ok(IndexItem::Slice {
                            start: start.as_ref().map(|e| self.expr(e)).transpose()?,
                            end: end.as_ref().map(|e| self.expr(e)).transpose()?,
                        }),
                    })
                    .collect::<Lowered<_>>()?,
            },
            ast::ExprKind::Error => return Err(internal("an unparsed expression", expr.span)),
        };
        Ok(Expr {
            kind,
            span: expr.span,
            ty: info.ty,
            latent: info.latent,
        })
    }

    fn site_name(&self, literal: &ast::StrLit) -> Lowered<SiteName> {
        let parts = literal
            .parts
            .iter()
            .map(|part| match part {
                ast::StrPart::Text(text) => Ok(NamePart::Text(text.clone())),
                ast::StrPart::Var(ident) => {
                    let binding = self.referenced(ident.id, &ident.name, ident.span)?;
                    Ok(NamePart::Slot(SlotId(binding.0)))
                }
            })
            .collect::<Lowered<_>>()?;
        Ok(SiteName { parts })
    }

    /// The arguments the checks matched for a call, lowered, in parameter order.
    fn matched_args(&self, call: &ast::Expr, args: &[ast::Arg]) -> Lowered<Vec<Arg>> {
        let info = self
            .analysis
            .calls
            .get(&call.id)
            .ok_or_else(|| internal("a call the checks did not match", call.span))?;
        info.arguments
            .iter()
            .map(|(name, id)| {
                let value = args
                    .iter()
                    .find(|argument| argument.value.id == *id)
                    .ok_or_else(|| internal(format!("argument `{name}` not found"), call.span))?;
                Ok(Arg {
                    name: name.clone(),
                    value: self.expr(&value.value)?,
                })
            })
            .collect()
    }

    fn call(&self, call: &ast::Expr, callee: &ast::Expr, args: &[ast::Arg]) -> Lowered<ExprKind> {
        let reference = self.analysis.calls.get(&call.id).map(|info| info.callee);
        Ok(match reference {
            Some(Reference::Distribution(spec)) => ExprKind::Distribution {
                spec,
                args: self.matched_args(call, args)?,
            },
            Some(Reference::Function(spec)) => ExprKind::Builtin {
                spec,
                args: self.matched_args(call, args)?,
            },
            Some(Reference::Constraint(spec)) => ExprKind::Constraint {
                spec,
                args: self.matched_args(call, args)?,
            },
            Some(Reference::Site(spec)) => {
                let mut matched = self.matched_args(call, args)?;
                let position = matched
                    .iter()
                    .position(|argument| argument.name == "name")
                    .ok_or_else(|| internal("a site without a name", call.span))?;
                let name_arg = matched.remove(position);
                let name = match name_arg.value.kind {
                    ExprKind::Str(name) => name,
                    _ => {
                        return Err(internal(
                            "a site name that is not a string",
                            name_arg.value.span,
                        ))
                    }
                };
                ExprKind::Site {
                    kind: spec.kind,
                    name,
                    args: matched,
                }
            }
            Some(Reference::Layer(_)) => {
                return Err(internal("a layer outside a network", call.span))
            }
            Some(Reference::Binding(_)) | None => {
                let callee_ty = self
                    .analysis
                    .expr(callee.id)
                    .map(|info| info.ty.clone())
                    .unwrap_or(Ty::Unknown);
                let values = args
                    .iter()
                    .map(|argument| self.expr(&argument.value))
                    .collect::<Lowered<Vec<_>>>()?;
                match callee_ty {
                    Ty::Function(function) => ExprKind::CallFunction {
                        function,
                        args: values,
                    },
                    Ty::Module { .. } | Ty::Unknown => {
                        let mut values = values.into_iter();
                        let (Some(input), None) = (values.next(), values.next()) else {
                            return Err(internal(
                                "a network called with other than one input",
                                call.span,
                            ));
                        };
                        ExprKind::CallModule {
                            module: Box::new(self.expr(callee)?),
                            input: Box::new(input),
                        }
                    }
                    other => {
                        return Err(internal(
                            format!("a call of {}", other.describe()),
                            call.span,
                        ))
                    }
                }
            }
        })
    }
}

/// The value of a numeric literal, possibly negated.
fn constant_number(expr: &ast::Expr) -> Option<f64> {
    match &expr.kind {
        ast::ExprKind::Int(value) => Some(*value as f64),
        ast::ExprKind::Real(value) => Some(*value),
        ast::ExprKind::Unary {
            op: ast::UnaryOp::Neg,
            operand,
        } => constant_number(operand).map(|v| -v),
        _ => None,
    }
}
