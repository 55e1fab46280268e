//! The ceremonies of protocol §7.2 and every refusal the boxes issue lists: each refused input
//! leaves the box's state (version) unchanged and carries its response code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{batch, cert, cmd, first, manufacture, now, parse, rng, sub, usps};
use postkey_box::{BlankBox, BoxError, Health, NoHost, SecureBox, SharePolicy, Stopped};
use postkey_crypto::Signer as _;
use postkey_secrets::SigningKey;
use postkey_wire::command::{
    AdoptDomain, AttestState, Certify, CreateDomain, Deliver, Delivered, InstallCertificate,
    InstallKit, InstallProcess, IssueKit, IssueSetId, SelfTest, SignTables, UpdateTables,
};
use postkey_wire::{
    BlankOffer, BoxId, BoxKeys, BoxType, Certificate, CommandCode, ConfigTables, Context, Delivery,
    DomainBundle, DomainId, DomainKind, Message, RecordType, ResponseCode, Sender, SetId,
    SubdomainId, TrustAnchors, Unverified, WireError,
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
        Unverified::<Certificate>::from_bytes(f.certificate.as_bytes())
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

fn admin_context(sender: Sender) -> Context {
    Context {
        domain: DomainId::admin(),
        sender,
        meter_id: None,
        key_id: None,
        state_version: None,
        timestamp: now(),
    }
}

fn signed_set_id(blank: &BlankBox, new_id: BoxId, key: &SigningKey) -> Unverified<SetId> {
    let offer = blank.offer(now());
    let body = SetId {
        nonce: offer.body().nonce,
        new_id,
        issuer: BoxId::new(BoxType::Manufacturing, 1).unwrap(),
        installation: postkey_wire::InstallationId([3; 16]),
    };
    let context = admin_context(Sender::Box(body.issuer));
    postkey_wire::sign(Message::new(context, body), key).into()
}

#[test]
fn set_id_signed_with_another_types_key_or_an_unknown_key_is_refused() {
    let (keys, anchors) = test_anchors();
    let blank = BlankBox::new(anchors.clone(), rng(2)).unwrap();
    let steel = BoxId::new(BoxType::Steel, 1).unwrap();
    // A Steel ID signed with the Oak startup key.
    let wrong_type = signed_set_id(&blank, steel, &keys[1]);
    let rejected =
        blank.accept(wrong_type, SharePolicy::default_for(BoxType::Steel), now()).unwrap_err();
    assert_eq!(rejected.error, BoxError::Wire(WireError::BadSignature));
    assert_eq!(rejected.error.response_code(), ResponseCode::BAD_SIGNATURE);
    let blank = *rejected.blank.expect("the blank box is handed back");
    // Signed with a key that is no anchor at all.
    let unknown = signed_set_id(&blank, steel, &SigningKey::from_bytes([99; 32]));
    let rejected =
        blank.accept(unknown, SharePolicy::default_for(BoxType::Steel), now()).unwrap_err();
    assert_eq!(rejected.error.response_code(), ResponseCode::BAD_SIGNATURE);
    let blank = *rejected.blank.unwrap();
    // The right key works.
    let good = signed_set_id(&blank, steel, &keys[2]);
    assert_eq!(
        blank
            .accept(good, SharePolicy::default_for(BoxType::Steel), now())
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
    let for_a = cmd(m, IssueSetId { offer: a.offer(now()), box_type: BoxType::Oak }).unwrap();
    let rejected =
        b.accept(for_a.clone(), SharePolicy::default_for(BoxType::Oak), now()).unwrap_err();
    assert_eq!(rejected.error, BoxError::NonceMismatch);
    assert_eq!(rejected.error.response_code(), ResponseCode::NONCE_MISMATCH);
    // Used once by A, the same Set-ID cannot initialize B either, and B's answer could not be
    // certified: the M box knows the nonce only for A.
    let init = a.accept(for_a.clone(), SharePolicy::default_for(BoxType::Oak), now()).unwrap();
    let b = rejected.blank.unwrap();
    assert_eq!(
        b.accept(for_a, SharePolicy::default_for(BoxType::Oak), now()).unwrap_err().error,
        BoxError::NonceMismatch
    );
    let v = m.version();
    cmd(m, Certify { keys: init.keys.clone().into() }).unwrap();
    assert!(m.version() > v);
    // Certifying the same ID twice is refused and changes nothing.
    let v = m.version();
    assert_eq!(
        cmd(m, Certify { keys: init.keys.clone().into() }).unwrap_err(),
        ResponseCode::ALREADY_CERTIFIED
    );
    assert_eq!(m.version(), v);
}

#[test]
fn certify_refuses_keys_not_signed_by_the_new_identity_key() {
    let mut f = first();
    let m = &mut f.secure_box;
    let blank = BlankBox::new(m.anchors().clone(), rng(5)).unwrap();
    let set_id =
        cmd(m, IssueSetId { offer: blank.offer(now()), box_type: BoxType::Brass }).unwrap();
    let init = blank.accept(set_id, SharePolicy::default_for(BoxType::Brass), now()).unwrap();
    let bytes = init.keys.as_bytes();
    let v = m.version();
    // The last byte of the signature flipped: it decodes, and the signature does not verify.
    let mut forged = bytes.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let keys = parse::<BoxKeys>(&forged).unwrap();
    assert_eq!(cmd(m, Certify { keys }).unwrap_err(), ResponseCode::BAD_SIGNATURE);
    // Any byte flipped: refused by the decoder or by the box.
    let mut by_box = 0;
    for i in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x01;
        let parsed = parse::<BoxKeys>(&bad);
        by_box += usize::from(parsed.is_ok());
        let r = parsed.and_then(|keys| cmd(m, Certify { keys }));
        assert!(r.is_err(), "byte {i} accepted");
    }
    // At least every byte of the signature decodes and reaches the box, which refuses it.
    assert!(by_box >= 64, "{by_box}");
    assert_eq!(m.version(), v);
    // The genuine keys are certified.
    assert!(cmd(m, Certify { keys: init.keys.clone().into() }).is_ok());
}

#[test]
fn domains_and_deliveries_give_each_type_only_its_keys() {
    let mut f = first();
    let admin: Unverified<_> = f.admin_bundle.clone().into();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let usps_id = DomainId::parse("USPS").unwrap();
    let ve_id = DomainId::parse("VE").unwrap();
    let ve = cmd(
        m,
        CreateDomain {
            domain: ve_id.clone(),
            kind: DomainKind::Vendor,
            subdomains: vec![sub("VE/US"), sub("VE/DE")],
        },
    )
    .unwrap();
    let mut oak = manufacture(m, BoxType::Oak, 30).secure_box;
    let mut brass = manufacture(m, BoxType::Brass, 31).secure_box;
    let mut tin = manufacture(m, BoxType::Tin, 32).secure_box;

    let d = deliver(m, &bundle, &oak, vec![]).unwrap();
    cmd(&mut oak, InstallProcess { delivery: d.delivery }).unwrap();
    let SecureBox::Oak(typed) = &oak else { panic!("{oak:?}") };
    assert!(typed.process(&usps_id).is_some());
    let d = deliver(m, &ve, &brass, vec![sub("VE/DE")]).unwrap();
    cmd(&mut brass, InstallProcess { delivery: d.delivery }).unwrap();
    let SecureBox::Brass(typed) = &brass else { panic!("{brass:?}") };
    let keys = typed.process(&ve_id).unwrap().keys();
    assert_eq!(keys.subdomains.keys().collect::<Vec<_>>(), vec![&sub("VE/DE")]);
    assert!(keys.audit.is_none());
    // The ADMIN audit key goes to Brass boxes.
    let d = deliver(m, &admin, &brass, vec![]).unwrap();
    cmd(&mut brass, InstallProcess { delivery: d.delivery }).unwrap();
    let SecureBox::Brass(typed) = &brass else { panic!("{brass:?}") };
    assert!(typed.process(&DomainId::admin()).unwrap().keys().audit.is_some());
    // Tin serves postal domains only, and may be scoped to some of their sub-domains.
    let d = deliver(m, &bundle, &tin, vec![sub("USPS/US")]).unwrap();
    cmd(&mut tin, InstallProcess { delivery: d.delivery }).unwrap();
    let SecureBox::Tin(typed) = &tin else { panic!("{tin:?}") };
    assert_eq!(typed.process(&usps_id).unwrap().subdomains(), [sub("USPS/US")]);
    let v = m.version();
    for (bundle, kind) in [(&ve, "vendor"), (&admin, "admin")] {
        let refused = deliver(m, bundle, &tin, vec![]).unwrap_err();
        assert_eq!(refused, ResponseCode::DOMAIN_KIND_NOT_SERVED, "{kind}");
    }
    assert_eq!(m.version(), v);
    // A sub-domain listed twice is refused, at creation and at delivery, and changes nothing.
    let v = m.version();
    let twice = cmd(
        m,
        CreateDomain {
            domain: DomainId::parse("UKRM").unwrap(),
            kind: DomainKind::Postal,
            subdomains: vec![sub("UKRM/GB"), sub("UKRM/GB")],
        },
    );
    assert_eq!(twice.unwrap_err(), ResponseCode::PARAMETER_SYNTAX);
    let twice = deliver(m, &ve, &brass, vec![sub("VE/US"), sub("VE/US")]);
    assert_eq!(twice.unwrap_err(), ResponseCode::PARAMETER_SYNTAX);
    // A Brass process may be asked for sub-domains of its domain only.
    let err = deliver(m, &bundle, &brass, vec![sub("VE/US")]).unwrap_err();
    assert_eq!(err, ResponseCode::UNKNOWN_DOMAIN);
    assert_eq!(m.version(), v);
}

#[test]
fn a_delivery_for_another_box_type_or_forged_is_refused_and_changes_nothing() {
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let oak = manufacture(m, BoxType::Oak, 40).secure_box;
    let mut steel = manufacture(m, BoxType::Steel, 41).secure_box;
    let to_oak =
        cmd(m, Deliver { bundle: bundle.clone(), recipient: cert(&oak), subdomains: vec![] })
            .unwrap();
    steel.take_dirty();
    let v = steel.version();
    // The Oak box's keys, signed with the Oak startup key: the Steel box's anchor refuses them.
    let err = cmd(&mut steel, InstallProcess { delivery: to_oak.delivery }).unwrap_err();
    assert_eq!(err, ResponseCode::BAD_SIGNATURE);
    // Forged: its own delivery with any one byte changed, refused by the decoder or the box.
    let to_steel = cmd(m, Deliver { bundle, recipient: cert(&steel), subdomains: vec![] }).unwrap();
    let bytes = to_steel.delivery.as_bytes();
    let mut by_box = 0;
    for i in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x20;
        let parsed = parse::<Delivery>(&bad);
        by_box += usize::from(parsed.is_ok());
        let r = parsed.and_then(|delivery| cmd(&mut steel, InstallProcess { delivery }));
        assert!(r.is_err(), "byte {i} accepted");
    }
    assert!(by_box >= 64, "{by_box}");
    // Unsigned: the signature zeroed.
    let mut unsigned = bytes.to_vec();
    let n = unsigned.len();
    unsigned[n - 64..].fill(0);
    let r = parse::<Delivery>(&unsigned)
        .and_then(|delivery| cmd(&mut steel, InstallProcess { delivery }));
    assert_eq!(r.unwrap_err(), ResponseCode::BAD_SIGNATURE);
    assert_eq!(steel.version(), v);
    assert!(!steel.take_dirty());
    // The genuine one installs. Delivered again (a ceremony run again after a stop, before the
    // archive recorded it), it changes nothing.
    cmd(&mut steel, InstallProcess { delivery: to_steel.delivery.clone() }).unwrap();
    assert!(steel.version() > v);
    steel.take_dirty();
    let v = steel.version();
    cmd(&mut steel, InstallProcess { delivery: to_steel.delivery }).unwrap();
    assert_eq!(steel.version(), v);
    assert!(!steel.take_dirty());
}

