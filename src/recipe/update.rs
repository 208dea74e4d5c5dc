//! The `[update]` table: its rule's keys live with the rules in `src/update/spec.rs`; this module reads the table so
//! that errors name their keys, and fills in `rule = "plain"` when the table leaves it out.

use toml::Value;

use super::tracked::{PathError, Tracked};
use crate::update::UpdateSection;

/// Reads the `[update]` table for its rule alone, so that an error inside it names its key (`update.eta`): serde's
/// internally tagged enums buffer a table before reading it, which loses the key a message is about.
pub(crate) fn check_table(root: &mut toml::Table) -> Result<(), PathError> {
    let Some(update) = root.get_mut("update") else {
        return Ok(());
    };
    let Value::Table(table) = update else {
        return Err(PathError::at(vec!["update".into()], format!("must be a table, got a {}", update.type_str())));
    };
    let rule_at = vec!["update".to_string(), "rule".to_string()];
    let rule = match table.get("rule") {
        Some(Value::String(rule)) => rule.clone(),
        Some(other) => return Err(PathError::at(rule_at, format!("must be a string, got a {}", other.type_str()))),
        None => {
            table.insert("rule".into(), Value::String("plain".into()));
            "plain".into()
        }
    };
    let mut rest = table.clone();
    rest.remove("rule");
    // A key of another rule gets a message that says so; serde's "unknown field" would only list this rule's keys.
    if let Some((_, own)) = UpdateSection::KEYS.iter().find(|(r, _)| *r == rule) {
        for key in rest.keys() {
            let users: Vec<&str> =
                UpdateSection::KEYS.iter().filter(|(_, keys)| keys.contains(&key.as_str())).map(|(r, _)| *r).collect();
            if !own.contains(&key.as_str()) && !users.is_empty() {
                return Err(PathError::at(
                    vec!["update".into(), key.clone()],
                    format!("does not apply to rule = {rule:?} (it is a key of {})", users.join(", ")),
                ));
            }
        }
    }
    UpdateSection::check_table(&rule, Tracked::new(Value::Table(rest), vec!["update".into()])).unwrap_or_else(|| {
        Err(PathError::at(
            rule_at,
            // serde's wording, as for every other unknown name in a recipe.
            format!(
                "unknown variant `{rule}`, expected one of {}",
                UpdateSection::RULES.map(|r| format!("`{r}`")).join(", ")
            ),
        ))
    })
}
