//! The box protocol's frames (`postkey_wire::command`): every command and reply round-trips with
//! identical bytes, a mutated frame is refused or is exactly the canonical encoding of what it
//! decodes to, and each way a frame can be wrong is refused with its own 2xxx response code.
//! The vectors of `tests/vectors/command.json` pin the encoding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::strategies::{box_id, context, domain_id, meter_id, mutate, mutation, subdomain_id};
use common::{TestSigner, check_command, check_reply, error_name, hex, unhex};
use minicbor::Encoder;
use postkey_crypto::{HpkeCiphertext, Signer as _};
use postkey_wire::command::{
    self, Answered, AttestState, CheckInstall, Checked, Command, Confirmed, CreateDomain, Done,
    Generated, InstallEnded, InstallKey, MAX_FRAME_LEN, MAX_LIST, MAX_REFUSAL_MESSAGE, Outcome,
    Recover, Response, SelfTest, SignTables, answers_of, peek_code, reply_from_bytes,
    reply_to_bytes,
};
use postkey_wire::{
    Aborted, BadKey, Body, BoxId, BoxType, CommandCode, ConfigTables, Context, DomainId,
    DomainKind, GenerateKey, InstallConfirmed, Installed, InstalledKeyRecord, KeyForSteel, KeyId,
    Message, MeterId, NewKeyRecord, Nonce, RecordType, Refusal, ResponseCode, Sender,
    StateAttestation, StateVersion, TestTokens, Timestamp, Unverified, WireError, sign,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---- Values. ----

fn signer() -> TestSigner {
    TestSigner::from_seed(common::VECTOR_KEY_SEED)
}

fn ciphertext(seed: u8) -> HpkeCiphertext {
    HpkeCiphertext::from_parts([seed; 32], vec![seed; 48]).unwrap()
}

fn signed<B: Body>(c: Context, body: B) -> Unverified<B> {
    sign(Message::new(c, body), &signer()).into()
}

fn key_context(key: u64) -> Context {
    Context {
        domain: DomainId::parse("USPS").unwrap(),
        sender: Sender::Box(BoxId::parse("O00000001").unwrap()),
        meter_id: Some(MeterId::parse("PB1234-000123").unwrap()),
        key_id: Some(KeyId::new(key).unwrap()),
        state_version: Some(postkey_wire::StateVersion(7)),
        timestamp: Timestamp::from_unix_micros(1_795_977_434_000_001),
    }
}

fn boxes() -> (BoxId, BoxId) {
    (BoxId::parse("O00000001").unwrap(), BoxId::parse("S00000001").unwrap())
}

fn mi3(c: Context) -> Unverified<NewKeyRecord> {
    let (oak, steel) = boxes();
    signed(c, NewKeyRecord { oak, steel, sealed: ciphertext(3) })
}

fn mi4(c: Context) -> Unverified<KeyForSteel> {
    let (oak, steel) = boxes();
    signed(c, KeyForSteel { oak, steel, sealed: ciphertext(4) })
}

fn mi7(c: Context) -> Unverified<Installed> {
    let (oak, steel) = boxes();
    signed(c, Installed { oak, steel, test_tokens: TestTokens::from_bytes([7; 16]) })
}

fn mi1(c: Context) -> Message<GenerateKey> {
    Message::new(c, GenerateKey { steel_certificate: vec![1, 2, 3], steel_process: vec![4, 5, 6] })
}

// ---- Strategies: one per kind of command and reply, of valid values. ----

fn command() -> impl Strategy<Value = Command> {
    let items = 0..4usize;
    prop_oneof![
        items.clone().prop_map(|n| Command::SelfTest(vec![SelfTest {}; n])),
        vec(any::<[u8; 32]>(), 0..4).prop_map(|ns| {
            Command::AttestState(ns.into_iter().map(|n| AttestState { nonce: Nonce(n) }).collect())
        }),
        vec((domain_id(), vec(subdomain_id(), 0..3)), 0..3).prop_map(|ds| {
            Command::CreateDomain(
                ds.into_iter()
                    .map(|(domain, subdomains)| CreateDomain {
                        domain,
                        kind: DomainKind::Postal,
                        subdomains,
                    })
                    .collect(),
            )
        }),
        vec((box_id(), vec(domain_id(), 0..3)), 0..3).prop_map(|ts| {
            Command::SignTables(
                ts.into_iter()
                    .map(|(recipient, domains)| SignTables {
                        recipient,
                        tables: ConfigTables {
                            commands: vec![CommandCode::GENERATE_KEY],
                            domains,
                            record_types: vec![RecordType::MI1],
                        },
                    })
                    .collect(),
            )
        }),
        vec(context(), 0..3).prop_map(|cs| {
            Command::GenerateKey(
                cs.into_iter().map(|c| command::GenerateKey { mi1: mi1(c) }).collect(),
            )
        }),
        vec((context(), meter_id()), 0..3).prop_map(|cs| {
            Command::InstallKey(
                cs.into_iter().map(|(c, meter)| InstallKey { mi4: mi4(c), meter }).collect(),
            )
        }),
        vec(context(), 0..3).prop_map(|cs| {
            Command::CheckInstall(
                cs.into_iter().map(|c| CheckInstall { mi3: mi3(c.clone()), mi7: mi7(c) }).collect(),
            )
        }),
        items.prop_map(|n| Command::Recover(vec![Recover {}; n])),
    ]
}

fn refusal() -> impl Strategy<Value = Refusal> {
    (select(ResponseCode::ALL.iter().map(|(c, ..)| *c).collect::<Vec<_>>()), ".{0,40}")
        .prop_map(|(code, message)| Refusal::new(code, message))
}

fn outcome<A: Clone + core::fmt::Debug>(
    answer: impl Strategy<Value = A>,
) -> impl Strategy<Value = Outcome<A>> {
    prop_oneof![answer.prop_map(Ok), refusal().prop_map(Err)]
}

/// How an installation ended: MI7 for a context with a key ID, ABORTED otherwise.
fn ended(c: Context) -> InstallEnded {
    let (_, steel) = boxes();
    if c.key_id.is_some() {
        InstallEnded::Installed(mi7(c))
    } else {
        InstallEnded::Aborted(signed(c, Aborted { steel, reason: "link".into() }))
    }
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        vec(outcome(Just(Done {})), 0..3).prop_map(Response::SelfTest),
        vec(outcome(context().prop_map(|c| Generated { mi3: mi3(c.clone()), mi4: mi4(c) })), 0..3)
            .prop_map(Response::GenerateKey),
        vec(outcome(context().prop_map(ended)), 0..3).prop_map(Response::InstallKey),
        vec(
            outcome(context().prop_map(|c| {
                let (oak, steel) = boxes();
                if c.meter_id.is_some() {
                    Checked::Installed(Confirmed {
                        mi9: signed(
                            c.clone(),
                            InstalledKeyRecord { oak, steel, sealed: ciphertext(9) },
                        ),
                        mi10: signed(
                            c,
                            InstallConfirmed { brass: BoxId::parse("B00000001").unwrap() },
                        ),
                    })
                } else {
                    Checked::Bad(signed(
                        c,
                        BadKey {
                            brass: BoxId::parse("B00000001").unwrap(),
                            code: 3104,
                            reason: "x".into(),
                        },
                    ))
                }
            })),
            0..3
        )
        .prop_map(Response::CheckInstall),
        vec(
            outcome(
                vec(context(), 0..3).prop_map(|cs| cs.into_iter().map(ended).collect::<Vec<_>>()),
            ),
            0..2
        )
        .prop_map(Response::Recover),
    ]
}

