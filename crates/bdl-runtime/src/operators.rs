//! Operators, indexing and built-in functions of the language, on the tape.
//!
//! Arithmetic with a literal number uses the tape's scalar forms (`x * 2`, `x ^ 2`), so that
//! literals cost no node. Integer results stay integers where the operation allows it.

use crate::error::RuntimeError;
use crate::interpret::{check_tensor_size, join_elems, range_length, Interpreter};
use crate::value::{Elem, TensorVar, Value};
use bdl_autodiff::{Tensor, Var};
use bdl_diagnostics::Span;
use bdl_ir::ir::{arg, Arg, Expr, ExprKind, IndexItem};
use bdl_syntax::{BinaryOp, UnaryOp};

/// A literal number, if the expression is one (possibly negated).
fn literal(expr: &Expr) -> Option<f64> {
    match &expr.kind {
        ExprKind::Int(value) => Some(*value as f64),
        ExprKind::Real(value) => Some(*value),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => literal(operand).map(|v| -v),
        _ => None,
    }
}

impl Interpreter<'_> {
    pub(crate) fn unary(&mut self, op: UnaryOp, value: TensorVar) -> TensorVar {
        match op {
            UnaryOp::Neg => TensorVar {
                var: self.tape.neg(value.var),
                ..value
            },
            UnaryOp::Not => TensorVar {
                var: self.tape.not(value.var),
                elem: Elem::Bool,
                ..value
            },
        }
    }

    pub(crate) fn binary(
        &mut self,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        let left_literal = literal(lhs);
        let right_literal = literal(rhs);
        let left = self.tensor(lhs)?;
        let right = self.tensor(rhs)?;
        let volatile = left.volatile || right.volatile;
        let both_int = left.elem == Elem::Int && right.elem == Elem::Int;
        let arithmetic_elem = if both_int { Elem::Int } else { Elem::Real };
        let tape = &mut *self.tape;
        let result: Result<(Var, Elem), bdl_autodiff::TensorError> = match op {
            BinaryOp::Add => match (left_literal, right_literal) {
                (_, Some(c)) => Ok((tape.add_scalar(left.var, c), arithmetic_elem)),
                (Some(c), _) => Ok((tape.add_scalar(right.var, c), arithmetic_elem)),
                _ => tape.add(left.var, right.var).map(|v| (v, arithmetic_elem)),
            },
            BinaryOp::Sub => match (left_literal, right_literal) {
                (_, Some(c)) => Ok((tape.sub_scalar(left.var, c), arithmetic_elem)),
                (Some(c), _) => Ok((tape.scalar_sub(c, right.var), arithmetic_elem)),
                _ => tape.sub(left.var, right.var).map(|v| (v, arithmetic_elem)),
            },
            BinaryOp::Mul => match (left_literal, right_literal) {
                (_, Some(c)) => Ok((tape.mul_scalar(left.var, c), arithmetic_elem)),
                (Some(c), _) => Ok((tape.mul_scalar(right.var, c), arithmetic_elem)),
                _ => tape.mul(left.var, right.var).map(|v| (v, arithmetic_elem)),
            },
            BinaryOp::Div => match (left_literal, right_literal) {
                (_, Some(c)) => Ok((tape.div_scalar(left.var, c), Elem::Real)),
                (Some(c), _) => Ok((tape.scalar_div(c, right.var), Elem::Real)),
                _ => tape.div(left.var, right.var).map(|v| (v, Elem::Real)),
            },
            BinaryOp::Pow => {
                let elem = if both_int && right_literal.is_some_and(|c| c >= 0.0) {
                    Elem::Int
                } else {
                    Elem::Real
                };
                match right_literal {
                    Some(2.0) => Ok((tape.square(left.var), elem)),
                    Some(1.0) => Ok((left.var, elem)),
                    Some(c) => Ok((tape.pow_scalar(left.var, c), elem)),
                    None => tape.pow(left.var, right.var).map(|v| (v, Elem::Real)),
                }
            }
            BinaryOp::Rem => {
                if volatile {
                    return Err(RuntimeError::model(
                        "E0541",
                        "`%` is defined only on data and constants, not on sampled values",
                        span,
                    ));
                }
                let a = tape.value(left.var).clone();
                let b = tape.value(right.var).clone();
                let shape =
                    crate::interpret::broadcast_shape(a.shape(), b.shape()).ok_or_else(|| {
                        RuntimeError::model(
                            "E0501",
                            format!(
                                "cannot broadcast shapes {:?} and {:?}",
                                a.shape(),
                                b.shape()
                            ),
                            span,
                        )
                    })?;
                let out = broadcast_binary(&a, &b, &shape, |x, y| x - y * (x / y).floor());
                Ok((tape.constant(out), arithmetic_elem))
            }
            BinaryOp::MatMul => tape.matmul(left.var, right.var).map(|v| (v, Elem::Real)),
            BinaryOp::Eq => tape.eq(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Ne => tape.ne(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Lt => tape.lt(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Le => tape.le(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Gt => tape.gt(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Ge => tape.ge(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::And => tape.and(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Or => tape.or(left.var, right.var).map(|v| (v, Elem::Bool)),
            BinaryOp::Range => {
                return Err(RuntimeError::model(
                    "E0503",
                    "a range is not a tensor operand here",
                    span,
                ));
            }
        };
        let (var, elem) = result.map_err(|error| self.tensor_error(error, span))?;
        Ok(TensorVar {
            var,
            elem,
            volatile,
        })
    }

    /// `base[items]`: positions remove an axis, slices keep it, `None` adds one, and an integer
    /// vector gathers along its axis.
    pub(crate) fn index(
        &mut self,
        base: TensorVar,
        items: &[IndexItem],
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        let mut current = base;
        let mut axis = 0usize;
        for item in items {
            let rank = self.tape.shape(current.var).len();
            match item {
                IndexItem::Slice { start, end } => {
                    if axis >= rank {
                        return Err(too_many_indices(rank, span));
                    }
                    let size = self.tape.shape(current.var)[axis] as i64;
                    let start = match start {
                        Some(expr) => normalise(self.int_of(expr, "a slice bound")?, size),
                        None => 0,
                    };
                    let end = match end {
                        Some(expr) => normalise(self.int_of(expr, "a slice bound")?, size),
                        None => size,
                    };
                    let (start, end) = (start.clamp(0, size), end.clamp(0, size));
                    if (start, end) != (0, size) {
                        let var = self
                            .tape
                            .slice(
                                current.var,
                                axis as isize,
                                start as usize,
                                end.max(start) as usize,
                            )
                            .map_err(|e| self.tensor_error(e, span))?;
                        current = TensorVar { var, ..current };
                    }
                    axis += 1;
                }
                IndexItem::Expr(expr) => {
                    match self.eval(expr)? {
                        Value::NewAxis => {
                            let var = self
                                .tape
                                .expand_dims(current.var, axis as isize)
                                .map_err(|e| self.tensor_error(e, span))?;
                            current = TensorVar { var, ..current };
                            axis += 1;
                        }
                        Value::Range { start, end } => {
                            let index = self.range_tensor(start, end, expr.span)?;
                            current = self.gather(current, index, axis, rank, expr.span)?;
                            axis += 1;
                        }
                        Value::Tensor(index) => {
                            if axis >= rank {
                                return Err(too_many_indices(rank, span));
                            }
                            if index.elem == Elem::Real {
                                return Err(RuntimeError::model(
                                    "E0542",
                                    "an index must be an integer or a vector of integers",
                                    expr.span,
                                ));
                            }
                            if self.tape.shape(index.var).is_empty() {
                                let raw = self.int_of(expr, "an index")?;
                                let size = self.tape.shape(current.var)[axis] as i64;
                                let position = normalise(raw, size);
                                if position < 0 || position >= size {
                                    return Err(RuntimeError::model(
                                    "E0543",
                                    format!("index {raw} is out of range for an axis of size {size}"),
                                    expr.span,
                                ));
                                }
                                let var = self
                                    .tape
                                    .index(current.var, axis as isize, position as usize)
                                    .map_err(|e| self.tensor_error(e, span))?;
                                current = TensorVar { var, ..current };
                            } else {
                                current = self.gather(current, index, axis, rank, expr.span)?;
                                axis += 1;
                            }
                        }
                        other => {
                            return Err(RuntimeError::model(
                                "E0542",
                                format!("cannot index with {}", other.describe(self.tape)),
                                expr.span,
                            ))
                        }
                    }
                }
            }
        }
        Ok(current)
    }

    fn gather(
        &mut self,
        base: TensorVar,
        index: TensorVar,
        axis: usize,
        rank: usize,
        span: Span,
    ) -> Result<TensorVar, RuntimeError> {
        if axis >= rank {
            return Err(too_many_indices(rank, span));
        }
        let size = self.tape.shape(base.var)[axis];
        // Indexing with every position in order (a plate without subsampling) is the identity.
        if !index.volatile {
            let positions = self.tape.value(index.var);
            if positions.rank() == 1
                && positions.len() == size
                && positions
                    .data()
                    .iter()
                    .enumerate()
                    .all(|(i, &p)| p == i as f64)
            {
                return Ok(base);
            }
            if let Some(&bad) = positions
                .data()
                .iter()
                .find(|&&p| p < 0.0 || p >= size as f64)
            {
                return Err(RuntimeError::model(
                    "E0543",
                    format!("index {bad} is out of range for an axis of size {size}"),
                    span,
                ));
            }
        }
        let var = self
            .tape
            .gather(base.var, index.var, axis as isize)
            .map_err(|e| self.tensor_error(e, span))?;
        Ok(TensorVar {
            var,
            elem: base.elem,
            volatile: base.volatile || index.volatile,
        })
    }

    /// An optional `axis` argument: an integer (negative counts from the end).
    fn axis_arg(&mut self, args: &[Arg]) -> Result<Option<isize>, RuntimeError> {
        match arg(args, "axis") {
            Some(expr) => Ok(Some(self.int_of(expr, "an axis")? as isize)),
            None => Ok(None),
        }
    }

    /// Stan's `log_mix`: `log Σₖ wₖ exp(lpₖ)`, computed as `logsumexp(log w + lp)` along the
    /// component axis. The forms are `log_mix(theta, lp1, lp2)` with a scalar θ (weights θ and
    /// 1 − θ), `log_mix(w, lp1, …, lpK)` with K weights along the last axis of `w`, and
    /// `log_mix(w, lps)` with the K log-densities along the last axis of `lps`. The weights are
    /// used as given, as in Stan (they should sum to one).
    fn log_mix(&mut self, args: &[Arg], span: Span) -> Result<Value, RuntimeError> {
        let weights_expr = arg(args, "weights")
            .ok_or_else(|| RuntimeError::model("E0540", "missing argument `weights`", span))?;
        let weights = self.tensor(weights_expr)?;
        let mut volatile = weights.volatile;
        let mut densities = Vec::new();
        for name in ["lp1", "lp2", "lp3", "lp4", "lp5", "lp6", "lp7", "lp8"] {
            if let Some(expr) = arg(args, name) {
                let value = self.tensor(expr)?;
                volatile |= value.volatile;
                densities.push(value.var);
            }
        }
        let weight_shape = self.tape.shape(weights.var).to_vec();
        let count_error = |weights: String, components: String| {
            RuntimeError::model(
                "E0610",
                format!("`log_mix` has {weights} but {components}"),
                span,
            )
            .with_hint(
                "give one weight per log-density (a scalar theta stands for theta and 1 - theta)",
            )
        };
        let error = |e| RuntimeError::model("E0610", format!("`log_mix`: {e}"), span);
        let tape = &mut *self.tape;
        // The log-weights, with the components along the last axis.
        let log_weights = if weight_shape.is_empty() {
            if densities.len() != 2 {
                return Err(count_error(
                    "a scalar weight theta".to_string(),
                    format!("{} log-densities", densities.len()),
                ));
            }
            let log_theta = tape.log(weights.var);
            let negated = tape.neg(weights.var);
            let log_complement = tape.log1p(negated);
            tape.stack(&[log_theta, log_complement], -1)
                .map_err(error)?
        } else {
            tape.log(weights.var)
        };
        let count = *tape.shape(log_weights).last().unwrap_or(&1);
        // The log-densities, with the components along the last axis.
        let stacked = if densities.len() == 1 {
            let lps = densities[0];
            if tape.shape(lps).last() != Some(&count) {
                return Err(count_error(
                    format!("{count} weights"),
                    format!(
                        "log-densities of shape {:?} (the last axis counts the components)",
                        tape.shape(lps)
                    ),
                ));
            }
            lps
        } else {
            if densities.len() != count {
                return Err(count_error(
                    format!("{count} weights"),
                    format!("{} log-densities", densities.len()),
                ));
            }
            let mut common: Vec<usize> = Vec::new();
            for lp in &densities {
                common = bdl_dist::shape::broadcast_shapes(&common, tape.shape(*lp)).ok_or_else(
                    || {
                        RuntimeError::model(
                            "E0610",
                            "the log-densities of `log_mix` do not broadcast together",
                            span,
                        )
                    },
                )?;
            }
            let spread = densities
                .iter()
                .map(|lp| tape.broadcast_to(*lp, &common))
                .collect::<Result<Vec<_>, _>>()
                .map_err(error)?;
            tape.stack(&spread, -1).map_err(error)?
        };
        let weighted = tape.add(stacked, log_weights).map_err(error)?;
        let var = tape.logsumexp_axis(weighted, -1, false).map_err(error)?;
        Ok(Value::Tensor(TensorVar {
            var,
            elem: Elem::Real,
            volatile,
        }))
    }

    /// An elementwise built-in of two arguments, broadcast together.
    fn binary_builtin(
        &mut self,
        name: &str,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        let names: [&str; 2] = match name {
            "atan2" => ["y", "x"],
            "lbeta" => ["a", "b"],
            "lchoose" => ["n", "k"],
            _ => ["x", "y"],
        };
        let mut operands = Vec::with_capacity(2);
        for wanted in names {
            let expr = arg(args, wanted).ok_or_else(|| {
                RuntimeError::model("E0540", format!("missing argument `{wanted}`"), span)
            })?;
            operands.push(self.tensor(expr)?);
        }
        let (first, second) = (operands[0], operands[1]);
        let (a, b) = (first.var, second.var);
        let tape = &mut *self.tape;
        let var = match name {
            "pow" => tape.pow(a, b),
            "fmin" => tape.le(a, b).and_then(|c| tape.select(c, a, b)),
            "fmax" => tape.ge(a, b).and_then(|c| tape.select(c, a, b)),
            "hypot" => {
                let (a2, b2) = (tape.square(a), tape.square(b));
                tape.add(a2, b2).map(|sum| tape.sqrt(sum))
            }
            "atan2" => tape.atan2(a, b),
            // log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b).
            "lbeta" => {
                let (la, lb) = (tape.lgamma(a), tape.lgamma(b));
                tape.add(a, b).and_then(|sum| {
                    let lsum = tape.lgamma(sum);
                    let partial = tape.add(la, lb)?;
                    tape.sub(partial, lsum)
                })
            }
            // log C(n, k) = log Γ(n + 1) − log Γ(k + 1) − log Γ(n − k + 1).
            _ => {
                let n1 = tape.add_scalar(a, 1.0);
                let k1 = tape.add_scalar(b, 1.0);
                let (ln, lk) = (tape.lgamma(n1), tape.lgamma(k1));
                tape.sub(n1, b).and_then(|rest| {
                    let lrest = tape.lgamma(rest);
                    let partial = tape.sub(ln, lk)?;
                    tape.sub(partial, lrest)
                })
            }
        }
        .map_err(|e| self.tensor_error(e, span))?;
        // fmin and fmax of integers are integers; the others are real.
        let elem = if matches!(name, "fmin" | "fmax") {
            join_elems(&operands)
        } else {
            Elem::Real
        };
        Ok(Value::Tensor(TensorVar {
            var,
            elem,
            volatile: first.volatile || second.volatile,
        }))
    }

    /// Calls a built-in function.
    pub(crate) fn builtin(
        &mut self,
        name: &str,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, RuntimeError> {
        let x = |this: &mut Self| -> Result<TensorVar, RuntimeError> {
            let expr = arg(args, "x")
                .ok_or_else(|| RuntimeError::model("E0540", "missing argument `x`", span))?;
            this.tensor(expr)
        };
        let unary = |this: &mut Self,
                     f: fn(&mut bdl_autodiff::Tape, Var) -> Var|
         -> Result<Value, RuntimeError> {
            let value = x(this)?;
            let var = f(this.tape, value.var);
            Ok(Value::Tensor(TensorVar {
                var,
                elem: Elem::Real,
                volatile: value.volatile,
            }))
        };
        let value = match name {
            "exp" => return unary(self, |t, v| t.exp(v)),
            "log" => return unary(self, |t, v| t.log(v)),
            "log1p" => return unary(self, |t, v| t.log1p(v)),
            "expm1" => return unary(self, |t, v| t.expm1(v)),
            "sqrt" => return unary(self, |t, v| t.sqrt(v)),
            "square" => return unary(self, |t, v| t.square(v)),
            "abs" => {
                let value = x(self)?;
                TensorVar {
                    var: self.tape.abs(value.var),
                    ..value
                }
            }
            "tanh" => return unary(self, |t, v| t.tanh(v)),
            "sigmoid" => return unary(self, |t, v| t.sigmoid(v)),
            "relu" => return unary(self, |t, v| t.relu(v)),
            "softplus" => return unary(self, |t, v| t.softplus(v)),
            "log_sigmoid" => return unary(self, |t, v| t.log_sigmoid(v)),
            "lgamma" => return unary(self, |t, v| t.lgamma(v)),
            "digamma" => return unary(self, |t, v| t.digamma(v)),
            "erf" => return unary(self, |t, v| t.erf(v)),
            "erfc" => return unary(self, |t, v| t.erfc(v)),
            "log10" => {
                return unary(self, |t, v| {
                    let log = t.log(v);
                    t.mul_scalar(log, std::f64::consts::LOG10_E)
                })
            }
            "log2" => {
                return unary(self, |t, v| {
                    let log = t.log(v);
                    t.mul_scalar(log, std::f64::consts::LOG2_E)
                })
            }
            // logit p = log p − log(1 − p).
            "logit" => {
                let value = x(self)?;
                let log = self.tape.log(value.var);
                let negated = self.tape.neg(value.var);
                let log_complement = self.tape.log1p(negated);
                let var = self
                    .tape
                    .sub(log, log_complement)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile: value.volatile,
                }
            }
            "inv_logit" => return unary(self, |t, v| t.sigmoid(v)),
            "log_inv_logit" => return unary(self, |t, v| t.log_sigmoid(v)),
            // log(1 − σ(x)) = log σ(−x).
            "log1m_inv_logit" => {
                return unary(self, |t, v| {
                    let negated = t.neg(v);
                    t.log_sigmoid(negated)
                })
            }
            // The real cube root: sign(x) · |x|^(1/3).
            "cbrt" => {
                let value = x(self)?;
                let magnitude = self.tape.abs(value.var);
                let root = self.tape.pow_scalar(magnitude, 1.0 / 3.0);
                let negative_root = self.tape.neg(root);
                let zero = self.tape.constant(Tensor::scalar(0.0));
                let negative = self
                    .tape
                    .lt(value.var, zero)
                    .map_err(|e| self.tensor_error(e, span))?;
                let var = self
                    .tape
                    .select(negative, negative_root, root)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile: value.volatile,
                }
            }
            // Stan's step: 0 where x < 0, 1 elsewhere (no gradient).
            "step" => {
                let value = x(self)?;
                let zero = self.tape.constant(Tensor::scalar(0.0));
                let var = self
                    .tape
                    .ge(value.var, zero)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile: value.volatile,
                }
            }
            "pow" | "fmin" | "fmax" | "hypot" | "atan2" | "lbeta" | "lchoose" => {
                return self.binary_builtin(name, args, span)
            }
            "log_mix" => return self.log_mix(args, span),
            "sum" | "mean" | "max" | "min" | "logsumexp" => {
                let value = x(self)?;
                let axis = self.axis_arg(args)?;
                let tape = &mut *self.tape;
                let var = match axis {
                    None => Ok(match name {
                        "sum" => tape.sum(value.var),
                        "mean" => tape.mean(value.var),
                        "max" => tape.max(value.var),
                        "min" => tape.min(value.var),
                        _ => tape.logsumexp(value.var),
                    }),
                    Some(a) => match name {
                        "sum" => tape.sum_axis(value.var, a, false),
                        "mean" => tape.mean_axis(value.var, a, false),
                        "max" => tape.max_axis(value.var, a, false),
                        "min" => tape.min_axis(value.var, a, false),
                        _ => tape.logsumexp_axis(value.var, a, false),
                    },
                }
                .map_err(|e| self.tensor_error(e, span))?;
                let elem = if matches!(name, "sum" | "max" | "min") && value.elem == Elem::Int {
                    Elem::Int
                } else {
                    Elem::Real
                };
                TensorVar {
                    var,
                    elem,
                    volatile: value.volatile,
                }
            }
            "softmax" | "log_softmax" => {
                let value = x(self)?;
                let axis = self.axis_arg(args)?.unwrap_or(-1);
                let var = if name == "softmax" {
                    self.tape.softmax(value.var, axis)
                } else {
                    self.tape.log_softmax(value.var, axis)
                }
                .map_err(|e| self.tensor_error(e, span))?;
                TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile: value.volatile,
                }
            }
            "stack" | "concat" => {
                let xs = arg(args, "xs")
                    .ok_or_else(|| RuntimeError::model("E0540", "missing argument `xs`", span))?;
                let values = self.list_elements(xs)?;
                let axis = self.axis_arg(args)?.unwrap_or(0);
                if name == "stack" {
                    self.stack_values(&values, axis, span)?
                } else {
                    if values.is_empty() {
                        return Err(RuntimeError::model(
                            "E0544",
                            "`concat` needs at least one tensor",
                            span,
                        ));
                    }
                    let vars: Vec<Var> = values.iter().map(|v| v.var).collect();
                    let var = self
                        .tape
                        .concat(&vars, axis)
                        .map_err(|e| self.tensor_error(e, span))?;
                    TensorVar {
                        var,
                        elem: join_elems(&values),
                        volatile: values.iter().any(|v| v.volatile),
                    }
                }
            }
            "reshape" => {
                let value = x(self)?;
                let shape_expr = arg(args, "shape").ok_or_else(|| {
                    RuntimeError::model("E0540", "missing argument `shape`", span)
                })?;
                let shape = self.shape_of(shape_expr)?;
                let var = self
                    .tape
                    .reshape(value.var, &shape)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar { var, ..value }
            }
            "transpose" => {
                let value = x(self)?;
                TensorVar {
                    var: self.tape.transpose(value.var),
                    ..value
                }
            }
            "len" => {
                let expr = arg(args, "x")
                    .ok_or_else(|| RuntimeError::model("E0540", "missing argument `x`", span))?;
                let length = match self.eval(expr)? {
                    Value::Range { start, end } => range_length(start, end) as f64,
                    Value::Tensor(value) => match self.tape.shape(value.var).first() {
                        Some(&n) => n as f64,
                        None => {
                            return Err(RuntimeError::model(
                                "E0545",
                                "`len` of a scalar",
                                expr.span,
                            ))
                        }
                    },
                    other => {
                        return Err(RuntimeError::model(
                            "E0545",
                            format!("`len` of {}", other.describe(self.tape)),
                            expr.span,
                        ))
                    }
                };
                self.int_constant(length)
            }
            "range" => {
                let start = arg(args, "start").ok_or_else(|| {
                    RuntimeError::model("E0540", "missing argument `start`", span)
                })?;
                let first = self.int_of(start, "a range bound")?;
                return Ok(match arg(args, "stop") {
                    Some(stop) => Value::Range {
                        start: first,
                        end: self.int_of(stop, "a range bound")?,
                    },
                    None => Value::Range {
                        start: 0,
                        end: first,
                    },
                });
            }
            "clamp" => {
                let value = x(self)?;
                let bound = |this: &mut Self, name: &str| -> Result<f64, RuntimeError> {
                    let expr = arg(args, name).ok_or_else(|| {
                        RuntimeError::model("E0540", format!("missing argument `{name}`"), span)
                    })?;
                    let value = this.tensor(expr)?;
                    this.scalar(value, expr.span)
                };
                let (low, high) = (bound(self, "low")?, bound(self, "high")?);
                let var = self
                    .tape
                    .clamp(value.var, low, high)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar { var, ..value }
            }
            "where" => {
                let get = |this: &mut Self, name: &str| -> Result<TensorVar, RuntimeError> {
                    let expr = arg(args, name).ok_or_else(|| {
                        RuntimeError::model("E0540", format!("missing argument `{name}`"), span)
                    })?;
                    this.tensor(expr)
                };
                let (condition, on_true, on_false) =
                    (get(self, "condition")?, get(self, "x")?, get(self, "y")?);
                let var = self
                    .tape
                    .select(condition.var, on_true.var, on_false.var)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar {
                    var,
                    elem: join_elems(&[on_true, on_false]),
                    volatile: condition.volatile || on_true.volatile || on_false.volatile,
                }
            }
            "cholesky" => {
                let value = x(self)?;
                let var = self
                    .tape
                    .cholesky(value.var)
                    .map_err(|e| self.tensor_error(e, span))?;
                TensorVar {
                    var,
                    elem: Elem::Real,
                    volatile: value.volatile,
                }
            }
            "zeros" | "ones" => {
                let shape_expr = arg(args, "shape").ok_or_else(|| {
                    RuntimeError::model("E0540", "missing argument `shape`", span)
                })?;
                let shape = self.shape_of(shape_expr)?;
                check_tensor_size(&format!("`{name}`"), &shape, span)?;
                let fill = if name == "zeros" { 0.0 } else { 1.0 };
                self.real_constant(Tensor::full(&shape, fill))
            }
            "eye" => {
                let n_expr = arg(args, "n")
                    .ok_or_else(|| RuntimeError::model("E0540", "missing argument `n`", span))?;
                let n = self.usize_of(n_expr, "the size of `eye`")?;
                check_tensor_size("`eye`", &[n, n], span)?;
                let mut data = vec![0.0; n * n];
                for i in 0..n {
                    data[i * n + i] = 1.0;
                }
                let tensor =
                    Tensor::from_shape(&[n, n], data).map_err(|e| self.tensor_error(e, span))?;
                self.real_constant(tensor)
            }
            other => {
                return Err(RuntimeError::model(
                    "E0546",
                    format!("`{other}` is not a built-in function"),
                    span,
                ))
            }
        };
        Ok(Value::Tensor(value))
    }
}

/// A negative index counts from the end.
fn normalise(index: i64, size: i64) -> i64 {
    if index < 0 {
        size + index
    } else {
        index
    }
}

fn too_many_indices(rank: usize, span: Span) -> RuntimeError {
    RuntimeError::model(
        "E0543",
        format!("too many indices for a tensor of rank {rank}"),
        span,
    )
}

/// Applies `f` elementwise with NumPy broadcasting to the target `shape`.
fn broadcast_binary(
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> Tensor {
    let count: usize = shape.iter().product();
    let at = |tensor: &Tensor, flat: usize| -> f64 {
        let source = tensor.shape();
        let mut rest = flat;
        let mut offset = 0;
        let mut stride = 1;
        for axis in (0..shape.len()).rev() {
            let coordinate = rest % shape[axis];
            rest /= shape[axis];
            let from_right = shape.len() - axis;
            if let Some(source_axis) = source.len().checked_sub(from_right) {
                let size = source[source_axis];
                if size != 1 {
                    offset += coordinate * stride;
                }
                stride *= size;
            }
        }
        tensor.data()[offset]
    };
    let data: Vec<f64> = (0..count).map(|i| f(at(a, i), at(b, i))).collect();
    Tensor::from_shape(shape, data).unwrap_or_else(|_| Tensor::zeros(shape))
}
