use std::path::{Path, PathBuf};

use postkey_box::runtime::RuntimeError;
use postkey_durable::FileError;
use postkey_wire::{
    BoxId, BoxType, DomainId, Fault, MeterId, Refusal, ResponseCode, StateVersion, WireError,
};

/// Why a hosted operation failed. Every variant has a documented response code, and through it a
/// [`Fault`]: the CLI exits 2 for the caller's faults and 3 for the others.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The caller asked for something that does not exist or cannot be done here.
    #[error(transparent)]
    Usage(#[from] Usage),
    /// A box refused (its response code says why; the refusal is in the error log).
    #[error("{component} refused: {}", refusal.message)]
    Refused {
        /// The box, or the host component, that refused.
        component: String,
        /// Its code and message.
        refusal: Refusal,
    },
    /// A box presented a state version below the highest recorded: an old state was restored
    /// (protocol §7.2 item 7). The box is refused before any command.
    #[error(
        "{box_id} presented state version {presented}, below {recorded}, the highest recorded: an \
         old state was restored; the box is refused (a box restored from backup on purpose is \
         accepted again only by `postkey box rebaseline`)"
    )]
    Rollback {
        /// The box.
        box_id: BoxId,
        /// The highest version recorded.
        recorded: StateVersion,
        /// What it presented.
        presented: StateVersion,
    },
    /// A re-baseline of a restored state that would let the box handle again what the archive
    /// shows it handled after the backup was taken.
    #[error("{0}")]
    RebaselineRefused(String),
    /// Another command holds the home or a box.
    #[error(transparent)]
    Busy(#[from] crate::lock::Busy),
    /// A command went to a box this session has not enabled.
    #[error("{0} is not enabled: present its shares to enable it")]
    Locked(BoxId),
    /// A file of the home could not be read or written.
    #[error(transparent)]
    Storage(#[from] FileError),
    /// A file of the home does not decode, or does not verify against the trust anchors.
    #[error("{} does not decode or verify: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the home must hold is not there (removed by hand, or the home restored in part).
    #[error("{} is missing: {reason}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// Why it must be there, and what to do.
        reason: String,
    },
    /// The box or the archive belongs to another installation, or the archive's installation
    /// does not verify against the home's trust anchors.
    #[error("{0}")]
    InstallationMismatch(String),
    /// A record the archive holds does not verify against the trust anchors or the Domain Key
    /// Set: the archive was altered.
    #[error("the archive holds a record that does not verify: {0}")]
    ArchiveRecord(String),
    /// The archive fails the bounded integrity check a writing command runs when it opens it:
    /// the command is refused before it changes anything.
    #[error(
        "the archive fails its integrity check at open ({count} faults; first: {first}): nothing \
         was changed; run `postkey audit verify` and restore the archive from its backup"
    )]
    ArchiveDamaged {
        /// The first fault.
        first: String,
        /// How many were found.
        count: usize,
    },
    /// The operating system's entropy source failed.
    #[error("the OS entropy source failed: {0}")]
    Entropy(String),
    /// The archive refused or failed (its response code says why).
    #[error(transparent)]
    Archive(#[from] postkey_archive::StoreError),
    /// The KMS computer could not complete an order (its response code says why).
    #[error(transparent)]
    Kmc(#[from] postkey_kmc::KmcError),
    /// The answers of a file could not be written (a full disk, a closed pipe): the run stops
    /// at once. Verification: the batch being written was remembered before its answers left,
    /// no later batch was.
    #[error(
        "writing the answers failed: {0}; the run stopped at the batch being written (`verify` \
         remembered that batch's good mailpieces as seen, so verifying them again answers \
         `duplicate` with their first sighting; it remembered none after them): write the answers \
         where they fit and verify the rest of the file"
    )]
    Output(std::io::Error),
}

