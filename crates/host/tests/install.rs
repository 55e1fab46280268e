//! Key installation end to end on the embedded default: hosted boxes, the KMC, the SQLite
//! archive and simulated meters; with the attack and fault cases that need all of them.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Mutex;

use postkey_archive::{KeyFilter, KeyStatus, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_host::{EmbeddedBoxes, Home, MeterLinks, Session, SharePolicy};
use postkey_kmc::{Boxes, InstallConfig, KeyOrder, KeyOutcome, Kmc, KmcError};
use postkey_meter::{Meter, SimulatedMeter};
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_wire::command::{
    Checked, Command, Confirmed, Generated, InstallEnded, Response, reply_from_bytes,
    reply_to_bytes,
};
use postkey_wire::{
    Body, BoxId, BoxType, CommandCode, DomainId, DomainKind, KeyId, Message, MeterId, Nonce,
    Refusal, ResponseCode, SubdomainId, Unverified,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct World {
    _dir: tempfile::TempDir,
    home: Home,
    store: SqliteStore,
    kmc_dks: postkey_crypto::VerifyingKey,
    oak: BoxId,
    steel: BoxId,
    brass: BoxId,
}

fn d(s: &str) -> DomainId {
    DomainId::parse(s).unwrap()
}

/// A home with VE and USPS, one Oak, Steel and Brass box with both domains, all registered in a
/// SQLite archive.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    postkey_host::init(&home, &home.media_dir()).unwrap();
    let m = BoxId::FIRST_MANUFACTURING;
    let mut s = Session::new(&home).unwrap();
    s.enable(m, &home.media_dir()).unwrap();
    postkey_host::create_domain(
        &mut s,
        m,
        d("VE"),
        DomainKind::Vendor,
        vec![SubdomainId::parse("VE/US").unwrap()],
    )
    .unwrap();
    postkey_host::create_domain(
        &mut s,
        m,
        d("USPS"),
        DomainKind::Postal,
        vec![SubdomainId::parse("USPS/US").unwrap()],
    )
    .unwrap();
    let mut ids = Vec::new();
    for t in [BoxType::Oak, BoxType::Steel, BoxType::Brass] {
        let r = postkey_host::manufacture(
            &mut s,
            m,
            t,
            &home.media_dir(),
            SharePolicy::default_for(t),
            None,
        )
        .unwrap();
        assert_eq!(r.box_type, t);
        let b = r.id;
        for domain in ["VE", "USPS"] {
            let subs = if t == BoxType::Brass {
                vec![SubdomainId::parse(&format!("{domain}/US")).unwrap()]
            } else {
                vec![]
            };
            postkey_host::install_process(&mut s, m, b, &d(domain), subs).unwrap();
        }
        ids.push(b);
    }
    s.lock();
    let store = SqliteStore::open(dir.path().join("archive.db")).await.unwrap();
    postkey_host::register_in_archive(&home, &store).await.unwrap();
    let kmc_dks = home.domain_key_set_key().unwrap();
    World { home, store, kmc_dks, oak: ids[0], steel: ids[1], brass: ids[2], _dir: dir }
}

fn meter(n: u32) -> (MeterId, SimulatedMeter) {
    let id = MeterId::parse(&format!("PB1234-{n:06}")).unwrap();
    let mut rng =
        BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(u64::from(n))), b"meter")
            .unwrap();
    (id.clone(), SimulatedMeter::new(Meter::manufacture(id, &mut rng).unwrap()))
}

/// Records the exact frames that cross the KMC's box links, both ways: each command as a box link
/// encodes it, and each reply.
struct Tap<'a, B> {
    inner: &'a B,
    frames: Mutex<Vec<Vec<u8>>>,
}

impl<B: Boxes> Boxes for Tap<'_, B> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Response, Refusal> {
        let code = command.code();
        self.frames.lock().unwrap().push(command.to_bytes());
        let reply = self.inner.send(id, command).await;
        self.frames.lock().unwrap().push(reply_to_bytes(code, &reply));
        reply
    }
}

