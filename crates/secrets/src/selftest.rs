//! Power-up self-tests (FIPS 140-3 style): one known-answer test per primitive, run by a box
//! before it is enabled. A box whose self-test fails enters its error state and makes no key.
//!
//! Each test computes an output from fixed inputs and compares it with a published answer
//! (RFC 4231-style HMAC, RFC 5869, SP 800-38B, RFC 8452, RFC 8032, RFC 7748, NIST CAVP) or, for
//! the randomized schemes (HPKE, Shamir), with the input after a round trip (a pairwise
//! consistency test). [`run`] takes the list so that a test can corrupt one expected answer and
//! see exactly that primitive fail.

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use cmac::{Cmac, Mac};
use hkdf::Hkdf;
use postkey_crypto::{HpkeInfo, HpkeRecordType, Signer, VerifyingKey, sha256};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::rng::HmacDrbg;
use crate::{HpkePrivateKey, SigningKey, StateSealingKey, SubdomainAuthKey, SubdomainConfKey};

/// One known-answer test.
#[derive(Debug, Clone)]
pub struct Kat {
    /// The primitive under test.
    pub primitive: &'static str,
    /// The expected output.
    pub expected: Vec<u8>,
    compute: fn() -> Option<Vec<u8>>,
}

/// The outcome of one known-answer test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KatResult {
    /// The primitive tested.
    pub primitive: &'static str,
    /// Whether its output matched.
    pub passed: bool,
}

/// A failed power-up self-test: the box must enter its error state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("power-up self-test failed: {primitive}")]
pub struct SelfTestFailed {
    /// The first primitive that failed.
    pub primitive: &'static str,
}

