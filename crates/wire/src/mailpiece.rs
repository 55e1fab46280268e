//! What a meter prints and a verifier checks: the canonical mailpiece bytes of protocol §6.5 and the
//! tokens computed over them. Tokens are public once printed; they compare in constant time all
//! the same, so that a verifier's timing never tells how many leading bytes of a forgery matched.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::{Date, Isn, ResponseCode, SubdomainId, WireError, Zip};

/// One mailpiece as the tokens cover it: `ISN|SUBDOMAIN|DATE|VALUE|COUNT|ZIP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailpiece {
    /// The meter's indicia serial number.
    pub isn: Isn,
    /// The meter's postal sub-domain.
    pub subdomain: SubdomainId,
    /// The mailing date.
    pub date: Date,
    /// Postage in the smallest currency unit.
    pub value: u32,
    /// The meter's piece count.
    pub count: u32,
    /// The origin postal code, normalized.
    pub zip: Zip,
}

impl Mailpiece {
    /// The canonical bytes both tokens are computed over (protocol §6.5). Every field is validated
    /// by its type, and none can contain `|`, so the encoding is unambiguous.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        Self::write_canonical(
            &mut out,
            &self.isn,
            &self.subdomain,
            self.date,
            self.value,
            self.count,
            &self.zip,
        );
        out
    }

    /// Writes the canonical bytes of the mailpiece these fields make into `out` (cleared
    /// first): what a verifier runs for each of millions of mailpieces without building one.
    pub fn write_canonical(
        out: &mut Vec<u8>,
        isn: &Isn,
        subdomain: &SubdomainId,
        date: Date,
        value: u32,
        count: u32,
        zip: &Zip,
    ) {
        Self::write_canonical_head(out, isn, subdomain);
        Self::write_canonical_tail(out, date, value, count, zip.as_str());
    }

    /// The first part of the canonical bytes, the meter's: `ISN|SUBDOMAIN|` (`out` cleared
    /// first). A verifier writes it once for a meter's mailpieces.
    pub fn write_canonical_head(out: &mut Vec<u8>, isn: &Isn, subdomain: &SubdomainId) {
        out.clear();
        out.extend_from_slice(isn.as_str().as_bytes());
        out.push(b'|');
        out.extend_from_slice(subdomain.domain().as_str().as_bytes());
        out.push(b'/');
        out.extend_from_slice(subdomain.country().as_str().as_bytes());
        out.push(b'|');
    }

    /// The rest of the canonical bytes, the mailpiece's: `DATE|VALUE|COUNT|ZIP`, appended.
    /// `zip` is a normalized postal code (`[A-Z0-9]{1,10}`).
    pub fn write_canonical_tail(out: &mut Vec<u8>, date: Date, value: u32, count: u32, zip: &str) {
        let (y, m, d) = (u32::from(date.year()), u32::from(date.month()), u32::from(date.day()));
        let ymd = y * 10_000 + m * 100 + d;
        let mut digits = [0u8; 8];
        for (i, b) in digits.iter_mut().enumerate() {
            *b = b'0' + (ymd / 10u32.pow(7 - i as u32) % 10) as u8;
        }
        out.extend_from_slice(&digits);
        out.push(b'|');
        push_decimal(out, value);
        out.push(b'|');
        push_decimal(out, count);
        out.push(b'|');
        out.extend_from_slice(zip.as_bytes());
    }
}

/// `n` in decimal, without leading zeros (as `Display` writes it).
fn push_decimal(out: &mut Vec<u8>, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

macro_rules! public_tag {
    ($(#[$doc:meta])* $name:ident, $len:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Eq)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Wraps the raw bytes.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub fn to_bytes(&self) -> [u8; $len] {
                self.0
            }

            /// Parses the upper-case hex form (lower case is accepted and normalized).
            pub fn parse_hex(s: &str) -> Result<Self, WireError> {
                let bad = WireError::InvalidField {
                    field: $field,
                    reason: "wrong number of hex digits, or not hex",
                };
                // `from_str_radix` alone would also take a sign: "+0" parses as 0.
                if s.len() != $len * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad);
                }
                let mut out = [0u8; $len];
                for (i, o) in out.iter_mut().enumerate() {
                    let pair = s.get(2 * i..2 * i + 2).ok_or_else(|| bad.clone())?;
                    *o = u8::from_str_radix(pair, 16).map_err(|_| bad.clone())?;
                }
                Ok(Self(out))
            }
        }

        impl PartialEq for $name {
            /// Constant time.
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0.ct_eq(&other.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02X}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        postkey_crypto::cbor_byte_string!($name, $len, $field, |v| v.0, |b| Ok($name(b)));
    };
}

public_tag!(
    /// A token printed on a mailpiece: the first 8 bytes of AES-256-CMAC under the token key,
    /// written as 16 upper-case hex digits.
    Token, 8, "token"
);
public_tag!(
    /// The test tokens: the whole block AES-256(K, TP), proving a meter holds K without
    /// revealing it.
    TestTokens, 16, "test tokens"
);
public_tag!(
    /// A registration token: the first 8 bytes of AES-256-CMAC(K, registration data).
    RegistrationToken, 8, "registration token"
);

