//! The backend a build trains on, chosen by cargo feature: `cuda` (burn-cuda), else `ndarray`, else `flex`
//! (the default: burn's fast CPU backend with SIMD and rayon).

#[cfg(feature = "cuda")]
mod chosen {
    /// The tensor backend.
    pub type Inner = burn::backend::Cuda;
    /// Its name, for reports.
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "ndarray", not(feature = "cuda")))]
mod chosen {
    /// The tensor backend.
    pub type Inner = burn::backend::NdArray;
    /// Its name, for reports.
    pub const NAME: &str = "ndarray";
}

#[cfg(all(not(feature = "ndarray"), not(feature = "cuda")))]
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

/// Fails with a clear error when the backend cannot run on this machine: a `cuda` build without a usable NVIDIA
/// driver otherwise dies in a panic on a worker thread followed by an unrelated `RecvError` panic.
pub fn check_device() -> anyhow::Result<()> {
    #[cfg(feature = "cuda")]
    {
        use std::sync::{Arc, Mutex};
        // The runtime fails on its own device thread, so its message is caught by a hook, not by catch_unwind.
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
        let probe = std::panic::catch_unwind(|| {
            burn::tensor::Tensor::<Inner, 1>::zeros([1], &device()).into_data();
        });
        std::panic::set_hook(previous);
        if probe.is_err() {
            let text = first.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
            // cudarc appends every library name it tried; the first sentence says what is missing.
            let cause = text.split(" - searched").next().unwrap_or_default();
            anyhow::bail!(
                "this burnish was built with the cuda backend, which cannot start here: {cause}. It needs an NVIDIA GPU \
                 and its driver; build without `--features cuda` to run on the CPU"
            );
        }
    }
    Ok(())
}
