//! Signed envelopes and the `Unverified<B>` → `Verified<B>` type change.
//!
//! ```text
//!  sender                                   receiver
//!  Message<B> ──sign(signer)──► envelope bytes ──Unverified::<B>::from_bytes──► Unverified<B>
//!                                                   │ verify(&expected key)
//!                                                   ▼
//!                                              Verified<B> ──► code that acts on B
//! ```
//!
//! The envelope is the CBOR map `{0: record type, 1: message bytes, 2: signature}`; the signature
//! is Ed25519 over [`SIGNED_CONTEXT`] ‖ the message bytes exactly as carried in field 1. The
//! receiver checks the signature over the bytes it received, never over a re-encoding, and keeps
//! those bytes so that the archive stores the record exactly as received.

use core::ops::Range;

use minicbor::{Decoder, Encoder};
use postkey_crypto::{Signature, Signer, VerifyingKey};

use crate::{Body, Header, Message, RecordType, WireError, codec};

/// Prefixed to the message bytes before signing, so that a postkey signature can never be
/// mistaken for a signature made for another protocol with the same key.
pub const SIGNED_CONTEXT: &[u8] = b"postkey/signed/v1\0";

/// Envelope overhead past the message: map header, three keys, type, two byte-string heads and
/// the 64-byte signature.
const ENVELOPE_OVERHEAD: usize = 96;

fn signed_bytes(message: &[u8]) -> Vec<u8> {
    [SIGNED_CONTEXT, message].concat()
}

fn encode_envelope(record_type: RecordType, message: &[u8], tag: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(message.len() + ENVELOPE_OVERHEAD));
    // Infallible: writing to a Vec.
    let _ = e
        .map(3)
        .and_then(|e| e.u8(0))
        .and_then(|e| e.u16(record_type.0))
        .and_then(|e| e.u8(1))
        .and_then(|e| e.bytes(message))
        .and_then(|e| e.u8(2))
        .and_then(|e| e.bytes(tag));
    e.into_writer()
}

struct RawEnvelope<'b, const N: usize> {
    record_type: RecordType,
    message: &'b [u8],
    /// Where `message` lies in the envelope.
    range: Range<usize>,
    /// The signature, or a MAC'd record's tag.
    tag: [u8; N],
}

/// Decodes `{0: type, 1: message, 2: tag}` with a tag of `N` bytes (a signature, or a MAC).
fn decode_envelope<const N: usize>(
    bytes: &[u8],
    max: usize,
) -> Result<RawEnvelope<'_, N>, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge { len: bytes.len(), max });
    }
    let mut d = Decoder::new(bytes);
    let shape =
        || WireError::Malformed("envelope must be {0: type, 1: message, 2: signature}".into());
    if d.map()? != Some(3) || d.u8()? != 0 {
        return Err(shape());
    }
    let record_type = RecordType(d.u16()?);
    if d.u8()? != 1 {
        return Err(shape());
    }
    let message = d.bytes()?;
    if d.u8()? != 2 {
        return Err(shape());
    }
    let tag: [u8; N] = d
        .bytes()?
        .try_into()
        .map_err(|_| WireError::Malformed(format!("the envelope's tag must be {N} bytes")))?;
    if d.position() != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - d.position()));
    }
    if encode_envelope(record_type, message, &tag) != bytes {
        return Err(WireError::NonCanonical);
    }
    // `message` is a sub-slice of `bytes`: its offset is the distance between their starts.
    let start = (message.as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
    Ok(RawEnvelope { record_type, message, range: start..start + message.len(), tag })
}

/// The record type of a signed envelope, read without checking anything else: for routing to the
/// decoder of that type and for the record-type configuration table.
pub fn peek_record_type(bytes: &[u8]) -> Result<RecordType, WireError> {
    Ok(decode_envelope::<64>(bytes, codec::MAX_MESSAGE_LEN)?.record_type)
}

