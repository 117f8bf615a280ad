"""NumPyro's SVI step on the MNIST-sized network, the peer of
crates/bdl-runtime/benches/svi_step.rs.

usage: python numpyro_step.py [--rows 20000] [--steps 400] [--threads N]

The same job as `models/scale/mnist_like_bnn.bdl` and `numpyro_mnist_like.py`: a 784-100-10
ReLU network with Normal(0, 1) priors on every weight and bias, a categorical likelihood, the
data plate subsampled to 128 rows, AutoDiagonalNormal, Adam(0.01), Trace_ELBO with one
particle, float64. The data are standard-normal features with classes from a fixed rule (the
step's cost does not depend on the values). The compiled update (`svi.update` under `jax.jit`)
is warmed up for 50 steps, then each of `--steps` steps is timed with `block_until_ready`;
prints one JSON object with the median and quartiles of the per-step wall time and the CPU
time per step. `--threads 1` pins XLA to one core (its CPU client otherwise uses all cores).
"""

import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, default=20000)
parser.add_argument("--steps", type=int, default=400)
parser.add_argument("--threads", type=int, default=0)
args = parser.parse_args()
if args.threads:
    os.environ["XLA_FLAGS"] = (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    os.sched_setaffinity(0, set(list(os.sched_getaffinity(0))[: args.threads]))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import SVI, Trace_ELBO  # noqa: E402
from numpyro.infer.autoguide import AutoDiagonalNormal  # noqa: E402

HIDDEN, CLASSES, BATCH, WARM_UP = 100, 10, 128, 50


def model(x, y=None):
    n, d = x.shape
    w1 = numpyro.sample("w1", dist.Normal(0, 1).expand([d, HIDDEN]).to_event(2))
    b1 = numpyro.sample("b1", dist.Normal(0, 1).expand([HIDDEN]).to_event(1))
    w2 = numpyro.sample("w2", dist.Normal(0, 1).expand([HIDDEN, CLASSES]).to_event(2))
    b2 = numpyro.sample("b2", dist.Normal(0, 1).expand([CLASSES]).to_event(1))
    with numpyro.plate("data", n, subsample_size=min(BATCH, n)) as batch:
        hidden = jax.nn.relu(x[batch] @ w1 + b1)
        logits = hidden @ w2 + b2
        numpyro.sample("y", dist.Categorical(logits=logits), obs=y[batch])


rng = np.random.default_rng(15)
x = jnp.asarray(rng.standard_normal((args.rows, 784)))
y = jnp.asarray(np.clip(((np.asarray(x[:, 0]) + 3.0) * 10.0 / 6.0), 0, 9).astype(np.int32))
svi = SVI(model, AutoDiagonalNormal(model), numpyro.optim.Adam(0.01), Trace_ELBO())
state = svi.init(jax.random.PRNGKey(0), x, y)
update = jax.jit(svi.update)
for _ in range(WARM_UP):
    state, loss = update(state, x, y)
jax.block_until_ready(state)
times = []
cpu0 = time.process_time()
for _ in range(args.steps):
    t0 = time.perf_counter()
    state, loss = update(state, x, y)
    jax.block_until_ready(loss)
    times.append((time.perf_counter() - t0) * 1e3)
cpu_ms = (time.process_time() - cpu0) * 1e3 / args.steps
q1, median, q3 = np.percentile(times, [25, 50, 75])
print(
    json.dumps(
        {
            "rows": args.rows,
            "threads": args.threads or len(os.sched_getaffinity(0)),
            "median_ms": round(median, 3),
            "quartiles_ms": [round(q1, 3), round(q3, 3)],
            "cpu_ms_per_step": round(cpu_ms, 3),
            "final_loss": float(loss),
        }
    )
)
