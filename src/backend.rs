//! The backend a build trains on, chosen by cargo feature: `cuda` (burn-cuda), else `wgpu` (Burn's wgpu backend on
//! Vulkan), else `ndarray`, else `flex` (the default: burn's fast CPU backend with SIMD and rayon).

#[cfg(feature = "cuda")]
mod chosen {
    /// The tensor backend: burn-cuda's (`burn::backend::Cuda`) without burn-fusion, whose 0.21 stream registry breaks
    /// when tensors cross threads as `--devices` peers' do (docs/burn.md, "The wgpu backend").
    pub type Inner = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
    /// Its name, for reports.
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    /// The tensor backend: Burn's wgpu backend with Vulkan's SPIR-V kernels (`burn::backend::Vulkan`) without
    /// burn-fusion, whose 0.21 stream registry breaks when tensors cross threads as `--devices` peers' do
    /// (docs/burn.md, "The wgpu backend").
    pub type Inner = burn::backend::wgpu::CubeBackend<burn::backend::wgpu::WgpuRuntime, f32, i32, u8>;
    /// Its name, for reports.
    pub const NAME: &str = "wgpu";
}

#[cfg(all(feature = "ndarray", not(feature = "cuda"), not(feature = "wgpu")))]
mod chosen {
    /// The tensor backend.
    pub type Inner = burn::backend::NdArray;
    /// Its name, for reports.
    pub const NAME: &str = "ndarray";
}

#[cfg(all(not(feature = "ndarray"), not(feature = "cuda"), not(feature = "wgpu")))]
mod chosen {
    /// The tensor backend.
    pub type Inner = burn::backend::Flex;
    /// Its name, for reports.
    pub const NAME: &str = "flex";
}

pub use chosen::{Inner, NAME};

use burn::tensor::backend::AutodiffBackend;

use crate::kernels::Kernels;

/// An autodiff backend burnish trains on: it and the backend it wraps (where evaluation runs) both have the fused
/// kernels of [`crate::kernels`] that the models call.
pub trait TrainBackend: AutodiffBackend<InnerBackend: Kernels> + Kernels {}

impl<B: AutodiffBackend<InnerBackend: Kernels> + Kernels> TrainBackend for B {}

/// The autodiff backend training runs on.
pub type Train = burn::backend::Autodiff<Inner>;

/// The device to run on (the first GPU with `cuda`).
pub fn device() -> burn::tensor::Device<Inner> {
    Default::default()
}

/// What the run trains on, for the start line of `train`: the backend and, for wgpu, the adapter it found.
pub fn describe() -> String {
    match ADAPTER.get() {
        Some(adapter) => format!("{NAME} ({adapter})"),
        None => NAME.to_string(),
    }
}

/// The wgpu adapter [`check_device`] set the runtime up on: its name and graphics API.
static ADAPTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Fails with a clear error when the backend cannot run on this machine: a GPU build without a usable driver
/// otherwise dies in a panic on a worker thread followed by an unrelated panic. The wgpu build sets its runtime up on
/// Vulkan here and keeps the adapter's name for [`describe`].
pub fn check_device() -> anyhow::Result<()> {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    {
        let probe = first_panic(|| {
            #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
            {
                use burn::backend::wgpu::{graphics::Vulkan, init_setup, RuntimeOptions};
                let setup = init_setup::<Vulkan>(&device(), RuntimeOptions::default());
                let info = setup.adapter.get_info();
                let _ = ADAPTER.set(format!("{}, {:?}", info.name, info.backend));
            }
            burn::tensor::Tensor::<Inner, 1>::zeros([1], &device()).into_data();
        });
        if let Err(text) = probe {
            #[cfg(feature = "cuda")]
            {
                // cudarc appends every library name it tried; the first sentence says what is missing.
                let cause = text.split(" - searched").next().unwrap_or_default();
                anyhow::bail!(
                    "this burnish was built with the cuda backend, which cannot start here: {cause}. It needs an \
                     NVIDIA GPU and its driver; build without `--features cuda` to run on the CPU"
                );
            }
            #[cfg(not(feature = "cuda"))]
            anyhow::bail!(
                "this burnish was built with the wgpu backend, which cannot start here: {text}. It needs a Vulkan \
                 driver (a GPU's, or Mesa's software one: `apt install mesa-vulkan-drivers`); build without \
                 `--features wgpu` to run on the CPU"
            );
        }
    }
    Ok(())
}

/// Runs `f`, returning the message of the first panic it causes on any thread (GPU runtimes fail on their own
/// device threads, so a hook sees the message where `catch_unwind` only sees that the call failed).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn first_panic(f: impl FnOnce() + std::panic::UnwindSafe) -> Result<(), String> {
    use std::sync::{Arc, Mutex};
    let first = Arc::new(Mutex::new(None::<String>));
    let seen = first.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        seen.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(text);
    }));
    let probe = std::panic::catch_unwind(f);
    std::panic::set_hook(previous);
    match probe {
        Ok(()) => Ok(()),
        Err(_) => Err(first.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default()),
    }
}
