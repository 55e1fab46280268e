//! The KMS computer on its own (protocol §6.1): the installation pipeline driven against the box
//! double of `postkey_kmc::testing` and a real SQLite archive. Each rule of the pipeline has a
//! test here: batches reach each box in key-ID order, one refused item never fails the others,
//! every failure after generation makes its key `Bad`, refused IDs are burned and retried,
//! answers that do not verify are never accepted (every byte of a record flipped), recovery
//! after a restart, and the state-version check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use postkey_archive::{ChainEvent, KeyFilter, KeyStatus, NewKey, SignedRecord, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_kmc::testing::{FakeBoxes, Fixture, Script, Target, fixed_now};
use postkey_kmc::{
    Boxes, InstallConfig, KeyOrder, KeyOutcome, KeyRole, Kmc, KmcError, LineBoxes, OrderResult,
    Settled,
};
use postkey_wire::command::{Answered, Command};
use postkey_wire::{
    BoxId, BoxType, CommandCode, Context, DomainId, KeyId, Message, MeterId, NewKeyRecord, Nonce,
    RecordType, Refusal, ResponseCode, Sender, Timestamp, sign,
};

struct World {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    boxes: FakeBoxes,
}

async fn world(script: Script) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("archive.db")).await.unwrap();
    let fixture = Fixture::new();
    fixture.register(&store).await.unwrap();
    World { _dir: dir, store, boxes: FakeBoxes::new(fixture, script) }
}

fn kmc(w: &World) -> Kmc<SqliteStore> {
    kmc_with(w, InstallConfig::default())
}

fn kmc_with(w: &World, config: InstallConfig) -> Kmc<SqliteStore> {
    use postkey_crypto::Signer as _;
    let f = w.boxes.fixture();
    Kmc::new(w.store.clone(), f.domain_key_set.verifying_key(), f.installation, config)
}

fn d(s: &str) -> DomainId {
    DomainId::parse(s).unwrap()
}

fn meter(n: u32) -> MeterId {
    MeterId::parse(&format!("PB1234-{n:06}")).unwrap()
}

fn order(w: &World, domain: &str, n: u32) -> KeyOrder {
    let f = w.boxes.fixture();
    let role = if domain == "VE" { KeyRole::Vendor } else { KeyRole::Postal };
    KeyOrder {
        domain: d(domain),
        oak: f.oak,
        steel: f.steel,
        brass: f.brass,
        meter: meter(n),
        role,
    }
}

/// A clock that moves one microsecond per reading.
fn clock() -> impl Fn() -> Timestamp + Sync {
    let t = std::sync::atomic::AtomicU64::new(fixed_now().unix_micros());
    move || Timestamp::from_unix_micros(t.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

async fn status(w: &World, domain: &str, key: u64) -> KeyStatus {
    w.store.key(&d(domain), KeyId::new(key).unwrap()).await.unwrap().unwrap().status
}

fn installed(r: &OrderResult) -> Option<u64> {
    match r {
        Ok(KeyOutcome::Installed { key_id, .. }) => Some(key_id.get()),
        _ => None,
    }
}

fn bad(r: &OrderResult) -> Option<u64> {
    match r {
        Ok(KeyOutcome::Bad { key_id, .. }) => Some(key_id.get()),
        _ => None,
    }
}

#[tokio::test]
async fn batches_reach_every_box_in_key_id_order_and_every_key_is_installed() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let batches: Vec<Vec<KeyOrder>> = (0..4u32)
        .map(|b| {
            (0..5u32)
                .flat_map(|i| [order(&w, "VE", b * 5 + i), order(&w, "USPS", b * 5 + i)])
                .collect()
        })
        .collect();
    let mut results = Vec::new();
    k.install_batches(&w.boxes, batches.into_iter(), |r| results.push(r), clock()).await.unwrap();
    assert_eq!(results.len(), 4);
    let all: Vec<&OrderResult> = results.iter().flatten().collect();
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|r| installed(r).is_some()), "{all:?}");
    // Each box saw each domain's key IDs strictly increasing, across all batches.
    let f = w.boxes.fixture();
    for (to, command) in [
        (f.oak, CommandCode::GENERATE_KEY),
        (f.steel, CommandCode::INSTALL_KEY),
        (f.brass, CommandCode::CHECK_INSTALL),
    ] {
        let mut last: BTreeMap<DomainId, u64> = BTreeMap::new();
        let sent: Vec<_> =
            w.boxes.sent().into_iter().filter(|s| s.to == to && s.command == command).collect();
        assert!(!sent.is_empty(), "{command:?} was sent");
        for (domain, key) in sent.iter().flat_map(|s| s.keys.iter().flatten()) {
            let prev = last.insert(domain.clone(), *key).unwrap_or(0);
            assert!(*key > prev, "{to}: {domain} key {key} after {prev}");
        }
        assert_eq!(last.len(), 2, "{command:?} saw both domains");
    }
    // And the archive agrees.
    for domain in ["VE", "USPS"] {
        let keys = w.store.keys(&KeyFilter::domain(d(domain), 100)).await.unwrap();
        assert_eq!(keys.len(), 20);
        assert!(keys.iter().all(|k| k.status == KeyStatus::Installed && k.meter_id.is_some()));
    }
}