#[test]
fn a_second_process_of_a_domain_that_differs_is_refused() {
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let mut brass = manufacture(m, BoxType::Brass, 42).secure_box;
    let serving = |m: &mut SecureBox, subdomains| {
        let d = Deliver { bundle: bundle.clone(), recipient: cert(&brass), subdomains };
        cmd(m, d).unwrap().delivery
    };
    let none = serving(m, vec![]);
    let us = serving(m, vec![sub("USPS/US")]);
    cmd(&mut brass, InstallProcess { delivery: none }).unwrap();
    brass.take_dirty();
    let v = brass.version();
    assert_eq!(
        cmd(&mut brass, InstallProcess { delivery: us }).unwrap_err(),
        ResponseCode::DOMAIN_EXISTS
    );
    assert_eq!(brass.version(), v);
    assert!(!brass.take_dirty());
}

#[test]
fn table_updates_are_checked_and_never_replayed() {
    let mut f = first();
    let m = &mut f.secure_box;
    let mut oak = manufacture(m, BoxType::Oak, 50).secure_box;
    let mut narrowed = oak.tables().clone();
    narrowed.commands.retain(|c| *c != CommandCode::INSTALL_PROCESS);
    let update = cmd(m, SignTables { recipient: oak.id(), tables: narrowed.clone() }).unwrap();
    // Forged: signed by another system's manufacturing box with its Oak startup key.
    let mut other = first_manufacturing_box(3);
    let forged =
        cmd(&mut other, SignTables { recipient: oak.id(), tables: narrowed.clone() }).unwrap();
    let v = oak.version();
    assert_eq!(
        cmd(&mut oak, UpdateTables { update: forged }).unwrap_err(),
        ResponseCode::BAD_SIGNATURE
    );
    // Unsigned: the genuine update with its signature zeroed.
    let mut unsigned = update.as_bytes().to_vec();
    let n = unsigned.len();
    unsigned[n - 64..].fill(0);
    let r = parse(&unsigned).and_then(|update| cmd(&mut oak, UpdateTables { update }));
    assert_eq!(r.unwrap_err(), ResponseCode::BAD_SIGNATURE);
    assert_eq!(oak.version(), v);
    cmd(&mut oak, UpdateTables { update: update.clone() }).unwrap();
    assert_eq!(oak.tables(), &narrowed);
    // Replayed.
    let v = oak.version();
    assert_eq!(cmd(&mut oak, UpdateTables { update }).unwrap_err(), ResponseCode::STALE_UPDATE);
    assert_eq!(oak.version(), v);
    // A command outside the table is refused, whole.
    let bundle = usps(m);
    let d = cmd(m, Deliver { bundle, recipient: cert(&oak), subdomains: vec![] }).unwrap();
    let refused = postkey_box::call(
        &mut oak,
        vec![InstallProcess { delivery: d.delivery.clone() }],
        now(),
        &mut NoHost,
    );
    assert!(
        matches!(
            refused,
            Err(Stopped::Refused(BoxError::CommandNotInTable(CommandCode::INSTALL_PROCESS)))
        ),
        "{refused:?}"
    );
    assert_eq!(
        cmd(&mut oak, InstallProcess { delivery: d.delivery }).unwrap_err(),
        ResponseCode::COMMAND_NOT_IN_TABLE
    );
    assert_eq!(oak.version(), v);
    // An update for a box of another type (signed with that type's startup key) is refused.
    let steel = manufacture(m, BoxType::Steel, 51).secure_box;
    let for_steel =
        cmd(m, SignTables { recipient: steel.id(), tables: ConfigTables::default() }).unwrap();
    assert_eq!(
        cmd(&mut oak, UpdateTables { update: for_steel }).unwrap_err(),
        ResponseCode::BAD_SIGNATURE
    );
    // So is one for another box of its type.
    let oak2 = manufacture(m, BoxType::Oak, 52).secure_box;
    let for_oak2 =
        cmd(m, SignTables { recipient: oak2.id(), tables: ConfigTables::default() }).unwrap();
    assert_eq!(
        cmd(&mut oak, UpdateTables { update: for_oak2 }).unwrap_err(),
        ResponseCode::RECORD_NOT_FOR_THIS_BOX
    );
    assert_eq!(oak.version(), v);
    assert_eq!(oak.tables(), &narrowed);
}

