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

/// What the PostgreSQL tests of every crate share (the `testing` feature; never in a release
/// build): the test server's address, and a rule that no test passes without running.
#[cfg(feature = "testing")]
pub mod testing {
    /// The environment variable that names the test server.
    pub const URL_VAR: &str = "POSTKEY_TEST_PG_URL";

    /// The test server's URL. Unset, the test `name` prints that it was skipped and gets `None`
    /// (so `cargo test` runs on a machine without PostgreSQL), except under `CI=true`, where a
    /// PostgreSQL test that would not run fails instead.
    #[allow(clippy::panic)] // A test helper: failing the test is its purpose.
    pub fn server_url(name: &str) -> Option<String> {
        match std::env::var(URL_VAR) {
            Ok(url) => Some(url),
            Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("{name}: {URL_VAR} is not set, and CI runs every PostgreSQL test")
            }
            Err(_) => {
                println!("PostgreSQL test skipped ({name}): {URL_VAR} is not set");
                None
            }
        }
    }

    /// Whether `schema` exists on the server at `url`.
    pub async fn schema_exists(url: &str, schema: &str) -> Result<bool, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = $1", &[&schema])
            .await?;
        Ok(row.get::<_, i64>(0) > 0)
    }
}
pub use migrate::SCHEMA_VERSION;
