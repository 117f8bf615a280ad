"""bdl from Python: compile a bdl model, run inference, get ArviZ InferenceData.

    import bdl
    model = bdl.Model.from_file("models/eight_schools.bdl")
    idata = model.infer(method="nuts", chains=4, seed=1)          # data from the model's files
    idata = model.infer(data={"x": x, "y": y}, method="ensemble", members=8)

Data are a dict of NumPy arrays (or anything ``numpy.asarray`` takes) or a pandas DataFrame,
one column per declaration of the model's ``data`` block; sizes (``N``) are inferred from the
arrays as for files. Each array crosses into Rust through the buffer protocol with one copy.
Errors in the model or its data raise :class:`BdlError`, whose message is the rendered
diagnostic (code, file:line:col, excerpt, hint) and whose ``codes`` lists the error codes.
Inference releases the GIL, shows progress (a tqdm bar when tqdm is installed, in notebooks
too, else a line of text) and stops on Ctrl-C (``KeyboardInterrupt``). ``bdl.ray`` runs
chains and ensemble members as Ray tasks.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

import numpy as np

from . import _native
from ._native import NativeModel

__all__ = ["BdlError", "Model", "to_inference_data"]

BdlError = _native.BdlError


def _codes(error: BaseException) -> list[str]:
    return list(error.args[1]) if len(error.args) > 1 else []


BdlError.codes = property(_codes)
BdlError.__str__ = lambda self: str(self.args[0]) if self.args else ""


def _array_entry(name: str, value: Any) -> tuple[str, str, tuple[int, ...], np.ndarray]:
    """One array as (name, dtype, shape, byte view) for the native layer. A C-contiguous
    float64, int64 or bool array is passed as a view of its own memory (no copy here);
    anything else is converted once."""
    array = np.asarray(value)
    if array.dtype == np.bool_:
        array = np.ascontiguousarray(array)
        dtype = "|b1"
    elif np.issubdtype(array.dtype, np.integer):
        array = np.ascontiguousarray(array, dtype="<i8")
        dtype = "<i8"
    else:
        array = np.ascontiguousarray(array, dtype="<f8")
        dtype = "<f8"
    return (str(name), dtype, tuple(int(n) for n in array.shape), array.reshape(-1).view(np.uint8))


def _data_list(data: Any) -> list:
    """The model's data for the native layer, from a dict or a pandas DataFrame."""
    if data is None:
        return []
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        return [_array_entry(column, data[column].to_numpy()) for column in data.columns]
    if isinstance(data, Mapping):
        return [_array_entry(name, value) for name, value in data.items()]
    raise TypeError(f"data must be a dict of arrays or a pandas DataFrame, not {type(data).__name__}")


def _unpack(pair) -> np.ndarray:
    """A native ``(bytes, shape)`` pair as a NumPy array over the bytes (no copy)."""
    raw, shape = pair
    return np.frombuffer(raw, dtype=np.float64).reshape(shape)