/// MI1 for key `key_id` of `domain`, naming the world's Steel box, as the KMC makes it.
async fn mi1(w: &World, domain: &str, key_id: KeyId) -> Message<postkey_wire::GenerateKey> {
    postkey_wire::Message::new(
        postkey_wire::Context {
            domain: d(domain),
            sender: postkey_wire::Sender::Role(postkey_wire::Role::Kmc),
            meter_id: None,
            key_id: Some(key_id),
            state_version: None,
            timestamp: postkey_host::now(),
        },
        postkey_wire::GenerateKey {
            steel_certificate: w
                .store
                .box_record(w.steel)
                .await
                .unwrap()
                .unwrap()
                .certificate
                .bytes,
            steel_process: w
                .store
                .domain_processes(w.steel)
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.domain == d(domain))
                .unwrap()
                .record
                .bytes,
        },
    )
}

/// The spooled error-log entries of `component` with `code`.
fn logged(home: &Home, component: BoxId, code: ResponseCode) -> usize {
    home.spooled_errors()
        .unwrap()
        .iter()
        .filter(|e| e.component == component.to_string() && e.code == code.0)
        .count()
}

fn enable_all(w: &World) -> Session {
    let mut s = Session::new(&w.home).unwrap();
    for b in [w.oak, w.steel, w.brass] {
        s.enable(b, &w.home.media_dir()).unwrap();
    }
    s
}

fn order(w: &World, domain: &str, meter: &MeterId) -> KeyOrder {
    KeyOrder { domain: d(domain), oak: w.oak, steel: w.steel, brass: w.brass, meter: meter.clone() }
}

#[tokio::test]
async fn a_meter_gets_a_vendor_and_a_postal_key_and_no_plaintext_key_crosses_the_kmc() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let mut meters = MeterLinks::default();
    let (meter_id, sim) = meter(1);
    meters.connect(meter_id.clone(), Box::new(sim.clone()));
    let boxes = EmbeddedBoxes::new(enable_all(&w), meters);
    let tap = Tap { inner: &boxes, frames: Mutex::default() };
    for b in [w.oak, w.steel, w.brass] {
        kmc.check_box(&tap, b, Nonce([b.number() as u8; 32])).await.unwrap();
    }
    for domain in ["VE", "USPS"] {
        let outcome =
            kmc.install_key(&tap, &order(&w, domain, &meter_id), postkey_host::now).await.unwrap();
        let KeyOutcome::Installed { key_id, mi10 } = outcome else { panic!("{outcome:?}") };
        assert_eq!(mi10.header().key_id, Some(key_id));
        let record = w.store.key(&d(domain), key_id).await.unwrap().unwrap();
        assert_eq!(record.status, KeyStatus::Installed);
        assert_eq!(record.meter_id.as_ref(), Some(&meter_id));
        let t = record.times;
        assert!(t.kms_request.is_some() && t.psr_install.is_some() && t.kms_install.is_some());
        assert!(t.kms_request <= t.kms_install);
    }
    let frames = std::mem::take(&mut *tap.frames.lock().unwrap());
    // What the tap holds are the link's frames: commands and replies in turn, each decoding.
    let mut sent = Vec::new();
    for pair in frames.chunks(2) {
        let command = Command::from_bytes(&pair[0]).unwrap();
        let (code, reply) = reply_from_bytes(&pair[1]).unwrap();
        assert_eq!(code, command.code());
        assert!(reply.is_ok(), "{code}: {reply:?}");
        sent.push(code);
    }
    for code in [
        CommandCode::ATTEST_STATE,
        CommandCode::GENERATE_KEY,
        CommandCode::INSTALL_KEY,
        CommandCode::CHECK_INSTALL,
    ] {
        assert!(sent.contains(&code), "{code} crossed the tap: {sent:?}");
    }
    let meter = sim.meter();
    assert_eq!(meter.keys().len(), 2);
    let mut scanned = 0;
    for key in meter.keys().values() {
        let k = key.master_key().expose_secret();
        for bytes in &frames {
            assert!(
                !bytes.windows(32).any(|w| w == k),
                "a plaintext master key crossed the KMC's links"
            );
            scanned += bytes.len();
        }
    }
    assert!(scanned > 1000, "the tap saw the traffic");
    // The check can fail: a frame carrying K is caught.
    let k = meter.keys().values().next().unwrap().master_key().expose_secret();
    let leaked = [frames[0].as_slice(), k].concat();
    assert!(leaked.windows(32).any(|w| w == k));
}

