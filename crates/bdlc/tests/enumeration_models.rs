//! The coal-mining change point (`models/coal_mining.bdl`), whose discrete switch point NUTS
//! sums out by enumeration and every draw then draws from its posterior given the rates,
//! against the exact posterior: `scripts/coal_mining_exact.py` sums over the 111 switch points
//! with the rates integrated in closed form and writes `tests/infer/coal_mining_exact.json`
//! (exact means and sds, so their MCSEs are 0). Each mean and sd of the rates, the switch point
//! and the switch year must lie within 4 MCSEs of bdl's run, every R-hat below 1.01, with no
//! divergence: 4 chains of 1,000 warm-up and 1,000 kept iterations.

mod infer_support;

use infer_support::assert_nuts_agrees_with_numpyro;

#[test]
fn coal_mining_change_point_agrees_with_the_exact_posterior() {
    assert_nuts_agrees_with_numpyro("coal_mining_exact.json", "coal_mining", 3);
}
