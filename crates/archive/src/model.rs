//! What the archive keeps besides keys: domains, the box registry, domain key bundles, ceremony
//! transcripts, burned key IDs and the error log.

use core::fmt;

use postkey_crypto::{Fingerprint, HpkePublicKey, VerifyingKey};
use postkey_wire::{
    BoxId, DomainId, InstallationId, KeyId, MeterId, ResponseCode, Sender, Site, StateVersion,
    SubdomainId, Timestamp,
};

use crate::{Digest, KeyUpdate, NewKey, SignedRecord, StoreError, Transition};

/// Defines a short ASCII label newtype: 1 to 64 of `[a-z0-9-]`.
macro_rules! label {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The label, if it is 1 to 64 of `[a-z0-9-]`.
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                let ok = (1..=64).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(StoreError::Invalid(concat!(stringify!($name), " must be 1 to 64 of [a-z0-9-]")))
                }
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

label!(
    /// The component that logged an error: `kmc`, `box-link`, `http`, ...
    Component
);
label!(
    /// The kind of a ceremony: `first-box`, `box-init`, `domain-create`, ...
    CeremonyKind
);

/// The number the archive gives a ceremony transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TranscriptId(pub u64);

impl fmt::Display for TranscriptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A domain to create; its key IDs start at 1 and its chain starts empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDomain {
    /// The domain.
    pub id: DomainId,
    /// When it is created.
    pub time: Timestamp,
    /// Who created it (the manufacturing box).
    pub actor: Sender,
}

/// A domain as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    /// The domain.
    pub id: DomainId,
    /// When it was created.
    pub created: Timestamp,
    /// The ID the next allocation hands out.
    pub next_key_id: KeyId,
}

/// A sub-domain to add to an existing domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubdomain {
    /// The sub-domain (`USPS/US`); its domain must exist.
    pub id: SubdomainId,
    /// When it is added.
    pub time: Timestamp,
    /// Who added it.
    pub actor: Sender,
}

/// A sub-domain as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubdomainRecord {
    /// The sub-domain.
    pub id: SubdomainId,
    /// When it was added.
    pub created: Timestamp,
}

/// A box to register: its ID is unique for ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBox {
    /// The box's ID, which names its type.
    pub id: BoxId,
    /// Its certificate, signed by a manufacturing box, exactly as received.
    pub certificate: SignedRecord,
    /// Its identity (signing) key.
    pub identity_key: VerifyingKey,
    /// Its confidentiality (HPKE) key.
    pub confidentiality_key: HpkePublicKey,
    /// Its state version at registration.
    pub state_version: StateVersion,
    /// When it is registered.
    pub time: Timestamp,
    /// Who registered it (the certifying manufacturing box).
    pub actor: Sender,
}

/// A box as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRecord {
    /// The box's ID; its type is `id.box_type()`.
    pub id: BoxId,
    /// Its certificate, as received.
    pub certificate: SignedRecord,
    /// Its identity key.
    pub identity_key: VerifyingKey,
    /// Its confidentiality key.
    pub confidentiality_key: HpkePublicKey,
    /// The highest state version the archive has seen from it.
    pub state_version: StateVersion,
    /// When it was registered.
    pub registered: Timestamp,
}

/// A domain process made in a box (protocol §7.2 item 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDomainProcess {
    /// The box.
    pub box_id: BoxId,
    /// The domain it now serves.
    pub domain: DomainId,
    /// The sub-domains it serves (a Brass process; may be none), all of `domain`.
    pub subdomains: Vec<SubdomainId>,
    /// The manufacturing box's signed record of the process, as received.
    pub record: SignedRecord,
    /// When it was made.
    pub time: Timestamp,
    /// Who made it.
    pub actor: Sender,
}

/// A domain process as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainProcess {
    /// The box.
    pub box_id: BoxId,
    /// The domain.
    pub domain: DomainId,
    /// The sub-domains it serves.
    pub subdomains: Vec<SubdomainId>,
    /// Its signed record.
    pub record: SignedRecord,
    /// When it was made.
    pub created: Timestamp,
}

/// A domain key bundle (protocol §5): encrypted and signed by the Domain Key Set, opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBundle {
    /// The domain.
    pub domain: DomainId,
    /// Its version; unique within the domain.
    pub version: u32,
    /// The manufacturing box that made it.
    pub created_by: BoxId,
    /// The bundle's bytes, as received.
    pub bundle: SignedRecord,
    /// When it is stored.
    pub time: Timestamp,
}

