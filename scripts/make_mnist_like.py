"""Writes an MNIST-sized synthetic classification data set for the deep-learning benchmark.

Each row holds 784 standard-normal features `x0` … `x783` and a class `y` in 0 … 9 drawn from
a random teacher network: a tanh hidden layer of 32 units and a linear read-out to 10 logits,
with the class sampled from the softmax of the logits. The teacher is fixed by the seed, so the
train and held-out files written with the same seed share it.

    python3 scripts/make_mnist_like.py --rows 20000 --out /tmp/mnist_like_train.csv
    python3 scripts/make_mnist_like.py --rows 5000 --split test --out /tmp/mnist_like_test.csv
    python3 scripts/make_mnist_like.py --rows 60000 --format npy --out /tmp/mnist_like.npz

Needs numpy only. The files are large (20,000 rows are about 140 MB of CSV) and are not
committed; bench/mnist_like/run.sh writes them on first use.
"""

import argparse
import sys

import numpy as np

FEATURES = 784
HIDDEN = 32
CLASSES = 10


def teacher(seed):
    """The teacher network's weights, scaled so that its logits spread over a few units."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(FEATURES, HIDDEN)) / np.sqrt(FEATURES)
    b1 = rng.normal(size=HIDDEN) * 0.1
    w2 = rng.normal(size=(HIDDEN, CLASSES)) * 3.0 / np.sqrt(HIDDEN)
    b2 = rng.normal(size=CLASSES) * 0.1
    return w1, b1, w2, b2


def rows(n_rows, seed, split):
    """Features and classes: the teacher comes from `seed`, the rows from `seed` and `split`."""
    w1, b1, w2, b2 = teacher(seed)
    stream = {"train": 1, "test": 2}[split]
    rng = np.random.default_rng([seed, stream])
    x = rng.normal(size=(n_rows, FEATURES))
    logits = np.tanh(x @ w1 + b1) @ w2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    # Inverse-CDF sampling, one uniform per row.
    uniform = rng.uniform(size=(n_rows, 1))
    y = (probabilities.cumsum(axis=1) < uniform).sum(axis=1)
    return x, np.minimum(y, CLASSES - 1).astype(np.int64)


def write_csv(path, x, y):
    header = ",".join([f"x{j}" for j in range(FEATURES)] + ["y"])
    with open(path, "w", encoding="ascii") as out:
        out.write(header + "\n")
        for start in range(0, len(y), 1000):
            block = x[start : start + 1000]
            classes = y[start : start + 1000]
            lines = [
                ",".join(f"{v:.6g}" for v in row) + f",{c}"
                for row, c in zip(block, classes)
            ]
            out.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--format", choices=["csv", "npy"], default="csv")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    x, y = rows(args.rows, args.seed, args.split)
    if args.format == "csv":
        write_csv(args.out, x, y)
    else:
        # One archive: the feature matrix as `X` and the classes as `y`.
        np.savez(args.out, X=x, y=y)
    counts = np.bincount(y, minlength=CLASSES)
    print(f"wrote {args.rows} rows to {args.out}; classes {counts.tolist()}", file=sys.stderr)


if __name__ == "__main__":
    main()
