"""Reference values for Pareto-smoothed importance sampling, from ArviZ's `psislw`.

Writes crates/bdl-infer/tests/data/psis_reference.json: for each case, the raw log ratios (drawn
by a seeded NumPy generator), the smoothed normalised log weights and the Pareto shape k that
`arviz.psislw(log_ratios, reff=1)` returns. The Rust test `diagnostics_psis` checks
`bdl_infer::diagnostics::psis::psis` against these to 1e-6.

usage:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install arviz numpy
    /tmp/venv/bin/python scripts/psis_reference.py crates/bdl-infer/tests/data/psis_reference.json
"""
import json
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")
import arviz as az  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "crates/bdl-infer/tests/data/psis_reference.json"
rng = np.random.default_rng(20261204)


def case(name, log_ratios):
    log_ratios = np.asarray(log_ratios, dtype=float)
    lw, k = az.psislw(log_ratios.copy(), reff=1.0)
    return {
        "name": name,
        "log_ratios": log_ratios.tolist(),
        "log_weights": np.asarray(lw).tolist(),
        # JSON has no infinity: an infinite k (too few tail draws to fit) is written as null.
        "pareto_k": float(k) if np.isfinite(k) else None,
    }


cases = [
    # A good proposal: normal log ratios with a small sd (light tail, k well below 0.5).
    case("normal_small_sd", rng.normal(0.0, 0.3, size=1000)),
    # A proposal narrower than the target: ratios of N(0, 1) to N(0, 0.5²) at draws from the
    # latter, log r = log N(z; 0, 1) - log N(z; 0, 0.5²), a heavy right tail in r.
    case(
        "narrow_proposal",
        (lambda z: -0.5 * z**2 - (-0.5 * (z / 0.5) ** 2 - np.log(0.5)))(rng.normal(0.0, 0.5, size=1000)),
    ),
    # Ratios with a Pareto tail of shape k = 0.9 (numpy's Lomax draws plus 1 are Pareto).
    case("pareto_tail", np.log(rng.pareto(1.0 / 0.9, size=400) + 1.0)),
    # A small sample (tail of ceil(min(20 / 5, 3 √20)) = 4 draws: k is infinite, no smoothing).
    case("tiny_sample", rng.normal(0.0, 1.0, size=20)),
    # A moderate sample with large offsets (the maximum is subtracted first).
    case("offset_student_t", 1000.0 + rng.standard_t(3, size=200)),
]

with open(OUT, "w") as f:
    json.dump({"arviz_version": az.__version__, "cases": cases}, f, indent=1)
    f.write("\n")
print(f"wrote {OUT}")
