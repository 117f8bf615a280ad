//! The trace IR: a checked program with every name resolved to a slot, every call resolved to
//! what it calls with its arguments in parameter order, and the static type and shape of every
//! expression recorded.
//!
//! The IR keeps the structure of the source (blocks, plates, `if`, `for`) because the runtime
//! interprets it under effect handlers, as Pyro runs a Python model: a run of the model is a
//! trace of addressed sites (`sample`, `observe`, `param`, `deterministic`) and the tensor ops
//! between them. Nothing here depends on tensors; [`crate::lower`] builds it and its
//! [`std::fmt::Display`] prints it (`bdlc check --emit ir`).

use crate::catalogue::{ConstraintSpec, DistributionSpec, FunctionSpec, SiteFunction};
use crate::types::Ty;
use crate::{BindingKind, SettingValue};
use bdl_diagnostics::Span;
use bdl_syntax::{BaseType, BinaryOp, UnaryOp};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// A slot holds one bound name's value while the program runs; slot `i` is binding `i` of the
/// checker's analysis.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u32);

impl SlotId {
    /// The slot as an index into a frame of values.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A lowered program.
#[derive(Clone, Debug)]
pub struct Program {
    /// One entry per slot: the bound name and what the checker knows of it.
    pub slots: Vec<Slot>,
    /// The files named after `data from`, relative to the model file.
    pub data_files: Vec<FileRef>,
    /// The data declarations in order.
    pub data: Vec<DataDecl>,
    /// The `let` statements of the data block, run once after the data are read.
    pub data_lets: Vec<Stmt>,
    /// The network declarations.
    pub networks: Vec<Network>,
    /// The user functions, indexed as [`Ty::Function`] numbers them.
    pub functions: Vec<Function>,
    /// The model block.
    pub model: Vec<Stmt>,
    /// The `infer` block's settings.
    pub settings: BTreeMap<String, SettingValue>,
}

/// A bound name.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// The name as written.
    pub name: String,
    /// What introduced it.
    pub kind: BindingKind,
    /// Where it is introduced.
    pub span: Span,
    /// Its static type.
    pub ty: Ty,
}

/// A file named in the model.
#[derive(Clone, Debug, PartialEq)]
pub struct FileRef {
    /// The path as written.
    pub path: String,
    /// Where it is written.
    pub span: Span,
}

/// One declaration of the data block.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDecl {
    /// The slot the value goes into.
    pub slot: SlotId,
    /// The declared name (also the default CSV column and JSON key).
    pub name: String,
    /// `int`, `real`, `vector` or `matrix`; `int` with dimensions is an integer array.
    pub base: BaseType,
    /// The declared sizes, outermost first; empty for scalars.
    pub dims: Vec<DataDim>,
    /// The declared lower bound.
    pub lower: Option<DataBound>,
    /// The declared upper bound.
    pub upper: Option<DataBound>,
    /// Where a CSV file holds it.
    pub columns: Columns,
    /// The declaration.
    pub span: Span,
    /// The declaration's type, for labels.
    pub type_span: Span,
}

impl DataDecl {
    /// Whether the elements must be integers.
    pub fn is_integer(&self) -> bool {
        self.base == BaseType::Int
    }

    /// The rank of the value: 0 for scalars, 1 for vectors and int arrays, 2 for matrices.
    pub fn rank(&self) -> usize {
        match self.base {
            BaseType::Real => 0,
            BaseType::Int => usize::from(!self.dims.is_empty()),
            BaseType::Vector => 1,
            BaseType::Matrix => 2,
        }
    }

    /// The type as written, e.g. `vector<lower=0>[J]`.
    pub fn type_text(&self, slots: &[Slot]) -> String {
        let mut text = self.base.as_str().to_string();
        let mut bounds = Vec::new();
        if let Some(lower) = &self.lower {
            bounds.push(format!("lower={}", lower.text(slots)));
        }
        if let Some(upper) = &self.upper {
            bounds.push(format!("upper={}", upper.text(slots)));
        }
        if !bounds.is_empty() {
            let _ = write!(text, "<{}>", bounds.join(", "));
        }
        if !self.dims.is_empty() {
            let dims: Vec<String> = self.dims.iter().map(|dim| dim.text(slots)).collect();
            let _ = write!(text, "[{}]", dims.join(", "));
        }
        text
    }
}

