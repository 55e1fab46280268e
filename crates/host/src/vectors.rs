use postkey_secrets::vectors::{self, Value};
use postkey_wire::WireError;

/// The published token test vectors as the JSON document of `docs/test-vectors.json`:
/// `{"vectors": [...]}`, one vector per line, fields in their documented order.
pub fn test_vectors_json() -> Result<String, WireError> {
    let mut out = String::from("{\"vectors\": [\n");
    let mut all = vectors::all()?;
    let indicia = indicium_vectors(&all)?;
    all.extend(check_vectors()?);
    all.extend(indicia);
    for (i, v) in all.iter().enumerate() {
        out.push_str("  {");
        for (j, (name, value)) in v.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            out.push_str(&json_string(name));
            out.push_str(": ");
            match value {
                Value::Str(s) => out.push_str(&json_string(s)),
                Value::Int(n) => out.push_str(&n.to_string()),
            }
        }
        out.push('}');
        if i + 1 < all.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("]}\n");
    Ok(out)
}

/// Fields whose GF(37) check characters are published (docs/indicium.md §3): the examples of
/// protocol §6.5, one field of each kind, the longest field, and every symbol.
const CHECK_FIELDS: &[&str] = &[
    "0401234567",
    "USPS",
    "PK1",
    "US",
    "20261129",
    "65",
    "1",
    "06484",
    "2329ABC12CA06EF8",
    "0",
    "*",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*",
];

/// `{"kind": "check", "field", "check"}`: each field's three check characters. The last field
/// is longer than a field may be: its vector is left out, so every published one is valid.
fn check_vectors() -> Result<Vec<vectors::Vector>, WireError> {
    let mut out = Vec::new();
    for field in CHECK_FIELDS {
        let Ok(check) = postkey_indicium::check::check_characters(field) else { continue };
        let check = String::from_utf8_lossy(&check).into_owned();
        out.push(vec![
            ("kind", Value::Str("check".into())),
            ("field", Value::Str((*field).into())),
            ("check", Value::Str(check)),
        ]);
    }
    Ok(out)
}

/// `{"kind": "indicium", …}`: for each mailpiece the token vectors give a vendor (`VE`) and a
/// postal token of, its fields, canonical bytes, both tokens and the exact printed text
/// (docs/indicium.md §2).
fn indicium_vectors(all: &[vectors::Vector]) -> Result<Vec<vectors::Vector>, WireError> {
    let field = |v: &vectors::Vector, name: &str| {
        v.iter().find(|(n, _)| *n == name).map(|(_, value)| value.clone())
    };
    let text = |v: &vectors::Vector, name: &str| match field(v, name) {
        Some(Value::Str(s)) => Ok(s),
        _ => Err(WireError::InvalidField { field: "test vector", reason: "a field is missing" }),
    };
    let number = |v: &vectors::Vector, name: &str| match field(v, name) {
        Some(Value::Int(n)) => u32::try_from(n)
            .map_err(|_| WireError::InvalidField { field: "test vector", reason: "not 32-bit" }),
        _ => Err(WireError::InvalidField { field: "test vector", reason: "a field is missing" }),
    };
    let tokens: Vec<&vectors::Vector> =
        all.iter().filter(|v| field(v, "kind") == Some(Value::Str("token".into()))).collect();
    let mut out = Vec::new();
    for vendor in tokens.iter().filter(|v| field(v, "domain") == Some(Value::Str("VE".into()))) {
        let canonical = text(vendor, "canonical")?;
        let Some(postal) = tokens.iter().find(|p| {
            field(p, "domain") != Some(Value::Str("VE".into()))
                && field(p, "canonical") == Some(Value::Str(canonical.clone()))
        }) else {
            continue;
        };
        let mailpiece = postkey_wire::Mailpiece {
            isn: postkey_wire::Isn::parse(&text(vendor, "isn")?)?,
            subdomain: postkey_wire::SubdomainId::parse(&text(vendor, "subdomain")?)?,
            date: postkey_wire::Date::parse(&text(vendor, "date")?)?,
            value: number(vendor, "value")?,
            count: number(vendor, "count")?,
            zip: postkey_wire::Zip::parse(&text(vendor, "zip")?)?,
        };
        let indicium = postkey_indicium::Indicium {
            mailpiece,
            vendor: postkey_wire::Token::parse_hex(&text(vendor, "token")?)?,
            postal: postkey_wire::Token::parse_hex(&text(postal, "token")?)?,
        };
        let m = &indicium.mailpiece;
        out.push(vec![
            ("kind", Value::Str("indicium".into())),
            ("isn", Value::Str(m.isn.to_string())),
            ("subdomain", Value::Str(m.subdomain.to_string())),
            ("date", Value::Str(m.date.to_string())),
            ("value", Value::Int(u64::from(m.value))),
            ("count", Value::Int(u64::from(m.count))),
            ("zip", Value::Str(m.zip.to_string())),
            ("canonical", Value::Str(canonical)),
            ("vendor_token", Value::Str(indicium.vendor.to_string())),
            ("postal_token", Value::Str(indicium.postal.to_string())),
            ("text", Value::Str(indicium.to_text())),
        ]);
    }
    Ok(out)
}

fn json_string(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// The largest published-vectors file compared (the document is a few kilobytes).
const MAX_VECTORS_FILE: u64 = 1024 * 1024;

/// Whether the file at `path` holds exactly the vectors [`test_vectors_json`] computes. The file
/// is read bounded, and only if it is a regular file (a FIFO or a device never blocks).
pub fn vectors_file_is_current(path: &std::path::Path) -> Result<bool, crate::HostError> {
    let json = test_vectors_json()?;
    let on_disk = crate::home::read_argument_file(path, MAX_VECTORS_FILE)?;
    Ok(on_disk == json.as_bytes())
}

/// Writes the vectors [`test_vectors_json`] computes to `path` (its directory must exist).
/// The write is atomic (a reader sees the old file or the new one), and it replaces only a
/// regular file: a FIFO, a device or a symbolic link at `path` is refused, never opened or
/// followed.
pub fn write_vectors_file(path: &std::path::Path) -> Result<(), crate::HostError> {
    let json = test_vectors_json()?;
    crate::home::write_argument_file(path, json.as_bytes())
}
