//! Models with loop-carried state (`let mut` and assignment) against NumPyro: ARMA(1,1),
//! GARCH(1,1) and a two-state Gaussian HMM marginalised by the forward algorithm, from
//! `models/`, run through the built `bdlc` binary with NUTS.
//!
//! `tests/infer/numpyro_state_models.json` holds NumPyro's posterior means and sds of the same
//! models on the same data, from 4 chains of 10,000 draws (`scripts/numpyro_state_models.py`
//! makes it and the data). Two estimates of the same expectation with independent errors differ
//! by less than 4 √(MCSE_bdl² + MCSE_NumPyro²) unless one sampler (or one model) is wrong; each
//! mean and sd must pass that test, with bdl's MCSEs from its own run's ESS. Each run is 4 chains
//! of 1,000 warm-up and 1,000 kept iterations, a few seconds of CPU time per model.

mod infer_support;

use infer_support::assert_nuts_agrees_with_numpyro;

#[test]
fn arma11_agrees_with_numpyro() {
    assert_nuts_agrees_with_numpyro("numpyro_state_models.json", "arma11", 1);
}

#[test]
fn garch11_agrees_with_numpyro() {
    assert_nuts_agrees_with_numpyro("numpyro_state_models.json", "garch11", 2);
}

#[test]
fn gaussian_hmm_agrees_with_numpyro() {
    assert_nuts_agrees_with_numpyro("numpyro_state_models.json", "gaussian_hmm", 3);
}
