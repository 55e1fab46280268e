//! Key installation inside the boxes (SPEC §6.1): Oak, Steel over the meter link, Brass; and the
//! attack and fault cases, each refused or turned into a signed ABORTED or BAD record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{first, manufacture, now, rng, sub, usps};
use postkey_box::{BoxError, CheckOutcome, InstallOutcome, ProcessKeys, SecureBox};
use postkey_meter::{Meter, MeterLink, SimulatedMeter};
use postkey_wire::{
    BoxType, Context, DomainId, GenerateKey, KeyId, Message, MeterId, NewKeyRecord, ResponseCode,
    Role, Sender,
};

struct Line {
    oak: SecureBox,
    steel: SecureBox,
    steel2: SecureBox,
    brass: SecureBox,
    steel_record: Vec<u8>,
    steel2_record: Vec<u8>,
    steel_shares: Vec<Vec<u8>>,
    anchors: postkey_wire::TrustAnchors,
}

fn usps_id() -> DomainId {
    DomainId::parse("USPS").unwrap()
}

fn line() -> Line {
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let mut boxes = Vec::new();
    let mut records = Vec::new();
    let mut steel_shares = Vec::new();
    for (t, seed) in
        [(BoxType::Oak, 100), (BoxType::Steel, 101), (BoxType::Steel, 102), (BoxType::Brass, 103)]
    {
        let init = manufacture(m, t, seed);
        if seed == 101 {
            steel_shares = init.shares.iter().map(|s| s.as_bytes().to_vec()).collect();
        }
        let mut b = init.secure_box;
        let subs = if t == BoxType::Brass { vec![sub("USPS/US")] } else { vec![] };
        let d = m
            .manufacturing()
            .unwrap()
            .deliver(bundle.as_bytes(), b.certificate().unwrap().as_bytes(), subs, now())
            .unwrap();
        b.install_process(d.delivery.as_bytes()).unwrap();
        records.push(d.record.as_bytes().to_vec());
        boxes.push(b);
    }
    let brass = boxes.pop().unwrap();
    let steel2 = boxes.pop().unwrap();
    let steel = boxes.pop().unwrap();
    let oak = boxes.pop().unwrap();
    Line {
        anchors: f.secure_box.anchors().clone(),
        oak,
        steel,
        steel2,
        brass,
        steel_record: records[1].clone(),
        steel2_record: records[2].clone(),
        steel_shares,
    }
}

fn mi1(steel: &SecureBox, record: &[u8], key_id: u64) -> Vec<u8> {
    let context = Context {
        domain: usps_id(),
        sender: Sender::Role(Role::Kmc),
        meter_id: None,
        key_id: Some(KeyId::new(key_id).unwrap()),
        state_version: None,
        timestamp: now(),
    };
    let body = GenerateKey {
        steel_certificate: steel.certificate().unwrap().as_bytes().to_vec(),
        steel_process: record.to_vec(),
    };
    Message::new(context, body).to_bytes()
}

fn meter(n: u32) -> SimulatedMeter {
    let id = MeterId::parse(&format!("PB1234-{n:06}")).unwrap();
    SimulatedMeter::new(Meter::manufacture(id, &mut rng(200 + u64::from(n))).unwrap())
}

/// Steel's side of one installation over the meter link.
fn install(steel: &mut SecureBox, mi4: &[u8], m: &mut impl MeterLink) -> InstallOutcome {
    let hello = m.hello(&usps_id(), now()).unwrap();
    let mi5 = steel.steel().unwrap().begin_install(mi4, &hello, now()).unwrap();
    let mi6 = m.install(&mi5.to_bytes(), now()).unwrap();
    steel.steel().unwrap().finish_install(&mi6, now()).unwrap()
}

