//! Sealed box state (protocol §7.2 item 6): AES-256-GCM-SIV under a key derived from the operation
//! combination and the box ID, with the state header as associated data.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_secrets::{OperationCombination, SecretError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn setup() -> (OperationCombination, BoxRng) {
    let mut rng =
        BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(9)), b"seal").unwrap();
    (OperationCombination::generate(&mut rng).unwrap(), rng)
}

#[test]
fn state_opens_only_with_its_header_box_and_combination() {
    let (oc, mut rng) = setup();
    let key = oc.state_sealing_key("S00000001");
    let header = b"S00000001 v7";
    let sealed = key.seal(header, b"the box state", &mut rng).unwrap();
    assert_eq!(key.open(header, &sealed).unwrap().expose_secret(), b"the box state");

    assert_eq!(key.open(b"S00000001 v6", &sealed).unwrap_err(), SecretError::SealedStateInvalid);
    let other_box = oc.state_sealing_key("S00000002");
    assert!(other_box.open(header, &sealed).is_err());
    let other_oc = OperationCombination::generate(&mut rng).unwrap();
    assert!(other_oc.state_sealing_key("S00000001").open(header, &sealed).is_err());
}

#[test]
fn every_flipped_bit_and_every_truncation_is_refused() {
    let (oc, mut rng) = setup();
    let key = oc.state_sealing_key("O00000001");
    let sealed = key.seal(b"h", &[7u8; 40], &mut rng).unwrap();
    for bit in 0..sealed.len() * 8 {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(key.open(b"h", &bad).is_err(), "bit {bit}");
    }
    for len in 0..sealed.len() {
        assert!(key.open(b"h", &sealed[..len]).is_err(), "truncated to {len}");
    }
}

#[test]
fn two_seals_of_one_state_differ() {
    let (oc, mut rng) = setup();
    let key = oc.state_sealing_key("B00000001");
    assert_ne!(key.seal(b"h", b"x", &mut rng).unwrap(), key.seal(b"h", b"x", &mut rng).unwrap());
}