/// A bound of a data declaration: a number, or a declared `int` (`int<upper=K>[N]`).
#[derive(Clone, Debug, PartialEq)]
pub enum DataBound {
    /// A literal number.
    Value(f64),
    /// The value of a declared integer or size variable.
    Slot(SlotId),
}

impl DataBound {
    fn text(&self, slots: &[Slot]) -> String {
        match self {
            DataBound::Value(value) => value.to_string(),
            DataBound::Slot(slot) => slot_name(slots, *slot),
        }
    }
}

/// One declared size of a data declaration.
#[derive(Clone, Debug, PartialEq)]
pub enum DataDim {
    /// A literal size.
    Fixed(usize),
    /// A declared `int` or a size variable, held in a slot.
    Slot(SlotId),
    /// Not written: any size.
    Any,
}

impl DataDim {
    fn text(&self, slots: &[Slot]) -> String {
        match self {
            DataDim::Fixed(size) => size.to_string(),
            DataDim::Slot(slot) => slot_name(slots, *slot),
            DataDim::Any => "_".to_string(),
        }
    }
}

/// Which CSV columns hold a declaration.
#[derive(Clone, Debug, PartialEq)]
pub enum Columns {
    /// The column named like the declaration.
    Own,
    /// These columns, in order (a matrix takes one column per entry).
    Names(Vec<String>),
    /// Every column whose name starts with this prefix, in file order (`from "x*"`).
    Prefix(String),
}

/// A network declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Its slot.
    pub slot: SlotId,
    /// Its name.
    pub name: String,
    /// The layers of its `Sequential`, in order.
    pub layers: Vec<Layer>,
    /// The declaration.
    pub span: Span,
}

/// One layer of a network.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `Linear(input, output)`: `x @ W + b` with `W: [input, output]`.
    Linear {
        /// The layer's index in `Sequential` (used in site names).
        index: usize,
        /// Input width.
        input: usize,
        /// Output width.
        output: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// An activation applied elementwise (or along the last axis for the softmaxes).
    Activation {
        /// The layer's index in `Sequential`.
        index: usize,
        /// Which activation.
        kind: Activation,
    },
    /// `Conv1d`/`Conv2d`: a cross-correlation of a channels-first input `[N, input, S…]` with a
    /// weight `[output, input, kernel…]` (PyTorch's layout) and a bias `[output]`.
    Conv {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The number of spatial axes (1 or 2).
        dims: usize,
        /// Input channels.
        input: usize,
        /// Output channels.
        output: usize,
        /// The kernel's extent along every spatial axis.
        kernel: usize,
        /// The step between windows.
        stride: usize,
        /// Zeros added at both ends of every spatial axis.
        padding: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// `MaxPool1d`/`MaxPool2d`/`AvgPool1d`/`AvgPool2d` over windows of each channel.
    Pool {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The number of spatial axes (1 or 2).
        dims: usize,
        /// Maximum or average.
        kind: PoolKind,
        /// The window's extent along every spatial axis.
        kernel: usize,
        /// The step between windows.
        stride: usize,
    },
    /// `Flatten`: every axis after the batch axis into one.
    Flatten {
        /// The layer's index in `Sequential`.
        index: usize,
    },
    /// `Unflatten(shape = [...])`: the features of each row as a tensor of this shape (an image
    /// stored as a row of pixels becomes `[channels, height, width]`).
    Unflatten {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The shape of one row.
        shape: Vec<usize>,
    },
    /// `Dropout(p)`: each element zeroed with probability `p` and the rest scaled by
    /// 1/(1 − p), with a fresh mask at every stochastic evaluation (MC dropout).
    Dropout {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The probability of dropping an element.
        p: f64,
    },
    /// `Embedding(count, dim)`: integer indices to rows of a `[count, dim]` table.
    Embedding {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The number of rows.
        count: usize,
        /// The width of a row.
        dim: usize,
    },
    /// `LayerNorm(features)`: each row normalised over its last axis, then scaled and shifted.
    LayerNorm {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The extent of the last axis.
        features: usize,
    },
    /// `BatchNorm1d`/`BatchNorm2d`: each channel normalised with the statistics of the batch
    /// it is called on (over the batch and spatial axes), then scaled and shifted.
    BatchNorm {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The number of channels (axis 1).
        features: usize,
    },
    /// `Residual(layer)`: `x + f(x)`, with `f` a layer or a `Sequential`.
    Residual {
        /// The layer's index in `Sequential`.
        index: usize,
        /// The layers of `f`, numbered from 0 inside it.
        layers: Vec<Layer>,
    },
}

/// Maximum or average pooling.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest element of each window.
    Max,
    /// The mean of each window.
    Avg,
}

