"""Data and NumPyro reference posterior of models/gaussian_mixture.bdl, and scipy reference
log-densities of bdl's MixtureSameFamily.

1. The two-component Gaussian mixture: 150 observations simulated with a fixed seed (weights
   0.35 and 0.65, means -1.5 and 2, sds 0.8 and 1.2), written to models/data/gaussian_mixture.json.
   The same model is written in NumPyro: w ~ Dirichlet(1, 1), sigma ~ HalfNormal(2) per
   component, and the means `ordered` with a Normal(0, 5) density. In bdl that is
   `sample("mu", Normal(0, 5), shape = [2], constraint = ordered)`, the Normal density at the
   ordered value plus the log-Jacobian of the ordering transform (Stan's semantics); NumPyro
   gets the same with an improper uniform on ordered vectors plus a factor with the Normal log
   density. The likelihood is NumPyro's MixtureSameFamily(Categorical(w), Normal(mu, sigma)).
   NUTS runs 4 chains of 2,000 warm-up and 10,000 kept iterations (seed 4, float64). For every
   scalar quantity, named as bdl's CSV columns, the script records the posterior mean and sd,
   the bulk ESS and split R-hat, and the Monte Carlo standard errors (mcse_mean = sd / sqrt(ESS),
   mcse_sd by the delta method), written to tests/infer/numpyro_mixture.json.
   crates/bdlc/tests/mixture_models.rs compares bdl's NUTS with these.

3. Stan's log_mix(weights, lp1, ...) = log sum_k w_k exp(lp_k), by scipy's logsumexp, at a few
   points of its three forms (a scalar theta with two log-densities, K weights with K
   log-densities, K weights with a tensor of K log-densities), written to
   crates/bdl-runtime/tests/data/log_mix_reference.json for crates/bdl-runtime/tests/log_mix.rs.

2. Log-densities of mixtures of several component families at a few points, from scipy.stats
   (sum_k w_k pdf_k(x), on the log scale by logsumexp), written to
   crates/bdl-dist/tests/data/mixture_reference.json for crates/bdl-dist/tests/mixture.rs.

usage: python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpyro jax jaxlib scipy
    /tmp/peers/bin/python scripts/numpyro_mixture.py
"""
import json
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from scipy import stats
from scipy.special import logsumexp

jax.config.update("jax_enable_x64", True)
numpyro.set_host_device_count(4)

from numpyro_reference import run as run_nuts, write  # noqa: E402 (after the jax settings)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAINS, WARMUP, SAMPLES = 4, 2000, 10000


def run(name, model, seed, **data):
    return run_nuts(name, model, seed, CHAINS, WARMUP, SAMPLES, **data)


def gaussian_mixture(y):
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(2)))
    mu = numpyro.sample(
        "mu", dist.ImproperUniform(dist.constraints.ordered_vector, (), event_shape=(2,))
    )
    numpyro.factor("mu_prior", dist.Normal(0, 5).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2).expand([2]).to_event(1))
    mixture = dist.MixtureSameFamily(dist.Categorical(probs=w), dist.Normal(mu, sigma))
    with numpyro.plate("data", len(y)):
        numpyro.sample("y", mixture, obs=y)


def simulate(rng, n=150):
    weights, means, sds = np.array([0.35, 0.65]), np.array([-1.5, 2.0]), np.array([0.8, 1.2])
    z = rng.choice(2, size=n, p=weights)
    return np.round(means[z] + sds[z] * rng.standard_normal(n), 6)


def log_mixture(weights, component, x):
    """log sum_k w_k p_k(x) for the scipy frozen components in `component` (one per k)."""
    weights = np.asarray(weights, dtype=float)
    weights = weights / weights.sum()
    terms = [np.log(w) + c.logpdf(x) for w, c in zip(weights, component)]
    return float(logsumexp(terms))


