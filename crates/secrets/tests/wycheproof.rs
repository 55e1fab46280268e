//! Wycheproof known-answer tests of every symmetric primitive and private-key operation postkey
//! uses, run through our own wrappers (never the RustCrypto crates directly): AES-256-CMAC
//! (`TokenKey`), HKDF-SHA256 (`kdf`), HMAC-SHA256 (`SubdomainAuthKey`), X25519
//! (`HpkePrivateKey`), AES-256-GCM-SIV (`StateSealingKey`), AES-256-KWP (`SubdomainConfKey`) and
//! Ed25519 signing (`SigningKey`).
//!
//! Each test prints one line per primitive, `Wycheproof NAME: N cases run, M mismatches (...)`
//! (visible with `--nocapture`), fails on any mismatch, and fails if fewer cases ran than a floor,
//! so that a filter can never skip a whole file and pass.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_crypto::{Signer as _, VerifyingKey};
use postkey_secrets::{
    HpkePrivateKey, MasterKey, SigningKey, StateSealingKey, SubdomainAuthKey, SubdomainConfKey,
    TokenKey, WRAPPED_KEY_LEN, kdf,
};
use wycheproof::TestResult;

/// What one primitive's run found.
struct Report {
    name: &'static str,
    run: usize,
    mismatches: Vec<String>,
    /// Skipped cases by reason, in first-seen order.
    skipped: Vec<(&'static str, usize)>,
    notes: Vec<String>,
}

impl Report {
    fn new(name: &'static str) -> Self {
        Self { name, run: 0, mismatches: Vec::new(), skipped: Vec::new(), notes: Vec::new() }
    }

    fn skip(&mut self, reason: &'static str, n: usize) {
        match self.skipped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += n,
            None => self.skipped.push((reason, n)),
        }
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.mismatches.push(what());
        }
    }

    /// Prints the count line and the notes, then asserts no mismatch and at least `min_run`
    /// cases run.
    fn finish(self, min_run: usize) {
        let total_skipped: usize = self.skipped.iter().map(|(_, n)| n).sum();
        let skipped = match self.skipped.as_slice() {
            [] => "0 skipped".to_string(),
            [(reason, n)] => format!("{n} skipped: {reason}"),
            many => {
                let reasons: Vec<String> = many.iter().map(|(r, n)| format!("{n} {r}")).collect();
                format!("{total_skipped} skipped: {}", reasons.join("; "))
            }
        };
        println!(
            "Wycheproof {}: {} cases run, {} mismatches ({skipped})",
            self.name,
            self.run,
            self.mismatches.len()
        );
        for note in &self.notes {
            println!("  {note}");
        }
        assert!(
            self.mismatches.is_empty(),
            "{} mismatches:\n{}",
            self.name,
            self.mismatches.join("\n")
        );
        assert!(
            self.run >= min_run,
            "{}: only {} cases ran (at least {min_run} expected)",
            self.name,
            self.run
        );
    }
}

fn key32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("a 32-byte key")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn aes_256_cmac_matches_wycheproof() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::AesCmac).expect("the AES-CMAC vectors load");
    let mut r = Report::new("AES-CMAC");
    for group in &set.test_groups {
        if group.key_size != 256 {
            r.skip("key size not used", group.tests.len());
            continue;
        }
        let tag_len = group.tag_size / 8;
        for tc in &group.tests {
            r.run += 1;
            let key = TokenKey::from_bytes(key32(&tc.key));
            let full = key.cmac(&tc.msg);
            let equal = full.get(..tag_len) == Some(tc.tag.as_slice());
            r.check(equal == (tc.result == TestResult::Valid), || {
                format!("tcId {} ({:?}, {}): tag equal = {equal}", tc.tc_id, tc.result, tc.comment)
            });
            // Brass's side-by-side CMACs (`TokenMac::tokens_over`): the vector's message beside
            // shorter ones, each token the first 8 bytes of the `cmac` crate's tag.
            let half = &tc.msg[..tc.msg.len() / 2];
            let messages: [&[u8]; 4] = [&tc.msg, half, b"", &tc.msg];
            let mut tokens = Vec::new();
            key.prepare().tokens_over(&messages, &mut tokens);
            let same = messages.iter().zip(&tokens).all(|(m, t)| *t == key.token_over(m))
                && tokens[0].to_bytes()[..] == full[..8];
            r.check(same, || format!("tcId {}: side-by-side tokens differ", tc.tc_id));
        }
    }
    r.finish(100);
}

