"""Writes the GPU benchmark's data: ROWS rows of 784 standard-normal features (x1..x784) and a
class y in 0..9 drawn from a random teacher network (784-32-10, tanh hidden layer), as CSV.

    python3 bench/gpu/make_data.py ROWS OUT.csv [SEED]
"""
import sys

import numpy as np


def main():
    rows, out = int(sys.argv[1]), sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 1 / np.sqrt(784), (784, 32))
    w2 = rng.normal(0, 3 / np.sqrt(32), (32, 10))
    x = rng.standard_normal((rows, 784))
    logits = np.tanh(x @ w1) @ w2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) > rng.random((rows, 1))).argmax(axis=1)
    header = ",".join([f"x{j + 1}" for j in range(784)] + ["y"])
    with open(out, "w") as handle:
        handle.write(header + "\n")
        for start in range(0, rows, 1000):
            block = x[start : start + 1000]
            labels = y[start : start + 1000]
            lines = [
                ",".join(f"{v:.6f}" for v in row) + f",{label}"
                for row, label in zip(block, labels)
            ]
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
