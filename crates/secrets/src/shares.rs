//! Secret sharing of protocol §7.1: Shamir k-of-n over GF(2⁸) (`vsss-rs`) inside an authenticated
//! envelope.
//!
//! ```text
//!  split(secret) ──► n × Verified<ShareBody>  (set ID, owner box, purpose, index, k, n,
//!                                              check value, share; signed by the issuing box)
//!  share file ──check_share(issuer key, owner)──► Verified<ShareBody>   (alone, no quorum)
//!  ≥ k Verified<ShareBody> of one set ──combine──► secret, accepted only if its check value
//!                                                  matches the one every share carries
//! ```
//!
//! Shamir shares carry no integrity of their own: a corrupted share silently yields a wrong
//! secret. The signature catches a forged or altered share; the check value catches anything
//! else (shares signed by a compromised or confused issuer, mixed metadata).

use hmac::Mac;
use minicbor::{Decode, Decoder, Encode, Encoder, decode, encode};
use postkey_crypto::VerifyingKey;
use postkey_wire::{
    Body, BoxId, Context, DomainId, Message, RecordType, ResponseCode, Sender, SharePurpose,
    ShareSetId, Timestamp, Unverified, Verified, WireError,
};
use subtle::ConstantTimeEq;
use vsss_rs::Gf256;
use zeroize::Zeroize;

use crate::rng::BoxRng;
use crate::secret::secret_bytes;
use crate::{DomainKeySetSeed, OperationCombination, SecretError, SigningKey};

/// The label of share check values.
const CHECK_LABEL: &[u8] = b"postkey/share-check/v1";
/// The most shares a set may have; GF(2⁸) allows 255, custodians need far fewer.
pub const MAX_SHARES: u8 = 16;

/// Why shares were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// A share file does not decode, is not signed by the expected issuer, or is not this box's.
    #[error("share invalid: {0}")]
    Invalid(&'static str),
    /// Shares of different sets, owners, purposes or parameters were presented together.
    #[error("shares belong to different share sets; present shares of one set only")]
    SetMismatch,
    /// The same share was presented twice.
    #[error("share {index} was presented twice; present distinct shares")]
    Duplicate {
        /// The repeated index.
        index: u8,
    },
    /// Fewer distinct shares than the threshold.
    #[error("{have} distinct shares presented, {need} needed")]
    QuorumNotMet {
        /// Distinct valid shares presented.
        have: usize,
        /// The set's threshold k.
        need: u8,
    },
    /// The recombined secret does not match the set's check value.
    #[error("the recombined secret fails its check value")]
    CheckFailed,
    /// k and n are out of range (2 ≤ k ≤ n ≤ 16).
    #[error("invalid sharing parameters: need 2 <= k <= n <= {MAX_SHARES}")]
    BadParameters,
}

impl ShareError {
    /// The documented response code.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Invalid(_) => ResponseCode::SHARE_INVALID,
            Self::SetMismatch | Self::Duplicate { .. } => ResponseCode::SHARE_SET_MISMATCH,
            Self::QuorumNotMet { .. } => ResponseCode::SHARE_QUORUM_NOT_MET,
            Self::CheckFailed => ResponseCode::SHARE_CHECK_FAILED,
            Self::BadParameters => ResponseCode::PARAMETER_SYNTAX,
        }
    }
}

secret_bytes!(
    /// One custodian's Shamir share of a 32-byte secret (the y-values; x is the share index).
    ShareValue, 32
);

impl<C> Encode<C> for ShareValue {
    fn encode<W: encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        e.bytes(self.expose_secret())?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for ShareValue {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        let b: [u8; 32] =
            d.bytes()?.try_into().map_err(|_| decode::Error::message("share must be 32 bytes"))?;
        Ok(Self::from_bytes(b))
    }
}

/// The share envelope of protocol §7.1, the body of a `SHARE` record signed by the issuing box.
#[derive(Debug, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct ShareBody {
    /// The set this share belongs to.
    #[n(0)]
    pub set: ShareSetId,
    /// The box whose secret this is.
    #[n(1)]
    pub owner: BoxId,
    /// What the secret is.
    #[n(2)]
    pub purpose: SharePurpose,
    /// This share's index, 1 to n.
    #[n(3)]
    pub index: u8,
    /// The threshold k.
    #[n(4)]
    pub threshold: u8,
    /// The number of shares n.
    #[n(5)]
    pub count: u8,
    /// The first 8 bytes of HMAC-SHA256(secret, "postkey/share-check/v1").
    #[cbor(n(6), with = "minicbor::bytes")]
    pub check: [u8; 8],
    /// The share itself.
    #[n(7)]
    pub share: ShareValue,
}

impl Body for ShareBody {
    const RECORD_TYPE: RecordType = RecordType::SHARE;
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1024;
}

/// A 32-byte secret that postkey splits among custodians.
pub trait Shareable: Sized {
    /// What the secret is.
    const PURPOSE: SharePurpose;
    /// The secret bytes.
    fn secret(&self) -> &[u8; 32];
    /// Rebuilds the secret.
    fn from_secret(bytes: [u8; 32]) -> Self;
}

impl Shareable for OperationCombination {
    const PURPOSE: SharePurpose = SharePurpose::OperationCombination;
    fn secret(&self) -> &[u8; 32] {
        self.expose_secret()
    }
    fn from_secret(bytes: [u8; 32]) -> Self {
        Self::from_bytes(bytes)
    }
}

impl Shareable for DomainKeySetSeed {
    const PURPOSE: SharePurpose = SharePurpose::DomainKeySet;
    fn secret(&self) -> &[u8; 32] {
        self.expose_secret()
    }
    fn from_secret(bytes: [u8; 32]) -> Self {
        Self::from_bytes(bytes)
    }
}

