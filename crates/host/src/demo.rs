//! `postkey demo`: the whole system end to end on the embedded default, from a fresh home. It
//! runs the first ceremony, creates the demo domains, manufactures one box of each type with
//! the processes each needs, makes meters and installs a vendor key and a postal key into each
//! through the KMC and the archive, registers them across `USPS/US`, `EARTH/DE` and `EARTH/GB`
//! (docs/registration.md), has them print mailpieces (some then forged, altered, copied,
//! misread, dated before registration; one read back from a picture), withdraws a tenth of the
//! meters, exports the month's token keys of `USPS/US` to the Tin box before and after the
//! withdrawals, verifies every mailpiece at Brass and the `USPS/US` ones at the Tin box
//! (docs/verification.md, docs/tin.md), tallies each outcome against the one expected from what
//! the demo did to the mailpiece, and ends with an audit of the archive it made against the
//! trust anchors (docs/audit.md).

mod mail;

pub use mail::ResultRow;

use std::collections::BTreeMap;

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
    pub registrations: BTreeMap<String, usize>,
    /// Meters withdrawn.
    pub withdrawn: Vec<String>,
    /// Keys per domain, sub-domain and status.
    pub keys: Vec<KeyCount>,
    /// The mailpieces verified, at Brass and at the Tin box.
    pub mail: MailReport,
    /// Mailpieces whose outcome differed from the expected one, at Brass and at the Tin box,
    /// and Tin imports that went otherwise than expected: 0 when every rule held.
    pub mismatches: usize,
    /// The audit of the archive the demo made, against the home's trust anchors
    /// (docs/audit.md): it must hold.
    pub audit: postkey_audit::Report,
}

/// The demo's mail: what was verified, what it got against what it had to get.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MailReport {
    /// Mailpieces verified at Brass.
    pub mailpieces: usize,
    /// Per case, the outcomes at Brass.
    pub rows: Vec<ResultRow>,
    /// Each outcome at Brass, counted.
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Mailpieces whose outcome at Brass differed from the expected one.
    pub mismatches: usize,
    /// Seconds the Brass verification took (both passes).
    pub seconds: f64,
    /// Mailpieces verified per second at Brass.
    pub per_second: f64,
    /// The Tin box's part.
    pub tin: Option<TinPart>,
}

/// What the Tin box did in the demo.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TinPart {
    /// The Tin box.
    pub tin: String,
    /// The sub-domain exported.
    pub subdomain: String,
    /// The month.
    pub month: String,
    /// Meters in the export made before the withdrawals.
    pub meters_before: usize,
    /// Meters in the superseding export made after them.
    pub meters_after: usize,
    /// Whether the Tin box refused the older export once it held the newer one (3034).
    pub older_refused: bool,
    /// What the answers cover.
    pub covers: &'static str,
    /// Postal tokens verified there.
    pub mailpieces: usize,
    /// Per case, the outcomes there.
    pub rows: Vec<ResultRow>,
    /// Postal tokens whose outcome differed from the expected one.
    pub mismatches: usize,
}

/// How big the demo is, and (for the test that shows a broken rule is caught) a fault put into
/// the verifier's answers.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Meters made, keyed and registered.
    pub meters: usize,
    /// Mailpieces printed (before the copies and the picture).
    pub mailpieces: usize,
    /// Applied to each outcome the Brass verifier answers before the demo tallies it: a
    /// verifier with one of its rules broken. `None` in every real run.
    #[doc(hidden)]
    pub broken_rule: Option<fn(&'static str) -> &'static str>,
}

impl DemoOptions {
    /// `meters` meters and `mailpieces` mailpieces, nothing broken.
    pub fn new(meters: usize, mailpieces: usize) -> Self {
        Self { meters, mailpieces, broken_rule: None }
    }
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
    /// Mailpieces verified so far, of how many.
    Verified(usize, usize),
}

/// Runs the demo in the home `lock` holds alone (which must not be initialized yet), on its
/// SQLite archive, at the size `options` gives: half the meters get `VE` and `USPS` keys, half
/// `VE` and `EARTH` keys. `progress` is told each step.
pub async fn run(
    lock: &HomeLock,
    options: DemoOptions,
    progress: impl FnMut(Progress),
) -> Result<DemoReport, HostError> {
    let store = crate::open_archive(lock.home()).await?;
    run_on(lock, store, options, progress).await
}

