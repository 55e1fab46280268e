//! Key installation inside the boxes (protocol §6.1): Oak, Steel over the meter link, Brass; and the
//! attack and fault cases, each refused or turned into a signed ABORTED or BAD record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use common::{batch, cert, cmd, cmd_with, first, manufacture, now, parse, rng, sub, usps};
use postkey_box::runtime::BoxStore;
use postkey_box::{Brass, Host, MAX_IN_FLIGHT, Oak, Seal, SecureBox, Steel, Stopped, TypedBox};
use postkey_meter::{Meter, SimulatedMeter};
use postkey_wire::command::{
    CheckInstall, Checked, Confirmed, Deliver, GenerateKey, Generated, InstallEnded, InstallKey,
    InstallProcess, Recover, SignTables, UpdateTables,
};
use postkey_wire::{
    BoxType, CommandCode, Context, DomainId, Header, Installed, KeyForMeter, KeyForSteel, KeyId,
    Message, MeterHello, MeterId, MeterLink, MeterTestTokens, NewKeyRecord, ProcessRecord,
    RecordType, Refusal, ResponseCode, Role, Sender, TestTokens, Timestamp, Unverified,
};

/// An M box and the boxes of one production line, each running a USPS process.
struct Line {
    m: SecureBox,
    oak: SecureBox,
    steel: SecureBox,
    steel2: SecureBox,
    brass: SecureBox,
    steel_record: Unverified<ProcessRecord>,
    steel2_record: Unverified<ProcessRecord>,
    steel_shares: Vec<Vec<u8>>,
    bundle: Unverified<postkey_wire::DomainBundle>,
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
        let subdomains = if t == BoxType::Brass { vec![sub("USPS/US")] } else { vec![] };
        let d =
            cmd(m, Deliver { bundle: bundle.clone(), recipient: cert(&b), subdomains }).unwrap();
        cmd(&mut b, InstallProcess { delivery: d.delivery }).unwrap();
        records.push(d.record);
        boxes.push(b);
    }
    let brass = boxes.pop().unwrap();
    let steel2 = boxes.pop().unwrap();
    let steel = boxes.pop().unwrap();
    let oak = boxes.pop().unwrap();
    Line {
        m: f.secure_box,
        oak,
        steel,
        steel2,
        brass,
        steel_record: records[1].clone(),
        steel2_record: records[2].clone(),
        steel_shares,
        bundle,
    }
}

/// GENERATE_KEY with the MI1 of `key_id` for `steel`, whose process record is `record`.
fn mi1(steel: &SecureBox, record: &[u8], key_id: u64) -> GenerateKey {
    let context = Context {
        domain: usps_id(),
        sender: Sender::Role(Role::Kmc),
        meter_id: None,
        key_id: Some(KeyId::new(key_id).unwrap()),
        state_version: None,
        timestamp: now(),
    };
    let body = postkey_wire::GenerateKey {
        steel_certificate: steel.certificate().unwrap().as_bytes().to_vec(),
        steel_process: record.to_vec(),
    };
    GenerateKey { mi1: Message::new(context, body) }
}

impl Line {
    /// The MI1 of `key_id` for the first Steel box, with its own papers.
    fn order(&self, key_id: u64) -> GenerateKey {
        mi1(&self.steel, self.steel_record.as_bytes(), key_id)
    }

    /// MI2 of `key_id` from the Oak box.
    fn generate(&mut self, key_id: u64) -> Generated {
        let order = self.order(key_id);
        cmd(&mut self.oak, order).unwrap()
    }

    /// The USPS domain's public keys.
    fn public(&self) -> postkey_wire::DomainPublicKeys {
        self.oak.domain_public(&usps_id()).unwrap().clone()
    }
}

fn meter_id(n: u32) -> MeterId {
    MeterId::parse(&format!("PB1234-{n:06}")).unwrap()
}

fn meter(n: u32) -> SimulatedMeter {
    SimulatedMeter::new(Meter::manufacture(meter_id(n), &mut rng(200 + u64::from(n))).unwrap())
}

/// A Steel box's production line as its host: the meters on its meter link, its commits counted
/// (and written to a store when it has one, or failing), and the failures it logged.
#[derive(Default)]
struct Floor {
    meters: BTreeMap<MeterId, Box<dyn MeterLink>>,
    store: Option<BoxStore>,
    commits: Rc<Cell<usize>>,
    fail_commit: bool,
    logged: Vec<Refusal>,
    /// The meters asked to make their keys durable, in order.
    durable: Vec<MeterId>,
    /// The meters' storage fails with this.
    fail_meters: Option<String>,
}

impl Floor {
    fn with(meters: &[&SimulatedMeter]) -> Self {
        let mut floor = Self::default();
        for m in meters {
            floor.connect(m);
        }
        floor
    }

    fn connect(&mut self, m: &SimulatedMeter) {
        let id = m.meter().id().clone();
        self.plug(id, m.clone());
    }

    fn plug(&mut self, id: MeterId, link: impl MeterLink + 'static) {
        self.meters.insert(id, Box::new(link));
    }
}

impl Host for Floor {
    type Error = String;