#[test]
fn a_record_type_removed_from_the_record_table_is_refused() {
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let mut steel = manufacture(m, BoxType::Steel, 55).secure_box;
    let d = cmd(m, Deliver { bundle, recipient: cert(&steel), subdomains: vec![] }).unwrap();
    let mut narrowed = steel.tables().clone();
    assert!(narrowed.record_types.contains(&RecordType::DELIVERY));
    narrowed.record_types.retain(|r| *r != RecordType::DELIVERY);
    let update = cmd(m, SignTables { recipient: steel.id(), tables: narrowed }).unwrap();
    cmd(&mut steel, UpdateTables { update }).unwrap();
    // INSTALL_PROCESS is still in the command table, but the record type it carries is not.
    assert!(steel.tables().commands.contains(&CommandCode::INSTALL_PROCESS));
    let v = steel.version();
    let refused = postkey_box::call(
        &mut steel,
        vec![InstallProcess { delivery: d.delivery.clone() }],
        now(),
        &mut NoHost,
    );
    assert!(
        matches!(refused, Err(Stopped::Refused(BoxError::RecordNotInTable(RecordType::DELIVERY)))),
        "{refused:?}"
    );
    assert_eq!(
        cmd(&mut steel, InstallProcess { delivery: d.delivery }).unwrap_err(),
        ResponseCode::RECORD_NOT_IN_TABLE
    );
    assert_eq!(steel.version(), v);
    assert!(steel.process_record(&DomainId::parse("USPS").unwrap()).is_none());
}

