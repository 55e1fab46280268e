use core::fmt;

/// A four-digit response code (SPEC §9), the same number in the error log, in a box's answer, in
/// the CLI's JSON and over HTTP. The ranges and every code are listed in `docs/response-codes.md`;
/// the table in that file is checked against [`ResponseCode::ALL`] by a test.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResponseCode(pub u16);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl ResponseCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*
            /// Every code this build defines, with its one-line meaning.
            pub const ALL: &'static [(Self, &'static str)] = &[$((Self::$name, $text)),*];
        }
    };
}

codes! {
    /// 1xxx link: a frame was malformed.
    LINK_FRAME_MALFORMED = 1001, "link frame malformed (markers, class code or length)";
    /// 1xxx link: the frame's CRC-32C did not match.
    LINK_CRC_MISMATCH = 1002, "link frame CRC-32C mismatch";
    /// 1xxx link: the peer did not acknowledge within the bounded retries.
    LINK_RETRIES_EXHAUSTED = 1003, "link retries exhausted";

    /// 2xxx command: the command is not one this component knows.
    UNKNOWN_COMMAND = 2001, "unknown command";
    /// 2xxx command: wrong number of parameters.
    PARAMETER_COUNT = 2002, "wrong number of parameters";
    /// 2xxx command: a parameter or field does not parse.
    PARAMETER_SYNTAX = 2003, "parameter syntax: malformed field or encoding";
    /// 2xxx command: input past the documented size limit.
    MESSAGE_TOO_LARGE = 2004, "message exceeds its size limit";
    /// 2xxx command: bytes after the end of the value.
    TRAILING_BYTES = 2005, "trailing bytes after the message";
    /// 2xxx command: not the canonical encoding (unknown, duplicate or reordered fields).
    NON_CANONICAL = 2006, "non-canonical encoding (unknown, duplicate or reordered fields)";
    /// 2xxx command: a version this build does not speak.
    UNSUPPORTED_VERSION = 2007, "unsupported record version";
    /// 2xxx command: another record type than expected.
    WRONG_RECORD_TYPE = 2008, "unexpected record type";

    /// 3xxx processing: command outside this component's command table.
    COMMAND_NOT_IN_TABLE = 3001, "command not in this component's configuration table";
    /// 3xxx processing: domain outside this component's domain table.
    DOMAIN_NOT_IN_TABLE = 3002, "domain not in this component's configuration table";
    /// 3xxx processing: record type outside this component's record table.
    RECORD_NOT_IN_TABLE = 3003, "record type not in this component's configuration table";
    /// 3xxx processing: a signature did not verify.
    BAD_SIGNATURE = 3100, "signature verification failed";
    /// 3xxx processing: a MAC did not verify.
    BAD_MAC = 3101, "MAC verification failed";
    /// 3xxx processing: a ciphertext did not decrypt or unwrap.
    DECRYPTION_FAILED = 3102, "decryption or key unwrap failed";
    /// 3xxx processing: a share is malformed, forged or not this box's.
    SHARE_INVALID = 3110, "share invalid (signature, owner or form)";
    /// 3xxx processing: shares of different sets, or duplicates, were presented.
    SHARE_SET_MISMATCH = 3111, "shares of different sets, or a duplicated share";
    /// 3xxx processing: fewer distinct shares than the threshold.
    SHARE_QUORUM_NOT_MET = 3112, "fewer distinct shares than the threshold";
    /// 3xxx processing: the recombined secret fails its check value.
    SHARE_CHECK_FAILED = 3113, "recombined secret fails its check value";
    /// 3xxx processing: the random number generator failed its health tests.
    RNG_FAILURE = 3500, "random number generator failure: no key made";
    /// 3xxx processing: a sealed state does not open (altered, truncated, wrong key).
    SEALED_STATE_INVALID = 3501, "sealed state does not open";

    /// 4xxx box state: a power-up self-test failed; the box is in its error state.
    SELF_TEST_FAILED = 4003, "power-up self-test failed";
}

impl ResponseCode {
    /// The class named by the first digit (SPEC §9).
    pub fn class(self) -> &'static str {
        match self.0 / 1000 {
            1 => "link",
            2 => "command",
            3 => "processing",
            4 => "box state",
            5 => "verification",
            _ => "unknown",
        }
    }

    /// The one-line meaning, if this build defines the code.
    pub fn meaning(self) -> Option<&'static str> {
        Self::ALL.iter().find(|(c, _)| *c == self).map(|(_, t)| *t)
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode({:04})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_four_digit_and_in_a_class() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, text) in ResponseCode::ALL {
            assert!((1000..=5999).contains(&code.0), "{code}");
            assert_ne!(code.class(), "unknown");
            assert!(seen.insert(code.0), "duplicate {code}");
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn the_published_table_lists_every_code() {
        let doc = include_str!("../../../docs/response-codes.md");
        for (code, text) in ResponseCode::ALL {
            let row = format!("| {code} | {text} |");
            assert!(doc.contains(&row), "docs/response-codes.md lacks the row `{row}`");
        }
    }
}
