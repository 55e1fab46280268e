//! The hash chains of the audit trail (protocol §6.6, §11): one per domain for its keys' history,
//! the `ADMIN` chain for box, ceremony and domain events, and `ERRORS` for the error log.
//!
//! Each event stores its predecessor's hash and its own ([`event_hash`] gives the encoding). A
//! head row per chain (chain, count, head hash) is locked by every append, so appends to one
//! chain are serial and the chain never forks. [`ChainVerifier`] recomputes a chain from its
//! events and checks it against the head: an altered, removed or reordered event breaks it.
//! (Removing the newest events and rewinding the head to match is found only against a signed
//! checkpoint of the head, which a Brass box makes; see protocol §6.6.)

use core::fmt;

use postkey_wire::{BoxId, DomainId, KeyId, RecordType, Sender, SubdomainId, Timestamp};

use crate::{Digest, KeyStatus, SignedRecord, StoreError, TranscriptId};

/// The domain-separation label that starts every event hash.
const LABEL: &[u8] = b"postkey/archive/event/v1\0";

/// What an event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A key was created `New` from its MI3 record.
    KeyCreated,
    /// A key's fields (times, meter) were set without a status change.
    KeyUpdated,
    /// A key changed status.
    StatusChanged {
        /// The status before.
        from: KeyStatus,
        /// The status after.
        to: KeyStatus,
    },
    /// A signed record was stored with a key.
    RecordStored,
    /// An allocated key ID was burned: it never becomes a key.
    KeyIdBurned,
    /// A domain was created (`ADMIN` chain).
    DomainCreated(DomainId),
    /// A sub-domain was added (`ADMIN` chain).
    SubdomainAdded(SubdomainId),
    /// A box was registered (`ADMIN` chain).
    BoxRegistered(BoxId),
    /// A domain process was made in a box (`ADMIN` chain).
    DomainProcessAdded {
        /// The box.
        box_id: BoxId,
        /// The domain.
        domain: DomainId,
    },
    /// A domain key bundle was stored (`ADMIN` chain).
    BundleStored {
        /// The domain.
        domain: DomainId,
        /// The bundle's version.
        version: u32,
    },
    /// A ceremony transcript was stored (`ADMIN` chain).
    TranscriptStored(TranscriptId),
    /// The archive was bound to its installation at the first ceremony (`ADMIN` chain).
    InstallationCreated,
    /// An error was logged (the `ERRORS` chain); the entry is in the event's note.
    ErrorLogged,
    /// First sightings of good mailpieces were recorded (the `SIGHTS` chain): their number and
    /// digest are in the event's note.
    SightingsRecorded,
    /// A signed checkpoint of a chain was stored (`ADMIN` chain).
    CheckpointStored {
        /// The chain it covers.
        chain: DomainId,
        /// Its number.
        number: u64,
    },
    /// A box's recorded state version was set back to a restored state's (`ADMIN` chain).
    BoxRebaselined {
        /// The box.
        box_id: BoxId,
        /// The version recorded before.
        from: u64,
        /// The restored state's version.
        to: u64,
    },
}

impl Action {
    /// The canonical text stored in the archive and hashed into the chain.
    pub fn encode(&self) -> String {
        match self {
            Self::KeyCreated => "key-created".into(),
            Self::KeyUpdated => "key-updated".into(),
            Self::StatusChanged { from, to } => format!("status:{from}>{to}"),
            Self::RecordStored => "record-stored".into(),
            Self::KeyIdBurned => "key-id-burned".into(),
            Self::DomainCreated(d) => format!("domain-created:{d}"),
            Self::SubdomainAdded(s) => format!("subdomain-added:{s}"),
            Self::BoxRegistered(b) => format!("box-registered:{b}"),
            Self::DomainProcessAdded { box_id, domain } => {
                format!("domain-process-added:{box_id}:{domain}")
            }
            Self::BundleStored { domain, version } => format!("bundle-stored:{domain}:{version}"),
            Self::TranscriptStored(id) => format!("transcript-stored:{id}"),
            Self::InstallationCreated => "installation-created".into(),
            Self::ErrorLogged => "error-logged".into(),
            Self::SightingsRecorded => "sightings-recorded".into(),
            Self::CheckpointStored { chain, number } => {
                format!("checkpoint-stored:{chain}:{number}")
            }
            Self::BoxRebaselined { box_id, from, to } => {
                format!("box-rebaselined:{box_id}:{from}>{to}")
            }
        }
    }

