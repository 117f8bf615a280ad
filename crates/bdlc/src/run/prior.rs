//! `prior`: independent draws from the prior, observed sites included.
//!
//! A prior draw runs every plate in full, so an observed site in a mini-batched plate
//! (`subsample = 32`) has the shape of the whole data, not of one batch: the columns of the
//! draws follow the shapes of the first draw, and a draw whose sites have other shapes is an
//! error (E0967) rather than a misaligned row.

use crate::output::{columns_of, flatten_row};
use crate::run::outcome::{write_draws, RunResult};
use crate::session::Failure;
use bdl_autodiff::Tensor;
use bdl_diagnostics::Diagnostic;
use bdl_infer::diagnostics::Summary;
use bdl_infer::rng::stream_rng;
use bdl_runtime::model::{Model, SiteInfo};
use rayon::prelude::*;
use serde_json::Map;
use std::path::Path;

/// Draws `samples` times from the prior, draw `i` from stream `i` of `seed`.
pub fn run(
    model: &Model,
    samples: usize,
    seed: u64,
    out: Option<&Path>,
) -> Result<RunResult, Failure> {
    let drawn: Vec<Result<Vec<(String, Tensor)>, Failure>> = (0..samples)
        .into_par_iter()
        .map(|draw| {
            let mut rng = stream_rng(seed, draw as u64);
            model
                .prior_draw(&mut rng)
                .map_err(|error| Failure::model(vec![error.to_diagnostic()]))
        })
        .collect();
    let drawn: Vec<Vec<(String, Tensor)>> = drawn.into_iter().collect::<Result<_, _>>()?;
    let sites = drawn_sites(model, drawn.first().map(Vec::as_slice));
    let site_refs: Vec<&SiteInfo> = sites.iter().collect();
    let columns = columns_of(&site_refs);
    let mut draws = Vec::with_capacity(samples * columns.len());
    let mut row = Vec::new();
    for (index, values) in drawn.iter().enumerate() {
        check_shapes(&sites, values, index)?;
        flatten_row(&site_refs, values, &mut row);
        draws.extend_from_slice(&row);
    }
    if let Some(out) = out {
        let comments = vec![
            "method = prior".to_string(),
            format!("num_samples = {samples}"),
            format!("seed = {seed}"),
        ];
        write_draws(out, &comments, &columns, &draws)?;
    }
    let summary = Summary::from_draws(&[&draws], columns.len());
    Ok(RunResult {
        method: "prior".into(),
        columns,
        draws: vec![draws],
        summary,
        mcmc: false,
        losses: Vec::new(),
        facts: Map::new(),
        interrupted: false,
        energies: Vec::new(),
        divergent: Vec::new(),
    })
}

/// The sites a prior draw reports (the output sites, then the observed ones), each with the
/// shape it has in `first`, the first draw, where that draw holds it: with every plate in full,
/// a mini-batched observed site has the shape of the whole data.
fn drawn_sites(model: &Model, first: Option<&[(String, Tensor)]>) -> Vec<SiteInfo> {
    let mut sites: Vec<&SiteInfo> = model.output_sites();
    sites.extend(model.observed_sites());
    sites
        .into_iter()
        .map(|site| {
            let mut site = site.clone();
            if let Some((_, value)) =
                first.and_then(|values| values.iter().find(|(name, _)| *name == site.name))
            {
                site.shape = value.shape().to_vec();
            }
            site
        })
        .collect()
}

/// Checks that draw `index` gives every site the shape of the first draw, so that its row lines
/// up with the columns; otherwise E0967, located at the site.
fn check_shapes(
    sites: &[SiteInfo],
    values: &[(String, Tensor)],
    index: usize,
) -> Result<(), Failure> {
    for site in sites {
        if let Some((_, value)) = values.iter().find(|(name, _)| *name == site.name) {
            if value.shape() != site.shape.as_slice() {
                let diagnostic = Diagnostic::error(
                    "E0967",
                    format!(
                        "prior draw {} gives site `{}` the shape {:?}, the first draw gave it {:?}",
                        index + 1,
                        site.name,
                        value.shape(),
                        site.shape
                    ),
                )
                .with_label(
                    site.span,
                    "its shape changes from one prior draw to the next",
                )
                .with_hint(
                    "the draws file needs one set of columns: give the site a shape that does not \
                     depend on a random draw",
                );
                return Err(Failure::model(vec![diagnostic]));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bdl_diagnostics::{FileId, Span};
    use bdl_runtime::handlers::SiteKind;

    fn site(name: &str, shape: &[usize]) -> SiteInfo {
        SiteInfo {
            name: name.into(),
            kind: SiteKind::Observe,
            observed: true,
            shape: shape.to_vec(),
            family: Some("Normal"),
            discrete: false,
            plates: Vec::new(),
            span: Span::new(FileId(0), 10..20),
        }
    }

    #[test]
    fn a_draw_whose_site_changes_shape_is_e0967_at_the_site() {
        let sites = vec![site("y", &[3])];
        let same = vec![("y".to_string(), Tensor::zeros(&[3]))];
        assert!(check_shapes(&sites, &same, 1).is_ok());
        let other = vec![("y".to_string(), Tensor::zeros(&[2]))];
        let failure = check_shapes(&sites, &other, 4).expect_err("a changed shape");
        let diagnostic = &failure.diagnostics[0];
        assert_eq!(diagnostic.code, "E0967");
        assert!(
            diagnostic.message.contains("prior draw 5"),
            "{}",
            diagnostic.message
        );
        assert_eq!(
            diagnostic.primary_span(),
            Some(Span::new(FileId(0), 10..20))
        );
        assert_eq!(failure.exit_code, 1);
    }
}
