//! What the auditor finds: each fault with its position and its kind (docs/audit.md).

use core::fmt;

/// Where a fault is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "at", rename_all = "kebab-case")]
pub enum Position {
    /// The archive as a whole: a value in it that does not decode.
    Archive,
    /// The installation record and its Domain Key Set certificate.
    Installation,
    /// A domain's bundle.
    Bundle {
        /// The domain.
        domain: String,
    },
    /// An event of a chain.
    Chain {
        /// The chain (a domain, or `ADMIN`).
        chain: String,
        /// The event's position, from 1.
        seq: u64,
    },
    /// A key's indexed fields.
    Key {
        /// Its domain.
        domain: String,
        /// Its ID.
        key_id: u64,
    },
    /// One of a key's stored records.
    Record {
        /// The key's domain.
        domain: String,
        /// The key's ID.
        key_id: u64,
        /// The record's position among the key's records, from 1.
        index: usize,
    },
    /// An entry of the error log.
    ErrorEntry {
        /// Its number.
        id: u64,
    },
    /// A signed checkpoint of a chain.
    Checkpoint {
        /// The chain.
        chain: String,
        /// Its number, from 1.
        number: u64,
    },
    /// A box's state, as the box attested it, in one of its domains (none for its version).
    Box {
        /// The box.
        box_id: String,
        /// The domain.
        domain: Option<String>,
    },
    /// A key ID in its domain's accounting.
    KeyId {
        /// The domain.
        domain: String,
        /// The ID.
        key_id: u64,
    },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Archive => f.write_str("the archive"),
            Self::Installation => f.write_str("the installation record"),
            Self::Bundle { domain } => write!(f, "the bundle of {domain}"),
            Self::Chain { chain, seq } => write!(f, "event #{seq} of the {chain} chain"),
            Self::Key { domain, key_id } => write!(f, "key {domain}/{key_id}"),
            Self::Record { domain, key_id, index } => {
                write!(f, "record {index} of key {domain}/{key_id}")
            }
            Self::ErrorEntry { id } => write!(f, "error-log entry {id}"),
            Self::Checkpoint { chain, number } => {
                write!(f, "checkpoint #{number} of the {chain} chain")
            }
            Self::Box { box_id, domain: Some(domain) } => {
                write!(f, "the state of box {box_id} in {domain}")
            }
            Self::Box { box_id, domain: None } => write!(f, "the state of box {box_id}"),
            Self::KeyId { domain, key_id } => write!(f, "key ID {domain}/{key_id}"),
        }
    }
}

/// What kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A value in the archive does not decode (an actor, an action, an ID, a time).
    Malformed,
    /// The archive's installation does not verify against the trust anchors.
    Installation,
    /// A signed record or bundle does not verify under the key that must have signed it.
    Signature,
    /// A chain's event does not hash or link as recorded, or the head does not match.
    ChainLink,
    /// A record's bytes do not match the digest recorded for them.
    Digest,
    /// A record no event names, or an event naming a record that is not there.
    Unreferenced,
    /// An indexed field of a key disagrees with its records or its events.
    Field,
    /// A key's status disagrees with its history, or its history breaks the status rules.
    Status,
    /// A key's times go backwards.
    Times,
    /// A key ID is given twice, lost, or past the domain's allocation.
    Accounting,
    /// A checkpoint does not verify, does not follow the one before, or the chain does not
    /// extend it.
    Checkpoint,
    /// A box has used a key ID past its domain's allocation, or its state is older than the
    /// archive recorded: the archive, or the box's state, was put back from an older copy.
    BoxState,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed",
            Self::Installation => "installation",
            Self::Signature => "signature",
            Self::ChainLink => "chain link",
            Self::Digest => "digest",
            Self::Unreferenced => "unreferenced",
            Self::Field => "field",
            Self::Status => "status",
            Self::Times => "times",
            Self::Accounting => "key-ID accounting",
            Self::Checkpoint => "checkpoint",
            Self::BoxState => "box state",
        })
    }
}

/// One fault: where, what kind, and what exactly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    /// Where.
    pub position: Position,
    /// What kind.
    pub kind: FaultKind,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} fault: {}", self.position, self.kind, self.detail)
    }
}
