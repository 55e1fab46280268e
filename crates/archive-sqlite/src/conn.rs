//! Connections: one writer, a small pool of readers, and the pragmas every connection gets.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use postkey_archive::StoreError;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::migrate;

/// How long a connection waits for another process's lock before answering busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;
/// Page cache per connection, in KiB (SQLite's negative `cache_size`): keeps the upper levels
/// of the key index in memory at a million keys.
const CACHE_KIB: i64 = 32 * 1024;
/// The WAL pages after which the writer's commit checkpoints them into the database file
/// (64 MiB at SQLite's 4 KiB pages).
const WAL_CHECKPOINT_PAGES: i64 = 16 * 1024;
/// The most of the database file a reader maps into memory (address space, not memory; SQLite
/// caps it at its compile-time maximum, 2 GiB in the bundled build).
const MMAP_BYTES: i64 = 16 << 30;

/// The SQLite archive. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    /// `None` for an archive opened read-only: every change is refused before it starts.
    writer: Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// Maps rusqlite's errors into the archive's: busy and locked are retryable, anything else
/// means the database is unusable for this call. The driver's message stays in the source.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_error)
    }
}

pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let e = Box::new(SqliteFailure { message, code: f });
            if matches!(f.code, DatabaseBusy | DatabaseLocked) {
                StoreError::Busy(e)
            } else {
                StoreError::Unavailable(e)
            }
        }
        e => StoreError::Unavailable(Box::new(e)),
    }
}

/// SQLite's failure said once: rusqlite's own error shows SQLite's message and then, as its
/// source, the same message again with the code.
#[derive(Debug)]
struct SqliteFailure {
    message: Option<String>,
    code: rusqlite::ffi::Error,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m} (SQLite code {})", self.code.extended_code),
            None => write!(f, "{}", self.code),
        }
    }
}

