//! `--devices N` (docs/devices.md): N peers compute what one device computes.
//!
//! BatchNorm normalises each peer's shard, so N = 2 and N = 1 agree exactly only where the shards' statistics
//! coincide with the global batch's. The end-to-end checks build such batches: the second shard holds the first
//! shard's images with other labels, so BatchNorm sees the same statistics either way while every label-dependent
//! gradient differs between the shards (a peer that skipped an all-reduce would apply its own). Where the gradient
//! depends on the images alone (Algorithm 1's ascent, running statistics), the peers get different images and are
//! checked against a single-device computation that normalises each shard on its own.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use burn::module::AutodiffModule;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Tensor, TensorData};
use burnish::devices::{self, check_recipe, run_peers, shard_batch, Ascent, DataParallel};
use burnish::iam::{kl_batchmean, worst_case_delta, Inconsistency};
use burnish::model::{BnMode, Net};
use burnish::objective::Objective;
use burnish::params::{fresh_leaf_copy, gaussian, num_trainable};
use burnish::pipeline::Batch;
use burnish::plan;
use burnish::recipe::Recipe;
use burnish::seed::rng_for;
use burnish::stage::{Stage, StageContext, StageOutput, Weighted};
use burnish::step::ViewKey;
use common::fd::{flatten, AD};
use common::state::{batches, jittered, max_abs_diff, mirrored, running_stats, trainer};
use common::{burnish, run_dir, text};

type Dev = burn::tensor::Device<AD>;

