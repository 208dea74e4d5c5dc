//! One split (train or test) of a data set: labels plus a way to get each image's pixels.
//!
//! Pixels are always handed out as interleaved HWC `u8` (row-major, channel fastest), the layout
//! `image::GrayImage` / `image::RgbImage` use, so the pipeline can wrap them without reordering.

use std::path::PathBuf;

use image::imageops::FilterType;

use super::DataError;

/// Where a split's pixels live.
#[derive(Debug, Clone)]
enum Storage {
    /// Every image back to back in one buffer (IDX, CIFAR, synthetic); `origins` says where each run of
    /// images came from, for messages, sorted by `first` with `origins[0].first == 0`.
    Memory { pixels: Vec<u8>, origins: Vec<Origin> },
    /// One image file per item, decoded on every read (image-folder).
    Files { paths: Vec<PathBuf> },
}

/// A run of consecutive in-memory images that came from consecutive records of one file.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    /// Index (in the split) of the run's first image.
    first: usize,
    /// The file name.
    name: String,
    /// Record number (in the file) of the run's first image.
    record: usize,
}

/// One split of a data set: `len()` labelled images of a fixed shape.
///
/// It is `Send + Sync`: worker threads share it and call [`Split::read_pixels`] concurrently.
#[derive(Debug, Clone)]
pub struct Split {
    channels: usize,
    height: usize,
    width: usize,
    labels: Vec<u16>,
    storage: Storage,
}

fn check_channels(channels: usize) -> Result<(), DataError> {
    if channels == 1 || channels == 3 {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "unsupported channel count {channels}: images must have 1 (gray) or 3 (RGB) channels"
        )))
    }
}

impl Split {
    /// A split held in memory: `pixels` holds `labels.len()` HWC images of `shape` = (channels, height, width)
    /// back to back; `origin` names where they came from (a file name) for error messages.
    pub fn in_memory(
        shape: (usize, usize, usize),
        labels: Vec<u16>,
        pixels: Vec<u8>,
        origin: impl Into<String>,
    ) -> Result<Split, DataError> {
        Split::in_memory_parts(shape, labels, pixels, vec![(0, origin.into())])
    }

    /// Like [`Split::in_memory`] for images concatenated from several files: `origins` lists
    /// (index of the first image from the file, file name), in increasing index order.
    pub fn in_memory_parts(
        shape: (usize, usize, usize),
        labels: Vec<u16>,
        pixels: Vec<u8>,
        origins: Vec<(usize, String)>,
    ) -> Result<Split, DataError> {
        let (channels, height, width) = shape;
        check_channels(channels)?;
        let origin = origins.iter().map(|(_, o)| o.as_str()).collect::<Vec<_>>().join(", ");
        if origins.first().is_none_or(|(first, _)| *first != 0) || origins.windows(2).any(|w| w[0].0 > w[1].0) {
            return Err(DataError::Invalid(format!(
                "{origin}: the origins of an in-memory split must start at image 0 in increasing order"
            )));
        }
        let expected = labels.len() * channels * height * width;
        if pixels.len() != expected {
            return Err(DataError::Invalid(format!(
                "{origin}: {} labels of shape {channels}x{height}x{width} need {expected} pixel bytes, got {}",
                labels.len(),
                pixels.len()
            )));
        }
        Ok(Split {
            channels,
            height,
            width,
            labels,
            storage: Storage::Memory {
                pixels,
                origins: origins.into_iter().map(|(first, name)| Origin { first, name, record: 0 }).collect(),
            },
        })
    }

