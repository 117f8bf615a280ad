//! Discrete latent sites marginalised by enumeration, as Pyro's `TraceEnum_ELBO` and
//! NumPyro's `funsor` back end do it, and their posterior recovered afterwards (Pyro's
//! `infer_discrete`).
//!
//! **Parallel enumeration.** The [`Enumerate`] handler gives a discrete latent site with a
//! finite support {0, …, K − 1} the value `[0, 1, …, K − 1]` placed on a dimension of its own,
//! to the left of every plate's: the j-th enumerated site gets dimension `first_dim − j`, where
//! `first_dim = −(plate nesting + 1)`. Everything computed from the value broadcasts along that
//! dimension, so each log-density term that depends on the site carries one entry per value of
//! the support (and, inside a plate, one per row), without ever forming the product space of
//! several sites unless one term really depends on all of them.
//!
//! **Contraction.** [`contract`] sums the exponentiated terms over the enumerated values by
//! variable elimination over a tree of plates: terms are grouped by the set of plates they sit
//! in, the deepest set first; in a group, each site enumerated in exactly that set is
//! eliminated in the order the model met it (the terms that mention it are added and a
//! log-sum-exp runs over its dimension), and what is left is summed over the innermost plate
//! (times the plate's mini-batch factor) and handed to the enclosing set. For a chain of
//! sites along a loop (an HMM written with loop-carried state) elimination in the model's order
//! is the forward algorithm: no intermediate term is larger than K × K.
//!
//! **Recovering the sites.** Each elimination keeps the term it summed; [`sample_discrete`]
//! walks the eliminations backwards and draws every site from its conditional given the sites
//! eliminated after it (already drawn), per plate row: an exact draw from the discrete sites'
//! joint posterior given the continuous values (forward filtering, backward sampling).

use crate::error::RuntimeError;
use crate::handlers::{Handler, Message, PlateFrame, SiteKind};
use crate::value::{Elem, TensorVar};
use bdl_autodiff::{Tape, Tensor, Var};
use bdl_diagnostics::Span;
use bdl_dist::Family;
use bdl_infer::rng::Rng;
use bdl_ir::ir::{Program, Stmt, StmtKind};
use rand::Rng as _;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

/// The most values one enumerated site may take.
pub const MAX_SUPPORT: usize = 4096;

/// The most elements one term of the contraction may hold (a product space of enumerated
/// values times plate rows); a model above it is refused (E0614) rather than run out of memory.
pub const MAX_TERM_ELEMENTS: usize = 1 << 22;

/// One discrete latent site whose support is enumerated.
#[derive(Clone, Debug, PartialEq)]
pub struct EnumeratedSite {
    /// The site's name.
    pub name: String,
    /// The dimension its values occupy (negative, left of every plate's).
    pub dim: i64,
    /// The number of values: the support is {0, …, support − 1}.
    pub support: usize,
    /// The enclosing plates, outermost first.
    pub plates: Vec<PlateFrame>,
    /// The shape of one value of the site: its plates' batch sizes at their dimensions.
    pub shape: Vec<usize>,
    /// Where the site is written.
    pub span: Span,
}

