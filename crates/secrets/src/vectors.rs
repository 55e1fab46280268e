//! The published token test vectors (`docs/test-vectors.json`), computed through the very
//! functions meters and Brass use, from fixed inputs. Postal operators check their own
//! implementations against them; `postkey test-vectors` regenerates the file and a test
//! requires it to be unchanged.

use postkey_crypto::{HpkeInfo, HpkeRecordType, sha256};
use postkey_wire::{
    Country, Date, DomainId, Isn, Mailpiece, MeterId, Period, SubdomainId, WireError, Zip,
};

use crate::{MasterKey, Registration};

/// A field value of a vector: JSON string or integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A JSON string.
    Str(String),
    /// A JSON integer.
    Int(u64),
}

/// One vector: `kind` first, then its fields in the documented order.
pub type Vector = Vec<(&'static str, Value)>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The fixed, published master key number `n`: SHA-256 of `postkey/test-vector/master-key/n`.
/// Test keys are public by construction; they never leave this module as a `MasterKey` of a
/// real meter.
fn test_key(n: u32) -> ([u8; 32], MasterKey) {
    let bytes = sha256(format!("postkey/test-vector/master-key/{n}").as_bytes());
    (bytes, MasterKey::from_bytes(bytes))
}

fn s(v: impl ToString) -> Value {
    Value::Str(v.to_string())
}

struct TokenCase {
    key: u32,
    domain: &'static str,
    isn: &'static str,
    subdomain: &'static str,
    date: &'static str,
    value: u32,
    count: u32,
    zip: &'static str,
}

const TOKEN_CASES: &[TokenCase] = &[
    // The example of protocol §6.5, postal token and vendor token over the same bytes.
    TokenCase {
        key: 1,
        domain: "USPS",
        isn: "0401234567",
        subdomain: "USPS/US",
        date: "20261129",
        value: 65,
        count: 1,
        zip: "06484",
    },
    TokenCase {
        key: 2,
        domain: "VE",
        isn: "0401234567",
        subdomain: "USPS/US",
        date: "20261129",
        value: 65,
        count: 1,
        zip: "06484",
    },
    // Value 0 and a 16-character ISN.
    TokenCase {
        key: 3,
        domain: "EARTH",
        isn: "DE00000000000001",
        subdomain: "EARTH/DE",
        date: "20260315",
        value: 0,
        count: 12,
        zip: "10115",
    },
    // A 10-character postal code and the largest value and count.
    TokenCase {
        key: 4,
        domain: "UKRM",
        isn: "RM1",
        subdomain: "UKRM/GB",
        date: "20270704",
        value: 4294967295,
        count: 4294967295,
        zip: "SW1A1AA123",
    },
    // The last day of December and the first of January: two periods, two token keys.
    TokenCase {
        key: 5,
        domain: "USPS",
        isn: "Z9",
        subdomain: "USPS/US",
        date: "20261231",
        value: 73,
        count: 999,
        zip: "1234567890",
    },
    TokenCase {
        key: 5,
        domain: "USPS",
        isn: "Z9",
        subdomain: "USPS/US",
        date: "20270101",
        value: 73,
        count: 1000,
        zip: "1234567890",
    },
];

/// Every published vector, in the order of the file.
pub fn all() -> Result<Vec<Vector>, WireError> {
    let mut out = Vec::new();
    token_keys(&mut out)?;
    tokens(&mut out)?;
    test_tokens(&mut out);
    registration_tokens(&mut out)?;
    hpke_infos(&mut out)?;
    Ok(out)
}

fn token_keys(out: &mut Vec<Vector>) -> Result<(), WireError> {
    let cases = [
        (1, "USPS", "0401234567", "202611"),
        (2, "VE", "0401234567", "202611"),
        (3, "EARTH", "DE00000000000001", "202612"),
        (4, "UKRM", "RM1", "202701"),
        (5, "USPS", "Z9", "202612"),
    ];
    for (n, domain, isn, period) in cases {
        let (raw, k) = test_key(n);
        let tk = k.token_key(&DomainId::parse(domain)?, &Isn::parse(isn)?, Period::parse(period)?);
        out.push(vec![
            ("kind", s("token_key")),
            ("master_key", Value::Str(hex(&raw))),
            ("domain", s(domain)),
            ("isn", s(isn)),
            ("period", s(period)),
            ("token_key", Value::Str(hex(tk.expose_secret()))),
        ]);
    }
    Ok(())
}

fn tokens(out: &mut Vec<Vector>) -> Result<(), WireError> {
    for c in TOKEN_CASES {
        let (raw, k) = test_key(c.key);
        let piece = Mailpiece {
            isn: Isn::parse(c.isn)?,
            subdomain: SubdomainId::parse(c.subdomain)?,
            date: Date::parse(c.date)?,
            value: c.value,
            count: c.count,
            zip: Zip::parse(c.zip)?,
        };
        let tk = k.token_key(&DomainId::parse(c.domain)?, &piece.isn, piece.date.period());
        let canonical = String::from_utf8_lossy(&piece.canonical_bytes()).into_owned();
        out.push(vec![
            ("kind", s("token")),
            ("master_key", Value::Str(hex(&raw))),
            ("domain", s(c.domain)),
            ("isn", s(c.isn)),
            ("subdomain", s(c.subdomain)),
            ("date", s(c.date)),
            ("value", Value::Int(c.value.into())),
            ("count", Value::Int(c.count.into())),
            ("zip", s(c.zip)),
            ("canonical", Value::Str(canonical)),
            ("token", s(tk.token(&piece))),
        ]);
    }
    Ok(())
}

fn test_tokens(out: &mut Vec<Vector>) {
    for n in [1, 2, 3, 4, 5] {
        let (raw, k) = test_key(n);
        out.push(vec![
            ("kind", s("test_tokens")),
            ("master_key", Value::Str(hex(&raw))),
            ("test_tokens", s(k.test_tokens())),
        ]);
    }
}

fn registration_tokens(out: &mut Vec<Vector>) -> Result<(), WireError> {
    let cases = [
        (1, "PB1234-000123", "0401234567", "US", "20261129"),
        (2, "PB1234-000123", "0401234567", "US", "20261129"),
        (3, "AB1-0000000001", "DE00000000000001", "DE", "20260101"),
        (4, "ZZ999999-9999999999", "RM1", "GB", "20271231"),
    ];
    for (n, meter, isn, country, date) in cases {
        let (raw, k) = test_key(n);
        let meter = MeterId::parse(meter)?;
        let isn = Isn::parse(isn)?;
        let country = Country::parse(country)?;
        let date = Date::parse(date)?;
        let token = k.registration_token(&Registration {
            meter: &meter,
            isn: &isn,
            country: &country,
            date,
        });
        out.push(vec![
            ("kind", s("registration_token")),
            ("master_key", Value::Str(hex(&raw))),
            ("product_code", s(meter.product_code())),
            ("msn", s(meter.msn())),
            ("isn", s(&isn)),
            ("country", s(&country)),
            ("date", s(date)),
            ("token", s(token)),
        ]);
    }
    Ok(())
}

fn hpke_infos(out: &mut Vec<Vector>) -> Result<(), WireError> {
    let cases = [
        (HpkeRecordType::Mi3, "USPS", 7, "BRASS:USPS"),
        (HpkeRecordType::Mi4, "VE", 1, "S00000001"),
        (HpkeRecordType::Mi5, "EARTH", 1000000, "PB1234-000123"),
        (HpkeRecordType::Mi9, "VE", 9007199254740991, "BRASS:VE"),
        (HpkeRecordType::Delivery, "USPS", 0, "B00000002"),
        (HpkeRecordType::TinExport, "USPS", 0, "T00000001"),
    ];
    for (record, domain, key_id, recipient) in cases {
        let info = HpkeInfo::new(record, domain, key_id, recipient)
            .map_err(|_| WireError::InvalidField { field: "HPKE info", reason: "not printable" })?;
        out.push(vec![
            ("kind", s("hpke_info")),
            ("record_type", s(record.name())),
            ("domain", s(domain)),
            ("key_id", Value::Int(key_id)),
            ("recipient", s(recipient)),
            ("info", Value::Str(hex(&info.to_bytes()))),
        ]);
    }
    Ok(())
}
