//! Turning u8 HWC images into normalised f32 NCHW batches, the layout `Tensor::from_data` takes.

/// Per-channel normalisation `(x / 255 − mean) / std`, with the constants in [0, 1] units.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// Channel means.
    pub mean: Vec<f32>,
    /// Channel standard deviations.
    pub std: Vec<f32>,
}

impl Normalize {
    /// Writes one HWC u8 image with `channels` channels into `out`, a CHW f32 slice of the same size.
    pub fn write_chw(&self, hwc: &[u8], channels: usize, out: &mut [f32]) {
        debug_assert_eq!(hwc.len(), out.len());
        let plane = hwc.len() / channels;
        for c in 0..channels {
            // Folding the division into one multiply-add keeps this loop at memory speed.
            let scale = 1.0 / (255.0 * self.std[c]);
            let shift = -self.mean[c] / self.std[c];
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(hwc.iter().skip(c).step_by(channels)) {
                *d = *px as f32 * scale + shift;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwc_to_chw_with_per_channel_constants() {
        let norm = Normalize { mean: vec![0.0, 0.5], std: vec![1.0, 0.5] };
        // Two pixels, two channels: (255, 0) and (0, 255).
        let mut out = vec![0.0; 4];
        norm.write_chw(&[255, 0, 0, 255], 2, &mut out);
        let expect = [1.0, 0.0, -1.0, 1.0];
        for (o, e) in out.iter().zip(expect) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }
}
