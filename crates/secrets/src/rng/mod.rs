//! The random number generator of every box (protocol §4.1): the operating system's entropy source
//! XOR our own HMAC_DRBG (SP 800-90A, SHA-256), each stream health-tested on its own.
//!
//! Start from [`BoxRng`]: [`BoxRng::instantiate`] at box initialization,
//! [`BoxRng::restore`] each time the box is enabled, [`BoxRng::fill`] for key bytes, and
//! [`BoxRng::with_guard`] to hand the generator to a library that wants a `rand_core::CryptoRng`.
//!
//! ```text
//!  OS source ──► RCT + APT ──┐
//!                           XOR ──► output      a failed stream is dropped with an alarm;
//!  HMAC_DRBG ──► RCT + APT ──┘                  both failed: no output at all
//!     ▲ seeded at initialization, state kept in the sealed state,
//!     └ reseeded from the OS source every time the box is enabled
//! ```
//!
//! Key design decision: the two streams fail independently and visibly. Each has its own
//! SP 800-90B health monitor that latches on its first alarm; a failed stream is dropped from
//! the XOR (never mixed in as garbage), an [`RngAlarm`] is queued for the error log, and only
//! when both have failed does the generator refuse to produce anything. The DRBG is written
//! here, not taken from a crate, because its state (K, V, reseed counter) must travel in the
//! box's sealed state as a [`DrbgState`].

mod box_rng;
mod drbg;
mod error;
mod guard;
mod health;
mod source;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use box_rng::BoxRng;
pub use drbg::{DrbgState, HmacDrbg};
pub use error::{HealthTest, RngAlarm, RngError};
pub use guard::GuardedRng;
pub use health::{APT_CUTOFF, APT_WINDOW, RCT_CUTOFF};
pub use source::{EntropySource, OsEntropy, SourceError};
