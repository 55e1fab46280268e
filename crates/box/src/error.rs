use postkey_secrets::SecretError;
use postkey_secrets::selftest::SelfTestFailed;
use postkey_wire::{BoxId, CommandCode, DomainId, RecordType, ResponseCode, WireError};

/// Why a box refused a command: only the box's own reasons, never its host's (storage, locks,
/// rollback are the host's errors). Every variant has a documented response code, and through it
/// a [`postkey_wire::Fault`]: the peer's (malformed, forged, replayed or mismatched records), the
/// caller's (a command, domain or box type this box does not take), the box's state (error
/// state, no kit yet, an interrupted installation) or a resource (entropy, ID ranges, capacity).
/// The host writes each refusal to the error log; a refused command leaves the box unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxError {
    /// The input did not decode, or its signature did not verify (peer's fault).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A cryptographic operation on a secret failed (peer's fault or resource).
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The record is addressed to another box.
    #[error("record addressed to {addressed}, not to this box ({this})")]
    NotForThisBox {
        /// The box it names.
        addressed: BoxId,
        /// This box.
        this: BoxId,
    },
    /// An answer bound to another nonce, or replayed to a second box.
    #[error("nonce does not match the one this box offered")]
    NonceMismatch,
    /// Keys or a record meant for another box type.
    #[error("record meant for a {expected} box, and this is a {actual} box")]
    WrongBoxType {
        /// The type the record is for.
        expected: &'static str,
        /// This box's type.
        actual: &'static str,
    },
    /// A process of a domain whose kind this box type does not serve (Tin: postal only).
    #[error("a tin box serves postal domains only, and {domain} is a {} domain", kind.name())]
    DomainKindNotServed {
        /// The domain.
        domain: DomainId,
        /// Its kind.
        kind: postkey_wire::DomainKind,
    },
    /// A box ID certified a second time.
    #[error("box {0} is already certified")]
    AlreadyCertified(BoxId),
    /// A checkpoint that does not extend the last this box signed of the chain (protocol §6.6).
    #[error(
        "the {chain} chain at {count} events does not extend the last checkpoint this box signed \
         of it ({last}): {why}"
    )]
    CheckpointRefused {
        /// The chain.
        chain: DomainId,
        /// The events the request names.
        count: u64,
        /// The last checkpoint: its number, and its events where they matter.
        last: String,
        /// Behind, or another head at the same count.
        why: &'static str,
    },
    /// A domain this box does not know.
    #[error("domain {0} is unknown to this box")]
    UnknownDomain(DomainId),
    /// A domain that already exists.
    #[error("domain {0} already exists")]
    DomainExists(DomainId),
    /// A configuration update not newer than the last applied.
    #[error("configuration update {got} is not newer than {last}: refused as a replay")]
    StaleUpdate {
        /// The update's sequence number.
        got: u64,
        /// The last applied.
        last: u64,
    },
    /// A command outside this box's command table.
    #[error("command {0} is not in this box's command table")]
    CommandNotInTable(CommandCode),
    /// A domain outside this box's domain table.
    #[error("domain {0} is not in this box's domain table")]
    DomainNotInTable(DomainId),
    /// A record type outside this box's record table.
    #[error("record type {0} is not in this box's record table")]
    RecordNotInTable(RecordType),
    /// No box IDs of a type left in this manufacturing box's range.
    #[error("no {0} box IDs left in this manufacturing box's range")]
    IdRangeExhausted(&'static str),
    /// The box is in its error state after a failed self-test.
    #[error("box is in its error state after a failed self-test; it accepts only a new self-test")]
    ErrorState,
    /// A power-up self-test failed.
    #[error(transparent)]
    SelfTest(#[from] SelfTestFailed),
    /// A new manufacturing box that has not received its kit.
    #[error(
        "this manufacturing box has not received its kit (Domain Key Set and startup keys) yet"
    )]
    AwaitingKit,
    /// The box already has an ID.
    #[error("box is already initialized as {0}")]
    AlreadyInitialized(BoxId),
    /// A key ID not greater than the last this process processed or saw for the domain.
    #[error(
        "key ID {got} is not greater than {last}, the last processed for the domain: refused as a replay"
    )]
    KeyIdNotFresh {
        /// The key ID received.
        got: u64,
        /// The last processed.
        last: u64,
    },
    /// A key ID too far above the last processed.
    #[error("key ID {got} is more than {window} above {last}, the last processed for the domain")]
    KeyIdBeyondWindow {
        /// The key ID received.
        got: u64,
        /// The last processed.
        last: u64,
        /// The window.
        window: u64,
    },
    /// A box named for a domain has no process of it.
    #[error("{0} is not certified for domain {1}")]
    NotCertifiedForDomain(BoxId, DomainId),
    /// A message about an installation this box is not running.
    #[error("no installation in flight for this key and meter")]
    NoInstallInFlight,
    /// A stop interrupted an installation that is still sealed as in flight.
    #[error("an interrupted installation is still in flight in this box; run RECOVER first")]
    InstallInFlight,
    /// The box holds as many installations in flight as it may.
    #[error("{0} installations are in flight in this box; finish some first")]
    TooManyInFlight(usize),
    /// Records that should describe one key do not match.
    #[error("records do not match: {0}")]
    RecordMismatch(&'static str),
    /// A registration into a sub-domain of another domain than the key's, or of another country
    /// than the registration's.
    #[error("sub-domain {subdomain} is not one of {domain} in {country}")]
    SubdomainMismatch {
        /// The sub-domain asked for.
        subdomain: postkey_wire::SubdomainId,
        /// The key's domain.
        domain: DomainId,
        /// The registration's country.
        country: postkey_wire::Country,
    },
    /// The Brass process does not serve the sub-domain.
    #[error("this Brass process does not serve {0}")]
    SubdomainNotServed(postkey_wire::SubdomainId),
    /// The registration token is not the key's over the registration data.
    #[error("the registration token does not match the key and the registration data")]
    RegistrationTokenMismatch,
    /// A registration dated before the key was installed.
    #[error("the registration date {date} is before the key was installed")]
    DateBeforeInstall {
        /// The date given.
        date: postkey_wire::Date,
    },
    /// A registration dated after today (this box's clock, within the skew).
    #[error("the registration date {date} is after today")]
    DateInFuture {
        /// The date given.
        date: postkey_wire::Date,
    },
    /// A Tin export not newer than the one held (or being taken) for its sub-domain and month,
    /// or of a month before the Tin box's window (a replay).
    #[error("{why} (export of {subdomain} for {period} as of {as_of})")]
    TinExportStale {
        /// The sub-domain.
        subdomain: postkey_wire::SubdomainId,
        /// The month.
        period: postkey_wire::Period,
        /// The refused export's time.
        as_of: postkey_wire::Timestamp,
        /// Why, in words.
        why: &'static str,
    },
    /// A Tin box that would hold more token keys than its bound.
    #[error("this tin box holds {held} {what} and takes at most {max}: export fewer meters to it")]
    TinFull {
        /// Held now.
        held: usize,
        /// The bound.
        max: usize,
        /// Of what: token keys, or bytes of chunks.
        what: &'static str,
    },
    /// A Tin box holds no complete export of the sub-domain and month asked about.
    #[error("this tin box holds no export of {subdomain} for {period}: import one first")]
    TinNotExported {
        /// The sub-domain.
        subdomain: postkey_wire::SubdomainId,
        /// The month.
        period: postkey_wire::Period,
    },
    /// The meter an installation names is not on this Steel box's meter link.
    #[error("meter {0} is not connected to this Steel box's meter link")]
    MeterNotConnected(postkey_wire::MeterId),
}