/// Signs `message` and returns it as a record whose signature is known good.
pub fn sign<B: Body>(message: Message<B>, signer: &impl Signer) -> Verified<B> {
    let message_bytes = message.to_bytes();
    let signature = signer.sign(&signed_bytes(&message_bytes));
    let bytes = encode_envelope(B::RECORD_TYPE, &message_bytes, &signature.0);
    // The envelope ends with the message, then key 2, the 2-byte head of a 64-byte string and
    // the signature.
    let end = bytes.len() - (1 + 2 + 64);
    let range = end - message_bytes.len()..end;
    Verified { envelope: Envelope { bytes, range, signature }, message }
}

/// A signed record's bytes as received: the envelope, where its message lies, the signature.
#[derive(Clone)]
struct Envelope {
    bytes: Vec<u8>,
    range: Range<usize>,
    signature: Signature,
}

/// A signed record decoded and checked for form, its signature not yet checked.
#[derive(Clone)]
pub struct Unverified<B> {
    envelope: Envelope,
    message: Message<B>,
}

impl<B: Body> Unverified<B> {
    /// Decodes a signed envelope of `B`: canonical, within `B`'s size limit, no trailing bytes,
    /// of `B`'s record type and version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let raw = decode_envelope::<64>(bytes, B::MAX_LEN + ENVELOPE_OVERHEAD)?;
        if raw.record_type != B::RECORD_TYPE {
            return Err(WireError::WrongRecordType {
                found: raw.record_type,
                expected: B::RECORD_TYPE,
            });
        }
        let message = Message::<B>::from_bytes(raw.message)?;
        let envelope =
            Envelope { bytes: bytes.to_vec(), range: raw.range, signature: Signature(raw.tag) };
        Ok(Self { envelope, message })
    }

    /// The envelope bytes exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.envelope.bytes
    }

    /// The header, untrusted: use it only to choose the key to verify with, or to log.
    pub fn header(&self) -> &Header {
        self.message.header()
    }

    /// The body, untrusted. Only for a self-signed record whose key is in its own body (a new
    /// box's keys, checked as a proof of possession), or to choose which key to verify with.
    pub fn claimed_body(&self) -> &B {
        self.message.body()
    }

    /// Checks the signature over the bytes as received with the key the caller expects.
    pub fn verify(self, key: &VerifyingKey) -> Result<Verified<B>, WireError> {
        let message = self.envelope.bytes.get(self.envelope.range.clone()).unwrap_or_default();
        key.verify(&signed_bytes(message), &self.envelope.signature)
            .map_err(|_| WireError::BadSignature)?;
        Ok(Verified { envelope: self.envelope, message: self.message })
    }
}

/// A record we hold as verified travels on as unverified: its receiver checks it again with the
/// key it expects.
impl<B> From<Verified<B>> for Unverified<B> {
    fn from(v: Verified<B>) -> Self {
        Self { envelope: v.envelope, message: v.message }
    }
}

/// A signed record whose signature has been checked (or that we signed ourselves).
#[derive(Clone)]
pub struct Verified<B> {
    envelope: Envelope,
    message: Message<B>,
}

impl<B: Body> Verified<B> {
    /// The message.
    pub fn message(&self) -> &Message<B> {
        &self.message
    }

    /// The header.
    pub fn header(&self) -> &Header {
        self.message.header()
    }

    /// The body.
    pub fn body(&self) -> &B {
        self.message.body()
    }

    /// The envelope bytes exactly as received (or as we signed them): what the archive stores.
    pub fn as_bytes(&self) -> &[u8] {
        &self.envelope.bytes
    }

    /// The message, consuming the record.
    pub fn into_message(self) -> Message<B> {
        self.message
    }
}

// `Debug` shows the decoded message, through the body's own `Debug` (which redacts any secret it
// carries, such as a share), and never the raw bytes, which would carry such a secret in clear.
impl<B: core::fmt::Debug> core::fmt::Debug for Unverified<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unverified")
            .field("message", &self.message)
            .field("len", &self.envelope.bytes.len())
            .finish()
    }
}

