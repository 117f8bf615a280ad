"""Chains and ensemble members as Ray tasks, merged into one ``InferenceData``.

    import ray, bdl, bdl.ray
    ray.init()                                   # or ray.init(address="auto") on a cluster
    model = bdl.Model.from_file("models/eight_schools.bdl")
    idata = bdl.ray.infer(model, method="nuts", chains=8, chains_per_task=1, seed=1)

Task ``k`` runs chains ``k·c … k·c + c − 1`` with ``chain_offset=k·c``: each chain's random
stream depends only on the seed and its index in the whole run, so the merged result equals a
single-process run with the same seed bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import Model, to_inference_data

__all__ = ["infer", "split"]


def split(units: int, per_task: int) -> list[tuple[int, int]]:
    """(offset, count) of each task for ``units`` chains or members, ``per_task`` at most each."""
    if units < 1 or per_task < 1:
        raise ValueError("units and per_task must be at least 1")
    return [(start, min(per_task, units - start)) for start in range(0, units, per_task)]


def _run_part(model: Model, data: Any, method: str, options: dict, offset: int, count: int) -> dict:
    key = "members" if method == "ensemble" else "chains"
    part = dict(options)
    part[key] = count
    part["chain_offset"] = offset
    # One task is one process's share; rayon inside it may still use the task's CPUs.
    return model.infer_raw(data, method, **part)


def infer(
    model: Model,
    data: Any = None,
    method: str = "nuts",
    chains_per_task: int = 1,
    num_cpus: float = 1,
    **options: Any,
):
    """Runs ``method`` with its chains (or members) spread over Ray tasks; returns the merged
    ``arviz.InferenceData``. Ray must be initialised (``ray.init()``)."""
    import ray

    key = "members" if method == "ensemble" else "chains"
    units = int(options.pop(key, 5 if method == "ensemble" else 4))
    offset = int(options.pop("chain_offset", 0))
    remote = ray.remote(num_cpus=num_cpus)(_run_part)
    model_ref = ray.put(model)
    data_ref = ray.put(data)
    futures = [
        remote.remote(model_ref, data_ref, method, options, offset + start, count)
        for start, count in split(units, chains_per_task)
    ]
    parts = ray.get(futures)
    return to_inference_data(merge_raw(parts), offset=offset)


def merge_raw(parts: list[dict]) -> dict:
    """Joins the raw results of consecutive parts along the chain axis."""
    first = parts[0]

    def joined(group: str) -> dict:
        return {name: np.concatenate([part[group][name] for part in parts]) for name in first[group]}

    return {
        "units": sum(part["units"] for part in parts),
        "draws": first["draws"],
        "interrupted": any(part["interrupted"] for part in parts),
        "posterior": joined("posterior"),
        "sample_stats": joined("sample_stats"),
        "log_likelihood": joined("log_likelihood"),
        "data": first["data"],
        "observed_sites": first["observed_sites"],
    }
