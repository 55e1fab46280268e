//! The ceremonies of SPEC §7.2 and every refusal the boxes issue lists: each refused input
//! leaves the box's state (version) unchanged and carries its response code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{first, manufacture, now, rng, sub, usps};
use postkey_box::{BlankBox, BoxError, Health, ProcessKeys, SharePolicy};
use postkey_crypto::Signer as _;
use postkey_secrets::SigningKey;
use postkey_wire::{
    BoxId, BoxType, CommandCode, ConfigTables, DomainId, DomainKind, Message, ResponseCode, SetId,
    TrustAnchors, Unverified, WireError,
};

#[test]
fn the_first_ceremony_makes_m00000001_with_its_shares_and_the_admin_domain() {
    let f = first();
    assert_eq!(f.secure_box.id().to_string(), "M00000001");
    assert_eq!(f.combination_shares.len(), 3);
    assert_eq!(f.domain_key_set_shares.len(), 3);
    assert_ne!(f.combination_shares[0].body().set, f.domain_key_set_shares[0].body().set);
    let anchors = f.secure_box.anchors();
    // The certificate is signed with the M startup key, the first trust anchor.
    assert!(
        Unverified::<postkey_wire::Certificate>::from_bytes(f.certificate.as_bytes())
            .unwrap()
            .verify(&anchors.manufacturing)
            .is_ok()
    );
    assert_eq!(f.admin_bundle.body().domain, DomainId::admin());
    assert!(f.admin_bundle.body().public.audit.is_some());
}

#[test]
fn a_box_of_every_type_is_manufactured_with_ids_from_the_range() {
    let mut f = first();
    let m = &mut f.secure_box;
    for (i, t) in [BoxType::Oak, BoxType::Steel, BoxType::Brass, BoxType::Tin, BoxType::Oak]
        .into_iter()
        .enumerate()
    {
        let init = manufacture(m, t, 10 + i as u64);
        let want = if i == 4 { 2 } else { 1 };
        assert_eq!(init.secure_box.id(), BoxId::new(t, want).unwrap());
        assert_eq!(init.shares.len(), 2, "O/S/B/T boxes share 2-of-2 by default");
        assert!(init.secure_box.certificate().is_some());
    }
    let m2 = manufacture(m, BoxType::Manufacturing, 20);
    assert_eq!(m2.shares.len(), 3);
    assert_eq!(m2.secure_box.id().to_string(), "M00000002");
}

fn test_anchors() -> ([SigningKey; 5], TrustAnchors) {
    let keys: [SigningKey; 5] = core::array::from_fn(|i| SigningKey::from_bytes([i as u8 + 1; 32]));
    let anchors = TrustAnchors {
        manufacturing: keys[0].verifying_key(),
        oak: keys[1].verifying_key(),
        steel: keys[2].verifying_key(),
        brass: keys[3].verifying_key(),
        tin: keys[4].verifying_key(),
    };
    (keys, anchors)
}

fn signed_set_id(blank: &BlankBox, new_id: BoxId, key: &SigningKey) -> Vec<u8> {
    let offer = blank.offer(now());
    let body = SetId {
        nonce: offer.body().nonce,
        new_id,
        issuer: BoxId::new(BoxType::Manufacturing, 1).unwrap(),
    };
    let context = postkey_wire::Context {
        domain: DomainId::admin(),
        sender: postkey_wire::Sender::Box(body.issuer),
        meter_id: None,
        key_id: None,
        state_version: None,
        timestamp: now(),
    };
    postkey_wire::sign(Message::new(context, body), key).as_bytes().to_vec()
}

#[test]
fn set_id_signed_with_another_types_key_or_an_unknown_key_is_refused() {
    let (keys, anchors) = test_anchors();
    let blank = BlankBox::new(anchors.clone(), rng(2)).unwrap();
    let steel = BoxId::new(BoxType::Steel, 1).unwrap();
    // A Steel ID signed with the Oak startup key.
    let wrong_type = signed_set_id(&blank, steel, &keys[1]);
    let rejected =
        blank.accept(&wrong_type, SharePolicy::default_for(BoxType::Steel), now()).unwrap_err();
    assert_eq!(rejected.error, BoxError::Wire(WireError::BadSignature));
    assert_eq!(rejected.error.response_code(), ResponseCode::BAD_SIGNATURE);
    let blank = *rejected.blank.expect("the blank box is handed back");
    // Signed with a key that is no anchor at all.
    let unknown = signed_set_id(&blank, steel, &SigningKey::from_bytes([99; 32]));
    let blank = *blank
        .accept(&unknown, SharePolicy::default_for(BoxType::Steel), now())
        .unwrap_err()
        .blank
        .unwrap();
    // The right key works.
    let good = signed_set_id(&blank, steel, &keys[2]);
    assert_eq!(
        blank
            .accept(&good, SharePolicy::default_for(BoxType::Steel), now())
            .unwrap()
            .secure_box
            .id(),
        steel
    );
}

