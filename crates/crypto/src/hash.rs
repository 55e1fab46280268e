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

/// A fingerprint as an operator types it does not read as 64 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is 64 hexadecimal digits (spaces allowed), as `postkey init` shows it")]
pub struct ParseFingerprintError;

/// Reads a fingerprint as it is shown ([`Display`](fmt::Display)) or typed: 64 hexadecimal digits
/// of either case, with any white space between them.
impl core::str::FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut digits = s.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_digit(16));
        let mut out = [0u8; 32];
        for byte in &mut out {
            let (Some(Some(hi)), Some(Some(lo))) = (digits.next(), digits.next()) else {
                return Err(ParseFingerprintError);
            };
            *byte = (hi * 16 + lo) as u8;
        }
        match digits.next() {
            None => Ok(Self(out)),
            Some(_) => Err(ParseFingerprintError),
        }
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
    fn a_fingerprint_reads_back_as_shown_and_nothing_else_reads() {
        let f = Fingerprint::of("test", b"data");
        assert_eq!(f.to_string().parse::<Fingerprint>(), Ok(f));
        assert_eq!(f.to_string().to_lowercase().replace(' ', "").parse::<Fingerprint>(), Ok(f));
        let shown = f.to_string();
        for bad in [
            "zz",
            "",
            &shown[..shown.len() - 1],
            &format!("{shown}0"),
            &format!("g{}", &shown[1..]),
        ] {
            assert_eq!(bad.parse::<Fingerprint>(), Err(ParseFingerprintError), "{bad:?}");
        }
    }

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