/// What a layer parameter is, which decides its prior under `lift` and its start under
/// `module`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum ParameterRole {
    /// A weight (PyTorch's `weight`): the weight prior; under `module`, uniform in ±1/√fan_in.
    Weight,
    /// A bias: the bias prior; under `module`, uniform in ±1/√fan_in.
    Bias,
    /// An embedding table: the weight prior; under `module`, standard normal (PyTorch's start).
    Table,
    /// A normalisation layer's scale (PyTorch's `weight`): the weight prior; under `module`, 1.
    Scale,
    /// A normalisation layer's shift (PyTorch's `bias`): the bias prior; under `module`, 0.
    Shift,
}

/// One tensor of weights of a layer: its site-name suffix, shape and role.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParameter {
    /// The layer's path: its index, preceded by the index of each enclosing `Residual`
    /// (`"2"`, `"3_0"`).
    pub path: String,
    /// `weight` or `bias` (PyTorch's names).
    pub name: &'static str,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// How many inputs feed one output of the layer (for fan-in scaled priors and starts).
    pub fan_in: usize,
    /// What the tensor is.
    pub role: ParameterRole,
}

impl LayerParameter {
    /// The site name of this parameter in a network lifted (or registered) as `network`.
    pub fn site(&self, network: &str) -> String {
        format!("{network}_{}_{}", self.path, self.name)
    }
}

impl Layer {
    /// The layer's index in its `Sequential`.
    pub fn index(&self) -> usize {
        match self {
            Layer::Linear { index, .. }
            | Layer::Activation { index, .. }
            | Layer::Conv { index, .. }
            | Layer::Pool { index, .. }
            | Layer::Flatten { index }
            | Layer::Unflatten { index, .. }
            | Layer::Dropout { index, .. }
            | Layer::Embedding { index, .. }
            | Layer::LayerNorm { index, .. }
            | Layer::BatchNorm { index, .. }
            | Layer::Residual { index, .. } => *index,
        }
    }

