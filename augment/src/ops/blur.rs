//! Gaussian blur as torchvision's `gaussian_blur` (the SimCLR augmentation).

use super::crop::reflect;
use crate::Image;

/// SimCLR's kernel size for an image side: 10 % of the side, made odd, at least 3 (3 at 28 and 32 px, 23 at 224).
pub fn blur_kernel_size(side: u32) -> u32 {
    ((side / 10) | 1).max(3)
}

/// Blurs with an odd `kernel_size` (an even size is bumped to the next odd) Gaussian of std `sigma`, reflect padding,
/// rounding half to even, as torchvision's `gaussian_blur` on a uint8 image.
///
/// Hand-written: imageproc's `gaussian_blur_f32` picks its own kernel size from sigma and clamps at the borders,
/// torchvision uses the given kernel size and reflect padding. Done as two 1-D passes in f32 (torchvision convolves
/// with the outer-product 2-D kernel; the results agree up to float rounding).
pub fn gaussian_blur(img: &Image, kernel_size: u32, sigma: f32) -> Image {
    let (w, h, c) = (img.width() as usize, img.height() as usize, img.channels());
    if w == 0 || h == 0 || sigma <= 0.0 || sigma.is_nan() {
        return img.clone();
    }
    let k = (kernel_size | 1) as usize;
    let half = (k / 2) as i64;
    let ksize_half = (k - 1) as f32 * 0.5;
    let mut kernel: Vec<f32> = (0..k)
        .map(|i| {
            let x = -ksize_half + i as f32;
            (-0.5 * (x / sigma).powi(2)).exp()
        })
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|v| *v /= total);

    let src = img.as_raw();
    let row_len = w * c;
    // Horizontal pass into f32, then vertical pass, both with reflected taps.
    let taps: Vec<usize> = (0..w).flat_map(|x| (0..k).map(move |t| reflect(x as i64 + t as i64 - half, w))).collect();
    let mut tmp = vec![0f32; w * h * c];
    for (srow, trow) in src.chunks_exact(row_len).zip(tmp.chunks_exact_mut(row_len)) {
        for (x, tpx) in trow.chunks_exact_mut(c).enumerate() {
            for (&sx, &kv) in taps[x * k..(x + 1) * k].iter().zip(&kernel) {
                for (t, &v) in tpx.iter_mut().zip(&srow[sx * c..(sx + 1) * c]) {
                    *t += v as f32 * kv;
                }
            }
        }
    }
    let mut out = vec![0u8; w * h * c];
    let mut acc = vec![0f32; row_len];
    for (y, orow) in out.chunks_exact_mut(row_len).enumerate() {
        acc.fill(0.0);
        for (t, &kv) in kernel.iter().enumerate() {
            let sy = reflect(y as i64 + t as i64 - half, h);
            for (a, &v) in acc.iter_mut().zip(&tmp[sy * row_len..(sy + 1) * row_len]) {
                *a += v * kv;
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            // Adding and removing 2^23 rounds half to even (torch.round) for 0 <= a < 2^23 without a libm call.
            *o = ((a.max(0.0) + 8_388_608.0) - 8_388_608.0).min(255.0) as u8;
        }
    }
    img.same_kind(img.width(), img.height(), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_size_is_a_tenth_of_the_side_and_odd() {
        assert_eq!(blur_kernel_size(32), 3);
        assert_eq!(blur_kernel_size(28), 3);
        assert_eq!(blur_kernel_size(96), 9);
        assert_eq!(blur_kernel_size(224), 23);
        assert_eq!(blur_kernel_size(4), 3);
    }

    #[test]
    fn impulse_response_matches_the_torchvision_kernel() {
        // k = 3, sigma = 1: weights (e^-0.5, 1, e^-0.5) / sum = (0.27407, 0.45186, 0.27407).
        // 255 * 0.45186^2 = 52.07 -> 52; 255 * 0.45186 * 0.27407 = 31.58 -> 32; 255 * 0.27407^2 = 19.15 -> 19.
        let mut data = vec![0u8; 25];
        data[12] = 255;
        let img = Image::from_raw(1, 5, 5, data).expect("test image shape");
        let out = gaussian_blur(&img, 3, 1.0);
        let expect = [
            0, 0, 0, 0, 0, //
            0, 19, 32, 19, 0, //
            0, 32, 52, 32, 0, //
            0, 19, 32, 19, 0, //
            0, 0, 0, 0, 0,
        ];
        assert_eq!(out.as_raw(), &expect);
    }

    #[test]
    fn borders_are_reflected_not_clamped() {
        // An impulse in the corner: reflection puts a zero (the neighbour) outside, so the corner keeps only
        // 0.45186^2 of its value (52); clamping would keep (0.27407 + 0.45186)^2 of it (134).
        let mut data = vec![0u8; 16];
        data[0] = 255;
        let img = Image::from_raw(1, 4, 4, data).expect("test image shape");
        let out = gaussian_blur(&img, 3, 1.0);
        assert_eq!(&out.as_raw()[..2], &[52, 32]);
        assert_eq!(out.as_raw()[4], 32);
    }

    #[test]
    fn constant_images_stay_constant() {
        let img = Image::from_raw(3, 6, 5, vec![77; 90]).expect("test image shape");
        assert_eq!(gaussian_blur(&img, 5, 2.0), img);
    }
}
