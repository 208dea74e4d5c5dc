//! The step's one clean forward: every view the stages read goes through the model in a single concatenated
//! batch, so BatchNorm sees the whole step (as USB does), and stages read their rows back by key.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::batch::{StepBatch, ViewKey};
use super::StepError;
use crate::kernels::Kernels;
use crate::model::{BnMode, Net, NetOutput};

/// Outputs of one forward over several views, addressable per view.
#[derive(Debug, Clone)]
pub struct Forward<B: Backend> {
    /// The model's outputs for the concatenated batch.
    pub output: NetOutput<B>,
    /// The concatenated input, kept for passes at perturbed parameters over the same images.
    pub input: Tensor<B, 4>,
    segments: Vec<(ViewKey, usize, usize)>,
}

impl<B: Kernels> Forward<B> {
    /// Runs `model` once over the concatenation of `keys` (in that order) from `batch`.
    pub fn run(model: &Net<B>, batch: &StepBatch<B>, keys: &[ViewKey], mode: BnMode) -> Result<Self, StepError> {
        let mut parts = Vec::with_capacity(keys.len());
        let mut segments = Vec::with_capacity(keys.len());
        let mut start = 0;
        for &key in keys {
            let t = batch.view(key).ok_or(StepError::MissingView(key))?;
            let n = t.dims()[0];
            segments.push((key, start, start + n));
            start += n;
            parts.push(t.clone());
        }
        let input = Tensor::cat(parts, 0);
        let output = model.forward(input.clone(), mode);
        Ok(Self { output, input, segments })
    }

    /// Whether the forward ran over exactly `keys`, in this order and nothing else: then BatchNorm normalised
    /// exactly those images, and a pass at perturbed parameters over them can be compared with this one.
    pub fn holds_exactly(&self, keys: &[ViewKey]) -> bool {
        self.segments.len() == keys.len() && self.segments.iter().zip(keys).all(|((k, _, _), key)| k == key)
    }

    /// Row range of a view in the concatenated batch.
    pub fn rows(&self, key: ViewKey) -> Option<std::ops::Range<usize>> {
        self.segments.iter().find(|(k, _, _)| *k == key).map(|&(_, s, e)| s..e)
    }

    /// Logits of one view.
    pub fn logits(&self, key: ViewKey) -> Option<Tensor<B, 2>> {
        self.rows(key).map(|r| self.output.logits.clone().slice([r]))
    }

    /// Projection-head outputs of one view (when the model has a head).
    pub fn projections(&self, key: ViewKey) -> Option<Tensor<B, 2>> {
        let r = self.rows(key)?;
        self.output.projections.as_ref().map(|p| p.clone().slice([r]))
    }

    /// Input images of several views, concatenated in the given order.
    pub fn inputs(&self, keys: &[ViewKey]) -> Option<Tensor<B, 4>> {
        let parts =
            keys.iter().map(|&k| self.rows(k).map(|r| self.input.clone().slice([r]))).collect::<Option<Vec<_>>>()?;
        Some(Tensor::cat(parts, 0))
    }
}
