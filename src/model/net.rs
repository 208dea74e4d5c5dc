//! The one network type everything trains and evaluates: backbone + linear classifier
//! (+ optional projection head).

use burn::module::{Module, ModuleMapper};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::init::{linear_default, linear_xavier};
use super::{
    Arch, ArchError, BnMode, CnnSmall, CnnSmallConfig, ProjectionConfig, ProjectionHead, ResNet, ResNetConfig,
    WideResNet, WrnConfig,
};
use crate::kernels::Kernels;

/// What to build: architecture, input channels, classes and an optional projection head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// The backbone.
    pub arch: Arch,
    /// Image channels (1 or 3).
    pub in_channels: usize,
    /// Classifier outputs.
    pub num_classes: usize,
    /// Projection head for contrastive stages, if any.
    pub projection: Option<ProjectionConfig>,
}

/// Why a [`NetConfig`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetConfigError {
    /// The architecture itself is invalid (e.g. a `wrn` depth).
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// A size that must be positive is 0.
    #[error("model {what} must be at least 1, got 0")]
    Zero {
        /// Which size (`in_channels`, `num_classes`, `projection hidden_dim`, ...).
        what: &'static str,
    },
}

impl NetConfig {
    /// A checked configuration without a projection head.
    pub fn new(arch: Arch, in_channels: usize, num_classes: usize) -> Result<Self, NetConfigError> {
        let config = Self { arch, in_channels, num_classes, projection: None };
        config.validate()?;
        Ok(config)
    }

    /// Adds a projection head (checked).
    pub fn with_projection(self, projection: ProjectionConfig) -> Result<Self, NetConfigError> {
        let config = Self { projection: Some(projection), ..self };
        config.validate()?;
        Ok(config)
    }

    /// Checks every size and the architecture (the fields are public, so [`NetConfig::init`] re-checks).
    pub fn validate(&self) -> Result<(), NetConfigError> {
        if let Arch::Wrn { depth, widen } = self.arch {
            Arch::wrn(depth, widen)?;
        }
        let mut sizes = vec![("in_channels", self.in_channels), ("num_classes", self.num_classes)];
        if let Some(p) = &self.projection {
            sizes.extend([("projection hidden_dim", p.hidden_dim), ("projection output_dim", p.output_dim)]);
        }
        match sizes.into_iter().find(|&(_, size)| size == 0) {
            Some((what, _)) => Err(NetConfigError::Zero { what }),
            None => Ok(()),
        }
    }

    /// Dimension of the backbone features (the classifier's input).
    pub fn feature_dim(&self) -> usize {
        self.arch.feature_dim()
    }

    /// Builds the network with every parameter already materialised, so clones share values
    /// (Burn initialises lazily, and a clone of a lazy parameter would draw new random values).
    ///
    /// # Panics
    /// If [`NetConfig::validate`] fails; configurations from [`NetConfig::new`] always pass.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Net<B> {
        if let Err(e) = self.validate() {
            panic!("invalid model configuration: {e}");
        }
        let d = self.feature_dim();
        let (backbone, classifier) = match self.arch {
            Arch::CnnSmall => (
                Backbone::CnnSmall(CnnSmallConfig::new(self.in_channels).init(device)),
                linear_default(d, self.num_classes, true, device),
            ),
            Arch::Wrn { depth, widen } => {
                let config = WrnConfig::new(depth, widen, self.in_channels).expect("validated above");
                (Backbone::Wrn(config.init(device)), linear_xavier(d, self.num_classes, device))
            }
            Arch::ResNet18Cifar => (
                Backbone::ResNet18Cifar(ResNetConfig::resnet18_cifar(self.in_channels).init(device)),
                linear_default(d, self.num_classes, true, device),
            ),
        };
        let projection = self.projection.map(|p| p.init(d, device));
        Net { backbone, classifier, projection }.map(&mut Materialize)
    }
}

/// The backbone variants; each maps images `[N, C, H, W]` to features `[N, D]`.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    /// `cnn-small`.
    CnnSmall(CnnSmall<B>),
    /// `wrn-D-K`.
    Wrn(WideResNet<B>),
    /// `resnet18-cifar`.
    ResNet18Cifar(ResNet<B>),
}

impl<B: Kernels> Backbone<B> {
    /// Pooled features of images `x`.
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> Tensor<B, 2> {
        match self {
            Backbone::CnnSmall(net) => net.forward(x, mode),
            Backbone::Wrn(net) => net.forward(x, mode),
            Backbone::ResNet18Cifar(net) => net.forward(x, mode),
        }
    }
}

/// Everything one forward pass produces.
#[derive(Debug, Clone)]
pub struct NetOutput<B: Backend> {
    /// Pooled backbone features `[N, D]`.
    pub features: Tensor<B, 2>,
    /// Classifier logits `[N, classes]`.
    pub logits: Tensor<B, 2>,
    /// Projection-head outputs `[N, out]`, when the net has a head.
    pub projections: Option<Tensor<B, 2>>,
}

/// Backbone, linear classifier and optional projection head.
#[derive(Module, Debug)]
pub struct Net<B: Backend> {
    /// Feature extractor.
    pub backbone: Backbone<B>,
    /// Linear features → classes (`weight` is `[D, classes]`, transposed from PyTorch).
    pub classifier: Linear<B>,
    /// SimCLR projection head, if configured.
    pub projection: Option<ProjectionHead<B>>,
}

impl<B: Kernels> Net<B> {
    /// Features, logits and (if present) projections of images `x` (`[N, C, H, W]`).
    pub fn forward(&self, x: Tensor<B, 4>, mode: BnMode) -> NetOutput<B> {
        let _t = crate::profile::scope(crate::profile::Class::ForwardOther);
        let features = self.backbone.forward(x, mode);
        let logits = self.classifier.forward(features.clone());
        let projections = self.projection.as_ref().map(|head| head.forward(features.clone(), mode));
        NetOutput { features, logits, projections }
    }
}

/// Identity mapper: consuming each parameter forces its lazy initialiser to run once.
struct Materialize;

impl<B: Backend> ModuleMapper<B> for Materialize {}