/// A small synthetic recipe: `stages` and `update` are TOML appended to a common head (B = 8, μ = 2, cnn-small).
fn recipe(name: &str, data: &str, rest: &str) -> Recipe {
    let text = format!(
        r#"
name = "{name}"
seed = 3
[data]
dataset = "synthetic"
labels_per_class = 4
batch_size = 8
synthetic_train_size = 120
synthetic_test_size = 20
{data}
[model]
arch = "cnn-small"
{rest}
[optimizer]
kind = "sgd"
lr = 0.1
momentum = 0.9
weight_decay = 5e-4
[schedule]
kind = "constant"
steps = 10
[ema]
decay = 0.9
"#
    );
    Recipe::from_str(&text, name, &[]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const FIXMATCH_DATA: &str = "mu = 2\nlabeled_views = [\"weak\"]\nunlabeled_views = [\"weak\", \"strong\"]";
const LABELED_DATA: &str = "mu = 0\nlabeled_views = [\"weak\"]";

/// The recipe kinds the equivalence covers: (name, data section, stages and update).
fn kinds() -> Vec<Recipe> {
    let supervised = "[[stage]]\nkind = \"supervised\"\n";
    vec![
        recipe("plain", LABELED_DATA, supervised),
        recipe("sam", LABELED_DATA, &format!("{supervised}[update]\nrule = \"sam\"\nrho = 0.05\n")),
        recipe("asam", LABELED_DATA, &format!("{supervised}[update]\nrule = \"asam\"\nrho = 0.5\n")),
        recipe(
            "iam-s",
            FIXMATCH_DATA,
            // sigma well above f32 rounding: at the default 1e-3 the ascent gradient at δ₀ is so small that summation
            // order alone turns its direction (docs/devices.md, "Determinism").
            &format!("{supervised}[update]\nrule = \"iam-s\"\nrho = 0.05\nsigma = 0.05\n"),
        ),
        recipe("supervised-iam-d", LABELED_DATA, &format!("{supervised}[[stage]]\nkind = \"iam-d\"\nrho = 0.05\nsigma = 0.05\n")),
        recipe(
            "fixmatch-iam-d",
            FIXMATCH_DATA,
            &format!("{supervised}[[stage]]\nkind = \"fixmatch\"\nthreshold = 0.3\n[[stage]]\nkind = \"iam-d\"\nrho = 0.05\nsigma = 0.05\n"),
        ),
        recipe(
            "fixmatch-sam-labeled",
            FIXMATCH_DATA,
            &format!(
                "{supervised}[[stage]]\nkind = \"fixmatch\"\nthreshold = 0.3\n[update]\nrule = \"sam\"\nrho = 0.05\nloss = \"labeled\"\n"
            ),
        ),
        recipe(
            "simclr-iam-d",
            "mu = 1\nlabeled_views = [\"weak\"]\nunlabeled_views = [\"simclr\", \"simclr\"]",
            &format!(
                "[model.projection]\nhidden = 32\ndim = 16\n{supervised}[[stage]]\nkind = \"ntxent\"\n[[stage]]\nkind = \"iam-d\"\n\
                 rho = 0.05\nsigma = 0.05\nsource = \"projection\"\ndistribution = \"components\"\n"
            ),
        ),
    ]
}

fn metric(report: &burnish::train::StepReport, name: &str) -> f64 {
    report.metrics.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no metric {name}")).1
}

/// Over three steps. Float summation order (a mean over 2n rows against two means over n) moves f32 results by ~1e-7
/// relative per pass, which alone leaves N = 2 within 2e-6 of the distance N = 1 moved the weights. But a unit whose
/// pre-activation lies within that rounding of ReLU's zero can go the other way in one of the two computations, and
/// one such unit changes that step's gradient by ~1e-3 relative; momentum and the ascents of ASAM (ρ = 0.5) and
/// Algorithm 1 carry it into drift of up to 2.2 % of the distance moved (measured on these batches: ASAM with gemm's
/// AVX-512 kernels, supervised + IAM-D without them; docs/devices.md, "Determinism"). Whether a unit lands that close
/// depends on the images and on the kernels' rounding, not on the two-peer path. A peer that skips an all-reduce ends
/// about 20 % of that distance away.
const TOLERANCE: f64 = 5e-2;

/// One step from the same state: a few f32 roundings, which Algorithm 1's ascent amplifies (measured up to 2e-6
/// without it, 6.4e-5 with IAM-D or IAM-S); a peer that skips an all-reduce is 2e-2 or more away.
const STEP_TOLERANCE: f64 = 1e-4;

/// Per-device ascent against m-sharpness (different images per shard, not jittered): the bound it had before the
/// jitter, which it meets with and without gemm's AVX-512 kernels.
const M_SHARPNESS_TOLERANCE: f64 = 1e-3;

#[test]
fn two_devices_train_like_one_for_every_rule_and_recipe_kind() {
    let device = Dev::default();
    // IAM-S is left to the step-by-step test: over several steps its ascent turns f32 rounding into drift of 3e-3
    // (one device alone drifts 4e-4 when only the order of the batch's rows changes), too close to what a missing
    // all-reduce does for a tolerance to tell them apart.
    for r in kinds().into_iter().filter(|r| r.name != "iam-s") {
        let classes = plan::data(&r).expect("data").dataset.num_classes as i64;
        let steps: Vec<Batch> = batches(&r, 3).iter().map(|b| mirrored(&jittered(b), classes)).collect();
        let mut one = trainer::<AD>(&r, &device);
        let start = flatten(&one.model);
        for b in &steps {
            one.train_step(b).expect("step");
        }

        let mut lead = trainer::<AD>(&r, &device);
        let mut group = DataParallel::around(&lead, 2, Ascent::Global, |d| Ok(trainer::<AD>(&r, &d))).expect("a group");
        for b in &steps {
            group.train_step(&mut lead, b).expect("step");
        }
        drop(group);
        let moved = max_abs_diff(&start, &flatten(&one.model));
        let diff = max_abs_diff(&flatten(&one.model), &flatten(&lead.model));
        assert!(moved > 1e-2, "{}: training moved the weights by only {moved}", r.name);
        let tolerance = moved * TOLERANCE;
        assert!(diff < tolerance, "{}: N = 2 ended {diff} away from N = 1 (moved {moved})", r.name);
        // Running statistics are left out: BatchNorm's unbiased running variance scales by n/(n − 1), with n the
        // rows a device normalises.
        let ema = max_abs_diff(&flatten(&one.eval_model()), &flatten(&lead.eval_model()));
        assert!(ema < tolerance, "{}: the EMA models differ by {ema}", r.name);
    }
}

#[test]
fn each_step_on_two_devices_is_the_step_on_one_from_the_same_state() {
    // Every peer and the single device start each step from the one-device run's state (weights, momentum, EMA):
    // what a step does is compared without the float drift that several steps of IAM-S amplify (see
    // `two_devices_train_like_one_for_every_rule_and_recipe_kind`).
    let device = Dev::default();
    for r in kinds() {
        let classes = plan::data(&r).expect("data").dataset.num_classes as i64;
        let mut reference = trainer::<AD>(&r, &device);
        for (i, b) in batches(&r, 3).iter().map(|b| mirrored(&jittered(b), classes)).enumerate() {
            let state = reference.checkpoint("").expect("a state");
            let mut lead = trainer::<AD>(&r, &device);
            lead.restore(&state).expect("restores");
            let mut group =
                DataParallel::around(&lead, 2, Ascent::Global, |d| Ok(trainer::<AD>(&r, &d))).expect("a group");
            let two = group.train_step(&mut lead, &b).expect("step");
            drop(group);
            let before = flatten(&reference.model);
            let one = reference.train_step(&b).expect("step");
            // Metrics are the peers' means: with equal shards, the global batch's values.
            assert_eq!(one.metrics.len(), two.metrics.len());
            for (k, v) in &one.metrics {
                let w = metric(&two, k);
                assert!(
                    (v - w).abs() <= 1e-4 * v.abs().max(1.0),
                    "{} step {i}: {k} is {v} on one device, {w} on two",
                    r.name
                );
            }
            let moved = max_abs_diff(&before, &flatten(&reference.model));
            let diff = max_abs_diff(&flatten(&reference.model), &flatten(&lead.model));
            assert!(
                diff < STEP_TOLERANCE,
                "{} step {i}: N = 2 is {diff} away from N = 1 (the step moved {moved})",
                r.name
            );
        }
    }
}

#[test]
fn per_device_ascent_is_one_device_m_sharpness_with_m_the_shard() {
    // Different images in each shard and BatchNorm on: one device with m = B/2 normalises and perturbs each half on
    // its own, as each of two peers does with its own ascent.
    let device = Dev::default();
    let sam = "[[stage]]\nkind = \"supervised\"\n[update]\nrule = \"sam\"\nrho = 0.05\n";
    let r = recipe("sam", LABELED_DATA, sam);
    let chunked = recipe("sam", LABELED_DATA, &format!("{sam}m = 4\n"));
    assert_eq!(plan::update_rule(&chunked).m, Some(4), "the reference uses m-sharpness over the two halves");
    let steps = batches(&r, 3);
    let mut one = trainer::<AD>(&chunked, &device);
    let start = flatten(&one.model);
    for b in &steps {
        one.train_step(b).expect("step");
    }
    let mut lead = trainer::<AD>(&r, &device);
    let mut group = DataParallel::around(&lead, 2, Ascent::PerDevice, |d| Ok(trainer::<AD>(&r, &d))).expect("a group");
    for b in &steps {
        group.train_step(&mut lead, b).expect("step");
    }
    drop(group);
    let end = flatten(&one.model);
    let moved = max_abs_diff(&start, &end);
    let diff = max_abs_diff(&end, &flatten(&lead.model));
    assert!(moved > 1e-2, "training moved the weights by only {moved}");
    assert!(
        diff < M_SHARPNESS_TOLERANCE * moved,
        "per-device ascent on two peers ended {diff} away from m-sharpness on one device"
    );
}

/// Images `[n, 3, 32, 32]` from a seeded draw.
fn images(n: usize, seed: u64) -> Tensor<AD, 4> {
    let values = common::fd::gaussian_values(n * 3 * 32 * 32, seed, 1.0).into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [n, 3, 32, 32]), &Dev::default())
}

