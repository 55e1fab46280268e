//! The token formulas of protocol §4: the interoperability contract with postal operators, published
//! with test vectors (`docs/tokens.md`, `docs/test-vectors.json`). The meter computes tokens and
//! Brass and Tin recompute them through these same functions.

use aes::Aes256;
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};
use cmac::{Cmac, Mac};
use postkey_wire::{
    Country, Date, DomainId, Isn, Mailpiece, MeterId, Period, RegistrationToken, TestTokens, Token,
};
use zeroize::Zeroize;

use crate::{MasterKey, TokenKey};

/// The HKDF salt of token keys.
pub const TOKEN_KEY_SALT: &[u8] = b"postkey/token/v1";
/// The label that starts the registration-token input.
pub const REGISTRATION_LABEL: &[u8] = b"postkey/registration/v1";
/// The test pattern TP whose AES-256 encryption under K is the test tokens.
pub const TEST_PATTERN: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
];

/// AES-256-CMAC (SP 800-38B) of `data` under `key`.
fn cmac(key: &[u8; 32], data: &[u8]) -> [u8; 16] {
    let mut mac = <Cmac<Aes256> as KeyInit>::new(key.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// AES-256-CMAC truncated to its first 8 bytes, as tokens are.
fn cmac8(key: &[u8; 32], data: &[u8]) -> [u8; 8] {
    first8(cmac(key, data))
}

/// A token is the first 8 bytes of the 16-byte CMAC.
fn first8(full: [u8; 16]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// The input of a registration token: everything MR1 says about the meter's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration<'a> {
    /// The meter.
    pub meter: &'a MeterId,
    /// The ISN assigned at registration.
    pub isn: &'a Isn,
    /// The country, upper case.
    pub country: &'a Country,
    /// The registration date.
    pub date: Date,
}

impl Registration<'_> {
    /// `label ‖ 0 ‖ product_code ‖ 0 ‖ msn ‖ 0 ‖ isn ‖ 0 ‖ country ‖ 0 ‖ date`.
    pub fn message(&self) -> Vec<u8> {
        let date = self.date.to_string();
        let parts: [&[u8]; 5] = [
            self.meter.product_code().as_str().as_bytes(),
            self.meter.msn().as_str().as_bytes(),
            self.isn.as_str().as_bytes(),
            self.country.as_str().as_bytes(),
            date.as_bytes(),
        ];
        let mut m = REGISTRATION_LABEL.to_vec();
        for p in parts {
            m.push(0);
            m.extend_from_slice(p);
        }
        m
    }
}

impl MasterKey {
    /// `K_T = HKDF-SHA256(ikm = K, salt = "postkey/token/v1", info = domain ‖ 0 ‖ isn ‖ 0 ‖
    /// period)`: the key of one meter's tokens for one month.
    pub fn token_key(&self, domain: &DomainId, isn: &Isn, period: Period) -> TokenKey {
        let period = period.to_string();
        let mut info = Vec::with_capacity(domain.as_str().len() + isn.as_str().len() + 8);
        info.extend_from_slice(domain.as_str().as_bytes());
        info.push(0);
        info.extend_from_slice(isn.as_str().as_bytes());
        info.push(0);
        info.extend_from_slice(period.as_bytes());
        let mut okm = crate::kdf::hkdf_sha256_32(self.expose_secret(), TOKEN_KEY_SALT, &info);
        let key = TokenKey::from_bytes(okm);
        okm.zeroize();
        key
    }

    /// The test tokens: the whole block `AES-256(K, TP)`.
    pub fn test_tokens(&self) -> TestTokens {
        let cipher = Aes256::new(self.expose_secret().into());
        let mut block = TEST_PATTERN.into();
        cipher.encrypt_block(&mut block);
        TestTokens::from_bytes(block.into())
    }

    /// The registration token: the first 8 bytes of `AES-256-CMAC(K, registration message)`.
    pub fn registration_token(&self, registration: &Registration<'_>) -> RegistrationToken {
        RegistrationToken::from_bytes(cmac8(self.expose_secret(), &registration.message()))
    }
}

impl TokenKey {
    /// The token over a mailpiece: the first 8 bytes of `AES-256-CMAC(K_T, canonical bytes)`.
    pub fn token(&self, mailpiece: &Mailpiece) -> Token {
        self.token_over(&mailpiece.canonical_bytes())
    }

    /// The full 16-byte AES-256-CMAC under this key, of which a token is the first 8 bytes.
    pub fn cmac(&self, data: &[u8]) -> [u8; 16] {
        cmac(self.expose_secret(), data)
    }

    /// The token over canonical mailpiece bytes already built.
    pub fn token_over(&self, canonical: &[u8]) -> Token {
        Token::from_bytes(cmac8(self.expose_secret(), canonical))
    }

    /// This key ready for many tokens: the AES key schedule and the CMAC subkeys computed once
    /// (a verifier keeps these in its cache, protocol §6.5).
    pub fn prepare(&self) -> TokenMac {
        let cipher = aes::Aes256Enc::new(self.expose_secret().into());
        // SP 800-38B §6.1: L = E_K(0^128), K1 = dbl(L), K2 = dbl(K1).
        let mut l = aes::Block::default();
        cipher.encrypt_block(&mut l);
        let k1 = dbl(l.into());
        let k2 = dbl(k1);
        l.zeroize();
        TokenMac { cipher, k1, k2 }
    }
}

/// Doubling in GF(2^128) (SP 800-38B §6.1): a shift left, and `0x87` folded in when the bit
/// shifted out was set, by a mask rather than a branch (the value is secret).
fn dbl(block: [u8; 16]) -> [u8; 16] {
    let x = u128::from_be_bytes(block);
    let carry = 0u128.wrapping_sub(x >> 127);
    ((x << 1) ^ (carry & 0x87)).to_be_bytes()
}

/// A token key with its AES key schedule (encryption only: CMAC never decrypts, and a verifier
/// holds tens of thousands of these, so half the bytes is fewer cache misses) and CMAC subkeys
/// computed once: the same tokens as
/// [`TokenKey::token_over`] (the `cmac` crate's AES-256-CMAC), without expanding the key for
/// each. What the `cmac` crate cannot do is compute the CMACs of many mailpieces under one key
/// side by side: [`TokenMac::tokens_over`] does, block i of every mailpiece encrypted in one
/// call of the cipher, so that it runs its parallel blocks (docs/verification.md, "Speed").
/// The tests check it against the `cmac` crate and SP 800-38B's examples. Its key schedule and
/// subkeys zeroize on drop (the `zeroize` feature of `aes`, and `Drop` here); it prints as
/// `[redacted]`.
#[derive(Clone)]
pub struct TokenMac {
    cipher: aes::Aes256Enc,
    k1: [u8; 16],
    k2: [u8; 16],
}

impl Drop for TokenMac {
    fn drop(&mut self) {
        self.k1.zeroize();
        self.k2.zeroize();
    }
}

impl TokenMac {
    /// The token over canonical mailpiece bytes.
    pub fn token_over(&self, canonical: &[u8]) -> Token {
        let mut one = Vec::with_capacity(1);
        self.tokens_over(&[canonical], &mut one);
        one.pop().unwrap_or(Token::from_bytes([0; 8]))
    }

    /// The tokens over many canonical mailpieces into `tokens` (emptied first, then one a
    /// message: `tokens[i]` over `messages[i]`, never a token left from before): AES-256-CMAC as SP 800-38B §6.2 defines it, truncated to 8 bytes. Each
    /// mailpiece is a chain of blocks `C_j = E_K(C_{j-1} ⊕ M_j)`, its last block padded and
    /// masked with K1 (whole) or K2 (padded with `0x80 00…`); the chains advance together, a
    /// step of all of them in one call of the cipher. Lengths are public (the canonical bytes
    /// are printed on the mailpiece), so the mailpieces' block counts may steer the loop.
    pub fn tokens_over(&self, messages: &[&[u8]], tokens: &mut Vec<Token>) {
        tokens.clear();
        tokens.resize(messages.len(), Token::from_bytes([0; 8]));
        let TokenMac { cipher, k1, k2 } = self;
        cipher.encrypt_with_backend(SideBySide { k1, k2, messages, tokens });
    }
}

/// The CMACs of [`TokenMac::tokens_over`], in one call of the cipher's backend (which, on a
/// CPU with VAES, prepares its round keys at each call: once for all the mailpieces, not once
/// or twice for each). The chains advance [`LANES`] at a time, a block of each per step: the
/// blocks of one step are independent, so the CPU overlaps their AES rounds.
struct SideBySide<'a> {
    k1: &'a [u8; 16],
    k2: &'a [u8; 16],
    messages: &'a [&'a [u8]],
    tokens: &'a mut [Token],
}