impl<B: core::fmt::Debug> core::fmt::Debug for Verified<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Verified")
            .field("message", &self.message)
            .field("len", &self.envelope.bytes.len())
            .finish()
    }
}

// Two records are equal when their envelopes are: the bytes carry everything, signature included.
impl<B> PartialEq for Unverified<B> {
    fn eq(&self, other: &Self) -> bool {
        self.envelope.bytes == other.envelope.bytes
    }
}

impl<B> Eq for Unverified<B> {}

impl<B> PartialEq for Verified<B> {
    fn eq(&self, other: &Self) -> bool {
        self.envelope.bytes == other.envelope.bytes
    }
}

impl<B> Eq for Verified<B> {}

/// The length of a MAC'd record's tag: HMAC-SHA256.
pub const MAC_LEN: usize = 32;

/// A record protected by a MAC instead of a signature (MR3, protocol §6.2): the envelope
/// `{0: record type, 1: message bytes, 2: tag}`, the tag HMAC-SHA256 over the message bytes
/// exactly as carried, under a secret key only boxes hold. The wire crate holds no secret: it
/// carries the bytes, and the box that holds the key makes and checks the tag.
///
/// Cloning it is cheap (the decoded record is shared): a verifier sends one key's MR3 with every
/// batch that names the key.
pub struct Maced<B>(std::sync::Arc<MacedInner<B>>);

struct MacedInner<B> {
    bytes: Vec<u8>,
    range: Range<usize>,
    tag: [u8; MAC_LEN],
    message: Message<B>,
}

impl<B> Clone for Maced<B> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<B: Body> Maced<B> {
    /// Encodes `message` and tags its bytes with `mac`.
    pub fn new(message: Message<B>, mac: impl FnOnce(&[u8]) -> [u8; MAC_LEN]) -> Self {
        let message_bytes = message.to_bytes();
        let tag = mac(&message_bytes);
        let bytes = encode_envelope(B::RECORD_TYPE, &message_bytes, &tag);
        // As for a signature: key 2, a 2-byte head, the tag.
        let end = bytes.len() - (1 + 2 + MAC_LEN);
        Self(std::sync::Arc::new(MacedInner {
            range: end - message_bytes.len()..end,
            bytes,
            tag,
            message,
        }))
    }

    /// Decodes a MAC'd envelope of `B`, as [`Unverified::from_bytes`] does a signed one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let raw = decode_envelope::<MAC_LEN>(bytes, B::MAX_LEN + ENVELOPE_OVERHEAD)?;
        if raw.record_type != B::RECORD_TYPE {
            return Err(WireError::WrongRecordType {
                found: raw.record_type,
                expected: B::RECORD_TYPE,
            });
        }
        let message = Message::<B>::from_bytes(raw.message)?;
        Ok(Self(std::sync::Arc::new(MacedInner {
            bytes: bytes.to_vec(),
            range: raw.range,
            tag: raw.tag,
            message,
        })))
    }

    /// The envelope bytes exactly as received: what the archive stores.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The message bytes the tag covers.
    pub fn message_bytes(&self) -> &[u8] {
        self.0.bytes.get(self.0.range.clone()).unwrap_or_default()
    }

    /// The tag.
    pub fn tag(&self) -> &[u8; MAC_LEN] {
        &self.0.tag
    }

    /// The header, untrusted until the tag is checked.
    pub fn header(&self) -> &Header {
        self.0.message.header()
    }

    /// The body, untrusted until the tag is checked (only a holder of the key can).
    pub fn claimed_body(&self) -> &B {
        self.0.message.body()
    }
}

impl<B: core::fmt::Debug> core::fmt::Debug for Maced<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Maced")
            .field("message", &self.0.message)
            .field("len", &self.0.bytes.len())
            .finish()
    }
}

impl<B> PartialEq for Maced<B> {
    fn eq(&self, other: &Self) -> bool {
        self.0.bytes == other.0.bytes
    }
}

impl<B> Eq for Maced<B> {}
