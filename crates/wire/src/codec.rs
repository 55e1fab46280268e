//! The one place where values become bytes and bytes become values.
//!
//! Every record is deterministic CBOR (RFC 8949 §4.2: minimal lengths, definite lengths, map
//! fields in ascending index order), produced by `minicbor` with explicit field indices.
//! [`from_bytes`] enforces the size limit, decodes, rejects trailing bytes, then re-encodes the
//! value and requires the identical bytes: `minicbor` alone is lenient (it skips unknown fields,
//! accepts any field order and non-minimal integers), and this round trip is what makes one value
//! have exactly one encoding.

use minicbor::{Decode, Decoder, Encode};

use crate::WireError;

/// The largest message postkey accepts of any type, before its own tighter limit applies.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Encodes `value` canonically.
pub fn to_bytes<T: Encode<()>>(value: &T) -> Vec<u8> {
    // Writing to a `Vec` cannot fail and no Encode impl of ours returns an error, so the only
    // error minicbor could report is unreachable; an empty result would be refused by every
    // decoder rather than silently accepted.
    minicbor::to_vec(value).unwrap_or_default()
}

/// Encodes a value that holds secrets (a box's state image, a key image) into a wiped buffer
/// sized up front (`capacity`), so that growing it leaves no copy of the secret behind.
pub fn to_secret_bytes<T: Encode<()>>(value: &T, capacity: usize) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = SecretBuf(zeroize::Zeroizing::new(Vec::with_capacity(capacity)));
    // Writing to memory cannot fail; an empty result is refused by every reader.
    if minicbor::encode(value, &mut out).is_err() {
        out.0.clear();
    }
    out.0
}

/// A buffer for secrets that, when it must grow, copies into a new one and wipes the old (a
/// `Vec` growing by itself would leave a copy in freed memory): a large sealed state (a Tin
/// box's) outgrows any capacity guessed up front.
struct SecretBuf(zeroize::Zeroizing<Vec<u8>>);

impl minicbor::encode::Write for SecretBuf {
    type Error = core::convert::Infallible;

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        let needed = self.0.len() + buf.len();
        if needed > self.0.capacity() {
            let mut bigger =
                zeroize::Zeroizing::new(Vec::with_capacity(needed.max(self.0.capacity() * 2)));
            bigger.extend_from_slice(&self.0);
            // The old buffer is wiped (its whole capacity) as it is dropped here.
            self.0 = bigger;
        }
        self.0.extend_from_slice(buf);
        Ok(())
    }
}

/// Decodes a `T` from exactly `bytes`, at most `max` long (and never more than a message,
/// [`MAX_MESSAGE_LEN`]), in canonical encoding only.
pub fn from_bytes<'b, T>(bytes: &'b [u8], max: usize) -> Result<T, WireError>
where
    T: Decode<'b, ()> + Encode<()>,
{
    from_stored_bytes(bytes, max.min(MAX_MESSAGE_LEN))
}

/// As [`from_bytes`], for what is kept at rest rather than sent (a box's sealed state image,
/// which may hold a Tin box's exports): at most `max` long, whatever a message's limit.
pub fn from_stored_bytes<'b, T>(bytes: &'b [u8], max: usize) -> Result<T, WireError>
where
    T: Decode<'b, ()> + Encode<()>,
{
    if bytes.len() > max {
        return Err(WireError::TooLarge { len: bytes.len(), max });
    }
    let mut d = Decoder::new(bytes);
    let value: T = d.decode()?;
    let end = d.position();
    if end != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - end));
    }
    // The re-encoding may hold secrets (a sealed state's image, a share): it goes into a buffer
    // of the input's size, so that it never reallocates and leaves copies behind, and is wiped.
    let mut again = zeroize::Zeroizing::new(Vec::with_capacity(bytes.len()));
    if minicbor::encode(&value, &mut *again).is_err() || again.as_slice() != bytes {
        return Err(WireError::NonCanonical);
    }
    Ok(value)
}

/// Text formatted on the stack: the identifiers and dates that travel as text are short, and a
/// `VERIFY` batch encodes thousands of them (a `String` each was an allocation). Refuses (with
/// `fmt::Error`) what does not fit, for the caller to format on the heap instead.
pub(crate) struct ShortText {
    len: usize,
    bytes: [u8; 64],
}

impl Default for ShortText {
    fn default() -> Self {
        Self { len: 0, bytes: [0; 64] }
    }
}

