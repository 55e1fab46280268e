//! The auditor: checks an archive, as an auditor holding only the trust anchors would, and says
//! where the first thing that does not hold is (docs/audit.md).
//!
//! It reads through the [`Store`] trait only, so it checks the SQLite and the PostgreSQL archive
//! alike, and it never writes. What it checks, in order:
//!
//! 1. the installation record and its Domain Key Set certificate against the anchors, then each
//!    domain's bundle against the certified Domain Key Set;
//! 2. every chain (each domain's, `ADMIN`): each event's hash over its content and its link to
//!    the one before, up to the head read at the start; replaying each domain's events gives
//!    each key's status (every transition one protocol §6.4 allows), the records its events name
//!    and the IDs burned;
//! 3. every key: its status against the replay, each stored record's digest against its bytes,
//!    its signature against the domain key of its type (MI3 Oak, MI7 Steel, MI9 Brass), its
//!    header and body against the key's indexed fields (domain, key ID, meter, boxes), that
//!    every record is named by an event and every event's record is there, that a key past
//!    `New` has its MI7 and MI9, that its six times never go backwards, and that each record's
//!    time vouches for the key's time it set (docs/audit.md, "Times");
//! 4. each domain's key IDs: every ID allocated is a key, burned, or reserved by a run still
//!    going (pending), exactly one of them, and none past the allocation.
//! 5. where the boxes are at hand ([`check_boxes`]), each box's attested state: no key ID used
//!    past its domain's allocation, no state older than the archive recorded.
//!
//! Each domain's keys are checked right after its chain is replayed: one domain's replay is
//! held at a time.
//!
//! Keys created after the chains were read (a factory run going on beside the audit) are
//! counted as pending, not as faults.

#![forbid(unsafe_code)]

mod fault;

use std::collections::{BTreeMap, BTreeSet};

use postkey_archive::{
    Action, CLOCK_SKEW_TOLERANCE_MICROS, ChainEvent, ChainVerifier, Digest, KeyFilter, KeyRecord,
    KeyStatus, KeyTimes, Store, StoreError,
};
use postkey_crypto::VerifyingKey;
use postkey_wire::{
    BoxId, BoxType, Checkpoint, Date, DomainBundle, DomainId, DomainKeySetCertificate,
    DomainPublicKeys, Header, Installed, InstalledKeyRecord, Isn, LastKeyId, Maced, NewKeyRecord,
    RecordType, RegisteredKey, RegistrationConfirmed, Sender, StateVersion, SubdomainId, Timestamp,
    TrustAnchors, Unverified, WireError, Withdrawn,
};

pub use fault::{Fault, FaultKind, Position};

/// Events read per page.
const PAGE: u32 = 1000;
/// The faults kept in a report; the first is what matters, the rest help.
const MAX_FAULTS: usize = 100;

/// What an audit checked, and the faults it found (none when all holds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Each chain and the events checked in it.
    pub chains: Vec<ChainSummary>,
    /// The keys checked.
    pub keys: u64,
    /// The stored records checked.
    pub records: u64,
    /// The error-log entries checked against their chain.
    pub errors: u64,
    /// The first sightings of the duplicate memory checked against their chain (`SIGHTS`).
    pub sightings: u64,
    /// The events whose hash was recomputed.
    pub events: u64,
    /// The signatures verified (strictly).
    pub signatures: u64,
    /// The bytes of the signed records and checkpoints hashed.
    pub record_bytes: u64,
    /// Error-log entries logged before the error log was chained (schema version 5 and older):
    /// counted, not checkable.
    pub errors_unchained: u64,
    /// Each domain's key-ID accounting.
    pub key_ids: Vec<Accounting>,
    /// Faults, in the order found (at most 100); the first is the first bad position.
    pub faults: Vec<Fault>,
    /// Faults found beyond those kept.
    pub more_faults: u64,
    /// The boxes whose attested state was checked against the archive, when they were at
    /// hand ([`check_boxes`]); empty otherwise.
    pub boxes: Vec<BoxChecked>,
}

/// A box asked for its state, and what came of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BoxChecked {
    /// The box.
    pub box_id: String,
    /// The state version it attested, if it could be asked.
    pub version: Option<u64>,
    /// Why it could not be asked (no quorum of shares at hand, its state file gone, in use).
    pub not_at_hand: Option<String>,
}

/// What came of asking a box for its state.
#[derive(Debug, Clone)]
pub enum BoxAnswer {
    /// It attested its state.
    Attested(AttestedState),
    /// Its state is another installation's, does not open, or does not attest (a fault).
    Refused(String),
    /// It could not be asked, and why (not a fault).
    NotAtHand(String),
}

/// What a box attested of its state (protocol §7.2 item 7), its signature checked by the
/// caller against the box's certificate.
#[derive(Debug, Clone)]
pub struct AttestedState {
    /// Its state version.
    pub version: StateVersion,
    /// The last key ID each of its domain processes processed (Oak) or saw (Steel).
    pub last_key_ids: Vec<LastKeyId>,
}

impl Report {
    fn empty() -> Self {
        Self {
            chains: Vec::new(),
            keys: 0,
            records: 0,
            errors: 0,
            sightings: 0,
            events: 0,
            signatures: 0,
            record_bytes: 0,
            errors_unchained: 0,
            key_ids: Vec::new(),
            faults: Vec::new(),
            more_faults: 0,
            boxes: Vec::new(),
        }
    }

    /// Whether everything checked holds.
    pub fn holds(&self) -> bool {
        self.faults.is_empty()
    }

    /// Adds what `other` counted (not its faults).
    fn absorb(&mut self, other: &Report) {
        self.keys += other.keys;
        self.records += other.records;
        self.signatures += other.signatures;
        self.record_bytes += other.record_bytes;
    }

    fn fault(&mut self, position: Position, kind: FaultKind, detail: impl Into<String>) {
        if self.faults.len() < MAX_FAULTS {
            self.faults.push(Fault { position, kind, detail: detail.into() });
        } else {
            self.more_faults += 1;
        }
    }
}

