//! Attacks on the box side of the box link: `Session::serve` fed random, mutated, misdirected and
//! oversized frames for an enabled Oak and an enabled Steel box. Whatever arrives, `serve` must not
//! panic, must answer a reply frame that decodes and whose state version is the sealed state's on
//! disk, must leave the sealed state and the running box exactly as they were when it refused the
//! whole command (or every item), must write each refusal to the error log with its code, and must
//! leave the box answering `ATTEST_STATE`.
//!
//! Everything random comes from a seeded generator: a failure prints the frame (in hex) and
//! reproduces.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{USPS_OAK_STEEL, Unwritable, World, d, logged_by, meter};
use postkey_archive::Store as _;
use postkey_host::{Expected, MeterLinks, Session};
use postkey_meter::SimulatedMeter;
use postkey_wire::command::{
    Answered, AttestState, BoxRequest, Command, CreateDomain, GenerateKey, InstallKey,
    MAX_FRAME_LEN, MAX_LIST, MAX_REFUSAL_MESSAGE, Recover, Response, SelfTest, SignTables,
    UpdateTables, peek_code, reply_from_bytes,
};
use postkey_wire::{
    BoxId, BoxType, CommandCode, ConfigTables, Context, DomainId, DomainKind, KeyForMeter, KeyId,
    Message, MeterHello, MeterId, MeterLink, MeterTestTokens, Nonce, Refusal, ResponseCode, Role,
    Sender, StateAttestation, StateVersion, SubdomainId, Timestamp, Unverified,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short description of a frame for a failure message: all of it if short, else its length and
/// both ends.
fn show(frame: &[u8]) -> String {
    if frame.len() <= 256 {
        hex(frame)
    } else {
        format!("{} bytes: {}…{}", frame.len(), hex(&frame[..96]), hex(&frame[frame.len() - 32..]))
    }
}

/// A home (on a RAM file system where there is one: every refusal is an fsync'd log line) with
/// the USPS domain, one Oak and one Steel box serving it, and a session with the manufacturing
/// box, Oak and Steel enabled; one meter on Steel's line.
struct Fixture {
    world: World,
    session: Session,
    m: BoxId,
    oak: BoxId,
    steel: BoxId,
    /// What the archive expects of each enabled box (its certificate, the installation, the
    /// highest version recorded), as read when the session enabled them.
    expected: BTreeMap<BoxId, Expected>,
    /// The Steel box's certificate and USPS process record, as the archive holds them.
    steel_certificate: Vec<u8>,
    steel_process: Vec<u8>,
    meters: MeterLinks,
    meter_id: MeterId,
    /// The meter on the line (a clone shares it).
    sim: SimulatedMeter,
    stats: Stats,
}

async fn fixture() -> Fixture {
    let world = common::world(common::ram_tempdir(), USPS_OAK_STEEL).await;
    let m = BoxId::FIRST_MANUFACTURING;
    let (oak, steel) = (world.made(BoxType::Oak), world.made(BoxType::Steel));
    let mut expected = BTreeMap::new();
    for b in [m, oak, steel] {
        expected.insert(b, world.expected(b).await);
    }
    let session = world.session(&[m, oak, steel]).await;
    let steel_certificate = world.store.box_record(steel).await.unwrap().unwrap().certificate.bytes;
    let steel_process = world
        .store
        .domain_processes(steel)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.domain == d("USPS"))
        .unwrap()
        .record
        .bytes;
    let mut meters = MeterLinks::default();
    let (meter_id, sim) = meter(1);
    meters.connect(meter_id.clone(), Box::new(sim.clone()));
    Fixture {
        world,
        session,
        m,
        oak,
        steel,
        expected,
        steel_certificate,
        steel_process,
        meters,
        meter_id,
        sim,
        stats: Stats::default(),
    }
}

/// What the probes saw, for the summary printed at the end.
#[derive(Debug, Default)]
struct Stats {
    frames: usize,
    undecodable: usize,
    refused_whole: usize,
    every_item_refused: usize,
    some_item_answered: usize,
    codes: BTreeMap<u16, usize>,
}

