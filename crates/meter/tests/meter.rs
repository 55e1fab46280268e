//! The meter SDK: a key enters only through MI5 for this meter, once per domain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_crypto::{HpkeInfo, HpkeRecordType};
use postkey_meter::{Meter, MeterError};
use postkey_secrets::MasterKey;
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_wire::{Context, DomainId, KeyForMeter, KeyId, Message, MeterId, Sender, Timestamp};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> BoxRng {
    BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(seed)), b"meter test").unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_unix_micros(1_795_977_434_000_000)
}

/// MI5 as a Steel box would make it, for `meter_id`, sealed to `meter`'s transport key.
fn mi5(meter: &Meter, meter_id: &str, domain: &str, key_id: u64, key: &MasterKey) -> Vec<u8> {
    let transport = meter.hello(DomainId::parse(domain).unwrap(), now()).body().transport;
    let info = HpkeInfo::new(HpkeRecordType::Mi5, domain, key_id, meter_id).unwrap();
    let sealed = key.seal_to(&transport, &info, &mut rng(2)).unwrap();
    let context = Context {
        domain: DomainId::parse(domain).unwrap(),
        sender: Sender::Box(postkey_wire::BoxId::parse("S00000001").unwrap()),
        meter_id: Some(MeterId::parse(meter_id).unwrap()),
        key_id: Some(KeyId::new(key_id).unwrap()),
        state_version: None,
        timestamp: now(),
    };
    Message::new(context, KeyForMeter { sealed }).to_bytes()
}

#[test]
fn a_meter_installs_one_key_per_domain_and_answers_its_test_tokens() {
    let id = "PB1234-000001";
    let mut meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(1)).unwrap();
    let k = MasterKey::from_bytes([3; 32]);
    let mi6 = meter.install(&mi5(&meter, id, "USPS", 7, &k), now()).unwrap();
    assert_eq!(mi6.body().test_tokens, k.test_tokens());
    assert_eq!(mi6.header().key_id, Some(KeyId::new(7).unwrap()));
    // A second key of the same domain: refused, the first stays.
    let again = meter
        .install(&mi5(&meter, id, "USPS", 8, &MasterKey::from_bytes([4; 32])), now())
        .unwrap_err();
    assert_eq!(again, MeterError::AlreadyInstalled(DomainId::parse("USPS").unwrap()));
    // The vendor key, then nothing more.
    meter.install(&mi5(&meter, id, "VE", 1, &MasterKey::from_bytes([5; 32])), now()).unwrap();
    assert_eq!(
        meter.install(&mi5(&meter, id, "EARTH", 1, &k), now()).unwrap_err(),
        MeterError::Full
    );
    assert_eq!(meter.keys().len(), 2);
}

#[test]
fn mi5_for_another_meter_or_moved_key_id_is_refused() {
    let id = "PB1234-000002";
    let mut meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(3)).unwrap();
    let k = MasterKey::from_bytes([6; 32]);
    let other = meter.install(&mi5(&meter, "PB1234-000003", "USPS", 1, &k), now()).unwrap_err();
    assert!(matches!(other, MeterError::NotThisMeter(_)));
    // Sealed for key 1, presented as key 2: the HPKE info binds the key ID.
    let mut bytes = mi5(&meter, id, "USPS", 1, &k);
    let sealed_for_1 = Message::<KeyForMeter>::from_bytes(&bytes).unwrap().body().sealed.clone();
    let context = Context { key_id: Some(KeyId::new(2).unwrap()), ..context_of(&bytes) };
    bytes = Message::new(context, KeyForMeter { sealed: sealed_for_1 }).to_bytes();
    assert_eq!(meter.install(&bytes, now()).unwrap_err(), MeterError::DoesNotOpen);
    assert!(meter.keys().is_empty());
}

fn context_of(bytes: &[u8]) -> Context {
    let m = Message::<KeyForMeter>::from_bytes(bytes).unwrap();
    let h = m.header();
    Context {
        domain: h.domain.clone(),
        sender: h.sender.clone(),
        meter_id: h.meter_id.clone(),
        key_id: h.key_id,
        state_version: h.state_version,
        timestamp: h.timestamp,
    }
}

#[test]
fn the_simulator_file_round_trips_and_debug_shows_no_key() {
    let id = "PB1234-000004";
    let mut meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(4)).unwrap();
    let k = MasterKey::from_bytes([0xAB; 32]);
    meter.install(&mi5(&meter, id, "USPS", 9, &k), now()).unwrap();
    let file = meter.to_simulator_file();
    let back = Meter::from_simulator_file(&file).unwrap();
    assert_eq!(back.keys()[&DomainId::parse("USPS").unwrap()].master_key(), &k);
    let debug = format!("{back:?}");
    assert!(!debug.to_lowercase().contains("abab"), "{debug}");
    assert!(Meter::from_simulator_file(&file[..file.len() - 1]).is_err());
}