#[test]
fn hkdf_sha256_matches_wycheproof() {
    use wycheproof::hkdf::{TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha256).expect("the HKDF-SHA256 vectors load");
    let mut r = Report::new("HKDF-SHA256");
    let mut refused = 0usize;
    for group in &set.test_groups {
        for tc in &group.tests {
            r.run += 1;
            let out = kdf::hkdf_sha256(&tc.ikm, &tc.salt, &tc.info, tc.size);
            match tc.result {
                TestResult::Valid => r.check(
                    out.as_ref().is_ok_and(|okm| okm.expose_secret() == tc.okm.as_slice()),
                    || format!("tcId {} valid ({}): wrong or no output", tc.tc_id, tc.comment),
                ),
                TestResult::Invalid => {
                    refused += usize::from(out.is_err());
                    r.check(out.is_err(), || {
                        format!("tcId {} invalid ({}): output produced", tc.tc_id, tc.comment)
                    });
                }
                TestResult::Acceptable => r.notes.push(format!(
                    "tcId {} acceptable: {}",
                    tc.tc_id,
                    if out.is_ok() { "output produced" } else { "refused" }
                )),
            }
        }
    }
    r.notes.push(format!("{refused} invalid cases (output too long) refused with an error"));
    r.finish(80);
}

#[test]
fn hmac_sha256_matches_wycheproof() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha256).expect("the HMAC-SHA256 vectors load");
    let mut full = Report::new("HMAC-SHA256 (32-byte tags, verify)");
    let mut truncated = Report::new("HMAC-SHA256 (truncated tags, mac prefix)");
    for group in &set.test_groups {
        let r = if group.tag_size == 256 { &mut full } else { &mut truncated };
        if group.key_size != 256 {
            r.skip("key size not used", group.tests.len());
            continue;
        }
        let tag_len = group.tag_size / 8;
        for tc in &group.tests {
            r.run += 1;
            let key = SubdomainAuthKey::from_bytes(key32(&tc.key));
            let valid = tc.result == TestResult::Valid;
            if group.tag_size == 256 {
                let ok = key.verify(&tc.msg, &tc.tag).is_ok();
                r.check(ok == valid, || {
                    format!("tcId {} ({:?}, {}): verify ok = {ok}", tc.tc_id, tc.result, tc.comment)
                });
            } else {
                let equal = key.mac(&tc.msg).get(..tag_len) == Some(tc.tag.as_slice());
                r.check(equal == valid, || {
                    format!(
                        "tcId {} ({:?}, {}): prefix equal = {equal}",
                        tc.tc_id, tc.result, tc.comment
                    )
                });
            }
        }
    }
    full.notes
        .push("verify accepts only full 32-byte tags: truncated tags use the mac prefix".into());
    full.finish(75);
    truncated.finish(75);
}

#[test]
fn x25519_matches_wycheproof() {
    use wycheproof::MontgomeryCurve;
    use wycheproof::xdh::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::X25519).expect("the X25519 vectors load");
    let mut r = Report::new("X25519");
    let (mut low_order_refused, mut other_accepted, mut other_refused) = (0usize, 0usize, 0usize);
    let mut other_refused_ids = Vec::new();
    for group in &set.test_groups {
        if group.curve != MontgomeryCurve::X25519 {
            r.skip("curve not used", group.tests.len());
            continue;
        }
        for tc in &group.tests {
            let (Ok(sk), Ok(pk)) = (
                <[u8; 32]>::try_from(tc.private_key.as_slice()),
                <[u8; 32]>::try_from(tc.public_key.as_slice()),
            ) else {
                r.skip("key not 32 bytes", 1);
                continue;
            };
            r.run += 1;
            let out = HpkePrivateKey::from_bytes(sk).diffie_hellman(&pk);
            let equal =
                out.as_ref().is_ok_and(|s| s.expose_secret() == tc.shared_secret.as_slice());
            let low_order = tc
                .flags
                .iter()
                .any(|f| matches!(f, TestFlag::ZeroSharedSecret | TestFlag::LowOrderPublic));
            match tc.result {
                TestResult::Valid => r.check(equal, || {
                    format!("tcId {} valid ({}): {:?}", tc.tc_id, tc.comment, out.as_ref().err())
                }),
                TestResult::Invalid => r.check(out.is_err(), || {
                    format!("tcId {} invalid ({}): a shared secret came out", tc.tc_id, tc.comment)
                }),
                // RFC 9180 §7.1.4: an all-zero shared secret (a low-order peer key) is refused.
                TestResult::Acceptable if low_order => {
                    low_order_refused += usize::from(out.is_err());
                    r.check(out.is_err(), || {
                        format!(
                            "tcId {} low-order/zero shared secret accepted ({})",
                            tc.tc_id, tc.comment
                        )
                    });
                }
                TestResult::Acceptable => {
                    if out.is_ok() {
                        other_accepted += 1;
                        // Accepting is fine; accepting with a wrong value never is.
                        r.check(equal, || {
                            format!("tcId {} acceptable: accepted with a wrong value", tc.tc_id)
                        });
                    } else {
                        other_refused += 1;
                        other_refused_ids.push(tc.tc_id.to_string());
                    }
                }
            }
        }
    }
    r.notes.push(format!(
        "{low_order_refused} acceptable low-order / zero-shared-secret cases refused"
    ));
    r.notes.push(format!(
        "other acceptable cases (twist, non-canonical public key, ...): {other_accepted} accepted \
         with the expected value, {other_refused} refused{}",
        if other_refused_ids.is_empty() {
            String::new()
        } else {
            format!(" (tcIds {})", other_refused_ids.join(", "))
        }
    ));
    r.finish(500);
}