/// The caller's mistakes, found after the arguments parsed: each its own code, all the caller's
/// fault (the CLI exits 2).
#[derive(Debug, thiserror::Error)]
pub enum Usage {
    /// The home holds no first ceremony.
    #[error("{} is not initialized: run `postkey init` first", .0.display())]
    NotInitialized(PathBuf),
    /// A first ceremony started in this home and stopped before it finished.
    #[error(
        "{}: the first ceremony did not finish: run `postkey init` again (it undoes what the \
         stopped one wrote, then starts over)",
        .0.display()
    )]
    InitUnfinished(PathBuf),
    /// The first ceremony ran in this home already.
    #[error(
        "{} is initialized already: the first manufacturing box exists",
        .0.display()
    )]
    AlreadyInitialized(PathBuf),
    /// No share files of a box in the directory given.
    #[error(
        "no share files of {box_id} in {}: pass the directory that holds them with --shares-dir",
        dir.display()
    )]
    NoShares {
        /// The box.
        box_id: BoxId,
        /// Where the host looked.
        dir: PathBuf,
    },
    /// A domain the home does not hold.
    #[error("domain {0} does not exist: see `postkey domain list`")]
    UnknownDomain(DomainId),
    /// A box the home does not hold.
    #[error("no box {0}: see `postkey box list`")]
    UnknownBox(BoxId),
    /// A meter the home does not hold.
    #[error("no meter {0}: make it with `postkey meter new`")]
    UnknownMeter(MeterId),
    /// A key the archive does not hold.
    #[error("no key {domain}/{key_id}: see `postkey keys list`")]
    UnknownKey {
        /// Its domain.
        domain: DomainId,
        /// Its ID.
        key_id: postkey_wire::KeyId,
    },
    /// A meter the archive holds no key of.
    #[error("the archive holds no key of meter {0}: see `postkey keys list`")]
    NoKeysOfMeter(MeterId),
    /// A domain that exists already.
    #[error("domain {0} exists already: see `postkey domain list`")]
    DomainExists(DomainId),
    /// A box that runs a process of the domain already.
    #[error("{box_id} runs a process of {domain} already")]
    ProcessExists {
        /// The box.
        box_id: BoxId,
        /// The domain.
        domain: DomainId,
    },
    /// A meter that exists already.
    #[error("meter {0} exists already")]
    MeterExists(MeterId),
    /// No box of a type serves the domains an order needs.
    #[error(
        "no {box_type} box serves {}: manufacture one with `postkey box manufacture --type \
         {box_type} --domain …`",
        domains.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
    )]
    NoBoxServes {
        /// The type needed.
        box_type: BoxType,
        /// The domains it must serve.
        domains: Vec<DomainId>,
    },
    /// A re-baseline of a box whose state is not behind the archive's.
    #[error(
        "{box_id} presents state version {presented}, not below {recorded}, the version the \
         archive records: there is nothing to re-baseline"
    )]
    NotBehind {
        /// The box.
        box_id: BoxId,
        /// The highest version recorded.
        recorded: StateVersion,
        /// What it presented.
        presented: StateVersion,
    },
    /// An argument that parses but is not allowed.
    #[error("{0}")]
    InvalidArgument(String),
    /// An order the KMC refuses before any key ID is allocated (a domain of another role, a
    /// meter that has its key of the role).
    #[error(transparent)]
    Order(postkey_kmc::KmcError),
    /// Input the caller gave (a file, a value) that does not parse.
    #[error(transparent)]
    Input(#[from] WireError),
}

impl Usage {
    /// The documented response code.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::NotInitialized(_) | Self::InitUnfinished(_) => ResponseCode::HOME_NOT_INITIALIZED,
            Self::AlreadyInitialized(_) => ResponseCode::FIRST_CEREMONY_DONE,
            Self::NoShares { .. } => ResponseCode::SHARE_QUORUM_NOT_MET,
            Self::UnknownDomain(_) => ResponseCode::UNKNOWN_DOMAIN,
            Self::UnknownBox(_) => ResponseCode::UNKNOWN_BOX,
            Self::UnknownMeter(_) => ResponseCode::UNKNOWN_METER,
            Self::MeterExists(_) => ResponseCode::ARCHIVE_DUPLICATE,
            Self::DomainExists(_) => ResponseCode::DOMAIN_EXISTS,
            Self::ProcessExists { .. } => ResponseCode::ARCHIVE_DUPLICATE,
            Self::UnknownKey { .. } | Self::NoKeysOfMeter(_) => ResponseCode::ARCHIVE_NOT_FOUND,
            Self::NoBoxServes { .. } => ResponseCode::NO_BOX_SERVES,
            Self::InvalidArgument(_) | Self::NotBehind { .. } => ResponseCode::INVALID_ARGUMENT,
            Self::Input(e) => e.response_code(),
            Self::Order(e) => e.response_code(),
        }
    }
}

impl HostError {
    /// The documented response code.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Usage(u) => u.response_code(),
            Self::Refused { refusal, .. } => refusal.code,
            Self::Rollback { .. } | Self::RebaselineRefused(_) => ResponseCode::STATE_ROLLBACK,
            Self::Busy(crate::lock::Busy::Home(_) | crate::lock::Busy::Meters(_)) => {
                ResponseCode::HOME_BUSY
            }
            Self::Busy(crate::lock::Busy::Box(_)) => ResponseCode::BOX_IN_USE,
            Self::Locked(_) => ResponseCode::BOX_LOCKED,
            Self::Storage(_) | Self::Output(_) => ResponseCode::STORAGE_FAILED,
            Self::Corrupt { .. } | Self::Missing { .. } => ResponseCode::HOME_FILE_CORRUPT,
            Self::InstallationMismatch(_) => ResponseCode::INSTALLATION_MISMATCH,
            Self::ArchiveRecord(_) => ResponseCode::ARCHIVE_RECORD_INVALID,
            Self::ArchiveDamaged { .. } => ResponseCode::ARCHIVE_DAMAGED,
            Self::Entropy(_) => ResponseCode::RNG_FAILURE,
            Self::Archive(e) => e.response_code(),
            Self::Kmc(e) => e.response_code(),
        }
    }

    /// Whose fault it is. Every usage error is the caller's, whatever its code.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Usage(_) => Fault::Caller,
            other => other.response_code().fault(),
        }
    }

    pub(crate) fn corrupt(path: &Path, reason: impl ToString) -> Self {
        Self::Corrupt { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub(crate) fn refused(component: impl ToString, refusal: Refusal) -> Self {
        Self::Refused { component: component.to_string(), refusal }
    }
}

impl From<WireError> for HostError {
    fn from(e: WireError) -> Self {
        Self::Usage(Usage::Input(e))
    }
}

impl From<RuntimeError> for HostError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Storage(s) => Self::Storage(s),
            RuntimeError::Refused(b) => Self::refused("host", b.to_refusal()),
        }
    }
}