def density_references():
    """Mixtures of several families: the family, weights, the components' parameters (one
    entry per component), points and scipy's log-densities at them."""
    cases = [
        ("Normal", [0.3, 0.7], {"loc": [-1.0, 2.0], "scale": [0.5, 1.5]},
         lambda p: [stats.norm(l, s) for l, s in zip(p["loc"], p["scale"])],
         [-3.0, -1.0, 0.0, 0.7, 2.0, 6.0]),
        ("Normal", [1.0, 2.0, 1.0], {"loc": [-2.0, 0.0, 3.0], "scale": [1.0, 0.2, 2.0]},
         lambda p: [stats.norm(l, s) for l, s in zip(p["loc"], p["scale"])],
         [-2.5, 0.1, 1.0, 10.0]),
        ("StudentT", [0.5, 0.5], {"df": [3.0, 10.0], "loc": [0.0, 4.0], "scale": [1.0, 0.5]},
         lambda p: [stats.t(d, l, s) for d, l, s in zip(p["df"], p["loc"], p["scale"])],
         [-5.0, 0.0, 2.0, 4.2]),
        ("Gamma", [0.6, 0.4], {"concentration": [2.0, 9.0], "rate": [1.0, 3.0]},
         lambda p: [stats.gamma(a, scale=1.0 / r) for a, r in zip(p["concentration"], p["rate"])],
         [0.1, 1.0, 3.0, 7.5]),
        ("Laplace", [0.2, 0.8], {"loc": [0.0, 1.0], "scale": [1.0, 3.0]},
         lambda p: [stats.laplace(l, s) for l, s in zip(p["loc"], p["scale"])],
         [-4.0, 0.0, 1.0, 5.0]),
        ("Beta", [0.5, 0.5], {"concentration1": [2.0, 8.0], "concentration0": [5.0, 2.0]},
         lambda p: [stats.beta(a, b) for a, b in zip(p["concentration1"], p["concentration0"])],
         [0.05, 0.3, 0.8, 0.99]),
    ]
    out = []
    for family, weights, params, make, points in cases:
        components = make(params)
        out.append({
            "family": family,
            "weights": weights,
            "params": params,
            "points": points,
            "log_prob": [log_mixture(weights, components, x) for x in points],
        })
    return out


def log_mix_references():
    """Each case: the form, the arguments (weights first, then the log-densities) and the value."""
    cases = [
        ("theta", [0.3, -1.2, -0.4]),
        ("theta", [0.9, 2.5, -7.0]),
        ("weights", [0.2, 0.5, 0.3, -1.0, -2.0, -0.5]),
        ("weights", [0.05, 0.15, 0.8, 3.0, -30.0, 0.25]),
        ("tensor", [0.6, 0.4, -3.0, 0.5]),
        ("tensor", [0.25, 0.75, -100.0, -101.5]),
    ]
    out = []
    for form, args in cases:
        if form == "theta":
            theta, lp1, lp2 = args
            value = logsumexp([lp1, lp2], b=[theta, 1 - theta])
        else:
            k = len(args) // 2
            value = logsumexp(args[k:], b=args[:k])
        out.append({"form": form, "arguments": args, "value": float(value)})
    return out


def main():
    rng = np.random.default_rng(20)
    y = simulate(rng)
    write(os.path.join(ROOT, "models/data/gaussian_mixture.json"), {"N": len(y), "y": y.tolist()})
    write(os.path.join(ROOT, "crates/bdl-dist/tests/data/mixture_reference.json"),
          {"scipy": __import__("scipy").__version__, "cases": density_references()})
    write(os.path.join(ROOT, "crates/bdl-runtime/tests/data/log_mix_reference.json"),
          {"scipy": __import__("scipy").__version__, "cases": log_mix_references()})
    if "--densities-only" in sys.argv:
        return
    models = [run("gaussian_mixture", gaussian_mixture, 4, y=jnp.array(y))]
    write(os.path.join(ROOT, "tests/infer/numpyro_mixture.json"),
          {"numpyro": numpyro.__version__, "jax": jax.__version__, "models": models})


if __name__ == "__main__":
    main()
