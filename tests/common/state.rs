//! Trainers built from a recipe on any backend, their batches, and their weights as plain numbers: what the tests
//! that compare two trainings (two backends, one device and several) share.
#![allow(dead_code)]

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burnish::backend::TrainBackend;
use burnish::pipeline::{Batch, Pipeline};
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::train::Trainer;

/// The trainer `burnish train` builds for `r` on `device`, with the recipe's seeded model.
pub fn trainer<B: TrainBackend>(r: &Recipe, device: &B::Device) -> Trainer<B> {
    let data = plan::data(r).expect("synthetic data");
    let (channels, _, _) = data.dataset.shape();
    let model = Trainer::<B>::init_model(&plan::net(r, channels, data.dataset.num_classes), r.seed, device);
    let objective = plan::objective::<B>(r).expect("stages build");
    Trainer::new(model, objective, plan::update_rule(r), plan::train_settings(r), device.clone())
}

/// The first `count` global batches of `r`'s pipeline.
pub fn batches(r: &Recipe, count: usize) -> Vec<Batch> {
    let data = plan::data(r).expect("synthetic data");
    let mut p =
        Pipeline::new(data.train.clone(), data.norm.clone(), data.streams.clone(), &plan::pipeline_config(r, 0))
            .expect("pipeline");
    (0..count).map(|_| p.next_batch().expect("batch")).collect()
}

/// `batch` with every stream's second half replaced by its first half's images, and the labelled stream's second
/// half relabelled (class + 1): the two shards of N = 2 normalise the same statistics as the whole batch.
pub fn mirrored(batch: &Batch, classes: i64) -> Batch {
    let mut b = batch.clone();
    for s in &mut b.streams {
        let half = s.indices.len() / 2;
        for v in &mut s.views {
            let row = v.data.len() / v.shape[0];
            let (first, second) = v.data.split_at_mut(half * row);
            second.copy_from_slice(first);
        }
        if s.stream == burnish::step::Stream::Labeled {
            for i in 0..half {
                s.labels[half + i] = (s.labels[i] + 1) % classes;
            }
        }
    }
    b
}

/// `batch` with a seeded jitter of σ = 1e-3 (normalised units) on every pixel of every view. The synthetic images
/// have flat regions (650 distinct values in a batch's 24,576 pixels), whose identical patches give many equal
/// pre-activations and so make near-ties at ReLU's zero likelier; without the jitter, two computations that round
/// differently (N = 2 and N = 1 with gemm's AVX-512 kernels) end 1.2 % of the distance moved apart over three plain
/// steps, with it 2e-6 (docs/devices.md, "Determinism").
pub fn jittered(batch: &Batch) -> Batch {
    let mut b = batch.clone();
    for (k, s) in b.streams.iter_mut().enumerate() {
        for (j, v) in s.views.iter_mut().enumerate() {
            let seed = (batch.step << 8) + 16 * k as u64 + j as u64;
            let noise = super::fd::gaussian_values(v.data.len(), seed, 1e-3);
            for (x, e) in v.data.iter_mut().zip(noise) {
                *x += e as f32;
            }
        }
    }
    b
}

/// The model's running statistics (its floats that are not trained), in visit order; [`super::fd::flatten`] gives
/// the trained ones.
pub fn running_stats<B: burn::tensor::backend::Backend, M: Module<B>>(m: &M) -> Vec<f64> {
    struct Buffers(Vec<f64>);
    impl<B: burn::tensor::backend::Backend> ModuleVisitor<B> for Buffers {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if !p.is_require_grad() {
                self.0.extend(super::fd::to_vec(p.val()));
            }
        }
    }
    let mut f = Buffers(Vec::new());
    m.visit(&mut f);
    f.0
}

/// The largest absolute difference between two equally long vectors.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
