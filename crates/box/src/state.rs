//! The sealed state at rest (protocol §7.2 items 6–7): the whole box, AES-256-GCM-SIV under a key
//! derived from its operation combination and ID, with the header (box ID, state version) as
//! associated data. Nothing unsealed is ever written.
//!
//! File layout: `"PKBOX\x02"` ‖ box ID (9 ASCII bytes) ‖ state version (u64, big-endian) ‖
//! sealed image. The header is authenticated, so a file renamed to another box, or relabelled
//! with another version, does not open.

use std::collections::BTreeSet;

use postkey_secrets::OperationCombination;
use postkey_secrets::rng::{BoxRng, DrbgState, EntropySource};
use postkey_secrets::{DomainKeySetSeed, HpkePrivateKey, SigningKey};
use postkey_wire::{BoxId, BoxType, Certificate, StateVersion, Unverified, codec};

use crate::core::sealed::RoleState;
use crate::core::{Core, Role, TypedBox};
use crate::image::{Blob, ManufacturingImage, Pending, Seed, StateImage, TableSequence};
use crate::manufacturing::{Manufacturing, ManufacturingState};
use crate::secure_box::each_type;
use crate::{BoxError, SecureBox};

/// Version 2 of the layout's image carries the installation ID.
const MAGIC: &[u8; 6] = b"PKBOX\x02";
const HEADER_LEN: usize = 6 + 9 + 8;
/// The largest sealed state accepted: room for a Tin box's exports at their bound
/// ([`crate::TIN_MAX_KEYS`] token keys, about 70 bytes each as signed chunks).
pub const MAX_SEALED_LEN: usize = 16 * 1024 * 1024;

/// A box's sealed state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedState {
    /// Whose state.
    pub box_id: BoxId,
    /// Which version.
    pub version: StateVersion,
    sealed: Vec<u8>,
}

fn header(box_id: BoxId, version: StateVersion) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(box_id.to_string().as_bytes());
    h.extend_from_slice(&version.0.to_be_bytes());
    h
}

impl SealedState {
    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        [header(self.box_id, self.version), self.sealed.clone()].concat()
    }

    /// Reads the file bytes; the content is checked only when opened.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BoxError> {
        let bad = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if bytes.len() > MAX_SEALED_LEN || bytes.len() < HEADER_LEN || !bytes.starts_with(MAGIC) {
            return Err(bad());
        }
        let id = std::str::from_utf8(&bytes[6..15]).map_err(|_| bad())?;
        let box_id = BoxId::parse(id).map_err(|_| bad())?;
        let version: [u8; 8] = bytes[15..HEADER_LEN].try_into().map_err(|_| bad())?;
        Ok(Self {
            box_id,
            version: StateVersion(u64::from_be_bytes(version)),
            sealed: bytes[HEADER_LEN..].to_vec(),
        })
    }
}

/// A box whose state can be sealed: a [`SecureBox`], or one of its typed boxes while it runs a
/// command (the host commits it before an answer that depends on the change leaves).
pub trait Seal {
    /// Seals the whole state under the current version.
    fn seal(&mut self) -> Result<SealedState, BoxError>;

    /// Whether the state changed since it was last persisted.
    fn is_dirty(&self) -> bool;

    /// Whether the state changed since the last call: the runtime then persists it before the
    /// answer leaves the box.
    fn take_dirty(&mut self) -> bool;
}

impl<R: Role> Seal for TypedBox<R> {
    fn seal(&mut self) -> Result<SealedState, BoxError> {
        let image = self.image();
        let plain = codec::to_secret_bytes(&image, 256 * 1024);
        drop(image);
        let core = &mut self.core;
        let key = core.combination.state_sealing_key(&core.id.to_string());
        let sealed = key.seal(&header(core.id, core.version), &plain, &mut core.rng)?;
        Ok(SealedState { box_id: core.id, version: core.version, sealed })
    }

    fn is_dirty(&self) -> bool {
        self.core.dirty
    }

    fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.core.dirty)
    }
}

impl Seal for SecureBox {
    fn seal(&mut self) -> Result<SealedState, BoxError> {
        each_type!(self, b => b.seal())
    }

    fn is_dirty(&self) -> bool {
        SecureBox::is_dirty(self)
    }

    fn take_dirty(&mut self) -> bool {
        SecureBox::take_dirty(self)
    }
}

impl<R: Role> TypedBox<R> {
    fn image(&self) -> StateImage {
        let core = &self.core;
        let mut image = StateImage {
            box_id: core.id,
            version: core.version.0,
            anchors: core.anchors.clone(),
            identity: *core.identity.expose_secret(),
            confidentiality: *core.confidentiality.expose_secret(),
            certificate: core
                .certificate
                .as_ref()
                .map(|c| c.as_bytes().to_vec())
                .unwrap_or_default(),
            tables: core.tables.clone(),
            table_sequence: core.table_sequence,
            drbg: core.rng.state().to_bytes().to_vec(),
            deliveries: Vec::new(),
            manufacturing: None,
            awaiting_kit: false,
            installation: core.installation,
            last_ended: Vec::new(),
            checkpoints: None,
            tin_exports: None,
            tin_dropped: None,
            tin_latest: None,
            counters: Vec::new(),
        };
        self.role.write_image(&mut image);
        image
    }

