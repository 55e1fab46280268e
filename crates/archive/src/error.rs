//! The one error type of the archive, grouped by who is at fault.

use core::fmt;

use postkey_wire::{BoxId, DomainId, Isn, KeyId, ResponseCode, StateVersion, SubdomainId};

use crate::{KeyStatus, TranscriptId};

/// The detail a backend keeps for the logs: a driver error, never shown to a client.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a [`StoreError::NotFound`] or [`StoreError::Duplicate`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A security domain.
    Domain(DomainId),
    /// A sub-domain.
    Subdomain(SubdomainId),
    /// A box in the registry.
    Box(BoxId),
    /// A domain process of a box.
    DomainProcess {
        /// The box.
        box_id: BoxId,
        /// The domain.
        domain: DomainId,
    },
    /// A master key record.
    Key {
        /// The key's domain.
        domain: DomainId,
        /// The key.
        key_id: KeyId,
    },
    /// A burned key ID.
    BurnedKeyId {
        /// The domain.
        domain: DomainId,
        /// The ID.
        key_id: KeyId,
    },
    /// An ISN within a sub-domain.
    Isn {
        /// The sub-domain.
        subdomain: SubdomainId,
        /// The ISN.
        isn: Isn,
    },
    /// A domain key bundle.
    Bundle {
        /// The domain.
        domain: DomainId,
        /// The bundle's version.
        version: u32,
    },
    /// A ceremony transcript.
    Transcript(TranscriptId),
    /// A hash chain.
    Chain(DomainId),
    /// The installation the archive belongs to.
    Installation,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => write!(f, "domain {d}"),
            Self::Subdomain(s) => write!(f, "sub-domain {s}"),
            Self::Box(b) => write!(f, "box {b}"),
            Self::DomainProcess { box_id, domain } => write!(f, "{domain} process in box {box_id}"),
            Self::Key { domain, key_id } => write!(f, "key {domain}/{key_id}"),
            Self::BurnedKeyId { domain, key_id } => write!(f, "burned key ID {domain}/{key_id}"),
            Self::Isn { subdomain, isn } => write!(f, "ISN {isn} in {subdomain}"),
            Self::Bundle { domain, version } => write!(f, "bundle {version} of domain {domain}"),
            Self::Transcript(id) => write!(f, "transcript {id}"),
            Self::Chain(c) => write!(f, "chain {c}"),
            Self::Installation => f.write_str("the installation"),
        }
    }
}

