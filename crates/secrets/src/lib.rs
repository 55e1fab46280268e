//! Every plaintext secret of postkey, and every operation that needs one.
//!
//! Start from [`MasterKey`] (the per-meter key K and its token formulas), [`rng::BoxRng`] (the
//! generator every box draws from) and [`shares`] (operation combinations split among
//! custodians).
//!
//! Key design decision: this crate is the only place a plaintext key can be named. Only the box,
//! meter and host crates may depend on it (a test reads the crate graph), so the KMS computer,
//! the archive and the server cannot hold a plaintext key even by mistake. Every secret type here
//! zeroizes on drop, prints as `[redacted]`, compares in constant time, and yields its bytes only
//! through one accessor named `expose_secret`, so every use is one `grep` away.

#![forbid(unsafe_code)]

pub mod rng;
