//! Replays the fuzz corpus under `cargo test`, so that every seed and every input a fuzzer run
//! saved as a regression keeps passing without cargo-fuzz or a fuzzing session.
//!
//! Each `decode_*` target of `fuzz/fuzz_targets/` (the wire decoders; the indicium's targets are
//! replayed by postkey-indicium's own test) has a directory `fuzz/corpus/<target>/`; every file in it
//! goes through the same check as the target (decode; if accepted, the canonical re-encoding is
//! exactly the input). Files named `valid-*` must also be accepted and files named `invalid-*`
//! refused, so a seed that silently stops meaning what its name says fails here. The seeds are
//! the cases of `tests/vectors/` (for a record body, its message and its signed envelope);
//! `the_seed_corpus_is_generated_from_the_vectors` keeps the seeds in step with the vector files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{
    TestBody, TestSigner, VECTOR_KEY_SEED, check_codec, check_command, check_envelope,
    check_message, check_peek_record_type, check_reply, hex, unhex,
};
use postkey_crypto::Signer as _;
use postkey_wire::{
    Aborted, BadKey, BlankOffer, Body, BoxId, BoxKeys, Certificate, Country, Date, Delivery,
    DomainBundle, DomainId, DomainKeySetCertificate, GenerateKey, Header, InstallConfirmed,
    Installed, InstalledKeyRecord, Isn, KeyForMeter, KeyForSteel, KeyId, KeyRequest, Kit,
    MeterHello, MeterId, MeterTestTokens, Msn, NewKeyRecord, ProcessRecord, ProductCode,
    RecordType, RegistrationToken, Sender, SetId, SharePurpose, ShareSetId, StateAttestation,
    StateVersion, SubdomainId, TableUpdate, TestTokens, Timestamp, Token, Transcript, Zip,
};

/// A fuzz target's check: runs the target's assertions and says whether the input was accepted.
type Check = fn(&[u8]) -> bool;

/// The check of a record body's target: the input is accepted as a message of `B`, or as a
/// signed envelope of `B` that verifies under the key that signed the seeds. Both decoders run on
/// every input, as in the fuzz target.
fn check_record<B: Body + PartialEq + core::fmt::Debug>(bytes: &[u8]) -> bool {
    let key = TestSigner::from_seed(VECTOR_KEY_SEED).verifying_key();
    let as_message = check_message::<B>(bytes).is_ok();
    check_envelope::<B>(bytes, &key).is_ok() || as_message
}

