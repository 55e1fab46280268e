//! JSON forms of the typed values in reports: identifiers print as their text.

use core::fmt::Display;

use serde::Serializer;

/// A value as its `Display` text.
pub(crate) fn display<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A list of values as their texts.
pub(crate) fn display_all<T: Display, S: Serializer>(
    values: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}

/// An optional value as its text, or `null`.
pub(crate) fn display_opt<T: Display, S: Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
