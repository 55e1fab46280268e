//! Public metadata of shares (protocol §7.1): which set a share belongs to and what it protects. The
//! share envelope itself, which carries the secret share, is in the secrets crate.

use core::fmt;

use minicbor::{Decode, Encode};

use crate::WireError;

/// Names one splitting of one secret: all shares of a set were made together and only shares of
/// one set combine. Ceremony transcripts name shares by set ID and index, never by content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareSetId(pub [u8; 16]);

impl ShareSetId {
    /// Parses 32 hex digits.
    pub fn parse_hex(s: &str) -> Result<Self, WireError> {
        let bad =
            WireError::InvalidField { field: "share-set ID", reason: "must be 32 hex digits" };
        // `from_str_radix` alone would also take a sign: "+0" parses as 0.
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad);
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = s
                .get(2 * i..2 * i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| bad.clone())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for ShareSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShareSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareSetId({self})")
    }
}

postkey_crypto::cbor_byte_string!(ShareSetId, 16, "share-set ID", |v| v.0, |b| Ok(ShareSetId(b)));

/// What a share set protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum SharePurpose {
    /// A box's operation combination: the box works only while it is reconstructed.
    #[n(1)]
    OperationCombination,
    /// The Domain Key Set, under which every domain key bundle is sealed and signed.
    #[n(2)]
    DomainKeySet,
}

impl SharePurpose {
    /// The name used in files and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::OperationCombination => "operation-combination",
            Self::DomainKeySet => "domain-key-set",
        }
    }
}

impl fmt::Display for SharePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