/// Every fuzz target, the vector file and type its seeds come from, and its check.
const TARGETS: &[(&str, &str, Option<&str>, Check)] = &[
    ("decode_box_id", "ids.json", Some("BoxId"), |b| check_codec::<BoxId>(b).is_ok()),
    ("decode_domain_id", "ids.json", Some("DomainId"), |b| check_codec::<DomainId>(b).is_ok()),
    ("decode_country", "ids.json", Some("Country"), |b| check_codec::<Country>(b).is_ok()),
    ("decode_subdomain_id", "ids.json", Some("SubdomainId"), |b| {
        check_codec::<SubdomainId>(b).is_ok()
    }),
    ("decode_product_code", "ids.json", Some("ProductCode"), |b| {
        check_codec::<ProductCode>(b).is_ok()
    }),
    ("decode_msn", "ids.json", Some("Msn"), |b| check_codec::<Msn>(b).is_ok()),
    ("decode_meter_id", "ids.json", Some("MeterId"), |b| check_codec::<MeterId>(b).is_ok()),
    ("decode_isn", "ids.json", Some("Isn"), |b| check_codec::<Isn>(b).is_ok()),
    ("decode_zip", "ids.json", Some("Zip"), |b| check_codec::<Zip>(b).is_ok()),
    ("decode_key_id", "ids.json", Some("KeyId"), |b| check_codec::<KeyId>(b).is_ok()),
    ("decode_state_version", "ids.json", Some("StateVersion"), |b| {
        check_codec::<StateVersion>(b).is_ok()
    }),
    ("decode_date", "ids.json", Some("Date"), |b| check_codec::<Date>(b).is_ok()),
    ("decode_timestamp", "ids.json", Some("Timestamp"), |b| check_codec::<Timestamp>(b).is_ok()),
    ("decode_record_type", "ids.json", Some("RecordType"), |b| {
        check_codec::<RecordType>(b).is_ok()
    }),
    ("decode_sender", "ids.json", Some("Sender"), |b| check_codec::<Sender>(b).is_ok()),
    ("decode_token", "ids.json", Some("Token"), |b| check_codec::<Token>(b).is_ok()),
    ("decode_test_tokens", "ids.json", Some("TestTokens"), |b| {
        check_codec::<TestTokens>(b).is_ok()
    }),
    ("decode_registration_token", "ids.json", Some("RegistrationToken"), |b| {
        check_codec::<RegistrationToken>(b).is_ok()
    }),
    ("decode_share_set_id", "ids.json", Some("ShareSetId"), |b| {
        check_codec::<ShareSetId>(b).is_ok()
    }),
    ("decode_share_purpose", "ids.json", Some("SharePurpose"), |b| {
        check_codec::<SharePurpose>(b).is_ok()
    }),
    ("decode_header", "header.json", None, |b| check_codec::<Header>(b).is_ok()),
    ("decode_message", "message.json", None, |b| check_message::<TestBody>(b).is_ok()),
    ("decode_envelope", "envelope.json", None, |b| {
        // Both decoders run on every input, as in the fuzz target.
        let peeked = check_peek_record_type(b).is_ok();
        let key = TestSigner::from_seed(VECTOR_KEY_SEED).verifying_key();
        check_envelope::<TestBody>(b, &key).is_ok() && peeked
    }),
    ("decode_blank_offer", "records.json", Some("BlankOffer"), check_record::<BlankOffer>),
    ("decode_set_id", "records.json", Some("SetId"), check_record::<SetId>),
    ("decode_box_keys", "records.json", Some("BoxKeys"), check_record::<BoxKeys>),
    ("decode_certificate", "records.json", Some("Certificate"), check_record::<Certificate>),
    ("decode_domain_bundle", "records.json", Some("DomainBundle"), check_record::<DomainBundle>),
    ("decode_process_record", "records.json", Some("ProcessRecord"), check_record::<ProcessRecord>),
    ("decode_delivery", "records.json", Some("Delivery"), check_record::<Delivery>),
    ("decode_kit", "records.json", Some("Kit"), check_record::<Kit>),
    ("decode_table_update", "records.json", Some("TableUpdate"), check_record::<TableUpdate>),
    (
        "decode_state_attestation",
        "records.json",
        Some("StateAttestation"),
        check_record::<StateAttestation>,
    ),
    (
        "decode_dks_certificate",
        "records.json",
        Some("DomainKeySetCertificate"),
        check_record::<DomainKeySetCertificate>,
    ),
    ("decode_transcript", "records.json", Some("Transcript"), check_record::<Transcript>),
    ("decode_key_request", "records.json", Some("KeyRequest"), check_record::<KeyRequest>),
    ("decode_generate_key", "records.json", Some("GenerateKey"), check_record::<GenerateKey>),
    ("decode_new_key_record", "records.json", Some("NewKeyRecord"), check_record::<NewKeyRecord>),
    ("decode_key_for_steel", "records.json", Some("KeyForSteel"), check_record::<KeyForSteel>),
    ("decode_meter_hello", "records.json", Some("MeterHello"), check_record::<MeterHello>),
    ("decode_key_for_meter", "records.json", Some("KeyForMeter"), check_record::<KeyForMeter>),
    (
        "decode_meter_test_tokens",
        "records.json",
        Some("MeterTestTokens"),
        check_record::<MeterTestTokens>,
    ),
    ("decode_installed", "records.json", Some("Installed"), check_record::<Installed>),
    (
        "decode_installed_key_record",
        "records.json",
        Some("InstalledKeyRecord"),
        check_record::<InstalledKeyRecord>,
    ),
    (
        "decode_install_confirmed",
        "records.json",
        Some("InstallConfirmed"),
        check_record::<InstallConfirmed>,
    ),
    ("decode_aborted", "records.json", Some("Aborted"), check_record::<Aborted>),
    ("decode_bad_key", "records.json", Some("BadKey"), check_record::<BadKey>),
    ("decode_command", "command.json", Some("command"), |b| check_command(b).is_ok()),
    ("decode_reply", "command.json", Some("reply"), |b| check_reply(b).is_ok()),
];

/// At most this many refused seeds per target: enough to start the fuzzer near each error path.
const MAX_INVALID_SEEDS: usize = 6;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect()
}

