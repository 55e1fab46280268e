//! Shares of protocol §7.1: every k-subset of n recombines, k − 1 never does, and every malformed,
//! foreign, forged or mixed presentation is refused with its own error.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_crypto::Signer as _;
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_secrets::shares::{self, ShareBody, ShareError, SplitSpec, check_share, combine};
use postkey_secrets::{DomainKeySetSeed, OperationCombination, SigningKey};
use postkey_wire::{BoxId, BoxType, ShareSetId, Timestamp, Verified};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> BoxRng {
    BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(seed)), b"shares test").unwrap()
}

fn oak() -> BoxId {
    BoxId::new(BoxType::Oak, 3).unwrap()
}

fn spec(k: u8, n: u8, set: u8) -> SplitSpec {
    SplitSpec {
        set: ShareSetId([set; 16]),
        owner: oak(),
        issuer: oak(),
        threshold: k,
        count: n,
        timestamp: Timestamp::from_unix_micros(1_795_977_434_000_000),
    }
}

struct Setup {
    secret: OperationCombination,
    issuer: SigningKey,
    shares: Vec<Verified<ShareBody>>,
}

fn setup(k: u8, n: u8, seed: u64) -> Setup {
    let mut rng = rng(seed);
    let secret = OperationCombination::generate(&mut rng).unwrap();
    let issuer = SigningKey::generate(&mut rng).unwrap();
    let shares = shares::split(&secret, &spec(k, n, 1), &issuer, &mut rng).unwrap();
    Setup { secret, issuer, shares }
}

/// The shares of `s` at the given positions, re-read from their files and checked alone.
fn pick(s: &Setup, positions: &[usize]) -> Vec<Verified<ShareBody>> {
    positions
        .iter()
        .map(|&i| check_share(s.shares[i].as_bytes(), &s.issuer.verifying_key(), oak()).unwrap())
        .collect()
}

fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_k_subset_recombines_and_no_k_minus_1_subset_does(n in 2u8..=10, k_off in 0u8..9, seed in any::<u64>()) {
        let k = 2 + k_off % (n - 1);
        let s = setup(k, n, seed);
        for subset in subsets(n.into(), k.into()) {
            let got: OperationCombination = combine(&pick(&s, &subset)).unwrap();
            prop_assert!(got == s.secret, "subset {subset:?} of {k}-of-{n}");
        }
        for subset in subsets(n.into(), usize::from(k) - 1) {
            let err = combine::<OperationCombination>(&pick(&s, &subset)).map(|_| ()).unwrap_err();
            let want_have = usize::from(k) - 1;
            prop_assert!(
                matches!(err, ShareError::QuorumNotMet { have, need } if have == want_have && need == k),
                "k-1 subset {subset:?} gave {err:?}"
            );
        }
    }
}

#[test]
fn a_share_is_checked_alone_against_its_issuer_and_owner() {
    let s = setup(2, 3, 1);
    let file = s.shares[0].as_bytes();
    assert!(check_share(file, &s.issuer.verifying_key(), oak()).is_ok());
    // Another owner.
    let other = BoxId::new(BoxType::Steel, 1).unwrap();
    assert_eq!(
        check_share(file, &s.issuer.verifying_key(), other).unwrap_err(),
        ShareError::Invalid("share belongs to another box")
    );
    // Another issuer's key: the signature does not verify.
    let stranger = SigningKey::from_bytes([9u8; 32]);
    assert!(matches!(
        check_share(file, &stranger.verifying_key(), oak()),
        Err(ShareError::Invalid(_))
    ));
    // Any flipped bit anywhere in the file.
    for pos in 0..file.len() * 8 {
        let mut bad = file.to_vec();
        bad[pos / 8] ^= 1 << (pos % 8);
        assert!(check_share(&bad, &s.issuer.verifying_key(), oak()).is_err(), "bit {pos} accepted");
    }
    // Truncated, and with a trailing byte.
    assert!(check_share(&file[..file.len() - 1], &s.issuer.verifying_key(), oak()).is_err());
    assert!(check_share(&[file, &[0]].concat(), &s.issuer.verifying_key(), oak()).is_err());
}

