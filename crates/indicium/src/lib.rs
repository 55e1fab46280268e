//! postkey's printed indicium: the text a meter prints on a mailpiece and the Data Matrix beside
//! it, and the way back from a scan or an OCR reading to a [`Mailpiece`] and its two tokens.
//! docs/indicium.md describes the format; protocol §6.5 (docs/protocol.md) defines the canonical
//! mailpiece bytes and the check code.
//!
//! Start from [`Indicium`]: [`Indicium::to_text`] prints it, [`parse`] reads it back with the
//! repairs it made, and [`symbol`] draws it as PNG or SVG and reads a PNG.
//!
//! Key design decision: every field carries its own three GF(37) check characters ([`check`]),
//! and a misread character is repaired from those alone, one per field, each repair reported.
//! Repair never consults a token, so it can never be steered towards a variant that verifies;
//! whatever it gets wrong, the tokens catch. The crate holds no key and knows no secret type.
//!
//! [`Mailpiece`]: postkey_wire::Mailpiece

#![forbid(unsafe_code)]

pub mod check;
pub mod symbol;
mod text;

pub use text::{
    FIELD_COUNT, Field, FieldRepair, Indicium, MAX_TEXT_LEN, ParseError, Parsed, TAG, parse,
};