/// How many chains advance together.
const LANES: usize = 8;

impl BlockSizeUser for SideBySide<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for SideBySide<'_> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let blocks_of = |m: &[u8]| m.len().div_ceil(16).max(1);
        for (messages, tokens) in self.messages.chunks(LANES).zip(self.tokens.chunks_mut(LANES)) {
            let mut chains = [aes::Block::default(); LANES];
            let steps = messages.iter().map(|m| blocks_of(m)).max().unwrap_or(0);
            for j in 0..steps {
                for (m, chain) in messages.iter().zip(&mut chains) {
                    let n = blocks_of(m);
                    if j >= n {
                        continue;
                    }
                    // Into the chain directly: no copy of a masked block (which, with the
                    // public message, would give K1 or K2 away) is left to wipe.
                    let part = &m[16 * j..m.len().min(16 * j + 16)];
                    for (c, b) in chain.iter_mut().zip(part) {
                        *c ^= b;
                    }
                    if j + 1 == n {
                        // The last block: whole, masked with K1; else padded and masked with K2.
                        let mask = if part.len() == 16 {
                            self.k1
                        } else {
                            chain[part.len()] ^= 0x80;
                            self.k2
                        };
                        for (c, k) in chain.iter_mut().zip(mask) {
                            *c ^= k;
                        }
                    }
                    backend.encrypt_block_inplace(chain);
                }
            }
            for (token, chain) in tokens.iter_mut().zip(&chains) {
                // The token is public; the rest of the tag is wiped with the chain.
                let mut first = [0u8; 8];
                first.copy_from_slice(&chain[..8]);
                *token = Token::from_bytes(first);
            }
            for chain in &mut chains {
                chain.as_mut_slice().zeroize();
            }
        }
    }
}

