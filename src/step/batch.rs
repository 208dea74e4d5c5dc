//! A pipeline batch moved onto the device: one image tensor per (stream, view) and the labels per stream.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burnish_augment::View;

use crate::pipeline::Batch;
pub use crate::pipeline::Stream;

/// One input of the step's forward: a view of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewKey {
    /// The stream.
    pub stream: Stream,
    /// The augmentation that made the view.
    pub view: View,
    /// Which draw of that augmentation (SimCLR's two views of an image are copies 0 and 1 of `simclr`).
    pub copy: u8,
}

impl ViewKey {
    /// The first (usually only) view of a kind in a stream.
    pub fn new(stream: Stream, view: View) -> Self {
        Self { stream, view, copy: 0 }
    }

    /// The `copy`-th view of a kind in a stream (0-based).
    pub fn nth(stream: Stream, view: View, copy: u8) -> Self {
        Self { stream, view, copy }
    }

    /// Keys of a stream's views in pipeline order, numbering repeated views.
    pub fn for_views(stream: Stream, views: &[View]) -> Vec<Self> {
        views
            .iter()
            .enumerate()
            .map(|(i, &v)| Self::nth(stream, v, views[..i].iter().filter(|&&w| w == v).count() as u8))
            .collect()
    }
}

impl std::fmt::Display for ViewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream.name(), self.view.name())?;
        if self.copy > 0 {
            write!(f, "#{}", self.copy)?;
        }
        Ok(())
    }
}

/// The step's images and labels on the device.
#[derive(Debug, Clone)]
pub struct StepBatch<B: Backend> {
    /// One tensor `[N, C, H, W]` per view of each stream.
    pub images: Vec<(ViewKey, Tensor<B, 4>)>,
    /// The labels of each stream (the unlabeled stream's are for metrics only).
    pub labels: Vec<(Stream, Tensor<B, 1, Int>)>,
}

impl<B: Backend> StepBatch<B> {
    /// Uploads a pipeline batch.
    pub fn from_batch(batch: &Batch, device: &B::Device) -> Self {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for s in &batch.streams {
            let stream = s.stream;
            let kinds: Vec<View> = s.views.iter().map(|v| v.view).collect();
            for (v, key) in s.views.iter().zip(ViewKey::for_views(stream, &kinds)) {
                let data = TensorData::new(v.data.clone(), v.shape);
                images.push((key, Tensor::from_data(data, device)));
            }
            let data = TensorData::new(s.labels.clone(), [s.labels.len()]);
            labels.push((stream, Tensor::from_data(data, device)));
        }
        Self { images, labels }
    }

    /// The images of one view, if the batch has it.
    pub fn view(&self, key: ViewKey) -> Option<&Tensor<B, 4>> {
        self.images.iter().find(|(k, _)| *k == key).map(|(_, t)| t)
    }

    /// The images of several views concatenated in the given order, or the first missing view.
    pub fn images(&self, keys: &[ViewKey]) -> Result<Tensor<B, 4>, ViewKey> {
        let parts = keys.iter().map(|&k| self.view(k).cloned().ok_or(k)).collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(parts, 0))
    }

    /// The labels of a stream, if the batch has it.
    pub fn labels(&self, stream: Stream) -> Option<&Tensor<B, 1, Int>> {
        self.labels.iter().find(|(s, _)| *s == stream).map(|(_, t)| t)
    }

    /// Splits every stream into `chunks` equal parts along the batch (for m-sharpness); the last part takes the rest.
    pub fn chunks(&self, chunks: usize) -> Vec<Self> {
        let split = |n: usize, i: usize| {
            let size = n / chunks;
            let start = i * size;
            let end = if i + 1 == chunks { n } else { start + size };
            start..end
        };
        (0..chunks)
            .map(|i| Self {
                images: self.images.iter().map(|(k, t)| (*k, t.clone().slice([split(t.dims()[0], i)]))).collect(),
                labels: self.labels.iter().map(|(s, t)| (*s, t.clone().slice([split(t.dims()[0], i)]))).collect(),
            })
            .collect()
    }
}