fn reply() -> impl Strategy<Value = (CommandCode, Result<Answered, Refusal>)> {
    prop_oneof![
        (response(), any::<u64>()).prop_map(|(r, v)| (
            r.code(),
            Ok(Answered { response: r, state_version: postkey_wire::StateVersion(v) })
        )),
        (select(CommandCode::KNOWN.iter().map(|(c, _)| *c).collect::<Vec<_>>()), refusal())
            .prop_map(|(c, r)| (c, Err(r))),
        // A box may refuse a command it does not know: the reply names that code.
        (0x7000u16..0x7fff, refusal()).prop_map(|(c, r)| (CommandCode(c), Err(r))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn commands_round_trip(c in command()) {
        let bytes = c.to_bytes();
        prop_assert_eq!(check_command(&bytes).unwrap(), c.clone());
        prop_assert_eq!(peek_code(&bytes), Some(c.code()));
    }

    #[test]
    fn mutated_commands_are_refused_or_canonical(c in command(), m in mutation()) {
        let _ = check_command(&mutate(&c.to_bytes(), &m));
    }

    #[test]
    fn replies_round_trip((code, r) in reply()) {
        let bytes = reply_to_bytes(code, &r);
        let (back_code, back) = check_reply(&bytes).unwrap();
        prop_assert_eq!(back_code, code);
        prop_assert_eq!(back, r);
    }

    #[test]
    fn mutated_replies_are_refused_or_canonical((code, r) in reply(), m in mutation()) {
        let _ = check_reply(&mutate(&reply_to_bytes(code, &r), &m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = check_command(&bytes);
        let _ = check_reply(&bytes);
        let _ = peek_code(&bytes);
    }
}

// ---- Each fault, its code. ----

/// A frame's head, written by hand: `{0: code, 1: version, key: …}` with `items` as the value.
fn frame(code: u16, version: u16, key: u8, value: impl FnOnce(&mut Encoder<Vec<u8>>)) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(3).unwrap().u8(0).unwrap().u16(code).unwrap().u8(1).unwrap().u16(version).unwrap();
    e.u8(key).unwrap();
    value(&mut e);
    e.into_writer()
}

fn code_of(r: Result<Command, WireError>) -> ResponseCode {
    r.unwrap_err().response_code()
}

fn one_install(c: Context) -> Command {
    Command::InstallKey(vec![InstallKey {
        mi4: mi4(c),
        meter: MeterId::parse("PB1234-000123").unwrap(),
    }])
}

#[test]
fn an_unknown_command_is_2001_and_its_code_can_still_be_read() {
    let bytes = frame(0x7777, 1, 2, |e| {
        e.array(0).unwrap();
    });
    let err = Command::from_bytes(&bytes).unwrap_err();
    assert_eq!(err, WireError::UnknownCommand(CommandCode(0x7777)));
    assert_eq!(err.response_code(), ResponseCode::UNKNOWN_COMMAND);
    assert_eq!(peek_code(&bytes), Some(CommandCode(0x7777)));
    // A reply with answers to an unknown command is refused the same way.
    assert_eq!(
        reply_from_bytes(&bytes).unwrap_err().response_code(),
        ResponseCode::UNKNOWN_COMMAND
    );
}

#[test]
fn another_version_of_a_command_is_2007() {
    let bytes = frame(CommandCode::RECOVER.0, 3, 2, |e| {
        e.array(0).unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&bytes)), ResponseCode::UNSUPPORTED_VERSION);
}

#[test]
fn an_item_with_another_number_of_fields_is_2002() {
    let good = one_install(key_context(1));
    let Command::InstallKey(items) = &good else { unreachable!() };
    let mi4 = items[0].mi4.as_bytes().to_vec();
    // One field instead of two: the meter is missing.
    let missing = frame(CommandCode::INSTALL_KEY.0, 1, 2, |e| {
        e.array(1).unwrap().map(1).unwrap().u8(0).unwrap().bytes(&mi4).unwrap();
    });
    assert_eq!(
        Command::from_bytes(&missing).unwrap_err(),
        WireError::ParameterCount { expected: 2, found: 1 }
    );
    assert_eq!(code_of(Command::from_bytes(&missing)), ResponseCode::PARAMETER_COUNT);
    // Three fields instead of two.
    let extra = frame(CommandCode::INSTALL_KEY.0, 1, 2, |e| {
        e.array(1).unwrap().map(3).unwrap().u8(0).unwrap().bytes(&mi4).unwrap();
        e.u8(1).unwrap().str("PB1234-000123").unwrap().u8(2).unwrap().u8(0).unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&extra)), ResponseCode::PARAMETER_COUNT);
    // A parameterless command's item with a field.
    let recover = frame(CommandCode::RECOVER.0, 2, 2, |e| {
        e.array(1).unwrap().map(1).unwrap().u8(0).unwrap().u8(0).unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&recover)), ResponseCode::PARAMETER_COUNT);
}

