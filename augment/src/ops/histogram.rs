//! Point ops driven by a per-channel lookup table: PIL `ImageOps.autocontrast`, `equalize`, `posterize`, `solarize`.

use super::{apply_luts, lut_of};
use crate::Image;

/// Per-channel 256-bin histograms.
fn histograms(img: &Image) -> Vec<[u32; 256]> {
    let mut hist = vec![[0u32; 256]; img.channels()];
    match hist.as_mut_slice() {
        [h] => img.as_raw().iter().for_each(|&v| h[v as usize] += 1),
        [r, g, b] => {
            for p in img.as_raw().chunks_exact(3) {
                r[p[0] as usize] += 1;
                g[p[1] as usize] += 1;
                b[p[2] as usize] += 1;
            }
        }
        _ => unreachable!("images have 1 or 3 channels"),
    }
    hist
}

/// Stretches each channel so its darkest value becomes 0 and its brightest 255 (PIL `ImageOps.autocontrast`, cutoff 0).
///
/// A constant channel is left as it is. Hand-written: imageproc's `stretch_contrast` rounds differently from PIL's
/// f64 `int(ix * scale + offset)`, which the LUT reproduces.
pub fn autocontrast(img: &Image) -> Image {
    let luts: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let mut lut = [0u8; 256];
            let lo = h.iter().position(|&n| n > 0);
            let hi = h.iter().rposition(|&n| n > 0);
            match (lo, hi) {
                (Some(lo), Some(hi)) if hi > lo => {
                    let scale = 255.0 / (hi - lo) as f64;
                    let offset = -(lo as f64) * scale;
                    for (ix, v) in lut.iter_mut().enumerate() {
                        *v = ((ix as f64 * scale + offset) as i32).clamp(0, 255) as u8;
                    }
                }
                _ => lut.iter_mut().enumerate().for_each(|(i, v)| *v = i as u8),
            }
            lut
        })
        .collect();
    apply_luts(img, &luts)
}

/// Equalizes each channel's histogram (PIL `ImageOps.equalize`, exact integer algorithm).
///
/// Hand-written: imageproc's `equalize_histogram` uses a plain cdf scaling, not PIL's step/2-biased LUT with
/// `step = (pixels - count of the last used value) / 255` (current Pillow; old releases divided by 256), and PIL
/// leaves a channel unchanged when that step rounds to 0.
pub fn equalize(img: &Image) -> Image {
    let luts: Vec<[u8; 256]> = histograms(img)
        .iter()
        .map(|h| {
            let mut lut = [0u8; 256];
            lut.iter_mut().enumerate().for_each(|(i, v)| *v = i as u8);
            let used: Vec<u64> = h.iter().filter(|&&n| n > 0).map(|&n| n as u64).collect();
            if used.len() <= 1 {
                return lut;
            }
            let total: u64 = used.iter().sum();
            let step = (total - used[used.len() - 1]) / 255;
            if step == 0 {
                return lut;
            }
            let mut n = step / 2;
            for (i, v) in lut.iter_mut().enumerate() {
                // PIL's `point` clips LUT entries to 0..=255; the last used value can reach 256.
                *v = (n / step).min(255) as u8;
                n += h[i] as u64;
            }
            lut
        })
        .collect();
    apply_luts(img, &luts)
}

/// Keeps the top `bits` bits of every byte (PIL `ImageOps.posterize`); `bits` above 8 count as 8.
pub fn posterize(img: &Image, bits: u8) -> Image {
    let bits = bits.min(8) as u32;
    let mask = (0xFFu32 << (8 - bits)) as u8;
    apply_luts(img, &lut_of(|v| v & mask))
}

