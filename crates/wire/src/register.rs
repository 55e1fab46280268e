//! Registration and withdrawal records (protocol §6.2, §6.3).
//!
//! ```text
//!  meter ──MR1 (one per key)──► KMC ──MR2 = MR1 + the key's MI9──► Brass of the key's sub-domain
//!                                 ◄──────── MR3 (MAC'd, for the archive) + MR4 (signed) ─────┘
//!  KMC ──withdraw (the key's record)──► Brass ──WITHDRAW (signed)──► archive
//! ```
//!
//! Every record's header names the key's domain, the meter and the key ID.

use minicbor::{Decode, Encode};

use crate::{
    Body, BoxId, Country, Date, Isn, RecordType, RegistrationToken, SubdomainId, WireError,
};

/// The length of K wrapped with AES-256-KWP: 32 bytes and one 8-byte integrity block.
pub const WRAPPED_KEY_LEN: usize = 40;

/// K wrapped under a sub-domain's confidentiality key (AES-256-KWP, RFC 5649): opaque here.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WrappedKey(pub [u8; WRAPPED_KEY_LEN]);

impl core::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "WrappedKey({WRAPPED_KEY_LEN} bytes)")
    }
}

postkey_crypto::cbor_byte_string!(WrappedKey, WRAPPED_KEY_LEN, "wrapped key", |v| v.0, |b| Ok(
    WrappedKey(b)
));

/// SHA-256 of an MR3 record's bytes as the archive keeps them: how a `VERIFY` item names an MR3
/// the Brass box has checked before, instead of sending it again.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mr3Digest(pub [u8; 32]);

impl Mr3Digest {
    /// The digest of `mr3`.
    pub fn of(mr3: &crate::Maced<RegisteredKey>) -> Self {
        Self(postkey_crypto::sha256(mr3.as_bytes()))
    }
}

impl core::fmt::Debug for Mr3Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mr3Digest(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

postkey_crypto::cbor_byte_string!(Mr3Digest, 32, "MR3 digest", |v| v.0, |b| Ok(Mr3Digest(b)));

/// MR1: a meter asks to register one of its master keys, the one its header names (one MR1 per
/// key). Not signed: the token, which only a holder of K can make, is its proof.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct RegistrationRequest {
    /// Where the key registers: the target postal (or `EARTH`) sub-domain for the postal key,
    /// `<vendor>/<country>` for the vendor key.
    #[n(0)]
    pub subdomain: SubdomainId,
    /// The meter's ISN, from the post's licence.
    #[n(1)]
    pub isn: Isn,
    /// The country of the registration: the postal sub-domain's.
    #[n(2)]
    pub country: Country,
    /// The registration date, on the meter's calendar.
    #[n(3)]
    pub date: Date,
    /// The registration token of this key over product code, MSN, ISN, country and date.
    #[n(4)]
    pub token: RegistrationToken,
}

impl Body for RegistrationRequest {
    const RECORD_TYPE: RecordType = RecordType::MR1;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// MR3: the registered key for the archive, K wrapped under the sub-domain's confidentiality
/// key; the record is MAC'd with the sub-domain's authentication key ([`crate::Maced`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct RegisteredKey {
    /// The Brass box that registered it.
    #[n(0)]
    pub brass: BoxId,
    /// The sub-domain.
    #[n(1)]
    pub subdomain: SubdomainId,
    /// The ISN.
    #[n(2)]
    pub isn: Isn,
    /// The country.
    #[n(3)]
    pub country: Country,
    /// The Meter Registration Date.
    #[n(4)]
    pub date: Date,
    /// K, wrapped.
    #[n(5)]
    pub wrapped: WrappedKey,
}

impl Body for RegisteredKey {
    const RECORD_TYPE: RecordType = RecordType::MR3;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// MR4: the domain's Brass confirms the registration, signed with the domain Brass key: what
/// the KMC checks, and what an auditor, who cannot check MR3's MAC, checks the key against.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct RegistrationConfirmed {
    /// The Brass box that registered it.
    #[n(0)]
    pub brass: BoxId,
    /// The sub-domain.
    #[n(1)]
    pub subdomain: SubdomainId,
    /// The ISN.
    #[n(2)]
    pub isn: Isn,
    /// The country.
    #[n(3)]
    pub country: Country,
    /// The Meter Registration Date.
    #[n(4)]
    pub date: Date,
    /// The SHA-256 of the MR3 record's bytes it confirms.
    #[cbor(n(5), with = "minicbor::bytes")]
    pub mr3: [u8; 32],
}

impl Body for RegistrationConfirmed {
    const RECORD_TYPE: RecordType = RecordType::MR4;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// The longest withdrawal reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// A withdrawal reason goes into a signed record that auditors read: one line of printable
/// text, not empty, at most [`MAX_REASON_LEN`] bytes. Brass refuses any other (2003), and
/// callers check early with the same rule.
pub fn check_reason(reason: &str) -> Result<(), WireError> {
    let why = if reason.len() > MAX_REASON_LEN {
        "longer than 256 bytes"
    } else if reason.trim().is_empty() {
        "empty: say why the meter is taken out of service"
    } else if reason.chars().any(char::is_control) {
        "holds control characters: give one line of printable text"
    } else {
        return Ok(());
    };
    Err(WireError::InvalidField { field: "reason", reason: why })
}

/// WITHDRAW: the domain's Brass takes the key in the header out of service, signed with the
/// domain Brass key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Withdrawn {
    /// The Brass box that withdrew it.
    #[n(0)]
    pub brass: BoxId,
    /// Why, as the operator said it (at most [`MAX_REASON_LEN`] bytes).
    #[n(1)]
    pub reason: String,
}

impl Body for Withdrawn {
    const RECORD_TYPE: RecordType = RecordType::WITHDRAW;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}
