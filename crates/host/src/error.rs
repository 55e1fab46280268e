use postkey_box::BoxError;
use postkey_wire::{ResponseCode, WireError};

/// Why a hosted operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A box refused (its response code says why; the refusal is in the error log).
    #[error("{box_id}: {error} [response code {}]", error.response_code())]
    Box {
        /// The box, or `host` when no box was reached.
        box_id: String,
        /// The refusal.
        error: BoxError,
    },
    /// An input of the caller's that does not parse.
    #[error("{0}")]
    Input(#[from] WireError),
    /// Something the caller asked for that does not exist or cannot be done here.
    #[error("{0}")]
    Usage(String),
    /// The archive refused or failed (its response code says why).
    #[error("archive: {0} [response code {code}]", code = .0.response_code())]
    Archive(#[from] postkey_archive::StoreError),
    /// The KMS computer could not complete an order (its response code says why).
    #[error("{0} [response code {code}]", code = .0.response_code())]
    Kmc(#[from] postkey_kmc::KmcError),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl HostError {
    /// The response code, if the failure has one.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Self::Box { error, .. } => Some(error.response_code()),
            Self::Input(e) => Some(e.response_code()),
            Self::Usage(_) => None,
            Self::Archive(e) => Some(e.response_code()),
            Self::Kmc(e) => Some(e.response_code()),
            Self::Io { .. } => Some(ResponseCode::STORAGE_FAILED),
        }
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { what, path: path.display().to_string(), source }
    }

    pub(crate) fn boxed(box_id: impl ToString, source: BoxError) -> Self {
        Self::Box { box_id: box_id.to_string(), error: source }
    }
}