#[test]
fn a_domain_outside_the_table_is_refused() {
    let mut f = first();
    let mut other = first_manufacturing_box(2);
    let m = &mut f.secure_box;
    let oak = manufacture(m, BoxType::Oak, 60).secure_box;
    // A bundle of another system's Domain Key Set: not a domain this M box knows.
    let foreign = usps(&mut other);
    let err =
        cmd(m, Deliver { bundle: foreign, recipient: cert(&oak), subdomains: vec![] }).unwrap_err();
    assert_eq!(err, ResponseCode::BAD_SIGNATURE);
    // Narrow the M box's own domain table: its own bundle of USPS is then refused.
    let bundle = usps(m);
    let mut tables = m.tables().clone();
    tables.domains.retain(|d| d.as_str() != "USPS");
    let id = m.id();
    let update = cmd(m, SignTables { recipient: id, tables }).unwrap();
    cmd(m, UpdateTables { update }).unwrap();
    let v = m.version();
    let err = cmd(m, Deliver { bundle, recipient: cert(&oak), subdomains: vec![] }).unwrap_err();
    assert_eq!(err, ResponseCode::DOMAIN_NOT_IN_TABLE);
    assert_eq!(m.version(), v);
}

fn deliver(
    m: &mut SecureBox,
    bundle: &Unverified<DomainBundle>,
    to: &SecureBox,
    subdomains: Vec<SubdomainId>,
) -> Result<Delivered, ResponseCode> {
    cmd(m, Deliver { bundle: bundle.clone(), recipient: cert(to), subdomains })
}

