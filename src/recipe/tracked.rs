//! A serde deserializer over a parsed TOML tree that remembers the key path of every value.
//!
//! `toml::Value`'s own deserializer forgets where a value came from, and spans do not survive `--set` overrides,
//! so recipes are deserialised through this wrapper: every error comes back with the path of the key it is about
//! (`stage.1.threshold`), which the locator then turns into a line and column or the override that set it.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use toml::Value;

/// What went wrong while deserialising, and at which key path (filled in as the error leaves the tree).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathError {
    /// Key path of the offending value; `None` until the innermost tracked value claims the error.
    pub path: Option<Vec<String>>,
    /// What went wrong.
    pub kind: PathErrorKind,
}

/// The kinds of deserialisation error that are reported differently.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathErrorKind {
    /// Wrong type, unknown enum name, unparsable string: serde's message.
    Message(String),
    /// A key that the table does not have.
    UnknownField {
        /// The keys the table accepts.
        expected: &'static [&'static str],
    },
    /// A required key that is absent (the path then ends with that key).
    MissingField(&'static str),
}

impl PathError {
    /// An error about the value at `path`.
    pub(crate) fn at(path: Vec<String>, message: impl Into<String>) -> Self {
        PathError { path: Some(path), kind: PathErrorKind::Message(message.into()) }
    }

    /// Claims the error for `path` unless a deeper value already did.
    fn claim(mut self, path: &[String]) -> Self {
        if self.path.is_none() {
            let mut full = path.to_vec();
            if let PathErrorKind::MissingField(field) = self.kind {
                full.push(field.to_string());
            }
            self.path = Some(full);
        }
        self
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_ref().map(|p| p.join(".")).unwrap_or_default();
        match &self.kind {
            PathErrorKind::Message(m) => write!(f, "{path}: {m}"),
            PathErrorKind::UnknownField { .. } => write!(f, "{path}: unknown key"),
            PathErrorKind::MissingField(_) => write!(f, "{path}: required key is missing"),
        }
    }
}

impl std::error::Error for PathError {}

impl de::Error for PathError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PathError { path: None, kind: PathErrorKind::Message(msg.to_string()) }
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        // The map access that read the key claims the error, so the path ends with the unknown key itself.
        PathError { path: None, kind: PathErrorKind::UnknownField { expected } }
    }

    fn missing_field(field: &'static str) -> Self {
        PathError { path: None, kind: PathErrorKind::MissingField(field) }
    }
}

/// A TOML value together with its key path from the document root.
pub(crate) struct Tracked {
    value: Value,
    path: Vec<String>,
}

impl Tracked {
    /// Wraps `value` found at `path`.
    pub(crate) fn new(value: Value, path: Vec<String>) -> Self {
        Tracked { value, path }
    }
}

fn child(path: &[String], key: impl Into<String>) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(key.into());
    p
}

impl<'de> de::Deserializer<'de> for Tracked {
    type Error = PathError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let path = self.path;
        let result = match self.value {
            Value::Boolean(b) => visitor.visit_bool(b),
            Value::Integer(i) => visitor.visit_i64(i),
            Value::Float(x) => visitor.visit_f64(x),
            Value::String(s) => visitor.visit_string(s),
            Value::Datetime(d) => visitor.visit_string(d.to_string()),
            Value::Array(items) => {
                visitor.visit_seq(TrackedSeq { items: items.into_iter().enumerate(), path: path.clone() })
            }
            Value::Table(table) => {
                visitor.visit_map(TrackedMap { entries: table.into_iter(), pending: None, path: path.clone() })
            }
        };
        result.map_err(|e| e.claim(&path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        // TOML has no null: a present key is always `Some`.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        match self.value {
            Value::String(s) => {
                let path = self.path;
                visitor.visit_enum(s.into_deserializer()).map_err(|e: PathError| e.claim(&path))
            }
            // Anything else is a type error, which deserialize_any reports in serde's words.
            other => Tracked { value: other, path: self.path }.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq
        tuple tuple_struct map struct identifier ignored_any
    }
}

/// The elements of a TOML array, each tracked under its index.
struct TrackedSeq {
    items: std::iter::Enumerate<std::vec::IntoIter<Value>>,
    path: Vec<String>,
}

impl<'de> SeqAccess<'de> for TrackedSeq {
    type Error = PathError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, PathError> {
        match self.items.next() {
            Some((i, value)) => {
                let path = child(&self.path, i.to_string());
                // `deserialize_with` and `try_from` fields fail after the value was read: claim those here.
                seed.deserialize(Tracked::new(value, path.clone())).map(Some).map_err(|e| e.claim(&path))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a TOML table, each value tracked under its key.
struct TrackedMap {
    entries: toml::map::IntoIter,
    pending: Option<(String, Value)>,
    path: Vec<String>,
}

impl<'de> MapAccess<'de> for TrackedMap {
    type Error = PathError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, PathError> {
        match self.entries.next() {
            Some((key, value)) => {
                let path = child(&self.path, key.clone());
                self.pending = Some((key.clone(), value));
                seed.deserialize(key.into_deserializer()).map(Some).map_err(|e: PathError| e.claim(&path))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PathError> {
        match self.pending.take() {
            Some((key, value)) => {
                let path = child(&self.path, key);
                // `deserialize_with` and `try_from` fields fail after the value was read: claim those here.
                seed.deserialize(Tracked::new(value, path.clone())).map_err(|e| e.claim(&path))
            }
            // serde's derived visitors always read a key first; say so rather than panic if one does not.
            None => Err(PathError::at(self.path.clone(), "internal error: value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
