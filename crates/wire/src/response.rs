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
    /// 3xxx processing: a record addressed to another box.
    RECORD_NOT_FOR_THIS_BOX = 3004, "record addressed to another box";
    /// 3xxx processing: an answer bound to another nonce (or replayed).
    NONCE_MISMATCH = 3005, "nonce does not match the one offered";
    /// 3xxx processing: keys or a record meant for another box type.
    WRONG_BOX_TYPE = 3006, "keys or record meant for another box type";
    /// 3xxx processing: a box ID certified a second time.
    ALREADY_CERTIFIED = 3007, "box ID already certified";
    /// 3xxx processing: a domain this box does not know.
    UNKNOWN_DOMAIN = 3008, "domain unknown to this box";
    /// 3xxx processing: a configuration update not newer than the last applied.
    STALE_UPDATE = 3009, "configuration update not newer than the last applied (replay)";
    /// 3xxx processing: a domain that already exists.
    DOMAIN_EXISTS = 3010, "domain already exists";
    /// 3xxx processing: the first ceremony was already run in this home.
    FIRST_CEREMONY_DONE = 3011, "the first manufacturing box already exists here";
    /// 3xxx processing: a box named for a domain has no process of it.
    NOT_CERTIFIED_FOR_DOMAIN = 3012, "box not certified for the domain (no process of it)";
    /// 3xxx processing: a message about an installation this box is not running.
    NO_INSTALL_IN_FLIGHT = 3013, "no installation in flight for this key and meter";
    /// 3xxx processing: an installation is already in flight in this box.
    INSTALL_IN_FLIGHT = 3015, "an interrupted installation awaits RECOVER in this box";
    TOO_MANY_IN_FLIGHT = 3016, "too many installations in flight in this box";
    /// 3xxx processing: records that should describe one key do not match.
    RECORD_MISMATCH = 3014, "records do not match (domain, key ID, boxes or meter)";
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
    /// 3xxx processing: a key record names an ID its domain archive never allocated.
    KEY_ID_NOT_ALLOCATED = 3210, "key ID never allocated by the domain archive";
    /// 3xxx processing: the key ID was burned (allocated, never a key) and never becomes one.
    KEY_ID_BURNED = 3211, "key ID burned: allocated but never a key";
    /// 3xxx processing: a time earlier than one already recorded for the key (SPEC §6.6).
    TIME_WENT_BACKWARDS = 3310, "time earlier than one already recorded for the key";
    /// 3xxx processing: a key status change that SPEC §6.4 does not allow.
    TRANSITION_NOT_ALLOWED = 3400, "key status transition not allowed";
    /// 3xxx processing: the key is not in the expected status; another writer changed it first.
    STATUS_CONFLICT = 3401, "key not in the expected status: changed by another writer";
    /// 3xxx processing: test tokens that do not match.
    TEST_TOKENS_MISMATCH = 3104, "test tokens do not match";
    /// 3xxx processing: a key ID not greater than the last processed.
    KEY_ID_NOT_FRESH = 3201, "key ID not greater than the last processed for the domain (replay)";
    /// 3xxx processing: a key ID too far above the last processed.
    KEY_ID_BEYOND_WINDOW = 3202, "key ID too far above the last processed for the domain";
    /// 3xxx processing: the random number generator failed its health tests.
    RNG_FAILURE = 3500, "random number generator failure: no key made";
    /// 3xxx processing: a sealed state does not open (altered, truncated, wrong key).
    SEALED_STATE_INVALID = 3501, "sealed state does not open";

    /// 3xxx processing: the manufacturing box has no box IDs of that type left.
    ID_RANGE_EXHAUSTED = 3601, "no box IDs of that type left in this manufacturing box's range";
    /// 3xxx processing: durable storage failed (file or database).
    STORAGE_FAILED = 3602, "durable storage failed";
    /// 3xxx processing: the archive holds no such record.
    ARCHIVE_NOT_FOUND = 3650, "archive record not found";
    /// 3xxx processing: the archive holds this record already; IDs are never reused.
    ARCHIVE_DUPLICATE = 3651, "archive record already exists";
    /// 3xxx processing: a set-once field of an archive record already holds another value.
    ARCHIVE_FIELD_ALREADY_SET = 3652, "archive field already set: history is never rewritten";
    /// 3xxx processing: the change needs a field that is neither given nor recorded.
    ARCHIVE_MISSING_FIELD = 3653, "a field the archive change needs is missing";
    /// 3xxx processing: a value of another security domain or of the wrong box type.
    ARCHIVE_MISMATCH = 3654, "archive record of another domain or box type";
    /// 3xxx processing: the archive refused a value that breaks one of its rules.
    ARCHIVE_INVALID = 3655, "archive record invalid";
    /// 3xxx processing: the archive's backend cannot be reached or failed.
    ARCHIVE_UNAVAILABLE = 3660, "archive unavailable";
    /// 3xxx processing: the archive's backend is busy; the call may be retried.
    ARCHIVE_BUSY = 3661, "archive busy: retry later";
    /// 3xxx processing: a hash chain of the audit trail does not verify.
    ARCHIVE_CHAIN_BROKEN = 3670, "archive hash chain does not verify";
    /// 3xxx processing: the archive's schema is newer than this build knows.
    ARCHIVE_SCHEMA_TOO_NEW = 3671, "archive schema newer than this build";
    /// 3xxx processing: a stored value does not parse as its type.
    ARCHIVE_CORRUPT = 3672, "archive holds a malformed value";

    /// 4xxx box state: the box is locked.
    BOX_LOCKED = 4001, "box is locked: present its shares to enable it";
    /// 4xxx box state: the box is in its error state.
    BOX_ERROR_STATE = 4002, "box is in its error state";
    /// 4xxx box state: a power-up self-test failed; the box is in its error state.
    SELF_TEST_FAILED = 4003, "power-up self-test failed";
    /// 4xxx box state: the box's state version is older than the highest recorded.
    STATE_ROLLBACK = 4004, "box state version went backwards: an old state was restored";
    /// 4xxx box state: the box has no ID yet.
    BOX_NOT_INITIALIZED = 4005, "box is not initialized";
    /// 4xxx box state: the box already has an ID.
    BOX_ALREADY_INITIALIZED = 4006, "box is already initialized";
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
