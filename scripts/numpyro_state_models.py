"""Data and NumPyro reference posteriors of the models with loop-carried state.

The models are models/arma11.bdl, models/garch11.bdl and models/gaussian_hmm.bdl, written again
in NumPyro with the same priors and likelihoods. The ARMA(1,1) series is the one of
models/corpus/data/arma11_series.json (copied to models/data/arma11.json); the GARCH(1,1) and
two-state Gaussian HMM series are simulated here with a fixed seed and written to
models/data/garch11.json and models/data/gaussian_hmm.json.

Each model runs NumPyro's NUTS for 4 chains of 2,000 warm-up and 10,000 kept iterations (seed 1,
float64). For every scalar quantity, named as bdl's CSV columns (`mu.1`, `mu.2` for a vector),
the script records the posterior mean and sd, the bulk ESS and split R-hat from NumPyro's
diagnostics, and the Monte Carlo standard errors: mcse_mean = sd / sqrt(ESS), and mcse_sd by
the delta method, sqrt(Var((x - mean)^2) / ESS_sq) / (2 sd) with ESS_sq the ESS of (x - mean)^2.
crates/bdlc/tests/state_models.rs compares bdl's NUTS with these.

The HMM's means are `ordered`: in bdl `sample("mu", Normal(0, 5), shape = [2], constraint =
ordered)`, whose density is the Normal density at the ordered value plus the log-Jacobian of the
ordering transform (Stan's semantics). NumPyro gets the same by an improper uniform on ordered
vectors plus a factor with the Normal log density. The HMM's likelihood is marginalised over the
hidden states by the forward algorithm in both.

usage: python3 -m venv /tmp/peers && /tmp/peers/bin/pip install numpyro jax jaxlib scipy
    /tmp/peers/bin/python scripts/numpyro_state_models.py models/data tests/infer/numpyro_state_models.json
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
from jax.scipy.special import logsumexp

jax.config.update("jax_enable_x64", True)
numpyro.set_host_device_count(4)

from numpyro_reference import run as run_nuts, write  # noqa: E402 (after the jax settings)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = sys.argv[1] if len(sys.argv) > 1 else "models/data"
OUT = sys.argv[2] if len(sys.argv) > 2 else "tests/infer/numpyro_state_models.json"
CHAINS, WARMUP, SAMPLES = 4, 2000, 10000


def run(name, model, seed, **data):
    return run_nuts(name, model, seed, CHAINS, WARMUP, SAMPLES, **data)


def arma11(y):
    mu = numpyro.sample("mu", dist.Normal(0, 50))
    phi = numpyro.sample("phi", dist.Uniform(-1, 1))
    theta = numpyro.sample("theta", dist.Uniform(-1, 1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10))

    def step(error, t):
        prediction = mu + phi * (y[t - 1] - mu) + theta * error
        return y[t] - prediction, prediction

    _, predictions = jax.lax.scan(step, 0.0, jnp.arange(1, len(y)))
    numpyro.sample("y", dist.Normal(predictions, sigma), obs=y[1:])


def garch11(y, sigma1):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    omega = numpyro.sample("omega", dist.HalfNormal(1))
    alpha = numpyro.sample("alpha", dist.Uniform(0, 1))
    beta = numpyro.sample("beta", dist.Uniform(0, 1))

    def step(variance, t):
        variance = omega + alpha * (y[t - 1] - mu) ** 2 + beta * variance
        return variance, variance

    _, variances = jax.lax.scan(step, sigma1**2, jnp.arange(1, len(y)))
    numpyro.sample("y", dist.Normal(mu, jnp.sqrt(variances)), obs=y[1:])


def gaussian_hmm(y, K):
    mu = numpyro.sample(
        "mu", dist.ImproperUniform(dist.constraints.ordered_vector, (), event_shape=(K,))
    )
    numpyro.factor("mu_prior", dist.Normal(0, 5).log_prob(mu).sum())
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    p = numpyro.sample("p", dist.Dirichlet(jnp.ones((K, K))))
    log_p = jnp.log(p)

    def emission(value):
        z = (value - mu) / sigma
        return -0.5 * z**2 - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi)

    def step(alpha, value):
        alpha = logsumexp(alpha[:, None] + log_p, axis=0) + emission(value)
        return alpha, None

    alpha, _ = jax.lax.scan(step, -jnp.log(K) + emission(y[0]), y[1:])
    numpyro.factor("forward", logsumexp(alpha))


def simulate_garch(rng, T=150):
    mu, omega, alpha, beta = 0.5, 0.2, 0.3, 0.5
    y = np.zeros(T)
    variance = omega / (1 - alpha - beta)
    y[0] = mu + np.sqrt(variance) * rng.standard_normal()
    for t in range(1, T):
        variance = omega + alpha * (y[t - 1] - mu) ** 2 + beta * variance
        y[t] = mu + np.sqrt(variance) * rng.standard_normal()
    return y


def simulate_hmm(rng, T=120):
    transition = np.array([[0.9, 0.1], [0.2, 0.8]])
    means, sd = np.array([-1.0, 2.0]), 0.8
    state = rng.integers(2)
    y = np.zeros(T)
    for t in range(T):
        if t > 0:
            state = rng.choice(2, p=transition[state])
        y[t] = means[state] + sd * rng.standard_normal()
    return y


def main():
    rng = np.random.default_rng(18)
    with open(os.path.join(ROOT, "models/corpus/data/arma11_series.json")) as f:
        arma = json.load(f)
    arma_y = np.array(arma["y"], dtype=float)
    write(os.path.join(DATA, "arma11.json"), {"T": len(arma_y), "y": arma_y.tolist()})
    garch_y = simulate_garch(rng)
    sigma1 = float(np.std(garch_y))
    write(os.path.join(DATA, "garch11.json"),
          {"T": len(garch_y), "sigma1": sigma1, "y": [round(v, 6) for v in garch_y]})
    garch_y = np.round(garch_y, 6)
    hmm_y = np.round(simulate_hmm(rng), 6)
    write(os.path.join(DATA, "gaussian_hmm.json"), {"T": len(hmm_y), "K": 2, "y": hmm_y.tolist()})

    models = [
        run("arma11", arma11, 1, y=jnp.array(arma_y)),
        run("garch11", garch11, 2, y=jnp.array(garch_y), sigma1=sigma1),
        run("gaussian_hmm", gaussian_hmm, 3, y=jnp.array(hmm_y), K=2),
    ]
    write(OUT, {"numpyro": numpyro.__version__, "jax": jax.__version__, "models": models})


if __name__ == "__main__":
    main()
