use core::fmt;

/// A four-digit response code (protocol §9), the same number in the error log, in a box's answer, in
/// the CLI's JSON and over HTTP. The ranges and every code are listed in `docs/response-codes.md`;
/// the table in that file is checked against [`ResponseCode::ALL`] by a test.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResponseCode(pub u16);

/// Whose fault a refusal is: what an operator (or the CLI's exit code) does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The other party sent something malformed, forged, replayed or out of protocol.
    Peer,
    /// The request itself is wrong: not allowed here, unknown, or in conflict with what exists.
    /// The same request fails again; the CLI exits 2 (usage).
    Caller,
    /// A box or the system is not in a state to do it (locked, error state, rolled back).
    State,
    /// A resource failed or is busy (storage, database, entropy, capacity); a retry may work.
    Resource,
    /// Stored data was altered or is corrupt; an operator must look.
    Integrity,
}

impl Fault {
    /// The name used in the documentation and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Caller => "caller",
            Self::State => "state",
            Self::Resource => "resource",
            Self::Integrity => "integrity",
        }
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $fault:ident, $text:literal;)*) => {
        impl ResponseCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*
            /// Every code this build defines, with whose fault it is and its one-line meaning.
            pub const ALL: &'static [(Self, Fault, &'static str)] =
                &[$((Self::$name, Fault::$fault, $text)),*];
        }
    };
}