fn small_net() -> Net<AD> {
    let r = recipe("net", LABELED_DATA, "[[stage]]\nkind = \"supervised\"\n");
    trainer::<AD>(&r, &Dev::default()).model
}

#[test]
fn algorithm_1_ascent_on_two_devices_follows_the_mean_of_the_shards_gradients() {
    // Each peer holds different images and normalises them alone. The global ascent direction is the mean of the
    // shards' KL gradients at θ + δ₀, which one device computes shard by shard.
    let model = small_net();
    let shards = [images(6, 1), images(6, 2)];
    let cfg = Inconsistency { rho: 0.05, sigma: 1e-3, steps: 1 };
    let clean =
        |m: &Net<AD>, x: &Tensor<AD, 4>| softmax(m.valid().forward(x.clone().inner(), BnMode::TrainNoStats).logits, 1);
    let log_q = |x: Tensor<AD, 4>| move |m: &Net<AD>| log_softmax(m.forward(x.clone(), BnMode::TrainNoStats).logits, 1);
    let devices = [Dev::default(), Dev::default()];
    let deltas = run_peers::<burn::backend::Flex, _, _>(&devices, Ascent::Global, |peer| {
        let x = shards[peer.rank].clone();
        let p = Tensor::<AD, 2>::from_inner(clean(&model, &x));
        let delta = worst_case_delta(&model, p, log_q(x), &cfg, &mut rng_for(&[9]));
        common::fd::flatten_vector(&model, &delta)
    })
    .expect("two peers");
    assert_eq!(deltas[0], deltas[1], "both peers must hold the same δ*");

    let n = num_trainable::<AD, _>(&model);
    let delta0 = gaussian::<AD, _>(&model, cfg.sigma / (n as f64).sqrt(), &mut rng_for(&[9]));
    let perturbed = fresh_leaf_copy(&model, &delta0);
    let grads: Vec<Vec<f64>> = shards
        .iter()
        .map(|x| {
            let p = Tensor::<AD, 2>::from_inner(clean(&model, x));
            let kl = kl_batchmean(p, log_q(x.clone())(&perturbed));
            let g = burn::optim::GradientsParams::from_grads(kl.backward(), &perturbed);
            common::fd::flatten_vector(&model, &g)
        })
        .collect();
    let mean: Vec<f64> = grads[0].iter().zip(&grads[1]).map(|(a, b)| 0.5 * (a + b)).collect();
    let scale = cfg.rho / common::fd::norm(&mean);
    let expected: Vec<f64> = mean.iter().map(|g| g * scale).collect();
    let own: Vec<f64> = grads[0].iter().map(|g| g * cfg.rho / common::fd::norm(&grads[0])).collect();
    assert!(common::fd::rel_err(&deltas[0], &expected) < 1e-5, "δ* is not ρ ḡ/‖ḡ‖ of the shards' mean gradient");
    assert!(common::fd::rel_err(&own, &expected) > 1e-2, "the shards must disagree for the check to mean anything");
}