#[test]
fn aes_256_gcm_siv_matches_wycheproof() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcmSiv).expect("the AES-GCM-SIV vectors load");
    let mut r = Report::new("AES-GCM-SIV");
    for group in &set.test_groups {
        if group.key_size != 256 {
            r.skip("key size not used", group.tests.len());
            continue;
        }
        for tc in &group.tests {
            r.run += 1;
            let key = StateSealingKey::from_bytes(key32(&tc.key));
            let ct_and_tag = [tc.ct.as_slice(), tc.tag.as_slice()].concat();
            let opened = key.open_raw(&tc.nonce, &tc.aad, &ct_and_tag);
            match tc.result {
                TestResult::Valid => {
                    let sealed = key.seal_raw(&tc.nonce, &tc.aad, &tc.pt);
                    r.check(sealed.as_ref().is_ok_and(|s| *s == ct_and_tag), || {
                        format!("tcId {} valid ({}): seal differs", tc.tc_id, tc.comment)
                    });
                    r.check(
                        opened.as_ref().is_ok_and(|p| p.expose_secret() == tc.pt.as_slice()),
                        || {
                            format!(
                                "tcId {} valid ({}): open failed or differs",
                                tc.tc_id, tc.comment
                            )
                        },
                    );
                }
                TestResult::Invalid => r.check(opened.is_err(), || {
                    format!("tcId {} invalid ({}): opened", tc.tc_id, tc.comment)
                }),
                TestResult::Acceptable => r.notes.push(format!(
                    "tcId {} acceptable: {}",
                    tc.tc_id,
                    if opened.is_ok() { "opened" } else { "refused" }
                )),
            }
        }
    }
    r.finish(100);
}

/// The Wycheproof case where an 8-byte input unwraps, under plain KWP, to an empty key.
const KWP_EMPTY_KEY_CASE: usize = 253;

