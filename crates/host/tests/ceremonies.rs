//! The hosted ceremonies and the box side of the link against a real home directory: refusals
//! reach the error log with their response codes, a refused or failed command persists nothing,
//! and the state-version check refuses a restored old state.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{INITIALIZED, ONE_OAK, Unwritable, World, d, logged, logged_by, sub, world};
use postkey_archive::Store as _;
use postkey_host::{Access, Ceremonies, Home, HostError, Session, SharePolicy, Wait};
use postkey_wire::command::{
    AttestState, Command, CreateDomain, InstallCertificate, SelfTest, reply_from_bytes,
};
use postkey_wire::{BoxId, BoxType, CommandCode, DomainId, DomainKind, Nonce, ResponseCode};

fn code(e: &HostError) -> u16 {
    e.response_code().0
}

/// A home after the first ceremony.
async fn initialized() -> World {
    world(tempfile::tempdir().unwrap(), INITIALIZED).await
}

/// A home with one Oak box (no process), and the box.
async fn oak() -> (World, BoxId) {
    let w = world(tempfile::tempdir().unwrap(), ONE_OAK).await;
    let id = w.made(BoxType::Oak);
    (w, id)
}

/// The refusal a reply frame carries for the whole command; panics on answers.
fn refusal_of(reply: &[u8]) -> (CommandCode, postkey_wire::Refusal) {
    match reply_from_bytes(reply).unwrap() {
        (code, Err(refusal)) => (code, refusal),
        (code, Ok(response)) => panic!("{code}: answered {response:?}"),
    }
}

/// The encoded items of a one-item command frame: its bytes after the frame's head and list
/// header (the frame of the same command with no item is the head and an empty list).
fn item_bytes(one: &Command, none: &Command) -> Vec<u8> {
    let (one, none) = (one.to_bytes(), none.to_bytes());
    assert_eq!(none.last(), Some(&0x80), "an empty list ends the empty frame");
    assert_eq!(one[..none.len() - 1], none[..none.len() - 1], "the same head");
    assert_eq!(one[none.len() - 1], 0x81, "a list of one item");
    one[none.len()..].to_vec()
}

/// An item map with one field more than its type has: `{0: …}` becomes `{0: …, 1: 0}`.
fn with_an_extra_field(item: &[u8]) -> Vec<u8> {
    assert_eq!(item[0], 0xA1, "a map of one field");
    [&[0xA2][..], &item[1..], &[0x01, 0x00]].concat()
}

#[tokio::test]
async fn a_second_first_ceremony_in_one_home_is_refused_and_logged() {
    let w = initialized().await;
    let lock = w.lock();
    let err = postkey_host::init(&lock, &w.store, &w.media()).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::FIRST_CEREMONY_DONE.0);
    assert!(logged(&w.home, ResponseCode::FIRST_CEREMONY_DONE));
}

#[tokio::test]
async fn an_old_copy_of_a_box_state_put_back_is_refused_before_any_command() {
    let (w, id) = oak().await;
    let m = BoxId::FIRST_MANUFACTURING;
    let state = w.state_path(id);
    let old = std::fs::read(&state).unwrap();
    // A durable change, recorded in the archive: a process installed.
    let lock = w.lock();
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.enable(m, &w.media()).await.unwrap();
    c.create_domain(m, d("USPS"), DomainKind::Postal, vec![sub("USPS/US")]).await.unwrap();
    c.enable(id, &w.media()).await.unwrap();
    c.install_process(m, id, &d("USPS"), vec![]).await.unwrap();
    c.close();
    // The old copy is put back.
    std::fs::write(&state, &old).unwrap();
    let expected = w.expected(id).await;
    assert!(expected.version > w.sealed_version(id), "the archive recorded the change");
    let mut s = Session::new(&w.home, Wait::No);
    assert_eq!(logged_by(&w.home, id, ResponseCode::STATE_ROLLBACK), 0);
    let err = s.enable(id, &w.media(), &expected).unwrap_err();
    assert_eq!(code(&err), ResponseCode::STATE_ROLLBACK.0, "{err}");
    assert_eq!(logged_by(&w.home, id, ResponseCode::STATE_ROLLBACK), 1);
    // Refused means not enabled: nothing can be asked of it.
    assert_eq!(s.enabled().count(), 0);
    let err = s.call_one(id, SelfTest {}).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_LOCKED.0);
    // Nor can a ceremony use it.
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    let err = c.enable(id, &w.media()).await.unwrap_err();
    assert_eq!(code(&err), ResponseCode::STATE_ROLLBACK.0, "{err}");
}

