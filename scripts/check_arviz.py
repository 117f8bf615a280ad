"""Checks that ArviZ reads the CmdStan-format CSV files `bdlc infer` writes, and that bdl's
convergence diagnostics are ArviZ's.

The script runs `bdlc infer models/eight_schools.bdl` (4 chains of 1,000 draws) into a temporary
folder and checks that

1. `arviz.from_cmdstan` reads the chain files into arrays of the right shapes: mu and tau
   chains x draws, theta_tilde and theta chains x draws x 8;
2. ArviZ's rank-normalised R-hat, bulk ESS and tail ESS of every column, computed from those files,
   equal the ones `bdlc summary` computes again from the same files, to 1e-6 (relative);
3. those of mu equal the ones in the run's `summary.json` to 1e-6 (relative). `summary.json` is
   computed from the draws before they are written, so this holds only if the CSV files keep
   the draws' precision;
4. the run's pointwise log-likelihood files (`log_lik-1.csv`, …) read into the InferenceData's
   `log_likelihood` group (variable `y`, chains x draws x 8), and ArviZ's `loo` and `waic` on it
   equal `bdlc loo --json` and `bdlc loo --waic --json` to 1e-6 (relative): elpd, se, p and
   every observation's k̂.

It exits with status 1 and names every disagreement when a check fails.

usage: bench/setup-peers.sh, then
    bench/.peers/bin/python scripts/check_arviz.py [--bdlc PATH]
Without --bdlc the script builds the binary with `cargo build --release -p bdlc` first.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import arviz as az
import numpy as np

TOLERANCE = 1e-6
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_bdlc():
    """Builds bdlc in release mode and returns the executable's path, as cargo reports it."""
    command = ["cargo", "build", "--release", "-p", "bdlc", "--message-format=json-render-diagnostics"]
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True)
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable") \
                and message["target"]["name"] == "bdlc":
            return message["executable"]
    sys.exit("cargo built no bdlc executable")


def run(command):
    """Runs a command from the repository's root and returns its standard output; on failure,
    shows its standard error and exits."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with status {result.returncode}:\n{result.stderr}")
    return result.stdout


def arviz_diagnostics(values):
    """ArviZ's R-hat, bulk ESS and tail ESS of a (chains, draws) array."""
    return {
        "r_hat": float(az.rhat(values)),
        "ess_bulk": float(az.ess(values, method="bulk")),
        "ess_tail": float(az.ess(values, method="tail")),
    }


def column_values(posterior, name):
    """The (chains, draws) array of a summary column named `mu` or `theta[3]`."""
    if "[" in name:
        site, index = name[:-1].split("[")
        indices = tuple(int(i) - 1 for i in index.split(","))
        return posterior[site].values[(slice(None), slice(None)) + indices]
    return posterior[name].values


