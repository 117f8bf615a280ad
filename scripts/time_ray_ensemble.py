"""Times an ensemble of 8 members of models/sine_ensemble.bdl fitted by rayon threads in one
process against the same members as Ray tasks on a local Ray instance, and checks that both give
the same members bit for bit.

    .venv-py/bin/python scripts/time_ray_ensemble.py [--steps 1000] [--repeats 3]

Ray's start and the workers' first import of bdl are left out of the timing (a warm-up task runs
first); each figure is the median wall time of the repeats. Prints one JSON object.
"""

import argparse
import json
import os
import pathlib
import statistics
import time

import numpy as np
import ray

import bdl
import bdl.ray

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--members", type=int, default=8)
arguments = parser.parse_args()

root = pathlib.Path(__file__).resolve().parents[1]
model = bdl.Model.from_file(root / "models" / "sine_ensemble.bdl")
options = dict(method="ensemble", members=arguments.members, steps=arguments.steps, lr=0.01, seed=1)

ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
bdl.ray.infer(model, method="ensemble", members=os.cpu_count(), steps=1, seed=0)  # warm the workers

timings = {"rayon": [], "ray": []}
for _ in range(arguments.repeats):
    start = time.perf_counter()
    single = model.infer(progress=False, **options)
    timings["rayon"].append(time.perf_counter() - start)
    start = time.perf_counter()
    spread = bdl.ray.infer(model, chains_per_task=1, num_cpus=1, **options)
    timings["ray"].append(time.perf_counter() - start)
    for name in single.posterior.data_vars:
        assert np.array_equal(single.posterior[name].values, spread.posterior[name].values), name
ray.shutdown()
print(json.dumps({
    "members": arguments.members,
    "steps": arguments.steps,
    "cpus": os.cpu_count(),
    "rayon_seconds": round(statistics.median(timings["rayon"]), 3),
    "ray_seconds": round(statistics.median(timings["ray"]), 3),
    "identical": True,
}))
