//! The flat unconstrained vector inference works on: where each latent and param site's block
//! lies, its shapes on both sides of the bijector, and its starting values.
//!
//! Latent sites come first, in the order the model first meets them, then param sites. Each
//! block is the site's unconstrained value flattened row-major.

use crate::handlers::SiteKind;
use bdl_diagnostics::Span;
use bdl_dist::Constraint;
use std::collections::HashMap;

/// One site's block of the flat vector.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteLayout {
    /// The site's name.
    pub name: String,
    /// `Sample` for latents, `Param` for params.
    pub kind: SiteKind,
    /// Where the block starts in `[latents, params]`.
    pub offset: usize,
    /// The block's shape.
    pub unconstrained_shape: Vec<usize>,
    /// The site's value shape.
    pub constrained_shape: Vec<usize>,
    /// The support the bijector maps onto.
    pub constraint: Constraint,
    /// The unconstrained starting values (zeros for latents, the initial value for params).
    pub initial: Vec<f64>,
    /// Where the site is written.
    pub span: Span,
}

impl SiteLayout {
    /// The number of unconstrained coordinates.
    pub fn len(&self) -> usize {
        self.unconstrained_shape.iter().product()
    }

    /// Whether the block is empty (a site of size zero).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of constrained values.
    pub fn constrained_len(&self) -> usize {
        self.constrained_shape.iter().product()
    }
}

/// The blocks of every latent and param site.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// The blocks, in the order sites were first met.
    pub entries: Vec<SiteLayout>,
    index: HashMap<String, usize>,
    latent_dim: usize,
    param_dim: usize,
}

impl Layout {
    /// The entry of a site, by name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Adds a site and returns its index; offsets are assigned by [`Layout::finalize`].
    pub fn push(&mut self, entry: SiteLayout) -> usize {
        let index = self.entries.len();
        self.index.insert(entry.name.clone(), index);
        self.entries.push(entry);
        index
    }

    /// Assigns offsets: latents first, in order, then params.
    pub fn finalize(&mut self) {
        let mut offset = 0;
        for entry in self
            .entries
            .iter_mut()
            .filter(|e| e.kind != SiteKind::Param)
        {
            entry.offset = offset;
            offset += entry.unconstrained_shape.iter().product::<usize>();
        }
        self.latent_dim = offset;
        for entry in self
            .entries
            .iter_mut()
            .filter(|e| e.kind == SiteKind::Param)
        {
            entry.offset = offset;
            offset += entry.unconstrained_shape.iter().product::<usize>();
        }
        self.param_dim = offset - self.latent_dim;
    }

    /// Where an entry's block starts.
    pub fn offset_of(&self, entry: &SiteLayout) -> usize {
        entry.offset
    }

    /// The number of latent coordinates.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// The number of param coordinates.
    pub fn param_dim(&self) -> usize {
        self.param_dim
    }

    /// Every coordinate.
    pub fn dim(&self) -> usize {
        self.latent_dim + self.param_dim
    }

    /// The latent sites, in order.
    pub fn latents(&self) -> impl Iterator<Item = &SiteLayout> {
        self.entries.iter().filter(|e| e.kind != SiteKind::Param)
    }

    /// The param sites, in order.
    pub fn params(&self) -> impl Iterator<Item = &SiteLayout> {
        self.entries.iter().filter(|e| e.kind == SiteKind::Param)
    }

    /// The starting point `[latents, params]`.
    pub fn initial_position(&self) -> Vec<f64> {
        let mut position = vec![0.0; self.dim()];
        for entry in &self.entries {
            position[entry.offset..entry.offset + entry.len()].copy_from_slice(&entry.initial);
        }
        position
    }

    /// The name of each latent coordinate, `site[i,j]` with 0-based indices, for messages.
    pub fn coordinate_names(&self) -> Vec<String> {
        let mut names = vec![String::new(); self.dim()];
        for entry in &self.entries {
            for (k, name) in element_names(&entry.name, &entry.unconstrained_shape)
                .into_iter()
                .enumerate()
            {
                names[entry.offset + k] = name;
            }
        }
        names
    }
}

/// `name` for scalars, else `name[i,j,...]` for every element in row-major order (0-based).
pub fn element_names(name: &str, shape: &[usize]) -> Vec<String> {
    let count: usize = shape.iter().product();
    if shape.is_empty() {
        return vec![name.to_string()];
    }
    (0..count)
        .map(|flat| {
            let mut rest = flat;
            let mut index = vec![0; shape.len()];
            for axis in (0..shape.len()).rev() {
                index[axis] = rest % shape[axis];
                rest /= shape[axis];
            }
            let index: Vec<String> = index.iter().map(usize::to_string).collect();
            format!("{name}[{}]", index.join(","))
        })
        .collect()
}