#[test]
fn a_field_that_does_not_parse_is_2003() {
    // The meter ID is not a meter ID.
    let Command::InstallKey(items) = one_install(key_context(1)) else { unreachable!() };
    let mi4 = items[0].mi4.as_bytes().to_vec();
    let bad_meter = frame(CommandCode::INSTALL_KEY.0, 1, 2, |e| {
        e.array(1).unwrap().map(2).unwrap().u8(0).unwrap().bytes(&mi4).unwrap();
        e.u8(1).unwrap().str("not a meter").unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&bad_meter)), ResponseCode::PARAMETER_SYNTAX);
    // A text where the record's bytes belong.
    let text = frame(CommandCode::INSTALL_KEY.0, 1, 2, |e| {
        e.array(1).unwrap().map(2).unwrap().u8(0).unwrap().str("MI4").unwrap();
        e.u8(1).unwrap().str("PB1234-000123").unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&text)), ResponseCode::PARAMETER_SYNTAX);
    // The box type of Set-ID is one letter of MOSBT.
    let offer = Message::new(
        Context {
            sender: Sender::BlankBox,
            meter_id: None,
            key_id: None,
            state_version: None,
            ..key_context(1)
        },
        postkey_wire::BlankOffer {
            nonce: Nonce([1; 32]),
            anchors: postkey_crypto::Fingerprint([2; 32]),
        },
    )
    .to_bytes();
    let bad_type = frame(CommandCode::ISSUE_SET_ID.0, 1, 2, |e| {
        e.array(1).unwrap().map(2).unwrap().u8(0).unwrap().bytes(&offer).unwrap();
        e.u8(1).unwrap().str("X").unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&bad_type)), ResponseCode::PARAMETER_SYNTAX);
}