def compare(label, ours, theirs, failures):
    for key in ("r_hat", "ess_bulk", "ess_tail"):
        a, b = ours.get(key), theirs[key]
        if a is None or abs(a - b) > TOLERANCE * abs(b):
            failures.append(f"{label}: {key} is {a} in bdl and {b} in ArviZ "
                            f"(relative difference {abs((a or 0.0) - b) / abs(b):.2e})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bdlc", help="the bdlc executable (built with cargo when absent)")
    args = parser.parse_args()
    bdlc = args.bdlc or build_bdlc()
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "run")
        run([bdlc, "infer", "models/eight_schools.bdl", "--method", "nuts", "--chains", "4",
             "--warmup", "1000", "--samples", "1000", "--seed", "1", "--out", out, "--quiet"])
        files = sorted(glob.glob(os.path.join(out, "chain-*.csv")))
        log_lik_files = sorted(glob.glob(os.path.join(out, "log_lik-*.csv")))
        # The log-likelihood files share the draws' layout, so ArviZ reads them as a posterior
        # of the observed site's elements, which is what its `log_likelihood` group holds.
        idata = az.from_cmdstan(posterior=files)
        log_likelihood = az.from_cmdstan(posterior=log_lik_files).posterior
        idata.add_groups(log_likelihood=log_likelihood)
        posterior = idata.posterior

        # 1. Shapes.
        expected_shapes = {"mu": (4, 1000), "tau": (4, 1000), "theta_tilde": (4, 1000, 8), "theta": (4, 1000, 8)}
        for name, shape in expected_shapes.items():
            if name not in posterior:
                failures.append(f"ArviZ found no variable `{name}` (it found {list(posterior.data_vars)})")
            elif posterior[name].shape != shape:
                failures.append(f"`{name}` has shape {posterior[name].shape}, expected {shape}")
        if not any(np.isfinite(posterior[name].values).all() for name in posterior.data_vars):
            failures.append("the draws hold non-finite values")

        # 2. The same stored chains: `bdlc summary` on a copy of the chain files without summary.json
        #    computes its diagnostics from the CSV files, as ArviZ does.
        copy = os.path.join(scratch, "chains-only")
        os.makedirs(copy)
        for path in files:
            shutil.copy(path, copy)
        recomputed = json.loads(run([bdlc, "summary", copy, "--json"]))["summary"]
        for element in recomputed:
            name = element["name"]
            compare(f"{name} (bdlc summary of the CSV files)", element,
                    arviz_diagnostics(column_values(posterior, name)), failures)
        if len(recomputed) != 2 + 8 + 8:
            failures.append(f"bdlc summary reported {len(recomputed)} columns, expected 18")

        # 3. The run's own summary.json.
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        mu = next((e for e in summary["summary"] if e["name"] == "mu"), None)
        if mu is None:
            failures.append("summary.json has no column mu")
        else:
            compare("mu (summary.json)", mu, arviz_diagnostics(column_values(posterior, "mu")), failures)

        # 4. PSIS-LOO and WAIC from the log_likelihood group.
        if idata.log_likelihood["y"].shape != (4, 1000, 8):
            failures.append(f"log_likelihood y has shape {idata.log_likelihood['y'].shape}, expected (4, 1000, 8)")
        loo = az.loo(idata, pointwise=True)
        waic = az.waic(idata, pointwise=True)
        ours_loo = json.loads(run([bdlc, "loo", out, "--json"]))
        ours_waic = json.loads(run([bdlc, "loo", out, "--waic", "--json"]))
        for label, ours, theirs in [
            ("elpd_loo", ours_loo["elpd_loo"], float(loo["elpd_loo"])),
            ("se of elpd_loo", ours_loo["se"], float(loo["se"])),
            ("p_loo", ours_loo["p_loo"], float(loo["p_loo"])),
            ("elpd_waic", ours_waic["elpd_waic"], float(waic["elpd_waic"])),
            ("se of elpd_waic", ours_waic["se"], float(waic["se"])),
            ("p_waic", ours_waic["p_waic"], float(waic["p_waic"])),
        ] + [
            (f"k of y.{i + 1}", row["pareto_k"], float(k))
            for i, (row, k) in enumerate(zip(ours_loo["pointwise"], np.asarray(loo["pareto_k"])))
        ]:
            if abs(ours - theirs) > TOLERANCE * max(abs(theirs), 1.0):
                failures.append(f"{label}: bdlc loo {ours}, ArviZ {theirs}")
        print(f"PSIS-LOO: bdlc elpd_loo {ours_loo['elpd_loo']:.6f} (se {ours_loo['se']:.6f}, "
              f"p_loo {ours_loo['p_loo']:.6f}); ArviZ {float(loo['elpd_loo']):.6f} "
              f"(se {float(loo['se']):.6f}, p_loo {float(loo['p_loo']):.6f})")
        print(f"WAIC: bdlc elpd_waic {ours_waic['elpd_waic']:.6f}; ArviZ {float(waic['elpd_waic']):.6f}")

    if failures:
        print("ArviZ check failed:", file=sys.stderr)
        for failure in failures:
            print("  " + failure, file=sys.stderr)
        if all("(summary.json)" in failure for failure in failures):
            print("  (the CSV files agree with ArviZ but summary.json does not: summary.json is computed\n"
                  "   from the draws at full precision, so the CSV files lose precision when written)",
                  file=sys.stderr)
        return 1
    print("ArviZ reads bdlc's CSV files; R-hat, ESS, PSIS-LOO and WAIC agree to 1e-6")
    return 0


if __name__ == "__main__":
    sys.exit(main())
