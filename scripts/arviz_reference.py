"""Reference values of the convergence diagnostics, computed by ArviZ on stored chains.

The chains are synthetic (autoregressive processes, shifted chains, heavy tails, ties), rounded
to 6 decimals so that the JSON holds them exactly. For each case the script records ArviZ's
rank-normalised split R-hat, bulk and tail ESS, ESS of the mean, sd and a quantile, MCSE of the
mean and sd, and the 5%, 50% and 95% quantiles; and the E-BFMI of a few energy chains. The Rust
test `crates/bdl-infer/tests/diagnostics_arviz.rs` recomputes all of them and demands agreement
to 1e-6 (relative).

usage: bench/setup-peers.sh, then
    bench/.peers/bin/python scripts/arviz_reference.py crates/bdl-infer/tests/data/arviz_reference.json
"""
import json
import sys

import arviz as az
import numpy as np
from arviz.stats.stats_utils import quantile as arviz_quantile

rng = np.random.default_rng(20240607)


def autoregressive(phi, n_chains, n_draws, offsets=None):
    """x_t = phi x_{t-1} + e_t per chain, started in the stationary distribution."""
    chains = np.empty((n_chains, n_draws))
    for c in range(n_chains):
        x = rng.normal() / np.sqrt(1.0 - phi * phi)
        for t in range(n_draws):
            x = phi * x + rng.normal()
            chains[c, t] = x
        if offsets is not None:
            chains[c] += offsets[c]
    return chains


cases = {
    "fast_mixing": autoregressive(0.3, 4, 201),
    "slow_mixing": autoregressive(0.95, 4, 201),
    "antithetic": autoregressive(-0.6, 4, 200),
    "shifted_chains": autoregressive(0.5, 4, 150, offsets=[0.0, 0.0, 0.8, -0.3]),
    "heavy_tails": rng.standard_t(3, size=(4, 180)),
    "ties": np.round(autoregressive(0.4, 3, 160), 0),
    "two_chains": autoregressive(0.7, 2, 250),
    "one_chain_trend": (autoregressive(0.2, 1, 120) + np.linspace(0.0, 3.0, 120))[:, :],
}

output = {"cases": [], "e_bfmi": []}
for name, chains in cases.items():
    chains = np.round(chains, 6)
    entry = {
        "name": name,
        "chains": chains.tolist(),
        "ess_bulk": float(az.ess(chains, method="bulk")),
        "ess_tail": float(az.ess(chains, method="tail")),
        "ess_mean": float(az.ess(chains, method="mean")),
        "ess_sd": float(az.ess(chains, method="sd")),
        "ess_quantile_25": float(az.ess(chains, method="quantile", prob=0.25)),
        "mcse_mean": float(az.mcse(chains, method="mean")),
        "mcse_sd": float(az.mcse(chains, method="sd")),
        "quantiles": [float(q) for q in arviz_quantile(chains.ravel(), [0.05, 0.5, 0.95])],
    }
    # ArviZ leaves R-hat undefined for a single chain; the Rust side computes it from the halves.
    if chains.shape[0] > 1:
        entry["rhat"] = float(az.rhat(chains, method="rank"))
    output["cases"].append(entry)

for phi in (0.0, 0.9, -0.5):
    energy = np.round(autoregressive(phi, 1, 300)[0] * 3.0 + 10.0, 6)
    output["e_bfmi"].append(
        {"energy": energy.tolist(), "value": float(az.bfmi(energy.reshape(1, -1))[0])}
    )

output["arviz_version"] = az.__version__
with open(sys.argv[1], "w") as handle:
    json.dump(output, handle, indent=1)
    handle.write("\n")
