//! The least memory a recipe needs, checked against what the machine has ([`crate::memory::available`]) when the
//! recipe is validated, before anything is allocated: a recipe that cannot fit is an error naming the key that
//! blew it up, instead of an abort with "memory allocation of … bytes failed" when the data set is generated or the
//! first batch is built.
//!
//! The estimate is a lower bound, so that a recipe that fits is never refused. Its parts:
//! - **data set**: the pixels held in memory as u8: Fashion-MNIST and MNIST 70,000 × 1×28×28, CIFAR 60,000 ×
//!   3×32×32, synthetic (train + test size) × 3×32×32; image folders are decoded on each read and hold none.
//! - **input batches**: every image of a step (B per labelled view, μB per unlabeled view) as f32 C×H×W, for the
//!   `prefetch` steps the pipeline builds ahead plus the one being trained on.
//! - **activations**: for each image of the step's clean forward (B per labelled view and μB per unlabeled view
//!   that some stage declares it reads), the input of every convolution as f32, which autodiff keeps for the weight
//!   gradients; batch norms, ReLUs, im2col buffers and gradients come on top and are not counted.
//! - **evaluation**: `eval.batch_size` images and the largest convolution input of each. It runs between steps, so
//!   only the larger of it and the activations counts.
//! - **parameters**: the 3×3 convolution weights (in a residual group all but the first) and the projection head,
//!   kept twice (weights and gradients) and once more for the EMA.
//!
//! Measured with `burnish bench` (2 steps, CPU), the real peak resident memory is 2.8 to 4.9 times the estimate:
//! 355 MiB against 76 MiB for `quickstart`, 422 against 153 for `bench/wrn-28-2`, 731 against 149 for
//! `bench/fixmatch-cnn-small`. The largest shipped recipe, `cifar10/simclr`, is estimated at 3.3 GiB.
//!
//! With the `cuda` backend the model's tensors live in GPU memory, which this check does not see: there only the
//! data set, the input batches and evaluation's input batch count.
//!
//! When the sum exceeds what is available, the error names the key, among those scaling the largest part, that is
//! furthest above its usual value (`data.batch_size` against 64, `data.mu` against 7, …), and gives the estimate,
//! its largest part and the memory available.

use super::Recipe;
use crate::check::{Check, Problem};
use crate::data::{synthetic, DatasetKind};
use crate::memory::{self, format_bytes, Available};
use crate::model::Arch;
use crate::step::Stream;

/// Whether the model's tensors (parameters, activations) live in this process's memory: not with CUDA.
const MODEL_ON_HOST: bool = !cfg!(feature = "cuda");

/// Bytes of an f32.
const F32: u128 = 4;

/// Checks that the recipe's least memory need fits in what this machine has available now.
pub(crate) fn check(r: &Recipe) -> Check {
    check_against(r, &memory::available(), MODEL_ON_HOST)
}

/// [`check`] against a given amount of memory.
fn check_against(r: &Recipe, available: &Available, model_on_host: bool) -> Check {
    let estimate = Estimate::of(r, model_on_host);
    let total = estimate.total();
    if total <= u128::from(available.bytes) {
        return Ok(());
    }
    let worst = estimate.largest();
    Err(Problem::new(
        worst.key(),
        format!(
            "the recipe needs at least {} of memory but {} is available ({}); the largest part is {}: {}",
            format_bytes(total),
            format_bytes(available.bytes.into()),
            available.source,
            worst.what,
            format_bytes(worst.bytes),
        ),
    ))
}

/// One part of the estimate.
#[derive(Debug)]
struct Part {
    /// What the bytes hold, for the message.
    what: String,
    /// Bytes, at least.
    bytes: u128,
    /// The keys that scale this part, each with how many times its usual value it is.
    suspects: Vec<(&'static str, f64)>,
}

impl Part {
    /// The key to blame when this part is too large: the one furthest above its usual value.
    fn key(&self) -> &'static str {
        self.suspects.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map_or("data", |s| s.0)
    }
}

/// The parts of a recipe's memory need.
#[derive(Debug)]
struct Estimate {
    data: Part,
    batches: Part,
    activations: Part,
    eval: Part,
    params: Part,
}

