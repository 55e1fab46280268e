//! The sealed state at rest (SPEC §7.2 items 6–7): the whole box, AES-256-GCM-SIV under a key
//! derived from its operation combination and ID, with the header (box ID, state version) as
//! associated data. Nothing unsealed is ever written.
//!
//! File layout: `"PKBOX\x02"` ‖ box ID (9 ASCII bytes) ‖ state version (u64, big-endian) ‖
//! sealed image. The header is authenticated, so a file renamed to another box, or relabelled
//! with another version, does not open.

use std::collections::{BTreeMap, BTreeSet};

use postkey_secrets::OperationCombination;
use postkey_secrets::rng::{BoxRng, DrbgState, EntropySource};
use postkey_secrets::{DomainKeySetSeed, HpkePrivateKey, SigningKey};
use postkey_wire::command::InstallEnded;
use postkey_wire::{BoxId, Certificate, Delivery, StateVersion, Unverified, codec};

use crate::core::{Health, Kind};
use crate::image::{
    Blob, CounterImage, EndedImage, InFlightImage, ManufacturingImage, Pending, Seed, StateImage,
    TableSequence,
};
use crate::manufacturing::ManufacturingState;
use crate::{BoxError, SecureBox};

/// Version 2 of the layout's image carries the installation ID.
const MAGIC: &[u8; 6] = b"PKBOX\x02";
const HEADER_LEN: usize = 6 + 9 + 8;
/// The largest sealed state accepted.
pub const MAX_SEALED_LEN: usize = 4 * 1024 * 1024;

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

impl SecureBox {
    /// Seals the whole state under the current version.
    pub fn seal(&mut self) -> Result<SealedState, BoxError> {
        let image = self.image();
        let plain = codec::to_secret_bytes(&image, 256 * 1024);
        drop(image);
        let key = self.combination.state_sealing_key(&self.id.to_string());
        let sealed = key.seal(&header(self.id, self.version), &plain, &mut self.rng)?;
        Ok(SealedState { box_id: self.id, version: self.version, sealed })
    }

    fn image(&self) -> StateImage {
        let manufacturing = match &self.kind {
            Kind::Manufacturing(m) => Some(ManufacturingImage {
                domain_key_set: *m.domain_key_set.expose_secret(),
                startup: m.startup.iter().map(|k| Seed(*k.expose_secret())).collect(),
                ranges: m.ranges.clone(),
                certified: m.certified.iter().copied().collect(),
                pending: m
                    .pending
                    .iter()
                    .map(|(n, id)| Pending { nonce: *n, box_id: *id })
                    .collect(),
                table_sequences: m
                    .table_sequences
                    .iter()
                    .map(|(b, s)| TableSequence { box_id: *b, sequence: *s })
                    .collect(),
                domains: m.domains.iter().cloned().collect(),
                created: m.created.values().map(|b| Blob(b.clone())).collect(),
            }),
            _ => None,
        };
        StateImage {
            box_id: self.id,
            version: self.version.0,
            anchors: self.anchors.clone(),
            identity: *self.identity.expose_secret(),
            confidentiality: *self.confidentiality.expose_secret(),
            certificate: self
                .certificate
                .as_ref()
                .map(|c| c.as_bytes().to_vec())
                .unwrap_or_default(),
            tables: self.tables.clone(),
            table_sequence: self.table_sequence,
            drbg: self.rng.state().to_bytes().to_vec(),
            deliveries: self
                .processes
                .values()
                .map(|p| Blob(p.delivery.as_bytes().to_vec()))
                .collect(),
            manufacturing,
            awaiting_kit: matches!(self.kind, Kind::AwaitingKit),
            installation: self.installation,
            last_ended: self
                .last_ended
                .iter()
                .map(|e| match e {
                    InstallEnded::Installed(mi7) => {
                        EndedImage { installed: true, envelope: mi7.as_bytes().to_vec() }
                    }
                    InstallEnded::Aborted(a) => {
                        EndedImage { installed: false, envelope: a.as_bytes().to_vec() }
                    }
                })
                .collect(),
            counters: self
                .processes
                .values()
                .map(|p| CounterImage {
                    last_key_id: p.last_key_id,
                    in_flight: p
                        .in_flight
                        .values()
                        .map(|f| InFlightImage {
                            key_id: f.key_id,
                            meter_id: f.meter_id.clone(),
                            oak: f.oak,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Opens a sealed state with the operation combination recombined from its shares, resumes
    /// the generator (reseeded from `os`, `enable_context` unique to this enabling), and rebuilds
    /// every process from its delivery. Fails without detail if anything was altered.
    pub fn unseal(
        sealed: &SealedState,
        combination: OperationCombination,
        os: impl EntropySource + Send + 'static,
        enable_context: &[u8],
    ) -> Result<SecureBox, BoxError> {
        let key = combination.state_sealing_key(&sealed.box_id.to_string());
        let plain = key.open(&header(sealed.box_id, sealed.version), &sealed.sealed)?;
        let image: StateImage = codec::from_bytes(plain.expose_secret(), MAX_SEALED_LEN)?;
        drop(plain);
        let corrupt = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if image.box_id != sealed.box_id || image.version != sealed.version.0 {
            return Err(corrupt());
        }
        let rng = BoxRng::restore(DrbgState::from_bytes(&image.drbg)?, os, enable_context)?;
        let certificate = if image.certificate.is_empty() {
            None
        } else {
            Some(
                Unverified::<Certificate>::from_bytes(&image.certificate)?
                    .verify(image.anchors.for_type(image.box_id.box_type()))?,
            )
        };
        let kind = match &image.manufacturing {
            Some(m) => Kind::Manufacturing(Box::new(ManufacturingState {
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
            None if image.awaiting_kit => Kind::AwaitingKit,
            None => Kind::Other,
        };
        let mut secure_box = SecureBox {
            id: image.box_id,
            installation: image.installation,
            anchors: image.anchors.clone(),
            identity: SigningKey::from_bytes(image.identity),
            confidentiality: HpkePrivateKey::from_bytes(image.confidentiality),
            combination,
            certificate,
            tables: image.tables.clone(),
            table_sequence: image.table_sequence,
            version: StateVersion(image.version),
            rng,
            processes: BTreeMap::new(),
            kind,
            health: Health::Operational,
            dirty: false,
            pending_install: BTreeMap::new(),
            last_ended: image
                .last_ended
                .iter()
                .map(|e| {
                    Ok(if e.installed {
                        InstallEnded::Installed(Unverified::from_bytes(&e.envelope)?)
                    } else {
                        InstallEnded::Aborted(Unverified::from_bytes(&e.envelope)?)
                    })
                })
                .collect::<Result<_, postkey_wire::WireError>>()
                .map_err(|_| corrupt())?,
        };
        if image.counters.len() != image.deliveries.len() {
            return Err(corrupt());
        }
        for (blob, counter) in image.deliveries.iter().zip(&image.counters) {
            let delivery = Unverified::<Delivery>::from_bytes(&blob.0)?
                .verify(secure_box.anchors.for_type(secure_box.box_type()))?;
            let mut process = secure_box.open_delivery(delivery)?;
            process.last_key_id = counter.last_key_id;
            for f in &counter.in_flight {
                let flight = crate::process::InFlight {
                    key_id: f.key_id,
                    meter_id: f.meter_id.clone(),
                    oak: f.oak,
                };
                if process.in_flight.insert(f.key_id, flight).is_some() {
                    return Err(corrupt());
                }
            }
            secure_box.processes.insert(process.record().domain.clone(), process);
        }
        Ok(secure_box)
    }
}
