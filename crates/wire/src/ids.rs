//! Identifiers of protocol §2, each a validated newtype: a value of these types is always well
//! formed, so no code past the decoder re-checks a syntax.

use core::fmt;
use core::str::FromStr;

use minicbor::{Decode, Decoder, Encode, Encoder, decode, encode};

use crate::WireError;

/// The ID a box carries before a manufacturing box initializes it.
pub const UNINITIALIZED_BOX: &str = "X00000000";

/// Defines a text identifier: a newtype of at most `$max` ASCII bytes whose only constructor
/// validates, encoded in CBOR as a text string and decoded through the same validation. The
/// text is kept inline, not on the heap: verification copies a mailpiece's ISN, sub-domain,
/// ZIP and meter several times (docs/verification.md, "Speed"), and a copy of an inline ID is
/// a few bytes moved, where a `String` is an allocation and a pointer to chase.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $valid:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            len: u8,
            // The text, then zeros.
            bytes: [u8; $max],
        }

        // The length is kept in a byte.
        const _: () = assert!($max <= 255);

        impl $name {
            /// The longest valid value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, WireError> {
                let valid: fn(&str) -> Result<(), &'static str> = $valid;
                if s.len() > Self::MAX_LEN {
                    return Err(WireError::InvalidField { field: $field, reason: "too long" });
                }
                valid(s).map_err(|reason| WireError::InvalidField { field: $field, reason })?;
                Ok(Self::inline(s))
            }

            /// `s` kept inline: validated by the caller, so at most `MAX_LEN` bytes of ASCII.
            fn inline(s: &str) -> Self {
                let mut bytes = [0u8; $max];
                let len = s.len().min($max);
                bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
                Self { len: len as u8, bytes }
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                // Only `inline` fills the bytes, from a `&str`, whole: always UTF-8.
                core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
            }
        }

        // Compared, ordered and hashed as the text, through its bytes: equal texts have equal
        // lengths and zeros after, and `str` orders by bytes (the order of the strings, as
        // before the text was kept inline).
        impl $name {
            fn text(&self) -> &[u8] {
                &self.bytes[..usize::from(self.len)]
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.len == other.len && self.bytes == other.bytes
            }
        }

        impl Eq for $name {}

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> core::cmp::Ordering {
                self.text().cmp(other.text())
            }
        }

        impl core::hash::Hash for $name {
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                self.text().hash(state)
            }
        }

        impl FromStr for $name {
            type Err = WireError;
            fn from_str(s: &str) -> Result<Self, WireError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl<C> Encode<C> for $name {
            fn encode<W: encode::Write>(
                &self,
                e: &mut Encoder<W>,
                _: &mut C,
            ) -> Result<(), encode::Error<W::Error>> {
                e.str(self.as_str())?;
                Ok(())
            }
        }

        impl<'b, C> Decode<'b, C> for $name {
            fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
                Self::parse(d.str()?).map_err(|_| decode::Error::message(concat!("invalid ", $field)))
            }
        }
    };
}

fn all(s: &str, f: fn(u8) -> bool) -> bool {
    s.bytes().all(f)
}
fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

text_id!(
    /// A security domain: 2 to 8 characters `[A-Z0-9]` (`VE`, `USPS`, `EARTH`, `ADMIN`).
    DomainId, "domain ID", 8,
    |s| if s.len() >= 2 && all(s, upper_digit) { Ok(()) } else { Err("must be 2 to 8 of [A-Z0-9]") }
);

impl DomainId {
    /// The administration domain, in which domains are created and the audit trail is signed.
    pub fn admin() -> Self {
        Self::inline("ADMIN")
    }
    /// Whether this is the administration domain.
    pub fn is_admin(&self) -> bool {
        self.as_str() == "ADMIN"
    }
    /// The name of the error log's hash chain in the archive: reserved, never a domain.
    pub fn error_log() -> Self {
        Self::inline("ERRORS")
    }
    /// Whether this is the error log's chain name.
    pub fn is_error_log(&self) -> bool {
        self.as_str() == "ERRORS"
    }
    /// The name of the duplicate memory's hash chain (verification's first sightings):
    /// reserved, never a domain.
    pub fn sightings() -> Self {
        Self::inline("SIGHTS")
    }
    /// Whether this is the duplicate memory's chain name.
    pub fn is_sightings(&self) -> bool {
        self.as_str() == "SIGHTS"
    }
    /// Whether this names a chain of the archive that is no domain (`ERRORS`, `SIGHTS`).
    pub fn is_reserved_chain(&self) -> bool {
        self.is_error_log() || self.is_sightings()
    }
}

