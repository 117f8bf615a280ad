//! The middle of the bdl pipeline: name resolution and static checks over the syntax tree of
//! `bdl-syntax`, producing the facts that lowering to the trace IR needs.
//!
//! [`check`] never fails. It returns an [`Analysis`] — every name use resolved to a binding or a
//! built-in, every expression's static type and shape where known, every call matched to its
//! parameters by name, every site and plate — together with located diagnostics. The
//! [`catalogue`] lists the built-ins the checks use; [`types`] holds static shapes.

pub mod catalogue;
mod check;
pub mod ir;
mod lower;
pub mod types;

pub use lower::lower;

use bdl_diagnostics::{Diagnostic, Span};
use bdl_syntax::{NodeId, Program};
use catalogue::{
    ConstraintSpec, DistributionSpec, FunctionSpec, LayerSpec, SiteFunction, SiteFunctionSpec,
};
use std::collections::{BTreeMap, HashMap};
use types::{Dim, Ty};

/// Identifies one binding (a declared or bound name) in [`Analysis::bindings`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId(pub u32);

/// What introduced a binding.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BindingKind {
    /// A declaration in the data block (`x: vector[N]`).
    Data,
    /// A size variable bound by a data declaration's dimensions (`N` in `vector[N]`).
    SizeVar,
    /// `let` inside the data block: derived once from data.
    DataLet,
    /// `network name = ...`.
    Network,
    /// `fn name(...)`.
    Function,
    /// A parameter of a `fn`.
    FnParam,
    /// `let` in a model or function body.
    Let,
    /// The variable of a `for` loop or a comprehension.
    LoopVar,
    /// The index vector bound by `plate(...) as i`.
    PlateIndex,
}

/// A bound name.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The name.
    pub name: String,
    /// What introduced it.
    pub kind: BindingKind,
    /// Where it is introduced.
    pub span: Span,
    /// Its static type.
    pub ty: Ty,
    /// Whether its value depends on a sample or param site (and so is not data).
    pub latent: bool,
    /// Whether it was declared `let mut` (and so may be assigned).
    pub mutable: bool,
    /// How many times it is used.
    pub uses: usize,
}

/// What a name refers to.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Reference {
    /// A binding of the program.
    Binding(BindingId),
    /// A distribution of the catalogue.
    Distribution(&'static DistributionSpec),
    /// A built-in function.
    Function(&'static FunctionSpec),
    /// A site function (`sample`, `observe`, …).
    Site(&'static SiteFunctionSpec),
    /// A layer (`Linear`, `ReLU`, …).
    Layer(&'static LayerSpec),
    /// A constraint (`positive`, `interval`, …).
    Constraint(&'static ConstraintSpec),
}

/// The static facts about one expression.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprInfo {
    /// Its static type and shape.
    pub ty: Ty,
    /// Whether it depends on a sample or param site.
    pub latent: bool,
}

impl Default for ExprInfo {
    fn default() -> Self {
        ExprInfo {
            ty: Ty::Unknown,
            latent: false,
        }
    }
}

/// A call matched to its callee's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct CallInfo {
    /// What is called.
    pub callee: Reference,
    /// The arguments by parameter name (the alternative actually used, e.g. `logits`), in the
    /// callee's parameter order; absent optional parameters are left out.
    pub arguments: Vec<(String, NodeId)>,
}

/// A site of the trace, as far as it is known statically.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// The kind of site; `Lift` and `Module` each stand for their generated weight sites.
    pub kind: SiteFunction,
    /// The name, with interpolations written `{k}`.
    pub name: String,
    /// The call that creates it.
    pub call: NodeId,
    /// Where the call is.
    pub span: Span,
    /// The enclosing plates, outermost first.
    pub plates: Vec<String>,
    /// The function whose body holds it, if not the model.
    pub function: Option<String>,
}

/// A plate statement's resolved arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateInfo {
    /// The plate's name.
    pub name: String,
    /// Its full size.
    pub size: Dim,
    /// The mini-batch size under `subsample`.
    pub subsample: Option<Dim>,
    /// The batch dimension it occupies (negative, counted from the right).
    pub dim: i64,
    /// The binding of `as i`, if any.
    pub index: Option<BindingId>,
}

/// One layer of a network declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// Its position in `Sequential`, as PyTorch numbers layers (and as site names use it).
    pub index: usize,
    /// Which layer.
    pub spec: &'static LayerSpec,
    /// Input width for `Linear`.
    pub input: Option<Dim>,
    /// Output width for `Linear`.
    pub output: Option<Dim>,
    /// Whether a `Linear` layer has a bias.
    pub bias: bool,
    /// Where it is written.
    pub span: Span,
    /// The layer with its settings, where every one is a valid literal.
    pub layer: Option<ir::Layer>,
    /// The layers of a `Residual`'s branch.
    pub children: Vec<LayerInfo>,
}

/// A network declaration's layers.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkInfo {
    /// The layers in order.
    pub layers: Vec<LayerInfo>,
    /// Input width, when known.
    pub input: Option<Dim>,
    /// Output width, when known.
    pub output: Option<Dim>,
}

impl NetworkInfo {
    /// The weight sites lifting this network as `name` creates: `name_0_weight`, `name_0_bias`,
    /// … (`name_3_0_weight` for layer 0 of the `Residual` at position 3).
    pub fn weight_sites(&self, name: &str) -> Vec<String> {
        self.layers
            .iter()
            .filter_map(|layer| layer.layer.as_ref())
            .flat_map(|layer| layer.parameters(""))
            .map(|parameter| parameter.site(name))
            .collect()
    }
}

/// A value in an `infer` block.
#[derive(Clone, Debug, PartialEq)]
pub enum SettingValue {
    /// An integer.
    Int(i64),
    /// A real.
    Real(f64),
    /// A bare name such as `nuts`.
    Name(String),
    /// A string such as `"beta, beta0; gamma"`.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
}

/// Everything the checks learned about a program.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Every binding, indexed by [`BindingId`].
    pub bindings: Vec<Binding>,
    /// The binding each defining identifier introduces (keyed by the identifier's node id).
    pub definitions: HashMap<NodeId, BindingId>,
    /// What each name use refers to (keyed by the `Name` expression's or identifier's node id).
    pub references: HashMap<NodeId, Reference>,
    /// Facts per expression, indexed by [`NodeId::index`].
    pub exprs: Vec<ExprInfo>,
    /// Resolved calls, keyed by the call expression's node id.
    pub calls: HashMap<NodeId, CallInfo>,
    /// Sites in source order.
    pub sites: Vec<Site>,
    /// Plates, keyed by the span of their statement.
    pub plates: HashMap<Span, PlateInfo>,
    /// Network declarations, keyed by their binding.
    pub networks: HashMap<BindingId, NetworkInfo>,
    /// The `infer` block's settings.
    pub infer: BTreeMap<String, SettingValue>,
}

impl Analysis {
    /// The binding behind an id.
    pub fn binding(&self, id: BindingId) -> Option<&Binding> {
        self.bindings.get(id.0 as usize)
    }

    /// The facts about an expression.
    pub fn expr(&self, id: NodeId) -> Option<&ExprInfo> {
        self.exprs.get(id.index())
    }
}

/// The result of checking a program.
#[derive(Clone, Debug)]
pub struct Checked {
    /// What the checks learned; complete where the program is valid.
    pub analysis: Analysis,
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Resolves names and runs every static check over a parsed program.
pub fn check(program: &Program) -> Checked {
    check::Checker::new(program).run()
}
