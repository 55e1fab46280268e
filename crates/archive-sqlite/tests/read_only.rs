//! An archive opened read-only, as the commands that only read open it: it shows what the
//! archive holds, refuses every change (3674) before it starts, creates nothing, migrates
//! nothing, and leaves the file as it found it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_archive::{NewDomain, Store, StoreError};
use postkey_archive_sqlite::SqliteStore;
use postkey_wire::{BoxId, DomainId, ResponseCode, Sender, Timestamp};

fn new_domain(name: &str) -> NewDomain {
    NewDomain {
        id: DomainId::parse(name).unwrap(),
        time: Timestamp::from_unix_micros(1),
        actor: Sender::Box(BoxId::FIRST_MANUFACTURING),
    }
}

/// Every file of `dir`, with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_read_only_archive_reads_and_refuses_every_change_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.create_domain(&new_domain("USPS")).await.unwrap();
    }
    let before = snapshot(dir.path());
    let store = SqliteStore::open_read_only(&path).await.unwrap();
    assert_eq!(store.domains().await.unwrap().len(), 1);
    let refused = store.create_domain(&new_domain("UKRM")).await.unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly), "{refused}");
    assert_eq!(refused.response_code(), ResponseCode::ARCHIVE_READ_ONLY);
    drop(store);
    // The database file is as it was; SQLite may leave its coordination files (an empty WAL,
    // the shared-memory index), which hold no data.
    let after = snapshot(dir.path());
    assert_eq!(after[0], before[0], "a read-only open changed archive.db");
    for (name, bytes) in &after[1..] {
        match name.as_str() {
            "archive.db-wal" => assert!(bytes.is_empty(), "the WAL holds {} bytes", bytes.len()),
            "archive.db-shm" => {}
            other => panic!("a read-only open made {other}"),
        }
    }
}

#[tokio::test]
async fn a_missing_or_older_archive_is_not_created_or_migrated_by_a_read_only_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.db");
    let missing = SqliteStore::open_read_only(&path).await.unwrap_err();
    assert!(matches!(missing, StoreError::Unavailable(_)), "{missing}");
    assert!(!path.exists(), "a read-only open created the archive");
    {
        SqliteStore::open(&path).await.unwrap();
    }
    // An archive of an older build: its newest migration not applied yet.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)",
            [],
        )
        .unwrap();
    let older = SqliteStore::open_read_only(&path).await.unwrap_err();
    assert!(matches!(older, StoreError::SchemaTooOld { .. }), "{older}");
    assert_eq!(older.response_code(), ResponseCode::ARCHIVE_SCHEMA_TOO_OLD);
}