    /// The action [`Action::encode`] wrote.
    pub fn decode(s: &str) -> Option<Self> {
        let (verb, arg) = s.split_once(':').unwrap_or((s, ""));
        let pair = || arg.split_once(':');
        Some(match verb {
            "key-created" if arg.is_empty() => Self::KeyCreated,
            "key-updated" if arg.is_empty() => Self::KeyUpdated,
            "record-stored" if arg.is_empty() => Self::RecordStored,
            "key-id-burned" if arg.is_empty() => Self::KeyIdBurned,
            "status" => {
                let (from, to) = arg.split_once('>')?;
                Self::StatusChanged { from: KeyStatus::parse(from)?, to: KeyStatus::parse(to)? }
            }
            "domain-created" => Self::DomainCreated(DomainId::parse(arg).ok()?),
            "subdomain-added" => Self::SubdomainAdded(SubdomainId::parse(arg).ok()?),
            "box-registered" => Self::BoxRegistered(BoxId::parse(arg).ok()?),
            "domain-process-added" => {
                let (b, d) = pair()?;
                Self::DomainProcessAdded {
                    box_id: BoxId::parse(b).ok()?,
                    domain: DomainId::parse(d).ok()?,
                }
            }
            "bundle-stored" => {
                let (d, v) = pair()?;
                Self::BundleStored { domain: DomainId::parse(d).ok()?, version: v.parse().ok()? }
            }
            "transcript-stored" => Self::TranscriptStored(TranscriptId(arg.parse().ok()?)),
            "installation-created" if arg.is_empty() => Self::InstallationCreated,
            "error-logged" if arg.is_empty() => Self::ErrorLogged,
            "sightings-recorded" if arg.is_empty() => Self::SightingsRecorded,
            "checkpoint-stored" => {
                let (c, n) = pair()?;
                Self::CheckpointStored { chain: DomainId::parse(c).ok()?, number: n.parse().ok()? }
            }
            "box-rebaselined" => {
                let (b, versions) = pair()?;
                let (from, to) = versions.split_once('>')?;
                Self::BoxRebaselined {
                    box_id: BoxId::parse(b).ok()?,
                    from: from.parse().ok()?,
                    to: to.parse().ok()?,
                }
            }
            _ => return None,
        })
    }
}

/// A signed record as an event names it: its type and the digest of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// The record's type.
    pub record_type: RecordType,
    /// SHA-256 of its bytes, as stored.
    pub digest: Digest,
}

impl RecordRef {
    /// The reference to `record`.
    pub fn of(record: &SignedRecord) -> Self {
        Self { record_type: record.record_type, digest: record.digest() }
    }
}

/// The content of an event, before it is placed in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    /// When it happened (KMS clock).
    pub time: Timestamp,
    /// Who caused it.
    pub actor: Sender,
    /// What happened.
    pub action: Action,
    /// The key it concerns, for key events.
    pub key_id: Option<KeyId>,
    /// The signed record that caused or carried it.
    pub record: Option<RecordRef>,
    /// A reason (for the KMC's own `→ Bad` or a burned ID) or the fields set, as text.
    pub note: Option<String>,
}

/// An event in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    /// The chain: the key's domain, or `ADMIN`.
    pub chain: DomainId,
    /// Its position, from 1.
    pub seq: u64,
    /// The hash of the event before it ([`Digest::ZERO`] for the first).
    pub prev_hash: Digest,
    /// Its own hash.
    pub hash: Digest,
    /// What it records.
    pub entry: EventEntry,
}