codes! {
    /// 1xxx link: a frame was malformed.
    LINK_FRAME_MALFORMED = 1001, Peer, "link frame malformed (markers, class code or length)";
    /// 1xxx link: the frame's CRC-32C did not match.
    LINK_CRC_MISMATCH = 1002, Peer, "link frame CRC-32C mismatch";
    /// 1xxx link: the peer did not acknowledge within the bounded retries.
    LINK_RETRIES_EXHAUSTED = 1003, Resource, "link retries exhausted";

    /// 2xxx command: the command is not one this component knows.
    UNKNOWN_COMMAND = 2001, Peer, "unknown command";
    /// 2xxx command: wrong number of parameters.
    PARAMETER_COUNT = 2002, Peer, "wrong number of parameters";
    /// 2xxx command: a parameter or field does not parse.
    PARAMETER_SYNTAX = 2003, Peer, "parameter syntax: malformed field or encoding";
    /// 2xxx command: input past the documented size limit.
    MESSAGE_TOO_LARGE = 2004, Peer, "message exceeds its size limit";
    /// 2xxx command: bytes after the end of the value.
    TRAILING_BYTES = 2005, Peer, "trailing bytes after the message";
    /// 2xxx command: not the canonical encoding (unknown, duplicate or reordered fields).
    NON_CANONICAL = 2006, Peer, "non-canonical encoding (unknown, duplicate or reordered fields)";
    /// 2xxx command: a version this build does not speak.
    UNSUPPORTED_VERSION = 2007, Peer, "unsupported record version";
    /// 2xxx command: another record type than expected.
    WRONG_RECORD_TYPE = 2008, Peer, "unexpected record type";
    /// 2xxx command: an answer of another command, or another number of items than sent.
    ANSWER_MISMATCH = 2009, Peer, "answer does not match its command (another command or number of items)";
    /// 2xxx command: an argument that parses but is not allowed (a count out of bounds, say).
    INVALID_ARGUMENT = 2010, Caller, "invalid argument";

    /// 3xxx processing: command outside this component's command table.
    COMMAND_NOT_IN_TABLE = 3001, Caller, "command not in this component's configuration table";
    /// 3xxx processing: domain outside this component's domain table.
    DOMAIN_NOT_IN_TABLE = 3002, Caller, "domain not in this component's configuration table";
    /// 3xxx processing: record type outside this component's record table.
    RECORD_NOT_IN_TABLE = 3003, Caller, "record type not in this component's configuration table";
    /// 3xxx processing: a record addressed to another box.
    RECORD_NOT_FOR_THIS_BOX = 3004, Peer, "record addressed to another box";
    /// 3xxx processing: an answer bound to another nonce (or replayed).
    NONCE_MISMATCH = 3005, Peer, "nonce does not match the one offered";
    /// 3xxx processing: keys or a record meant for another box type.
    WRONG_BOX_TYPE = 3006, Caller, "keys or record meant for another box type";
    /// 3xxx processing: a box ID certified a second time.
    ALREADY_CERTIFIED = 3007, Caller, "box ID already certified";
    /// 3xxx processing: a domain this box does not know.
    UNKNOWN_DOMAIN = 3008, Caller, "domain unknown to this box";
    /// 3xxx processing: a configuration update not newer than the last applied.
    STALE_UPDATE = 3009, Peer, "configuration update not newer than the last applied (replay)";
    /// 3xxx processing: a domain that already exists.
    DOMAIN_EXISTS = 3010, Caller, "domain already exists";
    /// 3xxx processing: the first ceremony was already run in this home.
    FIRST_CEREMONY_DONE = 3011, Caller, "the first manufacturing box already exists here";
    /// 3xxx processing: a box named for a domain has no process of it.
    NOT_CERTIFIED_FOR_DOMAIN = 3012, Caller, "box not certified for the domain (no process of it)";
    /// 3xxx processing: a message about an installation this box is not running.
    NO_INSTALL_IN_FLIGHT = 3013, Peer, "no installation in flight for this key and meter";
    /// 3xxx processing: an installation is already in flight in this box.
    INSTALL_IN_FLIGHT = 3015, State, "an interrupted installation awaits RECOVER in this box";
    /// 3xxx processing: a Steel box holds as many installations in flight as it may.
    TOO_MANY_IN_FLIGHT = 3016, Resource, "too many installations in flight in this box";
    /// 3xxx processing: a process of a domain whose kind this box type does not serve (a Tin box
    /// serves postal domains only).
    DOMAIN_KIND_NOT_SERVED = 3017, Caller, "this box type serves no domain of that kind (Tin: postal domains only)";
    /// 3xxx processing: no box of that ID in this deployment.
    UNKNOWN_BOX = 3020, Caller, "no such box";
    /// 3xxx processing: no meter of that ID.
    UNKNOWN_METER = 3021, Caller, "no such meter";
    /// 3xxx processing: no box of the type a command needs serves the domain.
    NO_BOX_SERVES = 3022, Caller, "no box of the needed type serves the domain";
    /// 3xxx processing: the meter an installation names is not on the Steel box's meter link.
    METER_NOT_CONNECTED = 3023, Caller, "meter not connected to the Steel box's meter link";
    METER_HOLDS_KEY = 3024, Caller, "the meter holds a live (`New`, `Installed`, `Active`) key of that role already, from another domain or another order of the batch";
    /// 3xxx processing: the meter is registered already, with other data (sub-domain, ISN,
    /// country or date); an identical registration succeeds and changes nothing.
    METER_REGISTERED = 3025, Caller, "meter registered already, with other data: a registered meter never moves";
    /// 3xxx processing: the meter was withdrawn; it is never registered or keyed again.
    METER_WITHDRAWN = 3026, Caller, "meter withdrawn: it is never registered or keyed again";
    /// 3xxx processing: the Brass process does not serve that sub-domain.
    SUBDOMAIN_NOT_SERVED = 3030, Caller, "sub-domain not served by this box's process (Brass, Tin)";
    /// 3xxx processing: a sub-domain of another domain than the key's, or of another country
    /// than the registration's.
    SUBDOMAIN_MISMATCH = 3031, Caller, "sub-domain of another domain than the key's, or of another country than the registration's";
    /// 3xxx processing: the ISN is registered to another meter in that sub-domain.
    ISN_TAKEN = 3032, Caller, "ISN already registered to another meter in that sub-domain";
    /// 3xxx processing: records that should describe one key do not match.
    RECORD_MISMATCH = 3014, Peer, "records do not match (domain, key ID, boxes or meter)";
    /// 3xxx processing: a signature did not verify.
    BAD_SIGNATURE = 3100, Peer, "signature verification failed";
    /// 3xxx processing: a MAC did not verify.
    BAD_MAC = 3101, Peer, "MAC verification failed";
    /// 3xxx processing: a registration token that the key does not make over the data given.
    REGISTRATION_TOKEN_MISMATCH = 3105, Peer, "registration token does not match the key and the registration data";
    /// 3xxx processing: a ciphertext did not decrypt or unwrap.
    DECRYPTION_FAILED = 3102, Peer, "decryption or key unwrap failed";
    /// 3xxx processing: a share is malformed, forged or not this box's.
    SHARE_INVALID = 3110, Caller, "share invalid (signature, owner or form)";
    /// 3xxx processing: shares of different sets, or duplicates, were presented.
    SHARE_SET_MISMATCH = 3111, Caller, "shares of different sets, or a duplicated share";
    /// 3xxx processing: fewer distinct shares than the threshold.
    SHARE_QUORUM_NOT_MET = 3112, Caller, "fewer distinct shares than the threshold";
    /// 3xxx processing: the recombined secret fails its check value.
    SHARE_CHECK_FAILED = 3113, Caller, "recombined secret fails its check value";
    /// 3xxx processing: a key record names an ID its domain archive never allocated.
    KEY_ID_NOT_ALLOCATED = 3210, Caller, "key ID never allocated by the domain archive";
    /// 3xxx processing: the key ID was burned (allocated, never a key) and never becomes one.
    KEY_ID_BURNED = 3211, Caller, "key ID burned: allocated but never a key";
    /// 3xxx processing: a time earlier than one already recorded for the key (protocol §6.6).
    TIME_WENT_BACKWARDS = 3310, Caller, "time earlier than one already recorded for the key, or a KMS clock more than five minutes behind the archive's latest time";
    /// 3xxx processing: a key status change that protocol §6.4 does not allow.
    TRANSITION_NOT_ALLOWED = 3400, Caller, "key status transition not allowed";
    /// 3xxx processing: the key is not in the expected status; another writer changed it first.
    STATUS_CONFLICT = 3401, State, "key not in the expected status: changed by another writer";
    /// 3xxx processing: test tokens that do not match.
    TEST_TOKENS_MISMATCH = 3104, Peer, "test tokens do not match";
    /// 3xxx processing: a key ID not greater than the last processed.
    KEY_ID_NOT_FRESH = 3201, Peer, "key ID not greater than the last processed for the domain (replay)";
    /// 3xxx processing: a key ID too far above the last processed.
    KEY_ID_BEYOND_WINDOW = 3202, Peer, "key ID too far above the last processed for the domain";
    /// 3xxx processing: the random number generator failed its health tests.
    RNG_FAILURE = 3500, Resource, "random number generator failure: no key made";
    /// 3xxx processing: a sealed state does not open (altered, truncated, wrong key).
    SEALED_STATE_INVALID = 3501, Integrity, "sealed state does not open";

    /// 3xxx processing: the manufacturing box has no box IDs of that type left.
    ID_RANGE_EXHAUSTED = 3601, Resource, "no box IDs of that type left in this manufacturing box's range";
    /// 3xxx processing: durable storage failed (file or database).
    STORAGE_FAILED = 3602, Resource, "durable storage failed";
    /// 3xxx processing: the home holds no first ceremony yet.
    HOME_NOT_INITIALIZED = 3603, Caller, "home not initialized: run `postkey init` first";
    /// 3xxx processing: a file of the home does not decode or does not verify.
    HOME_FILE_CORRUPT = 3604, Integrity, "a file of the home is missing, or does not decode or verify";
    /// 3xxx processing: another command holds the home.
    HOME_BUSY = 3605, Resource, "home busy: another command is changing it";
    /// 3xxx processing: a meter's piece counter cannot go further.
    PIECE_COUNTER_EXHAUSTED = 3606, Resource, "the meter's piece counter is exhausted: it prints no more";
    /// 3xxx processing: the archive holds no such record.
    ARCHIVE_NOT_FOUND = 3650, Caller, "archive record not found";
    /// 3xxx processing: the archive holds this record already; IDs are never reused.
    ARCHIVE_DUPLICATE = 3651, Caller, "archive record already exists";
    /// 3xxx processing: a set-once field of an archive record already holds another value.
    ARCHIVE_FIELD_ALREADY_SET = 3652, Caller, "archive field already set: history is never rewritten";
    /// 3xxx processing: the change needs a field that is neither given nor recorded.
    ARCHIVE_MISSING_FIELD = 3653, Caller, "a field the archive change needs is missing";
    /// 3xxx processing: a value of another security domain or of the wrong box type.
    ARCHIVE_MISMATCH = 3654, Caller, "archive record of another domain or box type";
    /// 3xxx processing: the archive refused a value that breaks one of its rules.
    ARCHIVE_INVALID = 3655, Caller, "archive record invalid";
    /// 3xxx processing: the archive's backend cannot be reached or failed.
    ARCHIVE_UNAVAILABLE = 3660, Resource, "archive unavailable";
    /// 3xxx processing: the archive's backend is busy; the call may be retried.
    ARCHIVE_BUSY = 3661, Resource, "archive busy: retry later";
    /// 3xxx processing: a hash chain of the audit trail does not verify.
    ARCHIVE_CHAIN_BROKEN = 3670, Integrity, "archive hash chain does not verify";
    /// 3xxx processing: the archive's schema is newer than this build knows.
    ARCHIVE_SCHEMA_TOO_NEW = 3671, State, "archive schema newer than this build";
    /// 3xxx archive: a change asked of an archive opened read-only (a bug of the caller).
    ARCHIVE_READ_ONLY = 3674, Caller, "archive opened read-only: no change is made";
    /// 3xxx archive: a read-only open of an archive this build would migrate first.
    ARCHIVE_SCHEMA_TOO_OLD = 3675, State, "archive schema older than this build: a command that writes upgrades it";
    /// 3xxx processing: a signed record the archive holds does not verify.
    ARCHIVE_RECORD_INVALID = 3673, Integrity, "archive holds a signed record that does not verify";
    /// 3xxx processing: a stored value does not parse as its type.
    ARCHIVE_CORRUPT = 3672, Integrity, "archive holds a malformed value";
    /// 3xxx archive: the bounded check at open found a chain, a checkpoint or the key-ID
    /// accounting broken.
    ARCHIVE_DAMAGED = 3677, Integrity, "the archive fails the integrity check a writing command runs at open: see `postkey audit verify`";
    /// 3xxx archive: a chain shorter than, or forking from, the last checkpoint a Brass box
    /// signed of it (an older archive put back, or its history rewritten).
    ARCHIVE_BEHIND_CHECKPOINT = 3676, Integrity, "archive chain behind or forking from its last signed checkpoint: an older archive was put back or its history rewritten";

    /// 5xxx verification: the token is not the key's over these mailpiece fields.
    TOKEN_BAD = 5001, Peer, "token does not verify: forged, or a field of the mailpiece altered";
    /// 5xxx verification: no meter is registered under the ISN in the sub-domain.
    ISN_NOT_REGISTERED = 5002, Peer, "no meter registered under this ISN in this sub-domain";
    /// 5xxx verification: the key exists but is not `Active` (not registered, or `Bad`).
    KEY_NOT_ACTIVE = 5003, Peer, "the meter's key is not Active: not registered, or failed";
    /// 5xxx verification: the meter was withdrawn.
    KEY_OBSOLETE = 5004, Peer, "the meter was withdrawn: its key is Obsolete";
    /// 5xxx verification: mailed before the meter was registered.
    DATE_BEFORE_REGISTRATION = 5005, Peer, "mailing date before the UTC day the meter's key was registered";
    /// 5xxx verification: the indicium does not parse, or a field has more than one error.
    INDICIUM_MALFORMED = 5006, Peer, "indicium malformed: unreadable, or a field with more than one wrong character";
    /// 5xxx verification: the meter's piece count was seen before.
    DUPLICATE_PIECE = 5007, Peer, "duplicate: this meter's piece count was verified before (a copied indicium)";
    /// 5xxx verification: a Tin box cannot answer for the mailpiece's sub-domain or month.
    NOT_EXPORTED = 5008, Caller, "not exported: the Tin box holds no export of the mailpiece's sub-domain and month";

    /// 3xxx state: a Tin export not newer than one the Tin box holds (or took) for its
    /// sub-domain and month, of a month outside the window or let go of, or of a time after
    /// the box's clock.
    TIN_EXPORT_STALE = 3034, Peer, "Tin export not newer than the one held for that sub-domain and month, or of a month or time outside the window (replay)";
    /// 3xxx state: a Tin box asked about a sub-domain and month it holds no export of.
    TIN_NOT_EXPORTED = 3035, Caller, "the Tin box holds no complete export of that sub-domain and month";
    /// 3xxx resource: a Tin box would hold more token keys than its bound.
    TIN_FULL = 3036, Resource, "the Tin box would hold more token keys than it takes";
    /// 3xxx processing: a meter asked to print before it was registered.
    METER_NOT_REGISTERED = 3033, Caller, "meter not registered: it prints no indicium before `factory register`";

    /// 4xxx box state: the box is locked.
    BOX_LOCKED = 4001, State, "box is locked: present its shares to enable it";
    /// 4xxx box state: the box is in its error state.
    BOX_ERROR_STATE = 4002, State, "box is in its error state";
    /// 4xxx box state: a power-up self-test failed; the box is in its error state.
    SELF_TEST_FAILED = 4003, State, "power-up self-test failed";
    /// 4xxx box state: the box's state version is older than the highest recorded.
    STATE_ROLLBACK = 4004, Integrity, "box state version went backwards: an old state was restored";
    /// 4xxx box state: the box has no ID yet.
    BOX_NOT_INITIALIZED = 4005, State, "box is not initialized";
    /// 4xxx box state: the box already has an ID.
    BOX_ALREADY_INITIALIZED = 4006, State, "box is already initialized";
    /// 4xxx box state: another command has the box enabled.
    BOX_IN_USE = 4007, State, "box in use by another command";
    /// 4xxx box state: the box belongs to another installation than the archive's.
    INSTALLATION_MISMATCH = 4008, Integrity, "box and archive belong to different installations";
}

