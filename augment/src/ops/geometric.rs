//! Affine ops with PIL's nearest-neighbour `Image.transform(AFFINE)` sampling: rotate, shear, translate.
//!
//! Hand-written: imageproc's warps sample at integer coordinates and round, while PIL maps each output pixel
//! centre `(x + 0.5, y + 0.5)` through the matrix in 16.16 fixed point and floors, which decides which source
//! pixel a sheared or rotated pixel comes from.

use crate::Image;

/// Fill value for pixels that an affine op brings in from outside the image: 128, the gray that TF RandAugment
/// (the FixMatch/UDA reference) uses, instead of PIL's default black.
pub const AFFINE_FILL: u8 = 128;

/// Resamples with PIL's affine `matrix` `[a, b, c, d, e, f]`, which maps each output pixel centre `(x + 0.5, y + 0.5)`
/// to the input point `(a x + b y + c, d x + e y + f)`; nearest neighbour, `fill` outside the input.
pub fn affine_nearest(img: &Image, matrix: [f64; 6], fill: u8) -> Image {
    let (w, h, c) = (img.width() as usize, img.height() as usize, img.channels());
    let src = img.as_raw();
    let mut out = vec![fill; src.len()];
    let a = matrix;
    let mut put = |x: usize, y: usize, xin: i64, yin: i64| {
        if xin >= 0 && (xin as usize) < w && yin >= 0 && (yin as usize) < h {
            let (s, d) = (yin as usize * w + xin as usize, y * w + x);
            if c == 1 {
                out[d] = src[s];
            } else {
                out[3 * d..3 * d + 3].copy_from_slice(&src[3 * s..3 * s + 3]);
            }
        }
    };
    // PIL's COORD: negative coordinates are outside, others truncate.
    let coord = |v: f64| if v < 0.0 { -1 } else { v as i64 };
    let fits =
        |x: f64, y: f64| (x * a[0] + y * a[1] + a[2]).abs() < 32768.0 && (x * a[3] + y * a[4] + a[5]).abs() < 32768.0;
    let (wf, hf) = (w as f64, h as f64);
    if a[1] == 0.0 && a[3] == 0.0 {
        // PIL ImagingScaleAffine: separable, positions accumulated in double.
        let mut xs = Vec::with_capacity(w);
        let mut xo = a[2] + a[0] * 0.5;
        for _ in 0..w {
            xs.push(coord(xo));
            xo += a[0];
        }
        let mut yo = a[5] + a[4] * 0.5;
        for y in 0..h {
            let yin = coord(yo);
            for (x, &xin) in xs.iter().enumerate() {
                put(x, y, xin, yin);
            }
            yo += a[4];
        }
    } else if fits(0.0, 0.0) && fits(wf, hf) && fits(0.0, hf) && fits(wf, 0.0) {
        // PIL affine_fixed: 16.16 fixed point, incremental.
        let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i64;
        let (a0, a1, a3, a4) = (fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4]));
        let mut a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
        let mut a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
        for y in 0..h {
            let (mut xx, mut yy) = (a2, a5);
            for x in 0..w {
                put(x, y, xx >> 16, yy >> 16);
                xx += a0;
                yy += a3;
            }
            a2 += a1;
            a5 += a4;
        }
    } else {
        // PIL's double-precision fallback for coordinates beyond the fixed-point range.
        let mut xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
        let mut yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
        for y in 0..h {
            let (mut xx, mut yy) = (xo, yo);
            for x in 0..w {
                put(x, y, coord(xx), coord(yy));
                xx += a[0];
                yy += a[3];
            }
            xo += a[1];
            yo += a[4];
        }
    }
    img.same_kind(img.width(), img.height(), out)
}

/// Copies pixels through an index map: output pixel `(x, y)` takes input pixel `map(x, y)`; the output is `w x h`.
fn remap(img: &Image, w: usize, h: usize, map: impl Fn(usize, usize) -> (usize, usize)) -> Image {
    let (iw, c) = (img.width() as usize, img.channels());
    let src = img.as_raw();
    let mut out = vec![0u8; w * h * c];
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = map(x, y);
            let (s, d) = (sy * iw + sx, y * w + x);
            if c == 1 {
                out[d] = src[s];
            } else {
                out[3 * d..3 * d + 3].copy_from_slice(&src[3 * s..3 * s + 3]);
            }
        }
    }
    img.same_kind(w as u32, h as u32, out)
}

