//! HPKE base mode (RFC 9180) with the suite of protocol §4, sealing to a public key.
//!
//! Opening needs a private key and so lives in the secrets crate; both sides build the `info`
//! string with [`HpkeInfo`], so a ciphertext moved to another record type, domain, key ID or
//! recipient fails to open.

use core::fmt;

use hpke::{Deserializable as _, OpModeS, Serializable as _};
use minicbor::{Decode, Encode};
use rand_core::CryptoRng;

use crate::suite::{Aead, Kdf, Kem};
use crate::{CryptoError, Fingerprint};

/// Length of the encapsulated key of DHKEM(X25519).
pub const HPKE_ENC_LEN: usize = 32;
/// The largest plaintext postkey seals (a domain-key delivery); larger input is refused.
pub const MAX_HPKE_PLAINTEXT: usize = 16 * 1024;
/// The AES-256-GCM tag that every ciphertext carries.
const TAG_LEN: usize = 16;

/// An X25519 public key used as an HPKE recipient key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HpkePublicKey([u8; 32]);

impl HpkePublicKey {
    /// The key from its 32-byte encoding.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The fingerprint operators compare.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of("x25519", &self.0)
    }
}

impl fmt::Debug for HpkePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HpkePublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

crate::cbor_byte_string!(HpkePublicKey, 32, "HPKE public key", |v| v.0, |b| Ok(HpkePublicKey(b)));

/// The record types whose content is HPKE-sealed, named as in the `info` string (protocol §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HpkeRecordType {
    /// Oak → archive: K for the domain's Brass processes.
    Mi3,
    /// Oak → Steel: K and the test tokens for the addressed Steel box.
    Mi4,
    /// Steel → meter: K under the meter transport key.
    Mi5,
    /// Brass → archive: K of an installed key.
    Mi9,
    /// Manufacturing box → a box: the domain keys that box type needs.
    Delivery,
    /// Brass → Tin: one month's token keys.
    TinExport,
    /// Manufacturing box → the Domain Key Set: a domain's private keys in its bundle.
    Bundle,
    /// Manufacturing box → a new manufacturing box: the Domain Key Set and startup keys.
    Kit,
}

impl HpkeRecordType {
    /// The upper-case name used inside `info`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mi3 => "MI3",
            Self::Mi4 => "MI4",
            Self::Mi5 => "MI5",
            Self::Mi9 => "MI9",
            Self::Delivery => "DELIVERY",
            Self::TinExport => "TINEXPORT",
            Self::Bundle => "BUNDLE",
            Self::Kit => "KIT",
        }
    }
}

/// The HPKE `info` of protocol §4:
/// `postkey/hpke/v1 ‖ 0 ‖ record type ‖ 0 ‖ domain ‖ 0 ‖ key ID ‖ 0 ‖ recipient`.
///
/// Callers pass the domain and recipient as the strings the wire crate validated (domain IDs,
/// box IDs, meter IDs, `BRASS:<domain>`); this type only refuses bytes that would make the
/// encoding ambiguous (NUL, non-printable or non-ASCII).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpkeInfo {
    record: HpkeRecordType,
    domain: String,
    key_id: u64,
    recipient: String,
}

impl HpkeInfo {
    /// `key_id` is 0 where the sealed content concerns no key (deliveries, Tin exports).
    pub fn new(
        record: HpkeRecordType,
        domain: &str,
        key_id: u64,
        recipient: &str,
    ) -> Result<Self, CryptoError> {
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(domain) || !printable(recipient) {
            return Err(CryptoError::Malformed);
        }
        Ok(Self { record, domain: domain.to_owned(), key_id, recipient: recipient.to_owned() })
    }

