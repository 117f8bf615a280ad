//! The interpreter: runs the statements of a lowered program on a tape, sending every site
//! through the handler stack.
//!
//! Expressions are evaluated eagerly into tape nodes, so one run both computes the model and
//! records it. While it runs, the interpreter notes whether control flow ever read a value that
//! can change between evaluations (a latent site, a param, a mini-batch); if none did, the
//! recording can be replayed at new inputs instead of interpreting the program again.

use crate::data::DataSet;
use crate::error::RuntimeError;
use crate::handlers::{Handler, Message, PlateFrame, SiteKind};
use crate::value::{Elem, TensorVar, Value};
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_diagnostics::Span;
use bdl_dist::{Constraint, DistError, Distribution, Family, MixtureWeights};
use bdl_infer::rng::Rng;
use bdl_ir::catalogue::SiteFunction;
use bdl_ir::ir::{
    arg, Arg, Expr, ExprKind, NamePart, Plate, Program, SiteName, SlotId, Stmt, StmtKind,
};
use std::collections::HashSet;

/// The deepest chain of user-function calls allowed (recursion would otherwise never end).
const MAX_CALL_DEPTH: usize = 64;

/// The most calls of user functions one run of the model may make. Depth alone does not bound a
/// run: a function that calls the one before it twice, 40 deep, makes 2^40 calls. A model
/// above the limit is refused (E0601) instead of running for hours.
pub const MAX_CALLS_PER_RUN: usize = 1_000_000;

/// The number of iterations after which a loop is stopped as runaway.
const MAX_LOOP_ITERATIONS: i64 = 10_000_000;

/// How a run treats plates and sites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Ignore `subsample`: every plate runs over all its indices (prediction, diagnostics).
    pub full_plates: bool,
    /// Draw dropout masks (stochastic fits and predictive draws); otherwise `Dropout` is the
    /// identity, so the density is a deterministic function of the position.
    pub dropout: bool,
}

/// A mini-batch drawn by a subsampled plate: the constant node holding its indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Subsample {
    /// The node holding the indices (as f64).
    pub var: Var,
    /// The plate's full size.
    pub size: usize,
    /// The number of indices drawn.
    pub batch: usize,
}

/// Why a run's recording cannot be replayed.
#[derive(Clone, Debug, PartialEq)]
pub struct Dynamic {
    /// What read a changing value.
    pub reason: String,
    /// Where.
    pub span: Span,
}

/// What a statement did to the flow of control.
enum Flow {
    Next,
    Return(Value),
}

/// Runs one program on one tape.
pub struct Interpreter<'a> {
    program: &'a Program,
    data: &'a DataSet,
    /// The tape every value is recorded on.
    pub tape: &'a mut Tape,
    frame: Vec<Option<Value>>,
    /// The handler stack, outermost first.
    pub handlers: Vec<Box<dyn Handler + 'a>>,
    plates: Vec<PlateFrame>,
    site_names: HashSet<String>,
    call_depth: usize,
    /// The calls of user functions made so far in this run.
    calls: usize,
    /// The site whose arguments are being evaluated, for messages.
    site_context: Option<String>,
    pub(crate) options: RunOptions,
    /// Set when control flow read a value that can change between evaluations.
    pub dynamic: Option<Dynamic>,
    /// The mini-batches drawn, in order.
    pub subsamples: Vec<Subsample>,
    /// The dropout masks drawn, in order.
    pub dropout_masks: Vec<crate::network::DropoutMask>,
    /// What calls of lifted networks on data-only inputs do: computed here (the default),
    /// recorded for another device, or substituted by outputs computed there.
    pub network_calls: crate::network::NetworkCalls,
    /// Set once a site's values enumerate a discrete support: later distributions may carry
    /// enumeration dimensions.
    enumerating: bool,
}

impl<'a> Interpreter<'a> {
    /// An interpreter with an empty handler stack.
    pub fn new(
        program: &'a Program,
        data: &'a DataSet,
        tape: &'a mut Tape,
        options: RunOptions,
    ) -> Self {
        let mut frame = vec![None; program.slots.len()];
        for (index, network) in program.networks.iter().enumerate() {
            if let Some(cell) = frame.get_mut(network.slot.index()) {
                *cell = Some(Value::Network(index));
            }
        }
        Interpreter {
            program,
            data,
            tape,
            frame,
            handlers: Vec::new(),
            plates: Vec::new(),
            site_names: HashSet::new(),
            call_depth: 0,
            calls: 0,
            site_context: None,
            options,
            dynamic: None,
            subsamples: Vec::new(),
            dropout_masks: Vec::new(),
            network_calls: crate::network::NetworkCalls::Compute,
            enumerating: false,
        }
    }

    /// Pushes a handler inside every handler already on the stack.
    pub fn push(&mut self, handler: impl Handler + 'a) {
        self.handlers.push(Box::new(handler));
    }

    /// Runs the model block.
    pub fn run_model(&mut self) -> Result<(), RuntimeError> {
        let program = self.program;
        match self.block(&program.model)? {
            Flow::Next | Flow::Return(_) => Ok(()),
        }
    }

    /// The value a slot holds after a run (the last value bound to it), if any. The REPL reads
    /// the names its input defined this way.
    pub fn slot_value(&self, slot: SlotId) -> Option<&Value> {
        self.frame.get(slot.index())?.as_ref()
    }

    /// Runs the data block's `let` statements and returns the values they bound.
    pub fn run_data_lets(&mut self) -> Result<Vec<(SlotId, TensorVar)>, RuntimeError> {
        let program = self.program;
        let mut bound = Vec::new();
        for stmt in &program.data_lets {
            self.stmt(stmt)?;
            if let StmtKind::Let { slot, .. } = &stmt.kind {
                if let Some(Value::Tensor(value)) = &self.frame[slot.index()] {
                    bound.push((*slot, *value));
                }
            }
        }
        Ok(bound)
    }

    // ------------------------------------------------------------------ statements