#[tokio::test]
async fn an_old_copy_of_a_steel_state_is_refused_by_the_kmc_before_anything_else() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let state = w.home.root().join("boxes").join(format!("{}.state", w.steel));
    let old = std::fs::read(&state).unwrap();
    {
        let mut meters = MeterLinks::default();
        let (meter_id, sim) = meter(2);
        meters.connect(meter_id.clone(), Box::new(sim));
        let boxes = EmbeddedBoxes::new(enable_all(&w), meters);
        kmc.check_box(&boxes, w.steel, Nonce([1; 32])).await.unwrap();
        kmc.install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now).await.unwrap();
        kmc.check_box(&boxes, w.steel, Nonce([2; 32])).await.unwrap();
    }
    // The old copy is put back; the home's own record is removed too, so only the archive's
    // highest version stands between the old state and the KMC.
    std::fs::write(&state, &old).unwrap();
    std::fs::remove_file(w.home.root().join("versions").join(w.steel.to_string())).unwrap();
    let mut session = Session::new(&w.home).unwrap();
    session.enable(w.steel, &w.home.media_dir()).unwrap();
    let boxes = EmbeddedBoxes::new(session, MeterLinks::default());
    let err = kmc.check_box(&boxes, w.steel, Nonce([3; 32])).await.unwrap_err();
    assert!(matches!(err, KmcError::Rollback { .. }), "{err}");
    assert_eq!(err.response_code(), ResponseCode::STATE_ROLLBACK);
}