text_id!(
    /// An ISO 3166 alpha-2 country code, upper case.
    Country, "country", 2,
    |s| if s.len() == 2 && all(s, |b| b.is_ascii_uppercase()) { Ok(()) } else { Err("must be two letters [A-Z]") }
);

text_id!(
    /// A product code `[A-Z]{2}[0-9]{1,6}`, e.g. `PB1234`.
    ProductCode, "product code", 8,
    |s| {
        let b = s.as_bytes();
        let ok = b.len() >= 3
            && b.iter().take(2).all(u8::is_ascii_uppercase)
            && b.iter().skip(2).all(u8::is_ascii_digit);
        if ok { Ok(()) } else { Err("must be two letters [A-Z] then 1 to 6 digits") }
    }
);

text_id!(
    /// A manufacturing sequence number `[0-9]{6,10}`; a string, leading zeros count.
    Msn, "MSN", 10,
    |s| if s.len() >= 6 && all(s, |b| b.is_ascii_digit()) { Ok(()) } else { Err("must be 6 to 10 digits") }
);

text_id!(
    /// An indicia serial number `[A-Z0-9]{1,16}`, unique within its postal sub-domain.
    Isn, "ISN", 16,
    |s| if !s.is_empty() && all(s, upper_digit) { Ok(()) } else { Err("must be 1 to 16 of [A-Z0-9]") }
);

text_id!(
    /// An origin postal code as it enters the canonical mailpiece bytes: `[A-Z0-9]{1,10}`.
    /// [`Zip::normalize`] turns what a person types into this form.
    Zip, "ZIP", 10,
    |s| if !s.is_empty() && all(s, upper_digit) { Ok(()) } else { Err("must be 1 to 10 of [A-Z0-9]") }
);

impl Zip {
    /// Upper-cases and removes spaces and hyphens (protocol §6.5), then validates.
    pub fn normalize(s: &str) -> Result<Self, WireError> {
        let cleaned: String =
            s.chars().filter(|c| *c != ' ' && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
        Self::parse(&cleaned)
    }
}

/// A box type (protocol §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BoxType {
    /// Manufacturing: creates domains and initializes boxes.
    Manufacturing,
    /// Oak: generates master keys.
    Oak,
    /// Steel: installs master keys into meters.
    Steel,
    /// Brass: registers keys and verifies tokens.
    Brass,
    /// Tin: verifies postal tokens remotely.
    Tin,
}

impl BoxType {
    /// Every type, in the order of protocol §2.
    pub const ALL: [BoxType; 5] =
        [Self::Manufacturing, Self::Oak, Self::Steel, Self::Brass, Self::Tin];

    /// The ID letter.
    pub fn letter(self) -> char {
        match self {
            Self::Manufacturing => 'M',
            Self::Oak => 'O',
            Self::Steel => 'S',
            Self::Brass => 'B',
            Self::Tin => 'T',
        }
    }

    /// The type for an ID letter.
    pub fn from_letter(c: char) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.letter() == c)
    }

    /// The lower-case name used in the CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Manufacturing => "manufacturing",
            Self::Oak => "oak",
            Self::Steel => "steel",
            Self::Brass => "brass",
            Self::Tin => "tin",
        }
    }
}

impl fmt::Display for BoxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

// On the wire a box type is its ID letter, as a one-character text string.
impl<C> Encode<C> for BoxType {
    fn encode<W: encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        let mut buf = [0u8; 4];
        e.str(self.letter().encode_utf8(&mut buf))?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for BoxType {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        let s = d.str()?;
        let mut chars = s.chars();
        match (chars.next().and_then(Self::from_letter), chars.next()) {
            (Some(t), None) => Ok(t),
            _ => Err(decode::Error::message("invalid box type")),
        }
    }
}

/// An assigned box ID: type letter and 8 decimal digits, number 1 to 99,999,999 (`O00000003`).
/// The blank box's `X00000000` is not a `BoxId`: it identifies no box and is never certified.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoxId {
    box_type: BoxType,
    number: u32,
}

impl BoxId {
    /// The largest box number.
    pub const MAX_NUMBER: u32 = 99_999_999;

