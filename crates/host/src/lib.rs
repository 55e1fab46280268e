//! The host: wires the KMS computer to the secure boxes it hosts, for the embedded default (every
//! box inside the `postkey` process) and, later, the server.
//!
//! Start from [`test_vectors_json`], which publishes the token test vectors, and
//! [`run_self_tests`].
//!
//! Key design decision: this is the one crate besides the boxes and the meter that may depend on
//! the secrets crate, because hosting a box means constructing it. It hands the KMS computer only
//! the box's message interface, so the KMS computer never holds a box's keys.

#![forbid(unsafe_code)]

mod vectors;

pub use postkey_secrets::selftest::KatResult;
pub use vectors::test_vectors_json;

/// Runs the power-up known-answer test of every primitive, as a box does before it is enabled.
pub fn run_self_tests() -> Vec<KatResult> {
    postkey_secrets::selftest::run(&postkey_secrets::selftest::kats())
}
