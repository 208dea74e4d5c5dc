//! A pipeline worker: builds whole steps, each from seeds that depend on the step alone.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burnish_augment::{Image, Transform};
use crossbeam_channel::{Receiver, Sender};

use super::batch::{Batch, StreamBatch, StreamSpec, ViewBatch};
use super::encode::Normalize;
use super::sampler::Sampler;
use super::PipelineError;
use crate::data::Split;
use crate::seed::{domain, rng_for};

/// What every worker reads; immutable once the pipeline starts.
pub(super) struct Shared {
    pub split: Arc<Split>,
    pub norm: Normalize,
    pub streams: Vec<StreamSpec>,
    pub seed: u64,
    pub stop: Arc<AtomicBool>,
}

/// The worker loop: one step per job until the job channel closes.
pub(super) fn run(shared: &Shared, jobs: &Receiver<u64>, results: &Sender<(u64, Result<Batch, PipelineError>)>) {
    let transforms: Vec<Vec<Box<dyn Transform>>> =
        shared.streams.iter().map(|s| s.views.iter().map(|v| v.transform()).collect()).collect();
    let mut sampler = Sampler::default();
    let mut pixels = Vec::new();
    while let Ok(step) = jobs.recv() {
        // A panic in an augmentation is a bug, but it must reach the trainer as an error rather than a hang.
        let built = catch_unwind(AssertUnwindSafe(|| build(shared, &transforms, &mut sampler, &mut pixels, step)));
        let result = match built {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(panic) => Err(PipelineError::Worker { step, message: panic_message(&panic) }),
        };
        if results.send((step, result)).is_err() {
            return;
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Builds step `step`; `None` when the pipeline is shutting down.
fn build(
    shared: &Shared,
    transforms: &[Vec<Box<dyn Transform>>],
    sampler: &mut Sampler,
    pixels: &mut Vec<u8>,
    step: u64,
) -> Option<Result<Batch, PipelineError>> {
    let split = &shared.split;
    let (c, h, w) = split.shape();
    let image_len = c * h * w;
    let mut streams = Vec::with_capacity(shared.streams.len());
    for (sid, (spec, views)) in shared.streams.iter().zip(transforms).enumerate() {
        let indices = sampler.indices(shared.seed, sid, &spec.pool, spec.batch_size, step);
        let n = indices.len();
        let mut out: Vec<ViewBatch> = spec
            .views
            .iter()
            .map(|&view| ViewBatch { view, shape: [n, c, h, w], data: vec![0.0; n * image_len] })
            .collect();
        for (pos, &index) in indices.iter().enumerate() {
            if shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Err(source) = split.read_pixels(index, pixels) {
                return Some(Err(PipelineError::Data { step, source }));
            }
            let image = Image::from_raw(c, w as u32, h as u32, std::mem::take(pixels))
                .expect("the split guarantees its images match its shape");
            for (vid, (t, dst)) in views.iter().zip(out.iter_mut()).enumerate() {
                let mut rng = rng_for(&[shared.seed, domain::VIEW, step, sid as u64, pos as u64, vid as u64]);
                let view = t.apply(&image, &mut rng);
                shared.norm.write_chw(view.as_raw(), c, &mut dst.data[pos * image_len..(pos + 1) * image_len]);
            }
            *pixels = image.into_raw();
        }
        let labels = indices.iter().map(|&i| split.label(i) as i64).collect();
        streams.push(StreamBatch { stream: spec.stream, indices, labels, views: out });
    }
    Some(Ok(Batch { step, streams }))
}