/// As [`run`], on another archive (a fresh PostgreSQL schema).
pub async fn run_on<S: Store + Clone>(
    lock: &HomeLock,
    store: S,
    options: DemoOptions,
    mut progress: impl FnMut(Progress),
) -> Result<DemoReport, HostError> {
    let meters = options.meters;
    let (init, domains, boxes) =
        ceremonies(lock, store.clone(), |s| progress(Progress::Step(s))).await?;
    install_meters(lock, store.clone(), meters, &mut progress).await?;
    let (registrations, orders) =
        register_meters(lock, store.clone(), meters, &mut progress).await?;
    let (mail, withdrawn) = mail_and_verify(lock, &store, &orders, options, &mut progress).await?;
    let keys = count_keys(&store).await?;
    // The archive now holds the transcripts and the error log (the factory moved them in).
    crate::archive::move_error_spool(lock.home(), &store).await?;
    let transcripts = store.transcripts(None).await?.len();
    let errors = store.error_log(&postkey_archive::ErrorLogQuery::latest(u32::MAX)).await?.len();
    progress(Progress::Step("audit verify".into()));
    let audit = postkey_audit::verify(&store, &lock.home().anchors()?).await?;
    let home = lock.home().root().display().to_string();
    let tin_mismatches =
        mail.tin.as_ref().map_or(0, |t| t.mismatches + usize::from(!t.older_refused));
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
        mismatches: mail.mismatches + tin_mismatches,
        mail,
        audit,
    })
}

