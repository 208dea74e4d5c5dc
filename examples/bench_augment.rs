//! Augmentation throughput: µs/image of every op and view on 32×32 RGB and 28×28 gray, then the pipeline's
//! views/s with 1 and 2 workers. The last line is `strong_views_per_s_per_core=<n>`: strong views (FixMatch
//! RandAugment + Cutout, normalised to f32) made per second by one pipeline worker.
//!
//!     cargo run --release --example bench_augment
//!
//! Compare with `python bench/torchvision_strong.py` (the same strong view on PIL, one thread).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use burnish::data::Split;
use burnish::pipeline::{Normalize, Pipeline, PipelineConfig, Stream, StreamSpec};
use burnish_augment::{ops, Image, Transform, View};
use rand::{RngCore, SeedableRng};

/// Distinct random test images, so that caches and branch predictors see realistic variety.
fn images(channels: usize, side: u32, n: usize) -> Vec<Image> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    (0..n)
        .map(|_| {
            let mut px = vec![0u8; channels * (side * side) as usize];
            rng.fill_bytes(&mut px);
            Image::from_raw(channels, side, side, px).expect("sizes match")
        })
        .collect()
}

/// Median over 5 rounds of the mean µs per call of `f` over `imgs`.
fn time_us(imgs: &[Image], mut f: impl FnMut(&Image, usize) -> Image) -> f64 {
    let reps = (20_000 / imgs.len()).max(1);
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for r in 0..reps {
                for (i, img) in imgs.iter().enumerate() {
                    black_box(f(img, r * imgs.len() + i));
                }
            }
            t.elapsed().as_secs_f64() * 1e6 / (reps * imgs.len()) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// An op under test, with its magnitude fixed.
type Op = Box<dyn Fn(&Image) -> Image>;

fn bench_ops(label: &str, imgs: &[Image]) {
    let side = imgs[0].width();
    let half = side as f64 / 2.0;
    let cases: Vec<(&str, Op)> = vec![
        ("identity", Box::new(ops::identity)),
        ("autocontrast", Box::new(ops::autocontrast)),
        ("equalize", Box::new(ops::equalize)),
        ("rotate(30)", Box::new(|i| ops::rotate(i, 30.0))),
        ("solarize(128)", Box::new(|i| ops::solarize(i, 128))),
        ("color(0.5)", Box::new(|i| ops::color(i, 0.5))),
        ("posterize(4)", Box::new(|i| ops::posterize(i, 4))),
        ("contrast(0.5)", Box::new(|i| ops::contrast(i, 0.5))),
        ("brightness(0.5)", Box::new(|i| ops::brightness(i, 0.5))),
        ("sharpness(0.5)", Box::new(|i| ops::sharpness(i, 0.5))),
        ("shear_x(0.3)", Box::new(|i| ops::shear_x(i, 0.3))),
        ("shear_y(0.3)", Box::new(|i| ops::shear_y(i, 0.3))),
        ("translate_x(9)", Box::new(|i| ops::translate_x(i, 9))),
        ("translate_y(9)", Box::new(|i| ops::translate_y(i, 9))),
        ("cutout", Box::new(move |i| ops::cutout(i, half, half, side / 2, ops::CUTOUT_FILL))),
        ("hflip", Box::new(ops::hflip)),
        ("reflect_pad_crop", Box::new(|i| ops::reflect_pad_crop(i, 4, 4, 2, 3))),
        ("grayscale", Box::new(ops::grayscale)),
        ("hue_shift(0.1)", Box::new(|i| ops::hue_shift(i, 0.1))),
        ("saturation(0.5)", Box::new(|i| ops::saturation(i, 0.5))),
        ("gaussian_blur(1.0)", Box::new(move |i| ops::gaussian_blur(i, ops::blur_kernel_size(side), 1.0))),
    ];
    println!("\n## ops on {label} (µs/image)");
    for (name, f) in &cases {
        println!("{name:<20} {:>8.2}", time_us(imgs, |i, _| f(i)));
    }
    println!("\n## views on {label} (µs/image)");
    for view in [View::Weak, View::Strong, View::SimClr] {
        let t = view.transform();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        println!("{:<20} {:>8.2}", view.name(), time_us(imgs, |i, _| t.apply(i, &mut rng)));
    }
}

/// Views per second made by a pipeline of `workers` threads over 32×32 RGB images.
fn pipeline_views_per_s(workers: usize, views: Vec<View>, steps: u64) -> f64 {
    let n = 4096;
    let imgs = images(3, 32, n);
    let pixels: Vec<u8> = imgs.iter().flat_map(|i| i.as_raw().to_vec()).collect();
    let split = Split::in_memory((3, 32, 32), (0..n).map(|i| (i % 10) as u16).collect(), pixels, "bench")
        .expect("consistent in-memory split");
    let norm = Normalize { mean: vec![0.5; 3], std: vec![0.25; 3] };
    let batch = 448;
    let per_step = batch * views.len();
    let stream = StreamSpec { stream: Stream::Unlabeled, pool: (0..n).collect(), batch_size: batch, views };
    let config = PipelineConfig { seed: 0, workers, prefetch: 2 * workers, start_step: 0 };
    let mut p = Pipeline::new(Arc::new(split), norm, vec![stream], &config).expect("valid pipeline");
    for _ in 0..2 {
        black_box(p.next_batch().expect("batch"));
    }
    let t = Instant::now();
    for _ in 0..steps {
        black_box(p.next_batch().expect("batch"));
    }
    (steps as usize * per_step) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    bench_ops("32x32 RGB", &images(3, 32, 256));
    bench_ops("28x28 gray", &images(1, 28, 256));
    println!("\n## pipeline, 32x32 RGB, batch 448 (views/s)");
    for workers in [1, 2] {
        let v = pipeline_views_per_s(workers, vec![View::Weak, View::Strong], 20);
        println!("weak+strong, {workers} worker(s): {v:>10.0}");
    }
    for workers in [1, 2] {
        let v = pipeline_views_per_s(workers, vec![View::SimClr, View::SimClr], 20);
        println!("simclr x2,   {workers} worker(s): {v:>10.0}");
    }
    let strong = pipeline_views_per_s(1, vec![View::Strong], 30);
    println!("strong_views_per_s_per_core={strong:.0}");
}
