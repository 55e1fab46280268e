//! Key installation end to end on the embedded default: hosted boxes, the KMC, the SQLite
//! archive and simulated meters; with the attack and fault cases that need all of them.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ops::Deref;
use std::sync::Mutex;

use common::{LINE, World, d, logged_by, meter};
use postkey_archive::{KeyFilter, KeyStatus, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_host::{Access, EmbeddedBoxes, Expected, MeterLinks, Session, Trust, Wait};
use postkey_kmc::{Boxes, InstallConfig, KeyOrder, KeyOutcome, KeyRole, Kmc, KmcError};
use postkey_meter::SimulatedMeter;
use postkey_wire::command::{
    Answered, Checked, Command, Confirmed, Generated, InstallEnded, Response, reply_from_bytes,
    reply_to_bytes,
};
use postkey_wire::{
    Body, BoxId, BoxType, CommandCode, KeyId, Message, MeterId, Nonce, Refusal, ResponseCode,
    Unverified,
};

/// A home with VE and USPS, and one Oak, Steel and Brass box with processes of both, all made
/// by the ceremonies and recorded in the home's SQLite archive.
struct Line {
    world: World,
    oak: BoxId,
    steel: BoxId,
    brass: BoxId,
}

impl Deref for Line {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

async fn world() -> Line {
    let world = common::world(tempfile::tempdir().unwrap(), LINE).await;
    let (oak, steel, brass) =
        (world.made(BoxType::Oak), world.made(BoxType::Steel), world.made(BoxType::Brass));
    Line { world, oak, steel, brass }
}

/// The KMC of the world's installation, on its archive.
fn kmc(w: &Line, config: InstallConfig) -> Kmc<SqliteStore> {
    Kmc::new(w.store.clone(), w.trust.dks_key(), w.trust.installation, config)
}

/// Records the exact frames that cross the KMC's box links, both ways: each command as a box link
/// encodes it, and each reply.
struct Tap<'a, B> {
    inner: &'a B,
    frames: Mutex<Vec<Vec<u8>>>,
}

impl<B: Boxes> Boxes for Tap<'_, B> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        let code = command.code();
        self.frames.lock().unwrap().push(command.to_bytes());
        let reply = self.inner.send(id, command).await;
        self.frames.lock().unwrap().push(reply_to_bytes(code, &reply));
        reply
    }
}

