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
    log_refusals(&w).await;
    w
}

/// Logs three refusals, `refusal 1` to `refusal 3`, in the archive's error log.
async fn log_refusals(w: &World) {
    for n in 1..=3 {
        let entry = postkey_archive::ErrorLogEntry {
            time: postkey_host::now(),
            component: postkey_archive::Component::parse("kmc").unwrap(),
            response_code: postkey_wire::ResponseCode::KEY_ID_NOT_FRESH,
            message: format!("refusal {n}"),
            domain: Some(d("VE")),
            meter_id: None,
            key_id: None,
            origin: None,
        };
        w.store.log_error(&entry).await.unwrap();
    }
}

/// A copy of the world's archive, named `name`, after `sql` ran on it with every guard dropped.
async fn edited(w: &World, name: &str, sql: &str) -> SqliteStore {
    let path = w.dir.path().join(format!("{name}.db"));
    w.store.with_raw_connection(|c| {
        c.execute(&format!("VACUUM INTO '{}'", path.display()), []).unwrap();
    });
    edit_export(&path, sql);
    SqliteStore::open(&path).await.unwrap()
}

/// SQL for blob `column` with its last byte (inside the signature) changed.
fn flip_last(column: &str) -> String {
    format!(
        "CAST(substr({column}, 1, length({column}) - 1) || \
         CASE WHEN substr({column}, -1) = X'00' THEN X'01' ELSE X'00' END AS BLOB)"
    )
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
    let logged = w.store.errors_in_order(0, 100).await.unwrap();
    let find = |m: &str| logged.iter().find(|e| e.entry.message == m).unwrap().clone();
    let errors_at = |m: &str| find(m).seq.unwrap();
    let error_id = |m: &str| find(m).id;
    assert_eq!(report.errors, logged.len() as u64);
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
            "a key's KMS Install Time moved an hour past its MI9",
            "UPDATE keys SET kms_install = kms_install + 3600000000 \
             WHERE domain = 'USPS' AND key_id = 2"
                .into(),
            key("USPS", 2),
            FaultKind::Field,
        ),
        (
            "a key's PSR Install Time moved four minutes (within the skew between clocks)",
            "UPDATE keys SET psr_install = psr_install + 240000000 \
             WHERE domain = 'USPS' AND key_id = 1"
                .into(),
            key("USPS", 1),
            FaultKind::Field,
        ),
        (
            "a KMS Key Registration Time no event set, on an Installed key",
            "UPDATE keys SET kms_key_registration = kms_install + 1 \
             WHERE domain = 'VE' AND key_id = 2"
                .into(),
            key("VE", 2),
            FaultKind::Field,
        ),
        (
            "a key's PSR Install Time moved an hour before its MI7 (and its request)",
            "UPDATE keys SET psr_install = psr_install - 3600000000 \
             WHERE domain = 'VE' AND key_id = 3"
                .into(),
            key("VE", 3),
            FaultKind::Times,
        ),
        (
            "a key's PSR Install Time cleared",
            "UPDATE keys SET psr_install = NULL WHERE domain = 'VE' AND key_id = 1".into(),
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
            format!("UPDATE bundles SET bundle = {} WHERE domain = 'VE'", flip_last("bundle")),
            Position::Bundle { domain: "VE".into() },
            FaultKind::Signature,
        ),
        (
            "an error-log entry deleted",
            "DELETE FROM error_log WHERE message = 'refusal 2'".into(),
            chain("ERRORS", errors_at("refusal 2")),
            FaultKind::Unreferenced,
        ),
        (
            "an error-log entry's code edited",
            "UPDATE error_log SET response_code = 3000 WHERE message = 'refusal 3'".into(),
            Position::ErrorEntry { id: error_id("refusal 3") },
            FaultKind::Field,
        ),
        (
            "an event's actor emptied (a value that does not decode)",
            "UPDATE events SET actor = '' WHERE chain = 'VE' AND seq = 2".into(),
            Position::Archive,
            FaultKind::Malformed,
        ),
        (
            "an allocation of billions (checked in ranges, not ID by ID)",
            "UPDATE domains SET next_key_id = 9000000000000000000 WHERE id = 'VE'".into(),
            Position::KeyId { domain: "VE".into(), key_id: 5 },
            FaultKind::Accounting,
        ),
        (
            "an error-log entry forged past the error log's chain",
            "INSERT INTO error_log (time, component, response_code, message, seq) \
             VALUES (1796394773981299, 'kmc', 3677, 'forged', 99)"
                .into(),
            Position::ErrorEntry { id: logged.last().unwrap().id + 1 },
            FaultKind::Unreferenced,
        ),
        (
            "an error-log entry forged with no event, after chained ones",
            "INSERT INTO error_log (time, component, response_code, message) \
             VALUES (1796394773981299, 'kmc', 3677, 'forged')"
                .into(),
            Position::ErrorEntry { id: logged.last().unwrap().id + 1 },
            FaultKind::Unreferenced,
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

/// A line whose Brass box also holds the `ADMIN` process, so that every command checkpoints the
/// audit trail, and three meters keyed on it.
async fn checkpointed() -> World {
    let w = world(ram_tempdir(), LINE).await;
    common::with_audit_box(&w).await;
    key_meters(&w, 1..=3).await.unwrap();
    w
}

/// Keys meters `PB7777-<n>` (VE and USPS) in one factory run.
async fn key_meters<S: postkey_archive::Store + Clone>(
    w: &World<S>,
    numbers: std::ops::RangeInclusive<u32>,
) -> Result<(), postkey_host::HostError> {
    common::key_meters_on(w, w.store.clone(), numbers).await.map(drop)
}

/// Rewrites event `seq` of `chain` (its note) and every event after it with hashes recomputed,
/// and the head: a history rewritten by someone who knows the hash but not the audit key.
fn rewrite(store: &SqliteStore, chain: &str, seq: u64) {
    use postkey_archive::{Digest, event_hash};
    let events = futures_events(store, chain);
    store.with_raw_connection(|c| {
        c.execute_batch("DROP TRIGGER IF EXISTS events_no_update").unwrap();
        let mut prev = events[seq as usize - 2].hash;
        let mut head = prev;
        for e in &events[seq as usize - 1..] {
            let mut entry = e.entry.clone();
            if e.seq == seq {
                entry.note = Some("rewritten".into());
            }
            let hash = event_hash(&e.chain, e.seq, &prev, &entry);
            c.execute(
                "UPDATE events SET note = ?1, prev_hash = ?2, hash = ?3 WHERE chain = ?4 AND seq = ?5",
                postkey_archive_sqlite::rusqlite::params![entry.note, prev.0.as_slice(), hash.0.as_slice(), chain, e.seq as i64],
            )
            .unwrap();
            (prev, head) = (hash, hash);
        }
        let _: Digest = head;
        c.execute("UPDATE chains SET head_hash = ?1 WHERE chain = ?2", postkey_archive_sqlite::rusqlite::params![head.0.as_slice(), chain])
            .unwrap();
    });
}

fn futures_events(store: &SqliteStore, chain: &str) -> Vec<postkey_archive::ChainEvent> {
    let rt = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        rt.block_on(async { store.chain_events(&d(chain), 0, 100_000).await.unwrap() })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_catch_a_rewritten_or_cut_history_and_an_older_archive_put_back() {
    let w = checkpointed().await;
    key_meters(&w, 10..=10).await.unwrap();
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    let usps = report.chains.iter().find(|c| c.chain == "USPS").unwrap();
    assert_eq!(usps.checkpoints, 2, "one per factory run: {usps:?}");
    let kept = w.store.latest_checkpoint(&d("USPS")).await.unwrap().unwrap();

    // A history rewritten with every hash recomputed: the chain verifies alone, not against
    // the checkpoint the audit key signed.
    let store = edited(&w, "rewritten", "SELECT 1").await;
    rewrite(&store, "USPS", 2);
    let fault = first_fault(&w, &store).await;
    assert_eq!(fault.kind, FaultKind::Checkpoint, "{fault}");
    assert!(
        matches!(fault.position, Position::Checkpoint { ref chain, .. } if chain == "USPS"),
        "{fault}"
    );

    // The tail cut cleanly (events, head) before the last checkpoint: the checkpoint says the
    // chain went further.
    let cut = kept.count - 1;
    let sql = format!(
        "DELETE FROM events WHERE chain = 'USPS' AND seq > {cut}; \
         UPDATE chains SET count = {cut}, head_hash = (SELECT hash FROM events WHERE chain = 'USPS' AND seq = {cut}) \
         WHERE chain = 'USPS'"
    );
    let store = edited(&w, "cut", &sql).await;
    let fault = first_fault(&w, &store).await;
    assert_eq!(fault.kind, FaultKind::Checkpoint, "{fault}");
    assert!(fault.detail.contains("the chain was cut"), "{fault}");

    // The newest checkpoints removed, so that a cut before them would pass: the ADMIN chain
    // recorded storing them.
    let newest = w.store.latest_checkpoint(&d("USPS")).await.unwrap().unwrap().number;
    let store = edited(
        &w,
        "newest-gone",
        "DELETE FROM checkpoints WHERE number = (SELECT max(number) FROM checkpoints c \
         WHERE c.chain = checkpoints.chain)",
    )
    .await;
    let report = postkey_audit::verify(&store, &w.trust.anchors).await.unwrap();
    assert!(
        report
            .faults
            .iter()
            .any(|f| f.position == Position::Checkpoint { chain: "USPS".into(), number: newest }
                && f.kind == FaultKind::Checkpoint),
        "{:?}",
        report.faults
    );

    // A checkpoint removed from the middle, or one's signature broken.
    let first_usps = w.store.checkpoints(&d("USPS"), 0, 10).await.unwrap();
    if first_usps.len() >= 2 {
        let store =
            edited(&w, "gone", "DELETE FROM checkpoints WHERE chain = 'USPS' AND number = 1").await;
        let fault = first_fault(&w, &store).await;
        assert_eq!(fault.kind, FaultKind::Checkpoint, "{fault}");
    }
    let store = edited(
        &w,
        "forged",
        &format!(
            "UPDATE checkpoints SET record = {} WHERE chain = 'USPS' AND number = 1",
            flip_last("record")
        ),
    )
    .await;
    let fault = first_fault(&w, &store).await;
    assert_eq!(
        (fault.position.clone(), fault.kind),
        (Position::Checkpoint { chain: "USPS".into(), number: 1 }, FaultKind::Checkpoint),
        "{fault}"
    );

    // An older copy of the whole archive put back: consistent on its own, but the audit box
    // signed further, so the next command that writes stops before it changes anything (3676),
    // and says so in the error log.
    let backup = w.dir.path().join("backup.db");
    w.store.with_raw_connection(|c| {
        c.execute(&format!("VACUUM INTO '{}'", backup.display()), []).unwrap();
    });
    key_meters(&w, 4..=5).await.unwrap();
    let live = w.home.archive_path();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
    }
    std::fs::copy(&backup, &live).unwrap();
    let restored = SqliteStore::open(&live).await.unwrap();
    let before = restored.chain_head(&d("USPS")).await.unwrap();
    let e = common::key_meters_on(&w, restored.clone(), 6..=6).await.unwrap_err();
    assert_eq!(e.response_code(), postkey_wire::ResponseCode::ARCHIVE_BEHIND_CHECKPOINT, "{e}");
    assert_eq!(restored.chain_head(&d("USPS")).await.unwrap(), before, "the refused run wrote");
    assert!(common::logged(&w.home, postkey_wire::ResponseCode::ARCHIVE_BEHIND_CHECKPOINT));
}

/// Runs `sql` on the archive file at `path` behind the store's back, its guards dropped first.
fn edit_export(path: &std::path::Path, sql: &str) {
    let c = postkey_archive_sqlite::rusqlite::Connection::open(path).unwrap();
    common::drop_guards(&c);
    c.execute_batch(sql).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_verified_with_the_anchors_alone_and_every_edit_of_it_is_found() {
    let w = checkpointed().await;
    log_refusals(&w).await;
    key_meters(&w, 10..=10).await.unwrap();
    let other = checkpointed().await;
    let anchors = w.media().join("trust-anchors.cbor");
    let path = w.dir.path().join("clean.export");
    let made = postkey_host::export_archive(&w.home, &path).await.unwrap();
    assert!(made.bytes > 0 && made.chains.iter().any(|(c, _)| c == "ERRORS"), "{made:?}");
    let report = postkey_host::audit_export(&path, &anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    assert_eq!(report.keys, 8);
    // An export is written once: never over a file.
    let again = postkey_host::export_archive(&w.home, &path).await.unwrap_err();
    assert_eq!(again.response_code(), postkey_wire::ResponseCode::INVALID_ARGUMENT, "{again}");
    // Another installation's anchors: the first fault is the installation.
    let foreign = other.media().join("trust-anchors.cbor");
    let report = postkey_host::audit_export(&path, &foreign).await.unwrap();
    assert_eq!(report.faults[0].position, Position::Installation);

    let usps = w.store.chain_head(&d("USPS")).await.unwrap().unwrap().count;
    let last = w.store.latest_checkpoint(&d("USPS")).await.unwrap().unwrap();
    let foreign_cp = other.store.latest_checkpoint(&d("USPS")).await.unwrap().unwrap();
    let cp_hex: String = foreign_cp.record.bytes.iter().map(|b| format!("{b:02X}")).collect();
    let cut_to = |n: u64| {
        format!(
            "DELETE FROM events WHERE chain = 'USPS' AND seq > {n}; \
             UPDATE chains SET count = {n}, head_hash = (SELECT hash FROM events \
             WHERE chain = 'USPS' AND seq = {n}) WHERE chain = 'USPS'"
        )
    };
    let cases: Vec<(&str, String, Option<FaultKind>)> = vec![
        ("one event altered", "UPDATE events SET time = time + 1 WHERE chain = 'VE' AND seq = 2".into(), Some(FaultKind::ChainLink)),
        ("one event removed", "DELETE FROM events WHERE chain = 'VE' AND seq = 3".into(), Some(FaultKind::ChainLink)),
        (
            "two events swapped",
            "UPDATE events SET seq = seq + 1000000 WHERE chain = 'VE' AND seq IN (2, 3); \
             UPDATE events SET seq = 1000005 - seq WHERE chain = 'VE' AND seq > 1000000"
                .into(),
            Some(FaultKind::ChainLink),
        ),
        ("the tail cut before the last checkpoint", cut_to(last.count - 1), Some(FaultKind::Checkpoint)),
        (
            "a checkpoint forged",
            format!("UPDATE checkpoints SET record = {} WHERE chain = 'USPS' AND number = 1", flip_last("record")),
            Some(FaultKind::Checkpoint),
        ),
        (
            "a checkpoint of another installation",
            format!("UPDATE checkpoints SET record = X'{cp_hex}' WHERE chain = 'USPS' AND number = 1"),
            Some(FaultKind::Checkpoint),
        ),
        ("an error-log entry deleted", "DELETE FROM error_log WHERE id = (SELECT max(id) FROM error_log WHERE seq IS NOT NULL)".into(), Some(FaultKind::Unreferenced)),
        (
            "a key's meter edited",
            "UPDATE keys SET meter_id = 'PB9999-000009' WHERE domain = 'USPS' AND key_id = 1".into(),
            Some(FaultKind::Field),
        ),
        // Documented (docs/audit.md): a tail cut cleanly after the last checkpoint leaves a
        // consistent export; the audit box finds it at the next command that writes.
        ("the tail cut after the last checkpoint", cut_to(usps.max(last.count)), None),
    ];
    for (n, (what, sql, kind)) in cases.into_iter().enumerate() {
        let path = w.dir.path().join(format!("case{n}.export"));
        postkey_host::export_archive(&w.home, &path).await.unwrap();
        edit_export(&path, &sql);
        let report = postkey_host::audit_export(&path, &anchors).await.unwrap();
        assert_eq!(report.faults.first().map(|f| f.kind), kind, "{what}: {:?}", report.faults);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_archive_refuses_every_writing_command_before_it_changes_anything() {
    let cases = [
        ("a history rewritten before the last checkpoint", None),
        (
            "a key removed",
            Some(
                "DELETE FROM records WHERE domain = 'VE' AND key_id = 2; DELETE FROM keys WHERE domain = 'VE' AND key_id = 2",
            ),
        ),
        (
            "the newest event removed, the head left",
            Some(
                "DELETE FROM events WHERE chain = 'VE' AND seq = (SELECT count FROM chains WHERE chain = 'VE')",
            ),
        ),
        (
            "a burned or allocated ID forgotten",
            Some("UPDATE domains SET next_key_id = next_key_id + 5 WHERE id = 'USPS'"),
        ),
    ];
    for (what, sql) in cases {
        let w = checkpointed().await;
        match sql {
            None => rewrite(&w.store, "USPS", 2),
            Some(sql) => w.store.with_raw_connection(|c| {
                for t in ["events_no_update", "events_no_delete", "records_no_delete"] {
                    c.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}")).unwrap();
                }
                c.execute_batch(sql).unwrap();
            }),
        }
        let heads = w.store.chain_heads().await.unwrap();
        // The factory stops before it settles, burns or installs anything.
        let e = key_meters(&w, 20..=20).await.unwrap_err();
        assert_eq!(e.response_code(), postkey_wire::ResponseCode::ARCHIVE_DAMAGED, "{what}: {e}");
        assert_eq!(w.store.chain_heads().await.unwrap(), heads, "{what}: the refused run wrote");
        // So does every ceremony that writes.
        let lock = w.lock();
        let e = postkey_host::Ceremonies::open(&lock, w.store.clone()).await.unwrap_err();
        assert_eq!(e.response_code(), postkey_wire::ResponseCode::ARCHIVE_DAMAGED, "{what}: {e}");
        assert!(common::logged(&w.home, postkey_wire::ResponseCode::ARCHIVE_DAMAGED), "{what}");
    }
}

/// The same edits on a PostgreSQL archive (its guards off for the session, as an attacker with
/// the database's superuser would): each is found. Runs where `POSTKEY_TEST_PG_URL` is set (CI
/// sets it; without a reachable server in CI it fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_is_found_on_postgresql_too() {
    let Some(url) = postkey_archive_postgres::testing::server_url("audit on PostgreSQL") else {
        return;
    };
    let cases: [(&str, &str, FaultKind); 5] = [
        (
            "a status set back",
            "UPDATE keys SET status = 'new' WHERE domain = 'VE' AND key_id = 1",
            FaultKind::Status,
        ),
        (
            "an event's note rewritten",
            "UPDATE events SET note = 'x' WHERE chain = 'VE' AND seq = 1",
            FaultKind::ChainLink,
        ),
        (
            "a record's bytes replaced",
            "UPDATE records SET bytes = bytes || '\\x00'::bytea WHERE domain = 'USPS' AND key_id = 2 AND record_type = 263",
            FaultKind::Digest,
        ),
        (
            "a checkpoint removed",
            "DELETE FROM checkpoints WHERE chain = 'USPS' AND number = 1",
            FaultKind::Checkpoint,
        ),
        (
            "an error-log entry deleted",
            "DELETE FROM error_log WHERE message = 'refusal 2'",
            FaultKind::Unreferenced,
        ),
    ];
    let unique = postkey_host::now().unix_micros();
    for (n, (what, sql, kind)) in cases.into_iter().enumerate() {
        let schema = format!("pk_test_audit_{unique}_{n}_{}", std::process::id());
        let config =
            postkey_host::PgConfig { schema: Some(schema), ..postkey_host::PgConfig::new(&url) };
        let store = postkey_archive_postgres::PgStore::connect(&config).await.unwrap();
        let w = common::world_on(tempfile::tempdir().unwrap(), store.clone(), LINE).await;
        common::with_audit_box(&w).await;
        key_meters(&w, 1..=2).await.unwrap();
        for m in 1..=3 {
            let entry = postkey_archive::ErrorLogEntry {
                time: postkey_host::now(),
                component: postkey_archive::Component::parse("kmc").unwrap(),
                response_code: postkey_wire::ResponseCode::KEY_ID_NOT_FRESH,
                message: format!("refusal {m}"),
                domain: None,
                meter_id: None,
                key_id: None,
                origin: None,
            };
            store.log_error(&entry).await.unwrap();
        }
        key_meters(&w, 3..=3).await.unwrap();
        let report = postkey_audit::verify(&store, &w.trust.anchors).await.unwrap();
        assert!(report.holds(), "{what}: before the edit: {:?}", report.faults);
        let client = store.raw_client().await.unwrap();
        client
            .batch_execute(&format!("SET session_replication_role = replica; {sql}"))
            .await
            .unwrap();
        drop(client);
        let report = postkey_audit::verify(&store, &w.trust.anchors).await.unwrap();
        assert_eq!(
            report.faults.first().map(|f| f.kind),
            Some(kind),
            "{what}: {:?}",
            report.faults
        );
        store.drop_schema().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxes_at_hand_show_an_older_archive_or_box_state_put_back() {
    use postkey_wire::BoxType;
    let w = world(ram_tempdir(), LINE).await;
    key_meters(&w, 1..=1).await.unwrap();
    let (oak, steel) = (w.made(BoxType::Oak), w.made(BoxType::Steel));
    let backup = w.dir.path().join("backup.db");
    w.store.with_raw_connection(|c| {
        c.execute(&format!("VACUUM INTO '{}'", backup.display()), []).unwrap();
    });
    let old_oak = std::fs::read(w.state_path(oak)).unwrap();
    let audit = |w: &World| {
        let (home, media) = (w.home.clone(), w.media());
        async move { postkey_host::audit_with_boxes(&home, &media, Wait::No).await.unwrap() }
    };
    let report = audit(&w).await;
    assert!(report.holds(), "{:?}", report.faults);
    let asked: Vec<_> =
        report.boxes.iter().map(|b| (b.box_id.clone(), b.version.is_some())).collect();
    assert_eq!(asked, [(oak.to_string(), true), (steel.to_string(), true)]);
    key_meters(&w, 2..=3).await.unwrap();

    // Without the shares, the boxes are listed as not at hand, and the archive's audit stands.
    let none = w.dir.path().join("no-shares");
    std::fs::create_dir(&none).unwrap();
    let report = postkey_host::audit_with_boxes(&w.home, &none, Wait::No).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    assert!(report.boxes.iter().all(|b| b.not_at_hand.is_some()), "{:?}", report.boxes);

    // Oak's state put back from before the last run: older than the archive recorded.
    let new_oak = std::fs::read(w.state_path(oak)).unwrap();
    std::fs::write(w.state_path(oak), &old_oak).unwrap();
    let report = audit(&w).await;
    let fault = &report.faults[0];
    assert_eq!(
        (&fault.position, fault.kind),
        (&Position::Box { box_id: oak.to_string(), domain: None }, FaultKind::BoxState),
        "{fault}"
    );
    // A state file that does not open (garbage, or another box's) is the box's fault, not a
    // box out of reach.
    std::fs::write(w.state_path(oak), b"not a sealed state").unwrap();
    let report = audit(&w).await;
    assert!(
        report
            .faults
            .iter()
            .any(|f| f.position == Position::Box { box_id: oak.to_string(), domain: None }
                && f.kind == FaultKind::BoxState),
        "{:?}",
        report.faults
    );
    std::fs::write(w.state_path(oak), &new_oak).unwrap();

    // The archive put back from before the last run: whole and consistent on its own, so only
    // the boxes, which have used key IDs it never allocated, show it.
    let live = w.home.archive_path();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
    }
    std::fs::copy(&backup, &live).unwrap();
    let report = audit(&w).await;
    let fault = &report.faults[0];
    assert_eq!(
        (&fault.position, fault.kind),
        (
            &Position::Box { box_id: oak.to_string(), domain: Some("USPS".into()) },
            FaultKind::BoxState
        ),
        "{fault}"
    );
    assert!(
        report.faults.iter().any(|f| f.position
            == Position::Box { box_id: steel.to_string(), domain: Some("VE".into()) }),
        "{:?}",
        report.faults
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_checkpoints_every_interval_of_keys() {
    let w = checkpointed().await;
    let numbered = |w: &World| {
        let store = w.store.clone();
        async move { store.latest_checkpoint(&d("USPS")).await.unwrap().unwrap().number }
    };
    // Three meters, one per batch (two keys), a checkpoint every two keys: after each of the
    // first two batches, and at the end.
    let before = numbered(&w).await;
    common::key_meters_with(&w, w.store.clone(), 4..=6, 1, 2).await.unwrap();
    assert_eq!(numbered(&w).await, before + 3);
    // The default interval: only at the end.
    let before = numbered(&w).await;
    common::key_meters_with(&w, w.store.clone(), 7..=9, 1, postkey_host::DEFAULT_CHECKPOINT_EVERY)
        .await
        .unwrap();
    assert_eq!(numbered(&w).await, before + 1);
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_beside_a_factory_run_finds_no_fault_in_what_the_run_is_making() {
    let w = checkpointed().await;
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let mut line = Vec::new();
    for n in 100..160 {
        let id = MeterId::parse(&format!("PB7777-{n:06}")).unwrap();
        postkey_host::new_meter(&lock, &id).unwrap();
        line.push((id, d("USPS")));
    }
    drop(lock);
    let (home, media) = (w.home.clone(), w.media());
    let run = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let lock = home.lock(Access::Shared, Wait::No).unwrap();
            let mut f =
                postkey_host::Factory::open(&lock, &media, &[d("VE"), d("USPS")]).await.unwrap();
            f.install_many(&line, &d("VE"), 1, |_| {}).await.unwrap();
            f.close();
        });
    });
    let mut audits = 0;
    while !run.is_finished() {
        let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
        assert!(report.holds(), "audit {audits} beside the run: {:?}", report.faults);
        audits += 1;
    }
    run.join().unwrap();
    let report = postkey_audit::verify(&w.store, &w.trust.anchors).await.unwrap();
    assert!(report.holds(), "{:?}", report.faults);
    assert!(audits > 0);
}