#[test]
fn set_id_for_another_nonce_or_replayed_to_a_second_blank_box_is_refused() {
    let mut f = first();
    let m = &mut f.secure_box;
    let a = BlankBox::new(m.anchors().clone(), rng(3)).unwrap();
    let b = BlankBox::new(m.anchors().clone(), rng(4)).unwrap();
    let for_a =
        m.manufacturing().unwrap().issue_set_id(&a.offer(now()), BoxType::Oak, now()).unwrap();
    let rejected =
        b.accept(for_a.as_bytes(), SharePolicy::default_for(BoxType::Oak), now()).unwrap_err();
    assert_eq!(rejected.error, BoxError::NonceMismatch);
    assert_eq!(rejected.error.response_code(), ResponseCode::NONCE_MISMATCH);
    // Used once by A, the same Set-ID cannot initialize B either, and B's answer could not be
    // certified: the M box knows the nonce only for A.
    let init = a.accept(for_a.as_bytes(), SharePolicy::default_for(BoxType::Oak), now()).unwrap();
    let b = rejected.blank.unwrap();
    assert_eq!(
        b.accept(for_a.as_bytes(), SharePolicy::default_for(BoxType::Oak), now())
            .unwrap_err()
            .error,
        BoxError::NonceMismatch
    );
    let v = m.version();
    m.manufacturing().unwrap().certify(init.keys.as_bytes(), now()).unwrap();
    assert!(m.version() > v);
    // Certifying the same ID twice is refused and changes nothing.
    let v = m.version();
    let again = m.manufacturing().unwrap().certify(init.keys.as_bytes(), now()).unwrap_err();
    assert_eq!(again.response_code(), ResponseCode::ALREADY_CERTIFIED);
    assert_eq!(m.version(), v);
}

#[test]
fn certify_refuses_keys_not_signed_by_the_new_identity_key() {
    let mut f = first();
    let m = &mut f.secure_box;
    let blank = BlankBox::new(m.anchors().clone(), rng(5)).unwrap();
    let set_id = m
        .manufacturing()
        .unwrap()
        .issue_set_id(&blank.offer(now()), BoxType::Brass, now())
        .unwrap();
    let init =
        blank.accept(set_id.as_bytes(), SharePolicy::default_for(BoxType::Brass), now()).unwrap();
    let mut forged = init.keys.as_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let v = m.version();
    assert_eq!(
        m.manufacturing().unwrap().certify(&forged, now()).unwrap_err(),
        BoxError::Wire(WireError::BadSignature)
    );
    assert_eq!(m.version(), v);
}

#[test]
fn domains_and_deliveries_give_each_type_only_its_keys() {
    let mut f = first();
    let admin = f.admin_bundle.as_bytes().to_vec();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let ve = m
        .manufacturing()
        .unwrap()
        .create_domain(
            DomainId::parse("VE").unwrap(),
            DomainKind::Vendor,
            vec![sub("VE/US"), sub("VE/DE")],
            now(),
        )
        .unwrap();
    let mut oak = manufacture(m, BoxType::Oak, 30).secure_box;
    let mut brass = manufacture(m, BoxType::Brass, 31).secure_box;
    let mut tin = manufacture(m, BoxType::Tin, 32).secure_box;
    let cert = |b: &postkey_box::SecureBox| b.certificate().unwrap().as_bytes().to_vec();

    let d =
        m.manufacturing().unwrap().deliver(bundle.as_bytes(), &cert(&oak), vec![], now()).unwrap();
    assert!(matches!(
        oak.install_process(d.delivery.as_bytes()).unwrap().keys(),
        ProcessKeys::Oak { .. }
    ));
    let d = m
        .manufacturing()
        .unwrap()
        .deliver(ve.as_bytes(), &cert(&brass), vec![sub("VE/DE")], now())
        .unwrap();
    let p = brass.install_process(d.delivery.as_bytes()).unwrap();
    match p.keys() {
        ProcessKeys::Brass { subdomains, audit, .. } => {
            assert_eq!(subdomains.keys().collect::<Vec<_>>(), vec![&sub("VE/DE")]);
            assert!(audit.is_none());
        }
        other => panic!("{other:?}"),
    }
    // The ADMIN audit key goes to Brass boxes.
    let d = m.manufacturing().unwrap().deliver(&admin, &cert(&brass), vec![], now()).unwrap();
    match brass.install_process(d.delivery.as_bytes()).unwrap().keys() {
        ProcessKeys::Brass { audit, .. } => assert!(audit.is_some()),
        other => panic!("{other:?}"),
    }
    let d =
        m.manufacturing().unwrap().deliver(bundle.as_bytes(), &cert(&tin), vec![], now()).unwrap();
    assert!(matches!(tin.install_process(d.delivery.as_bytes()).unwrap().keys(), ProcessKeys::Tin));
    // A sub-domain listed twice is refused, at creation and at delivery.
    let twice = m.manufacturing().unwrap().create_domain(
        DomainId::parse("UKRM").unwrap(),
        DomainKind::Postal,
        vec![sub("UKRM/GB"), sub("UKRM/GB")],
        now(),
    );
    assert_eq!(twice.unwrap_err().response_code(), ResponseCode::PARAMETER_SYNTAX);
    let twice = m.manufacturing().unwrap().deliver(
        ve.as_bytes(),
        &cert(&brass),
        vec![sub("VE/US"), sub("VE/US")],
        now(),
    );
    assert_eq!(twice.unwrap_err().response_code(), ResponseCode::PARAMETER_SYNTAX);
    // A Brass process may be asked for sub-domains of its domain only.
    let err = m
        .manufacturing()
        .unwrap()
        .deliver(bundle.as_bytes(), &cert(&brass), vec![sub("VE/US")], now())
        .unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::UNKNOWN_DOMAIN);
}

