//! Errors met while running a program: located, with a hint, and marked as numerical (a
//! divergence for samplers, recoverable) or not (a mistake in the model or its data).

use bdl_diagnostics::{Diagnostic, Span};
use bdl_infer::density::LogDensityError;
use std::fmt;

/// Whether an error is the model's fault or a numerical accident of the current point.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A mistake in the model, its data or its use: stop with a diagnostic.
    Model,
    /// An invalid distribution parameter or a non-finite value reached at this point: a
    /// divergence for samplers, a skipped or failed step for optimisers.
    Numerical,
}

/// An error raised while running a program.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeError {
    /// Stable code (`E05xx`).
    pub code: &'static str,
    /// One lowercase sentence.
    pub message: String,
    /// The expression or site it concerns.
    pub span: Span,
    /// What to do about it.
    pub hint: Option<String>,
    /// Model or numerical.
    pub kind: ErrorKind,
}

impl RuntimeError {
    /// A mistake in the model.
    pub fn model(code: &'static str, message: impl Into<String>, span: Span) -> RuntimeError {
        RuntimeError {
            code,
            message: message.into(),
            span,
            hint: None,
            kind: ErrorKind::Model,
        }
    }

    /// A numerical failure at the current point.
    pub fn numerical(code: &'static str, message: impl Into<String>, span: Span) -> RuntimeError {
        RuntimeError {
            code,
            message: message.into(),
            span,
            hint: None,
            kind: ErrorKind::Numerical,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> RuntimeError {
        self.hint = Some(hint.into());
        self
    }

    /// The located diagnostic the driver renders.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let mut diagnostic =
            Diagnostic::error(self.code, &self.message).with_label(self.span, "here");
        if let Some(hint) = &self.hint {
            diagnostic = diagnostic.with_hint(hint);
        }
        diagnostic
    }

    /// The error as inference sees it: numerical failures are recoverable.
    pub fn to_log_density_error(&self) -> LogDensityError {
        LogDensityError {
            message: self.message.clone(),
            recoverable: self.kind == ErrorKind::Numerical,
        }
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuntimeError {}
