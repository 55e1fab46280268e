//! Properties of every decodable wire type (STYLE habit 6): a value survives encode → decode with
//! identical bytes; a mutated encoding is refused or is exactly the canonical encoding of what it
//! decodes to; no input makes a decoder panic; and a signed envelope verifies only unaltered,
//! under the right key, as the right record type and version, within its size limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::strategies::{
    assert_round_trip, box_id, codec_properties, context, country, date, domain_id, header, isn,
    key_id, meter_id, msn, mutate, mutation, product_code, record_type, registration_token, sender,
    share_purpose, share_set_id, state_version, subdomain_id, test_tokens, timestamp, token, uint,
    zip,
};
use common::{
    OTHER_RECORD, OtherBody, TEST_RECORD, TestBody, TestBodyV2, TestSigner, check_codec,
    check_envelope, check_message, check_peek_record_type, error_name, full_body, full_context,
};
use postkey_crypto::Signer as _;
use postkey_wire::{
    BoxId, Country, Date, DomainId, Header, Isn, KeyId, Message, MeterId, Msn, ProductCode,
    RecordType, RegistrationToken, Sender, SharePurpose, ShareSetId, StateVersion, SubdomainId,
    TestTokens, Timestamp, Token, Unverified, WireError, Zip, codec, peek_header, sign,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;

// ---- Strategies of the test body; the others are in `common::strategies`. ----

fn test_body() -> impl Strategy<Value = TestBody> {
    (uint(), option::of(".{0,16}"), vec(any::<u8>(), 0..64), option::of(meter_id())).prop_map(
        |(count, label, payload, meter)| TestBody { count: count as u32, label, payload, meter },
    )
}

fn message() -> impl Strategy<Value = Message<TestBody>> {
    (context(), test_body()).prop_map(|(c, b)| Message::new(c, b))
}

/// Runs `bytes` through every decoder; each either refuses or accepts exactly canonical bytes.
fn decode_with_everything(bytes: &[u8]) {
    let key = TestSigner::from_seed(common::VECTOR_KEY_SEED).verifying_key();
    let _ = check_codec::<BoxId>(bytes);
    let _ = check_codec::<DomainId>(bytes);
    let _ = check_codec::<Country>(bytes);
    let _ = check_codec::<SubdomainId>(bytes);
    let _ = check_codec::<ProductCode>(bytes);
    let _ = check_codec::<Msn>(bytes);
    let _ = check_codec::<MeterId>(bytes);
    let _ = check_codec::<Isn>(bytes);
    let _ = check_codec::<Zip>(bytes);
    let _ = check_codec::<KeyId>(bytes);
    let _ = check_codec::<StateVersion>(bytes);
    let _ = check_codec::<Date>(bytes);
    let _ = check_codec::<Timestamp>(bytes);
    let _ = check_codec::<RecordType>(bytes);
    let _ = check_codec::<Sender>(bytes);
    let _ = check_codec::<Token>(bytes);
    let _ = check_codec::<TestTokens>(bytes);
    let _ = check_codec::<RegistrationToken>(bytes);
    let _ = check_codec::<ShareSetId>(bytes);
    let _ = check_codec::<SharePurpose>(bytes);
    let _ = check_codec::<Header>(bytes);
    let _ = check_codec::<Message<TestBody>>(bytes);
    let _ = check_message::<TestBody>(bytes);
    let _ = peek_header(bytes);
    let _ = check_peek_record_type(bytes);
    let _ = check_envelope::<TestBody>(bytes, &key);
}

codec_properties! {
    box_id: BoxId = box_id();
    domain_id: DomainId = domain_id();
    country: Country = country();
    subdomain_id: SubdomainId = subdomain_id();
    product_code: ProductCode = product_code();
    msn: Msn = msn();
    meter_id: MeterId = meter_id();
    isn: Isn = isn();
    zip: Zip = zip();
    key_id: KeyId = key_id();
    state_version: StateVersion = state_version();
    date: Date = date();
    timestamp: Timestamp = timestamp();
    record_type: RecordType = record_type();
    sender: Sender = sender();
    token: Token = token();
    test_tokens: TestTokens = test_tokens();
    registration_token: RegistrationToken = registration_token();
    share_set_id: ShareSetId = share_set_id();
    share_purpose: SharePurpose = share_purpose();
    header: Header = header();
}

proptest! {
    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = m.to_bytes();
        prop_assert_eq!(check_message::<TestBody>(&bytes), Ok(m.clone()));
        prop_assert_eq!(assert_round_trip(&m), bytes.clone());
        prop_assert_eq!(&peek_header(&bytes).unwrap(), m.header());
    }

    #[test]
    fn message_mutations_are_refused_or_canonical(m in message(), mutation in mutation()) {
        let _ = check_message::<TestBody>(&mutate(&m.to_bytes(), &mutation));
    }

    #[test]
    fn signed_envelopes_round_trip(m in message(), seed in any::<u64>()) {
        let signer = TestSigner::from_seed(seed);
        let signed = sign(m.clone(), &signer);
        let bytes = signed.as_bytes().to_vec();
        prop_assert_eq!(check_peek_record_type(&bytes), Ok(TEST_RECORD));
        let unverified = Unverified::<TestBody>::from_bytes(&bytes).unwrap();
        prop_assert_eq!(unverified.header(), m.header());
        let verified = unverified.verify(&signer.verifying_key()).unwrap();
        prop_assert_eq!(verified.as_bytes(), &bytes[..]);
        prop_assert_eq!(verified.message(), &m);
        prop_assert_eq!(check_envelope::<TestBody>(&bytes, &signer.verifying_key()), Ok(()));
    }

    #[test]
    fn envelope_mutations_never_verify(m in message(), mutation in mutation()) {
        let signer = TestSigner::from_seed(7);
        let mutated = mutate(sign(m, &signer).as_bytes(), &mutation);
        prop_assert!(check_envelope::<TestBody>(&mutated, &signer.verifying_key()).is_err());
    }

    #[test]
    fn another_key_is_a_bad_signature(m in message(), seed in 1..u64::MAX) {
        let signed = sign(m, &TestSigner::from_seed(0));
        let other = TestSigner::from_seed(seed).verifying_key();
        let unverified = Unverified::<TestBody>::from_bytes(signed.as_bytes()).unwrap();
        prop_assert_eq!(unverified.verify(&other).unwrap_err(), WireError::BadSignature);
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in vec(any::<u8>(), 0..600)) {
        decode_with_everything(&bytes);
    }

    #[test]
    fn a_valid_envelope_with_a_random_splice_never_panics_a_decoder(
        m in message(),
        at in any::<Index>(),
        cut in 0..16usize,
        splice in vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = sign(m, &TestSigner::from_seed(1)).as_bytes().to_vec();
        let start = at.index(bytes.len());
        let end = (start + cut).min(bytes.len());
        bytes.splice(start..end, splice);
        decode_with_everything(&bytes);
        // The message inside an envelope starts a few bytes in; splice it directly too.
        decode_with_everything(bytes.get(9..).unwrap_or_default());
    }
}

