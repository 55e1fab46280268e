//! Private keys: Ed25519 signing keys and X25519 HPKE private keys (protocol §5).

use hpke::{Deserializable as _, OpModeR};
use postkey_crypto::suite::{Aead, Kdf, Kem};
use postkey_crypto::{HpkeCiphertext, HpkeInfo, HpkePublicKey, Signature, Signer, VerifyingKey};
use zeroize::Zeroize;

use crate::rng::BoxRng;
use crate::secret::secret_bytes;
use crate::{MasterKey, SecretBytes, SecretError};

/// An Ed25519 private key (its 32-byte seed, RFC 8032): a box's identity key, a startup
/// authentication key, a domain's Oak, Steel or Brass authentication key, the audit key.
///
/// It keeps the expanded key and its public half (computed once, not at every signature); the
/// dalek key zeroizes all of it on drop (its `zeroize` feature is on).
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The length of the seed in bytes.
    pub const LEN: usize = 32;

    /// Takes ownership of a seed (from a sealed state, a KAT, an unwrapped record). The
    /// caller's copy should be a temporary that is zeroized or dropped at once.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let key = Self(ed25519_dalek::SigningKey::from_bytes(&bytes));
        bytes.zeroize();
        key
    }

    /// A fresh seed from the box's generator.
    pub fn generate(rng: &mut BoxRng) -> Result<Self, crate::rng::RngError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(&mut *seed)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The seed. Every use is a place where a plaintext secret is handled.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl subtle::ConstantTimeEq for SigningKey {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.expose_secret()[..].ct_eq(&other.expose_secret()[..])
    }
}

impl PartialEq for SigningKey {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self, other).into()
    }
}

impl Eq for SigningKey {}

// The dalek key inside zeroizes the seed, the expanded key and the public half on drop.
impl zeroize::ZeroizeOnDrop for SigningKey {}

impl Signer for SigningKey {
    fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.0.sign(message).to_bytes())
    }

    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_dalek(self.0.verifying_key())
    }
}

secret_bytes!(
    /// An X25519 private key used to open HPKE ciphertexts: a box's confidentiality key, a
    /// domain's Brass confidentiality key, a meter's transport key, the Domain Key Set's
    /// confidentiality key.
    HpkePrivateKey, 32
);

impl HpkePrivateKey {
    fn hpke(&self) -> Result<<Kem as hpke::Kem>::PrivateKey, SecretError> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(self.expose_secret())
            .map_err(|_| SecretError::Malformed)
    }

    fn x25519(&self) -> x25519_dalek::StaticSecret {
        // StaticSecret zeroizes on drop (x25519-dalek's `zeroize` feature).
        x25519_dalek::StaticSecret::from(*self.expose_secret())
    }

    /// The public half: the X25519 base-point multiple (RFC 7748).
    pub fn public_key(&self) -> HpkePublicKey {
        HpkePublicKey::from_bytes(x25519_dalek::PublicKey::from(&self.x25519()).to_bytes())
    }

    /// The raw X25519 function the HPKE KEM runs, refusing an all-zero result (a low-order peer
    /// key) as RFC 9180 §7.1.4 requires. HPKE uses its own copy; this one serves the
    /// known-answer tests of the primitive.
    pub fn diffie_hellman(&self, peer: &[u8; 32]) -> Result<SecretBytes, SecretError> {
        let shared = self.x25519().diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
        if !shared.was_contributory() {
            return Err(SecretError::Malformed);
        }
        Ok(SecretBytes::new(shared.as_bytes().to_vec()))
    }

    /// Opens `ct`, which must have been sealed under exactly this `info` (protocol §4): a
    /// ciphertext moved to another record type, domain, key ID or recipient fails.
    pub fn open(&self, info: &HpkeInfo, ct: &HpkeCiphertext) -> Result<SecretBytes, SecretError> {
        let sk = self.hpke()?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(ct.enc())
            .map_err(|_| SecretError::DecryptionFailed)?;
        let mut plain = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info.to_bytes(),
            ct.ciphertext(),
            b"",
        )
        .map_err(|_| SecretError::DecryptionFailed)?;
        let out = SecretBytes::new(plain.clone());
        plain.zeroize();
        Ok(out)
    }

    /// Opens a ciphertext that must hold exactly one master key.
    pub fn open_master_key(
        &self,
        info: &HpkeInfo,
        ct: &HpkeCiphertext,
    ) -> Result<MasterKey, SecretError> {
        let plain = self.open(info, ct)?;
        let bytes: [u8; 32] =
            plain.expose_secret().try_into().map_err(|_| SecretError::DecryptionFailed)?;
        Ok(MasterKey::from_bytes(bytes))
    }
}

/// Seals secret bytes to a public key with the box generator: the randomness check of
/// [`BoxRng::with_guard`] discards the ciphertext if the generator failed during sealing.
pub fn seal_secret(
    recipient: &HpkePublicKey,
    info: &HpkeInfo,
    secret: &[u8],
    rng: &mut BoxRng,
) -> Result<HpkeCiphertext, SecretError> {
    rng.with_guard(|g| postkey_crypto::seal(recipient, info, secret, g))?
        .map_err(|_| SecretError::Malformed)
}

impl MasterKey {
    /// Seals K to `recipient` (MI3, MI5, MI9).
    pub fn seal_to(
        &self,
        recipient: &HpkePublicKey,
        info: &HpkeInfo,
        rng: &mut BoxRng,
    ) -> Result<HpkeCiphertext, SecretError> {
        seal_secret(recipient, info, self.expose_secret(), rng)
    }
}
