//! The checker: one walk over the tree that resolves names, infers static types and shapes, and
//! reports every problem it can prove before anything runs.
//!
//! It walks the data block, networks and functions first (so the model can use them in any
//! order), then the model, then the `infer` block. Nothing here fails: an unknown or
//! ill-typed expression gets the type `Unknown`, which silences follow-on errors. The recursion
//! follows the tree, whose depth the parser bounds; a depth counter guards it all the same.

mod builtins;
mod call;
mod data;
mod expr;
mod network;
mod plate;
mod scope;
mod settings;
mod sites;
mod statements;

use crate::catalogue::{
    self, Domain, EventShape, Param, SettingKind, ShapeRule, SiteFunction, SiteFunctionSpec,
};
use crate::types::{broadcast, Dim, Elem, Shape, Ty};
use crate::{
    Analysis, Binding, BindingId, BindingKind, CallInfo, Checked, ExprInfo, LayerInfo, NetworkInfo,
    PlateInfo, Reference, SettingValue, Site,
};
use bdl_diagnostics::{did_you_mean, Diagnostic, Span};
use bdl_syntax::{
    Arg, Assign, BaseType, BinaryOp, Block, DataEntry, Else, Expr, ExprKind, FnDecl, For, Ident,
    If, IndexItem, NodeId, Program, Stmt, StmtKind, StrLit, StrPart, UnaryOp, MAX_NESTING,
};
use std::collections::HashMap;

/// Where the walk is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Context {
    Data,
    Network,
    Function,
    Model,
}

/// A plate the walk is inside.
struct PlateFrame {
    name: String,
    dim: i64,
    size: Dim,
}

/// The parameters of `plate(...)`.
const PLATE_PARAMS: &[Param] = &[
    Param {
        names: &["name"],
        required: true,
        domain: Domain::SiteName,
    },
    Param {
        names: &["size"],
        required: true,
        domain: Domain::Any,
    },
    Param {
        names: &["subsample"],
        required: false,
        domain: Domain::Any,
    },
    Param {
        names: &["dim"],
        required: false,
        domain: Domain::Any,
    },
];

/// Arguments matched to parameters: for each parameter, the name used and the argument's index.
type Slots = Vec<Option<(&'static str, usize)>>;

pub(crate) struct Checker<'p> {
    program: &'p Program,
    analysis: Analysis,
    diagnostics: Vec<Diagnostic>,
    scopes: Vec<HashMap<String, BindingId>>,
    context: Context,
    plates: Vec<PlateFrame>,
    loop_vars: Vec<String>,
    /// For each `for` loop the walk is inside, the index of the scope its body opens.
    loop_scopes: Vec<usize>,
    current_function: Option<String>,
    function_has_sites: Vec<bool>,
    function_index: Option<usize>,
    site_names: Vec<(String, Span)>,
    constraint_arg: Option<NodeId>,
    depth: usize,
    depth_reported: bool,
}

impl<'p> Checker<'p> {
    pub(crate) fn new(program: &'p Program) -> Checker<'p> {
        let analysis = Analysis {
            exprs: vec![ExprInfo::default(); program.node_count as usize],
            ..Analysis::default()
        };
        Checker {
            program,
            analysis,
            diagnostics: Vec::new(),
            scopes: vec![HashMap::new()],
            context: Context::Model,
            plates: Vec::new(),
            loop_vars: Vec::new(),
            loop_scopes: Vec::new(),
            current_function: None,
            function_has_sites: Vec::new(),
            function_index: None,
            site_names: Vec::new(),
            constraint_arg: None,
            depth: 0,
            depth_reported: false,
        }
    }

    pub(crate) fn run(mut self) -> Checked {
        self.data();
        let functions: Vec<&FnDecl> = self.program.functions().collect();
        self.function_has_sites = vec![false; functions.len()];
        for (index, function) in functions.iter().enumerate() {
            let id = self.bind(
                &function.name,
                BindingKind::Function,
                Ty::Function(index),
                false,
            );
            self.analysis.bindings[id.0 as usize].uses = 1;
        }
        for network in self.program.networks() {
            self.context = Context::Network;
            let info = self.network(&network.value);
            let ty = Ty::Network {
                input: info.input.clone(),
                output: info.output.clone(),
            };
            let id = self.bind(&network.name, BindingKind::Network, ty, false);
            self.analysis.networks.insert(id, info);
        }
        for (index, function) in functions.iter().enumerate() {
            self.context = Context::Function;
            self.function_index = Some(index);
            self.current_function = Some(function.name.name.clone());
            self.scopes.push(HashMap::new());
            for param in &function.params {
                if self
                    .scopes
                    .last()
                    .is_some_and(|s| s.contains_key(&param.name))
                {
                    self.error(
                        Diagnostic::error(
                            "E0104",
                            format!("parameter `{}` is declared twice", param.name),
                        )
                        .with_label(param.span, "second declaration")
                        .with_hint("give each parameter its own name"),
                    );
                }
                self.bind(param, BindingKind::FnParam, Ty::Unknown, false);
            }
            self.block_statements(&function.body);
            self.scopes.pop();
        }
        self.function_index = None;
        self.current_function = None;
        if let Some(model) = self.program.model() {
            self.context = Context::Model;
            self.scopes.push(HashMap::new());
            self.block_statements(&model.body);
            self.scopes.pop();
        }
        if let Some(infer) = self.program.infer() {
            self.infer(infer);
        }
        self.unused_data();
        let mut diagnostics = self.diagnostics;
        diagnostics.sort_by_key(|d| d.primary_span().map(|span| (span.start, span.end)));
        Checked {
            analysis: self.analysis,
            diagnostics,
        }
    }
}

/// The number of an integer literal or a negated one.
fn integer_constant(expr: &Expr) -> Option<i64> {
    match &expr.kind {
        ExprKind::Int(value) => Some(*value),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => integer_constant(operand).and_then(i64::checked_neg),
        _ => None,
    }
}

/// The value of a numeric literal or a negated one.
fn constant(expr: &Expr) -> Option<f64> {
    match &expr.kind {
        ExprKind::Int(value) => Some(*value as f64),
        ExprKind::Real(value) => Some(*value),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => constant(operand).map(|value| -value),
        _ => None,
    }
}

/// A possibly negative axis as a position in `0..rank`.
fn normalise_axis(axis: i64, rank: usize) -> Option<usize> {
    let rank = i64::try_from(rank).ok()?;
    let position = if axis < 0 { rank + axis } else { axis };
    (0..rank).contains(&position).then_some(position as usize)
}

/// Shapes laid end to end; unknown if any is unknown.
fn concat_shapes(shapes: &[&Shape]) -> Shape {
    let mut dims = Vec::new();
    for shape in shapes {
        match shape {
            Shape::Known(part) => dims.extend(part.iter().cloned()),
            Shape::Unknown => return Shape::Unknown,
        }
    }
    Shape::Known(dims)
}

/// "1 argument", "3 arguments".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