/// How a probe's reply ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The whole command was refused with this code.
    Refused(u16),
    /// Items were answered; the codes of the refused ones.
    Answered { items: usize, refused: Vec<u16> },
}

impl Fixture {
    /// Box `id` as this host holds it: its sealed state on disk, and the state version of the
    /// box running in the session (none once it stopped).
    fn disk(&self, id: BoxId) -> (Vec<u8>, Option<StateVersion>) {
        (std::fs::read(self.world.state_path(id)).unwrap(), self.session.version(id))
    }

    /// Serves `frame` to box `id`, with the meter links for Steel.
    fn serve(&mut self, id: BoxId, frame: &[u8]) -> Vec<u8> {
        let meters = if id.box_type() == BoxType::Steel { Some(&mut self.meters) } else { None };
        self.session.serve(id, frame, meters)
    }

    /// The error-log spool is emptied after every probe, so each probe reads only its own lines.
    fn clear_log(&self) {
        let _ = std::fs::remove_file(self.world.home.root().join("errors.log"));
        assert!(self.world.home.spooled_errors().unwrap().is_empty());
    }

    /// Feeds one frame to box `id` and checks every invariant; returns how it ended.
    fn probe(&mut self, id: BoxId, frame: &[u8]) -> Seen {
        self.clear_log();
        let before = self.disk(id);
        let reply = catch_unwind(AssertUnwindSafe(|| self.serve(id, frame)))
            .unwrap_or_else(|_| panic!("serve panicked on a frame for {id}: {}", show(frame)));
        let (code, reply) = reply_from_bytes(&reply).unwrap_or_else(|e| {
            panic!("the reply to a frame for {id} does not decode ({e}): frame {}", show(frame))
        });
        let decoded = Command::from_bytes(frame);
        // The reply names the command it answers.
        match &decoded {
            Ok(command) => assert_eq!(code, command.code(), "frame {}", show(frame)),
            Err(_) => assert_eq!(
                code,
                peek_code(frame).unwrap_or(CommandCode(0)),
                "frame {}",
                show(frame)
            ),
        }
        let after = self.disk(id);
        let log: Vec<_> = self.world.home.spooled_errors().unwrap();
        let logged: Vec<u16> =
            log.iter().filter(|e| e.component == id.to_string()).map(|e| e.code).collect();
        // The running box holds the sealed state's version, whatever happened; a reply that
        // answers carries it (what the KMC records is what the disk holds).
        let sealed = postkey_box::SealedState::from_bytes(&after.0).unwrap();
        if let Some(running) = after.1 {
            assert_eq!(
                running,
                sealed.version,
                "the running box is not the sealed state's version after frame {}",
                show(frame)
            );
        }
        if let Ok(answered) = &reply {
            assert_eq!(
                answered.state_version,
                sealed.version,
                "the reply's state version is not the sealed state's after frame {}",
                show(frame)
            );
        }
        self.stats.frames += 1;
        let seen = match reply {
            Err(refusal) => {
                if let Err(e) = &decoded {
                    self.stats.undecodable += 1;
                    assert_eq!(refusal.code, e.response_code(), "frame {}", show(frame));
                    assert_eq!(refusal.code.0 / 1000, 2, "a decoder code: {refusal:?}");
                } else {
                    self.stats.refused_whole += 1;
                }
                assert!(refusal.message.len() <= MAX_REFUSAL_MESSAGE, "{refusal:?}");
                *self.stats.codes.entry(refusal.code.0).or_default() += 1;
                Seen::Refused(refusal.code.0)
            }
            Ok(Answered { response, .. }) => {
                let command = decoded.as_ref().unwrap_or_else(|e| {
                    panic!("answers to a frame that does not decode ({e}): {}", show(frame))
                });
                assert_eq!(response.len(), command.len(), "one answer per item: {}", show(frame));
                let refused: Vec<u16> = response.refusals().iter().map(|(_, r)| r.code.0).collect();
                for (_, r) in response.refusals() {
                    assert!(r.message.len() <= MAX_REFUSAL_MESSAGE, "{r:?}");
                    *self.stats.codes.entry(r.code.0).or_default() += 1;
                }
                if refused.len() == response.len() {
                    self.stats.every_item_refused += 1;
                } else {
                    self.stats.some_item_answered += 1;
                }
                Seen::Answered { items: response.len(), refused }
            }
        };
        let refusal_codes = match &seen {
            Seen::Refused(c) => vec![*c],
            Seen::Answered { refused, .. } => refused.clone(),
        };
        // A refused command, or a batch whose every item was refused, changed nothing on disk.
        let nothing_answered = match &seen {
            Seen::Refused(_) => true,
            Seen::Answered { items, refused } => refused.len() == *items,
        };
        // Nor does a self-test or an attestation, whatever their items.
        let read_only = matches!(&decoded, Ok(Command::SelfTest(_) | Command::AttestState(_)));
        // A box stops (fail-stop) only with a refusal that says so.
        let stopped = before.1.is_some() && after.1.is_none();
        let stops = [ResponseCode::STORAGE_FAILED.0, ResponseCode::BOX_ERROR_STATE.0];
        if stopped {
            assert!(
                matches!(seen, Seen::Refused(c) if stops.contains(&c)),
                "{id} stopped although {seen:?}: frame {}",
                show(frame)
            );
        }
        if nothing_answered || read_only {
            assert!(
                before.0 == after.0,
                "{id}'s sealed state changed although {seen:?}: frame {}",
                show(frame)
            );
            if !stopped {
                assert_eq!(
                    before.1,
                    after.1,
                    "{id}'s running state changed although {seen:?}: frame {}",
                    show(frame)
                );
            }
        }
        // Every refusal is in the error log, under this box, with its code.
        assert!(
            logged.len() >= refusal_codes.len(),
            "{} refusals, {} log lines for {id}: {log:?}; frame {}",
            refusal_codes.len(),
            logged.len(),
            show(frame)
        );
        let mut left = logged.clone();
        for c in &refusal_codes {
            let at = left.iter().position(|l| l == c).unwrap_or_else(|| {
                panic!("refusal {c} of {id} is not in the error log {log:?}: frame {}", show(frame))
            });
            left.swap_remove(at);
        }
        seen
    }

