//! Records of the secure box lifecycle (protocol §7): initialization, certificates, domain bundles,
//! deliveries, configuration tables, state attestations and ceremony transcripts.
//!
//! ```text
//!  blank box                manufacturing box (M)                  everyone
//!  BlankOffer{nonce} ──────►
//!            ◄────────────── SetId{nonce, new ID}      signed: startup key of the new ID's type
//!  BoxKeys{nonce, keys} ───►                           signed: the new box's identity key
//!                            Certificate{ID, keys} ──► signed: startup key of the box's type
//!            ◄────────────── Delivery / TableUpdate    signed: startup key of the box's type
//!            ◄────────────── Kit (new M boxes only)    signed: M startup key
//! ```
//!
//! Every box checks what it receives against its five trust anchors (the startup public keys),
//! so a record signed with another type's key, or any other key, is refused.

use core::fmt;

use minicbor::{Decode, Encode};
use postkey_crypto::{Fingerprint, HpkeCiphertext, HpkePublicKey, VerifyingKey};

use crate::{
    Body, BoxId, BoxType, CommandCode, DomainId, RecordType, ShareSetId, StateVersion, SubdomainId,
    Timestamp,
};

/// A 32-byte random challenge, binding an answer to one request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(transparent)]
pub struct Nonce(#[cbor(n(0), with = "minicbor::bytes")] pub [u8; 32]);

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// The five startup authentication public keys, one per box type: every box's trust anchors.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct TrustAnchors {
    /// Manufacturing.
    #[n(0)]
    pub manufacturing: VerifyingKey,
    /// Oak.
    #[n(1)]
    pub oak: VerifyingKey,
    /// Steel.
    #[n(2)]
    pub steel: VerifyingKey,
    /// Brass.
    #[n(3)]
    pub brass: VerifyingKey,
    /// Tin.
    #[n(4)]
    pub tin: VerifyingKey,
}

impl TrustAnchors {
    /// The startup key of `box_type`.
    pub fn for_type(&self, box_type: BoxType) -> &VerifyingKey {
        match box_type {
            BoxType::Manufacturing => &self.manufacturing,
            BoxType::Oak => &self.oak,
            BoxType::Steel => &self.steel,
            BoxType::Brass => &self.brass,
            BoxType::Tin => &self.tin,
        }
    }

    /// The fingerprint operators confirm at every initialization.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of("trust-anchors", &crate::codec::to_bytes(self))
    }
}

/// Names one installation of postkey: made at the first ceremony, sealed into every box at its
/// initialization (Set-ID) and kept by the archive. A box is run only against the archive of its
/// own installation, so a home's boxes cannot be pointed at another archive, or at an emptied one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstallationId(pub [u8; 16]);

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallationId({self})")
    }
}

postkey_crypto::cbor_byte_string!(InstallationId, 16, "installation ID", |v| v.0, |b| Ok(
    InstallationId(b)
));

/// A blank box offers a fresh nonce for its initialization (unsigned: it has no key yet).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct BlankOffer {
    /// The nonce Set-ID must carry.
    #[n(0)]
    pub nonce: Nonce,
    /// The fingerprint of the anchors the blank box holds.
    #[n(1)]
    pub anchors: Fingerprint,
}

impl Body for BlankOffer {
    const RECORD_TYPE: RecordType = RecordType::BLANK_NONCE;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// Set-ID: a manufacturing box gives a blank box its ID, bound to the blank box's nonce.
/// Signed with the startup authentication key of the new ID's type.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct SetId {
    /// The blank box's nonce.
    #[n(0)]
    pub nonce: Nonce,
    /// The ID given.
    #[n(1)]
    pub new_id: BoxId,
    /// The manufacturing box that gives it.
    #[n(2)]
    pub issuer: BoxId,
    /// The installation the new box joins; it keeps it for life.
    #[n(3)]
    pub installation: InstallationId,
}

impl Body for SetId {
    const RECORD_TYPE: RecordType = RecordType::SET_ID;
    const VERSION: u16 = 2;
    const MAX_LEN: usize = 512;
}

/// A new box's answer to Set-ID: its public keys, signed by its new identity key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct BoxKeys {
    /// The Set-ID nonce, so the answer cannot be replayed to another initialization.
    #[n(0)]
    pub nonce: Nonce,
    /// The ID the box took.
    #[n(1)]
    pub box_id: BoxId,
    /// Its identity key.
    #[n(2)]
    pub identity: VerifyingKey,
    /// Its confidentiality key.
    #[n(3)]
    pub confidentiality: HpkePublicKey,
}

