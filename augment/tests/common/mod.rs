//! Test images shared by the integration tests.

use burnish_augment::Image;

/// A deterministic pseudo-random image (xorshift bytes) with values in `lo..hi`.
#[allow(dead_code)]
pub fn noise(channels: usize, w: u32, h: u32, seed: u32, lo: u8, hi: u8) -> Image {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    let data = (0..(w * h) as usize * channels)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            lo + (s % (hi - lo) as u32) as u8
        })
        .collect();
    Image::from_raw(channels, w, h, data).expect("noise image shape")
}