    fn block(&mut self, stmts: &[Stmt]) -> Result<Flow, RuntimeError> {
        for stmt in stmts {
            if let Flow::Return(value) = self.stmt(stmt)? {
                return Ok(Flow::Return(value));
            }
        }
        Ok(Flow::Next)
    }

    fn stmt(&mut self, stmt: &Stmt) -> Result<Flow, RuntimeError> {
        match &stmt.kind {
            StmtKind::Let { slot, value } | StmtKind::Assign { slot, value } => {
                let value = self.eval(value)?;
                self.frame[slot.index()] = Some(value);
            }
            StmtKind::Expr(value) => {
                self.eval(value)?;
            }
            StmtKind::Plate(plate) => return self.plate(plate, stmt.span),
            StmtKind::If {
                condition,
                then_body,
                else_body,
            } => {
                let value = self.tensor(condition)?;
                self.note_control(value, "an `if` condition", condition.span);
                let truth = self.scalar(value, condition.span)? != 0.0;
                return self.block(if truth { then_body } else { else_body });
            }
            StmtKind::For { var, iter, body } => {
                let values = self.iteration_values(iter)?;
                for value in values {
                    self.frame[var.index()] = Some(value);
                    if let Flow::Return(value) = self.block(body)? {
                        return Ok(Flow::Return(value));
                    }
                }
            }
            StmtKind::Return(value) => return Ok(Flow::Return(self.eval(value)?)),
        }
        Ok(Flow::Next)
    }

    /// The values a `for` loop or a comprehension runs over: the integers of a range, or the
    /// slices of a tensor along its first axis.
    fn iteration_values(&mut self, iter: &Expr) -> Result<Vec<Value>, RuntimeError> {
        match self.eval(iter)? {
            Value::Range { start, end } => {
                if end - start > MAX_LOOP_ITERATIONS {
                    return Err(RuntimeError::model(
                        "E0520",
                        format!("a loop over {} values is too long", end - start),
                        iter.span,
                    ));
                }
                Ok((start..end)
                    .map(|k| Value::Tensor(self.int_constant(k as f64)))
                    .collect())
            }
            Value::Tensor(value) => {
                self.note_control(value, "a loop's range", iter.span);
                let shape = self.tape.shape(value.var).to_vec();
                let Some(&count) = shape.first() else {
                    return Err(RuntimeError::model(
                        "E0521",
                        "cannot loop over a scalar",
                        iter.span,
                    ));
                };
                let mut values = Vec::with_capacity(count);
                for position in 0..count {
                    let var = self
                        .tape
                        .index(value.var, 0, position)
                        .map_err(|e| self.tensor_error(e, iter.span))?;
                    values.push(Value::Tensor(TensorVar { var, ..value }));
                }
                Ok(values)
            }
            other => Err(RuntimeError::model(
                "E0521",
                format!("cannot loop over {}", other.describe(self.tape)),
                iter.span,
            )),
        }
    }

    fn plate(&mut self, plate: &Plate, span: Span) -> Result<Flow, RuntimeError> {
        let size = self.usize_of(&plate.size, "a plate's size")?;
        let mut batch = match &plate.subsample {
            Some(expr) => self.usize_of(expr, "a plate's subsample size")?,
            None => size,
        };
        check_tensor_size(&format!("plate `{}`", plate.name), &[size], span)?;
        if batch > size {
            return Err(RuntimeError::model(
                "E0522",
                format!(
                    "plate `{}` subsamples {batch} of only {size} indices",
                    plate.name
                ),
                span,
            )
            .with_hint("the subsample size must not exceed the plate's size"));
        }
        if self.options.full_plates {
            batch = size;
        }
        let index = if batch < size {
            let Some(rng) = self.rng() else {
                return Err(RuntimeError::model(
                    "E0523",
                    format!(
                        "plate `{}` draws mini-batches but the run has no random stream",
                        plate.name
                    ),
                    span,
                ));
            };
            let drawn: Vec<f64> = rand::seq::index::sample(rng, size, batch)
                .into_iter()
                .map(|i| i as f64)
                .collect();
            let var = self.tape.constant(Tensor::vector(drawn));
            self.subsamples.push(Subsample { var, size, batch });
            TensorVar {
                var,
                elem: Elem::Int,
                volatile: true,
            }
        } else {
            let all: Vec<f64> = (0..size).map(|i| i as f64).collect();
            TensorVar {
                var: self.tape.constant(Tensor::vector(all)),
                elem: Elem::Int,
                volatile: false,
            }
        };
        if let Some(slot) = plate.index {
            self.frame[slot.index()] = Some(Value::Tensor(index));
        }
        if self.plates.iter().any(|frame| frame.dim == plate.dim) {
            return Err(RuntimeError::model(
                "E0524",
                format!(
                    "plate `{}` uses dimension {} which an enclosing plate already uses",
                    plate.name, plate.dim
                ),
                span,
            )
            .with_hint("give nested plates different `dim`s"));
        }
        self.plates.push(PlateFrame {
            name: plate.name.clone(),
            size,
            batch,
            dim: plate.dim,
        });
        let flow = self.block(&plate.body);
        self.plates.pop();
        flow
    }

    // ------------------------------------------------------------------ helpers

    /// Records that control flow read `value`; a changing value makes the structure dynamic.
    fn note_control(&mut self, value: TensorVar, what: &str, span: Span) {
        if value.volatile && self.dynamic.is_none() {
            self.dynamic = Some(Dynamic {
                reason: format!("{what} depends on sampled values or a mini-batch"),
                span,
            });
        }
    }

    /// The random stream of the innermost handler that has one.
    fn rng(&mut self) -> Option<&mut Rng> {
        self.handlers
            .iter_mut()
            .rev()
            .find_map(|handler| handler.rng())
    }

    pub(crate) fn run_rng(&mut self) -> Option<&mut Rng> {
        self.rng()
    }

    pub(crate) fn in_plate(&self) -> bool {
        !self.plates.is_empty()
    }

    pub(crate) fn program_network(&self, index: usize) -> &bdl_ir::ir::Network {
        &self.program.networks[index]
    }

