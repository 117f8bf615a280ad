//! One error type for the inference layer: every algorithm's error as a variant, so that the
//! binary turns inference errors into diagnostics in one place.
//!
//! Each algorithm keeps its own error enum (its variants name the chain, member or step that
//! failed); [`InferError`] gathers them, and every algorithm's error converts into it with `?` or
//! `.into()`.

use crate::ensemble::EnsembleError;
use crate::gibbs::reversible_jump::ReversibleJumpError;
use crate::gibbs::GibbsError;
use crate::mcmc::McmcError;
use crate::sgmcmc::SgmcmcError;
use crate::vi::laplace::LaplaceError;
use crate::vi::SviError;
use std::fmt;

/// Why an inference run could not produce its result.
#[derive(Clone, Debug)]
pub enum InferError {
    /// SVI or MAP failed.
    Svi(SviError),
    /// The Laplace approximation failed.
    Laplace(LaplaceError),
    /// NUTS or static HMC failed.
    Mcmc(McmcError),
    /// SGLD or SGHMC failed.
    Sgmcmc(SgmcmcError),
    /// Metropolis-within-Gibbs failed.
    Gibbs(GibbsError),
    /// Reversible jump failed.
    ReversibleJump(ReversibleJumpError),
    /// A deep ensemble or MultiSWAG failed.
    Ensemble(EnsembleError),
}

impl fmt::Display for InferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InferError::Svi(error) => error.fmt(f),
            InferError::Laplace(error) => error.fmt(f),
            InferError::Mcmc(error) => error.fmt(f),
            InferError::Sgmcmc(error) => error.fmt(f),
            InferError::Gibbs(error) => error.fmt(f),
            InferError::ReversibleJump(error) => error.fmt(f),
            InferError::Ensemble(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for InferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(match self {
            InferError::Svi(error) => error,
            InferError::Laplace(error) => error,
            InferError::Mcmc(error) => error,
            InferError::Sgmcmc(error) => error,
            InferError::Gibbs(error) => error,
            InferError::ReversibleJump(error) => error,
            InferError::Ensemble(error) => error,
        })
    }
}

macro_rules! from_error {
    ($($variant:ident($error:ty)),* $(,)?) => {
        $(
            impl From<$error> for InferError {
                fn from(error: $error) -> Self {
                    InferError::$variant(error)
                }
            }
        )*
    };
}

from_error!(
    Svi(SviError),
    Laplace(LaplaceError),
    Mcmc(McmcError),
    Sgmcmc(SgmcmcError),
    Gibbs(GibbsError),
    ReversibleJump(ReversibleJumpError),
    Ensemble(EnsembleError),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_algorithm_error_keeps_its_message_and_source() {
        let error: InferError = McmcError::NoParameters.into();
        assert_eq!(error.to_string(), McmcError::NoParameters.to_string());
        assert!(matches!(error, InferError::Mcmc(McmcError::NoParameters)));
        assert!(std::error::Error::source(&error).is_some());
    }
}
