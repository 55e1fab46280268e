//! The installation messages of protocol §6.1 (MI0 to MI10, ABORTED, BAD).
//!
//! ```text
//!  KDC ─MI0─► KMC ─MI1─► Oak ─┬─MI3 (K sealed to the domain's Brass)──► archive (New)
//!                             └─MI4 (K ‖ test tokens sealed to Steel)─► Steel
//!  Steel ─MI5 (K sealed to the meter)─► meter ─MI6 (test tokens)─► Steel ─MI7─► KMC
//!  KMC ─MI8 = MI3 + MI7─► Brass ─┬─MI9 (K sealed to Brass)──► archive (Installed)
//!                                ├─MI10──────────────────────► KDC
//!                                └─BAD (mismatch)────────────► archive (Bad)
//! ```
//!
//! Header fields carry the domain, the key ID, the meter ID where known, the sender and its
//! state version; bodies carry the rest. MI3, MI4 are signed with the domain's Oak key; MI7 and
//! ABORTED with its Steel key; MI9, MI10 and BAD with its Brass key. MI1, MI5 and MI6 travel
//! unsigned: MI1 carries signed certificates and records the Oak box checks itself, and MI5/MI6
//! cross only the meter link of the secured production line (SECURITY.md).

use minicbor::{Decode, Encode};
use postkey_crypto::{HpkeCiphertext, HpkePublicKey};

use crate::{Body, BoxId, RecordType, TestTokens};

/// MI0: the KDC asks the KMC for a key of a domain, to be installed by a Steel box.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct KeyRequest {
    /// The Steel box that will install it.
    #[n(0)]
    pub steel: BoxId,
}

impl Body for KeyRequest {
    const RECORD_TYPE: RecordType = RecordType::MI0;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// MI1: the KMC orders an Oak box to generate the key named in the header, for a Steel box. The
/// header's timestamp is the KMS Request Time.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct GenerateKey {
    /// The Steel box's certificate, signed with the Steel startup key.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub steel_certificate: Vec<u8>,
    /// The Steel box's domain-process record for the header's domain, signed likewise.
    #[cbor(n(1), with = "minicbor::bytes")]
    pub steel_process: Vec<u8>,
}

impl Body for GenerateKey {
    const RECORD_TYPE: RecordType = RecordType::MI1;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 8 * 1024;
}

/// MI3: a new key for the archive, sealed to the domain's Brass processes
/// (HPKE info `MI3`, recipient `BRASS:<domain>`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct NewKeyRecord {
    /// The Oak box that generated it.
    #[n(0)]
    pub oak: BoxId,
    /// The Steel box it is for.
    #[n(1)]
    pub steel: BoxId,
    /// K, sealed.
    #[n(2)]
    pub sealed: HpkeCiphertext,
}

impl Body for NewKeyRecord {
    const RECORD_TYPE: RecordType = RecordType::MI3;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 2048;
}

/// MI4: the new key for the addressed Steel box: K ‖ test tokens sealed to its confidentiality
/// key (HPKE info `MI4`, recipient the Steel box ID).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct KeyForSteel {
    /// The Oak box that generated it.
    #[n(0)]
    pub oak: BoxId,
    /// The Steel box it is addressed to.
    #[n(1)]
    pub steel: BoxId,
    /// K ‖ test tokens, sealed.
    #[n(2)]
    pub sealed: HpkeCiphertext,
}

impl Body for KeyForSteel {
    const RECORD_TYPE: RecordType = RecordType::MI4;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 2048;
}

/// A meter's greeting on the meter link: its transport public key (the header names the meter).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct MeterHello {
    /// The meter's transport key, made at manufacture.
    #[n(0)]
    pub transport: HpkePublicKey,
}

impl Body for MeterHello {
    const RECORD_TYPE: RecordType = RecordType::METER_HELLO;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// MI5: K for the meter, sealed to its transport key (HPKE info `MI5`, recipient the meter ID).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct KeyForMeter {
    /// K, sealed.
    #[n(0)]
    pub sealed: HpkeCiphertext,
}

impl Body for KeyForMeter {
    const RECORD_TYPE: RecordType = RecordType::MI5;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// MI6: the test tokens the meter computed from the key it installed.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct MeterTestTokens {
    /// AES-256(K, TP).
    #[n(0)]
    pub test_tokens: TestTokens,
}

impl Body for MeterTestTokens {
    const RECORD_TYPE: RecordType = RecordType::MI6;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// MI7: the Steel box installed the key into the meter named in the header.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Installed {
    /// The Oak box that generated the key.
    #[n(0)]
    pub oak: BoxId,
    /// The Steel box that installed it.
    #[n(1)]
    pub steel: BoxId,
    /// The test tokens the meter answered.
    #[n(2)]
    pub test_tokens: TestTokens,
}

impl Body for Installed {
    const RECORD_TYPE: RecordType = RecordType::MI7;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// MI9: the installed key for the archive, sealed to the domain's Brass processes
/// (HPKE info `MI9`, recipient `BRASS:<domain>`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct InstalledKeyRecord {
    /// The Oak box that generated it.
    #[n(0)]
    pub oak: BoxId,
    /// The Steel box that installed it.
    #[n(1)]
    pub steel: BoxId,
    /// K, sealed.
    #[n(2)]
    pub sealed: HpkeCiphertext,
}

impl Body for InstalledKeyRecord {
    const RECORD_TYPE: RecordType = RecordType::MI9;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 2048;
}

/// MI10: the domain's Brass confirms to the KDC that the key in the header is installed in the
/// meter in the header.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct InstallConfirmed {
    /// The Brass box that checked it.
    #[n(0)]
    pub brass: BoxId,
}

impl Body for InstallConfirmed {
    const RECORD_TYPE: RecordType = RecordType::MI10;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 512;
}

/// ABORTED: a Steel box did not finish installing the key in the header (a crash, or the meter
/// answered other test tokens). The key must become `Bad`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Aborted {
    /// The Steel box.
    #[n(0)]
    pub steel: BoxId,
    /// Why, in words.
    #[n(1)]
    pub reason: String,
}

impl Body for Aborted {
    const RECORD_TYPE: RecordType = RecordType::ABORTED;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// BAD: a Brass process found that MI3 and MI7 of the key in the header do not match.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct BadKey {
    /// The Brass box.
    #[n(0)]
    pub brass: BoxId,
    /// The response code of the mismatch.
    #[n(1)]
    pub code: u16,
    /// What did not match, in words.
    #[n(2)]
    pub reason: String,
}

impl Body for BadKey {
    const RECORD_TYPE: RecordType = RecordType::BAD;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}
