//! One owner per home write and per box (protocol §1 rule 5: a box state forked by two writers could
//! replay a key). Advisory `flock` locks on files of the home, held for a command's lifetime and
//! released by the operating system when the process ends, however it ends.
//!
//! | command | home | boxes |
//! | --- | --- | --- |
//! | `init`, `domain create`, `box manufacture`, `box install`, `demo` | exclusive | the boxes enabled |
//! | `factory install` | shared, and the meters lock | the boxes enabled |
//! | `box self-test` | shared | the boxes enabled |
//! | `meter new` | shared | — (the meter file is created exclusively) |
//! | `keys`, `box list/show`, `domain list`, `errors`, `share check` | none | none |
//!
//! The meters lock keeps one factory run per home keying meters: runs on two lines of boxes
//! would otherwise both find a meter without keys and both key it.
//!
//! A second writer is refused at once (home busy 3605, box in use 4007) unless it asked to wait.
//! Readers take no lock: they read the archive, whose own transactions keep them consistent.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use postkey_wire::BoxId;
use rustix::fs::{FlockOperation, flock};

use crate::{Home, HostError};

/// How a command holds the home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Alone: ceremonies, which change what boxes and domains exist.
    Exclusive,
    /// Beside other shared holders: commands that use boxes (each box has its own lock).
    Shared,
}

/// Whether a command waits for a lock another command holds, or is refused at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Refused at once (the default).
    #[default]
    No,
    /// Waits until the lock is free.
    Yes,
}

fn open_lock_file(path: &Path) -> Result<File, HostError> {
    if let Some(dir) = path.parent() {
        crate::home::make_dir(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| crate::home::storage("opening", path, e))
}

/// Opens the lock file at `path` and takes it exclusively, waiting for another holder.
pub(crate) fn take_exclusive(path: &Path) -> Result<File, HostError> {
    let file = open_lock_file(path)?;
    take(&file, true, Wait::Yes, path)?;
    Ok(file)
}

/// Takes `operation` on `file`, waiting or not; `Ok(false)` when another holder has it.
fn take(file: &File, exclusive: bool, wait: Wait, path: &Path) -> Result<bool, HostError> {
    let op = match (exclusive, wait) {
        (true, Wait::No) => FlockOperation::NonBlockingLockExclusive,
        (true, Wait::Yes) => FlockOperation::LockExclusive,
        (false, Wait::No) => FlockOperation::NonBlockingLockShared,
        (false, Wait::Yes) => FlockOperation::LockShared,
    };
    match flock(file, op) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(crate::home::storage("locking", path, e.into())),
    }
}

/// The home, held by this command: exclusively for ceremonies, shared for the others. Dropping
/// it releases the lock.
#[derive(Debug)]
pub struct HomeLock {
    home: Home,
    access: Access,
    wait: Wait,
    _file: File,
}

impl HomeLock {
    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// How it is held.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether this command waits for the boxes it enables.
    pub fn wait(&self) -> Wait {
        self.wait
    }

    /// Proof that the home is held alone, for the ceremonies that need it.
    pub(crate) fn exclusive(&self) -> Result<&Home, HostError> {
        match self.access {
            Access::Exclusive => Ok(&self.home),
            Access::Shared => Err(HostError::Busy(Busy::Home(self.home.root().to_path_buf()))),
        }
    }
}

/// A box held by this command while it is enabled. Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct BoxLock {
    _file: File,
}

/// What another command holds.
#[derive(Debug, thiserror::Error)]
pub enum Busy {
    /// The home, which a ceremony holds alone (or which others hold while a ceremony waits).
    #[error(
        "{} is busy: another postkey command is changing it; try again, or pass --wait",
        .0.display()
    )]
    Home(PathBuf),
    /// The home's meters, which another factory run is keying.
    #[error(
        "the meters of {} are being keyed by another postkey command; try again, or pass --wait",
        .0.display()
    )]
    Meters(PathBuf),
    /// A box, which another command has enabled.
    #[error("{0} is in use by another postkey command; try again, or pass --wait")]
    Box(BoxId),
}

impl Home {
    /// Takes the home for this command.
    pub fn lock(&self, access: Access, wait: Wait) -> Result<HomeLock, HostError> {
        // The home's root is the directory the caller named with --home.
        crate::home::make_named_dir(self.root(), "--home")?;
        let path = self.root().join(".lock");
        let file = open_lock_file(&path)?;
        if !take(&file, access == Access::Exclusive, wait, &path)? {
            return Err(HostError::Busy(Busy::Home(self.root().to_path_buf())));
        }
        Ok(HomeLock { home: self.clone(), access, wait, _file: file })
    }

    /// The error-log spool, held while a line is appended (shared) or while the spool is taken
    /// for the archive (exclusive), so that no line goes into a spool already taken. Waits.
    pub(crate) fn lock_spool(&self, exclusive: bool) -> Result<File, HostError> {
        let path = self.root().join("locks").join("errors.lock");
        let file = open_lock_file(&path)?;
        take(&file, exclusive, Wait::Yes, &path)?;
        Ok(file)
    }

    /// One mover of the error-log spool into the archive at a time. Waits.
    pub(crate) fn lock_spool_move(&self) -> Result<File, HostError> {
        let path = self.root().join("locks").join("errors-move.lock");
        let file = open_lock_file(&path)?;
        take(&file, true, Wait::Yes, &path)?;
        Ok(file)
    }

    /// Takes the home's meters for a factory run. Dropping the file releases them.
    pub(crate) fn lock_meters(&self, wait: Wait) -> Result<File, HostError> {
        let path = self.root().join("locks").join("meters.lock");
        let file = open_lock_file(&path)?;
        if !take(&file, true, wait, &path)? {
            return Err(HostError::Busy(Busy::Meters(self.root().to_path_buf())));
        }
        Ok(file)
    }

    /// Takes box `id` for this command.
    pub(crate) fn lock_box(&self, id: BoxId, wait: Wait) -> Result<BoxLock, HostError> {
        let path = self.root().join("locks").join(format!("{id}.lock"));
        let file = open_lock_file(&path)?;
        if !take(&file, true, wait, &path)? {
            return Err(HostError::Busy(Busy::Box(id)));
        }
        Ok(BoxLock { _file: file })
    }
}
