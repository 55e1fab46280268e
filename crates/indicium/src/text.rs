//! The indicium's text form: one line of ten check-coded fields (docs/indicium.md).
//!
//! ```text
//!   PK1ccc ISNccc DOMAINccc COUNTRYccc DATEccc VALUEccc COUNTccc ZIPccc VENDORccc POSTALccc
//!
//!   parse: bound -> split on whitespace -> tag (check code, must be PK1) -> count = 10
//!          -> each field: check code (at most one repair) -> its wire type
//! ```
//!
//! The parser takes what a scanner or OCR gives: any run of ASCII whitespace separates fields,
//! so the printed lines of [`Indicium::lines`] read back as well as [`Indicium::to_text`], and
//! lower case is accepted. Each field is repaired by its own check characters, never by trying
//! which variant makes a token verify.

use core::fmt;

use postkey_wire::{Country, Date, DomainId, Isn, Mailpiece, SubdomainId, Token, WireError, Zip};

use crate::check::{self, CheckError, Repair};

/// The format tag, the first field of every indicium of this version.
pub const TAG: &str = "PK1";

/// The longest text [`parse`] looks at, in bytes. A full indicium is at most 138 bytes; the rest
/// leaves room for the whitespace OCR adds.
pub const MAX_TEXT_LEN: usize = 512;

/// The fields of a `PK1` indicium.
pub const FIELD_COUNT: usize = 10;

/// A field of the text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The format tag, `PK1`.
    Tag,
    /// The meter's indicia serial number.
    Isn,
    /// The domain of the meter's postal sub-domain.
    Domain,
    /// The country of the meter's postal sub-domain.
    Country,
    /// The mailing date, `YYYYMMDD`.
    Date,
    /// The postage in the smallest currency unit.
    Value,
    /// The meter's piece count.
    Count,
    /// The origin postal code, normalized.
    Zip,
    /// The token under the vendor's key.
    VendorToken,
    /// The token under the postal operator's key.
    PostalToken,
}

impl Field {
    /// Every field, in printed order.
    pub const ALL: [Field; FIELD_COUNT] = [
        Self::Tag,
        Self::Isn,
        Self::Domain,
        Self::Country,
        Self::Date,
        Self::Value,
        Self::Count,
        Self::Zip,
        Self::VendorToken,
        Self::PostalToken,
    ];

    /// The field's name in messages and docs/indicium.md.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tag => "tag",
            Self::Isn => "ISN",
            Self::Domain => "domain",
            Self::Country => "country",
            Self::Date => "date",
            Self::Value => "value",
            Self::Count => "count",
            Self::Zip => "ZIP",
            Self::VendorToken => "vendor token",
            Self::PostalToken => "postal token",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Why a text was not accepted as an indicium. All of these are the input's fault; none echoes
/// more than a field's bounded, validated characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is longer than [`MAX_TEXT_LEN`]; nothing of it was read.
    #[error("text of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// Bytes given.
        len: usize,
        /// [`MAX_TEXT_LEN`].
        max: usize,
    },
    /// Fewer fields than the format has (none at all for blank text).
    #[error("truncated: {found} of {FIELD_COUNT} fields")]
    Truncated {
        /// Fields found.
        found: usize,
    },
    /// More fields than the format has.
    #[error("trailing text: {found} fields where {FIELD_COUNT} are expected")]
    Trailing {
        /// Fields found.
        found: usize,
    },
    /// A field's check characters refuse it: bad length, a character outside the alphabet, or
    /// more than one wrong character.
    #[error("{field}: {source}")]
    Check {
        /// The field.
        field: Field,
        /// What the check code found.
        #[source]
        source: CheckError,
    },
    /// The tag reads correctly but names another format version.
    #[error("unknown format tag {found} (this build reads {TAG})")]
    UnknownVersion {
        /// The tag read: at most 33 characters of `0-9 A-Z *`.
        found: String,
    },
    /// A field passes its check characters but is not a valid value of its type.
    #[error("{field}: {reason}{}", if *.repaired { " (after repairing one character)" } else { "" })]
    Invalid {
        /// The field.
        field: Field,
        /// What is wrong, without echoing the value.
        reason: &'static str,
        /// Whether the check code had repaired a character of it: a field that only a repair
        /// made invalid was probably misread in more than one place.
        repaired: bool,
    },
}

impl ParseError {
    /// The field at fault, for errors that concern one.
    pub fn field(&self) -> Option<Field> {
        match self {
            Self::Check { field, .. } | Self::Invalid { field, .. } => Some(*field),
            Self::UnknownVersion { .. } => Some(Field::Tag),
            Self::TooLong { .. } | Self::Truncated { .. } | Self::Trailing { .. } => None,
        }
    }
}

/// What a meter prints: the mailpiece and its two tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicium {
    /// The fields both tokens cover.
    pub mailpiece: Mailpiece,
    /// The token under the vendor's key.
    pub vendor: Token,
    /// The token under the postal operator's key.
    pub postal: Token,
}

impl Indicium {
    /// The text form: ten check-coded fields separated by single spaces.
    pub fn to_text(&self) -> String {
        self.lines().join(" ")
    }

    /// The human-readable form printed beside the symbol: the text form broken at field
    /// boundaries into three lines, tag ISN DOMAIN COUNTRY / DATE VALUE COUNT ZIP / VENDOR
    /// POSTAL. Joined with spaces they are [`Self::to_text`]; [`parse`] reads them joined with
    /// line breaks too.
    pub fn lines(&self) -> Vec<String> {
        let fields = self.fields().map(|f| checked(&f));
        vec![fields[0..4].join(" "), fields[4..8].join(" "), fields[8..10].join(" ")]
    }

