//! The meter SDK: a key enters only through MI5 for this meter, once per domain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_crypto::{HpkeInfo, HpkeRecordType};
use postkey_meter::{Meter, MeterError, SimulatedMeter};
use postkey_secrets::MasterKey;
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_wire::{
    Context, DomainId, KeyForMeter, KeyId, Message, MeterId, MeterLink, ResponseCode, Sender,
    Timestamp,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> BoxRng {
    BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(seed)), b"meter test").unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_unix_micros(1_795_977_434_000_000)
}

/// MI5 as a Steel box would make it, for `meter_id`, sealed to `meter`'s transport key.
fn mi5(
    meter: &Meter,
    meter_id: &str,
    domain: &str,
    key_id: u64,
    key: &MasterKey,
) -> Message<KeyForMeter> {
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
    Message::new(context, KeyForMeter { sealed })
}

#[test]
fn a_meter_installs_one_key_per_domain_and_answers_its_test_tokens() {
    let id = "PB1234-000001";
    let usps = DomainId::parse("USPS").unwrap();
    let mut meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(1)).unwrap();
    let k = MasterKey::from_bytes([3; 32]);
    let mi6 = meter.install(&mi5(&meter, id, "USPS", 7, &k), now()).unwrap();
    assert_eq!(mi6.body().test_tokens, k.test_tokens());
    assert_eq!(mi6.header().key_id, Some(KeyId::new(7).unwrap()));
    // The same key again, or an older one replayed: refused, the key stays.
    for replayed in [7, 6] {
        let again = meter
            .install(&mi5(&meter, id, "USPS", replayed, &MasterKey::from_bytes([4; 32])), now())
            .unwrap_err();
        let held = KeyId::new(7).unwrap();
        assert_eq!(again, MeterError::AlreadyInstalled { domain: usps.clone(), held });
        assert_eq!(again.to_refusal().code, ResponseCode::RECORD_MISMATCH);
    }
    assert_eq!(meter.keys()[&usps].key_id, KeyId::new(7).unwrap());
    // The vendor key, then nothing more.
    meter.install(&mi5(&meter, id, "VE", 1, &MasterKey::from_bytes([5; 32])), now()).unwrap();
    let full = meter.install(&mi5(&meter, id, "EARTH", 1, &k), now()).unwrap_err();
    assert_eq!(full, MeterError::Full);
    assert_eq!(full.to_refusal().code, ResponseCode::RECORD_MISMATCH);
    assert_eq!(meter.keys().len(), 2);
    // A newer key of a domain it holds replaces the old one (the KMS orders one only when the
    // old key became `Bad`).
    let newer = MasterKey::from_bytes([8; 32]);
    let mi6 = meter.install(&mi5(&meter, id, "USPS", 9, &newer), now()).unwrap();
    assert_eq!(mi6.body().test_tokens, newer.test_tokens());
    assert_eq!(meter.keys()[&usps].key_id, KeyId::new(9).unwrap());
    assert_eq!(meter.keys().len(), 2);
}

#[test]
fn mi5_for_another_meter_or_moved_key_id_is_refused() {
    let id = "PB1234-000002";
    let mut meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(3)).unwrap();
    let k = MasterKey::from_bytes([6; 32]);
    let other = meter.install(&mi5(&meter, "PB1234-000003", "USPS", 1, &k), now()).unwrap_err();
    assert_eq!(other, MeterError::NotThisMeter(MeterId::parse("PB1234-000003").unwrap()));
    assert_eq!(other.to_refusal().code, ResponseCode::RECORD_NOT_FOR_THIS_BOX);
    // Sealed for key 1, presented as key 2: the HPKE info binds the key ID.
    let for_1 = mi5(&meter, id, "USPS", 1, &k);
    let context = Context { key_id: Some(KeyId::new(2).unwrap()), ..context_of(&for_1) };
    let moved = Message::new(context, KeyForMeter { sealed: for_1.body().sealed.clone() });
    let e = meter.install(&moved, now()).unwrap_err();
    assert_eq!(e, MeterError::DoesNotOpen);
    assert_eq!(e.to_refusal().code, ResponseCode::DECRYPTION_FAILED);
    // Sealed for USPS, presented as another domain's key: the info binds the domain too.
    let context = Context { domain: DomainId::parse("VE").unwrap(), ..context_of(&for_1) };
    let moved = Message::new(context, KeyForMeter { sealed: for_1.body().sealed.clone() });
    assert_eq!(meter.install(&moved, now()).unwrap_err(), MeterError::DoesNotOpen);
    // Without a key ID or a meter ID in the header: malformed.
    let context = Context { key_id: None, ..context_of(&for_1) };
    let bare = Message::new(context, KeyForMeter { sealed: for_1.body().sealed.clone() });
    let e = meter.install(&bare, now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::PARAMETER_SYNTAX);
    let context = Context { meter_id: None, ..context_of(&for_1) };
    let bare = Message::new(context, KeyForMeter { sealed: for_1.body().sealed.clone() });
    let e = meter.install(&bare, now()).unwrap_err();
    assert_eq!(e.response_code(), ResponseCode::PARAMETER_SYNTAX);
    assert!(meter.keys().is_empty());
    // The genuine MI5 still installs.
    assert!(meter.install(&for_1, now()).is_ok());
}