    /// `M00000001`, the first manufacturing box, made by the first ceremony.
    pub const FIRST_MANUFACTURING: BoxId = BoxId { box_type: BoxType::Manufacturing, number: 1 };

    /// The ID of the `number`th box of a type; 0 and numbers past 8 digits are refused.
    pub fn new(box_type: BoxType, number: u32) -> Result<Self, WireError> {
        if number == 0 || number > Self::MAX_NUMBER {
            return Err(WireError::InvalidField {
                field: "box ID",
                reason: "number must be 1 to 99999999",
            });
        }
        Ok(Self { box_type, number })
    }

    /// Parses `O00000003`.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let bad = WireError::InvalidField {
            field: "box ID",
            reason: "must be M, O, S, B or T then 8 digits",
        };
        let mut chars = s.chars();
        let box_type = chars.next().and_then(BoxType::from_letter).ok_or_else(|| bad.clone())?;
        let digits = chars.as_str();
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        let number = digits.parse().map_err(|_| bad)?;
        Self::new(box_type, number)
    }

    /// The box's type.
    pub fn box_type(&self) -> BoxType {
        self.box_type
    }

    /// The box's number within its type.
    pub fn number(&self) -> u32 {
        self.number
    }
}

impl FromStr for BoxId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        Self::parse(s)
    }
}

impl fmt::Display for BoxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:08}", self.box_type.letter(), self.number)
    }
}

impl fmt::Debug for BoxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoxId({self})")
    }
}

crate::codec::cbor_as_text!(BoxId, "invalid box ID");

/// A registration and verification scope `DOMAIN/CC` (`USPS/US`, `VE/DE`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubdomainId {
    domain: DomainId,
    country: Country,
}

impl SubdomainId {
    /// The sub-domain of `domain` for `country`.
    pub fn new(domain: DomainId, country: Country) -> Self {
        Self { domain, country }
    }

    /// Parses `USPS/US`.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let (d, c) = s
            .split_once('/')
            .ok_or(WireError::InvalidField { field: "sub-domain", reason: "must be DOMAIN/CC" })?;
        Ok(Self { domain: DomainId::parse(d)?, country: Country::parse(c)? })
    }

    /// The domain.
    pub fn domain(&self) -> &DomainId {
        &self.domain
    }

    /// The country.
    pub fn country(&self) -> &Country {
        &self.country
    }
}

impl FromStr for SubdomainId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        Self::parse(s)
    }
}

impl fmt::Display for SubdomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.country)
    }
}

impl fmt::Debug for SubdomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubdomainId({self})")
    }
}

crate::codec::cbor_as_text!(SubdomainId, "invalid sub-domain", |s: &SubdomainId, text| {
    use core::fmt::Write as _;
    text.write_str(s.domain.as_str())?;
    text.write_str("/")?;
    text.write_str(s.country.as_str())
});

/// A meter: product code and MSN, written `PB1234-000123`; unique within the vendor.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeterId {
    product: ProductCode,
    msn: Msn,
}

impl MeterId {
    /// The meter of `product` with serial `msn`.
    pub fn new(product: ProductCode, msn: Msn) -> Self {
        Self { product, msn }
    }

    /// Parses `PB1234-000123`.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let (p, m) = s
            .split_once('-')
            .ok_or(WireError::InvalidField { field: "meter ID", reason: "must be PRODUCT-MSN" })?;
        Ok(Self { product: ProductCode::parse(p)?, msn: Msn::parse(m)? })
    }

    /// The product code.
    pub fn product_code(&self) -> &ProductCode {
        &self.product
    }

    /// The manufacturing sequence number.
    pub fn msn(&self) -> &Msn {
        &self.msn
    }
}

impl FromStr for MeterId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        Self::parse(s)
    }
}

impl fmt::Display for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.product, self.msn)
    }
}

impl fmt::Debug for MeterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeterId({self})")
    }
}

crate::codec::cbor_as_text!(MeterId, "invalid meter ID", |m: &MeterId, text| {
    use core::fmt::Write as _;
    text.write_str(m.product.as_str())?;
    text.write_str("-")?;
    text.write_str(m.msn.as_str())
});

/// A master key's ID: per domain, strictly increasing from 1, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u64);

