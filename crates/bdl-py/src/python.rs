//! The pyo3 layer: the `bdl._native` extension module that `python/bdl/` wraps.
//!
//! Arrays cross the boundary through Python's buffer protocol, without the `numpy` crate (so the
//! wheel links against the workspace's already compiled dependencies). A data array arrives as a
//! C-contiguous byte view with its NumPy dtype and shape; its bytes are copied once, behind a
//! `.npy` header, and the data loader validates them as it validates a `.npy` file (names,
//! shapes, bounds, the same diagnostics). Draws leave as `bytes` objects written in place from
//! the Rust vectors (one copy), which `numpy.frombuffer` wraps without another.
//!
//! Inference runs on a thread of its own with the GIL released. The calling thread wakes every
//! 100 ms to report progress to an optional Python callable and to let Python check its
//! signals; a `KeyboardInterrupt` (Ctrl-C) sets the run's stop flag, waits for the units to
//! stop, and is raised.
// The pyo3 macros expand to `unsafe` calls into CPython's C API.
#![allow(unsafe_code)]

use crate::core::{self, CompiledModel, Draws, MethodKind, Options, RunProgress, SiteDraws};
use crate::methods;
use bdl_ir::SettingValue;
use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

create_exception!(
    _native,
    BdlError,
    PyException,
    "A model, its data or a run has an error; the message is the rendered diagnostic."
);

/// How often the calling thread wakes while a run is going: progress and Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

/// The exception for a failure: its message is the rendered diagnostics, and its second argument
/// the list of error codes.
fn error(failure: core::Failure) -> PyErr {
    BdlError::new_err((failure.message, failure.codes))
}

/// A compiled model.
#[pyclass(module = "bdl._native", frozen)]
struct NativeModel {
    inner: Arc<CompiledModel>,
}

/// The model's data as `.npy` bytes by name, from a list of `(name, dtype, shape, buffer)`
/// tuples whose buffer is a C-contiguous byte view of the array (`array.reshape(-1).view(uint8)`).
fn arrays(py: Python<'_>, data: &Bound<'_, PyList>) -> PyResult<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::with_capacity(data.len());
    for item in data.iter() {
        let (name, dtype, shape, view): (String, String, Vec<usize>, Bound<'_, PyAny>) =
            item.extract()?;
        if !core::ARRAY_DTYPES.contains(&dtype.as_str()) {
            return Err(PyValueError::new_err(format!(
                "array `{name}` has dtype {dtype}; the package sends {:?}",
                core::ARRAY_DTYPES
            )));
        }
        let buffer = PyBuffer::<u8>::get(&view)?;
        let item_size = if dtype == "|b1" { 1 } else { 8 };
        let expected = shape.iter().product::<usize>() * item_size;
        if !buffer.is_c_contiguous() || buffer.item_count() != expected {
            return Err(PyValueError::new_err(format!(
                "array `{name}`: the buffer is not a C-contiguous view of {expected} bytes"
            )));
        }
        let mut bytes = core::npy_frame(&dtype, &shape, expected);
        let header = bytes.len();
        bytes.resize(header + expected, 0);
        buffer.copy_to_slice(py, &mut bytes[header..])?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// `values` as a `bytes` object of native-endian f64, written in place (one copy).
fn f64_bytes<'py>(py: Python<'py>, values: &[f64]) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, values.len() * 8, |target| {
        for (chunk, value) in target.chunks_exact_mut(8).zip(values) {
            chunk.copy_from_slice(&value.to_ne_bytes());
        }
        Ok(())
    })
}

/// A `(bytes, shape)` pair for `numpy.frombuffer(bytes).reshape(shape)`.
fn array<'py>(py: Python<'py>, values: &[f64], shape: Vec<usize>) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            f64_bytes(py, values)?.into_any(),
            PyTuple::new(py, shape)?.into_any(),
        ],
    )
}

/// Sites' draws as a dict of `(bytes, (units, draws, *shape))` pairs.
fn site_arrays<'py>(
    py: Python<'py>,
    sites: &[SiteDraws],
    units: usize,
    draws: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for site in sites {
        let mut shape = vec![units, draws];
        shape.extend(&site.shape);
        out.set_item(&site.name, array(py, &site.values, shape)?)?;
    }
    Ok(out)
}

/// A run's draws as `infer`'s dict (see [`NativeModel::infer`]).
fn draws_dict<'py>(py: Python<'py>, result: &Draws) -> PyResult<Bound<'py, PyDict>> {
    let (units, draws) = (result.units, result.draws);
    let out = PyDict::new(py);
    out.set_item("units", units)?;
    out.set_item("draws", draws)?;
    out.set_item("interrupted", result.interrupted)?;
    out.set_item("posterior", site_arrays(py, &result.sites, units, draws)?)?;
    let stats = PyDict::new(py);
    for (name, values) in &result.stats {
        stats.set_item(name, array(py, values, vec![units, draws])?)?;
    }
    out.set_item("sample_stats", stats)?;
    out.set_item(
        "log_likelihood",
        site_arrays(py, &result.log_likelihood, units, draws)?,
    )?;
    let data = PyDict::new(py);
    for (name, shape, values) in &result.data {
        data.set_item(name, array(py, values, shape.clone())?)?;
    }
    out.set_item("data", data)?;
    out.set_item("observed_sites", &result.observed_sites)?;
    Ok(out)
}