#[test]
fn a_key_goes_from_oak_through_steel_into_the_meter_and_brass_confirms_it() {
    let mut l = line();
    let g = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let mut m = meter(1);
    let InstallOutcome::Installed(mi7) = install(&mut l.steel, g.mi4.as_bytes(), &mut m) else {
        panic!("aborted")
    };
    assert_eq!(mi7.header().meter_id.as_ref(), Some(m.meter().id()));
    let CheckOutcome::Installed { mi9, mi10 } =
        l.brass.brass().unwrap().check_install(g.mi3.as_bytes(), mi7.as_bytes(), now()).unwrap()
    else {
        panic!("bad")
    };
    assert_eq!(mi9.header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(mi10.header().meter_id.as_ref(), Some(m.meter().id()));
    // The meter holds exactly the key the archive copy holds: their test tokens agree.
    let meter = m.meter();
    let installed = &meter.keys()[&usps_id()];
    assert_eq!(installed.key_id, KeyId::new(1).unwrap());
    assert_eq!(installed.master_key().test_tokens(), mi7.body().test_tokens);
}

#[test]
fn oak_refuses_replayed_and_far_key_ids_and_uncertified_steel_boxes() {
    let mut l = line();
    l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 5), now()).unwrap();
    let v = l.oak.version();
    for replay in [5, 4, 1] {
        let e = l
            .oak
            .oak()
            .unwrap()
            .generate_key(&mi1(&l.steel, &l.steel_record, replay), now())
            .unwrap_err();
        assert_eq!(e.response_code(), ResponseCode::KEY_ID_NOT_FRESH, "{replay}");
    }
    let e = l
        .oak
        .oak()
        .unwrap()
        .generate_key(
            &mi1(&l.steel, &l.steel_record, 5 + postkey_box::DEFAULT_KEY_ID_WINDOW + 1),
            now(),
        )
        .unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::KEY_ID_BEYOND_WINDOW);
    // A Steel box with another box's process record: not certified for the domain here.
    let e =
        l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel2_record, 6), now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::NOT_CERTIFIED_FOR_DOMAIN);
    // A Brass box's certificate where a Steel box's belongs.
    let e =
        l.oak.oak().unwrap().generate_key(&mi1(&l.brass, &l.steel_record, 6), now()).unwrap_err();
    assert_eq!(e, BoxError::Wire(postkey_wire::WireError::BadSignature));
    assert_eq!(l.oak.version(), v, "refusals change nothing");
    // Only an Oak box generates keys.
    assert_eq!(l.brass.oak().unwrap_err().response_code(), ResponseCode::WRONG_BOX_TYPE);
    assert!(
        l.oak
            .oak()
            .unwrap()
            .generate_key(
                &mi1(&l.steel, &l.steel_record, 5 + postkey_box::DEFAULT_KEY_ID_WINDOW),
                now()
            )
            .is_ok()
    );
}

#[test]
fn steel_refuses_a_replayed_mi4_one_for_another_box_and_any_flipped_byte() {
    let mut l = line();
    let g = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let mut m = meter(2);
    let hello = m.hello(&usps_id(), now()).unwrap();
    // Addressed to another Steel box.
    let e = l.steel2.steel().unwrap().begin_install(g.mi4.as_bytes(), &hello, now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::RECORD_NOT_FOR_THIS_BOX);
    // One flipped byte anywhere.
    let bytes = g.mi4.as_bytes();
    for i in (0..bytes.len()).step_by(5) {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x04;
        assert!(l.steel.steel().unwrap().begin_install(&bad, &hello, now()).is_err(), "byte {i}");
    }
    assert!(matches!(install(&mut l.steel, bytes, &mut m), InstallOutcome::Installed(_)));
    // Replayed.
    let mut m2 = meter(3);
    let hello2 = m2.hello(&usps_id(), now()).unwrap();
    let e = l.steel.steel().unwrap().begin_install(bytes, &hello2, now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::KEY_ID_NOT_FRESH);
}

/// A meter that answers wrong test tokens.
struct LyingMeter(SimulatedMeter);

