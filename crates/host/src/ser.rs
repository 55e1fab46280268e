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
