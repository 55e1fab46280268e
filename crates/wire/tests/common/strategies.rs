//! Proptest strategies for the identifiers and headers every record carries, the mutations a
//! valid encoding is put through, and the `codec_properties!` macro that gives a type its
//! round-trip and mutation properties. Shared by `codec_props.rs` and `record_props.rs`.
//!
//! Every value a strategy produces is valid, so it must round-trip.

#![allow(unused_imports, unused_macros)]

use core::fmt::Debug;

use minicbor::{Decode, Encode};
use postkey_wire::{
    BoxId, BoxType, Context, Country, Date, DomainId, Header, Isn, KeyId, MeterId, Msn,
    ProductCode, RecordType, RegistrationToken, Role, Sender, SharePurpose, ShareSetId,
    StateVersion, SubdomainId, TestTokens, Timestamp, Token, Zip, codec,
};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::check_codec;

/// Unsigned integers spread over every CBOR argument length (inline, 1, 2, 4 and 8 bytes).
pub(crate) fn uint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..24u64,
        24..0x100u64,
        0x100..0x1_0000u64,
        0x1_0000..0x1_0000_0000u64,
        any::<u64>()
    ]
}

pub(crate) fn box_id() -> impl Strategy<Value = BoxId> {
    (select(BoxType::ALL.to_vec()), 1..=BoxId::MAX_NUMBER)
        .prop_map(|(t, n)| BoxId::new(t, n).unwrap())
}

pub(crate) fn domain_id() -> impl Strategy<Value = DomainId> {
    "[A-Z0-9]{2,8}".prop_map(|s| DomainId::parse(&s).unwrap())
}

pub(crate) fn country() -> impl Strategy<Value = Country> {
    "[A-Z]{2}".prop_map(|s| Country::parse(&s).unwrap())
}

pub(crate) fn subdomain_id() -> impl Strategy<Value = SubdomainId> {
    (domain_id(), country()).prop_map(|(d, c)| SubdomainId::new(d, c))
}

pub(crate) fn product_code() -> impl Strategy<Value = ProductCode> {
    "[A-Z]{2}[0-9]{1,6}".prop_map(|s| ProductCode::parse(&s).unwrap())
}

pub(crate) fn msn() -> impl Strategy<Value = Msn> {
    "[0-9]{6,10}".prop_map(|s| Msn::parse(&s).unwrap())
}

pub(crate) fn meter_id() -> impl Strategy<Value = MeterId> {
    (product_code(), msn()).prop_map(|(p, m)| MeterId::new(p, m))
}

pub(crate) fn isn() -> impl Strategy<Value = Isn> {
    "[A-Z0-9]{1,16}".prop_map(|s| Isn::parse(&s).unwrap())
}

pub(crate) fn zip() -> impl Strategy<Value = Zip> {
    "[A-Z0-9]{1,10}".prop_map(|s| Zip::parse(&s).unwrap())
}

pub(crate) fn key_id() -> impl Strategy<Value = KeyId> {
    uint().prop_map(|n| KeyId::new(n.max(1)).unwrap())
}

pub(crate) fn state_version() -> impl Strategy<Value = StateVersion> {
    uint().prop_map(StateVersion)
}

pub(crate) fn date() -> impl Strategy<Value = Date> {
    (2000u16..=9999, 1u8..=12, 1u8..=31)
        .prop_filter_map("no such day in that month", |(y, m, d)| Date::new(y, m, d).ok())
}

pub(crate) fn timestamp() -> impl Strategy<Value = Timestamp> {
    uint().prop_map(Timestamp::from_unix_micros)
}

pub(crate) fn record_type() -> impl Strategy<Value = RecordType> {
    uint().prop_map(|n| RecordType(n as u16))
}

pub(crate) fn token() -> impl Strategy<Value = Token> {
    any::<[u8; 8]>().prop_map(Token::from_bytes)
}

pub(crate) fn test_tokens() -> impl Strategy<Value = TestTokens> {
    any::<[u8; 16]>().prop_map(TestTokens::from_bytes)
}

pub(crate) fn registration_token() -> impl Strategy<Value = RegistrationToken> {
    any::<[u8; 8]>().prop_map(RegistrationToken::from_bytes)
}

pub(crate) fn share_set_id() -> impl Strategy<Value = ShareSetId> {
    any::<[u8; 16]>().prop_map(ShareSetId)
}

