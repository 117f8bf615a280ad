//! The front half of the pipeline in one call: parse, check and lower a model's source, and
//! find which data declarations are only ever observed (they may be absent when predicting).

use bdl_diagnostics::{has_errors, Diagnostic, FileId, SourceMap};
use bdl_ir::catalogue::SiteFunction;
use bdl_ir::ir::{Expr, ExprKind, IndexItem, Program, SlotId, Stmt, StmtKind};

/// A model's source compiled to IR, with its warnings.
#[derive(Debug)]
pub struct Compiled {
    /// The source's id in the source map.
    pub file: FileId,
    /// The lowered program.
    pub program: Program,
    /// Warnings (never errors).
    pub warnings: Vec<Diagnostic>,
}

/// Parses, checks and lowers `bytes` (registered in `sources` as `name`). Errors and warnings
/// come back together when any error is found.
pub fn compile(
    sources: &mut SourceMap,
    name: &str,
    bytes: &[u8],
) -> Result<Compiled, Vec<Diagnostic>> {
    let (file, parsed) = bdl_syntax::parse_bytes(sources, name, bytes);
    let mut diagnostics = parsed.diagnostics;
    let checked = bdl_ir::check(&parsed.program);
    diagnostics.extend(checked.diagnostics);
    if has_errors(&diagnostics) {
        return Err(diagnostics);
    }
    match bdl_ir::lower(&parsed.program, &checked.analysis) {
        Ok(program) => Ok(Compiled {
            file,
            program,
            warnings: diagnostics,
        }),
        Err(error) => {
            diagnostics.push(*error);
            Err(diagnostics)
        }
    }
}

/// The data declarations used only as the observed value of `observe` sites (directly or
/// indexed): new inputs for prediction need not hold them.
pub fn observed_only(program: &Program) -> Vec<SlotId> {
    let mut observed = Vec::new();
    let mut other = Vec::new();
    let mut visit = |stmts: &[Stmt]| walk_block(stmts, &mut observed, &mut other);
    visit(&program.data_lets);
    visit(&program.model);
    for function in &program.functions {
        visit(&function.body);
    }
    program
        .data
        .iter()
        .map(|decl| decl.slot)
        .filter(|slot| observed.contains(slot) && !other.contains(slot))
        .collect()
}

fn walk_block(stmts: &[Stmt], observed: &mut Vec<SlotId>, other: &mut Vec<SlotId>) {
    for stmt in stmts {
        match &stmt.kind {
            StmtKind::Let { value, .. }
            | StmtKind::Assign { value, .. }
            | StmtKind::Expr(value)
            | StmtKind::Return(value) => walk_expr(value, observed, other),
            StmtKind::Plate(plate) => {
                walk_expr(&plate.size, observed, other);
                if let Some(batch) = &plate.subsample {
                    walk_expr(batch, observed, other);
                }
                walk_block(&plate.body, observed, other);
            }
            StmtKind::If {
                condition,
                then_body,
                else_body,
            } => {
                walk_expr(condition, observed, other);
                walk_block(then_body, observed, other);
                walk_block(else_body, observed, other);
            }
            StmtKind::For { iter, body, .. } => {
                walk_expr(iter, observed, other);
                walk_block(body, observed, other);
            }
        }
    }
}

/// The slot an observed value reads: `y`, or `y[...]` with indices that use other slots.
fn observed_slot(
    expr: &Expr,
    other: &mut Vec<SlotId>,
    observed: &mut Vec<SlotId>,
) -> Option<SlotId> {
    match &expr.kind {
        ExprKind::Slot(slot) => Some(*slot),
        ExprKind::Index { base, items } => {
            let slot = observed_slot(base, other, observed)?;
            for item in items {
                walk_index(item, observed, other);
            }
            Some(slot)
        }
        _ => None,
    }
}

fn walk_index(item: &IndexItem, observed: &mut Vec<SlotId>, other: &mut Vec<SlotId>) {
    match item {
        IndexItem::Expr(value) => walk_expr(value, observed, other),
        IndexItem::Slice { start, end } => {
            for bound in [start, end].into_iter().flatten() {
                walk_expr(bound, observed, other);
            }
        }
    }
}

fn walk_expr(expr: &Expr, observed: &mut Vec<SlotId>, other: &mut Vec<SlotId>) {
    match &expr.kind {
        ExprKind::Slot(slot) => other.push(*slot),
        ExprKind::Int(_)
        | ExprKind::Real(_)
        | ExprKind::Bool(_)
        | ExprKind::NewAxis
        | ExprKind::Str(_) => {}
        ExprKind::List(items) => items
            .iter()
            .for_each(|item| walk_expr(item, observed, other)),
        ExprKind::Comprehension { iter, element, .. } => {
            walk_expr(iter, observed, other);
            walk_expr(element, observed, other);
        }
        ExprKind::Range { start, end } => {
            walk_expr(start, observed, other);
            walk_expr(end, observed, other);
        }
        ExprKind::Unary { operand, .. } => walk_expr(operand, observed, other),
        ExprKind::Binary { lhs, rhs, .. } => {
            walk_expr(lhs, observed, other);
            walk_expr(rhs, observed, other);
        }
        ExprKind::Builtin { args, .. }
        | ExprKind::Distribution { args, .. }
        | ExprKind::Constraint { args, .. } => {
            args.iter()
                .for_each(|arg| walk_expr(&arg.value, observed, other));
        }
        ExprKind::CallFunction { args, .. } => {
            args.iter().for_each(|arg| walk_expr(arg, observed, other))
        }
        ExprKind::CallModule { module, input } => {
            walk_expr(module, observed, other);
            walk_expr(input, observed, other);
        }
        ExprKind::Index { base, items } => {
            walk_expr(base, observed, other);
            items
                .iter()
                .for_each(|item| walk_index(item, observed, other));
        }
        ExprKind::Site { kind, args, .. } => {
            for arg in args {
                if *kind == SiteFunction::Observe && arg.name == "value" {
                    match observed_slot(&arg.value, other, observed) {
                        Some(slot) => observed.push(slot),
                        None => walk_expr(&arg.value, observed, other),
                    }
                } else {
                    walk_expr(&arg.value, observed, other);
                }
            }
        }
    }
}
