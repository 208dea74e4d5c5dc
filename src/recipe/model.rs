//! The `[model]` section: the backbone and the optional SimCLR projection head.

use serde::{Deserialize, Serialize};

use crate::check::{count_at_least, Check};
use crate::model::Arch;

/// Which network is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The backbone (required): `cnn-small`, `wrn-D-K` or `resnet18-cifar`.
    pub arch: Arch,
    /// The projection head `[model.projection]`; absent = none (needed by `ntxent` and projection-source `iam-d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<ProjectionSection>,
}

/// The projection head Linear(d→hidden)-BN-ReLU-Linear(hidden→dim) (docs/data-flow.md, "Model").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSection {
    /// Width of the hidden layer.
    #[serde(default = "default::hidden")]
    pub hidden: usize,
    /// Dimension of the projected vectors.
    #[serde(default = "default::dim")]
    pub dim: usize,
}

/// Defaults of the `[model.projection]` keys.
mod default {
    pub(super) fn hidden() -> usize {
        512
    }
    pub(super) fn dim() -> usize {
        128
    }
}

impl Default for ProjectionSection {
    fn default() -> Self {
        ProjectionSection { hidden: default::hidden(), dim: default::dim() }
    }
}

impl ModelSection {
    /// Checks the ranges of the section's own keys.
    pub(crate) fn validate(&self) -> Check {
        if let Some(p) = &self.projection {
            count_at_least("model.projection.hidden", p.hidden, 1)?;
            count_at_least("model.projection.dim", p.dim, 1)?;
        }
        Ok(())
    }
}