#[test]
fn a_record_of_another_type_inside_an_item_keeps_its_own_code() {
    // An MI3 where the MI4 belongs: the record's own decoder refuses it (2008).
    let other = mi3(key_context(1)).as_bytes().to_vec();
    let bytes = frame(CommandCode::INSTALL_KEY.0, 1, 2, |e| {
        e.array(1).unwrap().map(2).unwrap().u8(0).unwrap().bytes(&other).unwrap();
        e.u8(1).unwrap().str("PB1234-000123").unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&bytes)), ResponseCode::WRONG_RECORD_TYPE);
}

#[test]
fn oversize_frames_and_lists_are_2004() {
    let too_big = vec![0u8; MAX_FRAME_LEN + 1];
    assert_eq!(code_of(Command::from_bytes(&too_big)), ResponseCode::MESSAGE_TOO_LARGE);
    // A list longer than allowed is refused from its head, before its items are read.
    let long = frame(CommandCode::RECOVER.0, 2, 2, |e| {
        e.array(MAX_LIST as u64 + 1).unwrap();
    });
    assert_eq!(code_of(Command::from_bytes(&long)), ResponseCode::MESSAGE_TOO_LARGE);
    // A list of exactly the limit is fine.
    let full = Command::Recover(vec![Recover {}; MAX_LIST]);
    assert_eq!(Command::from_bytes(&full.to_bytes()).unwrap(), full);
}

