//! Turns pest's pairs into the typed tree of [`crate::ast`].
//!
//! The builder checks what the grammar cannot: integer and real literals in range, string escapes
//! and interpolations, data-type bounds, and the depth of expressions (anything deeper than
//! [`crate::MAX_NESTING`] becomes an error node, so that no later pass recurses without bound).
//! It never fails: problems become diagnostics and error nodes.

use crate::ast::*;
use crate::grammar::{pratt, Rule};
use crate::MAX_NESTING;
use bdl_diagnostics::{Diagnostic, FileId, Span};
use pest::iterators::Pair;
use std::cell::{Cell, RefCell};

/// An expression and the depth of its tree.
struct Built {
    expr: Expr,
    depth: usize,
}

/// Builds tree nodes from pairs of one piece of text that starts at `offset` in the file.
pub(crate) struct Builder {
    file: FileId,
    offset: Cell<usize>,
    next_id: Cell<u32>,
    depth_reported: Cell<bool>,
    diagnostics: RefCell<Vec<Diagnostic>>,
}

impl Builder {
    /// A builder for `file` whose node ids start at zero.
    pub(crate) fn new(file: FileId) -> Builder {
        Builder {
            file,
            offset: Cell::new(0),
            next_id: Cell::new(0),
            depth_reported: Cell::new(false),
            diagnostics: RefCell::new(Vec::new()),
        }
    }

    /// Sets where in the file the text being built from starts.
    pub(crate) fn set_offset(&self, offset: usize) {
        self.offset.set(offset);
    }

    /// The number of node ids handed out.
    pub(crate) fn node_count(&self) -> u32 {
        self.next_id.get()
    }

    /// Takes the diagnostics collected so far.
    pub(crate) fn take_diagnostics(&self) -> Vec<Diagnostic> {
        std::mem::take(&mut *self.diagnostics.borrow_mut())
    }

    /// Records a diagnostic.
    pub(crate) fn report(&self, diagnostic: Diagnostic) {
        self.diagnostics.borrow_mut().push(diagnostic);
    }

    /// The file this builder reports against.
    pub(crate) fn file(&self) -> FileId {
        self.file
    }

    fn span(&self, pair: &Pair<Rule>) -> Span {
        let offset = self.offset.get();
        let span = pair.as_span();
        Span::new(self.file, offset + span.start()..offset + span.end())
    }

