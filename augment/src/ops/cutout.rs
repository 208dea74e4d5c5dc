//! Cutout (DeVries & Taylor), as FixMatch's `CutoutAbs`: a gray square pasted over the image.

use crate::Image;

/// Gray level of the Cutout square: 127, FixMatch's `(127, 127, 127)`.
pub const CUTOUT_FILL: u8 = 127;

/// Fills the `size x size` square centred at `(cx, cy)` with `fill` in every channel, clipped at the borders:
/// columns `cx - size/2 .. cx - size/2 + size` (and likewise rows) that fall inside the image.
pub fn cutout(img: &Image, cx: u32, cy: u32, size: u32, fill: u8) -> Image {
    let mut out = img.clone();
    let (w, h, c) = (img.width() as i64, img.height() as i64, img.channels());
    let half = (size / 2) as i64;
    let (x0, y0) = ((cx as i64 - half).max(0), (cy as i64 - half).max(0));
    let (x1, y1) = ((cx as i64 - half + size as i64).min(w), (cy as i64 - half + size as i64).min(h));
    if x0 >= x1 || y0 >= y1 {
        return out;
    }
    let row = w as usize * c;
    let data = out.as_raw_mut();
    for y in y0 as usize..y1 as usize {
        data[y * row + x0 as usize * c..y * row + x1 as usize * c].fill(fill);
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

    #[test]
    fn cutout_changes_exactly_its_box() {
        let img = Image::from_raw(3, 8, 8, vec![9; 192]).expect("test image shape");
        let out = cutout(&img, 4, 5, 4, CUTOUT_FILL);
        let expect: Vec<(usize, usize)> = (3..7).flat_map(|y| (2..6).map(move |x| (x, y))).collect();
        assert_eq!(changed(&img, &out), expect);
        assert!(out.as_raw()[(3 * 8 + 2) * 3..(3 * 8 + 6) * 3].iter().all(|&v| v == 127));
    }

    #[test]
    fn cutout_is_clipped_at_the_borders() {
        let img = Image::from_raw(1, 6, 4, vec![0; 24]).expect("test image shape");
        let out = cutout(&img, 0, 3, 4, 200);
        let expect: Vec<(usize, usize)> = (1..4).flat_map(|y| (0..2).map(move |x| (x, y))).collect();
        assert_eq!(changed(&img, &out), expect);
        // Odd sizes cover cx - size/2 ..= cx + size/2.
        let out = cutout(&img, 2, 1, 3, 200);
        let expect: Vec<(usize, usize)> = (0..3).flat_map(|y| (1..4).map(move |x| (x, y))).collect();
        assert_eq!(changed(&img, &out), expect);
        assert_eq!(cutout(&img, 2, 2, 0, 200), img);
    }
}