fn first_manufacturing_box(seed: u64) -> SecureBox {
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
    let v = m2.version();
    let early = postkey_box::call(
        &mut m2,
        vec![AdoptDomain { bundle: bundle.clone() }],
        now(),
        &mut NoHost,
    );
    assert!(matches!(early, Err(Stopped::Refused(BoxError::AwaitingKit))), "{early:?}");
    assert_eq!(
        cmd(&mut m2, AdoptDomain { bundle: bundle.clone() }).unwrap_err(),
        ResponseCode::BOX_NOT_INITIALIZED
    );
    assert_eq!(m2.version(), v);
    assert!(m2.domain_key_set_public().is_none());
    let kit = cmd(m, IssueKit { recipient: cert(&m2) }).unwrap();
    cmd(&mut m2, InstallKit { kit: kit.clone() }).unwrap();
    assert_eq!(m2.domain_key_set_public().unwrap(), m.domain_key_set_public().unwrap());
    // A kit given twice: the box is equipped already, and nothing changes.
    let v = m2.version();
    assert_eq!(
        cmd(&mut m2, InstallKit { kit }).unwrap_err(),
        ResponseCode::BOX_ALREADY_INITIALIZED
    );
    assert_eq!(m2.version(), v);
    cmd(&mut m2, AdoptDomain { bundle: bundle.clone() }).unwrap();
    assert!(m2.knows_domain(&DomainId::parse("USPS").unwrap()));
    // Adopted again (a ceremony run again after a stop): nothing changes.
    m2.take_dirty();
    let v = m2.version();
    cmd(&mut m2, AdoptDomain { bundle: bundle.clone() }).unwrap();
    assert_eq!(m2.version(), v);
    assert!(!m2.take_dirty());
    // It allocates IDs from its own delegated range, disjoint from the first box's.
    let blank = BlankBox::new(m2.anchors().clone(), rng(71)).unwrap();
    let set_id =
        cmd(&mut m2, IssueSetId { offer: blank.offer(now()), box_type: BoxType::Oak }).unwrap();
    assert_eq!(
        set_id.claimed_body().new_id.number(),
        BoxId::MAX_NUMBER - postkey_box::DELEGATED_BLOCK + 1
    );
    // And delivers the adopted domain.
    let oak = blank.accept(set_id, SharePolicy::default_for(BoxType::Oak), now()).unwrap();
    let oak_cert = cmd(&mut m2, Certify { keys: oak.keys.clone().into() }).unwrap();
    assert!(cmd(&mut m2, Deliver { bundle, recipient: oak_cert, subdomains: vec![] }).is_ok());
}

