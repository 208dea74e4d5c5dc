//! Recipe errors: each names where it happened (file, line and column, or the `--set` that caused it) and the key.

use std::fmt;
use std::path::PathBuf;

/// Where in the user's input an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line and column (both 1-based) in a recipe file.
    Position {
        /// The file name (or other origin) the recipe was read from.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A recipe file, when the key is not written in it (e.g. a required key that is missing at the top).
    File {
        /// The file name (or other origin) the recipe was read from.
        origin: String,
    },
    /// A value given on the command line.
    Override {
        /// The `KEY=VALUE` argument as given.
        arg: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Position { origin, line, column } => write!(f, "{origin}:{line}:{column}"),
            Location::File { origin } => f.write_str(origin),
            Location::Override { arg } => write!(f, "--set {arg}"),
        }
    }
}

/// Why a recipe could not be loaded; the message reads `recipes/x.toml:12:3: stage.1.threshold: must be in (0, 1], got 1.5`.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file could not be read.
    #[error("{}: cannot read recipe: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML (including a key written twice).
    #[error("{location}: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// The duplicated key's path, when the error is a duplicate key.
        key: Option<String>,
        /// The TOML parser's message.
        message: String,
    },
    /// A key or section the recipe format does not have.
    #[error("{location}: {key}: unknown {} (expected one of: {})", if *.section { "section" } else { "key" }, .expected.join(", "))]
    UnknownKey {
        /// Where the key is written.
        location: Location,
        /// Dotted key path, e.g. `data.labels_per_clas`.
        key: String,
        /// Whether the unknown key holds a table.
        section: bool,
        /// The keys allowed at that place.
        expected: Vec<String>,
    },
    /// A required key or section is absent.
    #[error("{location}: {key}: {message}")]
    MissingKey {
        /// The enclosing table's position (the missing key has none).
        location: Location,
        /// Dotted key path of the missing key.
        key: String,
        /// What is missing.
        message: String,
    },
    /// A value of the wrong type, or a name that is not one of the allowed ones.
    #[error("{location}: {key}: {message}")]
    BadValue {
        /// Where the key is written.
        location: Location,
        /// Dotted key path.
        key: String,
        /// serde's or the name parser's message.
        message: String,
    },
    /// A value that parsed but is out of range or inconsistent with another setting.
    #[error("{location}: {key}: {message}")]
    Invalid {
        /// Where the key is written (for a defaulted key, the section that would hold it).
        location: Location,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument that is malformed or addresses something that does not exist.
    #[error("--set {arg}: {message}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
}

impl RecipeError {
    /// The dotted key path the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            RecipeError::Read { .. } | RecipeError::Override { .. } => None,
            RecipeError::Syntax { key, .. } => key.as_deref(),
            RecipeError::UnknownKey { key, .. }
            | RecipeError::MissingKey { key, .. }
            | RecipeError::BadValue { key, .. }
            | RecipeError::Invalid { key, .. } => Some(key),
        }
    }

    /// Where the error is, when it is in the recipe text or a `--set` argument.
    pub fn location(&self) -> Option<&Location> {
        match self {
            RecipeError::Read { .. } | RecipeError::Override { .. } => None,
            RecipeError::Syntax { location, .. }
            | RecipeError::UnknownKey { location, .. }
            | RecipeError::MissingKey { location, .. }
            | RecipeError::BadValue { location, .. }
            | RecipeError::Invalid { location, .. } => Some(location),
        }
    }
}
