"""The gradients of benches/gradients.rs in JAX, for a side-by-side comparison.

Each log density is the same function of the same flat parameter vector as in the Rust benchmark
(see the module comment there). The gradient is `jax.jit(jax.grad(f))` in float64; each call is
timed with `block_until_ready`, and the median of many calls is reported in microseconds after a
warm-up that excludes compilation. JAX runs with its default settings. Also printed: the log
density and the gradient's norm, which the Rust side can be checked against.

Run from the repository root after `bench/setup-peers.sh`:

    bench/.peers/bin/python crates/bdl-autodiff/benches/jax_gradients.py [--calls N]
"""

import argparse
import csv
import json
import math
import os
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "models", "data")
HIDDEN = 100


def parameters(count):
    """The fixed parameter pattern shared with the Rust benchmark."""
    return jnp.array([0.5 * math.sin(0.37 + 1.3 * i) for i in range(count)], dtype=jnp.float64)


def read_csv(name):
    with open(os.path.join(DATA, name)) as handle:
        rows = list(csv.reader(handle))
    return [[float(cell) for cell in row] for row in rows[1:] if row]


def eight_schools():
    with open(os.path.join(DATA, "eight_schools.json")) as handle:
        data = json.load(handle)
    y = jnp.array(data["y"], dtype=jnp.float64)
    sigma = jnp.array(data["sigma"], dtype=jnp.float64)

    def log_density(z):
        mu, log_tau, theta_tilde = z[0], z[1], z[2:10]
        tau = jnp.exp(log_tau)
        prior_mu = -0.5 / 25.0 * mu**2
        prior_tau = log_tau - jnp.log1p((0.2 * tau) ** 2)
        prior_tilde = -0.5 * jnp.sum(theta_tilde**2)
        theta = mu + tau * theta_tilde
        likelihood = -0.5 * jnp.sum(((y - theta) / sigma) ** 2)
        return prior_mu + prior_tau + prior_tilde + likelihood

    return log_density, 10


def sine_bnn():
    rows = read_csv("sine.csv")
    x = jnp.array([[row[0]] for row in rows], dtype=jnp.float64)
    y = jnp.array([[row[1]] for row in rows], dtype=jnp.float64)
    n = len(rows)

    def log_density(z):
        w1 = z[0:HIDDEN].reshape(1, HIDDEN)
        b1 = z[HIDDEN : 2 * HIDDEN]
        w2 = z[2 * HIDDEN : 3 * HIDDEN].reshape(HIDDEN, 1)
        b2 = z[3 * HIDDEN : 3 * HIDDEN + 1]
        log_sigma = z[3 * HIDDEN + 1]
        hidden = jax.nn.relu(x @ w1 + b1)
        output = hidden @ w2 + b2
        standardised = (y - output) * jnp.exp(-log_sigma)
        return -0.5 * jnp.sum(standardised**2) - n * log_sigma

    return log_density, 3 * HIDDEN + 2


def iris_bnn():
    rows = read_csv("iris_train.csv")
    x = jnp.array([row[:4] for row in rows], dtype=jnp.float64)
    labels = jnp.array([[int(row[4])] for row in rows])
    sizes = [(4, HIDDEN), (HIDDEN,), (HIDDEN, 3), (3,)]

    def log_density(z):
        parts, offset = [], 0
        for shape in sizes:
            count = math.prod(shape)
            parts.append(z[offset : offset + count].reshape(shape))
            offset += count
        w1, b1, w2, b2 = parts
        hidden = jax.nn.relu(x @ w1 + b1)
        logits = hidden @ w2 + b2
        log_probabilities = jax.nn.log_softmax(logits, axis=-1)
        return jnp.sum(jnp.take_along_axis(log_probabilities, labels, axis=1))

    return log_density, sum(math.prod(shape) for shape in sizes)


def median_microseconds(function, argument, calls):
    for _ in range(max(50, calls // 10)):
        function(argument).block_until_ready()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function(argument).block_until_ready()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1e6 * times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    arguments = parser.parse_args()
    print(f"jax {jax.__version__}, device {jax.devices()[0].platform}, float64")
    for name, build in [("eight_schools", eight_schools), ("sine_bnn", sine_bnn), ("iris_bnn", iris_bnn)]:
        log_density, dimension = build()
        z = parameters(dimension)
        gradient = jax.jit(jax.grad(log_density))
        value = float(jax.jit(log_density)(z))
        norm = float(jnp.linalg.norm(gradient(z)))
        microseconds = median_microseconds(gradient, z, arguments.calls)
        print(json.dumps({"workload": name, "jax_gradient_us": round(microseconds, 2),
                          "log_density": value, "gradient_norm": norm}))


if __name__ == "__main__":
    main()
