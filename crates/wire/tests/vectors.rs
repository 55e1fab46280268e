//! Known-good and known-bad encodings kept as files under `tests/vectors/` (STYLE habit 6), run by
//! one table-driven test per file.
//!
//! A good case holds the hex and the value: the value must encode to exactly that hex and the hex
//! must decode to exactly that value, so any change in how a record is written fails here rather
//! than in a peer that still writes the old form. A bad case holds the hex and the name of the
//! `WireError` variant the decoder must return. The files were generated once from the code and
//! are edited by hand since; never regenerate them to make this test pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use core::fmt::Debug;
use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{TestBody, TestSigner, check_codec, error_name, hex, unhex};
use postkey_crypto::{Signer as _, VerifyingKey};
use postkey_wire::{
    BoxId, Context, Country, Date, DomainId, Header, Isn, KeyId, Message, MeterId, Msn,
    ProductCode, RecordType, RegistrationToken, Role, Sender, SharePurpose, ShareSetId,
    StateVersion, SubdomainId, TestTokens, Timestamp, Token, Unverified, WireError, Zip, codec,
    sign,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

fn load(file: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Runs `check` on every case of `file` and fails once, listing every case that failed.
fn run(file: &str, mut check: impl FnMut(&Value, &[u8]) -> Result<(), String>) {
    let vectors = load(file);
    let cases = vectors["cases"].as_array().unwrap_or_else(|| panic!("{file}: no cases"));
    assert!(!cases.is_empty(), "{file}: no cases");
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_else(|| panic!("{file}: a case has no name"));
        assert!(names.insert(name), "{file}: two cases are named {name:?}");
        let bytes = unhex(case["hex"].as_str().unwrap_or_else(|| panic!("{name}: no hex")));
        if let Err(why) = check(case, &bytes) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{file}:\n  {}", failures.join("\n  "));
}

/// Judges one case: a good case must decode to the value it names and that value must encode to
/// exactly the case's bytes; a bad case must be refused with the error variant it names.
fn judge<T: PartialEq + Debug>(
    case: &Value,
    bytes: &[u8],
    decoded: Result<T, WireError>,
    value_of: impl Fn(&Value) -> T,
    encode: impl Fn(&T) -> Vec<u8>,
) -> Result<(), String> {
    match (case.get("value"), case.get("error").and_then(Value::as_str)) {
        (Some(value), None) => {
            let want = value_of(value);
            let encoded = encode(&want);
            if encoded != bytes {
                return Err(format!("the value now encodes as {}", hex(&encoded)));
            }
            match decoded {
                Ok(got) if got == want => Ok(()),
                Ok(got) => Err(format!("decodes to {got:?}, not {want:?}")),
                Err(e) => Err(format!("refused with {e:?}")),
            }
        }
        (None, Some(name)) => match decoded {
            Ok(got) => Err(format!("accepted as {got:?}, want {name}")),
            Err(e) if error_name(&e) == name => Ok(()),
            Err(e) => Err(format!("refused with {e:?}, want {name}")),
        },
        _ => Err("a case needs exactly one of `value` and `error`".into()),
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string"))
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not an unsigned integer"))
}

fn optional<T>(v: &Value, f: impl Fn(&Value) -> T) -> Option<T> {
    if v.is_null() { None } else { Some(f(v)) }
}

/// A sender, written `{"box": ID}`, `"blank"`, `{"meter": ID}` or `{"role": NAME}`.
fn sender_of(v: &Value) -> Sender {
    if v == "blank" {
        return Sender::BlankBox;
    }
    if let Some(id) = v.get("box") {
        return Sender::Box(BoxId::parse(text(id)).unwrap());
    }
    if let Some(id) = v.get("meter") {
        return Sender::Meter(MeterId::parse(text(id)).unwrap());
    }
    let role = match v.get("role").map(text) {
        Some("KMC") => Role::Kmc,
        Some("KDC") => Role::Kdc,
        Some("PSR") => Role::Psr,
        Some("CAPTURE") => Role::DataCapture,
        Some("AUDITOR") => Role::Auditor,
        _ => panic!("{v} is not a sender"),
    };
    Sender::Role(role)
}

fn context_of(v: &Value) -> Context {
    Context {
        domain: DomainId::parse(text(&v["domain"])).unwrap(),
        sender: sender_of(&v["sender"]),
        meter_id: optional(&v["meter_id"], |m| MeterId::parse(text(m)).unwrap()),
        key_id: optional(&v["key_id"], |k| KeyId::new(number(k)).unwrap()),
        state_version: optional(&v["state_version"], |s| StateVersion(number(s))),
        timestamp: Timestamp::from_unix_micros(number(&v["timestamp"])),
    }
}

fn header_of(v: &Value) -> Header {
    let Context { domain, sender, meter_id, key_id, state_version, timestamp } = context_of(v);
    Header {
        record_type: RecordType(number(&v["record_type"]).try_into().unwrap()),
        version: number(&v["version"]).try_into().unwrap(),
        domain,
        sender,
        meter_id,
        key_id,
        state_version,
        timestamp,
    }
}

fn test_body_of(v: &Value) -> TestBody {
    TestBody {
        count: number(&v["count"]).try_into().unwrap(),
        label: optional(&v["label"], |l| text(l).to_owned()),
        payload: unhex(text(&v["payload"])),
        meter: optional(&v["meter"], |m| MeterId::parse(text(m)).unwrap()),
    }
}

/// A message of [`TestBody`], written `{"header": {...}, "body": {...}}`; the header's record
/// type and version must be the body's, since [`Message::new`] takes them from the body's type.
fn message_of(v: &Value) -> Message<TestBody> {
    let message = Message::new(context_of(&v["header"]), test_body_of(&v["body"]));
    assert_eq!(message.header(), &header_of(&v["header"]), "header type or version");
    message
}

fn key_of(v: &Value) -> VerifyingKey {
    VerifyingKey::from_bytes(&unhex(text(v)).try_into().unwrap()).unwrap()
}

#[test]
fn every_vector_file_has_a_test() {
    let files: BTreeSet<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let tested: BTreeSet<String> = ["envelope.json", "header.json", "ids.json", "message.json"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(files, tested, "add a test for each new vector file");
}

#[test]
fn id_vectors() {
    run("ids.json", |case, bytes| {
        /// Dispatches on the case's type name: types written as text, then as hex, then the rest.
        macro_rules! dispatch {
            ($($ty:ident),*; $($hex_ty:ident),*) => {
                match text(&case["type"]) {
                    $(stringify!($ty) => judge(
                        case, bytes, check_codec::<$ty>(bytes),
                        |v| $ty::parse(text(v)).unwrap(), codec::to_bytes,
                    ),)*
                    $(stringify!($hex_ty) => judge(
                        case, bytes, check_codec::<$hex_ty>(bytes),
                        |v| $hex_ty::parse_hex(text(v)).unwrap(), codec::to_bytes,
                    ),)*
                    "SharePurpose" => judge(
                        case, bytes, check_codec::<SharePurpose>(bytes),
                        |v| match text(v) {
                            "operation-combination" => SharePurpose::OperationCombination,
                            "domain-key-set" => SharePurpose::DomainKeySet,
                            other => panic!("no share purpose {other:?}"),
                        },
                        codec::to_bytes,
                    ),
                    "KeyId" => judge(
                        case, bytes, check_codec::<KeyId>(bytes),
                        |v| KeyId::new(number(v)).unwrap(), codec::to_bytes,
                    ),
                    "StateVersion" => judge(
                        case, bytes, check_codec::<StateVersion>(bytes),
                        |v| StateVersion(number(v)), codec::to_bytes,
                    ),
                    "Timestamp" => judge(
                        case, bytes, check_codec::<Timestamp>(bytes),
                        |v| Timestamp::from_unix_micros(number(v)), codec::to_bytes,
                    ),
                    "RecordType" => judge(
                        case, bytes, check_codec::<RecordType>(bytes),
                        |v| RecordType(number(v).try_into().unwrap()), codec::to_bytes,
                    ),
                    "Sender" => judge(
                        case, bytes, check_codec::<Sender>(bytes), sender_of, codec::to_bytes,
                    ),
                    other => Err(format!("no decoder for type {other:?}")),
                }
            };
        }
        dispatch!(
            BoxId, DomainId, Country, SubdomainId, ProductCode, Msn, MeterId, Isn, Zip, Date;
            Token, TestTokens, RegistrationToken, ShareSetId
        )
    });
}

#[test]
fn header_vectors() {
    run("header.json", |case, bytes| {
        judge(case, bytes, check_codec::<Header>(bytes), header_of, codec::to_bytes)
    });
}

#[test]
fn message_vectors() {
    run("message.json", |case, bytes| {
        let decoded = Message::<TestBody>::from_bytes(bytes);
        judge(case, bytes, decoded, message_of, Message::to_bytes)
    });
}

#[test]
fn envelope_vectors() {
    let vectors = load("envelope.json");
    let signer = TestSigner::from_secret(&unhex(text(&vectors["secret_key"])));
    let public_key = key_of(&vectors["public_key"]);
    assert_eq!(signer.verifying_key(), public_key, "secret_key and public_key do not match");
    run("envelope.json", |case, bytes| {
        let key = case.get("public_key").map_or(public_key, key_of);
        let decoded = Unverified::<TestBody>::from_bytes(bytes).and_then(|u| u.verify(&key)).map(
            |verified| {
                assert_eq!(
                    verified.as_bytes(),
                    bytes,
                    "a verified record keeps the bytes received"
                );
                verified.into_message()
            },
        );
        // Ed25519 signatures are deterministic, so signing the value again gives the same bytes.
        judge(case, bytes, decoded, message_of, |m| sign(m.clone(), &signer).as_bytes().to_vec())
    });
}

#[test]
fn vector_helpers_reject_what_they_should() {
    // The table-driven tests can only fail if `judge` can: check it on a case of each kind.
    let good = serde_json::json!({ "value": "VE" });
    let bad = serde_json::json!({ "error": "Malformed" });
    let ve = codec::to_bytes(&DomainId::parse("VE").unwrap());
    let domain = |v: &Value| DomainId::parse(text(v)).unwrap();
    assert!(judge(&good, &ve, check_codec::<DomainId>(&ve), domain, codec::to_bytes).is_ok());
    assert!(judge(&bad, &ve, check_codec::<DomainId>(&ve), domain, codec::to_bytes).is_err());
    let trailing = [&ve[..], &[0]].concat();
    let got = check_codec::<DomainId>(&trailing);
    assert!(judge(&good, &trailing, got.clone(), domain, codec::to_bytes).is_err());
    assert!(
        judge(&bad, &trailing, got, domain, codec::to_bytes).is_err(),
        "Trailing is not Malformed"
    );
}
