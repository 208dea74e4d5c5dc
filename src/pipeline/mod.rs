//! The multithreaded, deterministic augmentation pipeline that feeds training steps.
//!
//! A pool of worker threads builds whole steps: a worker takes a step number from the job channel, samples each
//! stream's indices for that step (see [`sampler`]), makes every view of every sample with a generator seeded by
//! (run seed, step, stream, sample, view), and sends the finished [`Batch`] back. The consumer keeps at most
//! `prefetch` steps in flight and hands them out in step order, so the output is bit-identical whatever the
//! number of workers, and resuming at step `s` needs nothing but `s`.

mod batch;
mod encode;
pub mod sampler;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

pub use batch::{Batch, Stream, StreamBatch, StreamSpec, ViewBatch};
pub use encode::Normalize;

use crate::data::{DataError, Split};

/// How a pipeline runs: its seed, its threads, how far it reads ahead and where it starts.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Run seed; together with the step it fixes every sample and every augmentation.
    pub seed: u64,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Steps built ahead of the consumer (at least 1); bounds the memory the pipeline holds.
    pub prefetch: usize,
    /// First step to produce (non-zero when resuming).
    pub start_step: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self { seed: 0, workers: 2, prefetch: 4, start_step: 0 }
    }
}

/// Why the pipeline could not deliver a step.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A sample could not be read (the message names the file).
    #[error("step {step}: {source}")]
    Data {
        /// The step being built.
        step: u64,
        /// What went wrong reading the sample.
        #[source]
        source: DataError,
    },
    /// The pipeline was set up with settings that cannot work.
    #[error("pipeline: {0}")]
    Config(String),
    /// A worker thread died (a bug, reported instead of hanging).
    #[error("pipeline worker failed at step {step}: {message}")]
    Worker {
        /// The step being built.
        step: u64,
        /// The worker's panic message.
        message: String,
    },
}

/// A running pipeline; yields one [`Batch`] per call to [`Pipeline::next_batch`], forever.
pub struct Pipeline {
    jobs: Option<Sender<u64>>,
    results: Receiver<(u64, Result<Batch, PipelineError>)>,
    ready: BTreeMap<u64, Result<Batch, PipelineError>>,
    next_step: u64,
    next_submit: u64,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the workers over `split`, normalising with `norm`, for the given streams.
    pub fn new(
        split: Arc<Split>,
        norm: Normalize,
        streams: Vec<StreamSpec>,
        config: &PipelineConfig,
    ) -> Result<Self, PipelineError> {
        validate(&split, &norm, &streams, config)?;
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<u64>();
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(worker::Shared { split, norm, streams, seed: config.seed, stop: stop.clone() });
        let workers = (0..config.workers)
            .map(|i| {
                let (jobs, results, shared) = (job_rx.clone(), res_tx.clone(), shared.clone());
                std::thread::Builder::new()
                    .name(format!("burnish-pipeline-{i}"))
                    .spawn(move || worker::run(&shared, &jobs, &results))
                    .map_err(|e| PipelineError::Config(format!("cannot start worker thread: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut pipeline = Self {
            jobs: Some(job_tx),
            results: res_rx,
            ready: BTreeMap::new(),
            next_step: config.start_step,
            next_submit: config.start_step,
            stop,
            workers,
        };
        for _ in 0..config.prefetch {
            pipeline.submit();
        }
        Ok(pipeline)
    }

    fn submit(&mut self) {
        if let Some(jobs) = &self.jobs {
            // The workers only stop receiving once `jobs` is dropped, so this send cannot fail while we hold it.
            let _ = jobs.send(self.next_submit);
            self.next_submit += 1;
        }
    }

    /// The step the next call to [`Pipeline::next_batch`] returns.
    pub fn position(&self) -> u64 {
        self.next_step
    }

    /// Blocks until the next step's batch is ready and returns it (or the error that step hit).
    pub fn next_batch(&mut self) -> Result<Batch, PipelineError> {
        self.submit();
        let step = self.next_step;
        let result = loop {
            if let Some(r) = self.ready.remove(&step) {
                break r;
            }
            match self.results.recv() {
                Ok((s, r)) => {
                    self.ready.insert(s, r);
                }
                Err(_) => {
                    break Err(PipelineError::Worker { step, message: "all workers have exited".into() });
                }
            }
        };
        self.next_step += 1;
        result
    }
}

impl Iterator for Pipeline {
    type Item = Result<Batch, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch())
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Closing the job channel ends each worker's loop; the flag makes a worker abandon a step mid-build.
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn validate(
    split: &Split,
    norm: &Normalize,
    streams: &[StreamSpec],
    config: &PipelineConfig,
) -> Result<(), PipelineError> {
    let bad = |m: String| Err(PipelineError::Config(m));
    if config.workers == 0 {
        return bad("workers must be at least 1".into());
    }
    if config.prefetch == 0 {
        return bad("prefetch must be at least 1".into());
    }
    let (channels, _, _) = split.shape();
    if norm.mean.len() != channels || norm.std.len() != channels {
        return bad(format!(
            "normalisation has {} means and {} stds for {channels}-channel images",
            norm.mean.len(),
            norm.std.len()
        ));
    }
    if let Some(s) = norm.std.iter().find(|s| **s <= 0.0 || !s.is_finite()) {
        return bad(format!("normalisation std {s} must be positive"));
    }
    for s in streams {
        if s.batch_size == 0 {
            return bad(format!("stream `{}`: batch size must be at least 1", s.stream.name()));
        }
        if s.pool.is_empty() {
            return bad(format!("stream `{}`: no samples to draw from", s.stream.name()));
        }
        if s.views.is_empty() {
            return bad(format!("stream `{}`: no views", s.stream.name()));
        }
        if let Some(i) = s.pool.iter().find(|&&i| i >= split.len()) {
            return bad(format!(
                "stream `{}`: sample index {i} is outside the split of {}",
                s.stream.name(),
                split.len()
            ));
        }
    }
    Ok(())
}
