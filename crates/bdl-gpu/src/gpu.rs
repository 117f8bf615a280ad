//! The wgpu path (built with the `gpu` feature): finding an adapter, compiling the WGSL compute
//! shaders once, and running a batch as one tiled matrix product per `Linear` layer (bias and the
//! following elementwise activation fused in) dispatched for all draws at once, in f32.
//!
//! The device is opened once per process. Each backend keeps its large buffers between calls and
//! replaces them only when a batch needs more; within a call they are sized once, for the largest
//! chunk. A batch too big for the byte budget is cut into chunks of inputs and, inside those,
//! chunks of draws, each uploaded, run and read back with `map_async` and a blocking `poll`
//! before the next.

use crate::cpu;
use crate::error::GpuError;
use crate::network::{Activation, LinearSlot, Mlp, Step};
use crate::BackendSettings;
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

/// The Linear kernel: the shared activations followed by the tiled product.
const LINEAR_SHADER: &str = concat!(
    include_str!("shaders/common.wgsl"),
    include_str!("shaders/linear.wgsl")
);

/// The stand-alone activation kernels, elementwise and along rows.
const ACTIVATION_SHADER: &str = concat!(
    include_str!("shaders/common.wgsl"),
    include_str!("shaders/activation.wgsl")
);

/// The side of the output tile one workgroup of the Linear kernel computes.
const TILE: u64 = 16;

/// Threads per workgroup of the activation kernels.
const ACTIVATION_GROUP: u64 = 256;

/// Bytes per value on the GPU (f32).
const VALUE_BYTES: u64 = 4;

/// The activation code the shaders use (see `shaders/common.wgsl`).
fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Relu => 1,
        Activation::Tanh => 2,
        Activation::Sigmoid => 3,
        Activation::Softplus => 4,
        Activation::Softmax => 5,
        Activation::LogSoftmax => 6,
    }
}

/// A device with its compiled pipelines, opened once per process and shared by every
/// `Backend`: opening a device takes about a second, and one driver was seen to hang when
/// several threads opened and closed devices at once. Calls take turns on it through a mutex,
/// which also keeps each call's driver errors apart from another's.
struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    linear: wgpu::ComputePipeline,
    elementwise: wgpu::ComputePipeline,
    rowwise: wgpu::ComputePipeline,
    limits: wgpu::Limits,
    description: String,
    /// Errors the driver reports outside an error scope, and a lost device's reason.
    reported: Arc<Mutex<Option<String>>>,
}

/// The process's device when software adapters are refused, and when they are accepted.
static HARDWARE_ONLY: OnceLock<Result<Mutex<Shared>, String>> = OnceLock::new();
static ANY_ADAPTER: OnceLock<Result<Mutex<Shared>, String>> = OnceLock::new();

/// A backend's handle on the shared device, with its own buffer budget and buffers.
pub(crate) struct GpuContext {
    shared: &'static Mutex<Shared>,
    description: String,
    max_buffer_bytes: u64,
    cache: Mutex<BufferCache>,
}

/// How good an adapter is for this work: real GPUs first, then native APIs before OpenGL.
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({}, {:?})", info.name, info.backend, info.device_type)
}

/// Collects driver errors raised while `work` runs, in error scopes for validation, memory and
/// internal failures, and turns the first into a `GpuError::Device`.
fn in_error_scopes<T>(
    device: &wgpu::Device,
    reported: &Mutex<Option<String>>,
    work: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let result = work();
    let errors = [
        pollster::block_on(validation.pop()),
        pollster::block_on(internal.pop()),
        pollster::block_on(out_of_memory.pop()),
    ];
    if let Some(error) = errors.into_iter().flatten().next() {
        return Err(GpuError::Device {
            message: error.to_string(),
        });
    }
    let earlier = reported.lock().ok().and_then(|mut slot| slot.take());
    if let Some(message) = earlier {
        return Err(GpuError::Device { message });
    }
    result
}

