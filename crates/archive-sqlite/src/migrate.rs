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
    include_str!("../migrations/0008_sightings_compact.sql"),
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

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use rusqlite::Connection;

    /// Version 8 keeps every sighting of version 7: its meter, count, time, site and event.
    #[test]
    fn the_compact_duplicate_memory_keeps_every_sighting() {
        let c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        for sql in &MIGRATIONS[..7] {
            c.execute_batch(sql).unwrap();
        }
        let rows = [
            ("PB1234-000002", 7, 100, "CHI", 1),
            ("PB1234-000001", 7, 100, "CHI", 1),
            ("PB1234-000001", 8, 200, "NYC", 2),
            ("PB1234-000002", 9, 201, "LAX", 2),
        ];
        for (meter, count, time, site, seq) in rows {
            c.execute(
                "INSERT INTO sightings VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![meter, count, time, site, seq],
            )
            .unwrap();
        }
        c.execute_batch(MIGRATIONS[7]).unwrap();
        let mut read = c
            .prepare(
                "SELECT m.meter, s.piece_count, t.first_seen, t.site, t.seq FROM sightings s \
                 JOIN sighting_meters m ON m.id = s.meter JOIN sighting_stamps t ON t.id = s.stamp \
                 ORDER BY t.seq, m.meter, s.piece_count",
            )
            .unwrap();
        let got: Vec<(String, i64, i64, String, i64)> = read
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want: Vec<(String, i64, i64, String, i64)> = [rows[1], rows[0], rows[2], rows[3]]
            .iter()
            .map(|&(m, n, t, s, q)| (m.to_owned(), n, t, s.to_owned(), q))
            .collect();
        assert_eq!(got, want);
        let stamps: i64 =
            c.query_row("SELECT count(*) FROM sighting_stamps", [], |r| r.get(0)).unwrap();
        assert_eq!(stamps, 3, "one stamp per (event, time, site)");
        assert!(c.execute("DELETE FROM sighting_meters", []).is_err(), "append-only");
        assert!(c.execute("UPDATE sighting_stamps SET site = 'X'", []).is_err(), "append-only");
        assert!(!c.prepare("PRAGMA foreign_key_check").unwrap().exists([]).unwrap());
    }
}
