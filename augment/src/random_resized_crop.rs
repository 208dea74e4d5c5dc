//! torchvision's `RandomResizedCrop`: a random box of random area and aspect ratio, resized back (bilinear).

use crate::ops::resized_crop;
use crate::rng::{below, uniform};
use crate::transform::Transform;
use crate::Image;
use rand::RngCore;

/// Crops a box covering a uniform `scale` fraction of the area with a log-uniform `ratio` (width / height),
/// retrying 10 times before falling back to a centred crop, and resizes it to the input size.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Range of the box area as a fraction of the image area.
    pub scale: (f64, f64),
    /// Range of the box aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        RandomResizedCrop { scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }
    }
}

impl RandomResizedCrop {
    /// Draws `(left, top, width, height)` of a box inside a `width x height` image, as torchvision's `get_params`.
    pub fn sample_box(&self, width: u32, height: u32, rng: &mut dyn RngCore) -> (u32, u32, u32, u32) {
        let area = width as f64 * height as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * uniform(rng, self.scale.0, self.scale.1);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            // Python's round() is half to even.
            let w = (target_area * aspect).sqrt().round_ties_even();
            let h = (target_area / aspect).sqrt().round_ties_even();
            if w > 0.0 && w <= width as f64 && h > 0.0 && h <= height as f64 {
                let (w, h) = (w as u32, h as u32);
                let top = below(rng, height - h + 1);
                let left = below(rng, width - w + 1);
                return (left, top, w, h);
            }
        }
        // Fallback: the largest centred box whose aspect ratio is within range.
        let in_ratio = width as f64 / height as f64;
        let (lo, hi) = (self.ratio.0.min(self.ratio.1), self.ratio.0.max(self.ratio.1));
        let (w, h) = if in_ratio < lo {
            (width, ((width as f64 / lo).round_ties_even() as u32).min(height))
        } else if in_ratio > hi {
            (((height as f64 * hi).round_ties_even() as u32).min(width), height)
        } else {
            (width, height)
        };
        ((width - w) / 2, (height - h) / 2, w, h)
    }
}

impl Transform for RandomResizedCrop {
    fn apply(&self, img: &Image, rng: &mut dyn RngCore) -> Image {
        let (w, h) = (img.width(), img.height());
        if w == 0 || h == 0 {
            return img.clone();
        }
        let (left, top, bw, bh) = self.sample_box(w, h, rng);
        resized_crop(img, left, top, bw, bh, w, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn boxes_respect_scale_ratio_and_bounds() {
        let rrc = RandomResizedCrop::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut areas = Vec::new();
        for _ in 0..500 {
            let (l, t, w, h) = rrc.sample_box(32, 32, &mut rng);
            assert!(w >= 1 && h >= 1 && l + w <= 32 && t + h <= 32);
            let frac = (w * h) as f64 / 1024.0;
            // Rounding each side to whole pixels moves area and ratio a little beyond the continuous ranges.
            assert!((0.05..=1.0).contains(&frac), "area fraction {frac}");
            let ratio = w as f64 / h as f64;
            assert!((0.6..=1.7).contains(&ratio), "ratio {ratio}");
            areas.push(frac);
        }
        let mean = areas.iter().sum::<f64>() / areas.len() as f64;
        assert!((0.4..0.65).contains(&mean), "mean area fraction {mean}");
    }

    #[test]
    fn impossible_ranges_fall_back_to_the_centred_crop() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let never = RandomResizedCrop { scale: (2.0, 3.0), ratio: (3.0 / 4.0, 4.0 / 3.0) };
        assert_eq!(never.sample_box(32, 32, &mut rng), (0, 0, 32, 32));
        // A wide image with a ratio capped at 4/3: height kept, width round(10 * 4/3) = 13, centred.
        assert_eq!(never.sample_box(40, 10, &mut rng), (13, 0, 13, 10));
        // A tall image: width kept, height round(10 / (3/4)) = 13.
        assert_eq!(never.sample_box(10, 40, &mut rng), (0, 13, 10, 13));
    }
}