    /// A split of image files decoded lazily on each read, converted to `channels` (1 or 3) and resized
    /// to `height` x `width` with a triangle filter when the file has another size.
    pub fn from_files(shape: (usize, usize, usize), paths: Vec<PathBuf>, labels: Vec<u16>) -> Result<Split, DataError> {
        let (channels, height, width) = shape;
        check_channels(channels)?;
        if paths.len() != labels.len() {
            return Err(DataError::Invalid(format!("{} image files but {} labels", paths.len(), labels.len())));
        }
        if height == 0 || width == 0 || u32::try_from(height.max(width)).is_err() {
            return Err(DataError::Invalid(format!("invalid image size {height}x{width}")));
        }
        Ok(Split { channels, height, width, labels, storage: Storage::Files { paths } })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The class index of image `i` (panics if `i >= len()`, like slice indexing).
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    /// All labels, in image order.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// (channels, height, width) of every image handed out.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Bytes of one image: channels * height * width.
    pub fn image_bytes(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether images are decoded from files on each read (rather than copied from memory).
    pub fn is_lazy(&self) -> bool {
        matches!(self.storage, Storage::Files { .. })
    }

    /// Where image `i` comes from, for error messages: the file path, or `file[#i]` for in-memory data.
    pub fn source_name(&self, i: usize) -> String {
        match &self.storage {
            Storage::Memory { origins, .. } => {
                let (name, record) = memory_origin(origins, i);
                format!("{name}[#{record}]")
            }
            Storage::Files { paths } => match paths.get(i) {
                Some(p) => p.display().to_string(),
                None => format!("<index {i} out of range>"),
            },
        }
    }

    /// Replaces `out`'s contents with image `i` as interleaved HWC `u8` of [`Split::shape`].
    ///
    /// Errors (never panics) on an index out of range or an image file that cannot be read or decoded,
    /// naming the file.
    pub fn read_pixels(&self, i: usize, out: &mut Vec<u8>) -> Result<(), DataError> {
        if i >= self.len() {
            return Err(DataError::Invalid(format!(
                "image index {i} out of range for a split of {} images",
                self.len()
            )));
        }
        out.clear();
        match &self.storage {
            Storage::Memory { pixels, .. } => {
                let n = self.image_bytes();
                out.extend_from_slice(&pixels[i * n..(i + 1) * n]);
                Ok(())
            }
            Storage::Files { paths } => {
                let decoded = decode_file(&paths[i], self.channels, self.height, self.width)?;
                out.extend_from_slice(&decoded);
                Ok(())
            }
        }
    }

    /// A new split with the images at `indices` (in that order), e.g. to take a subset for a quick run.
    ///
    /// Errors when an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Split, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Invalid(format!(
                "subset index {bad} out of range for a split of {} images",
                self.len()
            )));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        let storage = match &self.storage {
            Storage::Memory { pixels, origins } => {
                let n = self.image_bytes();
                let mut sub = Vec::with_capacity(indices.len() * n);
                for &i in indices {
                    sub.extend_from_slice(&pixels[i * n..(i + 1) * n]);
                }
                // Keep messages pointing at the original file and record of each image.
                let mut sub_origins: Vec<Origin> = Vec::new();
                for (k, &i) in indices.iter().enumerate() {
                    let (name, record) = memory_origin(origins, i);
                    let continues =
                        sub_origins.last().is_some_and(|o| o.name == name && o.record + (k - o.first) == record);
                    if !continues {
                        sub_origins.push(Origin { first: k, name: name.to_string(), record });
                    }
                }
                if sub_origins.is_empty() {
                    sub_origins.push(Origin { first: 0, name: memory_origin(origins, 0).0.to_string(), record: 0 });
                }
                Storage::Memory { pixels: sub, origins: sub_origins }
            }
            Storage::Files { paths } => Storage::Files { paths: indices.iter().map(|&i| paths[i].clone()).collect() },
        };
        Ok(Split { channels: self.channels, height: self.height, width: self.width, labels, storage })
    }

    /// The whole pixel buffer of an in-memory split (`len() * image_bytes()` bytes), `None` for a lazy one.
    pub fn memory_pixels(&self) -> Option<&[u8]> {
        match &self.storage {
            Storage::Memory { pixels, .. } => Some(pixels),
            Storage::Files { .. } => None,
        }
    }
}