impl core::fmt::Debug for TokenMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TokenMac([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_key_is_bound_to_domain_isn_and_period() {
        let k = MasterKey::from_bytes([7u8; 32]);
        let isn = Isn::parse("0401234567").unwrap();
        let p = Period::parse("202611").unwrap();
        let base = k.token_key(&DomainId::parse("USPS").unwrap(), &isn, p);
        assert_ne!(base, k.token_key(&DomainId::parse("VE").unwrap(), &isn, p));
        assert_ne!(
            base,
            k.token_key(&DomainId::parse("USPS").unwrap(), &Isn::parse("0401234568").unwrap(), p)
        );
        assert_ne!(
            base,
            k.token_key(&DomainId::parse("USPS").unwrap(), &isn, Period::parse("202612").unwrap())
        );
        assert_eq!(base, k.token_key(&DomainId::parse("USPS").unwrap(), &isn, p));
    }

    #[test]
    fn a_prepared_token_key_makes_the_same_tokens() {
        let k = MasterKey::from_bytes([9u8; 32]);
        let kt = k.token_key(
            &DomainId::parse("USPS").unwrap(),
            &Isn::parse("0401234567").unwrap(),
            Period::parse("202611").unwrap(),
        );
        let prepared = kt.prepare();
        let data: [&[u8]; 7] = [
            b"",
            b"0401234567|USPS/US|20261129|65|1|06484",
            &[0x55; 100],
            b"x",
            &[0xAA; 16],
            &[0x0F; 32],
            &[0x80; 15],
        ];
        // Stale tokens in the vector are replaced, never kept.
        let mut side_by_side = vec![Token::from_bytes([1; 8]); 9];
        prepared.tokens_over(&data, &mut side_by_side);
        assert_eq!(side_by_side.len(), data.len());
        for (d, token) in data.iter().zip(side_by_side) {
            assert_eq!(prepared.token_over(d), kt.token_over(d));
            assert_eq!(token, kt.token_over(d));
        }
        assert_eq!(format!("{prepared:?}"), "TokenMac([redacted])");
    }

    proptest::proptest! {
        /// Side by side, mailpieces of any lengths (whole blocks, padded, empty) get the tokens
        /// the `cmac` crate computes one at a time.
        #[test]
        fn tokens_side_by_side_are_the_cmac_crates(
            key in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70), 0..12),
        ) {
            let key = TokenKey::from_bytes(key);
            let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let mut tokens = Vec::new();
            key.prepare().tokens_over(&slices, &mut tokens);
            proptest::prop_assert_eq!(tokens.len(), slices.len());
            for (m, t) in slices.iter().zip(&tokens) {
                proptest::prop_assert_eq!(*t, Token::from_bytes(first8(cmac(key.expose_secret(), m))));
            }
        }
    }

    #[test]
    fn test_tokens_match_fips_197_style_aes256() {
        // FIPS 197 C.3: AES-256 with key 00..1f encrypts 00112233..ff to 8ea2b7ca516745bfeafc49904b496089.
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let cipher = Aes256::new(&key.into());
        let mut block = [
            0x00u8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]
        .into();
        cipher.encrypt_block(&mut block);
        assert_eq!(
            <[u8; 16]>::from(block),
            [
                0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf, 0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49,
                0x60, 0x89
            ]
        );
        // And test_tokens runs exactly that block cipher over TP.
        let k = MasterKey::from_bytes(key);
        let mut tp = TEST_PATTERN.into();
        cipher.encrypt_block(&mut tp);
        assert_eq!(k.test_tokens().to_bytes(), <[u8; 16]>::from(tp));
    }

    #[test]
    fn registration_message_layout() {
        let meter = MeterId::parse("PB1234-000123").unwrap();
        let isn = Isn::parse("0401234567").unwrap();
        let country = Country::parse("US").unwrap();
        let r = Registration {
            meter: &meter,
            isn: &isn,
            country: &country,
            date: Date::parse("20261129").unwrap(),
        };
        assert_eq!(
            r.message(),
            b"postkey/registration/v1\x00PB1234\x00000123\x000401234567\x00US\x0020261129".to_vec()
        );
    }
}
