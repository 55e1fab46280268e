//! `postkey demo`: the whole system end to end on the embedded default. It grows with every part
//! of the system; today it runs the first ceremony, creates the demo domains, manufactures one
//! box of each type with the processes each needs, then makes meters and installs a vendor key
//! and a postal key into each through the KMC and the archive, registers them across `USPS/US`,
//! `EARTH/DE` and `EARTH/GB` (docs/registration.md), withdraws a few, and reports it all,
//! ending with an audit of the archive it made against the trust anchors (docs/audit.md).

use postkey_wire::{BoxId, BoxType, DomainId, DomainKind, SubdomainId};

use postkey_archive::Store;

use crate::lock::HomeLock;
use crate::{
    BoxReport, Ceremonies, DomainSummary, HostError, InitReport, SharePolicy, ceremony, inventory,
};

/// What the demo did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// The home it ran in.
    pub home: String,
    /// The first ceremony.
    pub init: InitReport,
    /// The domains.
    pub domains: Vec<DomainSummary>,
    /// The boxes.
    pub boxes: Vec<BoxReport>,
    /// Ceremony transcripts in the archive.
    pub transcripts: usize,
    /// Error-log entries (refusals) in the archive.
    pub errors: usize,
    /// Meters made and keyed.
    pub meters: usize,
    /// Meters registered, per outcome.
    pub registrations: std::collections::BTreeMap<String, usize>,
    /// Meters withdrawn.
    pub withdrawn: Vec<String>,
    /// Keys per domain, sub-domain and status.
    pub keys: Vec<KeyCount>,
    /// The audit of the archive the demo made, against the home's trust anchors
    /// (docs/audit.md): it must hold.
    pub audit: postkey_audit::Report,
}

/// How many keys of a domain (and sub-domain, once registered) are in a status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyCount {
    /// The domain.
    pub domain: String,
    /// The sub-domain, for a registered key.
    pub subdomain: Option<String>,
    /// The status.
    pub status: String,
    /// How many.
    pub count: usize,
}

fn sub(s: &str) -> Result<SubdomainId, HostError> {
    Ok(SubdomainId::parse(s)?)
}

/// The demo domains: the vendor, one postal operator and EARTH.
fn demo_domains() -> Result<Vec<(DomainId, DomainKind, Vec<SubdomainId>)>, HostError> {
    Ok(vec![
        (
            DomainId::parse("VE")?,
            DomainKind::Vendor,
            vec![sub("VE/US")?, sub("VE/DE")?, sub("VE/GB")?],
        ),
        (DomainId::parse("USPS")?, DomainKind::Postal, vec![sub("USPS/US")?]),
        (DomainId::parse("EARTH")?, DomainKind::Earth, vec![sub("EARTH/DE")?, sub("EARTH/GB")?]),
    ])
}

/// What the demo reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A ceremony step.
    Step(String),
    /// Meters keyed so far, of how many.
    Meters(usize, usize),
    /// Meters registered so far, of how many.
    Registered(usize, usize),
}

/// Runs the demo in the home `lock` holds alone (which must not be initialized yet), on its
/// SQLite archive, with `meters` meters: half get `VE` and `USPS` keys, half `VE` and `EARTH`
/// keys. `progress` is told each step.
pub async fn run(
    lock: &HomeLock,
    meters: usize,
    progress: impl FnMut(Progress),
) -> Result<DemoReport, HostError> {
    let store = crate::open_archive(lock.home()).await?;
    run_on(lock, store, meters, progress).await
}

/// As [`run`], on another archive (a fresh PostgreSQL schema).
pub async fn run_on<S: Store + Clone>(
    lock: &HomeLock,
    store: S,
    meters: usize,
    mut progress: impl FnMut(Progress),
) -> Result<DemoReport, HostError> {
    let (init, domains, boxes) =
        ceremonies(lock, store.clone(), |s| progress(Progress::Step(s))).await?;
    install_meters(lock, store.clone(), meters, &mut progress).await?;
    let (registrations, withdrawn) =
        register_meters(lock, store.clone(), meters, &mut progress).await?;
    let keys = count_keys(&store).await?;
    // The archive now holds the transcripts and the error log (the factory moved them in).
    crate::archive::move_error_spool(lock.home(), &store).await?;
    let transcripts = store.transcripts(None).await?.len();
    let errors = store.error_log(&postkey_archive::ErrorLogQuery::latest(u32::MAX)).await?.len();
    progress(Progress::Step("audit verify".into()));
    let audit = postkey_audit::verify(&store, &lock.home().anchors()?).await?;
    let home = lock.home().root().display().to_string();
    Ok(DemoReport {
        home,
        init,
        domains,
        boxes,
        transcripts,
        errors,
        meters,
        registrations,
        withdrawn,
        keys,
        audit,
    })
}

async fn install_meters<S: Store>(
    lock: &HomeLock,
    store: S,
    meters: usize,
    progress: &mut impl FnMut(Progress),
) -> Result<(), HostError> {
    let home = lock.home();
    let (ve, usps, earth) =
        (DomainId::parse("VE")?, DomainId::parse("USPS")?, DomainId::parse("EARTH")?);
    let domains = [ve.clone(), usps.clone(), earth.clone()];
    let mut factory = crate::Factory::open_on(lock, store, &home.media_dir(), &domains).await?;
    let mut line = Vec::with_capacity(meters);
    for n in 1..=meters {
        let id = meter(n)?;
        crate::new_meter(lock, &id)?;
        line.push((id, if n % 2 == 1 { usps.clone() } else { earth.clone() }));
    }
    progress(Progress::Meters(0, meters));
    factory
        .install_many(&line, &ve, batch(meters), |n| progress(Progress::Meters(n, meters)))
        .await?;
    factory.close();
    Ok(())
}