/// A domain key bundle as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainBundle {
    /// The domain.
    pub domain: DomainId,
    /// Its version.
    pub version: u32,
    /// The manufacturing box that made it.
    pub created_by: BoxId,
    /// Its bytes.
    pub bundle: SignedRecord,
    /// When it was stored.
    pub stored: Timestamp,
}

/// A checkpoint of a chain, signed by the `ADMIN` audit key in a Brass box, to keep
/// (protocol §6.6). The caller checked its signature and read these fields from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckpoint {
    /// The chain it covers.
    pub chain: DomainId,
    /// Its number among the chain's checkpoints: the last kept plus one.
    pub number: u64,
    /// The chain's events it covers: no fewer than the last kept covers.
    pub count: u64,
    /// The hash of the newest of them.
    pub head: Digest,
    /// The signed checkpoint, as received.
    pub record: SignedRecord,
    /// When it is stored (KMS clock).
    pub time: Timestamp,
    /// The Brass box that signed it.
    pub actor: Sender,
}

impl NewCheckpoint {
    /// The rule both backends apply inside their write transaction: the next number of the
    /// chain after `last` (the newest kept), and no fewer events than it covers.
    pub fn follows(&self, last: Option<&StoredCheckpoint>) -> Result<(), StoreError> {
        let (number, count) = last.map_or((0, 0), |l| (l.number, l.count));
        if self.number != number + 1 {
            return Err(StoreError::Mismatch("a checkpoint's number follows the chain's last"));
        }
        if self.count < count {
            return Err(StoreError::Mismatch("a checkpoint covers no fewer events than the last"));
        }
        Ok(())
    }
}

/// A checkpoint as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The chain it covers.
    pub chain: DomainId,
    /// Its number, from 1.
    pub number: u64,
    /// The chain's events it covers.
    pub count: u64,
    /// The hash of the newest of them.
    pub head: Digest,
    /// The signed checkpoint, as received.
    pub record: SignedRecord,
    /// When it was stored.
    pub time: Timestamp,
}

/// A ceremony transcript to keep, signed by a manufacturing box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTranscript {
    /// When the ceremony ended.
    pub time: Timestamp,
    /// The ceremony's kind.
    pub kind: CeremonyKind,
    /// The box the ceremony was about, if one.
    pub box_id: Option<BoxId>,
    /// The signed transcript, as received.
    pub transcript: SignedRecord,
    /// Who signed it.
    pub actor: Sender,
}

/// A ceremony transcript as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Its number.
    pub id: TranscriptId,
    /// When the ceremony ended.
    pub time: Timestamp,
    /// Its kind.
    pub kind: CeremonyKind,
    /// The box it was about.
    pub box_id: Option<BoxId>,
    /// The signed transcript.
    pub transcript: SignedRecord,
}

/// A key ID to burn: allocated, never to become a key (protocol §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnKeyId {
    /// The domain.
    pub domain: DomainId,
    /// The ID; allocated and without a key record.
    pub key_id: KeyId,
    /// Why (`Oak refused it as not fresh`).
    pub reason: String,
    /// When.
    pub time: Timestamp,
    /// Who reported it.
    pub actor: Sender,
}

/// A burned key ID as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnedKeyId {
    /// The domain.
    pub domain: DomainId,
    /// The ID.
    pub key_id: KeyId,
    /// Why.
    pub reason: String,
    /// When it was burned.
    pub time: Timestamp,
}

/// A run of freshly allocated key IDs, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIdRange {
    /// The first ID.
    pub first: KeyId,
    /// The last ID.
    pub last: KeyId,
}

impl KeyIdRange {
    /// Every ID of the range, in order.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + use<> {
        (self.first.get()..=self.last.get()).filter_map(|n| KeyId::new(n).ok())
    }
}

/// Key IDs allocated to a holder (the Oak box generating them) and not yet accounted for: until
/// a change releases them, each is to become a key or be burned. A run that stops leaves its
/// reservations behind, and the next run of that holder burns what never became a key
/// (docs/installation.md, "After a stop").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The domain.
    pub domain: DomainId,
    /// The IDs.
    pub range: KeyIdRange,
    /// Who holds them.
    pub holder: BoxId,
    /// When they were reserved.
    pub time: Timestamp,
}