#[tokio::test]
async fn one_refused_item_fails_no_other_and_every_failure_after_generation_is_bad() {
    // USPS keys 1..=8, one per meter: ID 2 refused by Oak for another reason than freshness, 3
    // refused by Steel, 4 aborted by Steel, 5 misnamed by Steel, 6 BAD at Brass, 7 refused by
    // Brass. Keys 1 and 8 are installed.
    let script = Script {
        oak_refuses: BTreeMap::from([(2, ResponseCode::RNG_FAILURE)]),
        steel_refuses: [3].into(),
        steel_aborts: [4].into(),
        steel_misnames: [5].into(),
        brass_bad: [6].into(),
        brass_refuses: [7].into(),
        ..Script::default()
    };
    let w = world(script).await;
    let k = kmc(&w);
    let orders: Vec<KeyOrder> = (1..=8).map(|n| order(&w, "USPS", n)).collect();
    let results = k.install_keys(&w.boxes, orders, clock()).await.unwrap();
    assert_eq!(results.len(), 8);
    // Order 2's ID was refused by Oak: never a key, burned, the order fails on its own.
    match &results[1] {
        Err(KmcError::Refused(r)) => assert_eq!(r.refusal.code, ResponseCode::RNG_FAILURE),
        other => panic!("{other:?}"),
    }
    let burned = w.store.burned_key_ids(&d("USPS")).await.unwrap();
    assert_eq!(burned.iter().map(|b| b.key_id.get()).collect::<Vec<_>>(), vec![2]);
    assert!(w.store.key(&d("USPS"), KeyId::new(2).unwrap()).await.unwrap().is_none());
    // Every failure after generation: Bad with a reason, in the archive too.
    for (place, key) in [(2, 3), (3, 4), (5, 6), (6, 7)] {
        assert_eq!(bad(&results[place]), Some(key), "order {place}: {:?}", results[place]);
        assert_eq!(status(&w, "USPS", key).await, KeyStatus::Bad, "key {key}");
    }
    // A misnamed MI7 is an answer the KMC rejects: the order's error, and its key Bad.
    assert!(matches!(results[4], Err(KmcError::WrongAnswer { .. })), "{:?}", results[4]);
    assert_eq!(status(&w, "USPS", 5).await, KeyStatus::Bad);
    // The others are installed.
    assert_eq!(installed(&results[0]), Some(1));
    assert_eq!(installed(&results[7]), Some(8));
    assert_eq!(status(&w, "USPS", 8).await, KeyStatus::Installed);
    // An aborted key's history: created New, then Bad with Steel's signed ABORTED.
    let history = w.store.key_history(&d("USPS"), KeyId::new(4).unwrap()).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
}

