//! Properties of the record bodies of the box lifecycle (`boxes.rs`) and of installation
//! (`install.rs`), and of the public-key types they carry (STYLE habit 6): each value survives
//! encode → decode with identical bytes and a mutated encoding is refused or canonical; each
//! [`Body`] also round-trips as a [`Message`] and as a signed envelope, and a mutated envelope
//! never verifies.
//!
//! 64 cases per property: there are many properties here, and several sign and verify per case.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::strategies::{
    assert_round_trip, box_id, codec_properties, context, domain_id, mutate, mutation, record_type,
    share_set_id, state_version, subdomain_id, test_tokens, timestamp, uint,
};
use common::{
    TestSigner, VECTOR_KEY_SEED, check_codec, check_envelope, check_message, check_peek_record_type,
};
use ed25519_dalek::SigningKey;
use postkey_crypto::{
    Fingerprint, HpkeCiphertext, HpkePublicKey, Signature, Signer as _, VerifyingKey,
};
use postkey_wire::{
    Aborted, BadKey, BlankOffer, Body, BoxKeys, Certificate, CommandCode, ConfigTables, Delivery,
    DomainBundle, DomainKeySetCertificate, DomainKind, DomainPublicKeys, GenerateKey, IdRange,
    InstallConfirmed, InstallationId, Installed, InstalledKeyRecord, KeyForMeter, KeyForSteel,
    KeyRequest, Kit, LastKeyId, Message, MeterHello, MeterTestTokens, NewKeyRecord, Nonce,
    ProcessRecord, SetId, ShareRef, StateAttestation, TableUpdate, Transcript, TrustAnchors,
    Unverified, codec, peek_header, sign,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

const CASES: u32 = 64;

// ---- Public-key material. ----

/// A valid Ed25519 point: the public half of a signing key from a random seed (not every 32
/// bytes decode as a point, and the decoder refuses those that do not).
fn verifying_key() -> impl Strategy<Value = VerifyingKey> {
    any::<[u8; 32]>().prop_map(|seed| {
        VerifyingKey::from_bytes(&SigningKey::from_bytes(&seed).verifying_key().to_bytes()).unwrap()
    })
}

fn hpke_public_key() -> impl Strategy<Value = HpkePublicKey> {
    any::<[u8; 32]>().prop_map(HpkePublicKey::from_bytes)
}

/// An encapsulated key and an AEAD output from a bare tag up to a couple of hundred bytes.
fn hpke_ciphertext() -> impl Strategy<Value = HpkeCiphertext> {
    (any::<[u8; 32]>(), vec(any::<u8>(), 16..=200))
        .prop_map(|(enc, ct)| HpkeCiphertext::from_parts(enc, ct).unwrap())
}

fn fingerprint() -> impl Strategy<Value = Fingerprint> {
    any::<[u8; 32]>().prop_map(Fingerprint)
}

fn signature() -> impl Strategy<Value = Signature> {
    any::<[u8; 64]>().prop_map(Signature)
}

// ---- Parts of the box-lifecycle records. ----

fn nonce() -> impl Strategy<Value = Nonce> {
    any::<[u8; 32]>().prop_map(Nonce)
}

fn trust_anchors() -> impl Strategy<Value = TrustAnchors> {
    (verifying_key(), verifying_key(), verifying_key(), verifying_key(), verifying_key()).prop_map(
        |(manufacturing, oak, steel, brass, tin)| TrustAnchors {
            manufacturing,
            oak,
            steel,
            brass,
            tin,
        },
    )
}

fn domain_kind() -> impl Strategy<Value = DomainKind> {
    select(vec![DomainKind::Admin, DomainKind::Vendor, DomainKind::Postal, DomainKind::Earth])
}

fn domain_public_keys() -> impl Strategy<Value = DomainPublicKeys> {
    (
        verifying_key(),
        verifying_key(),
        hpke_public_key(),
        verifying_key(),
        option::of(verifying_key()),
    )
        .prop_map(|(oak_auth, steel_auth, brass_conf, brass_auth, audit)| DomainPublicKeys {
            oak_auth,
            steel_auth,
            brass_conf,
            brass_auth,
            audit,
        })
}

fn id_range() -> impl Strategy<Value = IdRange> {
    (any::<u8>(), uint(), uint()).prop_map(|(box_type, first, last)| IdRange {
        box_type,
        first: first as u32,
        last: last as u32,
    })
}

/// Known commands and unknown code points alike: the code is open.
fn command_code() -> impl Strategy<Value = CommandCode> {
    prop_oneof![
        select(CommandCode::KNOWN.iter().map(|(c, _)| *c).collect::<Vec<_>>()),
        uint().prop_map(|n| CommandCode(n as u16)),
    ]
}

fn config_tables() -> impl Strategy<Value = ConfigTables> {
    (vec(command_code(), 0..8), vec(domain_id(), 0..4), vec(record_type(), 0..8)).prop_map(
        |(commands, domains, record_types)| ConfigTables { commands, domains, record_types },
    )
}

fn share_ref() -> impl Strategy<Value = ShareRef> {
    (share_set_id(), any::<u8>()).prop_map(|(set, index)| ShareRef { set, index })
}

// ---- Box-lifecycle bodies. ----

fn blank_offer() -> impl Strategy<Value = BlankOffer> {
    (nonce(), fingerprint()).prop_map(|(nonce, anchors)| BlankOffer { nonce, anchors })
}

fn installation() -> impl Strategy<Value = InstallationId> {
    any::<[u8; 16]>().prop_map(InstallationId)
}

fn set_id() -> impl Strategy<Value = SetId> {
    (nonce(), box_id(), box_id(), installation()).prop_map(
        |(nonce, new_id, issuer, installation)| SetId { nonce, new_id, issuer, installation },
    )
}

fn box_keys() -> impl Strategy<Value = BoxKeys> {
    (nonce(), box_id(), verifying_key(), hpke_public_key()).prop_map(
        |(nonce, box_id, identity, confidentiality)| BoxKeys {
            nonce,
            box_id,
            identity,
            confidentiality,
        },
    )
}

fn certificate() -> impl Strategy<Value = Certificate> {
    (box_id(), verifying_key(), hpke_public_key(), box_id(), timestamp()).prop_map(
        |(box_id, identity, confidentiality, issuer, issued)| Certificate {
            box_id,
            identity,
            confidentiality,
            issuer,
            issued,
        },
    )
}

fn domain_bundle() -> impl Strategy<Value = DomainBundle> {
    (domain_id(), domain_kind(), vec(subdomain_id(), 0..4), domain_public_keys(), hpke_ciphertext())
        .prop_map(|(domain, kind, subdomains, public, sealed)| DomainBundle {
            domain,
            kind,
            subdomains,
            public,
            sealed,
        })
}

fn process_record() -> impl Strategy<Value = ProcessRecord> {
    (box_id(), domain_id(), vec(subdomain_id(), 0..4))
        .prop_map(|(box_id, domain, subdomains)| ProcessRecord { box_id, domain, subdomains })
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (box_id(), process_record(), domain_public_keys(), hpke_ciphertext(), domain_kind()).prop_map(
        |(recipient, process, public, sealed, kind)| Delivery {
            recipient,
            process,
            public,
            sealed,
            kind,
        },
    )
}

fn kit() -> impl Strategy<Value = Kit> {
    (box_id(), vec(id_range(), 0..6), hpke_ciphertext())
        .prop_map(|(recipient, ranges, sealed)| Kit { recipient, ranges, sealed })
}

fn table_update() -> impl Strategy<Value = TableUpdate> {
    (box_id(), uint(), config_tables()).prop_map(|(recipient, sequence, tables)| TableUpdate {
        recipient,
        sequence,
        tables,
    })
}

fn state_attestation() -> impl Strategy<Value = StateAttestation> {
    let last = (domain_id(), uint()).prop_map(|(domain, last)| LastKeyId { domain, last });
    (nonce(), box_id(), state_version(), installation(), vec(last, 0..4), vec(id_range(), 0..5))
        .prop_map(|(nonce, box_id, version, installation, last_key_ids, free_box_ids)| {
            StateAttestation { nonce, box_id, version, installation, last_key_ids, free_box_ids }
        })
}

fn dks_certificate() -> impl Strategy<Value = DomainKeySetCertificate> {
    (installation(), hpke_public_key(), verifying_key(), box_id()).prop_map(
        |(installation, confidentiality, authentication, issuer)| DomainKeySetCertificate {
            installation,
            confidentiality,
            authentication,
            issuer,
        },
    )
}

fn transcript() -> impl Strategy<Value = Transcript> {
    (
        ".{0,24}",
        box_id(),
        option::of(box_id()),
        option::of(domain_id()),
        vec(share_ref(), 0..4),
        fingerprint(),
        vec(share_set_id(), 0..3),
        ".{0,32}",
    )
        .prop_map(
            |(
                ceremony,
                conducted_by,
                subject,
                domain,
                shares_presented,
                anchors,
                shares_written,
                outcome,
            )| Transcript {
                ceremony,
                conducted_by,
                subject,
                domain,
                shares_presented,
                anchors,
                shares_written,
                outcome,
            },
        )
}

// ---- Installation bodies. ----

fn key_request() -> impl Strategy<Value = KeyRequest> {
    box_id().prop_map(|steel| KeyRequest { steel })
}

fn generate_key() -> impl Strategy<Value = GenerateKey> {
    (vec(any::<u8>(), 0..200), vec(any::<u8>(), 0..200)).prop_map(
        |(steel_certificate, steel_process)| GenerateKey { steel_certificate, steel_process },
    )
}

fn new_key_record() -> impl Strategy<Value = NewKeyRecord> {
    (box_id(), box_id(), hpke_ciphertext()).prop_map(|(oak, steel, sealed)| NewKeyRecord {
        oak,
        steel,
        sealed,
    })
}

fn key_for_steel() -> impl Strategy<Value = KeyForSteel> {
    (box_id(), box_id(), hpke_ciphertext()).prop_map(|(oak, steel, sealed)| KeyForSteel {
        oak,
        steel,
        sealed,
    })
}

fn meter_hello() -> impl Strategy<Value = MeterHello> {
    hpke_public_key().prop_map(|transport| MeterHello { transport })
}

fn key_for_meter() -> impl Strategy<Value = KeyForMeter> {
    hpke_ciphertext().prop_map(|sealed| KeyForMeter { sealed })
}

fn meter_test_tokens() -> impl Strategy<Value = MeterTestTokens> {
    test_tokens().prop_map(|test_tokens| MeterTestTokens { test_tokens })
}

fn installed() -> impl Strategy<Value = Installed> {
    (box_id(), box_id(), test_tokens()).prop_map(|(oak, steel, test_tokens)| Installed {
        oak,
        steel,
        test_tokens,
    })
}

fn installed_key_record() -> impl Strategy<Value = InstalledKeyRecord> {
    (box_id(), box_id(), hpke_ciphertext()).prop_map(|(oak, steel, sealed)| InstalledKeyRecord {
        oak,
        steel,
        sealed,
    })
}

fn install_confirmed() -> impl Strategy<Value = InstallConfirmed> {
    box_id().prop_map(|brass| InstallConfirmed { brass })
}

fn aborted() -> impl Strategy<Value = Aborted> {
    (box_id(), ".{0,64}").prop_map(|(steel, reason)| Aborted { steel, reason })
}

fn bad_key() -> impl Strategy<Value = BadKey> {
    (box_id(), uint(), ".{0,64}").prop_map(|(brass, code, reason)| BadKey {
        brass,
        code: code as u16,
        reason,
    })
}

// ---- Properties. ----

codec_properties! {
    cases = CASES;
    verifying_key: VerifyingKey = verifying_key();
    hpke_public_key: HpkePublicKey = hpke_public_key();
    hpke_ciphertext: HpkeCiphertext = hpke_ciphertext();
    fingerprint: Fingerprint = fingerprint();
    signature: Signature = signature();
    nonce: Nonce = nonce();
    trust_anchors: TrustAnchors = trust_anchors();
    domain_kind: DomainKind = domain_kind();
    domain_public_keys: DomainPublicKeys = domain_public_keys();
    id_range: IdRange = id_range();
    command_code: CommandCode = command_code();
    config_tables: ConfigTables = config_tables();
    share_ref: ShareRef = share_ref();
}

/// For each record body: its codec properties, and as a message and as a signed envelope: round
/// trip, and mutations refused or canonical (never verifying, for an envelope).
macro_rules! body_properties {
    ($($module:ident: $ty:ty = $strategy:expr;)*) => {$(
        mod $module {
            use super::*;

            codec_properties! {
                cases = CASES;
                body: $ty = $strategy;
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(CASES))]

                #[test]
                fn messages_round_trip(c in context(), body in $strategy) {
                    let m = Message::new(c, body);
                    let bytes = m.to_bytes();
                    prop_assert_eq!(check_message::<$ty>(&bytes), Ok(m.clone()));
                    prop_assert_eq!(assert_round_trip(&m), bytes.clone());
                    let header = peek_header(&bytes).unwrap();
                    prop_assert_eq!(&header, m.header());
                    prop_assert_eq!(header.record_type, <$ty as Body>::RECORD_TYPE);
                    prop_assert_eq!(header.version, <$ty as Body>::VERSION);
                }

                #[test]
                fn message_mutations_are_refused_or_canonical(
                    c in context(),
                    body in $strategy,
                    m in mutation(),
                ) {
                    let _ = check_message::<$ty>(&mutate(&Message::new(c, body).to_bytes(), &m));
                }

                #[test]
                fn signed_envelopes_round_trip(c in context(), body in $strategy, seed in any::<u64>()) {
                    let m = Message::new(c, body);
                    let signer = TestSigner::from_seed(seed);
                    let bytes = sign(m.clone(), &signer).as_bytes().to_vec();
                    prop_assert_eq!(check_peek_record_type(&bytes), Ok(<$ty as Body>::RECORD_TYPE));
                    let unverified = Unverified::<$ty>::from_bytes(&bytes).unwrap();
                    prop_assert_eq!(unverified.claimed_body(), m.body());
                    let verified = unverified.verify(&signer.verifying_key()).unwrap();
                    prop_assert_eq!(verified.as_bytes(), &bytes[..]);
                    prop_assert_eq!(verified.message(), &m);
                    prop_assert_eq!(check_envelope::<$ty>(&bytes, &signer.verifying_key()), Ok(()));
                }

                #[test]
                fn envelope_mutations_never_verify(c in context(), body in $strategy, m in mutation()) {
                    let signer = TestSigner::from_seed(VECTOR_KEY_SEED);
                    let mutated = mutate(sign(Message::new(c, body), &signer).as_bytes(), &m);
                    prop_assert!(check_envelope::<$ty>(&mutated, &signer.verifying_key()).is_err());
                }
            }
        }
    )*};
}

