//! Registration (protocol §6.2) and withdrawal (protocol §6.3), as the KMC drives them:
//!
//! ```text
//!  meter's MR1 × 2 ─► checks against the archive (both keys Installed and the meter's, ISN free,
//!                     not withdrawn; an identical registration again changes nothing)
//!  MR2 = MR1 + the key's MI9 ─► the Brass box serving its sub-domain ─► MR3 + MR4
//!  both MR4 verified ─► one transaction: both keys Active (MR3 the cause, MR4 kept), or neither
//!  withdraw ─► each domain's Brass signs WITHDRAW ─► one transaction: both Obsolete, or neither
//! ```
//!
//! A batch of meters costs one box call per Brass box and one archive transaction; a meter the
//! archive refuses is applied alone after, so only it fails (docs/registration.md).

use std::collections::BTreeMap;

use postkey_archive::{
    Cause, Changes, KeyFields, KeyRecord, KeyStatus, KeyTimes, KeyUpdate, Registration,
    SignedRecord, Store, StoreError, Transition,
};
use postkey_wire::command::{Register, Registered, Withdraw};
use postkey_wire::{
    BoxId, BoxType, DomainId, DomainPublicKeys, InstalledKeyRecord, KeyId, MeterId, RecordType,
    RegistrationConfirmed, RegistrationRequest, Sender, SubdomainId, Timestamp, Unverified,
    Verified, Withdrawn,
};

use crate::apply::whole;
use crate::link::call;
use crate::{Boxes, Kmc, KmcError};

/// One meter's registration: its MR1 for each of its two keys, as the meter made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRegistration {
    /// The meter.
    pub meter: MeterId,
    /// MR1 of each key.
    pub requests: Vec<postkey_wire::Message<RegistrationRequest>>,
}

/// How a meter's registration ended (a refusal is an error instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Both keys are `Active` now: each key, with the MR4 its Brass box signed.
    Registered(Vec<(DomainId, KeyId, Box<Unverified<RegistrationConfirmed>>)>),
    /// Registered already with the same data: nothing changed.
    Unchanged(Vec<(DomainId, KeyId)>),
}

/// Each meter's result, in order.
pub type RegistrationResult = Result<RegistrationOutcome, KmcError>;

/// A batch past its Brass boxes: the results settled so far (refusals, meters unchanged), and
/// each registered meter's place, changes and MR4s.
struct Prepared {
    results: Vec<Option<RegistrationResult>>,
    per_meter: Vec<(usize, Changes, Confirmations)>,
    versions: Vec<postkey_archive::BoxVersion>,
}

/// A meter's keys and the MR4 of each.
type Confirmations = Vec<(DomainId, KeyId, Box<Unverified<RegistrationConfirmed>>)>;

/// A key's place in a batch: its meter's plan, and the key among the plan's.
type Place = (usize, usize);

/// One key of a meter to register: its record, the request, and the Brass box to ask.
struct Pending {
    key: KeyRecord,
    request: postkey_wire::Message<RegistrationRequest>,
    brass: BoxId,
    mi9: Unverified<InstalledKeyRecord>,
}

/// A meter's plan: the keys still to register (none: registered already, identically).
struct Plan {
    index: usize,
    pending: Vec<Pending>,
    unchanged: Vec<(DomainId, KeyId)>,
}

