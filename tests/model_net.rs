//! The network as training uses it: BatchNorm modes, determinism, parameter listing, gradients.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burnish::model::{num_params, param_infos, Arch, BnMode, Net, NetConfig, ParamKind, ProjectionConfig};

type B = Flex;
type AD = Autodiff<Flex>;

fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}

fn net<Bk: Backend>(arch: Arch, channels: usize) -> Net<Bk> {
    NetConfig::new(arch, channels, 10)
        .and_then(|c| c.with_projection(ProjectionConfig::default()))
        .expect("valid config")
        .init(&Default::default())
}

/// Every float tensor's values, keyed by id (parameters and running statistics).
struct Snapshot(Vec<(ParamId, Vec<f32>)>);

impl<Bk: Backend> ModuleVisitor<Bk> for Snapshot {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        self.0.push((param.id, values(param.val())));
    }
}

fn snapshot<Bk: Backend>(net: &Net<Bk>) -> Vec<(ParamId, Vec<f32>)> {
    let mut s = Snapshot(Vec::new());
    net.visit(&mut s);
    s.0
}

/// Values of the running statistics only.
fn buffers<Bk: Backend>(net: &Net<Bk>) -> Vec<Vec<f32>> {
    let buffer_ids: Vec<ParamId> =
        param_infos(net).into_iter().filter(|p| p.kind == ParamKind::Buffer).map(|p| p.id).collect();
    snapshot(net).into_iter().filter(|(id, _)| buffer_ids.contains(id)).map(|(_, v)| v).collect()
}

const ARCHS: [Arch; 2] = [Arch::CnnSmall, Arch::Wrn { depth: 10, widen: 1 }];

#[test]
fn eval_is_deterministic_and_batch_independent() {
    let dev = Default::default();
    for arch in ARCHS {
        let net = net::<AD>(arch, 3);
        // Move the running statistics away from 0/1 so Eval really uses recorded values.
        net.forward(Tensor::random([4, 3, 16, 16], Distribution::Normal(0.5, 2.0), &dev), BnMode::Train);

        let x = Tensor::<AD, 4>::random([3, 3, 16, 16], Distribution::Normal(0.0, 1.0), &dev);
        let batch = values(net.forward(x.clone(), BnMode::Eval).logits);
        assert_eq!(batch, values(net.forward(x.clone(), BnMode::Eval).logits), "{arch}: Eval not deterministic");

        let alone = values(net.forward(x.clone().narrow(0, 0, 1), BnMode::Eval).logits);
        let diff = alone.iter().zip(&batch[..10]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "{arch}: sample 0 alone differs from sample 0 in a batch by {diff}");

        // Train mode normalises with batch statistics, so there the batch does matter.
        let alone = values(net.forward(x.clone().narrow(0, 0, 2), BnMode::TrainNoStats).logits);
        let batch = values(net.forward(x, BnMode::TrainNoStats).logits);
        assert_ne!(alone[..10], batch[..10], "{arch}: TrainNoStats ignored the batch");
    }
}

#[test]
fn only_train_mode_updates_the_running_statistics() {
    let dev = Default::default();
    for arch in ARCHS {
        let net = net::<AD>(arch, 1);
        let x = Tensor::<AD, 4>::random([4, 1, 12, 12], Distribution::Normal(0.5, 2.0), &dev);
        let before = snapshot(&net);
        let stats_before = buffers(&net);
        assert!(!stats_before.is_empty());

        for mode in [BnMode::TrainNoStats, BnMode::Eval] {
            let out = net.forward(x.clone(), mode);
            let _ = out.projections.expect("head configured").sum().backward();
            assert_eq!(snapshot(&net), before, "{arch}: {mode:?} changed the model state");
        }

        net.forward(x, BnMode::Train);
        let stats_after = buffers(&net);
        // Every BatchNorm that runs moves; WRN's unused bn1s (see `WideBasicBlock::forward`) do not.
        let moved = stats_before.iter().zip(&stats_after).filter(|(a, b)| a != b).count();
        let unused = if matches!(arch, Arch::Wrn { .. }) { 4 } else { 0 };
        assert_eq!(moved, stats_before.len() - unused, "{arch}: Train updated {moved} of {}", stats_before.len());
    }
}

#[test]
fn perturbed_copies_keep_the_original_statistics() {
    // A forward in Train mode on a clone (as a careless SAM pass would do) leaves the original alone.
    let dev = Default::default();
    let original = net::<AD>(Arch::CnnSmall, 1);
    let before = buffers(&original);
    let copy = original.clone();
    copy.forward(Tensor::random([4, 1, 8, 8], Distribution::Normal(0.0, 1.0), &dev), BnMode::Train);
    assert_eq!(buffers(&original), before);
    assert_ne!(buffers(&copy), before);
}

