//! Shared by the wire crate's integration tests: a test body and two bodies it must never be
//! mistaken for, a signer over a seeded Ed25519 key, the checks every decoder must pass, and hex;
//! proptest strategies and mutations in [`strategies`].
//!
//! `TestBody` is kept identical to the fuzz crate's `FuzzBody`, so the seed corpus under
//! `fuzz/corpus/` decodes the same way under `cargo test` and under the fuzzer.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(crate) mod strategies;

use ed25519_dalek::SigningKey;
use minicbor::{Decode, Encode};
use postkey_crypto::{Signature, Signer, VerifyingKey};
use postkey_wire::{
    Body, Context, DomainId, KeyId, Message, MeterId, RecordType, Sender, StateVersion, Timestamp,
    Unverified, WireError, codec, peek_record_type,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A record type no real record uses, so that tests never depend on a real record's layout.
pub(crate) const TEST_RECORD: RecordType = RecordType(0xFFF1);
/// Another record type, for the "wrong record type" cases.
pub(crate) const OTHER_RECORD: RecordType = RecordType(0xFFF2);

/// A small body with a required integer, an optional text, a byte string and an optional ID.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct TestBody {
    #[n(0)]
    pub(crate) count: u32,
    #[n(1)]
    pub(crate) label: Option<String>,
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    pub(crate) payload: Vec<u8>,
    #[n(3)]
    pub(crate) meter: Option<MeterId>,
}

impl Body for TestBody {
    const RECORD_TYPE: RecordType = TEST_RECORD;
    const VERSION: u16 = 1;
    // Small, so that an oversize vector stays short.
    const MAX_LEN: usize = 512;
}

/// The same record type as [`TestBody`] at the next version.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct TestBodyV2 {
    #[n(0)]
    pub(crate) count: u32,
}

impl Body for TestBodyV2 {
    const RECORD_TYPE: RecordType = TEST_RECORD;
    const VERSION: u16 = 2;
    const MAX_LEN: usize = 512;
}

/// Another record type altogether.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct OtherBody {
    #[n(0)]
    pub(crate) note: String,
}

impl Body for OtherBody {
    const RECORD_TYPE: RecordType = OTHER_RECORD;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// The envelope `{0: record type, 1: message, 2: signature}` as an independent derive-based
/// definition: a lenient decode then a re-encode of this must give back any accepted envelope.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub(crate) struct RawEnvelope {
    #[n(0)]
    pub(crate) record_type: u16,
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub(crate) message: Vec<u8>,
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    pub(crate) signature: [u8; 64],
}

/// An Ed25519 signer for tests; production signers live in the secrets crate.
pub(crate) struct TestSigner(SigningKey);

impl TestSigner {
    /// A key drawn from a ChaCha20 generator seeded with `seed`.
    pub(crate) fn from_seed(seed: u64) -> Self {
        Self(SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(seed)))
    }

    /// The key with this 32-byte RFC 8032 secret.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        Self(SigningKey::from_bytes(&secret.try_into().expect("a 32-byte secret")))
    }

    /// The 32-byte secret, for writing test vectors.
    pub(crate) fn secret(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl Signer for TestSigner {
    fn sign(&self, message: &[u8]) -> Signature {
        Signature(ed25519_dalek::Signer::sign(&self.0, message).to_bytes())
    }

    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_dalek(self.0.verifying_key())
    }
}

/// The seed of the key that signed the envelopes of the vectors and of the fuzz seed corpus.
pub(crate) const VECTOR_KEY_SEED: u64 = 1;

/// A context with every optional field set.
pub(crate) fn full_context() -> Context {
    Context {
        domain: DomainId::parse("VE").unwrap(),
        sender: Sender::Box("O00000003".parse().unwrap()),
        meter_id: Some(MeterId::parse("PB1234-000123").unwrap()),
        key_id: Some(KeyId::new(42).unwrap()),
        state_version: Some(StateVersion(7)),
        // 2026-11-29T18:37:14.000001Z
        timestamp: Timestamp::from_unix_micros(1_795_977_434_000_001),
    }
}

/// A context with no optional field.
pub(crate) fn bare_context() -> Context {
    Context {
        domain: DomainId::admin(),
        sender: Sender::BlankBox,
        meter_id: None,
        key_id: None,
        state_version: None,
        timestamp: Timestamp::from_unix_micros(0),
    }
}

/// A body with every field set.
pub(crate) fn full_body() -> TestBody {
    TestBody {
        count: 3,
        label: Some("hello".into()),
        payload: vec![1, 2, 3],
        meter: Some(MeterId::parse("PB1234-000123").unwrap()),
    }
}