/// Rounds to 15 decimals, as PIL's `rotate` does with its matrix entries (so cos 90° is exactly 0).
fn round15(v: f64) -> f64 {
    (v * 1e15).round() / 1e15
}

/// Rotates counter-clockwise by `degrees` about the image centre, same size, nearest neighbour, fill 128
/// (PIL `Image.rotate`, including its exact 90/180/270 transposes).
pub fn rotate(img: &Image, degrees: f64) -> Image {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let angle = degrees.rem_euclid(360.0);
    if angle == 0.0 || w == 0 || h == 0 {
        return img.clone();
    }
    if angle == 180.0 {
        return remap(img, w, h, |x, y| (w - 1 - x, h - 1 - y));
    }
    if w == h && angle == 90.0 {
        return remap(img, w, h, |x, y| (w - 1 - y, x));
    }
    if w == h && angle == 270.0 {
        return remap(img, w, h, |x, y| (y, h - 1 - x));
    }
    let rad = -angle.to_radians();
    let (cos, sin) = (round15(rad.cos()), round15(rad.sin()));
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let mut m = [cos, sin, 0.0, -sin, cos, 0.0];
    m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
    m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
    affine_nearest(img, m, AFFINE_FILL)
}

/// Shears horizontally: output pixel centre `(x, y)` samples input `(x + s y, y)`, origin at the top-left corner,
/// fill 128 (PIL `transform(AFFINE, (1, s, 0, 0, 1, 0))`, as FixMatch's ShearX).
pub fn shear_x(img: &Image, s: f64) -> Image {
    affine_nearest(img, [1.0, s, 0.0, 0.0, 1.0, 0.0], AFFINE_FILL)
}

/// Shears vertically: output pixel centre `(x, y)` samples input `(x, y + s x)`, fill 128 (FixMatch's ShearY).
pub fn shear_y(img: &Image, s: f64) -> Image {
    affine_nearest(img, [1.0, 0.0, 0.0, s, 1.0, 0.0], AFFINE_FILL)
}

/// Moves the content `px` columns right (left when negative), filling the uncovered columns with 128.
pub fn translate_x(img: &Image, px: i32) -> Image {
    affine_nearest(img, [1.0, 0.0, -(px as f64), 0.0, 1.0, 0.0], AFFINE_FILL)
}