impl Estimate {
    fn of(r: &Recipe, model_on_host: bool) -> Self {
        let d = &r.data;
        let (c, h, w) = image_shape(r);
        let image = c.saturating_mul(h).saturating_mul(w);
        let shape = format!("{c}x{h}x{w}");
        let b = d.batch_size as u128;
        let mu_b = (d.mu as u128).saturating_mul(b);
        let usual = |value: usize, usual: f64| value as f64 / usual;
        // For an image folder the image side is a recipe key too; its area is what scales the memory.
        let size_suspect = (d.dataset == DatasetKind::ImageFolder)
            .then(|| ("data.image_size", usual(d.image_size, 32.0).powi(2)))
            .into_iter();
        let batch_suspects = || {
            let mut s = vec![("data.batch_size", usual(d.batch_size, 64.0)), ("data.mu", usual(d.mu, 7.0))];
            s.extend(size_suspect.clone());
            s
        };

        let (stored, data_suspects) = match d.dataset {
            DatasetKind::FashionMnist | DatasetKind::Mnist => (70_000, vec![("data.dataset", 1.0)]),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => (60_000, vec![("data.dataset", 1.0)]),
            DatasetKind::Synthetic => (
                (d.synthetic_train_size as u128).saturating_add(d.synthetic_test_size as u128),
                vec![
                    ("data.synthetic_train_size", usual(d.synthetic_train_size, 10_000.0)),
                    ("data.synthetic_test_size", usual(d.synthetic_test_size, 2_000.0)),
                ],
            ),
            DatasetKind::ImageFolder => (0, vec![("data.dataset", 1.0)]),
        };
        let data = Part {
            what: format!("the data set's pixels ({} images of {shape})", count(stored)),
            bytes: stored.saturating_mul(image),
            suspects: data_suspects,
        };

        let views = |n: usize| n as u128;
        let step_images = b
            .saturating_mul(views(d.labeled_views.len()))
            .saturating_add(mu_b.saturating_mul(views(d.unlabeled_views.len())));
        let steps = (d.prefetch as u128).saturating_add(1);
        let mut suspects = batch_suspects();
        suspects.push(("data.prefetch", usual(d.prefetch.saturating_add(1), 5.0)));
        let view_count = d.labeled_views.len().saturating_add(d.unlabeled_views.len());
        suspects.push(("data.unlabeled_views", usual(view_count, 3.0)));
        let batches = Part {
            what: format!(
                "the input batches in flight ({} steps of {} images of {shape} f32)",
                count(steps),
                count(step_images)
            ),
            bytes: steps.saturating_mul(step_images).saturating_mul(image).saturating_mul(F32),
            suspects,
        };

        let arch = r.model.arch;
        let convs = ConvInputs::of(arch, c, h, w);
        let arch_suspect = ("model.arch", ConvInputs::of(arch, 3, 32, 32).ratio_to_resnet18());
        // The step's clean forward holds every view the stages read: B rows per labelled view, μB per unlabeled one.
        let read = r.stage_views();
        let count_of = |stream: Stream| read.iter().filter(|k| k.stream == stream).count();
        let labelled = b.saturating_mul(views(count_of(Stream::Labeled)));
        let unlabeled = mu_b.saturating_mul(views(count_of(Stream::Unlabeled)));
        let forward = labelled.saturating_add(unlabeled);
        let mut suspects = batch_suspects();
        suspects.push(arch_suspect);
        let activations = Part {
            what: format!(
                "the activations of the training forward ({} images through {arch} at {shape})",
                count(forward)
            ),
            bytes: if model_on_host { forward.saturating_mul(convs.sum).saturating_mul(F32) } else { 0 },
            suspects,
        };

        let eval_images = r.eval.batch_size as u128;
        let per_image = if model_on_host { image.saturating_add(convs.largest) } else { image };
        let mut suspects = vec![("eval.batch_size", usual(r.eval.batch_size, 256.0)), arch_suspect];
        suspects.extend(size_suspect.clone());
        let eval = Part {
            what: format!("evaluation ({eval_images} images per batch through {arch} at {shape})"),
            bytes: eval_images.saturating_mul(per_image).saturating_mul(F32),
            suspects,
        };

        let (weights, mut suspects) = weights(r, c);
        let copies = 2 + u128::from(r.ema.enabled);
        let head = if r.model.projection.is_some() { " and its projection head" } else { "" };
        let params = Part {
            what: format!("the parameters ({} weights of {arch}{head}, kept {copies} times)", count(weights)),
            bytes: if model_on_host { weights.saturating_mul(copies).saturating_mul(F32) } else { 0 },
            suspects: {
                suspects.push(("model.arch", weights_of(arch, 3) as f64 / WRN_28_10_WEIGHTS));
                suspects
            },
        };
        Estimate { data, batches, activations, eval, params }
    }

