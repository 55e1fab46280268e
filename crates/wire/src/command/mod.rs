//! The box protocol: every command a box accepts and every answer it gives, as typed values
//! (protocol §9 levels 2 and 3). The KMS computer builds a [`Command`], a box link carries it as
//! bytes, the box's host decodes it once and hands it to the box's dispatcher, and the
//! [`Response`] comes back the same way. Nothing behind the codec sees a byte list.
//!
//! ```text
//!  KMC                         box link (bytes)                      box host      box
//!  Command::GenerateKey(items) ──to_bytes──► frame ──from_bytes──► Command ──► dispatch
//!                                                                               │ one commit
//!  Vec<Outcome<Generated>> ◄──answers── Response ◄──reply_from_bytes── frame ◄──┘ per batch
//! ```
//!
//! Every command is a batch: a list of items, each answered on its own by an [`Outcome`] (the
//! answer, or that item's [`Refusal`]), with one durable write of the box's state before any
//! answer leaves (protocol §6.1). A refusal of the whole command (locked box, command outside the
//! table) replaces the list.
//!
//! On the wire (deterministic CBOR, re-encoded and compared on decode):
//!
//! ```text
//!  command = {0: code, 1: version, 2: [item, …]}
//!  reply   = {0: code, 1: version, 2: [outcome, …], 4: state version}
//!          or {0: code, 1: version, 3: refusal}
//!  item, answer = {0: field, 1: field, …}     one entry per field, in order
//!  outcome = {0: answer}  or  {1: refusal}     refusal = {0: response code, 1: message}
//! ```
//!
//! Command codes are open: an unknown code decodes to [`WireError::UnknownCommand`] (2001), a
//! wrong number of fields to [`WireError::ParameterCount`] (2002), a field that does not parse to
//! 2003, a frame or list past its limit to 2004. Each box still checks its own command table
//! (3001) and record table (3003) at run time (protocol §8); the initial tables are derived from
//! [`CommandCode::box_types`] and [`CommandCode::record_types`].
//!
//! Adding a command: one line in the table below (code, item type, answer type, box types,
//! record types) and its item type in `items.rs`; the box's dispatcher then does not compile
//! until it has an arm for it, and the caller uses [`BoxRequest`].

mod items;
pub(crate) mod param;
mod pieces;

use core::fmt;

use minicbor::{Decode, Decoder, Encode};

pub use items::{
    AdoptDomain, AttestState, Certify, CheckInstall, Checked, CheckpointChain, Checkpointed,
    Confirmed, CreateDomain, Deliver, Delivered, Done, ExportTokenKeys, GenerateKey, Generated,
    ImportTinExport, InstallCertificate, InstallEnded, InstallKey, InstallKit, InstallProcess,
    IssueKit, IssueSetId, PieceToken, Recover, Register, Registered, SelfTest, SignTables,
    SignTranscript, TinImported, TinVerdicts, TinVerify, UpdateTables, Verdicts, Verify, VerifyKey,
    Withdraw,
};
pub use param::MAX_LIST;
pub use pieces::{PIECE_RECORD_LEN, TokenBits, VerifyPiece, VerifyPieces};

use param::{Enc, Param, take_key};

use crate::{
    BoxType, Certificate, DomainBundle, Kit, RecordType, ResponseCode, SetId, StateAttestation,
    StateVersion, TableUpdate, TinExport, Transcript, Unverified, WireError, Withdrawn,
};

/// The largest command or reply frame: a batch of [`MAX_LIST`] items of a few kilobytes each.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The longest refusal message, in bytes; longer ones are cut.
pub const MAX_REFUSAL_MESSAGE: usize = 1024;

/// A command code: an open code point, listed in each component's command table (protocol §8).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
#[cbor(transparent)]
pub struct CommandCode(#[n(0)] pub u16);

impl CommandCode {
    /// The name of a known command.
    pub fn name(self) -> Option<&'static str> {
        Self::KNOWN.iter().find(|(c, _)| *c == self).map(|(_, n)| *n)
    }
}

impl fmt::Debug for CommandCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "CommandCode({n})"),
            None => write!(f, "CommandCode(0x{:04X})", self.0),
        }
    }
}

