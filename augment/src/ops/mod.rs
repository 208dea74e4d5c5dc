//! Single image operations with PIL / torchvision semantics: each takes an image and its magnitude (never an RNG).
//!
//! Ops return a new image of the same kind (gray stays gray, RGB stays RGB) and, except for the crops, the same size.

mod blur;
mod color;
mod crop;
mod cutout;
mod enhance;
mod geometric;
mod histogram;

pub use blur::{blur_kernel_size, gaussian_blur};
pub use color::{grayscale, hue_shift};
pub(crate) use crop::reflect_pad_crop_flip;
pub use crop::{crop, hflip, pad_reflect, reflect_pad_crop, resized_crop};
pub use cutout::{cutout, CUTOUT_FILL};
pub use enhance::{brightness, color, contrast, saturation, sharpness};
pub use geometric::{affine_nearest, rotate, shear_x, shear_y, translate_x, translate_y, AFFINE_FILL};
pub use histogram::{autocontrast, equalize, posterize, solarize};

use crate::Image;

/// Returns the image unchanged (RandAugment's Identity op).
pub fn identity(img: &Image) -> Image {
    img.clone()
}

/// Applies 256-entry lookup tables (PIL's `Image.point`): one per channel, or a single one for every byte.
pub(crate) fn apply_luts(img: &Image, luts: &[[u8; 256]]) -> Image {
    let src = img.as_raw();
    let out = match luts {
        [lut] => src.iter().map(|&v| lut[v as usize]).collect(),
        [r, g, b] => {
            let mut out = Vec::with_capacity(src.len());
            for p in src.chunks_exact(3) {
                out.extend_from_slice(&[r[p[0] as usize], g[p[1] as usize], b[p[2] as usize]]);
            }
            out
        }
        _ => unreachable!("callers pass one LUT, or one per channel of an RGB image"),
    };
    img.same_kind(img.width(), img.height(), out)
}

/// The lookup table of a byte function, applied to every channel alike.
pub(crate) fn lut_of(f: impl Fn(u8) -> u8) -> [[u8; 256]; 1] {
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = f(i as u8);
    }
    [lut]
}

/// One byte of PIL's `Image.blend(degenerate, image, alpha)`: f32 interpolation, truncated, clipped to 0..=255.
///
/// Rust's saturating float-to-int cast gives exactly PIL's two branches (interpolation truncates,
/// extrapolation clips then truncates).
#[inline]
pub(crate) fn blend(degenerate: u8, value: u8, alpha: f32) -> u8 {
    (degenerate as f32 + alpha * (value as i32 - degenerate as i32) as f32) as u8
}

/// [`blend`] of every byte value with a constant degenerate, as a lookup table.
pub(crate) fn blend_lut(degenerate: u8, alpha: f32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    for (v, out) in lut.iter_mut().enumerate() {
        *out = blend(degenerate, v as u8, alpha);
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_truncates_and_clips_like_pil() {
        assert_eq!(blend(0, 255, 0.5), 127);
        assert_eq!(blend(100, 51, 0.5), 75); // 100 - 24.5 = 75.5 -> 75
        assert_eq!(blend(0, 200, 1.5), 255);
        assert_eq!(blend(100, 0, 2.0), 0);
        assert_eq!(blend(10, 20, 0.0), 10);
        assert_eq!(blend(10, 20, 1.0), 20);
    }

    #[test]
    fn identity_returns_the_same_bytes() {
        let img = Image::from_raw(3, 2, 1, vec![1, 2, 3, 4, 5, 6]).expect("valid rgb");
        assert_eq!(identity(&img), img);
    }
}
