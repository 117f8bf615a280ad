"""Metropolis-within-Gibbs against NUTS on the shallow network (models/shallow_bnn.bdl).

The network's weights are not identifiable (hidden units can be permuted and their signs
flipped), so the two samplers are compared on what every mode shares: the noise scale sigma and
the regression function f(x) = sigmoid(x gamma + gamma0) beta + beta0 at the five inputs of
tests/infer/numpyro_posteriors.json. For each sampler the script reports wall time, the bulk ESS
and R-hat of each quantity (ArviZ), the minimum bulk ESS per second, and the z-score of the
difference of posterior means (difference over the root sum of squared MCSEs).

usage:
    bench/setup-peers.sh                       # ArviZ in bench/.peers
    cargo build --release -p bdlc
    bench/.peers/bin/python bench/gibbs_vs_nuts.py [--sweeps N] [--thin K]
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import arviz as az
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BDLC = os.environ.get("BDLC", os.path.join(ROOT, "target", "release", "bdlc"))
MODEL = os.path.join(ROOT, "models", "shallow_bnn.bdl")
HIDDEN = 10


def run(flags, out):
    start = time.perf_counter()
    subprocess.run([BDLC, "infer", MODEL, *flags, "--out", out, "--force", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def chains(out):
    result = []
    for index in range(1, 1000):
        path = os.path.join(out, f"chain-{index}.csv")
        if not os.path.exists(path):
            break
        with open(path) as handle:
            rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
        result.append({name: np.array([float(row[name]) for row in rows]) for name in rows[0]})
    return result


def quantities(chain_list, inputs):
    """sigma and f(x_k) per chain, as arrays of shape [chains, draws]."""
    out = {"sigma": np.stack([c["sigma"] for c in chain_list])}
    for k, x in enumerate(inputs):
        per_chain = []
        for c in chain_list:
            total = c["beta0"].copy()
            for j in range(1, HIDDEN + 1):
                z = x[0] * c[f"gamma.1.{j}"] + x[1] * c[f"gamma.2.{j}"] + c[f"gamma0.{j}"]
                total += c[f"beta.{j}"] / (1.0 + np.exp(-z))
            per_chain.append(total)
        out[f"f.{k + 1}"] = np.stack(per_chain)
    return out


def describe(values):
    ess = float(az.ess(values, method="bulk"))
    return {"mean": float(values.mean()), "mcse": float(az.mcse(values, method="mean")),
            "ess_bulk": ess, "r_hat": float(az.rhat(values))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweeps", type=int, default=10000, help="kept Gibbs sweeps per chain")
    parser.add_argument("--thin", type=int, default=1)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    with open(os.path.join(ROOT, "tests", "infer", "numpyro_posteriors.json")) as handle:
        reference = next(m for m in json.load(handle)["models"] if m["name"] == "shallow_bnn")
    inputs = reference["inputs"]
    runs = {
        "gibbs": ["--method", "gibbs", "--blocks", "gamma, gamma0; sigma; beta, beta0",
                  "--seed", str(args.seed), "--chains", "4", "--warmup", "3000",
                  "--samples", str(args.sweeps), "--thin", str(args.thin)],
        "nuts": ["--method", "nuts", "--seed", str(args.seed)],
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, flags in runs.items():
            out = os.path.join(tmp, label)
            wall = run(flags, out)
            stats = {name: describe(values) for name, values in quantities(chains(out), inputs).items()}
            min_ess = min(s["ess_bulk"] for s in stats.values())
            results[label] = {"wall_s": wall, "min_ess_bulk": min_ess, "min_ess_per_s": min_ess / wall,
                              "quantities": stats}
            print(json.dumps({"sampler": label, **results[label]}), flush=True)
    print()
    print("| quantity | Gibbs mean (MCSE) | NUTS mean (MCSE) | z | Gibbs ESS | NUTS ESS | Gibbs R-hat |")
    print("|---|---|---|---|---|---|---|")
    for name, g in results["gibbs"]["quantities"].items():
        n = results["nuts"]["quantities"][name]
        z = (g["mean"] - n["mean"]) / math.hypot(g["mcse"], n["mcse"])
        print(f"| {name} | {g['mean']:.4f} ({g['mcse']:.4f}) | {n['mean']:.4f} ({n['mcse']:.4f}) | {z:.2f} | "
              f"{g['ess_bulk']:.0f} | {n['ess_bulk']:.0f} | {g['r_hat']:.3f} |")
    for label, r in results.items():
        print(f"{label}: {r['wall_s']:.1f} s, min bulk ESS {r['min_ess_bulk']:.0f}, "
              f"{r['min_ess_per_s']:.1f} ESS/s")


if __name__ == "__main__":
    sys.exit(main())
