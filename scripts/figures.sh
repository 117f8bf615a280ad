#!/usr/bin/env bash
# Draws the example figures committed under docs/figures/ (see docs/cli.md, "Figures"), from the
# repository root: `scripts/figures.sh` (set BDLC to use another binary than target/release/bdlc).
# The runs go to a temporary folder; the figures are copied into docs/figures/ as SVG and, for
# viewing where SVG is not shown, as PNG.
set -euo pipefail
bdlc="${BDLC:-target/release/bdlc}"
runs="$(mktemp -d)"
trap 'rm -rf "$runs"' EXIT
figures=docs/figures

"$bdlc" infer models/sine_bnn.bdl --seed 1 --out "$runs/sine" --plot --quiet
"$bdlc" infer models/eight_schools.bdl --seed 1 --chains 4 --samples 300 --out "$runs/eight_schools" --plot --quiet
"$bdlc" plot "$runs/eight_schools" --kind pair --site theta_tilde --quiet
"$bdlc" infer models/iris_bnn.bdl --seed 1 --steps 1000 --out "$runs/iris" --plot --quiet
# The held-out rows: the metrics, then the reliability diagram of the same predictions.
"$bdlc" predict models/iris_bnn.bdl --posterior "$runs/iris" --data models/data/iris_test.csv \
  --out "$runs/iris-test.csv" --metrics
"$bdlc" plot "$runs/iris" --kind reliability --model models/iris_bnn.bdl \
  --data models/data/iris_test.csv --out "$runs/iris-test" --quiet

cp "$runs/sine/predictive.svg" "$figures/sine_bnn_predictive.svg"
cp "$runs/sine/loss.svg" "$figures/sine_bnn_loss.svg"
for figure in densities traces histograms ranks pairs energy; do
  cp "$runs/eight_schools/$figure.svg" "$figures/eight_schools_$figure.svg"
done
cp "$runs/iris/reliability.svg" "$figures/iris_bnn_reliability.svg"
cp "$runs/iris-test/reliability.svg" "$figures/iris_bnn_heldout_reliability.svg"

# PNG renderings of the same figures, for viewers that do not show SVG.
"$bdlc" plot "$runs/sine" --format png --out "$runs/png-sine" --quiet
"$bdlc" plot "$runs/eight_schools" --format png --out "$runs/png-eight_schools" --quiet
"$bdlc" plot "$runs/eight_schools" --kind pair --site theta_tilde --format png \
  --out "$runs/png-eight_schools" --quiet
"$bdlc" plot "$runs/iris" --kind reliability --format png --out "$runs/png-iris" --quiet
cp "$runs/png-sine/predictive.png" "$figures/sine_bnn_predictive.png"
cp "$runs/png-sine/loss.png" "$figures/sine_bnn_loss.png"
for figure in densities traces histograms ranks pairs energy; do
  cp "$runs/png-eight_schools/$figure.png" "$figures/eight_schools_$figure.png"
done
"$bdlc" plot "$runs/iris" --kind reliability --model models/iris_bnn.bdl \
  --data models/data/iris_test.csv --format png --out "$runs/png-iris-test" --quiet
cp "$runs/png-iris/reliability.png" "$figures/iris_bnn_reliability.png"
cp "$runs/png-iris-test/reliability.png" "$figures/iris_bnn_heldout_reliability.png"
ls -l "$figures"
