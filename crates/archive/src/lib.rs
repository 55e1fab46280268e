//! The postkey domain archive: the [`Store`] trait and everything it keeps, with no SQL driver
//! and no secret type.
//!
//! Start from [`Store`]: domains and sub-domains, the box registry, domain key bundles, master
//! key records ([`KeyRecord`]) with their six times, the signed records that caused each change,
//! per-domain key ID allocation with burned IDs, the audit trail as hash chains
//! ([`ChainEvent`]), the error log and ceremony transcripts. Two backends implement it:
//! `postkey-archive-sqlite` (the embedded default) and `postkey-archive-postgres` (shared by
//! several KMS computers); both pass the one suite in the `conformance` module (cargo feature
//! `conformance`).
//!
//! Key design decision: the rules live in this crate as pure functions, and each backend applies
//! them inside one write transaction. A key change is checked by [`KeyRecord::apply_transition`]
//! against the record read with its domain's chain head locked, then written with a guarded
//! update (`UPDATE ... WHERE status = from`) in the same transaction that appends its
//! [`ChainEvent`], whose hash [`ChainHead::append`] computes. So SQLite and PostgreSQL enforce the
//! same six transitions, the same set-once fields and the same time order
//! ([`KeyTimes::check_order`], with [`CLOCK_SKEW_TOLERANCE_MICROS`] for the PSR's clock), and
//! hash the same chains ([`event_hash`]); only locking and SQL differ. Signed records stay opaque
//! bytes ([`SignedRecord`]), exactly as received, beside the fields the store indexes. Errors are
//! one [`StoreError`], grouped by fault, each with its documented response code.
//!
//! [`backend`] holds what both backends share to write and read columns; it is public for them,
//! not for the KMS computer.

#![forbid(unsafe_code)]

pub mod backend;
mod chain;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod key;
pub mod metrics;
mod model;
mod record;
mod status;
mod store;

pub use chain::{Action, ChainEvent, ChainHead, ChainVerifier, EventEntry, RecordRef, event_hash};
pub use error::{BackendError, StoreError, Subject};
pub use key::{
    CLOCK_SKEW_TOLERANCE_MICROS, Cause, KeyFields, KeyFilter, KeyRecord, KeyTimes, KeyUpdate,
    NewKey, Registration, Transition,
};
pub use model::{
    Applied, BoxRecord, BoxVersion, BurnKeyId, BurnedKeyId, CeremonyKind, Changes, Component,
    DomainBundle, DomainProcess, DomainRecord, ErrorLogEntry, ErrorLogQuery, InstallationRecord,
    KeyIdRange, LoggedError, NewBox, NewBundle, NewCheckpoint, NewDomain, NewDomainProcess,
    NewInstallation, NewSubdomain, NewTranscript, Rebaseline, Reservation, Sighting,
    StoredCheckpoint, SubdomainRecord, Transcript, TranscriptId,
};
pub use record::{Digest, NewRecord, SignedRecord, StoredRecord};
pub use status::KeyStatus;
pub use store::Store;
