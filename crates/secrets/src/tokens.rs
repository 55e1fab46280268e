//! The token formulas of protocol §4: the interoperability contract with postal operators, published
//! with test vectors (`docs/tokens.md`, `docs/test-vectors.json`). The meter computes tokens and
//! Brass and Tin recompute them through these same functions.

use aes::Aes256;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
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
        TokenMac(<Cmac<Aes256> as KeyInit>::new(self.expose_secret().into()))
    }
}

/// A token key with its CMAC state prepared: the same tokens as [`TokenKey::token_over`],
/// without expanding the key for each. Its state zeroizes on drop (the `zeroize` feature of
/// `cmac` and `aes`), and it prints as `[redacted]`.
#[derive(Clone)]
pub struct TokenMac(Cmac<Aes256>);

impl TokenMac {
    /// The token over canonical mailpiece bytes.
    pub fn token_over(&self, canonical: &[u8]) -> Token {
        self.clone().next_token(canonical)
    }

    /// The token over canonical mailpiece bytes, the state reset after: a verifier computes a
    /// key's tokens in a row on one copy of the state, instead of a copy per token.
    pub fn next_token(&mut self, canonical: &[u8]) -> Token {
        self.0.update(canonical);
        Token::from_bytes(first8(self.0.finalize_reset().into_bytes().into()))
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
        // One state for tokens in a row: each reset after, so none carries into the next.
        let mut in_a_row = kt.prepare();
        for data in [&b""[..], b"0401234567|USPS/US|20261129|65|1|06484", &[0x55; 100], b"x"] {
            assert_eq!(prepared.token_over(data), kt.token_over(data));
            assert_eq!(in_a_row.next_token(data), kt.token_over(data));
        }
        assert_eq!(format!("{prepared:?}"), "TokenMac([redacted])");
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