impl fmt::Display for CommandCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "command 0x{:04X}", self.0),
        }
    }
}

/// A refusal as it crosses a link: its response code and a message that never carries a secret
/// (at most [`MAX_REFUSAL_MESSAGE`] bytes; a longer one is refused by the decoder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as a documented response code.
    pub code: ResponseCode,
    /// Why, in words.
    pub message: String,
}

impl Param for Refusal {
    fn put(&self, e: &mut Enc) {
        let _ = e.map(2).and_then(|e| e.u8(0)).and_then(|e| e.u16(self.code.0));
        let _ = e.u8(1).and_then(|e| e.str(&self.message));
    }

    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        param::take_map_head(d, 2)?;
        take_key(d, 0)?;
        let code = ResponseCode(d.u16()?);
        take_key(d, 1)?;
        let message = d.str()?;
        if message.len() > MAX_REFUSAL_MESSAGE {
            return Err(WireError::TooLarge { len: message.len(), max: MAX_REFUSAL_MESSAGE });
        }
        Ok(Self { code, message: message.to_owned() })
    }
}

impl Refusal {
    /// A refusal with `code`, its message cut to [`MAX_REFUSAL_MESSAGE`] bytes.
    pub fn new(code: ResponseCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_REFUSAL_MESSAGE {
            let mut end = MAX_REFUSAL_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self { code, message }
    }
}

// The message alone: whoever prints a refusal to a person adds its code once.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for Refusal {}

/// A box's answers to a command and the version of its sealed state once they were made durable:
/// what the KMS computer records in the archive in the same transaction as the records the
/// command produced, so that a state restored from before the command is caught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The answers, one per item.
    pub response: Response,
    /// The box's state version after the command.
    pub state_version: StateVersion,
}

/// One item's answer: what the box made, or why it refused that item.
pub type Outcome<A> = Result<A, Refusal>;

impl<A: Param> Param for Outcome<A> {
    fn put(&self, e: &mut Enc) {
        let _ = e.map(1);
        match self {
            Ok(a) => {
                let _ = e.u8(0);
                a.put(e);
            }
            Err(r) => {
                let _ = e.u8(1);
                r.put(e);
            }
        }
    }

    fn take(d: &mut Decoder<'_>) -> Result<Self, WireError> {
        param::take_map_head(d, 1)?;
        match d.u8()? {
            0 => Ok(Ok(A::take(d)?)),
            1 => Ok(Err(Refusal::take(d)?)),
            _ => Err(WireError::Malformed("an outcome is {0: answer} or {1: refusal}".into())),
        }
    }
}

/// A command's item type, tied to its command and its answer: what the KMC (or a ceremony)
/// sends, and what it gets back, checked to be of the same command.
pub trait BoxRequest: Sized {
    /// What the box answers for one item.
    type Answer;
    /// The command.
    const CODE: CommandCode;
    /// A batch of items as a command.
    fn batch(items: Vec<Self>) -> Command;
    /// The answers of a response to this command; a response of another command is refused.
    fn answers(response: Response) -> Result<Vec<Outcome<Self::Answer>>, WireError>;
}