#[tokio::test]
async fn ids_oak_refuses_as_not_fresh_are_burned_and_the_order_retried() {
    // Oak has processed USPS keys up to 2 (driven by another KMC, or the archive was restored):
    // IDs 1 and 2 are refused, burned, and the order succeeds with key 3.
    let w = world(Script { oak_last_seen: 2, ..Script::default() }).await;
    let k = kmc(&w);
    let results = k.install_keys(&w.boxes, vec![order(&w, "USPS", 1)], clock()).await.unwrap();
    assert_eq!(installed(&results[0]), Some(3), "{results:?}");
    let burned = w.store.burned_key_ids(&d("USPS")).await.unwrap();
    assert_eq!(burned.iter().map(|b| b.key_id.get()).collect::<Vec<_>>(), vec![1, 2]);
    let oak_saw: Vec<u64> = w
        .boxes
        .sent()
        .iter()
        .filter(|s| s.command == CommandCode::GENERATE_KEY)
        .flat_map(|s| s.keys.iter().flatten().map(|(_, k)| *k))
        .collect();
    assert_eq!(oak_saw, vec![1, 2, 3]);
}

#[tokio::test]
async fn more_refused_ids_in_a_row_than_allowed_fail_the_order() {
    let w = world(Script { oak_last_seen: 10, ..Script::default() }).await;
    let config = InstallConfig { max_burned_in_a_row: 3 };
    let k = kmc_with(&w, config);
    let results = k.install_keys(&w.boxes, vec![order(&w, "VE", 1)], clock()).await.unwrap();
    match &results[0] {
        Err(e @ KmcError::KeyIdsRefused(_, 3)) => {
            assert_eq!(e.response_code(), ResponseCode::KEY_ID_NOT_FRESH)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.store.burned_key_ids(&d("VE")).await.unwrap().len(), 3);
    assert!(w.store.keys(&KeyFilter::domain(d("VE"), 10)).await.unwrap().is_empty());
}

/// The length of the record `target` of an installation the double completes.
async fn record_len(target: Target) -> usize {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    k.install_keys(&w.boxes, vec![order(&w, "USPS", 1)], clock()).await.unwrap();
    let records = w.store.records(&d("USPS"), KeyId::new(1).unwrap()).await.unwrap();
    let rt = match target {
        Target::Mi3 => RecordType::MI3,
        Target::Mi4 => RecordType::MI4,
        Target::Mi7 => RecordType::MI7,
        Target::Mi9 => RecordType::MI9,
    };
    let len = records.iter().find(|r| r.record.record_type == rt).map(|r| r.record.bytes.len());
    len.unwrap_or_else(|| panic!("{target:?} is not archived: {records:?}"))
}

#[tokio::test]
async fn every_flipped_byte_of_mi3_mi7_or_mi9_is_rejected() {
    for (target, created) in [(Target::Mi3, false), (Target::Mi7, true), (Target::Mi9, true)] {
        let len = record_len(target).await;
        assert!(len > 100, "{target:?}: {len} bytes");
        // One order per byte: key i's record has byte i - 1 flipped.
        let flips = (1..=len as u64).map(|key| (key, (target, key as usize - 1))).collect();
        let w = world(Script { flips, ..Script::default() }).await;
        let k = kmc(&w);
        let orders: Vec<KeyOrder> = (1..=len as u32).map(|n| order(&w, "USPS", n)).collect();
        let results = k.install_keys(&w.boxes, orders, clock()).await.unwrap();
        assert_eq!(results.len(), len);
        for (i, r) in results.iter().enumerate() {
            assert!(installed(r).is_none(), "{target:?} byte {i} was accepted: {r:?}");
        }
        let keys = w.store.keys(&KeyFilter::domain(d("USPS"), len as u32 + 10)).await.unwrap();
        if created {
            // The key existed (its MI3 was good): each is Bad.
            assert_eq!(keys.len(), len, "{target:?}");
            assert!(keys.iter().all(|k| k.status == KeyStatus::Bad), "{target:?}");
        } else {
            // MI3 never verified: no key, every ID burned; a signature that fails is an alarm
            // (bytes that do not decode are refused at the link, as a refusal).
            assert!(keys.is_empty(), "{target:?}");
            let burned = w.store.burned_key_ids(&d("USPS")).await.unwrap();
            assert_eq!(burned.len(), len);
            let forged: Vec<_> =
                burned.iter().filter(|b| b.reason.contains("code 3100]")).collect();
            assert!(forged.len() > len / 2, "{} of {len}", forged.len());
            assert!(forged.iter().all(|b| b.reason.starts_with("alarm: ")), "{:?}", forged[0]);
        }
    }
}

#[tokio::test]
async fn a_box_that_refuses_a_whole_batch_fails_its_keys_only() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let brass = w.boxes.fixture().brass;
    w.boxes.script(|s| {
        s.down.insert(brass);
    });
    let results = k
        .install_keys(&w.boxes, vec![order(&w, "VE", 1), order(&w, "USPS", 1)], clock())
        .await
        .unwrap();
    for r in &results {
        assert!(bad(r).is_some(), "{r:?}");
    }
    assert_eq!(status(&w, "VE", 1).await, KeyStatus::Bad);
    // Brass back up: the next order installs.
    w.boxes.script(|s| s.down.clear());
    let results = k.install_keys(&w.boxes, vec![order(&w, "VE", 2)], clock()).await.unwrap();
    assert_eq!(installed(&results[0]), Some(2));
}