    /// The layer's parameters in the order lifting creates their sites (nested layers of a
    /// `Residual` included), with `prefix` put before the layer's index in each path.
    pub fn parameters(&self, prefix: &str) -> Vec<LayerParameter> {
        let path = format!("{prefix}{}", self.index());
        let parameter = |name, shape: Vec<usize>, fan_in, role| LayerParameter {
            path: path.clone(),
            name,
            shape,
            fan_in,
            role,
        };
        let mut out = Vec::new();
        match self {
            Layer::Linear {
                input,
                output,
                bias,
                ..
            } => {
                out.push(parameter(
                    "weight",
                    vec![*input, *output],
                    *input,
                    ParameterRole::Weight,
                ));
                if *bias {
                    out.push(parameter(
                        "bias",
                        vec![*output],
                        *input,
                        ParameterRole::Bias,
                    ));
                }
            }
            Layer::Conv {
                dims,
                input,
                output,
                kernel,
                bias,
                ..
            } => {
                let mut shape = vec![*output, *input];
                shape.extend(std::iter::repeat_n(*kernel, *dims));
                let fan_in = input * kernel.pow(*dims as u32);
                out.push(parameter("weight", shape, fan_in, ParameterRole::Weight));
                if *bias {
                    out.push(parameter(
                        "bias",
                        vec![*output],
                        fan_in,
                        ParameterRole::Bias,
                    ));
                }
            }
            Layer::Embedding { count, dim, .. } => {
                out.push(parameter(
                    "weight",
                    vec![*count, *dim],
                    1,
                    ParameterRole::Table,
                ));
            }
            Layer::LayerNorm { features, .. } | Layer::BatchNorm { features, .. } => {
                out.push(parameter(
                    "weight",
                    vec![*features],
                    1,
                    ParameterRole::Scale,
                ));
                out.push(parameter("bias", vec![*features], 1, ParameterRole::Shift));
            }
            Layer::Residual { layers, .. } => {
                let inner = format!("{path}_");
                for layer in layers {
                    out.extend(layer.parameters(&inner));
                }
            }
            Layer::Activation { .. }
            | Layer::Pool { .. }
            | Layer::Flatten { .. }
            | Layer::Unflatten { .. }
            | Layer::Dropout { .. } => {}
        }
        out
    }

    /// Whether the layer, or a layer nested in it, is only a `Linear` or an activation without
    /// a setting (the layers a device backend runs).
    pub fn is_dense(&self) -> bool {
        matches!(self, Layer::Linear { .. })
            || matches!(self, Layer::Activation { kind, .. } if kind.is_plain())
    }