#[test]
fn kits_are_issued_until_the_first_boxs_ranges_are_exhausted() {
    let mut f = first();
    let m = &mut f.secure_box;
    let m2 = manufacture(m, BoxType::Manufacturing, 72).secure_box;
    // The M range now starts at 3; every other at 1; all end at MAX_NUMBER. A kit is given
    // while each range holds more than one block, so the smallest range gives 99 kits.
    let smallest = u64::from(BoxId::MAX_NUMBER - 3 + 1);
    let block = u64::from(postkey_box::DELEGATED_BLOCK);
    let expected = (smallest - 1).div_euclid(block);
    assert_eq!(expected, 99);
    let mut given = 0u64;
    let refused = loop {
        match cmd(m, IssueKit { recipient: cert(&m2) }) {
            Ok(_) => given += 1,
            Err(code) => break code,
        }
        assert!(given <= expected, "more kits than the ranges hold");
    };
    assert_eq!(refused, ResponseCode::ID_RANGE_EXHAUSTED);
    assert_eq!(given, expected);
    // The refusal changes nothing, and repeats.
    let v = m.version();
    assert_eq!(
        cmd(m, IssueKit { recipient: cert(&m2) }).unwrap_err(),
        ResponseCode::ID_RANGE_EXHAUSTED
    );
    assert_eq!(m.version(), v);
    // The first box still allocates from what it kept.
    let blank = BlankBox::new(m.anchors().clone(), rng(73)).unwrap();
    let set_id = cmd(m, IssueSetId { offer: blank.offer(now()), box_type: BoxType::Oak }).unwrap();
    assert_eq!(set_id.claimed_body().new_id, BoxId::new(BoxType::Oak, 1).unwrap());
}

#[test]
fn a_kit_whose_startup_keys_are_not_the_boxs_anchors_is_refused() {
    let mut f = first();
    let m = &mut f.secure_box;
    // A blank box that trusts this system's manufacturing key but other keys for every other
    // type: its offer is presented with the system's anchors, so it gets an M ID.
    let (_, mut anchors) = test_anchors();
    anchors.manufacturing = m.anchors().manufacturing;
    let blank = BlankBox::new(anchors, rng(74)).unwrap();
    let offer = Message::new(
        admin_context(Sender::BlankBox),
        BlankOffer { nonce: blank.offer(now()).body().nonce, anchors: m.anchors().fingerprint() },
    );
    let set_id = cmd(m, IssueSetId { offer, box_type: BoxType::Manufacturing }).unwrap();
    let mut init =
        blank.accept(set_id, SharePolicy::default_for(BoxType::Manufacturing), now()).unwrap();
    let certificate = cmd(m, Certify { keys: init.keys.clone().into() }).unwrap();
    let odd = &mut init.secure_box;
    cmd(odd, InstallCertificate { certificate }).unwrap();
    let kit = cmd(m, IssueKit { recipient: cert(odd) }).unwrap();
    let v = odd.version();
    assert_eq!(cmd(odd, InstallKit { kit }).unwrap_err(), ResponseCode::RECORD_MISMATCH);
    assert_eq!(odd.version(), v);
    assert!(odd.domain_key_set_public().is_none());
}