    /// The field values in printed order, without check characters.
    fn fields(&self) -> [String; FIELD_COUNT] {
        let m = &self.mailpiece;
        [
            TAG.to_owned(),
            m.isn.to_string(),
            m.subdomain.domain().to_string(),
            m.subdomain.country().to_string(),
            m.date.to_string(),
            m.value.to_string(),
            m.count.to_string(),
            m.zip.to_string(),
            self.vendor.to_string(),
            self.postal.to_string(),
        ]
    }
}

/// `field` with its check characters.
#[allow(clippy::expect_used)]
fn checked(field: &str) -> String {
    // Infallible: every field comes from a validated type, 1 to 16 characters of [0-9A-Z] (the
    // longest is a token), well within the code's 1 to 33 symbols of [0-9A-Z*];
    // `fields_fit_the_check_code` exercises the longest value of each.
    check::encode(field).expect("a validated field is 1 to 16 characters of [0-9A-Z]")
}

/// One repair the parser made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRepair {
    /// The field repaired.
    pub field: Field,
    /// The character replaced; its position counts within the field's printed word.
    pub repair: Repair,
}

impl fmt::Display for FieldRepair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.repair)
    }
}

/// A text read as an indicium, with every repair the check characters made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The indicium.
    pub indicium: Indicium,
    /// The repairs, in field order; at most one per field.
    pub repairs: Vec<FieldRepair>,
}

/// Reads the text form (docs/indicium.md): at most [`MAX_TEXT_LEN`] bytes, fields separated by
/// any run of ASCII whitespace, any case.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(ParseError::TooLong { len: text.len(), max: MAX_TEXT_LEN });
    }
    let mut words = text.split_ascii_whitespace();
    let mut repairs = Vec::new();

    // The tag first: another version may have other fields, so nothing else is judged before it.
    let tag = words.next().ok_or(ParseError::Truncated { found: 0 })?;
    let tag = decode(Field::Tag, tag, &mut repairs)?;
    if tag.value != TAG {
        return Err(ParseError::UnknownVersion { found: tag.value });
    }

    // At most MAX_TEXT_LEN / 2 words: the text is bounded.
    let words: Vec<&str> = words.collect();
    let found = words.len() + 1;
    let Ok(words) = <[&str; FIELD_COUNT - 1]>::try_from(words) else {
        return Err(if found < FIELD_COUNT {
            ParseError::Truncated { found }
        } else {
            ParseError::Trailing { found }
        });
    };
    let [isn, domain, country, date, value, count, zip, vendor, postal] = words;
    let mut d = |field, word| decode(field, word, &mut repairs);
    let (isn, domain, country, date) = (
        d(Field::Isn, isn)?,
        d(Field::Domain, domain)?,
        d(Field::Country, country)?,
        d(Field::Date, date)?,
    );
    let (value, count, zip) =
        (d(Field::Value, value)?, d(Field::Count, count)?, d(Field::Zip, zip)?);
    let (vendor, postal) = (d(Field::VendorToken, vendor)?, d(Field::PostalToken, postal)?);

    let mailpiece = Mailpiece {
        isn: isn.parse(Isn::parse)?,
        subdomain: SubdomainId::new(domain.parse(DomainId::parse)?, country.parse(Country::parse)?),
        date: date.parse(Date::parse)?,
        value: value.parse_with(decimal)?,
        count: count.parse_with(decimal)?,
        zip: zip.parse(Zip::parse)?,
    };
    let indicium = Indicium {
        mailpiece,
        vendor: vendor.parse(Token::parse_hex)?,
        postal: postal.parse(Token::parse_hex)?,
    };
    Ok(Parsed { indicium, repairs })
}

/// A field that passed its check characters, waiting for its type.
struct Checked {
    field: Field,
    value: String,
    repaired: bool,
}

impl Checked {
    fn parse<T>(self, parse: fn(&str) -> Result<T, WireError>) -> Result<T, ParseError> {
        self.parse_with(|s| parse(s).map_err(reason))
    }

    fn parse_with<T>(
        self,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<T, ParseError> {
        parse(&self.value).map_err(|reason| ParseError::Invalid {
            field: self.field,
            reason,
            repaired: self.repaired,
        })
    }
}

fn decode(field: Field, word: &str, repairs: &mut Vec<FieldRepair>) -> Result<Checked, ParseError> {
    let decoded = check::decode(word).map_err(|source| ParseError::Check { field, source })?;
    if let Some(repair) = decoded.repair {
        repairs.push(FieldRepair { field, repair });
    }
    Ok(Checked { field, value: decoded.field, repaired: decoded.repair.is_some() })
}

/// VALUE and COUNT: unsigned 32-bit, base 10, no sign, no leading zeros (`0` alone for zero), so
/// that a value has one printed form, the one the tokens cover.
fn decimal(s: &str) -> Result<u32, &'static str> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be decimal digits");
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("must not have leading zeros");
    }
    s.parse().map_err(|_| "exceeds 4294967295")
}

/// The wire types' reasons name no value, so they can be passed on as they are.
fn reason(e: WireError) -> &'static str {
    match e {
        WireError::InvalidField { reason, .. } => reason,
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests;
