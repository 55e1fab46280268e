//! The codec of box-command items and answers. Every item, answer and refusal is a CBOR map whose
//! keys are its fields' indices 0, 1, 2 … in order; a map with another number of entries is a
//! parameter-count error (2002), a field that does not parse a syntax error (2003), and a signed
//! record inside is decoded by its own strict decoder, so it keeps its own code (a forged,
//! oversize or non-canonical MI4 is refused exactly as it would be alone). The frame around the
//! items is re-encoded and compared, so one command has exactly one encoding.

use minicbor::{Decoder, Encoder};

use crate::{Body, Maced, Message, Unverified, WireError};

/// The encoder every parameter writes to. Writing to a `Vec` cannot fail, so results are ignored.
pub(crate) type Enc = Encoder<Vec<u8>>;

/// The most entries of any list inside a command (items of a batch, sub-domains, records).
pub const MAX_LIST: usize = 4096;

/// A value that travels as a parameter of a box command or a field of its answer.
pub(crate) trait Param: Sized {
    /// Writes the value.
    fn put(&self, e: &mut Enc);
    /// Reads a value, refusing anything malformed with the error that names why.
    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError>;
}

/// Values with a canonical `minicbor` encoding of their own travel as themselves.
macro_rules! cbor_param {
    ($($t:ty),* $(,)?) => {$(
        impl Param for $t {
            fn put(&self, e: &mut Enc) {
                let _ = e.encode(self);
            }
            fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
                Ok(d.decode()?)
            }
        }
    )*};
}

cbor_param!(
    crate::Nonce,
    crate::BoxType,
    crate::BoxId,
    crate::DomainId,
    crate::SubdomainId,
    crate::MeterId,
    crate::DomainKind,
    crate::ConfigTables,
    crate::Transcript,
    crate::ResponseCode,
    crate::ChainHash,
    crate::Date,
    crate::Period,
    crate::Mr3Digest,
    crate::Timestamp,
    crate::Isn,
    crate::Zip,
    crate::Token,
    String,
    u64,
    u32,
    bool,
);

/// A signed record travels as its envelope bytes, exactly as signed, and is decoded by its own
/// strict decoder (size, type, version, canonical form); its signature is checked by whoever
/// acts on it, with the key that party expects.
impl<B: Body> Param for Unverified<B> {
    fn put(&self, e: &mut Enc) {
        let _ = e.bytes(self.as_bytes());
    }
    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        Unverified::from_bytes(d.bytes()?)
    }
}

/// An unsigned message (MI1, a blank box's offer) travels as its canonical bytes.
impl<B: Body> Param for Maced<B> {
    fn put(&self, e: &mut Enc) {
        let _ = e.bytes(self.as_bytes());
    }
    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        Maced::from_bytes(d.bytes()?)
    }
}

impl<B: Body> Param for Message<B> {
    fn put(&self, e: &mut Enc) {
        let _ = e.bytes(&self.to_bytes());
    }
    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        Message::from_bytes(d.bytes()?)
    }
}

impl<T: Param> Param for Vec<T> {
    fn put(&self, e: &mut Enc) {
        let _ = e.array(self.len() as u64);
        for item in self {
            item.put(e);
        }
    }
    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        let n = d.array()?.ok_or_else(|| WireError::Malformed("indefinite-length list".into()))?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > MAX_LIST {
            return Err(WireError::TooLarge { len: n, max: MAX_LIST });
        }
        // Not `with_capacity(n)`: the length is the sender's word; each entry must be read.
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(T::take(d)?);
        }
        Ok(out)
    }
}

/// Reads the head of a parameter map: exactly `expected` entries.
pub(crate) fn take_map_head(d: &mut Decoder<'_>, expected: usize) -> Result<(), WireError> {
    let found = d.map()?.ok_or_else(|| WireError::Malformed("indefinite-length map".into()))?;
    if found != expected as u64 {
        return Err(WireError::ParameterCount {
            expected,
            found: usize::try_from(found).unwrap_or(usize::MAX),
        });
    }
    Ok(())
}

/// Reads the key of the next field, which must be `index`.
pub(crate) fn take_key(d: &mut Decoder<'_>, index: u8) -> Result<(), WireError> {
    if d.u8()? == index { Ok(()) } else { Err(WireError::NonCanonical) }
}

/// Declares parameter and answer structs: each a map of its fields, keys 0, 1, 2 … in order.
macro_rules! params {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name { $( $(#[$fmeta])* pub $field: $ty, )* }

        impl $crate::command::param::Param for $name {
            #[allow(unused_assignments, unused_mut, unused_variables)]
            fn put(&self, e: &mut $crate::command::param::Enc) {
                const N: u64 = <[&str]>::len(&[$(stringify!($field)),*]) as u64;
                let _ = e.map(N);
                let mut i = 0u8;
                $(
                    let _ = e.u8(i);
                    $crate::command::param::Param::put(&self.$field, e);
                    i += 1;
                )*
            }

            #[allow(unused_assignments, unused_mut, unused_variables)]
            fn take(d: &mut minicbor::Decoder<'_>) -> Result<Self, $crate::WireError> {
                const N: usize = <[&str]>::len(&[$(stringify!($field)),*]);
                $crate::command::param::take_map_head(d, N)?;
                let mut i = 0u8;
                $(
                    $crate::command::param::take_key(d, i)?;
                    let $field = <$ty as $crate::command::param::Param>::take(d)?;
                    i += 1;
                )*
                Ok(Self { $($field),* })
            }
        }
    )*};
}

/// Declares an answer that is one of several values: a map of one entry whose key names the
/// variant.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $index:literal => $variant:ident($ty:ty) ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name { $( $(#[$vmeta])* $variant($ty), )* }

        impl $crate::command::param::Param for $name {
            fn put(&self, e: &mut $crate::command::param::Enc) {
                let _ = e.map(1);
                match self {
                    $( Self::$variant(v) => {
                        let _ = e.u8($index);
                        $crate::command::param::Param::put(v, e);
                    } )*
                }
            }

            fn take(d: &mut minicbor::Decoder<'_>) -> Result<Self, $crate::WireError> {
                $crate::command::param::take_map_head(d, 1)?;
                match d.u8()? {
                    $( $index => Ok(Self::$variant(
                        <$ty as $crate::command::param::Param>::take(d)?,
                    )), )*
                    _ => Err($crate::WireError::Malformed(
                        concat!("unknown variant of ", stringify!($name)).into(),
                    )),
                }
            }
        }
    };
}

pub(crate) use {choice, params};
