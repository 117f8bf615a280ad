"""SVI and MAP at their defaults on the corpus of models/corpus/, against long NUTS references.

For every model `models/corpus/NAME.bdl`:

1. the NUTS reference (with `--references`, or when `NAME.reference.json` is missing): 4 chains
   of 2,000 warm-up and 10,000 kept draws with a dense metric, seed 1; the posterior mean, sd,
   R-hat and bulk ESS of every column go to `models/corpus/NAME.reference.json`;
2. `bdlc infer NAME.bdl --method svi` and `--method map` with no other flag (`--quiet`, and
   `--out` to read summary.json back);
3. each run is *accurate* when every column's mean lies within 0.5 posterior sd of the NUTS
   mean and (for every method but MAP, whose answer is a point) every column's sd lies within
   0.5 / 1.645 ≈ 30% of the NUTS sd (a spread off by the fraction r moves the 5% and 95%
   quantiles of a normal by 1.645 r sds), *warned* when bdlc printed a warning, and *silent
   failure* otherwise.

It prints a Markdown table (the one in docs/vi.md) and exits with status 1 on any silent
failure. The Rust test `crates/bdlc/tests/vi_corpus.rs` makes the same check.

By default it runs `svi`, `map`, `pathfinder` (`--method pathfinder`) and `iaf`
(`--method svi --guide iaf`); `--methods LIST` (comma-separated) picks some of them.

With `--before`, the runs use the defaults bdlc had before convergence monitoring
(`--steps 1000 --init median` for SVI, `--optimizer adam --steps 1000` for MAP); the warnings in
that table come from today's checks, which the old defaults never printed.

usage: cargo build -p bdlc --release && python3 scripts/vi_corpus.py [--references] [--before]
       [--methods svi,map,pathfinder,iaf]
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "models", "corpus")
BDLC = os.path.join(ROOT, "target", "release", "bdlc")
TOLERANCE_SD = 0.5
SD_TOLERANCE = 0.5 / 1.6448536269514722


def run(model, args, out):
    command = [BDLC, "infer", model, "--quiet", "--out", out, "--force", *args]
    done = subprocess.run(command, cwd=CORPUS, capture_output=True, text=True)
    if done.returncode != 0:
        return None, done.stderr.strip()
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f), done.stderr


def columns(summary):
    return {name: entry for name, entry in zip(summary["columns"], summary["summary"])}


def reference(name, refresh):
    path = os.path.join(CORPUS, f"{name}.reference.json")
    if os.path.exists(path) and not refresh:
        with open(path) as f:
            return json.load(f)
    with tempfile.TemporaryDirectory() as out:
        summary, stderr = run(
            f"{name}.bdl",
            ["--method", "nuts", "--chains", "4", "--warmup", "2000", "--samples", "10000",
             "--metric", "dense", "--seed", "1"],
            out,
        )
    if summary is None:
        sys.exit(f"{name}: NUTS failed: {stderr}")
    ref = {
        "model": f"{name}.bdl",
        "method": "nuts, 4 chains x (2000 warm-up + 10000 draws), dense metric, seed 1",
        "columns": {
            col: {"mean": e["mean"], "sd": e["sd"], "r_hat": e["r_hat"], "ess_bulk": e["ess_bulk"]}
            for col, e in columns(summary).items()
        },
        "warnings": summary["warnings"],
    }
    with open(path, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    return ref


def main():
    refresh = "--references" in sys.argv
    before = "--before" in sys.argv
    arguments = {
        "svi": ["--method", "svi", *(["--steps", "1000", "--init", "median"] if before else [])],
        "map": ["--method", "map", *(["--optimizer", "adam", "--steps", "1000"] if before else [])],
        "pathfinder": ["--method", "pathfinder"],
        "iaf": ["--method", "svi", "--guide", "iaf"],
    }
    methods = ["svi", "map"] if before else ["svi", "map", "pathfinder", "iaf"]
    if "--methods" in sys.argv:
        methods = sys.argv[sys.argv.index("--methods") + 1].split(",")
        unknown = [m for m in methods if m not in arguments]
        if unknown:
            sys.exit(f"unknown methods {unknown}; choose from {sorted(arguments)}")
    names = sorted(f[:-4] for f in os.listdir(CORPUS) if f.endswith(".bdl"))
    rows = []
    silent = 0
    for name in names:
        ref = reference(name, refresh)
        for method in methods:
            with tempfile.TemporaryDirectory() as out:
                summary, stderr = run(f"{name}.bdl", arguments[method], out)
            if summary is None:
                rows.append((name, method, "-", "-", "-", "error",
                             stderr.splitlines()[0] if stderr else ""))
                continue
            worst, worst_col = 0.0, ""
            worst_sd, worst_sd_col = 0.0, ""
            for col, entry in columns(summary).items():
                r = ref["columns"][col]
                z = abs(entry["mean"] - r["mean"]) / r["sd"]
                if z > worst:
                    worst, worst_col = z, col
                if method == "map":
                    continue
                relative = abs(entry["sd"] / r["sd"] - 1.0)
                if relative > worst_sd:
                    worst_sd, worst_sd_col = relative, col
            warnings = summary["warnings"]
            accurate = worst <= TOLERANCE_SD and worst_sd <= SD_TOLERANCE
            verdict = "accurate" if accurate else ("warned" if warnings else "SILENT FAILURE")
            if not accurate and not warnings:
                silent += 1
            facts = summary["facts"]
            detail = []
            if "steps_taken" in facts:
                detail.append(f"{facts['steps_taken']} steps")
            if "paths" in facts:
                lengths = [path["path_length"] for path in facts["paths"]]
                detail.append(f"paths of {min(lengths)}–{max(lengths)} points")
            if "lbfgs" in facts:
                detail.append(f"L-BFGS {facts['lbfgs']['iterations']} it.")
            if facts.get("pareto_k") is not None:
                detail.append(f"k̂ {facts['pareto_k']:.2f}")
            warn_kinds = []
            for w in warnings:
                if "did not converge" in w or "not checked" in w:
                    warn_kinds.append("not converged")
                elif "guide is unreliable" in w or "approximation is unreliable" in w:
                    warn_kinds.append("k̂ > 0.7")
                elif "too narrow" in w:
                    warn_kinds.append("spread check")
                elif "MAP point" in w or "around the MAP" in w:
                    warn_kinds.append("Laplace check")
                else:
                    warn_kinds.append(w[:40])
            sd_cell = "–" if method == "map" else f"{100 * worst_sd:.0f}% ({worst_sd_col})"
            rows.append((name, method, f"{worst:.2f} ({worst_col})", sd_cell, ", ".join(detail),
                         verdict, "; ".join(sorted(set(warn_kinds)))))
    print("| model | method | worst \\|mean − NUTS\\| / sd | worst \\|sd / NUTS sd − 1\\| | run "
          "| verdict | warnings |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nsilent failures: {silent}")
    sys.exit(1 if silent else 0)


if __name__ == "__main__":
    main()