body_properties! {
    blank_offer: BlankOffer = blank_offer();
    set_id: SetId = set_id();
    box_keys: BoxKeys = box_keys();
    certificate: Certificate = certificate();
    domain_bundle: DomainBundle = domain_bundle();
    process_record: ProcessRecord = process_record();
    delivery: Delivery = delivery();
    kit: Kit = kit();
    table_update: TableUpdate = table_update();
    state_attestation: StateAttestation = state_attestation();
    dks_certificate: DomainKeySetCertificate = dks_certificate();
    transcript: Transcript = transcript();
    key_request: KeyRequest = key_request();
    generate_key: GenerateKey = generate_key();
    new_key_record: NewKeyRecord = new_key_record();
    key_for_steel: KeyForSteel = key_for_steel();
    meter_hello: MeterHello = meter_hello();
    key_for_meter: KeyForMeter = key_for_meter();
    meter_test_tokens: MeterTestTokens = meter_test_tokens();
    installed: Installed = installed();
    installed_key_record: InstalledKeyRecord = installed_key_record();
    install_confirmed: InstallConfirmed = install_confirmed();
    aborted: Aborted = aborted();
    bad_key: BadKey = bad_key();
}

/// Runs `bytes` through the decoder of every type above, as a value, a message and an envelope.
fn decode_with_every_record_decoder(bytes: &[u8]) {
    let key = TestSigner::from_seed(VECTOR_KEY_SEED).verifying_key();
    macro_rules! values {
        ($($ty:ty),*) => {$(let _ = check_codec::<$ty>(bytes);)*};
    }
    macro_rules! bodies {
        ($($ty:ty),*) => {$(
            let _ = check_codec::<$ty>(bytes);
            let _ = check_message::<$ty>(bytes);
            let _ = check_envelope::<$ty>(bytes, &key);
        )*};
    }
    values!(
        VerifyingKey,
        HpkePublicKey,
        HpkeCiphertext,
        Fingerprint,
        Signature,
        Nonce,
        TrustAnchors,
        DomainKind,
        DomainPublicKeys,
        IdRange,
        CommandCode,
        ConfigTables,
        ShareRef
    );
    bodies!(
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
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_never_panic_a_record_decoder(bytes in vec(any::<u8>(), 0..600)) {
        decode_with_every_record_decoder(&bytes);
    }

    #[test]
    fn a_record_spliced_into_another_never_panics_a_decoder(
        c in context(),
        bundle in domain_bundle(),
        transcript in transcript(),
        at in any::<proptest::sample::Index>(),
    ) {
        // Field values of one record inside another: a shape every decoder must refuse cleanly.
        let a = sign(Message::new(c.clone(), bundle), &TestSigner::from_seed(1)).as_bytes().to_vec();
        let b = codec::to_bytes(&Message::new(c, transcript));
        let mut bytes = a.clone();
        let start = at.index(a.len());
        bytes.splice(start..(start + b.len()).min(a.len()), b);
        decode_with_every_record_decoder(&bytes);
    }
}
