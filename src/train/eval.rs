//! Test-set evaluation: top-1 accuracy and mean cross-entropy of a model in eval mode (BatchNorm running statistics),
//! no augmentation.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};

use crate::data::{DataError, Split};
use crate::kernels::Kernels;
use crate::model::{BnMode, Net};
use crate::pipeline::Normalize;

/// Correct and total counts of a classification run, and its summed cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Accuracy {
    /// Correctly classified samples.
    pub correct: usize,
    /// Samples seen.
    pub total: usize,
    /// Σ of the samples' cross-entropy (nats).
    pub loss_sum: f64,
}

impl Accuracy {
    /// The fraction correct (0 when nothing was seen).
    pub fn value(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }

    /// The mean cross-entropy (NaN when nothing was seen).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.total as f64
    }
}

/// Loads images `indices` of `split` as one normalised `[N, C, H, W]` tensor and their labels.
pub fn load_images<B: Backend>(
    split: &Split,
    indices: &[usize],
    norm: &Normalize,
    device: &B::Device,
) -> Result<(Tensor<B, 4>, Tensor<B, 1, Int>), DataError> {
    let (c, h, w) = split.shape();
    let len = c * h * w;
    let mut data = vec![0f32; indices.len() * len];
    let mut pixels = Vec::with_capacity(len);
    for (k, &i) in indices.iter().enumerate() {
        split.read_pixels(i, &mut pixels)?;
        norm.write_chw(&pixels, c, &mut data[k * len..(k + 1) * len]);
    }
    let labels: Vec<i64> = indices.iter().map(|&i| split.label(i) as i64).collect();
    let images = Tensor::from_data(TensorData::new(data, [indices.len(), c, h, w]), device);
    let labels = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
    Ok((images, labels))
}

/// Top-1 accuracy and cross-entropy of `model` (eval mode) on `indices` of `split` (all of it when `None`), `batch`
/// images at a time.
pub fn accuracy<B: Kernels>(
    model: &Net<B>,
    split: &Split,
    indices: Option<&[usize]>,
    norm: &Normalize,
    batch: usize,
    device: &B::Device,
) -> Result<Accuracy, DataError> {
    let all: Vec<usize>;
    let indices = match indices {
        Some(i) => i,
        None => {
            all = (0..split.len()).collect();
            &all
        }
    };
    let mut acc = Accuracy::default();
    for chunk in indices.chunks(batch.max(1)) {
        let (x, y) = load_images::<B>(split, chunk, norm, device)?;
        let logits = model.forward(x, BnMode::Eval).logits;
        let nll = log_softmax(logits.clone(), 1).gather(1, y.clone().unsqueeze_dim(1)).sum().neg();
        let pred = logits.argmax(1).squeeze_dim::<1>(1);
        let correct: i64 = pred.equal(y).int().sum().into_scalar().elem();
        acc.correct += correct as usize;
        acc.loss_sum += nll.into_data().convert::<f64>().to_vec::<f64>().map_or(f64::NAN, |v| v[0]);
        acc.total += chunk.len();
    }
    Ok(acc)
}