impl ShortText {
    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are appended: always UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl core::fmt::Write for ShortText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Encodes a type as its text (`Display`) and decodes it with its `parse`, refusing what does
/// not parse with `$what` (identifiers, dates, senders travel as text). With `$write`, the text
/// is written by it (without the formatter: for the identifiers a `VERIFY` batch encodes by the
/// thousand), which must write what `Display` writes.
macro_rules! cbor_as_text {
    ($t:ty, $what:literal) => {
        $crate::codec::cbor_as_text!($t, $what, |v: &$t, text: &mut $crate::codec::ShortText| {
            core::fmt::Write::write_fmt(text, format_args!("{v}"))
        });
    };
    ($t:ty, $what:literal, $write:expr) => {
        impl<C> minicbor::Encode<C> for $t {
            fn encode<W: minicbor::encode::Write>(
                &self,
                e: &mut minicbor::Encoder<W>,
                _: &mut C,
            ) -> Result<(), minicbor::encode::Error<W::Error>> {
                let write: fn(&$t, &mut $crate::codec::ShortText) -> core::fmt::Result = $write;
                let mut text = $crate::codec::ShortText::default();
                if write(self, &mut text).is_ok() {
                    e.str(text.as_str())?;
                } else {
                    e.str(&self.to_string())?;
                }
                Ok(())
            }
        }

        impl<'b, C> minicbor::Decode<'b, C> for $t {
            fn decode(
                d: &mut minicbor::Decoder<'b>,
                _: &mut C,
            ) -> Result<Self, minicbor::decode::Error> {
                Self::parse(d.str()?).map_err(|_| minicbor::decode::Error::message($what))
            }
        }
    };
}
pub(crate) use cbor_as_text;

#[cfg(test)]
mod tests {
    use minicbor::{Decode, Encode};

    use super::*;

    #[test]
    fn text_formatted_on_the_stack_is_the_display_text_and_refuses_overflow() {
        use core::fmt::Write as _;
        let sub = crate::SubdomainId::parse("USPS/US").unwrap();
        let meter = crate::MeterId::parse("PB1234-000123").unwrap();
        for (value, text) in [
            (minicbor::to_vec(&sub).unwrap(), "USPS/US"),
            (minicbor::to_vec(&meter).unwrap(), "PB1234-000123"),
        ] {
            assert_eq!(value, minicbor::to_vec(text).unwrap());
        }
        let mut t = ShortText::default();
        assert!(t.write_str(&"x".repeat(64)).is_ok());
        assert!(t.write_str("y").is_err());
        assert_eq!(t.as_str(), "x".repeat(64));
    }

    #[derive(Debug, PartialEq, Encode, Decode)]
    #[cbor(map)]
    struct Pair {
        #[n(0)]
        a: u32,
        #[n(1)]
        b: Option<String>,
    }

    fn ok() -> Vec<u8> {
        // {0: 1, 1: "x"}
        vec![0xa2, 0x00, 0x01, 0x01, 0x61, b'x']
    }

    #[test]
    fn canonical_bytes_decode() {
        assert_eq!(from_bytes::<Pair>(&ok(), 100).unwrap(), Pair { a: 1, b: Some("x".into()) });
        assert_eq!(to_bytes(&Pair { a: 1, b: Some("x".into()) }), ok());
    }

    #[test]
    fn every_non_canonical_form_is_refused() {
        let cases: &[(&str, Vec<u8>, WireError)] = &[
            ("trailing byte", [ok(), vec![0]].concat(), WireError::Trailing(1)),
            ("truncated", ok()[..5].to_vec(), WireError::Malformed(String::new())),
            ("reordered fields", vec![0xa2, 0x01, 0x61, b'x', 0x00, 0x01], WireError::NonCanonical),
            (
                "duplicate field",
                vec![0xa3, 0x00, 0x01, 0x00, 0x01, 0x01, 0x61, b'x'],
                WireError::NonCanonical,
            ),
            (
                "unknown field",
                vec![0xa3, 0x00, 0x01, 0x01, 0x61, b'x', 0x07, 0x00],
                WireError::NonCanonical,
            ),
            (
                "non-minimal integer",
                vec![0xa2, 0x00, 0x18, 0x01, 0x01, 0x61, b'x'],
                WireError::NonCanonical,
            ),
            ("explicit null", vec![0xa2, 0x00, 0x01, 0x01, 0xf6], WireError::NonCanonical),
            (
                "indefinite map",
                vec![0xbf, 0x00, 0x01, 0x01, 0x61, b'x', 0xff],
                WireError::NonCanonical,
            ),
        ];
        for (name, bytes, want) in cases {
            let got = from_bytes::<Pair>(bytes, 100).unwrap_err();
            match (want, &got) {
                (WireError::Malformed(_), WireError::Malformed(_)) => {}
                _ => assert_eq!(&got, want, "{name}"),
            }
        }
    }

    #[test]
    fn oversize_input_is_refused_before_decoding() {
        assert_eq!(from_bytes::<Pair>(&ok(), 5), Err(WireError::TooLarge { len: 6, max: 5 }));
    }
}
