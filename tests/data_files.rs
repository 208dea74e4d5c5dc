//! Reading data sets from files: IDX (raw and gzipped), CIFAR binaries, image folders, look-up order,
//! and Fashion-MNIST in Debian's layout: the installed package where it is, and the shipped sample in
//! `tests/data/fashion-mnist` everywhere.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use burnish::data::{
    candidate_dirs, candidate_dirs_with, default_data_root, download_root, find_dataset_dir, load_with_env, DataError,
    DatasetKind, LoadOptions, SYSTEM_DATA_DIR,
};

// ---------------------------------------------------------------- helpers

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create test directory");
    }
    std::fs::write(path, bytes).expect("write test file");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [count, rows, cols] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = 0x0000_0801u32.to_be_bytes().to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// Train: 3 images of 2x3, test: 2 images; pixel value = 10 * image + position.
fn train_pixels() -> Vec<u8> {
    (0..3u8).flat_map(|i| (0..6u8).map(move |p| 10 * i + p)).collect()
}
fn test_pixels() -> Vec<u8> {
    (0..2u8).flat_map(|i| (0..6u8).map(move |p| 100 + 10 * i + p)).collect()
}
const TRAIN_LABELS: [u8; 3] = [0, 9, 4];
const TEST_LABELS: [u8; 2] = [7, 3];

/// Writes the four IDX files into `dir`, gzipping those whose index is in `gz`
/// (0 train images, 1 train labels, 2 test images, 3 test labels).
fn write_idx(dir: &Path, gz: &[usize]) {
    let files = [
        ("train-images-idx3-ubyte", idx_images(3, 2, 3, &train_pixels())),
        ("train-labels-idx1-ubyte", idx_labels(&TRAIN_LABELS)),
        ("t10k-images-idx3-ubyte", idx_images(2, 2, 3, &test_pixels())),
        ("t10k-labels-idx1-ubyte", idx_labels(&TEST_LABELS)),
    ];
    for (k, (name, bytes)) in files.iter().enumerate() {
        if gz.contains(&k) {
            write(&dir.join(format!("{name}.gz")), &gzip(bytes));
        } else {
            write(&dir.join(name), bytes);
        }
    }
}

fn load_at(kind: DatasetKind, dir: &Path) -> Result<burnish::data::Dataset, DataError> {
    load_with_env(kind, Some(dir), &LoadOptions::default(), None)
}

fn all_pixels(split: &burnish::data::Split) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = Vec::new();
    for i in 0..split.len() {
        split.read_pixels(i, &mut buf).expect("readable image");
        all.extend_from_slice(&buf);
    }
    all
}

fn file_name_of(path: &Path) -> &str {
    path.file_name().and_then(OsStr::to_str).unwrap_or("")
}

// ---------------------------------------------------------------- IDX

fn check_idx_roundtrip(gz: &[usize]) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), gz);
    let d = load_at(DatasetKind::FashionMnist, dir.path()).expect("valid IDX files load");
    assert_eq!(d.name, "fashion-mnist");
    assert_eq!(d.train.shape(), (1, 2, 3));
    assert_eq!(d.test.shape(), (1, 2, 3));
    assert_eq!(d.train.labels(), &[0, 9, 4]);
    assert_eq!(d.test.labels(), &[7, 3]);
    assert_eq!(d.train.label(1), 9);
    assert_eq!(all_pixels(&d.train), train_pixels());
    assert_eq!(all_pixels(&d.test), test_pixels());
    assert_eq!(d.num_classes, 10);
    assert_eq!(d.class_names[0], "T-shirt/top");
    assert_eq!(d.class_names[9], "Ankle boot");
    assert_eq!((d.mean.clone(), d.std.clone()), (vec![0.2860], vec![0.3530]));
    let source = d.train.source_name(2);
    assert!(source.contains("train-images-idx3-ubyte") && source.ends_with("[#2]"), "{source}");
}

#[test]
fn idx_raw_files_read_back_exactly() {
    check_idx_roundtrip(&[]);
}

#[test]
fn idx_gzipped_files_read_back_exactly() {
    check_idx_roundtrip(&[0, 1, 2, 3]);
}

#[test]
fn idx_mixed_raw_and_gzipped_files_read_back_exactly() {
    check_idx_roundtrip(&[1, 2]);
}

