//! The archive's conformance suite against SQLite, each case on a fresh database file, plus the
//! cases that take parameters: 8 concurrent writers and the SIGKILL crash test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use postkey_archive::StoreError;
use postkey_archive::conformance::{self, Harness, Tamper};
use postkey_archive_sqlite::SqliteStore;
use postkey_wire::DomainId;
use rusqlite::params;
use tempfile::TempDir;

/// Set in the child of the crash test: the database it writes to.
const CRASH_CHILD_DB: &str = "POSTKEY_TEST_CRASH_CHILD_DB";

struct Sqlite {
    dir: TempDir,
}

impl Sqlite {
    fn path(&self) -> PathBuf {
        self.dir.path().join("archive.db")
    }
}

async fn harness() -> Option<Sqlite> {
    Some(Sqlite { dir: tempfile::tempdir().unwrap() })
}

impl Harness for Sqlite {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(self.path()).await.unwrap()
    }

    async fn try_open(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open(self.path()).await
    }

    async fn tamper(&self, store: &SqliteStore, tamper: Tamper) {
        store.with_raw_connection(|c| {
            // What an attacker with the file would do first: drop the append-only guards.
            c.execute_batch("DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete;")
                .unwrap();
            let n = match tamper {
                Tamper::AlterEvent { chain, seq } => c.execute(
                    "UPDATE events SET note = coalesce(note, '') || ' (altered)' WHERE chain = ?1 AND seq = ?2",
                    params![chain.as_str(), seq as i64],
                ),
                Tamper::RemoveEvent { chain, seq } => c.execute(
                    "DELETE FROM events WHERE chain = ?1 AND seq = ?2",
                    params![chain.as_str(), seq as i64],
                ),
                Tamper::RewindKeyIds { domain, next } => c.execute(
                    "UPDATE domains SET next_key_id = ?2 WHERE id = ?1",
                    params![domain.as_str(), next as i64],
                ),
                Tamper::ForgetBox(id) => c
                    .execute_batch(&format!(
                        "PRAGMA foreign_keys = OFF;
                         DELETE FROM domain_processes WHERE box_id = '{id}';
                         DELETE FROM boxes WHERE id = '{id}';
                         PRAGMA foreign_keys = ON;"
                    ))
                    .map(|()| 1),
                Tamper::SwapEvents { chain, a, b } => c.execute_batch(&format!(
                    "UPDATE events SET seq = 1000000000 WHERE chain = '{chain}' AND seq = {a};
                     UPDATE events SET seq = {a} WHERE chain = '{chain}' AND seq = {b};
                     UPDATE events SET seq = {b} WHERE chain = '{chain}' AND seq = 1000000000;"
                ))
                .map(|()| 1),
            };
            assert_eq!(n.unwrap(), 1);
        });
    }

    async fn history_refuses_sql(&self, store: &SqliteStore, chain: DomainId, seq: u64) -> bool {
        store.with_raw_connection(|c| {
            let update = c.execute(
                "UPDATE events SET note = 'rewritten' WHERE chain = ?1 AND seq = ?2",
                params![chain.as_str(), seq as i64],
            );
            let delete = c.execute(
                "DELETE FROM events WHERE chain = ?1 AND seq = ?2",
                params![chain.as_str(), seq as i64],
            );
            update.is_err() && delete.is_err()
        })
    }

    async fn set_schema_version(&self, store: &SqliteStore, version: u32) {
        store.with_raw_connection(|c| {
            c.execute("INSERT INTO schema_version (version) VALUES (?1)", [version]).unwrap();
        });
    }
}

postkey_archive::conformance_suite!(harness);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_key_ids_from_8_writers() {
    // Eight handles, each with its own connection, writing from blocking threads at once.
    let h = harness().await.unwrap();
    conformance::concurrent_key_ids(&h, 8, 1).await;
}

#[test]
fn sigkill_mid_batch_leaves_whole_transactions() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Ok(path) = std::env::var(CRASH_CHILD_DB) {
        // The child: write until killed.
        rt.block_on(async {
            let store = SqliteStore::open(&path).await.unwrap();
            conformance::crash_child(&store).await;
        });
        return;
    }
    let h = rt.block_on(harness()).unwrap();
    let path = h.path();
    let reported = conformance::crash_parent(
        "sigkill_mid_batch_leaves_whole_transactions",
        &[(CRASH_CHILD_DB, path.to_str().unwrap())],
    );
    rt.block_on(async {
        let store = SqliteStore::open(&path).await.unwrap();
        store.integrity_check().await.unwrap();
        conformance::crash_check(&store, reported).await;
    });
}