/// An MI3 the fixture's Oak key signs, as the double's Oak would answer it.
fn mi3(w: &World, domain: &str, key: KeyId) -> SignedRecord {
    let f = w.boxes.fixture();
    let c = Context {
        domain: d(domain),
        sender: Sender::Box(f.oak),
        meter_id: None,
        key_id: Some(key),
        state_version: None,
        timestamp: fixed_now(),
    };
    let body = NewKeyRecord {
        oak: f.oak,
        steel: f.steel,
        sealed: postkey_crypto::HpkeCiphertext::from_parts([3; 32], vec![3; 48]).unwrap(),
    };
    SignedRecord::from_verified(&sign(Message::new(c, body), &f.domains[&d(domain)].oak))
}

/// A key left `New` for Steel box `steel` by a KMC stopped between MI3's commit and MI4, made
/// as it would have.
async fn left_new(w: &World, domain: &str, steel: BoxId) -> KeyId {
    let f = w.boxes.fixture();
    let key = w.store.allocate_key_id(&d(domain)).await.unwrap();
    let new = NewKey {
        domain: d(domain),
        key_id: key,
        oak_id: f.oak,
        steel_id: steel,
        meter_id: meter(1),
        kms_request_time: fixed_now(),
        time: fixed_now(),
        actor: Sender::Box(f.oak),
        record: mi3(w, domain, key),
    };
    w.store.create_key(&new).await.unwrap();
    key
}

/// Lets everything through until the KMC sends `code`, which never returns: the KMC stops
/// there. `reached` is told.
struct HangAt<'a> {
    inner: &'a FakeBoxes,
    code: CommandCode,
    reached: tokio::sync::Notify,
}

impl Boxes for HangAt<'_> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        if command.code() == self.code {
            self.reached.notify_one();
            return std::future::pending().await;
        }
        self.inner.send(id, command).await
    }
}

