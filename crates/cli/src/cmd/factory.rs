use std::collections::BTreeMap;
use std::path::PathBuf;

use postkey_host::{
    Access, DEFAULT_BATCH, DEFAULT_CHECKPOINT_EVERY, DEFAULT_REGISTER_BATCH, Factory,
    InstallReport, Registrar, RegistrationOrder,
};
use postkey_wire::{Date, DomainId, Isn, MeterId, SubdomainId};

use super::{Ctx, Outcome, block_on, print_json, print_lines, shares_dir};

/// `postkey factory …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Install a vendor key and a postal key into meters (MI0 to MI10). A role a meter has
    /// already from the same domain is reported `held`, so a stopped run can be run again.
    Install(InstallArgs),
    /// Register meters' two keys (MR1 to MR4): the postal (or EARTH) key into the sub-domain
    /// given, the vendor key into the vendor's sub-domain of the same country. Both keys become
    /// Active together, or neither does; the same registration again changes nothing.
    Register(RegisterArgs),
}

/// Arguments of `postkey factory register`.
#[derive(Debug, clap::Args)]
pub(crate) struct RegisterArgs {
    /// The meter, e.g. PB1234-000123 (keyed with `postkey factory install`).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    meter: Option<MeterId>,
    /// The postal (or EARTH) sub-domain to register METER into, e.g. USPS/US or EARTH/DE.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    subdomain: Option<SubdomainId>,
    /// The meter's ISN from the post's licence, 1 to 16 of A-Z and 0-9.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    isn: Option<Isn>,
    /// The registration date, YYYYMMDD [default: today, UTC].
    #[arg(long, conflicts_with = "file", value_parser = |s: &str| Date::parse(s).map_err(|e| e.to_string()))]
    date: Option<Date>,
    /// A file of registrations, one per line: `METER SUBDOMAIN ISN [DATE]` (`#` starts a
    /// comment line).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Meters per batch: one box call per Brass box and one archive transaction.
    #[arg(long, default_value_t = DEFAULT_REGISTER_BATCH as u16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey factory install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// The meter, e.g. PB1234-000123 (made with `postkey meter new`).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    meter: Option<MeterId>,
    /// The vendor domain.
    #[arg(long, default_value = "VE")]
    vendor: DomainId,
    /// The postal domain (or EARTH) of METER.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    postal: Option<DomainId>,
    /// A file of meters to key, one per line: `METER POSTAL` (`#` starts a comment line).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Meters per batch: one key-ID allocation, one box call per stage and one archive
    /// transaction per stage for this many meters.
    #[arg(long, default_value_t = DEFAULT_BATCH as u16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Keys installed between two checkpoints of the audit trail, besides those at the run's
    /// start and end, rounded up to whole batches: an archive rewritten during the run is found
    /// this many keys (and one batch) on at most.
    #[arg(long, value_name = "KEYS", default_value_t = DEFAULT_CHECKPOINT_EVERY as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    checkpoint_every: u32,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let a = match command {
        Command::Install(a) => a,
        Command::Register(a) => return register(ctx, a),
    };
    let home = &ctx.home;
    let dir = shares_dir(home, a.shares_dir.as_deref());
    let meters = match (&a.file, &a.meter, &a.postal) {
        (Some(file), _, _) => postkey_host::read_meter_list(file)?,
        (None, Some(meter), Some(postal)) => vec![(meter.clone(), postal.clone())],
        _ => anyhow::bail!("name a meter and --postal, or --file"),
    };
    let lock = ctx.lock(Access::Shared)?;
    // Every meter must exist before any box is enabled for it.
    for (meter, _) in &meters {
        home.load_meter(meter)?;
    }
    let mut domains: Vec<DomainId> = meters.iter().map(|(_, p)| p.clone()).collect();
    domains.push(a.vendor.clone());
    domains.sort();
    domains.dedup();
    // One meter named on the command line is quick; a list may be long.
    let mut progress = a.file.is_some().then(|| super::Progress::new("meters keyed", meters.len()));
    let reports = block_on(async {
        let store = ctx.archive().await?;
        let mut factory = Factory::open_on(&lock, store, &dir, &domains).await?;
        if let Some(every) = std::num::NonZeroUsize::new(a.checkpoint_every as usize) {
            factory.checkpoint_every(every);
        }
        let s = factory.settled().clone();
        if !s.is_empty() {
            eprintln!("postkey: note: settled what a stopped run left: {s}");
        }
        let settled = serde_json::json!({
            "aborted": s.aborted.len(),
            "mi7_recorded": s.mi7_recorded.len(),
            "rechecked": s.rechecked.len(),
            "never_installed": s.never_installed.len(),
            "burned": s.burned.len(),
        });
        let reports = factory
            .install_many(&meters, &a.vendor, usize::from(a.batch), |n| {
                if let Some(p) = progress.as_mut() {
                    p.set(n);
                }
            })
            .await;
        if let Some(p) = &progress {
            p.finish();
        }
        factory.close();
        anyhow::Ok((reports?, settled))
    })??;
    let (reports, settled) = reports;
    let fine = |status: &str| status == "installed" || status == "held";
    let all_fine = reports.iter().flat_map(|r| &r.keys).all(|k| fine(&k.status));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in reports.iter().flat_map(|r| &r.keys) {
        *counts.entry(k.status.as_str()).or_default() += 1;
    }
    if a.json {
        match (a.file.is_some(), reports.first()) {
            (false, Some(report)) => print_json(report)?,
            _ => print_json(
                &serde_json::json!({"meters": reports, "keys": counts, "settled": settled}),
            )?,
        }
    } else {
        let mut lines: Vec<String> = reports.iter().flat_map(report_lines).collect();
        if a.file.is_some() {
            let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            lines.push(format!("{} meters; keys: {}", reports.len(), counts.join(", ")));
        }
        print_lines(&lines)?;
    }
    Ok(if all_fine { Outcome::Success } else { Outcome::CheckFailed })
}

