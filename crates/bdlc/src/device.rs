//! `--device cpu|gpu|auto`: where the forward passes of lifted networks run when a command
//! evaluates them for many posterior draws at once, and the batched prediction that uses it.
//!
//! With `gpu` or `auto`, `bdlc predict` first runs the model once to list the calls of lifted
//! networks on inputs that depend on no latent value (`Model::network_calls`); the device then
//! computes each call for a chunk of draws in one batched dispatch (`bdl_gpu::Backend::
//! forward_batch`, draws as a batch axis, in f32), and the model runs once per draw on the CPU
//! with those outputs substituted (`Model::predictive_draw_with_outputs`), drawing the
//! likelihood exactly as the CPU path does: the same random stream, so the two paths differ only
//! by the f32 rounding of the networks' outputs.

use crate::session::Failure;
use bdl_autodiff::Tensor;
use bdl_gpu::{Activation, Backend, BackendSettings, Layer as GpuLayer, Mlp};
use bdl_infer::rng::stream_rng;
use bdl_ir::ir::{Activation as IrActivation, Layer};
use bdl_runtime::model::{Model, SiteInfo};
use bdl_runtime::NetworkCall;
use rayon::prelude::*;
use std::collections::HashMap;

/// Where batched forward passes run.
#[derive(clap::ValueEnum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU, in f64 (the default).
    #[default]
    Cpu,
    /// A GPU through wgpu, in f32; an error when none can be used (a software adapter such as
    /// Mesa's llvmpipe counts, so that the path can be tested without a GPU).
    Gpu,
    /// A hardware GPU when there is one, else the CPU.
    Auto,
}

/// The backend a choice asks for: `None` for the CPU path. `--device gpu` without a usable
/// adapter is an error that says why, naming the adapters found; `--device auto` then falls
/// back to the CPU and says so on standard error.
pub fn open(choice: DeviceChoice) -> Result<Option<Backend>, Failure> {
    let allow_software_adapter = match choice {
        DeviceChoice::Cpu => return Ok(None),
        DeviceChoice::Gpu => true,
        DeviceChoice::Auto => false,
    };
    let backend = Backend::with_settings(&BackendSettings {
        use_gpu: true,
        allow_software_adapter,
        // Whole chunks of draws in one dispatch per layer: the device's own limits cap this.
        max_buffer_bytes: DEVICE_BUFFER_BYTES,
    });
    if backend.is_gpu() {
        return Ok(Some(backend));
    }
    let reason = backend
        .fallback_reason()
        .unwrap_or("no GPU backend")
        .to_string();
    match choice {
        DeviceChoice::Gpu => Err(Failure::usage(
            "E0940",
            format!("`--device gpu`: no usable GPU: {reason}"),
            Some(
                "run with `--device cpu`, build bdlc with `--features gpu`, or install a Vulkan \
                 driver (`scripts/install-vulkan.sh` installs Mesa's software one)"
                    .to_string(),
            ),
        )),
        _ => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "note: `--device auto` found no hardware GPU ({reason}); running on the CPU"
                );
            }
            Ok(None)
        }
    }
}

/// The device of `bdlc infer --device` and the REPL's `:infer --device`: checked before the
/// run starts, so that `gpu` without a usable adapter fails at once (E0940, naming the adapters
/// found and why each was refused). Training itself runs on the CPU: the device kernels run
/// forward passes only, which serve `bdlc predict`. The fact returned goes into the run's
/// `summary.json` as `device` (nothing for `cpu`, the default).
pub fn for_inference(
    choice: Option<DeviceChoice>,
    quiet: bool,
) -> Result<Option<serde_json::Value>, Failure> {
    let choice = choice.unwrap_or_default();
    if choice == DeviceChoice::Cpu {
        return Ok(None);
    }
    let requested = if choice == DeviceChoice::Gpu {
        "gpu"
    } else {
        "auto"
    };
    let adapter = open(choice)?.map(|backend| backend.backend_name().to_string());
    if let (Some(adapter), false) = (&adapter, quiet) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "note: `--device {requested}` found {adapter}; training runs on the CPU (the device \
                 runs the batched forward passes of `bdlc predict`)"
            );
        }
    }
    Ok(Some(serde_json::json!({
        "requested": requested,
        "adapter": adapter,
        "training": "cpu",
    })))
}