#[tokio::test]
async fn settling_a_line_ends_every_key_a_stopped_run_left_installed_or_bad() {
    let w = world(Script::default()).await;
    let f = w.boxes.fixture();
    let line = LineBoxes { oak: f.oak, steel: f.steel, brass: f.brass };
    // A run stops while Oak generates: its two IDs are reserved and never became keys.
    let first = kmc(&w);
    let hang = HangAt {
        inner: &w.boxes,
        code: CommandCode::GENERATE_KEY,
        reached: tokio::sync::Notify::new(),
    };
    let orders = vec![order(&w, "USPS", 1), order(&w, "USPS", 2)];
    tokio::select! {
        result = first.install_keys(&hang, orders, clock()) => {
            panic!("the run should stop at Oak: {result:?}")
        }
        () = hang.reached.notified() => {}
    }
    assert_eq!(w.store.reservations(f.oak).await.unwrap().len(), 1);
    // A run stops before Brass answers: its key has MI7 archived and no MI9.
    let hang = HangAt {
        inner: &w.boxes,
        code: CommandCode::CHECK_INSTALL,
        reached: tokio::sync::Notify::new(),
    };
    tokio::select! {
        result = first.install_keys(&hang, vec![order(&w, "USPS", 1)], clock()) => {
            panic!("the run should stop at Brass: {result:?}")
        }
        () = hang.reached.notified() => {}
    }
    drop(first);
    let filter = KeyFilter { status: Some(KeyStatus::New), ..KeyFilter::domain(d("USPS"), 10) };
    let at_brass = w.store.keys(&filter).await.unwrap();
    assert_eq!(at_brass.len(), 1);
    assert!(at_brass[0].times.psr_install.is_some(), "its MI7 is archived");
    let at_brass = at_brass[0].key_id;
    let left = w.store.reservations(f.oak).await.unwrap();
    assert_eq!(left.len(), 1, "the run that passed Oak released its IDs: {left:?}");
    // Two more left New on this line: one in flight at Steel (Steel answers ABORTED for it), one
    // that never left the KMC; and one of another Steel box, not this line's to settle.
    let interrupted = left_new(&w, "USPS", f.steel).await;
    let stale = left_new(&w, "USPS", f.steel).await;
    let elsewhere = left_new(&w, "USPS", BoxId::new(BoxType::Steel, 99).unwrap()).await;
    w.boxes.script(|s| s.interrupted = vec![(d("USPS"), interrupted.get())]);
    let restarted = kmc(&w);
    let settled = restarted.settle_line(&w.boxes, line, clock()).await.unwrap();
    assert_eq!(settled.aborted, vec![(d("USPS"), interrupted)]);
    assert_eq!(settled.rechecked, vec![(d("USPS"), at_brass)]);
    assert_eq!(settled.never_installed, vec![(d("USPS"), stale)]);
    let reserved = [KeyId::new(1).unwrap(), KeyId::new(2).unwrap()];
    assert_eq!(settled.burned, reserved.map(|k| (d("USPS"), k)).to_vec());
    let burned: Vec<KeyId> =
        w.store.burned_key_ids(&d("USPS")).await.unwrap().into_iter().map(|b| b.key_id).collect();
    assert_eq!(burned, reserved);
    assert!(w.store.reservations(f.oak).await.unwrap().is_empty());
    assert_eq!(status(&w, "USPS", at_brass.get()).await, KeyStatus::Installed);
    assert_eq!(status(&w, "USPS", interrupted.get()).await, KeyStatus::Bad);
    assert_eq!(status(&w, "USPS", stale.get()).await, KeyStatus::Bad);
    assert_eq!(status(&w, "USPS", elsewhere.get()).await, KeyStatus::New);
    // Each Bad key keeps its cause: Steel's signed ABORTED, or the KMC's reason.
    let records = w.store.records(&d("USPS"), interrupted).await.unwrap();
    assert!(records.iter().any(|r| r.record.record_type == RecordType::ABORTED), "{records:?}");
    let events = w.store.key_history(&d("USPS"), stale).await.unwrap();
    let noted = |e: &ChainEvent| e.entry.note.as_deref().is_some_and(|n| n.contains("before MI4"));
    assert!(events.iter().any(noted), "{events:?}");
    // Settling again finds nothing left.
    let again = restarted.settle_line(&w.boxes, line, clock()).await.unwrap();
    assert_eq!(again, Settled::default());
}

