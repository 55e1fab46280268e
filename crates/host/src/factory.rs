//! The factory on the embedded default: simulated meters, and key installation driven by the KMC
//! against the home's SQLite archive (`<home>/archive.db`), with every box hosted in this
//! process behind the embedded box link.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use postkey_archive::{KeyStatus, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_kmc::{InstallConfig, KeyOrder, KeyOutcome, KeyRole, Kmc, KmcError, KmsClock, Settled};
use postkey_meter::{Meter, SimulatedMeter};
use postkey_secrets::rng::{BoxRng, OsEntropy};
use postkey_wire::{BoxType, DomainId, KeyId, MeterId, Nonce, Timestamp};

use crate::archive::Trust;
use crate::link::{EmbeddedBoxes, MeterLinks};
use crate::lock::HomeLock;
use crate::{Home, HostError, Session, Usage, clock};

/// Makes a simulated meter: its transport key from a fresh generator, its state in an
/// initialized home (a meter that exists already is refused, also against a concurrent
/// `meter new`).
pub fn new_meter(lock: &HomeLock, id: &MeterId) -> Result<(), HostError> {
    let home = lock.home();
    home.anchors()?;
    let personalization = format!("postkey meter {id} {}", clock::now().unix_micros());
    let mut rng = BoxRng::instantiate(OsEntropy, personalization.as_bytes())
        .map_err(|e| HostError::Entropy(e.to_string()))?;
    let meter =
        Meter::manufacture(id.clone(), &mut rng).map_err(|e| HostError::Entropy(e.to_string()))?;
    home.create_meter(&meter)
}

/// The boxes that serve an installation: the first registered Oak, Steel and Brass boxes with a
/// process of each domain, unless chosen.
pub use postkey_kmc::LineBoxes as Line;

/// Picks the first box of each type that runs processes of all `domains`.
pub async fn line_for(store: &impl Store, domains: &[DomainId]) -> Result<Line, HostError> {
    // A domain the archive does not hold is named as such, not as one no box serves.
    for d in domains {
        if store.domain(d).await?.is_none() {
            return Err(Usage::UnknownDomain(d.clone()).into());
        }
    }
    let pick = |t: BoxType| async move {
        for b in store.boxes(Some(t)).await? {
            let served: Vec<DomainId> =
                store.domain_processes(b.id).await?.into_iter().map(|p| p.domain).collect();
            if domains.iter().all(|d| served.contains(d)) {
                return Ok(b.id);
            }
        }
        Err(HostError::from(Usage::NoBoxServes { box_type: t, domains: domains.to_vec() }))
    };
    Ok(Line {
        oak: pick(BoxType::Oak).await?,
        steel: pick(BoxType::Steel).await?,
        brass: pick(BoxType::Brass).await?,
    })
}

/// The result of installing one meter's keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallReport {
    /// The meter.
    pub meter: String,
    /// Each key: domain, key ID, status.
    pub keys: Vec<KeySummary>,
}

/// One key of a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySummary {
    /// Its domain.
    pub domain: String,
    /// Its ID; none if the order never became a key (its ID was burned or never allocated).
    pub key_id: Option<u64>,
    /// Its status.
    pub status: String,
    /// Why it is bad, if it is.
    pub reason: Option<String>,
}

/// Meters keyed per batch: one key-ID allocation, one box call per stage and one archive
/// transaction per stage for this many meters (two keys each).
pub const DEFAULT_BATCH: usize = 64;

/// Keys installed between two checkpoints of the audit trail inside one run, by default: an
/// archive rewritten during a run is found at the next checkpoint, at most this many keys on.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 10_000;

/// `batches` cut into segments of at least `keys` orders each (whole batches; the last may be
/// shorter), one checkpoint between two.
fn segments(batches: Vec<Vec<KeyOrder>>, keys: std::num::NonZeroUsize) -> Vec<Vec<Vec<KeyOrder>>> {
    let mut out: Vec<Vec<Vec<KeyOrder>>> = Vec::new();
    let mut filled = usize::MAX;
    for batch in batches {
        if filled >= keys.get() {
            out.push(Vec::new());
            filled = 0;
        }
        filled += batch.len();
        if let Some(last) = out.last_mut() {
            last.push(batch);
        }
    }
    out
}

