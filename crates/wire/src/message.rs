//! Typed, versioned messages: a [`Header`] every message carries (protocol §6) and a [`Body`].

use core::fmt;

use minicbor::{Decode, Decoder, Encode, Encoder, decode, encode};

use crate::{
    BoxId, DomainId, KeyId, MeterId, StateVersion, Timestamp, UNINITIALIZED_BOX, WireError, codec,
};

/// A record type: an open code point, so that a peer's unknown type decodes as a value we can
/// name in an error and in the configuration tables (protocol §8) rather than as a parse failure.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
#[cbor(transparent)]
pub struct RecordType(#[n(0)] pub u16);

macro_rules! record_types {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        impl RecordType {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// Every record type this build knows, with its name.
            pub const KNOWN: &'static [(Self, &'static str)] = &[$((Self::$name, stringify!($name))),*];
        }
    };
}

record_types! {
    /// KDC → KMC: request a key.
    MI0 = 0x0100;
    /// KMC → Oak: generate a key.
    MI1 = 0x0101;
    /// Oak → KMC: MI3 and MI4 of one key.
    MI2 = 0x0102;
    /// Oak → archive: the new key sealed to the domain's Brass processes.
    MI3 = 0x0103;
    /// Oak → Steel: the new key sealed to the addressed Steel box.
    MI4 = 0x0104;
    /// Steel → meter: the key sealed to the meter transport key.
    MI5 = 0x0105;
    /// Meter → Steel: test tokens from the installed key.
    MI6 = 0x0106;
    /// Steel → KMC: installed.
    MI7 = 0x0107;
    /// KMC → Brass: MI3 and MI7 of one key.
    MI8 = 0x0108;
    /// Brass → archive: the installed key.
    MI9 = 0x0109;
    /// Brass → KDC: installed.
    MI10 = 0x010A;
    /// Meter → Steel: the meter's transport key, over the meter link.
    METER_HELLO = 0x010B;
    /// Steel: an in-flight install ended by a crash.
    ABORTED = 0x0110;
    /// Brass: a mismatch found.
    BAD = 0x0111;
    /// Meter → KMC: register.
    MR1 = 0x0201;
    /// KMC → Brass: MR1 with the MI9 record.
    MR2 = 0x0202;
    /// Brass → archive: the registered key.
    MR3 = 0x0203;
    /// Brass → KMC: registered.
    MR4 = 0x0204;
    /// Brass → archive: a meter's key withdrawn.
    WITHDRAW = 0x0210;
    /// Brass → Tin: one month's token keys.
    TIN_EXPORT = 0x0301;
    /// A share of an operation combination or of the Domain Key Set on removable media.
    SHARE = 0x0401;
    /// A blank box's nonce, offered for its initialization.
    BLANK_NONCE = 0x0402;
    /// Manufacturing box → blank box: the new ID, bound to the nonce.
    SET_ID = 0x0403;
    /// A new box's public keys, signed by its new identity key.
    BOX_KEYS = 0x0404;
    /// A box certificate.
    CERTIFICATE = 0x0405;
    /// Manufacturing box → box: domain keys sealed to it.
    DELIVERY = 0x0406;
    /// Manufacturing box → box: a configuration-table update.
    TABLE_UPDATE = 0x0407;
    /// A box's state version signed over the KMC's nonce.
    STATE_VERSION = 0x0408;
    /// A ceremony transcript.
    TRANSCRIPT = 0x0409;
    /// A domain key bundle.
    DOMAIN_BUNDLE = 0x040A;
    /// Manufacturing box: the record that a box runs a domain process.
    PROCESS = 0x040B;
    /// Manufacturing box → new manufacturing box: the Domain Key Set and startup keys.
    KIT = 0x040C;
    /// The Domain Key Set's public keys, certified at the first ceremony.
    DKS_CERTIFICATE = 0x040D;
    /// An audit-chain checkpoint.
    CHECKPOINT = 0x0501;
}

impl RecordType {
    /// The name of a known type.
    pub fn name(self) -> Option<&'static str> {
        Self::KNOWN.iter().find(|(t, _)| *t == self).map(|(_, n)| *n)
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "record type 0x{:04X}", self.0),
        }
    }
}

impl fmt::Debug for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordType({self})")
    }
}

/// A role of protocol §3 that sends messages without being a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The KMS computer.
    Kmc,
    /// The key distribution computer.
    Kdc,
    /// The production line's computer.
    Psr,
    /// Data capture at a mail facility.
    DataCapture,
    /// An auditor.
    Auditor,
}

impl Role {
    const ALL: [Role; 5] = [Self::Kmc, Self::Kdc, Self::Psr, Self::DataCapture, Self::Auditor];

    /// The name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kmc => "KMC",
            Self::Kdc => "KDC",
            Self::Psr => "PSR",
            Self::DataCapture => "CAPTURE",
            Self::Auditor => "AUDITOR",
        }
    }
}

/// Who sent a message.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Sender {
    /// An initialized box.
    Box(BoxId),
    /// A blank box, `X00000000`.
    BlankBox,
    /// A meter.
    Meter(MeterId),
    /// A computer in one of the roles of protocol §3.
    Role(Role),
}

