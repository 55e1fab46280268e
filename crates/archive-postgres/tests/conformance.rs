//! The archive's conformance suite against the machine's PostgreSQL, each case in a schema of
//! its own, plus the cases that take parameters: 2 stores × 4 concurrent writers, and the
//! SIGKILL crash test.
//!
//! The server is named by `POSTKEY_TEST_PG_URL`. Unset or unreachable, every case prints that it
//! was skipped and passes, except under `CI=true`, where it fails: CI runs every one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use postkey_archive::StoreError;
use postkey_archive::conformance::{self, Harness, Tamper};
use postkey_archive_postgres::{PgConfig, PgStore};
use postkey_wire::DomainId;
use tokio_postgres::NoTls;

use postkey_archive_postgres::testing::URL_VAR;
/// Set in the child of the crash test: the schema it writes to.
const CRASH_CHILD_SCHEMA: &str = "POSTKEY_TEST_CRASH_CHILD_SCHEMA";
/// Test schemas older than this are left over from killed runs and are dropped.
const STALE_SECS: u64 = 3600;

struct Postgres {
    url: String,
    schema: String,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn admin_client(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A fresh schema on the test server, or `None` (with the reason printed) to skip.
async fn harness() -> Option<Postgres> {
    let url = postkey_archive_postgres::testing::server_url("conformance")?;
    let client = match admin_client(&url).await {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {URL_VAR} is unreachable in CI: {e}")
        }
        Err(e) => {
            println!("PostgreSQL tests skipped: cannot connect to {URL_VAR}: {e}");
            return None;
        }
    };
    // A name no other run uses: the time (to find leftovers) and 64 random bits.
    let random = RandomState::new().hash_one(std::thread::current().id());
    let schema = format!("pk_test_{}_{random:016x}", now_secs());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    drop_stale_schemas(&client).await;
    Some(Postgres { url, schema })
}

async fn drop_stale_schemas(client: &tokio_postgres::Client) {
    let rows = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pk\\_test\\_%'", &[])
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let born = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|b| b + STALE_SECS < now_secs()) {
            // Another run may drop it at the same moment: ignore the error.
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
        }
    }
}

impl Postgres {
    fn config(&self) -> PgConfig {
        PgConfig { url: self.url.clone(), schema: Some(self.schema.clone()), max_connections: 4 }
    }
}

impl Drop for Postgres {
    /// Drops the schema, also when the case panicked. Drop cannot await, so a thread with a
    /// runtime of its own does it.
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(client) = admin_client(&url).await {
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

async fn raw(store: &PgStore, sql: &str) -> Result<u64, tokio_postgres::Error> {
    let client = store.raw_client().await.unwrap();
    client.execute(sql, &[]).await
}

impl Harness for Postgres {
    type Store = PgStore;

    async fn open(&self) -> PgStore {
        PgStore::connect(&self.config()).await.unwrap()
    }

    async fn try_open(&self) -> Result<PgStore, StoreError> {
        PgStore::connect(&self.config()).await
    }

    async fn tamper(&self, store: &PgStore, tamper: Tamper) {
        // What an attacker with database access would do first: switch the guards off.
        raw(store, "ALTER TABLE events DISABLE TRIGGER USER").await.unwrap();
        let n = match tamper {
            Tamper::AlterEvent { chain, seq } => {
                let sql = format!(
                    "UPDATE events SET note = coalesce(note, '') || ' (altered)' WHERE chain = '{chain}' AND seq = {seq}"
                );
                raw(store, &sql).await.unwrap()
            }
            Tamper::RemoveEvent { chain, seq } => {
                raw(store, &format!("DELETE FROM events WHERE chain = '{chain}' AND seq = {seq}"))
                    .await
                    .unwrap()
            }
            Tamper::RewindKeyIds { domain, next } => raw(
                store,
                &format!("UPDATE domains SET next_key_id = {next} WHERE id = '{domain}'"),
            )
            .await
            .unwrap(),
            Tamper::ForgetBox(id) => {
                let client = store.raw_client().await.unwrap();
                client
                    .batch_execute(&format!(
                        "SET session_replication_role = replica;
                         DELETE FROM domain_processes WHERE box_id = '{id}';
                         DELETE FROM boxes WHERE id = '{id}';
                         SET session_replication_role = origin;"
                    ))
                    .await
                    .unwrap();
                1
            }
            Tamper::SwapEvents { chain, a, b } => {
                let client = store.raw_client().await.unwrap();
                // Through a free number: the primary key is checked row by row.
                client
                    .batch_execute(&format!(
                        "UPDATE events SET seq = 1000000000 WHERE chain = '{chain}' AND seq = {a};
                         UPDATE events SET seq = {a} WHERE chain = '{chain}' AND seq = {b};
                         UPDATE events SET seq = {b} WHERE chain = '{chain}' AND seq = 1000000000;"
                    ))
                    .await
                    .unwrap();
                1
            }
        };
        assert_eq!(n, 1);
    }

    async fn history_refuses_sql(&self, store: &PgStore, chain: DomainId, seq: u64) -> bool {
        let update = raw(
            store,
            &format!("UPDATE events SET note = 'x' WHERE chain = '{chain}' AND seq = {seq}"),
        )
        .await;
        let delete =
            raw(store, &format!("DELETE FROM events WHERE chain = '{chain}' AND seq = {seq}"))
                .await;
        let truncate = raw(store, "TRUNCATE events").await;
        update.is_err() && delete.is_err() && truncate.is_err()
    }

    async fn set_schema_version(&self, store: &PgStore, version: u32) {
        raw(store, &format!("INSERT INTO schema_version (version) VALUES ({version})"))
            .await
            .unwrap();
    }
}

postkey_archive::conformance_suite!(harness);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_key_ids_from_2_stores_x_4_tasks() {
    // Two stores (two pools: two KMS computers) on one database, four writers each.
    if let Some(h) = harness().await {
        conformance::concurrent_key_ids(&h, 2, 4).await;
    }
}

#[test]
fn sigkill_mid_batch_leaves_whole_transactions() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Ok(schema) = std::env::var(CRASH_CHILD_SCHEMA) {
        // The child: write until killed.
        rt.block_on(async {
            let url = std::env::var(URL_VAR).unwrap();
            let store =
                PgStore::connect(&PgConfig { url, schema: Some(schema), max_connections: 2 })
                    .await
                    .unwrap();
            conformance::crash_child(&store).await;
        });
        return;
    }
    let Some(h) = rt.block_on(harness()) else { return };
    let reported = conformance::crash_parent(
        "sigkill_mid_batch_leaves_whole_transactions",
        &[(CRASH_CHILD_SCHEMA, h.schema.as_str())],
    );
    rt.block_on(async {
        let store = h.open().await;
        conformance::crash_check(&store, reported).await;
    });
}
