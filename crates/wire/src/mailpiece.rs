//! What a meter prints and a verifier checks: the canonical mailpiece bytes of protocol §6.5 and the
//! tokens computed over them. Tokens are public once printed; they compare in constant time all
//! the same, so that a verifier's timing never tells how many leading bytes of a forgery matched.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::{Date, Isn, SubdomainId, WireError, Zip};

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
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.isn, self.subdomain, self.date, self.value, self.count, self.zip
        )
        .into_bytes()
    }
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
