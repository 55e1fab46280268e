//! The plaintext images of what a box keeps secret: its sealed state, a domain bundle's private
//! keys and a delivery's private keys. Secret bytes live here only between a secret type and
//! the sealing (or opening) call; every image zeroizes on drop and has no `Debug` that shows
//! them.

use minicbor::{Decode, Encode};
use postkey_wire::{BoxId, ConfigTables, IdRange, SubdomainId, TrustAnchors};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The private keys of a domain (in a bundle) or of one process (in a delivery). A field that a
/// recipient must not get is empty; the recipient checks that exactly its own fields are set.
#[derive(Default, Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub struct KeyImage {
    /// The box type these keys are for (`BoxType::ALL` index), or 255 in a bundle.
    #[n(0)]
    pub(crate) for_type: u8,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub(crate) oak_auth: Vec<u8>,
    #[cbor(n(2), with = "minicbor::bytes")]
    pub(crate) steel_auth: Vec<u8>,
    #[cbor(n(3), with = "minicbor::bytes")]
    pub(crate) brass_conf: Vec<u8>,
    #[cbor(n(4), with = "minicbor::bytes")]
    pub(crate) brass_auth: Vec<u8>,
    #[cbor(n(5), with = "minicbor::bytes")]
    pub(crate) audit: Vec<u8>,
    #[n(6)]
    pub(crate) subdomains: Vec<SubdomainImage>,
}

/// One sub-domain's two secret keys.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub(crate) struct SubdomainImage {
    #[n(0)]
    #[zeroize(skip)]
    pub(crate) subdomain: SubdomainId,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub(crate) conf: [u8; 32],
    #[cbor(n(2), with = "minicbor::bytes")]
    pub(crate) auth: [u8; 32],
}

/// Marks a key image that holds keys of a whole domain, not of one box type.
pub(crate) const BUNDLE_TYPE: u8 = 255;

/// What a new manufacturing box receives in its kit.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub(crate) struct KitImage {
    #[cbor(n(0), with = "minicbor::bytes")]
    pub(crate) domain_key_set: [u8; 32],
    /// The five startup private keys, in the order of `BoxType::ALL`.
    #[n(1)]
    pub(crate) startup: Vec<Seed>,
}

/// A 32-byte secret in an image.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(transparent)]
pub(crate) struct Seed(#[cbor(n(0), with = "minicbor::bytes")] pub(crate) [u8; 32]);

/// A box's whole state, as sealed at rest.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub struct StateImage {
    #[n(0)]
    #[zeroize(skip)]
    pub(crate) box_id: BoxId,
    #[n(1)]
    pub(crate) version: u64,
    #[n(2)]
    #[zeroize(skip)]
    pub(crate) anchors: TrustAnchors,
    #[cbor(n(3), with = "minicbor::bytes")]
    pub(crate) identity: [u8; 32],
    #[cbor(n(4), with = "minicbor::bytes")]
    pub(crate) confidentiality: [u8; 32],
    /// The signed certificate, once the box has it.
    #[cbor(n(5), with = "minicbor::bytes")]
    pub(crate) certificate: Vec<u8>,
    #[n(6)]
    #[zeroize(skip)]
    pub(crate) tables: ConfigTables,
    #[n(7)]
    pub(crate) table_sequence: u64,
    /// The DRBG's working state (`DrbgState::to_bytes`).
    #[cbor(n(8), with = "minicbor::bytes")]
    pub(crate) drbg: Vec<u8>,
    /// The signed deliveries of the processes installed, in order; their keys are re-opened
    /// with the box's confidentiality key when the box is enabled.
    #[n(9)]
    pub(crate) deliveries: Vec<Blob>,
    /// A manufacturing box's own state.
    #[n(10)]
    pub(crate) manufacturing: Option<ManufacturingImage>,
    /// A new manufacturing box that has not received its kit yet.
    #[n(11)]
    pub(crate) awaiting_kit: bool,
    /// Per process, in the order of `deliveries`: its key-ID counter and in-flight install.
    #[n(12)]
    #[zeroize(skip)]
    pub(crate) counters: Vec<CounterImage>,
    /// The installation the box belongs to.
    #[n(13)]
    #[zeroize(skip)]
    pub(crate) installation: postkey_wire::InstallationId,
    /// Steel: the signed outcomes (MI7 or ABORTED envelopes) of its last `INSTALL_KEY` batch.
    #[n(14)]
    #[zeroize(skip)]
    pub(crate) last_ended: Vec<EndedImage>,
    /// Brass: the last checkpoint it signed of each chain, as signed (absent when none, so a
    /// state sealed before checkpoints existed opens as it was).
    #[n(15)]
    #[zeroize(skip)]
    pub(crate) checkpoints: Option<Vec<Blob>>,
    /// Tin: every chunk of the exports it holds or is taking, as signed (their token keys are
    /// sealed to the box and opened again when it is enabled); absent when none.
    #[n(16)]
    #[zeroize(skip)]
    pub(crate) tin_exports: Option<Vec<Blob>>,
    /// Tin: per sub-domain, the latest month it let go of (refused for ever after).
    #[n(17)]
    #[zeroize(skip)]
    pub(crate) tin_dropped: Option<Vec<DroppedImage>>,
    /// Tin: the latest time it took an import at (µs since the epoch).
    #[n(18)]
    pub(crate) tin_latest: Option<u64>,
}

