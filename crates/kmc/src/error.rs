use postkey_archive::StoreError;
use postkey_wire::{BoxId, DomainId, ResponseCode, Timestamp, WireError};

use crate::BoxRefusal;

/// Why the KMC could not do what it was asked: the archive failed or refused (its fault is in its
/// code), a box refused (its code), a box answered something invalid or about another key (the
/// peer's fault), or the order named what the archive does not hold (the caller's).
#[derive(Debug, thiserror::Error)]
pub enum KmcError {
    /// The archive refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A box refused (its response code says why).
    #[error(transparent)]
    Refused(#[from] BoxRefusal),
    /// A box answered something that does not decode or verify.
    #[error("{box_id} answered an invalid record: {error}")]
    BadAnswer {
        /// The box.
        box_id: BoxId,
        /// What is wrong with it.
        error: WireError,
    },
    /// A box answered records that do not describe the key asked about.
    #[error("{box_id} answered records of another key, domain or meter")]
    WrongAnswer {
        /// The box.
        box_id: BoxId,
    },
    /// The archive has no (valid) bundle of a domain.
    #[error("domain {0} has no bundle signed by the Domain Key Set in the archive")]
    NoBundle(DomainId),
    /// An export of more meters than one export carries.
    #[error("{keys} meters are more than one Tin export carries")]
    ExportTooLarge {
        /// How many.
        keys: usize,
    },
    /// A box is not registered, or has no process of the domain.
    #[error("{0} is not registered with a process of domain {1}")]
    NotCertified(BoxId, DomainId),
    /// A box presented a state version below the highest recorded (protocol §7.2 item 7).
    #[error(
        "{box_id} presented state version {presented}, below {recorded}: an old state was restored; the box is refused"
    )]
    Rollback {
        /// The box.
        box_id: BoxId,
        /// The highest recorded.
        recorded: u64,
        /// What it presented.
        presented: u64,
    },
    /// A box of another installation than the archive's.
    #[error("{box_id} belongs to another installation than the archive's: it is refused")]
    InstallationMismatch {
        /// The box.
        box_id: BoxId,
    },
    /// A batch ended without a result for an order (the archive allocated fewer IDs than
    /// asked, or an order's domain keys went missing mid-batch).
    #[error("the batch ended without a result for this order")]
    Unfinished,
    /// Oak kept refusing fresh key IDs.
    #[error("{0} refused {1} key IDs in a row as not fresh; the IDs were burned")]
    KeyIdsRefused(BoxId, u32),
    /// A record the archive keeps of a key is missing or does not verify.
    #[error("key {0}/{1}: {2} in the archive")]
    ArchivedRecord(DomainId, postkey_wire::KeyId, &'static str),
    /// An order whose domain does not have the role it is ordered for (a vendor key from a
    /// postal domain, say).
    #[error("domain {domain} is of kind {kind}: it gives no {role} key")]
    WrongRole {
        /// The domain.
        domain: DomainId,
        /// Its kind.
        kind: &'static str,
        /// The role ordered.
        role: &'static str,
    },
    /// The meter holds a live key of the role already (`New`, `Installed` or `Active`), or an
    /// earlier order of the batch gives it the role.
    #[error("meter {meter} has its {role} key already ({held}): it gets no other")]
    MeterHoldsKey {
        /// The meter.
        meter: postkey_wire::MeterId,
        /// The role.
        role: &'static str,
        /// What it holds.
        held: String,
    },
    /// The meter is registered already, with other data (protocol §6.2).
    #[error("meter {0} is registered already, with other data: a registered meter never moves")]
    MeterRegistered(postkey_wire::MeterId),
    /// The archive holds no key of the meter.
    #[error("the archive holds no key of meter {0}")]
    UnknownMeter(postkey_wire::MeterId),
    /// The meter was withdrawn (protocol §6.3).
    #[error("meter {0} was withdrawn: it is never registered or keyed again")]
    MeterWithdrawn(postkey_wire::MeterId),
    /// No Brass box serves the sub-domain.
    #[error("no Brass box serves {0}")]
    SubdomainNotServed(postkey_wire::SubdomainId),
    /// The ISN is another meter's in the sub-domain.
    #[error("ISN {isn} is registered to another meter in {subdomain}")]
    IsnTaken {
        /// The sub-domain.
        subdomain: postkey_wire::SubdomainId,
        /// The ISN.
        isn: postkey_wire::Isn,
    },
    /// A key asked to be registered that is not `Installed`.
    #[error("key {domain}/{key_id} is {status}: only an Installed key is registered")]
    NotInstalled {
        /// The key's domain.
        domain: DomainId,
        /// The key.
        key_id: postkey_wire::KeyId,
        /// Its status.
        status: postkey_archive::KeyStatus,
    },
    /// A meter's registration requests that do not form one registration: not one per key of
    /// the meter, or differing in ISN, country or date.
    #[error("meter {meter}: {why}")]
    BadRegistration {
        /// The meter.
        meter: postkey_wire::MeterId,
        /// What is wrong.
        why: &'static str,
    },
    /// The clock went back further than the KMC bridges (docs/installation.md).
    #[error(
        "the clock reads {now}, {behind_micros} µs before a time the archive recorded: beyond \
         what the KMC bridges; fix the clock"
    )]
    ClockWentBack {
        /// The clock's reading.
        now: Timestamp,
        /// How far behind the archive it is.
        behind_micros: u64,
    },
}

impl KmcError {
    /// The documented response code.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Store(e) => e.response_code(),
            Self::Refused(r) => r.refusal.code,
            Self::BadAnswer { error, .. } => error.response_code(),
            Self::WrongAnswer { .. } => ResponseCode::RECORD_MISMATCH,
            Self::NoBundle(_) => ResponseCode::UNKNOWN_DOMAIN,
            Self::NotCertified(..) => ResponseCode::NOT_CERTIFIED_FOR_DOMAIN,
            Self::ExportTooLarge { .. } => ResponseCode::MESSAGE_TOO_LARGE,
            Self::Rollback { .. } => ResponseCode::STATE_ROLLBACK,
            Self::InstallationMismatch { .. } => ResponseCode::INSTALLATION_MISMATCH,
            Self::KeyIdsRefused(..) => ResponseCode::KEY_ID_NOT_FRESH,
            Self::Unfinished => ResponseCode::ANSWER_MISMATCH,
            Self::ArchivedRecord(..) => ResponseCode::ARCHIVE_RECORD_INVALID,
            Self::WrongRole { .. } => ResponseCode::INVALID_ARGUMENT,
            Self::MeterHoldsKey { .. } => ResponseCode::METER_HOLDS_KEY,
            Self::ClockWentBack { .. } => ResponseCode::TIME_WENT_BACKWARDS,
            Self::MeterRegistered(_) => ResponseCode::METER_REGISTERED,
            Self::MeterWithdrawn(_) => ResponseCode::METER_WITHDRAWN,
            Self::UnknownMeter(_) => ResponseCode::UNKNOWN_METER,
            Self::SubdomainNotServed(_) => ResponseCode::SUBDOMAIN_NOT_SERVED,
            Self::IsnTaken { .. } => ResponseCode::ISN_TAKEN,
            Self::NotInstalled { .. } => ResponseCode::TRANSITION_NOT_ALLOWED,
            Self::BadRegistration { .. } => ResponseCode::RECORD_MISMATCH,
        }
    }
}
