//! An independent check of `docs/test-vectors.json`: every vector is recomputed here straight
//! from the formulas of protocol §4 with the primitive crates, not through the functions that wrote
//! the file. A formula implemented wrongly in both the meter and Brass would pass their own
//! round trips; it cannot pass this.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use cmac::{Cmac, Mac};
use hkdf::Hkdf;
use sha2::Sha256;

fn unhex(s: &str) -> Vec<u8> {
    assert!(
        s.len().is_multiple_of(2)
            && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn key(v: &serde_json::Value) -> [u8; 32] {
    unhex(v["master_key"].as_str().unwrap()).try_into().unwrap()
}

fn s<'a>(v: &'a serde_json::Value, f: &str) -> &'a str {
    v[f].as_str().unwrap_or_else(|| panic!("{f} missing in {v}"))
}

fn token_key(k: &[u8; 32], domain: &str, isn: &str, period: &str) -> [u8; 32] {
    let info = [domain.as_bytes(), b"\0", isn.as_bytes(), b"\0", period.as_bytes()].concat();
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"postkey/token/v1"), k).expand(&info, &mut out).unwrap();
    out
}

fn cmac8(k: &[u8; 32], m: &[u8]) -> String {
    let mut mac = <Cmac<Aes256> as KeyInit>::new(k.into());
    mac.update(m);
    hex(&mac.finalize().into_bytes()[..8])
}

/// A vector's canonical mailpiece bytes, made from its fields (protocol §6.5) and checked
/// against the ones it publishes.
fn canonical_of(v: &serde_json::Value) -> String {
    let canonical = format!(
        "{}|{}|{}|{}|{}|{}",
        s(v, "isn"),
        s(v, "subdomain"),
        s(v, "date"),
        v["value"].as_u64().unwrap(),
        v["count"].as_u64().unwrap(),
        s(v, "zip")
    );
    assert_eq!(canonical, s(v, "canonical"), "{v}");
    canonical
}

/// The three check characters of `field`, written out from the definition (protocol §6.5):
/// symbols 0-9, A-Z, * as 0..36; the remainder of m(x)·x³ divided by
/// g(x) = x³ + 23x² + 19x + 10 over GF(37), negated, highest degree first.
fn gf37_check(field: &str) -> String {
    const SYMBOLS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
    let value = |c: u8| SYMBOLS.iter().position(|&x| x == c).unwrap() as i64;
    let mut word: Vec<i64> = field.bytes().map(value).collect();
    word.extend([0, 0, 0]);
    let g = [1i64, 23, 19, 10];
    for i in 0..field.len() {
        let lead = word[i];
        for (j, gj) in g.iter().enumerate() {
            word[i + j] = (word[i + j] - lead * gj).rem_euclid(37);
        }
    }
    word[field.len()..].iter().map(|&r| SYMBOLS[((37 - r) % 37) as usize] as char).collect()
}

#[test]
fn every_published_vector_matches_the_spec_formulas() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/test-vectors.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for v in doc["vectors"].as_array().unwrap() {
        let kind = s(v, "kind");
        match kind {
            "token_key" => {
                let tk = token_key(&key(v), s(v, "domain"), s(v, "isn"), s(v, "period"));
                assert_eq!(hex(&tk), s(v, "token_key"), "{v}");
            }
            "token" => {
                let canonical = canonical_of(v);
                let tk = token_key(&key(v), s(v, "domain"), s(v, "isn"), &s(v, "date")[..6]);
                assert_eq!(cmac8(&tk, canonical.as_bytes()), s(v, "token"), "{v}");
            }
            "test_tokens" => {
                let mut block =
                    <[u8; 16]>::try_from(unhex("0123456789ABCDEFFEDCBA9876543210")).unwrap().into();
                Aes256::new(&key(v).into()).encrypt_block(&mut block);
                assert_eq!(hex(&<[u8; 16]>::from(block)), s(v, "test_tokens"), "{v}");
            }
            "registration_token" => {
                let fields = ["product_code", "msn", "isn", "country", "date"].map(|f| s(v, f));
                let mut m = b"postkey/registration/v1".to_vec();
                for f in fields {
                    m.push(0);
                    m.extend_from_slice(f.as_bytes());
                }
                assert_eq!(cmac8(&key(v), &m), s(v, "token"), "{v}");
            }
            "hpke_info" => {
                let id = v["key_id"].as_u64().unwrap().to_string();
                let parts = [s(v, "record_type"), s(v, "domain"), &id, s(v, "recipient")];
                let mut info = b"postkey/hpke/v1".to_vec();
                for p in parts {
                    info.push(0);
                    info.extend_from_slice(p.as_bytes());
                }
                assert_eq!(hex(&info), s(v, "info"), "{v}");
            }
            "check" => assert_eq!(gf37_check(s(v, "field")), s(v, "check"), "{v}"),
            "indicium" => {
                canonical_of(v);
                let (domain, country) = s(v, "subdomain").split_once('/').unwrap();
                let (value, count) = (v["value"].to_string(), v["count"].to_string());
                let fields = [
                    "PK1",
                    s(v, "isn"),
                    domain,
                    country,
                    s(v, "date"),
                    &value,
                    &count,
                    s(v, "zip"),
                    s(v, "vendor_token"),
                    s(v, "postal_token"),
                ];
                let text: Vec<String> =
                    fields.iter().map(|f| format!("{f}{}", gf37_check(f))).collect();
                assert_eq!(text.join(" "), s(v, "text"), "{v}");
                // Both tokens are published token vectors of these bytes.
                for t in ["vendor_token", "postal_token"] {
                    assert!(
                        doc["vectors"].as_array().unwrap().iter().any(|w| w["kind"] == "token"
                            && w["canonical"] == v["canonical"]
                            && w["token"] == v[t]),
                        "{v}"
                    );
                }
            }
            other => panic!("unknown kind {other}"),
        }
        *checked.entry(kind.to_owned()).or_default() += 1;
    }
    for kind in ["token_key", "token", "test_tokens", "registration_token", "hpke_info"] {
        assert!(checked.get(kind).copied().unwrap_or(0) >= 4, "{kind}: {checked:?}");
    }
}

#[test]
fn the_spec_example_mailpiece_is_published() {
    // The check code written out here gives protocol §6.5's own examples.
    assert_eq!(gf37_check("0401234567"), "1SL");
    assert_eq!(gf37_check("USPS"), "1NP");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/test-vectors.json");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("\"canonical\": \"0401234567|USPS/US|20261129|65|1|06484\""));
    assert!(text.contains("\"value\": 0,"), "an edge case with value 0");
    assert!(text.contains("\"date\": \"20261231\"") && text.contains("\"date\": \"20270101\""));
}
