//! Crops: plain, reflect-padded (torchvision `RandomCrop(padding_mode="reflect")`) and resized (`RandomResizedCrop`).

use crate::Image;

/// Index into `0..n` of padded coordinate `p`, mirrored without repeating the edge (numpy/torch "reflect").
#[inline]
pub(crate) fn reflect(p: i64, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let m = p.rem_euclid(period);
    (if m >= n as i64 { period - m } else { m }) as usize
}

/// Copies pixel `(cols[x], rows[y])` of `img` to output pixel `(x, y)`.
fn gather(img: &Image, cols: &[usize], rows: &[usize]) -> Image {
    let (iw, c) = (img.width() as usize, img.channels());
    let src = img.as_raw();
    let row_len = cols.len() * c;
    let mut out = vec![0u8; row_len * rows.len()];
    if row_len > 0 {
        for (dst, &r) in out.chunks_exact_mut(row_len).zip(rows) {
            let srow = &src[r * iw * c..(r + 1) * iw * c];
            if c == 1 {
                for (d, &x) in dst.iter_mut().zip(cols) {
                    *d = srow[x];
                }
            } else {
                for (d, &x) in dst.chunks_exact_mut(3).zip(cols) {
                    d.copy_from_slice(&srow[3 * x..3 * x + 3]);
                }
            }
        }
    }
    img.same_kind(cols.len() as u32, rows.len() as u32, out)
}

/// Copies the `width x height` window whose top-left corner is `(left, top)` in reflect-padded coordinates
/// (`(0, 0)` is the input's top-left pixel), of the input mirrored left-right first when `flip` is set.
fn reflect_window(img: &Image, left: i64, top: i64, width: u32, height: u32, flip: bool) -> Image {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    if iw == 0 || ih == 0 {
        return img.same_kind(width, height, vec![0; (width * height) as usize * img.channels()]);
    }
    let cols: Vec<usize> =
        (0..width as i64).map(|x| reflect(left + x, iw)).map(|x| if flip { iw - 1 - x } else { x }).collect();
    let rows: Vec<usize> = (0..height as i64).map(|y| reflect(top + y, ih)).collect();
    gather(img, &cols, &rows)
}

/// Pads every side by `pad` pixels mirrored about the edge pixel (torchvision/numpy "reflect").
pub fn pad_reflect(img: &Image, pad: u32) -> Image {
    if img.width() == 0 || img.height() == 0 {
        return img.clone();
    }
    let (w, h) =
        (img.width().saturating_add(pad.saturating_mul(2)), img.height().saturating_add(pad.saturating_mul(2)));
    reflect_window(img, -(pad as i64), -(pad as i64), w, h, false)
}

/// Mirrors left-right.
pub fn hflip(img: &Image) -> Image {
    reflect_window(img, 0, 0, img.width(), img.height(), true)
}

/// The `width x height` window at `(left, top)`; `None` when it does not lie inside the image.
pub fn crop(img: &Image, left: u32, top: u32, width: u32, height: u32) -> Option<Image> {
    let right = left.checked_add(width)?;
    let bottom = top.checked_add(height)?;
    if right > img.width() || bottom > img.height() {
        return None;
    }
    let (iw, c) = (img.width() as usize, img.channels());
    let (l, w) = (left as usize * c, width as usize * c);
    let src = img.as_raw();
    let mut out = Vec::with_capacity(w * height as usize);
    for y in top as usize..bottom as usize {
        out.extend_from_slice(&src[y * iw * c + l..y * iw * c + l + w]);
    }
    Some(img.same_kind(width, height, out))
}

/// Same-size crop of the image reflect-padded by `pad_x` columns and `pad_y` rows, taken at `(left, top)` of the
/// padded image (`left` in `0..=2 pad_x`): `pad_reflect` followed by `crop`, without building the padded image.
pub fn reflect_pad_crop(img: &Image, pad_x: u32, pad_y: u32, left: u32, top: u32) -> Image {
    reflect_pad_crop_flip(img, pad_x, pad_y, left, top, false)
}

/// [`reflect_pad_crop`] of the left-right mirrored image when `flip` is set, in one pass.
pub(crate) fn reflect_pad_crop_flip(img: &Image, pad_x: u32, pad_y: u32, left: u32, top: u32, flip: bool) -> Image {
    reflect_window(img, left as i64 - pad_x as i64, top as i64 - pad_y as i64, img.width(), img.height(), flip)
}

