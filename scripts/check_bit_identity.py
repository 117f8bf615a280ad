#!/usr/bin/env python3
"""Checks that refactoring the inference code leaves every draw bit-identical.

For every model in `models/` and every inference method, this runs `bdlc infer` with a fixed seed
and small settings, then reduces the run to a fingerprint: for a run that succeeds, a SHA-256 of
each file it wrote (draws in CSV or Parquet, losses, guide parameters, the summary, the run
record `run.json`, which holds no timestamps), with wall-clock timings removed; for a run that fails, its exit code and a hash of its error message. Methods that do not
apply to a model (NUTS on a discrete site, `exact` on a non-conjugate model) are fingerprinted by
their error, so a change in which methods apply is caught too.

Usage (Python standard library only):

    scripts/check_bit_identity.py record DIR    # write DIR/fingerprints.json
    scripts/check_bit_identity.py compare DIR   # compare against DIR/fingerprints.json

`BDLC` names the binary (default `target/release/bdlc`); `--only SUBSTRING` restricts the runs
to those whose name contains it. Build the binary first: `cargo build -p bdlc --release`.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = "20261204"

# Small settings per method; only flags that apply to the method.
MCMC = ["--chains", "2", "--warmup", "60", "--samples", "40"]
SVI = ["--steps", "60", "--samples", "30"]
RUNS = {
    "prior": ["--method", "prior", "--samples", "50"],
    "svi-diag": ["--method", "svi", "--guide", "diag", *SVI],
    "svi-mvn": ["--method", "svi", "--guide", "mvn", *SVI],
    "svi-lowrank": ["--method", "svi", "--guide", "lowrank", "--rank", "2", *SVI],
    "svi-analytic-kl": [
        "--method", "svi", "--guide", "diag", "--elbo", "analytic_kl", "--kl-weight", "0.5",
        "--particles", "2", "--lr-final", "0.001", "--clip-norm", "5", "--init", "uniform", *SVI,
    ],
    "svi-iaf": ["--method", "svi", "--guide", "iaf", *SVI],
    "svi-resample": ["--method", "svi", "--guide", "diag", "--psis-draws", "40", "--resample",
                     *SVI],
    "svi-parquet": ["--method", "svi", "--guide", "diag", "--format", "parquet", *SVI],
    "pathfinder": ["--method", "pathfinder", "--paths", "2", "--steps", "30", "--samples", "30"],
    "map": ["--method", "map", "--steps", "60", "--optimizer", "clipped_adam", "--init", "zero"],
    "laplace": ["--method", "laplace", *SVI],
    "nuts": ["--method", "nuts", *MCMC, "--save-warmup", "--max-depth", "6"],
    "nuts-dense": ["--method", "nuts", *MCMC, "--metric", "dense", "--target-accept", "0.9",
                   "--max-depth", "6"],
    "hmc": ["--method", "hmc", *MCMC, "--steps", "8"],
    "exact": ["--method", "exact", "--samples", "50"],
    "ensemble": ["--method", "ensemble", "--members", "2", "--steps", "40"],
    "multiswag": ["--method", "ensemble", "--members", "2", "--steps", "40", "--swag",
                  "--samples", "5"],
    "sgld": ["--method", "sgld", "--chains", "2", "--warmup", "40", "--samples", "30",
             "--thin", "2"],
    "sghmc": ["--method", "sghmc", "--chains", "2", "--warmup", "40", "--samples", "30",
              "--step-size", "0.0001"],
    # Metropolis-within-Gibbs sweeps every site of a network one block at a time: few sweeps.
    "gibbs": ["--method", "gibbs", "--chains", "2", "--warmup", "6", "--samples", "4",
              "--thin", "2"],
}

# Keys of summary.json whose values are wall-clock timings.
TIMING_KEY = re.compile(r"seconds|time", re.IGNORECASE)


def strip_timings(value):
    """Drops wall-clock timings from a JSON value."""
    if isinstance(value, dict):
        return {k: strip_timings(v) for k, v in value.items() if not TIMING_KEY.search(k)}
    if isinstance(value, list):
        return [strip_timings(v) for v in value]
    return value


def file_fingerprint(path):
    """SHA-256 of a file's content, without timings (CSV comments and JSON keys that hold them)."""
    with open(path, "rb") as handle:
        content = handle.read()
    if path.endswith(".json"):
        document = strip_timings(json.loads(content))
        content = json.dumps(document, sort_keys=True).encode()
    elif path.endswith(".csv"):
        lines = content.split(b"\n")
        content = b"\n".join(line for line in lines if not (
            line.startswith(b"#") and re.search(rb"[Ee]lapsed|seconds", line)))
    return hashlib.sha256(content).hexdigest()


