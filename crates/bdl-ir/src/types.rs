//! Static types and shapes.
//!
//! A shape is a list of dimensions, each a literal size, a size symbol (a size variable such as
//! `N` bound in the data block, or a declared `int`), or unknown. Two dimensions *conflict* only
//! when both are literals and differ: a symbol may take any value, so the checker never reports
//! what it cannot prove. Broadcasting follows NumPy.

use crate::catalogue::DistributionSpec;
use std::fmt;

/// One dimension of a static shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known from a literal.
    Const(i64),
    /// A size named by a size variable or an `int` data declaration.
    Size(String),
    /// A size not known before running.
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Const(value) => write!(f, "{value}"),
            Dim::Size(name) => f.write_str(name),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

impl Dim {
    /// Whether two dimensions are provably different.
    pub fn conflicts(&self, other: &Dim) -> bool {
        matches!((self, other), (Dim::Const(a), Dim::Const(b)) if a != b)
    }

    /// The literal value, if known.
    pub fn constant(&self) -> Option<i64> {
        match self {
            Dim::Const(value) => Some(*value),
            _ => None,
        }
    }
}

/// A static shape: known rank with (possibly unknown) dimensions, or unknown altogether.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Rank and every dimension unknown.
    Unknown,
    /// Known rank; a scalar has no dimensions.
    Known(Vec<Dim>),
}

impl Shape {
    /// The shape of a scalar.
    pub fn scalar() -> Shape {
        Shape::Known(Vec::new())
    }

    /// The dimensions when the rank is known.
    pub fn dims(&self) -> Option<&[Dim]> {
        match self {
            Shape::Known(dims) => Some(dims),
            Shape::Unknown => None,
        }
    }

    /// The rank when known.
    pub fn rank(&self) -> Option<usize> {
        self.dims().map(<[Dim]>::len)
    }

    /// Whether this is known to be a scalar.
    pub fn is_scalar(&self) -> bool {
        self.rank() == Some(0)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Unknown => f.write_str("[...]"),
            Shape::Known(dims) => {
                let dims: Vec<String> = dims.iter().map(Dim::to_string).collect();
                write!(f, "[{}]", dims.join(", "))
            }
        }
    }
}

/// Two shapes that cannot broadcast: the axes (counted from the right, 1-based) and sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastConflict {
    /// Which axis from the right disagrees.
    pub axis_from_right: usize,
    /// The left operand's size there.
    pub left: i64,
    /// The right operand's size there.
    pub right: i64,
}

/// NumPy broadcasting of two static shapes.
pub fn broadcast(left: &Shape, right: &Shape) -> Result<Shape, BroadcastConflict> {
    let (Some(a), Some(b)) = (left.dims(), right.dims()) else {
        return Ok(Shape::Unknown);
    };
    let rank = a.len().max(b.len());
    let mut dims = Vec::with_capacity(rank);
    for axis in 0..rank {
        let from_right = rank - axis;
        let x = a
            .len()
            .checked_sub(from_right)
            .map_or(&Dim::Const(1), |i| &a[i]);
        let y = b
            .len()
            .checked_sub(from_right)
            .map_or(&Dim::Const(1), |i| &b[i]);
        let dim = match (x, y) {
            (Dim::Const(1), other) | (other, Dim::Const(1)) => other.clone(),
            (Dim::Const(p), Dim::Const(q)) if p != q => {
                return Err(BroadcastConflict {
                    axis_from_right: from_right,
                    left: *p,
                    right: *q,
                })
            }
            (p, q) if p == q => p.clone(),
            (Dim::Unknown, _) | (_, Dim::Unknown) => Dim::Unknown,
            // A symbol against a different symbol or a literal: either may be 1 at run time.
            _ => Dim::Unknown,
        };
        dims.push(dim);
    }
    Ok(Shape::Known(dims))
}

