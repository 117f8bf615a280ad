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
chains, ensemble members and SBC replications as Ray tasks.
"""

from __future__ import annotations

import json
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


# The options of the package's own NUTS, HMC and ensemble loop (`Options` in `core.rs`).
_NATIVE_OPTIONS = {"chains", "members", "chain_offset", "warmup", "samples", "seed",
                   "target_accept", "max_depth", "steps", "lr", "metric", "parallel"}


def _flags(method: str, options: dict) -> list[str]:
    """``bdlc infer`` flags for ``method`` and keyword ``options`` (``_`` becomes ``-``;
    ``True`` is a switch, ``False`` and ``None`` leave the flag out)."""
    flags = ["--method", "ensemble", "--swag"] if method == "multiswag" else ["--method", method]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            for item in value:
                flags += [flag, str(item)]
        else:
            flags += [flag, str(value)]
    return flags


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

    @property
    def infer_block(self) -> dict:
        """The model's ``infer { }`` settings (the defaults of :meth:`infer`)."""
        return dict(self._native.infer_block)

    def _route(self, method: str | None, options: dict) -> tuple[str, bool]:
        """The method to run and whether the package's own sampler loop runs it (NUTS, HMC and
        ensembles given only the options it knows, which also split over Ray by
        ``chain_offset``); every other run goes through ``bdlc infer``'s drivers."""
        block = self.infer_block
        chosen = method or str(block.get("method", "nuts"))
        settings = set(options) | (set(block) - {"method"})
        native = chosen in ("nuts", "hmc", "ensemble") and settings <= _NATIVE_OPTIONS
        return chosen, native

    def infer_raw(self, data: Any = None, method: str | None = None, progress: bool = False,
                  **options: Any) -> dict:
        """Runs inference and returns the draws as a dict of NumPy arrays (see :meth:`infer`)."""
        chosen, native = self._route(method, options)
        if not native:
            raw = self._native.infer_flags(_data_list(data), _flags(chosen, options))
            raw["losses"] = _unpack(raw["losses"])
            raw["facts"] = json.loads(raw["facts"])
        else:
            # The model's `infer { }` block sets what the call leaves out, as on the command line.
            merged = {key: value for key, value in self.infer_block.items() if key in _NATIVE_OPTIONS}
            merged.update(options)
            reporter = _Progress(f"bdl {chosen}") if progress else None
            try:
                raw = self._native.infer(_data_list(data), chosen, merged, reporter)
            finally:
                if reporter is not None:
                    reporter.close()
            raw.update(method=chosen, mcmc=chosen != "ensemble", losses=np.empty(0), facts={}, warnings=[])
        for group in ("posterior", "sample_stats", "log_likelihood", "data"):
            raw[group] = {name: _unpack(pair) for name, pair in raw[group].items()}
        return raw

    def infer(self, data: Any = None, method: str | None = None, progress: bool = True, **options: Any):
        """Runs ``method`` and returns ``arviz.InferenceData``.

        ``method`` is any of ``bdlc infer``'s: nuts, hmc, ensemble, multiswag (an ensemble
        with SWAG), svi, map, laplace, pathfinder, sgld, sghmc, gibbs, prior or exact; left
        out, the model's ``infer { }`` block chooses (else nuts), and the block's settings are
        the defaults of the options, as on the command line. Options are ``bdlc infer``'s
        flags with ``_`` for ``-`` (``guide="mvn"``, ``steps=2000``, ``target_accept=0.9``;
        ``True`` for a switch such as ``swag``), plus ``chain_offset`` and ``parallel`` for
        NUTS, HMC and ensembles. The groups are ``posterior``, ``sample_stats`` (NUTS and HMC),
        ``log_likelihood`` and ``observed_data``; an ensemble's members are its chains, one
        draw each, and a fitted guide's draws are one chain. The attributes (``idata.attrs``
        and ``idata.posterior.attrs``) hold
        the method, its facts (JSON) and its warnings; ``infer_raw`` also returns the losses.
        """
        raw = self.infer_raw(data, method, progress=progress, **options)
        return to_inference_data(raw, offset=int(options.get("chain_offset", 0)))

    def sbc(self, replications: int, data: Any = None, method: str = "nuts", first: int = 0,
            progress: bool = True, **options: Any) -> dict:
        """Simulation-based calibration (Talts et al., 2018): replications ``first`` …
        ``first + replications - 1``. Replication ``r`` uses seed ``seed + r``: it draws the
        latent sites and the observations from the prior, fits them with ``method`` (nuts or
        hmc, ``options`` as for :meth:`infer`) and ranks each true latent value among the
        ``draws`` posterior draws. ``data`` holds the inputs (observed declarations may be
        left out). Returns ``{"draws": L, "divergent": (R,), "ranks": {site: (R, *shape)}}``;
        for a correct sampler each rank is uniform on 0 … L.
        """
        reporter = _Progress(f"bdl sbc {method}") if progress else None
        try:
            raw = self._native.sbc(_data_list(data), method, dict(options), int(first), int(replications), reporter)
        finally:
            if reporter is not None:
                reporter.close()
        return _sbc_result(raw)

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


def _sbc_result(raw: dict) -> dict:
    return {
        "draws": raw["draws"],
        "divergent": np.asarray(raw["divergent"], dtype=np.int64),
        "ranks": {name: _unpack(pair).astype(np.int64) for name, pair in raw["ranks"].items()},
    }


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
    attrs = {"method": raw.get("method", ""), "facts": json.dumps(raw.get("facts", {})),
             "warnings": json.dumps(raw.get("warnings", []))}
    idata = az.from_dict(
        attrs=attrs,
        posterior=raw["posterior"],
        sample_stats=sample_stats or None,
        log_likelihood=raw["log_likelihood"] or None,
        observed_data=observed or None,
        coords=coords,
    )
    # The run's description is on the InferenceData and on its posterior group.
    idata.posterior.attrs.update(attrs)
    return idata
