//! Key installation end to end on the embedded default: hosted boxes, the KMC, the SQLite
//! archive and simulated meters; with the attack and fault cases that need all of them.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_archive::{KeyStatus, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_host::{EmbeddedBoxes, Home, MeterLinks, Session, SharePolicy};
use postkey_kmc::{Boxes, InstallConfig, KeyOrder, KeyOutcome, Kmc, KmcError, Refusal};
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
    inner: &'a mut B,
    seen: Vec<Vec<u8>>,
}

impl<B: Boxes> Boxes for Tap<'_, B> {
    fn call(
        &mut self,
        id: BoxId,
        command: CommandCode,
        params: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Refusal> {
        self.seen.extend(params.iter().map(|p| p.to_vec()));
        let answer = self.inner.call(id, command, params);
        match &answer {
            Ok(a) => self.seen.extend(a.iter().cloned()),
            Err(r) => self.seen.push(r.message.clone().into_bytes()),
        }
        answer
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
    let mut session = enable_all(&w);
    let mut meters = MeterLinks::default();
    let (meter_id, sim) = meter(1);
    meters.connect(meter_id.clone(), Box::new(sim.clone()));
    let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
    let mut tap = Tap { inner: &mut boxes, seen: Vec::new() };
    for b in [w.oak, w.steel, w.brass] {
        kmc.check_box(&mut tap, b, Nonce([b.number() as u8; 32])).await.unwrap();
    }
    for domain in ["VE", "USPS"] {
        let outcome = kmc
            .install_key(&mut tap, &order(&w, domain, &meter_id), postkey_host::now)
            .await
            .unwrap();
        let KeyOutcome::Installed { key_id, .. } = outcome else { panic!("{outcome:?}") };
        let record = w.store.key(&d(domain), key_id).await.unwrap().unwrap();
        assert_eq!(record.status, KeyStatus::Installed);
        assert_eq!(record.meter_id.as_ref(), Some(&meter_id));
        let t = record.times;
        assert!(t.kms_request.is_some() && t.psr_install.is_some() && t.kms_install.is_some());
        assert!(t.kms_request <= t.kms_install);
    }
    let seen = std::mem::take(&mut tap.seen);
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
        let mut session = enable_all(&w);
        let mut meters = MeterLinks::default();
        let (meter_id, sim) = meter(2);
        meters.connect(meter_id.clone(), Box::new(sim));
        let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
        kmc.check_box(&mut boxes, w.steel, Nonce([1; 32])).await.unwrap();
        kmc.install_key(&mut boxes, &order(&w, "USPS", &meter_id), postkey_host::now)
            .await
            .unwrap();
        kmc.check_box(&mut boxes, w.steel, Nonce([2; 32])).await.unwrap();
    }
    // The old copy is put back; the home's own record is removed too, so only the archive's
    // highest version stands between the old state and the KMC.
    std::fs::write(&state, &old).unwrap();
    std::fs::remove_file(w.home.root().join("versions").join(w.steel.to_string())).unwrap();
    let mut session = Session::new(&w.home).unwrap();
    session.enable(w.steel, &w.home.media_dir()).unwrap();
    let mut meters = MeterLinks::default();
    let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
    let err = kmc.check_box(&mut boxes, w.steel, Nonce([3; 32])).await.unwrap_err();
    assert!(matches!(err, KmcError::Rollback { .. }), "{err}");
    assert_eq!(err.response_code(), postkey_wire::ResponseCode::STATE_ROLLBACK);
}

#[tokio::test]
async fn a_replayed_key_id_is_burned_and_a_failed_install_leaves_the_key_bad() {
    let w = world().await;
    let kmc = Kmc::new(w.store.clone(), w.kmc_dks, InstallConfig::default());
    let mut session = enable_all(&w);
    let mut meters = MeterLinks::default();
    // A meter that is not connected: Steel's host refuses the install after MI3 was committed.
    let (absent, _) = meter(3);
    let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
    let outcome =
        kmc.install_key(&mut boxes, &order(&w, "USPS", &absent), postkey_host::now).await.unwrap();
    let KeyOutcome::Bad { key_id, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(w.store.key(&d("USPS"), key_id).await.unwrap().unwrap().status, KeyStatus::Bad);
    let history = w.store.key_history(&d("USPS"), key_id).await.unwrap();
    assert_eq!(history.len(), 2, "created New, then Bad");
    // The next order uses a new key ID.
    let (meter_id, sim) = meter(4);
    meters.connect(meter_id.clone(), Box::new(sim));
    let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
    let KeyOutcome::Installed { key_id: next, .. } = kmc
        .install_key(&mut boxes, &order(&w, "USPS", &meter_id), postkey_host::now)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(next > key_id);
}
