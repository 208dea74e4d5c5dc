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

/// The autodiff backend training runs on.
pub type Train = burn::backend::Autodiff<Inner>;

/// The device to run on (the first GPU with `cuda`).
pub fn device() -> burn::tensor::Device<Inner> {
    Default::default()
}