impl MeterLink for LyingMeter {
    fn hello(
        &mut self,
        d: &DomainId,
        now: postkey_wire::Timestamp,
    ) -> Result<Vec<u8>, postkey_meter::MeterError> {
        self.0.hello(d, now)
    }
    fn install(
        &mut self,
        mi5: &[u8],
        now: postkey_wire::Timestamp,
    ) -> Result<Vec<u8>, postkey_meter::MeterError> {
        let mut mi6 = self.0.install(mi5, now)?;
        let n = mi6.len();
        mi6[n - 1] ^= 1; // the last byte of the test tokens
        Ok(mi6)
    }
}

#[test]
fn a_meter_answering_wrong_test_tokens_gets_aborted_never_installed() {
    let mut l = line();
    let g = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let mut liar = LyingMeter(meter(4));
    let InstallOutcome::Aborted(aborted) = install(&mut l.steel, g.mi4.as_bytes(), &mut liar)
    else {
        panic!("a wrong answer was accepted")
    };
    assert_eq!(aborted.header().key_id, Some(KeyId::new(1).unwrap()));
    assert!(l.steel.process(&usps_id()).unwrap().in_flight().next().is_none());
}

#[test]
fn brass_finds_an_archive_copy_that_differs_from_the_installed_key() {
    let mut l = line();
    let g = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let mut m = meter(5);
    let InstallOutcome::Installed(mi7) = install(&mut l.steel, g.mi4.as_bytes(), &mut m) else {
        panic!()
    };
    // A faulty Oak: the MI3 it archived holds another key than the one it sent to Steel.
    let other = postkey_secrets::MasterKey::from_bytes([9; 32]);
    let brass_conf = l.brass.process(&usps_id()).unwrap().public().brass_conf;
    let info =
        postkey_crypto::HpkeInfo::new(postkey_crypto::HpkeRecordType::Mi3, "USPS", 1, "BRASS:USPS")
            .unwrap();
    let sealed = other.seal_to(&brass_conf, &info, &mut rng(300)).unwrap();
    let ProcessKeys::Oak { oak_auth } = l.oak.process(&usps_id()).unwrap().keys() else { panic!() };
    let body = NewKeyRecord { oak: g.mi3.body().oak, steel: g.mi3.body().steel, sealed };
    let context = Context {
        domain: usps_id(),
        sender: g.mi3.header().sender.clone(),
        meter_id: None,
        key_id: g.mi3.header().key_id,
        state_version: g.mi3.header().state_version,
        timestamp: now(),
    };
    let faulty = postkey_wire::sign(Message::new(context, body), oak_auth);
    let CheckOutcome::Bad(bad) =
        l.brass.brass().unwrap().check_install(faulty.as_bytes(), mi7.as_bytes(), now()).unwrap()
    else {
        panic!("a differing archive copy was accepted")
    };
    assert_eq!(bad.body().code, ResponseCode::TEST_TOKENS_MISMATCH.0);
}

#[test]
fn an_mi3_moved_to_another_key_id_does_not_open_at_brass() {
    let mut l = line();
    let g1 = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let g2 = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 2), now()).unwrap();
    let mut m = meter(6);
    let InstallOutcome::Installed(mi7) = install(&mut l.steel, g2.mi4.as_bytes(), &mut m) else {
        panic!()
    };
    // Key 1's sealed K, re-signed by the (compromised) Oak key under key ID 2: the HPKE info
    // binds the key ID, so it does not open.
    let ProcessKeys::Oak { oak_auth } = l.oak.process(&usps_id()).unwrap().keys() else { panic!() };
    let body = NewKeyRecord {
        oak: g1.mi3.body().oak,
        steel: g1.mi3.body().steel,
        sealed: g1.mi3.body().sealed.clone(),
    };
    let context = Context { key_id: g2.mi3.header().key_id, ..context_of(&g2.mi3) };
    let moved = postkey_wire::sign(Message::new(context, body), oak_auth);
    let CheckOutcome::Bad(bad) =
        l.brass.brass().unwrap().check_install(moved.as_bytes(), mi7.as_bytes(), now()).unwrap()
    else {
        panic!()
    };
    assert_eq!(bad.body().code, ResponseCode::DECRYPTION_FAILED.0);
}

