//! Installation of one key (protocol §6.1), as the KMC drives it:
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
//!
//! Orders travel in batches (protocol §6.1: one durable write over a range of keys, every rule held
//! per key): one key-ID allocation, one box call and one archive transaction per stage and batch.
//! [`Kmc::install_batches`] runs the three stages as a pipeline: while Brass checks batch n,
//! Steel installs batch n + 1 and Oak generates batch n + 2. Each stage takes batches in order,
//! so every box sees each domain's key IDs in increasing order.

use std::collections::BTreeMap;

use postkey_archive::{
    BoxVersion, BurnKeyId, Cause, Changes, KeyFields, KeyStatus, KeyTimes, KeyUpdate, NewKey,
    Reservation, SignedRecord, Store, StoreError, Subject, Transition,
};
use postkey_wire::command::{self, CheckInstall, Checked, Generated, InstallEnded, InstallKey};
use postkey_wire::{
    BadKey, Body, BoxId, Context, DomainId, DomainPublicKeys, GenerateKey, InstallConfirmed,
    Installed, InstalledKeyRecord, KeyForSteel, KeyId, Message, MeterId, NewKeyRecord, Refusal,
    ResponseCode, Role, Sender, Timestamp, Unverified, Verified,
};

use crate::link::{Answer, call};
use crate::{BoxRefusal, Boxes, KeyRole, Kmc, KmcError};

/// The KMC's installation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallConfig {
    /// How many key IDs in a row an Oak box may refuse as not fresh before the order fails.
    pub max_burned_in_a_row: u32,
}

impl Default for InstallConfig {
    fn default() -> Self {
        Self { max_burned_in_a_row: 3 }
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
    /// The role it plays there: its domain must give keys of that role.
    pub role: KeyRole,
}

/// How an order ended (an order that never became a key is an error instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Installed: the MI10 record for the KDC.
    Installed {
        /// The key.
        key_id: KeyId,
        /// MI10, signed by the domain's Brass key, for the KDC to verify.
        mi10: Box<Unverified<InstallConfirmed>>,
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
    record: Unverified<B>,
    key: &postkey_crypto::VerifyingKey,
) -> Result<Verified<B>, KmcError> {
    record.verify(key).map_err(|error| KmcError::BadAnswer { box_id, error })
}

/// Each order's result: how it ended, or why it never became a key (or why the KMC could not
/// accept a box's answer about it; the key, if one was made, is then `Bad`).
pub type OrderResult = Result<KeyOutcome, KmcError>;

/// A key on its way through the stages.
pub(crate) struct Live {
    /// Its order's place in the batch.
    pub(crate) index: usize,
    pub(crate) order: KeyOrder,
    pub(crate) key_id: KeyId,
    pub(crate) mi3: Verified<NewKeyRecord>,
    /// MI4 as Oak signed it: a parcel for Steel, which checks its signature (none for a key
    /// rebuilt from the archive after a stop, past Steel already).
    pub(crate) mi4: Option<Unverified<KeyForSteel>>,
    pub(crate) mi7: Option<Verified<Installed>>,
}

/// A batch between two stages.
pub(crate) struct Batch {
    /// Each order's result, once settled.
    results: Vec<Option<OrderResult>>,
    /// The keys still on their way, by (domain, key ID).
    pub(crate) live: Vec<Live>,
    /// The domains' public keys, checked against the Domain Key Set once per batch.
    pub(crate) keys: BTreeMap<DomainId, DomainPublicKeys>,
}

impl Batch {
    /// An empty batch of `orders` orders.
    pub(crate) fn new(orders: usize) -> Self {
        Self {
            results: (0..orders).map(|_| None).collect(),
            live: Vec::new(),
            keys: BTreeMap::new(),
        }
    }

    fn settle(&mut self, index: usize, result: OrderResult) {
        if let Some(slot) = self.results.get_mut(index) {
            *slot = Some(result);
        }
    }

    fn keys(&self, domain: &DomainId) -> Result<&DomainPublicKeys, KmcError> {
        self.keys.get(domain).ok_or_else(|| KmcError::NoBundle(domain.clone()))
    }

    /// The keys whose changes the archive refused leave the batch, and `failures`, with the
    /// archive's error (a key left `New` is settled by the next start).
    fn drop_refused(&mut self, mut refused: crate::apply::Refused, failures: &mut Vec<Failure>) {
        if refused.is_empty() {
            return;
        }
        failures.retain(|f| !refused.contains_key(&(f.domain.clone(), f.key_id)));
        let mut gone = Vec::new();
        self.live.retain(|l| match refused.remove(&(l.order.domain.clone(), l.key_id)) {
            Some(e) => {
                gone.push((l.index, e));
                false
            }
            None => true,
        });
        for (index, e) in gone {
            self.settle(index, Err(KmcError::Store(e)));
        }
    }