impl Body for BoxKeys {
    const RECORD_TYPE: RecordType = RecordType::BOX_KEYS;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// A box certificate: signed by a manufacturing box with the startup key of the box's type,
/// so every holder of the trust anchors can check it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Certificate {
    /// The box.
    #[n(0)]
    pub box_id: BoxId,
    /// Its identity key.
    #[n(1)]
    pub identity: VerifyingKey,
    /// Its confidentiality key.
    #[n(2)]
    pub confidentiality: HpkePublicKey,
    /// The manufacturing box that certified it.
    #[n(3)]
    pub issuer: BoxId,
    /// When.
    #[n(4)]
    pub issued: Timestamp,
}

impl Body for Certificate {
    const RECORD_TYPE: RecordType = RecordType::CERTIFICATE;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// What kind of security domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum DomainKind {
    /// The administration domain.
    #[n(0)]
    Admin,
    /// A meter vendor's domain.
    #[n(1)]
    Vendor,
    /// A postal operator's domain.
    #[n(2)]
    Postal,
    /// The `EARTH` domain: meters not yet assigned to a country's postal domain.
    #[n(3)]
    Earth,
}

impl DomainKind {
    /// The name used in the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Vendor => "vendor",
            Self::Postal => "postal",
            Self::Earth => "earth",
        }
    }
}

/// A domain's public keys (protocol §5): what the KMC, auditors and the domain's processes may know.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DomainPublicKeys {
    /// Domain Oak authentication key.
    #[n(0)]
    pub oak_auth: VerifyingKey,
    /// Domain Steel authentication key.
    #[n(1)]
    pub steel_auth: VerifyingKey,
    /// Domain Brass confidentiality key.
    #[n(2)]
    pub brass_conf: HpkePublicKey,
    /// Domain Brass authentication key.
    #[n(3)]
    pub brass_auth: VerifyingKey,
    /// The audit key, in the `ADMIN` domain only.
    #[n(4)]
    pub audit: Option<VerifyingKey>,
}

/// A domain key bundle: the domain's public keys in the clear and its private keys sealed to the
/// Domain Key Set, signed with the Domain Key Set's authentication key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DomainBundle {
    /// The domain.
    #[n(0)]
    pub domain: DomainId,
    /// What kind of domain.
    #[n(1)]
    pub kind: DomainKind,
    /// Its sub-domains.
    #[n(2)]
    pub subdomains: Vec<SubdomainId>,
    /// Its public keys.
    #[n(3)]
    pub public: DomainPublicKeys,
    /// Its private keys, sealed to the Domain Key Set's confidentiality key.
    #[n(4)]
    pub sealed: HpkeCiphertext,
}

impl Body for DomainBundle {
    const RECORD_TYPE: RecordType = RecordType::DOMAIN_BUNDLE;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 32 * 1024;
}

/// The record that a box runs a process of a domain, and for Brass which sub-domains it serves.
/// Signed by a manufacturing box with the startup key of the box's type; an Oak box checks the
/// Steel box's record before it generates a key for it (MI1).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ProcessRecord {
    /// The box.
    #[n(0)]
    pub box_id: BoxId,
    /// The domain.
    #[n(1)]
    pub domain: DomainId,
    /// The sub-domains a Brass process serves (empty for the other types).
    #[n(2)]
    pub subdomains: Vec<SubdomainId>,
}

impl Body for ProcessRecord {
    const RECORD_TYPE: RecordType = RecordType::PROCESS;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 4096;
}

/// A delivery: the keys one box type needs for one domain, sealed to the recipient's
/// confidentiality key and signed with the startup key of its type.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Delivery {
    /// The box the keys are for.
    #[n(0)]
    pub recipient: BoxId,
    /// The process installed.
    #[n(1)]
    pub process: ProcessRecord,
    /// The domain's public keys.
    #[n(2)]
    pub public: DomainPublicKeys,
    /// The private keys, sealed (HPKE `DELIVERY` to the recipient).
    #[n(3)]
    pub sealed: HpkeCiphertext,
    /// The domain's kind, from its bundle: a Tin box takes processes of postal domains only.
    #[n(4)]
    pub kind: DomainKind,
}

impl Body for Delivery {
    const RECORD_TYPE: RecordType = RecordType::DELIVERY;
    /// Version 2 carries the domain's kind.
    const VERSION: u16 = 2;
    const MAX_LEN: usize = 32 * 1024;
}

/// What a new manufacturing box receives: the Domain Key Set seed and the five startup private
/// keys, sealed to it, and the ID ranges it may allocate from. Signed with the M startup key.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Kit {
    /// The new manufacturing box.
    #[n(0)]
    pub recipient: BoxId,
    /// The box IDs it may allocate, per type.
    #[n(1)]
    pub ranges: Vec<IdRange>,
    /// The secrets (HPKE `KIT` to the recipient, domain `ADMIN`).
    #[n(2)]
    pub sealed: HpkeCiphertext,
}

impl Body for Kit {
    const RECORD_TYPE: RecordType = RecordType::KIT;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 4096;
}

