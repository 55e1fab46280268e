//! The thin runtime around a sans-IO box: sealed state files written atomically and durably,
//! enabling from custodians' shares (power-up self-tests first), and process hardening.
//!
//! ```text
//!  share files ──check each (signature, owner)──► combine (≥ k, check value)
//!                                                     │ operation combination
//!  <dir>/<ID>.state ──SealedState──► SecureBox::unseal ▼ ──► enabled SecureBox
//!                                                     every change: seal ──► write_atomic
//! ```
//!
//! The box stays enabled for the lifetime of the value that holds it; dropping it locks the
//! box and zeroizes every key it held.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use postkey_crypto::VerifyingKey;
use postkey_secrets::OperationCombination;
use postkey_secrets::rng::EntropySource;
use postkey_secrets::shares::{self, ShareBody};
use postkey_wire::{BoxId, Certificate, ShareRef, StateVersion, Verified};

use crate::{BoxError, Seal, SealedState, SecureBox};

/// A file of a box's store could not be read or written (response code 3602): the host's fault,
/// never the box's.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct StorageError {
    /// What was being done.
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

fn storage(what: &'static str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError { what, path: path.to_path_buf(), source: e }
}

/// Why the runtime could not enable, read or persist a box: its store failed, or the box (its
/// self-tests, shares, sealed state or certificate) refused.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store's files failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The box refused: a self-test failed, a share or the sealed state does not check.
    #[error(transparent)]
    Refused(#[from] BoxError),
}

impl RuntimeError {
    /// The documented response code.
    pub fn response_code(&self) -> postkey_wire::ResponseCode {
        match self {
            Self::Storage(_) => postkey_wire::ResponseCode::STORAGE_FAILED,
            Self::Refused(e) => e.response_code(),
        }
    }
}

impl From<postkey_wire::WireError> for RuntimeError {
    fn from(e: postkey_wire::WireError) -> Self {
        Self::Refused(e.into())
    }
}

impl From<postkey_secrets::shares::ShareError> for RuntimeError {
    fn from(e: postkey_secrets::shares::ShareError) -> Self {
        Self::Refused(e.into())
    }
}

/// Writes `bytes` to `path` atomically and durably: a temporary file of its own in the same
/// directory, fsync, rename over the target, fsync of the directory. A crash leaves the old file
/// or the new one, never a mix; two writers never share a temporary file. `mode` is the new
/// file's Unix permission bits (the temporary file is 0600 until it is complete).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    let (dir, tmp, file) = write_temporary_for(path, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        storage("renaming", path, e)
    })?;
    drop(file);
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| storage("syncing", &dir, e))?;
    Ok(())
}

/// Writes `bytes` to `path` durably only if no file is there yet: a temporary file, fsync, a
/// hard link to the target (which fails if it exists), fsync of the directory. A new box's state
/// is written this way, so that no other box's state is ever overwritten under its ID.
pub fn create_durable(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    let (dir, tmp, file) = write_temporary_for(path, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path).map_err(|e| storage("creating", path, e));
    let _ = fs::remove_file(&tmp);
    drop(file);
    linked?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| storage("syncing", &dir, e))?;
    Ok(())
}

/// Makes `dir` and its parents, 0700 whatever the umask: the state of boxes is nobody else's.
fn make_dir(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| storage("creating", dir, e))
}

/// A complete, synced temporary file for `path`, in its directory, with permission bits `mode`.
fn write_temporary_for(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(PathBuf, PathBuf, File), StorageError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    make_dir(&dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (tmp, file) = write_temporary(&dir, &name, bytes, mode)?;
    if let Err(e) = file.sync_all() {
        let _ = fs::remove_file(&tmp);
        return Err(storage("syncing", &tmp, e));
    }
    Ok((dir, tmp, file))
}

/// Writes `bytes` to a new temporary file `<dir>/.<name>.<pid>.<n>.tmp` (created exclusively,
/// 0600 while written, then `mode`), not yet synced.
fn write_temporary(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(PathBuf, File), StorageError> {
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| storage("creating", &tmp, e))?;
    let written =
        file.write_all(bytes).and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(storage("writing", &tmp, e));
    }
    Ok((tmp, file))
}

/// Reads a regular file of at most `max` bytes. Anything else (a FIFO, a device, a directory, a
/// longer file) is refused before it is read, and opening never blocks.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let nonblocking = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)
        .map_err(|e| ReadError::Storage(storage("reading", path, e)))?;
    let meta = file.metadata().map_err(|e| ReadError::Storage(storage("reading", path, e)))?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), len: meta.len(), max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Read at most one byte past the limit: a file that grew meanwhile is refused too.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Storage(storage("reading", path, e)))?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), len: bytes.len() as u64, max });
    }
    Ok(bytes)
}

/// Why [`read_bounded`] read nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Not a regular file (a FIFO, a device, a directory).
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// Longer than its limit.
    #[error("{} has {len} bytes, more than the {max} allowed", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Writes several files of one directory atomically and durably with two flushes in all: every