    /// The failed keys leave the batch with their results (their `Bad` is in the archive).
    fn settle_failures(&mut self, failures: Vec<Failure>) {
        let gone: std::collections::BTreeSet<usize> = failures.iter().map(|f| f.index).collect();
        self.live.retain(|l| !gone.contains(&l.index));
        for f in failures {
            self.settle(f.index, f.result);
        }
    }

    fn finish(self) -> Vec<OrderResult> {
        self.results.into_iter().map(|r| r.unwrap_or(Err(KmcError::Unfinished))).collect()
    }
}

/// A key that failed after it was created: `Bad` with this cause, and the order's result.
struct Failure {
    index: usize,
    domain: DomainId,
    key_id: KeyId,
    cause: Cause,
    actor: Sender,
    result: OrderResult,
}

impl Failure {
    /// A box refused the key: `Bad`, with the refusal as the reason.
    fn refused(live: &Live, refusal: &BoxRefusal) -> Self {
        let reason = format!("{refusal} [response code {}]", refusal.refusal.code);
        Self {
            index: live.index,
            domain: live.order.domain.clone(),
            key_id: live.key_id,
            cause: Cause::Reason(reason.clone()),
            actor: Sender::Role(Role::Kmc),
            result: Ok(KeyOutcome::Bad { key_id: live.key_id, reason }),
        }
    }

    /// A box answered something the KMC cannot accept: `Bad`, and the error for the caller.
    fn rejected(live: &Live, error: KmcError) -> Self {
        Self {
            index: live.index,
            domain: live.order.domain.clone(),
            key_id: live.key_id,
            cause: Cause::Reason(format!(
                "the KMC rejected an answer: {error} [response code {}]",
                error.response_code()
            )),
            actor: Sender::Role(Role::Kmc),
            result: Err(error),
        }
    }

    /// A box signed why the key is bad (ABORTED, BAD).
    fn signed(live: &Live, record: SignedRecord, by: BoxId, reason: String) -> Self {
        Self {
            index: live.index,
            domain: live.order.domain.clone(),
            key_id: live.key_id,
            cause: Cause::Record(record),
            actor: Sender::Box(by),
            result: Ok(KeyOutcome::Bad { key_id: live.key_id, reason }),
        }
    }
}

/// Sends each live key's item to its box (`pick`), one batch per box, keys in order within
/// each; the answer of each key in its place (`None` where `item` gave none), and the state
/// version of each box that answered.
async fn call_per_box<R: command::BoxRequest>(
    boxes: &impl Boxes,
    live: &[Live],
    pick: impl Fn(&KeyOrder) -> BoxId,
    item: impl Fn(&Live) -> Option<R>,
) -> (Vec<Option<Answer<R::Answer>>>, Vec<BoxVersion>) {
    let mut groups: BTreeMap<BoxId, Vec<(usize, R)>> = BTreeMap::new();
    for (i, l) in live.iter().enumerate() {
        if let Some(it) = item(l) {
            groups.entry(pick(&l.order)).or_default().push((i, it));
        }
    }
    let mut answers: Vec<Option<Answer<R::Answer>>> = live.iter().map(|_| None).collect();
    let mut versions = Vec::new();
    for (id, members) in groups {
        let (places, items): (Vec<usize>, Vec<R>) = members.into_iter().unzip();
        let got = match call(boxes, id, items).await {
            Ok(called) => {
                versions.push(called.version);
                called.answers
            }
            Err(refusal) => places.iter().map(|_| Err(refusal.clone())).collect(),
        };
        for (i, answer) in places.into_iter().zip(got) {
            answers[i] = Some(answer);
        }
    }
    (answers, versions)
}

impl<S: Store> Kmc<S> {
    /// The domain's public keys, from its latest bundle, checked against the Domain Key Set.
    pub async fn domain_keys(&self, domain: &DomainId) -> Result<DomainPublicKeys, KmcError> {
        Ok(self.bundle(domain).await?.public)
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
        boxes: &impl Boxes,
        order: &KeyOrder,
        now: impl Fn() -> Timestamp + Sync,
    ) -> OrderResult {
        let mut results = self.install_keys(boxes, vec![order.clone()], &now).await?;
        results.pop().unwrap_or(Err(KmcError::Unfinished))
    }