impl SelfTestFailed {
    /// The documented response code.
    pub fn response_code(&self) -> postkey_wire::ResponseCode {
        postkey_wire::ResponseCode::SELF_TEST_FAILED
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

fn arr32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let v = unhex(s);
    if v.len() == 32 {
        out.copy_from_slice(&v);
    }
    out
}

fn seq32(start: u8) -> [u8; 32] {
    core::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// Every power-up known-answer test.
pub fn kats() -> Vec<Kat> {
    vec![
        Kat {
            primitive: "SHA-256",
            expected: unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            compute: || Some(sha256(b"abc").to_vec()),
        },
        Kat {
            primitive: "HMAC-SHA256",
            expected: unhex("3a8a11f8b8d219cd422397507de63c8eea66d7c9fe30adceae310ee81186fb40"),
            compute: || {
                Some(SubdomainAuthKey::from_bytes(seq32(0)).mac(b"postkey self-test").to_vec())
            },
        },
        Kat {
            // RFC 5869 A.1.
            primitive: "HKDF-SHA256",
            expected: unhex(
                "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            ),
            compute: || {
                let mut okm = [0u8; 42];
                Hkdf::<Sha256>::new(Some(&unhex("000102030405060708090a0b0c")), &[0x0b; 22])
                    .expand(&unhex("f0f1f2f3f4f5f6f7f8f9"), &mut okm)
                    .ok()?;
                Some(okm.to_vec())
            },
        },
        Kat {
            // FIPS 197 C.3.
            primitive: "AES-256",
            expected: unhex("8ea2b7ca516745bfeafc49904b496089"),
            compute: || {
                let mut block =
                    <[u8; 16]>::try_from(unhex("00112233445566778899aabbccddeeff")).ok()?.into();
                Aes256::new(&seq32(0).into()).encrypt_block(&mut block);
                Some(<[u8; 16]>::from(block).to_vec())
            },
        },
        Kat {
            // SP 800-38B D.3 example 10.
            primitive: "AES-256-CMAC",
            expected: unhex("28a7023f452e8f82bd4bf28d8c37c35c"),
            compute: || {
                let key = arr32("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
                let mut mac = <Cmac<Aes256> as KeyInit>::new(&key.into());
                mac.update(&unhex("6bc1bee22e409f96e93d7e117393172a"));
                Some(mac.finalize().into_bytes().to_vec())
            },
        },
        Kat {
            primitive: "AES-256-KWP",
            expected: unhex(
                "92f48c52045c08050ec796a5a91c5ddaf7c61cbdc940adc8d3dc8a144f6161a8c5d3299e325f1750",
            ),
            compute: || {
                let kek = SubdomainConfKey::from_bytes(seq32(0));
                let wrapped = kek.wrap(&crate::MasterKey::from_bytes(seq32(32)));
                // Unwrapping must give the key back, too.
                let back = kek.unwrap(&wrapped.0).ok()?;
                bool::from(back.expose_secret().ct_eq(&seq32(32))).then(|| wrapped.0.to_vec())
            },
        },
        Kat {
            // RFC 8452 C.2, first AES-256-GCM-SIV case.
            primitive: "AES-256-GCM-SIV",
            expected: unhex("07f5f4169bbf55a8400cd47ea6fd400f"),
            compute: || {
                let mut key = [0u8; 32];
                key[0] = 1;
                let mut nonce = [0u8; 12];
                nonce[0] = 3;
                StateSealingKey::from_bytes(key).seal_with_nonce(&nonce, b"", b"").ok()
            },
        },
        Kat {
            // RFC 8032 7.1 TEST 1: signing is deterministic, and the result verifies strictly.
            primitive: "Ed25519",
            expected: unhex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            compute: || {
                let sk = SigningKey::from_bytes(arr32(
                    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                ));
                let sig = sk.sign(b"");
                let pk = VerifyingKey::from_bytes(&arr32(
                    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                ))
                .ok()?;
                pk.verify(b"", &sig).ok()?;
                (sk.verifying_key() == pk).then(|| sig.0.to_vec())
            },
        },
        Kat {
            // RFC 7748 6.1: Alice's public key from her private key.
            primitive: "X25519",
            expected: unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
            compute: || {
                let sk = HpkePrivateKey::from_bytes(arr32(
                    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                ));
                Some(sk.public_key().to_bytes().to_vec())
            },
        },
        Kat {
            // Pairwise consistency: seal with a fixed generator, open, compare.
            primitive: "HPKE (X25519, HKDF-SHA256, AES-256-GCM)",
            expected: b"postkey HPKE self-test".to_vec(),
            compute: || {
                let sk = HpkePrivateKey::from_bytes(seq32(7));
                let info = HpkeInfo::new(HpkeRecordType::Mi3, "ADMIN", 1, "SELFTEST").ok()?;
                let mut rng = FixedRng(HmacDrbg::instantiate(&seq32(1), b"hpke", b"").ok()?);
                let ct = postkey_crypto::seal(
                    &sk.public_key(),
                    &info,
                    b"postkey HPKE self-test",
                    &mut rng,
                )
                .ok()?;
                Some(sk.open(&info, &ct).ok()?.expose_secret().to_vec())
            },
        },
        Kat {
            // NIST CAVP HMAC_DRBG (SHA-256, no reseed), count 0.
            primitive: "HMAC_DRBG (SHA-256)",
            expected: unhex(
                "e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8",
            ),
            compute: || {
                let mut d = HmacDrbg::instantiate(
                    &unhex("ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488"),
                    &unhex("659ba96c601dc69fc902940805ec0ca8"),
                    b"",
                )
                .ok()?;
                let mut out = [0u8; 128];
                d.generate(&mut out, b"").ok()?;
                d.generate(&mut out, b"").ok()?;
                Some(out.to_vec())
            },
        },
        Kat {
            // Pairwise consistency: split 2-of-3 with a fixed generator, recombine shares 3 and 1.
            primitive: "Shamir GF(2^8)",
            expected: seq32(100).to_vec(),
            compute: || {
                let mut rng = FixedRng(HmacDrbg::instantiate(&seq32(2), b"shamir", b"").ok()?);
                let shares = vsss_rs::Gf256::split_bytes(2, 3, seq32(100), &mut rng).ok()?;
                let pair = vec![shares.get(2)?.clone(), shares.first()?.clone()];
                vsss_rs::Gf256::combine_bytes(pair).ok()
            },
        },
    ]
}

/// Runs `kats` and reports each one.
pub fn run(kats: &[Kat]) -> Vec<KatResult> {
    kats.iter()
        .map(|k| KatResult {
            primitive: k.primitive,
            passed: (k.compute)().is_some_and(|out| bool::from(out.as_slice().ct_eq(&k.expected))),
        })
        .collect()
}

/// Runs every power-up self-test; the first failure stops the box.
pub fn power_up() -> Result<(), SelfTestFailed> {
    #[cfg(any(test, feature = "testing"))]
    if let Some(primitive) = injected::take() {
        return Err(SelfTestFailed { primitive });
    }
    match run(&kats()).into_iter().find(|r| !r.passed) {
        Some(r) => Err(SelfTestFailed { primitive: r.primitive }),
        None => Ok(()),
    }
}

/// **Test doubles only.** A failing known-answer test, injected: the next power-up self-test on
/// this thread fails as if `primitive`'s known answer did not match (protocol §4: the box's error
/// state and its response code 4003 are then testable without breaking a primitive).
#[cfg(any(test, feature = "testing"))]
pub mod injected {
    use std::cell::Cell;

    thread_local! {
        static NEXT: Cell<Option<&'static str>> = const { Cell::new(None) };
    }

    /// The next `power_up` on this thread fails with `primitive`.
    pub fn fail_next_power_up(primitive: &'static str) {
        NEXT.with(|n| n.set(Some(primitive)));
    }

    pub(super) fn take() -> Option<&'static str> {
        NEXT.with(Cell::take)
    }
}

/// A deterministic generator for the self-tests' randomized schemes: never used for keys.
struct FixedRng(HmacDrbg);

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        // Requests here are tiny and the DRBG is fresh, so generate cannot fail; if it ever did,
        // `dst` is zeroed and the known answer does not match, failing the self-test.
        let _ = self.0.generate(dst, b"");
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_answer_test_passes() {
        for r in run(&kats()) {
            assert!(r.passed, "{} failed", r.primitive);
        }
        assert_eq!(power_up(), Ok(()));
    }

    #[test]
    fn corrupting_any_known_answer_fails_exactly_that_primitive() {
        let all = kats();
        assert!(all.len() >= 12);
        for i in 0..all.len() {
            let mut corrupted = all.clone();
            corrupted[i].expected[0] ^= 0x01;
            let results = run(&corrupted);
            for (j, r) in results.iter().enumerate() {
                assert_eq!(
                    r.passed,
                    i != j,
                    "corrupting {} affected {}",
                    all[i].primitive,
                    r.primitive
                );
            }
        }
    }
}