#[tokio::test]
async fn a_replayed_key_id_is_burned_and_a_failed_install_leaves_the_key_bad() {
    let w = world().await;
    let config = InstallConfig::default();
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, config);
    let boxes = EmbeddedBoxes::new(enable_all(&w), MeterLinks::default());
    // A meter that is not connected: Steel refuses the install after MI3 was committed.
    let (absent, _) = meter(3);
    let outcome =
        kmc.install_key(&boxes, &order(&w, "USPS", &absent), postkey_host::now).await.unwrap();
    let KeyOutcome::Bad { key_id, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(w.store.key(&d("USPS"), key_id).await.unwrap().unwrap().status, KeyStatus::Bad);
    let history = w.store.key_history(&d("USPS"), key_id).await.unwrap();
    assert_eq!(history.len(), 2, "created New, then Bad");
    assert_eq!(logged(&w.home, w.steel, ResponseCode::METER_NOT_CONNECTED), 1);
    // The next order uses a new key ID.
    let (meter_id, sim) = meter(4);
    boxes.meters().connect(meter_id.clone(), Box::new(sim));
    let outcome =
        kmc.install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now).await.unwrap();
    let KeyOutcome::Installed { key_id: next, .. } = outcome else { panic!("{outcome:?}") };
    assert!(next > key_id);
    assert!(w.store.burned_key_ids(&d("USPS")).await.unwrap().is_empty());

    // Oak is driven outside the KMC: it processes a key ID two ahead of the archive's counter.
    let id = |n: u64| KeyId::new(n).unwrap();
    let ahead = id(next.get() + 2);
    let generated = boxes
        .session()
        .call_one(w.oak, postkey_wire::command::GenerateKey { mi1: mi1(&w, "USPS", ahead).await })
        .unwrap();
    assert_eq!(generated.mi3.header().key_id, Some(ahead));
    // The KMC's next two IDs are not fresh at Oak any more: refused (3201), burned, and the
    // order retried with the next ID, which Oak takes.
    let (meter_id, sim) = meter(5);
    boxes.meters().connect(meter_id.clone(), Box::new(sim));
    let outcome =
        kmc.install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now).await.unwrap();
    let KeyOutcome::Installed { key_id: after, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(after, id(next.get() + 3));
    let burned = w.store.burned_key_ids(&d("USPS")).await.unwrap();
    let ids: Vec<KeyId> = burned.iter().map(|b| b.key_id).collect();
    assert_eq!(ids, vec![id(next.get() + 1), ahead]);
    for b in &burned {
        assert!(b.reason.contains("3201"), "{}", b.reason);
        assert!(w.store.key(&d("USPS"), b.key_id).await.unwrap().is_none(), "never a key");
    }
    assert_eq!(logged(&w.home, w.oak, ResponseCode::KEY_ID_NOT_FRESH), 2);
    let record = w.store.key(&d("USPS"), after).await.unwrap().unwrap();
    assert_eq!(record.status, KeyStatus::Installed);

    // More IDs in a row refused than the KMC allows: the order fails, every ID burned.
    let max = u64::from(config.max_burned_in_a_row);
    let far = id(after.get() + max);
    boxes
        .session()
        .call_one(w.oak, postkey_wire::command::GenerateKey { mi1: mi1(&w, "USPS", far).await })
        .unwrap();
    let (meter_id, sim) = meter(6);
    boxes.meters().connect(meter_id.clone(), Box::new(sim));
    let err = kmc
        .install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, KmcError::KeyIdsRefused(oak, n) if oak == w.oak && n == config.max_burned_in_a_row),
        "{err}"
    );
    assert_eq!(err.response_code().0, 3201);
    let burned = w.store.burned_key_ids(&d("USPS")).await.unwrap();
    let ids: Vec<u64> = burned.iter().map(|b| b.key_id.get()).collect();
    let refused: Vec<u64> = (after.get() + 1..=far.get()).collect();
    assert_eq!(ids, [vec![next.get() + 1, ahead.get()], refused].concat());
    assert_eq!(logged(&w.home, w.oak, ResponseCode::KEY_ID_NOT_FRESH), 2 + max as usize);
    // No key was made for the order: the last key of the domain is still the one before.
    let keys = w.store.keys(&KeyFilter::domain(d("USPS"), 100)).await.unwrap();
    assert_eq!(keys.last().map(|k| k.key_id), Some(after), "{keys:?}");
}

/// Where a flip hits a signed record: the envelope `{0: type, 1: message, 2: signature}` ends with
/// the signature's key, its two-byte head and its 64 bytes, so `len - 68` is the last byte of the
/// signed message (it still decodes, and no longer verifies); byte 0 is the envelope's map head
/// (it no longer decodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spot {
    SignedMessage,
    EnvelopeHead,
}

/// The record of an answer with one byte flipped, decoded again as a box link would decode it:
/// a record that no longer decodes is that item's refusal with the decoder's code.
fn flipped<B: Body>(record: &Unverified<B>, spot: Spot) -> Result<Unverified<B>, Refusal> {
    let mut bytes = record.as_bytes().to_vec();
    let i = match spot {
        Spot::SignedMessage => bytes.len() - 68,
        Spot::EnvelopeHead => 0,
    };
    bytes[i] ^= 0x01;
    Unverified::from_bytes(&bytes).map_err(|e| Refusal::new(e.response_code(), e.to_string()))
}

/// Flips one byte of the target record (MI3, MI7 or ABORTED, MI9 or BAD) of each answer to
/// `command`.
struct Flip<'a, B> {
    inner: &'a B,
    command: CommandCode,
    spot: Spot,
}

