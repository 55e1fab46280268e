//! An in-memory box double, for testing the KMC on its own (feature `testing`; never in the
//! binary). It speaks the box protocol through the same frames a box link carries (each command
//! is encoded, decoded, answered, and the reply encoded and decoded again) and signs its records
//! with domain keys it made itself, so every check the KMC runs on a real box's answers runs on
//! its answers too. It holds no master key: its "keys" are opaque ciphertext placeholders, which
//! is all the KMC ever sees.
//!
//! [`Fixture`] makes the domains, bundles and boxes and registers them in an archive;
//! [`FakeBoxes`] answers as the Oak, Steel and Brass boxes, following a [`Script`] of faults, and
//! logs every item it was sent so tests can check order and content.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use ed25519_dalek::SigningKey;
use postkey_archive::{
    NewBox, NewBundle, NewDomain, NewDomainProcess, NewSubdomain, SignedRecord, Store, StoreError,
};
use postkey_crypto::{HpkeCiphertext, HpkePublicKey, Signature, Signer, VerifyingKey};
use postkey_wire::command::{
    Answered, Checked, Command, Confirmed, Generated, InstallEnded, Outcome, Response,
    reply_from_bytes, reply_to_bytes,
};
use postkey_wire::{
    Aborted, BadKey, Body, BoxId, Certificate, CommandCode, Context, DomainBundle, DomainId,
    DomainKind, DomainPublicKeys, InstallConfirmed, InstallationId, Installed, InstalledKeyRecord,
    KeyForSteel, KeyId, Message, MeterId, NewKeyRecord, ProcessRecord, Refusal, ResponseCode,
    Sender, StateAttestation, StateVersion, SubdomainId, TestTokens, Timestamp, Unverified, sign,
};

use crate::Boxes;

/// An Ed25519 key of the double.
pub struct TestKey(SigningKey);

impl TestKey {
    /// The key made from a seed.
    pub fn from_seed(seed: u8) -> Self {
        Self(SigningKey::from_bytes(&[seed; 32]))
    }
}

impl core::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TestKey({:?})", self.verifying_key())
    }
}

impl Signer for TestKey {
    fn sign(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(self.0.sign(message).to_bytes())
    }

    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_dalek(self.0.verifying_key())
    }
}

/// One domain's keys, as the double holds them.
#[derive(Debug)]
pub struct DomainKeys {
    /// Signs MI3 and MI4.
    pub oak: TestKey,
    /// Signs MI7 and ABORTED.
    pub steel: TestKey,
    /// Signs MI9, MI10 and BAD.
    pub brass: TestKey,
}

/// The domains, keys and boxes of a test, and the time the double stamps its records with.
#[derive(Debug)]
pub struct Fixture {
    /// The Domain Key Set's authentication key: the KMC trusts bundles signed with it.
    pub domain_key_set: TestKey,
    /// Each domain's keys.
    pub domains: BTreeMap<DomainId, DomainKeys>,
    /// The Oak box.
    pub oak: BoxId,
    /// The Steel box.
    pub steel: BoxId,
    /// The Brass box.
    pub brass: BoxId,
    /// The boxes' identity keys.
    pub identities: BTreeMap<BoxId, TestKey>,
    /// The installation the boxes attest they belong to.
    pub installation: InstallationId,
}

fn id(s: &str) -> BoxId {
    // The fixture's IDs are constants of the right form.
    BoxId::parse(s).unwrap_or(BoxId::FIRST_MANUFACTURING)
}

fn domain(s: &str) -> DomainId {
    DomainId::parse(s).unwrap_or_else(|_| DomainId::admin())
}

/// The fixture's time: the double's records and the archive's events are stamped with it.
pub fn fixed_now() -> Timestamp {
    Timestamp::from_unix_micros(1_795_977_434_000_000)
}

