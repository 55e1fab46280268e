//! The connection pool, its configuration, and how driver errors become archive errors.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use postkey_archive::StoreError;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::migrate;

/// Where and how to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// A libpq-style URL or key-value string (`postgres://user@host:5432/db`).
    pub url: String,
    /// The schema to keep the archive in (`[a-z_][a-z0-9_]*`); `None` for the default
    /// search path. Tests give each run its own.
    pub schema: Option<String>,
    /// The most connections the pool opens.
    pub max_connections: usize,
}

impl PgConfig {
    /// `url` with the default schema and up to 8 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), schema: None, max_connections: 8 }
    }
}

impl std::fmt::Debug for PgConfig {
    // The URL may carry a password: show only where the archive lives.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The PostgreSQL archive. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: Option<String>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// Maps a driver error: lock and serialization failures are retryable ([`StoreError::Busy`]),
/// anything else makes this call fail ([`StoreError::Unavailable`]). The driver's message, which
/// may quote SQL, stays in the source for the logs.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let busy = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
    ];
    match e.code() {
        Some(code) if busy.contains(code) => StoreError::Busy(Box::new(e)),
        _ => StoreError::Unavailable(Box::new(e)),
    }
}

pub(crate) trait Pg<T> {
    fn pg(self) -> Result<T, StoreError>;
}

impl<T> Pg<T> for Result<T, tokio_postgres::Error> {
    fn pg(self) -> Result<T, StoreError> {
        self.map_err(pg_error)
    }
}

fn valid_schema(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.len() <= 63
}

impl PgStore {
    /// Connects, brings the schema up to [`crate::SCHEMA_VERSION`], and refuses a database
    /// whose schema is newer ([`StoreError::SchemaTooNew`]).
    pub async fn connect(config: &PgConfig) -> Result<Self, StoreError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).pg()?;
        if let Some(schema) = &config.schema {
            if !valid_schema(schema) {
                return Err(StoreError::Invalid("schema name must be [a-z_][a-z0-9_]*"));
            }
            // Every pooled connection starts in the archive's schema.
            pg.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let store = Self { pool, schema: config.schema.clone() };
        let mut client = store.client().await?;
        if let Some(schema) = &config.schema {
            // The name was checked above: a plain identifier, safe to splice.
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await.pg()?;
        }
        migrate::run(&mut client).await?;
        Ok(store)
    }

    /// Drops the store's own schema and everything in it: for a throwaway archive (a benchmark
    /// run's). A store on the default schema drops nothing.
    pub async fn drop_schema(self) -> Result<(), StoreError> {
        let Some(schema) = &self.schema else { return Ok(()) };
        let client = self.client().await?;
        // The name was checked at connect: a plain identifier, safe to splice.
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.pg()
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(Box::new(e)))
    }

    /// Gathers the planner's statistics of the archive's tables (`ANALYZE`). PostgreSQL's
    /// autovacuum does it in time; after a bulk load into tables that were empty (a new
    /// archive keyed at once), plans made while they were empty scan whole tables until it
    /// does, and this makes them indexed at once (the statistics invalidate cached plans).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        // The tables that grow with the keys; the archive's schema is the search path.
        let sql = "ANALYZE keys, records, events, chains, error_log";
        self.client().await?.batch_execute(sql).await.pg()
    }

    /// A pooled connection, for tests that change the database behind the store's back (to
    /// show that the chain verification finds it). Not in a release build (`testing`).
    #[cfg(feature = "testing")]
    pub async fn raw_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.client().await
    }
}

/// Runs `$body` (an expression using `$tx`, a `deadpool_postgres::Transaction`) in one
/// transaction on a pooled connection and commits if it succeeds; on an error the transaction
/// is dropped, which rolls it back.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let $tx = client.transaction().await.map_err($crate::conn::pg_error)?;
        let out = $body.await?;
        $tx.commit().await.map_err($crate::conn::pg_error)?;
        Ok(out)
    }};
}
pub(crate) use in_tx;