#[test]
fn mnist_uses_its_own_constants_and_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    let d = load_at(DatasetKind::Mnist, dir.path()).expect("valid IDX files load");
    assert_eq!((d.mean, d.std), (vec![0.1307], vec![0.3081]));
    assert_eq!(d.class_names[3], "3");
}

#[test]
fn truncated_idx_names_the_file_and_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    let mut bytes = idx_images(3, 2, 3, &train_pixels());
    bytes.truncate(bytes.len() - 5);
    write(&dir.path().join("train-images-idx3-ubyte"), &bytes);
    let err = load_at(DatasetKind::FashionMnist, dir.path()).expect_err("truncated file");
    match &err {
        DataError::Truncated { path, expected, actual } => {
            assert_eq!(file_name_of(path), "train-images-idx3-ubyte");
            assert_eq!((*expected, *actual), (16 + 18, 16 + 13));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("34") && msg.contains("29"), "{msg}");
}

#[test]
fn truncated_idx_inside_gzip_names_the_file_and_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[0, 1, 2, 3]);
    let mut labels = idx_labels(&TEST_LABELS);
    labels.pop();
    write(&dir.path().join("t10k-labels-idx1-ubyte.gz"), &gzip(&labels));
    match load_at(DatasetKind::FashionMnist, dir.path()) {
        Err(DataError::Truncated { path, expected, actual }) => {
            assert_eq!(file_name_of(&path), "t10k-labels-idx1-ubyte.gz");
            assert_eq!((expected, actual), (10, 9));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn broken_gzip_stream_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[0, 1, 2, 3]);
    let gz = gzip(&idx_images(3, 2, 3, &train_pixels()));
    write(&dir.path().join("train-images-idx3-ubyte.gz"), &gz[..gz.len() / 2]);
    match load_at(DatasetKind::FashionMnist, dir.path()) {
        Err(e @ DataError::Io { .. }) => {
            assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}")
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn idx_with_trailing_bytes_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    let mut bytes = idx_images(3, 2, 3, &train_pixels());
    bytes.push(0);
    write(&dir.path().join("train-images-idx3-ubyte"), &bytes);
    assert!(matches!(
        load_at(DatasetKind::FashionMnist, dir.path()),
        Err(DataError::TrailingData { expected: 34, actual: 35, .. })
    ));
}

#[test]
fn swapped_idx_files_give_bad_magic() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    // A label file where the image file should be.
    write(&dir.path().join("train-images-idx3-ubyte"), &idx_labels(&TRAIN_LABELS));
    match load_at(DatasetKind::FashionMnist, dir.path()) {
        Err(DataError::BadMagic { path, expected, found, .. }) => {
            assert_eq!(file_name_of(&path), "train-images-idx3-ubyte");
            assert_eq!((expected, found), (0x803, 0x801));
        }
        other => panic!("expected BadMagic, got {other:?}"),
    }
}

#[test]
fn idx_label_out_of_range_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    write(&dir.path().join("t10k-labels-idx1-ubyte"), &idx_labels(&[7, 10]));
    match load_at(DatasetKind::Mnist, dir.path()) {
        Err(DataError::LabelOutOfRange { source_name, label, num_classes }) => {
            assert!(source_name.ends_with("t10k-labels-idx1-ubyte[#1]"), "{source_name}");
            assert_eq!((label, num_classes), (10, 10));
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
}

#[test]
fn idx_count_mismatch_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    write(&dir.path().join("train-labels-idx1-ubyte"), &idx_labels(&[1, 2]));
    assert!(matches!(
        load_at(DatasetKind::Mnist, dir.path()),
        Err(DataError::CountMismatch { images: 3, labels: 2, .. })
    ));
}

#[test]
fn missing_idx_file_names_both_spellings() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_idx(dir.path(), &[]);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).expect("remove");
    match load_at(DatasetKind::Mnist, dir.path()) {
        Err(e @ DataError::MissingFile { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
            assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
        }
        other => panic!("expected MissingFile, got {other:?}"),
    }
}

// ---------------------------------------------------------------- CIFAR

