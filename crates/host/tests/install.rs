//! Key installation end to end on the embedded default: hosted boxes, the KMC, the SQLite
//! archive and simulated meters; with the attack and fault cases that need all of them.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_archive::{KeyStatus, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_host::{EmbeddedBoxes, Home, MeterLinks, Session, SharePolicy};
use postkey_kmc::{Answer, Boxes, InstallConfig, KeyOrder, KeyOutcome, Kmc, KmcError, Refusal};
use postkey_meter::{Meter, SimulatedMeter};
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_wire::{
    BoxId, BoxType, CommandCode, DomainId, DomainKind, MeterId, Nonce, SubdomainId,
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

fn id(s: &str) -> BoxId {
    BoxId::parse(s).unwrap()
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
        let b = id(&r.id);
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

/// Records every byte that crosses the KMC's box links, both ways.
struct Tap<'a, B> {
    inner: &'a B,
    seen: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl<B: Boxes> Boxes for Tap<'_, B> {
    async fn call_batch(
        &self,
        id: BoxId,
        command: CommandCode,
        items: Vec<Vec<Vec<u8>>>,
    ) -> Result<Vec<Answer>, Refusal> {
        self.seen.lock().unwrap().extend(items.iter().flatten().cloned());
        let answers = self.inner.call_batch(id, command, items).await;
        let mut seen = self.seen.lock().unwrap();
        for a in answers.iter().flatten() {
            match a {
                Ok(records) => seen.extend(records.iter().cloned()),
                Err(r) => seen.push(r.message.clone().into_bytes()),
            }
        }
        answers
    }
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
    let tap = Tap { inner: &boxes, seen: Default::default() };
    for b in [w.oak, w.steel, w.brass] {
        kmc.check_box(&tap, b, Nonce([b.number() as u8; 32])).await.unwrap();
    }
    for domain in ["VE", "USPS"] {
        let outcome =
            kmc.install_key(&tap, &order(&w, domain, &meter_id), postkey_host::now).await.unwrap();
        let KeyOutcome::Installed { key_id, .. } = outcome else { panic!("{outcome:?}") };
        let record = w.store.key(&d(domain), key_id).await.unwrap().unwrap();
        assert_eq!(record.status, KeyStatus::Installed);
        assert_eq!(record.meter_id.as_ref(), Some(&meter_id));
        let t = record.times;
        assert!(t.kms_request.is_some() && t.psr_install.is_some() && t.kms_install.is_some());
        assert!(t.kms_request <= t.kms_install);
    }
    let seen = std::mem::take(&mut *tap.seen.lock().unwrap());
    let meter = sim.meter();
    assert_eq!(meter.keys().len(), 2);
    let mut scanned = 0;
    for key in meter.keys().values() {
        let k = key.master_key().expose_secret();
        for bytes in &seen {
            assert!(
                !bytes.windows(32).any(|w| w == k),
                "a plaintext master key crossed the KMC's links"
            );
            scanned += bytes.len();
        }
    }
    assert!(scanned > 1000, "the tap saw the traffic");
    // The check can fail: a message carrying K is caught.
    let leaked =
        [b"prefix".as_slice(), meter.keys().values().next().unwrap().master_key().expose_secret()]
            .concat();
    assert!(
        leaked
            .windows(32)
            .any(|w| w == meter.keys().values().next().unwrap().master_key().expose_secret())
    );
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
    assert_eq!(err.response_code(), postkey_wire::ResponseCode::STATE_ROLLBACK);
}

#[tokio::test]
async fn a_replayed_key_id_is_burned_and_a_failed_install_leaves_the_key_bad() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let boxes = EmbeddedBoxes::new(enable_all(&w), MeterLinks::default());
    // A meter that is not connected: Steel's host refuses the install after MI3 was committed.
    let (absent, _) = meter(3);
    let outcome =
        kmc.install_key(&boxes, &order(&w, "USPS", &absent), postkey_host::now).await.unwrap();
    let KeyOutcome::Bad { key_id, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(w.store.key(&d("USPS"), key_id).await.unwrap().unwrap().status, KeyStatus::Bad);
    let history = w.store.key_history(&d("USPS"), key_id).await.unwrap();
    assert_eq!(history.len(), 2, "created New, then Bad");
    // The next order uses a new key ID.
    let (meter_id, sim) = meter(4);
    boxes.meters().connect(meter_id.clone(), Box::new(sim));
    let KeyOutcome::Installed { key_id: next, .. } =
        kmc.install_key(&boxes, &order(&w, "USPS", &meter_id), postkey_host::now).await.unwrap()
    else {
        panic!()
    };
    assert!(next > key_id);
}

/// Flips one byte of the first record of each answer to `command`.
struct Flip<'a, B> {
    inner: &'a B,
    command: CommandCode,
}

