#!/usr/bin/env bash
# Runs the MNIST-sized Bayesian network job in bdl and in NumPyro side by side, on the same CSV,
# each under /usr/bin/time -v (wall time and peak resident memory), and prints a table.
#
#   bench/mnist_like/run.sh [ROWS] [WORK_DIR]
#
# ROWS defaults to 20000, WORK_DIR to /tmp/bdl-mnist-like. The data (ROWS training rows and
# 5,000 held-out rows from the same teacher) is written there on first use by
# scripts/make_mnist_like.py. Needs a release build of bdlc (cargo build -p bdlc --release) and
# a Python with numpy, pandas, jax and numpyro: $PYTHON, else bench/.peers/bin/python
# (bench/setup-peers.sh installs it; add pandas), else python3. BDLC overrides the binary.
#
# bdl: `bdlc infer` (2,000 SVI steps with the diagonal guide, 1,000 draws written to the run
# folder), then `bdlc predict` on the held-out rows with 100 draws for the accuracy (the class
# drawn most often). NumPyro's accuracy averages the class probabilities over 100 draws.
# NumPyro: bench/mnist_like/numpyro_mnist_like.py, the same job, in float64.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rows=${1:-20000}
work=${2:-/tmp/bdl-mnist-like}
bdlc=${BDLC:-$root/target/release/bdlc}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$root/bench/.peers/bin/python" ]; then
        PYTHON=$root/bench/.peers/bin/python
    else
        PYTHON=python3
    fi
fi
mkdir -p "$work"
train=$work/train_$rows.csv
test=$work/test.csv
[ -f "$train" ] || "$PYTHON" "$root/scripts/make_mnist_like.py" --rows "$rows" --out "$train"
[ -f "$test" ] || "$PYTHON" "$root/scripts/make_mnist_like.py" --rows 5000 --split test --out "$test"

# Peak RSS (kB) and wall time from a /usr/bin/time -v log.
peak_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1"; }

run_dir=$work/bdl_run_$rows
rm -rf "$run_dir"
/usr/bin/time -v "$bdlc" infer "$root/models/scale/mnist_like_bnn.bdl" --data "$train" \
    --out "$run_dir" --quiet >"$work/bdl_infer.out" 2>"$work/bdl_infer.time"
/usr/bin/time -v "$bdlc" predict "$root/models/scale/mnist_like_bnn.bdl" --posterior "$run_dir" \
    --data "$test" --draws 100 --out "$work/bdl_predictions.csv" \
    >"$work/bdl_predict.out" 2>"$work/bdl_predict.time"
bdl_accuracy=$("$PYTHON" - "$work/bdl_predictions.csv" "$test" <<'EOF'
import sys
import pandas as pd
predictions = pd.read_csv(sys.argv[1], comment="#")
truth = pd.read_csv(sys.argv[2], usecols=["y"])["y"].to_numpy()
# One row per held-out row; p0 ... p9 are the shares of predictive draws in each class.
columns = [f"p{k}" for k in range(10) if f"p{k}" in predictions.columns]
probabilities = predictions[columns].to_numpy()
print(f"{(probabilities.argmax(axis=1) == truth).mean():.4f}")
EOF
)

/usr/bin/time -v "$PYTHON" "$here/numpyro_mnist_like.py" "$train" "$test" \
    >"$work/numpyro.json" 2>"$work/numpyro.time"

echo "rows: $rows (784 features, 10 classes); held-out rows: 5000"
printf '%-28s %12s %14s %10s\n' "run" "wall" "peak RSS (MB)" "accuracy"
printf '%-28s %12s %14s %10s\n' "bdl infer (load+fit+draws)" "$(wall "$work/bdl_infer.time")" \
    "$(peak_mb "$work/bdl_infer.time")" "-"
printf '%-28s %12s %14s %10s\n' "bdl predict (100 draws)" "$(wall "$work/bdl_predict.time")" \
    "$(peak_mb "$work/bdl_predict.time")" "$bdl_accuracy"
printf '%-28s %12s %14s %10s\n' "numpyro (whole script)" "$(wall "$work/numpyro.time")" \
    "$(peak_mb "$work/numpyro.time")" \
    "$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$work/numpyro.json")"
echo "numpyro detail: $(cat "$work/numpyro.json")"
echo "bdl output files:"
ls -l "$run_dir"
