//! The SQLite backend of the postkey archive: the embedded default.
//!
//! Start from [`SqliteStore::open`], which opens (or creates) the database file, applies the
//! numbered migrations this build knows and refuses a database written by a newer build; the
//! store then implements [`postkey_archive::Store`].
//!
//! Key design decision: one writer connection, behind a mutex, runs every write as a
//! `BEGIN IMMEDIATE` transaction on a blocking thread (`spawn_blocking`), so writes of this
//! process are serial and a write never waits for a lock half way through; other processes on
//! the same file wait up to the busy timeout. The database runs in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives a crash or power loss, and readers
//! never block the writer. Point lookups (a key by ID or ISN, a box's state version) run on the
//! caller's thread on a pooled reader connection: an indexed lookup costs about two
//! microseconds, less than handing it to another thread would.

#![forbid(unsafe_code)]

mod chain;
mod conn;
mod keys;
mod migrate;
mod registry;
mod rows;
mod store;

pub use conn::SqliteStore;
pub use migrate::SCHEMA_VERSION;
/// The SQLite driver, for tests that edit an archive behind the store's back (never in a release
/// build).
#[cfg(feature = "testing")]
pub use rusqlite;