    fn commit(&mut self, b: &mut dyn Seal) -> Result<(), String> {
        self.commits.set(self.commits.get() + 1);
        if self.fail_commit {
            return Err("the disk is full".into());
        }
        match &self.store {
            Some(store) => store.commit(b).map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn meter_link(&mut self, meter: &MeterId) -> Option<&mut dyn MeterLink> {
        self.meters.get_mut(meter).map(|link| &mut **link as &mut dyn MeterLink)
    }

    fn meters_durable(&mut self, meters: &[MeterId]) -> Result<(), Refusal> {
        self.durable.extend(meters.iter().cloned());
        match &self.fail_meters {
            Some(why) => Err(Refusal::new(ResponseCode::STORAGE_FAILED, why.clone())),
            None => Ok(()),
        }
    }

    fn log(&mut self, refusal: &Refusal) {
        self.logged.push(refusal.clone());
    }
}

/// A meter that greets as usual and answers every MI5 with this refusal: a meter that refuses
/// the key, or a link that fails when MI5 is sent.
struct FailsMi5(SimulatedMeter, ResponseCode, &'static str);

impl FailsMi5 {
    fn refusing(meter: SimulatedMeter) -> Self {
        Self(meter, ResponseCode::RECORD_MISMATCH, "the meter's secure element is full")
    }

    fn unplugged(meter: SimulatedMeter) -> Self {
        Self(meter, ResponseCode::METER_NOT_CONNECTED, "no answer")
    }
}

impl MeterLink for FailsMi5 {
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal> {
        self.0.hello(domain, now)
    }

    fn install(
        &mut self,
        _: &Message<KeyForMeter>,
        _: Timestamp,
    ) -> Result<Message<MeterTestTokens>, Refusal> {
        Err(Refusal::new(self.1, self.2))
    }
}

/// Steel's INSTALL_KEY of one MI4 into `meter` over `floor`'s meter link.
fn install(
    steel: &mut SecureBox,
    mi4: &Unverified<KeyForSteel>,
    meter: MeterId,
    floor: &mut Floor,
) -> Result<InstallEnded, ResponseCode> {
    cmd_with(steel, InstallKey { mi4: mi4.clone(), meter }, floor)
}

/// A batch of INSTALL_KEY items: each item's answer or response code.
fn install_batch(
    steel: &mut SecureBox,
    items: Vec<InstallKey>,
    floor: &mut Floor,
) -> Vec<Result<InstallEnded, ResponseCode>> {
    match postkey_box::call(steel, items, now(), floor) {
        Ok(answers) => answers.into_iter().map(|a| a.map_err(|r| r.code)).collect(),
        Err(Stopped::Refused(e)) => panic!("the whole command was refused: {e}"),
        Err(Stopped::Host(e)) => panic!("the host failed: {e}"),
    }
}

fn context(h: &Header) -> Context {
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
fn a_key_goes_from_oak_through_steel_into_the_meter_and_brass_confirms_it() {
    let mut l = line();
    let g = l.generate(1);
    let m = meter(1);
    let mut floor = Floor::with(&[&m]);
    let ended = install(&mut l.steel, &g.mi4, meter_id(1), &mut floor).unwrap();
    let InstallEnded::Installed(mi7) = ended else { panic!("aborted: {ended:?}") };
    assert_eq!(floor.commits.get(), 1, "one commit before MI5 left");
    assert!(floor.logged.is_empty());
    assert_eq!(mi7.header().meter_id.as_ref(), Some(&meter_id(1)));
    let checked = cmd(&mut l.brass, CheckInstall { mi3: g.mi3.clone(), mi7: mi7.clone() }).unwrap();
    let Checked::Installed(Confirmed { mi9, mi10 }) = checked else { panic!("bad: {checked:?}") };
    let public = l.public();
    let mi9 = mi9.verify(&public.brass_auth).unwrap();
    let mi10 = mi10.verify(&public.brass_auth).unwrap();
    assert_eq!(mi9.header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(mi10.header().meter_id.as_ref(), Some(&meter_id(1)));
    // The meter holds exactly the key the archive copy holds: their test tokens agree.
    let mi7 = mi7.verify(&public.steel_auth).unwrap();
    let meter = m.meter();
    let installed = &meter.keys()[&usps_id()];
    assert_eq!(installed.key_id, KeyId::new(1).unwrap());
    assert_eq!(installed.master_key().test_tokens(), mi7.body().test_tokens);
    assert!(steel(&l.steel).in_flight().next().is_none());
}

#[test]
fn oak_refuses_replayed_and_far_key_ids_and_uncertified_steel_boxes() {
    let mut l = line();
    l.generate(5);
    let v = l.oak.version();
    for replay in [5, 4, 1] {
        let order = l.order(replay);
        assert_eq!(cmd(&mut l.oak, order).unwrap_err(), ResponseCode::KEY_ID_NOT_FRESH, "{replay}");
    }
    let far = l.order(5 + postkey_box::DEFAULT_KEY_ID_WINDOW + 1);
    assert_eq!(cmd(&mut l.oak, far).unwrap_err(), ResponseCode::KEY_ID_BEYOND_WINDOW);
    // A Steel box with another box's process record: not certified for the domain here.
    let other_record = mi1(&l.steel, l.steel2_record.as_bytes(), 6);
    assert_eq!(cmd(&mut l.oak, other_record).unwrap_err(), ResponseCode::NOT_CERTIFIED_FOR_DOMAIN);
    // A Brass box's certificate where a Steel box's belongs.
    let brass_cert = mi1(&l.brass, l.steel_record.as_bytes(), 6);
    assert_eq!(cmd(&mut l.oak, brass_cert).unwrap_err(), ResponseCode::BAD_SIGNATURE);
    assert_eq!(l.oak.version(), v, "refusals change nothing");
    assert_eq!(oak(&l.oak).process(&usps_id()).unwrap().last_key_id(), 5);
    // Only an Oak box generates keys: GENERATE_KEY is outside a Brass box's table, and a Brass
    // box whose table is widened to list it still refuses it for its type.
    let brass_v = l.brass.version();
    let order = l.order(6);
    assert_eq!(cmd(&mut l.brass, order).unwrap_err(), ResponseCode::COMMAND_NOT_IN_TABLE);
    let mut widened = l.brass.tables().clone();
    widened.commands.push(CommandCode::GENERATE_KEY);
    widened.record_types.extend(CommandCode::GENERATE_KEY.record_types());
    let update = cmd(&mut l.m, SignTables { recipient: l.brass.id(), tables: widened }).unwrap();
    cmd(&mut l.brass, UpdateTables { update }).unwrap();
    let brass_v2 = l.brass.version();
    assert!(brass_v2 > brass_v);
    let order = l.order(6);
    assert_eq!(cmd(&mut l.brass, order).unwrap_err(), ResponseCode::WRONG_BOX_TYPE);
    assert_eq!(l.brass.version(), brass_v2);
    // At the edge of the window, Oak generates.
    let edge = l.order(5 + postkey_box::DEFAULT_KEY_ID_WINDOW);
    assert!(cmd(&mut l.oak, edge).is_ok());
}

#[test]
fn steel_refuses_a_replayed_mi4_one_for_another_box_and_any_flipped_byte() {
    let mut l = line();
    let g = l.generate(1);
    let m = meter(2);
    let mut floor = Floor::with(&[&m]);
    // Addressed to another Steel box.
    let v2 = l.steel2.version();
    let e = install(&mut l.steel2, &g.mi4, meter_id(2), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::RECORD_NOT_FOR_THIS_BOX);
    assert_eq!(l.steel2.version(), v2);
    // One flipped byte anywhere: refused by the decoder or by the box, before any MI5 leaves.
    let v = l.steel.version();
    let bytes = g.mi4.as_bytes();
    let mut by_box = 0;
    for i in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x04;
        let parsed = parse::<KeyForSteel>(&bad);
        by_box += usize::from(parsed.is_ok());
        let r = parsed.and_then(|mi4| install(&mut l.steel, &mi4, meter_id(2), &mut floor));
        assert!(r.is_err(), "byte {i} accepted: {r:?}");
    }
    // At least every byte of the signature decodes and reaches the box, which refuses it.
    assert!(by_box >= 64, "{by_box}");
    assert_eq!(l.steel.version(), v);
    assert_eq!(floor.commits.get(), 0);
    assert!(m.meter().keys().is_empty());
    let ended = install(&mut l.steel, &g.mi4, meter_id(2), &mut floor).unwrap();
    assert!(matches!(ended, InstallEnded::Installed(_)), "{ended:?}");
    // Replayed, to another meter.
    let m3 = meter(3);
    floor.connect(&m3);
    let v = l.steel.version();
    let e = install(&mut l.steel, &g.mi4, meter_id(3), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::KEY_ID_NOT_FRESH);
    assert_eq!(l.steel.version(), v);
    assert!(m3.meter().keys().is_empty());
}

#[test]
fn a_meter_not_on_the_meter_link_is_refused_and_its_key_stays_usable() {
    let mut l = line();
    let g1 = l.generate(1);
    let g2 = l.generate(2);
    let g3 = l.generate(3);
    let mut floor = Floor::default();
    let v = l.steel.version();
    let e = install(&mut l.steel, &g1.mi4, meter_id(9), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::METER_NOT_CONNECTED);
    assert_eq!(l.steel.version(), v);
    assert_eq!(floor.commits.get(), 0);
    // Once the meter is on the line, the same MI4 goes through.
    let m9 = meter(9);
    floor.connect(&m9);
    let ended = install(&mut l.steel, &g1.mi4, meter_id(9), &mut floor).unwrap();
    assert!(matches!(ended, InstallEnded::Installed(_)), "{ended:?}");
    // In a batch, only the item naming the missing meter is refused.
    let m10 = meter(10);
    floor.connect(&m10);
    let answers = install_batch(
        &mut l.steel,
        vec![
            InstallKey { mi4: g2.mi4.clone(), meter: meter_id(11) },
            InstallKey { mi4: g3.mi4.clone(), meter: meter_id(10) },
        ],
        &mut floor,
    );
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0], Err(ResponseCode::METER_NOT_CONNECTED));
    assert!(matches!(answers[1], Ok(InstallEnded::Installed(_))), "{:?}", answers[1]);
    assert_eq!(m10.meter().keys()[&usps_id()].key_id, KeyId::new(3).unwrap());
}

#[test]
fn mi5_leaves_only_after_one_commit_of_the_whole_batch_and_never_if_it_fails() {
    /// A meter that notes how many commits the host had made when its MI5 arrived.
    struct Watched {
        meter: SimulatedMeter,
        commits: Rc<Cell<usize>>,
        seen: Rc<RefCell<Vec<usize>>>,
    }
    impl MeterLink for Watched {
        fn hello(&mut self, d: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal> {
            self.meter.hello(d, now)
        }
        fn install(
            &mut self,
            mi5: &Message<KeyForMeter>,
            now: Timestamp,
        ) -> Result<Message<MeterTestTokens>, Refusal> {
            self.seen.borrow_mut().push(self.commits.get());
            self.meter.install(mi5, now)
        }
    }
    let mut l = line();
    let g: Vec<Generated> = (1..=4).map(|k| l.generate(k)).collect();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let meters: Vec<SimulatedMeter> = (30..34).map(meter).collect();
    let mut floor = Floor::default();
    for (n, m) in (30..34).zip(&meters) {
        let watched =
            Watched { meter: m.clone(), commits: floor.commits.clone(), seen: seen.clone() };
        floor.plug(meter_id(n), watched);
    }
    // A host that cannot commit: the command stops, and no MI5 reaches any meter.
    floor.fail_commit = true;
    let items = vec![
        InstallKey { mi4: g[0].mi4.clone(), meter: meter_id(30) },
        InstallKey { mi4: g[1].mi4.clone(), meter: meter_id(31) },
    ];
    let stopped = postkey_box::call(&mut l.steel, items, now(), &mut floor);
    assert!(matches!(stopped, Err(Stopped::Host(_))), "{stopped:?}");
    assert_eq!(floor.commits.get(), 1);
    assert!(seen.borrow().is_empty());
    assert!(meters.iter().all(|m| m.meter().keys().is_empty()));
    // The host restarts from its last durable state (the box as it was before that command).
    let mut l = line();
    let g: Vec<Generated> = (1..=4).map(|k| l.generate(k)).collect();
    floor.fail_commit = false;
    floor.commits.set(0);
    let items = vec![
        InstallKey { mi4: g[2].mi4.clone(), meter: meter_id(32) },
        InstallKey { mi4: g[3].mi4.clone(), meter: meter_id(33) },
    ];
    let answers = install_batch(&mut l.steel, items, &mut floor);
    assert!(answers.iter().all(|a| matches!(a, Ok(InstallEnded::Installed(_)))), "{answers:?}");
    assert_eq!(floor.commits.get(), 1, "one commit for the whole batch");
    assert_eq!(*seen.borrow(), vec![1, 1], "every MI5 left after that commit");
}

/// A meter that answers wrong test tokens.
struct LyingMeter(SimulatedMeter);

impl MeterLink for LyingMeter {
    fn hello(&mut self, d: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal> {
        self.0.hello(d, now)
    }

    fn install(
        &mut self,
        mi5: &Message<KeyForMeter>,
        now: Timestamp,
    ) -> Result<Message<MeterTestTokens>, Refusal> {
        let mi6 = self.0.install(mi5, now)?;
        let mut tokens = mi6.body().test_tokens.to_bytes();
        let n = tokens.len();
        tokens[n - 1] ^= 1; // the last byte of the test tokens
        let body = MeterTestTokens { test_tokens: TestTokens::from_bytes(tokens) };
        Ok(Message::new(context(mi6.header()), body))
    }
}

#[test]
fn a_meter_answering_wrong_test_tokens_gets_aborted_never_installed() {
    let mut l = line();
    let g = l.generate(1);
    let mut floor = Floor::default();
    floor.plug(meter_id(4), LyingMeter(meter(4)));
    let ended = install(&mut l.steel, &g.mi4, meter_id(4), &mut floor).unwrap();
    let InstallEnded::Aborted(aborted) = ended else { panic!("a wrong answer was accepted") };
    let aborted = aborted.verify(&l.public().steel_auth).unwrap();
    assert_eq!(aborted.header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(aborted.header().meter_id.as_ref(), Some(&meter_id(4)));
    assert!(aborted.body().reason.contains("test tokens"), "{}", aborted.body().reason);
    assert!(steel(&l.steel).in_flight().next().is_none());
}

#[test]
fn a_meter_that_refuses_mi5_gets_a_signed_aborted_not_a_refusal() {
    let mut l = line();
    let g1 = l.generate(1);
    let g2 = l.generate(2);
    let m = meter(12);
    let mut floor = Floor::with(&[&m]);
    let first = install(&mut l.steel, &g1.mi4, meter_id(12), &mut floor).unwrap();
    assert!(matches!(first, InstallEnded::Installed(_)), "{first:?}");
    // The meter refuses the next MI5 (here: its secure element is full).
    floor.plug(meter_id(12), FailsMi5::refusing(m.clone()));
    let ended = install(&mut l.steel, &g2.mi4, meter_id(12), &mut floor).unwrap();
    let InstallEnded::Aborted(aborted) = ended else { panic!("installed twice: {ended:?}") };
    let aborted = aborted.verify(&l.public().steel_auth).unwrap();
    assert_eq!(aborted.header().key_id, Some(KeyId::new(2).unwrap()));
    assert_eq!(aborted.header().meter_id.as_ref(), Some(&meter_id(12)));
    assert_eq!(aborted.body().steel, l.steel.id());
    assert!(aborted.body().reason.contains("full"), "{}", aborted.body().reason);
    // The host logged the meter's refusal, with its code.
    assert_eq!(floor.logged.len(), 1);
    assert_eq!(floor.logged[0].code, ResponseCode::RECORD_MISMATCH);
    assert!(floor.logged[0].message.contains(&meter_id(12).to_string()));
    assert!(steel(&l.steel).in_flight().next().is_none());
    assert_eq!(m.meter().keys()[&usps_id()].key_id, KeyId::new(1).unwrap());
}

#[test]
fn brass_finds_an_archive_copy_that_differs_from_the_installed_key() {
    let mut l = line();
    let g = l.generate(1);
    let m = meter(5);
    let mut floor = Floor::with(&[&m]);
    let ended = install(&mut l.steel, &g.mi4, meter_id(5), &mut floor).unwrap();
    let InstallEnded::Installed(mi7) = ended else { panic!("{ended:?}") };
    // A faulty Oak: the MI3 it archived holds another key than the one it sent to Steel.
    let other = postkey_secrets::MasterKey::from_bytes([9; 32]);
    let brass_conf = l.brass.domain_public(&usps_id()).unwrap().brass_conf;
    let info =
        postkey_crypto::HpkeInfo::new(postkey_crypto::HpkeRecordType::Mi3, "USPS", 1, "BRASS:USPS")
            .unwrap();
    let sealed = other.seal_to(&brass_conf, &info, &mut rng(300)).unwrap();
    let oak_auth = oak(&l.oak).process(&usps_id()).unwrap().keys().signing_key();
    let claimed = g.mi3.claimed_body();
    let body = NewKeyRecord { oak: claimed.oak, steel: claimed.steel, sealed };
    let faulty = postkey_wire::sign(Message::new(context(g.mi3.header()), body), oak_auth);
    let checked = cmd(&mut l.brass, CheckInstall { mi3: faulty.into(), mi7 }).unwrap();
    let Checked::Bad(bad) = checked else { panic!("a differing archive copy was accepted") };
    let bad = bad.verify(&l.public().brass_auth).unwrap();
    assert_eq!(bad.body().code, ResponseCode::TEST_TOKENS_MISMATCH.0);
    assert_eq!(bad.header().key_id, Some(KeyId::new(1).unwrap()));
}

#[test]
fn an_mi3_moved_to_another_key_id_does_not_open_at_brass() {
    let mut l = line();
    let g1 = l.generate(1);
    let g2 = l.generate(2);
    let m = meter(6);
    let mut floor = Floor::with(&[&m]);
    let ended = install(&mut l.steel, &g2.mi4, meter_id(6), &mut floor).unwrap();
    let InstallEnded::Installed(mi7) = ended else { panic!("{ended:?}") };
    // Key 1's sealed K, re-signed by the (compromised) Oak key under key ID 2: the HPKE info
    // binds the key ID, so it does not open.
    let oak_auth = oak(&l.oak).process(&usps_id()).unwrap().keys().signing_key();
    let claimed = g1.mi3.claimed_body();
    let body =
        NewKeyRecord { oak: claimed.oak, steel: claimed.steel, sealed: claimed.sealed.clone() };
    let moved_context = Context { key_id: g2.mi3.header().key_id, ..context(g1.mi3.header()) };
    let moved = postkey_wire::sign(Message::new(moved_context, body), oak_auth);
    let checked = cmd(&mut l.brass, CheckInstall { mi3: moved.into(), mi7 }).unwrap();
    let Checked::Bad(bad) = checked else { panic!("a moved key was accepted") };
    let bad = bad.verify(&l.public().brass_auth).unwrap();
    assert_eq!(bad.body().code, ResponseCode::DECRYPTION_FAILED.0);
}

#[test]
fn brass_refuses_flipped_mi3_and_mi7() {
    let mut l = line();
    let g = l.generate(1);
    let m = meter(7);
    let mut floor = Floor::with(&[&m]);
    let ended = install(&mut l.steel, &g.mi4, meter_id(7), &mut floor).unwrap();
    let InstallEnded::Installed(mi7) = ended else { panic!("{ended:?}") };
    let v = l.brass.version();
    let mi3_bytes = g.mi3.as_bytes();
    let mut by_box = 0;
    for i in 0..mi3_bytes.len() {
        let mut bad = mi3_bytes.to_vec();
        bad[i] ^= 0x10;
        let parsed = parse::<NewKeyRecord>(&bad);
        by_box += usize::from(parsed.is_ok());
        let r = parsed.and_then(|mi3| cmd(&mut l.brass, CheckInstall { mi3, mi7: mi7.clone() }));
        assert!(r.is_err(), "MI3 byte {i} accepted: {r:?}");
    }
    assert!(by_box >= 64, "MI3: {by_box}");
    let mut by_box = 0;
    let mi7_bytes = mi7.as_bytes();
    for i in 0..mi7_bytes.len() {
        let mut bad = mi7_bytes.to_vec();
        bad[i] ^= 0x10;
        let parsed = parse::<Installed>(&bad);
        by_box += usize::from(parsed.is_ok());
        let r = parsed.and_then(|mi7| cmd(&mut l.brass, CheckInstall { mi3: g.mi3.clone(), mi7 }));
        assert!(r.is_err(), "MI7 byte {i} accepted: {r:?}");
    }
    assert!(by_box >= 64, "MI7: {by_box}");
    assert_eq!(l.brass.version(), v);
    let checked = cmd(&mut l.brass, CheckInstall { mi3: g.mi3.clone(), mi7 }).unwrap();
    assert!(matches!(checked, Checked::Installed(_)), "{checked:?}");
}

/// The Steel box `id` enabled again from `store` with its custodians' shares, as after a stop.
fn enable_steel(
    l: &Line,
    store: &BoxStore,
    cert: &postkey_wire::Verified<postkey_wire::Certificate>,
    seed: u64,
) -> SecureBox {
    let os = postkey_secrets::rng::testing::SeededSource(
        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed),
    );
    store.enable(cert, &l.steel_shares, os, b"restart").unwrap().secure_box
}

/// The first Steel box stops: its state in memory is lost, only what its host committed remains.
/// A stand-in takes its place in the line (the line's other boxes and papers are unchanged).
fn stop_steel(l: &mut Line, seed: u64) {
    let stand_in = manufacture(&mut l.m, BoxType::Steel, seed).secure_box;
    drop(std::mem::replace(&mut l.steel, stand_in));
}

fn in_flight(b: &SecureBox) -> Vec<u64> {
    steel(b).in_flight().map(|f| f.key_id.get()).collect()
}

/// Key 1 installed into meter 8 by the line's Steel box, whose host writes its state to a store
/// in `dir`: the store, the generated key, the floor and how the installation ended.
fn stored_install(
    l: &mut Line,
    dir: &std::path::Path,
) -> (BoxStore, Generated, Floor, InstallEnded) {
    let store = BoxStore::new(dir);
    let g = l.generate(1);
    let mut floor = Floor::with(&[&meter(8)]);
    floor.store = Some(store.clone());
    let ended = install(&mut l.steel, &g.mi4, meter_id(8), &mut floor).unwrap();
    (store, g, floor, ended)
}

#[test]
fn recover_answers_again_how_the_last_batch_ended_after_a_restart() {
    let mut l = line();
    let dir = tempfile::tempdir().unwrap();
    let (store, g, mut floor, ended) = stored_install(&mut l, dir.path());
    let InstallEnded::Installed(mi7) = ended else { panic!("{ended:?}") };
    // The answer is committed with the state; then the KMC stops before it records MI7.
    assert!(store.commit(&mut l.steel).unwrap());
    let cert = l.steel.certificate().unwrap().clone();
    stop_steel(&mut l, 108);
    let mut steel = enable_steel(&l, &store, &cert, 8);
    let again = cmd(&mut steel, Recover {}).unwrap();
    assert!(matches!(&again[..], [InstallEnded::Installed(m)] if m.as_bytes() == mi7.as_bytes()));
    // A batch refused whole changes none of it.
    let v = steel.version();
    let e = install(&mut steel, &g.mi4, meter_id(8), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::KEY_ID_NOT_FRESH);
    assert_eq!(steel.version(), v);
    assert_eq!(cmd(&mut steel, Recover {}).unwrap().len(), 1);
}

#[test]
fn a_steel_box_stopped_mid_installation_aborts_the_key_after_restart_and_never_installs_it() {
    let mut l = line();
    let dir = tempfile::tempdir().unwrap();
    // The host seals the in-flight installation before MI5 leaves (its one commit inside the
    // command); then the process dies before the answer is committed: MI7 never leaves.
    let (store, g, floor, ended) = stored_install(&mut l, dir.path());
    assert!(matches!(ended, InstallEnded::Installed(_)), "{ended:?}");
    assert_eq!(floor.commits.get(), 1);
    let cert = l.steel.certificate().unwrap().clone();
    stop_steel(&mut l, 109);
    let mut steel = enable_steel(&l, &store, &cert, 9);
    assert_eq!(in_flight(&steel), vec![1]);
    let aborted = cmd(&mut steel, Recover {}).unwrap();
    assert_eq!(aborted.len(), 1);
    let InstallEnded::Aborted(aborted) = aborted[0].clone() else { panic!("{aborted:?}") };
    let aborted = aborted.verify(&l.public().steel_auth).unwrap();
    assert_eq!(aborted.header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(aborted.header().meter_id.as_ref(), Some(&meter_id(8)));
    assert_eq!(aborted.body().steel, cert.body().box_id);
    // Nothing is in flight any more, a second RECOVER answers the same ABORTED (for a KMC that
    // stopped before it recorded it), and the key can never be installed again.
    assert!(in_flight(&steel).is_empty());
    let again = cmd(&mut steel, Recover {}).unwrap();
    assert!(matches!(&again[..], [InstallEnded::Aborted(a)] if a.as_bytes() == aborted.as_bytes()));
    let fresh = meter(13);
    let mut floor = Floor::with(&[&fresh]);
    let v = steel.version();
    let e = install(&mut steel, &g.mi4, meter_id(13), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::KEY_ID_NOT_FRESH);
    assert_eq!(steel.version(), v);
    assert!(fresh.meter().keys().is_empty());
    assert!(store.list().unwrap().contains(&cert.body().box_id));
}

#[test]
fn a_batch_of_mi1_is_answered_key_by_key_and_a_refused_one_changes_nothing_of_the_others() {
    let mut l = line();
    // The same papers with one byte of the process record's signature flipped: checked again,
    // never taken from the batch's memo of the papers that verified.
    let mut forged_papers = l.steel_record.as_bytes().to_vec();
    let last = forged_papers.len() - 1;
    forged_papers[last] ^= 1;
    let forged = mi1(&l.steel, &forged_papers, 4);
    let items = vec![l.order(1), l.order(2), l.order(2), forged, l.order(3), l.order(1_000_004)];
    let answers = batch(&mut l.oak, items).unwrap();
    let codes: Vec<Option<ResponseCode>> =
        answers.iter().map(|a| a.as_ref().err().copied()).collect();
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
    assert_eq!(oak(&l.oak).process(&usps_id()).unwrap().last_key_id(), 3);
    let ids: Vec<u64> =
        answers.iter().flatten().map(|g| g.mi3.header().key_id.unwrap().get()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let mi4_ids: Vec<u64> =
        answers.iter().flatten().map(|g| g.mi4.header().key_id.unwrap().get()).collect();
    assert_eq!(mi4_ids, vec![1, 2, 3]);
}

/// A meter that answers every MI5 with an MI6 it gave before.
struct Replaying {
    meter: SimulatedMeter,
    answer: Message<MeterTestTokens>,
}

impl MeterLink for Replaying {
    fn hello(&mut self, d: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal> {
        self.meter.hello(d, now)
    }

    fn install(
        &mut self,
        _: &Message<KeyForMeter>,
        _: Timestamp,
    ) -> Result<Message<MeterTestTokens>, Refusal> {
        Ok(self.answer.clone())
    }
}

#[test]
fn a_steel_box_keeps_a_batch_in_flight_and_aborts_all_of_it_after_a_stop() {
    let mut l = line();
    let dir = tempfile::tempdir().unwrap();
    let store = BoxStore::new(dir.path());
    let meters: Vec<SimulatedMeter> = (20..26).map(meter).collect();
    let orders = (1..=6).map(|k| l.order(k)).collect();
    let g: Vec<Generated> =
        batch(&mut l.oak, orders).unwrap().into_iter().map(Result::unwrap).collect();
    let mut floor = Floor::with(&[&meters[0], &meters[2], &meters[3], &meters[4]]);
    floor.plug(meter_id(21), FailsMi5::unplugged(meters[1].clone()));
    floor.store = Some(store.clone());
    // The first batch: meter 20 answers, meter 21's link fails (ABORTED at once); the host
    // commits the answers before they leave.
    let answers = install_batch(
        &mut l.steel,
        vec![
            InstallKey { mi4: g[0].mi4.clone(), meter: meter_id(20) },
            InstallKey { mi4: g[1].mi4.clone(), meter: meter_id(21) },
        ],
        &mut floor,
    );
    assert!(matches!(answers[0], Ok(InstallEnded::Installed(_))), "{:?}", answers[0]);
    let Ok(InstallEnded::Aborted(aborted)) = &answers[1] else { panic!("{:?}", answers[1]) };
    let aborted = aborted.clone().verify(&l.public().steel_auth).unwrap();
    assert_eq!(aborted.header().key_id, Some(KeyId::new(2).unwrap()));
    assert!(aborted.body().reason.contains("no answer"), "{}", aborted.body().reason);
    assert_eq!(floor.logged.len(), 1);
    assert_eq!(floor.logged[0].code, ResponseCode::METER_NOT_CONNECTED);
    assert_eq!(floor.commits.get(), 1);
    assert!(store.commit(&mut l.steel).unwrap(), "the batch's answers are committed");
    // The second batch: keys 3 and 4 are sealed in flight and their MI5 leave; then the box
    // stops before its answers are committed.
    let answers = install_batch(
        &mut l.steel,
        vec![
            InstallKey { mi4: g[2].mi4.clone(), meter: meter_id(22) },
            InstallKey { mi4: g[3].mi4.clone(), meter: meter_id(23) },
        ],
        &mut floor,
    );
    assert!(answers.iter().all(|a| matches!(a, Ok(InstallEnded::Installed(_)))), "{answers:?}");
    assert_eq!(floor.commits.get(), 2);
    let cert = l.steel.certificate().unwrap().clone();
    stop_steel(&mut l, 110);
    let mut steel = enable_steel(&l, &store, &cert, 10);
    assert_eq!(in_flight(&steel), vec![3, 4]);
    // Nothing new starts while an interrupted installation awaits RECOVER.
    let v = steel.version();
    let e = install(&mut steel, &g[4].mi4, meter_id(24), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::INSTALL_IN_FLIGHT);
    assert_eq!(steel.version(), v);
    assert!(meters[4].meter().keys().is_empty());
    let aborted = cmd(&mut steel, Recover {}).unwrap();
    let aborted: Vec<_> = aborted
        .into_iter()
        .map(|a| match a {
            InstallEnded::Aborted(a) => a.verify(&l.public().steel_auth).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    let keys: Vec<Option<KeyId>> = aborted.iter().map(|a| a.header().key_id).collect();
    assert_eq!(keys, vec![Some(KeyId::new(3).unwrap()), Some(KeyId::new(4).unwrap())]);
    assert!(in_flight(&steel).is_empty());
    // Key 5, refused above, now goes through.
    let ended = install(&mut steel, &g[4].mi4, meter_id(24), &mut floor).unwrap();
    assert!(matches!(ended, InstallEnded::Installed(_)), "{ended:?}");
    // Meter 22's late MI6 for key 3 finds nothing in flight: answered to the MI5 of key 6, it
    // ends that installation with ABORTED, never with MI7.
    let late = Message::new(
        Context {
            domain: usps_id(),
            sender: Sender::Meter(meter_id(22)),
            meter_id: Some(meter_id(22)),
            key_id: Some(KeyId::new(3).unwrap()),
            state_version: None,
            timestamp: now(),
        },
        MeterTestTokens {
            test_tokens: meters[2].meter().keys()[&usps_id()].master_key().test_tokens(),
        },
    );
    assert_eq!(meters[2].meter().keys()[&usps_id()].key_id, KeyId::new(3).unwrap());
    floor.plug(meter_id(22), Replaying { meter: meters[2].clone(), answer: late });
    floor.logged.clear();
    let ended = install(&mut steel, &g[5].mi4, meter_id(22), &mut floor).unwrap();
    let InstallEnded::Aborted(aborted) = ended else { panic!("a late MI6 was taken: {ended:?}") };
    assert_eq!(aborted.header().key_id, Some(KeyId::new(6).unwrap()));
    assert_eq!(floor.logged.len(), 1);
    assert_eq!(floor.logged[0].code, ResponseCode::NO_INSTALL_IN_FLIGHT);
    assert!(in_flight(&steel).is_empty());
}

#[test]
fn steel_refuses_installations_beyond_max_in_flight_in_one_batch() {
    let mut l = line();
    let n = MAX_IN_FLIGHT + 1;
    let orders = (1..=n as u64).map(|k| l.order(k)).collect();
    let g: Vec<Generated> =
        batch(&mut l.oak, orders).unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(g.len(), n);
    // One meter on the line: each key replaces the one before (a newer key of its domain).
    let m = meter(40);
    let mut floor = Floor::with(&[&m]);
    let items = g.iter().map(|g| InstallKey { mi4: g.mi4.clone(), meter: meter_id(40) }).collect();
    let answers = install_batch(&mut l.steel, items, &mut floor);
    assert_eq!(answers.len(), n);
    assert!(answers[..MAX_IN_FLIGHT].iter().all(|a| matches!(a, Ok(InstallEnded::Installed(_)))));
    assert_eq!(m.meter().keys()[&usps_id()].key_id.get(), MAX_IN_FLIGHT as u64);
    assert_eq!(answers[MAX_IN_FLIGHT], Err(ResponseCode::TOO_MANY_IN_FLIGHT));
    assert_eq!(floor.commits.get(), 1);
    assert!(in_flight(&l.steel).is_empty());
    // The surplus key was not consumed: alone, it goes through.
    let m2 = meter(41);
    floor.connect(&m2);
    let ended = install(&mut l.steel, &g[MAX_IN_FLIGHT].mi4, meter_id(41), &mut floor).unwrap();
    assert!(matches!(ended, InstallEnded::Installed(_)), "{ended:?}");
}

#[test]
fn a_record_table_without_mi4_refuses_install_key_whole() {
    let mut l = line();
    let g = l.generate(1);
    let m = meter(14);
    let mut floor = Floor::with(&[&m]);
    let mut narrowed = l.steel.tables().clone();
    narrowed.record_types.retain(|r| *r != RecordType::MI4);
    let update = cmd(&mut l.m, SignTables { recipient: l.steel.id(), tables: narrowed }).unwrap();
    cmd(&mut l.steel, UpdateTables { update }).unwrap();
    let v = l.steel.version();
    let e = install(&mut l.steel, &g.mi4, meter_id(14), &mut floor).unwrap_err();
    assert_eq!(e, ResponseCode::RECORD_NOT_IN_TABLE);
    assert_eq!(l.steel.version(), v);
    assert_eq!(floor.commits.get(), 0);
    assert!(m.meter().keys().is_empty());
}

#[test]
fn an_mi6_counts_only_once_the_meters_of_the_batch_kept_their_keys() {
    let mut l = line();
    let g: Vec<Generated> = (1..=4).map(|k| l.generate(k)).collect();
    let (a, b) = (meter(50), meter(51));
    let mut floor = Floor::with(&[&a, &b]);
    let items = |g: &[Generated]| {
        vec![
            InstallKey { mi4: g[0].mi4.clone(), meter: meter_id(50) },
            InstallKey { mi4: g[1].mi4.clone(), meter: meter_id(51) },
        ]
    };
    // Kept: the batch's meters asked once, together, then MI7 for each.
    let answers = install_batch(&mut l.steel, items(&g[..2]), &mut floor);
    assert!(answers.iter().all(|a| matches!(a, Ok(InstallEnded::Installed(_)))), "{answers:?}");
    assert_eq!(floor.durable, vec![meter_id(50), meter_id(51)]);
    // Not kept: every installation that reached a meter ends ABORTED (its key becomes `Bad`),
    // the failure logged; nothing is left in flight.
    floor.fail_meters = Some("the meters' storage failed".into());
    let answers = install_batch(&mut l.steel, items(&g[2..]), &mut floor);
    for answer in &answers {
        let Ok(InstallEnded::Aborted(aborted)) = answer else { panic!("{answer:?}") };
        let aborted = aborted.clone().verify(&l.public().steel_auth).unwrap();
        assert!(aborted.body().reason.contains("storage failed"), "{}", aborted.body().reason);
    }
    assert_eq!(floor.logged.len(), 2);
    assert!(floor.logged.iter().all(|r| r.code == ResponseCode::STORAGE_FAILED));
    assert!(in_flight(&l.steel).is_empty());
}

fn oak(b: &SecureBox) -> &TypedBox<Oak> {
    let SecureBox::Oak(oak) = b else { panic!("not an Oak box: {b:?}") };
    oak
}

fn steel(b: &SecureBox) -> &TypedBox<Steel> {
    let SecureBox::Steel(steel) = b else { panic!("not a Steel box: {b:?}") };
    steel
}

#[allow(dead_code)]
fn brass(b: &SecureBox) -> &TypedBox<Brass> {
    let SecureBox::Brass(brass) = b else { panic!("not a Brass box: {b:?}") };
    brass
}

/// A key of meter 1 installed through the line: the meter and the key's MI9.
fn installed(l: &mut Line) -> (SimulatedMeter, Unverified<postkey_wire::InstalledKeyRecord>) {
    let g = l.generate(1);
    let m = meter(1);
    let mut floor = Floor::with(&[&m]);
    let InstallEnded::Installed(mi7) =
        install(&mut l.steel, &g.mi4, meter_id(1), &mut floor).unwrap()
    else {
        panic!("aborted")
    };
    let checked = cmd(&mut l.brass, CheckInstall { mi3: g.mi3, mi7 }).unwrap();
    let Checked::Installed(Confirmed { mi9, .. }) = checked else { panic!("bad: {checked:?}") };
    (m, mi9)
}

/// MR1 of the meter's USPS key into `subdomain` with `isn`, `country` and `date`, its token made
/// by the meter's key over `signed` (isn, country, date) instead when given.
fn mr1(
    m: &SimulatedMeter,
    subdomain: &str,
    (isn, country, date): (&str, &str, &str),
    signed: Option<(&str, &str, &str)>,
) -> Message<postkey_wire::RegistrationRequest> {
    use postkey_wire::{Country, Date, Isn};
    let (t_isn, t_country, t_date) = signed.unwrap_or((isn, country, date));
    let meter = m.meter();
    let key = &meter.keys()[&usps_id()];
    let token = key.master_key().registration_token(&postkey_secrets::Registration {
        meter: meter.id(),
        isn: &Isn::parse(t_isn).unwrap(),
        country: &Country::parse(t_country).unwrap(),
        date: Date::parse(t_date).unwrap(),
    });
    let context = Context {
        domain: usps_id(),
        sender: Sender::Meter(meter.id().clone()),
        meter_id: Some(meter.id().clone()),
        key_id: Some(key.key_id),
        state_version: None,
        timestamp: now(),
    };
    Message::new(
        context,
        postkey_wire::RegistrationRequest {
            subdomain: sub(subdomain),
            isn: Isn::parse(isn).unwrap(),
            country: Country::parse(country).unwrap(),
            date: Date::parse(date).unwrap(),
            token,
        },
    )
}

#[test]
fn brass_registers_a_key_into_a_subdomain_it_serves_with_mr3_and_a_signed_mr4() {
    use postkey_wire::command::Register;
    let mut l = line();
    let (m, mi9) = installed(&mut l);
    let good = ("0401234567", "US", "20261129");
    let r = cmd(&mut l.brass, Register { mr1: mr1(&m, "USPS/US", good, None), mi9: mi9.clone() })
        .unwrap();
    let mr4 = r.mr4.verify(&l.public().brass_auth).unwrap();
    assert_eq!(mr4.body().mr3, postkey_crypto::sha256(r.mr3.as_bytes()), "MR4 names its MR3");
    assert_eq!(mr4.body().isn.as_str(), "0401234567");
    assert_eq!(r.mr3.header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(r.mr3.claimed_body().subdomain, sub("USPS/US"));
    assert_eq!(r.mr3.header().meter_id.as_ref(), Some(&meter_id(1)));
    let decoded = postkey_wire::Maced::<postkey_wire::RegisteredKey>::from_bytes(r.mr3.as_bytes());
    assert_eq!(decoded.unwrap(), r.mr3, "MR3 decodes as it was made");

    // Each attack on the request, refused with its code.
    let cases: Vec<(&str, Message<postkey_wire::RegistrationRequest>, ResponseCode)> = vec![
        (
            "a token made for another ISN",
            mr1(&m, "USPS/US", good, Some(("0401234568", "US", "20261129"))),
            ResponseCode::REGISTRATION_TOKEN_MISMATCH,
        ),
        (
            "a token made for another date",
            mr1(&m, "USPS/US", good, Some(("0401234567", "US", "20261202"))),
            ResponseCode::REGISTRATION_TOKEN_MISMATCH,
        ),
        (
            "a token made for another country",
            mr1(&m, "USPS/US", good, Some(("0401234567", "CA", "20261129"))),
            ResponseCode::REGISTRATION_TOKEN_MISMATCH,
        ),
        (
            "a sub-domain of another country than the registration's",
            mr1(&m, "USPS/US", ("0401234567", "CA", "20261129"), None),
            ResponseCode::SUBDOMAIN_MISMATCH,
        ),
        (
            "a sub-domain of another domain",
            mr1(&m, "EARTH/US", good, None),
            ResponseCode::SUBDOMAIN_MISMATCH,
        ),
        (
            "a sub-domain this Brass process does not serve",
            mr1(&m, "USPS/CA", ("0401234567", "CA", "20261129"), None),
            ResponseCode::SUBDOMAIN_NOT_SERVED,
        ),
        (
            "a registration dated after today",
            mr1(&m, "USPS/US", ("0401234567", "US", "20271201"), None),
            ResponseCode::TIME_WENT_BACKWARDS,
        ),
        (
            "a registration dated before the key was installed",
            mr1(&m, "USPS/US", ("0401234567", "US", "20261101"), None),
            ResponseCode::TIME_WENT_BACKWARDS,
        ),
    ];
    for (what, request, code) in cases {
        let refused = cmd(&mut l.brass, Register { mr1: request, mi9: mi9.clone() }).unwrap_err();
        assert_eq!(refused, code, "{what}");
    }
    // A forged token: one bit flipped.
    let mut forged = mr1(&m, "USPS/US", good, None);
    let mut body = forged.body().clone();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&postkey_crypto::sha256(body.token.to_string().as_bytes())[..8]);
    body.token = postkey_wire::RegistrationToken::from_bytes(bytes);
    forged = Message::new(context(forged.header()), body);
    let refused = cmd(&mut l.brass, Register { mr1: forged, mi9: mi9.clone() }).unwrap_err();
    assert_eq!(refused, ResponseCode::REGISTRATION_TOKEN_MISMATCH);
    // MR1 replayed for another meter: its header names meter 2, MI9 meter 1.
    let other = meter(2);
    let replayed = mr1(&m, "USPS/US", good, None);
    let mut h = context(replayed.header());
    h.meter_id = Some(other.meter().id().clone());
    h.sender = Sender::Meter(other.meter().id().clone());
    let moved = Message::new(h, replayed.body().clone());
    assert_eq!(
        cmd(&mut l.brass, Register { mr1: moved, mi9: mi9.clone() }).unwrap_err(),
        ResponseCode::RECORD_MISMATCH
    );
    // An MI9 with one byte changed does not verify.
    let mut flipped = mi9.as_bytes().to_vec();
    let at = flipped.len() - 1;
    flipped[at] ^= 1;
    let flipped = Unverified::from_bytes(&flipped).unwrap();
    assert_eq!(
        cmd(&mut l.brass, Register { mr1: mr1(&m, "USPS/US", good, None), mi9: flipped })
            .unwrap_err(),
        ResponseCode::BAD_SIGNATURE
    );
}

#[test]
fn brass_signs_a_withdrawal_of_a_key_it_installed() {
    use postkey_wire::command::Withdraw;
    let mut l = line();
    let (_, mi9) = installed(&mut l);
    let w = cmd(&mut l.brass, Withdraw { mi9: mi9.clone(), reason: "scrapped".into() }).unwrap();
    let w = w.verify(&l.public().brass_auth).unwrap();
    assert_eq!(w.header().key_id, Some(KeyId::new(1).unwrap()));
    assert_eq!(w.header().meter_id.as_ref(), Some(&meter_id(1)));
    assert_eq!(w.body().reason, "scrapped");
    let long = "x".repeat(postkey_wire::MAX_REASON_LEN + 1);
    assert_eq!(
        cmd(&mut l.brass, Withdraw { mi9: mi9.clone(), reason: long }).unwrap_err(),
        ResponseCode::PARAMETER_SYNTAX
    );
    // Signed records carry one line of printable text: Brass refuses others whoever asks.
    for reason in ["", "  ", "bad\x1b[31m", "two\nlines"] {
        let refused = cmd(&mut l.brass, Withdraw { mi9: mi9.clone(), reason: reason.into() });
        assert_eq!(refused.unwrap_err(), ResponseCode::PARAMETER_SYNTAX, "{reason:?}");
    }
}

/// A `VERIFY` mailpiece of `date` and `count`, carrying `token` for the item's key 0.
fn piece(date: &str, count: u32, token: postkey_wire::Token) -> postkey_wire::command::VerifyPiece {
    postkey_wire::command::VerifyPiece::new(
        [Some(0), None],
        postkey_wire::Date::parse(date).unwrap(),
        65,
        count,
        &postkey_wire::Zip::normalize("06484").unwrap(),
        [token, postkey_wire::Token::from_bytes([0; 8])],
    )
    .unwrap()
}

/// A Tin box's mailpiece of `date` and `count`, carrying `token`.
fn tin_piece(
    date: &str,
    count: u32,
    token: postkey_wire::Token,
) -> postkey_wire::command::PieceToken {
    postkey_wire::command::PieceToken {
        date: postkey_wire::Date::parse(date).unwrap(),
        value: 65,
        count,
        zip: postkey_wire::Zip::normalize("06484").unwrap(),
        token,
    }
}

/// The meter's USPS token over the mailpiece a [`piece`] of ISN `isn` in USPS/US makes.
fn token_of(m: &SimulatedMeter, isn: &str, date: &str, count: u32) -> postkey_wire::Token {
    let mailpiece = postkey_wire::Mailpiece {
        isn: postkey_wire::Isn::parse(isn).unwrap(),
        subdomain: sub("USPS/US"),
        date: postkey_wire::Date::parse(date).unwrap(),
        value: 65,
        count,
        zip: postkey_wire::Zip::normalize("06484").unwrap(),
    };
    let meter = m.meter();
    let k = meter.keys()[&usps_id()].master_key();
    k.token_key(&usps_id(), &mailpiece.isn, mailpiece.date.period()).token(&mailpiece)
}

#[test]
fn brass_verifies_each_token_of_a_registered_key_and_refuses_a_forged_or_misplaced_mr3() {
    use postkey_wire::command::{Register, Verdicts, Verify, VerifyKey, VerifyPiece, VerifyPieces};
    use postkey_wire::{Isn, Maced, Mr3Digest};
    let mut l = line();
    let (m, mi9) = installed(&mut l);
    let isn = "0401234567";
    let r =
        cmd(&mut l.brass, Register { mr1: mr1(&m, "USPS/US", (isn, "US", "20261129"), None), mi9 })
            .unwrap();
    let mr3 = r.mr3;
    // An item of one key with its MR3, or naming it by digest alone.
    let key = |mr3: &Maced<postkey_wire::RegisteredKey>, isn: &str, subdomain: &str| VerifyKey {
        mr3_digest: Mr3Digest::of(mr3),
        mr3: vec![mr3.clone()],
        isn: Isn::parse(isn).unwrap(),
        subdomain: sub(subdomain),
    };
    let item = |keys: Vec<VerifyKey>, pieces: Vec<VerifyPiece>| Verify {
        keys,
        pieces: VerifyPieces::new(pieces).unwrap(),
    };
    let with = |mr3: &Maced<postkey_wire::RegisteredKey>, isn: &str, subdomain: &str, pieces| {
        item(vec![key(mr3, isn, subdomain)], pieces)
    };
    let by_digest = |mr3: &Maced<postkey_wire::RegisteredKey>, pieces| {
        item(vec![VerifyKey { mr3: vec![], ..key(mr3, isn, "USPS/US") }], pieces)
    };
    let answers =
        |v: &Verdicts, n: usize| (0..n).map(|i| v.good.get(i).unwrap()[0]).collect::<Vec<_>>();
    let good = token_of(&m, isn, "20261130", 1);

    // Named by digest before the box checked it: not held, nothing verified.
    let unknown = cmd(&mut l.brass, by_digest(&mr3, vec![piece("20261130", 1, good)])).unwrap();
    assert_eq!((unknown.unheld.clone(), answers(&unknown, 1)), (vec![0], vec![false]));

    // A forged MR3 (one byte of its tag flipped) is refused before any key is derived, and is
    // not held after: named by its digest alone it is still unknown.
    let mut flipped = mr3.as_bytes().to_vec();
    let at = flipped.len() - 1;
    flipped[at] ^= 1;
    let forged = Maced::from_bytes(&flipped).unwrap();
    let refused =
        cmd(&mut l.brass, with(&forged, isn, "USPS/US", vec![piece("20261130", 1, good)]));
    assert_eq!(refused.unwrap_err(), ResponseCode::BAD_MAC);
    let after = cmd(&mut l.brass, by_digest(&forged, vec![piece("20261130", 1, good)])).unwrap();
    assert_eq!(after.unheld, vec![0]);
    // An MR3 that is not of the digest named.
    let mut lying = with(&mr3, isn, "USPS/US", vec![piece("20261130", 1, good)]);
    lying.keys[0].mr3_digest = Mr3Digest::of(&forged);
    assert_eq!(cmd(&mut l.brass, lying).unwrap_err(), ResponseCode::RECORD_MISMATCH);

    // Good, bad (another count's token), and two months: each token its own answer.
    let pieces = vec![
        piece("20261130", 1, good),
        piece("20261130", 2, good),
        piece("20261201", 3, token_of(&m, isn, "20261201", 3)),
        piece("20261201", 4, token_of(&m, isn, "20261130", 4)),
    ];
    let v = cmd(&mut l.brass, with(&mr3, isn, "USPS/US", pieces.clone())).unwrap();
    assert_eq!((v.unheld.clone(), answers(&v, 4)), (vec![], vec![true, false, true, false]));
    // Checked once, then named by its digest alone: the same answers.
    let v = cmd(&mut l.brass, by_digest(&mr3, pieces.clone())).unwrap();
    assert_eq!((v.unheld.clone(), answers(&v, 4)), (vec![], vec![true, false, true, false]));

    // Two keys of one item: a held one answers, the other (named by digest alone, never
    // checked) is listed and its tokens are not; a mailpiece may name both.
    let two_keys = vec![
        VerifyKey { mr3: vec![], ..key(&mr3, isn, "USPS/US") },
        VerifyKey { mr3: vec![], ..key(&forged, isn, "USPS/US") },
    ];
    let both = |t0, t1| {
        VerifyPiece::new(
            [Some(0), Some(1)],
            postkey_wire::Date::parse("20261130").unwrap(),
            65,
            1,
            &postkey_wire::Zip::normalize("06484").unwrap(),
            [t0, t1],
        )
        .unwrap()
    };
    let v = cmd(&mut l.brass, item(two_keys.clone(), vec![both(good, good)])).unwrap();
    assert_eq!((v.unheld, v.good.get(0)), (vec![1], Some([true, false])));
    // Both keys of one mailpiece must name the same meter, held or not (the second, never
    // checked, is not held: only the mailpiece's check refuses it).
    let mut elsewhere = two_keys.clone();
    elsewhere[1] = VerifyKey { mr3: vec![], ..key(&forged, "0401234568", "USPS/US") };
    let refused = cmd(&mut l.brass, item(elsewhere, vec![both(good, good)]));
    assert_eq!(refused.unwrap_err(), ResponseCode::RECORD_MISMATCH);
    // A mailpiece naming a key the item does not have.
    let refused = cmd(&mut l.brass, item(two_keys[..1].to_vec(), vec![both(good, good)]));
    assert_eq!(refused.unwrap_err(), ResponseCode::RECORD_MISMATCH);

    // The postal key verifies only in its own sub-domain: the mailpieces of another
    // sub-domain of the same domain are refused.
    let misplaced = with(&mr3, isn, "USPS/PR", vec![piece("20261130", 1, good)]);
    assert_eq!(cmd(&mut l.brass, misplaced).unwrap_err(), ResponseCode::SUBDOMAIN_MISMATCH);

    // An MR3 renamed to another ISN needs the MAC, and is refused.
    let mut body = mr3.claimed_body().clone();
    body.isn = Isn::parse("0401234568").unwrap();
    let renamed = Maced::new(Message::new(context(mr3.header()), body), |_| [0; 32]);
    let other = token_of(&m, "0401234568", "20261130", 1);
    let refused = cmd(
        &mut l.brass,
        with(&renamed, "0401234568", "USPS/US", vec![piece("20261130", 1, other)]),
    );
    assert_eq!(refused.unwrap_err(), ResponseCode::BAD_MAC);
    // The genuine MR3 for mailpieces that name another ISN: refused, whatever the box holds.
    let elsewhere = with(&mr3, "0401234568", "USPS/US", vec![piece("20261130", 1, good)]);
    assert_eq!(cmd(&mut l.brass, elsewhere).unwrap_err(), ResponseCode::RECORD_MISMATCH);
    let mut elsewhere = with(&mr3, "0401234568", "USPS/US", vec![]);
    elsewhere.keys[0].mr3 = vec![];
    assert_eq!(cmd(&mut l.brass, elsewhere).unwrap_err(), ResponseCode::RECORD_MISMATCH);
}

/// A Tin box made by the line's M box, running a USPS process that serves `subdomains`.
fn tin_box(l: &mut Line, seed: u64, subdomains: &[&str]) -> (SecureBox, Unverified<ProcessRecord>) {
    let mut t = manufacture(&mut l.m, BoxType::Tin, seed).secure_box;
    let subdomains = subdomains.iter().map(|s| sub(s)).collect();
    let d = cmd(&mut l.m, Deliver { bundle: l.bundle.clone(), recipient: cert(&t), subdomains })
        .unwrap();
    cmd(&mut t, InstallProcess { delivery: d.delivery }).unwrap();
    (t, d.record)
}

#[test]
fn brass_exports_a_month_of_token_keys_to_one_tin_box_which_verifies_postal_tokens_offline() {
    use postkey_wire::command::{ExportTokenKeys, ImportTinExport, Register, TinVerify};
    use postkey_wire::{Isn, Period, TinExport};
    let mut l = line();
    let (m, mi9) = installed(&mut l);
    let isn = "0401234567";
    let mr3 =
        cmd(&mut l.brass, Register { mr1: mr1(&m, "USPS/US", (isn, "US", "20261129"), None), mi9 })
            .unwrap()
            .mr3;
    let (mut tin, record) = tin_box(&mut l, 104, &["USPS/US"]);
    let (mut other, other_record) = tin_box(&mut l, 105, &["USPS/US"]);
    let month = Period::parse("202611").unwrap();
    let order =
        |tin: &SecureBox, process: &Unverified<ProcessRecord>, as_of, mr3s| ExportTokenKeys {
            tin: cert(tin),
            process: process.clone(),
            subdomain: sub("USPS/US"),
            period: month,
            as_of,
            chunk: 0,
            chunks: 1,
            mr3s,
        };
    let first: Unverified<TinExport> =
        cmd(&mut l.brass, order(&tin, &record, now(), vec![mr3.clone()])).unwrap();
    assert_eq!(first.claimed_body().keys, 1);

    // Brass exports only to a certified Tin box whose process serves the sub-domain, and only
    // a month in the window.
    let to_brass = order(&l.brass, &record, now(), vec![mr3.clone()]);
    assert_eq!(cmd(&mut l.brass, to_brass).unwrap_err(), ResponseCode::BAD_SIGNATURE);
    let crossed = order(&tin, &other_record, now(), vec![mr3.clone()]);
    assert_eq!(cmd(&mut l.brass, crossed).unwrap_err(), ResponseCode::RECORD_MISMATCH);
    let (_, narrow) = tin_box(&mut l, 106, &[]);
    let unserved = order(&tin, &narrow, now(), vec![mr3.clone()]);
    assert_eq!(cmd(&mut l.brass, unserved).unwrap_err(), ResponseCode::RECORD_MISMATCH);
    let mut far = order(&tin, &record, now(), vec![mr3.clone()]);
    far.period = Period::parse("202702").unwrap();
    assert_eq!(cmd(&mut l.brass, far).unwrap_err(), ResponseCode::TIN_EXPORT_STALE);
    let ahead = Timestamp::from_unix_micros(now().unix_micros() + 3_600_000_000);
    let from_the_future = order(&tin, &record, ahead, vec![mr3.clone()]);
    assert_eq!(cmd(&mut l.brass, from_the_future).unwrap_err(), ResponseCode::TIN_EXPORT_STALE);
    // Chunks in bounds only; no empty chunk but the one of an export of no meter.
    let mut outside = order(&tin, &record, now(), vec![mr3.clone()]);
    outside.chunk = 1;
    assert_eq!(cmd(&mut l.brass, outside).unwrap_err(), ResponseCode::PARAMETER_SYNTAX);
    let mut empty = order(&tin, &record, now(), vec![]);
    empty.chunks = 2;
    assert_eq!(cmd(&mut l.brass, empty).unwrap_err(), ResponseCode::PARAMETER_SYNTAX);
    let crowded = order(&tin, &record, now(), vec![mr3.clone(); 201]);
    assert_eq!(cmd(&mut l.brass, crowded).unwrap_err(), ResponseCode::PARAMETER_SYNTAX);
    // Each MR3 once, of the sub-domain, with its MAC.
    let twice = order(&tin, &record, now(), vec![mr3.clone(), mr3.clone()]);
    assert_eq!(cmd(&mut l.brass, twice).unwrap_err(), ResponseCode::RECORD_MISMATCH);
    let mut body = mr3.claimed_body().clone();
    body.subdomain = sub("USPS/PR");
    let moved = postkey_wire::Maced::new(Message::new(context(mr3.header()), body), |_| [0; 32]);
    let elsewhere = order(&tin, &record, now(), vec![moved]);
    assert_eq!(cmd(&mut l.brass, elsewhere).unwrap_err(), ResponseCode::RECORD_MISMATCH);
    let mut tag = mr3.as_bytes().to_vec();
    let last = tag.len() - 1;
    tag[last] ^= 1;
    let forged = postkey_wire::Maced::from_bytes(&tag).unwrap();
    let unmaced = order(&tin, &record, now(), vec![forged]);
    assert_eq!(cmd(&mut l.brass, unmaced).unwrap_err(), ResponseCode::BAD_MAC);

    // Sealed to one Tin box: another refuses it.
    let misaddressed = ImportTinExport { export: first.clone() };
    assert_eq!(cmd(&mut other, misaddressed).unwrap_err(), ResponseCode::RECORD_NOT_FOR_THIS_BOX);
    // A flipped byte anywhere in what Brass signed is refused.
    let mut bytes = first.as_bytes().to_vec();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    if let Ok(forged) = parse::<TinExport>(&bytes) {
        assert!(cmd(&mut tin, ImportTinExport { export: forged }).is_err());
    }
    let taken = cmd(&mut tin, ImportTinExport { export: first.clone() }).unwrap();
    assert_eq!((taken.have, taken.chunks, taken.keys), (1, 1, 1));
    // The same export again changes nothing.
    assert_eq!(cmd(&mut tin, ImportTinExport { export: first.clone() }).unwrap(), taken);

    let verify = |tin: &mut SecureBox, isn: &str, subdomain: &str, pieces| {
        cmd(tin, TinVerify { subdomain: sub(subdomain), isn: Isn::parse(isn).unwrap(), pieces })
    };
    let good = token_of(&m, isn, "20261130", 1);
    let v = verify(
        &mut tin,
        isn,
        "USPS/US",
        vec![
            tin_piece("20261130", 1, good),
            tin_piece("20261130", 2, good),
            tin_piece("20261128", 3, token_of(&m, isn, "20261128", 3)),
        ],
    )
    .unwrap();
    assert_eq!(v.codes, [0, 5001, 5005], "good, bad, before the registration day");
    assert_eq!(v.as_of, now());
    let unknown = verify(&mut tin, "0401234568", "USPS/US", vec![tin_piece("20261130", 1, good)]);
    assert_eq!(unknown.unwrap().codes, [5002]);
    // Another month, another sub-domain: refused, never guessed.
    let october = verify(&mut tin, isn, "USPS/US", vec![tin_piece("20261030", 1, good)]);
    assert_eq!(october.unwrap_err(), ResponseCode::TIN_NOT_EXPORTED);
    let elsewhere = verify(&mut tin, isn, "USPS/PR", vec![tin_piece("20261130", 1, good)]);
    assert_eq!(elsewhere.unwrap_err(), ResponseCode::SUBDOMAIN_NOT_SERVED);
    let mixed = verify(
        &mut tin,
        isn,
        "USPS/US",
        vec![tin_piece("20261130", 1, good), tin_piece("20261201", 2, good)],
    );
    assert_eq!(mixed.unwrap_err(), ResponseCode::PARAMETER_SYNTAX);

    // The meter withdrawn: a newer export without it supersedes the first, which is then
    // refused as a replay.
    let later = Timestamp::from_unix_micros(now().unix_micros() + 1);
    let second: Unverified<TinExport> =
        cmd(&mut l.brass, order(&tin, &record, later, vec![])).unwrap();
    assert_eq!(cmd(&mut tin, ImportTinExport { export: second }).unwrap().keys, 0);
    let after = verify(&mut tin, isn, "USPS/US", vec![tin_piece("20261130", 1, good)]);
    assert_eq!(after.unwrap().codes, [5002]);
    let replay = cmd(&mut tin, ImportTinExport { export: first });
    assert_eq!(replay.unwrap_err(), ResponseCode::TIN_EXPORT_STALE);
}