    /// Bytes needed at once: evaluation runs between steps, so only the larger of it and the activations counts.
    fn total(&self) -> u128 {
        [&self.data, &self.batches, &self.params, self.peak()].iter().fold(0, |sum, p| sum.saturating_add(p.bytes))
    }

    fn peak(&self) -> &Part {
        if self.eval.bytes > self.activations.bytes {
            &self.eval
        } else {
            &self.activations
        }
    }

    fn largest(&self) -> &Part {
        [&self.data, &self.batches, &self.params, &self.activations, &self.eval]
            .into_iter()
            .max_by_key(|p| p.bytes)
            .unwrap_or(&self.data)
    }
}

/// A count for a message; one that saturated is beyond any real number of anything.
fn count(n: u128) -> String {
    if n == u128::MAX {
        "more than 10^38".to_string()
    } else {
        n.to_string()
    }
}

/// (channels, height, width) of the images of the recipe's data set, as the pipeline hands them out.
fn image_shape(r: &Recipe) -> (u128, u128, u128) {
    let side = synthetic::SIDE as u128;
    match r.data.dataset {
        DatasetKind::FashionMnist | DatasetKind::Mnist => (1, 28, 28),
        DatasetKind::Cifar10 | DatasetKind::Cifar100 | DatasetKind::Synthetic => (3, side, side),
        DatasetKind::ImageFolder => {
            let size = r.data.image_size as u128;
            (r.data.image_channels as u128, size, size)
        }
    }
}

/// Elements of the convolution inputs of a backbone for one image: their sum and the largest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ConvInputs {
    sum: u128,
    largest: u128,
}

impl ConvInputs {
    /// The inputs a lower bound can be sure of: in a residual group those of every convolution but the first (which
    /// may read the previous group's width and resolution); shortcut convolutions are left out.
    fn of(arch: Arch, c: u128, h: u128, w: u128) -> Self {
        // (how many convolutions, elements of the input of each)
        let mut layers: Vec<(u128, u128)> = vec![(1, c.saturating_mul(h).saturating_mul(w))];
        let area = |h: u128, w: u128| h.saturating_mul(w);
        match arch {
            Arch::CnnSmall => {
                // conv-conv-pool-conv-conv-pool-conv (see `CnnSmallConfig`).
                let (h2, w2) = (h / 2, w / 2);
                let (h4, w4) = (h2 / 2, w2 / 2);
                let plane = |width: u128, h: u128, w: u128| width.saturating_mul(area(h, w));
                layers.extend([(1, plane(32, h, w)), (1, plane(32, h2, w2)), (1, plane(64, h2, w2))]);
                layers.push((1, plane(64, h4, w4)));
            }
            Arch::Wrn { depth, widen } => {
                let blocks = (depth.saturating_sub(4) / 6) as u128;
                let k = widen as u128;
                let (mut gh, mut gw) = (h, w);
                for (g, width) in [16, 32, 64].into_iter().enumerate() {
                    if g > 0 {
                        // A stride-2 3×3 convolution with padding 1.
                        (gh, gw) = (gh.div_ceil(2), gw.div_ceil(2));
                    }
                    let count = blocks.saturating_mul(2).saturating_sub(1);
                    layers.push((count, k.saturating_mul(width).saturating_mul(area(gh, gw))));
                }
            }
            Arch::ResNet18Cifar => {
                let (mut gh, mut gw) = (h, w);
                for (g, width) in [64u128, 128, 256, 512].into_iter().enumerate() {
                    if g > 0 {
                        (gh, gw) = (gh.div_ceil(2), gw.div_ceil(2));
                    }
                    // Two basic blocks of two convolutions each.
                    layers.push((3, width.saturating_mul(area(gh, gw))));
                }
            }
        }
        ConvInputs {
            sum: layers.iter().fold(0, |s, &(n, e)| s.saturating_add(n.saturating_mul(e))),
            largest: layers.iter().filter(|(n, _)| *n > 0).map(|&(_, e)| e).max().unwrap_or(0),
        }
    }

    /// How many times the activations of `resnet18-cifar`, the largest shipped backbone, these are.
    fn ratio_to_resnet18(self) -> f64 {
        self.sum as f64 / ConvInputs::of(Arch::ResNet18Cifar, 3, 32, 32).sum as f64
    }
}

/// Weights of `wrn-28-10`, the largest usual backbone (about 36.5 million), against which `model.arch` is judged.
const WRN_28_10_WEIGHTS: f64 = 36.5e6;