impl<S: Store> Kmc<S> {
    /// Registers each meter's two keys (protocol §6.2): one result per meter, in order. The
    /// outer error (the archive failed) stops the batch; nothing of it is half applied: each
    /// meter's two keys become `Active` in one transaction, or neither does.
    pub async fn register(
        &self,
        boxes: &impl Boxes,
        meters: Vec<MeterRegistration>,
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<Vec<RegistrationResult>, KmcError> {
        let prepared = self.prepare(boxes, meters, &now).await?;
        self.commit(prepared).await
    }

    /// Registers batches of meters as a two-stage pipeline: while the archive takes batch n's
    /// changes, the Brass boxes register batch n + 1 (each stage takes the batches in order).
    /// `done` receives each batch's results, in order. A meter's ISN taken by a meter of the
    /// batch before it is found by the archive's unique index when its changes are applied.
    pub async fn register_batches(
        &self,
        boxes: &impl Boxes,
        batches: impl Iterator<Item = Vec<MeterRegistration>>,
        mut done: impl FnMut(Vec<RegistrationResult>),
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<(), KmcError> {
        let (to_archive, mut at_archive) = tokio::sync::mpsc::channel::<Prepared>(1);
        let now = &now;
        let brass = async move {
            for meters in batches {
                let prepared = self.prepare(boxes, meters, now).await?;
                if to_archive.send(prepared).await.is_err() {
                    break;
                }
            }
            Ok::<_, KmcError>(())
        };
        let archive = async move {
            while let Some(prepared) = at_archive.recv().await {
                done(self.commit(prepared).await?);
            }
            Ok::<_, KmcError>(())
        };
        // A stage that fails drops its channel end, which stops the other.
        let (a, b) = tokio::join!(brass, archive);
        a.and(b)
    }

    /// Stage 1: each meter planned against the archive, its keys registered by their Brass
    /// boxes and the answers checked; the changes of each meter whose every key registered.
    async fn prepare(
        &self,
        boxes: &impl Boxes,
        meters: Vec<MeterRegistration>,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Prepared, KmcError> {
        let ids: Vec<MeterId> = meters.iter().map(|m| m.meter.clone()).collect();
        let mut held: BTreeMap<MeterId, Vec<KeyRecord>> = BTreeMap::new();
        for k in self.store.keys_of_meters(&ids).await? {
            if let Some(m) = k.meter_id.clone() {
                held.entry(m).or_default().push(k);
            }
        }
        let mut results: Vec<Option<RegistrationResult>> = meters.iter().map(|_| None).collect();
        let mut plans = Vec::new();
        let mut brass_of: BTreeMap<SubdomainId, BoxId> = BTreeMap::new();
        for (index, m) in meters.into_iter().enumerate() {
            let keys = held.remove(&m.meter).unwrap_or_default();
            match self.plan(index, m, keys, &mut brass_of).await {
                Ok(plan) if plan.pending.is_empty() => {
                    results[index] = Some(Ok(RegistrationOutcome::Unchanged(plan.unchanged)));
                }
                Ok(plan) => plans.push(plan),
                Err(KmcError::Store(e)) if whole(&e) => return Err(e.into()),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        // MR2 to each Brass box, one batch per box, each meter's keys in their place.
        let mut groups: BTreeMap<BoxId, Vec<(Place, Register)>> = BTreeMap::new();
        for (p, plan) in plans.iter().enumerate() {
            for (k, pending) in plan.pending.iter().enumerate() {
                let item = Register { mr1: pending.request.clone(), mi9: pending.mi9.clone() };
                groups.entry(pending.brass).or_default().push(((p, k), item));
            }
        }
        let mut answers: BTreeMap<Place, Result<Registered, KmcError>> = BTreeMap::new();
        let mut versions = Vec::new();
        for (brass, members) in groups {
            let (places, items): (Vec<Place>, Vec<Register>) = members.into_iter().unzip();
            match call(boxes, brass, items).await {
                Ok(called) => {
                    versions.push(called.version);
                    for (place, a) in places.into_iter().zip(called.answers) {
                        answers.insert(place, a.map_err(KmcError::from));
                    }
                }
                Err(refusal) => {
                    for place in places {
                        answers.insert(place, Err(refusal.clone().into()));
                    }
                }
            }
        }
        // Each meter whose every key registered becomes one set of changes.
        let mut keys: BTreeMap<DomainId, DomainPublicKeys> = BTreeMap::new();
        for pending in plans.iter().flat_map(|p| &p.pending) {
            if !keys.contains_key(&pending.key.domain) {
                let public = self.domain_keys(&pending.key.domain).await?;
                keys.insert(pending.key.domain.clone(), public);
            }
        }
        let time = now();
        let mut per_meter = Vec::new();
        for (p, plan) in plans.into_iter().enumerate() {
            let mut changes = Changes::default();
            let mut confirmed = Vec::new();
            let mut failed = None;
            for (k, pending) in plan.pending.into_iter().enumerate() {
                let answer = answers.remove(&(p, k)).unwrap_or(Err(KmcError::Unfinished));
                let public = keys.get(&pending.key.domain);
                match answer.and_then(|r| accept(&pending, r, public, time)) {
                    Ok((transition, update, mr4)) => {
                        confirmed.push((
                            pending.key.domain.clone(),
                            pending.key.key_id,
                            Box::new(mr4.into()),
                        ));
                        changes.updates.push(update);
                        changes.transitions.push(transition);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            match failed {
                Some(e) => results[plan.index] = Some(Err(e)),
                None => per_meter.push((plan.index, changes, confirmed)),
            }
        }
        Ok(Prepared { results, per_meter, versions })
    }

    /// Stage 2: the batch's changes in one archive transaction, or, if the archive refuses it
    /// for what one meter holds, meter by meter; each meter's result.
    async fn commit(&self, prepared: Prepared) -> Result<Vec<RegistrationResult>, KmcError> {
        let Prepared { mut results, per_meter, versions } = prepared;
        let all = Changes {
            versions: versions.clone(),
            updates: per_meter.iter().flat_map(|(_, c, _)| c.updates.clone()).collect(),
            transitions: per_meter.iter().flat_map(|(_, c, _)| c.transitions.clone()).collect(),
            ..Changes::default()
        };
        let applied = if all.is_empty() { Ok(()) } else { self.store.apply(&all).await.map(drop) };
        match applied {
            Ok(()) => {
                for (index, _, confirmed) in per_meter {
                    results[index] = Some(Ok(RegistrationOutcome::Registered(confirmed)));
                }
            }
            Err(e) if whole(&e) => return Err(e.into()),
            Err(_) => {
                // One meter's changes refused the batch: each meter alone, so only it fails.
                if !versions.is_empty() {
                    self.store.apply(&Changes { versions, ..Changes::default() }).await?;
                }
                for (index, changes, confirmed) in per_meter {
                    results[index] = Some(match self.store.apply(&changes).await {
                        Ok(_) => Ok(RegistrationOutcome::Registered(confirmed)),
                        Err(e) if whole(&e) => return Err(e.into()),
                        Err(e) => Err(refusal_of(e)),
                    });
                }
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or(Err(KmcError::Unfinished))).collect())
    }

    /// Checks a meter's requests against the archive and finds, for each key still to register,
    /// its MI9 and the Brass box serving its sub-domain.
    async fn plan(
        &self,
        index: usize,
        m: MeterRegistration,
        keys: Vec<KeyRecord>,
        brass_of: &mut BTreeMap<SubdomainId, BoxId>,
    ) -> Result<Plan, KmcError> {
        let meter = m.meter.clone();
        let bad = |why| KmcError::BadRegistration { meter: meter.clone(), why };
        if keys.iter().any(|k| k.status == KeyStatus::Obsolete) {
            return Err(KmcError::MeterWithdrawn(meter));
        }
        let [a, b] = m.requests.as_slice() else {
            return Err(bad("a registration is one request per key of the meter, two"));
        };
        if a.header().domain == b.header().domain {
            return Err(bad("both requests are for keys of one domain"));
        }
        let (ra, rb) = (a.body(), b.body());
        if ra.isn != rb.isn || ra.country != rb.country || ra.date != rb.date {
            return Err(bad("the two requests differ in ISN, country or date"));
        }
        let mut plan = Plan { index, pending: Vec::new(), unchanged: Vec::new() };
        for request in m.requests {
            let h = request.header();
            if h.meter_id.as_ref() != Some(&meter) || h.sender != Sender::Meter(meter.clone()) {
                return Err(bad("a request is not this meter's"));
            }
            let key = keys
                .iter()
                .find(|k| k.domain == h.domain && Some(k.key_id) == h.key_id)
                .ok_or_else(|| bad("a request names a key this meter does not hold"))?;
            let r = request.body();
            let asked = Registration { subdomain: r.subdomain.clone(), isn: r.isn.clone() };
            match key.status {
                KeyStatus::Active
                    if key.registration.as_ref() == Some(&asked)
                        && key.times.meter_registration == Some(r.date) =>
                {
                    plan.unchanged.push((key.domain.clone(), key.key_id));
                    continue;
                }
                KeyStatus::Active => return Err(KmcError::MeterRegistered(meter)),
                KeyStatus::Installed => {}
                status => {
                    return Err(KmcError::NotInstalled {
                        domain: key.domain.clone(),
                        key_id: key.key_id,
                        status,
                    });
                }
            }
            if let Some(other) = self.store.key_by_isn(&r.subdomain, &r.isn).await?
                && other.meter_id.as_ref() != Some(&meter)
            {
                return Err(KmcError::IsnTaken {
                    subdomain: r.subdomain.clone(),
                    isn: r.isn.clone(),
                });
            }
            let brass = match brass_of.get(&r.subdomain) {
                Some(b) => *b,
                None => {
                    let b = brass_serving(&self.store, &r.subdomain).await?;
                    brass_of.insert(r.subdomain.clone(), b);
                    b
                }
            };
            let mi9 = archived::<InstalledKeyRecord>(&self.store, key, RecordType::MI9).await?;
            plan.pending.push(Pending { key: key.clone(), request, brass, mi9 });
        }
        Ok(plan)
    }

    /// Withdraws `meter` (protocol §6.3): each of its keys' Brass box (the one that installed
    /// it) signs a withdrawal; all its live keys become `Obsolete` in one transaction, or none
    /// does. The keys withdrawn.
    pub async fn withdraw(
        &self,
        boxes: &impl Boxes,
        meter: &MeterId,
        reason: &str,
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<Vec<(DomainId, KeyId)>, KmcError> {
        let keys = self.store.keys_of_meters(core::slice::from_ref(meter)).await?;
        if keys.is_empty() {
            return Err(KmcError::UnknownMeter(meter.clone()));
        }
        if keys.iter().any(|k| k.status == KeyStatus::Obsolete) {
            return Err(KmcError::MeterWithdrawn(meter.clone()));
        }
        let live: Vec<&KeyRecord> = keys
            .iter()
            .filter(|k| matches!(k.status, KeyStatus::Installed | KeyStatus::Active))
            .collect();
        if live.is_empty() {
            return Err(KmcError::BadRegistration {
                meter: meter.clone(),
                why: "it holds no Installed or Active key to withdraw",
            });
        }
        let mut changes = Changes::default();
        let time = now();
        let mut withdrawn = Vec::new();
        for key in live {
            let mi9 = archived::<InstalledKeyRecord>(&self.store, key, RecordType::MI9).await?;
            // The Brass box that signed the key's MI9 withdraws it.
            let brass = match mi9.header().sender {
                Sender::Box(b) if b.box_type() == BoxType::Brass => b,
                _ => {
                    return Err(KmcError::ArchivedRecord(
                        key.domain.clone(),
                        key.key_id,
                        "its MI9 is not a Brass box's",
                    ));
                }
            };
            let item = Withdraw { mi9, reason: reason.to_owned() };
            let (answer, version) = crate::link::call_one(boxes, brass, item).await?;
            let keys = self.domain_keys(&key.domain).await?;
            let record: Verified<Withdrawn> = answer
                .verify(&keys.brass_auth)
                .map_err(|error| KmcError::BadAnswer { box_id: brass, error })?;
            let h = record.header();
            if h.domain != key.domain || h.key_id != Some(key.key_id) || h.meter_id != key.meter_id
            {
                return Err(KmcError::WrongAnswer { box_id: brass });
            }
            changes.versions.push(version);
            changes.transitions.push(Transition {
                domain: key.domain.clone(),
                key_id: key.key_id,
                from: key.status,
                to: KeyStatus::Obsolete,
                time,
                actor: Sender::Box(brass),
                cause: Cause::Record(SignedRecord::from_verified(&record)),
                fields: KeyFields {
                    times: KeyTimes { obsolete: Some(time), ..KeyTimes::default() },
                    ..KeyFields::default()
                },
            });
            withdrawn.push((key.domain.clone(), key.key_id));
        }
        self.store.apply(&changes).await?;
        Ok(withdrawn)
    }
}

/// The lowest-numbered Brass box whose process of the sub-domain's domain serves it: the one a
/// registration into it is sent to.
pub async fn brass_serving(store: &impl Store, subdomain: &SubdomainId) -> Result<BoxId, KmcError> {
    let mut brass = store.boxes(Some(BoxType::Brass)).await?;
    brass.sort_by_key(|b| b.id);
    for b in brass {
        let processes = store.domain_processes(b.id).await?;
        if processes
            .iter()
            .any(|p| &p.domain == subdomain.domain() && p.subdomains.contains(subdomain))
        {
            return Ok(b.id);
        }
    }
    Err(KmcError::SubdomainNotServed(subdomain.clone()))
}

/// The Brass boxes that withdraw `meter`'s live keys: each the signer of its key's MI9.
pub async fn withdrawing_boxes(
    store: &impl Store,
    meter: &MeterId,
) -> Result<Vec<BoxId>, KmcError> {
    let mut out = Vec::new();
    for key in store.keys_of_meters(core::slice::from_ref(meter)).await? {
        if !matches!(key.status, KeyStatus::Installed | KeyStatus::Active) {
            continue;
        }
        let mi9 = archived::<InstalledKeyRecord>(store, &key, RecordType::MI9).await?;
        if let Sender::Box(b) = mi9.header().sender
            && !out.contains(&b)
        {
            out.push(b);
        }
    }
    Ok(out)
}

/// The key's archived record of type `t`, decoded (its signature is its reader's to check).
async fn archived<B: postkey_wire::Body>(
    store: &impl Store,
    key: &KeyRecord,
    t: RecordType,
) -> Result<Unverified<B>, KmcError> {
    let missing = |what| KmcError::ArchivedRecord(key.domain.clone(), key.key_id, what);
    let stored = store.records(&key.domain, key.key_id).await?;
    let record = stored
        .iter()
        .rev()
        .find(|s| s.record.record_type == t)
        .ok_or_else(|| missing("the record is missing"))?;
    Unverified::<B>::from_bytes(&record.record.bytes)
        .map_err(|_| missing("the record does not decode"))
}

/// The archive's refusal of one meter's changes, named as the registration rule it breaks
/// where there is one (another meter took the ISN meanwhile).
fn refusal_of(e: StoreError) -> KmcError {
    match e.root() {
        StoreError::Duplicate(postkey_archive::Subject::Isn { subdomain, isn }) => {
            KmcError::IsnTaken { subdomain: subdomain.clone(), isn: isn.clone() }
        }
        _ => e.into(),
    }
}

/// A Brass box's answer to one key's MR2, checked: MR4 verifies under the domain's Brass key
/// and confirms exactly what was asked, of this key, with this MR3. The transition at `time`
/// (the KMS Key Registration Time) and the update that keeps MR4.
fn accept(
    pending: &Pending,
    answer: Registered,
    keys: Option<&DomainPublicKeys>,
    time: Timestamp,
) -> Result<(Transition, KeyUpdate, Verified<RegistrationConfirmed>), KmcError> {
    let wrong = || KmcError::WrongAnswer { box_id: pending.brass };
    let keys = keys.ok_or_else(|| KmcError::NoBundle(pending.key.domain.clone()))?;
    let mr4 = answer
        .mr4
        .verify(&keys.brass_auth)
        .map_err(|error| KmcError::BadAnswer { box_id: pending.brass, error })?;
    let (key, r) = (&pending.key, pending.request.body());
    let names_key = |h: &postkey_wire::Header| {
        h.domain == key.domain && h.key_id == Some(key.key_id) && h.meter_id == key.meter_id
    };
    let c = mr4.body();
    if !names_key(mr4.header())
        || !names_key(answer.mr3.header())
        || c.brass != pending.brass
        || c.subdomain != r.subdomain
        || c.isn != r.isn
        || c.country != r.country
        || c.date != r.date
        || c.mr3 != postkey_crypto::sha256(answer.mr3.as_bytes())
    {
        return Err(wrong());
    }
    let actor = Sender::Box(pending.brass);
    let transition = Transition {
        domain: key.domain.clone(),
        key_id: key.key_id,
        from: KeyStatus::Installed,
        to: KeyStatus::Active,
        time,
        actor: actor.clone(),
        cause: Cause::Record(SignedRecord::from_maced(&answer.mr3)),
        fields: KeyFields {
            registration: Some(Registration { subdomain: r.subdomain.clone(), isn: r.isn.clone() }),
            times: KeyTimes {
                meter_registration: Some(r.date),
                kms_key_registration: Some(time),
                ..KeyTimes::default()
            },
            ..KeyFields::default()
        },
    };
    let update = KeyUpdate {
        domain: key.domain.clone(),
        key_id: key.key_id,
        time,
        actor,
        record: Some(SignedRecord::from_verified(&mr4)),
        fields: KeyFields::default(),
    };
    Ok((transition, update, mr4))
}