#[test]
fn every_bit_flip_of_an_envelope_is_refused() {
    let signer = TestSigner::from_seed(1);
    let envelope = sign(Message::new(full_context(), full_body()), &signer).as_bytes().to_vec();
    let mut seen = BTreeSet::new();
    for bit in 0..envelope.len() * 8 {
        let mut flipped = envelope.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let verdict = Unverified::<TestBody>::from_bytes(&flipped)
            .and_then(|u| u.verify(&signer.verifying_key()));
        match verdict {
            Ok(_) => panic!("bit {bit} flipped and the envelope still verified"),
            Err(e) => seen.insert(error_name(&e)),
        };
    }
    // Flips in the message or signature reach the signature check; flips in the framing do not.
    assert!(seen.contains("BadSignature"), "{seen:?}");
    assert!(seen.contains("Malformed"), "{seen:?}");
    assert!(seen.contains("WrongRecordType"), "{seen:?}");
}

#[test]
fn the_right_key_gives_a_verified_record_with_the_bytes_received() {
    let signer = TestSigner::from_seed(1);
    let message = Message::new(full_context(), full_body());
    let envelope = sign(message.clone(), &signer).as_bytes().to_vec();
    let verified = Unverified::<TestBody>::from_bytes(&envelope)
        .unwrap()
        .verify(&signer.verifying_key())
        .unwrap();
    assert_eq!(verified.as_bytes(), envelope);
    assert_eq!(verified.body(), &full_body());
    assert_eq!(verified.into_message(), message);
}