impl KeyId {
    /// The ID `n`; 0 names no key and is refused.
    pub fn new(n: u64) -> Result<Self, WireError> {
        if n == 0 {
            return Err(WireError::InvalidField { field: "key ID", reason: "key IDs start at 1" });
        }
        Ok(Self(n))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<C> Encode<C> for KeyId {
    fn encode<W: encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        e.u64(self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for KeyId {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        Self::new(d.u64()?).map_err(|_| decode::Error::message("key ID 0"))
    }
}

/// A box's sealed-state version: grows with every durable change; a smaller one than the archive
/// last saw means an old state was restored (protocol §7.2 item 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
#[cbor(transparent)]
pub struct StateVersion(#[n(0)] pub u64);

impl fmt::Display for StateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_ids_round_trip_and_refuse_bad_forms() {
        let id = BoxId::parse("O00000003").unwrap();
        assert_eq!(id.box_type(), BoxType::Oak);
        assert_eq!(id.number(), 3);
        assert_eq!(id.to_string(), "O00000003");
        for bad in [
            "X00000000",
            "O00000000",
            "O0000003",
            "O000000003",
            "Q00000001",
            "o00000001",
            "O0000000a",
            "",
        ] {
            assert!(BoxId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inline_text_ids_compare_order_and_hash_as_their_text() {
        use std::collections::HashSet;
        let texts =
            ["A", "A0", "AB", "ABC", "AB0", "B", "Z9", "0", "0000000000000000", "ZZZZZZZZZZZZZZZZ"];
        let ids: Vec<Isn> = texts.iter().map(|t| Isn::parse(t).unwrap()).collect();
        for (a, ta) in ids.iter().zip(texts) {
            assert_eq!(a.as_str(), ta);
            assert_eq!(format!("{a:?}"), format!("Isn({ta:?})"));
            for (b, tb) in ids.iter().zip(texts) {
                assert_eq!(a == b, ta == tb, "{ta} == {tb}");
                assert_eq!(a.cmp(b), ta.cmp(tb), "{ta} cmp {tb}");
            }
        }
        // A prefix is neither equal to nor hashed as the longer text.
        let set: HashSet<Isn> = ids.iter().cloned().collect();
        assert_eq!(set.len(), texts.len());
        assert!(set.contains(&Isn::parse("AB").unwrap()));
        assert!(!set.contains(&Isn::parse("A1").unwrap()));
        assert!(
            DomainId::admin().is_admin() && DomainId::parse("ADMIN").unwrap() == DomainId::admin()
        );
        assert_eq!(Zip::parse("0648400000").unwrap().as_str(), "0648400000");
    }

    #[test]
    fn text_ids_follow_the_spec_syntax() {
        assert!(DomainId::parse("VE").is_ok());
        assert!(DomainId::parse("EARTH").is_ok());
        assert!(DomainId::parse("ABCDEFGH").is_ok());
        for bad in ["V", "ABCDEFGHI", "ve", "U-S", ""] {
            assert!(DomainId::parse(bad).is_err(), "{bad}");
        }
        assert!(ProductCode::parse("PB1234").is_ok());
        assert!(ProductCode::parse("PB123456").is_ok());
        for bad in ["PB", "P1234", "PB1234567", "pb1", "PBX1"] {
            assert!(ProductCode::parse(bad).is_err(), "{bad}");
        }
        assert!(Msn::parse("000123").is_ok());
        assert!(Msn::parse("0123456789").is_ok());
        for bad in ["12345", "01234567890", "12345a"] {
            assert!(Msn::parse(bad).is_err(), "{bad}");
        }
        assert!(Isn::parse("0401234567ABCDEF").is_ok());
        assert!(Isn::parse("0401234567ABCDEFG").is_err());
        assert!(Isn::parse("").is_err());
        assert_eq!(MeterId::parse("PB1234-000123").unwrap().to_string(), "PB1234-000123");
        assert!(MeterId::parse("PB1234000123").is_err());
        assert_eq!(SubdomainId::parse("USPS/US").unwrap().domain().as_str(), "USPS");
        assert!(SubdomainId::parse("USPS/USA").is_err());
        assert!(KeyId::new(0).is_err());
    }

    #[test]
    fn zip_normalization_removes_spaces_and_hyphens() {
        assert_eq!(Zip::normalize("sw1a 1aa").unwrap().as_str(), "SW1A1AA");
        assert_eq!(Zip::normalize("06484-1234").unwrap().as_str(), "064841234");
        assert!(Zip::normalize("  ").is_err());
        assert!(Zip::normalize("12345678901").is_err());
        assert!(Zip::normalize("1234/5").is_err());
    }
}
