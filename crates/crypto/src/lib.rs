//! Public-key cryptography for postkey: everything that needs no secret.
//!
//! Start from [`VerifyingKey`] (Ed25519, always verified strictly), [`HpkePublicKey`] with
//! [`seal`], and [`HpkeInfo`], which builds the HPKE `info` string that binds every sealed key to
//! its record type, domain, key ID and recipient (protocol §4).
//!
//! Key design decision: this crate holds no private key and no plaintext secret type, so the KMS
//! computer, the archive and the wire codec can depend on it freely. Sealing a secret to a public
//! key takes the plaintext as a borrowed slice from the caller (a box or a meter, through the
//! secrets crate) and the randomness from the caller's generator: this crate never draws its own.

#![forbid(unsafe_code)]

mod error;
mod hash;
mod hpke_seal;
mod sign;

pub use error::CryptoError;
pub use hash::{Fingerprint, ParseFingerprintError, sha256};
pub use hpke_seal::{
    HPKE_ENC_LEN, HpkeCiphertext, HpkeInfo, HpkePublicKey, HpkeRecordType, MAX_HPKE_PLAINTEXT, seal,
};
pub use sign::{Signature, Signer, VerifyingKey};

/// Implements `minicbor::Encode` and `Decode` for a type carried as a CBOR byte string of exactly
/// `$len` bytes: keys, signatures, fingerprints, tokens, IDs. `$get` gives the bytes of `$v`,
/// `$make` builds the value from the array `$b` (a `Result`, so that it can refuse, e.g. a point
/// not on the curve). Any other length is refused at the decoder, naming `$what`.
#[macro_export]
macro_rules! cbor_byte_string {
    ($ty:ty, $len:expr, $what:literal, |$v:ident| $get:expr, |$b:ident| $make:expr) => {
        impl<C> minicbor::Encode<C> for $ty {
            fn encode<W: minicbor::encode::Write>(
                &self,
                e: &mut minicbor::Encoder<W>,
                _: &mut C,
            ) -> Result<(), minicbor::encode::Error<W::Error>> {
                let $v = self;
                e.bytes(AsRef::<[u8]>::as_ref(&$get))?;
                Ok(())
            }
        }

        impl<'b, C> minicbor::Decode<'b, C> for $ty {
            fn decode(
                d: &mut minicbor::Decoder<'b>,
                _: &mut C,
            ) -> Result<Self, minicbor::decode::Error> {
                let $b: [u8; $len] = d.bytes()?.try_into().map_err(|_| {
                    minicbor::decode::Error::message(concat!($what, " has the wrong length"))
                })?;
                $make
            }
        }
    };
}

/// The random source every operation here draws from: a box's or meter's generator.
pub use rand_core::CryptoRng;

/// The HPKE suite of protocol §4, fixed at compile time. The secrets crate opens with the same types.
pub mod suite {
    /// DHKEM(X25519, HKDF-SHA256).
    pub type Kem = hpke::kem::X25519HkdfSha256;
    /// HKDF-SHA256.
    pub type Kdf = hpke::kdf::HkdfSha256;
    /// AES-256-GCM.
    pub type Aead = hpke::aead::AesGcm256;
}