impl<B: Boxes> Boxes for Flip<'_, B> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Response, Refusal> {
        let response = self.inner.send(id, command).await?;
        if response.code() != self.command {
            return Ok(response);
        }
        let spot = self.spot;
        Ok(match response {
            Response::GenerateKey(answers) => Response::GenerateKey(
                answers
                    .into_iter()
                    .map(|a| a.and_then(|g| Ok(Generated { mi3: flipped(&g.mi3, spot)?, ..g })))
                    .collect(),
            ),
            Response::InstallKey(answers) => Response::InstallKey(
                answers
                    .into_iter()
                    .map(|a| {
                        a.and_then(|ended| match ended {
                            InstallEnded::Installed(mi7) => {
                                flipped(&mi7, spot).map(InstallEnded::Installed)
                            }
                            InstallEnded::Aborted(a) => {
                                flipped(&a, spot).map(InstallEnded::Aborted)
                            }
                        })
                    })
                    .collect(),
            ),
            Response::CheckInstall(answers) => Response::CheckInstall(
                answers
                    .into_iter()
                    .map(|a| {
                        a.and_then(|checked| match checked {
                            Checked::Installed(c) => Ok(Checked::Installed(Confirmed {
                                mi9: flipped(&c.mi9, spot)?,
                                ..c
                            })),
                            Checked::Bad(b) => flipped(&b, spot).map(Checked::Bad),
                        })
                    })
                    .collect(),
            ),
            other => panic!("no record to flip in {other:?}"),
        })
    }
}

#[tokio::test]
async fn a_flipped_byte_in_mi3_mi7_or_mi9_is_rejected_by_the_kmc() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let boxes = EmbeddedBoxes::new(enable_all(&w), MeterLinks::default());
    let mut n = 10;
    let mut bad = Vec::new();
    for command in [CommandCode::GENERATE_KEY, CommandCode::INSTALL_KEY, CommandCode::CHECK_INSTALL]
    {
        // A flipped byte of the signed message: the record decodes, its signature fails, and the
        // KMC rejects the answer.
        n += 1;
        let (meter_id, sim) = meter(n);
        boxes.meters().connect(meter_id.clone(), Box::new(sim));
        let flip = Flip { inner: &boxes, command, spot: Spot::SignedMessage };
        let err = kmc
            .install_key(&flip, &order(&w, "USPS", &meter_id), postkey_host::now)
            .await
            .unwrap_err();
        assert!(matches!(err, KmcError::BadAnswer { .. }), "{command:?}: {err}");
        assert_eq!(err.response_code().0, 3100, "{command:?}: {err}");
        // A flipped byte that breaks the record: the link refuses the item with the decoder's
        // code, as a box link would; the order fails all the same.
        n += 1;
        let (meter_id, sim) = meter(n);
        boxes.meters().connect(meter_id.clone(), Box::new(sim));
        let flip = Flip { inner: &boxes, command, spot: Spot::EnvelopeHead };
        let result = kmc.install_key(&flip, &order(&w, "USPS", &meter_id), postkey_host::now).await;
        match (command, result) {
            (CommandCode::GENERATE_KEY, Err(KmcError::Refused(r))) => {
                assert_eq!((r.box_id, r.refusal.code.0), (w.oak, 2003), "{r}");
            }
            (_, Ok(KeyOutcome::Bad { key_id, reason })) if command != CommandCode::GENERATE_KEY => {
                assert!(reason.contains("[response code 2003]"), "{command:?}: {reason}");
                bad.push(key_id);
            }
            (_, other) => panic!("{command:?}: {other:?}"),
        }
    }
    // A flipped MI3 never became a key (both IDs are burned); the four other keys are Bad.
    let keys = w.store.keys(&KeyFilter::domain(d("USPS"), 100)).await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.iter().all(|k| k.status == KeyStatus::Bad), "{keys:?}");
    assert!(bad.iter().all(|b| keys.iter().any(|k| k.key_id == *b)), "{bad:?}");
    let burned = w.store.burned_key_ids(&d("USPS")).await.unwrap();
    assert_eq!(burned.len(), 2, "{burned:?}");
    assert!(burned[0].reason.contains("signature verification failed"), "{burned:?}");
    assert!(burned[1].reason.contains("[response code 2003]"), "{burned:?}");
    // Without a flip, an order succeeds.
    let (meter_id, sim) = meter(19);
    boxes.meters().connect(meter_id.clone(), Box::new(sim));
    let outcome =
        kmc.install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now).await.unwrap();
    assert!(matches!(outcome, KeyOutcome::Installed { .. }), "{outcome:?}");
}

