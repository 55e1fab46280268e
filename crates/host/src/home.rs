//! The postkey home: the files the box host keeps beside the archive. The archive (SQLite in the
//! home by default, or PostgreSQL) holds everything public about boxes, domains, keys, ceremonies
//! and the audit trail; the home holds what must stay with the boxes' host: their sealed states,
//! the trust anchors, the meters of the simulation, the error-log spool and the locks.
//!
//! ```text
//!  <home>/.lock                  the home lock (one ceremony at a time; see `lock.rs`)
//!  <home>/locks/<ID>.lock        box locks (one command per box)
//!  <home>/locks/errors*.lock     the error-log spool's locks (appending, moving)
//!  <home>/trust-anchors.cbor     the five startup public keys (also on the media)
//!  <home>/archive.db             the SQLite archive (embedded default)
//!  <home>/boxes/<ID>.state       sealed box states
//!  <home>/meters/<ID>.meter      simulated meters (simulation only: SECURITY.md; `meters.rs`)
//!  <home>/meters/run-*.journal   keys meters received in a factory run not yet in their files
//!  <home>/media/                 share files (simulation only: SECURITY.md)
//!  <home>/errors.log             the error-log spool, one JSON object per line, moved into the
//!                                archive at the end of each command
//!  <home>/init.journal           the files an unfinished first ceremony wrote, removed by the
//!                                next attempt
//! ```
//!
//! Directories are made 0700 and files with secrets 0600, whatever the umask; every file is read
//! bounded and only if it is a regular file.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use postkey_box::runtime::BoxStore;
use postkey_durable::{FileError, ReadError, read_bounded, write_atomic};
use postkey_secrets::shares::ShareBody;
use postkey_wire::{
    BoxId, DomainId, MeterId, ResponseCode, SharePurpose, Timestamp, TrustAnchors, Verified, codec,
};

use crate::{HostError, Usage};

/// One line of the error log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorEntry {
    /// When, RFC 3339 UTC.
    pub time: String,
    /// When, microseconds since the Unix epoch (what the archive keeps).
    #[serde(default)]
    pub unix_micros: u64,
    /// The component that refused: a box ID or `host`.
    pub component: String,
    /// The four-digit response code.
    pub code: u16,
    /// What happened.
    pub message: String,
    /// The spooled line's unique ID (the time, the process and a counter), by which the archive
    /// logs it once however often a stopped move is done again; not shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The largest share file read (a share envelope is a few hundred bytes).
const MAX_SHARE_FILE: u64 = 16 * 1024;
/// The largest trust-anchors file read.
const MAX_ANCHORS_FILE: u64 = 4096;
/// The largest first-ceremony journal read.
const MAX_JOURNAL: u64 = 64 * 1024;

pub(crate) fn storage(what: &'static str, path: &Path, source: std::io::Error) -> HostError {
    HostError::Storage(FileError { what, path: path.to_path_buf(), source })
}

/// A bounded read of a file of the home that must exist.
pub(crate) fn read(path: &Path, max: u64) -> Result<Vec<u8>, HostError> {
    read_bounded(path, max).map_err(|e| match e {
        ReadError::Storage(s) => HostError::Storage(s),
        // The corrupt-file error names the path; the reason does not name it again.
        ReadError::NotAFile(_) => HostError::corrupt(path, "not a regular file"),
        ReadError::TooLarge { len, max, .. } => {
            HostError::corrupt(path, format!("{len} bytes, more than the {max} allowed"))
        }
    })
}

/// Makes `dir` and its parents, 0700.
pub(crate) fn make_dir(dir: &Path) -> Result<(), HostError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| storage("creating", dir, e))
}

/// Makes a directory the caller named (the home, removable media): one that is a file, or lies
/// under a file, is the caller's mistake, named once with what to pass instead.
pub(crate) fn make_named_dir(dir: &Path, option: &str) -> Result<(), HostError> {
    use std::io::ErrorKind;
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists | ErrorKind::NotADirectory => Usage::InvalidArgument(format!(
            "{} is not a directory: pass a directory with {option}",
            dir.display()
        ))
        .into(),
        _ => storage("creating", dir, e),
    })
}