impl Fixture {
    /// Domains `VE` (vendor) and `USPS` (postal), one Oak, Steel and Brass box with processes of
    /// both; keys from fixed seeds.
    pub fn new() -> Self {
        let mut domains = BTreeMap::new();
        for (i, d) in ["VE", "USPS"].into_iter().enumerate() {
            let s = 10 * (i as u8 + 1);
            domains.insert(
                domain(d),
                DomainKeys {
                    oak: TestKey::from_seed(s + 1),
                    steel: TestKey::from_seed(s + 2),
                    brass: TestKey::from_seed(s + 3),
                },
            );
        }
        let (oak, steel, brass) = (id("O00000001"), id("S00000001"), id("B00000001"));
        let identities = [(oak, 101), (steel, 102), (brass, 103)]
            .into_iter()
            .map(|(b, s)| (b, TestKey::from_seed(s)))
            .collect();
        Self {
            domain_key_set: TestKey::from_seed(1),
            domains,
            oak,
            steel,
            brass,
            identities,
            installation: InstallationId([0x1a; 16]),
        }
    }

    fn context(&self, sender: BoxId, domain: DomainId) -> Context {
        Context {
            domain,
            sender: Sender::Box(sender),
            meter_id: None,
            key_id: None,
            state_version: Some(StateVersion(1)),
            timestamp: fixed_now(),
        }
    }

    /// The public keys of a domain.
    pub fn public(&self, d: &DomainId) -> Option<DomainPublicKeys> {
        self.domains.get(d).map(|k| DomainPublicKeys {
            oak_auth: k.oak.verifying_key(),
            steel_auth: k.steel.verifying_key(),
            brass_conf: HpkePublicKey::from_bytes([9; 32]),
            brass_auth: k.brass.verifying_key(),
            audit: None,
        })
    }

