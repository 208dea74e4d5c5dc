//! torchvision's `ColorJitter`: brightness, contrast, saturation and hue factors applied in a random order.

use crate::ops::{brightness, contrast, hue_shift, saturation};
use crate::rng::{below, uniform};
use crate::transform::Transform;
use crate::Image;
use rand::RngCore;

/// Random brightness/contrast/saturation factors uniform in `[max(0, 1 - v), 1 + v]` and a hue shift uniform in
/// `[-hue, hue]`, applied in a random order; a zero amount skips that adjustment.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorJitter {
    /// Brightness amount `v`.
    pub brightness: f32,
    /// Contrast amount `v`.
    pub contrast: f32,
    /// Saturation amount `v`.
    pub saturation: f32,
    /// Largest hue shift, in turns (at most 0.5).
    pub hue: f32,
}

impl ColorJitter {
    /// SimCLR's jitter of strength `s`: 0.8 s for brightness, contrast and saturation, 0.2 s for hue.
    pub fn with_strength(s: f32) -> Self {
        ColorJitter { brightness: 0.8 * s, contrast: 0.8 * s, saturation: 0.8 * s, hue: (0.2 * s).min(0.5) }
    }
}

impl Default for ColorJitter {
    fn default() -> Self {
        ColorJitter::with_strength(1.0)
    }
}

impl Transform for ColorJitter {
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image {
        let mut order = [0usize, 1, 2, 3];
        for i in (1..order.len()).rev() {
            order.swap(i, below(rng, i as u32 + 1) as usize);
        }
        let mut factor = |v: f32| (v > 0.0).then(|| uniform(rng, (1.0 - v as f64).max(0.0), 1.0 + v as f64) as f32);
        let b = factor(self.brightness);
        let c = factor(self.contrast);
        let s = factor(self.saturation);
        let hue = self.hue.min(0.5);
        let h = (hue > 0.0).then(|| uniform(rng, -hue as f64, hue as f64) as f32);
        let mut out = img.clone();
        for i in order {
            out = match (i, b, c, s, h) {
                (0, Some(b), ..) => brightness(&out, b),
                (1, _, Some(c), ..) => contrast(&out, c),
                (2, _, _, Some(s), _) => saturation(&out, s),
                (3, .., Some(h)) => hue_shift(&out, h),
                _ => out,
            };
        }
        out
    }
}
