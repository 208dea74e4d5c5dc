//! SimCLR's augmentation: random resized crop, flip, colour jitter, grayscale and (optional) blur.

use crate::color_jitter::ColorJitter;
use crate::ops::{blur_kernel_size, gaussian_blur, grayscale, hflip};
use crate::random_resized_crop::RandomResizedCrop;
use crate::rng::{coin, uniform};
use crate::transform::Transform;
use crate::Image;
use rand::RngCore;

/// SimCLR's view: `RandomResizedCrop` to the input size, horizontal flip, colour jitter of strength `strength`
/// applied with `jitter_probability`, grayscale with `grayscale_probability`, and, when `blur` is set, a Gaussian
/// blur (kernel 10 % of the side, odd) with sigma uniform in `blur_sigma`, applied with `blur_probability`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimClr {
    /// The random crop, resized back to the input size.
    pub crop: RandomResizedCrop,
    /// Probability of mirroring left-right.
    pub flip_probability: f64,
    /// Colour jitter strength `s` (brightness, contrast, saturation 0.8 s; hue 0.2 s).
    pub strength: f32,
    /// Probability that the colour jitter is applied.
    pub jitter_probability: f64,
    /// Probability of converting to grayscale (kept as three equal channels on RGB).
    pub grayscale_probability: f64,
    /// Whether the Gaussian blur step runs at all (SimCLR leaves it out at 32 px).
    pub blur: bool,
    /// Probability of blurring when `blur` is set.
    pub blur_probability: f64,
    /// Range of the blur's sigma, in pixels.
    pub blur_sigma: (f32, f32),
}

impl Default for SimClr {
    fn default() -> Self {
        SimClr {
            crop: RandomResizedCrop::default(),
            flip_probability: 0.5,
            strength: 1.0,
            jitter_probability: 0.8,
            grayscale_probability: 0.2,
            blur: false,
            blur_probability: 0.5,
            blur_sigma: (0.1, 2.0),
        }
    }
}

impl Transform for SimClr {
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image {
        let mut out = self.crop.apply(img, rng);
        if coin(rng, self.flip_probability) {
            out = hflip(&out);
        }
        if coin(rng, self.jitter_probability) {
            out = ColorJitter::with_strength(self.strength).apply(&out, rng);
        }
        if coin(rng, self.grayscale_probability) {
            out = grayscale(&out);
        }
        if self.blur && coin(rng, self.blur_probability) {
            let sigma = uniform(rng, self.blur_sigma.0 as f64, self.blur_sigma.1 as f64) as f32;
            let kernel = blur_kernel_size(out.width().min(out.height()));
            out = gaussian_blur(&out, kernel, sigma);
        }
        out
    }
}
