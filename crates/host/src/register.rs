//! Registration and withdrawal on the embedded default (docs/registration.md): each meter of the
//! home makes its MR1 for both its keys, the KMC sends them to the Brass boxes serving the
//! sub-domains, and both keys become `Active` together, or neither does; a withdrawal makes both
//! `Obsolete` together.

use std::collections::BTreeMap;

use postkey_archive::Store;
use postkey_archive_sqlite::SqliteStore;
use postkey_kmc::{Kmc, KmsClock, MeterRegistration, RegistrationOutcome};
use postkey_meter::PostalRegistration;
use postkey_wire::{BoxId, BoxType, Date, Isn, MeterId, SubdomainId, Timestamp};

use crate::archive::Trust;
use crate::factory::{Opened, kmc_error, open_kmc};
use crate::link::EmbeddedBoxes;
use crate::lock::HomeLock;
use crate::{Home, HostError, clock};

/// One meter to register: where, under which ISN, on which date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationOrder {
    /// The meter.
    pub meter: MeterId,
    /// The target postal (or `EARTH`) sub-domain; the vendor key goes to the vendor's
    /// sub-domain of the same country.
    pub subdomain: SubdomainId,
    /// The ISN, from the post's licence.
    pub isn: Isn,
    /// The registration date (the meter's calendar).
    pub date: Date,
}

/// The largest registration list read.
const MAX_REGISTRATION_LIST: u64 = 64 * 1024 * 1024;

/// The UTC date of `t`.
pub fn utc_date(t: Timestamp) -> Result<Date, postkey_wire::WireError> {
    let (y, m, d) = t.utc_date();
    Date::new(u16::try_from(y).unwrap_or(u16::MAX), m, d)
}

/// Reads a registration list: one meter a line, `METER SUBDOMAIN ISN [DATE]` (`DATE` as
/// `YYYYMMDD`, today's UTC date when absent), `#` starting a comment line; each meter once.
pub fn read_registration_list(
    path: &std::path::Path,
    today: Date,
) -> Result<Vec<RegistrationOrder>, HostError> {
    let form = "METER SUBDOMAIN ISN [DATE]";
    crate::home::read_meter_lines(path, MAX_REGISTRATION_LIST, form, |fields| {
        let (meter, subdomain, isn, date) = match fields {
            [m, s, i] => (m, s, i, None),
            [m, s, i, d] => (m, s, i, Some(d)),
            _ => return Err(None),
        };
        let why = |e: postkey_wire::WireError| Some(e.to_string());
        let meter = MeterId::parse(meter).map_err(why)?;
        let subdomain = SubdomainId::parse(subdomain).map_err(why)?;
        let isn = Isn::parse(isn).map_err(why)?;
        let date = date.map(|d| Date::parse(d)).transpose().map_err(why)?.unwrap_or(today);
        Ok((meter.clone(), RegistrationOrder { meter, subdomain, isn, date }))
    })
}

/// How one meter's registration ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistrationReport {
    /// The meter.
    pub meter: String,
    /// `registered`, `unchanged` (registered already with the same data) or `refused`.
    pub outcome: &'static str,
    /// The keys now `Active`, as `DOMAIN/ID`.
    pub keys: Vec<String>,
    /// Why it was refused, with its response code.
    pub reason: Option<String>,
    /// The response code of a refusal.
    pub code: Option<u16>,
}

/// Meters registered per batch by default: one box call per Brass box and one archive
/// transaction per batch.
pub const DEFAULT_REGISTER_BATCH: usize = 64;

/// Registrations and withdrawals: the KMC with the Brass boxes they need enabled.
#[derive(Debug)]
pub struct Registrar<S = SqliteStore> {
    home: Home,
    kmc: Kmc<S>,
    boxes: EmbeddedBoxes,
    trust: Trust,
    audit: Option<BoxId>,
    clock: KmsClock<fn() -> Timestamp>,
}

impl<S: Store> Registrar<S> {
    /// Opens for registering into `subdomains`: the Brass box serving each is enabled from
    /// `shares_dir` and checked, after the archive's integrity check at open.
    pub async fn for_subdomains(
        lock: &HomeLock,
        store: S,
        shares_dir: &std::path::Path,
        subdomains: &[SubdomainId],
    ) -> Result<Self, HostError> {
        let (home, trust) = Self::check(lock, &store).await?;
        let mut brass = Vec::new();
        for s in subdomains {
            // A sub-domain no Brass box serves fails the registrations into it, each alone
            // (3030), not the command.
            match postkey_kmc::brass_serving(&store, s).await {
                Ok(b) if !brass.contains(&b) => brass.push(b),
                Ok(_) | Err(postkey_kmc::KmcError::SubdomainNotServed(_)) => {}
                Err(e) => return Err(kmc_error(&home, e)),
            }
        }
        Self::open(lock, store, trust, shares_dir, &brass).await
    }