#[test]
fn parameters_are_listed_with_pytorch_style_names_and_kinds() {
    let net = net::<B>(Arch::CnnSmall, 1);
    let infos = param_infos(&net);
    let find = |name: &str| infos.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no {name}"));

    assert_eq!(find("backbone.layers.0.conv.weight").kind, ParamKind::Weight);
    assert_eq!(find("backbone.layers.0.conv.weight").shape, vec![32, 1, 3, 3]);
    assert_eq!(find("backbone.layers.4.bn.weight").kind, ParamKind::Norm);
    assert_eq!(find("backbone.layers.4.bn.bias").kind, ParamKind::Norm);
    assert_eq!(find("backbone.layers.4.bn.running_mean").kind, ParamKind::Buffer);
    assert_eq!(find("backbone.layers.4.bn.running_var").kind, ParamKind::Buffer);
    assert_eq!(find("classifier.weight").kind, ParamKind::Weight);
    assert_eq!(find("classifier.weight").shape, vec![128, 10]);
    assert_eq!(find("classifier.bias").kind, ParamKind::Bias);
    assert_eq!(find("projection.linear1.weight").kind, ParamKind::Weight);
    assert_eq!(find("projection.bn.running_var").kind, ParamKind::Buffer);
    assert!(infos.iter().all(|p| !p.name.contains("CnnSmall")), "enum variant names are not part of paths");

    // 5 conv weights, 6 BNs × 4 tensors, classifier weight + bias, projection linears 1 + 2.
    assert_eq!(infos.len(), 5 + 6 * 4 + 2 + 3);
    let mut ids: Vec<_> = infos.iter().map(|p| p.id).collect();
    ids.sort_by_key(|id| id.to_string());
    ids.dedup();
    assert_eq!(ids.len(), infos.len(), "ids are unique");

    let trainable: usize =
        infos.iter().filter(|p| p.kind.is_trainable()).map(|p| p.shape.iter().product::<usize>()).sum();
    assert_eq!(trainable, num_params(&net));
    let decayed = infos.iter().filter(|p| p.kind.is_decayed_by_default()).count();
    assert_eq!(decayed, 5 + 1 + 2, "conv and linear weights only");

    let wrn = param_infos(&self::net::<B>(Arch::Wrn { depth: 10, widen: 2 }, 3));
    let names: Vec<&str> = wrn.iter().map(|p| p.name.as_str()).collect();
    for name in
        ["backbone.conv1.weight", "backbone.block1.layer.0.bn1.weight", "backbone.block2.layer.0.conv_shortcut.weight"]
    {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

/// Ids of the parameters that received a gradient.
struct WithGrad<'a> {
    grads: &'a GradientsParams,
    names: Vec<String>,
    infos: Vec<burnish::model::ParamInfo>,
}

impl ModuleVisitor<AD> for WithGrad<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
        if self.grads.get::<B, D>(param.id).is_some() {
            let info = self.infos.iter().find(|p| p.id == param.id).expect("listed");
            self.names.push(info.name.clone());
        }
    }
}

#[test]
fn every_used_parameter_gets_a_gradient() {
    let dev = Default::default();
    for arch in ARCHS {
        let net = net::<AD>(arch, 3);
        let x = Tensor::<AD, 4>::random([4, 3, 8, 8], Distribution::Normal(0.0, 1.0), &dev);
        let out = net.forward(x, BnMode::Train);
        let loss = out.logits.sum() + out.projections.expect("head").sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);

        let infos = param_infos(&net);
        let mut visitor = WithGrad { grads: &grads, names: Vec::new(), infos: infos.clone() };
        net.visit(&mut visitor);
        let mut missing: Vec<&str> = infos
            .iter()
            .filter(|p| p.kind.is_trainable() && !visitor.names.contains(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        missing.sort();
        let expected: Vec<&str> = match arch {
            // The reference's width-changing blocks without activate_before_residual ignore bn1.
            Arch::Wrn { .. } => vec![
                "backbone.block2.layer.0.bn1.bias",
                "backbone.block2.layer.0.bn1.weight",
                "backbone.block3.layer.0.bn1.bias",
                "backbone.block3.layer.0.bn1.weight",
            ],
            _ => vec![],
        };
        assert_eq!(missing, expected, "{arch}");
        assert!(visitor.names.iter().all(|n| !n.contains("running")), "{arch}: a running statistic got a gradient");
    }
}