/// The name of an error's variant, as the vector files write it.
pub(crate) fn error_name(e: &WireError) -> &'static str {
    match e {
        WireError::TooLarge { .. } => "TooLarge",
        WireError::Malformed(_) => "Malformed",
        WireError::Trailing(_) => "Trailing",
        WireError::NonCanonical => "NonCanonical",
        WireError::InvalidField { .. } => "InvalidField",
        WireError::UnsupportedVersion { .. } => "UnsupportedVersion",
        WireError::WrongRecordType { .. } => "WrongRecordType",
        WireError::BadSignature => "BadSignature",
        WireError::UnknownCommand(_) => "UnknownCommand",
        WireError::CommandVersion { .. } => "CommandVersion",
        WireError::ParameterCount { .. } => "ParameterCount",
        WireError::AnswerMismatch(_) => "AnswerMismatch",
    }
}

/// Decodes `bytes` as a `T` the way every receiver does; if that succeeds, asserts that the
/// value's canonical encoding is exactly `bytes`. Returns the decoder's verdict.
pub(crate) fn check_codec<T>(bytes: &[u8]) -> Result<T, WireError>
where
    T: Encode<()> + for<'b> Decode<'b, ()>,
{
    let decoded = codec::from_bytes::<T>(bytes, codec::MAX_MESSAGE_LEN);
    if let Ok(value) = &decoded {
        assert_eq!(codec::to_bytes(value), bytes, "accepted bytes that are not canonical");
    }
    decoded
}

/// [`check_codec`] for a message of `B`, through [`Message::from_bytes`].
pub(crate) fn check_message<B: Body>(bytes: &[u8]) -> Result<Message<B>, WireError> {
    let decoded = Message::<B>::from_bytes(bytes);
    if let Ok(message) = &decoded {
        assert_eq!(message.to_bytes(), bytes, "accepted a message that is not canonical");
    }
    decoded
}

/// [`peek_record_type`], checking that an envelope it accepts is exactly the canonical encoding
/// of the [`RawEnvelope`] a lenient decoder reads from it.
pub(crate) fn check_peek_record_type(bytes: &[u8]) -> Result<RecordType, WireError> {
    let peeked = peek_record_type(bytes);
    if let Ok(record_type) = peeked {
        let raw: RawEnvelope = minicbor::decode(bytes).expect("an accepted envelope decodes");
        assert_eq!(raw.record_type, record_type.0);
        assert_eq!(minicbor::to_vec(&raw).unwrap(), bytes, "accepted a non-canonical envelope");
    }
    peeked
}

/// Decodes a signed envelope of `B` and, if that succeeds, checks it against the canonical
/// envelope and message encodings; then verifies it with `key`, and checks that a verified
/// record keeps exactly the bytes received.
pub(crate) fn check_envelope<B: Body + PartialEq + core::fmt::Debug>(
    bytes: &[u8],
    key: &VerifyingKey,
) -> Result<(), WireError> {
    let unverified = Unverified::<B>::from_bytes(bytes)?;
    assert_eq!(check_peek_record_type(bytes), Ok(B::RECORD_TYPE));
    let raw: RawEnvelope = minicbor::decode(bytes).expect("an accepted envelope decodes");
    let message = check_message::<B>(&raw.message).expect("an accepted envelope's message");
    assert_eq!(unverified.header(), message.header());
    let verified = unverified.verify(key)?;
    assert_eq!(verified.as_bytes(), bytes, "a verified record must keep the bytes received");
    assert_eq!(verified.message(), &message);
    Ok(())
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex, upper or lower case.
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// Decodes a box-command frame as a box's host does; if that succeeds, asserts that the frame is
/// exactly the command's canonical encoding. Returns the decoder's verdict.
pub(crate) fn check_command(bytes: &[u8]) -> Result<postkey_wire::command::Command, WireError> {
    let decoded = postkey_wire::command::Command::from_bytes(bytes);
    if let Ok(command) = &decoded {
        assert_eq!(command.to_bytes(), bytes, "accepted a command frame that is not canonical");
    }
    decoded
}

/// [`check_command`] for a reply frame.
pub(crate) fn check_reply(
    bytes: &[u8],
) -> Result<
    (postkey_wire::CommandCode, Result<postkey_wire::command::Answered, postkey_wire::Refusal>),
    WireError,
> {
    let decoded = postkey_wire::command::reply_from_bytes(bytes);
    if let Ok((code, reply)) = &decoded {
        assert_eq!(
            postkey_wire::command::reply_to_bytes(*code, reply),
            bytes,
            "accepted a reply frame that is not canonical"
        );
    }
    decoded
}
