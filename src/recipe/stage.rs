//! `[[stage]]` tables: the loss terms of a recipe, each tagged by `kind`, in any number and order. Each kind's
//! keys live with its stage in `src/stage/`; this module reads the tables so that errors name their keys.

use toml::Value;

use super::tracked::{PathError, Tracked};
use crate::stage::StageSpec;

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
        StageSpec::check_table(&kind, value).unwrap_or_else(|| {
            Err(PathError::at(
                kind_at,
                format!("unknown stage kind {kind:?} (expected one of: {})", StageSpec::KINDS.join(", ")),
            ))
        })?;
    }
    Ok(())
}