impl GpuContext {
    /// A handle on the process's device, opening it on first use. The error says, in words,
    /// why no GPU is used.
    pub(crate) fn open(settings: &BackendSettings) -> Result<GpuContext, String> {
        let slot = if settings.allow_software_adapter {
            &ANY_ADAPTER
        } else {
            &HARDWARE_ONLY
        };
        let shared = slot
            .get_or_init(|| Shared::open(settings.allow_software_adapter).map(Mutex::new))
            .as_ref()
            .map_err(String::clone)?;
        let (description, limits) = {
            let guard = shared
                .lock()
                .map_err(|_| "an earlier GPU call panicked".to_string())?;
            (guard.description.clone(), guard.limits.clone())
        };
        let max_buffer_bytes = settings
            .max_buffer_bytes
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size)
            .min(u64::from(u32::MAX));
        Ok(GpuContext {
            shared,
            description,
            max_buffer_bytes,
            cache: Mutex::new(BufferCache::default()),
        })
    }

    /// The adapter's name, API and kind.
    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// Runs a batch; see `Backend::forward_batch`.
    pub(crate) fn forward_batch(
        &self,
        mlp: &Mlp,
        draws: &[f64],
        inputs: &[f64],
    ) -> Result<Vec<f64>, GpuError> {
        // Non-finite values are found while the values are converted to f32.
        let (n_draws, n_inputs) = mlp.check_shapes(draws, inputs)?;
        let mut output = vec![0.0; n_draws * n_inputs * mlp.output_width()];
        if output.is_empty() {
            return Ok(output);
        }
        // Activations before the first Linear layer act on the inputs alone, the same for
        // every draw: they run once, on the CPU, in f64.
        let first_linear = mlp
            .steps()
            .iter()
            .position(|step| matches!(step, Step::Linear(_)))
            .unwrap_or(0);
        let inputs: Cow<[f64]> = if first_linear == 0 {
            Cow::Borrowed(inputs)
        } else {
            let mut prepared = inputs.to_vec();
            for step in &mlp.steps()[..first_linear] {
                if let Step::Activation(activation) = step {
                    cpu::activate(*activation, &mut prepared, mlp.input_width());
                }
            }
            Cow::Owned(prepared)
        };
        let stages = plan(&mlp.steps()[first_linear..], mlp.input_width());
        let chunks = Chunks::new(mlp, n_draws, n_inputs, self.max_buffer_bytes)?;
        let shared = self.shared.lock().map_err(|_| GpuError::Device {
            message: "an earlier GPU call panicked".to_string(),
        })?;
        // A poisoned cache only means an earlier call stopped half-way: start afresh.
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = in_error_scopes(&shared.device, &shared.reported, || {
            shared.run_chunks(
                &mut cache,
                mlp,
                &stages,
                &chunks,
                draws,
                &inputs,
                &mut output,
            )
        });
        if result.is_err() {
            // A failed call may leave a buffer mapped or half-written.
            *cache = BufferCache::default();
        }
        result?;
        Ok(output)
    }
}