    /// The layer as written in a network declaration (for printing the IR).
    pub fn describe(&self) -> String {
        match self {
            Layer::Linear {
                input,
                output,
                bias,
                ..
            } => format!(
                "Linear({input}, {output}{})",
                if *bias { "" } else { ", bias=false" }
            ),
            Layer::Activation { kind, .. } => kind.describe(),
            Layer::Conv {
                dims,
                input,
                output,
                kernel,
                stride,
                padding,
                bias,
                ..
            } => format!(
                "Conv{dims}d({input}, {output}, {kernel}, stride={stride}, padding={padding}{})",
                if *bias { "" } else { ", bias=false" }
            ),
            Layer::Pool {
                dims,
                kind,
                kernel,
                stride,
                ..
            } => format!(
                "{}Pool{dims}d({kernel}, stride={stride})",
                match kind {
                    PoolKind::Max => "Max",
                    PoolKind::Avg => "Avg",
                }
            ),
            Layer::Flatten { .. } => "Flatten".to_string(),
            Layer::Unflatten { shape, .. } => format!("Unflatten({shape:?})"),
            Layer::Dropout { p, .. } => format!("Dropout({p})"),
            Layer::Embedding { count, dim, .. } => format!("Embedding({count}, {dim})"),
            Layer::LayerNorm { features, .. } => format!("LayerNorm({features})"),
            Layer::BatchNorm { features, .. } => format!("BatchNorm({features})"),
            Layer::Residual { layers, .. } => format!(
                "Residual([{}])",
                layers
                    .iter()
                    .map(|layer| format!("{}: {}", layer.index(), layer.describe()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The activations a network can use.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// x for x ≥ 0, `slope`·x below.
    LeakyRelu {
        /// The slope below zero.
        slope: f64,
    },
    /// x for x ≥ 0, `alpha`·(eˣ − 1) below.
    Elu {
        /// The scale of the negative part.
        alpha: f64,
    },
    /// x·Φ(x), with Φ the standard normal distribution function.
    Gelu,
    /// x·σ(x) (swish).
    Silu,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + exp(−x)).
    Sigmoid,
    /// log(1 + exp(x)).
    Softplus,
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
}

impl Activation {
    /// The layer's name as written.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "ReLU",
            Activation::LeakyRelu { .. } => "LeakyReLU",
            Activation::Elu { .. } => "ELU",
            Activation::Gelu => "GELU",
            Activation::Silu => "SiLU",
            Activation::Tanh => "Tanh",
            Activation::Sigmoid => "Sigmoid",
            Activation::Softplus => "Softplus",
            Activation::Softmax => "Softmax",
            Activation::LogSoftmax => "LogSoftmax",
        }
    }

    /// The layer as written, with its setting where it has one.
    pub fn describe(self) -> String {
        match self {
            Activation::LeakyRelu { slope } => format!("LeakyReLU({slope})"),
            Activation::Elu { alpha } => format!("ELU({alpha})"),
            other => other.name().to_string(),
        }
    }

    /// Whether the activation is one of the six the first release had (those a device backend
    /// runs).
    pub fn is_plain(self) -> bool {
        matches!(
            self,
            Activation::Relu
                | Activation::Tanh
                | Activation::Sigmoid
                | Activation::Softplus
                | Activation::Softmax
                | Activation::LogSoftmax
        )
    }
}

/// A user function.
#[derive(Clone, Debug)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// The slots of its parameters.
    pub params: Vec<SlotId>,
    /// Its body.
    pub body: Vec<Stmt>,
    /// The definition.
    pub span: Span,
}

/// A statement.
#[derive(Clone, Debug)]
pub struct Stmt {
    /// What it does.
    pub kind: StmtKind,
    /// Where it is.
    pub span: Span,
}

/// The statements of the IR.
#[derive(Clone, Debug)]
pub enum StmtKind {
    /// Evaluates `value` into `slot`.
    Let {
        /// The slot written.
        slot: SlotId,
        /// The value.
        value: Expr,
    },
    /// `name = value`: evaluates `value` into the slot of a `let mut` binding, replacing the
    /// value it held (loop-carried state).
    Assign {
        /// The slot written.
        slot: SlotId,
        /// The new value, of the slot's static type.
        value: Expr,
    },
    /// Evaluates an expression for its effect (usually a site).
    Expr(Expr),
    /// A vectorised plate.
    Plate(Plate),
    /// `if condition { then } else { otherwise }`.
    If {
        /// A scalar condition.
        condition: Expr,
        /// Run when it holds.
        then_body: Vec<Stmt>,
        /// Run otherwise (empty without `else`).
        else_body: Vec<Stmt>,
    },
    /// `for var in iter { body }`.
    For {
        /// The loop variable's slot.
        var: SlotId,
        /// A range or a vector.
        iter: Expr,
        /// The body.
        body: Vec<Stmt>,
    },
    /// `return value` in a function.
    Return(Expr),
}

/// A plate.
#[derive(Clone, Debug)]
pub struct Plate {
    /// The plate's name.
    pub name: String,
    /// Its full size (an integer scalar).
    pub size: Expr,
    /// The mini-batch size under `subsample`.
    pub subsample: Option<Expr>,
    /// The batch dimension it occupies, negative (−1 is the rightmost).
    pub dim: i64,
    /// The slot of `as i`, bound to the index vector (the mini-batch under `subsample`).
    pub index: Option<SlotId>,
    /// The body.
    pub body: Vec<Stmt>,
}

/// An expression with its static facts.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it computes.
    pub kind: ExprKind,
    /// Where it is written.
    pub span: Span,
    /// Its static type and shape.
    pub ty: Ty,
    /// Whether it depends on a sample or param site.
    pub latent: bool,
}