    pub(crate) fn run_site_message(&mut self, message: Message) -> Result<TensorVar, RuntimeError> {
        self.run_site(message)
    }

    pub(crate) fn int_constant(&mut self, value: f64) -> TensorVar {
        TensorVar {
            var: self.tape.constant(Tensor::scalar(value)),
            elem: Elem::Int,
            volatile: false,
        }
    }

    pub(crate) fn real_constant(&mut self, tensor: Tensor) -> TensorVar {
        TensorVar {
            var: self.tape.constant(tensor),
            elem: Elem::Real,
            volatile: false,
        }
    }

    pub(crate) fn tensor_error(
        &self,
        error: bdl_autodiff::TensorError,
        span: Span,
    ) -> RuntimeError {
        let prefix = self
            .site_context
            .as_ref()
            .map(|site| format!("site `{site}`: "))
            .unwrap_or_default();
        RuntimeError::model("E0501", format!("{prefix}{error}"), span)
    }

    /// Evaluates an expression that must be a tensor.
    pub(crate) fn tensor(&mut self, expr: &Expr) -> Result<TensorVar, RuntimeError> {
        match self.eval(expr)? {
            Value::Tensor(value) => Ok(value),
            Value::Range { start, end } => self.range_tensor(start, end, expr.span),
            other => Err(RuntimeError::model(
                "E0503",
                format!(
                    "expected a number or a tensor, found {}",
                    other.describe(self.tape)
                ),
                expr.span,
            )),
        }
    }

    pub(crate) fn range_tensor(
        &mut self,
        start: i64,
        end: i64,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        check_tensor_size("`range`", &[range_length(start, end)], span)?;
        let values: Vec<f64> = (start..end.max(start)).map(|k| k as f64).collect();
        Ok(TensorVar {
            var: self.tape.constant(Tensor::vector(values)),
            elem: Elem::Int,
            volatile: false,
        })
    }

    /// The single number in a one-element tensor.
    pub(crate) fn scalar(&self, value: TensorVar, span: Span) -> Result<f64, RuntimeError> {
        self.tape.value(value.var).item().map_err(|_| {
            RuntimeError::model(
                "E0503",
                format!(
                    "expected a single number, found a tensor of shape {:?}",
                    self.tape.shape(value.var)
                ),
                span,
            )
        })
    }

    /// Evaluates an integer expression (sizes, indices, loop bounds).
    pub(crate) fn int_of(&mut self, expr: &Expr, what: &str) -> Result<i64, RuntimeError> {
        let value = self.tensor(expr)?;
        self.note_control(value, what, expr.span);
        let number = self.scalar(value, expr.span)?;
        if number.fract() != 0.0 || !number.is_finite() || number.abs() > 9.0e15 {
            return Err(RuntimeError::model(
                "E0504",
                format!("{what} must be an integer, found {number}"),
                expr.span,
            ));
        }
        Ok(number as i64)
    }

    /// Evaluates a size: a non-negative integer.
    pub(crate) fn usize_of(&mut self, expr: &Expr, what: &str) -> Result<usize, RuntimeError> {
        let value = self.int_of(expr, what)?;
        usize::try_from(value).map_err(|_| {
            RuntimeError::model(
                "E0504",
                format!("{what} must not be negative, found {value}"),
                expr.span,
            )
        })
    }

    /// Evaluates a shape written as a list of sizes (`[10]`, `[N, 3]`).
    pub(crate) fn shape_of(&mut self, expr: &Expr) -> Result<Vec<usize>, RuntimeError> {
        match &expr.kind {
            ExprKind::List(items) => items
                .iter()
                .map(|item| self.usize_of(item, "a size"))
                .collect(),
            _ => {
                let value = self.tensor(expr)?;
                self.note_control(value, "a shape", expr.span);
                let tensor = self.tape.value(value.var).clone();
                if tensor.rank() > 1 {
                    return Err(RuntimeError::model(
                        "E0504",
                        "a shape is a list of sizes",
                        expr.span,
                    ));
                }
                tensor
                    .data()
                    .iter()
                    .map(|&size| {
                        if size >= 0.0 && size.fract() == 0.0 {
                            Ok(size as usize)
                        } else {
                            Err(RuntimeError::model(
                                "E0504",
                                format!("a size must be a non-negative integer, found {size}"),
                                expr.span,
                            ))
                        }
                    })
                    .collect()
            }
        }
    }

    fn site_name(&mut self, name: &SiteName, span: Span) -> Result<String, RuntimeError> {
        let mut text = String::new();
        for part in &name.parts {
            match part {
                NamePart::Text(piece) => text.push_str(piece),
                NamePart::Slot(slot) => {
                    let Some(Value::Tensor(value)) = self.frame[slot.index()] else {
                        return Err(RuntimeError::model(
                            "E0505",
                            "a site name interpolates a name with no value",
                            span,
                        ));
                    };
                    self.note_control(value, "a site name", span);
                    let number = self.scalar(value, span)?;
                    text.push_str(&format!("{}", number as i64));
                }
            }
        }
        Ok(text)
    }

    // ------------------------------------------------------------------ expressions