impl Shared {
    /// Finds the best adapter that can run compute shaders, opens a device with the adapter's
    /// own limits and compiles the pipelines.
    fn open(allow_software_adapter: bool) -> Result<Shared, String> {
        // The native APIs first; OpenGL only when none of them offers an adapter, since probing
        // it wakes the windowing libraries, which complain on headless machines.
        let mut adapters = Vec::new();
        for backends in [wgpu::Backends::PRIMARY, wgpu::Backends::GL] {
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                backends,
                ..wgpu::InstanceDescriptor::new_without_display_handle()
            });
            adapters.extend(pollster::block_on(instance.enumerate_adapters(backends)));
            if adapters.iter().any(|adapter| {
                let info = adapter.get_info();
                info.device_type != wgpu::DeviceType::Cpu || allow_software_adapter
            }) {
                break;
            }
        }
        if adapters.is_empty() {
            return Err(
                "no GPU adapter was found (no Vulkan, Metal, DX12 or OpenGL driver \
                        offered one)"
                    .to_string(),
            );
        }
        let mut refused = Vec::new();
        let mut best: Option<(wgpu::Adapter, wgpu::AdapterInfo)> = None;
        for adapter in adapters {
            let info = adapter.get_info();
            let computes = adapter
                .get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
            if !computes {
                refused.push(format!(
                    "{} cannot run compute shaders",
                    describe_adapter(&info)
                ));
                continue;
            }
            if info.device_type == wgpu::DeviceType::Cpu && !allow_software_adapter {
                refused.push(format!(
                    "{} is a software adapter, slower than the CPU path",
                    describe_adapter(&info)
                ));
                continue;
            }
            let better = best
                .as_ref()
                .is_none_or(|(_, held)| adapter_rank(&info) < adapter_rank(held));
            if better {
                best = Some((adapter, info));
            }
        }
        let Some((adapter, info)) = best else {
            return Err(format!("no usable GPU adapter: {}", refused.join("; ")));
        };
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("bdl-gpu"),
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .map_err(|error| {
            format!(
                "the GPU adapter {} could not open a device: {error}",
                describe_adapter(&info)
            )
        })?;
        let reported = Arc::new(Mutex::new(None::<String>));
        let sink = Arc::clone(&reported);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| error.to_string());
            }
        }));
        let sink = Arc::clone(&reported);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| {
                    format!("the GPU device was lost ({reason:?}): {message}")
                });
            }
        });
        let pipelines = in_error_scopes(&device, &reported, || {
            let linear_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("bdl-gpu linear"),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(LINEAR_SHADER)),
            });
            let activation_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("bdl-gpu activation"),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(ACTIVATION_SHADER)),
            });
            let pipeline = |module: &wgpu::ShaderModule, entry_point: &str| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry_point),
                    layout: None,
                    module,
                    entry_point: Some(entry_point),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    cache: None,
                })
            };
            Ok((
                pipeline(&linear_module, "linear"),
                pipeline(&activation_module, "elementwise"),
                pipeline(&activation_module, "rowwise"),
            ))
        })
        .map_err(|error| format!("the compute shaders did not compile: {error}"))?;
        let (linear, elementwise, rowwise) = pipelines;
        Ok(Shared {
            device,
            queue,
            linear,
            elementwise,
            rowwise,
            limits,
            description: format!("gpu (f32): {}", describe_adapter(&info)),
            reported,
        })
    }

    #[allow(clippy::too_many_arguments)] // Each argument is a different part of one call.
    fn run_chunks(
        &self,
        cache: &mut BufferCache,
        mlp: &Mlp,
        stages: &[Stage],
        chunks: &Chunks,
        draws: &[f64],
        inputs: &[f64],
        output: &mut [f64],
    ) -> Result<(), GpuError> {
        let input_width = mlp.input_width();
        let output_width = mlp.output_width();
        let n_weights = mlp.n_weights();
        let device = &self.device;
        let copy_in = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let input_buffer = ensure(
            &mut cache.inputs,
            device,
            "inputs",
            chunks.rows as u64 * input_width as u64 * VALUE_BYTES,
            copy_in,
        );
        let weight_buffer = ensure(
            &mut cache.weights,
            device,
            "draws",
            chunks.draws as u64 * n_weights as u64 * VALUE_BYTES,
            copy_in,
        );
        let activation_bytes =
            chunks.draws as u64 * chunks.rows as u64 * mlp.max_width() as u64 * VALUE_BYTES;
        let activation_usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let n_linear = stages
            .iter()
            .filter(|stage| matches!(stage, Stage::Linear { .. }))
            .count();
        let [first_buffer, second_buffer] = &mut cache.activations;
        let mut activation_buffers = vec![ensure(
            first_buffer,
            device,
            "activations",
            activation_bytes,
            activation_usage,
        )];
        if n_linear > 1 {
            activation_buffers.push(ensure(
                second_buffer,
                device,
                "activations",
                activation_bytes,
                activation_usage,
            ));
        }
        let staging = ensure(
            &mut cache.staging,
            device,
            "readback",
            chunks.draws as u64 * chunks.rows as u64 * output_width as u64 * VALUE_BYTES,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let storage = |label: &str, bytes: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };

        // One uniform buffer and one bind group per stage; `current` follows which buffer holds
        // the activations (None: the inputs).
        let mut bound = Vec::with_capacity(stages.len());
        let mut current: Option<usize> = None;
        for stage in stages {
            let (pipeline, uniform_bytes) = match stage {
                Stage::Linear { .. } => (&self.linear, LINEAR_PARAMS * 4),
                Stage::Elementwise { .. } => (&self.elementwise, ACTIVATION_PARAMS * 4),
                Stage::Rowwise { .. } => (&self.rowwise, ACTIVATION_PARAMS * 4),
            };
            let uniform = storage(
                "parameters",
                uniform_bytes as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            );
            let layout = pipeline.get_bind_group_layout(0);
            let (bind_group, target) = match stage {
                Stage::Linear { .. } => {
                    let (source, target) = match current {
                        None => (input_buffer, 0),
                        Some(index) => (activation_buffers[index], 1 - index),
                    };
                    let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("linear"),
                        layout: &layout,
                        entries: &[
                            entry(0, &uniform),
                            entry(1, source),
                            entry(2, weight_buffer),
                            entry(3, activation_buffers[target]),
                        ],
                    });
                    (group, target)
                }
                Stage::Elementwise { .. } | Stage::Rowwise { .. } => {
                    // The plan starts with a Linear stage, so the activations are in a buffer.
                    let target = current.unwrap_or(0);
                    let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("activation"),
                        layout: &layout,
                        entries: &[entry(0, &uniform), entry(1, activation_buffers[target])],
                    });
                    (group, target)
                }
            };
            current = Some(target);
            bound.push((pipeline, uniform, bind_group));
        }
        let result_buffer = activation_buffers[current.unwrap_or(0)];

        let mut bytes = Vec::new();
        for row_start in (0..chunks.n_inputs).step_by(chunks.rows) {
            let rows = chunks.rows.min(chunks.n_inputs - row_start);
            let values = &inputs[row_start * input_width..(row_start + rows) * input_width];
            f32_bytes(values, "inputs", row_start * input_width, &mut bytes)?;
            self.queue.write_buffer(input_buffer, 0, &bytes);
            for draw_start in (0..chunks.n_draws).step_by(chunks.draws) {
                let n_chunk_draws = chunks.draws.min(chunks.n_draws - draw_start);
                let values =
                    &draws[draw_start * n_weights..(draw_start + n_chunk_draws) * n_weights];
                f32_bytes(values, "draws", draw_start * n_weights, &mut bytes)?;
                self.queue.write_buffer(weight_buffer, 0, &bytes);

                let mut encoder =
                    self.device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("forward"),
                        });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("forward"),
                        timestamp_writes: None,
                    });
                    for (stage, (pipeline, uniform, bind_group)) in stages.iter().zip(&bound) {
                        let (parameters, groups) =
                            self.parameters(stage, n_chunk_draws, rows, n_weights)?;
                        self.queue.write_buffer(uniform, 0, &parameters);
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, bind_group, &[]);
                        pass.dispatch_workgroups(groups.0, groups.1, 1);
                    }
                }
                let result_bytes =
                    n_chunk_draws as u64 * rows as u64 * output_width as u64 * VALUE_BYTES;
                encoder.copy_buffer_to_buffer(result_buffer, 0, staging, 0, result_bytes);
                self.queue.submit([encoder.finish()]);
                // The chunk is [draws, rows, output_width]; each draw's rows go to their place
                // in [n_draws, n_inputs, output_width].
                let chunk_row = rows * output_width;
                self.read_back(staging, result_bytes, |bytes| {
                    output
                        .par_chunks_mut(chunks.n_inputs * output_width)
                        .skip(draw_start)
                        .take(n_chunk_draws)
                        .zip(bytes.par_chunks(chunk_row * VALUE_BYTES as usize))
                        .with_min_len(PARALLEL_DRAWS)
                        .for_each(|(draw_output, draw_bytes)| {
                            let target = &mut draw_output[row_start * output_width..][..chunk_row];
                            for (value, b) in target.iter_mut().zip(draw_bytes.chunks_exact(4)) {
                                *value = f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                            }
                        });
                })?;
            }
        }
        Ok(())
    }

    /// Maps the first `bytes` of the staging buffer, waits for the GPU, and hands the mapped
    /// bytes to `read`.
    fn read_back(
        &self,
        staging: &wgpu::Buffer,
        bytes: u64,
        read: impl FnOnce(&[u8]),
    ) -> Result<(), GpuError> {
        let (sender, receiver) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |result| {
            // The receiver waits below; if it were gone there would be nobody to tell.
            let _ = sender.send(result);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|error| GpuError::Device {
                message: format!("waiting for the GPU failed: {error}"),
            })?;
        let mapped = receiver.recv().map_err(|_| GpuError::Device {
            message: "the GPU never answered the readback".to_string(),
        })?;
        mapped.map_err(|error| GpuError::Device {
            message: format!("reading the results back failed: {error}"),
        })?;
        {
            let view = staging
                .get_mapped_range(0..bytes)
                .map_err(|error| GpuError::Device {
                    message: format!("reading the results back failed: {error}"),
                })?;
            read(&view);
        }
        staging.unmap();
        Ok(())
    }

    /// A stage's uniform block for a chunk, and its two-dimensional dispatch.
    fn parameters(
        &self,
        stage: &Stage,
        n_draws: usize,
        rows: usize,
        n_weights: usize,
    ) -> Result<(Vec<u8>, (u32, u32)), GpuError> {
        let count = (n_draws * rows) as u64;
        match *stage {
            Stage::Linear {
                slot,
                activation,
                first,
            } => {
                let tiles_m = (rows as u64).div_ceil(TILE);
                let tiles_n = (slot.output as u64).div_ceil(TILE);
                let total = n_draws as u64 * tiles_m * tiles_n;
                let (x, y) = self.dispatch(total)?;
                // The first Linear stage reads the inputs, which every draw shares.
                let x_draw_stride = if first { 0 } else { (rows * slot.input) as u64 };
                let words = [
                    rows as u64,
                    slot.input as u64,
                    slot.output as u64,
                    u64::from(activation),
                    x_draw_stride,
                    n_weights as u64,
                    slot.weight_offset as u64,
                    slot.bias_offset.unwrap_or(0) as u64,
                    u64::from(slot.bias_offset.is_some()),
                    tiles_m,
                    tiles_n,
                    total,
                    u64::from(x),
                    0,
                    0,
                    0,
                ];
                Ok((words_to_bytes(&words)?, (x, y)))
            }
            Stage::Elementwise { width, code } => {
                // One thread per value.
                let values = count * width as u64;
                let (x, y) = self.dispatch(values.div_ceil(ACTIVATION_GROUP))?;
                let words = [values, width as u64, u64::from(code), u64::from(x)];
                Ok((words_to_bytes(&words)?, (x, y)))
            }
            Stage::Rowwise { width, code } => {
                // One thread per row.
                let (x, y) = self.dispatch(count.div_ceil(ACTIVATION_GROUP))?;
                let words = [
                    count * width as u64,
                    width as u64,
                    u64::from(code),
                    u64::from(x),
                ];
                Ok((words_to_bytes(&words)?, (x, y)))
            }
        }
    }

    /// Spreads `groups` workgroups over a two-dimensional dispatch within the device's
    /// per-dimension limit.
    fn dispatch(&self, groups: u64) -> Result<(u32, u32), GpuError> {
        let limit = u64::from(self.limits.max_compute_workgroups_per_dimension.max(1));
        let x = groups.clamp(1, limit);
        let y = groups.div_ceil(x).max(1);
        if y > limit {
            return Err(GpuError::TooLarge {
                what: format!("{groups} workgroups exceed the device's dispatch limit"),
            });
        }
        Ok((x as u32, y as u32))
    }
}

