//! Box state at rest (protocol §7.2 item 6): AES-256-GCM-SIV under a key derived from the box's
//! operation combination, with the state header (box ID, state version) as associated data, so
//! that a state file renamed to another box or relabelled with another version fails to open.
//! GCM-SIV keeps confidentiality even if a nonce ever repeats (a restored generator state).

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use zeroize::Zeroize;

use crate::rng::BoxRng;
use crate::{OperationCombination, SecretBytes, SecretError, StateSealingKey};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The HKDF salt of state-sealing keys.
const SEALING_SALT: &[u8] = b"postkey/state-seal/v1";

impl OperationCombination {
    /// The key that seals this box's state. `box_label` is the box ID the state belongs to, so
    /// one operation combination never seals two boxes' states under one key.
    pub fn state_sealing_key(&self, box_label: &str) -> StateSealingKey {
        let mut okm =
            crate::kdf::hkdf_sha256_32(self.expose_secret(), SEALING_SALT, box_label.as_bytes());
        let key = StateSealingKey::from_bytes(okm);
        okm.zeroize();
        key
    }
}

impl StateSealingKey {
    /// Seals `plaintext` with `header` as associated data: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(
        &self,
        header: &[u8],
        plaintext: &[u8],
        rng: &mut BoxRng,
    ) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let cipher = Aes256GcmSiv::new(self.expose_secret().into());
        let ct = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: header })
            .map_err(|_| SecretError::SealedStateInvalid)?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    /// Opens what [`seal`](Self::seal) made under the same header. Any change to the header,
    /// nonce, ciphertext or tag, and any truncation, fails without detail.
    pub fn open(&self, header: &[u8], sealed: &[u8]) -> Result<SecretBytes, SecretError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::SealedStateInvalid);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| SecretError::SealedStateInvalid)?;
        let cipher = Aes256GcmSiv::new(self.expose_secret().into());
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: header })
            .map(SecretBytes::new)
            .map_err(|_| SecretError::SealedStateInvalid)
    }

    /// Raw AES-256-GCM-SIV, for the known-answer tests of the primitive (explicit nonce); not in
    /// a release build.
    #[cfg(any(test, feature = "testing"))]
    pub fn open_raw(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ct_and_tag: &[u8],
    ) -> Result<SecretBytes, SecretError> {
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| SecretError::SealedStateInvalid)?;
        Aes256GcmSiv::new(self.expose_secret().into())
            .decrypt(&Nonce::from(nonce), Payload { msg: ct_and_tag, aad })
            .map(SecretBytes::new)
            .map_err(|_| SecretError::SealedStateInvalid)
    }

    /// Raw AES-256-GCM-SIV sealing with an explicit nonce, for the known-answer tests only (the
    /// power-up self-test, and the Wycheproof cases in a test build): production sealing draws
    /// its nonce from the box generator.
    #[cfg(any(test, feature = "testing"))]
    pub fn seal_raw(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        self.seal_with_nonce(nonce, aad, plaintext)
    }

    /// [`seal_raw`](Self::seal_raw) for the power-up self-test.
    pub(crate) fn seal_with_nonce(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SecretError> {
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| SecretError::SealedStateInvalid)?;
        Aes256GcmSiv::new(self.expose_secret().into())
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| SecretError::SealedStateInvalid)
    }
}
