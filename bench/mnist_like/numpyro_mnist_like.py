"""The MNIST-sized Bayesian network job in NumPyro, the peer of models/scale/mnist_like_bnn.bdl.

usage: python numpyro_mnist_like.py TRAIN_CSV TEST_CSV [--steps 2000] [--draws 1000]
       [--accuracy-draws 100] [--f32]

A 784-100-10 ReLU network with Normal(0, 1) priors on every weight and bias, a categorical
likelihood on the logits, the data plate subsampled to 128 rows; SVI with AutoDiagonalNormal
and Adam(0.01) for 2,000 steps, then 1,000 posterior draws by Predictive on the guide. The
held-out accuracy averages the softmax probabilities of the test rows over the first
`--accuracy-draws` draws and takes the most probable class.

Prints one JSON object: the time to read the CSV with pandas, SVI's wall time including JIT
compilation (`svi_s`) and again with the compiled code (`svi_warm_s`), the draws' time, the
accuracy and the whole run's wall time. Runs in float64 (as bdl does) unless `--f32`.
"""
import argparse
import json
import time

T_START = time.perf_counter()

parser = argparse.ArgumentParser()
parser.add_argument("train")
parser.add_argument("test")
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--draws", type=int, default=1000)
parser.add_argument("--accuracy-draws", type=int, default=100)
parser.add_argument("--f32", action="store_true")
args = parser.parse_args()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", not args.f32)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro.infer import SVI, Predictive, Trace_ELBO  # noqa: E402
from numpyro.infer.autoguide import AutoDiagonalNormal  # noqa: E402

FLOAT = np.float32 if args.f32 else np.float64
HIDDEN = 100
CLASSES = 10
BATCH = 128


def read(path):
    frame = pd.read_csv(path)
    features = frame[[c for c in frame.columns if c.startswith("x")]].to_numpy(FLOAT)
    return features, frame["y"].to_numpy(np.int32)


def model(x, y=None):
    n, d = x.shape
    w1 = numpyro.sample("w1", dist.Normal(0, 1).expand([d, HIDDEN]).to_event(2))
    b1 = numpyro.sample("b1", dist.Normal(0, 1).expand([HIDDEN]).to_event(1))
    w2 = numpyro.sample("w2", dist.Normal(0, 1).expand([HIDDEN, CLASSES]).to_event(2))
    b2 = numpyro.sample("b2", dist.Normal(0, 1).expand([CLASSES]).to_event(1))
    with numpyro.plate("data", n, subsample_size=min(BATCH, n)) as batch:
        hidden = jax.nn.relu(x[batch] @ w1 + b1)
        logits = hidden @ w2 + b2
        numpyro.sample(
            "y", dist.Categorical(logits=logits), obs=None if y is None else y[batch]
        )


t0 = time.perf_counter()
x_train, y_train = read(args.train)
x_test, y_test = read(args.test)
read_s = time.perf_counter() - t0

guide = AutoDiagonalNormal(model)
svi = SVI(model, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
x_train_j, y_train_j = jnp.asarray(x_train), jnp.asarray(y_train)


def fit(seed):
    t0 = time.perf_counter()
    result = svi.run(
        jax.random.PRNGKey(seed), args.steps, x_train_j, y_train_j, progress_bar=False
    )
    jax.block_until_ready(result.params)
    return result, time.perf_counter() - t0


result, svi_s = fit(0)
_, svi_warm_s = fit(1)

t0 = time.perf_counter()
latent = Predictive(guide, params=result.params, num_samples=args.draws)(
    jax.random.PRNGKey(2), x_train_j
)
jax.block_until_ready(latent)
draws_s = time.perf_counter() - t0


@jax.jit
def probabilities(w1, b1, w2, b2, x):
    return jax.nn.softmax(jax.nn.relu(x @ w1 + b1) @ w2 + b2, axis=-1)


t0 = time.perf_counter()
x_test_j = jnp.asarray(x_test)
mean = np.zeros((len(y_test), CLASSES))
k = min(args.accuracy_draws, args.draws)
for i in range(k):
    mean += np.asarray(
        probabilities(
            latent["w1"][i], latent["b1"][i], latent["w2"][i], latent["b2"][i], x_test_j
        )
    )
accuracy = float((mean.argmax(axis=1) == y_test).mean())
accuracy_s = time.perf_counter() - t0

print(
    json.dumps(
        {
            "system": "numpyro",
            "numpyro": numpyro.__version__,
            "jax": jax.__version__,
            "dtype": "float32" if args.f32 else "float64",
            "rows": int(len(y_train)),
            "read_csv_s": round(read_s, 2),
            "svi_s": round(svi_s, 2),
            "svi_warm_s": round(svi_warm_s, 2),
            "draws_s": round(draws_s, 2),
            "accuracy_draws": k,
            "accuracy": round(accuracy, 4),
            "accuracy_s": round(accuracy_s, 2),
            "final_loss": float(result.losses[-1]),
            "wall_s": round(time.perf_counter() - T_START, 2),
        }
    )
)
