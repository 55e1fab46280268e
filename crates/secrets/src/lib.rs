//! Every plaintext secret of postkey, and every operation that needs one.
//!
//! Start from [`MasterKey`] (the per-meter key K and its token formulas), [`rng::BoxRng`] (the
//! generator every box draws from) and [`shares`] (secrets split among custodians).
//!
//! Key design decision: this crate is the only place a plaintext key can be named. Only the box,
//! meter and host crates may depend on it (a test reads the crate graph), so the KMS computer,
//! the archive and the server cannot hold a plaintext key even by mistake. Every secret type here
//! zeroizes on drop, prints as `[redacted]`, compares in constant time, has no `Serialize`, and
//! yields its bytes only through one accessor named `expose_secret`, so that every use is one
//! search away.

#![forbid(unsafe_code)]

mod asymmetric;
mod error;
pub mod kdf;
mod keys;
pub mod rng;
mod sealed;
mod secret;
pub mod selftest;
pub mod shares;
mod tokens;
pub mod vectors;
mod wrap;

pub use asymmetric::{HpkePrivateKey, SigningKey, seal_secret};
pub use error::SecretError;
pub use keys::{
    DomainKeySetSeed, MasterKey, OperationCombination, StateSealingKey, SubdomainAuthKey,
    SubdomainConfKey, TokenKey,
};
pub use secret::SecretBytes;
pub use tokens::{REGISTRATION_LABEL, Registration, TEST_PATTERN, TOKEN_KEY_SALT, TokenMac};
pub use wrap::{WRAPPED_KEY_LEN, WrappedKey};