impl Sender {
    fn parse(s: &str) -> Result<Self, WireError> {
        if s == UNINITIALIZED_BOX {
            return Ok(Self::BlankBox);
        }
        if let Some(m) = s.strip_prefix("METER:") {
            return MeterId::parse(m).map(Self::Meter);
        }
        if let Some(r) = Role::ALL.into_iter().find(|r| r.name() == s) {
            return Ok(Self::Role(r));
        }
        BoxId::parse(s).map(Self::Box)
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Box(id) => write!(f, "{id}"),
            Self::BlankBox => f.write_str(UNINITIALIZED_BOX),
            Self::Meter(m) => write!(f, "METER:{m}"),
            Self::Role(r) => f.write_str(r.name()),
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sender({self})")
    }
}

crate::codec::cbor_as_text!(Sender, "invalid sender");

/// What every message carries (protocol §6): record type and version, domain, sender, the meter and
/// key it concerns where it concerns one, the sending box's state version, and a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Header {
    /// The record type; always the body's.
    #[n(0)]
    pub record_type: RecordType,
    /// The body's version.
    #[n(1)]
    pub version: u16,
    /// The security domain the message belongs to (`ADMIN` for box and ceremony messages).
    #[n(2)]
    pub domain: DomainId,
    /// Who sent it.
    #[n(3)]
    pub sender: Sender,
    /// The meter it concerns.
    #[n(4)]
    pub meter_id: Option<MeterId>,
    /// The key it concerns.
    #[n(5)]
    pub key_id: Option<KeyId>,
    /// The sending box's sealed-state version.
    #[n(6)]
    pub state_version: Option<StateVersion>,
    /// When the sender made it.
    #[n(7)]
    pub timestamp: Timestamp,
}

/// The header fields a sender chooses; record type and version come from the body's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The security domain.
    pub domain: DomainId,
    /// Who sends.
    pub sender: Sender,
    /// The meter concerned, if any.
    pub meter_id: Option<MeterId>,
    /// The key concerned, if any.
    pub key_id: Option<KeyId>,
    /// The sending box's state version, for boxes.
    pub state_version: Option<StateVersion>,
    /// The time of sending.
    pub timestamp: Timestamp,
}

/// A message body: one record type at one version.
pub trait Body: Encode<()> + for<'b> Decode<'b, ()> {
    /// The record type.
    const RECORD_TYPE: RecordType;
    /// The version this build speaks; another is refused.
    const VERSION: u16;
    /// The largest encoded message of this type, header included.
    const MAX_LEN: usize = 16 * 1024;
}

/// The header of an encoded message, read without decoding its body. Untrusted until the
/// message's signature is checked: use it only to choose the key to check it with, or to log.
pub fn peek_header(bytes: &[u8]) -> Result<Header, WireError> {
    let mut d = Decoder::new(bytes);
    if d.map()? != Some(2) || d.u8()? != 0 {
        return Err(WireError::Malformed("message must be the map {0: header, 1: body}".into()));
    }
    Ok(d.decode()?)
}

/// A header and a body, encoded as the map `{0: header, 1: body}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<B> {
    header: Header,
    body: B,
}

impl<B: Body> Message<B> {
    /// A message of `B`'s record type and version.
    pub fn new(context: Context, body: B) -> Self {
        let Context { domain, sender, meter_id, key_id, state_version, timestamp } = context;
        let header = Header {
            record_type: B::RECORD_TYPE,
            version: B::VERSION,
            domain,
            sender,
            meter_id,
            key_id,
            state_version,
            timestamp,
        };
        Self { header, body }
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::to_bytes(self)
    }

    /// Decodes a message of exactly `B`'s type and version, canonical, within `B::MAX_LEN`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > B::MAX_LEN {
            return Err(WireError::TooLarge { len: bytes.len(), max: B::MAX_LEN });
        }
        // Read the header first so that a message of another type or version gets an error that
        // names it, rather than a parse failure somewhere in a body it was never meant to have.
        let header = peek_header(bytes)?;
        if header.record_type != B::RECORD_TYPE {
            return Err(WireError::WrongRecordType {
                found: header.record_type,
                expected: B::RECORD_TYPE,
            });
        }
        if header.version != B::VERSION {
            return Err(WireError::UnsupportedVersion {
                record_type: B::RECORD_TYPE,
                found: header.version,
                expected: B::VERSION,
            });
        }
        codec::from_bytes(bytes, B::MAX_LEN)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The body.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// The body, consuming the message.
    pub fn into_body(self) -> B {
        self.body
    }
}

impl<B: Body, C> Encode<C> for Message<B> {
    fn encode<W: encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        e.map(2)?.u8(0)?.encode(&self.header)?.u8(1)?.encode(&self.body)?;
        Ok(())
    }
}

impl<'b, B: Body, C> Decode<'b, C> for Message<B> {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        if d.map()? != Some(2) || d.u8()? != 0 {
            return Err(decode::Error::message("message must be the map {0: header, 1: body}"));
        }
        let header: Header = d.decode()?;
        if header.record_type != B::RECORD_TYPE {
            return Err(decode::Error::message("record type does not match the expected type"));
        }
        if header.version != B::VERSION {
            return Err(decode::Error::message("unsupported record version"));
        }
        if d.u8()? != 1 {
            return Err(decode::Error::message("message must be the map {0: header, 1: body}"));
        }
        let body: B = d.decode()?;
        Ok(Self { header, body })
    }
}