/// A postkey home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    /// The default removable-media directory of the simulation.
    pub fn media_dir(&self) -> PathBuf {
        self.root.join("media")
    }

    /// The sealed box states.
    pub fn store(&self) -> BoxStore {
        BoxStore::new(self.root.join("boxes"))
    }

    /// The SQLite archive of the embedded default.
    pub fn archive_path(&self) -> PathBuf {
        self.root.join("archive.db")
    }

    fn anchors_path(&self) -> PathBuf {
        self.root.join("trust-anchors.cbor")
    }

    /// Whether the first ceremony made this home and ended (its trust anchors are there, and
    /// no journal of a stopped first ceremony).
    pub fn is_initialized(&self) -> bool {
        self.anchors_path().exists() && !self.journal_path().exists()
    }

    /// The trust anchors.
    pub fn anchors(&self) -> Result<TrustAnchors, HostError> {
        // The home the caller named must be a directory (or not exist yet): anything else is
        // the caller's mistake, named once.
        match fs::symlink_metadata(&self.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Usage::NotInitialized(self.root.clone()).into());
            }
            Err(e) if names_a_wrong_path(&e) => {
                return Err(Usage::InvalidArgument(format!(
                    "{}: {}: pass a directory with --home",
                    self.root.display(),
                    plain_io(&e)
                ))
                .into());
            }
            Err(e) => return Err(storage("reading", &self.root, e)),
            Ok(m) if !self.root.is_dir() => {
                let what =
                    if m.is_symlink() { "a link to no directory" } else { "not a directory" };
                return Err(Usage::InvalidArgument(format!(
                    "{} is {what}: pass a directory with --home",
                    self.root.display()
                ))
                .into());
            }
            Ok(_) => {}
        }
        let path = self.anchors_path();
        // A first ceremony's journal outlives it only if it stopped (its files may be in part).
        if self.journal_path().exists() {
            return Err(Usage::InitUnfinished(self.root.clone()).into());
        }
        if !path.exists() {
            if !self.store().list()?.is_empty() {
                // Boxes were made here: the anchors were removed, not never written.
                return Err(HostError::Missing {
                    path,
                    reason: "the home holds sealed box states: copy the trust anchors back from \
                             the media (trust-anchors.cbor beside the first shares)"
                        .into(),
                });
            }
            return Err(Usage::NotInitialized(self.root.clone()).into());
        }
        codec::from_bytes(&read(&path, MAX_ANCHORS_FILE)?, MAX_ANCHORS_FILE as usize)
            .map_err(|e| HostError::corrupt(&path, e))
    }

    /// Writes the trust anchors to the home and beside the shares on the media. Returns the
    /// paths written.
    pub(crate) fn write_anchors(
        &self,
        anchors: &TrustAnchors,
        media: &Path,
    ) -> Result<Vec<PathBuf>, HostError> {
        let bytes = codec::to_bytes(anchors);
        let paths = vec![self.anchors_path(), media.join("trust-anchors.cbor")];
        for p in &paths {
            write_atomic(p, &bytes, 0o644)?;
        }
        Ok(paths)
    }

    /// Whether the home holds trust anchors or sealed box states.
    pub(crate) fn has_installation_files(&self) -> Result<bool, HostError> {
        Ok(self.anchors_path().exists() || !self.store().list()?.is_empty())
    }

    /// Appends a line to the error log, durably.
    pub fn log_error(
        &self,
        component: &str,
        code: ResponseCode,
        message: &str,
        now: Timestamp,
    ) -> Result<(), HostError> {
        self.log_errors(component, &[(code, message)], now)
    }

    /// Writes `e`, found by `component`, to the error log and returns it: a refusal is logged
    /// where it is found, and a failure to log must not hide the refusal itself.
    pub fn logged(&self, component: &str, e: HostError) -> HostError {
        let _ = self.log_error(component, e.response_code(), &e.to_string(), crate::clock::now());
        e
    }

    /// Appends lines to the error log, durably, with one flush for all of them.
    pub fn log_errors(
        &self,
        component: &str,
        entries: &[(ResponseCode, &str)],
        now: Timestamp,
    ) -> Result<(), HostError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut text = String::new();
        for (code, message) in entries {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let entry = ErrorEntry {
                time: now.to_rfc3339(),
                unix_micros: now.unix_micros(),
                component: component.to_owned(),
                code: code.0,
                message: (*message).to_owned(),
                id: Some(format!("{}-{}-{n}", now.unix_micros(), std::process::id())),
            };
            // Serializing a struct of strings and numbers cannot fail.
            text.push_str(&serde_json::to_string(&entry).unwrap_or_default());
            text.push('\n');
        }
        let path = self.root.join(crate::spool::CURRENT);
        make_dir(&self.root)?;
        let _spool = self.lock_spool(false)?;
        // Never a FIFO to block on, a link to follow, or anything but a regular file to write.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(flags.bits() as i32)
            .open(&path)
            .map_err(|e| storage("opening", &path, e))?;
        let regular =
            f.metadata().map(|m| m.is_file()).map_err(|e| storage("reading", &path, e))?;
        if !regular {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(storage("writing", &path, e));
        }
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| storage("writing", &path, e))
    }

    /// Writes a share file to `media` (mode 0600) and returns its path.
    pub(crate) fn write_share(
        &self,
        media: &Path,
        share: &Verified<ShareBody>,
    ) -> Result<PathBuf, HostError> {
        let path = media.join(share_file_name(share));
        write_atomic(&path, share.as_bytes(), 0o600)?;
        Ok(path)
    }

    /// The operation-combination share files of `id` found in `dir`, by name: regular files only,
    /// each read bounded (a FIFO or a huge file named like a share is refused, never waited on).
    pub fn share_files(&self, dir: &Path, id: BoxId) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        let prefix = format!("{id}-{}-", SharePurpose::OperationCombination.name());
        let mut files = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Usage::NoShares { box_id: id, dir: dir.to_path_buf() }.into());
            }
            Err(e) if names_a_wrong_path(&e) => {
                return Err(Usage::InvalidArgument(format!(
                    "{}: {}: pass the directory of the share files with --shares-dir",
                    dir.display(),
                    plain_io(&e)
                ))
                .into());
            }
            Err(e) => return Err(storage("reading", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| storage("reading", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".share") {
                files.push((name, read_share_file(&entry.path())?));
            }
        }
        files.sort();
        Ok(files)
    }

    fn journal_path(&self) -> PathBuf {
        self.root.join("init.journal")
    }

    /// Records the files a first ceremony is about to write, durably, before it writes them:
    /// each as an absolute path, so that the undo removes the same files from whatever
    /// directory it is run.
    pub(crate) fn write_journal(&self, paths: &[PathBuf]) -> Result<(), HostError> {
        let mut text = String::new();
        for p in paths {
            let absolute = std::path::absolute(p).map_err(|e| storage("resolving", p, e))?;
            text.push_str(&format!("{}\n", absolute.display()));
        }
        Ok(write_atomic(&self.journal_path(), text.as_bytes(), 0o600)?)
    }

    /// Removes what an unfinished first ceremony wrote (the files its journal lists), then the
    /// journal. Nothing is removed without a journal.
    pub(crate) fn undo_unfinished_init(&self) -> Result<(), HostError> {
        let path = self.journal_path();
        if !path.exists() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&read(&path, MAX_JOURNAL)?).into_owned();
        // A relative path would name another file from another directory: never removed.
        for line in text.lines().map(Path::new).filter(|l| l.is_absolute()) {
            remove_if_there(line)?;
        }
        remove_if_there(&path)
    }

    /// The first ceremony is complete: its journal goes.
    pub(crate) fn journal_done(&self) -> Result<(), HostError> {
        remove_if_there(&self.journal_path())
    }
}

