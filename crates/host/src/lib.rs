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

/// A new file the user asked for (a picture of an indicium), made before the work whose result
/// it holds, so that a path that cannot be written fails first: created exclusively (one that
/// exists is never overwritten), in a directory that exists (none is made).
/// Dropped unfinished (the work failed), it is removed: a retry is not refused for a file of
/// nothing.
#[derive(Debug)]
pub struct OutputFile {
    file: std::fs::File,
    path: std::path::PathBuf,
    done: bool,
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl OutputFile {
    /// Creates the file, empty.
    pub fn create(path: &std::path::Path) -> Result<Self, HostError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| {
                let why = format!("cannot create {}: {e}", path.display());
                HostError::from(Usage::InvalidArgument(why))
            })?;
        Ok(Self { file, path: path.to_path_buf(), done: false })
    }

    /// Writes `bytes` and makes them durable; on failure the file is removed.
    pub fn finish(mut self, bytes: &[u8]) -> Result<(), HostError> {
        use std::io::Write as _;
        let written = self.file.write_all(bytes).and_then(|()| self.file.sync_all());
        written.map_err(|e| {
            HostError::Storage(postkey_durable::file_error("writing", &self.path, e))
        })?;
        self.done = true;
        Ok(())
    }
}
pub use vectors::{test_vectors_json, vectors_file_is_current, write_vectors_file};

/// Runs the power-up known-answer test of every primitive, as a box does before it is enabled.
pub fn run_self_tests() -> Vec<KatResult> {
    postkey_secrets::selftest::run(&postkey_secrets::selftest::kats())
}