/// The device network of a recorded call, with the table columns of its weights in the order
/// `bdl_gpu` reads them (each `Linear` layer's `W: [in, out]` row-major, then its bias).
struct DeviceCall {
    mlp: Mlp,
    weight_columns: Vec<usize>,
    call: NetworkCall,
}

/// The device's form of an activation, for the six it runs.
fn device_activation(kind: IrActivation) -> Option<Activation> {
    Some(match kind {
        IrActivation::Relu => Activation::Relu,
        IrActivation::Tanh => Activation::Tanh,
        IrActivation::Sigmoid => Activation::Sigmoid,
        IrActivation::Softplus => Activation::Softplus,
        IrActivation::Softmax => Activation::Softmax,
        IrActivation::LogSoftmax => Activation::LogSoftmax,
        IrActivation::LeakyRelu { .. }
        | IrActivation::Elu { .. }
        | IrActivation::Gelu
        | IrActivation::Silu => return None,
    })
}

fn device_call(
    call: NetworkCall,
    columns_of_site: &HashMap<&str, &[usize]>,
) -> Result<DeviceCall, Failure> {
    let mut layers = Vec::new();
    let mut weight_columns = Vec::new();
    for layer in &call.layers {
        match *layer {
            Layer::Linear {
                index,
                input,
                output,
                bias,
            } => {
                layers.push(GpuLayer::Linear {
                    input,
                    output,
                    bias,
                });
                let mut sites = vec![format!("{}_{index}_weight", call.network)];
                if bias {
                    sites.push(format!("{}_{index}_bias", call.network));
                }
                for site in sites {
                    let columns = columns_of_site.get(site.as_str()).ok_or_else(|| {
                        Failure::run(
                            "E0941",
                            format!("the draws have no values for the network weights `{site}`"),
                        )
                    })?;
                    weight_columns.extend_from_slice(columns);
                }
            }
            Layer::Activation { kind, .. } if device_activation(kind).is_some() => {
                if let Some(activation) = device_activation(kind) {
                    layers.push(GpuLayer::Activation(activation));
                }
            }
            ref other => {
                return Err(Failure::run(
                    "E0941",
                    format!(
                        "network `{}` uses `{}`, which the device does not run (it runs `Linear` layers and the activations ReLU, Tanh, Sigmoid, Softplus, Softmax, LogSoftmax)",
                        call.network,
                        other.describe()
                    ),
                ));
            }
        }
    }
    let mlp = Mlp::new(layers).map_err(|error| {
        Failure::run(
            "E0941",
            format!(
                "network `{}` cannot run on the device: {error}",
                call.network
            ),
        )
    })?;
    Ok(DeviceCall {
        mlp,
        weight_columns,
        call,
    })
}

/// The largest buffer a batched prediction asks the device for (further capped by its limits).
const DEVICE_BUFFER_BYTES: u64 = 1 << 30;

/// What a batched prediction did: the draws, the network calls per draw that ran on the
/// device, and the time spent in the device's forward passes (uploads and readbacks included).
pub struct BatchedDraws {
    /// One predictive draw per posterior draw, in the order asked for.
    pub draws: Vec<Vec<(String, Tensor)>>,
    /// Network calls per draw computed on the device.
    pub calls: usize,
    /// Seconds spent in the device's forward passes.
    pub device_seconds: f64,
}

/// The bytes of network outputs one chunk of draws may hold in memory at once.
const CHUNK_BYTES: usize = 256 << 20;

