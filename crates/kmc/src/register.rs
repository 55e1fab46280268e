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
    SignedRecord, Store, StoreError, StoredRecord, Transition,
};
use postkey_wire::command::{Register, Registered, Withdraw};
use postkey_wire::{
    BoxId, BoxType, DomainId, DomainPublicKeys, InstalledKeyRecord, Isn, KeyId, MeterId,
    RecordType, RegistrationConfirmed, RegistrationRequest, Sender, SubdomainId, Timestamp,
    Unverified, Verified, Withdrawn,
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

/// A batch planned: the results settled so far (refusals, meters unchanged), each other meter's
/// plan, and the public keys of the domains whose Brass boxes answer.
struct Planned {
    results: Vec<Option<RegistrationResult>>,
    plans: Vec<Plan>,
    keys: BTreeMap<DomainId, DomainPublicKeys>,
}

/// A batch past its Brass boxes: each key's answer by its place, and the boxes' versions.
struct Called {
    planned: Planned,
    answers: BTreeMap<Place, Result<Registered, KmcError>>,
    versions: Vec<postkey_archive::BoxVersion>,
}

/// A batch checked: the results settled so far (refusals, meters unchanged), and each
/// registered meter's place, changes and MR4s.
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

/// A meter's plan: the keys still to register.
struct Plan {
    index: usize,
    pending: Vec<Pending>,
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
        let planned = self.plan_batch(meters).await?;
        let called = call_brass(boxes, planned).await;
        self.commit(settle(called, now())).await
    }

    /// Registers batches of meters as a three-stage pipeline: while the archive takes batch
    /// n's changes (after the KMC checked its MR4s), the Brass boxes register batch n + 1 and
    /// the KMC plans batch n + 2 against the archive; each stage takes the batches in order.
    /// `done` receives each batch's results, in order. A meter's ISN taken by a meter of a
    /// batch before it is found by the archive's unique index when its changes are applied.
    pub async fn register_batches(
        &self,
        boxes: &impl Boxes,
        batches: impl Iterator<Item = Vec<MeterRegistration>>,
        mut done: impl FnMut(Vec<RegistrationResult>),
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<(), KmcError> {
        let (to_brass, mut at_brass) = tokio::sync::mpsc::channel::<Planned>(1);
        let (to_archive, mut at_archive) = tokio::sync::mpsc::channel::<Called>(1);
        let planner = async move {
            for meters in batches {
                let planned = self.plan_batch(meters).await?;
                if to_brass.send(planned).await.is_err() {
                    break;
                }
            }
            Ok::<_, KmcError>(())
        };
        let brass = async move {
            while let Some(planned) = at_brass.recv().await {
                if to_archive.send(call_brass(boxes, planned).await).await.is_err() {
                    break;
                }
            }
        };
        let archive = async move {
            while let Some(called) = at_archive.recv().await {
                done(self.commit(settle(called, now())).await?);
            }
            Ok::<_, KmcError>(())
        };
        // A stage that fails drops its channel ends, which stops the others.
        let (a, (), c) = tokio::join!(planner, brass, archive);
        a.and(c)
    }

    /// Stage 1: each meter planned against the archive (one read each for the batch's keys,
    /// ISNs and MI9s), and the public keys its Brass boxes' answers are checked with.
    async fn plan_batch(&self, meters: Vec<MeterRegistration>) -> Result<Planned, KmcError> {
        let ids: Vec<MeterId> = meters.iter().map(|m| m.meter.clone()).collect();
        let mut held: BTreeMap<MeterId, Vec<KeyRecord>> = BTreeMap::new();
        for k in self.store.keys_of_meters(&ids).await? {
            if let Some(m) = k.meter_id.clone() {
                held.entry(m).or_default().push(k);
            }
        }
        let mut results: Vec<Option<RegistrationResult>> = meters.iter().map(|_| None).collect();
        let mut drafts = Vec::new();
        for (index, m) in meters.into_iter().enumerate() {
            let keys = held.remove(&m.meter).unwrap_or_default();
            match draft(index, m, keys) {
                Ok(d) if d.pending.is_empty() => {
                    results[index] = Some(Ok(RegistrationOutcome::Unchanged(d.unchanged)));
                }
                Ok(d) => drafts.push(d),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        // One read each for the batch: the keys holding the ISNs asked for, each key's MI9.
        let asked: Vec<(SubdomainId, Isn)> = drafts
            .iter()
            .flat_map(|d| &d.pending)
            .map(|(_, r)| (r.body().subdomain.clone(), r.body().isn.clone()))
            .collect();
        let mut holders: BTreeMap<(SubdomainId, Isn), Option<MeterId>> = BTreeMap::new();
        for k in self.store.keys_by_isns(&asked).await? {
            if let Some(r) = k.registration {
                holders.insert((r.subdomain, r.isn), k.meter_id);
            }
        }
        let pending: Vec<(DomainId, KeyId)> = drafts
            .iter()
            .flat_map(|d| &d.pending)
            .map(|(k, _)| (k.domain.clone(), k.key_id))
            .collect();
        let mut mi9s: BTreeMap<(DomainId, KeyId), StoredRecord> = BTreeMap::new();
        for (domain, key_id, record) in
            self.store.records_of_type(&pending, RecordType::MI9).await?
        {
            // The newest, should there be more than one.
            mi9s.insert((domain, key_id), record);
        }
        let mut plans = Vec::new();
        let mut brass_of: BTreeMap<SubdomainId, BoxId> = BTreeMap::new();
        for d in drafts {
            let index = d.index;
            match self.plan(d, &holders, &mut mi9s, &mut brass_of).await {
                Ok(plan) => plans.push(plan),
                Err(KmcError::Store(e)) if whole(&e) => return Err(e.into()),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        let mut keys: BTreeMap<DomainId, DomainPublicKeys> = BTreeMap::new();
        for pending in plans.iter().flat_map(|p| &p.pending) {
            if !keys.contains_key(&pending.key.domain) {
                let public = self.domain_keys(&pending.key.domain).await?;
                keys.insert(pending.key.domain.clone(), public);
            }
        }
        Ok(Planned { results, plans, keys })
    }

    /// Stage 3: the batch's changes in one archive transaction, or, if the archive refuses it
    /// for what one meter holds, meter by meter; each meter's result.
    async fn commit(&self, prepared: Prepared) -> Result<Vec<RegistrationResult>, KmcError> {
        let Prepared { mut results, per_meter, versions } = prepared;
        // The meters' changes moved into one set, each meter's share of it counted.
        let mut all = Changes { versions: versions.clone(), ..Changes::default() };
        let mut shares = Vec::with_capacity(per_meter.len());
        for (index, changes, confirmed) in per_meter {
            shares.push((index, changes.updates.len(), changes.transitions.len(), confirmed));
            all.updates.extend(changes.updates);
            all.transitions.extend(changes.transitions);
        }
        let applied = if all.is_empty() { Ok(()) } else { self.store.apply(&all).await.map(drop) };
        match applied {
            Ok(()) => {
                for (index, _, _, confirmed) in shares {
                    results[index] = Some(Ok(RegistrationOutcome::Registered(confirmed)));
                }
            }
            Err(e) if whole(&e) => return Err(e.into()),
            Err(_) => {
                // One meter's changes refused the batch: each meter alone, so only it fails.
                if !versions.is_empty() {
                    self.store.apply(&Changes { versions, ..Changes::default() }).await?;
                }
                let mut updates = all.updates.into_iter();
                let mut transitions = all.transitions.into_iter();
                for (index, n_updates, n_transitions, confirmed) in shares {
                    let changes = Changes {
                        updates: updates.by_ref().take(n_updates).collect(),
                        transitions: transitions.by_ref().take(n_transitions).collect(),
                        ..Changes::default()
                    };
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

    /// A drafted meter's keys to register, each with the Brass box serving its sub-domain and its
    /// MI9; refused if another meter holds the ISN in that sub-domain.
    async fn plan(
        &self,
        d: Draft,
        holders: &BTreeMap<(SubdomainId, Isn), Option<MeterId>>,
        mi9s: &mut BTreeMap<(DomainId, KeyId), StoredRecord>,
        brass_of: &mut BTreeMap<SubdomainId, BoxId>,
    ) -> Result<Plan, KmcError> {
        let mut plan = Plan { index: d.index, pending: Vec::new() };
        for (key, request) in d.pending {
            let r = request.body();
            if let Some(holder) = holders.get(&(r.subdomain.clone(), r.isn.clone()))
                && holder.as_ref() != Some(&d.meter)
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
            let stored = mi9s.remove(&(key.domain.clone(), key.key_id));
            let mi9 = decoded::<InstalledKeyRecord>(&key, stored.as_ref())?;
            plan.pending.push(Pending { key, request, brass, mi9 });
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

/// Stage 2: MR2 to each Brass box, one batch per box, each meter's keys in their place.
async fn call_brass(boxes: &impl Boxes, planned: Planned) -> Called {
    let mut groups: BTreeMap<BoxId, Vec<(Place, Register)>> = BTreeMap::new();
    for (p, plan) in planned.plans.iter().enumerate() {
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
    Called { planned, answers, versions }
}

/// Stage 3, before the archive: each answer checked ([`accept`]) with `time` as the KMS Key
/// Registration Time; the changes of each meter whose every key registered.
fn settle(called: Called, time: Timestamp) -> Prepared {
    let Called { planned, mut answers, versions } = called;
    let Planned { mut results, plans, keys } = planned;
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
    Prepared { results, per_meter, versions }
}

/// A meter's requests checked against its own keys (the archive's other answers come after,
/// for the whole batch): the keys still to register with their requests, and those registered
/// already with the same data.
fn draft(index: usize, m: MeterRegistration, keys: Vec<KeyRecord>) -> Result<Draft, KmcError> {
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
    let mut d = Draft { index, meter: meter.clone(), pending: Vec::new(), unchanged: Vec::new() };
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
                d.unchanged.push((key.domain.clone(), key.key_id));
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
        d.pending.push((key.clone(), request));
    }
    Ok(d)
}

/// A meter's registration checked against its own keys: see [`draft`].
struct Draft {
    index: usize,
    meter: MeterId,
    pending: Vec<(KeyRecord, postkey_wire::Message<RegistrationRequest>)>,
    unchanged: Vec<(DomainId, KeyId)>,
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
    let stored = store.records(&key.domain, key.key_id).await?;
    decoded(key, stored.iter().rev().find(|s| s.record.record_type == t))
}

/// `stored`, a record of `key`, decoded; missing or undecodable, a fault of the archive's.
fn decoded<B: postkey_wire::Body>(
    key: &KeyRecord,
    stored: Option<&StoredRecord>,
) -> Result<Unverified<B>, KmcError> {
    let missing = |what| KmcError::ArchivedRecord(key.domain.clone(), key.key_id, what);
    let record = stored.ok_or_else(|| missing("the record is missing"))?;
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
