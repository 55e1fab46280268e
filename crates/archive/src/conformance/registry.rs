//! Cases for domains, the box registry, bundles, transcripts, the error log and the schema.

use postkey_crypto::{HpkePublicKey, VerifyingKey};
use postkey_wire::{BoxType, RecordType, ResponseCode, Sender, StateVersion};

use super::Harness;
use super::fixtures::*;
use crate::{
    Action, CeremonyKind, Component, ErrorLogEntry, ErrorLogQuery, NewBox, NewBundle, NewDomain,
    NewDomainProcess, NewSubdomain, NewTranscript, Store, StoreError, Subject,
};

/// RFC 8032 §7.1 TEST 1's public key: a valid curve point.
const PUBLIC_KEY: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];

/// A box to register.
fn new_box(id: &str, at: u64) -> NewBox {
    NewBox {
        id: bx(id),
        certificate: record(RecordType::CERTIFICATE, id),
        identity_key: VerifyingKey::from_bytes(&PUBLIC_KEY).unwrap(),
        confidentiality_key: HpkePublicKey::from_bytes([7; 32]),
        state_version: StateVersion(1),
        time: ts(at),
        actor: Sender::Box(bx("M00000001")),
    }
}

/// Domains and sub-domains are created once; a sub-domain needs its domain; each is an `ADMIN`
/// chain event.
pub async fn domains_and_subdomains<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "EARTH").await;
    let again = NewDomain { id: d.clone(), time: ts(1), actor: kmc() };
    let err = s.create_domain(&again).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::Domain(_))), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
    let orphan = NewSubdomain { id: sub("NONE/US"), time: ts(1), actor: kmc() };
    let err = s.add_subdomain(&orphan).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(Subject::Domain(_))), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_NOT_FOUND);
    let dup = NewSubdomain { id: sub("EARTH/DE"), time: ts(1), actor: kmc() };
    assert!(matches!(
        s.add_subdomain(&dup).await,
        Err(StoreError::Duplicate(Subject::Subdomain(_)))
    ));

    let domains = s.domains().await.unwrap();
    assert_eq!(domains.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["EARTH"]);
    assert_eq!(domains[0].next_key_id, kid(1));
    let subs = s.subdomains(&d).await.unwrap();
    assert_eq!(subs.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(), ["EARTH/DE", "EARTH/US"]);
    assert_eq!(s.domain(&dom("NONE")).await.unwrap(), None);

    let admin = s.chain_events(&dom("ADMIN"), 0, 100).await.unwrap();
    let actions: Vec<_> = admin.iter().map(|e| e.entry.action.clone()).collect();
    assert_eq!(
        actions,
        [
            Action::DomainCreated(d.clone()),
            Action::SubdomainAdded(sub("EARTH/US")),
            Action::SubdomainAdded(sub("EARTH/DE"))
        ]
    );
    // A new domain starts an empty chain of its own.
    assert_eq!(s.chain_head(&d).await.unwrap().map(|h| h.count), Some(0));
    let heads = s.chain_heads().await.unwrap();
    let names: Vec<_> = heads.iter().map(|h| h.chain.as_str()).collect();
    assert_eq!(names, ["ADMIN", "EARTH", "ERRORS", "SIGHTS"], "ADMIN, the domains', the logs'");
    s.verify_chain(&dom("ADMIN")).await.unwrap();
}