    /// Evaluates an expression.
    pub(crate) fn eval(&mut self, expr: &Expr) -> Result<Value, RuntimeError> {
        let span = expr.span;
        Ok(match &expr.kind {
            ExprKind::Int(value) => Value::Tensor(self.int_constant(*value as f64)),
            ExprKind::Real(value) => Value::Tensor(self.real_constant(Tensor::scalar(*value))),
            ExprKind::Bool(value) => Value::Tensor(TensorVar {
                var: self
                    .tape
                    .constant(Tensor::scalar(f64::from(u8::from(*value)))),
                elem: Elem::Bool,
                volatile: false,
            }),
            ExprKind::NewAxis => Value::NewAxis,
            ExprKind::Str(name) => Value::Str(self.site_name(name, span)?),
            ExprKind::Slot(slot) => self.slot(*slot, span)?,
            ExprKind::List(items) => {
                let values = items
                    .iter()
                    .map(|item| self.tensor(item))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Tensor(self.stack_values(&values, 0, span)?)
            }
            ExprKind::Comprehension { .. } => {
                let values = self.list_elements(expr)?;
                Value::Tensor(self.stack_values(&values, 0, span)?)
            }
            ExprKind::Range { start, end } => {
                let start = self.int_of(start, "a range's start")?;
                let end = self.int_of(end, "a range's end")?;
                Value::Range { start, end }
            }
            ExprKind::Unary { op, operand } => {
                let value = self.tensor(operand)?;
                Value::Tensor(self.unary(*op, value))
            }
            ExprKind::Binary { op, lhs, rhs } => Value::Tensor(self.binary(*op, lhs, rhs, span)?),
            ExprKind::Builtin { spec, args } => self.builtin(spec.name, args, span)?,
            ExprKind::Distribution { spec, args } => self.distribution(spec.name, args, span)?,
            ExprKind::Constraint { spec, args } => self.constraint(spec.name, args, span)?,
            ExprKind::CallFunction { function, args } => {
                self.call_function(*function, args, span)?
            }
            ExprKind::CallModule { module, input } => {
                let Value::Module(module) = self.eval(module)? else {
                    return Err(RuntimeError::model(
                        "E0506",
                        "only a lifted network can be called",
                        span,
                    ));
                };
                Value::Tensor(self.call_module(&module, input, span)?)
            }
            ExprKind::Index { base, items } => {
                let base = self.tensor(base)?;
                Value::Tensor(self.index(base, items, span)?)
            }
            ExprKind::Site { kind, name, args } => self.site(*kind, name, args, span)?,
        })
    }

    fn slot(&mut self, slot: SlotId, span: Span) -> Result<Value, RuntimeError> {
        if let Some(value) = &self.frame[slot.index()] {
            return Ok(value.clone());
        }
        if let Some(data) = self.data.values.get(&slot) {
            let var = self.tape.constant(data.tensor.clone());
            let elem = if data.integer { Elem::Int } else { Elem::Real };
            let value = Value::Tensor(TensorVar {
                var,
                elem,
                volatile: false,
            });
            self.frame[slot.index()] = Some(value.clone());
            return Ok(value);
        }
        let name = self
            .program
            .slots
            .get(slot.index())
            .map_or("?", |s| s.name.as_str());
        let missing = self.data.missing.contains(&slot);
        Err(RuntimeError::model(
            "E0507",
            if missing {
                format!("`{name}` has no value: the data given for this run do not hold it")
            } else {
                format!("`{name}` has no value here")
            },
            span,
        ))
    }

    /// The elements of a list argument (`stack`, `concat`): a literal list, a comprehension, or
    /// the slices of a tensor along its first axis.
    pub(crate) fn list_elements(&mut self, expr: &Expr) -> Result<Vec<TensorVar>, RuntimeError> {
        match &expr.kind {
            ExprKind::List(items) => items.iter().map(|item| self.tensor(item)).collect(),
            ExprKind::Comprehension { var, iter, element } => {
                let values = self.iteration_values(iter)?;
                let mut out = Vec::with_capacity(values.len());
                for value in values {
                    self.frame[var.index()] = Some(value);
                    out.push(self.tensor(element)?);
                }
                Ok(out)
            }
            _ => {
                let value = self.tensor(expr)?;
                let count = self.tape.shape(value.var).first().copied().unwrap_or(0);
                (0..count)
                    .map(|position| {
                        let var = self
                            .tape
                            .index(value.var, 0, position)
                            .map_err(|e| self.tensor_error(e, expr.span))?;
                        Ok(TensorVar { var, ..value })
                    })
                    .collect()
            }
        }
    }

    pub(crate) fn stack_values(
        &mut self,
        values: &[TensorVar],
        axis: isize,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        if values.is_empty() {
            return Ok(self.real_constant(Tensor::zeros(&[0])));
        }
        let vars: Vec<Var> = values.iter().map(|v| v.var).collect();
        let var = self
            .tape
            .stack(&vars, axis)
            .map_err(|e| self.tensor_error(e, span))?;
        Ok(TensorVar {
            var,
            elem: join_elems(values),
            volatile: values.iter().any(|v| v.volatile),
        })
    }

    fn call_function(
        &mut self,
        function: usize,
        args: &[Expr],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        let program = self.program;
        let Some(definition) = program.functions.get(function) else {
            return Err(RuntimeError::model(
                "E0506",
                "call of an unknown function",
                span,
            ));
        };
        if self.call_depth >= MAX_CALL_DEPTH {
            return Err(RuntimeError::model(
                "E0508",
                format!(
                    "calls of `{}` nest deeper than {MAX_CALL_DEPTH}",
                    definition.name
                ),
                span,
            )
            .with_hint("functions may not call themselves without end"));
        }
        self.calls += 1;
        if self.calls > MAX_CALLS_PER_RUN {
            return Err(RuntimeError::model(
                "E0601",
                format!(
                    "one run of the model calls user functions more than {MAX_CALLS_PER_RUN} times (here `{}`)",
                    definition.name
                ),
                span,
            )
            .with_hint("a function that calls another more than once at each level makes exponentially many calls; compute the value once with `let`, or vectorise the loop"));
        }
        let values = args
            .iter()
            .map(|arg| self.eval(arg))
            .collect::<Result<Vec<_>, _>>()?;
        let saved = self.frame.clone();
        for (slot, value) in definition.params.iter().zip(values) {
            self.frame[slot.index()] = Some(value);
        }
        self.call_depth += 1;
        let flow = self.block(&definition.body);
        self.call_depth -= 1;
        self.frame = saved;
        match flow? {
            Flow::Return(value) => Ok(value),
            Flow::Next => Ok(Value::Unit),
        }
    }

    fn distribution(
        &mut self,
        family: &str,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        if family == "MixtureSameFamily" {
            return self.mixture(args, span);
        }
        let mut named = Vec::with_capacity(args.len());
        let mut volatile = false;
        for argument in args {
            let value = self.tensor(&argument.value)?;
            volatile |= value.volatile;
            named.push((argument.name.as_str(), value.var));
        }
        let dist = Distribution::from_call(self.tape, family, &named)
            .map_err(|error| self.dist_error(&error, volatile, span))?;
        Ok(Value::Dist(Box::new(dist), volatile))
    }

