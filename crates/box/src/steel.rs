//! The Steel box: it installs master keys into meters over the meter link (protocol §6.1,
//! MI4 → MI5, MI6 → MI7 or ABORTED) and answers `RECOVER` after a stop. Its processes hold the
//! domain Steel authentication key; it alone keeps installations in flight.

use std::collections::BTreeMap;

use postkey_crypto::HpkeRecordType;
use postkey_secrets::{MasterKey, SecretBytes, SigningKey};
use postkey_wire::command::InstallEnded;
use postkey_wire::{
    Aborted, BoxId, Context, DomainId, Installed, KeyForMeter, KeyForSteel, KeyId, Message,
    MeterHello, MeterId, MeterTestTokens, Sender, StateVersion, TestTokens, Timestamp, Unverified,
    Verified,
};
use subtle::ConstantTimeEq as _;

use crate::BoxError;
use crate::core::sealed::RoleState;
use crate::core::{Core, TypedBox};
use crate::image::{EndedImage, InFlightImage, StateImage};
use crate::install::{excerpt, header_key, key_info};
use crate::process::{Processes, SteelKeys, serving_role};

/// The most installations a Steel box keeps in flight at once (a batch of the KMC's); each is a
/// few dozen bytes of sealed state.
pub const MAX_IN_FLIGHT: usize = 4096;

/// The longest reason a Steel box writes into an ABORTED record, in bytes.
const MAX_REASON: usize = 256;

/// A Steel box's installation in progress: the key and the meter (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The key being installed.
    pub key_id: KeyId,
    /// The meter it is being installed into.
    pub meter_id: MeterId,
    /// The Oak box that generated it.
    pub oak: BoxId,
}

/// What the meter must answer for an installation in flight (memory only).
struct PendingInstall {
    meter_id: MeterId,
    expected: TestTokens,
}

/// A Steel box's role: its processes, its installations in flight and the outcomes of its last
/// `INSTALL_KEY` batch.
#[derive(Default)]
pub struct Steel {
    processes: Processes<SteelKeys>,
    /// The installations in progress, by domain and key ID, sealed so that a crash is followed
    /// by an ABORTED record for each.
    in_flight: BTreeMap<(DomainId, KeyId), InFlight>,
    /// What the meter must answer for the installations this enabling began (memory only:
    /// after a crash the sealed in-flight record leads to ABORTED instead).
    pending: BTreeMap<(DomainId, KeyId), PendingInstall>,
    /// How each installation of its last batch ended (MI7 or ABORTED), sealed with the state,
    /// so that `RECOVER` answers them again to a KMC that stopped before it recorded them.
    pub(crate) last_ended: Vec<InstallEnded>,
}

impl core::fmt::Debug for Steel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Steel")
            .field("processes", &self.processes)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

serving_role!(Steel, SteelKeys, own_state);

impl RoleState for Steel {
    fn write_image(&self, image: &mut StateImage) {
        self.processes.write_image(image, |domain| {
            self.in_flight
                .iter()
                .filter(|((d, _), _)| d == domain)
                .map(|(_, f)| InFlightImage {
                    key_id: f.key_id,
                    meter_id: f.meter_id.clone(),
                    oak: f.oak,
                })
                .collect()
        });
        image.last_ended = self
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
            .collect();
    }

    fn read_image(core: &Core, image: &StateImage) -> Result<Self, BoxError> {
        let corrupt = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if image.checkpoints.is_some() {
            return Err(corrupt());
        }
        let mut in_flight = BTreeMap::new();
        let processes = Processes::read_image(core, image, |domain, counter| {
            for f in &counter.in_flight {
                let flight =
                    InFlight { key_id: f.key_id, meter_id: f.meter_id.clone(), oak: f.oak };
                if in_flight.insert((domain.clone(), f.key_id), flight).is_some() {
                    return Err(corrupt());
                }
            }
            Ok(())
        })?;
        let last_ended = image
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
            .map_err(|_| corrupt())?;
        Ok(Self { processes, in_flight, pending: BTreeMap::new(), last_ended })
    }
}

/// How an installation ended at the Steel box.
#[derive(Debug)]
pub(crate) enum InstallOutcome {
    /// The meter answered the right test tokens: MI7.
    Installed(Verified<Installed>),
    /// It did not: the key must become `Bad`.
    Aborted(Verified<Aborted>),
}