/// A Tin box's sub-domain and the latest month of it that it let go of.
#[derive(Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct DroppedImage {
    #[n(0)]
    pub(crate) subdomain: SubdomainId,
    #[n(1)]
    pub(crate) period: postkey_wire::Period,
}

/// The sealed part of a Tin export chunk: one month's token keys of some meters.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub(crate) struct TinKeysImage {
    #[n(0)]
    pub(crate) keys: Vec<TinKeyImage>,
}

/// One meter's token key for the export's month.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub(crate) struct TinKeyImage {
    #[n(0)]
    #[zeroize(skip)]
    pub(crate) isn: postkey_wire::Isn,
    #[n(1)]
    #[zeroize(skip)]
    pub(crate) key_id: postkey_wire::KeyId,
    /// The UTC day the key was registered (MR3's time): earlier mailpieces are refused.
    #[n(2)]
    #[zeroize(skip)]
    pub(crate) registered: postkey_wire::Date,
    #[cbor(n(3), with = "minicbor::bytes")]
    pub(crate) token_key: [u8; 32],
}

/// How one installation ended, as signed: MI7 (`installed`) or ABORTED.
#[derive(Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct EndedImage {
    #[n(0)]
    pub(crate) installed: bool,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub(crate) envelope: Vec<u8>,
}

/// A process's durable counters.
#[derive(Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct CounterImage {
    #[n(0)]
    pub(crate) last_key_id: u64,
    #[n(1)]
    pub(crate) in_flight: Vec<InFlightImage>,
}

/// A Steel process's installation in flight (no key material).
#[derive(Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct InFlightImage {
    #[n(0)]
    pub(crate) key_id: postkey_wire::KeyId,
    #[n(1)]
    pub(crate) meter_id: postkey_wire::MeterId,
    #[n(2)]
    pub(crate) oak: BoxId,
}

/// Opaque public bytes in an image (a signed record).
#[derive(Encode, Decode, Zeroize)]
#[cbor(transparent)]
pub(crate) struct Blob(#[cbor(n(0), with = "minicbor::bytes")] pub(crate) Vec<u8>);

/// A manufacturing box's secrets and bookkeeping.
#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
pub(crate) struct ManufacturingImage {
    #[cbor(n(0), with = "minicbor::bytes")]
    pub(crate) domain_key_set: [u8; 32],
    #[n(1)]
    pub(crate) startup: Vec<Seed>,
    /// The box numbers left per type, in the order of `BoxType::ALL`.
    #[n(2)]
    #[zeroize(skip)]
    pub(crate) ranges: Vec<IdRange>,
    /// Every box ID this box has certified: each only once.
    #[n(3)]
    #[zeroize(skip)]
    pub(crate) certified: Vec<BoxId>,
    /// Nonces of Set-IDs issued and not yet answered, with the ID given.
    #[n(4)]
    #[zeroize(skip)]
    pub(crate) pending: Vec<Pending>,
    /// The last table-update sequence number used, per box.
    #[n(5)]
    #[zeroize(skip)]
    pub(crate) table_sequences: Vec<TableSequence>,
    /// The domains whose bundles this box created or adopted.
    #[n(6)]
    #[zeroize(skip)]
    pub(crate) domains: Vec<postkey_wire::DomainId>,
    /// The bundles this box created, as signed.
    #[n(7)]
    pub(crate) created: Vec<Blob>,
}

/// The last table-update sequence number a manufacturing box used for one box.
#[derive(Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct TableSequence {
    #[n(0)]
    pub(crate) box_id: BoxId,
    #[n(1)]
    pub(crate) sequence: u64,
}

/// A Set-ID issued and waiting for the new box's keys.
#[derive(Clone, Encode, Decode)]
#[cbor(map)]
pub(crate) struct Pending {
    #[cbor(n(0), with = "minicbor::bytes")]
    pub(crate) nonce: [u8; 32],
    #[n(1)]
    pub(crate) box_id: BoxId,
}

impl core::fmt::Debug for KeyImage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyImage([redacted])")
    }
}

impl core::fmt::Debug for StateImage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StateImage").field("box_id", &self.box_id).finish_non_exhaustive()
    }
}