    /// A valid `ATTEST_STATE` through `serve`: answered, signed by the box's identity key over
    /// the nonce, naming the box, the installation and the version of its sealed state (never
    /// below the archive's); the reply carries the same version.
    fn attest(&mut self, id: BoxId, n: u8) {
        let nonce = Nonce([n; 32]);
        let frame = AttestState::batch(vec![AttestState { nonce }]).to_bytes();
        let before = self.disk(id);
        let reply = self.session.serve(id, &frame, None);
        assert_eq!(before, self.disk(id), "an attestation changed {id}");
        let (_, reply) = reply_from_bytes(&reply).unwrap();
        let Ok(Answered { response: Response::AttestState(mut answers), state_version }) = reply
        else {
            panic!("{id} is not answering: {reply:?}")
        };
        let attestation: Unverified<StateAttestation> = answers.pop().unwrap().unwrap();
        let expected = &self.expected[&id];
        let checked = attestation.verify(&expected.certificate.body().identity).unwrap();
        let sealed = self.world.sealed_version(id);
        assert_eq!(checked.body().nonce, nonce);
        assert_eq!(checked.body().box_id, id);
        assert_eq!(checked.body().installation, expected.installation);
        assert_eq!(checked.body().version, sealed);
        assert!(checked.body().version >= expected.version, "below the archive's version");
        assert_eq!(state_version, sealed);
    }

    /// MI1 for `key_id` of USPS, naming the Steel box, as the KMC makes it.
    fn mi1(&self, key_id: u64) -> Message<postkey_wire::GenerateKey> {
        Message::new(
            Context {
                domain: d("USPS"),
                sender: Sender::Role(Role::Kmc),
                meter_id: None,
                key_id: Some(KeyId::new(key_id).unwrap()),
                state_version: None,
                timestamp: postkey_host::now(),
            },
            postkey_wire::GenerateKey {
                steel_certificate: self.steel_certificate.clone(),
                steel_process: self.steel_process.clone(),
            },
        )
    }