/// The name of a trust-anchors or share file in `dir`, if it holds one.
pub(crate) fn installation_file_in(dir: &Path) -> Result<Option<String>, HostError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(storage("reading", dir, e)),
    };
    for entry in entries {
        let name = entry.map_err(|e| storage("reading", dir, e))?.file_name();
        let name = name.to_string_lossy();
        if name == "trust-anchors.cbor" || name.ends_with(".share") {
            return Ok(Some(name.into_owned()));
        }
    }
    Ok(None)
}

/// A share file's name: its box, purpose, set and index, so custodians can tell them apart.
pub(crate) fn share_file_name(share: &Verified<ShareBody>) -> String {
    let b = share.body();
    let set = b.set.to_string();
    format!("{}-{}-{}-{}of{}.share", b.owner, b.purpose.name(), &set[..8], b.index, b.count)
}

/// Reads a file the caller named on the command line: bounded, a regular file. A file that is
/// not there, not a regular file, too long or not readable by the caller is the caller's mistake
/// (a usage error naming the file once); any other failure is the machine's.
pub(crate) fn read_argument_file(path: &Path, max: u64) -> Result<Vec<u8>, HostError> {
    read_bounded(path, max).map_err(|e| argument_error(path, e))
}

/// Checks that the caller named an existing regular file (never opening anything that could
/// block), with the errors of [`read_argument_file`].
pub(crate) fn existing_argument_file(path: &Path) -> Result<(), HostError> {
    postkey_durable::open_regular(path).map(drop).map_err(|e| argument_error(path, e))
}

/// A file the caller named that could not be read: the caller's mistake when it is the path's
/// (usage, naming the file once), else the machine's.
fn argument_error(path: &Path, e: ReadError) -> HostError {
    match e {
        ReadError::Storage(s) if names_a_wrong_path(&s.source) => {
            Usage::InvalidArgument(format!("{}: {}", path.display(), plain_io(&s.source))).into()
        }
        ReadError::Storage(s) => HostError::Storage(s),
        other => Usage::InvalidArgument(other.to_string()).into(),
    }
}