    /// `MixtureSameFamily(weights, component)`: the weights are a tensor of non-negative
    /// weights or a `Categorical` (its `probs` or `logits`), the component a distribution whose
    /// last batch axis lists the components.
    fn mixture(&mut self, args: &[Arg], span: Span) -> Result<Value, RuntimeError> {
        let weights_expr = arg(args, "weights")
            .or_else(|| arg(args, "mixture_distribution"))
            .ok_or_else(|| missing_argument("weights", span))?;
        let (weights, mut volatile) = match self.eval(weights_expr)? {
            Value::Tensor(value) => (MixtureWeights::Probs(value.var), value.volatile),
            Value::Dist(dist, volatile) if dist.family() == Family::Categorical => {
                let weights = match (dist.param("probs"), dist.param("logits")) {
                    (Some(probs), _) => MixtureWeights::Probs(probs),
                    (None, Some(logits)) => MixtureWeights::Logits(logits),
                    (None, None) => return Err(missing_argument("probs", weights_expr.span)),
                };
                (weights, volatile)
            }
            other => {
                return Err(RuntimeError::model(
                    "E0534",
                    format!(
                        "the weights of `MixtureSameFamily` must be a tensor or a `Categorical`, found {}",
                        other.describe(self.tape)
                    ),
                    weights_expr.span,
                ))
            }
        };
        let (component, component_volatile) =
            self.dist_arg(args, "component_distribution", span)?;
        volatile |= component_volatile;
        let dist = Distribution::mixture(self.tape, weights, &component)
            .map_err(|error| self.dist_error(&error, volatile, span))?;
        Ok(Value::Dist(Box::new(dist), volatile))
    }

    /// A distribution error as a runtime error: invalid parameters computed from latent values
    /// are numerical (a divergence), the rest are the model's mistakes.
    pub(crate) fn dist_error(&self, error: &DistError, volatile: bool, span: Span) -> RuntimeError {
        let prefix = self
            .site_context
            .as_ref()
            .map(|site| format!("site `{site}`: "))
            .unwrap_or_default();
        let message = format!("{prefix}{error}");
        match error {
            DistError::InvalidParameter { .. } if volatile => {
                RuntimeError::numerical("E0530", message, span)
            }
            DistError::InvalidParameter { .. } => RuntimeError::model("E0530", message, span)
                .with_hint(
                    "a parameter that is a fixed number must lie in the distribution's domain",
                ),
            _ => RuntimeError::model("E0531", message, span),
        }
    }

    fn constraint(&mut self, name: &str, args: &[Arg], span: Span) -> Result<Value, RuntimeError> {
        let mut numbers = Vec::with_capacity(args.len());
        for argument in args {
            let value = self.tensor(&argument.value)?;
            numbers.push(self.scalar(value, argument.value.span)?);
        }
        bdl_dist::Constraint::from_name(name, &numbers)
            .map(Value::Constraint)
            .ok_or_else(|| {
                RuntimeError::model(
                    "E0532",
                    format!("`{name}` is not a constraint with these arguments"),
                    span,
                )
            })
    }

    // ------------------------------------------------------------------ sites

    fn site(
        &mut self,
        kind: SiteFunction,
        name: &SiteName,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        let name = self.site_name(name, span)?;
        let outer_context = self.site_context.replace(name.clone());
        let result = self.site_in_context(kind, name, args, span);
        self.site_context = outer_context;
        result
    }

    fn site_in_context(
        &mut self,
        kind: SiteFunction,
        name: String,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        match kind {
            SiteFunction::Sample => {
                let dist = self.dist_arg(args, "dist", span)?;
                let dist = match arg(args, "shape") {
                    Some(shape_expr) => {
                        let shape = self.shape_of(shape_expr)?;
                        let target = broadcast_shape(dist.0.batch_shape(), &shape).ok_or_else(|| {
                            RuntimeError::model(
                                "E0533",
                                format!(
                                    "site `{name}`: `shape = {shape:?}` does not fit the distribution's batch shape {:?}",
                                    dist.0.batch_shape()
                                ),
                                shape_expr.span,
                            )
                        })?;
                        check_site_size(&name, &target, shape_expr.span)?;
                        let expanded = dist.0.expand(&target).and_then(|d| d.to_event(shape.len()));
                        (
                            expanded.map_err(|e| self.dist_error(&e, dist.1, span))?,
                            dist.1,
                        )
                    }
                    None => dist,
                };
                let constraint = match arg(args, "constraint") {
                    Some(expr) => Some(self.constraint_arg(expr)?),
                    None => None,
                };
                let mut message = Message::new(name, SiteKind::Sample, span);
                message.dist = Some(self.expand_to_plates(&message.name, dist.0, span)?);
                message.dist_volatile = dist.1;
                message.constraint = constraint;
                Ok(Value::Tensor(self.run_site(message)?))
            }
            SiteFunction::Observe => {
                let dist = self.dist_arg(args, "dist", span)?;
                let value_expr =
                    arg(args, "value").ok_or_else(|| missing_argument("value", span))?;
                let value = self.observed_value(value_expr)?;
                let mut message = Message::new(name, SiteKind::Observe, span);
                message.dist = Some(self.expand_to_plates(&message.name, dist.0, span)?);
                message.dist_volatile = dist.1;
                // Without data (predicting on new inputs) the site keeps its kind and is drawn
                // from its distribution by the default action.
                message.observed = value.is_some();
                message.value = value;
                if let Some(mask_expr) = arg(args, "mask") {
                    message.mask = Some(self.mask_arg(mask_expr)?);
                }
                Ok(Value::Tensor(self.run_site(message)?))
            }
            SiteFunction::Factor => {
                let term_expr = arg(args, "log_density")
                    .ok_or_else(|| missing_argument("log_density", span))?;
                let term = self.tensor(term_expr)?;
                if term.elem == Elem::Bool {
                    return Err(RuntimeError::model(
                        "E0548",
                        format!("factor `{name}`: the log-density term is boolean, not a number"),
                        term_expr.span,
                    ));
                }
                let mut message = Message::new(name, SiteKind::Factor, span);
                message.log_factor = Some(term.var);
                message.value = Some(TensorVar {
                    elem: Elem::Real,
                    ..term
                });
                Ok(Value::Tensor(self.run_site(message)?))
            }
            SiteFunction::Param => {
                let init_expr = arg(args, "init").ok_or_else(|| missing_argument("init", span))?;
                let init = self.tensor(init_expr)?;
                let init = TensorVar {
                    elem: Elem::Real,
                    ..init
                };
                let constraint = match arg(args, "constraint") {
                    Some(expr) => Some(self.constraint_arg(expr)?),
                    None => None,
                };
                let mut message = Message::new(name, SiteKind::Param, span);
                message.init = Some(init);
                message.constraint = constraint;
                Ok(Value::Tensor(self.run_site(message)?))
            }
            SiteFunction::Deterministic => {
                let value_expr =
                    arg(args, "value").ok_or_else(|| missing_argument("value", span))?;
                let value = self.tensor(value_expr)?;
                let mut message = Message::new(name, SiteKind::Deterministic, span);
                message.value = Some(value);
                Ok(Value::Tensor(self.run_site(message)?))
            }
            SiteFunction::Lift => self.lift(name, args, span),
            SiteFunction::Module => self.module(name, args, span),
        }
    }

