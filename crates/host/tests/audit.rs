//! The auditor against an archive an attacker with write access to the database has edited
//! (docs/audit.md): each edit below is made on a copy of a real SQLite archive, its guards
//! dropped first, and each is found at its position with its kind. The untouched archive holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LINE, World, d, ram_tempdir, world};
use postkey_archive::Store as _;
use postkey_audit::{FaultKind, Position};
use postkey_host::{Access, SqliteStore, Wait};
use postkey_wire::{MeterId, RecordType};

/// A line that keyed three meters (VE and USPS keys each) and burned one VE key ID.
async fn keyed() -> World {
    let w = world(ram_tempdir(), LINE).await;
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let mut line = Vec::new();
    for n in 1..=3 {
        let id = MeterId::parse(&format!("PB7777-{n:06}")).unwrap();
        postkey_host::new_meter(&lock, &id).unwrap();
        line.push((id, d("USPS")));
    }
    let mut factory =
        postkey_host::Factory::open(&lock, &w.media(), &[d("VE"), d("USPS")]).await.unwrap();
    factory.install_many(&line, &d("VE"), 2, |_| {}).await.unwrap();
    factory.close();
    let burned = w.store.allocate_key_id(&d("VE")).await.unwrap();
    let burn = postkey_archive::BurnKeyId {
        domain: d("VE"),
        key_id: burned,
        reason: "never generated".into(),
        time: postkey_host::now(),
        actor: postkey_wire::Sender::Role(postkey_wire::Role::Kmc),
    };
    w.store.burn_key_id(&burn).await.unwrap();
    w
}

/// A copy of the world's archive, named `name`, after `sql` ran on it with every guard dropped.
async fn edited(w: &World, name: &str, sql: &str) -> SqliteStore {
    let path = w.dir.path().join(format!("{name}.db"));
    w.store.with_raw_connection(|c| {
        c.execute(&format!("VACUUM INTO '{}'", path.display()), []).unwrap();
    });
    let copy = SqliteStore::open(&path).await.unwrap();
    copy.with_raw_connection(|c| {
        let triggers: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for t in triggers {
            c.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
        }
        c.execute_batch(sql).unwrap();
    });
    copy
}

/// The first fault the auditor finds in `store`.
async fn first_fault(w: &World, store: &SqliteStore) -> postkey_audit::Fault {
    let report = postkey_audit::verify(store, &w.trust.anchors).await.unwrap();
    assert!(!report.holds(), "the edit went unseen: {report:?}");
    report.faults[0].clone()
}

fn key(domain: &str, key_id: u64) -> Position {
    Position::Key { domain: domain.into(), key_id }
}

fn record(domain: &str, key_id: u64, index: usize) -> Position {
    Position::Record { domain: domain.into(), key_id, index }
}

fn chain(chain: &str, seq: u64) -> Position {
    Position::Chain { chain: chain.into(), seq }
}

