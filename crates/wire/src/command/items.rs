//! The items of every box command and their answers (the table is in [`super`]). Each is a map of
//! named fields on the wire; code on both sides sees only these types.

use crate::command::param::{choice, params};
use crate::{
    Aborted, BadKey, BlankOffer, BoxId, BoxKeys, BoxType, Certificate, ChainHash, Checkpoint,
    ConfigTables, Delivery, DomainBundle, DomainId, DomainKind, InstallConfirmed, Installed,
    InstalledKeyRecord, Isn, KeyForSteel, Kit, Maced, Message, MeterId, Mr3Digest, NewKeyRecord,
    Nonce, ProcessRecord, RegisteredKey, RegistrationConfirmed, RegistrationRequest, SubdomainId,
    TableUpdate, TinExport, Token, Transcript, Unverified, Zip,
};
use crate::{Period, Timestamp};

use super::pieces::{TokenBits, VerifyPieces};

params! {
    /// `SELF_TEST`: run the power-up self-tests again.
    pub struct SelfTest {}

    /// `ATTEST_STATE`: sign the state version over the KMC's fresh nonce (protocol §7.2 item 7).
    pub struct AttestState {
        /// The nonce.
        pub nonce: Nonce,
    }

    /// `UPDATE_TABLES`: apply a configuration-table update (protocol §8).
    pub struct UpdateTables {
        /// Signed by a manufacturing box with the startup key of this box's type.
        pub update: Unverified<TableUpdate>,
    }

    /// `INSTALL_PROCESS`: install a domain process from a delivery (protocol §7.2 item 4).
    pub struct InstallProcess {
        /// The keys, sealed to this box and signed with its type's startup key.
        pub delivery: Unverified<Delivery>,
    }

    /// `INSTALL_CERTIFICATE`: install this box's own certificate.
    pub struct InstallCertificate {
        /// Signed with the startup key of this box's type.
        pub certificate: Unverified<Certificate>,
    }

    /// `INSTALL_KIT`: a new manufacturing box takes its Domain Key Set and startup keys.
    pub struct InstallKit {
        /// Signed with the manufacturing startup key, sealed to this box.
        pub kit: Unverified<Kit>,
    }

    /// `ISSUE_SET_ID`: give a blank box the next ID of a type (protocol §7.2 item 3).
    pub struct IssueSetId {
        /// The blank box's offer: its nonce and the fingerprint of its anchors.
        pub offer: Message<BlankOffer>,
        /// The type of the new box.
        pub box_type: BoxType,
    }

    /// `CERTIFY`: certify a new box's keys, the answer to a Set-ID this box issued.
    pub struct Certify {
        /// The new box's public keys, signed by its new identity key.
        pub keys: Unverified<BoxKeys>,
    }

    /// `CREATE_DOMAIN`: create a security domain and its keys (protocol §5).
    pub struct CreateDomain {
        /// The domain.
        pub domain: DomainId,
        /// What kind of domain.
        pub kind: DomainKind,
        /// Its sub-domains (at least one, but for `ADMIN`).
        pub subdomains: Vec<SubdomainId>,
    }

    /// `DELIVER`: make a domain process in another box (protocol §7.2 item 4).
    pub struct Deliver {
        /// The domain's bundle.
        pub bundle: Unverified<DomainBundle>,
        /// The certificate of the box that gets the process.
        pub recipient: Unverified<Certificate>,
        /// For a Brass process, the sub-domains it serves; empty for the other types.
        pub subdomains: Vec<SubdomainId>,
    }

    /// `ADOPT_DOMAIN`: adopt a domain another manufacturing box created (protocol §7.2 item 5).
    pub struct AdoptDomain {
        /// The domain's bundle, checked against the Domain Key Set.
        pub bundle: Unverified<DomainBundle>,
    }

    /// `ISSUE_KIT`: equip a new manufacturing box.
    pub struct IssueKit {
        /// The new manufacturing box's certificate.
        pub recipient: Unverified<Certificate>,
    }

    /// `SIGN_TABLES`: sign a configuration-table update for a box.
    pub struct SignTables {
        /// The box the update is for.
        pub recipient: BoxId,
        /// Its new tables.
        pub tables: ConfigTables,
    }

    /// `SIGN_TRANSCRIPT`: sign a ceremony transcript with this box's identity key.
    pub struct SignTranscript {
        /// What the ceremony did.
        pub transcript: Transcript,
    }

    /// `GENERATE_KEY`: Oak generates a master key (MI1 → MI2, protocol §6.1).
    pub struct GenerateKey {
        /// MI1: the key ID and domain in its header, the Steel box's papers in its body.
        pub mi1: Message<crate::GenerateKey>,
    }

    /// `INSTALL_KEY`: Steel installs a key into the meter the order names, over its meter link.
    pub struct InstallKey {
        /// MI4, as Oak signed it.
        pub mi4: Unverified<KeyForSteel>,
        /// The meter the order names.
        pub meter: MeterId,
    }

    /// `RECOVER`: Steel signs ABORTED for every installation a stop interrupted, and answers
    /// again the MI7 or ABORTED of each installation of its last `INSTALL_KEY` batch.
    pub struct Recover {}

    /// `CHECK_INSTALL`: Brass checks an installation (MI8 = MI3 + MI7).
    pub struct CheckInstall {
        /// MI3, the archive's copy of the key.
        pub mi3: Unverified<NewKeyRecord>,
        /// MI7, Steel's report of the installation.
        pub mi7: Unverified<Installed>,
    }

    /// `REGISTER` (MR2): Brass registers a key into one of the sub-domains it serves (protocol
    /// §6.2).
    pub struct Register {
        /// MR1 of this key, as the meter made it.
        pub mr1: Message<RegistrationRequest>,
        /// The key's MI9, signed by the domain's Brass key: the key, its meter and K sealed.
        pub mi9: Unverified<InstalledKeyRecord>,
    }

    /// `REGISTER`'s answer.
    pub struct Registered {
        /// MR3, for the archive.
        pub mr3: Maced<RegisteredKey>,
        /// MR4, for the KMC.
        pub mr4: Unverified<RegistrationConfirmed>,
    }

    /// `WITHDRAW`: Brass takes a meter's key out of service (protocol §6.3).
    pub struct Withdraw {
        /// The key's MI9: the key, its meter.
        pub mi9: Unverified<InstalledKeyRecord>,
        /// Why (at most 256 bytes).
        pub reason: String,
    }

    /// `VERIFY`: Brass recomputes the tokens of a group of mailpieces (protocol §6.5). The KMC
    /// found each key's MR3 by (postal sub-domain, ISN) and checked its status; the box checks
    /// each MR3 (MAC, sub-domain served, the ISN and sub-domain its mailpieces name) and
    /// answers, per mailpiece, whether each token is its key's. An MR3 the box checked before
    /// is named by its digest alone.
    pub struct Verify {
        /// The keys the mailpieces' tokens are checked with, each once.
        pub keys: Vec<VerifyKey>,
        /// The mailpieces, packed; each names one or two of `keys` by index.
        pub pieces: VerifyPieces,
    }

    /// A key of a `VERIFY` item, and the mailpieces it is used for.
    pub struct VerifyKey {
        /// SHA-256 of the key's MR3 as the archive keeps it.
        pub mr3_digest: Mr3Digest,
        /// The MR3 itself (one), or none when the box should hold it checked already.
        pub mr3: Vec<Maced<RegisteredKey>>,
        /// The ISN the mailpieces name: MR3's must be the same.
        pub isn: Isn,
        /// The postal sub-domain the mailpieces name: MR3's own for the postal key, the
        /// vendor's sub-domain of the same country for the vendor key.
        pub subdomain: SubdomainId,
    }

    /// One mailpiece of a `TIN_VERIFY` item: its own fields and the token to check.
    pub struct PieceToken {
        /// The mailing date.
        pub date: crate::Date,
        /// The postage value.
        pub value: u32,
        /// The piece count.
        pub count: u32,
        /// The origin postal code.
        pub zip: Zip,
        /// The printed postal token.
        pub token: Token,
    }

    /// `VERIFY`'s answer: per mailpiece, whether each of its tokens is its key's (compared in
    /// constant time), and which keys named by digest alone the box does not hold (their
    /// tokens not checked: send their MR3s).
    pub struct Verdicts {
        /// Indices into the item's keys of the MR3s not held, ascending.
        pub unheld: Vec<u32>,
        /// Two bits per mailpiece, in order.
        pub good: TokenBits,
    }

    /// `EXPORT_TOKEN_KEYS`: Brass derives one month's token keys of the meters whose MR3s
    /// the KMC sends (the `Active` keys of one postal sub-domain it serves) and seals them to a
    /// Tin box that the manufacturing box made a process of that sub-domain in: one chunk of a
    /// Tin export (protocol §6.5, docs/tin.md).
    pub struct ExportTokenKeys {
        /// The Tin box's certificate: its confidentiality key.
        pub tin: Unverified<Certificate>,
        /// The Tin box's process of the domain, which must serve the sub-domain.
        pub process: Unverified<ProcessRecord>,
        /// The postal sub-domain.
        pub subdomain: SubdomainId,
        /// The month.
        pub period: Period,
        /// When the KMC read the meters from the archive (not after the box's time).
        pub as_of: Timestamp,
        /// This chunk's place, from 0.
        pub chunk: u32,
        /// How many chunks the export has.
        pub chunks: u32,
        /// The MR3 of each key, at most `TIN_EXPORT_CHUNK_KEYS`, one per ISN.
        pub mr3s: Vec<Maced<RegisteredKey>>,
    }

    /// `IMPORT_TIN_EXPORT`: a Tin box takes one chunk of an export sealed to it. Once it has
    /// every chunk, the export replaces the one it held for the sub-domain and month.
    pub struct ImportTinExport {
        /// The chunk, as Brass signed it.
        pub export: Unverified<TinExport>,
    }

    /// `IMPORT_TIN_EXPORT`'s answer: where the export stands.
    pub struct TinImported {
        /// Its sub-domain.
        pub subdomain: SubdomainId,
        /// Its month.
        pub period: Period,
        /// Its time.
        pub as_of: Timestamp,
        /// Chunks of it the box holds.
        pub have: u32,
        /// Chunks it has.
        pub chunks: u32,
        /// Token keys in use for the sub-domain and month once it is complete (0 before).
        pub keys: u32,
    }

    /// `TIN_VERIFY`: a Tin box recomputes the postal tokens of one meter's mailpieces of one
    /// month from the token key exported for its ISN (protocol §6.5).
    pub struct TinVerify {
        /// The postal sub-domain the mailpieces name.
        pub subdomain: SubdomainId,
        /// Their ISN.
        pub isn: Isn,
        /// The mailpieces, all of one month, with the postal token on each.
        pub pieces: Vec<PieceToken>,
    }

    /// `TIN_VERIFY`'s answer: what it covers and, per mailpiece, the postal token's verdict
    /// as a code: 0 good, or 5001 bad, 5002 unknown meter, 5005 date before registration.
    pub struct TinVerdicts {
        /// The export's time: the meters as of then. Duplicates are not checked.
        pub as_of: Timestamp,
        /// One code per mailpiece, in order.
        pub codes: Vec<u32>,
    }

    /// `CHECKPOINT`: Brass signs a checkpoint of an audit chain with the `ADMIN` audit key, if it
    /// extends the last checkpoint of that chain (protocol §6.6).
    pub struct CheckpointChain {
        /// The chain.
        pub chain: DomainId,
        /// Its events.
        pub count: u64,
        /// The hash of the newest.
        pub head: ChainHash,
        /// The newest checkpoint of the chain the archive keeps, if any (none or one).
        pub kept: Vec<Unverified<Checkpoint>>,
    }

    /// `CHECKPOINT`'s answer.
    pub struct Checkpointed {
        /// The box's last checkpoint of the chain when the archive does not keep it yet (a stop
        /// came between the box sealing it and the archive keeping it): to keep first.
        pub missing: Vec<Unverified<Checkpoint>>,
        /// The checkpoint asked for (the last one again if the chain has not moved).
        pub checkpoint: Unverified<Checkpoint>,
    }

    /// The answer of a command that makes nothing to send back.
    pub struct Done {}

    /// `DELIVER`'s answer.
    pub struct Delivered {
        /// The keys, sealed to the recipient and signed with its type's startup key.
        pub delivery: Unverified<Delivery>,
        /// The record that the box runs the process, for the KMC and the domain's other boxes.
        pub record: Unverified<ProcessRecord>,
    }

    /// `GENERATE_KEY`'s answer, MI2.
    pub struct Generated {
        /// MI3, for the archive.
        pub mi3: Unverified<NewKeyRecord>,
        /// MI4, for the Steel box; it leaves the KMC only after MI3 is committed.
        pub mi4: Unverified<KeyForSteel>,
    }

    /// A key Brass found installed: MI9 for the archive and MI10 for the KDC.
    pub struct Confirmed {
        /// MI9.
        pub mi9: Unverified<InstalledKeyRecord>,
        /// MI10.
        pub mi10: Unverified<InstallConfirmed>,
    }
}

choice! {
    /// `INSTALL_KEY`'s answer: how the installation ended.
    pub enum InstallEnded {
        /// The meter answered Oak's test tokens: MI7.
        0 => Installed(Unverified<Installed>),
        /// It did not, or the meter link failed: ABORTED, and the key must become `Bad`.
        1 => Aborted(Unverified<Aborted>),
    }
}

choice! {
    /// `CHECK_INSTALL`'s answer: what Brass found in MI3 and MI7.
    // Made once per key and moved once: boxing the larger variant would buy nothing.
    #[allow(clippy::large_enum_variant)]
    pub enum Checked {
        /// They match.
        0 => Installed(Confirmed),
        /// They do not: BAD, and the key must become `Bad`.
        1 => Bad(Unverified<BadKey>),
    }
}
