//! A trace: the record of one run of a model, site by site, as Pyro's `trace` handler keeps it.

use crate::handlers::{Message, PlateFrame, SiteKind};
use crate::value::TensorVar;
use bdl_autodiff::{Tape, Var};
use bdl_diagnostics::Span;
use bdl_dist::Distribution;
use std::fmt::Write as _;

/// One site of a trace.
#[derive(Clone, Debug)]
pub struct SiteRecord {
    /// The site's name.
    pub name: String,
    /// Sample, observe, param or deterministic.
    pub kind: SiteKind,
    /// The distribution of sample and observe sites.
    pub dist: Option<Distribution>,
    /// Whether a parameter of the distribution can change between evaluations.
    pub dist_volatile: bool,
    /// The value.
    pub value: TensorVar,
    /// Whether the value was observed.
    pub observed: bool,
    /// The site's scaled, summed log-density including the log-Jacobian (a scalar on the tape);
    /// `None` for params and deterministic sites.
    pub log_prob: Option<Var>,
    /// The scale applied (mini-batch factor and `Scale` handlers).
    pub scale: f64,
    /// The 0/1 mask on the log-density's batch elements (an `observe`'s `mask =`), if any.
    pub mask: Option<Var>,
    /// The enclosing plates.
    pub plates: Vec<PlateFrame>,
    /// The unconstrained input behind the value, when it came from a flat vector.
    pub unconstrained: Option<Var>,
    /// Whether the value enumerates a discrete site's support.
    pub enumerated: bool,
    /// The log-density before summing and scaling (see [`Message::log_prob_terms`]).
    pub log_prob_terms: Option<Var>,
    /// Where the site is written.
    pub span: Span,
}

/// The sites of one run, in the order they ran.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The sites.
    pub sites: Vec<SiteRecord>,
}

impl Trace {
    /// Records a finished message.
    pub fn record(&mut self, message: &Message, log_prob: Option<Var>) {
        let Some(value) = message.value else { return };
        self.sites.push(SiteRecord {
            name: message.name.clone(),
            kind: message.kind,
            dist: message.dist.clone(),
            dist_volatile: message.dist_volatile,
            value,
            observed: message.observed,
            log_prob,
            scale: message.scale,
            mask: message.mask,
            plates: message.plates.clone(),
            unconstrained: message.unconstrained,
            enumerated: message.enumerated,
            log_prob_terms: message.log_prob_terms,
            span: message.span,
        });
    }

    /// The site called `name`.
    pub fn get(&self, name: &str) -> Option<&SiteRecord> {
        self.sites.iter().find(|site| site.name == name)
    }

    /// A table of the sites: kind, name, distribution, value shape, plates, scale, log-density.
    pub fn render(&self, tape: &Tape) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:<13} {:<22} {:<20} {:<12} {:<14} {:>7} {:>14}",
            "kind", "site", "distribution", "shape", "plates", "scale", "log_prob"
        );
        for site in &self.sites {
            let kind = if site.observed {
                "observe"
            } else if site.enumerated {
                "enumerated"
            } else {
                site.kind.as_str()
            };
            let dist = site.dist.as_ref().map_or("-".to_string(), |d| {
                format!(
                    "{}{:?}{:?}",
                    d.family().name(),
                    d.batch_shape(),
                    d.event_shape()
                )
            });
            let plates: Vec<String> = site
                .plates
                .iter()
                .map(|p| {
                    if p.batch == p.size {
                        p.name.clone()
                    } else {
                        format!("{}[{}/{}]", p.name, p.batch, p.size)
                    }
                })
                .collect();
            let log_prob = site
                .log_prob
                .and_then(|var| tape.value(var).item().ok())
                .map_or("-".to_string(), |v| format!("{v:.6}"));
            let _ = writeln!(
                text,
                "{:<13} {:<22} {:<20} {:<12} {:<14} {:>7} {:>14}",
                kind,
                site.name,
                dist,
                format!("{:?}", tape.shape(site.value.var)),
                if plates.is_empty() {
                    "-".to_string()
                } else {
                    plates.join(",")
                },
                format!("{}", site.scale),
                log_prob
            );
        }
        text
    }
}
