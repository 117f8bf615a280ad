"""The runtime benchmark's models in JAX, side by side with bdl's figures from the same run.

For eight_schools and sine_bnn this times JAX's `jax.jit(jax.value_and_grad(f))` where f is
NumPyro's potential energy (`numpyro.infer.util.potential_energy`, the negative log joint in
unconstrained space, Jacobians included) of the same model on the same data as a function of one
flat vector, in float64. The models and the point are those of scripts/numpyro_log_density.py, the
point where bdl's runtime tests its log densities against NumPyro's, and where the Rust benchmark
(benches/runtime.rs) evaluates. Each call is timed with `block_until_ready`; the median of many
calls, after a warm-up that excludes compilation, is reported in microseconds.

Unless --skip-cargo is given, the script first runs `cargo bench -p bdl-runtime --bench runtime`
(in the same session, so that both sides see the same machine), then reads criterion's medians
and prints one table with both and their ratios.

Run from the repository root after `bench/setup-peers.sh`:

    bench/.peers/bin/python crates/bdl-runtime/benches/jax_runtime.py [--calls N] [--skip-cargo]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import potential_energy

jax.config.update("jax_enable_x64", True)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import numpyro_log_density as reference  # noqa: E402  (the path is set just above)

MODELS = ["eight_schools", "sine_bnn"]


def jax_timing(name, calls):
    """Median microseconds per jitted value-and-gradient of the potential, and its value."""
    model, sites = getattr(reference, name)()
    params = {site: reference.point(shape) for site, shape in sites}
    flat, unravel = ravel_pytree(params)

    def potential(z):
        return potential_energy(model, (), {}, unravel(z))

    value_and_grad = jax.jit(jax.value_and_grad(potential))
    value, grad = value_and_grad(flat)
    jax.block_until_ready((value, grad))
    for _ in range(max(calls // 10, 10)):
        jax.block_until_ready(value_and_grad(flat))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(value_and_grad(flat))
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times)), -float(value), float(np.linalg.norm(grad))


def criterion_median(target, name, mode):
    """bdl's median microseconds from criterion's estimates, or None if absent."""
    path = os.path.join(target, "criterion", f"runtime_{name}", mode, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)["median"]["point_estimate"] / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--skip-cargo", action="store_true",
                        help="read the last `cargo bench` results instead of running it")
    args = parser.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.skip_cargo:
        subprocess.run(["cargo", "bench", "-p", "bdl-runtime", "--bench", "runtime"],
                       cwd=ROOT, check=True)
    print(f"jax {jax.__version__}, float64, CPU, median of {args.calls} calls")
    header = (f"{'model':<14} {'log density':>14} {'|gradient|':>12} {'JAX µs':>9} "
              f"{'bdl replay µs':>14} {'bdl retrace µs':>15} {'JAX/replay':>11} {'JAX/retrace':>12}")
    print(header)
    for name in MODELS:
        micros, log_density, norm = jax_timing(name, args.calls)
        replay = criterion_median(target, name, "replay")
        retrace = criterion_median(target, name, "retrace")

        def show(value):
            return "-" if value is None else f"{value:.2f}"

        def ratio(value):
            return "-" if value is None else f"{micros / value:.2f}"

        print(f"{name:<14} {log_density:>14.6f} {norm:>12.4f} {micros:>9.2f} "
              f"{show(replay):>14} {show(retrace):>15} {ratio(replay):>11} {ratio(retrace):>12}")


if __name__ == "__main__":
    main()
