"""Reference values for PSIS-LOO, WAIC and model comparison, from ArviZ's `loo`, `waic` and
`compare`.

Writes crates/bdl-infer/tests/data/loo_reference.json. Each case holds a pointwise
log-likelihood matrix (chains x draws x observations, from a seeded NumPy generator), the
posterior draws behind it, ArviZ's relative efficiency of those draws (the mean ESS of the mean
over every posterior variable, divided by the number of draws, as `arviz.loo` computes it), and
ArviZ's answers: `loo` (elpd_loo, se, p_loo, the pointwise values and the Pareto k per
observation) and `waic` (elpd_waic, se, p_waic, the pointwise values). Each comparison holds
`compare`'s table for two or three of the cases (elpd_diff, dse, se, the stacking weights and
the pseudo-BMA weights) and, for the pseudo-BMA+ weights (`method="BB-pseudo-BMA"`), the Dirichlet
draws of the Bayesian bootstrap that ArviZ made with the same seed, so that the Rust side can
repeat the arithmetic on the same draws. The Rust tests in `crates/bdl-infer/tests/loo_arviz.rs`
check `bdl_infer::diagnostics::loo` against these to 1e-6.

ArviZ finds the stacking weights with SciPy's SLSQP at its default tolerance, whose answer can
be off the optimum by more than 1e-6; the file therefore also holds the optimum found by a
tighter solve of the same problem (`stacking_weights_tight`), which is what the test holds bdl
to 1e-6; ArviZ's own weights are kept beside it and the test reports their distance.

A run directory written by `bdlc infer --out DIR` (its `log_lik-N.csv` or `log_lik.csv` files)
can be added as a case with `--run NAME=DIR`, so that bdl's own log-likelihood files are checked
the same way.

usage:
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install arviz numpy scipy
    /tmp/venv/bin/python scripts/loo_reference.py crates/bdl-infer/tests/data/loo_reference.json
"""
import argparse
import glob
import json
import os
import warnings

import numpy as np
import scipy.stats as st
from scipy.optimize import minimize

warnings.simplefilter("ignore")
import arviz as az  # noqa: E402

SEED = 20261205