/// Checks that `path`, a file the caller wants written, can be made new: nothing there yet (a
/// file, a FIFO, a link) and its directory exists.
pub(crate) fn new_argument_file(path: &Path) -> Result<(), HostError> {
    check_output(path, false, "name a new file")
}

/// Writes a file the caller named on the command line, atomically, readable by all (0644). Its
/// directory must exist; what is at `path` now must be a regular file or nothing: a FIFO, a
/// device, a directory or a symbolic link is the caller's mistake, refused before anything is
/// opened (a FIFO would block the command, a link would write where the caller did not name).
pub(crate) fn write_argument_file(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    check_output(path, true, "name a new or regular file")?;
    Ok(write_atomic(path, bytes, 0o644)?)
}

/// Checks a path the caller named for writing: nothing there, or (if `replace`) a regular file;
/// and its directory exists. Never follows a link or opens what is there.
fn check_output(path: &Path, replace: bool, advice: &str) -> Result<(), HostError> {
    let wrong = |why: String| -> HostError {
        Usage::InvalidArgument(format!("{}: {why}: {advice}", path.display())).into()
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if replace && meta.is_file() => {}
        Ok(meta) if meta.is_file() => return Err(wrong("exists already".into())),
        Ok(_) => return Err(wrong("not a regular file".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if names_a_wrong_path(&e) => return Err(wrong(plain_io(&e))),
        Err(e) => return Err(storage("reading", path, e)),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(wrong(format!("{} is not a directory", dir.display())));
    }
    Ok(())
}

/// Whether opening a path the caller named failed because of the path itself (not there, not
/// allowed, a directory where a file belongs or the reverse, a name too long): the caller's
/// mistake, not the machine's.
fn names_a_wrong_path(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::IsADirectory
            | ErrorKind::NotADirectory
            | ErrorKind::InvalidFilename
    ) || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// An I/O error's words without the "(os error N)" suffix.
fn plain_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Reads a share file the caller named: bounded, a regular file.
pub fn read_share_file(path: &Path) -> Result<Vec<u8>, HostError> {
    read_argument_file(path, MAX_SHARE_FILE)
}

/// The largest list of meters `factory install --file` reads (about a million lines).
const MAX_METER_LIST: u64 = 32 * 1024 * 1024;

/// Reads a list of meters to key, one per line: `METER POSTAL` (blank lines and lines that
/// start with `#` are skipped). Bounded, a regular file; a line that does not parse is a usage
/// error naming it.
pub fn read_meter_list(path: &Path) -> Result<Vec<(MeterId, DomainId)>, HostError> {
    read_meter_lines(path, MAX_METER_LIST, "METER POSTAL", |fields| {
        let [meter, postal] = fields else { return Err(None) };
        let meter = MeterId::parse(meter).map_err(|e| Some(e.to_string()))?;
        let postal = DomainId::parse(postal).map_err(|e| Some(e.to_string()))?;
        Ok((meter.clone(), (meter, postal)))
    })
}

/// Reads a file of one meter a line (blank lines and lines that start with `#` skipped), each
/// line's whitespace-separated fields parsed by `parse` into its meter and entry (`Err(None)`:
/// not the `form` expected). Bounded, a regular file; each meter once; a line that does not
/// parse is a usage error naming it.
pub(crate) fn read_meter_lines<T>(
    path: &Path,
    max: u64,
    form: &str,
    mut parse: impl FnMut(&[&str]) -> Result<(MeterId, T), Option<String>>,
) -> Result<Vec<T>, HostError> {
    let bytes = read_argument_file(path, max)?;
    let bad = |n: usize, why: String| -> HostError {
        Usage::InvalidArgument(format!("{} line {n}: {why}", path.display())).into()
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(1, format!("not UTF-8 ({e})")))?;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (n, line) in (1..).zip(text.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (meter, entry) = parse(&fields)
            .map_err(|why| bad(n, why.unwrap_or_else(|| format!("expected `{form}`"))))?;
        if let Some(first) = seen.insert(meter.clone(), n) {
            return Err(bad(n, format!("meter {meter} is listed on line {first} already")));
        }
        out.push(entry);
    }
    if out.is_empty() {
        return Err(Usage::InvalidArgument(format!("{}: no meters", path.display())).into());
    }
    Ok(out)
}

pub(crate) fn remove_if_there(path: &Path) -> Result<(), HostError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(storage("removing", path, e)),
    }
}
