//! The runtime: sealed state at rest, enabling from shares, and every way enabling must fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cert, cmd, first, manufacture, rng, usps};
use postkey_box::runtime::{BoxStore, RuntimeError};
use postkey_box::{BoxError, SecureBox};
use postkey_durable::write_atomic;
use postkey_secrets::rng::testing::SeededSource;
use postkey_secrets::shares::ShareError;
use postkey_secrets::{OperationCombination, SecretError};
use postkey_wire::command::{AttestState, Deliver, InstallCertificate, InstallProcess};
use postkey_wire::{BoxId, BoxType, DomainId, Nonce, ResponseCode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn os(seed: u64) -> SeededSource<ChaCha20Rng> {
    SeededSource(ChaCha20Rng::seed_from_u64(seed))
}

struct World {
    _dir: tempfile::TempDir,
    store: BoxStore,
    oak_cert: postkey_wire::Verified<postkey_wire::Certificate>,
    oak_id: postkey_wire::BoxId,
    oak_shares: Vec<Vec<u8>>,
    other_shares: Vec<Vec<u8>>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = BoxStore::new(dir.path().join("boxes"));
    let mut f = first();
    let m = &mut f.secure_box;
    let bundle = usps(m);
    let mut oak = manufacture(m, BoxType::Oak, 90);
    let d =
        cmd(m, Deliver { bundle, recipient: cert(&oak.secure_box), subdomains: vec![] }).unwrap();
    cmd(&mut oak.secure_box, InstallProcess { delivery: d.delivery }).unwrap();
    store.persist(&mut oak.secure_box).unwrap();
    let steel = manufacture(m, BoxType::Steel, 91);
    World {
        oak_cert: oak.secure_box.certificate().unwrap().clone(),
        oak_id: oak.secure_box.id(),
        oak_shares: oak.shares.iter().map(|s| s.as_bytes().to_vec()).collect(),
        other_shares: steel.shares.iter().map(|s| s.as_bytes().to_vec()).collect(),
        store,
        _dir: dir,
    }
}

#[test]
fn a_box_is_enabled_from_its_shares_and_keeps_its_processes() {
    let w = world();
    let enabled = w.store.enable(&w.oak_cert, &w.oak_shares, os(1), b"enable 1").unwrap();
    assert_eq!(enabled.secure_box.id(), w.oak_id);
    assert_eq!(enabled.secure_box.domains(), vec![DomainId::parse("USPS").unwrap()]);
    assert_eq!(enabled.presented.len(), 2);
    assert_eq!(w.store.list().unwrap(), vec![w.oak_id]);
}

#[test]
fn enabling_with_too_few_foreign_corrupted_or_duplicated_shares_is_refused() {
    let w = world();
    let share = |e: &RuntimeError| match e {
        RuntimeError::Refused(BoxError::Secret(SecretError::Share(s))) => s.clone(),
        other => panic!("{other:?}"),
    };
    // k − 1 shares.
    let err = w.store.enable(&w.oak_cert, &w.oak_shares[..1], os(2), b"x").unwrap_err();
    assert_eq!(share(&err), ShareError::QuorumNotMet { have: 1, need: 2 });
    assert_eq!(err.response_code(), ResponseCode::SHARE_QUORUM_NOT_MET);
    // A share of another box.
    let mixed = vec![w.oak_shares[0].clone(), w.other_shares[1].clone()];
    let err = w.store.enable(&w.oak_cert, &mixed, os(3), b"x").unwrap_err();
    assert!(matches!(share(&err), ShareError::Invalid(_)), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::SHARE_INVALID);
    // A corrupted share: any one byte flipped.
    for i in 0..w.oak_shares[1].len() {
        let mut bad = w.oak_shares[1].clone();
        bad[i] ^= 1;
        let err =
            w.store.enable(&w.oak_cert, &[w.oak_shares[0].clone(), bad], os(4), b"x").unwrap_err();
        assert!(matches!(share(&err), ShareError::Invalid(_)), "byte {i}: {err:?}");
        assert_eq!(err.response_code(), ResponseCode::SHARE_INVALID, "byte {i}");
    }
    // A duplicated share.
    let dup = vec![w.oak_shares[0].clone(), w.oak_shares[0].clone()];
    let err = w.store.enable(&w.oak_cert, &dup, os(5), b"x").unwrap_err();
    assert!(matches!(share(&err), ShareError::Duplicate { .. }), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::SHARE_SET_MISMATCH);
}

#[test]
fn a_sealed_state_altered_by_one_bit_or_truncated_does_not_open() {
    let w = world();
    let path = w.store_path();
    let good = std::fs::read(&path).unwrap();
    // The header: "PKBOX\x02", the box ID (9 ASCII bytes), the version (8 bytes).
    let id_bytes = 6..15;
    let header_len = 6 + 9 + 8;
    let flipped = |i: usize| {
        let mut bad = good.clone();
        bad[i] ^= 1;
        bad
    };
    // Every byte of the header, and a few of the sealed image, through the whole enabling path.
    for i in (0..header_len).chain([header_len, good.len() / 2, good.len() - 1]) {
        let bad = flipped(i);
        std::fs::write(&path, &bad).unwrap();
        let err = w.store.enable(&w.oak_cert, &w.oak_shares, os(6), b"x").unwrap_err();
        // A box ID changed into another valid one names another box's state; anything else
        // does not open.
        let relabelled = id_bytes.contains(&i)
            && std::str::from_utf8(&bad[id_bytes.clone()]).is_ok_and(|s| BoxId::parse(s).is_ok());
        let want = if relabelled {
            ResponseCode::RECORD_NOT_FOR_THIS_BOX
        } else {
            ResponseCode::SEALED_STATE_INVALID
        };
        assert_eq!(err.response_code(), want, "byte {i}: {err:?}");
    }
    // Every byte of the sealed image, read from the store and opened with the right operation
    // combination (enabling runs the power-up self-tests first, too slow to repeat per byte).
    let identity = w.oak_cert.body().identity;
    let checked: Vec<_> = w
        .oak_shares
        .iter()
        .map(|f| postkey_secrets::shares::check_share(f, &identity, w.oak_id).unwrap())
        .collect();
    let combination: OperationCombination = postkey_secrets::shares::combine(&checked).unwrap();
    let open = |seed: u64| {
        let sealed = w.store.read_state(w.oak_id)?;
        let copy = OperationCombination::from_bytes(*combination.expose_secret());
        Ok::<_, RuntimeError>(SecureBox::unseal(&sealed, copy, os(seed), b"x")?)
    };
    for i in header_len..good.len() {
        std::fs::write(&path, flipped(i)).unwrap();
        let err = open(16).unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::SEALED_STATE_INVALID, "byte {i}: {err:?}");
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(open(17).unwrap().id(), w.oak_id);
    for len in [0, 10, 23, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        let err = w.store.enable(&w.oak_cert, &w.oak_shares, os(7), b"x").unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::SEALED_STATE_INVALID, "len {len}");
    }
    std::fs::write(&path, &good).unwrap();
    assert!(w.store.enable(&w.oak_cert, &w.oak_shares, os(8), b"x").is_ok());
}