/// One CIFAR record: label bytes then R, G, B planes; pixel value derived from (seed, channel, position).
fn cifar_record(label_bytes: &[u8], seed: u8) -> Vec<u8> {
    let mut r = label_bytes.to_vec();
    for c in 0..3u32 {
        for p in 0..1024u32 {
            r.push((u32::from(seed) * 31 + c * 7 + p * 3) as u8);
        }
    }
    r
}

/// The HWC image a `cifar_record` with `seed` must read back as.
fn cifar_expected(seed: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for p in 0..1024u32 {
        for c in 0..3u32 {
            v.push((u32::from(seed) * 31 + c * 7 + p * 3) as u8);
        }
    }
    v
}

fn write_cifar10(dir: &Path) {
    let batches = dir.join("cifar-10-batches-bin");
    // Batch k holds k records (so 15 training images), labels cycle over the classes.
    let mut seed = 0u8;
    for k in 1..=5u8 {
        let mut bytes = Vec::new();
        for _ in 0..k {
            bytes.extend(cifar_record(&[seed % 10], seed));
            seed += 1;
        }
        write(&batches.join(format!("data_batch_{k}.bin")), &bytes);
    }
    let mut test = cifar_record(&[9], 100);
    test.extend(cifar_record(&[0], 101));
    write(&batches.join("test_batch.bin"), &test);
    let names = "n0\nn1\nn2\nn3\nn4\nn5\nn6\nn7\nn8\nn9\n\n";
    write(&batches.join("batches.meta.txt"), names.as_bytes());
}

#[test]
fn cifar10_reads_back_exactly_as_hwc() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cifar10(dir.path());
    let d = load_at(DatasetKind::Cifar10, dir.path()).expect("valid CIFAR-10 loads");
    assert_eq!(d.train.len(), 15);
    assert_eq!(d.test.len(), 2);
    assert_eq!(d.train.shape(), (3, 32, 32));
    let labels: Vec<u16> = (0..15).map(|s| s % 10).collect();
    assert_eq!(d.train.labels(), labels.as_slice());
    assert_eq!(d.test.labels(), &[9, 0]);
    let mut buf = Vec::new();
    for i in 0..15 {
        d.train.read_pixels(i, &mut buf).expect("in-memory read");
        assert_eq!(buf, cifar_expected(i as u8), "train image {i}");
    }
    d.test.read_pixels(1, &mut buf).expect("in-memory read");
    assert_eq!(buf, cifar_expected(101));
    assert_eq!(d.class_names[0], "n0");
    assert_eq!(d.num_classes, 10);
    assert_eq!(d.mean, vec![0.4914, 0.4822, 0.4465]);
    // Image 3 is the first record of data_batch_3.bin (batches of 1, 2, 3, ... records).
    assert!(d.train.source_name(3).ends_with("data_batch_3.bin[#0]"), "{}", d.train.source_name(3));
    assert!(d.train.source_name(4).ends_with("data_batch_3.bin[#1]"));
    assert!(d.train.source_name(14).ends_with("data_batch_5.bin[#4]"));
}

#[test]
fn cifar100_uses_fine_labels_and_default_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Files directly in the directory, no archive sub-directory, no names file.
    let mut train = cifar_record(&[3, 42], 1);
    train.extend(cifar_record(&[19, 99], 2));
    write(&dir.path().join("train.bin"), &train);
    write(&dir.path().join("test.bin"), &cifar_record(&[0, 7], 3));
    let d = load_at(DatasetKind::Cifar100, dir.path()).expect("valid CIFAR-100 loads");
    assert_eq!(d.train.labels(), &[42, 99]);
    assert_eq!(d.test.labels(), &[7]);
    assert_eq!(d.num_classes, 100);
    assert_eq!(d.class_names.len(), 100);
    assert_eq!(d.class_names[0], "apple");
    assert_eq!(d.class_names[99], "worm");
    let mut buf = Vec::new();
    d.train.read_pixels(1, &mut buf).expect("in-memory read");
    assert_eq!(buf, cifar_expected(2));
}