def run_one(binary, model, run_name, flags):
    """Runs one model with one method; returns (key, fingerprint, seconds)."""
    key = f"{os.path.basename(model)}:{run_name}"
    out = tempfile.mkdtemp(prefix="bitid-")
    shutil.rmtree(out)
    command = [binary, "infer", model, "--seed", SEED, "--quiet", "--force", "--out", out, *flags]
    started = time.monotonic()
    env = dict(os.environ, RAYON_NUM_THREADS=os.environ.get("RAYON_NUM_THREADS", "2"))
    process = subprocess.run(command, capture_output=True, env=env, cwd=ROOT)
    seconds = time.monotonic() - started
    fingerprint = {"exit": process.returncode}
    if process.returncode == 0:
        files = {}
        for name in sorted(os.listdir(out)):
            if name.endswith((".csv", ".json", ".parquet")):
                files[name] = file_fingerprint(os.path.join(out, name))
        fingerprint["files"] = files
    else:
        # A panic's message names the thread's id, which differs from run to run.
        stderr = re.sub(rb"(thread '[^']*') \(\d+\)", rb"\1", process.stderr)
        fingerprint["stderr"] = hashlib.sha256(stderr).hexdigest()
        fingerprint["message"] = stderr.decode(errors="replace").strip().splitlines()[:1]
    shutil.rmtree(out, ignore_errors=True)
    return key, fingerprint, seconds


def run_all(binary, only, jobs):
    """Fingerprints every model × method."""
    models_dir = os.path.join(ROOT, "models")
    models = sorted(
        os.path.join("models", name) for name in os.listdir(models_dir) if name.endswith(".bdl"))
    tasks = [(model, name, flags) for model in models for name, flags in RUNS.items()
             if only is None or only in f"{os.path.basename(model)}:{name}"]
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, binary, *task) for task in tasks]
        for future in concurrent.futures.as_completed(futures):
            key, fingerprint, seconds = future.result()
            results[key] = fingerprint
            status = "ok" if fingerprint["exit"] == 0 else f"exit {fingerprint['exit']}"
            print(f"  {key:<45} {status:<8} {seconds:6.1f} s", file=sys.stderr)
    return dict(sorted(results.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "compare"])
    parser.add_argument("dir")
    parser.add_argument("--only", default=None)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    binary = os.environ.get("BDLC", os.path.join(ROOT, "target", "release", "bdlc"))
    if not os.path.exists(binary):
        sys.exit(f"no binary at {binary}: run `cargo build -p bdlc --release` first")
    started = time.monotonic()
    results = run_all(binary, args.only, args.jobs)
    path = os.path.join(args.dir, "fingerprints.json")
    if args.mode == "record":
        os.makedirs(args.dir, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(results, handle, indent=1, sort_keys=True)
            handle.write("\n")
        succeeded = sum(1 for f in results.values() if f["exit"] == 0)
        print(f"recorded {len(results)} runs ({succeeded} succeeded) in {path} "
              f"({time.monotonic() - started:.0f} s)")
        return 0
    with open(path) as handle:
        baseline = json.load(handle)
    differences = []
    for key, fingerprint in results.items():
        if key not in baseline:
            differences.append(f"{key}: not in the baseline")
        elif baseline[key] != fingerprint:
            differences.append(f"{key}: differs\n    before {baseline[key]}\n    after  {fingerprint}")
    same = len(results) - len(differences)
    for line in differences:
        print(line)
    draws = sum(len(f.get("files", {})) for f in results.values())
    print(f"{same} of {len(results)} runs identical to the baseline ({draws} files hashed, "
          f"{time.monotonic() - started:.0f} s)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