/// MI1 for key `key_id` of `domain`, naming the world's Steel box, as the KMC makes it.
async fn mi1(w: &Line, domain: &str, key_id: KeyId) -> Message<postkey_wire::GenerateKey> {
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

/// A session with the line's boxes enabled, each checked against the archive.
async fn enable_all(w: &Line) -> Session {
    w.session(&[w.oak, w.steel, w.brass]).await
}

fn order(w: &Line, domain: &str, meter: &MeterId) -> KeyOrder {
    let role = if domain == "VE" { KeyRole::Vendor } else { KeyRole::Postal };
    KeyOrder {
        domain: d(domain),
        oak: w.oak,
        steel: w.steel,
        brass: w.brass,
        meter: meter.clone(),
        role,
    }
}

#[tokio::test]
async fn a_meter_gets_a_vendor_and_a_postal_key_and_no_plaintext_key_crosses_the_kmc() {
    let w = world().await;
    let kmc = kmc(&w, InstallConfig::default());
    let mut meters = MeterLinks::default();
    let (meter_id, sim) = meter(1);
    meters.connect(meter_id.clone(), Box::new(sim.clone()));
    let boxes = EmbeddedBoxes::new(enable_all(&w).await, meters);
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
    // The archive recorded each box's state version as the boxes answered it: the one on disk.
    for b in [w.oak, w.steel, w.brass] {
        assert_eq!(w.recorded(b).await, w.sealed_version(b), "{b}");
    }
    let frames = std::mem::take(&mut *tap.frames.lock().unwrap());
    // What the tap holds are the link's frames: commands and replies in turn, each decoding.
    let mut sent = Vec::new();
    for pair in frames.chunks(2) {
        let command = Command::from_bytes(&pair[0]).unwrap();
        let (code, reply) = reply_from_bytes(&pair[1]).unwrap();
        assert_eq!(code, command.code());
        assert!(reply.is_ok(), "{code}: {reply:?}");
        assert!(reply.unwrap().state_version.0 > 0, "{code}: the reply carries the box's version");
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
    let kmc = kmc(&w, InstallConfig::default());
    let state = w.state_path(w.steel);
    let old = std::fs::read(&state).unwrap();
    {
        let mut meters = MeterLinks::default();
        let (meter_id, sim) = meter(2);
        meters.connect(meter_id.clone(), Box::new(sim));
        let boxes = EmbeddedBoxes::new(enable_all(&w).await, meters);
        kmc.check_box(&boxes, w.steel, Nonce([1; 32])).await.unwrap();
        kmc.install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now).await.unwrap();
        kmc.check_box(&boxes, w.steel, Nonce([2; 32])).await.unwrap();
    }
    // The archive recorded the version Steel answered with.
    assert_eq!(w.recorded(w.steel).await, w.sealed_version(w.steel));
    // The old copy is put back. The host, checking it against the archive as it is enabled,
    // refuses it (4004).
    std::fs::write(&state, &old).unwrap();
    let presented = w.sealed_version(w.steel);
    let expected = w.expected(w.steel).await;
    assert!(presented < expected.version);
    let mut session = Session::new(&w.home, Wait::No);
    let err = session.enable(w.steel, &w.media(), &expected).unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::STATE_ROLLBACK, "{err}");
    // A host that expects no more than the old copy's version (one whose own record went back
    // with the state) enables it: only the archive's highest version, as the KMC checks it,
    // stands between the old state and the KMC.
    let stale = Expected { version: presented, ..expected };
    session.enable(w.steel, &w.media(), &stale).unwrap();
    let boxes = EmbeddedBoxes::new(session, MeterLinks::default());
    let err = kmc.check_box(&boxes, w.steel, Nonce([3; 32])).await.unwrap_err();
    assert!(matches!(err, KmcError::Rollback { .. }), "{err}");
    assert_eq!(err.response_code(), ResponseCode::STATE_ROLLBACK);
    assert_eq!(w.recorded(w.steel).await, expected.version, "the record did not go back");
}

#[tokio::test]
async fn a_replayed_key_id_is_burned_and_a_failed_install_leaves_the_key_bad() {
    let w = world().await;
    let config = InstallConfig::default();
    let kmc = kmc(&w, config);
    let boxes = EmbeddedBoxes::new(enable_all(&w).await, MeterLinks::default());
    // A meter that is not connected: Steel refuses the install after MI3 was committed.
    let (absent, _) = meter(3);
    let outcome =
        kmc.install_key(&boxes, &order(&w, "USPS", &absent), postkey_host::now).await.unwrap();
    let KeyOutcome::Bad { key_id, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(w.store.key(&d("USPS"), key_id).await.unwrap().unwrap().status, KeyStatus::Bad);
    let history = w.store.key_history(&d("USPS"), key_id).await.unwrap();
    assert_eq!(history.len(), 2, "created New, then Bad");
    assert_eq!(logged_by(&w.home, w.steel, ResponseCode::METER_NOT_CONNECTED), 1);
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
    assert_eq!(logged_by(&w.home, w.oak, ResponseCode::KEY_ID_NOT_FRESH), 2);
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
    assert_eq!(logged_by(&w.home, w.oak, ResponseCode::KEY_ID_NOT_FRESH), 2 + max as usize);
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
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        let answered = self.inner.send(id, command).await?;
        if answered.response.code() != self.command {
            return Ok(answered);
        }
        let spot = self.spot;
        let response = match answered.response {
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
        };
        Ok(Answered { response, ..answered })
    }
}

