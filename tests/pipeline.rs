//! The pipeline: bit-identical output for any worker count, exact restart at a step, clean shutdown mid-epoch,
//! and a corrupt image reported as an error naming the file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burnish::data::Split;
use burnish::pipeline::{Batch, Normalize, Pipeline, PipelineConfig, PipelineError, Stream, StreamSpec};
use burnish_augment::View;

fn split(n: usize) -> Split {
    // Every image is different so that a sampling or ordering slip changes the output.
    let pixels: Vec<u8> = (0..n * 3 * 16 * 16).map(|i| ((i * 7919) % 251) as u8).collect();
    Split::in_memory((3, 16, 16), (0..n).map(|i| (i % 10) as u16).collect(), pixels, "test").expect("valid split")
}

fn streams(n: usize) -> Vec<StreamSpec> {
    vec![
        StreamSpec {
            stream: Stream::Labeled,
            pool: (0..n).step_by(5).collect(),
            batch_size: 4,
            views: vec![View::Weak],
        },
        StreamSpec {
            stream: Stream::Unlabeled,
            pool: (0..n).collect(),
            batch_size: 12,
            views: vec![View::Weak, View::Strong],
        },
    ]
}

fn norm() -> Normalize {
    Normalize { mean: vec![0.5, 0.4, 0.3], std: vec![0.2, 0.25, 0.3] }
}

fn run(workers: usize, start_step: u64, steps: usize) -> Vec<Batch> {
    let config = PipelineConfig { seed: 42, workers, prefetch: 3, start_step };
    let mut p = Pipeline::new(Arc::new(split(60)), norm(), streams(60), &config).expect("valid pipeline");
    (0..steps).map(|_| p.next_batch().expect("in-memory data cannot fail")).collect()
}

#[test]
fn output_is_bit_identical_for_1_2_and_8_workers() {
    let one = run(1, 0, 12);
    assert_eq!(one, run(2, 0, 12));
    assert_eq!(one, run(8, 0, 12));
    // Sanity: the batches are real, distinct and shaped as asked.
    assert_eq!(one[0].step, 0);
    assert_eq!(one[11].step, 11);
    let u = one[0].stream(Stream::Unlabeled).expect("stream");
    assert_eq!(u.views.len(), 2);
    assert_eq!(u.views[1].shape, [12, 3, 16, 16]);
    assert_ne!(u.views[0].data, u.views[1].data, "weak and strong views differ");
    assert_ne!(one[0], one[1]);
}

#[test]
fn starting_at_a_step_continues_exactly() {
    let full = run(2, 0, 10);
    let resumed = run(2, 6, 4);
    assert_eq!(&full[6..], &resumed[..]);
}

#[test]
fn epochs_reshuffle_and_cover_the_pool() {
    // 60 unlabeled samples at 12 per step: steps 0-4 are epoch 0, steps 5-9 epoch 1.
    let batches = run(1, 0, 10);
    let epoch = |r: std::ops::Range<usize>| -> Vec<usize> {
        batches[r].iter().flat_map(|b| b.stream(Stream::Unlabeled).expect("stream").indices.clone()).collect()
    };
    let (e0, e1) = (epoch(0..5), epoch(5..10));
    let mut sorted = e0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..60).collect::<Vec<_>>());
    assert_ne!(e0, e1, "the second epoch is a different permutation");
    let l = batches[0].stream(Stream::Labeled).expect("stream");
    assert!(l.indices.iter().all(|i| i % 5 == 0), "labelled samples come from the labelled pool only");
    assert_eq!(l.labels, l.indices.iter().map(|&i| (i % 10) as i64).collect::<Vec<_>>());
}

#[test]
fn values_are_normalised_chw() {
    let b = run(1, 0, 1);
    let l = b[0].stream(Stream::Labeled).expect("stream");
    let v = &l.views[0];
    let n = norm();
    // Every value must be (byte/255 - mean[c]) / std[c] for some byte.
    for (k, &x) in v.data.iter().enumerate() {
        let c = (k / (16 * 16)) % 3;
        let byte = (x * n.std[c] + n.mean[c]) * 255.0;
        assert!((byte - byte.round()).abs() < 1e-3 && (-0.01..=255.01).contains(&byte), "value {x} at {k}");
    }
}

#[test]
fn dropping_mid_epoch_stops_the_workers() {
    let config = PipelineConfig { seed: 1, workers: 4, prefetch: 8, start_step: 0 };
    let big: Vec<StreamSpec> = vec![StreamSpec {
        stream: Stream::Unlabeled,
        pool: (0..60).collect(),
        batch_size: 600,
        views: vec![View::Strong, View::SimClr],
    }];
    let mut p = Pipeline::new(Arc::new(split(60)), norm(), big, &config).expect("valid pipeline");
    p.next_batch().expect("first batch");
    let t = Instant::now();
    drop(p);
    assert!(t.elapsed() < Duration::from_secs(5), "drop took {:?}", t.elapsed());
}

#[test]
fn a_corrupt_image_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.png");
    image::RgbImage::from_pixel(16, 16, image::Rgb([10, 20, 30])).save(&good).expect("write png");
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").expect("write");
    let split = Split::from_files((3, 16, 16), vec![good, bad], vec![0, 1]).expect("valid file list");
    let stream = StreamSpec { stream: Stream::Labeled, pool: vec![0, 1], batch_size: 2, views: vec![View::Weak] };
    let config = PipelineConfig { seed: 0, workers: 2, prefetch: 2, start_step: 0 };
    let mut p = Pipeline::new(Arc::new(split), norm(), vec![stream], &config).expect("valid pipeline");
    let err = p.next_batch().expect_err("the batch holds the corrupt file");
    assert!(matches!(err, PipelineError::Data { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.png"), "{err}");
}

#[test]
fn bad_settings_are_errors() {
    let s = Arc::new(split(10));
    let bad_workers = PipelineConfig { workers: 0, ..PipelineConfig::default() };
    assert!(Pipeline::new(s.clone(), norm(), streams(10), &bad_workers).is_err());
    let mut out_of_range = streams(10);
    out_of_range[0].pool = vec![99];
    let err = Pipeline::new(s.clone(), norm(), out_of_range, &PipelineConfig::default()).err().expect("error");
    assert!(err.to_string().contains("99"), "{err}");
    let gray = Normalize { mean: vec![0.5], std: vec![0.5] };
    assert!(Pipeline::new(s, gray, streams(10), &PipelineConfig::default()).is_err());
}