/// PIL's resampling coefficients for one axis (`precompute_coeffs` + `normalize_coeffs_8bpc`, bilinear filter):
/// per output index, the first input index and the taps' 22-bit fixed-point weights.
struct Coeffs {
    /// First input index of each output index.
    start: Vec<usize>,
    /// Taps per output index; unused taps have weight 0.
    ksize: usize,
    /// `ksize` weights per output index.
    weights: Vec<i32>,
}

impl Coeffs {
    fn bilinear(in_size: usize, out_size: usize) -> Coeffs {
        const ONE: f64 = (1u32 << 22) as f64;
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // the bilinear (triangle) filter has support 1
        let ss = 1.0 / filterscale;
        let ksize = (support.ceil() as usize * 2 + 1).min(in_size.max(1));
        let mut start = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut raw = Vec::with_capacity(ksize);
        for (xx, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            raw.clear();
            raw.extend((xmin..xmax.max(xmin)).map(|x| {
                let d = ((x as f64 - center + 0.5) * ss).abs();
                if d < 1.0 {
                    1.0 - d
                } else {
                    0.0
                }
            }));
            let total: f64 = raw.iter().sum();
            // Taps past the input's end keep weight 0; shifting the window left keeps every index in range.
            let first = xmin.min(in_size - ksize);
            for (k, &v) in raw.iter().enumerate() {
                let v = if total != 0.0 { v / total } else { v };
                row[xmin - first + k] = (0.5 + v * ONE) as i32;
            }
            start.push(first);
        }
        Coeffs { start, ksize, weights }
    }
}

/// PIL's 8-bit accumulator to byte: start at one half, shift out the 22 fraction bits, clip.
#[inline]
fn to_byte(acc: i32) -> u8 {
    (acc >> 22).clamp(0, 255) as u8
}

/// One 8-bit bilinear pass along rows, `w x h` to `out_w x h`.
fn resample_rows(src: &[u8], w: usize, h: usize, c: usize, out_w: usize) -> Vec<u8> {
    match c {
        1 => resample_rows_of::<1>(src, w, h, out_w),
        _ => resample_rows_of::<3>(src, w, h, out_w),
    }
}

/// [`resample_rows`] for `C` channels known at compile time.
fn resample_rows_of<const C: usize>(src: &[u8], w: usize, h: usize, out_w: usize) -> Vec<u8> {
    let co = Coeffs::bilinear(w, out_w);
    let mut out = vec![0u8; out_w * h * C];
    for (srow, drow) in src.chunks_exact(w * C).zip(out.chunks_exact_mut(out_w * C)) {
        for (x, dst) in drow.chunks_exact_mut(C).enumerate() {
            let taps = &srow[co.start[x] * C..(co.start[x] + co.ksize) * C];
            let kw = &co.weights[x * co.ksize..(x + 1) * co.ksize];
            let mut acc = [1i32 << 21; C];
            for (px, &k) in taps.chunks_exact(C).zip(kw) {
                for ch in 0..C {
                    acc[ch] += px[ch] as i32 * k;
                }
            }
            for ch in 0..C {
                dst[ch] = to_byte(acc[ch]);
            }
        }
    }
    out
}

/// One 8-bit bilinear pass along columns, `w x h` to `w x out_h` (`row_len = w * channels`).
fn resample_cols(src: &[u8], row_len: usize, h: usize, out_h: usize) -> Vec<u8> {
    let co = Coeffs::bilinear(h, out_h);
    let mut out = vec![0u8; row_len * out_h];
    let mut acc = vec![0i32; row_len];
    for (y, drow) in out.chunks_exact_mut(row_len.max(1)).enumerate() {
        acc.fill(1 << 21);
        let kw = &co.weights[y * co.ksize..(y + 1) * co.ksize];
        for (k, &wgt) in kw.iter().enumerate() {
            let r = co.start[y] + k;
            for (a, &v) in acc.iter_mut().zip(&src[r * row_len..(r + 1) * row_len]) {
                *a += v as i32 * wgt;
            }
        }
        for (d, &a) in drow.iter_mut().zip(&acc) {
            *d = to_byte(a);
        }
    }
    out
}

