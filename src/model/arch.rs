//! Architecture names as they appear in recipes and on the command line.

use std::fmt;
use std::str::FromStr;

/// Which backbone a [`NetConfig`](super::NetConfig) builds; recipes write it as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Arch {
    /// `cnn-small`: five conv-BN-ReLU layers, 128 features.
    CnnSmall,
    /// `wrn-D-K`: Wide ResNet of depth D and widen factor K, 64·K features.
    Wrn {
        /// Depth D: (D − 4) divisible by 6, at least 10.
        depth: usize,
        /// Widen factor K ≥ 1.
        widen: usize,
    },
    /// `resnet18-cifar`: ResNet-18 with a 3×3 stride-1 stem and no max-pool, 512 features.
    ResNet18Cifar,
}

/// Why an architecture name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    /// Not one of the known names.
    #[error("unknown architecture {name:?}; valid names: {VALID_NAMES}")]
    Unknown {
        /// The rejected name.
        name: String,
    },
    /// A `wrn-D-K` whose depth gives no whole number of blocks per group.
    #[error(
        "invalid Wide ResNet depth {depth} in {name:?}: (depth - 4) must be a positive multiple of 6 \
         (10, 16, 22, 28, 40, ...); valid names: {VALID_NAMES}"
    )]
    WrnDepth {
        /// The rejected name.
        name: String,
        /// The rejected depth.
        depth: usize,
    },
    /// A `wrn-D-K` with K = 0.
    #[error("invalid Wide ResNet widen factor 0 in {name:?}: it must be at least 1")]
    WrnWiden {
        /// The rejected name.
        name: String,
    },
}

/// The names [`Arch`] accepts, for error messages and help texts.
pub const VALID_NAMES: &str = "cnn-small, wrn-D-K (e.g. wrn-28-2, wrn-16-8, wrn-28-10), resnet18-cifar";

impl Arch {
    /// Dimension of the pooled features the backbone produces.
    pub fn feature_dim(&self) -> usize {
        match self {
            Arch::CnnSmall => 128,
            Arch::Wrn { widen, .. } => 64 * widen,
            Arch::ResNet18Cifar => 512,
        }
    }

    /// A checked `wrn-depth-widen`.
    pub fn wrn(depth: usize, widen: usize) -> Result<Self, ArchError> {
        let name = format!("wrn-{depth}-{widen}");
        if depth < 10 || !(depth - 4).is_multiple_of(6) {
            return Err(ArchError::WrnDepth { name, depth });
        }
        if widen == 0 {
            return Err(ArchError::WrnWiden { name });
        }
        Ok(Arch::Wrn { depth, widen })
    }
}

impl FromStr for Arch {
    type Err = ArchError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let unknown = || ArchError::Unknown { name: name.to_string() };
        match name {
            "cnn-small" => Ok(Arch::CnnSmall),
            "resnet18-cifar" => Ok(Arch::ResNet18Cifar),
            _ => {
                let rest = name.strip_prefix("wrn-").ok_or_else(unknown)?;
                let (depth, widen) = rest.split_once('-').ok_or_else(unknown)?;
                let parse = |s: &str| s.parse::<usize>().map_err(|_| unknown());
                Arch::wrn(parse(depth)?, parse(widen)?).map_err(|e| match e {
                    // Report the name as written (e.g. "wrn-030-2"), not as re-formatted.
                    ArchError::WrnDepth { depth, .. } => ArchError::WrnDepth { name: name.to_string(), depth },
                    ArchError::WrnWiden { .. } => ArchError::WrnWiden { name: name.to_string() },
                    other => other,
                })
            }
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::CnnSmall => f.write_str("cnn-small"),
            Arch::Wrn { depth, widen } => write!(f, "wrn-{depth}-{widen}"),
            Arch::ResNet18Cifar => f.write_str("resnet18-cifar"),
        }
    }
}

impl TryFrom<String> for Arch {
    type Error = ArchError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Arch> for String {
    fn from(arch: Arch) -> String {
        arch.to_string()
    }
}