#[test]
fn a_certificate_for_another_box_or_naming_other_keys_is_refused() {
    let (keys, anchors) = test_anchors();
    let blank = BlankBox::new(anchors, rng(75)).unwrap();
    let id = BoxId::new(BoxType::Steel, 1).unwrap();
    let set_id = signed_set_id(&blank, id, &keys[2]);
    let mut init = blank.accept(set_id, SharePolicy::default_for(BoxType::Steel), now()).unwrap();
    let own = init.keys.body().clone();
    let certificate = |box_id: BoxId, identity| -> Unverified<Certificate> {
        let body = Certificate {
            box_id,
            identity,
            confidentiality: own.confidentiality,
            issuer: BoxId::new(BoxType::Manufacturing, 1).unwrap(),
            issued: now(),
        };
        let context = admin_context(Sender::Box(body.issuer));
        postkey_wire::sign(Message::new(context, body), &keys[2]).into()
    };
    let b = &mut init.secure_box;
    let v = b.version();
    // Another identity key than the box's own, for its ID, properly signed.
    let other_keys = certificate(id, SigningKey::from_bytes([42; 32]).verifying_key());
    assert_eq!(
        cmd(b, InstallCertificate { certificate: other_keys }).unwrap_err(),
        ResponseCode::RECORD_MISMATCH
    );
    // Its keys, but another box's ID.
    let other_box = certificate(BoxId::new(BoxType::Steel, 2).unwrap(), own.identity);
    assert_eq!(
        cmd(b, InstallCertificate { certificate: other_box }).unwrap_err(),
        ResponseCode::RECORD_NOT_FOR_THIS_BOX
    );
    // Its keys and ID, signed with another type's startup key.
    let body = Certificate {
        box_id: id,
        identity: own.identity,
        confidentiality: own.confidentiality,
        issuer: BoxId::new(BoxType::Manufacturing, 1).unwrap(),
        issued: now(),
    };
    let wrong_key: Unverified<Certificate> =
        postkey_wire::sign(Message::new(admin_context(Sender::Box(body.issuer)), body), &keys[1])
            .into();
    assert_eq!(
        cmd(b, InstallCertificate { certificate: wrong_key }).unwrap_err(),
        ResponseCode::BAD_SIGNATURE
    );
    assert_eq!(b.version(), v);
    assert!(b.certificate().is_none());
    // The right one installs.
    cmd(b, InstallCertificate { certificate: certificate(id, own.identity) }).unwrap();
    assert_eq!(b.certificate().unwrap().body().identity, b.identity_key());
}

#[test]
fn a_failed_self_test_is_4003_and_leaves_the_box_in_its_error_state_until_one_passes() {
    let mut f = first();
    let m = &mut f.secure_box;
    let mut oak = manufacture(m, BoxType::Oak, 81).secure_box;
    postkey_secrets::selftest::injected::fail_next_power_up("AES-256-CMAC");
    assert_eq!(cmd(&mut oak, SelfTest {}).unwrap_err(), ResponseCode::SELF_TEST_FAILED);
    assert_eq!(oak.health(), Health::Error { primitive: "AES-256-CMAC" });
    let nonce = postkey_wire::Nonce([2; 32]);
    assert_eq!(cmd(&mut oak, AttestState { nonce }).unwrap_err(), ResponseCode::BOX_ERROR_STATE);
    // The next self-test runs the real known answers, which pass.
    cmd(&mut oak, SelfTest {}).unwrap();
    assert_eq!(oak.health(), Health::Operational);
    assert!(cmd(&mut oak, AttestState { nonce }).is_ok());
}

#[test]
fn the_error_state_refuses_everything_but_a_self_test() {
    let mut f = first();
    let m = &mut f.secure_box;
    let mut oak = manufacture(m, BoxType::Oak, 80).secure_box;
    oak.enter_error_state("AES-256");
    let v = oak.version();
    let nonce = postkey_wire::Nonce([1; 32]);
    assert_eq!(cmd(&mut oak, AttestState { nonce }).unwrap_err(), ResponseCode::BOX_ERROR_STATE);
    // Every item of a batch: the whole command is refused.
    assert_eq!(
        batch(&mut oak, vec![AttestState { nonce }, AttestState { nonce }]).unwrap_err(),
        ResponseCode::BOX_ERROR_STATE
    );
    assert_eq!(oak.version(), v);
    cmd(&mut oak, SelfTest {}).unwrap();
    assert_eq!(oak.health(), Health::Operational);
    let att = cmd(&mut oak, AttestState { nonce }).unwrap();
    let att = att.verify(&oak.identity_key()).unwrap();
    assert_eq!(att.body().nonce, nonce);
    assert_eq!(att.body().version, oak.version());
}