/// A range of box numbers of one type, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct IdRange {
    /// The type letter's index in [`BoxType::ALL`].
    #[n(0)]
    pub box_type: u8,
    /// The first number.
    #[n(1)]
    pub first: u32,
    /// The last number.
    #[n(2)]
    pub last: u32,
}

/// A component's configuration tables (protocol §8): what it accepts. Anything outside them is
/// rejected and logged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
#[cbor(map)]
pub struct ConfigTables {
    /// The commands it accepts.
    #[n(0)]
    pub commands: Vec<CommandCode>,
    /// The domains it recognizes.
    #[n(1)]
    pub domains: Vec<DomainId>,
    /// The record types it recognizes.
    #[n(2)]
    pub record_types: Vec<RecordType>,
}

/// A configuration-table update for one box, signed with the startup key of its type.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct TableUpdate {
    /// The box.
    #[n(0)]
    pub recipient: BoxId,
    /// Strictly increasing per box, so an old update cannot be replayed.
    #[n(1)]
    pub sequence: u64,
    /// The new tables.
    #[n(2)]
    pub tables: ConfigTables,
}

impl Body for TableUpdate {
    const RECORD_TYPE: RecordType = RecordType::TABLE_UPDATE;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 16 * 1024;
}

/// A box's sealed-state version, signed by its identity key over the KMC's nonce
/// (protocol §7.2 item 7).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct StateAttestation {
    /// The KMC's nonce.
    #[n(0)]
    pub nonce: Nonce,
    /// The box.
    #[n(1)]
    pub box_id: BoxId,
    /// Its current state version.
    #[n(2)]
    pub version: StateVersion,
    /// The installation it belongs to.
    #[n(3)]
    pub installation: InstallationId,
    /// The last key ID each of its processes processed (Oak) or saw (Steel), by domain: what a
    /// re-baseline of a restored state is checked against.
    #[n(4)]
    pub last_key_ids: Vec<LastKeyId>,
    /// The box numbers a manufacturing box has not given yet, per type (empty for other box
    /// types): what a re-baseline of a restored manufacturing box is checked against.
    #[n(5)]
    pub free_box_ids: Vec<IdRange>,
}

impl Body for StateAttestation {
    const RECORD_TYPE: RecordType = RecordType::STATE_VERSION;
    const VERSION: u16 = 2;
    const MAX_LEN: usize = 8 * 1024;
}

/// The last key ID a domain process of a box processed or saw (0 before the first).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct LastKeyId {
    /// The domain.
    #[n(0)]
    pub domain: DomainId,
    /// The last key ID, 0 before the first.
    #[n(1)]
    pub last: u64,
}

/// The Domain Key Set's public keys, certified by the first manufacturing box with the
/// manufacturing startup key at the first ceremony: what the KMS computer and auditors check
/// domain bundles against, rooted in the trust anchors rather than in a file.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DomainKeySetCertificate {
    /// The installation.
    #[n(0)]
    pub installation: InstallationId,
    /// Bundles are sealed to this key.
    #[n(1)]
    pub confidentiality: HpkePublicKey,
    /// Bundles are signed with this key.
    #[n(2)]
    pub authentication: VerifyingKey,
    /// The manufacturing box that certified it.
    #[n(3)]
    pub issuer: BoxId,
}

impl Body for DomainKeySetCertificate {
    const RECORD_TYPE: RecordType = RecordType::DKS_CERTIFICATE;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// A share presented in a ceremony, named by set and index, never by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ShareRef {
    /// The set.
    #[n(0)]
    pub set: ShareSetId,
    /// The share's index.
    #[n(1)]
    pub index: u8,
}

/// A signed ceremony transcript: what was done, by which box, with which shares, after which
/// anchor fingerprint was confirmed, and with what result.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Transcript {
    /// The ceremony, e.g. `first-manufacturing-box`, `manufacture-box`, `create-domain`.
    #[n(0)]
    pub ceremony: String,
    /// The box that conducted it and signs this transcript.
    #[n(1)]
    pub conducted_by: BoxId,
    /// The box it concerned, if another.
    #[n(2)]
    pub subject: Option<BoxId>,
    /// The domain it concerned, if any.
    #[n(3)]
    pub domain: Option<DomainId>,
    /// The shares presented to enable the conducting box.
    #[n(4)]
    pub shares_presented: Vec<ShareRef>,
    /// The trust-anchor fingerprint the operators confirmed.
    #[n(5)]
    pub anchors: Fingerprint,
    /// Share sets written to removable media, if any.
    #[n(6)]
    pub shares_written: Vec<ShareSetId>,
    /// The result, in words.
    #[n(7)]
    pub outcome: String,
}

impl Body for Transcript {
    const RECORD_TYPE: RecordType = RecordType::TRANSCRIPT;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 16 * 1024;
}