impl World {
    fn store_path(&self) -> std::path::PathBuf {
        self._dir.path().join("boxes").join(format!("{}.state", self.oak_id))
    }
}

#[test]
fn an_older_state_put_back_attests_an_older_version() {
    let w = world();
    let path = w.store_path();
    let old = std::fs::read(&path).unwrap();
    let mut enabled = w.store.enable(&w.oak_cert, &w.oak_shares, os(9), b"e").unwrap();
    let before = enabled.secure_box.version();
    force_change(&mut enabled.secure_box);
    assert!(w.store.commit(&mut enabled.secure_box).unwrap());
    assert!(!w.store.commit(&mut enabled.secure_box).unwrap(), "nothing changed since");
    let highest = enabled.secure_box.version();
    assert!(highest > before);
    drop(enabled);
    // The old copy is put back: it opens (it is genuine), but its signed attestation shows the
    // older version, which the KMC compares with the highest it recorded.
    std::fs::write(&path, &old).unwrap();
    let mut restored = w.store.enable(&w.oak_cert, &w.oak_shares, os(10), b"e2").unwrap();
    let att = cmd(&mut restored.secure_box, AttestState { nonce: Nonce([7; 32]) }).unwrap();
    let att = att.verify(&restored.secure_box.identity_key()).unwrap();
    assert_eq!(att.body().version, before);
    assert!(att.body().version < highest);
    assert_eq!(att.body().nonce, Nonce([7; 32]));
}

fn force_change(b: &mut SecureBox) {
    // Re-installing the certificate is a durable change every box accepts.
    let certificate = cert(b);
    cmd(b, InstallCertificate { certificate }).unwrap();
}

#[test]
fn a_failed_write_is_a_storage_error_and_leaves_the_box_to_be_committed_again() {
    let w = world();
    let mut enabled = w.store.enable(&w.oak_cert, &w.oak_shares, os(13), b"e").unwrap();
    force_change(&mut enabled.secure_box);
    // A store whose directory is a file: nothing can be written there.
    let blocked = w._dir.path().join("blocked");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let err = BoxStore::new(&blocked).commit(&mut enabled.secure_box).unwrap_err();
    assert!(matches!(err, RuntimeError::Storage(_)), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::STORAGE_FAILED);
    assert!(enabled.secure_box.is_dirty(), "the change is still to be written");
    // The next commit writes it, and the state opens at the new version.
    let version = enabled.secure_box.version();
    assert!(w.store.commit(&mut enabled.secure_box).unwrap());
    assert!(!enabled.secure_box.is_dirty());
    drop(enabled);
    let again = w.store.enable(&w.oak_cert, &w.oak_shares, os(14), b"e2").unwrap();
    assert_eq!(again.secure_box.version(), version);
    // A box the store does not hold is a storage error too (its state file is missing).
    let elsewhere = BoxStore::new(w._dir.path().join("empty"));
    let err = elsewhere.enable(&w.oak_cert, &w.oak_shares, os(15), b"x").unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::STORAGE_FAILED, "{err:?}");
}

#[test]
fn the_wrong_operation_combination_does_not_open_a_state() {
    let w = world();
    let sealed = w.store.read_state(w.oak_id).unwrap();
    let wrong = OperationCombination::generate(&mut rng(11)).unwrap();
    let err = SecureBox::unseal(&sealed, wrong, os(12), b"x").unwrap_err();
    assert_eq!(err.response_code(), ResponseCode::SEALED_STATE_INVALID);
}

#[test]
fn atomic_writes_replace_whole_files_with_the_given_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub").join("f");
    write_atomic(&p, b"one", 0o600).unwrap();
    write_atomic(&p, b"two", 0o600).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
        1,
        "no temporary file left"
    );
}