class _Progress:
    """Reports ``(done, total)`` iterations: a tqdm bar (``tqdm.auto``, which draws a widget in
    Jupyter) when tqdm is importable, else a line on stderr every tenth of the run."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        self.shown = -1
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.tqdm = tqdm

    def __call__(self, done: int, total: int) -> None:
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=total, desc=self.label, unit="it")
            self.bar.update(done - self.bar.n)
            return
        tenth = 10 * done // max(total, 1)
        if tenth != self.shown:
            self.shown = tenth
            print(f"{self.label}: {done}/{total} iterations ({10 * tenth}%)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Model:
    """A compiled bdl model."""

    def __init__(self, source: str, name: str = "<string>", directory: str = "."):
        self.source = source
        self.name = name
        self.directory = directory
        self._native = NativeModel(name, source, directory)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Model":
        """Compiles the model in ``path``; its ``data from`` paths are relative to its folder."""
        path = os.fspath(path)
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        return cls(source, name=path, directory=os.path.dirname(os.path.abspath(path)))

    @classmethod
    def from_string(cls, text: str, name: str = "<string>") -> "Model":
        """Compiles a model given as text (``data from`` paths relative to the working folder)."""
        return cls(text, name=name, directory=os.getcwd())

    def __reduce__(self):
        # A model travels to Ray workers as its source and compiles again there.
        return (Model, (self.source, self.name, self.directory))

    @property
    def warnings(self) -> str:
        return self._native.warnings

    @property
    def data_names(self) -> list[str]:
        return list(self._native.data_names)

    def infer_raw(self, data: Any = None, method: str = "nuts", progress: bool = False, **options: Any) -> dict:
        """Runs inference and returns the draws as a dict of NumPy arrays (see :meth:`infer`)."""
        reporter = _Progress(f"bdl {method}") if progress else None
        try:
            raw = self._native.infer(_data_list(data), method, dict(options), reporter)
        finally:
            if reporter is not None:
                reporter.close()
        for group in ("posterior", "sample_stats", "log_likelihood", "data"):
            raw[group] = {name: _unpack(pair) for name, pair in raw[group].items()}
        return raw

    def infer(self, data: Any = None, method: str = "nuts", progress: bool = True, **options: Any):
        """Runs ``method`` (nuts, hmc or ensemble) and returns ``arviz.InferenceData``.

        Options: ``chains`` (or ``members``), ``chain_offset``, ``warmup``, ``samples``,
        ``seed``, ``target_accept``, ``max_depth``, ``steps``, ``lr``, ``metric``, ``parallel``.
        The groups are ``posterior``, ``sample_stats`` (MCMC), ``log_likelihood`` and
        ``observed_data``; an ensemble's members are its chains, one draw each.
        """
        raw = self.infer_raw(data, method, progress=progress, **options)
        return to_inference_data(raw, offset=int(options.get("chain_offset", 0)))

    def predict(self, posterior, data: Any = None, seed: int = 0, draws: int | None = None) -> dict:
        """Posterior-predictive draws of the observed sites on ``data`` (new inputs).

        ``posterior`` is an ``InferenceData`` (or its posterior ``Dataset``) from :meth:`infer`;
        draws are taken chain after chain (the first ``draws`` of them when given). Returns a
        dict of arrays ``(n_draws, *shape)`` per observed site.
        """
        group = getattr(posterior, "posterior", posterior)
        flat = []
        n = 0
        for name in group.data_vars:
            values = np.asarray(group[name].values, dtype=np.float64)
            values = values.reshape((-1,) + values.shape[2:])
            if draws is not None:
                values = values[:draws]
            n = values.shape[0]
            flat.append((str(name), list(values.shape[1:]), np.ascontiguousarray(values).reshape(-1)))
        result = self._native.predict(_data_list(data), flat, int(n), int(seed))
        return {name: _unpack(pair) for name, pair in result.items()}


def to_inference_data(raw: dict, offset: int = 0):
    """``arviz.InferenceData`` from :meth:`Model.infer_raw`'s result; ``offset`` is the index of
    the first chain (the ``chain`` coordinate)."""
    import arviz as az

    units = raw["units"]
    coords = {"chain": np.arange(offset, offset + units)}
    # An observed site's data are the declaration of the same name (`observe("y", …, y)`).
    observed = {name: value for name, value in raw["data"].items() if name in raw["observed_sites"]}
    # ArviZ's names for the sampler's statistics (CmdStan's columns without `__`).
    renamed = {"lp": "lp", "accept_stat": "acceptance_rate", "stepsize": "step_size",
               "treedepth": "tree_depth", "n_leapfrog": "n_steps", "divergent": "diverging",
               "energy": "energy"}
    sample_stats = {renamed.get(name, name): value for name, value in raw["sample_stats"].items()}
    if "diverging" in sample_stats:
        sample_stats["diverging"] = sample_stats["diverging"].astype(bool)
    return az.from_dict(
        posterior=raw["posterior"],
        sample_stats=sample_stats or None,
        log_likelihood=raw["log_likelihood"] or None,
        observed_data=observed or None,
        coords=coords,
    )
