"""Reference posteriors of three bundled models from NumPyro's NUTS, for
crates/bdlc/tests/numpyro_agreement.rs.

The models are models/eight_schools.bdl, models/logistic.bdl and models/shallow_bnn.bdl written in
NumPyro with the same priors and likelihoods, on the same data files (models/data/). Each runs
4 chains long enough that the Monte Carlo standard errors of the posterior means are small next to
those of a default bdl run. For every compared quantity the script records the mean and sd with
their MCSEs, the bulk ESS and R-hat, all computed by ArviZ from the chains.

Compared quantities are named as bdl's CSV columns (`theta.3`, `beta.12`). The shallow network's
weights are not identifiable (its posterior is invariant under permutations of the hidden units
and under the sign flip (gamma_j, gamma0_j, beta_j, beta0) -> (-gamma_j, -gamma0_j, -beta_j,
beta0 + beta_j), since sigmoid(-z) = 1 - sigmoid(z)), so for it only `sigma` and the regression
function f(x) = sigmoid(x gamma + gamma0) beta + beta0 at a few inputs (`f.1`, `f.2`, ...) are
compared; the inputs are recorded with them.

usage: bench/setup-peers.sh, then
    bench/.peers/bin/python scripts/numpyro_posteriors.py models/data tests/infer/numpyro_posteriors.json
"""
import json
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

jax.config.update("jax_enable_x64", True)
numpyro.set_host_device_count(4)

DATA = sys.argv[1] if len(sys.argv) > 1 else "models/data"
OUT = sys.argv[2] if len(sys.argv) > 2 else "tests/infer/numpyro_posteriors.json"
CHAINS = 4

# Inputs at which the shallow network's regression function is compared.
SHALLOW_INPUTS = [[0.0, 0.0], [1.0, -1.0], [-1.5, 0.5], [0.5, 1.5], [2.0, 2.0]]


def csv(name):
    return np.loadtxt(os.path.join(DATA, name), delimiter=",", skiprows=1)


def eight_schools(J, sigma, y):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0, 1))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def logistic(X, y):
    alpha = numpyro.sample("alpha", dist.Normal(0, 1))
    beta = numpyro.sample("beta", dist.Normal(0, 1).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("N", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)


def shallow(X, y, hidden=10):
    gamma = numpyro.sample("gamma", dist.Normal(0, 1).expand([X.shape[1], hidden]).to_event(2))
    gamma0 = numpyro.sample("gamma0", dist.Normal(0, 1).expand([hidden]).to_event(1))
    beta = numpyro.sample("beta", dist.Normal(0, 1).expand([hidden]).to_event(1))
    beta0 = numpyro.sample("beta0", dist.Normal(0, 1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    mu = jax.nn.sigmoid(X @ gamma + gamma0) @ beta + beta0
    with numpyro.plate("N", X.shape[0]):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def run(model, warmup, samples, seed, *args):
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, num_chains=CHAINS,
                chain_method="parallel", progress_bar=False)
    started = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging",))
    # JAX returns before the chains finish; wait for the draws before reading the clock.
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    seconds = time.perf_counter() - started
    divergences = int(np.sum(mcmc.get_extra_fields()["diverging"]))
    return samples, seconds, divergences


def columns(name, draws):
    """Splits a (chains, draws, ...) array into bdl's scalar columns, `name.i.j` 1-based."""
    draws = np.asarray(draws)
    if draws.ndim == 2:
        return {name: draws}
    out = {}
    for index in np.ndindex(*draws.shape[2:]):
        out[name + "".join(f".{i + 1}" for i in index)] = draws[(slice(None), slice(None)) + index]
    return out


def describe(chains):
    """ArviZ's estimates for one quantity given as a (chains, draws) array."""
    return {
        "mean": float(np.mean(chains)),
        "sd": float(np.std(chains, ddof=1)),
        "mcse_mean": float(az.mcse(chains, method="mean")),
        "mcse_sd": float(az.mcse(chains, method="sd")),
        "ess_bulk": float(az.ess(chains, method="bulk")),
        "r_hat": float(az.rhat(chains)),
    }


def entry(name, warmup, samples, seed, seconds, divergences, quantities, **extra):
    return {
        "name": name,
        "chains": CHAINS,
        "warmup": warmup,
        "samples": samples,
        "seed": seed,
        "seconds": round(seconds, 1),
        "divergences": divergences,
        **extra,
        "quantities": {k: describe(v) for k, v in quantities.items()},
    }


results = []

eight = json.load(open(os.path.join(DATA, "eight_schools.json")))
settings = (1000, 25000, 1)
draws, seconds, divergences = run(eight_schools, *settings, eight["J"], jnp.array(eight["sigma"], dtype=float),
                                  jnp.array(eight["y"], dtype=float))
quantities = {}
for site in ["mu", "tau", "theta_tilde", "theta"]:
    quantities.update(columns(site, draws[site]))
results.append(entry("eight_schools", *settings, seconds, divergences, quantities))
print("eight_schools", seconds, "s", flush=True)

data = csv("logistic.csv")
settings = (1000, 5000, 2)
draws, seconds, divergences = run(logistic, *settings, jnp.array(data[:, :-1]), jnp.array(data[:, -1]))
quantities = {}
for site in ["alpha", "beta"]:
    quantities.update(columns(site, draws[site]))
results.append(entry("logistic", *settings, seconds, divergences, quantities))
print("logistic", seconds, "s", flush=True)

data = csv("shallow.csv")
settings = (1000, 5000, 3)
draws, seconds, divergences = run(shallow, *settings, jnp.array(data[:, :2]), jnp.array(data[:, 2]))
inputs = np.array(SHALLOW_INPUTS)
# f(x) per draw: sigmoid(x gamma + gamma0) beta + beta0, with gamma of shape (2, 10).
hidden = jax.nn.sigmoid(np.einsum("ki,cdij->cdkj", inputs, draws["gamma"]) + draws["gamma0"][:, :, None, :])
f = np.einsum("cdkj,cdj->cdk", hidden, draws["beta"]) + draws["beta0"][:, :, None]
quantities = {"sigma": np.asarray(draws["sigma"])}
quantities.update(columns("f", f))
# Recorded to show why the weights themselves are not compared: their R-hat across chains.
weights_r_hat = {
    "beta0": float(az.rhat(np.asarray(draws["beta0"]))),
    "max_beta": float(max(az.rhat(np.asarray(draws["beta"])[:, :, j]) for j in range(10))),
}
results.append(entry("shallow_bnn", *settings, seconds, divergences, quantities,
                     inputs=SHALLOW_INPUTS, weights_r_hat=weights_r_hat))
print("shallow_bnn", seconds, "s", flush=True)

with open(OUT, "w") as f:
    json.dump({"numpyro": numpyro.__version__, "arviz": az.__version__, "models": results}, f, indent=1)
    f.write("\n")
print("wrote", OUT)