/// 3×3 convolution weights of a backbone for `c`-channel images, as counted by [`ConvInputs::of`].
fn weights_of(arch: Arch, c: u128) -> u128 {
    let conv = |c_in: u128, c_out: u128| 9u128.saturating_mul(c_in).saturating_mul(c_out);
    match arch {
        // `c` comes from the recipe (`data.image_channels`), so even the first term can saturate.
        Arch::CnnSmall => [conv(c, 32), conv(32, 32), conv(32, 64), conv(64, 64), conv(64, 128)]
            .into_iter()
            .fold(0, u128::saturating_add),
        Arch::Wrn { depth, widen } => {
            let blocks = (depth.saturating_sub(4) / 6) as u128;
            let k = widen as u128;
            [16u128, 32, 64].into_iter().fold(0u128, |sum, width| {
                let c = k.saturating_mul(width);
                sum.saturating_add(blocks.saturating_mul(2).saturating_sub(1).saturating_mul(conv(c, c)))
            })
        }
        Arch::ResNet18Cifar => [64u128, 128, 256, 512].into_iter().map(|c| 3 * conv(c, c)).sum(),
    }
}

/// Weights of the recipe's model (backbone and projection head), and the projection keys that scale them.
fn weights(r: &Recipe, c: u128) -> (u128, Vec<(&'static str, f64)>) {
    let backbone = weights_of(r.model.arch, c);
    let Some(p) = &r.model.projection else { return (backbone, Vec::new()) };
    // Not `Arch::feature_dim`: a recipe's widen factor can be large enough for 64·K to overflow a usize.
    let features = match r.model.arch {
        Arch::CnnSmall => 128,
        Arch::Wrn { widen, .. } => 64 * widen as u128,
        Arch::ResNet18Cifar => 512,
    };
    let (hidden, dim) = (p.hidden as u128, p.dim as u128);
    let head = features.saturating_mul(hidden).saturating_add(hidden.saturating_mul(dim));
    let suspects =
        vec![("model.projection.hidden", p.hidden as f64 / 2048.0), ("model.projection.dim", p.dim as f64 / 2048.0)];
    (backbone.saturating_add(head), suspects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::ProjectionSection;

    const RECIPE: &str = r#"
name = "budget"
[data]
dataset = "synthetic"
batch_size = 16
mu = 2
[model]
arch = "cnn-small"
[[stage]]
kind = "supervised"
[[stage]]
kind = "fixmatch"
[schedule]
steps = 10
"#;

    /// The quick-start-like test recipe; values too large to pass validation are set on the result instead.
    fn recipe() -> Recipe {
        Recipe::from_str(RECIPE, "budget.toml", &[]).expect("test recipe is valid")
    }

    fn gib(n: u64) -> Available {
        Available::fixed(n << 30, "a test figure")
    }

    #[test]
    fn the_estimate_adds_up_its_parts() {
        let r = recipe();
        let e = Estimate::of(&r, true);
        let image = 3 * 32 * 32;
        assert_eq!(e.data.bytes, 12_000 * image);
        // 5 steps of 16 labelled weak + 32 unlabeled × (weak, strong) images.
        assert_eq!(e.batches.bytes, 5 * (16 + 64) * image * 4);
        // cnn-small at 3×32×32: conv inputs 3·1024 + 32·1024 + 32·256 + 64·256 + 64·64.
        let per_image = 3 * 1024 + 32 * 1024 + 32 * 256 + 64 * 256 + 64 * 64;
        assert_eq!(e.activations.bytes, (16 + 64) * per_image * 4);
        assert_eq!(e.eval.bytes, 256 * (image + 32 * 1024) * 4);
        assert_eq!(e.params.bytes, 9 * (3 * 32 + 32 * 32 + 32 * 64 + 64 * 64 + 64 * 128) * 3 * 4);
        let expected = e.data.bytes + e.batches.bytes + e.params.bytes + e.activations.bytes.max(e.eval.bytes);
        assert_eq!(e.total(), expected);
        // Without the model on the host (CUDA) only host-side parts count.
        let gpu = Estimate::of(&r, false);
        assert_eq!((gpu.activations.bytes, gpu.params.bytes), (0, 0));
        assert_eq!(gpu.eval.bytes, 256 * image * 4);
        // A stage that reads no unlabeled views adds no unlabeled activations.
        let mut supervised = r.clone();
        supervised.stages.truncate(1);
        assert_eq!(Estimate::of(&supervised, true).activations.bytes, 16 * per_image * 4);
    }

    #[test]
    fn a_recipe_over_budget_names_the_key_that_blew_it_up() {
        assert_eq!(check_against(&recipe(), &gib(1), true), Ok(()));
        type Edit = fn(&mut Recipe);
        let cases: [(Edit, &str); 9] = [
            (|r| r.data.batch_size = 100_000_000, "data.batch_size"),
            (|r| r.data.mu = 100_000_000, "data.mu"),
            (|r| r.data.prefetch = 1_000_000_000, "data.prefetch"),
            (|r| r.data.synthetic_train_size = 1_000_000_000, "data.synthetic_train_size"),
            (|r| r.data.synthetic_test_size = 1_000_000_000, "data.synthetic_test_size"),
            (|r| r.eval.batch_size = 1_000_000_000, "eval.batch_size"),
            (|r| r.model.arch = Arch::Wrn { depth: 28, widen: 100_000 }, "model.arch"),
            (
                |r| {
                    r.data.dataset = DatasetKind::ImageFolder;
                    r.data.image_size = 100_000;
                },
                "data.image_size",
            ),
            (
                |r| r.model.projection = Some(ProjectionSection { hidden: 100_000_000_000, dim: 128 }),
                "model.projection.hidden",
            ),
        ];
        for (set, key) in cases {
            let mut r = recipe();
            set(&mut r);
            let problem = check_against(&r, &gib(64), true).expect_err(key);
            assert_eq!(problem.key, key, "{}", problem.message);
            assert!(problem.message.contains("64.0 GiB is available (a test figure)"), "{}", problem.message);
        }
    }

    #[test]
    fn absurd_values_saturate_instead_of_overflowing() {
        let mut r = recipe();
        r.data.batch_size = usize::MAX;
        r.data.mu = usize::MAX;
        r.data.prefetch = usize::MAX;
        r.eval.batch_size = usize::MAX;
        r.model.arch = Arch::Wrn { depth: usize::MAX, widen: usize::MAX };
        r.model.projection = Some(ProjectionSection { hidden: usize::MAX, dim: usize::MAX });
        let e = Estimate::of(&r, true);
        assert_eq!(e.total(), u128::MAX);
        let problem = check_against(&r, &gib(1 << 20), true).expect_err("cannot fit");
        assert!(problem.message.contains("3.4e38 B"), "{}", problem.message);
    }

    #[test]
    fn absurd_image_folder_shapes_saturate_on_every_backbone() {
        // The hostile-input search found `32 * area(h, w)` overflowing for cnn-small at an image size near usize::MAX.
        let backbones = [Arch::CnnSmall, Arch::Wrn { depth: 28, widen: 2 }, Arch::ResNet18Cifar];
        for arch in backbones {
            for (size, channels) in
                [(usize::MAX, 3), (usize::MAX / 2 + 1, 1), (28, usize::MAX), (usize::MAX, usize::MAX)]
            {
                let mut r = recipe();
                r.data.dataset = DatasetKind::ImageFolder;
                r.data.image_size = size;
                r.data.image_channels = channels;
                r.model.arch = arch;
                for on_host in [true, false] {
                    // Far beyond any machine (2^80 B is a million million TiB), whether or not it saturated.
                    let total = Estimate::of(&r, on_host).total();
                    assert!(total > 1 << 80, "{arch} at {channels}x{size}x{size}: {total}");
                }
                check_against(&r, &gib(1 << 20), true).expect_err("cannot fit");
            }
        }
    }

    #[test]
    fn every_backbone_counts_its_convolutions() {
        // wrn-28-2 at 3×32×32: 4 blocks a group, 7 convolutions a group counted.
        let wrn = ConvInputs::of(Arch::Wrn { depth: 28, widen: 2 }, 3, 32, 32);
        assert_eq!(wrn.sum, 3072 + 7 * (32 * 1024 + 64 * 256 + 128 * 64));
        assert_eq!(wrn.largest, 32 * 1024);
        assert_eq!(weights_of(Arch::Wrn { depth: 28, widen: 2 }, 3), 9 * 7 * (32 * 32 + 64 * 64 + 128 * 128));
        let resnet = ConvInputs::of(Arch::ResNet18Cifar, 3, 32, 32);
        assert_eq!(resnet.sum, 3072 + 3 * (64 * 1024 + 128 * 256 + 256 * 64 + 512 * 16));
        assert_eq!(resnet.ratio_to_resnet18(), 1.0);
        // The real parameter counts are above the lower bounds: wrn-28-2 has 1.47 M, resnet18-cifar 11.2 M.
        assert!(weights_of(Arch::Wrn { depth: 28, widen: 2 }, 3) < 1_470_000);
        assert!(weights_of(Arch::ResNet18Cifar, 3) < 11_200_000);
    }
}