#[tokio::test]
async fn a_locked_box_is_refused_and_logged() {
    let (w, id) = oak().await;
    let home = &w.home;
    let s = Session::new(home, Wait::No);
    assert_eq!(logged_by(home, id, ResponseCode::BOX_LOCKED), 0);
    let err = s.call_one(id, SelfTest {}).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_LOCKED.0, "{err}");
    assert_eq!(logged_by(home, id, ResponseCode::BOX_LOCKED), 1);
    // The same refusal on the link: a frame to a box the session has not enabled.
    let reply = s.serve(id, &Command::SelfTest(vec![SelfTest {}]).to_bytes(), None);
    let (answers, refusal) = refusal_of(&reply);
    assert_eq!(answers, CommandCode::SELF_TEST);
    assert_eq!(refusal.code.0, 4001, "{refusal}");
    assert_eq!(logged_by(home, id, ResponseCode::BOX_LOCKED), 2);
}

#[tokio::test]
async fn a_box_whose_power_up_self_test_fails_is_not_enabled_and_it_is_logged() {
    let (w, id) = oak().await;
    let expected = w.expected(id).await;
    let mut s = Session::new(&w.home, Wait::No);
    postkey_secrets::selftest::injected::fail_next_power_up("Ed25519");
    let err = s.enable(id, &w.media(), &expected).unwrap_err();
    assert_eq!(code(&err), ResponseCode::SELF_TEST_FAILED.0, "{err}");
    assert_eq!(logged_by(&w.home, id, ResponseCode::SELF_TEST_FAILED), 1);
    assert_eq!(s.enabled().count(), 0);
    // Without the fault, the same box enables (the failed attempt let go of its lock).
    s.enable(id, &w.media(), &expected).unwrap();
    assert_eq!(s.enabled().collect::<Vec<_>>(), vec![id]);
}

#[tokio::test]
async fn enabling_with_too_few_shares_is_refused_and_logged() {
    let (w, id) = oak().await;
    let few = w.dir.path().join("few");
    std::fs::create_dir(&few).unwrap();
    let one = std::fs::read_dir(w.media())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{id}-")))
        .unwrap();
    std::fs::copy(&one, few.join(one.file_name().unwrap())).unwrap();
    let mut s = Session::new(&w.home, Wait::No);
    let err = s.enable(id, &few, &w.expected(id).await).unwrap_err();
    assert_eq!(code(&err), ResponseCode::SHARE_QUORUM_NOT_MET.0);
    assert!(logged(&w.home, ResponseCode::SHARE_QUORUM_NOT_MET));
    assert_eq!(s.enabled().count(), 0);
}

#[tokio::test]
async fn a_refused_command_is_logged_and_leaves_the_state_unchanged() {
    let (w, id) = oak().await;
    let recorded = w.recorded(id).await;
    let on_disk = std::fs::read(w.state_path(id)).unwrap();
    let s = w.session(&[id]).await;
    let version = s.version(id).unwrap();
    // An Oak box is not a manufacturing box: a manufacturing command is outside its table.
    let item = CreateDomain {
        domain: d("UKRM"),
        kind: DomainKind::Postal,
        subdomains: vec![sub("UKRM/GB")],
    };
    let err = s.call_one(id, item).unwrap_err();
    assert_eq!(code(&err), ResponseCode::COMMAND_NOT_IN_TABLE.0, "{err}");
    assert_eq!(logged_by(&w.home, id, ResponseCode::COMMAND_NOT_IN_TABLE), 1);
    assert_eq!(s.version(id), Some(version), "the running box is unchanged");
    assert_eq!(w.recorded(id).await, recorded);
    assert_eq!(std::fs::read(w.state_path(id)).unwrap(), on_disk);
}

