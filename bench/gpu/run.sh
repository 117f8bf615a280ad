#!/usr/bin/env bash
# GPU benchmark: posterior prediction of a 784-100-10 network, 1,000 draws x 10,000 rows, with
# the forward passes on the CPU (f64) and on the GPU (f32), in the same run.
#
#   cargo build --release -p bdlc --features gpu
#   bash bench/gpu/run.sh [WORKDIR]        # needs python3 with numpy, and a Vulkan driver
#
# The draws come from an SVI fit on 2,000 other rows. The machine's GPU and driver are printed
# first, so the figures say what they were measured on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bdlc=${BDLC:-$here/../../target/release/bdlc}
work=${1:-$(mktemp -d)}
mkdir -p "$work"
elapsed() { local start=$(date +%s%N); "$@"; echo "wall $(( ($(date +%s%N) - start) / 1000000 )) ms"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"; nproc; } 
python3 "$here/make_data.py" 10000 "$work/d10k.csv"
python3 "$here/make_data.py" 2000 "$work/d2k.csv" 1
echo "== infer on 2,000 rows (SVI, 2,000 steps, 1,000 draws)"
elapsed "$bdlc" infer "$here/mlp_784.bdl" --data "$work/d2k.csv" --method svi --steps 2000 \
    --out "$work/run" --force --quiet > "$work/infer.out" 2>&1
ls -la "$work/run"
for device in gpu gpu cpu; do
    echo "== predict --device $device"
    elapsed "$bdlc" predict "$here/mlp_784.bdl" --posterior "$work/run" --data "$work/d10k.csv" \
        --out "$work/p_$device.csv" --device "$device" --draws 1000
done
python3 - "$work/p_cpu.csv" "$work/p_gpu.csv" <<'PY'
import csv, sys
def rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))
cpu, gpu = rows(sys.argv[1]), rows(sys.argv[2])
worst = max(abs(float(a[k]) - float(b[k])) for a, b in zip(cpu, gpu) for k in a if k not in ("site", "index"))
print(f"rows {len(cpu)} vs {len(gpu)}; largest difference of any summary value: {worst:.3g}")
PY