#[tokio::test]
async fn a_flipped_byte_in_mi3_mi7_or_mi9_is_rejected_by_the_kmc() {
    let w = world().await;
    let kmc = kmc(&w, InstallConfig::default());
    let boxes = EmbeddedBoxes::new(enable_all(&w).await, MeterLinks::default());
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
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        if command.code() == CommandCode::INSTALL_KEY {
            return Err(Refusal::new(ResponseCode::STORAGE_FAILED, "the KMC stopped"));
        }
        self.0.send(id, command).await
    }
}

/// Lets everything through until the KMC sends `INSTALL_KEY`, which never returns: the KMC goes
/// down there, before Steel sees it or (`delivered`) right after Steel answered and before the
/// answer reached the archive. `reached` is told.
struct HangAtSteel<'a, B> {
    inner: &'a B,
    delivered: bool,
    reached: tokio::sync::Notify,
}

impl<B: Boxes> Boxes for HangAtSteel<'_, B> {
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        if command.code() == CommandCode::INSTALL_KEY {
            if self.delivered {
                self.inner.send(id, command).await?;
            }
            self.reached.notify_one();
            return std::future::pending().await;
        }
        self.inner.send(id, command).await
    }
}

/// Runs one VE installation into `meter_id` that stops for good at Steel; the KMC and its
/// session go down. Returns the key left `New`.
async fn stop_at_steel(
    w: &Line,
    meter_id: &MeterId,
    sim: SimulatedMeter,
    delivered: bool,
) -> KeyId {
    let kmc = kmc(w, InstallConfig::default());
    let mut meters = MeterLinks::default();
    meters.connect(meter_id.clone(), Box::new(sim));
    let boxes = EmbeddedBoxes::new(enable_all(w).await, meters);
    let hang = HangAtSteel { inner: &boxes, delivered, reached: tokio::sync::Notify::new() };
    let again = order(w, "VE", meter_id);
    tokio::select! {
        result = kmc.install_key(&hang, &again, postkey_host::now) => {
            panic!("the install should hang at Steel: {result:?}")
        }
        () = hang.reached.notified() => {}
    }
    let filter = KeyFilter { status: Some(KeyStatus::New), ..KeyFilter::domain(d("VE"), 10) };
    let new = w.store.keys(&filter).await.unwrap();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].times.psr_install.is_none(), "the KMC stopped before MI7 was archived");
    new[0].key_id
}

/// A KMC on the world's archive after a restart, with a new session whose boxes passed the state
/// check.
async fn restart(
    w: &Line,
    meter_id: &MeterId,
    sim: SimulatedMeter,
) -> (Kmc<SqliteStore>, EmbeddedBoxes) {
    let store = postkey_host::open_archive(&w.home).await.unwrap();
    let trust = Trust::load(&w.home, &store).await.unwrap();
    let kmc = Kmc::new(store, trust.dks_key(), trust.installation, InstallConfig::default());
    let mut meters = MeterLinks::default();
    meters.connect(meter_id.clone(), Box::new(sim));
    let boxes = EmbeddedBoxes::new(enable_all(w).await, meters);
    for b in [w.oak, w.steel, w.brass] {
        kmc.check_box(&boxes, b, Nonce([b.number() as u8; 32])).await.unwrap();
    }
    (kmc, boxes)
}