#[tokio::test]
async fn a_frame_with_an_unknown_command_code_is_refused_2001_and_logged() {
    let (w, id) = oak().await;
    let s = w.session(&[id]).await;
    // {0: 0x7777, 1: 1, 2: []}: well formed, but no command of this build has the code.
    let frame = [0xA3, 0x00, 0x19, 0x77, 0x77, 0x01, 0x01, 0x02, 0x80];
    assert_eq!(
        Command::from_bytes(&frame).unwrap_err().response_code(),
        ResponseCode::UNKNOWN_COMMAND
    );
    assert_eq!(logged_by(&w.home, id, ResponseCode::UNKNOWN_COMMAND), 0);
    let (answers, refusal) = refusal_of(&s.serve(id, &frame, None));
    assert_eq!(answers, CommandCode(0x7777), "the refusal names the command it refuses");
    assert_eq!(refusal.code.0, 2001, "{refusal}");
    assert_eq!(logged_by(&w.home, id, ResponseCode::UNKNOWN_COMMAND), 1);
    // The box is still there for the next command.
    s.call_one(id, SelfTest {}).unwrap();
}

#[tokio::test]
async fn an_item_with_a_wrong_number_of_fields_is_refused_2002_and_logged() {
    let (w, id) = oak().await;
    let s = w.session(&[id]).await;
    let nonce = Nonce([7; 32]);
    let none = Command::AttestState(vec![]).to_bytes();
    let item = item_bytes(
        &Command::AttestState(vec![AttestState { nonce }]),
        &Command::AttestState(vec![]),
    );
    // The same frame with well-formed items is answered.
    let good = [&none[..none.len() - 1], &[0x81], &item[..]].concat();
    assert!(matches!(reply_from_bytes(&s.serve(id, &good, None)).unwrap(), (_, Ok(_))));
    let bad = [&none[..none.len() - 1], &[0x81], &with_an_extra_field(&item)[..]].concat();
    assert_eq!(
        Command::from_bytes(&bad).unwrap_err().response_code(),
        ResponseCode::PARAMETER_COUNT
    );
    assert_eq!(logged_by(&w.home, id, ResponseCode::PARAMETER_COUNT), 0);
    let (answers, refusal) = refusal_of(&s.serve(id, &bad, None));
    assert_eq!(answers, CommandCode::ATTEST_STATE);
    assert_eq!(refusal.code.0, 2002, "{refusal}");
    assert_eq!(logged_by(&w.home, id, ResponseCode::PARAMETER_COUNT), 1);
}

#[tokio::test]
async fn the_demo_makes_one_box_of_each_type_with_the_processes_each_needs_and_keys_meters() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let lock = home.lock(Access::Exclusive, Wait::No).unwrap();
    let options = postkey_host::demo::DemoOptions::new(4, 0);
    let report = postkey_host::demo::run(&lock, options, |_| {}).await.unwrap();
    assert_eq!(report.meters, 4);
    // Each meter keyed and registered; the last two withdrawn.
    let counted = |status: &str| -> usize {
        report.keys.iter().filter(|k| k.status == status).map(|k| k.count).sum()
    };
    assert_eq!((counted("active"), counted("obsolete")), (4, 4), "{:?}", report.keys);
    let ve: usize = report.keys.iter().filter(|k| k.domain == "VE").map(|k| k.count).sum();
    assert_eq!(ve, 4);
    assert!(report.audit.holds(), "{:?}", report.audit.faults);
    let types: Vec<BoxType> = report.boxes.iter().map(|b| b.box_type).collect();
    for t in [BoxType::Manufacturing, BoxType::Oak, BoxType::Steel, BoxType::Brass, BoxType::Tin] {
        assert!(types.contains(&t), "{types:?}");
    }
    let names = |domains: &[DomainId]| domains.iter().map(ToString::to_string).collect::<Vec<_>>();
    let brass = report.boxes.iter().find(|b| b.box_type == BoxType::Brass).unwrap();
    assert_eq!(names(&brass.domains), vec!["ADMIN", "EARTH", "USPS", "VE"]);
    let tin = report.boxes.iter().find(|b| b.box_type == BoxType::Tin).unwrap();
    assert_eq!(names(&tin.domains), vec!["USPS"], "Tin verifies postal tokens only");
    assert_eq!(report.mismatches, 0);
    let domains: Vec<DomainId> = report.domains.iter().map(|d| d.domain.clone()).collect();
    assert_eq!(names(&domains), vec!["ADMIN", "EARTH", "USPS", "VE"]);
    // The JSON keeps IDs and types as text.
    let json = serde_json::to_value(&report).unwrap();
    let brass = json["boxes"].as_array().unwrap().iter().find(|b| b["type"] == "brass").unwrap();
    assert_eq!(brass["domains"], serde_json::json!(["ADMIN", "EARTH", "USPS", "VE"]));
    assert_eq!(json["init"]["id"], "M00000001");
    // Every share file is readable by its owner only.
    use std::os::unix::fs::PermissionsExt as _;
    for e in std::fs::read_dir(home.media_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "share") {
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                p.display()
            );
        }
    }
}

