//! The mailpieces of a `VERIFY` item and its answer bits, packed (docs/spec/box-protocol.md,
//! "VERIFY"). A verifier sends millions of mailpieces a minute: each travels as one fixed-width
//! record inside a single byte string, not as a map of named fields, so that neither side
//! allocates or walks CBOR per mailpiece. Every record is checked when the item is decoded
//! (dates, the postal code, key indices, zero padding), so a record has exactly one encoding and
//! the box sees only valid fields.
//!
//! ```text
//! record (43 bytes, little-endian integers):
//!   0  key 0        u16   index into the item's keys, or 0xFFFF: no token 0 to check
//!   2  key 1        u16   the same for token 1 (at least one of the two is a key)
//!   4  date         u32   YYYYMMDD as a number, a real calendar date
//!   8  value        u32
//!  12  count        u32
//!  16  zip length   u8    1 to 10
//!  17  zip          10 B  [A-Z0-9], zero bytes after its length
//!  27  token 0      8 B   zero when key 0 is absent
//!  35  token 1      8 B   zero when key 1 is absent
//! ```

use minicbor::Decoder;

use crate::command::param::{Enc, MAX_LIST, Param};
use crate::{Date, Token, WireError, Zip};

/// The bytes of one packed mailpiece.
pub const PIECE_RECORD_LEN: usize = 43;

/// A key index that names no key: that token is not checked.
const NO_KEY: u16 = u16::MAX;

/// The longest postal code (as [`Zip`] allows).
const ZIP_MAX: usize = 10;

/// One mailpiece of a `VERIFY` item: its own fields and up to two tokens, each with the index
/// of the item's key it is to be checked with. Both keys name the same ISN and sub-domain (the
/// box checks), so the canonical bytes are the same for both tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPiece {
    keys: [Option<u16>; 2],
    date: Date,
    value: u32,
    count: u32,
    zip_len: u8,
    zip: [u8; ZIP_MAX],
    tokens: [Token; 2],
}

impl VerifyPiece {
    /// A mailpiece whose tokens are to be checked with the keys at these indices of the
    /// item's keys (`None`: that token is not checked; its token is ignored and sent as zeros).
    /// Refused when neither token names a key, an index is past [`MAX_LIST`], or both name
    /// the same key.
    pub fn new(
        keys: [Option<u16>; 2],
        date: Date,
        value: u32,
        count: u32,
        zip: &Zip,
        tokens: [Token; 2],
    ) -> Result<Self, WireError> {
        check_keys(keys)?;
        let mut z = [0u8; ZIP_MAX];
        let zb = zip.as_str().as_bytes();
        z[..zb.len()].copy_from_slice(zb);
        let zero = Token::from_bytes([0; 8]);
        let tokens = [0, 1].map(|i| if keys[i].is_some() { tokens[i] } else { zero });
        Ok(Self { keys, date, value, count, zip_len: zb.len() as u8, zip: z, tokens })
    }

    /// The indices of the keys its two tokens are checked with.
    pub fn keys(&self) -> [Option<u16>; 2] {
        self.keys
    }

    /// The mailing date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// The postage value.
    pub fn value(&self) -> u32 {
        self.value
    }

    /// The piece count.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The origin postal code, normalized (`[A-Z0-9]{1,10}`).
    pub fn zip(&self) -> &str {
        // Checked to be ASCII letters and digits on every way in.
        core::str::from_utf8(&self.zip[..usize::from(self.zip_len)]).unwrap_or("")
    }

    /// The two tokens (zeros where no key is named).
    pub fn tokens(&self) -> [Token; 2] {
        self.tokens
    }

    fn put(&self, out: &mut Vec<u8>) {
        // Filled in place and appended once: a batch writes (and a box, checking the frame is
        // canonical, writes again) some 65,536 records.
        let mut r = [0u8; PIECE_RECORD_LEN];
        for (i, k) in self.keys.iter().enumerate() {
            r[2 * i..2 * i + 2].copy_from_slice(&k.unwrap_or(NO_KEY).to_le_bytes());
        }
        let d = self.date;
        let date = u32::from(d.year()) * 10_000 + u32::from(d.month()) * 100 + u32::from(d.day());
        r[4..8].copy_from_slice(&date.to_le_bytes());
        r[8..12].copy_from_slice(&self.value.to_le_bytes());
        r[12..16].copy_from_slice(&self.count.to_le_bytes());
        r[16] = self.zip_len;
        r[17..27].copy_from_slice(&self.zip);
        r[27..35].copy_from_slice(&self.tokens[0].to_bytes());
        r[35..43].copy_from_slice(&self.tokens[1].to_bytes());
        out.extend_from_slice(&r);
    }