#[test]
fn an_envelope_of_another_record_type_is_refused_as_such() {
    let signer = TestSigner::from_seed(1);
    let other = sign(Message::new(full_context(), OtherBody { note: "x".into() }), &signer);
    assert_eq!(
        Unverified::<TestBody>::from_bytes(other.as_bytes()).unwrap_err(),
        WireError::WrongRecordType { found: OTHER_RECORD, expected: TEST_RECORD }
    );
    assert_eq!(
        Message::<TestBody>::from_bytes(&other.message().to_bytes()).unwrap_err(),
        WireError::WrongRecordType { found: OTHER_RECORD, expected: TEST_RECORD }
    );
}

#[test]
fn a_message_of_another_version_is_refused_as_such() {
    let signer = TestSigner::from_seed(1);
    let v2 = sign(Message::new(full_context(), TestBodyV2 { count: 3 }), &signer);
    let want = WireError::UnsupportedVersion { record_type: TEST_RECORD, found: 2, expected: 1 };
    assert_eq!(Unverified::<TestBody>::from_bytes(v2.as_bytes()).unwrap_err(), want);
    assert_eq!(Message::<TestBody>::from_bytes(&v2.message().to_bytes()).unwrap_err(), want);
}

#[test]
fn oversize_input_is_refused_before_decoding() {
    let signer = TestSigner::from_seed(1);
    let big = TestBody { payload: vec![0; 600], ..full_body() };
    let signed = sign(Message::new(full_context(), big), &signer);
    let message = signed.message().to_bytes();
    assert_eq!(
        Message::<TestBody>::from_bytes(&message).unwrap_err(),
        WireError::TooLarge { len: message.len(), max: 512 }
    );
    assert!(matches!(
        Unverified::<TestBody>::from_bytes(signed.as_bytes()).unwrap_err(),
        WireError::TooLarge { .. }
    ));
    let huge = vec![0; codec::MAX_MESSAGE_LEN + 1];
    assert_eq!(
        codec::from_bytes::<Header>(&huge, usize::MAX).unwrap_err(),
        WireError::TooLarge { len: huge.len(), max: codec::MAX_MESSAGE_LEN }
    );
}

#[test]
fn a_trailing_byte_is_refused_as_such() {
    let signer = TestSigner::from_seed(1);
    let signed = sign(Message::new(full_context(), full_body()), &signer);
    let with_tail = |bytes: &[u8]| [bytes, &[0]].concat();
    assert_eq!(
        Unverified::<TestBody>::from_bytes(&with_tail(signed.as_bytes())).unwrap_err(),
        WireError::Trailing(1)
    );
    assert_eq!(
        Message::<TestBody>::from_bytes(&with_tail(&signed.message().to_bytes())).unwrap_err(),
        WireError::Trailing(1)
    );
    let header = codec::to_bytes(signed.header());
    assert_eq!(check_codec::<Header>(&with_tail(&header)).unwrap_err(), WireError::Trailing(1));
}
