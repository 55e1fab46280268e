//! Signed records kept as opaque bytes, exactly as received, and the digests that pin them.

use core::fmt;

use postkey_wire::{Body, DomainId, KeyId, RecordType, Sender, Timestamp, Verified};

/// A SHA-256 digest: of a signed record's bytes, or of a chain event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The all-zero digest: the `prev_hash` of a chain's first event.
    pub const ZERO: Digest = Digest([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(postkey_crypto::sha256(bytes))
    }

    /// The digest from stored bytes, which must be 32 long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A box-signed record (MI3, MI7, MI9, MR3, BAD, ...) as received: the archive never decodes or
/// re-encodes it, so what it returns is exactly what was signed.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRecord {
    /// The record's type, indexed beside the bytes.
    pub record_type: RecordType,
    /// The encoded, signed bytes.
    pub bytes: Vec<u8>,
}

impl SignedRecord {
    /// The record whose signature the caller checked, with its bytes as received.
    pub fn from_verified<B: Body>(record: &Verified<B>) -> Self {
        Self { record_type: B::RECORD_TYPE, bytes: record.as_bytes().to_vec() }
    }

    /// A MAC'd record (MR3) as the box made it. Only a box holding the key can check its tag;
    /// the box's signed confirmation (MR4) names its digest.
    pub fn from_maced<B: Body>(record: &postkey_wire::Maced<B>) -> Self {
        Self { record_type: B::RECORD_TYPE, bytes: record.as_bytes().to_vec() }
    }

    /// SHA-256 of the bytes: what a chain event records of it.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.bytes)
    }
}

impl fmt::Debug for SignedRecord {
    // The bytes are public (signed, sealed content only) but long: a digest identifies them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRecord")
            .field("record_type", &self.record_type)
            .field("len", &self.bytes.len())
            .field("digest", &self.digest())
            .finish()
    }
}

/// A record to keep with a key, outside a status change (an MI7 before its MI9, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// The key's domain.
    pub domain: DomainId,
    /// The key it concerns.
    pub key_id: KeyId,
    /// The record.
    pub record: SignedRecord,
    /// When the KMC received it.
    pub time: Timestamp,
    /// Who signed or sent it.
    pub actor: Sender,
}

/// A record as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record.
    pub record: SignedRecord,
    /// Its digest, as the chain event that stored it recorded it.
    pub digest: Digest,
    /// When it was stored.
    pub stored: Timestamp,
}