/// One chain as checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainSummary {
    /// The chain.
    pub chain: String,
    /// Its events when the audit read its head.
    pub count: u64,
    /// The head's hash (hex).
    pub head: String,
    /// Its signed checkpoints.
    pub checkpoints: u64,
}

/// A domain's key IDs: allocated = created + burned + pending.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Accounting {
    /// The domain.
    pub domain: String,
    /// IDs allocated so far.
    pub allocated: u64,
    /// IDs that are keys.
    pub created: u64,
    /// IDs burned.
    pub burned: u64,
    /// IDs reserved by a run still going, or keys made after the chains were read.
    pub pending: u64,
}

/// A domain's chain replayed: each key as it tells it, and the IDs it burned.
#[derive(Debug, Default)]
struct DomainReplay {
    keys: BTreeMap<u64, Replay>,
    burned: BTreeSet<u64>,
}

/// A key as its domain's chain tells it.
#[derive(Debug, Default)]
struct Replay {
    status: Option<KeyStatus>,
    /// The records its events name, each with the (KMS) time of the event that named it.
    records: Vec<(Digest, Timestamp)>,
    /// Its events' notes, in order: every field an event set (`name=value`), from the boxes,
    /// meter and KMS Request Time of its creation on.
    notes: String,
}

/// Audits `store` against `anchors`. `Err` only when the archive cannot be read; what does not
/// hold is in the report, a value the archive cannot even decode included (the audit stops
/// there, with what it found before).
pub async fn verify(store: &impl Store, anchors: &TrustAnchors) -> Result<Report, StoreError> {
    let mut report = Report::empty();
    match verify_into(store, anchors, &mut report).await {
        Err(StoreError::Corrupt(what)) => {
            report.fault(
                Position::Archive,
                FaultKind::Malformed,
                format!("the archive holds a malformed {what}: it was edited"),
            );
            Ok(report)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(report),
    }
}

async fn verify_into(
    store: &impl Store,
    anchors: &TrustAnchors,
    report: &mut Report,
) -> Result<(), StoreError> {
    let Some(dks) = installation(store, anchors, report).await? else {
        return Ok(());
    };
    let mut domains = BTreeMap::new();
    for d in store.domains().await? {
        if let Some(keys) = bundle(store, &dks, &d.id, report).await? {
            domains.insert(d.id.clone(), keys);
        }
    }
    let audit_key = domains.get(&DomainId::admin()).and_then(|k| k.audit);
    // The error log's chain, as each event's content digest by position, and its length.
    let mut error_events = BTreeMap::new();
    let mut errors_read = 0;
    // The duplicate memory's chain likewise.
    let mut sight_events = BTreeMap::new();
    let mut sights_read = 0;
    // The checkpoints the ADMIN chain says were stored, and those the archive holds.
    let mut named_marks: BTreeMap<(DomainId, u64), Digest> = BTreeMap::new();
    let mut held_marks: BTreeMap<(DomainId, u64), Digest> = BTreeMap::new();
    for head in store.chain_heads().await? {
        let chain = head.chain.clone();
        report.chains.push(ChainSummary {
            chain: chain.to_string(),
            count: head.count,
            head: head.head_hash.to_string(),
            checkpoints: 0,
        });
        let marks = checkpoints(
            store,
            &chain,
            head.count,
            audit_key.as_ref(),
            &dks,
            &mut held_marks,
            report,
        )
        .await?;
        if let Some(summary) = report.chains.last_mut() {
            summary.checkpoints = marks.len() as u64;
        }
        let mut replay = DomainReplay::default();
        let errors = if chain.is_error_log() {
            errors_read = head.count;
            Some(&mut error_events)
        } else if chain.is_sightings() {
            sights_read = head.count;
            Some(&mut sight_events)
        } else {
            None
        };
        let read = head.count;
        let named = &mut named_marks;
        check_chain(store, head, marks, &mut replay, errors, named, report).await?;
        // A domain's keys are checked as soon as its chain is replayed, so one domain's replay
        // is held at a time.
        if let Some(keys) = domains.remove(&chain) {
            check_domain(store, &chain, &keys, replay, read, report).await?;
        }
    }
    check_error_log(store, error_events, errors_read, report).await?;
    check_sightings(store, sight_events, sights_read, report).await?;
    // Every checkpoint the ADMIN chain recorded storing is still there, as stored: deleting
    // the newest checkpoints would otherwise let a chain be cut back unseen.
    for ((chain, number), digest) in named_marks {
        let why = match held_marks.get(&(chain.clone(), number)) {
            None => "the ADMIN chain recorded storing it, and it is gone",
            Some(d) if *d != digest => "it is not the checkpoint the ADMIN chain recorded storing",
            Some(_) => continue,
        };
        report.fault(
            Position::Checkpoint { chain: chain.to_string(), number },
            FaultKind::Checkpoint,
            why,
        );
    }
    // A domain whose chain has no event yet.
    for (domain, keys) in &domains {
        check_domain(store, domain, keys, DomainReplay::default(), 0, report).await?;
    }
    Ok(())
}

/// Step 5, where the boxes are at hand: each box's attested state against the archive. No box
/// has used a key ID past its domain's allocation (else the archive lost IDs a box will never
/// give again: an archive put back from an older copy), no box's state is older than the
/// version the archive last recorded for it (a state file put back), and none is another
/// installation's. A box that could not be asked is listed, not a fault.
pub async fn check_boxes(
    store: &impl Store,
    answers: &[(BoxId, BoxAnswer)],
    report: &mut Report,
) -> Result<(), StoreError> {
    for (box_id, answer) in answers {
        let id = box_id.to_string();
        let s = match answer {
            BoxAnswer::Attested(s) => s,
            BoxAnswer::NotAtHand(why) => {
                report.boxes.push(BoxChecked {
                    box_id: id,
                    version: None,
                    not_at_hand: Some(why.clone()),
                });
                continue;
            }
            BoxAnswer::Refused(why) => {
                report.fault(
                    Position::Box { box_id: id, domain: None },
                    FaultKind::BoxState,
                    why.clone(),
                );
                continue;
            }
        };
        report.boxes.push(BoxChecked {
            box_id: id.clone(),
            version: Some(s.version.0),
            not_at_hand: None,
        });
        let recorded = store.highest_state_version(*box_id).await?;
        if s.version < recorded {
            report.fault(
                Position::Box { box_id: id.clone(), domain: None },
                FaultKind::BoxState,
                format!(
                    "it attests state version {}, older than the {} the archive recorded",
                    s.version.0, recorded.0
                ),
            );
        }
        for last in &s.last_key_ids {
            let allocated =
                store.domain(&last.domain).await?.map_or(0, |d| d.next_key_id.get() - 1);
            if last.last > allocated {
                report.fault(
                    Position::Box { box_id: id.clone(), domain: Some(last.domain.to_string()) },
                    FaultKind::BoxState,
                    format!(
                        "it has used key ID {}, past the {allocated} the archive allocated",
                        last.last
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The bounded check every command that writes the archive runs when it opens it (docs/audit.md,
/// "At every open"): a few reads per chain and per domain, whatever the archive's size. Each
/// chain's head is its newest event's hash, and extends its newest kept checkpoint (as many
/// events, and at the checkpoint's count the hash it signed); each domain's keys and burned IDs
/// fit the IDs allocated, with the IDs still reserved the only gap. The faults found; none when
/// it holds. (Signatures and every event are `verify`'s, which reads everything.)
pub async fn check_at_open(store: &impl Store) -> Result<Vec<Fault>, StoreError> {
    let mut report = Report::empty();
    for listed in store.chain_heads().await? {
        let chain = listed.chain.clone();
        // The checkpoint first, then the head: chains only grow, so a head read after the
        // checkpoint covers it, though another command appends and checkpoints meanwhile.
        let checkpoint = store.latest_checkpoint(&chain).await?;
        let head = store.chain_head(&chain).await?.unwrap_or(listed);
        let event_at = |seq: u64| {
            let chain = chain.clone();
            async move {
                let found = store.chain_events(&chain, seq - 1, 1).await?;
                Ok::<_, StoreError>(found.into_iter().next().filter(|e| e.seq == seq))
            }
        };
        let at = |seq| Position::Chain { chain: chain.to_string(), seq };
        if head.count > 0 && event_at(head.count).await?.map(|e| e.hash) != Some(head.head_hash) {
            report.fault(at(head.count), FaultKind::ChainLink, "the head is not the newest event");
        }
        if let Some(cp) = checkpoint {
            let at = Position::Checkpoint { chain: chain.to_string(), number: cp.number };
            if head.count < cp.count {
                report.fault(
                    at,
                    FaultKind::Checkpoint,
                    format!(
                        "it covers {} events and the chain has {}: the chain was cut",
                        cp.count, head.count
                    ),
                );
            } else if cp.count > 0 && event_at(cp.count).await?.map(|e| e.hash) != Some(cp.head) {
                report.fault(
                    at,
                    FaultKind::Checkpoint,
                    format!(
                        "event #{} is not the one it signed: the history was rewritten",
                        cp.count
                    ),
                );
            }
        }
    }
    let mut reserved: BTreeMap<DomainId, u64> = BTreeMap::new();
    for oak in store.boxes(Some(BoxType::Oak)).await? {
        for r in store.reservations(oak.id).await? {
            *reserved.entry(r.domain.clone()).or_default() +=
                r.range.last.get() - r.range.first.get() + 1;
        }
    }
    for d in store.domains().await? {
        let allocated = d.next_key_id.get() - 1;
        let keys = store.count_keys(&d.id).await?;
        let burned = store.burned_key_ids(&d.id).await?.len() as u64;
        let pending = reserved.get(&d.id).copied().unwrap_or(0);
        let accounted = keys + burned;
        if accounted > allocated || allocated - accounted > pending {
            report.fault(
                Position::KeyId { domain: d.id.to_string(), key_id: allocated },
                FaultKind::Accounting,
                format!(
                    "{allocated} IDs allocated, {keys} keys and {burned} burned, {pending} reserved"
                ),
            );
        }
    }
    Ok(report.faults)
}

/// Step 1: the installation and its Domain Key Set certificate.
async fn installation(
    store: &impl Store,
    anchors: &TrustAnchors,
    report: &mut Report,
) -> Result<Option<DomainKeySetCertificate>, StoreError> {
    let fault = |report: &mut Report, why: String| {
        report.fault(Position::Installation, FaultKind::Installation, why);
        Ok(None)
    };
    let Some(record) = store.installation().await? else {
        return fault(report, "the archive holds no installation".into());
    };
    if record.anchors != anchors.fingerprint() {
        return fault(report, "made with other trust anchors than the auditor's".into());
    }
    let cert = Unverified::<DomainKeySetCertificate>::from_bytes(&record.dks_certificate.bytes)
        .and_then(|c| c.verify(&anchors.manufacturing));
    report.signatures += 1;
    match cert {
        Err(e) => fault(report, format!("the Domain Key Set certificate: {e}")),
        Ok(c) if c.body().installation != record.id => {
            fault(report, "the Domain Key Set certificate names another installation".into())
        }
        Ok(c) => Ok(Some(c.body().clone())),
    }
}

/// Step 1: a domain's latest bundle, and through it the domain's public keys.
async fn bundle(
    store: &impl Store,
    dks: &DomainKeySetCertificate,
    domain: &DomainId,
    report: &mut Report,
) -> Result<Option<DomainPublicKeys>, StoreError> {
    let at = || Position::Bundle { domain: domain.to_string() };
    let Some(record) = store.latest_bundle(domain).await? else {
        report.fault(at(), FaultKind::Field, "the domain has no bundle");
        return Ok(None);
    };
    match Unverified::<DomainBundle>::from_bytes(&record.bundle.bytes).and_then(|b| {
        report.signatures += 1;
        b.verify(&dks.authentication)
    }) {
        Err(e) => {
            report.fault(at(), FaultKind::Signature, e.to_string());
            Ok(None)
        }
        Ok(b) if &b.body().domain != domain => {
            report.fault(at(), FaultKind::Field, "the bundle is another domain's");
            Ok(None)
        }
        Ok(b) => Ok(Some(b.body().public.clone())),
    }
}

/// Step 2: one chain, up to the head read; each key's replay and the IDs burned on the way.
async fn check_chain(
    store: &impl Store,
    head: postkey_archive::ChainHead,
    mut marks: BTreeMap<u64, (u64, Digest)>,
    replay: &mut DomainReplay,
    mut errors: Option<&mut BTreeMap<u64, Digest>>,
    named_marks: &mut BTreeMap<(DomainId, u64), Digest>,
    report: &mut Report,
) -> Result<(), StoreError> {
    let chain = head.chain.clone();
    let at = |seq| Position::Chain { chain: chain.to_string(), seq };
    let mut verifier = ChainVerifier::new(head);
    while !verifier.is_complete() {
        let page = store.chain_events(&chain, verifier.next_seq() - 1, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            // Events appended after the head was read are another audit's: a checkpoint they
            // record storing may be newer than the checkpoints read for this one.
            if verifier.is_complete() {
                break;
            }
            report.events += 1;
            if let Err(e) = verifier.feed(event) {
                report.fault(at(broken_at(&e, event.seq)), FaultKind::ChainLink, e.to_string());
                // What follows a broken link proves nothing.
                return Ok(());
            }
            // The chain extends every checkpoint signed of it.
            if let Some((number, hash)) = marks.remove(&event.seq)
                && hash != event.hash
            {
                report.fault(
                    Position::Checkpoint { chain: chain.to_string(), number },
                    FaultKind::Checkpoint,
                    format!(
                        "event #{} is not the one it signed: the history was rewritten",
                        event.seq
                    ),
                );
            }
            if let (Action::CheckpointStored { chain, number }, Some(r)) =
                (&event.entry.action, &event.entry.record)
            {
                named_marks.insert((chain.clone(), *number), r.digest);
            }
            match errors.as_deref_mut() {
                Some(errors) => {
                    errors.insert(event.seq, content(&event.entry));
                }
                None => replay_event(event, &mut replay.keys, &mut replay.burned, report),
            }
        }
    }
    if let Err(e) = verifier.finish() {
        report.fault(at(broken_at(&e, 0)), FaultKind::ChainLink, e.to_string());
    }
    Ok(())
}

/// The checkpoints of `chain`, checked on their own (the audit key's signature, this
/// installation and chain, numbered from 1, each naming the digest of the one before, each no
/// shorter than the last and none past the chain's head), as the event count each marks and
/// the hash the chain must have there. A chain with no checkpoint marks nothing.
async fn checkpoints(
    store: &impl Store,
    chain: &DomainId,
    events: u64,
    audit_key: Option<&VerifyingKey>,
    dks: &DomainKeySetCertificate,
    held: &mut BTreeMap<(DomainId, u64), Digest>,
    report: &mut Report,
) -> Result<BTreeMap<u64, (u64, Digest)>, StoreError> {
    let mut marks = BTreeMap::new();
    let (mut number, mut count, mut previous) = (0, 0, [0u8; 32]);
    loop {
        let page = store.checkpoints(chain, number, PAGE).await?;
        if page.is_empty() {
            return Ok(marks);
        }
        for c in page {
            held.insert((chain.clone(), c.number), c.record.digest());
            report.signatures += 1;
            report.record_bytes += c.record.bytes.len() as u64;
            let at = Position::Checkpoint { chain: chain.to_string(), number: c.number };
            let mut fault = |why: String| report.fault(at.clone(), FaultKind::Checkpoint, why);
            let Some(key) = audit_key else {
                fault("there is no audit key to check it with".into());
                return Ok(marks);
            };
            let signed = match Unverified::<Checkpoint>::from_bytes(&c.record.bytes)
                .and_then(|v| v.verify(key))
            {
                Ok(v) => v,
                Err(e) => {
                    fault(format!("its signature: {e}"));
                    return Ok(marks);
                }
            };
            let b = signed.body();
            let why = if c.number != number + 1 {
                Some(format!("it follows checkpoint #{number}: the ones between are gone"))
            } else if b.number != c.number
                || b.count != c.count
                || b.head.0 != c.head.0
                || &b.chain != chain
            {
                Some("the archive's fields are not what it signed".into())
            } else if b.installation != dks.installation {
                Some("it is another installation's".into())
            } else if b.previous.0 != previous {
                Some("it does not name the checkpoint before it".into())
            } else if c.count < count {
                Some(format!("it covers {} events, fewer than the one before", c.count))
            } else if c.count > events {
                Some(format!(
                    "it covers {} events and the chain has {events}: the chain was cut",
                    c.count
                ))
            } else {
                None
            };
            if let Some(why) = why {
                // One made after the chain's head was read (a command checkpointing beside the
                // audit) covers events the audit does not check: it and those after it wait for
                // the next audit.
                if c.count > events
                    && store.chain_head(chain).await?.is_some_and(|h| h.count >= c.count)
                {
                    return Ok(marks);
                }
                fault(why);
                return Ok(marks);
            }
            (number, count, previous) =
                (c.number, c.count, postkey_crypto::sha256(&c.record.bytes));
            if c.count > 0 {
                marks.insert(c.count, (c.number, c.head));
            }
        }
    }
}

/// A digest of an event's content, whatever its place in a chain.
fn content(entry: &postkey_archive::EventEntry) -> Digest {
    postkey_archive::event_hash(&DomainId::error_log(), 0, &Digest::ZERO, entry)
}

/// The error log against its chain: each entry is what the event at its position recorded, and
/// every event of the chain (up to the head read) has its entry. Entries logged after the chain
/// was read are not checked; entries logged before it existed are counted.
async fn check_error_log(
    store: &impl Store,
    mut events: BTreeMap<u64, Digest>,
    read: u64,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut after = 0;
    // Entries logged after the chain was read are checked against the chain's length now.
    let now = store.chain_head(&DomainId::error_log()).await?.map_or(0, |h| h.count);
    let mut chained_since: Option<u64> = None;
    loop {
        let page = store.errors_in_order(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for logged in &page {
            let at = || Position::ErrorEntry { id: logged.id };
            match logged.seq {
                // Entries from before the error log was chained come before every chained one.
                None if chained_since.is_some() => report.fault(
                    at(),
                    FaultKind::Unreferenced,
                    "it names no event of the error log's chain, and follows entries that do",
                ),
                None => report.errors_unchained += 1,
                Some(seq) if seq > now => report.fault(
                    at(),
                    FaultKind::Unreferenced,
                    format!("it names event #{seq}, past the error log's chain ({now} events)"),
                ),
                Some(seq) if seq > read => {
                    chained_since.get_or_insert(logged.id);
                }
                Some(seq) => {
                    chained_since.get_or_insert(logged.id);
                    report.errors += 1;
                    match events.remove(&seq) {
                        None => report.fault(
                            at(),
                            FaultKind::Unreferenced,
                            format!(
                                "it names event #{seq} of the error log's chain, which is not there"
                            ),
                        ),
                        Some(d) if d != content(&logged.entry.event()) => report.fault(
                            at(),
                            FaultKind::Field,
                            format!(
                                "it is not what event #{seq} of the error log's chain recorded"
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    for seq in events.into_keys() {
        report.fault(
            Position::Chain { chain: DomainId::error_log().to_string(), seq },
            FaultKind::Unreferenced,
            "its error-log entry is gone",
        );
    }
    Ok(())
}

/// The duplicate memory against its chain: the rows each event of `SIGHTS` names are exactly
/// the batch it recorded (their count and digest, recomputed), and no row names an event that
/// is not there. Rows added after the chain was read are not checked.
async fn check_sightings(
    store: &impl Store,
    events: BTreeMap<u64, Digest>,
    read: u64,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut named = 0;
    for (seq, digest) in events {
        let rows = store.sightings_of_event(seq).await?;
        named += rows.len() as u64;
        if rows.is_empty() || content(&postkey_archive::Sighting::batch_event(&rows)) != digest {
            report.fault(
                Position::Chain { chain: DomainId::sightings().to_string(), seq },
                FaultKind::Field,
                "the duplicate memory's rows of this event are not the batch it recorded: a \
                 sighting was removed, added or changed",
            );
        }
    }
    report.sightings = named;
    // Every row, then the chain's length now: a row counted was committed before that length
    // was read, so it names an event up to it, unless it was added by hand.
    let all = store.count_sightings(u64::MAX >> 1).await?;
    let now = store.chain_head(&DomainId::sightings()).await?.map_or(0, |h| h.count);
    let past = all - store.count_sightings(now).await?.min(all);
    if past > 0 {
        report.fault(
            Position::Chain { chain: DomainId::sightings().to_string(), seq: now },
            FaultKind::Unreferenced,
            format!("{past} sightings name events past the duplicate memory's chain"),
        );
    }
    let held = store.count_sightings(read).await?;
    if held != named {
        report.fault(
            Position::Chain { chain: DomainId::sightings().to_string(), seq: read },
            FaultKind::Unreferenced,
            format!("the duplicate memory holds {held} sightings; its chain names {named}"),
        );
    }
    Ok(())
}

/// The position a chain error names, else `otherwise`.
fn broken_at(e: &StoreError, otherwise: u64) -> u64 {
    match e {
        StoreError::ChainBroken { seq, .. } => *seq,
        _ => otherwise,
    }
}

/// Replays one verified event of a domain chain.
fn replay_event(
    event: &ChainEvent,
    replay: &mut BTreeMap<u64, Replay>,
    burned: &mut BTreeSet<u64>,
    report: &mut Report,
) {
    let Some(key_id) = event.entry.key_id.map(|k| k.get()) else { return };
    let at = || Position::Chain { chain: event.chain.to_string(), seq: event.seq };
    if event.entry.action == Action::KeyIdBurned {
        burned.insert(key_id);
        return;
    }
    let key = replay.entry(key_id).or_default();
    if let Some(r) = &event.entry.record {
        key.records.push((r.digest, event.entry.time));
    }
    if let Some(note) = &event.entry.note {
        key.notes.push(' ');
        key.notes.push_str(note);
    }
    match &event.entry.action {
        Action::KeyCreated => {
            if key.status.is_some() {
                report.fault(at(), FaultKind::Status, format!("key {key_id} is created twice"));
            }
            key.status = Some(KeyStatus::New);
        }
        Action::StatusChanged { from, to } => {
            if key.status != Some(*from) || !KeyStatus::allowed(*from, *to) {
                let was = key.status.map_or("nothing".to_string(), |s| s.to_string());
                report.fault(
                    at(),
                    FaultKind::Status,
                    format!("key {key_id} goes {from} → {to} but was {was}"),
                );
            }
            key.status = Some(*to);
        }
        _ => {
            if key.status.is_none() {
                report.fault(
                    at(),
                    FaultKind::Status,
                    format!("key {key_id} changes before it exists"),
                );
            }
        }
    }
}

/// What a domain's chain recorded after the head the audit read (a run going on beside the
/// audit): the keys it touched, created or burned. Read after everything else of the domain, so
/// any change the audit saw half-made is named here.
#[derive(Default)]
struct Later {
    touched: BTreeSet<u64>,
    created: BTreeSet<u64>,
    burned: BTreeSet<u64>,
}

async fn later_events(
    store: &impl Store,
    domain: &DomainId,
    read: u64,
) -> Result<Later, StoreError> {
    let mut later = Later::default();
    let mut after = read;
    loop {
        let page = store.chain_events(domain, after, PAGE).await?;
        let Some(last) = page.last() else { return Ok(later) };
        after = last.seq;
        for e in &page {
            let Some(id) = e.entry.key_id.map(|k| k.get()) else { continue };
            later.touched.insert(id);
            match e.entry.action {
                Action::KeyCreated => {
                    later.created.insert(id);
                }
                Action::KeyIdBurned => {
                    later.burned.insert(id);
                }
                _ => {}
            }
        }
    }
}

/// Steps 3 and 4 for one domain, whose chain was read up to `read` events. A key that changed
/// after that (a run going on beside the audit) is pending: its faults are not reported.
async fn check_domain(
    store: &impl Store,
    domain: &DomainId,
    keys: &DomainPublicKeys,
    replay: DomainReplay,
    read: u64,
    report: &mut Report,
) -> Result<(), StoreError> {
    let Some(record) = store.domain(domain).await? else { return Ok(()) };
    let DomainReplay { keys: mut replay, burned: burned_in_chain } = replay;
    let allocated = record.next_key_id.get() - 1;
    let mut created = BTreeSet::new();
    let mut unreplayed = BTreeSet::new();
    // Each key's faults, held until the chain's later events say whether it was moving.
    let mut suspect: Vec<(u64, Vec<Fault>)> = Vec::new();
    // Each ISN names one key of its sub-domain, for ever.
    let mut isns: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut after = None;
    loop {
        let page =
            store.keys(&KeyFilter { after, ..KeyFilter::domain(domain.clone(), PAGE) }).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key_id);
        for key in &page {
            if let Some(r) = &key.registration
                && let Some(first) =
                    isns.insert((r.subdomain.to_string(), r.isn.to_string()), key.key_id.get())
            {
                report.fault(
                    Position::Key { domain: domain.to_string(), key_id: key.key_id.get() },
                    FaultKind::Field,
                    format!("its ISN {} in {} is key {first}'s too", r.isn, r.subdomain),
                );
            }
            match replay.remove(&key.key_id.get()) {
                Some(r) => {
                    created.insert(key.key_id.get());
                    let mut local = Report::empty();
                    check_key(store, key, keys, &r, &mut local).await?;
                    report.absorb(&local);
                    if !local.faults.is_empty() {
                        suspect.push((key.key_id.get(), local.faults));
                    }
                }
                None => {
                    unreplayed.insert(key.key_id.get());
                }
            }
        }
    }
    let burned: BTreeSet<u64> =
        store.burned_key_ids(domain).await?.into_iter().map(|b| b.key_id.get()).collect();
    let mut reserved: Vec<(u64, u64)> = Vec::new();
    for oak in store.boxes(Some(BoxType::Oak)).await? {
        for r in store.reservations(oak.id).await? {
            if &r.domain == domain {
                reserved.push((r.range.first.get(), r.range.last.get()));
            }
        }
    }
    let later = later_events(store, domain, read).await?;
    // Read last: whatever was allocated before any key, burn or reservation seen above.
    let allocated_now = store.domain(domain).await?.map_or(allocated, |d| d.next_key_id.get() - 1);
    for (key_id, faults) in suspect {
        if later.touched.contains(&key_id) {
            continue;
        }
        for f in faults {
            report.fault(f.position, f.kind, f.detail);
        }
    }
    let key_at = |key_id| Position::Key { domain: domain.to_string(), key_id };
    for (key_id, _) in replay {
        if !later.touched.contains(&key_id) {
            report.fault(
                key_at(key_id),
                FaultKind::Field,
                "its chain creates it but the archive holds no such key",
            );
        }
    }
    // A key no event created: made after the chain was read, if a later event creates it.
    let mut late = BTreeSet::new();
    for id in unreplayed {
        if later.created.contains(&id) {
            late.insert(id);
        } else {
            report.fault(key_at(id), FaultKind::Field, "no event of its chain creates it");
        }
    }
    let position = |key_id| Position::KeyId { domain: domain.to_string(), key_id };
    for id in burned.symmetric_difference(&burned_in_chain) {
        if !later.burned.contains(id) {
            report.fault(
                position(*id),
                FaultKind::Accounting,
                "burned in the index or in the chain, not both",
            );
        }
    }
    let mut account = Accounting { domain: domain.to_string(), allocated, ..Accounting::default() };
    // IDs made after the allocation was read are pending; the others must be allocated.
    let mut known: Vec<(u64, u64)> = Vec::new();
    for id in created.iter().chain(&late).chain(&burned) {
        if *id > allocated_now {
            report.fault(
                position(*id),
                FaultKind::Accounting,
                format!("past the {allocated_now} allocated"),
            );
        }
        known.push((*id, *id));
    }
    // Made or burned after the chain was read: pending.
    for id in later.created.iter().chain(&later.burned) {
        known.push((*id, *id));
    }
    for &(first, last) in &reserved {
        if last > allocated_now {
            report.fault(
                position(last),
                FaultKind::Accounting,
                format!("reserved past the {allocated_now} allocated"),
            );
        }
        known.push((first, last));
    }
    for id in created.intersection(&burned).chain(late.intersection(&burned)) {
        report.fault(position(*id), FaultKind::Accounting, "both a key and burned");
    }
    account.created =
        created.iter().filter(|id| **id <= allocated && !burned.contains(id)).count() as u64;
    account.burned = burned.iter().filter(|id| **id <= allocated).count() as u64;
    // The gaps: allocated IDs that are neither a key, burned nor reserved, as ranges (an
    // allocation of billions costs no more than its known IDs).
    known.sort_unstable();
    let mut next = 1u64;
    let mut covered_pending = 0u64;
    let gap = |from: u64, to: u64, report: &mut Report| {
        let what = if from == to {
            "allocated, but neither a key, burned nor reserved".to_string()
        } else {
            format!("allocated up to {to}, but neither keys, burned nor reserved")
        };
        report.fault(position(from), FaultKind::Accounting, what);
    };
    for &(first, last) in &known {
        let (first, last) = (first.max(1), last.min(allocated));
        if first > last {
            continue;
        }
        if first > next {
            gap(next, first - 1, report);
        }
        if last >= next {
            // Reserved IDs and late keys beyond what is already counted are pending.
            let fresh_from = first.max(next);
            let fresh = (fresh_from..=last).count() as u64;
            let counted = created.range(fresh_from..=last).count() as u64
                + burned.range(fresh_from..=last).count() as u64;
            covered_pending += fresh.saturating_sub(counted);
            next = last + 1;
        }
    }
    if next <= allocated {
        gap(next, allocated, report);
    }
    account.pending = covered_pending;
    report.key_ids.push(account);
    Ok(())
}

/// Step 3 for one key.
async fn check_key(
    store: &impl Store,
    key: &KeyRecord,
    keys: &DomainPublicKeys,
    replay: &Replay,
    report: &mut Report,
) -> Result<(), StoreError> {
    report.keys += 1;
    let (domain, key_id) = (key.domain.to_string(), key.key_id.get());
    let at_key = || Position::Key { domain: domain.clone(), key_id };
    if replay.status != Some(key.status) {
        let replayed = replay.status.map_or("nothing".into(), |s| s.to_string());
        report.fault(
            at_key(),
            FaultKind::Status,
            format!("recorded {} but its history says {replayed}", key.status),
        );
    }
    if let Err(time) = key.times.check_order() {
        report.fault(at_key(), FaultKind::Times, format!("the {time} is before an earlier time"));
    }
    if let Err(why) = check_fields(key, &replay.notes) {
        report.fault(at_key(), FaultKind::Field, why);
    }
    let records = store.records(&key.domain, key.key_id).await?;
    let mut seen = BTreeSet::new();
    let mut types = BTreeSet::new();
    for (i, stored) in records.iter().enumerate() {
        report.records += 1;
        report.signatures += 1;
        report.record_bytes += stored.record.bytes.len() as u64;
        let at = || Position::Record { domain: domain.clone(), key_id, index: i + 1 };
        let digest = stored.record.digest();
        if digest != stored.digest {
            report.fault(
                at(),
                FaultKind::Digest,
                format!("its bytes hash to {digest}, not {}", stored.digest),
            );
            continue;
        }
        seen.insert(digest);
        let named = replay.records.iter().find(|(d, _)| *d == digest).map(|(_, t)| *t);
        if named.is_none() {
            report.fault(at(), FaultKind::Unreferenced, "no event of the key names it");
        }
        let record_type = stored.record.record_type;
        types.insert(record_type);
        match check_record(key, keys, record_type, &stored.record.bytes) {
            Err((kind, why)) => report.fault(at(), kind, why),
            Ok(made) => {
                if let Err(why) = record_times(&key.times, record_type, made, named) {
                    report.fault(at(), FaultKind::Times, why);
                }
            }
        }
    }
    // Each MR4 confirms an MR3 of the key by its digest: the MR3 whose MAC no auditor can check
    // is the one Brass signed for.
    let of_type = |t: RecordType| records.iter().filter(move |r| r.record.record_type == t);
    let mr3s: BTreeSet<[u8; 32]> = of_type(RecordType::MR3).map(|r| r.record.digest().0).collect();
    for (i, r) in records.iter().enumerate() {
        if r.record.record_type != RecordType::MR4 {
            continue;
        }
        if let Ok(mr4) = Unverified::<RegistrationConfirmed>::from_bytes(&r.record.bytes)
            && !mr3s.contains(&mr4.claimed_body().mr3)
        {
            report.fault(
                Position::Record { domain: domain.clone(), key_id, index: i + 1 },
                FaultKind::Unreferenced,
                "it confirms an MR3 the key does not have: the MR3 was altered or replaced",
            );
        }
    }
    for (missing, _) in replay.records.iter().filter(|(d, _)| !seen.contains(d)) {
        report.fault(
            at_key(),
            FaultKind::Unreferenced,
            format!("an event names record {missing}, which is not stored"),
        );
    }
    let needs: &[RecordType] = match key.status {
        KeyStatus::New | KeyStatus::Bad => &[RecordType::MI3],
        KeyStatus::Installed => &[RecordType::MI3, RecordType::MI7, RecordType::MI9],
        KeyStatus::Active => {
            &[RecordType::MI3, RecordType::MI7, RecordType::MI9, RecordType::MR3, RecordType::MR4]
        }
        KeyStatus::Obsolete => {
            &[RecordType::MI3, RecordType::MI7, RecordType::MI9, RecordType::WITHDRAW]
        }
    };
    for t in needs {
        if !types.contains(t) {
            report.fault(
                at_key(),
                FaultKind::Field,
                format!("{} but no {t} is stored", key.status),
            );
        }
    }
    Ok(())
}

/// Every indexed field of the key against the value its events recorded (`name=value` in their
/// notes, the last one of each name; `KeyFields::describe` writes them): the boxes, meter,
/// sub-domain, ISN and the six times, exactly. A field set with no event recording it, or
/// recorded and not set, is a fault.
fn check_fields(key: &KeyRecord, notes: &str) -> Result<(), String> {
    let recorded = |name: &str| {
        notes.split_whitespace().rev().find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
    };
    let micros = |t: Option<Timestamp>| t.map(|t| t.unix_micros().to_string());
    let t = &key.times;
    let registration = key.registration.as_ref();
    let expected = [
        ("oak", Some(key.oak_id.to_string())),
        ("steel", Some(key.steel_id.to_string())),
        ("meter", key.meter_id.as_ref().map(ToString::to_string)),
        ("subdomain", registration.map(|r| r.subdomain.to_string())),
        ("isn", registration.map(|r| r.isn.to_string())),
        ("kms_request", micros(t.kms_request)),
        ("psr_install", micros(t.psr_install)),
        ("kms_install", micros(t.kms_install)),
        ("meter_registration", t.meter_registration.map(|d| d.to_string())),
        ("kms_key_registration", micros(t.kms_key_registration)),
        ("obsolete", micros(t.obsolete)),
    ];
    for (name, value) in expected {
        if recorded(name) != value.as_deref() {
            return Err(format!(
                "its {name} is {}, its events say {}",
                value.as_deref().unwrap_or("unset"),
                recorded(name).unwrap_or("nothing")
            ));
        }
    }
    Ok(())
}

/// The key's time each record vouches for, against the time the record was made (its header,
/// the box's clock) and the time of the event that stored it (KMS clock), with the skew
/// tolerance between clocks (docs/audit.md, "Times"): the KMS Request Time is before Oak made
/// MI3, the PSR Install Time after Steel made MI7, the KMS Install Time before Brass made MI9;
/// none after the event that stored its record.
fn record_times(
    times: &KeyTimes,
    record_type: RecordType,
    made: Timestamp,
    stored: Option<Timestamp>,
) -> Result<(), String> {
    let (name, time, made_after) = match record_type {
        RecordType::MI3 => ("KMS Request Time", times.kms_request, true),
        RecordType::MI7 => ("PSR Install Time", times.psr_install, false),
        RecordType::MI9 => ("KMS Install Time", times.kms_install, true),
        // The KMC records the KMS Key Registration Time when MR4 comes back, the Obsolete Time
        // when the withdrawal does: after Brass made them.
        RecordType::MR3 | RecordType::MR4 => {
            ("KMS Key Registration Time", times.kms_key_registration, false)
        }
        RecordType::WITHDRAW => ("Obsolete Time", times.obsolete, false),
        _ => return Ok(()),
    };
    let Some(time) = time else {
        return Err(format!("the key has a {record_type} but no {name}"));
    };
    let within = |a: Timestamp, b: Timestamp| {
        a.unix_micros() <= b.unix_micros().saturating_add(CLOCK_SKEW_TOLERANCE_MICROS)
    };
    let made_text = format!("{record_type} was made at {}", made.unix_micros());
    if made_after && !within(time, made) {
        return Err(format!("its {name} {} is after {made_text}", time.unix_micros()));
    }
    if !made_after && !within(made, time) {
        return Err(format!("its {name} {} is before {made_text}", time.unix_micros()));
    }
    if let Some(stored) = stored
        && !within(time, stored)
    {
        return Err(format!(
            "its {name} {} is after the event that stored its {record_type} ({})",
            time.unix_micros(),
            stored.unix_micros()
        ));
    }
    Ok(())
}

/// A record of `key`: signed by the domain key of its type, and naming what the key's fields
/// say. The time it was made, by its header.
fn check_record(
    key: &KeyRecord,
    keys: &DomainPublicKeys,
    record_type: RecordType,
    bytes: &[u8],
) -> Result<Timestamp, (FaultKind, String)> {
    let signature = |e: WireError| (FaultKind::Signature, e.to_string());
    let field = |why: String| Err((FaultKind::Field, why));
    // Registration and withdrawal records name the key's registration, not its boxes.
    let registration = |header: &Header, fields: Option<(&SubdomainId, &Isn, &Date)>| {
        check_header(key, header, BoxType::Brass)?;
        if let Some((subdomain, isn, date)) = fields {
            let recorded = key.registration.as_ref().map(|r| (&r.subdomain, &r.isn));
            if recorded != Some((subdomain, isn)) || key.times.meter_registration != Some(*date) {
                return field(format!(
                    "it registers the key in {subdomain} as {isn} on {date}, the key says {}",
                    recorded.map_or("nothing".into(), |(s, i)| format!("{s} as {i}"))
                ));
            }
        }
        Ok(header.timestamp)
    };
    let (header, oak, steel, sender_type) = match record_type {
        RecordType::MI3 => {
            let r = verified::<NewKeyRecord>(bytes, &keys.oak_auth).map_err(signature)?;
            (r.0, r.1.oak, r.1.steel, BoxType::Oak)
        }
        RecordType::MI7 => {
            let r = verified::<Installed>(bytes, &keys.steel_auth).map_err(signature)?;
            (r.0, r.1.oak, r.1.steel, BoxType::Steel)
        }
        RecordType::MI9 => {
            let r = verified::<InstalledKeyRecord>(bytes, &keys.brass_auth).map_err(signature)?;
            (r.0, r.1.oak, r.1.steel, BoxType::Brass)
        }
        // MR3's MAC is under a sub-domain key only Brass holds: its digest is checked against
        // the MR4 that names it (`check_key`), its fields here.
        RecordType::MR3 => {
            let r = Maced::<RegisteredKey>::from_bytes(bytes).map_err(signature)?;
            let b = r.claimed_body();
            return registration(r.header(), Some((&b.subdomain, &b.isn, &b.date)));
        }
        RecordType::MR4 => {
            let r =
                verified::<RegistrationConfirmed>(bytes, &keys.brass_auth).map_err(signature)?;
            return registration(&r.0, Some((&r.1.subdomain, &r.1.isn, &r.1.date)));
        }
        RecordType::WITHDRAW => {
            let r = verified::<Withdrawn>(bytes, &keys.brass_auth).map_err(signature)?;
            return registration(&r.0, None);
        }
        other => return Err((FaultKind::Field, format!("a {other} is no record of a key"))),
    };
    check_header(key, &header, sender_type)?;
    if oak != key.oak_id || steel != key.steel_id {
        return field(format!(
            "it names {oak} and {steel}, the key {} and {}",
            key.oak_id, key.steel_id
        ));
    }
    Ok(header.timestamp)
}

/// A record's header names the key's domain, key ID and (where it names one) meter, and was
/// sent by a box of `sender_type`.
fn check_header(
    key: &KeyRecord,
    header: &Header,
    sender_type: BoxType,
) -> Result<(), (FaultKind, String)> {
    let field = |why: String| Err((FaultKind::Field, why));
    if header.domain != key.domain || header.key_id != Some(key.key_id) {
        let key_id = header.key_id.map_or("none".into(), |k| k.to_string());
        return field(format!("it is the record of key {}/{key_id}", header.domain));
    }
    match &header.sender {
        Sender::Box(b) if b.box_type() == sender_type => {}
        other => return field(format!("sent by {other}, not a {sender_type} box")),
    }
    if let (Some(named), Some(recorded)) = (&header.meter_id, &key.meter_id)
        && named != recorded
    {
        return field(format!("it names meter {named}, the key {recorded}"));
    }
    Ok(())
}

/// The header and body of a record that verifies under `key`.
fn verified<B: postkey_wire::Body + Clone>(
    bytes: &[u8],
    key: &VerifyingKey,
) -> Result<(Header, B), WireError> {
    let v = Unverified::<B>::from_bytes(bytes)?.verify(key)?;
    Ok((v.header().clone(), v.body().clone()))
}
