"""Reference log densities of the bundled models, computed by NumPyro at fixed points.

For every model in models/ (the models of the inference methods through the full-data model
of the same network and priors, see MODELS) this script writes the same model in NumPyro, picks a fixed point in
unconstrained space (each latent site filled with 0.3 * sin(k + 1) + 0.1 * k / n over its
flattened elements k), and records -potential_energy there: the log joint density in unconstrained
space, Jacobians included. bdl's runtime must give the same number at the same point.

usage: bench/setup-peers.sh && bench/.peers/bin/python scripts/numpyro_log_density.py \
           > crates/bdl-runtime/tests/data/numpyro_log_density.json
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.util import potential_energy

jax.config.update("jax_enable_x64", True)
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "models", "data")


def csv(name):
    with open(os.path.join(DATA, name)) as handle:
        header = handle.readline().strip().split(",")
    return header, np.loadtxt(os.path.join(DATA, name), delimiter=",", skiprows=1)


def point(shape):
    n = int(np.prod(shape)) if shape else 1
    k = np.arange(n, dtype=float)
    return jnp.asarray((0.3 * np.sin(k + 1) + 0.1 * k / n).reshape(shape))


def eight_schools():
    d = json.load(open(os.path.join(DATA, "eight_schools.json")))
    sigma, y = jnp.array(d["sigma"], dtype=float), jnp.array(d["y"], dtype=float)

    def model():
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        tau = numpyro.sample("tau", dist.HalfCauchy(5))
        with numpyro.plate("J", d["J"]):
            theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0, 1))
            theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y)

    return model, [("mu", ()), ("tau", ()), ("theta_tilde", (8,))]


def bayes_linreg():
    x, y = jnp.array([2.0, -2.0]), jnp.array([0.0, -2.0])

    def model():
        b = numpyro.sample("b", dist.Normal(0, 5))
        w = numpyro.sample("w", dist.Normal(0, 5))
        with numpyro.plate("data", 2):
            numpyro.sample("y", dist.Normal(b + w * x, 1), obs=y)

    return model, [("b", ()), ("w", ())]


def poly_regression():
    _, d = csv("poly.csv")
    x, y = jnp.array(d[:, 0]), jnp.array(d[:, 1])
    phi = jnp.stack([x ** k for k in range(1, 11)], -1)

    def model():
        w = numpyro.sample("w", dist.Normal(0, 1).expand([10]).to_event(1))
        b = numpyro.sample("b", dist.Normal(0, 1))
        sigma = numpyro.sample("sigma", dist.Uniform(0, 1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Normal(phi @ w + b, sigma), obs=y)

    return model, [("w", (10,)), ("b", ()), ("sigma", ())]


def mlp_sites(n_in, hidden, n_out):
    return [("mlp_0_weight", (n_in, hidden)), ("mlp_0_bias", (hidden,)),
            ("mlp_2_weight", (hidden, n_out)), ("mlp_2_bias", (n_out,))]


def lifted_mlp(n_in, hidden, n_out):
    w1 = numpyro.sample("mlp_0_weight", dist.Normal(0, 1).expand([n_in, hidden]).to_event(2))
    b1 = numpyro.sample("mlp_0_bias", dist.Normal(0, 1).expand([hidden]).to_event(1))
    w2 = numpyro.sample("mlp_2_weight", dist.Normal(0, 1).expand([hidden, n_out]).to_event(2))
    b2 = numpyro.sample("mlp_2_bias", dist.Normal(0, 1).expand([n_out]).to_event(1))
    return lambda x: jax.nn.relu(x @ w1 + b1) @ w2 + b2


def sine_bnn():
    _, d = csv("sine.csv")
    x, y = jnp.array(d[:, 0]), jnp.array(d[:, 1])

    def model():
        net = lifted_mlp(1, 100, 1)
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Normal(net(x[:, None])[:, 0], sigma), obs=y)

    return model, mlp_sites(1, 100, 1) + [("sigma", ())]


def iris_bnn():
    _, d = csv("iris_train.csv")
    X, y = jnp.array(d[:, :4]), jnp.array(d[:, 4].astype(int))

    def model():
        net = lifted_mlp(4, 100, 3)
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Categorical(logits=net(X)), obs=y)

    return model, mlp_sites(4, 100, 3)


def logistic():
    _, d = csv("logistic.csv")
    X, y = jnp.array(d[:, :-1]), jnp.array(d[:, -1])

    def model():
        alpha = numpyro.sample("alpha", dist.Normal(0, 1))
        beta = numpyro.sample("beta", dist.Normal(0, 1).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("N", X.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)

    return model, [("alpha", ()), ("beta", (20,))]


def shallow_bnn():
    _, d = csv("shallow.csv")
    X, y = jnp.array(d[:, :2]), jnp.array(d[:, 2])

    def model():
        g = numpyro.sample("gamma", dist.Normal(0, 1).expand([2, 10]).to_event(2))
        g0 = numpyro.sample("gamma0", dist.Normal(0, 1).expand([10]).to_event(1))
        b = numpyro.sample("beta", dist.Normal(0, 1).expand([10]).to_event(1))
        b0 = numpyro.sample("beta0", dist.Normal(0, 1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        with numpyro.plate("N", X.shape[0]):
            numpyro.sample("y", dist.Normal(jax.nn.sigmoid(X @ g + g0) @ b + b0, sigma), obs=y)

    return model, [("gamma", (2, 10)), ("gamma0", (10,)), ("beta", (10,)), ("beta0", ()),
                   ("sigma", ())]


def shallow_gibbs():
    _, d = csv("shallow.csv")
    X, y = jnp.array(d[:, :2]), jnp.array(d[:, 2])

    def model():
        g = numpyro.sample("gamma", dist.Normal(0, 1).expand([2, 10]).to_event(2))
        g0 = numpyro.sample("gamma0", dist.Normal(0, 1).expand([10]).to_event(1))
        tau_beta = numpyro.sample("tau_beta", dist.Gamma(1.0, 1.0))
        b = numpyro.sample("beta", dist.Normal(0, 1 / jnp.sqrt(tau_beta)).expand([10]).to_event(1))
        b0 = numpyro.sample("beta0", dist.Normal(0, 1))
        tau = numpyro.sample("tau", dist.Gamma(1.0, 0.1))
        with numpyro.plate("N", X.shape[0]):
            mu = jax.nn.sigmoid(X @ g + g0) @ b + b0
            numpyro.sample("y", dist.Normal(mu, 1 / jnp.sqrt(tau)), obs=y)

    return model, [("gamma", (2, 10)), ("gamma0", (10,)), ("tau_beta", ()), ("beta", (10,)),
                   ("beta0", ()), ("tau", ())]


# The models of the inference methods: their log density is that of the full data (a mini-batch
# plate's density, as bdl's runtime computes it for HMC and for checks, takes every row), so the
# NumPyro model is the full-data one of the same network and priors.
MODELS = {
    "eight_schools": eight_schools,
    "bayes_linreg": bayes_linreg,
    "poly_regression": poly_regression,
    "sine_bnn": sine_bnn,
    "iris_bnn": iris_bnn,
    "logistic": logistic,
    "shallow_bnn": shallow_bnn,
    "shallow_gibbs": shallow_gibbs,
    "sine_ensemble": sine_bnn,
    "sine_sgld": sine_bnn,
    "bayes_by_backprop": sine_bnn,
    "iris_bayes_by_backprop": iris_bnn,
}

if __name__ == "__main__":
    results = {}
    for name, build in MODELS.items():
        model, sites = build()
        params = {site: point(shape) for site, shape in sites}
        value = -float(potential_energy(model, (), {}, params))
        results[name] = {
            "sites": [{"name": site, "shape": list(shape),
                       "unconstrained": np.asarray(params[site]).ravel().tolist()}
                      for site, shape in sites],
            "log_density": value,
        }
    json.dump({"numpyro": numpyro.__version__, "models": results}, sys.stdout, indent=1)
    print()