#[test]
fn a_delivery_for_another_box_type_or_forged_is_refused_and_changes_nothing() {
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let oak = manufacture(m, BoxType::Oak, 40).secure_box;
    let mut steel = manufacture(m, BoxType::Steel, 41).secure_box;
    let to_oak = m
        .manufacturing()
        .unwrap()
        .deliver(bundle.as_bytes(), oak.certificate().unwrap().as_bytes(), vec![], now())
        .unwrap();
    steel.take_dirty();
    let v = steel.version();
    // The Oak box's keys, signed with the Oak startup key: the Steel box's anchor refuses them.
    let err = steel.install_process(to_oak.delivery.as_bytes()).unwrap_err();
    assert_eq!(err, BoxError::Wire(WireError::BadSignature));
    // Forged: its own delivery with one byte changed anywhere.
    let to_steel = m
        .manufacturing()
        .unwrap()
        .deliver(bundle.as_bytes(), steel.certificate().unwrap().as_bytes(), vec![], now())
        .unwrap();
    let bytes = to_steel.delivery.as_bytes();
    for i in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x20;
        assert!(steel.install_process(&bad).is_err(), "byte {i}");
    }
    // Unsigned: the signature zeroed.
    let mut unsigned = bytes.to_vec();
    let n = unsigned.len();
    unsigned[n - 64..].fill(0);
    assert_eq!(
        steel.install_process(&unsigned).unwrap_err().response_code(),
        ResponseCode::BAD_SIGNATURE
    );
    assert_eq!(steel.version(), v);
    assert!(!steel.take_dirty());
    // The genuine one installs, once.
    steel.install_process(bytes).unwrap();
    assert_eq!(
        steel.install_process(bytes).unwrap_err().response_code(),
        ResponseCode::DOMAIN_EXISTS
    );
}

#[test]
fn table_updates_are_checked_and_never_replayed() {
    let mut f = first();
    let m = &mut f.secure_box;
    let mut oak = manufacture(m, BoxType::Oak, 50).secure_box;
    let mut narrowed = oak.tables().clone();
    narrowed.commands.retain(|c| *c != CommandCode::INSTALL_PROCESS);
    let update = m.manufacturing().unwrap().sign_tables(oak.id(), narrowed.clone(), now()).unwrap();
    // Forged: signed by another system's manufacturing box with its Oak startup key.
    let mut other = first_manufacturing_box(3);
    let forged =
        other.manufacturing().unwrap().sign_tables(oak.id(), narrowed.clone(), now()).unwrap();
    let v = oak.version();
    assert_eq!(
        oak.update_tables(forged.as_bytes()).unwrap_err().response_code(),
        ResponseCode::BAD_SIGNATURE
    );
    // Unsigned: the genuine update with its signature zeroed.
    let mut unsigned = update.as_bytes().to_vec();
    let n = unsigned.len();
    unsigned[n - 64..].fill(0);
    assert_eq!(
        oak.update_tables(&unsigned).unwrap_err().response_code(),
        ResponseCode::BAD_SIGNATURE
    );
    assert_eq!(oak.version(), v);
    oak.update_tables(update.as_bytes()).unwrap();
    assert_eq!(oak.tables(), &narrowed);
    // Replayed.
    let v = oak.version();
    assert_eq!(
        oak.update_tables(update.as_bytes()).unwrap_err().response_code(),
        ResponseCode::STALE_UPDATE
    );
    assert_eq!(oak.version(), v);
    // A command outside the table is refused.
    let bundle = usps(m);
    let d = m
        .manufacturing()
        .unwrap()
        .deliver(bundle.as_bytes(), oak.certificate().unwrap().as_bytes(), vec![], now())
        .unwrap();
    let err = oak.install_process(d.delivery.as_bytes()).unwrap_err();
    assert_eq!(err, BoxError::CommandNotInTable(CommandCode::INSTALL_PROCESS));
    assert_eq!(err.response_code(), ResponseCode::COMMAND_NOT_IN_TABLE);
    // An update for another box is refused.
    let steel = manufacture(m, BoxType::Steel, 51).secure_box;
    let for_steel =
        m.manufacturing().unwrap().sign_tables(steel.id(), ConfigTables::default(), now()).unwrap();
    assert!(oak.update_tables(for_steel.as_bytes()).is_err());
}

