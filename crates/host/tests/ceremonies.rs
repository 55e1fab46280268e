//! The hosted ceremonies and the box side of the link against a real home directory: refusals
//! reach the error log with their response codes, a refused or failed command persists nothing,
//! and the state-version check refuses a restored old state.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_host::{Home, HostError, Session, SharePolicy};
use postkey_wire::command::{
    AttestState, Command, CreateDomain, InstallCertificate, SelfTest, reply_from_bytes,
};
use postkey_wire::{
    BoxId, BoxType, CommandCode, DomainId, DomainKind, Nonce, ResponseCode, SubdomainId,
};

fn code(e: &HostError) -> u16 {
    e.response_code().0
}

/// Whether the home's error-log spool holds an entry with `code`.
fn logged(home: &Home, code: ResponseCode) -> bool {
    home.spooled_errors().unwrap().iter().any(|e| e.code == code.0)
}

/// How many entries of the spool carry `code` and name `component`.
fn logged_by(home: &Home, component: BoxId, code: ResponseCode) -> usize {
    home.spooled_errors()
        .unwrap()
        .iter()
        .filter(|e| e.code == code.0 && e.component == component.to_string())
        .count()
}

fn initialized() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    postkey_host::init(&home, &home.media_dir()).unwrap();
    (dir, home)
}

fn oak(home: &Home) -> BoxId {
    let mut s = Session::new(home).unwrap();
    s.enable(BoxId::FIRST_MANUFACTURING, &home.media_dir()).unwrap();
    let r = postkey_host::manufacture(
        &mut s,
        BoxId::FIRST_MANUFACTURING,
        BoxType::Oak,
        &home.media_dir(),
        SharePolicy::default_for(BoxType::Oak),
        None,
    )
    .unwrap();
    assert_eq!(r.box_type, BoxType::Oak);
    r.id
}

fn state_path(dir: &tempfile::TempDir, id: BoxId) -> std::path::PathBuf {
    dir.path().join("boxes").join(format!("{id}.state"))
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

#[test]
fn a_second_first_ceremony_in_one_home_is_refused_and_logged() {
    let (_d, home) = initialized();
    let err = postkey_host::init(&home, &home.media_dir()).unwrap_err();
    assert_eq!(code(&err), ResponseCode::FIRST_CEREMONY_DONE.0);
    assert!(logged(&home, ResponseCode::FIRST_CEREMONY_DONE));
}

#[test]
fn an_old_copy_of_a_box_state_put_back_is_refused_before_any_command() {
    let (dir, home) = initialized();
    let id = oak(&home);
    let state = state_path(&dir, id);
    let old = std::fs::read(&state).unwrap();
    // A durable change: a process installed.
    let mut s = Session::new(&home).unwrap();
    s.enable(BoxId::FIRST_MANUFACTURING, &home.media_dir()).unwrap();
    postkey_host::create_domain(
        &mut s,
        BoxId::FIRST_MANUFACTURING,
        DomainId::parse("USPS").unwrap(),
        DomainKind::Postal,
        vec![SubdomainId::parse("USPS/US").unwrap()],
    )
    .unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    postkey_host::install_process(
        &mut s,
        BoxId::FIRST_MANUFACTURING,
        id,
        &DomainId::parse("USPS").unwrap(),
        vec![],
    )
    .unwrap();
    s.lock();
    // The old copy is put back.
    std::fs::write(&state, &old).unwrap();
    let mut s = Session::new(&home).unwrap();
    let err = s.enable(id, &home.media_dir()).unwrap_err();
    assert_eq!(code(&err), ResponseCode::STATE_ROLLBACK.0, "{err}");
    assert!(logged(&home, ResponseCode::STATE_ROLLBACK));
    // Refused means not enabled: nothing can be asked of it.
    let err = s.call_one(id, SelfTest {}).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_LOCKED.0);
}

#[test]
fn a_locked_box_is_refused_and_logged() {
    let (_d, home) = initialized();
    let id = oak(&home);
    let s = Session::new(&home).unwrap();
    assert_eq!(logged_by(&home, id, ResponseCode::BOX_LOCKED), 0);
    let err = s.call_one(id, SelfTest {}).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_LOCKED.0, "{err}");
    assert_eq!(logged_by(&home, id, ResponseCode::BOX_LOCKED), 1);
    // The same refusal on the link: a frame to a box the session has not enabled.
    let reply = s.serve(id, &Command::SelfTest(vec![SelfTest {}]).to_bytes(), None);
    let (answers, refusal) = refusal_of(&reply);
    assert_eq!(answers, CommandCode::SELF_TEST);
    assert_eq!(refusal.code.0, 4001, "{refusal}");
    assert_eq!(logged_by(&home, id, ResponseCode::BOX_LOCKED), 2);
}

