//! What the KMC does when it opens a production line, before any new order (protocol §1 items 3
//! and 5, §6.1; docs/installation.md, "After a stop"): every key a stopped run left past generation
//! ends `Installed` or `Bad`, with its reason, never retried with the same key.
//!
//! ```text
//!  RECOVER at Steel ─► ABORTED (interrupted, or of its last batch) ─► key Bad, with the record
//!                  └─► MI7 of its last batch, never recorded ─► recorded (PSR Install Time)
//!  IDs the line's Oak box reserved that never became keys ─► burned
//!  keys still New for this Steel box:
//!      with MI7  ─► MI8 to Brass again (MI3 and MI7 from the archive) ─► Installed or Bad
//!      without   ─► Bad: MI4 never reached the Steel box (the meter holds nothing)
//! ```
//!
//! The caller holds the line's boxes alone (their box locks): no other run can be installing
//! through them meanwhile.

use std::collections::{BTreeMap, BTreeSet};

use postkey_archive::{
    BurnKeyId, Cause, Changes, KeyFields, KeyFilter, KeyRecord, KeyStatus, KeyTimes, KeyUpdate,
    SignedRecord, Store,
};
use postkey_wire::command::{InstallEnded, Recover};
use postkey_wire::{
    BoxId, DomainId, Installed, KeyId, NewKeyRecord, RecordType, Role, Sender, Timestamp,
    Unverified,
};

use crate::install::{Batch, KeyOrder, Live};
use crate::link::call_one;
use crate::roles::KeyRole;
use crate::{Boxes, Kmc, KmcError};

/// The boxes of one production line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineBoxes {
    /// Its Oak box.
    pub oak: BoxId,
    /// Its Steel box.
    pub steel: BoxId,
    /// Its Brass box.
    pub brass: BoxId,
}

/// What settling a line did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Keys made `Bad` with Steel's ABORTED record.
    pub aborted: Vec<(DomainId, KeyId)>,
    /// Keys whose MI7 Steel answered again, now recorded.
    pub mi7_recorded: Vec<(DomainId, KeyId)>,
    /// Keys sent to Brass again: each is now `Installed` or `Bad`.
    pub rechecked: Vec<(DomainId, KeyId)>,
    /// Keys made `Bad` because MI4 never reached the Steel box.
    pub never_installed: Vec<(DomainId, KeyId)>,
    /// IDs the line's Oak box had reserved that never became keys, now burned.
    pub burned: Vec<(DomainId, KeyId)>,
}

impl Settled {
    /// Whether there was nothing to settle.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl core::fmt::Display for Settled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} ABORTED, {} MI7 recorded, {} checked at Brass again, {} never reached Steel, {} \
             reserved IDs burned",
            self.aborted.len(),
            self.mi7_recorded.len(),
            self.rechecked.len(),
            self.never_installed.len(),
            self.burned.len()
        )
    }
}