/// A verifier's answer for one token (protocol §6.5). A mailpiece is good only if both its
/// tokens are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The token is the meter's key's over these fields, the key `Active`, the piece new.
    Good,
    /// The token does not verify.
    Bad,
    /// No key record under (postal sub-domain, ISN).
    UnknownMeter,
    /// The key is not `Active` (installed, not registered; or `Bad`).
    NotActive,
    /// The meter was withdrawn.
    Obsolete,
    /// The mailing date precedes the UTC day of the KMS Key Registration Time.
    DateBeforeRegistration,
    /// The indicium does not parse, or a field has more than one wrong character.
    Malformed,
    /// A good mailpiece whose (meter, piece count) was verified before.
    Duplicate,
    /// A Tin box holds no export of the mailpiece's sub-domain and month: it cannot say.
    NotExported,
}

impl Verdict {
    /// Every verdict, in the order reports list them.
    pub const ALL: [Self; 9] = [
        Self::Good,
        Self::Bad,
        Self::UnknownMeter,
        Self::NotActive,
        Self::Obsolete,
        Self::DateBeforeRegistration,
        Self::Malformed,
        Self::Duplicate,
        Self::NotExported,
    ];

    /// Its name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Bad => "bad",
            Self::UnknownMeter => "unknown-meter",
            Self::NotActive => "not-active",
            Self::Obsolete => "obsolete",
            Self::DateBeforeRegistration => "date-before-registration",
            Self::Malformed => "malformed",
            Self::Duplicate => "duplicate",
            Self::NotExported => "not-exported",
        }
    }

    /// The verdict of a name, as [`Self::name`] writes it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Its 5xxx response code (`None` for `good`).
    pub fn code(self) -> Option<ResponseCode> {
        Some(match self {
            Self::Good => return None,
            Self::Bad => ResponseCode::TOKEN_BAD,
            Self::UnknownMeter => ResponseCode::ISN_NOT_REGISTERED,
            Self::NotActive => ResponseCode::KEY_NOT_ACTIVE,
            Self::Obsolete => ResponseCode::KEY_OBSOLETE,
            Self::DateBeforeRegistration => ResponseCode::DATE_BEFORE_REGISTRATION,
            Self::Malformed => ResponseCode::INDICIUM_MALFORMED,
            Self::Duplicate => ResponseCode::DUPLICATE_PIECE,
            Self::NotExported => ResponseCode::NOT_EXPORTED,
        })
    }

    /// The verdict of a 5xxx code as [`Self::code`] gives it, and `good` for 0.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.code().map_or(0, |c| c.0) == code)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest site name.
pub const MAX_SITE_LEN: usize = 64;

/// The name a verifier gives its site (a mail facility, a data centre): recorded with the first
/// sighting of each mailpiece, and shown when a copy turns up. 1 to 64 characters of
/// `[A-Za-z0-9._:/-]`. Shared, not copied: each sighting of a batch names its verifier's site.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Site(std::sync::Arc<str>);

impl Site {
    /// Parses a site name.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let ok = |b: u8| b.is_ascii_alphanumeric() || b"._:/-".contains(&b);
        if s.is_empty() || s.len() > MAX_SITE_LEN || !s.bytes().all(ok) {
            return Err(WireError::InvalidField {
                field: "site",
                reason: "1 to 64 characters of letters, digits and . _ : / -",
            });
        }
        Ok(Self(s.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_match_the_spec_example() {
        let m = Mailpiece {
            isn: Isn::parse("0401234567").unwrap(),
            subdomain: SubdomainId::parse("USPS/US").unwrap(),
            date: Date::parse("20261129").unwrap(),
            value: 65,
            count: 1,
            zip: Zip::normalize("06484").unwrap(),
        };
        assert_eq!(m.canonical_bytes(), b"0401234567|USPS/US|20261129|65|1|06484".to_vec());
    }

    #[test]
    fn canonical_numbers_are_written_as_display_writes_them() {
        let mut m = Mailpiece {
            isn: Isn::parse("A1").unwrap(),
            subdomain: SubdomainId::parse("EARTH/GB").unwrap(),
            date: Date::parse("20000101").unwrap(),
            value: 0,
            count: u32::MAX,
            zip: Zip::normalize("SW1A 1AA").unwrap(),
        };
        for (value, count) in [(0, u32::MAX), (9, 10), (1_000_000, 99), (u32::MAX, 0)] {
            (m.value, m.count) = (value, count);
            let text = format!("A1|EARTH/GB|20000101|{value}|{count}|SW1A1AA");
            assert_eq!(m.canonical_bytes(), text.into_bytes());
        }
        m.date = Date::parse("99991231").unwrap();
        assert!(m.canonical_bytes().starts_with(b"A1|EARTH/GB|99991231|"));
    }

    #[test]
    fn verdicts_have_names_and_codes() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::from_name(v.name()), Some(v));
            assert_eq!(v.code().is_none(), v == Verdict::Good);
            assert!(v.code().is_none_or(|c| c.0 / 1000 == 5), "{v}");
        }
    }

    #[test]
    fn site_names() {
        assert_eq!(Site::parse("CHI-NDC.3").unwrap().as_str(), "CHI-NDC.3");
        for bad in ["", "a b", "x\n", &"s".repeat(65), "é"] {
            assert!(Site::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_parse_hex_and_compare() {
        let t = Token::parse_hex("00112233445566AA").unwrap();
        assert_eq!(t.to_string(), "00112233445566AA");
        assert_eq!(Token::parse_hex("00112233445566aa").unwrap(), t);
        assert_ne!(Token::parse_hex("00112233445566AB").unwrap(), t);
        for bad in ["00112233445566A", "00112233445566AAB", "0011223344556G6A", "+0112233445566AA"]
        {
            assert!(Token::parse_hex(bad).is_err(), "{bad}");
        }
    }
}