/// The demo's batch: the default, or a quarter of a small run so that its pipeline shows.
fn batch(meters: usize) -> usize {
    crate::DEFAULT_BATCH.min(meters.div_ceil(4).max(1))
}

/// Meter `n` of the demo.
fn meter(n: usize) -> Result<postkey_wire::MeterId, HostError> {
    Ok(postkey_wire::MeterId::parse(&format!("PB1234-{n:06}"))?)
}

/// Registers every meter (the `USPS` ones into `USPS/US`, the `EARTH` ones into `EARTH/DE` and
/// `EARTH/GB` in turn, each with an ISN of its own), then withdraws the last tenth (one at
/// least). Each meter's outcome, and the meters withdrawn.
async fn register_meters<S: Store>(
    lock: &HomeLock,
    store: S,
    meters: usize,
    progress: &mut impl FnMut(Progress),
) -> Result<(std::collections::BTreeMap<String, usize>, Vec<String>), HostError> {
    if meters == 0 {
        return Ok(Default::default());
    }
    let date = crate::register::utc_date(crate::clock::now())?;
    let mut orders = Vec::with_capacity(meters);
    for n in 1..=meters {
        let (subdomain, isn) = match n % 4 {
            1 | 3 => ("USPS/US", format!("04{n:08}")),
            2 => ("EARTH/DE", format!("DE{n:08}")),
            _ => ("EARTH/GB", format!("GB{n:08}")),
        };
        orders.push(crate::RegistrationOrder {
            meter: meter(n)?,
            subdomain: sub(subdomain)?,
            isn: postkey_wire::Isn::parse(&isn)?,
            date,
        });
    }
    let mut r =
        crate::Registrar::for_orders(lock, store, &lock.home().media_dir(), &orders).await?;
    progress(Progress::Registered(0, meters));
    let reports = r
        .register_many(&orders, batch(meters), |n| progress(Progress::Registered(n, meters)))
        .await?;
    let mut outcomes = std::collections::BTreeMap::new();
    for report in &reports {
        *outcomes.entry(report.outcome.to_string()).or_default() += 1;
    }
    let mut withdrawn = Vec::new();
    for n in (meters.saturating_sub((meters / 10).max(1)) + 1)..=meters {
        progress(Progress::Step(format!("withdraw {}", meter(n)?)));
        r.withdraw(&meter(n)?, "demo: taken out of service").await?;
        withdrawn.push(meter(n)?.to_string());
    }
    r.close();
    Ok((outcomes, withdrawn))
}

/// Every key of the archive, counted by domain, sub-domain and status.
async fn count_keys(store: &impl Store) -> Result<Vec<KeyCount>, HostError> {
    let mut counts = std::collections::BTreeMap::<(String, Option<String>, String), usize>::new();
    for d in store.domains().await? {
        let mut after = None;
        loop {
            let filter = postkey_archive::KeyFilter {
                after,
                ..postkey_archive::KeyFilter::domain(d.id.clone(), 1000)
            };
            let page = store.keys(&filter).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key_id);
            for k in &page {
                let subdomain = k.registration.as_ref().map(|r| r.subdomain.to_string());
                *counts
                    .entry((k.domain.to_string(), subdomain, k.status.to_string()))
                    .or_default() += 1;
            }
        }
    }
    Ok(counts
        .into_iter()
        .map(|((domain, subdomain, status), count)| KeyCount { domain, subdomain, status, count })
        .collect())
}

/// The ceremonies of the demo.
async fn ceremonies(
    lock: &HomeLock,
    store: impl Store,
    mut progress: impl FnMut(String),
) -> Result<(InitReport, Vec<DomainSummary>, Vec<BoxReport>), HostError> {
    let home = lock.home();
    let media = home.media_dir();
    progress("first ceremony: M00000001, trust anchors, shares".into());
    let init = ceremony::init(lock, &store, &media).await?;
    let mut c = Ceremonies::open(lock, store).await?;
    let m = BoxId::FIRST_MANUFACTURING;
    c.enable(m, &media).await?;

    let domains = demo_domains()?;
    for (domain, kind, subs) in &domains {
        progress(format!("domain {domain}"));
        c.create_domain(m, domain.clone(), *kind, subs.clone()).await?;
    }

    let fingerprint = init.anchors_fingerprint;
    let mut made = Vec::new();
    for t in [BoxType::Manufacturing, BoxType::Oak, BoxType::Steel, BoxType::Brass, BoxType::Tin] {
        progress(format!("manufacture a box of type {t}"));
        let report =
            c.manufacture(m, t, &media, SharePolicy::default_for(t), Some(fingerprint)).await?;
        made.push(report.id);
    }
    for id in made {
        for (domain, kind, subs) in &domains {
            let served = match id.box_type() {
                BoxType::Manufacturing => continue,
                BoxType::Tin if *kind != DomainKind::Postal => continue,
                BoxType::Brass => subs.clone(),
                _ => Vec::new(),
            };
            progress(format!("{id}: {} process of {domain}", id.box_type()));
            c.install_process(m, id, domain, served).await?;
        }
        if id.box_type() == BoxType::Brass {
            progress(format!("{id}: brass process of ADMIN (audit key)"));
            c.install_process(m, id, &DomainId::admin(), vec![]).await?;
        }
    }
    let domains = inventory::domains(c.store(), c.trust()).await?;
    let boxes = inventory::boxes(c.store(), c.trust()).await?;
    progress("checkpoint the audit trail".into());
    c.finish().await?;
    Ok((init, domains, boxes))
}