/// The meters' mail, printed, the tenth of the meters withdrawn, the Tin box given the month's
/// export before and after, and everything verified and tallied. The report, and the meters
/// withdrawn.
async fn mail_and_verify<S: Store + Clone>(
    lock: &HomeLock,
    store: &S,
    orders: &[crate::RegistrationOrder],
    options: DemoOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<(MailReport, Vec<String>), HostError> {
    let home = lock.home();
    let media = home.media_dir();
    let now = crate::clock::now();
    let today = crate::register::utc_date(now)?;
    let yesterday = crate::register::utc_date(postkey_wire::Timestamp::from_unix_micros(
        now.unix_micros().saturating_sub(86_400_000_000),
    ))?;
    // A tenth of the meters leave service, two at least (so one is a USPS meter, whose
    // leaving the Tin box's second export shows) once there are four.
    let leave = if orders.len() >= 4 { (orders.len() / 10).max(2) } else { orders.len().min(1) };
    let leaving = orders.len() - leave;
    let meters: Vec<mail::MailMeter> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| mail::MailMeter {
            id: o.meter.clone(),
            subdomain: o.subdomain.clone(),
            withdrawn: i >= leaving,
        })
        .collect();
    progress(Progress::Step(format!("print {} mailpieces", options.mailpieces)));
    let pieces = mail::print_mail(home, &meters, options.mailpieces, today, yesterday)?;

    // The Tin box's month, exported before the withdrawals and again after them.
    let tin = BoxId::parse("T00000001")?;
    let usps = sub("USPS/US")?;
    let month = today.period();
    let dir = tempdir(home)?;
    let export = |n: u32| dir.join(format!("usps-us-{month}-{n}.tinexport"));
    let tin_on = !orders.is_empty();
    let mut meters_before = 0;
    if tin_on {
        progress(Progress::Step(format!("tin export {usps} {month} to {tin}, import")));
        let made =
            crate::tin::export(lock, store.clone(), &media, tin, &usps, month, &export(1)).await?;
        meters_before = made.meters;
        crate::tin::import(lock, store.clone(), &media, &export(1)).await?;
    }
    let mut withdrawn = Vec::new();
    if leaving < orders.len() {
        let r =
            crate::Registrar::for_orders(lock, store.clone(), &media, &orders[leaving..]).await?;
        for o in &orders[leaving..] {
            progress(Progress::Step(format!("withdraw {}", o.meter)));
            r.withdraw(&o.meter, "demo: taken out of service").await?;
            withdrawn.push(o.meter.to_string());
        }
        r.close();
    }
    let mut tin_part = None;
    if tin_on {
        progress(Progress::Step(format!(
            "tin export {usps} {month} again, import; the older again"
        )));
        let made =
            crate::tin::export(lock, store.clone(), &media, tin, &usps, month, &export(2)).await?;
        crate::tin::import(lock, store.clone(), &media, &export(2)).await?;
        let older = crate::tin::import(lock, store.clone(), &media, &export(1)).await;
        let older_refused = matches!(&older, Err(e)
            if e.response_code() == postkey_wire::ResponseCode::TIN_EXPORT_STALE);
        tin_part = Some(TinPart {
            tin: tin.to_string(),
            subdomain: usps.to_string(),
            month: month.to_string(),
            meters_before,
            meters_after: made.meters,
            older_refused,
            covers: crate::tin::TIN_COVERS,
            mailpieces: 0,
            rows: Vec::new(),
            mismatches: 0,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Brass: every mailpiece; the copies in a second pass, after what they copy.
    let total = pieces.len();
    progress(Progress::Verified(0, total));
    let started = std::time::Instant::now();
    let verifier = crate::Verifier::open(lock, store.clone(), &media, mail::site()?).await?;
    let mut got: Vec<(&'static str, usize)> = Vec::with_capacity(total);
    let (first, copies): (Vec<&mail::Piece>, Vec<&mail::Piece>) =
        pieces.iter().partition(|p| p.case != mail::Case::Copy);
    for pass in [first, copies] {
        for batch in pass.chunks(crate::DEFAULT_VERIFY_BATCH) {
            let inputs: Vec<Result<&str, String>> =
                batch.iter().map(|p| p.text.as_deref().map_err(Clone::clone)).collect();
            for r in verifier.verify_inputs(&inputs).await? {
                let outcome = options.broken_rule.map_or(r.outcome, |f| f(r.outcome));
                got.push((outcome, r.repairs.len()));
            }
            progress(Progress::Verified(got.len(), total));
        }
    }
    verifier.close().await?;
    let seconds = started.elapsed().as_secs_f64();
    if got.len() != total {
        return Err(unanswered());
    }
    let ordered: Vec<&mail::Piece> = pieces
        .iter()
        .filter(|p| p.case != mail::Case::Copy)
        .chain(pieces.iter().filter(|p| p.case == mail::Case::Copy))
        .collect();
    let (rows, mismatches) = mail::tally(
        ordered.iter().zip(&got).map(|(p, (o, n))| (p.case, p.case.expected(), *o, *n)),
    );
    let mut outcomes = BTreeMap::new();
    for (o, _) in &got {
        *outcomes.entry(*o).or_default() += 1;
    }

    // The Tin box: the USPS/US mailpieces, offline.
    if let Some(part) = &mut tin_part {
        progress(Progress::Step(format!("{tin}: verify the {usps} mailpieces offline")));
        let at_tin: Vec<&mail::Piece> =
            ordered.iter().copied().filter(|p| p.subdomain == usps).collect();
        let v = crate::tin::TinVerifier::open(lock, store.clone(), &media, tin).await?;
        let mut answers = Vec::with_capacity(at_tin.len());
        for batch in at_tin.chunks(crate::DEFAULT_VERIFY_BATCH) {
            let inputs: Vec<Result<&str, String>> =
                batch.iter().map(|p| p.text.as_deref().map_err(Clone::clone)).collect();
            answers.extend(v.verify_inputs(&inputs).await?);
        }
        v.close().await?;
        if answers.len() != at_tin.len() {
            return Err(unanswered());
        }
        let (rows, mismatches) = mail::tally(at_tin.iter().zip(&answers).map(|(p, r)| {
            (p.case, p.case.expected_at_tin(p.period == month), r.outcome, r.repairs.len())
        }));
        part.mailpieces = at_tin.len();
        part.rows = rows;
        part.mismatches = mismatches;
    }
    let report = MailReport {
        mailpieces: total,
        rows,
        outcomes,
        mismatches,
        seconds,
        per_second: if seconds > 0.0 { total as f64 / seconds } else { 0.0 },
        tin: tin_part,
    };
    Ok((report, withdrawn))
}

/// A verifier answered fewer mailpieces than it was given: never tallied as if it had.
fn unanswered() -> HostError {
    HostError::Kmc(postkey_kmc::KmcError::Unfinished)
}

/// A directory of the home for the demo's export files, made anew.
fn tempdir(home: &crate::Home) -> Result<std::path::PathBuf, HostError> {
    let dir = home.root().join("demo-exports");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| crate::home::storage("creating", &dir, e))?;
    Ok(dir)
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
/// `EARTH/GB` in turn, each with an ISN of its own). Each outcome counted, and the orders.
async fn register_meters<S: Store>(
    lock: &HomeLock,
    store: S,
    meters: usize,
    progress: &mut impl FnMut(Progress),
) -> Result<(BTreeMap<String, usize>, Vec<crate::RegistrationOrder>), HostError> {
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
    r.close();
    let mut outcomes = BTreeMap::new();
    for report in &reports {
        *outcomes.entry(report.outcome.to_string()).or_default() += 1;
    }
    Ok((outcomes, orders))
}

/// Every key of the archive, counted by domain, sub-domain and status.
async fn count_keys(store: &impl Store) -> Result<Vec<KeyCount>, HostError> {
    let mut counts = BTreeMap::<(String, Option<String>, String), usize>::new();
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
                BoxType::Brass | BoxType::Tin => subs.clone(),
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