/// Runs `work` on its own thread with the GIL released, waking every [`POLL`] to call
/// `report(done, total)` when the run has moved on and to check Python's signals; on Ctrl-C sets
/// `stop`, waits for the work to end, and raises `KeyboardInterrupt`.
fn run_interruptibly<T: Send + 'static>(
    py: Python<'_>,
    progress: Arc<RunProgress>,
    report: Option<&Bound<'_, PyAny>>,
    stop: Arc<AtomicBool>,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (sender, receiver) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    let mut receiver = receiver;
    let mut reported = (usize::MAX, 0);
    loop {
        // The receiver moves into the GIL-free closure and back out, since a `&Receiver` cannot
        // cross threads (`Receiver` is `Send` but not `Sync`).
        let (received, waiting) = py.allow_threads(move || {
            let received = receiver.recv_timeout(POLL);
            (received, receiver)
        });
        receiver = waiting;
        let snapshot = progress.snapshot();
        if let Some(report) = report {
            if snapshot != reported && snapshot.1 > 0 {
                report.call1(snapshot)?;
                reported = snapshot;
            }
        }
        match received {
            Ok(result) => {
                let _ = handle.join();
                return Ok(result);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = handle.join();
                return Err(PyException::new_err(
                    "the inference thread ended without a result",
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    stop.store(true, Ordering::Relaxed);
                    py.allow_threads(move || {
                        let _ = receiver.recv();
                        let _ = handle.join();
                    });
                    return Err(interrupt);
                }
            }
        }
    }
}

/// Parses the keyword options of `infer` into [`Options`].
fn parse_options(method: &str, options: &Bound<'_, PyDict>) -> PyResult<Options> {
    let mut parsed = Options {
        method: MethodKind::parse(method).map_err(error)?,
        ..Options::default()
    };
    for (key, value) in options.iter() {
        let key: String = key.extract()?;
        match key.as_str() {
            "metric" => {
                let metric: String = value.extract()?;
                parsed.dense = match metric.as_str() {
                    "dense" => true,
                    "diag" => false,
                    other => {
                        return Err(error(core::Failure::new(
                            "E0937",
                            format!("option `metric` is diag or dense, not `{other}`"),
                        )))
                    }
                }
            }
            "parallel" => parsed.parallel = value.extract()?,
            _ => {
                let number: f64 = value.extract().map_err(|_| {
                    error(core::Failure::new(
                        "E0937",
                        format!("option `{key}` must be a number"),
                    ))
                })?;
                parsed.set(&key, number).map_err(error)?;
            }
        }
    }
    Ok(parsed)
}

#[pymethods]
impl NativeModel {
    /// Compiles `source` named `name`; `directory` resolves the model's `data from` paths.
    #[new]
    fn new(name: &str, source: &str, directory: &str) -> PyResult<NativeModel> {
        CompiledModel::compile(name, source, Path::new(directory))
            .map(|inner| NativeModel {
                inner: Arc::new(inner),
            })
            .map_err(error)
    }

    /// The rendered warnings of compilation ("" when there are none).
    #[getter]
    fn warnings(&self) -> String {
        self.inner.warnings.clone()
    }

    /// The data declarations' names.
    #[getter]
    fn data_names(&self) -> Vec<String> {
        self.inner.data_names()
    }