/// Box IDs are unique for ever; certificates and keys are kept exactly; domain processes name
/// sub-domains of their own domain.
pub async fn box_registry<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "USPS").await;
    for id in ["M00000001", "O00000001", "S00000001", "B00000001", "B00000002"] {
        s.register_box(&new_box(id, 1)).await.unwrap();
    }
    let err = s.register_box(&new_box("O00000001", 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::Box(_))), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);

    let oak = s.box_record(bx("O00000001")).await.unwrap().unwrap();
    let expected = new_box("O00000001", 1);
    assert_eq!(oak.certificate, expected.certificate);
    assert_eq!(oak.identity_key, expected.identity_key);
    assert_eq!(oak.confidentiality_key, expected.confidentiality_key);
    assert_eq!((oak.state_version, oak.registered), (StateVersion(1), ts(1)));
    assert_eq!(oak.id.box_type(), BoxType::Oak);
    assert_eq!(s.box_record(bx("T00000001")).await.unwrap(), None);
    let brass = s.boxes(Some(BoxType::Brass)).await.unwrap();
    assert_eq!(
        brass.iter().map(|b| b.id.to_string()).collect::<Vec<_>>(),
        ["B00000001", "B00000002"]
    );
    assert_eq!(s.boxes(None).await.unwrap().len(), 5);

    let process = NewDomainProcess {
        box_id: bx("B00000001"),
        domain: d.clone(),
        subdomains: vec![sub("USPS/US")],
        record: record(RecordType::DELIVERY, "B1 USPS"),
        time: ts(3),
        actor: Sender::Box(bx("M00000001")),
    };
    s.add_domain_process(&process).await.unwrap();
    let err = s.add_domain_process(&process).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::DomainProcess { .. })), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
    let foreign = NewDomainProcess {
        box_id: bx("B00000002"),
        subdomains: vec![sub("VE/US")],
        ..process.clone()
    };
    assert!(matches!(s.add_domain_process(&foreign).await, Err(StoreError::Mismatch(_))));
    let no_box = NewDomainProcess { box_id: bx("B00000009"), ..process.clone() };
    assert!(matches!(
        s.add_domain_process(&no_box).await,
        Err(StoreError::NotFound(Subject::Box(_)))
    ));
    let none = NewDomainProcess { box_id: bx("B00000002"), subdomains: vec![], ..process.clone() };
    s.add_domain_process(&none).await.unwrap();
    let got = s.domain_processes(bx("B00000001")).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((&got[0].subdomains, &got[0].record), (&process.subdomains, &process.record));
    assert_eq!(s.domain_processes(bx("B00000002")).await.unwrap()[0].subdomains, []);

    // 5 boxes + 2 processes after the domain's three events.
    assert_eq!(s.chain_head(&dom("ADMIN")).await.unwrap().unwrap().count, 3 + 5 + 2);
    s.verify_chain(&dom("ADMIN")).await.unwrap();
}

/// A box's recorded state version only grows (protocol §7.2 item 7).
pub async fn state_version_only_grows<H: Harness>(h: &H) {
    let s = h.open().await;
    let steel = bx("S00000001");
    s.register_box(&new_box("S00000001", 1)).await.unwrap();
    s.record_state_version(steel, StateVersion(5)).await.unwrap();
    s.record_state_version(steel, StateVersion(5)).await.unwrap();
    let err = s.record_state_version(steel, StateVersion(4)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateVersionWentBackwards {
                recorded: StateVersion(5),
                offered: StateVersion(4),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.response_code(), ResponseCode::STATE_ROLLBACK);
    assert_eq!(s.highest_state_version(steel).await.unwrap(), StateVersion(5));
    s.record_state_version(steel, StateVersion(9)).await.unwrap();
    assert_eq!(s.highest_state_version(steel).await.unwrap(), StateVersion(9));
    // Another handle on the same database sees the same.
    let other = h.open().await;
    assert!(other.record_state_version(steel, StateVersion(8)).await.is_err());
    let err = s.highest_state_version(bx("S00000002")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(Subject::Box(_))), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_NOT_FOUND);
    assert!(s.record_state_version(bx("S00000002"), StateVersion(1)).await.is_err());
}