#[test]
fn truncated_cifar_names_the_file_and_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cifar10(dir.path());
    let path = dir.path().join("cifar-10-batches-bin/data_batch_2.bin");
    let mut bytes = cifar_record(&[1], 1);
    bytes.extend(cifar_record(&[1], 2));
    bytes.truncate(3073 + 3068);
    write(&path, &bytes);
    let err = load_at(DatasetKind::Cifar10, dir.path()).expect_err("truncated file");
    match &err {
        DataError::Truncated { path: p, expected, actual } => {
            assert_eq!(p, &path);
            assert_eq!((*expected, *actual), (2 * 3073, 3073 + 3068));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(err.to_string().contains("data_batch_2.bin"), "{err}");
}

#[test]
fn cifar_label_out_of_range_and_missing_batch_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_cifar10(dir.path());
    let batches = dir.path().join("cifar-10-batches-bin");
    write(&batches.join("test_batch.bin"), &cifar_record(&[10], 0));
    assert!(matches!(
        load_at(DatasetKind::Cifar10, dir.path()),
        Err(DataError::LabelOutOfRange { label: 10, num_classes: 10, .. })
    ));
    std::fs::remove_file(batches.join("data_batch_4.bin")).expect("remove");
    match load_at(DatasetKind::Cifar10, dir.path()) {
        Err(DataError::MissingFile { path, .. }) => assert_eq!(file_name_of(&path), "data_batch_4.bin"),
        other => panic!("expected MissingFile, got {other:?}"),
    }
}

// ---------------------------------------------------------------- image folder

fn rgb(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 40 + seed) as u8, (y * 50 + seed) as u8, (x * y * 7 + seed * 3) as u8])
    })
}

/// train/{cat,dog}, test/{dog}; images 4x4 except train/dog/b.png which is 8x6; a README to ignore.
fn write_folder(root: &Path) -> Vec<(PathBuf, image::RgbImage)> {
    let files = [
        ("train/dog/a.png", rgb(4, 4, 1)),
        ("train/dog/b.png", rgb(8, 6, 2)),
        ("train/cat/z.PNG", rgb(4, 4, 3)),
        ("test/dog/c.png", rgb(4, 4, 4)),
    ];
    let mut out = Vec::new();
    for (name, img) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        img.save_with_format(&path, image::ImageFormat::Png).expect("write png");
        out.push((path, img));
    }
    write(&root.join("train/dog/README.txt"), b"not an image");
    out
}

fn folder_options(size: usize, channels: usize) -> LoadOptions {
    LoadOptions { image_size: size, image_channels: channels, ..LoadOptions::default() }
}

#[test]
fn image_folder_lists_sorted_classes_and_decodes_lazily() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_folder(dir.path());
    let d = load_with_env(DatasetKind::ImageFolder, Some(dir.path()), &folder_options(4, 3), None)
        .expect("valid folder loads");
    assert_eq!(d.class_names, vec!["cat".to_string(), "dog".to_string()]);
    assert_eq!(d.train.labels(), &[0, 1, 1]);
    assert_eq!(d.test.labels(), &[1]);
    assert_eq!(d.train.shape(), (3, 4, 4));
    assert!(d.train.is_lazy());
    assert_eq!((d.mean.clone(), d.std.clone()), (vec![0.5; 3], vec![0.25; 3]));
    assert_eq!(d.train.source_name(0), files[2].0.display().to_string());

    let mut buf = Vec::new();
    d.train.read_pixels(0, &mut buf).expect("readable png");
    assert_eq!(buf, files[2].1.as_raw().clone(), "same size: exact pixels");
    d.train.read_pixels(2, &mut buf).expect("readable png");
    let resized = image::imageops::resize(&files[1].1, 4, 4, image::imageops::FilterType::Triangle);
    assert_eq!(buf, resized.into_raw(), "other size: triangle-filter resize");
}

#[test]
fn image_folder_converts_to_gray_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = write_folder(dir.path());
    let d = load_with_env(DatasetKind::ImageFolder, Some(dir.path()), &folder_options(4, 1), None)
        .expect("valid folder loads");
    assert_eq!(d.shape(), (1, 4, 4));
    let mut buf = Vec::new();
    d.test.read_pixels(0, &mut buf).expect("readable png");
    let gray = image::DynamicImage::ImageRgb8(files[3].1.clone()).into_luma8();
    assert_eq!(buf, gray.into_raw());
}