/// A factory run: the KMC, its archive, the boxes of one line enabled, meters on the line.
#[derive(Debug)]
pub struct Factory<S = SqliteStore> {
    home: Home,
    kmc: Kmc<S>,
    boxes: EmbeddedBoxes,
    line: Line,
    settled: Settled,
    clock: KmsClock<fn() -> Timestamp>,
    /// What the run trusts, and the box that checkpoints the audit trail, if there is one.
    trust: Trust,
    audit: Option<postkey_wire::BoxId>,
    checkpoint_every: std::num::NonZeroUsize,
    _meters_lock: std::fs::File,
}

impl Factory {
    /// Opens the home's SQLite archive, enables the line's boxes from `shares_dir`, and runs
    /// the KMC's state check on each before anything else, then settles what a stopped run
    /// left on the line (docs/installation.md, "After a stop").
    pub async fn open(
        lock: &HomeLock,
        shares_dir: &std::path::Path,
        domains: &[DomainId],
    ) -> Result<Self, HostError> {
        let store = crate::archive::open_archive(lock.home()).await?;
        Factory::open_on(lock, store, shares_dir, domains).await
    }
}

impl<S: Store> Factory<S> {
    /// As [`Factory::open`], on another archive (PostgreSQL) that the home's ceremonies wrote.
    pub async fn open_on(
        lock: &HomeLock,
        store: S,
        shares_dir: &std::path::Path,
        domains: &[DomainId],
    ) -> Result<Self, HostError> {
        let home = lock.home();
        let trust = Trust::load(home, &store).await?;
        crate::archive::check_at_open(home, &store).await?;
        // One factory run keys this home's meters at a time, from here to the end of the run.
        let meters_lock = home.lock_meters(lock.wait())?;
        // Meters keyed by a run that stopped get their files before any is read.
        home.settle_meter_journals()?;
        let line = line_for(&store, domains).await?;
        let Opened { kmc, boxes, trust, audit, clock } =
            open_kmc(lock, store, trust, shares_dir, &[line.oak, line.steel, line.brass]).await?;
        // Keys a stopped run left between generation and `Installed` are settled before any
        // new order: the home lock and the line's box locks are held, so no run is live.
        let settled =
            kmc.settle_line(&boxes, line, || clock.now()).await.map_err(|e| kmc_error(home, e))?;
        Ok(Self {
            home: home.clone(),
            kmc,
            boxes,
            line,
            settled,
            clock,
            trust,
            audit,
            checkpoint_every: std::num::NonZeroUsize::new(DEFAULT_CHECKPOINT_EVERY)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            _meters_lock: meters_lock,
        })
    }

    /// Installs a vendor key and a postal key into meter `id` (loaded from and saved back to the
    /// home), each end to end. A key that fails is `Bad` and reported; the meter keeps what it got.
    pub async fn install(
        &mut self,
        id: &MeterId,
        vendor: &DomainId,
        postal: &DomainId,
    ) -> Result<InstallReport, HostError> {
        let mut reports =
            self.install_many(&[(id.clone(), postal.clone())], vendor, 1, |_| {}).await?;
        reports.pop().ok_or(HostError::Kmc(KmcError::Unfinished))
    }

