#!/bin/sh
# Gibbs on models/shallow_wishart.bdl with the Wishart block drawn exactly, then by random walk.
set -e
mkdir -p "${OUT:-/tmp/gibbs-compare}"
B="S_gamma_inv; mu_gamma; gamma_0; gamma_1; gamma_2; gamma_3; gamma_4; gamma_5; gamma_6; gamma_7; gamma_8; gamma_9; mu_beta; tau_beta; beta; beta0; tau"
for mode in exact rw; do
  if [ $mode = rw ]; then blocks="rw: $B"; else blocks="$B"; fi
  /usr/bin/time -v ./target/release/bdlc infer models/shallow_wishart.bdl --blocks "$blocks" \
    --chains 2 --warmup 1000 --samples 1000 --seed 1 --out ${OUT:-/tmp/gibbs-compare}/cmp2-$mode --force > ${OUT:-/tmp/gibbs-compare}/cmp2-$mode.txt 2>&1
done