#[test]
fn corrupt_image_is_an_error_naming_the_file_on_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_folder(dir.path());
    let bad = dir.path().join("train/dog/bad.png");
    let mut bytes = std::fs::read(dir.path().join("train/dog/a.png")).expect("read png");
    bytes.truncate(bytes.len() / 2);
    write(&bad, &bytes);
    let d = load_with_env(DatasetKind::ImageFolder, Some(dir.path()), &folder_options(4, 3), None)
        .expect("listing does not decode");
    let i =
        (0..d.train.len()).find(|&i| d.train.source_name(i) == bad.display().to_string()).expect("bad.png is listed");
    let mut buf = Vec::new();
    match d.train.read_pixels(i, &mut buf) {
        Err(e @ DataError::CorruptImage { .. }) => {
            assert!(e.to_string().contains("bad.png"), "{e}")
        }
        other => panic!("expected CorruptImage, got {other:?}"),
    }
    // The other images still read.
    d.train.read_pixels(0, &mut buf).expect("good image still readable");
}

#[test]
fn image_folder_layout_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_folder(dir.path());
    write(&dir.path().join("test/bird/x.png"), b"");
    let err = load_with_env(DatasetKind::ImageFolder, Some(dir.path()), &folder_options(4, 3), None)
        .expect_err("test class absent from train");
    assert!(err.to_string().contains("bird"), "{err}");

    let empty = tempfile::tempdir().expect("tempdir");
    let err = load_with_env(DatasetKind::ImageFolder, Some(empty.path()), &folder_options(4, 3), None)
        .expect_err("no train directory");
    assert!(err.to_string().contains("train"), "{err}");
}

// ---------------------------------------------------------------- look-up

#[test]
fn candidate_dirs_are_path_then_env_then_default_then_system() {
    let default = Some(Path::new("/home/u/.local/share/burnish/data"));
    let dirs = candidate_dirs_with("mnist", Some(Path::new("/p")), Some(OsStr::new("/env")), default);
    assert_eq!(
        dirs,
        vec![
            PathBuf::from("/p"),
            PathBuf::from("/env/mnist"),
            PathBuf::from("/home/u/.local/share/burnish/data/mnist"),
            Path::new(SYSTEM_DATA_DIR).join("mnist"),
        ]
    );
    // No path, empty env, no home folder: only the system directory.
    assert_eq!(
        candidate_dirs_with("mnist", None, Some(OsStr::new("")), None),
        vec![Path::new(SYSTEM_DATA_DIR).join("mnist")]
    );
    // $BURNISH_DATA naming the default root lists it once.
    assert_eq!(
        candidate_dirs_with("mnist", None, Some(OsStr::new("/home/u/.local/share/burnish/data")), default),
        vec![PathBuf::from("/home/u/.local/share/burnish/data/mnist"), Path::new(SYSTEM_DATA_DIR).join("mnist")]
    );
    // The default root is the per-user data folder's burnish/data, where `burnish data get` installs.
    let expected = default_data_root().map(|r| r.join("mnist"));
    assert_eq!(candidate_dirs("mnist", None, None).len(), 1 + usize::from(expected.is_some()));
    if let Some(expected) = expected {
        assert!(expected.ends_with("burnish/data/mnist"), "{}", expected.display());
        assert_eq!(candidate_dirs("mnist", None, None)[0], expected);
        assert_eq!(download_root(None).map(|r| r.join("mnist")), Some(expected));
    }
    assert_eq!(download_root(Some(OsStr::new("/env"))), Some(PathBuf::from("/env")));
}

