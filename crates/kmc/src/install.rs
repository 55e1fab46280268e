//! Installation of one key (SPEC §6.1), as the KMC drives it:
//!
//! ```text
//!  allocate key ID (MI0') ─► MI1 ─► Oak ─► MI3, MI4
//!      refused as not fresh: burn the ID, allocate the next (bounded)
//!  MI3 committed: key New ─────────────────────────► only now MI4 leaves
//!  MI4 + meter ─► Steel (meter link) ─► MI7 ─► PSR Install Time, meter recorded
//!                                   └─► ABORTED ─► key Bad
//!  MI8 = MI3 + MI7 ─► Brass ─► MI9 ─► key Installed (KMS Install Time); MI10 for the KDC
//!                          └─► BAD ─► key Bad
//! ```
//!
//! Every failure after generation makes the key `Bad`; a retry is a new key.

use postkey_archive::{
    BurnKeyId, Cause, KeyFields, KeyStatus, KeyTimes, KeyUpdate, NewKey, SignedRecord, Store,
    StoreError, Subject, Transition,
};
use postkey_wire::{
    Aborted, BadKey, Body, BoxId, CommandCode, Context, DomainBundle, DomainId, DomainPublicKeys,
    GenerateKey, InstallConfirmed, Installed, InstalledKeyRecord, KeyForSteel, KeyId, Message,
    MeterId, NewKeyRecord, RecordType, Role, Sender, Timestamp, Unverified, Verified,
    peek_record_type,
};

use crate::{Boxes, Kmc, KmcError, Refusal};

/// The KMC's installation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallConfig {
    /// How many key IDs in a row an Oak box may refuse as not fresh before the order fails.
    pub max_burned_in_a_row: u32,
    /// After a KMC restart, a `New` key with no MI7 for this long becomes `Bad` (microseconds).
    pub mi7_timeout_micros: u64,
}

impl Default for InstallConfig {
    fn default() -> Self {
        Self { max_burned_in_a_row: 3, mi7_timeout_micros: 15 * 60 * 1_000_000 }
    }
}

/// One key to install: which domain, which boxes, which meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOrder {
    /// The key's domain.
    pub domain: DomainId,
    /// The Oak box that generates it.
    pub oak: BoxId,
    /// The Steel box that installs it.
    pub steel: BoxId,
    /// The Brass box that checks it.
    pub brass: BoxId,
    /// The meter it goes into.
    pub meter: MeterId,
}

/// How an order ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Installed: the MI10 record for the KDC.
    Installed {
        /// The key.
        key_id: KeyId,
        /// MI10, signed by the domain's Brass key.
        mi10: Vec<u8>,
    },
    /// The key is `Bad`; a retry uses a new key.
    Bad {
        /// The key.
        key_id: KeyId,
        /// Why.
        reason: String,
    },
}

fn verify<B: Body>(
    box_id: BoxId,
    bytes: &[u8],
    key: &postkey_crypto::VerifyingKey,
) -> Result<Verified<B>, KmcError> {
    Unverified::<B>::from_bytes(bytes)
        .and_then(|u| u.verify(key))
        .map_err(|error| KmcError::BadAnswer { box_id, error })
}

impl<S: Store> Kmc<S> {
    /// The domain's public keys, from its latest bundle, checked against the Domain Key Set.
    pub async fn domain_keys(&self, domain: &DomainId) -> Result<DomainPublicKeys, KmcError> {
        let bundle = self
            .store
            .latest_bundle(domain)
            .await?
            .ok_or_else(|| KmcError::NoBundle(domain.clone()))?;
        let verified = Unverified::<DomainBundle>::from_bytes(&bundle.bundle.bytes)
            .and_then(|b| b.verify(&self.domain_key_set))
            .map_err(|_| KmcError::NoBundle(domain.clone()))?;
        if &verified.body().domain != domain {
            return Err(KmcError::NoBundle(domain.clone()));
        }
        Ok(verified.body().public.clone())
    }