pub(crate) fn share_purpose() -> impl Strategy<Value = SharePurpose> {
    select(vec![SharePurpose::OperationCombination, SharePurpose::DomainKeySet])
}

pub(crate) fn sender() -> impl Strategy<Value = Sender> {
    let role = select(vec![Role::Kmc, Role::Kdc, Role::Psr, Role::DataCapture, Role::Auditor]);
    prop_oneof![
        box_id().prop_map(Sender::Box),
        Just(Sender::BlankBox),
        meter_id().prop_map(Sender::Meter),
        role.prop_map(Sender::Role),
    ]
}

pub(crate) fn header() -> impl Strategy<Value = Header> {
    (
        record_type(),
        uint().prop_map(|n| n as u16),
        domain_id(),
        sender(),
        option::of(meter_id()),
        option::of(key_id()),
        option::of(state_version()),
        timestamp(),
    )
        .prop_map(
            |(record_type, version, domain, sender, meter_id, key_id, state_version, timestamp)| {
                Header {
                    record_type,
                    version,
                    domain,
                    sender,
                    meter_id,
                    key_id,
                    state_version,
                    timestamp,
                }
            },
        )
}

pub(crate) fn context() -> impl Strategy<Value = Context> {
    (
        domain_id(),
        sender(),
        option::of(meter_id()),
        option::of(key_id()),
        option::of(state_version()),
        timestamp(),
    )
        .prop_map(|(domain, sender, meter_id, key_id, state_version, timestamp)| Context {
            domain,
            sender,
            meter_id,
            key_id,
            state_version,
            timestamp,
        })
}

// ---- Mutations of a valid encoding. ----

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Keep a strict prefix.
    Truncate(Index),
    /// Add a byte at the end.
    Append(u8),
    /// Insert a byte anywhere.
    Insert(Index, u8),
    /// Remove one byte.
    Remove(Index),
}

pub(crate) fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=u8::MAX).prop_map(|(i, m)| Mutation::Flip(i, m)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<u8>().prop_map(Mutation::Append),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
    ]
}

/// `bytes` with `m` applied; always differs from `bytes` (which is never empty).
pub(crate) fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match m {
        Mutation::Flip(i, mask) => out[i.index(bytes.len())] ^= mask,
        Mutation::Truncate(i) => out.truncate(i.index(bytes.len())),
        Mutation::Append(b) => out.push(*b),
        Mutation::Insert(i, b) => out.insert(i.index(bytes.len() + 1), *b),
        Mutation::Remove(i) => {
            out.remove(i.index(bytes.len()));
        }
    }
    out
}

/// Encode → decode gives back the value, and its encoding is the bytes decoded.
pub(crate) fn assert_round_trip<T>(value: &T) -> Vec<u8>
where
    T: Encode<()> + for<'b> Decode<'b, ()> + PartialEq + Debug,
{
    let bytes = codec::to_bytes(value);
    let back: T = check_codec(&bytes).unwrap_or_else(|e| panic!("{value:?} does not decode: {e}"));
    assert_eq!(&back, value);
    bytes
}

/// For each type: a round-trip property and a mutation property, in a module named for the type.
/// `cases = N;` first sets the number of cases; without it, proptest's default applies.
macro_rules! codec_properties {
    (cases = $cases:expr; $($module:ident: $ty:ty = $strategy:expr;)*) => {$(
        mod $module {
            use super::*;
            use $crate::common::check_codec;
            use $crate::common::strategies::{assert_round_trip, mutate, mutation};

            proptest! {
                #![proptest_config(ProptestConfig::with_cases($cases))]

                #[test]
                fn round_trips(value in $strategy) {
                    assert_round_trip::<$ty>(&value);
                }

                #[test]
                fn mutations_are_refused_or_canonical(value in $strategy, m in mutation()) {
                    let _ = check_codec::<$ty>(&mutate(&postkey_wire::codec::to_bytes(&value), &m));
                }
            }
        }
    )*};
    ($($module:ident: $ty:ty = $strategy:expr;)*) => {
        $crate::common::strategies::codec_properties! {
            cases = ProptestConfig::default().cases;
            $($module: $ty = $strategy;)*
        }
    };
}

pub(crate) use codec_properties;
