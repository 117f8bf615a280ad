//! Linear regression with masked (missing) responses, `models/linreg_missing.bdl`, run through
//! the built `bdlc` binary with NUTS, against its exact posterior.
//!
//! `scripts/linreg_missing_exact.py` integrates the coefficients in closed form given sigma and
//! sigma by quadrature, over the observed rows alone, and writes
//! `tests/infer/linreg_missing_exact.json` (exact means and sds, so their MCSEs are 0). A mask
//! that let a masked row's placeholder response into the likelihood would pull alpha and beta
//! towards 0 and widen sigma far beyond the tolerance. Each mean and sd of alpha, beta and sigma
//! must lie within 4 MCSEs of bdl's run (MCSEs from the run's own ESS), every R-hat below 1.01,
//! with no divergence: the model's 4 chains of 500 warm-up and 500 kept iterations.

mod infer_support;

use infer_support::assert_nuts_agrees_with_numpyro;

#[test]
fn masked_linear_regression_agrees_with_the_exact_posterior() {
    assert_nuts_agrees_with_numpyro("linreg_missing_exact.json", "linreg_missing", 5);
}