/// Refuses every `INSTALL_KEY` as a link that went down would.
struct StopAfterOak<'a, B>(&'a B);

impl<B: Boxes> Boxes for StopAfterOak<'_, B> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Response, Refusal> {
        if command.code() == CommandCode::INSTALL_KEY {
            return Err(Refusal::new(ResponseCode::STORAGE_FAILED, "the KMC stopped"));
        }
        self.0.send(id, command).await
    }
}

/// Lets everything through until the KMC sends `INSTALL_KEY`, which never returns: the KMC goes
/// down there, MI3 committed and MI4 never delivered. `reached` is told.
struct HangAtSteel<'a, B> {
    inner: &'a B,
    reached: tokio::sync::Notify,
}

impl<B: Boxes> Boxes for HangAtSteel<'_, B> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Response, Refusal> {
        if command.code() == CommandCode::INSTALL_KEY {
            self.reached.notify_one();
            return std::future::pending().await;
        }
        self.inner.send(id, command).await
    }
}

#[tokio::test]
async fn after_a_kmc_restart_new_keys_without_mi7_become_bad() {
    let w = world().await;
    let config = InstallConfig { mi7_timeout_micros: 0, ..InstallConfig::default() };
    let stranded = {
        let kmc = Kmc::new(w.store.clone(), w.kmc_dks, config);
        let mut meters = MeterLinks::default();
        let (meter_id, sim) = meter(13);
        meters.connect(meter_id.clone(), Box::new(sim));
        let boxes = EmbeddedBoxes::new(enable_all(&w), meters);
        // The link to Steel fails right after Oak answered and MI3 was committed: the running
        // KMC makes the key Bad itself.
        let outcome = kmc
            .install_key(&StopAfterOak(&boxes), &order(&w, "VE", &meter_id), postkey_host::now)
            .await
            .unwrap();
        let KeyOutcome::Bad { key_id: refused, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(w.store.key(&d("VE"), refused).await.unwrap().unwrap().status, KeyStatus::Bad);
        let stale = kmc.fail_stale_keys(&d("VE"), postkey_host::now()).await.unwrap();
        assert!(stale.is_empty(), "the refused install was already Bad");
        // Then the KMC stops for good in the same place: the order never ends, its key stays New.
        let hang = HangAtSteel { inner: &boxes, reached: tokio::sync::Notify::new() };
        let again = order(&w, "VE", &meter_id);
        tokio::select! {
            result = kmc.install_key(&hang, &again, postkey_host::now) => {
                panic!("the install should hang at Steel: {result:?}")
            }
            () = hang.reached.notified() => {}
        }
        let filter = KeyFilter { status: Some(KeyStatus::New), ..KeyFilter::domain(d("VE"), 10) };
        let new = w.store.keys(&filter).await.unwrap();
        assert_eq!(new.len(), 1, "{new:?}");
        assert!(new[0].key_id > refused);
        assert!(new[0].times.psr_install.is_none());
        // The KMC, its session and its archive connection go down.
        drop(kmc);
        drop(boxes);
        new[0].key_id
    };
    // The restart: a new KMC on the same archive, a new session with its boxes enabled again.
    let store = SqliteStore::open(w.home.root().join("archive.db")).await.unwrap();
    let kmc = Kmc::new(store.clone(), w.home.domain_key_set_key().unwrap(), config);
    let mut meters = MeterLinks::default();
    let (meter_id, sim) = meter(14);
    meters.connect(meter_id.clone(), Box::new(sim));
    let boxes = EmbeddedBoxes::new(enable_all(&w), meters);
    for b in [w.oak, w.steel, w.brass] {
        kmc.check_box(&boxes, b, Nonce([b.number() as u8; 32])).await.unwrap();
    }
    // Steel never saw MI4: it has no interrupted installation to abort.
    assert!(kmc.recover_steel(&boxes, w.steel, postkey_host::now).await.unwrap().is_empty());
    let stale = kmc.fail_stale_keys(&d("VE"), postkey_host::now()).await.unwrap();
    assert_eq!(stale, vec![stranded]);
    assert_eq!(store.key(&d("VE"), stranded).await.unwrap().unwrap().status, KeyStatus::Bad);
    assert!(kmc.fail_stale_keys(&d("VE"), postkey_host::now()).await.unwrap().is_empty());
    // A retry is a new key.
    let outcome =
        kmc.install_key(&boxes, &order(&w, "VE", &meter_id), postkey_host::now).await.unwrap();
    let KeyOutcome::Installed { key_id, .. } = outcome else { panic!("{outcome:?}") };
    assert!(key_id > stranded);
}

#[tokio::test]
async fn batches_flow_through_the_pipeline_and_a_failed_key_spoils_no_other() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let mut meters = MeterLinks::default();
    let mut ids = Vec::new();
    for n in 30..37 {
        let (id, sim) = meter(n);
        // Meter 33 is not on the line: its two keys fail at Steel, after MI3 was committed.
        if n != 33 {
            meters.connect(id.clone(), Box::new(sim));
        }
        ids.push(id);
    }
    let boxes = EmbeddedBoxes::new(enable_all(&w), meters);
    let orders = |chunk: &[MeterId]| -> Vec<KeyOrder> {
        chunk.iter().flat_map(|m| [order(&w, "VE", m), order(&w, "USPS", m)]).collect()
    };
    let mut results = Vec::new();
    kmc.install_batches(
        &boxes,
        ids.chunks(3).map(orders),
        |batch| results.push(batch),
        postkey_host::now,
    )
    .await
    .unwrap();
    assert_eq!(results.iter().map(Vec::len).collect::<Vec<_>>(), vec![6, 6, 2]);
    let flat: Vec<&KeyOutcome> = results.iter().flatten().map(|r| r.as_ref().unwrap()).collect();
    for (i, outcome) in flat.iter().enumerate() {
        let meter = &ids[i / 2];
        let domain = if i % 2 == 0 { "VE" } else { "USPS" };
        let (key_id, expected) = match outcome {
            KeyOutcome::Installed { key_id, .. } => (*key_id, KeyStatus::Installed),
            KeyOutcome::Bad { key_id, .. } => (*key_id, KeyStatus::Bad),
        };
        assert_eq!(expected == KeyStatus::Bad, meter == &ids[3], "{meter} {outcome:?}");
        let record = w.store.key(&d(domain), key_id).await.unwrap().unwrap();
        assert_eq!(record.status, expected);
        if expected == KeyStatus::Installed {
            assert_eq!(record.meter_id.as_ref(), Some(meter));
        }
    }
    // Each domain's key IDs were handed out, and reached the boxes, in increasing order.
    for domain in ["VE", "USPS"] {
        let got: Vec<u64> = flat
            .iter()
            .enumerate()
            .filter(|(i, _)| (i % 2 == 0) == (domain == "VE"))
            .map(|(_, o)| match o {
                KeyOutcome::Installed { key_id, .. } | KeyOutcome::Bad { key_id, .. } => {
                    key_id.get()
                }
            })
            .collect();
        assert!(got.windows(2).all(|p| p[0] < p[1]), "{domain}: {got:?}");
        w.store.verify_chain(&d(domain)).await.unwrap();
    }
    // The refusals of the absent meter are in the error log, which moves into the archive.
    let log = postkey_host::error_log(&w.home, &w.store, 100).await.unwrap();
    let absent = log
        .iter()
        .filter(|e| e.component.eq_ignore_ascii_case(&w.steel.to_string()) && e.code == 3023)
        .collect::<Vec<_>>();
    assert_eq!(absent.len(), 2, "{log:?}");
    assert!(absent.iter().all(|e| e.message.contains("not connected")), "{log:?}");
    assert!(w.home.spooled_errors().unwrap().is_empty());
}

