//! Durable files, as every postkey component that keeps state on disk writes and reads them:
//! whole-file writes that are atomic and synced before they return (a crash leaves the old file
//! or the new one, never a mix), new files that never replace an existing one, directories only
//! their owner may enter, and reads bounded before they start that refuse anything but a regular
//! file (a FIFO or a device never blocks a command).
//!
//! Shared by the boxes' runtime (sealed states) and the host (its home's files), so that each
//! names its own failures and neither borrows the other's.

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// A file could not be read or written: what was being done, to which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct FileError {
    /// What was being done.
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// A [`FileError`] of `what` on `path`.
pub fn file_error(what: &'static str, path: &Path, e: std::io::Error) -> FileError {
    FileError { what, path: path.to_path_buf(), source: e }
}

/// Writes `bytes` to `path` atomically and durably: a temporary file of its own in the same
/// directory, fsync, rename over the target, fsync of the directory. A crash leaves the old file
/// or the new one, never a mix; two writers never share a temporary file. `mode` is the new
/// file's Unix permission bits (the temporary file is 0600 until it is complete).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let (dir, tmp, file) = write_temporary_for(path, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        file_error("renaming", path, e)
    })?;
    drop(file);
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| file_error("syncing", &dir, e))?;
    Ok(())
}

/// Writes `bytes` to `path` durably only if no file is there yet: a temporary file, fsync, a
/// hard link to the target (which fails if it exists), fsync of the directory. A new box's state
/// is written this way, so that no other box's state is ever overwritten under its ID.
pub fn create_durable(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let (dir, tmp, file) = write_temporary_for(path, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path).map_err(|e| file_error("creating", path, e));
    let _ = fs::remove_file(&tmp);
    drop(file);
    linked?;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| file_error("syncing", &dir, e))?;
    Ok(())
}

/// Makes `dir` and its parents, 0700 whatever the umask: the state of boxes is nobody else's.
pub fn make_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_error("creating", dir, e))
}

/// A complete, synced temporary file for `path`, in its directory, with permission bits `mode`.
fn write_temporary_for(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(PathBuf, PathBuf, File), FileError> {
    // A bare name (`out.json`) lies in the current directory, whose parent is "".
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    make_dir(&dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (tmp, file) = write_temporary(&dir, &name, bytes, mode)?;
    if let Err(e) = file.sync_all() {
        let _ = fs::remove_file(&tmp);
        return Err(file_error("syncing", &tmp, e));
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
) -> Result<(PathBuf, File), FileError> {
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
        .map_err(|e| file_error("creating", &tmp, e))?;
    let written =
        file.write_all(bytes).and_then(|()| file.set_permissions(fs::Permissions::from_mode(mode)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(file_error("writing", &tmp, e));
    }
    Ok((tmp, file))
}

/// Reads a regular file of at most `max` bytes. Anything else (a FIFO, a device, a directory, a
/// longer file) is refused before it is read, and opening never blocks.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    let (file, meta) = open_regular(path)?;
    if meta.len() > max {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), len: meta.len(), max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Read at most one byte past the limit: a file that grew meanwhile is refused too.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Storage(file_error("reading", path, e)))?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), len: bytes.len() as u64, max });
    }
    Ok(bytes)
}

/// Opens a regular file for reading, without blocking: anything else (a FIFO, a device, a
/// directory) is refused before a byte is read. The file and what it is.
pub fn open_regular(path: &Path) -> Result<(File, fs::Metadata), ReadError> {
    open_with(path, rustix::fs::OFlags::NONBLOCK)
}

/// As [`open_regular`], and a symbolic link is refused too ([`ReadError::NotAFile`]), never
/// followed: for a file of the home that only postkey itself writes.
pub fn open_regular_not_linked(path: &Path) -> Result<(File, fs::Metadata), ReadError> {
    open_with(path, rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW)
}

fn open_with(path: &Path, flags: rustix::fs::OFlags) -> Result<(File, fs::Metadata), ReadError> {
    let file = match OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(ReadError::NotAFile(path.to_path_buf()));
        }
        Err(e) => return Err(ReadError::Storage(file_error("reading", path, e))),
    };
    let meta = file.metadata().map_err(|e| ReadError::Storage(file_error("reading", path, e)))?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(path.to_path_buf()));
    }
    Ok((file, meta))
}

/// Why [`read_bounded`] read nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error(transparent)]
    Storage(#[from] FileError),
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
) -> Result<(), FileError> {
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
    let d = File::open(dir).map_err(|e| file_error("opening", dir, e))?;
    // Every temporary file's data is on disk before any of them replaces its target.
    rustix::fs::syncfs(&d).map_err(|e| file_error("syncing", dir, e.into()))?;
    for (tmp, path) in &renames {
        fs::rename(tmp, path).map_err(|e| file_error("renaming", path, e))?;
    }
    d.sync_all().map_err(|e| file_error("syncing", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_long_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(read_bounded(&fifo, 10), Err(ReadError::NotAFile(_))));
        let long = dir.path().join("long");
        write_atomic(&long, &[7; 11], 0o600).unwrap();
        assert!(matches!(read_bounded(&long, 10), Err(ReadError::TooLarge { len: 11, .. })));
        assert_eq!(read_bounded(&long, 11).unwrap(), vec![7; 11]);
    }

    #[test]
    fn a_new_file_never_replaces_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("state");
        create_durable(&path, b"first", 0o600).unwrap();
        assert!(create_durable(&path, b"second", 0o600).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"third", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.path().join("a")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}
