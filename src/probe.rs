//! Scoring a frozen encoder: a linear classifier trained on its features, and weighted kNN (docs/data-flow.md,
//! "Evaluation").
//!
//! Features are the backbone's pooled output in eval mode (BatchNorm running statistics), extracted once;
//! the linear probe then trains on those fixed vectors (standardised with the training features' mean and
//! std), which is the usual "linear evaluation" minus augmentation, and cheap enough to run during training.

use burn::module::AutodiffModule;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use rand::seq::SliceRandom;

use crate::backend::TrainBackend;
use crate::data::{DataError, Split};
use crate::kernels::Kernels;
use crate::model::{BnMode, Net};
use crate::pipeline::Normalize;
use crate::seed::rng_for;
use crate::stage::{cross_entropy, l2_normalize};
use crate::train::{load_images, seeded_init, Optim, OptimizerSpec, Schedule};

/// How the linear probe and kNN are run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Passes over the labelled features.
    pub epochs: usize,
    /// Base learning rate (cosine-decayed to zero).
    pub lr: f64,
    /// The optimiser of the linear layer.
    pub optimizer: OptimizerSpec,
    /// Features per optimiser step.
    pub batch_size: usize,
    /// Neighbours of weighted kNN (k = 200 as in InstDisc/solo-learn).
    pub knn_k: usize,
    /// Temperature of kNN's `exp(similarity / T)` votes.
    pub knn_temperature: f64,
    /// Seed of the linear layer's initialisation and the minibatch order.
    pub seed: u64,
}

impl Default for ProbeConfig {
    /// 100 epochs of SGD (momentum 0.9, no weight decay) at lr 0.1, batch 256; kNN with k = 200, T = 0.1.
    fn default() -> Self {
        Self {
            epochs: 100,
            lr: 0.1,
            optimizer: OptimizerSpec::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
                decay_bias_and_norm: false,
            },
            batch_size: 256,
            knn_k: 200,
            knn_temperature: 0.1,
            seed: 0,
        }
    }
}

/// Accuracies of a probe on the test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeResult {
    /// Top-1 accuracy of the linear classifier.
    pub linear_acc: f64,
    /// Top-1 accuracy of weighted kNN.
    pub knn_acc: f64,
    /// Labelled training images the probe learnt from.
    pub train_size: usize,
    /// Test images scored.
    pub test_size: usize,
}

/// Backbone features (eval mode) of `indices` of `split`, `batch` images at a time, and their labels.
pub fn features<B: Kernels>(
    model: &Net<B>,
    split: &Split,
    indices: &[usize],
    norm: &Normalize,
    batch: usize,
    device: &B::Device,
) -> Result<(Tensor<B, 2>, Tensor<B, 1, Int>), DataError> {
    let mut feats = Vec::new();
    let mut labels = Vec::new();
    for chunk in indices.chunks(batch.max(1)) {
        let (x, y) = load_images::<B>(split, chunk, norm, device)?;
        feats.push(model.backbone.forward(x, BnMode::Eval));
        labels.push(y);
    }
    Ok((Tensor::cat(feats, 0), Tensor::cat(labels, 0)))
}

/// Top-1 accuracy of `logits` against `labels`.
fn top1<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> f64 {
    let n = labels.dims()[0].max(1);
    let correct: i64 = logits.argmax(1).squeeze_dim::<1>(1).equal(labels).int().sum().into_scalar().elem();
    correct as f64 / n as f64
}