#[test]
fn running_statistics_are_averaged_over_the_peers() {
    let model = small_net();
    let shards = [images(6, 3), images(6, 4)];
    let devices = [Dev::default(), Dev::default()];
    let stats = |m: &Net<AD>| running_stats(m);
    let moved: Vec<Vec<f64>> = shards
        .iter()
        .map(|x| {
            let m = model.clone();
            m.forward(x.clone(), BnMode::Train);
            stats(&m)
        })
        .collect();
    let averaged = run_peers::<burn::backend::Flex, _, _>(&devices, Ascent::Global, |peer| {
        let m = model.clone();
        m.forward(shards[peer.rank].clone(), BnMode::Train);
        stats(&devices::average_running_stats(m))
    })
    .expect("two peers");
    let mean: Vec<f64> = moved[0].iter().zip(&moved[1]).map(|(a, b)| 0.5 * (a + b)).collect();
    assert!(max_abs_diff(&moved[0], &moved[1]) > 1e-3, "the shards must move the statistics differently");
    for a in &averaged {
        assert!(max_abs_diff(a, &mean) < 1e-6, "a peer kept statistics other than the peers' mean");
    }
}

#[test]
fn iam_d_vanishes_as_rho_goes_to_zero_on_two_devices() {
    // Each peer's clean and perturbed passes normalise the same shard (docs/devices.md), so the KL still vanishes.
    let device = Dev::default();
    let r = recipe(
        "fixmatch-iam-d-rho0",
        FIXMATCH_DATA,
        "[[stage]]\nkind = \"supervised\"\n[[stage]]\nkind = \"fixmatch\"\n[[stage]]\nkind = \"iam-d\"\nrho = 1e-9\nsigma = 1e-12\n",
    );
    let mut lead = trainer::<AD>(&r, &device);
    let mut group = DataParallel::around(&lead, 2, Ascent::Global, |d| Ok(trainer::<AD>(&r, &d))).expect("a group");
    for b in batches(&r, 2) {
        let report = group.train_step(&mut lead, &b).expect("step");
        let kl = metric(&report, "iam-d/s_rho");
        assert!((0.0..1e-7).contains(&kl.abs()), "KL at rho 1e-9 on two devices is {kl}");
    }
}