#[test]
fn a_box_whose_power_up_self_test_fails_is_not_enabled_and_it_is_logged() {
    let (_d, home) = initialized();
    let id = oak(&home);
    let mut s = Session::new(&home).unwrap();
    postkey_secrets::selftest::injected::fail_next_power_up("Ed25519");
    let err = s.enable(id, &home.media_dir()).unwrap_err();
    assert_eq!(code(&err), ResponseCode::SELF_TEST_FAILED.0, "{err}");
    assert_eq!(logged_by(&home, id, ResponseCode::SELF_TEST_FAILED), 1);
    assert_eq!(s.enabled().count(), 0);
    // Without the fault, the same box enables.
    s.enable(id, &home.media_dir()).unwrap();
    assert_eq!(s.enabled().collect::<Vec<_>>(), vec![id]);
}

#[test]
fn enabling_with_too_few_shares_is_refused_and_logged() {
    let (dir, home) = initialized();
    let id = oak(&home);
    let few = dir.path().join("few");
    std::fs::create_dir(&few).unwrap();
    let one = std::fs::read_dir(home.media_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{id}-")))
        .unwrap();
    std::fs::copy(&one, few.join(one.file_name().unwrap())).unwrap();
    let mut s = Session::new(&home).unwrap();
    let err = s.enable(id, &few).unwrap_err();
    assert_eq!(code(&err), ResponseCode::SHARE_QUORUM_NOT_MET.0);
    assert!(logged(&home, ResponseCode::SHARE_QUORUM_NOT_MET));
}

#[test]
fn a_refused_command_is_logged_and_leaves_the_state_unchanged() {
    let (dir, home) = initialized();
    let id = oak(&home);
    let before = home.recorded_version(id).unwrap();
    let on_disk = std::fs::read(state_path(&dir, id)).unwrap();
    let mut s = Session::new(&home).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    // An Oak box is not a manufacturing box: a manufacturing command is outside its table.
    let item = CreateDomain {
        domain: DomainId::parse("UKRM").unwrap(),
        kind: DomainKind::Postal,
        subdomains: vec![SubdomainId::parse("UKRM/GB").unwrap()],
    };
    let err = s.call_one(id, item).unwrap_err();
    assert_eq!(code(&err), ResponseCode::COMMAND_NOT_IN_TABLE.0, "{err}");
    assert_eq!(logged_by(&home, id, ResponseCode::COMMAND_NOT_IN_TABLE), 1);
    assert_eq!(home.recorded_version(id).unwrap(), before);
    assert_eq!(std::fs::read(state_path(&dir, id)).unwrap(), on_disk);
}

#[test]
fn a_frame_with_an_unknown_command_code_is_refused_2001_and_logged() {
    let (_d, home) = initialized();
    let id = oak(&home);
    let mut s = Session::new(&home).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    // {0: 0x7777, 1: 1, 2: []}: well formed, but no command of this build has the code.
    let frame = [0xA3, 0x00, 0x19, 0x77, 0x77, 0x01, 0x01, 0x02, 0x80];
    assert_eq!(
        Command::from_bytes(&frame).unwrap_err().response_code(),
        ResponseCode::UNKNOWN_COMMAND
    );
    assert_eq!(logged_by(&home, id, ResponseCode::UNKNOWN_COMMAND), 0);
    let (answers, refusal) = refusal_of(&s.serve(id, &frame, None));
    assert_eq!(answers, CommandCode(0x7777), "the refusal names the command it refuses");
    assert_eq!(refusal.code.0, 2001, "{refusal}");
    assert_eq!(logged_by(&home, id, ResponseCode::UNKNOWN_COMMAND), 1);
    // The box is still there for the next command.
    s.call_one(id, SelfTest {}).unwrap();
}

#[test]
fn an_item_with_a_wrong_number_of_fields_is_refused_2002_and_logged() {
    let (_d, home) = initialized();
    let id = oak(&home);
    let mut s = Session::new(&home).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
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
    assert_eq!(logged_by(&home, id, ResponseCode::PARAMETER_COUNT), 0);
    let (answers, refusal) = refusal_of(&s.serve(id, &bad, None));
    assert_eq!(answers, CommandCode::ATTEST_STATE);
    assert_eq!(refusal.code.0, 2002, "{refusal}");
    assert_eq!(logged_by(&home, id, ResponseCode::PARAMETER_COUNT), 1);
}

#[tokio::test]
async fn the_demo_makes_one_box_of_each_type_with_the_processes_each_needs_and_keys_meters() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    let report = postkey_host::demo::run(&home, 4, |_| {}).await.unwrap();
    assert_eq!(report.meters, 4);
    let installed: usize =
        report.keys.iter().filter(|k| k.status == "installed").map(|k| k.count).sum();
    assert_eq!(installed, 8, "{:?}", report.keys);
    let ve = report.keys.iter().find(|k| k.domain == "VE" && k.status == "installed").unwrap();
    assert_eq!(ve.count, 4);
    let types: Vec<BoxType> = report.boxes.iter().map(|b| b.box_type).collect();
    for t in [BoxType::Manufacturing, BoxType::Oak, BoxType::Steel, BoxType::Brass, BoxType::Tin] {
        assert!(types.contains(&t), "{types:?}");
    }
    let names = |domains: &[DomainId]| domains.iter().map(ToString::to_string).collect::<Vec<_>>();
    let brass = report.boxes.iter().find(|b| b.box_type == BoxType::Brass).unwrap();
    assert_eq!(names(&brass.domains), vec!["ADMIN", "EARTH", "USPS", "VE"]);
    let tin = report.boxes.iter().find(|b| b.box_type == BoxType::Tin).unwrap();
    assert_eq!(names(&tin.domains), vec!["USPS"], "Tin verifies postal tokens only");
    assert_eq!(report.errors, 0);
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

#[test]
fn a_command_that_fails_persists_nothing() {
    let (dir, home) = initialized();
    let id = oak(&home);
    let state = state_path(&dir, id);
    let before = std::fs::read(&state).unwrap();
    let version = home.recorded_version(id).unwrap().unwrap();
    let cert = home.store().read_certificate(id, &home.anchors().unwrap()).unwrap();
    let mut s = Session::new(&home).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
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
    assert_eq!(logged_by(&home, id, ResponseCode::PARAMETER_COUNT), 1);
    assert_eq!(std::fs::read(&state).unwrap(), before);
    assert_eq!(home.recorded_version(id).unwrap(), Some(version));
    // The test can fail: the first item alone is a durable change.
    s.call_one(id, change).unwrap();
    assert_ne!(std::fs::read(&state).unwrap(), before);
    assert!(home.recorded_version(id).unwrap().unwrap() > version);
}

#[test]
fn a_storage_failure_refuses_the_command_3602_and_the_sealed_state_stays() {
    let (dir, home) = initialized();
    let id = oak(&home);
    let usps = DomainId::parse("USPS").unwrap();
    let m = BoxId::FIRST_MANUFACTURING;
    let mut s = Session::new(&home).unwrap();
    s.enable(m, &home.media_dir()).unwrap();
    postkey_host::create_domain(
        &mut s,
        m,
        usps.clone(),
        DomainKind::Postal,
        vec![SubdomainId::parse("USPS/US").unwrap()],
    )
    .unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    let state = state_path(&dir, id);
    let before = std::fs::read(&state).unwrap();
    let version = home.recorded_version(id).unwrap();
    // The box's state can no longer be written: where the atomic write puts its temporary file
    // stands a directory (file permissions would not stop a test run as root).
    let blocker = dir.path().join("boxes").join(format!(".{id}.state.tmp"));
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("in-the-way"), b"").unwrap();
    assert_eq!(logged_by(&home, id, ResponseCode::STORAGE_FAILED), 0);
    // Installing a process changes the Oak box: its commit fails, and the command is refused.
    let err = postkey_host::install_process(&mut s, m, id, &usps, vec![]).unwrap_err();
    assert_eq!(code(&err), 3602, "{err}");
    assert!(matches!(&err, HostError::Refused { component, .. } if *component == id.to_string()));
    assert_eq!(logged_by(&home, id, ResponseCode::STORAGE_FAILED), 1);
    assert_eq!(std::fs::read(&state).unwrap(), before, "the sealed state on disk is unchanged");
    assert_eq!(home.recorded_version(id).unwrap(), version);
    s.lock();
    // Nothing of the refused command reached the disk: enabled again from it, the box has no
    // process of USPS, and takes one.
    std::fs::remove_dir_all(&blocker).unwrap();
    let mut s = Session::new(&home).unwrap();
    s.enable(m, &home.media_dir()).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    postkey_host::install_process(&mut s, m, id, &usps, vec![]).unwrap();
    assert_ne!(std::fs::read(&state).unwrap(), before);
}