#[test]
fn lookup_takes_the_first_existing_directory() {
    let name = "burnish-test-no-such-dataset";
    let given = tempfile::tempdir().expect("tempdir");
    let env_root = tempfile::tempdir().expect("tempdir");
    let in_env = env_root.path().join(name);
    std::fs::create_dir_all(&in_env).expect("mkdir");
    let env = Some(env_root.path().as_os_str());

    assert_eq!(find_dataset_dir(name, Some(given.path()), env).expect("found"), given.path());
    let absent = given.path().join("absent");
    assert_eq!(find_dataset_dir(name, Some(&absent), env).expect("found"), in_env);

    match find_dataset_dir(name, Some(&absent), Some(OsStr::new("/nonexistent-burnish-root"))) {
        Err(e @ DataError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&absent.display().to_string()), "{msg}");
            assert!(msg.contains("/nonexistent-burnish-root/burnish-test-no-such-dataset"), "{msg}");
            assert!(msg.contains(&format!("{SYSTEM_DATA_DIR}/{name}")), "{msg}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn load_finds_a_data_set_under_the_env_root() {
    let root = tempfile::tempdir().expect("tempdir");
    write_idx(&root.path().join("mnist"), &[0]);
    let d = load_with_env(DatasetKind::Mnist, None, &LoadOptions::default(), Some(root.path().as_os_str()))
        .expect("found under the env root");
    assert_eq!(d.train.labels(), &[0, 9, 4]);
}

// ---------------------------------------------------------------- installed Fashion-MNIST

/// What a Fashion-MNIST folder must hold: image counts, per-class counts and the first training image.
struct FashionExpect {
    train: usize,
    test: usize,
    train_per_class: [usize; 10],
    test_per_class: [usize; 10],
}

/// Debian's `dataset-fashion-mnist`: the whole balanced set.
const INSTALLED: FashionExpect =
    FashionExpect { train: 60_000, test: 10_000, train_per_class: [6000; 10], test_per_class: [1000; 10] };

/// `tests/data/fashion-mnist`: the first 300 training and 100 test images of the same files (its SOURCE.md).
const FIXTURE: FashionExpect = FashionExpect {
    train: 300,
    test: 100,
    train_per_class: [32, 33, 31, 29, 29, 31, 33, 30, 27, 25],
    test_per_class: [8, 13, 14, 9, 10, 9, 8, 11, 12, 6],
};

/// A root holding `fashion-mnist/` laid out as Debian installs it, shipped with the tests.
fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Loads Fashion-MNIST through the data-set look-up (no explicit path) and checks it against `expect`.
fn check_fashion_mnist(env_root: Option<&OsStr>, expect: &FashionExpect) {
    let d =
        load_with_env(DatasetKind::FashionMnist, None, &LoadOptions::default(), env_root).expect("Fashion-MNIST loads");
    assert_eq!((d.train.len(), d.test.len()), (expect.train, expect.test));
    assert_eq!(d.shape(), (1, 28, 28));
    assert_eq!(d.num_classes, 10);
    for (split, per_class) in [(&d.train, expect.train_per_class), (&d.test, expect.test_per_class)] {
        let mut counts = [0usize; 10];
        for &l in split.labels() {
            counts[usize::from(l)] += 1;
        }
        assert_eq!(counts, per_class);
    }
    // The first training image is an ankle boot (label 9) whose pixels sum to 76,247 (both files start with it).
    assert_eq!(d.train.label(0), 9);
    let mut pixels = Vec::new();
    d.train.read_pixels(0, &mut pixels).expect("first image");
    assert_eq!(pixels.iter().map(|&p| u64::from(p)).sum::<u64>(), 76_247);
    // And the first test image too: an ankle boot, pixels summing to 33,456.
    assert_eq!(d.test.label(0), 9);
    d.test.read_pixels(0, &mut pixels).expect("first test image");
    assert_eq!(pixels.iter().map(|&p| u64::from(p)).sum::<u64>(), 33_456);
}

/// The shipped sample, found by the same look-up a recipe's `dataset = "fashion-mnist"` takes (through a data root),
/// in Debian's layout and file names: runs everywhere, whatever is installed.
#[test]
fn the_fashion_mnist_fixture_loads_through_the_lookup() {
    check_fashion_mnist(Some(fixture_root().as_os_str()), &FIXTURE);
}

/// With Debian's `dataset-fashion-mnist` installed (CI installs it, see `.ci/run`), the default look-up (no path, no
/// data root) must find and read the whole set there. Without it, the same checks run on the shipped fixture laid
/// out the same way, so the test never passes without checking a real Fashion-MNIST folder.
#[test]
fn installed_fashion_mnist_loads() {
    let dir = Path::new(SYSTEM_DATA_DIR).join("fashion-mnist");
    if dir.is_dir() {
        eprintln!("checking the installed package in {}", dir.display());
        check_fashion_mnist(None, &INSTALLED);
    } else {
        eprintln!("{} is absent: checking the fixture in Debian's layout instead", dir.display());
        check_fashion_mnist(Some(fixture_root().as_os_str()), &FIXTURE);
    }
}