/// The expressions of the IR.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// An integer literal.
    Int(i64),
    /// A real literal.
    Real(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `None` in indexing.
    NewAxis,
    /// A string (site names interpolate slots).
    Str(SiteName),
    /// The value in a slot.
    Slot(SlotId),
    /// `[a, b, c]`: stacked on a new first axis.
    List(Vec<Expr>),
    /// `[element for var in iter]`.
    Comprehension {
        /// The loop variable.
        var: SlotId,
        /// What it runs over.
        iter: Box<Expr>,
        /// The element.
        element: Box<Expr>,
    },
    /// `a..b`.
    Range {
        /// First value.
        start: Box<Expr>,
        /// One past the last value.
        end: Box<Expr>,
    },
    /// `-x`, `not x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// Arithmetic, comparisons, logic, `@`.
    Binary {
        /// The operator (never `Range`).
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// A built-in function.
    Builtin {
        /// Which one.
        spec: &'static FunctionSpec,
        /// Its arguments by parameter name, in parameter order.
        args: Vec<Arg>,
    },
    /// A distribution such as `Normal(0, 1)`.
    Distribution {
        /// Which one.
        spec: &'static DistributionSpec,
        /// Its arguments by parameter name (the alternative used), in parameter order.
        args: Vec<Arg>,
    },
    /// A constraint such as `positive` or `interval(0, 1)`.
    Constraint {
        /// Which one.
        spec: &'static ConstraintSpec,
        /// Its arguments.
        args: Vec<Arg>,
    },
    /// A call of a user function.
    CallFunction {
        /// Its index in [`Program::functions`].
        function: usize,
        /// Positional arguments.
        args: Vec<Expr>,
    },
    /// A call of a lifted network on an input.
    CallModule {
        /// The lifted network (`lift(...)` or `module(...)`, usually a slot).
        module: Box<Expr>,
        /// The input.
        input: Box<Expr>,
    },
    /// `base[items]`.
    Index {
        /// What is indexed.
        base: Box<Expr>,
        /// One item per axis.
        items: Vec<IndexItem>,
    },
    /// A site: `sample`, `observe`, `param`, `deterministic`, `lift`, `module`.
    Site {
        /// Which site function.
        kind: SiteFunction,
        /// The site's name.
        name: SiteName,
        /// The other arguments by parameter name.
        args: Vec<Arg>,
    },
}

/// A call argument matched to its parameter.
#[derive(Clone, Debug)]
pub struct Arg {
    /// The parameter's name (for alternatives, the one used: `logits`).
    pub name: String,
    /// The value.
    pub value: Expr,
}

/// Looks up an argument by name.
pub fn arg<'a>(args: &'a [Arg], name: &str) -> Option<&'a Expr> {
    args.iter()
        .find(|arg| arg.name == name)
        .map(|arg| &arg.value)
}

/// One item of an index expression.
#[derive(Clone, Debug)]
pub enum IndexItem {
    /// An integer, an integer vector (gather) or `None` (new axis).
    Expr(Expr),
    /// `start:end`, either end optional.
    Slice {
        /// First index, inclusive.
        start: Option<Expr>,
        /// Last index, exclusive.
        end: Option<Expr>,
    },
}

/// A site name: text with interpolated integer slots (`"w_{k}"`).
#[derive(Clone, Debug, PartialEq)]
pub struct SiteName {
    /// The pieces in order.
    pub parts: Vec<NamePart>,
}

impl SiteName {
    /// A name without interpolation.
    pub fn plain(text: impl Into<String>) -> SiteName {
        SiteName {
            parts: vec![NamePart::Text(text.into())],
        }
    }

    /// The name if it has no interpolation.
    pub fn as_plain(&self) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                NamePart::Text(piece) => text.push_str(piece),
                NamePart::Slot(_) => return None,
            }
        }
        Some(text)
    }
}

/// One piece of a site name.
#[derive(Clone, Debug, PartialEq)]
pub enum NamePart {
    /// Literal text.
    Text(String),
    /// The decimal value of an integer slot.
    Slot(SlotId),
}

fn slot_name(slots: &[Slot], slot: SlotId) -> String {
    slots
        .get(slot.index())
        .map_or_else(|| format!("%{}", slot.0), |s| s.name.clone())
}

/// Prints the IR in a compact, readable form: slots as `name%id`, calls with named arguments.
struct Printer<'a> {
    program: &'a Program,
    out: String,
    indent: usize,
}

