"""The exact posterior of models/linreg_missing.bdl, a linear regression whose masked rows (those
with `observed` = 0 in models/data/linreg_missing.csv) leave the likelihood.

Model: alpha, beta ~ Normal(0, 5) independently, sigma ~ HalfNormal(2), and each observed row
y_i ~ Normal(alpha + beta x_i, sigma). Given sigma, (alpha, beta) is conjugate: with X the
observed rows' design [1, x_i] and prior covariance S0 = 25 I, the conditional posterior is
Normal(m, A^-1), A = X'X / sigma^2 + S0^-1, m = A^-1 X'y / sigma^2, and the marginal likelihood is

    log p(y | sigma) = log N(y; 0, sigma^2 I) - 1/2 log det S0 - 1/2 log det A + 1/2 m'A m

(Bayes' rule for the coefficients evaluated at 0). Multiplying by the HalfNormal(2) density and
integrating sigma numerically (midpoint rule, 200,000 cells on (0, 4]; the posterior of sigma has
no mass to speak of beyond 1.5) gives the posterior means and sds of alpha, beta and sigma, with
the conditional means and variances of the coefficients mixed over sigma. Pure Python:

    python3 scripts/linreg_missing_exact.py

Writes tests/infer/linreg_missing_exact.json, in the layout crates/bdlc/tests/infer_support reads
(MCSEs are 0: the values are exact up to quadrature error far below any Monte Carlo error).
"""

import csv
import json
import math
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PRIOR_VARIANCE = 25.0
SIGMA_PRIOR_SCALE = 2.0
CELLS = 200_000
SIGMA_MAX = 4.0


def observed_rows():
    with open(os.path.join(ROOT, "models/data/linreg_missing.csv")) as handle:
        return [
            (float(row["x"]), float(row["y"]))
            for row in csv.DictReader(handle)
            if int(row["observed"]) == 1
        ]


def main():
    rows = observed_rows()
    n = len(rows)
    sxx = sum(x * x for x, _ in rows)
    sx = sum(x for x, _ in rows)
    sy = sum(y for _, y in rows)
    sxy = sum(x * y for x, y in rows)
    syy = sum(y * y for _, y in rows)
    log_det_prior = 2.0 * math.log(PRIOR_VARIANCE)

    cells = []
    width = SIGMA_MAX / CELLS
    for k in range(CELLS):
        sigma = (k + 0.5) * width
        s2 = sigma * sigma
        # A = X'X / s2 + I / 25, for the coefficients (alpha, beta).
        a11 = n / s2 + 1.0 / PRIOR_VARIANCE
        a12 = sx / s2
        a22 = sxx / s2 + 1.0 / PRIOR_VARIANCE
        det = a11 * a22 - a12 * a12
        b1, b2 = sy / s2, sxy / s2
        m1 = (a22 * b1 - a12 * b2) / det
        m2 = (a11 * b2 - a12 * b1) / det
        quadratic = m1 * b1 + m2 * b2  # m'A m = m'X'y / s2
        log_lik = (
            -0.5 * n * math.log(2.0 * math.pi * s2)
            - 0.5 * syy / s2
            - 0.5 * log_det_prior
            - 0.5 * math.log(det)
            + 0.5 * quadratic
        )
        log_prior = -0.5 * (sigma / SIGMA_PRIOR_SCALE) ** 2
        cells.append((log_lik + log_prior, sigma, m1, m2, a22 / det, a11 / det))

    top = max(cell[0] for cell in cells)
    weights = [math.exp(cell[0] - top) for cell in cells]
    total = sum(weights)
    weights = [w / total for w in weights]

    def moments(first, second):
        mean = sum(w * f for w, f in zip(weights, first))
        square = sum(w * s for w, s in zip(weights, second))
        return mean, math.sqrt(square - mean * mean)

    sigmas = [cell[1] for cell in cells]
    quantities = {
        "alpha": moments([c[2] for c in cells], [c[4] + c[2] ** 2 for c in cells]),
        "beta": moments([c[3] for c in cells], [c[5] + c[3] ** 2 for c in cells]),
        "sigma": moments(sigmas, [s * s for s in sigmas]),
    }
    # The quadrature's reach: the posterior mass of the last 1% of the grid must be negligible.
    assert sum(weights[int(0.99 * CELLS):]) < 1e-12
    result = {
        "source": "scripts/linreg_missing_exact.py: conjugate coefficients, sigma by quadrature",
        "models": [
            {
                "name": "linreg_missing",
                "observed_rows": n,
                "quantities": {
                    name: {"mean": mean, "sd": sd, "mcse_mean": 0.0, "mcse_sd": 0.0}
                    for name, (mean, sd) in quantities.items()
                },
            }
        ],
    }
    path = os.path.join(ROOT, "tests/infer/linreg_missing_exact.json")
    with open(path, "w") as out:
        json.dump(result, out, indent=1)
        out.write("\n")
    for name, (mean, sd) in quantities.items():
        print(f"{name:6} mean {mean:.6f} sd {sd:.6f}")


if __name__ == "__main__":
    main()