/// The element type of a tensor.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Elem {
    /// `true`/`false`, from comparisons.
    Bool,
    /// Integers: sizes, indices, counts, labels.
    Int,
    /// Reals.
    Real,
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Elem::Bool => "bool",
            Elem::Int => "int",
            Elem::Real => "real",
        })
    }
}

/// The static type of an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// Not known statically (function parameters, results of user functions).
    Unknown,
    /// A tensor (a scalar is a tensor of rank 0).
    Tensor {
        /// Element type.
        elem: Elem,
        /// Static shape.
        shape: Shape,
    },
    /// A string (site names, file names).
    Str,
    /// `None`: a new axis in indexing.
    NewAxis,
    /// A distribution value such as `Normal(0, 1)`.
    Distribution {
        /// Which distribution.
        spec: &'static DistributionSpec,
        /// Its batch shape.
        batch: Shape,
        /// Its event shape.
        event: Shape,
    },
    /// A layer or a network declared with `network` (not callable until lifted).
    Network {
        /// Input width, when known.
        input: Option<Dim>,
        /// Output width, when known.
        output: Option<Dim>,
    },
    /// A lifted network (`lift` or `module`): callable on inputs `[N, input]`.
    Module {
        /// Input width, when known.
        input: Option<Dim>,
        /// Output width, when known.
        output: Option<Dim>,
    },
    /// A user function (its index among the program's `fn` items).
    Function(usize),
    /// A constraint for `param`.
    Constraint,
    /// A built-in named without being called (an error when used as a value).
    Builtin,
}

impl Ty {
    /// A real tensor of the given shape.
    pub fn real(shape: Shape) -> Ty {
        Ty::Tensor {
            elem: Elem::Real,
            shape,
        }
    }

    /// An integer tensor of the given shape.
    pub fn int(shape: Shape) -> Ty {
        Ty::Tensor {
            elem: Elem::Int,
            shape,
        }
    }

    /// The static shape of a tensor, `Unknown` for anything else.
    pub fn shape(&self) -> Shape {
        match self {
            Ty::Tensor { shape, .. } => shape.clone(),
            _ => Shape::Unknown,
        }
    }

    /// Whether a value of this type can be used as a tensor (unknown types can).
    pub fn is_tensor_like(&self) -> bool {
        matches!(self, Ty::Tensor { .. } | Ty::Unknown)
    }

    /// Words for messages: "a real vector of shape [N]", "a distribution", ….
    pub fn describe(&self) -> String {
        match self {
            Ty::Unknown => "a value".to_string(),
            Ty::Tensor { elem, shape } => match shape {
                Shape::Known(dims) if dims.is_empty() => format!("a scalar {elem}"),
                _ => format!("a {elem} tensor of shape {shape}"),
            },
            Ty::Str => "a string".to_string(),
            Ty::NewAxis => "`None`".to_string(),
            Ty::Distribution { spec, .. } => format!("a `{}` distribution", spec.name),
            Ty::Network { .. } => "a network".to_string(),
            Ty::Module { .. } => "a lifted network".to_string(),
            Ty::Function(_) => "a function".to_string(),
            Ty::Constraint => "a constraint".to_string(),
            Ty::Builtin => "a built-in function".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(dims: &[Dim]) -> Shape {
        Shape::Known(dims.to_vec())
    }

    #[test]
    fn broadcasting_follows_numpy_and_reports_literal_conflicts() {
        let n = Dim::Size("N".into());
        let a = known(&[n.clone(), Dim::Const(3)]);
        let b = known(&[Dim::Const(3)]);
        assert_eq!(broadcast(&a, &b), Ok(known(&[n.clone(), Dim::Const(3)])));
        let c = known(&[Dim::Const(4)]);
        assert_eq!(
            broadcast(&a, &c),
            Err(BroadcastConflict {
                axis_from_right: 1,
                left: 3,
                right: 4
            })
        );
        // A symbol against a literal is not an error: N may be 1 or 4.
        assert!(broadcast(&known(&[n]), &c).is_ok());
    }
}