    /// Runs inference. Returns a dict with `units`, `draws`, `interrupted`, `posterior`,
    /// `sample_stats` and `log_likelihood` (name → `(bytes, shape)` with shape
    /// `(units, draws, *site_shape)`), `data` (name → `(bytes, shape)`) and `observed_sites`.
    #[pyo3(signature = (data, method, options, progress=None))]
    fn infer<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyList>,
        method: &str,
        options: &Bound<'py, PyDict>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let parsed = parse_options(method, options)?;
        let arrays = arrays(py, data)?;
        let model = Arc::clone(&self.inner);
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(RunProgress::default());
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&counter));
        let result = run_interruptibly(py, counter, progress.as_ref(), stop, move || {
            core::infer(&model, &arrays, &parsed, &count, &flag)
        })?
        .map_err(error)?;
        draws_dict(py, &result)
    }

    /// The model's `infer { }` settings: name → int, float, bool or str.
    #[getter]
    fn infer_block<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (key, value) in methods::infer_block(&self.inner) {
            match value {
                SettingValue::Int(v) => out.set_item(key, v)?,
                SettingValue::Real(v) => out.set_item(key, v)?,
                SettingValue::Bool(v) => out.set_item(key, v)?,
                SettingValue::Name(v) | SettingValue::Text(v) => out.set_item(key, v)?,
            }
        }
        Ok(out)
    }

    /// Runs any method of `bdlc infer`, chosen and set by `flags` (`bdlc infer`'s flags) over
    /// the model's `infer { }` block. Returns `infer`'s dict plus `method`, `mcmc`, `losses`
    /// (`(bytes, (steps,))`), `facts` (JSON text) and `warnings`.
    #[pyo3(signature = (data, flags))]
    fn infer_flags<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyList>,
        flags: Vec<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let arrays = arrays(py, data)?;
        let model = Arc::clone(&self.inner);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // These drivers report no iteration count; the counter stays at zero.
        let counter = Arc::new(RunProgress::default());
        let run = run_interruptibly(py, counter, None, stop, move || {
            methods::infer_with_flags(&model, &arrays, &flags, &flag)
        })?
        .map_err(error)?;
        let out = draws_dict(py, &run.draws)?;
        out.set_item("method", &run.method)?;
        out.set_item("mcmc", run.mcmc)?;
        out.set_item("losses", array(py, &run.losses, vec![run.losses.len()])?)?;
        out.set_item("facts", &run.facts)?;
        out.set_item("warnings", &run.warnings)?;
        Ok(out)
    }

    /// Replications `first .. first + count` of simulation-based calibration, one after
    /// another. Returns a dict with `draws` (what each rank counts over), `divergent` (a list,
    /// per replication) and `ranks` (site → `(bytes, (count, *shape))`).
    #[pyo3(signature = (data, method, options, first, count, progress=None))]
    // Each argument is a keyword argument on the Python side, where a struct would be foreign.
    #[allow(clippy::too_many_arguments)]
    fn sbc<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyList>,
        method: &str,
        options: &Bound<'py, PyDict>,
        first: usize,
        count: usize,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let parsed = parse_options(method, options)?;
        let arrays = arrays(py, data)?;
        let model = Arc::clone(&self.inner);
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(RunProgress::default());
        let (flag, tally) = (Arc::clone(&stop), Arc::clone(&counter));
        let replications = run_interruptibly(py, counter, progress.as_ref(), stop, move || {
            (first..first + count)
                .map(|replication| {
                    core::sbc_replication(&model, &arrays, &parsed, replication, &tally, &flag)
                })
                .collect::<Result<Vec<_>, _>>()
        })?
        .map_err(error)?;
        let out = PyDict::new(py);
        out.set_item("draws", replications.first().map_or(0, |r| r.draws))?;
        let divergent: Vec<usize> = replications.iter().map(|r| r.divergent).collect();
        out.set_item("divergent", divergent)?;
        let ranks = PyDict::new(py);
        if let Some(first_replication) = replications.first() {
            for (index, site) in first_replication.ranks.iter().enumerate() {
                let values: Vec<f64> = replications
                    .iter()
                    .flat_map(|r| r.ranks[index].values.iter().copied())
                    .collect();
                let mut shape = vec![replications.len()];
                shape.extend(&site.shape);
                ranks.set_item(&site.name, array(py, &values, shape)?)?;
            }
        }
        out.set_item("ranks", ranks)?;
        Ok(out)
    }

    /// Posterior-predictive draws of the observed sites: `posterior` is a list of
    /// `(name, shape, buffer)` with the float64 values of `n_draws` draws of each free site in C
    /// order; returns name → `(bytes, (n_draws, *shape))`.
    #[pyo3(signature = (data, posterior, n_draws, seed))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyList>,
        posterior: &Bound<'py, PyList>,
        n_draws: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let arrays = arrays(py, data)?;
        let mut draws = Vec::with_capacity(posterior.len());
        for item in posterior.iter() {
            let (name, shape, view): (String, Vec<usize>, Bound<'py, PyAny>) = item.extract()?;
            let buffer = PyBuffer::<f64>::get(&view)?;
            draws.push((name, shape, buffer.to_vec(py)?));
        }
        let model = Arc::clone(&self.inner);
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(RunProgress::default());
        let result = run_interruptibly(py, counter, None, stop, move || {
            core::predict(&model, &arrays, &draws, n_draws, seed)
        })?
        .map_err(error)?;
        let out = PyDict::new(py);
        for site in result {
            let mut shape = vec![n_draws];
            shape.extend(&site.shape);
            out.set_item(&site.name, array(py, &site.values, shape)?)?;
        }
        Ok(out)
    }
}

/// The extension module.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NativeModel>()?;
    module.add("BdlError", module.py().get_type::<BdlError>())?;
    Ok(())
}
