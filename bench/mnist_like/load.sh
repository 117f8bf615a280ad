#!/usr/bin/env bash
# Times loading the MNIST-sized data: bdl from CSV and from `.npz`, against pandas' read_csv and
# numpy's load, each under /usr/bin/time -v (wall time, peak resident memory).
#
#   bench/mnist_like/load.sh [ROWS] [WORK_DIR]
#
# ROWS defaults to 60000, WORK_DIR to /tmp/bdl-mnist-like; the files are written there on first
# use by scripts/make_mnist_like.py. bdl's figure is `bdlc check --emit trace` on a model that
# only declares the data (reading, parsing, validation; the model itself is one scalar).
# $PYTHON needs numpy and pandas (see bench/mnist_like/run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rows=${1:-60000}
work=${2:-/tmp/bdl-mnist-like}
bdlc=${BDLC:-$root/target/release/bdlc}
PYTHON=${PYTHON:-python3}
mkdir -p "$work"
csv=$work/train_$rows.csv
npz=$work/train_$rows.npz
[ -f "$csv" ] || "$PYTHON" "$root/scripts/make_mnist_like.py" --rows "$rows" --out "$csv"
[ -f "$npz" ] || "$PYTHON" "$root/scripts/make_mnist_like.py" --rows "$rows" --format npy --out "$npz"

measure() {
    local label=$1
    shift
    /usr/bin/time -v "$@" >/dev/null 2>"$work/load.time"
    printf '%-26s %10s %14s\n' "$label" \
        "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/load.time")" \
        "$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/load.time")"
}

echo "$rows rows x 785 columns: CSV $(du -hL "$csv" | cut -f1), npz $(du -hL "$npz" | cut -f1)"
printf '%-26s %10s %14s\n' "loader" "wall" "peak RSS (MB)"
measure "bdl CSV" "$bdlc" check "$here/load_csv.bdl" --data "$csv" --emit trace
measure "pandas read_csv" "$PYTHON" -c "import sys, pandas; pandas.read_csv(sys.argv[1])" "$csv"
measure "bdl npz" "$bdlc" check "$here/load_npz.bdl" --data "$npz" --emit trace
measure "numpy load (npz)" "$PYTHON" -c "import sys, numpy; d = numpy.load(sys.argv[1]); [d[k] for k in d]" "$npz"
measure "python start (numpy, pandas)" "$PYTHON" -c "import numpy, pandas"
