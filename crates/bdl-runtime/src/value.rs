//! The values a running program manipulates: tensors on the tape (with their element type and
//! whether they can change between evaluations), strings, ranges, distributions, constraints,
//! networks and lifted networks.

use bdl_autodiff::{Tape, Tensor, Var};
use bdl_dist::{Constraint, Distribution};
use bdl_ir::ir::Layer;
use std::rc::Rc;

/// The element type of a tensor value; storage is always f64.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Elem {
    /// 0 or 1, from comparisons.
    Bool,
    /// Whole numbers: sizes, indices, counts, labels.
    Int,
    /// Reals.
    Real,
}

/// A plain tensor with its element type: data, and values read back from a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorValue {
    /// The numbers.
    pub tensor: Tensor,
    /// Whether they are integers.
    pub integer: bool,
}

impl TensorValue {
    /// Real numbers.
    pub fn real(tensor: Tensor) -> TensorValue {
        TensorValue {
            tensor,
            integer: false,
        }
    }

    /// Integers (the caller has checked that they are whole).
    pub fn int(tensor: Tensor) -> TensorValue {
        TensorValue {
            tensor,
            integer: true,
        }
    }

    /// One integer.
    pub fn int_scalar(value: f64) -> TensorValue {
        TensorValue::int(Tensor::scalar(value))
    }

    /// The value as a size or index, when it is one non-negative integer.
    pub fn as_usize(&self) -> Option<usize> {
        let value = self.tensor.item().ok()?;
        (value >= 0.0 && value.fract() == 0.0 && value < 9.0e15).then_some(value as usize)
    }
}

/// A tensor recorded on the tape.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct TensorVar {
    /// The node.
    pub var: Var,
    /// The element type.
    pub elem: Elem,
    /// Whether the value can differ from one evaluation to the next: it depends on a latent
    /// site, a `param`, or a mini-batch. Control flow that reads a volatile value makes the
    /// model's structure dynamic, so its recording cannot be replayed.
    pub volatile: bool,
}

/// A network's weights, ready to be called.
#[derive(Clone, Debug)]
pub struct ModuleValue {
    /// The site name it was lifted as.
    pub name: String,
    /// The layers of the network.
    pub layers: Vec<Layer>,
    /// Every weight tensor of every layer, in the order of [`Layer::parameters`].
    pub weights: Vec<TensorVar>,
}

/// A runtime value.
#[derive(Clone, Debug)]
pub enum Value {
    /// A tensor on the tape (scalars included).
    Tensor(TensorVar),
    /// A string (a file name or a site name).
    Str(String),
    /// The integers `start..end`.
    Range {
        /// First value.
        start: i64,
        /// One past the last value.
        end: i64,
    },
    /// A distribution; `volatile` when a parameter is.
    Dist(Box<Distribution>, bool),
    /// A constraint for `param`.
    Constraint(Constraint),
    /// A declared network (its index among the program's networks).
    Network(usize),
    /// A lifted network.
    Module(Rc<ModuleValue>),
    /// `None` in indexing.
    NewAxis,
    /// The result of a statement-like call with nothing to return.
    Unit,
}

impl Value {
    /// Words for messages.
    pub fn describe(&self, tape: &Tape) -> String {
        match self {
            Value::Tensor(t) => {
                let kind = match t.elem {
                    Elem::Bool => "boolean",
                    Elem::Int => "integer",
                    Elem::Real => "real",
                };
                let shape = tape.shape(t.var);
                if shape.is_empty() {
                    format!("a {kind} scalar")
                } else {
                    format!("a {kind} tensor of shape {shape:?}")
                }
            }
            Value::Str(_) => "a string".to_string(),
            Value::Range { .. } => "a range".to_string(),
            Value::Dist(dist, _) => format!("a `{}` distribution", dist.family().name()),
            Value::Constraint(_) => "a constraint".to_string(),
            Value::Network(_) => "a network".to_string(),
            Value::Module(_) => "a lifted network".to_string(),
            Value::NewAxis => "`None`".to_string(),
            Value::Unit => "nothing".to_string(),
        }
    }
}