    fn id(&self) -> NodeId {
        let id = self.next_id.get();
        self.next_id.set(id.saturating_add(1));
        NodeId(id)
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
            id: self.id(),
        }
    }

    fn error_expr(&self, span: Span) -> Expr {
        Expr {
            kind: ExprKind::Error,
            span,
            id: self.id(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Items.

    /// The items of a `file` or `item_only` pair.
    pub(crate) fn items(&self, pair: Pair<Rule>) -> Vec<Item> {
        pair.into_inner()
            .filter(|inner| inner.as_rule() != Rule::EOI)
            .map(|inner| self.item(inner))
            .collect()
    }

    fn item(&self, pair: Pair<Rule>) -> Item {
        self.depth_reported.set(false);
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::data_block => {
                let mut sources = None;
                let mut entries = Vec::new();
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::sources => sources = Some(self.sources(inner)),
                        Rule::data_body => {
                            entries = inner.into_inner().map(|e| self.data_entry(e)).collect()
                        }
                        _ => {}
                    }
                }
                Item::Data(DataBlock {
                    sources,
                    entries,
                    span,
                })
            }
            Rule::network_decl => {
                let mut inner = pair
                    .into_inner()
                    .filter(|p| p.as_rule() != Rule::kw_network);
                match (inner.next(), inner.next()) {
                    (Some(name), Some(value)) => Item::Network(NetworkDecl {
                        name: self.ident(name),
                        value: self.expr(value),
                        span,
                    }),
                    _ => Item::Error(span),
                }
            }
            Rule::fn_decl => {
                let mut name = None;
                let mut params = Vec::new();
                let mut body = None;
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::ident => name = Some(self.ident(inner)),
                        Rule::params => {
                            params = inner.into_inner().map(|p| self.ident(p)).collect()
                        }
                        Rule::block => body = Some(self.block(inner)),
                        _ => {}
                    }
                }
                match (name, body) {
                    (Some(name), Some(body)) => Item::Function(FnDecl {
                        name,
                        params,
                        body,
                        span,
                    }),
                    _ => Item::Error(span),
                }
            }
            Rule::model_block => match pair.into_inner().find(|p| p.as_rule() == Rule::block) {
                Some(block) => Item::Model(ModelBlock {
                    body: self.block(block),
                    span,
                }),
                None => Item::Error(span),
            },
            Rule::infer_block => {
                let settings = pair
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::infer_body)
                    .flat_map(|body| body.into_inner())
                    .filter_map(|setting| self.setting(setting))
                    .collect();
                Item::Infer(InferBlock { settings, span })
            }
            _ => Item::Error(span),
        }
    }

    /// One `setting` pair.
    pub(crate) fn setting(&self, pair: Pair<Rule>) -> Option<Setting> {
        self.depth_reported.set(false);
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let key = self.ident(inner.next()?);
        let value = self.expr(inner.next()?);
        Some(Setting { key, value, span })
    }

    fn sources(&self, pair: Pair<Rule>) -> Sources {
        let span = self.span(&pair);
        let mut items = Vec::new();
        let mut bracketed = false;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::string => items.push(self.string(inner)),
                Rule::string_list => {
                    bracketed = true;
                    items.extend(inner.into_inner().map(|s| self.string(s)));
                }
                _ => {}
            }
        }
        Sources {
            items,
            bracketed,
            span,
        }
    }

    /// One `let_stmt` or `data_decl` pair of a data block.
    pub(crate) fn data_entry(&self, pair: Pair<Rule>) -> DataEntry {
        self.depth_reported.set(false);
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::let_stmt => match self.let_(pair) {
                Some(binding) => DataEntry::Let(binding),
                None => DataEntry::Error(span),
            },
            Rule::data_decl => {
                let mut name = None;
                let mut ty = None;
                let mut columns = None;
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::ident => name = Some(self.ident(inner)),
                        Rule::data_type => ty = Some(self.data_type(inner)),
                        Rule::sources => columns = Some(self.sources(inner)),
                        _ => {}
                    }
                }
                match (name, ty) {
                    (Some(name), Some(ty)) => DataEntry::Decl(DataDecl {
                        name,
                        ty,
                        columns,
                        span,
                    }),
                    _ => DataEntry::Error(span),
                }
            }
            _ => DataEntry::Error(span),
        }
    }

    fn data_type(&self, pair: Pair<Rule>) -> DataType {
        let span = self.span(&pair);
        let mut ty = DataType {
            base: BaseType::Real,
            lower: None,
            upper: None,
            dims: None,
            span,
        };
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::base_type => {
                    ty.base = match inner.as_str() {
                        "int" => BaseType::Int,
                        "vector" => BaseType::Vector,
                        "matrix" => BaseType::Matrix,
                        _ => BaseType::Real,
                    }
                }
                Rule::bounds => {
                    for bound in inner.into_inner() {
                        self.bound(bound, &mut ty);
                    }
                }
                Rule::dims => {
                    let dims = inner
                        .into_inner()
                        .map(|dim| match dim.as_rule() {
                            Rule::ident => Dim::Name(self.ident(dim)),
                            _ => {
                                let span = self.span(&dim);
                                Dim::Int(self.int_value(dim.as_str(), span).unwrap_or(0), span)
                            }
                        })
                        .collect();
                    ty.dims = Some(dims);
                }
                _ => {}
            }
        }
        ty
    }

    fn bound(&self, pair: Pair<Rule>, ty: &mut DataType) {
        let mut inner = pair.into_inner();
        let (Some(key), Some(value)) = (inner.next(), inner.next()) else {
            return;
        };
        let key_span = self.span(&key);
        let value = self.bound_value(value);
        let slot = match key.as_str() {
            "lower" => &mut ty.lower,
            "upper" => &mut ty.upper,
            other => {
                let hint = match bdl_diagnostics::did_you_mean(other, ["lower", "upper"]) {
                    Some(name) => format!("did you mean `{name}`?"),
                    None => "a bound is written `lower=...` or `upper=...`".to_string(),
                };
                self.report(
                    Diagnostic::error("E0013", format!("unknown bound `{other}`"))
                        .with_label(key_span, "expected `lower` or `upper`")
                        .with_hint(hint),
                );
                return;
            }
        };
        if slot.is_some() {
            self.report(
                Diagnostic::error("E0013", format!("bound `{}` given twice", key.as_str()))
                    .with_label(key_span, "second bound here")
                    .with_hint("give each bound once"),
            );
            return;
        }
        *slot = Some(value);
    }

    fn bound_value(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let mut negate = false;
        let mut value = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::neg => negate = true,
                _ => value = Some(self.primary(inner).expr),
            }
        }
        let value = value.unwrap_or_else(|| self.error_expr(span));
        if negate {
            Expr {
                kind: ExprKind::Unary {
                    op: UnaryOp::Neg,
                    operand: Box::new(value),
                },
                span,
                id: self.id(),
            }
        } else {
            value
        }
    }

    // ---------------------------------------------------------------------------------------
    // Statements.

    fn block(&self, pair: Pair<Rule>) -> Block {
        let span = self.span(&pair);
        Block {
            stmts: pair.into_inner().map(|stmt| self.stmt(stmt)).collect(),
            span,
        }
    }

    fn let_(&self, pair: Pair<Rule>) -> Option<Let> {
        let span = self.span(&pair);
        let mut mutable = false;
        let mut inner = pair.into_inner().filter(|p| match p.as_rule() {
            Rule::kw_let => false,
            Rule::kw_mut => {
                mutable = true;
                false
            }
            _ => true,
        });
        let name = self.ident(inner.next()?);
        let value = self.expr(inner.next()?);
        Some(Let {
            mutable,
            name,
            value,
            span,
        })
    }

    fn assign(&self, pair: Pair<Rule>) -> Option<Assign> {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next()?);
        let value = self.expr(inner.next()?);
        Some(Assign { name, value, span })
    }

    /// One statement pair.
    pub(crate) fn stmt(&self, pair: Pair<Rule>) -> Stmt {
        self.depth_reported.set(false);
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::let_stmt => self.let_(pair).map_or(StmtKind::Error, StmtKind::Let),
            Rule::assign_stmt => self.assign(pair).map_or(StmtKind::Error, StmtKind::Assign),
            Rule::expr_stmt => match pair.into_inner().next() {
                Some(value) => StmtKind::Expr(self.expr(value)),
                None => StmtKind::Error,
            },
            Rule::return_stmt => match pair.into_inner().find(|p| p.as_rule() == Rule::expr) {
                Some(value) => StmtKind::Return(self.expr(value)),
                None => StmtKind::Error,
            },
            Rule::plate_stmt => {
                let mut args = Vec::new();
                let mut index = None;
                let mut body = None;
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::call_args => args = self.args(inner).0,
                        Rule::ident => index = Some(self.ident(inner)),
                        Rule::block => body = Some(self.block(inner)),
                        _ => {}
                    }
                }
                match body {
                    Some(body) => StmtKind::Plate(Plate { args, index, body }),
                    None => StmtKind::Error,
                }
            }
            Rule::if_stmt => self.if_(pair).map_or(StmtKind::Error, StmtKind::If),
            Rule::for_stmt => {
                let mut inner = pair
                    .into_inner()
                    .filter(|p| !matches!(p.as_rule(), Rule::kw_for | Rule::kw_in));
                match (inner.next(), inner.next(), inner.next()) {
                    (Some(var), Some(iter), Some(body)) => StmtKind::For(For {
                        var: self.ident(var),
                        iter: self.expr(iter),
                        body: self.block(body),
                    }),
                    _ => StmtKind::Error,
                }
            }
            _ => StmtKind::Error,
        };
        Stmt { kind, span }
    }

    fn if_(&self, pair: Pair<Rule>) -> Option<If> {
        let span = self.span(&pair);
        let mut inner = pair
            .into_inner()
            .filter(|p| !matches!(p.as_rule(), Rule::kw_if | Rule::kw_else));
        let condition = self.expr(inner.next()?);
        let then_block = self.block(inner.next()?);
        let else_branch = match inner.next() {
            Some(branch) if branch.as_rule() == Rule::if_stmt => {
                Some(Else::If(Box::new(self.if_(branch)?)))
            }
            Some(branch) => Some(Else::Block(self.block(branch))),
            None => None,
        };
        Some(If {
            condition,
            then_block,
            else_branch,
            span,
        })
    }

    // ---------------------------------------------------------------------------------------
    // Expressions.

    /// An `expr` or `inner` pair.
    fn expr(&self, pair: Pair<Rule>) -> Expr {
        self.expr_built(pair).expr
    }

    fn expr_built(&self, pair: Pair<Rule>) -> Built {
        let span = self.span(&pair);
        let pairs = pair.into_inner();
        // The Pratt parser recurses once per prefix operator and per right-associative `^`;
        // bound that recursion before it starts.
        let recursive = pairs
            .clone()
            .filter(|p| matches!(p.as_rule(), Rule::neg | Rule::not | Rule::pow))
            .count();
        if recursive > MAX_NESTING {
            self.too_deep(span);
            return Built {
                expr: self.error_expr(span),
                depth: 1,
            };
        }
        pratt()
            .map_primary(|primary| self.primary(primary))
            .map_prefix(|op_pair, operand| {
                let span = self.span(&op_pair).to(operand.expr.span);
                let op = match op_pair.as_rule() {
                    Rule::not => UnaryOp::Not,
                    _ => UnaryOp::Neg,
                };
                self.node(
                    ExprKind::Unary {
                        op,
                        operand: Box::new(operand.expr),
                    },
                    span,
                    operand.depth,
                )
            })
            .map_infix(|lhs, op, rhs| {
                let op = binary_op(op.as_rule());
                let span = lhs.expr.span.to(rhs.expr.span);
                let depth = lhs.depth.max(rhs.depth);
                self.node(
                    ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs.expr),
                        rhs: Box::new(rhs.expr),
                    },
                    span,
                    depth,
                )
            })
            .map_postfix(|base, op| {
                let span = base.expr.span.to(self.span(&op));
                match op.as_rule() {
                    Rule::call_args => {
                        let (args, args_depth) = self.args(op);
                        let depth = args_depth.max(base.depth);
                        self.node(
                            ExprKind::Call {
                                callee: Box::new(base.expr),
                                args,
                            },
                            span,
                            depth,
                        )
                    }
                    _ => {
                        let mut depth = base.depth;
                        let indices = op
                            .into_inner()
                            .map(|item| {
                                let (item, item_depth) = self.index_item(item);
                                depth = depth.max(item_depth);
                                item
                            })
                            .collect();
                        self.node(
                            ExprKind::Index {
                                base: Box::new(base.expr),
                                indices,
                            },
                            span,
                            depth,
                        )
                    }
                }
            })
            .parse(pairs)
    }

    /// Makes a node one level deeper than its deepest child, or an error node past the limit.
    fn node(&self, kind: ExprKind, span: Span, child_depth: usize) -> Built {
        let depth = child_depth + 1;
        if depth > MAX_NESTING {
            self.too_deep(span);
            return Built {
                expr: self.error_expr(span),
                depth: 1,
            };
        }
        Built {
            expr: Expr {
                kind,
                span,
                id: self.id(),
            },
            depth,
        }
    }

    fn too_deep(&self, span: Span) {
        if self.depth_reported.replace(true) {
            return;
        }
        // Point at the end of the expression, where the limit is crossed, not at all of it.
        let end = span.range().end;
        let span = Span::new(span.file, end.saturating_sub(1)..end);
        self.report(
            Diagnostic::error("E0006", "nesting too deep")
                .with_label(
                    span,
                    format!("this expression is nested more than {MAX_NESTING} levels deep"),
                )
                .with_hint("split the expression with `let` bindings or helper functions"),
        );
    }

    /// The arguments of a `call_args` pair and the depth of the deepest one.
    fn args(&self, pair: Pair<Rule>) -> (Vec<Arg>, usize) {
        let mut depth = 0;
        let args = pair
            .into_inner()
            .map(|arg| {
                let span = self.span(&arg);
                match arg.as_rule() {
                    Rule::named_arg => {
                        let mut inner = arg.into_inner();
                        let name = inner.next().map(|name| self.ident(name));
                        let value = match inner.next() {
                            Some(value) => {
                                let built = self.expr_built(value);
                                depth = depth.max(built.depth);
                                built.expr
                            }
                            None => self.error_expr(span),
                        };
                        Arg {
                            span: name.as_ref().map_or(span, |n| n.span.to(value.span)),
                            name,
                            value,
                        }
                    }
                    _ => {
                        let built = self.expr_built(arg);
                        depth = depth.max(built.depth);
                        Arg {
                            span: built.expr.span,
                            name: None,
                            value: built.expr,
                        }
                    }
                }
            })
            .collect();
        (args, depth)
    }

    fn index_item(&self, pair: Pair<Rule>) -> (IndexItem, usize) {
        let span = self.span(&pair);
        let mut start = None;
        let mut end = None;
        let mut colon = false;
        let mut depth = 0;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::colon => colon = true,
                _ => {
                    let built = self.expr_built(inner);
                    depth = depth.max(built.depth);
                    if colon {
                        end = Some(built.expr);
                    } else {
                        start = Some(built.expr);
                    }
                }
            }
        }
        if colon {
            (IndexItem::Slice { start, end, span }, depth)
        } else {
            let value = start.unwrap_or_else(|| self.error_expr(span));
            (IndexItem::Expr(value), depth)
        }
    }

    fn primary(&self, pair: Pair<Rule>) -> Built {
        let span = self.span(&pair);
        let leaf = |kind| Built {
            expr: Expr {
                kind,
                span,
                id: self.id(),
            },
            depth: 1,
        };
        match pair.as_rule() {
            Rule::paren => match pair.into_inner().next() {
                Some(inner) => self.expr_built(inner),
                None => leaf(ExprKind::Error),
            },
            Rule::list => {
                let mut elements: Vec<Built> = Vec::new();
                let mut comprehension = None;
                for inner in pair.into_inner() {
                    match inner.as_rule() {
                        Rule::comprehension => comprehension = Some(inner),
                        _ => elements.push(self.expr_built(inner)),
                    }
                }
                let depth = elements.iter().map(|e| e.depth).max().unwrap_or(0);
                match (comprehension, elements.pop()) {
                    (Some(tail), Some(element)) => {
                        let mut inner = tail
                            .into_inner()
                            .filter(|p| !matches!(p.as_rule(), Rule::kw_for | Rule::kw_in));
                        match (inner.next(), inner.next()) {
                            (Some(var), Some(iter)) => {
                                let var = self.ident(var);
                                let iter = self.expr_built(iter);
                                let depth = depth.max(iter.depth);
                                self.node(
                                    ExprKind::Comprehension {
                                        element: Box::new(element.expr),
                                        var,
                                        iter: Box::new(iter.expr),
                                    },
                                    span,
                                    depth,
                                )
                            }
                            _ => leaf(ExprKind::Error),
                        }
                    }
                    (_, last) => {
                        elements.extend(last);
                        let elements = elements.into_iter().map(|e| e.expr).collect();
                        self.node(ExprKind::List(elements), span, depth)
                    }
                }
            }
            Rule::int => leaf(match self.int_value(pair.as_str(), span) {
                Some(value) => ExprKind::Int(value),
                None => ExprKind::Error,
            }),
            Rule::real => leaf(match pair.as_str().parse::<f64>() {
                Ok(value) if value.is_finite() => ExprKind::Real(value),
                _ => {
                    self.report(
                        Diagnostic::error("E0005", "real literal out of range")
                            .with_label(span, "this number is too large for a 64-bit float")
                            .with_hint("the largest finite real is about 1.8e308"),
                    );
                    ExprKind::Error
                }
            }),
            Rule::string => leaf(ExprKind::Str(self.string(pair))),
            Rule::boolean => leaf(ExprKind::Bool(pair.as_str() == "true")),
            Rule::none => leaf(ExprKind::None),
            Rule::ident => leaf(ExprKind::Name(pair.as_str().to_string())),
            _ => leaf(ExprKind::Error),
        }
    }

    fn int_value(&self, text: &str, span: Span) -> Option<i64> {
        match text.parse::<i64>() {
            Ok(value) => Some(value),
            Err(_) => {
                self.report(
                    Diagnostic::error("E0004", "integer literal out of range")
                        .with_label(span, "this does not fit in a 64-bit integer")
                        .with_hint(format!(
                            "integers range up to {}; write a real such as `1e40` for a large number",
                            i64::MAX
                        )),
                );
                None
            }
        }
    }

    /// A `string` pair: decodes escapes and splits out `{name}` interpolations.
    fn string(&self, pair: Pair<Rule>) -> StrLit {
        let span = self.span(&pair);
        let body = pair.into_inner().next();
        let (text, body_start) = match &body {
            Some(body) => (body.as_str(), self.span(body).start as usize),
            None => ("", span.start as usize + 1),
        };
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.char_indices().peekable();
        let error = |at: usize, length: usize, message: &str, hint: &str| {
            let start = body_start + at;
            self.report(
                Diagnostic::error("E0011", message.to_string())
                    .with_label(Span::new(self.file, start..start + length), "here")
                    .with_hint(hint.to_string()),
            );
        };
        while let Some((position, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '"')) => current.push('"'),
                    Some((_, '\\')) => current.push('\\'),
                    Some((_, 'n')) => current.push('\n'),
                    Some((_, 't')) => current.push('\t'),
                    Some((_, other)) => error(
                        position,
                        1 + other.len_utf8(),
                        &format!("unknown escape `\\{other}` in string"),
                        "the escapes are `\\\"`, `\\\\`, `\\n` and `\\t`",
                    ),
                    None => {}
                },
                '{' if chars.peek().map(|(_, next)| *next) == Some('{') => {
                    chars.next();
                    current.push('{');
                }
                '}' if chars.peek().map(|(_, next)| *next) == Some('}') => {
                    chars.next();
                    current.push('}');
                }
                '{' => {
                    let rest = &text[position + 1..];
                    let name_length = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let name = &rest[..name_length];
                    let valid = rest[name_length..].starts_with('}')
                        && name
                            .chars()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
                    if valid {
                        if !current.is_empty() {
                            parts.push(StrPart::Text(std::mem::take(&mut current)));
                        }
                        let start = body_start + position + 1;
                        parts.push(StrPart::Var(Ident {
                            name: name.to_string(),
                            span: Span::new(self.file, start..start + name_length),
                            id: self.id(),
                        }));
                        for _ in 0..name_length + 1 {
                            chars.next();
                        }
                    } else {
                        error(
                            position,
                            1,
                            "invalid interpolation in string",
                            "write `{name}` to insert a loop variable, or `{{` for a literal brace",
                        );
                    }
                }
                '}' => error(
                    position,
                    1,
                    "unmatched `}` in string",
                    "write `}}` for a literal brace",
                ),
                other => current.push(other),
            }
        }
        if !current.is_empty() || parts.is_empty() {
            parts.push(StrPart::Text(current));
        }
        StrLit { parts, span }
    }
}

fn binary_op(rule: Rule) -> BinaryOp {
    match rule {
        Rule::range => BinaryOp::Range,
        Rule::or => BinaryOp::Or,
        Rule::and => BinaryOp::And,
        Rule::eq => BinaryOp::Eq,
        Rule::ne => BinaryOp::Ne,
        Rule::lt => BinaryOp::Lt,
        Rule::le => BinaryOp::Le,
        Rule::gt => BinaryOp::Gt,
        Rule::ge => BinaryOp::Ge,
        Rule::add => BinaryOp::Add,
        Rule::sub => BinaryOp::Sub,
        Rule::mul => BinaryOp::Mul,
        Rule::div => BinaryOp::Div,
        Rule::rem => BinaryOp::Rem,
        Rule::matmul => BinaryOp::MatMul,
        _ => BinaryOp::Pow,
    }
}