    /// Opens for `orders`: the Brass boxes serving each target sub-domain and, for each meter's
    /// other key (the vendor's), the sub-domain of its domain in the same country.
    pub async fn for_orders(
        lock: &HomeLock,
        store: S,
        shares_dir: &std::path::Path,
        orders: &[RegistrationOrder],
    ) -> Result<Self, HostError> {
        let mut subdomains = std::collections::BTreeSet::new();
        let ids: Vec<MeterId> = orders.iter().map(|o| o.meter.clone()).collect();
        let meters = lock.home().meters_now(&ids).map_err(|e| lock.home().logged("host", e))?;
        for (o, meter) in orders.iter().zip(&meters) {
            subdomains.insert(o.subdomain.clone());
            // The meter's other key goes to its own domain's sub-domain of that country, if
            // the meter holds a key of the target's domain at all (else it is refused alone).
            if !meter.keys().contains_key(o.subdomain.domain()) {
                continue;
            }
            for domain in meter.keys().keys() {
                if domain != o.subdomain.domain() {
                    subdomains
                        .insert(SubdomainId::new(domain.clone(), o.subdomain.country().clone()));
                }
            }
        }
        let subdomains: Vec<SubdomainId> = subdomains.into_iter().collect();
        Self::for_subdomains(lock, store, shares_dir, &subdomains).await
    }

    /// Opens for withdrawing `meter`: the Brass boxes that installed its keys are enabled.
    pub async fn for_withdrawal(
        lock: &HomeLock,
        store: S,
        shares_dir: &std::path::Path,
        meter: &MeterId,
    ) -> Result<Self, HostError> {
        let (home, trust) = Self::check(lock, &store).await?;
        let brass =
            postkey_kmc::withdrawing_boxes(&store, meter).await.map_err(|e| kmc_error(&home, e))?;
        Self::open(lock, store, trust, shares_dir, &brass).await
    }

    async fn check(lock: &HomeLock, store: &S) -> Result<(Home, Trust), HostError> {
        let home = lock.home().clone();
        let trust = Trust::load(&home, store).await?;
        crate::archive::check_at_open(&home, store).await?;
        Ok((home, trust))
    }

    async fn open(
        lock: &HomeLock,
        store: S,
        trust: Trust,
        shares_dir: &std::path::Path,
        brass: &[BoxId],
    ) -> Result<Self, HostError> {
        let Opened { kmc, boxes, trust, audit, clock } =
            open_kmc(lock, store, trust, shares_dir, brass).await?;
        Ok(Self { home: lock.home().clone(), kmc, boxes, trust, audit, clock })
    }