#[test]
fn aes_256_kwp_matches_wycheproof() {
    use wycheproof::keywrap::{TestName, TestSet};
    let set = TestSet::load(TestName::AesKeyWrapWithPadding).expect("the AES-KWP vectors load");
    let mut r = Report::new("AES-KWP");
    let (mut master_keys, mut refused_by_policy, mut invalid_refused) = (0usize, 0usize, 0usize);
    let mut raw_accepts_invalid = Vec::new();
    for group in &set.test_groups {
        if group.key_size != 256 {
            r.skip("key size not used", group.tests.len());
            continue;
        }
        for tc in &group.tests {
            r.run += 1;
            let kek = SubdomainConfKey::from_bytes(key32(&tc.key));
            let unwrapped = kek.unwrap(&tc.ct);
            let raw = kek.unwrap_raw(&tc.ct);
            match tc.result {
                TestResult::Valid if tc.pt.len() == MasterKey::LEN => {
                    master_keys += 1;
                    let wrapped = kek.wrap(&MasterKey::from_bytes(key32(&tc.pt)));
                    r.check(wrapped.0.as_slice() == tc.ct.as_slice(), || {
                        format!("tcId {} valid: wrap differs", tc.tc_id)
                    });
                    r.check(
                        unwrapped.as_ref().is_ok_and(|k| k.expose_secret() == tc.pt.as_slice()),
                        || format!("tcId {} valid: unwrap failed or differs", tc.tc_id),
                    );
                }
                TestResult::Valid => {
                    // A valid KWP input that is not the wrapped form of a 32-byte key: the
                    // primitive unwraps it, our master-key unwrap refuses it.
                    refused_by_policy += usize::from(unwrapped.is_err());
                    r.check(unwrapped.is_err(), || {
                        format!(
                            "tcId {} valid {}-byte key: unwrap gave a master key",
                            tc.tc_id,
                            tc.pt.len()
                        )
                    });
                    r.check(
                        raw.as_ref().is_ok_and(|k| k.expose_secret() == tc.pt.as_slice()),
                        || format!("tcId {} valid: unwrap_raw failed or differs", tc.tc_id),
                    );
                }
                TestResult::Invalid => {
                    invalid_refused += usize::from(unwrapped.is_err());
                    r.check(unwrapped.is_err(), || {
                        format!("tcId {} invalid ({}): unwrap accepted", tc.tc_id, tc.comment)
                    });
                    if let Ok(k) = &raw {
                        raw_accepts_invalid.push((tc.tc_id, k.len()));
                    }
                }
                TestResult::Acceptable => r.notes.push(format!(
                    "tcId {} acceptable: unwrap {}, unwrap_raw {}",
                    tc.tc_id,
                    if unwrapped.is_ok() { "accepted" } else { "refused" },
                    if raw.is_ok() { "accepted" } else { "refused" }
                )),
            }
        }
    }

    // The known weakness of the bare primitive, checked explicitly wherever the case sits.
    let (group, tc) = set
        .test_groups
        .iter()
        .find_map(|g| g.tests.iter().find(|t| t.tc_id == KWP_EMPTY_KEY_CASE).map(|t| (g, t)))
        .expect("the KWP empty-key case is in the file");
    assert_eq!(tc.result, TestResult::Invalid);
    let raw_253 = if group.key_size == 256 {
        let kek = SubdomainConfKey::from_bytes(key32(&tc.key));
        assert!(kek.unwrap(&tc.ct).is_err(), "tcId {KWP_EMPTY_KEY_CASE} must be refused");
        match kek.unwrap_raw(&tc.ct) {
            Ok(k) => format!("accepts it ({} bytes out)", k.len()),
            Err(_) => "refuses it".to_string(),
        }
    } else {
        // Our unwrap takes a 256-bit key only; what matters is that the length alone refuses it.
        assert_ne!(
            tc.ct.len(),
            WRAPPED_KEY_LEN,
            "tcId {KWP_EMPTY_KEY_CASE} has the wrapped length"
        );
        format!("not run (key size {})", group.key_size)
    };
    // Anything else the bare primitive lets through would be news.
    r.check(raw_accepts_invalid.iter().all(|(id, _)| *id == KWP_EMPTY_KEY_CASE), || {
        format!("unwrap_raw accepts invalid cases {raw_accepts_invalid:?}")
    });

    r.notes.push(format!(
        "{master_keys} valid 32-byte keys wrapped and unwrapped; {refused_by_policy} valid \
         cases of other key lengths refused by policy (unwrap_raw returns their key); \
         {invalid_refused} invalid cases refused"
    ));
    r.notes.push(format!(
        "tcId {KWP_EMPTY_KEY_CASE} ({}, {}-byte input): unwrap refuses it; unwrap_raw {raw_253}",
        tc.comment,
        tc.ct.len()
    ));
    r.finish(90);
}