/// The table of commands. Each line: the code's name and number and its name in words, the
/// variant, its item type and answer type, the version, the box types that have it and the
/// record types its items carry (the initial configuration tables, protocol §8).
macro_rules! box_commands {
    ($(
        $(#[$doc:meta])*
        $code:ident = $value:literal, $text:literal,
        $variant:ident($item:ty) -> $answer:ty, version $version:literal,
        boxes [$($t:ident),*], records [$($r:ident),*];
    )*) => {
        impl CommandCode {
            $($(#[$doc])* pub const $code: Self = Self($value);)*

            /// Every command this build knows, with its name.
            pub const KNOWN: &'static [(Self, &'static str)] = &[$((Self::$code, $text)),*];

            /// The box types that have this command; none for an unknown code.
            pub fn box_types(self) -> &'static [BoxType] {
                match self {
                    $(Self::$code => &[$(BoxType::$t),*],)*
                    _ => &[],
                }
            }

            /// The record types this command's items carry, which the box's record table must
            /// list; none for an unknown code.
            pub fn record_types(self) -> &'static [RecordType] {
                match self {
                    $(Self::$code => &[$(RecordType::$r),*],)*
                    _ => &[],
                }
            }

            /// The version of the command this build speaks.
            pub fn version(self) -> Option<u16> {
                match self {
                    $(Self::$code => Some($version),)*
                    _ => None,
                }
            }
        }

        /// A command to a box: one variant per command code, each a batch of items.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Command {
            $($(#[$doc])* $variant(Vec<$item>),)*
        }

        /// A box's answers to a command, one per item, in order.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Response {
            $($(#[$doc])* $variant(Vec<Outcome<$answer>>),)*
        }

        impl Command {
            /// The command's code.
            pub fn code(&self) -> CommandCode {
                match self {
                    $(Self::$variant(_) => CommandCode::$code,)*
                }
            }

            /// How many items the batch holds.
            pub fn len(&self) -> usize {
                match self {
                    $(Self::$variant(items) => items.len(),)*
                }
            }

            fn put_items(&self, e: &mut Enc) {
                match self {
                    $(Self::$variant(items) => items.put(e),)*
                }
            }

            fn take_items(code: CommandCode, d: &mut Decoder<'_>) -> Result<Self, WireError> {
                match code {
                    $(CommandCode::$code => Ok(Self::$variant(Param::take(d)?)),)*
                    other => Err(WireError::UnknownCommand(other)),
                }
            }
        }

        impl Response {
            /// The code of the command this answers.
            pub fn code(&self) -> CommandCode {
                match self {
                    $(Self::$variant(_) => CommandCode::$code,)*
                }
            }

            /// How many answers it holds.
            pub fn len(&self) -> usize {
                match self {
                    $(Self::$variant(answers) => answers.len(),)*
                }
            }

            /// The refusals among the answers, with each item's place.
            pub fn refusals(&self) -> Vec<(usize, &Refusal)> {
                match self {
                    $(Self::$variant(answers) => answers
                        .iter()
                        .enumerate()
                        .filter_map(|(i, a)| a.as_ref().err().map(|r| (i, r)))
                        .collect(),)*
                }
            }

            fn put_answers(&self, e: &mut Enc) {
                match self {
                    $(Self::$variant(answers) => answers.put(e),)*
                }
            }

            fn take_answers(code: CommandCode, d: &mut Decoder<'_>) -> Result<Self, WireError> {
                match code {
                    $(CommandCode::$code => Ok(Self::$variant(Param::take(d)?)),)*
                    other => Err(WireError::UnknownCommand(other)),
                }
            }
        }

        $(
            impl BoxRequest for $item {
                type Answer = $answer;
                const CODE: CommandCode = CommandCode::$code;

                fn batch(items: Vec<Self>) -> Command {
                    Command::$variant(items)
                }

                fn answers(response: Response) -> Result<Vec<Outcome<$answer>>, WireError> {
                    match response {
                        Response::$variant(answers) => Ok(answers),
                        #[allow(unreachable_patterns)]
                        _ => Err(WireError::AnswerMismatch("the answer is of another command")),
                    }
                }
            }
        )*
    };
}

box_commands! {
    /// Any box: run the power-up self-tests again.
    SELF_TEST = 0x0001, "self-test",
        SelfTest(SelfTest) -> Done, version 1,
        boxes [Manufacturing, Oak, Steel, Brass, Tin], records [];
    /// Any box: sign the state version over a nonce.
    ATTEST_STATE = 0x0002, "attest-state",
        AttestState(AttestState) -> Unverified<StateAttestation>, version 1,
        boxes [Manufacturing, Oak, Steel, Brass, Tin], records [];
    /// Any box: apply a configuration-table update.
    UPDATE_TABLES = 0x0003, "update-tables",
        UpdateTables(UpdateTables) -> Done, version 1,
        boxes [Manufacturing, Oak, Steel, Brass, Tin], records [TABLE_UPDATE];
    /// Oak, Steel, Brass, Tin: install a domain process from a delivery.
    INSTALL_PROCESS = 0x0004, "install-process",
        InstallProcess(InstallProcess) -> Done, version 1,
        boxes [Oak, Steel, Brass, Tin], records [DELIVERY];
    /// Any box: install its own certificate.
    INSTALL_CERTIFICATE = 0x0005, "install-certificate",
        InstallCertificate(InstallCertificate) -> Done, version 1,
        boxes [Manufacturing, Oak, Steel, Brass, Tin], records [CERTIFICATE];
    /// Manufacturing: give a blank box its ID.
    ISSUE_SET_ID = 0x0101, "issue-set-id",
        IssueSetId(IssueSetId) -> Unverified<SetId>, version 1,
        boxes [Manufacturing], records [BLANK_NONCE];
    /// Manufacturing: certify a new box's keys.
    CERTIFY = 0x0102, "certify",
        Certify(Certify) -> Unverified<Certificate>, version 1,
        boxes [Manufacturing], records [BOX_KEYS];
    /// Manufacturing: create a security domain.
    CREATE_DOMAIN = 0x0103, "create-domain",
        CreateDomain(CreateDomain) -> Unverified<DomainBundle>, version 1,
        boxes [Manufacturing], records [];
    /// Manufacturing: deliver a domain's keys to a box.
    DELIVER = 0x0104, "deliver",
        Deliver(Deliver) -> Delivered, version 1,
        boxes [Manufacturing], records [DOMAIN_BUNDLE, CERTIFICATE];
    /// Manufacturing: adopt a domain created by another manufacturing box.
    ADOPT_DOMAIN = 0x0105, "adopt-domain",
        AdoptDomain(AdoptDomain) -> Done, version 1,
        boxes [Manufacturing], records [DOMAIN_BUNDLE];
    /// Manufacturing: equip a new manufacturing box.
    ISSUE_KIT = 0x0106, "issue-kit",
        IssueKit(IssueKit) -> Unverified<Kit>, version 1,
        boxes [Manufacturing], records [CERTIFICATE];
    /// Manufacturing: sign a configuration-table update for a box.
    SIGN_TABLES = 0x0107, "sign-tables",
        SignTables(SignTables) -> Unverified<TableUpdate>, version 1,
        boxes [Manufacturing], records [];
    /// Manufacturing: sign a ceremony transcript.
    SIGN_TRANSCRIPT = 0x0108, "sign-transcript",
        SignTranscript(SignTranscript) -> Unverified<Transcript>, version 1,
        boxes [Manufacturing], records [];
    /// A new manufacturing box: install its kit.
    INSTALL_KIT = 0x0109, "install-kit",
        InstallKit(InstallKit) -> Done, version 1,
        boxes [Manufacturing], records [KIT];
    /// Oak: generate a master key (MI1 → MI2).
    GENERATE_KEY = 0x0201, "generate-key",
        GenerateKey(GenerateKey) -> Generated, version 1,
        boxes [Oak], records [MI1, CERTIFICATE, PROCESS];
    /// Steel: install a master key into a meter (MI4 → MI5, MI6 → MI7 or ABORTED).
    INSTALL_KEY = 0x0301, "install-key",
        InstallKey(InstallKey) -> InstallEnded, version 1,
        boxes [Steel], records [MI4, MI6];
    /// Steel: sign ABORTED for installations a stop interrupted, and answer again how each
    /// installation of its last batch ended.
    RECOVER = 0x0302, "recover",
        Recover(Recover) -> Vec<InstallEnded>, version 2,
        boxes [Steel], records [];
    /// Brass: check an installation (MI8 → MI9 and MI10, or BAD).
    CHECK_INSTALL = 0x0401, "check-install",
        CheckInstall(CheckInstall) -> Checked, version 1,
        boxes [Brass], records [MI8, MI3, MI7];
    /// Brass: register a key into a sub-domain it serves (MR2 → MR3 and MR4).
    REGISTER = 0x0402, "register",
        Register(Register) -> Registered, version 1,
        boxes [Brass], records [MR2, MR1, MI9];
    /// Brass: withdraw a meter's key (→ WITHDRAW).
    WITHDRAW = 0x0403, "withdraw",
        Withdraw(Withdraw) -> Unverified<Withdrawn>, version 1,
        boxes [Brass], records [MI9];
    /// Brass: recompute mailpieces' tokens with a registered key (MR3).
    VERIFY = 0x0404, "verify",
        Verify(Verify) -> Verdicts, version 2,
        boxes [Brass], records [MR3];
    /// Brass: one chunk of a month's token keys, sealed to a Tin box (→ TINEXPORT).
    EXPORT_TOKEN_KEYS = 0x0405, "export-token-keys",
        ExportTokenKeys(ExportTokenKeys) -> Unverified<TinExport>, version 1,
        boxes [Brass], records [MR3, CERTIFICATE, PROCESS];
    /// Brass with the `ADMIN` process: sign a checkpoint of an audit chain.
    CHECKPOINT = 0x0501, "checkpoint",
        Checkpoint(CheckpointChain) -> Checkpointed, version 1,
        boxes [Brass], records [];
    /// Tin: take one chunk of a Tin export.
    IMPORT_TIN_EXPORT = 0x0601, "import-tin-export",
        ImportTinExport(ImportTinExport) -> TinImported, version 1,
        boxes [Tin], records [TIN_EXPORT];
    /// Tin: recompute postal tokens from an export's token keys.
    TIN_VERIFY = 0x0602, "tin-verify",
        TinVerify(TinVerify) -> TinVerdicts, version 1,
        boxes [Tin], records [];
}

// The frame: {0: code, 1: version, 2: list}; a reply adds {4: state version}, or for a refused
// command is {0: code, 1: version, 3: refusal}.
const ITEMS: u8 = 2;
const REFUSED: u8 = 3;
const STATE_VERSION: u8 = 4;

fn put_head(e: &mut Enc, entries: u64, code: CommandCode) {
    let _ = e.map(entries).and_then(|e| e.u8(0)).and_then(|e| e.u16(code.0)).and_then(|e| e.u8(1));
    let _ = e.u16(code.version().unwrap_or(0));
}

/// Reads the head of a frame: its code, known to this build, at the version this build speaks.
fn take_head(d: &mut Decoder<'_>) -> Result<CommandCode, WireError> {
    param::take_map_head(d, 3)?;
    take_key(d, 0)?;
    let code = CommandCode(d.u16()?);
    take_key(d, 1)?;
    let version = d.u16()?;
    match code.version() {
        None => Err(WireError::UnknownCommand(code)),
        Some(v) if v != version => {
            Err(WireError::CommandVersion { command: code, found: version, expected: v })
        }
        Some(_) => Ok(code),
    }
}

/// Decodes a whole frame with `read`, then requires no trailing bytes and that the value
/// re-encodes (`write`) to exactly the bytes received.
fn strict<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Decoder<'_>) -> Result<T, WireError>,
    write: impl FnOnce(&T, &mut Enc),
) -> Result<T, WireError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(WireError::TooLarge { len: bytes.len(), max: MAX_FRAME_LEN });
    }
    let mut d = Decoder::new(bytes);
    let value = read(&mut d)?;
    if d.position() != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - d.position()));
    }
    let mut again = Enc::new(Vec::with_capacity(bytes.len()));
    write(&value, &mut again);
    if again.into_writer() != bytes {
        return Err(WireError::NonCanonical);
    }
    Ok(value)
}

