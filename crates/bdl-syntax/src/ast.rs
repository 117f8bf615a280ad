//! The typed syntax tree of a `.bdl` file, with a span on every node.
//!
//! The tree mirrors the grammar (`grammar/bdl.pest`) closely: parentheses are not kept (the
//! printer puts back the ones precedence needs), names are plain strings, and nothing is resolved.
//! Every expression and every identifier carries a [`NodeId`] that is unique within one parse, so
//! that later passes (name resolution, typing, lowering) can attach facts to nodes in side tables.
//! The depth of the tree is bounded by [`crate::MAX_NESTING`] expressions plus as many blocks;
//! the parser replaces anything deeper with an error node.

use bdl_diagnostics::Span;

/// Identifies one expression or identifier within a parsed program.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The id as an index into a side table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A parsed `.bdl` file.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    /// The items in source order.
    pub items: Vec<Item>,
    /// The whole file.
    pub span: Span,
    /// One more than the largest [`NodeId`] in the tree: the size side tables need.
    pub node_count: u32,
    /// Whether the parser met syntax errors and assembled this tree by error recovery; later
    /// passes then stay quiet about names that a broken statement may have defined.
    pub incomplete: bool,
}

impl Program {
    /// The first `data` block, if any.
    pub fn data(&self) -> Option<&DataBlock> {
        self.items.iter().find_map(|item| match item {
            Item::Data(data) => Some(data),
            _ => None,
        })
    }

    /// The first `model` block, if any.
    pub fn model(&self) -> Option<&ModelBlock> {
        self.items.iter().find_map(|item| match item {
            Item::Model(model) => Some(model),
            _ => None,
        })
    }

    /// The first `infer` block, if any.
    pub fn infer(&self) -> Option<&InferBlock> {
        self.items.iter().find_map(|item| match item {
            Item::Infer(infer) => Some(infer),
            _ => None,
        })
    }

    /// Every `network` declaration in source order.
    pub fn networks(&self) -> impl Iterator<Item = &NetworkDecl> {
        self.items.iter().filter_map(|item| match item {
            Item::Network(network) => Some(network),
            _ => None,
        })
    }

    /// Every `fn` definition in source order.
    pub fn functions(&self) -> impl Iterator<Item = &FnDecl> {
        self.items.iter().filter_map(|item| match item {
            Item::Function(function) => Some(function),
            _ => None,
        })
    }
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `data from "file" { ... }`.
    Data(DataBlock),
    /// `network name = Sequential(...)`.
    Network(NetworkDecl),
    /// `fn name(a, b) { ... }`.
    Function(FnDecl),
    /// `model { ... }`.
    Model(ModelBlock),
    /// `infer { key = value ... }`.
    Infer(InferBlock),
    /// An item that did not parse; a diagnostic was reported for it.
    Error(Span),
}

impl Item {
    /// The span of the whole item.
    pub fn span(&self) -> Span {
        match self {
            Item::Data(item) => item.span,
            Item::Network(item) => item.span,
            Item::Function(item) => item.span,
            Item::Model(item) => item.span,
            Item::Infer(item) => item.span,
            Item::Error(span) => *span,
        }
    }
}

/// A name as written, with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
    /// Its id for side tables (a binding introduced here is recorded against it).
    pub id: NodeId,
}

/// A string literal, split into text and interpolated names (`"w_{k}"`).
#[derive(Clone, Debug, PartialEq)]
pub struct StrLit {
    /// The pieces in order.
    pub parts: Vec<StrPart>,
    /// The literal including its quotes.
    pub span: Span,
}

impl StrLit {
    /// The text if the literal has no interpolation.
    pub fn as_plain(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                StrPart::Text(piece) => text.push_str(piece),
                StrPart::Var(_) => return None,
            }
        }
        Some(text)
    }

    /// The literal with every interpolation written as `{name}`, for messages and site patterns.
    pub fn pattern(&self) -> String {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                StrPart::Text(piece) => text.push_str(piece),
                StrPart::Var(ident) => {
                    text.push('{');
                    text.push_str(&ident.name);
                    text.push('}');
                }
            }
        }
        text
    }
}

/// One piece of a string literal.
#[derive(Clone, Debug, PartialEq)]
pub enum StrPart {
    /// Literal text, escapes already decoded.
    Text(String),
    /// `{name}`: the value of an integer variable, in decimal.
    Var(Ident),
}

/// `from "file"` or `from ["a", "b"]`: files of a data block or columns of a declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct Sources {
    /// The strings in order.
    pub items: Vec<StrLit>,
    /// Whether they were written as a bracketed list (kept so that printing round-trips).
    pub bracketed: bool,
    /// The whole `"file"` or `[...]`.
    pub span: Span,
}