#[tokio::test]
async fn a_command_that_fails_persists_nothing() {
    let (w, id) = oak().await;
    let state = w.state_path(id);
    let before = std::fs::read(&state).unwrap();
    let recorded = w.recorded(id).await;
    let expected = w.expected(id).await;
    let cert = expected.certificate.clone();
    let mut s = Session::new(&w.home, Wait::No);
    let version = s.enable(id, &w.media(), &expected).unwrap();
    assert_eq!(version, w.sealed_version(id), "the box attests the state on disk");
    // A batch whose first item changes the box (its certificate installed again) and whose
    // second item is malformed: the whole command is refused, and the change is not made.
    let change = InstallCertificate { certificate: cert.into() };
    let none = Command::InstallCertificate(vec![]).to_bytes();
    let item = item_bytes(
        &Command::InstallCertificate(vec![change.clone()]),
        &Command::InstallCertificate(vec![]),
    );
    let frame =
        [&none[..none.len() - 1], &[0x82], &item[..], &with_an_extra_field(&item)[..]].concat();
    let (_, refusal) = refusal_of(&s.serve(id, &frame, None));
    assert_eq!(refusal.code, ResponseCode::PARAMETER_COUNT, "{refusal}");
    assert_eq!(logged_by(&w.home, id, ResponseCode::PARAMETER_COUNT), 1);
    assert_eq!(std::fs::read(&state).unwrap(), before);
    assert_eq!(s.version(id), Some(version), "the running box is unchanged too");
    assert_eq!(w.recorded(id).await, recorded);
    // The test can fail: the first item alone is a durable change, and its reply carries the
    // new version, the one on disk.
    let reply = s.serve(id, &Command::InstallCertificate(vec![change]).to_bytes(), None);
    let (_, answered) = reply_from_bytes(&reply).unwrap();
    let answered = answered.unwrap();
    assert!(answered.response.refusals().is_empty(), "{:?}", answered.response);
    assert!(answered.state_version > version);
    assert_eq!(answered.state_version, w.sealed_version(id));
    assert_ne!(std::fs::read(&state).unwrap(), before);
}