fn context_of<B: postkey_wire::Body>(v: &postkey_wire::Verified<B>) -> Context {
    let h = v.header();
    Context {
        domain: h.domain.clone(),
        sender: h.sender.clone(),
        meter_id: h.meter_id.clone(),
        key_id: h.key_id,
        state_version: h.state_version,
        timestamp: h.timestamp,
    }
}

#[test]
fn brass_refuses_flipped_mi3_and_mi7() {
    let mut l = line();
    let g = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let mut m = meter(7);
    let InstallOutcome::Installed(mi7) = install(&mut l.steel, g.mi4.as_bytes(), &mut m) else {
        panic!()
    };
    for (which, bytes) in [("MI3", g.mi3.as_bytes()), ("MI7", mi7.as_bytes())] {
        for i in (0..bytes.len()).step_by(9) {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x10;
            let r = if which == "MI3" {
                l.brass.brass().unwrap().check_install(&bad, mi7.as_bytes(), now())
            } else {
                l.brass.brass().unwrap().check_install(g.mi3.as_bytes(), &bad, now())
            };
            assert!(r.is_err(), "{which} byte {i} accepted");
        }
    }
    assert!(matches!(
        l.brass.brass().unwrap().check_install(g.mi3.as_bytes(), mi7.as_bytes(), now()).unwrap(),
        CheckOutcome::Installed { .. }
    ));
}

#[test]
fn a_steel_box_stopped_mid_installation_aborts_the_key_after_restart_and_never_installs_it() {
    let mut l = line();
    let dir = tempfile::tempdir().unwrap();
    let store = postkey_box::runtime::BoxStore::new(dir.path());
    let g = l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, 1), now()).unwrap();
    let mut m = meter(8);
    let hello = m.hello(&usps_id(), now()).unwrap();
    let _mi5 = l.steel.steel().unwrap().begin_install(g.mi4.as_bytes(), &hello, now()).unwrap();
    // The runtime seals the in-flight installation before MI5 leaves; then the process dies.
    store.commit(&mut l.steel).unwrap();
    let id = l.steel.id();
    drop(l.steel);
    let os = postkey_secrets::rng::testing::SeededSource(
        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(9),
    );
    let mut steel =
        store.enable(id, &l.anchors, &l.steel_shares, os, b"restart").unwrap().secure_box;
    assert_eq!(
        steel.process(&usps_id()).unwrap().in_flight().map(|f| f.key_id.get()).collect::<Vec<_>>(),
        vec![1]
    );
    let aborted = steel.steel().unwrap().abort_interrupted(now()).unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(aborted[0].header().meter_id.as_ref(), Some(m.meter().id()));
    // Nothing is in flight any more, and the key can never be installed again.
    assert!(steel.steel().unwrap().abort_interrupted(now()).unwrap().is_empty());
    let e = steel.steel().unwrap().begin_install(g.mi4.as_bytes(), &hello, now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::KEY_ID_NOT_FRESH);
    // MI6 for the aborted installation finds nothing in flight.
    assert!(store.list().unwrap().contains(&id));
}