impl<B: Boxes> Boxes for Flip<'_, B> {
    async fn call_batch(
        &self,
        id: BoxId,
        command: CommandCode,
        items: Vec<Vec<Vec<u8>>>,
    ) -> Result<Vec<Answer>, Refusal> {
        let mut answers = self.inner.call_batch(id, command, items).await?;
        if command == self.command {
            for first in answers.iter_mut().flatten().filter_map(|a| a.first_mut()) {
                let i = first.len() / 2;
                first[i] ^= 0x01;
            }
        }
        Ok(answers)
    }
}

#[tokio::test]
async fn a_flipped_byte_in_mi3_mi7_or_mi9_is_rejected_by_the_kmc() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let boxes = EmbeddedBoxes::new(enable_all(&w), MeterLinks::default());
    for (n, command) in [
        (10, CommandCode::GENERATE_KEY),
        (11, CommandCode::INSTALL_KEY),
        (12, CommandCode::CHECK_INSTALL),
    ] {
        let (meter_id, sim) = meter(n);
        boxes.meters().connect(meter_id.clone(), Box::new(sim));
        let flip = Flip { inner: &boxes, command };
        let err = kmc
            .install_key(&flip, &order(&w, "USPS", &meter_id), postkey_host::now)
            .await
            .unwrap_err();
        assert!(matches!(err, KmcError::BadAnswer { .. }), "{command:?}: {err}");
    }
    // A flipped MI3 never became a key (its ID is burned); the other two keys are Bad.
    let keys = w.store.keys(&postkey_archive::KeyFilter::domain(d("USPS"), 100)).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.status == KeyStatus::Bad), "{keys:?}");
    assert_eq!(w.store.burned_key_ids(&d("USPS")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn after_a_kmc_restart_new_keys_without_mi7_become_bad() {
    let w = world().await;
    let config = InstallConfig { mi7_timeout_micros: 0, ..InstallConfig::default() };
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, config);
    let mut meters = MeterLinks::default();
    let (meter_id, sim) = meter(13);
    meters.connect(meter_id.clone(), Box::new(sim));
    // The KMC stops right after Oak answered and MI3 was committed: Steel never sees MI4.
    struct StopAfterOak<'a, B>(&'a B);
    impl<B: Boxes> Boxes for StopAfterOak<'_, B> {
        async fn call_batch(
            &self,
            id: BoxId,
            command: CommandCode,
            items: Vec<Vec<Vec<u8>>>,
        ) -> Result<Vec<Answer>, Refusal> {
            if command == CommandCode::INSTALL_KEY {
                return Err(Refusal {
                    box_id: id,
                    code: postkey_wire::ResponseCode::STORAGE_FAILED,
                    message: "the KMC stopped".into(),
                });
            }
            self.0.call_batch(id, command, items).await
        }
    }
    let boxes = EmbeddedBoxes::new(enable_all(&w), meters);
    let outcome = kmc
        .install_key(&StopAfterOak(&boxes), &order(&w, "VE", &meter_id), postkey_host::now)
        .await
        .unwrap();
    let KeyOutcome::Bad { key_id, .. } = outcome else { panic!() };
    // A key left New by a stop in between: created by hand as the KMC would have, then recovered.
    let _ = key_id;
    let stale = kmc.fail_stale_keys(&d("VE"), postkey_host::now()).await.unwrap();
    assert!(stale.is_empty(), "the refused install was already Bad");
    let next = w.store.allocate_key_id(&d("VE")).await.unwrap();
    let mi1 = postkey_wire::Message::new(
        postkey_wire::Context {
            domain: d("VE"),
            sender: postkey_wire::Sender::Role(postkey_wire::Role::Kmc),
            meter_id: None,
            key_id: Some(next),
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
                .find(|p| p.domain == d("VE"))
                .unwrap()
                .record
                .bytes,
        },
    )
    .to_bytes();
    let answer = boxes.call(w.oak, CommandCode::GENERATE_KEY, vec![mi1]).await.unwrap();
    let record = postkey_archive::SignedRecord {
        record_type: postkey_wire::RecordType::MI3,
        bytes: answer[0].clone(),
    };
    let requested = postkey_host::now();
    w.store
        .create_key(&postkey_archive::NewKey {
            domain: d("VE"),
            key_id: next,
            oak_id: w.oak,
            steel_id: w.steel,
            kms_request_time: requested,
            time: requested,
            actor: postkey_wire::Sender::Box(w.oak),
            record,
        })
        .await
        .unwrap();
    let stale = kmc.fail_stale_keys(&d("VE"), postkey_host::now()).await.unwrap();
    assert_eq!(stale, vec![next]);
    assert_eq!(w.store.key(&d("VE"), next).await.unwrap().unwrap().status, KeyStatus::Bad);
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
    assert!(log.iter().any(|e| e.message.contains("not connected")), "{log:?}");
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