impl std::error::Error for SqliteFailure {}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn configure(conn: &Connection, reader: bool, busy_timeout: Duration) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout).db()?;
    // FULL: the WAL is synced at every commit, so a committed transaction survives power loss.
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).db()?;
    if reader {
        conn.pragma_update(None, "query_only", "ON").db()?;
        // Readers map the database file: a page the OS has cached is then a memory access, not
        // a read() into SQLite's own cache, which keeps lookups at a million keys close to
        // lookups at ten thousand. The writer keeps ordinary I/O. SQLite's documented price: a
        // disk error under a mapped page ends the process (SIGBUS) instead of failing the call,
        // acceptable for a local file whose every write is fsynced.
        conn.pragma_update(None, "mmap_size", MMAP_BYTES).db()?;
    } else {
        // A verifier's batch of first sightings touches thousands of the duplicate memory's
        // pages; at SQLite's default (a checkpoint once the WAL holds 1,000 pages) every such
        // commit was followed by copying them all into the database file and syncing it.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES).db()?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteStore {
    /// Opens the archive at `path`, creating it if needed, and brings its schema up to
    /// [`crate::SCHEMA_VERSION`]. Refuses a database whose schema is newer than this build
    /// ([`StoreError::SchemaTooNew`]).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, BUSY_TIMEOUT).await
    }

    /// As [`SqliteStore::open`], waiting at most `busy_timeout` for another writer's lock before
    /// a call fails as busy ([`StoreError::Busy`], which may be retried).
    pub async fn open_with(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, busy_timeout))
            .await
            .map_err(join_error)?
    }

    fn open_blocking(path: PathBuf, busy_timeout: Duration) -> Result<Self, StoreError> {
        // A new archive is readable by its owner only, whatever the umask; SQLite gives its
        // -wal and -shm files the database file's mode.
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::Unavailable(Box::new(e))),
        }
        let mut writer = Connection::open(&path).db()?;
        configure(&writer, false, busy_timeout)?;
        // WAL is a property of the file: set once, it stays. Readers then never block the writer.
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid("the database cannot use write-ahead logging"));
        }
        migrate::run(&mut writer)?;
        let inner = Inner {
            path,
            busy_timeout,
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Vec::new()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Opens the archive at `path` for reading only: nothing is created, migrated, checkpointed
    /// or written, so a command that only reads leaves the file as it found it, and works with
    /// read access alone. The file must exist and hold this build's schema version exactly
    /// ([`StoreError::SchemaTooOld`], [`StoreError::SchemaTooNew`]); every change is refused
    /// ([`StoreError::ReadOnly`]).
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || {
            if !path.is_file() {
                let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no archive file");
                return Err(StoreError::Unavailable(Box::new(e)));
            }
            let inner = Inner {
                path,
                busy_timeout: BUSY_TIMEOUT,
                writer: Mutex::new(None),
                readers: Mutex::new(Vec::new()),
            };
            let conn = inner.take_reader()?;
            let checked = migrate::check(&conn);
            inner.put_reader(conn);
            checked?;
            Ok(Self { inner: Arc::new(inner) })
        })
        .await
        .map_err(join_error)?
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer, on a blocking thread, and
    /// commits if it succeeds. Dropping the transaction on an error rolls it back.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic inside a transaction dropped (rolled back) it: the connection is sound.
            let mut conn = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = conn.as_mut().ok_or(StoreError::ReadOnly)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
            let out = f(&tx)?;
            // The durable commit: the WAL is written and synced.
            postkey_archive::metrics::durable(|| tx.commit()).db()?;
            Ok(out)
        })
        .await
        .map_err(join_error)?
    }

    /// Runs a short read on the caller's thread, on a pooled reader connection.
    pub(crate) fn read_now<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.inner.take_reader()?;
        let out = f(&conn);
        self.inner.put_reader(conn);
        out
    }

    /// Runs a read that may scan many rows on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_now(f)).await.map_err(join_error)?
    }

    /// Writes a copy of the archive, consistent as of one read transaction, to the new file `to`
    /// (SQLite's online backup, then the copy taken out of write-ahead logging: one file, this
    /// schema version, nothing else in it). Only reads the archive, so an archive opened
    /// read-only exports too. The file is created first, exclusively and 0600: one that exists
    /// is never written over.
    pub async fn export_to(&self, to: impl AsRef<Path>) -> Result<(), StoreError> {
        let to = to.as_ref().to_path_buf();
        self.read(move |conn| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&to)
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            conn.backup(rusqlite::MAIN_DB, &to, None::<fn(rusqlite::backup::Progress)>).db()?;
            let copy = Connection::open(&to).db()?;
            let mode: String =
                copy.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0)).db()?;
            if !mode.eq_ignore_ascii_case("delete") {
                return Err(StoreError::Invalid("the export cannot leave write-ahead logging"));
            }
            Ok(())
        })
        .await
    }

    /// Runs SQLite's `integrity_check` and `foreign_key_check`: the file's structure is sound and
    /// every reference resolves.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            let verdict: String =
                conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).db()?;
            if verdict != "ok" {
                return Err(StoreError::Corrupt("database file (integrity_check)"));
            }
            let dangling = conn.prepare("PRAGMA foreign_key_check").db()?.exists([]).db()?;
            if dangling {
                return Err(StoreError::Corrupt("reference (foreign_key_check)"));
            }
            Ok(())
        })
        .await
    }

    /// The writer connection, for tests that change the database behind the store's back (to
    /// show that the chain verification finds it). Not for production use.
    /// Not in a release build (the `testing` feature): a connection of its own, opened for
    /// reading and writing whatever the store was opened for.
    #[cfg(feature = "testing")]
    pub fn with_raw_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        // Tests only: a file the store opened can be opened again.
        #[allow(clippy::expect_used)]
        let conn = Connection::open(&self.inner.path).expect("the archive file opens");
        f(&conn)
    }
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags).db()?;
                configure(&conn, true, self.busy_timeout)?;
                Ok(conn)
            }
        }
    }

    fn put_reader(&self, conn: Connection) {
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
    }
}