/// Weighted kNN accuracy: each query votes with its `k` most cosine-similar bank features, weight
/// `exp(similarity / temperature)`, and predicts the class with the largest total.
pub fn knn_accuracy<B: Backend>(
    bank: Tensor<B, 2>,
    bank_labels: Tensor<B, 1, Int>,
    queries: Tensor<B, 2>,
    query_labels: Tensor<B, 1, Int>,
    classes: usize,
    k: usize,
    temperature: f64,
) -> f64 {
    let n = bank.dims()[0];
    let k = k.min(n).max(1);
    let bank = l2_normalize(bank);
    let queries = l2_normalize(queries);
    let q = queries.dims()[0];
    let one_hot = bank_labels.one_hot::<2>(classes).float();
    let mut correct = 0.0;
    // Chunks keep the similarity matrix small for large test sets.
    for start in (0..q).step_by(512) {
        let end = (start + 512).min(q);
        let sim = queries.clone().narrow(0, start, end - start).matmul(bank.clone().transpose());
        let (top, idx) = sim.topk_with_indices(k, 1);
        let weights = top.div_scalar(temperature).exp();
        let rows = end - start;
        let votes = one_hot.clone().select(0, idx.reshape([rows * k])).reshape([rows, k, classes]);
        let scores = (votes * weights.unsqueeze_dim::<3>(2)).sum_dim(1).reshape([rows, classes]);
        correct += top1(scores, query_labels.clone().narrow(0, start, end - start)) * rows as f64;
    }
    correct / q.max(1) as f64
}

/// Trains a linear classifier on `train` features and returns its test accuracy.
pub fn linear_accuracy<B: TrainBackend>(
    train: (Tensor<B::InnerBackend, 2>, Tensor<B::InnerBackend, 1, Int>),
    test: (Tensor<B::InnerBackend, 2>, Tensor<B::InnerBackend, 1, Int>),
    classes: usize,
    cfg: &ProbeConfig,
) -> f64 {
    let (x, y) = train;
    let (n, d) = (x.dims()[0], x.dims()[1]);
    let device = x.device();
    // Standardising makes one learning rate work for encoders whose feature scales differ by orders of magnitude.
    let mean = x.clone().mean_dim(0);
    let std = (x.clone() - mean.clone()).powf_scalar(2.0).mean_dim(0).sqrt().add_scalar(1e-6);
    let standardise = |t: Tensor<B::InnerBackend, 2>| (t - mean.clone()) / std.clone();
    let x = standardise(x);
    let x_test = standardise(test.0);
    let mut layer: Linear<B> = seeded_init::<B, _>(cfg.seed, &device, || LinearConfig::new(d, classes).init(&device));
    let mut optim = Optim::<B, Linear<B>>::new(cfg.optimizer.clone());
    let batch = cfg.batch_size.max(1);
    let steps_per_epoch = n.div_ceil(batch);
    let total = (cfg.epochs * steps_per_epoch) as u64;
    let schedule = Schedule::Cosine { warmup: 0 };
    let mut order: Vec<usize> = (0..n).collect();
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng_for(&[cfg.seed, epoch as u64]));
        for chunk in order.chunks(batch) {
            let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<B::InnerBackend, 1, Int>::from_data(TensorData::new(idx, [chunk.len()]), &device);
            let xb = Tensor::<B, 2>::from_inner(x.clone().select(0, idx.clone()));
            let yb = Tensor::<B, 1, Int>::from_inner(y.clone().select(0, idx));
            let loss = cross_entropy(layer.forward(xb), yb, 0.0);
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = optim.step(schedule.lr(cfg.lr, step, total), layer, grads);
            step += 1;
        }
    }
    top1(layer.valid().forward(x_test), test.1)
}

/// Linear-probe and kNN accuracy of `model`'s frozen backbone: trained on `train_indices` of `train`, scored on
/// all of `test`.
#[allow(clippy::too_many_arguments)]
pub fn probe<B: TrainBackend>(
    model: &Net<B::InnerBackend>,
    train: &Split,
    train_indices: &[usize],
    test: &Split,
    classes: usize,
    norm: &Normalize,
    batch: usize,
    cfg: &ProbeConfig,
) -> Result<ProbeResult, DataError> {
    let device = model.classifier.weight.device();
    let train_f = features(model, train, train_indices, norm, batch, &device)?;
    let all: Vec<usize> = (0..test.len()).collect();
    let test_f = features(model, test, &all, norm, batch, &device)?;
    let knn_acc = knn_accuracy(
        train_f.0.clone(),
        train_f.1.clone(),
        test_f.0.clone(),
        test_f.1.clone(),
        classes,
        cfg.knn_k,
        cfg.knn_temperature,
    );
    let linear_acc = linear_accuracy::<B>(train_f, test_f, classes, cfg);
    Ok(ProbeResult { linear_acc, knn_acc, train_size: train_indices.len(), test_size: all.len() })
}
