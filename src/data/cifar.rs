//! The binary versions of CIFAR-10 and CIFAR-100 (<https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! A file is a sequence of records: the label byte(s) then 3072 pixel bytes, 1024 per channel (R, G, B
//! planes, each 32x32 row-major). CIFAR-10 has one label byte; CIFAR-100 has two (coarse, fine) and we
//! use the fine one. The files may sit directly in the data-set directory or in the sub-directory the
//! official archive extracts to (`cifar-10-batches-bin/`, `cifar-100-binary/`).

use std::path::{Path, PathBuf};

use super::files::{find_file, read_all};
use super::{DataError, DatasetKind, Split};

/// Side of a CIFAR image.
const SIDE: usize = 32;
/// Pixel bytes of one CIFAR image (3 planes of 32x32).
const PIXELS: usize = 3 * SIDE * SIDE;

/// Which of the two CIFAR variants, with its file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// CIFAR-10: 10 classes, one label byte.
    Ten,
    /// CIFAR-100: 100 fine classes, two label bytes (coarse, fine).
    Hundred,
}

impl Variant {
    fn num_classes(self) -> usize {
        match self {
            Variant::Ten => 10,
            Variant::Hundred => 100,
        }
    }

    /// Label bytes before each image, and which one is the label we use.
    fn label_bytes(self) -> (usize, usize) {
        match self {
            Variant::Ten => (1, 0),
            Variant::Hundred => (2, 1),
        }
    }

    fn subdir(self) -> &'static str {
        match self {
            Variant::Ten => "cifar-10-batches-bin",
            Variant::Hundred => "cifar-100-binary",
        }
    }

    fn train_files(self) -> Vec<String> {
        match self {
            Variant::Ten => (1..=5).map(|k| format!("data_batch_{k}.bin")).collect(),
            Variant::Hundred => vec!["train.bin".to_string()],
        }
    }

    fn test_file(self) -> &'static str {
        match self {
            Variant::Ten => "test_batch.bin",
            Variant::Hundred => "test.bin",
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Variant::Ten => "batches.meta.txt",
            Variant::Hundred => "fine_label_names.txt",
        }
    }

    fn default_names(self) -> &'static [&'static str] {
        match self {
            Variant::Ten => &CIFAR10_NAMES,
            Variant::Hundred => &CIFAR100_NAMES,
        }
    }
}

/// A loaded CIFAR data set: (train, test, class names).
pub(crate) type Loaded = (Split, Split, Vec<String>);

/// Loads a CIFAR variant from `dir` (or its archive sub-directory when that exists).
pub(crate) fn load_cifar(dir: &Path, variant: Variant) -> Result<Loaded, DataError> {
    let sub = dir.join(variant.subdir());
    let dir = if sub.is_dir() { sub } else { dir.to_path_buf() };
    let train_paths =
        variant.train_files().iter().map(|name| find_file(&dir, &[name])).collect::<Result<Vec<_>, _>>()?;
    let test_path = find_file(&dir, &[variant.test_file()])?;
    let train = read_split(&train_paths, variant)?;
    let test = read_split(&[test_path], variant)?;
    let names = class_names(&dir.join(variant.names_file()), variant)?;
    Ok((train, test, names))
}

/// Reads and concatenates the records of `paths` into one split.
fn read_split(paths: &[PathBuf], variant: Variant) -> Result<Split, DataError> {
    let mut records = Records::default();
    for path in paths {
        records.append(path, &read_all(path)?, variant)?;
    }
    records.into_split()
}

/// Reads CIFAR binary batches from memory into one split, exactly as [`crate::data::load`] reads them from disk:
/// `kind` is [`DatasetKind::Cifar10`] or [`DatasetKind::Cifar100`], and each file's name appears in its errors.
/// For tests and fuzzing of the reader.
pub fn cifar_split_from_bytes(files: &[(&Path, &[u8])], kind: DatasetKind) -> Result<Split, DataError> {
    let variant = match kind {
        DatasetKind::Cifar10 => Variant::Ten,
        DatasetKind::Cifar100 => Variant::Hundred,
        other => return Err(DataError::Invalid(format!("{} is not a CIFAR data set", other.name()))),
    };
    let mut records = Records::default();
    for (path, bytes) in files {
        records.append(path, bytes, variant)?;
    }
    records.into_split()
}

/// The records of one split, gathered file by file.
#[derive(Default)]
struct Records {
    labels: Vec<u16>,
    pixels: Vec<u8>,
    origins: Vec<(usize, String)>,
}

impl Records {
    /// Appends the records of one file's `bytes`, which must be a whole number of records.
    fn append(&mut self, path: &Path, bytes: &[u8], variant: Variant) -> Result<(), DataError> {
        let (label_bytes, label_at) = variant.label_bytes();
        let record = label_bytes + PIXELS;
        if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
            // Round up to the next whole record: what a complete file of this length would hold.
            let expected = bytes.len().div_ceil(record).max(1) * record;
            return Err(DataError::Truncated {
                path: path.to_path_buf(),
                expected: expected as u64,
                actual: bytes.len() as u64,
            });
        }
        self.origins.push((self.labels.len(), path.display().to_string()));
        // The file's length vouches for this: it holds every record whole.
        self.pixels.reserve(bytes.len() / record * PIXELS);
        for (r, rec) in bytes.chunks_exact(record).enumerate() {
            let label = usize::from(rec[label_at]);
            if label >= variant.num_classes() {
                return Err(DataError::LabelOutOfRange {
                    source_name: format!("{}[#{r}]", path.display()),
                    label,
                    num_classes: variant.num_classes(),
                });
            }
            self.labels.push(label as u16);
            planar_to_interleaved(&rec[label_bytes..], &mut self.pixels);
        }
        Ok(())
    }

    fn into_split(self) -> Result<Split, DataError> {
        Split::in_memory_parts((3, SIDE, SIDE), self.labels, self.pixels, self.origins)
    }
}

/// Appends a CHW (R plane, G plane, B plane) image as HWC.
fn planar_to_interleaved(planes: &[u8], out: &mut Vec<u8>) {
    let n = SIDE * SIDE;
    let (r, rest) = planes.split_at(n);
    let (g, b) = rest.split_at(n);
    for ((&r, &g), &b) in r.iter().zip(g).zip(b) {
        out.extend_from_slice(&[r, g, b]);
    }
}

/// Class names from the names file (one per line, blank lines ignored) or the standard names when absent.
fn class_names(path: &Path, variant: Variant) -> Result<Vec<String>, DataError> {
    if !path.is_file() {
        return Ok(variant.default_names().iter().map(|s| s.to_string()).collect());
    }
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if names.len() != variant.num_classes() {
        return Err(DataError::Invalid(format!(
            "{} lists {} class names, expected {}",
            path.display(),
            names.len(),
            variant.num_classes()
        )));
    }
    Ok(names)
}

/// CIFAR-10's class names, in label order (as in `batches.meta.txt`).
const CIFAR10_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// CIFAR-100's fine class names, in label order (as in `fine_label_names.txt`: alphabetical).
const CIFAR100_NAMES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];