def normal_loglik(y, loc, scale):
    return -0.5 * ((y - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def student_loglik(y, loc, scale, nu):
    return st.t.logpdf(y, df=nu, loc=loc, scale=scale)


def correlated_chains(rng, mean, sd, chains, draws, rho):
    """AR(1) chains with stationary distribution N(mean, sd^2): correlated like MCMC draws, so
    that the relative efficiency is below 1."""
    out = np.empty((chains, draws))
    for c in range(chains):
        x = rng.normal()
        for d in range(draws):
            x = rho * x + np.sqrt(1 - rho**2) * rng.normal()
            out[c, d] = x
    return mean + sd * out


def make_cases(rng):
    """Log-likelihood matrices of three models of the same 40 observations (one an outlier)."""
    n = 24
    y = rng.normal(1.0, 1.0, size=n)
    y[7] = 9.0  # An outlier: its leave-one-out posterior differs from the full one (large k).
    chains, draws = 4, 100
    cases = []

    # Model A: y ~ N(mu, 1), flat prior: mu | y ~ N(mean(y), 1/n).
    mu = correlated_chains(rng, y.mean(), 1 / np.sqrt(n), chains, draws, 0.5)
    ll = normal_loglik(y[None, None, :], mu[:, :, None], 1.0)
    cases.append(("normal_known_scale", {"mu": mu}, ll))

    # Model B: y ~ N(mu, sigma), draws near the posterior (sigma from a scaled inverse chi-square).
    mu_b = correlated_chains(rng, y.mean(), y.std() / np.sqrt(n), chains, draws, 0.3)
    s2 = (n - 1) * y.var(ddof=1) / rng.chisquare(n - 1, size=(chains, draws))
    sigma_b = np.sqrt(s2)
    ll = normal_loglik(y[None, None, :], mu_b[:, :, None], sigma_b[:, :, None])
    cases.append(("normal_unknown_scale", {"mu": mu_b, "sigma": sigma_b}, ll))

    # Model C: a Student-t likelihood (robust to the outlier), with draws of loc and scale.
    loc_c = correlated_chains(rng, np.median(y), 0.2, chains, draws, 0.6)
    scale_c = np.exp(correlated_chains(rng, 0.0, 0.15, chains, draws, 0.6))
    ll = student_loglik(y[None, None, :], loc_c[:, :, None], scale_c[:, :, None], 4.0)
    cases.append(("student_t", {"loc": loc_c, "scale": scale_c}, ll))

    # A single chain with few draws and a wide posterior: k above 0.7 for several observations.
    mu_d = rng.normal(y.mean(), 0.6, size=(1, 60))
    ll = normal_loglik(y[None, None, :12], mu_d[:, :, None], 1.0)
    cases.append(("single_chain_bad_k", {"mu": mu_d}, ll))
    return cases


def read_run(directory):
    """A bdl run's log-likelihood (chains x draws x observations) and posterior draws."""
    files = sorted(glob.glob(os.path.join(directory, "log_lik-*.csv")),
                   key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
    if not files:
        files = [os.path.join(directory, "log_lik.csv")]
    chains = []
    for f in files:
        with open(f) as fh:
            lines = [line for line in fh if not line.startswith("#")]
        chains.append(np.array([[float(v) for v in line.split(",")] for line in lines[1:]]))
    ll = np.stack(chains)
    draw_files = sorted(glob.glob(os.path.join(directory, "chain-*.csv")),
                        key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
    if not draw_files:
        draw_files = [os.path.join(directory, "draws.csv")]
    posterior = {}
    draws = []
    header = None
    for f in draw_files:
        with open(f) as fh:
            lines = [line for line in fh if not line.startswith("#")]
        header = lines[0].strip().split(",")
        draws.append(np.array([[float(v) for v in line.split(",")] for line in lines[1:]]))
    draws = np.stack(draws)
    for j, name in enumerate(header):
        if name in ("lp__", "accept_stat__", "stepsize__", "treedepth__", "n_leapfrog__",
                    "divergent__", "energy__"):
            continue
        posterior[name] = draws[:, :, j]
    return posterior, ll


def idata_of(posterior, ll):
    return az.from_dict(posterior=posterior, log_likelihood={"y": ll})


def arviz_reff(idata):
    """What `arviz.loo` uses when no reff is given."""
    posterior = idata.posterior
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    if posterior.sizes["chain"] == 1:
        return 1.0
    ess_p = az.ess(posterior, method="mean")
    return float(np.hstack([ess_p[v].values.flatten() for v in ess_p.data_vars]).mean() / n_samples)


def case_json(name, posterior, ll):
    idata = idata_of(posterior, ll)
    reff = arviz_reff(idata)
    loo = az.loo(idata, pointwise=True, scale="log")
    waic = az.waic(idata, pointwise=True, scale="log")
    return idata, {
        "name": name,
        "log_lik": ll.tolist(),
        "posterior": {k: np.asarray(v).tolist() for k, v in posterior.items()},
        "reff": reff,
        "loo": {
            "elpd": float(loo["elpd_loo"]),
            "se": float(loo["se"]),
            "p": float(loo["p_loo"]),
            "pointwise": np.asarray(loo["loo_i"]).tolist(),
            "pareto_k": np.asarray(loo["pareto_k"]).tolist(),
            "warning": bool(loo["warning"]),
            "good_k": float(loo["good_k"]),
        },
        "waic": {
            "elpd": float(waic["elpd_waic"]),
            "se": float(waic["se"]),
            "p": float(waic["p_waic"]),
            "pointwise": np.asarray(waic["waic_i"]).tolist(),
            "warning": bool(waic["warning"]),
        },
    }


def tight_stacking(pointwise):
    """The stacking weights, solved to a tight tolerance (pointwise: observations x models)."""
    shifted = pointwise - pointwise.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    k = p.shape[1]

    def score(w):
        return -np.sum(np.log(p @ w))

    def grad(w):
        return -np.sum(p / (p @ w)[:, None], axis=0)

    result = minimize(score, np.full(k, 1.0 / k), jac=grad, method="SLSQP",
                      bounds=[(0.0, 1.0)] * k,
                      constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}],
                      options={"ftol": 1e-15, "maxiter": 10000})
    return result.x


def comparison_json(name, models, ic):
    """`compare` of the named models (a dict name -> InferenceData)."""
    stacking = az.compare(models, ic=ic, method="stacking", scale="log")
    pseudo = az.compare(models, ic=ic, method="pseudo-BMA", scale="log")
    bb_seed = 7
    bb = az.compare(models, ic=ic, method="BB-pseudo-BMA", scale="log", seed=bb_seed, b_samples=200)
    order = list(stacking.index)
    # The pointwise values in ArviZ's order (best first), to repeat the bootstrap.
    fn = az.loo if ic == "loo" else az.waic
    key = "loo_i" if ic == "loo" else "waic_i"
    pointwise = np.stack([np.asarray(fn(models[m], pointwise=True, scale="log")[key]).ravel()
                          for m in order], axis=1)
    dirichlet = st.dirichlet.rvs(alpha=[1.0] * pointwise.shape[0], size=200, random_state=bb_seed)
    return {
        "name": name,
        "ic": ic,
        "models": order,
        "elpd": [float(stacking.loc[m, f"elpd_{ic}"]) for m in order],
        "elpd_diff": [float(stacking.loc[m, "elpd_diff"]) for m in order],
        "dse": [float(stacking.loc[m, "dse"]) for m in order],
        "se": [float(stacking.loc[m, "se"]) for m in order],
        "stacking_weights_arviz": [float(stacking.loc[m, "weight"]) for m in order],
        "stacking_weights_tight": tight_stacking(pointwise).tolist(),
        "pseudo_bma_weights": [float(pseudo.loc[m, "weight"]) for m in order],
        "pseudo_bma_plus_weights": [float(bb.loc[m, "weight"]) for m in order],
        "pseudo_bma_plus_se": [float(bb.loc[m, "se"]) for m in order],
        "bootstrap_dirichlet": dirichlet.tolist(),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default="crates/bdl-infer/tests/data/loo_reference.json")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=DIR",
                        help="add a bdl run's log_lik files as a case")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    cases = []
    idatas = {}
    for name, posterior, ll in make_cases(rng):
        idata, case = case_json(name, posterior, ll)
        idatas[name] = idata
        cases.append(case)
    for spec in args.run:
        name, directory = spec.split("=", 1)
        posterior, ll = read_run(directory)
        idata, case = case_json(name, posterior, ll)
        idatas[name] = idata
        cases.append(case)
    three = {k: idatas[k] for k in ("normal_known_scale", "normal_unknown_scale", "student_t")}
    two = {k: idatas[k] for k in ("normal_unknown_scale", "student_t")}
    comparisons = [
        comparison_json("three_models_loo", three, "loo"),
        comparison_json("two_models_waic", two, "waic"),
    ]
    with open(args.out, "w") as f:
        json.dump({"arviz_version": az.__version__, "cases": cases, "comparisons": comparisons}, f)
        f.write("\n")
    for c in comparisons:
        gap = np.max(np.abs(np.array(c["stacking_weights_arviz"]) - np.array(c["stacking_weights_tight"])))
        print(f"{c['name']}: stacking weights, ArviZ's SLSQP vs tight solve differ by {gap:.2e}")
    for c in cases:
        print(f"{c['name']}: elpd_loo {c['loo']['elpd']:.6f} se {c['loo']['se']:.6f} "
              f"p_loo {c['loo']['p']:.6f} max k {max(c['loo']['pareto_k']):.3f} reff {c['reff']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