#[tokio::test]
async fn after_a_kmc_restart_every_key_a_stopped_run_left_ends_installed_or_bad() {
    let w = world().await;
    let line = postkey_kmc::LineBoxes { oak: w.oak, steel: w.steel, brass: w.brass };
    let (meter_id, sim) = meter(13);
    // The link to Steel fails right after Oak answered and MI3 was committed: the running KMC
    // makes the key Bad itself.
    {
        let kmc = kmc(&w, InstallConfig::default());
        let mut meters = MeterLinks::default();
        meters.connect(meter_id.clone(), Box::new(sim.clone()));
        let boxes = EmbeddedBoxes::new(enable_all(&w).await, meters);
        let outcome = kmc
            .install_key(&StopAfterOak(&boxes), &order(&w, "VE", &meter_id), postkey_host::now)
            .await
            .unwrap();
        let KeyOutcome::Bad { key_id, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(w.store.key(&d("VE"), key_id).await.unwrap().unwrap().status, KeyStatus::Bad);
    }
    // The KMC stops for good after Steel installed the key and answered MI7, before the archive
    // has it: at the restart, Steel's RECOVER gives MI7 again, and Brass checks the key.
    let answered = stop_at_steel(&w, &meter_id, sim.clone(), true).await;
    let held = sim.meter().keys().get(&d("VE")).map(|k| k.key_id.get());
    assert_eq!(held, Some(answered.get()), "the meter holds the key");
    let (kmc, boxes) = restart(&w, &meter_id, sim.clone()).await;
    let settled = kmc.settle_line(&boxes, line, postkey_host::now).await.unwrap();
    assert_eq!(settled.mi7_recorded, vec![(d("VE"), answered)]);
    assert_eq!(settled.rechecked, vec![(d("VE"), answered)]);
    let key = w.store.key(&d("VE"), answered).await.unwrap().unwrap();
    assert_eq!((key.status, key.meter_id), (KeyStatus::Installed, Some(meter_id.clone())));
    drop((kmc, boxes));
    // The KMC stops for good before Steel saw MI4: Steel has nothing to give again, the key is
    // Bad with the reason, and the meter keeps the key it had.
    let (other_id, other) = meter(14);
    let stranded = stop_at_steel(&w, &other_id, other.clone(), false).await;
    let (kmc, boxes) = restart(&w, &other_id, other.clone()).await;
    let settled = kmc.settle_line(&boxes, line, postkey_host::now).await.unwrap();
    assert!(settled.aborted.is_empty() && settled.mi7_recorded.is_empty(), "{settled:?}");
    assert_eq!(settled.never_installed, vec![(d("VE"), stranded)]);
    assert_eq!(w.store.key(&d("VE"), stranded).await.unwrap().unwrap().status, KeyStatus::Bad);
    assert!(other.meter().keys().get(&d("VE")).is_none());
    // A retry is a new key.
    let outcome =
        kmc.install_key(&boxes, &order(&w, "VE", &other_id), postkey_host::now).await.unwrap();
    let KeyOutcome::Installed { key_id, .. } = outcome else { panic!("{outcome:?}") };
    assert!(key_id > stranded);
}

#[tokio::test]
async fn batches_flow_through_the_pipeline_and_a_failed_key_spoils_no_other() {
    let w = world().await;
    let kmc = kmc(&w, InstallConfig::default());
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
    let boxes = EmbeddedBoxes::new(enable_all(&w).await, meters);
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
    // The refusals of the absent meter are in the error log (read: spool and archive).
    let log = postkey_host::error_log(&w.home, &w.store, 100).await.unwrap();
    let absent = log
        .iter()
        .filter(|e| e.component.eq_ignore_ascii_case(&w.steel.to_string()) && e.code == 3023)
        .collect::<Vec<_>>();
    assert_eq!(absent.len(), 2, "{log:?}");
    assert!(absent.iter().all(|e| e.message.contains("not connected")), "{log:?}");
    // The next command that writes the archive moves them in; the log reads the same.
    move_spool(&w).await;
    assert!(w.home.spooled_errors().unwrap().is_empty());
    let moved = postkey_host::error_log(&w.home, &w.store, 100).await.unwrap();
    assert_eq!(moved.len(), log.len(), "{moved:?}");
}

/// Opens the ceremonies, as every command that writes the archive does: the spool moves in.
async fn move_spool(w: &common::World) {
    let lock = w.lock();
    let c = postkey_host::Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.close();
}

/// The factory on a PostgreSQL archive: the same pipeline, the same records. Runs where
/// `POSTKEY_TEST_PG_URL` is set (CI sets it; without a reachable server in CI it fails).
#[tokio::test]
async fn the_factory_installs_keys_on_a_postgresql_archive_too() {
    let Some(url) = postkey_archive_postgres::testing::server_url("factory on PostgreSQL") else {
        return;
    };
    let unique =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let schema = format!("pk_test_factory_{unique}_{}", std::process::id());
    let config =
        postkey_host::PgConfig { schema: Some(schema.clone()), ..postkey_host::PgConfig::new(url) };
    let store = postkey_archive_postgres::PgStore::connect(&config).await.unwrap();
    // The ceremonies record the installation in the PostgreSQL archive itself.
    let w = common::world_on(tempfile::tempdir().unwrap(), store.clone(), LINE).await;
    let reports = common::key_meters_on(&w, store.clone(), 1..=3).await.unwrap();
    assert_eq!(reports.len(), 3);
    for k in reports.iter().flat_map(|r| &r.keys) {
        assert_eq!(k.status, "installed", "{k:?}");
        let key = postkey_wire::KeyId::new(k.key_id.unwrap()).unwrap();
        let record = store.key(&d(&k.domain), key).await.unwrap().unwrap();
        assert_eq!(record.status, KeyStatus::Installed);
    }
    // The meters hold their keys in their files.
    for n in 1..=3 {
        let id = MeterId::parse(&format!("PB7777-{n:06}")).unwrap();
        assert_eq!(w.home.load_meter(&id).unwrap().keys().len(), 2);
    }
    store.verify_chain(&d("USPS")).await.unwrap();
    let admin = store.raw_client().await.unwrap();
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
}

/// Every ceremony's transcript goes into the archive with what the ceremony made, once; a refused
/// ceremony leaves none. The error-log spool moves into the archive once, and nothing is lost when
/// a move is interrupted.
#[tokio::test]
async fn transcripts_and_the_error_log_move_into_the_archive_once_and_nothing_is_lost() {
    let w = world().await;
    let m = BoxId::FIRST_MANUFACTURING;
    // The world's ceremonies: the first, two domains, three boxes, two processes in each.
    let made = [
        ("first-manufacturing-box", 1),
        ("create-domain", 2),
        ("manufacture-box", 3),
        ("install-process", 6),
    ];
    let count = |transcripts: &[postkey_archive::Transcript]| {
        made.map(|(kind, _)| (kind, transcripts.iter().filter(|t| t.kind.as_str() == kind).count()))
    };
    let transcripts = w.store.transcripts(None).await.unwrap();
    assert_eq!(transcripts.len(), 12, "{:?}", count(&transcripts));
    assert_eq!(count(&transcripts), made);
    // Each is the one the manufacturing box signed.
    let identity = w.expected(m).await.certificate.body().identity;
    for t in &transcripts {
        let signed = Unverified::<postkey_wire::Transcript>::from_bytes(&t.transcript.bytes)
            .unwrap()
            .verify(&identity)
            .unwrap();
        assert_eq!(signed.body().conducted_by, m);
        assert_eq!(signed.body().ceremony, t.kind.as_str());
    }
    // A ceremony refused (a domain that exists) leaves no transcript.
    {
        let lock = w.lock();
        let mut c = postkey_host::Ceremonies::open(&lock, w.store.clone()).await.unwrap();
        c.enable(m, &w.media()).await.unwrap();
        let err = c
            .create_domain(m, d("VE"), postkey_wire::DomainKind::Vendor, vec![])
            .await
            .unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::DOMAIN_EXISTS, "{err}");
        c.close();
    }
    assert_eq!(w.store.transcripts(None).await.unwrap().len(), 12);

    assert!(w.home.spooled_errors().unwrap().is_empty(), "the world logged no refusal");
    let code = postkey_wire::ResponseCode::KEY_ID_NOT_FRESH;
    w.home.log_error("O00000001", code, "first", postkey_host::now()).unwrap();
    // A move interrupted after the spool was taken: its file stays until the archive has it.
    std::fs::rename(w.home.root().join("errors.log"), w.home.root().join("errors.log.moving"))
        .unwrap();
    w.home.log_error("kmc", code, "second", postkey_host::now()).unwrap();
    assert_eq!(w.home.spooled_errors().unwrap().len(), 2);
    // Reading the log moves nothing; it shows both.
    let shown = postkey_host::error_log(&w.home, &w.store, 10).await.unwrap();
    assert_eq!(shown.iter().filter(|e| e.message == "first" || e.message == "second").count(), 2);
    assert_eq!(w.home.spooled_errors().unwrap().len(), 2);
    // One writing command moves both: the interrupted move's spool, then the current one; a
    // second moves nothing twice.
    move_spool(&w).await;
    assert!(w.home.spooled_errors().unwrap().is_empty());
    move_spool(&w).await;
    let logged = w.store.error_log(&postkey_archive::ErrorLogQuery::latest(10)).await.unwrap();
    let messages: Vec<&str> = logged.iter().map(|l| l.entry.message.as_str()).collect();
    assert_eq!(messages.iter().filter(|m| **m == "first").count(), 1, "{messages:?}");
    assert_eq!(messages.iter().filter(|m| **m == "second").count(), 1, "{messages:?}");
    let first = logged.iter().find(|l| l.entry.message == "first").unwrap();
    assert_eq!(first.entry.component.as_str(), "o00000001");
    assert_eq!(first.entry.response_code, code);
    assert!(w.home.spooled_errors().unwrap().is_empty());
}

