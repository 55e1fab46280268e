use postkey_wire::ResponseCode;

use crate::rng::RngError;
use crate::shares::ShareError;

/// A failed operation on a secret. Cryptographic failures carry no detail: a caller learns that
/// a check failed, never which byte or why, so that errors cannot become an oracle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The generator refused to produce output (both sources failed their health tests).
    #[error(transparent)]
    Rng(#[from] RngError),
    /// A ciphertext did not open, or an unwrapped key has the wrong length.
    #[error("decryption or key unwrap failed")]
    DecryptionFailed,
    /// A MAC did not verify.
    #[error("MAC verification failed")]
    BadMac,
    /// A sealed state did not open (altered, truncated, another box's, or another version).
    #[error(
        "sealed state does not open: it was altered, truncated, or belongs to another box or version"
    )]
    SealedStateInvalid,
    /// Key material of the wrong form.
    #[error("malformed key material")]
    Malformed,
    /// Shares could not be checked or combined.
    #[error(transparent)]
    Share(#[from] ShareError),
}

impl SecretError {
    /// The documented response code (`docs/response-codes.md`).
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Rng(_) => ResponseCode::RNG_FAILURE,
            Self::DecryptionFailed | Self::Malformed => ResponseCode::DECRYPTION_FAILED,
            Self::BadMac => ResponseCode::BAD_MAC,
            Self::SealedStateInvalid => ResponseCode::SEALED_STATE_INVALID,
            Self::Share(e) => e.response_code(),
        }
    }
}