/// Ed25519 seeds of the Wycheproof test keys, by public key. The current (v1) Wycheproof file
/// publishes only the public keys; these are the private keys the earlier release of the same
/// file (`eddsa_test.json`, 0.8) published for them. Each is checked to derive its group's
/// public key, so a wrong seed fails the test instead of skipping it.
const ED25519_SEEDS: &[(&str, &str)] = &[
    (
        "7d4d0e7f6153a69b6242b522abbee685fda4420f8834b108c3bdae369ef549fa",
        "add4bb8103785baf9ac534258e8aaf65f5f1adb5ef5f3df19bb80ab989c4d64b",
    ),
    (
        "a12c2beb77265f2aac953b5009349d94155a03ada416aad451319480e983ca4c",
        "0a23a20072891237aa0864b5765139514908787878cd77135a0059881d313f00",
    ),
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    ),
    (
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
    ),
    (
        "8fd659b77b558ed93882c1157438450ac86ec62d421d568e98ee236f3810295a",
        "d7ad3f1f6bbe0477c3c357a806a19eb41ae3f94025035bc87f281f8ee9fc0e34",
    ),
    (
        "2a606bf67ac770c607038b004101b325edb569efd3413d2d1f2c3e6b4e6e3082",
        "ad9b22793336fcdac10e136c4deea599be187a38eef91c1cf7c7a4ec884dda08",
    ),
    (
        "c9c946cbc5544ac74eef491f07c5881c16faf7ec31ce4aa91bb60ae7b4539051",
        "04a6553d68a9baef78a2175af375458eaa01cdb77350c61e282ef5f0c7116599",
    ),
    (
        "32ad026f693d0d2afe7f4388d91c4c964426fcb9e3665c3ebd8650009b815c8e",
        "c367c8d2ebeeecd70c1e8985b70c3808b75657f243b21ba4f322792540e92257",
    ),
    (
        "c29ec1894e06d27b4e40486b4fa5063d66a746c7f9c323b12203c03b72b8b78a",
        "56c1e22d616cbb6dea869288b4b1c02bb98696583c2f6e650013a03e17049c62",
    ),
    (
        "cfda5b899e35764c5229e59295fe1222b7ddce176643697c29e46ecbba10cf10",
        "b7d2f64276df417fed27d8e15b4e90f6fd93dace707294c338bd32bc4bbd8fdb",
    ),
    (
        "529919c9c780985a841c42ba6c180ff2d67a276ccfbe281080e47ab71a758f56",
        "7d597c3b7283929d07ed8f01f31d2596823e5e46ab226c7be4234d1a9dcaef37",
    ),
    (
        "2252b3d57c74cbf8bc460dc2e082847926bc022f09ab6ae95756362bfd1167c1",
        "f401cee4bfb1732f0e9b8d8ba79469565c3115296141dbdf7e9c311a0ac1823b",
    ),
    (
        "c0a773110f975de3732355bb7ec7f0c41c091c0252966070205516693b992a4a",
        "3d658956410377d0644676d2599542412a4f3b0e4eadfb7f3f836615f42b18bc",
    ),
    (
        "54cda623245759ad6d43e620a606908befc633d60792bc7798447a0ef38e7311",
        "bccb61323840c2a96fc36f7e54ea6c8e55f9d221f7f05791ed60025e06064439",
    ),
    (
        "2362bac514d5fad33802642e979a1e82de6eb6f1bcbf6a5b304f2bb02b9e57fe",
        "f2d3023b9c19e241748bc4039a7a43c595701f23675505015213a8a2a0274c1b",
    ),
    (
        "037b55b427dc8daa0f80fcebaf0846902309f8a6cf18b465c0ce9b6539629ac8",
        "12fc31c40d5a7af71e05424623ba970b670cf6ecb44cda6120210e6370245ddb",
    ),
    (
        "9c0007698f177998a7666c7cf7973e2b88e9c4946e33804a7bbe8968d2394b2e",
        "e54bcc4ce95db48072c7b49575617dd1f9403b072105259ca06d8d01530d07fb",
    ),
    (
        "ed3a6f9721dc9729c1f76635bcf080d7036e1c2f0228654ccbbe1e738c17b963",
        "de7f2bb12b875a79ccb057344b2867a2edb25dbc1ecfc8cb07c69e2dd3df3e02",
    ),
    (
        "4abfb535313705a6570018440cdec1a3ae33e51f352112fa6acbd0c6bc3ea859",
        "ea792b7a9d420bf74f6a82a78e58a2cc94f3ab3eb931270611b1f8da75c3d60b",
    ),
    (
        "4f2162e6bf03a712db0efa418b7e7006e23871d9d7ec555a313885c4afd96385",
        "eca28645f63646575ee2e4bdb36f51838142ce2474664c2b66ef054b37af6124",
    ),
    (
        "0717d75ce27ea181ed5a30e6456c649b5cf453a6b4c12cd3f9fd16b31e0c25cd",
        "728238602b7e6753b3f49eb0fc4cde38c7bb14ab58ddcaef2537275b13e99dd3",
    ),
    (
        "db5b9eab7e84e5a13505865fa711c9c896c898609fc11fc9bc1e55028f9496df",
        "dc4092d7809c6b070f2808c434267b6697428f4ab1e4626ab56a3059643be43c",
    ),
    (
        "7bac18f6d2625d3915f233434cda38a577247a7332a5170b37142a34644145e0",
        "38765b89ec56836ea4190fc957802b6a47167f9b5ef942e92652803b7de6abfd",
    ),
    (
        "38ead304624abebf3e2b31e20e5629531e3fc659008887c9106f5e55adbbc62a",
        "97575308a490af0c145411dd16d519a073ef03c2e4a0a1cd6b5de2e881e5eabe",
    ),
    (
        "e9bc95049af7e4817b17c402269ba5e767b7348757ac8002fec9e08390c0a9cf",
        "ad129e89e0eec908df51adc227c8c4908a8095d75621536c8a28dca4b3c30dbb",
    ),
    (
        "ee8155ca4e8fe7bc5bca5992044eab7f8c3c6a13db1176f42f46c29da5b064f4",
        "03ce643d6d341b7065bc9e70da8193451cf83ca7ff5a8640fd07af094640365a",
    ),
    (
        "db507bfcc9576393f7157bb360532b05c5fcf2e764b690cc6698a4a30d349095",
        "581f593a5cd94594dc0f5dd142026a436a930e573391b7aeea6a8253eeef6ceb",
    ),
    (
        "994eaf03309d6ad9d95a656bc1744e2886f029023a3750b34f35086b3c7227f8",
        "6f207dc94b844d4dc71f982da8d9f3ae0b37b4623e441eca75ba62621c524d98",
    ),
    (
        "127d37e406e0d83e4b55a09e21e8f50fb88af47e4a43f018cdebffc1948757f0",
        "dea9bbb9fb20512fa67eea696afd786f3928265f5208aeaba638f3177d0db70e",
    ),
    (
        "d83ba84edfb4bec49f29be31d80a64b7c0b5a502438cdb1d0dd1e0e3e55786de",
        "c99c52ae1e61f7c79a164ee4910fdcaa02946259ea5443f68b23d721d0472f63",
    ),
    (
        "d3c9aa2f3d6ef217a166e8ae403ed436c37facbbe3beceb78df6eb439f8fa04a",
        "d8aaad0749db159569a68b46048b3d3e8266e110150251c42806f0752a84e95b",
    ),
    (
        "d53280367c1c0b95ac4112218b92c6a71c51fb6312ce668de196c7d52a136155",
        "e78d26ab5b726c9d4dfb1f634082abded90432a2fd18089c7c85253a5d2fc7d0",
    ),
    (
        "94ac2336ba97a476fb4c9f2b5563e4167ca292c6e99e422350a911ae3172c315",
        "8e7ca56e07f1438ac3615fd9ec77ae63679d0ec059b4595febf40be59d976a05",
    ),
    (
        "e1e7316d231f7f275bdf403360304da1509fdf1af1fd25ca214eaac0a289398f",
        "e77525af5856ab9df5abb64e5312576b498cc27f61f266e21f382e0526d4e6fb",
    ),
    (
        "fffbeea71215efaf9888fec2cc68edb3703ff11a66fd629b53cbda5eabc18750",
        "1f43235ad716f1beb754ab0f546dfa934488fdf7472b493d7cc3c60353005d24",
    ),
    (
        "19ccc0527599cb032e0b4c4d74e60f13901768a99df041c3bc1bf6c0ef271169",
        "3977785b9f8c5320e51a3a16f8cc22c4f7e64857617f9550147fa35d685ca34f",
    ),
    (
        "0e726e27047563aa0a1a9c2e085d8d26af2acba129d0869c65031e3e6cac329a",
        "1aa4415c5db0131bec6fa188d0c23d49a65bf795657153fae94777e3f19bcf54",
    ),
    (
        "e77717b54a2b5e5bce5bccb8f0c5fdb5fd7df77ac254020fc9120dc0d4df4178",
        "0fb7680a50d3f2940077ea4dfcb7eb040a125c4f4b5dcefa16d3af968fc8e5de",
    ),
    (
        "6220972d3f7d150b36790d7d522384876d64d640cd9913186815e1629582ed36",
        "e222c444d6bc8a4796a0d5a2d71d19b98845cc56e39caaf8233ea4c6b0704f09",
    ),
    (
        "7b64a28c50ec7678a90e3e1a21522e30ac9db7b5215aea2bfb33bea037eab987",
        "a89ea18476b9ad90cb14b8b1ff24777e4ebd015bc810a60785a9154dacf3be52",
    ),
    (
        "724452210a9e4c994819229bf12bf84e95768a3a97c08d8d8f5f939a4cad34c5",
        "69b1da56cde8d1676c2a8c0e7f95c7d0bf60739efd1304dd2ccb02729d17a22c",
    ),
    (
        "bad265b294ed2f422cb6a141694086238fbfe987571aa765d8b4f3a24105aa01",
        "b332265cf95595f0c90221593b5a2b3c574d60dc634ddff6186f0eed7980a383",
    ),
    (
        "0aaee4b723db9b51ba7d22eb23eb8a76a5ac02f4fc9dd06f77bea42e1d37ec5a",
        "faec9764b369df0ef10890dd022c502e551a3222b43e8429455496c76feea45d",
    ),
    (
        "812344af15a91ba83c2c91e96f1727ac0f3c4c41385b9fa84efa399ada5168be",
        "4eb19e278f7a30a06a7d55e42c44775f4a81b7a45c0512aae026262e71770dac",
    ),
    (
        "0ee5cb5597fbdf8dccc48b01485e39b33aa133b52d30d23740277267cfec3e3e",
        "1998d5949cab365a00f828e7d17b06c708d33fef0031d353a4e15bf7222a73b0",
    ),
    (
        "9fba1de92b60b5b4703089763d0d6f9125e4dd7efae41f08a22882aef96892c4",
        "6164676114c66bd9887dac341c66209dc587ccf0cc5cd9baffdfac9295a00c4a",
    ),
    (
        "7582ab1b52e1316e5c13671f43b39ca36b28133cd0832831bcddd0b0f23398cb",
        "4b0bd03a03b20069ccbcc214a7448473f4e7a491fa7ceb48ddbe24c83c4aa4bb",
    ),
    (
        "dd2d678bae222f3fb6e8278f08cc9e1a66339c926c29ac0a16f9717f5ee18cd8",
        "2fce7870be1f392d21fb1d2350ec7877db8aa99b359fe5bdd5338ff35a791d1c",
    ),
    (
        "ccbe7cb2e4bc215cee2f885e1d22f7e0d582b2bbbd782c104e548b152d26fc69",
        "a9ace42195ddbb3a16f366b24dd9d37a8a043ed2e6001f54652296750379367d",
    ),
];

