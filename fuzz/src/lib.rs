//! What the fuzz targets share: a message body to decode messages and envelopes as, and the
//! message and envelope checks, which are too long for a one-line target.
//!
//! `FuzzBody` is kept identical to `TestBody` of the wire crate's tests, and the key below is the
//! one that signed the envelopes of `crates/wire/tests/vectors/envelope.json` and `records.json`,
//! so the seed corpus means the same thing here and in the `fuzz_corpus` test that replays it
//! under `cargo test`.

#![forbid(unsafe_code)]

use core::fmt::Debug;

use minicbor::{Decode, Encode};
use postkey_crypto::VerifyingKey;
use postkey_wire::{Body, Message, MeterId, RecordType, Unverified, peek_record_type};

/// A test record type no real record uses.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct FuzzBody {
    #[n(0)]
    pub count: u32,
    #[n(1)]
    pub label: Option<String>,
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    pub payload: Vec<u8>,
    #[n(3)]
    pub meter: Option<MeterId>,
}

impl Body for FuzzBody {
    const RECORD_TYPE: RecordType = RecordType(0xFFF1);
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// The envelope `{0: record type, 1: message, 2: signature}`, defined independently of the
/// codec: any envelope the codec accepts must be exactly the canonical encoding of this.
#[derive(Debug, Encode, Decode)]
#[cbor(map)]
struct RawEnvelope {
    #[n(0)]
    record_type: u16,
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    message: Vec<u8>,
    #[n(2)]
    #[cbor(with = "minicbor::bytes")]
    signature: [u8; 64],
}

/// The public key of the test key that signed the seed envelopes.
const SEED_KEY: [u8; 32] = [
    0x47, 0x8b, 0x8e, 0x50, 0x7e, 0x0b, 0xb2, 0xb1, 0x8c, 0x0f, 0x9e, 0x08, 0x24, 0x76, 0x9e, 0x85,
    0x62, 0xd1, 0x0d, 0xf9, 0xab, 0xe2, 0xe7, 0x74, 0x89, 0x6f, 0x82, 0xb4, 0xb4, 0x40, 0x52, 0x66,
];

/// Decodes `data` as any envelope and as an envelope of [`FuzzBody`]; whatever is accepted must
/// be canonical, and a record that verifies must keep exactly the bytes received.
pub fn check_envelope(data: &[u8]) {
    if let Ok(record_type) = peek_record_type(data) {
        let raw: RawEnvelope = minicbor::decode(data).expect("an accepted envelope decodes");
        assert_eq!(raw.record_type, record_type.0);
        assert_eq!(minicbor::to_vec(&raw).expect("encodes"), data);
    }
    check_envelope_of::<FuzzBody>(data);
}

/// Decodes `data` as a message of `B` and as a signed envelope of `B`: the target of each record
/// body. Whatever is accepted must be canonical.
pub fn check_record<B: Body + PartialEq + Debug>(data: &[u8]) {
    if let Ok(message) = Message::<B>::from_bytes(data) {
        assert_eq!(message.to_bytes(), data);
    }
    check_envelope_of::<B>(data);
}

/// Decodes `data` as a signed envelope of `B`; if accepted, it must be the canonical encoding of
/// its parts, its message must decode on its own, and a record that verifies under the seed key
/// must keep exactly the bytes received.
fn check_envelope_of<B: Body + PartialEq + Debug>(data: &[u8]) {
    if let Ok(unverified) = Unverified::<B>::from_bytes(data) {
        let raw: RawEnvelope = minicbor::decode(data).expect("an accepted envelope decodes");
        assert_eq!(minicbor::to_vec(&raw).expect("encodes"), data);
        assert_eq!(raw.record_type, B::RECORD_TYPE.0);
        let message = Message::<B>::from_bytes(&raw.message).expect("its message decodes");
        assert_eq!(message.to_bytes(), raw.message);
        assert_eq!(unverified.header(), message.header());
        let key = VerifyingKey::from_bytes(&SEED_KEY).expect("a valid key");
        if let Ok(verified) = unverified.verify(&key) {
            assert_eq!(verified.as_bytes(), data);
            assert_eq!(verified.message(), &message);
        }
    }
}

/// Decodes `data` as a box-command frame; an accepted frame must be its command's canonical
/// encoding, and its code must be readable without decoding the rest.
pub fn check_command(data: &[u8]) {
    if let Ok(command) = postkey_wire::command::Command::from_bytes(data) {
        assert_eq!(command.to_bytes(), data);
        assert_eq!(postkey_wire::command::peek_code(data), Some(command.code()));
    }
}

/// Decodes `data` as a reply frame; an accepted frame must be its reply's canonical encoding.
pub fn check_reply(data: &[u8]) {
    if let Ok((code, reply)) = postkey_wire::command::reply_from_bytes(data) {
        assert_eq!(postkey_wire::command::reply_to_bytes(code, &reply), data);
    }
}