/// `data from "file" { declarations }`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataBlock {
    /// The files named after `from`, if any.
    pub sources: Option<Sources>,
    /// Declarations and derived quantities in order.
    pub entries: Vec<DataEntry>,
    /// The whole block.
    pub span: Span,
}

/// One line of a data block.
#[derive(Clone, Debug, PartialEq)]
pub enum DataEntry {
    /// `name: type from "column"`.
    Decl(DataDecl),
    /// `let name = expr`: data derived once, before inference.
    Let(Let),
    /// A line that did not parse; a diagnostic was reported for it.
    Error(Span),
}

/// `name: type` with optional columns.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDecl {
    /// The declared name.
    pub name: Ident,
    /// Its type.
    pub ty: DataType,
    /// Columns (CSV) to read it from, when not the name itself.
    pub columns: Option<Sources>,
    /// The whole declaration.
    pub span: Span,
}

/// The base of a data type.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BaseType {
    /// `int`, or `int[n]` for an integer array.
    Int,
    /// `real`.
    Real,
    /// `vector` or `vector[n]`.
    Vector,
    /// `matrix` or `matrix[n, m]`.
    Matrix,
}

impl BaseType {
    /// The keyword as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseType::Int => "int",
            BaseType::Real => "real",
            BaseType::Vector => "vector",
            BaseType::Matrix => "matrix",
        }
    }
}

/// `vector<lower=0>[N]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataType {
    /// `int`, `real`, `vector` or `matrix`.
    pub base: BaseType,
    /// `lower=...`, a number or a name (possibly negated).
    pub lower: Option<Expr>,
    /// `upper=...`.
    pub upper: Option<Expr>,
    /// The sizes in brackets, if written.
    pub dims: Option<Vec<Dim>>,
    /// The whole type.
    pub span: Span,
}

/// One size in a data type.
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    /// A literal size.
    Int(i64, Span),
    /// A declared `int` or a size variable.
    Name(Ident),
}

impl Dim {
    /// Where the size is written.
    pub fn span(&self) -> Span {
        match self {
            Dim::Int(_, span) => *span,
            Dim::Name(ident) => ident.span,
        }
    }
}

/// `network name = expr`.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDecl {
    /// The network's name.
    pub name: Ident,
    /// The layer expression, e.g. `Sequential(Linear(1, 100), ReLU, Linear(100, 1))`.
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// `fn name(params) { body }`.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDecl {
    /// The function's name.
    pub name: Ident,
    /// Its parameters.
    pub params: Vec<Ident>,
    /// Its body.
    pub body: Block,
    /// The whole definition.
    pub span: Span,
}

/// `model { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelBlock {
    /// The statements of the model.
    pub body: Block,
    /// The whole block.
    pub span: Span,
}

/// `infer { key = value ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct InferBlock {
    /// The settings in order.
    pub settings: Vec<Setting>,
    /// The whole block.
    pub span: Span,
}

/// `key = value` in an `infer` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The option's name.
    pub key: Ident,
    /// Its value: a number, a string, `true`/`false` or a bare name such as `nuts`.
    pub value: Expr,
    /// The whole setting.
    pub span: Span,
}

/// `{ statements }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The statements in order.
    pub stmts: Vec<Stmt>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What kind of statement.
    pub kind: StmtKind,
    /// The whole statement.
    pub span: Span,
}

/// `let name = value`, or `let mut name = value` for a name that `name = ...` may re-bind.
#[derive(Clone, Debug, PartialEq)]
pub struct Let {
    /// Whether it was declared `let mut`.
    pub mutable: bool,
    /// The bound name.
    pub name: Ident,
    /// Its value.
    pub value: Expr,
    /// The whole statement.
    pub span: Span,
}

/// `name = value`: a new value for a `let mut` binding (loop-carried state).
#[derive(Clone, Debug, PartialEq)]
pub struct Assign {
    /// The name assigned.
    pub name: Ident,
    /// Its new value.
    pub value: Expr,
    /// The whole statement.
    pub span: Span,
}

/// The statements of bdl.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `let name = value` or `let mut name = value`.
    Let(Let),
    /// `name = value`.
    Assign(Assign),
    /// An expression evaluated for its effect, usually `observe(...)` or `sample(...)`.
    Expr(Expr),
    /// `plate(name, size, subsample = B, dim = -2) as i { ... }`.
    Plate(Plate),
    /// `if cond { ... } else { ... }`.
    If(If),
    /// `for k in a..b { ... }`.
    For(For),
    /// `return value` (function bodies only).
    Return(Expr),
    /// A statement that did not parse; a diagnostic was reported for it.
    Error,
}