fn report_lines(report: &InstallReport) -> Vec<String> {
    report
        .keys
        .iter()
        .map(|k| {
            let key = match k.key_id {
                Some(id) => format!("{}/{id}", k.domain),
                None => format!("{} (no key made)", k.domain),
            };
            match &k.reason {
                Some(r) => format!("{} key {key}: {} ({r})", report.meter, k.status),
                None => format!("{} key {key}: {}", report.meter, k.status),
            }
        })
        .collect()
}

fn register(ctx: &Ctx, a: RegisterArgs) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    let dir = shares_dir(home, a.shares_dir.as_deref());
    let today = postkey_host::utc_date(postkey_host::now())?;
    let lock = ctx.lock(Access::Shared)?;
    // Refused before any box is asked: each refusal is in the error log all the same.
    let logged = |e| home.logged("host", e);
    let orders = match (&a.file, a.meter, a.subdomain, a.isn) {
        (Some(file), ..) => postkey_host::read_registration_list(file, today).map_err(logged)?,
        (None, Some(meter), Some(subdomain), Some(isn)) => {
            vec![RegistrationOrder { meter, subdomain, isn, date: a.date.unwrap_or(today) }]
        }
        _ => anyhow::bail!("name a meter, --subdomain and --isn, or --file"),
    };
    // Every meter must exist before any box is enabled for it.
    for o in &orders {
        home.load_meter(&o.meter).map_err(logged)?;
    }
    let mut progress =
        a.file.is_some().then(|| super::Progress::new("meters registered", orders.len()));
    let reports = block_on(async {
        let store = ctx.archive().await?;
        let mut r = Registrar::for_orders(&lock, store, &dir, &orders).await?;
        let reports = r
            .register_many(&orders, usize::from(a.batch), |n| {
                if let Some(p) = progress.as_mut() {
                    p.set(n);
                }
            })
            .await;
        if let Some(p) = &progress {
            p.finish();
        }
        r.close();
        anyhow::Ok(reports?)
    })??;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &reports {
        *counts.entry(r.outcome).or_default() += 1;
    }
    let all_fine = reports.iter().all(|r| r.outcome != "refused");
    if a.json {
        match (a.file.is_some(), reports.first()) {
            (false, Some(report)) => print_json(report)?,
            _ => print_json(&serde_json::json!({"meters": reports, "outcomes": counts}))?,
        }
    } else {
        let mut lines: Vec<String> = reports
            .iter()
            .map(|r| match (&r.reason, r.code) {
                (Some(why), Some(code)) => format!("{}: refused ({why}) [{code}]", r.meter),
                _ => format!("{}: {} ({})", r.meter, r.outcome, r.keys.join(", ")),
            })
            .collect();
        if a.file.is_some() {
            let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            lines.push(format!("{} meters: {}", reports.len(), counts.join(", ")));
        }
        print_lines(&lines)?;
    }
    Ok(if all_fine { Outcome::Success } else { Outcome::CheckFailed })
}
