//! MR3 record protection (protocol §4): K wrapped with AES-256-KWP (RFC 5649) under the sub-domain's
//! confidentiality key, and the record's exact encoded bytes MAC'd with HMAC-SHA256 under its
//! authentication key.

use aes_kw::KwpAes256;
use aes_kw::cipher::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::{MasterKey, SecretBytes, SecretError, SubdomainAuthKey, SubdomainConfKey};

pub use postkey_wire::{WRAPPED_KEY_LEN, WrappedKey};

impl SubdomainConfKey {
    /// Wraps `key` with AES-256-KWP.
    pub fn wrap(&self, key: &MasterKey) -> WrappedKey {
        let kwp = KwpAes256::new(self.expose_secret().into());
        let mut out = [0u8; WRAPPED_KEY_LEN];
        // The output buffer is exactly the KWP length of a 32-byte key, so wrapping cannot fail.
        let _ = kwp.wrap_key(key.expose_secret(), &mut out);
        WrappedKey(out)
    }

    /// Unwraps a master key. Accepts only the 40-byte wrapped form of a 32-byte key: `aes-kw`
    /// alone also accepts shorter inputs (an 8-byte one unwraps to an empty key, Wycheproof KWP
    /// case 253), which must never become a master key.
    pub fn unwrap(&self, wrapped: &[u8]) -> Result<MasterKey, SecretError> {
        if wrapped.len() != WRAPPED_KEY_LEN {
            return Err(SecretError::DecryptionFailed);
        }
        let raw = self.unwrap_any(wrapped)?;
        let bytes: [u8; 32] =
            raw.expose_secret().try_into().map_err(|_| SecretError::DecryptionFailed)?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// Unwraps any KWP input, for the known-answer tests of the primitive; not in a release
    /// build.
    #[cfg(any(test, feature = "testing"))]
    pub fn unwrap_raw(&self, wrapped: &[u8]) -> Result<SecretBytes, SecretError> {
        self.unwrap_any(wrapped)
    }

    /// Unwraps any KWP input of at most 4 KiB.
    fn unwrap_any(&self, wrapped: &[u8]) -> Result<SecretBytes, SecretError> {
        if wrapped.len() > 4096 {
            return Err(SecretError::DecryptionFailed);
        }
        let kwp = KwpAes256::new(self.expose_secret().into());
        let mut buf = vec![0u8; wrapped.len()];
        let n = kwp.unwrap_key(wrapped, &mut buf).map(<[u8]>::len);
        match n {
            Ok(n) => {
                buf.truncate(n);
                Ok(SecretBytes::new(buf))
            }
            Err(_) => {
                buf.zeroize();
                Err(SecretError::DecryptionFailed)
            }
        }
    }
}

impl SubdomainAuthKey {
    fn hmac(&self) -> Hmac<Sha256> {
        crate::secret::hmac_sha256(self.expose_secret())
    }

    /// HMAC-SHA256 over exactly `bytes`.
    pub fn mac(&self, bytes: &[u8]) -> [u8; 32] {
        let mut m = self.hmac();
        m.update(bytes);
        m.finalize().into_bytes().into()
    }

    /// Checks a full 32-byte tag over `bytes` in constant time.
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> Result<(), SecretError> {
        if tag.len() != 32 {
            return Err(SecretError::BadMac);
        }
        let mut m = self.hmac();
        m.update(bytes);
        m.verify_slice(tag).map_err(|_| SecretError::BadMac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trips_and_refuses_tampering_and_other_lengths() {
        let kek = SubdomainConfKey::from_bytes([3u8; 32]);
        let k = MasterKey::from_bytes([9u8; 32]);
        let w = kek.wrap(&k);
        assert_eq!(kek.unwrap(&w.0).unwrap(), k);
        let mut bad = w.0;
        bad[20] ^= 1;
        assert_eq!(kek.unwrap(&bad).unwrap_err(), SecretError::DecryptionFailed);
        assert!(SubdomainConfKey::from_bytes([4u8; 32]).unwrap(&w.0).is_err());
        assert!(kek.unwrap(&w.0[..32]).is_err());
        // A correctly wrapped 16-byte key is a valid KWP input but never a master key.
        let mut short = [0u8; 24];
        let _ =
            KwpAes256::new(kek.expose_secret().into()).wrap_key(&[1u8; 16], &mut short).unwrap();
        assert!(kek.unwrap_raw(&short).is_ok());
        assert_eq!(kek.unwrap(&short).unwrap_err(), SecretError::DecryptionFailed);
    }

    #[test]
    fn mac_verifies_only_the_exact_bytes() {
        let k = SubdomainAuthKey::from_bytes([5u8; 32]);
        let tag = k.mac(b"record");
        assert!(k.verify(b"record", &tag).is_ok());
        assert_eq!(k.verify(b"recorD", &tag), Err(SecretError::BadMac));
        assert_eq!(k.verify(b"record", &tag[..31]), Err(SecretError::BadMac));
        assert_eq!(SecretError::BadMac.response_code(), postkey_wire::ResponseCode::BAD_MAC);
    }
}