#[tokio::test]
async fn the_state_version_check_refuses_a_rollback_and_a_wrong_nonce() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let oak: BoxId = w.boxes.fixture().oak;
    w.boxes.script(|s| {
        s.versions.insert(oak, 5);
    });
    assert_eq!(k.check_box(&w.boxes, oak, Nonce([1; 32])).await.unwrap().0, 5);
    // The same version again is fine; a lower one is a restored state.
    assert_eq!(k.check_box(&w.boxes, oak, Nonce([2; 32])).await.unwrap().0, 5);
    w.boxes.script(|s| {
        s.versions.insert(oak, 4);
    });
    let err = k.check_box(&w.boxes, oak, Nonce([3; 32])).await.unwrap_err();
    assert!(matches!(err, KmcError::Rollback { recorded: 5, presented: 4, .. }), "{err}");
    assert_eq!(err.response_code(), ResponseCode::STATE_ROLLBACK);
    // An attestation over another nonce is a replay.
    w.boxes.script(|s| {
        s.versions.insert(oak, 6);
        s.wrong_nonce = true;
    });
    let err = k.check_box(&w.boxes, oak, Nonce([4; 32])).await.unwrap_err();
    assert!(matches!(err, KmcError::WrongAnswer { .. }), "{err}");
    // A box that refuses is refused.
    w.boxes.script(|s| {
        s.wrong_nonce = false;
        s.down.insert(oak);
    });
    let err = k.check_box(&w.boxes, oak, Nonce([5; 32])).await.unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::BOX_LOCKED);
}

#[tokio::test]
async fn a_box_of_another_installation_is_refused() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let oak: BoxId = w.boxes.fixture().oak;
    w.boxes.script(|s| s.installation = Some(postkey_wire::InstallationId([0x2b; 16])));
    let err = k.check_box(&w.boxes, oak, Nonce([1; 32])).await.unwrap_err();
    assert!(matches!(err, KmcError::InstallationMismatch { .. }), "{err}");
    assert_eq!(err.response_code(), ResponseCode::INSTALLATION_MISMATCH);
    // Nothing was recorded of it.
    assert_eq!(w.store.highest_state_version(oak).await.unwrap().0, 0);
}

#[tokio::test]
async fn every_stage_records_the_versions_its_boxes_answered() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let orders = (1..=3).map(|n| order(&w, "VE", n)).collect();
    let results = k.install_keys(&w.boxes, orders, clock()).await.unwrap();
    assert!(results.iter().all(|r| installed(r).is_some()), "{results:?}");
    // The archive holds the version each box answered with its last reply, in the same
    // transaction as the records that reply made.
    let f = w.boxes.fixture();
    for b in [f.oak, f.steel, f.brass] {
        let mut answered = 0;
        w.boxes.script(|s| answered = s.versions.get(&b).copied().unwrap_or(0));
        assert!(answered > 0, "{b} answered no command");
        assert_eq!(w.store.highest_state_version(b).await.unwrap().0, answered, "{b}");
    }
}

#[tokio::test]
async fn an_order_for_a_domain_without_a_bundle_fails_alone() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let mut nope = order(&w, "VE", 1);
    nope.domain = d("NOPE");
    let results = k.install_keys(&w.boxes, vec![nope, order(&w, "VE", 2)], clock()).await.unwrap();
    assert!(matches!(results[0], Err(KmcError::NoBundle(_))), "{:?}", results[0]);
    assert_eq!(results[0].as_ref().unwrap_err().response_code(), ResponseCode::UNKNOWN_DOMAIN);
    assert_eq!(installed(&results[1]), Some(1));
}

