use core::fmt;

#[cfg(any(test, feature = "testing"))]
use ed25519_dalek::Verifier as _;

use crate::{CryptoError, Fingerprint};

/// An Ed25519 public key (RFC 8032). Verification is always strict: small-order keys and
/// non-canonical signatures are rejected (`verify_strict`), so one message has one valid
/// signature encoding per key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// The key from its 32-byte encoding; rejects bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes).map(Self).map_err(|_| CryptoError::Malformed)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Checks `signature` over exactly `message` with the strict rules of RFC 8032 §5.1.7 plus
    /// rejection of weak (small-order) keys.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        if self.0.is_weak() {
            return Err(CryptoError::BadSignature);
        }
        self.0.verify_strict(message, &sig).map_err(|_| CryptoError::BadSignature)
    }

    /// Checks a signature the lenient way. Only the known-answer tests use it, to show which
    /// Wycheproof cases the strict rules reject on purpose; not in a release build.
    #[cfg(any(test, feature = "testing"))]
    pub fn verify_lenient_for_tests(&self, message: &[u8], signature: &Signature) -> bool {
        self.0.verify(message, &ed25519_dalek::Signature::from_bytes(&signature.0)).is_ok()
    }

    /// The fingerprint operators compare.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of("ed25519", &self.to_bytes())
    }

    /// Wraps a dalek key; used by the secrets crate when it derives the public half.
    pub fn from_dalek(key: ed25519_dalek::VerifyingKey) -> Self {
        Self(key)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey(")?;
        for b in &self.to_bytes()[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// An Ed25519 signature, 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

crate::cbor_byte_string!(VerifyingKey, 32, "Ed25519 public key", |v| v.0.to_bytes(), |b| {
    VerifyingKey::from_bytes(&b)
        .map_err(|_| minicbor::decode::Error::message("invalid Ed25519 public key"))
});
crate::cbor_byte_string!(Signature, 64, "signature", |v| v.0, |b| Ok(Signature(b)));

/// Something that signs with an Ed25519 private key it keeps to itself. Implemented in the
/// secrets crate; the wire codec signs envelopes through this trait without seeing the key.
pub trait Signer {
    /// Signs exactly `message`.
    fn sign(&self, message: &[u8]) -> Signature;
    /// The public half.
    fn verifying_key(&self) -> VerifyingKey;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1_verifies_and_a_flipped_bit_does_not() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let pk = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let sig = hex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        );
        let key = VerifyingKey::from_bytes(&pk.clone().try_into().unwrap()).unwrap();
        let mut s = Signature(sig.try_into().unwrap());
        assert_eq!(key.verify(b"", &s), Ok(()));
        s.0[10] ^= 1;
        assert_eq!(key.verify(b"", &s), Err(CryptoError::BadSignature));
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point encodes as 01 00 .. 00: a weak key a strict verifier must refuse.
        let mut pk = [0u8; 32];
        pk[0] = 1;
        let key = VerifyingKey::from_bytes(&pk).unwrap();
        assert_eq!(key.verify(b"m", &Signature([0u8; 64])), Err(CryptoError::BadSignature));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