/// Bundles (domain + version, once) and transcripts are kept exactly as received.
pub async fn bundles_and_transcripts<H: Harness>(h: &H) {
    let s = h.open().await;
    let d = setup_domain(&s, "VE").await;
    assert_eq!(s.latest_bundle(&d).await.unwrap(), None);
    for v in [1, 2] {
        let b = NewBundle {
            domain: d.clone(),
            version: v,
            created_by: bx("M00000001"),
            bundle: record(RecordType::DOMAIN_BUNDLE, &format!("VE v{v}")),
            time: ts(u64::from(v)),
        };
        s.store_bundle(&b).await.unwrap();
        if v == 2 {
            let err = s.store_bundle(&b).await.unwrap_err();
            assert!(matches!(err, StoreError::Duplicate(Subject::Bundle { .. })), "{err:?}");
            assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
        }
    }
    let latest = s.latest_bundle(&d).await.unwrap().unwrap();
    assert_eq!(
        (latest.version, latest.bundle.clone()),
        (2, record(RecordType::DOMAIN_BUNDLE, "VE v2"))
    );
    assert_eq!(s.bundle(&d, 1).await.unwrap().unwrap().stored, ts(1));
    assert_eq!(s.bundle(&d, 3).await.unwrap(), None);

    let kind = CeremonyKind::parse("box-init").unwrap();
    assert!(CeremonyKind::parse("Box Init").is_err());
    let t1 = NewTranscript {
        time: ts(5),
        kind: kind.clone(),
        box_id: Some(bx("O00000001")),
        transcript: record(RecordType::TRANSCRIPT, "init O1"),
        actor: Sender::Box(bx("M00000001")),
    };
    let t2 = NewTranscript {
        box_id: None,
        transcript: record(RecordType::TRANSCRIPT, "first box"),
        ..t1.clone()
    };
    let id1 = s.store_transcript(&t1).await.unwrap();
    let id2 = s.store_transcript(&t2).await.unwrap();
    assert!(id2 > id1);
    let got = s.transcript(id1).await.unwrap().unwrap();
    assert_eq!(
        (got.time, &got.kind, got.box_id, &got.transcript),
        (ts(5), &kind, Some(bx("O00000001")), &t1.transcript)
    );
    assert_eq!(s.transcripts(Some(bx("O00000001"))).await.unwrap().len(), 1);
    assert_eq!(s.transcripts(None).await.unwrap().len(), 2);
    let last = s.chain_events(&dom("ADMIN"), 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(last.entry.action, Action::TranscriptStored(id2));
    assert_eq!(last.entry.record.map(|r| r.digest), Some(t2.transcript.digest()));
}

/// The error log keeps every entry and answers newest first, filtered.
pub async fn error_log<H: Harness>(h: &H) {
    let s = h.open().await;
    let entry = |n: u64, code: ResponseCode, domain: Option<&str>| ErrorLogEntry {
        time: ts(n),
        component: Component::parse("kmc").unwrap(),
        response_code: code,
        message: format!("error {n}"),
        domain: domain.map(dom),
        meter_id: Some(meter(n)),
        key_id: Some(kid(n)),
        origin: None,
    };
    s.log_error(&entry(1, ResponseCode::BAD_SIGNATURE, Some("VE"))).await.unwrap();
    s.log_error(&entry(2, ResponseCode::TRANSITION_NOT_ALLOWED, Some("USPS"))).await.unwrap();
    s.log_error(&entry(3, ResponseCode::BAD_SIGNATURE, None)).await.unwrap();
    let all = s.error_log(&ErrorLogQuery::latest(10)).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.entry.message.as_str()).collect::<Vec<_>>(),
        ["error 3", "error 2", "error 1"]
    );
    assert_eq!(all[2].entry, entry(1, ResponseCode::BAD_SIGNATURE, Some("VE")));
    let sigs = ErrorLogQuery {
        response_code: Some(ResponseCode::BAD_SIGNATURE),
        ..ErrorLogQuery::latest(10)
    };
    assert_eq!(s.error_log(&sigs).await.unwrap().len(), 2);
    let usps = ErrorLogQuery { domain: Some(dom("USPS")), ..ErrorLogQuery::latest(10) };
    assert_eq!(s.error_log(&usps).await.unwrap().len(), 1);
    let since = ErrorLogQuery { since: Some(ts(2)), ..ErrorLogQuery::latest(1) };
    assert_eq!(s.error_log(&since).await.unwrap()[0].entry.message, "error 3");
    // Each entry is an event of the error log's chain, which verifies; oldest first for audits.
    let errors = postkey_wire::DomainId::error_log();
    assert_eq!(s.verify_chain(&errors).await.unwrap().count, 3);
    let in_order = s.errors_in_order(0, 10).await.unwrap();
    assert_eq!(in_order.iter().map(|e| e.seq).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    let events = s.chain_events(&errors, 0, 10).await.unwrap();
    assert_eq!(events[1].entry, in_order[1].entry.event());
    assert_eq!(s.errors_in_order(in_order[0].id, 10).await.unwrap().len(), 2);
    // ERRORS is the chain's name, never a domain's.
    let e = s.create_domain(&NewDomain { id: errors, time: ts(9), actor: kmc() }).await;
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
}