    fn from_image(core: Core, image: &StateImage) -> Result<Self, BoxError> {
        let role = R::read_image(&core, image)?;
        Ok(Self { core, role })
    }
}

impl RoleState for Manufacturing {
    fn write_image(&self, image: &mut StateImage) {
        let Some(m) = &self.state else {
            image.awaiting_kit = true;
            return;
        };
        image.manufacturing = Some(ManufacturingImage {
            domain_key_set: *m.domain_key_set.expose_secret(),
            startup: m.startup.iter().map(|k| Seed(*k.expose_secret())).collect(),
            ranges: m.ranges.clone(),
            certified: m.certified.iter().copied().collect(),
            pending: m.pending.iter().map(|(n, id)| Pending { nonce: *n, box_id: *id }).collect(),
            table_sequences: m
                .table_sequences
                .iter()
                .map(|(b, s)| TableSequence { box_id: *b, sequence: *s })
                .collect(),
            domains: m.domains.iter().cloned().collect(),
            created: m.created.values().map(|b| Blob(b.clone())).collect(),
        });
    }

    fn read_image(_: &Core, image: &StateImage) -> Result<Self, BoxError> {
        let corrupt = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if !image.deliveries.is_empty()
            || !image.last_ended.is_empty()
            || image.checkpoints.is_some()
        {
            return Err(corrupt());
        }
        let state = match (&image.manufacturing, image.awaiting_kit) {
            (Some(m), false) => Some(Box::new(ManufacturingState {
                domain_key_set: DomainKeySetSeed::from_bytes(m.domain_key_set),
                startup: m.startup.iter().map(|s| SigningKey::from_bytes(s.0)).collect(),
                ranges: m.ranges.clone(),
                certified: m.certified.iter().copied().collect::<BTreeSet<_>>(),
                pending: m.pending.iter().map(|p| (p.nonce, p.box_id)).collect(),
                table_sequences: m.table_sequences.iter().map(|t| (t.box_id, t.sequence)).collect(),
                domains: m.domains.iter().cloned().collect(),
                created: m
                    .created
                    .iter()
                    .map(|b| {
                        let domain = Unverified::<postkey_wire::DomainBundle>::from_bytes(&b.0)?
                            .claimed_body()
                            .domain
                            .clone();
                        Ok((domain, b.0.clone()))
                    })
                    .collect::<Result<_, BoxError>>()?,
            })),
            (None, true) => None,
            _ => return Err(corrupt()),
        };
        Ok(Self { state })
    }
}

impl SecureBox {
    /// Seals the whole state under the current version.
    pub fn seal(&mut self) -> Result<SealedState, BoxError> {
        Seal::seal(self)
    }

    /// Opens a sealed state with the operation combination recombined from its shares, resumes
    /// the generator (reseeded from `os`, `enable_context` unique to this enabling), and rebuilds
    /// the box of its type, every process from its delivery. Fails without detail if anything
    /// was altered.
    pub fn unseal(
        sealed: &SealedState,
        combination: OperationCombination,
        os: impl EntropySource + Send + Sync + 'static,
        enable_context: &[u8],
    ) -> Result<SecureBox, BoxError> {
        let key = combination.state_sealing_key(&sealed.box_id.to_string());
        let plain = key.open(&header(sealed.box_id, sealed.version), &sealed.sealed)?;
        let image: StateImage = codec::from_stored_bytes(plain.expose_secret(), MAX_SEALED_LEN)?;
        drop(plain);
        let corrupt = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if image.box_id != sealed.box_id || image.version != sealed.version.0 {
            return Err(corrupt());
        }
        let rng = BoxRng::restore(DrbgState::from_bytes(&image.drbg)?, os, enable_context)?;
        let mut core = Core::new(
            image.box_id,
            image.installation,
            image.anchors.clone(),
            (
                SigningKey::from_bytes(image.identity),
                HpkePrivateKey::from_bytes(image.confidentiality),
                combination,
            ),
            rng,
        );
        core.version = StateVersion(image.version);
        core.tables = image.tables.clone();
        core.table_sequence = image.table_sequence;
        if !image.certificate.is_empty() {
            core.certificate = Some(
                Unverified::<Certificate>::from_bytes(&image.certificate)?
                    .verify(core.own_anchor())?,
            );
        }
        let typed = image.box_id.box_type();
        if typed != BoxType::Manufacturing && (image.manufacturing.is_some() || image.awaiting_kit)
        {
            return Err(corrupt());
        }
        Ok(match typed {
            BoxType::Manufacturing => SecureBox::Manufacturing(TypedBox::from_image(core, &image)?),
            BoxType::Oak => SecureBox::Oak(TypedBox::from_image(core, &image)?),
            BoxType::Steel => SecureBox::Steel(TypedBox::from_image(core, &image)?),
            BoxType::Brass => SecureBox::Brass(TypedBox::from_image(core, &image)?),
            BoxType::Tin => SecureBox::Tin(TypedBox::from_image(core, &image)?),
        })
    }
}
