"""Runs the reference workloads in bdl and in its peers in the same session and prints ratios.

The workloads are those of bench/peers/numpyro_bench.py (NumPyro, JAX on CPU) and
bench/peers/nutpie_bench.py (PyMC models sampled by nutpie), on the same data files
(models/data/). bdl runs the bundled models with the workloads' settings through the `bdlc`
binary, timed as whole processes (start-up, parsing, data, inference, files). Figures go to
stdout as JSON lines and a Markdown table.

usage:
    bench/setup-peers.sh                       # NumPyro, JAX, ArviZ in bench/.peers
    python3 -m venv bench/.pymc && bench/.pymc/bin/pip install pymc nutpie numba arviz
    cargo build --release -p bdlc
    bench/.peers/bin/python bench/compare.py [--skip-peers] [--only WORKLOAD ...]

Machines are noisy: peers and bdl run back to back, each workload in turn, and ratios (not
absolute times) are what the figures claim.
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
PEERS = os.path.join(ROOT, "bench", "peers")


def run_bdlc(args, out_dir):
    """Runs bdlc, returning (process wall seconds, summary.json)."""
    start = time.perf_counter()
    subprocess.run([BDLC, *args, "--out", out_dir, "--force", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(os.path.join(out_dir, "summary.json")) as handle:
        return wall, json.load(handle)


def first_draw_seconds(model, out_dir, extra=()):
    """Seconds from starting `bdlc infer` to the first draw written to chain-1.csv (the first
    warm-up iteration with `--save-warmup`, else the first kept draw)."""
    chain = os.path.join(out_dir, "chain-1.csv")
    start = time.perf_counter()
    process = subprocess.Popen([BDLC, "infer", model, "--method", "nuts", "--out", out_dir, "--force", "--quiet",
                                *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = None
    while seen is None and process.poll() is None:
        if os.path.exists(chain):
            with open(chain) as handle:
                lines = [line for line in handle if line.strip() and not line.startswith("#")]
            if len(lines) >= 2:
                seen = time.perf_counter() - start
                break
        time.sleep(0.0005)
    process.wait()
    return seen if seen is not None else time.perf_counter() - start


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def sine_metrics(model, posterior):
    """RMSE of the predictive mean and 90% coverage on sine_test, inside |x| <= 3 and outside."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pred.csv")
        subprocess.run([BDLC, "predict", model, "--posterior", posterior, "--data",
                        os.path.join(DATA, "sine_test.csv"), "--out", out, "--draws", "500"],
                       check=True, stderr=subprocess.DEVNULL)
        predictions = read_rows(out)
    test = read_rows(os.path.join(DATA, "sine_test.csv"))
    metrics = {}
    for name, keep in (("in_range", lambda x: abs(x) <= 3), ("outside", lambda x: abs(x) > 3)):
        pairs = [(p, t) for p, t in zip(predictions, test) if keep(float(t["x"]))]
        if not pairs:
            continue
        se = [(float(p["mean"]) - float(t["y"])) ** 2 for p, t in pairs]
        inside = [float(p["q5"]) <= float(t["y"]) <= float(p["q95"]) for p, t in pairs]
        width = [float(p["q95"]) - float(p["q5"]) for p, _ in pairs]
        metrics["rmse_" + name] = math.sqrt(sum(se) / len(se))
        metrics["coverage90_" + name] = sum(inside) / len(inside)
        metrics["band_width_" + name] = sum(width) / len(width)
    return metrics


def iris_accuracy(model, posterior):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pred.csv")
        subprocess.run([BDLC, "predict", model, "--posterior", posterior, "--data",
                        os.path.join(DATA, "iris_test.csv"), "--out", out, "--draws", "500"],
                       check=True, stderr=subprocess.DEVNULL)
        predictions = read_rows(out)
    test = read_rows(os.path.join(DATA, "iris_test.csv"))
    right = 0
    for p, t in zip(predictions, test):
        probabilities = [float(p[f"p{k}"]) for k in range(3)]
        right += int(max(range(3), key=lambda k: probabilities[k]) == int(t["species"]))
    return right / len(test)


def min_ess(summary):
    values = [e["ess_bulk"] for e in summary["summary"] if e.get("ess_bulk") is not None]
    return min(values) if values else float("nan")


