//! The PostgreSQL backend of the postkey archive, shared by several KMS computers.
//!
//! Start from [`PgStore::connect`] with a [`PgConfig`]: it opens a pool of connections, applies
//! the numbered migrations this build knows (under an advisory lock, so KMS computers starting
//! together migrate once) and refuses a database whose schema is newer than this build. The
//! store then implements [`postkey_archive::Store`].
//!
//! Key design decision: the invariants are carried by the database, not by one process's
//! memory, because several KMS computers write at once. Key IDs come from one atomic
//! `UPDATE domains SET next_key_id = next_key_id + n ... RETURNING`; every change of a domain's
//! keys first locks that domain's chain head row (`SELECT ... FOR UPDATE`, heads locked in name
//! order so batches cannot deadlock), then writes with a guarded update
//! (`... WHERE status = $expected`) and appends its event in the same transaction; unique
//! constraints and append-only triggers back every rule up. Plain SQL at the default
//! `READ COMMITTED` isolation: the locks, not the isolation level, serialize what must be serial.

#![forbid(unsafe_code)]

mod bulk;
mod chain;
mod conn;
mod keys;
mod migrate;
mod registry;
mod rows;
mod store;

pub use conn::{PgConfig, PgStore};
pub use migrate::SCHEMA_VERSION;
