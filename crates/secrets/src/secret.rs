//! The shape every fixed-size secret shares: private bytes, zeroized on drop, `[redacted]` in
//! `Debug`, constant-time equality, and one accessor, `expose_secret`, so that every place that
//! touches key bytes can be found with one search.

/// Defines a fixed-size secret byte type.
macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident, $len:literal) => {
        $(#[$doc])*
        #[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The length in bytes.
            pub const LEN: usize = $len;

            /// Takes ownership of key bytes (from a sealed state, a KAT, an unwrapped record).
            /// The caller's copy should be a temporary that is zeroized or dropped at once.
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Fresh bytes from the box's generator.
            pub fn generate(rng: &mut $crate::rng::BoxRng) -> Result<Self, $crate::rng::RngError> {
                let mut k = Self([0u8; $len]);
                rng.fill(&mut k.0)?;
                Ok(k)
            }

            /// The key bytes. Every use is a place where a plaintext secret is handled.
            pub fn expose_secret(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl subtle::ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..])
            }
        }

        impl PartialEq for $name {
            /// Constant time.
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(self, other).into()
            }
        }

        impl Eq for $name {}
    };
}

pub(crate) use secret_bytes;

/// A variable-length secret: an opened HPKE plaintext, an unsealed box state, an unwrapped key
/// before its length is checked. Zeroized on drop, redacted in `Debug`.
#[derive(zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes. Every use is a place where plaintext secret material is handled.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.0.len())
    }
}

impl subtle::ConstantTimeEq for SecretBytes {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_slice().ct_eq(other.0.as_slice())
    }
}

/// An HMAC-SHA256 instance keyed with a 32-byte key.
///
/// RFC 2104 §2 pads a key shorter than the 64-byte block with zeros, so keying with the padded
/// block is the same function; it lets the fixed-size `KeyInit::new` be used, with no error path
/// for a length that cannot be wrong.
pub(crate) fn hmac_sha256(key: &[u8; 32]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::KeyInit as _;
    let mut block = zeroize::Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <hmac::Hmac<sha2::Sha256>>::new(&(*block).into())
}
