use core::fmt;

use sha2::{Digest, Sha256};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A SHA-256 fingerprint of public material (a key, a set of trust anchors), shown to operators
/// as upper-case hex in groups of four so that they can compare it aloud during a ceremony.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `data`, domain-separated by `label` so that two kinds of material never
    /// share a fingerprint.
    pub fn of(label: &str, data: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"postkey/fingerprint/v1\0");
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update(data);
        Self(h.finalize().into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for b in pair {
                write!(f, "{b:02X}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

crate::cbor_byte_string!(Fingerprint, 32, "fingerprint", |v| v.0, |b| Ok(Fingerprint(b)));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_180_example() {
        let d = sha256(b"abc");
        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(d[28..], [0xf2, 0x00, 0x15, 0xad]);
    }

    #[test]
    fn fingerprints_are_domain_separated_and_grouped() {
        let a = Fingerprint::of("anchors", b"x");
        let b = Fingerprint::of("identity", b"x");
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 16 * 4 + 15);
        assert!(s.chars().all(|c| c == ' ' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }
}
