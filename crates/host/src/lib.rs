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
pub mod tin;
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
pub use verify::{
    DEFAULT_VERIFY_BATCH, FirstSeen, MAX_VERIFY_BATCH, RepairReport, Verifier, VerifyReport,
};

/// Reads a file the user named (a picture, an export), bounded, refusing anything but a
/// regular file. What cannot be read is the caller's to fix (2010), with the OS reason.
pub fn read_user_file(path: &std::path::Path, max: u64) -> Result<Vec<u8>, HostError> {
    postkey_durable::read_bounded(path, max).map_err(|e| {
        let why = match &e {
            postkey_durable::ReadError::Storage(f) => format!("{e}: {}", f.source),
            _ => e.to_string(),
        };
        Usage::InvalidArgument(why).into()
    })
}

/// A new file the user asked for (a picture of an indicium, a Tin export), checked before the
/// work whose result it holds, so that a path that cannot be written fails first. The bytes go
/// to a temporary file beside it, made durable, then linked to the path: the path is never
/// overwritten (linking refuses one that exists), and a stop before the end leaves it free for
/// a retry. Dropped unfinished (the work failed), the temporary file is removed.
#[derive(Debug)]
pub struct OutputFile {
    file: std::fs::File,
    temp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl OutputFile {
    /// Checks that `path` is free and its directory writable, by making the temporary file.
    pub fn create(path: &std::path::Path) -> Result<Self, HostError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let refuse = |e: std::io::Error| {
            let why = format!("cannot create {}: {e}", path.display());
            HostError::from(Usage::InvalidArgument(why))
        };
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(refuse(std::io::ErrorKind::AlreadyExists.into()));
        }
        let name =
            path.file_name().ok_or_else(|| refuse(std::io::ErrorKind::InvalidInput.into()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.{}.tmp", std::process::id(), clock::now().unix_micros()));
        let temp = path.with_file_name(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
            .map_err(|e| {
                let why =
                    format!("cannot create {} beside {}: {e}", temp.display(), path.display());
                HostError::from(Usage::InvalidArgument(why))
            })?;
        Ok(Self { file, temp, path: path.to_path_buf() })
    }

    /// Writes `bytes`, makes them durable and links them to the path (refused if it exists by
    /// now); on failure nothing is left at the path.
    pub fn finish(mut self, bytes: &[u8]) -> Result<(), HostError> {
        use std::io::Write as _;
        let storage =
            |what, e| HostError::Storage(postkey_durable::file_error(what, &self.path, e));
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| storage("writing", e))?;
        let exists = || {
            let why = format!("cannot create {}: it exists now", self.path.display());
            HostError::from(Usage::InvalidArgument(why))
        };
        match std::fs::hard_link(&self.temp, &self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported
                ) =>
            {
                return Err(storage("linking", e));
            }
            // A file system without links (FAT on removable media): the path made exclusively
            // and written in place; a failure removes it, a stop meanwhile leaves it short.
            Err(_) => {
                use std::os::unix::fs::OpenOptionsExt as _;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&self.path)
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            exists()
                        } else {
                            storage("creating", e)
                        }
                    })?;
                if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
                    let _ = std::fs::remove_file(&self.path);
                    return Err(storage("writing", e));
                }
            }
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| storage("syncing", e))?;
        }
        Ok(())
    }
}
pub use vectors::{test_vectors_json, vectors_file_is_current, write_vectors_file};

/// Runs the power-up known-answer test of every primitive, as a box does before it is enabled.
pub fn run_self_tests() -> Vec<KatResult> {
    postkey_secrets::selftest::run(&postkey_secrets::selftest::kats())
}