fn context_of(m: &Message<KeyForMeter>) -> Context {
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

#[test]
fn the_simulator_answers_on_the_meter_link_with_the_meters_refusals() {
    let id = "PB1234-000005";
    let meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(5)).unwrap();
    let usps = DomainId::parse("USPS").unwrap();
    let mut link = SimulatedMeter::new(meter);
    let hello = link.hello(&usps, now()).unwrap();
    assert_eq!(hello.header().sender, Sender::Meter(MeterId::parse(id).unwrap()));
    assert_eq!(hello.body().transport, link.meter().hello(usps.clone(), now()).body().transport);
    let k = MasterKey::from_bytes([7; 32]);
    let key = mi5(&link.meter(), id, "USPS", 3, &k);
    let mi6 = link.install(&key, now()).unwrap();
    assert_eq!(mi6.body().test_tokens, k.test_tokens());
    assert_eq!(mi6.header().key_id, Some(KeyId::new(3).unwrap()));
    // A clone shares the meter: the key is there, and the same one again (or an older one) is
    // refused over the link.
    let shared = link.clone();
    assert_eq!(shared.meter().keys()[&usps].key_id, KeyId::new(3).unwrap());
    let again = mi5(&link.meter(), id, "USPS", 2, &MasterKey::from_bytes([8; 32]));
    let refusal = link.install(&again, now()).unwrap_err();
    assert_eq!(refusal.code, ResponseCode::RECORD_MISMATCH);
    assert_eq!(shared.meter().keys()[&usps].key_id, KeyId::new(3).unwrap());
}

/// The published `registration_token` vectors, made again through the meter's own path: a meter
/// holding the vector's key (and a vendor key) registers with the vector's ISN, country and date,
/// and its MR1 for that key carries the vector's token.
#[test]
fn registration_requests_carry_the_published_registration_tokens() {
    use postkey_secrets::vectors::{self, Value};
    use postkey_wire::{Date, Isn, SubdomainId};
    let field = |v: &[(&str, Value)], name: &str| {
        v.iter()
            .find_map(|(n, value)| match value {
                Value::Str(s) if *n == name => Some(s.clone()),
                _ => None,
            })
            .unwrap()
    };
    let mut checked = 0;
    for v in vectors::all().unwrap() {
        if field(&v, "kind") != "registration_token" {
            continue;
        }
        let id = format!("{}-{}", field(&v, "product_code"), field(&v, "msn"));
        let raw: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&field(&v, "master_key")[i..i + 2], 16).unwrap())
            .collect();
        let key = MasterKey::from_bytes(raw.try_into().unwrap());
        let mut meter = Meter::manufacture(MeterId::parse(&id).unwrap(), &mut rng(3)).unwrap();
        meter.install(&mi5(&meter, &id, "USPS", 5, &key), now()).unwrap();
        meter.install(&mi5(&meter, &id, "VE", 9, &MasterKey::from_bytes([1; 32])), now()).unwrap();
        let subdomain = SubdomainId::parse(&format!("USPS/{}", field(&v, "country"))).unwrap();
        let isn = Isn::parse(&field(&v, "isn")).unwrap();
        let date = Date::parse(&field(&v, "date")).unwrap();
        let requests = meter.registration_requests(&subdomain, &isn, date, now()).unwrap();
        let postal = requests.iter().find(|r| r.header().domain.as_str() == "USPS").unwrap();
        assert_eq!(postal.body().token.to_string(), field(&v, "token"), "{id}");
        assert_eq!(postal.body().subdomain, subdomain);
        assert_eq!(postal.header().key_id, Some(KeyId::new(5).unwrap()));
        // The vendor key registers into the vendor's sub-domain of the same country.
        let vendor = requests.iter().find(|r| r.header().domain.as_str() == "VE").unwrap();
        assert_eq!(vendor.body().subdomain.to_string(), format!("VE/{}", field(&v, "country")));
        assert_ne!(vendor.body().token, postal.body().token);
        checked += 1;
    }
    assert_eq!(checked, 4, "the four published registration vectors");
}

#[test]
fn a_meter_registers_only_with_both_keys_one_of_the_target_domain() {
    use postkey_wire::{Date, Isn, SubdomainId};
    let id = "PB1234-000002";
    let mut meter = Meter::manufacture(MeterId::parse(id).unwrap(), &mut rng(4)).unwrap();
    let (isn, date) = (Isn::parse("A1").unwrap(), Date::parse("20261201").unwrap());
    let us = SubdomainId::parse("USPS/US").unwrap();
    let refused = meter.registration_requests(&us, &isn, date, now()).unwrap_err();
    assert_eq!(refused.response_code(), ResponseCode::SUBDOMAIN_MISMATCH);
    meter.install(&mi5(&meter, id, "USPS", 1, &MasterKey::from_bytes([5; 32])), now()).unwrap();
    meter.install(&mi5(&meter, id, "VE", 1, &MasterKey::from_bytes([6; 32])), now()).unwrap();
    // A sub-domain of a domain it holds no key of.
    let de = SubdomainId::parse("EARTH/DE").unwrap();
    assert!(matches!(
        meter.registration_requests(&de, &isn, date, now()),
        Err(MeterError::NotKeyedFor(_))
    ));
    assert_eq!(meter.registration_requests(&us, &isn, date, now()).unwrap().len(), 2);
}