/// Entries written elsewhere first (a host's spool) are logged once each, however often they
/// are moved in: a move that stopped halfway is simply done again.
pub async fn error_log_origins_are_logged_once<H: Harness>(h: &H) {
    let s = h.open().await;
    let entry = |n: u64, origin: Option<&str>| ErrorLogEntry {
        time: ts(n),
        component: Component::parse("host").unwrap(),
        response_code: ResponseCode::BAD_SIGNATURE,
        message: format!("spooled {n}"),
        domain: None,
        meter_id: None,
        key_id: None,
        origin: origin.map(str::to_owned),
    };
    let first = [entry(1, Some("a-1")), entry(2, Some("a-2")), entry(3, None)];
    assert_eq!(s.log_errors(&first).await.unwrap(), 3);
    // Moved again after a crash, with one more: only the new origin and the entry without one.
    let again =
        [entry(1, Some("a-1")), entry(2, Some("a-2")), entry(3, None), entry(4, Some("a-4"))];
    assert_eq!(s.log_errors(&again).await.unwrap(), 2);
    let all = s.error_log(&ErrorLogQuery::latest(10)).await.unwrap();
    let messages: Vec<_> = all.iter().rev().map(|e| e.entry.message.as_str()).collect();
    assert_eq!(messages, ["spooled 1", "spooled 2", "spooled 3", "spooled 3", "spooled 4"]);
    assert_eq!(all[0].entry, entry(4, Some("a-4")));
    assert_eq!(s.log_errors(&[]).await.unwrap(), 0);
}

/// Checkpoints are kept numbered from 1 per chain, each no shorter than the last, as received;
/// storing one is an `ADMIN` event naming its record (protocol §6.6).
pub async fn checkpoints_are_numbered_and_never_go_back<H: Harness>(h: &H) {
    let s = h.open().await;
    s.create_domain(&NewDomain { id: dom("VE"), time: ts(1), actor: kmc() }).await.unwrap();
    let cp = |number: u64, count: u64, tag: &str| crate::NewCheckpoint {
        chain: dom("VE"),
        number,
        count,
        head: crate::Digest([number as u8; 32]),
        record: record(RecordType::CHECKPOINT, tag),
        time: ts(10 + number),
        actor: Sender::Box(bx("B00000001")),
    };
    assert!(s.latest_checkpoint(&dom("VE")).await.unwrap().is_none());
    let admin_before = s.chain_head(&dom("ADMIN")).await.unwrap().unwrap().count;
    s.store_checkpoint(&cp(1, 0, "one")).await.unwrap();
    s.store_checkpoint(&cp(2, 5, "two")).await.unwrap();
    // Not the next number, or fewer events than the last: refused, nothing kept.
    for bad in [cp(2, 6, "again"), cp(4, 6, "gap"), cp(3, 4, "shorter")] {
        let e = s.store_checkpoint(&bad).await.unwrap_err();
        assert!(matches!(e, StoreError::Mismatch(_)), "{e:?}");
    }
    let e = s.store_checkpoint(&crate::NewCheckpoint { chain: dom("XX"), ..cp(1, 0, "x") }).await;
    assert!(matches!(e, Err(StoreError::NotFound(Subject::Chain(_)))), "{e:?}");
    s.store_checkpoint(&cp(3, 5, "three")).await.unwrap();
    let kept = s.checkpoints(&dom("VE"), 0, 10).await.unwrap();
    assert_eq!(
        kept.iter().map(|c| (c.number, c.count)).collect::<Vec<_>>(),
        [(1, 0), (2, 5), (3, 5)]
    );
    assert_eq!(
        kept[1],
        crate::StoredCheckpoint {
            chain: dom("VE"),
            number: 2,
            count: 5,
            head: crate::Digest([2; 32]),
            record: record(RecordType::CHECKPOINT, "two"),
            time: ts(12),
        }
    );
    assert_eq!(s.checkpoints(&dom("VE"), 2, 10).await.unwrap().len(), 1);
    assert_eq!(s.latest_checkpoint(&dom("VE")).await.unwrap().unwrap().number, 3);
    let admin = s.chain_events(&dom("ADMIN"), admin_before, 10).await.unwrap();
    assert_eq!(admin.len(), 3);
    assert_eq!(admin[2].entry.action, Action::CheckpointStored { chain: dom("VE"), number: 3 });
    assert_eq!(
        admin[2].entry.record.unwrap().digest,
        record(RecordType::CHECKPOINT, "three").digest()
    );
}

