//! HPKE sealing and opening with the `info` binding of protocol §4, and randomness from the box
//! generator only.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_crypto::{HpkeCiphertext, HpkeInfo, HpkeRecordType};
use postkey_secrets::rng::testing::{
    FailingSource, SeededSource, SwitchedSource, inject_drbg_health_fault,
};
use postkey_secrets::rng::{BoxRng, RngError};
use postkey_secrets::{HpkePrivateKey, MasterKey, SecretError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> BoxRng {
    BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(seed)), b"hpke test").unwrap()
}

fn info(record: HpkeRecordType, domain: &str, key_id: u64, recipient: &str) -> HpkeInfo {
    HpkeInfo::new(record, domain, key_id, recipient).unwrap()
}

#[test]
fn a_sealed_key_opens_only_under_its_own_info() {
    let mut rng = rng(1);
    let brass = HpkePrivateKey::generate(&mut rng).unwrap();
    let k = MasterKey::generate(&mut rng).unwrap();
    let mi3 = info(HpkeRecordType::Mi3, "USPS", 7, "BRASS:USPS");
    let ct = k.seal_to(&brass.public_key(), &mi3, &mut rng).unwrap();
    assert_eq!(brass.open_master_key(&mi3, &ct).unwrap(), k);

    // Moved to another record type, domain, key ID or recipient: it does not open.
    for moved in [
        info(HpkeRecordType::Mi9, "USPS", 7, "BRASS:USPS"),
        info(HpkeRecordType::Mi3, "UKRM", 7, "BRASS:USPS"),
        info(HpkeRecordType::Mi3, "USPS", 8, "BRASS:USPS"),
        info(HpkeRecordType::Mi3, "USPS", 7, "BRASS:UKRM"),
    ] {
        assert_eq!(brass.open_master_key(&moved, &ct).unwrap_err(), SecretError::DecryptionFailed);
    }
    // Another recipient's key does not open it either.
    let other = HpkePrivateKey::generate(&mut rng).unwrap();
    assert!(other.open(&mi3, &ct).is_err());
}

#[test]
fn any_flipped_byte_of_a_ciphertext_is_refused() {
    let mut rng = rng(2);
    let sk = HpkePrivateKey::generate(&mut rng).unwrap();
    let i = info(HpkeRecordType::Mi4, "VE", 1, "S00000001");
    let ct = postkey_secrets::seal_secret(&sk.public_key(), &i, &[5u8; 48], &mut rng).unwrap();
    for pos in 0..32 + ct.ciphertext().len() {
        let mut enc = *ct.enc();
        let mut body = ct.ciphertext().to_vec();
        if pos < 32 {
            enc[pos] ^= 0x80;
        } else {
            body[pos - 32] ^= 0x01;
        }
        let bad = HpkeCiphertext::from_parts(enc, body).unwrap();
        assert!(sk.open(&i, &bad).is_err(), "flip at {pos} accepted");
    }
}

#[test]
fn a_ciphertext_holding_more_than_a_key_is_not_a_master_key() {
    let mut rng = rng(3);
    let sk = HpkePrivateKey::generate(&mut rng).unwrap();
    let i = info(HpkeRecordType::Mi4, "VE", 1, "S00000001");
    // MI4 carries K and the test tokens: 48 bytes, which `open_master_key` must refuse.
    let ct = postkey_secrets::seal_secret(&sk.public_key(), &i, &[5u8; 48], &mut rng).unwrap();
    assert_eq!(sk.open(&i, &ct).unwrap().len(), 48);
    assert_eq!(sk.open_master_key(&i, &ct).unwrap_err(), SecretError::DecryptionFailed);
}

#[test]
fn sealing_is_randomized_by_the_box_generator() {
    let mut a = rng(4);
    let sk = HpkePrivateKey::generate(&mut a).unwrap();
    let i = info(HpkeRecordType::Mi5, "VE", 1, "PB1234-000123");
    let k = MasterKey::from_bytes([1u8; 32]);
    let c1 = k.seal_to(&sk.public_key(), &i, &mut a).unwrap();
    let c2 = k.seal_to(&sk.public_key(), &i, &mut a).unwrap();
    assert_ne!(c1.enc(), c2.enc());
}

#[test]
fn no_ciphertext_when_the_generator_fails() {
    let mut ok = rng(5);
    let sk = HpkePrivateKey::generate(&mut ok).unwrap();
    // Kill both streams: the OS source starts failing and the DRBG's health monitor trips.
    let (os, switch) =
        SwitchedSource::new(SeededSource(ChaCha20Rng::seed_from_u64(6)), FailingSource);
    let mut dead = BoxRng::instantiate(os, b"y").unwrap();
    switch.flip();
    inject_drbg_health_fault(&mut dead);
    let i = info(HpkeRecordType::Mi5, "VE", 1, "PB1234-000123");
    let k = MasterKey::from_bytes([1u8; 32]);
    let err = k.seal_to(&sk.public_key(), &i, &mut dead).unwrap_err();
    assert_eq!(err, SecretError::Rng(RngError::BothSourcesFailed));
    // With only the OS source dead, sealing goes on from the DRBG.
    let (os, switch) =
        SwitchedSource::new(SeededSource(ChaCha20Rng::seed_from_u64(7)), FailingSource);
    let mut half = BoxRng::instantiate(os, b"z").unwrap();
    switch.flip();
    let ct = k.seal_to(&sk.public_key(), &i, &mut half).unwrap();
    assert_eq!(sk.open_master_key(&i, &ct).unwrap(), k);
    assert!(!half.take_alarms().is_empty());
}