/// Why the archive refused or failed an operation.
///
/// Three groups, by fault: the caller's mistake (the operation breaks a rule of the archive; the
/// same call will fail again), the resource (the backend is unavailable or busy; the call may be
/// retried), and integrity (what is stored is not what was written: an operator must look).
/// Every variant maps to a documented [`ResponseCode`]. Backend detail (driver messages, SQL)
/// stays in [`std::error::Error::source`] for the logs and never appears in `Display`, which is
/// what a client may be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    // --- the caller's mistake ---
    /// The thing does not exist.
    #[error("{0} not found")]
    NotFound(Subject),
    /// The thing exists already; IDs are never reused.
    #[error("{0} already exists")]
    Duplicate(Subject),
    /// protocol §6.4 does not allow this status change.
    #[error("key status transition {from} -> {to} is not allowed")]
    TransitionNotAllowed {
        /// The status the caller expected the key in.
        from: KeyStatus,
        /// The status asked for.
        to: KeyStatus,
    },
    /// The key is not in the status the caller expected: another writer changed it first.
    #[error("key {domain}/{key_id} is {actual}, not {expected}")]
    StatusConflict {
        /// The key's domain.
        domain: DomainId,
        /// The key.
        key_id: KeyId,
        /// The status the transition starts from.
        expected: KeyStatus,
        /// The status found.
        actual: KeyStatus,
    },
    /// A time earlier than one already recorded for the key (protocol §6.6).
    #[error(
        "time went backwards for key {domain}/{key_id}: {field} is earlier than a time already recorded"
    )]
    TimeWentBackwards {
        /// The key's domain.
        domain: DomainId,
        /// The key.
        key_id: KeyId,
        /// The time that is earlier than one recorded before it.
        field: &'static str,
    },
    /// A key record for an ID the domain never allocated.
    #[error("key ID {domain}/{key_id} was never allocated")]
    KeyIdNotAllocated {
        /// The domain.
        domain: DomainId,
        /// The ID.
        key_id: KeyId,
    },
    /// A key record for a burned ID, or a burn of an ID that is a key.
    #[error("key ID {domain}/{key_id} is burned: it never becomes a key")]
    KeyIdBurned {
        /// The domain.
        domain: DomainId,
        /// The ID.
        key_id: KeyId,
    },
    /// A box offered a state version below the highest the archive recorded (protocol §7.2 item 7).
    #[error("state version of box {box_id} went backwards: {offered} < {recorded}")]
    StateVersionWentBackwards {
        /// The box.
        box_id: BoxId,
        /// The highest recorded.
        recorded: StateVersion,
        /// The one offered.
        offered: StateVersion,
    },
    /// A field that is set once was already set to another value: history is never rewritten.
    #[error("{field} is already set to another value")]
    FieldAlreadySet {
        /// The field.
        field: &'static str,
    },
    /// The change needs a field that is neither given nor recorded.
    #[error("{field} is required for this change")]
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// A value of another security domain (protocol §1 item 4), or of the wrong box type.
    #[error("{0}")]
    Mismatch(&'static str),
    /// The meter is already bound to another key or ISN, or the value breaks another rule.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// One change of a batch failed; the whole batch was rolled back.
    #[error("change {index} of the batch: {error}")]
    Batch {
        /// Its position in the batch, from 0.
        index: usize,
        /// Why it failed.
        error: Box<StoreError>,
    },

    // --- the resource ---
    /// The backend cannot be reached or failed to do its work.
    #[error("archive unavailable")]
    Unavailable(#[source] BackendError),
    /// The backend is busy (lock timeout, serialization failure): retry later.
    #[error("archive busy")]
    Busy(#[source] BackendError),

    // --- integrity ---
    /// A hash chain does not verify: an event was altered, removed or reordered.
    #[error("chain {chain} broken at event {seq}: {reason}")]
    ChainBroken {
        /// The chain.
        chain: DomainId,
        /// The first event that does not verify.
        seq: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The database's schema is of another version than this build knows.
    #[error("archive schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// The database's version.
        found: u32,
        /// The newest this build knows.
        supported: u32,
    },
    /// A stored value does not parse as its type.
    #[error("archive holds a malformed {0}")]
    Corrupt(&'static str),
    /// A change asked of an archive opened read-only.
    #[error("the archive is open read-only")]
    ReadOnly,
    /// A read-only open of an archive whose schema this build would migrate first.
    #[error(
        "archive schema version {found} is older than this build's {supported}: \
         a command that writes (any ceremony, the factory) upgrades it"
    )]
    SchemaTooOld {
        /// The database's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
}

impl StoreError {
    /// The documented response code (`docs/response-codes.md`).
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::NotFound(_) => ResponseCode::ARCHIVE_NOT_FOUND,
            Self::Duplicate(_) => ResponseCode::ARCHIVE_DUPLICATE,
            Self::TransitionNotAllowed { .. } => ResponseCode::TRANSITION_NOT_ALLOWED,
            Self::StatusConflict { .. } => ResponseCode::STATUS_CONFLICT,
            Self::TimeWentBackwards { .. } => ResponseCode::TIME_WENT_BACKWARDS,
            Self::KeyIdNotAllocated { .. } => ResponseCode::KEY_ID_NOT_ALLOCATED,
            Self::KeyIdBurned { .. } => ResponseCode::KEY_ID_BURNED,
            Self::StateVersionWentBackwards { .. } => ResponseCode::STATE_ROLLBACK,
            Self::FieldAlreadySet { .. } => ResponseCode::ARCHIVE_FIELD_ALREADY_SET,
            Self::MissingField { .. } => ResponseCode::ARCHIVE_MISSING_FIELD,
            Self::Mismatch(_) => ResponseCode::ARCHIVE_MISMATCH,
            Self::Invalid(_) => ResponseCode::ARCHIVE_INVALID,
            Self::Batch { error, .. } => error.response_code(),
            Self::Unavailable(_) => ResponseCode::ARCHIVE_UNAVAILABLE,
            Self::Busy(_) => ResponseCode::ARCHIVE_BUSY,
            Self::ChainBroken { .. } => ResponseCode::ARCHIVE_CHAIN_BROKEN,
            Self::SchemaTooNew { .. } => ResponseCode::ARCHIVE_SCHEMA_TOO_NEW,
            Self::Corrupt(_) => ResponseCode::ARCHIVE_CORRUPT,
            Self::ReadOnly => ResponseCode::ARCHIVE_READ_ONLY,
            Self::SchemaTooOld { .. } => ResponseCode::ARCHIVE_SCHEMA_TOO_OLD,
        }
    }

    /// Whether the same call may succeed later (the backend was busy or unreachable).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Busy(_) => true,
            Self::Batch { error, .. } => error.is_retryable(),
            _ => false,
        }
    }

    /// The error without a batch wrapper: what went wrong, wherever it happened.
    pub fn root(&self) -> &StoreError {
        match self {
            Self::Batch { error, .. } => error.root(),
            other => other,
        }
    }
}