/// An error to log (protocol §9): every error is reported to its source and written here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLogEntry {
    /// When.
    pub time: Timestamp,
    /// Which component.
    pub component: Component,
    /// The response code sent.
    pub response_code: ResponseCode,
    /// What happened, for operators; never key material.
    pub message: String,
    /// The domain concerned, if any.
    pub domain: Option<DomainId>,
    /// The meter concerned, if any.
    pub meter_id: Option<MeterId>,
    /// The key concerned, if any.
    pub key_id: Option<KeyId>,
    /// Where the entry was written first, if elsewhere (a line of a host's error-log spool, by
    /// its unique ID): an origin the log holds already is not logged again, so a spool moved in
    /// twice (after a crash mid-move) adds each entry once.
    pub origin: Option<String>,
}

impl ErrorLogEntry {
    /// The entry as an event of the error log's chain (`ERRORS`, protocol §6.6): its time, the
    /// KMC as the actor (the archive's writer), its key ID, and every other field in its note,
    /// the message last.
    pub fn event(&self) -> crate::EventEntry {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let note = format!(
            "component={}\ncode={}\ndomain={}\nmeter={}\norigin={}\nmessage={}",
            self.component,
            self.response_code.0,
            opt(self.domain.as_ref().map(ToString::to_string)),
            opt(self.meter_id.as_ref().map(ToString::to_string)),
            opt(self.origin.clone()),
            self.message
        );
        crate::EventEntry {
            time: self.time,
            actor: Sender::Role(postkey_wire::Role::Kmc),
            action: crate::Action::ErrorLogged,
            key_id: self.key_id,
            record: None,
            note: Some(note),
        }
    }
}

/// A logged error with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedError {
    /// Its number, increasing in the order logged.
    pub id: u64,
    /// The entry.
    pub entry: ErrorLogEntry,
    /// Its event in the error log's chain (none for an entry logged before the chain existed,
    /// schema version 5 and older).
    pub seq: Option<u64>,
}

/// Which errors [`crate::Store::error_log`] returns: matching every filter given, newest first,
/// at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLogQuery {
    /// Only errors at or after this time.
    pub since: Option<Timestamp>,
    /// Only errors of this domain.
    pub domain: Option<DomainId>,
    /// Only errors with this code.
    pub response_code: Option<ResponseCode>,
    /// At most this many.
    pub limit: u32,
}

impl ErrorLogQuery {
    /// The newest `limit` errors.
    pub fn latest(limit: u32) -> Self {
        Self { since: None, domain: None, response_code: None, limit }
    }
}

/// The installation an archive belongs to, made once by the first ceremony: its ID (sealed into
/// every box), the trust anchors' fingerprint and the certified Domain Key Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstallation {
    /// The installation's ID.
    pub id: InstallationId,
    /// The fingerprint of the trust anchors.
    pub anchors: Fingerprint,
    /// The Domain Key Set's certificate (`DKS_CERTIFICATE`), signed with the manufacturing
    /// startup key, as received.
    pub dks_certificate: SignedRecord,
    /// When.
    pub time: Timestamp,
    /// Who made it (the first manufacturing box).
    pub actor: Sender,
}

/// The installation as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationRecord {
    /// Its ID.
    pub id: InstallationId,
    /// The fingerprint of its trust anchors.
    pub anchors: Fingerprint,
    /// The Domain Key Set's certificate, as received.
    pub dks_certificate: SignedRecord,
    /// When it was made.
    pub created: Timestamp,
}

/// A state version a box answered with, to record: only ever higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxVersion {
    /// The box.
    pub box_id: BoxId,
    /// Its state version.
    pub version: StateVersion,
}

/// A box's recorded state version set back to that of a state restored from backup: the
/// quorum-authorised re-baseline of `docs/spec/state-versions.md`. Guarded: it applies only while
/// the archive still records `from`. `ADMIN` chain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebaseline {
    /// The box.
    pub box_id: BoxId,
    /// The version the archive records now.
    pub from: StateVersion,
    /// The restored state's version, below `from`.
    pub to: StateVersion,
    /// When.
    pub time: Timestamp,
    /// Who authorised it (the manufacturing box that signed the ceremony's transcript).
    pub actor: Sender,
}

