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
use postkey_crypto::{Fingerprint, HpkeCiphertext, HpkePublicKey, Signer as _, VerifyingKey};
use postkey_wire::{
    Aborted, BadKey, BlankOffer, Body, BoxId, BoxKeys, Certificate, CommandCode, ConfigTables,
    Context, Country, Date, Delivery, DomainBundle, DomainId, DomainKeySetCertificate, DomainKind,
    DomainPublicKeys, GenerateKey, Header, IdRange, InstallConfirmed, InstallationId, Installed,
    InstalledKeyRecord, Isn, KeyForMeter, KeyForSteel, KeyId, KeyRequest, Kit, LastKeyId, Message,
    MeterHello, MeterId, MeterTestTokens, Msn, NewKeyRecord, Nonce, ProcessRecord, ProductCode,
    RecordType, RegistrationToken, Role, Sender, SetId, SharePurpose, ShareRef, ShareSetId,
    StateAttestation, StateVersion, SubdomainId, TableUpdate, TestTokens, Timestamp, Token,
    Transcript, TrustAnchors, Unverified, WireError, Zip, codec, peek_header, sign,
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
    // command.json is run by `command_vectors` in tests/command.rs, beside the box protocol.
    let tested: BTreeSet<String> = [
        "command.json",
        "envelope.json",
        "header.json",
        "ids.json",
        "message.json",
        "records.json",
    ]
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

// ---- records.json: the record bodies of the box lifecycle and of installation. ----

fn array(v: &Value) -> &[Value] {
    v.as_array().unwrap_or_else(|| panic!("{v} is not an array"))
}

fn hex_array<const N: usize>(v: &Value) -> [u8; N] {
    unhex(text(v)).try_into().unwrap_or_else(|_| panic!("{v} is not {N} bytes of hex"))
}

fn box_of(v: &Value) -> BoxId {
    BoxId::parse(text(v)).unwrap()
}

fn domain_of(v: &Value) -> DomainId {
    DomainId::parse(text(v)).unwrap()
}

fn subdomains_of(v: &Value) -> Vec<SubdomainId> {
    array(v).iter().map(|s| SubdomainId::parse(text(s)).unwrap()).collect()
}

fn hpke_key_of(v: &Value) -> HpkePublicKey {
    HpkePublicKey::from_bytes(hex_array(v))
}

/// `{"enc": hex, "ct": hex}`.
fn sealed_of(v: &Value) -> HpkeCiphertext {
    HpkeCiphertext::from_parts(hex_array(&v["enc"]), unhex(text(&v["ct"]))).unwrap()
}

fn test_tokens_of(v: &Value) -> TestTokens {
    TestTokens::parse_hex(text(v)).unwrap()
}

fn domain_kind_of(v: &Value) -> DomainKind {
    let kinds = [DomainKind::Admin, DomainKind::Vendor, DomainKind::Postal, DomainKind::Earth];
    kinds.into_iter().find(|k| k.name() == text(v)).unwrap_or_else(|| panic!("no kind {v}"))
}

fn public_keys_of(v: &Value) -> DomainPublicKeys {
    DomainPublicKeys {
        oak_auth: key_of(&v["oak_auth"]),
        steel_auth: key_of(&v["steel_auth"]),
        brass_conf: hpke_key_of(&v["brass_conf"]),
        brass_auth: key_of(&v["brass_auth"]),
        audit: optional(&v["audit"], key_of),
    }
}

fn process_of(v: &Value) -> ProcessRecord {
    ProcessRecord {
        box_id: box_of(&v["box_id"]),
        domain: domain_of(&v["domain"]),
        subdomains: subdomains_of(&v["subdomains"]),
    }
}

fn tables_of(v: &Value) -> ConfigTables {
    let code = |c: &Value| u16::try_from(number(c)).unwrap();
    ConfigTables {
        commands: array(&v["commands"]).iter().map(|c| CommandCode(code(c))).collect(),
        domains: array(&v["domains"]).iter().map(domain_of).collect(),
        record_types: array(&v["record_types"]).iter().map(|c| RecordType(code(c))).collect(),
    }
}

fn trust_anchors_of(v: &Value) -> TrustAnchors {
    TrustAnchors {
        manufacturing: key_of(&v["manufacturing"]),
        oak: key_of(&v["oak"]),
        steel: key_of(&v["steel"]),
        brass: key_of(&v["brass"]),
        tin: key_of(&v["tin"]),
    }
}

fn blank_offer_of(v: &Value) -> BlankOffer {
    BlankOffer {
        nonce: Nonce(hex_array(&v["nonce"])),
        anchors: Fingerprint(hex_array(&v["anchors"])),
    }
}

fn set_id_of(v: &Value) -> SetId {
    SetId {
        nonce: Nonce(hex_array(&v["nonce"])),
        new_id: box_of(&v["new_id"]),
        issuer: box_of(&v["issuer"]),
        installation: InstallationId(hex_array(&v["installation"])),
    }
}

fn box_keys_of(v: &Value) -> BoxKeys {
    BoxKeys {
        nonce: Nonce(hex_array(&v["nonce"])),
        box_id: box_of(&v["box_id"]),
        identity: key_of(&v["identity"]),
        confidentiality: hpke_key_of(&v["confidentiality"]),
    }
}

fn certificate_of(v: &Value) -> Certificate {
    Certificate {
        box_id: box_of(&v["box_id"]),
        identity: key_of(&v["identity"]),
        confidentiality: hpke_key_of(&v["confidentiality"]),
        issuer: box_of(&v["issuer"]),
        issued: Timestamp::from_unix_micros(number(&v["issued"])),
    }
}

fn domain_bundle_of(v: &Value) -> DomainBundle {
    DomainBundle {
        domain: domain_of(&v["domain"]),
        kind: domain_kind_of(&v["kind"]),
        subdomains: subdomains_of(&v["subdomains"]),
        public: public_keys_of(&v["public"]),
        sealed: sealed_of(&v["sealed"]),
    }
}

fn delivery_of(v: &Value) -> Delivery {
    Delivery {
        recipient: box_of(&v["recipient"]),
        process: process_of(&v["process"]),
        public: public_keys_of(&v["public"]),
        sealed: sealed_of(&v["sealed"]),
        kind: domain_kind_of(&v["kind"]),
    }
}

fn id_range_of(r: &Value) -> IdRange {
    IdRange {
        box_type: number(&r["box_type"]).try_into().unwrap(),
        first: number(&r["first"]).try_into().unwrap(),
        last: number(&r["last"]).try_into().unwrap(),
    }
}

fn kit_of(v: &Value) -> Kit {
    Kit {
        recipient: box_of(&v["recipient"]),
        ranges: array(&v["ranges"]).iter().map(id_range_of).collect(),
        sealed: sealed_of(&v["sealed"]),
    }
}

fn table_update_of(v: &Value) -> TableUpdate {
    TableUpdate {
        recipient: box_of(&v["recipient"]),
        sequence: number(&v["sequence"]),
        tables: tables_of(&v["tables"]),
    }
}

fn state_attestation_of(v: &Value) -> StateAttestation {
    StateAttestation {
        nonce: Nonce(hex_array(&v["nonce"])),
        box_id: box_of(&v["box_id"]),
        version: StateVersion(number(&v["version"])),
        installation: InstallationId(hex_array(&v["installation"])),
        last_key_ids: array(&v["last_key_ids"])
            .iter()
            .map(|l| LastKeyId { domain: domain_of(&l["domain"]), last: number(&l["last"]) })
            .collect(),
        free_box_ids: array(&v["free_box_ids"]).iter().map(id_range_of).collect(),
    }
}

fn dks_certificate_of(v: &Value) -> DomainKeySetCertificate {
    DomainKeySetCertificate {
        installation: InstallationId(hex_array(&v["installation"])),
        confidentiality: hpke_key_of(&v["confidentiality"]),
        authentication: key_of(&v["authentication"]),
        issuer: box_of(&v["issuer"]),
    }
}

fn transcript_of(v: &Value) -> Transcript {
    let share_set = |s: &Value| ShareSetId::parse_hex(text(s)).unwrap();
    let share_ref = |r: &Value| ShareRef {
        set: share_set(&r["set"]),
        index: number(&r["index"]).try_into().unwrap(),
    };
    Transcript {
        ceremony: text(&v["ceremony"]).to_owned(),
        conducted_by: box_of(&v["conducted_by"]),
        subject: optional(&v["subject"], box_of),
        domain: optional(&v["domain"], domain_of),
        shares_presented: array(&v["shares_presented"]).iter().map(share_ref).collect(),
        anchors: Fingerprint(hex_array(&v["anchors"])),
        shares_written: array(&v["shares_written"]).iter().map(share_set).collect(),
        outcome: text(&v["outcome"]).to_owned(),
    }
}

fn key_request_of(v: &Value) -> KeyRequest {
    KeyRequest { steel: box_of(&v["steel"]) }
}

fn generate_key_of(v: &Value) -> GenerateKey {
    GenerateKey {
        steel_certificate: unhex(text(&v["steel_certificate"])),
        steel_process: unhex(text(&v["steel_process"])),
    }
}

fn new_key_record_of(v: &Value) -> NewKeyRecord {
    NewKeyRecord {
        oak: box_of(&v["oak"]),
        steel: box_of(&v["steel"]),
        sealed: sealed_of(&v["sealed"]),
    }
}

fn key_for_steel_of(v: &Value) -> KeyForSteel {
    KeyForSteel {
        oak: box_of(&v["oak"]),
        steel: box_of(&v["steel"]),
        sealed: sealed_of(&v["sealed"]),
    }
}

fn meter_hello_of(v: &Value) -> MeterHello {
    MeterHello { transport: hpke_key_of(&v["transport"]) }
}

fn key_for_meter_of(v: &Value) -> KeyForMeter {
    KeyForMeter { sealed: sealed_of(&v["sealed"]) }
}

fn meter_test_tokens_of(v: &Value) -> MeterTestTokens {
    MeterTestTokens { test_tokens: test_tokens_of(&v["test_tokens"]) }
}

fn installed_of(v: &Value) -> Installed {
    Installed {
        oak: box_of(&v["oak"]),
        steel: box_of(&v["steel"]),
        test_tokens: test_tokens_of(&v["test_tokens"]),
    }
}

fn installed_key_record_of(v: &Value) -> InstalledKeyRecord {
    InstalledKeyRecord {
        oak: box_of(&v["oak"]),
        steel: box_of(&v["steel"]),
        sealed: sealed_of(&v["sealed"]),
    }
}

fn install_confirmed_of(v: &Value) -> InstallConfirmed {
    InstallConfirmed { brass: box_of(&v["brass"]) }
}

fn aborted_of(v: &Value) -> Aborted {
    Aborted { steel: box_of(&v["steel"]), reason: text(&v["reason"]).to_owned() }
}

fn bad_key_of(v: &Value) -> BadKey {
    BadKey {
        brass: box_of(&v["brass"]),
        code: number(&v["code"]).try_into().unwrap(),
        reason: text(&v["reason"]).to_owned(),
    }
}

/// What a case of a record body is judged against: the file's header fields and signing key.
struct RecordFile {
    context: Context,
    signer: TestSigner,
    public_key: VerifyingKey,
}

impl RecordFile {
    fn load() -> Self {
        let vectors = load("records.json");
        let signer = TestSigner::from_secret(&unhex(text(&vectors["secret_key"])));
        let public_key = key_of(&vectors["public_key"]);
        assert_eq!(signer.verifying_key(), public_key, "secret_key and public_key do not match");
        Self { context: context_of(&vectors["context"]), signer, public_key }
    }

    /// Judges a case by the type it names.
    fn judge_case(&self, case: &Value, bytes: &[u8]) -> Result<(), String> {
        match text(&case["type"]) {
            "TrustAnchors" => {
                let decoded = check_codec::<TrustAnchors>(bytes);
                judge(case, bytes, decoded, trust_anchors_of, codec::to_bytes)
            }
            "BlankOffer" => self.judge_record(case, bytes, blank_offer_of),
            "SetId" => self.judge_record(case, bytes, set_id_of),
            "BoxKeys" => self.judge_record(case, bytes, box_keys_of),
            "Certificate" => self.judge_record(case, bytes, certificate_of),
            "DomainBundle" => self.judge_record(case, bytes, domain_bundle_of),
            "ProcessRecord" => self.judge_record(case, bytes, process_of),
            "Delivery" => self.judge_record(case, bytes, delivery_of),
            "Kit" => self.judge_record(case, bytes, kit_of),
            "TableUpdate" => self.judge_record(case, bytes, table_update_of),
            "StateAttestation" => self.judge_record(case, bytes, state_attestation_of),
            "DomainKeySetCertificate" => self.judge_record(case, bytes, dks_certificate_of),
            "Transcript" => self.judge_record(case, bytes, transcript_of),
            "KeyRequest" => self.judge_record(case, bytes, key_request_of),
            "GenerateKey" => self.judge_record(case, bytes, generate_key_of),
            "NewKeyRecord" => self.judge_record(case, bytes, new_key_record_of),
            "KeyForSteel" => self.judge_record(case, bytes, key_for_steel_of),
            "MeterHello" => self.judge_record(case, bytes, meter_hello_of),
            "KeyForMeter" => self.judge_record(case, bytes, key_for_meter_of),
            "MeterTestTokens" => self.judge_record(case, bytes, meter_test_tokens_of),
            "Installed" => self.judge_record(case, bytes, installed_of),
            "InstalledKeyRecord" => self.judge_record(case, bytes, installed_key_record_of),
            "InstallConfirmed" => self.judge_record(case, bytes, install_confirmed_of),
            "Aborted" => self.judge_record(case, bytes, aborted_of),
            "BadKey" => self.judge_record(case, bytes, bad_key_of),
            other => Err(format!("no decoder for type {other:?}")),
        }
    }

    /// Judges a case of body `B` as a message; a good case's `signed` envelope must also verify
    /// to the same message and be exactly what signing that message gives.
    fn judge_record<B: Body + Clone + PartialEq + Debug>(
        &self,
        case: &Value,
        bytes: &[u8],
        body_of: fn(&Value) -> B,
    ) -> Result<(), String> {
        let message_of = |v: &Value| Message::new(self.context.clone(), body_of(v));
        judge(case, bytes, Message::<B>::from_bytes(bytes), message_of, Message::to_bytes)?;
        let Some(signed) = case.get("signed") else { return Ok(()) };
        let signed = unhex(text(signed));
        let decoded = Unverified::<B>::from_bytes(&signed)
            .and_then(|u| u.verify(&self.public_key))
            .map(|verified| {
                assert_eq!(
                    verified.as_bytes(),
                    signed,
                    "a verified record keeps the bytes received"
                );
                verified.into_message()
            });
        let sign_again = |m: &Message<B>| sign(m.clone(), &self.signer).as_bytes().to_vec();
        judge(case, &signed, decoded, message_of, sign_again)
            .map_err(|why| format!("signed: {why}"))
    }
}

/// The record type of every body of records.json, with what its message decoder says of `bytes`.
fn every_record_decoder(bytes: &[u8]) -> Vec<(RecordType, Result<(), WireError>)> {
    macro_rules! decoders {
        ($($ty:ty),*) => {
            vec![$((<$ty as Body>::RECORD_TYPE, Message::<$ty>::from_bytes(bytes).map(drop))),*]
        };
    }
    decoders!(
        BlankOffer,
        SetId,
        BoxKeys,
        Certificate,
        DomainBundle,
        ProcessRecord,
        Delivery,
        Kit,
        TableUpdate,
        StateAttestation,
        DomainKeySetCertificate,
        Transcript,
        KeyRequest,
        GenerateKey,
        NewKeyRecord,
        KeyForSteel,
        MeterHello,
        KeyForMeter,
        MeterTestTokens,
        Installed,
        InstalledKeyRecord,
        InstallConfirmed,
        Aborted,
        BadKey
    )
}

#[test]
fn record_vectors() {
    let file = RecordFile::load();
    run("records.json", |case, bytes| file.judge_case(case, bytes));
}

#[test]
fn a_record_is_refused_as_every_other_record_type() {
    let decoders = every_record_decoder(&[]);
    let distinct: BTreeSet<RecordType> = decoders.iter().map(|(t, _)| *t).collect();
    assert_eq!(distinct.len(), decoders.len(), "two bodies share a record type");
    run("records.json", |case, bytes| {
        if case.get("value").is_none() || case["type"] == "TrustAnchors" {
            return Ok(());
        }
        let found = peek_header(bytes).map_err(|e| format!("{e:?}"))?.record_type;
        for (expected, verdict) in every_record_decoder(bytes) {
            let want = if expected == found {
                Ok(())
            } else {
                Err(WireError::WrongRecordType { found, expected })
            };
            if verdict != want {
                return Err(format!("as {expected}: {verdict:?}, want {want:?}"));
            }
        }
        Ok(())
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