/// The file name and record number of in-memory image `i`.
fn memory_origin(origins: &[Origin], i: usize) -> (&str, usize) {
    // The last run starting at or before `i`; construction guarantees `origins[0].first == 0`.
    let run = origins.partition_point(|o| o.first <= i).max(1) - 1;
    match origins.get(run) {
        Some(o) => (&o.name, o.record + (i - o.first)),
        None => ("<memory>", i),
    }
}

/// Largest side, in pixels, of an image file that is decoded.
const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most bytes a decoded image may take, whatever the file: a 9,000 × 9,000 RGB photo fits, with room to spare.
const MAX_DECODED_BYTES: u64 = 256 << 20;
/// Most decoded bytes one byte of a PNG or JPEG file can stand for, so that a header claiming more describes an image
/// the file cannot hold. PNG: deflate expands at most 1032:1, and one bit of a 1-bit palette image with transparency
/// decodes to 4 bytes (RGBA8), so 32 × 1032. JPEG stays below: every 8×8 block of every component costs at least one
/// bit, at most 16 luma blocks share 2 chroma ones, and it decodes to at most 3 bytes a pixel: about 1365:1.
const MAX_EXPANSION: u64 = 32 * 1032;
/// Decoded bytes allowed whatever the file's length, so that tiny but valid images are never refused.
const MIN_DECODED_BYTES: u64 = 64 << 10;

/// Decodes one image file to HWC `u8` with `channels` channels at `height` x `width`.
fn decode_file(path: &std::path::Path, channels: usize, height: usize, width: usize) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    decode(path, std::io::BufReader::new(file), len, (channels, height, width))
}

/// Decodes a PNG or JPEG file's `bytes` to HWC `u8` of `shape` = (channels, height, width), exactly as an
/// image-folder split does when it reads the file `path` (which names it in errors): converted to 1 (gray) or 3
/// (RGB) channels, resized with a triangle filter when it has another size. For tests and fuzzing of the decoder.
pub fn decode_image(path: &std::path::Path, bytes: &[u8], shape: (usize, usize, usize)) -> Result<Vec<u8>, DataError> {
    let (channels, height, width) = shape;
    check_channels(channels)?;
    if height == 0 || width == 0 || u32::try_from(height.max(width)).is_err() {
        return Err(DataError::Invalid(format!("invalid image size {height}x{width}")));
    }
    decode(path, std::io::Cursor::new(bytes), bytes.len() as u64, shape)
}

/// Decodes `len` bytes from `reader`; the header's size is checked against the file's length and fixed limits before
/// the decoder allocates anything for the pixels.
fn decode<R: std::io::BufRead + std::io::Seek>(
    path: &std::path::Path,
    reader: R,
    len: u64,
    (channels, height, width): (usize, usize, usize),
) -> Result<Vec<u8>, DataError> {
    let corrupt = |message: String| DataError::CorruptImage { path: path.to_path_buf(), message };
    let mut reader = image::ImageReader::new(reader).with_guessed_format().map_err(|e| DataError::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| corrupt(e.to_string()))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let claimed = image::ImageDecoder::total_bytes(&decoder);
    let most = len.saturating_mul(MAX_EXPANSION).clamp(MIN_DECODED_BYTES, MAX_DECODED_BYTES);
    if claimed > most {
        return Err(corrupt(format!(
            "its header claims {w}x{h} pixels ({claimed} bytes decoded), more than a {len}-byte file can hold \
             (at most {most} bytes)"
        )));
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| corrupt(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(corrupt(format!("it has no pixels ({}x{})", img.width(), img.height())));
    }
    // Both fit in u32: checked in `from_files` and `decode_image`.
    let (w, h) = (width as u32, height as u32);
    let resize = img.width() != w || img.height() != h;
    Ok(match channels {
        1 => {
            let g = img.into_luma8();
            if resize {
                image::imageops::resize(&g, w, h, FilterType::Triangle).into_raw()
            } else {
                g.into_raw()
            }
        }
        _ => {
            let c = img.into_rgb8();
            if resize {
                image::imageops::resize(&c, w, h, FilterType::Triangle).into_raw()
            } else {
                c.into_raw()
            }
        }
    })
}
