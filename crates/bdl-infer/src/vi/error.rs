//! The errors of variational inference, as data: bad settings, a model whose shape does not fit,
//! no finite starting point, and failures mid-run, which carry the last good parameters.

use crate::vi::svi::SviFit;
use std::fmt;

/// Settings that cannot be used (a non-positive learning rate, a zero-length warm-up, …).
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsError {
    /// What is wrong, as a lowercase sentence without a final period.
    pub message: String,
}

impl SettingsError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SettingsError {
            message: message.into(),
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SettingsError {}

/// Why SVI, MAP or Laplace did not return a fit.
#[derive(Clone, Debug)]
pub enum SviError {
    /// The settings cannot be used.
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
    /// The model's shape disagrees with the settings, between evaluators, or in its normal
    /// priors.
    InvalidModel {
        /// What is wrong.
        message: String,
    },
    /// No initial point gave a finite ELBO.
    Initialisation {
        /// How many starting points were tried.
        attempts: usize,
        /// The model's message for the last attempt (it names the site where known).
        message: String,
    },
    /// A step's loss was not finite and the run stopped (or too many consecutive steps were
    /// skipped).
    NonFiniteLoss {
        /// The step that failed.
        step: usize,
        /// The model's message (it names the first site whose log-density was not finite).
        message: String,
        /// The fit with the last parameters whose loss was finite.
        partial: Box<SviFit>,
    },
    /// The model reported an error that must stop inference.
    Model {
        /// The step that failed.
        step: usize,
        /// The model's message.
        message: String,
        /// The fit with the last good parameters.
        partial: Box<SviFit>,
    },
    /// The Laplace approximation failed at the MAP point.
    Laplace {
        /// Why.
        message: String,
        /// The MAP fit (a Delta guide).
        partial: Box<SviFit>,
    },
}

impl SviError {
    /// The fit with the last good parameters, for errors raised mid-run.
    pub fn partial(&self) -> Option<&SviFit> {
        match self {
            SviError::NonFiniteLoss { partial, .. }
            | SviError::Model { partial, .. }
            | SviError::Laplace { partial, .. } => Some(partial),
            _ => None,
        }
    }
}

impl fmt::Display for SviError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SviError::InvalidSettings { message } => write!(f, "invalid settings: {message}"),
            SviError::InvalidModel { message } => write!(f, "the model does not fit: {message}"),
            SviError::Initialisation { attempts, message } => write!(
                f,
                "no finite ELBO at the initial point after {attempts} attempt{}: {message}",
                if *attempts == 1 { "" } else { "s" }
            ),
            SviError::NonFiniteLoss { step, message, .. } => {
                write!(f, "the loss was not finite at step {step}: {message}")
            }
            SviError::Model { step, message, .. } => {
                write!(f, "the model failed at step {step}: {message}")
            }
            SviError::Laplace { message, .. } => {
                write!(f, "the Laplace approximation failed: {message}")
            }
        }
    }
}

impl std::error::Error for SviError {}
