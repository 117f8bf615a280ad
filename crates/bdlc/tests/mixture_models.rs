//! The two-component Gaussian mixture (`models/gaussian_mixture.bdl`, `MixtureSameFamily` with
//! ordered means) against NumPyro, run through the built `bdlc` binary with NUTS.
//!
//! `tests/infer/numpyro_mixture.json` holds NumPyro's posterior means and sds of the same model
//! on the same data, from 4 chains of 10,000 draws (`scripts/numpyro_mixture.py` makes it and
//! the data). Two estimates of the same expectation with independent errors differ by less than
//! 4 √(MCSE_bdl² + MCSE_NumPyro²) unless one sampler (or one model) is wrong; each mean and sd
//! must pass that test, with bdl's MCSEs from its own run's ESS, every R-hat must be below 1.01
//! and no transition may diverge. The run is 4 chains of 1,000 warm-up and 1,000 kept
//! iterations, a few seconds of CPU time.

mod infer_support;

use infer_support::assert_nuts_agrees_with_numpyro;

#[test]
fn gaussian_mixture_agrees_with_numpyro() {
    assert_nuts_agrees_with_numpyro("numpyro_mixture.json", "gaussian_mixture", 4);
}