/// A database written by a newer build is refused at open, with a clear error.
pub async fn schema_version_is_checked<H: Harness>(h: &H) {
    let s = h.open().await;
    // Opening again applies nothing and succeeds.
    h.try_open().await.unwrap();
    h.set_schema_version(&s, 999).await;
    let err = h.try_open().await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 999, .. }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_SCHEMA_TOO_NEW);
}

/// The installation is made once, by `apply`, with an `ADMIN` chain event naming its Domain Key
/// Set certificate.
pub async fn installation_is_made_once<H: Harness>(h: &H) {
    let s = h.open().await;
    assert_eq!(s.installation().await.unwrap(), None);
    let new = crate::NewInstallation {
        id: postkey_wire::InstallationId([5; 16]),
        anchors: postkey_crypto::Fingerprint([6; 32]),
        dks_certificate: record(RecordType::DKS_CERTIFICATE, "dks"),
        time: ts(1),
        actor: Sender::Box(bx("M00000001")),
    };
    let before = s.chain_head(&postkey_wire::DomainId::admin()).await.unwrap().unwrap().count;
    let changes = crate::Changes { installation: Some(new.clone()), ..crate::Changes::default() };
    s.apply(&changes).await.unwrap();
    let got = s.installation().await.unwrap().unwrap();
    assert_eq!(
        (got.id, got.anchors, &got.dks_certificate, got.created),
        (new.id, new.anchors, &new.dks_certificate, new.time)
    );
    let head = s.chain_head(&postkey_wire::DomainId::admin()).await.unwrap().unwrap();
    assert_eq!(head.count, before + 1);
    // Never a second one, whatever else the same transaction carries.
    let again = crate::Changes {
        installation: Some(crate::NewInstallation {
            id: postkey_wire::InstallationId([9; 16]),
            ..new
        }),
        domains: vec![NewDomain { id: dom("UKRM"), time: ts(2), actor: kmc() }],
        ..crate::Changes::default()
    };
    let err = s.apply(&again).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(Subject::Installation)), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::ARCHIVE_DUPLICATE);
    assert_eq!(s.installation().await.unwrap().unwrap().id, postkey_wire::InstallationId([5; 16]));
    assert!(s.domain(&dom("UKRM")).await.unwrap().is_none(), "the refused apply left nothing");
}

