//! Batched forward passes of lifted networks for posterior prediction: many posterior weight
//! draws times many inputs, `[S, N, out]` in one call.
//!
//! The data in and out are plain: a multilayer perceptron (`Mlp`, a list of `Layer`s), the draws
//! as one flat vector of `S × n_weights` values (each draw every `Linear` layer's `W: [in, out]`,
//! row-major, then its bias, in layer order) and the inputs as `N × in` values, row-major. This
//! crate knows nothing of the runtime, the tape or the language.
//!
//! `Backend::new()` picks the device. Built with the `gpu` feature it looks for a wgpu adapter
//! (Vulkan, Metal, DX12 or OpenGL) and runs WGSL compute shaders in f32; without the feature,
//! or when no adapter is found, it runs on the CPU in f64 and `backend_name` and
//! `fallback_reason` say so.
//!
//! ```
//! use bdl_gpu::{Activation, Backend, Layer, Mlp};
//!
//! let mlp = Mlp::new(vec![
//!     Layer::Linear { input: 1, output: 2, bias: true },
//!     Layer::Activation(Activation::Relu),
//!     Layer::Linear { input: 2, output: 1, bias: false },
//! ])?;
//! // One draw: W1 = [1, -1], b1 = [0, 0], W2 = [2, 3].
//! let draws = [1.0, -1.0, 0.0, 0.0, 2.0, 3.0];
//! let inputs = [0.5, -2.0];
//! let predictions = Backend::cpu().forward_batch(&mlp, &draws, &inputs)?;
//! assert_eq!(predictions, vec![1.0, 6.0]);
//! # Ok::<(), bdl_gpu::GpuError>(())
//! ```

pub mod cpu;
mod error;
#[cfg(feature = "gpu")]
mod gpu;
mod network;

pub use error::GpuError;
pub use network::{Activation, Layer, LinearSlot, Mlp, Step};

/// How `Backend::with_settings` chooses a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSettings {
    /// Look for a GPU at all; when false the backend is the CPU.
    pub use_gpu: bool,
    /// Accept a software adapter (a driver that emulates a GPU on the CPU, such as lavapipe or
    /// llvmpipe). Off by default: such an adapter is slower than the f64 CPU path.
    pub allow_software_adapter: bool,
    /// The largest GPU buffer one call allocates, in bytes (further capped by the device's
    /// limits). Larger batches are cut into chunks of inputs and draws.
    pub max_buffer_bytes: u64,
}

impl Default for BackendSettings {
    fn default() -> Self {
        BackendSettings {
            use_gpu: true,
            allow_software_adapter: false,
            max_buffer_bytes: 256 << 20,
        }
    }
}

enum Device {
    Cpu,
    #[cfg(feature = "gpu")]
    Gpu(Box<gpu::GpuContext>),
}

/// Where forward passes run: a GPU through wgpu, or the CPU.
pub struct Backend {
    device: Device,
    name: String,
    fallback_reason: Option<String>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Backend")
            .field("name", &self.name)
            .field("fallback_reason", &self.fallback_reason)
            .finish()
    }
}

impl Default for Backend {
    fn default() -> Self {
        Backend::new()
    }
}

impl Backend {
    /// The GPU if one is usable (with the `gpu` feature), else the CPU; see
    /// `BackendSettings::default()`.
    pub fn new() -> Backend {
        Backend::with_settings(&BackendSettings::default())
    }

    /// The CPU backend: f64, draws spread over rayon's threads.
    pub fn cpu() -> Backend {
        Backend {
            device: Device::Cpu,
            name: "cpu (f64)".to_string(),
            fallback_reason: None,
        }
    }

    /// Chooses a device as `settings` say, falling back to the CPU when no GPU can be used.
    pub fn with_settings(settings: &BackendSettings) -> Backend {
        if !settings.use_gpu {
            return Backend::cpu();
        }
        match open_gpu(settings) {
            Ok(backend) => backend,
            Err(reason) => Backend {
                device: Device::Cpu,
                name: "cpu (f64; no GPU used)".to_string(),
                fallback_reason: Some(reason),
            },
        }
    }

    /// What runs the forward passes, in words: `cpu (f64)`, `cpu (f64; no GPU used)` after a
    /// fallback, or `gpu (f32): ` followed by the adapter's name, API and kind.
    pub fn backend_name(&self) -> &str {
        &self.name
    }

    /// Why a GPU was asked for but the CPU is used, when that happened.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Whether passes run on a GPU (in f32) rather than on the CPU (in f64).
    pub fn is_gpu(&self) -> bool {
        !matches!(self.device, Device::Cpu)
    }

    /// Runs the network for every draw on every input and returns `[n_draws, n_inputs,
    /// output_width]`, row-major. `draws` holds `n_draws × mlp.n_weights()` values and `inputs`
    /// holds `n_inputs × mlp.input_width()`. Lengths that are not whole draws or rows and
    /// non-finite values are errors; so are driver failures on the GPU, after which the caller
    /// may retry on `Backend::cpu()`.
    pub fn forward_batch(
        &self,
        mlp: &Mlp,
        draws: &[f64],
        inputs: &[f64],
    ) -> Result<Vec<f64>, GpuError> {
        match &self.device {
            Device::Cpu => cpu::forward_batch(mlp, draws, inputs),
            #[cfg(feature = "gpu")]
            Device::Gpu(context) => context.forward_batch(mlp, draws, inputs),
        }
    }
}

#[cfg(feature = "gpu")]
fn open_gpu(settings: &BackendSettings) -> Result<Backend, String> {
    let context = gpu::GpuContext::open(settings)?;
    Ok(Backend {
        name: context.description().to_string(),
        device: Device::Gpu(Box::new(context)),
        fallback_reason: None,
    })
}

#[cfg(not(feature = "gpu"))]
fn open_gpu(_settings: &BackendSettings) -> Result<Backend, String> {
    Err("bdl was built without the `gpu` feature".to_string())
}