/// Moves the content `px` rows down (up when negative), filling the uncovered rows with 128.
pub fn translate_y(img: &Image, px: i32) -> Image {
    affine_nearest(img, [1.0, 0.0, 0.0, 0.0, 1.0, -(px as f64)], AFFINE_FILL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::hflip;

    fn gray(w: u32, h: u32, data: Vec<u8>) -> Image {
        Image::from_raw(1, w, h, data).expect("test image shape")
    }

    fn ramp(w: u32, h: u32) -> Image {
        gray(w, h, (0..w * h).map(|i| i as u8).collect())
    }

    fn px(img: &Image, x: u32, y: u32) -> u8 {
        img.as_raw()[(y * img.width() + x) as usize]
    }

    /// Transpose then vertical flip, written independently of `rotate`.
    fn transpose_then_vflip(img: &Image) -> Image {
        let n = img.width();
        let t: Vec<u8> = (0..n * n).map(|i| px(img, i / n, i % n)).collect();
        let t = gray(n, n, t);
        gray(n, n, (0..n * n).map(|i| px(&t, i % n, n - 1 - i / n)).collect())
    }

    #[test]
    fn rotate_90_is_transpose_plus_flip() {
        for n in [4, 5] {
            let img = ramp(n, n);
            assert_eq!(rotate(&img, 90.0), transpose_then_vflip(&img));
            // Counter-clockwise: the top-right pixel lands top-left.
            assert_eq!(px(&rotate(&img, 90.0), 0, 0), px(&img, n - 1, 0));
            assert_eq!(rotate(&rotate(&img, 90.0), -90.0), img);
            assert_eq!(rotate(&img, 180.0), rotate(&rotate(&img, 90.0), 90.0));
            assert_eq!(rotate(&img, 360.0), img);
        }
    }

    #[test]
    fn rotate_90_through_the_affine_path_agrees_with_the_transpose() {
        // The general fixed-point path (used by PIL for non-square images) gives the same pixels on a square one.
        let img = ramp(6, 6);
        let m = [0.0, -1.0, 6.0, 1.0, 0.0, 0.0];
        assert_eq!(affine_nearest(&img, m, AFFINE_FILL), rotate(&img, 90.0));
    }

    #[test]
    fn rotate_non_square_matches_pil() {
        // Expected bytes are Pillow 13's `Image.fromarray(ramp).rotate(angle, fillcolor=128)` on a 6x4 ramp.
        // At 90 degrees: x_in = floor(4.5 - y), y_in = floor(x - 0.5), so columns 0 and 5 fall outside.
        let img = ramp(6, 4);
        #[rustfmt::skip]
        let r90 = [
            128, 4, 10, 16, 22, 128,
            128, 3, 9, 15, 21, 128,
            128, 2, 8, 14, 20, 128,
            128, 1, 7, 13, 19, 128,
        ];
        assert_eq!(rotate(&img, 90.0).as_raw(), &r90);
        #[rustfmt::skip]
        let r30 = [
            128, 128, 3, 4, 11, 11,
            1, 1, 8, 9, 16, 17,
            6, 7, 14, 15, 22, 22,
            12, 12, 19, 20, 128, 128,
        ];
        assert_eq!(rotate(&img, 30.0).as_raw(), &r30);
    }

    #[test]
    fn rotate_45_fills_corners_with_128_and_keeps_the_centre() {
        let img = gray(4, 4, vec![7; 16]);
        let out = rotate(&img, 45.0);
        for (x, y) in [(0, 0), (3, 0), (0, 3), (3, 3)] {
            assert_eq!(px(&out, x, y), AFFINE_FILL);
        }
        for (x, y) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            assert_eq!(px(&out, x, y), 7);
        }
    }

    #[test]
    fn translate_shifts_exactly_k_columns_and_rows() {
        let img = ramp(5, 3);
        let right = translate_x(&img, 2);
        let left = translate_x(&img, -2);
        let down = translate_y(&img, 1);
        for y in 0..3 {
            for x in 0..5 {
                let r = if x >= 2 { px(&img, x - 2, y) } else { AFFINE_FILL };
                assert_eq!(px(&right, x, y), r);
                let l = if x + 2 < 5 { px(&img, x + 2, y) } else { AFFINE_FILL };
                assert_eq!(px(&left, x, y), l);
                let d = if y >= 1 { px(&img, x, y - 1) } else { AFFINE_FILL };
                assert_eq!(px(&down, x, y), d);
            }
        }
        assert_eq!(translate_x(&img, 0), img);
        assert!(translate_x(&img, 99).as_raw().iter().all(|&v| v == AFFINE_FILL));
    }

    #[test]
    fn shear_zero_is_identity_and_shear_one_matches_pil_sampling() {
        let img = ramp(5, 4);
        assert_eq!(shear_x(&img, 0.0), img);
        assert_eq!(shear_y(&img, 0.0), img);
        // PIL: x_in = floor(x + 0.5 + 1.0 * (y + 0.5)) = x + y + 1.
        let out = shear_x(&img, 1.0);
        for y in 0..4 {
            for x in 0..5 {
                let e = if x + y + 1 < 5 { px(&img, x + y + 1, y) } else { AFFINE_FILL };
                assert_eq!(px(&out, x, y), e);
            }
        }
        // y_in = floor(y + 0.5 - 0.5 (x + 0.5)) on the vertical shear.
        let out = shear_y(&img, -0.5);
        for y in 0..4i32 {
            for x in 0..5i32 {
                let yin = ((y as f64 + 0.5) - 0.5 * (x as f64 + 0.5)).floor() as i32;
                let e = if yin >= 0 { px(&img, x as u32, yin as u32) } else { AFFINE_FILL };
                assert_eq!(px(&out, x as u32, y as u32), e);
            }
        }
    }

    #[test]
    fn affine_ops_keep_rgb_pixels_together() {
        let img = Image::from_raw(3, 2, 1, vec![1, 2, 3, 4, 5, 6]).expect("test image shape");
        assert_eq!(translate_x(&img, 1).as_raw(), &[128, 128, 128, 1, 2, 3]);
        assert_eq!(hflip(&img).as_raw(), &[4, 5, 6, 1, 2, 3]);
        assert_eq!(rotate(&img, 180.0).as_raw(), &[4, 5, 6, 1, 2, 3]);
    }
}