/// A chain's head row: how many events it has and the hash of the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain.
    pub chain: DomainId,
    /// Its number of events.
    pub count: u64,
    /// The newest event's hash ([`Digest::ZERO`] while empty).
    pub head_hash: Digest,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn empty(chain: DomainId) -> Self {
        Self { chain, count: 0, head_hash: Digest::ZERO }
    }

    /// The next event of this chain and the head after it. The caller holds the head row
    /// locked and writes both in the same transaction.
    pub fn append(&self, entry: EventEntry) -> (ChainEvent, ChainHead) {
        let seq = self.count + 1;
        let hash = event_hash(&self.chain, seq, &self.head_hash, &entry);
        let head = ChainHead { chain: self.chain.clone(), count: seq, head_hash: hash };
        let event =
            ChainEvent { chain: self.chain.clone(), seq, prev_hash: self.head_hash, hash, entry };
        (event, head)
    }
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} events, head {}", self.chain, self.count, self.head_hash)
    }
}

/// The hash of an event:
///
/// ```text
/// hash = SHA-256( "postkey/archive/event/v1" 0x00
///                 ‖ lp(chain) ‖ u64(seq) ‖ prev_hash
///                 ‖ u64(time) ‖ lp(actor) ‖ lp(action)
///                 ‖ opt(u64(key_id)) ‖ opt(u16(record_type) ‖ record_digest) ‖ opt(lp(note)) )
///
/// lp(s)  = u32(len(s)) ‖ s           (UTF-8 bytes; integers big-endian)
/// opt(x) = 0x00 when absent, 0x01 ‖ x when present
/// ```
///
/// `time` is Unix microseconds, `actor` the sender's text (`O00000003`, `KMC`, `METER:...`),
/// `action` the text of [`Action::encode`]. Every field is length-prefixed or of fixed size, so
/// two different events never encode alike. The first event's `prev_hash` is 32 zero bytes and
/// `seq` counts from 1.
pub fn event_hash(chain: &DomainId, seq: u64, prev_hash: &Digest, entry: &EventEntry) -> Digest {
    fn lp(out: &mut Vec<u8>, s: &[u8]) {
        // Fields are short (IDs, notes); a length past u32 cannot be stored by either backend.
        out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(s);
    }
    let mut m = Vec::with_capacity(256);
    m.extend_from_slice(LABEL);
    lp(&mut m, chain.as_str().as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&prev_hash.0);
    m.extend_from_slice(&entry.time.unix_micros().to_be_bytes());
    lp(&mut m, entry.actor.to_string().as_bytes());
    lp(&mut m, entry.action.encode().as_bytes());
    match entry.key_id {
        None => m.push(0),
        Some(k) => {
            m.push(1);
            m.extend_from_slice(&k.get().to_be_bytes());
        }
    }
    match &entry.record {
        None => m.push(0),
        Some(r) => {
            m.push(1);
            m.extend_from_slice(&r.record_type.0.to_be_bytes());
            m.extend_from_slice(&r.digest.0);
        }
    }
    match &entry.note {
        None => m.push(0),
        Some(n) => {
            m.push(1);
            lp(&mut m, n.as_bytes());
        }
    }
    Digest::of(&m)
}

/// Recomputes a chain event by event, in `seq` order, against the head read before the events.
#[derive(Debug)]
pub struct ChainVerifier {
    head: ChainHead,
    next_seq: u64,
    prev_hash: Digest,
}

impl ChainVerifier {
    /// A verifier for the chain whose head row is `head`.
    pub fn new(head: ChainHead) -> Self {
        Self { head, next_seq: 1, prev_hash: Digest::ZERO }
    }

    /// The sequence number after the last event fed.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether every event the head counts has been fed.
    pub fn is_complete(&self) -> bool {
        self.next_seq > self.head.count
    }

    /// Checks the next event. Events past the head's count were appended after the head was
    /// read, and are ignored.
    pub fn feed(&mut self, event: &ChainEvent) -> Result<(), StoreError> {
        if self.is_complete() {
            return Ok(());
        }
        let broken = |reason| StoreError::ChainBroken {
            chain: self.head.chain.clone(),
            seq: self.next_seq,
            reason,
        };
        if event.chain != self.head.chain {
            return Err(broken("event of another chain"));
        }
        if event.seq != self.next_seq {
            return Err(broken("event missing or out of order"));
        }
        if event.prev_hash != self.prev_hash {
            return Err(broken("previous hash does not match the event before"));
        }
        if event_hash(&event.chain, event.seq, &event.prev_hash, &event.entry) != event.hash {
            return Err(broken("event content does not match its hash"));
        }
        self.prev_hash = event.hash;
        self.next_seq += 1;
        Ok(())
    }