#[test]
fn a_batch_of_mi1_is_answered_key_by_key_and_a_refused_one_changes_nothing_of_the_others() {
    let mut l = line();
    let good = |k| mi1(&l.steel, &l.steel_record, k);
    // The same papers with one byte of the process record's signature flipped: checked again,
    // never taken from the batch's memo of the papers that verified.
    let mut forged_papers = l.steel_record.clone();
    let last = forged_papers.len() - 1;
    forged_papers[last] ^= 1;
    let forged = mi1(&l.steel, &forged_papers, 4);
    let batch = [good(1), good(2), good(2), forged, good(3), good(1_000_004)];
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let answers = l.oak.oak().unwrap().generate_keys(&refs, now());
    let codes: Vec<Option<ResponseCode>> =
        answers.iter().map(|a| a.as_ref().err().map(BoxError::response_code)).collect();
    assert_eq!(
        codes,
        vec![
            None,
            None,
            Some(ResponseCode::KEY_ID_NOT_FRESH),
            Some(ResponseCode::BAD_SIGNATURE),
            None,
            Some(ResponseCode::KEY_ID_BEYOND_WINDOW),
        ]
    );
    assert_eq!(l.oak.process(&usps_id()).unwrap().last_key_id(), 3);
    let ids: Vec<u64> =
        answers.iter().flatten().map(|g| g.mi3.header().key_id.unwrap().get()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

#[test]
fn a_steel_box_keeps_a_batch_in_flight_and_aborts_all_of_it_after_a_stop() {
    let mut l = line();
    let dir = tempfile::tempdir().unwrap();
    let store = postkey_box::runtime::BoxStore::new(dir.path());
    let mut meters: Vec<SimulatedMeter> = (20..23).map(meter).collect();
    let mut mi4s = Vec::new();
    for k in 1..=3 {
        let g =
            l.oak.oak().unwrap().generate_key(&mi1(&l.steel, &l.steel_record, k), now()).unwrap();
        mi4s.push(g.mi4.as_bytes().to_vec());
    }
    let hellos: Vec<Vec<u8>> =
        meters.iter_mut().map(|m| m.hello(&usps_id(), now()).unwrap()).collect();
    let items: Vec<(&[u8], &[u8])> =
        mi4s.iter().zip(&hellos).map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
    let mi5s = l.steel.steel().unwrap().begin_installs(&items, now());
    assert!(mi5s.iter().all(Result::is_ok));
    // The first meter answers; the second's link fails (ABORTED at once); then the box stops.
    let mi6 = meters[0].install(&mi5s[0].as_ref().unwrap().to_bytes(), now()).unwrap();
    let outcomes = l.steel.steel().unwrap().finish_installs(&[&mi6], now());
    assert!(matches!(outcomes[0], Ok(InstallOutcome::Installed(_))));
    let aborted = l
        .steel
        .steel()
        .unwrap()
        .abort_install(&usps_id(), KeyId::new(2).unwrap(), "no answer", now())
        .unwrap();
    assert_eq!(aborted.header().key_id, Some(KeyId::new(2).unwrap()));
    assert!(aborted.body().reason.contains("no answer"));
    store.commit(&mut l.steel).unwrap();
    let id = l.steel.id();
    drop(l.steel);
    let os = postkey_secrets::rng::testing::SeededSource(
        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(10),
    );
    let mut steel =
        store.enable(id, &l.anchors, &l.steel_shares, os, b"restart").unwrap().secure_box;
    let flying: Vec<u64> =
        steel.process(&usps_id()).unwrap().in_flight().map(|f| f.key_id.get()).collect();
    assert_eq!(flying, vec![3]);
    // Nothing new starts while an interrupted installation awaits RECOVER.
    let g = l.oak.oak().unwrap().generate_key(&mi1(&steel, &l.steel_record, 4), now()).unwrap();
    let hello = meters[2].hello(&usps_id(), now()).unwrap();
    let e = steel.steel().unwrap().begin_install(g.mi4.as_bytes(), &hello, now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::INSTALL_IN_FLIGHT);
    let aborted = steel.steel().unwrap().abort_interrupted(now()).unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].header().key_id, Some(KeyId::new(3).unwrap()));
    // The meter's late MI6 for key 3 finds nothing in flight; key 4 now goes through.
    let late = meters[2].install(&mi5s[2].as_ref().unwrap().to_bytes(), now());
    if let Ok(mi6) = late {
        let e = steel.steel().unwrap().finish_install(&mi6, now()).unwrap_err();
        assert_eq!(e.response_code(), ResponseCode::NO_INSTALL_IN_FLIGHT);
    }
    assert!(
        steel
            .steel()
            .unwrap()
            .begin_install(g.mi4.as_bytes(), &meters[1].hello(&usps_id(), now()).unwrap(), now())
            .is_ok()
    );
}
