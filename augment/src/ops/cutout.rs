//! Cutout (DeVries & Taylor), as FixMatch's `CutoutAbs`: a gray square pasted over the image.

use crate::Image;

/// Gray level of the Cutout square: 127, FixMatch's `(127, 127, 127)`.
pub const CUTOUT_FILL: u8 = 127;

/// Fills FixMatch's Cutout square for a centre drawn at `(x, y)` in `[0, w) x [0, h)` with `fill` in every channel.
///
/// The square's corner is `(trunc(max(0, x - size/2)), trunc(max(0, y - size/2)))` and it covers `size + 1` columns
/// and rows from there, clipped at the right and bottom borders: FixMatch draws it with PIL's
/// `ImageDraw.rectangle`, which includes its end point (17 px a side for its 16). It is never clipped at the left or
/// top: a centre near those borders moves the square rather than shrinking it. `size` 0 leaves the image unchanged
/// (PIL would still paint the one corner pixel).
pub fn cutout(img: &Image, x: f64, y: f64, size: u32, fill: u8) -> Image {
    let mut out = img.clone();
    let (w, h, c) = (img.width() as u64, img.height() as u64, img.channels());
    // Float-to-int casts saturate (NaN gives 0), so any centre is safe; it is Python's `int` for the rest.
    let corner = |centre: f64| (centre - size as f64 / 2.0).max(0.0) as u64;
    let (x0, y0) = (corner(x), corner(y));
    if size == 0 || x0 >= w || y0 >= h {
        return out;
    }
    let (x1, y1) = ((x0 + size as u64 + 1).min(w), (y0 + size as u64 + 1).min(h));
    let row = w as usize * c;
    let data = out.as_raw_mut();
    for yy in y0 as usize..y1 as usize {
        data[yy * row + x0 as usize * c..yy * row + x1 as usize * c].fill(fill);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set of (x, y) whose bytes differ between two same-shape images.
    fn changed(a: &Image, b: &Image) -> Vec<(usize, usize)> {
        let (w, c) = (a.width() as usize, a.channels());
        let mut out = Vec::new();
        for (i, (pa, pb)) in a.as_raw().chunks_exact(c).zip(b.as_raw().chunks_exact(c)).enumerate() {
            if pa != pb {
                out.push((i % w, i / w));
            }
        }
        out
    }

    fn square(x0: usize, x1: usize, y0: usize, y1: usize) -> Vec<(usize, usize)> {
        (y0..=y1).flat_map(|y| (x0..=x1).map(move |x| (x, y))).collect()
    }

    #[test]
    fn cutout_covers_size_plus_one_from_its_corner() {
        let img = Image::from_raw(3, 8, 8, vec![9; 192]).expect("test image shape");
        // Centre (4.5, 5.9), size 4: corner (int(2.5), int(3.9)) = (2, 3), then 5 columns and rows.
        let out = cutout(&img, 4.5, 5.9, 4, CUTOUT_FILL);
        assert_eq!(changed(&img, &out), square(2, 6, 3, 7));
        assert!(out.as_raw()[(3 * 8 + 2) * 3..(3 * 8 + 7) * 3].iter().all(|&v| v == 127));
        // Odd sizes subtract half a pixel: centre 3.4, size 3 -> corner int(1.9) = 1.
        assert_eq!(changed(&img, &cutout(&img, 3.4, 3.4, 3, 0)), square(1, 4, 1, 4));
    }

    #[test]
    fn cutout_moves_at_the_top_left_and_is_clipped_at_the_bottom_right() {
        let img = Image::from_raw(1, 6, 5, vec![0; 30]).expect("test image shape");
        // Near the top-left corner the square starts at 0 and keeps its full size + 1 = 3.
        assert_eq!(changed(&img, &cutout(&img, 0.0, 0.7, 2, 200)), square(0, 2, 0, 2));
        // Near the bottom-right corner it is clipped: corner (4, 3), 2 columns and 2 rows left.
        assert_eq!(changed(&img, &cutout(&img, 5.9, 4.9, 2, 200)), square(4, 5, 3, 4));
        assert_eq!(cutout(&img, 2.0, 2.0, 0, 200), img);
        // Out-of-range or non-finite centres never panic.
        assert_eq!(cutout(&img, 100.0, 2.0, 2, 200), img);
        assert_eq!(changed(&img, &cutout(&img, f64::NAN, -3.0, 2, 200)), square(0, 2, 0, 2));
    }
}