    /// Checks that the events fed end at the head, and returns it.
    pub fn finish(self) -> Result<ChainHead, StoreError> {
        if !self.is_complete() {
            return Err(StoreError::ChainBroken {
                chain: self.head.chain,
                seq: self.next_seq,
                reason: "fewer events than the head counts",
            });
        }
        if self.prev_hash != self.head.head_hash {
            return Err(StoreError::ChainBroken {
                chain: self.head.chain,
                seq: self.head.count,
                reason: "head hash does not match the last event",
            });
        }
        Ok(self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postkey_wire::Role;

    fn entry(n: u64) -> EventEntry {
        EventEntry {
            time: Timestamp::from_unix_micros(n),
            actor: Sender::Role(Role::Kmc),
            action: Action::KeyUpdated,
            key_id: KeyId::new(n).ok(),
            record: None,
            note: Some(format!("note {n}")),
        }
    }

    fn chain(n: u64) -> (Vec<ChainEvent>, ChainHead) {
        let mut head = ChainHead::empty(DomainId::admin());
        let mut events = Vec::new();
        for i in 1..=n {
            let (e, h) = head.append(entry(i));
            events.push(e);
            head = h;
        }
        (events, head)
    }

    fn verify(events: &[ChainEvent], head: &ChainHead) -> Result<ChainHead, StoreError> {
        let mut v = ChainVerifier::new(head.clone());
        events.iter().try_for_each(|e| v.feed(e))?;
        v.finish()
    }

    #[test]
    fn a_chain_verifies_and_any_change_breaks_it() {
        let (events, head) = chain(5);
        assert_eq!(verify(&events, &head).map(|h| h.count).ok(), Some(5));

        let mut altered = events.clone();
        altered[2].entry.note = Some("note X".into());
        assert!(matches!(verify(&altered, &head), Err(StoreError::ChainBroken { seq: 3, .. })));

        let mut removed = events.clone();
        removed.remove(1);
        assert!(matches!(verify(&removed, &head), Err(StoreError::ChainBroken { seq: 2, .. })));

        let mut swapped = events.clone();
        swapped.swap(1, 2);
        (swapped[1].seq, swapped[2].seq) = (2, 3);
        assert!(matches!(verify(&swapped, &head), Err(StoreError::ChainBroken { seq: 2, .. })));

        let truncated = &events[..4];
        assert!(verify(truncated, &head).is_err());
    }

    #[test]
    fn actions_round_trip_through_their_text() {
        let b = BoxId::parse("O00000003").ok();
        let d = DomainId::parse("USPS").ok();
        let (Some(b), Some(d)) = (b, d) else { panic!("test IDs parse") };
        for a in [
            Action::KeyCreated,
            Action::KeyUpdated,
            Action::StatusChanged { from: KeyStatus::Installed, to: KeyStatus::Active },
            Action::RecordStored,
            Action::KeyIdBurned,
            Action::DomainCreated(d.clone()),
            Action::BoxRegistered(b),
            Action::DomainProcessAdded { box_id: b, domain: d.clone() },
            Action::BundleStored { domain: d.clone(), version: 7 },
            Action::CheckpointStored { chain: d, number: 12 },
            Action::TranscriptStored(TranscriptId(9)),
            Action::InstallationCreated,
            Action::ErrorLogged,
            Action::BoxRebaselined { box_id: b, from: 9, to: 7 },
        ] {
            assert_eq!(Action::decode(&a.encode()), Some(a.clone()), "{}", a.encode());
        }
        assert_eq!(Action::decode("status:new>nothing"), None);
        assert_eq!(Action::decode("key-created:x"), None);
    }
}
