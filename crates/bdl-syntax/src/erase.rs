//! Erasing positions from a tree, so that two parses of differently laid out text can be
//! compared structurally (the printer's round-trip property is stated this way).
//!
//! The tree's depth is bounded by the parser (see [`crate::MAX_NESTING`]), so the recursion here
//! is bounded too.

use crate::ast::*;
use bdl_diagnostics::Span;

/// Sets every span to the default span and every node id to zero, and clears `node_count`.
pub fn erase_positions(program: &mut Program) {
    program.span = Span::default();
    program.node_count = 0;
    for item in &mut program.items {
        match item {
            Item::Data(data) => {
                data.span = Span::default();
                if let Some(sources) = &mut data.sources {
                    sources_(sources);
                }
                for entry in &mut data.entries {
                    match entry {
                        DataEntry::Decl(decl) => {
                            decl.span = Span::default();
                            ident(&mut decl.name);
                            decl.ty.span = Span::default();
                            for bound in [&mut decl.ty.lower, &mut decl.ty.upper]
                                .into_iter()
                                .flatten()
                            {
                                expr(bound);
                            }
                            for dim in decl.ty.dims.iter_mut().flatten() {
                                match dim {
                                    Dim::Int(_, span) => *span = Span::default(),
                                    Dim::Name(name) => ident(name),
                                }
                            }
                            if let Some(columns) = &mut decl.columns {
                                sources_(columns);
                            }
                        }
                        DataEntry::Let(binding) => let_(binding),
                        DataEntry::Error(span) => *span = Span::default(),
                    }
                }
            }
            Item::Network(network) => {
                network.span = Span::default();
                ident(&mut network.name);
                expr(&mut network.value);
            }
            Item::Function(function) => {
                function.span = Span::default();
                ident(&mut function.name);
                function.params.iter_mut().for_each(ident);
                block(&mut function.body);
            }
            Item::Model(model) => {
                model.span = Span::default();
                block(&mut model.body);
            }
            Item::Infer(infer) => {
                infer.span = Span::default();
                for setting in &mut infer.settings {
                    setting.span = Span::default();
                    ident(&mut setting.key);
                    expr(&mut setting.value);
                }
            }
            Item::Error(span) => *span = Span::default(),
        }
    }
}

fn ident(ident: &mut Ident) {
    ident.span = Span::default();
    ident.id = NodeId::default();
}

fn string(literal: &mut StrLit) {
    literal.span = Span::default();
    for part in &mut literal.parts {
        if let StrPart::Var(name) = part {
            ident(name);
        }
    }
}

fn sources_(sources: &mut Sources) {
    sources.span = Span::default();
    sources.items.iter_mut().for_each(string);
}

fn let_(binding: &mut Let) {
    binding.span = Span::default();
    ident(&mut binding.name);
    expr(&mut binding.value);
}

fn block(block_: &mut Block) {
    block_.span = Span::default();
    for stmt in &mut block_.stmts {
        stmt.span = Span::default();
        match &mut stmt.kind {
            StmtKind::Let(binding) => let_(binding),
            StmtKind::Assign(assign) => {
                assign.span = Span::default();
                ident(&mut assign.name);
                expr(&mut assign.value);
            }
            StmtKind::Expr(value) | StmtKind::Return(value) => expr(value),
            StmtKind::Plate(plate) => {
                plate.args.iter_mut().for_each(arg);
                if let Some(index) = &mut plate.index {
                    ident(index);
                }
                block(&mut plate.body);
            }
            StmtKind::If(conditional) => if_(conditional),
            StmtKind::For(for_) => {
                ident(&mut for_.var);
                expr(&mut for_.iter);
                block(&mut for_.body);
            }
            StmtKind::Error => {}
        }
    }
}

fn if_(conditional: &mut If) {
    conditional.span = Span::default();
    expr(&mut conditional.condition);
    block(&mut conditional.then_block);
    match &mut conditional.else_branch {
        Some(Else::Block(else_block)) => block(else_block),
        Some(Else::If(nested)) => if_(nested),
        None => {}
    }
}

fn arg(argument: &mut Arg) {
    argument.span = Span::default();
    if let Some(name) = &mut argument.name {
        ident(name);
    }
    expr(&mut argument.value);
}

fn expr(expression: &mut Expr) {
    expression.span = Span::default();
    expression.id = NodeId::default();
    match &mut expression.kind {
        ExprKind::Int(_)
        | ExprKind::Real(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Name(_)
        | ExprKind::Error => {}
        ExprKind::Str(literal) => string(literal),
        ExprKind::List(elements) => elements.iter_mut().for_each(expr),
        ExprKind::Comprehension { element, var, iter } => {
            expr(element);
            ident(var);
            expr(iter);
        }
        ExprKind::Unary { operand, .. } => expr(operand),
        ExprKind::Binary { lhs, rhs, .. } => {
            expr(lhs);
            expr(rhs);
        }
        ExprKind::Call { callee, args } => {
            expr(callee);
            args.iter_mut().for_each(arg);
        }
        ExprKind::Index { base, indices } => {
            expr(base);
            for item in indices {
                match item {
                    IndexItem::Expr(index) => expr(index),
                    IndexItem::Slice { start, end, span } => {
                        *span = Span::default();
                        if let Some(start) = start {
                            expr(start);
                        }
                        if let Some(end) = end {
                            expr(end);
                        }
                    }
                }
            }
        }
    }
}