/// protocol §6.6: a Brass box with the `ADMIN` process signs a checkpoint of a chain only if it
/// extends the chain's last checkpoint; a chain behind it, another head at its count, or an
/// archive that lacks checkpoints the box signed (an older archive put back) is refused and
/// changes nothing.
#[test]
fn brass_signs_checkpoints_that_extend_the_last_and_refuses_any_other() {
    use postkey_wire::command::{CheckpointChain, Checkpointed};
    use postkey_wire::{ChainHash, Checkpoint};
    let mut f = first();
    let admin: Unverified<_> = f.admin_bundle.clone().into();
    let audit_key = f.admin_bundle.body().public.audit.unwrap();
    let m = &mut f.secure_box;
    let mut brass = manufacture(m, BoxType::Brass, 41).secure_box;
    let usps = DomainId::parse("USPS").unwrap();
    let ask = |b: &mut SecureBox, count: u64, head: u8, kept: &[&Unverified<Checkpoint>]| {
        let kept = kept.iter().map(|c| (*c).clone()).collect();
        cmd(b, CheckpointChain { chain: usps.clone(), count, head: ChainHash([head; 32]), kept })
    };
    let body = |c: &Unverified<Checkpoint>| c.clone().verify(&audit_key).unwrap().body().clone();
    // No audit key without the ADMIN process.
    assert_eq!(ask(&mut brass, 3, 1, &[]).unwrap_err(), ResponseCode::UNKNOWN_DOMAIN);
    let d = deliver(m, &admin, &brass, vec![]).unwrap();
    cmd(&mut brass, InstallProcess { delivery: d.delivery }).unwrap();

    let v = brass.version();
    let Checkpointed { missing, checkpoint: first } = ask(&mut brass, 3, 1, &[]).unwrap();
    assert!(missing.is_empty());
    assert!(brass.version() > v, "a checkpoint signed is sealed before the answer leaves");
    let b = body(&first);
    assert_eq!(
        (b.number, b.count, b.head, b.previous),
        (1, 3, ChainHash([1; 32]), ChainHash([0; 32]))
    );
    assert_eq!((b.chain, b.brass), (usps.clone(), brass.id()));
    // The same head again: the same checkpoint, nothing new.
    let again = ask(&mut brass, 3, 1, &[&first]).unwrap();
    assert_eq!(again.checkpoint.as_bytes(), first.as_bytes());
    // The archive never kept the first (a stop): the next answer carries it as missing.
    let Checkpointed { missing, checkpoint: second } = ask(&mut brass, 7, 9, &[]).unwrap();
    assert_eq!(missing.iter().map(|c| c.as_bytes()).collect::<Vec<_>>(), [first.as_bytes()]);
    let b = body(&second);
    assert_eq!((b.number, b.count), (2, 7));
    assert_eq!(b.previous, ChainHash(postkey_crypto::sha256(first.as_bytes())));
    // Refused, changing nothing: behind the last, another head at its count, an archive that
    // lacks checkpoints (kept none, or the first while the box signed two more), a kept
    // checkpoint that is not the audit key's.
    let v = brass.version();
    for (count, head, kept) in [(6, 9, vec![&second]), (7, 8, vec![&second]), (9, 9, vec![])] {
        let e = ask(&mut brass, count, head, &kept).unwrap_err();
        assert_eq!(e, ResponseCode::ARCHIVE_BEHIND_CHECKPOINT, "{count} {head}");
    }
    assert_eq!(brass.version(), v);
    let third = ask(&mut brass, 8, 1, &[&second]).unwrap().checkpoint;
    let v = brass.version();
    assert_eq!(
        ask(&mut brass, 9, 1, &[&first]).unwrap_err(),
        ResponseCode::ARCHIVE_BEHIND_CHECKPOINT
    );
    let forged: Unverified<Checkpoint> = postkey_wire::sign(
        postkey_wire::Message::new(
            Context { sender: Sender::Box(brass.id()), ..admin_context(Sender::Box(brass.id())) },
            body(&third),
        ),
        &SigningKey::from_bytes([7; 32]),
    )
    .into();
    assert_eq!(ask(&mut brass, 9, 1, &[&forged]).unwrap_err(), ResponseCode::BAD_SIGNATURE);
    assert_eq!(brass.version(), v);
    // Each chain on its own.
    let admin_chain = cmd(
        &mut brass,
        CheckpointChain {
            chain: DomainId::admin(),
            count: 1,
            head: ChainHash([5; 32]),
            kept: vec![],
        },
    )
    .unwrap();
    assert_eq!(body(&admin_chain.checkpoint).number, 1);
    // Other box types have no such command.
    let mut oak = manufacture(m, BoxType::Oak, 42).secure_box;
    assert_eq!(ask(&mut oak, 1, 1, &[]).unwrap_err(), ResponseCode::COMMAND_NOT_IN_TABLE);
}