    /// A real MI4 for the Steel box: Oak generates it (through the session, as the KMC would).
    fn mi4(&self, key_id: u64) -> Unverified<postkey_wire::KeyForSteel> {
        let g = self.session.call_one(self.oak, GenerateKey { mi1: self.mi1(key_id) }).unwrap();
        g.mi4
    }

    /// A real table update for `recipient`, signed by the manufacturing box, that would keep its
    /// tables as they are (it is only ever sent mutated).
    fn table_update(&self, recipient: BoxId) -> Unverified<postkey_wire::TableUpdate> {
        let mut tables: ConfigTables = postkey_box::tables::initial(recipient.box_type());
        tables.domains.push(d("USPS"));
        self.session.call_one(self.m, SignTables { recipient, tables }).unwrap()
    }
}

/// Every single-byte mutation of `frame`: three flips of each byte, and each truncation.
fn mutations(frame: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let flips = (0..frame.len()).flat_map(move |i| {
        [0x01u8, 0x80, 0xFF].into_iter().map(move |x| {
            let mut m = frame.to_vec();
            m[i] ^= x;
            m
        })
    });
    let cuts = (0..frame.len()).map(move |n| frame[..n].to_vec());
    flips.chain(cuts)
}

/// A command head `{0: code, 1: version, 2: …` with the list still to come.
fn head(code: u16) -> Vec<u8> {
    let mut h = vec![0xA3, 0x00, 0x19];
    h.extend_from_slice(&code.to_be_bytes());
    h.extend_from_slice(&[0x01, 0x01, 0x02]);
    h
}

fn random_frame(rng: &mut ChaCha20Rng) -> Vec<u8> {
    let len = match rng.next_u32() % 10 {
        0..=5 => rng.next_u32() as usize % 32,
        6..=8 => rng.next_u32() as usize % 512,
        _ => rng.next_u32() as usize % 8192,
    };
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    match rng.next_u32() % 3 {
        // Pure noise.
        0 => bytes,
        // A known command's head, then noise.
        _ => {
            let known = CommandCode::KNOWN;
            let (code, _) = known[rng.next_u32() as usize % known.len()];
            [head(code.0), bytes].concat()
        }
    }
}