impl TypedBox<Steel> {
    /// The installations in progress.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.role.in_flight.values()
    }

    fn steel_auth(&self, domain: &DomainId) -> Result<&SigningKey, BoxError> {
        Ok(&self.process_of(domain)?.keys.steel_auth)
    }

    /// Steel, MI4 + the meter's hello → MI5: checks Oak's signature, that MI4 is addressed to
    /// this box and its key ID is fresh; opens K and Oak's test tokens; seals K to the meter's
    /// transport key. The in-flight installation is sealed before MI5 leaves.
    pub(crate) fn begin_install(
        &mut self,
        unverified: &Unverified<KeyForSteel>,
        ordered: &MeterId,
        hello: &Message<MeterHello>,
        now: Timestamp,
    ) -> Result<Message<KeyForMeter>, BoxError> {
        if self.interrupted() {
            return Err(BoxError::InstallInFlight);
        }
        if self.role.pending.len() >= MAX_IN_FLIGHT {
            return Err(BoxError::TooManyInFlight(MAX_IN_FLIGHT));
        }
        let this = self.core.id;
        let domain = unverified.header().domain.clone();
        let process = self.process_of(&domain)?;
        let mi4 = unverified.clone().verify(&process.public().oak_auth)?;
        let key_id = header_key(mi4.header().key_id)?;
        if mi4.body().steel != this {
            return Err(BoxError::NotForThisBox { addressed: mi4.body().steel, this });
        }
        let last = process.last_key_id;
        if key_id.get() <= last {
            return Err(BoxError::KeyIdNotFresh { got: key_id.get(), last });
        }
        // The key goes only into the meter the order names, for the order's domain: a meter on
        // the link that greets as another, or for another domain, gets nothing.
        let meter_id = match &hello.header().sender {
            Sender::Meter(m) if m == ordered && hello.header().domain == domain => m.clone(),
            Sender::Meter(_) => {
                return Err(BoxError::RecordMismatch(
                    "the meter on the link greets as another meter, or for another domain",
                ));
            }
            _ => {
                return Err(BoxError::RecordMismatch(
                    "the meter link's greeting does not come from a meter",
                ));
            }
        };
        let opened: SecretBytes = self.core.confidentiality.open(
            &key_info(HpkeRecordType::Mi4, &domain, key_id, &this.to_string())?,
            &mi4.body().sealed,
        )?;
        let failed = || BoxError::Secret(postkey_secrets::SecretError::DecryptionFailed);
        let (k, tt) = opened.expose_secret().split_at_checked(32).ok_or_else(failed)?;
        let key = MasterKey::from_bytes(k.try_into().map_err(|_| failed())?);
        let expected = TestTokens::from_bytes(tt.try_into().map_err(|_| failed())?);
        let sealed = key.seal_to(
            &hello.body().transport,
            &key_info(HpkeRecordType::Mi5, &domain, key_id, &meter_id.to_string())?,
            &mut self.core.rng,
        )?;
        drop(key);
        let oak = mi4.body().oak;
        if let Some(p) = self.role.processes.0.get_mut(&domain) {
            p.last_key_id = key_id.get();
        }
        let at = (domain.clone(), key_id);
        self.role
            .in_flight
            .insert(at.clone(), InFlight { key_id, meter_id: meter_id.clone(), oak });
        self.role.pending.insert(at, PendingInstall { meter_id: meter_id.clone(), expected });
        self.core.changed();
        Ok(Message::new(
            self.core.key_context(&domain, key_id, Some(meter_id), now),
            KeyForMeter { sealed },
        ))
    }

    /// Whether a stop interrupted an installation that is still sealed as in flight: it must be
    /// aborted (RECOVER) before the box starts another.
    fn interrupted(&self) -> bool {
        // Every pending installation has its sealed in-flight record (both are made and ended
        // together), so a sealed record without one is exactly a surplus of records.
        self.role.in_flight.len() > self.role.pending.len()
    }

    /// Ends an installation in flight: out of the sealed state and the pending map.
    fn end_install(&mut self, domain: &DomainId, key_id: KeyId) -> Option<InFlight> {
        let at = (domain.clone(), key_id);
        self.role.pending.remove(&at)?;
        let flight = self.role.in_flight.remove(&at)?;
        self.core.changed();
        Some(flight)
    }

    /// Steel, MI6 → MI7 (or ABORTED): compares the meter's test tokens with Oak's in constant
    /// time and ends that installation.
    pub(crate) fn finish_install(
        &mut self,
        domain: &DomainId,
        key_id: KeyId,
        answer: &Message<MeterTestTokens>,
        now: Timestamp,
    ) -> Result<InstallOutcome, BoxError> {
        // The answer must be about this installation: a meter that answers about another key of
        // the batch ends nothing.
        let h = answer.header();
        if &h.domain != domain || h.key_id != Some(key_id) {
            return Err(BoxError::NoInstallInFlight);
        }
        let pending =
            self.role.pending.get(&(domain.clone(), key_id)).ok_or(BoxError::NoInstallInFlight)?;
        if h.sender != Sender::Meter(pending.meter_id.clone()) {
            return Err(BoxError::NoInstallInFlight);
        }
        let matches = bool::from(answer.body().test_tokens.ct_eq(&pending.expected));
        // The signing key is looked up before anything changes, so that no refusal can follow
        // a change.
        self.steel_auth(domain)?;
        let flight = self.end_install(domain, key_id).ok_or(BoxError::NoInstallInFlight)?;
        let context = self.core.key_context(domain, key_id, Some(flight.meter_id), now);
        let steel = self.core.id;
        let steel_auth = self.steel_auth(domain)?;
        Ok(if matches {
            let body = Installed { oak: flight.oak, steel, test_tokens: answer.body().test_tokens };
            InstallOutcome::Installed(postkey_wire::sign(Message::new(context, body), steel_auth))
        } else {
            let reason = "the meter answered other test tokens than Oak's".into();
            let body = Aborted { steel, reason };
            InstallOutcome::Aborted(postkey_wire::sign(Message::new(context, body), steel_auth))
        })
    }

    /// Steel: an installation in flight failed at the meter (the meter refused MI5, did not
    /// answer, or answered an MI6 that ends no installation): a signed ABORTED record with
    /// `reason` ends it, and its key becomes `Bad`.
    pub(crate) fn abort_install(
        &mut self,
        domain: &DomainId,
        key_id: KeyId,
        reason: &str,
        now: Timestamp,
    ) -> Result<Verified<Aborted>, BoxError> {
        self.steel_auth(domain)?;
        let flight = self.end_install(domain, key_id).ok_or(BoxError::NoInstallInFlight)?;
        let context = self.core.key_context(domain, key_id, Some(flight.meter_id), now);
        // The reason may quote a meter's words: bounded, so the signed record stays within its
        // size limit whatever the meter said.
        let body = Aborted { steel: self.core.id, reason: excerpt(reason, MAX_REASON) };
        Ok(postkey_wire::sign(Message::new(context, body), self.steel_auth(domain)?))
    }

    /// `RECOVER`: every installation sealed as in flight that this enabling did not begin was
    /// interrupted by a stop. Each gets a signed ABORTED record, so its key becomes `Bad` and is
    /// never installed again; those records replace the last batch's outcomes (the KMC recorded
    /// those before it sent the batch that was interrupted), so a KMC that stops before it
    /// records them gets them again from the next `RECOVER`. Answers the last batch's outcomes.
    pub(crate) fn recover(&mut self, now: Timestamp) -> Result<Vec<InstallEnded>, BoxError> {
        let interrupted: Vec<(DomainId, InFlight)> = self
            .role
            .in_flight
            .iter()
            .filter(|(at, _)| !self.role.pending.contains_key(at))
            .map(|(at, f)| (at.0.clone(), f.clone()))
            .collect();
        if interrupted.is_empty() {
            return Ok(self.role.last_ended.clone());
        }
        // Every ABORTED record is signed before any in-flight record is cleared: a failure on the
        // way leaves all of them in flight, to be aborted again.
        let version = StateVersion(self.core.version.0 + 1);
        let mut aborted = Vec::with_capacity(interrupted.len());
        for (domain, flight) in &interrupted {
            let context = Context {
                state_version: Some(version),
                ..self.core.key_context(domain, flight.key_id, Some(flight.meter_id.clone()), now)
            };
            let body = Aborted {
                steel: self.core.id,
                reason: "the Steel box stopped during the installation".into(),
            };
            let signed = postkey_wire::sign(Message::new(context, body), self.steel_auth(domain)?);
            aborted.push(InstallEnded::Aborted(signed.into()));
        }
        for (domain, flight) in &interrupted {
            self.role.in_flight.remove(&(domain.clone(), flight.key_id));
        }
        self.role.last_ended = aborted;
        self.core.changed();
        Ok(self.role.last_ended.clone())
    }
}