/// The large buffers of one backend, kept between calls and replaced by larger ones when a
/// batch needs more: allocating (and zeroing) hundreds of megabytes of device memory costs more
/// than the forward pass itself.
#[derive(Default)]
struct BufferCache {
    inputs: Option<wgpu::Buffer>,
    weights: Option<wgpu::Buffer>,
    activations: [Option<wgpu::Buffer>; 2],
    staging: Option<wgpu::Buffer>,
}

/// The buffer in `slot`, replaced first by a new one of `bytes` if it is missing or smaller.
fn ensure<'a>(
    slot: &'a mut Option<wgpu::Buffer>,
    device: &wgpu::Device,
    label: &str,
    bytes: u64,
    usage: wgpu::BufferUsages,
) -> &'a wgpu::Buffer {
    if slot.as_ref().is_some_and(|buffer| buffer.size() < bytes) {
        *slot = None;
    }
    slot.get_or_insert_with(|| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    })
}

/// Binds a whole buffer.
fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// Words in the Linear kernel's uniform block.
const LINEAR_PARAMS: usize = 16;

/// Words in the activation kernels' uniform block.
const ACTIVATION_PARAMS: usize = 4;

/// A uniform block of u32 words, little-endian as the GPU reads it.
fn words_to_bytes(words: &[u64]) -> Result<Vec<u8>, GpuError> {
    let mut bytes = Vec::with_capacity(words.len() * 4);
    for &word in words {
        let word = u32::try_from(word).map_err(|_| GpuError::TooLarge {
            what: format!("{word} does not fit the shaders' 32-bit indices"),
        })?;
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    Ok(bytes)
}

/// Values converted per rayon task.
const PARALLEL_VALUES: usize = 1 << 14;

/// Draws read back per rayon task.
const PARALLEL_DRAWS: usize = 16;

/// Converts f64 values to the GPU's f32 bytes on all threads, refusing values that are not
/// finite or that overflow f32.
fn f32_bytes(
    values: &[f64],
    what: &'static str,
    first_index: usize,
    bytes: &mut Vec<u8>,
) -> Result<(), GpuError> {
    let size = VALUE_BYTES as usize;
    bytes.clear();
    bytes.resize(values.len() * size, 0);
    let all_fit = bytes
        .par_chunks_mut(PARALLEL_VALUES * size)
        .zip(values.par_chunks(PARALLEL_VALUES))
        .map(|(block, block_values)| {
            let mut fits = true;
            for (slot, &value) in block.chunks_exact_mut(size).zip(block_values) {
                let narrow = value as f32;
                fits &= narrow.is_finite();
                slot.copy_from_slice(&narrow.to_le_bytes());
            }
            fits
        })
        .reduce(|| true, |left, right| left && right);
    if all_fit {
        return Ok(());
    }
    let position = values
        .iter()
        .position(|value| !(*value as f32).is_finite())
        .unwrap_or(0);
    let index = first_index + position;
    if values[position].is_finite() {
        Err(GpuError::OutOfF32Range { what, index })
    } else {
        Err(GpuError::NonFinite { what, index })
    }
}

/// One kernel launch of the forward pass.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// A Linear layer with the elementwise activation that follows it fused in (code 0: none);
    /// the first one reads the inputs, which all draws share.
    Linear {
        slot: LinearSlot,
        activation: u32,
        first: bool,
    },
    /// An elementwise activation that could not be fused.
    Elementwise { width: usize, code: u32 },
    /// A softmax or log-softmax along rows of `width`.
    Rowwise { width: usize, code: u32 },
}