    /// Runs one batch of orders end to end, stage after stage: one result per order, in order.
    /// The outer error (the archive failed) stops the batch; what it left is settled by
    /// [`Kmc::settle_line`] at the next start.
    pub async fn install_keys(
        &self,
        boxes: &impl Boxes,
        orders: Vec<KeyOrder>,
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<Vec<OrderResult>, KmcError> {
        let batch = self.generate(boxes, orders, &now).await?;
        let batch = self.install(boxes, batch, &now).await?;
        Ok(self.check(boxes, batch, &now).await?.finish())
    }

    /// Runs batches as a three-stage pipeline (generate at Oak, install at Steel, check at
    /// Brass), up to one batch per stage at a time; `done` receives each batch's results, in
    /// order. Batches reach every stage in the order `batches` yields them, so a box sees each
    /// domain's key IDs in increasing order. The first archive failure stops every stage.
    pub async fn install_batches(
        &self,
        boxes: &impl Boxes,
        batches: impl Iterator<Item = Vec<KeyOrder>>,
        mut done: impl FnMut(Vec<OrderResult>),
        now: impl Fn() -> Timestamp + Sync,
    ) -> Result<(), KmcError> {
        let (to_steel, mut at_steel) = tokio::sync::mpsc::channel::<Batch>(1);
        let (to_brass, mut at_brass) = tokio::sync::mpsc::channel::<Batch>(1);
        let now = &now;
        let oak = async move {
            for orders in batches {
                let batch = self.generate(boxes, orders, now).await?;
                if to_steel.send(batch).await.is_err() {
                    break;
                }
            }
            Ok::<_, KmcError>(())
        };
        let steel = async move {
            while let Some(batch) = at_steel.recv().await {
                let batch = self.install(boxes, batch, now).await?;
                if to_brass.send(batch).await.is_err() {
                    break;
                }
            }
            Ok::<_, KmcError>(())
        };
        let brass = async move {
            while let Some(batch) = at_brass.recv().await {
                done(self.check(boxes, batch, now).await?.finish());
            }
            Ok::<_, KmcError>(())
        };
        // A stage that fails drops its channel ends, which stops the stages around it.
        let (a, b, c) = tokio::join!(oak, steel, brass);
        a.and(b).and(c)
    }

    /// Stage 1, MI0' to MI3 committed: allocates key IDs, has Oak generate the keys (burning
    /// the IDs it refuses as not fresh and retrying those orders with new ones, bounded),
    /// checks MI3 and MI4, and commits every accepted MI3 as a `New` key in one transaction.
    async fn generate(
        &self,
        boxes: &impl Boxes,
        orders: Vec<KeyOrder>,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Batch, KmcError> {
        let mut batch = Batch::new(orders.len());
        let mut papers: BTreeMap<(BoxId, DomainId), GenerateKey> = BTreeMap::new();
        let mut pending: BTreeMap<(BoxId, DomainId), Vec<(usize, KeyOrder)>> = BTreeMap::new();
        // Roles first: an order refused here never gets a key ID.
        let checked = self.check_orders(&orders).await?;
        for (index, (order, check)) in orders.into_iter().zip(checked).enumerate() {
            if let Err(e) = check {
                batch.settle(index, Err(e));
                continue;
            }
            if !batch.keys.contains_key(&order.domain) {
                match self.domain_keys(&order.domain).await {
                    Ok(keys) => {
                        batch.keys.insert(order.domain.clone(), keys);
                    }
                    Err(e) => {
                        batch.settle(index, Err(e));
                        continue;
                    }
                }
            }
            let at = (order.steel, order.domain.clone());
            if !papers.contains_key(&at) {
                match self.steel_papers(order.steel, &order.domain).await {
                    Ok(p) => {
                        papers.insert(at.clone(), p);
                    }
                    Err(e) => {
                        batch.settle(index, Err(e));
                        continue;
                    }
                }
            }
            pending.entry((order.oak, order.domain.clone())).or_default().push((index, order));
        }
        let kmc = Sender::Role(Role::Kmc);
        let mut created = Vec::new();
        let mut burns = Vec::new();
        let mut versions = Vec::new();
        let mut released = Vec::new();
        for ((oak, domain), mut group) in pending {
            let keys = batch.keys(&domain)?.clone();
            let mut round = 0;
            while !group.is_empty() {
                let n = u32::try_from(group.len()).map_err(|_| KmcError::Unfinished)?;
                // Reserved for this Oak box until the commit below accounts for every ID: a run
                // that stops before it leaves them to the next run's settling, which burns them.
                let request_time = now();
                let range = self.store.reserve_key_ids(&domain, n, oak, request_time).await?;
                released.push(Reservation {
                    domain: domain.clone(),
                    range,
                    holder: oak,
                    time: request_time,
                });
                let ids: Vec<KeyId> = range.ids().collect();
                if ids.len() != group.len() {
                    return Err(KmcError::Unfinished);
                }
                let mut items = Vec::with_capacity(group.len());
                for ((_, order), &key_id) in group.iter().zip(&ids) {
                    let context = Context {
                        domain: domain.clone(),
                        sender: kmc.clone(),
                        meter_id: None,
                        key_id: Some(key_id),
                        state_version: None,
                        timestamp: request_time,
                    };
                    let body = papers
                        .get(&(order.steel, domain.clone()))
                        .cloned()
                        .ok_or(KmcError::Unfinished)?;
                    items.push(command::GenerateKey { mi1: Message::new(context, body) });
                }
                let answers = match call(boxes, oak, items).await {
                    Ok(called) => {
                        versions.push(called.version);
                        called.answers
                    }
                    Err(refusal) => ids.iter().map(|_| Err(refusal.clone())).collect(),
                };
                let mut retry = Vec::new();
                for (((index, order), key_id), answer) in group.into_iter().zip(ids).zip(answers) {
                    let accepted = match answer {
                        Ok(generated) => accept_mi2(&order, key_id, generated, &keys),
                        Err(refusal) => Err(KmcError::Refused(refusal)),
                    };
                    match accepted {
                        Ok((mi3, mi4)) => {
                            created.push(NewKey {
                                domain: domain.clone(),
                                key_id,
                                oak_id: oak,
                                steel_id: order.steel,
                                meter_id: order.meter.clone(),
                                kms_request_time: request_time,
                                time: now(),
                                actor: Sender::Box(oak),
                                record: SignedRecord::from_verified(&mi3),
                            });
                            let mi4 = Some(mi4);
                            batch.live.push(Live { index, order, key_id, mi3, mi4, mi7: None });
                        }
                        Err(error) => {
                            // The ID never became a key: burned, never used again. An answer
                            // that does not verify is no refusal: a genuine Oak box never signs
                            // it, so the link or the box was tampered with.
                            let alarm =
                                if matches!(error, KmcError::Refused(_)) { "" } else { "alarm: " };
                            let burn = BurnKeyId {
                                domain: domain.clone(),
                                key_id,
                                reason: format!(
                                    "{alarm}MI1 to {oak}: {error} [response code {}]",
                                    error.response_code()
                                ),
                                time: now(),
                                actor: kmc.clone(),
                            };
                            burns.push(burn);
                            let not_fresh = matches!(&error, KmcError::Refused(r)
                                if r.refusal.code == ResponseCode::KEY_ID_NOT_FRESH);
                            if not_fresh && round + 1 < self.config.max_burned_in_a_row {
                                retry.push((index, order));
                            } else if not_fresh {
                                batch.settle(
                                    index,
                                    Err(KmcError::KeyIdsRefused(
                                        oak,
                                        self.config.max_burned_in_a_row,
                                    )),
                                );
                            } else {
                                batch.settle(index, Err(error));
                            }
                        }
                    }
                }
                group = retry;
                round += 1;
            }
        }
        // MI3 committed as New, in one transaction with the burned IDs and Oak's versions,
        // before any MI4 leaves.
        let changes =
            Changes { burns, new_keys: created, released, versions, ..Changes::default() };
        let refused = self.apply_each(changes, now).await?;
        batch.drop_refused(refused, &mut Vec::new());
        batch.live.sort_by(|a, b| (&a.order.domain, a.key_id).cmp(&(&b.order.domain, b.key_id)));
        Ok(batch)
    }

    /// Stage 2, MI4 to MI7: Steel installs each key over the meter link; every MI7 is checked
    /// and kept with the PSR Install Time, every other answer makes its key `Bad`; one
    /// transaction for each.
    async fn install(
        &self,
        boxes: &impl Boxes,
        mut batch: Batch,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Batch, KmcError> {
        let mut failures = Vec::new();
        let (answers, versions) = call_per_box(
            boxes,
            &batch.live,
            |o| o.steel,
            |l| l.mi4.clone().map(|mi4| InstallKey { mi4, meter: l.order.meter.clone() }),
        )
        .await;
        let psr_time = now();
        let mut updates = Vec::new();
        for (l, answer) in batch.live.iter_mut().zip(answers) {
            let steel = l.order.steel;
            let keys = batch.keys.get(&l.order.domain).ok_or(KmcError::Unfinished)?;
            let ended = match answer.unwrap_or_else(|| Err(unanswered(steel))) {
                Ok(ended) => ended,
                Err(refusal) => {
                    failures.push(Failure::refused(l, &refusal));
                    continue;
                }
            };
            let mi7 = match ended {
                InstallEnded::Aborted(aborted) => {
                    match verify(steel, aborted, &keys.steel_auth) {
                        Ok(a) if a.header().key_id == Some(l.key_id) => {
                            let reason = a.body().reason.clone();
                            failures.push(Failure::signed(
                                l,
                                SignedRecord::from_verified(&a),
                                steel,
                                reason,
                            ));
                        }
                        Ok(_) => failures
                            .push(Failure::rejected(l, KmcError::WrongAnswer { box_id: steel })),
                        Err(e) => failures.push(Failure::rejected(l, e)),
                    }
                    continue;
                }
                InstallEnded::Installed(mi7) => match verify(steel, mi7, &keys.steel_auth) {
                    Ok(mi7) => mi7,
                    Err(e) => {
                        failures.push(Failure::rejected(l, e));
                        continue;
                    }
                },
            };
            if mi7.header().key_id != Some(l.key_id)
                || mi7.header().meter_id.as_ref() != Some(&l.order.meter)
                || mi7.header().domain != l.order.domain
            {
                failures.push(Failure::rejected(l, KmcError::WrongAnswer { box_id: steel }));
                continue;
            }
            // The PSR records the PSR Install Time when MI7 reaches it.
            updates.push(KeyUpdate {
                domain: l.order.domain.clone(),
                key_id: l.key_id,
                time: psr_time,
                actor: Sender::Role(Role::Psr),
                record: Some(SignedRecord::from_verified(&mi7)),
                fields: KeyFields {
                    meter_id: Some(l.order.meter.clone()),
                    times: KeyTimes { psr_install: Some(psr_time), ..KeyTimes::default() },
                    ..KeyFields::default()
                },
            });
            l.mi7 = Some(mi7);
        }
        // MI7s, failures and Steel's versions in one transaction.
        let changes = Changes {
            updates,
            transitions: bad_transitions(&failures, now()),
            versions,
            ..Changes::default()
        };
        let refused = self.apply_each(changes, now).await?;
        batch.drop_refused(refused, &mut failures);
        batch.settle_failures(failures);
        Ok(batch)
    }

    /// Stage 3, MI8 to MI9: Brass checks each installed key against its archive copy; MI9
    /// makes it `Installed` (with the KMS Install Time), BAD or any failure makes it `Bad`;
    /// one transaction for all.
    pub(crate) async fn check(
        &self,
        boxes: &impl Boxes,
        mut batch: Batch,
        now: &(impl Fn() -> Timestamp + Sync),
    ) -> Result<Batch, KmcError> {
        let install_time = now();
        let (answers, versions) = call_per_box(
            boxes,
            &batch.live,
            |o| o.brass,
            |l| {
                l.mi7
                    .as_ref()
                    .map(|mi7| CheckInstall { mi3: l.mi3.clone().into(), mi7: mi7.clone().into() })
            },
        )
        .await;
        let time = now();
        let mut failures = Vec::new();
        let mut installed = Vec::new();
        let mut confirmations = Vec::new();
        for (l, answer) in batch.live.iter().zip(answers) {
            let brass = l.order.brass;
            let keys = batch.keys.get(&l.order.domain).ok_or(KmcError::Unfinished)?;
            let checked = match answer {
                Some(Ok(checked)) => checked,
                Some(Err(refusal)) => {
                    failures.push(Failure::refused(l, &refusal));
                    continue;
                }
                None => {
                    failures.push(Failure::rejected(l, KmcError::WrongAnswer { box_id: brass }));
                    continue;
                }
            };
            match checked {
                Checked::Bad(bad) => match verify::<BadKey>(brass, bad, &keys.brass_auth) {
                    Ok(b) if b.header().key_id == Some(l.key_id) => {
                        let reason = b.body().reason.clone();
                        failures.push(Failure::signed(
                            l,
                            SignedRecord::from_verified(&b),
                            brass,
                            reason,
                        ));
                    }
                    Ok(_) => {
                        failures.push(Failure::rejected(l, KmcError::WrongAnswer { box_id: brass }))
                    }
                    Err(e) => failures.push(Failure::rejected(l, e)),
                },
                Checked::Installed(confirmed) => {
                    let mi9 = match verify::<InstalledKeyRecord>(
                        brass,
                        confirmed.mi9,
                        &keys.brass_auth,
                    ) {
                        Ok(mi9) => mi9,
                        Err(e) => {
                            failures.push(Failure::rejected(l, e));
                            continue;
                        }
                    };
                    // MI10 is the KDC's to verify; the KMC checks that it names this key.
                    let mi10 = confirmed.mi10;
                    let names_key = mi10.header().key_id == Some(l.key_id);
                    if mi9.header().key_id != Some(l.key_id)
                        || mi9.header().domain != l.order.domain
                        || !names_key
                    {
                        failures
                            .push(Failure::rejected(l, KmcError::WrongAnswer { box_id: brass }));
                        continue;
                    }
                    installed.push(Transition {
                        domain: l.order.domain.clone(),
                        key_id: l.key_id,
                        from: KeyStatus::New,
                        to: KeyStatus::Installed,
                        time,
                        actor: Sender::Box(brass),
                        cause: Cause::Record(SignedRecord::from_verified(&mi9)),
                        fields: KeyFields {
                            times: KeyTimes {
                                kms_install: Some(install_time),
                                ..KeyTimes::default()
                            },
                            ..KeyFields::default()
                        },
                    });
                    confirmations.push((l.index, l.key_id, Box::new(mi10)));
                }
            }
        }
        // Installed keys, failures and Brass's versions in one transaction.
        let mut transitions = installed;
        transitions.extend(bad_transitions(&failures, now()));
        let changes = Changes { transitions, versions, ..Changes::default() };
        let refused = self.apply_each(changes, now).await?;
        confirmations.retain(|(index, ..)| {
            batch.live.iter().any(|l| {
                l.index == *index && !refused.contains_key(&(l.order.domain.clone(), l.key_id))
            })
        });
        batch.drop_refused(refused, &mut failures);
        for (index, key_id, mi10) in confirmations {
            batch.settle(index, Ok(KeyOutcome::Installed { key_id, mi10 }));
        }
        batch.settle_failures(failures);
        batch.live.clear();
        Ok(batch)
    }
}

/// The failed keys' transitions to `Bad`, each with its cause.
fn bad_transitions(failures: &[Failure], time: Timestamp) -> Vec<Transition> {
    failures
        .iter()
        .map(|f| to_bad(&f.domain, f.key_id, f.cause.clone(), f.actor.clone(), time))
        .collect()
}

/// A `New` key's transition to `Bad`, with its cause.
pub(crate) fn to_bad(
    domain: &DomainId,
    key_id: KeyId,
    cause: Cause,
    actor: Sender,
    time: Timestamp,
) -> Transition {
    Transition {
        domain: domain.clone(),
        key_id,
        from: KeyStatus::New,
        to: KeyStatus::Bad,
        time,
        actor,
        cause,
        fields: KeyFields::default(),
    }
}

/// Checks Oak's MI2 for one order: MI3 verified with the domain's Oak key, MI4 decoded (Steel
/// verifies its signature), both naming this key, domain and boxes.
fn accept_mi2(
    order: &KeyOrder,
    key_id: KeyId,
    generated: Generated,
    keys: &DomainPublicKeys,
) -> Result<(Verified<NewKeyRecord>, Unverified<KeyForSteel>), KmcError> {
    let oak = order.oak;
    let Generated { mi3, mi4 } = generated;
    let mi3 = verify(oak, mi3, &keys.oak_auth)?;
    let names_key = |h: &postkey_wire::Header| h.key_id == Some(key_id) && h.domain == order.domain;
    if !names_key(mi3.header())
        || !names_key(mi4.header())
        || mi3.body().steel != order.steel
        || mi4.claimed_body().steel != order.steel
        || mi3.body().oak != oak
        || mi4.claimed_body().oak != oak
    {
        return Err(KmcError::WrongAnswer { box_id: oak });
    }
    Ok((mi3, mi4))
}

/// A box that answered no item for a key it was sent.
fn unanswered(box_id: BoxId) -> BoxRefusal {
    BoxRefusal {
        box_id,
        refusal: Refusal::new(
            ResponseCode::ANSWER_MISMATCH,
            "the box answered no item for this key",
        ),
    }
}
