use crate::{CommandCode, RecordType, ResponseCode};

/// Why bytes were not accepted as a record. Grouped by fault: everything here is the sender's
/// (malformed or forged input); nothing is our caller's mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input is longer than the limit of its type.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit for this record type.
        max: usize,
    },
    /// The bytes are not CBOR of the expected shape (truncated, wrong type, missing field).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes follow the end of the value.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// The value decodes but its encoding is not the canonical one (unknown, duplicate or
    /// reordered fields, non-minimal lengths, indefinite lengths).
    #[error("message is not in canonical encoding (unknown, duplicate or reordered fields)")]
    NonCanonical,
    /// A field holds a value its type does not allow.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong, without echoing the value.
        reason: &'static str,
    },
    /// The record's version is not the one this build speaks.
    #[error("unsupported version {found} of {record_type} (expected {expected})")]
    UnsupportedVersion {
        /// The record type.
        record_type: RecordType,
        /// The version received.
        found: u16,
        /// The version we speak.
        expected: u16,
    },
    /// The record is of another type than the one expected here.
    #[error("unexpected record type {found} (expected {expected})")]
    WrongRecordType {
        /// What arrived.
        found: RecordType,
        /// What was expected.
        expected: RecordType,
    },
    /// The signature does not verify under the expected key.
    #[error("signature verification failed")]
    BadSignature,
    /// A command code this build does not know (protocol §9 level 2).
    #[error("unknown {0}")]
    UnknownCommand(CommandCode),
    /// A command at a version this build does not speak.
    #[error("unsupported version {found} of {command} (expected {expected})")]
    CommandVersion {
        /// The command.
        command: CommandCode,
        /// The version received.
        found: u16,
        /// The version we speak.
        expected: u16,
    },
    /// An item of a command, or an answer, with another number of parameters than its type has.
    #[error("{found} parameters where {expected} are expected")]
    ParameterCount {
        /// The parameters the command takes.
        expected: usize,
        /// The parameters received.
        found: usize,
    },
    /// An answer of another command than the one sent, or with another number of items.
    #[error("the answer does not match its command: {0}")]
    AnswerMismatch(&'static str),
}

impl WireError {
    /// The documented response code (`docs/response-codes.md`).
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::TooLarge { .. } => ResponseCode::MESSAGE_TOO_LARGE,
            Self::Malformed(_) | Self::InvalidField { .. } => ResponseCode::PARAMETER_SYNTAX,
            Self::Trailing(_) => ResponseCode::TRAILING_BYTES,
            Self::NonCanonical => ResponseCode::NON_CANONICAL,
            Self::UnsupportedVersion { .. } => ResponseCode::UNSUPPORTED_VERSION,
            Self::WrongRecordType { .. } => ResponseCode::WRONG_RECORD_TYPE,
            Self::BadSignature => ResponseCode::BAD_SIGNATURE,
            Self::UnknownCommand(_) => ResponseCode::UNKNOWN_COMMAND,
            Self::CommandVersion { .. } => ResponseCode::UNSUPPORTED_VERSION,
            Self::ParameterCount { .. } => ResponseCode::PARAMETER_COUNT,
            Self::AnswerMismatch(_) => ResponseCode::ANSWER_MISMATCH,
        }
    }
}

impl From<minicbor::decode::Error> for WireError {
    fn from(e: minicbor::decode::Error) -> Self {
        // minicbor's messages name positions and types, never payload bytes.
        Self::Malformed(e.to_string())
    }
}