/// The most plate dimensions any site of the program can have: the deepest `dim` of the
/// model's plates plus the deepest of the functions' (a function may be called in a plate).
pub fn plate_nesting(program: &Program) -> i64 {
    fn deepest(stmts: &[Stmt]) -> i64 {
        stmts
            .iter()
            .map(|stmt| match &stmt.kind {
                StmtKind::Plate(plate) => (-plate.dim).max(deepest(&plate.body)),
                StmtKind::If {
                    then_body,
                    else_body,
                    ..
                } => deepest(then_body).max(deepest(else_body)),
                StmtKind::For { body, .. } => deepest(body),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
    let functions = program
        .functions
        .iter()
        .map(|function| deepest(&function.body))
        .max()
        .unwrap_or(0);
    deepest(&program.model) + functions
}

/// Gives each free discrete latent site the values of its support on a dimension of its own.
pub struct Enumerate {
    /// The dimension of the first enumerated site: −(plate nesting + 1).
    pub first_dim: i64,
    /// The sites enumerated so far in this run, in order.
    pub sites: Rc<RefCell<Vec<EnumeratedSite>>>,
}

impl Enumerate {
    /// A handler for a program whose plates nest at most `plate_nesting` deep.
    pub fn new(plate_nesting: i64) -> Enumerate {
        Enumerate {
            first_dim: -(plate_nesting + 1),
            sites: Rc::new(RefCell::new(Vec::new())),
        }
    }

    fn plate_nesting(&self) -> usize {
        (-self.first_dim - 1) as usize
    }

    /// Checks that every dimension of `shape` (a distribution's batch shape) left of the plates'
    /// is an enumerated site's, of size 1 or that site's support; and that the plates' region
    /// holds only the enclosing plates' sizes (or 1).
    fn check_dimensions(
        &self,
        message: &Message,
        shape: &[usize],
        what: &str,
    ) -> Result<(), RuntimeError> {
        let nesting = self.plate_nesting();
        let sites = self.sites.borrow();
        for (axis, &size) in shape.iter().enumerate() {
            let dim = axis as i64 - shape.len() as i64;
            if size == 1 {
                continue;
            }
            if (-dim) as usize <= nesting {
                let plate = message.plates.iter().find(|frame| frame.dim == dim);
                if plate.is_some_and(|frame| frame.batch == size) {
                    continue;
                }
                return Err(RuntimeError::model(
                    "E0613",
                    format!(
                        "{what} `{}`: its batch dimension {dim} has size {size} but belongs to no enclosing plate; in a model with enumerated discrete sites every batch dimension is a plate's",
                        message.name
                    ),
                    message.span,
                )
                .with_hint("put the site inside a plate of that size, or give it `shape = [...]` to make the dimension part of one value"));
            }
            match sites.iter().find(|site| site.dim == dim) {
                Some(site) if site.support == size => {}
                _ => {
                    return Err(RuntimeError::model(
                        "E0613",
                        format!(
                            "{what} `{}`: its batch dimension {dim} of size {size} is left of every plate's and enumerates no discrete site",
                            message.name
                        ),
                        message.span,
                    )
                    .with_hint("in a model with enumerated discrete sites every batch dimension is a plate's; put the site inside a plate"))
                }
            }
        }
        Ok(())
    }
}

/// The number of values of a discrete distribution's support, or why it cannot be enumerated.
fn support_size(
    message: &Message,
    dist: &bdl_dist::Distribution,
    tape: &Tape,
) -> Result<usize, RuntimeError> {
    let unbounded = |family: &str| {
        RuntimeError::model(
            "E0612",
            format!(
                "site `{}`: a {family} latent variable has an unbounded support, which cannot be enumerated",
                message.name
            ),
            message.span,
        )
        .with_hint("bound it: write a Categorical over 0..B whose logits are the log-mass, e.g. `let k = range(B)` and `Categorical(logits = k * log(rate) - rate - lgamma(k + 1))`")
    };
    match dist.family() {
        Family::Bernoulli => Ok(2),
        Family::Categorical => Ok(dist
            .params()
            .first()
            .and_then(|param| tape.shape(param.var).last().copied())
            .unwrap_or(1)),
        Family::Binomial => {
            let counts = dist
                .params()
                .first()
                .map(|param| tape.value(param.var).data().to_vec())
                .unwrap_or_default();
            let largest = counts.iter().copied().fold(0.0_f64, f64::max);
            if !largest.is_finite() || largest >= MAX_SUPPORT as f64 {
                return Err(too_large(message, largest + 1.0));
            }
            Ok(largest as usize + 1)
        }
        Family::Poisson => Err(unbounded("Poisson")),
        Family::NegativeBinomial => Err(unbounded("NegativeBinomial")),
        other => Err(RuntimeError::model(
            "E0612",
            format!(
                "site `{}`: a {} latent variable cannot be enumerated",
                message.name,
                other.name()
            ),
            message.span,
        )
        .with_hint(
            "enumeration covers Bernoulli, Categorical and Binomial sites with scalar values",
        )),
    }
}

fn too_large(message: &Message, size: f64) -> RuntimeError {
    RuntimeError::model(
        "E0614",
        format!(
            "site `{}`: enumerating {size} values is too many (the limit is {MAX_SUPPORT})",
            message.name
        ),
        message.span,
    )
    .with_hint(
        "marginalise the variable by hand with `log_mix` or a `factor`, or make it continuous",
    )
}

impl Handler for Enumerate {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        if message.kind != SiteKind::Sample || !message.is_free() || message.value.is_some() {
            return Ok(());
        }
        let Some(dist) = message.dist.clone() else {
            return Ok(());
        };
        let discrete = dist.support(tape).is_discrete();
        if !discrete {
            // A continuous latent whose distribution depends on an enumerated value would
            // need one latent per enumerated value.
            if !self.sites.borrow().is_empty() {
                let batch = dist.batch_shape().to_vec();
                let depends = self
                    .sites
                    .borrow()
                    .iter()
                    .find(|site| {
                        let axis = batch.len() as i64 + site.dim;
                        axis >= 0 && batch[axis as usize] > 1
                    })
                    .map(|site| site.name.clone());
                if let Some(site) = depends {
                    return Err(RuntimeError::model(
                        "E0613",
                        format!(
                            "the distribution of the continuous latent site `{}` depends on the enumerated discrete site `{site}`",
                            message.name
                        ),
                        message.span,
                    )
                    .with_hint("an enumerated site may be used by observations, factors and other discrete sites; give the continuous site a distribution that does not depend on it"));
                }
                self.check_dimensions(message, &batch, "site")?;
            }
            return Ok(());
        }
        if !dist.event_shape().is_empty() {
            return Err(RuntimeError::model(
                "E0612",
                format!(
                    "site `{}`: a discrete latent site with event shape {:?} cannot be enumerated",
                    message.name,
                    dist.event_shape()
                ),
                message.span,
            )
            .with_hint("enumeration takes sites with one scalar value per plate row: put the site in a plate instead of giving it `shape = [...]`"));
        }
        let support = support_size(message, &dist, tape)?;
        if support > MAX_SUPPORT {
            return Err(too_large(message, support as f64));
        }
        self.check_dimensions(message, dist.batch_shape(), "site")?;
        let dim = self.first_dim - self.sites.borrow().len() as i64;
        let mut shape = vec![1; (-dim) as usize];
        shape[0] = support;
        let values: Vec<f64> = (0..support).map(|k| k as f64).collect();
        let tensor = Tensor::from_shape(&shape, values)
            .map_err(|error| RuntimeError::model("E0501", error.to_string(), message.span))?;
        let var = tape.constant(tensor);
        let rank = message
            .plates
            .iter()
            .map(|frame| (-frame.dim) as usize)
            .max()
            .unwrap_or(0);
        let mut natural = vec![1; rank];
        for frame in &message.plates {
            natural[rank - (-frame.dim) as usize] = frame.batch;
        }
        self.sites.borrow_mut().push(EnumeratedSite {
            name: message.name.clone(),
            dim,
            support,
            plates: message.plates.clone(),
            shape: natural,
            span: message.span,
        });
        message.value = Some(TensorVar {
            var,
            elem: Elem::Int,
            volatile: false,
        });
        message.enumerated = true;
        Ok(())
    }
}

/// Fixes discrete latent sites at given values, as integers (the second pass of
/// `infer_discrete`, and prediction from draws that hold them).
pub struct FixDiscrete {
    /// Values by site name, each of the site's shape.
    pub values: HashMap<String, Tensor>,
}

impl Handler for FixDiscrete {
    fn process(&mut self, message: &mut Message, tape: &mut Tape) -> Result<(), RuntimeError> {
        if message.is_free() && message.value.is_none() {
            if let Some(value) = self.values.get(&message.name) {
                let var = tape.constant(value.clone());
                message.value = Some(TensorVar {
                    var,
                    elem: Elem::Int,
                    volatile: true,
                });
            }
        }
        Ok(())
    }
}

/// One log-density term that depends on enumerated values.
#[derive(Clone, Debug)]
pub struct Term {
    /// The site it comes from (for messages).
    pub name: String,
    /// Its values: masked, before summing and scaling.
    pub var: Var,
    /// The plates of its site, outermost first.
    pub plates: Vec<PlateFrame>,
    /// How many enumerated sites the model had met when it made the term: only those can be
    /// among its dimensions (a dimension of an earlier site's batch shape is its own).
    pub met: usize,
    /// Where its site is written.
    pub span: Span,
}

/// One step of the elimination: the sum of the terms that mentioned a site, before the
/// log-sum-exp over its values.
#[derive(Clone, Debug)]
pub struct Elimination {
    /// The index of the site in the enumerated sites.
    pub site: usize,
    /// The summed terms.
    pub combined: Var,
}

/// The contraction's result: the marginal log-density (a scalar) and the eliminations, in
/// order.
#[derive(Clone, Debug)]
pub struct Contraction {
    /// log Σ over every enumerated value of exp(the terms' sum), with the plates' products.
    pub total: Var,
    /// The eliminations in the order they ran.
    pub eliminations: Vec<Elimination>,
}

/// Whether a term of this shape depends on the enumerated site.
pub fn mentions(shape: &[usize], site: &EnumeratedSite) -> bool {
    let axis = shape.len() as i64 + site.dim;
    axis >= 0 && shape[axis as usize] > 1
}

struct Pending {
    var: Var,
    sites: BTreeSet<usize>,
    plates: Vec<PlateFrame>,
    name: String,
    span: Span,
}

fn plate_names(plates: &[PlateFrame]) -> BTreeSet<&str> {
    plates.iter().map(|frame| frame.name.as_str()).collect()
}

/// Sums the exponentiated terms over every enumerated value (see the module's header).
pub fn contract(
    tape: &mut Tape,
    terms: Vec<Term>,
    sites: &[EnumeratedSite],
) -> Result<Contraction, RuntimeError> {
    let fail = |span: Span| {
        move |e: bdl_autodiff::TensorError| RuntimeError::model("E0501", e.to_string(), span)
    };
    let mut pending: Vec<Pending> = terms
        .into_iter()
        .map(|term| {
            let shape = tape.shape(term.var);
            let mentioned = sites[..term.met.min(sites.len())]
                .iter()
                .enumerate()
                .filter(|(_, site)| mentions(shape, site))
                .map(|(index, _)| index)
                .collect();
            Pending {
                var: term.var,
                sites: mentioned,
                plates: term.plates,
                name: term.name,
                span: term.span,
            }
        })
        .collect();
    let mut eliminations = Vec::new();
    let mut eliminated = vec![false; sites.len()];
    loop {
        let depth = pending.iter().map(|p| p.plates.len()).max().unwrap_or(0);
        let key: BTreeSet<String> = match pending.iter().find(|p| p.plates.len() == depth) {
            Some(first) => plate_names(&first.plates)
                .into_iter()
                .map(str::to_string)
                .collect(),
            None => BTreeSet::new(),
        };
        let (mut group, rest): (Vec<Pending>, Vec<Pending>) = pending.into_iter().partition(|p| {
            let names: BTreeSet<String> = p.plates.iter().map(|f| f.name.clone()).collect();
            names == key
        });
        pending = rest;
        // Sites whose plates are exactly this group's are eliminated here, in model order.
        for (index, site) in sites.iter().enumerate() {
            let names: BTreeSet<String> = site.plates.iter().map(|f| f.name.clone()).collect();
            if eliminated[index] || names != key {
                continue;
            }
            let (involved, others): (Vec<Pending>, Vec<Pending>) =
                group.into_iter().partition(|p| p.sites.contains(&index));
            group = others;
            eliminated[index] = true;
            let Some(first) = involved.first() else {
                continue;
            };
            let (plates, span, name) = (first.plates.clone(), first.span, first.name.clone());
            let mut combined = first.var;
            let mut mentioned = BTreeSet::new();
            for term in &involved {
                mentioned.extend(term.sites.iter().copied());
            }
            for term in &involved[1..] {
                let shape =
                    crate::interpret::broadcast_shape(tape.shape(combined), tape.shape(term.var));
                if let Some(shape) = shape {
                    let elements: usize = shape.iter().product();
                    if elements > MAX_TERM_ELEMENTS {
                        return Err(RuntimeError::model(
                            "E0614",
                            format!(
                                "enumerating site `{}` needs a term of {elements} elements (shape {shape:?}), more than the limit of {MAX_TERM_ELEMENTS}",
                                site.name
                            ),
                            site.span,
                        )
                        .with_hint("the discrete sites that one term depends on are enumerated jointly; make fewer of them interact, or marginalise some by hand"));
                    }
                }
                combined = tape.add(combined, term.var).map_err(fail(term.span))?;
            }
            eliminations.push(Elimination {
                site: index,
                combined,
            });
            let reduced = tape
                .logsumexp_axis(combined, site.dim as isize, true)
                .map_err(fail(site.span))?;
            mentioned.remove(&index);
            group.push(Pending {
                var: reduced,
                sites: mentioned,
                plates,
                name,
                span,
            });
        }
        // Every site still mentioned must be enumerated in an enclosing plate set.
        for term in &group {
            for &index in &term.sites {
                let site = &sites[index];
                let inside = site.plates.iter().all(|frame| key.contains(&frame.name));
                if eliminated[index] || !inside {
                    return Err(RuntimeError::model(
                        "E0613",
                        format!(
                            "site `{}` uses the enumerated site `{}` outside the plates `{}` is in",
                            term.name,
                            site.name,
                            site.name
                        ),
                        term.span,
                    )
                    .with_hint("an enumerated site inside a plate has one value per row; use it only inside that plate"));
                }
            }
        }
        if depth == 0 {
            let mut total = tape.constant(Tensor::scalar(0.0));
            for term in group {
                if !term.sites.is_empty() {
                    return Err(RuntimeError::model(
                        "E0501",
                        format!("site `{}`: a term kept enumerated values", term.name),
                        term.span,
                    ));
                }
                let summed = tape.sum(term.var);
                total = tape.add(total, summed).map_err(fail(term.span))?;
            }
            return Ok(Contraction {
                total,
                eliminations,
            });
        }
        // Sum over the innermost plate, and hand the result to the enclosing plate set.
        for mut term in group {
            let Some(frame) = term.plates.pop() else {
                continue;
            };
            let rank = tape.shape(term.var).len() as i64;
            if rank >= -frame.dim {
                term.var = tape
                    .sum_axis(term.var, frame.dim as isize, true)
                    .map_err(fail(term.span))?;
            }
            if frame.scale() != 1.0 {
                term.var = tape.mul_scalar(term.var, frame.scale());
            }
            pending.push(term);
        }
    }
}

/// Draws every enumerated site from its posterior given the continuous values the
/// eliminations were computed at: backwards through the eliminations, each site from its
/// conditional given the sites drawn before it, one draw per plate row. The values have the
/// sites' shapes.
pub fn sample_discrete(
    tape: &Tape,
    eliminations: &[Elimination],
    sites: &[EnumeratedSite],
    plate_nesting: usize,
    rng: &mut Rng,
) -> Vec<(String, Tensor)> {
    // Each drawn site's values over the full plate region (rank `plate_nesting`).
    let mut drawn: Vec<Option<Tensor>> = vec![None; sites.len()];
    for elimination in eliminations.iter().rev() {
        let site = &sites[elimination.site];
        let combined = tape.value(elimination.combined);
        let shape = combined.shape().to_vec();
        let strides = row_major_strides(&shape);
        let mut region = vec![1usize; plate_nesting];
        for frame in &site.plates {
            region[plate_nesting - (-frame.dim) as usize] = frame.batch;
        }
        let rows: usize = region.iter().product();
        let mut values = Vec::with_capacity(rows);
        let mut log_weights = vec![0.0; site.support];
        for row in 0..rows {
            let coordinates = unravel(row, &region);
            for (k, weight) in log_weights.iter_mut().enumerate() {
                let mut offset = 0;
                for (axis, (&size, &stride)) in shape.iter().zip(&strides).enumerate() {
                    if size == 1 {
                        continue;
                    }
                    let dim = axis as i64 - shape.len() as i64;
                    let position = if (-dim) as usize <= plate_nesting {
                        coordinates[plate_nesting - (-dim) as usize]
                    } else if dim == site.dim {
                        k
                    } else {
                        let other = sites.iter().position(|s| s.dim == dim);
                        match other.and_then(|index| drawn[index].as_ref()) {
                            Some(values) => {
                                let other_shape = values.shape().to_vec();
                                let at = broadcast_offset(&coordinates, &other_shape);
                                values.data()[at] as usize
                            }
                            None => 0,
                        }
                    };
                    offset += position * stride;
                }
                *weight = combined.data()[offset];
            }
            values.push(draw_categorical(&log_weights, rng) as f64);
        }
        drawn[elimination.site] = Tensor::from_shape(&region, values).ok();
    }
    sites
        .iter()
        .zip(drawn)
        .map(|(site, values)| {
            let values =
                values.map_or_else(|| vec![0.0; site.shape.iter().product()], Tensor::into_data);
            let tensor = Tensor::from_shape(&site.shape, values)
                .unwrap_or_else(|_| Tensor::zeros(&site.shape));
            (site.name.clone(), tensor)
        })
        .collect()
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut coordinates = vec![0; shape.len()];
    for axis in (0..shape.len()).rev() {
        coordinates[axis] = flat % shape[axis];
        flat /= shape[axis];
    }
    coordinates
}

/// The flat offset in a tensor of `shape` (the full plate region, broadcast) of the
/// coordinates.
fn broadcast_offset(coordinates: &[usize], shape: &[usize]) -> usize {
    let strides = row_major_strides(shape);
    shape
        .iter()
        .zip(&strides)
        .zip(coordinates)
        .map(|((&size, &stride), &c)| if size == 1 { 0 } else { c * stride })
        .sum()
}

/// A draw from the categorical distribution with these unnormalised log-weights.
fn draw_categorical(log_weights: &[f64], rng: &mut Rng) -> usize {
    let largest = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if !largest.is_finite() {
        return 0;
    }
    let weights: Vec<f64> = log_weights.iter().map(|w| (w - largest).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (k, weight) in weights.iter().enumerate() {
        if u < *weight {
            return k;
        }
        u -= weight;
    }
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}
