//! The runtime: sealed state at rest, enabling from shares, and every way enabling must fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{first, manufacture, now, rng, usps};
use postkey_box::runtime::{BoxStore, write_atomic};
use postkey_box::{BoxError, SecureBox};
use postkey_secrets::rng::testing::SeededSource;
use postkey_secrets::shares::ShareError;
use postkey_secrets::{OperationCombination, SecretError};
use postkey_wire::{BoxType, Nonce, ResponseCode};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn os(seed: u64) -> SeededSource<ChaCha20Rng> {
    SeededSource(ChaCha20Rng::seed_from_u64(seed))
}

struct World {
    _dir: tempfile::TempDir,
    store: BoxStore,
    anchors: postkey_wire::TrustAnchors,
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
    let d = m
        .manufacturing()
        .unwrap()
        .deliver(bundle.as_bytes(), oak.secure_box.certificate().unwrap().as_bytes(), vec![], now())
        .unwrap();
    oak.secure_box.install_process(d.delivery.as_bytes()).unwrap();
    store.persist(&mut oak.secure_box).unwrap();
    let steel = manufacture(m, BoxType::Steel, 91);
    World {
        anchors: m.anchors().clone(),
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
    let enabled = w.store.enable(w.oak_id, &w.anchors, &w.oak_shares, os(1), b"enable 1").unwrap();
    assert_eq!(enabled.secure_box.id(), w.oak_id);
    assert_eq!(enabled.secure_box.domains().map(|d| d.as_str()).collect::<Vec<_>>(), vec!["USPS"]);
    assert_eq!(enabled.presented.len(), 2);
    assert_eq!(w.store.list().unwrap(), vec![w.oak_id]);
}

#[test]
fn enabling_with_too_few_foreign_corrupted_or_duplicated_shares_is_refused() {
    let w = world();
    let share = |e: BoxError| match e {
        BoxError::Secret(SecretError::Share(s)) => s,
        other => panic!("{other:?}"),
    };
    // k − 1 shares.
    let err = w.store.enable(w.oak_id, &w.anchors, &w.oak_shares[..1], os(2), b"x").unwrap_err();
    assert_eq!(share(err.clone()), ShareError::QuorumNotMet { have: 1, need: 2 });
    assert_eq!(err.response_code(), ResponseCode::SHARE_QUORUM_NOT_MET);
    // A share of another box.
    let mixed = vec![w.oak_shares[0].clone(), w.other_shares[1].clone()];
    let err = w.store.enable(w.oak_id, &w.anchors, &mixed, os(3), b"x").unwrap_err();
    assert!(matches!(share(err.clone()), ShareError::Invalid(_)), "{err:?}");
    assert_eq!(err.response_code(), ResponseCode::SHARE_INVALID);
    // A corrupted share.
    let mut bad = w.oak_shares[1].clone();
    bad[40] ^= 1;
    let err = w
        .store
        .enable(w.oak_id, &w.anchors, &[w.oak_shares[0].clone(), bad], os(4), b"x")
        .unwrap_err();
    assert!(matches!(share(err), ShareError::Invalid(_)));
    // A duplicated share.
    let dup = vec![w.oak_shares[0].clone(), w.oak_shares[0].clone()];
    let err = w.store.enable(w.oak_id, &w.anchors, &dup, os(5), b"x").unwrap_err();
    assert!(matches!(share(err), ShareError::Duplicate { .. }));
}

#[test]
fn a_sealed_state_altered_by_one_bit_or_truncated_does_not_open() {
    let w = world();
    let path = w.store_path();
    let good = std::fs::read(&path).unwrap();
    for bit in [0usize, 50, 6 * 8 + 3, 20 * 8, good.len() * 8 / 2, good.len() * 8 - 1] {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &bad).unwrap();
        let err = w.store.enable(w.oak_id, &w.anchors, &w.oak_shares, os(6), b"x").unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::SEALED_STATE_INVALID, "bit {bit}: {err:?}");
    }
    for len in [0, 10, 23, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        let err = w.store.enable(w.oak_id, &w.anchors, &w.oak_shares, os(7), b"x").unwrap_err();
        assert_eq!(err.response_code(), ResponseCode::SEALED_STATE_INVALID, "len {len}");
    }
    std::fs::write(&path, &good).unwrap();
    assert!(w.store.enable(w.oak_id, &w.anchors, &w.oak_shares, os(8), b"x").is_ok());
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
    let mut enabled = w.store.enable(w.oak_id, &w.anchors, &w.oak_shares, os(9), b"e").unwrap();
    let before = enabled.secure_box.version();
    force_change(&mut enabled.secure_box);
    w.store.commit(&mut enabled.secure_box).unwrap();
    let highest = enabled.secure_box.version();
    assert!(highest > before);
    drop(enabled);
    // The old copy is put back: it opens (it is genuine), but its signed attestation shows the
    // older version, which the KMC compares with the highest it recorded.
    std::fs::write(&path, &old).unwrap();
    let mut restored = w.store.enable(w.oak_id, &w.anchors, &w.oak_shares, os(10), b"e2").unwrap();
    let att = restored.secure_box.attest(Nonce([7; 32]), now()).unwrap();
    assert_eq!(att.body().version, before);
    assert!(att.body().version < highest);
    assert_eq!(att.body().nonce, Nonce([7; 32]));
}

fn force_change(b: &mut SecureBox) {
    // Re-installing the certificate is a durable change every box accepts.
    let cert = b.certificate().unwrap().as_bytes().to_vec();
    b.install_certificate(&cert).unwrap();
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
