//! The checker: one walk over the tree that resolves names, infers static types and shapes, and
//! reports every problem it can prove before anything runs.
//!
//! It walks the data block, networks and functions first (so the model can use them in any
//! order), then the model, then the `infer` block. Nothing here fails: an unknown or
//! ill-typed expression gets the type `Unknown`, which silences follow-on errors. The recursion
//! follows the tree, whose depth the parser bounds; a depth counter guards it all the same.

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
    Arg, BaseType, BinaryOp, Block, DataEntry, Else, Expr, ExprKind, FnDecl, Ident, If, IndexItem,
    NodeId, Program, Stmt, StmtKind, StrLit, StrPart, UnaryOp, MAX_NESTING,
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

    // -------------------------------------------------------------------------------------
    // Bindings and diagnostics.

    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn bind(&mut self, ident: &Ident, kind: BindingKind, ty: Ty, latent: bool) -> BindingId {
        let id = BindingId(u32::try_from(self.analysis.bindings.len()).unwrap_or(u32::MAX));
        self.analysis.bindings.push(Binding {
            name: ident.name.clone(),
            kind,
            span: ident.span,
            ty,
            latent,
            uses: 0,
        });
        self.analysis.definitions.insert(ident.id, id);
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(ident.name.clone(), id);
        }
        id
    }

    /// Binds a global name, reporting a duplicate.
    fn bind_global(&mut self, ident: &Ident, kind: BindingKind, ty: Ty) -> BindingId {
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
            uses: 0,
        });
        self.analysis.definitions.insert(ident.id, id);
        if let Some(scope) = self.scopes.first_mut() {
            scope.insert(ident.name.clone(), id);
        }
        id
    }

    fn lookup(&self, name: &str) -> Option<BindingId> {
        self.scopes
            .iter()
            .rev()
            .find_map(|scope| scope.get(name).copied())
    }

    fn resolve(&self, name: &str) -> Option<Reference> {
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

    fn unknown_name(&mut self, name: &str, span: Span) {
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

    fn use_binding(&mut self, id: BindingId) -> &Binding {
        let binding = &mut self.analysis.bindings[id.0 as usize];
        binding.uses += 1;
        binding
    }

    fn record(&mut self, expr: &Expr, info: ExprInfo) -> ExprInfo {
        let index = expr.id.index();
        if index >= self.analysis.exprs.len() {
            self.analysis.exprs.resize(index + 1, ExprInfo::default());
        }
        self.analysis.exprs[index] = info.clone();
        info
    }

    fn info_of(&self, expr: &Expr) -> ExprInfo {
        self.analysis
            .exprs
            .get(expr.id.index())
            .cloned()
            .unwrap_or_default()
    }

    // -------------------------------------------------------------------------------------
    // The data block.

    fn data(&mut self) {
        let Some(data) = self.program.data() else {
            return;
        };
        self.context = Context::Data;
        let declared: HashMap<&str, (BaseType, bool)> = data
            .entries
            .iter()
            .filter_map(|entry| match entry {
                DataEntry::Decl(decl) => Some((
                    decl.name.name.as_str(),
                    (decl.ty.base, decl.ty.dims.is_some()),
                )),
                _ => None,
            })
            .collect();
        // Declarations first, so that sizes may name `int`s declared further down.
        let mut size_vars: HashMap<String, BindingId> = HashMap::new();
        let mut pending_sizes: Vec<&Ident> = Vec::new();
        for entry in &data.entries {
            let DataEntry::Decl(decl) = entry else {
                continue;
            };
            let ty = &decl.ty;
            let dims: Vec<Dim> = ty
                .dims
                .iter()
                .flatten()
                .map(|dim| match dim {
                    bdl_syntax::Dim::Int(value, span) => {
                        if *value <= 0 {
                            self.error(
                                Diagnostic::error("E0207", "a size must be positive")
                                    .with_label(*span, format!("size {value}"))
                                    .with_hint(
                                        "write a positive integer or a size name such as `N`",
                                    ),
                            );
                        }
                        Dim::Const(*value)
                    }
                    bdl_syntax::Dim::Name(ident) => {
                        pending_sizes.push(ident);
                        Dim::Size(ident.name.clone())
                    }
                })
                .collect();
            let expected_rank = match ty.base {
                BaseType::Int => [0usize, 1].as_slice(),
                BaseType::Real => &[0],
                BaseType::Vector => &[1],
                BaseType::Matrix => &[2],
            };
            let shape = match &ty.dims {
                Some(_) => {
                    if !expected_rank.contains(&dims.len()) {
                        let wanted = match ty.base {
                            BaseType::Int => "`int` or `int[n]`",
                            BaseType::Real => "`real` without a size (use `vector[n]` for many)",
                            BaseType::Vector => "one size: `vector[n]`",
                            BaseType::Matrix => "two sizes: `matrix[n, m]`",
                        };
                        self.error(
                            Diagnostic::error(
                                "E0207",
                                format!("`{}` cannot have {} sizes", ty.base.as_str(), dims.len()),
                            )
                            .with_label(ty.span, "wrong number of sizes")
                            .with_hint(format!("write {wanted}")),
                        );
                    }
                    Shape::Known(dims)
                }
                None => match ty.base {
                    BaseType::Int | BaseType::Real => Shape::scalar(),
                    BaseType::Vector => Shape::Known(vec![Dim::Unknown]),
                    BaseType::Matrix => Shape::Known(vec![Dim::Unknown, Dim::Unknown]),
                },
            };
            for bound in [&ty.lower, &ty.upper].into_iter().flatten() {
                let info = self.expr(bound);
                if !matches!(info.ty, Ty::Tensor { ref shape, .. } if shape.is_scalar())
                    && info.ty != Ty::Unknown
                {
                    self.error(
                        Diagnostic::error("E0207", "a bound must be a number")
                            .with_label(bound.span, format!("found {}", info.ty.describe()))
                            .with_hint(
                                "write a literal such as `0` or the name of a declared `real`",
                            ),
                    );
                }
            }
            if let (Some(lower), Some(upper)) = (&ty.lower, &ty.upper) {
                if let (Some(low), Some(high)) = (constant(lower), constant(upper)) {
                    if low >= high {
                        self.error(
                            Diagnostic::error(
                                "E0207",
                                "the lower bound is not below the upper bound",
                            )
                            .with_label(ty.span, format!("lower={low}, upper={high}"))
                            .with_hint("swap the bounds or fix one of them"),
                        );
                    }
                }
            }
            let elem = if ty.base == BaseType::Int {
                Elem::Int
            } else {
                Elem::Real
            };
            self.bind_global(&decl.name, BindingKind::Data, Ty::Tensor { elem, shape });
        }
        for ident in pending_sizes {
            match declared.get(ident.name.as_str()) {
                Some((BaseType::Int, false)) => {
                    if let Some(id) = self.lookup(&ident.name) {
                        self.use_binding(id);
                        self.analysis.references.insert(ident.id, Reference::Binding(id));
                    }
                }
                Some(_) => self.error(
                    Diagnostic::error(
                        "E0210",
                        format!("size `{}` is not an integer", ident.name),
                    )
                    .with_label(ident.span, "used as a size here")
                    .with_hint(format!(
                        "a size is a literal, a declared `int`, or a new name; `{}` is declared with another type",
                        ident.name
                    )),
                ),
                None => {
                    let id = match size_vars.get(&ident.name) {
                        Some(id) => *id,
                        None => {
                            let id = self.bind_global(ident, BindingKind::SizeVar, Ty::int(Shape::scalar()));
                            size_vars.insert(ident.name.clone(), id);
                            id
                        }
                    };
                    self.analysis.references.insert(ident.id, Reference::Binding(id));
                }
            }
        }
        for entry in &data.entries {
            if let DataEntry::Let(binding) = entry {
                let info = self.expr(&binding.value);
                self.bind_global(&binding.name, BindingKind::DataLet, info.ty);
            }
        }
    }

    fn unused_data(&mut self) {
        let unused: Vec<(String, Span, BindingKind)> = self
            .analysis
            .bindings
            .iter()
            .filter(|b| matches!(b.kind, BindingKind::Data | BindingKind::DataLet) && b.uses == 0)
            .map(|b| (b.name.clone(), b.span, b.kind))
            .collect();
        if self.program.incomplete || self.program.model().is_none() {
            return;
        }
        for (name, span, kind) in unused {
            let what = if kind == BindingKind::Data {
                "data"
            } else {
                "derived data"
            };
            self.diagnostics.push(
                Diagnostic::warning(
                    "W0001",
                    format!("{what} `{name}` is declared but never used"),
                )
                .with_label(span, "never used")
                .with_hint("use it in the model, or remove the declaration"),
            );
        }
    }

    // -------------------------------------------------------------------------------------
    // Networks.

    fn network(&mut self, value: &Expr) -> NetworkInfo {
        let mut layers = Vec::new();
        match &value.kind {
            ExprKind::Call { callee, args } if callee.as_name() == Some("Sequential") => {
                self.reference_layer(callee);
                self.record(
                    callee,
                    ExprInfo {
                        ty: Ty::Builtin,
                        latent: false,
                    },
                );
                for (index, arg) in args.iter().enumerate() {
                    if let Some(name) = &arg.name {
                        self.error(
                            Diagnostic::error("E0103", "`Sequential` takes no named arguments")
                                .with_label(name.span, "named argument")
                                .with_hint("list the layers in order"),
                        );
                    }
                    if let Some(layer) = self.layer(&arg.value, index) {
                        layers.push(layer);
                    }
                }
            }
            _ => {
                if let Some(layer) = self.layer(value, 0) {
                    layers.push(layer);
                }
            }
        }
        // Consecutive sized layers must agree: the output of one is the input of the next.
        let mut previous: Option<&LayerInfo> = None;
        for layer in layers.iter().filter(|layer| layer.input.is_some()) {
            if let (Some(before), Some(input)) = (previous, &layer.input) {
                if let Some(output) = &before.output {
                    if output.conflicts(input) {
                        self.diagnostics.push(
                            Diagnostic::error("E0204", "network layer sizes do not chain")
                                .with_label(layer.span, format!("this layer takes {input} inputs"))
                                .with_secondary(
                                    before.span,
                                    format!("but the previous layer gives {output} outputs"),
                                )
                                .with_hint(format!(
                                    "make the sizes agree, e.g. `Linear({output}, ...)`"
                                )),
                        );
                    }
                }
            }
            previous = Some(layer);
        }
        let input = layers.iter().find_map(|layer| layer.input.clone());
        let output = layers.iter().rev().find_map(|layer| layer.output.clone());
        self.record(
            value,
            ExprInfo {
                ty: Ty::Network {
                    input: input.clone(),
                    output: output.clone(),
                },
                latent: false,
            },
        );
        NetworkInfo {
            layers,
            input,
            output,
        }
    }

    fn reference_layer(&mut self, name_expr: &Expr) {
        if let Some(spec) = name_expr.as_name().and_then(catalogue::layer) {
            self.analysis
                .references
                .insert(name_expr.id, Reference::Layer(spec));
        }
    }

    fn layer(&mut self, expr: &Expr, index: usize) -> Option<LayerInfo> {
        let (name_expr, args): (&Expr, &[Arg]) = match &expr.kind {
            ExprKind::Name(_) => (expr, &[]),
            ExprKind::Call { callee, args } if callee.as_name().is_some() => (callee, args),
            _ => {
                self.expr(expr);
                self.error(
                    Diagnostic::error("E0206", "expected a layer")
                        .with_label(expr.span, "not a layer")
                        .with_hint("layers are `Linear(in, out)`, `ReLU`, `Tanh`, `Sigmoid`, `Softplus`, `Softmax` and `LogSoftmax`"),
                );
                return None;
            }
        };
        let name = name_expr.as_name().unwrap_or_default();
        let Some(spec) = catalogue::layer(name) else {
            for arg in args {
                self.expr(&arg.value);
            }
            let suggestion = did_you_mean(name, catalogue::LAYERS.iter().map(|l| l.name));
            self.error(
                Diagnostic::error("E0101", format!("unknown layer `{name}`"))
                    .with_label(name_expr.span, "not a layer")
                    .with_hint(match suggestion {
                        Some(candidate) => format!("did you mean `{candidate}`?"),
                        None => "layers are `Linear(in, out)`, `ReLU`, `Tanh`, `Sigmoid`, `Softplus`, `Softmax` and `LogSoftmax`".to_string(),
                    }),
            );
            return None;
        };
        self.reference_layer(name_expr);
        if spec.name == "Sequential" {
            self.error(
                Diagnostic::error("E0206", "`Sequential` cannot be nested")
                    .with_label(expr.span, "nested here")
                    .with_hint("list every layer in one `Sequential(...)`"),
            );
            return None;
        }
        let infos: Vec<ExprInfo> = args.iter().map(|arg| self.expr(&arg.value)).collect();
        let slots = self.match_args(spec.name, spec.params, args, expr.span, "E0103", "E0102");
        self.record_call(expr, Reference::Layer(spec), &slots, args);
        let mut input = None;
        let mut output = None;
        let mut bias = spec.has_weights;
        for (slot, param) in slots.iter().zip(spec.params) {
            let Some((_, arg_index)) = slot else {
                continue;
            };
            let value = &args[*arg_index].value;
            match param.domain {
                Domain::Size => {
                    let dim = self.size_argument(value, &infos[*arg_index]);
                    if param.names[0] == "in_features" {
                        input = Some(dim);
                    } else {
                        output = Some(dim);
                    }
                }
                Domain::Bool => match value.kind {
                    ExprKind::Bool(flag) => bias = flag,
                    _ => self.error(
                        Diagnostic::error("E0206", "`bias` must be `true` or `false`")
                            .with_label(value.span, "not a literal boolean")
                            .with_hint("write `bias = false` to drop the bias"),
                    ),
                },
                _ => {}
            }
        }
        self.record(
            expr,
            ExprInfo {
                ty: Ty::Network {
                    input: input.clone(),
                    output: output.clone(),
                },
                latent: false,
            },
        );
        Some(LayerInfo {
            index,
            spec,
            input,
            output,
            bias: bias && spec.has_weights,
            span: expr.span,
        })
    }

    /// A size given as an argument: a positive integer literal or an integer name.
    fn size_argument(&mut self, value: &Expr, info: &ExprInfo) -> Dim {
        let is_int_scalar =
            matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.is_scalar());
        let non_positive = constant(value).is_some_and(|v| v <= 0.0);
        if non_positive || (!is_int_scalar && info.ty != Ty::Unknown) {
            self.error(
                Diagnostic::error("E0209", "a size must be a positive integer")
                    .with_label(value.span, format!("found {}", info.ty.describe()))
                    .with_hint("write a positive integer literal or an `int` from the data block"),
            );
            return Dim::Unknown;
        }
        self.dim_value(value)
    }

    /// The value of an integer expression as a dimension, where it is statically known.
    fn dim_value(&self, expr: &Expr) -> Dim {
        match &expr.kind {
            ExprKind::Int(value) => Dim::Const(*value),
            ExprKind::Name(name) => match self.analysis.references.get(&expr.id) {
                Some(Reference::Binding(id)) => {
                    let binding = &self.analysis.bindings[id.0 as usize];
                    let is_int_scalar = matches!(&binding.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.is_scalar());
                    if matches!(binding.kind, BindingKind::Data | BindingKind::SizeVar)
                        && is_int_scalar
                    {
                        Dim::Size(name.clone())
                    } else {
                        Dim::Unknown
                    }
                }
                _ => Dim::Unknown,
            },
            ExprKind::Call { callee, args } if callee.as_name() == Some("len") => args
                .first()
                .and_then(|arg| match self.info_of(&arg.value).ty.shape() {
                    Shape::Known(dims) => dims.first().cloned(),
                    Shape::Unknown => None,
                })
                .unwrap_or(Dim::Unknown),
            _ => Dim::Unknown,
        }
    }

    // -------------------------------------------------------------------------------------
    // Statements.

    fn block_statements(&mut self, block: &Block) {
        for stmt in &block.stmts {
            self.stmt(stmt);
        }
    }

    fn scoped_block(&mut self, block: &Block) {
        self.scopes.push(HashMap::new());
        self.block_statements(block);
        self.scopes.pop();
    }

    fn enter(&mut self, span: Span) -> bool {
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

    fn stmt(&mut self, stmt: &Stmt) {
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

    fn if_(&mut self, conditional: &If) {
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

    fn plate(&mut self, span: Span, plate: &bdl_syntax::Plate) {
        let infos: Vec<ExprInfo> = plate.args.iter().map(|arg| self.expr(&arg.value)).collect();
        let header = Span::new(span.file, span.range().start..span.range().start + 5);
        let slots = self.match_args("plate", PLATE_PARAMS, &plate.args, header, "E0103", "E0102");
        let arg =
            |slot: usize| slots[slot].map(|(_, index)| (&plate.args[index].value, &infos[index]));
        if self.context == Context::Data || self.context == Context::Network {
            self.error(
                Diagnostic::error("E0309", "plates belong in the model or a function")
                    .with_label(header, "not allowed here")
                    .with_hint("move the plate into `model { ... }`"),
            );
        }
        let name = match arg(0) {
            Some((value, _)) => self.site_name(value, "plate", true).unwrap_or_default(),
            None => String::new(),
        };
        let mut size = Dim::Unknown;
        if let Some((value, info)) = arg(1) {
            size = self.integer_size(value, info, "plate size", "E0203");
        }
        let mut subsample = None;
        if let Some((value, info)) = arg(2) {
            let batch = self.integer_size(value, info, "subsample size", "E0205");
            if let (Dim::Const(batch_size), Dim::Const(full)) = (&batch, &size) {
                if batch_size > full {
                    let size_span = arg(1).map_or(header, |(v, _)| v.span);
                    self.error(
                        Diagnostic::error(
                            "E0205",
                            format!(
                                "subsample of {batch_size} is larger than the plate's size {full}"
                            ),
                        )
                        .with_label(value.span, "subsample size")
                        .with_secondary(size_span, "plate size")
                        .with_hint("a mini-batch takes at most the plate's size"),
                    );
                }
            }
            subsample = Some(batch);
        }
        let mut dim = -(self.plates.len() as i64) - 1;
        if let Some((value, _)) = arg(3) {
            match constant(value) {
                Some(d) if d < 0.0 && d.fract() == 0.0 => dim = d as i64,
                _ => self.error(
                    Diagnostic::error("E0209", "`dim` must be a negative integer literal")
                        .with_label(value.span, "not a negative integer")
                        .with_hint(
                            "plates count dimensions from the right: `dim = -1`, `dim = -2`, …",
                        ),
                ),
            }
        }
        if let Some(other) = self.plates.iter().find(|frame| frame.dim == dim) {
            let message = format!("plates `{}` and `{name}` both use dim {dim}", other.name);
            self.error(
                Diagnostic::error("E0209", message)
                    .with_label(header, "this plate")
                    .with_hint("give nested plates different `dim`s"),
            );
        }
        let frame_size = subsample.clone().unwrap_or_else(|| size.clone());
        self.scopes.push(HashMap::new());
        let index = plate.index.as_ref().map(|ident| {
            self.bind(
                ident,
                BindingKind::PlateIndex,
                Ty::int(Shape::Known(vec![frame_size.clone()])),
                false,
            )
        });
        self.analysis.plates.insert(
            span,
            PlateInfo {
                name: name.clone(),
                size,
                subsample,
                dim,
                index,
            },
        );
        self.plates.push(PlateFrame {
            name,
            dim,
            size: frame_size,
        });
        self.block_statements(&plate.body);
        self.plates.pop();
        self.scopes.pop();
    }

    /// Checks an integer size argument (plate size, subsample) and returns its dimension.
    fn integer_size(&mut self, value: &Expr, info: &ExprInfo, what: &str, code: &str) -> Dim {
        let is_int_scalar = matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.rank().is_none_or(|r| r == 0));
        if !is_int_scalar && info.ty != Ty::Unknown {
            self.error(
                Diagnostic::error(code, format!("the {what} must be an integer"))
                    .with_label(value.span, format!("found {}", info.ty.describe()))
                    .with_hint("use an integer literal, an `int` from the data block, or `len(x)`"),
            );
            return Dim::Unknown;
        }
        if let ExprKind::Int(n) = value.kind {
            if n <= 0 {
                self.error(
                    Diagnostic::error(code, format!("the {what} must be positive"))
                        .with_label(value.span, format!("{n}"))
                        .with_hint("use a positive integer"),
                );
            }
        }
        self.dim_value(value)
    }

    /// The shape the enclosing plates give to a site's batch.
    fn plate_shape(&self) -> Shape {
        let rank = self
            .plates
            .iter()
            .map(|frame| frame.dim.unsigned_abs() as usize)
            .max()
            .unwrap_or(0);
        let mut dims = vec![Dim::Const(1); rank];
        for frame in &self.plates {
            dims[rank - frame.dim.unsigned_abs() as usize] = frame.size.clone();
        }
        Shape::Known(dims)
    }

    // -------------------------------------------------------------------------------------
    // The infer block.

    fn infer(&mut self, infer: &bdl_syntax::InferBlock) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for setting in &infer.settings {
            let key = &setting.key.name;
            if let Some(first) = seen.get(key) {
                self.error(
                    Diagnostic::error("E0108", format!("setting `{key}` is given twice"))
                        .with_label(setting.key.span, "second value")
                        .with_secondary(*first, "first value")
                        .with_hint("keep one of them"),
                );
                continue;
            }
            seen.insert(key.clone(), setting.key.span);
            let Some(spec) = catalogue::setting(key) else {
                let suggestion =
                    did_you_mean(key, catalogue::INFER_SETTINGS.iter().map(|s| s.name));
                self.error(
                    Diagnostic::error("E0108", format!("unknown setting `{key}`"))
                        .with_label(setting.key.span, "not an inference setting")
                        .with_hint(match suggestion {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => {
                                let names: Vec<&str> =
                                    catalogue::INFER_SETTINGS.iter().map(|s| s.name).collect();
                                format!("the settings are {}", names.join(", "))
                            }
                        }),
                );
                continue;
            };
            let value = &setting.value;
            let number = constant(value);
            let accepted = match spec.kind {
                SettingKind::Choice(choices) => match &value.kind {
                    ExprKind::Name(name) if choices.contains(&name.as_str()) => {
                        Some(SettingValue::Name(name.clone()))
                    }
                    ExprKind::Name(name) => {
                        let hint = match did_you_mean(name, choices.iter().copied()) {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => format!("choose one of {}", choices.join(", ")),
                        };
                        self.error(
                            Diagnostic::error("E0108", format!("unknown {key} `{name}`"))
                                .with_label(value.span, format!("not a valid `{key}`"))
                                .with_hint(hint),
                        );
                        continue;
                    }
                    _ => None,
                },
                SettingKind::PositiveInt | SettingKind::NonNegativeInt => {
                    let minimum = i64::from(spec.kind == SettingKind::PositiveInt);
                    match integer_constant(value) {
                        Some(n) if n >= minimum => Some(SettingValue::Int(n)),
                        _ => None,
                    }
                }
                SettingKind::PositiveReal => match number {
                    Some(x) if x > 0.0 => Some(SettingValue::Real(x)),
                    _ => None,
                },
                SettingKind::Fraction => match number {
                    Some(x) if x > 0.0 && x < 1.0 => Some(SettingValue::Real(x)),
                    _ => None,
                },
                SettingKind::Text => match &value.kind {
                    ExprKind::Str(text) => text.as_plain().map(SettingValue::Text),
                    _ => None,
                },
                SettingKind::Bool => match &value.kind {
                    ExprKind::Bool(flag) => Some(SettingValue::Bool(*flag)),
                    _ => None,
                },
            };
            match accepted {
                Some(accepted) => {
                    self.analysis.infer.insert(key.clone(), accepted);
                }
                None => {
                    let wanted = match spec.kind {
                        SettingKind::Choice(choices) => format!("one of {}", choices.join(", ")),
                        SettingKind::PositiveInt => "a positive integer".to_string(),
                        SettingKind::NonNegativeInt => "an integer ≥ 0".to_string(),
                        SettingKind::PositiveReal => "a positive number".to_string(),
                        SettingKind::Fraction => "a number between 0 and 1".to_string(),
                        SettingKind::Text => "a string".to_string(),
                        SettingKind::Bool => "`true` or `false`".to_string(),
                    };
                    self.error(
                        Diagnostic::error("E0108", format!("invalid value for `{key}`"))
                            .with_label(value.span, format!("expected {wanted}"))
                            .with_hint(format!("`{key}` takes {wanted}")),
                    );
                }
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Expressions.

    fn expr(&mut self, expr: &Expr) -> ExprInfo {
        if !self.enter(expr.span) {
            return self.record(expr, ExprInfo::default());
        }
        let info = self.expr_kind(expr);
        self.depth -= 1;
        self.record(expr, info)
    }

    fn expr_kind(&mut self, expr: &Expr) -> ExprInfo {
        let plain = |ty| ExprInfo { ty, latent: false };
        match &expr.kind {
            ExprKind::Int(_) => plain(Ty::int(Shape::scalar())),
            ExprKind::Real(_) => plain(Ty::real(Shape::scalar())),
            ExprKind::Bool(_) => plain(Ty::Tensor {
                elem: Elem::Bool,
                shape: Shape::scalar(),
            }),
            ExprKind::None => plain(Ty::NewAxis),
            ExprKind::Str(literal) => {
                self.interpolations(literal);
                plain(Ty::Str)
            }
            ExprKind::Error => plain(Ty::Unknown),
            ExprKind::Name(name) => self.name(expr, name),
            ExprKind::List(elements) => {
                let infos: Vec<ExprInfo> = elements.iter().map(|e| self.expr(e)).collect();
                let latent = infos.iter().any(|i| i.latent);
                let mut elem = Elem::Bool;
                let mut shape: Option<Shape> = None;
                let mut tensors = true;
                for (info, element) in infos.iter().zip(elements) {
                    match &info.ty {
                        Ty::Tensor { elem: e, shape: s } => {
                            elem = elem.max(*e);
                            match &shape {
                                None => shape = Some(s.clone()),
                                Some(first) => {
                                    if let (Some(a), Some(b)) = (first.dims(), s.dims()) {
                                        let differ = a.len() != b.len()
                                            || a.iter().zip(b).any(|(x, y)| x.conflicts(y));
                                        if differ {
                                            self.error(
                                                Diagnostic::error("E0202", "list elements have different shapes")
                                                    .with_label(element.span, format!("shape {s}"))
                                                    .with_secondary(elements[0].span, format!("shape {first}"))
                                                    .with_hint("every element of a list literal must have the same shape"),
                                            );
                                        }
                                    }
                                }
                            }
                        }
                        Ty::Unknown => tensors = false,
                        _ => {
                            tensors = false;
                        }
                    }
                }
                let ty = if !tensors {
                    Ty::Unknown
                } else {
                    let inner = shape.unwrap_or_else(Shape::scalar);
                    let shape = match inner {
                        Shape::Known(dims) => {
                            let mut all = vec![Dim::Const(elements.len() as i64)];
                            all.extend(dims);
                            Shape::Known(all)
                        }
                        Shape::Unknown => Shape::Unknown,
                    };
                    Ty::Tensor {
                        elem: if elements.is_empty() {
                            Elem::Real
                        } else {
                            elem
                        },
                        shape,
                    }
                };
                ExprInfo { ty, latent }
            }
            ExprKind::Comprehension { element, var, iter } => {
                let iter_info = self.expr(iter);
                let length = match iter_info.ty.shape() {
                    Shape::Known(dims) if !dims.is_empty() => dims[0].clone(),
                    _ => Dim::Unknown,
                };
                self.scopes.push(HashMap::new());
                self.bind(
                    var,
                    BindingKind::LoopVar,
                    Ty::int(Shape::scalar()),
                    iter_info.latent,
                );
                self.loop_vars.push(var.name.clone());
                let element_info = self.expr(element);
                self.loop_vars.pop();
                self.scopes.pop();
                let ty = match element_info.ty {
                    Ty::Tensor { elem, shape } => Ty::Tensor {
                        elem,
                        shape: match shape {
                            Shape::Known(dims) => {
                                let mut all = vec![length];
                                all.extend(dims);
                                Shape::Known(all)
                            }
                            Shape::Unknown => Shape::Unknown,
                        },
                    },
                    _ => Ty::Unknown,
                };
                ExprInfo {
                    ty,
                    latent: element_info.latent || iter_info.latent,
                }
            }
            ExprKind::Unary { op, operand } => {
                let info = self.expr(operand);
                let ty = match (&info.ty, op) {
                    (Ty::Unknown, _) => Ty::Unknown,
                    (Ty::Tensor { shape, .. }, UnaryOp::Not) => Ty::Tensor {
                        elem: Elem::Bool,
                        shape: shape.clone(),
                    },
                    (Ty::Tensor { elem, shape }, UnaryOp::Neg) => Ty::Tensor {
                        elem: (*elem).max(Elem::Int),
                        shape: shape.clone(),
                    },
                    (other, _) => {
                        self.not_a_tensor(operand.span, other, op.as_str().trim());
                        Ty::Unknown
                    }
                };
                ExprInfo {
                    ty,
                    latent: info.latent,
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs),
            ExprKind::Call { callee, args } => self.call(expr, callee, args),
            ExprKind::Index { base, indices } => self.index(base, indices),
        }
    }

    fn not_a_tensor(&mut self, span: Span, ty: &Ty, operation: &str) {
        self.error(
            Diagnostic::error("E0206", format!("`{operation}` needs numbers or tensors"))
                .with_label(span, format!("this is {}", ty.describe()))
                .with_hint(match ty {
                    Ty::Distribution { .. } => {
                        "draw a value from a distribution with `sample(name, dist)`".to_string()
                    }
                    Ty::Network { .. } => {
                        "lift a network first: `let f = lift(\"net\", net, Normal(0, 1))`"
                            .to_string()
                    }
                    _ => "only tensors (numbers, vectors, matrices) take part in arithmetic"
                        .to_string(),
                }),
        );
    }

    fn interpolations(&mut self, literal: &StrLit) {
        for part in &literal.parts {
            if let StrPart::Var(ident) = part {
                match self.lookup(&ident.name) {
                    Some(id) => {
                        self.use_binding(id);
                        self.analysis
                            .references
                            .insert(ident.id, Reference::Binding(id));
                    }
                    None => self.unknown_name(&ident.name, ident.span),
                }
            }
        }
    }

    fn name(&mut self, expr: &Expr, name: &str) -> ExprInfo {
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

    fn unknown_constraint(&mut self, name: &str, span: Span) {
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

    fn layer_outside_network(&mut self, span: Span, name: &str) {
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

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> ExprInfo {
        let left = self.expr(lhs);
        let right = self.expr(rhs);
        let latent = left.latent || right.latent;
        for (info, side) in [(&left, lhs), (&right, rhs)] {
            if !info.ty.is_tensor_like() {
                self.not_a_tensor(side.span, &info.ty, op.as_str());
                return ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                };
            }
        }
        let (Ty::Tensor { elem: a, shape: sa }, Ty::Tensor { elem: b, shape: sb }) =
            (&left.ty, &right.ty)
        else {
            return ExprInfo {
                ty: Ty::Unknown,
                latent,
            };
        };
        let ty = match op {
            BinaryOp::MatMul => self.matmul(lhs, sa, rhs, sb, (*a).max(*b).max(Elem::Int)),
            BinaryOp::Range => {
                for (elem, shape, side) in [(a, sa, lhs), (b, sb, rhs)] {
                    if *elem != Elem::Int || shape.rank().is_some_and(|r| r != 0) {
                        self.error(
                            Diagnostic::error("E0206", "a range needs integer bounds")
                                .with_label(side.span, "not an integer")
                                .with_hint("write `a..b` with integers a and b"),
                        );
                    }
                }
                let length = match (integer_constant(lhs), integer_constant(rhs)) {
                    (Some(start), Some(stop)) => Dim::Const((stop - start).max(0)),
                    _ => Dim::Unknown,
                };
                Ty::int(Shape::Known(vec![length]))
            }
            _ => {
                let shape = match broadcast(sa, sb) {
                    Ok(shape) => shape,
                    Err(conflict) => {
                        self.error(
                            Diagnostic::error(
                                "E0202",
                                format!("shapes {sa} and {sb} cannot be broadcast together"),
                            )
                            .with_label(lhs.span, format!("shape {sa}"))
                            .with_secondary(rhs.span, format!("shape {sb}"))
                            .with_note(format!(
                                "axis {} from the right has size {} on the left and {} on the right",
                                conflict.axis_from_right, conflict.left, conflict.right
                            ))
                            .with_hint("broadcasting pairs axes from the right; sizes must be equal or 1"),
                        );
                        Shape::Unknown
                    }
                };
                let elem = match op {
                    BinaryOp::Eq
                    | BinaryOp::Ne
                    | BinaryOp::Lt
                    | BinaryOp::Le
                    | BinaryOp::Gt
                    | BinaryOp::Ge
                    | BinaryOp::And
                    | BinaryOp::Or => Elem::Bool,
                    BinaryOp::Div => Elem::Real,
                    BinaryOp::Pow if (*a).max(*b) == Elem::Real => Elem::Real,
                    _ => (*a).max(*b).max(Elem::Int),
                };
                Ty::Tensor { elem, shape }
            }
        };
        ExprInfo { ty, latent }
    }

    fn matmul(&mut self, lhs: &Expr, sa: &Shape, rhs: &Expr, sb: &Shape, elem: Elem) -> Ty {
        let (Some(a), Some(b)) = (sa.dims(), sb.dims()) else {
            return Ty::real(Shape::Unknown);
        };
        if a.is_empty() || b.is_empty() {
            let side = if a.is_empty() { lhs } else { rhs };
            self.error(
                Diagnostic::error("E0201", "`@` needs vectors or matrices")
                    .with_label(side.span, "this is a scalar")
                    .with_hint("use `*` to multiply by a scalar"),
            );
            return Ty::Unknown;
        }
        let inner_left = &a[a.len() - 1];
        let inner_right = if b.len() == 1 { &b[0] } else { &b[b.len() - 2] };
        if inner_left.conflicts(inner_right) {
            self.error(
                Diagnostic::error(
                    "E0201",
                    format!("matrix product of shapes {sa} and {sb}: inner sizes {inner_left} and {inner_right} differ"),
                )
                .with_label(lhs.span, format!("shape {sa}"))
                .with_secondary(rhs.span, format!("shape {sb}"))
                .with_hint("in `a @ b` the last axis of `a` must match the first (or second to last) axis of `b`"),
            );
            return Ty::Unknown;
        }
        let mut dims: Vec<Dim> = Vec::new();
        let batch_left = if a.len() > 2 {
            &a[..a.len() - 2]
        } else {
            &[][..]
        };
        let batch_right = if b.len() > 2 {
            &b[..b.len() - 2]
        } else {
            &[][..]
        };
        if !batch_left.is_empty() || !batch_right.is_empty() {
            match broadcast(
                &Shape::Known(batch_left.to_vec()),
                &Shape::Known(batch_right.to_vec()),
            ) {
                Ok(Shape::Known(batch)) => dims.extend(batch),
                _ => return Ty::real(Shape::Unknown),
            }
        }
        if a.len() >= 2 {
            dims.push(a[a.len() - 2].clone());
        }
        if b.len() >= 2 {
            dims.push(b[b.len() - 1].clone());
        }
        Ty::Tensor {
            elem,
            shape: Shape::Known(dims),
        }
    }

    fn index(&mut self, base: &Expr, indices: &[IndexItem]) -> ExprInfo {
        let base_info = self.expr(base);
        let mut latent = base_info.latent;
        let mut item_infos = Vec::new();
        for item in indices {
            match item {
                IndexItem::Expr(value) => {
                    let info = self.expr(value);
                    latent |= info.latent;
                    item_infos.push(Some(info));
                }
                IndexItem::Slice { start, end, .. } => {
                    for bound in [start, end].into_iter().flatten() {
                        let info = self.expr(bound);
                        latent |= info.latent;
                        if !matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.rank().is_none_or(|r| r == 0))
                            && info.ty != Ty::Unknown
                        {
                            self.error(
                                Diagnostic::error("E0206", "slice bounds must be integers")
                                    .with_label(bound.span, format!("found {}", info.ty.describe()))
                                    .with_hint("write `x[a:b]` with integers a and b"),
                            );
                        }
                    }
                    item_infos.push(None);
                }
            }
        }
        let (elem, dims) = match &base_info.ty {
            Ty::Tensor { elem, shape } => (*elem, shape.dims().map(<[Dim]>::to_vec)),
            Ty::Unknown => {
                return ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                }
            }
            other => {
                self.error(
                    Diagnostic::error("E0206", "only tensors can be indexed")
                        .with_label(base.span, format!("this is {}", other.describe()))
                        .with_hint("index vectors and matrices, e.g. `x[i]` or `X[:, 0]`"),
                );
                return ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                };
            }
        };
        let consumed = item_infos
            .iter()
            .filter(|info| {
                !matches!(
                    info,
                    Some(ExprInfo {
                        ty: Ty::NewAxis,
                        ..
                    })
                )
            })
            .count();
        let Some(dims) = dims else {
            return ExprInfo {
                ty: Ty::Tensor {
                    elem,
                    shape: Shape::Unknown,
                },
                latent,
            };
        };
        if consumed > dims.len() {
            self.error(
                Diagnostic::error(
                    "E0208",
                    format!(
                        "too many indices: {} given for {} axes",
                        consumed,
                        dims.len()
                    ),
                )
                .with_label(base.span, format!("shape {}", Shape::Known(dims.clone())))
                .with_hint("give at most one index per axis"),
            );
            return ExprInfo {
                ty: Ty::Unknown,
                latent,
            };
        }
        let mut result = Vec::new();
        let mut axis = 0;
        let mut known = true;
        for (item, info) in indices.iter().zip(&item_infos) {
            match (item, info) {
                (
                    _,
                    Some(ExprInfo {
                        ty: Ty::NewAxis, ..
                    }),
                ) => result.push(Dim::Const(1)),
                (IndexItem::Slice { start, end, .. }, _) => {
                    let dim = match (start, end) {
                        (None, None) => dims[axis].clone(),
                        (Some(s), Some(e)) => match (integer_constant(s), integer_constant(e)) {
                            (Some(s), Some(e)) if s >= 0 && e >= s => Dim::Const(e - s),
                            _ => Dim::Unknown,
                        },
                        _ => Dim::Unknown,
                    };
                    result.push(dim);
                    axis += 1;
                }
                (IndexItem::Expr(value), Some(info)) => {
                    match &info.ty {
                        Ty::Tensor {
                            elem: Elem::Int,
                            shape,
                        } => match shape.dims() {
                            Some([]) => {}
                            Some(index_dims) => result.extend(index_dims.iter().cloned()),
                            None => known = false,
                        },
                        Ty::Unknown => known = false,
                        Ty::Tensor {
                            elem: Elem::Bool, ..
                        } => known = false,
                        other => {
                            self.error(
                                Diagnostic::error(
                                    "E0206",
                                    "an index must be an integer or an integer vector",
                                )
                                .with_label(value.span, format!("this is {}", other.describe()))
                                .with_hint("index with integers, `a:b` slices or `None`"),
                            );
                            known = false;
                        }
                    }
                    axis += 1;
                }
                (IndexItem::Expr(_), None) => axis += 1,
            }
        }
        result.extend(dims[axis.min(dims.len())..].iter().cloned());
        let shape = if known {
            Shape::Known(result)
        } else {
            Shape::Unknown
        };
        ExprInfo {
            ty: Ty::Tensor { elem, shape },
            latent,
        }
    }

    // -------------------------------------------------------------------------------------
    // Calls.

    /// Matches arguments to parameters, reporting arity and naming problems.
    fn match_args(
        &mut self,
        callee: &str,
        params: &'static [Param],
        args: &[Arg],
        call_span: Span,
        unknown_code: &str,
        arity_code: &str,
    ) -> Slots {
        let mut slots: Slots = vec![None; params.len()];
        // After a misplaced or misspelt argument, "missing" errors would only repeat the news.
        let mut misplaced = false;
        let mut seen_named = false;
        let mut positional = 0;
        let signature = catalogue::signature(callee, params);
        for (index, arg) in args.iter().enumerate() {
            match &arg.name {
                None => {
                    if seen_named {
                        misplaced = true;
                        self.error(
                            Diagnostic::error("E0106", "positional argument after a named one")
                                .with_label(arg.span, "positional argument")
                                .with_hint(
                                    "put positional arguments first, then `name = value` ones",
                                ),
                        );
                        continue;
                    }
                    if positional >= params.len() {
                        if positional == params.len() {
                            self.error(
                                Diagnostic::error(
                                    arity_code,
                                    format!(
                                        "`{callee}` takes {} but {} were given",
                                        count(params.len(), "argument"),
                                        args.iter().filter(|a| a.name.is_none()).count()
                                    ),
                                )
                                .with_label(arg.span, "unexpected argument")
                                .with_hint(format!("the signature is {signature}")),
                            );
                        }
                        positional += 1;
                        continue;
                    }
                    slots[positional] = Some((params[positional].names[0], index));
                    positional += 1;
                }
                Some(name) => {
                    seen_named = true;
                    let found = params.iter().enumerate().find_map(|(slot, param)| {
                        param
                            .names
                            .iter()
                            .find(|candidate| **candidate == name.name)
                            .map(|candidate| (slot, *candidate))
                    });
                    let Some((slot, used)) = found else {
                        misplaced = true;
                        let all = params.iter().flat_map(|p| p.names.iter().copied());
                        let hint = match did_you_mean(&name.name, all) {
                            Some(candidate) => {
                                format!("did you mean `{candidate}`? the signature is {signature}")
                            }
                            None => format!("the signature is {signature}"),
                        };
                        self.error(
                            Diagnostic::error(
                                unknown_code,
                                format!("`{callee}` has no parameter `{}`", name.name),
                            )
                            .with_label(name.span, "unknown parameter")
                            .with_hint(hint),
                        );
                        continue;
                    };
                    if let Some((previous, _)) = slots[slot] {
                        let (code, message) = if previous == used {
                            ("E0103", format!("argument `{used}` is given twice"))
                        } else {
                            (
                                "E0303",
                                format!(
                                    "`{callee}` takes either `{previous}` or `{used}`, not both"
                                ),
                            )
                        };
                        self.error(
                            Diagnostic::error(code, message)
                                .with_label(arg.span, "given again here")
                                .with_hint(format!("the signature is {signature}")),
                        );
                        continue;
                    }
                    slots[slot] = Some((used, index));
                }
            }
        }
        for (slot, param) in slots.iter().zip(params) {
            if slot.is_none() && param.required && !misplaced {
                let names = param
                    .names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                self.error(
                    Diagnostic::error(arity_code, format!("`{callee}` is missing {names}"))
                        .with_label(call_span, format!("{names} not given"))
                        .with_hint(format!("the signature is {signature}")),
                );
            }
        }
        slots
    }

    fn record_call(&mut self, call: &Expr, callee: Reference, slots: &Slots, args: &[Arg]) {
        let arguments = slots
            .iter()
            .flatten()
            .map(|(name, index)| (name.to_string(), args[*index].value.id))
            .collect();
        self.analysis
            .calls
            .insert(call.id, CallInfo { callee, arguments });
    }

    fn call(&mut self, call: &Expr, callee: &Expr, args: &[Arg]) -> ExprInfo {
        let Some(name) = callee.as_name() else {
            let callee_info = self.expr(callee);
            return self.apply_value(call, callee, &callee_info, args);
        };
        let Some(reference) = self.resolve(name) else {
            for arg in args {
                self.expr(&arg.value);
            }
            if self.constraint_arg == Some(call.id) {
                self.unknown_constraint(name, callee.span);
            } else if name.chars().next().is_some_and(char::is_uppercase)
                && !self.program.incomplete
            {
                let suggestion = did_you_mean(
                    name,
                    catalogue::DISTRIBUTIONS
                        .iter()
                        .map(|d| d.name)
                        .chain(catalogue::LAYERS.iter().map(|l| l.name)),
                );
                self.error(
                    Diagnostic::error("E0301", format!("unknown distribution `{name}`"))
                        .with_label(callee.span, "not a distribution")
                        .with_hint(match suggestion {
                            Some(candidate) => format!("did you mean `{candidate}`?"),
                            None => "docs/language.md lists every distribution".to_string(),
                        }),
                );
            } else {
                self.unknown_name(name, callee.span);
            }
            return ExprInfo::default();
        };
        self.analysis.references.insert(callee.id, reference);
        match reference {
            Reference::Binding(id) => {
                let binding = self.use_binding(id).clone();
                self.record(
                    callee,
                    ExprInfo {
                        ty: binding.ty.clone(),
                        latent: binding.latent,
                    },
                );
                let callee_info = ExprInfo {
                    ty: binding.ty,
                    latent: binding.latent,
                };
                self.apply_value(call, callee, &callee_info, args)
            }
            Reference::Distribution(spec) => self.distribution(call, callee, spec, args),
            Reference::Function(spec) => self.builtin(call, callee, spec, args),
            Reference::Site(spec) => self.site(call, callee, spec, args),
            Reference::Layer(spec) => {
                for arg in args {
                    self.expr(&arg.value);
                }
                self.layer_outside_network(callee.span, spec.name);
                ExprInfo::default()
            }
            Reference::Constraint(spec) => {
                let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
                if spec.params.is_empty() {
                    self.error(
                        Diagnostic::error(
                            "E0102",
                            format!("the constraint `{}` takes no arguments", spec.name),
                        )
                        .with_label(call.span, "called here")
                        .with_hint(format!("write `{}` without parentheses", spec.name)),
                    );
                }
                let slots =
                    self.match_args(spec.name, spec.params, args, call.span, "E0103", "E0102");
                self.record_call(call, reference, &slots, args);
                ExprInfo {
                    ty: Ty::Constraint,
                    latent: infos.iter().any(|i| i.latent),
                }
            }
        }
    }

    /// A call whose callee is a value: a user function or a lifted network.
    fn apply_value(
        &mut self,
        call: &Expr,
        callee: &Expr,
        callee_info: &ExprInfo,
        args: &[Arg],
    ) -> ExprInfo {
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        let latent = callee_info.latent || infos.iter().any(|i| i.latent);
        match &callee_info.ty {
            Ty::Function(index) => {
                let function = self.program.functions().nth(*index);
                if let Some(function) = function {
                    let named = args.iter().find(|a| a.name.is_some());
                    if let Some(arg) = named {
                        self.error(
                            Diagnostic::error("E0103", "functions take positional arguments only")
                                .with_label(arg.span, "named argument")
                                .with_hint("pass the arguments in order"),
                        );
                    }
                    if args.len() != function.params.len() {
                        let params: Vec<&str> =
                            function.params.iter().map(|p| p.name.as_str()).collect();
                        self.error(
                            Diagnostic::error(
                                "E0102",
                                format!(
                                    "`{}` takes {} but {} were given",
                                    function.name.name,
                                    count(function.params.len(), "argument"),
                                    args.len()
                                ),
                            )
                            .with_label(call.span, "wrong number of arguments")
                            .with_secondary(function.name.span, "defined here")
                            .with_hint(format!(
                                "the signature is {}({})",
                                function.name.name,
                                params.join(", ")
                            )),
                        );
                    }
                    let arguments = function
                        .params
                        .iter()
                        .zip(args)
                        .map(|(param, arg)| (param.name.clone(), arg.value.id))
                        .collect();
                    if let Some(reference) = self.analysis.references.get(&callee.id).copied() {
                        self.analysis.calls.insert(
                            call.id,
                            CallInfo {
                                callee: reference,
                                arguments,
                            },
                        );
                    }
                }
                let has_sites = self
                    .function_has_sites
                    .get(*index)
                    .copied()
                    .unwrap_or(false);
                if has_sites {
                    self.mark_sites();
                }
                ExprInfo {
                    ty: Ty::Unknown,
                    latent: latent || has_sites,
                }
            }
            Ty::Module { input, output } => {
                if args.len() != 1 || args[0].name.is_some() {
                    self.error(
                        Diagnostic::error("E0102", "a lifted network takes one input")
                            .with_label(
                                call.span,
                                format!("{} given", count(args.len(), "argument")),
                            )
                            .with_hint("call it on the input batch: `net(x)`"),
                    );
                    return ExprInfo {
                        ty: Ty::Unknown,
                        latent,
                    };
                }
                if let Some(reference) = self.analysis.references.get(&callee.id).copied() {
                    self.analysis.calls.insert(
                        call.id,
                        CallInfo {
                            callee: reference,
                            arguments: vec![("x".to_string(), args[0].value.id)],
                        },
                    );
                }
                let ty = self.module_output(
                    &args[0].value,
                    &infos[0].ty,
                    input.as_ref(),
                    output.as_ref(),
                );
                ExprInfo { ty, latent: true }
            }
            Ty::Network { .. } => {
                self.error(
                    Diagnostic::error("E0105", "a network must be lifted before it is called")
                        .with_label(callee.span, "a network declaration")
                        .with_hint("give its weights priors with `let f = lift(\"net\", net, Normal(0, 1))` (or `module` for point estimates), then call `f(x)`"),
                );
                ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                }
            }
            Ty::Unknown => ExprInfo {
                ty: Ty::Unknown,
                latent,
            },
            other => {
                self.error(
                    Diagnostic::error("E0105", "this cannot be called")
                        .with_label(callee.span, format!("this is {}", other.describe()))
                        .with_hint("only functions, distributions and lifted networks are called"),
                );
                ExprInfo {
                    ty: Ty::Unknown,
                    latent,
                }
            }
        }
    }

    fn module_output(
        &mut self,
        value: &Expr,
        ty: &Ty,
        input: Option<&Dim>,
        output: Option<&Dim>,
    ) -> Ty {
        let Ty::Tensor {
            shape: Shape::Known(dims),
            ..
        } = ty
        else {
            if !ty.is_tensor_like() {
                self.not_a_tensor(value.span, ty, "network input");
            }
            return Ty::real(Shape::Unknown);
        };
        let out_dims = |batch: &[Dim]| {
            let mut dims = batch.to_vec();
            match output {
                Some(Dim::Const(1)) => {}
                Some(out) => dims.push(out.clone()),
                None => return Shape::Unknown,
            }
            Shape::Known(dims)
        };
        match dims.as_slice() {
            [] => {
                self.error(
                    Diagnostic::error("E0201", "a network needs a vector or matrix input")
                        .with_label(value.span, "this is a scalar")
                        .with_hint("pass a batch of inputs: `[N]` for one feature or `[N, in]`"),
                );
                Ty::Unknown
            }
            [rows] => match input {
                Some(Dim::Const(1)) | None => Ty::real(out_dims(std::slice::from_ref(rows))),
                Some(width) => {
                    self.error(
                        Diagnostic::error(
                            "E0201",
                            format!("the network takes {width} inputs, but its input is a vector"),
                        )
                        .with_label(value.span, format!("shape [{rows}]"))
                        .with_hint(format!("pass a matrix of shape [N, {width}]")),
                    );
                    Ty::Unknown
                }
            },
            [batch @ .., last] => {
                if let Some(width) = input {
                    if width.conflicts(last) {
                        self.error(
                            Diagnostic::error(
                                "E0201",
                                format!("the network takes {width} inputs, but its input has {last} columns"),
                            )
                            .with_label(value.span, format!("shape {}", Shape::Known(dims.clone())))
                            .with_hint("make the first layer's input size match the data's columns"),
                        );
                        return Ty::Unknown;
                    }
                }
                Ty::real(out_dims(batch))
            }
        }
    }

    fn distribution(
        &mut self,
        call: &Expr,
        callee: &Expr,
        spec: &'static catalogue::DistributionSpec,
        args: &[Arg],
    ) -> ExprInfo {
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        let latent = infos.iter().any(|i| i.latent);
        let slots = self.match_args(spec.name, spec.params, args, call.span, "E0302", "E0302");
        self.record_call(call, Reference::Distribution(spec), &slots, args);
        self.record(
            callee,
            ExprInfo {
                ty: Ty::Builtin,
                latent: false,
            },
        );
        let mut shapes: Vec<(Shape, &Expr, &'static str)> = Vec::new();
        for (slot, param) in slots.iter().zip(spec.params) {
            let Some((used, index)) = slot else {
                continue;
            };
            let value = &args[*index].value;
            let info = &infos[*index];
            if !info.ty.is_tensor_like() {
                self.error(
                    Diagnostic::error(
                        "E0302",
                        format!(
                            "parameter `{used}` of `{}` must be a number or tensor",
                            spec.name
                        ),
                    )
                    .with_label(value.span, format!("this is {}", info.ty.describe()))
                    .with_hint(format!(
                        "the signature is {}",
                        catalogue::signature(spec.name, spec.params)
                    )),
                );
                continue;
            }
            if let Some(number) = constant(value) {
                let problem = match param.domain {
                    Domain::Positive if number <= 0.0 => Some("must be positive"),
                    Domain::Probability if *used == "probs" && !(0.0..=1.0).contains(&number) => {
                        Some("must be between 0 and 1")
                    }
                    Domain::Count if number < 0.0 || number.fract() != 0.0 => {
                        Some("must be a non-negative integer")
                    }
                    Domain::Size if number < 1.0 || number.fract() != 0.0 => {
                        Some("must be a positive integer")
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    self.error(
                        Diagnostic::error(
                            "E0302",
                            format!("parameter `{used}` of `{}` {problem}", spec.name),
                        )
                        .with_label(value.span, format!("{used} = {number}"))
                        .with_hint(format!("`{used}` {problem}")),
                    );
                }
            }
            shapes.push((info.ty.shape(), value, used));
        }
        let (batch, event) = match spec.event {
            EventShape::Scalar => {
                let mut batch = Shape::scalar();
                for (shape, value, used) in &shapes {
                    match broadcast(&batch, shape) {
                        Ok(joined) => batch = joined,
                        Err(_) => {
                            let first = shapes.first().map_or("", |s| s.2);
                            self.error(
                                Diagnostic::error(
                                    "E0202",
                                    format!("the parameters of `{}` do not broadcast together", spec.name),
                                )
                                .with_label(value.span, format!("`{used}` has shape {shape}"))
                                .with_secondary(shapes[0].1.span, format!("`{first}` has shape {}", shapes[0].0))
                                .with_hint("parameters broadcast like arithmetic: sizes must be equal or 1 from the right"),
                            );
                            batch = Shape::Unknown;
                            break;
                        }
                    }
                }
                (batch, Shape::scalar())
            }
            EventShape::Categories => match shapes.first().map(|s| &s.0) {
                Some(Shape::Known(dims)) if !dims.is_empty() => (
                    Shape::Known(dims[..dims.len() - 1].to_vec()),
                    Shape::scalar(),
                ),
                _ => (Shape::Unknown, Shape::scalar()),
            },
            EventShape::Vector => match shapes.first().map(|s| &s.0) {
                Some(Shape::Known(dims)) if !dims.is_empty() => (
                    Shape::Known(dims[..dims.len() - 1].to_vec()),
                    Shape::Known(vec![dims[dims.len() - 1].clone()]),
                ),
                _ => (Shape::Unknown, Shape::Known(vec![Dim::Unknown])),
            },
            EventShape::Matrix => {
                if spec.name == "LKJCholesky" {
                    let size = slots[0]
                        .map(|(_, index)| self.dim_value(&args[index].value))
                        .unwrap_or(Dim::Unknown);
                    let batch = slots
                        .get(1)
                        .copied()
                        .flatten()
                        .map_or(Shape::scalar(), |(_, index)| infos[index].ty.shape());
                    (batch, Shape::Known(vec![size.clone(), size]))
                } else {
                    match shapes.get(1).map(|s| &s.0) {
                        Some(Shape::Known(dims)) if dims.len() >= 2 => (
                            Shape::Known(dims[..dims.len() - 2].to_vec()),
                            Shape::Known(dims[dims.len() - 2..].to_vec()),
                        ),
                        _ => (
                            Shape::Unknown,
                            Shape::Known(vec![Dim::Unknown, Dim::Unknown]),
                        ),
                    }
                }
            }
        };
        ExprInfo {
            ty: Ty::Distribution { spec, batch, event },
            latent,
        }
    }

    fn builtin(
        &mut self,
        call: &Expr,
        callee: &Expr,
        spec: &'static catalogue::FunctionSpec,
        args: &[Arg],
    ) -> ExprInfo {
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        let latent = infos.iter().any(|i| i.latent);
        let slots = self.match_args(spec.name, spec.params, args, call.span, "E0103", "E0102");
        self.record_call(call, Reference::Function(spec), &slots, args);
        self.record(
            callee,
            ExprInfo {
                ty: Ty::Builtin,
                latent: false,
            },
        );
        for (slot, param) in slots.iter().zip(spec.params) {
            if let Some((used, index)) = slot {
                let info = &infos[*index];
                if param.domain == Domain::Any && !info.ty.is_tensor_like() {
                    self.error(
                        Diagnostic::error(
                            "E0206",
                            format!(
                                "argument `{used}` of `{}` must be a number or tensor",
                                spec.name
                            ),
                        )
                        .with_label(
                            args[*index].value.span,
                            format!("this is {}", info.ty.describe()),
                        )
                        .with_hint(format!(
                            "the signature is {}",
                            catalogue::signature(spec.name, spec.params)
                        )),
                    );
                    return ExprInfo {
                        ty: Ty::Unknown,
                        latent,
                    };
                }
            }
        }
        let arg = |slot: usize| {
            slots
                .get(slot)
                .copied()
                .flatten()
                .map(|(_, index)| (&args[index].value, &infos[index]))
        };
        let first_shape = arg(0).map_or(Shape::Unknown, |(_, info)| info.ty.shape());
        let axis = arg(1).and_then(|(value, _)| integer_constant(value));
        let ty = match spec.shape {
            ShapeRule::Elementwise => Ty::real(first_shape),
            ShapeRule::SameShape => match arg(0).map(|(_, info)| info.ty.clone()) {
                Some(Ty::Tensor { elem, shape }) => Ty::Tensor {
                    elem: elem.max(Elem::Int),
                    shape,
                },
                _ => Ty::real(Shape::Unknown),
            },
            ShapeRule::Reduction => {
                let shape = match (arg(1), first_shape) {
                    (None, _) => Shape::scalar(),
                    (Some(_), Shape::Known(mut dims)) => {
                        match axis.and_then(|a| normalise_axis(a, dims.len())) {
                            Some(position) => {
                                dims.remove(position);
                                Shape::Known(dims)
                            }
                            None => Shape::Unknown,
                        }
                    }
                    (Some(_), Shape::Unknown) => Shape::Unknown,
                };
                Ty::real(shape)
            }
            ShapeRule::Stack => {
                let shape = match first_shape {
                    Shape::Known(dims) if !dims.is_empty() => {
                        let count = dims[0].clone();
                        let mut rest = dims[1..].to_vec();
                        match normalise_axis(axis.unwrap_or(0), rest.len() + 1) {
                            Some(position) => {
                                rest.insert(position, count);
                                Shape::Known(rest)
                            }
                            None => Shape::Unknown,
                        }
                    }
                    _ => Shape::Unknown,
                };
                Ty::real(shape)
            }
            ShapeRule::Concat => {
                let shape = match first_shape {
                    Shape::Known(dims) if dims.len() >= 2 => {
                        let mut rest = dims[1..].to_vec();
                        match normalise_axis(axis.unwrap_or(0), rest.len()) {
                            Some(position) => {
                                rest[position] = match (&dims[0], &rest[position]) {
                                    (Dim::Const(n), Dim::Const(m)) => Dim::Const(n * m),
                                    _ => Dim::Unknown,
                                };
                                Shape::Known(rest)
                            }
                            None => Shape::Unknown,
                        }
                    }
                    _ => Shape::Unknown,
                };
                Ty::real(shape)
            }
            ShapeRule::Reshape => {
                Ty::real(arg(1).map_or(Shape::Unknown, |(value, _)| self.shape_literal(value)))
            }
            ShapeRule::Transpose => Ty::real(match first_shape {
                Shape::Known(mut dims) if dims.len() >= 2 => {
                    let n = dims.len();
                    dims.swap(n - 1, n - 2);
                    Shape::Known(dims)
                }
                other => other,
            }),
            ShapeRule::Len => Ty::int(Shape::scalar()),
            ShapeRule::Range => {
                let length = match (arg(0), arg(1)) {
                    (Some((stop, _)), None) => self.dim_value(stop),
                    (Some((start, _)), Some((stop, _))) => {
                        match (integer_constant(start), integer_constant(stop)) {
                            (Some(a), Some(b)) => Dim::Const((b - a).max(0)),
                            _ => Dim::Unknown,
                        }
                    }
                    _ => Dim::Unknown,
                };
                Ty::int(Shape::Known(vec![length]))
            }
            ShapeRule::Where => {
                let mut shape = Shape::scalar();
                for slot in 0..3 {
                    if let Some((_, info)) = arg(slot) {
                        shape = broadcast(&shape, &info.ty.shape()).unwrap_or(Shape::Unknown);
                    }
                }
                Ty::real(shape)
            }
            ShapeRule::Filled => {
                Ty::real(arg(0).map_or(Shape::Unknown, |(value, _)| self.shape_literal(value)))
            }
            ShapeRule::Eye => {
                let n = arg(0).map_or(Dim::Unknown, |(value, _)| self.dim_value(value));
                Ty::real(Shape::Known(vec![n.clone(), n]))
            }
        };
        ExprInfo { ty, latent }
    }

    /// A shape written as a list of sizes (`[10]`, `[N, 3]`) or a single size.
    fn shape_literal(&mut self, value: &Expr) -> Shape {
        match &value.kind {
            ExprKind::List(elements) => {
                let dims: Vec<Dim> = elements
                    .iter()
                    .map(|element| self.dim_value(element))
                    .collect();
                for (element, dim) in elements.iter().zip(&dims) {
                    let info = self.info_of(element);
                    let is_int = matches!(&info.ty, Ty::Tensor { elem: Elem::Int, shape } if shape.rank().is_none_or(|r| r == 0));
                    if !is_int && info.ty != Ty::Unknown || dim.constant().is_some_and(|n| n <= 0) {
                        self.error(
                            Diagnostic::error("E0209", "a shape lists positive integer sizes")
                                .with_label(element.span, format!("found {}", info.ty.describe()))
                                .with_hint(
                                    "write sizes such as `shape = [10]` or `shape = [N, 3]`",
                                ),
                        );
                    }
                }
                Shape::Known(dims)
            }
            _ => {
                let info = self.info_of(value);
                match &info.ty {
                    Ty::Tensor {
                        elem: Elem::Int,
                        shape,
                    } if shape.is_scalar() => Shape::Known(vec![self.dim_value(value)]),
                    Ty::Unknown => Shape::Unknown,
                    Ty::Tensor {
                        elem: Elem::Int, ..
                    } => Shape::Unknown,
                    other => {
                        self.error(
                            Diagnostic::error("E0209", "a shape lists positive integer sizes")
                                .with_label(value.span, format!("found {}", other.describe()))
                                .with_hint(
                                    "write sizes such as `shape = [10]` or `shape = [N, 3]`",
                                ),
                        );
                        Shape::Unknown
                    }
                }
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Sites.

    fn mark_sites(&mut self) {
        if let Some(index) = self.function_index {
            if let Some(flag) = self.function_has_sites.get_mut(index) {
                *flag = true;
            }
        }
    }

    /// Checks a site or plate name: a string literal, a simple name, unique, and varying inside
    /// loops. Returns the name's pattern.
    fn site_name(&mut self, value: &Expr, what: &str, plate: bool) -> Option<String> {
        let ExprKind::Str(literal) = &value.kind else {
            if !matches!(value.kind, ExprKind::Error) {
                self.error(
                    Diagnostic::error("E0307", format!("a {what} name must be a string literal"))
                        .with_label(value.span, "not a string literal")
                        .with_hint("write the name in quotes, e.g. `\"w\"`, or interpolate a loop variable: `\"w_{k}\"`"),
                );
            }
            return None;
        };
        let pattern = literal.pattern();
        let example: String = literal
            .parts
            .iter()
            .map(|part| match part {
                StrPart::Text(text) => text.clone(),
                StrPart::Var(_) => "0".to_string(),
            })
            .collect();
        let is_identifier = example
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && example
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plate && !is_identifier {
            self.error(
                Diagnostic::error("E0306", format!("site name \"{pattern}\" is not a simple name"))
                    .with_label(value.span, "not a simple name")
                    .with_hint("site names become column names in draw files: use letters, digits and `_`, starting with a letter"),
            );
        }
        if self.current_function.is_some() {
            return Some(pattern);
        }
        let interpolated: Vec<&str> = literal
            .parts
            .iter()
            .filter_map(|part| match part {
                StrPart::Var(ident) => Some(ident.name.as_str()),
                StrPart::Text(_) => None,
            })
            .collect();
        if let Some(loop_var) = self.loop_vars.last() {
            if !self
                .loop_vars
                .iter()
                .any(|v| interpolated.contains(&v.as_str()))
            {
                self.error(
                    Diagnostic::error(
                        "E0304",
                        format!("the {what} \"{pattern}\" would repeat in every loop iteration"),
                    )
                    .with_label(value.span, "the same name each time round")
                    .with_hint(format!(
                        "put the loop variable in the name, e.g. \"{pattern}_{{{loop_var}}}\""
                    )),
                );
                return Some(pattern);
            }
        }
        self.register_name(&pattern, value.span, what);
        Some(pattern)
    }

    fn register_name(&mut self, pattern: &str, span: Span, what: &str) {
        if let Some((_, first)) = self.site_names.iter().find(|(name, _)| name == pattern) {
            let first = *first;
            self.error(
                Diagnostic::error("E0304", format!("duplicate site name \"{pattern}\""))
                    .with_label(span, format!("this {what} reuses the name"))
                    .with_secondary(first, "first used here")
                    .with_hint("every site and plate in a run needs its own name"),
            );
            return;
        }
        self.site_names.push((pattern.to_string(), span));
    }

    fn site(
        &mut self,
        call: &Expr,
        callee: &Expr,
        spec: &'static SiteFunctionSpec,
        args: &[Arg],
    ) -> ExprInfo {
        if spec.kind == SiteFunction::Param {
            let constraint = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "constraint"))
                .or_else(|| args.iter().filter(|a| a.name.is_none()).nth(2));
            // A misspelt constraint gets its own message and suggestions.
            self.constraint_arg = constraint.map(|a| a.value.id);
        }
        let infos: Vec<ExprInfo> = args.iter().map(|a| self.expr(&a.value)).collect();
        self.constraint_arg = None;
        let slots = self.match_args(spec.name, spec.params, args, call.span, "E0103", "E0102");
        self.record_call(call, Reference::Site(spec), &slots, args);
        self.record(
            callee,
            ExprInfo {
                ty: Ty::Builtin,
                latent: false,
            },
        );
        let arg = |slot: usize| {
            slots
                .get(slot)
                .copied()
                .flatten()
                .map(|(_, index)| (&args[index].value, &infos[index]))
        };
        if matches!(self.context, Context::Data | Context::Network) {
            self.error(
                Diagnostic::error(
                    "E0309",
                    format!(
                        "`{}` creates a site, which only the model or a function can do",
                        spec.name
                    ),
                )
                .with_label(callee.span, "not allowed here")
                .with_hint(
                    "data is fixed before inference; move random quantities into `model { ... }`",
                ),
            );
            return ExprInfo::default();
        }
        self.mark_sites();
        let what = match spec.kind {
            SiteFunction::Lift | SiteFunction::Module => "network",
            _ => "site",
        };
        let name = match arg(0) {
            Some((value, _)) => {
                if matches!(spec.kind, SiteFunction::Lift | SiteFunction::Module) {
                    self.network_site_name(value, arg(1).map(|(v, _)| v))
                } else {
                    self.site_name(value, what, false)
                }
            }
            None => None,
        };
        if let Some(name) = &name {
            self.analysis.sites.push(Site {
                kind: spec.kind,
                name: name.clone(),
                call: call.id,
                span: call.span,
                plates: self.plates.iter().map(|frame| frame.name.clone()).collect(),
                function: self.current_function.clone(),
            });
        }
        let expect_distribution = |checker: &mut Self, slot: usize| -> Option<(Shape, Shape)> {
            let (value, info) = arg(slot)?;
            match &info.ty {
                Ty::Distribution { batch, event, .. } => Some((batch.clone(), event.clone())),
                Ty::Unknown => None,
                other => {
                    checker.error(
                        Diagnostic::error(
                            "E0310",
                            format!("`{}` needs a distribution here", spec.name),
                        )
                        .with_label(value.span, format!("this is {}", other.describe()))
                        .with_hint("write a distribution such as `Normal(0, 1)`"),
                    );
                    None
                }
            }
        };
        match spec.kind {
            SiteFunction::Sample => {
                let dist = expect_distribution(self, 1);
                let elem = match arg(1).map(|(_, info)| &info.ty) {
                    Some(Ty::Distribution { spec, .. }) if spec.support.is_discrete() => Elem::Int,
                    _ => Elem::Real,
                };
                let extra = arg(2).map(|(value, _)| self.shape_literal(value));
                let plates = self.plate_shape();
                let shape = match (dist, extra) {
                    (Some((batch, event)), Some(expanded)) => {
                        if let Err(conflict) = broadcast(&batch, &expanded) {
                            if let Some((value, _)) = arg(2) {
                                self.error(
                                    Diagnostic::error("E0202", format!("the distribution's batch shape {batch} does not expand to {expanded}"))
                                        .with_label(value.span, "requested shape")
                                        .with_note(format!("axis {} from the right: {} against {}", conflict.axis_from_right, conflict.left, conflict.right))
                                        .with_hint("`shape` must be reachable by broadcasting the parameters"),
                                );
                            }
                        }
                        concat_shapes(&[&plates, &expanded, &event])
                    }
                    (Some((batch, event)), None) => match broadcast(&plates, &batch) {
                        Ok(joined) => concat_shapes(&[&joined, &event]),
                        Err(_) => {
                            if let Some((value, _)) = arg(1) {
                                self.plate_mismatch(value.span, &batch, &plates);
                            }
                            Shape::Unknown
                        }
                    },
                    _ => Shape::Unknown,
                };
                ExprInfo {
                    ty: Ty::Tensor { elem, shape },
                    latent: true,
                }
            }
            SiteFunction::Observe => {
                let dist = expect_distribution(self, 1);
                let Some((value, info)) = arg(2) else {
                    return ExprInfo::default();
                };
                if info.latent {
                    self.error(
                        Diagnostic::error("E0305", "`observe` needs data, but this value depends on a sampled quantity")
                            .with_label(value.span, "depends on a `sample`, `param` or lifted network")
                            .with_hint("observe a data variable (declared in `data { ... }`) or a value derived from data only"),
                    );
                }
                if let Some((batch, event)) = dist {
                    let plates = self.plate_shape();
                    if let Ok(expected) = broadcast(&plates, &batch) {
                        let expected = concat_shapes(&[&expected, &event]);
                        let observed = info.ty.shape();
                        if let Err(conflict) = broadcast(&expected, &observed) {
                            self.error(
                                Diagnostic::error("E0202", format!("the observed value has shape {observed}, but the distribution's is {expected}"))
                                    .with_label(value.span, format!("shape {observed}"))
                                    .with_note(format!("axis {} from the right: {} against {}", conflict.axis_from_right, conflict.left, conflict.right))
                                    .with_hint("the distribution's batch shape (with its plates) must match the data"),
                            );
                        }
                    } else if let Some((dist_value, _)) = arg(1) {
                        self.plate_mismatch(dist_value.span, &batch, &plates);
                    }
                }
                ExprInfo {
                    ty: info.ty.clone(),
                    latent: info.latent,
                }
            }
            SiteFunction::Param => {
                if let Some((value, info)) = arg(2) {
                    if info.ty != Ty::Constraint && info.ty != Ty::Unknown {
                        self.error(
                            Diagnostic::error("E0308", "the third argument of `param` must be a constraint")
                                .with_label(value.span, format!("this is {}", info.ty.describe()))
                                .with_hint("constraints are real, positive, unit_interval, interval(a, b), greater_than(a), less_than(b), simplex, ordered, positive_ordered, corr_cholesky, cov_cholesky"),
                        );
                    }
                }
                let ty = arg(1).map_or(Ty::Unknown, |(_, info)| match &info.ty {
                    Ty::Tensor { shape, .. } => Ty::real(shape.clone()),
                    other => other.clone(),
                });
                ExprInfo { ty, latent: true }
            }
            SiteFunction::Deterministic => {
                let info = arg(1).map(|(_, info)| info.clone()).unwrap_or_default();
                ExprInfo {
                    ty: info.ty,
                    latent: info.latent,
                }
            }
            SiteFunction::Lift | SiteFunction::Module => {
                let network = arg(1).map(|(_, info)| info.ty.clone());
                let (input, output) = match network {
                    Some(Ty::Network { input, output }) => (input, output),
                    Some(Ty::Unknown) | None => (None, None),
                    Some(other) => {
                        if let Some((value, _)) = arg(1) {
                            self.error(
                                Diagnostic::error(
                                    "E0206",
                                    format!("`{}` needs a network", spec.name),
                                )
                                .with_label(value.span, format!("this is {}", other.describe()))
                                .with_hint("declare one with `network net = Sequential(...)`"),
                            );
                        }
                        (None, None)
                    }
                };
                if spec.kind == SiteFunction::Lift {
                    let given: Vec<usize> = (2..5).filter(|slot| arg(*slot).is_some()).collect();
                    if given.is_empty() {
                        self.error(
                            Diagnostic::error("E0302", "`lift` needs a prior for the weights")
                                .with_label(call.span, "no prior given")
                                .with_hint("write `lift(\"net\", net, Normal(0, 1))`, or set `weight = ...` and `bias = ...`"),
                        );
                    }
                    for slot in given {
                        expect_distribution(self, slot);
                    }
                }
                ExprInfo {
                    ty: Ty::Module { input, output },
                    latent: true,
                }
            }
        }
    }

    fn plate_mismatch(&mut self, span: Span, batch: &Shape, plates: &Shape) {
        self.error(
            Diagnostic::error("E0202", format!("the distribution's batch shape {batch} does not fit the enclosing plates {plates}"))
                .with_label(span, format!("batch shape {batch}"))
                .with_hint("a site inside a plate gets the plate's size on the plate's dimension; the parameters must broadcast to it"),
        );
    }

    /// Registers the weight sites of `lift`/`module` and returns the network's site name.
    fn network_site_name(&mut self, value: &Expr, network: Option<&Expr>) -> Option<String> {
        let pattern = self.site_name(value, "network", true)?;
        let binding = network
            .and_then(|n| self.analysis.references.get(&n.id).copied())
            .and_then(|r| match r {
                Reference::Binding(id) => Some(id),
                _ => None,
            });
        if let Some(info) = binding
            .and_then(|id| self.analysis.networks.get(&id))
            .cloned()
        {
            let is_identifier = pattern
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '{')
                && pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_{}".contains(c));
            if !is_identifier {
                self.error(
                    Diagnostic::error("E0306", format!("site name \"{pattern}\" is not a simple name"))
                        .with_label(value.span, "not a simple name")
                        .with_hint("site names become column names in draw files: use letters, digits and `_`, starting with a letter"),
                );
            }
            if self.current_function.is_none() {
                for site in info.weight_sites(&pattern) {
                    self.register_name(&site, value.span, "network weight");
                }
            }
        }
        Some(pattern)
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