#[test]
fn a_domain_outside_the_table_is_refused() {
    let mut f = first();
    let mut other = first_manufacturing_box(2);
    let m = &mut f.secure_box;
    let oak = manufacture(m, BoxType::Oak, 60).secure_box;
    // A bundle of another system's Domain Key Set: not a domain this M box knows.
    let foreign = usps(&mut other);
    let err = m
        .manufacturing()
        .unwrap()
        .deliver(foreign.as_bytes(), oak.certificate().unwrap().as_bytes(), vec![], now())
        .unwrap_err();
    assert_eq!(err, BoxError::Wire(WireError::BadSignature));
    // Narrow the M box's own domain table: its own bundle of USPS is then refused.
    let bundle = usps(m);
    let mut tables = m.tables().clone();
    tables.domains.retain(|d| d.as_str() != "USPS");
    let id = m.id();
    let update = m.manufacturing().unwrap().sign_tables(id, tables, now()).unwrap();
    m.update_tables(update.as_bytes()).unwrap();
    let err = m
        .manufacturing()
        .unwrap()
        .deliver(bundle.as_bytes(), oak.certificate().unwrap().as_bytes(), vec![], now())
        .unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::DOMAIN_NOT_IN_TABLE);
}

fn first_manufacturing_box(seed: u64) -> postkey_box::SecureBox {
    postkey_box::first_manufacturing_box(
        rng(seed),
        SharePolicy { threshold: 2, count: 3 },
        SharePolicy { threshold: 2, count: 3 },
        now(),
    )
    .unwrap()
    .secure_box
}

#[test]
fn a_new_manufacturing_box_gets_the_domain_key_set_and_adopts_domains() {
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let mut m2 = manufacture(m, BoxType::Manufacturing, 70).secure_box;
    // Before its kit it cannot act as a manufacturing box.
    assert_eq!(m2.manufacturing().unwrap_err(), BoxError::AwaitingKit);
    let kit =
        m.manufacturing().unwrap().issue_kit(m2.certificate().unwrap().as_bytes(), now()).unwrap();
    m2.install_kit(kit.as_bytes()).unwrap();
    assert_eq!(
        m2.manufacturing().unwrap().domain_key_set_public().unwrap(),
        m.manufacturing().unwrap().domain_key_set_public().unwrap()
    );
    m2.manufacturing().unwrap().adopt_domain(bundle.as_bytes()).unwrap();
    // It allocates IDs from its own delegated range, disjoint from the first box's.
    let blank = BlankBox::new(m2.anchors().clone(), rng(71)).unwrap();
    let set_id =
        m2.manufacturing().unwrap().issue_set_id(&blank.offer(now()), BoxType::Oak, now()).unwrap();
    assert_eq!(
        set_id.body().new_id.number(),
        postkey_wire::BoxId::MAX_NUMBER - postkey_box::DELEGATED_BLOCK + 1
    );
    // And delivers the adopted domain.
    let oak =
        blank.accept(set_id.as_bytes(), SharePolicy::default_for(BoxType::Oak), now()).unwrap();
    let cert = m2.manufacturing().unwrap().certify(oak.keys.as_bytes(), now()).unwrap();
    assert!(
        m2.manufacturing()
            .unwrap()
            .deliver(bundle.as_bytes(), cert.as_bytes(), vec![], now())
            .is_ok()
    );
}

#[test]
fn the_error_state_refuses_everything_but_a_self_test() {
    let mut f = first();
    let m = &mut f.secure_box;
    let mut oak = manufacture(m, BoxType::Oak, 80).secure_box;
    oak.enter_error_state("AES-256");
    let err = oak.attest(postkey_wire::Nonce([1; 32]), now()).unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::BOX_ERROR_STATE);
    oak.self_test().unwrap();
    assert_eq!(oak.health(), Health::Operational);
    assert!(oak.attest(postkey_wire::Nonce([1; 32]), now()).is_ok());
}
