//! HKDF-SHA256 (RFC 5869), the one key-derivation function of postkey: token keys and
//! state-sealing keys are derived through it.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::{SecretBytes, SecretError};

/// The largest output HKDF-SHA256 allows (255 blocks).
pub const MAX_OUTPUT: usize = 255 * 32;

/// `HKDF-Expand(HKDF-Extract(salt, ikm), info, len)`.
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
    len: usize,
) -> Result<SecretBytes, SecretError> {
    let mut okm = vec![0u8; len];
    match Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut okm) {
        Ok(()) => Ok(SecretBytes::new(okm)),
        Err(_) => Err(SecretError::Malformed),
    }
}

/// A 32-byte HKDF-SHA256 output, the size of every key postkey derives.
pub(crate) fn hkdf_sha256_32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    // 32 bytes are always within HKDF-SHA256's limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut okm);
    okm
}
