//! Backbones, heads and the BatchNorm they share.
//!
//! Every network runs `forward(x, mode)` with an explicit [`BnMode`], so whether a pass updates the
//! BatchNorm running statistics is the caller's decision, never a side effect of the backend.
//! [`NetConfig`] builds the one network type ([`Net`]) that training, evaluation and export use.

mod arch;
mod batch_norm;
mod cnn_small;
mod init;
mod net;
mod params;
mod projection;
mod resnet;
mod running_stat;
mod wrn;

pub use arch::{Arch, ArchError, VALID_NAMES};
pub use batch_norm::{BatchNorm, BatchNormConfig, BnMode};
pub use cnn_small::{global_avg_pool, CnnSmall, CnnSmallConfig, ConvBn};
pub use net::{Backbone, Net, NetConfig, NetConfigError, NetOutput};
pub use params::{num_params, param_infos, param_values, ParamInfo, ParamKind};
pub use projection::{ProjectionConfig, ProjectionHead};
pub use resnet::{Downsample, ResNet, ResNetBlock, ResNetConfig, ResNetStage};
pub use running_stat::RunningStat;
pub use wrn::{WideBasicBlock, WideGroup, WideResNet, WrnConfig};
