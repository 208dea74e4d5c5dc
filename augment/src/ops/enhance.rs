//! PIL `ImageEnhance`: Color, Contrast, Brightness, Sharpness. Each blends the image with a "degenerate"
//! version: `out = blend(degenerate, image, factor)`, so factor 1 is the identity, 0 the degenerate image,
//! and factors above 1 extrapolate (clipped).

use super::{apply_luts, blend, blend_lut};
use crate::image_data::luma;
use crate::Image;

/// Blends toward the PIL grayscale of each pixel (PIL `ImageEnhance.Color`); identity on a gray image.
///
/// Hand-written: neither image nor imageproc blends toward PIL's 299/587/114 luminance with PIL's truncation.
pub fn color(img: &Image, factor: f32) -> Image {
    match img {
        Image::Gray(_) => img.clone(),
        Image::Rgb(_) => {
            let src = img.as_raw();
            let mut out = Vec::with_capacity(src.len());
            for p in src.chunks_exact(3) {
                let l = luma(p[0], p[1], p[2]);
                out.extend_from_slice(&[blend(l, p[0], factor), blend(l, p[1], factor), blend(l, p[2], factor)]);
            }
            img.same_kind(img.width(), img.height(), out)
        }
    }
}

/// Saturation as torchvision's `adjust_saturation` on PIL images computes it, which is PIL `ImageEnhance.Color`.
pub fn saturation(img: &Image, factor: f32) -> Image {
    color(img, factor)
}

/// Blends toward the mean gray level (PIL `ImageEnhance.Contrast`).
///
/// Hand-written: the degenerate is PIL's `int(mean(L) + 0.5)` of the luminance image, not imageproc's
/// or torchvision-tensor's float mean, and the blend truncates like PIL.
pub fn contrast(img: &Image, factor: f32) -> Image {
    let src = img.as_raw();
    let pixels = (img.width() as u64 * img.height() as u64).max(1);
    let sum: u64 = match img {
        Image::Gray(_) => src.iter().map(|&v| v as u64).sum(),
        Image::Rgb(_) => src.chunks_exact(3).map(|p| luma(p[0], p[1], p[2]) as u64).sum(),
    };
    let mean = (sum as f64 / pixels as f64 + 0.5) as u8;
    apply_luts(img, &[blend_lut(mean, factor)])
}

/// Scales every byte by `factor`, truncating and clipping like PIL (`ImageEnhance.Brightness`: blend with black).
///
/// Hand-written: image's `brighten` adds an offset instead of scaling.
pub fn brightness(img: &Image, factor: f32) -> Image {
    apply_luts(img, &[blend_lut(0, factor)])
}