#[test]
fn trailing_and_truncated_frames_are_refused() {
    let bytes = one_install(key_context(1)).to_bytes();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(code_of(Command::from_bytes(&trailing)), ResponseCode::TRAILING_BYTES);
    for cut in 0..bytes.len() {
        assert!(Command::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
}

#[test]
fn a_non_canonical_frame_is_2006() {
    // The command code written as a 4-byte integer: the same value, another encoding.
    let mut e = Encoder::new(Vec::new());
    e.map(3).unwrap().u8(0).unwrap();
    let mut bytes = e.into_writer();
    bytes.extend_from_slice(&[0x1a, 0, 0, 0x03, 0x02]); // 0x0302 = RECOVER, as u32
    bytes.extend_from_slice(&[0x01, 0x02, 0x02, 0x80]); // 1: 2, 2: []
    assert_eq!(code_of(Command::from_bytes(&bytes)), ResponseCode::NON_CANONICAL);
    // Fields out of order.
    let swapped = {
        let mut e = Encoder::new(Vec::new());
        e.map(3).unwrap().u8(1).unwrap().u16(2).unwrap().u8(0).unwrap();
        e.u16(CommandCode::RECOVER.0).unwrap().u8(2).unwrap().array(0).unwrap();
        e.into_writer()
    };
    assert_eq!(code_of(Command::from_bytes(&swapped)), ResponseCode::NON_CANONICAL);
}

#[test]
fn an_answer_of_another_command_or_count_is_2009() {
    let response = Response::Recover(vec![Ok(Vec::new())]);
    let err = answers_of::<InstallKey>(1, response).unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::ANSWER_MISMATCH);
    let response = Response::Recover(vec![Ok(Vec::new()), Ok(Vec::new())]);
    let err = answers_of::<Recover>(1, response).unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::ANSWER_MISMATCH);
    assert!(answers_of::<Recover>(1, Response::Recover(vec![Ok(Vec::new())])).is_ok());
}

#[test]
fn every_known_command_has_a_box_type_and_its_records_are_known() {
    for (code, name) in CommandCode::KNOWN {
        assert!(!code.box_types().is_empty(), "{name}");
        for r in code.record_types() {
            assert!(r.name().is_some(), "{name}: record type {r:?}");
        }
    }
    // GENERATE_KEY is Oak's only, and carries MI1.
    assert_eq!(CommandCode::GENERATE_KEY.box_types(), &[BoxType::Oak]);
    assert!(CommandCode::GENERATE_KEY.record_types().contains(&RecordType::MI1));
}

#[test]
fn a_state_attestation_survives_the_link_as_signed() {
    let c = key_context(1);
    let att = signed(
        c,
        StateAttestation {
            nonce: Nonce([9; 32]),
            box_id: BoxId::parse("S00000001").unwrap(),
            version: postkey_wire::StateVersion(3),
            installation: postkey_wire::InstallationId([7; 16]),
            last_key_ids: vec![postkey_wire::LastKeyId {
                domain: postkey_wire::DomainId::parse("USPS").unwrap(),
                last: 41,
            }],
            free_box_ids: Vec::new(),
        },
    );
    let r = Response::AttestState(vec![Ok(att.clone())]);
    let answered = Answered { response: r, state_version: postkey_wire::StateVersion(3) };
    let (_, back) =
        reply_from_bytes(&reply_to_bytes(answered.response.code(), &Ok(answered))).unwrap();
    let Ok(Answered { response: Response::AttestState(mut answers), .. }) = back else {
        panic!("{back:?}")
    };
    let got = answers.pop().unwrap().unwrap();
    assert_eq!(got.as_bytes(), att.as_bytes());
    assert!(got.verify(&signer().verifying_key()).is_ok());
}

// ---- Vectors. ----