#[test]
fn a_domain_created_in_one_manufacturing_box_reaches_the_others() {
    let (_d, home) = initialized();
    let m1 = BoxId::FIRST_MANUFACTURING;
    let mut s = Session::new(&home).unwrap();
    s.enable(m1, &home.media_dir()).unwrap();
    let m2 = postkey_host::manufacture(
        &mut s,
        m1,
        BoxType::Manufacturing,
        &home.media_dir(),
        SharePolicy::default_for(BoxType::Manufacturing),
        None,
    )
    .unwrap()
    .id;
    s.lock();
    // Created with M00000001 alone enabled.
    let mut s = Session::new(&home).unwrap();
    s.enable(m1, &home.media_dir()).unwrap();
    postkey_host::create_domain(
        &mut s,
        m1,
        DomainId::parse("UKRM").unwrap(),
        DomainKind::Postal,
        vec![SubdomainId::parse("UKRM/GB").unwrap()],
    )
    .unwrap();
    s.lock();
    // M00000002 adopts it when next enabled, and can then make UKRM processes.
    let mut s = Session::new(&home).unwrap();
    s.enable(m2, &home.media_dir()).unwrap();
    let oak = postkey_host::manufacture(
        &mut s,
        m2,
        BoxType::Oak,
        &home.media_dir(),
        SharePolicy::default_for(BoxType::Oak),
        None,
    )
    .unwrap()
    .id;
    postkey_host::install_process(&mut s, m2, oak, &DomainId::parse("UKRM").unwrap(), vec![])
        .unwrap();
}