fn check_value(secret: &[u8; 32]) -> [u8; 8] {
    let mut mac = crate::secret::hmac_sha256(secret);
    mac.update(CHECK_LABEL);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

/// The parameters of one split.
#[derive(Debug, Clone)]
pub struct SplitSpec {
    /// A fresh set ID.
    pub set: ShareSetId,
    /// The box the secret belongs to.
    pub owner: BoxId,
    /// The box that splits and signs (the owner itself, or the M box for the Domain Key Set).
    pub issuer: BoxId,
    /// k.
    pub threshold: u8,
    /// n.
    pub count: u8,
    /// When.
    pub timestamp: Timestamp,
}

/// Splits `secret` k-of-n and signs each share with the issuing box's identity key.
pub fn split<S: Shareable>(
    secret: &S,
    spec: &SplitSpec,
    issuer_key: &SigningKey,
    rng: &mut BoxRng,
) -> Result<Vec<Verified<ShareBody>>, SecretError> {
    let (k, n) = (spec.threshold, spec.count);
    if k < 2 || k > n || n > MAX_SHARES {
        return Err(ShareError::BadParameters.into());
    }
    let raw = rng
        .with_guard(|g| Gf256::split_bytes(usize::from(k), usize::from(n), secret.secret(), g))?
        .map_err(|_| ShareError::BadParameters)?;
    let check = check_value(secret.secret());
    let mut out = Vec::with_capacity(raw.len());
    for mut share in raw {
        let parsed =
            share.split_first().and_then(|(x, y)| Some((*x, <[u8; 32]>::try_from(y).ok()?)));
        share.zeroize();
        let (index, mut y) = parsed.ok_or(SecretError::Malformed)?;
        let body = ShareBody {
            set: spec.set,
            owner: spec.owner,
            purpose: S::PURPOSE,
            index,
            threshold: k,
            count: n,
            check,
            share: ShareValue::from_bytes(y),
        };
        y.zeroize();
        let context = Context {
            domain: DomainId::admin(),
            sender: Sender::Box(spec.issuer),
            meter_id: None,
            key_id: None,
            state_version: None,
            timestamp: spec.timestamp,
        };
        out.push(postkey_wire::sign(Message::new(context, body), issuer_key));
    }
    Ok(out)
}

/// Checks one share file alone (protocol §7.1): its form, its signature by `issuer`, and that it
/// belongs to `owner`. No quorum is needed and nothing is combined.
pub fn check_share(
    bytes: &[u8],
    issuer: &VerifyingKey,
    owner: BoxId,
) -> Result<Verified<ShareBody>, ShareError> {
    let share = Unverified::<ShareBody>::from_bytes(bytes)
        .map_err(|e| ShareError::Invalid(wire_reason(&e)))?
        .verify(issuer)
        .map_err(|_| {
            ShareError::Invalid("signature does not verify under the issuing box's key")
        })?;
    let b = share.body();
    if b.owner != owner {
        return Err(ShareError::Invalid("share belongs to another box"));
    }
    if b.threshold < 2
        || b.threshold > b.count
        || b.count > MAX_SHARES
        || b.index == 0
        || b.index > b.count
    {
        return Err(ShareError::Invalid("share parameters out of range"));
    }
    Ok(share)
}

fn wire_reason(e: &WireError) -> &'static str {
    match e {
        WireError::TooLarge { .. } => "file too large",
        WireError::WrongRecordType { .. } => "not a share file",
        WireError::BadSignature => "signature does not verify",
        _ => "malformed share file",
    }
}

/// Combines at least k distinct shares of one set into the secret, which must match the set's
/// check value. Shares reach this function only through a signature check (`Verified`).
pub fn combine<S: Shareable>(shares: &[Verified<ShareBody>]) -> Result<S, ShareError> {
    let first = shares.first().ok_or(ShareError::QuorumNotMet { have: 0, need: 2 })?.body();
    let mut seen = [false; 256];
    for s in shares {
        let b = s.body();
        let same_set = b.set == first.set
            && b.owner == first.owner
            && b.purpose == first.purpose
            && b.threshold == first.threshold
            && b.count == first.count
            && bool::from(b.check.ct_eq(&first.check));
        if !same_set {
            return Err(ShareError::SetMismatch);
        }
        let slot = seen.get_mut(usize::from(b.index)).ok_or(ShareError::SetMismatch)?;
        if *slot {
            return Err(ShareError::Duplicate { index: b.index });
        }
        *slot = true;
    }
    if first.purpose != S::PURPOSE {
        return Err(ShareError::SetMismatch);
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::QuorumNotMet { have: shares.len(), need: first.threshold });
    }
    let mut raw: Vec<Vec<u8>> = shares
        .iter()
        .map(|s| {
            let b = s.body();
            let mut v = Vec::with_capacity(33);
            v.push(b.index);
            v.extend_from_slice(b.share.expose_secret());
            v
        })
        .collect();
    let combined = Gf256::combine_bytes(&raw);
    raw.iter_mut().for_each(|v| v.zeroize());
    let mut combined = combined.map_err(|_| ShareError::CheckFailed)?;
    let secret: Result<[u8; 32], _> = combined.as_slice().try_into();
    combined.zeroize();
    let mut secret = secret.map_err(|_| ShareError::CheckFailed)?;
    let ok = bool::from(check_value(&secret).ct_eq(&first.check));
    let out = S::from_secret(secret);
    secret.zeroize();
    if ok { Ok(out) } else { Err(ShareError::CheckFailed) }
}
