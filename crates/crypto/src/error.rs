/// A failed public-key operation. Deliberately without detail: a caller learns that a check
/// failed, never why, so that error messages cannot become an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A signature did not verify under the expected key (strict Ed25519 rules).
    #[error("signature verification failed")]
    BadSignature,
    /// Bytes that should hold a public key, signature or ciphertext have the wrong form.
    #[error("malformed public key, signature or ciphertext")]
    Malformed,
    /// HPKE sealing failed (an invalid recipient key).
    #[error("public-key encryption failed")]
    SealFailed,
}