/// `apply` is one transaction: a ceremony's boxes, domains, bundles, processes, versions and
/// transcript land together, or not at all, and every rule holds per item.
pub async fn apply_is_whole_or_nothing<H: Harness>(h: &H) {
    let s = h.open().await;
    let ve = dom("VE");
    let m = Sender::Box(bx("M00000001"));
    let ceremony = crate::Changes {
        domains: vec![NewDomain { id: ve.clone(), time: ts(1), actor: m.clone() }],
        subdomains: vec![crate::NewSubdomain { id: sub("VE/US"), time: ts(1), actor: m.clone() }],
        bundles: vec![crate::NewBundle {
            domain: ve.clone(),
            version: 1,
            created_by: bx("M00000001"),
            bundle: record(RecordType::DOMAIN_BUNDLE, "ve"),
            time: ts(1),
        }],
        boxes: vec![new_box("M00000001", 1), new_box("O00000001", 1)],
        processes: vec![crate::NewDomainProcess {
            box_id: bx("O00000001"),
            domain: ve.clone(),
            subdomains: Vec::new(),
            record: record(RecordType::PROCESS, "o1"),
            time: ts(1),
            actor: m.clone(),
        }],
        versions: vec![crate::BoxVersion { box_id: bx("M00000001"), version: StateVersion(4) }],
        transcripts: vec![crate::NewTranscript {
            time: ts(2),
            kind: crate::CeremonyKind::parse("manufacture-box").unwrap(),
            box_id: Some(bx("O00000001")),
            transcript: record(RecordType::TRANSCRIPT, "t"),
            actor: m.clone(),
        }],
        ..crate::Changes::default()
    };
    // The same ceremony with one item that breaks a rule (a version below the recorded one)
    // changes nothing.
    let mut broken = ceremony.clone();
    broken.versions.push(crate::BoxVersion { box_id: bx("O00000001"), version: StateVersion(0) });
    let err = s.apply(&broken).await.unwrap_err();
    assert!(matches!(err, StoreError::StateVersionWentBackwards { .. }), "{err:?}");
    assert!(s.domain(&ve).await.unwrap().is_none());
    assert!(s.box_record(bx("M00000001")).await.unwrap().is_none());
    assert!(s.transcripts(None).await.unwrap().is_empty());
    let applied = s.apply(&ceremony).await.unwrap();
    assert_eq!(applied.transcripts.len(), 1);
    assert_eq!(s.highest_state_version(bx("M00000001")).await.unwrap(), StateVersion(4));
    assert_eq!(s.domain_processes(bx("O00000001")).await.unwrap().len(), 1);
    assert!(s.latest_bundle(&ve).await.unwrap().is_some());
    s.verify_chain(&postkey_wire::DomainId::admin()).await.unwrap();
    // Keys and the versions of the boxes that answered, together.
    let k = s.allocate_key_id(&ve).await.unwrap();
    let keys = crate::Changes {
        new_keys: vec![crate::conformance::new_key(&ve, k, 10)],
        versions: vec![crate::BoxVersion { box_id: bx("O00000001"), version: StateVersion(7) }],
        ..crate::Changes::default()
    };
    s.apply(&keys).await.unwrap();
    assert_eq!(s.highest_state_version(bx("O00000001")).await.unwrap(), StateVersion(7));
    assert!(s.key(&ve, k).await.unwrap().is_some());
    // A batch whose key is refused (already a key) leaves the version where it was.
    let again = crate::Changes {
        versions: vec![crate::BoxVersion { box_id: bx("O00000001"), version: StateVersion(9) }],
        ..keys
    };
    assert!(s.apply(&again).await.is_err());
    assert_eq!(s.highest_state_version(bx("O00000001")).await.unwrap(), StateVersion(7));
}