/// The command code of a frame, read without checking anything else: to name the command a
/// refusal answers when the frame itself does not decode.
pub fn peek_code(bytes: &[u8]) -> Option<CommandCode> {
    let mut d = Decoder::new(bytes);
    d.map().ok()?;
    (d.u8().ok()? == 0).then_some(())?;
    d.u16().ok().map(CommandCode)
}

impl Command {
    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The canonical frame.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Enc::new(Vec::new());
        put_head(&mut e, 3, self.code());
        let _ = e.u8(ITEMS);
        self.put_items(&mut e);
        e.into_writer()
    }

    /// Decodes a frame: a known command at its version, each item of its type, canonical.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        strict(
            bytes,
            |d| {
                let code = take_head(d)?;
                take_key(d, ITEMS)?;
                Self::take_items(code, d)
            },
            |c, e| {
                put_head(e, 3, c.code());
                let _ = e.u8(ITEMS);
                c.put_items(e);
            },
        )
    }
}

impl Response {
    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The canonical frame of a reply to command `code`: the answers with the box's state version,
/// or the refusal of the whole command.
pub fn reply_to_bytes(code: CommandCode, reply: &Result<Answered, Refusal>) -> Vec<u8> {
    let mut e = Enc::new(Vec::new());
    put_reply(&mut e, code, reply);
    e.into_writer()
}

fn put_reply(e: &mut Enc, code: CommandCode, reply: &Result<Answered, Refusal>) {
    match reply {
        Ok(answered) => {
            put_head(e, 4, answered.response.code());
            let _ = e.u8(ITEMS);
            answered.response.put_answers(e);
            let _ = e.u8(STATE_VERSION).and_then(|e| e.u64(answered.state_version.0));
        }
        Err(refusal) => {
            put_head(e, 3, code);
            let _ = e.u8(REFUSED);
            refusal.put(e);
        }
    }
}

/// Decodes a reply frame. A refusal of a whole command may name a code this build does not know
/// (the box refused a command it did not recognize); answers must be of a known command.
pub fn reply_from_bytes(
    bytes: &[u8],
) -> Result<(CommandCode, Result<Answered, Refusal>), WireError> {
    strict(
        bytes,
        |d| {
            let entries = d.map()?.ok_or_else(|| WireError::Malformed("indefinite map".into()))?;
            take_key(d, 0)?;
            let code = CommandCode(d.u16()?);
            take_key(d, 1)?;
            let version = d.u16()?;
            match (entries, d.u8()?) {
                (3, REFUSED) => Ok((code, Err(Refusal::take(d)?))),
                (n, ITEMS) => {
                    match code.version() {
                        None => return Err(WireError::UnknownCommand(code)),
                        Some(v) if v != version => {
                            return Err(WireError::CommandVersion {
                                command: code,
                                found: version,
                                expected: v,
                            });
                        }
                        Some(_) => {}
                    }
                    if n != 4 {
                        return Err(WireError::Malformed(
                            "a reply with answers carries the box's state version".into(),
                        ));
                    }
                    let response = Response::take_answers(code, d)?;
                    take_key(d, STATE_VERSION)?;
                    let state_version = StateVersion(d.u64()?);
                    Ok((code, Ok(Answered { response, state_version })))
                }
                (n, _) if n != 3 && n != 4 => Err(WireError::ParameterCount {
                    expected: 4,
                    found: usize::try_from(n).unwrap_or(usize::MAX),
                }),
                _ => Err(WireError::NonCanonical),
            }
        },
        |(code, reply), e| put_reply(e, *code, reply),
    )
}

/// The items of a batch of requests as a command, and the answers of its response checked to be
/// of that command and one per item.
pub fn answers_of<R: BoxRequest>(
    sent: usize,
    response: Response,
) -> Result<Vec<Outcome<R::Answer>>, WireError> {
    let answers = R::answers(response)?;
    if answers.len() == sent {
        Ok(answers)
    } else {
        Err(WireError::AnswerMismatch("another number of answers than items sent"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_command_has_box_types_and_a_version() {
        for (code, name) in CommandCode::KNOWN {
            assert!(!code.box_types().is_empty(), "{name}");
            // RECOVER's answer grew the last batch's outcomes in version 2; VERIFY's items
            // became groups of packed mailpieces in version 2.
            let version =
                if [CommandCode::RECOVER, CommandCode::VERIFY].contains(code) { 2 } else { 1 };
            assert_eq!(code.version(), Some(version), "{name}");
            assert_eq!(code.name(), Some(*name));
        }
        assert!(CommandCode(0x7777).box_types().is_empty());
        assert_eq!(CommandCode(0x7777).version(), None);
    }

    #[test]
    fn refusal_messages_are_cut_at_a_character_boundary() {
        let r = Refusal::new(ResponseCode::PARAMETER_SYNTAX, "é".repeat(1000));
        assert!(r.message.len() <= MAX_REFUSAL_MESSAGE);
        assert!(r.message.len() >= MAX_REFUSAL_MESSAGE - 1);
        assert_eq!(r.message.chars().next(), Some('é'));
    }
}