    fn constraint_arg(&mut self, expr: &Expr) -> Result<Constraint, RuntimeError> {
        match self.eval(expr)? {
            Value::Constraint(constraint) => Ok(constraint),
            other => Err(RuntimeError::model(
                "E0532",
                format!("expected a constraint, found {}", other.describe(self.tape)),
                expr.span,
            )),
        }
    }

    fn dist_arg(
        &mut self,
        args: &[Arg],
        name: &str,
        span: Span,
    ) -> Result<(Distribution, bool), RuntimeError> {
        let expr = arg(args, name).ok_or_else(|| missing_argument(name, span))?;
        match self.eval(expr)? {
            Value::Dist(dist, volatile) => Ok((*dist, volatile)),
            other => Err(RuntimeError::model(
                "E0534",
                format!(
                    "expected a distribution, found {}",
                    other.describe(self.tape)
                ),
                expr.span,
            )),
        }
    }

    /// The observed value of an `observe`, or `None` when its data are absent on purpose
    /// (prediction on new inputs).
    fn observed_value(&mut self, expr: &Expr) -> Result<Option<TensorVar>, RuntimeError> {
        if self.refers_to_missing_data(expr) {
            return Ok(None);
        }
        let value = self.tensor(expr)?;
        Ok(Some(TensorVar {
            elem: value.elem,
            ..value
        }))
    }

    fn refers_to_missing_data(&self, expr: &Expr) -> bool {
        match &expr.kind {
            ExprKind::Slot(slot) => self.data.missing.contains(slot),
            ExprKind::Index { base, .. } => self.refers_to_missing_data(base),
            _ => false,
        }
    }

    /// Expands a site's distribution over the enclosing plates (Pyro's rule: each plate sets
    /// its dimension of the batch shape), reporting a clear error when a dimension disagrees.
    fn expand_to_plates(
        &self,
        site: &str,
        dist: Distribution,
        span: Span,
    ) -> Result<Distribution, RuntimeError> {
        if self.plates.is_empty() {
            return Ok(dist);
        }
        let batch = dist.batch_shape().to_vec();
        let needed = self
            .plates
            .iter()
            .map(|frame| (-frame.dim) as usize)
            .max()
            .unwrap_or(0);
        let rank = needed.max(batch.len());
        let mut target: Vec<usize> = (0..rank)
            .map(|axis| {
                let from_right = rank - axis;
                batch.len().checked_sub(from_right).map_or(1, |i| batch[i])
            })
            .collect();
        for frame in &self.plates {
            let axis = rank - (-frame.dim) as usize;
            let current = target[axis];
            if current != 1 && current != frame.batch {
                let what = if frame.batch == frame.size {
                    format!("size {}", frame.size)
                } else {
                    format!("mini-batches of {} (of {})", frame.batch, frame.size)
                };
                return Err(RuntimeError::model(
                    "E0535",
                    format!(
                        "site `{site}` in plate `{}`: the plate has {what} at dimension {}, but the distribution's batch shape {:?} has {} there",
                        frame.name, frame.dim, batch, current
                    ),
                    span,
                )
                .with_hint(if frame.batch < frame.size {
                    "index the data with the plate's indices: `plate(..., subsample = B) as i { ... x[i] ... }`"
                } else {
                    "make the parameters' shapes match the plate, or move the site out of the plate"
                }));
            }
            target[axis] = frame.batch;
        }
        if target == batch {
            return Ok(dist);
        }
        dist.expand(&target)
            .map_err(|error| self.dist_error(&error, false, span))
    }

    /// Sends a message through the handler stack, applies the default action, computes the
    /// log-density and lets the handlers record the result.
    fn run_site(&mut self, mut message: Message) -> Result<TensorVar, RuntimeError> {
        if !self.site_names.insert(message.name.clone()) {
            return Err(RuntimeError::model(
                "E0536",
                format!("site `{}` is used twice in one run", message.name),
                message.span,
            )
            .with_hint(
                "every site needs its own name; inside loops interpolate the index: \"w_{k}\"",
            ));
        }
        message.plates = self.plates.clone();
        message.scale = self.plates.iter().map(PlateFrame::scale).product();
        let mut processed = self.handlers.len();
        for index in (0..self.handlers.len()).rev() {
            self.handlers[index].process(&mut message, self.tape)?;
            processed = index;
            if message.stop {
                break;
            }
        }
        if message.value.is_none() {
            message.value = Some(self.default_value(&message)?);
        }
        if message.enumerated {
            self.enumerating = true;
        }
        let log_prob = match message.kind {
            SiteKind::Sample | SiteKind::Observe => {
                let (total, terms) = self.site_log_prob(&message)?;
                message.log_prob_terms = Some(terms);
                Some(total)
            }
            SiteKind::Factor => {
                message.log_prob_terms = message.log_factor;
                Some(self.factor_log_prob(&message)?)
            }
            _ => None,
        };
        for handler in &mut self.handlers[processed..] {
            handler.postprocess(&message, log_prob);
        }
        message.value.ok_or_else(|| {
            RuntimeError::model("E0537", "a site ended without a value", message.span)
        })
    }