/// Crops the `width x height` box at `(left, top)` and resizes it to `out_width x out_height` with PIL's bilinear
/// filter (antialiased when shrinking), as torchvision's `resized_crop` on PIL images.
///
/// Hand-written: image's `resize` uses a different filter support and float rounding than PIL's 8-bit two-pass
/// resampler. The box is clipped to the image (at least one pixel); an empty image or output stays empty.
pub fn resized_crop(
    img: &Image,
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    out_width: u32,
    out_height: u32,
) -> Image {
    let (iw, ih, c) = (img.width(), img.height(), img.channels());
    if iw == 0 || ih == 0 || out_width == 0 || out_height == 0 {
        return img.same_kind(out_width, out_height, vec![0; (out_width * out_height) as usize * c]);
    }
    let left = left.min(iw - 1);
    let top = top.min(ih - 1);
    let width = width.clamp(1, iw - left);
    let height = height.clamp(1, ih - top);
    let boxed = crop(img, left, top, width, height).expect("box clipped to the image above");
    let (mut data, mut w, h) = (boxed.into_raw(), width as usize, height as usize);
    // PIL runs the horizontal pass first and stores it as 8-bit before the vertical pass.
    if out_width != width {
        data = resample_rows(&data, w, h, c, out_width as usize);
        w = out_width as usize;
    }
    if out_height != height {
        data = resample_cols(&data, w * c, h, out_height as usize);
    }
    img.same_kind(out_width, out_height, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32, data: Vec<u8>) -> Image {
        Image::from_raw(1, w, h, data).expect("test image shape")
    }

    #[test]
    fn pad_reflect_mirrors_without_repeating_the_edge() {
        let img = gray(4, 1, vec![1, 2, 3, 4]);
        let out = pad_reflect(&img, 2);
        assert_eq!((out.width(), out.height()), (8, 5));
        // Middle row is the original row; rows mirror too (the single row repeats).
        assert_eq!(&out.as_raw()[16..24], &[3, 2, 1, 2, 3, 4, 3, 2]);
        let col = gray(1, 3, vec![1, 2, 3]);
        assert_eq!(pad_reflect(&col, 1).as_raw(), &[2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2]);
    }

    #[test]
    fn reflect_pad_crop_equals_pad_then_crop() {
        let img = gray(5, 4, (0..20).collect());
        let padded = pad_reflect(&img, 2);
        for (left, top) in [(0, 0), (4, 4), (1, 3), (2, 2)] {
            let expect = crop(&padded, left, top, 5, 4).expect("window inside the padded image");
            assert_eq!(reflect_pad_crop(&img, 2, 2, left, top), expect);
        }
        assert_eq!(reflect_pad_crop(&img, 2, 2, 2, 2), img);
    }

    #[test]
    fn crop_rejects_windows_outside_the_image() {
        let img = gray(3, 2, (0..6).collect());
        assert_eq!(crop(&img, 1, 1, 2, 1).expect("inside").as_raw(), &[4, 5]);
        assert!(crop(&img, 2, 0, 2, 1).is_none());
        assert!(crop(&img, u32::MAX, 0, 2, 1).is_none());
    }

    #[test]
    fn resized_crop_matches_pil_bilinear() {
        // PIL: Image.fromarray([[0, 100]]).resize((4, 1), BILINEAR) -> [0, 25, 75, 100].
        let img = gray(2, 1, vec![0, 100]);
        assert_eq!(resized_crop(&img, 0, 0, 2, 1, 4, 1).as_raw(), &[0, 25, 75, 100]);
        // Shrinking 4 -> 2 widens the triangle (antialias): weights (3, 3, 1)/7 and (1, 3, 3)/7.
        let img = gray(4, 1, vec![0, 100, 200, 255]);
        assert_eq!(resized_crop(&img, 0, 0, 4, 1, 2, 1).as_raw(), &[71, 209]);
        // Vertical pass uses the same rule.
        let img = gray(1, 2, vec![0, 100]);
        assert_eq!(resized_crop(&img, 0, 0, 1, 2, 1, 4).as_raw(), &[0, 25, 75, 100]);
    }

    #[test]
    fn resized_crop_of_the_whole_image_at_its_size_is_identity_and_crops_first() {
        let img = Image::from_raw(3, 4, 3, (0..36).collect()).expect("test image shape");
        assert_eq!(resized_crop(&img, 0, 0, 4, 3, 4, 3), img);
        let part = resized_crop(&img, 1, 1, 2, 2, 2, 2);
        assert_eq!(part, crop(&img, 1, 1, 2, 2).expect("inside"));
        // A 1x1 box blown up is constant.
        let one = resized_crop(&img, 3, 2, 1, 1, 3, 3);
        assert!(one.as_raw().chunks_exact(3).all(|p| p == [33, 34, 35]));
        // Boxes beyond the image are clipped, never a panic.
        let clipped = resized_crop(&img, 9, 9, 9, 9, 2, 2);
        assert_eq!((clipped.width(), clipped.height()), (2, 2));
    }

    #[test]
    fn hflip_mirrors_each_row() {
        let img = gray(3, 2, (0..6).collect());
        assert_eq!(hflip(&img).as_raw(), &[2, 1, 0, 5, 4, 3]);
    }
}
