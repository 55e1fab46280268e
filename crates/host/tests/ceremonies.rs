//! The hosted ceremonies against a real home directory: refusals reach the error log with their
//! response codes, and the state-version check refuses a restored old state.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_host::{Home, HostError, Session, SharePolicy};
use postkey_wire::{BoxId, BoxType, DomainId, DomainKind, ResponseCode, SubdomainId};

fn code(e: &HostError) -> u16 {
    e.response_code().unwrap().0
}

fn logged(home: &Home, code: ResponseCode) -> bool {
    home.spooled_errors().unwrap().iter().any(|e| e.code == code.0)
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
    BoxId::parse(&r.id).unwrap()
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
    let state = dir.path().join("boxes").join(format!("{id}.state"));
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
    let err = s.run(id, |b| b.self_test()).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_LOCKED.0);
}

#[test]
fn a_locked_box_is_refused_and_logged() {
    let (_d, home) = initialized();
    let id = oak(&home);
    let s = Session::new(&home).unwrap();
    let err = s.run(id, |b| b.self_test()).unwrap_err();
    assert_eq!(code(&err), ResponseCode::BOX_LOCKED.0);
    assert!(logged(&home, ResponseCode::BOX_LOCKED));
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
    let (_d, home) = initialized();
    let id = oak(&home);
    let before = home.recorded_version(id).unwrap();
    let mut s = Session::new(&home).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    // An Oak box is not a manufacturing box.
    let err = s.run(id, |b| b.manufacturing().map(|_| ())).unwrap_err();
    assert_eq!(code(&err), ResponseCode::WRONG_BOX_TYPE.0);
    assert!(logged(&home, ResponseCode::WRONG_BOX_TYPE));
    assert_eq!(home.recorded_version(id).unwrap(), before);
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
    let types: Vec<&str> = report.boxes.iter().map(|b| b.box_type.as_str()).collect();
    for t in ["manufacturing", "oak", "steel", "brass", "tin"] {
        assert!(types.contains(&t), "{types:?}");
    }
    let brass = report.boxes.iter().find(|b| b.box_type == "brass").unwrap();
    assert_eq!(brass.domains, vec!["ADMIN", "EARTH", "USPS", "VE"]);
    let tin = report.boxes.iter().find(|b| b.box_type == "tin").unwrap();
    assert_eq!(tin.domains, vec!["USPS"], "Tin verifies postal tokens only");
    assert_eq!(report.errors, 0);
    let domains: Vec<&str> = report.domains.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(domains, vec!["ADMIN", "EARTH", "USPS", "VE"]);
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
    let state = dir.path().join("boxes").join(format!("{id}.state"));
    let before = std::fs::read(&state).unwrap();
    let version = home.recorded_version(id).unwrap();
    let cert = home.store().read_certificate(id, &home.anchors().unwrap()).unwrap();
    let mut s = Session::new(&home).unwrap();
    s.enable(id, &home.media_dir()).unwrap();
    // A change made, then a refusal: the sealed state on disk and the recorded version stay.
    let err = s
        .run(id, |b| {
            b.install_certificate(cert.as_bytes())?;
            Err::<(), _>(postkey_box::BoxError::NonceMismatch)
        })
        .unwrap_err();
    assert_eq!(code(&err), ResponseCode::NONCE_MISMATCH.0);
    assert_eq!(std::fs::read(&state).unwrap(), before);
    assert_eq!(home.recorded_version(id).unwrap(), version);
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
    .unwrap();
    let m2 = BoxId::parse(&m2.id).unwrap();
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
    .unwrap();
    let oak = BoxId::parse(&oak.id).unwrap();
    postkey_host::install_process(&mut s, m2, oak, &DomainId::parse("UKRM").unwrap(), vec![])
        .unwrap();
}