    fn take(r: &[u8; PIECE_RECORD_LEN]) -> Result<Self, WireError> {
        let bad = |reason| WireError::InvalidField { field: "VERIFY mailpiece", reason };
        let u16_at = |i: usize| u16::from_le_bytes([r[i], r[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
        let eight = |i: usize| {
            let mut t = [0u8; 8];
            t.copy_from_slice(&r[i..i + 8]);
            Token::from_bytes(t)
        };
        let keys = [0, 2].map(|i| Some(u16_at(i)).filter(|&k| k != NO_KEY));
        let date = u32_at(4);
        let date = Date::new(
            u16::try_from(date / 10_000).map_err(|_| bad("date out of range"))?,
            (date / 100 % 100) as u8,
            (date % 100) as u8,
        )?;
        let zip_len = r[16];
        let mut zip = [0u8; ZIP_MAX];
        zip.copy_from_slice(&r[17..27]);
        let len = usize::from(zip_len);
        if !(1..=ZIP_MAX).contains(&len)
            || !zip[..len].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            || zip[len..].iter().any(|&b| b != 0)
        {
            return Err(bad("postal code must be 1 to 10 of [A-Z0-9], zero-padded"));
        }
        let tokens = [eight(27), eight(35)];
        check_keys(keys)?;
        // One encoding only: no token where no key is named (as `new` writes it).
        let zero = Token::from_bytes([0; 8]);
        if (0..2).any(|i| keys[i].is_none() && tokens[i].to_bytes() != zero.to_bytes()) {
            return Err(WireError::NonCanonical);
        }
        let piece = Self { keys, date, value: u32_at(8), count: u32_at(12), zip_len, zip, tokens };
        Ok(piece)
    }
}

/// A mailpiece's key indices: at least one, each below [`MAX_LIST`], not the same twice.
fn check_keys(keys: [Option<u16>; 2]) -> Result<(), WireError> {
    let bad = |reason| Err(WireError::InvalidField { field: "VERIFY mailpiece", reason });
    match keys {
        [None, None] => bad("names no key"),
        _ if keys.iter().flatten().any(|&k| usize::from(k) >= MAX_LIST) => {
            bad("key index past the list's limit")
        }
        [Some(a), Some(b)] if a == b => bad("names one key for both tokens"),
        _ => Ok(()),
    }
}

/// The mailpieces of a `VERIFY` item: at most [`MAX_LIST`], one byte string of
/// [`PIECE_RECORD_LEN`]-byte records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyPieces(Vec<VerifyPiece>);

impl VerifyPieces {
    /// At most [`MAX_LIST`] mailpieces.
    pub fn new(pieces: Vec<VerifyPiece>) -> Result<Self, WireError> {
        if pieces.len() > MAX_LIST {
            return Err(WireError::TooLarge { len: pieces.len(), max: MAX_LIST });
        }
        Ok(Self(pieces))
    }

    /// The mailpieces, in order.
    pub fn as_slice(&self) -> &[VerifyPiece] {
        &self.0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Param for VerifyPieces {
    fn put(&self, e: &mut Enc) {
        // The byte string's head, then its records straight into the frame (no copy between).
        let _ = e.bytes_len((self.0.len() * PIECE_RECORD_LEN) as u64);
        let out = e.writer_mut();
        out.reserve(self.0.len() * PIECE_RECORD_LEN);
        for p in &self.0 {
            p.put(out);
        }
    }

    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        let bytes = d.bytes()?;
        if bytes.len() > MAX_LIST * PIECE_RECORD_LEN {
            return Err(WireError::TooLarge { len: bytes.len(), max: MAX_LIST * PIECE_RECORD_LEN });
        }
        let (records, rest) = bytes.as_chunks::<PIECE_RECORD_LEN>();
        if !rest.is_empty() {
            return Err(WireError::Malformed("VERIFY mailpieces: a record cut short".into()));
        }
        records.iter().map(VerifyPiece::take).collect::<Result<_, _>>().map(Self)
    }
}

/// `VERIFY`'s answer bits: one byte per mailpiece of the item, in order; bit 0 set when its
/// token 0 is the key's, bit 1 when its token 1 is. A token not checked (no key named, or its
/// key not held) has its bit clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBits(Vec<u8>);

impl TokenBits {
    /// Room for `n` mailpieces.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// The next mailpiece's answers.
    pub fn push(&mut self, good: [bool; 2]) {
        self.0.push(u8::from(good[0]) | u8::from(good[1]) << 1);
    }

    /// Mailpiece `i`'s answers, if there is one.
    pub fn get(&self, i: usize) -> Option<[bool; 2]> {
        self.0.get(i).map(|b| [b & 1 != 0, b & 2 != 0])
    }

    /// How many mailpieces.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Param for TokenBits {
    fn put(&self, e: &mut Enc) {
        let _ = e.bytes(&self.0);
    }

    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        let bytes = d.bytes()?;
        if bytes.len() > MAX_LIST {
            return Err(WireError::TooLarge { len: bytes.len(), max: MAX_LIST });
        }
        if bytes.iter().any(|b| b & !3 != 0) {
            return Err(WireError::InvalidField {
                field: "VERIFY answer",
                reason: "only bits 0 and 1 of a mailpiece's byte are defined",
            });
        }
        Ok(Self(bytes.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(keys: [Option<u16>; 2]) -> VerifyPiece {
        VerifyPiece::new(
            keys,
            Date::parse("20261205").unwrap(),
            65,
            7,
            &Zip::parse("SW1A1AA").unwrap(),
            [Token::from_bytes([1; 8]), Token::from_bytes([2; 8])],
        )
        .unwrap()
    }

    fn encoded(pieces: &VerifyPieces) -> Vec<u8> {
        let mut e = Enc::new(Vec::new());
        pieces.put(&mut e);
        e.into_writer()
    }

    fn decoded(bytes: &[u8]) -> Result<VerifyPieces, WireError> {
        VerifyPieces::take(&mut Decoder::new(bytes))
    }

    /// The records of `pieces`, `edit`ed, as a byte string.
    fn edited(pieces: &VerifyPieces, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut raw = Vec::new();
        for p in pieces.as_slice() {
            p.put(&mut raw);
        }
        edit(&mut raw);
        let mut e = Enc::new(Vec::new());
        let _ = e.bytes(&raw);
        e.into_writer()
    }

    #[test]
    fn records_round_trip_and_an_absent_key_carries_no_token() {
        let pieces =
            VerifyPieces::new(vec![piece([Some(0), Some(1)]), piece([None, Some(3)])]).unwrap();
        let back = decoded(&encoded(&pieces)).unwrap();
        assert_eq!(back, pieces);
        let p = back.as_slice()[1];
        assert_eq!(p.keys(), [None, Some(3)]);
        assert_eq!(p.tokens()[0], Token::from_bytes([0; 8]));
        assert_eq!((p.zip(), p.value(), p.count()), ("SW1A1AA", 65, 7));
        assert_eq!(p.date(), Date::parse("20261205").unwrap());
        assert!(
            VerifyPiece::new([None, None], p.date(), 1, 1, &Zip::parse("1").unwrap(), p.tokens())
                .is_err()
        );
    }

    #[test]
    fn every_field_of_a_record_is_checked() {
        let pieces = VerifyPieces::new(vec![piece([Some(0), None])]).unwrap();
        let refused = |at: usize, byte: u8| {
            decoded(&edited(&pieces, |r| r[at] = byte)).expect_err(&format!("byte {at} = {byte}"))
        };
        // No key at all; a key index past the limit.
        let none = decoded(&edited(&pieces, |r| r[..2].copy_from_slice(&[0xFF, 0xFF])));
        assert!(matches!(none, Err(WireError::InvalidField { .. })));
        assert!(matches!(refused(1, 0x10), WireError::InvalidField { .. }));
        // One key for both tokens (key 1 set to key 0's index, 0).
        let twice = decoded(&edited(&pieces, |r| r[2..4].copy_from_slice(&[0, 0])));
        assert!(matches!(twice, Err(WireError::InvalidField { .. })));
        // 2026-12-05 with its day set to 32; the month to 13.
        refused(4, (20_261_232u32 & 0xFF) as u8);
        let month13 = 20_261_305u32.to_le_bytes();
        assert!(decoded(&edited(&pieces, |r| r[4..8].copy_from_slice(&month13))).is_err());
        // Postal code: empty, too long, a lower-case letter, a byte after its length.
        refused(16, 0);
        refused(16, 11);
        refused(17, b's');
        refused(26, b'1');
        // A token where no key is named.
        assert_eq!(refused(35, 1), WireError::NonCanonical);
        // A record cut short, or one byte more.
        assert!(
            decoded(&edited(&pieces, |r| {
                r.pop();
            }))
            .is_err()
        );
        assert!(decoded(&edited(&pieces, |r| r.push(0))).is_err());
    }

    #[test]
    fn at_most_max_list_pieces() {
        let many = vec![piece([Some(0), None]); MAX_LIST + 1];
        assert!(VerifyPieces::new(many.clone()).is_err());
        let over = VerifyPieces(many);
        assert!(matches!(decoded(&encoded(&over)), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn answer_bits_are_two_per_mailpiece() {
        let mut bits = TokenBits::with_capacity(2);
        bits.push([true, false]);
        bits.push([false, true]);
        let mut e = Enc::new(Vec::new());
        bits.put(&mut e);
        let back = TokenBits::take(&mut Decoder::new(&e.into_writer())).unwrap();
        assert_eq!(
            (back.get(0), back.get(1), back.get(2)),
            (Some([true, false]), Some([false, true]), None)
        );
        let mut e = Enc::new(Vec::new());
        let _ = e.bytes(&[4]);
        assert!(TokenBits::take(&mut Decoder::new(&e.into_writer())).is_err());
    }
}