#[tokio::test]
async fn a_storage_failure_refuses_the_command_3602_and_the_sealed_state_stays() {
    let (w, id) = oak().await;
    let usps = d("USPS");
    let m = BoxId::FIRST_MANUFACTURING;
    let lock = w.lock();
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.enable(m, &w.media()).await.unwrap();
    c.create_domain(m, usps.clone(), DomainKind::Postal, vec![sub("USPS/US")]).await.unwrap();
    c.enable(id, &w.media()).await.unwrap();
    let state = w.state_path(id);
    let before = std::fs::read(&state).unwrap();
    let recorded = w.recorded(id).await;
    // The box's state can no longer be written.
    let blocked = Unwritable::block(&state);
    assert_eq!(logged_by(&w.home, id, ResponseCode::STORAGE_FAILED), 0);
    // Installing a process changes the Oak box: its commit fails, and the command is refused.
    let err = c.install_process(m, id, &usps, vec![]).await.unwrap_err();
    assert_eq!(code(&err), 3602, "{err}");
    assert!(matches!(&err, HostError::Refused { component, .. } if *component == id.to_string()));
    assert_eq!(logged_by(&w.home, id, ResponseCode::STORAGE_FAILED), 1);
    assert_eq!(w.recorded(id).await, recorded);
    assert!(w.store.domain_processes(id).await.unwrap().is_empty(), "nothing was archived");
    c.close();
    blocked.restore();
    assert_eq!(std::fs::read(&state).unwrap(), before, "the sealed state on disk is unchanged");
    // Nothing of the refused command reached the disk: enabled again from it, the box has no
    // process of USPS, and takes one.
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.enable(m, &w.media()).await.unwrap();
    c.enable(id, &w.media()).await.unwrap();
    c.install_process(m, id, &usps, vec![]).await.unwrap();
    assert_ne!(std::fs::read(&state).unwrap(), before);
    assert_eq!(w.recorded(id).await, w.sealed_version(id), "the archive records the new state");
}

#[tokio::test]
async fn a_domain_created_in_one_manufacturing_box_reaches_the_others() {
    let w = initialized().await;
    let m1 = BoxId::FIRST_MANUFACTURING;
    let lock = w.lock();
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.enable(m1, &w.media()).await.unwrap();
    let m2 = c
        .manufacture(
            m1,
            BoxType::Manufacturing,
            &w.media(),
            SharePolicy::default_for(BoxType::Manufacturing),
            None,
        )
        .await
        .unwrap()
        .id;
    c.close();
    // Created with M00000001 alone enabled.
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.enable(m1, &w.media()).await.unwrap();
    let report =
        c.create_domain(m1, d("UKRM"), DomainKind::Postal, vec![sub("UKRM/GB")]).await.unwrap();
    assert_eq!(report.manufacturing_boxes, vec![m1]);
    c.close();
    // M00000002 adopts it when next enabled, and can then make UKRM processes.
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    c.enable(m2, &w.media()).await.unwrap();
    let oak = c
        .manufacture(m2, BoxType::Oak, &w.media(), SharePolicy::default_for(BoxType::Oak), None)
        .await
        .unwrap()
        .id;
    c.install_process(m2, oak, &d("UKRM"), vec![]).await.unwrap();
}

/// One owner per box and per home write (protocol §1 rule 5): a box another session holds is
/// refused 4007 until it is let go; a ceremony needs the home alone (3605).
#[tokio::test]
async fn a_box_in_use_is_refused_4007_and_a_ceremony_needs_the_home_alone() {
    let (w, id) = oak().await;
    let expected = w.expected(id).await;
    let first = w.session(&[id]).await;
    let mut second = Session::new(&w.home, Wait::No);
    let err = second.enable(id, &w.media(), &expected).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_IN_USE.0, "{err}");
    assert_eq!(second.enabled().count(), 0);
    first.lock();
    second.enable(id, &w.media(), &expected).unwrap();
    second.lock();
    // The home held shared: no second holder may have it alone, and no ceremony runs on it.
    let shared = w.home.lock(Access::Shared, Wait::No).unwrap();
    let err = w.home.lock(Access::Exclusive, Wait::No).unwrap_err();
    assert_eq!(code(&err), ResponseCode::HOME_BUSY.0, "{err}");
    let mut c = Ceremonies::open(&shared, w.store.clone()).await.unwrap();
    c.enable(BoxId::FIRST_MANUFACTURING, &w.media()).await.unwrap();
    let err = c
        .create_domain(BoxId::FIRST_MANUFACTURING, d("UKRM"), DomainKind::Postal, vec![])
        .await
        .unwrap_err();
    assert_eq!(code(&err), ResponseCode::HOME_BUSY.0, "{err}");
    assert!(w.store.domain(&d("UKRM")).await.unwrap().is_none());
    c.close();
    drop(shared);
    // Let go, the home is the ceremony's.
    w.lock();
}