/// Inverts every byte at or above `threshold` (PIL `ImageOps.solarize`); 256 or more changes nothing.
pub fn solarize(img: &Image, threshold: u32) -> Image {
    apply_luts(img, &lut_of(|v| if (v as u32) < threshold { v } else { 255 - v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32, data: Vec<u8>) -> Image {
        Image::from_raw(1, w, h, data).expect("test image shape")
    }

    #[test]
    fn solarize_inverts_exactly_the_pixels_at_or_above_threshold() {
        let img = gray(6, 1, vec![0, 100, 127, 128, 200, 255]);
        assert_eq!(solarize(&img, 128).as_raw(), &[0, 100, 127, 127, 55, 0]);
        assert_eq!(solarize(&img, 0).as_raw(), &[255, 155, 128, 127, 55, 0]);
        assert_eq!(solarize(&img, 256).as_raw(), img.as_raw());
    }

    #[test]
    fn posterize_keeps_the_top_bits() {
        let img = gray(4, 1, vec![0b1011_0111, 200, 100, 255]);
        assert_eq!(posterize(&img, 4).as_raw(), &[0b1011_0000, 192, 96, 240]);
        assert_eq!(posterize(&img, 1).as_raw(), &[128, 128, 0, 128]);
        assert_eq!(posterize(&img, 8).as_raw(), img.as_raw());
        assert_eq!(posterize(&img, 0).as_raw(), &[0, 0, 0, 0]);
    }

    #[test]
    fn autocontrast_maps_each_channel_min_max_to_0_255() {
        // R spans 10..=61 (scale 5), G spans 100..=185 (scale 3), B is already 0..=255, and values in between
        // follow PIL's `int(v * scale - lo * scale)`.
        let img = Image::from_raw(3, 3, 1, vec![10, 100, 0, 61, 185, 255, 20, 150, 77]).expect("test image shape");
        let out = autocontrast(&img);
        assert_eq!(out.as_raw(), &[0, 0, 0, 255, 255, 255, 50, 150, 77]);
        // A constant channel is left alone.
        let flat = gray(3, 1, vec![9, 9, 9]);
        assert_eq!(autocontrast(&flat).as_raw(), &[9, 9, 9]);
    }

    #[test]
    fn equalize_matches_pil_on_a_known_histogram() {
        // 1024 pixels: 512 of 50, 256 of 100, 256 of 200. PIL: step = (1024 - 256) / 255 = 3, n starts at 1;
        // lut[50] = 1 / 3 = 0, lut[100] = 513 / 3 = 171, lut[200] = 769 / 3 = 256 clipped to 255.
        let mut data = vec![50u8; 512];
        data.extend(vec![100u8; 256]);
        data.extend(vec![200u8; 256]);
        let out = equalize(&gray(32, 32, data));
        let raw = out.as_raw();
        assert!(raw[..512].iter().all(|&v| v == 0));
        assert!(raw[512..768].iter().all(|&v| v == 171));
        assert!(raw[768..].iter().all(|&v| v == 255));
        // 600 pixels: 255 of 10, 255 of 20, 90 of 30. step = 510 / 255 = 2 (Pillow before the fix: 510 / 256 = 1,
        // which would send 20 to 255); n starts at 1: lut[10] = 0, lut[20] = 256 / 2 = 128, lut[30] = 511 / 2 = 255.
        let mut data = vec![10u8; 255];
        data.extend(vec![20u8; 255]);
        data.extend(vec![30u8; 90]);
        let out = equalize(&gray(30, 20, data));
        assert_eq!((out.as_raw()[0], out.as_raw()[300], out.as_raw()[599]), (0, 128, 255));
    }

    #[test]
    fn equalize_flattens_a_skewed_histogram() {
        // A dark ramp: values 0..=64, 16 pixels each (1040 pixels). PIL: step = (1040 - 16) / 255 = 4, n starts at 2,
        // so lut[v] = (2 + 16 v) / 4 = 4 v (256 clipped to 255): the ramp spreads evenly over the whole range.
        let data: Vec<u8> = (0..1040u32).map(|i| (i / 16) as u8).collect();
        let out = equalize(&gray(40, 26, data.clone()));
        for (&v, &o) in data.iter().zip(out.as_raw()) {
            assert_eq!(o as u32, (4 * v as u32).min(255));
        }
        for q in [64u32, 128, 192] {
            let below = out.as_raw().iter().filter(|&&v| (v as u32) < q).count() as f64 / 1040.0;
            assert!((below - q as f64 / 256.0).abs() < 0.02, "cdf at {q} is {below}");
        }
    }

    #[test]
    fn equalize_keeps_tiny_or_single_valued_images() {
        let img = gray(4, 1, vec![1, 2, 3, 4]);
        assert_eq!(equalize(&img).as_raw(), img.as_raw());
        let flat = gray(32, 32, vec![77; 1024]);
        assert_eq!(equalize(&flat).as_raw(), flat.as_raw());
    }

    #[test]
    fn equalize_works_per_channel() {
        let mut data = Vec::new();
        for i in 0..1024u32 {
            let g = if i < 512 {
                50
            } else if i < 768 {
                100
            } else {
                200
            };
            data.extend_from_slice(&[g, 9, (i / 16) as u8]);
        }
        let img = Image::from_raw(3, 32, 32, data).expect("test image shape");
        let out = equalize(&img);
        let raw = out.as_raw();
        assert_eq!((raw[0], raw[1]), (0, 9));
        assert_eq!(raw[600 * 3], 171);
        assert_eq!(raw[1000 * 3], 255);
    }
}
