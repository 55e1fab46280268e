//! The installation processes of SPEC §6.1 inside the boxes: Oak generates (MI1 → MI3, MI4),
//! Steel installs over the meter link (MI4 → MI5, MI6 → MI7 or ABORTED), Brass checks
//! (MI3 + MI7 → MI9 and MI10, or BAD).
//!
//! Last-seen key IDs advance only after everything the message carries has been authenticated,
//! and every change is sealed by the runtime before the answer leaves the box. Refusals happen
//! before any change, so a refused message leaves the box as it was.

use postkey_crypto::{HpkeInfo, HpkeRecordType};
use postkey_secrets::{MasterKey, SecretBytes};
use postkey_wire::{
    Aborted, BadKey, BoxType, Certificate, Context, DomainId, GenerateKey, InstallConfirmed,
    Installed, InstalledKeyRecord, KeyForMeter, KeyForSteel, KeyId, Message, MeterHello, MeterId,
    MeterTestTokens, NewKeyRecord, ProcessRecord, ResponseCode, Sender, StateVersion, TestTokens,
    Timestamp, Unverified, Verified,
};
use subtle::ConstantTimeEq as _;

use crate::process::{DomainProcess, InFlight, ProcessKeys};
use crate::{BoxError, SecureBox, tables};

/// How far above the last processed key ID an Oak box accepts a new one (SPEC §6.1 default).
pub const DEFAULT_KEY_ID_WINDOW: u64 = 1_000_000;

/// The HPKE `info` for a sealed key of SPEC §4.
pub(crate) fn key_info(
    record: HpkeRecordType,
    domain: &DomainId,
    key_id: KeyId,
    recipient: &str,
) -> Result<HpkeInfo, BoxError> {
    HpkeInfo::new(record, domain.as_str(), key_id.get(), recipient)
        .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
}

/// `BRASS:<domain>`, the recipient of MI3 and MI9.
fn brass_recipient(domain: &DomainId) -> String {
    format!("BRASS:{domain}")
}

/// What an Oak box makes for one key (MI2).
#[derive(Debug)]
pub(crate) struct GeneratedKey {
    /// MI3, for the archive.
    pub mi3: Verified<NewKeyRecord>,
    /// MI4, for the Steel box; leaves the KMC only after MI3 is committed.
    pub mi4: Verified<KeyForSteel>,
}

/// The longest reason a Steel box writes into an ABORTED record, in bytes.
const MAX_REASON: usize = 256;

/// The first `max` bytes of `text`, cut at a character boundary.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The most installations a Steel box keeps in flight at once (a batch of the KMC's); each is a
/// few dozen bytes of sealed state.
pub const MAX_IN_FLIGHT: usize = 4096;

/// A Steel box's expectation for an installation in flight (memory only).
pub(crate) struct PendingInstall {
    meter_id: MeterId,
    expected: TestTokens,
}

/// The Steel papers of MI1 verified earlier in the same batch: the same bytes under the same
/// trust anchor verify the same way, so a batch of keys for one Steel box checks them once.
#[derive(Default)]
pub(crate) struct PapersMemo {
    last: Option<(Verified<Certificate>, Verified<ProcessRecord>)>,
}