/// Blends toward PIL's SMOOTH filter, kernel `[[1,1,1],[1,5,1],[1,1,1]] / 13`, border pixels kept
/// (PIL `ImageEnhance.Sharpness`).
///
/// Hand-written: imageproc's `filter3x3` also filters the border rows and columns, which PIL keeps as they are.
pub fn sharpness(img: &Image, factor: f32) -> Image {
    let (w, h, c) = (img.width() as usize, img.height() as usize, img.channels());
    let src = img.as_raw();
    let mut out = src.to_vec();
    if w < 3 || h < 3 {
        return img.same_kind(img.width(), img.height(), out);
    }
    let row = w * c;
    for y in 1..h - 1 {
        let (above, here, below) =
            (&src[(y - 1) * row..y * row], &src[y * row..(y + 1) * row], &src[(y + 1) * row..(y + 2) * row]);
        for i in c..row - c {
            let ring = above[i - c] as u32
                + above[i] as u32
                + above[i + c] as u32
                + here[i - c] as u32
                + here[i + c] as u32
                + below[i - c] as u32
                + below[i] as u32
                + below[i + c] as u32;
            // PIL sums in f32 with a +0.5 offset then truncates; sum/13 is never within 1/26 of a half, so
            // integer round-half-up division gives the same byte.
            let smooth = ((ring + 5 * here[i] as u32 + 6) / 13) as u8;
            out[y * row + i] = blend(smooth, here[i], factor);
        }
    }
    img.same_kind(img.width(), img.height(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32, data: Vec<u8>) -> Image {
        Image::from_raw(1, w, h, data).expect("test image shape")
    }

    fn rgb(w: u32, h: u32, data: Vec<u8>) -> Image {
        Image::from_raw(3, w, h, data).expect("test image shape")
    }

    #[test]
    fn factor_one_is_the_identity() {
        let img = rgb(3, 3, (0..27).map(|i| (i * 37 % 256) as u8).collect());
        for op in [color, contrast, brightness, sharpness, saturation] {
            assert_eq!(op(&img, 1.0), img);
        }
    }

    #[test]
    fn brightness_scales_with_pil_truncation_and_clipping() {
        let img = gray(5, 1, vec![255, 100, 1, 3, 200]);
        assert_eq!(brightness(&img, 0.5).as_raw(), &[127, 50, 0, 1, 100]);
        assert_eq!(brightness(&img, 1.5).as_raw(), &[255, 150, 1, 4, 255]);
        assert_eq!(brightness(&img, 0.0).as_raw(), &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn contrast_blends_with_the_rounded_luminance_mean() {
        // mean = (0 + 100 + 200 + 255) / 4 = 138.75 -> int(139.25) = 139.
        let img = gray(2, 2, vec![0, 100, 200, 255]);
        // 139 + 0.5 (v - 139), truncated: 69.5 -> 69, 119.5 -> 119, 169.5 -> 169, 197.
        assert_eq!(contrast(&img, 0.5).as_raw(), &[69, 119, 169, 197]);
        assert_eq!(contrast(&img, 0.0).as_raw(), &[139; 4]);
        // 139 + 2 (v - 139), clipped.
        assert_eq!(contrast(&img, 2.0).as_raw(), &[0, 61, 255, 255]);
        // RGB: the mean is over PIL luminance; L(255,0,0) = 76, L(0,0,255) = 29 -> mean 52.5 -> 53.
        let img = rgb(2, 1, vec![255, 0, 0, 0, 0, 255]);
        assert_eq!(contrast(&img, 0.0).as_raw(), &[53; 6]);
        // 53 + 0.5 (255 - 53) = 154, 53 + 0.5 (0 - 53) = 26.5 -> 26.
        assert_eq!(contrast(&img, 0.5).as_raw(), &[154, 26, 26, 26, 26, 154]);
    }

    #[test]
    fn color_blends_toward_pil_luminance() {
        let img = rgb(2, 1, vec![255, 0, 0, 10, 20, 30]);
        // L(255,0,0) = 76; L(10,20,30) = (10*19595 + 20*38470 + 30*7471 + 32768) >> 16 = 18.
        assert_eq!(color(&img, 0.0).as_raw(), &[76, 76, 76, 18, 18, 18]);
        // 76 + 0.5 * 179 = 165.5 -> 165, 76 - 38 = 38; 18 - 4 = 14, 18 + 1 = 19, 18 + 6 = 24.
        assert_eq!(color(&img, 0.5).as_raw(), &[165, 38, 38, 14, 19, 24]);
        // Extrapolation clips: 76 + 2 * 179 -> 255, 76 - 152 -> 0.
        assert_eq!(color(&img, 2.0).as_raw(), &[255, 0, 0, 2, 22, 42]);
        let g = gray(2, 1, vec![3, 250]);
        assert_eq!(color(&g, 0.0), g);
    }

    #[test]
    fn sharpness_blends_with_pil_smooth_and_keeps_borders() {
        // Centre 130 with zero neighbours: smooth = round(5 * 130 / 13) = 50.
        let mut data = vec![0u8; 9];
        data[4] = 130;
        let img = gray(3, 3, data);
        let mut expect = vec![0u8; 9];
        expect[4] = 50;
        assert_eq!(sharpness(&img, 0.0).as_raw(), expect.as_slice());
        // 50 + 2 * (130 - 50) = 210; the zero border stays zero (its degenerate is itself).
        expect[4] = 210;
        assert_eq!(sharpness(&img, 2.0).as_raw(), expect.as_slice());
        // A bright border pixel next to the centre: border kept, centre smooth = round((5*10 + 200) / 13) = 19.
        let img = gray(3, 3, vec![200, 0, 0, 0, 10, 0, 0, 0, 0]);
        assert_eq!(sharpness(&img, 0.0).as_raw(), &[200, 0, 0, 0, 19, 0, 0, 0, 0]);
        // Images without an interior are unchanged.
        let thin = gray(2, 5, (0..10).collect());
        assert_eq!(sharpness(&thin, 0.0), thin);
    }

    #[test]
    fn sharpness_filters_each_rgb_channel_separately() {
        let mut data = vec![0u8; 27];
        data[12..15].copy_from_slice(&[130, 13, 0]);
        let img = rgb(3, 3, data);
        let out = sharpness(&img, 0.0);
        assert_eq!(&out.as_raw()[12..15], &[50, 5, 0]);
    }
}