impl BoxError {
    /// The documented response code.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Wire(e) => e.response_code(),
            Self::Secret(e) => e.response_code(),
            Self::NotForThisBox { .. } => ResponseCode::RECORD_NOT_FOR_THIS_BOX,
            Self::NonceMismatch => ResponseCode::NONCE_MISMATCH,
            Self::WrongBoxType { .. } => ResponseCode::WRONG_BOX_TYPE,
            Self::DomainKindNotServed { .. } => ResponseCode::DOMAIN_KIND_NOT_SERVED,
            Self::AlreadyCertified(_) => ResponseCode::ALREADY_CERTIFIED,
            Self::UnknownDomain(_) => ResponseCode::UNKNOWN_DOMAIN,
            Self::CheckpointRefused { .. } => ResponseCode::ARCHIVE_BEHIND_CHECKPOINT,
            Self::DomainExists(_) => ResponseCode::DOMAIN_EXISTS,
            Self::StaleUpdate { .. } => ResponseCode::STALE_UPDATE,
            Self::CommandNotInTable(_) => ResponseCode::COMMAND_NOT_IN_TABLE,
            Self::DomainNotInTable(_) => ResponseCode::DOMAIN_NOT_IN_TABLE,
            Self::RecordNotInTable(_) => ResponseCode::RECORD_NOT_IN_TABLE,
            Self::IdRangeExhausted(_) => ResponseCode::ID_RANGE_EXHAUSTED,
            Self::ErrorState => ResponseCode::BOX_ERROR_STATE,
            Self::SelfTest(e) => e.response_code(),
            Self::AlreadyInitialized(_) => ResponseCode::BOX_ALREADY_INITIALIZED,
            Self::AwaitingKit => ResponseCode::BOX_NOT_INITIALIZED,
            Self::KeyIdNotFresh { .. } => ResponseCode::KEY_ID_NOT_FRESH,
            Self::KeyIdBeyondWindow { .. } => ResponseCode::KEY_ID_BEYOND_WINDOW,
            Self::NotCertifiedForDomain(..) => ResponseCode::NOT_CERTIFIED_FOR_DOMAIN,
            Self::NoInstallInFlight => ResponseCode::NO_INSTALL_IN_FLIGHT,
            Self::InstallInFlight => ResponseCode::INSTALL_IN_FLIGHT,
            Self::TooManyInFlight(_) => ResponseCode::TOO_MANY_IN_FLIGHT,
            Self::RecordMismatch(_) => ResponseCode::RECORD_MISMATCH,
            Self::MeterNotConnected(_) => ResponseCode::METER_NOT_CONNECTED,
            Self::SubdomainMismatch { .. } => ResponseCode::SUBDOMAIN_MISMATCH,
            Self::SubdomainNotServed(_) => ResponseCode::SUBDOMAIN_NOT_SERVED,
            Self::RegistrationTokenMismatch => ResponseCode::REGISTRATION_TOKEN_MISMATCH,
            Self::TinExportStale { .. } => ResponseCode::TIN_EXPORT_STALE,
            Self::TinNotExported { .. } => ResponseCode::TIN_NOT_EXPORTED,
            Self::TinFull { .. } => ResponseCode::TIN_FULL,
            Self::DateBeforeInstall { .. } | Self::DateInFuture { .. } => {
                ResponseCode::TIME_WENT_BACKWARDS
            }
        }
    }

    /// Whose fault the refusal is.
    pub fn fault(&self) -> postkey_wire::Fault {
        self.response_code().fault()
    }

    /// The refusal as it crosses a link: its code and its message.
    pub fn to_refusal(&self) -> postkey_wire::Refusal {
        postkey_wire::Refusal::new(self.response_code(), self.to_string())
    }
}

impl From<postkey_secrets::rng::RngError> for BoxError {
    fn from(e: postkey_secrets::rng::RngError) -> Self {
        Self::Secret(SecretError::Rng(e))
    }
}

impl From<postkey_secrets::shares::ShareError> for BoxError {
    fn from(e: postkey_secrets::shares::ShareError) -> Self {
        Self::Secret(SecretError::Share(e))
    }
}