impl PapersMemo {
    fn verify(
        &mut self,
        anchor: &postkey_crypto::VerifyingKey,
        papers: &GenerateKey,
    ) -> Result<(Verified<Certificate>, Verified<ProcessRecord>), BoxError> {
        if let Some((cert, record)) = &self.last
            && cert.as_bytes() == papers.steel_certificate.as_slice()
            && record.as_bytes() == papers.steel_process.as_slice()
        {
            return Ok((cert.clone(), record.clone()));
        }
        let cert =
            Unverified::<Certificate>::from_bytes(&papers.steel_certificate)?.verify(anchor)?;
        let record =
            Unverified::<ProcessRecord>::from_bytes(&papers.steel_process)?.verify(anchor)?;
        self.last = Some((cert.clone(), record.clone()));
        Ok((cert, record))
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

/// What a Brass process found in MI3 and MI7.
// Made once per key and moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum CheckOutcome {
    /// They match: MI9 for the archive and MI10 for the KDC.
    Installed {
        /// MI9.
        mi9: Verified<InstalledKeyRecord>,
        /// MI10.
        mi10: Verified<InstallConfirmed>,
    },
    /// They do not: BAD.
    Bad(Verified<BadKey>),
}

fn header_key(key_id: Option<KeyId>) -> Result<KeyId, BoxError> {
    key_id.ok_or(BoxError::Wire(postkey_wire::WireError::InvalidField {
        field: "key ID",
        reason: "missing from the header",
    }))
}

fn header_meter(meter_id: Option<&MeterId>) -> Result<MeterId, BoxError> {
    meter_id.cloned().ok_or(BoxError::Wire(postkey_wire::WireError::InvalidField {
        field: "meter ID",
        reason: "missing from the header",
    }))
}

impl SecureBox {
    fn process_of(&self, domain: &DomainId) -> Result<&DomainProcess, BoxError> {
        tables::check_domain(&self.tables, domain)?;
        self.processes.get(domain).ok_or_else(|| BoxError::UnknownDomain(domain.clone()))
    }

    fn key_context(
        &self,
        domain: &DomainId,
        key_id: KeyId,
        meter_id: Option<MeterId>,
        now: Timestamp,
    ) -> Context {
        Context { key_id: Some(key_id), meter_id, ..self.context(domain.clone(), now) }
    }

