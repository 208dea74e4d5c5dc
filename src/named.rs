//! Serde glue for types defined elsewhere that recipes spell by name (`DatasetKind`, augmentation `View`s):
//! they have `FromStr` and `Display` but no serde impls, and the orphan rule keeps us from adding them.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// One value written as its name (`#[serde(with = "named::one")]`).
pub(crate) mod one {
    use super::*;

    /// Writes the value's `Display` form.
    pub(crate) fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Reads a string and parses it, passing on the parser's message (which lists the valid names).
    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let name = String::deserialize(d)?;
        name.parse().map_err(D::Error::custom)
    }
}

/// A list of values written as their names (`#[serde(with = "named::list")]`).
pub(crate) mod list {
    use super::*;

    /// Writes the values' `Display` forms as an array of strings.
    pub(crate) fn serialize<T: Display, S: Serializer>(values: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(ToString::to_string))
    }

    /// Reads an array of strings and parses each one.
    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let names = Vec::<String>::deserialize(d)?;
        names.iter().map(|n| n.parse().map_err(D::Error::custom)).collect()
    }
}