    /// MI1's certificate and process record of the Steel box, from the registry.
    async fn steel_papers(&self, steel: BoxId, domain: &DomainId) -> Result<GenerateKey, KmcError> {
        let record =
            self.store.box_record(steel).await?.ok_or(StoreError::NotFound(Subject::Box(steel)))?;
        let process = self
            .store
            .domain_processes(steel)
            .await?
            .into_iter()
            .find(|p| &p.domain == domain)
            .ok_or_else(|| KmcError::NotCertified(steel, domain.clone()))?;
        Ok(GenerateKey {
            steel_certificate: record.certificate.bytes,
            steel_process: process.record.bytes,
        })
    }

    /// Runs one order end to end. `now` is the KMC's clock (called at each recorded time).
    pub async fn install_key(
        &self,
        boxes: &mut impl Boxes,
        order: &KeyOrder,
        now: impl Fn() -> Timestamp,
    ) -> Result<KeyOutcome, KmcError> {
        let domain = &order.domain;
        let keys = self.domain_keys(domain).await?;
        let papers = self.steel_papers(order.steel, domain).await?;
        let kmc = Sender::Role(Role::Kmc);

        // MI0' and MI1, burning IDs Oak refuses as not fresh.
        let mut refused = 0;
        let (key_id, request_time, answer) = loop {
            let key_id = self.store.allocate_key_id(domain).await?;
            let request_time = now();
            let context = Context {
                domain: domain.clone(),
                sender: kmc.clone(),
                meter_id: None,
                key_id: Some(key_id),
                state_version: None,
                timestamp: request_time,
            };
            let mi1 = Message::new(context, papers.clone()).to_bytes();
            match boxes.call(order.oak, CommandCode::GENERATE_KEY, &[&mi1]) {
                Ok(answer) => break (key_id, request_time, answer),
                Err(refusal) => {
                    let burn = BurnKeyId {
                        domain: domain.clone(),
                        key_id,
                        reason: format!("{} refused MI1: {}", order.oak, refusal.message),
                        time: now(),
                        actor: kmc.clone(),
                    };
                    self.store.burn_key_id(&burn).await?;
                    if refusal.code != postkey_wire::ResponseCode::KEY_ID_NOT_FRESH {
                        return Err(refusal.into());
                    }
                    refused += 1;
                    if refused >= self.config.max_burned_in_a_row {
                        return Err(KmcError::KeyIdsRefused(order.oak, refused));
                    }
                }
            }
        };
        let [mi3_bytes, mi4_bytes] = answer.as_slice() else {
            return Err(KmcError::WrongAnswer { box_id: order.oak });
        };
        let mi3 = verify::<NewKeyRecord>(order.oak, mi3_bytes, &keys.oak_auth)?;
        let mi4 = verify::<KeyForSteel>(order.oak, mi4_bytes, &keys.oak_auth)?;
        for h in [mi3.header(), mi4.header()] {
            if h.key_id != Some(key_id) || &h.domain != domain {
                return Err(KmcError::WrongAnswer { box_id: order.oak });
            }
        }
        if mi3.body().steel != order.steel
            || mi4.body().steel != order.steel
            || mi3.body().oak != order.oak
        {
            return Err(KmcError::WrongAnswer { box_id: order.oak });
        }

        // MI3 committed as New before MI4 leaves.
        let created = NewKey {
            domain: domain.clone(),
            key_id,
            oak_id: order.oak,
            steel_id: order.steel,
            kms_request_time: request_time,
            time: now(),
            actor: Sender::Box(order.oak),
            record: SignedRecord::from_verified(&mi3),
        };
        self.store.create_key(&created).await?;

        // MI4 to Steel, which installs over the meter link and answers MI7 or ABORTED.
        let meter = order.meter.to_string();
        let answer = match boxes.call(
            order.steel,
            CommandCode::INSTALL_KEY,
            &[mi4.as_bytes(), meter.as_bytes()],
        ) {
            Ok(a) => a,
            Err(refusal) => return self.bad_by_refusal(domain, key_id, &refusal, now()).await,
        };
        let reply = answer.first().ok_or(KmcError::WrongAnswer { box_id: order.steel })?;
        if peek_record_type(reply).ok() == Some(RecordType::ABORTED) {
            let aborted = verify::<Aborted>(order.steel, reply, &keys.steel_auth)?;
            let reason = aborted.body().reason.clone();
            self.fail_key(
                domain,
                key_id,
                Cause::Record(SignedRecord::from_verified(&aborted)),
                now(),
                Sender::Box(order.steel),
            )
            .await?;
            return Ok(KeyOutcome::Bad { key_id, reason });
        }
        let mi7 = verify::<Installed>(order.steel, reply, &keys.steel_auth)?;
        if mi7.header().key_id != Some(key_id)
            || mi7.header().meter_id.as_ref() != Some(&order.meter)
            || &mi7.header().domain != domain
        {
            self.fail_key(
                domain,
                key_id,
                Cause::Reason("Steel answered an MI7 of another key or meter".into()),
                now(),
                kmc.clone(),
            )
            .await?;
            return Err(KmcError::WrongAnswer { box_id: order.steel });
        }
        // The PSR records the PSR Install Time when MI7 reaches it.
        let update = KeyUpdate {
            domain: domain.clone(),
            key_id,
            time: now(),
            actor: Sender::Role(Role::Psr),
            record: Some(SignedRecord::from_verified(&mi7)),
            fields: KeyFields {
                meter_id: Some(order.meter.clone()),
                times: KeyTimes { psr_install: Some(now()), ..KeyTimes::default() },
                ..KeyFields::default()
            },
        };
        self.store.update_key(&update).await?;

        // MI8 to Brass.
        let install_time = now();
        let answer = match boxes.call(
            order.brass,
            CommandCode::CHECK_INSTALL,
            &[mi3.as_bytes(), mi7.as_bytes()],
        ) {
            Ok(a) => a,
            Err(refusal) => return self.bad_by_refusal(domain, key_id, &refusal, now()).await,
        };
        match answer.as_slice() {
            [bad] if peek_record_type(bad).ok() == Some(RecordType::BAD) => {
                let bad = verify::<BadKey>(order.brass, bad, &keys.brass_auth)?;
                let reason = bad.body().reason.clone();
                self.fail_key(
                    domain,
                    key_id,
                    Cause::Record(SignedRecord::from_verified(&bad)),
                    now(),
                    Sender::Box(order.brass),
                )
                .await?;
                Ok(KeyOutcome::Bad { key_id, reason })
            }
            [mi9, mi10] => {
                let mi9 = verify::<InstalledKeyRecord>(order.brass, mi9, &keys.brass_auth)?;
                let mi10 = verify::<InstallConfirmed>(order.brass, mi10, &keys.brass_auth)?;
                if mi9.header().key_id != Some(key_id) || mi10.header().key_id != Some(key_id) {
                    return Err(KmcError::WrongAnswer { box_id: order.brass });
                }
                let t = Transition {
                    domain: domain.clone(),
                    key_id,
                    from: KeyStatus::New,
                    to: KeyStatus::Installed,
                    time: now(),
                    actor: Sender::Box(order.brass),
                    cause: Cause::Record(SignedRecord::from_verified(&mi9)),
                    fields: KeyFields {
                        times: KeyTimes { kms_install: Some(install_time), ..KeyTimes::default() },
                        ..KeyFields::default()
                    },
                };
                self.store.transition(&t).await?;
                Ok(KeyOutcome::Installed { key_id, mi10: mi10.as_bytes().to_vec() })
            }
            _ => Err(KmcError::WrongAnswer { box_id: order.brass }),
        }
    }

    async fn bad_by_refusal(
        &self,
        domain: &DomainId,
        key_id: KeyId,
        refusal: &Refusal,
        now: Timestamp,
    ) -> Result<KeyOutcome, KmcError> {
        let reason = format!("{} refused: {} [{}]", refusal.box_id, refusal.message, refusal.code);
        self.fail_key(domain, key_id, Cause::Reason(reason.clone()), now, Sender::Role(Role::Kmc))
            .await?;
        Ok(KeyOutcome::Bad { key_id, reason })
    }
}
