//! Secret types never show their bytes: `{:?}` of every one is checked against the hex and the
//! decimal array rendering of its key bytes.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_secrets::rng::{BoxRng, testing::SeededSource};
use postkey_secrets::shares::ShareValue;
use postkey_secrets::{
    DomainKeySetSeed, HpkePrivateKey, MasterKey, OperationCombination, SecretBytes, SigningKey,
    StateSealingKey, SubdomainAuthKey, SubdomainConfKey, TokenKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const BYTES: [u8; 32] = [
    0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76,
    0x98, 0xba, 0xdc, 0xfe, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
];

fn assert_redacted(debug: String) {
    let lower: String = BYTES.iter().map(|b| format!("{b:02x}")).collect();
    let upper = lower.to_uppercase();
    let decimal = format!("{:?}", &BYTES[..4]).trim_end_matches(']').to_owned();
    for needle in [&lower[..8], &upper[..8], "222, 173, 190, 239", &decimal[1..]] {
        assert!(!debug.contains(needle), "{debug} shows key bytes ({needle})");
    }
    assert!(debug.contains("redacted"), "{debug} does not say it is redacted");
}

#[test]
fn debug_of_every_secret_type_shows_no_key_bytes() {
    assert_redacted(format!("{:?}", MasterKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", TokenKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", OperationCombination::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", DomainKeySetSeed::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", SubdomainConfKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", SubdomainAuthKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", StateSealingKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", SigningKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", HpkePrivateKey::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", ShareValue::from_bytes(BYTES)));
    assert_redacted(format!("{:?}", SecretBytes::new(BYTES.to_vec())));
    assert_redacted(format!("{:#?}", MasterKey::from_bytes(BYTES)));
}

#[test]
fn the_check_can_fail() {
    // A type that shows its bytes is caught by the check above.
    let leaky = format!("Leaky({:02x?})", BYTES);
    let caught = std::panic::catch_unwind(|| assert_redacted(leaky));
    assert!(caught.is_err());
}

#[test]
fn secrets_compare_in_constant_time_by_value() {
    assert_eq!(MasterKey::from_bytes(BYTES), MasterKey::from_bytes(BYTES));
    let mut other = BYTES;
    other[31] ^= 1;
    assert_ne!(MasterKey::from_bytes(BYTES), MasterKey::from_bytes(other));
}

#[test]
fn generated_keys_come_from_the_box_generator_and_differ() {
    let mut rng =
        BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(1)), b"test").unwrap();
    let a = MasterKey::generate(&mut rng).unwrap();
    let b = MasterKey::generate(&mut rng).unwrap();
    assert_ne!(a, b);
    assert_ne!(a.expose_secret(), &[0u8; 32]);
}

#[test]
fn debug_of_signed_shares_shows_no_share_bytes() {
    use postkey_secrets::shares::{SplitSpec, split};
    use postkey_wire::{BoxId, BoxType, ShareSetId, Timestamp};
    let mut rng =
        BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(2)), b"test").unwrap();
    let secret = OperationCombination::from_bytes(BYTES);
    let id = BoxId::new(BoxType::Oak, 1).unwrap();
    let spec = SplitSpec {
        set: ShareSetId([1; 16]),
        owner: id,
        issuer: id,
        threshold: 2,
        count: 2,
        timestamp: Timestamp::from_unix_micros(0),
    };
    let shares = split(&secret, &spec, &SigningKey::from_bytes([7; 32]), &mut rng).unwrap();
    for share in &shares {
        let debug = format!("{share:?}");
        let value: String =
            share.body().share.expose_secret().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!debug.contains(&value[..16]), "{debug}");
        let decimal = format!("{:?}", &share.body().share.expose_secret()[..6]);
        assert!(!debug.contains(decimal.trim_matches(|c| c == '[' || c == ']')), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }
}
