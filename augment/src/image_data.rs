//! The image type every augmentation takes and returns: 8-bit grayscale or RGB.

use image::{DynamicImage, GrayImage, RgbImage};

/// An 8-bit image, grayscale or RGB, stored row-major with interleaved channels (HWC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// One luminance channel (MNIST-like data).
    Gray(GrayImage),
    /// Three interleaved channels, red, green, blue (CIFAR-like data).
    Rgb(RgbImage),
}

/// PIL's `convert("L")` luminance: ITU-R 601-2 weights 299/587/114 in 16-bit fixed point, rounded.
#[inline]
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

impl Image {
    /// Wraps interleaved HWC bytes; `None` unless `channels` is 1 or 3 and the length is exactly
    /// `width * height * channels`.
    pub fn from_raw(channels: usize, width: u32, height: u32, data: Vec<u8>) -> Option<Image> {
        let expected = (width as usize).checked_mul(height as usize)?.checked_mul(channels)?;
        if data.len() != expected {
            return None;
        }
        match channels {
            1 => GrayImage::from_raw(width, height, data).map(Image::Gray),
            3 => RgbImage::from_raw(width, height, data).map(Image::Rgb),
            _ => None,
        }
    }

    /// An image whose every byte is `value`; `None` unless `channels` is 1 or 3.
    pub fn filled(channels: usize, width: u32, height: u32, value: u8) -> Option<Image> {
        let len = (width as usize).checked_mul(height as usize)?.checked_mul(channels)?;
        Image::from_raw(channels, width, height, vec![value; len])
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        match self {
            Image::Gray(im) => im.width(),
            Image::Rgb(im) => im.width(),
        }
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        match self {
            Image::Gray(im) => im.height(),
            Image::Rgb(im) => im.height(),
        }
    }

    /// Number of interleaved channels: 1 (gray) or 3 (RGB).
    pub fn channels(&self) -> usize {
        match self {
            Image::Gray(_) => 1,
            Image::Rgb(_) => 3,
        }
    }

    /// True for a one-channel image.
    pub fn is_gray(&self) -> bool {
        matches!(self, Image::Gray(_))
    }

    /// The pixel bytes, row-major, channels interleaved (HWC).
    pub fn as_raw(&self) -> &[u8] {
        match self {
            Image::Gray(im) => im.as_raw(),
            Image::Rgb(im) => im.as_raw(),
        }
    }

    /// The pixel bytes for in-place edits, row-major, channels interleaved (HWC).
    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        match self {
            Image::Gray(im) => im,
            Image::Rgb(im) => im,
        }
    }

    /// Gives up the pixel bytes, row-major, channels interleaved (HWC).
    pub fn into_raw(self) -> Vec<u8> {
        match self {
            Image::Gray(im) => im.into_raw(),
            Image::Rgb(im) => im.into_raw(),
        }
    }

    /// A grayscale copy; RGB is reduced with PIL's `convert("L")` weights (299/587/114, rounded).
    pub fn to_gray(&self) -> GrayImage {
        match self {
            Image::Gray(im) => im.clone(),
            Image::Rgb(im) => {
                let data = im.as_raw().chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect();
                GrayImage::from_raw(im.width(), im.height(), data)
                    .expect("one luma byte per RGB pixel fills a gray buffer of the same size")
            }
        }
    }

    /// An RGB copy; a gray image has its channel repeated three times.
    pub fn to_rgb(&self) -> RgbImage {
        match self {
            Image::Rgb(im) => im.clone(),
            Image::Gray(im) => {
                let data = im.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
                RgbImage::from_raw(im.width(), im.height(), data)
                    .expect("three bytes per gray pixel fill an RGB buffer of the same size")
            }
        }
    }

    /// Converts a decoded image: luma formats (with or without alpha) become gray, everything else RGB.
    pub fn from_dynamic(img: &DynamicImage) -> Image {
        match img {
            DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_) => Image::Gray(img.to_luma8()),
            _ => Image::Rgb(img.to_rgb8()),
        }
    }

    /// A new image of the same kind (gray or RGB) from bytes that the caller sized correctly.
    pub(crate) fn same_kind(&self, width: u32, height: u32, data: Vec<u8>) -> Image {
        Image::from_raw(self.channels(), width, height, data)
            .expect("ops size their output buffers as width * height * channels")
    }
}

impl From<GrayImage> for Image {
    fn from(im: GrayImage) -> Image {
        Image::Gray(im)
    }
}

impl From<RgbImage> for Image {
    fn from(im: RgbImage) -> Image {
        Image::Rgb(im)
    }
}

impl From<Image> for DynamicImage {
    fn from(im: Image) -> DynamicImage {
        match im {
            Image::Gray(im) => DynamicImage::ImageLuma8(im),
            Image::Rgb(im) => DynamicImage::ImageRgb8(im),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_raw_checks_channels_and_length() {
        let gray = Image::from_raw(1, 3, 2, vec![1, 2, 3, 4, 5, 6]).expect("valid gray");
        assert_eq!((gray.width(), gray.height(), gray.channels()), (3, 2, 1));
        assert_eq!(gray.as_raw(), &[1, 2, 3, 4, 5, 6]);
        let rgb = Image::from_raw(3, 1, 2, vec![1, 2, 3, 4, 5, 6]).expect("valid rgb");
        assert_eq!((rgb.width(), rgb.height(), rgb.channels()), (1, 2, 3));
        assert!(Image::from_raw(2, 1, 1, vec![0, 0]).is_none());
        assert!(Image::from_raw(1, 2, 2, vec![0; 5]).is_none());
        assert!(Image::from_raw(3, 2, 2, vec![0; 11]).is_none());
        assert!(Image::from_raw(3, u32::MAX, u32::MAX, vec![]).is_none());
    }

    #[test]
    fn conversions_use_pil_luma_and_replicate_gray() {
        let rgb = Image::from_raw(3, 4, 1, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 10, 10]).expect("valid rgb");
        // 0.299 * 255 = 76.2, 0.587 * 255 = 149.7 (rounds up, PIL rounds), 0.114 * 255 = 29.1.
        assert_eq!(rgb.to_gray().as_raw(), &[76, 150, 29, 10]);
        let gray = Image::from_raw(1, 2, 1, vec![7, 200]).expect("valid gray");
        assert_eq!(gray.to_rgb().as_raw(), &[7, 7, 7, 200, 200, 200]);
        let back = Image::from_dynamic(&DynamicImage::from(gray.clone()));
        assert_eq!(back, gray);
        let back = Image::from_dynamic(&DynamicImage::from(rgb.clone()));
        assert_eq!(back, rgb);
    }
}