#[test]
fn every_fuzz_target_has_a_check_and_a_corpus() {
    let wire = |names: BTreeSet<String>| -> BTreeSet<String> {
        names.into_iter().filter(|n| n.starts_with("decode_")).collect()
    };
    let targets: BTreeSet<String> = wire(
        file_names(&fuzz_dir().join("fuzz_targets"))
            .into_iter()
            .map(|f| f.strip_suffix(".rs").expect("targets are .rs files").to_owned())
            .collect(),
    );
    let checked: BTreeSet<String> = TARGETS.iter().map(|(t, ..)| (*t).to_owned()).collect();
    assert_eq!(targets, checked, "each fuzz target needs an entry in TARGETS");
    let corpora = wire(file_names(&fuzz_dir().join("corpus")));
    assert_eq!(corpora, checked, "one corpus directory per target");
}

#[test]
fn the_fuzz_crate_verifies_with_the_key_that_signed_the_seeds() {
    let lib = std::fs::read_to_string(fuzz_dir().join("src/lib.rs")).unwrap();
    let key = TestSigner::from_seed(VECTOR_KEY_SEED).verifying_key().to_bytes();
    let as_rust: Vec<String> = key.iter().map(|b| format!("0x{b:02x}")).collect();
    let flat: String = lib.split_whitespace().collect();
    assert!(flat.contains(&as_rust.join(",")), "SEED_KEY in fuzz/src/lib.rs is not {}", hex(&key));
}

#[test]
fn the_fuzz_corpus_passes_every_target_check() {
    for (target, _, _, check) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let files = file_names(&dir);
        assert!(
            files.iter().any(|f| f.starts_with("valid-")),
            "{target}: the corpus needs at least one valid seed"
        );
        for file in &files {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let accepted = check(&bytes);
            if file.starts_with("valid-") {
                assert!(accepted, "{target}/{file} is no longer accepted");
            } else if file.starts_with("invalid-") {
                assert!(!accepted, "{target}/{file} is now accepted");
            }
        }
    }
}

/// `every field` → `every-field`.
fn slug(name: &str) -> String {
    let dashed: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    dashed.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-")
}

/// The seed corpus is exactly what the vector files give: a vector added or changed without its
/// seed fails here. `POSTKEY_WRITE_FUZZ_SEEDS=1 cargo test -p postkey-wire --test fuzz_corpus`
/// rewrites the seeds instead.
#[test]
fn the_seed_corpus_is_generated_from_the_vectors() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let write = std::env::var_os("POSTKEY_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1");
    for (target, file, type_name, _) in TARGETS {
        let text = std::fs::read_to_string(vectors.join(file)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let dir = fuzz_dir().join("corpus").join(target);
        let mut expected = std::collections::BTreeMap::<String, Vec<u8>>::new();
        let mut invalid = 0;
        for case in json["cases"].as_array().unwrap() {
            // A case verified with a key of its own would pass under the seed key.
            // The type is a case's `type` (ids, records) or its `frame` (box-protocol frames).
            let of_type = |t: &str| case["type"] == t || case["frame"] == t;
            if type_name.is_some_and(|t| !of_type(t)) || case.get("public_key").is_some() {
                continue;
            }
            let name = slug(case["name"].as_str().unwrap());
            let name = match type_name {
                // Drop the type name that starts every case name in ids.json.
                Some(t) => name.strip_prefix(&format!("{}-", slug(t))).unwrap_or(&name).to_owned(),
                None => name,
            };
            let prefix = if case.get("value").is_some() {
                "valid"
            } else if invalid < MAX_INVALID_SEEDS {
                invalid += 1;
                "invalid"
            } else {
                continue;
            };
            expected.insert(format!("{prefix}-{name}"), unhex(case["hex"].as_str().unwrap()));
            // A record body's good case also has its signed envelope.
            if let Some(signed) = case.get("signed") {
                expected.insert(format!("{prefix}-{name}-signed"), unhex(signed.as_str().unwrap()));
            }
        }
        assert!(!expected.is_empty(), "{target}: the vectors give no seed");
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            for old in file_names(&dir)
                .iter()
                .filter(|f| f.starts_with("valid-") || f.starts_with("invalid-"))
            {
                std::fs::remove_file(dir.join(old)).unwrap();
            }
            for (name, bytes) in &expected {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
        let on_disk: std::collections::BTreeMap<String, Vec<u8>> = file_names(&dir)
            .into_iter()
            .filter(|f| f.starts_with("valid-") || f.starts_with("invalid-"))
            .map(|f| {
                let bytes = std::fs::read(dir.join(&f)).unwrap();
                (f, bytes)
            })
            .collect();
        assert!(
            on_disk == expected,
            "{target}: fuzz/corpus differs from the vectors; rerun with POSTKEY_WRITE_FUZZ_SEEDS=1"
        );
    }
}
