//! Numbered migrations, embedded in the binary and applied in order at connect.

use postkey_archive::StoreError;

use crate::conn::Pg;

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

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction, or refuses one that is newer.
pub(crate) async fn run(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.pg()?;
    // KMS computers starting at once queue here, so exactly one applies each migration. The
    // lock is per schema, so archives in different schemas do not wait for each other.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))", &[]).await.pg()?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version BIGINT PRIMARY KEY,
             applied TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .pg()?;
    let found: Option<i64> =
        tx.query_one("SELECT max(version) FROM schema_version", &[]).await.pg()?.try_get(0).pg()?;
    let found =
        u32::try_from(found.unwrap_or(0)).map_err(|_| StoreError::Corrupt("schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (version, sql) in (1i64..).zip(MIGRATIONS).skip(found as usize) {
        tx.batch_execute(sql).await.pg()?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&version]).await.pg()?;
    }
    tx.commit().await.pg()
}
