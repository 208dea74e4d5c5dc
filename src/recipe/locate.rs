//! Turns key paths back into places the user can find: a line and column in the recipe file (from the spans the
//! TOML parser keeps), or the `--set` argument that wrote the key.

use toml_edit::{Array, ArrayOfTables, ImDocument, InlineTable, Item, Table};

use super::error::{Location, RecipeError};
use super::overrides::Applied;
use super::tracked::{PathError, PathErrorKind};
use crate::check::Problem;
use crate::stage::StageSpec;

/// Sections a recipe must have; a missing one is reported as a section, not a key.
const REQUIRED_SECTIONS: [&str; 3] = ["data", "model", "schedule"];

/// Finds where keys were written.
pub(crate) struct Locator {
    origin: String,
    doc: ImDocument<String>,
    applied: Vec<Applied>,
}

/// A node of the span-keeping document while walking a key path.
enum Node<'a> {
    Table(&'a Table),
    Inline(&'a InlineTable),
    Tables(&'a ArrayOfTables),
    Array(&'a Array),
    Leaf,
}

impl<'a> Node<'a> {
    fn of_item(item: &'a Item) -> Self {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => Node::of_value(v),
            Item::None => Node::Leaf,
        }
    }

    fn of_value(value: &'a toml_edit::Value) -> Self {
        match value {
            toml_edit::Value::InlineTable(t) => Node::Inline(t),
            toml_edit::Value::Array(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }

    /// The child at `key` and where it starts: a table header for `[table]`s, else the key itself.
    fn child(&self, key: &str) -> Option<(Option<usize>, Node<'a>)> {
        let start = |span: Option<std::ops::Range<usize>>| span.map(|s| s.start);
        match *self {
            Node::Table(t) => t.get_key_value(key).map(|(k, item)| {
                let header = match item {
                    Item::Table(sub) => sub.span(),
                    Item::ArrayOfTables(a) => a.span(),
                    _ => None,
                };
                (start(header.or_else(|| k.span())), Node::of_item(item))
            }),
            Node::Inline(t) => t.get_key_value(key).map(|(k, item)| (start(k.span()), Node::of_item(item))),
            Node::Tables(a) => key.parse().ok().and_then(|i| a.get(i)).map(|t| (start(t.span()), Node::Table(t))),
            Node::Array(a) => key.parse().ok().and_then(|i| a.get(i)).map(|v| (start(v.span()), Node::of_value(v))),
            Node::Leaf => None,
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

impl Locator {
    /// A locator for the parsed `doc` read from `origin`, after the given overrides.
    pub(crate) fn new(origin: &str, doc: ImDocument<String>, applied: Vec<Applied>) -> Self {
        Locator { origin: origin.to_string(), doc, applied }
    }

    /// Where the key at `path` came from: the last override that wrote it or a table above it, else its place in
    /// the file (or its nearest enclosing table's, for a key the file leaves at its default).
    pub(crate) fn location(&self, path: &[String]) -> Location {
        if let Some(a) = self.applied.iter().rev().find(|a| path.starts_with(&a.path)) {
            return Location::Override { arg: a.arg.clone() };
        }
        let mut node = Node::Table(self.doc.as_table());
        let mut offset = None;
        for key in path {
            let Some((start, child)) = node.child(key) else { break };
            offset = start.or(offset);
            node = child;
        }
        match offset {
            Some(offset) => {
                let (line, column) = line_column(self.doc.raw(), offset);
                Location::Position { origin: self.origin.clone(), line, column }
            }
            None => Location::File { origin: self.origin.clone() },
        }
    }

    /// The error for a failed deserialisation; `tree` is the merged TOML tree, to tell sections from keys.
    pub(crate) fn path_error(&self, error: PathError, tree: &toml::Table) -> RecipeError {
        let path = error.path.unwrap_or_default();
        let location = self.location(&path);
        let key = path.join(".");
        match error.kind {
            PathErrorKind::UnknownField { expected } => {
                let section = path.len() == 1 && matches!(tree.get(&path[0]), Some(toml::Value::Table(_)));
                let expected = expected.iter().map(|s| s.to_string()).collect();
                RecipeError::UnknownKey { location, key, section, expected }
            }
            PathErrorKind::MissingField(field) => {
                let message = if path.len() == 1 && field == "stage" {
                    format!("at least one [[stage]] table is required (kinds: {})", StageSpec::KINDS.join(", "))
                } else if path.len() == 1 && REQUIRED_SECTIONS.contains(&field) {
                    format!("required section [{field}] is missing")
                } else {
                    "required key is missing".to_string()
                };
                RecipeError::MissingKey { location, key, message }
            }
            PathErrorKind::Message(message) => RecipeError::BadValue { location, key, message },
        }
    }

    /// The error for a value that failed validation.
    pub(crate) fn problem(&self, problem: Problem) -> RecipeError {
        let path: Vec<String> = problem.key.split('.').map(str::to_string).collect();
        RecipeError::Invalid { location: self.location(&path), key: problem.key, message: problem.message }
    }
}

/// The error for text that is not valid TOML; a duplicate key's path is recovered from the parser's message.
pub(crate) fn syntax_error(
    origin: &str,
    text: &str,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> RecipeError {
    let location = match span {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            Location::Position { origin: origin.to_string(), line, column }
        }
        None => Location::File { origin: origin.to_string() },
    };
    let message = message.trim().replace('\n', "; ");
    let key = duplicate_key(&message);
    let message = match &key {
        Some(key) => format!("{key}: {message}"),
        None => message,
    };
    RecipeError::Syntax { location, key, message }
}

/// `data.mu` from toml_edit's "duplicate key `mu` in table `data`" (or "... in document root").
fn duplicate_key(message: &str) -> Option<String> {
    let rest = &message[message.find("duplicate key `")? + "duplicate key `".len()..];
    let (key, rest) = rest.split_once('`')?;
    match rest.strip_prefix(" in table `").and_then(|t| t.split_once('`')) {
        Some((table, _)) => Some(format!("{table}.{key}")),
        None => Some(key.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
    }

    #[test]
    fn duplicate_key_paths_are_recovered() {
        assert_eq!(duplicate_key("duplicate key `mu` in table `data`"), Some("data.mu".into()));
        assert_eq!(duplicate_key("duplicate key `seed` in document root"), Some("seed".into()));
        assert_eq!(duplicate_key("invalid key"), None);
    }
}