/// A stage that fails on peer 1 only: a peer that panics mid-step.
struct FailsOnPeer1;

impl Stage<AD> for FailsOnPeer1 {
    fn kind(&self) -> &'static str {
        "supervised"
    }
    fn views(&self) -> Vec<ViewKey> {
        vec![ViewKey::new(burnish::step::Stream::Labeled, burnish_augment::View::Weak)]
    }
    fn metric_names(&self) -> &'static [&'static str] {
        &[]
    }
    fn loss(&self, ctx: &StageContext<'_, AD>) -> StageOutput<AD> {
        if devices::current().is_some_and(|p| p.rank == 1) {
            panic!("peer 1 cannot go on");
        }
        let logits = ctx.forward.logits(self.views()[0]).expect("listed view");
        StageOutput::new(logits.mean(), Vec::new())
    }
}

#[test]
fn a_failing_peer_stops_the_step_with_its_error_and_no_hang() {
    let r = recipe("fails", LABELED_DATA, "[[stage]]\nkind = \"supervised\"\n");
    let batch = batches(&r, 1).remove(0);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let device = Dev::default();
        let make = |d: &Dev| {
            let mut t = trainer::<AD>(&r, d);
            t.objective = Objective::new(vec![Weighted::new(1.0, Box::new(FailsOnPeer1) as Box<dyn Stage<AD>>)]);
            t
        };
        let mut lead = make(&device);
        let mut group = DataParallel::around(&lead, 2, Ascent::Global, |d| Ok(make(&d))).expect("a group");
        let first = group.train_step(&mut lead, &batch).map(|_| ()).map_err(|e| e.to_string());
        let second = group.train_step(&mut lead, &batch).map(|_| ()).map_err(|e| e.to_string());
        drop(group);
        // A later group in the same process still forms and steps.
        let mut lead = trainer::<AD>(&r, &device);
        let mut group = DataParallel::around(&lead, 2, Ascent::Global, |d| Ok(trainer::<AD>(&r, &d))).expect("a group");
        let after = group.train_step(&mut lead, &batch).map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send((first, second, after));
    });
    let (first, second, after) = rx.recv_timeout(Duration::from_secs(120)).expect("the failed step must not hang");
    let first = first.expect_err("peer 1 panicked");
    assert!(first.contains("peer 1 of 2") && first.contains("peer 1 cannot go on"), "{first}");
    assert!(second.is_err(), "a group whose peer failed takes no further step");
    after.expect("a new group after a failed one");
}