/// A re-baseline sets a box's recorded version back once, only from the version the archive
/// still records, as an `ADMIN` chain event; the versions only grow again after it. What a box
/// has handled is found from its keys.
pub async fn rebaseline_is_guarded_and_chained<H: Harness>(h: &H) {
    let s = h.open().await;
    let oak = bx("O00000001");
    let (steel, brass) = (bx("S00000001"), bx("B00000001"));
    s.register_box(&new_box("O00000001", 1)).await.unwrap();
    s.record_state_version(oak, StateVersion(9)).await.unwrap();
    // What the boxes may have handled: every key Oak generated, and that was generated for
    // Steel; of each domain, the highest.
    let (ve, usps) = (setup_domain(&s, "VE").await, setup_domain(&s, "USPS").await);
    assert!(s.key_ids_seen(oak).await.unwrap().is_empty());
    for at in 1..=3 {
        create(&s, &ve, 10 * at).await;
    }
    create(&s, &usps, 35).await;
    let mut other = new_key(&ve, s.allocate_key_id(&ve).await.unwrap(), 36);
    other.oak_id = bx("O00000002");
    other.steel_id = bx("S00000002");
    s.create_key(&other).await.unwrap();
    let mut seen = s.key_ids_seen(oak).await.unwrap();
    seen.sort();
    assert_eq!(seen, vec![(usps.clone(), kid(1)), (ve.clone(), kid(3))]);
    let mut seen = s.key_ids_seen(steel).await.unwrap();
    seen.sort();
    assert_eq!(seen, vec![(usps, kid(1)), (ve.clone(), kid(3))]);
    assert_eq!(s.key_ids_seen(bx("S00000002")).await.unwrap(), vec![(ve, kid(4))]);
    assert!(s.key_ids_seen(brass).await.unwrap().is_empty());
    // Set back from the version recorded, once, chained.
    let admin = postkey_wire::DomainId::admin();
    let before = s.chain_head(&admin).await.unwrap().unwrap().count;
    let r = crate::Rebaseline {
        box_id: oak,
        from: StateVersion(9),
        to: StateVersion(5),
        time: ts(50),
        actor: Sender::Box(bx("M00000001")),
    };
    let changes = crate::Changes { rebaselines: vec![r.clone()], ..crate::Changes::default() };
    s.apply(&changes).await.unwrap();
    assert_eq!(s.highest_state_version(oak).await.unwrap(), StateVersion(5));
    let events = s.chain_events(&admin, before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entry.action, Action::BoxRebaselined { box_id: oak, from: 9, to: 5 });
    s.verify_chain(&admin).await.unwrap();
    // From a version the archive no longer records: refused, nothing changes.
    let err = s.apply(&changes).await.unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err:?}");
    assert_eq!(s.highest_state_version(oak).await.unwrap(), StateVersion(5));
    // Never forward, never for a box the archive does not know.
    let forward = crate::Rebaseline { from: StateVersion(5), to: StateVersion(6), ..r.clone() };
    let changes = crate::Changes { rebaselines: vec![forward], ..crate::Changes::default() };
    assert!(matches!(s.apply(&changes).await.unwrap_err(), StoreError::Invalid(_)));
    let unknown = crate::Rebaseline { box_id: bx("O00000002"), ..r };
    let changes = crate::Changes { rebaselines: vec![unknown], ..crate::Changes::default() };
    let err = s.apply(&changes).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(Subject::Box(_))), "{err:?}");
    // After it, the version only grows again.
    let err = s.record_state_version(oak, StateVersion(4)).await.unwrap_err();
    assert!(matches!(err, StoreError::StateVersionWentBackwards { .. }), "{err:?}");
    s.record_state_version(oak, StateVersion(6)).await.unwrap();
}

/// The append-only history, not the editable tables, decides whether an ID was given: a key-ID
/// counter set back behind the IDs the history names, or a box row deleted, gives no key ID and
/// no box ID a second time (integrity, 3672), and nothing is allocated or registered.
pub async fn history_keeps_ids_from_being_given_twice<H: Harness>(h: &H) {
    let s = h.open().await;
    let ve = setup_domain(&s, "VE").await;
    for at in 1..=3 {
        create(&s, &ve, 10 * at).await;
    }
    let burned = s.allocate_key_id(&ve).await.unwrap();
    s.burn_key_id(&crate::BurnKeyId {
        domain: ve.clone(),
        key_id: burned,
        reason: "refused by Oak".into(),
        time: ts(40),
        actor: kmc(),
    })
    .await
    .unwrap();
    // Set back below a burned ID, then below a key: refused each time.
    for next in [4, 2] {
        h.tamper(&s, super::Tamper::RewindKeyIds { domain: ve.clone(), next }).await;
        let err = s.allocate_key_ids(&ve, 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "next {next}: {err:?}");
        assert_eq!(err.response_code(), ResponseCode::ARCHIVE_CORRUPT);
    }
    // Put back where the history ends: allocation goes on.
    h.tamper(&s, super::Tamper::RewindKeyIds { domain: ve.clone(), next: 5 }).await;
    assert_eq!(s.allocate_key_id(&ve).await.unwrap(), kid(5));
    // A box whose row was deleted keeps its ID.
    s.register_box(&new_box("S00000002", 1)).await.unwrap();
    h.tamper(&s, super::Tamper::ForgetBox(bx("S00000002"))).await;
    assert!(s.box_record(bx("S00000002")).await.unwrap().is_none());
    let err = s.register_box(&new_box("S00000002", 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(s.box_record(bx("S00000002")).await.unwrap().is_none());
    s.register_box(&new_box("S00000003", 3)).await.unwrap();
}