    /// Registers each meter of `orders`, `batch` meters at a time; one report per meter, in
    /// order. Each refusal is in the error log with its response code; `progress` is told the
    /// meters done after each batch. The audit trail is checkpointed at the end.
    pub async fn register_many(
        &mut self,
        orders: &[RegistrationOrder],
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<RegistrationReport>, HostError> {
        // A meter registers into a postal or EARTH sub-domain; its vendor key follows.
        let mut roles = BTreeMap::new();
        for o in orders {
            let domain = o.subdomain.domain();
            if !roles.contains_key(domain) {
                let role = self.kmc.role_of(domain).await.map_err(|e| kmc_error(&self.home, e))?;
                roles.insert(domain.clone(), role);
            }
        }
        // Each batch: the meters' reports in order, those still to come as `None`, and what
        // the KMC is asked for them. Made as the pipeline takes each batch, not all at once.
        let chunks: Vec<&[RegistrationOrder]> = orders.chunks(batch.max(1)).collect();
        let batches = std::sync::Mutex::new(Vec::<Batch>::with_capacity(chunks.len()));
        let made = std::sync::Mutex::new(None::<HostError>);
        let home = &self.home;
        let clock = &self.clock;
        let mut meters = home.meter_reader().map_err(|e| home.logged("host", e))?;
        let asked = chunks.iter().map_while(|chunk| match self.ask(chunk, &roles, &mut meters) {
            Ok((b, meters)) => {
                lock(&batches).push(b);
                Some(meters)
            }
            Err(e) => {
                *lock(&made) = Some(e);
                None
            }
        });
        let mut reports = Vec::with_capacity(orders.len());
        let mut next = 0;
        let ran = self
            .kmc
            .register_batches(
                &self.boxes,
                asked,
                |results| {
                    let Some(mut b) = lock(&batches).get_mut(next).map(std::mem::take) else {
                        return;
                    };
                    next += 1;
                    let mut registered = Vec::new();
                    let asked = b.places.iter().zip(&b.meters).zip(&b.registrations);
                    for (((place, meter), registration), result) in asked.zip(results) {
                        if result.is_ok() {
                            registered.push((meter.clone(), registration.clone()));
                        }
                        b.reports[*place] = Some(report(home, meter, result));
                    }
                    // Each registered meter now prints indicia that name its ISN and
                    // sub-domain; a stop before this is mended by a rerun (`unchanged`).
                    if let Err(e) = home.record_registrations(&registered) {
                        lock(&made).get_or_insert(e);
                    }
                    reports.extend(b.reports.into_iter().flatten());
                    progress(reports.len());
                },
                || clock.now(),
            )
            .await;
        ran.map_err(|e| kmc_error(&self.home, e))?;
        if let Some(e) = lock(&made).take() {
            return Err(self.home.logged("host", e));
        }
        self.checkpoint().await?;
        Ok(reports)
    }

    /// One batch's MR1s, made by each meter, and the reports of the meters refused before
    /// anything is asked of the KMC (no postal or EARTH target, a meter without the keys).
    fn ask(
        &self,
        chunk: &[RegistrationOrder],
        roles: &BTreeMap<postkey_wire::DomainId, Option<postkey_kmc::KeyRole>>,
        meters: &mut crate::meters::MeterReader<'_>,
    ) -> Result<(Batch, Vec<MeterRegistration>), HostError> {
        let mut b = Batch::default();
        let mut asked = Vec::new();
        let ids: Vec<MeterId> = chunk.iter().map(|o| o.meter.clone()).collect();
        for (o, meter) in chunk.iter().zip(meters.take(&ids)?) {
            let role = roles.get(o.subdomain.domain()).copied().flatten();
            if role != Some(postkey_kmc::KeyRole::Postal) {
                let code = postkey_wire::ResponseCode::SUBDOMAIN_MISMATCH;
                let why = format!(
                    "{} is no postal or EARTH sub-domain: name the sub-domain of the post the \
                     meter registers with; its vendor key follows into the vendor's",
                    o.subdomain
                );
                let _ =
                    self.home.log_error("kmc", code, &format!("{}: {why}", o.meter), clock::now());
                b.reports.push(Some(refused(&o.meter, code.0, &why)));
                continue;
            }
            match meter.registration_requests(&o.subdomain, &o.isn, o.date, self.clock.now()) {
                Ok(requests) => {
                    b.places.push(b.reports.len());
                    b.reports.push(None);
                    b.meters.push(o.meter.clone());
                    b.registrations.push(PostalRegistration {
                        subdomain: o.subdomain.clone(),
                        isn: o.isn.clone(),
                    });
                    asked.push(MeterRegistration { meter: o.meter.clone(), requests });
                }
                Err(e) => {
                    let _ = self.home.log_error(
                        "meter",
                        e.response_code(),
                        &format!("{}: {e}", o.meter),
                        clock::now(),
                    );
                    b.reports.push(Some(refused(&o.meter, e.response_code().0, &e)));
                }
            }
        }
        Ok((b, asked))
    }

    /// Withdraws `meter` (protocol §6.3): both its keys `Obsolete` with the Obsolete Time, or
    /// neither; the keys withdrawn, as `DOMAIN/ID`. A refusal is in the error log.
    pub async fn withdraw(&self, meter: &MeterId, reason: &str) -> Result<Vec<String>, HostError> {
        let withdrawn = self
            .kmc
            .withdraw(&self.boxes, meter, reason, || self.clock.now())
            .await
            .map_err(|e| kmc_error(&self.home, e))?;
        self.checkpoint().await?;
        Ok(withdrawn.iter().map(|(d, k)| format!("{d}/{k}")).collect())
    }

    /// What the command recorded goes to the error log and the audit box's checkpoints.
    async fn checkpoint(&self) -> Result<(), HostError> {
        let session = self.boxes.session();
        crate::checkpoint::moved(&self.home, self.kmc.store(), session, &self.trust, self.audit)
            .await
    }

    /// The boxes it enabled (the Brass boxes a registration goes to, and the audit box).
    pub fn brass_boxes(&self) -> usize {
        self.boxes.session().enabled().filter(|b| b.box_type() == BoxType::Brass).count()
    }

    /// Locks the boxes.
    pub fn close(self) {
        drop(self.boxes);
    }
}

/// A batch of registrations on its way: each meter's report in order (`None` until the KMC
/// answers), and the meters asked of the KMC with their places.
#[derive(Default)]
struct Batch {
    reports: Vec<Option<RegistrationReport>>,
    places: Vec<usize>,
    meters: Vec<MeterId>,
    registrations: Vec<PostalRegistration>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A meter's report from the KMC's result; a refusal goes to the error log.
fn report(
    home: &Home,
    meter: &MeterId,
    result: postkey_kmc::RegistrationResult,
) -> RegistrationReport {
    let keys = |keys: Vec<String>, outcome| RegistrationReport {
        meter: meter.to_string(),
        outcome,
        keys,
        reason: None,
        code: None,
    };
    match result {
        Ok(RegistrationOutcome::Registered(k)) => {
            keys(k.iter().map(|(d, k, _)| format!("{d}/{k}")).collect(), "registered")
        }
        Ok(RegistrationOutcome::Unchanged(k)) => {
            keys(k.iter().map(|(d, k)| format!("{d}/{k}")).collect(), "unchanged")
        }
        Err(e) => {
            let r = refused(meter, e.response_code().0, &e);
            let _ = kmc_error(home, e);
            r
        }
    }
}

fn refused(meter: &MeterId, code: u16, e: &impl core::fmt::Display) -> RegistrationReport {
    RegistrationReport {
        meter: meter.to_string(),
        outcome: "refused",
        keys: Vec::new(),
        reason: Some(e.to_string()),
        code: Some(code),
    }
}