#[test]
fn ed25519_signing_matches_wycheproof() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("the Ed25519 vectors load");
    let mut r = Report::new("Ed25519 sign");
    let mut keys_checked = 0usize;
    let mut used_seeds = std::collections::BTreeSet::new();
    for group in &set.test_groups {
        let pk = hex(&group.key.pk);
        let valid: Vec<_> = group.tests.iter().filter(|t| t.result == TestResult::Valid).collect();
        let Some((_, seed)) = ED25519_SEEDS.iter().find(|(p, _)| *p == pk) else {
            r.skip("no published private key", valid.len());
            continue;
        };
        used_seeds.insert(pk.clone());
        let key = SigningKey::from_bytes(key32(&unhex(seed)));
        keys_checked += 1;
        r.check(hex(&key.verifying_key().to_bytes()) == pk, || {
            format!("seed for {pk}: verifying_key() differs from the group's public key")
        });
        for tc in valid {
            r.run += 1;
            let sig = key.sign(&tc.msg);
            r.check(sig.0.as_slice() == tc.sig.as_slice(), || {
                format!("tcId {} ({}): signature differs", tc.tc_id, tc.comment)
            });
            let vk = VerifyingKey::from_bytes(&key32(&group.key.pk)).expect("a valid public key");
            r.check(vk.verify(&tc.msg, &sig).is_ok(), || {
                format!("tcId {}: our own signature does not verify", tc.tc_id)
            });
        }
    }
    // Every seed in the table belongs to a key of the file: the table cannot rot silently.
    assert_eq!(used_seeds.len(), ED25519_SEEDS.len(), "seeds for keys no longer in the file");
    r.notes.push(format!(
        "{keys_checked} groups' verifying_key() equal the published public key; invalid cases \
         are verification-only (postkey-crypto's Wycheproof test)"
    ));
    r.finish(80);
}