impl ResponseCode {
    /// The class named by the first digit (protocol §9).
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
        Self::ALL.iter().find(|(c, ..)| *c == self).map(|(.., t)| *t)
    }

    /// Whose fault a refusal with this code is; an unknown code counts as the peer's.
    pub fn fault(self) -> Fault {
        Self::ALL.iter().find(|(c, ..)| *c == self).map_or(Fault::Peer, |(_, f, _)| *f)
    }
}

impl<C> minicbor::Encode<C> for ResponseCode {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.u16(self.0)?;
        Ok(())
    }
}

impl<'b, C> minicbor::Decode<'b, C> for ResponseCode {
    fn decode(d: &mut minicbor::Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        Ok(Self(d.u16()?))
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
        for (code, _, text) in ResponseCode::ALL {
            assert!((1000..=5999).contains(&code.0), "{code}");
            assert_ne!(code.class(), "unknown");
            assert!(seen.insert(code.0), "duplicate {code}");
            assert!(!text.is_empty());
        }
    }

    #[test]
    fn the_published_table_lists_every_code() {
        let doc = include_str!("../../../docs/response-codes.md");
        for (code, fault, text) in ResponseCode::ALL {
            let row = format!("| {code} | {} | {text} |", fault.name());
            assert!(doc.contains(&row), "docs/response-codes.md lacks the row `{row}`");
        }
    }
}