#[tokio::test]
async fn every_edit_of_the_archive_is_found_at_its_position() {
    let w = keyed().await;
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    assert_eq!(report.keys, 6);
    assert_eq!(report.records, 18, "MI3, MI7 and MI9 of each key");
    let ve = report.key_ids.iter().find(|a| a.domain == "VE").unwrap();
    assert_eq!((ve.allocated, ve.created, ve.burned, ve.pending), (4, 3, 1, 0));

    let mi7 = RecordType::MI7.0;
    // The event of a key's installation (VE/1: created, then its records, then → installed).
    let (installed_seq,): (u64,) = w.store.with_raw_connection(|c| {
        c.query_row(
            "SELECT seq FROM events WHERE chain = 'VE' AND key_id = 1 \
             AND action = 'status:new>installed'",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64,)),
        )
        .unwrap()
    });
    let usps_events = w.store.chain_head(&d("USPS")).await.unwrap().unwrap().count;
    let cases: Vec<(&str, String, Position, FaultKind)> = vec![
        (
            "a status set back from Installed to New",
            "UPDATE keys SET status = 'new' WHERE domain = 'VE' AND key_id = 2".into(),
            key("VE", 2),
            FaultKind::Status,
        ),
        (
            "a status set from Installed to Bad",
            "UPDATE keys SET status = 'bad' WHERE domain = 'USPS' AND key_id = 3".into(),
            key("USPS", 3),
            FaultKind::Status,
        ),
        (
            "a byte of an archived MI7 flipped",
            format!(
                "UPDATE records SET bytes = CAST(substr(bytes, 1, 30) || X'FF' || substr(bytes, 32) AS BLOB) \
                 WHERE domain = 'USPS' AND key_id = 2 AND record_type = {mi7}"
            ),
            record("USPS", 2, 2),
            FaultKind::Digest,
        ),
        (
            "an archived MI7 replaced by another key's, digest and all",
            format!(
                "UPDATE records SET (bytes, digest) = (SELECT bytes, digest FROM records \
                 WHERE domain = 'USPS' AND key_id = 1 AND record_type = {mi7}) \
                 WHERE domain = 'USPS' AND key_id = 2 AND record_type = {mi7}"
            ),
            record("USPS", 2, 2),
            FaultKind::Unreferenced,
        ),
        (
            "an archived record removed",
            format!("DELETE FROM records WHERE domain = 'VE' AND key_id = 3 AND record_type = {mi7}"),
            key("VE", 3),
            FaultKind::Unreferenced,
        ),
        (
            "an event removed",
            format!("DELETE FROM events WHERE chain = 'VE' AND seq = {installed_seq}"),
            chain("VE", installed_seq),
            FaultKind::ChainLink,
        ),
        (
            "two events swapped",
            "UPDATE events SET seq = seq + 1000000 WHERE chain = 'USPS' AND seq IN (2, 3); \
             UPDATE events SET seq = 1000005 - seq WHERE chain = 'USPS' AND seq > 1000000"
                .into(),
            chain("USPS", 2),
            FaultKind::ChainLink,
        ),
        (
            "an event's note rewritten",
            "UPDATE events SET note = 'nothing happened' WHERE chain = 'VE' AND seq = 1".into(),
            chain("VE", 1),
            FaultKind::ChainLink,
        ),
        (
            "the newest event removed and the head's count rewound (not its hash)",
            "DELETE FROM events WHERE chain = 'USPS' AND seq = (SELECT count FROM chains WHERE chain = 'USPS'); \
             UPDATE chains SET count = count - 1 WHERE chain = 'USPS'"
                .into(),
            chain("USPS", usps_events - 1),
            FaultKind::ChainLink,
        ),
        (
            "a key's meter edited",
            "UPDATE keys SET meter_id = 'PB9999-000009' WHERE domain = 'USPS' AND key_id = 1"
                .into(),
            key("USPS", 1),
            FaultKind::Field,
        ),
        (
            "a key's KMS Request Time edited",
            "UPDATE keys SET kms_request = kms_request - 1 WHERE domain = 'VE' AND key_id = 1"
                .into(),
            key("VE", 1),
            FaultKind::Field,
        ),
        (
            "a key removed",
            "DELETE FROM records WHERE domain = 'VE' AND key_id = 2; \
             DELETE FROM keys WHERE domain = 'VE' AND key_id = 2"
                .into(),
            key("VE", 2),
            FaultKind::Field,
        ),
        (
            "a burned key ID forgotten",
            "DELETE FROM burned_key_ids WHERE domain = 'VE' AND key_id = 4".into(),
            Position::KeyId { domain: "VE".into(), key_id: 4 },
            FaultKind::Accounting,
        ),
        (
            "more key IDs allocated than accounted for",
            "UPDATE domains SET next_key_id = next_key_id + 1 WHERE id = 'USPS'".into(),
            Position::KeyId { domain: "USPS".into(), key_id: 4 },
            FaultKind::Accounting,
        ),
        (
            "a bundle's signature broken",
            "UPDATE bundles SET bundle = CAST(substr(bundle, 1, length(bundle) - 1) || X'00' AS BLOB) \
             WHERE domain = 'VE'"
                .into(),
            Position::Bundle { domain: "VE".into() },
            FaultKind::Signature,
        ),
        (
            "the installation bound to other anchors",
            "UPDATE installation SET anchors = zeroblob(32)".into(),
            Position::Installation,
            FaultKind::Installation,
        ),
    ];
    for (n, (what, sql, position, kind)) in cases.into_iter().enumerate() {
        let store = edited(&w, &format!("case{n}"), &sql).await;
        let fault = first_fault(&w, &store).await;
        assert_eq!((&fault.position, fault.kind), (&position, kind), "{what}: {fault}");
    }
}