def bdl_workload(name, tmp):
    out = os.path.join(tmp, name)
    model = lambda m: os.path.join(ROOT, "models", m)
    svi = {"poly_svi_mvn": ("poly_regression.bdl", []),
           "sine_bnn_svi": ("sine_bnn.bdl", ["--particles", "1"]),
           "sine_bnn_svi_p16": ("sine_bnn.bdl", ["--particles", "16"]),
           "iris_bnn_svi": ("iris_bnn.bdl", [])}
    if name in svi:
        file, flags = svi[name]
        wall, s = run_bdlc(["infer", model(file), *flags], out)
        result = {"wall_s": wall, "final_loss": s["facts"]["final_loss"]}
        # NumPyro's auto-guides start from init_to_uniform (every unconstrained value uniform on
        # [-2, 2]); bdl starts from the prior median. The loss after a fixed number of steps
        # depends on the start, so the loss is also reported from NumPyro's kind of start.
        _, same_start = run_bdlc(["infer", model(file), *flags, "--init", "uniform"], out + "-uniform")
        result["final_loss_uniform_init"] = same_start["facts"]["final_loss"]
        if file == "sine_bnn.bdl":
            result.update({"particles": int(flags[1]), **sine_metrics(model(file), out)})
        if file == "iris_bnn.bdl":
            result["test_accuracy"] = iris_accuracy(model(file), out)
        return result
    files = {"eight_schools_nuts": "eight_schools.bdl", "logistic_nuts": "logistic.bdl",
             "shallow_bnn_nuts": "shallow_bnn.bdl"}
    wall, s = run_bdlc(["infer", model(files[name]), "--method", "nuts"], out)
    first_draw = first_draw_seconds(model(files[name]), out + "-first")
    first_iteration = first_draw_seconds(model(files[name]), out + "-first-warmup", ["--save-warmup"])
    ess = min_ess(s)
    inference = s["facts"]["wall_seconds"]
    return {"wall_s": wall, "inference_s": inference, "min_ess": ess,
            "ess_per_s": ess / inference, "ess_per_s_end_to_end": ess / wall,
            "divergences": s["facts"].get("divergences"), "first_draw_s": first_draw,
            "first_iteration_s": first_iteration}


def peer(python, script, workload):
    """One peer workload as a JSON object, or None when the peer is not installed."""
    if not os.path.exists(python):
        return None
    result = subprocess.run([python, os.path.join(PEERS, script), DATA, workload], capture_output=True,
                            text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


SVI = ["poly_svi_mvn", "sine_bnn_svi", "sine_bnn_svi_p16", "iris_bnn_svi"]
NUTS = ["eight_schools_nuts", "logistic_nuts", "shallow_bnn_nuts"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    numpyro_python = os.path.join(ROOT, "bench", ".peers", "bin", "python")
    nutpie_python = os.path.join(ROOT, "bench", ".pymc", "bin", "python")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or SVI + NUTS:
            bdl = bdl_workload(name, tmp)
            print(json.dumps({"system": "bdl", "workload": name, **bdl}), flush=True)
            numpyro = None if args.skip_peers else peer(numpyro_python, "numpyro_bench.py", name)
            if numpyro:
                print(json.dumps(numpyro), flush=True)
            nutpie = None
            if name in NUTS and not args.skip_peers:
                nutpie = peer(nutpie_python, "nutpie_bench.py", name)
                if nutpie:
                    print(json.dumps(nutpie), flush=True)
            rows.append((name, bdl, numpyro, nutpie))
    print()
    print("| workload | bdl | NumPyro (warm) | nutpie (sampling) | ratio |")
    print("|---|---|---|---|---|")
    for name, bdl, numpyro, nutpie in rows:
        if name in SVI:
            peer_time = numpyro["warm_s"] if numpyro else float("nan")
            print(f"| {name} | {bdl['wall_s']:.2f} s, loss {bdl['final_loss']:.1f} "
                  f"({bdl['final_loss_uniform_init']:.1f} from NumPyro's start) | "
                  f"{peer_time:.2f} s, loss {numpyro['final_loss'] if numpyro else float('nan'):.1f} | - | "
                  f"{peer_time / bdl['wall_s']:.1f}x faster |")
        else:
            numpyro_rate = numpyro["ess_per_s_warm"] if numpyro else float("nan")
            nutpie_rate = nutpie["ess_per_s_warm"] if nutpie else float("nan")
            best = max(r for r in (numpyro_rate, nutpie_rate) if not math.isnan(r)) if (numpyro or nutpie) else float("nan")
            print(f"| {name} | {bdl['ess_per_s']:.0f} ESS/s ({bdl['ess_per_s_end_to_end']:.0f} end to end) | "
                  f"{numpyro_rate:.0f} ESS/s | {nutpie_rate:.0f} ESS/s | {bdl['ess_per_s'] / best:.1f}x best peer |")


if __name__ == "__main__":
    sys.exit(main())