/// The factory on a PostgreSQL archive: the same pipeline, the same records. Runs where
/// `POSTKEY_TEST_PG_URL` is set (CI sets it; without a reachable server in CI it fails).
#[tokio::test]
async fn the_factory_installs_keys_on_a_postgresql_archive_too() {
    let Ok(url) = std::env::var("POSTKEY_TEST_PG_URL") else {
        println!("PostgreSQL test skipped: POSTKEY_TEST_PG_URL is not set");
        return;
    };
    let w = world().await;
    let unique =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let schema = format!("pk_test_factory_{unique}_{}", std::process::id());
    let config =
        postkey_host::PgConfig { schema: Some(schema.clone()), ..postkey_host::PgConfig::new(url) };
    let store = postkey_archive_postgres::PgStore::connect(&config).await.unwrap();
    let mut line = Vec::new();
    for n in 1..=3 {
        let id = MeterId::parse(&format!("PB7777-{n:06}")).unwrap();
        postkey_host::new_meter(&w.home, &id).unwrap();
        line.push((id, d("USPS")));
    }
    let mut factory = postkey_host::Factory::open_on(
        &w.home,
        store.clone(),
        &w.home.media_dir(),
        &[d("VE"), d("USPS")],
    )
    .await
    .unwrap();
    let reports = factory.install_many(&line, &d("VE"), 2, |_| {}).await.unwrap();
    factory.close();
    assert_eq!(reports.len(), 3);
    for k in reports.iter().flat_map(|r| &r.keys) {
        assert_eq!(k.status, "installed", "{k:?}");
        let key = postkey_wire::KeyId::new(k.key_id.unwrap()).unwrap();
        let record = store.key(&d(&k.domain), key).await.unwrap().unwrap();
        assert_eq!(record.status, KeyStatus::Installed);
    }
    // The meters hold their keys in their files.
    for (id, _) in &line {
        assert_eq!(w.home.load_meter(id).unwrap().keys().len(), 2);
    }
    store.verify_chain(&d("USPS")).await.unwrap();
    let admin = store.raw_client().await.unwrap();
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

#[tokio::test]
async fn transcripts_and_the_error_log_move_into_the_archive_once_and_nothing_is_lost() {
    let w = world().await;
    // `world` registered the home in the archive: every transcript is there, once.
    let files = std::fs::read_dir(w.home.root().join("transcripts")).unwrap().count();
    assert!(files >= 5, "{files}");
    assert_eq!(w.store.transcripts(None).await.unwrap().len(), files);
    postkey_host::register_in_archive(&w.home, &w.store).await.unwrap();
    assert_eq!(w.store.transcripts(None).await.unwrap().len(), files);

    let code = postkey_wire::ResponseCode::KEY_ID_NOT_FRESH;
    w.home.log_error("O00000001", code, "first", postkey_host::now()).unwrap();
    // A move interrupted after the spool was taken: its file stays until the archive has it.
    std::fs::rename(w.home.root().join("errors.log"), w.home.root().join("errors.log.moving"))
        .unwrap();
    w.home.log_error("kmc", code, "second", postkey_host::now()).unwrap();
    assert_eq!(w.home.spooled_errors().unwrap().len(), 2);
    postkey_host::register_in_archive(&w.home, &w.store).await.unwrap();
    postkey_host::register_in_archive(&w.home, &w.store).await.unwrap();
    let logged = w.store.error_log(&postkey_archive::ErrorLogQuery::latest(10)).await.unwrap();
    let messages: Vec<&str> = logged.iter().map(|l| l.entry.message.as_str()).collect();
    assert_eq!(messages.iter().filter(|m| **m == "first").count(), 1, "{messages:?}");
    assert_eq!(messages.iter().filter(|m| **m == "second").count(), 1, "{messages:?}");
    let first = logged.iter().find(|l| l.entry.message == "first").unwrap();
    assert_eq!(first.entry.component.as_str(), "o00000001");
    assert_eq!(first.entry.response_code, code);
    assert!(w.home.spooled_errors().unwrap().is_empty());
}