    fn default_value(&mut self, message: &Message) -> Result<TensorVar, RuntimeError> {
        match message.kind {
            SiteKind::Sample | SiteKind::Observe => {
                let Some(dist) = message.dist.clone() else {
                    return Err(RuntimeError::model(
                        "E0537",
                        "a sample site without a distribution",
                        message.span,
                    ));
                };
                let span = message.span;
                let name = message.name.clone();
                let discrete = dist.support(self.tape).is_discrete();
                let Some(rng) = self
                    .handlers
                    .iter_mut()
                    .rev()
                    .find_map(|handler| handler.rng())
                else {
                    return Err(RuntimeError::model(
                        "E0538",
                        format!("site `{name}` needs a value or a random stream to draw one"),
                        span,
                    ));
                };
                let mut tensor_rng: &mut dyn rand::RngCore = rng;
                let drawn = dist
                    .sample(self.tape, &mut tensor_rng, &[])
                    .map_err(|error| {
                        RuntimeError::model("E0538", format!("site `{name}`: {error}"), span)
                    })?;
                let var = self.tape.constant(drawn);
                Ok(TensorVar {
                    var,
                    elem: if discrete { Elem::Int } else { Elem::Real },
                    volatile: true,
                })
            }
            SiteKind::Param => message
                .init
                .map(|init| TensorVar {
                    volatile: true,
                    ..init
                })
                .ok_or_else(|| {
                    RuntimeError::model(
                        "E0537",
                        "a param site without an initial value",
                        message.span,
                    )
                }),
            SiteKind::Deterministic | SiteKind::Factor => Err(RuntimeError::model(
                "E0537",
                "a deterministic or factor site without a value",
                message.span,
            )),
        }
    }

    /// The site's log-density summed over its batch, masked, scaled, with its log-Jacobian;
    /// and the masked log-density before summing (its terms).
    fn site_log_prob(&mut self, message: &Message) -> Result<(Var, Var), RuntimeError> {
        let (Some(dist), Some(value)) = (&message.dist, message.value) else {
            return Err(RuntimeError::model(
                "E0537",
                "a site without distribution or value",
                message.span,
            ));
        };
        let expected = dist.shape();
        let actual = self.tape.shape(value.var).to_vec();
        // Under enumeration a distribution may carry the enumerated values' dimensions on the
        // left of the plates' (one log-density per enumerated value): an observed value then
        // matches the distribution's trailing dimensions, and an enumerated value broadcasts.
        let fits = if message.enumerated {
            true
        } else if self.enumerating {
            expected.len() >= actual.len()
                && expected[expected.len() - actual.len()..] == actual[..]
        } else {
            actual == expected
        };
        if !fits {
            let plates: Vec<String> = message
                .plates
                .iter()
                .map(|p| format!("`{}`", p.name))
                .collect();
            let inside = if plates.is_empty() {
                String::new()
            } else {
                format!(" (inside plate {})", plates.join(", "))
            };
            return Err(RuntimeError::model(
                "E0539",
                format!(
                    "site `{}`{inside}: the value has shape {actual:?} but the distribution has shape {expected:?}",
                    message.name
                ),
                message.span,
            )
            .with_hint("the observed data must have the shape of the distribution: batch shape, then event shape"));
        }
        let volatile = value.volatile || message.dist_volatile;
        // A value from the distribution's own bijector is in its support; one from a site's
        // `constraint` may not be, so its density keeps the support test.
        let in_support = (message.unconstrained.is_some() && message.constraint.is_none())
            || self.observed_in_support(message, value)?;
        let log_prob = if in_support {
            dist.log_prob_in_support(self.tape, value.var)
        } else {
            dist.log_prob(self.tape, value.var)
        }
        .map_err(|error| self.dist_error(&error, volatile, message.span))?;
        let span = message.span;
        let mut log_prob = log_prob;
        if let Some(mask) = message.mask {
            // A choice rather than a product, so that a masked-out element contributes exactly
            // nothing even where its log-density is infinite.
            let unmasked_shape = self.tape.shape(log_prob).to_vec();
            let zero = self.tape.constant(Tensor::scalar(0.0));
            log_prob = self
                .tape
                .select(mask, log_prob, zero)
                .map_err(|e| self.tensor_error(e, span))?;
            let masked_shape = self.tape.shape(log_prob).to_vec();
            if masked_shape != unmasked_shape {
                return Err(RuntimeError::model(
                    "E0548",
                    format!(
                        "site `{}`: the mask (shape {:?}) does not fit the log-density's batch shape {unmasked_shape:?}",
                        message.name,
                        self.tape.shape(mask)
                    ),
                    span,
                )
                .with_hint("the mask needs one 0/1 entry per observed element (per row for a multivariate distribution)"));
            }
        }
        let terms = log_prob;
        let mut total = self.tape.sum(log_prob);
        if let Some(log_det) = message.log_det_jacobian {
            total = self
                .tape
                .add(total, log_det)
                .map_err(|e| self.tensor_error(e, span))?;
        }
        if message.scale != 1.0 {
            total = self.tape.mul_scalar(total, message.scale);
        }
        Ok((total, terms))
    }
}

