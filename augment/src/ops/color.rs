//! Colour-space ops of torchvision on PIL images: `rgb_to_grayscale` (RandomGrayscale) and `adjust_hue`.

use crate::image_data::luma;
use crate::Image;
use std::sync::OnceLock;

/// Replaces each RGB pixel by its PIL luminance in all three channels (torchvision `RandomGrayscale` keeps the
/// channel count); identity on a gray image.
///
/// Hand-written: image's `grayscale` uses Rec. 709 weights, PIL uses 299/587/114 (rounded fixed point).
pub fn grayscale(img: &Image) -> Image {
    match img {
        Image::Gray(_) => img.clone(),
        Image::Rgb(_) => {
            let src = img.as_raw();
            let mut out = Vec::with_capacity(src.len());
            for p in src.chunks_exact(3) {
                let l = luma(p[0], p[1], p[2]);
                out.extend_from_slice(&[l, l, l]);
            }
            img.same_kind(img.width(), img.height(), out)
        }
    }
}

/// Rotates hues by `factor` of a turn, `factor` in [-0.5, 0.5] (clamped), as torchvision's `adjust_hue` on PIL
/// images: 8-bit PIL HSV, hue byte shifted by `int8(factor * 255)` with wrap-around. Identity on a gray image.
///
/// Hand-written to follow PIL's 8-bit HSV conversion (its float/double mix included); neither image nor imageproc
/// has it. A shift that truncates to 0 returns the input unchanged instead of PIL's lossy HSV round trip.
pub fn hue_shift(img: &Image, factor: f32) -> Image {
    let delta = (factor.clamp(-0.5, 0.5) as f64 * 255.0) as i8 as u8;
    if img.is_gray() || delta == 0 {
        return img.clone();
    }
    let tables = hsv_tables();
    let src = img.as_raw();
    let mut out = vec![0u8; src.len()];
    for (p, o) in src.chunks_exact(3).zip(out.chunks_exact_mut(3)) {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        o.copy_from_slice(&hsv_to_rgb(h.wrapping_add(delta), s, v, tables));
    }
    img.same_kind(img.width(), img.height(), out)
}

/// PIL `rgb2hsv_row`: float components, double intermediates where the C code mixes in double literals.
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = (maxc - minc) as f32;
    let s = cr / maxc as f32;
    // Only the two ratios that the hue formula of the maximal channel reads (same values as PIL's three).
    let ratio = |c: u8| (maxc - c) as f32 / cr;
    let h: f32 = if r == maxc {
        ratio(b) - ratio(g)
    } else if g == maxc {
        (2.0 + ratio(r) as f64 - ratio(b) as f64) as f32
    } else {
        (4.0 + ratio(g) as f64 - ratio(r) as f64) as f32
    };
    // PIL's fmod(h / 6 + 1, 1) for h / 6 + 1 in [5/6, 2): subtracting 1 is exact there and avoids a libm call.
    let turns = h as f64 / 6.0 + 1.0;
    let h = (if turns >= 1.0 { turns - 1.0 } else { turns }) as f32;
    let uh = ((h as f64 * 255.0) as i32).clamp(0, 255) as u8;
    let us = ((s as f64 * 255.0) as i32).clamp(0, 255) as u8;
    (uh, us, maxc)
}

/// The parts of PIL's `hsv2rgb` that depend on one byte only: sector `i` and fraction `f` of each hue byte,
/// and `fs = s / 255` of each saturation byte.
struct HsvTables {
    sector: [(i32, f32); 256],
    fs: [f32; 256],
}

fn hsv_tables() -> &'static HsvTables {
    static TABLES: OnceLock<HsvTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = HsvTables { sector: [(0, 0.0); 256], fs: [0.0; 256] };
        for v in 0..256usize {
            let h6 = v as f64 * 6.0 / 255.0;
            // floor by integer conversion: h6 is non-negative.
            let i = h6 as i32;
            t.sector[v] = (i, (h6 - i as f64) as f32);
            t.fs[v] = (v as f64 / 255.0) as f32;
        }
        t
    })
}

/// PIL `hsv2rgb`, same float/double mix and C `round` (half away from zero).
fn hsv_to_rgb(h: u8, s: u8, v: u8, tables: &HsvTables) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let (i, f) = tables.sector[h as usize];
    let fs = tables.fs[s as usize];
    let vf = v as f64;
    // C round() of a non-negative value by integer conversion: same value, no libm call.
    let clip = |x: f64| {
        let t = x as i32;
        let rounded = if x - t as f64 >= 0.5 { t + 1 } else { t };
        rounded.clamp(0, 255) as u8
    };
    let p = clip(vf * (1.0 - fs as f64));
    let q = clip(vf * (1.0 - (fs * f) as f64));
    let t = clip(vf * (1.0 - fs as f64 * (1.0 - f as f64)));
    match i % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(w: u32, h: u32, data: Vec<u8>) -> Image {
        Image::from_raw(3, w, h, data).expect("test image shape")
    }

    #[test]
    fn grayscale_uses_299_587_114_weights() {
        let img = rgb(5, 1, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30]);
        let out = grayscale(&img);
        // 76.2 -> 76, 149.7 -> 150, 29.1 -> 29, 255, 18.6 -> 18 (PIL's fixed point rounds 0.299 r + 0.587 g + 0.114 b).
        assert_eq!(out.as_raw(), &[76, 76, 76, 150, 150, 150, 29, 29, 29, 255, 255, 255, 18, 18, 18]);
        let g = Image::from_raw(1, 2, 1, vec![4, 5]).expect("test image shape");
        assert_eq!(grayscale(&g), g);
    }

    #[test]
    fn hue_shift_by_a_third_turns_red_into_green_into_blue_into_red() {
        let img = rgb(3, 1, vec![255, 0, 0, 0, 255, 0, 0, 0, 255]);
        let out = hue_shift(&img, 1.0 / 3.0);
        assert_eq!(out.as_raw(), &[0, 255, 0, 0, 0, 255, 255, 0, 0]);
        // Backwards, torchvision's byte arithmetic wraps at 256, not 255: red's hue 0 - 85 becomes 171, one step
        // past blue (170), so red turns into (6, 0, 255) exactly as torchvision gives.
        let back = hue_shift(&img, -1.0 / 3.0);
        assert_eq!(back.as_raw(), &[6, 0, 255, 255, 0, 0, 0, 255, 0]);
    }

    #[test]
    fn hue_shift_by_zero_is_identity_and_gray_pixels_never_change() {
        let img = rgb(3, 1, vec![12, 200, 99, 7, 7, 7, 250, 3, 128]);
        assert_eq!(hue_shift(&img, 0.0), img);
        let out = hue_shift(&img, 0.25);
        assert_eq!(&out.as_raw()[3..6], &[7, 7, 7]);
        let g = Image::from_raw(1, 2, 1, vec![1, 2]).expect("test image shape");
        assert_eq!(hue_shift(&g, 0.3), g);
    }

    #[test]
    fn pil_hsv_round_trip_keeps_value_and_saturation_extremes() {
        // Orange (255, 128, 0): h = (1 - 127/255) / 6 = 0.0837 of a turn -> byte 21, full saturation and value.
        let (h, s, v) = rgb_to_hsv(255, 128, 0);
        assert_eq!((s, v), (255, 255));
        assert_eq!(h, 21);
        assert_eq!(hsv_to_rgb(h, s, v, hsv_tables()), [255, 126, 0]);
    }
}
