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
    assert_eq!(heads.iter().map(|h| h.chain.as_str()).collect::<Vec<_>>(), ["ADMIN", "EARTH"]);
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

/// A box's recorded state version only grows (SPEC §7.2 item 7).
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