/// temporary file is written, the file system is synced once (`syncfs`), every file is renamed
/// over its target, and the directory is synced. A crash leaves each file old or new, never a
/// mix. For many small files (a batch of simulated meters) this replaces two fsyncs per file.
pub fn write_atomic_many(
    dir: &Path,
    files: &[(String, &[u8])],
    mode: u32,
) -> Result<(), StorageError> {
    make_dir(dir)?;
    let mut renames = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        match write_temporary(dir, name, bytes, mode) {
            Ok((tmp, _)) => renames.push((tmp, dir.join(name))),
            Err(e) => {
                for (tmp, _) in &renames {
                    let _ = fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    let d = File::open(dir).map_err(|e| storage("opening", dir, e))?;
    // Every temporary file's data is on disk before any of them replaces its target.
    rustix::fs::syncfs(&d).map_err(|e| storage("syncing", dir, e.into()))?;
    for (tmp, path) in &renames {
        fs::rename(tmp, path).map_err(|e| storage("renaming", path, e))?;
    }
    d.sync_all().map_err(|e| storage("syncing", dir, e))?;
    Ok(())
}

/// Refuses core dumps of this process (protocol §7.2 item 8): not dumpable, core size 0. Call it
/// before any box is enabled.
pub fn harden_process() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })?;
    Ok(())
}

/// Where sealed box states live: `<dir>/<ID>.state`. A box's certificate and everything else
/// public about it is kept by the archive.
#[derive(Debug, Clone)]
pub struct BoxStore {
    dir: PathBuf,
}

impl BoxStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn state_path(&self, id: BoxId) -> PathBuf {
        self.dir.join(format!("{id}.state"))
    }

    /// Whether a box's state exists.
    pub fn exists(&self, id: BoxId) -> bool {
        self.state_path(id).exists()
    }

    /// Every box with a sealed state here, in ID order.
    pub fn list(&self) -> Result<Vec<BoxId>, StorageError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(storage("reading", &self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| storage("reading", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".state").and_then(|s| BoxId::parse(s).ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Seals `secure_box` and writes its state atomically and durably.
    pub fn persist<B: Seal + ?Sized>(
        &self,
        secure_box: &mut B,
    ) -> Result<StateVersion, RuntimeError> {
        let sealed = secure_box.seal()?;
        write_atomic(&self.state_path(sealed.box_id), &sealed.to_bytes(), 0o600)?;
        Ok(sealed.version)
    }

    /// Writes a new box's first sealed state, only if no state of that ID exists: a box made
    /// again under an ID already in use (a manufacturing box restored to an older state) never
    /// overwrites the box that holds it.
    pub fn create<B: Seal + ?Sized>(
        &self,
        secure_box: &mut B,
    ) -> Result<StateVersion, RuntimeError> {
        let sealed = secure_box.seal()?;
        create_durable(&self.state_path(sealed.box_id), &sealed.to_bytes(), 0o600)?;
        secure_box.take_dirty();
        Ok(sealed.version)
    }

    /// Persists `secure_box` if it changed since the last persist: call it after every command
    /// and before its answer leaves. Says whether it wrote; a box whose write failed stays marked
    /// changed.
    pub fn commit<B: Seal + ?Sized>(&self, secure_box: &mut B) -> Result<bool, RuntimeError> {
        if !secure_box.is_dirty() {
            return Ok(false);
        }
        self.persist(secure_box)?;
        secure_box.take_dirty();
        Ok(true)
    }

    /// A box's sealed state.
    pub fn read_state(&self, id: BoxId) -> Result<SealedState, RuntimeError> {
        let path = self.state_path(id);
        let bytes = read_bounded(&path, crate::MAX_SEALED_LEN as u64).map_err(|e| match e {
            ReadError::Storage(s) => RuntimeError::Storage(s),
            _ => BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid).into(),
        })?;
        let sealed = SealedState::from_bytes(&bytes)?;
        if sealed.box_id != id {
            return Err(BoxError::NotForThisBox { addressed: sealed.box_id, this: id }.into());
        }
        Ok(sealed)
    }

    /// Enables the box `cert` certifies (the caller checked the certificate against the trust
    /// anchors) from share files: power-up self-tests first, then each share checked alone
    /// against the box's certified identity key, then at least k distinct shares of one
    /// set recombined into the operation combination, which must open the sealed state.
    pub fn enable(
        &self,
        cert: &Verified<Certificate>,
        share_files: &[Vec<u8>],
        os: impl EntropySource + Send + 'static,
        enable_context: &[u8],
    ) -> Result<Enabled, RuntimeError> {
        postkey_secrets::selftest::power_up().map_err(BoxError::from)?;
        let id = cert.body().box_id;
        let (combination, presented) = recombine(id, &cert.body().identity, share_files)?;
        let sealed = self.read_state(id)?;
        let secure_box = SecureBox::unseal(&sealed, combination, os, enable_context)
            .map_err(RuntimeError::Refused)?;
        Ok(Enabled { secure_box, presented })
    }
}

/// Checks share files of box `id` against its identity key and recombines them.
fn recombine(
    id: BoxId,
    identity: &VerifyingKey,
    share_files: &[Vec<u8>],
) -> Result<(OperationCombination, Vec<ShareRef>), BoxError> {
    let checked: Vec<Verified<ShareBody>> = share_files
        .iter()
        .map(|f| shares::check_share(f, identity, id))
        .collect::<Result<_, _>>()?;
    let presented =
        checked.iter().map(|s| ShareRef { set: s.body().set, index: s.body().index }).collect();
    Ok((shares::combine(&checked)?, presented))
}

/// An enabled box and the shares that enabled it (by set and index, for the transcript).
#[derive(Debug)]
pub struct Enabled {
    /// The box.
    pub secure_box: SecureBox,
    /// The shares presented.
    pub presented: Vec<ShareRef>,
}