#[tokio::test]
async fn a_clock_behind_the_archive_is_bridged_within_the_bound_and_refused_beyond_it() {
    let w = world().await;
    let ahead = |micros: u64| {
        postkey_wire::Timestamp::from_unix_micros(postkey_host::now().unix_micros() + micros)
    };
    // The archive recorded a time ahead of the wall clock: the clock was stepped back since.
    let burn = |key_id, time| postkey_archive::BurnKeyId {
        domain: d("VE"),
        key_id,
        reason: "a time from before the clock stepped back".into(),
        time,
        actor: postkey_wire::Sender::Role(postkey_wire::Role::Kmc),
    };
    let first = w.store.allocate_key_id(&d("VE")).await.unwrap();
    let recorded = ahead(60_000_000);
    w.store.burn_key_id(&burn(first, recorded)).await.unwrap();
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let id = MeterId::parse("PB7777-000001").unwrap();
    postkey_host::new_meter(&lock, &id).unwrap();
    let domains = [d("VE"), d("USPS")];
    // One minute behind: bridged; every time written is at or after the archive's.
    let mut factory = postkey_host::Factory::open(&lock, &w.media(), &domains).await.unwrap();
    let report = factory.install(&id, &d("VE"), &d("USPS")).await.unwrap();
    factory.close();
    for k in &report.keys {
        assert_eq!(k.status, "installed", "{k:?}");
        let key = w.store.key(&d(&k.domain), KeyId::new(k.key_id.unwrap()).unwrap()).await;
        let key = key.unwrap().unwrap();
        assert!(key.times.kms_request.unwrap() >= recorded, "{key:?}");
    }
    // Ten minutes behind: refused with 3310 before anything is written, and logged.
    let second = w.store.allocate_key_id(&d("VE")).await.unwrap();
    w.store.burn_key_id(&burn(second, ahead(600_000_000))).await.unwrap();
    let before = w.store.chain_head(&d("VE")).await.unwrap();
    let e = postkey_host::Factory::open(&lock, &w.media(), &domains).await.unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::TIME_WENT_BACKWARDS, "{e}");
    assert!(e.to_string().contains("fix the clock"), "{e}");
    assert_eq!(w.store.chain_head(&d("VE")).await.unwrap(), before);
    let spooled = w.home.spooled_errors().unwrap();
    assert!(spooled.iter().any(|l| l.code == 3310 && l.component == "kmc"), "{spooled:?}");
}