/// A plate statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Plate {
    /// The arguments: name, size, then `subsample = B` and `dim = d`.
    pub args: Vec<Arg>,
    /// `as i`: the name bound to the plate's index vector.
    pub index: Option<Ident>,
    /// The plate's body.
    pub body: Block,
}

/// An `if` statement.
#[derive(Clone, Debug, PartialEq)]
pub struct If {
    /// The condition.
    pub condition: Expr,
    /// The block run when it holds.
    pub then_block: Block,
    /// `else { ... }` or `else if ...`.
    pub else_branch: Option<Else>,
    /// From `if` to the end of the last branch.
    pub span: Span,
}

/// The `else` part of an `if`.
#[derive(Clone, Debug, PartialEq)]
pub enum Else {
    /// `else { ... }`.
    Block(Block),
    /// `else if ...`.
    If(Box<If>),
}

/// A `for` loop over a range or a vector.
#[derive(Clone, Debug, PartialEq)]
pub struct For {
    /// The loop variable.
    pub var: Ident,
    /// What it runs over, usually `a..b`.
    pub iter: Expr,
    /// The loop body.
    pub body: Block,
}

/// An argument of a call: positional or `name = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// The name for named arguments.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
    /// The whole argument.
    pub span: Span,
}

/// An expression with its span and id.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// Its extent in the source.
    pub span: Span,
    /// Its id for side tables.
    pub id: NodeId,
}

/// The expressions of bdl.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal (fits in i64).
    Int(i64),
    /// A real literal (finite).
    Real(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `None`: a new axis when indexing.
    None,
    /// A string literal.
    Str(StrLit),
    /// A name: a variable, data, a function, a distribution, a layer or a constraint.
    Name(String),
    /// `[a, b, c]`.
    List(Vec<Expr>),
    /// `[element for var in iter]`.
    Comprehension {
        /// The expression evaluated for each value.
        element: Box<Expr>,
        /// The loop variable.
        var: Ident,
        /// What it runs over.
        iter: Box<Expr>,
    },
    /// `-x`, `not x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Its operand.
        operand: Box<Expr>,
    },
    /// `a + b`, `a @ b`, `a..b`, ….
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `f(args)`.
    Call {
        /// What is called (usually a name).
        callee: Box<Expr>,
        /// The arguments, positional first.
        args: Vec<Arg>,
    },
    /// `x[i, j]`, `x[a:b]`, `x[:, None]`.
    Index {
        /// What is indexed.
        base: Box<Expr>,
        /// One item per axis.
        indices: Vec<IndexItem>,
    },
    /// An expression that did not parse or was rejected while parsing; a diagnostic exists.
    Error,
}

/// One position inside `x[...]`.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// An index, an index vector or `None`.
    Expr(Expr),
    /// `a:b`, `a:`, `:b` or `:`.
    Slice {
        /// The first index, inclusive.
        start: Option<Expr>,
        /// The last index, exclusive.
        end: Option<Expr>,
        /// The whole slice.
        span: Span,
    },
}

/// Prefix operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `not x`.
    Not,
}

/// Infix operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a..b`, the integers from a up to b (exclusive).
    Range,
    /// `a or b`.
    Or,
    /// `a and b`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`, elementwise.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
    /// `@`, matrix product.
    MatMul,
    /// `^` or `**`, right-associative.
    Pow,
}

impl BinaryOp {
    /// The operator as the printer writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Range => "..",
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::MatMul => "@",
            BinaryOp::Pow => "^",
        }
    }

    /// Binding strength, higher binds tighter (the same order as the Pratt parser).
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Range => 1,
            BinaryOp::Or => 2,
            BinaryOp::And => 3,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 5,
            BinaryOp::Add | BinaryOp::Sub => 6,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 7,
            BinaryOp::MatMul => 8,
            BinaryOp::Pow => 10,
        }
    }

    /// Whether the operator groups to the right (`a ^ b ^ c` is `a ^ (b ^ c)`).
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }
}

impl UnaryOp {
    /// The operator as the printer writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Not => "not ",
        }
    }

    /// Binding strength on the scale of [`BinaryOp::precedence`].
    pub fn precedence(self) -> u8 {
        match self {
            UnaryOp::Not => 4,
            UnaryOp::Neg => 9,
        }
    }
}

/// Precedence of postfix calls and indexing, above every operator.
pub const POSTFIX_PRECEDENCE: u8 = 11;

impl Expr {
    /// The name if this is a plain name.
    pub fn as_name(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Name(name) => Some(name),
            _ => None,
        }
    }
}
