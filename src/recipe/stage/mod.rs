//! `[[stage]]` tables: the loss terms of a recipe, each tagged by `kind`, in any number and order.

mod fixmatch;
mod ggcr;
mod iam_d;
mod ntxent;
mod supervised;

pub use fixmatch::{FixMatchNormalize, FixMatchSpec, PseudoLabelKind};
pub use ggcr::GgcrSpec;
pub use iam_d::{IamDDistribution, IamDSource, IamDSpec};
pub use ntxent::NtXentSpec;
pub use supervised::SupervisedSpec;

use serde::{Deserialize, Serialize};
use toml::Value;

use super::check::Check;
use super::tracked::{PathError, Tracked};

/// One `[[stage]]` table: a loss term and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum StageSpec {
    /// `kind = "supervised"`.
    #[serde(rename = "supervised")]
    Supervised(SupervisedSpec),
    /// `kind = "fixmatch"`.
    #[serde(rename = "fixmatch")]
    FixMatch(FixMatchSpec),
    /// `kind = "iam-d"`.
    #[serde(rename = "iam-d")]
    IamD(IamDSpec),
    /// `kind = "ntxent"`.
    #[serde(rename = "ntxent")]
    NtXent(NtXentSpec),
    /// `kind = "ggcr"`.
    #[serde(rename = "ggcr")]
    Ggcr(GgcrSpec),
}

impl StageSpec {
    /// Every stage kind, as recipes name them.
    pub const KINDS: [&'static str; 5] = ["supervised", "fixmatch", "iam-d", "ntxent", "ggcr"];

    /// The stage's `kind` as written in recipes.
    pub fn kind(&self) -> &'static str {
        match self {
            StageSpec::Supervised(_) => "supervised",
            StageSpec::FixMatch(_) => "fixmatch",
            StageSpec::IamD(_) => "iam-d",
            StageSpec::NtXent(_) => "ntxent",
            StageSpec::Ggcr(_) => "ggcr",
        }
    }

    /// The stage's weight in the summed loss (β for `iam-d`).
    pub fn weight(&self) -> f64 {
        match self {
            StageSpec::Supervised(s) => s.weight,
            StageSpec::FixMatch(s) => s.weight,
            StageSpec::IamD(s) => s.beta,
            StageSpec::NtXent(s) => s.weight,
            StageSpec::Ggcr(s) => s.weight,
        }
    }

    /// Checks the stage's own ranges; `index` is its 0-based position among the `[[stage]]` tables.
    pub(crate) fn validate(&self, index: usize) -> Check {
        let at = format!("stage.{index}");
        match self {
            StageSpec::Supervised(s) => s.validate(&at),
            StageSpec::FixMatch(s) => s.validate(&at),
            StageSpec::IamD(s) => s.validate(&at),
            StageSpec::NtXent(s) => s.validate(&at),
            StageSpec::Ggcr(s) => s.validate(&at),
        }
    }
}

/// Reads every `[[stage]]` table on its own, so that an error inside one names its key (`stage.1.threshold`):
/// serde's internally tagged enums buffer a table before reading it, which loses the key a message is about.
pub(crate) fn check_tables(root: &toml::Table) -> Result<(), PathError> {
    let stages = match root.get("stage") {
        None => return Ok(()),
        Some(Value::Array(stages)) => stages,
        Some(other) => {
            return Err(PathError::at(
                vec!["stage".into()],
                format!("must be an array of tables written [[stage]], got a {}", other.type_str()),
            ))
        }
    };
    for (i, stage) in stages.iter().enumerate() {
        let at = vec!["stage".to_string(), i.to_string()];
        let Value::Table(table) = stage else {
            return Err(PathError::at(at, format!("must be a table, got a {}", stage.type_str())));
        };
        let mut rest = table.clone();
        let kind_at = vec!["stage".to_string(), i.to_string(), "kind".to_string()];
        let kind = match rest.remove("kind") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                return Err(PathError::at(kind_at, format!("must be a string, got a {}", other.type_str())));
            }
            None => {
                return Err(PathError::at(
                    kind_at,
                    format!("required key is missing (one of: {})", StageSpec::KINDS.join(", ")),
                ))
            }
        };
        let value = Tracked::new(Value::Table(rest), at);
        match kind.as_str() {
            "supervised" => SupervisedSpec::deserialize(value).map(drop),
            "fixmatch" => FixMatchSpec::deserialize(value).map(drop),
            "iam-d" => IamDSpec::deserialize(value).map(drop),
            "ntxent" => NtXentSpec::deserialize(value).map(drop),
            "ggcr" => GgcrSpec::deserialize(value).map(drop),
            other => Err(PathError::at(
                kind_at,
                format!("unknown stage kind {other:?} (expected one of: {})", StageSpec::KINDS.join(", ")),
            )),
        }?;
    }
    Ok(())
}