#[test]
fn recipes_that_cannot_keep_their_meaning_are_refused() {
    let sup = "[[stage]]\nkind = \"supervised\"\n";
    let e = check_recipe(&recipe("odd", LABELED_DATA, sup), 3).expect_err("8 images over 3 devices").to_string();
    assert!(e.contains("data.batch_size") && e.contains("--devices 3"), "{e}");
    let r = recipe("mu", "mu = 3\nlabeled_views = [\"weak\"]\nunlabeled_views = [\"weak\", \"strong\"]", sup);
    assert!(check_recipe(&r, 4).is_ok(), "8 and 24 both split over 4");
    let e = check_recipe(&r, 16).expect_err("8 labelled over 16").to_string();
    assert!(e.contains("data.batch_size"), "{e}");
    let simclr = recipe(
        "simclr-ntxent",
        "mu = 1\nlabeled_views = [\"weak\"]\nunlabeled_views = [\"simclr\", \"simclr\"]",
        "[model.projection]\nhidden = 32\ndim = 16\n[[stage]]\nkind = \"ntxent\"\n[[stage]]\nkind = \"iam-d\"\nsource = \"projection\"\n",
    );
    let e = check_recipe(&simclr, 2).expect_err("the NT-Xent distribution spans the global batch").to_string();
    assert!(e.contains("stage.1 (iam-d)") && e.contains("distribution"), "{e}");
    assert!(check_recipe(&simclr, 1).is_ok(), "one device runs every recipe");
    let sub = recipe(
        "sub",
        FIXMATCH_DATA,
        "[[stage]]\nkind = \"fixmatch\"\n[[stage]]\nkind = \"iam-d\"\nbatch_fraction = 0.5\n",
    );
    let e = check_recipe(&sub, 2).expect_err("a sub-batch of the global batch").to_string();
    assert!(e.contains("stage.1 (iam-d)") && e.contains("batch_fraction"), "{e}");
}

#[test]
fn shards_in_rank_order_are_the_global_batch() {
    let r = recipe("shards", FIXMATCH_DATA, "[[stage]]\nkind = \"fixmatch\"\n");
    let batch = batches(&r, 1).remove(0);
    let parts: Vec<Batch> = (0..4).map(|k| shard_batch(&batch, 4, k)).collect();
    for (i, s) in batch.streams.iter().enumerate() {
        let joined: Vec<usize> = parts.iter().flat_map(|p| p.streams[i].indices.clone()).collect();
        assert_eq!(joined, s.indices);
        let labels: Vec<i64> = parts.iter().flat_map(|p| p.streams[i].labels.clone()).collect();
        assert_eq!(labels, s.labels);
        for (j, v) in s.views.iter().enumerate() {
            let data: Vec<f32> = parts.iter().flat_map(|p| p.streams[i].views[j].data.clone()).collect();
            assert_eq!(data, v.data);
            assert_eq!(parts[1].streams[i].views[j].shape[0] * 4, v.shape[0]);
        }
    }
}

/// `metrics.jsonl` rows without their timing fields, from step `after` + 1 on (evaluation rows included).
fn rows_after(dir: &std::path::Path, after: u64) -> Vec<String> {
    common::metric_rows(dir)
        .into_iter()
        .filter(|v| v["step"].as_u64().is_some_and(|s| s > after))
        .map(|mut v| {
            let obj = v.as_object_mut().expect("an object");
            burnish::run::TIMING_COLUMNS.iter().for_each(|k| drop(obj.remove(*k)));
            v.to_string()
        })
        .collect()
}

/// The step of the newest checkpoint in a run folder.
fn checkpointed(dir: &std::path::Path) -> u64 {
    let name = common::latest_checkpoint(dir).file_name().expect("a name").to_string_lossy().to_string();
    name.trim_start_matches("step-").trim_end_matches(".ckpt").parse().expect("step-N.ckpt")
}