    /// Installs a `vendor` key and the given postal key into each meter, `batch` meters at a
    /// time through the KMC's pipeline (generate, install, check: three batches in flight).
    /// A role the meter has already, from the same domain (an earlier run, one stopped
    /// included), is reported `held` and not installed again; from another domain, or a domain
    /// of the wrong role, the whole run is a usage error before any key ID is allocated. Every
    /// meter is loaded before the first installation; the meters a Steel batch reached keep
    /// their keys in the run's journal (one flush) before their MI6 answers count. `progress`
    /// is told the number of meters done after each batch.
    pub async fn install_many(
        &mut self,
        meters: &[(MeterId, DomainId)],
        vendor: &DomainId,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<InstallReport>, HostError> {
        let plan = self.plan(meters, vendor, batch).await?;
        let mut reports = plan.reports;
        let mut sims = BTreeMap::new();
        for (id, _) in meters {
            let sim = SimulatedMeter::new(self.home.load_meter(id)?);
            self.boxes.meters().connect(id.clone(), Box::new(sim.clone()));
            sims.insert(id.clone(), sim.clone());
        }
        let journal = Arc::new(Mutex::new(self.home.open_meter_journal()?));
        self.boxes.meters().keep_with(meter_storage(&self.home, &journal, sims.clone()));
        let (batches, slots): (Vec<Vec<KeyOrder>>, Vec<Vec<Slot>>) =
            plan.batches.into_iter().unzip();
        let mut slots = slots.into_iter();
        let mut done_meters = plan.held_whole;
        let mut saves = Vec::new();
        let home = &self.home;
        let boxes = &self.boxes;
        let mut ran = Ok(());
        let mut checkpointed = Ok(());
        for (n, segment) in segments(batches, self.checkpoint_every).into_iter().enumerate() {
            // Between segments, the audit trail is checkpointed: what an archive rewritten
            // behind the run's back can hide is bounded by the interval (docs/audit.md).
            if n > 0 {
                checkpointed = self.checkpoint_now().await;
                if checkpointed.is_err() {
                    break;
                }
            }
            ran = self
                .kmc
                .install_batches(
                    &self.boxes,
                    segment.into_iter(),
                    |results| {
                        let slots = slots.next().unwrap_or_default();
                        let mut reached = std::collections::BTreeSet::new();
                        for (slot, result) in slots.iter().zip(results) {
                            reports[slot.meter].keys[slot.key] =
                                summary(home, &slot.domain, result);
                            reached.insert(slot.meter);
                        }
                        let done: Vec<SimulatedMeter> = reached
                            .iter()
                            .filter_map(|&m| {
                                let (id, _) = &meters[m];
                                boxes.meters().disconnect(id);
                                sims.get(id).cloned()
                            })
                            .collect();
                        done_meters += done.len();
                        // The meters' files, off the KMC's path: their keys are in the journal.
                        let home = home.clone();
                        saves.push(tokio::task::spawn_blocking(move || {
                            let guards: Vec<_> = done.iter().map(SimulatedMeter::meter).collect();
                            let meters: Vec<&Meter> = guards.iter().map(|g| &**g).collect();
                            postkey_archive::metrics::durable(|| home.save_meters(&meters))
                        }));
                        progress(done_meters);
                    },
                    || self.clock.now(),
                )
                .await;
            if ran.is_err() {
                break;
            }
        }
        for save in saves {
            save.await.map_err(|e| {
                HostError::refused(
                    "host",
                    postkey_wire::Refusal::new(
                        postkey_wire::ResponseCode::STORAGE_FAILED,
                        format!("saving the meters failed: {e}"),
                    ),
                )
            })??;
        }
        // Every meter file is durable: the run's journal goes (left behind on any failure, it
        // is applied by the next command that reads meters).
        self.boxes.meters().forget_storage();
        if let Ok(journal) = Arc::try_unwrap(journal) {
            journal.into_inner().unwrap_or_else(PoisonError::into_inner).close()?;
        }
        if let Err(e) = ran {
            // The run ends settled, if the archive lets it: what a failed stage left goes to
            // `Installed` or `Bad` now, not at the next start only.
            let settled = self.kmc.settle_line(&self.boxes, self.line, || self.clock.now()).await;
            if let Ok(settled) = settled {
                self.settled = settled;
            }
            return Err(kmc_error(&self.home, e));
        }
        checkpointed?;
        self.checkpoint_now().await?;
        Ok(reports)
    }

    /// Sets how many keys a run installs between two checkpoints of the audit trail (besides
    /// the one at its start and the one at its end); [`DEFAULT_CHECKPOINT_EVERY`] unless set.
    pub fn checkpoint_every(&mut self, keys: std::num::NonZeroUsize) {
        self.checkpoint_every = keys;
    }

    /// The run's refusals, spooled as they happened, go into the archive's error log, and what
    /// the run recorded so far is checkpointed by the audit box, if there is one.
    async fn checkpoint_now(&self) -> Result<(), HostError> {
        let session = self.boxes.session();
        crate::checkpoint::moved(&self.home, self.kmc.store(), session, &self.trust, self.audit)
            .await
    }

    /// The run's orders in batches of `batch` meters, each order with its place in the
    /// reports; the reports hold the roles the meters have already. Refuses the run (a usage
    /// error, logged) if a meter has a role from another domain or a domain gives keys of
    /// another role.
    async fn plan(
        &self,
        meters: &[(MeterId, DomainId)],
        vendor: &DomainId,
        batch: usize,
    ) -> Result<Plan, HostError> {
        let refuse = |e: KmcError| self.home.logged("kmc", Usage::Order(e).into());
        let ids: Vec<MeterId> = meters.iter().map(|(m, _)| m.clone()).collect();
        let live = self.kmc.live_keys(&ids).await.map_err(|e| kmc_error(&self.home, e))?;
        let line = self.line;
        let mut plan = Plan { reports: Vec::with_capacity(meters.len()), ..Plan::default() };
        let mut orders = Vec::new();
        for (chunk_start, chunk) in (0..).step_by(batch.max(1)).zip(meters.chunks(batch.max(1))) {
            let mut batch_orders = Vec::new();
            let mut batch_slots = Vec::new();
            for (m, (meter, postal)) in (chunk_start..).zip(chunk) {
                let mut keys = Vec::with_capacity(2);
                for (key, (domain, role)) in
                    [(vendor, KeyRole::Vendor), (postal, KeyRole::Postal)].into_iter().enumerate()
                {
                    match live.get(&(meter.clone(), role)) {
                        Some(k) if &k.domain == domain && k.status != KeyStatus::New => {
                            // Held, if the meter holds it: an older copy of its file put back
                            // lacks it, and nothing of the archive makes it whole again.
                            let now = self.home.meter_now(meter)?;
                            if now.keys().get(domain).map(|h| h.key_id) != Some(k.key_id) {
                                let why = format!(
                                    "the meter lacks {}/{}, which the archive shows {} for it: \
                                     an older copy of its file was put back?",
                                    k.domain, k.key_id, k.status
                                );
                                let e = HostError::corrupt(&self.home.meter_path(meter), why);
                                let _ = self.home.log_error(
                                    "host",
                                    e.response_code(),
                                    &e.to_string(),
                                    clock::now(),
                                );
                                return Err(e);
                            }
                            keys.push(KeySummary {
                                domain: domain.to_string(),
                                key_id: Some(k.key_id.get()),
                                status: "held".into(),
                                reason: Some(format!("the meter's {role} key, {}", k.status)),
                            });
                        }
                        Some(k) => {
                            return Err(refuse(KmcError::MeterHoldsKey {
                                meter: meter.clone(),
                                role: role.name(),
                                held: format!("{} key {}/{}", k.status, k.domain, k.key_id),
                            }));
                        }
                        None => {
                            keys.push(KeySummary {
                                domain: domain.to_string(),
                                key_id: None,
                                status: "unfinished".into(),
                                reason: None,
                            });
                            batch_orders.push(KeyOrder {
                                domain: domain.clone(),
                                oak: line.oak,
                                steel: line.steel,
                                brass: line.brass,
                                meter: meter.clone(),
                                role,
                            });
                            batch_slots.push(Slot { meter: m, key, domain: domain.clone() });
                        }
                    }
                }
                if keys.iter().all(|k| k.status == "held") {
                    plan.held_whole += 1;
                }
                plan.reports.push(InstallReport { meter: meter.to_string(), keys });
            }
            orders.extend(batch_orders.iter().cloned());
            if !batch_orders.is_empty() {
                plan.batches.push((batch_orders, batch_slots));
            }
        }
        // The domains' roles, before any meter is touched or key ID allocated.
        let checked = self.kmc.check_orders(&orders).await.map_err(|e| kmc_error(&self.home, e))?;
        if let Some(e) = checked.into_iter().find_map(Result::err) {
            return Err(refuse(e));
        }
        Ok(plan)
    }

    /// What opening the line settled of a stopped run's keys.
    pub fn settled(&self) -> &Settled {
        &self.settled
    }

    /// The box link (for tests and tools that drive the KMC themselves).
    pub fn boxes(&self) -> &EmbeddedBoxes {
        &self.boxes
    }

    /// Locks the boxes.
    pub fn close(self) {
        drop(self.boxes);
    }
}

/// The KMC over an archive, with boxes enabled and checked: what a factory run or a
/// registration works with.
pub(crate) struct Opened<S> {
    pub(crate) kmc: Kmc<S>,
    pub(crate) boxes: EmbeddedBoxes,
    pub(crate) trust: Trust,
    /// The box that checkpoints the audit trail, if the installation has one.
    pub(crate) audit: Option<postkey_wire::BoxId>,
    pub(crate) clock: KmsClock<fn() -> Timestamp>,
}

/// Enables `enable` (and the audit box) from `shares_dir`, runs the KMC's state check on each
/// before anything else (protocol §7.2 item 7), has the audit box check that the archive
/// extends what it signed (3676), and starts the KMS clock from the archive's latest time. The
/// caller has loaded `trust` and run the integrity check at open.
pub(crate) async fn open_kmc<S: Store>(
    lock: &HomeLock,
    store: S,
    trust: Trust,
    shares_dir: &std::path::Path,
    enable: &[postkey_wire::BoxId],
) -> Result<Opened<S>, HostError> {
    let home = lock.home();
    let mut session = Session::new(home, lock.wait());
    let audit = crate::checkpoint::audit_box(&store).await?;
    let mut enabled = enable.to_vec();
    if let Some(a) = audit
        && !enabled.contains(&a)
    {
        enabled.push(a);
    }
    for b in &enabled {
        crate::ceremony::enable(&mut session, &store, &trust, *b, shares_dir).await?;
    }
    let kmc = Kmc::new(store, trust.dks_key(), trust.installation, InstallConfig::default());
    let boxes = EmbeddedBoxes::new(session, MeterLinks::default());
    for b in enabled {
        let nonce = Nonce(crate::session::os_nonce()?);
        kmc.check_box(&boxes, b, nonce).await.map_err(|e| kmc_error(home, e))?;
    }
    // The archive must extend what the audit box signed before anything is settled, installed
    // or registered: an archive put back from an older copy stops the command here (3676).
    if let Some(audit) = audit {
        let start = crate::checkpoint::When::Start;
        crate::checkpoint::checkpoint_chains(boxes.session(), kmc.store(), &trust, audit, start)
            .await?;
    }
    // Times never go backwards: the command starts from the archive's latest (3310 if the
    // wall clock is too far behind it).
    let latest = kmc.latest_time().await.map_err(|e| kmc_error(home, e))?;
    let clock =
        KmsClock::start(clock::now as fn() -> Timestamp, latest).map_err(|e| kmc_error(home, e))?;
    Ok(Opened { kmc, boxes, trust, audit, clock })
}

/// A factory run's orders, as [`Factory::install_many`] sends them.
#[derive(Default)]
struct Plan {
    /// One report per meter, the roles it has already filled in.
    reports: Vec<InstallReport>,
    /// The batches of orders, each order with its place in the reports.
    batches: Vec<(Vec<KeyOrder>, Vec<Slot>)>,
    /// Meters with every role held already.
    held_whole: usize,
}

/// Where an order's result goes: report `meter`, key `key`.
struct Slot {
    meter: usize,
    key: usize,
    domain: DomainId,
}

/// The simulated meters' storage: the images of the meters a Steel batch reached, appended to
/// the run's journal with one flush (their files are rewritten after the batch). A failure is
/// logged here in full; the Steel box is told only that the meters could not keep their keys
/// (no path of this host goes into its ABORTED records).
fn meter_storage(
    home: &Home,
    journal: &Arc<Mutex<crate::meters::MeterJournal>>,
    sims: BTreeMap<MeterId, SimulatedMeter>,
) -> crate::MeterStorage {
    let home = home.clone();
    let journal = Arc::clone(journal);
    Box::new(move |ids: &[MeterId]| {
        let ids: std::collections::BTreeSet<&MeterId> = ids.iter().collect();
        let guards: Vec<_> = ids.iter().filter_map(|id| sims.get(*id)).map(|s| s.meter()).collect();
        let meters: Vec<&Meter> = guards.iter().map(|g| &**g).collect();
        let mut journal = journal.lock().unwrap_or_else(PoisonError::into_inner);
        postkey_archive::metrics::durable(|| journal.append(&meters)).map_err(|e| {
            let _ = home.log_error("host", e.response_code(), &e.to_string(), clock::now());
            postkey_wire::Refusal::new(e.response_code(), "the meters could not keep their keys")
        })
    })
}

fn summary(home: &Home, domain: &DomainId, result: postkey_kmc::OrderResult) -> KeySummary {
    let (key_id, status, reason) = match result {
        Ok(KeyOutcome::Installed { key_id, .. }) => {
            (Some(key_id), KeyStatus::Installed.to_string(), None)
        }
        Ok(KeyOutcome::Bad { key_id, reason }) => {
            (Some(key_id), KeyStatus::Bad.to_string(), Some(reason))
        }
        Err(e) => {
            let reason = e.to_string();
            let _ = kmc_error(home, e);
            (None, "refused".to_owned(), Some(reason))
        }
    };
    KeySummary { domain: domain.to_string(), key_id: key_id.map(KeyId::get), status, reason }
}

pub(crate) fn kmc_error(home: &Home, e: postkey_kmc::KmcError) -> HostError {
    home.logged("kmc", HostError::Kmc(e))
}