    /// Oak, MI1 → MI3 + MI4: checks that the domain is served here, that the Steel box is
    /// certified and runs a process of the domain, and that the key ID is fresh and within the
    /// window; then generates K and its test tokens and seals them.
    pub(crate) fn generate_key(
        &mut self,
        mi1: &Message<GenerateKey>,
        now: Timestamp,
        memo: &mut PapersMemo,
    ) -> Result<GeneratedKey, BoxError> {
        let order = mi1;
        let domain = order.header().domain.clone();
        let key_id = header_key(order.header().key_id)?;
        let process = self.process_of(&domain)?;
        let ProcessKeys::Oak { .. } = process.keys else {
            return Err(BoxError::WrongBoxType { expected: "oak", actual: self.box_type().name() });
        };
        let (cert, record) = memo.verify(&self.anchors.steel, order.body())?;
        let steel = cert.body().box_id;
        if steel.box_type() != BoxType::Steel {
            return Err(BoxError::WrongBoxType {
                expected: "steel",
                actual: steel.box_type().name(),
            });
        }
        if record.body().box_id != steel || record.body().domain != domain {
            return Err(BoxError::NotCertifiedForDomain(steel, domain));
        }
        let last = process.last_key_id;
        if key_id.get() <= last {
            return Err(BoxError::KeyIdNotFresh { got: key_id.get(), last });
        }
        if key_id.get() - last > DEFAULT_KEY_ID_WINDOW {
            return Err(BoxError::KeyIdBeyondWindow {
                got: key_id.get(),
                last,
                window: DEFAULT_KEY_ID_WINDOW,
            });
        }
        let brass_conf = process.public().brass_conf;
        let key = MasterKey::generate(&mut self.rng)?;
        let tokens = key.test_tokens();
        let mi3_sealed = key.seal_to(
            &brass_conf,
            &key_info(HpkeRecordType::Mi3, &domain, key_id, &brass_recipient(&domain))?,
            &mut self.rng,
        )?;
        let mut both = zeroize::Zeroizing::new([0u8; 48]);
        both[..32].copy_from_slice(key.expose_secret());
        both[32..].copy_from_slice(&tokens.to_bytes());
        let mi4_sealed = postkey_secrets::seal_secret(
            &cert.body().confidentiality,
            &key_info(HpkeRecordType::Mi4, &domain, key_id, &steel.to_string())?,
            &*both,
            &mut self.rng,
        )?;
        drop(key);
        // The signing key is looked up before anything changes, so that no refusal can follow
        // a change.
        self.oak_auth(&domain)?;
        // Everything authenticated and made: now the counter advances, durably before MI2 leaves.
        if let Some(p) = self.processes.get_mut(&domain) {
            p.last_key_id = key_id.get();
        }
        self.changed();
        let context = self.key_context(&domain, key_id, None, now);
        let oak_auth = self.oak_auth(&domain)?;
        let mi3 = postkey_wire::sign(
            Message::new(context.clone(), NewKeyRecord { oak: self.id, steel, sealed: mi3_sealed }),
            oak_auth,
        );
        let mi4 = postkey_wire::sign(
            Message::new(context, KeyForSteel { oak: self.id, steel, sealed: mi4_sealed }),
            oak_auth,
        );
        Ok(GeneratedKey { mi3, mi4 })
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
        if self.pending_install.len() >= MAX_IN_FLIGHT {
            return Err(BoxError::TooManyInFlight(MAX_IN_FLIGHT));
        }
        let domain = unverified.header().domain.clone();
        let process = self.process_of(&domain)?;
        let ProcessKeys::Steel { .. } = process.keys else {
            return Err(BoxError::WrongBoxType {
                expected: "steel",
                actual: self.box_type().name(),
            });
        };
        let mi4 = unverified.clone().verify(&process.public().oak_auth)?;
        let key_id = header_key(mi4.header().key_id)?;
        if mi4.body().steel != self.id {
            return Err(BoxError::NotForThisBox { addressed: mi4.body().steel, this: self.id });
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
        let opened: SecretBytes = self.confidentiality.open(
            &key_info(HpkeRecordType::Mi4, &domain, key_id, &self.id.to_string())?,
            &mi4.body().sealed,
        )?;
        let (k, tt) = opened
            .expose_secret()
            .split_at_checked(32)
            .ok_or(BoxError::Secret(postkey_secrets::SecretError::DecryptionFailed))?;
        let key = MasterKey::from_bytes(
            k.try_into()
                .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::DecryptionFailed))?,
        );
        let expected = TestTokens::from_bytes(
            tt.try_into()
                .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::DecryptionFailed))?,
        );
        let sealed = key.seal_to(
            &hello.body().transport,
            &key_info(HpkeRecordType::Mi5, &domain, key_id, &meter_id.to_string())?,
            &mut self.rng,
        )?;
        drop(key);
        let oak = mi4.body().oak;
        if let Some(p) = self.processes.get_mut(&domain) {
            p.last_key_id = key_id.get();
            p.in_flight.insert(key_id, InFlight { key_id, meter_id: meter_id.clone(), oak });
        }
        self.pending_install.insert(
            (domain.clone(), key_id),
            PendingInstall { meter_id: meter_id.clone(), expected },
        );
        self.changed();
        Ok(Message::new(
            self.key_context(&domain, key_id, Some(meter_id), now),
            KeyForMeter { sealed },
        ))
    }

    /// Whether a stop interrupted an installation that is still sealed as in flight: it must be
    /// aborted (RECOVER) before the box starts another.
    fn interrupted(&self) -> bool {
        // Every pending installation has its sealed in-flight record (both are made and ended
        // together), so a sealed record without one is exactly a surplus of records.
        let sealed: usize = self.processes.values().map(|p| p.in_flight.len()).sum();
        sealed > self.pending_install.len()
    }

    /// Ends an installation in flight: out of the sealed state and the pending map.
    fn end_install(
        &mut self,
        domain: &DomainId,
        key_id: KeyId,
    ) -> Option<(InFlight, PendingInstall)> {
        let pending = self.pending_install.remove(&(domain.clone(), key_id))?;
        let flight = self.processes.get_mut(domain).and_then(|p| p.in_flight.remove(&key_id))?;
        self.changed();
        Some((flight, pending))
    }

    fn oak_auth(&self, domain: &DomainId) -> Result<&postkey_secrets::SigningKey, BoxError> {
        match &self.process_of(domain)?.keys {
            ProcessKeys::Oak { oak_auth } => Ok(oak_auth),
            _ => Err(BoxError::WrongBoxType { expected: "oak", actual: self.box_type().name() }),
        }
    }

    fn steel_auth(&self, domain: &DomainId) -> Result<&postkey_secrets::SigningKey, BoxError> {
        match &self.process_of(domain)?.keys {
            ProcessKeys::Steel { steel_auth } => Ok(steel_auth),
            _ => Err(BoxError::WrongBoxType { expected: "steel", actual: self.box_type().name() }),
        }
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
        let pending = self
            .pending_install
            .get(&(domain.clone(), key_id))
            .ok_or(BoxError::NoInstallInFlight)?;
        if h.sender != Sender::Meter(pending.meter_id.clone()) {
            return Err(BoxError::NoInstallInFlight);
        }
        let matches = bool::from(answer.body().test_tokens.ct_eq(&pending.expected));
        self.steel_auth(domain)?;
        let domain = domain.clone();
        let (flight, _) = self.end_install(&domain, key_id).ok_or(BoxError::NoInstallInFlight)?;
        let context = self.key_context(&domain, key_id, Some(flight.meter_id), now);
        let steel_auth = self.steel_auth(&domain)?;
        Ok(if matches {
            InstallOutcome::Installed(postkey_wire::sign(
                Message::new(
                    context,
                    Installed {
                        oak: flight.oak,
                        steel: self.id,
                        test_tokens: answer.body().test_tokens,
                    },
                ),
                steel_auth,
            ))
        } else {
            InstallOutcome::Aborted(postkey_wire::sign(
                Message::new(
                    context,
                    Aborted {
                        steel: self.id,
                        reason: "the meter answered other test tokens than Oak's".into(),
                    },
                ),
                steel_auth,
            ))
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
        let (flight, _) = self.end_install(domain, key_id).ok_or(BoxError::NoInstallInFlight)?;
        let context = self.key_context(domain, key_id, Some(flight.meter_id), now);
        // The reason may quote a meter's words: bounded, so the signed record stays within its
        // size limit whatever the meter said.
        let body = Aborted { steel: self.id, reason: excerpt(reason, MAX_REASON) };
        Ok(postkey_wire::sign(Message::new(context, body), self.steel_auth(domain)?))
    }

    /// Steel, after a restart: an installation sealed as in flight was interrupted. Each one
    /// gets a signed ABORTED record, so its key becomes `Bad` and is never installed again.
    pub(crate) fn abort_interrupted(
        &mut self,
        now: Timestamp,
    ) -> Result<Vec<Verified<Aborted>>, BoxError> {
        let interrupted: Vec<(DomainId, InFlight)> = self
            .processes
            .iter()
            .flat_map(|(d, p)| p.in_flight.values().map(move |f| (d.clone(), f.clone())))
            .filter(|(d, f)| !self.pending_install.contains_key(&(d.clone(), f.key_id)))
            .collect();
        if interrupted.is_empty() {
            return Ok(Vec::new());
        }
        // Every ABORTED record is signed before any in-flight record is cleared: a failure on the
        // way leaves all of them in flight, to be aborted again.
        let version = StateVersion(self.version.0 + 1);
        let mut out = Vec::with_capacity(interrupted.len());
        for (domain, flight) in &interrupted {
            let context = Context {
                state_version: Some(version),
                ..self.key_context(domain, flight.key_id, Some(flight.meter_id.clone()), now)
            };
            let ProcessKeys::Steel { steel_auth } = &self.process_of(domain)?.keys else {
                return Err(BoxError::WrongBoxType {
                    expected: "steel",
                    actual: self.box_type().name(),
                });
            };
            let body = Aborted {
                steel: self.id,
                reason: "the Steel box stopped during the installation".into(),
            };
            out.push(postkey_wire::sign(Message::new(context, body), steel_auth));
        }
        for (domain, flight) in &interrupted {
            if let Some(p) = self.processes.get_mut(domain) {
                p.in_flight.remove(&flight.key_id);
            }
        }
        self.changed();
        Ok(out)
    }

    /// Brass, MI8 (MI3 + MI7) → MI9 + MI10, or BAD: checks Oak's and Steel's signatures with the
    /// domain's keys, that both records name the same key and boxes, opens K from MI3 and
    /// recomputes the test tokens the meter reported in MI7.
    pub(crate) fn check_install(
        &mut self,
        unverified3: Unverified<NewKeyRecord>,
        mi7: Unverified<Installed>,
        now: Timestamp,
    ) -> Result<CheckOutcome, BoxError> {
        let domain = unverified3.header().domain.clone();
        let process = self.process_of(&domain)?;
        let ProcessKeys::Brass { brass_conf, brass_auth, .. } = &process.keys else {
            return Err(BoxError::WrongBoxType {
                expected: "brass",
                actual: self.box_type().name(),
            });
        };
        let public = process.public().clone();
        let mi3 = unverified3.verify(&public.oak_auth)?;
        let mi7 = mi7.verify(&public.steel_auth)?;
        if mi7.header().domain != domain {
            return Err(BoxError::RecordMismatch("MI3 and MI7 belong to different domains"));
        }
        let key_id = header_key(mi3.header().key_id)?;
        let meter_id = header_meter(mi7.header().meter_id.as_ref())?;
        let context = self.key_context(&domain, key_id, Some(meter_id.clone()), now);
        let bad = |code: ResponseCode, reason: &str| {
            CheckOutcome::Bad(postkey_wire::sign(
                Message::new(
                    context.clone(),
                    BadKey { brass: self.id, code: code.0, reason: reason.into() },
                ),
                brass_auth,
            ))
        };
        if mi7.header().key_id != Some(key_id)
            || mi7.body().oak != mi3.body().oak
            || mi7.body().steel != mi3.body().steel
        {
            return Ok(bad(
                ResponseCode::RECORD_MISMATCH,
                "MI3 and MI7 name different keys or boxes",
            ));
        }
        let Ok(key) = brass_conf.open_master_key(
            &key_info(HpkeRecordType::Mi3, &domain, key_id, &brass_recipient(&domain))?,
            &mi3.body().sealed,
        ) else {
            return Ok(bad(
                ResponseCode::DECRYPTION_FAILED,
                "the archive copy of the key does not open",
            ));
        };
        if !bool::from(key.test_tokens().ct_eq(&mi7.body().test_tokens)) {
            return Ok(bad(
                ResponseCode::TEST_TOKENS_MISMATCH,
                "the meter's test tokens do not match the archive copy of the key",
            ));
        }
        let sealed = key.seal_to(
            &public.brass_conf,
            &key_info(HpkeRecordType::Mi9, &domain, key_id, &brass_recipient(&domain))?,
            &mut self.rng,
        )?;
        drop(key);
        let brass_auth = match &self.process_of(&domain)?.keys {
            ProcessKeys::Brass { brass_auth, .. } => brass_auth,
            _ => {
                return Err(BoxError::WrongBoxType {
                    expected: "brass",
                    actual: self.box_type().name(),
                });
            }
        };
        let mi9 = postkey_wire::sign(
            Message::new(
                context.clone(),
                InstalledKeyRecord { oak: mi3.body().oak, steel: mi3.body().steel, sealed },
            ),
            brass_auth,
        );
        let mi10 = postkey_wire::sign(
            Message::new(context, InstallConfirmed { brass: self.id }),
            brass_auth,
        );
        Ok(CheckOutcome::Installed { mi9, mi10 })
    }
}