#[test]
fn a_run_killed_on_two_devices_resumes_on_one_as_the_math_says() {
    // kill -9 during an N = 2 run, then --resume with N = 1: every step after the checkpoint it resumes from is what
    // N = 1 computes from that checkpoint, which a clean N = 2 run stopped there and resumed on N = 1 also computes.
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path();
    std::fs::write(cwd.join("r.toml"), common::TINY_RECIPE).expect("write recipe");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_burnish"))
        .args(["train", "r.toml", "--quiet", "--runs-dir", "killed", "--devices", "2"])
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let started = std::time::Instant::now();
    let killed = loop {
        let run = std::fs::read_dir(cwd.join("killed")).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        let past_first = run.as_ref().is_some_and(|r| {
            std::fs::read_to_string(r.path().join("metrics.jsonl")).is_ok_and(|t| t.lines().count() >= 7)
        });
        if past_first {
            break run.expect("a run folder").path();
        }
        assert!(child.try_wait().expect("status").is_none(), "the run ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(300), "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let from = checkpointed(&killed);
    assert!((5..20).contains(&from), "killed after its checkpoint at step 5 and before its end (newest {from})");
    let killed_dir = killed.to_string_lossy().to_string();
    let out = burnish(&["train", "r.toml", "--quiet", "--resume", &killed_dir, "--devices", "1"], cwd);
    assert!(out.status.success(), "{}", text(&out));

    let out = burnish(
        &["train", "r.toml", "--quiet", "--runs-dir", "clean", "--devices", "2", "--stop-after", &from.to_string()],
        cwd,
    );
    assert!(out.status.success(), "{}", text(&out));
    let clean = cwd.join(run_dir(&out));
    let clean_dir = clean.to_string_lossy().to_string();
    let out = burnish(&["train", "r.toml", "--quiet", "--resume", &clean_dir], cwd);
    assert!(out.status.success(), "{}", text(&out));

    let (a, b) = (rows_after(&killed, from), rows_after(&clean, from));
    assert!(a.len() >= 20 - from as usize, "every step after {from} logged: {} rows", a.len());
    assert_eq!(a, b, "the N = 1 continuation from the step-{from} checkpoint");
    // Each step once, N = 2 rows and N = 1 rows alike.
    let steps: Vec<u64> = common::metric_rows(&killed)
        .iter()
        .filter(|v| v.get("loss").is_some())
        .filter_map(|v| v["step"].as_u64())
        .collect();
    assert_eq!(steps, (1..=20).collect::<Vec<_>>());
}

#[test]
fn sigterm_stops_every_peer_with_one_checkpoint_and_divergence_stops_them_all() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path();
    std::fs::write(cwd.join("r.toml"), common::TINY_RECIPE).expect("write recipe");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_burnish"))
        .args(["train", "r.toml", "--quiet", "--runs-dir", "runs", "--devices", "2"])
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = std::time::Instant::now();
    let dir = loop {
        let run = std::fs::read_dir(cwd.join("runs")).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
        if let Some(r) = run.filter(|r| r.path().join("checkpoints/step-000000005.ckpt").exists()) {
            break r.path();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("exits");
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    let s = common::summary(&dir);
    assert_eq!(s["signal"], "SIGTERM");
    let steps = s["steps"].as_u64().expect("steps");
    assert!(dir.join(format!("checkpoints/step-{steps:09}.ckpt")).exists(), "a checkpoint at the stop");
    let resumed = burnish(&["train", "r.toml", "--quiet", "--resume", &dir.to_string_lossy()], cwd);
    assert!(resumed.status.success(), "{}", text(&resumed));

    // Every peer sees the same (averaged) non-finite loss: the run stops as one device's does, with its exit code.
    let out = burnish(
        &["train", "r.toml", "--quiet", "--runs-dir", "diverged", "--devices", "2", "--set", "optimizer.lr=1e8"],
        cwd,
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("training diverged at step "), "{}", text(&out));
}
