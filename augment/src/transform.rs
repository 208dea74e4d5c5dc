//! The `Transform` trait that every composed augmentation implements, and the no-op `Identity`.

use crate::Image;
use rand::RngCore;

/// A random image transformation; every random draw comes from `rng`, so a seeded RNG gives the same bytes.
pub trait Transform: Send + Sync {
    /// Returns a transformed copy of `img`, drawing its randomness from `rng`.
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image;
}

impl<T: Transform + ?Sized> Transform for Box<T> {
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image {
        (**self).apply(img, rng)
    }
}

/// No augmentation: the original view used for evaluation; draws nothing from the RNG.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl Transform for Identity {
    fn apply(&self, img: &Image, _rng: &mut dyn RngCore) -> Image {
        img.clone()
    }
}