#[tokio::test]
async fn roles_are_checked_before_any_key_id_is_allocated() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let next = |domain: &'static str| {
        let store = w.store.clone();
        async move { store.domain(&d(domain)).await.unwrap().unwrap().next_key_id.get() }
    };
    // A vendor key from a postal domain, a postal key from a vendor domain, and two postal keys
    // for meter 3 in one batch.
    let mut wrong_vendor = order(&w, "USPS", 1);
    wrong_vendor.role = KeyRole::Vendor;
    let mut wrong_postal = order(&w, "VE", 2);
    wrong_postal.role = KeyRole::Postal;
    let orders = vec![wrong_vendor, wrong_postal, order(&w, "USPS", 3), order(&w, "USPS", 3)];
    let results = k.install_keys(&w.boxes, orders, clock()).await.unwrap();
    assert!(matches!(&results[0], Err(KmcError::WrongRole { role: "vendor", .. })), "{results:?}");
    assert!(matches!(&results[1], Err(KmcError::WrongRole { role: "postal", .. })), "{results:?}");
    assert_eq!(installed(&results[2]), Some(1));
    assert!(matches!(&results[3], Err(KmcError::MeterHoldsKey { .. })), "{results:?}");
    let code = |r: &OrderResult| r.as_ref().unwrap_err().response_code();
    assert_eq!(code(&results[0]), ResponseCode::INVALID_ARGUMENT);
    assert_eq!(code(&results[3]), ResponseCode::METER_HOLDS_KEY);
    // The refused orders got no key ID.
    assert_eq!((next("USPS").await, next("VE").await), (2, 1));
    // Meter 3 has its postal key: another is refused in a later batch too; its vendor role is
    // free.
    let again =
        k.install_keys(&w.boxes, vec![order(&w, "USPS", 3), order(&w, "VE", 3)], clock()).await;
    let again = again.unwrap();
    assert!(matches!(&again[0], Err(KmcError::MeterHoldsKey { .. })), "{again:?}");
    assert_eq!(installed(&again[1]), Some(1));
    assert_eq!(next("USPS").await, 2);
    // A key that became Bad frees its role: meter 4's key fails at Steel; a replacement goes in.
    let steel = w.boxes.fixture().steel;
    w.boxes.script(|s| {
        s.down.insert(steel);
    });
    let failed = k.install_keys(&w.boxes, vec![order(&w, "USPS", 4)], clock()).await.unwrap();
    assert_eq!(bad(&failed[0]), Some(2));
    w.boxes.script(|s| s.down.clear());
    let replaced = k.install_keys(&w.boxes, vec![order(&w, "USPS", 4)], clock()).await.unwrap();
    assert_eq!(installed(&replaced[0]), Some(3));
}

/// Lets everything through, but before Brass is asked, another writer makes key `meddled` of
/// USPS `Bad` in the archive: the KMC's `New → Installed` for it is then refused.
struct Meddle<'a> {
    inner: &'a FakeBoxes,
    store: SqliteStore,
    meddled: KeyId,
}

impl Boxes for Meddle<'_> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        if command.code() == CommandCode::CHECK_INSTALL {
            let t = postkey_archive::Transition {
                domain: d("USPS"),
                key_id: self.meddled,
                from: KeyStatus::New,
                to: KeyStatus::Bad,
                time: Timestamp::from_unix_micros(fixed_now().unix_micros() + 1_000_000),
                actor: Sender::Role(postkey_wire::Role::Kmc),
                cause: postkey_archive::Cause::Reason("another writer".into()),
                fields: postkey_archive::KeyFields::default(),
            };
            self.store.transition(&t).await.unwrap();
        }
        self.inner.send(id, command).await
    }
}

#[tokio::test]
async fn a_key_the_archive_refuses_fails_alone_and_the_rest_of_its_batch_goes_on() {
    let w = world(Script::default()).await;
    let k = kmc(&w);
    let meddle =
        Meddle { inner: &w.boxes, store: w.store.clone(), meddled: KeyId::new(2).unwrap() };
    let orders = (1..=3).map(|n| order(&w, "USPS", n)).collect();
    let results = k.install_keys(&meddle, orders, clock()).await.unwrap();
    assert_eq!(installed(&results[0]), Some(1));
    assert!(matches!(&results[1], Err(KmcError::Store(_))), "{results:?}");
    assert_eq!(installed(&results[2]), Some(3));
    assert_eq!(status(&w, "USPS", 1).await, KeyStatus::Installed);
    assert_eq!(status(&w, "USPS", 2).await, KeyStatus::Bad);
    assert_eq!(status(&w, "USPS", 3).await, KeyStatus::Installed);
}