fn vectors() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/command.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The frames the vector file pins, built from the code: `POSTKEY_PRINT_COMMAND_VECTORS=1`
/// prints them (the file was written from this once and is edited by hand since).
fn vector_frames() -> Vec<(&'static str, Vec<u8>)> {
    let install = one_install(key_context(42));
    let generate = Command::GenerateKey(vec![command::GenerateKey { mi1: mi1(key_context(42)) }]);
    let check = Command::CheckInstall(vec![CheckInstall {
        mi3: mi3(key_context(42)),
        mi7: mi7(key_context(42)),
    }]);
    let refused = reply_to_bytes(
        CommandCode::INSTALL_KEY,
        &Err(Refusal::new(ResponseCode::BOX_LOCKED, "locked")),
    );
    let answered = {
        let r = Response::InstallKey(vec![
            Ok(InstallEnded::Installed(mi7(key_context(42)))),
            Err(Refusal::new(ResponseCode::KEY_ID_NOT_FRESH, "replay")),
        ]);
        let code = r.code();
        reply_to_bytes(code, &Ok(Answered { response: r, state_version: StateVersion(12) }))
    };
    vec![
        ("command recover empty", Command::Recover(Vec::new()).to_bytes()),
        ("command self-test one item", Command::SelfTest(vec![SelfTest {}]).to_bytes()),
        ("command install-key one item", install.to_bytes()),
        ("command generate-key one item", generate.to_bytes()),
        ("command check-install one item", check.to_bytes()),
        ("reply install-key refused whole", refused),
        ("reply install-key one answer one refusal", answered),
    ]
}

#[test]
fn command_vectors() {
    if std::env::var_os("POSTKEY_PRINT_COMMAND_VECTORS").is_some() {
        for (name, bytes) in vector_frames() {
            println!("{name}: {}", hex(&bytes));
        }
    }
    let v = vectors();
    let cases = v["cases"].as_array().unwrap();
    let built: std::collections::BTreeMap<&str, Vec<u8>> = vector_frames().into_iter().collect();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let bytes = unhex(case["hex"].as_str().unwrap());
        let is_reply = case["frame"] == "reply";
        let verdict: Result<(u16, usize, Option<u64>), WireError> = if is_reply {
            check_reply(&bytes).map(|(c, r)| match r {
                Ok(a) => (c.0, a.response.len(), Some(a.state_version.0)),
                Err(_) => (c.0, 0, None),
            })
        } else {
            check_command(&bytes).map(|c| (c.code().0, c.len(), None))
        };
        match (&case["value"], &case["error"], verdict) {
            (value, _, Ok((code, items, version))) if value.is_object() => {
                if value["code"].as_u64() != Some(u64::from(code))
                    || value["items"].as_u64() != Some(items as u64)
                    || value["state_version"].as_u64() != version
                {
                    failures.push(format!(
                        "{name}: decoded as code {code} with {items} items, version {version:?}"
                    ));
                }
                if let Some(b) = built.get(name)
                    && *b != bytes
                {
                    failures.push(format!("{name}: the code now writes {}", hex(b)));
                }
            }
            (_, error, Err(e)) if error.is_string() => {
                if error.as_str() != Some(error_name(&e)) {
                    failures.push(format!("{name}: refused as {} ({e})", error_name(&e)));
                }
            }
            (_, _, verdict) => failures.push(format!("{name}: unexpected verdict {verdict:?}")),
        }
    }
    // Every frame the code builds is pinned by a case.
    for name in built.keys() {
        if !cases.iter().any(|c| c["name"] == *name) {
            failures.push(format!("{name}: no vector"));
        }
    }
    assert!(failures.is_empty(), "command.json:\n  {}", failures.join("\n  "));
}

#[test]
fn a_refusal_message_past_its_limit_is_2004() {
    let long = "x".repeat(MAX_REFUSAL_MESSAGE + 1);
    // Built by hand: `Refusal::new` would cut it.
    let reply = Err(Refusal { code: ResponseCode::BOX_LOCKED, message: long });
    let bytes = reply_to_bytes(CommandCode::RECOVER, &reply);
    assert_eq!(
        reply_from_bytes(&bytes).unwrap_err().response_code(),
        ResponseCode::MESSAGE_TOO_LARGE
    );
    let at_limit =
        Err(Refusal { code: ResponseCode::BOX_LOCKED, message: "y".repeat(MAX_REFUSAL_MESSAGE) });
    assert!(reply_from_bytes(&reply_to_bytes(CommandCode::RECOVER, &at_limit)).is_ok());
}