impl Printer<'_> {
    fn slot(&self, slot: SlotId) -> String {
        format!("{}%{}", slot_name(&self.program.slots, slot), slot.0)
    }

    fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn block(&mut self, stmts: &[Stmt]) {
        self.indent += 1;
        for stmt in stmts {
            self.stmt(stmt);
        }
        self.indent -= 1;
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Let { slot, value } => {
                let text = format!(
                    "{} = {}  : {}",
                    self.slot(*slot),
                    self.expr(value),
                    describe(value)
                );
                self.line(&text);
            }
            StmtKind::Assign { slot, value } => {
                let text = format!(
                    "{} := {}  : {}",
                    self.slot(*slot),
                    self.expr(value),
                    describe(value)
                );
                self.line(&text);
            }
            StmtKind::Expr(value) => {
                let text = self.expr(value);
                self.line(&text);
            }
            StmtKind::Plate(plate) => {
                let mut header = format!("plate {:?} size={}", plate.name, self.expr(&plate.size));
                if let Some(batch) = &plate.subsample {
                    let _ = write!(header, " subsample={}", self.expr(batch));
                }
                let _ = write!(header, " dim={}", plate.dim);
                if let Some(index) = plate.index {
                    let _ = write!(header, " index={}", self.slot(index));
                }
                header.push_str(" {");
                self.line(&header);
                self.block(&plate.body);
                self.line("}");
            }
            StmtKind::If {
                condition,
                then_body,
                else_body,
            } => {
                let header = format!("if {} {{", self.expr(condition));
                self.line(&header);
                self.block(then_body);
                if !else_body.is_empty() {
                    self.line("} else {");
                    self.block(else_body);
                }
                self.line("}");
            }
            StmtKind::For { var, iter, body } => {
                let header = format!("for {} in {} {{", self.slot(*var), self.expr(iter));
                self.line(&header);
                self.block(body);
                self.line("}");
            }
            StmtKind::Return(value) => {
                let text = format!("return {}", self.expr(value));
                self.line(&text);
            }
        }
    }

    fn args(&self, args: &[Arg]) -> String {
        let parts: Vec<String> = args
            .iter()
            .map(|arg| format!("{}={}", arg.name, self.expr(&arg.value)))
            .collect();
        parts.join(", ")
    }

    fn site_name(&self, name: &SiteName) -> String {
        let mut text = String::from("\"");
        for part in &name.parts {
            match part {
                NamePart::Text(piece) => text.push_str(piece),
                NamePart::Slot(slot) => {
                    let _ = write!(text, "{{{}}}", self.slot(*slot));
                }
            }
        }
        text.push('"');
        text
    }

    fn expr(&self, expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Int(value) => value.to_string(),
            ExprKind::Real(value) => format!("{value:?}"),
            ExprKind::Bool(value) => value.to_string(),
            ExprKind::NewAxis => "None".to_string(),
            ExprKind::Str(name) => self.site_name(name),
            ExprKind::Slot(slot) => self.slot(*slot),
            ExprKind::List(items) => {
                let items: Vec<String> = items.iter().map(|item| self.expr(item)).collect();
                format!("[{}]", items.join(", "))
            }
            ExprKind::Comprehension { var, iter, element } => format!(
                "[{} for {} in {}]",
                self.expr(element),
                self.slot(*var),
                self.expr(iter)
            ),
            ExprKind::Range { start, end } => format!("({}..{})", self.expr(start), self.expr(end)),
            ExprKind::Unary { op, operand } => format!("({}{})", op.as_str(), self.expr(operand)),
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", self.expr(lhs), op.as_str(), self.expr(rhs))
            }
            ExprKind::Builtin { spec, args } => format!("{}({})", spec.name, self.args(args)),
            ExprKind::Distribution { spec, args } => format!("{}({})", spec.name, self.args(args)),
            ExprKind::Constraint { spec, args } => {
                if args.is_empty() {
                    spec.name.to_string()
                } else {
                    format!("{}({})", spec.name, self.args(args))
                }
            }
            ExprKind::CallFunction { function, args } => {
                let name = self
                    .program
                    .functions
                    .get(*function)
                    .map_or("?", |f| f.name.as_str());
                let args: Vec<String> = args.iter().map(|arg| self.expr(arg)).collect();
                format!("{name}({})", args.join(", "))
            }
            ExprKind::CallModule { module, input } => {
                format!("{}({})", self.expr(module), self.expr(input))
            }
            ExprKind::Index { base, items } => {
                let items: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        IndexItem::Expr(value) => self.expr(value),
                        IndexItem::Slice { start, end } => format!(
                            "{}:{}",
                            start.as_ref().map(|e| self.expr(e)).unwrap_or_default(),
                            end.as_ref().map(|e| self.expr(e)).unwrap_or_default()
                        ),
                    })
                    .collect();
                format!("{}[{}]", self.expr(base), items.join(", "))
            }
            ExprKind::Site { kind, name, args } => {
                let keyword = match kind {
                    SiteFunction::Sample => "sample",
                    SiteFunction::Observe => "observe",
                    SiteFunction::Param => "param",
                    SiteFunction::Deterministic => "deterministic",
                    SiteFunction::Lift => "lift",
                    SiteFunction::Module => "module",
                    SiteFunction::Factor => "factor",
                };
                let rest = self.args(args);
                if rest.is_empty() {
                    format!("{keyword}({})", self.site_name(name))
                } else {
                    format!("{keyword}({}, {rest})", self.site_name(name))
                }
            }
        }
    }
}