#[test]
fn an_unsigned_share_is_refused() {
    let s = setup(2, 3, 2);
    // The same envelope with an all-zero signature.
    let mut file = s.shares[0].as_bytes().to_vec();
    let len = file.len();
    file[len - 64..].fill(0);
    assert!(matches!(
        check_share(&file, &s.issuer.verifying_key(), oak()),
        Err(ShareError::Invalid(_))
    ));
}

#[test]
fn duplicated_shares_are_refused_not_counted_twice() {
    let s = setup(2, 3, 3);
    let err = combine::<OperationCombination>(&pick(&s, &[1, 1])).map(|_| ()).unwrap_err();
    assert_eq!(err, ShareError::Duplicate { index: s.shares[1].body().index });
}

#[test]
fn shares_of_two_sets_are_refused() {
    let a = setup(2, 3, 4);
    let mut rng = rng(5);
    // A second splitting of the same secret by the same issuer: another set.
    let b = shares::split(&a.secret, &spec(2, 3, 2), &a.issuer, &mut rng).unwrap();
    let b1 = check_share(b[1].as_bytes(), &a.issuer.verifying_key(), oak()).unwrap();
    let mixed = vec![pick(&a, &[0]).remove(0), b1];
    assert_eq!(
        combine::<OperationCombination>(&mixed).map(|_| ()).unwrap_err(),
        ShareError::SetMismatch
    );
}

#[test]
fn shares_of_another_purpose_are_refused() {
    let s = setup(2, 3, 6);
    let err = combine::<DomainKeySetSeed>(&pick(&s, &[0, 1])).map(|_| ()).unwrap_err();
    assert_eq!(err, ShareError::SetMismatch);
}

#[test]
fn a_result_that_fails_the_check_value_is_refused() {
    // An issuer that signs shares whose check value does not match the secret (a confused or
    // compromised issuer): the signature is fine, the check value catches it.
    let mut rng = rng(7);
    let issuer = SigningKey::generate(&mut rng).unwrap();
    let secret = OperationCombination::generate(&mut rng).unwrap();
    let good = shares::split(&secret, &spec(2, 2, 3), &issuer, &mut rng).unwrap();
    let forged: Vec<_> = good
        .iter()
        .map(|v| {
            let m = v.message();
            let mut body = shares::ShareBody {
                set: m.body().set,
                owner: m.body().owner,
                purpose: m.body().purpose,
                index: m.body().index,
                threshold: m.body().threshold,
                count: m.body().count,
                check: m.body().check,
                share: shares::ShareValue::from_bytes(*m.body().share.expose_secret()),
            };
            body.check[0] ^= 1;
            let context = postkey_wire::Context {
                domain: m.header().domain.clone(),
                sender: m.header().sender.clone(),
                meter_id: None,
                key_id: None,
                state_version: None,
                timestamp: m.header().timestamp,
            };
            postkey_wire::sign(postkey_wire::Message::new(context, body), &issuer)
        })
        .collect();
    let err = combine::<OperationCombination>(&forged).map(|_| ()).unwrap_err();
    assert_eq!(err, ShareError::CheckFailed);
    assert_eq!(err.response_code(), postkey_wire::ResponseCode::SHARE_CHECK_FAILED);
}

#[test]
fn bad_parameters_are_refused() {
    let mut rng = rng(8);
    let secret = OperationCombination::generate(&mut rng).unwrap();
    let issuer = SigningKey::generate(&mut rng).unwrap();
    for (k, n) in [(1, 3), (4, 3), (2, 17), (0, 0)] {
        assert!(shares::split(&secret, &spec(k, n, 1), &issuer, &mut rng).is_err(), "{k}-of-{n}");
    }
}
