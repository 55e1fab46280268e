//! The PostgreSQL archive's resource faults, each with its response code. These need no server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_archive::StoreError;
use postkey_archive_postgres::{PgConfig, PgStore};
use postkey_wire::ResponseCode;

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_unavailable() {
    // Port 1 on the loopback: nothing listens there.
    let config = PgConfig::new("postgres://postgres@127.0.0.1:1/test?connect_timeout=5");
    let err = PgStore::connect(&config).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_UNAVAILABLE);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_malformed_schema_name_is_refused_before_connecting() {
    let mut config = PgConfig::new("postgres://postgres@127.0.0.1:1/test");
    config.schema = Some("Robert'); DROP TABLE keys;--".into());
    let err = PgStore::connect(&config).await.unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_INVALID);
}