impl Interpreter<'_> {
    /// A factor's term summed over its elements and scaled by its plates' mini-batch factors.
    fn factor_log_prob(&mut self, message: &Message) -> Result<Var, RuntimeError> {
        let term = message
            .log_factor
            .ok_or_else(|| RuntimeError::model("E0537", "a factor without a term", message.span))?;
        let mut total = self.tape.sum(term);
        if message.scale != 1.0 {
            total = self.tape.mul_scalar(total, message.scale);
        }
        Ok(total)
    }

    /// The `mask` of an `observe`: its values as 0/1 constants (non-zero keeps an element).
    fn mask_arg(&mut self, expr: &Expr) -> Result<Var, RuntimeError> {
        let mask = self.tensor(expr)?;
        let value = self.tape.value(mask.var);
        if let Some(bad) = value.data().iter().find(|v| **v != 0.0 && **v != 1.0) {
            return Err(RuntimeError::model(
                "E0548",
                format!("a mask holds 0 or 1 (or booleans), but this one holds {bad}"),
                expr.span,
            )
            .with_hint("1 (or true) keeps an element's log-density, 0 (or false) drops it"));
        }
        let constant = value.clone();
        Ok(self.tape.constant(constant))
    }

    /// Whether an observed value is known to lie in its distribution's support, checked once
    /// here: values fixed for the whole run (data) against a support that no changing parameter
    /// moves. A value outside such a support is an error in the data, not a log density of −∞
    /// to be discovered by a stuck sampler. Other values keep the support test on the tape.
    fn observed_in_support(
        &self,
        message: &Message,
        value: TensorVar,
    ) -> Result<bool, RuntimeError> {
        let Some(dist) = &message.dist else {
            return Ok(false);
        };
        if !message.observed || value.volatile {
            return Ok(false);
        }
        let support = dist.support(self.tape);
        let fixed = !message.dist_volatile
            || matches!(
                support,
                Constraint::Real
                    | Constraint::RealVector
                    | Constraint::Positive
                    | Constraint::UnitInterval
                    | Constraint::Boolean
                    | Constraint::NonnegativeInteger
                    | Constraint::Simplex
            )
            || (dist.family() == Family::Categorical
                && matches!(support, Constraint::IntegerInterval { .. }));
        if !fixed {
            return Ok(false);
        }
        match support.violation(self.tape.value(value.var)) {
            None => Ok(true),
            Some(problem) => Err(RuntimeError::model(
                "E0547",
                format!(
                    "the observed value of site `{}` is outside the support of {} ({support}): {problem}",
                    message.name,
                    dist.family().name()
                ),
                message.span,
            )
            .with_hint("check the data, or the distribution chosen for them")),
        }
    }
}

fn missing_argument(name: &str, span: Span) -> RuntimeError {
    RuntimeError::model("E0540", format!("missing argument `{name}`"), span)
}

/// The broadcast of two shapes (NumPy rules), if they broadcast.
pub(crate) fn broadcast_shape(left: &[usize], right: &[usize]) -> Option<Vec<usize>> {
    let rank = left.len().max(right.len());
    (0..rank)
        .map(|axis| {
            let from_right = rank - axis;
            let a = left.len().checked_sub(from_right).map_or(1, |i| left[i]);
            let b = right.len().checked_sub(from_right).map_or(1, |i| right[i]);
            match (a, b) {
                (a, b) if a == b => Some(a),
                (1, b) => Some(b),
                (a, 1) => Some(a),
                _ => None,
            }
        })
        .collect()
}

/// The element type of values combined: integer only when all are.
pub(crate) fn join_elems(values: &[TensorVar]) -> Elem {
    if values.iter().all(|v| v.elem == Elem::Int) {
        Elem::Int
    } else if values.iter().all(|v| v.elem == Elem::Bool) {
        Elem::Bool
    } else {
        Elem::Real
    }
}

/// The most elements one site may hold: 2^31 numbers (16 GiB of `f64`), far above any model
/// that fits in memory, so that a mistyped shape is a clear error instead of an aborted
/// allocation or a size that wraps.
pub const MAX_SITE_ELEMENTS: usize = 1 << 31;

/// The number of values of `range(start, end)`, computed without overflow (0 when `end` is not
/// above `start`; saturated at `usize::MAX`).
pub(crate) fn range_length(start: i64, end: i64) -> usize {
    if end <= start {
        return 0;
    }
    usize::try_from(end.abs_diff(start)).unwrap_or(usize::MAX)
}

/// Refuses a value built by `what` (`zeros`, `ones`, `eye`, `range`, a plate) whose shape holds
/// more than [`MAX_SITE_ELEMENTS`] elements, or whose element count overflows (E0600), naming
/// the expression, the shape and its size; the product is taken with checked arithmetic.
pub(crate) fn check_tensor_size(
    what: &str,
    shape: &[usize],
    span: Span,
) -> Result<(), RuntimeError> {
    let elements = shape
        .iter()
        .try_fold(1usize, |count, &extent| count.checked_mul(extent));
    match elements {
        Some(count) if count <= MAX_SITE_ELEMENTS => Ok(()),
        _ => {
            let size: f64 = shape.iter().map(|&extent| extent as f64).product();
            Err(RuntimeError::model(
                "E0600",
                format!(
                    "{what} would have shape {shape:?}, {size:e} elements: more than the limit of {MAX_SITE_ELEMENTS} elements per value"
                ),
                span,
            )
            .with_hint("check the sizes; a value holds at most 2^31 numbers"))
        }
    }
}

/// Refuses a site whose shape holds more than [`MAX_SITE_ELEMENTS`] elements (the product is
/// taken with checked arithmetic, so it cannot wrap), naming the site and its size.
fn check_site_size(name: &str, shape: &[usize], span: Span) -> Result<(), RuntimeError> {
    let elements = shape
        .iter()
        .try_fold(1usize, |count, &extent| count.checked_mul(extent));
    match elements {
        Some(count) if count <= MAX_SITE_ELEMENTS => Ok(()),
        _ => {
            // The exact product for the message, in floating point so that it cannot overflow.
            let size: f64 = shape.iter().map(|&extent| extent as f64).product();
            Err(RuntimeError::model(
                "E0549",
                format!(
                    "site `{name}` has shape {shape:?}, {size:e} elements: more than the limit of {MAX_SITE_ELEMENTS} elements per site"
                ),
                span,
            )
            .with_hint("check the sizes in `shape = [...]`"))
        }
    }
}