/// (a) random frames, (b) every single-byte mutation of valid frames, (c) misdirected, oversized
/// and overlong frames, for an enabled Oak and an enabled Steel box; each box answers a valid
/// `ATTEST_STATE` at the end.
#[tokio::test]
async fn serve_survives_random_mutated_misdirected_and_oversized_frames() {
    let started = std::time::Instant::now();
    let mut f = fixture().await;
    let (oak, steel) = (f.oak, f.steel);
    let mut rng = ChaCha20Rng::seed_from_u64(0x5e7e_a77a_c4ed);
    f.attest(oak, 1);
    f.attest(steel, 1);

    // (a) Random frames.
    for i in 0..20_000 {
        let frame = random_frame(&mut rng);
        let id = if i % 2 == 0 { oak } else { steel };
        f.probe(id, &frame);
    }

    // (b) Every single-byte mutation of valid frames of several commands. Two real MI4 first:
    // the mutations of MI1 move Oak's last key ID.
    let mi4 = f.mi4(1);
    let second_mi4 = f.mi4(2);
    let valid: Vec<(BoxId, Command)> = vec![
        (oak, GenerateKey::batch(vec![GenerateKey { mi1: f.mi1(1_000) }])),
        (steel, InstallKey::batch(vec![InstallKey { mi4, meter: f.meter_id.clone() }])),
        (oak, SelfTest::batch(vec![SelfTest {}, SelfTest {}])),
        (steel, SelfTest::batch(vec![SelfTest {}])),
        (oak, AttestState::batch(vec![AttestState { nonce: Nonce([7; 32]) }])),
        (steel, AttestState::batch(vec![AttestState { nonce: Nonce([8; 32]) }])),
        (oak, UpdateTables::batch(vec![UpdateTables { update: f.table_update(oak) }])),
        (steel, UpdateTables::batch(vec![UpdateTables { update: f.table_update(steel) }])),
        (steel, Recover::batch(vec![Recover {}])),
    ];
    for (id, command) in &valid {
        let frame = command.to_bytes();
        let mut refused = 0;
        let mut n = 0;
        for m in mutations(&frame) {
            n += 1;
            if !matches!(f.probe(*id, &m), Seen::Answered { ref refused, items } if refused.len() < items)
            {
                refused += 1;
            }
        }
        println!(
            "{:>14} to {id}: {n} mutations of {} bytes, {refused} refused",
            command.code(),
            frame.len()
        );
        // Only an unsigned field (MI1, a nonce) can be changed into another valid item; a
        // changed signed record never verifies, and a changed empty item never decodes.
        if !matches!(command, Command::GenerateKey(_) | Command::AttestState(_)) {
            assert_eq!(refused, n, "{} to {id}: a mutation was answered", command.code());
        }
    }
    // The valid INSTALL_KEY frame itself is installed once.
    let install = &valid[1].1.to_bytes();
    assert!(
        matches!(f.probe(steel, install), Seen::Answered { ref refused, .. } if refused.is_empty())
    );
    assert_eq!(f.sim.meter().keys().len(), 1);
    // Replayed, it is refused and changes nothing.
    assert_eq!(
        f.probe(steel, install),
        Seen::Answered { items: 1, refused: vec![ResponseCode::KEY_ID_NOT_FRESH.0] }
    );

    // (c) Frames for the wrong box type: refused whole (3001 or 3006), nothing changed.
    let other_type = [ResponseCode::COMMAND_NOT_IN_TABLE.0, ResponseCode::WRONG_BOX_TYPE.0];
    let create = CreateDomain::batch(vec![CreateDomain {
        domain: d("XX"),
        kind: DomainKind::Postal,
        subdomains: vec![SubdomainId::parse("XX/US").unwrap()],
    }]);
    let mi4 = second_mi4;
    for (id, command) in [
        (steel, GenerateKey::batch(vec![GenerateKey { mi1: f.mi1(3_000) }])),
        (oak, InstallKey::batch(vec![InstallKey { mi4, meter: f.meter_id.clone() }])),
        (oak, Recover::batch(vec![Recover {}])),
        (oak, create.clone()),
        (steel, create),
    ] {
        match f.probe(id, &command.to_bytes()) {
            Seen::Refused(c) if other_type.contains(&c) => {}
            other => panic!("{} to {id}: {other:?}", command.code()),
        }
    }
    // Oversized: 16 MiB + 1, a valid head first.
    let mut big = head(CommandCode::SELF_TEST.0);
    big.resize(MAX_FRAME_LEN + 1, 0);
    for id in [oak, steel] {
        assert_eq!(f.probe(id, &big), Seen::Refused(ResponseCode::MESSAGE_TOO_LARGE.0));
    }
    // 4097 items: refused before any of them runs. 4096 are a batch (ATTEST_STATE only: 4096
    // self-tests hold the box for seconds, see the report).
    for id in [oak, steel] {
        for command in [
            SelfTest::batch(vec![SelfTest {}; MAX_LIST + 1]),
            AttestState::batch(vec![AttestState { nonce: Nonce([9; 32]) }; MAX_LIST + 1]),
            GenerateKey::batch(vec![GenerateKey { mi1: f.mi1(5_000) }; MAX_LIST + 1]),
        ] {
            assert_eq!(
                f.probe(id, &command.to_bytes()),
                Seen::Refused(ResponseCode::MESSAGE_TOO_LARGE.0),
                "{} with {} items to {id}",
                command.code(),
                command.len()
            );
        }
        let full = AttestState::batch(vec![AttestState { nonce: Nonce([9; 32]) }; MAX_LIST]);
        assert_eq!(
            f.probe(id, &full.to_bytes()),
            Seen::Answered { items: MAX_LIST, refused: vec![] }
        );
    }
    // A list that claims 2^32 - 1 items, and a record that claims 2^63 bytes, in a short frame.
    for tail in [
        vec![0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 0xA0],
        vec![0x81, 0xA1, 0x00, 0x5B, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    ] {
        for (id, code) in [(oak, CommandCode::GENERATE_KEY), (steel, CommandCode::INSTALL_KEY)] {
            let frame = [head(code.0), tail.clone()].concat();
            assert!(matches!(f.probe(id, &frame), Seen::Refused(c) if c / 1000 == 2));
        }
    }

    // Neither box was bricked.
    f.attest(oak, 2);
    f.attest(steel, 2);
    println!("{:#?}", f.stats);
    println!("elapsed {:?}", started.elapsed());
}

/// A meter link that misbehaves on `install`.
enum Misbehave {
    /// It refuses MI5 with a long message (a link's error text, up to the refusal limit).
    LongRefusal,
    /// It installs the key, then answers MI6 in the name of another meter, for another key.
    AnswerFor { meter: MeterId, key_id: KeyId },
}

struct Hostile {
    inner: SimulatedMeter,
    how: Misbehave,
}

impl MeterLink for Hostile {
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal> {
        self.inner.hello(domain, now)
    }

    fn install(
        &mut self,
        mi5: &Message<KeyForMeter>,
        now: Timestamp,
    ) -> Result<Message<MeterTestTokens>, Refusal> {
        match &self.how {
            Misbehave::LongRefusal => Err(Refusal::new(
                ResponseCode::METER_NOT_CONNECTED,
                format!("meter link I/O error: {}", "x".repeat(1000)),
            )),
            Misbehave::AnswerFor { meter, key_id } => {
                let mi6 = self.inner.install(mi5, now)?;
                let h = mi6.header();
                Ok(Message::new(
                    Context {
                        domain: h.domain.clone(),
                        sender: Sender::Meter(meter.clone()),
                        meter_id: h.meter_id.clone(),
                        key_id: Some(*key_id),
                        state_version: None,
                        timestamp: now,
                    },
                    mi6.body().clone(),
                ))
            }
        }
    }
}

/// Regression: a meter link's refusal text used to go, cut only to 1,024 bytes, into the reason of
/// the ABORTED record the Steel box signs; with its header that record outgrew ABORTED's limit, so
/// the reply frame did not decode and the batch's answers were lost after Steel wrote their
/// effects. The reason is now bounded before it is signed.
#[tokio::test]
async fn a_long_meter_link_refusal_still_gives_a_reply_that_decodes() {
    let mut f = fixture().await;
    let (id, sim) = meter(2);
    f.meters.connect(id.clone(), Box::new(Hostile { inner: sim, how: Misbehave::LongRefusal }));
    let mi4 = f.mi4(1);
    let frame = InstallKey::batch(vec![InstallKey { mi4, meter: id }]).to_bytes();
    let reply = f.serve(f.steel, &frame);
    let decoded = reply_from_bytes(&reply);
    assert!(decoded.is_ok(), "the reply of {} bytes does not decode: {decoded:?}", reply.len());
}

/// Regression: a meter that answered MI6 with another meter's ID and another key ID of the batch
/// used to end that other installation. Now an MI6 ends only the installation of its own item:
/// this one is aborted (signed), the other installs.
#[tokio::test]
async fn each_item_of_an_install_batch_is_answered_about_its_own_key() {
    let mut f = fixture().await;
    let (m1, s1) = meter(3);
    let (m2, s2) = meter(4);
    let (a, b) = (f.mi4(1), f.mi4(2));
    let b_key = b.header().key_id.unwrap();
    f.meters.connect(
        m1.clone(),
        Box::new(Hostile {
            inner: s1,
            how: Misbehave::AnswerFor { meter: m2.clone(), key_id: b_key },
        }),
    );
    f.meters.connect(m2.clone(), Box::new(s2));
    let keys = [a.header().key_id, b.header().key_id];
    let frame =
        InstallKey::batch(vec![InstallKey { mi4: a, meter: m1 }, InstallKey { mi4: b, meter: m2 }])
            .to_bytes();
    let reply = f.serve(f.steel, &frame);
    let (_, reply) = reply_from_bytes(&reply).unwrap();
    let Ok(Answered { response: Response::InstallKey(answers), .. }) = reply else {
        panic!("{reply:?}")
    };
    for (i, answer) in answers.iter().enumerate() {
        let about = match answer {
            Ok(postkey_wire::command::InstallEnded::Installed(r)) => r.header().key_id,
            Ok(postkey_wire::command::InstallEnded::Aborted(r)) => r.header().key_id,
            Err(refusal) => panic!("item {i} refused: {refusal:?}; answers {answers:?}"),
        };
        assert_eq!(about, keys[i], "item {i} is answered about another key: {answers:?}");
    }
}

/// Fail-stop: when the state write fails, `serve` refuses the whole command with 3602 (and no
/// path of this host in what the peer gets), the disk keeps the old state, the box is locked (it
/// answers 4001 from then on), and for `INSTALL_KEY` no MI5 left for the meter. Enabled again from
/// the disk, the box takes the same command as new: nothing of it had been written.
#[tokio::test]
async fn a_failed_state_write_stops_the_box() {
    let mut f = fixture().await;
    let mi4 = f.mi4(1);
    for (id, frame) in [
        (f.oak, GenerateKey::batch(vec![GenerateKey { mi1: f.mi1(2) }]).to_bytes()),
        (
            f.steel,
            InstallKey::batch(vec![InstallKey { mi4, meter: f.meter_id.clone() }]).to_bytes(),
        ),
    ] {
        f.clear_log();
        let before = f.disk(id);
        assert!(before.1.is_some());
        // The state cannot be replaced: the write fails.
        let blocked = Unwritable::block(&f.world.state_path(id));
        let reply = f.serve(id, &frame);
        blocked.restore();
        let (code, reply) = reply_from_bytes(&reply).unwrap();
        assert_eq!(code, Command::from_bytes(&frame).unwrap().code());
        let refusal = reply.unwrap_err();
        assert_eq!(refusal.code, ResponseCode::STORAGE_FAILED, "{refusal:?}");
        assert!(refusal.message.len() <= MAX_REFUSAL_MESSAGE, "{refusal:?}");
        let root = f.world.home.root().to_string_lossy().into_owned();
        assert!(!refusal.message.contains(&root), "a path of this host: {refusal:?}");
        assert_eq!(logged_by(&f.world.home, id, ResponseCode::STORAGE_FAILED), 1);
        assert!(f.sim.meter().keys().is_empty(), "MI5 left before the in-flight state was written");
        let after = f.disk(id);
        assert!(after.0 == before.0, "the sealed state on disk changed");
        assert_eq!(after.1, None, "the box is stopped");
        // Stopped: every later frame is refused as to a locked box, and changes nothing.
        let attest = AttestState::batch(vec![AttestState { nonce: Nonce([3; 32]) }]).to_bytes();
        assert_eq!(f.probe(id, &attest), Seen::Refused(ResponseCode::BOX_LOCKED.0));
        assert_eq!(f.probe(id, &frame), Seen::Refused(ResponseCode::BOX_LOCKED.0));
        // Enabled again from the disk, it takes the command: its key ID is still fresh there.
        let expected = f.expected[&id].clone();
        let media = f.world.media();
        assert_eq!(f.session.enable(id, &media, &expected).unwrap(), f.world.sealed_version(id));
        assert_eq!(f.probe(id, &frame), Seen::Answered { items: 1, refused: vec![] });
    }
    assert_eq!(f.sim.meter().keys().len(), 1);
}

/// A meter link that panics stops the box: the command is refused, the box is locked (its keys
/// zeroized), and enabling it again from disk works.
#[tokio::test]
async fn a_panicking_meter_link_stops_the_box_and_it_can_be_enabled_again() {
    struct Panics;
    impl MeterLink for Panics {
        fn hello(&mut self, _: &DomainId, _: Timestamp) -> Result<Message<MeterHello>, Refusal> {
            panic!("the meter link's driver failed")
        }
        fn install(
            &mut self,
            _: &Message<KeyForMeter>,
            _: Timestamp,
        ) -> Result<Message<MeterTestTokens>, Refusal> {
            panic!("unreachable in this test")
        }
    }
    let mut f = fixture().await;
    let (id, _) = meter(5);
    f.meters.connect(id.clone(), Box::new(Panics));
    let mi4 = f.mi4(1);
    let frame = InstallKey::batch(vec![InstallKey { mi4, meter: id }]).to_bytes();
    assert_eq!(f.probe(f.steel, &frame), Seen::Refused(ResponseCode::BOX_ERROR_STATE.0));
    assert!(!f.session.enabled().any(|b| b == f.steel), "the stopped box is not listed enabled");
    let attest = AttestState::batch(vec![AttestState { nonce: Nonce([4; 32]) }]).to_bytes();
    assert_eq!(f.probe(f.steel, &attest), Seen::Refused(ResponseCode::BOX_LOCKED.0));
    // Enabled again from what is on disk, it answers.
    let (media, expected) = (f.world.media(), f.expected[&f.steel].clone());
    f.session.enable(f.steel, &media, &expected).unwrap();
    assert_eq!(f.probe(f.steel, &attest), Seen::Answered { items: 1, refused: vec![] });
}

/// The key goes only into the meter the order names: a meter on the link that greets as another
/// meter, or for another domain, is refused (3014) before anything is sealed, and gets no key.
#[tokio::test]
async fn a_meter_that_greets_as_another_gets_nothing() {
    struct Impostor {
        inner: SimulatedMeter,
        domain: Option<DomainId>,
    }
    impl MeterLink for Impostor {
        fn hello(
            &mut self,
            domain: &DomainId,
            now: Timestamp,
        ) -> Result<Message<MeterHello>, Refusal> {
            let asked = self.domain.clone().unwrap_or_else(|| domain.clone());
            self.inner.hello(&asked, now)
        }
        fn install(
            &mut self,
            mi5: &Message<KeyForMeter>,
            now: Timestamp,
        ) -> Result<Message<MeterTestTokens>, Refusal> {
            self.inner.install(mi5, now)
        }
    }
    let mut f = fixture().await;
    let (ordered, _) = meter(6);
    let (other_id, other) = meter(7);
    let _ = other_id;
    let before = f.disk(f.steel);
    // The order names `ordered`, but the meter on its link is another.
    f.meters.connect(ordered.clone(), Box::new(Impostor { inner: other.clone(), domain: None }));
    let mi4 = f.mi4(1);
    let frame =
        InstallKey::batch(vec![InstallKey { mi4: mi4.clone(), meter: ordered.clone() }]).to_bytes();
    assert_eq!(
        f.probe(f.steel, &frame),
        Seen::Answered { items: 1, refused: vec![ResponseCode::RECORD_MISMATCH.0] }
    );
    assert!(other.meter().keys().is_empty(), "the impostor got no key");
    assert_eq!(f.disk(f.steel), before, "nothing was sealed");
    // The right meter, greeting for another domain.
    let (_, right) = meter(6);
    f.meters.connect(
        ordered.clone(),
        Box::new(Impostor { inner: right.clone(), domain: Some(d("VE")) }),
    );
    assert_eq!(
        f.probe(f.steel, &frame),
        Seen::Answered { items: 1, refused: vec![ResponseCode::RECORD_MISMATCH.0] }
    );
    assert!(right.meter().keys().is_empty());
    // Greeting as itself, it gets the key.
    f.meters.connect(ordered.clone(), Box::new(right.clone()));
    assert_eq!(f.probe(f.steel, &frame), Seen::Answered { items: 1, refused: vec![] });
    assert_eq!(right.meter().keys().len(), 1);
}
