//! What the generator reports: errors that stop an operation, and alarms that only degrade it.

use super::source::SourceError;

/// Which SP 800-90B §4.4 health test alarmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthTest {
    /// One byte value repeated [`RCT_CUTOFF`](super::RCT_CUTOFF) times in a row.
    RepetitionCount,
    /// A window's first byte occurred [`APT_CUTOFF`](super::APT_CUTOFF) times in its window.
    AdaptiveProportion,
}

impl core::fmt::Display for HealthTest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::RepetitionCount => "repetition count",
            Self::AdaptiveProportion => "adaptive proportion",
        })
    }
}

/// A failure that stops the operation: no output was produced, or none may be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RngError {
    /// Both streams failed: the box must not make keys.
    #[error(
        "random number generator failure: both the OS source and the DRBG failed their health \
         tests; refusing to make keys"
    )]
    BothSourcesFailed,
    /// The OS source returned an error while seeding or reseeding the DRBG.
    #[error("cannot seed the DRBG: the OS entropy source failed: {0}")]
    SeedSourceFailed(SourceError),
    /// The OS stream failed a health test (now or earlier) while seeding or reseeding the DRBG.
    #[error("cannot seed the DRBG: the OS entropy stream failed its {0} health test")]
    SeedSourceUnhealthy(HealthTest),
    /// The OS source failed while a box was enabled and no enabling context was given to keep
    /// the restored DRBG from replaying its stream.
    #[error("cannot enable: the OS entropy source failed and no unique enabling context was given")]
    EnableContextMissing,
    /// A DRBG request asked for more than 2^19 bits (SP 800-90A, HMAC_DRBG).
    #[error("DRBG request too large: at most 65536 bytes (2^19 bits) per request")]
    RequestTooLarge,
    /// The DRBG served 2^48 requests since its last reseed and must be reseeded first.
    #[error("DRBG must be reseeded: 2^48 requests since the last reseed")]
    ReseedRequired,
    /// Entropy input shorter than the 256-bit security strength.
    #[error("DRBG entropy input too short: at least 32 bytes are required")]
    EntropyTooShort,
    /// An input longer than the 2^35 bits SP 800-90A allows.
    #[error("DRBG input too long: at most 2^32 bytes (2^35 bits)")]
    InputTooLong,
    /// An exported DRBG state of the wrong length.
    #[error("DRBG state has {found} bytes, expected {expected}")]
    StateLength {
        /// The required length.
        expected: usize,
        /// The length received.
        found: usize,
    },
    /// An exported DRBG state of a version this build does not know.
    #[error("DRBG state version {0} is not supported")]
    StateVersion(u8),
    /// An exported DRBG state whose reseed counter is out of range.
    #[error("DRBG state has an invalid reseed counter")]
    StateCounter,
}

/// An event for the box's error log: one stream failed and the generator goes on without it.
/// Each stream raises at most one alarm per [`BoxRng`](super::BoxRng): its failure latches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RngAlarm {
    /// The OS source returned an error; its stream is dropped until the box is re-enabled.
    #[error("OS entropy source failed ({0}); its stream is dropped until the box is re-enabled")]
    OsSourceFailed(SourceError),
    /// The OS stream failed a health test; it is dropped until the box is re-enabled.
    #[error(
        "OS entropy stream failed its {0} health test; it is dropped until the box is re-enabled"
    )]
    OsHealthFailed(HealthTest),
    /// The DRBG stream failed a health test; it is dropped until the box is re-enabled.
    #[error("DRBG stream failed its {0} health test; it is dropped until the box is re-enabled")]
    DrbgHealthFailed(HealthTest),
    /// The DRBG refused to generate (it needed a reseed the OS source could not give).
    #[error("DRBG failed ({0}); its stream is dropped until the box is re-enabled")]
    DrbgFailed(RngError),
}
