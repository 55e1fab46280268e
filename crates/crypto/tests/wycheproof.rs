//! Wycheproof known-answer tests of Ed25519 verification, run through our own wrapper: the
//! public key through [`VerifyingKey::from_bytes`], the signature through the CBOR decoder of
//! [`Signature`] (the path every signed envelope takes), then [`VerifyingKey::verify`].
//!
//! Every "valid" case must verify and every "invalid" case must fail. The file has no
//! "acceptable" cases today; if one appears, how our wrapper judged it is printed, not asserted.
//! The signing half (our `SigningKey` reproducing the Wycheproof signatures) is in the secrets
//! crate's Wycheproof test, where the private key type lives.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_crypto::{Signature, VerifyingKey};
use wycheproof::TestResult;
use wycheproof::eddsa::{TestName, TestSet};

/// Fewer cases than this means filtering skipped the file: the test must not pass vacuously.
const MIN_ED25519_CASES: usize = 140;

/// `bytes` as a CBOR byte string, the encoding a signature has inside an envelope.
fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    e.bytes(bytes).expect("encoding into a Vec cannot fail");
    e.into_writer()
}

/// Our verdict on one case: decoding the key, decoding the signature, then strict verification.
/// Also returns the lenient verdict, to show which cases the strict rules alone reject.
fn verdicts(pk: &[u8], msg: &[u8], sig: &[u8]) -> (bool, bool) {
    let Ok(pk) = <[u8; 32]>::try_from(pk) else { return (false, false) };
    let Ok(key) = VerifyingKey::from_bytes(&pk) else { return (false, false) };
    let decoded = minicbor::decode::<Signature>(&cbor_bytes(sig));
    // Our decoder must take exactly the 64-byte encodings, whatever their content.
    assert_eq!(decoded.is_ok(), sig.len() == 64, "signature decoder on {} bytes", sig.len());
    let Ok(sig) = decoded else { return (false, false) };
    (key.verify(msg, &sig).is_ok(), key.verify_lenient_for_tests(msg, &sig))
}

#[test]
fn ed25519_verification_matches_wycheproof() {
    let set = TestSet::load(TestName::Ed25519).expect("the Ed25519 vectors load");
    let mut run = 0usize;
    let mut mismatches = Vec::new();
    let mut acceptable = Vec::new();
    let mut strict_only = Vec::new();
    let (mut valid, mut invalid) = (0usize, 0usize);

    for group in &set.test_groups {
        for tc in &group.tests {
            run += 1;
            let (ours, lenient) = verdicts(&group.key.pk, &tc.msg, &tc.sig);
            if ours != lenient {
                strict_only.push(format!("{} ({:?}, lenient {lenient})", tc.tc_id, tc.result));
            }
            match tc.result {
                TestResult::Valid => {
                    valid += 1;
                    if !ours {
                        mismatches.push(format!(
                            "tcId {} valid but rejected ({}; flags {:?})",
                            tc.tc_id, tc.comment, tc.flags
                        ));
                    }
                }
                TestResult::Invalid => {
                    invalid += 1;
                    if ours {
                        mismatches.push(format!(
                            "tcId {} invalid but accepted ({}; flags {:?})",
                            tc.tc_id, tc.comment, tc.flags
                        ));
                    }
                }
                TestResult::Acceptable => acceptable.push(format!(
                    "{} {}",
                    tc.tc_id,
                    if ours { "accepted" } else { "rejected" }
                )),
            }
        }
    }

    println!(
        "Wycheproof Ed25519 verify: {run} cases run, {} mismatches (0 skipped)",
        mismatches.len()
    );
    println!(
        "  {valid} valid and {invalid} invalid cases; acceptable: {}",
        if acceptable.is_empty() { "none in the file".to_string() } else { acceptable.join(", ") }
    );
    println!(
        "  rejected only by the strict rules (lenient verification accepts): {}",
        if strict_only.is_empty() { "none".to_string() } else { strict_only.join(", ") }
    );
    assert!(mismatches.is_empty(), "Ed25519 mismatches:\n{}", mismatches.join("\n"));
    assert!(run >= MIN_ED25519_CASES, "only {run} Ed25519 cases ran");
    assert!(valid > 0 && invalid > 0, "both verdicts must be exercised");
}