impl<S: Store> Kmc<S> {
    /// Settles every key a stopped run left between generation and `Installed` on `line`.
    pub async fn settle_line(
        &self,
        boxes: &impl Boxes,
        line: LineBoxes,
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<Settled, KmcError> {
        let mut settled = self.recover_steel(boxes, line.steel, &now).await?;
        settled.burned = self.burn_reserved(line.oak, &now).await?;
        let mut recheck = Vec::new();
        let mut transitions = Vec::new();
        for domain in self.steel_domains(line.steel).await? {
            for key in self.new_keys_of(&domain, line.steel).await? {
                if key.times.psr_install.is_some() {
                    recheck.push(key);
                } else {
                    let reason = "the run stopped before MI4 reached the Steel box".to_owned();
                    transitions.push(bad(&key, Cause::Reason(reason), now(), kmc()));
                    settled.never_installed.push((domain.clone(), key.key_id));
                }
            }
        }
        if !transitions.is_empty() {
            self.store.apply(&Changes { transitions, ..Changes::default() }).await?;
        }
        if !recheck.is_empty() {
            settled.rechecked = recheck.iter().map(|k| (k.domain.clone(), k.key_id)).collect();
            let batch = self.rebuild(recheck, line).await?;
            self.check(boxes, batch, &now).await?;
        }
        Ok(settled)
    }

    /// RECOVER at Steel box `steel`: each ABORTED makes its key `Bad` with the record; each MI7
    /// of its last batch that the archive lacks is recorded. The box's new version goes with
    /// them.
    async fn recover_steel(
        &self,
        boxes: &impl Boxes,
        steel: BoxId,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Settled, KmcError> {
        let (ended, version) = call_one(boxes, steel, Recover {}).await?;
        let mut settled = Settled::default();
        let mut transitions = Vec::new();
        let mut updates = Vec::new();
        let mut public = BTreeMap::new();
        for e in ended {
            let domain = match &e {
                InstallEnded::Installed(mi7) => mi7.header().domain.clone(),
                InstallEnded::Aborted(a) => a.header().domain.clone(),
            };
            if !public.contains_key(&domain) {
                public.insert(domain.clone(), self.domain_keys(&domain).await?);
            }
            let keys = &public[&domain];
            let bad_answer = |error| KmcError::BadAnswer { box_id: steel, error };
            match e {
                InstallEnded::Aborted(a) => {
                    let a = a.verify(&keys.steel_auth).map_err(bad_answer)?;
                    let Some(key) = self.new_key(&domain, a.header().key_id, steel).await? else {
                        continue;
                    };
                    let cause = Cause::Record(SignedRecord::from_verified(&a));
                    transitions.push(bad(&key, cause, now(), Sender::Box(steel)));
                    settled.aborted.push((domain, key.key_id));
                }
                InstallEnded::Installed(mi7) => {
                    let mi7 = mi7.verify(&keys.steel_auth).map_err(bad_answer)?;
                    let Some(key) = self.new_key(&domain, mi7.header().key_id, steel).await? else {
                        continue;
                    };
                    if key.times.psr_install.is_some() {
                        continue;
                    }
                    if mi7.header().meter_id != key.meter_id {
                        return Err(KmcError::WrongAnswer { box_id: steel });
                    }
                    let time = now();
                    updates.push(KeyUpdate {
                        domain: domain.clone(),
                        key_id: key.key_id,
                        time,
                        actor: Sender::Role(Role::Psr),
                        record: Some(SignedRecord::from_verified(&mi7)),
                        fields: KeyFields {
                            times: KeyTimes { psr_install: Some(time), ..KeyTimes::default() },
                            ..KeyFields::default()
                        },
                    });
                    settled.mi7_recorded.push((domain, key.key_id));
                }
            }
        }
        // The keys settled and Steel's new version, together.
        let changes =
            Changes { transitions, updates, versions: vec![version], ..Changes::default() };
        self.store.apply(&changes).await?;
        Ok(settled)
    }

    /// Burns every ID Oak box `oak` reserved that never became a key, and ends its reservations.
    async fn burn_reserved(
        &self,
        oak: BoxId,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Vec<(DomainId, KeyId)>, KmcError> {
        let released = self.store.reservations(oak).await?;
        if released.is_empty() {
            return Ok(Vec::new());
        }
        let mut burned_before: BTreeMap<DomainId, BTreeSet<KeyId>> = BTreeMap::new();
        let mut burns = Vec::new();
        for r in &released {
            if !burned_before.contains_key(&r.domain) {
                let ids = self.store.burned_key_ids(&r.domain).await?.into_iter().map(|b| b.key_id);
                burned_before.insert(r.domain.clone(), ids.collect());
            }
            for key_id in r.range.ids() {
                if burned_before[&r.domain].contains(&key_id)
                    || self.store.key(&r.domain, key_id).await?.is_some()
                {
                    continue;
                }
                burns.push(BurnKeyId {
                    domain: r.domain.clone(),
                    key_id,
                    reason: format!(
                        "reserved for {oak} by a run that stopped before its key was created"
                    ),
                    time: now(),
                    actor: kmc(),
                });
            }
        }
        let burned = burns.iter().map(|b| (b.domain.clone(), b.key_id)).collect();
        self.store.apply(&Changes { burns, released, ..Changes::default() }).await?;
        Ok(burned)
    }

    /// The domains Steel box `steel` runs processes of.
    async fn steel_domains(&self, steel: BoxId) -> Result<Vec<DomainId>, KmcError> {
        Ok(self.store.domain_processes(steel).await?.into_iter().map(|p| p.domain).collect())
    }

    /// Key `key_id` of `domain`, if it is `New` and addressed to Steel box `steel`.
    async fn new_key(
        &self,
        domain: &DomainId,
        key_id: Option<KeyId>,
        steel: BoxId,
    ) -> Result<Option<KeyRecord>, KmcError> {
        let Some(key_id) = key_id else { return Err(KmcError::WrongAnswer { box_id: steel }) };
        Ok(self
            .store
            .key(domain, key_id)
            .await?
            .filter(|k| k.status == KeyStatus::New && k.steel_id == steel))
    }

    /// Every `New` key of `domain` addressed to Steel box `steel`.
    async fn new_keys_of(
        &self,
        domain: &DomainId,
        steel: BoxId,
    ) -> Result<Vec<KeyRecord>, KmcError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let filter = KeyFilter {
                status: Some(KeyStatus::New),
                after,
                ..KeyFilter::domain(domain.clone(), 1000)
            };
            let page = self.store.keys(&filter).await?;
            let Some(last) = page.last() else { return Ok(out) };
            after = Some(last.key_id);
            out.extend(page.into_iter().filter(|k| k.steel_id == steel));
        }
    }

    /// The keys whose MI7 is archived, as a batch for Brass: MI3 and MI7 read back from the
    /// archive and verified with the domain's keys.
    async fn rebuild(&self, keys: Vec<KeyRecord>, line: LineBoxes) -> Result<Batch, KmcError> {
        let mut batch = Batch::new(keys.len());
        let mut bundles = BTreeMap::new();
        for (index, key) in keys.into_iter().enumerate() {
            if !bundles.contains_key(&key.domain) {
                bundles.insert(key.domain.clone(), self.bundle(&key.domain).await?);
            }
            let bundle = &bundles[&key.domain];
            let p = &bundle.public;
            let records = self.store.records(&key.domain, key.key_id).await?;
            let find = |t: RecordType| records.iter().rev().find(|r| r.record.record_type == t);
            let broken =
                |why: &'static str| KmcError::ArchivedRecord(key.domain.clone(), key.key_id, why);
            let mi3 = find(RecordType::MI3).ok_or_else(|| broken("no MI3"))?;
            let mi7 = find(RecordType::MI7).ok_or_else(|| broken("no MI7"))?;
            let mi3 = Unverified::<NewKeyRecord>::from_bytes(&mi3.record.bytes)
                .and_then(|r| r.verify(&p.oak_auth))
                .map_err(|_| broken("its MI3 does not verify"))?;
            let mi7 = Unverified::<Installed>::from_bytes(&mi7.record.bytes)
                .and_then(|r| r.verify(&p.steel_auth))
                .map_err(|_| broken("its MI7 does not verify"))?;
            let Some(meter) = key.meter_id.clone() else { return Err(broken("no meter")) };
            let role =
                KeyRole::of(bundle.kind).ok_or_else(|| broken("a domain of no meter key"))?;
            let order = KeyOrder {
                domain: key.domain.clone(),
                oak: key.oak_id,
                steel: line.steel,
                brass: line.brass,
                meter,
                role,
            };
            batch.live.push(Live {
                index,
                order,
                key_id: key.key_id,
                mi3,
                mi4: None,
                mi7: Some(mi7),
            });
        }
        batch.keys = bundles.into_iter().map(|(d, b)| (d, b.public)).collect();
        Ok(batch)
    }
}

fn kmc() -> Sender {
    Sender::Role(Role::Kmc)
}

/// A `New` key's transition to `Bad`, never dated before the key's last change.
fn bad(
    key: &KeyRecord,
    cause: Cause,
    now: Timestamp,
    actor: Sender,
) -> postkey_archive::Transition {
    crate::install::to_bad(&key.domain, key.key_id, cause, actor, now.max(key.updated))
}