    /// Registers the domains, their signed bundles, the boxes and their processes in `store`.
    pub async fn register(&self, store: &impl Store) -> Result<(), StoreError> {
        let m = BoxId::FIRST_MANUFACTURING;
        let actor = Sender::Box(m);
        let time = fixed_now();
        for d in self.domains.keys() {
            store.create_domain(&NewDomain { id: d.clone(), time, actor: actor.clone() }).await?;
            let sub = SubdomainId::parse(&format!("{d}/US"))
                .map_err(|_| StoreError::Invalid("sub-domain"))?;
            store
                .add_subdomain(&NewSubdomain { id: sub.clone(), time, actor: actor.clone() })
                .await?;
            let public = self.public(d).ok_or(StoreError::Invalid("domain"))?;
            let kind = if d.as_str() == "VE" { DomainKind::Vendor } else { DomainKind::Postal };
            let body = DomainBundle {
                domain: d.clone(),
                kind,
                subdomains: vec![sub],
                public,
                sealed: placeholder(0),
            };
            let bundle = sign(Message::new(self.context(m, d.clone()), body), &self.domain_key_set);
            let new = NewBundle {
                domain: d.clone(),
                version: 1,
                created_by: m,
                bundle: SignedRecord::from_verified(&bundle),
                time,
            };
            store.store_bundle(&new).await?;
        }
        for (b, identity) in &self.identities {
            let cert = Certificate {
                box_id: *b,
                identity: identity.verifying_key(),
                confidentiality: HpkePublicKey::from_bytes([7; 32]),
                issuer: m,
                issued: time,
            };
            let cert = sign(Message::new(self.context(m, DomainId::admin()), cert), identity);
            store
                .register_box(&NewBox {
                    id: *b,
                    certificate: SignedRecord::from_verified(&cert),
                    identity_key: identity.verifying_key(),
                    confidentiality_key: HpkePublicKey::from_bytes([7; 32]),
                    state_version: StateVersion(0),
                    time,
                    actor: actor.clone(),
                })
                .await?;
            for d in self.domains.keys() {
                let record =
                    ProcessRecord { box_id: *b, domain: d.clone(), subdomains: Vec::new() };
                let record = sign(Message::new(self.context(m, d.clone()), record), identity);
                store
                    .add_domain_process(&NewDomainProcess {
                        box_id: *b,
                        domain: d.clone(),
                        subdomains: Vec::new(),
                        record: SignedRecord::from_verified(&record),
                        time,
                        actor: actor.clone(),
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// An opaque stand-in for a sealed key: the KMC only carries it.
fn placeholder(seed: u8) -> HpkeCiphertext {
    HpkeCiphertext::from_parts([seed; 32], vec![seed; 48])
        .unwrap_or_else(|_| unreachable!("48 bytes is a valid AEAD output"))
}

/// The test tokens the double's meters "compute" for a key.
pub fn tokens_of(key_id: KeyId) -> TestTokens {
    TestTokens::from_bytes([(key_id.get() % 251) as u8; 16])
}

/// Which record of an answer a [`Script`] alters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// MI3 of a GENERATE_KEY answer.
    Mi3,
    /// MI4.
    Mi4,
    /// MI7 of an INSTALL_KEY answer.
    Mi7,
    /// MI9 of a CHECK_INSTALL answer.
    Mi9,
}

/// The faults the double plays, by key ID of its domain (`USPS` and `VE` keys alike).
#[derive(Debug, Default, Clone)]
pub struct Script {
    /// Oak refuses key IDs up to this one as not fresh (3201), as a box that saw them already.
    pub oak_last_seen: u64,
    /// Oak refuses these key IDs with this code.
    pub oak_refuses: BTreeMap<u64, ResponseCode>,
    /// Steel refuses these key IDs (the item) with 3013.
    pub steel_refuses: BTreeSet<u64>,
    /// Steel answers ABORTED for these key IDs.
    pub steel_aborts: BTreeSet<u64>,
    /// Steel answers MI7 naming another key for these key IDs.
    pub steel_misnames: BTreeSet<u64>,
    /// Brass answers BAD for these key IDs.
    pub brass_bad: BTreeSet<u64>,
    /// Brass refuses these key IDs (the item) with 3014.
    pub brass_refuses: BTreeSet<u64>,
    /// For these key IDs, flip byte `n` of the record `target` (the ID → (target, n)).
    pub flips: BTreeMap<u64, (Target, usize)>,
    /// Refuse every command sent to these boxes, whole.
    pub down: BTreeSet<BoxId>,
    /// The state version of each box (0 when absent): attested, and grown by one with every
    /// command that changes the box, as a real box's does.
    pub versions: BTreeMap<BoxId, u64>,
    /// The installation the boxes attest, when not the fixture's.
    pub installation: Option<InstallationId>,
    /// Attest over another nonce than the one sent.
    pub wrong_nonce: bool,
    /// ABORTED records RECOVER answers, by domain and key ID.
    pub interrupted: Vec<(DomainId, u64)>,
}

/// What one box was sent: the command and the key IDs of its items, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The box.
    pub to: BoxId,
    /// The command.
    pub command: CommandCode,
    /// Each item's domain and key ID (none for items without a key).
    pub keys: Vec<Option<(DomainId, u64)>>,
}

/// The double's boxes.
#[derive(Debug)]
pub struct FakeBoxes {
    fixture: Fixture,
    script: Mutex<Script>,
    log: Mutex<Vec<Sent>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refuse(code: ResponseCode, message: &str) -> Refusal {
    Refusal::new(code, message)
}

/// Flips byte `n` (modulo its length) of `record`, and decodes it again as a box link would; a
/// record that no longer decodes is the item's refusal, with the decoder's code.
fn flipped<B: Body>(record: Unverified<B>, n: usize) -> Result<Unverified<B>, Refusal> {
    let mut bytes = record.as_bytes().to_vec();
    let i = n % bytes.len();
    bytes[i] ^= 0x01;
    Unverified::from_bytes(&bytes).map_err(|e| Refusal::new(e.response_code(), e.to_string()))
}

impl FakeBoxes {
    /// The double of `fixture`'s boxes, playing `script`.
    pub fn new(fixture: Fixture, script: Script) -> Self {
        Self { fixture, script: Mutex::new(script), log: Mutex::new(Vec::new()) }
    }

    /// The fixture.
    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// Changes the script.
    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut lock(&self.script));
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.log).clone()
    }

    fn keys(&self, d: &DomainId) -> Result<&DomainKeys, Refusal> {
        self.fixture.domains.get(d).ok_or_else(|| refuse(ResponseCode::UNKNOWN_DOMAIN, "domain"))
    }

    fn context(&self, from: BoxId, d: &DomainId, key: KeyId, meter: Option<MeterId>) -> Context {
        Context { meter_id: meter, key_id: Some(key), ..self.fixture.context(from, d.clone()) }
    }

    fn answer(&self, to: BoxId, command: Command) -> Result<Answered, Refusal> {
        let script = lock(&self.script).clone();
        if script.down.contains(&to) {
            return Err(refuse(ResponseCode::BOX_LOCKED, "the box is down"));
        }
        let f = &self.fixture;
        let mut keys_sent = Vec::new();
        let response = match command {
            Command::AttestState(items) => Response::AttestState(
                items
                    .into_iter()
                    .map(|item| {
                        keys_sent.push(None);
                        let identity = f
                            .identities
                            .get(&to)
                            .ok_or_else(|| refuse(ResponseCode::UNKNOWN_BOX, "box"))?;
                        let mut nonce = item.nonce;
                        if script.wrong_nonce {
                            nonce.0[0] ^= 1;
                        }
                        let body = StateAttestation {
                            nonce,
                            box_id: to,
                            version: StateVersion(script.versions.get(&to).copied().unwrap_or(0)),
                            installation: script.installation.unwrap_or(f.installation),
                            last_key_ids: Vec::new(),
                            free_box_ids: Vec::new(),
                        };
                        Ok(sign(Message::new(f.context(to, DomainId::admin()), body), identity)
                            .into())
                    })
                    .collect(),
            ),
            Command::GenerateKey(items) => Response::GenerateKey(
                items
                    .into_iter()
                    .map(|item| {
                        let h = item.mi1.header();
                        let d = h.domain.clone();
                        let key = h
                            .key_id
                            .ok_or_else(|| refuse(ResponseCode::PARAMETER_SYNTAX, "no key"))?;
                        keys_sent.push(Some((d.clone(), key.get())));
                        if key.get() <= script.oak_last_seen {
                            return Err(refuse(ResponseCode::KEY_ID_NOT_FRESH, "not fresh"));
                        }
                        if let Some(code) = script.oak_refuses.get(&key.get()) {
                            return Err(refuse(*code, "scripted refusal"));
                        }
                        let k = self.keys(&d)?;
                        let c = self.context(to, &d, key, None);
                        let mi3: Unverified<NewKeyRecord> = sign(
                            Message::new(
                                c.clone(),
                                NewKeyRecord { oak: to, steel: f.steel, sealed: placeholder(3) },
                            ),
                            &k.oak,
                        )
                        .into();
                        let mi4: Unverified<KeyForSteel> = sign(
                            Message::new(
                                c,
                                KeyForSteel { oak: to, steel: f.steel, sealed: placeholder(4) },
                            ),
                            &k.oak,
                        )
                        .into();
                        Ok(match script.flips.get(&key.get()) {
                            Some((Target::Mi3, n)) => Generated { mi3: flipped(mi3, *n)?, mi4 },
                            Some((Target::Mi4, n)) => Generated { mi3, mi4: flipped(mi4, *n)? },
                            _ => Generated { mi3, mi4 },
                        })
                    })
                    .collect(),
            ),
            Command::InstallKey(items) => Response::InstallKey(
                items
                    .into_iter()
                    .map(|item| {
                        let d = item.mi4.header().domain.clone();
                        let key = item
                            .mi4
                            .header()
                            .key_id
                            .ok_or_else(|| refuse(ResponseCode::PARAMETER_SYNTAX, "no key"))?;
                        keys_sent.push(Some((d.clone(), key.get())));
                        let k = self.keys(&d)?;
                        item.mi4
                            .clone()
                            .verify(&k.oak.verifying_key())
                            .map_err(|e| refuse(e.response_code(), "MI4"))?;
                        if script.steel_refuses.contains(&key.get()) {
                            return Err(refuse(
                                ResponseCode::NO_INSTALL_IN_FLIGHT,
                                "scripted refusal",
                            ));
                        }
                        let c = self.context(to, &d, key, Some(item.meter));
                        if script.steel_aborts.contains(&key.get()) {
                            let body = Aborted { steel: to, reason: "scripted".into() };
                            return Ok(InstallEnded::Aborted(
                                sign(Message::new(c, body), &k.steel).into(),
                            ));
                        }
                        let named = if script.steel_misnames.contains(&key.get()) {
                            KeyId::new(key.get() + 1000).unwrap_or(key)
                        } else {
                            key
                        };
                        let c = Context { key_id: Some(named), ..c };
                        let oak = item.mi4.claimed_body().oak;
                        let body = Installed { oak, steel: to, test_tokens: tokens_of(key) };
                        let mi7: Unverified<Installed> =
                            sign(Message::new(c, body), &k.steel).into();
                        Ok(InstallEnded::Installed(match script.flips.get(&key.get()) {
                            Some((Target::Mi7, n)) => flipped(mi7, *n)?,
                            _ => mi7,
                        }))
                    })
                    .collect(),
            ),
            Command::CheckInstall(items) => Response::CheckInstall(
                items
                    .into_iter()
                    .map(|item| {
                        let d = item.mi3.header().domain.clone();
                        let key = item
                            .mi3
                            .header()
                            .key_id
                            .ok_or_else(|| refuse(ResponseCode::PARAMETER_SYNTAX, "no key"))?;
                        keys_sent.push(Some((d.clone(), key.get())));
                        let k = self.keys(&d)?;
                        let mi3 = item
                            .mi3
                            .verify(&k.oak.verifying_key())
                            .map_err(|e| refuse(e.response_code(), "MI3"))?;
                        let mi7 = item
                            .mi7
                            .verify(&k.steel.verifying_key())
                            .map_err(|e| refuse(e.response_code(), "MI7"))?;
                        if script.brass_refuses.contains(&key.get()) {
                            return Err(refuse(ResponseCode::RECORD_MISMATCH, "scripted refusal"));
                        }
                        let c = self.context(to, &d, key, mi7.header().meter_id.clone());
                        if script.brass_bad.contains(&key.get())
                            || mi7.body().test_tokens != tokens_of(key)
                        {
                            let body = BadKey { brass: to, code: 3104, reason: "scripted".into() };
                            return Ok(Checked::Bad(sign(Message::new(c, body), &k.brass).into()));
                        }
                        let body = InstalledKeyRecord {
                            oak: mi3.body().oak,
                            steel: mi3.body().steel,
                            sealed: placeholder(9),
                        };
                        let mi9: Unverified<InstalledKeyRecord> =
                            sign(Message::new(c.clone(), body), &k.brass).into();
                        let mi10 =
                            sign(Message::new(c, InstallConfirmed { brass: to }), &k.brass).into();
                        let mi9 = match script.flips.get(&key.get()) {
                            Some((Target::Mi9, n)) => flipped(mi9, *n)?,
                            _ => mi9,
                        };
                        Ok(Checked::Installed(Confirmed { mi9, mi10 }))
                    })
                    .collect(),
            ),
            Command::Recover(items) => Response::Recover(
                items
                    .into_iter()
                    .map(|_| {
                        keys_sent.push(None);
                        script
                            .interrupted
                            .iter()
                            .map(|(d, key)| {
                                let k = self.keys(d)?;
                                let key = KeyId::new(*key)
                                    .map_err(|e| refuse(e.response_code(), "key"))?;
                                let body =
                                    Aborted { steel: to, reason: "the Steel box stopped".into() };
                                Ok(InstallEnded::Aborted(
                                    sign(
                                        Message::new(self.context(to, d, key, None), body),
                                        &k.steel,
                                    )
                                    .into(),
                                ))
                            })
                            .collect::<Result<Vec<_>, Refusal>>()
                    })
                    .collect(),
            ),
            other => {
                return Err(refuse(
                    ResponseCode::COMMAND_NOT_IN_TABLE,
                    &format!("the double does not play {}", other.code()),
                ));
            }
        };
        lock(&self.log).push(Sent { to, command: response.code(), keys: keys_sent });
        let mut script = lock(&self.script);
        let version = script.versions.entry(to).or_default();
        if response.code() != CommandCode::ATTEST_STATE {
            *version += 1;
        }
        Ok(Answered { response, state_version: StateVersion(*version) })
    }
}

impl Boxes for FakeBoxes {
    async fn send(&self, id: BoxId, command: Command) -> Result<Answered, Refusal> {
        // Through the frames a box link carries, both ways.
        let sent = command.code();
        let command = Command::from_bytes(&command.to_bytes())
            .map_err(|e| refuse(e.response_code(), "the command frame does not decode"))?;
        let reply = self.answer(id, command);
        let (code, reply) = reply_from_bytes(&reply_to_bytes(sent, &reply))
            .map_err(|e| refuse(e.response_code(), "the reply frame does not decode"))?;
        if code != sent {
            return Err(refuse(ResponseCode::ANSWER_MISMATCH, "another command answered"));
        }
        reply
    }
}

/// An outcome's refusal code, for assertions.
pub fn code_of<A>(o: &Outcome<A>) -> Option<ResponseCode> {
    o.as_ref().err().map(|r| r.code)
}
