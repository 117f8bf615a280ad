"""The Bayesian-deep-learning methods side by side on the sine regression and the iris classifier.

For each method it runs `bdlc infer` on the bundled network model, predicts on the held-out data
with `bdlc predict`, and reports: sine — RMSE of the predictive mean and 90% interval coverage
and width, inside the training range (|x| <= 3) and outside it (where uncertainty should grow);
iris — test accuracy; and wall time of the whole `bdlc infer` process. Prints a Markdown table.

usage: cargo build --release -p bdlc && python3 bench/methods.py [--quick]
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BDLC = os.environ.get("BDLC", os.path.join(ROOT, "target", "release", "bdlc"))
DATA = os.path.join(ROOT, "models", "data")


def models(name):
    return os.path.join(ROOT, "models", name)


# (label, model file, extra flags) per task. The network and priors are the same within a task;
# only the inference method differs (Bayes-by-backprop is its own model file: mini-batches and a
# KL weight).
SINE = [
    ("SVI, diagonal normal", "sine_bnn.bdl", ["--method", "svi", "--guide", "diag"]),
    ("SVI, 16 particles", "sine_bnn.bdl", ["--method", "svi", "--guide", "diag", "--particles", "16"]),
    ("Bayes-by-backprop", "bayes_by_backprop.bdl", []),
    ("Deep ensemble (5)", "sine_ensemble.bdl", []),
    ("MultiSWAG (5 x 20)", "sine_ensemble.bdl", ["--swag"]),
    ("SGLD", "sine_sgld.bdl", []),
    ("NUTS (2 x 300 + 300, depth 8)", "sine_bnn.bdl",
     ["--method", "nuts", "--chains", "2", "--warmup", "300", "--samples", "300", "--max-depth", "8"]),
]
IRIS = [
    ("SVI, diagonal normal", "iris_bnn.bdl", ["--method", "svi", "--guide", "diag"]),
    ("Bayes-by-backprop", "iris_bayes_by_backprop.bdl", []),
    ("Deep ensemble (5)", "iris_bnn.bdl", ["--method", "ensemble", "--members", "5", "--steps", "3000"]),
    ("SGLD", "iris_bnn.bdl", ["--method", "sgld", "--chains", "2", "--warmup", "2000", "--samples", "1000"]),
    ("NUTS (2 x 300 + 300, depth 8)", "iris_bnn.bdl",
     ["--method", "nuts", "--chains", "2", "--warmup", "300", "--samples", "300", "--max-depth", "8"]),
]


def infer(model, flags, out):
    start = time.perf_counter()
    subprocess.run([BDLC, "infer", models(model), *flags, "--out", out, "--force", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def predict(model, posterior, data, out):
    subprocess.run([BDLC, "predict", models(model), "--posterior", posterior, "--data", data, "--out", out,
                    "--draws", "500"], check=True, stderr=subprocess.DEVNULL)
    with open(out) as handle:
        return list(csv.DictReader(handle))


def rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def sine_row(label, model, flags, tmp):
    out = os.path.join(tmp, "run")
    wall = infer(model, flags, out)
    predictions = predict(model, out, os.path.join(DATA, "sine_test.csv"), os.path.join(tmp, "pred.csv"))
    test = rows(os.path.join(DATA, "sine_test.csv"))
    result = {"method": label, "wall_s": wall}
    for part, keep in (("in", lambda x: abs(x) <= 3), ("out", lambda x: abs(x) > 3)):
        pairs = [(p, t) for p, t in zip(predictions, test) if keep(float(t["x"]))]
        result[f"rmse_{part}"] = math.sqrt(sum((float(p["mean"]) - float(t["y"])) ** 2 for p, t in pairs) / len(pairs))
        result[f"coverage_{part}"] = sum(float(p["q5"]) <= float(t["y"]) <= float(p["q95"]) for p, t in pairs) / len(pairs)
        result[f"width_{part}"] = sum(float(p["q95"]) - float(p["q5"]) for p, _ in pairs) / len(pairs)
    return result


def iris_row(label, model, flags, tmp):
    out = os.path.join(tmp, "run")
    wall = infer(model, flags, out)
    predictions = predict(model, out, os.path.join(DATA, "iris_test.csv"), os.path.join(tmp, "pred.csv"))
    test = rows(os.path.join(DATA, "iris_test.csv"))
    right = sum(max(range(3), key=lambda k: float(p[f"p{k}"])) == int(t["species"]) for p, t in zip(predictions, test))
    return {"method": label, "wall_s": wall, "accuracy": right / len(test)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip NUTS on the networks")
    args = parser.parse_args()
    keep = (lambda label: not label.startswith("NUTS")) if args.quick else (lambda label: True)
    with tempfile.TemporaryDirectory() as tmp:
        sine = [sine_row(*spec, tmp) for spec in SINE if keep(spec[0])]
        iris = [iris_row(*spec, tmp) for spec in IRIS if keep(spec[0])]
    for row in sine + iris:
        print(json.dumps(row))
    print()
    print("| sine_bnn | wall (s) | RMSE in range | 90% coverage in | band width in | RMSE outside | 90% coverage outside | band width outside |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sine:
        print(f"| {r['method']} | {r['wall_s']:.2f} | {r['rmse_in']:.3f} | {r['coverage_in']:.2f} | {r['width_in']:.2f} | "
              f"{r['rmse_out']:.3f} | {r['coverage_out']:.2f} | {r['width_out']:.2f} |")
    print()
    print("| iris_bnn | wall (s) | test accuracy |")
    print("|---|---|---|")
    for r in iris:
        print(f"| {r['method']} | {r['wall_s']:.2f} | {r['accuracy']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