/// The static type of an expression, with `latent` marked.
fn describe(expr: &Expr) -> String {
    let ty = match &expr.ty {
        Ty::Tensor { elem, shape } => format!("{elem}{shape}"),
        other => other.describe(),
    };
    if expr.latent {
        format!("{ty} latent")
    } else {
        ty
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = Printer {
            program: self,
            out: String::new(),
            indent: 0,
        };
        if !self.data_files.is_empty() || !self.data.is_empty() {
            let files: Vec<String> = self
                .data_files
                .iter()
                .map(|file| format!("{:?}", file.path))
                .collect();
            printer.line(&format!("data from [{}] {{", files.join(", ")));
            printer.indent += 1;
            for decl in &self.data {
                let columns = match &decl.columns {
                    Columns::Own => String::new(),
                    Columns::Names(names) => format!(" columns {names:?}"),
                    Columns::Prefix(prefix) => format!(" columns {prefix:?}*"),
                };
                let text = format!(
                    "{}: {}{columns}",
                    printer.slot(decl.slot),
                    decl.type_text(&self.slots)
                );
                printer.line(&text);
            }
            for stmt in &self.data_lets {
                printer.stmt(stmt);
            }
            printer.indent -= 1;
            printer.line("}");
        }
        for network in &self.networks {
            let layers: Vec<String> = network
                .layers
                .iter()
                .map(|layer| format!("{}: {}", layer.index(), layer.describe()))
                .collect();
            let text = format!(
                "network {} = [{}]",
                printer.slot(network.slot),
                layers.join(", ")
            );
            printer.line(&text);
        }
        for function in &self.functions {
            let params: Vec<String> = function.params.iter().map(|p| printer.slot(*p)).collect();
            printer.line(&format!("fn {}({}) {{", function.name, params.join(", ")));
            printer.block(&function.body);
            printer.line("}");
        }
        printer.line("model {");
        printer.block(&self.model);
        printer.line("}");
        if !self.settings.is_empty() {
            printer.line("infer {");
            printer.indent += 1;
            for (key, value) in &self.settings {
                let value = match value {
                    SettingValue::Int(v) => v.to_string(),
                    SettingValue::Real(v) => format!("{v:?}"),
                    SettingValue::Name(v) => v.clone(),
                    SettingValue::Text(v) => format!("{v:?}"),
                    SettingValue::Bool(v) => v.to_string(),
                };
                printer.line(&format!("{key} = {value}"));
            }
            printer.indent -= 1;
            printer.line("}");
        }
        f.write_str(&printer.out)
    }
}
