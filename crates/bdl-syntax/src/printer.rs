//! Prints a tree back as bdl source in one canonical layout (four-space indents, one statement
//! per line, the parentheses that precedence needs and no others).
//!
//! Printing is the inverse of parsing up to layout: parsing the printed text gives the same tree
//! (positions aside), which the round-trip tests check on every bundled model. `bdlc check
//! --emit ast` shows this output. Error nodes print as `<error>`, which does not parse.

use crate::ast::*;
use std::fmt::Write;

/// The whole program as source text.
pub fn print(program: &Program) -> String {
    let mut printer = Printer::default();
    for (index, item) in program.items.iter().enumerate() {
        if index > 0 {
            printer.out.push('\n');
        }
        printer.item(item);
    }
    printer.out
}

/// One expression as source text.
pub fn print_expr(expr: &Expr) -> String {
    let mut printer = Printer::default();
    printer.expr(expr, 0);
    printer.out
}

#[derive(Default)]
struct Printer {
    out: String,
    indent: usize,
}

impl Printer {
    fn line_start(&mut self) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Data(data) => {
                self.out.push_str("data");
                if let Some(sources) = &data.sources {
                    self.out.push_str(" from ");
                    self.sources(sources);
                }
                self.out.push_str(" {\n");
                self.indent += 1;
                for entry in &data.entries {
                    self.line_start();
                    match entry {
                        DataEntry::Decl(decl) => self.decl(decl),
                        DataEntry::Let(binding) => self.let_(binding),
                        DataEntry::Error(_) => self.out.push_str("<error>"),
                    }
                    self.out.push('\n');
                }
                self.indent -= 1;
                self.out.push_str("}\n");
            }
            Item::Network(network) => {
                let _ = write!(self.out, "network {} = ", network.name.name);
                self.expr(&network.value, 0);
                self.out.push('\n');
            }
            Item::Function(function) => {
                let params: Vec<&str> = function.params.iter().map(|p| p.name.as_str()).collect();
                let _ = write!(
                    self.out,
                    "fn {}({}) ",
                    function.name.name,
                    params.join(", ")
                );
                self.block(&function.body);
                self.out.push('\n');
            }
            Item::Model(model) => {
                self.out.push_str("model ");
                self.block(&model.body);
                self.out.push('\n');
            }
            Item::Infer(infer) => {
                self.out.push_str("infer {\n");
                self.indent += 1;
                for setting in &infer.settings {
                    self.line_start();
                    let _ = write!(self.out, "{} = ", setting.key.name);
                    self.expr(&setting.value, 0);
                    self.out.push('\n');
                }
                self.indent -= 1;
                self.out.push_str("}\n");
            }
            Item::Error(_) => self.out.push_str("<error>\n"),
        }
    }

    fn sources(&mut self, sources: &Sources) {
        if sources.bracketed {
            self.out.push('[');
            for (index, item) in sources.items.iter().enumerate() {
                if index > 0 {
                    self.out.push_str(", ");
                }
                self.string(item);
            }
            self.out.push(']');
        } else if let Some(item) = sources.items.first() {
            self.string(item);
        }
    }

    fn decl(&mut self, decl: &DataDecl) {
        let _ = write!(self.out, "{}: {}", decl.name.name, decl.ty.base.as_str());
        let bounds: Vec<(&str, &Expr)> = [("lower", &decl.ty.lower), ("upper", &decl.ty.upper)]
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| (key, value)))
            .collect();
        if !bounds.is_empty() {
            self.out.push('<');
            for (index, (key, value)) in bounds.into_iter().enumerate() {
                if index > 0 {
                    self.out.push_str(", ");
                }
                let _ = write!(self.out, "{key}=");
                self.expr(value, 0);
            }
            self.out.push('>');
        }
        if let Some(dims) = &decl.ty.dims {
            self.out.push('[');
            for (index, dim) in dims.iter().enumerate() {
                if index > 0 {
                    self.out.push_str(", ");
                }
                match dim {
                    Dim::Int(value, _) => {
                        let _ = write!(self.out, "{value}");
                    }
                    Dim::Name(name) => self.out.push_str(&name.name),
                }
            }
            self.out.push(']');
        }
        if let Some(columns) = &decl.columns {
            self.out.push_str(" from ");
            self.sources(columns);
        }
    }

    fn let_(&mut self, binding: &Let) {
        let keyword = if binding.mutable { "let mut" } else { "let" };
        let _ = write!(self.out, "{keyword} {} = ", binding.name.name);
        self.expr(&binding.value, 0);
    }

    fn block(&mut self, block: &Block) {
        self.out.push_str("{\n");
        self.indent += 1;
        for stmt in &block.stmts {
            self.line_start();
            self.stmt(stmt);
            self.out.push('\n');
        }
        self.indent -= 1;
        self.line_start();
        self.out.push('}');
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Let(binding) => self.let_(binding),
            StmtKind::Assign(assign) => {
                let _ = write!(self.out, "{} = ", assign.name.name);
                self.expr(&assign.value, 0);
            }
            StmtKind::Expr(value) => self.expr(value, 0),
            StmtKind::Plate(plate) => {
                self.out.push_str("plate");
                self.args(&plate.args);
                if let Some(index) = &plate.index {
                    let _ = write!(self.out, " as {}", index.name);
                }
                self.out.push(' ');
                self.block(&plate.body);
            }
            StmtKind::If(conditional) => self.if_(conditional),
            StmtKind::For(for_) => {
                let _ = write!(self.out, "for {} in ", for_.var.name);
                self.expr(&for_.iter, 0);
                self.out.push(' ');
                self.block(&for_.body);
            }
            StmtKind::Return(value) => {
                self.out.push_str("return ");
                self.expr(value, 0);
            }
            StmtKind::Error => self.out.push_str("<error>"),
        }
    }

    fn if_(&mut self, conditional: &If) {
        self.out.push_str("if ");
        self.expr(&conditional.condition, 0);
        self.out.push(' ');
        self.block(&conditional.then_block);
        match &conditional.else_branch {
            Some(Else::Block(block)) => {
                self.out.push_str(" else ");
                self.block(block);
            }
            Some(Else::If(nested)) => {
                self.out.push_str(" else ");
                self.if_(nested);
            }
            None => {}
        }
    }

    fn args(&mut self, args: &[Arg]) {
        self.out.push('(');
        for (index, arg) in args.iter().enumerate() {
            if index > 0 {
                self.out.push_str(", ");
            }
            if let Some(name) = &arg.name {
                let _ = write!(self.out, "{} = ", name.name);
            }
            self.expr(&arg.value, 0);
        }
        self.out.push(')');
    }

    fn string(&mut self, literal: &StrLit) {
        self.out.push('"');
        for part in &literal.parts {
            match part {
                StrPart::Text(text) => {
                    for c in text.chars() {
                        match c {
                            '"' => self.out.push_str("\\\""),
                            '\\' => self.out.push_str("\\\\"),
                            '\n' => self.out.push_str("\\n"),
                            '\t' => self.out.push_str("\\t"),
                            '{' => self.out.push_str("{{"),
                            '}' => self.out.push_str("}}"),
                            other => self.out.push(other),
                        }
                    }
                }
                StrPart::Var(name) => {
                    let _ = write!(self.out, "{{{}}}", name.name);
                }
            }
        }
        self.out.push('"');
    }

    /// Prints `expr`, in parentheses when its precedence is below `context` (the precedence the
    /// surrounding operator requires of this operand).
    fn expr(&mut self, expr: &Expr, context: u8) {
        let own = precedence(expr);
        let parenthesise = own < context;
        if parenthesise {
            self.out.push('(');
        }
        match &expr.kind {
            ExprKind::Int(value) => {
                let _ = write!(self.out, "{value}");
            }
            ExprKind::Real(value) => {
                // `{:?}` prints the shortest text that reads back to the same f64, and always
                // with a `.` or an exponent, so that it parses as a real again.
                let _ = write!(self.out, "{value:?}");
            }
            ExprKind::Bool(value) => {
                let _ = write!(self.out, "{value}");
            }
            ExprKind::None => self.out.push_str("None"),
            ExprKind::Str(literal) => self.string(literal),
            ExprKind::Name(name) => self.out.push_str(name),
            ExprKind::List(elements) => {
                self.out.push('[');
                for (index, element) in elements.iter().enumerate() {
                    if index > 0 {
                        self.out.push_str(", ");
                    }
                    self.expr(element, 0);
                }
                self.out.push(']');
            }
            ExprKind::Comprehension { element, var, iter } => {
                self.out.push('[');
                self.expr(element, 0);
                let _ = write!(self.out, " for {} in ", var.name);
                self.expr(iter, 0);
                self.out.push(']');
            }
            ExprKind::Unary { op, operand } => {
                self.out.push_str(op.as_str());
                self.expr(operand, op.precedence());
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (left, right) = if op.is_right_associative() {
                    (op.precedence() + 1, op.precedence())
                } else {
                    (op.precedence(), op.precedence() + 1)
                };
                self.expr(lhs, left);
                let _ = write!(self.out, " {} ", op.as_str());
                self.expr(rhs, right);
            }
            ExprKind::Call { callee, args } => {
                self.expr(callee, POSTFIX_PRECEDENCE);
                self.args(args);
            }
            ExprKind::Index { base, indices } => {
                self.expr(base, POSTFIX_PRECEDENCE);
                self.out.push('[');
                for (index, item) in indices.iter().enumerate() {
                    if index > 0 {
                        self.out.push_str(", ");
                    }
                    match item {
                        IndexItem::Expr(value) => self.expr(value, 0),
                        IndexItem::Slice { start, end, .. } => {
                            if let Some(start) = start {
                                self.expr(start, 0);
                            }
                            self.out.push(':');
                            if let Some(end) = end {
                                self.expr(end, 0);
                            }
                        }
                    }
                }
                self.out.push(']');
            }
            ExprKind::Error => self.out.push_str("<error>"),
        }
        if parenthesise {
            self.out.push(')');
        }
    }
}

/// How tightly an expression holds together when printed without parentheses.
fn precedence(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::Unary { op, .. } => op.precedence(),
        ExprKind::Binary { op, .. } => op.precedence(),
        _ => POSTFIX_PRECEDENCE + 1,
    }
}