    /// The exact bytes passed to HPKE as `info`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let key_id = self.key_id.to_string();
        let mut out = Vec::with_capacity(
            16 + 9 + self.domain.len() + key_id.len() + self.recipient.len() + 4,
        );
        out.extend_from_slice(b"postkey/hpke/v1");
        for part in [self.record.name(), &self.domain, &key_id, &self.recipient] {
            out.push(0);
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// An HPKE ciphertext: the encapsulated key and the AEAD output (ciphertext ‖ tag).
#[derive(Clone, PartialEq, Eq, Encode)]
#[cbor(map)]
pub struct HpkeCiphertext {
    #[cbor(n(0), with = "minicbor::bytes")]
    enc: [u8; HPKE_ENC_LEN],
    #[cbor(n(1), with = "minicbor::bytes")]
    ct: Vec<u8>,
}

/// Decoded through the same bounds as [`HpkeCiphertext::from_parts`]: a ciphertext too short to
/// hold a tag, or longer than any plaintext postkey seals, is refused at the decoder.
#[derive(Decode)]
#[cbor(map)]
struct RawCiphertext {
    #[cbor(n(0), with = "minicbor::bytes")]
    enc: [u8; HPKE_ENC_LEN],
    #[cbor(n(1), with = "minicbor::bytes")]
    ct: Vec<u8>,
}

impl<'b, C> Decode<'b, C> for HpkeCiphertext {
    fn decode(d: &mut minicbor::Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        let raw = RawCiphertext::decode(d, ctx)?;
        Self::from_parts(raw.enc, raw.ct)
            .map_err(|_| minicbor::decode::Error::message("HPKE ciphertext length out of range"))
    }
}

impl HpkeCiphertext {
    /// Rebuilds a ciphertext from its parts, refusing ones too short to hold a tag or longer than
    /// the largest plaintext postkey seals.
    pub fn from_parts(enc: [u8; HPKE_ENC_LEN], ct: Vec<u8>) -> Result<Self, CryptoError> {
        if ct.len() < TAG_LEN || ct.len() > MAX_HPKE_PLAINTEXT + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        Ok(Self { enc, ct })
    }

    /// The encapsulated key.
    pub fn enc(&self) -> &[u8; HPKE_ENC_LEN] {
        &self.enc
    }

    /// The AEAD output, tag included.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ct
    }
}

impl fmt::Debug for HpkeCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HpkeCiphertext({} bytes)", HPKE_ENC_LEN + self.ct.len())
    }
}

/// Seals `plaintext` to `recipient` in HPKE base mode with empty associated data. The ephemeral
/// key comes from `rng`, the box's or meter's generator, never from the library's own source.
pub fn seal(
    recipient: &HpkePublicKey,
    info: &HpkeInfo,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<HpkeCiphertext, CryptoError> {
    if plaintext.len() > MAX_HPKE_PLAINTEXT {
        return Err(CryptoError::SealFailed);
    }
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.0)
        .map_err(|_| CryptoError::SealFailed)?;
    let (enc, ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &pk,
        &info.to_bytes(),
        plaintext,
        b"",
        rng,
    )
    .map_err(|_| CryptoError::SealFailed)?;
    let enc: [u8; HPKE_ENC_LEN] =
        enc.to_bytes().as_slice().try_into().map_err(|_| CryptoError::SealFailed)?;
    Ok(HpkeCiphertext { enc, ct })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_matches_the_spec_example() {
        let info = HpkeInfo::new(HpkeRecordType::Mi3, "USPS", 7, "BRASS:USPS").unwrap();
        assert_eq!(info.to_bytes(), b"postkey/hpke/v1\0MI3\0USPS\x007\0BRASS:USPS".to_vec());
    }

    #[test]
    fn info_refuses_ambiguous_parts() {
        assert!(HpkeInfo::new(HpkeRecordType::Mi4, "US\0PS", 1, "S00000001").is_err());
        assert!(HpkeInfo::new(HpkeRecordType::Mi4, "USPS", 1, "").is_err());
        assert!(HpkeInfo::new(HpkeRecordType::Mi4, "USPS", 1, "S 1").is_err());
    }

    #[test]
    fn ciphertext_parts_are_bounded() {
        assert!(HpkeCiphertext::from_parts([0; 32], vec![0; 15]).is_err());
        assert!(HpkeCiphertext::from_parts([0; 32], vec![0; 16]).is_ok());
        assert!(HpkeCiphertext::from_parts([0; 32], vec![0; MAX_HPKE_PLAINTEXT + 17]).is_err());
    }
}
