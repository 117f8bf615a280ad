"""Reference values of the Monte Carlo standard error of quantiles, computed by ArviZ.

The chains are those stored in `crates/bdl-infer/tests/data/arviz_reference.json` (written by
`scripts/arviz_reference.py`), so both files describe the same draws. For each case the script
records ArviZ's `mcse(method="quantile")` at several probabilities, including the 5%, 50% and 95%
that the summary reports. The Rust test `crates/bdl-infer/tests/diagnostics_arviz.rs` recomputes
them and demands agreement to 1e-6 (relative).

usage (ArviZ 0.23 in a virtual environment):
    python -m venv /tmp/arviz && /tmp/arviz/bin/pip install arviz
    /tmp/arviz/bin/python scripts/mcse_quantile_reference.py \\
        crates/bdl-infer/tests/data/arviz_reference.json \\
        crates/bdl-infer/tests/data/mcse_quantile_reference.json
"""
import json
import sys

import arviz as az
import numpy as np

PROBS = [0.05, 0.25, 0.5, 0.95]

with open(sys.argv[1]) as handle:
    chains_file = json.load(handle)

output = {"probs": PROBS, "cases": []}
for case in chains_file["cases"]:
    chains = np.asarray(case["chains"], dtype=float)
    output["cases"].append(
        {
            "name": case["name"],
            "mcse_quantile": [
                float(az.mcse(chains, method="quantile", prob=p)) for p in PROBS
            ],
        }
    )

output["arviz_version"] = az.__version__
with open(sys.argv[2], "w") as handle:
    json.dump(output, handle, indent=1)
    handle.write("\n")