/// Groups the steps from the first Linear layer on into kernel launches: each elementwise
/// activation directly after a Linear layer is fused into it.
fn plan(steps: &[Step], input_width: usize) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::with_capacity(steps.len());
    let mut width = input_width;
    for step in steps {
        match *step {
            Step::Linear(slot) => {
                stages.push(Stage::Linear {
                    slot,
                    activation: 0,
                    first: stages.is_empty(),
                });
                width = slot.output;
            }
            Step::Activation(activation) if activation.is_rowwise() => {
                stages.push(Stage::Rowwise {
                    width,
                    code: activation_code(activation),
                });
            }
            Step::Activation(activation) => match stages.last_mut() {
                Some(Stage::Linear {
                    activation: fused @ 0,
                    ..
                }) => *fused = activation_code(activation),
                _ => stages.push(Stage::Elementwise {
                    width,
                    code: activation_code(activation),
                }),
            },
        }
    }
    stages
}

/// How a batch is cut so that every buffer fits the byte budget.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Chunks {
    n_draws: usize,
    n_inputs: usize,
    /// Input rows per chunk.
    rows: usize,
    /// Draws per chunk.
    draws: usize,
}

impl Chunks {
    fn new(mlp: &Mlp, n_draws: usize, n_inputs: usize, budget: u64) -> Result<Chunks, GpuError> {
        let row_bytes = mlp.max_width() as u64 * VALUE_BYTES;
        let draw_bytes = mlp.n_weights() as u64 * VALUE_BYTES;
        if row_bytes > budget || draw_bytes > budget {
            return Err(GpuError::TooLarge {
                what: format!(
                    "one draw ({draw_bytes} bytes) or one row of activations ({row_bytes} \
                     bytes) exceeds the GPU buffer limit of {budget} bytes"
                ),
            });
        }
        let rows = (n_inputs as u64).min(budget / row_bytes).max(1);
        let draws = (n_draws as u64)
            .min(budget / (rows * row_bytes))
            .min(budget / draw_bytes)
            .max(1);
        Ok(Chunks {
            n_draws,
            n_inputs,
            rows: rows as usize,
            draws: draws as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Layer;

    /// Parses and validates a shader with naga, as wgpu does before compiling it for a driver.
    fn validate(source: &str) {
        let module = wgpu::naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|error| panic!("{}", error.emit_to_string(source)));
        wgpu::naga::valid::Validator::new(
            wgpu::naga::valid::ValidationFlags::all(),
            wgpu::naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|error| panic!("{error:?}"));
    }

    #[test]
    fn shaders_are_valid_wgsl() {
        validate(LINEAR_SHADER);
        validate(ACTIVATION_SHADER);
    }

    #[test]
    fn the_plan_fuses_one_elementwise_activation_per_linear_layer() {
        let mlp = Mlp::new(vec![
            Layer::Activation(Activation::Tanh),
            Layer::Linear {
                input: 2,
                output: 3,
                bias: true,
            },
            Layer::Activation(Activation::Relu),
            Layer::Activation(Activation::Sigmoid),
            Layer::Linear {
                input: 3,
                output: 4,
                bias: false,
            },
            Layer::Activation(Activation::LogSoftmax),
        ])
        .unwrap_or_else(|error| panic!("{error}"));
        let stages = plan(&mlp.steps()[1..], mlp.input_width());
        let codes: Vec<(char, u32)> = stages
            .iter()
            .map(|stage| match stage {
                Stage::Linear { activation, .. } => ('L', *activation),
                Stage::Elementwise { code, .. } => ('E', *code),
                Stage::Rowwise { code, .. } => ('R', *code),
            })
            .collect();
        assert_eq!(codes, vec![('L', 1), ('E', 3), ('L', 0), ('R', 6)]);
        assert!(matches!(stages[0], Stage::Linear { first: true, .. }));
        assert!(matches!(stages[2], Stage::Linear { first: false, .. }));
    }

    #[test]
    fn chunks_respect_the_budget() {
        let mlp = Mlp::new(vec![Layer::Linear {
            input: 4,
            output: 10,
            bias: true,
        }])
        .unwrap_or_else(|error| panic!("{error}"));
        // Rows are 40 bytes and draws 200 bytes: a 400-byte budget holds 10 rows of one draw.
        let chunks = Chunks::new(&mlp, 7, 25, 400).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((chunks.rows, chunks.draws), (10, 1));
        let chunks = Chunks::new(&mlp, 7, 5, 400).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!((chunks.rows, chunks.draws), (5, 2));
        assert!(matches!(
            Chunks::new(&mlp, 7, 5, 100),
            Err(GpuError::TooLarge { .. })
        ));
    }
}
