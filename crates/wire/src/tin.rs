//! Tin exports (protocol §6.5, docs/tin.md): a Brass process's token keys of one postal
//! sub-domain's active meters for one month, sealed to one Tin box and signed with the domain
//! Brass authentication key, in chunks of at most [`TIN_EXPORT_CHUNK_KEYS`] keys.
//!
//! ```text
//!  KMC ──EXPORT_TOKEN_KEYS (Tin certificate + process, MR3s of Active keys)──► Brass
//!      ◄── TINEXPORT chunk (signed; token keys sealed to the Tin box) ──┘
//!  export file ──IMPORT_TIN_EXPORT──► Tin (every chunk of one export, then it replaces the
//!                                          older one; an older export is refused)
//! ```

use minicbor::{Decode, Encode};
use postkey_crypto::HpkeCiphertext;

use crate::{Body, BoxId, Period, RecordType, SubdomainId, Timestamp, Unverified, WireError};

/// The most token keys one chunk carries: its sealed part stays well inside one HPKE
/// plaintext (16 KiB) at about 70 bytes a key.
pub const TIN_EXPORT_CHUNK_KEYS: usize = 200;

/// The most chunks of one export: a million meters of one sub-domain.
pub const TIN_EXPORT_MAX_CHUNKS: u32 = 5_000;

/// TINEXPORT: one chunk of a Tin export. The header names the postal domain; the sealed part
/// (HPKE info `TINEXPORT`, key ID 0, recipient the Tin box's ID) holds the token keys.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct TinExport {
    /// The Brass box that made it.
    #[n(0)]
    pub brass: BoxId,
    /// The Tin box it is sealed to.
    #[n(1)]
    pub tin: BoxId,
    /// The postal sub-domain whose meters it covers.
    #[n(2)]
    pub subdomain: SubdomainId,
    /// The month whose token keys it carries.
    #[n(3)]
    pub period: Period,
    /// The KMS time the meters were read from the archive: the export's identity. A Tin box
    /// takes an export only if it is newer than the one it holds for the sub-domain and month.
    #[n(4)]
    pub as_of: Timestamp,
    /// This chunk's place, from 0.
    #[n(5)]
    pub chunk: u32,
    /// How many chunks the export has.
    #[n(6)]
    pub chunks: u32,
    /// How many token keys this chunk carries.
    #[n(7)]
    pub keys: u32,
    /// The token keys, sealed to the Tin box.
    #[n(8)]
    pub sealed: HpkeCiphertext,
}

impl Body for TinExport {
    const RECORD_TYPE: RecordType = RecordType::TIN_EXPORT;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 20 * 1024;
}

/// The first bytes of an export file.
pub const TIN_EXPORT_FILE_MAGIC: &[u8; 8] = b"PKTINEX1";

/// The largest chunk envelope an export file holds: the body's limit and the envelope.
const MAX_CHUNK_ENVELOPE: usize = TinExport::MAX_LEN + 1024;

/// The largest export file: every chunk at its largest.
pub const MAX_TIN_EXPORT_FILE: u64 =
    (12 + TIN_EXPORT_MAX_CHUNKS as usize * (4 + MAX_CHUNK_ENVELOPE)) as u64;

/// An export as a file (docs/tin.md): the magic `PKTINEX1`, the number of chunks (4 bytes,
/// big-endian), then each chunk's envelope, as signed, after its length (4 bytes, big-endian).
pub fn encode_export_file(chunks: &[Unverified<TinExport>]) -> Vec<u8> {
    let mut out = TIN_EXPORT_FILE_MAGIC.to_vec();
    out.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
    for c in chunks {
        out.extend_from_slice(&(c.as_bytes().len() as u32).to_be_bytes());
        out.extend_from_slice(c.as_bytes());
    }
    out
}

/// Reads an export file: the chunks of one export, each in its place. Refuses another magic, a
/// count or length out of bounds, a truncated file or trailing bytes, a chunk that does not
/// decode, and chunks of more than one export (Tin box, sub-domain, month, time, count). The
/// signatures are the Tin box's to check.
pub fn decode_export_file(bytes: &[u8]) -> Result<Vec<Unverified<TinExport>>, WireError> {
    let bad = |reason| WireError::InvalidField { field: "tin export file", reason };
    if bytes.len() as u64 > MAX_TIN_EXPORT_FILE {
        return Err(WireError::TooLarge { len: bytes.len(), max: MAX_TIN_EXPORT_FILE as usize });
    }
    let rest = bytes.strip_prefix(TIN_EXPORT_FILE_MAGIC).ok_or(bad("not a Tin export file"))?;
    let (count, mut rest) = take_u32(rest).ok_or(bad("truncated"))?;
    if count == 0 || count > TIN_EXPORT_MAX_CHUNKS {
        return Err(bad("chunk count out of bounds"));
    }
    let mut chunks: Vec<Unverified<TinExport>> = Vec::with_capacity(count as usize);
    for place in 0..count {
        let (len, after) = take_u32(rest).ok_or(bad("truncated"))?;
        let len = len as usize;
        if len > MAX_CHUNK_ENVELOPE {
            return Err(bad("a chunk longer than a chunk can be"));
        }
        let envelope = after.get(..len).ok_or(bad("truncated"))?;
        rest = &after[len..];
        let chunk = Unverified::<TinExport>::from_bytes(envelope)?;
        let b = chunk.claimed_body();
        if b.chunk != place || b.chunks != count {
            return Err(bad("chunks out of place, or of another count"));
        }
        if let Some(first) = chunks.first() {
            let f = first.claimed_body();
            let same = (f.tin, &f.subdomain, f.period, f.as_of, first.header().domain.clone())
                == (b.tin, &b.subdomain, b.period, b.as_of, chunk.header().domain.clone());
            if !same {
                return Err(bad("chunks of more than one export"));
            }
        }
        chunks.push(chunk);
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(chunks)
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}
