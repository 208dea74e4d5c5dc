//! The built-in synthetic data set: shape, balance, determinism.

use burnish::data::{load, synthetic, DatasetKind, LoadOptions, SyntheticOptions};

fn options(train_size: usize, test_size: usize, seed: u64) -> LoadOptions {
    LoadOptions { synthetic: SyntheticOptions { train_size, test_size, seed }, ..LoadOptions::default() }
}

fn bytes(split: &burnish::data::Split) -> Vec<u8> {
    split.memory_pixels().expect("synthetic is in memory").to_vec()
}

#[test]
fn synthetic_has_the_documented_shape_and_balanced_labels() {
    let d = load(DatasetKind::Synthetic, None, &options(50, 20, 3)).expect("generates");
    assert_eq!(d.name, "synthetic");
    assert_eq!((d.train.len(), d.test.len()), (50, 20));
    assert_eq!(d.shape(), (3, 32, 32));
    assert_eq!(d.num_classes, 10);
    assert_eq!(d.class_names, synthetic::CLASS_NAMES.map(String::from).to_vec());
    let expected: Vec<u16> = (0..50).map(|i| i % 10).collect();
    assert_eq!(d.train.labels(), expected.as_slice());
    // Mean/std are computed from the training pixels: check against a direct computation.
    let px = bytes(&d.train);
    let red: Vec<f64> = px.iter().step_by(3).map(|&v| f64::from(v) / 255.0).collect();
    let mean = red.iter().sum::<f64>() / red.len() as f64;
    let std = (red.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / red.len() as f64).sqrt();
    assert!((f64::from(d.mean[0]) - mean).abs() < 1e-5, "{} vs {mean}", d.mean[0]);
    assert!((f64::from(d.std[0]) - std).abs() < 1e-5, "{} vs {std}", d.std[0]);
    assert!(d.std.iter().all(|&s| s > 0.1), "images are not flat: {:?}", d.std);
}

#[test]
fn synthetic_is_deterministic_in_the_seed() {
    let a = load(DatasetKind::Synthetic, None, &options(40, 10, 1)).expect("generates");
    let b = load(DatasetKind::Synthetic, None, &options(40, 10, 1)).expect("generates");
    let c = load(DatasetKind::Synthetic, None, &options(40, 10, 2)).expect("generates");
    assert_eq!(bytes(&a.train), bytes(&b.train));
    assert_eq!(bytes(&a.test), bytes(&b.test));
    assert_ne!(bytes(&a.train), bytes(&c.train));
    // Every image differs between seeds, not just some.
    let (pa, pc) = (bytes(&a.train), bytes(&c.train));
    assert!(pa.chunks(3072).zip(pc.chunks(3072)).all(|(x, y)| x != y));
    // Train and test are different draws.
    assert_ne!(bytes(&a.test)[..3072], bytes(&a.train)[..3072]);
}

#[test]
fn synthetic_images_do_not_depend_on_the_split_size() {
    // Image i is drawn from its own RNG, so it is the same however many images (and threads' chunks) there are.
    let small = load(DatasetKind::Synthetic, None, &options(13, 1, 5)).expect("generates");
    let large = load(DatasetKind::Synthetic, None, &options(101, 1, 5)).expect("generates");
    assert_eq!(bytes(&small.train), bytes(&large.train)[..13 * 3072]);
}

#[test]
fn synthetic_images_are_not_identical_within_a_class() {
    let d = load(DatasetKind::Synthetic, None, &options(40, 1, 0)).expect("generates");
    let px = bytes(&d.train);
    // Images 0, 10, 20, 30 are all class 0 and must still differ.
    let imgs: Vec<&[u8]> = (0..4).map(|k| &px[k * 10 * 3072..(k * 10 + 1) * 3072]).collect();
    for i in 0..4 {
        for j in i + 1..4 {
            assert_ne!(imgs[i], imgs[j]);
        }
    }
}
