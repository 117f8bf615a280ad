"""Cross-check of the NUTS references of models/corpus/ against PyMC.

Each corpus model is written again in PyMC (same priors, same likelihood, same data files) and
sampled with PyMC's NUTS (4 chains, 2,000 tuning and 5,000 kept draws, a dense mass matrix,
seed 1). For every column
the script prints bdl's reference mean and sd (`NAME.reference.json`) beside PyMC's, and the
difference in units of the combined Monte Carlo standard error of the two means,
√(mcse_bdl² + mcse_pymc²), where bdl's MCSE is sd / √ESS. It exits with status 1 when any
difference exceeds 4 such standard errors.

usage:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pymc
    /tmp/venv/bin/python scripts/vi_corpus_pymc.py [NAME ...]
"""
import json
import math
import os
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")
import arviz as az  # noqa: E402
import pymc as pm  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "models", "corpus")


def data(name):
    with open(os.path.join(CORPUS, "data", f"{name}.json")) as f:
        return {k: np.asarray(v) for k, v in json.load(f).items()}


def house_prices(d):
    alpha = pm.Normal("alpha", 0, 100)
    beta = pm.Normal("beta", 0, 10)
    sigma = pm.HalfNormal("sigma", 50)
    pm.Normal("price", alpha + beta * d["area"], sigma, observed=d["price"])


def temperature_year(d):
    alpha = pm.Normal("alpha", 0, 100)
    beta = pm.Normal("beta", 0, 1)
    sigma = pm.HalfNormal("sigma", 1)
    pm.Normal("anomaly", alpha + beta * d["year"], sigma, observed=d["anomaly"])


def salaries(d):
    alpha = pm.Normal("alpha", 0, 100000)
    b_experience = pm.Normal("b_experience", 0, 10000)
    b_education = pm.Normal("b_education", 0, 10000)
    sigma = pm.HalfNormal("sigma", 50000)
    mean = alpha + b_experience * d["experience"] + b_education * d["education"]
    pm.Normal("salary", mean, sigma, observed=d["salary"])


def dose_response(d):
    alpha = pm.Normal("alpha", 0, 10)
    b_dose = pm.Normal("b_dose", 0, 1)
    b_age = pm.Normal("b_age", 0, 1)
    pm.Bernoulli("y", logit_p=alpha + b_dose * d["dose"] + b_age * d["age"], observed=d["y"])


def counts_temperature(d):
    alpha = pm.Normal("alpha", 0, 5)
    beta = pm.Normal("beta", 0, 1)
    pm.Poisson("count", pt.exp(alpha + beta * d["temperature"]), observed=d["count"])


def school_scores(d):
    mu = pm.Normal("mu", 0, 200)
    tau = pm.HalfNormal("tau", 20)
    sigma = pm.HalfNormal("sigma", 50)
    z = pm.Normal("z", 0, 1, shape=int(d["J"]))
    school_mean = pm.Deterministic("school_mean", mu + tau * z)
    pm.Normal("score", school_mean[d["school"]], sigma, observed=d["score"])


def heights(d):
    mu = pm.Normal("mu", 0, 300)
    sigma = pm.HalfNormal("sigma", 50)
    pm.Normal("height", mu, sigma, observed=d["height"])


def quadratic_growth(d):
    alpha = pm.Normal("alpha", 0, 50)
    b1 = pm.Normal("b1", 0, 5)
    b2 = pm.Normal("b2", 0, 1)
    sigma = pm.HalfNormal("sigma", 20)
    x = d["x"]
    pm.Normal("y", alpha + b1 * x + b2 * x**2, sigma, observed=d["y"])


def ar1_series(d):
    y = d["y"]
    mu = pm.Normal("mu", 0, 100)
    phi = pm.Uniform("phi", -1, 1)
    sigma = pm.HalfNormal("sigma", 10)
    pm.Normal("y", mu + phi * (y[:-1] - mu), sigma, observed=y[1:])


def arma11_series(d):
    y = d["y"]
    mu = pm.Normal("mu", 0, 50)
    phi = pm.Uniform("phi", -1, 1)
    theta = pm.Uniform("theta", -1, 1)
    sigma = pm.HalfNormal("sigma", 10)
    u = y[1:] - mu - phi * (y[:-1] - mu)
    # The innovations e = M u with M_ts = (−θ)^(t−s) for s ≤ t, as in the bdl model (an unrolled
    # recursion compiles too slowly): |θ|^(t−s) times (−1)^(t−s) for θ > 0, 1 for θ < 0.
    lag, mask, alternating = d["lag"], d["mask"], d["alternating"]
    sign = pt.switch(theta > 0, alternating, mask)
    e = pt.dot(sign * pt.exp(lag * pt.log(pt.abs(theta) + 1e-300)), u)
    pm.Potential("innovations", pm.logp(pm.Normal.dist(0, sigma), e).sum())


def radon_counties(d):
    alpha = pm.Normal("alpha", 0, 10)
    b_uranium = pm.Normal("b_uranium", 0, 5)
    b_floor = pm.Normal("b_floor", 0, 5)
    tau = pm.HalfNormal("tau", 2)
    sigma = pm.HalfNormal("sigma", 2)
    z = pm.Normal("z", 0, 1, shape=int(d["C"]))
    county_mean = alpha + b_uranium * d["uranium"] + tau * z
    pm.Normal("level", county_mean[d["county"]] + b_floor * d["floor"], sigma, observed=d["level"])


MODELS = {f.__name__: f for f in [house_prices, temperature_year, salaries, dose_response,
                                  counts_temperature, school_scores, heights, quadratic_growth,
                                  ar1_series, arma11_series, radon_counties]}


def main():
    names = sys.argv[1:] or sorted(MODELS)
    worst_overall = 0.0
    for name in names:
        with open(os.path.join(CORPUS, f"{name}.reference.json")) as f:
            reference = json.load(f)["columns"]
        with pm.Model():
            MODELS[name](data(name))
            # A dense mass matrix, as bdl's references use: with PyMC's default diagonal one, the
            # chains of the unscaled GLMs do not mix.
            trace = pm.sample(draws=5000, tune=2000, chains=4, cores=1, random_seed=1,
                              init="jitter+adapt_full", progressbar=False,
                              compute_convergence_checks=False)
        summary = az.summary(trace, round_to="none")
        print(f"## {name}")
        for column, r in reference.items():
            key = column
            if "." in column:
                site, index = column.split(".")
                key = f"{site}[{int(index) - 1}]"
            row = summary.loc[key]
            mcse = math.hypot(r["sd"] / math.sqrt(r["ess_bulk"]), row["mcse_mean"])
            z = (r["mean"] - row["mean"]) / mcse
            worst_overall = max(worst_overall, abs(z))
            print(f"{column:16} bdl {r['mean']:12.5g} ± {r['sd']:10.4g}   "
                  f"PyMC {row['mean']:12.5g} ± {row['sd']:10.4g} (R-hat {row['r_hat']:.3f})   "
                  f"z {z:6.2f}")
    print(f"largest |z|: {worst_overall:.2f}")
    sys.exit(1 if worst_overall > 4 else 0)


if __name__ == "__main__":
    main()