/// Changes of several kinds applied in one transaction ([`crate::Store::apply`]): whole or not
/// at all, every rule of each kind enforced per item. A ceremony records everything it made
/// (boxes, domains, bundles, processes, its transcript and the boxes' new state versions) in
/// one; the KMS computer records a batch's keys with the versions of the boxes that answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The installation, at the first ceremony.
    pub installation: Option<NewInstallation>,
    /// Domains to create.
    pub domains: Vec<NewDomain>,
    /// Sub-domains to add.
    pub subdomains: Vec<NewSubdomain>,
    /// Bundles to store.
    pub bundles: Vec<NewBundle>,
    /// Boxes to register.
    pub boxes: Vec<NewBox>,
    /// Domain processes to record.
    pub processes: Vec<NewDomainProcess>,
    /// Recorded state versions set back to a restored state's (before `versions`).
    pub rebaselines: Vec<Rebaseline>,
    /// State versions the boxes answered with.
    pub versions: Vec<BoxVersion>,
    /// Transcripts to keep.
    pub transcripts: Vec<NewTranscript>,
    /// Key IDs burned.
    pub burns: Vec<BurnKeyId>,
    /// Keys created `New`.
    pub new_keys: Vec<NewKey>,
    /// Reservations accounted for (after `burns` and `new_keys`): each of their IDs must be a
    /// key or burned by then.
    pub released: Vec<Reservation>,
    /// Key fields set.
    pub updates: Vec<KeyUpdate>,
    /// Key status changes.
    pub transitions: Vec<Transition>,
}

impl Changes {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What [`crate::Store::apply`] made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The numbers given to the transcripts, in order.
    pub transcripts: Vec<TranscriptId>,
}

/// One sighting of a good mailpiece in verification's duplicate memory (docs/verification.md):
/// the meter and its piece count identify the mailpiece; the time and site are of the first
/// verifier that saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The meter (of the mailpiece's key records).
    pub meter: MeterId,
    /// Its piece count.
    pub count: u32,
    /// When it was verified.
    pub time: Timestamp,
    /// Where, as the verifier names its site.
    pub site: Site,
}

impl Sighting {
    /// The event of the duplicate memory's chain (`SIGHTS`, protocol §6.6) that records the
    /// first sightings one transaction added: the earliest of their times, the KMC as the
    /// actor, and in its note their number and the SHA-256 of their lines
    /// `meter|count|time|site`, in (meter, count) order. The audit recomputes it from the rows.
    pub fn batch_event<'a>(batch: impl IntoIterator<Item = &'a Sighting>) -> crate::EventEntry {
        use core::fmt::Write as _;
        let mut sorted: Vec<&Sighting> = batch.into_iter().collect();
        sorted.sort_unstable_by(|a, b| (&a.meter, a.count).cmp(&(&b.meter, b.count)));
        // A batch holds tens of thousands: each line pieced together, the numbers alone
        // formatted.
        let mut lines = String::with_capacity(48 * sorted.len());
        for s in &sorted {
            lines.push_str(s.meter.product_code().as_str());
            lines.push('-');
            lines.push_str(s.meter.msn().as_str());
            let _ = write!(lines, "|{}|{}|", s.count, s.time.unix_micros());
            lines.push_str(s.site.as_str());
            lines.push('\n');
        }
        let digest: String =
            postkey_crypto::sha256(lines.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let time = sorted.iter().map(|s| s.time).min().unwrap_or(Timestamp::from_unix_micros(0));
        crate::EventEntry {
            time,
            actor: Sender::Role(postkey_wire::Role::Kmc),
            action: crate::Action::SightingsRecorded,
            key_id: None,
            record: None,
            note: Some(format!("count={}\nsha256={digest}", sorted.len())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Sighting;
    use postkey_wire::{MeterId, Site, Timestamp};

    /// The note of a batch's event: its count and the SHA-256 of its lines
    /// `meter|count|time|site` in (meter, count) order, whatever order the batch came in. An
    /// archive's events were written with this text: it never changes.
    #[test]
    fn a_batch_event_digests_its_lines_in_key_order() {
        let s = |meter: &str, count, time, site: &str| Sighting {
            meter: MeterId::parse(meter).unwrap(),
            count,
            time: Timestamp::from_unix_micros(time),
            site: Site::parse(site).unwrap(),
        };
        let batch = [
            s("PB1234-000002", 7, 300, "NYC"),
            s("PB12-000009", 8, 200, "CHI"),
            s("PB1234-000002", 6, 100, "NYC"),
        ];
        let event = Sighting::batch_event(&batch);
        let lines = "PB12-000009|8|200|CHI\nPB1234-000002|6|100|NYC\nPB1234-000002|7|300|NYC\n";
        let digest: String =
            postkey_crypto::sha256(lines.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(event.note.as_deref(), Some(format!("count=3\nsha256={digest}").as_str()));
        assert_eq!(event.time, Timestamp::from_unix_micros(100), "the earliest time");
    }
}
