//! What the pipeline hands the training step: per stream, the samples' labels and one tensor-ready buffer per view.

use burnish_augment::View;

/// Which stream of a step a batch part comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// The few labelled images (B per step).
    Labeled,
    /// The unlabeled images (μB per step).
    Unlabeled,
}

impl Stream {
    /// The name recipes, metrics and messages use for the stream.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Labeled => "labeled",
            Stream::Unlabeled => "unlabeled",
        }
    }
}

/// One stream of a training step: which samples, which views of them, how many per step.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Which stream this is; the step reads its views by it.
    pub stream: Stream,
    /// Indices into the training split that this stream samples from.
    pub pool: Vec<usize>,
    /// Samples per step.
    pub batch_size: usize,
    /// Views made of every sample, in order (e.g. weak then strong).
    pub views: Vec<View>,
}

/// One view of every sample of a stream, as a normalised f32 NCHW buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewBatch {
    /// Which augmentation made it.
    pub view: View,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// Row-major pixel values, `N·C·H·W` of them.
    pub data: Vec<f32>,
}

/// A stream's share of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamBatch {
    /// The stream of its [`StreamSpec`].
    pub stream: Stream,
    /// Training-split indices of the samples, in batch order.
    pub indices: Vec<usize>,
    /// True labels of the samples (for unlabeled streams only metrics may read them).
    pub labels: Vec<i64>,
    /// One entry per view of the spec, in the spec's order.
    pub views: Vec<ViewBatch>,
}

/// Everything one training step consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The global step this batch belongs to.
    pub step: u64,
    /// One entry per stream, in the order the streams were given.
    pub streams: Vec<StreamBatch>,
}

impl Batch {
    /// The part of `stream`, if the pipeline draws it.
    pub fn stream(&self, stream: Stream) -> Option<&StreamBatch> {
        self.streams.iter().find(|s| s.stream == stream)
    }
}

impl StreamBatch {
    /// The first view made with augmentation `view`, if the stream makes one.
    pub fn view(&self, view: View) -> Option<&ViewBatch> {
        self.views.iter().find(|v| v.view == view)
    }
}
