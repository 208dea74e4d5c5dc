//! [`Kernels`] for `Autodiff<B>`: each op is one node of the tape whose backward calls `B`'s backward kernel.
//!
//! The inputs are saved through the checkpointer (as Burn's own convolution does), so they are the tensors the
//! graph already holds; BatchNorm also keeps its two `[C]` batch statistics.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{ConvOptions, FloatTensor};

use super::{Activation, AffineActGrads, BatchNormActOutput, Kernels};

#[derive(Debug)]
struct BatchNormActBackward;

impl<B: Kernels> Backward<B, 3> for BatchNormActBackward {
    /// Input, γ, β, batch mean, batch variance, ε, activation.
    type State = (NodeId, NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64, Activation);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, mean, var, epsilon, act) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma);
        let beta = checkpointer.retrieve_node_output::<FloatTensor<B>>(beta);
        let g = B::batch_norm_act_backward(x, gamma, beta, mean, var, grad, epsilon, act);
        for (node, grad) in [(node_x, g.x), (node_gamma, g.gamma), (node_beta, g.beta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct AffineActBackward;

impl<B: Kernels> Backward<B, 3> for AffineActBackward {
    /// Input, scale, shift, activation.
    type State = (NodeId, NodeId, NodeId, Activation);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_scale, node_shift] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, scale, shift, act) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let scale = checkpointer.retrieve_node_output::<FloatTensor<B>>(scale);
        let shift = checkpointer.retrieve_node_output::<FloatTensor<B>>(shift);
        let AffineActGrads { x: dx, scale: ds, shift: db } = B::affine_act_backward(x, scale, shift, grad, act);
        for (node, grad) in [(node_x, dx), (node_scale, ds), (node_shift, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct Conv2dBackward;

impl<B: Kernels> Backward<B, 2> for Conv2dBackward {
    /// Input, weight, options.
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
        let g = B::kernel_conv2d_backward(x, weight, grad, options, node_x.is_some(), node_weight.is_some());
        if let (Some(node), Some(grad)) = (node_x, g.x) {
            grads.register::<B>(node.id, grad);
        }
        if let (Some(node), Some(grad)) = (node_weight, g.weight) {
            grads.register::<B>(node.id, grad);
        }
    }
}

impl<B: Kernels, C: CheckpointStrategy> Kernels for Autodiff<B, C> {
    fn batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        act: Activation,
    ) -> BatchNormActOutput<Self> {
        let out = B::batch_norm_act(x.primitive.clone(), gamma.primitive.clone(), beta.primitive.clone(), epsilon, act);
        let output = match BatchNormActBackward
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&gamma),
                    prep.checkpoint(&beta),
                    out.mean.clone(),
                    out.var.clone(),
                    epsilon,
                    act,
                );
                prep.finish(state, out.output)
            }
            OpsKind::UnTracked(prep) => prep.finish(out.output),
        };
        BatchNormActOutput { output, mean: Self::from_inner(out.mean), var: Self::from_inner(out.var) }
    }

    fn affine_act(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        act: Activation,
    ) -> FloatTensor<Self> {
        let output = B::affine_act(x.primitive.clone(), scale.primitive.clone(), shift.primitive.clone(), act);
        match AffineActBackward
            .prepare::<C>([x.node.clone(), scale.node.clone(), shift.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&scale), prep.checkpoint(&shift), act);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn kernel_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        let output = B::kernel_conv2d(x.primitive.clone(), weight.primitive.clone(), options.clone());
        match Conv2dBackward.prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), options);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}
