//! The SQLite archive's resource and integrity faults, each with its response code: a database
//! that cannot be opened (3660), a writer's lock held by another process past the wait (3661),
//! a stored value that does not parse (3672).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use postkey_archive::{NewDomain, NewKey, SignedRecord, Store, StoreError};
use postkey_archive_sqlite::SqliteStore;
use postkey_wire::{BoxId, DomainId, RecordType, ResponseCode, Sender, Timestamp};

async fn domain(store: &SqliteStore) -> DomainId {
    let id = DomainId::parse("USPS").unwrap();
    let actor = Sender::Box(BoxId::FIRST_MANUFACTURING);
    let time = Timestamp::from_unix_micros(1);
    store.create_domain(&NewDomain { id: id.clone(), time, actor }).await.unwrap();
    id
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    // The archive's directory is a file: nothing can be created under it.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let err = SqliteStore::open(blocker.join("archive.db")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_UNAVAILABLE);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_write_lock_held_past_the_wait_is_busy_and_the_write_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.db");
    let store = SqliteStore::open_with(&path, Duration::from_millis(200)).await.unwrap();
    let domain = domain(&store).await;
    // Another process holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.allocate_key_id(&domain).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_BUSY);
    assert!(err.is_retryable());
    // Nothing was allocated; once the lock is gone the same call succeeds with the first ID.
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(store.allocate_key_id(&domain).await.unwrap().get(), 1);
}

#[tokio::test]
async fn a_stored_value_that_does_not_parse_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("archive.db")).await.unwrap();
    let domain = domain(&store).await;
    let key_id = store.allocate_key_id(&domain).await.unwrap();
    let new = NewKey {
        domain: domain.clone(),
        key_id,
        oak_id: BoxId::parse("O00000001").unwrap(),
        steel_id: BoxId::parse("S00000001").unwrap(),
        meter_id: postkey_wire::MeterId::parse("PB1234-000001").unwrap(),
        kms_request_time: Timestamp::from_unix_micros(2),
        time: Timestamp::from_unix_micros(3),
        actor: Sender::Box(BoxId::parse("O00000001").unwrap()),
        record: SignedRecord { record_type: RecordType::MI3, bytes: b"MI3".to_vec() },
    };
    store.create_key(&new).await.unwrap();
    assert!(store.key(&domain, key_id).await.unwrap().is_some());
    // The key's Oak box altered to something that is not a box ID.
    store.with_raw_connection(|c| {
        c.execute("UPDATE keys SET oak_id = 'not a box'", []).unwrap();
    });
    let err = store.key(&domain, key_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_CORRUPT);
    assert!(!err.is_retryable());
}
