//! postkey's identifiers, records and their canonical CBOR encoding.
//!
//! Start from [`Message`], a typed [`Header`] plus a [`Body`], and from [`Unverified`], which is
//! what the decoder yields for a signed record: only [`Unverified::verify`] turns it into a
//! [`Verified`], and code that acts on a record takes a `Verified<B>`.
//!
//! Key design decision: every byte that crosses a boundary goes through [`codec`], which decodes
//! deterministic CBOR and then re-encodes the value, requiring identical bytes. One value therefore
//! has exactly one encoding, so a signature over "the bytes" is a signature over "the value", and
//! unknown, duplicate, reordered or non-minimal fields are rejected without a rule for each.
//!
//! This crate holds no secret type; encrypted content travels as [`postkey_crypto::HpkeCiphertext`]
//! or opaque bytes, and signing goes through the [`postkey_crypto::Signer`] trait.

#![forbid(unsafe_code)]

mod audit;
mod boxes;
pub mod codec;
pub mod command;
mod date;
mod envelope;
mod error;
mod ids;
mod install;
mod mailpiece;
mod message;
mod meter_link;
mod register;
mod response;
mod share;
mod tin;

pub use audit::{ChainHash, Checkpoint};
pub use boxes::{
    BlankOffer, BoxKeys, Certificate, ConfigTables, Delivery, DomainBundle,
    DomainKeySetCertificate, DomainKind, DomainPublicKeys, IdRange, InstallationId, Kit, LastKeyId,
    Nonce, ProcessRecord, SetId, ShareRef, StateAttestation, TableUpdate, Transcript, TrustAnchors,
};
pub use command::{CommandCode, Refusal};
pub use date::{CLOCK_SKEW_TOLERANCE_MICROS, Date, Period, Timestamp};
pub use envelope::{MAC_LEN, Maced, SIGNED_CONTEXT, Unverified, Verified, peek_record_type, sign};
pub use error::WireError;
pub use ids::{
    BoxId, BoxType, Country, DomainId, Isn, KeyId, MeterId, Msn, ProductCode, StateVersion,
    SubdomainId, UNINITIALIZED_BOX, Zip,
};
pub use install::{
    Aborted, BadKey, GenerateKey, InstallConfirmed, Installed, InstalledKeyRecord, KeyForMeter,
    KeyForSteel, KeyRequest, MeterHello, MeterTestTokens, NewKeyRecord,
};
pub use mailpiece::{MAX_SITE_LEN, Mailpiece, RegistrationToken, Site, TestTokens, Token, Verdict};
pub use message::{Body, Context, Header, Message, RecordType, Role, Sender, peek_header};
pub use meter_link::MeterLink;
pub use register::{
    MAX_REASON_LEN, Mr3Digest, RegisteredKey, RegistrationConfirmed, RegistrationRequest,
    WRAPPED_KEY_LEN, Withdrawn, WrappedKey, check_reason,
};
pub use response::{Fault, ResponseCode};
pub use share::{SharePurpose, ShareSetId};
pub use tin::{
    MAX_TIN_EXPORT_FILE, TIN_EXPORT_CHUNK_KEYS, TIN_EXPORT_FILE_MAGIC, TIN_EXPORT_MAX_CHUNKS,
    TinExport, decode_export_file, encode_export_file,
};
