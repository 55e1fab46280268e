//! The audit trail's signed checkpoints (protocol §6.6).
//!
//! ```text
//!  KMC ── CHECKPOINT {chain, count, head} ──► Brass (ADMIN process, audit key)
//!      ◄── Checkpoint {installation, chain, number, count, head, previous, brass}
//! ```
//!
//! A Brass box with the `ADMIN` process keeps, sealed in its state, the last checkpoint it signed
//! of each chain, and signs a new one only if it extends that one (as many events or more, the
//! same head at the same count); each names the digest of the one before, so the checkpoints of a
//! chain form a chain of their own that no one without the audit key can extend, cut or fork.

use minicbor::{Decode, Encode};

use crate::{Body, BoxId, DomainId, InstallationId, RecordType};

/// A chain head, as a checkpoint names it: the SHA-256 event hash of the chain's newest event
/// (all zero for an empty chain).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(transparent)]
pub struct ChainHash(#[cbor(n(0), with = "minicbor::bytes")] pub [u8; 32]);

impl core::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ChainHash(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

/// A signed checkpoint of one audit chain: it had `count` events, the newest hashing to `head`,
/// when the audit key signed it. Signed with the `ADMIN` audit key; the header names the Brass
/// box as sender and the time.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Checkpoint {
    /// The installation whose archive it is.
    #[n(0)]
    pub installation: InstallationId,
    /// The chain: a domain's, or `ADMIN`.
    #[n(1)]
    pub chain: DomainId,
    /// Its number among the chain's checkpoints, from 1.
    #[n(2)]
    pub number: u64,
    /// The chain's events.
    #[n(3)]
    pub count: u64,
    /// The hash of the newest of them.
    #[n(4)]
    pub head: ChainHash,
    /// SHA-256 of the previous checkpoint's signed bytes (all zero for the first).
    #[n(5)]
    pub previous: ChainHash,
    /// The Brass box that signed it.
    #[n(6)]
    pub brass: BoxId,
}

impl Body for Checkpoint {
    const RECORD_TYPE: RecordType = RecordType::CHECKPOINT;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}