/// Posterior-predictive draws with the networks' forward passes on `backend`, batched over the
/// draws: one draw per entry of `picked` (a row of `rows`), each from the stream
/// `stream_rng(seed, row)` as on the CPU. `sites` maps the latent and param sites to their
/// columns in `rows`; `substitute` turns a row into the sites' values.
#[allow(clippy::type_complexity)]
pub fn predict_batched(
    model: &Model,
    backend: &Backend,
    sites: &[(&SiteInfo, Vec<usize>)],
    rows: &[Vec<f64>],
    picked: &[usize],
    seed: u64,
    substitute: &(dyn Fn(&[f64]) -> Result<HashMap<String, Tensor>, Failure> + Sync),
) -> Result<BatchedDraws, Failure> {
    let Some(&first) = picked.first() else {
        return Ok(BatchedDraws {
            draws: Vec::new(),
            calls: 0,
            device_seconds: 0.0,
        });
    };
    let to_failure = |error: bdl_runtime::RuntimeError| Failure::model(vec![error.to_diagnostic()]);
    let calls = model
        .network_calls(
            &substitute(&rows[first])?,
            &mut stream_rng(seed, first as u64),
        )
        .map_err(to_failure)?;
    let columns_of_site: HashMap<&str, &[usize]> = sites
        .iter()
        .map(|(site, columns)| (site.name.as_str(), columns.as_slice()))
        .collect();
    let calls = calls
        .into_iter()
        .map(|call| device_call(call, &columns_of_site))
        .collect::<Result<Vec<_>, _>>()?;
    let bytes_per_draw: usize = calls
        .iter()
        .map(|c| c.call.output_shape.iter().product::<usize>() * 8)
        .sum::<usize>()
        .max(1);
    let chunk = (CHUNK_BYTES / bytes_per_draw).clamp(1, picked.len());
    let recorded: Vec<&NetworkCall> = calls.iter().map(|c| &c.call).collect();
    let mut draws = Vec::with_capacity(picked.len());
    let mut device_seconds = 0.0;
    for rows_of_chunk in picked.chunks(chunk) {
        // One batched dispatch per call for the whole chunk: [draws, rows, out].
        let mut outputs: Vec<Vec<f64>> = Vec::with_capacity(calls.len());
        for device in &calls {
            let mut weights = Vec::with_capacity(rows_of_chunk.len() * device.weight_columns.len());
            for &row in rows_of_chunk {
                weights.extend(device.weight_columns.iter().map(|&c| rows[row][c]));
            }
            let started = std::time::Instant::now();
            let output = backend
                .forward_batch(&device.mlp, &weights, device.call.input.data())
                .map_err(|error| {
                    Failure::run(
                        "E0942",
                        format!(
                            "network `{}` on {}: {error}",
                            device.call.network,
                            backend.backend_name()
                        ),
                    )
                })?;
            device_seconds += started.elapsed().as_secs_f64();
            outputs.push(output);
        }
        let chunk_draws: Vec<Result<Vec<(String, Tensor)>, Failure>> = rows_of_chunk
            .par_iter()
            .enumerate()
            .map(|(position, &row)| {
                let values = substitute(&rows[row])?;
                let mut substituted = Vec::with_capacity(calls.len());
                for (device, output) in calls.iter().zip(&outputs) {
                    let size: usize = device.call.output_shape.iter().product();
                    let slice = output[position * size..(position + 1) * size].to_vec();
                    let tensor = Tensor::from_shape(&device.call.output_shape, slice)
                        .map_err(|e| Failure::run("E0942", e.to_string()))?;
                    substituted.push(tensor);
                }
                let mut rng = stream_rng(seed, row as u64);
                model
                    .predictive_draw_with_outputs(&values, &mut rng, &recorded, substituted)
                    .map_err(to_failure)
            })
            .collect();
        for draw in chunk_draws {
            draws.push(draw?);
        }
    }
    Ok(BatchedDraws {
        draws,
        calls: calls.len(),
        device_seconds,
    })
}
