//! The host: wires the KMS computer to the secure boxes it hosts, for the embedded default (every
//! box inside the `postkey` process) and, later, the server.
//!
//! Start from [`Home`] (where a deployment keeps its files), [`Session`] (the boxes a command
//! has enabled from their shares) and the ceremonies ([`init`], then [`Ceremonies`]);
//! [`demo`] runs them all.
//!
//! Key design decision: this is the one crate besides the boxes and the meter that may depend on
//! the secrets crate, because hosting a box means constructing it. Everything it persists about a
//! box goes through the box's own sealing; every refusal of a box reaches the error log with its
//! response code before the caller sees it.

#![forbid(unsafe_code)]

mod archive;
#[cfg(feature = "bench")]
pub mod bench;
mod ceremony;
mod checkpoint;
mod clock;
pub mod demo;
mod error;
mod factory;
mod home;
mod inventory;
mod keys;
mod link;
mod lock;
mod meters;
mod rebaseline;
mod register;
mod ser;
mod session;
mod spool;
mod vectors;
mod verify;

pub use archive::{
    Expected, ExportReport, Trust, audit, audit_export, audit_with_boxes, error_log,
    export_archive, open_archive, open_archive_read_only,
};
pub use ceremony::{
    Ceremonies, DomainReport, InitReport, ManufactureOrder, ManufactureReport, ShareReport,
    check_share, init, init_home,
};
pub use clock::now;
pub use error::{HostError, Usage};
pub use factory::{
    DEFAULT_BATCH, DEFAULT_CHECKPOINT_EVERY, Factory, InstallReport, KeySummary, Line, line_for,
    new_meter,
};
pub use home::{ErrorEntry, Home, read_meter_list, read_share_file};
pub use inventory::{BoxReport, DomainSummary, ProcessSummary, box_report, boxes, domains};
pub use keys::{HistoryEntry, KeyDetail, KeyEntry, list_keys, show_key, show_meter_keys};
pub use link::{EmbeddedBoxes, MeterLinks, MeterStorage};
pub use lock::{Access, Busy, HomeLock, Wait};
pub use postkey_archive_postgres::PgConfig;
pub use postkey_archive_sqlite::SqliteStore;
pub use postkey_audit::{Fault, Report as AuditReport};
pub use postkey_box::SharePolicy;
pub use postkey_box::runtime::harden_process;
pub use postkey_crypto::Fingerprint;
pub use postkey_indicium::{Indicium, symbol};
pub use postkey_meter::{Mailing, PostalRegistration, Printed};
pub use postkey_secrets::selftest::KatResult;
pub use rebaseline::RebaselineReport;
pub use register::{
    DEFAULT_REGISTER_BATCH, Registrar, RegistrationOrder, RegistrationReport,
    read_registration_list, utc_date,
};
pub use session::Session;
pub use verify::{DEFAULT_VERIFY_BATCH, FirstSeen, RepairReport, Verifier, VerifyReport};

/// Reads a file the user named (a picture), bounded, refusing anything but a regular file.
pub fn read_user_file(path: &std::path::Path, max: u64) -> Result<Vec<u8>, HostError> {
    home::read(path, max)
}

/// Writes a new file the user asked for (a picture of an indicium), durably, refusing one that
/// exists: output never overwrites.
pub fn write_new_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), HostError> {
    Ok(postkey_durable::create_durable(path, bytes, 0o644)?)
}
pub use vectors::{test_vectors_json, vectors_file_is_current, write_vectors_file};

/// Runs the power-up known-answer test of every primitive, as a box does before it is enabled.
pub fn run_self_tests() -> Vec<KatResult> {
    postkey_secrets::selftest::run(&postkey_secrets::selftest::kats())
}
