//! Numbered migrations, embedded in the binary and applied in order at open.

use postkey_archive::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::conn::Db;

/// The migrations this build knows, in order: migration `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_installation.sql"),
    include_str!("../migrations/0003_reservations.sql"),
    include_str!("../migrations/0004_error_origin.sql"),
    include_str!("../migrations/0005_checkpoints.sql"),
    include_str!("../migrations/0006_error_chain.sql"),
    include_str!("../migrations/0007_sightings.sql"),
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`] in one transaction, or refuses one that is newer.
pub(crate) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening a new file at once do not both migrate it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY,
             applied INTEGER NOT NULL DEFAULT (unixepoch())
         ) STRICT;",
    )
    .db()?;
    let found = found_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(found as usize) {
        tx.execute_batch(sql).db()?;
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version]).db()?;
    }
    tx.commit().db()
}

/// Checks, without writing, that the database is at exactly [`SCHEMA_VERSION`]: for a read-only
/// open, which cannot migrate.
pub(crate) fn check(conn: &Connection) -> Result<(), StoreError> {
    let found = found_version(conn)?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Greater => {
            Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION })
        }
        std::cmp::Ordering::Less => {
            Err(StoreError::SchemaTooOld { found, supported: SCHEMA_VERSION })
        }
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// The newest migration applied (0 for a new database).
fn found_version(conn: &Connection) -> Result<u32, StoreError> {
    let found: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()
        .db()?
        .flatten();
    u32::try_from(found.unwrap_or(0)).map_err(|_| StoreError::Corrupt("schema version"))
}
